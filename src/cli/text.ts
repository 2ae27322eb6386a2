/**
 * The user's text read through the model's tokenizer: a prompt, a subject inside it, a target
 * token, a steering text. Text the model cannot read as written is refused, never silently changed:
 * a word-level tokenizer turns an unknown word into its unk token (and some tokenizers drop
 * characters they have no token for), so "Ada Lovelace lives in" would run as "<unk> <unk> lives in".
 * Errors quote the text as the user typed it and name the flag (or the file line) it came from.
 */
import {
  respelled,
  subjectPositions as findSubject,
  targetToken as findTarget,
  type Prompt,
  type TargetToken,
} from "../causal/prompt-tokens.js";
import type { Tokenizer } from "../io/tokenizer.js";
import type { PretrainedModel } from "../models/model.js";
import { UsageError } from "./args.js";
import type { LoadedModel } from "./context.js";
import { factsFileOf } from "./facts.js";

/** Config fields that give the longest sequence a model takes, in the order HF's families use them. */
const CONTEXT_FIELDS = ["n_positions", "max_position_embeddings", "n_ctx"] as const;
/** How many vocabulary entries an unknown-word error shows as a sample. */
const VOCABULARY_SAMPLE = 12;

/** The ids of a prompt the model will run: at least one token, every word known, within the context. */
export function promptIds(loaded: LoadedModel, text: string, label: string): number[] {
  const ids = loaded.tokenizer.encode(text);
  if (ids.length === 0) throw new UsageError(`${label} must be text that has at least one token, got ${quote(text)}`);
  checkVocabulary(loaded, text, label);
  const context = contextLength(loaded.model);
  if (context !== null && ids.length > context) {
    const problem = `the prompt is ${ids.length} tokens; the model's context is ${context}`;
    throw new UsageError(`${label}: ${problem} (expected a shorter prompt)`);
  }
  return ids;
}

/** The longest sequence the model takes, as its config states it; null when the config does not say. */
export function contextLength(model: PretrainedModel): number | null {
  for (const field of CONTEXT_FIELDS) {
    const value = model.config[field];
    if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return value;
  }
  return null;
}

/** A word the tokenizer does not give back, and what the model would read instead. */
export interface UnknownWord {
  word: string;
  readAs: string;
}

/**
 * The words of `text` the tokenizer cannot represent. The rule holds for any tokenizer: a text is
 * read faithfully when its encoding has no unk token (unless the text spells that token itself) and
 * decoding the encoding gives the text back, up to whitespace, case and Unicode compatibility forms
 * (which tokenizers normalise away without changing the words). Byte-level BPE always passes.
 */
export function unknownWords(tokenizer: Tokenizer, text: string): UnknownWord[] {
  if (readsBack(tokenizer, text)) return [];
  const words = text.split(/\s+/).filter((w) => w !== "" && !readsBack(tokenizer, w));
  // A text can fail as a whole while each word passes on its own; then the whole text is what changed.
  const failing = words.length > 0 ? words : [text];
  return failing.map((word) => ({ word, readAs: respelled(tokenizer, word) }));
}

function readsBack(tokenizer: Tokenizer, text: string): boolean {
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  const unk = tokenizer.unkTokenId;
  const unkText = unk === undefined ? undefined : tokenizer.idToToken(unk);
  if (unk !== undefined && ids.includes(unk) && !(unkText !== undefined && text.includes(unkText))) return false;
  return comparable(tokenizer.decode(ids)) === comparable(text);
}

function comparable(text: string): string {
  return text.normalize("NFKC").replace(/\s+/g, "").toLowerCase();
}

/** Refuses text with words the model cannot read, listing them and showing what the vocabulary looks like. */
export function checkVocabulary(loaded: LoadedModel, text: string, label: string): void {
  const unknown = unknownWords(loaded.tokenizer, text);
  if (unknown.length === 0) return;
  const list = unknown.map((u) => `${quote(u.word)} (read as ${quote(u.readAs)})`).join(", ");
  const verb = unknown.length === 1 ? "is" : "are";
  throw new UsageError(
    `${label} ${quote(text)}: ${list} ${verb} not in the model's vocabulary. ${vocabularyHint(loaded)}`,
  );
}

