/**
 * Safetensors element types and the conversions between their little-endian bytes and tsvene's
 * tensors: float types become float32 `Tensor`s, integer and bool types become int32 `IntTensor`s.
 */
import { IntTensor, Tensor } from "../tensor/index.js";

/** The dtypes tsvene loads. */
export const LOADABLE_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"] as const;
export type LoadableDtype = (typeof LOADABLE_DTYPES)[number];

/** The dtypes tsvene writes float tensors as; integer tensors are always written as I64. */
export type FloatWriteDtype = "F32" | "F16" | "BF16";
export type WriteDtype = FloatWriteDtype | "I64";

/**
 * Bytes per element of every whole-byte dtype the format defines. Headers naming any of these
 * validate, so a file can be inspected and its loadable tensors read even when it also holds,
 * say, F8 tensors.
 */
const ELEMENT_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** Bytes per element, or undefined for a dtype the format does not define. */
export function elementBytes(dtype: string): number | undefined {
  return Object.hasOwn(ELEMENT_BYTES, dtype) ? ELEMENT_BYTES[dtype] : undefined;
}

export function isLoadable(dtype: string): dtype is LoadableDtype {
  return (LOADABLE_DTYPES as readonly string[]).includes(dtype);
}

// Typed-array views read and write the file's little-endian bytes directly, which is only right
// on a little-endian host (every platform Node runs on in practice).
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("tsvene io: safetensors conversion needs a little-endian host");
}

/**
 * The tensor held by `raw` (the tensor's bytes, exactly, starting at an offset that is a multiple
 * of 8 in its buffer). The result may share `raw`'s buffer, so the caller hands it over.
 * `where` names the tensor for error messages.
 */
export function decodeTensor(
  dtype: LoadableDtype,
  shape: readonly number[],
  raw: Uint8Array,
  where: string,
): Tensor | IntTensor {
  const n = raw.byteLength / (elementBytes(dtype) ?? 1);
  switch (dtype) {
    case "F32":
      return new Tensor(new Float32Array(raw.buffer, raw.byteOffset, n), shape);
    case "F64":
      return new Tensor(Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, n)), shape);
    case "F16":
      return new Tensor(halfToFloat(new Uint16Array(raw.buffer, raw.byteOffset, n)), shape);
    case "BF16":
      return new Tensor(bfloat16ToFloat(new Uint16Array(raw.buffer, raw.byteOffset, n)), shape);
    case "I64":
      return new IntTensor(int64ToInt32(new Int32Array(raw.buffer, raw.byteOffset, 2 * n), where), shape);
    case "I32":
      return new IntTensor(new Int32Array(raw.buffer, raw.byteOffset, n), shape);
    case "I16":
      return new IntTensor(Int32Array.from(new Int16Array(raw.buffer, raw.byteOffset, n)), shape);
    case "I8":
      return new IntTensor(Int32Array.from(new Int8Array(raw.buffer, raw.byteOffset, n)), shape);
    case "U8":
    case "BOOL":
      return new IntTensor(Int32Array.from(raw), shape);
  }
}

/** The dtype a tensor is stored as when float tensors are written as `floatDtype`. */
export function storedDtype(t: Tensor | IntTensor, floatDtype: FloatWriteDtype): WriteDtype {
  return t instanceof IntTensor ? "I64" : floatDtype;
}

/** The little-endian bytes of `t` stored as `dtype` (F32 output shares the tensor's storage). */
export function encodeTensor(t: Tensor | IntTensor, dtype: WriteDtype): Uint8Array {
  if (t instanceof IntTensor) {
    if (dtype !== "I64") throw new TypeError(`encodeTensor: an IntTensor is stored as I64, not ${dtype}`);
    return int32ToInt64Bytes(t.data);
  }
  const bits = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
  switch (dtype) {
    case "F32":
      return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    case "F16":
      return asBytes(bits.length, (out) => {
        for (let i = 0; i < bits.length; i++) out[i] = floatBitsToHalf(bits[i]);
      });
    case "BF16":
      return asBytes(bits.length, (out) => {
        for (let i = 0; i < bits.length; i++) out[i] = floatBitsToBfloat16(bits[i]);
      });
    case "I64":
      throw new TypeError("encodeTensor: a float Tensor cannot be stored as I64");
  }
}

function asBytes(n: number, fill: (out: Uint16Array) => void): Uint8Array {
  const out = new Uint16Array(n);
  fill(out);
  return new Uint8Array(out.buffer);
}

let halfTable: Float32Array | undefined;

/** F16 → F32 is exact, so a 65536-entry table of every half value does it by lookup. */
function halfToFloat(halves: Uint16Array): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfBitsToNumber(h);
  }
  const table = halfTable;
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]];
  return out;
}

/** The value of an IEEE binary16 bit pattern. */
export function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/** BF16 is the top half of an F32, so widening is a shift of the bits. */
function bfloat16ToFloat(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  return out;
}

/** The binary16 bits nearest to an F32 (given as its bits), ties to even; NaN stays a quiet NaN. */
export function floatBitsToHalf(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const magnitude = bits & 0x7fffffff;
  if (magnitude > 0x7f800000) return sign | 0x7e00;
  if (magnitude >= 0x47800000) return sign | 0x7c00; // ≥ 2^16: beyond every finite half, and ±inf
  const exponent = magnitude >>> 23;
  if (exponent < 113) {
    // Below 2^-14 the half is subnormal: its integer mantissa is the value times 2^24.
    if (exponent === 0) return sign; // F32 subnormals are far below half's smallest subnormal
    return sign | roundShiftEven((magnitude & 0x7fffff) | 0x800000, 126 - exponent);
  }
  // Rounding may carry into the exponent, which is exactly the next representable value (or inf).
  return sign | roundShiftEven(((exponent - 112) << 23) | (magnitude & 0x7fffff), 13);
}

/** The BF16 bits nearest to an F32 (given as its bits), ties to even; NaN stays a quiet NaN. */
export function floatBitsToBfloat16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x0040;
  return roundShiftEven(bits >>> 0, 16);
}

/** value / 2^shift rounded to the nearest integer, ties to even (value is a non-negative uint32). */
function roundShiftEven(value: number, shift: number): number {
  const quotient = Math.floor(value / 2 ** shift);
  const remainder = value - quotient * 2 ** shift;
  const half = 2 ** (shift - 1);
  return remainder > half || (remainder === half && quotient % 2 === 1) ? quotient + 1 : quotient;
}

/** I64 values (as lo/hi int32 pairs) narrowed to int32, refusing any that do not fit. */
function int64ToInt32(pairs: Int32Array, where: string): Int32Array {
  const out = new Int32Array(pairs.length / 2);
  for (let i = 0; i < out.length; i++) {
    const lo = pairs[2 * i];
    const hi = pairs[2 * i + 1];
    if (hi !== lo >> 31) {
      const value = BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo >>> 0));
      throw new RangeError(
        `${where}: I64 value ${value} at flat index ${i} is outside the int32 range of IntTensor ` +
          "(-2147483648..2147483647)",
      );
    }
    out[i] = lo;
  }
  return out;
}

function int32ToInt64Bytes(values: Int32Array): Uint8Array {
  const pairs = new Int32Array(2 * values.length);
  for (let i = 0; i < values.length; i++) {
    pairs[2 * i] = values[i];
    pairs[2 * i + 1] = values[i] >> 31;
  }
  return new Uint8Array(pairs.buffer);
}
