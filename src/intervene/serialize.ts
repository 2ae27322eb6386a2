/**
 * IntervenableConfig as pyvene's saved config.json (spec §2.4): representations as 14-element
 * positional lists, intervention types as pyvene class strings, sorted_keys, per-intervention
 * interchange dimensions and constant-source flags. Reading accepts what pyvene writes.
 */
import { REPRESENTATION_FIELDS, type IntervenableConfigInput, type IntervenableMode, type RepresentationConfig } from "./config.js";
import type { IntervenableModel } from "./intervenable-model.js";
import { parseInterventionType, pyveneClassString } from "./interventions/index.js";

export interface PyveneConfigJson {
  representations: unknown[][];
  intervention_types: string[];
  mode: IntervenableMode;
  sorted_keys: string[];
  intervention_dimensions: (number | number[] | null)[];
  intervention_constant_sources: boolean[];
  [bookkeeping: string]: unknown;
}

/** What a saved config says beyond the representations, per intervention in key order. */
export interface SavedInterventionState {
  interchangeDims: (number | number[] | null)[];
  constantSources: boolean[];
}

const SNAKE = REPRESENTATION_FIELDS.map((f) => f.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));

function positional(r: RepresentationConfig): unknown[] {
  return REPRESENTATION_FIELDS.map((field) => {
    switch (field) {
      case "interventionType":
      case "intervention":
      case "sourceRepresentation":
        return null;
      case "hiddenSourceRepresentation":
        return r.sourceRepresentation !== null || r.hiddenSourceRepresentation ? true : null;
      default:
        return r[field] ?? null;
    }
  });
}

/**
 * pyvene's config.json for a model's interventions (no weights; see save/load for those). Lists
 * follow the representations' order, as pyvene's do; sorted_keys carries the key order.
 */
export function toPyveneConfig(im: IntervenableModel<unknown>): PyveneConfigJson {
  const interventions = im.representationKeys.map((k) => im.interventions.get(k)!);
  return {
    representations: im.config.representations.map(positional),
    intervention_types: interventions.map((iv) => pyveneClassString(iv)),
    mode: im.config.mode,
    sorted_keys: [...im.keys],
    intervention_dimensions: interventions.map((iv) => {
      const dim = iv.interchangeDim;
      return dim === null ? null : typeof dim === "number" ? dim : [...dim];
    }),
    intervention_constant_sources: interventions.map((iv) => iv.sourceConstant),
    transformers_version: "4.45.0",
  };
}

/**
 * A config from pyvene's config.json: representations as positional lists (or snake_case
 * objects), types from class strings, sorted_keys kept so per-intervention lists keep their order.
 */
export function fromPyveneConfig(json: unknown): { config: IntervenableConfigInput; saved: SavedInterventionState } {
  if (json === null || typeof json !== "object") throw new TypeError("pyvene config: expected a JSON object");
  const obj = json as Record<string, unknown>;
  const reps = obj.representations;
  if (!Array.isArray(reps) || reps.length === 0) throw new TypeError("pyvene config: \"representations\" must be a non-empty list");
  const types = obj.intervention_types;
  const typeList = Array.isArray(types) ? types : types === undefined || types === null ? [] : [types];
  if (typeList.length !== 0 && typeList.length !== reps.length && typeList.length !== 1) {
    throw new RangeError(`pyvene config: ${typeList.length} intervention_types for ${reps.length} representations`);
  }
  const representations = reps.map((r, i) => {
    const entries = Array.isArray(r) ? r.map((v, k) => [SNAKE[k], v] as const) : Object.entries(r as Record<string, unknown>);
    const dict = Object.fromEntries(entries.filter(([k]) => k !== "intervention_type" && k !== "intervention" && k !== "source_representation"));
    const type = typeList.length === 0 ? undefined : typeList[typeList.length === 1 ? 0 : i];
    if (type !== undefined && typeof type !== "string") throw new TypeError(`pyvene config: intervention_types[${i}] must be a class string`);
    return { ...dict, interventionType: type === undefined ? null : typeAt(type, typeList.length === 1 ? 0 : i) };
  });
  const mode = (obj.mode ?? "parallel") as IntervenableMode;
  const sortedKeys = Array.isArray(obj.sorted_keys) ? (obj.sorted_keys as string[]) : null;
  const n = reps.length;
  const dims = Array.isArray(obj.intervention_dimensions) ? (obj.intervention_dimensions as (number | number[] | null)[]) : new Array(n).fill(null);
  const constants = Array.isArray(obj.intervention_constant_sources) ? (obj.intervention_constant_sources as boolean[]) : new Array(n).fill(false);
  return { config: { representations, mode, sortedKeys }, saved: { interchangeDims: dims, constantSources: constants } };
}

/** The class a config's intervention_types entry names, with errors that point at the entry. */
function typeAt(name: string, index: number) {
  try {
    return parseInterventionType(name);
  } catch (error) {
    throw new TypeError(`pyvene config: intervention_types[${index}]: ${(error as Error).message}`, { cause: error });
  }
}
