/**
 * DAS training speed: (1) workload W2 (bench/w2.ts: pyvene's DAS_Main_Introduction set-up, batch
 * 256, Adam) beside pyvene's time; (2) rank-1 LowRankRotatedSpace DAS on a GPT-2-small-shaped
 * model (HASHW-v1 weights), batch 8, sequence 16.
 *
 *   npm run bench:das
 */
import * as tv from "../src/index.js";
import { hashwWeights, readManifest } from "./hashw.js";
import { timed } from "./timing.js";
import { benchmarkW2 } from "./w2.js";

benchmarkW2();

const manifest = readManifest();
const gpt2 = tv.modelFromConfig({ ...manifest.config, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] });
gpt2.loadStateDict(hashwWeights(manifest));
const g = new tv.Generator(0);
const randomIds = (shape: number[]) =>
  tv.intTensor(
    Array.from({ length: shape.reduce((a, b) => a * b) }, () => Math.floor(g.uniform() * 50257)),
    shape,
  );
const das = new tv.IntervenableModel(
  { layer: 6, component: "block_output", interventionType: tv.LowRankRotatedSpaceIntervention, lowRankDimension: 1 },
  gpt2,
);
const optimizer = new tv.Adam(das.getTrainableParameters(), { lr: 1e-3 });
const step = () => {
  const logits = das.forward(
    { inputIds: randomIds([8, 16]), lastPositionLogits: true },
    [{ inputIds: randomIds([8, 16]), lastPositionLogits: true }],
    { unitLocations: { "sources->base": 15 } },
  ).intervened.logits;
  tv.crossEntropy(tv.squeeze(tv.slice(logits, 1, -1), 1), randomIds([8])).backward();
  optimizer.step();
  das.zeroGrad();
};
step();
const gptRun = timed(() => {
  for (let i = 0; i < 5; i++) step();
});
console.log(
  "rank-1 LowRankRotatedSpace DAS on GPT-2-small shape (layer 6 block_output, batch 8, seq 16, Adam): " +
    `${(gptRun.min / 5).toFixed(3)} s/step (min), ${(gptRun.median / 5).toFixed(3)} (median)`,
);
