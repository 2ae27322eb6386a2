/** Broadcasting machinery shared by the elementwise ops and the reductions. */
import { broadcastStrides, sameShape, sizeOf, type Shape } from "../shape.js";

/**
 * A strided inner loop over n elements: out[o + i] = f(a[ai + i·as], b[bi + i·bs]). One per op
 * so that each loop stays monomorphic in V8.
 */
export type BinaryLoop = (
  out: Float32Array, o: number, a: Float32Array, ai: number, as: number, b: Float32Array, bi: number, bs: number, n: number,
) => void;

/**
 * Applies `loop` over the broadcast of a and b. Dimensions are merged where both inputs are
 * contiguous across them, so the common cases (same shape, bias rows, scalars) run as a few long
 * inner loops.
 */
export function broadcastBinary(a: Float32Array, aShape: Shape, b: Float32Array, bShape: Shape, outShape: Shape, loop: BinaryLoop): Float32Array {
  const out = new Float32Array(sizeOf(outShape));
  if (out.length === 0) return out;
  const dims: number[] = [];
  const sa: number[] = [];
  const sb: number[] = [];
  const rawA = broadcastStrides(aShape, outShape);
  const rawB = broadcastStrides(bShape, outShape);
  for (let i = 0; i < outShape.length; i++) {
    if (outShape[i] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && sa[last] === rawA[i] * outShape[i] && sb[last] === rawB[i] * outShape[i]) {
      dims[last] *= outShape[i];
      sa[last] = rawA[i];
      sb[last] = rawB[i];
    } else {
      dims.push(outShape[i]);
      sa.push(rawA[i]);
      sb.push(rawB[i]);
    }
  }
  if (dims.length === 0) {
    loop(out, 0, a, 0, 0, b, 0, 0, 1);
    return out;
  }
  const rank = dims.length;
  const inner = dims[rank - 1];
  const counter = new Array<number>(rank - 1).fill(0);
  let ai = 0;
  let bi = 0;
  for (let o = 0; o < out.length; o += inner) {
    loop(out, o, a, ai, sa[rank - 1], b, bi, sb[rank - 1], inner);
    for (let d = rank - 2; d >= 0; d--) {
      ai += sa[d];
      bi += sb[d];
      if (++counter[d] < dims[d]) break;
      ai -= sa[d] * dims[d];
      bi -= sb[d] * dims[d];
      counter[d] = 0;
    }
  }
  return out;
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

