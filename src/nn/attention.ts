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

/**
 * Keys and values seen so far, per layer, each [B, Hkv, S, d]. A frozen cache (`prefix`) is read
 * but never extended: a run resumed at a later block attends to it without changing it.
 */
export class KeyValueCache {
  private readonly keys: (Tensor | null)[];
  private readonly values: (Tensor | null)[];

  constructor(
    readonly layers: number,
    readonly frozen = false,
  ) {
    this.keys = new Array<Tensor | null>(layers).fill(null);
    this.values = new Array<Tensor | null>(layers).fill(null);
  }

  /**
   * A frozen cache of this one's first `length` positions at every layer: the unchanged prefix
   * that runs differing only from position `length` on share. Its one row serves every row of a batch.
   */
  prefix(length: number): KeyValueCache {
    if (this.keys.some((k) => k === null) || this.keys[0]!.shape[0] !== 1)
      throw new RangeError("KeyValueCache.prefix: the cache must hold one row at every layer");
    if (!Number.isInteger(length) || length < 1 || length > this.length)
      throw new RangeError(`KeyValueCache.prefix: length must be in 1..${this.length}, got ${length}`);
    const frozen = new KeyValueCache(this.layers, true);
    for (let l = 0; l < this.layers; l++) {
      frozen.keys[l] = tv.slice(this.keys[l]!, 2, 0, length);
      frozen.values[l] = tv.slice(this.values[l]!, 2, 0, length);
    }
    return frozen;
  }

  /** Number of positions cached (those of layer 0). */
  get length(): number {
    return this.keys[0]?.shape[2] ?? 0;
  }

  /** Appends this step's keys and values for a layer (a frozen cache keeps none) and returns the full ones. */
  update(layer: number, key: Tensor, value: Tensor): { key: Tensor; value: Tensor } {
    const k = this.keys[layer];
    const v = this.values[layer];
    if (this.frozen) return { key: joinRows(k!, key), value: joinRows(v!, value) };
    const fullKey = k === null ? key : tv.concat([k, key], 2);
    const fullValue = v === null ? value : tv.concat([v, value], 2);
    this.keys[layer] = fullKey;
    this.values[layer] = fullValue;
    return { key: fullKey, value: fullValue };
  }
}

/** A one-row prefix [1, H, S, d] before each row's new positions [B, H, T, d]. */
function joinRows(prefix: Tensor, added: Tensor): Tensor {
  return tv.concat([tv.expand(prefix, [added.shape[0], ...prefix.shape.slice(1)]), added], 2);
}
