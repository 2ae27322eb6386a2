/**
 * The Node platform: environment variables, the N-API addon built from native/tsvene.c by
 * `npm install` (node-gyp) into build/Release/tsvene.node at the package root, the WebAssembly
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

export const nodePlatform: Platform = {
  name: "node",
  env: (name) => process.env[name],
  loadNativeAddon() {
    const path = join(packageRoot(), "build", "Release", "tsvene.node");
    if (!existsSync(path)) throw new Error(`${path} does not exist; run npm install to build it`);
    const exports = createRequire(import.meta.url)(path) as Record<string, unknown>;
    return { path, exports };
  },
  wasmKernelBytes() {
    const path = join(packageRoot(), "build", "wasm", "tsvene.wasm");
    if (!existsSync(path)) throw new Error(`${path} does not exist; run npm run build:wasm (needs clang and lld)`);
    return readFileSync(path);
  },
  packagePath: (...segments) => join(packageRoot(), ...segments),
  emitWarning: (message, code) => process.emitWarning(message, { code }),
};
