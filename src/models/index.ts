export {
  batchSize,
  PretrainedModel,
  inputShape,
  type ModelInputs,
  type ModelOutput,
  type ModelSettings,
  type ModelFamily,
} from "./model.js";
export { DecoderModel, type DecoderSettings, type PassInputs } from "./decoder.js";
export type { Site, SiteMap } from "./sites.js";
export { configNumber, configInt, configOptionalNumber, configBool, configString, type HFConfig } from "./config.js";
export { generate, type GenerateOptions, type GenerateOutput } from "./generate.js";
export {
  FAMILIES,
  familyOf,
  modelFromConfig,
  loadPretrained,
  type LoadPretrainedOptions,
  type Pretrained,
} from "./auto.js";
export { DEFAULT_MODEL_FOLDER, loadDefaultModel } from "./default-model.js";
export { loadPretrainedFrom } from "./load-files.js";
export {
  GPT2ForSequenceClassification,
  LlamaForSequenceClassification,
  numLabelsOf,
} from "./classification.js";
