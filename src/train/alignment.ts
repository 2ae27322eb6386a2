/**
 * pyvene's alignment training loop (train_alignment / eval_alignment, spec §8.2) over an
 * IntervenableModel: each batch runs the base with one source through the interventions, the
 * caller's loss is back-propagated, and the optimiser, the learning-rate schedule and the
 * temperature annealing step after every `gradientAccumulationSteps` batches.
 *
 * Where tsvene differs from pyvene, on purpose:
 * - Gradient accumulation: an update follows each full group of `gradientAccumulationSteps`
 *   batches, so it sees exactly that many (pyvene's first update sees one batch more), and the
 *   default schedule counts updates, not batches. With no accumulation both are pyvene's loop.
 *   Batches left over at the end, too few for a group, do not update; their gradients are dropped.
 * - Temperatures are float32: torch.linspace(50, 0.1, batches × epochs) in float32. pyvene casts
 *   the schedule to bfloat16 (so T = 0.1 is set as 0.10009765625), and since set_temperature
 *   replaces the parameter's data, T stays bfloat16 and part of the Boundless mask is computed
 *   in bfloat16 from then on.
 * - Optimiser and intervention gradients are cleared after each update, and the model's too
 *   when it trains (pyvene clears only the interventions').
 * - Metrics may be numbers or records of numbers; evaluation averages each field by batch size.
 */
import { IntTensor, Tensor, div, noGrad } from "../tensor/index.js";
import { batchSize } from "../models/model.js";
import type { IntervenableModel, RunInput, UnitLocationsInput } from "../intervene/index.js";
import { describe, readOptions } from "../options/index.js";
import { Adam, type Optimizer } from "./optimizers.js";
import { linearScheduleWithWarmup, linspace, type LRScheduler } from "./schedules.js";

/**
 * One batch. The base and source runs are `base` and `source` (token ids, or model inputs such
 * as `{ inputsEmbeds }`), or pyvene's `input_ids` and `source_input_ids`. Unit locations are
 * `unitLocations`, or pyvene's flat keys (see batchUnitLocations).
 */
export interface AlignmentBatch<L = unknown> {
  base?: RunInput;
  source?: RunInput;
  input_ids?: RunInput;
  source_input_ids?: RunInput;
  labels: L;
  subspaces?: unknown;
  unitLocations?: UnitLocationsInput;
  [flatKey: string]: unknown;
}

/** Batches for training: re-iterable once per epoch, with a known length (an array, or a loader object). */
export type BatchSource<B> = Iterable<B> & { readonly length: number };

/** A metric value: a number, or named numbers. */
export type Metrics = number | Readonly<Record<string, number>>;

/** An IntervenableModel whose output is a logits tensor, or an object holding one (ModelOutput). */
type AnyIntervenableModel = IntervenableModel<unknown>;

interface BatchOptions<B, L> {
  /** Turns each raw batch into an AlignmentBatch (pyvene's inputs_collator). */
  inputsCollator?: ((batch: B) => AlignmentBatch<L>) | null;
}

export interface TrainAlignmentOptions<B, L, M extends Metrics> extends BatchOptions<B, L> {
  /** The loss of a batch: a one-value tensor from the intervened logits. */
  computeLoss: (logits: Tensor, labels: L) => Tensor;
  /** Metrics of each training batch, reported through onStep. */
  computeMetrics?: ((logits: Tensor, labels: L) => M) | null;
  /** Learning rate of the default Adam (1e-3). */
  lr?: number;
  epochs?: number;
  gradientAccumulationSteps?: number;
  /** Default: Adam over getTrainableParameters() with lr. */
  optimizer?: Optimizer;
  /** Default: linear warm-up over the first 10% of updates, then linear decay to 0; null: constant lr. */
  scheduler?: LRScheduler | null;
  /** Annealed temperature, set after each update (default 50 → 0.1); null leaves temperatures alone. */
  temperature?: { start: number; end: number } | null;
  /** Called after each batch (pyvene shows the loss and metrics on its progress bar). */
  onStep?: (info: StepInfo<M>) => void;
}

export interface StepInfo<M> {
  epoch: number;
  /** Batches seen so far, over all epochs, counting this one from 0. */
  batch: number;
  /** The batch's loss, before division by gradientAccumulationSteps. */
  loss: number;
  metrics: M | null;
  /** Whether the optimiser stepped after this batch. */
  updated: boolean;
}

