/**
 * The Llama family: Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma2, OLMo and OLMo2, as HF
 * transformers implements them with eager attention (4.45; OLMo2 as added in 4.47, Qwen3 as
 * added in 4.51). One decoder, a rotary pre-norm transformer with a gated MLP:
 *
 *   h = x + self_attn(input_layernorm(x))          q, k rotated; k, v shared by query groups (GQA)
 *   y = h + mlp(post_attention_layernorm(h))       mlp(x) = down_proj(act_fn(gate_proj(x)) · up_proj(x))
 *
 * and a table of what each model type changes: biases, norms, norm placement, q/k norms,
 * embedding scale, soft-capping, sliding windows.
 */
import * as tv from "../tensor/index.js";
import { Tensor } from "../tensor/index.js";
import { Module, ModuleList, type AnyModule } from "../nn/module.js";
import { Activation, Embedding, LayerNorm, Linear, RMSNorm } from "../nn/layers.js";
import { KeyValueCache, additiveMask, mergeHeads, positionIds, repeatKeyValue } from "../nn/attention.js";
import { TiedLinear } from "../nn/tied.js";
import { applyRotary, ropeInverseFrequencies, rotaryTablesFromFrequencies, type RopeScaling } from "../nn/rope.js";
import { configBool, configInt, configNumber, configString, type HFConfig } from "./config.js";
import { PretrainedModel, inputShape, lastPosition, resumePoint, type ModelFamily, type ModelInputs, type ModelOutput } from "./model.js";
import type { Site, SiteMap } from "./sites.js";

export type LlamaModelType = "llama" | "mistral" | "qwen2" | "qwen3" | "gemma" | "gemma2" | "olmo" | "olmo2";

/** What a model type changes in the shared decoder. */
interface Variant {
  readonly architecture: string;
  /**
   * Where the norms sit: "pre" before each sublayer; "sandwich" before and after each sublayer
   * (Gemma2: input/post_attention and pre/post_feedforward); "post" only on the sublayer
   * outputs, with no input_layernorm (OLMo2).
   */
  readonly layout: "pre" | "sandwich" | "post";
  /** "rms": w·x/rms(x); "offset_rms": (1+w)·x/rms(x) (Gemma); "plain_layer_norm": LayerNorm without weight or bias, eps 1e-5 (OLMo). */
  readonly norm: "rms" | "offset_rms" | "plain_layer_norm";
  /** RMS norm of queries and keys before rotary: per head over head_dim (Qwen3), or over the whole projection width (OLMo2). */
  readonly qkNorm: "none" | "per_head" | "full_width";
  /** Biases of q/k/v_proj and of o_proj: fixed, or config `attention_bias` (default false). */
  readonly qkvBias: boolean | "attention_bias";
  readonly outputBias: boolean | "attention_bias";
  /** Biases of the MLP projections: none, or config `mlp_bias` (Llama). */
  readonly mlpBias: boolean | "mlp_bias";
  /** The config field that names the MLP activation, and HF's value when it is absent or null. */
  readonly activation: { readonly field: "hidden_act" | "hidden_activation"; readonly fallback: string };
  /** Input embeddings times √hidden_size (Gemma). */
  readonly scaleEmbeddings: boolean;
  /** HF's default for `tie_word_embeddings`. */
  readonly tieDefault: boolean;
  /** head_dim when the config has none. */
  readonly headDimDefault: number | "hidden_size/num_attention_heads";
  readonly rmsNormEpsDefault: number;
  /**
   * Which layers attend only within config `sliding_window` in HF's eager attention: every
   * layer (Mistral), the even ones (Gemma2), or none. Qwen2/Qwen3 read it only under
   * `use_sliding_window`, which HF versions apply inconsistently, so tsvene rejects it.
   */
  readonly slidingWindow: "none" | "all" | "even_layers" | "use_sliding_window_rejected";
  /** HF's default for `sliding_window` when the config has none. */
  readonly slidingWindowDefault?: number;
  /** Gemma2's attention: scores scaled by query_pre_attn_scalar^−½ and tanh soft-capped, and soft-capped logits. */
  readonly softCapping: boolean;
  /** Queries, keys and values clamped to ±clip_qkv (OLMo). */
  readonly clipQkv: boolean;
}

