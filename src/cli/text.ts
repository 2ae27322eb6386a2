/**
 * The user's text read through the model's tokenizer: a prompt, a subject inside it, a target
 * token, a steering text, checked as the library checks them (causal/prompt-tokens.ts: text the
 * model cannot read as written is refused, never silently changed), with the model folder's
 * facts.json named in the unknown-word error. The library's errors become usage errors: they quote
 * the text as the user typed it and name the flag (or the file line) it came from.
 */
import {
  checkVocabulary as checkWords,
  promptIds as readPrompt,
  subjectPositions as findSubject,
  targetToken as findTarget,
  type Prompt,
  type TargetToken,
  type TextReader,
} from "../causal/prompt-tokens.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { UsageError } from "./args.js";
import type { LoadedModel } from "./context.js";
import { factsFileOf } from "./facts.js";

export { contextLength } from "../causal/prompt-tokens.js";
export { differingPositions } from "../viz/format.js";

/** The ids of a prompt the model will run: at least one token, every word known, within the context. */
export function promptIds(loaded: LoadedModel, text: string, label: string): number[] {
  return asUsage(() => readPrompt(reader(loaded), text, label));
}

/** Refuses text with words the model cannot read, listing them and showing what the vocabulary looks like. */
export function checkVocabulary(loaded: LoadedModel, text: string, label: string): void {
  asUsage(() => checkWords(reader(loaded), text, label));
}

function reader({ tokenizer, model, folder }: LoadedModel): TextReader {
  return { tokenizer, model, factsFile: factsFileOf(folder) };
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
