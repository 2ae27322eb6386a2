/**
 * The kernels of a page's engine worker: the WebAssembly kernels beside the page when there are,
 * and where the page is cross-origin isolated (shared memory allowed) on a machine with more than
 * one core, their threaded build with helper workers (kernel-thread.ts), each an instance on one
 * shared memory, that take parts of every large GEMM while the engine's worker takes its own and
 * waits for theirs. Elsewhere, or when the threaded build or a helper fails to start, one thread.
 */
import * as tv from "../src/index.js";
import {
  threadedWasmMemory,
  WASM_THREADS_MAX,
  type WasmKernelTeam,
  wasmKernelTeam,
} from "../src/tensor/kernels/wasm-team.js";

/** What the engine's worker sends each helper, which answers "ready" or why not. */
export interface HelperStart {
  /** The threaded build, compiled once by the engine's worker. */
  module: WebAssembly.Module;
  /** The shared memory that the engine's instance and every helper's run on. */
  memory: WebAssembly.Memory;
  /** 1 … WASM_THREADS_MAX − 1, one per helper. */
  thread: number;
}

/** A platform for tv.setPlatform, and the threads its kernels compute on. */
export interface KernelPlatform {
  /** null: no WebAssembly kernels beside the page (the TypeScript kernels run). */
  platform: tv.Platform | null;
  threads: number;
  /** The team of the threaded build, to compare thread counts; null on one thread. */
  team: WasmKernelTeam | null;
}

/** A helper that has not said it is ready within this long is taken as unable to start. */
const HELPER_START_MS = 20_000;

async function fetchBytes(url: URL): Promise<Uint8Array | null> {
  const response = await fetch(url).catch(() => null);
  return response?.ok ? new Uint8Array(await response.arrayBuffer()) : null;
}

/** Helper `thread` on `module` and `memory`, resolved once it is ready to serve. */
function startHelper(url: URL, start: HelperStart): { worker: Worker; ready: Promise<void> } {
  const worker = new Worker(url, { type: "module" });
  let serving = false;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`helper ${start.thread} did not start`)), HELPER_START_MS);
    worker.addEventListener("message", (event: MessageEvent<string>) => {
      clearTimeout(timer);
      serving = event.data === "ready";
      if (serving) resolve();
      else reject(new Error(`helper ${start.thread}: ${event.data}`));
    });
    worker.addEventListener("error", (event) => {
      clearTimeout(timer);
      const message = `helper ${start.thread}: ${event.message || "it could not be loaded"}`;
      // A helper that stops while serving leaves its part of a GEMM undone: say so where it shows.
      if (serving) console.error(`tsvene: the kernels' GEMM ${message} stopped`);
      else reject(new Error(message));
    });
  });
  worker.postMessage(start);
  return { worker, ready };
}

/**
 * The kernels for files served at `site` (tsvene.wasm, tsvene-threads.wasm, kernel-thread.js):
 * threaded on up to navigator.hardwareConcurrency threads where the page may share memory.
 */
export async function startKernels(site: URL): Promise<KernelPlatform> {
  const wanted = self.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, WASM_THREADS_MAX) : 1;
  if (wanted > 1) {
    const threaded = await startThreaded(site, wanted).catch((error: unknown) => {
      console.warn(`tsvene: the kernels run on one thread (${error instanceof Error ? error.message : error})`);
      return null;
    });
    if (threaded) return threaded;
  }
  const wasmKernelBytes = await fetchBytes(new URL("tsvene.wasm", site));
  const platform = wasmKernelBytes ? tv.createPortablePlatform({ wasmKernelBytes }) : null;
  return { platform, threads: 1, team: null };
}

async function startThreaded(site: URL, threads: number): Promise<KernelPlatform | null> {
  const bytes = await fetchBytes(new URL("tsvene-threads.wasm", site));
  if (bytes === null) return null;
  const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  const memory = threadedWasmMemory();
  const helpers = Array.from({ length: threads - 1 }, (_, i) =>
    startHelper(new URL("kernel-thread.js", site), { module, memory, thread: i + 1 }),
  );
  try {
    await Promise.all(helpers.map((helper) => helper.ready));
  } catch (error) {
    for (const helper of helpers) helper.worker.terminate();
    throw error;
  }
  // A helper says "ready" just before it joins the team. The team must be whole before the first
  // GEMM: parts are cut per team size, and a size that grows between calls could let a helper woken
  // late for one call take a ticket of the next.
  const team = wasmKernelTeam(module, memory);
  const deadline = performance.now() + HELPER_START_MS;
  while (team.size() < threads) {
    if (performance.now() > deadline) {
      for (const helper of helpers) helper.worker.terminate();
      throw new Error(`${threads - team.size()} helper(s) did not join the team`);
    }
    await new Promise((tick) => setTimeout(tick, 1));
  }
  const platform = tv.createPortablePlatform({ wasmKernelBytes: bytes, wasmKernelMemory: memory });
  return { platform, threads, team };
}
