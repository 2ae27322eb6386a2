/**
 * Tokenizers of HF model folders, run by `@huggingface/tokenizers` (the official JS port of the
 * Rust `tokenizers` crate). A folder with `tokenizer.json` is used as is; a GPT-2-style folder
 * with only `vocab.json` + `merges.txt` gets the `tokenizer.json` that transformers' GPT-2
 * converter would build from them (byte-level BPE). `tokenizer_config.json` and
 * `special_tokens_map.json`, when present, name the special tokens and the padding side.
 */
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { IntTensor } from "../tensor/index.js";
import { parseJsonObject, pathExists, readTextIfPresent, type JsonObject } from "./files.js";

/** The files a tokenizer may be made from; a Hub download fetches whichever the repo has. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "vocab.json",
  "merges.txt",
] as const;

/** GPT-2's only special token, which `GPT2Tokenizer` uses as bos, eos and unk when nothing else is configured. */
const GPT2_END_OF_TEXT = "<|endoftext|>";
const SPECIAL_TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "pad_token"] as const;

export type PaddingSide = "left" | "right";

export interface EncodeOptions {
  /** Add the model's special tokens (e.g. Llama's BOS), as transformers does by default; default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens from the text; default false. */
  skipSpecialTokens?: boolean;
}

export interface EncodeBatchOptions extends EncodeOptions {
  /** Which side shorter rows are padded on; default the tokenizer's `paddingSide`. */
  paddingSide?: PaddingSide;
  /** The id to pad with; default the tokenizer's `padTokenId` (GPT-2 has none: pass `eosTokenId`). */
  padTokenId?: number;
}

export interface BatchEncoding {
  /** [batch, longest], padded with the pad id. */
  inputIds: IntTensor;
  /** [batch, longest]: 1 at real tokens, 0 at padding. */
  attentionMask: IntTensor;
}

/**
 * Whether a model folder has tokenizer files (tokenizer.json, or vocab.json):
 * loadPretrained then reads them with Tokenizer.fromFolder.
 */
export async function hasTokenizerFiles(folder: string): Promise<boolean> {
  for (const file of ["tokenizer.json", "vocab.json"]) if (await pathExists(join(folder, file))) return true;
  return false;
}

export class Tokenizer {
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number | undefined;
  /** From `padding_side` in `tokenizer_config.json`; default "right", as in transformers. */
  readonly paddingSide: PaddingSide;
  private readonly inner: HfTokenizer;
  /** transformers ≥ 4.45 leaves decoded spaces alone unless the config asks for cleanup. */
  private readonly cleanUpSpaces: boolean;

  private constructor(inner: HfTokenizer, tokenizerConfig: JsonObject) {
    this.inner = inner;
    const config = withGpt2Defaults(tokenizerConfig, (token) => inner.token_to_id(token) !== undefined);
    const idOf = (key: string): number | undefined => {
      const token = tokenContent(config[key]);
      return token === undefined ? undefined : inner.token_to_id(token);
    };
    this.bosTokenId = idOf("bos_token");
    this.eosTokenId = idOf("eos_token");
    this.padTokenId = idOf("pad_token");
    this.unkTokenId = idOf("unk_token");
    const side = config.padding_side ?? "right";
    if (side !== "left" && side !== "right")
      throw new Error(`tokenizer config: padding_side must be "left" or "right", got ${JSON.stringify(side)}`);
    this.paddingSide = side;
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;
  }

  /** The tokenizer of a model folder (see the module comment for the files it reads). */
  static async fromFolder(folder: string): Promise<Tokenizer> {
    return Tokenizer.fromFiles((name) => readTextIfPresent(join(folder, name)), folder);
  }

  /**
   * The tokenizer of a folder's files however they are read (`readText` gives a file's text, or
   * undefined when the folder lacks it; `folder` names it in errors): fromFolder on disk, the
   * browser loaders on dropped files and URLs.
   */
  static async fromFiles(readText: (name: string) => Promise<string | undefined>, folder: string): Promise<Tokenizer> {
    const readJson = async (name: string) => {
      const text = await readText(name);
      return text === undefined ? undefined : parseJsonObject(text, `${folder}/${name}`);
    };
    const config = {
      ...(await readJson("tokenizer_config.json")),
      // As in transformers, the special tokens map overrides the config's entries.
      ...(await readJson("special_tokens_map.json")),
    };
    const tokenizerJson = await readJson("tokenizer.json");
    if (tokenizerJson !== undefined)
      return withSource(`${folder}/tokenizer.json`, () => Tokenizer.fromTokenizerJson(tokenizerJson, config));
    const vocab = await readJson("vocab.json");
    const merges = await readText("merges.txt");
    if (vocab === undefined || merges === undefined) {
      throw new Error(
        `tokenizer folder ${folder}: no tokenizer.json, ` +
          "and no vocab.json + merges.txt pair to build a byte-level BPE from",
      );
    }
    return withSource(`${folder}/vocab.json + merges.txt`, () =>
      Tokenizer.fromVocabAndMerges(vocab, parseMerges(merges), config),
    );
  }

  /** A tokenizer from a parsed `tokenizer.json` and `tokenizer_config.json` (+ special tokens map). */
  static fromTokenizerJson(tokenizerJson: JsonObject, tokenizerConfig: JsonObject = {}): Tokenizer {
    return new Tokenizer(new HfTokenizer(tokenizerJson, tokenizerConfig), tokenizerConfig);
  }

