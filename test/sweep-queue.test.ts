/**
 * Distributed dataset sweeps (`tsvene sweep --queue`, `tsvene worker`) on a real redis-server on a
 * free loopback port, with worker processes, on the embedded model. Truth: the local run of the same
 * sweep (`tsvene sweep` without --queue): the distributed results folder must hold the same files,
 * byte for byte, whatever happened on the way: a worker SIGKILLed mid-shard, Redis killed and
 * restarted empty mid-sweep, a shard delivered twice. Refusals (another version, another model,
 * an unreachable Redis) are checked by their effect and message.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { after, afterEach, describe, it } from "node:test";
import { Queue } from "bullmq";
import { SHARD_JOB, SHARD_QUEUE } from "../src/cli/shard-job.js";
import { freePort, noRedis, startRedis, type TestRedis } from "./support/redis.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist/src/cli/main.js");
const scratch = await mkdtemp(join(tmpdir(), "tsvene-sweep-queue-"));
after(() => rm(scratch, { recursive: true, force: true }));

const TRACE = { spec: "examples/sweep/trace.json", data: "examples/sweep/facts.jsonl" };
const COLLECT = { spec: "examples/sweep/collect.json", data: "examples/sweep/prompts.jsonl" };
/** Shards of two examples that take a while each (many noise samples), so a shard can be caught mid-way. */
const SLOW = { spec: join(scratch, "slow.json"), data: join(scratch, "slow.jsonl") };
await writeFile(SLOW.spec, JSON.stringify({ kind: "trace", shardSize: 2, samples: 40, seed: 1 }));
const facts = (await readFile(join(ROOT, TRACE.data), "utf8")).trimEnd().split("\n");
await writeFile(SLOW.data, `${[...facts, facts[0]].join("\n")}\n`);
/** Short, so a dead worker's shard is taken over within seconds. */
const STALL_SECONDS = "2";

interface Running {
  child: ChildProcess;
  output: () => string;
  /** Resolves once stderr or stdout matches. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function tsvene(args: readonly string[]): Running {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let [stdout, stderr] = ["", ""];
  const watchers: (() => void)[] = [];
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk;
    for (const watch of watchers) watch();
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk;
    for (const watch of watchers) watch();
  });
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((done) =>
    child.once("close", (code) => done({ code, stdout, stderr })),
  );
  return {
    child,
    exited,
    output: () => stdout + stderr,
    waitFor: (pattern) =>
      new Promise((found, failed) => {
        const watch = () => {
          const match = pattern.exec(stdout + stderr);
          if (match) found(match);
        };
        watchers.push(watch);
        watch();
        void exited.then(() => failed(new Error(`exited before printing ${pattern}:\n${stdout}${stderr}`)));
      }),
  };
}

/** Polls `value` until it is not null, failing after a while rather than hanging the test run. */
async function until<T>(what: string, value: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = await value();
    if (found !== null) return found;
    assert.ok(Date.now() < deadline, `gave up waiting for ${what}`);
    await new Promise((wait) => setTimeout(wait, 20));
  }
}

const running: Running[] = [];
const redises: TestRedis[] = [];
afterEach(async () => {
  for (const process of running.splice(0)) {
    process.child.kill("SIGKILL");
    await process.exited;
  }
  for (const redis of redises.splice(0)) await redis.stop();
});

async function redis(): Promise<TestRedis> {
  const server = await startRedis();
  redises.push(server);
  return server;
}

function workers(url: string, count: number): Running[] {
  const started = Array.from({ length: count }, () =>
    tsvene(["worker", "--queue", url, "--stall-seconds", STALL_SECONDS]),
  );
  running.push(...started);
  return started;
}

function submit(study: { spec: string; data: string }, out: string, url: string): Running {
  const submitter = tsvene(["sweep", "--spec", study.spec, "--data", study.data, "--out", out, "--queue", url]);
  running.push(submitter);
  return submitter;
}

async function finished(submitter: Running): Promise<string> {
  const { code, stderr } = await submitter.exited;
  assert.equal(code, 0, `the distributed sweep exited ${code}:\n${stderr}`);
  return stderr;
}

