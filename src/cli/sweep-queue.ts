/**
 * The submitting side of a distributed sweep: every unfinished shard becomes a job on the shard
 * queue, and each shard a worker finishes is fetched from Redis and written to the results folder's
 * store, as the local run writes it, so that resuming and aggregating are the local run's. The queue
 * is polled rather than listened to, because polling also notices what Redis lost: a shard whose job
 * is gone (Redis restarted without persistence) is queued again. A shard delivered twice is written
 * once, keyed by its index; a second copy must be byte-identical or the sweep stops.
 */
import { type Job, Queue } from "bullmq";
import { Redis } from "ioredis";
import { shardCount, shardExamples, type ShardStore } from "../sweeps/dataset.js";
import type { DatasetExample } from "../sweeps/dataset-spec.js";
import { dropShardBytes, isShardBytesRef, redisOptions, takeShardBytes } from "./redis.js";
import { isShardJobData, SHARD_JOB, SHARD_QUEUE, shardJobId, shardJobOptions, sweepId } from "./shard-job.js";
import type { SweepManifest } from "./sweep-folder.js";

const POLL_MS = 200;
/** Job states in which a shard's job exists (a shard with none was lost by Redis). */
const LIVE_STATES = [
  "waiting",
  "active",
  "delayed",
  "prioritized",
  "paused",
  "waiting-children",
  "completed",
  "failed",
] as const;
const UNSTARTED_STATES = ["waiting", "delayed", "prioritized", "paused"] as const;

export interface QueuedSweep {
  url: string;
  manifest: SweepManifest;
  examples: readonly DatasetExample[];
  store: ShardStore;
  onProgress?: (done: number, total: number) => void;
  /** What the user should know as it happens: shards queued again, duplicates, lost connections. */
  onNote: (text: string) => void;
  /** Stops waiting; the shards no worker has started are withdrawn from the queue. */
  signal: AbortSignal;
}

export interface QueuedRun {
  complete: boolean;
  /** Shards workers finished for this run, and shards the store held already. */
  computed: number[];
  reused: number[];
}

/** Runs the unfinished shards on the queue, writing each to the store as it comes back. */
export async function runOnQueue(sweep: QueuedSweep): Promise<QueuedRun> {
  const { manifest, examples, store } = sweep;
  const id = sweepId(manifest);
  const shardSize = manifest.spec.shardSize;
  const size = (shard: number) => shardExamples(examples, shard, shardSize).length;
  const kept = new Set(await store.finished());
  const reused = Array.from(kept);
  const pending = new Set(
    Array.from({ length: shardCount(examples.length, shardSize) }, (_, s) => s).filter((s) => !kept.has(s)),
  );
  const total = Array.from(pending).reduce((n, s) => n + size(s), 0);
  const computed: number[] = [];
  const queue = new Queue(SHARD_QUEUE, { connection: redisOptions(sweep.url) });
  const redis = new Redis(redisOptions(sweep.url));
  let connected = true;
  const onError = (error: Error) => {
    if (connected) sweep.onNote(`lost the connection to Redis at ${sweep.url} (${error.message}); reconnecting`);
    connected = false;
  };
  queue.on("error", onError);
  redis.on("error", onError);
  redis.on("ready", () => void (connected = true));
  const ours = (job: Job | undefined): job is Job =>
    job !== undefined && isShardJobData(job.data) && job.data.sweep === id;
  const jobData = (shard: number) => ({
    sweep: id,
    shard,
    tsvene: manifest.tsvene,
    modelSha256: manifest.model.sha256,
    spec: manifest.spec,
    examples: shardExamples(examples, shard, shardSize),
  });
  const enqueue = (shards: readonly number[]) =>
    queue.addBulk(shards.map((s) => ({ name: SHARD_JOB, data: jobData(s), opts: shardJobOptions(id, s) })));

  /** Writes a finished shard once; a copy of a shard already kept must be the same bytes. */
  async function collect(job: Job): Promise<void> {
    const shard = job.data.shard as number;
    const ref = job.returnvalue as unknown;
    const bytes = isShardBytesRef(ref) ? await takeShardBytes(redis, ref) : null;
    if (bytes === null) {
      sweep.onNote(`shard ${shard}'s result is no longer in Redis; it is queued again`);
    } else if (kept.has(shard)) {
      const first = await store.read(shard);
      if (Buffer.compare(Buffer.from(first), Buffer.from(bytes)) !== 0) {
        throw new Error(
          `shard ${shard} came back twice with different results: the workers disagree ` +
            "(the same model and version should compute the same bytes); the first copy is kept in the folder",
        );
      }
      sweep.onNote(`shard ${shard} was delivered twice; the copies are identical and it is written once`);
    } else {
      await store.write(shard, bytes);
      kept.add(shard);
      pending.delete(shard);
      computed.push(shard);
    }
    if (isShardBytesRef(ref)) await dropShardBytes(redis, ref);
    await job.remove();
  }

  async function poll(): Promise<void> {
    for (const job of (await queue.getJobs(["completed"])).filter(ours)) await collect(job);
    const failed = (await queue.getJobs(["failed"])).filter(ours);
    if (failed.length > 0) {
      const job = failed[0];
      // Removed, so that running the command again queues the shard afresh.
      await Promise.all(failed.map((j) => j.remove()));
      throw new Error(`shard ${job.data.shard} failed after ${job.attemptsMade} attempt(s): ${job.failedReason}`);
    }
    const live = new Set(await queue.getRanges([...LIVE_STATES], 0, -1));
    const lost = Array.from(pending).filter((s) => !live.has(shardJobId(id, s)));
    if (lost.length > 0) {
      sweep.onNote(`shard(s) ${lost.join(", ")} are not on the queue (Redis restarted?); queued again`);
      await enqueue(lost);
    }
    const active = (await queue.getJobs(["active"])).filter(ours);
    const inProgress = active.reduce((n, job) => n + (typeof job.progress === "number" ? job.progress : 0), 0);
    sweep.onProgress?.(computed.reduce((n, s) => n + size(s), 0) + inProgress, total);
  }

  try {
    // A failed job of an earlier run keeps its id: it is removed so that the shard is queued again.
    for (const shard of pending) {
      const old = await queue.getJob(shardJobId(id, shard));
      if (old !== undefined && (await old.isFailed())) await old.remove();
    }
    await enqueue(Array.from(pending));
    while (pending.size > 0 && !sweep.signal.aborted) {
      await poll();
      if (pending.size > 0) await pause(POLL_MS, sweep.signal);
    }
    return { complete: pending.size === 0, computed, reused };
  } finally {
    if (pending.size > 0) await withdraw(queue, ours).catch(() => {});
    await queue.close();
    redis.disconnect();
  }
}

/** Removes the sweep's jobs no worker has started; those in progress finish and wait for the next run. */
async function withdraw(queue: Queue, ours: (job: Job | undefined) => job is Job): Promise<void> {
  const unstarted = (await queue.getJobs([...UNSTARTED_STATES])).filter(ours);
  await Promise.all(unstarted.map((job) => job.remove()));
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      signal.removeEventListener("abort", finish);
      done();
    }
    signal.addEventListener("abort", finish, { once: true });
  });
}
