/**
 * GPT-NeoX (Pythia, GPT-NeoX-20B) as HF transformers 4.45's GPTNeoXForCausalLM: a fused
 * query_key_value projection laid out head by head ([q|k|v] per head), rotary embeddings on the
 * first rotary_ndims features of each head, and the parallel residual
 * x + attn(ln1 x) + mlp(ln2 x) (or the sequential form when use_parallel_residual is false).
 */
import { Activation, LayerNorm, Linear, Embedding } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { TiedLinear } from "../nn/tied.js";
import { KeyValueCache, additiveMask, mergeHeads, positionIds, splitHeads } from "../nn/attention.js";
import { applyRotary, ropeInverseFrequencies, rotaryTablesFromFrequencies } from "../nn/rope.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import { configBool, configInt, configNumber, configString, type HFConfig } from "./config.js";
import { PretrainedModel, inputShape, type ModelFamily, type ModelInputs, type ModelOutput } from "./model.js";
import type { Site, SiteMap } from "./sites.js";

/** What every layer of one forward call shares. */
export interface GPTNeoXContext {
  /** Additive attention mask [B, 1, T, past + T]. */
  mask: Tensor;
  /** Rotary tables [B, T, rotaryNdims]; null when rotary_pct gives no rotary features. */
  cos: Tensor | null;
  sin: Tensor | null;
  cache: KeyValueCache | null;
}

/** A layer's context: the shared one and the layer's index (for its cache entry). */
export interface GPTNeoXLayerContext extends GPTNeoXContext {
  layer: number;
}

export class GPTNeoXAttention extends Module<Tensor, GPTNeoXLayerContext> {
  readonly query_key_value: Linear;
  readonly dense: Linear;
  private readonly headSize: number;

  constructor(hidden: number, private readonly heads: number, bias: boolean) {
    super();
    this.headSize = hidden / heads;
    this.query_key_value = this.module("query_key_value", new Linear(hidden, 3 * hidden, { bias }));
    this.dense = this.module("dense", new Linear(hidden, hidden, { bias }));
  }

  protected forward(x: Tensor, ctx: GPTNeoXLayerContext): Tensor {
    const d = this.headSize;
    // The fused output is [q|k|v] per head: view it as [B, T, H, 3d], not as three [B, T, D] blocks.
    const [q0, k0, value] = tv.split(splitHeads(this.query_key_value.call(x), this.heads), [d, d, d], -1);
    const query = ctx.cos ? applyRotary(q0, ctx.cos, ctx.sin!) : q0;
    const newKey = ctx.cos ? applyRotary(k0, ctx.cos, ctx.sin!) : k0;
    const { key, value: values } = ctx.cache ? ctx.cache.update(ctx.layer, newKey, value) : { key: newKey, value };
    const scores = tv.add(tv.mul(tv.matmul(query, tv.transpose(key)), 1 / Math.sqrt(d)), ctx.mask);
    const out = tv.matmul(tv.softmax(scores, -1), values);
    return this.dense.call(mergeHeads(out));
  }
}

export class GPTNeoXMLP extends Module {
  readonly dense_h_to_4h: Linear;
  readonly act: Activation;
  readonly dense_4h_to_h: Linear;

  constructor(hidden: number, intermediate: number, activation: string) {
    super();
    this.dense_h_to_4h = this.module("dense_h_to_4h", new Linear(hidden, intermediate));
    this.dense_4h_to_h = this.module("dense_4h_to_h", new Linear(intermediate, hidden));
    this.act = this.module("act", new Activation(activation));
  }

  protected forward(x: Tensor): Tensor {
    return this.dense_4h_to_h.call(this.act.call(this.dense_h_to_4h.call(x)));
  }
}

export class GPTNeoXLayer extends Module<Tensor, GPTNeoXLayerContext> {
  readonly input_layernorm: LayerNorm;
  readonly post_attention_layernorm: LayerNorm;
  readonly attention: GPTNeoXAttention;
  readonly mlp: GPTNeoXMLP;