export interface TrainAlignmentResult<M> {
  /** Each batch's loss, in order. */
  losses: number[];
  /** Each batch's metrics (empty without computeMetrics). */
  metrics: M[];
  /** How many times the optimiser stepped. */
  updates: number;
}

const TRAIN_OPTIONS = [
  "inputsCollator",
  "computeLoss",
  "computeMetrics",
  "lr",
  "epochs",
  "gradientAccumulationSteps",
  "optimizer",
  "scheduler",
  "temperature",
  "onStep",
] as const satisfies readonly (keyof TrainAlignmentOptions<unknown, unknown, Metrics>)[];

function checkTemperature(t: unknown): { start: number; end: number } | null {
  if (t === null) return null;
  const { start, end } = readOptions<{ start: number; end: number }>(
    t,
    ["start", "end"],
    "trainAlignment options.temperature",
  );
  if (!(typeof start === "number" && start > 0 && typeof end === "number" && end > 0)) {
    throw new RangeError(
      `trainAlignment: temperature must be {start, end} with positive numbers, or null, got ${describe(t)}`,
    );
  }
  return { start, end };
}

/** pyvene's train_alignment: trains the interventions (and the model, after enableModelGradients) on the batches. */
export function trainAlignment<L, M extends Metrics = number, B = AlignmentBatch<L>>(
  im: AnyIntervenableModel,
  batches: BatchSource<B>,
  trainOptions: TrainAlignmentOptions<B, L, M>,
): TrainAlignmentResult<M> {
  const options = readOptions<TrainAlignmentOptions<B, L, M>>(
    trainOptions,
    TRAIN_OPTIONS,
    "trainAlignment options",
  ) as TrainAlignmentOptions<B, L, M>;
  const epochs = positiveInteger(options.epochs ?? 10, "trainAlignment: epochs");
  const accumulation = positiveInteger(
    options.gradientAccumulationSteps ?? 1,
    "trainAlignment: gradientAccumulationSteps",
  );
  if (typeof options.computeLoss !== "function")
    throw new TypeError("trainAlignment: computeLoss must be a function (logits, labels) => loss tensor");
  const perEpoch = batchCount(batches);
  const totalBatches = perEpoch * epochs;
  const totalUpdates = Math.floor(totalBatches / accumulation);
  const optimizer = options.optimizer ?? defaultOptimizer(im, options.lr ?? 1e-3);
  const scheduler =
    options.scheduler === undefined
      ? linearScheduleWithWarmup(optimizer, 0.1 * totalUpdates, totalUpdates)
      : options.scheduler;
  const temperature =
    options.temperature === undefined ? { start: 50, end: 0.1 } : checkTemperature(options.temperature);
  const temperatures = temperature === null ? null : linspace(temperature.start, temperature.end, totalBatches);

  const result: TrainAlignmentResult<M> = { losses: [], metrics: [], updates: 0 };
  let seen = 0;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      let inEpoch = 0;
      for (const raw of batches) {
        if (++inEpoch > perEpoch)
          throw new RangeError(`trainAlignment: epoch ${epoch} yielded more batches than batches.length (${perEpoch})`);
        const batch = collate(raw, options, "trainAlignment");
        const logits = intervenedLogits(im, batch, "trainAlignment");
        const metrics = options.computeMetrics ? options.computeMetrics(logits, batch.labels) : null;
        const loss = options.computeLoss(logits, batch.labels);
        checkLoss(loss);
        result.losses.push(loss.item());
        if (metrics !== null) result.metrics.push(metrics);
        (accumulation > 1 ? div(loss, accumulation) : loss).backward();
        const updated = (seen + 1) % accumulation === 0;
        if (updated) {
          optimizer.step();
          scheduler?.step();
          optimizer.zeroGrad();
          im.zeroGrad();
          if (temperatures) im.setTemperature(temperatures[seen]);
          result.updates += 1;
        }
        options.onStep?.({ epoch, batch: seen, loss: result.losses[seen], metrics, updated });
        seen += 1;
      }
      if (inEpoch !== perEpoch) {
        throw new RangeError(
          `trainAlignment: epoch ${epoch} yielded ${inEpoch} batches, but batches.length is ${perEpoch} ` +
            "(give an array or a loader that can be iterated once per epoch)",
        );
      }
    }
  } finally {
    optimizer.zeroGrad();
    im.zeroGrad();
  }
  return result;
}

