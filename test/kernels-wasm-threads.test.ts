/**
 * The threaded WebAssembly kernels (build/wasm/tsvene-threads.wasm) with GEMM helpers in
 * worker_threads, as the page runs them in workers: every sgemmBatch, cut into parts along rows,
 * columns or whole matrices, is bit-identical to the plain build on one thread, on the shapes of
 * each path (the one-row path, transposes, row and column bands with partial panels, batches,
 * beta, alpha = 0), with one helper and with three; the team counts its helpers and obeys its
 * limit; and the module refuses to run without its shared memory.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { Worker } from "node:worker_threads";
import { nodePlatform } from "../src/platform/node.js";
import { createWasmKernels } from "../src/tensor/kernels/wasm.js";
import {
  threadedWasmMemory,
  type WasmKernelTeam,
  wasmKernelHelper,
  wasmKernelTeam,
} from "../src/tensor/kernels/wasm-team.js";
import type { Kernels } from "../src/tensor/kernels/types.js";
import { seededRandom, uniform } from "./support/kernel-helpers.js";

// Node 20's V8 (11.3) traps out of bounds in the module's baseline (Liftoff) code once a call has
// waited on a shared memory that another thread's instance uses, though the same bytes pass under
// its optimizing tier; Chromium 156 (the page's case, web-page and bench-browser tests) runs them
// under its default tiering. So these tests compile with the optimizing tier only.
setFlagsFromString("--no-liftoff");

const PLAIN = nodePlatform.packagePath("build", "wasm", "tsvene.wasm");
const THREADED = nodePlatform.packagePath("build", "wasm", "tsvene-threads.wasm");
const HELPER = new URL("./support/wasm-kernel-helper.js", import.meta.url);
const skip = existsSync(THREADED) ? false : `${THREADED} is not built (npm run build:wasm needs clang and lld)`;

interface Case {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  count: number;
  alpha: number;
  beta: number;
}

const CASES: Case[] = [
  // GPT-2 small's MLP on 120 tokens: columns cut in whole panels.
  { transA: false, transB: false, m: 120, n: 3072, k: 768, count: 1, alpha: 1, beta: 0 },
  // The linear layer's layout (x · Wᵀ), an odd n: the last panel partial.
  { transA: false, transB: true, m: 37, n: 1001, k: 300, count: 1, alpha: 0.5, beta: 0 },
  // Taller than wide: rows cut in whole MR panels, a partial last one; beta adds C.
  { transA: true, transB: false, m: 1003, n: 64, k: 200, count: 1, alpha: 1, beta: 0.75 },
  // One row: the one-row path, cut by columns, both layouts of B.
  { transA: false, transB: false, m: 1, n: 50_257, k: 96, count: 1, alpha: 1, beta: 0 },
  { transA: false, transB: true, m: 1, n: 20_001, k: 160, count: 1, alpha: 2, beta: 1 },
  // A batch: whole matrices per part, and a batch smaller than the team.
  { transA: false, transB: true, m: 64, n: 64, k: 256, count: 12, alpha: 1, beta: 0 },
  { transA: true, transB: true, m: 200, n: 300, k: 100, count: 2, alpha: 1, beta: 0 },
  // alpha = 0 only scales C (on the caller's thread).
  { transA: false, transB: false, m: 300, n: 300, k: 300, count: 1, alpha: 0, beta: 0.5 },
];

function runCase(kernels: Kernels, c: Case, seed: number): Float32Array {
  const random = seededRandom(seed);
  const [aSize, bSize, cSize] = [c.m * c.k, c.k * c.n, c.m * c.n];
  const a = uniform(random, aSize * c.count, 1);
  const b = uniform(random, bSize * c.count, 1);
  const out = uniform(random, cSize * c.count, 1);
  const offsets = (size: number) => Int32Array.from({ length: c.count }, (_, i) => i * size);
  const [lda, ldb] = [c.transA ? c.m : c.k, c.transB ? c.k : c.n];
  kernels.sgemmBatch(
    c.transA,
    c.transB,
    c.m,
    c.n,
    c.k,
    c.alpha,
    a,
    lda,
    offsets(aSize),
    b,
    ldb,
    offsets(bSize),
    c.beta,
    out,
    c.n,
    offsets(cSize),
  );
  return out;
}

describe("the threaded WebAssembly kernels with helpers", { skip }, () => {
  const bytes = skip ? new Uint8Array() : readFileSync(THREADED);
  const plain = skip ? null : createWasmKernels(readFileSync(PLAIN));
  let memory: WebAssembly.Memory;
  let threaded: Kernels;
  let team: WasmKernelTeam;
  const helpers: Worker[] = [];

  async function addHelpers(count: number): Promise<void> {
    const module = new WebAssembly.Module(bytes);
    const started = Array.from({ length: count }, () => {
      const thread = helpers.length + 1;
      const worker = new Worker(HELPER, { workerData: { module, memory, thread } });
      helpers.push(worker);
      return new Promise<void>((ready, failed) => {
        worker.once("message", () => ready());
        worker.once("error", failed);
      });
    });
    await Promise.all(started);
    // "ready" comes just before the helper joins: wait until the team has counted it.
    while (team.size() < helpers.length + 1) await new Promise((tick) => setTimeout(tick, 1));
  }

  before(() => {
    memory = threadedWasmMemory();
    threaded = createWasmKernels(bytes, memory);
    team = wasmKernelTeam(new WebAssembly.Module(bytes), memory);
  });

  after(async () => {
    await Promise.all(helpers.map((worker) => worker.terminate()));
  });

  it("runs alone before any helper joins, bit-identical to the plain build", () => {
    assert.equal(team.size(), 1);
    CASES.forEach((c, i) => assert.deepEqual(runCase(threaded, c, i), runCase(plain!, c, i), JSON.stringify(c)));
  });

  for (const total of [2, 4]) {
    it(`cuts every GEMM among ${total} threads bit-identically to one thread`, async () => {
      await addHelpers(total - helpers.length - 1);
      assert.equal(team.size(), total);
      CASES.forEach((c, i) => assert.deepEqual(runCase(threaded, c, i), runCase(plain!, c, i), JSON.stringify(c)));
    });
  }

  it("keeps to its limit, and gives the same bits at each", () => {
    for (const limit of [1, 3, 8]) {
      team.limit(limit);
      CASES.slice(0, 3).forEach((c, i) => assert.deepEqual(runCase(threaded, c, i), runCase(plain!, c, i)));
    }
    assert.equal(team.size(), 4);
  });

  it("refuses to run without its shared memory, and a helper of the plain build", () => {
    assert.throws(() => createWasmKernels(bytes), /need their shared memory \(threadedWasmMemory\)/);
    const plainModule = new WebAssembly.Module(readFileSync(PLAIN));
    assert.throws(() => wasmKernelHelper(plainModule, memory, 1), /not the threaded build/);
    assert.throws(() => wasmKernelHelper(plainModule, memory, 8), /thread must be an integer in 1 … 7, got 8/);
  });
});
