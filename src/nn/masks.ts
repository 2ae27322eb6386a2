/**
 * Attention masks and positions as HF builds them from a 0/1 attention mask: the additive mask
 * most families add to the scores, and GPT-2 / GPT-Neo's form of it. Those two apply their causal
 * (or local) `bias` buffer with torch.where, replacing masked scores by float32's lowest value,
 * then add the padding mask on top. For every query with at least one visible key this equals
 * adding `additiveMask`; the difference shows only in rows that see nothing (padding queries),
 * which `whereCausal` and `paddingMask` reproduce too.
 */
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";

/** float32's lowest finite value: HF's fill for masked attention scores. */
export const MASKED = -3.4028234663852886e38;

/**
 * Additive mask [B, 1, T, S] for T queries at the last T of S key positions: 0 where a query may
 * attend, MASKED where the key is in the future, is padding (attentionMask 0), or, with a
 * sliding window w, is w or more positions behind the query.
 */
export function additiveMask(
  attentionMask: IntTensor | null,
  batch: number,
  queries: number,
  keys: number,
  slidingWindow?: number,
): Tensor {
  if (
    attentionMask !== null &&
    (attentionMask.shape.length !== 2 || attentionMask.shape[0] !== batch || attentionMask.shape[1] !== keys)
  ) {
    throw new RangeError(
      `attention mask of shape [${attentionMask.shape.join(", ")}] ` +
        `does not match batch ${batch} and ${keys} key positions (expected [${batch}, ${keys}])`,
    );
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

/**
 * HF reads any non-zero mask value as "attend"; a 2 or a −1 is more likely a mistake
 * (ids passed as the mask) than a choice.
 */
export function checkMaskValues(attentionMask: IntTensor): void {
  const i = attentionMask.data.findIndex((v) => v !== 0 && v !== 1);
  if (i >= 0) {
    throw new RangeError(
      `attentionMask holds ${attentionMask.data[i]} at flat index ${i}; expected only 1 (a real token) and 0 (padding)`,
    );
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

/**
 * Scores [..., T, S] for the last T of S positions, kept where the key is at or before the query
 * and, with a window w, fewer than w positions behind it (HF: `bias ^ tril(bias, -w)`), MASKED
 * elsewhere.
 */
export function whereCausal(scores: Tensor, window?: number): Tensor {
  const [queries, keys] = scores.shape.slice(-2);
  if (window !== undefined && !(Number.isInteger(window) && window > 0)) {
    throw new RangeError(`whereCausal: window must be a positive integer, got ${window}`);
  }
  const keep = new Float32Array(queries * keys);
  const offset = keys - queries;
  for (let i = 0; i < queries; i++) {
    const q = i + offset;
    for (let j = 0; j < keys; j++) {
      if (j <= q && (window === undefined || q - j < window)) keep[i * keys + j] = 1;
    }
  }
  return tv.where(new Tensor(keep, [queries, keys]), scores, MASKED);
}

/** GPT-2's padding mask [B, 1, 1, S]: 0 at real keys, MASKED at padding ((1 − mask)·min in HF). */
export function paddingMask(attentionMask: IntTensor, batch: number, keys: number): Tensor {
  if (attentionMask.shape.length !== 2 || attentionMask.shape[0] !== batch || attentionMask.shape[1] !== keys) {
    throw new RangeError(
      `attention mask of shape [${attentionMask.shape.join(", ")}] ` +
        `does not match batch ${batch} and ${keys} key positions (expected [${batch}, ${keys}])`,
    );
  }
  const data = new Float32Array(batch * keys);
  attentionMask.data.forEach((m, i) => {
    if (m === 0) data[i] = MASKED;
  });
  return new Tensor(data, [batch, 1, 1, keys]);
}
