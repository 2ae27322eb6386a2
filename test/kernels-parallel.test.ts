/**
 * The native addon splits large elementwise, strided and row kernels into parts on its thread pool.
 * Every element must come out as the unsplit kernel computes it: here each large call is compared
 * with the same kernel called on pieces too small to be split (elementwise and row kernels), or with
 * the TypeScript kernels where both sets are exact (add, copies).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jsKernels, nativeKernels } from "../src/tensor/kernels/index.js";
import { seededRandom, uniform } from "./support/kernel-helpers.js";

const native = nativeKernels;
/** Comfortably above the addon's two-part threshold (2^16 elements), and not a multiple of a part. */
const LARGE = 300_007;
/** Below it: such a call runs whole on the calling thread. */
const PIECE = 4_099;

function random(n: number, seed: number): Float32Array {
  return uniform(seededRandom(seed), n, 4);
}

/** `compute` over `n` elements in pieces of PIECE, each on subarrays of the inputs and output. */
function inPieces(n: number, compute: (start: number, end: number) => void): void {
  for (let start = 0; start < n; start += PIECE) compute(start, Math.min(n, start + PIECE));
}

describe("native kernels split over the thread pool", { skip: native === null && "no native addon" }, () => {
  const k = native!;

  for (const name of ["geluTanh", "geluErf", "silu", "exp", "tanh", "relu"] as const) {
    it(`${name} on ${LARGE} elements equals the kernel on small pieces`, () => {
      const x = random(LARGE, name.length);
      const whole = new Float32Array(LARGE);
      k[name](x, whole);
      const pieces = new Float32Array(LARGE);
      inPieces(LARGE, (s, e) => k[name](x.subarray(s, e), pieces.subarray(s, e)));
      assert.deepEqual(whole, pieces);
    });
  }

  for (const name of ["geluTanhBackward", "geluErfBackward", "siluBackward", "reluBackward"] as const) {
    it(`${name} on ${LARGE} elements equals the kernel on small pieces`, () => {
      const x = random(LARGE, name.length);
      const g = random(LARGE, name.length + 1);
      const whole = new Float32Array(LARGE);
      k[name](x, g, whole);
      const pieces = new Float32Array(LARGE);
      inPieces(LARGE, (s, e) => k[name](x.subarray(s, e), g.subarray(s, e), pieces.subarray(s, e)));
      assert.deepEqual(whole, pieces);
    });
  }

  it("an in-place unary kernel on a large array gives what it gives out of place", () => {
    const x = random(LARGE, 3);
    const expected = new Float32Array(LARGE);
    k.geluTanh(x, expected);
    k.geluTanh(x, x);
    assert.deepEqual(x, expected);
  });

  it("binaryStrided on large flat, row-broadcast and transposed layouts equals the TypeScript kernel", () => {
    const rows = 389;
    const cols = 771;
    const a = random(rows * cols, 5);
    const b = random(rows * cols, 6);
    const bias = random(cols, 7);
    const dims = Int32Array.of(rows, cols);
    const layouts: [Float32Array, Int32Array][] = [
      [b, Int32Array.of(cols, 1)],
      [bias, Int32Array.of(0, 1)],
      [b, Int32Array.of(1, rows)],
    ];
    for (const op of ["add", "mul", "sub", "div"] as const) {
      for (const [operand, strides] of layouts) {
        const got = new Float32Array(rows * cols);
        k.binaryStrided(op, dims, a, 0, Int32Array.of(cols, 1), operand, 0, strides, got);
        const expected = new Float32Array(rows * cols);
        jsKernels.binaryStrided(op, dims, a, 0, Int32Array.of(cols, 1), operand, 0, strides, expected);
        assert.deepEqual(got, expected, `${op}, strides [${strides.join(", ")}]`);
      }
    }
  });

  it("copyStrided on large broadcast rows, offset views, transposes and permutes equals the TypeScript kernel", () => {
    const src = random(400_000, 8);
    const cases: [number[], number, number[]][] = [
      [[512, 768], 5, [0, 1]],
      [[300, 1000], 17, [1000, 1]],
      [[700, 500], 0, [1, 700]],
      [[8, 32, 12, 64], 3, [24_576, 64, 2048, 1]],
    ];
    for (const [dims, offset, strides] of cases) {
      const size = dims.reduce((p, d) => p * d, 1);
      const got = new Float32Array(size);
      k.copyStrided(Int32Array.from(dims), src, offset, Int32Array.from(strides), got);
      const expected = new Float32Array(size);
      jsKernels.copyStrided(Int32Array.from(dims), src, offset, Int32Array.from(strides), expected);
      assert.deepEqual(got, expected, `dims [${dims.join(", ")}]`);
    }
  });

  it("layerNormRows on many rows equals the kernel on a few rows at a time", () => {
    const rows = 401;
    const cols = 768;
    const x = random(rows * cols, 9);
    const weight = random(cols, 10);
    const bias = random(cols, 11);
    const whole = { out: new Float32Array(rows * cols), mean: new Float32Array(rows), rstd: new Float32Array(rows) };
    k.layerNormRows(x, weight, bias, 1e-5, rows, cols, whole.out, whole.mean, whole.rstd);
    const pieces = { out: new Float32Array(rows * cols), mean: new Float32Array(rows), rstd: new Float32Array(rows) };
    for (let r = 0; r < rows; r += 5) {
      const n = Math.min(5, rows - r);
      k.layerNormRows(
        x.subarray(r * cols, (r + n) * cols),
        weight,
        bias,
        1e-5,
        n,
        cols,
        pieces.out.subarray(r * cols, (r + n) * cols),
        pieces.mean.subarray(r, r + n),
        pieces.rstd.subarray(r, r + n),
      );
    }
    assert.deepEqual(whole, pieces);
  });

  it("attentionSoftmax over a large batch (padding, window) equals the kernel one batch entry at a time", () => {
    const [batch, heads, queries, keys] = [11, 12, 24, 40];
    const entry = heads * queries * keys;
    const x = random(batch * entry, 12);
    const padding = Float32Array.from({ length: batch * keys }, (_, i) => (i % 7 === 0 ? -3.4e38 : 0));
    for (const window of [0, 9]) {
      const whole = new Float32Array(batch * entry);
      k.attentionSoftmax(x, batch, heads, queries, keys, 8, window, padding, whole);
      const pieces = new Float32Array(batch * entry);
      for (let b = 0; b < batch; b++) {
        k.attentionSoftmax(
          x.subarray(b * entry, (b + 1) * entry),
          1,
          heads,
          queries,
          keys,
          8,
          window,
          padding.subarray(b * keys, (b + 1) * keys),
          pieces.subarray(b * entry, (b + 1) * entry),
        );
      }
      assert.deepEqual(whole, pieces, `window ${window}`);
    }
  });
});
