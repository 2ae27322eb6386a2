/**
 * IntervenableConfig as pyvene's saved config.json (spec §2.4): representations as 14-element
 * positional lists, intervention types as pyvene class strings, sorted_keys, per-intervention
 * interchange dimensions and constant-source flags. Reading accepts what pyvene writes.
 */
import {
  REPRESENTATION_FIELDS,
  type IntervenableConfigInput,
  type IntervenableMode,
  type RepresentationConfig,
} from "./config.js";
import type { IntervenableModel } from "./intervenable-model.js";
import { parseInterventionType, pyveneClassString } from "./interventions/index.js";
import { closest } from "../options/index.js";

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

/** The keys of pyvene's saved config (spec §2.2, §2.4). */
const PYVENE_KEYS = [
  "representations",
  "intervention_types",
  "mode",
  "sorted_keys",
  "intervention_dimensions",
  "intervention_constant_sources",
  "model_type",
];
/** What HF's save_pretrained adds to any config it writes. */
const HF_BOOKKEEPING_KEYS = [
  "transformers_version",
  "_name_or_path",
  "architectures",
  "torch_dtype",
  "_attn_implementation_autoset",
];

/**
 * A config from pyvene's config.json: representations as positional lists (or snake_case
 * objects), types from class strings, sorted_keys kept so per-intervention lists keep their order.
 * Unknown keys are errors: a misspelt key would otherwise be dropped and the saved experiment
 * silently rebuilt without it.
 */
export function fromPyveneConfig(json: unknown): { config: IntervenableConfigInput; saved: SavedInterventionState } {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TypeError("pyvene config: expected a JSON object");
  }
  const obj = json as Record<string, unknown>;
  checkKeys(obj);
  const reps = obj.representations;
  if (!Array.isArray(reps) || reps.length === 0)
    throw new TypeError('pyvene config: "representations" must be a non-empty list');
  const types = obj.intervention_types;
  const typeList = Array.isArray(types) ? types : types === undefined || types === null ? [] : [types];
  if (typeList.length !== 0 && typeList.length !== reps.length && typeList.length !== 1) {
    throw new RangeError(`pyvene config: ${typeList.length} intervention_types for ${reps.length} representations`);
  }
  const representations = reps.map((r, i) => {
    const dict = Object.fromEntries(representationEntries(r, i).filter(([k]) => !DROPPED_FIELDS.includes(k)));
    const type = typeList.length === 0 ? undefined : typeList[typeList.length === 1 ? 0 : i];
    if (type !== undefined && typeof type !== "string")
      throw new TypeError(`pyvene config: intervention_types[${i}] must be a class string`);
    return { ...dict, interventionType: type === undefined ? null : typeAt(type, typeList.length === 1 ? 0 : i) };
  });
  const mode = (obj.mode ?? "parallel") as IntervenableMode;
  const sortedKeys = listOrNull(obj, "sorted_keys") as string[] | null;
  const n = reps.length;
  const dims = listOrNull(obj, "intervention_dimensions") ?? new Array(n).fill(null);
  const constants = listOrNull(obj, "intervention_constant_sources") ?? new Array(n).fill(false);
  const saved = { interchangeDims: dims as (number | number[] | null)[], constantSources: constants as boolean[] };
  checkSavedLists(saved, n);
  return { config: { representations, mode, sortedKeys }, saved };
}

/** Fields save() clears in every representation (the types and sources live elsewhere). */
const DROPPED_FIELDS: readonly string[] = ["intervention_type", "intervention", "source_representation"];

function checkKeys(obj: Record<string, unknown>): void {
  const known = [...PYVENE_KEYS, ...HF_BOOKKEEPING_KEYS];
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const suggestion = closest(key, known);
    throw new TypeError(
      `pyvene config: unknown key "${key}"${suggestion === null ? "" : ` (did you mean "${suggestion}"?)`}; ` +
        `a saved IntervenableModel config has ${PYVENE_KEYS.join(", ")} and HF's ${HF_BOOKKEEPING_KEYS.join(", ")}`,
    );
  }
}

/** A representation's [snake_case field, value] pairs, from a positional list or an object. */
function representationEntries(r: unknown, index: number): (readonly [string, unknown])[] {
  if (Array.isArray(r)) return r.map((v, k) => [SNAKE[k], v] as const);
  if (r !== null && typeof r === "object") return Object.entries(r);
  const expected = `a list of ${SNAKE.length} fields or an object`;
  throw new TypeError(`pyvene config: representations[${index}] must be ${expected}, got ${JSON.stringify(r)}`);
}

/** A list field, or null when absent or null; any other value is an error. */
function listOrNull(obj: Record<string, unknown>, key: string): unknown[] | null {
  const value = obj[key];
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value))
    throw new TypeError(`pyvene config: "${key}" must be a list, got ${JSON.stringify(value)}`);
  return value;
}

/** The per-intervention lists: one entry per representation, each of the form pyvene writes. */
function checkSavedLists(saved: SavedInterventionState, n: number): void {
  const lists = [
    ["intervention_dimensions", saved.interchangeDims],
    ["intervention_constant_sources", saved.constantSources],
  ] as const;
  for (const [field, list] of lists) {
    if (list.length !== n) {
      throw new RangeError(
        `pyvene config: ${field} has ${list.length} entries for ${n} representations (expected one per representation)`,
      );
    }
  }
  const count = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  saved.interchangeDims.forEach((d, i) => {
    if (d !== null && !count(d) && !(Array.isArray(d) && d.every(count))) {
      const expected = "null, a non-negative integer or a list of feature indices";
      throw new TypeError(`pyvene config: intervention_dimensions[${i}] must be ${expected}, got ${JSON.stringify(d)}`);
    }
  });
  saved.constantSources.forEach((c, i) => {
    if (typeof c !== "boolean") {
      throw new TypeError(
        `pyvene config: intervention_constant_sources[${i}] must be true or false, got ${JSON.stringify(c)}`,
      );
    }
  });
}

/** The class a config's intervention_types entry names, with errors that point at the entry. */
function typeAt(name: string, index: number) {
  try {
    return parseInterventionType(name);
  } catch (error) {
    throw new TypeError(`pyvene config: intervention_types[${index}]: ${(error as Error).message}`, { cause: error });
  }
}
