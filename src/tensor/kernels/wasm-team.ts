/**
 * The threaded build of the WebAssembly kernels (build/wasm/tsvene-threads.wasm): its shared
 * memory, the helpers that take parts of every large GEMM on it, each an instance in a worker of
 * its own, and the team they form with the thread that runs the kernels (wasm.ts on that memory).
 * Calls stay synchronous: that thread waits for the helpers' parts, so it must be one that may
 * block (a worker, or Node).
 */
import { instantiateKernelModule, WASM_MAX_PAGES } from "./wasm.js";

/** The threaded build's memory at the start (its data, stacks and packing buffers; build-wasm.ts links it so). */
export const THREADED_INITIAL_PAGES = 320;
/** Threads the threaded build has room for, the caller's included (its packing buffers and stacks). */
export const WASM_THREADS_MAX = 8;

/** The shared memory for the threaded build, to give createWasmKernels and each wasmKernelHelper. */
export function threadedWasmMemory(): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: THREADED_INITIAL_PAGES, maximum: WASM_MAX_PAGES, shared: true });
}

/**
 * Helper `thread` (1 … WASM_THREADS_MAX − 1, one per helper) of the threaded build on `memory`,
 * ready to serve: the returned function joins the GEMM team and never returns, so call it last,
 * in a worker of its own, after saying the helper is ready.
 */
export function wasmKernelHelper(module: WebAssembly.Module, memory: WebAssembly.Memory, thread: number): () => void {
  if (!Number.isInteger(thread) || thread < 1 || thread >= WASM_THREADS_MAX) {
    throw new RangeError(`wasmKernelHelper: thread must be an integer in 1 … ${WASM_THREADS_MAX - 1}, got ${thread}`);
  }
  const exports = instantiateKernelModule(module, memory);
  const stackPointer = exports.__stack_pointer;
  const stackTop = exports.helperStackTop;
  const serve = exports.serveHelper;
  if (!(stackPointer instanceof WebAssembly.Global) || typeof stackTop !== "function" || typeof serve !== "function") {
    throw new Error("wasmKernelHelper: the module is not the threaded build (build/wasm/tsvene-threads.wasm)");
  }
  // Every instance starts on the same stack; a helper must not run on the caller's.
  stackPointer.value = stackTop(thread);
  return () => serve(thread);
}

/** The threads that share the threaded build's GEMM on one memory. */
export interface WasmKernelTeam {
  /** The caller and the helpers serving now. */
  size(): number;
  /** Lets a GEMM from now on use at most `threads` of them (1: the caller alone), e.g. to compare. */
  limit(threads: number): void;
}

/**
 * The team of the threaded build on `memory`, seen through an instance of its own. Call it on the
 * thread that runs the kernels: the instance shares that thread's stack (its calls use none).
 */
export function wasmKernelTeam(module: WebAssembly.Module, memory: WebAssembly.Memory): WasmKernelTeam {
  const exports = instantiateKernelModule(module, memory);
  const { teamSize, limitTeam } = exports;
  if (typeof teamSize !== "function" || typeof limitTeam !== "function") {
    throw new Error("wasmKernelTeam: the module is not the threaded build (build/wasm/tsvene-threads.wasm)");
  }
  return { size: () => teamSize(), limit: (threads) => limitTeam(threads) };
}
