/**
 * The prebuilt addon (scripts/prebuild.ts), built into a temporary folder: it needs neither
 * OpenBLAS nor gfortran from the system, carries no Node ABI version, loads in a fresh Node and
 * multiplies like the TypeScript kernels; platform/node.ts falls back to it without a source build.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { findPackageRoot, loadNativeAddonFrom } from "../src/platform/node.js";
import { jsKernels } from "../src/tensor/kernels/index.js";
import { assertClose, seededRandom, uniform } from "./support/kernel-helpers.js";

const ROOT = findPackageRoot();
const PLATFORM_FOLDER = `${process.platform}-${process.arch}`;

function whyNotBuildable(): string | false {
  if (process.platform !== "linux") return `the prebuilt addon is built on Linux only, not ${process.platform}`;
  const found = spawnSync(process.env.CC ?? "cc", ["-print-file-name=libopenblas.a"], { encoding: "utf8" });
  const path = found.status === 0 ? found.stdout.trim() : "";
  return isAbsolute(path) && existsSync(path) ? false : "libopenblas.a is not installed (Debian: libopenblas-dev)";
}

function run(command: string, args: string[], input?: string): string {
  const result = spawnSync(command, args, { encoding: "utf8", input, maxBuffer: 1 << 26 });
  assert.equal(result.status, 0, `${command} ${args.join(" ")}: ${result.error?.message ?? result.stderr}`);
  return result.stdout;
}

/** One sgemm through the addon at `addon`, loaded by a child Node: C = A·op(B) as numbers. */
const CHILD_SGEMM = `
const request = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const { m, n, k, transB } = request;
const c = new Float32Array(m * n);
const zero = new Int32Array([0]);
require(process.argv[1]).sgemmBatch(false, transB, m, n, k, 1, new Float32Array(request.a), k, zero,
  new Float32Array(request.b), transB ? k : n, zero, 0, c, n, zero);
process.stdout.write(JSON.stringify(Array.from(c)));
`;

describe("the prebuilt addon", { skip: whyNotBuildable() }, () => {
  let folder = "";
  let addon = "";

  before(() => {
    folder = mkdtempSync(join(tmpdir(), "tsvene-prebuild-test-"));
    run(process.execPath, [join(ROOT, "dist", "scripts", "prebuild.js"), "--out", join(folder, "out")]);
    addon = join(folder, "out", PLATFORM_FOLDER, "tsvene.node");
  });
  after(() => rmSync(folder, { recursive: true, force: true }));

  it("lies at <out>/<platform>-<arch>/tsvene.node and needs no OpenBLAS or gfortran of the system", () => {
    const libraries = run("ldd", [addon]);
    assert.match(libraries, /libc\.so\.6/);
    assert.doesNotMatch(libraries, /openblas|gfortran|not found/i);
  });

  it("exports N-API's entry point and no Node ABI version", () => {
    const exported = run("nm", ["-D", "--defined-only", addon]);
    assert.match(exported, / napi_register_module_v1$/m);
    assert.doesNotMatch(exported, /node_register_module_v\d/);
  });

  it("loads in a fresh Node, and its sgemm and sgemv agree with the TypeScript kernels", () => {
    const random = seededRandom(12);
    for (const [m, n, k, transB] of [
      [96, 80, 300, false],
      [1, 50, 64, true],
    ] as const) {
      const a = uniform(random, m * k, 1);
      const b = uniform(random, k * n, 1);
      const request = JSON.stringify({ m, n, k, transB, a: Array.from(a), b: Array.from(b) });
      const prebuilt = new Float32Array(JSON.parse(run(process.execPath, ["-e", CHILD_SGEMM, addon], request)));
      const typescript = new Float32Array(m * n);
      const zero = new Int32Array([0]);
      jsKernels.sgemmBatch(false, transB, m, n, k, 1, a, k, zero, b, transB ? k : n, zero, 0, typescript, n, zero);
      // Each float32 sum of k products lies within k·2⁻²⁴·Σ|a||b| of the exact one: twice that apart.
      const slack = new Float64Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let magnitude = 0;
          for (let p = 0; p < k; p++) magnitude += Math.abs(a[i * k + p] * b[transB ? j * k + p : p * n + j]);
          slack[i * n + j] = 2 * k * 2 ** -24 * magnitude;
        }
      }
      assertClose(prebuilt, typescript, { rtol: 0, atol: slack }, `${m}×${n}×${k} transB=${transB}`);
    }
  });

  it("is what platform/node.ts loads without a source build; a source build that loads comes first", () => {
    const root = (name: string, files: { source?: "addon" | "broken"; prebuilt?: boolean }) => {
      const path = join(folder, name);
      const place = (file: string, what: "addon" | "broken") => {
        mkdirSync(dirname(file), { recursive: true });
        if (what === "addon") symlinkSync(addon, file);
        else writeFileSync(file, "not a shared library");
      };
      const source = join(path, "build", "Release", "tsvene.node");
      const prebuilt = join(path, "prebuilds", PLATFORM_FOLDER, "tsvene.node");
      mkdirSync(path, { recursive: true });
      if (files.source) place(source, files.source);
      if (files.prebuilt) place(prebuilt, "addon");
      return { path, source, prebuilt };
    };
    const onlyPrebuilt = root("only-prebuilt", { prebuilt: true });
    const loaded = loadNativeAddonFrom(onlyPrebuilt.path);
    assert.equal(loaded.path, onlyPrebuilt.prebuilt);
    assert.equal(typeof loaded.exports.sgemmBatch, "function");

    const both = root("both", { source: "addon", prebuilt: true });
    assert.equal(loadNativeAddonFrom(both.path).path, both.source);

    const brokenSource = root("broken-source", { source: "broken", prebuilt: true });
    assert.equal(loadNativeAddonFrom(brokenSource.path).path, brokenSource.prebuilt);

    const neither = root("neither", {});
    assert.throws(
      () => loadNativeAddonFrom(neither.path),
      (error: Error) =>
        error.message.includes(`${neither.source} does not exist`) &&
        error.message.includes(`${neither.prebuilt} does not exist`) &&
        error.message.endsWith("run npm install to build it"),
    );
    const onlyBroken = root("only-broken", { source: "broken" });
    assert.throws(
      () => loadNativeAddonFrom(onlyBroken.path),
      (error: Error) =>
        error.message.includes(`${onlyBroken.source} does not load (`) &&
        error.message.includes(`${onlyBroken.prebuilt} does not exist`),
    );
  });
});