const LLAMA: Variant = {
  architecture: "LlamaForCausalLM",
  layout: "pre",
  norm: "rms",
  qkNorm: "none",
  qkvBias: "attention_bias",
  outputBias: "attention_bias",
  mlpBias: "mlp_bias",
  activation: { field: "hidden_act", fallback: "silu" },
  scaleEmbeddings: false,
  tieDefault: false,
  headDimDefault: "hidden_size/num_attention_heads",
  rmsNormEpsDefault: 1e-6,
  slidingWindow: "none",
  softCapping: false,
  clipQkv: false,
};

const GEMMA: Variant = {
  ...LLAMA,
  architecture: "GemmaForCausalLM",
  norm: "offset_rms",
  mlpBias: false,
  // HF ignores hidden_act for Gemma (early configs said "gelu" for what is the tanh GELU).
  activation: { field: "hidden_activation", fallback: "gelu_pytorch_tanh" },
  scaleEmbeddings: true,
  tieDefault: true,
  headDimDefault: 256,
};

const VARIANTS: Readonly<Record<LlamaModelType, Variant>> = {
  llama: LLAMA,
  mistral: { ...LLAMA, architecture: "MistralForCausalLM", qkvBias: false, outputBias: false, mlpBias: false, slidingWindow: "all", slidingWindowDefault: 4096 },
  qwen2: { ...LLAMA, architecture: "Qwen2ForCausalLM", qkvBias: true, outputBias: false, mlpBias: false, slidingWindow: "use_sliding_window_rejected" },
  qwen3: { ...LLAMA, architecture: "Qwen3ForCausalLM", qkNorm: "per_head", mlpBias: false, headDimDefault: 128, slidingWindow: "use_sliding_window_rejected" },
  gemma: GEMMA,
  gemma2: { ...GEMMA, architecture: "Gemma2ForCausalLM", layout: "sandwich", slidingWindow: "even_layers", slidingWindowDefault: 4096, softCapping: true },
  olmo: { ...LLAMA, architecture: "OlmoForCausalLM", norm: "plain_layer_norm", mlpBias: false, clipQkv: true },
  olmo2: { ...LLAMA, architecture: "Olmo2ForCausalLM", layout: "post", qkNorm: "full_width", mlpBias: false, rmsNormEpsDefault: 1e-5 },
};

/** A config resolved for one model type: every number the decoder needs. */
export interface LlamaSettings {
  readonly modelType: LlamaModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly layout: Variant["layout"];
  readonly norm: Variant["norm"];
  readonly normEps: number;
  readonly qkNorm: Variant["qkNorm"];
  readonly qkvBias: boolean;
  readonly outputBias: boolean;
  readonly mlpBias: boolean;
  readonly activation: string;
  /** Factor on the input embeddings (√hidden_size in float32 for Gemma), or null. */
  readonly embeddingScale: number | null;
  /** Gemma2's query_pre_attn_scalar (scores × its −½ power); null: scores ÷ √head_dim. */
  readonly queryPreAttnScalar: number | null;
  readonly attnLogitSoftcapping: number | null;
  readonly finalLogitSoftcapping: number | null;
  /** Per layer, the sliding window of its attention, or null for full causal attention. */
  readonly slidingWindows: readonly (number | null)[];
  readonly clipQkv: number | null;
  /** Rotary inverse frequencies [head_dim/2], rope_scaling applied. */
  readonly invFreq: Float32Array;
  readonly tieWordEmbeddings: boolean;
}

