/**
 * Activation patching: for every layer and position, the base run with one component replaced by
 * its value in the source run, measured on the target at the last position.
 */
import type { PretrainedModel } from "../models/model.js";
import { IntTensor } from "../tensor/index.js";
import { measure, recordRun, restoreGrid, topToken, type Metric } from "./restore.js";
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

export function activationPatching(model: PretrainedModel, options: PatchOptions): PatchResult {
  const { base, source, component = "block_output", window = 1, metric = "probability" } = options;
  if (base.shape.length !== 2 || base.shape[0] !== 1 || source.shape.length !== 2 || source.shape[0] !== 1) {
    throw new RangeError(`activationPatching: base and source must each be one prompt [1, T], got [${base.shape.join(", ")}] and [${source.shape.join(", ")}]`);
  }
  if (base.shape[1] !== source.shape[1]) {
    throw new RangeError(`activationPatching: base and source must have the same length so positions pair up, got ${base.shape[1]} and ${source.shape[1]} tokens`);
  }
  const sourceRun = recordRun(model, { inputIds: source }, component, null);
  const baseRun = recordRun(model, { inputIds: base }, component, null);
  const target = options.target ?? topToken(sourceRun.logits);
  const grid = restoreGrid(model, { inputIds: base }, component, window, baseRun, sourceRun, target, metric, null, options.onProgress);
  return {
    kind: "patch",
    component,
    baseTokens: options.baseTokens,
    sourceTokens: options.sourceTokens,
    target,
    targetLabel: options.targetLabel ?? String(target),
    metric,
    base: measure(baseRun.logits, target, metric)[0],
    source: measure(sourceRun.logits, target, metric)[0],
    grid,
  };
}
