/**
 * Hugging Face model folders, as `save_pretrained` writes them: `config.json`, an optional
 * `generation_config.json`, and the weights either in `model.safetensors` or sharded into
 * `model-00001-of-0000N.safetensors` files named by `model.safetensors.index.json`, whose
 * `weight_map` gives each weight's shard.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { IntTensor, Tensor } from "../tensor/index.js";
import type { FloatWriteDtype, WeightDtype } from "./dtypes.js";
import {
  exists,
  isJsonObject,
  parseJsonObject,
  readJsonObjectIfPresent,
  readTextIfPresent,
  writeTextAtomically,
  type JsonObject,
} from "./files.js";
import { storedByteLength, type NamedTensors, type TensorInfo } from "./safetensors-format.js";
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from "./safetensors.js";

export const CONFIG_FILE = "config.json";
export const GENERATION_CONFIG_FILE = "generation_config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";

/** HF's default `max_shard_size` ("5GB", decimal). */
const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;
/** Shard names for any shard count: a save replaces these, besides the single file and the index. */
const SHARD_FILE = /^model-\d{5}-of-\d{5}\.safetensors$/;

export interface Checkpoint {
  /** The folder it was loaded from. */
  folder: string;
  /** `config.json`, parsed. */
  config: JsonObject;
  /** `generation_config.json`, parsed, when the folder has one. */
  generationConfig?: JsonObject;
  /** The weights by HF parameter name: float dtypes as `Tensor`, integer ones as `IntTensor`. */
  tensors: Map<string, Tensor | IntTensor>;
}

export interface LoadCheckpointOptions {
  /** Load only these weights (each must exist); default: all. */
  names?: Iterable<string>;
  /** The in-memory dtype of float weights; default "float32". */
  dtype?: WeightDtype;
}

export interface SaveCheckpointOptions {
  /** Written as `config.json` when given. */
  config?: JsonObject;
  /** Written as `generation_config.json` when given. */
  generationConfig?: JsonObject;
  /** What float weights are stored as; default F32. */
  dtype?: FloatWriteDtype;
  /** Shard size limit in stored bytes (default 5e9, HF's "5GB"); a larger single weight gets a shard of its own. */
  maxShardBytes?: number;
  /** Each file's `__metadata__`; default `{ format: "pt" }`, which transformers requires to load the files. */
  metadata?: Record<string, string>;
}

/** Loads a model folder: its configs and its safetensors weights (single file or sharded). */
export async function loadCheckpoint(folder: string, options: LoadCheckpointOptions = {}): Promise<Checkpoint> {
  const config = await readConfig(folder);
  const generationConfig = await readGenerationConfig(folder);
  const tensors = await loadWeights(folder, options.names, options.dtype);
  return generationConfig === undefined ? { folder, config, tensors } : { folder, config, generationConfig, tensors };
}

/** `config.json` of a model folder; a missing or malformed one is an error. */
export async function readConfig(folder: string): Promise<JsonObject> {
  if (!(await exists(folder))) throw new Error(`model folder ${folder} does not exist`);
  const config = await readJsonObjectIfPresent(join(folder, CONFIG_FILE));
  if (config === undefined)
    throw new Error(
      `model folder ${folder}: no ${CONFIG_FILE} (every HF model folder has one; is this the right folder?)`,
    );
  return config;
}

/** `generation_config.json` of a model folder, or undefined when it has none. */
export async function readGenerationConfig(folder: string): Promise<JsonObject | undefined> {
  return readJsonObjectIfPresent(join(folder, GENERATION_CONFIG_FILE));
}

/**
 * Where each weight of a model folder lives: weight name → file name in the folder. A folder
 * with `model.safetensors` uses it (as transformers does); otherwise the index decides.
 */