/** The model type a config names (model_type, then architectures), or an error listing the known ones. */
function modelTypeOf(config: HFConfig): LlamaModelType {
  const declared = config.model_type;
  if (typeof declared === "string" && declared in VARIANTS) return declared as LlamaModelType;
  const architectures = Array.isArray(config.architectures) ? config.architectures.map(String) : [];
  const byArchitecture = (Object.keys(VARIANTS) as LlamaModelType[]).find((t) => architectures.includes(VARIANTS[t].architecture));
  if (byArchitecture) return byArchitecture;
  throw new RangeError(
    `config.json: model_type ${JSON.stringify(declared)} (architectures ${JSON.stringify(architectures)}) is not a Llama-family model ` +
      `(expected model_type one of ${Object.keys(VARIANTS).join(", ")})`,
  );
}

/** A number field whose absence means HF's default and whose null means "off". */
function optionalWithDefault(config: HFConfig, key: string, fallback: number | undefined): number | null {
  if (config[key] === undefined) return fallback ?? null;
  if (config[key] === null) return null;
  const value = configNumber(config, key);
  if (!(value > 0)) throw new RangeError(`config.json: "${key}" must be a positive number or null, got ${value}`);
  return value;
}

function ropeScalingOf(config: HFConfig): RopeScaling | null {
  const value = config.rope_scaling;
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`config.json: "rope_scaling" must be null or an object such as {"rope_type": "linear", "factor": 2}, got ${JSON.stringify(value)}`);
  }
  const scaling = value as HFConfig;
  const type = scaling.rope_type ?? scaling.type;
  const field = (key: string): number => {
    const v = scaling[key];
    if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`config.json: "rope_scaling.${key}" must be a number for rope type "${String(type)}", got ${JSON.stringify(v) ?? "missing"}`);
    return v;
  };
  switch (type) {
    case "default":
      return null;
    case "linear":
      return { type, factor: field("factor") };
    case "llama3":
      return {
        type,
        factor: field("factor"),
        lowFreqFactor: field("low_freq_factor"),
        highFreqFactor: field("high_freq_factor"),
        originalMaxPositionEmbeddings: field("original_max_position_embeddings"),
      };
    default:
      throw new RangeError(`config.json: rope_scaling type ${JSON.stringify(type)} is not supported (supported: "linear", "llama3", or rope_scaling null)`);
  }
}

