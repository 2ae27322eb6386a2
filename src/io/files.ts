/** Small file helpers shared by the io layer: optional reads, JSON objects, atomic writes. */
import { randomBytes } from "node:crypto";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";

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
  if (!isJsonObject(json)) throw new Error(`${source}: expected a JSON object, got ${Array.isArray(json) ? "an array" : JSON.stringify(json)}`);
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
