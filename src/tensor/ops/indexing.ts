/**
 * Indexing: indexSelect (the same indices for every row), and gatherAt / writeAt, which read and
 * write per-example positions. These two are how interventions touch a representation: gather
 * the units at the locations, transform them, write them back out of place.
 */
import { uninitialized } from "../storage.js";
import { record } from "../autograd.js";
import { formatShape, normAxis, sizeOf } from "../shape.js";
import { IntTensor, Tensor, type Indices } from "../tensor.js";
import { widenInto } from "../half.js";

function toInt32(indices: Indices): Int32Array {
  if (indices instanceof IntTensor) return indices.data;
  if (indices instanceof Int32Array) return indices;
  for (const v of indices) {
    if (!Number.isInteger(v)) throw new TypeError(`index ${v} is not an integer`);
  }
  return Int32Array.from(indices);
}

function checkRange(idx: Int32Array, n: number, op: string, what: string): void {
  for (const i of idx) {
    if (i < 0 || i >= n)
      throw new RangeError(`${op}: index ${i} is out of range for ${what} of length ${n} (expected 0..${n - 1})`);
  }
}

/** Rows `indices` of x along `axis` (1-D indices, as torch.index_select). */
export function indexSelect(x: Tensor, axis: number, indices: Indices): Tensor {
  const a = normAxis(axis, x.rank, "indexSelect");
  if (indices instanceof IntTensor && indices.shape.length !== 1) {
    throw new RangeError(`indexSelect: indices must be 1-D, got shape ${formatShape(indices.shape)}`);
  }
  const idx = toInt32(indices);
  const n = x.shape[a];
  checkRange(idx, n, "indexSelect", `axis ${a} of ${formatShape(x.shape)}`);
  const outer = sizeOf(x.shape.slice(0, a));
  const inner = sizeOf(x.shape.slice(a + 1));
  const k = idx.length;
  const outShape = [...x.shape];
  outShape[a] = k;
  const data = uninitialized(outer * k * inner);
  const half = x.half;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      const src = (o * n + idx[j]) * inner;
      // Rows of a 16-bit table (embeddings, a head's rows) are widened one by one, not the whole table.
      if (half !== null) widenInto(half, src, inner, data, (o * k + j) * inner);
      else data.set(x.data.subarray(src, src + inner), (o * k + j) * inner);
    }
  }
  return record(new Tensor(data, outShape), [x], (g) => {
    const r = new Float32Array(x.size);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < k; j++) {
        const dst = (o * n + idx[j]) * inner;
        const src = (o * k + j) * inner;
        for (let t = 0; t < inner; t++) r[dst + t] += g[src + t];
      }
    }
    return [r];
  });
}

interface PerRowLayout {
  axis: number;
  rows: number;
  n: number;
  k: number;
  inner: number;
  outShape: number[];
}

/** Checks an index of shape [...x.shape[:axis], K] against x and returns the shared layout. */
function perRowLayout(x: Tensor, axis: number, index: IntTensor, op: string): PerRowLayout {
  const a = normAxis(axis, x.rank, op);
  const lead = x.shape.slice(0, a);
  if (index.shape.length !== a + 1 || lead.some((d, i) => index.shape[i] !== d)) {
    throw new RangeError(
      `${op}: index of shape ${formatShape(index.shape)} does not fit ${formatShape(x.shape)} at axis ${a} ` +
        `(expected [${[...lead, "K"].join(", ")}])`,
    );
  }
  const n = x.shape[a];
  checkRange(index.data, n, op, `axis ${a} of ${formatShape(x.shape)}`);
  const k = index.shape[a];
  return {
    axis: a,
    rows: sizeOf(lead),
    n,
    k,
    inner: sizeOf(x.shape.slice(a + 1)),
    outShape: [...lead, k, ...x.shape.slice(a + 1)],
  };
}

/**
 * Per-row gather: out[r, j, ...] = x[r, index[r, j], ...], where r runs over the dims before
 * `axis`. x of shape [B, S, D] with index [B, K] gives [B, K, D].
 */
export function gatherAt(x: Tensor, axis: number, index: IntTensor): Tensor {
  const { rows, n, k, inner, outShape } = perRowLayout(x, axis, index, "gatherAt");
  const idx = index.data;
  const data = uninitialized(rows * k * inner);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const src = (r * n + idx[r * k + j]) * inner;
      data.set(x.data.subarray(src, src + inner), (r * k + j) * inner);
    }
  }
  return record(new Tensor(data, outShape), [x], (g) => {
    const grad = new Float32Array(x.size);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < k; j++) {
        const dst = (r * n + idx[r * k + j]) * inner;
        const src = (r * k + j) * inner;
        for (let t = 0; t < inner; t++) grad[dst + t] += g[src + t];
      }
    }
    return [grad];
  });
}

/**
 * Out-of-place per-row write, the inverse of gatherAt: a copy of x with x[r, index[r, j], ...]
 * replaced by values[r, j, ...]. Where an index repeats within a row the last write wins, and
 * only that value receives a gradient.
 */
export function writeAt(x: Tensor, axis: number, index: IntTensor, values: Tensor): Tensor {
  const { rows, n, k, inner, outShape } = perRowLayout(x, axis, index, "writeAt");
  if (values.rank !== outShape.length || values.shape.some((d, i) => d !== outShape[i])) {
    throw new RangeError(
      `writeAt: values of shape ${formatShape(values.shape)} do not match the indexed region ${formatShape(outShape)}`,
    );
  }
  const idx = index.data;
  const data = x.data.slice();
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const src = (r * k + j) * inner;
      data.set(values.data.subarray(src, src + inner), (r * n + idx[r * k + j]) * inner);
    }
  }
  return record(new Tensor(data, x.shape), [x, values], (g) => {
    const gx = x.requiresGrad ? g.slice() : null;
    const gv = values.requiresGrad ? new Float32Array(values.size) : null;
    // writtenInRow[pos] === r + 1 marks a position row r has already written (the last write wins).
    const writtenInRow = new Int32Array(n);
    for (let r = 0; r < rows; r++) {
      for (let j = k - 1; j >= 0; j--) {
        const pos = idx[r * k + j];
        if (writtenInRow[pos] === r + 1) continue;
        writtenInRow[pos] = r + 1;
        const at = (r * n + pos) * inner;
        if (gv) gv.set(g.subarray(at, at + inner), (r * k + j) * inner);
        if (gx) gx.fill(0, at, at + inner);
      }
    }
    return [gx, gv];
  });
}
