/**
 * Auto-loading, as HF's Auto classes: the family comes from config.json's `model_type` (then its
 * `architectures`), the weights from the folder or Hub repo, the tokenizer when files exist.
 */
import { loadCheckpoint, readConfig, readWeightHeaders } from "../io/checkpoint.js";
import { checkWeightDtype, type WeightDtype } from "../io/dtypes.js";
import { RESOLVE_MODEL_OPTION_NAMES, resolveModel, type ResolveModelOptions } from "../io/hub.js";
import { readOptions } from "../options/index.js";
import { hasTokenizerFiles, Tokenizer } from "../io/tokenizer.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import type { HFConfig } from "./config.js";
import type { ModelFamily, PretrainedModel } from "./model.js";
import { gpt2Family } from "./gpt2.js";
import { gptNeoFamily } from "./gpt-neo.js";
import { gptNeoXFamily } from "./gpt-neox.js";
import { mlpFamily } from "./mlp.js";
import { gruFamily } from "./gru.js";
import { llamaFamily } from "./llama.js";
import { gptOssFamily } from "./gpt-oss.js";
import {
  GPT2_CLASSIFIERS,
  GPT2ForSequenceClassification,
  LLAMA_CLASSIFIERS,
  LlamaForSequenceClassification,
  withSequenceClassification,
} from "./classification.js";
import { checkConfigFitsWeights } from "./weights-check.js";

/**
 * Every family tsvene ships; each family file exports its descriptor (GPT-2's and Llama's also
 * read their sequence classifiers).
 */
export const FAMILIES: readonly ModelFamily[] = [
  withSequenceClassification(gpt2Family, GPT2_CLASSIFIERS, GPT2ForSequenceClassification),
  gptNeoFamily,
  gptNeoXFamily,
  mlpFamily,
  gruFamily,
  withSequenceClassification(llamaFamily, LLAMA_CLASSIFIERS, LlamaForSequenceClassification),
  gptOssFamily,
];

/** The family that reads this config, or an error listing the known model types. */
export function familyOf(config: HFConfig): ModelFamily {
  const modelType = config.model_type;
  const byType = FAMILIES.find((f) => typeof modelType === "string" && f.modelTypes.includes(modelType));
  if (byType) return byType;
  const architectures = Array.isArray(config.architectures) ? config.architectures : [];
  const byArchitecture = FAMILIES.find((f) => architectures.some((a) => f.architectures.includes(String(a))));
  if (byArchitecture) return byArchitecture;
  const known = FAMILIES.flatMap((f) => f.modelTypes).join(", ");
  throw new RangeError(
    `config.json: model_type ${JSON.stringify(modelType)} (architectures ${JSON.stringify(architectures)}) ` +
      `is not supported (known model types: ${known})`,
  );
}

/** A model with zero weights built from a config (for training, or before loading weights). */
export function modelFromConfig(config: HFConfig): PretrainedModel {
  return familyOf(config).create(config);
}

export interface Pretrained {
  model: PretrainedModel;
  /** The tokenizer, when the folder has tokenizer files. */
  tokenizer: Tokenizer | null;
  config: HFConfig;
  generationConfig: HFConfig | null;
  folder: string;
}

export interface LoadPretrainedOptions extends ResolveModelOptions {
  /**
   * The in-memory dtype of the weights: "float32" (default), "bfloat16" (2 bytes per weight,
   * float32 and float16 checkpoints rounded to it), or "auto" (the checkpoint's own: BF16/F16
   * weights stay 16-bit). Activations, norms, softmax and interventions are float32 in every case.
   */
  dtype?: WeightDtype;
}

const LOAD_PRETRAINED_OPTION_NAMES = [
  ...RESOLVE_MODEL_OPTION_NAMES,
  "dtype",
] as const satisfies readonly (keyof LoadPretrainedOptions)[];

/**
 * Loads a model (and its tokenizer) from a local HF-layout folder or a Hub id. The config is
 * checked against the weights' headers before the model is built, so a config that does not fit
 * its weights fails before allocating anything of the size it claims. The model's parameters
 * take the loaded tensors' storage, so the weights are in memory once.
 */
export async function loadPretrained(reference: string, options: LoadPretrainedOptions = {}): Promise<Pretrained> {
  const where = "loadPretrained options";
  const { dtype, ...resolve } = readOptions<LoadPretrainedOptions>(options, LOAD_PRETRAINED_OPTION_NAMES, where);
  const folder = await resolveModel(reference, resolve);
  const config = await readConfig(folder);
  const family = familyOf(config);
  checkConfigFitsWeights(family, config, await readWeightHeaders(folder), `model folder ${folder}`);
  const { generationConfig, tensors } = await loadCheckpoint(folder, { dtype: checkWeightDtype(dtype, where) });
  const model = modelWithWeights(family, config, tensors);
  const hasTokenizer = await hasTokenizerFiles(folder);
  const tokenizer = hasTokenizer ? await Tokenizer.fromFolder(folder) : null;
  return { model, tokenizer, config, generationConfig: generationConfig ?? null, folder };
}

/**
 * The family's model of `config` holding the checkpoint's weights (renamed first when the family
 * needs it). The parameters take the tensors' storage: the caller hands `tensors` over.
 */
export function modelWithWeights(
  family: ModelFamily,
  config: HFConfig,
  tensors: Map<string, Tensor | IntTensor>,
): PretrainedModel {
  const model = family.create(config);
  model.loadStateDict(family.adaptCheckpoint ? family.adaptCheckpoint(tensors, model) : tensors, { share: true });
  return model;
}
