/**
 * The native kernel set: the N-API addon built from native/tsvene.c by `npm install` (node-gyp)
 * into build/Release/tsvene.node at the package root. When it cannot be loaded (not built, no
 * OpenBLAS, another platform), nativeKernels is null and nativeLoadError says why.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Kernels } from "./types.js";

type KernelFunctions = Omit<Kernels, "name">;

const KERNEL_FUNCTIONS: readonly (keyof KernelFunctions)[] = [
  "sgemmBatch", "binaryStrided", "copyStrided", "geluTanh", "geluTanhBackward", "geluErf", "geluErfBackward", "silu", "siluBackward",
  "exp", "tanh", "softmaxRows", "softmaxRowsBackward", "layerNormRows", "layerNormRowsBackward",
  "rmsNormRows", "rmsNormRowsBackward",
];

/**
 * The package root is the nearest folder above this module holding binding.gyp: found by search
 * because this file runs both from src/ (via a TS loader) and from dist/src/ after tsc.
 */
function findPackageRoot(start: string): string {
  for (let folder = start; ; folder = dirname(folder)) {
    if (existsSync(join(folder, "binding.gyp"))) return folder;
    if (dirname(folder) === folder) throw new Error(`no binding.gyp in ${start} or any folder above it`);
  }
}

function loadAddon(): KernelFunctions {
  const root = findPackageRoot(dirname(fileURLToPath(import.meta.url)));
  const addonPath = join(root, "build", "Release", "tsvene.node");
  if (!existsSync(addonPath)) throw new Error(`${addonPath} does not exist; run npm install to build it`);
  const addon = createRequire(import.meta.url)(addonPath) as Partial<Record<string, unknown>>;
  const missing = KERNEL_FUNCTIONS.filter((name) => typeof addon[name] !== "function");
  if (missing.length > 0) {
    throw new Error(`${addonPath} lacks ${missing.join(", ")}: it is out of date; run npm install to rebuild it`);
  }
  return addon as unknown as KernelFunctions;
}

function load(): { kernels: Kernels | null; error: Error | null } {
  try {
    return { kernels: { name: "native", ...loadAddon() }, error: null };
  } catch (error) {
    return { kernels: null, error: error instanceof Error ? error : new Error(String(error)) };
  }
}

const loaded = load();

/** The native kernels, or null when the addon could not be loaded. */
export const nativeKernels: Kernels | null = loaded.kernels;
/** Why the addon could not be loaded; null when it was. */
export const nativeLoadError: Error | null = loaded.error;
