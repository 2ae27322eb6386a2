/** Neural-network ops with fused kernels: softmax, logSoftmax, layerNorm, rmsNorm, crossEntropy, embedding. */
import { readOptions } from "../../options/index.js";
import { uninitialized } from "../storage.js";
import { record } from "../autograd.js";
import { kernels } from "../kernels/index.js";
import { formatShape, normAxis } from "../shape.js";
import { type IntTensor, Tensor } from "../tensor.js";
import { indexSelect } from "./indexing.js";
import { permute, reshape } from "./shape.js";

/** Runs a last-axis op on another axis by moving that axis last and back. */
function alongAxis(x: Tensor, axis: number, op: string, lastAxisOp: (x: Tensor) => Tensor): Tensor {
  const a = normAxis(axis, x.rank, op);
  if (a === x.rank - 1) return lastAxisOp(x);
  const order = x.shape.map((_, i) => i);
  order[a] = x.rank - 1;
  order[x.rank - 1] = a;
  return permute(lastAxisOp(permute(x, order)), order);
}

export function softmax(x: Tensor, axis = -1): Tensor {
  return alongAxis(x, axis, "softmax", (t) => {
    const cols = t.shape[t.rank - 1];
    const rows = cols === 0 ? 0 : t.size / cols;
    const out = uninitialized(t.size);
    kernels().softmaxRows(t.data, rows, cols, out);
    return record(new Tensor(out, t.shape), [t], (g) => {
      const r = uninitialized(t.size);
      kernels().softmaxRowsBackward(out, g, rows, cols, r);
      return [r];
    });
  });
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return alongAxis(x, axis, "logSoftmax", (t) => {
    const cols = t.shape[t.rank - 1];
    const rows = cols === 0 ? 0 : t.size / cols;
    const out = uninitialized(t.size);
    const d = t.data;
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let m = -Infinity;
      for (let j = 0; j < cols; j++) m = Math.max(m, d[base + j]);
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(d[base + j] - m);
      const lse = m + Math.log(s);
      for (let j = 0; j < cols; j++) out[base + j] = d[base + j] - lse;
    }
    return record(new Tensor(out, t.shape), [t], (g) => {
      const r = uninitialized(t.size);
      for (let row = 0; row < rows; row++) {
        const base = row * cols;
        let gs = 0;
        for (let j = 0; j < cols; j++) gs += g[base + j];
        for (let j = 0; j < cols; j++) r[base + j] = g[base + j] - Math.exp(out[base + j]) * gs;
      }
      return [r];
    });
  });
}

function checkAffine(x: Tensor, param: Tensor | null, name: string, op: string): void {
  const cols = x.shape[x.rank - 1];
  if (param !== null && (param.rank !== 1 || param.shape[0] !== cols)) {
    throw new RangeError(
      `${op}: ${name} of shape ${formatShape(param.shape)} does not match the normalised size ${cols} ` +
        `of input ${formatShape(x.shape)}`,
    );
  }
}

/** Layer norm over the last axis (biased variance, as torch.nn.LayerNorm); weight and bias optional. */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  if (x.rank === 0) throw new RangeError("layerNorm: input must have at least one dimension");
  checkAffine(x, weight, "weight", "layerNorm");
  checkAffine(x, bias, "bias", "layerNorm");
  const cols = x.shape[x.rank - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = uninitialized(x.size);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  kernels().layerNormRows(x.data, weight?.data ?? null, bias?.data ?? null, eps, rows, cols, out, mean, rstd);
  const inputs = [x, weight, bias].filter((t): t is Tensor => t !== null);
  return record(new Tensor(out, x.shape), inputs, (g) => {
    const gx = uninitialized(x.size);
    const gw = weight?.requiresGrad ? new Float32Array(cols) : null;
    const gb = bias?.requiresGrad ? new Float32Array(cols) : null;
    kernels().layerNormRowsBackward(x.data, weight?.data ?? null, mean, rstd, g, rows, cols, gx, gw, gb);
    const byInput = new Map<Tensor | null, Float32Array | null>([
      [x, gx],
      [weight, gw],
      [bias, gb],
    ]);
    return inputs.map((t) => byInput.get(t) ?? null);
  });
}

