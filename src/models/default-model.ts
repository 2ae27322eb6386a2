/**
 * The model shipped inside the package (models/default/): a small GPT-2 trained by
 * scripts/train-default-model.ts to recall synthetic facts (subject → city, language, sport, job),
 * so that causal tracing and patching work offline, with a mechanism whose answer is known.
 * models/default/TASK.md describes the task and what tracing shows; facts.json holds the facts.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPretrained, type Pretrained } from "./auto.js";

/**
 * The package root is the nearest folder above this module holding package.json: found by
 * search because this file runs both from src/ (via a TS loader) and from dist/src/ after tsc.
 */
function findPackageRoot(start: string): string {
  for (let folder = start; ; folder = dirname(folder)) {
    if (existsSync(join(folder, "package.json"))) return folder;
    if (dirname(folder) === folder) throw new Error(`no package.json in ${start} or any folder above it`);
  }
}

/** The default model's folder (HF layout: config.json, model.safetensors, tokenizer.json, …). */
export const DEFAULT_MODEL_FOLDER = join(findPackageRoot(dirname(fileURLToPath(import.meta.url))), "models", "default");

/** Loads the default model and its tokenizer, as loadPretrained does for any folder. */
export async function loadDefaultModel(): Promise<Pretrained> {
  if (!existsSync(join(DEFAULT_MODEL_FOLDER, "config.json"))) {
    throw new Error(`the default model is missing: ${DEFAULT_MODEL_FOLDER} has no config.json (expected the folder shipped with tsvene; npm run train:default-model rebuilds it)`);
  }
  return loadPretrained(DEFAULT_MODEL_FOLDER);
}