/** pyvene's eval_alignment: metrics of every batch without gradients, averaged with batch sizes as weights. */
export function evalAlignment<L, M extends Metrics, B = AlignmentBatch<L>>(
  im: AnyIntervenableModel,
  batches: Iterable<B>,
  evalOptions: BatchOptions<B, L> & { computeMetrics: (logits: Tensor, labels: L) => M },
): M {
  const options = readOptions<typeof evalOptions>(
    evalOptions,
    ["inputsCollator", "computeMetrics"],
    "evalAlignment options",
  ) as typeof evalOptions;
  if (typeof options.computeMetrics !== "function")
    throw new TypeError("evalAlignment: computeMetrics must be a function (logits, labels) => metrics");
  const metrics: M[] = [];
  const sizes: number[] = [];
  noGrad(() => {
    for (const raw of batches) {
      const batch = collate(raw, options, "evalAlignment");
      metrics.push(options.computeMetrics(intervenedLogits(im, batch, "evalAlignment"), batch.labels));
      sizes.push(batchSize(baseOf(batch, "evalAlignment"), "evalAlignment: the base input"));
    }
  });
  if (metrics.length === 0) throw new RangeError("evalAlignment: the batches were empty (nothing to evaluate)");
  return weightedAverage(metrics, sizes);
}

/** Σ vᵢwᵢ / Σ wᵢ, field by field for records (pyvene's weighted_average). */
export function weightedAverage<M extends Metrics>(values: readonly M[], weights: readonly number[]): M {
  if (values.length !== weights.length)
    throw new RangeError(
      `weightedAverage: ${values.length} values and ${weights.length} weights (the lengths must be the same)`,
    );
  const total = weights.reduce((a, w) => a + w, 0);
  if (values.length === 0 || total === 0)
    throw new RangeError("weightedAverage: the weights sum to 0 (nothing to average)");
  if (values.every((v) => typeof v === "number"))
    return ((values as readonly number[]).reduce((a, v, i) => a + v * weights[i], 0) / total) as M;
  const fields = Object.keys(values[0]);
  const out: Record<string, number> = {};
  for (const field of fields) {
    out[field] =
      values.reduce((a, v, i) => {
        const x = typeof v === "object" && v !== null ? (v as Record<string, number>)[field] : undefined;
        if (typeof x !== "number")
          throw new TypeError(
            `weightedAverage: metrics ${i} has no number "${field}" (every batch must return the same fields)`,
          );
        return a + x * weights[i];
      }, 0) / total;
  }
  return out as M;
}

/**
 * pyvene's _batch_process_unit_location: unit locations from flat batch keys
 * `"{prefix}.{0|1}.{part}"`, 0 for the source side and 1 for the base side, one key per part of
 * the unit ("pos"; "h.pos" gives [heads, positions]). Values are per-example unit lists
 * [[i, …], …] or an IntTensor [batch, k].
 * - Parallel: intervention i (in key order) reads prefix `source_{i}->base`.
 * - Serial: the interventions of group g read `source_{g}->source_{g+1}`, the last group's
 *   `source_{g}->base` (pyvene writes `source_{g}->source{g+1}`, a key its forward rejects).
 */
export function batchUnitLocations(
  im: AnyIntervenableModel,
  batch: Readonly<Record<string, unknown>>,
): UnitLocationsInput {
  if (!Object.keys(batch).some((k) => k.includes("->"))) {
    throw new RangeError(
      "batch: no unit locations (give unitLocations, " +
        'or flat keys such as "source_0->base.0.pos" and "source_0->base.1.pos")',
    );
  }
  const reps = im.keys.map((key) => im.config.representations[im.representationKeys.indexOf(key)]);
  const sides = (prefix: string, i: number): [unknown, unknown] => {
    const parts = reps[i].unit.split(".");
    const read = (side: 0 | 1) => {
      const values = parts.map((part) => {
        const key = `${prefix}.${side}.${part}`;
        if (!(key in batch))
          throw new RangeError(
            `batch["${key}"] is missing (intervention ${i}, ${im.keys[i]}, has unit "${reps[i].unit}")`,
          );
        return unitRows(batch[key], key);
      });
      return values.length === 1 ? values[0] : values;
    };
    return [read(0), read(1)];
  };
  if (im.config.mode === "parallel") {
    const pairs = reps.map((_, i) => sides(`source_${i}->base`, i));
    return { "sources->base": [pairs.map((p) => p[0]), pairs.map((p) => p[1])] };
  }
  const groupOf = reps.map((r, i) => r.groupKey ?? i);
  const groups = [...new Set(groupOf)].sort((a, b) => a - b);
  const out: UnitLocationsInput = {};
  groups.forEach((g, at) => {
    const prefix = at === groups.length - 1 ? `source_${g}->base` : `source_${g}->source_${g + 1}`;
    const pairs = reps.flatMap((_, i) => (groupOf[i] === g ? [sides(prefix, i)] : []));
    out[prefix] = [pairs.map((p) => p[0]), pairs.map((p) => p[1])];
  });
  return out;
}

