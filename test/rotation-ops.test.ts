/**
 * matrixExp and skewFromLowerTriangle are single recorded ops standing for chains of add, mul,
 * matmul, transpose and sub. The chains, written here with those ops, are the truth: values and
 * gradients must agree bit for bit, so DAS training (W2) follows the same trajectory.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tv from "../src/index.js";
import { skewFromLowerTriangle } from "../src/tensor/ops/linalg.js";
import { gradcheck, leaf } from "./support/gradcheck.js";

/** exp(A) by scaling and squaring with a degree-12 Taylor polynomial, one recorded op per step. */
function composedMatrixExp(a: tv.Tensor): tv.Tensor {
  const n = a.shape[a.rank - 1];
  let norm = 0;
  for (let base = 0; base < a.size; base += n * n) {
    for (let j = 0; j < n; j++) {
      let column = 0;
      for (let i = 0; i < n; i++) column += Math.abs(a.data[base + i * n + j]);
      norm = Math.max(norm, column);
    }
  }
  const squarings = norm > 0.5 ? Math.ceil(Math.log2(norm / 0.5)) : 0;
  const scaled = tv.mul(a, 1 / 2 ** squarings);
  const eye = tv.zeros([n, n]);
  for (let i = 0; i < n; i++) eye.data[i * n + i] = 1;
  let result = eye;
  for (let k = 12; k >= 1; k--) result = tv.add(eye, tv.mul(tv.matmul(scaled, result), 1 / k));
  for (let s = 0; s < squarings; s++) result = tv.matmul(result, result);
  return result;
}

function composedSkew(theta: tv.Tensor): tv.Tensor {
  const n = theta.shape[theta.rank - 1];
  const lower = tv.zeros([n, n]);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) lower.data[i * n + j] = 1;
  const lowerTheta = tv.mul(theta, lower);
  return tv.sub(lowerTheta, tv.transpose(lowerTheta));
}

/** Output and input gradient of f at x (a fresh leaf each time), for upstream gradient `weights`. */
function valueAndGradient(f: (x: tv.Tensor) => tv.Tensor, x: tv.Tensor, weights: tv.Tensor): [number[], number[]] {
  const input = x.detach().clone().requireGrad();
  const out = f(input);
  out.backward(weights);
  return [[...out.data], [...(input.grad as tv.Tensor).data]];
}

function sameBits(f: (x: tv.Tensor) => tv.Tensor, reference: (x: tv.Tensor) => tv.Tensor, x: tv.Tensor): void {
  const weights = tv.randn(x.shape, { generator: new tv.Generator(99) });
  const [value, gradient] = valueAndGradient(f, x, weights);
  const [expectedValue, expectedGradient] = valueAndGradient(reference, x, weights);
  assert.deepEqual(value, expectedValue);
  assert.deepEqual(gradient, expectedGradient);
}

describe("matrixExp as one op", () => {
  it("matches the op-by-op evaluation bit for bit, without squaring", () => {
    const a = tv.randn([16, 16], { generator: new tv.Generator(1), std: 0.02 });
    sameBits(tv.matrixExp, composedMatrixExp, a);
  });
  it("matches it with squarings, on a skew-symmetric 16×16 as DAS trains", () => {
    const theta = tv.randn([16, 16], { generator: new tv.Generator(2), std: 0.4 });
    const skew = tv.sub(theta, tv.transpose(theta));
    sameBits(tv.matrixExp, composedMatrixExp, skew);
  });
  it("matches it on a batch of matrices", () => {
    sameBits(tv.matrixExp, composedMatrixExp, tv.randn([2, 3, 5, 5], { generator: new tv.Generator(3), std: 0.5 }));
  });
  it("has finite-difference gradients on a batch", () => {
    gradcheck(tv.matrixExp, [leaf([2, 3, 3], 84, 0.4)]);
  });
});

describe("skewFromLowerTriangle", () => {
  it("is tril(θ) − tril(θ)ᵀ: the strict lower triangle, mirrored and negated, with a zero diagonal", () => {
    const theta = tv.tensor([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ]);
    assert.deepEqual(skewFromLowerTriangle(theta).toArray(), [
      [0, -4, -7],
      [4, 0, -8],
      [7, 8, 0],
    ]);
  });
  it("matches mul by the lower mask, transpose and sub bit for bit, gradient included", () => {
    sameBits(skewFromLowerTriangle, composedSkew, tv.randn([16, 16], { generator: new tv.Generator(4) }));
  });
  it("has finite-difference gradients (zero on and above the diagonal)", () => {
    const theta = leaf([4, 4], 85);
    gradcheck(skewFromLowerTriangle, [theta]);
    const grad = (theta.grad as tv.Tensor).data;
    // θ·0 above the diagonal, as the mask did: a signed zero.
    for (let i = 0; i < 4; i++) for (let j = i; j < 4; j++) assert.ok(grad[i * 4 + j] === 0, `θ[${i}][${j}]`);
  });
  it("refuses a non-square matrix", () => {
    assert.throws(
      () => skewFromLowerTriangle(tv.zeros([3, 4])),
      /skewFromLowerTriangle: expected square matrices \[\.\.\., n, n\], got \[3, 4\]/,
    );
  });
});