  /**
   * A GPT-2-style byte-level BPE from `vocab.json` (token → id) and the merges (pairs, or
   * merges.txt lines "a b"). The pipeline is the one transformers' GPT-2 converter writes:
   * ByteLevel pre-tokenizer (GPT-2's split regex, no prefix space unless the config sets
   * `add_prefix_space`), BPE without unk token, ByteLevel decoder. The config's special tokens
   * become added tokens; without any, `<|endoftext|>` is bos, eos and unk, as in `GPT2Tokenizer`.
   */
  static fromVocabAndMerges(
    vocab: JsonObject,
    merges: readonly (string | readonly [string, string])[],
    tokenizerConfig: JsonObject = {},
  ): Tokenizer {
    for (const [token, id] of Object.entries(vocab)) {
      if (!Number.isSafeInteger(id) || (id as number) < 0)
        throw new Error(
          `vocab: the id of ${JSON.stringify(token)} must be a non-negative integer, got ${JSON.stringify(id)}`,
        );
    }
    const pairs = merges.map((merge, i) => {
      const pair = typeof merge === "string" ? merge.split(" ") : merge;
      if (pair.length !== 2 || pair[0] === "" || pair[1] === "")
        throw new Error(`merges: entry ${i} must be two tokens "a b", got ${JSON.stringify(merge)}`);
      return [pair[0], pair[1]];
    });
    const config = withGpt2Defaults(tokenizerConfig, (token) => Object.hasOwn(vocab, token));
    const additional = Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : [];
    const specials = new Set(
      [...SPECIAL_TOKEN_KEYS.map((key) => config[key]), ...additional].map(tokenContent).filter((t) => t !== undefined),
    );
    const addedTokens = [...specials]
      .filter((token) => Object.hasOwn(vocab, token))
      .map((token) => ({
        id: vocab[token],
        content: token,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      }));
    const byteLevel = { type: "ByteLevel", trim_offsets: true, use_regex: true };
    const tokenizerJson = {
      version: "1.0",
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: { ...byteLevel, add_prefix_space: config.add_prefix_space === true },
      post_processor: { ...byteLevel, add_prefix_space: true, trim_offsets: false },
      decoder: { ...byteLevel, add_prefix_space: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: "",
        end_of_word_suffix: "",
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: pairs,
      },
    };
    return Tokenizer.fromTokenizerJson(tokenizerJson, tokenizerConfig);
  }

  /** Vocabulary size including added tokens. */
  get vocabSize(): number {
    return this.inner.get_vocab(true).size;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[] | Int32Array, options: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    for (const id of ids) {
      if (this.inner.id_to_token(id) === undefined)
        throw new RangeError(`decode: id ${id} is not in the vocabulary of ${this.vocabSize} tokens`);
    }
    return this.inner.decode(Array.from(ids), {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  /** Encodes several texts into one padded [batch, longest] pair of id and mask tensors. */
  encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): BatchEncoding {
    const side = options.paddingSide ?? this.paddingSide;
    const pad = options.padTokenId ?? this.padTokenId;
    if (pad === undefined) {
      throw new Error(
        "encodeBatch: this tokenizer has no pad token; " +
          "pass padTokenId (models like GPT-2 commonly pad with eosTokenId)",
      );
    }
    const rows = texts.map((text) => this.encode(text, options));
    const width = Math.max(0, ...rows.map((row) => row.length));
    const ids = new Int32Array(rows.length * width).fill(pad);
    const mask = new Int32Array(rows.length * width);
    rows.forEach((row, b) => {
      const start = b * width + (side === "left" ? width - row.length : 0);
      ids.set(row, start);
      mask.fill(1, start, start + row.length);
    });
    return {
      inputIds: new IntTensor(ids, [rows.length, width]),
      attentionMask: new IntTensor(mask, [rows.length, width]),
    };
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }
}

/** merges.txt lines: an optional "#version" line, then one "a b" pair per line. */
function parseMerges(text: string): string[] {
  const lines = text.split("\n").map((line) => line.replace(/\r$/, ""));
  return lines.filter((line, i) => line !== "" && !(i === 0 && line.startsWith("#version")));
}

/**
 * GPT-2 folders (even with a tokenizer.json) often name no special tokens at all, and
 * transformers then falls back to GPT-2's own: `<|endoftext|>` as bos, eos and unk.
 */
function withGpt2Defaults(config: JsonObject, hasToken: (token: string) => boolean): JsonObject {
  if (SPECIAL_TOKEN_KEYS.some((key) => tokenContent(config[key]) !== undefined) || !hasToken(GPT2_END_OF_TEXT))
    return config;
  return { bos_token: GPT2_END_OF_TEXT, eos_token: GPT2_END_OF_TEXT, unk_token: GPT2_END_OF_TEXT, ...config };
}

/** A special token entry is a string or a serialised AddedToken `{content, ...}`. */
function tokenContent(entry: unknown): string | undefined {
  if (typeof entry === "string") return entry;
  if (typeof entry === "object" && entry !== null && typeof (entry as { content?: unknown }).content === "string") {
    return (entry as { content: string }).content;
  }
  return undefined;
}

function withSource<T>(source: string, build: () => T): T {
  try {
    return build();
  } catch (error) {
    throw new Error(`tokenizer ${source}: ${(error as Error).message}`, { cause: error });
  }
}
