/**
 * The Node platform: environment variables, the N-API addon built from native/tsvene.c by
 * `npm install` (node-gyp) into build/Release/tsvene.node at the package root or prebuilt into
 * prebuilds/<platform>-<arch>/tsvene.node (scripts/prebuild.ts), the WebAssembly
 * kernels built by scripts/build-wasm.ts into build/wasm/tsvene.wasm, and the package root itself.
 * The only module outside io/ and cli/ that imports from node:.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Platform } from "./types.js";

/**
 * The package root is the nearest folder above `start` holding package.json: found by search
 * because this file runs both from src/ (via a TS loader) and from dist/src/ after tsc.
 */
export function findPackageRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let folder = start; ; folder = dirname(folder)) {
    if (existsSync(join(folder, "package.json"))) return folder;
    if (dirname(folder) === folder) throw new Error(`no package.json in ${start} or any folder above it`);
  }
}

let root: string | undefined;

function packageRoot(): string {
  root ??= findPackageRoot();
  return root;
}

/**
 * Loads tsvene.node from the package at `root`: the source build that npm install made on this
 * machine (build/Release, preferred since it matches the machine exactly), else the prebuilt one
 * shipped for this platform (prebuilds/<platform>-<arch>, OpenBLAS linked in). One that is there
 * but fails to load (its shared OpenBLAS since removed, another libc) gives way to the next.
 */
export function loadNativeAddonFrom(root: string): { path: string; exports: Record<string, unknown> } {
  const candidates = [
    join(root, "build", "Release", "tsvene.node"),
    join(root, "prebuilds", `${process.platform}-${process.arch}`, "tsvene.node"),
  ];
  const failures: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      failures.push(`${path} does not exist`);
      continue;
    }
    try {
      return { path, exports: createRequire(import.meta.url)(path) as Record<string, unknown> };
    } catch (error) {
      failures.push(`${path} does not load (${error instanceof Error ? error.message : String(error)})`);
    }
  }
  throw new Error(`no native addon: ${failures.join("; ")}; run npm install to build it`);
}

export const nodePlatform: Platform = {
  name: "node",
  env: (name) => process.env[name],
  loadNativeAddon: () => loadNativeAddonFrom(packageRoot()),
  wasmKernelBytes() {
    const path = join(packageRoot(), "build", "wasm", "tsvene.wasm");
    if (!existsSync(path)) throw new Error(`${path} does not exist; run npm run build:wasm (needs clang and lld)`);
    return readFileSync(path);
  },
  packagePath: (...segments) => join(packageRoot(), ...segments),
  emitWarning: (message, code) => process.emitWarning(message, { code }),
};
