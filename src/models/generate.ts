/**
 * Token generation as HF's `generate` does it for greedy search and sampling: positions from the
 * attention mask, a key/value cache when the model has one, finished rows padded, stop at EOS or
 * after maxNewTokens. Every step is an ordinary `run`, so hooks see every step. Decoders compute
 * the head at the last position only; other models (the GRU LM) give every position's logits and
 * the last is read.
 */
import { checkMaskValues, positionIds } from "../nn/masks.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import { DecoderModel } from "./decoder.js";
import type { PretrainedModel } from "./model.js";

export interface GenerateOptions {
  maxNewTokens: number;
  /** Prompt mask [B, T] (1 real, 0 padding; left padding for batched prompts). Default all ones. */
  attentionMask?: IntTensor | null;
  doSample?: boolean;
  temperature?: number;
  /** Keep only the k most likely tokens when sampling (0 = off). */
  topK?: number;
  generator?: tv.Generator;
  /** Stop a row when it emits one of these. */
  eosTokenId?: number | readonly number[];
  /** Written after a row has finished. Defaults to the first EOS id. */
  padTokenId?: number;
  /** Use the key/value cache (default true when the model has one). */
  useCache?: boolean;
}

export interface GenerateOutput {
  /** Prompt and new tokens [B, T + steps]. */
  sequences: IntTensor;
  /** The logits each step chose from, [B, vocab] per step (after temperature/top-k when sampling). */
  scores: Tensor[];
}

export const GENERATE_OPTIONS = [
  "maxNewTokens",
  "attentionMask",
  "doSample",
  "temperature",
  "topK",
  "generator",
  "eosTokenId",
  "padTokenId",
  "useCache",
] as const satisfies readonly (keyof GenerateOptions)[];

export function generate(
  model: PretrainedModel,
  inputIds: IntTensor,
  generateOptions: GenerateOptions,
): GenerateOutput {
  const options = readOptions<GenerateOptions>(generateOptions, GENERATE_OPTIONS, "generate options");
  const { maxNewTokens = NaN, doSample = false, temperature = 1, topK = 0, generator = tv.defaultGenerator } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0)
    throw new RangeError(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (inputIds.shape.length !== 2)
    throw new RangeError(`generate: inputIds must be [B, T], got [${inputIds.shape.join(", ")}]`);
  if (!(temperature > 0)) throw new RangeError(`generate: temperature must be positive, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0)
    throw new RangeError(`generate: topK must be a non-negative integer (0 = off), got ${topK}`);
  if (options.attentionMask) checkMaskValues(options.attentionMask);
  const [batch, promptLength] = inputIds.shape;
  const eos =
    options.eosTokenId === undefined
      ? []
      : typeof options.eosTokenId === "number"
        ? [options.eosTokenId]
        : [...options.eosTokenId];
  const pad = options.padTokenId ?? eos[0] ?? 0;
  if (![...eos, pad].every((t) => Number.isInteger(t) && t >= 0)) {
    throw new RangeError(
      `generate: eosTokenId and padTokenId must be token ids (non-negative integers), ` +
        `got ${describe(options.eosTokenId)} and ${describe(options.padTokenId)}`,
    );
  }
  const cache = options.useCache === false ? null : model.newCache();
  const lastPositionLogits = model instanceof DecoderModel;

  let tokens: number[][] = Array.from({ length: batch }, (_, b) => [
    ...inputIds.data.subarray(b * promptLength, (b + 1) * promptLength),
  ]);
  let mask: number[][] = options.attentionMask
    ? Array.from({ length: batch }, (_, b) => [
        ...options.attentionMask!.data.subarray(b * promptLength, (b + 1) * promptLength),
      ])
    : tokens.map((row) => row.map(() => 1));
  if (mask.some((row) => row.length !== promptLength))
    throw new RangeError(`generate: attentionMask must be [${batch}, ${promptLength}] like inputIds`);
  const finished = new Array<boolean>(batch).fill(false);
  const scores: Tensor[] = [];

  return tv.noGrad(() => {
    for (let step = 0; step < maxNewTokens; step++) {
      const fullMask = new IntTensor(mask.flat(), [batch, mask[0].length]);
      const total = tokens[0].length;
      const fresh = cache === null || step === 0 ? total : 1;
      const ids = new IntTensor(
        tokens.flatMap((row) => row.slice(total - fresh)),
        [batch, fresh],
      );
      const inputs = {
        inputIds: ids,
        attentionMask: fullMask,
        positionIds: positionIds(fullMask, batch, fresh),
        cache,
      };
      const logits = model.run(lastPositionLogits ? { ...inputs, lastPositionLogits } : inputs).logits;
      if (logits.rank !== 3)
        throw new RangeError(
          `generate: the ${model.family} model gives logits [${logits.shape.join(", ")}], ` +
            "not token scores per position [B, T, vocab]",
        );
      const last = tv.squeeze(tv.slice(logits, 1, -1), 1);
      const chosenFrom = doSample ? limitTopK(tv.div(last, temperature), topK) : last;
      scores.push(chosenFrom);
      const next = doSample ? sample(chosenFrom, generator) : [...tv.argmax(last, -1).data];
      tokens = tokens.map((row, b) => [...row, finished[b] ? pad : next[b]]);
      mask = mask.map((row) => [...row, 1]);
      next.forEach((t, b) => {
        if (eos.includes(t)) finished[b] = true;
      });
      if (finished.every(Boolean)) break;
    }
    return { sequences: new IntTensor(tokens.flat(), [batch, tokens[0].length]), scores };
  });
}

/** Logits with everything below the k-th largest per row set to −∞ (k = 0 keeps all). */
function limitTopK(logits: Tensor, k: number): Tensor {
  const [rows, vocab] = logits.shape;
  if (k <= 0 || k >= vocab) return logits;
  const out = logits.data.slice();
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * vocab, (r + 1) * vocab);
    const threshold = [...row].sort((a, b) => b - a)[k - 1];
    for (let j = 0; j < vocab; j++) if (row[j] < threshold) row[j] = -Infinity;
  }
  return new Tensor(out, logits.shape);
}

function sample(logits: Tensor, generator: tv.Generator): number[] {
  const probs = tv.softmax(logits, -1);
  const [rows, vocab] = probs.shape;
  return Array.from({ length: rows }, (_, r) => {
    const u = generator.uniform();
    let acc = 0;
    for (let j = 0; j < vocab; j++) {
      acc += probs.data[r * vocab + j];
      if (u < acc) return j;
    }
    return vocab - 1;
  });
}
