/**
 * Small file helpers shared by the io layer: optional reads, JSON objects, atomic writes; and
 * the file access the core's savers and loaders use (paths, folders, temporary folders), so
 * that they import nothing from node: themselves.
 */
import { randomBytes } from "node:crypto";
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export type JsonObject = Record<string, unknown>;

/** Whether `path` exists (following links, as a cache snapshot's files may be links). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

export async function readTextIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** The bytes of a file; `what` names it in the error when there is none. */
export async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    const bytes = await readFile(path);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`${what} ${path}: no such file`);
    throw error;
  }
}

/** A JSON file that must hold an object, or undefined when the file is absent. */
export async function readJsonObjectIfPresent(path: string): Promise<JsonObject | undefined> {
  const text = await readTextIfPresent(path);
  return text === undefined ? undefined : parseJsonObject(text, path);
}

/** Parses JSON text that must hold an object; `source` names it in errors. */
export function parseJsonObject(text: string, source: string): JsonObject {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source}: not valid JSON (${(error as Error).message})`);
  }
  if (!isJsonObject(json))
    throw new Error(
      `${source}: expected a JSON object, got ${Array.isArray(json) ? "an array" : JSON.stringify(json)}`,
    );
  return json;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A temporary name beside `path`, for writing a file that appears only once complete. */
export function partialPath(path: string): string {
  return `${path}.${randomBytes(6).toString("hex")}.partial`;
}

/** Writes text so that `path` holds either its old content or the whole new text, never a part. */
export async function writeTextAtomically(path: string, text: string): Promise<void> {
  const partial = partialPath(path);
  try {
    await writeFile(partial, text);
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** Joins path segments with the platform's separator (node:path join). */
export function joinPath(...segments: string[]): string {
  return join(...segments);
}

/** Whether anything is at `path`, as existsSync says: false on any error. */
export async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** What is at `path` (following links): a folder, another kind of file, or nothing that can be read. */
export async function pathKind(path: string): Promise<"folder" | "file" | "none"> {
  return stat(path).then(
    (s) => (s.isDirectory() ? "folder" : "file"),
    () => "none",
  );
}

/** The names of the entries of a folder. */
export async function listFolder(folder: string): Promise<string[]> {
  return readdir(folder);
}

/** Creates `folder` and the folders above it that are missing. */
export async function createFolder(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
}

/** Removes the file at `path`, if there is one. */
export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true });
}

/** Runs `fn` on a new empty folder in the system's temporary folder, removed afterwards. */
export async function withTemporaryFolder<T>(prefix: string, fn: (folder: string) => Promise<T>): Promise<T> {
  const folder = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(folder);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

/** The file: URL of a path. */
export function fileUrl(path: string): URL {
  return pathToFileURL(path);
}
