/**
 * The argument checks of the kernel contract (types.ts), shared by every kernel set written in
 * TypeScript or run through it (js.ts, wasm.ts); native/tsvene.c makes the same checks with the
 * same messages. Arrays have the exact lengths the sizes imply (elementwise outputs as long as x;
 * row kernels rows·cols, rows or cols); sgemmBatch needs each matrix of the batch inside its array,
 * binaryStrided and copyStrided every element they read. A check throws a TypeError (wrong type)
 * or RangeError (wrong value) starting with the kernel's name, before anything is written.
 */
import type { BinaryOp } from "./types.js";

/** The binary ops in the order of native/kernels.h's BinaryOp. */
export const BINARY_OPS: readonly BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum"];

function checkFloat32(kernel: string, name: string, value: unknown): void {
  if (!(value instanceof Float32Array)) throw new TypeError(`${kernel}: ${name} must be a Float32Array`);
}

function checkOptionalRow(kernel: string, name: string, value: unknown, cols: number): void {
  if (value === null) return;
  if (!(value instanceof Float32Array)) throw new TypeError(`${kernel}: ${name} must be a Float32Array or null`);
  checkLength(kernel, name, value.length, cols, "cols");
}

function checkInt32(kernel: string, name: string, value: unknown): void {
  if (!(value instanceof Int32Array)) throw new TypeError(`${kernel}: ${name} must be an Int32Array`);
}

function checkNumber(kernel: string, name: string, value: unknown): void {
  if (typeof value !== "number") throw new TypeError(`${kernel}: ${name} must be a number`);
}

function checkBoolean(kernel: string, name: string, value: unknown): void {
  if (typeof value !== "boolean") throw new TypeError(`${kernel}: ${name} must be a boolean`);
}

/** Sizes are capped at 2^31 − 1 because the native kernels hand them to OpenBLAS as int. */
function checkSize(kernel: string, name: string, value: unknown): void {
  checkNumber(kernel, name, value);
  const size = value as number;
  if (!(Number.isInteger(size) && size >= 0 && size <= 0x7fffffff)) {
    throw new RangeError(`${kernel}: ${name} must be an integer in [0, 2^31), got ${size}`);
  }
}

function checkLength(kernel: string, name: string, length: number, expected: number, what: string): void {
  if (length !== expected) {
    throw new RangeError(`${kernel}: ${name} has ${length} elements; expected ${what} = ${expected}`);
  }
}

export function checkUnary(kernel: string, x: Float32Array, out: Float32Array): void {
  checkFloat32(kernel, "x", x);
  checkFloat32(kernel, "out", out);
  checkLength(kernel, "out", out.length, x.length, "x.length");
}

export function checkSelect(cond: Float32Array, a: Float32Array, b: Float32Array, out: Float32Array): void {
  for (const [name, array] of [
    ["cond", cond],
    ["a", a],
    ["b", b],
    ["out", out],
  ] as const) {
    checkFloat32("select", name, array);
    checkLength("select", name, array.length, cond.length, "cond.length");
  }
}

export function checkUnaryBackward(kernel: string, x: Float32Array, gradOut: Float32Array, gradIn: Float32Array): void {
  checkFloat32(kernel, "x", x);
  checkFloat32(kernel, "gradOut", gradOut);
  checkFloat32(kernel, "gradIn", gradIn);
  checkLength(kernel, "gradOut", gradOut.length, x.length, "x.length");
  checkLength(kernel, "gradIn", gradIn.length, x.length, "x.length");
}

/**
 * One operand of sgemmBatch: its leading dimension, and every matrix of the batch inside the array.
 * Unlike BLAS, ld = 0 is accepted for a matrix without columns (e.g. k = 0), as shape code computes it.
 */
function checkSgemmOperand(
  arrayName: string,
  arrayLength: number,
  ldName: string,
  ld: number,
  offsetsName: string,
  offsets: Int32Array,
  storedRows: number,
  storedCols: number,
): void {
  if (ld < storedCols) {
    throw new RangeError(
      `sgemmBatch: ${ldName} must be at least ${storedCols} (the columns of the stored ${arrayName}), got ${ld}`,
    );
  }
  const extent = storedRows === 0 || storedCols === 0 ? 0 : (storedRows - 1) * ld + storedCols;
  for (let i = 0; i < offsets.length; i++) {
    if (offsets[i] < 0) throw new RangeError(`sgemmBatch: ${offsetsName}[${i}] is negative (${offsets[i]})`);
    if (offsets[i] + extent > arrayLength) {
      throw new RangeError(
        `sgemmBatch: ${arrayName} is too short for matrix ${i}: ` +
          `offset ${offsets[i]} + extent ${extent} > length ${arrayLength}`,
      );
    }
  }
}

