/**
 * The platform seam: the core (tensor nn models intervene sweeps viz) imports nothing from node:
 * and reads no process.env, reaching the machine only through platform/; the Node and portable
 * platforms; the one warning when the addon is missing; the kernel names the addon must export;
 * the io file helpers the core's savers use.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import {
  createFolder,
  fileUrl,
  joinPath,
  listFolder,
  pathExists,
  pathKind,
  removeFile,
  withTemporaryFolder,
} from "../src/io/files.js";
import { DEFAULT_MODEL_FOLDER } from "../src/models/default-model.js";
import { platform, portablePlatform, setPlatform, type Platform } from "../src/platform/index.js";
import { findPackageRoot, nodePlatform } from "../src/platform/node.js";
import { KERNEL_FUNCTION_NAMES, jsKernels, nativeKernels } from "../src/tensor/kernels/index.js";
import { loadNativeKernels } from "../src/tensor/kernels/native.js";

const ROOT = findPackageRoot();
const CORE = ["tensor", "nn", "models", "intervene", "sweeps", "viz"];

function tsFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.isFile() && entry.name.endsWith(".ts") ? [path] : [];
  });
}

/**
 * Every module specifier a source names: static imports and re-exports, side-effect imports, import()
 * and require().
 */
function specifiers(source: string): string[] {
  const patterns = [
    /\b(?:import|export)\s[^'";]*?\bfrom\s*(['"])([^'"]+)\1/g,
    /\bimport\s*(['"])([^'"]+)\1/g,
    /\b(?:import|require)\s*\(\s*(['"])([^'"]+)\1\s*\)/g,
  ];
  return patterns.flatMap((pattern) => [...source.matchAll(pattern)].map((m) => m[2]));
}

function isNodeBuiltin(specifier: string): boolean {
  return (
    specifier.startsWith("node:") ||
    builtinModules.includes(specifier) ||
    builtinModules.includes(specifier.split("/")[0])
  );
}

/** What ties `path` (a core source) to Node: built-in imports, process.env, or a way round the seam. */
function nodeTies(path: string): string[] {
  const source = readFileSync(path, "utf8");
  const ties = specifiers(source)
    .filter(isNodeBuiltin)
    .map((s) => `imports "${s}"`);
  const bypass = specifiers(source).filter((s) => /\/platform\/(?!index\.js$)/.test(s));
  ties.push(...bypass.map((s) => `imports "${s}" (the core uses platform/index.js only)`));
  if (/\bprocess\s*\.\s*env\b/.test(source)) ties.push("mentions process.env");
  return ties;
}

describe("the core runs anywhere", () => {
  it("no file under src/{tensor,nn,models,intervene,sweeps,viz} imports from node: or reads process.env", () => {
    const files = CORE.flatMap((folder) => tsFiles(join(ROOT, "src", folder)));
    assert.ok(files.length > 50, `found the core's sources (${files.length} files under ${ROOT}/src)`);
    const offences = files.flatMap((path) => nodeTies(path).map((tie) => `${relative(ROOT, path)}: ${tie}`));
    assert.deepEqual(
      offences,
      [],
      `the core must reach Node only through src/platform/ or src/io/:\n${offences.join("\n")}`,
    );
  });

  it("the scan sees every way of reaching Node", () => {
    const source = [
      'import { readFile } from "node:fs/promises";',
      'import {\n  join,\n} from "path";',
      'export * from "os";',
      'import "node:process";',
      'const m = await import("crypto");',
      'const r = require("fs");',
      'import { x } from "./fs.js";',
      'import { y } from "@huggingface/hub";',
    ].join("\n");
    assert.deepEqual(specifiers(source).filter(isNodeBuiltin).sort(), [
      "crypto",
      "fs",
      "node:fs/promises",
      "node:process",
      "os",
      "path",
    ]);
  });
});

describe("platform registry", () => {
  it("is the Node platform by default; setPlatform swaps it and null puts the default back", () => {
    assert.equal(platform(), nodePlatform);
    const fake: Platform = { ...portablePlatform, name: "fake" };
    try {
      setPlatform(fake);
      assert.equal(platform(), fake);
    } finally {
      setPlatform(null);
    }
    assert.equal(platform(), nodePlatform);
  });

  it("the Node platform reads the environment, finds the package root and the addon", () => {
    assert.equal(nodePlatform.env("PATH"), process.env.PATH);
    assert.equal(nodePlatform.env("TSVENE_SURELY_UNSET_VARIABLE"), undefined);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string };
    assert.equal(pkg.name, "tsvene");
    assert.equal(nodePlatform.packagePath("models", "default"), join(ROOT, "models", "default"));
    assert.equal(DEFAULT_MODEL_FOLDER, join(ROOT, "models", "default"));
    assert.ok(
      existsSync(join(DEFAULT_MODEL_FOLDER, "config.json")),
      "the default model is where the package path says",
    );
    const addonPath = join(ROOT, "build", "Release", "tsvene.node");
    if (existsSync(addonPath)) {
      const { path, exports } = nodePlatform.loadNativeAddon();
      assert.equal(path, addonPath);
      assert.equal(typeof exports.sgemmBatch, "function");
    } else {
      assert.throws(() => nodePlatform.loadNativeAddon(), /does not exist; run npm install to build it/);
    }
  });

  it("the portable platform has no environment and no addon, and addresses package files relatively", () => {
    assert.equal(portablePlatform.env("PATH"), undefined);
    assert.throws(() => portablePlatform.loadNativeAddon(), /no native addon/);
    assert.equal(portablePlatform.packagePath("models", "default"), "models/default");
  });
});

describe("native kernel names", () => {
  it("KERNEL_FUNCTION_NAMES lists exactly the functions of a kernel set", () => {
    const functions = Object.keys(jsKernels).filter(
      (k) => typeof (jsKernels as unknown as Record<string, unknown>)[k] === "function",
    );
    assert.deepEqual([...KERNEL_FUNCTION_NAMES].sort(), functions.sort());
    if (nativeKernels)
      for (const name of KERNEL_FUNCTION_NAMES) assert.equal(typeof nativeKernels[name], "function", name);
  });

  it("an addon that lacks kernels is refused, naming them", () => {
    const partial = Object.fromEntries(
      KERNEL_FUNCTION_NAMES.filter((n) => n !== "silu" && n !== "tanh").map((n) => [n, () => {}]),
    );
    const fake: Platform = {
      ...portablePlatform,
      loadNativeAddon: () => ({ path: "/x/tsvene.node", exports: partial }),
    };
    const { kernels, error } = loadNativeKernels(fake);
    assert.equal(kernels, null);
    assert.equal(error?.message, "/x/tsvene.node lacks silu, tanh: it is out of date; run npm install to rebuild it");
    const whole: Platform = {
      ...fake,
      loadNativeAddon: () => ({ path: "/x/tsvene.node", exports: { ...partial, silu() {}, tanh() {} } }),
    };
    assert.equal(loadNativeKernels(whole).kernels?.name, "native");
    assert.match(loadNativeKernels(portablePlatform).error?.message ?? "", /no native addon/);
  });
});

describe("kernel choice on a platform without the addon", () => {
  /** Runs the kernel choice in a fresh process whose platform has no addon and TSVENE_KERNELS = `value`. */
  function choose(value: string | undefined): {
    name?: string;
    error?: string;
    warnings: string[];
    importWarnings: number;
  } {
    const platformUrl = new URL("../src/platform/index.js", import.meta.url).href;
    const kernelsUrl = new URL("../src/tensor/kernels/index.js", import.meta.url).href;
    const script = `
      const warnings = [];
      console.warn = (...args) => warnings.push(args.join(" "));
      const { setPlatform, portablePlatform } = await import(${JSON.stringify(platformUrl)});
      setPlatform({ ...portablePlatform, env: (n) => (n === "TSVENE_KERNELS" ? ${JSON.stringify(value)} : undefined) });
      const { kernels } = await import(${JSON.stringify(kernelsUrl)});
      const importWarnings = warnings.length;
      let result;
      try {
        const first = kernels();
        if (kernels() !== first) throw new Error("kernels() changed between calls");
        result = { name: first.name };
      } catch (error) {
        result = { error: error.message };
      }
      console.log(JSON.stringify({ ...result, warnings, importWarnings }));`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    return JSON.parse(run.stdout) as ReturnType<typeof choose>;
  }

  it("falls back to the TypeScript kernels with one warning, given when kernels are first chosen", () => {
    const unset = choose(undefined);
    assert.equal(unset.name, "js");
    assert.equal(unset.importWarnings, 0, "importing the core warns of nothing");
    assert.equal(unset.warnings.length, 1);
    assert.match(
      unset.warnings[0],
      new RegExp(
        "^tsvene: the native addon is unavailable \\(this platform has no native addon.*\\); " +
          "using the slower TypeScript kernels$",
      ),
    );
    assert.equal(choose("").name, "js");
  });

  it("TSVENE_KERNELS=js chooses them silently; =native and anything else are errors", () => {
    assert.deepEqual(choose("js"), { name: "js", warnings: [], importWarnings: 0 });
    assert.match(
      choose("native").error ?? "",
      new RegExp(
        "^TSVENE_KERNELS=native asks for the native kernels, but the addon is unavailable: " +
          "this platform has no native addon",
      ),
    );
    assert.match(choose("gpu").error ?? "", /TSVENE_KERNELS must be "js", "wasm" or "native", got "gpu"/);
  });
});

describe("io file helpers", () => {
  it("create, list, test, remove, and a temporary folder that goes away", async () => {
    let kept = "";
    const names = await withTemporaryFolder("tsvene-platform-", async (folder) => {
      kept = folder;
      const inner = joinPath(folder, "a", "b");
      await createFolder(inner);
      await createFolder(inner);
      await writeFile(joinPath(folder, "f.txt"), "x");
      assert.equal(await pathKind(inner), "folder");
      assert.equal(await pathKind(joinPath(folder, "f.txt")), "file");
      assert.equal(await pathKind(joinPath(folder, "none")), "none");
      assert.equal(await pathExists(joinPath(folder, "f.txt")), true);
      assert.equal(await pathExists(joinPath(folder, "f.txt", "below")), false);
      assert.equal(fileUrl(joinPath(folder, "f.txt")).protocol, "file:");
      await removeFile(joinPath(folder, "missing"));
      const listed = (await listFolder(folder)).sort();
      await removeFile(joinPath(folder, "f.txt"));
      assert.deepEqual(await listFolder(folder), ["a"]);
      return listed;
    });
    assert.deepEqual(names, ["a", "f.txt"]);
    assert.equal(existsSync(kept), false);
    await assert.rejects(
      withTemporaryFolder("tsvene-platform-", async (folder) => {
        kept = folder;
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.equal(existsSync(kept), false);
  });
});
