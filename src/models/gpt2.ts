/**
 * GPT-2 as HF's GPT2LMHeadModel (transformers 4.45, eager attention): token and learned position
 * embeddings, pre-LayerNorm blocks with a fused q|k|v Conv1D, causal attention masked by
 * torch.where with float32's lowest value plus an additive padding mask, a Conv1D MLP, a final
 * LayerNorm, and an output projection tied to the token embeddings. Everything but the attention
 * is the layout GPT-Neo shares (gpt2-layout.ts); this file holds GPT-2's attention and config.
 *
 * Module tree (= HF parameter names):
 *   transformer.{wte, wpe, drop, h.N.{ln_1, attn.{c_attn, c_proj, attn_dropout, resid_dropout},
 *   ln_2, mlp.{c_fc, act, c_proj, dropout}}, ln_f}, lm_head (weight = transformer.wte.weight)
 */
import { type KeyValueCache, splitHeads } from "../nn/attention.js";
import { paddingMask } from "../nn/masks.js";
import { Conv1D, Identity } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { quietSubmodules, recycleIntermediate } from "../nn/recycle.js";
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";
import { configBool, configInt, configNumber, configString, type HFConfig } from "./config.js";
import type { PassInputs } from "./decoder.js";
import { blockAndMlpSites, gptLayoutFamily, GPTLayoutLM, layerSite, type GPTLayoutSettings } from "./gpt2-layout.js";
import type { SiteMap } from "./sites.js";

/**
 * The fields of GPT2Config that shape the computation, with HF's defaults
 * (maxPositions: n_positions, intermediateSize: n_inner).
 */
export interface GPT2Settings extends GPTLayoutSettings {
  /** Divide scores by √(head dim). */
  readonly scaleAttnWeights: boolean;
  /** Also divide scores by layer index + 1. */
  readonly scaleByInverseLayer: boolean;
  /** HF's reorder_and_upcast_attn: one combined scale inside the q·kᵀ product, in float32. */
  readonly reorderAndUpcast: boolean;
}

export function gpt2Settings(config: HFConfig): GPT2Settings {
  if (configBool(config, "add_cross_attention", false)) {
    throw new RangeError(
      'config.json: "add_cross_attention": true is not supported (GPT-2 as an encoder-decoder); ' +
        "expected false or absent",
    );
  }
  const hiddenSize = configInt(config, ["n_embd", "hidden_size"], 768);
  const numHeads = configInt(config, ["n_head", "num_attention_heads"], 12);
  if (hiddenSize % numHeads !== 0)
    throw new RangeError(`config.json: "n_embd" (${hiddenSize}) must be divisible by "n_head" (${numHeads})`);
  return {
    vocabSize: configInt(config, "vocab_size", 50257),
    maxPositions: configInt(config, ["n_positions", "max_position_embeddings"], 1024),
    hiddenSize,
    numLayers: configInt(config, ["n_layer", "num_hidden_layers"], 12),
    numHeads,
    intermediateSize: configInt(config, "n_inner", 4 * hiddenSize),
    normEps: configNumber(config, "layer_norm_epsilon", 1e-5),
    activation: configString(config, "activation_function", "gelu_new"),
    scaleAttnWeights: configBool(config, "scale_attn_weights", true),
    scaleByInverseLayer: configBool(config, "scale_attn_by_inverse_layer_idx", false),
    reorderAndUpcast: configBool(config, "reorder_and_upcast_attn", false),
  };
}

/** What every block of one forward pass shares. */
export interface PassContext {
  cache: KeyValueCache | null;
  /** Additive padding mask [B, 1, 1, S], or null without an attention mask. */
  padding: Tensor | null;
}

export class GPT2Attention extends Module<Tensor, PassContext> {
  readonly c_attn: Conv1D;
  readonly c_proj: Conv1D;
  /** Where HF has dropout on the attention probabilities: pyvene's attention_weight site. */
  readonly attn_dropout: Identity;
  readonly resid_dropout: Identity;
  /** The factor inside the q·kᵀ product (HF's reorder_and_upcast_attn path), else 1. */
  private readonly alpha: number;
  /** HF's divisions of the scores, in order; the last one happens inside the masked softmax. */
  private readonly divisors: readonly number[];

  constructor(
    readonly s: GPT2Settings,
    readonly layer: number,
  ) {
    super();
    this.c_attn = this.module("c_attn", new Conv1D(s.hiddenSize, 3 * s.hiddenSize));
    this.c_proj = this.module("c_proj", new Conv1D(s.hiddenSize, s.hiddenSize));
    this.attn_dropout = this.module("attn_dropout", new Identity());
    this.resid_dropout = this.module("resid_dropout", new Identity());
    // HF divides by a float32 √d, then by layer+1; the upcast path multiplies once by the combined factor.
    const headDim = s.hiddenSize / s.numHeads;
    if (s.reorderAndUpcast) {
      this.alpha = (s.scaleAttnWeights ? 1 / Math.sqrt(headDim) : 1) / (s.scaleByInverseLayer ? layer + 1 : 1);
      this.divisors = [];
    } else {
      this.alpha = 1;
      this.divisors = [
        ...(s.scaleAttnWeights ? [Math.sqrt(headDim)] : []),
        ...(s.scaleByInverseLayer ? [layer + 1] : []),
      ];
    }
  }