/** Reads a Llama-family config.json with HF's defaults for the fields it may leave out. */
export function llamaSettings(config: HFConfig): LlamaSettings {
  const modelType = modelTypeOf(config);
  const v = VARIANTS[modelType];
  const hiddenSize = configInt(config, "hidden_size");
  const numHeads = configInt(config, "num_attention_heads");
  const numKeyValueHeads = configInt(config, "num_key_value_heads", numHeads);
  const numLayers = configInt(config, "num_hidden_layers");
  if (numHeads % numKeyValueHeads !== 0) {
    throw new RangeError(`config.json: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`);
  }
  if (v.headDimDefault === "hidden_size/num_attention_heads" && (config.head_dim === undefined || config.head_dim === null) && hiddenSize % numHeads !== 0) {
    throw new RangeError(`config.json: hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numHeads}) when there is no "head_dim"`);
  }
  const headDim = configInt(config, "head_dim", v.headDimDefault === "hidden_size/num_attention_heads" ? hiddenSize / numHeads : v.headDimDefault);
  if (headDim % 2 !== 0) throw new RangeError(`config.json: head_dim must be even for rotary embeddings, got ${headDim}`);

  const bias = (b: boolean | string): boolean => (typeof b === "boolean" ? b : configBool(config, b, false));
  const window = v.slidingWindow === "none" || v.slidingWindow === "use_sliding_window_rejected" ? null : optionalWithDefault(config, "sliding_window", v.slidingWindowDefault);
  if (v.slidingWindow === "use_sliding_window_rejected" && configBool(config, "use_sliding_window", false)) {
    throw new RangeError(
      `config.json: "use_sliding_window": true is not supported for ${modelType} (HF's eager attention ignores it in 4.45 and later versions apply it to ` +
        `different layers; released checkpoints set it to false)`,
    );
  }
  const slidingWindows = Array.from({ length: numLayers }, (_, layer) => (v.slidingWindow === "even_layers" && layer % 2 === 1 ? null : window));

  let clipQkv: number | null = null;
  if (v.clipQkv) clipQkv = optionalWithDefault(config, "clip_qkv", undefined);
  const theta = configNumber(config, "rope_theta", 10000);
  if (!(theta > 0)) throw new RangeError(`config.json: "rope_theta" must be positive, got ${theta}`);

  return {
    modelType,
    vocabSize: configInt(config, "vocab_size"),
    hiddenSize,
    intermediateSize: configInt(config, "intermediate_size"),
    numLayers,
    numHeads,
    numKeyValueHeads,
    headDim,
    layout: v.layout,
    norm: v.norm,
    normEps: configNumber(config, "rms_norm_eps", v.rmsNormEpsDefault),
    qkNorm: v.qkNorm,
    qkvBias: bias(v.qkvBias),
    outputBias: bias(v.outputBias),
    mlpBias: bias(v.mlpBias),
    activation: configString(config, v.activation.field, v.activation.fallback),
    embeddingScale: v.scaleEmbeddings ? Math.fround(Math.sqrt(hiddenSize)) : null,
    queryPreAttnScalar: v.softCapping ? configNumber(config, "query_pre_attn_scalar", 256) : null,
    attnLogitSoftcapping: v.softCapping ? optionalWithDefault(config, "attn_logit_softcapping", 50) : null,
    finalLogitSoftcapping: v.softCapping ? optionalWithDefault(config, "final_logit_softcapping", 30) : null,
    slidingWindows,
    clipQkv,
    invFreq: ropeInverseFrequencies(headDim, theta, ropeScalingOf(config)),
    tieWordEmbeddings: configBool(config, "tie_word_embeddings", v.tieDefault),
  };
}

/** Per-call state every layer reads. */
interface LayerContext {
  readonly cos: Tensor;
  readonly sin: Tensor;
  /** The additive mask [B, 1, T, past+T] for a sliding window, or full causal for null. */
  readonly mask: (slidingWindow: number | null) => Tensor;
  readonly cache: KeyValueCache | null;
}

interface ModelContext extends LayerContext {
  /** Collects HF's hidden_states when given. */
  readonly hiddenStates: Tensor[] | null;
  /** The first layer to run (resuming from a cached hidden state). */
  readonly startLayer: number;
}

function makeNorm(s: LlamaSettings, dim: number): AnyModule {
  switch (s.norm) {
    case "rms":
      return new RMSNorm(dim, s.normEps);
    case "offset_rms":
      return new RMSNorm(dim, s.normEps, { offsetWeight: true });
    case "plain_layer_norm":
      return new LayerNorm(dim, 1e-5, { affine: false });
  }
}

/** [B, T, H·d] → [B, H, T, d], with Qwen3's per-head RMS norm applied on [B, T, H, d] as HF does. */
function toHeads(x: Tensor, heads: number, perHeadNorm: RMSNorm | null): Tensor {
  const [b, t, width] = x.shape;
  const split = tv.reshape(x, [b, t, heads, width / heads]);
  return tv.permute(perHeadNorm ? perHeadNorm.call(split) : split, [0, 2, 1, 3]);
}

function softCap(x: Tensor, cap: number | null): Tensor {
  return cap === null ? x : tv.mul(tv.tanh(tv.div(x, cap)), cap);
}

class LlamaAttention extends Module<Tensor, LayerContext> {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  readonly q_norm: RMSNorm | null = null;
  readonly k_norm: RMSNorm | null = null;