export async function locateWeights(folder: string): Promise<Map<string, string>> {
  const single = join(folder, WEIGHTS_FILE);
  if (await exists(single)) {
    const header = await readSafetensorsHeader(single);
    return new Map([...header.tensors.keys()].map((name) => [name, WEIGHTS_FILE]));
  }
  const indexPath = join(folder, WEIGHTS_INDEX_FILE);
  const indexText = await readTextIfPresent(indexPath);
  if (indexText === undefined) {
    const present = (await readdir(folder)).filter((f) => /\.(bin|pt|pth|ckpt|h5|msgpack|gguf|safetensors)$/.test(f));
    throw new Error(
      `model folder ${folder}: no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE}` +
        (present.length > 0 ? ` (found ${present.join(", ")}; tsvene reads safetensors weights only)` : ""),
    );
  }
  return parseWeightIndex(indexText, indexPath);
}

/** The `weight_map` of a `model.safetensors.index.json` text, validated; `source` names it in errors. */
export function parseWeightIndex(text: string, source: string): Map<string, string> {
  const weightMap = parseJsonObject(text, source).weight_map;
  if (!isJsonObject(weightMap))
    throw new Error(`${source}: expected an object with "weight_map": {weight name: shard file}`);
  const map = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap)) {
    // A file name, not a path: checked without node:path, as the browser loaders read indexes too.
    if (typeof file !== "string" || file === "" || /[/\\]/.test(file) || file === "." || file === "..") {
      throw new Error(
        `${source}: weight_map["${name}"] must be a file name in the same folder, got ${JSON.stringify(file)}`,
      );
    }
    map.set(name, file);
  }
  return map;
}

/**
 * Writes a model folder that `loadCheckpoint` and transformers' `from_pretrained` both read:
 * one `model.safetensors` when the weights fit in `maxShardBytes`, else shards plus the index.
 * Weight files of an earlier save in the folder are replaced; if writing fails, the files this
 * call wrote are removed again.
 */
export async function saveCheckpoint(
  folder: string,
  tensors: NamedTensors,
  options: SaveCheckpointOptions = {},
): Promise<void> {
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShardBytes > 0))
    throw new RangeError(`saveCheckpoint: maxShardBytes must be a positive number of bytes, got ${maxShardBytes}`);
  const dtype = options.dtype ?? "F32";
  const metadata = options.metadata ?? { format: "pt" };
  const shards = splitIntoShards(tensors instanceof Map ? [...tensors] : Object.entries(tensors), dtype, maxShardBytes);
  const fileNames = shards.length === 1 ? [WEIGHTS_FILE] : shards.map((_, i) => shardFileName(i + 1, shards.length));

  await mkdir(folder, { recursive: true });
  const written: string[] = [];
  try {
    for (const [i, shard] of shards.entries()) {
      const path = join(folder, fileNames[i]);
      await writeSafetensors(path, new Map(shard), { dtype, metadata });
      written.push(path);
    }
    if (shards.length > 1) {
      const weightMap: Record<string, string> = {};
      const entries = shards.flatMap((shard, i) => shard.map(([name]) => [name, fileNames[i]] as const));
      for (const [name, file] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) weightMap[name] = file;
      const totalSize = shards.flat().reduce((n, [, t]) => n + storedByteLength(t, dtype), 0);
      const indexPath = join(folder, WEIGHTS_INDEX_FILE);
      await writeTextAtomically(
        indexPath,
        `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`,
      );
      written.push(indexPath);
    }
    if (options.config !== undefined) {
      const path = join(folder, CONFIG_FILE);
      await writeTextAtomically(path, `${JSON.stringify(options.config, null, 2)}\n`);
      written.push(path);
    }
    if (options.generationConfig !== undefined) {
      const path = join(folder, GENERATION_CONFIG_FILE);
      await writeTextAtomically(path, `${JSON.stringify(options.generationConfig, null, 2)}\n`);
      written.push(path);
    }
  } catch (error) {
    await Promise.all(written.map((path) => rm(path, { force: true })));
    throw error;
  }
  // Leftovers of an earlier save would shadow or confuse this one (model.safetensors wins over an index).
  const keep = new Set(fileNames);
  if (shards.length > 1) keep.add(WEIGHTS_INDEX_FILE);
  const stale = (await readdir(folder)).filter(
    (f) => !keep.has(f) && (f === WEIGHTS_FILE || f === WEIGHTS_INDEX_FILE || SHARD_FILE.test(f)),
  );
  await Promise.all(stale.map((f) => rm(join(folder, f), { force: true })));
}

