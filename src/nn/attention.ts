/**
 * Attention pieces shared by the families: head reshaping, additive masks as HF builds them,
 * grouped-query key/value expansion, and a per-layer key/value cache.
 */
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";

/** float32's lowest finite value: HF's fill for masked attention scores. */
export const MASKED = -3.4028234663852886e38;

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
 * Additive mask [B, 1, T, S] for T queries at the last T of S key positions: 0 where a query may
 * attend, MASKED where the key is in the future, is padding (attentionMask 0), or, with a
 * sliding window w, is w or more positions behind the query.
 */
export function additiveMask(attentionMask: IntTensor | null, batch: number, queries: number, keys: number, slidingWindow?: number): Tensor {
  if (attentionMask !== null && (attentionMask.shape.length !== 2 || attentionMask.shape[0] !== batch || attentionMask.shape[1] !== keys)) {
    throw new RangeError(`attention mask of shape [${attentionMask.shape.join(", ")}] does not match batch ${batch} and ${keys} key positions (expected [${batch}, ${keys}])`);
  }
  const data = new Float32Array(batch * queries * keys);
  const offset = keys - queries;
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < queries; i++) {
      const q = i + offset;
      for (let j = 0; j < keys; j++) {
        const future = j > q;
        const outside = slidingWindow !== undefined && q - j >= slidingWindow;
        const padding = attentionMask !== null && attentionMask.data[b * keys + j] === 0;
        if (future || outside || padding) data[(b * queries + i) * keys + j] = MASKED;
      }
    }
  }
  return new Tensor(data, [batch, 1, queries, keys]);
}

/** HF reads any non-zero mask value as "attend"; a 2 or a −1 is more likely a mistake (ids passed as the mask) than a choice. */
export function checkMaskValues(attentionMask: IntTensor): void {
  const i = attentionMask.data.findIndex((v) => v !== 0 && v !== 1);
  if (i >= 0) {
    throw new RangeError(`attentionMask holds ${attentionMask.data[i]} at flat index ${i}; expected only 1 (a real token) and 0 (padding)`);
  }
}

/**
 * Position ids as HF computes them for generation: with an attention mask, the cumulative count
 * of real tokens minus one (padding positions get 1, as HF fills them); without one, past..past+T-1.
 */
export function positionIds(attentionMask: IntTensor | null, batch: number, length: number, past = 0): IntTensor {
  const ids = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    if (attentionMask === null) {
      for (let t = 0; t < length; t++) ids[b * length + t] = past + t;
      continue;
    }
    const total = attentionMask.shape[1];
    let count = 0;
    for (let t = 0; t < total; t++) {
      const real = attentionMask.data[b * total + t] !== 0;
      if (real) count++;
      if (t >= total - length) ids[b * length + t - (total - length)] = real ? count - 1 : 1;
    }
  }
  return new IntTensor(ids, [batch, length]);
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
