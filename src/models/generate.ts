/**
 * Token generation as HF's `generate` does it for greedy search and sampling: positions from the
 * attention mask, a key/value cache when the model has one, finished rows padded, stop at EOS or
 * after maxNewTokens (or at maxLength, prompt included). Sampling applies HF's warpers in HF's order:
 * temperature, top-k, top-p. Every step is an ordinary `run`, so hooks see every step. Decoders compute
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
  /** How many tokens to add (give this or maxLength). */
  maxNewTokens?: number;
  /** HF's max_length: prompt length plus new tokens. With maxNewTokens too, the two must agree. */
  maxLength?: number;
  /** Prompt mask [B, T] (1 real, 0 padding; left padding for batched prompts). Default all ones. */
  attentionMask?: IntTensor | null;
  doSample?: boolean;
  temperature?: number;
  /** Keep only the k most likely tokens when sampling (0 = off). */
  topK?: number;
  /**
   * Nucleus sampling (HF's TopPLogitsWarper): keep the most likely tokens whose probabilities
   * sum to at least topP, always at least one (1 = off, the default).
   */
  topP?: number;
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
  /** The logits each step chose from, [B, vocab] per step (after temperature, top-k, top-p when sampling). */
  scores: Tensor[];
}

export const GENERATE_OPTIONS = [
  "maxNewTokens",
  "maxLength",
  "attentionMask",
  "doSample",
  "temperature",
  "topK",
  "topP",
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
  const { doSample = false, temperature = 1, topK = 0, topP = 1, generator = tv.defaultGenerator } = options;
  if (inputIds.shape.length !== 2)
    throw new RangeError(`generate: inputIds must be [B, T], got [${inputIds.shape.join(", ")}]`);
  const [batch, promptLength] = inputIds.shape;
  const maxNewTokens = newTokenBudget(options.maxNewTokens, options.maxLength, promptLength);
  if (!(temperature > 0)) throw new RangeError(`generate: temperature must be positive, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0)
    throw new RangeError(`generate: topK must be a non-negative integer (0 = off), got ${topK}`);
  if (typeof topP !== "number" || !(topP >= 0 && topP <= 1))
    throw new RangeError(`generate: topP must be a number in [0, 1] (1 = off), got ${describe(topP)}`);
  if (options.attentionMask) checkMaskValues(options.attentionMask);
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
      const chosenFrom = doSample ? limitTopP(limitTopK(tv.div(last, temperature), topK), topP) : last;
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

/** How many tokens to add: maxNewTokens, or maxLength less the prompt; both given, they must agree. */
function newTokenBudget(maxNewTokens: number | undefined, maxLength: number | undefined, promptLength: number): number {
  const count = (name: string, n: number) => {
    if (!Number.isInteger(n) || n < 0)
      throw new RangeError(`generate: ${name} must be a non-negative integer, got ${describe(n)}`);
    return n;
  };
  if (maxLength === undefined) return count("maxNewTokens", maxNewTokens ?? NaN);
  if (count("maxLength", maxLength) < promptLength)
    throw new RangeError(`generate: maxLength (${maxLength}) is shorter than the prompt (${promptLength} tokens)`);
  if (maxNewTokens !== undefined && count("maxNewTokens", maxNewTokens) !== maxLength - promptLength) {
    throw new RangeError(
      `generate: maxNewTokens (${maxNewTokens}) and maxLength (${maxLength}) disagree for a ` +
        `${promptLength}-token prompt; give one of them`,
    );
  }
  return maxLength - promptLength;
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

/**
 * HF's TopPLogitsWarper: sort ascending, drop the tokens whose cumulative probability stays at or
 * below 1 − p, always keep the most likely one; dropped tokens get −∞ (p = 1 keeps all).
 */
export function limitTopP(logits: Tensor, p: number): Tensor {
  const [rows, vocab] = logits.shape;
  if (p >= 1) return logits;
  const out = logits.data.slice();
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * vocab, (r + 1) * vocab);
    const order = [...row.keys()].sort((a, b) => row[a] - row[b]);
    const top = row[order[vocab - 1]];
    const weights = order.map((j) => Math.exp(row[j] - top));
    const total = weights.reduce((a, b) => a + b, 0);
    let cumulative = 0;
    for (let i = 0; i < vocab - 1; i++) {
      cumulative += weights[i] / total;
      if (cumulative > 1 - p) break;
      row[order[i]] = -Infinity;
    }
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