/** HF's shard names: `model-00001-of-00003.safetensors`. */
export function shardFileName(index: number, count: number): string {
  return `model-${String(index).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`;
}

/**
 * Every weight's header entry (dtype, shape, byte range) by name, from the weight files' headers
 * alone: no tensor data is read, so a config can be checked against the weights before anything
 * the size of the model is allocated.
 */
export async function readWeightHeaders(folder: string): Promise<Map<string, TensorInfo>> {
  const headers = new Map<string, TensorInfo>();
  for (const [file, names] of (await weightsByFile(folder, undefined)).byFile) {
    const held = await shardHeader(folder, file, names);
    for (const name of names) headers.set(name, held.get(name)!);
  }
  return headers;
}

async function loadWeights(
  folder: string,
  names: Iterable<string> | undefined,
  dtype: WeightDtype | undefined,
): Promise<Map<string, Tensor | IntTensor>> {
  const { wanted, byFile } = await weightsByFile(folder, names);
  const tensors = new Map<string, Tensor | IntTensor>();
  for (const [file, fileNames] of byFile) {
    await shardHeader(folder, file, fileNames);
    const read = await readSafetensors(join(folder, file), { names: fileNames, dtype });
    for (const [name, t] of read.tensors) tensors.set(name, t);
  }
  // The caller's order (or the files' order), whatever order the shards were read in.
  return new Map(wanted.map((name) => [name, tensors.get(name)!]));
}

/** The wanted weights (all when undefined), and grouped by the file that holds them; an unknown name is an error. */
async function weightsByFile(
  folder: string,
  names: Iterable<string> | undefined,
): Promise<{ wanted: string[]; byFile: Map<string, string[]> }> {
  const locations = await locateWeights(folder);
  const wanted = names === undefined ? [...locations.keys()] : [...new Set(names)];
  const byFile = new Map<string, string[]>();
  for (const name of wanted) {
    const file = locations.get(name);
    if (file === undefined)
      throw new Error(`model folder ${folder}: no weight named "${name}" (it has ${locations.size} weights)`);
    byFile.set(file, [...(byFile.get(file) ?? []), name]);
  }
  return { wanted, byFile };
}

/** The header of one weight file, checked to exist and to hold `names` (which the index put there). */
async function shardHeader(folder: string, file: string, names: readonly string[]): Promise<Map<string, TensorInfo>> {
  const path = join(folder, file);
  if (!(await exists(path))) {
    throw new Error(
      `model folder ${folder}: ${WEIGHTS_INDEX_FILE} names shard ${file} (for "${names[0]}"), which is missing`,
    );
  }
  const held = (await readSafetensorsHeader(path)).tensors;
  const absent = names.find((name) => !held.has(name));
  if (absent !== undefined) {
    throw new Error(
      `model folder ${folder}: ${WEIGHTS_INDEX_FILE} puts "${absent}" in shard ${file}, which does not contain it`,
    );
  }
  return held;
}

function splitIntoShards(
  named: [string, Tensor | IntTensor][],
  dtype: FloatWriteDtype,
  maxShardBytes: number,
): [string, Tensor | IntTensor][][] {
  const shards: [string, Tensor | IntTensor][][] = [[]];
  let shardBytes = 0;
  for (const entry of named) {
    const bytes = storedByteLength(entry[1], dtype);
    if (shards[shards.length - 1].length > 0 && shardBytes + bytes > maxShardBytes) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push(entry);
    shardBytes += bytes;
  }
  return shards;
}
