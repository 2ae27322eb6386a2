/**
 * Safetensors files on disk. Reading takes the header first, then the wanted tensors' bytes,
 * decoding each straight into its tensor, so a large file is never held in memory twice. Where
 * the native addon can map files, the data is mapped copy-on-write and tensors whose dtype and
 * alignment allow it are views of the mapping: nothing is copied, pages come in as they are first
 * touched, and a write into a weight never reaches the file. Elsewhere (or when asked) each
 * tensor's byte range is read on its own. Writing is atomic: the file appears complete or not at all.
 */
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { readOptions } from "../options/index.js";
import { platform } from "../platform/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { decodesAsView, elementBytes, encodeTensor } from "./dtypes.js";
import { partialPath } from "./files.js";
import { type ByteRange, mappingUnavailable, mapRanges } from "./mapped-file.js";
import {
  checkHeaderLength,
  decodeEntry,
  parseHeader,
  planLayout,
  selectTensors,
  type NamedTensors,
  type ReadSafetensorsOptions,
  type SafetensorsContents,
  type SafetensorsHeader,
  type WriteSafetensorsOptions,
} from "./safetensors-format.js";

/** Node's single read or write call stops at 2 GiB, so large tensors move in pieces of this size. */
const IO_CHUNK_BYTES = 1 << 30;

/** How tensor bytes come off the disk: mapped ("mmap"), read ("read"), or mapped when possible ("auto"). */
export type SafetensorsIo = "auto" | "mmap" | "read";
const SAFETENSORS_IO: readonly SafetensorsIo[] = ["auto", "mmap", "read"];
/** The platform setting (Node: environment variable) that chooses `io` when the caller does not. */
const IO_SETTING = "TSVENE_SAFETENSORS_IO";

export interface ReadSafetensorsFileOptions extends ReadSafetensorsOptions {
  /**
   * "mmap" maps the file (needs the native addon) and "read" reads each tensor into memory of its
   * own; default "auto": the TSVENE_SAFETENSORS_IO setting, else "mmap" where the addon offers it.
   * While mapped tensors live, their file must not be truncated or rewritten in place (touching a
   * page past a new end kills the process with SIGBUS); replacing it by rename, as
   * writeSafetensors does, is safe. Use "read" for files that may change underneath.
   */
  io?: SafetensorsIo;
}

/** Reads and validates a file's header without touching the tensor data. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const file = await openForReading(path);
  try {
    return await readHeader(file, path);
  } finally {
    await file.close();
  }
}

/** Loads the tensors of a safetensors file (all, or `options.names`). */
export async function readSafetensors(
  path: string,
  options: ReadSafetensorsFileOptions = {},
): Promise<SafetensorsContents> {
  const { names, dtype, io } = readOptions<ReadSafetensorsFileOptions>(
    options,
    ["names", "dtype", "io"],
    "readSafetensors",
  );
  const mapped = chooseMapping(io);
  const file = await openForReading(path);
  try {
    const header = await readHeader(file, path);
    const selected = selectTensors(header, names, path);
    const ranges = selected.map(
      ([, info]): ByteRange => [header.dataStart + info.dataOffsets[0], header.dataStart + info.dataOffsets[1]],
    );
    // Only tensors kept as they are stored are mapped: a converted one is read into a buffer that is
    // dropped once converted, where its mapped pages would stay resident beside the conversion.
    const keptAsStored = selected.map(([, info]) => mapped && decodesAsView(info.dtype, dtype ?? "float32"));
    const mappedRanges = ranges.filter((_, i) => keptAsStored[i]);
    const mappedViews = mappedRanges.length > 0 ? mapRanges(file, path, mappedRanges) : [];
    const tensors = new Map<string, Tensor | IntTensor>();
    for (const [i, [name, info]] of selected.entries()) {
      const view = keptAsStored[i] ? mappedViews.shift() : undefined;
      const raw = view ? alignedForDecoding(view, info.dtype) : await readRange(file, ranges[i], path, name);
      tensors.set(name, decodeEntry(name, info, raw, path, dtype));
    }
    return { metadata: header.metadata, tensors };
  } finally {
    await file.close();
  }
}

/** Whether to map: the caller's `io`, else the platform setting, else whether the addon can. */
function chooseMapping(io: unknown): boolean {
  const setting = platform().env(IO_SETTING);
  const requested = io ?? (setting === undefined || setting === "" ? "auto" : setting);
  if (!SAFETENSORS_IO.includes(requested as SafetensorsIo)) {
    const source = io === undefined ? `the ${IO_SETTING} setting` : "readSafetensors: io";
    throw new TypeError(
      `${source} must be ${SAFETENSORS_IO.map((m) => `"${m}"`).join(", ")}, got ${JSON.stringify(requested)}`,
    );
  }
  if (requested === "read") return false;
  const unavailable = mappingUnavailable();
  if (unavailable !== null && requested === "mmap")
    throw new Error(
      `readSafetensors: io "mmap" needs the native addon's mapFile, which is unavailable: ${unavailable}`,
    );
  return unavailable === null;
}

/**
 * `view` itself when its element type can be viewed where it lies (a view's offset is congruent to
 * its address modulo 8, see mapped-file.ts), else a copy in a buffer of its own.
 */
function alignedForDecoding(view: Uint8Array, dtype: string): Uint8Array {
  return view.byteOffset % (elementBytes(dtype) ?? 1) === 0 ? view : view.slice();
}

async function readRange(file: FileHandle, [begin, end]: ByteRange, path: string, name: string): Promise<Uint8Array> {
  const raw = new Uint8Array(end - begin);
  await readExactly(file, raw, begin, `safetensors ${path}: tensor "${name}"`);
  return raw;
}

/**
 * Writes tensors as a safetensors file, in the Rust crate's layout. The bytes go to a temporary
 * name beside `path` that is renamed into place once complete, and removed on failure.
 */
export async function writeSafetensors(
  path: string,
  tensors: NamedTensors,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const layout = planLayout(tensors, options);
  const partial = partialPath(path);
  try {
    const file = await open(partial, "w");
    try {
      await writeAll(file, layout.header);
      for (const { tensor, dtype } of layout.entries) await writeAll(file, encodeTensor(tensor, dtype));
    } finally {
      await file.close();
    }
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`safetensors ${path}: no such file`);
    throw error;
  }
}

async function readHeader(file: FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size } = await file.stat();
  if (size < 8)
    throw new Error(`safetensors ${path}: ${size} bytes is too short (expected at least the 8-byte header length)`);
  const prefix = new Uint8Array(8);
  await readExactly(file, prefix, 0, `safetensors ${path}: header length`);
  const headerLength = checkHeaderLength(new DataView(prefix.buffer).getBigUint64(0, true), size, path);
  const headerBytes = new Uint8Array(headerLength);
  await readExactly(file, headerBytes, 8, `safetensors ${path}: header`);
  return parseHeader(headerBytes, size - 8 - headerLength, path);
}

async function readExactly(file: FileHandle, target: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const { bytesRead } = await file.read(
      target,
      done,
      Math.min(target.byteLength - done, IO_CHUNK_BYTES),
      position + done,
    );
    if (bytesRead === 0) throw new Error(`${what}: the file ended after ${done} of ${target.byteLength} bytes`);
    done += bytesRead;
  }
}

async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await file.write(bytes, done, Math.min(bytes.byteLength - done, IO_CHUNK_BYTES));
    done += bytesWritten;
  }
}
