/**
 * GPT-NeoX (Pythia, GPT-NeoX-20B) as HF transformers 4.45's GPTNeoXForCausalLM: a fused
 * query_key_value projection laid out head by head ([q|k|v] per head), rotary embeddings on the
 * first rotary_ndims features of each head, and the parallel residual
 * x + attn(ln1 x) + mlp(ln2 x) (or the sequential form when use_parallel_residual is false).
 * The run is the decoder base's (decoder.ts).
 *
 * Module tree (= HF parameter names):
 *   gpt_neox.{embed_in, layers.N.{input_layernorm, post_attention_layernorm,
 *   attention.{query_key_value, dense}, mlp.{dense_h_to_4h, act, dense_4h_to_h}}, final_layer_norm},
 *   embed_out
 */
import { Activation, LayerNorm, Linear, Embedding } from "../nn/layers.js";
import { Container, Module, ModuleList } from "../nn/module.js";
import { TiedLinear } from "../nn/tied.js";
import { type KeyValueCache, mergeHeads, splitHeads } from "../nn/attention.js";
import { additiveMask } from "../nn/masks.js";
import { applyRotary, ropeInverseFrequencies, rotaryTablesFromFrequencies } from "../nn/rope.js";
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";
import { configBool, configInt, configNumber, configString, type HFConfig } from "./config.js";
import { DecoderModel, type DecoderSettings, type PassInputs } from "./decoder.js";
import type { ModelFamily } from "./model.js";
import { layerSites, type SiteMap } from "./sites.js";

export interface GPTNeoXSettings extends DecoderSettings {
  readonly numHeads: number;
  readonly intermediateSize: number;
  /** Rotary features per head: int(head_size · rotary_pct). */
  readonly rotaryNdims: number;
  readonly rotaryBase: number;
  readonly normEps: number;
  readonly activation: string;
  readonly parallelResidual: boolean;
  readonly attentionBias: boolean;
  readonly tieWordEmbeddings: boolean;
}

/** The model's shape from an HF GPTNeoXConfig, with HF's defaults where a field is optional. */
export function gptNeoXSettings(config: HFConfig): GPTNeoXSettings {
  const hiddenSize = configInt(config, "hidden_size");
  const numHeads = configInt(config, "num_attention_heads");
  if (hiddenSize % numHeads !== 0) {
    throw new RangeError(`config.json: hidden_size ${hiddenSize} must be divisible by num_attention_heads ${numHeads}`);
  }
  if (config.rope_scaling !== undefined && config.rope_scaling !== null) {
    throw new RangeError(
      `config.json: rope_scaling ${JSON.stringify(config.rope_scaling)} is not supported for gpt_neox (expected null)`,
    );
  }
  // HF 4.45 sets rope_theta/partial_rotary_factor from rotary_emb_base/rotary_pct, so those win.
  const rotaryPct = configNumber(config, ["rotary_pct", "partial_rotary_factor"], 0.25);
  if (!(rotaryPct >= 0 && rotaryPct <= 1))
    throw new RangeError(`config.json: "rotary_pct" must be in [0, 1], got ${rotaryPct}`);
  const rotaryNdims = Math.trunc((hiddenSize / numHeads) * rotaryPct);
  if (rotaryNdims % 2 !== 0) {
    throw new RangeError(
      `config.json: rotary_pct ${rotaryPct} gives ${rotaryNdims} rotary features per head; ` +
        "rotary embeddings need an even number",
    );
  }
  return {
    vocabSize: configInt(config, "vocab_size"),
    hiddenSize,
    numLayers: configInt(config, "num_hidden_layers"),
    numHeads,
    intermediateSize: configInt(config, "intermediate_size"),
    rotaryNdims,
    rotaryBase: configNumber(config, ["rotary_emb_base", "rope_theta"], 10000),
    normEps: configNumber(config, "layer_norm_eps", 1e-5),
    activation: configString(config, "hidden_act", "gelu"),
    parallelResidual: configBool(config, "use_parallel_residual", true),
    attentionBias: configBool(config, "attention_bias", true),
    tieWordEmbeddings: configBool(config, "tie_word_embeddings", false),
  };
}

