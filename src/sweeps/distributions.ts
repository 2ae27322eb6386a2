/**
 * pyvene's helpers for reading a language model's output as a distribution over its vocabulary:
 * embed_to_distrib (final hidden states → probabilities) and top_vals (the most likely tokens).
 */
import { DecoderModel } from "../models/decoder.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";
import { topIndices } from "./lens.js";

export interface EmbedToDistribOptions {
  /** Log-probabilities (log-softmax) instead of probabilities. */
  log?: boolean;
  /** The logits themselves, before any softmax. */
  logits?: boolean;
}

/**
 * pyvene's embed_to_distrib: final hidden states [..., D], as the model's last layer leaves them
 * after its final norm (HF's last hidden state, `hiddenStates.at(-1)`), through the model's head
 * to probabilities over the vocabulary [..., V] (softmax on the last axis). pyvene multiplies by
 * GPT-2's wte; tsvene uses each family's head (and what follows it, e.g. Gemma2's soft-cap). A
 * residual stream before the final norm is read with `model.unembed` instead. No gradient is kept.
 */
export function embedToDistrib(model: unknown, embed: Tensor, options: EmbedToDistribOptions = {}): Tensor {
  const { log = false, logits = false } = readOptions<EmbedToDistribOptions>(
    options,
    ["log", "logits"],
    "embedToDistrib options",
  );
  if (!(model instanceof DecoderModel)) {
    throw new TypeError(
      "embedToDistrib needs one of tsvene's decoder language models (it reads the model's head), " +
        `got ${describe(model)}`,
    );
  }
  if (log && logits) throw new TypeError("embedToDistrib options: give log or logits, not both");
  const width = model.settings.hiddenSize;
  if (!(embed instanceof tv.Tensor) || embed.rank === 0 || embed.shape[embed.rank - 1] !== width) {
    throw new RangeError(
      `embedToDistrib: embed must be final hidden states [..., ${width}] (the model's hidden size), ` +
        `got ${describe(embed)}`,
    );
  }
  return tv.noGrad(() => {
    const scores = model.headLogits(embed);
    if (logits) return scores;
    return log ? tv.logSoftmax(scores, -1) : tv.softmax(scores, -1);
  });
}

/** What topVals lists for one token. */
export interface TopValue {
  /** The token as pyvene's format_token shows it: decoded, spaces as "_", newlines as "\n". */
  token: string;
  id: number;
  value: number;
}

/**
 * pyvene's top_vals: the n largest values of a distribution over the vocabulary (a 1-D tensor, or
 * one row [1, …, 1, V]), largest first, ties by the lower id. pyvene prints them unless asked to
 * return them; tsvene returns them and prints nothing.
 */
export function topVals(
  tokenizer: { decode(ids: readonly number[]): string },
  distribution: Tensor,
  n = 10,
): TopValue[] {
  if (typeof tokenizer?.decode !== "function")
    throw new TypeError(`topVals: tokenizer must have decode(ids), got ${describe(tokenizer)}`);
  if (
    !(distribution instanceof tv.Tensor) ||
    distribution.rank === 0 ||
    distribution.shape.slice(0, -1).some((d) => d !== 1)
  )
    throw new RangeError(
      "topVals: distribution must be one row of values over the vocabulary, [V] or [1, …, 1, V], " +
        `got ${describe(distribution)}`,
    );
  const row = distribution.data;
  if (!Number.isInteger(n) || n < 1 || n > row.length)
    throw new RangeError(`topVals: n must be an integer from 1 to the vocabulary size ${row.length}, got ${String(n)}`);
  if (row.some(Number.isNaN)) throw new RangeError("topVals: the distribution has NaN values");
  return topIndices(row, n).map((id) => ({ token: formatToken(tokenizer.decode([id])), id, value: row[id] }));
}

/** pyvene's format_token: spaces shown as "_" and newlines as "\n", so tokens line up in a printed table. */
function formatToken(text: string): string {
  return text.replaceAll(" ", "_").replaceAll("\n", "\\n");
}
