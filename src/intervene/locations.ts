/**
 * pyvene's unit_locations grammar (spec §4.3) and subspaces broadcasting (§4.8), normalised to
 * one explicit form: for each side (source, base) and each intervention, null or the per-example
 * units. A single-level unit ("pos", "h", "t") has rows [batch][k]; a two-level unit ("h.pos")
 * has a pair [heads [batch][kh], positions [batch][kp]].
 */
import { describe } from "../options/index.js";

export type UnitRows = number[][];
export type TwoLevelUnits = [UnitRows, UnitRows];
export type InterventionUnits = UnitRows | TwoLevelUnits | null;
/** Per intervention (in key order), on one side. */
export type SideUnits = InterventionUnits[] | null;

/** Normalised locations: a key ("sources->base", or serial "source_0->source_1", …) → [source side, base side]. */
export type Locations = Map<string, [SideUnits, SideUnits]>;

/** Unit locations as users write them: pyvene's JSON forms, with 2-element lists standing for its tuples. */
export type UnitLocationsInput = Record<string, unknown>;

/**
 * Nesting depth of arrays (0 for a non-array). A loop rather than Math.max(...rows): per-example
 * lists hold a row per example, which a spread copies at every call and overflows the stack on.
 */
function depth(x: unknown): number {
  if (!Array.isArray(x)) return 0;
  let deepest = 0;
  for (const item of x) deepest = Math.max(deepest, depth(item));
  return 1 + deepest;
}

const isInt = (v: unknown): v is number => Number.isInteger(v);

/** [[[p]] * batch] * n: position p for every example of every intervention. */
function everywhere(units: number[], batch: number, n: number): UnitRows[] {
  return Array.from({ length: n }, () => Array.from({ length: batch }, () => [...units]));
}

/**
 * Broadcasts user locations to the explicit form. `hops` maps each key the call may use to the
 * number of interventions its lists cover: in parallel mode "sources->base" → all of them (the
 * key "base" means base-only locations, no source side); in serial mode each
 * "source_g->source_{g+1}" or "source_{G-1}->base" → the interventions of group g (spec §4.13).
 * Once locations are given, every hop must have them: a missing hop would silently intervene
 * at every position.
 */
export function broadcastLocations(
  input: UnitLocationsInput | null | undefined,
  batch: number,
  hops: ReadonlyMap<string, number>,
): Locations {
  if (input === null || input === undefined) {
    return new Map(
      [...hops].map(([key, n]) => [
        key,
        [new Array<InterventionUnits>(n).fill(null), new Array<InterventionUnits>(n).fill(null)],
      ]),
    );
  }
  if (typeof input !== "object" || Array.isArray(input) || input instanceof Map) {
    throw new TypeError(
      `unitLocations must be an object such as {"sources->base": [sourceUnits, baseUnits]} or {"base": units}, ` +
        `got ${describe(input)}`,
    );
  }
  const parallel = hops.has("sources->base");
  const out: Locations = new Map();
  for (const [rawKey, v] of Object.entries(input)) {
    const baseOnly = parallel && rawKey === "base";
    const key = baseOnly ? "sources->base" : rawKey;
    const n = hops.get(key);
    if (n === undefined) {
      const expected = parallel ? '"sources->base" or "base"' : [...hops.keys()].map((k) => `"${k}"`).join(", ");
      throw new RangeError(
        `unitLocations: key "${rawKey}" is not valid ${parallel ? "in parallel mode" : "for these serial groups"} ` +
          `(expected ${expected})`,
      );
    }
    if (out.has(key)) throw new RangeError('unitLocations: give one of "sources->base" and "base", not both');
    out.set(key, broadcastValue(v, batch, n, baseOnly, rawKey));
  }
  const missing = [...hops.keys()].filter((k) => !out.has(k));
  if (missing.length > 0) {
    const hint = parallel ? '"sources->base" (or "base")' : missing.map((k) => `"${k}"`).join(", ");
    throw new RangeError(
      `unitLocations: locations for ${hint} are missing (every hop needs its locations once any are given)`,
    );
  }
  return out;
}

