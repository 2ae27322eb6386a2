/** Reductions: sum, mean, variance over any axes; max, argmax, logsumexp along one axis. */
import { readOptions } from "../../options/index.js";
import { uninitialized } from "../storage.js";
import { record } from "../autograd.js";
import { formatShape, normAxis, sizeOf, type Shape } from "../shape.js";
import { IntTensor, Tensor } from "../tensor.js";
import { broadcastBinary, broadcastTo, sumToShape } from "./broadcast.js";
import { mul, sub } from "./elementwise.js";

function reducedAxes(x: Tensor, axes: number | readonly number[] | undefined, op: string): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === "number" ? [axes] : [...axes];
  const norm = list.map((a) => normAxis(a, x.rank, op));
  if (new Set(norm).size !== norm.length) throw new RangeError(`${op}: repeated axis in [${list.join(", ")}]`);
  return norm;
}

function keptShape(shape: Shape, axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function finalShape(shape: Shape, axes: readonly number[], keepDims: boolean): number[] {
  return keepDims ? keptShape(shape, axes) : shape.filter((_, i) => !axes.includes(i));
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = reducedAxes(x, axes, "sum");
  const kept = keptShape(x.shape, ax);
  const data = sumToShape(x.data, x.shape, kept);
  return record(new Tensor(data, finalShape(x.shape, ax, keepDims)), [x], (g) => [broadcastTo(g, kept, x.shape)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = reducedAxes(x, axes, "mean");
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  const kept = keptShape(x.shape, ax);
  const divisor = new Float32Array([count]);
  const data = broadcastBinary("div", sumToShape(x.data, x.shape, kept), kept, divisor, [], kept);
  return record(new Tensor(data, finalShape(x.shape, ax, keepDims)), [x], (g) => [
    broadcastBinary("div", g, kept, divisor, [], x.shape),
  ]);
}

export interface VarianceOptions {
  /** Subtracted from the count in the denominator: 1 (PyTorch's default, unbiased) or 0. */
  correction?: number;
  keepDims?: boolean;
}

export function variance(x: Tensor, axes?: number | readonly number[], options: VarianceOptions = {}): Tensor {
  const { correction = 1, keepDims = false } = readOptions<VarianceOptions>(
    options,
    ["correction", "keepDims"],
    "variance options",
  );
  const ax = reducedAxes(x, axes, "var");
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  const centred = sub(x, mean(x, ax, true));
  const squares = sum(mul(centred, centred), ax, keepDims);
  return mul(squares, 1 / Math.max(count - correction, 0));
}

/** Views x as [outer, n, inner] around `axis`. */
function around(x: Tensor, axis: number): { outer: number; n: number; inner: number } {
  return { outer: sizeOf(x.shape.slice(0, axis)), n: x.shape[axis], inner: sizeOf(x.shape.slice(axis + 1)) };
}

function argmaxAlong(x: Tensor, axis: number): Int32Array {
  const { outer, n, inner } = around(x, axis);
  if (n === 0) throw new RangeError(`max/argmax: axis ${axis} of shape ${formatShape(x.shape)} is empty`);
  const idx = new Int32Array(outer * inner);
  const d = x.data;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const base = o * n * inner + j;
      let best = 0;
      let bestVal = d[base];
      for (let i = 1; i < n && !Number.isNaN(bestVal); i++) {
        const v = d[base + i * inner];
        if (v > bestVal || Number.isNaN(v)) {
          best = i;
          bestVal = v;
        }
      }
      idx[o * inner + j] = best;
    }
  }
  return idx;
}

/** Index of the largest value along `axis` (the first one at ties; NaN counts as largest). */
export function argmax(x: Tensor, axis: number, keepDims = false): IntTensor {
  const a = normAxis(axis, x.rank, "argmax");
  return new IntTensor(argmaxAlong(x, a), finalShape(x.shape, [a], keepDims));
}

/** Largest value along `axis`; the gradient goes to the position argmax reports. */
export function max(x: Tensor, axis: number, keepDims = false): Tensor {
  const a = normAxis(axis, x.rank, "max");
  const { n, inner } = around(x, a);
  const idx = argmaxAlong(x, a);
  const pos = (k: number) => Math.floor(k / inner) * n * inner + idx[k] * inner + (k % inner);
  const data = uninitialized(idx.length);
  for (let k = 0; k < idx.length; k++) data[k] = x.data[pos(k)];
  return record(new Tensor(data, finalShape(x.shape, [a], keepDims)), [x], (g) => {
    const r = new Float32Array(x.size);
    for (let k = 0; k < idx.length; k++) r[pos(k)] = g[k];
    return [r];
  });
}

/** log Σ exp(x) along `axis`, computed stably; its gradient is the softmax. */
export function logsumexp(x: Tensor, axis: number, keepDims = false): Tensor {
  const a = normAxis(axis, x.rank, "logsumexp");
  const { outer, n, inner } = around(x, a);
  const d = x.data;
  const data = uninitialized(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const base = o * n * inner + j;
      let m = -Infinity;
      for (let i = 0; i < n; i++) m = Math.max(m, d[base + i * inner]);
      if (m === -Infinity || m === Infinity) {
        data[o * inner + j] = m;
        continue;
      }
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(d[base + i * inner] - m);
      data[o * inner + j] = m + Math.log(s);
    }
  }
  return record(new Tensor(data, finalShape(x.shape, [a], keepDims)), [x], (g) => {
    const r = new Float32Array(x.size);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) {
        const k = o * inner + j;
        const base = o * n * inner + j;
        for (let i = 0; i < n; i++) r[base + i * inner] = g[k] * Math.exp(d[base + i * inner] - data[k]);
      }
    }
    return [r];
  });
}