/** The local run of a study: the truth every distributed run is compared with. */
const localFolders = new Map<string, string>();
function local(study: { spec: string; data: string }): string {
  const known = localFolders.get(study.spec);
  if (known !== undefined) return known;
  const out = join(scratch, `local-${localFolders.size}`);
  const args = ["sweep", "--spec", study.spec, "--data", study.data, "--out", out, "--quiet"];
  const run = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  localFolders.set(study.spec, out);
  return out;
}

async function files(folder: string): Promise<Map<string, Buffer>> {
  const names = (await readdir(folder, { recursive: true })).sort();
  const contents = new Map<string, Buffer>();
  for (const name of names) {
    const path = join(folder, name);
    if ((await stat(path)).isFile()) contents.set(relative(folder, path), await readFile(path));
  }
  return contents;
}

/** Every file of the folder (manifest, shards, summary, examples, activations) as the local run wrote it. */
async function assertSameAsLocal(folder: string, study: { spec: string; data: string }): Promise<void> {
  const [got, want] = [await files(folder), await files(local(study))];
  assert.deepEqual([...got.keys()], [...want.keys()]);
  assert.ok(got.has("summary.json") && got.has("examples.jsonl") && got.has("shards/00000.safetensors"));
  for (const [name, bytes] of want) assert.ok(bytes.equals(got.get(name)!), `${name} differs from the local run's`);
}

