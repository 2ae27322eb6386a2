/**
 * The agreement suite a compiled kernel set (the native addon, the WebAssembly module) passes
 * against the TypeScript reference kernels, on random inputs with the tolerances of float32
 * rounding: every kernel function, awkward sizes, strides, broadcasting and special values.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jsKernels } from "../../src/tensor/kernels/index.js";
import type { Kernels } from "../../src/tensor/kernels/index.js";
import type { BinaryOp } from "../../src/tensor/kernels/types.js";
import {
  assertClose,
  assertSameValues,
  assertWithinUlps,
  BINARY_OPS,
  f32,
  i32,
  randomDims,
  randomView,
  seededRandom,
  stridedIndices,
  type StridedView,
  uniform,
  valuesWithSpecials,
} from "./kernel-helpers.js";

/** The suite for `tested`, skipped with the reason `skip` (then `tested` may be null). */
export function describeAgreement(name: Kernels["name"], tested: Kernels | null, skip: string | false): void {
  describe(`${name} kernels agree with the js kernels`, { skip }, () => {
    const candidate = tested as Kernels;

    it("sgemmBatch: transposes, awkward sizes, batches, wide strides, alpha and beta", () => {
      const random = seededRandom(1);
      const shapes = [
        [1, 1, 1],
        [1, 7, 5],
        [7, 1, 5],
        [6, 5, 1],
        [33, 65, 17],
        [64, 48, 96],
      ];
      const scalars = [
        [1, 0],
        [0.5, 2],
        [-1.5, 0.25],
      ];
      let checked = 0;
      for (const [m, n, k] of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const [alpha, beta] = scalars[checked++ % scalars.length];
            const batch = 3;
            const [aRows, aCols] = transA ? [k, m] : [m, k];
            const [bRows, bCols] = transB ? [n, k] : [k, n];
            // Row strides wider than the matrices, and gaps between the matrices of the batch.
            const lda = aCols + 2;
            const ldb = bCols + 1;
            const ldc = n + 3;
            const aOffsets = Int32Array.from({ length: batch }, (_, i) => 5 + i * (aRows * lda + 3));
            const bOffsets = Int32Array.from({ length: batch }, (_, i) => i * (bRows * ldb + 1));
            const cOffsets = Int32Array.from({ length: batch }, (_, i) => 2 + i * (m * ldc + 4));
            const a = uniform(random, aOffsets[batch - 1] + aRows * lda, 1);
            const b = uniform(random, bOffsets[batch - 1] + bRows * ldb, 1);
            const c = uniform(random, cOffsets[batch - 1] + m * ldc + 2, 1);
            const cTested = c.slice();
            const cJs = c.slice();
            candidate.sgemmBatch(
              transA,
              transB,
              m,
              n,
              k,
              alpha,
              a,
              lda,
              aOffsets,
              b,
              ldb,
              bOffsets,
              beta,
              cTested,
              ldc,
              cOffsets,
            );
            jsKernels.sgemmBatch(
              transA,
              transB,
              m,
              n,
              k,
              alpha,
              a,
              lda,
              aOffsets,
              b,
              ldb,
              bOffsets,
              beta,
              cJs,
              ldc,
              cOffsets,
            );
            // Entries are sums of k products of magnitude ≤ 1: scale the tolerance by k.
            const label = `sgemm ${m}×${n}×${k} transA=${transA} transB=${transB}`;
            assertClose(cTested, cJs, { rtol: 1e-5, atol: 1e-5 * (Math.abs(alpha) * k + Math.abs(beta)) }, label);
            // Padding and gaps are untouched (both are compared to the original there).
            const touched = new Uint8Array(c.length);
            for (const offset of cOffsets) {
              for (let i = 0; i < m; i++) touched.fill(1, offset + i * ldc, offset + i * ldc + n);
            }
            touched.forEach((t, i) => {
              if (!t) assert.equal(cTested[i], c[i], `${label}: wrote outside C at ${i}`);
            });
          }
        }
      }
    });

    it("sgemmBatch: beta = 0 ignores NaN in C, alpha = 0 ignores A and B, k = 0 scales C", () => {
      const one = new Int32Array([0]);
      const b = f32([7, 8, 9, 10, 11, 12]);
      const c = f32([NaN, NaN, NaN, NaN]);
      candidate.sgemmBatch(false, false, 2, 2, 3, 1, f32([1, 2, 3, 4, 5, 6]), 3, one, b, 2, one, 0, c, 2, one);
      assert.deepEqual(Array.from(c), [58, 64, 139, 154]);
      const scaled = f32([1, 2, 3, 4]);
      candidate.sgemmBatch(false, false, 2, 2, 3, 0, f32([NaN, 0, 0, 0, 0, 0]), 3, one, b, 2, one, 2, scaled, 2, one);
      assert.deepEqual(Array.from(scaled), [2, 4, 6, 8]);
      candidate.sgemmBatch(false, false, 2, 2, 0, 1, f32([]), 0, one, f32([]), 2, one, 3, scaled, 2, one);
      assert.deepEqual(Array.from(scaled), [6, 12, 18, 24]);
    });

    /** binaryStrided in both sets on the same operands: identical results, pow within 2 ulp. */
    function compareBinary(op: BinaryOp, dims: readonly number[], a: StridedView, b: StridedView, label: string): void {
      const size = dims.reduce((p, d) => p * d, 1);
      const outTested = new Float32Array(size);
      const outJs = new Float32Array(size);
      candidate.binaryStrided(op, i32(dims), a.data, a.offset, a.strides, b.data, b.offset, b.strides, outTested);
      jsKernels.binaryStrided(op, i32(dims), a.data, a.offset, a.strides, b.data, b.offset, b.strides, outJs);
      if (op === "pow") assertWithinUlps(outTested, outJs, 2, label);
      else assertSameValues(outTested, outJs, label);
    }

    it("binaryStrided: every op on random shapes of rank 0 to 5 with permuted, broadcast and offset operands", () => {
      const random = seededRandom(12);
      for (let trial = 0; trial < 600; trial++) {
        const dims = randomDims(random, trial % 6);
        const op = BINARY_OPS[Math.floor(trial / 6) % BINARY_OPS.length];
        // pow: bases and exponents of both signs, integral exponents among them (negative bases then
        // give finite results), magnitudes that reach overflow and underflow.
        const values =
          op === "pow"
            ? (length: number) =>
                valuesWithSpecials(random, 6, 0.05)(length).map((v) => (random() < 0.3 ? Math.round(v) : v))
            : valuesWithSpecials(random, 100, 0.05);
        const a = randomView(random, dims, random() < 0.7, values);
        const b = randomView(random, dims, random() < 0.7, values);
        compareBinary(op, dims, a, b, `${op} dims [${dims}] aStrides [${a.strides}] bStrides [${b.strides}]`);
      }
    });

    it("binaryStrided: each specialised stride pair on long rows, at unaligned offsets", () => {
      const random = seededRandom(13);
      const n = 1027;
      const values = valuesWithSpecials(random, 3, 0.01);
      for (const [as, bs] of [
        [1, 1],
        [1, 0],
        [0, 1],
        [0, 0],
        [2, 3],
        [3, 0],
      ]) {
        for (const op of BINARY_OPS) {
          // Two rows, so the second starts mid-array: [2, n] with row strides n·as + 1 (padding).
          const a: StridedView = { data: values(2 * (n * as + 1) + 3), offset: 3, strides: i32([n * as + 1, as]) };
          const b: StridedView = { data: values(2 * (n * bs + 1) + 1), offset: 1, strides: i32([n * bs + 1, bs]) };
          compareBinary(op, [2, n], a, b, `${op} strides (${as}, ${bs})`);
        }
      }
    });

    it("binaryStrided: NaN propagates through maximum from either side, in every stride case", () => {
      const n = 37;
      const withNaN = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? NaN : i - 18));
      const plain = Float32Array.from({ length: n }, (_, i) => 18 - i);
      for (const [as, bs] of [
        [1, 1],
        [1, 0],
        [0, 1],
        [2, 1],
      ]) {
        for (const [a, b] of [
          [withNaN, plain],
          [plain, withNaN],
        ]) {
          const out = new Float32Array(Math.ceil(n / 2));
          const dims = i32([out.length]);
          candidate.binaryStrided("maximum", dims, a, 0, i32([as]), b, 0, i32([bs]), out);
          const expected = new Float32Array(out.length);
          jsKernels.binaryStrided("maximum", dims, a, 0, i32([as]), b, 0, i32([bs]), expected);
          assertSameValues(out, expected, `maximum strides (${as}, ${bs})`);
          out.forEach((v, i) => {
            if (Number.isNaN(a[i * as]) || Number.isNaN(b[i * bs])) assert.ok(Number.isNaN(v), `maximum[${i}] is NaN`);
          });
        }
      }
    });

    it("binaryStrided works in place on contiguous operands", () => {
      const random = seededRandom(14);
      const x = uniform(random, 100, 3);
      const y = uniform(random, 100, 3);
      const expected = new Float32Array(100);
      candidate.binaryStrided("mul", i32([100]), x, 0, i32([1]), y, 0, i32([1]), expected);
      candidate.binaryStrided("mul", i32([100]), x, 0, i32([1]), y, 0, i32([1]), x);
      assert.deepEqual(x, expected);
    });

    it("copyStrided: random permutes, expands and slices of rank 0 to 5, and long rows", () => {
      const random = seededRandom(15);
      const check = (dims: readonly number[], src: StridedView, label: string) => {
        const size = dims.reduce((p, d) => p * d, 1);
        const outTested = new Float32Array(size);
        const outJs = new Float32Array(size);
        candidate.copyStrided(i32(dims), src.data, src.offset, src.strides, outTested);
        jsKernels.copyStrided(i32(dims), src.data, src.offset, src.strides, outJs);
        assertSameValues(outTested, outJs, label);
        assertSameValues(
          outJs,
          stridedIndices(dims, src.offset, src.strides).map((i) => src.data[i]),
          `${label} (definition)`,
        );
      };
      const values = valuesWithSpecials(random, 10, 0.05);
      for (let trial = 0; trial < 300; trial++) {
        const dims = randomDims(random, trial % 6);
        const src = randomView(random, dims, random() < 0.5, values);
        check(dims, src, `dims [${dims}] strides [${src.strides}] offset ${src.offset}`);
      }
      // Transposes of matrices that do not divide into tiles, batched; a wide broadcast; a long slice.
      for (const [rows, cols] of [
        [1, 300],
        [300, 1],
        [37, 53],
        [64, 64],
        [130, 9],
      ]) {
        const data = values(2 * rows * cols + 5);
        check([2, cols, rows], { data, offset: 5, strides: i32([rows * cols, 1, cols]) }, `transpose ${rows}×${cols}`);
      }
      check([1000, 3], { data: values(4), offset: 1, strides: i32([0, 1]) }, "broadcast rows");
      check([3, 1000], { data: values(4), offset: 1, strides: i32([1, 0]) }, "broadcast columns");
      check([3, 999], { data: values(3 * 1001), offset: 2, strides: i32([1001, 1]) }, "slice");
    });

    const special = [0, -0, 1e-30, -1e-30, Infinity, -Infinity, NaN, 88.5, -88.5, 89, -89, 104, -104];
    const unaryNames = ["geluTanh", "geluErf", "silu", "exp", "tanh", "relu"] as const;
    for (const name of unaryNames) {
      it(`${name} on sizes 1, 7 and 1000, scales up to ±100, and special values`, () => {
        const random = seededRandom(name.length);
        // The view checks that the set honours a typed array's byte offset.
        const inputs = [
          f32([0.3]),
          uniform(random, 7, 3),
          uniform(random, 1000, 5),
          uniform(random, 1000, 20),
          uniform(random, 1000, 100),
          f32(special),
          uniform(random, 20, 3).subarray(5, 12),
        ];
        for (const x of inputs) {
          const outTested = new Float32Array(x.length);
          const outJs = new Float32Array(x.length);
          candidate[name](x, outTested);
          jsKernels[name](x, outJs);
          // The atol covers subnormal results (|y| < 1.2e-38), which carry fewer bits.
          assertClose(outTested, outJs, { rtol: 1e-6, atol: 1e-37 }, `${name} (${x.length} values)`);
        }
      });
    }

    for (const name of ["geluTanhBackward", "geluErfBackward", "siluBackward", "reluBackward"] as const) {
      it(`${name} on sizes 1, 7 and 1000, and scales up to ±100`, () => {
        const random = seededRandom(name.length);
        const inputs = [
          f32([0.3]),
          uniform(random, 7, 3),
          uniform(random, 1000, 5),
          uniform(random, 1000, 20),
          uniform(random, 1000, 100),
        ];
        for (const x of inputs) {
          const gradOut = uniform(random, x.length, 2);
          const gradTested = new Float32Array(x.length);
          const gradJs = new Float32Array(x.length);
          candidate[name](x, gradOut, gradTested);
          jsKernels[name](x, gradOut, gradJs);
          // The derivatives cross zero (e.g. near x = −0.75), where only absolute accuracy means anything.
          const atol = gradOut.map((g) => 1e-6 * Math.abs(g));
          assertClose(gradTested, gradJs, { rtol: 1e-6, atol }, `${name} (${x.length} values)`);
        }
      });
    }

    it("select takes a where cond ≠ 0 (NaN included) and b where it is ±0; relu keeps NaN", () => {
      const cond = f32([1, 0, NaN, -0, -2, Infinity, 0]);
      const a = f32([10, 11, 12, 13, 14, 15, NaN]);
      const b = f32([20, 21, 22, 23, 24, 25, 26]);
      const out = new Float32Array(cond.length);
      candidate.select(cond, a, b, out);
      assert.deepEqual([...out], [10, 21, 12, 23, 14, 15, 26]);
      const long = uniform(seededRandom(5), 1001, 3);
      const picked = new Float32Array(long.length);
      candidate.select(
        long.map((v) => (v > 0 ? 1 : 0)),
        long,
        new Float32Array(long.length),
        picked,
      );
      const relu = new Float32Array(long.length);
      candidate.relu(long, relu);
      assert.deepEqual(
        [...relu],
        [...picked].map((v) => v + 0),
      );
      const special = f32([NaN, -0, -Infinity, Infinity, -1e-30, 1e-30]);
      const reluSpecial = new Float32Array(special.length);
      candidate.relu(special, reluSpecial);
      assert.deepEqual([...reluSpecial], [NaN, 0, 0, Infinity, 0, 1e-30].map(Math.fround));
    });

    it("elementwise kernels work in place", () => {
      const x = uniform(seededRandom(3), 100, 4);
      const expected = new Float32Array(x.length);
      candidate.geluTanh(x, expected);
      const inPlace = x.slice();
      candidate.geluTanh(inPlace, inPlace);
      assert.deepEqual(inPlace, expected);
    });

    it("softmaxRows and its backward, with −inf masks and large magnitudes", () => {
      const random = seededRandom(4);
      for (const [rows, cols] of [
        [1, 1],
        [3, 7],
        [16, 128],
        [4, 1000],
      ]) {
        for (const scale of [1, 20, 100]) {
          const x = uniform(random, rows * cols, scale);
          // A causal mask on the first rows, and one row masked entirely (which gives NaN).
          for (let r = 0; r < rows; r++) for (let j = r + 1; j < cols; j++) if (r < 3) x[r * cols + j] = -Infinity;
          if (rows > 2) x.fill(-Infinity, 2 * cols, 3 * cols);
          const yTested = new Float32Array(rows * cols);
          const yJs = new Float32Array(rows * cols);
          candidate.softmaxRows(x, rows, cols, yTested);
          jsKernels.softmaxRows(x, rows, cols, yJs);
          const label = `softmax ${rows}×${cols} scale ${scale}`;
          assertClose(yTested, yJs, { rtol: 1e-6, atol: 1e-37 }, label);

          const y = yJs.map((v) => (Number.isNaN(v) ? 0 : v));
          const gradOut = uniform(random, rows * cols, 1);
          const gradTested = new Float32Array(rows * cols);
          const gradJs = new Float32Array(rows * cols);
          candidate.softmaxRowsBackward(y, gradOut, rows, cols, gradTested);
          jsKernels.softmaxRowsBackward(y, gradOut, rows, cols, gradJs);
          // y·(g − Σg·y) cancels inside the bracket: allow error relative to y·max|g|.
          assertClose(gradTested, gradJs, { rtol: 1e-6, atol: y.map((v) => 1e-6 * v) }, `${label} backward`);
        }
      }
    });

    it("softmaxRows works in place", () => {
      const x = uniform(seededRandom(5), 3 * 10, 5);
      const expected = new Float32Array(x.length);
      candidate.softmaxRows(x, 3, 10, expected);
      candidate.softmaxRows(x, 3, 10, x);
      assert.deepEqual(x, expected);
    });

    it("attentionSoftmax: causal and windowed masks, padding, divisors, more keys than queries, in place", () => {
      const random = seededRandom(16);
      const lowest = -3.4028234663852886e38;
      for (const [batch, heads, queries, keys, window, divisor] of [
        [1, 1, 1, 1, 0, 1],
        [2, 3, 5, 5, 0, 8],
        [2, 2, 3, 9, 0, 2.8284271247461903],
        [3, 4, 7, 7, 3, 1],
        [1, 2, 1, 40, 0, 0.5],
        [2, 12, 32, 32, 0, 8],
      ]) {
        const x = uniform(random, batch * heads * queries * keys, 30);
        // Padding: real keys 0, padded ones float32's lowest (as GPT-2's padding mask), example 0 unpadded.
        const padding = Float32Array.from({ length: batch * keys }, (_, i) =>
          i >= keys && random() < 0.3 ? lowest : 0,
        );
        for (const pad of [null, padding]) {
          const outTested = new Float32Array(x.length);
          const outJs = new Float32Array(x.length);
          candidate.attentionSoftmax(x, batch, heads, queries, keys, divisor, window, pad, outTested);
          jsKernels.attentionSoftmax(x, batch, heads, queries, keys, divisor, window, pad, outJs);
          const label =
            `attentionSoftmax [${batch}, ${heads}, ${queries}, ${keys}] window ${window} ` +
            `divisor ${divisor} padding ${pad !== null}`;
          assertClose(outTested, outJs, { rtol: 1e-6, atol: 1e-37 }, label);
          const inPlace = x.slice();
          candidate.attentionSoftmax(inPlace, batch, heads, queries, keys, divisor, window, pad, inPlace);
          assertSameValues(inPlace, outTested, `${label} in place`);
        }
      }
    });

    it("layerNormRows, rmsNormRows and their backwards, with and without weight and bias", () => {
      const random = seededRandom(6);
      for (const [rows, cols] of [
        [1, 1],
        [3, 7],
        [5, 768],
      ]) {
        for (const offset of [0, 30]) {
          for (const affine of [false, true]) {
            const label = `${rows}×${cols} offset ${offset} affine=${affine}`;
            // A large offset makes the mean dominate the spread: the two-pass variance must hold.
            const x = uniform(random, rows * cols, 2).map((v) => v + offset);
            const weight = affine ? uniform(random, cols, 2) : null;
            const bias = affine ? uniform(random, cols, 1) : null;
            const gradOut = uniform(random, rows * cols, 1);
            const eps = 1e-5;
            const run = (set: Kernels) => {
              const out = new Float32Array(rows * cols);
              const mean = new Float32Array(rows);
              const rstd = new Float32Array(rows);
              set.layerNormRows(x, weight, bias, eps, rows, cols, out, mean, rstd);
              const gradX = new Float32Array(rows * cols);
              const gradWeight = affine ? new Float32Array(cols).fill(0.5) : null;
              const gradBias = affine ? new Float32Array(cols).fill(-0.5) : null;
              set.layerNormRowsBackward(x, weight, mean, rstd, gradOut, rows, cols, gradX, gradWeight, gradBias);
              const rmsOut = new Float32Array(rows * cols);
              const rmsRstd = new Float32Array(rows);
              set.rmsNormRows(x, weight, eps, rows, cols, rmsOut, rmsRstd);
              const rmsGradX = new Float32Array(rows * cols);
              const rmsGradWeight = affine ? new Float32Array(cols).fill(0.5) : null;
              set.rmsNormRowsBackward(x, weight, rmsRstd, gradOut, rows, cols, rmsGradX, rmsGradWeight);
              return { out, mean, rstd, gradX, gradWeight, gradBias, rmsOut, rmsRstd, rmsGradX, rmsGradWeight };
            };
            const n = run(candidate);
            const j = run(jsKernels);
            // Normalised values are O(1)·weight; gradients O(rstd·|g|·|w|), summed over rows for weight.
            const maxRstd = Math.max(...j.rstd, ...j.rmsRstd);
            const scale = 1e-6 * maxRstd * (affine ? 2 : 1);
            assertClose(n.out, j.out, { rtol: 1e-6, atol: 1e-6 * (affine ? 4 : 1) }, `layerNorm out ${label}`);
            assertClose(n.mean, j.mean, { rtol: 1e-7 }, `layerNorm mean ${label}`);
            assertClose(n.rstd, j.rstd, { rtol: 1e-7 }, `layerNorm rstd ${label}`);
            assertClose(n.gradX, j.gradX, { rtol: 1e-6, atol: scale }, `layerNorm gradX ${label}`);
            if (n.gradWeight && j.gradWeight) {
              assertClose(
                n.gradWeight,
                j.gradWeight,
                { rtol: 1e-6, atol: 1e-6 * rows },
                `layerNorm gradWeight ${label}`,
              );
            }
            if (n.gradBias && j.gradBias) {
              assertClose(n.gradBias, j.gradBias, { rtol: 1e-6, atol: 1e-6 * rows }, `layerNorm gradBias ${label}`);
            }
            assertClose(n.rmsOut, j.rmsOut, { rtol: 1e-6, atol: 1e-6 * (affine ? 2 : 1) }, `rmsNorm out ${label}`);
            assertClose(n.rmsRstd, j.rmsRstd, { rtol: 1e-7 }, `rmsNorm rstd ${label}`);
            assertClose(n.rmsGradX, j.rmsGradX, { rtol: 1e-6, atol: scale }, `rmsNorm gradX ${label}`);
            if (n.rmsGradWeight && j.rmsGradWeight) {
              assertClose(
                n.rmsGradWeight,
                j.rmsGradWeight,
                { rtol: 1e-6, atol: 1e-6 * rows },
                `rmsNorm gradWeight ${label}`,
              );
            }
          }
        }
      }
    });
  });
}
