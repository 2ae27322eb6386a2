/**
 * The platform of a JavaScript runtime without Node (a browser, a worker): no environment
 * settings, no native addon, the WebAssembly kernels when their bytes are given (else the
 * TypeScript kernels run), package files addressed relative to where the page serves the package,
 * warnings on the console.
 */
import { describe, readOptions } from "../options/index.js";
import type { Platform } from "./types.js";

export interface PortablePlatformOptions {
  /** The bytes of build/wasm/tsvene.wasm, e.g. fetched by the page or inlined by a bundler. */
  wasmKernelBytes?: Uint8Array;
  /**
   * With the bytes of build/wasm/tsvene-threads.wasm: the shared memory it runs on, the one its
   * helper workers instantiated it on (threadedWasmMemory, wasmKernelHelper).
   */
  wasmKernelMemory?: WebAssembly.Memory;
}

/** A portable platform; with `wasmKernelBytes`, the WebAssembly kernels can run on it. */
export function createPortablePlatform(options?: PortablePlatformOptions): Platform {
  const where = "createPortablePlatform";
  const { wasmKernelBytes, wasmKernelMemory } = readOptions<PortablePlatformOptions>(
    options,
    ["wasmKernelBytes", "wasmKernelMemory"],
    where,
  );
  if (wasmKernelBytes !== undefined && !(wasmKernelBytes instanceof Uint8Array)) {
    throw new TypeError(
      `${where}: wasmKernelBytes must be a Uint8Array (the bytes of build/wasm/tsvene.wasm), ` +
        `got ${describe(wasmKernelBytes)}`,
    );
  }
  if (wasmKernelMemory !== undefined && !(wasmKernelMemory instanceof WebAssembly.Memory)) {
    throw new TypeError(`${where}: wasmKernelMemory must be a WebAssembly.Memory, got ${describe(wasmKernelMemory)}`);
  }
  return {
    name: "portable",
    env: () => undefined,
    loadNativeAddon() {
      throw new Error("this platform has no native addon (it loads only in Node)");
    },
    wasmKernelBytes() {
      if (wasmKernelBytes === undefined) {
        throw new Error("this platform was given no WebAssembly kernels (createPortablePlatform's wasmKernelBytes)");
      }
      return wasmKernelBytes;
    },
    wasmKernelMemory: () => wasmKernelMemory,
    packagePath: (...segments) => segments.join("/"),
    emitWarning: (message, code) => console.warn(`${code}: ${message}`),
  };
}

/** The portable platform without the WebAssembly kernels. */
export const portablePlatform: Platform = createPortablePlatform();
