/**
 * Helpers of the kernel tests: seeded random inputs, closeness and ulp assertions, random strided
 * views with their per-element definition, and float64 references for finite differences.
 */
import assert from "node:assert/strict";
import type { BinaryOp } from "../../src/tensor/kernels/types.js";

/** mulberry32: a small seeded PRNG, so failures reproduce. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uniform(random: () => number, length: number, scale: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (2 * random() - 1) * scale;
  return out;
}

export interface Tolerance {
  rtol: number;
  /** Absolute slack, one number or one per element. */
  atol?: number | ArrayLike<number>;
}

/** |actual − expected| ≤ atol + rtol·|expected| elementwise; NaN matches NaN, ±Infinity itself. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: Tolerance,
  label: string,
): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || !Number.isFinite(e)) {
      assert.ok(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)), `${label}[${i}]: ${a}, expected ${e}`);
      continue;
    }
    const atol = typeof tolerance.atol === "number" ? tolerance.atol : (tolerance.atol?.[i] ?? 0);
    const excess = Math.abs(a - e) - (atol + tolerance.rtol * Math.abs(e));
    if (!(excess <= worstExcess)) {
      worst = i;
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${label}[${worst}]: ${actual[worst]}, expected ${expected[worst]} ` +
        `(off by ${Math.abs(actual[worst] - expected[worst])})`,
    );
  }
}

/** Float32 rounding of an exact value: half an ulp, about 6e-8 relative. */
export const FLOAT32_ROUNDING: Tolerance = { rtol: 6e-8, atol: 1e-45 };

export function f32(values: readonly number[]): Float32Array {
  return new Float32Array(values);
}

export function i32(values: readonly number[]): Int32Array {
  return new Int32Array(values);
}

/** Elementwise equality with NaN matching NaN and −0 told from +0. */
export function assertSameValues(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) assert.fail(`${label}[${i}]: ${actual[i]}, expected ${expected[i]}`);
  }
}

const bitsView = new DataView(new ArrayBuffer(4));

/** Float32 values as integers in the order of the values (−0 and +0 both 0), so ulps subtract. */
function orderedBits(value: number): number {
  bitsView.setFloat32(0, value);
  const bits = bitsView.getInt32(0);
  return bits < 0 ? -(bits & 0x7fffffff) : bits;
}

