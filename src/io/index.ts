export {
  LOADABLE_DTYPES,
  WEIGHT_DTYPES,
  type LoadableDtype,
  type FloatWriteDtype,
  type WeightDtype,
} from "./dtypes.js";
export {
  parseSafetensors,
  parseSafetensorsHeader,
  serializeSafetensors,
  storedByteLength,
  type TensorInfo,
  type SafetensorsHeader,
  type SafetensorsContents,
  type ReadSafetensorsOptions,
  type WriteSafetensorsOptions,
  type NamedTensors,
} from "./safetensors-format.js";
export {
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  type ReadSafetensorsFileOptions,
  type SafetensorsIo,
} from "./safetensors.js";
export { readTorchStateDict, parseTorchStateDict } from "./torch-pickle.js";
export { parseNpy, parseNpz } from "./npy.js";
export { loadSae, gemmaScopeSae, type SaeArchitecture, type SaeWeights } from "./sae.js";
export {
  loadCheckpoint,
  saveCheckpoint,
  readConfig,
  readGenerationConfig,
  locateWeights,
  parseWeightIndex,
  shardFileName,
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
  type Checkpoint,
  type LoadCheckpointOptions,
  type SaveCheckpointOptions,
} from "./checkpoint.js";
export type { JsonObject } from "./files.js";
export {
  filesFromBlobs,
  filesFromUrl,
  filesFromHub,
  type ModelFiles,
  type UrlFilesOptions,
  type HubFilesOptions,
} from "./sources.js";
export { resolveModel, defaultCacheDir, HubError, type HubErrorCode, type ResolveModelOptions } from "./hub.js";
export {
  Tokenizer,
  TOKENIZER_FILES,
  type PaddingSide,
  type EncodeOptions,
  type DecodeOptions,
  type EncodeBatchOptions,
  type BatchEncoding,
} from "./tokenizer.js";
