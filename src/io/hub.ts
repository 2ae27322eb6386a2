/**
 * Model references to local folders. A path to an existing folder is used as it is. Anything
 * else of the form `name` or `owner/name` is a Hugging Face Hub model id, downloaded through
 * `@huggingface/hub` into a cache that mirrors the HF hub cache's folder names:
 *
 *   <cacheDir>/models--owner--name/refs/<revision>          the commit the revision resolved to
 *   <cacheDir>/models--owner--name/snapshots/<commit>/…     the downloaded files (plain files)
 *
 * Only what tsvene uses is fetched: config.json, generation_config.json, the tokenizer files,
 * and the safetensors weights (model.safetensors, or the index and the shards it names).
 * Each file is written under a temporary name and renamed once complete, so a snapshot never
 * holds a partial file; an interrupted download resumes with the files still missing. When the
 * Hub cannot be reached, a complete cached snapshot of the revision is used instead.
 *
 * Settings (option, else environment): cache folder `cacheDir`, else `$TSVENE_HOME/hub`, else
 * `$XDG_CACHE_HOME/tsvene/hub` (`~/.cache/tsvene/hub`); Hub address `endpoint`, else
 * `HF_ENDPOINT`, else https://huggingface.co; access token `accessToken`, else `HF_TOKEN`;
 * cache-only mode `offline`, else `HF_HUB_OFFLINE=1`.
 */
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { downloadFile, HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import { CONFIG_FILE, GENERATION_CONFIG_FILE, locateWeights, parseWeightIndex, WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from "./checkpoint.js";
import { exists, partialPath, readTextIfPresent, writeTextAtomically } from "./files.js";
import { TOKENIZER_FILES } from "./tokenizer.js";

const DEFAULT_ENDPOINT = "https://huggingface.co";
const DEFAULT_REVISION = "main";
/** Hub ids: an optional owner and a name, of letters, digits, "-", "_" and "." (at most 96 characters). */
const HUB_ID = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*$/;
const COMMIT = /^[0-9a-f]{40}$/;
/** Fetched before the weights, so a snapshot with all its weights also has these (when the repo does). */
const SMALL_FILES: readonly string[] = [CONFIG_FILE, GENERATION_CONFIG_FILE, ...TOKENIZER_FILES];

export interface ResolveModelOptions {
  /** Branch, tag or commit of a Hub model; default "main". */
  revision?: string;
  /** Where downloads are kept; default `defaultCacheDir()`. */
  cacheDir?: string;
  /** The Hub's base URL; default `HF_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  /** For private and gated models; default `HF_TOKEN`. */
  accessToken?: string;
  /** Use only the cache, never the network; default true when `HF_HUB_OFFLINE` is "1" or "true". */
  offline?: boolean;
}

export type HubErrorCode = "not_found" | "unreachable" | "no_config" | "no_safetensors";

/** A Hub model that cannot be had: `code` says why, the message says what to do. */
export class HubError extends Error {
  readonly code: HubErrorCode;

  constructor(code: HubErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HubError";
    this.code = code;
  }
}

/** The cache folder used when no `cacheDir` is given. */
export function defaultCacheDir(): string {
  const home = process.env.TSVENE_HOME;
  if (home) return join(home, "hub");
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "tsvene", "hub");
}

/**
 * The local folder holding the model `reference` names: the folder itself, or the cached
 * snapshot of a Hub model (downloading what is missing). Hub failures throw a `HubError`.
 */
export async function resolveModel(reference: string, options: ResolveModelOptions = {}): Promise<string> {
  const kind = await pathKind(reference);
  if (kind === "folder") return reference;
  if (kind === "file") throw new Error(`model reference "${reference}" is a file; expected a model folder or a Hub model id`);
  if (!HUB_ID.test(reference) || reference.includes("..")) {
    throw new Error(`model reference "${reference}": no such local folder, and not a Hub model id (expected "owner/name" or "name")`);
  }
  const revision = options.revision ?? DEFAULT_REVISION;
  const settings: Settings = {
    id: reference,
    revision,
    repoDir: join(options.cacheDir ?? defaultCacheDir(), `models--${reference.split("/").join("--")}`),
    hubUrl: (options.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ""),
    accessToken: options.accessToken ?? (process.env.HF_TOKEN || undefined),
  };
  const offline = options.offline ?? ["1", "true"].includes((process.env.HF_HUB_OFFLINE ?? "").toLowerCase());

  const cached = await completeSnapshot(settings.repoDir, revision);
  if (cached !== undefined && (offline || COMMIT.test(revision))) return cached; // a commit never changes
  if (offline) {
    throw new HubError("unreachable", `model "${reference}" (revision "${revision}"): offline mode is on and ${settings.repoDir} holds no complete copy of it`);
  }
  try {
    return await download(settings);
  } catch (error) {
    if (error instanceof HubError && error.code === "unreachable" && cached !== undefined) return cached;
    throw error;
  }
}

interface Settings {
  id: string;
  revision: string;
  repoDir: string;
  hubUrl: string;
  accessToken: string | undefined;
}

async function download(settings: Settings): Promise<string> {
  const { id, revision, repoDir } = settings;
  const where = `model "${id}" (revision "${revision}")`;
  const hub = { repo: id, hubUrl: settings.hubUrl, accessToken: settings.accessToken };

  const info = await askHub(settings, () => modelInfo({ name: id, revision, hubUrl: hub.hubUrl, accessToken: hub.accessToken, additionalFields: ["sha"] }));
  const commit = info.sha;
  if (typeof commit !== "string" || !COMMIT.test(commit)) throw new Error(`${where}: the Hub at ${settings.hubUrl} answered without a commit id`);
  const snapshot = join(repoDir, "snapshots", commit);

  const sizes = await askHub(settings, async () => {
    const files = new Map<string, number>();
    for await (const entry of listFiles({ ...hub, revision: commit })) {
      if (entry.type === "file") files.set(entry.path, entry.lfs?.size ?? entry.size);
    }
    return files;
  });
  if (!sizes.has(CONFIG_FILE)) {
    throw new HubError("no_config", `${where} has no ${CONFIG_FILE}, so it is not a transformers model tsvene can load (files: ${[...sizes.keys()].join(", ")})`);
  }

  if (!sizes.has(WEIGHTS_FILE) && !sizes.has(WEIGHTS_INDEX_FILE)) {
    const weights = [...sizes.keys()].filter((f) => /\.(bin|pt|pth|ckpt|h5|msgpack|gguf|onnx|safetensors)$/.test(f));
    throw new HubError(
      "no_safetensors",
      `${where} has no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE}; tsvene loads safetensors weights only` +
        (weights.length > 0 ? ` (the repo has ${weights.join(", ")})` : ""),
    );
  }

  const fetchFile = async (path: string): Promise<string> => {
    const target = join(snapshot, path);
    await askHub(settings, () => downloadOnce(hub, commit, path, sizes.get(path)!, target));
    return target;
  };
  for (const file of SMALL_FILES) if (sizes.has(file)) await fetchFile(file);
  if (sizes.has(WEIGHTS_FILE)) {
    await fetchFile(WEIGHTS_FILE);
  } else {
    const indexPath = await fetchFile(WEIGHTS_INDEX_FILE);
    const shards = new Set(parseWeightIndex(await readFile(indexPath, "utf8"), indexPath).values());
    for (const shard of shards) {
      if (!sizes.has(shard)) throw new HubError("no_safetensors", `${where}: ${WEIGHTS_INDEX_FILE} names shard ${shard}, which the repo does not have`);
      await fetchFile(shard);
    }
  }

  if (revision !== commit) {
    const ref = join(repoDir, "refs", revision);
    await mkdir(dirname(ref), { recursive: true });
    await writeTextAtomically(ref, commit);
  }
  return snapshot;
}

/** Downloads one file of the commit to `target`, unless a complete copy is already there. */
async function downloadOnce(
  hub: { repo: string; hubUrl: string; accessToken: string | undefined },
  commit: string,
  path: string,
  size: number,
  target: string,
): Promise<void> {
  if ((await sizeOf(target)) === size) return;
  const blob = await downloadFile({ ...hub, path, revision: commit });
  if (blob === null) throw new HubError("not_found", `model "${hub.repo}": the Hub lists ${path} at commit ${commit} but does not serve it`);
  await mkdir(dirname(target), { recursive: true });
  const partial = partialPath(target);
  try {
    const file = await open(partial, "w");
    let written = 0;
    try {
      for await (const chunk of blob.stream()) {
        await file.write(chunk);
        written += chunk.byteLength;
      }
    } finally {
      await file.close();
    }
    if (written !== size) throw new Error(`model "${hub.repo}": ${path} arrived with ${written} bytes, but the Hub lists ${size}`);
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { force: true });
    // A failed body fetch reaches the stream as a bare message string.
    throw error instanceof Error ? error : new Error(`model "${hub.repo}": downloading ${path} failed: ${String(error)}`);
  }
}

