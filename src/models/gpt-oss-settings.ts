/**
 * GPT-OSS's config.json resolved into every number the model (gpt-oss.ts) needs, with the defaults
 * of HF's GptOssConfig, and refusals for what tsvene would otherwise run differently from HF: a
 * quantized (MXFP4) checkpoint, a rope type other than default or YaRN, partial rotary, and a
 * config without rope_scaling (HF versions disagree on the YaRN default it then stands for).
 */
import { ropeAttentionFactor, ropeInverseFrequencies, type RopeScaling } from "../nn/rope.js";
import { configBool, configInt, configNumber, type HFConfig } from "./config.js";
import type { DecoderSettings } from "./decoder.js";

const LAYER_TYPES = ["sliding_attention", "full_attention"] as const;

export interface GptOssSettings extends DecoderSettings {
  readonly intermediateSize: number;
  readonly numHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly normEps: number;
  /** Biases on q/k/v/o_proj (config `attention_bias`, HF's default true). */
  readonly attentionBias: boolean;
  readonly numExperts: number;
  readonly expertsPerToken: number;
  /** The experts' gate is clamped above at this, their up projection to ±this. */
  readonly swigluLimit: number;
  /** The gate's sigmoid gain: glu = gate·σ(alpha·gate). */
  readonly swigluAlpha: number;
  /** Per layer, the sliding window of its attention, or null for full causal attention. */
  readonly slidingWindows: readonly (number | null)[];
  /** Rotary inverse frequencies [head_dim/2], rope_scaling applied. */
  readonly invFreq: Float32Array;
  /** The factor on the rotary cos and sin (YaRN's attention factor; 1 without YaRN). */
  readonly ropeAttentionFactor: number;
  readonly tieWordEmbeddings: boolean;
}

function describe(value: unknown): string {
  return value === undefined ? "missing" : JSON.stringify(value);
}

/** `layer_types`: one "sliding_attention" or "full_attention" per layer; HF's default alternates from sliding. */
function layerTypesOf(config: HFConfig, numLayers: number): readonly (typeof LAYER_TYPES)[number][] {
  const value = config.layer_types;
  if (value === undefined || value === null)
    return Array.from({ length: numLayers }, (_, i) => (i % 2 === 0 ? "sliding_attention" : "full_attention"));
  const valid =
    Array.isArray(value) &&
    value.length === numLayers &&
    value.every((t) => (LAYER_TYPES as readonly unknown[]).includes(t));
  if (!valid) {
    throw new RangeError(
      `config.json: "layer_types" must list one of ${LAYER_TYPES.map((t) => `"${t}"`).join(" or ")} ` +
        `for each of the ${numLayers} layers, got ${describe(value)}`,
    );
  }
  return value as (typeof LAYER_TYPES)[number][];
}

/** `rope_scaling` (or v5's `rope_parameters`): null or "default" for plain rotary, or YaRN. */
function ropeScalingOf(config: HFConfig, maxPositions: number): RopeScaling | null {
  const key =
    config.rope_scaling === undefined && config.rope_parameters !== undefined ? "rope_parameters" : "rope_scaling";
  const value = config[key];
  if (value === undefined) {
    throw new RangeError(
      'config.json: "rope_scaling" is missing; GPT-OSS configs state it (HF versions fill in different YaRN ' +
        'defaults): give {"rope_type": "yarn", "factor": …, "original_max_position_embeddings": …, …} or null',
    );
  }
  if (value === null) return null;
  if (typeof value !== "object" || Array.isArray(value))
    throw new TypeError(`config.json: "${key}" must be null or an object, got ${describe(value)}`);
  const scaling = value as HFConfig;
  const type = scaling.rope_type ?? scaling.type;
  if (type === "default") return null;
  if (type !== "yarn") {
    throw new RangeError(
      `config.json: ${key} type ${describe(type)} is not supported for gpt_oss (supported: "yarn", "default", or null)`,
    );
  }
  const optional = (field: string): number | null => {
    const v = scaling[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== "number" || !Number.isFinite(v))
      throw new TypeError(`config.json: "${key}.${field}" must be a number, got ${describe(v)}`);
    return v;
  };
  const factor = optional("factor");
  if (factor === null || !(factor > 0))
    throw new RangeError(`config.json: "${key}.factor" must be a positive number, got ${describe(scaling.factor)}`);
  const truncate = scaling.truncate ?? true;
  if (typeof truncate !== "boolean")
    throw new TypeError(`config.json: "${key}.truncate" must be true or false, got ${describe(truncate)}`);
  return {
    type: "yarn",
    factor,
    // HF reads these with `or`: 0 and null both mean the default.
    originalMaxPositionEmbeddings: optional("original_max_position_embeddings") || maxPositions,
    betaFast: optional("beta_fast") || 32,
    betaSlow: optional("beta_slow") || 1,
    truncate,
    attentionFactor: optional("attention_factor"),
    mscale: optional("mscale"),
    mscaleAllDim: optional("mscale_all_dim"),
  };
}

