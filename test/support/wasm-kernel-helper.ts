/**
 * A worker_threads entry for the threaded WebAssembly kernels' tests: one GEMM helper on the
 * module and shared memory in workerData, as web/kernel-thread.ts is in the page. It says "ready",
 * then serves until terminated.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { wasmKernelHelper } from "../../src/tensor/kernels/wasm-team.js";

// The test runner also loads every file under dist/test on its main thread: nothing to serve there.
if (!isMainThread) {
  const { module, memory, thread } = workerData as {
    module: WebAssembly.Module;
    memory: WebAssembly.Memory;
    thread: number;
  };
  const serve = wasmKernelHelper(module, memory, thread);
  parentPort!.postMessage("ready");
  serve();
}
