/**
 * A dataset sweep's results folder: manifest.json (what the sweep is: spec, data hash, model hash,
 * tsvene version), shards/NNNNN.safetensors (each finished shard, written atomically), and once
 * every shard is done, the aggregate files. Reopening the folder resumes the sweep it holds, and
 * only that sweep: a manifest that disagrees with the run asked for is refused, naming what differs.
 */
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ShardStore } from "../sweeps/dataset.js";
import type { SweepSpec } from "../sweeps/dataset-spec.js";
import { UsageError } from "./args.js";
import { describeFsError, writeOutputs } from "./files.js";

export interface SweepManifest {
  tsvene: string;
  spec: SweepSpec;
  data: { sha256: string; examples: number };
  model: { sha256: string };
  shards: number;
}

const MANIFEST = "manifest.json";
const SHARDS = "shards";
const SHARD_FILE = /^(\d{5,})\.safetensors$/;

/** The parts of a manifest that must match for a folder's shards to be reused, in the words errors use. */
const IDENTITY: readonly [string, (m: SweepManifest) => unknown][] = [
  ["the spec", (m) => m.spec],
  ["the data (its SHA-256)", (m) => m.data],
  ["the model (SHA-256 of its config and weights)", (m) => m.model.sha256],
  ["the tsvene version", (m) => m.tsvene],
];

/**
 * Opens `folder` for the sweep `manifest` describes: creates it (and its manifest) when new,
 * checks the manifest when it holds one, refuses a folder that holds anything else.
 * Returns the store of its shards.
 */
export async function openSweepFolder(flag: string, folder: string, manifest: SweepManifest): Promise<ShardStore> {
  const path = join(folder, MANIFEST);
  const entries = await readdir(folder).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return null;
    throw new UsageError(`${flag} ${folder}: cannot read the folder (${describeFsError(e)})`);
  });
  if (entries === null || entries.length === 0) {
    await mkdir(join(folder, SHARDS), { recursive: true }).catch((e: unknown) => {
      throw new UsageError(`${flag} ${folder}: cannot create the folder (${describeFsError(e)})`);
    });
    await writeOutputs([
      { flag, path, write: (target) => writeFile(target, `${JSON.stringify(manifest, null, 2)}\n`) },
    ]);
  } else if (!entries.includes(MANIFEST)) {
    throw new UsageError(
      `${flag} ${folder}: the folder is not empty and holds no ${MANIFEST} ` +
        "(expected a new or empty folder, or the results folder of the same sweep to resume)",
    );
  } else {
    checkSameSweep(flag, folder, JSON.parse(await readFile(path, "utf8")) as SweepManifest, manifest);
    await mkdir(join(folder, SHARDS), { recursive: true });
  }
  return folderStore(flag, join(folder, SHARDS));
}

function checkSameSweep(flag: string, folder: string, found: SweepManifest, wanted: SweepManifest): void {
  const differences = IDENTITY.flatMap(([what, part]) => {
    const [was, now] = [JSON.stringify(part(found)), JSON.stringify(part(wanted))];
    return was === now ? [] : [`${what} differs (was ${was}, now ${now})`];
  });
  if (differences.length > 0) {
    throw new UsageError(
      `${flag} ${folder} holds the results of another sweep, so it cannot be resumed: ${differences.join("; ")}. ` +
        "Give a new --out folder, or remove this one to start over",
    );
  }
}

function shardPath(shards: string, shard: number): string {
  return join(shards, `${String(shard).padStart(5, "0")}.safetensors`);
}

function folderStore(flag: string, shards: string): ShardStore {
  return {
    async finished() {
      const names = await readdir(shards);
      // A run killed while writing leaves a partial file: it never counts, and is cleared here.
      await Promise.all(names.filter((n) => n.endsWith(".partial")).map((n) => rm(join(shards, n), { force: true })));
      return new Set(names.flatMap((n) => SHARD_FILE.exec(n)?.[1] ?? []).map(Number));
    },
    async read(shard) {
      const bytes = await readFile(shardPath(shards, shard));
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    async write(shard, bytes) {
      await writeOutputs([{ flag, path: shardPath(shards, shard), write: (target) => writeFile(target, bytes) }]);
    },
  };
}