  constructor(private readonly options: GPTNeoXOptions) {
    super();
    const { hidden, eps } = options;
    this.input_layernorm = this.module("input_layernorm", new LayerNorm(hidden, eps));
    this.post_attention_layernorm = this.module("post_attention_layernorm", new LayerNorm(hidden, eps));
    this.attention = this.module("attention", new GPTNeoXAttention(hidden, options.heads, options.attentionBias));
    this.mlp = this.module("mlp", new GPTNeoXMLP(hidden, options.intermediate, options.activation));
  }

  protected forward(x: Tensor, ctx: GPTNeoXLayerContext): Tensor {
    const attn = this.attention.call(this.input_layernorm.call(x), ctx);
    if (this.options.parallelResidual) {
      // HF sums in this order: mlp + attn + x.
      const mlp = this.mlp.call(this.post_attention_layernorm.call(x));
      return tv.add(tv.add(mlp, attn), x);
    }
    const h = tv.add(attn, x);
    return tv.add(this.mlp.call(this.post_attention_layernorm.call(h)), h);
  }
}

export class GPTNeoXModel extends Module<IntTensor> {
  readonly embed_in: Embedding;
  readonly layers: ModuleList<GPTNeoXLayer>;
  readonly final_layer_norm: LayerNorm;

  constructor(private readonly options: GPTNeoXOptions) {
    super();
    this.embed_in = this.module("embed_in", new Embedding(options.vocab, options.hidden));
    this.layers = this.module("layers", new ModuleList(Array.from({ length: options.layers }, () => new GPTNeoXLayer(options))));
    this.final_layer_norm = this.module("final_layer_norm", new LayerNorm(options.hidden, options.eps));
  }

  /** The normalised last hidden state, and HF's hidden_states when asked for. */
  decode(inputs: ModelInputs): { last: Tensor; hiddenStates?: Tensor[] } {
    const { batch, length } = inputShape(inputs);
    const { hidden, rotaryNdims, rotaryBase } = this.options;
    const cache = inputs.cache ?? null;
    const past = cache?.length ?? 0;
    let h = inputs.inputIds ? this.embed_in.call(inputs.inputIds) : inputs.inputsEmbeds!;
    if (h.shape[2] !== hidden) throw new RangeError(`gpt_neox: inputsEmbeds must be [B, T, ${hidden}], got [${h.shape.join(", ")}]`);
    const positions = inputs.positionIds ?? positionIds(null, batch, length, past);
    if (positions.shape.length !== 2 || positions.shape[0] !== batch || positions.shape[1] !== length) {
      throw new RangeError(`gpt_neox: positionIds must be [${batch}, ${length}], got [${positions.shape.join(", ")}]`);
    }
    const rotary = rotaryNdims > 0 ? rotaryTablesFromFrequencies(positions, ropeInverseFrequencies(rotaryNdims, rotaryBase)) : null;
    const context: GPTNeoXContext = {
      mask: additiveMask(inputs.attentionMask ?? null, batch, length, past + length),
      cos: rotary?.cos ?? null,
      sin: rotary?.sin ?? null,
      cache,
    };
    const hiddenStates: Tensor[] = [];
    this.layers.items.forEach((layer, index) => {
      hiddenStates.push(h);
      h = layer.call(h, { ...context, layer: index });
    });
    const last = this.final_layer_norm.call(h);
    hiddenStates.push(last);
    return inputs.outputHiddenStates ? { last, hiddenStates } : { last };
  }

  protected forward(ids: IntTensor): Tensor {
    return this.decode({ inputIds: ids }).last;
  }
}

export interface GPTNeoXOptions {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  /** Rotary features per head: int(head_size · rotary_pct). */
  rotaryNdims: number;
  rotaryBase: number;
  eps: number;
  activation: string;
  parallelResidual: boolean;
  attentionBias: boolean;
  tieWordEmbeddings: boolean;
}