  /**
   * Queries, keys and values are read in place from c_attn's q|k|v output (or, with a cache, keys
   * and values from it), so no head is copied on the way to the two products.
   */
  protected forward(x: Tensor, { cache, padding }: PassContext): Tensor {
    const width = this.s.hiddenSize;
    const heads = this.s.numHeads;
    const quiet = quietSubmodules(this, x);
    const qkv = this.c_attn.call(x);
    let keys = tv.packedHeads(qkv, heads, width, width);
    let values = tv.packedHeads(qkv, heads, 2 * width, width);
    if (cache) {
      const block = (part: number) => splitHeads(tv.slice(qkv, -1, part * width, (part + 1) * width), heads);
      const { key, value } = cache.update(this.layer, block(1), block(2));
      keys = tv.stackedHeads(key);
      values = tv.stackedHeads(value);
    }
    let scores = tv.attentionScores(tv.packedHeads(qkv, heads, 0, width), keys, this.alpha);
    for (const divisor of this.divisors.slice(0, -1)) scores = tv.div(scores, divisor);
    const probs = this.attn_dropout.call(tv.attentionSoftmax(scores, { divisor: this.divisors.at(-1) ?? 1, padding }));
    const context = tv.attentionContext(probs, values);
    const output = this.c_proj.call(context);
    recycleIntermediate(scores, probs, quiet);
    recycleIntermediate(probs, context, quiet, this.attn_dropout);
    recycleIntermediate(qkv, context, quiet, this.c_attn);
    recycleIntermediate(context, output, quiet, this.c_proj);
    return this.resid_dropout.call(output);
  }
}

/** GPT-2's parts in the layout: fused-qkv attention and Conv1D MLP projections. */
export const GPT2_PARTS = { positionsField: "n_positions", attention: GPT2Attention, projection: Conv1D } as const;

/** GPT-2's pass context: a padding-only additive mask (the causal one is applied in the attention). */
export function gpt2PassContext({ attentionMask, batch, length, past, cache }: PassInputs): PassContext {
  return { cache, padding: attentionMask ? paddingMask(attentionMask, batch, past + length) : null };
}

export class GPT2LMHeadModel extends GPTLayoutLM<GPT2Settings, GPT2Attention, PassContext, Conv1D> {
  readonly family = "gpt2";

  constructor(config: HFConfig) {
    super(config, gpt2Settings(config), gpt2Sites, GPT2_PARTS);
  }

  protected passContext(pass: PassInputs): PassContext {
    return gpt2PassContext(pass);
  }
}

/** pyvene's GPT2LMHeadModel map (spec §7.1/§7.2): paths under `transformer.`, dims from the config. */
export function gpt2Sites(s: GPT2Settings): SiteMap {
  const d = s.hiddenSize;
  const head = d / s.numHeads;
  const heads = s.numHeads;
  const qkv = (index: number) => ({ fusedPart: { index, of: 3 } });
  return {
    ...blockAndMlpSites(s),
    attention_value_output: layerSite(".attn.c_proj", "input", d),
    head_attention_value_output: layerSite(".attn.c_proj", "input", head, { heads }),
    attention_weight: layerSite(".attn.attn_dropout", "input", s.maxPositions),
    attention_output: layerSite(".attn.resid_dropout", "output", d),
    attention_input: layerSite(".attn", "input", d),
    query_output: layerSite(".attn.c_attn", "output", d, qkv(0)),
    key_output: layerSite(".attn.c_attn", "output", d, qkv(1)),
    value_output: layerSite(".attn.c_attn", "output", d, qkv(2)),
    head_query_output: layerSite(".attn.c_attn", "output", head, { ...qkv(0), heads }),
    head_key_output: layerSite(".attn.c_attn", "output", head, { ...qkv(1), heads }),
    head_value_output: layerSite(".attn.c_attn", "output", head, { ...qkv(2), heads }),
  };
}

/** HF's causal `attn.bias` / `attn.masked_bias` buffers, present in older checkpoints such as openai-community/gpt2. */
const ATTENTION_BUFFER = /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/;

/**
 * Reads GPT2LMHeadModel checkpoints, and GPT2Model ones
 * (no `transformer.` prefix, as openai-community/gpt2 stores them).
 */
export const gpt2Family = gptLayoutFamily(
  "gpt2",
  ["GPT2LMHeadModel", "GPT2Model"],
  (config) => new GPT2LMHeadModel(config),
  ATTENTION_BUFFER,
);
