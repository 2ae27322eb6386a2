/**
 * The benchmark's worker: GEMM on the TypeScript and the WebAssembly kernels, then W1 (causal
 * tracing on the HASHW-v1 GPT-2-small, generated here) on the WebAssembly kernels; where the page
 * is cross-origin isolated on more than one core (web/kernel-threads.ts), the WebAssembly figures
 * on one thread and on all, alternated. It reports each figure as a message of protocol.ts; the
 * page prints and logs them.
 */
import * as tv from "../../src/index.js";
import type { WasmKernelTeam } from "../../src/tensor/kernels/wasm-team.js";
import { startKernels } from "../../web/kernel-threads.js";
import { type HashwManifest, hashwModel, hashwTensor } from "../hashw-recipe.js";
import { timedW1, w1Trace } from "../w1.js";
import { type BenchMessage, type BenchQuery, type GemmTiming, parseBenchSearch, w1Message } from "./protocol.js";

/** Square products, then one of GPT-2 small's (a batch of 120 tokens through the MLP's first layer). */
const GEMM_SHAPES: readonly (readonly [number, number, number])[] = [
  [256, 256, 256],
  [512, 512, 512],
  [1024, 1024, 1024],
  [120, 768, 3072],
];
/** Each product is timed at least this many times, and for at least GEMM_MIN_MS when that is more. */
const GEMM_MIN_RUNS = 3;
const GEMM_MAX_RUNS = 50;
const GEMM_MIN_MS = 500;
/** Rounds of one thread then all, each timed as above; a figure is its best round's. */
const GEMM_ROUNDS = 3;

/** The WebAssembly kernels' threads, and the team that lets a run use fewer (null: one thread). */
interface Threads {
  count: number;
  team: WasmKernelTeam | null;
}

const post = (message: BenchMessage) => self.postMessage(message);

