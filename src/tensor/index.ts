export { Tensor, IntTensor, type NestedNumbers, type Indices } from "./tensor.js";
export { noGrad, isGradEnabled } from "./autograd.js";
export {
  roundToHalf,
  widen,
  widenInto,
  HALF_DTYPES,
  type Dtype,
  type HalfDtype,
  type HalfStorage,
} from "./half.js";
export { Generator, manualSeed, setSeed, defaultGenerator } from "./random.js";
export { tensor, intTensor, zeros, ones, full, zerosLike, onesLike, arange, randn, rand } from "./creation.js";
export {
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  where,
  neg,
  exp,
  log,
  sqrt,
  rsqrt,
  abs,
  tanh,
  sigmoid,
  relu,
  gelu,
  silu,
  clamp,
  type GeluApproximation,
} from "./ops/elementwise.js";
export { sum, mean, variance, max, argmax, logsumexp, type VarianceOptions } from "./ops/reduce.js";
export { reshape, permute, transpose, slice, concat, stack, split, expand, squeeze, unsqueeze } from "./ops/shape.js";
export { indexSelect, gatherAt, writeAt } from "./ops/indexing.js";
export { matmul, linear, type WeightLayout } from "./ops/matmul.js";
export {
  softmax,
  logSoftmax,
  layerNorm,
  rmsNorm,
  crossEntropy,
  embedding,
  type CrossEntropyOptions,
} from "./ops/nn.js";
export {
  attentionScores,
  attentionSoftmax,
  attentionContext,
  packedHeads,
  stackedHeads,
  type AttentionSoftmaxOptions,
  type Heads,
} from "./ops/attention.js";
export { matrixExp, qr, orthogonal } from "./ops/linalg.js";
export { kernels, setKernels } from "./kernels/index.js";
export type { Kernels } from "./kernels/types.js";