  constructor(private readonly s: LlamaSettings, private readonly layer: number) {
    super();
    const qWidth = s.numHeads * s.headDim;
    const kvWidth = s.numKeyValueHeads * s.headDim;
    this.q_proj = this.module("q_proj", new Linear(s.hiddenSize, qWidth, { bias: s.qkvBias }));
    this.k_proj = this.module("k_proj", new Linear(s.hiddenSize, kvWidth, { bias: s.qkvBias }));
    this.v_proj = this.module("v_proj", new Linear(s.hiddenSize, kvWidth, { bias: s.qkvBias }));
    this.o_proj = this.module("o_proj", new Linear(qWidth, s.hiddenSize, { bias: s.outputBias }));
    if (s.qkNorm !== "none") {
      const perHead = s.qkNorm === "per_head";
      this.q_norm = this.module("q_norm", new RMSNorm(perHead ? s.headDim : qWidth, s.normEps));
      this.k_norm = this.module("k_norm", new RMSNorm(perHead ? s.headDim : kvWidth, s.normEps));
    }
  }

  protected forward(x: Tensor, ctx: LayerContext): Tensor {
    const s = this.s;
    let q = this.q_proj.call(x);
    let k = this.k_proj.call(x);
    let v = this.v_proj.call(x);
    if (s.clipQkv !== null) [q, k, v] = [q, k, v].map((t) => tv.clamp(t, -s.clipQkv!, s.clipQkv!));
    if (s.qkNorm === "full_width") [q, k] = [this.q_norm!.call(q), this.k_norm!.call(k)];
    const perHead = s.qkNorm === "per_head";
    q = applyRotary(toHeads(q, s.numHeads, perHead ? this.q_norm : null), ctx.cos, ctx.sin);
    k = applyRotary(toHeads(k, s.numKeyValueHeads, perHead ? this.k_norm : null), ctx.cos, ctx.sin);
    v = toHeads(v, s.numKeyValueHeads, null);
    if (ctx.cache) ({ key: k, value: v } = ctx.cache.update(this.layer, k, v));

    const groups = s.numHeads / s.numKeyValueHeads;
    const raw = tv.matmul(q, tv.transpose(repeatKeyValue(k, groups)));
    const scaled = s.queryPreAttnScalar === null ? tv.div(raw, Math.sqrt(s.headDim)) : tv.mul(raw, s.queryPreAttnScalar ** -0.5);
    const scores = tv.add(softCap(scaled, s.attnLogitSoftcapping), ctx.mask(s.slidingWindows[this.layer]));
    const out = tv.matmul(tv.softmax(scores, -1), repeatKeyValue(v, groups));
    return this.o_proj.call(mergeHeads(out));
  }
}

class LlamaMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  readonly act_fn: Activation;

  constructor(s: LlamaSettings) {
    super();
    this.gate_proj = this.module("gate_proj", new Linear(s.hiddenSize, s.intermediateSize, { bias: s.mlpBias }));
    this.up_proj = this.module("up_proj", new Linear(s.hiddenSize, s.intermediateSize, { bias: s.mlpBias }));
    this.down_proj = this.module("down_proj", new Linear(s.intermediateSize, s.hiddenSize, { bias: s.mlpBias }));
    this.act_fn = this.module("act_fn", new Activation(s.activation));
  }

  protected forward(x: Tensor): Tensor {
    return this.down_proj.call(tv.mul(this.act_fn.call(this.gate_proj.call(x)), this.up_proj.call(x)));
  }
}

class LlamaDecoderLayer extends Module<Tensor, LayerContext> {
  readonly self_attn: LlamaAttention;
  readonly mlp: LlamaMLP;
  readonly input_layernorm: AnyModule | null = null;
  readonly post_attention_layernorm: AnyModule;
  readonly pre_feedforward_layernorm: AnyModule | null = null;
  readonly post_feedforward_layernorm: AnyModule | null = null;

