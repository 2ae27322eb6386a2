/**
 * Masking as GPT-2 and GPT-Neo do it in HF 4.45: their causal (or local) `bias` buffer is applied
 * with torch.where, replacing masked scores by float32's lowest value, and the padding mask is
 * then added on top. For every query with at least one visible key this equals adding
 * `additiveMask`; the difference shows only in rows that see nothing (padding queries), which
 * these helpers reproduce too.
 */
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import { MASKED } from "./attention.js";

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
    throw new RangeError(`attention mask of shape [${attentionMask.shape.join(", ")}] does not match batch ${batch} and ${keys} key positions (expected [${batch}, ${keys}])`);
  }
  const data = new Float32Array(batch * keys);
  attentionMask.data.forEach((m, i) => {
    if (m === 0) data[i] = MASKED;
  });
  return new Tensor(data, [batch, 1, 1, keys]);
}
