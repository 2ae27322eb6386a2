/**
 * Which kernel set the tensor ops use. By default the native addon when it loaded, else the
 * WebAssembly kernels when the platform has them, else the TypeScript kernels; either fallback
 * comes with one warning saying why, when the ops first ask for kernels. The platform's
 * TSVENE_KERNELS setting (Node: the environment variable) =js forces the TypeScript kernels and
 * =wasm and =native require theirs; setKernels switches at run time.
 */
import { platform } from "../../platform/index.js";
import { jsKernels } from "./js.js";
import { nativeKernels, nativeLoadError } from "./native.js";
import type { Kernels } from "./types.js";
import { loadWasmKernels } from "./wasm.js";

export type { Kernels, KernelFunctions } from "./types.js";
export { KERNEL_FUNCTION_NAMES } from "./types.js";
export { jsKernels } from "./js.js";
export { nativeKernels, nativeLoadError } from "./native.js";
export { createWasmKernels, loadWasmKernels } from "./wasm.js";

let active: Kernels | null = null;
// Loaded on first use only: where the addon runs, the module is never compiled.
let wasm: ReturnType<typeof loadWasmKernels> | null = null;

function wasmLoaded(): ReturnType<typeof loadWasmKernels> {
  wasm ??= loadWasmKernels(platform());
  return wasm;
}

function nativeOrThrow(requestedBy: string): Kernels {
  if (nativeKernels) return nativeKernels;
  throw new Error(
    `${requestedBy} asks for the native kernels, but the addon is unavailable: ` + `${nativeLoadError?.message}`,
  );
}

function wasmOrThrow(requestedBy: string): Kernels {
  const { kernels, error } = wasmLoaded();
  if (kernels) return kernels;
  throw new Error(`${requestedBy} asks for the WebAssembly kernels, but they are unavailable: ${error?.message}`);
}

function defaultKernels(): Kernels {
  const requested = platform().env("TSVENE_KERNELS");
  if (requested === "js") return jsKernels;
  if (requested === "wasm") return wasmOrThrow("TSVENE_KERNELS=wasm");
  if (requested === "native") return nativeOrThrow("TSVENE_KERNELS=native");
  if (requested !== undefined && requested !== "") {
    throw new Error(`TSVENE_KERNELS must be "js", "wasm" or "native", got ${JSON.stringify(requested)}`);
  }
  if (nativeKernels) return nativeKernels;
  const { kernels: wasmKernels, error: wasmError } = wasmLoaded();
  if (wasmKernels) {
    console.warn(
      `tsvene: the native addon is unavailable (${nativeLoadError?.message}); using the WebAssembly kernels`,
    );
    return wasmKernels;
  }
  console.warn(
    `tsvene: the native addon is unavailable (${nativeLoadError?.message}) and so are the WebAssembly kernels ` +
      `(${wasmError?.message}); using the slower TypeScript kernels`,
  );
  return jsKernels;
}

/** The active kernel set. */
export function kernels(): Kernels {
  active ??= defaultKernels();
  return active;
}

/** Switches the kernel set the tensor ops use from now on. */
export function setKernels(name: Kernels["name"]): void {
  if (name === "js") active = jsKernels;
  else if (name === "wasm") active = wasmOrThrow('setKernels("wasm")');
  else if (name === "native") active = nativeOrThrow('setKernels("native")');
  else throw new Error(`setKernels: name must be "js", "wasm" or "native", got ${JSON.stringify(name)}`);
}
