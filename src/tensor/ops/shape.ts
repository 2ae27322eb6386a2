/** Shape ops: reshape, transpose/permute, slice, concat/stack/split, expand, squeeze/unsqueeze. */
import { uninitialized } from "../storage.js";
import { record } from "../autograd.js";
import { broadcastShapes, formatShape, normAxis, sameShape, sizeOf, stridesOf, type Shape } from "../shape.js";
import { Tensor } from "../tensor.js";
import { broadcastTo, stridedCopy, sumToShape } from "./broadcast.js";

/** The same values in a new shape; one dimension may be -1 (inferred). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const inferred = shape.indexOf(-1);
  if (shape.some((d, i) => !Number.isInteger(d) || d < -1 || (d === -1 && i !== inferred))) {
    throw new RangeError(
      `reshape: invalid shape ${formatShape(shape)} (expected non-negative integers and at most one -1)`,
    );
  }
  const known = shape.reduce((n, d) => (d === -1 ? n : n * d), 1);
  const resolved = [...shape];
  if (inferred >= 0) {
    if (known === 0 || x.size % known !== 0)
      throw new RangeError(`reshape: cannot reshape ${formatShape(x.shape)} into ${formatShape(shape)}`);
    resolved[inferred] = x.size / known;
  }
  if (sizeOf(resolved) !== x.size)
    throw new RangeError(
      `reshape: cannot reshape ${formatShape(x.shape)} (${x.size} values) into ${formatShape(shape)}`,
    );
  return record(new Tensor(x.data, resolved), [x], (g) => [g]);
}

/** Moves axis i of the input to position i of `dims` order: out.shape[k] = x.shape[dims[k]]. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const order = dims.map((d) => normAxis(d, x.rank, "permute"));
  if (order.length !== x.rank || new Set(order).size !== x.rank) {
    throw new RangeError(
      `permute: [${dims.join(", ")}] is not a permutation of the ${x.rank} axes of ${formatShape(x.shape)}`,
    );
  }
  const outShape = order.map((d) => x.shape[d]);
  const data = permuteData(x.data, x.shape, order);
  const inverse = new Array<number>(order.length);
  order.forEach((d, k) => (inverse[d] = k));
  return record(new Tensor(data, outShape), [x], (g) => [permuteData(g, outShape, inverse)]);
}

function permuteData(src: Float32Array, shape: Shape, order: readonly number[]): Float32Array {
  if (order.every((d, k) => d === k)) return src;
  const strides = stridesOf(shape);
  return stridedCopy(
    src,
    order.map((d) => strides[d]),
    order.map((d) => shape[d]),
  );
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const a = normAxis(dim0, x.rank, "transpose");
  const b = normAxis(dim1, x.rank, "transpose");
  const order = x.shape.map((_, i) => i);
  order[a] = b;
  order[b] = a;
  return permute(x, order);
}

/** Copies x[..., start:end, ...] along `axis` (blocks of rows, so it stays cheap). */
function copyRange(src: Float32Array, shape: Shape, axis: number, start: number, length: number): Float32Array {
  const outer = sizeOf(shape.slice(0, axis));
  const inner = sizeOf(shape.slice(axis + 1));
  const n = shape[axis];
  const out = uninitialized(outer * length * inner);
  for (let o = 0; o < outer; o++) {
    out.set(src.subarray((o * n + start) * inner, (o * n + start + length) * inner), o * length * inner);
  }
  return out;
}

/** x[..., start:end] along `axis`; negative bounds count from the end, as in Python slicing. */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis(axis, x.rank, "slice");
  const n = x.shape[a];
  const clampIndex = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  if (!Number.isInteger(start) || (end !== undefined && !Number.isInteger(end))) {
    throw new TypeError(`slice: bounds must be integers, got ${start}..${end}`);
  }
  const from = clampIndex(start);
  const to = Math.max(from, clampIndex(end ?? n));
  const outShape = [...x.shape];
  outShape[a] = to - from;
  const data = copyRange(x.data, x.shape, a, from, to - from);
  return record(new Tensor(data, outShape), [x], (g) => {
    const r = new Float32Array(x.size);
    const outer = sizeOf(x.shape.slice(0, a));
    const inner = sizeOf(x.shape.slice(a + 1));
    const len = to - from;
    for (let o = 0; o < outer; o++) r.set(g.subarray(o * len * inner, (o + 1) * len * inner), (o * n + from) * inner);
    return [r];
  });
}