/** Reads a GPT-OSS config.json with the defaults of HF's GptOssConfig. */
export function gptOssSettings(config: HFConfig): GptOssSettings {
  if (config.quantization_config !== undefined && config.quantization_config !== null) {
    throw new RangeError(
      "config.json: quantized GPT-OSS checkpoints (quantization_config, e.g. MXFP4 experts) are not supported; " +
        "load a dequantized (bf16/float32) checkpoint",
    );
  }
  const hiddenSize = configInt(config, "hidden_size");
  const numHeads = configInt(config, "num_attention_heads");
  const numKeyValueHeads = configInt(config, "num_key_value_heads", numHeads);
  const numLayers = configInt(config, "num_hidden_layers");
  if (numHeads % numKeyValueHeads !== 0) {
    throw new RangeError(
      `config.json: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`,
    );
  }
  // HF's default head_dim is 64; an explicit null means hidden_size / num_attention_heads.
  const headDim = config.head_dim === null ? Math.floor(hiddenSize / numHeads) : configInt(config, "head_dim", 64);
  if (headDim % 2 !== 0 || headDim === 0)
    throw new RangeError(`config.json: head_dim must be a positive even number for rotary embeddings, got ${headDim}`);
  const partial = configNumber(config, "partial_rotary_factor", 1);
  if (partial !== 1)
    throw new RangeError(`config.json: "partial_rotary_factor" ${partial} is not supported for gpt_oss (expected 1)`);

  const numExperts = configInt(config, ["num_local_experts", "num_experts"], 128);
  const expertsPerToken = configInt(config, "num_experts_per_tok", 4);
  if (expertsPerToken > numExperts) {
    throw new RangeError(
      `config.json: num_experts_per_tok (${expertsPerToken}) must be at most num_local_experts (${numExperts})`,
    );
  }
  const window = config.sliding_window === null ? null : configInt(config, "sliding_window", 128);
  const slidingWindows = layerTypesOf(config, numLayers).map((type) => (type === "sliding_attention" ? window : null));
  const parameters = config.rope_parameters as HFConfig | null | undefined;
  const theta = configNumber(config, "rope_theta", configNumber(parameters ?? {}, "rope_theta", 150000));
  if (!(theta > 0)) throw new RangeError(`config.json: "rope_theta" must be positive, got ${theta}`);
  const scaling = ropeScalingOf(config, configInt(config, "max_position_embeddings", 131072));
  const swigluLimit = configNumber(config, "swiglu_limit", 7);
  if (!(swigluLimit > 0)) throw new RangeError(`config.json: "swiglu_limit" must be positive, got ${swigluLimit}`);

  return {
    vocabSize: configInt(config, "vocab_size"),
    hiddenSize,
    intermediateSize: configInt(config, "intermediate_size"),
    numLayers,
    numHeads,
    numKeyValueHeads,
    headDim,
    normEps: configNumber(config, "rms_norm_eps", 1e-5),
    attentionBias: configBool(config, "attention_bias", true),
    numExperts,
    expertsPerToken,
    swigluLimit,
    swigluAlpha: configNumber(config, "swiglu_alpha", 1.702),
    slidingWindows,
    invFreq: ropeInverseFrequencies(headDim, theta, scaling),
    ropeAttentionFactor: ropeAttentionFactor(scaling),
    tieWordEmbeddings: configBool(config, "tie_word_embeddings", false),
  };
}
