export { causalTrace, type TraceOptions } from "./trace.js";
export { activationPatching, type PatchOptions } from "./patch.js";
export { collectActivations, type CollectOptions } from "./collect.js";
export { measure, type Metric } from "./engine.js";
export type { ScoreGrid, TraceComponent, TraceResult, PatchResult, CollectResult } from "./results.js";
