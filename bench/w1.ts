/**
 * Workload W1 of ../shared/bench (README there): causal tracing on the HASHW-v1 GPT-2-small,
 * 12 layers × 10 positions, restoring block_output from the clean run, with the stored noise on
 * the first four positions. Free of Node: bench:workloads runs it in Node, bench:browser in a
 * browser worker.
 */
import * as tv from "../src/index.js";
import { timed } from "./timing.js";

/** GPT-2 BPE of "Hello world, the Eiffel Tower is in". */
export const W1_PROMPT = [15496, 995, 11, 262, 412, 733, 417, 8765, 318, 287];
/** The clean run's top token, as pyvene measured it. */
export const W1_TARGET = 39619;
const CORRUPTED_POSITIONS = [0, 1, 2, 3];

/** pyvene's seconds for one workload variant (pyvene_cpu.json → configs.*.results). */
export interface PyveneTiming {
  min_s: number;
  median_s: number;
}

/** pyvene_cpu.json → configs.t1.checks.W1. */
export interface W1Checks {
  p_clean: number;
  p_corrupt: number;
  grid_logit_target: number[][];
  grid_prob_target: number[][];
  clean_logit_target: number;
  corrupt_logit_target: number;
}

/** The trace W1 times: `noise` is w1_noise.safetensors' `noise` (4 × 768). */
export function w1Trace(model: tv.PretrainedModel, noise: tv.Tensor, metric: "probability" | "logit"): tv.TraceResult {
  return tv.causalTrace(model, {
    inputIds: tv.intTensor([W1_PROMPT]),
    tokens: W1_PROMPT.map(String),
    corruptedPositions: CORRUPTED_POSITIONS,
    noise,
    target: W1_TARGET,
    metric,
  });
}

/** The largest |Δ| between a row-major grid and pyvene's grid of the same shape. */
export function gridDifference(values: ArrayLike<number>, reference: number[][]): number {
  const cols = reference[0].length;
  if (values.length !== reference.length * cols)
    throw new RangeError(`a grid of ${values.length} values, expected ${reference.length} × ${cols}`);
  let largest = 0;
  for (let i = 0; i < values.length; i++)
    largest = Math.max(largest, Math.abs(values[i] - reference[Math.floor(i / cols)][i % cols]));
  return largest;
}

/** What the W1 lines print beside tsvene's figures: pyvene's t1 timings and check values. */
export interface PyveneW1 {
  /** pyvene's Causal_Tracing tutorial pattern: a new IntervenableModel per cell. */
  tutorial: PyveneTiming;
  /** pyvene's fastest expression: clean activations collected once, then a batch of 10 per layer. */
  fastest: PyveneTiming;
  checks: W1Checks;
}

/** W1's part of pyvene_cpu.json (parsed), configuration t1. */
export function pyveneW1(cpuJson: unknown): PyveneW1 {
  const t1 = (cpuJson as { configs?: { t1?: { results?: { W1?: Record<string, PyveneTiming> }; checks?: unknown } } })
    .configs?.t1;
  const timings = t1?.results?.W1;
  const checks = (t1?.checks as { W1?: W1Checks } | undefined)?.W1;
  const tutorial = timings?.tutorial_new_model_per_cell;
  const fastest = timings?.cached_clean_batched_per_layer;
  if (!tutorial || !fastest || !checks?.grid_logit_target)
    throw new Error(
      "pyvene_cpu.json: expected configs.t1.results.W1.{tutorial_new_model_per_cell, " +
        "cached_clean_batched_per_layer} and configs.t1.checks.W1",
    );
  return { tutorial, fastest, checks };
}

/** W1 timed as pyvene was: `runs` runs after a warm-up (min, median); with 0 runs, one run timed alone. */
export function timedW1(
  model: tv.PretrainedModel,
  noise: tv.Tensor,
  runs: number,
): { result: tv.TraceResult; min: number; median: number; runs: number } {
  if (runs > 0) return { ...timed(() => w1Trace(model, noise, "logit"), runs), runs };
  const start = performance.now();
  const result = w1Trace(model, noise, "logit");
  const time = (performance.now() - start) / 1000;
  return { result, min: time, median: time, runs: 0 };
}
