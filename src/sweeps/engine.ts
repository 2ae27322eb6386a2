/**
 * The sweep engine: the machinery the patching sweeps share: record a component at every layer and position of one
 * run, then, layer by layer, run a batch in which example p takes position p's recorded value at
 * that layer (and the layers of its window). What does not change is computed once: the recorded
 * runs, and the prefix of each patched run, which resumes from the cached residual stream at the
 * first patched layer. Only the last position's logits are computed. Sweeps run on decoders (every
 * transformer family), which can resume and stop after a block.
 */
import {
  AdditionIntervention,
  CollectIntervention,
  gatherUnits,
  IntervenableModel,
  scatterUnits,
  writeSite,
} from "../intervene/index.js";
import { DecoderModel } from "../models/decoder.js";
import type { ModelInputs, PretrainedModel } from "../models/model.js";
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
  /** The component's value [1, T, D] at each layer. */
  component: Tensor[];
  /** Each block's input [1, T, D] (the residual stream), to resume from. */
  blockInputs: Tensor[];
}

function allPositions(length: number): number[][] {
  return [Array.from({ length }, (_, p) => p)];
}

/** One run (optionally corrupted) recording the component and every block input at all positions. */
export function recordRun(
  model: PretrainedModel,
  inputs: ModelInputs,
  component: string,
  corruption: Corruption | null,
): RecordedRun {
  const length = inputs.inputIds!.shape[1];
  const layers = Array.from({ length: model.numLayers }, (_, l) => l);
  const collect = layers.flatMap((layer) => [
    { layer, component, maxNumberOfUnits: length, interventionType: CollectIntervention },
    { layer, component: "block_input", maxNumberOfUnits: length, interventionType: CollectIntervention },
  ]);
  const corrupt = corruption
    ? [
        {
          layer: 0,
          component: "block_input",
          maxNumberOfUnits: corruption.positions.length,
          interventionType: AdditionIntervention,
        },
      ]
    : [];
  const im = new IntervenableModel([...corrupt, ...collect], model);
  const everywhere = allPositions(length);
  const locations = [...(corruption ? [[corruption.positions]] : []), ...collect.map(() => everywhere)];
  const sources = corruption ? [tv.unsqueeze(corruption.noise, 0), ...collect.map(() => null)] : null;
  const { intervened, collected } = tv.noGrad(() =>
    im.forward({ ...inputs, lastPositionLogits: true }, null, {
      unitLocations: { base: locations },
      sourceRepresentations: sources,
    }),
  );
  return {
    logits: intervened.logits,
    component: layers.map((l) => collected[2 * l]),
    blockInputs: layers.map((l) => collected[2 * l + 1]),
  };
}

/** Layers restored for row `layer` with a window of w layers (ROME: centred, clipped to the model). */
export function windowLayers(layer: number, window: number, numLayers: number): number[] {
  const start = Math.max(0, layer - Math.floor(window / 2));
  const end = Math.min(numLayers, start + window);
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
 * One pass over the blocks with a growing batch: the rows of layer l (one per position) join at
 * the first layer of l's window, starting from the patched run's residual stream there, and the
 * rows already in flight continue. At block j a hook writes the restored value into every row
 * whose window holds j. The work is that of the layer-by-layer batches, but in GEMMs of up to
 * layers × positions rows, which run far closer to peak than batches of one layer's positions.
 */
function staircaseGrid({
  model,
  inputs,
  component,
  window,
  patched,
  restored,
  target,
  metric,
  onProgress,
}: GridRequest): Float32Array {
  const ids = inputs.inputIds!;
  const length = ids.shape[1];
  const numLayers = model.numLayers;
  const width = patched.blockInputs[0].shape[2];
  const windows = Array.from({ length: numLayers }, (_, l) => windowLayers(l, window, numLayers));
  /** Row groups in batch order: each is one layer's `length` rows, example p restoring position p. */
  const groups: number[] = [];
  let hidden: Tensor | null = null;
  let logits: Tensor | null = null;
  for (let j = 0; j < numLayers; j++) {
    const joining = windows.map((w, l) => (w[0] === j ? l : -1)).filter((l) => l >= 0);
    const fresh = joining.map(() => tv.expand(patched.blockInputs[j], [length, length, width]));
    hidden = hidden === null ? tv.concat(fresh, 0) : fresh.length > 0 ? tv.concat([hidden, ...fresh], 0) : hidden;
    groups.push(...joining);
    const rows = groups.length * length;
    const restoring = groups.map((l) => windows[l].includes(j));
    // Row r restores its own position r mod T; rows of layers whose window misses j keep their value.
    const positions = Array.from({ length: rows }, (_, r) => [r % length]);
    const rowMask = new Tensor(
      Float32Array.from({ length: rows }, (_, r) => (restoring[Math.floor(r / length)] ? 1 : 0)),
      [rows, 1, 1],
    );
    const clean = gatherUnits(
      tv.expand(restored.component[j], [rows, length, width]),
      "pos",
      positions,
      "staircase rows",
    );
    const restore = (view: Tensor) =>
      scatterUnits(
        view,
        "pos",
        positions,
        tv.where(rowMask, clean, gatherUnits(view, "pos", positions, "staircase rows")),
        "staircase rows",
      );
    const handle = writeSite(model, model.site(component, j), restore);
    const batch: ModelInputs = {
      inputIds: new IntTensor(
        Int32Array.from({ length: rows * length }, (_, i) => ids.data[i % length]),
        [rows, length],
      ),
      resumeFrom: { layer: j, hidden: hidden! },
    };
    try {
      if (j === numLayers - 1) logits = tv.noGrad(() => model.run({ ...batch, lastPositionLogits: true }).logits);
      else hidden = tv.noGrad(() => model.runBlocks(batch, j));
    } finally {
      handle.remove();
    }
    onProgress?.(j + 1, numLayers);
  }
  const scores = measure(logits!, target, metric);
  const values = new Float32Array(numLayers * length);
  groups.forEach((layer, g) => values.set(scores.subarray(g * length, (g + 1) * length), layer * length));
  return values;
}
