/**
 * Matrix products on BLAS: matmul with PyTorch's batching and broadcasting rules, and linear
 * (x·Wᵀ + b, or x·W + b for GPT-2's Conv1D layout) with the bias folded into the GEMM. Backward
 * products pass transpose flags to sgemm instead of materialising transposes.
 */
import { uninitialized } from "../storage.js";
import { record } from "../autograd.js";
import { kernels } from "../kernels/index.js";
import { broadcastShapes, broadcastStrides, formatShape, sizeOf } from "../shape.js";
import { Tensor } from "../tensor.js";
import { halfMatmul } from "./half-matmul.js";

const single = new Int32Array([0]);
/** Strides that read a bias vector as every row of a matrix. */
const BIAS_ROWS = Int32Array.of(0, 1);

/** C = op(A)·op(B) + beta·C for matrices stored densely (row stride = stored column count). */
function gemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  aOffsets: Int32Array,
  b: Float32Array,
  bOffsets: Int32Array,
  beta: number,
  c: Float32Array,
  cOffsets: Int32Array,
): void {
  if (m === 0 || n === 0) return;
  kernels().sgemmBatch(
    transA,
    transB,
    m,
    n,
    k,
    1,
    a,
    transA ? m : k,
    aOffsets,
    b,
    transB ? k : n,
    bOffsets,
    beta,
    c,
    n,
    cOffsets,
  );
}

function batchOffsets(batchShape: readonly number[], ownBatch: readonly number[], matrixSize: number): Int32Array {
  const strides = broadcastStrides(ownBatch, batchShape);
  const count = sizeOf(batchShape);
  const out = new Int32Array(count);
  const counter = new Array<number>(batchShape.length).fill(0);
  let off = 0;
  for (let i = 0; i < count; i++) {
    out[i] = off * matrixSize;
    for (let d = batchShape.length - 1; d >= 0; d--) {
      off += strides[d];
      if (++counter[d] < batchShape[d]) break;
      off -= strides[d] * batchShape[d];
      counter[d] = 0;
    }
  }
  return out;
}

/**
 * Matrix product with torch.matmul's rules: 1-D operands gain and then lose a dimension, and
 * leading (batch) dimensions broadcast.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 0 || b.rank === 0) throw new RangeError("matmul: operands must have at least one dimension");
  const aShape = a.rank === 1 ? [1, a.shape[0]] : [...a.shape];
  const bShape = b.rank === 1 ? [b.shape[0], 1] : [...b.shape];
  const [m, k] = aShape.slice(-2);
  const [k2, n] = bShape.slice(-2);
  if (k !== k2)
    throw new RangeError(
      `matmul: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not chain (${k} vs ${k2})`,
    );
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const batch = broadcastShapes(aBatch, bBatch, "matmul");
  const outShape = [...batch, m, n];
  if (a.rank === 1) outShape.splice(outShape.length - 2, 1);
  if (b.rank === 1) outShape.pop();

  if (bBatch.length === 0 && sizeOf(batch) === sizeOf(aBatch)) {
    return matmulFlat(a, b, sizeOf(aBatch) * m, k, n, outShape);
  }
  const count = sizeOf(batch);
  const aOff = batchOffsets(batch, aBatch, m * k);
  const bOff = batchOffsets(batch, bBatch, k * n);
  const cOff = batchOffsets(batch, batch, m * n);
  const out = uninitialized(count * m * n);
  gemm(false, false, m, n, k, a.data, aOff, b.data, bOff, 0, out, cOff);
  return record(new Tensor(out, outShape), [a, b], (g) => {
    let ga: Float32Array | null = null;
    let gb: Float32Array | null = null;
    if (a.requiresGrad) {
      ga = new Float32Array(a.size);
      gemm(false, true, m, k, n, g, cOff, b.data, bOff, 1, ga, aOff);
    }
    if (b.requiresGrad) {
      gb = new Float32Array(b.size);
      gemm(true, false, k, n, m, a.data, aOff, g, cOff, 1, gb, bOff);
    }
    return [ga, gb];
  });
}

/** a's batch folded into its rows: one GEMM of (rows×k)·(k×n). */
function matmulFlat(a: Tensor, b: Tensor, rows: number, k: number, n: number, outShape: number[]): Tensor {
  const out = uninitialized(rows * n);
  gemm(false, false, rows, n, k, a.data, single, b.data, single, 0, out, single);
  return record(new Tensor(out, outShape), [a, b], (g) => {
    let ga: Float32Array | null = null;
    let gb: Float32Array | null = null;
    if (a.requiresGrad) {
      ga = uninitialized(a.size);
      gemm(false, true, rows, k, n, g, single, b.data, single, 0, ga, single);
    }
    if (b.requiresGrad) {
      gb = uninitialized(b.size);
      gemm(true, false, k, n, rows, a.data, single, g, single, 0, gb, single);
    }
    return [ga, gb];
  });
}

