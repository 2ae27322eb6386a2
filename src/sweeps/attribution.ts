/**
 * Attribution patching: the first-order (gradient) estimate of activation patching for every site
 * at once. Patching the clean value c into the corrupted run at a site whose corrupted value is x
 * changes the metric by about (c − x) · ∂metric/∂x, so one clean run, one corrupted run and one
 * backward pass give the whole grid (layers × positions, or layers × heads) that activation
 * patching needs a patched run per cell for. Direction as in activationPatching: base = corrupted,
 * source = clean; each cell estimates that grid's cell minus its base value.
 */
import { readSite, writeSite } from "../intervene/index.js";
import type { Site } from "../models/sites.js";
import type { PretrainedModel } from "../models/model.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import { type IntTensor, Tensor } from "../tensor/index.js";
import { checkLabels, checkPrompt, checkTarget } from "./checks.js";
import { asDecoder, measure, topToken } from "./engine.js";
import type { ScoreGrid } from "./results.js";

/** The metric at the last position: the target's probability or logit, or its logit minus the contrast's. */
export type AttributionMetric = "probability" | "logit" | "logitDiff";
/** Per position ("pos"), per head summed over positions ("h"), or per head and position ("h.pos"). */
export type AttributionUnit = "pos" | "h" | "h.pos";

export interface AttributionOptions {
  clean: IntTensor;
  /** The run that is patched; same length as `clean`. */
  corrupted: IntTensor;
  /** One label per position; default: the clean token ids. */
  tokens?: string[];
  /** Any per-position or head component of the model; default "block_output". */
  component?: string;
  /** Default "pos" for per-position components, "h" for head components. */
  unit?: AttributionUnit;
  /** Default: the clean run's top token at the last position. */
  target?: number;
  targetLabel?: string;
  /** The token subtracted by metric "logitDiff"; default: the corrupted run's top token. */
  contrast?: number;
  /** Default "probability", as activationPatching's. */
  metric?: AttributionMetric;
}

const ATTRIBUTION_OPTIONS = [
  "clean",
  "corrupted",
  "tokens",
  "component",
  "unit",
  "target",
  "targetLabel",
  "contrast",
  "metric",
] as const satisfies readonly (keyof AttributionOptions)[];

const METRICS: readonly AttributionMetric[] = ["probability", "logit", "logitDiff"];

export interface AttributionResult {
  kind: "attribution";
  component: string;
  unit: AttributionUnit;
  tokens: string[];
  target: number;
  targetLabel: string;
  /** The subtracted token of metric "logitDiff", else null. */
  contrast: number | null;
  metric: AttributionMetric;
  /** The metric on the clean and the corrupted run. */
  clean: number;
  corrupted: number;
  /**
   * Estimated metric change when the cell's clean value is patched into the corrupted run. Unit
   * "pos": rows layers, cols positions. "h": rows layers, cols heads (`positions` then holds the
   * head of each column). "h.pos": rows layer × heads (layer-major), cols positions.
   */
  grid: ScoreGrid;
  /** The head of each column ("h") or row ("h.pos"); null for "pos". */
  heads: number[] | null;
}

