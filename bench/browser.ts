/**
 * The browser benchmark: in headless Chromium (bench/browser-harness.ts), GEMM GFLOP/s on the
 * TypeScript and WebAssembly kernels, then workload W1 of ../shared/bench (causal tracing on the
 * HASHW-v1 GPT-2-small) on the WebAssembly kernels, timed as pyvene was and printed beside
 * pyvene's seconds with the check against its logit grid; the WebAssembly figures on one kernel
 * thread and on one per core (the page is cross-origin isolated), alternated. With --node, the same W1 in Node on the
 * WebAssembly kernels, for reference.
 *
 *   npm run bench:browser [-- --runs 3 --no-gemm --node]
 */
import { loadavg } from "node:os";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as tv from "../src/index.js";
import { runBenchPage } from "./browser-harness.js";
import { type BenchMessage, w1Message } from "./browser-page/protocol.js";
import { reportLines } from "./browser-page/report.js";
import { hashwModel, hashwWeights, readManifest, SHARED_BENCH } from "./hashw.js";
import { pyveneW1, timedW1 } from "./w1.js";

const USAGE = "usage: node dist/bench/browser.js [--runs N (default 3)] [--no-gemm] [--node]";

function parseArguments(args: string[]): { runs: number; gemm: boolean; node: boolean } {
  const parsed = { runs: 3, gemm: true, node: false };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--no-gemm") parsed.gemm = false;
    else if (args[i] === "--node") parsed.node = true;
    else if (args[i] === "--runs") {
      parsed.runs = Number(args[++i]);
      if (!Number.isInteger(parsed.runs) || parsed.runs < 0)
        throw new RangeError(`--runs must be a non-negative integer, got ${args[i]}\n${USAGE}`);
    } else throw new Error(`unknown argument ${JSON.stringify(args[i])}\n${USAGE}`);
  }
  return parsed;
}

const options = parseArguments(process.argv.slice(2));
const pyvene = pyveneW1(JSON.parse(readFileSync(join(SHARED_BENCH, "pyvene_cpu.json"), "utf8")));
const print = (message: BenchMessage) => {
  for (const line of reportLines(message, pyvene)) console.log(line);
};
const load = () =>
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(", ")}`;

console.log(`Headless Chromium (${load()} at the start)`);
await runBenchPage({ gemm: options.gemm, runs: options.runs }, print);
console.log(`(${load()} at the end)`);

if (options.node) {
  tv.setKernels("wasm");
  const manifest = readManifest();
  const model = hashwModel(manifest);
  model.loadStateDict(hashwWeights(manifest));
  const noise = (await tv.readSafetensors(join(SHARED_BENCH, "weights/w1_noise.safetensors"))).tensors.get("noise");
  print(w1Message("node", tv.kernels().name, timedW1(model, noise as tv.Tensor, options.runs)));
  console.log(`(${load()} at the end)`);
}
