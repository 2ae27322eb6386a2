/**
 * The sweep engine's shared pieces: the metric, a recorded run (a component at every layer and
 * position, every block input and the key/value cache of one run, optionally corrupted), windows
 * of layers, and resuming a batch from a recorded residual stream with writes at sites. The grid of
 * the restoring sweeps is restore-grid.ts. Sweeps run on decoders (every transformer family), which
 * can resume and stop after a block.
 */
import { gatherUnits, readSite, scatterUnits, writeSite } from "../intervene/index.js";
import { DecoderModel } from "../models/decoder.js";
import type { ModelInputs, PretrainedModel } from "../models/model.js";
import type { KeyValueCache } from "../nn/attention.js";
import type { HookHandle } from "../nn/module.js";
import * as tv from "../tensor/index.js";
import { IntTensor, type Tensor } from "../tensor/index.js";

/** What a sweep measures at the last position: the target's probability or its logit. */
export type Metric = "probability" | "logit";

/** The metric of each row of last-position logits [B, 1, V] (or [B, T, V]: the last position is read). */
export function measure(logits: Tensor, target: number, metric: Metric): Float32Array {
  const [batch, length, vocab] = logits.shape;
  const out = new Float32Array(batch);
  for (let b = 0; b < batch; b++) {
    const row = logits.data.subarray(((b + 1) * length - 1) * vocab, (b + 1) * length * vocab);
    if (metric === "logit") {
      out[b] = row[target];
      continue;
    }
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    out[b] = Math.exp(row[target] - max) / sum;
  }
  return out;
}

/** The last position's most likely token. */
export function topToken(logits: Tensor): number {
  const [, length, vocab] = logits.shape;
  const row = logits.data.subarray((length - 1) * vocab, length * vocab);
  let best = 0;
  for (let j = 1; j < vocab; j++) if (row[j] > row[best]) best = j;
  return best;
}

/** A corruption of the inputs: `noise` [k, D] added to the layer-0 block input at `positions`. */
export interface Corruption {
  positions: number[];
  noise: Tensor;
}

export interface RecordedRun {
  /** Logits of the last position [1, 1, V]. */
  logits: Tensor;
  /** The component's whole value at each layer, as the site port views it ([1, T, W], [1, H, T, T], [1, H, T, d]). */
  component: Tensor[];
  /** Each block's input [1, T, D] (the residual stream), to resume from. */
  blockInputs: Tensor[];
  /** Every layer's keys and values, whose prefixes runs that differ only later can attend to. */
  cache: KeyValueCache;
}

/**
 * One run (optionally corrupted) recording the component's whole value and every block input. The
 * corruption's hook is added first so that the layer-0 reads see the corrupted stream.
 */
export function recordRun(
  model: DecoderModel,
  inputs: ModelInputs,
  component: string,
  corruption: Corruption | null,
): RecordedRun {
  const numLayers = model.numLayers;
  const values: Tensor[] = new Array(numLayers);
  const blockInputs: Tensor[] = new Array(numLayers);
  const handles: HookHandle[] = [];
  try {
    if (corruption) {
      const at = [corruption.positions];
      const noise = tv.unsqueeze(corruption.noise, 0);
      const corrupt = (view: Tensor) =>
        scatterUnits(view, "pos", at, tv.add(gatherUnits(view, "pos", at, "corruption"), noise), "corruption");
      handles.push(writeSite(model, model.site("block_input", 0), corrupt));
    }
    for (let l = 0; l < numLayers; l++) {
      handles.push(readSite(model, model.site(component, l), (view) => void (values[l] = view)));
      handles.push(readSite(model, model.site("block_input", l), (view) => void (blockInputs[l] = view)));
    }
    const cache = model.newCache();
    const { logits } = tv.noGrad(() => model.run({ ...inputs, cache, lastPositionLogits: true }));
    return { logits, component: values, blockInputs, cache };
  } finally {
    for (const handle of handles) handle.remove();
  }
}

/** The residual stream entering block 0 [1, T, D] (the embeddings, with what the family adds), read as block 0 runs. */
export function embeddings(model: DecoderModel, inputs: ModelInputs): Tensor {
  let stream: Tensor | null = null;
  const handle = readSite(model, model.site("block_input", 0), (view) => void (stream = view));
  try {
    tv.noGrad(() => model.runBlocks(inputs, 0));
  } finally {
    handle.remove();
  }
  return stream!;
}

/**
 * A per-position value with its positions on axis 1, where "pos" units gather: [B, T, W] as it is;
 * an attention pattern [B, H, T, T] by its query position, as [B, T, H, T] (a query position's row
 * of every head is what that position read). The permutation is its own inverse.
 */
export function byPosition(value: Tensor): Tensor {
  if (value.rank === 3) return value;
  if (value.rank === 4) return tv.permute(value, [0, 2, 1, 3]);
  throw new RangeError(`sweeps: a per-position value must be [B, T, W] or [B, H, T, T], got [${value.shape}]`);
}

/**
 * Layers restored for row `layer` with a window of w layers, as ROME's trace_important_window:
 * layer − ⌊w/2⌋ to layer + ⌈w/2⌉ − 1, clipped to the model (so windows shrink at both edges).
 */
export function windowLayers(layer: number, window: number, numLayers: number): number[] {
  const start = Math.max(0, layer - Math.floor(window / 2));
  const end = Math.min(numLayers, layer + Math.ceil(window / 2));
  return Array.from({ length: end - start }, (_, i) => start + i);
}

/** The model as a decoder, which the sweeps need (they resume runs from recorded residual streams). */
export function asDecoder(model: PretrainedModel, where: string): DecoderModel {
  if (!(model instanceof DecoderModel)) {
    throw new TypeError(
      `${where}: ${model.family} is not a transformer decoder; ` +
        "the sweeps run on GPT-2, GPT-Neo, GPT-NeoX and the Llama family",
    );
  }
  return model;
}

/** A write at a site of a layer: the component's new value from its current one (the site port's writer). */
export interface SiteWrite {
  component: string;
  layer: number;
  write: (view: Tensor) => Tensor;
}

/**
 * Last-position logits of a batch resumed at `layer` from `hidden` [R, T, D], every row on the
 * prompt `ids` [1, T], with `writes` applied; their hooks are gone when it returns or throws.
 */
export function resumedLogits(
  model: DecoderModel,
  ids: IntTensor,
  layer: number,
  hidden: Tensor,
  writes: readonly SiteWrite[],
): Tensor {
  const rows = hidden.shape[0];
  const length = ids.shape[1];
  const handles: HookHandle[] = [];
  try {
    for (const { component, layer: at, write } of writes)
      handles.push(writeSite(model, model.site(component, at), write));
    const inputIds = new IntTensor(
      Int32Array.from({ length: rows * length }, (_, i) => ids.data[i % length]),
      [rows, length],
    );
    return tv.noGrad(() => model.run({ inputIds, resumeFrom: { layer, hidden }, lastPositionLogits: true }).logits);
  } finally {
    for (const handle of handles) handle.remove();
  }
}