/** The model's shape from an HF GPTNeoXConfig, with HF's defaults where a field is optional. */
export function gptNeoXOptions(config: HFConfig): GPTNeoXOptions {
  const hidden = configInt(config, "hidden_size");
  const heads = configInt(config, "num_attention_heads");
  if (hidden % heads !== 0) {
    throw new RangeError(`config.json: hidden_size ${hidden} must be divisible by num_attention_heads ${heads}`);
  }
  if (config.rope_scaling !== undefined && config.rope_scaling !== null) {
    throw new RangeError(`config.json: rope_scaling ${JSON.stringify(config.rope_scaling)} is not supported for gpt_neox (expected null)`);
  }
  // HF 4.45 sets rope_theta/partial_rotary_factor from rotary_emb_base/rotary_pct, so those win.
  const rotaryPct = configNumber(config, ["rotary_pct", "partial_rotary_factor"], 0.25);
  if (!(rotaryPct >= 0 && rotaryPct <= 1)) throw new RangeError(`config.json: "rotary_pct" must be in [0, 1], got ${rotaryPct}`);
  const rotaryNdims = Math.trunc((hidden / heads) * rotaryPct);
  if (rotaryNdims % 2 !== 0) {
    throw new RangeError(`config.json: rotary_pct ${rotaryPct} gives ${rotaryNdims} rotary features per head; rotary embeddings need an even number`);
  }
  return {
    vocab: configInt(config, "vocab_size"),
    hidden,
    layers: configInt(config, "num_hidden_layers"),
    heads,
    intermediate: configInt(config, "intermediate_size"),
    rotaryNdims,
    rotaryBase: configNumber(config, ["rotary_emb_base", "rope_theta"], 10000),
    eps: configNumber(config, "layer_norm_eps", 1e-5),
    activation: configString(config, "hidden_act", "gelu"),
    parallelResidual: configBool(config, "use_parallel_residual", true),
    attentionBias: configBool(config, "attention_bias", true),
    tieWordEmbeddings: configBool(config, "tie_word_embeddings", false),
  };
}

/** pyvene's GPTNeoXForCausalLM site map (spec §7.1/§7.2): GPTNeoXModel's, under `gpt_neox.`. */
function gptNeoXSites(o: GPTNeoXOptions): SiteMap {
  const layer = (l: number) => `gpt_neox.layers.${l}`;
  const at = (path: (l: number) => string, hook: Site["hook"], dim: number, heads?: number) =>
    (l: number): Site => (heads === undefined ? { module: path(l), hook, dim } : { module: path(l), hook, dim, heads });
  return {
    block_input: at(layer, "input", o.hidden),
    block_output: at(layer, "output", o.hidden),
    mlp_activation: at((l) => `${layer(l)}.mlp.act`, "output", o.intermediate),
    mlp_output: at((l) => `${layer(l)}.mlp`, "output", o.hidden),
    mlp_input: at((l) => `${layer(l)}.mlp`, "input", o.hidden),
    attention_value_output: at((l) => `${layer(l)}.attention.dense`, "input", o.hidden),
    head_attention_value_output: at((l) => `${layer(l)}.attention.dense`, "input", o.hidden / o.heads, o.heads),
    attention_output: at((l) => `${layer(l)}.attention`, "output", o.hidden),
    attention_input: at((l) => `${layer(l)}.attention`, "input", o.hidden),
  };
}

export class GPTNeoXForCausalLM extends PretrainedModel {
  readonly family = "gpt_neox";
  readonly numLayers: number;
  readonly sites: SiteMap;
  readonly options: GPTNeoXOptions;
  readonly gpt_neox: GPTNeoXModel;
  /** Untied unless tie_word_embeddings: then its weight is embed_in's tensor. */
  readonly embed_out: Linear | TiedLinear;

  constructor(readonly config: HFConfig) {
    super();
    this.options = gptNeoXOptions(config);
    this.numLayers = this.options.layers;
    this.sites = gptNeoXSites(this.options);
    this.gpt_neox = this.module("gpt_neox", new GPTNeoXModel(this.options));
    const { vocab, hidden, tieWordEmbeddings } = this.options;
    this.embed_out = this.module("embed_out", tieWordEmbeddings ? new TiedLinear(this.gpt_neox.embed_in.weight) : new Linear(hidden, vocab, { bias: false }));
  }

  override newCache(): KeyValueCache {
    return new KeyValueCache(this.numLayers);
  }

  run(inputs: ModelInputs): ModelOutput {
    const { last, hiddenStates } = this.gpt_neox.decode(inputs);
    const logits = this.embed_out.call(last);
    return hiddenStates ? { logits, hiddenStates } : { logits };
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
