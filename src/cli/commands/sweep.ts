/**
 * `tsvene sweep`: one sweep (trace, patch or collect) over a JSONL dataset, in shards written to a
 * results folder as they finish, so an interrupted sweep resumes where it stopped; then the
 * aggregate (mean and spread maps over examples) and every example's result. The work is the
 * library's (sweeps/dataset.ts); this command reads the files, keeps the folder and prints.
 */
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { serializeSafetensors } from "../../io/safetensors-format.js";
import {
  checkSweepOptions,
  runDatasetSweep,
  shardCount,
  type DatasetSweepOptions,
  type DatasetSweepRun,
  type ExampleResult,
} from "../../sweeps/dataset.js";
import { readDataset, readSweepSpec, type DatasetExample, type SweepSpec } from "../../sweeps/dataset-spec.js";
import { stackActivations, summarizeSweep, type SweepSummary } from "../../sweeps/dataset-summary.js";
import type { CollectResult, PatchResult, TraceResult } from "../../sweeps/results.js";
import { Tensor } from "../../tensor/index.js";
import { gridJson, patchResultJson, traceResultJson } from "../../viz/grid-json.js";
import { UsageError, type OptionTable } from "../args.js";
import { loadModel, type Command, type LoadedModel } from "../context.js";
import { factsFileOf } from "../facts.js";
import { checkInputPath, describeFsError, textFile, writeOutputs, type OutputFile } from "../files.js";
import { modelHash } from "../model-hash.js";
import { formatScore, labelledTable, toJson } from "../output.js";
import { progressBar } from "../progress.js";
import { checkRedis, readRedisUrl } from "../redis.js";
import { openSweepFolder, type SweepManifest } from "../sweep-folder.js";
import { runOnQueue } from "../sweep-queue.js";
import { tsveneVersion } from "../version.js";

const options = {
  spec: {
    kind: "string",
    form: "<spec.json>",
    required: true,
    description:
      "The sweep: {kind: trace|patch|collect, model?, shardSize?, …the kind's options (e.g. samples, component)}.",
  },
  data: {
    kind: "string",
    form: "<data.jsonl>",
    required: true,
    description:
      "One example per line: {prompt, subject, target?} (trace), {base, source, target?} (patch), {prompt} (collect).",
  },
  out: {
    kind: "string",
    form: "<folder>",
    required: true,
    description: "The results folder (created; the same command on it again resumes an interrupted sweep).",
  },
  queue: {
    kind: "string",
    form: "<redis://host:port>",
    description: "Run the shards on tsvene workers through this Redis (tsvene worker --queue) instead of here.",
  },
  json: { kind: "boolean", description: "Print the summary as JSON on stdout." },
  quiet: { kind: "boolean", short: "q", description: "No progress bar (it is drawn only when stderr is a terminal)." },
} as const satisfies OptionTable;

/** Exit code of a sweep stopped by Ctrl-C (128 + SIGINT), its finished shards kept. */
const INTERRUPTED = 130;

export const sweepCommand: Command<typeof options> = {
  syntax: {
    name: "sweep",
    summary: "A sweep over a dataset (JSONL), in resumable shards, with mean and spread maps over examples.",
    synopsis: "--spec <spec.json> --data <data.jsonl> --out <folder> [options]",
    options,
    notes: [
      "Spec option names are the library's (noiseStd, samples, seed, window, component, metric, layers);",
      "unknown keys are errors. Every data line is checked before the first shard runs. The folder gets",
      "manifest.json, shards/NNNNN.safetensors, and when all shards are done summary.json (mean and",
      "spread over examples: trace by ROME's token groups, patch by position from the last token),",
      "examples.jsonl (each example's result, as the single-prompt command's --json prints it) and, for",
      "collect, activations.safetensors. Ctrl-C stops after the shard in progress; run again to resume.",
      "With --queue, workers compute the shards and this command writes each to the folder as it comes",
      "back, then aggregates: the same files, bit for bit; Ctrl-C withdraws the shards not yet started.",
    ].join("\n"),
    examples: [
      "tsvene sweep --spec examples/sweep/trace.json --data examples/sweep/facts.jsonl --out results",
      "tsvene sweep --spec examples/sweep/patch.json --data examples/sweep/pairs.jsonl --out patched",
    ],
  },

  async run({ values }) {
    const spec = await readSpec(values.spec!);
    await checkInputPath("--data", values.data!, "file", "a JSONL file, one example per line");
    const dataBytes = await readFile(values.data!);
    const loaded = await loadModel(spec.model);
    const examples = asUsage(() => {
      const reader = { tokenizer: loaded.tokenizer, model: loaded.model, factsFile: factsFileOf(loaded.folder) };
      const read = readDataset(reader, spec.kind, dataBytes.toString("utf8"), `--data ${values.data}`);
      checkSweepOptions({ ...loaded, spec }, read[0]);
      return read;
    });
    const manifest: SweepManifest = {
      tsvene: tsveneVersion(),
      spec,
      data: { sha256: createHash("sha256").update(dataBytes).digest("hex"), examples: examples.length },
      model: { sha256: modelHash(loaded.model) },
      shards: shardCount(examples.length, spec.shardSize),
    };
    const url = values.queue === undefined ? undefined : readRedisUrl("--queue", values.queue);
    if (url !== undefined) await checkRedis(url);
    const store = await openSweepFolder("--out", values.out!, manifest);

    const stop = new AbortController();
    const onInterrupt = () => stop.abort();
    process.once("SIGINT", onInterrupt);
    const bar = progressBar(`sweep ${spec.kind}`, { quiet: values.quiet });
    let run: DatasetSweepRun;
    try {
      const local = { ...loaded, spec, examples, store, onProgress: bar.update, signal: stop.signal };
      run = url === undefined ? await runDatasetSweep(local) : await runQueued(url, manifest, local);
    } finally {
      bar.finish();
      process.removeListener("SIGINT", onInterrupt);
    }
    const progress = `${run.computed.length} shard(s) computed, ${run.reused.length} already finished`;
    if (!run.complete) {
      process.stderr.write(
        `tsvene sweep: interrupted with ${run.computed.length + run.reused.length} of ${manifest.shards} shards ` +
          `finished (${progress}); run the same command again to resume\n`,
      );
      return INTERRUPTED;
    }
    const results = run.results!;
    const summary = summarizeSweep(results);
    const summaryJson = { model: loaded.name, spec, ...summaryForJson(summary) };
    const files = resultFiles(values.out!, summaryJson, examples, results, loaded);
    await writeOutputs(files);
    const text = `${describeSummary(summary, manifest.shards, progress)}results: ${values.out}\n`;
    process.stdout.write(values.json ? `${toJson(summaryJson)}\n` : text);
    return 0;
  },
};

