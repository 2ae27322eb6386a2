/**
 * Where the parts of a factual prompt sit in its tokens: the subject's positions (the tokens
 * causal tracing corrupts and DAS intervenes at) and the token a target text starts with (the
 * answer measured). They work for any tokenizer: word level, byte-level BPE, or one that spells
 * punctuation apart ("Fact:" decodes as "Fact :").
 */
import type { Tokenizer } from "../io/tokenizer.js";

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