export function attributionPatching(
  anyModel: PretrainedModel,
  attributionOptions: AttributionOptions,
): AttributionResult {
  const where = "attributionPatching";
  const model = asDecoder(anyModel, where);
  const options = readOptions<AttributionOptions>(attributionOptions, ATTRIBUTION_OPTIONS, `${where} options`);
  const clean = checkPrompt(options.clean, "clean", where);
  const corrupted = checkPrompt(options.corrupted, "corrupted", where);
  const length = clean.shape[1];
  if (corrupted.shape[1] !== length) {
    throw new RangeError(
      `${where}: clean and corrupted must have the same length so positions pair up, ` +
        `got ${length} and ${corrupted.shape[1]} tokens`,
    );
  }
  const tokens =
    options.tokens === undefined
      ? Array.from(clean.data, String)
      : checkLabels(options.tokens, length, "tokens", where);
  const component = options.component ?? "block_output";
  const sites = componentSites(model, component, where);
  const unit = checkUnit(options.unit, sites[0], component, where);
  const metric = options.metric ?? "probability";
  if (!METRICS.includes(metric)) {
    throw new RangeError(
      `${where}: metric must be ${METRICS.map((m) => `"${m}"`).join(", ")}, got ${describe(metric)}`,
    );
  }
  if (options.contrast !== undefined && metric !== "logitDiff") {
    throw new RangeError(`${where}: contrast is only read by metric "logitDiff" (metric is "${metric}")`);
  }
  if (!tv.isGradEnabled()) {
    throw new Error(`${where}: it needs gradients, so it cannot run inside noGrad()`);
  }

  return withFrozenParameters(model, () => {
    const cleanValues = record(model, sites, clean, component);
    const vocabulary = cleanValues.logits.shape[2];
    const target = checkTarget(options.target, vocabulary, where) ?? topToken(cleanValues.logits);
    const run = tappedRun(model, sites, corrupted, component);
    let contrast: number | null = null;
    if (metric === "logitDiff") {
      contrast = checkContrast(options.contrast, vocabulary, where) ?? topToken(run.logits);
      if (contrast === target) {
        throw new RangeError(
          `${where}: contrast is the target (token ${target}), so the logit difference is 0; give another contrast`,
        );
      }
    }
    const score = (logits: Tensor) =>
      contrast === null
        ? measure(logits, target, metric as "probability" | "logit")[0]
        : measure(logits, target, "logit")[0] - measure(logits, contrast, "logit")[0];
    run.logits.backward(new Tensor(metricGradient(run.logits, target, contrast, metric), run.logits.shape));
    const { values, rows, cols, heads } = attributions(run.taps, cleanValues.values, unit);
    return {
      kind: "attribution",
      component,
      unit,
      tokens,
      target,
      targetLabel: options.targetLabel ?? String(target),
      contrast,
      metric,
      clean: score(cleanValues.logits),
      corrupted: score(run.logits),
      grid: {
        values,
        rows,
        cols,
        layers: Array.from({ length: rows }, (_, r) => (unit === "h.pos" ? Math.floor(r / heads!.length) : r)),
        positions: unit === "h" ? heads! : Array.from({ length: cols }, (_, p) => p),
      },
      heads: unit === "h.pos" ? Array.from({ length: rows }, (_, r) => r % heads!.length) : heads,
    };
  });
}

function checkContrast(contrast: unknown, vocabulary: number, where: string): number | undefined {
  if (contrast === undefined) return undefined;
  if (!Number.isInteger(contrast) || (contrast as number) < 0 || (contrast as number) >= vocabulary) {
    throw new RangeError(`${where}: contrast must be a token id in 0..${vocabulary - 1}, got ${describe(contrast)}`);
  }
  return contrast as number;
}

/** The component's site at every layer. */
function componentSites(model: PretrainedModel, component: unknown, where: string): Site[] {
  if (typeof component !== "string")
    throw new RangeError(`${where}: component must be a string, got ${describe(component)}`);
  return Array.from({ length: model.numLayers }, (_, layer) => {
    try {
      return model.site(component, layer);
    } catch (e) {
      throw new RangeError(`${where}: ${(e as Error).message}`);
    }
  });
}

function checkUnit(unit: unknown, site: Site, component: string, where: string): AttributionUnit {
  const allowed: AttributionUnit[] = site.heads ? ["h", "h.pos"] : ["pos"];
  if (unit === undefined) return allowed[0];
  if (!allowed.includes(unit as AttributionUnit)) {
    throw new RangeError(
      `${where}: unit must be ${allowed.map((u) => `"${u}"`).join(" or ")} for component "${component}", ` +
        `got ${describe(unit)}`,
    );
  }
  return unit as AttributionUnit;
}

/** Parameters need no gradient while `fn` runs: backward neither computes nor stores weight gradients. */
function withFrozenParameters<T>(model: PretrainedModel, fn: () => T): T {
  const trainable = model.parameters().filter((p) => p.requiresGrad);
  for (const p of trainable) p.requiresGrad = false;
  try {
    return fn();
  } finally {
    for (const p of trainable) p.requiresGrad = true;
  }
}

/** The clean run: last-position logits and the component's view at every layer. */
function record(
  model: PretrainedModel,
  sites: Site[],
  ids: IntTensor,
  component: string,
): { logits: Tensor; values: Tensor[] } {
  const values: Tensor[] = [];
  const handles = sites.map((site, layer) =>
    readSite(model, site, (view) => {
      values[layer] = view;
    }),
  );
  try {
    const logits = tv.noGrad(() => model.run({ inputIds: ids, lastPositionLogits: true }).logits);
    for (const [layer, value] of values.entries()) checkView(value, sites[layer], ids.shape[1], component);
    return { logits, values };
  } finally {
    for (const h of handles) h.remove();
  }
}

