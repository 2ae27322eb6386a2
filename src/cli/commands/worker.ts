/**
 * `tsvene worker`: takes shards of distributed sweeps (`tsvene sweep --queue`) from the Redis queue,
 * computes each with the library call the local sweep makes, and hands the shard's bytes back
 * through Redis. A worker runs only shards of its own tsvene version and model (by SHA-256 of config
 * and weights); any other is failed for good with the reason, never computed with another model.
 */
import { type Job, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import { encodeShard, runExample, type ExampleResult } from "../../sweeps/dataset.js";
import type { OptionTable } from "../args.js";
import { loadModel, type Command, type LoadedModel } from "../context.js";
import { modelHash } from "../model-hash.js";
import { checkRedis, putShardBytes, readRedisUrl, redisOptions, type ShardBytesRef } from "../redis.js";
import { isShardJobData, SHARD_QUEUE } from "../shard-job.js";
import { tsveneVersion } from "../version.js";

const DEFAULT_STALL_SECONDS = 30;
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;
/** Exit code when a second signal stops the worker mid-shard (128 + SIGINT). */
const INTERRUPTED = 130;

const options = {
  queue: {
    kind: "string",
    form: "<redis://host:port>",
    required: true,
    description: "The Redis that holds the sweeps' queue (the URL given to tsvene sweep --queue).",
  },
  concurrency: {
    kind: "int",
    min: 1,
    form: "N",
    description: "Shards taken at once (default 1). They share one CPU thread: for more cores, start more workers.",
  },
  "stall-seconds": {
    kind: "int",
    min: 1,
    form: "N",
    description:
      "A worker silent this long is taken for dead and its shard given to another " +
      `(default ${DEFAULT_STALL_SECONDS}); one example must take well under half of it.`,
  },
} as const satisfies OptionTable;

export const workerCommand: Command<typeof options> = {
  syntax: {
    name: "worker",
    summary: "Take shards of distributed sweeps (tsvene sweep --queue) from Redis and compute them.",
    synopsis: "--queue <redis://host:port> [options]",
    options,
    notes: [
      "Runs until stopped: Ctrl-C (or SIGTERM) finishes the shard in progress, then exits; a second Ctrl-C",
      "exits at once (the shard goes to another worker). Each sweep's model is loaded once (the job names it",
      "as the sweep's spec does: the embedded model, a Hub id or a folder, found on this machine). A shard",
      "of another tsvene version or model (SHA-256 of its config and weights) is refused: the job fails with",
      "the reason and the sweep stops. A failed shard is retried twice (1 s, then 2 s later); if a worker",
      "dies, its shard is taken by another worker after --stall-seconds. An unreachable Redis is an error",
      "within seconds; a Redis that goes away later is waited for.",
    ].join("\n"),
    examples: ["tsvene worker --queue redis://127.0.0.1:6379"],
  },

  async run({ values }) {
    const url = readRedisUrl("--queue", values.queue!);
    await checkRedis(url);
    const version = tsveneVersion();
    const redis = new Redis(redisOptions(url));
    const models = new Map<string, Promise<{ loaded: LoadedModel; sha256: string }>>();
    const modelFor = (reference: string | undefined) => {
      const key = reference ?? "";
      if (!models.has(key)) {
        const loading = loadModel(reference).then((loaded) => ({ loaded, sha256: modelHash(loaded.model) }));
        // A failed load is tried afresh by the next job rather than remembered.
        loading.catch(() => models.delete(key));
        models.set(key, loading);
      }
      return models.get(key)!;
    };
    const log = (text: string) => process.stderr.write(`tsvene worker: ${text}\n`);

    async function computeShard(job: Job): Promise<ShardBytesRef> {
      if (!isShardJobData(job.data)) throw new UnrecoverableError("not a tsvene shard job (its data has another form)");
      const { sweep, shard, examples } = job.data;
      if (job.data.tsvene !== version) {
        throw new UnrecoverableError(
          `the sweep was submitted by tsvene ${job.data.tsvene}, this worker runs tsvene ${version}; ` +
            "run the same version on both sides",
        );
      }
      const { spec } = job.data;
      const { loaded, sha256 } = await modelFor(spec.model);
      if (sha256 !== job.data.modelSha256) {
        throw new UnrecoverableError(
          `this worker's model ${loaded.name} has SHA-256 ${sha256} (of its config and weights), the sweep's ` +
            `${job.data.modelSha256}; give the worker the same model`,
        );
      }
      const started = Date.now();
      log(`shard ${shard} of sweep ${sweep.slice(0, 12)} started (${examples.length} example(s))`);
      const results: ExampleResult[] = [];
      for (const example of examples) {
        results.push(runExample({ ...loaded, spec }, example));
        // Also yields between examples, so the job's lock is renewed while a long shard runs.
        await job.updateProgress(results.length);
      }
      const ref = await putShardBytes(redis, `tsvene:shard:${job.id}`, encodeShard(results));
      log(`shard ${shard} of sweep ${sweep.slice(0, 12)} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return ref;
    }

    const stallMs = (values["stall-seconds"] ?? DEFAULT_STALL_SECONDS) * 1000;
    const worker = new Worker(SHARD_QUEUE, computeShard, {
      connection: redisOptions(url),
      concurrency: values.concurrency ?? 1,
      lockDuration: stallMs,
      stalledInterval: stallMs,
    });
    let connected = true;
    const onError = (error: Error) => {
      if (connected) log(`lost the connection to Redis at ${url} (${error.message}); reconnecting`);
      connected = false;
    };
    worker.on("error", onError);
    redis.on("error", onError);
    redis.on("ready", () => {
      if (!connected) log(`connected to Redis at ${url} again`);
      connected = true;
    });
    worker.on("failed", (job, error) => {
      if (job !== undefined) log(`shard ${job.data?.shard} failed: ${error.message}`);
    });
    // The handlers go in before the line that tells a supervisor the worker is up, so a signal
    // sent on seeing it never meets the default action (exit without closing the worker).
    const closed = new Promise<void>((stopped) => {
      const stop = () => {
        log("stopping after the shard(s) in progress (Ctrl-C again to stop now)");
        for (const signal of STOP_SIGNALS) {
          process.removeListener(signal, stop);
          // The shard in progress is abandoned: its lock lapses and another worker takes it.
          process.once(signal, () => process.exit(INTERRUPTED));
        }
        worker.close().then(stopped, stopped);
      };
      for (const signal of STOP_SIGNALS) process.on(signal, stop);
    });
    log(`taking shards from ${url} (queue ${SHARD_QUEUE}, tsvene ${version}); Ctrl-C stops`);
    await closed;
    redis.disconnect();
    log("stopped");
    return 0;
  },
};
