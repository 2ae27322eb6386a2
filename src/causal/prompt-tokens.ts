/**
 * The user's text read through a model's tokenizer: a prompt's ids, refused when the model cannot
 * read it as written (see unknownWords) or when it is longer than the model's context; where the
 * parts of a factual prompt sit in its tokens: the subject's positions (the tokens causal tracing
 * corrupts and DAS intervenes at) and the token a target text starts with (the answer measured).
 * They work for any tokenizer: word level, byte-level BPE, or one that spells punctuation apart
 * ("Fact:" decodes as "Fact :"). The command line and the browser page both read text this way.
 */
import type { Tokenizer } from "../io/tokenizer.js";
import type { PretrainedModel } from "../models/model.js";

/** A model that reads text, and where the names it knows are listed (its facts.json), for error messages. */
export interface TextReader {
  tokenizer: Tokenizer;
  model: PretrainedModel;
  factsFile?: string | null;
}

/** Config fields that give the longest sequence a model takes, in the order HF's families use them. */
const CONTEXT_FIELDS = ["n_positions", "max_position_embeddings", "n_ctx"] as const;
/** How many vocabulary entries an unknown-word error shows as a sample. */
const VOCABULARY_SAMPLE = 12;

/**
 * The ids of a prompt the model will run: at least one token, every word known (checkVocabulary),
 * within the model's context. `label` names the prompt in the RangeError thrown otherwise.
 */
export function promptIds(reader: TextReader, text: string, label: string): number[] {
  const ids = reader.tokenizer.encode(text);
  if (ids.length === 0) throw new RangeError(`${label} must be text that has at least one token, got ${quote(text)}`);
  checkVocabulary(reader, text, label);
  const context = contextLength(reader.model);
  if (context !== null && ids.length > context) {
    const problem = `the prompt is ${ids.length} tokens; the model's context is ${context}`;
    throw new RangeError(`${label}: ${problem} (expected a shorter prompt)`);
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
 * (which tokenizers normalise away without changing the words). A word-level tokenizer turns an
 * unknown word into its unk token (and some tokenizers drop characters they have no token for), so
 * "Ada Lovelace lives in" would run as "<unk> <unk> lives in". Byte-level BPE always passes.
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

/**
 * Refuses (RangeError) text with words the model cannot read, listing them and showing what the
 * vocabulary looks like; the text is quoted as typed and `label` names where it came from.
 */
export function checkVocabulary(reader: TextReader, text: string, label: string): void {
  const unknown = unknownWords(reader.tokenizer, text);
  if (unknown.length === 0) return;
  const list = unknown.map((u) => `${quote(u.word)} (read as ${quote(u.readAs)})`).join(", ");
  const verb = unknown.length === 1 ? "is" : "are";
  throw new RangeError(
    `${label} ${quote(text)}: ${list} ${verb} not in the model's vocabulary. ${vocabularyHint(reader)}`,
  );
}

/** What the vocabulary looks like, and where the names the model knows are listed. */
function vocabularyHint({ tokenizer, factsFile }: TextReader): string {
  const special = new Set([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.unkTokenId, tokenizer.padTokenId]);
  const sample: string[] = [];
  for (let id = 0; id < tokenizer.vocabSize && sample.length < VOCABULARY_SAMPLE; id++) {
    const token = tokenizer.idToToken(id);
    if (!special.has(id) && token !== undefined && token.trim() !== "") sample.push(quote(token));
  }
  return (
    `Its vocabulary has ${tokenizer.vocabSize} tokens (e.g. ${sample.join(", ")}, …)` +
    (factsFile ? `; the names and facts it knows are listed in ${factsFile}.` : ".")
  );
}

/** Text in an error message, quoted as typed (JSON shows spaces and escapes plainly). */
function quote(text: string): string {
  return JSON.stringify(text);
}

/** A prompt as the user typed it, and its ids. */
export interface Prompt {
  text: string;
  ids: readonly number[];
}

/** The text as the model reads it: encoded, then decoded. */
export function respelled(tokenizer: Tokenizer, text: string, options = { skipSpecialTokens: false }): string {
  return tokenizer.decode(tokenizer.encode(text, { addSpecialTokens: false }), options);
}

/**
 * The positions of the tokens that spell `subject` inside the prompt, found as ROME does: the
 * subject's character span in the decoded prompt, and every token whose characters overlap it.
 * The subject is looked for as typed and as the tokenizer spells it. `label` names the subject in
 * the error thrown when it is not there.
 */
export function subjectPositions(tokenizer: Tokenizer, prompt: Prompt, subject: string, label = "subject"): number[] {
  const wanted = subject.trim();
  const text = tokenizer.decode(prompt.ids, { skipSpecialTokens: true });
  const spelled = respelled(tokenizer, wanted, { skipSpecialTokens: true }).trim();
  const match = [wanted, spelled].find((s) => s !== "" && text.includes(s));
  if (match === undefined) {
    throw new RangeError(
      `${label} ${JSON.stringify(subject)} does not occur in the prompt ${JSON.stringify(prompt.text)} ` +
        "(expected text from the prompt, e.g. a name in it)",
    );
  }
  const start = text.indexOf(match);
  const end = start + match.length;
  const positions: number[] = [];
  let tokenStart = 0;
  prompt.ids.forEach((_, i) => {
    const tokenEnd = tokenizer.decode(prompt.ids.slice(0, i + 1), { skipSpecialTokens: true }).length;
    if (tokenEnd > start && tokenStart < end && tokenEnd > tokenStart) positions.push(i);
    tokenStart = tokenEnd;
  });
  return positions;
}

/** A target: its id, its label, and a note when only its first token is used. */
export interface TargetToken {
  id: number;
  label: string;
  note: string | null;
}

/**
 * The token that `text` starts with when it continues the prompt. Users write "Paris" where a
 * byte-level BPE model predicts " Paris", so a leading space is tried first when the text has none.
 * `label` names the text in errors and in the note.
 */
export function targetToken(tokenizer: Tokenizer, prompt: string, text: string, label = "target"): TargetToken {
  if (text.trim() === "")
    throw new RangeError(`${label} must be a token or a word, e.g. Paris; got ${JSON.stringify(text)}`);
  const candidates = /^\s/.test(text) ? [text] : [` ${text}`, text];
  const continuations = candidates.map((c) => continuationIds(tokenizer, prompt, c)).filter((ids) => ids.length > 0);
  if (continuations.length === 0)
    throw new RangeError(`${label} ${JSON.stringify(text)} has no tokens after the prompt`);
  const single = continuations.find((ids) => ids.length === 1);
  const ids = single ?? continuations[0];
  const first = tokenizer.decode([ids[0]]);
  const note = single
    ? null
    : `${label} ${JSON.stringify(text)} is ${ids.length} tokens; measuring its first, ${JSON.stringify(first)}`;
  return { id: ids[0], label: first, note };
}

/** The ids that `text` adds after the prompt's own (its tokens alone where the prompt's are not a prefix). */
export function continuationIds(tokenizer: Tokenizer, prompt: string, text: string): number[] {
  const promptIds = tokenizer.encode(prompt);
  const full = tokenizer.encode(prompt + text);
  const isPrefix = promptIds.length < full.length && promptIds.every((id, i) => full[i] === id);
  return isPrefix ? full.slice(promptIds.length) : tokenizer.encode(text, { addSpecialTokens: false });
}
