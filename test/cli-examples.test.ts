/**
 * Every example the command line shows people runs as written on the embedded default model: the
 * "Examples:" blocks of `tsvene --help` and of each command's --help, and the tsvene commands in
 * the README's command-line section (its code block and its table). Each runs from the repository
 * root (so input paths such as ../shared/fixtures read as the README means them) with --quiet, its
 * output files redirected into a scratch folder, and must exit 0 with a sane result.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { readSafetensors } from "../src/io/safetensors.js";
import { noRedis, startRedis } from "./support/redis.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist/src/cli/main.js");
const OUTPUT_FLAGS = new Set(["--out", "--report"]);
const scratch = await mkdtemp(join(tmpdir(), "tsvene-cli-examples-"));
after(() => rm(scratch, { recursive: true, force: true }));

function tsvene(args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const { status, stdout, stderr } = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: "utf8" });
  return { code: status, stdout, stderr };
}

/** A command line split as a shell splits it: words, or "double-quoted" text. */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

/** The lines of a usage text's "Examples:" block, without the leading `tsvene`. */
function helpExamples(usage: string): string[] {
  const block = /\nExamples:\n((?: {2}.*\n?)+)/.exec(usage)?.[1] ?? "";
  return block
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
}

/** The tsvene commands of the README's command-line section: code-block lines and `tsvene …` spans. */
function readmeExamples(readme: string): string[] {
  const start = readme.indexOf("## The main job");
  assert.ok(start >= 0, 'the README has a "## The main job" section');
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const fromCode = [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1].split("\n"))
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .flatMap((line) => /^(?:npm run tsvene --|npx tsvene|tsvene) (.+)$/.exec(line)?.[1] ?? [])
    .map((rest) => `tsvene ${rest}`);
  const fromText = [...section.matchAll(/`(tsvene [^`]+)`/g)].map((m) => m[1].replace(/\\\|/g, "|"));
  return [...fromCode, ...fromText];
}

const general = tsvene(["--help"]).stdout;
const commandNames = [...general.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]);
const usages = new Map(commandNames.map((name) => [name, tsvene([name, "--help"]).stdout]));
const readme = await readFile(join(ROOT, "README.md"), "utf8");
const fromHelp = [...helpExamples(general), ...[...usages.values()].flatMap(helpExamples)];
const fromReadme = readmeExamples(readme);

interface Example {
  line: string;
  args: string[];
  /** Where each output flag's file was redirected to. */
  outputs: Map<string, string>;
}

/** The example's arguments with --quiet where the command takes it and output files in their own scratch folder. */
async function prepare(line: string, index: number): Promise<Example> {
  const [program, ...given] = words(line);
  assert.equal(program, "tsvene", `an example starts with tsvene: ${line}`);
  const folder = join(scratch, String(index));
  await mkdir(folder);
  const outputs = new Map<string, string>();
  const args = given.map((word, i) => {
    if (!OUTPUT_FLAGS.has(given[i - 1])) return word;
    outputs.set(given[i - 1], join(folder, basename(word)));
    return outputs.get(given[i - 1])!;
  });
  const takesQuiet = usages.get(args[0])?.includes("--quiet") ?? false;
  return { line, args: takesQuiet ? [...args, "--quiet"] : args, outputs };
}

/** What each command must print when it worked, beyond exiting 0. */
async function assertSane(example: Example, stdout: string): Promise<void> {
  const [command] = example.args;
  const report = example.outputs.get("--report");
  const out = example.outputs.get("--out");
  assert.doesNotMatch(stdout, /<unk>/, "no unknown tokens in the result");
  if (command === "help") assert.match(stdout, /^Usage: tsvene [a-z]+ /);
  if (command === "trace") assert.match(stdout, /^causal trace of [\s\S]*best: layer \d+ at /);
  if (command === "patch") assert.match(stdout, /^activation patching of [\s\S]*best: layer \d+ at /);
  if (command === "generate") {
    const prompt = example.args[example.args.indexOf("--prompt") + 1];
    assert.ok(stdout.startsWith(`${prompt} `) && stdout.trim() !== prompt, "the prompt, continued");
  }
  if (command === "parity") assert.match(stdout, /\b[1-9]\d* passed, 0 failed\n$/);
  if (command === "das") {
    const iia =
      /IIA on \d+ test pairs: ([\d.]+) after .*; control \(untrained rotation\) ([\d.]+); chance ([\d.]+)/.exec(stdout);
    assert.ok(iia !== null, stdout);
    const [trained, control, chance] = iia.slice(1).map(Number);
    for (const value of [trained, control, chance]) assert.ok(value >= 0 && value <= 1, `IIA ${value}`);
    // With its defaults, the demo finds the variable.
    if (example.args.length === 2) assert.ok(trained > 2 * chance && control < chance, stdout);
  }
  if (command === "collect") {
    const { tensors } = await readSafetensors(out!);
    assert.ok(tensors.size > 0);
    const summary = JSON.parse(await readFile(out!.replace(/\.safetensors$/, ".json"), "utf8")) as {
      tensors: unknown[];
    };
    assert.equal(summary.tensors.length, tensors.size);
  } else if (command === "sweep") {
    // --out names the results folder: the summary and one result per data line.
    const summary = JSON.parse(await readFile(join(out!, "summary.json"), "utf8")) as { examples: number };
    const lines = (await readFile(join(out!, "examples.jsonl"), "utf8")).trimEnd().split("\n");
    assert.equal(lines.length, summary.examples);
    assert.match(stdout, /^sweep [a-z]+ of /);
  } else if (out !== undefined) {
    assert.ok(JSON.parse(await readFile(out, "utf8")), "--out holds the result as JSON");
  }
  if (report !== undefined) assert.match(await readFile(report, "utf8"), /^<!DOCTYPE html>[\s\S]*<svg/i);
}

/**
 * `tsvene serve` runs until stopped: on a free port instead of the example's, it must print the
 * page's URL and serve the page (npm run build writes it) there.
 */
async function checkServe(args: readonly string[]): Promise<void> {
  const onFreePort = args.map((word, i) => (args[i - 1] === "--port" ? "0" : word));
  const server = spawn(process.execPath, [MAIN, ...onFreePort], { cwd: ROOT, stdio: "pipe" });
  try {
    const url = await new Promise<string>((found, failed) => {
      let stdout = "";
      let stderr = "";
      server.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk;
        const match = /http:\/\/\S+\//.exec(stdout);
        if (match) found(match[0]);
      });
      server.stderr.on("data", (chunk: Buffer) => void (stderr += chunk));
      server.once("exit", (code) => failed(new Error(`tsvene serve exited ${code}:\n${stderr}`)));
    });
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>tsvene<\/title>/);
  } finally {
    server.kill();
  }
}

/**
 * `tsvene worker` runs until stopped: against a Redis of its own (instead of the example's), it
 * must say it is taking shards, then stop cleanly (exit 0) on SIGTERM.
 */
async function checkWorker(args: readonly string[]): Promise<void> {
  const redis = await startRedis();
  try {
    const ownRedis = args.map((word, i) => (args[i - 1] === "--queue" ? redis.url : word));
    const worker = spawn(process.execPath, [MAIN, ...ownRedis], { cwd: ROOT, stdio: "pipe" });
    let stderr = "";
    const exited = new Promise<number | null>((done) => worker.once("exit", done));
    await new Promise<void>((ready, failed) => {
      worker.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk;
        if (/taking shards from /.test(stderr)) ready();
      });
      void exited.then((code) => failed(new Error(`tsvene worker exited ${code}:\n${stderr}`)));
    });
    worker.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
  } finally {
    await redis.stop();
  }
}

describe("examples in the help texts and the README", () => {
  it("every command's --help shows at least one example of that command, and so does the README", () => {
    assert.deepEqual(commandNames, [
      "trace",
      "patch",
      "heads",
      "attribute",
      "lens",
      "collect",
      "generate",
      "das",
      "parity",
      "serve",
      "sweep",
      "worker",
    ]);
    for (const [name, usage] of usages) {
      assert.ok(
        helpExamples(usage).some((line) => line.startsWith(`tsvene ${name} `)),
        `tsvene ${name} --help has an example`,
      );
      assert.ok(
        fromReadme.some((line) => line.startsWith(`tsvene ${name} `)),
        `the README has an example of tsvene ${name}`,
      );
    }
    assert.ok(helpExamples(general).length > 0, "tsvene --help has examples");
  });

  // Examples shown in several places run once.
  const examples = [...new Set([...fromHelp, ...fromReadme])];
  examples.forEach((line, index) => {
    it(line, async (t) => {
      const example = await prepare(line, index);
      if (example.args[0] === "serve") return checkServe(example.args);
      if (example.args[0] === "worker") return noRedis === undefined ? checkWorker(example.args) : t.skip(noRedis);
      const run = tsvene(example.args);
      assert.equal(run.code, 0, `${line} exited ${run.code}:\n${run.stderr}`);
      assert.doesNotMatch(run.stderr, /error/i);
      await assertSane(example, run.stdout);
    });
  });
});
