/**
 * ROME-style causal tracing (Meng et al. 2022): corrupt the input embeddings of the subject with
 * Gaussian noise, then restore one site at a time (a component at a layer and position, or a
 * window of layers) from the clean run and measure how much of the clean prediction returns.
 */
import type { DecoderModel } from "../models/decoder.js";
import type { PretrainedModel } from "../models/model.js";
import * as tv from "../tensor/index.js";
import type { IntTensor } from "../tensor/index.js";
import { describe, readOptions } from "../options/index.js";
import { checkLabels, checkPositionComponent, checkMetric, checkPrompt, checkTarget, checkWindow } from "./checks.js";
import { asDecoder, type Corruption, embeddings, type Metric } from "./engine.js";
import { restoreGrids, scoreGrid } from "./restore-grid.js";
import type { TraceResult } from "./results.js";

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
  /** Any per-position component of the site map (ROME's: block_output, mlp_output, attention_output). */
  component?: string;
  /** Layers restored together around each layer (ROME: 1 for block outputs, 10 for MLP and attention). */
  window?: number;
  /**
   * The noise itself, [samples, corrupted positions, width] (or [corrupted positions, width] for one sample);
   * default normal draws of noiseStd.
   */
  noise?: tv.Tensor;
  /** Noise standard deviation; default 3× the standard deviation of the prompt's input embeddings (ROME). */
  noiseStd?: number;
  seed?: number;
  /**
   * Noise draws averaged per cell; each draw traces the whole grid. Default 10 (ROME averages
   * several: one draw's corrupted probability swings with the seed), or the draws in `noise`.
   */
  samples?: number;
  metric?: Metric;
  onProgress?: (done: number, total: number) => void;
}

const TRACE_OPTIONS = [
  "inputIds",
  "tokens",
  "corruptedPositions",
  "target",
  "targetLabel",
  "component",
  "window",
  "noise",
  "noiseStd",
  "seed",
  "samples",
  "metric",
  "onProgress",
] as const satisfies readonly (keyof TraceOptions)[];

/** Draws when the caller gives neither `samples` nor the noise itself. */
const DEFAULT_SAMPLES = 10;

/** A trace's checked options and its noise: what the grid and a single cell's run start from. */
export interface TraceSetup {
  model: DecoderModel;
  options: Partial<TraceOptions>;
  inputs: { inputIds: IntTensor };
  tokens: string[];
  component: string;
  window: number;
  metric: Metric;
  corruptedPositions: number[];
  seed: number;
  samples: number;
  /** The target given; null for the clean run's top token. */
  target: number | null;
  /** The noise's standard deviation, null when the caller gave the noise itself. */
  noiseStd: number | null;
  /** The noise of each draw, [samples, corrupted positions, width]. */
  draws: tv.Tensor;
}

export function causalTrace(anyModel: PretrainedModel, traceOptions: TraceOptions): TraceResult {
  const setup = prepareTrace(anyModel, traceOptions, "causalTrace");
  const { model, options, inputs, component, window, metric, corruptedPositions, samples } = setup;
  const length = inputs.inputIds.shape[1];
  const scores = restoreGrids({
    model,
    inputIds: inputs.inputIds,
    component,
    window,
    patched: Array.from({ length: samples }, (_, s) => traceCorruption(setup, s)),
    restored: inputs.inputIds,
    target: setup.target,
    metric,
    onProgress: options.onProgress,
  });
  const { grids, target } = scores;
  // Sums in float64 so that the mean and standard deviation over draws lose nothing to rounding.
  const sums = new Float64Array(model.numLayers * length);
  const squares = new Float64Array(sums.length);
  for (const grid of grids) {
    grid.forEach((v, i) => {
      sums[i] += v;
      squares[i] += v * v;
    });
  }
  const corruptedDraws = [...scores.patched];
  const corrupted = spreadOf(
    corruptedDraws.reduce((a, v) => a + v, 0),
    sumOfSquares(corruptedDraws),
    samples,
  );
  const cells = Array.from(sums, (sum, i) => spreadOf(sum, squares[i], samples));
  return {
    kind: "trace",
    component,
    window,
    tokens: setup.tokens,
    corruptedPositions,
    target,
    targetLabel: options.targetLabel ?? String(target),
    metric,
    noiseStd: setup.noiseStd,
    seed: options.noise === undefined ? setup.seed : null,
    samples,
    clean: scores.restored,
    corrupted: corrupted.mean,
    corruptedSpread: corrupted.spread,
    grid: {
      ...scoreGrid(
        Float32Array.from(cells, (c) => c.mean),
        model.numLayers,
        length,
      ),
      spread: Float32Array.from(cells, (c) => c.spread),
    },
  };
}

