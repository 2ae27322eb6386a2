/** Broadcasting machinery shared by the elementwise ops and the reductions. */
import { kernels } from "../kernels/index.js";
import type { BinaryOp } from "../kernels/types.js";
import { uninitialized } from "../storage.js";
import { broadcastStrides, sameShape, sizeOf, type Shape } from "../shape.js";

/**
 * Drops length-1 dimensions and merges neighbours across which every strided view is
 * contiguous, so kernels see few, long inner loops (same shapes become one flat loop, a bias
 * over rows two).
 */
export function mergeDims(
  dims: Shape,
  stridesList: readonly (readonly number[])[],
): { dims: Int32Array; strides: Int32Array[] } {
  const merged: number[] = [];
  const strides: number[][] = stridesList.map(() => []);
  for (let i = 0; i < dims.length; i++) {
    if (dims[i] === 1) continue;
    const last = merged.length - 1;
    if (last >= 0 && stridesList.every((s, k) => strides[k][last] === s[i] * dims[i])) {
      merged[last] *= dims[i];
      stridesList.forEach((s, k) => (strides[k][last] = s[i]));
    } else {
      merged.push(dims[i]);
      stridesList.forEach((s, k) => strides[k].push(s[i]));
    }
  }
  return { dims: Int32Array.from(merged), strides: strides.map((s) => Int32Array.from(s)) };
}

/** op(a, b) over the broadcast of the two shapes to `outShape`. */
export function broadcastBinary(
  op: BinaryOp,
  a: Float32Array,
  aShape: Shape,
  b: Float32Array,
  bShape: Shape,
  outShape: Shape,
): Float32Array {
  const out = uninitialized(sizeOf(outShape));
  if (out.length === 0) return out;
  const plan = mergeDims(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
  kernels().binaryStrided(op, plan.dims, a, 0, plan.strides[0], b, 0, plan.strides[1], out);
  return out;
}

/** Reads `src` (of `srcShape`) through `srcStrides` into a contiguous array of `outShape`. */
export function stridedCopy(src: Float32Array, srcStrides: readonly number[], outShape: Shape): Float32Array {
  const out = uninitialized(sizeOf(outShape));
  if (out.length === 0) return out;
  const plan = mergeDims(outShape, [srcStrides]);
  kernels().copyStrided(plan.dims, src, 0, plan.strides[0], out);
  return out;
}

/** `src` of `srcShape` materialised at the broadcast shape `outShape`. */
export function broadcastTo(src: Float32Array, srcShape: Shape, outShape: Shape): Float32Array {
  if (sameShape(srcShape, outShape)) return src;
  return stridedCopy(src, broadcastStrides(srcShape, outShape), outShape);
}

/**
 * Sums `g` (of shape `fromShape`) into `shape`, where `shape` has `fromShape`'s rank or fewer and
 * each of its dims is 1 or equal to the matching trailing dim of `fromShape`. Accumulates in
 * float64. This serves both reductions and the backward of broadcasting.
 */
export function sumToShape(g: Float32Array, fromShape: Shape, shape: Shape): Float32Array {
  if (sameShape(fromShape, shape)) return g;
  const rank = fromShape.length;
  const padded = [...new Array<number>(rank - shape.length).fill(1), ...shape];
  const outSize = sizeOf(shape);
  const acc = new Float64Array(outSize);
  let lead = 0;
  while (lead < rank && padded[lead] === 1) lead++;
  let trail = rank;
  while (trail > lead && padded[trail - 1] === 1) trail--;
  const keptIsContiguous = padded.slice(lead, trail).every((d, i) => d === fromShape[lead + i]);
  if (keptIsContiguous) {
    const blocks = sizeOf(fromShape.slice(0, lead));
    const inner = sizeOf(fromShape.slice(trail));
    for (let blk = 0; blk < blocks; blk++) {
      const base = blk * outSize * inner;
      for (let o = 0; o < outSize; o++) {
        let s = 0;
        const start = base + o * inner;
        for (let j = 0; j < inner; j++) s += g[start + j];
        acc[o] += s;
      }
    }
  } else {
    const strides = new Array<number>(rank);
    let s = 1;
    for (let i = rank - 1; i >= 0; i--) {
      strides[i] = padded[i] === 1 ? 0 : s;
      s *= padded[i];
    }
    const counter = new Array<number>(rank).fill(0);
    let oi = 0;
    for (let i = 0; i < g.length; i++) {
      acc[oi] += g[i];
      for (let d = rank - 1; d >= 0; d--) {
        oi += strides[d];
        if (++counter[d] < fromShape[d]) break;
        oi -= strides[d] * fromShape[d];
        counter[d] = 0;
      }
    }
  }
  return Float32Array.from(acc);
}
