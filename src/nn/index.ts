export {
  Module,
  Container,
  ModuleList,
  type AnyModule,
  type PreHook,
  type PostHook,
  type HookHandle,
  type StateDict,
} from "./module.js";
export { Linear, Conv1D, Embedding, LayerNorm, RMSNorm, Activation, Identity, initNormal } from "./layers.js";
export { splitHeads, mergeHeads, repeatKeyValue, KeyValueCache } from "./attention.js";
export { applyRotary, ropeInverseFrequencies, rotaryTablesFromFrequencies, type RopeScaling } from "./rope.js";
export { MASKED, additiveMask, checkMaskValues, positionIds, whereCausal, paddingMask } from "./masks.js";
export { TiedLinear } from "./tied.js";