function unitRows(value: unknown, key: string): unknown {
  if (value instanceof IntTensor || value instanceof Tensor) {
    if (value.shape.length !== 2)
      throw new RangeError(`batch["${key}"] must be [batch, units], got shape [${value.shape.join(", ")}]`);
    return value.toArray();
  }
  return value;
}

function collate<B, L>(raw: B, options: BatchOptions<B, L>, where: string): AlignmentBatch<L> {
  const batch = options.inputsCollator ? options.inputsCollator(raw) : (raw as unknown as AlignmentBatch<L>);
  if (batch === null || typeof batch !== "object")
    throw new TypeError(`${where}: a batch must be an object with base, source and labels, got ${String(batch)}`);
  if (!("labels" in batch)) throw new TypeError(`${where}: the batch has no labels`);
  return batch;
}

function baseOf(batch: AlignmentBatch, where: string): RunInput {
  const base = batch.base ?? batch.input_ids;
  if (base === undefined)
    throw new TypeError(`${where}: the batch has no base input (give base, or pyvene's input_ids)`);
  return base;
}

/** The forward pyvene's loop makes: the base, one source, the batch's locations and subspaces. */
function intervenedLogits(im: AnyIntervenableModel, batch: AlignmentBatch, where: string): Tensor {
  const base = baseOf(batch, where);
  const source = batch.source ?? batch.source_input_ids;
  if (source === undefined)
    throw new TypeError(`${where}: the batch has no source input (give source, or pyvene's source_input_ids)`);
  const unitLocations = (batch.unitLocations ??
    batch.unit_locations ??
    batchUnitLocations(im, batch)) as UnitLocationsInput;
  const subspaces = batch.subspaces instanceof IntTensor ? batch.subspaces.toArray() : batch.subspaces;
  const { intervened } = im.forward(base, [source], { unitLocations, subspaces });
  if (intervened instanceof Tensor) return intervened;
  const logits = (intervened as { logits?: unknown } | null)?.logits;
  if (!(logits instanceof Tensor)) throw new TypeError(`${where}: the model's output has no logits tensor`);
  return logits;
}

function defaultOptimizer(im: AnyIntervenableModel, lr: number): Optimizer {
  const params = im.getTrainableParameters();
  if (params.length === 0) {
    throw new RangeError(
      "trainAlignment: nothing to train (no trainable intervention, " +
        "and the model's gradients are disabled; see enableModelGradients)",
    );
  }
  return new Adam([{ params }], { lr });
}

function checkLoss(loss: unknown): asserts loss is Tensor {
  if (!(loss instanceof Tensor) || loss.size !== 1) {
    throw new TypeError(
      "trainAlignment: computeLoss must return a one-value Tensor, " +
        `got ${loss instanceof Tensor ? `shape [${loss.shape.join(", ")}]` : String(loss)}`,
    );
  }
  if (!loss.requiresGrad)
    throw new TypeError(
      "trainAlignment: the loss does not depend on any trainable parameter " +
        "(was it computed under noGrad, or from detached values?)",
    );
}

function batchCount(batches: unknown): number {
  const n = (batches as { length?: unknown } | null)?.length;
  if (
    batches === null ||
    typeof batches !== "object" ||
    !(Symbol.iterator in batches) ||
    !Number.isInteger(n) ||
    (n as number) < 0
  ) {
    throw new TypeError(
      "trainAlignment: batches must be an array, or an iterable with a length that can be iterated once per epoch",
    );
  }
  return n as number;
}

function positiveInteger(value: number, where: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${where} must be a positive integer, got ${value}`);
  return value;
}
