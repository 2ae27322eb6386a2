export { Module, ModuleList, type AnyModule, type PreHook, type PostHook, type HookHandle, type StateDict } from "./module.js";
export { Linear, Conv1D, Embedding, LayerNorm, RMSNorm, Activation, Identity, initNormal } from "./layers.js";
export { MASKED, splitHeads, mergeHeads, repeatKeyValue, additiveMask, positionIds, KeyValueCache } from "./attention.js";
export { applyRotary, ropeInverseFrequencies, rotaryTablesFromFrequencies, type RopeScaling } from "./rope.js";
export { whereCausal, paddingMask } from "./causal.js";
export { TiedLinear } from "./tied.js";
