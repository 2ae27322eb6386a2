/**
 * pyvene's `_do_intervention_by_swap` with tsvene's semantics: out of place, differentiable, and
 * per-example subspaces applied per example whatever the rank of base.
 *
 * The features acted on (the last axis of base) are, in order of precedence:
 * - with `subspaces`: per example i the ids subspaces[i] (a flat list, or a single id, is the
 *   same for every example; with `useFast`, subspaces[0] is). With a subspace partition each id
 *   selects a partition block and the blocks are concatenated in the given order; without one
 *   the ids are feature indices.
 * - else `interchangeDim`: the first interchangeDim features (all when it is at least the width,
 *   as a Python slice), or an explicit list of feature indices; null means all features.
 *
 * interchange/add/subtract are `where(mask, new, base)`, so unselected features are bit-exact
 * copies of base and receive exactly base's gradient; selected ones route the gradient to the
 * source (and to base as well for add/subtract). collect returns the selected features.
 *
 * Differences from pyvene (DESIGN.md, "Semantic decisions"): pyvene pairs its subspace rows with
 * the second-to-last axis, so on a (b, k, d) base it swaps one row per *unit*, or the union of
 * all rows' indices when k = 1; tsvene always pairs row i with example i. For the writing modes
 * an id that repeats within an example selects its feature once (as torch's index assignment);
 * collect keeps the ids in order, repeats included.
 */
import { Tensor, gatherAt, indexSelect, intTensor, add, sub, reshape, slice, where } from "../tensor/index.js";
import { formatShape, sameShape } from "../tensor/shape.js";

export type SwapMode = "interchange" | "add" | "subtract" | "collect";

export interface SwapOptions {
  /** First-k count or explicit feature indices, used when there are no subspaces; null = all. */
  interchangeDim?: number | readonly number[] | null;
  /** Per-example ids ([[...], ...]), one list for every example ([...]), a single id, or null. */
  subspaces?: unknown;
  /** Expanded partition (lists of feature indices per block), as Intervention.subspacePartition. */
  subspacePartition?: readonly (readonly number[])[] | null;
  /** pyvene's use_fast: every example takes the first list of per-example subspaces, whatever their number. */
  useFast?: boolean;
}

/** Which features to act on: the same for every example, or one list per example. */
export type FeatureSelection =
  | { readonly kind: "shared"; readonly ids: readonly number[] }
  | { readonly kind: "perExample"; readonly ids: readonly (readonly number[])[] };

const MODES: readonly SwapMode[] = ["interchange", "add", "subtract", "collect"];

/**
 * The source ready to combine with base: base's shape, or any shape with exactly d = the width
 * of base's last axis values, which broadcasts as a (d) vector (pyvene's rule; any other shape
 * is an error with pyvene's message).
 */
export function broadcastSource(base: Tensor, source: Tensor): Tensor {
  if (sameShape(source.shape, base.shape)) return source;
  const d = base.shape[base.rank - 1];
  if (base.rank >= 1 && source.size === d) return source.rank === 1 ? source : reshape(source, [d]);
  throw new RangeError(
    `source with shape ${formatShape(source.shape)} ` +
      `cannot be broadcasted into base with shape ${formatShape(base.shape)}.`,
  );
}

/**
 * Resolves the selection for a last axis of `width` features and a batch of `batch` examples
 * (null when base has no batch axis). Every id is checked against the partition or the width.
 */
