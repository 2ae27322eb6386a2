/**
 * The safetensors format itself, on bytes in memory (no Node APIs, so it also serves the browser):
 * an 8-byte little-endian header length, a JSON header (an optional `__metadata__` map of strings,
 * and per tensor its dtype, shape and [begin, end) byte range in the data section), then the
 * data. Headers are validated as strictly as the reference Rust crate does. Writing reproduces
 * the crate's layout: header padded with spaces to a multiple of 8 bytes, tensors ordered by
 * dtype alignment (largest first), then by name.
 */
import { IntTensor, Tensor } from "../tensor/index.js";
import {
  decodeTensor,
  elementBytes,
  encodeTensor,
  isLoadable,
  LOADABLE_DTYPES,
  storedDtype,
  type FloatWriteDtype,
  type LoadableDtype,
  type WeightDtype,
  type WriteDtype,
} from "./dtypes.js";

export interface TensorInfo {
  dtype: string;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** Every tensor in the file, in data order. */
  tensors: Map<string, TensorInfo>;
  /** Where the data section starts: 8 + the header length. */
  dataStart: number;
}

export interface SafetensorsContents {
  metadata: Record<string, string>;
  /** Float dtypes as float32 `Tensor`, integer and bool dtypes as int32 `IntTensor`, in data order. */
  tensors: Map<string, Tensor | IntTensor>;
}

export interface ReadSafetensorsOptions {
  /** Load only these tensors (each must exist); default: all. */
  names?: Iterable<string>;
  /** The in-memory dtype of float tensors; default "float32". */
  dtype?: WeightDtype;
}

export interface WriteSafetensorsOptions {
  /**
   * What float tensors are stored as (rounded to nearest, ties to even); default F32.
   * IntTensors are always stored as I64.
   */
  dtype?: FloatWriteDtype;
  /** The header's `__metadata__`; omitted from the file when not given. */
  metadata?: Record<string, string>;
}

export type NamedTensors = Readonly<Record<string, Tensor | IntTensor>> | ReadonlyMap<string, Tensor | IntTensor>;

/** The Rust crate refuses larger headers; so do we, before allocating one. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";
const FLOAT_WRITE_DTYPES: readonly string[] = ["F32", "F16", "BF16"];

/**
 * Loads tensors from a whole safetensors file already in memory (a fetch in the browser, say).
 * `source` names the bytes in error messages.
 */
export function parseSafetensors(
  bytes: Uint8Array,
  options: ReadSafetensorsOptions & { source?: string } = {},
): SafetensorsContents {
  const source = options.source ?? "<bytes>";
  const header = parseSafetensorsHeader(bytes, source);
  const tensors = new Map<string, Tensor | IntTensor>();
  for (const [name, info] of selectTensors(header, options.names, source)) {
    // A copy, so the tensor starts aligned in a buffer of its own rather than pinning `bytes`.
    const raw = bytes.slice(header.dataStart + info.dataOffsets[0], header.dataStart + info.dataOffsets[1]);
    tensors.set(name, decodeEntry(name, info, raw, source, options.dtype));
  }
  return { metadata: header.metadata, tensors };
}

/** The validated header of a whole safetensors file in memory; `source` names the bytes in error messages. */
export function parseSafetensorsHeader(bytes: Uint8Array, source: string): SafetensorsHeader {
  if (bytes.byteLength < 8)
    throw new Error(
      `safetensors ${source}: ${bytes.byteLength} bytes is too short (expected at least the 8-byte header length)`,
    );
  const headerLength = checkHeaderLength(
    new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true),
    bytes.byteLength,
    source,
  );
  return parseHeader(bytes.subarray(8, 8 + headerLength), bytes.byteLength - 8 - headerLength, source);
}

/** The bytes of a safetensors file holding `tensors`, in memory. */
export function serializeSafetensors(tensors: NamedTensors, options: WriteSafetensorsOptions = {}): Uint8Array {
  const layout = planLayout(tensors, options);
  const out = new Uint8Array(layout.header.byteLength + layout.dataBytes);
  out.set(layout.header);
  let at = layout.header.byteLength;
  for (const { tensor, dtype } of layout.entries) {
    const bytes = encodeTensor(tensor, dtype);
    out.set(bytes, at);
    at += bytes.byteLength;
  }
  return out;
}

