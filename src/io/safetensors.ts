/**
 * Safetensors files on disk. Reading takes the header first, then each wanted tensor's byte
 * range on its own through positional reads, decoding it straight into its tensor, so a large
 * file is never held in memory twice. Writing is atomic: the file appears complete or not at all.
 */
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { encodeTensor } from "./dtypes.js";
import { partialPath } from "./files.js";
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
  options: ReadSafetensorsOptions = {},
): Promise<SafetensorsContents> {
  const file = await openForReading(path);
  try {
    const header = await readHeader(file, path);
    const tensors = new Map<string, Tensor | IntTensor>();
    for (const [name, info] of selectTensors(header, options.names, path)) {
      const raw = new Uint8Array(info.dataOffsets[1] - info.dataOffsets[0]);
      await readExactly(file, raw, header.dataStart + info.dataOffsets[0], `safetensors ${path}: tensor "${name}"`);
      tensors.set(name, decodeEntry(name, info, raw, path, options.dtype));
    }
    return { metadata: header.metadata, tensors };
  } finally {
    await file.close();
  }
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
