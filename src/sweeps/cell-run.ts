/**
 * The run behind one cell of a trace or patch grid, computed on its own: the patched run (the
 * corrupted run of each noise draw, or the base run) with the component written at the cell's
 * layer (and the other layers of its window) and position from the other run (the clean run, or
 * the source run), read at the last position as probabilities over the whole vocabulary. A grid
 * keeps only the target's metric; this says what the run predicts instead (the page shows a
 * clicked cell's top tokens from it).
 */
import { gatherUnits, scatterUnits } from "../intervene/index.js";
import type { DecoderModel } from "../models/decoder.js";
import type { PretrainedModel } from "../models/model.js";
import { describe, exactKeys } from "../options/index.js";
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { byPosition, recordRun, resumedLogits, topToken, windowLayers, type RecordedRun } from "./engine.js";
import { preparePatch, type PatchOptions } from "./patch.js";
import { prepareTrace, traceCorruption, type TraceOptions } from "./trace.js";

/** A cell of a layers × positions grid. */
export interface GridCell {
  layer: number;
  position: number;
}

export interface CellRun {
  layer: number;
  position: number;
  /** The layers written: the cell's layer and the rest of its window. */
  layers: number[];
  /** Probabilities over the vocabulary at the last position; for a trace, their mean over the noise draws. */
  probabilities: Float32Array;
  /** The runs averaged: the trace's noise draws, or 1 for a patching. */
  draws: number;
  /** The target the grid measures (as the sweep chooses it). */
  target: number;
}

/**
 * The run behind cell (layer, position) of `causalTrace(model, options)`: each noise draw's
 * corrupted run with the component restored there from the clean run, its probabilities averaged
 * over the draws (so the target's entry is the grid's cell value).
 */
export function traceCellRun(model: PretrainedModel, options: TraceOptions, cell: GridCell): CellRun {
  const where = "traceCellRun";
  const setup = prepareTrace(model, options, where);
  const { inputs, component, samples } = setup;
  const at = checkCell(cell, setup.model.numLayers, inputs.inputIds.shape[1], where);
  const layers = windowLayers(at.layer, setup.window, setup.model.numLayers);
  const clean = recordRun(setup.model, inputs, component, null);
  const streams = Array.from({ length: samples }, (_, s) => {
    const run = recordRun(setup.model, inputs, component, traceCorruption(setup, s));
    setup.options.onProgress?.(s + 1, samples);
    return run.blockInputs[layers[0]];
  });
  const probabilities = restoredProbabilities(setup.model, inputs.inputIds, tv.concat(streams, 0), {
    restored: clean,
    component,
    layers,
    position: at.position,
  });
  return { ...at, layers, probabilities, draws: samples, target: setup.target ?? topToken(clean.logits) };
}

/** The run behind cell (layer, position) of `activationPatching(model, options)`: the base run patched there. */
export function patchCellRun(model: PretrainedModel, options: PatchOptions, cell: GridCell): CellRun {
  const where = "patchCellRun";
  const setup = preparePatch(model, options, where);
  const at = checkCell(cell, setup.model.numLayers, setup.base.shape[1], where);
  const layers = windowLayers(at.layer, setup.window, setup.model.numLayers);
  const sourceRun = recordRun(setup.model, { inputIds: setup.source }, setup.component, null);
  const baseRun = recordRun(setup.model, { inputIds: setup.base }, setup.component, null);
  const probabilities = restoredProbabilities(setup.model, setup.base, baseRun.blockInputs[layers[0]], {
    restored: sourceRun,
    component: setup.component,
    layers,
    position: at.position,
  });
  return { ...at, layers, probabilities, draws: 1, target: setup.target ?? topToken(sourceRun.logits) };
}

function checkCell(cell: GridCell, numLayers: number, length: number, where: string): GridCell {
  exactKeys(cell, ["layer", "position"], `${where} cell`);
  const { layer, position } = cell ?? ({} as Partial<GridCell>);
  const inRange = (v: unknown, n: number) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < n;
  if (!inRange(layer, numLayers) || !inRange(position, length)) {
    throw new RangeError(
      `${where}: the cell must be { layer: 0..${numLayers - 1}, position: 0..${length - 1} }, got ${describe(cell)}`,
    );
  }
  return { layer, position };
}

/** What is written into the patched runs: the recorded run's component at these layers and this position. */
interface Restore {
  restored: RecordedRun;
  component: string;
  layers: number[];
  position: number;
}

/**
 * The mean probabilities at the last position of the runs resumed at the window's first layer from
 * `streams` [R, T, D] (one patched run per row), the component restored in every row.
 */
function restoredProbabilities(model: DecoderModel, ids: IntTensor, streams: Tensor, restore: Restore): Float32Array {
  const rows = streams.shape[0];
  const at = Array.from({ length: rows }, () => [restore.position]);
  const where = "restored cell";
  const writes = restore.layers.map((layer) => {
    const recorded = restore.restored.component[layer];
    const value = gatherUnits(byPosition(tv.expand(recorded, [rows, ...recorded.shape.slice(1)])), "pos", at, where);
    const write = (view: Tensor) => byPosition(scatterUnits(byPosition(view), "pos", at, value, where));
    return { component: restore.component, layer, write };
  });
  const logits = resumedLogits(model, ids, restore.layers[0], streams, writes);
  const probabilities = tv.softmax(logits, -1).data;
  const vocab = logits.shape[2];
  // Summed in float64 so that the mean over draws loses nothing to rounding.
  const sums = new Float64Array(vocab);
  for (let r = 0; r < rows; r++) for (let v = 0; v < vocab; v++) sums[v] += probabilities[r * vocab + v];
  return Float32Array.from(sums, (sum) => sum / rows);
}