interface Tap {
  /** The corrupted run's value at the site. */
  value: Tensor;
  /** A zero added to the value: its gradient is ∂metric/∂value, and the graph through the site stays whole. */
  delta: Tensor;
}

/** The corrupted run with a tap at every layer's site, recording the graph back to the taps. */
function tappedRun(
  model: PretrainedModel,
  sites: Site[],
  ids: IntTensor,
  component: string,
): { logits: Tensor; taps: Tap[] } {
  const taps: Tap[] = [];
  const handles = sites.map((site, layer) =>
    writeSite(model, site, (view) => {
      checkView(view, site, ids.shape[1], component);
      const delta = tv.zeros(view.shape).requireGrad();
      taps[layer] = { value: view.detach(), delta };
      return tv.add(view, delta);
    }),
  );
  try {
    return { logits: model.run({ inputIds: ids, lastPositionLogits: true }).logits, taps };
  } finally {
    for (const h of handles) h.remove();
  }
}

/**
 * Per position [1, T, D] or per head [1, H, T, d]. A per-position site may hold something else
 * (attention_weight is [1, H, T, T], pyvene's quirk): its units are not positions.
 */
function checkView(view: Tensor, site: Site, length: number, component: string): void {
  const rank = site.heads ? 4 : 3;
  if (view.rank !== rank || view.shape[0] !== 1 || view.shape[rank - 2] !== length) {
    throw new RangeError(
      `attributionPatching: component "${component}" has value [${view.shape.join(", ")}], ` +
        `not one value per position of the ${length}-token prompt`,
    );
  }
}

/** ∂metric/∂logits of the last position, written out so no op graph is needed past the logits. */
function metricGradient(
  logits: Tensor,
  target: number,
  contrast: number | null,
  metric: AttributionMetric,
): Float32Array {
  const vocabulary = logits.shape[2];
  const grad = new Float32Array(vocabulary);
  if (metric === "probability") {
    const row = logits.data.subarray(logits.size - vocabulary);
    const probability = measure(logits, target, "probability")[0];
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    // ∂p_t/∂z_j = p_t (δ_tj − p_j)
    for (let j = 0; j < vocabulary; j++) grad[j] = -probability * (Math.exp(row[j] - max) / sum);
    grad[target] += probability;
    return grad;
  }
  grad[target] = 1;
  if (contrast !== null) grad[contrast] = -1;
  return grad;
}

/** (clean − corrupted) · gradient, summed over the feature axis, per position or per head. */
function attributions(
  taps: Tap[],
  clean: Tensor[],
  unit: AttributionUnit,
): { values: Float32Array; rows: number; cols: number; heads: number[] | null } {
  const shape = taps[0].value.shape;
  const numHeads = shape.length === 4 ? shape[1] : 1;
  const [length, width] = shape.slice(-2);
  // One score per (layer, head, position); heads = 1 for per-position components.
  const cells = new Float32Array(taps.length * numHeads * length);
  taps.forEach(({ value, delta }, layer) => {
    const grad = delta.grad?.data;
    if (!grad) return; // the metric does not depend on this site: every estimate is 0
    const source = clean[layer].data;
    for (let cell = 0; cell < numHeads * length; cell++) {
      let sum = 0;
      for (let i = cell * width; i < (cell + 1) * width; i++) sum += (source[i] - value.data[i]) * grad[i];
      cells[layer * numHeads * length + cell] = sum;
    }
  });
  if (unit === "pos" || unit === "h.pos") {
    const heads = unit === "pos" ? null : Array.from({ length: numHeads }, (_, h) => h);
    return { values: cells, rows: taps.length * numHeads, cols: length, heads };
  }
  const values = new Float32Array(taps.length * numHeads);
  for (let row = 0; row < values.length; row++) {
    for (let p = 0; p < length; p++) values[row] += cells[row * length + p];
  }
  return { values, rows: taps.length, cols: numHeads, heads: Array.from({ length: numHeads }, (_, h) => h) };
}
