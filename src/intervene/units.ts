/**
 * Reading and writing the units of a site, out of place. A site's value is first viewed as the
 * component (one part of a fused q|k|v output, split into heads [B, H, T, d]), then units are
 * gathered at per-example indices; writing goes back through the same steps in reverse.
 */
import * as tv from "../tensor/index.js";
import { IntTensor, type Tensor } from "../tensor/index.js";
import type { Site } from "../models/sites.js";
import { sameShape } from "../tensor/shape.js";
import type { InterventionUnits, TwoLevelUnits, UnitRows } from "./locations.js";

/** The part of a site that says how the component is cut from its module's value. */
export type SiteView = Pick<Site, "fusedPart" | "heads">;

/** The component's view of the value at its module: fused part, then heads. */
export function componentView(value: Tensor, site: SiteView): Tensor {
  let v = value;
  if (site.fusedPart) {
    const width = v.shape[v.rank - 1] / site.fusedPart.of;
    v = tv.slice(v, -1, site.fusedPart.index * width, (site.fusedPart.index + 1) * width);
  }
  if (site.heads) {
    const [b, t, width] = v.shape;
    v = tv.permute(tv.reshape(v, [b, t, site.heads, width / site.heads]), [0, 2, 1, 3]);
  }
  return v;
}

/** The module's value with the component's view replaced by `view` (the inverse of componentView). */
export function withComponent(value: Tensor, site: SiteView, view: Tensor): Tensor {
  let v = view;
  if (site.heads) {
    const [b, h, t, d] = v.shape;
    v = tv.reshape(tv.permute(v, [0, 2, 1, 3]), [b, t, h * d]);
  }
  if (site.fusedPart) {
    const width = value.shape[value.rank - 1] / site.fusedPart.of;
    const start = site.fusedPart.index * width;
    v = tv.concat([tv.slice(value, -1, 0, start), v, tv.slice(value, -1, start + width)], -1);
  }
  return v;
}

export function isTwoLevel(unit: string): boolean {
  return unit.includes(".");
}

/** Rows for the batch: one row broadcasts to every example; otherwise one row per example. */
function rowsFor(rows: UnitRows, batch: number, axisLength: number, what: string): IntTensor {
  if (rows.length !== 1 && rows.length !== batch) {
    throw new RangeError(
      `${what}: ${rows.length} rows of units for a batch of ${batch} (expected ${batch}, or 1 for all examples)`,
    );
  }
  const k = rows[0].length;
  const data = new Int32Array(batch * k);
  for (let b = 0; b < batch; b++) {
    const row = rows[rows.length === 1 ? 0 : b];
    for (let j = 0; j < k; j++) {
      const i = row[j];
      if (i < 0 || i >= axisLength)
        throw new RangeError(`${what}: unit ${i} is out of range (expected 0..${axisLength - 1})`);
      data[b * k + j] = i;
    }
  }
  return new IntTensor(data, [batch, k]);
}

/** [B, kh] head rows expanded to an index [B, kh, kp] of positions for the two-level gather. */
function positionIndex(positions: IntTensor, heads: number): IntTensor {
  const [batch, kp] = positions.shape;
  const data = new Int32Array(batch * heads * kp);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++) data.set(positions.data.subarray(b * kp, (b + 1) * kp), (b * heads + h) * kp);
  return new IntTensor(data, [batch, heads, kp]);
}

/**
 * The units at `units` of a component view: single-level units gather along axis 1 giving
 * (b, k, …); two-level (heads, positions) give (b, kh, kp, d). Null units mean the whole view.
 */
export function gatherUnits(view: Tensor, unit: string, units: InterventionUnits, what: string): Tensor {
  if (units === null) return view;
  const batch = view.shape[0];
  if (isTwoLevel(unit)) {
    const [headRows, posRows] = asTwoLevel(units, unit, what);
    const heads = rowsFor(headRows, batch, view.shape[1], `${what} (heads)`);
    const positions = rowsFor(posRows, batch, view.shape[2], `${what} (positions)`);
    return tv.gatherAt(tv.gatherAt(view, 1, heads), 2, positionIndex(positions, heads.shape[1]));
  }
  if (units.length === 2 && Array.isArray(units[0][0])) {
    const expected = "per-example lists [[i, …], …], not a (heads, positions) pair";
    throw new TypeError(`${what}: unit "${unit}" takes ${expected}`);
  }
  if (wholeAxisInOrder(units as UnitRows, batch, view.shape[1])) return view;
  return tv.gatherAt(view, 1, rowsFor(units as UnitRows, batch, view.shape[1], what));
}