  constructor(private readonly s: LlamaSettings, layer: number) {
    super();
    const norm = (name: string): AnyModule => this.module(name, makeNorm(s, s.hiddenSize));
    this.self_attn = this.module("self_attn", new LlamaAttention(s, layer));
    this.mlp = this.module("mlp", new LlamaMLP(s));
    if (s.layout !== "post") this.input_layernorm = norm("input_layernorm");
    this.post_attention_layernorm = norm("post_attention_layernorm");
    if (s.layout === "sandwich") this.pre_feedforward_layernorm = norm("pre_feedforward_layernorm");
    if (s.layout !== "pre") this.post_feedforward_layernorm = norm("post_feedforward_layernorm");
  }

  protected forward(x: Tensor, ctx: LayerContext): Tensor {
    switch (this.s.layout) {
      case "pre": {
        const h = tv.add(x, this.self_attn.call(this.input_layernorm!.call(x), ctx));
        return tv.add(h, this.mlp.call(this.post_attention_layernorm.call(h)));
      }
      case "sandwich": {
        const h = tv.add(x, this.post_attention_layernorm.call(this.self_attn.call(this.input_layernorm!.call(x), ctx)));
        return tv.add(h, this.post_feedforward_layernorm!.call(this.mlp.call(this.pre_feedforward_layernorm!.call(h))));
      }
      case "post": {
        const h = tv.add(x, this.post_attention_layernorm.call(this.self_attn.call(x, ctx)));
        return tv.add(h, this.post_feedforward_layernorm!.call(this.mlp.call(h)));
      }
    }
  }
}

/** HF's LlamaModel: takes the (scaled) input embeddings, runs the layers, applies the final norm. */
class LlamaModel extends Module<Tensor, ModelContext> {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: AnyModule;

  constructor(s: LlamaSettings) {
    super();
    this.embed_tokens = this.module("embed_tokens", new Embedding(s.vocabSize, s.hiddenSize));
    this.layers = this.module("layers", new ModuleList(Array.from({ length: s.numLayers }, (_, i) => new LlamaDecoderLayer(s, i))));
    this.norm = this.module("norm", makeNorm(s, s.hiddenSize));
  }

  protected forward(embeddings: Tensor, ctx: ModelContext): Tensor {
    let h = embeddings;
    for (const layer of this.layers.items.slice(ctx.startLayer)) {
      ctx.hiddenStates?.push(h);
      h = layer.call(h, ctx);
    }
    h = this.norm.call(h);
    ctx.hiddenStates?.push(h);
    return h;
  }
}

/** pyvene's LLaMA site map (spec §7.1/§7.2), with widths from the projections' real shapes. */
function llamaSites(s: LlamaSettings): SiteMap {
  const at = (path: string, hook: Site["hook"], dim: number, heads?: number) => (layer: number): Site =>
    heads === undefined ? { module: `model.layers.${layer}${path}`, hook, dim } : { module: `model.layers.${layer}${path}`, hook, dim, heads };
  const d = s.hiddenSize;
  return {
    block_input: at("", "input", d),
    block_output: at("", "output", d),
    mlp_activation: at(".mlp.act_fn", "output", s.intermediateSize),
    mlp_output: at(".mlp", "output", d),
    mlp_input: at(".mlp", "input", d),
    attention_value_output: at(".self_attn.o_proj", "input", s.numHeads * s.headDim),
    head_attention_value_output: at(".self_attn.o_proj", "input", s.headDim, s.numHeads),
    attention_output: at(".self_attn", "output", d),
    attention_input: at(".self_attn", "input", d),
    query_output: at(".self_attn.q_proj", "output", s.numHeads * s.headDim),
    key_output: at(".self_attn.k_proj", "output", s.numKeyValueHeads * s.headDim),
    value_output: at(".self_attn.v_proj", "output", s.numKeyValueHeads * s.headDim),
    head_query_output: at(".self_attn.q_proj", "output", s.headDim, s.numHeads),
    head_key_output: at(".self_attn.k_proj", "output", s.headDim, s.numKeyValueHeads),
    head_value_output: at(".self_attn.v_proj", "output", s.headDim, s.numKeyValueHeads),
  };
}