export function featureSelection(
  width: number,
  batch: number | null,
  options: SwapOptions = {},
  what = "swap",
): FeatureSelection {
  const partition = options.subspacePartition ?? null;
  if (partition !== null) checkPartition(partition, width, what);
  const subspaces = options.subspaces ?? null;
  if (subspaces === null) return interchangeSelection(width, options.interchangeDim ?? null, what);

  const rows = normaliseSubspaces(subspaces, what);
  const resolve = (ids: readonly number[], example: number | null): number[] => {
    const out: number[] = [];
    const where = () => (example === null ? "" : ` (example ${example})`);
    for (const id of ids) {
      if (partition !== null) {
        if (id < 0 || id >= partition.length) {
          throw new RangeError(
            `${what}: subspace id ${id}${where()} is out of range ` +
              `for a subspace partition of ${partition.length} blocks (expected 0..${partition.length - 1})`,
          );
        }
        out.push(...partition[id]);
      } else {
        checkFeature(id, width, () => `${what}: feature index ${id}${where()}`);
        out.push(id);
      }
    }
    return out;
  };
  if (rows.kind === "shared") return { kind: "shared", ids: resolve(rows.ids, null) };
  if (rows.ids.length === 1 || options.useFast) return { kind: "shared", ids: resolve(rows.ids[0], null) };
  if (batch === null) {
    throw new RangeError(
      `${what}: per-example subspaces (${rows.ids.length} lists) need a base with a batch axis, got a 1-D base`,
    );
  }
  if (rows.ids.length !== batch) {
    throw new RangeError(
      `${what}: subspaces has ${rows.ids.length} per-example lists but the base batch has ${batch} examples; ` +
        "give one list per example, or one list for all",
    );
  }
  // One selection repeated per example (as DAS batches give) resolves once.
  const first = resolve(rows.ids[0], 0);
  if (rows.ids.every((ids) => sameIds(ids, rows.ids[0]))) return { kind: "shared", ids: first };
  const perExample = rows.ids.map((ids, i) => (i === 0 ? first : resolve(ids, i)));
  if (perExample.every((ids) => sameIds(ids, first))) return { kind: "shared", ids: first };
  return { kind: "perExample", ids: perExample };
}

/**
 * A 0/1 mask selecting the features: shape (d) when shared, (b, 1, …, 1, d) per example, so it
 * broadcasts against a base of shape `shape`.
 */
export function selectionMask(selection: FeatureSelection, shape: readonly number[]): Tensor {
  const d = shape[shape.length - 1];
  if (selection.kind === "shared") {
    const data = new Float32Array(d);
    for (const i of selection.ids) data[i] = 1;
    return new Tensor(data, [d]);
  }
  const b = selection.ids.length;
  const data = new Float32Array(b * d);
  selection.ids.forEach((ids, e) => {
    for (const i of ids) data[e * d + i] = 1;
  });
  const maskShape = shape.map((_n, axis) => (axis === 0 ? b : axis === shape.length - 1 ? d : 1));
  return new Tensor(data, maskShape);
}

/**
 * The swap: `mode` applied to the selected features of base (last axis), out of place. For
 * "collect" the source must be null and the result holds the selected features (per example,
 * which then needs equal counts); for the other modes the result has base's shape.
 */
export function doInterventionBySwap(
  base: Tensor,
  source: Tensor | null,
  mode: SwapMode,
  options: SwapOptions = {},
): Tensor {
  if (!MODES.includes(mode))
    throw new TypeError(`swap: mode must be one of ${MODES.join(", ")}, got ${JSON.stringify(mode)}`);
  if (base.rank === 0)
    throw new RangeError("swap: base must have at least one axis (features on the last axis), got a scalar");
  const width = base.shape[base.rank - 1];
  const batch = base.rank >= 2 ? base.shape[0] : null;
  const selection = featureSelection(width, batch, options, mode);

  if (mode === "collect") {
    if (source !== null)
      throw new TypeError("swap: collect takes no source (got one); it returns the selected features of base");
    return collect(base, selection);
  }
  if (source === null) throw new TypeError(`swap: ${mode} needs a source (got none)`);
  const s = broadcastSource(base, source);
  if (selection.kind === "shared" && selection.ids.length === 0) return base;
  // Every feature selected: where(all ones, value, base) would copy value bit for bit.
  if (mode !== "interchange" && selection.kind === "shared" && selection.ids === range(width))
    return mode === "add" ? add(base, s) : sub(base, s);
  const mask = selectionMask(selection, base.shape);
  const value = mode === "interchange" ? s : mode === "add" ? add(base, s) : sub(base, s);
  return where(mask, value, base);
}

