/** Checks the sweeps share: metric, target token, trace component, the prompt, corruption noise. */
import type { PretrainedModel } from "../models/model.js";
import { describe } from "../options/index.js";
import { IntTensor } from "../tensor/index.js";
import type { Metric } from "./engine.js";
import type { TraceComponent } from "./results.js";

const METRICS: readonly Metric[] = ["probability", "logit"];
/** The components whose per-position value is [B, T, D] at every layer, as the restore engine needs. */
export const TRACE_COMPONENTS: readonly TraceComponent[] = ["block_output", "mlp_output", "attention_output"];

export function checkMetric(metric: unknown, where: string): Metric {
  if (!METRICS.includes(metric as Metric))
    throw new RangeError(`${where}: metric must be "probability" or "logit", got ${describe(metric)}`);
  return metric as Metric;
}

export function checkComponent(component: unknown, where: string): TraceComponent {
  if (!TRACE_COMPONENTS.includes(component as TraceComponent)) {
    throw new RangeError(
      `${where}: component must be one of ${TRACE_COMPONENTS.join(", ")}, got ${describe(component)}`,
    );
  }
  return component as TraceComponent;
}

/** A target token id within the model's vocabulary (the width of its logits), or undefined for the default. */
export function checkTarget(target: unknown, vocabulary: number, where: string): number | undefined {
  if (target === undefined) return undefined;
  if (!Number.isInteger(target) || (target as number) < 0 || (target as number) >= vocabulary) {
    throw new RangeError(`${where}: target must be a token id in 0..${vocabulary - 1}, got ${describe(target)}`);
  }
  return target as number;
}

/** One prompt [1, T] of token ids. */
export function checkPrompt(ids: unknown, what: string, where: string): IntTensor {
  if (!(ids instanceof IntTensor) || ids.shape.length !== 2 || ids.shape[0] !== 1) {
    const got = ids instanceof IntTensor ? `[${ids.shape.join(", ")}]` : describe(ids);
    throw new RangeError(`${where}: ${what} must be one prompt, an IntTensor [1, T], got ${got}`);
  }
  return ids;
}

/** Token labels, one per position. */
export function checkLabels(labels: unknown, length: number, what: string, where: string): string[] {
  if (!Array.isArray(labels) || labels.length !== length || labels.some((l) => typeof l !== "string")) {
    throw new RangeError(`${where}: ${what} must be ${length} strings, one per position, got ${describe(labels)}`);
  }
  return labels;
}

/** The window of layers restored together: a positive integer no wider than the model. */
export function checkWindow(window: unknown, model: PretrainedModel, where: string): number {
  if (!Number.isInteger(window) || (window as number) < 1 || (window as number) > model.numLayers) {
    throw new RangeError(
      `${where}: window must be an integer in 1..${model.numLayers} (the model's layers), got ${describe(window)}`,
    );
  }
  return window as number;
}