/** Bytes a tensor occupies in a file whose float tensors are stored as `dtype`. */
export function storedByteLength(t: Tensor | IntTensor, dtype: FloatWriteDtype = "F32"): number {
  return t.size * (elementBytes(storedDtype(t, dtype)) ?? 0);
}

/** The header length from the file's first 8 bytes, checked against the file size. */
export function checkHeaderLength(length: bigint, fileBytes: number, source: string): number {
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(
      `safetensors ${source}: header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit ` +
        "(is this a safetensors file?)",
    );
  }
  if (length > BigInt(fileBytes - 8)) {
    throw new Error(
      `safetensors ${source}: header length ${length} runs past the end of the ${fileBytes}-byte file ` +
        "(is this a safetensors file?)",
    );
  }
  return Number(length);
}

/** Parses and validates the JSON header; `dataBytes` is the size of the data section after it. */
export function parseHeader(bytes: Uint8Array, dataBytes: number, source: string): SafetensorsHeader {
  function fail(what: string): never {
    throw new Error(`safetensors ${source}: ${what}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(json)) fail("header must be a JSON object of tensor entries");

  const metadata: Record<string, string> = {};
  const entries: [string, TensorInfo][] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name !== METADATA_KEY) {
      entries.push([name, parseEntry(name, value, fail)]);
    } else if (value !== null) {
      if (!isPlainObject(value)) fail(`"${METADATA_KEY}" must be an object of strings`);
      for (const [key, text] of Object.entries(value)) {
        if (typeof text !== "string") fail(`"${METADATA_KEY}"."${key}" must be a string, got ${JSON.stringify(text)}`);
        metadata[key] = text;
      }
    }
  }

  // The tensors must tile the data section exactly: no gaps, no overlaps, nothing left over.
  entries.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let expectedBegin = 0;
  for (const [
    name,
    {
      dataOffsets: [begin, end],
    },
  ] of entries) {
    if (begin !== expectedBegin) {
      fail(
        `tensor "${name}" starts at data byte ${begin}, expected ${expectedBegin} ` +
          "(tensors must be contiguous, without gaps or overlaps)",
      );
    }
    if (end > dataBytes)
      fail(`tensor "${name}" ends at data byte ${end}, past the end of the ${dataBytes}-byte data section`);
    expectedBegin = end;
  }
  if (expectedBegin !== dataBytes) {
    fail(
      `the tensors cover ${expectedBegin} bytes but the data section holds ${dataBytes} (truncated or trailing data)`,
    );
  }
  return { metadata, tensors: new Map(entries), dataStart: 8 + bytes.byteLength };
}

/** The entries of `names` (all when undefined), in data order; an unknown name is an error. */
export function selectTensors(
  header: SafetensorsHeader,
  names: Iterable<string> | undefined,
  source: string,
): [string, TensorInfo][] {
  if (names === undefined) return [...header.tensors];
  const wanted = new Set(names);
  for (const name of wanted) {
    if (!header.tensors.has(name)) {
      const known = [...header.tensors.keys()];
      const sample = known
        .slice(0, 5)
        .map((k) => `"${k}"`)
        .join(", ");
      throw new Error(
        `safetensors ${source}: no tensor named "${name}" ` +
          `(the file holds ${known.length}: ${sample}${known.length > 5 ? ", …" : ""})`,
      );
    }
  }
  return [...header.tensors].filter(([name]) => wanted.has(name));
}

/** The tensor in `raw` (its bytes exactly, in a buffer the tensor may keep). */
export function decodeEntry(
  name: string,
  info: TensorInfo,
  raw: Uint8Array,
  source: string,
  target: WeightDtype = "float32",
): Tensor | IntTensor {
  if (!isLoadable(info.dtype)) {
    throw new Error(
      `safetensors ${source}: tensor "${name}" has dtype ${info.dtype}, which tsvene does not load ` +
        `(supported: ${LOADABLE_DTYPES.join(", ")})`,
    );
  }
  return decodeTensor(info.dtype as LoadableDtype, info.shape, raw, `safetensors ${source}: tensor "${name}"`, target);
}

export interface Layout {
  /** The 8 length bytes plus the padded JSON header. */
  header: Uint8Array;
  /** The tensors in file order with the dtype each is stored as. */
  entries: { tensor: Tensor | IntTensor; dtype: WriteDtype }[];
  dataBytes: number;
}

/** Where everything goes in the file that holds `tensors`. */
export function planLayout(tensors: NamedTensors, options: WriteSafetensorsOptions): Layout {
  const floatDtype = options.dtype ?? "F32";
  if (!FLOAT_WRITE_DTYPES.includes(floatDtype)) {
    throw new TypeError(
      `writeSafetensors: dtype ${JSON.stringify(floatDtype)} is not writable ` +
        `(expected one of ${FLOAT_WRITE_DTYPES.join(", ")})`,
    );
  }
  const utf8 = new TextEncoder();
  const named = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const entries = named.map(([name, tensor]) => {
    if (name === METADATA_KEY)
      throw new TypeError(`writeSafetensors: "${METADATA_KEY}" is reserved for the metadata and cannot name a tensor`);
    if (!(tensor instanceof Tensor) && !(tensor instanceof IntTensor)) {
      throw new TypeError(`writeSafetensors: "${name}" must be a Tensor or IntTensor, got ${describe(tensor)}`);
    }
    return { name, nameBytes: utf8.encode(name), tensor, dtype: storedDtype(tensor, floatDtype) };
  });
  entries.sort(
    (a, b) => (elementBytes(b.dtype) ?? 0) - (elementBytes(a.dtype) ?? 0) || compareBytes(a.nameBytes, b.nameBytes),
  );

  const json: Record<string, unknown> = {};
  if (options.metadata !== undefined) {
    for (const [key, value] of Object.entries(options.metadata)) {
      if (typeof value !== "string")
        throw new TypeError(`writeSafetensors: metadata "${key}" must be a string, got ${describe(value)}`);
    }
    json[METADATA_KEY] = options.metadata;
  }
  let offset = 0;
  for (const { name, tensor, dtype } of entries) {
    const bytes = tensor.size * (elementBytes(dtype) ?? 0);
    json[name] = { dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }

  const text = utf8.encode(JSON.stringify(json));
  const padded = Math.ceil(text.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(text, 8);
  return { header, entries: entries.map(({ tensor, dtype }) => ({ tensor, dtype })), dataBytes: offset };
}

function parseEntry(name: string, value: unknown, fail: (what: string) => never): TensorInfo {
  const where = `tensor "${name}"`;
  if (!isPlainObject(value)) return fail(`${where}: entry must be an object {dtype, shape, data_offsets}`);
  const { dtype, shape, data_offsets: offsets } = value;
  const bytesPerElement = typeof dtype === "string" ? elementBytes(dtype) : undefined;
  if (typeof dtype !== "string" || bytesPerElement === undefined)
    return fail(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    return fail(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every(isNonNegativeInteger) ||
    offsets[0] > offsets[1]
  ) {
    return fail(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  // Zeros count as ones here, so a zero cannot hide absurd sizes, and the byte count below is exact (under 2^53).
  const expectedBytes = (shape as number[]).reduce((n, d) => n * d, bytesPerElement);
  const largest = (shape as number[]).reduce((n, d) => n * Math.max(d, 1), bytesPerElement);
  if (!Number.isSafeInteger(largest)) {
    fail(
      `${where}: shape [${shape.join(", ")}] is absurd (its sizes multiply past 2^53; no file can hold such a tensor)`,
    );
  }
  if (end - begin !== expectedBytes) {
    fail(
      `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, ` +
        `but ${dtype} of shape [${shape.join(", ")}] needs ${expectedBytes}`,
    );
  }
  return { dtype, shape: shape as number[], dataOffsets: [begin, end] };
}

/** UTF-8 byte order, which is the Rust crate's name order (and code point order). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return (value as object).constructor?.name ?? "object";
  return typeof value;
}
