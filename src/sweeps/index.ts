export { causalTrace, type TraceOptions } from "./trace.js";
export { activationPatching, type PatchOptions } from "./patch.js";
export { collectActivations, type CollectOptions } from "./collect.js";
export { measure, type Metric } from "./engine.js";
export type { ScoreGrid, TraceComponent, TraceResult, PatchResult, CollectResult } from "./results.js";
export { attributionPatching, type AttributionOptions, type AttributionResult } from "./attribution.js";
export {
  directLogitAttribution,
  logitLens,
  type LogitAttributionOptions,
  type LogitAttributionResult,
  type LensOptions,
  type LensResult,
} from "./dla.js";
export { headPatching, type HeadPatchOptions } from "./heads.js";
export { pathPatching, type PathPatchOptions } from "./paths.js";
export { embedToDistrib, topVals, type EmbedToDistribOptions, type TopValue } from "./distributions.js";
export type { ComponentSite, HeadGrid, HeadPatchResult, HeadSite, PathPatchResult } from "./results.js";
export {
  ActivationCache,
  hookNames,
  runWithCache,
  runWithHooks,
  type CacheAddress,
  type CacheOptions,
  type ForwardHook,
  type HooksOptions,
} from "./cache.js";
export { patchCellRun, traceCellRun, type CellRun, type GridCell } from "./cell-run.js";
export {
  decodeShard,
  encodeShard,
  runDatasetSweep,
  runExample,
  type DatasetSweepOptions,
  type DatasetSweepRun,
  type ExampleResult,
  type ShardStore,
} from "./dataset.js";
export { readDataset, readSweepSpec, type DatasetExample, type SweepKind, type SweepSpec } from "./dataset-spec.js";
export { summarizeSweep, type MeanMap, type SweepSummary } from "./dataset-summary.js";