/** The corruption of draw `s`: its noise added at the corrupted positions. */
export function traceCorruption(setup: TraceSetup, s: number): Corruption {
  return { positions: setup.corruptedPositions, noise: tv.squeeze(tv.slice(setup.draws, 0, s, s + 1), 0) };
}

/** Checks a trace's options (naming `where` in errors) and draws the noise. */
export function prepareTrace(anyModel: PretrainedModel, traceOptions: TraceOptions, where: string): TraceSetup {
  const model = asDecoder(anyModel, where);
  const options = readOptions<TraceOptions>(traceOptions, TRACE_OPTIONS, `${where} options`);
  const inputIds = checkPrompt(options.inputIds, "inputIds", where);
  const length = inputIds.shape[1];
  const tokens = checkLabels(options.tokens, length, "tokens", where);
  const component = checkPositionComponent(model, options.component ?? "block_output", where);
  const window = checkWindow(options.window ?? 1, model, where);
  const metric = checkMetric(options.metric ?? "probability", where);
  const { corruptedPositions = [], seed = 0 } = options;
  // Noise given as a tensor says how many draws it holds; a disagreeing `samples` is refused below.
  const samples = options.samples ?? (options.noise === undefined ? DEFAULT_SAMPLES : noiseDraws(options.noise));
  if (!Number.isInteger(samples) || samples < 1)
    throw new RangeError(`${where}: samples must be a positive integer, got ${describe(samples)}`);
  if (
    !Array.isArray(corruptedPositions) ||
    corruptedPositions.length === 0 ||
    corruptedPositions.some((p) => !Number.isInteger(p) || p < 0 || p >= length) ||
    new Set(corruptedPositions).size !== corruptedPositions.length
  ) {
    throw new RangeError(
      `${where}: corruptedPositions must be distinct positions in 0..${length - 1}, ` +
        `got ${describe(corruptedPositions)}`,
    );
  }
  if (!Number.isInteger(seed)) throw new RangeError(`${where}: seed must be an integer, got ${describe(seed)}`);
  if (options.noiseStd !== undefined && !(Number.isFinite(options.noiseStd) && options.noiseStd >= 0)) {
    throw new RangeError(`${where}: noiseStd must be a non-negative number, got ${describe(options.noiseStd)}`);
  }
  if (options.noise !== undefined && options.noiseStd !== undefined)
    throw new TypeError(`${where}: give noise or noiseStd, not both`);
  const inputs = { inputIds };
  const target = checkTarget(options.target, model.settings.vocabSize, where) ?? null;
  const noiseStd =
    options.noise === undefined
      ? (options.noiseStd ?? 3 * Math.sqrt(tv.variance(embeddings(model, inputs)).item()))
      : null;
  const width = model.settings.hiddenSize;
  const noise =
    options.noise ??
    tv.randn([samples, corruptedPositions.length, width], { std: noiseStd!, generator: new tv.Generator(seed) });
  const draws = noise.rank === 2 ? tv.unsqueeze(noise, 0) : noise;
  if (
    draws.rank !== 3 ||
    draws.shape[0] !== samples ||
    draws.shape[1] !== corruptedPositions.length ||
    draws.shape[2] !== width
  ) {
    throw new RangeError(
      `${where}: noise must be [${samples}, ${corruptedPositions.length}, ${width}] ` +
        `(samples, corrupted positions, width), got [${noise.shape.join(", ")}]`,
    );
  }
  return {
    model,
    options,
    inputs,
    tokens,
    component,
    window,
    metric,
    corruptedPositions,
    seed,
    samples,
    target,
    noiseStd,
    draws,
  };
}

/** The draws a noise tensor holds: its first dimension, or one for [corrupted positions, width]. */
function noiseDraws(noise: unknown): number {
  return noise instanceof tv.Tensor && noise.rank === 3 ? noise.shape[0] : 1;
}

function sumOfSquares(values: readonly number[]): number {
  return values.reduce((a, v) => a + v * v, 0);
}

/** Mean and standard deviation (n − 1 divisor; 0 for one draw) of n draws from their sum and sum of squares. */
function spreadOf(sum: number, squares: number, n: number): { mean: number; spread: number } {
  const mean = sum / n;
  // Rounding can leave a tiny negative variance where every draw is equal.
  return { mean, spread: n > 1 ? Math.sqrt(Math.max(0, (squares - n * mean * mean) / (n - 1))) : 0 };
}