/** Runs a Hub request, turning its failures into errors that say what is wrong and what to do. */
async function askHub<T>(settings: Settings, request: () => Promise<T>): Promise<T> {
  const where = `model "${settings.id}" (revision "${settings.revision}")`;
  try {
    return await request();
  } catch (error) {
    const network = networkErrorCode(error);
    if (network !== undefined) {
      throw new HubError(
        "unreachable",
        `${where}: cannot reach the Hub at ${settings.hubUrl} (${network}), and ${settings.repoDir} holds no complete copy of it. ` +
          "Connect to the network, point HF_ENDPOINT at a reachable mirror, or pass a local model folder.",
        { cause: error },
      );
    }
    if (error instanceof HubApiError && [401, 403, 404].includes(error.statusCode)) {
      throw new HubError(
        "not_found",
        `${where} was not found on ${settings.hubUrl} (HTTP ${error.statusCode}: ${error.message}). ` +
          "Check the id and revision; private and gated models need an access token (option accessToken or HF_TOKEN).",
        { cause: error },
      );
    }
    if (error instanceof HubApiError) {
      throw new Error(`${where}: the Hub at ${settings.hubUrl} answered HTTP ${error.statusCode} (${error.message})`, { cause: error });
    }
    throw error;
  }
}

/** The system error code of a failed connection (fetch wraps it as the cause of a TypeError), if that is what `error` is. */
function networkErrorCode(error: unknown): string | undefined {
  if (!(error instanceof TypeError)) return undefined;
  const cause = (error as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === "string" ? cause.code : error.message === "fetch failed" ? "fetch failed" : undefined;
}

/** The snapshot folder of `revision` if the cache holds its config and every weight file. */
async function completeSnapshot(repoDir: string, revision: string): Promise<string | undefined> {
  const commit = COMMIT.test(revision) ? revision : (await readTextIfPresent(join(repoDir, "refs", revision)))?.trim();
  if (commit === undefined || !COMMIT.test(commit)) return undefined;
  const snapshot = join(repoDir, "snapshots", commit);
  if (!(await exists(join(snapshot, CONFIG_FILE)))) return undefined;
  try {
    const files = new Set((await locateWeights(snapshot)).values());
    for (const file of files) if (!(await exists(join(snapshot, file)))) return undefined;
    return snapshot;
  } catch {
    return undefined; // no weights, or a damaged index: not a usable copy
  }
}

async function pathKind(path: string): Promise<"folder" | "file" | "none"> {
  try {
    return (await stat(path)).isDirectory() ? "folder" : "file";
  } catch {
    return "none";
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}