function broadcastValue(v: unknown, batch: number, n: number, baseOnly: boolean, key: string): [SideUnits, SideUnits] {
  if (Array.isArray(v) && v.length === 0)
    throw new RangeError(
      `unitLocations["${key}"] is an empty list: it names no units ` +
        "(give positions, or leave unitLocations out to intervene everywhere)",
    );
  if (isInt(v)) return [baseOnly ? null : everywhere([v], batch, n), everywhere([v], batch, n)];
  if (Array.isArray(v) && v.length === 2 && isInt(v[0]) && isInt(v[1]))
    return [everywhere([v[0]], batch, n), everywhere([v[1]], batch, n)];
  if (Array.isArray(v) && v.length === 2 && v[0] === null && isInt(v[1])) return [null, everywhere([v[1]], batch, n)];
  if (Array.isArray(v) && v.length === 2 && isInt(v[0]) && v[1] === null) return [everywhere([v[0]], batch, n), null];
  if (Array.isArray(v) && v.every(isInt)) {
    return [baseOnly ? null : everywhere(v, batch, n), everywhere(v, batch, n)];
  }
  if (baseOnly) return [null, checkSide(v, n, `unitLocations["${key}"]`)];
  if (!Array.isArray(v) || v.length !== 2) {
    throw new TypeError(
      `unitLocations["${key}"] must be a position, a list of positions, ` +
        `or a pair [sourceUnits, baseUnits] with one entry per intervention; got ${JSON.stringify(v)}`,
    );
  }
  return [checkSide(v[0], n, `unitLocations["${key}"][0]`), checkSide(v[1], n, `unitLocations["${key}"][1]`)];
}

function checkSide(side: unknown, n: number, where: string): SideUnits {
  if (side === null) return null;
  if (!Array.isArray(side) || side.length !== n) {
    throw new TypeError(
      `${where} must be null or a list with one entry per intervention (${n}), got ${JSON.stringify(side)}`,
    );
  }
  return side.map((entry, i) => checkEntry(entry, `${where}[${i}]`));
}

/** Whether x is a non-empty list of lists of integers (loops: there is a row per example). */
function isRowList(x: unknown): x is UnitRows {
  if (!Array.isArray(x) || x.length === 0) return false;
  for (const row of x) {
    if (!Array.isArray(row)) return false;
    for (const i of row) if (!isInt(i)) return false;
  }
  return true;
}

function checkRows(rows: unknown, where: string): UnitRows {
  if (!isRowList(rows)) {
    const expected = "per-example lists of unit indices [[i, …], …]";
    throw new TypeError(`${where} must be ${expected}, got ${JSON.stringify(rows)}`);
  }
  return checkRowLengths(rows, where);
}

function checkRowLengths(rows: UnitRows, where: string): UnitRows {
  const k = rows[0].length;
  if (k === 0)
    throw new RangeError(
      `${where} lists no units: give at least one index per example ` +
        "(or null to leave this intervention's units unrestricted)",
    );
  if (rows.some((r) => r.length !== k))
    throw new RangeError(`${where}: every example must list the same number of units, got ${JSON.stringify(rows)}`);
  return rows;
}

function checkEntry(entry: unknown, where: string): InterventionUnits {
  if (entry === null) return null;
  // The common form first: well-formed per-example rows need no depth walk.
  if (isRowList(entry)) return checkRowLengths(entry, where);
  const d = depth(entry);
  if (d === 2) return checkRows(entry, where);
  if (d === 3 && Array.isArray(entry) && entry.length === 2) {
    return [checkRows(entry[0], `${where}[0]`), checkRows(entry[1], `${where}[1]`)];
  }
  throw new TypeError(
    `${where} must be null, per-example unit lists [[i, …], …], ` +
      "or for two-level units [heads [[h, …], …], positions [[p, …], …]]; " +
      `got ${JSON.stringify(entry)}`,
  );
}

/**
 * Subspaces per intervention: an int s → [[s]] for every example of every intervention; a flat
 * list → that list for every example; otherwise one entry per intervention (null or per-example
 * lists, or anything a custom intervention understands).
 */
export function broadcastSubspaces(input: unknown, batch: number, n: number): unknown[] | null {
  if (input === null || input === undefined) return null;
  if (isInt(input)) return Array.from({ length: n }, () => Array.from({ length: batch }, () => [input]));
  if (Array.isArray(input) && input.length > 0 && isInt(input[0])) {
    return Array.from({ length: n }, () => Array.from({ length: batch }, () => [...input]));
  }
  if (!Array.isArray(input) || input.length !== n) {
    throw new TypeError(
      `subspaces must be an int, a list of ids, or one entry per intervention (${n}); got ${JSON.stringify(input)}`,
    );
  }
  return input;
}
