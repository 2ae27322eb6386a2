/**
 * Head patching: for every layer and attention head, the base run with that head's value (at all
 * positions, or at one position) taken from the source run, measured on the target at the last
 * position. The two runs are recorded once; each layer's cells are one batch resumed from the base
 * run's residual stream at that layer, row r patching its own head (and position).
 */
import { gatherUnits, scatterUnits } from "../intervene/index.js";
import type { InterventionUnits } from "../intervene/locations.js";
import type { PretrainedModel } from "../models/model.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { checkHeadComponent, checkMetric, checkPair, checkTarget } from "./checks.js";
import { asDecoder, measure, type Metric, recordRun, resumedLogits, topToken } from "./engine.js";
import type { HeadGrid, HeadPatchResult } from "./results.js";

export interface HeadPatchOptions {
  base: IntTensor;
  source: IntTensor;
  baseTokens: string[];
  sourceTokens: string[];
  /** A head component of the site map; default head_attention_value_output (each head's output before o_proj). */
  component?: string;
  /** "all": each cell patches its head at every position (one grid); "each": one grid per position. Default "all". */
  positions?: "all" | "each";
  /** Default: the source run's top token at the last position. */
  target?: number;
  targetLabel?: string;
  metric?: Metric;
  onProgress?: (done: number, total: number) => void;
}

const HEAD_OPTIONS = [
  "base",
  "source",
  "baseTokens",
  "sourceTokens",
  "component",
  "positions",
  "target",
  "targetLabel",
  "metric",
  "onProgress",
] as const satisfies readonly (keyof HeadPatchOptions)[];

export function headPatching(anyModel: PretrainedModel, headOptions: HeadPatchOptions): HeadPatchResult {
  const where = "headPatching";
  const model = asDecoder(anyModel, where);
  const options = readOptions<HeadPatchOptions>(headOptions, HEAD_OPTIONS, "headPatching options");
  const { base, source } = checkPair(options, where);
  const component = checkHeadComponent(model, options.component ?? "head_attention_value_output", where);
  const metric = checkMetric(options.metric ?? "probability", where);
  const positions = options.positions ?? "all";
  if (positions !== "all" && positions !== "each") {
    throw new RangeError(
      `${where}: positions must be "all" (a head at every position) or "each" (one grid per position), ` +
        `got ${describe(positions)}`,
    );
  }
  const sourceRun = recordRun(model, { inputIds: source }, component, null);
  const baseRun = recordRun(model, { inputIds: base }, component, null);
  const target = checkTarget(options.target, sourceRun.logits.shape[2], where) ?? topToken(sourceRun.logits);
  const [, heads, length] = sourceRun.component[0].shape;
  const numLayers = model.numLayers;
  // Row r patches head ⌊r / P⌋ at position r mod P ("each"), or head r at every position ("all").
  const perHead = positions === "each" ? length : 1;
  const rows = heads * perHead;
  const headRows = Array.from({ length: rows }, (_, r) => [Math.floor(r / perHead)]);
  const unit = positions === "each" ? "h.pos" : "h";
  const units: InterventionUnits =
    positions === "each" ? [headRows, Array.from({ length: rows }, (_, r) => [r % perHead])] : headRows;
  const scores: Float32Array[] = [];
  for (let l = 0; l < numLayers; l++) {
    const recorded = sourceRun.component[l];
    const patch = gatherUnits(tv.expand(recorded, [rows, ...recorded.shape.slice(1)]), unit, units, where);
    const hidden = tv.expand(baseRun.blockInputs[l], [rows, ...baseRun.blockInputs[l].shape.slice(1)]);
    const write = (view: Tensor) => scatterUnits(view, unit, units, patch, where);
    const logits = resumedLogits(model, base, l, hidden, [{ component, layer: l, write }]);
    scores.push(measure(logits, target, metric));
    options.onProgress?.(l + 1, numLayers);
  }
  const grid = (position: number | null): HeadGrid => {
    const values = new Float32Array(numLayers * heads);
    for (let l = 0; l < numLayers; l++)
      for (let h = 0; h < heads; h++) values[l * heads + h] = scores[l][h * perHead + (position ?? 0)];
    return {
      values,
      rows: numLayers,
      cols: heads,
      layers: Array.from({ length: numLayers }, (_, i) => i),
      heads: Array.from({ length: heads }, (_, i) => i),
      position,
    };
  };
  return {
    kind: "heads",
    component,
    positions,
    baseTokens: options.baseTokens!,
    sourceTokens: options.sourceTokens!,
    target,
    targetLabel: options.targetLabel ?? String(target),
    metric,
    base: measure(baseRun.logits, target, metric)[0],
    source: measure(sourceRun.logits, target, metric)[0],
    grids: positions === "each" ? Array.from({ length }, (_, p) => grid(p)) : [grid(null)],
  };
}
