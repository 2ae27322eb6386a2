/**
 * The members of a zip archive as PyTorch's torch.save writes it: one folder holding data.pkl and
 * data/<key> storages, stored uncompressed (deflated members are inflated through node:zlib, as
 * other zip writers may recompress a file). Every offset and length is checked against the file
 * before use, so a truncated or corrupt archive is refused, naming it, instead of read past its end.
 * listZipMembers is the archive walk alone, for readers that inflate their own way (NumPy's .npz).
 */
import { inflateRawSync } from "node:zlib";

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_ENTRY = 0x02014b50;
const LOCAL_ENTRY = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;
/** The end record is 22 bytes plus a comment of at most 65535 bytes. */
const END_RECORD_BYTES = 22;
const MAX_COMMENT_BYTES = 0xffff;

/** A member as the archive stores it: deflated ones still compressed, with the size they inflate to. */
export interface StoredZipMember {
  name: string;
  deflated: boolean;
  stored: Uint8Array;
  size: number;
}

/** The members of the zip archive `bytes` by name; `source` names the file in errors. */
export function readZipMembers(bytes: Uint8Array, source: string): Map<string, Uint8Array> {
  const fail = failure(source, "PyTorch zip archive");
  const members = new Map<string, Uint8Array>();
  for (const { name, deflated, stored, size } of listZipMembers(bytes, source, "PyTorch zip archive")) {
    members.set(name, deflated ? inflate(stored, size, name, fail) : stored);
  }
  return members;
}

/** The error thrown for an unreadable archive: `source: not a readable <kind> (why)`. */
export function failure(source: string, kind: string): (why: string) => never {
  return (why) => {
    throw new Error(`${source}: not a readable ${kind} (${why})`);
  };
}

/**
 * The members of the zip archive `bytes` as stored, every offset and length checked; `kind` says what
 * the archive should have been in errors. Only stored and deflated members are accepted.
 */
export function listZipMembers(bytes: Uint8Array, source: string, kind: string): StoredZipMember[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = failure(source, kind);
  const end = findEndRecord(view);
  if (end < 0) fail("no end-of-central-directory record; the file may be truncated");
  const count = view.getUint16(end + 10, true);
  const directoryBytes = view.getUint32(end + 12, true);
  let at = view.getUint32(end + 16, true);
  // PyTorch switches to zip64 records for archives over 4 GiB; those sizes read as 0xffffffff here.
  if (count === 0xffff || directoryBytes === 0xffffffff || at === 0xffffffff) fail("zip64 archives are not supported");
  if (at + directoryBytes > end) fail("the central directory runs past its end record");

  const members: StoredZipMember[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 46 > end || view.getUint32(at, true) !== CENTRAL_ENTRY) fail(`central directory entry ${i} is corrupt`);
    const method = view.getUint16(at + 10, true);
    const compressed = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const local = view.getUint32(at + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    if (local + 30 > bytes.byteLength || view.getUint32(local, true) !== LOCAL_ENTRY)
      fail(`member "${name}" has no local header where the directory says`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    if (start + compressed > bytes.byteLength) fail(`member "${name}" runs past the end of the file`);
    const stored = bytes.subarray(start, start + compressed);
    if (method === STORED) {
      if (compressed !== size) fail(`stored member "${name}" has ${compressed} bytes, its size says ${size}`);
    } else if (method !== DEFLATED) {
      fail(`member "${name}" uses compression method ${method}; only stored and deflated members are read`);
    }
    members.push({ name, deflated: method === DEFLATED, stored, size });
  }
  return members;
}

/** The offset of the end-of-central-directory record, searched backwards over a possible comment; -1 if none. */
function findEndRecord(view: DataView): number {
  const last = view.byteLength - END_RECORD_BYTES;
  for (let at = last; at >= 0 && at >= last - MAX_COMMENT_BYTES; at--) {
    if (
      view.getUint32(at, true) === END_OF_CENTRAL_DIRECTORY &&
      at + END_RECORD_BYTES + view.getUint16(at + 20, true) <= view.byteLength
    )
      return at;
  }
  return -1;
}

function inflate(raw: Uint8Array, size: number, name: string, fail: (why: string) => never): Uint8Array {
  let out: Buffer;
  try {
    // maxOutputLength stops a hostile member from inflating past the size its directory entry declares.
    out = inflateRawSync(raw, { maxOutputLength: Math.max(size, 1) });
  } catch (error) {
    return fail(`member "${name}" does not inflate (${(error as Error).message})`);
  }
  if (out.byteLength !== size) fail(`member "${name}" inflates to ${out.byteLength} bytes, its size says ${size}`);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
