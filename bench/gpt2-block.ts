/**
 * One GPT-2-small block (pre-LN, fused QKV, 12-head causal attention, tanh-GELU MLP of 3072,
 * residuals) written with the tensor ops, applied to x·R so that a gradient can be taken w.r.t.
 * the 768×768 matrix R while the block's own weights stay frozen.
 */
import * as tv from "../src/index.js";

export const D_MODEL = 768;
export const N_HEADS = 12;
export const D_MLP = 3072;

export interface BlockWeights {
  ln1Weight: tv.Tensor;
  ln1Bias: tv.Tensor;
  attnWeight: tv.Tensor;
  attnBias: tv.Tensor;
  projWeight: tv.Tensor;
  projBias: tv.Tensor;
  ln2Weight: tv.Tensor;
  ln2Bias: tv.Tensor;
  fcWeight: tv.Tensor;
  fcBias: tv.Tensor;
  fcProjWeight: tv.Tensor;
  fcProjBias: tv.Tensor;
}

export function randomBlock(generator: tv.Generator): BlockWeights {
  const w = (shape: number[]) => tv.randn(shape, { std: 0.02, generator });
  return {
    ln1Weight: tv.add(w([D_MODEL]), 1),
    ln1Bias: w([D_MODEL]),
    attnWeight: w([D_MODEL, 3 * D_MODEL]),
    attnBias: w([3 * D_MODEL]),
    projWeight: w([D_MODEL, D_MODEL]),
    projBias: w([D_MODEL]),
    ln2Weight: tv.add(w([D_MODEL]), 1),
    ln2Bias: w([D_MODEL]),
    fcWeight: w([D_MODEL, D_MLP]),
    fcBias: w([D_MLP]),
    fcProjWeight: w([D_MLP, D_MODEL]),
    fcProjBias: w([D_MODEL]),
  };
}

/** 0 on and below the diagonal, float32's lowest value above it (HF's additive causal mask). */
export function causalMask(seq: number): tv.Tensor {
  const data = new Float32Array(seq * seq);
  for (let i = 0; i < seq; i++) for (let j = i + 1; j < seq; j++) data[i * seq + j] = -3.4028234663852886e38;
  return new tv.Tensor(data, [seq, seq]);
}

/** The fused projection [B, T, 3·D] as q, k, v of shape [B, heads, T, head dim], with one permute. */
function splitHeads(qkv: tv.Tensor, batch: number, seq: number): tv.Tensor[] {
  const perHead = tv.reshape(qkv, [batch, seq, 3, N_HEADS, D_MODEL / N_HEADS]);
  return tv.split(tv.permute(perHead, [2, 0, 3, 1, 4]), 1, 0).map((t) => tv.squeeze(t, 0));
}

export function block(x: tv.Tensor, w: BlockWeights, mask: tv.Tensor): tv.Tensor {
  const [batch, seq] = x.shape;
  const a = tv.layerNorm(x, w.ln1Weight, w.ln1Bias);
  const [q, k, v] = splitHeads(tv.linear(a, w.attnWeight, w.attnBias, "in_out"), batch, seq);
  const scores = tv.add(tv.mul(tv.matmul(q, tv.transpose(k)), 1 / Math.sqrt(D_MODEL / N_HEADS)), mask);
  const mixed = tv.matmul(tv.softmax(scores), v);
  const merged = tv.reshape(tv.permute(mixed, [0, 2, 1, 3]), [batch, seq, D_MODEL]);
  const h = tv.add(x, tv.linear(merged, w.projWeight, w.projBias, "in_out"));
  const m = tv.layerNorm(h, w.ln2Weight, w.ln2Bias);
  const f = tv.gelu(tv.linear(m, w.fcWeight, w.fcBias, "in_out"), "tanh");
  return tv.add(h, tv.linear(f, w.fcProjWeight, w.fcProjBias, "in_out"));
}
