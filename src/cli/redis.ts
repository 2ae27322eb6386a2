/**
 * Redis for distributed sweeps: the connection, checked once up front so that an unreachable server
 * is reported within seconds (ioredis would otherwise retry forever), then kept with reconnects so a
 * Redis restart mid-sweep is survived; and a shard's bytes carried in bounded chunks under their own
 * keys, so a job's return value stays a small reference however large the shard.
 */
import { createHash, randomUUID } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { UsageError } from "./args.js";

/** Longest a first connection is tried before the command reports Redis unreachable. */
const CONNECT_TIMEOUT_MS = 3000;
/** The most bytes one Redis value holds: a shard of any size travels as several of them. */
export const CHUNK_BYTES = 1 << 20;
/** Chunks nobody collects (their submitter gone for good) expire after a day. */
const CHUNK_TTL_SECONDS = 24 * 60 * 60;
/** Reconnects after an established connection drops come this often at most. */
const RECONNECT_MAX_MS = 2000;

/** Where a finished shard's bytes lie: `chunks` keys `${key}:0`, `${key}:1`, …, and their checksum. */
export interface ShardBytesRef {
  key: string;
  bytes: number;
  chunks: number;
  sha256: string;
}

/** The URL given to `flag`, checked to be a Redis URL. */
export function readRedisUrl(flag: string, text: string): string {
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // Reported below, with the form expected.
  }
  if (url === null || (url.protocol !== "redis:" && url.protocol !== "rediss:") || url.hostname === "") {
    throw new UsageError(`${flag} ${text}: expected a Redis URL, redis://host:port (or rediss:// for TLS)`);
  }
  return text;
}

/** Options for a long-lived connection (BullMQ's and the chunks'): it waits out outages, reconnecting. */
export function redisOptions(url: string): RedisOptions {
  const parsed = new URL(url);
  const db = parsed.pathname.replace(/^\//, "");
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, ""),
    port: parsed.port === "" ? 6379 : Number(parsed.port),
    username: parsed.username === "" ? undefined : decodeURIComponent(parsed.username),
    password: parsed.password === "" ? undefined : decodeURIComponent(parsed.password),
    db: db === "" ? 0 : Number(db),
    tls: parsed.protocol === "rediss:" ? {} : undefined,
    maxRetriesPerRequest: null,
    retryStrategy: (attempt: number) => Math.min(250 * attempt, RECONNECT_MAX_MS),
  };
}

/** Connects once without retrying; throws "cannot reach Redis at …: <reason>" when that fails. */
export async function checkRedis(url: string): Promise<void> {
  const client = new Redis({
    ...redisOptions(url),
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // The socket's error (refused, timed out, unknown host) says more than connect()'s "Connection is closed".
  let cause: Error | undefined;
  client.on("error", (error: Error) => void (cause ??= error));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new Error(`cannot reach Redis at ${url}: ${(cause ?? (error as Error)).message}`);
  } finally {
    client.disconnect();
  }
}

/** Stores `bytes` under a new key prefixed `prefix`, in chunks that expire if nobody collects them. */
export async function putShardBytes(redis: Redis, prefix: string, bytes: Uint8Array): Promise<ShardBytesRef> {
  const key = `${prefix}:${randomUUID()}`;
  const chunks = Math.max(1, Math.ceil(bytes.length / CHUNK_BYTES));
  const batch = redis.multi();
  for (let i = 0; i < chunks; i++) {
    const chunk = bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
    batch.set(`${key}:${i}`, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), "EX", CHUNK_TTL_SECONDS);
  }
  await batch.exec();
  return { key, bytes: bytes.length, chunks, sha256: sha256(bytes) };
}

/**
 * The bytes `ref` names, checked against its length and checksum; null when the chunks are gone
 * (Redis restarted without persistence, or they expired), so the shard has to be computed again.
 */
export async function takeShardBytes(redis: Redis, ref: ShardBytesRef): Promise<Uint8Array | null> {
  const parts: Buffer[] = [];
  for (let i = 0; i < ref.chunks; i++) {
    const part = await redis.getBuffer(`${ref.key}:${i}`);
    if (part === null) return null;
    parts.push(part);
  }
  const joined = Buffer.concat(parts);
  const bytes = new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength);
  if (bytes.length !== ref.bytes || sha256(bytes) !== ref.sha256) {
    throw new Error(`the shard bytes at ${ref.key} do not match their checksum (${ref.bytes} bytes, ${ref.sha256})`);
  }
  return bytes;
}

export async function dropShardBytes(redis: Redis, ref: ShardBytesRef): Promise<void> {
  await redis.del(...Array.from({ length: ref.chunks }, (_, i) => `${ref.key}:${i}`));
}

/** Whether a job's return value is a ShardBytesRef (a worker of this version wrote it). */
export function isShardBytesRef(value: unknown): value is ShardBytesRef {
  const ref = value as Partial<ShardBytesRef> | null;
  return (
    typeof ref?.key === "string" &&
    Number.isSafeInteger(ref.bytes) &&
    Number.isSafeInteger(ref.chunks) &&
    typeof ref.sha256 === "string"
  );
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