/** A file bench/browser.ts puts beside the page. */
async function fetchBytes(name: string): Promise<Uint8Array> {
  const response = await fetch(new URL(name, self.location.href));
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status} (bench/browser.ts serves it beside the page)`);
  return new Uint8Array(await response.arrayBuffer());
}

/** `use` picks the kernels (and threads) to time. */
function timeProduct(a: tv.Tensor, b: tv.Tensor, use: () => void): { timing: GemmTiming; product: tv.Tensor } {
  use();
  let product = tv.matmul(a, b);
  const times: number[] = [];
  const start = performance.now();
  while (times.length < GEMM_MIN_RUNS || (performance.now() - start < GEMM_MIN_MS && times.length < GEMM_MAX_RUNS)) {
    const t0 = performance.now();
    product = tv.matmul(a, b);
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  const medianMs = times[Math.floor(times.length / 2)];
  const [m, k] = a.shape;
  const flops = 2 * m * k * b.shape[1];
  return { timing: { medianMs, gflops: flops / (medianMs * 1e6), runs: times.length }, product };
}

/** The WebAssembly kernels on `threads` of the team's. */
function wasmOn(threads: Threads, count: number): () => void {
  return () => {
    tv.setKernels("wasm");
    threads.team?.limit(count);
  };
}

function faster(x: GemmTiming | null, y: GemmTiming): GemmTiming {
  return x === null || y.medianMs < x.medianMs ? y : x;
}

function gemm(m: number, k: number, n: number, threads: Threads): BenchMessage {
  const generator = new tv.Generator(0);
  const a = tv.randn([m, k], { generator });
  const b = tv.randn([k, n], { generator });
  const js = timeProduct(a, b, () => tv.setKernels("js"));
  let one: GemmTiming | null = null;
  let all: GemmTiming | null = null;
  let product = js.product;
  for (let round = 0; round < (threads.team ? GEMM_ROUNDS : 1); round++) {
    const alone = timeProduct(a, b, wasmOn(threads, 1));
    one = faster(one, alone.timing);
    product = alone.product;
    if (!threads.team) continue;
    const shared = timeProduct(a, b, wasmOn(threads, threads.count));
    all = faster(all, shared.timing);
    if (shared.product.data.some((value, i) => !Object.is(value, alone.product.data[i])))
      throw new Error(`GEMM [${m}×${k}]·[${k}×${n}] on ${threads.count} threads differs from one thread`);
  }
  let maxDifference = 0;
  js.product.data.forEach((value, i) => {
    maxDifference = Math.max(maxDifference, Math.abs(product.data[i] - value));
  });
  const wasmThreads = all && { threads: threads.count, timing: all };
  return { type: "gemm", m, k, n, js: js.timing, wasm: one!, wasmThreads, maxDifference };
}

/**
 * W1 as the query asks: with timed runs and more than one thread, a warm-up, then the runs
 * alternating between one thread and all, a message for each; else on all threads.
 */
function w1(model: tv.PretrainedModel, noise: tv.Tensor, query: BenchQuery, threads: Threads): BenchMessage[] {
  wasmOn(threads, threads.count)();
  const kernels = tv.kernels().name;
  if (query.runs === 0 || threads.team === null)
    return [w1Message("browser", kernels, timedW1(model, noise, query.runs), threads.count)];
  let result = w1Trace(model, noise, "logit");
  const counts = [1, threads.count];
  const times = counts.map((): number[] => []);
  for (let run = 0; run < query.runs; run++) {
    counts.forEach((count, i) => {
      wasmOn(threads, count)();
      const start = performance.now();
      result = w1Trace(model, noise, "logit");
      times[i].push((performance.now() - start) / 1000);
    });
  }
  return counts.map((count, i) => {
    const sorted = times[i].sort((x, y) => x - y);
    const timing = { result, min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], runs: query.runs };
    return w1Message("browser", kernels, timing, count);
  });
}

function hex(digest: ArrayBuffer): string {
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The HASHW-v1 model, each tensor checked against the manifest's sha256 (crypto.subtle: a secure context). */
async function loadModel(): Promise<tv.PretrainedModel> {
  const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes("gpt2s_hashw_v1_manifest.json")));
  const { salt, tensors: specs } = manifest as HashwManifest;
  post({ type: "status", text: `generating the ${specs.length} HASHW-v1 tensors…` });
  let start = performance.now();
  const tensors = specs.map((spec) => hashwTensor(salt, spec));
  const generateS = (performance.now() - start) / 1000;
  if (self.crypto?.subtle === undefined)
    throw new Error("crypto.subtle is unavailable: serve the page from a secure context (http://127.0.0.1 or https)");
  start = performance.now();
  for (const [i, tensor] of tensors.entries()) {
    const digest = hex(await self.crypto.subtle.digest("SHA-256", tensor.data));
    if (digest !== specs[i].sha256_f32le)
      throw new Error(`HASHW-v1: ${specs[i].name} does not match the manifest (sha256 ${digest})`);
  }
  const verifyS = (performance.now() - start) / 1000;
  start = performance.now();
  const model = hashwModel(manifest);
  model.loadStateDict(new Map(specs.map((spec, i) => [spec.name, tensors[i]])));
  const loadStateDictS = (performance.now() - start) / 1000;
  const parameters = tensors.reduce((sum, tensor) => sum + tensor.size, 0);
  post({ type: "load", tensors: tensors.length, parameters, generateS, verifyS, loadStateDictS });
  return model;
}

async function run(): Promise<void> {
  const query = parseBenchSearch(self.location.search);
  const started = await startKernels(new URL("./", self.location.href));
  if (started.platform === null) throw new Error("tsvene.wasm: not found (bench/browser.ts serves it beside the page)");
  tv.setPlatform(started.platform);
  const threads = { count: started.threads, team: started.team };
  if (query.gemm) for (const [m, k, n] of GEMM_SHAPES) post(gemm(m, k, n, threads));
  const model = await loadModel();
  const noiseFile = "w1_noise.safetensors";
  const noise = tv.parseSafetensors(await fetchBytes(noiseFile), { source: noiseFile }).tensors.get("noise");
  if (!(noise instanceof tv.Tensor)) throw new Error(`${noiseFile}: expected a float tensor "noise"`);
  const each = threads.team ? ` on 1 and ${threads.count} threads, alternated` : "";
  post({
    type: "status",
    text: query.runs > 0 ? `W1: a warm-up, then ${query.runs} timed runs${each}…` : "W1: one run (check only)…",
  });
  for (const message of w1(model, noise, query, threads)) post(message);
  post({ type: "done" });
}

run().catch((error: unknown) =>
  post({ type: "error", message: error instanceof Error ? error.message : String(error) }),
);
