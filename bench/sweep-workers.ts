/**
 * Distributed sweeps against the local one: 256 prompts of the embedded model's world (its facts:
 * every subject, relation and template, filled in), causally traced by `tsvene sweep` in one
 * process, then with --queue on a local redis-server by 1, 2 and 3 `tsvene worker` processes.
 * Prints seconds, the speedup over the local run and the queue's overhead per shard, and checks
 * that every distributed results folder is the local one, byte for byte.
 *
 * The embedded model, not the GPT-2-small shape: a sweep's data is text read through the model's
 * tokenizer, and the HASHW GPT-2-small weights come without one. On a 2-core machine, more than two
 * processes computing at once cannot go faster.
 *
 *   npm run bench:sweep
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { noRedis, startRedis } from "../test/support/redis.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist/src/cli/main.js");
const PROMPTS = 256;
const SPEC = { kind: "trace", shardSize: 16, samples: 10, seed: 0 };

interface Facts {
  relations: { name: string; trainTemplates: string[] }[];
  subjects: ({ name: string } & Record<string, string>)[];
}

/** PROMPTS trace lines: subjects, relations and templates in turn ({other} is the next subject). */
function prompts(facts: Facts): string[] {
  const lines: string[] = [];
  for (let i = 0; lines.length < PROMPTS; i++) {
    const subject = facts.subjects[i % facts.subjects.length];
    const other = facts.subjects[(i + 1) % facts.subjects.length];
    const relation = facts.relations[i % facts.relations.length];
    const template = relation.trainTemplates[Math.floor(i / facts.relations.length) % relation.trainTemplates.length];
    const prompt = template.replace("{subject}", subject.name).replace("{other}", other.name);
    lines.push(JSON.stringify({ prompt, subject: subject.name, target: subject[relation.name] }));
  }
  return lines;
}

function tsvene(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
}

/** Seconds the command took; throws with its stderr if it failed. */
async function seconds(args: readonly string[]): Promise<number> {
  const started = performance.now();
  const child = tsvene(args);
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => void (stderr += chunk));
  const code = await new Promise((done) => child.once("close", done));
  if (code !== 0) throw new Error(`tsvene ${args.join(" ")} exited ${code}:\n${stderr}`);
  return (performance.now() - started) / 1000;
}

/** A worker, once it is taking shards (its start and model load are not the sweep's time). */
async function readyWorker(url: string): Promise<ChildProcess> {
  const worker = tsvene(["worker", "--queue", url]);
  let stderr = "";
  await new Promise<void>((ready, failed) => {
    worker.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk;
      if (stderr.includes("taking shards from")) ready();
    });
    worker.once("close", (code) => failed(new Error(`tsvene worker exited ${code}:\n${stderr}`)));
  });
  return worker;
}

async function sameFiles(a: string, b: string): Promise<boolean> {
  for (const name of ["summary.json", "examples.jsonl"]) {
    if (!(await readFile(join(a, name))).equals(await readFile(join(b, name)))) return false;
  }
  return true;
}

if (noRedis !== undefined) {
  console.log(`bench:sweep needs redis-server: ${noRedis}`);
  process.exit(1);
}
const scratch = await mkdtemp(join(tmpdir(), "tsvene-bench-sweep-"));
const redis = await startRedis();
try {
  const facts = JSON.parse(await readFile(join(ROOT, "models/default/facts.json"), "utf8")) as Facts;
  const [spec, data] = [join(scratch, "spec.json"), join(scratch, "data.jsonl")];
  await writeFile(spec, JSON.stringify(SPEC));
  await writeFile(data, `${prompts(facts).join("\n")}\n`);
  const shards = Math.ceil(PROMPTS / SPEC.shardSize);
  const run = (out: string, more: string[] = []) =>
    seconds(["sweep", "--spec", spec, "--data", data, "--out", join(scratch, out), "--quiet", ...more]);
  console.log(`${PROMPTS} prompts traced (samples ${SPEC.samples}) on the embedded model, ${shards} shards`);
  const local = await run("local");
  console.log(`local, one process: ${local.toFixed(2)} s`);
  let oneWorker = 0;
  for (const count of [1, 2, 3]) {
    const workers = await Promise.all(Array.from({ length: count }, () => readyWorker(redis.url)));
    try {
      const time = await run(`workers-${count}`, ["--queue", redis.url]);
      if (count === 1) oneWorker = time;
      const same = await sameFiles(join(scratch, "local"), join(scratch, `workers-${count}`));
      console.log(
        `${count} worker(s): ${time.toFixed(2)} s, ${(local / time).toFixed(2)}× the local run; ` +
          `results ${same ? "identical to" : "DIFFERENT from"} the local run's`,
      );
    } finally {
      for (const worker of workers) worker.kill("SIGTERM");
      await Promise.all(workers.map((w) => new Promise((done) => w.once("close", done))));
    }
  }
  const overhead = ((oneWorker - local) / shards) * 1000;
  const noise = overhead < 0 ? " (below the run-to-run noise)" : "";
  console.log(`queue overhead per shard (1 worker against the local run): ${overhead.toFixed(0)} ms${noise}`);
} finally {
  await redis.stop();
  await rm(scratch, { recursive: true, force: true });
}