/**
 * The sweep with its shards computed by workers: once all of them are in the store, the local
 * runner only reads them back in order, so the aggregate is the local run's.
 */
async function runQueued(url: string, manifest: SweepManifest, local: DatasetSweepOptions): Promise<DatasetSweepRun> {
  const note = (text: string) => process.stderr.write(`tsvene sweep: ${text}\n`);
  const queued = await runOnQueue({ ...local, url, manifest, onNote: note, signal: local.signal! });
  const { complete, computed, reused } = queued;
  return { complete, computed, reused, results: complete ? (await runDatasetSweep(local)).results : null };
}

async function readSpec(file: string): Promise<SweepSpec> {
  await checkInputPath("--spec", file, "file", "a JSON file naming the sweep kind and its options");
  const text = await readFile(file, "utf8").catch((e: unknown) => {
    throw new UsageError(`--spec ${file}: cannot read the file (${describeFsError(e)})`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--spec ${file}: not valid JSON (${(e as Error).message})`);
  }
  return asUsage(() => readSweepSpec(json, `--spec ${file}`));
}

/** The library's errors about the user's spec and data, as usage errors (they name the file and line). */
function asUsage<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw e instanceof RangeError || e instanceof TypeError ? new UsageError(e.message) : e;
  }
}

function summaryForJson(summary: SweepSummary) {
  if (summary.kind === "collect") return summary;
  const { map, ...rest } = summary;
  return { ...rest, map: { ...gridJson(map), counts: map.counts } };
}

/** summary.json, examples.jsonl and (collect) activations.safetensors, written together. */
function resultFiles(
  folder: string,
  summaryJson: object,
  examples: readonly DatasetExample[],
  results: readonly ExampleResult[],
  loaded: LoadedModel,
): OutputFile[] {
  const model = loaded.name;
  const lines = results.map((result, i) => {
    const example = examples[i];
    const tokens = (ids: readonly number[]) => ids.map((id) => loaded.tokenizer.decode([id]));
    const json =
      example.kind === "trace"
        ? traceResultJson(result as TraceResult, { model, prompt: example.prompt, subject: example.subject })
        : example.kind === "patch"
          ? patchResultJson(result as PatchResult, { model, basePrompt: example.base, sourcePrompt: example.source })
          : { kind: "collect", prompt: example.prompt, tokens: tokens(example.ids), length: example.ids.length };
    return `${JSON.stringify({ line: example.line, ...json })}\n`;
  });
  const files = [
    textFile("--out (summary.json)", join(folder, "summary.json"), `${toJson(summaryJson)}\n`),
    textFile("--out (examples.jsonl)", join(folder, "examples.jsonl"), lines.join("")),
  ];
  if (results[0].kind !== "collect") return files;
  const collected = results as CollectResult[];
  const component = collected[0].component;
  const tensors = Object.fromEntries(
    stackActivations(collected).map((a) => [`layer_${a.layer}.${component}`, new Tensor(a.values, a.shape)]),
  );
  const metadata = { component, lengths: collected.map((r) => r.activations[0].shape[1]).join(",") };
  const bytes = serializeSafetensors(tensors, { metadata });
  const path = join(folder, "activations.safetensors");
  return [...files, { flag: "--out (activations.safetensors)", path, write: (target) => writeFile(target, bytes) }];
}

function describeSummary(summary: SweepSummary, shards: number, progress: string): string {
  const head =
    `sweep ${summary.kind} of ${summary.component} over ${summary.examples} example(s) ` +
    `in ${shards} shard(s) (${progress})`;
  if (summary.kind === "collect") {
    const { layers, width, lengths } = summary;
    return `${head}\ncollected layers ${layers.join(", ")}: width ${width}, lengths ${lengths.join(", ")}\n`;
  }
  const scores = Object.entries(summary.scores)
    .map(([name, s]) => `${name} ${formatScore(s.mean)} ± ${formatScore(s.spread)}`)
    .join(", ");
  const table = labelledTable(summary.map, { best: "none" });
  const counts = `examples per column: ${summary.map.counts.join(", ")}`;
  const means = `mean ${summary.metric} over examples (± spread): ${scores}`;
  return `${head}\n${means}\ncolumns: ${summary.alignment}\n${table}${counts}\n`;
}
