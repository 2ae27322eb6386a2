/**
 * Safetensors element types and the conversions between their little-endian bytes and tsvene's
 * tensors: float types become float32 `Tensor`s, integer and bool types become int32 `IntTensor`s.
 */
import { describe, OptionError } from "../options/index.js";
import { type HalfStorage, IntTensor, roundToHalf, Tensor, widen } from "../tensor/index.js";

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
 * The in-memory dtype of loaded float weights: "float32" (the default; every float dtype is
 * widened or narrowed to it), "bfloat16" (stored as bf16, converting F32/F16/F64 with rounding to
 * nearest), or "auto" (as in the file: BF16 and F16 stay 16-bit, F32 and F64 become float32).
 */
export type WeightDtype = "float32" | "bfloat16" | "auto";
export const WEIGHT_DTYPES: readonly WeightDtype[] = ["float32", "bfloat16", "auto"];

/** Whether decodeTensor keeps the bytes where they lie (a view of them) rather than converting them. */
export function decodesAsView(dtype: string, target: WeightDtype): boolean {
  switch (dtype) {
    case "F32":
      return target !== "bfloat16";
    case "BF16":
      return target !== "float32";
    case "F16":
      return target === "auto";
    case "I32":
      return true;
    default:
      return false;
  }
}

/** A `dtype` option's value: undefined reads as "float32"; anything else must be a WeightDtype. */
export function checkWeightDtype(value: unknown, where: string): WeightDtype {
  if (value === undefined) return "float32";
  if (!(WEIGHT_DTYPES as readonly unknown[]).includes(value))
    throw new OptionError(
      `${where}: dtype ${describe(value)} is not one of ${WEIGHT_DTYPES.map((d) => `"${d}"`).join(", ")}`,
    );
  return value as WeightDtype;
}

/**
 * The tensor held by `raw` (the tensor's bytes, exactly, starting at an offset in its buffer that
 * is a multiple of the dtype's element size), float types in `target`'s dtype. The result may share `raw`'s buffer, so
 * the caller hands it over. `where` names the tensor for error messages.
 */
export function decodeTensor(
  dtype: LoadableDtype,
  shape: readonly number[],
  raw: Uint8Array,
  where: string,
  target: WeightDtype = "float32",
): Tensor | IntTensor {
  const n = raw.byteLength / (elementBytes(dtype) ?? 1);
  switch (dtype) {
    case "F32":
    case "F64": {
      const values =
        dtype === "F32"
          ? new Float32Array(raw.buffer, raw.byteOffset, n)
          : Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, n));
      return new Tensor(target === "bfloat16" ? roundToHalf(values, "bfloat16") : values, shape);
    }
    case "F16":
    case "BF16": {
      const half: HalfStorage = {
        dtype: dtype === "F16" ? "float16" : "bfloat16",
        bits: new Uint16Array(raw.buffer, raw.byteOffset, n),
      };
      if (target === "float32") return new Tensor(widen(half), shape);
      if (target === "bfloat16" && half.dtype !== "bfloat16")
        return new Tensor(roundToHalf(widen(half), "bfloat16"), shape);
      return new Tensor(half, shape);
    }
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

/**
 * The little-endian bytes of `t` stored as `dtype` (F32 output shares a float32 tensor's storage,
 * and so does a 16-bit tensor's output in its own dtype).
 */
export function encodeTensor(t: Tensor | IntTensor, dtype: WriteDtype): Uint8Array {
  if (t instanceof IntTensor) {
    if (dtype !== "I64") throw new TypeError(`encodeTensor: an IntTensor is stored as I64, not ${dtype}`);
    return int32ToInt64Bytes(t.data);
  }
  if (dtype === "I64") throw new TypeError("encodeTensor: a float Tensor cannot be stored as I64");
  const half = t.half;
  const wanted = dtype === "F16" ? "float16" : dtype === "BF16" ? "bfloat16" : "float32";
  if (half !== null && half.dtype === wanted)
    return new Uint8Array(half.bits.buffer, half.bits.byteOffset, half.bits.byteLength);
  if (wanted === "float32") return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const { bits } = roundToHalf(t.data, wanted);
  return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
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
