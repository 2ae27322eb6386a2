/**
 * A model folder's files wherever they are, read without a file system: `File`s a user picked or
 * dropped in a browser (or any named `Blob`s), or files behind a base URL, read with `fetch` (a
 * static server, or a Hub repo through its resolve URLs). `loadPretrainedFrom` builds a model
 * from any of them. Nothing here touches node:, so the browser build and Node share it.
 */
import { describe, readOptions } from "../options/strict.js";
import { HubError, isHubId } from "./hub.js";

/** The files of one model folder, by name ("config.json", "model.safetensors", …). */
export interface ModelFiles {
  /** Names the folder in messages: the dropped folder's name, the base URL, the Hub id. */
  readonly where: string;
  /** A file's bytes, or undefined when the folder has no file of that name. */
  read(name: string): Promise<Uint8Array | undefined>;
}

/** A `File` (which carries its name, and a `webkitRelativePath` when it came from a picked folder). */
interface NamedBlob extends Blob {
  readonly name: string;
  readonly webkitRelativePath?: string;
}

/**
 * The files of a folder a user picked (`<input type="file" webkitdirectory>`) or dropped, or
 * named `Blob`s as `{ "config.json": blob, … }`. Files inside subfolders of a picked folder are
 * left out (a model folder keeps its files at the top); two files of one name are an error.
 */
export function filesFromBlobs(files: Iterable<NamedBlob> | Readonly<Record<string, Blob>>): ModelFiles {
  const byName = new Map<string, Blob>();
  let folder: string | undefined;
  const add = (name: string, blob: Blob) => {
    if (byName.has(name))
      throw new Error(`model files: two files are named ${JSON.stringify(name)}; expected one folder's files`);
    byName.set(name, blob);
  };
  if (Symbol.iterator in files) {
    for (const file of files as Iterable<NamedBlob>) {
      if (!(file instanceof Blob) || typeof file.name !== "string")
        throw new TypeError(`model files: expected File objects, got ${describe(file)}`);
      const parts = (file.webkitRelativePath || file.name).split("/");
      if (parts.length > 2) continue;
      if (parts.length === 2) folder ??= parts[0];
      add(parts[parts.length - 1], file);
    }
  } else {
    for (const [name, blob] of Object.entries(files)) {
      if (!(blob instanceof Blob))
        throw new TypeError(`model files: ${JSON.stringify(name)} must be a Blob or File, got ${describe(blob)}`);
      add(name, blob);
    }
  }
  const where = folder === undefined ? `the ${byName.size} files given` : `folder ${folder}`;
  return {
    where,
    async read(name) {
      const blob = byName.get(name);
      return blob === undefined ? undefined : new Uint8Array(await blob.arrayBuffer());
    },
  };
}

export interface UrlFilesOptions {
  /** The fetch to use; default the global one. */
  fetch?: typeof fetch;
  /** Sent as `Authorization` on every request, e.g. "Bearer hf_…". */
  authorization?: string;
}

const URL_OPTIONS = ["fetch", "authorization"] as const satisfies readonly (keyof UrlFilesOptions)[];

/**
 * The files under a base URL: file `name` is fetched from `new URL(name, base)` (a "/" is added to
 * the base when it lacks one), each of its "/"-separated parts URL-escaped: a file name is a name, so
 * its "#", "?" or "%" are characters of it. A 404 means the folder has no such file; any other failure
 * is an error.
 */
export function filesFromUrl(base: string | URL, urlOptions: UrlFilesOptions = {}): ModelFiles {
  const options = readOptions<UrlFilesOptions>(urlOptions, URL_OPTIONS, "filesFromUrl options");
  const text = String(base);
  let folder: URL;
  try {
    folder = new URL(text.endsWith("/") ? text : `${text}/`);
  } catch {
    throw new TypeError(
      `filesFromUrl: ${JSON.stringify(text)} is not an absolute URL (expected e.g. https://host/model/)`,
    );
  }
  const get = options.fetch ?? globalThis.fetch;
  const headers: Record<string, string> = options.authorization ? { Authorization: options.authorization } : {};
  return {
    where: folder.href,
    async read(name) {
      const url = new URL(name.split("/").map(encodeURIComponent).join("/"), folder);
      let response: Response;
      try {
        response = await get(url, { headers });
      } catch (error) {
        throw new HubError("unreachable", `cannot fetch ${url.href} (${(error as Error).message}); are you online?`, {
          cause: error,
        });
      }
      if (response.status === 404) return undefined;
      if (!response.ok) throw new Error(`fetching ${url.href}: HTTP ${response.status} ${response.statusText}`.trim());
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}

export interface HubFilesOptions {
  /** Branch, tag or commit; default "main". */
  revision?: string;
  /** The Hub's base URL; default https://huggingface.co. */
  endpoint?: string;
  /** For private and gated models. */
  accessToken?: string;
  fetch?: typeof fetch;
}

const HUB_OPTIONS = [
  "revision",
  "endpoint",
  "accessToken",
  "fetch",
] as const satisfies readonly (keyof HubFilesOptions)[];

/**
 * The files of a Hub model repo, fetched one by one from its resolve URLs
 * (`<endpoint>/<id>/resolve/<revision>/<file>`), without a cache: the browser's HTTP cache keeps them.
 */
export function filesFromHub(id: string, hubOptions: HubFilesOptions = {}): ModelFiles {
  const options = readOptions<HubFilesOptions>(hubOptions, HUB_OPTIONS, "filesFromHub options");
  if (typeof id !== "string" || !isHubId(id))
    throw new TypeError(`filesFromHub: ${describe(id)} is not a Hub model id (expected "owner/name" or "name")`);
  const endpoint = (options.endpoint ?? "https://huggingface.co").replace(/\/+$/, "");
  const revision = encodeURIComponent(options.revision ?? "main");
  const files = filesFromUrl(`${endpoint}/${id}/resolve/${revision}/`, {
    ...(options.fetch && { fetch: options.fetch }),
    ...(options.accessToken && { authorization: `Bearer ${options.accessToken}` }),
  });
  return { where: `Hub model ${id} (revision ${options.revision ?? "main"})`, read: files.read };
}
