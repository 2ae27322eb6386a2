/**
 * Builds the prebuilt addon that the package ships, `npm run build:prebuilt [-- --out <folder>]`:
 * binding.gyp and native/ built by node-gyp with OpenBLAS's static archive linked in
 * (-Dopenblas_static=true), written to <folder>/<platform>-<arch>/tsvene.node (default folder:
 * prebuilds/ at the package root, where platform/node.ts looks). Linux only; needs a C compiler and
 * libopenblas.a (Debian/Ubuntu: libopenblas-dev). The build runs in a copy of binding.gyp and
 * native/ in a temporary folder, so the source build in build/ is left as it is.
 *
 * The addon uses N-API only, so one file serves every Node from 20 on. It needs from glibc the
 * versions its build machine's glibc gave its symbols (printed at the end): release builds belong
 * on an old glibc. From the CPU it needs baseline x86-64: OpenBLAS (built with DYNAMIC_ARCH) and
 * native/kernels.c (target_clones) pick AVX2/AVX-512 code at run time.
 */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { findPackageRoot } from "../src/platform/node.js";

const USAGE = "usage: node dist/scripts/prebuild.js [--out <folder>]  (default folder: prebuilds/ at the package root)";

/** The folder that receives <platform>-<arch>/tsvene.node. */
function outputFolder(root: string): string {
  try {
    const { values } = parseArgs({ options: { out: { type: "string" } }, strict: true });
    return resolve(values.out ?? join(root, "prebuilds"));
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
  }
}

/**
 * The file behind libopenblas.a where the compiler finds it (the linker searches the same folders),
 * or null: on Debian a link to the variant chosen by update-alternatives.
 */
function staticOpenBlas(): string | null {
  const found = spawnSync(process.env.CC ?? "cc", ["-print-file-name=libopenblas.a"], { encoding: "utf8" });
  const path = found.status === 0 ? found.stdout.trim() : "";
  return isAbsolute(path) && existsSync(path) ? realpathSync(path) : null;
}

/**
 * node-gyp and its arguments as npm runs it for install scripts: npm names it in
 * npm_config_node_gyp; run outside npm, the copy bundled with the npm next to this node. The headers
 * installed with this node (include/node) spare node-gyp a download when npm names no nodedir.
 */
function nodeGyp(): { command: string; args: string[] } {
  const prefix = dirname(dirname(process.execPath));
  const bundled = join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js");
  const script = process.env.npm_config_node_gyp ?? (existsSync(bundled) ? bundled : undefined);
  const localHeaders = existsSync(join(prefix, "include", "node", "node_api.h"));
  const args = process.env.npm_config_nodedir === undefined && localHeaders ? [`--nodedir=${prefix}`] : [];
  return script === undefined ? { command: "node-gyp", args } : { command: process.execPath, args: [script, ...args] };
}

/** The output of a binutils tool (binutils comes with the compiler that node-gyp needs). */
function binutils(command: string, args: string[]): string {
  const run = spawnSync(command, args, { encoding: "utf8" });
  if (run.error || run.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed: ${run.error?.message ?? run.stderr.trim()}`);
  }
  return run.stdout;
}

/**
 * Throws when the addon leaves a symbol undefined that neither Node (N-API) nor a versioned glibc
 * library provides: the dynamic loader would only notice at the first call, as with the OpenMP
 * variant of libopenblas.a, which needs libgomp.
 */
function checkUndefinedSymbols(addon: string): void {
  const undefinedNames = [...binutils("nm", ["-D", "--undefined-only", addon]).matchAll(/^\s+U (\S+)$/gm)];
  const stray = undefinedNames.map((m) => m[1]).filter((name) => !/@|^napi_|^node_api_/.test(name));
  if (stray.length > 0) {
    throw new Error(
      `${addon} needs ${stray.join(", ")}, which neither Node nor glibc provides; link the pthread ` +
        "variant of libopenblas.a (Debian: libopenblas-pthread-dev)",
    );
  }
}

/** What the addon needs from the system: its shared libraries and the oldest glibc it loads on. */
function requirements(addon: string): string {
  const needed = [...binutils("readelf", ["-d", addon]).matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
  const versions = [...binutils("objdump", ["-T", addon]).matchAll(/GLIBC_([\d.]+\d)/g)].map((m) => m[1]);
  versions.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  return `shared libraries: ${needed.join(", ")}; glibc ≥ ${versions.at(-1) ?? "any"}`;
}

function prebuild(): void {
  const root = findPackageRoot();
  const out = outputFolder(root);
  if (process.platform !== "linux")
    throw new Error(`the static OpenBLAS link is set up for Linux only, not ${process.platform}`);
  const archive = staticOpenBlas();
  if (archive === null)
    throw new Error("libopenblas.a is not on the linker's path (Debian/Ubuntu: apt-get install libopenblas-dev)");
  const stage = mkdtempSync(join(tmpdir(), "tsvene-prebuild-"));
  try {
    cpSync(join(root, "binding.gyp"), join(stage, "binding.gyp"));
    cpSync(join(root, "native"), join(stage, "native"), { recursive: true });
    const gyp = nodeGyp();
    const build = spawnSync(gyp.command, [...gyp.args, "rebuild", "--", "-Dopenblas_static=true"], {
      cwd: stage,
      stdio: "inherit",
    });
    if (build.error || build.status !== 0) {
      throw new Error(`node-gyp failed (${build.error?.message ?? `exit status ${build.status}`})`);
    }
    const target = join(out, `${process.platform}-${process.arch}`, "tsvene.node");
    mkdirSync(dirname(target), { recursive: true });
    const built = join(stage, "build", "Release", "tsvene.node");
    checkUndefinedSymbols(built);
    // Copied beside the target, then renamed over it: a process loading the addon meanwhile gets
    // the old file or the new one, never half of one.
    const partial = `${target}.${process.pid}.partial`;
    copyFileSync(built, partial);
    renameSync(partial, target);
    console.log(`prebuild: ${target} (${(statSync(target).size / 2 ** 20).toFixed(1)} MiB, OpenBLAS from ${archive})`);
    console.log(`prebuild: ${requirements(target)}`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

try {
  prebuild();
} catch (error) {
  console.error(`prebuild: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
