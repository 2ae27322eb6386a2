/** Finite-difference checks of every backward rule. */
import { describe, it } from "node:test";
import * as tv from "../src/index.js";
import { gradcheck, leaf } from "./support/gradcheck.js";

const { intTensor, tensor } = tv;

/** Values bounded away from zero by at least `gap`, for ops with a kink or pole at 0. */
function awayFromZero(shape: number[], seed: number, gap = 0.3): tv.Tensor {
  const t = leaf(shape, seed);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.sign(t.data[i] || 1) * (gap + Math.abs(t.data[i]));
  return t;
}

function positive(shape: number[], seed: number): tv.Tensor {
  const t = leaf(shape, seed);
  for (let i = 0; i < t.size; i++) t.data[i] = 0.5 + Math.abs(t.data[i]);
  return t;
}

describe("elementwise gradients", () => {
  it("add, sub, mul, div with broadcasting", () => {
    gradcheck(tv.add, [leaf([2, 3, 4], 1), leaf([3, 1], 2)]);
    gradcheck(tv.sub, [leaf([4], 3), leaf([2, 3, 4], 4)]);
    gradcheck(tv.mul, [leaf([2, 1, 4], 5), leaf([3, 4], 6)]);
    gradcheck(tv.div, [leaf([2, 3], 7), awayFromZero([3], 8, 0.5)]);
  });
  it("scalar operands", () => {
    gradcheck((a) => tv.mul(tv.add(a, 2), -3), [leaf([5], 9)]);
    gradcheck((a) => tv.div(1.5, a), [awayFromZero([5], 10, 0.5)]);
  });
  it("pow with tensor base and exponent", () => {
    gradcheck(tv.pow, [positive([2, 3], 11), leaf([3], 12)]);
    gradcheck((a) => tv.pow(a, 3), [leaf([6], 13)]);
  });
  it("maximum away from ties", () => {
    const a = leaf([8], 14);
    const b = a.detach().clone();
    for (let i = 0; i < 8; i++) b.data[i] += i % 2 === 0 ? 0.5 : -0.5;
    gradcheck(tv.maximum, [a, b.requireGrad()]);
  });
  it("where routes the gradient by the condition", () => {
    const cond = tensor([1, 0, 0, 1, 1, 0], [2, 3]);
    gradcheck((a, b) => tv.where(cond, a, b), [leaf([2, 3], 15), leaf([3], 16)]);
  });
  it("unary functions", () => {
    gradcheck(tv.neg, [leaf([7], 17)]);
    gradcheck(tv.exp, [leaf([7], 18)]);
    gradcheck(tv.log, [positive([7], 19)]);
    gradcheck(tv.sqrt, [positive([7], 20)]);
    gradcheck(tv.rsqrt, [positive([7], 21)]);
    gradcheck(tv.abs, [awayFromZero([7], 22)]);
    gradcheck(tv.tanh, [leaf([7], 23)]);
    gradcheck(tv.sigmoid, [leaf([7], 24, 3)]);
    gradcheck(tv.relu, [awayFromZero([7], 25)]);
    gradcheck((x) => tv.gelu(x, "none"), [leaf([9], 26, 2)]);
    gradcheck((x) => tv.gelu(x, "tanh"), [leaf([9], 27, 2)]);
    gradcheck(tv.silu, [leaf([9], 28, 2)]);
  });
  it("clamp away from its bounds", () => {
    const x = tensor([-2, -0.7, -0.2, 0.1, 0.6, 1.8], [6]).requireGrad();
    gradcheck((t) => tv.clamp(t, -0.5, 0.5), [x]);
    gradcheck((t) => tv.clamp(t, 0), [x]);
  });
});

describe("reduction gradients", () => {
  it("sum and mean over axes, with and without kept dims", () => {
    gradcheck((x) => tv.sum(x), [leaf([2, 3, 4], 30)]);
    gradcheck((x) => tv.sum(x, [0, 2]), [leaf([2, 3, 4], 31)]);
    gradcheck((x) => tv.sum(x, 1, true), [leaf([2, 3, 4], 32)]);
    gradcheck((x) => tv.mean(x, -1), [leaf([2, 3, 4], 33)]);
    gradcheck((x) => tv.mean(x, [0, 1], true), [leaf([2, 3, 4], 34)]);
  });
  it("variance, unbiased and biased", () => {
    gradcheck((x) => tv.variance(x, -1), [leaf([3, 5], 35)]);
    gradcheck((x) => tv.variance(x, 0, { correction: 0, keepDims: true }), [leaf([4, 2], 36)]);
  });
  it("max along an axis and logsumexp", () => {
    gradcheck((x) => tv.max(x, 1), [leaf([3, 5, 2], 37)]);
    gradcheck((x) => tv.logsumexp(x, -1), [leaf([3, 5], 38, 3)]);
    gradcheck((x) => tv.logsumexp(x, 0, true), [leaf([4, 3], 39)]);
  });
});

