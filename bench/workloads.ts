/**
 * Workloads W1–W4 of ../shared/bench (README there): identical work on the same deterministic
 * weights, timed as pyvene was (whole workload, 3 runs after a warm-up; min and median), printed
 * beside pyvene's seconds on this machine (its t1 configuration) and checked against its values.
 * W3 and W4 also print their floors on this machine, measured in the same run (bench/roofline.ts).
 *
 *   npm run bench:workloads
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as tv from "../src/index.js";
import { hashwModel, hashwWeights, readManifest, SHARED_BENCH } from "./hashw.js";
import { decodingPassFloor, gpt2Matrices, matrixBytes, w3GemmFloor } from "./roofline.js";
import { timed } from "./timing.js";
import { gridDifference, type PyveneTiming as Timing, W1_PROMPT as PROMPT, type W1Checks, w1Trace } from "./w1.js";
import { benchmarkW2 } from "./w2.js";

const reference = JSON.parse(readFileSync(join(SHARED_BENCH, "pyvene_cpu.json"), "utf8")).configs.t1 as {
  results: {
    W1: Record<string, Timing>;
    W3: Record<string, Timing>;
    W4: Record<string, Timing>;
  };
  checks: {
    W1: W1Checks;
    W3: { sum_f64_per_layer: number[]; sumsq_f64_per_layer: number[]; layer0_prompt0_pos0_first4: number[] };
    W4: { sequence: number[] };
  };
};

function line(name: string, ours: { min: number; median: number }, theirs: Timing, label: string): void {
  console.log(
    `${name}: tsvene ${ours.min.toFixed(3)} s (min) / ${ours.median.toFixed(3)} s (median); ` +
      `pyvene ${label} ${theirs.min_s.toFixed(3)} / ${theirs.median_s.toFixed(3)} s → ` +
      `${(theirs.min_s / ours.min).toFixed(2)}× faster (min vs min)`,
  );
}

const manifest = readManifest();
const weights = hashwWeights(manifest);
const gpt2 = hashwModel(manifest);
gpt2.loadStateDict(weights);
// The same weights rounded to bf16 (2 bytes each), as loadPretrained(…, { dtype: "bfloat16" }) holds them.
const bf16Weights = new Map(
  [...weights].map(([name, t]) => [name, new tv.Tensor(tv.roundToHalf(t.data, "bfloat16"), t.shape)]),
);
const gpt2Bf16 = hashwModel(manifest);
gpt2Bf16.loadStateDict(bf16Weights, { share: true });

/** The largest |a − b| over two equally long arrays, and the largest |b|, for a relative figure. */
function largestDifference(a: ArrayLike<number>, b: ArrayLike<number>): string {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  const share = ((100 * diff) / scale).toFixed(2);
  return `max |Δ| ${diff.toExponential(2)} (${share}% of the largest |value| ${scale.toFixed(2)})`;
}

function bf16Line(name: string, ours: { min: number; median: number }, float32: { min: number }, target: number): void {
  console.log(
    `  bf16 weights: tsvene ${ours.min.toFixed(3)} s (min) / ${ours.median.toFixed(3)} s (median), ` +
      `${(float32.min / ours.min).toFixed(2)}× float32's speed (target ≤ ${target} s) [${name}]`,
  );
}

// W1: causal tracing, 12 layers × 10 positions, restoring block_output from the clean run.
const noise = (await tv.readSafetensors(join(SHARED_BENCH, "weights/w1_noise.safetensors"))).tensors.get(
  "noise",
) as tv.Tensor;
const w1 = timed(() => w1Trace(gpt2, noise, "logit"));
const w1Checks = reference.checks.W1;
const logitDiff = gridDifference(w1.result.grid.values, w1Checks.grid_logit_target);
const probabilities = w1Trace(gpt2, noise, "probability");
const probDiff = gridDifference(probabilities.grid.values, w1Checks.grid_prob_target);
line("W1 causal tracing (120 cells)", w1, reference.results.W1.cached_clean_batched_per_layer, "fastest expression");
console.log(
  `  vs pyvene's tutorial-style code ${reference.results.W1.tutorial_new_model_per_cell.min_s.toFixed(2)} s: ` +
    `${(reference.results.W1.tutorial_new_model_per_cell.min_s / w1.min).toFixed(1)}× faster`,
);
console.log(
  `  check: logit grid max |Δ| ${logitDiff.toExponential(2)} ` +
    `(clean ${w1.result.clean.toFixed(4)} vs ${w1Checks.clean_logit_target.toFixed(4)}); ` +
    `probability grid max |Δ| ${probDiff.toExponential(2)}; ` +
    `p_clean ${probabilities.clean.toExponential(4)} vs ${w1Checks.p_clean.toExponential(4)}, ` +
    `p_corrupt ${probabilities.corrupted.toExponential(4)} vs ${w1Checks.p_corrupt.toExponential(4)}`,
);

// W2: DAS training on pyvene's MLP and data.
benchmarkW2();

// W3: block_output of all 12 layers for 64 prompts × 32 tokens, batches of 8, no LM head.
const prompts = JSON.parse(readFileSync(join(SHARED_BENCH, "weights/w3_prompts.json"), "utf8")) as {
  input_ids: number[][];
};
const w3Ids = tv.intTensor(prompts.input_ids);
const w3Run = (model: tv.PretrainedModel) =>
  tv.collectActivations(model, {
    inputIds: w3Ids,
    attentionMask: tv.intTensor(prompts.input_ids.map((r) => r.map(() => 1))),
    batchSize: 8,
  });
