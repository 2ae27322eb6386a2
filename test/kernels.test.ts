/**
 * The kernel layer: the TypeScript kernels against float64 hand computations, the native kernels
 * against the TypeScript ones on random inputs (test/support/kernel-agreement.ts; the WebAssembly
 * kernels' run is in kernels-wasm.test.ts), argument checking in every set, and kernel selection.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { platform } from "../src/platform/index.js";
import {
  jsKernels,
  kernels,
  loadWasmKernels,
  nativeKernels,
  nativeLoadError,
  setKernels,
} from "../src/tensor/kernels/index.js";
import type { Kernels } from "../src/tensor/kernels/index.js";
import type { BinaryOp } from "../src/tensor/kernels/types.js";
import { describeAgreement } from "./support/kernel-agreement.js";
import {
  assertClose,
  assertSameValues,
  BINARY_OPS,
  binaryReference,
  f32,
  FLOAT32_ROUNDING,
  i32,
  layerNorm64,
  numericGradient,
  randomDims,
  randomView,
  rmsNorm64,
  seededRandom,
  softmax64,
  stridedIndices,
  type Tolerance,
  uniform,
  valuesWithSpecials,
} from "./support/kernel-helpers.js";

/** The WebAssembly kernels where build/wasm/tsvene.wasm is built (kernels-wasm.test.ts tests them). */
const wasmKernels = loadWasmKernels(platform()).kernels;
/** Every kernel set this machine has, the TypeScript one first. */
const SETS = [jsKernels, nativeKernels, wasmKernels].filter((set): set is Kernels => set !== null);

// ---------------------------------------------------------------------------------------------

