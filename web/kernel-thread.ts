/**
 * A GEMM helper of the page's kernels (kernel-threads.ts): instantiates the threaded WebAssembly
 * kernels on the shared memory it is sent, says "ready", then serves parts of GEMMs until the page
 * closes (it blocks in Atomics.wait between calls, as only a worker may).
 */
import { wasmKernelHelper } from "../src/tensor/kernels/wasm-team.js";
import type { HelperStart } from "./kernel-threads.js";

self.addEventListener(
  "message",
  (event: MessageEvent<HelperStart>) => {
    const { module, memory, thread } = event.data;
    let serve: () => void;
    try {
      serve = wasmKernelHelper(module, memory, thread);
    } catch (error) {
      self.postMessage(error instanceof Error ? error.message : String(error));
      return;
    }
    self.postMessage("ready");
    serve();
  },
  { once: true },
);
