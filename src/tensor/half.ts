/**
 * 16-bit float storage for weights: bfloat16 (float32's top half) and IEEE float16, kept as their
 * bits so that a checkpoint's bf16 weights take 2 bytes in memory. Computation stays float32:
 * values are widened (exactly) where an op reads them, and float32 values are rounded to the
 * nearest 16-bit value, ties to even, where weights are stored as half.
 */

export type HalfDtype = "bfloat16" | "float16";
export type Dtype = "float32" | HalfDtype;
export const HALF_DTYPES: readonly HalfDtype[] = ["bfloat16", "float16"];

/** The bits of a 16-bit float tensor, row-major. */
export interface HalfStorage {
  readonly dtype: HalfDtype;
  readonly bits: Uint16Array;
}

let float16Table: Float32Array | undefined;

/** F16 → F32 is exact, so a 65536-entry table of every half value does it by lookup. */
function float16Values(): Float32Array {
  if (float16Table === undefined) {
    float16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) float16Table[h] = float16BitsToNumber(h);
  }
  return float16Table;
}

/** The value of an IEEE binary16 bit pattern. */
export function float16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/**
 * Widens `count` values of `half` starting at element `from` into `out` starting at `at`
 * (exact: every 16-bit value is a float32).
 */
export function widenInto(half: HalfStorage, from: number, count: number, out: Float32Array, at = 0): void {
  const bits = half.bits;
  if (half.dtype === "bfloat16") {
    // BF16 is the top half of an F32, so widening is a shift of the bits.
    const outBits = new Uint32Array(out.buffer, out.byteOffset + at * 4, count);
    for (let i = 0; i < count; i++) outBits[i] = bits[from + i] << 16;
    return;
  }
  const table = float16Values();
  for (let i = 0; i < count; i++) out[at + i] = table[bits[from + i]];
}

/** Every value of `half` as float32. */
export function widen(half: HalfStorage): Float32Array {
  const out = new Float32Array(half.bits.length);
  widenInto(half, 0, half.bits.length, out);
  return out;
}

/** `values` rounded to `dtype` (nearest, ties to even; NaN stays NaN, overflow becomes ±inf). */
export function roundToHalf(values: Float32Array, dtype: HalfDtype): HalfStorage {
  const source = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const bits = new Uint16Array(values.length);
  if (dtype === "bfloat16") {
    for (let i = 0; i < bits.length; i++) bits[i] = floatBitsToBfloat16(source[i]);
  } else {
    for (let i = 0; i < bits.length; i++) bits[i] = floatBitsToFloat16(source[i]);
  }
  return { dtype, bits };
}

/** The BF16 bits nearest to an F32 (given as its bits), ties to even; NaN stays a quiet NaN. */
export function floatBitsToBfloat16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x0040;
  // Adding 0x7fff plus the kept part's lowest bit rounds to nearest, ties to even; a carry into
  // the exponent is exactly the next representable value (or inf). Below 2^32 for every non-NaN.
  return ((bits >>> 0) + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

/** The binary16 bits nearest to an F32 (given as its bits), ties to even; NaN stays a quiet NaN. */
export function floatBitsToFloat16(bits: number): number {
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

/** value / 2^shift rounded to the nearest integer, ties to even (value is a non-negative uint32). */
function roundShiftEven(value: number, shift: number): number {
  const quotient = Math.floor(value / 2 ** shift);
  const remainder = value - quotient * 2 ** shift;
  const half = 2 ** (shift - 1);
  return remainder > half || (remainder === half && quotient % 2 === 1) ? quotient + 1 : quotient;
}
