/**
 * The addon's one-row products (decoding one token): sgemmBatch with m = 1 (native/gemv.c where
 * the CPU has AVX-512, else OpenBLAS's sgemv) against a float64 dot product, and bf16Gemm with
 * m = 1 against the same row of a several-row product and a float64 one of the bf16-rounded
 * operands, and on special values (subnormal, infinite and NaN operands) against the several-row
 * product, which takes another path. Skipped, saying why, where the addon (or AVX512-BF16, for bf16Gemm) is missing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nativeKernels, nativeLoadError } from "../src/tensor/kernels/index.js";
import { floatBitsToBfloat16 } from "../src/tensor/half.js";
import { seededRandom, uniform } from "./support/kernel-helpers.js";

const native = nativeKernels;
const skip = native ? false : `the addon did not load: ${nativeLoadError?.message}`;

/** Shapes [n, k]: odd sizes, n and k under one vector (16), several parts, the LM head's k. */
const SHAPES: [number, number][] = [
  [1, 1],
  [5, 3],
  [15, 17],
  [17, 15],
  [33, 1],
  [1, 40],
  [100, 7],
  [7, 100],
  [257, 129],
  [768, 768],
  [1000, 3072],
  [3072, 1000],
];

/** One matrix per operand, at offset 0. */
const ZERO = new Int32Array(1);

/** Float32 storage seen as float64. */
const widen = (values: Float32Array) => Float64Array.from(values);

describe("sgemmBatch, one row", { skip }, () => {
  for (const transB of [false, true]) {
    const layout = transB ? "B is n×k (y = B·x)" : "B is k×n (y = xᵀ·B)";
    it(`${layout}: within float32 rounding of the float64 product`, () => {
      const random = seededRandom(transB ? 11 : 12);
      for (const [n, k] of SHAPES) {
        for (const [alpha, beta, pad] of [
          [1, 0, 0],
          [1, 1, 3],
          [0.5, -0.25, 1],
        ]) {
          const ldb = (transB ? k : n) + pad;
          const a = uniform(random, k, 1);
          const b = uniform(random, (transB ? n : k) * ldb, 1);
          const start = beta === 0 ? new Float32Array(n + 1).fill(Number.NaN) : uniform(random, n + 1, 1);
          const c = start.slice();
          native!.sgemmBatch(false, transB, 1, n, k, alpha, a, k, ZERO, b, ldb, ZERO, beta, c, n, ZERO);
          const [a64, b64] = [widen(a), widen(b)];
          for (let j = 0; j < n; j++) {
            let sum = 0;
            let magnitude = 0;
            for (let i = 0; i < k; i++) {
              const product = a64[i] * (transB ? b64[j * ldb + i] : b64[i * ldb + j]);
              sum += product;
              magnitude += Math.abs(product);
            }
            const scaled = beta === 0 ? 0 : beta * start[j];
            const expected = alpha * sum + scaled;
            // Any order of float32 sums lies within (k + 2)·2^-24 of the magnitudes' sum: k
            // additions, then alpha and beta·C.
            const bound = (k + 2) * 2 ** -24 * (Math.abs(alpha) * magnitude + Math.abs(scaled));
            const err = Math.abs(c[j] - expected);
            assert.ok(err <= bound, `n ${n}, k ${k}, alpha ${alpha}, beta ${beta}, y[${j}]: error ${err} > ${bound}`);
          }
          assert.ok(Object.is(c[n], start[n]), `n ${n}, k ${k}: C past its row was written`);
        }
      }
    });
  }
});

/** Float32 values rounded to bf16 (to nearest even), as bits and as the floats they stand for. */
function toBf16(values: Float32Array): { bits: Uint16Array; values: Float64Array } {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const bits = Uint16Array.from(words, (word) => floatBitsToBfloat16(word));
  const widened = new Float32Array(new Uint32Array(Array.from(bits, (h) => h << 16)).buffer);
  return { bits, values: Float64Array.from(widened) };
}

