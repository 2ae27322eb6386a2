/**
 * The WebAssembly kernels (build/wasm/tsvene.wasm): the agreement suite against the TypeScript
 * kernels that the addon also passes, then sgemm across its blocking (partial tiles, more than one
 * k, m and n block, the one-row path, batches whose matrices share or overlap storage), the copies
 * into the module's memory, loading, the portable platform's bytes, and the default choice falling
 * to these kernels where the addon is missing. Skipped, saying why, where the module is not built.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { createPortablePlatform, type Platform, portablePlatform } from "../src/platform/index.js";
import { nodePlatform } from "../src/platform/node.js";
import { jsKernels, type Kernels, loadWasmKernels } from "../src/tensor/kernels/index.js";
import { describeAgreement } from "./support/kernel-agreement.js";
import { assertClose, f32, seededRandom, uniform } from "./support/kernel-helpers.js";

const WASM_PATH = nodePlatform.packagePath("build", "wasm", "tsvene.wasm");
const skip = existsSync(WASM_PATH) ? false : `${WASM_PATH} is not built (npm run build:wasm needs clang and lld)`;
const loaded = skip ? { kernels: null, error: null } : loadWasmKernels(nodePlatform);

describe("the WebAssembly module", { skip }, () => {
  it("loads from the Node platform as the kernel set named wasm", () => {
    assert.equal(loaded.error, null);
    assert.equal(loaded.kernels?.name, "wasm");
  });
});

describeAgreement("wasm", loaded.kernels, skip || (loaded.kernels ? false : "the module did not load (see above)"));

/** One sgemmBatch case: the storage layout of each operand, and the scalars. */
interface SgemmCase {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  beta: number;
  /** Extra row stride beyond the stored columns, per operand. */
  pad: [number, number, number];
  aOffsets: number[];
  bOffsets: number[];
  cOffsets: number[];
}

/** Runs `c` in both sets on the same random operands; checks the results and that A, B and C's gaps are untouched. */
function compareSgemm(wasm: Kernels, c: SgemmCase, seed: number): void {
  const random = seededRandom(seed);
  const [aRows, aCols] = c.transA ? [c.k, c.m] : [c.m, c.k];
  const [bRows, bCols] = c.transB ? [c.n, c.k] : [c.k, c.n];
  const [lda, ldb, ldc] = [aCols + c.pad[0], bCols + c.pad[1], c.n + c.pad[2]];
  const storage = (offsets: number[], rows: number, ld: number) =>
    uniform(random, Math.max(0, ...offsets) + rows * ld + 2, 1);
  const a = storage(c.aOffsets, aRows, lda);
  const b = storage(c.bOffsets, bRows, ldb);
  const cStart = storage(c.cOffsets, c.m, ldc);
  const [aBefore, bBefore] = [a.slice(), b.slice()];
  const run = (set: Kernels) => {
    const out = cStart.slice();
    set.sgemmBatch(
      c.transA,
      c.transB,
      c.m,
      c.n,
      c.k,
      c.alpha,
      a,
      lda,
      Int32Array.from(c.aOffsets),
      b,
      ldb,
      Int32Array.from(c.bOffsets),
      c.beta,
      out,
      ldc,
      Int32Array.from(c.cOffsets),
    );
    return out;
  };
  const label = `sgemm ${c.m}×${c.n}×${c.k} transA=${c.transA} transB=${c.transB} batch [${c.cOffsets}]`;
  const fromWasm = run(wasm);
  // Entries are sums of k products of magnitude ≤ 1 (float32 sums here, float64 in the reference).
  const atol = 1e-5 * (Math.abs(c.alpha) * c.k + Math.abs(c.beta)) * c.cOffsets.length;
  assertClose(fromWasm, run(jsKernels), { rtol: 1e-5, atol }, label);
  assert.deepEqual(a, aBefore, `${label}: A unchanged`);
  assert.deepEqual(b, bBefore, `${label}: B unchanged`);
  const written = new Uint8Array(cStart.length);
  for (const offset of c.cOffsets)
    for (let i = 0; i < c.m; i++) written.fill(1, offset + i * ldc, offset + i * ldc + c.n);
  written.forEach((w, i) => {
    if (!w) assert.equal(fromWasm[i], cStart[i], `${label}: wrote outside C at ${i}`);
  });
}

