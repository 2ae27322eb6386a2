/**
 * Dataset sweeps: one sweep (trace, patch or collect) over every example of a dataset, in shards.
 * Each example runs through the same library call as a single prompt, so its result is the one
 * that call gives. A shard is the unit that is stored and resumed: the runner asks its store which
 * shards are finished, computes only the others, and hands each finished shard to the store as
 * bytes (a safetensors file: the results' tensors, and their other fields as JSON metadata), so a
 * folder on disk or a job queue can hold them alike.
 */
import type { Tokenizer } from "../io/tokenizer.js";
import { parseSafetensors, serializeSafetensors } from "../io/safetensors-format.js";
import type { PretrainedModel } from "../models/model.js";
import { intTensor, Tensor } from "../tensor/index.js";
import { collectActivations } from "./collect.js";
import type { DatasetExample, SweepSpec } from "./dataset-spec.js";
import { activationPatching, preparePatch, type PatchOptions } from "./patch.js";
import type { CollectResult, PatchResult, TraceResult } from "./results.js";
import { causalTrace, prepareTrace, type TraceOptions } from "./trace.js";

export type ExampleResult = TraceResult | PatchResult | CollectResult;

/** Where finished shards are kept: a results folder, a job queue's results. */
export interface ShardStore {
  /** The shards already finished (by an earlier, interrupted run, say). */
  finished(): Promise<ReadonlySet<number>>;
  read(shard: number): Promise<Uint8Array>;
  /** Keeps a finished shard, all or nothing. */
  write(shard: number, bytes: Uint8Array): Promise<void>;
}

export interface DatasetSweepOptions {
  model: PretrainedModel;
  /** Names the measured token of examples without a target (the clean or source run's top token). */
  tokenizer: Tokenizer;
  spec: SweepSpec;
  examples: readonly DatasetExample[];
  store: ShardStore;
  /** Examples computed in this run, of those it has to compute (finished shards are not counted). */
  onProgress?: (done: number, total: number) => void;
  /** Stops the sweep after the shard in progress; what is finished stays in the store. */
  signal?: AbortSignal;
}

export interface DatasetSweepRun {
  /** Whether every shard is finished; false when the signal stopped the run first. */
  complete: boolean;
  /** Shards computed by this run, and shards found finished in the store. */
  computed: number[];
  reused: number[];
  /** Every example's result in dataset order, when complete. */
  results: ExampleResult[] | null;
}

export function shardCount(examples: number, shardSize: number): number {
  return Math.ceil(examples / shardSize);
}

/** The examples of shard `shard`. */
export function shardExamples<T>(examples: readonly T[], shard: number, shardSize: number): T[] {
  return examples.slice(shard * shardSize, (shard + 1) * shardSize);
}

/** Runs every unfinished shard, then reads all of them back from the store in order. */
export async function runDatasetSweep(options: DatasetSweepOptions): Promise<DatasetSweepRun> {
  const { spec, examples, store, signal } = options;
  const shards = shardCount(examples.length, spec.shardSize);
  const finished = await store.finished();
  const todo = Array.from({ length: shards }, (_, s) => s).filter((s) => !finished.has(s));
  const reused = Array.from(finished).filter((s) => s < shards);
  const total = todo.reduce((n, s) => n + shardExamples(examples, s, spec.shardSize).length, 0);
  const computed: number[] = [];
  let done = 0;
  for (const shard of todo) {
    if (signal?.aborted) return { complete: false, computed, reused, results: null };
    const part = shardExamples(examples, shard, spec.shardSize);
    const results = runShard(options, part, (finishedInShard) => options.onProgress?.(done + finishedInShard, total));
    await store.write(shard, encodeShard(results));
    done += part.length;
    computed.push(shard);
  }
  const results: ExampleResult[] = [];
  for (let shard = 0; shard < shards; shard++) {
    const part = decodeShard(await store.read(shard), `shard ${shard}`);
    const expected = shardExamples(examples, shard, spec.shardSize).length;
    if (part.length !== expected)
      throw new Error(`shard ${shard} holds ${part.length} results, expected ${expected}; remove it to recompute it`);
    results.push(...part);
  }
  return { complete: true, computed, reused, results };
}

/** The results of a shard's examples, one library call each; `onExample` counts them as they finish. */
export function runShard(
  setting: { model: PretrainedModel; tokenizer: Tokenizer; spec: SweepSpec },
  examples: readonly DatasetExample[],
  onExample?: (done: number) => void,
): ExampleResult[] {
  return examples.map((example, i) => {
    const result = runExample(setting, example);
    onExample?.(i + 1);
    return result;
  });
}

