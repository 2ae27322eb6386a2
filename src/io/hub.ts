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
 * Other kinds of repo (a saved IntervenableModel, say) reuse the same cache and download path
 * through `resolveHubSnapshot` with a `SnapshotPlan` of their own: which files to fetch, and
 * how to tell that a cached snapshot is whole.
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
  if (!isHubId(reference)) {
    throw new Error(`model reference "${reference}": no such local folder, and not a Hub model id (expected "owner/name" or "name")`);
  }
  return resolveHubSnapshot(reference, MODEL_PLAN, options);
}

/** Whether `reference` has the form of a Hub repo id ("owner/name" or "name"). */
export function isHubId(reference: string): boolean {
  return HUB_ID.test(reference) && !reference.includes("..");
}

/** What to fetch from a Hub repo of some kind, and how to tell that a cached snapshot of it is whole. */
export interface SnapshotPlan {
  /** What the repo holds, as messages name it ("model"). */
  what: string;
  /**
   * Fetches the needed files of a commit through `fetchFile` (which returns the local path), given
   * the repo's files and their sizes; throws a `HubError` when the repo lacks something. `where`
   * names the repo and revision for messages.
   */
  fetch(files: ReadonlyMap<string, number>, fetchFile: (path: string) => Promise<string>, where: string): Promise<void>;
  /** Whether a cached snapshot folder holds everything `fetch` would have fetched. */
  isComplete(snapshot: string): Promise<boolean>;
}

/**
 * The cached snapshot of Hub repo `id` (a valid Hub id), downloading what `plan` says is missing;
 * the cache, offline mode and fallback to a cached copy work as for models.
 */
export async function resolveHubSnapshot(id: string, plan: SnapshotPlan, options: ResolveModelOptions = {}): Promise<string> {
  const revision = options.revision ?? DEFAULT_REVISION;
  const settings: Settings = {
    id,
    revision,
    what: plan.what,
    repoDir: join(options.cacheDir ?? defaultCacheDir(), `models--${id.split("/").join("--")}`),
    hubUrl: (options.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ""),
    accessToken: options.accessToken ?? (process.env.HF_TOKEN || undefined),
  };
  const offline = options.offline ?? ["1", "true"].includes((process.env.HF_HUB_OFFLINE ?? "").toLowerCase());

  const cached = await completeSnapshot(settings.repoDir, revision, plan);
  if (cached !== undefined && (offline || COMMIT.test(revision))) return cached; // a commit never changes
  if (offline) {
    throw new HubError("unreachable", `${plan.what} "${id}" (revision "${revision}"): offline mode is on and ${settings.repoDir} holds no complete copy of it`);
  }
  try {
    return await download(settings, plan);
  } catch (error) {
    if (error instanceof HubError && error.code === "unreachable" && cached !== undefined) return cached;
    throw error;
  }
}

/** tsvene's files of a transformers model: config, generation config, tokenizer files, safetensors weights. */
const MODEL_PLAN: SnapshotPlan = {
  what: "model",
  async fetch(sizes, fetchFile, where) {
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
  },
  /** The config and every weight file. */
  async isComplete(snapshot) {
    if (!(await exists(join(snapshot, CONFIG_FILE)))) return false;
    try {
      const files = new Set((await locateWeights(snapshot)).values());
      for (const file of files) if (!(await exists(join(snapshot, file)))) return false;
      return true;
    } catch {
      return false; // no weights, or a damaged index: not a usable copy
    }
  },
};

interface Settings {
  id: string;
  revision: string;
  what: string;
  repoDir: string;
  hubUrl: string;
  accessToken: string | undefined;
}

async function download(settings: Settings, plan: SnapshotPlan): Promise<string> {
  const { id, revision, repoDir } = settings;
  const where = `${plan.what} "${id}" (revision "${revision}")`;
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
  const fetchFile = async (path: string): Promise<string> => {
    const target = join(snapshot, path);
    await askHub(settings, () => downloadOnce(hub, plan.what, commit, path, sizes.get(path)!, target));
    return target;
  };
  await plan.fetch(sizes, fetchFile, where);

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
  what: string,
  commit: string,
  path: string,
  size: number,
  target: string,
): Promise<void> {
  if ((await sizeOf(target)) === size) return;
  const blob = await downloadFile({ ...hub, path, revision: commit });
  if (blob === null) throw new HubError("not_found", `${what} "${hub.repo}": the Hub lists ${path} at commit ${commit} but does not serve it`);
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
    if (written !== size) throw new Error(`${what} "${hub.repo}": ${path} arrived with ${written} bytes, but the Hub lists ${size}`);
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { force: true });
    // A failed body fetch reaches the stream as a bare message string.
    throw error instanceof Error ? error : new Error(`${what} "${hub.repo}": downloading ${path} failed: ${String(error)}`);
  }
}

/** Runs a Hub request, turning its failures into errors that say what is wrong and what to do. */
async function askHub<T>(settings: Settings, request: () => Promise<T>): Promise<T> {
  const where = `${settings.what} "${settings.id}" (revision "${settings.revision}")`;
  try {
    return await request();
  } catch (error) {
    const network = networkErrorCode(error);
    if (network !== undefined) {
      throw new HubError(
        "unreachable",
        `${where}: cannot reach the Hub at ${settings.hubUrl} (${network}), and ${settings.repoDir} holds no complete copy of it. ` +
          `Connect to the network, point HF_ENDPOINT at a reachable mirror, or pass a local ${settings.what} folder.`,
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
export function networkErrorCode(error: unknown): string | undefined {
  if (!(error instanceof TypeError)) return undefined;
  const cause = (error as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === "string" ? cause.code : error.message === "fetch failed" ? "fetch failed" : undefined;
}

/** The snapshot folder of `revision` if the cache holds a complete copy of it (as `plan` judges). */
async function completeSnapshot(repoDir: string, revision: string, plan: SnapshotPlan): Promise<string | undefined> {
  const commit = COMMIT.test(revision) ? revision : (await readTextIfPresent(join(repoDir, "refs", revision)))?.trim();
  if (commit === undefined || !COMMIT.test(commit)) return undefined;
  const snapshot = join(repoDir, "snapshots", commit);
  return (await plan.isComplete(snapshot)) ? snapshot : undefined;
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