const w3 = timed(() => w3Run(gpt2));
const sums = w3.result.activations.map((a) => a.values.reduce((s, v) => s + v, 0));
const sumsq = w3.result.activations.map((a) => a.values.reduce((s, v) => s + v * v, 0));
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1, Math.abs(b));
const w3Checks = reference.checks.W3;
line("W3 collection (12 layers, 64×32 tokens)", w3, reference.results.W3.GPT2Model, "GPT2Model");
const sumDiff = Math.max(...sums.map((s, l) => rel(s, w3Checks.sum_f64_per_layer[l])));
const sumsqDiff = Math.max(...sumsq.map((s, l) => rel(s, w3Checks.sumsq_f64_per_layer[l])));
const first4 = [...w3.result.activations[0].values.subarray(0, 4)].map((v) => v.toFixed(6)).join(", ");
const pyveneFirst4 = w3Checks.layer0_prompt0_pos0_first4.map((v) => v.toFixed(6)).join(", ");
console.log(
  `  check: per-layer sum max rel |Δ| ${sumDiff.toExponential(2)}, sum of squares ${sumsqDiff.toExponential(2)}; ` +
    `layer 0 prompt 0 position 0 starts [${first4}] vs [${pyveneFirst4}]`,
);
const w3Bf16 = timed(() => w3Run(gpt2Bf16));
bf16Line("W3", w3Bf16, w3, 1.2);
const w3Differences = w3Bf16.result.activations.map((a, l) =>
  largestDifference(a.values, w3.result.activations[l].values),
);
console.log(`  bf16 vs float32: layer 0 ${w3Differences[0]}; layer 11 ${w3Differences[11]}`);
const matrices = gpt2Matrices(weights);
const bf16Matrices = gpt2Matrices(bf16Weights);
const w3Floor = w3GemmFloor(matrices, 8 * 32, 8);
const w3Bf16Floor = w3GemmFloor(bf16Matrices, 8 * 32, 8);
console.log(
  `  floor: W3's products alone, each at its fastest with the weights in cache: ${w3Floor.toFixed(3)} s float32 ` +
    `(the 1.95 s target leaves ${(1.95 - w3Floor).toFixed(3)} s for the rest), ${w3Bf16Floor.toFixed(3)} s bf16; ` +
    `tsvene at ${(w3.min / w3Floor).toFixed(2)}× and ${(w3Bf16.min / w3Bf16Floor).toFixed(2)}× its floor`,
);

// W4: 20 greedy tokens with steer added to every layer's MLP output at each new token.
const steer = (await tv.readSafetensors(join(SHARED_BENCH, "weights/w4_steer.safetensors"))).tensors.get(
  "steer",
) as tv.Tensor;
const w4Run = (model: tv.PretrainedModel) => {
  const im = new tv.IntervenableModel(
    Array.from({ length: 12 }, (_, layer) => ({
      layer,
      component: "mlp_output",
      interventionType: tv.AdditionIntervention,
    })),
    model,
  );
  return im.generate({ inputIds: tv.intTensor([PROMPT]), attentionMask: tv.intTensor([PROMPT.map(() => 1)]) }, null, {
    sourceRepresentations: steer,
    maxNewTokens: 20,
    padTokenId: 50256,
  }).generated;
};
const w4 = timed(() => w4Run(gpt2));
const sequence = [...w4.result.sequences.data];
line("W4 steered generation (20 tokens)", w4, reference.results.W4.pyvene_generate, "generate");
const identical = JSON.stringify(sequence) === JSON.stringify(reference.checks.W4.sequence);
console.log(
  `  check: sequence ${identical ? "identical to pyvene's" : `DIFFERS: ${JSON.stringify(sequence.slice(10))}`}`,
);
const w4Bf16 = timed(() => w4Run(gpt2Bf16));
bf16Line("W4", w4Bf16, w4, 0.25);
const bf16Sequence = [...w4Bf16.result.sequences.data];
const sameTokens = bf16Sequence.filter((t, i) => t === sequence[i]).length - PROMPT.length;
console.log(
  `  bf16 vs float32: ${sameTokens} of 20 new tokens the same; first step's logits ` +
    largestDifference(w4Bf16.result.scores[0].data, w4.result.scores[0].data),
);
const w4Floor = 20 * decodingPassFloor(matrices);
const w4Bf16Floor = 20 * decodingPassFloor(bf16Matrices);
const gigabytes = (bytes: number, seconds: number) =>
  `${(bytes / 1e6).toFixed(0)} MB at ${(bytes / seconds / 1e9).toFixed(1)} GB/s`;
console.log(
  `  floor: 20 passes of one-row products over the weight matrices alone, each pass at its fastest: ` +
    `${w4Floor.toFixed(3)} s float32 (${gigabytes(matrixBytes(matrices), w4Floor / 20)}), ` +
    `${w4Bf16Floor.toFixed(3)} s bf16 (${gigabytes(matrixBytes(bf16Matrices), w4Bf16Floor / 20)}); ` +
    `tsvene at ${(w4.min / w4Floor).toFixed(2)}× and ${(w4Bf16.min / w4Bf16Floor).toFixed(2)}× its floor`,
);
