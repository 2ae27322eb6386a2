/**
 * Values of causal-model variables: what they may be, when two are the same, how they read as
 * text and as numbers. Values are compared by structure (pyvene's tutorials compare vectors with
 * `np.array_equal` inside their functions; tsvene does it wherever the model itself compares).
 */

export type CausalValue =
  | boolean
  | number
  | string
  | null
  | readonly CausalValue[]
  | { readonly [key: string]: CausalValue };

/** A (partial or total) assignment of values to variables, keyed by variable name. */
export type Setting = Record<string, CausalValue>;

/** Structural equality: primitives by `Object.is` (so NaN equals NaN), arrays and objects entry by entry. */
export function sameValue(a: CausalValue, b: CausalValue): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => sameValue(x, b[i]));
  }
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  const keys = Object.keys(a);
  const other = b as { readonly [key: string]: CausalValue };
  const own = a as { readonly [key: string]: CausalValue };
  return (
    keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(other, k) && sameValue(own[k], other[k]))
  );
}

export function formatValue(value: CausalValue): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * The flat numbers of a value, for turning settings into tensors: a boolean is 0 or 1, a number
 * itself, an array its entries in order (nested arrays flattened). `variable` names the culprit.
 */
export function valueToNumbers(value: CausalValue, variable: string): number[] {
  if (typeof value === "number") return [value];
  if (typeof value === "boolean") return [value ? 1 : 0];
  if (Array.isArray(value)) return value.flatMap((v: CausalValue) => valueToNumbers(v, variable));
  throw new TypeError(
    `CausalModel: value ${formatValue(value)} of variable "${variable}" cannot become a tensor ` +
      "(expected a number, a boolean or an array of them); pass inputFunction/outputFunction",
  );
}
