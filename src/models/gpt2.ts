/**
 * GPT-2 as HF's GPT2LMHeadModel (transformers 4.45, eager attention): token and learned position
 * embeddings, pre-LayerNorm blocks with a fused q|k|v Conv1D, causal attention masked by
 * torch.where with float32's lowest value plus an additive padding mask, a Conv1D MLP, a final
 * LayerNorm, and an output projection tied to the token embeddings.
 *
 * Module tree (= HF parameter names):
 *   transformer.{wte, wpe, drop, h.N.{ln_1, attn.{c_attn, c_proj, attn_dropout, resid_dropout},
 *   ln_2, mlp.{c_fc, act, c_proj, dropout}}, ln_f}, lm_head (weight = transformer.wte.weight)
 */
import { KeyValueCache, positionIds, splitHeads, mergeHeads } from "../nn/attention.js";
import { paddingMask, whereCausal } from "../nn/causal.js";
import { Activation, Conv1D, Embedding, Identity, LayerNorm } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { TiedLinear } from "../nn/tied.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import { configBool, configInt, configNumber, configString, type HFConfig } from "./config.js";
import { inputShape, PretrainedModel, type ModelFamily, type ModelInputs, type ModelOutput } from "./model.js";
import type { Site, SiteMap } from "./sites.js";

/** The fields of GPT2Config that shape the computation, with HF's defaults. */
export interface GPT2Settings {
  vocabSize: number;
  /** n_positions: the longest sequence (learned position table). */
  positions: number;
  dim: number;
  layers: number;
  heads: number;
  /** MLP width: n_inner, or 4·n_embd when null. */
  inner: number;
  eps: number;
  activation: string;
  /** Divide scores by √(head dim). */
  scaleAttnWeights: boolean;
  /** Also divide scores by layer index + 1. */
  scaleByInverseLayer: boolean;
  /** HF's reorder_and_upcast_attn: one combined scale inside the q·kᵀ product, in float32. */
  reorderAndUpcast: boolean;
}

export function gpt2Settings(config: HFConfig): GPT2Settings {
  if (configBool(config, "add_cross_attention", false)) {
    throw new RangeError('config.json: "add_cross_attention": true is not supported (GPT-2 as an encoder-decoder); expected false or absent');
  }
  const dim = configInt(config, ["n_embd", "hidden_size"], 768);
  const heads = configInt(config, ["n_head", "num_attention_heads"], 12);
  if (dim % heads !== 0) throw new RangeError(`config.json: "n_embd" (${dim}) must be divisible by "n_head" (${heads})`);
  return {
    vocabSize: configInt(config, "vocab_size", 50257),
    positions: configInt(config, ["n_positions", "max_position_embeddings"], 1024),
    dim,
    layers: configInt(config, ["n_layer", "num_hidden_layers"], 12),
    heads,
    inner: configInt(config, "n_inner", 4 * dim),
    eps: configNumber(config, "layer_norm_epsilon", 1e-5),
    activation: configString(config, "activation_function", "gelu_new"),
    scaleAttnWeights: configBool(config, "scale_attn_weights", true),
    scaleByInverseLayer: configBool(config, "scale_attn_by_inverse_layer_idx", false),
    reorderAndUpcast: configBool(config, "reorder_and_upcast_attn", false),
  };
}

/** What every block of one forward pass shares. */
interface PassContext {
  cache: KeyValueCache | null;
  /** Additive padding mask [B, 1, 1, S], or null without an attention mask. */
  padding: Tensor | null;
}

class GPT2Attention extends Module<Tensor, PassContext> {
  readonly c_attn: Conv1D;
  readonly c_proj: Conv1D;
  /** Where HF has dropout on the attention probabilities: pyvene's attention_weight site. */
  readonly attn_dropout: Identity;
  readonly resid_dropout: Identity;
  private readonly scale: (scores: Tensor) => Tensor;

  constructor(readonly s: GPT2Settings, readonly layer: number) {
    super();
    this.c_attn = this.module("c_attn", new Conv1D(s.dim, 3 * s.dim));
    this.c_proj = this.module("c_proj", new Conv1D(s.dim, s.dim));
    this.attn_dropout = this.module("attn_dropout", new Identity());
    this.resid_dropout = this.module("resid_dropout", new Identity());
    // HF divides by a float32 √d, then by layer+1; the upcast path multiplies once by the combined factor.
    const headDim = s.dim / s.heads;
    if (s.reorderAndUpcast) {
      const factor = (s.scaleAttnWeights ? 1 / Math.sqrt(headDim) : 1) / (s.scaleByInverseLayer ? layer + 1 : 1);
      this.scale = (scores) => (factor === 1 ? scores : tv.mul(scores, factor));
    } else {
      this.scale = (scores) => {
        const scaled = s.scaleAttnWeights ? tv.div(scores, Math.sqrt(headDim)) : scores;
        return s.scaleByInverseLayer ? tv.div(scaled, layer + 1) : scaled;
      };
    }
  }

