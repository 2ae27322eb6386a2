/**
 * What the commands share: the options every command takes, loading the model and its tokenizer,
 * and turning the user's text (a prompt, a subject inside it, a target token) into ids and
 * positions, with errors that name the flag whose text did not fit.
 */
import { loadPretrained } from "../models/auto.js";
import { DEFAULT_MODEL_FOLDER, loadDefaultModel } from "../models/default-model.js";
import type { PretrainedModel } from "../models/model.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { UsageError, type CommandSyntax, type OptionTable, type ParsedArgs } from "./args.js";

/** One command of `tsvene <command>`: its syntax (for parsing and usage) and what it does; run resolves to the exit code. */
export interface Command<T extends OptionTable = OptionTable> {
  syntax: CommandSyntax & { options: T };
  run(args: ParsedArgs<T>): Promise<number>;
}

export const COMMON_OPTIONS = {
  model: { kind: "string", form: "<id|folder>", description: "Hub id or local model folder (default: the embedded default model)." },
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

/** The model named by --model, or the embedded default model. */
export async function loadModel(reference: string | undefined): Promise<LoadedModel> {
  const pretrained = reference === undefined ? await loadDefaultModel() : await loadPretrained(reference);
  if (pretrained.tokenizer === null) {
    throw new UsageError(`--model ${reference ?? DEFAULT_MODEL_FOLDER}: the folder has no tokenizer (tokenizer.json, or vocab.json + merges.txt); the command line needs one to read text`);
  }
  return { model: pretrained.model, tokenizer: pretrained.tokenizer, folder: pretrained.folder, name: reference ?? "default" };
}

/** The ids of a text, checked to be non-empty. */
export function encodeText(tokenizer: Tokenizer, text: string, flag: string): number[] {
  const ids = tokenizer.encode(text);
  if (ids.length === 0) throw new UsageError(`${flag} must be text that has at least one token, got ${JSON.stringify(text)}`);
  return ids;
}

/** One label per position: each id decoded on its own. */
export function tokenLabels(tokenizer: Tokenizer, ids: readonly number[]): string[] {
  return ids.map((id) => tokenizer.decode([id]));
}

/**
 * The positions of the tokens that spell `subject` inside the prompt, found as ROME does: the
 * subject's character span in the decoded prompt, and every token whose characters overlap it.
 */
export function subjectPositions(tokenizer: Tokenizer, ids: readonly number[], subject: string, flag: string): number[] {
  const wanted = subject.trim();
  const text = tokenizer.decode(ids, { skipSpecialTokens: true });
  const start = wanted === "" ? -1 : text.indexOf(wanted);
  if (start < 0) throw new UsageError(`${flag} ${JSON.stringify(subject)} does not occur in the prompt ${JSON.stringify(text)} (expected text from the prompt, e.g. a name in it)`);
  const end = start + wanted.length;
  const positions: number[] = [];
  let tokenStart = 0;
  ids.forEach((_, i) => {
    const tokenEnd = tokenizer.decode(ids.slice(0, i + 1), { skipSpecialTokens: true }).length;
    if (tokenEnd > start && tokenStart < end && tokenEnd > tokenStart) positions.push(i);
    tokenStart = tokenEnd;
  });
  return positions;
}

/** A target the metric measures: its id, its label, and a note when only its first token is used. */
export interface TargetToken {
  id: number;
  label: string;
  note: string | null;
}

/**
 * The token that `text` starts with when it continues the prompt. Users write "Paris" where a
 * byte-level BPE model predicts " Paris", so a leading space is tried first when the text has none.
 */
export function targetToken(tokenizer: Tokenizer, prompt: string, text: string, flag: string): TargetToken {
  if (text.trim() === "") throw new UsageError(`${flag} must be a token or a word, e.g. ${flag} Paris; got ${JSON.stringify(text)}`);
  const candidates = /^\s/.test(text) ? [text] : [` ${text}`, text];
  const continuations = candidates.map((c) => continuationIds(tokenizer, prompt, c)).filter((ids) => ids.length > 0);
  if (continuations.length === 0) throw new UsageError(`${flag} ${JSON.stringify(text)} has no tokens after the prompt`);
  const single = continuations.find((ids) => ids.length === 1);
  const ids = single ?? continuations[0];
  if (ids[0] === tokenizer.unkTokenId && text.trim() !== tokenizer.decode([ids[0]])) {
    throw new UsageError(`${flag} ${JSON.stringify(text)} is not in the model's vocabulary (it reads as the unknown token ${JSON.stringify(tokenizer.decode([ids[0]]))}); expected a word the model knows`);
  }
  const label = tokenizer.decode([ids[0]]);
  const note = single ? null : `${flag} ${JSON.stringify(text)} is ${ids.length} tokens; measuring its first, ${JSON.stringify(label)}`;
  return { id: ids[0], label, note };
}

/** The ids that `text` adds after the prompt's own (its tokens alone where the prompt's are not a prefix). */
export function continuationIds(tokenizer: Tokenizer, prompt: string, text: string): number[] {
  const promptIds = tokenizer.encode(prompt);
  const full = tokenizer.encode(prompt + text);
  const isPrefix = promptIds.length < full.length && promptIds.every((id, i) => full[i] === id);
  return isPrefix ? full.slice(promptIds.length) : tokenizer.encode(text, { addSpecialTokens: false });
}

/** The pyvene components a model has, for checking --component before a sweep starts. */
export function checkComponent(model: PretrainedModel, component: string, flag: string): string {
  if (!(component in model.sites)) {
    throw new UsageError(`${flag} ${component} is not a component of this ${model.family} model (expected one of ${Object.keys(model.sites).join(", ")})`);
  }
  return component;
}