/**
 * Checks dims (no entry negative) and returns their product, 0 when an entry is 0. Products above
 * 2^53 are refused. native/tsvene.c computes the same double products, so messages agree.
 */
function checkDims(kernel: string, dims: Int32Array): number {
  let product = 1;
  let empty = false;
  for (let d = 0; d < dims.length; d++) {
    if (dims[d] < 0) throw new RangeError(`${kernel}: dims[${d}] is negative (${dims[d]})`);
    if (dims[d] === 0) empty = true;
    product *= dims[d];
  }
  if (empty) return 0;
  if (product > 2 ** 53) throw new RangeError(`${kernel}: the product of dims is above 2^53`);
  return product;
}

function checkStrides(kernel: string, name: string, strides: Int32Array, rank: number): void {
  checkLength(kernel, name, strides.length, rank, "dims.length");
  for (let d = 0; d < rank; d++) {
    if (strides[d] < 0) throw new RangeError(`${kernel}: ${name}[${d}] is negative (${strides[d]})`);
  }
}

/**
 * One strided operand lies inside its array: the last element read, offset + Σ (dims[d] − 1)·
 * strides[d], is below the length (dims all ≥ 1 here). Summed in float64 in the same order as the
 * native check: exact below 2^53, and never below the length when the exact sum is not.
 */
