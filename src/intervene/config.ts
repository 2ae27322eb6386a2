/**
 * pyvene's configuration objects: RepresentationConfig (one intervention site) and
 * IntervenableConfig (sites, intervention types, mode), normalised from camelCase objects,
 * pyvene's snake_case dicts or its positional lists, and written back as pyvene's JSON.
 */
import { describe, OptionError, readOptions, snakeCase } from "../options/index.js";
import { Tensor } from "../tensor/index.js";
import { Intervention } from "./intervention.js";
import type { InterventionClass } from "./interventions/index.js";
import type { InterventionFunction } from "./interventions/lambda.js";

export interface RepresentationConfig {
  layer: number;
  component: string;
  unit: string;
  maxNumberOfUnits: number;
  lowRankDimension: number | null;
  interventionType: InterventionClass | null;
  intervention: Intervention | InterventionFunction | null;
  subspacePartition: number[][] | null;
  groupKey: number | null;
  interventionLinkKey: number | string | null;
  moeKey: number | null;
  sourceRepresentation: Tensor | null;
  hiddenSourceRepresentation: boolean | null;
  latentDim: number | null;
}

/** pyvene's field order: positional lists and saved configs rely on it. */
export const REPRESENTATION_FIELDS = [
  "layer",
  "component",
  "unit",
  "maxNumberOfUnits",
  "lowRankDimension",
  "interventionType",
  "intervention",
  "subspacePartition",
  "groupKey",
  "interventionLinkKey",
  "moeKey",
  "sourceRepresentation",
  "hiddenSourceRepresentation",
  "latentDim",
] as const satisfies readonly (keyof RepresentationConfig)[];

const DEFAULTS: RepresentationConfig = {
  layer: 0,
  component: "block_output",
  unit: "pos",
  maxNumberOfUnits: 1,
  lowRankDimension: null,
  interventionType: null,
  intervention: null,
  subspacePartition: null,
  groupKey: null,
  interventionLinkKey: null,
  moeKey: null,
  sourceRepresentation: null,
  hiddenSourceRepresentation: null,
  latentDim: null,
};

/** The units a representation may name: positions, heads, heads then positions, recurrent time steps. */
export const UNITS = ["pos", "h", "h.pos", "t"] as const;

export type RepresentationInput = Partial<RepresentationConfig> | Record<string, unknown> | readonly unknown[];

export type IntervenableMode = "parallel" | "serial";

export interface IntervenableConfig {
  representations: RepresentationConfig[];
  /** One class for all representations, or one per representation; null when each has its own. */
  interventionTypes: InterventionClass | InterventionClass[] | null;
  mode: IntervenableMode;
  /** Intervention keys in the order of every per-intervention list (set when loading a saved config). */
  sortedKeys: string[] | null;
}

export interface IntervenableConfigInput {
  representations: RepresentationInput | readonly RepresentationInput[];
  interventionTypes?: InterventionClass | readonly InterventionClass[] | null;
  mode?: IntervenableMode;
  sortedKeys?: readonly string[] | null;
}

const CONFIG_FIELDS = [
  "representations",
  "interventionTypes",
  "mode",
  "sortedKeys",
] as const satisfies readonly (keyof IntervenableConfigInput)[];

/** One representation from camelCase, snake_case or positional form, checked field by field. */
export function representationConfig(input: RepresentationInput, index = 0): RepresentationConfig {
  const where = `representations[${index}]`;
  let entries: [string, unknown][];
  if (Array.isArray(input)) {
    if (input.length > REPRESENTATION_FIELDS.length)
      throw new TypeError(
        `${where}: a positional representation has at most ${REPRESENTATION_FIELDS.length} fields, got ${input.length}`,
      );
    entries = input.map((v, i) => [REPRESENTATION_FIELDS[i], v]);
  } else if (input !== null && typeof input === "object" && !(input instanceof Tensor)) {
    entries = Object.entries(input);
  } else {
    throw new TypeError(
      `${where}: ${String(input)} is not a representation ` +
        "(expected an object of RepresentationConfig fields or a positional list)",
    );
  }
  const given = readOptions<RepresentationConfig>(Object.fromEntries(entries), REPRESENTATION_FIELDS, where);
  const out: RepresentationConfig = { ...DEFAULTS };
  for (const [key, value] of Object.entries(given)) {
    if (value !== undefined) (out as unknown as Record<string, unknown>)[key] = value;
  }
  checkRepresentation(out, where);
  return out;
}

/** Whether `value` is a class whose instances are interventions. */
export function isInterventionClass(value: unknown): value is InterventionClass {
  return typeof value === "function" && value.prototype instanceof Intervention;
}

