/**
 * Per family: which config.json sizes shape the parameters, and which weight (by name suffix, as
 * checkpoints may lack the base model's prefix) holds each one. `checkConfigFitsWeights` compares
 * them with the weights' headers before a model is built, so that a config can never allocate
 * more than its weight files hold. The sizes come from each family's own settings reader, so
 * defaults and aliases are the family's; only the layer counts are read before it, because the
 * readers allocate per-layer lists.
 */
import type { HFConfig } from "./config.js";
import { GPT2_CLASSIFIERS, LLAMA_CLASSIFIERS, namesClassifier, numLabelsOf } from "./classification.js";
import { gpt2Settings } from "./gpt2.js";
import { gptNeoSettings } from "./gpt-neo.js";
import { gptNeoXSettings } from "./gpt-neox.js";
import { gruSettings } from "./gru.js";
import { llamaSettings } from "./llama-settings.js";
import { gptOssSettings } from "./gpt-oss-settings.js";
import { mlpSettings } from "./mlp.js";

/** One size of the parameters: it must equal `axis` of the weight whose name ends in `weight`. */
export interface SizeRule<S> {
  /** The config fields that set it, named in errors: one list of aliases per factor (most sizes have one). */
  fields: readonly (readonly string[])[];
  size(settings: S): number;
  weight: string;
  axis: number;
  /** Whether the model this config builds has that weight; default: always. */
  present?(settings: S, config: HFConfig): boolean;
}

export interface ShapePlan<S> {
  /** The config fields for the number of layers (aliases). */
  layerFields: readonly string[];
  /** The module list whose `.N.` indices number the layers in weight names. */
  layerList: string;
  /** Layer counts a config states in other forms than layerFields (read before `settings`). */
  otherLayerCounts?(config: HFConfig): [field: string, count: number][];
  settings(config: HFConfig): S;
  layers(settings: S): number;
  sizes: readonly SizeRule<S>[];
}

/** The first of `known` that config.json's `architectures` names, as the families pick their class. */
function architectureOf(config: HFConfig, known: readonly string[]): string | undefined {
  const named = Array.isArray(config.architectures) ? config.architectures.map(String) : [];
  return named.find((a) => known.includes(a));
}

/** GPT-Neo expands `attention_types` ([[pattern, repeats], …]) into one entry per layer. */
function gptNeoLayerCounts(config: HFConfig): [string, number][] {
  const { attention_layers: layers, attention_types: types } = config;
  if (Array.isArray(layers)) return [["attention_layers", layers.length]];
  if (!Array.isArray(types)) return [];
  const count = types.reduce<number>((n, item) => {
    const valid = Array.isArray(item) && Array.isArray(item[0]) && Number.isInteger(item[1]) && item[1] >= 0;
    return valid ? n + item[0].length * item[1] : n;
  }, 0);
  return [["attention_types", count]];
}

const MLP_ARCHITECTURES = ["MLPForClassification", "MLPModel"];
const GRU_ARCHITECTURES = ["GRUForClassification", "GRULMHeadModel", "GRUModel"];

/** The classifiers' `score` [num_labels, hidden], when config.json's architectures name one of `classifiers`. */
function scoreRule(classifiers: readonly string[]): SizeRule<{ numLabels: number }> {
  return {
    fields: [["num_labels", "id2label"]],
    size: (s) => s.numLabels,
    weight: "score.weight",
    axis: 0,
    present: (_, config) => namesClassifier(config, classifiers),
  };
}

const gpt2 = {
  layerFields: ["n_layer", "num_hidden_layers"],
  layerList: "h",
  settings: (config: HFConfig) => ({ ...gpt2Settings(config), numLabels: numLabelsOf(config) }),
  layers: (s) => s.numLayers,
  sizes: [
    { fields: [["n_embd", "hidden_size"]], size: (s) => s.hiddenSize, weight: "wte.weight", axis: 1 },
    { fields: [["vocab_size"]], size: (s) => s.vocabSize, weight: "wte.weight", axis: 0 },
    {
      fields: [["n_positions", "max_position_embeddings"]],
      size: (s) => s.maxPositions,
      weight: "wpe.weight",
      axis: 0,
    },
    // Conv1D stores [in, out].
    { fields: [["n_inner"]], size: (s) => s.intermediateSize, weight: "h.0.mlp.c_fc.weight", axis: 1 },
    scoreRule(GPT2_CLASSIFIERS),
  ],
} satisfies ShapePlan<ReturnType<typeof gpt2Settings> & { numLabels: number }>;

const gptNeo = {
  layerFields: ["num_layers"],
  layerList: "h",
  otherLayerCounts: gptNeoLayerCounts,
  settings: gptNeoSettings,
  layers: (s) => s.numLayers,
  sizes: [
    { fields: [["hidden_size"]], size: (s) => s.hiddenSize, weight: "wte.weight", axis: 1 },
    { fields: [["vocab_size"]], size: (s) => s.vocabSize, weight: "wte.weight", axis: 0 },
    { fields: [["max_position_embeddings"]], size: (s) => s.maxPositions, weight: "wpe.weight", axis: 0 },
    { fields: [["intermediate_size"]], size: (s) => s.intermediateSize, weight: "h.0.mlp.c_fc.weight", axis: 0 },
  ],
} satisfies ShapePlan<ReturnType<typeof gptNeoSettings>>;

