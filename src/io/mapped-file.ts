/**
 * Byte ranges of open files as memory mappings, through the native addon's `mapFile` (Node, with
 * the addon built). A mapping is private and copy-on-write: a write into a view changes this
 * process's copy, never the file. Views are zero-copy; a mapping lives while any view of it does,
 * and its ArrayBuffer's finalizer unmaps it.
 */
import { constants as bufferConstants } from "node:buffer";
import type { FileHandle } from "node:fs/promises";
import { platform } from "../platform/index.js";

type MapFile = (fd: number, offset: number, length: number, path: string) => ArrayBuffer;

/** The most bytes one mapping spans: the addon's 4 GiB, or Node's buffer limit where that is lower. */
export const MAX_MAPPING_BYTES = Math.min(2 ** 32, bufferConstants.MAX_LENGTH);

/**
 * Mappings start at a multiple of this in the file, and the addon places them page-aligned, so a
 * view's offset in its buffer, and its address, are congruent to its file offset modulo 8: a
 * tensor aligned in the file is aligned in memory.
 */
const MAPPING_START_ALIGNMENT = 8;

/** [begin, end) in bytes from the start of a file. */
export type ByteRange = readonly [begin: number, end: number];

function addonMapFile(): MapFile | string {
  let loaded: { path: string; exports: Record<string, unknown> };
  try {
    loaded = platform().loadNativeAddon();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  const mapFile = loaded.exports.mapFile;
  if (typeof mapFile !== "function")
    return `${loaded.path} lacks mapFile: it is out of date; run npm install to rebuild it`;
  return mapFile as MapFile;
}

/** Why files cannot be mapped on this platform, or null when they can. */
export function mappingUnavailable(): string | null {
  const mapFile = addonMapFile();
  return typeof mapFile === "string" ? mapFile : null;
}

/** Adjacent ranges that share one mapping: the indices of `members` in the caller's list. */
export interface PlannedMapping {
  start: number;
  end: number;
  members: number[];
}

/**
 * How `ranges` (disjoint, in file order) are mapped: each run of adjacent ranges shares one
 * mapping, split where it would pass `maxBytes`, so a whole file is mapped once per 4 GiB and a
 * selection once per run, and what lies between runs is never mapped. Empty ranges need no
 * mapping, and a range too long for one is left out (its caller reads it instead).
 */
export function planMappings(ranges: readonly ByteRange[], maxBytes: number = MAX_MAPPING_BYTES): PlannedMapping[] {
  const plan: PlannedMapping[] = [];
  ranges.forEach(([begin, end], i) => {
    if (begin === end) return;
    const last = plan.at(-1);
    if (last !== undefined && begin === last.end && end - last.start <= maxBytes) {
      last.end = end;
      last.members.push(i);
      return;
    }
    const start = begin - (begin % MAPPING_START_ALIGNMENT);
    if (end - start <= maxBytes) plan.push({ start, end, members: [i] });
  });
  return plan;
}

/**
 * Views of `ranges` (disjoint, in file order) of the open `file`, mapped as `planMappings` says;
 * null for a range too long to map. `path` names the file in errors. Throws when the addon cannot
 * map (see `mappingUnavailable`).
 */
export function mapRanges(file: FileHandle, path: string, ranges: readonly ByteRange[]): (Uint8Array | null)[] {
  const mapFile = addonMapFile();
  if (typeof mapFile === "string") throw new Error(`cannot map ${path}: ${mapFile}`);
  const views = ranges.map(([begin, end]) => (begin === end ? new Uint8Array(0) : null));
  for (const { start, end, members } of planMappings(ranges)) {
    const buffer = mapFile(file.fd, start, end - start, path);
    for (const i of members) views[i] = new Uint8Array(buffer, ranges[i][0] - start, ranges[i][1] - ranges[i][0]);
  }
  return views;
}