/** *ForCausalLM of every Llama-family model type: `model.*` and `lm_head`, as HF names them. */
export class LlamaForCausalLM extends PretrainedModel {
  readonly family = "llama";
  readonly config: HFConfig;
  readonly settings: LlamaSettings;
  readonly numLayers: number;
  readonly sites: SiteMap;
  readonly model: LlamaModel;
  readonly lm_head: Linear | TiedLinear;

  constructor(config: HFConfig) {
    super();
    this.config = config;
    const s = (this.settings = llamaSettings(config));
    this.numLayers = s.numLayers;
    this.sites = llamaSites(s);
    this.model = this.module("model", new LlamaModel(s));
    this.lm_head = this.module("lm_head", s.tieWordEmbeddings ? new TiedLinear(this.model.embed_tokens.weight) : new Linear(s.hiddenSize, s.vocabSize, { bias: false }));
  }

  /** The HF model_type this model was built as. */
  get modelType(): LlamaModelType {
    return this.settings.modelType;
  }

  override newCache(): KeyValueCache {
    return new KeyValueCache(this.numLayers);
  }

  override get supportsResume(): boolean {
    return true;
  }

  private embed(inputs: ModelInputs): Tensor {
    const s = this.settings;
    const h = inputs.inputIds ? this.model.embed_tokens.call(inputs.inputIds) : inputs.inputsEmbeds!;
    if (h.shape[2] !== s.hiddenSize) throw new RangeError(`model inputs: inputsEmbeds must be [B, T, ${s.hiddenSize}], got [${h.shape.join(", ")}]`);
    return s.embeddingScale === null ? h : tv.mul(h, s.embeddingScale);
  }

  run(inputs: ModelInputs): ModelOutput {
    const s = this.settings;
    const { batch, length } = inputShape(inputs);
    const cache = inputs.cache ?? null;
    const past = cache?.length ?? 0;
    const attentionMask = inputs.attentionMask ?? null;
    const positions = inputs.positionIds ?? positionIds(null, batch, length, past);
    if (positions.shape.length !== 2 || positions.shape[0] !== batch || positions.shape[1] !== length) {
      throw new RangeError(`model inputs: positionIds must be [${batch}, ${length}] like the inputs, got [${positions.shape.join(", ")}]`);
    }
    const resume = resumePoint(inputs, this, s.hiddenSize);
    let h = resume ? resume.hidden : this.embed(inputs);

    const { cos, sin } = rotaryTablesFromFrequencies(positions, s.invFreq);
    const masks = new Map<number | null, Tensor>();
    const mask = (window: number | null): Tensor => {
      let m = masks.get(window);
      if (!m) masks.set(window, (m = additiveMask(attentionMask, batch, length, past + length, window ?? undefined)));
      return m;
    };
    const hiddenStates = inputs.outputHiddenStates ? [] : null;
    h = this.model.call(h, { cos, sin, mask, cache, hiddenStates, startLayer: resume?.layer ?? 0 });
    const logits = softCap(this.lm_head.call(inputs.lastPositionLogits ? lastPosition(h) : h), s.finalLogitSoftcapping);
    return hiddenStates ? { logits, hiddenStates } : { logits };
  }
}

export const llamaFamily: ModelFamily = {
  name: "llama",
  modelTypes: Object.keys(VARIANTS),
  architectures: Object.values(VARIANTS).map((v) => v.architecture),
  create: (config) => new LlamaForCausalLM(config),
  // Older Llama checkpoints also store the rotary inv_freq buffer, which HF rebuilds from the config.
  adaptCheckpoint: (tensors) => new Map([...tensors].filter(([name]) => !name.endsWith(".self_attn.rotary_emb.inv_freq"))),
};