/** Joins tensors along an existing axis; all other dims must agree. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new RangeError("concat: needs at least one tensor");
  const first = tensors[0];
  const a = normAxis(axis, first.rank, "concat");
  for (const [i, t] of tensors.entries()) {
    if (t.rank !== first.rank || t.shape.some((d, k) => k !== a && d !== first.shape[k])) {
      throw new RangeError(
        `concat: tensor ${i} has shape ${formatShape(t.shape)}, ` +
          `incompatible with ${formatShape(first.shape)} along axis ${a}`,
      );
    }
  }
  const lengths = tensors.map((t) => t.shape[a]);
  const total = lengths.reduce((s, n) => s + n, 0);
  const outShape = [...first.shape];
  outShape[a] = total;
  const outer = sizeOf(first.shape.slice(0, a));
  const inner = sizeOf(first.shape.slice(a + 1));
  const data = uninitialized(outer * total * inner);
  let offset = 0;
  tensors.forEach((t, i) => {
    const len = lengths[i];
    for (let o = 0; o < outer; o++)
      data.set(t.data.subarray(o * len * inner, (o + 1) * len * inner), (o * total + offset) * inner);
    offset += len;
  });
  return record(new Tensor(data, outShape), tensors, (g) => {
    let start = 0;
    return tensors.map((t, i) => {
      const part = t.requiresGrad ? copyRange(g, outShape, a, start, lengths[i]) : null;
      start += lengths[i];
      return part;
    });
  });
}

/** Joins same-shaped tensors along a new axis. */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new RangeError("stack: needs at least one tensor");
  const shape = tensors[0].shape;
  tensors.forEach((t, i) => {
    if (!sameShape(t.shape, shape))
      throw new RangeError(
        `stack: tensor ${i} has shape ${formatShape(t.shape)}, expected ${formatShape(shape)} like tensor 0`,
      );
  });
  const a = normAxis(axis, shape.length + 1, "stack");
  return concat(
    tensors.map((t) => unsqueeze(t, a)),
    a,
  );
}

/** Splits along `axis` into pieces of `sizes` (a list) or of equal size `sizes` (the last may be smaller). */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis(axis, x.rank, "split");
  const n = x.shape[a];
  let pieces: number[];
  if (typeof sizes === "number") {
    if (!Number.isInteger(sizes) || sizes <= 0)
      throw new RangeError(`split: section size must be a positive integer, got ${sizes}`);
    pieces = [];
    for (let s = 0; s < n; s += sizes) pieces.push(Math.min(sizes, n - s));
  } else {
    pieces = [...sizes];
    if (pieces.some((p) => !Number.isInteger(p) || p < 0) || pieces.reduce((s, p) => s + p, 0) !== n) {
      throw new RangeError(
        `split: sizes [${pieces.join(", ")}] must be non-negative integers summing to ${n}, the length of axis ${a}`,
      );
    }
  }
  let start = 0;
  return pieces.map((p) => {
    const t = slice(x, a, start, start + p);
    start += p;
    return t;
  });
}

/** Broadcasts x to `shape` (PyTorch's expand; -1 keeps a dim). Materialises the values. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const offset = shape.length - x.rank;
  const target = shape.map((d, i) => (d === -1 && i >= offset ? x.shape[i - offset] : d));
  if (offset < 0 || !sameShape(broadcastShapes(x.shape, target, "expand"), target)) {
    throw new RangeError(`expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  }
  const data = broadcastTo(x.data, x.shape, target);
  return record(new Tensor(data, target), [x], (g) => [sumToShape(g, target, x.shape)]);
}

/** Removes `axis` (which must have length 1), or every length-1 axis when none is given. */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined)
    return reshape(
      x,
      x.shape.filter((d) => d !== 1),
    );
  const a = normAxis(axis, x.rank, "squeeze");
  if (x.shape[a] !== 1)
    throw new RangeError(`squeeze: axis ${axis} of ${formatShape(x.shape)} has length ${x.shape[a]}, expected 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== a),
  );
}

/** Inserts a length-1 axis at `axis` (which may be x.rank, to append). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.rank + 1, "unsqueeze");
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}
