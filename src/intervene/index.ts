export { IntervenableModel, type ForwardResult, type IntervenableOptions } from "./intervenable-model.js";
export type { ForwardOptions, IntervenedGenerateOptions, RunInput } from "./call-inputs.js";
export {
  intervenableConfig,
  representationConfig,
  representationKeys,
  REPRESENTATION_FIELDS,
  type RepresentationConfig,
  type RepresentationInput,
  type IntervenableConfig,
  type IntervenableConfigInput,
  type IntervenableMode,
} from "./config.js";
export {
  DistributedTrainableIntervention,
  Intervention,
  InterventionOutput,
  TrainableIntervention,
  type InterventionInput,
  type InterventionOptions,
  type Subspaces,
} from "./intervention.js";
export * from "./interventions/index.js";
export { RotateLayer, LowRankRotateLayer } from "./rotation.js";
export {
  fitPca,
  pcaRotatedSpaceIntervention,
  type FitPcaOptions,
  type PcaActivations,
  type PcaFit,
} from "./pca.js";
export { saeIntervention, type SaeInterventionOptions } from "./sae.js";
export { doInterventionBySwap, type SwapMode } from "./swap.js";
export type { UnitLocationsInput } from "./locations.js";
export { toPyveneConfig, fromPyveneConfig, type PyveneConfigJson, type SavedInterventionState } from "./serialize.js";
export {
  saveIntervenable,
  loadIntervenable,
  INTERVENTIONS_FILE,
  MODEL_PARAMETERS_FILE,
  PYVENE_WEIGHTS_HINT,
  type SaveIntervenableOptions,
  type LoadIntervenableOptions,
} from "./save.js";
export { pushIntervenable, type PushIntervenableOptions, type PushResult } from "./hub.js";
export { resolveSite, type ResolvedSite } from "./resolve-site.js";
export { gatherUnits, readSite, scatterUnits, writeSite, type SiteReader, type SiteWriter } from "./site-hooks.js";
export type { TimestepSelector } from "./call-inputs.js";
