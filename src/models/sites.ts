/**
 * Where pyvene's components live in a model: a module path, whether the value is the module's
 * input (pre-hook) or output (post-hook), and an optional view of that value: one third of a
 * fused q|k|v projection, and/or split into attention heads [B, H, T, d].
 */

export interface Site {
  /** Dotted module path from the model root, as in HF parameter names (`transformer.h.3.attn.c_attn`). */
  readonly module: string;
  readonly hook: "input" | "output";
  /** Take part `index` of the last dimension cut into `of` equal parts (pyvene's split_three). */
  readonly fusedPart?: { readonly index: number; readonly of: number };
  /** Split the last dimension into this many heads, giving [B, H, T, d] (pyvene's split_head_and_permute). */
  readonly heads?: number;
  /** The module runs once per time step of a recurrent model: locations name steps (unit "t"). */
  readonly recurrent?: boolean;
  /** Width of the component per unit: the hidden size, or the head dimension for head components. */
  readonly dim: number;
}

/** A family's sites: component name → the site at a layer. */
export type SiteMap = Readonly<Record<string, (layer: number) => Site>>;

/**
 * A family's site factory for blocks under `prefix` (e.g. "model.layers"): the site of the module
 * at `path` inside block l, read at its input or output, `dim` wide, split into `heads` when given.
 */
export function layerSites(prefix: string) {
  return (path: string, hook: Site["hook"], dim: number, heads?: number) =>
    (layer: number): Site => {
      const module = `${prefix}.${layer}${path}`;
      return heads === undefined ? { module, hook, dim } : { module, hook, dim, heads };
    };
}