function checkExtent(
  kernel: string,
  arrayName: string,
  length: number,
  offsetName: string,
  offset: number,
  stridesName: string,
  strides: Int32Array,
  dims: Int32Array,
): void {
  let last = offset;
  for (let d = 0; d < dims.length; d++) last += (dims[d] - 1) * strides[d];
  if (last >= length) {
    throw new RangeError(
      `${kernel}: ${arrayName} is too short: ${offsetName} + sum((dims[d] - 1) * ` +
        `${stridesName}[d]) = ${last}, but ${arrayName} has ${length} elements`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The checks of each kernel, in the order of its parameters as far as the messages allow.

export function checkSgemmBatch(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  aOffsets: Int32Array,
  b: Float32Array,
  ldb: number,
  bOffsets: Int32Array,
  beta: number,
  c: Float32Array,
  ldc: number,
  cOffsets: Int32Array,
): void {
  const kernel = "sgemmBatch";
  checkBoolean(kernel, "transA", transA);
  checkBoolean(kernel, "transB", transB);
  checkSize(kernel, "m", m);
  checkSize(kernel, "n", n);
  checkSize(kernel, "k", k);
  checkNumber(kernel, "alpha", alpha);
  checkFloat32(kernel, "a", a);
  checkSize(kernel, "lda", lda);
  checkInt32(kernel, "aOffsets", aOffsets);
  checkFloat32(kernel, "b", b);
  checkSize(kernel, "ldb", ldb);
  checkInt32(kernel, "bOffsets", bOffsets);
  checkNumber(kernel, "beta", beta);
  checkFloat32(kernel, "c", c);
  checkSize(kernel, "ldc", ldc);
  checkInt32(kernel, "cOffsets", cOffsets);
  if (bOffsets.length !== aOffsets.length || cOffsets.length !== aOffsets.length) {
    throw new RangeError(
      `${kernel}: aOffsets, bOffsets and cOffsets must have the same length, ` +
        `got ${aOffsets.length}, ${bOffsets.length} and ${cOffsets.length}`,
    );
  }
  checkSgemmOperand("a", a.length, "lda", lda, "aOffsets", aOffsets, transA ? k : m, transA ? m : k);
  checkSgemmOperand("b", b.length, "ldb", ldb, "bOffsets", bOffsets, transB ? n : k, transB ? k : n);
  checkSgemmOperand("c", c.length, "ldc", ldc, "cOffsets", cOffsets, m, n);
}

/** Checks binaryStrided's arguments; returns the product of dims (out's length). */
export function checkBinaryStrided(
  op: BinaryOp,
  dims: Int32Array,
  a: Float32Array,
  aOffset: number,
  aStrides: Int32Array,
  b: Float32Array,
  bOffset: number,
  bStrides: Int32Array,
  out: Float32Array,
): number {
  const kernel = "binaryStrided";
  if (typeof op !== "string") throw new TypeError(`${kernel}: op must be a string`);
  if (!BINARY_OPS.includes(op)) {
    throw new RangeError(`${kernel}: op must be one of "add", "sub", "mul", "div", "pow", "maximum"`);
  }
  checkInt32(kernel, "dims", dims);
  checkFloat32(kernel, "a", a);
  checkSize(kernel, "aOffset", aOffset);
  checkInt32(kernel, "aStrides", aStrides);
  checkFloat32(kernel, "b", b);
  checkSize(kernel, "bOffset", bOffset);
  checkInt32(kernel, "bStrides", bStrides);
  checkFloat32(kernel, "out", out);
  const size = checkDims(kernel, dims);
  checkStrides(kernel, "aStrides", aStrides, dims.length);
  checkStrides(kernel, "bStrides", bStrides, dims.length);
  checkLength(kernel, "out", out.length, size, "the product of dims");
  if (size === 0) return 0;
  checkExtent(kernel, "a", a.length, "aOffset", aOffset, "aStrides", aStrides, dims);
  checkExtent(kernel, "b", b.length, "bOffset", bOffset, "bStrides", bStrides, dims);
  return size;
}

/** Checks copyStrided's arguments; returns the product of dims (out's length). */
export function checkCopyStrided(
  dims: Int32Array,
  src: Float32Array,
  srcOffset: number,
  srcStrides: Int32Array,
  out: Float32Array,
): number {
  const kernel = "copyStrided";
  checkInt32(kernel, "dims", dims);
  checkFloat32(kernel, "src", src);
  checkSize(kernel, "srcOffset", srcOffset);
  checkInt32(kernel, "srcStrides", srcStrides);
  checkFloat32(kernel, "out", out);
  const size = checkDims(kernel, dims);
  checkStrides(kernel, "srcStrides", srcStrides, dims.length);
  checkLength(kernel, "out", out.length, size, "the product of dims");
  if (size === 0) return 0;
  checkExtent(kernel, "src", src.length, "srcOffset", srcOffset, "srcStrides", srcStrides, dims);
  return size;
}

export function checkSoftmaxRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const kernel = "softmaxRows";
  checkFloat32(kernel, "x", x);
  checkSize(kernel, "rows", rows);
  checkSize(kernel, "cols", cols);
  checkFloat32(kernel, "out", out);
  checkLength(kernel, "x", x.length, rows * cols, "rows*cols");
  checkLength(kernel, "out", out.length, rows * cols, "rows*cols");
}

export function checkSoftmaxRowsBackward(
  y: Float32Array,
  gradOut: Float32Array,
  rows: number,
  cols: number,
  gradIn: Float32Array,
): void {
  const kernel = "softmaxRowsBackward";
  checkFloat32(kernel, "y", y);
  checkFloat32(kernel, "gradOut", gradOut);
  checkSize(kernel, "rows", rows);
  checkSize(kernel, "cols", cols);
  checkFloat32(kernel, "gradIn", gradIn);
  checkLength(kernel, "y", y.length, rows * cols, "rows*cols");
  checkLength(kernel, "gradOut", gradOut.length, rows * cols, "rows*cols");
  checkLength(kernel, "gradIn", gradIn.length, rows * cols, "rows*cols");
}

export function checkAttentionSoftmax(
  x: Float32Array,
  batch: number,
  heads: number,
  queries: number,
  keys: number,
  divisor: number,
  window: number,
  padding: Float32Array | null,
  out: Float32Array,
): void {
  const kernel = "attentionSoftmax";
  checkFloat32(kernel, "x", x);
  checkSize(kernel, "batch", batch);
  checkSize(kernel, "heads", heads);
  checkSize(kernel, "queries", queries);
  checkSize(kernel, "keys", keys);
  checkNumber(kernel, "divisor", divisor);
  checkSize(kernel, "window", window);
  if (padding !== null && !(padding instanceof Float32Array)) {
    throw new TypeError(`${kernel}: padding must be a Float32Array or null`);
  }
  checkFloat32(kernel, "out", out);
  if (queries > keys) {
    throw new RangeError(
      `${kernel}: queries (${queries}) must not exceed keys (${keys}): the queries are the last keys positions`,
    );
  }
  const size = batch * heads * queries * keys;
  checkLength(kernel, "x", x.length, size, "batch*heads*queries*keys");
  checkLength(kernel, "out", out.length, size, "batch*heads*queries*keys");
  if (padding !== null) checkLength(kernel, "padding", padding.length, batch * keys, "batch*keys");
}

export function checkLayerNormRows(
  x: Float32Array,
  weight: Float32Array | null,
  bias: Float32Array | null,
  eps: number,
  rows: number,
  cols: number,
  out: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
): void {
  const kernel = "layerNormRows";
  checkFloat32(kernel, "x", x);
  checkNumber(kernel, "eps", eps);
  checkSize(kernel, "rows", rows);
  checkSize(kernel, "cols", cols);
  checkOptionalRow(kernel, "weight", weight, cols);
  checkOptionalRow(kernel, "bias", bias, cols);
  checkFloat32(kernel, "out", out);
  checkFloat32(kernel, "mean", mean);
  checkFloat32(kernel, "rstd", rstd);
  checkLength(kernel, "x", x.length, rows * cols, "rows*cols");
  checkLength(kernel, "out", out.length, rows * cols, "rows*cols");
  checkLength(kernel, "mean", mean.length, rows, "rows");
  checkLength(kernel, "rstd", rstd.length, rows, "rows");
}

export function checkLayerNormRowsBackward(
  x: Float32Array,
  weight: Float32Array | null,
  mean: Float32Array,
  rstd: Float32Array,
  gradOut: Float32Array,
  rows: number,
  cols: number,
  gradX: Float32Array,
  gradWeight: Float32Array | null,
  gradBias: Float32Array | null,
): void {
  const kernel = "layerNormRowsBackward";
  checkFloat32(kernel, "x", x);
  checkSize(kernel, "rows", rows);
  checkSize(kernel, "cols", cols);
  checkOptionalRow(kernel, "weight", weight, cols);
  checkFloat32(kernel, "mean", mean);
  checkFloat32(kernel, "rstd", rstd);
  checkFloat32(kernel, "gradOut", gradOut);
  checkFloat32(kernel, "gradX", gradX);
  checkOptionalRow(kernel, "gradWeight", gradWeight, cols);
  checkOptionalRow(kernel, "gradBias", gradBias, cols);
  checkLength(kernel, "x", x.length, rows * cols, "rows*cols");
  checkLength(kernel, "mean", mean.length, rows, "rows");
  checkLength(kernel, "rstd", rstd.length, rows, "rows");
  checkLength(kernel, "gradOut", gradOut.length, rows * cols, "rows*cols");
  checkLength(kernel, "gradX", gradX.length, rows * cols, "rows*cols");
}

export function checkRmsNormRows(
  x: Float32Array,
  weight: Float32Array | null,
  eps: number,
  rows: number,
  cols: number,
  out: Float32Array,
  rstd: Float32Array,
): void {
  const kernel = "rmsNormRows";
  checkFloat32(kernel, "x", x);
  checkNumber(kernel, "eps", eps);
  checkSize(kernel, "rows", rows);
  checkSize(kernel, "cols", cols);
  checkOptionalRow(kernel, "weight", weight, cols);
  checkFloat32(kernel, "out", out);
  checkFloat32(kernel, "rstd", rstd);
  checkLength(kernel, "x", x.length, rows * cols, "rows*cols");
  checkLength(kernel, "out", out.length, rows * cols, "rows*cols");
  checkLength(kernel, "rstd", rstd.length, rows, "rows");
}

export function checkRmsNormRowsBackward(
  x: Float32Array,
  weight: Float32Array | null,
  rstd: Float32Array,
  gradOut: Float32Array,
  rows: number,
  cols: number,
  gradX: Float32Array,
  gradWeight: Float32Array | null,
): void {
  const kernel = "rmsNormRowsBackward";
  checkFloat32(kernel, "x", x);
  checkSize(kernel, "rows", rows);
  checkSize(kernel, "cols", cols);
  checkOptionalRow(kernel, "weight", weight, cols);
  checkFloat32(kernel, "rstd", rstd);
  checkFloat32(kernel, "gradOut", gradOut);
  checkFloat32(kernel, "gradX", gradX);
  checkOptionalRow(kernel, "gradWeight", gradWeight, cols);
  checkLength(kernel, "x", x.length, rows * cols, "rows*cols");
  checkLength(kernel, "rstd", rstd.length, rows, "rows");
  checkLength(kernel, "gradOut", gradOut.length, rows * cols, "rows*cols");
  checkLength(kernel, "gradX", gradX.length, rows * cols, "rows*cols");
}