describe("shape gradients", () => {
  it("reshape, permute, transpose, squeeze, unsqueeze", () => {
    gradcheck((x) => tv.reshape(x, [3, -1]), [leaf([2, 3, 2], 40)]);
    gradcheck((x) => tv.permute(x, [2, 0, 1]), [leaf([2, 3, 4], 41)]);
    gradcheck((x) => tv.transpose(x, 0, 2), [leaf([2, 3, 4], 42)]);
    gradcheck((x) => tv.unsqueeze(tv.squeeze(x, 1), 0), [leaf([3, 1, 2], 43)]);
  });
  it("slice, split, concat, stack", () => {
    gradcheck((x) => tv.slice(x, 1, 1, -1), [leaf([2, 5, 3], 44)]);
    gradcheck((x) => tv.mul(tv.split(x, [1, 3], 0)[1], 2), [leaf([4, 3], 45)]);
    gradcheck((a, b) => tv.concat([a, b, a], 1), [leaf([2, 1, 3], 46), leaf([2, 2, 3], 47)]);
    gradcheck((a, b) => tv.stack([a, b], 1), [leaf([2, 3], 48), leaf([2, 3], 49)]);
  });
  it("expand", () => {
    gradcheck((x) => tv.expand(x, [2, 3, 4]), [leaf([3, 1], 50)]);
  });
});

describe("indexing gradients", () => {
  it("indexSelect with repeated indices", () => {
    gradcheck((x) => tv.indexSelect(x, 1, [2, 0, 2]), [leaf([2, 3, 2], 51)]);
  });
  it("gatherAt per-row positions", () => {
    const index = intTensor([
      [1, 3],
      [0, 0],
    ]);
    gradcheck((x) => tv.gatherAt(x, 1, index), [leaf([2, 4, 3], 52)]);
  });
  it("writeAt, including a repeated position (last write wins)", () => {
    const index = intTensor([
      [2, 0],
      [1, 1],
    ]);
    gradcheck((x, v) => tv.writeAt(x, 1, index, v), [leaf([2, 4, 3], 53), leaf([2, 2, 3], 54)]);
  });
  it("embedding", () => {
    gradcheck(
      (t) =>
        tv.embedding(
          t,
          intTensor([
            [0, 3],
            [3, 1],
          ]),
        ),
      [leaf([4, 3], 55)],
    );
  });
});

describe("matrix product gradients", () => {
  it("matmul: plain, batched, broadcast batches, vectors", () => {
    gradcheck(tv.matmul, [leaf([3, 4], 60), leaf([4, 5], 61)]);
    gradcheck(tv.matmul, [leaf([2, 3, 4], 62), leaf([2, 4, 2], 63)]);
    gradcheck(tv.matmul, [leaf([2, 1, 3, 4], 64), leaf([3, 4, 2], 65)]);
    gradcheck(tv.matmul, [leaf([3, 4], 66), leaf([2, 4, 2], 67)]);
    gradcheck(tv.matmul, [leaf([2, 3, 4], 68), leaf([4, 5], 69)]);
    gradcheck(tv.matmul, [leaf([4], 70), leaf([4, 3], 71)]);
    gradcheck(tv.matmul, [leaf([2, 3, 4], 72), leaf([4], 73)]);
  });
  it("linear in both weight layouts, with and without bias", () => {
    gradcheck((x, w, b) => tv.linear(x, w, b), [leaf([2, 3, 4], 74), leaf([5, 4], 75), leaf([5], 76)]);
    gradcheck((x, w) => tv.linear(x, w), [leaf([3, 4], 77), leaf([2, 4], 78)]);
    gradcheck((x, w, b) => tv.linear(x, w, b, "in_out"), [leaf([3, 4], 79), leaf([4, 6], 80), leaf([6], 81)]);
  });
  it("matrixExp, including a matrix that needs squaring", () => {
    gradcheck(tv.matrixExp, [leaf([3, 3], 82, 0.2)]);
    gradcheck(tv.matrixExp, [leaf([4, 4], 83, 1.5)], { eps: 1e-2 });
  });
});

describe("network op gradients", () => {
  it("softmax and logSoftmax on the last and an inner axis", () => {
    gradcheck((x) => tv.softmax(x, -1), [leaf([3, 5], 90, 2)]);
    gradcheck((x) => tv.softmax(x, 0), [leaf([4, 3], 91)]);
    gradcheck((x) => tv.logSoftmax(x, -1), [leaf([3, 5], 92, 2)]);
    gradcheck((x) => tv.logSoftmax(x, 1), [leaf([2, 4, 3], 93)]);
  });
  it("layerNorm with and without affine parameters", () => {
    gradcheck((x, w, b) => tv.layerNorm(x, w, b), [leaf([3, 6], 94), leaf([6], 95, 0.5, 1), leaf([6], 96)]);
    gradcheck((x) => tv.layerNorm(x), [leaf([2, 2, 5], 97)]);
  });
  it("rmsNorm with and without weight", () => {
    gradcheck((x, w) => tv.rmsNorm(x, w), [leaf([3, 6], 98), leaf([6], 99, 0.5, 1)]);
    gradcheck((x) => tv.rmsNorm(x), [leaf([2, 5], 100)]);
  });
  it("crossEntropy: mean with an ignored target, sum, none", () => {
    const targets = intTensor([2, -100, 0, 4]);
    gradcheck((x) => tv.crossEntropy(x, targets), [leaf([4, 5], 101, 2)]);
    gradcheck(
      (x) =>
        tv.crossEntropy(
          x,
          intTensor([
            [1, 2],
            [0, 1],
          ]),
          { reduction: "sum" },
        ),
      [leaf([2, 2, 3], 102)],
    );
    gradcheck((x) => tv.crossEntropy(x, intTensor([1, 0]), { reduction: "none" }), [leaf([2, 3], 103)]);
  });
});
