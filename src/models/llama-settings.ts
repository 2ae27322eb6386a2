/**
 * What each Llama-family model type changes in the shared decoder (llama.ts): biases, norms,
 * norm placement, q/k norms, embedding scale, soft-capping, sliding windows; and the config.json
 * reader that resolves a config into every number the decoder needs, with HF's defaults.
 */
import { ropeInverseFrequencies, type RopeScaling } from "../nn/rope.js";
import { configBool, configInt, configNumber, configString, type HFConfig } from "./config.js";
import type { DecoderSettings } from "./decoder.js";

export type LlamaModelType = "llama" | "mistral" | "qwen2" | "qwen3" | "gemma" | "gemma2" | "olmo" | "olmo2";

/** What a model type changes in the shared decoder. */
export interface Variant {
  readonly architecture: string;
  /**
   * Where the norms sit: "pre" before each sublayer; "sandwich" before and after each sublayer
   * (Gemma2: input/post_attention and pre/post_feedforward); "post" only on the sublayer
   * outputs, with no input_layernorm (OLMo2).
   */
  readonly layout: "pre" | "sandwich" | "post";
  /**
   * "rms": w·x/rms(x); "offset_rms": (1+w)·x/rms(x) (Gemma);
   * "plain_layer_norm": LayerNorm without weight or bias, eps 1e-5 (OLMo).
   */
  readonly norm: "rms" | "offset_rms" | "plain_layer_norm";
  /**
   * RMS norm of queries and keys before rotary: per head over head_dim (Qwen3),
   * or over the whole projection width (OLMo2).
   */
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

export const VARIANTS: Readonly<Record<LlamaModelType, Variant>> = {
  llama: LLAMA,
  mistral: {
    ...LLAMA,
    architecture: "MistralForCausalLM",
    qkvBias: false,
    outputBias: false,
    mlpBias: false,
    slidingWindow: "all",
    slidingWindowDefault: 4096,
  },
  qwen2: {
    ...LLAMA,
    architecture: "Qwen2ForCausalLM",
    qkvBias: true,
    outputBias: false,
    mlpBias: false,
    slidingWindow: "use_sliding_window_rejected",
  },
  qwen3: {
    ...LLAMA,
    architecture: "Qwen3ForCausalLM",
    qkNorm: "per_head",
    mlpBias: false,
    headDimDefault: 128,
    slidingWindow: "use_sliding_window_rejected",
  },
  gemma: GEMMA,
  gemma2: {
    ...GEMMA,
    architecture: "Gemma2ForCausalLM",
    layout: "sandwich",
    slidingWindow: "even_layers",
    slidingWindowDefault: 4096,
    softCapping: true,
  },
  olmo: { ...LLAMA, architecture: "OlmoForCausalLM", norm: "plain_layer_norm", mlpBias: false, clipQkv: true },
  olmo2: {
    ...LLAMA,
    architecture: "Olmo2ForCausalLM",
    layout: "post",
    qkNorm: "full_width",
    mlpBias: false,
    rmsNormEpsDefault: 1e-5,
  },
};

/** A config resolved for one model type: every number the decoder needs. */
export interface LlamaSettings extends DecoderSettings {
  readonly modelType: LlamaModelType;
  readonly intermediateSize: number;
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
  const byArchitecture = (Object.keys(VARIANTS) as LlamaModelType[]).find((t) =>
    architectures.includes(VARIANTS[t].architecture),
  );
  if (byArchitecture) return byArchitecture;
  throw new RangeError(
    `config.json: model_type ${JSON.stringify(declared)} ` +
      `(architectures ${JSON.stringify(architectures)}) is not a Llama-family model ` +
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
    throw new TypeError(
      `config.json: "rope_scaling" must be null or an object such as {"rope_type": "linear", "factor": 2}, ` +
        `got ${JSON.stringify(value)}`,
    );
  }
  const scaling = value as HFConfig;
  const type = scaling.rope_type ?? scaling.type;
  const field = (key: string): number => {
    const v = scaling[key];
    if (typeof v !== "number" || !Number.isFinite(v))
      throw new TypeError(
        `config.json: "rope_scaling.${key}" must be a number for rope type "${String(type)}", ` +
          `got ${JSON.stringify(v) ?? "missing"}`,
      );
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
      throw new RangeError(
        `config.json: rope_scaling type ${JSON.stringify(type)} is not supported ` +
          '(supported: "linear", "llama3", or rope_scaling null)',
      );
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
    throw new RangeError(
      `config.json: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`,
    );
  }
  if (
    v.headDimDefault === "hidden_size/num_attention_heads" &&
    (config.head_dim === undefined || config.head_dim === null) &&
    hiddenSize % numHeads !== 0
  ) {
    throw new RangeError(
      `config.json: hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numHeads}) ` +
        'when there is no "head_dim"',
    );
  }
  const headDim = configInt(
    config,
    "head_dim",
    v.headDimDefault === "hidden_size/num_attention_heads" ? hiddenSize / numHeads : v.headDimDefault,
  );
  if (headDim % 2 !== 0)
    throw new RangeError(`config.json: head_dim must be even for rotary embeddings, got ${headDim}`);

  const bias = (b: boolean | string): boolean => (typeof b === "boolean" ? b : configBool(config, b, false));
  const window =
    v.slidingWindow === "none" || v.slidingWindow === "use_sliding_window_rejected"
      ? null
      : optionalWithDefault(config, "sliding_window", v.slidingWindowDefault);
  if (v.slidingWindow === "use_sliding_window_rejected" && configBool(config, "use_sliding_window", false)) {
    throw new RangeError(
      `config.json: "use_sliding_window": true is not supported for ${modelType} ` +
        "(HF's eager attention ignores it in 4.45 and later versions apply it to " +
        `different layers; released checkpoints set it to false)`,
    );
  }
  const slidingWindows = Array.from({ length: numLayers }, (_, layer) =>
    v.slidingWindow === "even_layers" && layer % 2 === 1 ? null : window,
  );

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
