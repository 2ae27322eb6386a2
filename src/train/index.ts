export {
  Optimizer,
  SGD,
  Adam,
  AdamW,
  type SGDOptions,
  type AdamOptions,
  type AdamState,
  type ParamGroup,
  type ParamGroupInput,
  type HasParamGroups,
} from "./optimizers.js";
export {
  LambdaLR,
  linearScheduleWithWarmup,
  linearWarmupFactor,
  constantSchedule,
  linspace,
  type LRScheduler,
} from "./schedules.js";
export {
  trainAlignment,
  evalAlignment,
  weightedAverage,
  batchUnitLocations,
  type AlignmentBatch,
  type BatchSource,
  type Metrics,
  type TrainAlignmentOptions,
  type TrainAlignmentResult,
  type StepInfo,
} from "./alignment.js";
export { dasOnFacts, DAS_ON_FACTS_DEFAULTS, type DasOnFactsOptions, type DasOnFactsResult } from "./das-facts.js";