describe("distributed sweeps on Redis equal the local run", { skip: noRedis }, () => {
  it("three workers: the results folder is the local run's, byte for byte (trace and collect)", async () => {
    const { url } = await redis();
    workers(url, 3);
    for (const study of [TRACE, COLLECT]) {
      const out = join(scratch, `three-${study === TRACE ? "trace" : "collect"}`);
      await finished(submit(study, out, url));
      await assertSameAsLocal(out, study);
    }
  });

  it("a worker SIGKILLed mid-shard loses nothing: another takes its shard and the sweep completes", async () => {
    const { url } = await redis();
    const started = workers(url, 3);
    const out = join(scratch, "killed");
    const submitter = submit(SLOW, out, url);
    const [victim, shard] = await Promise.race(
      started.map((w) => w.waitFor(/shard (\d+) of sweep \w+ started/).then((m) => [w, m[1]] as const)),
    );
    const others = started.filter((w) => w !== victim);
    victim.child.kill("SIGKILL");
    await victim.exited;
    await finished(submitter);
    assert.doesNotMatch(victim.output(), new RegExp(`shard ${shard} of sweep \\w+ done`));
    const redone = others.some((w) => new RegExp(`shard ${shard} of sweep \\w+ done`).test(w.output()));
    assert.ok(redone, `another worker computed shard ${shard}`);
    await assertSameAsLocal(out, SLOW);
  });

  it("Redis killed and restarted empty mid-sweep: the lost shards are queued again, the sweep completes", async () => {
    const server = await redis();
    const [worker] = workers(server.url, 2);
    const out = join(scratch, "restarted");
    const submitter = submit(SLOW, out, server.url);
    await worker.waitFor(/shard \d+ of sweep \w+ started/);
    await server.kill();
    await new Promise((wait) => setTimeout(wait, 500));
    await server.restart();
    const stderr = await finished(submitter);
    assert.match(stderr, /are not on the queue \(Redis restarted\?\); queued again/);
    await assertSameAsLocal(out, SLOW);
  });

  it("a shard delivered twice is written once, and the copies are identical", async () => {
    const { url } = await redis();
    const out = join(scratch, "duplicate");
    const submitter = submit(SLOW, out, url);
    // With no worker yet, the sweep's jobs wait; a copy of shard 0's job goes first in the line.
    const queue = new Queue(SHARD_QUEUE, { connection: { port: Number(new URL(url).port) } });
    try {
      const waiting = await until("the sweep's three jobs", async () => {
        const jobs = await queue.getWaiting();
        return jobs.length === 3 ? jobs : null;
      });
      const first = waiting.find((job) => job.data.shard === 0)!;
      await queue.add(SHARD_JOB, first.data, { jobId: "copy-of-shard-0", lifo: true });
    } finally {
      await queue.close();
    }
    // One worker takes the copy, then the sweep's own jobs in order: shard 0 comes back twice.
    workers(url, 1);
    const shardFile = join(out, "shards/00000.safetensors");
    const written = await until("shard 0's file", () => stat(shardFile).catch(() => null));
    const stderr = await finished(submitter);
    assert.match(stderr, /shard 0 was delivered twice; the copies are identical and it is written once/);
    assert.equal((await stat(shardFile)).ino, written.ino, "shard 0's file was not written again");
    await assertSameAsLocal(out, SLOW);
  });

  it("Ctrl-C on the submitter withdraws the shards not started; the same command resumes and completes", async () => {
    const { url, port } = await redis();
    const [worker] = workers(url, 1);
    const out = join(scratch, "interrupted");
    const first = submit(SLOW, out, url);
    await worker.waitFor(/shard \d+ of sweep \w+ done/);
    first.child.kill("SIGINT");
    const stopped = await first.exited;
    assert.equal(stopped.code, 130, stopped.stderr);
    assert.match(stopped.stderr, /interrupted with \d of 3 shards finished/);
    const queue = new Queue(SHARD_QUEUE, { connection: { port } });
    try {
      assert.deepEqual(await queue.getWaiting(), [], "no shard is left waiting");
    } finally {
      await queue.close();
    }
    await finished(submit(SLOW, out, url));
    await assertSameAsLocal(out, SLOW);
  });

  it("a shard of another tsvene version or model is refused for good; the sweep stops with the reason", async () => {
    const { url, port } = await redis();
    const queue = new Queue(SHARD_QUEUE, { connection: { port } });
    const cases = [
      {
        change: { tsvene: "0.0.0-other" },
        reason: /the sweep was submitted by tsvene 0\.0\.0-other, this worker runs tsvene \d/,
      },
      {
        change: { modelSha256: "0".repeat(64) },
        reason: /this worker's model default has SHA-256 [0-9a-f]{64} \(of its config and weights\), the sweep's 0{64}/,
      },
    ];
    try {
      for (const [i, { change, reason }] of cases.entries()) {
        const out = join(scratch, `refused-${i}`);
        const submitter = submit(TRACE, out, url);
        // Before any worker runs, the jobs are altered as a submitter of another version or model would send them.
        const waiting = await until("the sweep's three jobs", async () => {
          const jobs = await queue.getWaiting();
          return jobs.length === 3 ? jobs : null;
        });
        for (const job of waiting) await job.updateData({ ...job.data, ...change });
        const [worker] = workers(url, 1);
        const { code, stderr } = await submitter.exited;
        assert.equal(code, 1, stderr);
        assert.match(stderr, new RegExp(`shard \\d failed after 1 attempt\\(s\\): ${reason.source}`));
        assert.deepEqual(await readdir(join(out, "shards")), []);
        assert.deepEqual(
          await queue.getJobs(["waiting", "failed", "completed", "delayed"]),
          [],
          "the queue is left clean",
        );
        // SIGTERM stops a worker cleanly; the next case starts a fresh one.
        worker.child.kill("SIGTERM");
        const stopped = await worker.exited;
        assert.equal(stopped.code, 0, stopped.stderr);
        assert.match(stopped.stderr, /stopped\n$/);
      }
    } finally {
      await queue.close();
    }
  });

  it("an unreachable Redis is a clear error within seconds, for submitter and worker, nothing written", async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const out = join(scratch, "unreachable");
    for (const args of [
      ["sweep", "--spec", TRACE.spec, "--data", TRACE.data, "--out", out, "--queue", url],
      ["worker", "--queue", url],
    ]) {
      const { code, stderr } = await tsvene(args).exited;
      assert.equal(code, 1, stderr);
      assert.match(stderr, new RegExp(`^tsvene ${args[0]}: cannot reach Redis at ${url}: connect ECONNREFUSED`));
    }
    await assert.rejects(stat(out), { code: "ENOENT" });
  });
});
