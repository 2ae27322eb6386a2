/**
 * Activation patching: for every layer and position, the base run with one component replaced by
 * its value in the source run, measured on the target at the last position. Any per-position
 * component of the site map works (an attention pattern is patched at its query position: that
 * position's row of every head); head components are swept per head by headPatching.
 */
import type { DecoderModel } from "../models/decoder.js";
import type { PretrainedModel } from "../models/model.js";
import type { IntTensor } from "../tensor/index.js";
import { readOptions } from "../options/index.js";
import { checkMetric, checkPair, checkPositionComponent, checkTarget, checkWindow } from "./checks.js";
import { asDecoder, type Metric } from "./engine.js";
import { restoreGrids, scoreGrid } from "./restore-grid.js";
import type { PatchResult } from "./results.js";

export interface PatchOptions {
  base: IntTensor;
  source: IntTensor;
  baseTokens: string[];
  sourceTokens: string[];
  component?: string;
  /** Default: the source run's top token at the last position. */
  target?: number;
  targetLabel?: string;
  window?: number;
  metric?: Metric;
  onProgress?: (done: number, total: number) => void;
}

const PATCH_OPTIONS = [
  "base",
  "source",
  "baseTokens",
  "sourceTokens",
  "component",
  "target",
  "targetLabel",
  "window",
  "metric",
  "onProgress",
] as const satisfies readonly (keyof PatchOptions)[];

/** A patching's checked options: what the grid and a single cell's run start from. */
export interface PatchSetup {
  model: DecoderModel;
  options: Partial<PatchOptions>;
  base: IntTensor;
  source: IntTensor;
  component: string;
  window: number;
  metric: Metric;
  /** The target given; null for the source run's top token. */
  target: number | null;
}

/** Checks a patching's options (naming `where` in errors). */
export function preparePatch(anyModel: PretrainedModel, patchOptions: PatchOptions, where: string): PatchSetup {
  const model = asDecoder(anyModel, where);
  const options = readOptions<PatchOptions>(patchOptions, PATCH_OPTIONS, `${where} options`);
  const { base, source } = checkPair(options, where);
  const component = checkPositionComponent(model, options.component ?? "block_output", where);
  const window = checkWindow(options.window ?? 1, model, where);
  const metric = checkMetric(options.metric ?? "probability", where);
  const target = checkTarget(options.target, model.settings.vocabSize, where) ?? null;
  return { model, options, base, source, component, window, metric, target };
}

export function activationPatching(anyModel: PretrainedModel, patchOptions: PatchOptions): PatchResult {
  const setup = preparePatch(anyModel, patchOptions, "activationPatching");
  const { model, options, base, component, window, metric } = setup;
  const scores = restoreGrids({
    model,
    inputIds: base,
    component,
    window,
    patched: [null],
    restored: setup.source,
    target: setup.target,
    metric,
    onProgress: options.onProgress,
  });
  return {
    kind: "patch",
    component,
    baseTokens: options.baseTokens!,
    sourceTokens: options.sourceTokens!,
    target: scores.target,
    targetLabel: options.targetLabel ?? String(scores.target),
    metric,
    base: scores.patched[0],
    source: scores.restored,
    grid: scoreGrid(scores.grids[0], model.numLayers, base.shape[1]),
  };
}
