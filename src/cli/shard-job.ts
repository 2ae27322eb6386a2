/**
 * A distributed sweep's shard as a BullMQ job: one queue serves every sweep (workers need not know
 * the sweeps in advance), and each job names its sweep, the shard's index and examples (already
 * tokenized and checked by the submitter), and what the worker must match: the tsvene version and
 * the model's SHA-256. The job id is the sweep's id and the shard's index, so the same shard added
 * twice is one job.
 */
import { createHash } from "node:crypto";
import type { DatasetExample, SweepSpec } from "../sweeps/dataset-spec.js";
import type { SweepManifest } from "./sweep-folder.js";

export const SHARD_QUEUE = "tsvene-shards";
export const SHARD_JOB = "shard";

export interface ShardJobData {
  /** The sweep's id: a hash of its manifest (spec, data, model, version). */
  sweep: string;
  shard: number;
  tsvene: string;
  modelSha256: string;
  spec: SweepSpec;
  examples: DatasetExample[];
}

/** A failed shard is tried this often in all, the waits doubling from BACKOFF_MS. */
const ATTEMPTS = 3;
const BACKOFF_MS = 1000;

export function sweepId(manifest: SweepManifest): string {
  return createHash("sha256").update(JSON.stringify(manifest)).digest("hex").slice(0, 32);
}

/** BullMQ refuses numeric and colon-holding custom ids: this is neither. */
export function shardJobId(sweep: string, shard: number): string {
  return `${sweep}-${shard}`;
}

export function shardJobOptions(sweep: string, shard: number) {
  return {
    jobId: shardJobId(sweep, shard),
    attempts: ATTEMPTS,
    backoff: { type: "exponential", delay: BACKOFF_MS },
    // The submitter removes each job once it has the shard; until then the result or failure stays readable.
    removeOnComplete: false,
    removeOnFail: false,
  } as const;
}

/** Whether a job's data is a shard job of this format (a job from elsewhere is refused, not misread). */
export function isShardJobData(data: unknown): data is ShardJobData {
  const job = data as Partial<ShardJobData> | null;
  return (
    typeof job?.sweep === "string" &&
    Number.isSafeInteger(job.shard) &&
    typeof job.tsvene === "string" &&
    typeof job.modelSha256 === "string" &&
    typeof job.spec?.kind === "string" &&
    Array.isArray(job.examples)
  );
}
