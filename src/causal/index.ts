export {
  CausalModel,
  type CausalModelDefinition,
  type CounterfactualDatasetOptions,
  type CounterfactualExample,
  type EquivalenceClass,
  type EquivalenceClasses,
  type FactualDatasetOptions,
  type FactualExample,
  type InputSampler,
  type InterventionSampler,
  type Mechanism,
  type SampleInputOptions,
  type SampleRequest,
  type TensorConversion,
  type TensorCounterfactualExample,
  type TensorFactualExample,
} from "./causal-model.js";
export { sameValue, type CausalValue, type Setting } from "./values.js";
export {
  averageTraces, factsJson, fillTemplate, parseFacts, positionClass, POSITION_CLASSES, subjectsIn, worldFacts,
  type AverageTrace, type Fact, type Facts, type FactsWorld, type SubjectTrace, type WorldFact,
} from "./facts-world.js";
export { continuationIds, subjectPositions, targetToken, type TargetToken } from "./prompt-tokens.js";