describe("js kernels against float64 hand computations", () => {
  const a = [1, 2, 3, 4, 5, 6]; // 2×3
  const b = [7, 8, 9, 10, 11, 12]; // 3×2
  const aT = [1, 4, 2, 5, 3, 6]; // A stored transposed (3×2)
  const bT = [7, 9, 11, 8, 10, 12]; // B stored transposed (2×3)
  const one = new Int32Array([0]);

  it("sgemmBatch: a 2×3 by 3×2 product in all four transpose layouts, with alpha and beta", () => {
    for (const [transA, transB] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const c = f32([1, 1, 1, 1]);
      jsKernels.sgemmBatch(
        transA,
        transB,
        2,
        2,
        3,
        2,
        f32(transA ? aT : a),
        transA ? 2 : 3,
        one,
        f32(transB ? bT : b),
        transB ? 3 : 2,
        one,
        0.5,
        c,
        2,
        one,
      );
      // 2·[[58, 64], [139, 154]] + 0.5
      assert.deepEqual(Array.from(c), [116.5, 128.5, 278.5, 308.5], `transA=${transA} transB=${transB}`);
    }
  });

  it("sgemmBatch: batched offsets and row strides wider than the matrices", () => {
    // Two copies of A with lda = 4 (one padding column) at offsets 0 and 8; C with ldc = 3.
    const aPadded = f32([1, 2, 3, -1, 4, 5, 6, -1, 1, 2, 3, -1, 4, 5, 6, -1]);
    const c = new Float32Array(12).fill(-7);
    jsKernels.sgemmBatch(
      false,
      false,
      2,
      2,
      3,
      1,
      aPadded,
      4,
      new Int32Array([0, 8]),
      f32(b),
      2,
      new Int32Array([0, 0]),
      0,
      c,
      3,
      new Int32Array([0, 6]),
    );
    assert.deepEqual(Array.from(c), [58, 64, -7, 139, 154, -7, 58, 64, -7, 139, 154, -7]);
  });

  it("sgemmBatch: beta = 0 ignores NaN in C, alpha = 0 ignores A and B, k = 0 scales C", () => {
    const c = f32([NaN, NaN, NaN, NaN]);
    jsKernels.sgemmBatch(false, false, 2, 2, 3, 1, f32(a), 3, one, f32(b), 2, one, 0, c, 2, one);
    assert.deepEqual(Array.from(c), [58, 64, 139, 154]);
    const scaled = f32([1, 2, 3, 4]);
    jsKernels.sgemmBatch(
      false,
      false,
      2,
      2,
      3,
      0,
      f32([NaN, 0, 0, 0, 0, 0]),
      3,
      one,
      f32(b),
      2,
      one,
      2,
      scaled,
      2,
      one,
    );
    assert.deepEqual(Array.from(scaled), [2, 4, 6, 8]);
    jsKernels.sgemmBatch(false, false, 2, 2, 0, 1, f32([]), 0, one, f32([]), 2, one, 3, scaled, 2, one);
    assert.deepEqual(Array.from(scaled), [6, 12, 18, 24]);
  });

  // Exact values from mpmath (30 digits).
  const points = [-5, -3, -1, 0, 0.5, 1, 3];
  const unaryCases: { name: "geluTanh" | "geluErf" | "silu"; values: number[]; derivatives: number[] }[] = [
    {
      name: "geluTanh",
      values: [
        -2.291796196629506e-7, -0.0036373920817730188, -0.1588080093917233, 0, 0.34571400982514392, 0.8411919906082767,
        2.996362607918227,
      ],
      derivatives: [
        -1.5463619875325946e-6, -0.011584166630969726, -0.082964083845782555, 0.5, 0.86736990353464231,
        1.0829640838457826, 1.0115841666309697,
      ],
    },
    {
      name: "geluErf",
      values: [
        -1.4332578593959696e-6, -0.0040496940948902836, -0.15865525393145705, 0, 0.34573123063700655,
        0.84134474606854295, 2.9959503059051097,
      ],
      derivatives: [
        -7.1469460017922946e-6, -0.011945647204183927, -0.083315470587686298, 0.5, 0.86749512465616284,
        1.0833154705876863, 1.0119456472041839,
      ],
    },
    {
      name: "silu",
      values: [
        -0.033464254621424278, -0.14227761953270034, -0.26894142136999512, 0, 0.31122966560092728, 0.73105857863000488,
        2.8577223804672997,
      ],
      derivatives: [
        -0.026547432429665919, -0.088104106015169617, 0.072329488128513268, 0.5, 0.73996118730265181,
        0.92767051187148673, 1.0881041060151696,
      ],
    },
  ];
  for (const { name, values, derivatives } of unaryCases) {
    it(`${name} and its backward at known points, to float32 rounding`, () => {
      const out = new Float32Array(points.length);
      jsKernels[name](f32(points), out);
      assertClose(out, values, FLOAT32_ROUNDING, name);
      const gradIn = new Float32Array(points.length);
      const gradOut = new Float32Array(points.length).fill(1);
      jsKernels[`${name}Backward`](f32(points), gradOut, gradIn);
      assertClose(gradIn, derivatives, { rtol: 1e-7, atol: 1e-45 }, `${name}Backward`);
    });
  }

  it("binaryStrided: [[3], [-2]] op [2, 0.5, -4] for each op, through explicit offsets and strides", () => {
    // a is the column [[3], [-2]] stored every other element from offset 1; b the row [2, 0.5, -4].
    const a = f32([99, 3, 99, -2]);
    const b = f32([2, 0.5, -4]);
    const expected: Record<BinaryOp, number[]> = {
      add: [5, 3.5, -1, 0, -1.5, -6],
      sub: [1, 2.5, 7, -4, -2.5, 2],
      mul: [6, 1.5, -12, -4, -1, 8],
      div: [1.5, 6, -0.75, -1, -4, 0.5],
      pow: [9, Math.sqrt(3), 1 / 81, 4, NaN, 1 / 16],
      maximum: [3, 3, 3, 2, 0.5, -2],
    };
    for (const op of BINARY_OPS) {
      const out = new Float32Array(6);
      jsKernels.binaryStrided(op, i32([2, 3]), a, 1, i32([2, 0]), b, 0, i32([0, 1]), out);
      assertClose(out, expected[op], FLOAT32_ROUNDING, op);
    }
  });

  it("binaryStrided: a scalar (dims []), an empty shape, and a wide general stride", () => {
    const out = new Float32Array(1);
    jsKernels.binaryStrided("sub", i32([]), f32([0, 0, 7]), 2, i32([]), f32([2]), 0, i32([]), out);
    assert.deepEqual(Array.from(out), [5]);
    // Nothing is read for an empty shape, so no stride can be out of bounds.
    jsKernels.binaryStrided(
      "add",
      i32([0, 4]),
      f32([]),
      0,
      i32([100, 100]),
      f32([]),
      3,
      i32([9, 9]),
      new Float32Array(0),
    );
    const wide = new Float32Array(3);
    jsKernels.binaryStrided(
      "mul",
      i32([3]),
      f32([1, 0, 0, 2, 0, 0, 3]),
      0,
      i32([3]),
      f32([5, 6, 7]),
      0,
      i32([1]),
      wide,
    );
    assert.deepEqual(Array.from(wide), [5, 12, 21]);
  });

  it("binaryStrided: maximum lets NaN through from either side, and keeps a at ties", () => {
    const out = new Float32Array(5);
    jsKernels.binaryStrided(
      "maximum",
      i32([5]),
      f32([NaN, 1, NaN, -0, 0]),
      0,
      i32([1]),
      f32([1, NaN, NaN, 0, -0]),
      0,
      i32([1]),
      out,
    );
    assertSameValues(out, [NaN, NaN, NaN, -0, 0], "maximum");
  });

  it("binaryStrided: pow follows C where Math.pow does not (pow(1, NaN) = pow(-1, ±inf) = 1)", () => {
    const out = new Float32Array(6);
    jsKernels.binaryStrided(
      "pow",
      i32([6]),
      f32([1, -1, -1, NaN, 2, 0]),
      0,
      i32([1]),
      f32([NaN, Infinity, -Infinity, 0, NaN, -1]),
      0,
      i32([1]),
      out,
    );
    assertSameValues(out, [1, 1, 1, 1, NaN, Infinity], "pow");
  });

  it("binaryStrided: add, sub, mul and div round like float32 arithmetic", () => {
    // 1 + 2^-24 is a tie in float32 (rounds to even: 1); 1 + 2^-23 + 2^-24 rounds up.
    const out = new Float32Array(2);
    jsKernels.binaryStrided("add", i32([2]), f32([1, 1 + 2 ** -23]), 0, i32([1]), f32([2 ** -24]), 0, i32([0]), out);
    assert.deepEqual(Array.from(out), [1, 1 + 2 ** -22]);
    jsKernels.binaryStrided("div", i32([2]), f32([1, 2]), 0, i32([1]), f32([3]), 0, i32([0]), out);
    assert.deepEqual(Array.from(out), [Math.fround(1 / 3), Math.fround(2 / 3)]);
  });

  it("copyStrided: transpose, expand, slice with an offset, and a scalar", () => {
    const m = f32([1, 2, 3, 4, 5, 6]); // 2×3
    const transposed = new Float32Array(6);
    jsKernels.copyStrided(i32([3, 2]), m, 0, i32([1, 3]), transposed);
    assert.deepEqual(Array.from(transposed), [1, 4, 2, 5, 3, 6]);
    const expanded = new Float32Array(6);
    jsKernels.copyStrided(i32([2, 3]), f32([1, 2, 3]), 0, i32([0, 1]), expanded);
    assert.deepEqual(Array.from(expanded), [1, 2, 3, 1, 2, 3]);
    const grid = Float32Array.from({ length: 16 }, (_, i) => i); // 4×4
    const slice = new Float32Array(4);
    jsKernels.copyStrided(i32([2, 2]), grid, 5, i32([4, 1]), slice);
    assert.deepEqual(Array.from(slice), [5, 6, 9, 10]);
    const scalar = new Float32Array(1);
    jsKernels.copyStrided(i32([]), grid, 11, i32([]), scalar);
    assert.deepEqual(Array.from(scalar), [11]);
    // A [2, 3, 2] block read as [3, 2, 2] (a permute whose middle dims stay contiguous).
    const permuted = new Float32Array(12);
    jsKernels.copyStrided(i32([3, 2, 2]), grid, 0, i32([2, 6, 1]), permuted);
    assert.deepEqual(Array.from(permuted), [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
  });

  it("binaryStrided and copyStrided match the per-element definition on random layouts", () => {
    const random = seededRandom(11);
    for (let trial = 0; trial < 300; trial++) {
      const dims = randomDims(random, trial % 6);
      const values = valuesWithSpecials(random, 4, 0.05);
      const a = randomView(random, dims, true, values);
      const b = randomView(random, dims, true, values);
      const aIndices = stridedIndices(dims, a.offset, a.strides);
      const bIndices = stridedIndices(dims, b.offset, b.strides);
      const op = BINARY_OPS[trial % BINARY_OPS.length];
      const out = new Float32Array(aIndices.length);
      jsKernels.binaryStrided(op, i32(dims), a.data, a.offset, a.strides, b.data, b.offset, b.strides, out);
      const expected = aIndices.map((ai, i) => Math.fround(binaryReference(op, a.data[ai], b.data[bIndices[i]])));
      assertSameValues(out, expected, `${op} dims [${dims}]`);
      const copy = new Float32Array(aIndices.length);
      jsKernels.copyStrided(i32(dims), a.data, a.offset, a.strides, copy);
      assertSameValues(
        copy,
        aIndices.map((ai) => a.data[ai]),
        `copy dims [${dims}]`,
      );
    }
  });

  it("geluErf keeps relative accuracy far into the negative tail", () => {
    const out = new Float32Array(1);
    jsKernels.geluErf(f32([-10]), out);
    assertClose(out, [-7.6198530241605261e-23], FLOAT32_ROUNDING, "geluErf(-10)");
  });

  it("exp and tanh", () => {
    const x = f32([-3, -1, 0.5, 2]);
    const out = new Float32Array(4);
    jsKernels.exp(x, out);
    assertClose(
      out,
      [0.049787068367863943, 0.36787944117144232, 1.6487212707001281, 7.3890560989306502],
      FLOAT32_ROUNDING,
      "exp",
    );
    jsKernels.tanh(x, out);
    assertClose(
      out,
      [-0.99505475368673045, -0.76159415595576489, 0.46211715726000976, 0.96402758007581688],
      FLOAT32_ROUNDING,
      "tanh",
    );
  });

  it("softmaxRows, with −inf entries and a fully masked row", () => {
    const out = new Float32Array(9);
    jsKernels.softmaxRows(f32([1, 2, 3, 0, -Infinity, 0, -Infinity, -Infinity, -Infinity]), 3, 3, out);
    assertClose(
      out.subarray(0, 6),
      [0.090030573170380458, 0.24472847105479765, 0.66524095577482189, 0.5, 0, 0.5],
      FLOAT32_ROUNDING,
      "softmax",
    );
    assert.ok(out.subarray(6).every(Number.isNaN), "a row of −inf gives NaN, as in PyTorch");
  });

  it("attentionSoftmax: divide, mask causally (and by window), add padding, softmax", () => {
    const lowest = -3.4028234663852886e38;
    // 2 queries at the last 2 of 4 key positions, 1 head, 2 examples; example 1 pads key 0.
    const x = f32([1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, -5, -6, -7, -8]);
    const padding = f32([0, 0, 0, 0, lowest, 0, 0, 0]);
    const expectedRow = (values: number[]) => Array.from(softmax64(Float64Array.from(values), 1, values.length));
    const out = new Float32Array(16);
    jsKernels.attentionSoftmax(x, 2, 1, 2, 4, 2, 0, padding, out);
    assertClose(
      out,
      [
        ...expectedRow([0.5, 1, 1.5, lowest]),
        ...expectedRow([2.5, 3, 3.5, 4]),
        // Key 0 is padding: its score plus float32's lowest; the future key's lowest plus 0.
        ...expectedRow([-0.5 + lowest, -1, -1.5, lowest]),
        ...expectedRow([-2.5 + lowest, -3, -3.5, -4]),
      ],
      FLOAT32_ROUNDING,
      "causal with padding",
    );
    // A window of 2: each query sees itself and the key before it.
    jsKernels.attentionSoftmax(x, 1, 2, 2, 4, 1, 2, null, out);
    assertClose(
      out,
      [
        ...expectedRow([lowest, 2, 3, lowest]),
        ...expectedRow([lowest, lowest, 7, 8]),
        ...expectedRow([lowest, -2, -3, lowest]),
        ...expectedRow([lowest, lowest, -7, -8]),
      ],
      FLOAT32_ROUNDING,
      "window",
    );
    // The one visible key is padding: it still takes all the weight (lowest beats lowest + lowest = −inf);
    // once its own sum overflows to −inf too, the row is NaN, as in HF.
    const single = new Float32Array(1);
    jsKernels.attentionSoftmax(f32([1]), 1, 1, 1, 1, 1, 0, f32([lowest]), single);
    assert.equal(single[0], 1);
    jsKernels.attentionSoftmax(f32([-1e38]), 1, 1, 1, 1, 1, 0, f32([lowest]), single);
    assert.ok(Number.isNaN(single[0]));
  });

  it("softmaxRowsBackward", () => {
    const gradIn = new Float32Array(3);
    jsKernels.softmaxRowsBackward(f32([0.25, 0.25, 0.5]), f32([1, 0, 0]), 1, 3, gradIn);
    assert.deepEqual(Array.from(gradIn), [0.1875, -0.0625, -0.125]);
  });

  it("layerNormRows and rmsNormRows on [1, 2, 3, 4]", () => {
    const out = new Float32Array(4);
    const mean = new Float32Array(1);
    const rstd = new Float32Array(1);
    jsKernels.layerNormRows(f32([1, 2, 3, 4]), null, null, 0, 1, 4, out, mean, rstd);
    // mean 2.5, biased variance 1.25
    assertClose(
      out,
      [-1.3416407864998738, -0.4472135954999579, 0.4472135954999579, 1.3416407864998738],
      FLOAT32_ROUNDING,
      "layerNorm",
    );
    assert.equal(mean[0], 2.5);
    assertClose(rstd, [1 / Math.sqrt(1.25)], FLOAT32_ROUNDING, "layerNorm rstd");
    jsKernels.layerNormRows(f32([1, 2, 3, 4]), f32([1, 2, 3, 4]), f32([0.5, 0.5, 0.5, 0.5]), 0, 1, 4, out, mean, rstd);
    assertClose(
      out,
      [-0.8416407864998738, -0.3944271909999158, 1.8416407864998738, 5.866563145999495],
      FLOAT32_ROUNDING,
      "layerNorm with weight and bias",
    );
    jsKernels.rmsNormRows(f32([1, 2, 3, 4]), f32([1, 1, 1, 2]), 0, 1, 4, out, rstd);
    const r = 1 / Math.sqrt(7.5);
    assertClose(out, [r, 2 * r, 3 * r, 8 * r], FLOAT32_ROUNDING, "rmsNorm");
    assertClose(rstd, [r], FLOAT32_ROUNDING, "rmsNorm rstd");
  });

  it("backward kernels match central differences of float64 forwards", () => {
    const random = seededRandom(7);
    const rows = 3;
    const cols = 5;
    const x = uniform(random, rows * cols, 2);
    const gradOut = uniform(random, rows * cols, 1);
    const weight = uniform(random, cols, 1.5);
    const bias = uniform(random, cols, 1);
    const eps = 1e-5;
    const tolerance: Tolerance = { rtol: 1e-5, atol: 1e-6 };

    for (const withWeight of [false, true]) {
      const w = withWeight ? weight : null;
      const mean = new Float32Array(rows);
      const rstd = new Float32Array(rows);
      jsKernels.layerNormRows(x, w, bias, eps, rows, cols, new Float32Array(rows * cols), mean, rstd);
      const gradX = new Float32Array(rows * cols);
      const gradWeight = w ? f32([0.5, 0, 0, 0, 0]) : null; // accumulated into, so start from non-zero
      const gradBias = f32([0.25, 0, 0, 0, 0]);
      jsKernels.layerNormRowsBackward(x, w, mean, rstd, gradOut, rows, cols, gradX, gradWeight, gradBias);
      const w64 = w && Float64Array.from(w);
      const b64 = Float64Array.from(bias);
      assertClose(
        gradX,
        numericGradient(x, gradOut, (v) => layerNorm64(v, w64, b64, eps, rows, cols)),
        tolerance,
        "layerNorm gradX",
      );
      if (w && gradWeight) {
        const expected = numericGradient(w, gradOut, (v) => layerNorm64(Float64Array.from(x), v, b64, eps, rows, cols));
        expected[0] += 0.5;
        assertClose(gradWeight, expected, tolerance, "layerNorm gradWeight");
      }
      const expectedBias = numericGradient(bias, gradOut, (v) =>
        layerNorm64(Float64Array.from(x), w64, v, eps, rows, cols),
      );
      expectedBias[0] += 0.25;
      assertClose(gradBias, expectedBias, tolerance, "layerNorm gradBias");

      jsKernels.rmsNormRows(x, w, eps, rows, cols, new Float32Array(rows * cols), rstd);
      const rmsGradWeight = w ? new Float32Array(cols) : null;
      jsKernels.rmsNormRowsBackward(x, w, rstd, gradOut, rows, cols, gradX, rmsGradWeight);
      assertClose(
        gradX,
        numericGradient(x, gradOut, (v) => rmsNorm64(v, w64, eps, rows, cols)),
        tolerance,
        "rmsNorm gradX",
      );
      if (w && rmsGradWeight) {
        assertClose(
          rmsGradWeight,
          numericGradient(w, gradOut, (v) => rmsNorm64(Float64Array.from(x), v, eps, rows, cols)),
          tolerance,
          "rmsNorm gradWeight",
        );
      }
    }

    const y = new Float32Array(rows * cols);
    jsKernels.softmaxRows(x, rows, cols, y);
    const gradIn = new Float32Array(rows * cols);
    jsKernels.softmaxRowsBackward(y, gradOut, rows, cols, gradIn);
    assertClose(
      gradIn,
      numericGradient(x, gradOut, (v) => softmax64(v, rows, cols)),
      tolerance,
      "softmax gradIn",
    );
  });
});

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------

describeAgreement(
  "native",
  nativeKernels,
  nativeKernels ? false : `native addon not built: ${nativeLoadError?.message}`,
);

// ---------------------------------------------------------------------------------------------

describe("argument checks", () => {
  const one = new Int32Array([0]);
  const x = new Float32Array(6);
  const badCalls: [string, (k: Kernels) => void, ErrorConstructor, RegExp][] = [
    [
      "a Float64Array",
      (k) => k.geluTanh(new Float64Array(6) as unknown as Float32Array, x),
      TypeError,
      /^geluTanh: x must be a Float32Array$/,
    ],
    [
      "a short output",
      (k) => k.silu(x, new Float32Array(5)),
      RangeError,
      /^silu: out has 5 elements; expected x\.length = 6$/,
    ],
    ["a short gradIn", (k) => k.geluErfBackward(x, x, new Float32Array(7)), RangeError, /gradIn has 7 elements/],
    [
      "rows·cols not matching",
      (k) => k.softmaxRows(x, 2, 4, new Float32Array(8)),
      RangeError,
      /^softmaxRows: x has 6 elements; expected rows\*cols = 8$/,
    ],
    [
      "a fractional size",
      (k) => k.softmaxRows(x, 1.5, 4, x),
      RangeError,
      /rows must be an integer in \[0, 2\^31\), got 1\.5/,
    ],
    [
      "a negative size",
      (k) => k.rmsNormRows(x, null, 1e-5, -1, 6, x, new Float32Array(1)),
      RangeError,
      /rows must be an integer/,
    ],
    [
      "a wrong weight length",
      (k) => k.layerNormRows(x, new Float32Array(2), null, 1e-5, 2, 3, x, f32([0, 0]), f32([0, 0])),
      RangeError,
      /^layerNormRows: weight has 2 elements; expected cols = 3$/,
    ],
    [
      "undefined for an optional array",
      (k) => k.rmsNormRows(x, undefined as unknown as null, 1e-5, 2, 3, x, f32([0, 0])),
      TypeError,
      /weight must be a Float32Array or null/,
    ],
    [
      "a short rstd",
      (k) => k.rmsNormRowsBackward(x, null, f32([1]), x, 2, 3, x, null),
      RangeError,
      /rstd has 1 elements; expected rows = 2/,
    ],
    [
      "more queries than keys",
      (k) => k.attentionSoftmax(x, 1, 1, 3, 2, 1, 0, null, x),
      RangeError,
      /^attentionSoftmax: queries \(3\) must not exceed keys \(2\): the queries are the last keys positions$/,
    ],
    [
      "scores not matching their shape",
      (k) => k.attentionSoftmax(x, 1, 2, 2, 2, 1, 0, null, x),
      RangeError,
      /^attentionSoftmax: x has 6 elements; expected batch\*heads\*queries\*keys = 8$/,
    ],
    [
      "a padding mask of the wrong length",
      (k) => k.attentionSoftmax(x, 2, 1, 1, 3, 1, 0, new Float32Array(3), x),
      RangeError,
      /^attentionSoftmax: padding has 3 elements; expected batch\*keys = 6$/,
    ],
    [
      "a negative window",
      (k) => k.attentionSoftmax(x, 1, 1, 2, 3, 1, -1, null, x),
      RangeError,
      /^attentionSoftmax: window must be an integer in \[0, 2\^31\), got -1$/,
    ],
    [
      "a non-number divisor",
      (k) => k.attentionSoftmax(x, 1, 1, 2, 3, "8" as unknown as number, 0, null, x),
      TypeError,
      /^attentionSoftmax: divisor must be a number$/,
    ],
    [
      "a non-boolean transpose flag",
      (k) => k.sgemmBatch(0 as unknown as boolean, false, 2, 2, 2, 1, x, 2, one, x, 2, one, 0, x, 2, one),
      TypeError,
      /transA must be a boolean/,
    ],
    [
      "A too short for a batch entry",
      (k) =>
        k.sgemmBatch(
          false,
          false,
          2,
          2,
          2,
          1,
          x,
          2,
          new Int32Array([0, 3]),
          x,
          2,
          new Int32Array([0, 0]),
          0,
          x,
          2,
          new Int32Array([0, 0]),
        ),
      RangeError,
      /^sgemmBatch: a is too short for matrix 1: offset 3 \+ extent 4 > length 6$/,
    ],
    [
      "a negative offset",
      (k) => k.sgemmBatch(false, false, 2, 2, 2, 1, x, 2, one, x, 2, new Int32Array([-1]), 0, x, 2, one),
      RangeError,
      /bOffsets\[0\] is negative/,
    ],
    [
      "lda below the columns",
      (k) => k.sgemmBatch(true, false, 3, 2, 2, 1, x, 2, one, x, 2, one, 0, x, 2, one),
      RangeError,
      /^sgemmBatch: lda must be at least 3 \(the columns of the stored a\), got 2$/,
    ],
    [
      "offset arrays of different lengths",
      (k) => k.sgemmBatch(false, false, 1, 1, 1, 1, x, 1, one, x, 1, new Int32Array(2), 0, x, 1, one),
      RangeError,
      /must have the same length, got 1, 2 and 1/,
    ],
    [
      "an unknown binary op",
      (k) => k.binaryStrided("min" as BinaryOp, i32([6]), x, 0, i32([1]), x, 0, i32([1]), x),
      RangeError,
      /^binaryStrided: op must be one of "add", "sub", "mul", "div", "pow", "maximum"$/,
    ],
    [
      "a binary op with a NUL after a valid name",
      (k) => k.binaryStrided("add\0" as BinaryOp, i32([6]), x, 0, i32([1]), x, 0, i32([1]), x),
      RangeError,
      /^binaryStrided: op must be one of/,
    ],
    [
      "a non-string binary op",
      (k) => k.binaryStrided(0 as unknown as BinaryOp, i32([6]), x, 0, i32([1]), x, 0, i32([1]), x),
      TypeError,
      /^binaryStrided: op must be a string$/,
    ],
    [
      "dims that are not an Int32Array",
      (k) => k.copyStrided([6] as unknown as Int32Array, x, 0, i32([1]), x),
      TypeError,
      /^copyStrided: dims must be an Int32Array$/,
    ],
    [
      "a negative dim",
      (k) => k.copyStrided(i32([3, -2]), x, 0, i32([1, 1]), x),
      RangeError,
      /^copyStrided: dims\[1\] is negative \(-2\)$/,
    ],
    [
      "dims whose product is above 2^53",
      (k) => k.copyStrided(i32([65536, 65536, 65536, 65536]), x, 0, i32([0, 0, 0, 0]), x),
      RangeError,
      /^copyStrided: the product of dims is above 2\^53$/,
    ],
    [
      "strides of another rank than dims",
      (k) => k.binaryStrided("add", i32([2, 3]), x, 0, i32([3, 1]), x, 0, i32([1]), x),
      RangeError,
      /^binaryStrided: bStrides has 1 elements; expected dims\.length = 2$/,
    ],
    [
      "a negative stride",
      (k) => k.binaryStrided("add", i32([2, 3]), x, 5, i32([-3, 1]), x, 0, i32([3, 1]), x),
      RangeError,
      /^binaryStrided: aStrides\[0\] is negative \(-3\)$/,
    ],
    [
      "an output of the wrong length",
      (k) => k.binaryStrided("add", i32([2, 2]), x, 0, i32([2, 1]), x, 0, i32([2, 1]), x),
      RangeError,
      /^binaryStrided: out has 6 elements; expected the product of dims = 4$/,
    ],
    [
      "strides that read past the end of a",
      (k) => k.binaryStrided("mul", i32([2, 3]), x, 0, i32([3, 2]), x, 0, i32([3, 1]), x),
      RangeError,
      /^binaryStrided: a is too short: aOffset \+ sum\(\(dims\[d\] - 1\) \* aStrides\[d\]\) = 7, but a has 6 elements$/,
    ],
    [
      "an offset that reads past the end of b",
      (k) => k.binaryStrided("pow", i32([2, 3]), x, 0, i32([3, 1]), f32([1, 2, 3]), 1, i32([0, 1]), x),
      RangeError,
      /^binaryStrided: b is too short: bOffset \+ sum\(\(dims\[d\] - 1\) \* bStrides\[d\]\) = 3, but b has 3 elements$/,
    ],
    [
      "a broadcast operand too short for its offset",
      (k) => k.binaryStrided("maximum", i32([6]), x, 0, i32([1]), f32([1]), 1, i32([0]), x),
      RangeError,
      /^binaryStrided: b is too short: .* = 1, but b has 1 elements$/,
    ],
    [
      "strides that read past the end of src",
      (k) => k.copyStrided(i32([3, 2]), x, 1, i32([1, 3]), x),
      RangeError,
      new RegExp(
        "^copyStrided: src is too short: srcOffset \\+ sum\\(\\(dims\\[d\\] - 1\\) \\* srcStrides\\[d\\]\\) = 6, " +
          "but src has 6 elements$",
      ),
    ],
    [
      "a huge stride",
      (k) => k.copyStrided(i32([2, 3]), x, 0, i32([0x7fffffff, 1]), x),
      RangeError,
      /^copyStrided: src is too short: .* = 2147483649, but src has 6 elements$/,
    ],
    [
      "a fractional offset",
      (k) => k.copyStrided(i32([6]), x, 0.5, i32([1]), x),
      RangeError,
      /^copyStrided: srcOffset must be an integer in \[0, 2\^31\), got 0\.5$/,
    ],
  ];
  for (const [what, call, errorClass, message] of badCalls) {
    it(`rejects ${what} with the same error in every kernel set`, () => {
      const snapshot = x.slice();
      for (const k of SETS)
        assert.throws(
          () => call(k),
          (e: unknown) => e instanceof errorClass && message.test((e as Error).message),
          k.name,
        );
      assert.deepEqual(x, snapshot, "nothing was written");
    });
  }
});

describe("strided kernels accept what reads nothing out of bounds", () => {
  it("an empty shape reads nothing, so any offset and stride pass", () => {
    for (const k of SETS) {
      k.binaryStrided("div", i32([3, 0]), f32([]), 7, i32([1000, 1000]), f32([1]), 0, i32([0, 0]), new Float32Array(0));
      k.copyStrided(i32([0]), f32([]), 7, i32([5]), new Float32Array(0));
    }
  });
  it("the last element of each array is reachable", () => {
    for (const k of SETS) {
      const out = new Float32Array(4);
      k.copyStrided(i32([2, 2]), f32([0, 1, 2, 3, 4, 5, 6, 7]), 2, i32([3, 2]), out);
      assert.deepEqual(Array.from(out), [2, 4, 5, 7], k.name);
    }
  });
});

describe("kernel selection", () => {
  it("setKernels switches the active set, and refuses native or wasm when it is not loaded", () => {
    const before = kernels();
    try {
      setKernels("js");
      assert.equal(kernels(), jsKernels);
      if (nativeKernels) {
        setKernels("native");
        assert.equal(kernels(), nativeKernels);
      } else {
        assert.throws(() => setKernels("native"), /addon is unavailable/);
      }
      if (wasmKernels) {
        setKernels("wasm");
        assert.equal(kernels().name, "wasm");
      } else {
        assert.throws(() => setKernels("wasm"), /asks for the WebAssembly kernels, but they are unavailable/);
      }
      assert.throws(
        () => setKernels("gpu" as never),
        /^Error: setKernels: name must be "js", "wasm" or "native", got "gpu"$/,
      );
    } finally {
      setKernels(before.name);
    }
  });

  it("TSVENE_KERNELS chooses the default set", () => {
    const moduleUrl = new URL("../src/tensor/kernels/index.js", import.meta.url).href;
    const script = `import { kernels } from ${JSON.stringify(moduleUrl)}; console.log(kernels().name);`;
    const run = (value: string) =>
      spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, TSVENE_KERNELS: value },
        encoding: "utf8",
      });
    const js = run("js");
    assert.equal(js.stdout.trim(), "js");
    assert.equal(js.stderr, "", "no warning when js is asked for");
    assert.match(run("gpu").stderr, /TSVENE_KERNELS must be "js", "wasm" or "native", got "gpu"/);
    if (nativeKernels) assert.equal(run("native").stdout.trim(), "native");
    else assert.match(run("native").stderr, /TSVENE_KERNELS=native asks for the native kernels/);
    const wasm = run("wasm");
    if (wasmKernels) assert.deepEqual([wasm.stdout.trim(), wasm.stderr], ["wasm", ""], "wasm, without a warning");
    else assert.match(wasm.stderr, /TSVENE_KERNELS=wasm asks for the WebAssembly kernels/);
  });
});
