/**
 * The careful half of Hub downloads, which `hub.ts` drives:
 * - every request gives up once no bytes have arrived for `timeoutMs`, whether it waits for the
 *   answer or for the next chunk of its body (a stalled server would otherwise hold the caller
 *   for minutes);
 * - an answer that cannot be what was asked for (an HTML page from a proxy or captive portal where
 *   JSON or a file was expected) is reported as what it is: status, content type, first bytes;
 * - a file is kept only when it has exactly the size and hash the repo's file listing gives it
 *   (sha256 for LFS files, else git's blob sha1), and a cached copy is checked the same way before
 *   it is reused. A stamp under `<repo>/verified/` records each file checked (hash, size, times),
 *   so an unchanged file is not hashed again on every load;
 * - partial files are removed on failure, and those a killed process left behind on a later run.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileDownloadInfo, type ListFileEntry } from "@huggingface/hub";
import { partialPath, readTextIfPresent, writeTextAtomically } from "./files.js";

export type HubErrorCode =
  | "not_found"
  | "unreachable"
  | "no_config"
  | "no_safetensors"
  | "bad_revision"
  | "bad_response"
  | "timeout"
  | "truncated"
  | "integrity";

/** A Hub repo that cannot be had: `code` says why, the message says what to do. */
export class HubError extends Error {
  readonly code: HubErrorCode;

  constructor(code: HubErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HubError";
    this.code = code;
  }
}

/** How long a request may go without receiving a byte, unless `timeoutMs` says otherwise. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/**
 * A partial file untouched for this long belongs to no live download: a live one writes to its
 * partial file as bytes arrive, and gives up after `timeoutMs` without any.
 */
const ORPHAN_AGE_MS = 60 * 60 * 1000;
const HEX_FORM = { sha256: /^[0-9a-f]{64}$/, "git-sha1": /^[0-9a-f]{40}$/ };

/** What the listing says a file must be: its size, and its hash when the listing gives one. */
export interface ListedFile {
  size: number;
  hash?: { algorithm: "sha256" | "git-sha1"; hex: string };
}

/** The size and hash of a listing entry: for LFS files those of the LFS object, else of the git blob. */
export function listedFile(entry: ListFileEntry, where: string): ListedFile {
  const size = entry.lfs?.size ?? entry.size;
  const algorithm = entry.lfs ? "sha256" : "git-sha1";
  const hex = entry.lfs ? entry.lfs.oid : entry.oid;
  if (hex === undefined) return { size }; // nothing to check against
  if (!HEX_FORM[algorithm].test(hex)) {
    throw new HubError(
      "bad_response",
      `${where}: the file listing gives ${entry.path} the ${algorithm} ${JSON.stringify(hex)}, which is not one`,
    );
  }
  return { size, hash: { algorithm, hex } };
}

/** How a repo's files are fetched: its address, credentials, the commit, and how messages name it. */
export interface HubAccess {
  repo: string;
  hubUrl: string;
  accessToken: string | undefined;
  commit: string;
  timeoutMs: number;
  /** Names the repo and revision in messages. */
  where: string;
}

/**
 * `fetch` for Hub requests, giving up with a "timeout" HubError when no bytes arrive for
 * `timeoutMs`, and refusing answers of the wrong kind: anything but JSON where `expect` is
 * "json" (the API), an HTML page where it is "file".
 */
export function hubFetch(timeoutMs: number, expect: "json" | "file", where: string): typeof fetch {
  return async (input, init) => {
    const url = shownUrl(input instanceof Request ? input.url : String(input));
    const watch: Watch = {
      ms: timeoutMs,
      controller: new AbortController(),
      stalled: () =>
        new HubError(
          "timeout",
          `${where}: no bytes from ${url} for ${timeoutMs} ms (option timeoutMs), so the request was given up; ` +
            "the Hub or something between it and you (a proxy, the network) stalled. Try again, or raise timeoutMs.",
        ),
    };
    const answer = await deadline(fetch(input, { ...init, signal: watch.controller.signal }), watch);
    const response = new Response(answer.body && watchedBody(answer.body, watch), answer);
    Object.defineProperty(response, "url", { value: answer.url });
    await refuseWrongKind(response, expect, url, where);
    return response;
  };
}

/** The deadline of a request: how long to wait for bytes, how to abort it, and the error it then fails with. */
interface Watch {
  ms: number;
  controller: AbortController;
  stalled: () => HubError;
}

/**
 * A URL as messages show it: without its query, which on the Hub is a list of fields asked for,
 * and on a download server may be a signature that belongs in no log.
 */