/** RMS norm over the last axis: x / √(mean(x²) + eps) · weight (weight optional). */
export function rmsNorm(x: Tensor, weight: Tensor | null = null, eps = 1e-6): Tensor {
  if (x.rank === 0) throw new RangeError("rmsNorm: input must have at least one dimension");
  checkAffine(x, weight, "weight", "rmsNorm");
  const cols = x.shape[x.rank - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = uninitialized(x.size);
  const rstd = new Float32Array(rows);
  kernels().rmsNormRows(x.data, weight?.data ?? null, eps, rows, cols, out, rstd);
  const inputs = weight === null ? [x] : [x, weight];
  return record(new Tensor(out, x.shape), inputs, (g) => {
    const gx = uninitialized(x.size);
    const gw = weight?.requiresGrad ? new Float32Array(cols) : null;
    kernels().rmsNormRowsBackward(x.data, weight?.data ?? null, rstd, g, rows, cols, gx, gw);
    return [gx, gw];
  });
}

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (PyTorch's default -100). */
  ignoreIndex?: number;
  reduction?: "mean" | "sum" | "none";
}

/**
 * Cross-entropy of logits [..., C] against integer targets [...] (torch.nn.functional.cross_entropy
 * with class indices). "mean" divides by the number of targets not ignored.
 */
export function crossEntropy(logits: Tensor, targets: IntTensor, options: CrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = -100, reduction = "mean" } = readOptions<CrossEntropyOptions>(
    options,
    ["ignoreIndex", "reduction"],
    "crossEntropy options",
  );
  if (!["mean", "sum", "none"].includes(reduction))
    throw new TypeError(`crossEntropy: reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`);
  if (logits.rank < 1) throw new RangeError("crossEntropy: logits must have a class axis");
  const classes = logits.shape[logits.rank - 1];
  const lead = logits.shape.slice(0, -1);
  if (targets.shape.length !== lead.length || lead.some((d, i) => targets.shape[i] !== d)) {
    throw new RangeError(
      `crossEntropy: targets of shape ${formatShape(targets.shape)} do not match logits ${formatShape(logits.shape)} ` +
        `(expected ${formatShape(lead)})`,
    );
  }
  const t = targets.data;
  for (const c of t) {
    if (c !== ignoreIndex && (c < 0 || c >= classes))
      throw new RangeError(`crossEntropy: target ${c} is out of range for ${classes} classes`);
  }
  const logp = logSoftmax(logits, -1);
  const rows = t.length;
  const counted = t.reduce((n, c) => (c === ignoreIndex ? n : n + 1), 0);
  const losses = new Float32Array(rows);
  for (let r = 0; r < rows; r++) if (t[r] !== ignoreIndex) losses[r] = -logp.data[r * classes + t[r]];
  let value: Tensor;
  let scale: (g: Float32Array, r: number) => number;
  if (reduction === "none") {
    value = new Tensor(losses, lead);
    scale = (g, r) => g[r];
  } else {
    let s = 0;
    for (let r = 0; r < rows; r++) s += losses[r];
    const denom = reduction === "mean" ? counted : 1;
    value = new Tensor(new Float32Array([s / denom]), []);
    scale = (g) => g[0] / denom;
  }
  return record(value, [logp], (g) => {
    const r = new Float32Array(logp.size);
    for (let row = 0; row < rows; row++) if (t[row] !== ignoreIndex) r[row * classes + t[row]] = -scale(g, row);
    return [r];
  });
}

/** Rows of an embedding table [V, D] for ids of any shape: the result has shape [...ids, D]. */
export function embedding(table: Tensor, ids: IntTensor): Tensor {
  if (table.rank !== 2)
    throw new RangeError(`embedding: table must be 2-D [vocab, dim], got ${formatShape(table.shape)}`);
  return reshape(indexSelect(table, 0, ids.data), [...ids.shape, table.shape[1]]);
}