/** bf16Gemm answers false, writing nothing, where the CPU has no AVX512-BF16. */
const bf16Runs = native?.bf16Gemm?.(false, 1, 1, 1, new Float32Array(1), new Uint16Array(1), 0, new Float32Array(1));
const bf16Skip = skip || (bf16Runs ? false : "this CPU has no AVX512-BF16");

describe("bf16Gemm, one row", { skip: bf16Skip }, () => {
  for (const transposeW of [false, true]) {
    const layout = transposeW ? "W is n×k" : "W is k×n";
    it(`${layout}: equals its row of a 40-row product and the float64 one to float32 rounding`, () => {
      const random = seededRandom(transposeW ? 21 : 22);
      const rows = 40;
      for (const [n, k] of SHAPES) {
        const w = toBf16(uniform(random, n * k, 1));
        const a = uniform(random, rows * k, 1);
        const a16 = toBf16(a).values;
        const many = new Float32Array(rows * n);
        assert.ok(native!.bf16Gemm!(transposeW, rows, n, k, a, w.bits, 0, many));
        for (const row of [0, rows - 1]) {
          const one = new Float32Array(n);
          assert.ok(native!.bf16Gemm!(transposeW, 1, n, k, a.subarray(row * k, (row + 1) * k), w.bits, 0, one));
          for (let j = 0; j < n; j++) {
            let sum = 0;
            let magnitude = 0;
            for (let i = 0; i < k; i++) {
              const product = a16[row * k + i] * w.values[transposeW ? j * k + i : i * n + j];
              sum += product;
              magnitude += Math.abs(product);
            }
            const bound = k * 2 ** -24 * magnitude;
            const label = `n ${n}, k ${k}, row ${row}, y[${j}]`;
            assert.ok(Math.abs(one[j] - sum) <= bound, `${label}: one row ${one[j]}, float64 ${sum}`);
            assert.ok(Math.abs(one[j] - many[row * n + j]) <= 2 * bound, `${label}: ${one[j]} vs ${many[row * n + j]}`);
          }
        }
      }
    });

    it(`${layout}: reads special values as the several-row product does (subnormals as zero, NaN, inf)`, () => {
      const [n, k] = [20, 6];
      // W[i][j] (k×n) or W[j][i] (n×k): a subnormal, the largest bf16 and an infinity among ones.
      const w = new Uint16Array(n * k).fill(0x3f80);
      const at = (i: number, j: number) => (transposeW ? j * k + i : i * n + j);
      w[at(0, 0)] = 0x0001;
      w[at(1, 0)] = 0x8040;
      w[at(2, 1)] = 0x7f80;
      w[at(3, 2)] = 0x7f7f;
      // x: a value that makes a subnormal weight's product count (2^100 · 2^-133), a NaN at i = 4.
      const x = Float32Array.of(2 ** 100, 2 ** 100, 1, 1, Number.NaN, 0.5);
      const one = new Float32Array(n);
      const two = new Float32Array(2 * n);
      assert.ok(native!.bf16Gemm!(transposeW, 1, n, k, x, w, 0, one));
      assert.ok(native!.bf16Gemm!(transposeW, 2, n, k, Float32Array.from([...x, ...x]), w, 0, two));
      assert.deepEqual([...one], [...two.subarray(0, n)]);
      assert.ok(
        one.every((v) => Number.isNaN(v)),
        "the NaN in x reaches every output",
      );
      x[4] = 1;
      assert.ok(native!.bf16Gemm!(transposeW, 1, n, k, x, w, 0, one));
      assert.ok(native!.bf16Gemm!(transposeW, 2, n, k, Float32Array.from([...x, ...x]), w, 0, two));
      assert.deepEqual([...one], [...two.subarray(0, n)]);
      assert.equal(one[0], 3.5, "the two subnormal weights count as zero");
      assert.equal(one[1], Number.POSITIVE_INFINITY);
    });
  }
});