function collect(base: Tensor, selection: FeatureSelection): Tensor {
  const last = base.rank - 1;
  if (selection.kind === "shared") {
    const ids = selection.ids;
    if (ids.every((v, i) => v === i)) return slice(base, last, 0, ids.length);
    return indexSelect(base, last, ids);
  }
  const counts = selection.ids.map((ids) => ids.length);
  const bad = counts.findIndex((c) => c !== counts[0]);
  if (bad >= 0) {
    throw new RangeError(
      `collect: every example must select the same number of features to stack them ` +
        `(example 0 selects ${counts[0]}, example ${bad} selects ${counts[bad]})`,
    );
  }
  const k = counts[0];
  const lead = base.shape.slice(0, last);
  const rowsPerExample = lead.slice(1).reduce((a, b) => a * b, 1);
  const index = new Int32Array(lead.reduce((a, b) => a * b, 1) * k);
  selection.ids.forEach((ids, e) => {
    for (let r = 0; r < rowsPerExample; r++) index.set(ids, (e * rowsPerExample + r) * k);
  });
  return gatherAt(base, last, intTensor(index, [...lead, k]));
}

function interchangeSelection(width: number, dim: number | readonly number[] | null, what: string): FeatureSelection {
  if (dim === null) return { kind: "shared", ids: range(width) };
  if (typeof dim === "number") {
    if (!Number.isInteger(dim) || dim < 0)
      throw new RangeError(
        `${what}: interchangeDim must be a non-negative integer or a list of feature indices, got ${dim}`,
      );
    return { kind: "shared", ids: range(Math.min(dim, width)) };
  }
  if (!Array.isArray(dim))
    throw new TypeError(
      `${what}: interchangeDim must be a number, a list of feature indices or null, got ${JSON.stringify(dim)}`,
    );
  for (const id of dim) checkFeature(id, width, () => `${what}: interchangeDim index ${id}`);
  return { kind: "shared", ids: [...dim] };
}

function normaliseSubspaces(
  subspaces: unknown,
  what: string,
): { kind: "shared"; ids: readonly number[] } | { kind: "perExample"; ids: readonly (readonly number[])[] } {
  if (isId(subspaces)) return { kind: "shared", ids: [subspaces] };
  const form = "subspaces must be one id, a list of ids for every example, or one list of ids per example";
  if (!Array.isArray(subspaces)) throw new TypeError(`${what}: ${form}; got ${preview(subspaces)}`);
  if (subspaces.length > 0 && isIdList(subspaces)) return { kind: "shared", ids: subspaces };
  if (everyRowIsIdList(subspaces)) {
    if (subspaces.length === 0) throw new RangeError(`${what}: ${form}; got an empty list (use null for no subspaces)`);
    return { kind: "perExample", ids: subspaces as number[][] };
  }
  throw new TypeError(`${what}: ${form}; got ${preview(subspaces)}`);
}

function isId(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v);
}

// Per call these run over one list per example.
function isIdList(v: unknown): v is number[] {
  if (!Array.isArray(v)) return false;
  for (const id of v) if (!isId(id)) return false;
  return true;
}

function everyRowIsIdList(rows: unknown[]): rows is number[][] {
  for (const row of rows) if (!isIdList(row)) return false;
  return true;
}

function checkPartition(partition: readonly (readonly number[])[], width: number, what: string): void {
  partition.forEach((block, b) => {
    for (const f of block) checkFeature(f, width, () => `${what}: subspace_partition block ${b} feature ${f}`);
  });
}

/** `label` names the id in the error; it is built only on failure, since subspaces list ids per example. */
function checkFeature(id: number, width: number, label: () => string): void {
  if (typeof id !== "number" || !Number.isInteger(id)) throw new TypeError(`${label()} is not an integer`);
  if (id < 0 || id >= width)
    throw new RangeError(`${label()} is out of range for a last axis of width ${width} (expected 0..${width - 1})`);
}

const firstFeatures = new Map<number, readonly number[]>();

/** 0..n−1, one frozen list per n: generation asks for every feature at every step of every layer. */
function range(n: number): readonly number[] {
  let ids = firstFeatures.get(n);
  if (ids === undefined) {
    ids = Object.freeze(Array.from({ length: n }, (_, i) => i));
    firstFeatures.set(n, ids);
  }
  return ids;
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function preview(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
