/**
 * config.json checked against the weights' headers before a model is built. Building allocates
 * whatever the config claims, so a config with a million layers (or a width the weights do not
 * have) would take gigabytes before the mismatch surfaced as missing weights. Here every size
 * that shapes the parameters (shape-plans.ts) must equal what the weights hold, so a model that
 * gets built is no larger than its weight files.
 */
import type { HFConfig } from "./config.js";
import type { ModelFamily } from "./model.js";
import { SHAPE_PLANS, type ShapePlan, type SizeRule } from "./shape-plans.js";

/** What the check needs of each weight: its shape, as a safetensors header entry gives it. */
export type WeightShapes = ReadonlyMap<string, { readonly shape: readonly number[] }>;

interface FoundWeight {
  name: string;
  shape: readonly number[];
}

/**
 * Throws a RangeError naming the config field, its value and what the weights hold when the
 * model `config` describes would not have the weights' shapes; `source` (the folder) starts the
 * message.
 */
export function checkConfigFitsWeights(
  family: ModelFamily,
  config: HFConfig,
  weights: WeightShapes,
  source = "model",
): void {
  const plan = SHAPE_PLANS[family.name];
  if (plan === undefined) {
    throw new Error(`checkConfigFitsWeights: family "${family.name}" has no shape plan (add one in shape-plans.ts)`);
  }
  try {
    checkPlan(plan, config, weights);
  } catch (error) {
    if (!(error instanceof SizeMismatch)) throw error;
    throw new RangeError(`${source}: ${error.message}`);
  }
}

/** A mismatch found here, as opposed to an error of a family's settings reader (which keeps its own message). */
class SizeMismatch extends RangeError {}

function checkPlan(plan: ShapePlan<unknown>, config: HFConfig, weights: WeightShapes): void {
  const held = heldLayers(weights, plan.layerList);
  // The settings readers allocate per layer (and per head dimension), so given values are bounded first.
  for (const [field, count] of givenLayerCounts(plan, config)) checkLayerCount(field, count, held);
  for (const rule of plan.sizes) boundGivenFactors(rule, config, weights);
  const settings = plan.settings(config);
  checkLayerCount(factorLabel(plan.layerFields, config), plan.layers(settings), held);
  for (const rule of plan.sizes) checkSize(rule, settings, config, weights);
}

/** The layer indices in the weight names (`….<list>.N.…`), ascending. */
function heldLayers(weights: WeightShapes, list: string): number[] {
  const pattern = new RegExp(`(?:^|\\.)${list}\\.(\\d+)\\.`);
  const indices = new Set<number>();
  for (const name of weights.keys()) {
    const match = pattern.exec(name);
    if (match) indices.add(Number(match[1]));
  }
  return [...indices].sort((a, b) => a - b);
}

function givenLayerCounts(plan: ShapePlan<unknown>, config: HFConfig): [string, number][] {
  const given = firstGiven(config, plan.layerFields);
  return [...(given === undefined ? [] : [given]), ...(plan.otherLayerCounts?.(config) ?? [])];
}

function checkLayerCount(field: string, count: number, held: readonly number[]): void {
  if (count === held.length && held.every((index, i) => index === i)) return;
  throw new SizeMismatch(`config.json ${field} is ${count} but the weights hold ${describeLayers(held)}`);
}

function describeLayers(held: readonly number[]): string {
  if (held.length === 0) return "no layers";
  if (held.every((index, i) => index === i)) return held.length === 1 ? "layer 0" : `layers 0..${held.length - 1}`;
  const listed = held.slice(0, 8).join(", ");
  return `layers ${listed}${held.length > 8 ? ", …" : ""} (not numbered 0, 1, 2, …)`;
}

/** Each factor the config gives can be no larger than the weight dimension the product must equal. */
function boundGivenFactors(rule: SizeRule<unknown>, config: HFConfig, weights: WeightShapes): void {
  const found = findWeight(weights, rule.weight);
  if (found === undefined) return;
  for (const aliases of rule.fields) {
    const given = firstGiven(config, aliases);
    if (given !== undefined && given[1] > found.shape[rule.axis]) throw sizeError(given[0], given[1], found, rule.axis);
  }
}

function checkSize(rule: SizeRule<unknown>, settings: unknown, config: HFConfig, weights: WeightShapes): void {
  if (!(rule.present?.(settings, config) ?? true)) return;
  const found = findWeight(weights, rule.weight);
  const size = rule.size(settings);
  const label = rule.fields.map((aliases) => factorLabel(aliases, config)).join(" × ");
  if (found === undefined) {
    const what = `no weight named "…${rule.weight}" to match it`;
    throw new SizeMismatch(`config.json ${label} is ${size} but the weights hold ${what}`);
  }
  if (found.shape[rule.axis] !== size) throw sizeError(label, size, found, rule.axis);
}

function sizeError(label: string, size: number, found: FoundWeight, axis: number): SizeMismatch {
  const where = `${found.name} has shape [${found.shape.join(", ")}]`;
  return new SizeMismatch(`config.json ${label} is ${size} but the weights hold ${found.shape[axis]} (${where})`);
}

/** The first alias the config sets, or the first alias marked as left to the default. */
function factorLabel(aliases: readonly string[], config: HFConfig): string {
  return firstGiven(config, aliases)?.[0] ?? `${aliases[0]} (not set: the default)`;
}

/** The first alias the config sets, as the families read aliases, when it is a number (else the reader refuses it). */
function firstGiven(config: HFConfig, aliases: readonly string[]): [string, number] | undefined {
  const field = aliases.find((key) => config[key] !== undefined && config[key] !== null);
  const value = field === undefined ? undefined : config[field];
  return typeof value === "number" ? [field!, value] : undefined;
}

/** The weight whose name is `suffix` or ends in "." + suffix (checkpoints of the bare model lack the prefix). */
function findWeight(weights: WeightShapes, suffix: string): FoundWeight | undefined {
  for (const [name, { shape }] of weights) {
    if (name === suffix || name.endsWith(`.${suffix}`)) return { name, shape };
  }
  return undefined;
}
