/**
 * The model shipped inside the package (models/default/): a small GPT-2 trained by
 * scripts/train-default-model.ts to recall synthetic facts (subject → city, language, sport, job),
 * so that causal tracing and patching work offline, with a mechanism whose answer is known.
 * models/default/TASK.md describes the task and what tracing shows; facts.json holds the facts.
 */
import type { WeightDtype } from "../io/dtypes.js";
import { joinPath, pathExists } from "../io/files.js";
import { readOptions } from "../options/index.js";
import { platform } from "../platform/index.js";
import { loadPretrained, type Pretrained } from "./auto.js";

/** The default model's folder (HF layout: config.json, model.safetensors, tokenizer.json, …), inside the package. */
export const DEFAULT_MODEL_FOLDER = platform().packagePath("models", "default");

/** Loads the default model and its tokenizer, as loadPretrained does for any folder. */
export async function loadDefaultModel(options: { dtype?: WeightDtype } = {}): Promise<Pretrained> {
  const { dtype } = readOptions<{ dtype?: WeightDtype }>(options, ["dtype"], "loadDefaultModel options");
  if (!(await pathExists(joinPath(DEFAULT_MODEL_FOLDER, "config.json")))) {
    throw new Error(
      `the default model is missing: ${DEFAULT_MODEL_FOLDER} has no config.json ` +
        "(expected the folder shipped with tsvene; npm run train:default-model rebuilds it)",
    );
  }
  return loadPretrained(DEFAULT_MODEL_FOLDER, dtype === undefined ? {} : { dtype });
}