/** The view with the gathered units replaced by `values` (the inverse of gatherUnits). */
export function scatterUnits(
  view: Tensor,
  unit: string,
  units: InterventionUnits,
  values: Tensor,
  what: string,
): Tensor {
  if (units === null) {
    if (values.rank !== view.rank || values.shape.some((d, i) => d !== view.shape[i])) {
      throw new RangeError(
        `${what}: the intervention returned shape [${values.shape}] for a value of shape [${view.shape}]`,
      );
    }
    return values;
  }
  const batch = view.shape[0];
  if (isTwoLevel(unit)) {
    const [headRows, posRows] = asTwoLevel(units, unit, what);
    const heads = rowsFor(headRows, batch, view.shape[1], `${what} (heads)`);
    const positions = rowsFor(posRows, batch, view.shape[2], `${what} (positions)`);
    const selectedHeads = tv.gatherAt(view, 1, heads);
    return tv.writeAt(view, 1, heads, tv.writeAt(selectedHeads, 2, positionIndex(positions, heads.shape[1]), values));
  }
  // A view that needs a gradient goes through writeAt, which gives it a zero gradient as PyTorch's index
  // write does: parameters behind it then hold zeros rather than none, which an optimiser steps.
  const replacesView = !view.requiresGrad && sameShape(values.shape, view.shape);
  if (replacesView && wholeAxisInOrder(units as UnitRows, batch, view.shape[1])) return values;
  return tv.writeAt(view, 1, rowsFor(units as UnitRows, batch, view.shape[1], what), values);
}

/**
 * Whether every example's row lists the whole unit axis in order (position 0 of a length-1
 * axis, as pyvene's MLP and DAS set-ups give): gathering is then the identity and writing
 * replaces the view, so neither needs an indexing op. Malformed rows answer false and are
 * reported by rowsFor.
 */
function wholeAxisInOrder(rows: UnitRows, batch: number, axisLength: number): boolean {
  if (rows.length !== 1 && rows.length !== batch) return false;
  for (const row of rows) {
    if (row.length !== axisLength) return false;
    for (let j = 0; j < axisLength; j++) if (row[j] !== j) return false;
  }
  return true;
}

function asTwoLevel(units: InterventionUnits, unit: string, what: string): TwoLevelUnits {
  const pair = units as TwoLevelUnits;
  if (!Array.isArray(pair) || pair.length !== 2 || !Array.isArray(pair[0]?.[0])) {
    throw new TypeError(
      `${what}: unit "${unit}" takes a pair [heads [[h, …], …], positions [[p, …], …]], ` +
        `got ${JSON.stringify(units)}`,
    );
  }
  return pair;
}

/**
 * pyvene's flattening before a distributed intervention: (b, k, d) → (b, k·d) and
 * (b, kh, kp, d) → (b, kp, kh·d); returns the flat tensor and the inverse.
 */
export function flattenUnits(x: Tensor): { flat: Tensor; unflatten: (y: Tensor) => Tensor } {
  if (x.rank === 3) {
    const [b, k, d] = x.shape;
    return { flat: tv.reshape(x, [b, k * d]), unflatten: (y) => tv.reshape(y, [b, k, d]) };
  }
  if (x.rank === 4) {
    const [b, kh, kp, d] = x.shape;
    return {
      flat: tv.reshape(tv.permute(x, [0, 2, 1, 3]), [b, kp, kh * d]),
      unflatten: (y) => tv.permute(tv.reshape(y, [b, kp, kh, d]), [0, 2, 1, 3]),
    };
  }
  return { flat: x, unflatten: (y) => y };
}
