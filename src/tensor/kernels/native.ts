/**
 * The native kernel set: the N-API addon built from native/tsvene.c, which the platform loads
 * (platform/node.ts: build/Release/tsvene.node at the package root). When it cannot be loaded
 * (not built, no OpenBLAS, another platform), nativeKernels is null and nativeLoadError says why.
 */
import { platform, type Platform } from "../../platform/index.js";
import { KERNEL_FUNCTION_NAMES, type KernelFunctions, type Kernels } from "./types.js";

function loadAddon(p: Platform): KernelFunctions {
  const { path, exports: addon } = p.loadNativeAddon();
  const missing = KERNEL_FUNCTION_NAMES.filter((name) => typeof addon[name] !== "function");
  if (missing.length > 0) {
    throw new Error(`${path} lacks ${missing.join(", ")}: it is out of date; run npm install to rebuild it`);
  }
  return addon as unknown as KernelFunctions;
}

/** The native kernels of platform `p`, or null and why not. */
export function loadNativeKernels(p: Platform): { kernels: Kernels | null; error: Error | null } {
  try {
    return { kernels: { name: "native", ...loadAddon(p) }, error: null };
  } catch (error) {
    return { kernels: null, error: error instanceof Error ? error : new Error(String(error)) };
  }
}

const loaded = loadNativeKernels(platform());

/** The native kernels, or null when the addon could not be loaded. */
export const nativeKernels: Kernels | null = loaded.kernels;
/** Why the addon could not be loaded; null when it was. */
export const nativeLoadError: Error | null = loaded.error;
