/**
 * npm's install step (package.json "install"). Plain JavaScript that imports nothing of tsvene's:
 * in a checkout, npm runs it before "prepare" has compiled dist/.
 *
 * When the prebuilt addon for this platform (prebuilds/<platform>-<arch>/tsvene.node, OpenBLAS
 * linked in) loads here, nothing is built. Otherwise node-gyp builds the addon from source into
 * build/Release (needs a C compiler and libopenblas-dev); when that fails, one warning, and the
 * install still succeeds: tsvene then runs on its WebAssembly or TypeScript kernels. A checkout
 * (a .git folder: native/ may be newer than the prebuilt) and `npm install --build-from-source`
 * always build from source.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const prebuilt = join(root, "prebuilds", `${process.platform}-${process.arch}`, "tsvene.node");

/** Loaded in a child process, so that an addon that cannot run here cannot take the install down. */
function prebuiltLoads() {
  if (!existsSync(prebuilt)) return false;
  const load = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(prebuilt)})`], { stdio: "ignore" });
  return load.status === 0;
}

/** node-gyp as npm names it for install scripts, else from the PATH. */
function buildFromSource() {
  const script = process.env.npm_config_node_gyp;
  const [command, args] = script ? [process.execPath, [script]] : ["node-gyp", []];
  const build = spawnSync(command, [...args, "configure", "build"], { cwd: root, stdio: "inherit" });
  return !build.error && build.status === 0;
}

const sourceBuildWanted = existsSync(join(root, ".git")) || process.env.npm_config_build_from_source === "true";
if (!sourceBuildWanted && prebuiltLoads()) {
  console.log(`tsvene: using the prebuilt native addon ${prebuilt}`);
} else if (!buildFromSource()) {
  const fallback = prebuiltLoads()
    ? `the prebuilt addon ${prebuilt} will be used`
    : "the WebAssembly or TypeScript kernels will be used";
  console.warn(`tsvene: native addon not built from source (is libopenblas-dev installed?); ${fallback}`);
}