function shownUrl(url: string): string {
  const { origin, pathname } = new URL(url);
  return origin + pathname;
}

/** `work`, unless `watch.ms` pass first: then the request is aborted and this fails with `watch.stalled()`. */
function deadline<T>(work: Promise<T>, watch: Watch): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = watch.stalled();
      reject(error); // before aborting, so that the race settles with this error rather than the abort's
      watch.controller.abort(error);
    }, watch.ms);
  });
  return Promise.race([work, expiry]).finally(() => clearTimeout(timer));
}

/** `body` with each read held to the deadline; it reads only when asked, so a slow consumer is no stall. */
function watchedBody(body: ReadableStream<Uint8Array>, watch: Watch): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(out) {
        const { done, value } = await deadline(reader.read(), watch);
        if (done) out.close();
        else out.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

async function refuseWrongKind(response: Response, expect: "json" | "file", url: string, where: string): Promise<void> {
  const type = response.headers.get("content-type") ?? "";
  const wrong = expect === "json" ? !/json/i.test(type) : /^text\/html/i.test(type);
  if (!wrong) return;
  const expected = expect === "json" ? "JSON" : "a file";
  throw new HubError(
    "bad_response",
    `${where}: ${url} answered HTTP ${response.status} with ${type || "no content type"} ` +
      `where ${expected} was expected, starting ${await firstBytes(response)}. ` +
      "A proxy, firewall or captive portal may be answering instead of the Hub.",
  );
}

/** The start of a body, for messages. */
async function firstBytes(response: Response, count = 120): Promise<string> {
  const reader = response.body?.getReader();
  const first = reader && (await reader.read()).value;
  await reader?.cancel();
  const text = new TextDecoder().decode(first?.subarray(0, count)).replace(/\s+/g, " ");
  return text === "" ? "with nothing (an empty body)" : JSON.stringify(text);
}

/**
 * Puts file `path` of the commit at `target`: a cached copy is reused when its bytes are those
 * listed, else the file is downloaded (once) and kept only if its size and hash are those listed.
 * `stamp` is where the record of a checked copy goes.
 */
export async function fetchListedFile(
  hub: HubAccess,
  path: string,
  listed: ListedFile,
  target: string,
  stamp: string,
): Promise<void> {
  if (await isListedCopy(target, listed, stamp)) return;
  const { repo, hubUrl, accessToken, commit, where } = hub;
  const fileFetch = hubFetch(hub.timeoutMs, "file", where);
  // The client puts the path into the URL as it is: a name with "#" or "?" (pyvene's intkey_…#0.bin) needs escaping.
  const urlPath = path.split("/").map(encodeURIComponent).join("/");
  const info = await fileDownloadInfo({ repo, hubUrl, accessToken, path: urlPath, revision: commit, fetch: fileFetch });
  if (info === null)
    throw new HubError("not_found", `${where}: the Hub lists ${path} at commit ${commit} but does not serve it`);
  const headers: Record<string, string> = accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
  const response = await fileFetch(info.url, { headers });
  const url = shownUrl(info.url);
  if (!response.ok) {
    await response.body?.cancel();
    throw new HubError(
      "bad_response",
      `${where}: ${url} answered HTTP ${response.status} where the file ${path} was expected`,
    );
  }
  await mkdir(dirname(target), { recursive: true });
  const partial = partialPath(target);
  try {
    await writeListedBytes(response, partial, listed, { where, path, url });
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
  await writeStamp(stamp, listed, await stat(target));
}

/** A file being downloaded, as messages name it. */
interface Source {
  where: string;
  path: string;
  url: string;
}

/**
 * Writes the body to `partial`; fails as soon as it is longer than listed,
 * and if it is shorter or hashes otherwise.
 */
async function writeListedBytes(
  response: Response,
  partial: string,
  listed: ListedFile,
  source: Source,
): Promise<void> {
  const { where, path, url } = source;
  const hash = listed.hash && startHash(listed.hash.algorithm, listed.size);
  const reader = (response.body ?? new Blob().stream()).getReader();
  const file = await open(partial, "w");
  let received = 0;
  try {
    for (;;) {
      const chunk = await nextChunk(reader, source, received, listed.size);
      if (chunk === undefined) break;
      received += chunk.byteLength;
      if (received > listed.size) {
        const message =
          `${where}: ${url} sent more than the ${listed.size} bytes the Hub lists for ${path}; ` +
          "stopped reading there";
        throw new HubError("integrity", message);
      }
      hash?.update(chunk);
      await file.write(chunk);
    }
  } finally {
    await file.close();
    // Stops a body not read to its end (too long, or the disk failed), so that its connection is let go.
    await reader.cancel().catch(() => undefined);
  }
  if (received < listed.size) throw truncated(source, received, listed.size);
  const actual = hash?.digest("hex");
  if (listed.hash && actual !== listed.hash.hex) {
    throw new HubError(
      "integrity",
      `${where}: ${path} downloaded from ${url} is not the file the Hub lists: ` +
        `its ${listed.hash.algorithm} is ${actual}, ` +
        `expected ${listed.hash.hex}. Something between you and the Hub altered it; try again.`,
    );
  }
}

/** The next chunk of a body, or undefined at its end; a connection lost on the way makes a truncated download. */
async function nextChunk(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  source: Source,
  received: number,
  size: number,
): Promise<Uint8Array | undefined> {
  try {
    const { done, value } = await reader.read();
    return done ? undefined : value;
  } catch (error) {
    if (error instanceof HubError) throw error; // a stall, already explained
    throw truncated(source, received, size, error);
  }
}

function truncated({ where, path, url }: Source, received: number, size: number, cause?: unknown): HubError {
  // fetch reports a lost connection as TypeError("terminated") with the socket's error as its cause.
  const why =
    cause === undefined ? "the body ended early" : `the connection broke: ${String((cause as Error).cause ?? cause)}`;
  return new HubError(
    "truncated",
    `${where}: the download of ${path} from ${url} is truncated: got ${received} of ${size} bytes (${why}). Try again.`,
    { cause },
  );
}

/** A hash of a file's bytes as the listing gives it: git's blob id hashes a "blob <size>\0" header first. */
function startHash(algorithm: "sha256" | "git-sha1", size: number): Hash {
  return algorithm === "sha256" ? createHash("sha256") : createHash("sha1").update(`blob ${size}\0`);
}

/**
 * Whether `target` holds the listed bytes: the listed size, and either a stamp saying it was
 * checked and has not changed since, or (checked now) the listed hash.
 */
async function isListedCopy(target: string, listed: ListedFile, stamp: string): Promise<boolean> {
  const found = await statIfPresent(target);
  if (found === undefined || found.size !== listed.size) return false;
  if (listed.hash === undefined) return true; // the listing gives nothing more to check
  if ((await readTextIfPresent(stamp)) === stampText(listed, found)) return true;
  const hash = startHash(listed.hash.algorithm, listed.size);
  for await (const chunk of createReadStream(target)) hash.update(chunk as Buffer);
  if (hash.digest("hex") !== listed.hash.hex) return false; // damaged or replaced: download it again, not trust it
  await writeStamp(stamp, listed, found);
  return true;
}

/** The stamp of a checked file; its change time moves with any write, so an altered file no longer matches. */
function stampText(listed: ListedFile, file: Stats): string {
  const { size, mtimeMs, ctimeMs } = file;
  return `${listed.hash?.algorithm} ${listed.hash?.hex} size ${size} mtime ${mtimeMs} ctime ${ctimeMs}\n`;
}

async function writeStamp(stamp: string, listed: ListedFile, file: Stats): Promise<void> {
  if (listed.hash === undefined) return;
  try {
    await mkdir(dirname(stamp), { recursive: true });
    await writeTextAtomically(stamp, stampText(listed, file));
  } catch {
    // A cache we may read but not write: the copy is checked again next time, which is only slower.
  }
}

/**
 * Removes `*.partial` files under `folder` that belong to no live download (a killed process
 * leaves its partial file behind). A live download's partial file is written to continuously,
 * so only those untouched for an hour go.
 */
export async function removeOrphanPartials(folder: string): Promise<void> {
  const names = await readdir(folder, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [];
    throw error;
  });
  for (const name of names) {
    if (!name.endsWith(".partial")) continue;
    const found = await statIfPresent(join(folder, name)); // another process may finish or remove it meanwhile
    if (found?.isFile() && Date.now() - found.mtimeMs > ORPHAN_AGE_MS) await rm(join(folder, name), { force: true });
  }
}

/** The system error code of a failed connection (fetch wraps it as the cause of a TypeError), if `error` is one. */
export function networkErrorCode(error: unknown): string | undefined {
  if (!(error instanceof TypeError)) return undefined;
  const cause = (error as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === "string" ? cause.code : error.message === "fetch failed" ? "fetch failed" : undefined;
}

async function statIfPresent(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