  protected forward(x: Tensor, { cache, padding }: PassContext): Tensor {
    const [q, kNew, vNew] = tv.split(this.c_attn.call(x), this.s.dim, -1).map((t) => splitHeads(t, this.s.heads));
    const { key: k, value: v } = cache ? cache.update(this.layer, kNew, vNew) : { key: kNew, value: vNew };
    let scores = whereCausal(this.scale(tv.matmul(q, tv.transpose(k, -1, -2))));
    if (padding) scores = tv.add(scores, padding);
    const probs = this.attn_dropout.call(tv.softmax(scores, -1));
    return this.resid_dropout.call(this.c_proj.call(mergeHeads(tv.matmul(probs, v))));
  }
}

class GPT2MLP extends Module {
  readonly c_fc: Conv1D;
  readonly c_proj: Conv1D;
  readonly act: Activation;
  readonly dropout: Identity;

  constructor(s: GPT2Settings) {
    super();
    this.c_fc = this.module("c_fc", new Conv1D(s.dim, s.inner));
    this.c_proj = this.module("c_proj", new Conv1D(s.inner, s.dim));
    this.act = this.module("act", new Activation(s.activation));
    this.dropout = this.module("dropout", new Identity());
  }

  protected forward(x: Tensor): Tensor {
    return this.dropout.call(this.c_proj.call(this.act.call(this.c_fc.call(x))));
  }
}

class GPT2Block extends Module<Tensor, PassContext> {
  readonly ln_1: LayerNorm;
  readonly attn: GPT2Attention;
  readonly ln_2: LayerNorm;
  readonly mlp: GPT2MLP;

  constructor(s: GPT2Settings, layer: number) {
    super();
    this.ln_1 = this.module("ln_1", new LayerNorm(s.dim, s.eps));
    this.attn = this.module("attn", new GPT2Attention(s, layer));
    this.ln_2 = this.module("ln_2", new LayerNorm(s.dim, s.eps));
    this.mlp = this.module("mlp", new GPT2MLP(s));
  }

  protected forward(x: Tensor, pass: PassContext): Tensor {
    const h = tv.add(x, this.attn.call(this.ln_1.call(x), pass));
    return tv.add(h, this.mlp.call(this.ln_2.call(h)));
  }
}

/** HF's GPT2Model. Its input is the model inputs; its output the final normalised hidden state. */
export class GPT2Model extends Module<ModelInputs, Tensor[] | null> {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Identity;
  readonly h: ModuleList<GPT2Block>;
  readonly ln_f: LayerNorm;

  constructor(readonly s: GPT2Settings) {
    super();
    this.wte = this.module("wte", new Embedding(s.vocabSize, s.dim));
    this.wpe = this.module("wpe", new Embedding(s.positions, s.dim));
    this.drop = this.module("drop", new Identity());
    this.h = this.module("h", new ModuleList(Array.from({ length: s.layers }, (_, i) => new GPT2Block(s, i))));
    this.ln_f = this.module("ln_f", new LayerNorm(s.dim, s.eps));
  }

  /** With `hiddenStates` an array, HF's hidden_states are appended to it. */
  protected forward(inputs: ModelInputs, hiddenStates: Tensor[] | null): Tensor {
    const { batch, length } = inputShape(inputs);
    const cache = inputs.cache ?? null;
    const past = cache?.length ?? 0;
    const positions = inputs.positionIds ?? positionIds(null, batch, length, past);
    checkIds(positions, [batch, length], this.s.positions, "positionIds", "n_positions");
    if (inputs.inputIds) checkIds(inputs.inputIds, [batch, length], this.s.vocabSize, "inputIds", "vocab_size");
    const mask = inputs.attentionMask ?? null;
    const pass: PassContext = { cache, padding: mask ? paddingMask(mask, batch, past + length) : null };

    const tokens = inputs.inputsEmbeds ?? this.wte.call(inputs.inputIds!);
    let x = this.drop.call(tv.add(tokens, this.wpe.call(positions)));
    for (const block of this.h.items) {
      hiddenStates?.push(x);
      x = block.call(x, pass);
    }
    x = this.ln_f.call(x);
    hiddenStates?.push(x);
    return x;
  }
}

