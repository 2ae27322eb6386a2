/**
 * Unit "t" on recurrent models: a site's module runs once per time step, and locations list
 * steps. tsvene intervenes only at the listed base steps, the i-th listed source step feeding the
 * i-th listed base step (DESIGN.md); other steps are left untouched.
 */
import * as tv from "../tensor/index.js";
import { Tensor } from "../tensor/index.js";
import type { InterventionUnits, UnitRows } from "./locations.js";

/** The time step of a hook call: the model's context `step` when it passes one, else the call count. */
export function stepOf(context: unknown, calls: number): number {
  const step = (context as { step?: unknown } | null | undefined)?.step;
  return typeof step === "number" ? step : calls;
}

function stepRows(units: InterventionUnits, batch: number, what: string): UnitRows {
  if (units === null)
    throw new TypeError(
      `${what}: unit "t" needs the steps to intervene on, e.g. {"sources->base": [[[[src_step]]], [[[base_step]]]]}`,
    );
  const rows = units as UnitRows;
  if (!Array.isArray(rows[0]) || Array.isArray(rows[0][0]))
    throw new TypeError(`${what}: unit "t" takes per-example step lists [[t, …], …]`);
  if (rows.length !== 1 && rows.length !== batch)
    throw new RangeError(`${what}: ${rows.length} rows of steps for a batch of ${batch}`);
  return rows;
}

/** For each example, the index j in its base step list that equals `step`, or −1. */
export function listedAt(units: InterventionUnits, step: number, batch: number, what: string): number[] {
  const rows = stepRows(units, batch, what);
  return Array.from({ length: batch }, (_, i) => rows[rows.length === 1 ? 0 : i].indexOf(step));
}

/** The source step paired with base list position j of example i. */
export function pairedSourceStep(
  sourceUnits: InterventionUnits,
  i: number,
  j: number,
  batch: number,
  what: string,
): number {
  const rows = stepRows(sourceUnits, batch, what);
  const row = rows[rows.length === 1 ? 0 : i];
  if (j >= row.length) throw new RangeError(`${what}: example ${i} lists more base steps than source steps`);
  return row[j];
}

/** Row i of a [B, d] value, as [1, d]. */
export function rowOf(value: Tensor, i: number): Tensor {
  return tv.slice(value, 0, i, i + 1);
}

/** A [B, 1] mask of the examples intervened at this step. */
export function exampleMask(selected: readonly number[]): Tensor {
  return new Tensor(
    Float32Array.from(selected, (j) => (j >= 0 ? 1 : 0)),
    [selected.length, 1],
  );
}

/** Unit "t" Collect rows (example i, list position j) as one [B, k, d] tensor. */
export function stepCollection(rows: Map<string, Tensor>): Tensor {
  const positions = [...rows.keys()].map((k) => k.split(",").map(Number));
  const batch = Math.max(...positions.map(([i]) => i)) + 1;
  const units = Math.max(...positions.map(([, j]) => j)) + 1;
  const perExample = Array.from({ length: batch }, (_, i) =>
    tv.stack(
      Array.from({ length: units }, (_, j) => {
        const row = rows.get(`${i},${j}`);
        if (!row)
          throw new RangeError(`Collect (unit "t"): example ${i} was not collected at its step list position ${j}`);
        return tv.squeeze(row, 0);
      }),
      0,
    ),
  );
  return tv.stack(perExample, 0);
}
