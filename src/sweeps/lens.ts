/**
 * The logit lens (nostalgebraist 2020): read the residual stream after each block, and the
 * embeddings before the first, through the model's own final norm and head, as if that block were
 * the last. Each layer × position gets the target token's probability and the k most likely tokens;
 * the last block's row is the model's own output distribution.
 */
import { readSite } from "../intervene/index.js";
import type { DecoderModel } from "../models/decoder.js";
import type { PretrainedModel } from "../models/model.js";
import type { Site } from "../models/sites.js";
import type { HookHandle } from "../nn/module.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { checkLabels, checkPrompt, checkTarget } from "./checks.js";
import { asDecoder } from "./engine.js";
import type { ScoreGrid } from "./results.js";

export interface LensOptions {
  /** The prompt [1, T]. */
  inputIds: IntTensor;
  /** A label per position (the tokens as text); default the ids. */
  tokens?: string[];
  /** The token whose probability is read at every cell; default the model's prediction at the last position. */
  target?: number;
  /** Tokens listed per cell, most likely first; default 5. */
  topK?: number;
}

const LENS_OPTIONS = ["inputIds", "tokens", "target", "topK"] as const satisfies readonly (keyof LensOptions)[];

/** The logit lens: rows are the embeddings (layer −1) and the stream after each block (layers 0..L−1). */
export interface LensResult {
  kind: "lens";
  tokens: string[];
  target: number;
  /** The target's probability at each layer × position. */
  targetProbability: ScoreGrid;
  /** The k most likely tokens of each cell, best first: row-major [rows, cols, k]. */
  top: { k: number; ids: Int32Array; probabilities: Float32Array };
}

export function logitLens(anyModel: PretrainedModel, lensOptions: LensOptions): LensResult {
  const where = "logitLens";
  const model = asDecoder(anyModel, where);
  const options = readOptions<LensOptions>(lensOptions, LENS_OPTIONS, "logitLens options");
  const inputIds = checkPrompt(options.inputIds, "inputIds", where);
  const length = inputIds.shape[1];
  const tokens =
    options.tokens === undefined
      ? Array.from(inputIds.data, String)
      : checkLabels(options.tokens, length, "tokens", where);
  const vocab = model.settings.vocabSize;
  const k = options.topK ?? 5;
  if (!Number.isInteger(k) || k < 1 || k > vocab)
    throw new RangeError(`${where}: topK must be an integer in 1..${vocab} (the vocabulary), got ${describe(k)}`);
  let target = checkTarget(options.target, vocab, where);

  const layers = Array.from({ length: model.numLayers + 1 }, (_, r) => r - 1);
  const sites = layers.map((l) => (l < 0 ? model.site("block_input", 0) : model.site("block_output", l)));
  const streams = recordViews(model, inputIds, sites).views;
  const probabilities = (stream: Tensor) => tv.noGrad(() => tv.softmax(model.unembed(stream), -1)).data;
  // The last row is computed first: its last position is the default target.
  const last = probabilities(streams[layers.length - 1]);
  target ??= argmax(last.subarray((length - 1) * vocab));

  const rows = layers.length;
  const values = new Float32Array(rows * length);
  const ids = new Int32Array(rows * length * k);
  const topProbabilities = new Float32Array(rows * length * k);
  for (let r = 0; r < rows; r++) {
    const probs = r === rows - 1 ? last : probabilities(streams[r]);
    for (let p = 0; p < length; p++) {
      const cell = r * length + p;
      const row = probs.subarray(p * vocab, (p + 1) * vocab);
      values[cell] = row[target];
      const best = topIndices(row, k);
      best.forEach((id, i) => {
        ids[cell * k + i] = id;
        topProbabilities[cell * k + i] = row[id];
      });
    }
  }
  return {
    kind: "lens",
    tokens,
    target,
    targetProbability: {
      values,
      rows,
      cols: length,
      layers,
      positions: Array.from({ length }, (_, p) => p),
    },
    top: { k, ids, probabilities: topProbabilities },
  };
}

/**
 * One run of the blocks (no head) recording the value at each site, and the final residual stream [1, T, D].
 * The hooks are removed before returning or throwing.
 */
export function recordViews(
  model: DecoderModel,
  inputIds: IntTensor,
  sites: readonly Site[],
): { views: Tensor[]; final: Tensor } {
  const views: Tensor[] = [];
  const handles: HookHandle[] = [];
  try {
    sites.forEach((site, i) => handles.push(readSite(model, site, (view) => void (views[i] = view))));
    const final = tv.noGrad(() => model.runBlocks({ inputIds }, model.numLayers - 1));
    return { views, final };
  } finally {
    for (const h of handles) h.remove();
  }
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

/** The indices of the k largest values, largest first (ties: the lower index first). */
export function topIndices(row: Float32Array, k: number): number[] {
  const best: number[] = [];
  for (let j = 0; j < row.length; j++) {
    if (best.length === k && row[j] <= row[best[k - 1]]) continue;
    let i = best.length === k ? k - 1 : best.length;
    while (i > 0 && row[best[i - 1]] < row[j]) i--;
    best.splice(i, 0, j);
    if (best.length > k) best.pop();
  }
  return best;
}