function checkRepresentation(r: RepresentationConfig, where: string): void {
  const nonNegativeInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  if (!nonNegativeInt(r.layer))
    throw new TypeError(`${where}.layer must be a non-negative integer, got ${JSON.stringify(r.layer)}`);
  if (typeof r.component !== "string" || r.component === "")
    throw new TypeError(
      `${where}.component must be a component name or "<module path>.input|output", got ${JSON.stringify(r.component)}`,
    );
  if (!(UNITS as readonly unknown[]).includes(r.unit)) {
    throw new OptionError(
      `${where}.unit must be one of ${UNITS.map((u) => `"${u}"`).join(", ")}, got ${describe(r.unit)}`,
    );
  }
  if (!nonNegativeInt(r.maxNumberOfUnits) || r.maxNumberOfUnits === 0)
    throw new TypeError(
      `${where}.maxNumberOfUnits must be a positive integer, got ${JSON.stringify(r.maxNumberOfUnits)}`,
    );
  for (const field of ["lowRankDimension", "latentDim", "groupKey", "moeKey"] as const) {
    const v = r[field];
    if (v !== null && !nonNegativeInt(v))
      throw new TypeError(`${where}.${field} must be a non-negative integer or null, got ${JSON.stringify(v)}`);
  }
  if (r.interventionType !== null && !isInterventionClass(r.interventionType)) {
    throw new TypeError(
      `${where}.interventionType must be an intervention class (e.g. tv.VanillaIntervention), ` +
        `got ${describe(r.interventionType)}`,
    );
  }
  if (r.intervention !== null && !(r.intervention instanceof Intervention) && typeof r.intervention !== "function") {
    throw new TypeError(
      `${where}.intervention must be an Intervention instance or a function (base, source, subspaces) => Tensor, ` +
        `got ${describe(r.intervention)}`,
    );
  }
  if (r.interventionType !== null && r.intervention !== null) {
    throw new TypeError(`${where}: give only one of interventionType and intervention`);
  }
  if (
    r.subspacePartition !== null &&
    (!Array.isArray(r.subspacePartition) || r.subspacePartition.some((p) => !Array.isArray(p)))
  ) {
    throw new TypeError(
      `${where}.subspacePartition must be a list of [start, end) pairs or index lists, ` +
        `got ${JSON.stringify(r.subspacePartition)}`,
    );
  }
  if (r.sourceRepresentation !== null && !(r.sourceRepresentation instanceof Tensor)) {
    throw new TypeError(`${where}.sourceRepresentation must be a Tensor, got ${typeof r.sourceRepresentation}`);
  }
}

/** One representation or a list of them, as a list (a positional representation lists values, not objects). */
export function representationList(
  input: RepresentationInput | readonly RepresentationInput[],
): readonly RepresentationInput[] {
  return Array.isArray(input) && (input.length === 0 || typeof input[0] === "object")
    ? (input as readonly RepresentationInput[])
    : [input as RepresentationInput];
}

/**
 * The full config from a config object, one representation, or a list of them. Per-representation
 * intervention types must be given for all representations or none.
 */
export function intervenableConfig(
  input: IntervenableConfigInput | RepresentationInput | readonly RepresentationInput[],
): IntervenableConfig {
  const isConfig =
    !Array.isArray(input) &&
    typeof input === "object" &&
    input !== null &&
    CONFIG_FIELDS.some((f) => Object.hasOwn(input, f) || Object.hasOwn(input, snakeCase(f)));
  const cfg = isConfig
    ? readOptions<IntervenableConfigInput>(input, CONFIG_FIELDS, "IntervenableConfig")
    : { representations: input as RepresentationInput };
  if (cfg.representations === undefined) throw new TypeError("IntervenableConfig.representations is required");
  const representations = representationList(cfg.representations).map((r, i) => representationConfig(r, i));
  if (representations.length === 0) throw new RangeError("IntervenableConfig: representations must not be empty");
  const mode = cfg.mode ?? "parallel";
  if (mode !== "parallel" && mode !== "serial")
    throw new TypeError(`IntervenableConfig.mode must be "parallel" or "serial", got ${JSON.stringify(mode)}`);
  const typed = representations.filter((r) => r.interventionType !== null || r.intervention !== null).length;
  if (typed !== 0 && typed !== representations.length) {
    throw new TypeError(
      "IntervenableConfig: interventionType (or intervention) must be given for every representation " +
        "once it is given for one",
    );
  }
  const types = cfg.interventionTypes ?? null;
  if (Array.isArray(types) && types.length !== representations.length) {
    throw new RangeError(
      `IntervenableConfig.interventionTypes has ${types.length} entries for ${representations.length} representations`,
    );
  }
  (Array.isArray(types) ? types : types === null ? [] : [types]).forEach((t: unknown, i: number) => {
    if (!isInterventionClass(t)) {
      const at = Array.isArray(types) ? `[${i}]` : "";
      throw new TypeError(
        `IntervenableConfig.interventionTypes${at} must be an intervention class (e.g. tv.VanillaIntervention), ` +
          `got ${describe(t)}`,
      );
    }
  });
  const sortedKeys = checkSortedKeys(cfg.sortedKeys ?? null, representationKeys(representations));
  return {
    representations,
    interventionTypes: Array.isArray(types) ? [...types] : (types as InterventionClass | null),
    mode,
    sortedKeys,
  };
}

function checkSortedKeys(sorted: readonly string[] | null, keys: readonly string[]): string[] | null {
  if (sorted === null) return null;
  const isPermutation =
    Array.isArray(sorted) &&
    sorted.length === keys.length &&
    new Set(sorted).size === sorted.length &&
    sorted.every((k) => keys.includes(k));
  if (!isPermutation) {
    throw new RangeError(
      `IntervenableConfig.sortedKeys ${describe(sorted)} ` +
        `must list each of the keys ${JSON.stringify(keys)} exactly once`,
    );
  }
  return [...sorted];
}

/**
 * pyvene's key for a representation: "layer_{L}_comp_{component}_unit_{unit}_nunit_{n}#c", or
 * "comp_{path}_unit_…" for module-path components, with c counting earlier identical proposals.
 */
export function representationKeys(representations: readonly RepresentationConfig[]): string[] {
  const seen = new Map<string, number>();
  return representations.map((r) => {
    const unit = r.unit.replaceAll(".", "_");
    const proposal = r.component.includes(".")
      ? `comp_${r.component.replaceAll(".", "_")}_unit_${unit}_nunit_${r.maxNumberOfUnits}`
      : `layer_${r.layer}_comp_${r.component}_unit_${unit}_nunit_${r.maxNumberOfUnits}`;
    const count = seen.get(proposal) ?? 0;
    seen.set(proposal, count + 1);
    return `${proposal}#${count}`;
  });
}