export class GPT2LMHeadModel extends PretrainedModel {
  readonly family = "gpt2";
  readonly numLayers: number;
  readonly sites: SiteMap;
  readonly settings: GPT2Settings;
  readonly transformer: GPT2Model;
  readonly lm_head: TiedLinear;

  constructor(readonly config: HFConfig) {
    super();
    this.settings = gpt2Settings(config);
    this.numLayers = this.settings.layers;
    this.sites = gpt2Sites(this.settings);
    this.transformer = this.module("transformer", new GPT2Model(this.settings));
    this.lm_head = this.module("lm_head", new TiedLinear(this.transformer.wte.weight));
  }

  run(inputs: ModelInputs): ModelOutput {
    const hiddenStates = inputs.outputHiddenStates ? [] : null;
    const logits = this.lm_head.call(this.transformer.call(inputs, hiddenStates));
    return hiddenStates ? { logits, hiddenStates } : { logits };
  }

  override newCache(): KeyValueCache {
    return new KeyValueCache(this.numLayers);
  }
}

/** pyvene's GPT2LMHeadModel map (spec §7.1/§7.2): paths under `transformer.`, dims from the config. */
export function gpt2Sites(s: GPT2Settings): SiteMap {
  const head = s.dim / s.heads;
  const at = (path: string, hook: Site["hook"], dim: number, view: Partial<Site> = {}) =>
    (layer: number): Site => ({ module: `transformer.h.${layer}${path}`, hook, dim, ...view });
  const qkv = (index: number) => ({ fusedPart: { index, of: 3 } });
  return {
    block_input: at("", "input", s.dim),
    block_output: at("", "output", s.dim),
    mlp_activation: at(".mlp.act", "output", s.inner),
    mlp_output: at(".mlp", "output", s.dim),
    mlp_input: at(".mlp", "input", s.dim),
    attention_value_output: at(".attn.c_proj", "input", s.dim),
    head_attention_value_output: at(".attn.c_proj", "input", head, { heads: s.heads }),
    attention_weight: at(".attn.attn_dropout", "input", s.positions),
    attention_output: at(".attn.resid_dropout", "output", s.dim),
    attention_input: at(".attn", "input", s.dim),
    query_output: at(".attn.c_attn", "output", s.dim, qkv(0)),
    key_output: at(".attn.c_attn", "output", s.dim, qkv(1)),
    value_output: at(".attn.c_attn", "output", s.dim, qkv(2)),
    head_query_output: at(".attn.c_attn", "output", head, { ...qkv(0), heads: s.heads }),
    head_key_output: at(".attn.c_attn", "output", head, { ...qkv(1), heads: s.heads }),
    head_value_output: at(".attn.c_attn", "output", head, { ...qkv(2), heads: s.heads }),
  };
}

/** Ids or positions of shape [B, T], each in 0..limit−1, or an error naming the config field that bounds them. */
export function checkIds(ids: IntTensor, shape: readonly number[], limit: number, what: string, field: string): void {
  if (ids.shape.length !== 2 || ids.shape[0] !== shape[0] || ids.shape[1] !== shape[1]) {
    throw new RangeError(`model inputs: ${what} must be [${shape.join(", ")}], got [${ids.shape.join(", ")}]`);
  }
  const bad = ids.data.find((i) => i < 0 || i >= limit);
  if (bad !== undefined) throw new RangeError(`model inputs: ${what} contains ${bad}, outside 0..${limit - 1} (${field} = ${limit})`);
}

/** HF's causal `attn.bias` / `attn.masked_bias` buffers, present in older checkpoints such as openai-community/gpt2. */
const ATTENTION_BUFFER = /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/;

export const gpt2Family: ModelFamily = {
  name: "gpt2",
  modelTypes: ["gpt2"],
  architectures: ["GPT2LMHeadModel", "GPT2Model"],
  create: (config) => new GPT2LMHeadModel(config),
  /** Accepts GPT2LMHeadModel keys, and GPT2Model ones (no `transformer.` prefix, as openai-community/gpt2 stores them). */
  adaptCheckpoint(tensors) {
    const out = new Map<string, Tensor | IntTensor>();
    for (const [name, t] of tensors) {
      if (ATTENTION_BUFFER.test(name)) continue;
      out.set(name.startsWith("transformer.") || name.startsWith("lm_head.") ? name : `transformer.${name}`, t);
    }
    return out;
  },
};
