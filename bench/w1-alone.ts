/**
 * W1 alone (bench/w1.ts): its seconds over several runs after a warm-up, and its grid's largest
 * difference from pyvene's, for profiling the sweep engine without the other workloads.
 *
 *   npx tsc -p . && node dist/bench/w1-alone.js [runs]
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as tv from "../src/index.js";
import { hashwModel, hashwWeights, readManifest, SHARED_BENCH } from "./hashw.js";
import { gridDifference, pyveneW1, w1Trace } from "./w1.js";

const runs = Number(process.argv[2] ?? 7);
const manifest = readManifest();
const gpt2 = hashwModel(manifest);
gpt2.loadStateDict(hashwWeights(manifest));
const noise = (await tv.readSafetensors(join(SHARED_BENCH, "weights/w1_noise.safetensors"))).tensors.get(
  "noise",
) as tv.Tensor;
const { checks } = pyveneW1(JSON.parse(readFileSync(join(SHARED_BENCH, "pyvene_cpu.json"), "utf8")));
let result = w1Trace(gpt2, noise, "logit");
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const start = performance.now();
  result = w1Trace(gpt2, noise, "logit");
  times.push((performance.now() - start) / 1000);
}
const sorted = [...times].sort((a, b) => a - b);
console.log(
  `W1: min ${sorted[0].toFixed(3)} s, median ${sorted[Math.floor(runs / 2)].toFixed(3)} s over ${runs} runs ` +
    `[${times.map((t) => t.toFixed(3)).join(" ")}]; logit grid max |Δ| to pyvene ` +
    `${gridDifference(result.grid.values, checks.grid_logit_target).toExponential(2)}`,
);