/** What every layer of one forward call shares. */
export interface GPTNeoXContext {
  /** Additive attention mask [B, 1, T, past + T]. */
  readonly mask: Tensor;
  /** Rotary tables [B, T, rotaryNdims]; null when rotary_pct gives no rotary features. */
  readonly rotary: { readonly cos: Tensor; readonly sin: Tensor } | null;
  readonly cache: KeyValueCache | null;
}

export class GPTNeoXAttention extends Module<Tensor, GPTNeoXContext> {
  readonly query_key_value: Linear;
  readonly dense: Linear;
  private readonly headSize: number;

  constructor(
    private readonly s: GPTNeoXSettings,
    private readonly layer: number,
  ) {
    super();
    const d = s.hiddenSize;
    this.headSize = d / s.numHeads;
    this.query_key_value = this.module("query_key_value", new Linear(d, 3 * d, { bias: s.attentionBias }));
    this.dense = this.module("dense", new Linear(d, d, { bias: s.attentionBias }));
  }

  protected forward(x: Tensor, { mask, rotary, cache }: GPTNeoXContext): Tensor {
    const d = this.headSize;
    // The fused output is [q|k|v] per head: view it as [B, T, H, 3d], not as three [B, T, D] blocks.
    const [q0, k0, vNew] = tv.split(splitHeads(this.query_key_value.call(x), this.s.numHeads), [d, d, d], -1);
    const q = rotary ? applyRotary(q0, rotary.cos, rotary.sin) : q0;
    const kNew = rotary ? applyRotary(k0, rotary.cos, rotary.sin) : k0;
    const { key: k, value: v } = cache ? cache.update(this.layer, kNew, vNew) : { key: kNew, value: vNew };
    const scores = tv.add(tv.mul(tv.matmul(q, tv.transpose(k)), 1 / Math.sqrt(d)), mask);
    return this.dense.call(mergeHeads(tv.matmul(tv.softmax(scores, -1), v)));
  }
}

export class GPTNeoXMLP extends Module {
  readonly dense_h_to_4h: Linear;
  readonly act: Activation;
  readonly dense_4h_to_h: Linear;

  constructor(s: GPTNeoXSettings) {
    super();
    this.dense_h_to_4h = this.module("dense_h_to_4h", new Linear(s.hiddenSize, s.intermediateSize));
    this.dense_4h_to_h = this.module("dense_4h_to_h", new Linear(s.intermediateSize, s.hiddenSize));
    this.act = this.module("act", new Activation(s.activation));
  }

  protected forward(x: Tensor): Tensor {
    return this.dense_4h_to_h.call(this.act.call(this.dense_h_to_4h.call(x)));
  }
}

export class GPTNeoXLayer extends Module<Tensor, GPTNeoXContext> {
  readonly input_layernorm: LayerNorm;
  readonly post_attention_layernorm: LayerNorm;
  readonly attention: GPTNeoXAttention;
  readonly mlp: GPTNeoXMLP;

  constructor(
    private readonly s: GPTNeoXSettings,
    layer: number,
  ) {
    super();
    this.input_layernorm = this.module("input_layernorm", new LayerNorm(s.hiddenSize, s.normEps));
    this.post_attention_layernorm = this.module("post_attention_layernorm", new LayerNorm(s.hiddenSize, s.normEps));
    this.attention = this.module("attention", new GPTNeoXAttention(s, layer));
    this.mlp = this.module("mlp", new GPTNeoXMLP(s));
  }

  protected forward(x: Tensor, pass: GPTNeoXContext): Tensor {
    const attn = this.attention.call(this.input_layernorm.call(x), pass);
    if (this.s.parallelResidual) {
      // HF sums in this order: mlp + attn + x.
      const mlp = this.mlp.call(this.post_attention_layernorm.call(x));
      return tv.add(tv.add(mlp, attn), x);
    }
    const h = tv.add(attn, x);
    return tv.add(this.mlp.call(this.post_attention_layernorm.call(h)), h);
  }
}