const gptNeoX = {
  layerFields: ["num_hidden_layers"],
  layerList: "layers",
  settings: gptNeoXSettings,
  layers: (s) => s.numLayers,
  sizes: [
    { fields: [["hidden_size"]], size: (s) => s.hiddenSize, weight: "embed_in.weight", axis: 1 },
    { fields: [["vocab_size"]], size: (s) => s.vocabSize, weight: "embed_in.weight", axis: 0 },
    {
      fields: [["intermediate_size"]],
      size: (s) => s.intermediateSize,
      weight: "layers.0.mlp.dense_h_to_4h.weight",
      axis: 0,
    },
  ],
} satisfies ShapePlan<ReturnType<typeof gptNeoXSettings>>;

/** The sizes read the same way in every family with Llama's module layout (embed_tokens, self_attn.q/k_proj). */
function llamaLayoutRules<
  S extends { hiddenSize: number; vocabSize: number; numHeads: number; numKeyValueHeads: number; headDim: number },
>(): SizeRule<S>[] {
  return [
    { fields: [["hidden_size"]], size: (s) => s.hiddenSize, weight: "embed_tokens.weight", axis: 1 },
    { fields: [["vocab_size"]], size: (s) => s.vocabSize, weight: "embed_tokens.weight", axis: 0 },
    {
      fields: [["num_attention_heads"], ["head_dim"]],
      size: (s) => s.numHeads * s.headDim,
      weight: "layers.0.self_attn.q_proj.weight",
      axis: 0,
    },
    {
      fields: [["num_key_value_heads"], ["head_dim"]],
      size: (s) => s.numKeyValueHeads * s.headDim,
      weight: "layers.0.self_attn.k_proj.weight",
      axis: 0,
    },
  ];
}

const llama = {
  layerFields: ["num_hidden_layers"],
  layerList: "layers",
  settings: (config: HFConfig) => ({ ...llamaSettings(config), numLabels: numLabelsOf(config) }),
  layers: (s) => s.numLayers,
  sizes: [
    ...llamaLayoutRules(),
    {
      fields: [["intermediate_size"]],
      size: (s) => s.intermediateSize,
      weight: "layers.0.mlp.up_proj.weight",
      axis: 0,
    },
    scoreRule(LLAMA_CLASSIFIERS),
  ],
} satisfies ShapePlan<ReturnType<typeof llamaSettings> & { numLabels: number }>;

const gptOss = {
  layerFields: ["num_hidden_layers"],
  layerList: "layers",
  settings: gptOssSettings,
  layers: (s) => s.numLayers,
  sizes: [
    ...llamaLayoutRules(),
    {
      fields: [["num_local_experts", "num_experts"]],
      size: (s) => s.numExperts,
      weight: "layers.0.mlp.router.weight",
      axis: 0,
    },
    // The experts store x·W, so down_proj is [experts, intermediate, hidden].
    {
      fields: [["intermediate_size"]],
      size: (s) => s.intermediateSize,
      weight: "layers.0.mlp.experts.down_proj",
      axis: 1,
    },
  ],
} satisfies ShapePlan<ReturnType<typeof gptOssSettings>>;

const mlp = {
  layerFields: ["n_layer"],
  layerList: "h",
  settings: mlpSettings,
  layers: (s) => s.numLayers,
  sizes: [
    { fields: [["h_dim"]], size: (s) => s.hiddenSize, weight: "h.0.ff1.weight", axis: 1 },
    {
      fields: [["num_classes", "num_labels"]],
      size: (s) => s.numLabels,
      weight: "score.weight",
      axis: 0,
      present: (_, config) => architectureOf(config, MLP_ARCHITECTURES) !== "MLPModel",
    },
    {
      fields: [["vocab_size"]],
      size: (s) => s.vocabSize,
      weight: "wte.weight",
      axis: 0,
      present: (s) => s.includeEmbeddings,
    },
    {
      fields: [["max_position_embeddings"]],
      size: (s) => s.maxPositions,
      weight: "wpe.weight",
      axis: 0,
      present: (s) => s.includeEmbeddings,
    },
  ],
} satisfies ShapePlan<ReturnType<typeof mlpSettings>>;

const gru = {
  layerFields: ["n_layer"],
  layerList: "cells",
  settings: gruSettings,
  layers: (s) => s.numLayers,
  sizes: [
    { fields: [["h_dim"]], size: (s) => s.hiddenSize, weight: "cells.0.x2h.weight", axis: 1 },
    {
      fields: [["n_labels"]],
      size: (s) => s.numLabels,
      weight: "score.weight",
      axis: 0,
      present: (_, config) => architectureOf(config, GRU_ARCHITECTURES) === "GRUForClassification",
    },
    {
      fields: [["vocab_size"]],
      size: (s) => s.vocabSize,
      weight: "wte.weight",
      axis: 0,
      present: (s) => s.includeEmbeddings,
    },
    {
      fields: [["vocab_size"]],
      size: (s) => s.vocabSize,
      weight: "lm_head.weight",
      axis: 0,
      present: (_, config) => architectureOf(config, GRU_ARCHITECTURES) === "GRULMHeadModel",
    },
    {
      fields: [["max_position_embeddings"]],
      size: (s) => s.maxPositions,
      weight: "wpe.weight",
      axis: 0,
      present: (s) => s.includeEmbeddings,
    },
  ],
} satisfies ShapePlan<ReturnType<typeof gruSettings>>;

/** The plan of each family in FAMILIES, by family name. */
export const SHAPE_PLANS: Readonly<Record<string, ShapePlan<unknown>>> = {
  gpt2,
  gpt_neo: gptNeo,
  gpt_neox: gptNeoX,
  llama,
  gpt_oss: gptOss,
  mlp,
  gru,
};
