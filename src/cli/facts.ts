/**
 * A model's facts file (facts.json in its folder), read from disk; its format is the library's
 * facts world (causal/facts-world.ts). `trace` takes its example prompt from it and finds the
 * subject of a prompt in it; `das` trains and tests on it.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseFacts, type Facts } from "../causal/facts-world.js";
import { describeFsError } from "./files.js";

const FACTS_FILE = "facts.json";

/** The facts file of a model folder, or null when it has none. */
export function factsFileOf(folder: string): string | null {
  const path = join(folder, FACTS_FILE);
  return existsSync(path) ? path : null;
}

export async function readFacts(path: string): Promise<Facts> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    const why = e instanceof SyntaxError ? `not valid JSON (${e.message})` : describeFsError(e);
    throw new Error(`facts file ${path}: ${why}`);
  }
  return parseFacts(parsed, `facts file ${path}`);
}
