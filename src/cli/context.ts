/**
 * What the commands share: the options every command takes and loading the model and its
 * tokenizer (text.ts reads the user's text through it).
 */
import { WEIGHT_DTYPES, type WeightDtype } from "../io/dtypes.js";
import { loadPretrained } from "../models/auto.js";
import { DEFAULT_MODEL_FOLDER, loadDefaultModel } from "../models/default-model.js";
import type { PretrainedModel } from "../models/model.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { UsageError, type CommandSyntax, type OptionTable, type ParsedArgs } from "./args.js";

/**
 * One command of `tsvene <command>`: its syntax (for parsing and usage) and what it does;
 * run resolves to the exit code.
 */
export interface Command<T extends OptionTable = OptionTable> {
  syntax: CommandSyntax & { options: T };
  run(args: ParsedArgs<T>): Promise<number>;
}

export const COMMON_OPTIONS = {
  model: {
    kind: "string",
    form: "<id|folder>",
    description: "Hub id or local model folder (default: the embedded default model).",
  },
  dtype: {
    kind: "choice",
    choices: WEIGHT_DTYPES,
    description: "Weights in memory: float32 (default), bfloat16, or auto (the checkpoint's own dtype).",
  },
  json: { kind: "boolean", description: "Print the result as JSON on stdout." },
  out: { kind: "string", form: "<file>", description: "Also write the result as JSON to this file." },
  quiet: { kind: "boolean", short: "q", description: "No progress bar (it is drawn only when stderr is a terminal)." },
} as const satisfies OptionTable;

export interface LoadedModel {
  model: PretrainedModel;
  tokenizer: Tokenizer;
  /** The folder the model was read from (a Hub download lands in the cache). */
  folder: string;
  /** How to name the model in output: the reference given, or "default". */
  name: string;
}

/** The model named by --model, or the embedded default model, with its weights in --dtype. */
export async function loadModel(reference: string | undefined, dtype: WeightDtype = "float32"): Promise<LoadedModel> {
  const pretrained =
    reference === undefined ? await loadDefaultModel({ dtype }) : await loadPretrained(reference, { dtype });
  if (pretrained.tokenizer === null) {
    throw new UsageError(
      `--model ${reference ?? DEFAULT_MODEL_FOLDER}: the folder has no tokenizer ` +
        "(tokenizer.json, or vocab.json + merges.txt); the command line needs one to read text",
    );
  }
  return {
    model: pretrained.model,
    tokenizer: pretrained.tokenizer,
    folder: pretrained.folder,
    name: reference ?? "default",
  };
}

/** The pyvene components a model has, for checking --component before a sweep starts. */
export function checkComponent(model: PretrainedModel, component: string, flag: string): string {
  if (!Object.hasOwn(model.sites, component)) {
    throw new UsageError(
      `${flag} ${component} is not a component of this ${model.family} model ` +
        `(expected one of ${Object.keys(model.sites).join(", ")})`,
    );
  }
  return component;
}