/** Equal within `ulps` float32 ulps; NaN matches NaN, infinities only themselves. */
export function assertWithinUlps(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  ulps: number,
  label: string,
): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || !Number.isFinite(e)) {
      if (!(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e))))
        assert.fail(`${label}[${i}]: ${a}, expected ${e}`);
    } else if (!(Math.abs(orderedBits(a) - orderedBits(e)) <= ulps)) {
      assert.fail(`${label}[${i}]: ${a}, expected ${e} (${Math.abs(orderedBits(a) - orderedBits(e))} ulps apart)`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Strided operands: random layouts and a per-element reference.

export const BINARY_OPS: readonly BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum"];

export interface StridedView {
  data: Float32Array;
  offset: number;
  strides: Int32Array;
}

/**
 * A random view of shape `dims` into fresh storage: the dims stored in a random order (so strides
 * come permuted), some broadcast (stride 0) when allowed, padding between storage rows, a random
 * offset and slack at the end.
 */
export function randomView(
  random: () => number,
  dims: readonly number[],
  broadcast: boolean,
  values: (length: number) => Float32Array,
): StridedView {
  const rank = dims.length;
  const order = Array.from({ length: rank }, (_, d) => d);
  for (let k = rank - 1; k > 0; k--) {
    const j = Math.floor(random() * (k + 1));
    [order[k], order[j]] = [order[j], order[k]];
  }
  const strides = new Int32Array(rank);
  let step = 1;
  for (let k = rank - 1; k >= 0; k--) {
    const d = order[k];
    if (broadcast && random() < 0.3) continue; // stride 0
    strides[d] = step;
    step *= dims[d] + (random() < 0.25 ? 1 : 0);
  }
  const offset = Math.floor(random() * 5);
  let last = offset;
  for (let d = 0; d < rank; d++) last += Math.max(dims[d] - 1, 0) * strides[d];
  return { data: values(last + 1 + Math.floor(random() * 3)), offset, strides };
}

/** The element each output position reads, by the definition: offset + Σ i_d·strides[d]. */
export function stridedIndices(dims: readonly number[], offset: number, strides: Int32Array): number[] {
  const size = dims.reduce((p, d) => p * d, 1);
  const indices: number[] = [];
  for (let flat = 0; flat < size; flat++) {
    let rest = flat;
    let index = offset;
    for (let d = dims.length - 1; d >= 0; d--) {
      index += (rest % dims[d]) * strides[d];
      rest = Math.floor(rest / dims[d]);
    }
    indices.push(index);
  }
  return indices;
}

/** One element of binaryStrided computed from its definition (pow as in C: pow(1, y) = pow(−1, ±inf) = 1). */
export function binaryReference(op: BinaryOp, x: number, y: number): number {
  switch (op) {
    case "add":
      return x + y;
    case "sub":
      return x - y;
    case "mul":
      return x * y;
    case "div":
      return x / y;
    case "pow":
      return x === 1 || (x === -1 && Math.abs(y) === Infinity) ? 1 : x ** y;
    case "maximum":
      return x >= y || Number.isNaN(x) ? x : y;
  }
}

/** Random float32 values with, at the given rate, NaN, ±inf, ±0, ±1, a subnormal and a huge value. */
export function valuesWithSpecials(
  random: () => number,
  scale: number,
  rate: number,
): (length: number) => Float32Array {
  const specials = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 1e-40, 3e38, 2];
  return (length) => {
    const out = uniform(random, length, scale);
    for (let i = 0; i < length; i++) {
      if (random() < rate) out[i] = specials[Math.floor(random() * specials.length)];
    }
    return out;
  };
}

/** Shapes of rank 0 to 5 with dims 1, 2, 3 and 7, and sometimes a long last dim. */
export function randomDims(random: () => number, rank: number): number[] {
  const choices = [1, 2, 3, 7];
  const dims = Array.from({ length: rank }, () => choices[Math.floor(random() * choices.length)]);
  if (rank > 0 && random() < 0.25) dims[rank - 1] = 37 + Math.floor(random() * 64);
  return dims;
}

// ---------------------------------------------------------------------------------------------
// Float64 references for the finite-difference checks of the backward kernels.

export function layerNorm64(
  x: Float64Array,
  weight: Float64Array | null,
  bias: Float64Array | null,
  eps: number,
  rows: number,
  cols: number,
): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const mean = row.reduce((s, v) => s + v, 0) / cols;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / cols;
    for (let j = 0; j < cols; j++) {
      out[r * cols + j] = ((row[j] - mean) / Math.sqrt(variance + eps)) * (weight?.[j] ?? 1) + (bias?.[j] ?? 0);
    }
  }
  return out;
}

export function rmsNorm64(
  x: Float64Array,
  weight: Float64Array | null,
  eps: number,
  rows: number,
  cols: number,
): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const meanSquare = row.reduce((s, v) => s + v * v, 0) / cols;
    for (let j = 0; j < cols; j++) out[r * cols + j] = (row[j] / Math.sqrt(meanSquare + eps)) * (weight?.[j] ?? 1);
  }
  return out;
}

export function softmax64(x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const max = Math.max(...row);
    const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
    for (let j = 0; j < cols; j++) out[r * cols + j] = Math.exp(row[j] - max) / sum;
  }
  return out;
}

/** ∂(Σ gradOut·f(v))/∂v by central differences; f runs in float64 on a perturbed copy of v. */
export function numericGradient(
  v: Float32Array,
  gradOut: Float32Array,
  f: (v: Float64Array) => Float64Array,
): Float64Array {
  const h = 1e-6;
  const point = Float64Array.from(v);
  const loss = (): number => f(point).reduce((s, y, i) => s + gradOut[i] * y, 0);
  const grad = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    point[i] = v[i] + h;
    const up = loss();
    point[i] = v[i] - h;
    const down = loss();
    point[i] = v[i];
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}
