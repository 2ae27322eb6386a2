/**
 * Model references to local folders. A path to an existing folder is used as it is. Anything
 * else of the form `name` or `owner/name` is a Hugging Face Hub model id, downloaded through
 * `@huggingface/hub` into a cache that mirrors the HF hub cache's folder names:
 *
 *   <cacheDir>/models--owner--name/refs/<revision>          the commit the revision resolved to
 *   <cacheDir>/models--owner--name/snapshots/<commit>/…     the downloaded files (plain files)
 *   <cacheDir>/models--owner--name/verified/<commit>/…      stamps of the files checked against their hash
 *
 * Only what tsvene uses is fetched: config.json, generation_config.json, the tokenizer files,
 * and the safetensors weights (model.safetensors, or the index and the shards it names).
 * Each file is written under a temporary name and renamed once its size and hash are those the
 * Hub lists, so a snapshot never holds a partial or altered file; an interrupted download resumes
 * with the files still missing (see hub-download.ts). When the Hub cannot be reached or stalls, a
 * complete cached snapshot of the revision is used instead.
 *
 * Other kinds of repo (a saved IntervenableModel, say) reuse the same cache and download path
 * through `resolveHubSnapshot` with a `SnapshotPlan` of their own: which files to fetch, and
 * how to tell that a cached snapshot is whole.
 *
 * Settings (option, else environment): cache folder `cacheDir`, else `$TSVENE_HOME/hub`, else
 * `$XDG_CACHE_HOME/tsvene/hub` (`~/.cache/tsvene/hub`); Hub address `endpoint`, else
 * `HF_ENDPOINT`, else https://huggingface.co; access token `accessToken`, else `HF_TOKEN`;
 * cache-only mode `offline`, else `HF_HUB_OFFLINE=1`; how long a request may go without receiving
 * a byte `timeoutMs` (30 s).
 */
import { mkdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { HubApiError, InvalidApiResponseFormatError, listFiles, modelInfo } from "@huggingface/hub";
import { describe, OptionError, readOptions } from "../options/strict.js";
import {
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  locateWeights,
  parseWeightIndex,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from "./checkpoint.js";
import { exists, readTextIfPresent, writeTextAtomically } from "./files.js";
import {
  DEFAULT_TIMEOUT_MS,
  fetchListedFile,
  HubError,
  hubFetch,
  listedFile,
  networkErrorCode,
  removeOrphanPartials,
  type HubAccess,
  type ListedFile,
} from "./hub-download.js";
import { TOKENIZER_FILES } from "./tokenizer.js";

export { HubError, networkErrorCode, type HubErrorCode } from "./hub-download.js";

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
  /** Milliseconds a Hub request may go without receiving a byte before it is given up; default 30 000. */
  timeoutMs?: number;
}

/** The names of `ResolveModelOptions`, for `readOptions` (options that extend it add their own). */
export const RESOLVE_MODEL_OPTION_NAMES = [
  "revision",
  "cacheDir",
  "endpoint",
  "accessToken",
  "offline",
  "timeoutMs",
] as const satisfies readonly (keyof ResolveModelOptions)[];

/**
 * The Hub's base URL: `endpoint` when given, else `HF_ENDPOINT`, else https://huggingface.co;
 * without a trailing "/".
 */
export function resolveHubUrl(endpoint?: string): string {
  return (endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
}

/** The Hub access token: `accessToken` when given, else `HF_TOKEN` when set and not empty. */
export function hubAccessToken(accessToken?: string): string | undefined {
  return accessToken ?? (process.env.HF_TOKEN || undefined);
}

/** The cache folder used when no `cacheDir` is given. */
export function defaultCacheDir(): string {
  const home = process.env.TSVENE_HOME;
  if (home) return join(home, "hub");
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "tsvene", "hub");
}

/**
 * The local folder holding the model `reference` names: the folder itself, or the cached
 * snapshot of a Hub model (downloading what is missing). Hub failures throw a `HubError`;
 * unknown options an `OptionError` (snake_case names are accepted).
 */
export async function resolveModel(reference: string, options?: ResolveModelOptions): Promise<string> {
  const checked = readOptions<ResolveModelOptions>(options, RESOLVE_MODEL_OPTION_NAMES, "loadPretrained options");
  const kind = await pathKind(reference);
  if (kind === "folder") return reference;
  if (kind === "file")
    throw new Error(`model reference "${reference}" is a file; expected a model folder or a Hub model id`);
  if (!isHubId(reference)) {
    throw new Error(
      `model reference "${reference}": no such local folder, and not a Hub model id (expected "owner/name" or "name")`,
    );
  }
  return resolveHubSnapshot(reference, MODEL_PLAN, checked);
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
 * the cache, offline mode and fallback to a cached copy work as for models. `options` must have
 * been read already (`readOptions` with `RESOLVE_MODEL_OPTION_NAMES` and the caller's own names):
 * keys other than those of `ResolveModelOptions` belong to the caller and are not looked at.
 */
export async function resolveHubSnapshot(
  id: string,
  plan: SnapshotPlan,
  options: ResolveModelOptions = {},
): Promise<string> {
  if (!isHubId(id)) throw new Error(`${plan.what} "${id}" is not a Hub repo id (expected "owner/name" or "name")`);
  const revision = checkRevision(options.revision ?? DEFAULT_REVISION);
  const settings: Settings = {
    id,
    revision,
    what: plan.what,
    where: `${plan.what} "${id}" (revision "${revision}")`,
    repoDir: join(options.cacheDir ?? defaultCacheDir(), `models--${id.split("/").join("--")}`),
    hubUrl: resolveHubUrl(options.endpoint),
    accessToken: hubAccessToken(options.accessToken),
    timeoutMs: checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
  };
  const offline = options.offline ?? ["1", "true"].includes((process.env.HF_HUB_OFFLINE ?? "").toLowerCase());

  const cached = await completeSnapshot(settings.repoDir, revision, plan);
  if (cached !== undefined && (offline || COMMIT.test(revision))) return cached; // a commit never changes
  if (offline) {
    throw new HubError(
      "unreachable",
      `${settings.where}: offline mode is on and ${settings.repoDir} holds no complete copy of it`,
    );
  }
  try {
    return await download(settings, plan);
  } catch (error) {
    // No Hub to talk to: the cached copy is the best there is. Any other failure is news to the caller.
    const noHub = error instanceof HubError && (error.code === "unreachable" || error.code === "timeout");
    if (noHub && cached !== undefined) return cached;
    throw error;
  }
}

/**
 * `revision`, if it is a git ref name (branch, tag, "refs/pr/1") or a commit id. It becomes a
 * path in the cache (refs/<revision>), so whatever git refuses in a ref name, ".." and absolute
 * paths among it, is refused before it reaches the file system.
 */
function checkRevision(revision: unknown): string {
  if (typeof revision === "string" && refNameProblem(revision) === undefined) return revision;
  const problem =
    typeof revision === "string"
      ? `${JSON.stringify(revision)} is not a branch, tag or commit: ${refNameProblem(revision)}`
      : `got ${describe(revision)}`;
  throw new HubError(
    "bad_revision",
    `option revision: ${problem}; ` +
      'expected a git ref name such as "main", "v1.0" or "refs/pr/1", or a commit id of 40 hex digits',
  );
}

/** What git's check-ref-format would object to in `name`, if anything. */
function refNameProblem(name: string): string | undefined {
  const bad = /[\x00-\x20\x7f~^:?*[\\]/.exec(name);
  if (name === "") return "it is empty";
  if (bad !== null) return `it contains ${JSON.stringify(bad[0])}`;
  if (name.includes("..")) return 'it contains ".."';
  if (name.includes("@{") || name === "@") return 'it contains "@{" or is "@"';
  if (name.split("/").some((part) => part === "")) return 'it starts or ends with "/", or has "//"';
  if (name.split("/").some((part) => part.startsWith(".") || part.endsWith(".lock"))) {
    return 'a part of it starts with "." or ends with ".lock"';
  }
  if (name.endsWith(".")) return 'it ends with "."';
  return undefined;
}

function checkTimeout(timeoutMs: unknown): number {
  // setTimeout cannot wait longer than 2^31 - 1 ms; a longer wait would fire at once.
  const longest = 2 ** 31 - 1;
  if (typeof timeoutMs === "number" && timeoutMs >= 1 && timeoutMs <= longest) return timeoutMs;
  throw new OptionError(
    `option timeoutMs: expected a number of milliseconds from 1 to ${longest}, got ${describe(timeoutMs)}`,
  );
}

/** tsvene's files of a transformers model: config, generation config, tokenizer files, safetensors weights. */
const MODEL_PLAN: SnapshotPlan = {
  what: "model",
  async fetch(sizes, fetchFile, where) {
    if (!sizes.has(CONFIG_FILE)) {
      throw new HubError(
        "no_config",
        `${where} has no ${CONFIG_FILE}, so it is not a transformers model tsvene can load ` +
          `(files: ${[...sizes.keys()].join(", ")})`,
      );
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
        if (!sizes.has(shard))
          throw new HubError(
            "no_safetensors",
            `${where}: ${WEIGHTS_INDEX_FILE} names shard ${shard}, which the repo does not have`,
          );
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
  /** Names the repo and revision in messages. */
  where: string;
  repoDir: string;
  hubUrl: string;
  accessToken: string | undefined;
  timeoutMs: number;
}

async function download(settings: Settings, plan: SnapshotPlan): Promise<string> {
  const { id, revision, repoDir, where, hubUrl, accessToken, timeoutMs } = settings;
  const apiFetch = hubFetch(timeoutMs, "json", where);
  await removeOrphanPartials(repoDir);

  const info = await askHub(settings, () =>
    modelInfo({ name: id, revision, hubUrl, accessToken, additionalFields: ["sha"], fetch: apiFetch }),
  );
  const commit = info.sha;
  // The commit becomes a folder name: it must be what a commit id is, whatever the server says.
  if (typeof commit !== "string" || !COMMIT.test(commit)) {
    throw new HubError(
      "bad_response",
      `${where}: the Hub at ${hubUrl} answered with the commit id ${describe(commit)}; expected 40 hex digits`,
    );
  }
  const snapshot = join(repoDir, "snapshots", commit);

  const listing = await askHub(settings, async () => {
    const files = new Map<string, ListedFile>();
    for await (const entry of listFiles({ repo: id, hubUrl, accessToken, revision: commit, fetch: apiFetch })) {
      if (entry.type === "file") files.set(entry.path, listedFile(entry, where));
    }
    return files;
  });
  const hub: HubAccess = { repo: id, hubUrl, accessToken, commit, timeoutMs, where };
  const fetchFile = async (path: string): Promise<string> => {
    const target = join(snapshot, path);
    const stamp = join(repoDir, "verified", commit, path);
    await askHub(settings, () => fetchListedFile(hub, path, listing.get(path)!, target, stamp));
    return target;
  };
  await plan.fetch(new Map([...listing].map(([path, file]) => [path, file.size])), fetchFile, where);

  if (revision !== commit) {
    const ref = join(repoDir, "refs", revision);
    await mkdir(dirname(ref), { recursive: true });
    await writeTextAtomically(ref, commit);
  }
  return snapshot;
}

/** Runs a Hub request, turning its failures into errors that say what is wrong and what to do. */
async function askHub<T>(settings: Settings, request: () => Promise<T>): Promise<T> {
  const { where, hubUrl } = settings;
  try {
    return await request();
  } catch (error) {
    const network = networkErrorCode(error);
    if (network !== undefined) {
      throw new HubError(
        "unreachable",
        `${where}: cannot reach the Hub at ${hubUrl} (${network}), ` +
          `and ${settings.repoDir} holds no complete copy of it. ` +
          `Connect to the network, point HF_ENDPOINT at a reachable mirror, or pass a local ${settings.what} folder.`,
        { cause: error },
      );
    }
    if (error instanceof HubApiError && [401, 403, 404].includes(error.statusCode)) {
      throw new HubError(
        "not_found",
        `${where} was not found on ${hubUrl} (HTTP ${error.statusCode}: ${error.message}). ` +
          "Check the id and revision; private and gated models need an access token (option accessToken or HF_TOKEN).",
        { cause: error },
      );
    }
    if (error instanceof HubApiError) {
      throw new Error(`${where}: the Hub at ${hubUrl} answered HTTP ${error.statusCode} (${error.message})`, {
        cause: error,
      });
    }
    // JSON that does not parse, or an answer without the headers a Hub answer has.
    if (error instanceof SyntaxError || error instanceof InvalidApiResponseFormatError) {
      const message = `${where}: the Hub at ${hubUrl} gave an answer tsvene cannot read (${error.message})`;
      throw new HubError("bad_response", message, { cause: error });
    }
    throw error;
  }
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
