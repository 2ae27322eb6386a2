/**
 * ROME-style causal tracing (Meng et al. 2022): corrupt the input embeddings of the subject with
 * Gaussian noise, then restore one site at a time (a component at a layer and position, or a
 * window of layers) from the clean run and measure how much of the clean prediction returns.
 */
import type { PretrainedModel } from "../models/model.js";
import * as tv from "../tensor/index.js";
import { IntTensor } from "../tensor/index.js";
import { measure, recordRun, restoreGrid, topToken, type Metric } from "./restore.js";
import type { TraceComponent, TraceResult } from "./results.js";

export interface TraceOptions {
  /** The prompt [1, T]. */
  inputIds: IntTensor;
  /** A label per position (the tokens as text). */
  tokens: string[];
  /** Positions whose embeddings are corrupted (the subject). */
  corruptedPositions: number[];
  /** The token to measure at the last position; default the clean run's top token. */
  target?: number;
  targetLabel?: string;
  component?: TraceComponent;
  /** Layers restored together around each layer (ROME: 1 for block outputs, 10 for MLP and attention). */
  window?: number;
  /** The noise itself, [corrupted positions, width]; default normal draws of noiseStd. */
  noise?: tv.Tensor;
  /** Noise standard deviation; default 3× the standard deviation of the prompt's input embeddings (ROME). */
  noiseStd?: number;
  seed?: number;
  metric?: Metric;
  onProgress?: (done: number, total: number) => void;
}

export function causalTrace(model: PretrainedModel, options: TraceOptions): TraceResult {
  const { inputIds, tokens, corruptedPositions, component = "block_output", window = 1, seed = 0, metric = "probability" } = options;
  if (inputIds.shape.length !== 2 || inputIds.shape[0] !== 1) throw new RangeError(`causalTrace: inputIds must be one prompt [1, T], got [${inputIds.shape.join(", ")}]`);
  const length = inputIds.shape[1];
  if (tokens.length !== length) throw new RangeError(`causalTrace: ${tokens.length} token labels for ${length} positions`);
  if (corruptedPositions.length === 0 || corruptedPositions.some((p) => !Number.isInteger(p) || p < 0 || p >= length)) {
    throw new RangeError(`causalTrace: corruptedPositions must be positions in 0..${length - 1}, got [${corruptedPositions.join(", ")}]`);
  }
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`causalTrace: window must be a positive integer, got ${window}`);
  const inputs = { inputIds };
  const clean = recordRun(model, inputs, component, null);
  const target = options.target ?? topToken(clean.logits);
  const width = clean.blockInputs[0].shape[2];
  const noise = options.noise ?? tv.randn([corruptedPositions.length, width], {
    std: options.noiseStd ?? 3 * Math.sqrt(tv.variance(clean.blockInputs[0]).item()),
    generator: new tv.Generator(seed),
  });
  if (noise.rank !== 2 || noise.shape[0] !== corruptedPositions.length || noise.shape[1] !== width) {
    throw new RangeError(`causalTrace: noise must be [${corruptedPositions.length}, ${width}], got [${noise.shape.join(", ")}]`);
  }
  const corruption = { positions: corruptedPositions, noise };
  const corrupted = recordRun(model, inputs, component, corruption);
  const grid = restoreGrid(model, inputs, component, window, corrupted, clean, target, metric, corruption, options.onProgress);
  return {
    kind: "trace",
    component,
    window,
    tokens,
    corruptedPositions,
    target,
    targetLabel: options.targetLabel ?? String(target),
    metric,
    clean: measure(clean.logits, target, metric)[0],
    corrupted: measure(corrupted.logits, target, metric)[0],
    grid,
  };
}