/** What the vocabulary looks like, and where a model folder lists the names it knows. */
function vocabularyHint({ tokenizer, folder }: LoadedModel): string {
  const special = new Set([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.unkTokenId, tokenizer.padTokenId]);
  const sample: string[] = [];
  for (let id = 0; id < tokenizer.vocabSize && sample.length < VOCABULARY_SAMPLE; id++) {
    const token = tokenizer.idToToken(id);
    if (!special.has(id) && token !== undefined && token.trim() !== "") sample.push(quote(token));
  }
  const facts = factsFileOf(folder);
  return (
    `Its vocabulary has ${tokenizer.vocabSize} tokens (e.g. ${sample.join(", ")}, …)` +
    (facts === null ? "." : `; the names and facts it knows are listed in ${facts}.`)
  );
}

/** Text in an error message, quoted as typed (JSON shows spaces and escapes plainly). */
function quote(text: string): string {
  return JSON.stringify(text);
}

/** One label per position: each id decoded on its own. */
export function tokenLabels(tokenizer: Tokenizer, ids: readonly number[]): string[] {
  return ids.map((id) => tokenizer.decode([id]));
}

/**
 * The positions of the tokens that spell `subject` inside the prompt (see the library's
 * subjectPositions), after checking that the model can read the subject.
 */
export function subjectPositions(loaded: LoadedModel, prompt: Prompt, subject: string, label: string): number[] {
  if (subject.trim() !== "") checkVocabulary(loaded, subject, label);
  return asUsage(() => findSubject(loaded.tokenizer, prompt, subject, label));
}

/**
 * The token that `text` starts with when it continues the prompt (see the library's targetToken),
 * after checking that the model can read it.
 */
export function targetToken(loaded: LoadedModel, prompt: string, text: string, label: string): TargetToken {
  if (text.trim() !== "") checkVocabulary(loaded, text, label);
  return asUsage(() => findTarget(loaded.tokenizer, prompt, text, label));
}

/** The library's errors about the user's text, as usage errors (they name the flag). */
function asUsage<T>(find: () => T): T {
  try {
    return find();
  } catch (e) {
    throw e instanceof RangeError ? new UsageError(e.message) : e;
  }
}

/** The embedded model's example pair for the two-prompt commands (same number of tokens). */
export const DEFAULT_PAIR = { base: "Ka Bo lives in the city of", source: "Ro Vi lives in the city of" } as const;

/** Two prompts of the same number of tokens, by their flags; the embedded model's pair when both are left out. */
export function promptPair(
  loaded: LoadedModel,
  values: Readonly<Record<string, unknown>>,
  [baseFlag, sourceFlag]: readonly [string, string],
): { base: string; source: string; baseIds: number[]; sourceIds: number[] } {
  const given = [values[baseFlag], values[sourceFlag]] as (string | undefined)[];
  const expected = `expected --${baseFlag} "<text>" --${sourceFlag} "<text>"`;
  if (given[0] === undefined && given[1] === undefined && values.model !== undefined) {
    throw new UsageError(`--${baseFlag} and --${sourceFlag} are required with --model (${expected})`);
  }
  if ((given[0] === undefined) !== (given[1] === undefined)) {
    const missing = given[0] === undefined ? baseFlag : sourceFlag;
    throw new UsageError(
      `--${missing} is required when --${missing === baseFlag ? sourceFlag : baseFlag} is given (${expected})`,
    );
  }
  const base = given[0] ?? DEFAULT_PAIR.base;
  const source = given[1] ?? DEFAULT_PAIR.source;
  const baseIds = promptIds(loaded, base, `--${baseFlag}`);
  const sourceIds = promptIds(loaded, source, `--${sourceFlag}`);
  if (baseIds.length !== sourceIds.length) {
    throw new UsageError(
      `--${sourceFlag} must have as many tokens as --${baseFlag}: the ${baseFlag} has ${baseIds.length}, ` +
        `the ${sourceFlag} ${sourceIds.length} (patching pairs positions one to one)`,
    );
  }
  return { base, source, baseIds, sourceIds };
}

/** Positions whose tokens differ between two prompts. */
export function differingPositions(a: readonly string[], b: readonly string[]): number[] {
  return a.flatMap((t, i) => (t !== b[i] ? [i] : []));
}
