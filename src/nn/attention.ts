/**
 * Attention pieces shared by the families: head reshaping, grouped-query key/value expansion, and
 * a per-layer key/value cache. Masks and positions are in masks.ts.
 */
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";

/** [B, T, H·d] → [B, H, T, d]. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, t, width] = x.shape;
  return tv.permute(tv.reshape(x, [b, t, heads, width / heads]), [0, 2, 1, 3]);
}

/** [B, H, T, d] → [B, T, H·d]. */
export function mergeHeads(x: Tensor): Tensor {
  const [b, h, t, d] = x.shape;
  return tv.reshape(tv.permute(x, [0, 2, 1, 3]), [b, t, h * d]);
}

/** [B, Hkv, S, d] → [B, Hkv·groups, S, d], each key/value head serving `groups` query heads. */
export function repeatKeyValue(x: Tensor, groups: number): Tensor {
  if (groups === 1) return x;
  const [b, h, s, d] = x.shape;
  return tv.reshape(tv.expand(tv.unsqueeze(x, 2), [b, h, groups, s, d]), [b, h * groups, s, d]);
}

/** Keys and values seen so far, per layer, each [B, Hkv, S, d]. */
export class KeyValueCache {
  private readonly keys: (Tensor | null)[];
  private readonly values: (Tensor | null)[];

  constructor(readonly layers: number) {
    this.keys = new Array<Tensor | null>(layers).fill(null);
    this.values = new Array<Tensor | null>(layers).fill(null);
  }

  /** Number of positions cached (those of layer 0). */
  get length(): number {
    return this.keys[0]?.shape[2] ?? 0;
  }

  /** Appends this step's keys and values for a layer and returns the full ones. */
  update(layer: number, key: Tensor, value: Tensor): { key: Tensor; value: Tensor } {
    const k = this.keys[layer];
    const v = this.values[layer];
    const fullKey = k === null ? key : tv.concat([k, key], 2);
    const fullValue = v === null ? value : tv.concat([v, value], 2);
    this.keys[layer] = fullKey;
    this.values[layer] = fullValue;
    return { key: fullKey, value: fullValue };
  }
}