describe("WebAssembly sgemm", { skip: skip || !loaded.kernels }, () => {
  const wasm = loaded.kernels as Kernels;
  const single = { aOffsets: [0], bOffsets: [0], cOffsets: [0] };
  const flags = [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ];

  it("crosses every block and tile edge: m > 128, n > 2048, k > 256, none a multiple of the tile", () => {
    for (const [transA, transB] of flags) {
      compareSgemm(
        wasm,
        { transA, transB, m: 131, n: 2053, k: 259, alpha: 0.75, beta: 0.5, pad: [1, 3, 2], ...single },
        1,
      );
    }
  });

  it("one row (the matrix-vector path) and one column, with strides, alpha and beta", () => {
    let seed = 10;
    for (const [transA, transB] of flags) {
      for (const [m, n, k] of [
        [1, 1, 1],
        [1, 300, 37],
        [1, 13, 600],
        [5, 1, 9],
        [1, 7, 1],
      ]) {
        for (const [alpha, beta] of [
          [1, 0],
          [-1.5, 0.25],
        ]) {
          compareSgemm(wasm, { transA, transB, m, n, k, alpha, beta, pad: [2, 1, 3], ...single }, seed++);
        }
      }
    }
  });

  it("batches whose matrices share B, overlap in A and C, or lie far apart", () => {
    const m = 6;
    const n = 10;
    const k = 9;
    // A's matrices start 5 elements apart though each spans ~54 (overlap); B is one matrix for all;
    // C's matrices overlap by a row, which the batch computes in order as BLAS loops would.
    compareSgemm(
      wasm,
      {
        transA: false,
        transB: true,
        m,
        n,
        k,
        alpha: 1,
        beta: 0.5,
        pad: [0, 0, 0],
        aOffsets: [0, 5, 10],
        bOffsets: [7, 7, 7],
        cOffsets: [3, 3 + (m - 1) * n, 500],
      },
      20,
    );
    compareSgemm(
      wasm,
      {
        transA: true,
        transB: false,
        m,
        n,
        k,
        alpha: 2,
        beta: 0,
        pad: [1, 2, 1],
        aOffsets: [900, 0, 400],
        bOffsets: [0, 300, 150],
        cOffsets: [0, 200, 100],
      },
      21,
    );
  });

  it("beta = 0 ignores NaN in C, alpha = 0 and k = 0 read neither A nor B, an empty batch does nothing", () => {
    const one = new Int32Array([0]);
    const c = f32([NaN, NaN, NaN, NaN]);
    wasm.sgemmBatch(
      false,
      false,
      2,
      2,
      3,
      1,
      f32([1, 2, 3, 4, 5, 6]),
      3,
      one,
      f32([7, 8, 9, 10, 11, 12]),
      2,
      one,
      0,
      c,
      2,
      one,
    );
    assert.deepEqual(Array.from(c), [58, 64, 139, 154]);
    const scaled = f32([1, 2, 3, 4]);
    const nan = f32([NaN, NaN, NaN, NaN, NaN, NaN]);
    wasm.sgemmBatch(false, false, 2, 2, 3, 0, nan, 3, one, nan, 2, one, 2, scaled, 2, one);
    assert.deepEqual(Array.from(scaled), [2, 4, 6, 8]);
    wasm.sgemmBatch(false, false, 2, 2, 0, 1, f32([]), 0, one, f32([]), 2, one, 0.5, scaled, 2, one);
    assert.deepEqual(Array.from(scaled), [1, 2, 3, 4]);
    const none = new Int32Array(0);
    wasm.sgemmBatch(false, false, 2, 2, 3, 1, nan, 3, none, nan, 2, none, 0, scaled, 2, none);
    assert.deepEqual(Array.from(scaled), [1, 2, 3, 4]);
  });
});

describe("WebAssembly kernels and their memory", { skip: skip || !loaded.kernels }, () => {
  const wasm = loaded.kernels as Kernels;

  it("a call larger than the memory grows it, and the calls after it, small or large, still agree", () => {
    const random = seededRandom(30);
    const check = (rows: number, cols: number) => {
      const src = uniform(random, rows * cols + 3, 4);
      const dims = Int32Array.from([cols, rows]);
      const strides = Int32Array.from([1, cols]);
      const fromWasm = new Float32Array(rows * cols);
      const fromJs = new Float32Array(rows * cols);
      wasm.copyStrided(dims, src, 3, strides, fromWasm);
      jsKernels.copyStrided(dims, src, 3, strides, fromJs);
      assert.deepEqual(fromWasm, fromJs, `transpose ${rows}×${cols}`);
    };
    check(3, 5);
    check(2048, 2048 + 7); // 2 × 16 MiB, above the module's initial 3 MiB
    check(3, 5);
    check(1000, 999);
  });

  it("the backward row kernels write gradX over gradOut when they are the same array", () => {
    const random = seededRandom(31);
    const [rows, cols] = [4, 33];
    const x = uniform(random, rows * cols, 2);
    const weight = uniform(random, cols, 1);
    const gradOut = uniform(random, rows * cols, 1);
    const mean = new Float32Array(rows);
    const rstd = new Float32Array(rows);
    jsKernels.layerNormRows(x, weight, null, 1e-5, rows, cols, new Float32Array(rows * cols), mean, rstd);
    const expected = new Float32Array(rows * cols);
    jsKernels.layerNormRowsBackward(x, weight, mean, rstd, gradOut, rows, cols, expected, null, null);
    const inPlace = gradOut.slice();
    wasm.layerNormRowsBackward(x, weight, mean, rstd, inPlace, rows, cols, inPlace, null, null);
    assertClose(inPlace, expected, { rtol: 1e-6, atol: 1e-6 * Math.max(...rstd) }, "layerNorm gradX in place");
    jsKernels.rmsNormRowsBackward(x, weight, rstd, gradOut, rows, cols, expected, null);
    const rmsInPlace = gradOut.slice();
    wasm.rmsNormRowsBackward(x, weight, rstd, rmsInPlace, rows, cols, rmsInPlace, null);
    assertClose(rmsInPlace, expected, { rtol: 1e-6, atol: 1e-6 * Math.max(...rstd) }, "rmsNorm gradX in place");
  });
});

