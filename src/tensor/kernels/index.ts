/**
 * Which kernel set the tensor ops use. By default the native addon when it loaded, else the
 * TypeScript kernels (with one warning saying why, when the ops first ask for kernels).
 * The platform's TSVENE_KERNELS setting (Node: the environment variable) =js forces the
 * TypeScript kernels and =native requires the addon; setKernels switches at run time.
 */
import { platform } from "../../platform/index.js";
import { jsKernels } from "./js.js";
import { nativeKernels, nativeLoadError } from "./native.js";
import type { Kernels } from "./types.js";

export type { Kernels, KernelFunctions } from "./types.js";
export { KERNEL_FUNCTION_NAMES } from "./types.js";
export { jsKernels } from "./js.js";
export { nativeKernels, nativeLoadError } from "./native.js";

let active: Kernels | null = null;

function nativeOrThrow(requestedBy: string): Kernels {
  if (nativeKernels) return nativeKernels;
  throw new Error(
    `${requestedBy} asks for the native kernels, but the addon is unavailable: ` + `${nativeLoadError?.message}`,
  );
}

function defaultKernels(): Kernels {
  const requested = platform().env("TSVENE_KERNELS");
  if (requested === "js") return jsKernels;
  if (requested === "native") return nativeOrThrow("TSVENE_KERNELS=native");
  if (requested !== undefined && requested !== "") {
    throw new Error(`TSVENE_KERNELS must be "js" or "native", got ${JSON.stringify(requested)}`);
  }
  if (nativeKernels) return nativeKernels;
  console.warn(
    `tsvene: the native addon is unavailable (${nativeLoadError?.message}); using the slower TypeScript kernels`,
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
  else if (name === "native") active = nativeOrThrow('setKernels("native")');
  else throw new Error(`setKernels: name must be "js" or "native", got ${JSON.stringify(name)}`);
}
