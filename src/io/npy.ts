/**
 * NumPy's array files: .npy (a magic string, a Python-literal header giving dtype, order and shape,
 * then the raw C-order data) and .npz (a zip of .npy members, stored by np.savez and deflated by
 * np.savez_compressed). Float arrays of 2, 4 or 8 bytes load as float32 Tensors; other dtypes,
 * Fortran order and object arrays are refused, naming the array. Deflated members are inflated with
 * the web platform's DecompressionStream, so this module runs in a browser as well as in Node.
 */
import type { Tensor } from "../tensor/index.js";
import { formatShape } from "../tensor/shape.js";
import { decodeTensor, elementBytes, type LoadableDtype } from "./dtypes.js";
import { failure, listZipMembers } from "./torch-zip.js";

/** "\x93NUMPY", the first six bytes of every .npy file. */
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/** NumPy's little-endian float descriptors and the safetensors dtype that decodes the same bytes. */
const FLOAT_DESCRIPTORS: Readonly<Record<string, LoadableDtype>> = { "<f2": "F16", "<f4": "F32", "<f8": "F64" };

/** The array held by the bytes of a .npy file; `source` names it in errors. */
export function parseNpy(bytes: Uint8Array, source: string): Tensor {
  const fail = (why: string): never => {
    throw new Error(`${source}: not a readable .npy array (${why})`);
  };
  if (bytes.byteLength < 10 || MAGIC.some((b, i) => bytes[i] !== b)) fail('it does not start with "\\x93NUMPY"');
  const major = bytes[6];
  if (major < 1 || major > 3) fail(`format version ${major}.${bytes[7]} is unknown (1.0 to 3.0 are read)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [headerStart, headerLength] = major === 1 ? [10, view.getUint16(8, true)] : [12, view.getUint32(8, true)];
  if (headerStart + headerLength > bytes.byteLength) fail("the header runs past the end of the file");
  const header = new TextDecoder().decode(bytes.subarray(headerStart, headerStart + headerLength));
  const { descriptor, fortranOrder, shape } = parseHeader(header, fail);
  if (fortranOrder)
    fail("it is stored in Fortran (column-major) order; save it with np.ascontiguousarray(a) for C order");
  if (descriptor.includes("O"))
    fail(`dtype '${descriptor}' is an object array (pickled Python objects), which is never loaded`);
  const dtype = FLOAT_DESCRIPTORS[descriptor];
  if (dtype === undefined)
    fail(
      `dtype '${descriptor}' is not read; expected little-endian floats: ${Object.keys(FLOAT_DESCRIPTORS).join(", ")}`,
    );
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLength;
  const expected = count * elementBytes(dtype)!;
  if (bytes.byteLength - dataStart !== expected)
    fail(
      `shape ${formatShape(shape)} of '${descriptor}' needs ${expected} data bytes, ` +
        `the file has ${bytes.byteLength - dataStart}`,
    );
  // A copy starts the data at offset 0 of its own buffer, aligned for the typed-array view decodeTensor makes.
  return decodeTensor(dtype, shape, bytes.slice(dataStart), source) as Tensor;
}

/** The arrays of a .npz archive by name (without the ".npy" each member's name ends with). */
export async function parseNpz(bytes: Uint8Array, source: string): Promise<Map<string, Tensor>> {
  const fail = failure(source, "NumPy .npz archive");
  const arrays = new Map<string, Tensor>();
  for (const { name, deflated, stored, size } of listZipMembers(bytes, source, "NumPy .npz archive")) {
    if (!name.endsWith(".npy")) fail(`member "${name}" is not a .npy array`);
    const raw = deflated ? await inflateRaw(stored, size, name, fail) : stored;
    arrays.set(name.slice(0, -".npy".length), parseNpy(raw, `${source}: array "${name.slice(0, -4)}"`));
  }
  return arrays;
}

/** A header such as {'descr': '<f4', 'fortran_order': False, 'shape': (2304, 16384), }. */
function parseHeader(
  header: string,
  fail: (why: string) => never,
): { descriptor: string; fortranOrder: boolean; shape: number[] } {
  const descriptor = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const order = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descriptor === undefined || order === undefined || shapeText === undefined)
    fail(`its header ${JSON.stringify(header.trim())} lacks 'descr', 'fortran_order' or 'shape'`);
  const shape = shapeText!
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => (/^\d+$/.test(s) ? Number(s) : fail(`shape entry "${s}" is not a size`)));
  return { descriptor: descriptor!, fortranOrder: order === "True", shape };
}

async function inflateRaw(
  stored: Uint8Array,
  size: number,
  name: string,
  fail: (why: string) => never,
): Promise<Uint8Array> {
  // slice(): a Blob takes bytes on an ArrayBuffer of their own.
  const reader = new Blob([stored.slice()]).stream().pipeThrough(new DecompressionStream("deflate-raw")).getReader();
  const out = new Uint8Array(size);
  let filled = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (error) {
      return fail(`member "${name}" does not inflate (${(error as Error).message})`);
    }
    if (chunk.done) break;
    // Stop at the size the directory declares: a hostile member must not inflate without bound.
    if (filled + chunk.value.byteLength > size) {
      await reader.cancel();
      fail(`member "${name}" inflates past the ${size} bytes its size says`);
    }
    out.set(chunk.value, filled);
    filled += chunk.value.byteLength;
  }
  if (filled !== size) fail(`member "${name}" inflates to ${filled} bytes, its size says ${size}`);
  return out;
}