/** HF's GPTNeoXModel: the embeddings, layers and final norm, which the LM runs. */
export class GPTNeoXModel extends Container {
  readonly embed_in: Embedding;
  readonly layers: ModuleList<GPTNeoXLayer>;
  readonly final_layer_norm: LayerNorm;

  constructor(s: GPTNeoXSettings) {
    super();
    this.embed_in = this.module("embed_in", new Embedding(s.vocabSize, s.hiddenSize));
    this.layers = this.module(
      "layers",
      new ModuleList(Array.from({ length: s.numLayers }, (_, i) => new GPTNeoXLayer(s, i))),
    );
    this.final_layer_norm = this.module("final_layer_norm", new LayerNorm(s.hiddenSize, s.normEps));
  }
}

/** pyvene's GPTNeoXForCausalLM site map (spec §7.1/§7.2): GPTNeoXModel's, under `gpt_neox.`. */
function gptNeoXSites(s: GPTNeoXSettings): SiteMap {
  const d = s.hiddenSize;
  const at = layerSites("gpt_neox.layers");
  return {
    block_input: at("", "input", d),
    block_output: at("", "output", d),
    mlp_activation: at(".mlp.act", "output", s.intermediateSize),
    mlp_output: at(".mlp", "output", d),
    mlp_input: at(".mlp", "input", d),
    attention_value_output: at(".attention.dense", "input", d),
    head_attention_value_output: at(".attention.dense", "input", d / s.numHeads, s.numHeads),
    attention_output: at(".attention", "output", d),
    attention_input: at(".attention", "input", d),
  };
}

export class GPTNeoXForCausalLM extends DecoderModel<GPTNeoXContext> {
  readonly family = "gpt_neox";
  readonly settings: GPTNeoXSettings;
  readonly sites: SiteMap;
  readonly gpt_neox: GPTNeoXModel;
  /** Untied unless tie_word_embeddings: then its weight is embed_in's tensor. */
  readonly embed_out: Linear | TiedLinear;
  /** Rotary inverse frequencies over the first rotaryNdims features of a head; null without rotary features. */
  private readonly invFreq: Float32Array | null;

  constructor(readonly config: HFConfig) {
    super();
    const s = (this.settings = gptNeoXSettings(config));
    this.sites = gptNeoXSites(s);
    this.gpt_neox = this.module("gpt_neox", new GPTNeoXModel(s));
    this.embed_out = this.module(
      "embed_out",
      s.tieWordEmbeddings
        ? new TiedLinear(this.gpt_neox.embed_in.weight)
        : new Linear(s.hiddenSize, s.vocabSize, { bias: false }),
    );
    this.invFreq = s.rotaryNdims > 0 ? ropeInverseFrequencies(s.rotaryNdims, s.rotaryBase) : null;
  }

  protected get tokenEmbedding(): Embedding {
    return this.gpt_neox.embed_in;
  }

  protected get blocks(): readonly GPTNeoXLayer[] {
    return this.gpt_neox.layers.items;
  }

  protected get finalNorm(): LayerNorm {
    return this.gpt_neox.final_layer_norm;
  }

  protected get lmHead(): Linear | TiedLinear {
    return this.embed_out;
  }

  protected passContext({ attentionMask, batch, length, past, positions, cache }: PassInputs): GPTNeoXContext {
    return {
      mask: additiveMask(attentionMask, batch, length, past + length),
      rotary: this.invFreq ? rotaryTablesFromFrequencies(positions, this.invFreq) : null,
      cache,
    };
  }
}

export const gptNeoXFamily: ModelFamily = {
  name: "gpt_neox",
  modelTypes: ["gpt_neox"],
  architectures: ["GPTNeoXForCausalLM"],
  create: (config) => new GPTNeoXForCausalLM(config),
  adaptCheckpoint(tensors) {
    // Older checkpoints (e.g. Pythia) store the causal-mask and rotary buffers; HF rebuilds them.
    const buffer = /\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/;
    return new Map([...tensors].filter(([name]) => !buffer.test(name)));
  },
};