/**
 * One example's result: the library call a single prompt gets, with the spec's options. The
 * measured token is named by the tokenizer when the line gave no target.
 */
export function runExample(
  { model, tokenizer, spec }: { model: PretrainedModel; tokenizer: Tokenizer; spec: SweepSpec },
  example: DatasetExample,
): ExampleResult {
  const labels = (ids: readonly number[]) => ids.map((id) => tokenizer.decode([id]));
  if (example.kind === "collect") {
    return collectActivations(model, { ...spec.options, inputIds: intTensor([example.ids]) });
  }
  const named = <R extends TraceResult | PatchResult>(r: R): R => ({
    ...r,
    targetLabel: example.target?.label ?? tokenizer.decode([r.target]),
  });
  if (example.kind === "trace") return named(causalTrace(model, traceOptions(spec, example, labels)));
  return named(activationPatching(model, patchOptions(spec, example, labels)));
}

function traceOptions(
  spec: SweepSpec,
  example: Extract<DatasetExample, { kind: "trace" }>,
  labels: (ids: readonly number[]) => string[],
): TraceOptions {
  return {
    ...spec.options,
    inputIds: intTensor([example.ids]),
    tokens: labels(example.ids),
    corruptedPositions: example.corruptedPositions,
    target: example.target?.id,
    targetLabel: example.target?.label,
  };
}

function patchOptions(
  spec: SweepSpec,
  example: Extract<DatasetExample, { kind: "patch" }>,
  labels: (ids: readonly number[]) => string[],
): PatchOptions {
  return {
    ...spec.options,
    base: intTensor([example.baseIds]),
    source: intTensor([example.sourceIds]),
    baseTokens: labels(example.baseIds),
    sourceTokens: labels(example.sourceIds),
    target: example.target?.id,
    targetLabel: example.target?.label,
  };
}

/**
 * Checks the spec's options against the model on the first example, through the checks its
 * library call makes (errors name "sweep spec"), before any shard is run or stored.
 */
export function checkSweepOptions(
  setting: { model: PretrainedModel; tokenizer: Tokenizer; spec: SweepSpec },
  first: DatasetExample,
): void {
  const { model, tokenizer, spec } = setting;
  const labels = (ids: readonly number[]) => ids.map((id) => tokenizer.decode([id]));
  if (first.kind === "trace") prepareTrace(model, traceOptions(spec, first, labels), "sweep spec");
  else if (first.kind === "patch") preparePatch(model, patchOptions(spec, first, labels), "sweep spec");
  else runExample(setting, first);
}

/** Metadata key of a shard file's JSON part. */
const SHARD_KEY = "tsvene.shard";

/**
 * A shard's results as safetensors bytes: every typed array becomes a tensor (float32 stored as
 * is, so nothing is rounded) and the rest is JSON metadata that refers to it by name.
 */
export function encodeShard(results: readonly ExampleResult[]): Uint8Array {
  const tensors: Record<string, Tensor> = {};
  const json = JSON.stringify(results, (_key, value: unknown) => {
    if (value instanceof Float32Array) {
      const name = `t${Object.keys(tensors).length}`;
      tensors[name] = new Tensor(value, [value.length]);
      return { $float32: name };
    }
    // JSON has no NaN or infinities; a metric can be either.
    if (typeof value === "number" && !Number.isFinite(value)) return { $number: String(value) };
    return value;
  });
  return serializeSafetensors(tensors, { metadata: { [SHARD_KEY]: json } });
}

export function decodeShard(bytes: Uint8Array, source: string): ExampleResult[] {
  const { metadata, tensors } = parseSafetensors(bytes, { source });
  const json = metadata[SHARD_KEY];
  if (json === undefined) throw new Error(`${source}: not a tsvene shard (no ${SHARD_KEY} metadata)`);
  return JSON.parse(json, (_key, value: unknown) => {
    if (typeof value !== "object" || value === null) return value;
    const { $float32, $number } = value as { $float32?: string; $number?: string };
    if ($number !== undefined) return Number($number);
    if ($float32 === undefined) return value;
    const tensor = tensors.get($float32);
    if (!(tensor instanceof Tensor)) throw new Error(`${source}: tensor ${$float32} is missing`);
    return tensor.data;
  }) as ExampleResult[];
}
