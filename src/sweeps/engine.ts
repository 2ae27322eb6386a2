/**
 * The sweep engine: the machinery the patching sweeps share: record a component at every layer and position of one
 * run, then, layer by layer, run a batch in which example p takes position p's recorded value at
 * that layer (and the layers of its window). What does not change is computed once: the recorded
 * runs, and the prefix of each patched run, which resumes from the cached residual stream at the
 * first patched layer. Only the last position's logits are computed. Sweeps run on decoders (every
 * transformer family), which can resume and stop after a block.
 */
import { gatherUnits, readSite, scatterUnits, writeSite } from "../intervene/index.js";
import { DecoderModel } from "../models/decoder.js";
import type { ModelInputs, PretrainedModel } from "../models/model.js";
import type { KeyValueCache } from "../nn/attention.js";
import type { HookHandle } from "../nn/module.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import type { ScoreGrid } from "./results.js";

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

/** What a restoring sweep needs: the prompt, what is restored where, and what is measured. */
export interface GridRequest {
  model: DecoderModel;
  /** The prompt [1, T] (and its mask, if any). */
  inputs: ModelInputs;
  component: string;
  window: number;
  /** The run whose sites are overwritten: the corrupted run (tracing) or the base run (patching). */
  patched: RecordedRun;
  /** The run the written values come from: the clean run (tracing) or the source run (patching). */
  restored: RecordedRun;
  target: number;
  metric: Metric;
  onProgress?: (done: number, total: number) => void;
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

/**
 * The grid of metrics: row (layer l, position p) is the `patched` run with `restored.component[j]`
 * written at position p for every layer j of l's window, computed as one staircase pass.
 */
export function restoreGrid(request: GridRequest): ScoreGrid {
  const length = request.inputs.inputIds!.shape[1];
  const numLayers = request.model.numLayers;
  const values = staircaseGrid(request);
  return {
    values,
    rows: numLayers,
    cols: length,
    layers: Array.from({ length: numLayers }, (_, l) => l),
    positions: Array.from({ length }, (_, p) => p),
  };
}

/**
 * Positions restored in one staircase pass, as [start, end) ranges. A row restoring position p
 * differs from the patched run only from p on (the causal mask), so a pass over positions
 * start..end−1 computes the positions from `start` and reads the patched run's keys and values
 * before it. Smaller groups skip more work but run smaller GEMMs; groups of two balance the two.
 */
function positionGroups(length: number): [number, number][] {
  const groups: [number, number][] = [];
  for (let start = 0; start < length; start += POSITIONS_PER_PASS)
    groups.push([start, Math.min(length, start + POSITIONS_PER_PASS)]);
  return groups;
}

const POSITIONS_PER_PASS = 2;

function staircaseGrid(request: GridRequest): Float32Array {
  const length = request.inputs.inputIds!.shape[1];
  const numLayers = request.model.numLayers;
  const values = new Float32Array(numLayers * length);
  const groups = positionGroups(length);
  groups.forEach(([start, end], g) => {
    const progress =
      request.onProgress && ((done: number) => request.onProgress!(g * numLayers + done, groups.length * numLayers));
    const scores = staircasePass(request, start, end, progress);
    scores.forEach((row, layer) => values.set(row, layer * length + start));
  });
  return values;
}

/**
 * One pass over the blocks with a growing batch, for positions start..end−1: the rows of layer l
 * (one per position) join at the first layer of l's window, starting from the patched run's
 * residual stream there, and the rows already in flight continue. At block j a hook writes the
 * restored value into every row whose window holds j. The work is that of the layer-by-layer
 * batches, but in GEMMs of up to layers × positions rows, which run far closer to peak than
 * batches of one layer's positions. A block_output restored at the window's first layer is the
 * next block's input, so those rows join one block later with it written in: the block they skip
 * would only recompute the patched run. Returns each layer's scores for the pass's positions.
 */
function staircasePass(
  { model, inputs, component, window, patched, restored, target, metric }: GridRequest,
  start: number,
  end: number,
  onProgress: ((done: number) => void) | undefined,
): Float32Array[] {
  const ids = inputs.inputIds!;
  const length = ids.shape[1];
  const computed = length - start;
  const count = end - start;
  const numLayers = model.numLayers;
  const width = patched.blockInputs[0].shape[2];
  const windows = Array.from({ length: numLayers }, (_, l) => windowLayers(l, window, numLayers));
  const joinsAfterFirst = component === "block_output";
  const prefix = start > 0 ? patched.cache.prefix(start) : null;
  /** Row i of a group restores position start + i, at i among the computed positions. */
  const ownPositions = Array.from({ length: count }, (_, i) => [i]);
  const recordedPositions = Array.from({ length: count }, (_, i) => [start + i]);
  const joiningRows = (layer: number): Tensor => {
    const first = windows[layer][0];
    if (!joinsAfterFirst) return tv.expand(tv.slice(patched.blockInputs[first], 1, start), [count, computed, width]);
    const stream = tv.expand(tv.slice(patched.component[first], 1, start), [count, computed, width]);
    const recorded = restored.component[first];
    const clean = gatherUnits(
      tv.expand(recorded, [count, ...recorded.shape.slice(1)]),
      "pos",
      recordedPositions,
      "rows",
    );
    return scatterUnits(stream, "pos", ownPositions, clean, "staircase rows");
  };
  /** Row groups in batch order: each is one layer's `count` rows. */
  const layers: number[] = [];
  let hidden: Tensor | null = null;
  for (let j = 0; j <= numLayers; j++) {
    const joining = windows.flatMap((w, l) => (w[0] + (joinsAfterFirst ? 1 : 0) === j ? [l] : []));
    const fresh = joining.map(joiningRows);
    if (fresh.length > 0) hidden = tv.concat(hidden === null ? fresh : [hidden, ...fresh], 0);
    layers.push(...joining);
    if (j === numLayers) break;
    if (hidden !== null)
      hidden = restoredBlock(model, ids, start, j, hidden, {
        restoring: layers.map((l) => windows[l].includes(j)),
        count,
        recorded: restored.component[j],
        component,
        prefix,
      });
    onProgress?.(j + 1);
  }
  const last = tv.slice(hidden!, 1, -1);
  const scores = tv.noGrad(() =>
    metric === "logit" ? model.tokenLogits(last, [target]).data : measure(model.unembed(last), target, metric),
  );
  const byLayer: Float32Array[] = new Array(numLayers);
  layers.forEach((layer, g) => (byLayer[layer] = scores.subarray(g * count, (g + 1) * count)));
  return byLayer;
}

/** Which rows restore at this block, and from what. */
interface BlockRestore {
  /** Per row group (of `count` rows): whether its window holds this block. */
  restoring: boolean[];
  count: number;
  /** The restored run's component at this block [1, …]. */
  recorded: Tensor;
  component: string;
  prefix: KeyValueCache | null;
}

/** Block j on the rows `hidden` (positions start..), the restoring rows' values written at their own position. */
function restoredBlock(
  model: DecoderModel,
  ids: IntTensor,
  start: number,
  j: number,
  hidden: Tensor,
  { restoring, count, recorded, component, prefix }: BlockRestore,
): Tensor {
  const rows = hidden.shape[0];
  const computed = hidden.shape[1];
  const positions = Array.from({ length: rows }, (_, r) => [r % count]);
  const handles: HookHandle[] = [];
  try {
    if (restoring.some(Boolean)) {
      const rowMask = new Tensor(
        Float32Array.from({ length: rows }, (_, r) => (restoring[Math.floor(r / count)] ? 1 : 0)),
        [rows, ...recorded.shape.slice(1).map(() => 1)],
      );
      const clean = gatherUnits(
        byPosition(tv.expand(recorded, [rows, ...recorded.shape.slice(1)])),
        "pos",
        Array.from({ length: rows }, (_, r) => [start + (r % count)]),
        "staircase rows",
      );
      const restore = (view: Tensor) => {
        const atPositions = byPosition(view);
        const kept = gatherUnits(atPositions, "pos", positions, "staircase rows");
        return byPosition(
          scatterUnits(atPositions, "pos", positions, tv.where(rowMask, clean, kept), "staircase rows"),
        );
      };
      handles.push(writeSite(model, model.site(component, j), restore));
    }
    const inputIds = new IntTensor(
      Int32Array.from({ length: rows * computed }, (_, i) => ids.data[start + (i % computed)]),
      [rows, computed],
    );
    return tv.noGrad(() => model.runBlocks({ inputIds, resumeFrom: { layer: j, hidden }, cache: prefix }, j));
  } finally {
    for (const handle of handles) handle.remove();
  }
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
