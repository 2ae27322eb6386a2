/** Checks the sweeps share: metric, target token, components, the prompts, corruption noise. */
import type { PretrainedModel } from "../models/model.js";
import type { Site } from "../models/sites.js";
import { describe } from "../options/index.js";
import { IntTensor } from "../tensor/index.js";
import type { Metric } from "./engine.js";

const METRICS: readonly Metric[] = ["probability", "logit"];

export function checkMetric(metric: unknown, where: string): Metric {
  if (!METRICS.includes(metric as Metric))
    throw new RangeError(`${where}: metric must be "probability" or "logit", got ${describe(metric)}`);
  return metric as Metric;
}

/** The site of a component of the model's site map (at layer 0: whether it is per head is the same at every layer). */
function checkSite(model: PretrainedModel, component: unknown, where: string): Site {
  if (typeof component !== "string")
    throw new TypeError(`${where}: component must be a component name, got ${describe(component)}`);
  try {
    return model.site(component, 0);
  } catch (e) {
    throw new RangeError(`${where}: ${(e as Error).message}`);
  }
}

/**
 * A per-position component of the site map (any width; an attention pattern by its query
 * position). Head components are refused: each of their cells is one head, as headPatching sweeps.
 */
export function checkPositionComponent(model: PretrainedModel, component: unknown, where: string): string {
  if (checkSite(model, component, where).heads) {
    throw new RangeError(
      `${where}: component "${component}" is a head component ([B, heads, T, d]), which a ` +
        "layer × position grid cannot address; sweep it with headPatching, or give a per-position component " +
        `(${positionComponents(model).join(", ")})`,
    );
  }
  return component as string;
}

/** A head component of the site map, whose value is [B, heads, T, d]. */
export function checkHeadComponent(model: PretrainedModel, component: unknown, where: string): string {
  if (!checkSite(model, component, where).heads) {
    const heads = Object.keys(model.sites).filter((c) => model.site(c, 0).heads);
    throw new RangeError(
      `${where}: component must be a head component (${heads.join(", ")}), got "${component}" ` +
        "(a per-position component: sweep it with activationPatching)",
    );
  }
  return component as string;
}

function positionComponents(model: PretrainedModel): string[] {
  return Object.keys(model.sites).filter((c) => !model.site(c, 0).heads);
}

/** Base and source prompts [1, T] whose positions pair up, with a label per position for each. */
export function checkPair(
  options: { base?: unknown; source?: unknown; baseTokens?: unknown; sourceTokens?: unknown },
  where: string,
): { base: IntTensor; source: IntTensor } {
  const base = checkPrompt(options.base, "base", where);
  const source = checkPrompt(options.source, "source", where);
  checkLabels(options.baseTokens, base.shape[1], "baseTokens", where);
  checkLabels(options.sourceTokens, source.shape[1], "sourceTokens", where);
  if (base.shape[1] !== source.shape[1]) {
    throw new RangeError(
      `${where}: base and source must have the same length so positions pair up, ` +
        `got ${base.shape[1]} and ${source.shape[1]} tokens`,
    );
  }
  return { base, source };
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