describe("loading the WebAssembly kernels", () => {
  it("a platform without the bytes, or with a module that lacks kernels, gives null and why", () => {
    const none = loadWasmKernels(portablePlatform);
    assert.equal(none.kernels, null);
    assert.match(none.error?.message ?? "", /^this platform was given no WebAssembly kernels/);
    // The smallest valid module: magic and version, no sections.
    const empty: Platform = {
      ...portablePlatform,
      wasmKernelBytes: () => Uint8Array.from([0, 97, 115, 109, 1, 0, 0, 0]),
    };
    assert.match(
      loadWasmKernels(empty).error?.message ?? "",
      /^the WebAssembly kernel module lacks sgemmBatch, .*rmsNormRowsBackward, heapBase, memory: it is out of date/,
    );
    const missingFile: Platform = {
      ...nodePlatform,
      wasmKernelBytes: () => {
        throw new Error("/x/tsvene.wasm does not exist");
      },
    };
    assert.equal(loadWasmKernels(missingFile).error?.message, "/x/tsvene.wasm does not exist");
  });

  it("createPortablePlatform takes the bytes (camelCase or snake_case) and refuses anything else", () => {
    const bytes = Uint8Array.from([1, 2, 3]);
    assert.equal(createPortablePlatform({ wasmKernelBytes: bytes }).wasmKernelBytes(), bytes);
    assert.equal(createPortablePlatform({ wasm_kernel_bytes: bytes } as never).wasmKernelBytes(), bytes);
    assert.throws(
      () => createPortablePlatform({ wasmKernelByte: bytes } as never),
      /^OptionError: createPortablePlatform: unknown option "wasmKernelByte" \(did you mean "wasmKernelBytes"\?\)/,
    );
    assert.throws(
      () => createPortablePlatform({ wasmKernelBytes: [0, 97] as never }),
      /^TypeError: createPortablePlatform: wasmKernelBytes must be a Uint8Array \(the bytes of build\/wasm\//,
    );
  });
});

describe("the default choice on a platform without the addon", () => {
  /** The kernel set chosen, and the warnings, in a fresh process whose platform has no addon. */
  function choose(withWasm: boolean): { name: string; warnings: string[] } {
    const platformUrl = new URL("../src/platform/index.js", import.meta.url).href;
    const kernelsUrl = new URL("../src/tensor/kernels/index.js", import.meta.url).href;
    const script = `
      import { readFileSync } from "node:fs";
      const warnings = [];
      console.warn = (...args) => warnings.push(args.join(" "));
      const { setPlatform, createPortablePlatform } = await import(${JSON.stringify(platformUrl)});
      const wasmKernelBytes = ${withWasm} ? readFileSync(${JSON.stringify(WASM_PATH)}) : undefined;
      setPlatform(createPortablePlatform({ wasmKernelBytes }));
      const { kernels } = await import(${JSON.stringify(kernelsUrl)});
      console.log(JSON.stringify({ name: kernels().name, warnings }));`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    return JSON.parse(run.stdout) as ReturnType<typeof choose>;
  }

  it("is the WebAssembly kernels when the platform has them, with one warning saying so", { skip }, () => {
    const { name, warnings } = choose(true);
    assert.equal(name, "wasm");
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      new RegExp(
        "^tsvene: the native addon is unavailable \\(this platform has no native addon.*\\); " +
          "using the WebAssembly kernels$",
      ),
    );
  });

  it("is the TypeScript kernels otherwise, the one warning giving both reasons", () => {
    const { name, warnings } = choose(false);
    assert.equal(name, "js");
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      new RegExp(
        "^tsvene: the native addon is unavailable \\(this platform has no native addon.*\\) and so are the " +
          "WebAssembly kernels \\(this platform was given no WebAssembly kernels.*\\); " +
          "using the slower TypeScript kernels$",
      ),
    );
  });
});