/** How a linear layer stores its weight: [out, in] as torch.nn.Linear, or [in, out] as GPT-2's Conv1D. */
export type WeightLayout = "out_in" | "in_out";

/**
 * x·Wᵀ + b over the last axis of x (x·W + b for the "in_out" layout). A 16-bit weight is read as
 * it is stored (ops/half-matmul.ts), never widened as a whole.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, layout: WeightLayout = "out_in"): Tensor {
  if (weight.rank !== 2) throw new RangeError(`linear: weight must be 2-D, got ${formatShape(weight.shape)}`);
  const [inF, outF] = layout === "out_in" ? [weight.shape[1], weight.shape[0]] : weight.shape;
  if (x.rank === 0 || x.shape[x.rank - 1] !== inF) {
    throw new RangeError(
      `linear: input of shape ${formatShape(x.shape)} does not end in ${inF}, the weight's input size ` +
        `(weight ${formatShape(weight.shape)}, layout ${layout})`,
    );
  }
  if (bias !== null && (bias.rank !== 1 || bias.shape[0] !== outF)) {
    throw new RangeError(`linear: bias of shape ${formatShape(bias.shape)} does not match the output size ${outF}`);
  }
  const rows = x.size / inF;
  const transW = layout === "out_in";
  const out = uninitialized(rows * outF);
  // The GEMM adds onto the bias rows (beta = 1), the order in which PyTorch's addmm sums too.
  if (bias !== null) kernels().copyStrided(Int32Array.of(rows, outF), bias.data, 0, BIAS_ROWS, out);
  const half = weight.half;
  if (half !== null) halfMatmul(transW, rows, outF, inF, x.data, half, bias === null ? 0 : 1, out);
  else gemm(false, transW, rows, outF, inF, x.data, single, weight.data, single, bias === null ? 0 : 1, out, single);
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  return record(new Tensor(out, [...x.shape.slice(0, -1), outF]), inputs, (g) => {
    let gx: Float32Array | null = null;
    let gw: Float32Array | null = null;
    let gbias: Float32Array | null = null;
    if (x.requiresGrad) {
      gx = uninitialized(x.size);
      if (half !== null) halfMatmul(!transW, rows, inF, outF, g, half, 0, gx);
      else gemm(false, !transW, rows, inF, outF, g, single, weight.data, single, 0, gx, single);
    }
    if (weight.requiresGrad) {
      gw = uninitialized(weight.size);
      if (transW) gemm(true, false, outF, inF, rows, g, single, x.data, single, 0, gw, single);
      else gemm(true, false, inF, outF, rows, x.data, single, g, single, 0, gw, single);
    }
    if (bias?.requiresGrad) {
      const acc = new Float64Array(outF);
      for (let r = 0; r < rows; r++) for (let j = 0; j < outF; j++) acc[j] += g[r * outF + j];
      gbias = Float32Array.from(acc);
    }
    return [gx, gw, gbias];
  });
}
