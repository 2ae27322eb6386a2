/**
 * Activation patching: for every layer and position, the base run with one component replaced by
 * its value in the source run, measured on the target at the last position.
 */
import type { PretrainedModel } from "../models/model.js";
import type { IntTensor } from "../tensor/index.js";
import { readOptions } from "../options/index.js";
import { checkComponent, checkLabels, checkMetric, checkPrompt, checkTarget, checkWindow } from "./checks.js";
import { asDecoder, measure, recordRun, restoreGrid, topToken, type Metric } from "./engine.js";
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

export function activationPatching(anyModel: PretrainedModel, patchOptions: PatchOptions): PatchResult {
  const where = "activationPatching";
  const model = asDecoder(anyModel, where);
  const options = readOptions<PatchOptions>(patchOptions, PATCH_OPTIONS, "activationPatching options");
  const base = checkPrompt(options.base, "base", where);
  const source = checkPrompt(options.source, "source", where);
  const component = checkComponent(options.component ?? "block_output", where);
  const window = checkWindow(options.window ?? 1, model, where);
  const metric = checkMetric(options.metric ?? "probability", where);
  checkLabels(options.baseTokens, base.shape[1], "baseTokens", where);
  checkLabels(options.sourceTokens, source.shape[1], "sourceTokens", where);
  if (base.shape[1] !== source.shape[1]) {
    throw new RangeError(
      "activationPatching: base and source must have the same length so positions pair up, " +
        `got ${base.shape[1]} and ${source.shape[1]} tokens`,
    );
  }
  const sourceRun = recordRun(model, { inputIds: source }, component, null);
  const baseRun = recordRun(model, { inputIds: base }, component, null);
  const target = checkTarget(options.target, sourceRun.logits.shape[2], where) ?? topToken(sourceRun.logits);
  const grid = restoreGrid({
    model,
    inputs: { inputIds: base },
    component,
    window,
    patched: baseRun,
    restored: sourceRun,
    target,
    metric,
    onProgress: options.onProgress,
  });
  return {
    kind: "patch",
    component,
    baseTokens: options.baseTokens!,
    sourceTokens: options.sourceTokens!,
    target,
    targetLabel: options.targetLabel ?? String(target),
    metric,
    base: measure(baseRun.logits, target, metric)[0],
    source: measure(sourceRun.logits, target, metric)[0],
    grid,
  };
}
