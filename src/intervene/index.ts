export { IntervenableModel, type ForwardOptions, type ForwardResult, type IntervenableOptions, type RunInput } from "./intervenable-model.js";
export { intervenableConfig, representationConfig, representationKeys, REPRESENTATION_FIELDS, type RepresentationConfig, type RepresentationInput, type IntervenableConfig, type IntervenableConfigInput, type IntervenableMode } from "./config.js";
export { Intervention, type InterventionInput, type InterventionOptions, type Subspaces } from "./intervention.js";
export * from "./interventions/index.js";
export { RotateLayer, LowRankRotateLayer } from "./rotation.js";
export { doInterventionBySwap, type SwapMode } from "./swap.js";
export type { UnitLocationsInput } from "./locations.js";
export { toPyveneConfig, fromPyveneConfig, type PyveneConfigJson, type SavedInterventionState } from "./serialize.js";
