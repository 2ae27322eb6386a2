/**
 * The command line, run as users run it (`node dist/src/cli/main.js …` in a child process) on the
 * embedded default model. Each command's JSON is checked against what the library computes
 * directly in this process, or against properties that hold by construction (restoring the last
 * block at the last position gives the clean run back); each command also gets one bad call,
 * which must exit with code 2 and name the flag. Argument parsing and the progress bar are
 * checked in-process.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { DEFAULT_MODEL_FOLDER, loadDefaultModel } from "../src/models/default-model.js";
import { UsageError, commandUsage, parseCommandArgs, parseLayerList, type CommandSyntax } from "../src/cli/args.js";
import { progressBar, renderBar } from "../src/cli/progress.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const scratch = await mkdtemp(join(tmpdir(), "tsvene-cli-"));
after(() => rm(scratch, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function tsvene(...args: string[]): Run {
  const { status, stdout, stderr } = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8" });
  return { code: status, stdout, stderr };
}

/** A run that must succeed; its stdout parsed as JSON. */
function json<T>(...args: string[]): T {
  const run = tsvene(...args, "--json");
  assert.equal(run.code, 0, `tsvene ${args.join(" ")} failed:\n${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** A call that must be refused as a usage error naming `flag`. */
function assertUsageError(args: string[], flag: string | RegExp): void {
  const run = tsvene(...args);
  assert.equal(run.code, 2, `tsvene ${args.join(" ")} exited ${run.code}:\n${run.stdout}${run.stderr}`);
  assert.match(run.stderr, typeof flag === "string" ? new RegExp(flag.replace(/[-[\]()]/g, "\\$&")) : flag);
  assert.equal(run.stdout, "");
}

/** A grid as the CLI writes it: rows of values, labelled. */
interface Grid {
  rowTitle: string;
  colTitle: string;
  rowLabels: string[];
  colLabels: string[];
  values: number[][];
  spread?: number[][];
  layers: number[];
  positions: number[];
}

const cell = (g: Grid, row: number, col: number) => g.values[row][col];
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The facts file as the default model's trainer writes it: people with attributes, and a demo prompt. */
interface WorldFacts {
  subjects: { name: string; tokens: string[]; city: string }[];
  demo: { prompt: string; subject: string; subjectTokens: number[]; answer: string };
}

let model: tv.PretrainedModel;
let tokenizer: tv.Tokenizer;
let facts: WorldFacts;

before(async () => {
  const loaded = await loadDefaultModel();
  model = loaded.model;
  tokenizer = loaded.tokenizer!;
  facts = JSON.parse(await readFile(join(DEFAULT_MODEL_FOLDER, "facts.json"), "utf8")) as WorldFacts;
});

/** Softmax probabilities at the last position of one prompt. */
function lastProbabilities(ids: number[]): Float32Array {
  const logits = tv.noGrad(() => model.run({ inputIds: tv.intTensor([ids]) }).logits);
  return tv.softmax(tv.slice(logits, 1, -1), -1).data;
}

function argmaxOf(values: Float32Array): number {
  return values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
}

describe("tsvene (no command)", () => {
  it("prints the commands with --help and exits 0", () => {
    const run = tsvene("--help");
    assert.equal(run.code, 0);
    for (const name of ["trace", "patch", "collect", "generate", "das", "parity"])
      assert.match(run.stdout, new RegExp(`^  ${name} `, "m"));
  });

  it("refuses an unknown command with code 2, naming it and the known ones", () => {
    const run = tsvene("tarce");
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      new RegExp(
        'unknown command "tarce" \\(expected one of trace, patch, heads, attribute, lens, ' +
          "collect, generate, das, parity, serve, sweep, worker\\)",
      ),
    );
    assert.equal(tsvene().code, 2);
  });

  it("prints a command's usage with --help", () => {
    const run = tsvene("trace", "--help");
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: tsvene trace /);
    assert.match(run.stdout, /--window N /);
  });
});

describe("tsvene trace", () => {
  interface Trace {
    kind: string;
    model: string;
    prompt: string;
    subject: string;
    component: string;
    tokens: string[];
    corruptedPositions: number[];
    target: number;
    targetLabel: string;
    noiseStd: number;
    seed: number;
    samples: number;
    clean: number;
    corrupted: number;
    corruptedSpread: number;
    grid: Grid;
  }

  it(`traces the default model's demo prompt without arguments: a layers × tokens grid that restores the clean \
run`, () => {
    const trace = json<Trace>("trace");
    const ids = tokenizer.encode(facts.demo.prompt);
    const probabilities = lastProbabilities(ids);
    assert.equal(trace.kind, "trace");
    assert.equal(trace.component, "block_output");
    assert.deepEqual(
      trace.tokens,
      ids.map((id) => tokenizer.decode([id])),
    );
    assert.deepEqual(trace.corruptedPositions, facts.demo.subjectTokens);
    assert.equal(trace.target, argmaxOf(probabilities));
    assert.equal(trace.targetLabel, tokenizer.decode([trace.target]));
    assert.ok(
      Math.abs(trace.clean - probabilities[trace.target]) < 1e-5,
      `clean ${trace.clean} vs ${probabilities[trace.target]}`,
    );
    assert.ok(trace.clean > trace.corrupted, `clean ${trace.clean} should exceed corrupted ${trace.corrupted}`);
    // What it ran on, so that it can be run again: ROME's 10 draws of noise 3 × the embeddings' std.
    assert.deepEqual(
      [trace.model, trace.prompt, trace.subject, trace.seed, trace.samples],
      ["default", facts.demo.prompt, facts.demo.subject, 0, 10],
    );
    const embeddings = model.run({ inputIds: tv.intTensor([ids]), outputHiddenStates: true }).hiddenStates![0];
    assert.ok(Math.abs(trace.noiseStd - 3 * Math.sqrt(tv.variance(embeddings).item())) < 1e-5);
    assert.ok(trace.corruptedSpread > 0, "the draws differ");
    const { grid } = trace;
    assert.deepEqual(
      grid.values.map((row) => row.length),
      range(model.numLayers).map(() => ids.length),
    );
    assert.deepEqual(
      grid.spread?.map((row) => row.length),
      range(model.numLayers).map(() => ids.length),
    );
    assert.deepEqual([grid.rowTitle, grid.colTitle], ["layer", "position"]);
    assert.deepEqual(grid.rowLabels, range(model.numLayers).map(String));
    assert.deepEqual(grid.colLabels, trace.tokens);
    assert.deepEqual(grid.layers, range(model.numLayers));
    assert.deepEqual(grid.positions, range(ids.length));
    // Every draw restores the clean run there, so the draws agree.
    assert.ok(grid.spread![model.numLayers - 1][ids.length - 1] < 1e-5);
    // The last block's output at the last position is all the logits there depend on.
    assert.ok(Math.abs(cell(grid, model.numLayers - 1, ids.length - 1) - trace.clean) < 1e-5);
    // Positions before the subject are not corrupted, so restoring them changes nothing.
    for (let p = 0; p < trace.corruptedPositions[0]; p++) {
      for (let l = 0; l < model.numLayers; l++) assert.ok(Math.abs(cell(grid, l, p) - trace.corrupted) < 1e-5);
    }
  });

  it("traces all three components into one HTML report, measuring a given --target", async () => {
    const report = join(scratch, "trace.html");
    const subject = facts.subjects[1];
    const prompt = `I heard that ${subject.name} lives in the city of`;
    const traces = json<Trace[]>(
      "trace",
      "--prompt",
      prompt,
      "--subject",
      subject.name,
      "--target",
      subject.city,
      "--component",
      "all",
      "--report",
      report,
    );
    assert.deepEqual(
      traces.map((t) => t.component),
      ["block_output", "mlp_output", "attention_output"],
    );
    const ids = tokenizer.encode(prompt);
    const target = tokenizer.encode(subject.city)[0];
    for (const t of traces) {
      assert.equal(t.target, target);
      assert.deepEqual(
        t.corruptedPositions,
        range(subject.tokens.length).map((i) => 3 + i),
      );
      assert.ok(Math.abs(t.clean - lastProbabilities(ids)[target]) < 1e-5);
      assert.equal(t.grid.values.flat().length, model.numLayers * ids.length);
    }
    const html = await readFile(report, "utf8");
    assert.match(html, /^<!DOCTYPE html>/i);
    assert.ok((html.match(/<svg/g)?.length ?? 0) >= 3, "a heat map per component");
    for (const component of ["block_output", "mlp_output", "attention_output"])
      assert.ok(html.includes(component), component);
  });

  it("prints a text table without --json, and writes the JSON with --out", async () => {
    const out = join(scratch, "trace.json");
    const run = tsvene("trace", "--out", out, "--quiet");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^causal trace of block_output/);
    assert.equal(run.stdout.split("\n").filter((line) => /^\s*\d+ /.test(line)).length, model.numLayers);
    assert.match(run.stdout, /best: layer \d+ at/);
    assert.doesNotMatch(run.stderr, /\r|\[[#.]+\]/, "no progress bar when stderr is not a terminal");
    assert.equal((JSON.parse(await readFile(out, "utf8")) as Trace).kind, "trace");
  });

  it("averages --samples draws: one draw is its own mean, with no spread", () => {
    const one = json<Trace>("trace", "--samples", "1", "--seed", "3");
    assert.deepEqual([one.samples, one.seed, one.corruptedSpread], [1, 3, 0]);
    assert.ok(one.grid.spread!.flat().every((s) => s === 0));
    const three = json<Trace>("trace", "--samples", "3", "--seed", "3");
    assert.equal(three.samples, 3);
    assert.notEqual(three.corrupted, one.corrupted);
    assertUsageError(["trace", "--samples", "0"], "--samples must be an integer ≥ 1");
  });

  it("refuses a --window that is not a positive integer", () => {
    assertUsageError(
      ["trace", "--window", "wide"],
      '--window must be an integer ≥ 1 (expected --window N), got "wide"',
    );
    assertUsageError(["trace", "--window", "0"], "--window");
    assertUsageError(
      ["trace", "--prompt", facts.demo.prompt, "--subject", "Ka Bo"],
      '--subject "Ka Bo" does not occur in the prompt',
    );
  });
});

describe("tsvene --dtype", () => {
  interface Scores {
    clean: number;
    grid: Grid;
  }

  it("traces with bf16 weights: the same grid shape, values within 2% of float32's, and not bit-identical", () => {
    const prompt = ["--prompt", "I heard that Ka Bo lives in the city of", "--subject", "Ka Bo", "--samples", "2"];
    const float32 = json<Scores>("trace", ...prompt);
    const bf16 = json<Scores>("trace", ...prompt, "--dtype", "bfloat16");
    assert.deepEqual(
      bf16.grid.values.map((row) => row.length),
      float32.grid.values.map((row) => row.length),
    );
    const diff = Math.max(
      ...bf16.grid.values.flatMap((row, i) => row.map((v, j) => Math.abs(v - float32.grid.values[i][j]))),
    );
    assert.ok(diff > 0, "the weights really were bf16");
    assert.ok(diff < 0.02 * Math.max(float32.clean, 1e-3), `max |Δ| ${diff} against clean ${float32.clean}`);
  });

  it("refuses a dtype it does not know, naming the ones it does", () => {
    assertUsageError(["trace", "--dtype", "float16"], /--dtype must be one of float32, bfloat16, auto/);
  });
});

describe("tsvene patch", () => {
  interface Patch {
    kind: string;
    model: string;
    basePrompt: string;
    sourcePrompt: string;
    differingPositions: number[];
    component: string;
    baseTokens: string[];
    sourceTokens: string[];
    target: number;
    base: number;
    source: number;
    grid: Grid;
  }

  it("patches a source subject into the base: the last block at the last position gives the source's value", () => {
    const a = facts.subjects[0];
    const b = facts.subjects.find((s) => s.tokens.length === a.tokens.length && s.city !== a.city)!;
    const base = `Fact : ${a.name} lives in the city of`;
    const source = `Fact : ${b.name} lives in the city of`;
    const patch = json<Patch>("patch", "--base", base, "--source", source);
    const baseIds = tokenizer.encode(base);
    const sourceProbabilities = lastProbabilities(tokenizer.encode(source));
    const target = argmaxOf(sourceProbabilities);
    assert.equal(patch.kind, "patch");
    assert.deepEqual([patch.model, patch.basePrompt, patch.sourcePrompt], ["default", base, source]);
    assert.deepEqual(
      patch.differingPositions,
      range(a.tokens.length).map((i) => 2 + i),
    );
    assert.deepEqual(patch.grid.colLabels, patch.baseTokens);
    assert.equal(patch.target, target);
    assert.ok(Math.abs(patch.source - sourceProbabilities[target]) < 1e-5);
    assert.ok(Math.abs(patch.base - lastProbabilities(baseIds)[target]) < 1e-5);
    assert.equal(patch.grid.values.length, model.numLayers);
    assert.equal(patch.grid.values[0].length, baseIds.length);
    assert.ok(Math.abs(cell(patch.grid, model.numLayers - 1, baseIds.length - 1) - patch.source) < 1e-5);
    // "Fact :" is the same in both prompts: patching it changes nothing.
    for (let l = 0; l < model.numLayers; l++)
      for (const p of [0, 1]) assert.ok(Math.abs(cell(patch.grid, l, p) - patch.base) < 1e-5);
  });

  it("refuses a call without --source", () => {
    assertUsageError(["patch", "--base", facts.demo.prompt], "--source is required (expected --source <text>)");
  });
});

describe("tsvene collect", () => {
  it("writes each layer's block outputs as safetensors, equal to the model's hidden states", async () => {
    const prompts = [facts.demo.prompt, `${facts.subjects[2].name} speaks`];
    const file = join(scratch, "acts.safetensors");
    await writeFile(join(scratch, "prompts.txt"), `${prompts[0]}\n\n${prompts[1]}\n`);
    const summary = json<{ tensors: { name: string; shape: number[] }[]; lengths: number[] }>(
      "collect",
      "--prompts",
      join(scratch, "prompts.txt"),
      "--layers",
      "0,1",
      "--out",
      file,
    );
    const lengths = prompts.map((p) => tokenizer.encode(p).length);
    const longest = Math.max(...lengths);
    const width = model.site("block_output", 0).dim!;
    assert.deepEqual(summary.lengths, lengths);
    assert.deepEqual(
      summary.tensors,
      [0, 1].map((l) => ({ name: `layer_${l}.block_output`, shape: [2, longest, width] })),
    );
    assert.ok(existsSync(join(scratch, "acts.json")));
    const { tensors } = await tv.readSafetensors(file);
    assert.deepEqual([...tensors.keys()].sort(), ["layer_0.block_output", "layer_1.block_output"]);
    prompts.forEach((prompt, b) => {
      // hidden_states[l + 1] is block l's output (all but the last block, whose entry is normalised).
      const hidden = tv.noGrad(
        () => model.run({ inputIds: tv.intTensor([tokenizer.encode(prompt)]), outputHiddenStates: true }).hiddenStates!,
      );
      for (const l of [0, 1]) {
        const collected = tensors.get(`layer_${l}.block_output`)!.data;
        for (let i = 0; i < lengths[b] * width; i++) {
          assert.ok(
            Math.abs(collected[b * longest * width + i] - hidden[l + 1].data[i]) < 1e-5,
            `layer ${l}, prompt ${b}, value ${i}`,
          );
        }
      }
    });
  });

  it("refuses a --layers list that is not layer numbers", () => {
    assertUsageError(
      ["collect", "--prompt", "Ka", "--layers", "0,one", "--out", join(scratch, "x.safetensors")],
      '--layers must be layer numbers separated by commas, or "all"',
    );
    assertUsageError(
      ["collect", "--prompt", "Ka", "--layers", "99", "--out", join(scratch, "x.safetensors")],
      /--layers: layer 99 is out of range/,
    );
  });
});

describe("tsvene generate", () => {
  interface Generated {
    text: string;
    completion: string;
    ids: number[];
    tokens: string[];
  }

  /** Greedy decoding written out: the whole sequence each step, optionally with a vector added to a block's output. */
  function greedy(prompt: string, steps: number, steer: { layer: number; vector: tv.Tensor } | null): number[] {
    const handle =
      steer &&
      model
        .getModule(model.site("block_output", steer.layer).module)
        .addPostHook((_m, _i, out) => tv.add(out, steer.vector));
    try {
      const ids = tokenizer.encode(prompt);
      const fresh: number[] = [];
      for (let s = 0; s < steps; s++) {
        const next = argmaxOf(lastProbabilities([...ids, ...fresh]));
        fresh.push(next);
        if (next === tokenizer.eosTokenId) break;
      }
      return fresh;
    } finally {
      handle?.remove();
    }
  }

  it("continues a prompt greedily", () => {
    const out = json<Generated>("generate", "--prompt", facts.demo.prompt, "--max-new-tokens", "4");
    const expected = greedy(facts.demo.prompt, 4, null);
    assert.deepEqual(out.ids, expected);
    assert.deepEqual(
      out.tokens,
      expected.map((id) => tokenizer.decode([id])),
    );
    assert.equal(
      out.text,
      tokenizer.decode([...tokenizer.encode(facts.demo.prompt), ...expected], { skipSpecialTokens: true }),
    );
  });

  it("steers by adding strength × the steer token's embedding at a layer", () => {
    const other = facts.subjects.find((s) => s.city !== facts.demo.answer)!.city;
    const layer = 1;
    const strength = 40;
    const table = model.namedParameters().find(([name]) => name === "transformer.wte.weight")![1];
    const vector = tv.mul(tv.indexSelect(table, 0, tokenizer.encode(other)), strength);
    const out = json<Generated>(
      "generate",
      "--prompt",
      facts.demo.prompt,
      "--max-new-tokens",
      "3",
      "--steer",
      other,
      "--layer",
      String(layer),
      "--strength",
      String(strength),
    );
    assert.deepEqual(out.ids, greedy(facts.demo.prompt, 3, { layer, vector: tv.reshape(vector, [-1]) }));
    assert.notDeepEqual(out.ids, greedy(facts.demo.prompt, 3, null), "steering this hard changes the continuation");
  });

  it("refuses steering options without a steering vector, and a negative token count", () => {
    assertUsageError(["generate", "--prompt", "Ka", "--layer", "1"], "--layer only applies to steering");
    assertUsageError(
      ["generate", "--prompt", "Ka", "--max-new-tokens", "-2"],
      "--max-new-tokens must be a non-negative integer",
    );
  });
});

describe("tsvene das", () => {
  it(`trains a low-rank rotation at the subject's last token and reports IIA after training, \
for the untrained control, and chance`, () => {
    const result = json<Record<string, number | string>>("das", "--steps", "20", "--batch-size", "8");
    assert.equal(result.kind, "das");
    assert.equal(result.layer, Math.floor(model.numLayers / 2));
    assert.equal(result.lowRankDimension, 8);
    assert.equal(result.relation, "city");
    assert.equal(result.steps, 20);
    assert.equal(result.testPairs, 256);
    assert.equal(result.values, 8);
    assert.equal(result.chance, 1 / 8);
    for (const key of ["iiaBefore", "iiaAfter", "factualAccuracy"]) {
      const v = result[key] as number;
      assert.ok(v >= 0 && v <= 1, `${key} = ${v}`);
    }
    assert.ok((result.factualAccuracy as number) > 0.5, "the default model knows most of its facts");
    assert.ok(Number.isFinite(result.firstLoss) && Number.isFinite(result.lastLoss));
  });

  it("prints IIA beside the control and chance", () => {
    const run = tsvene("das", "--steps", "5", "--relation", "sport", "--quiet");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^DAS, rank 8, block_output at layer 3, subject's last token, relation sport \(/);
    assert.match(
      run.stdout,
      new RegExp(
        "\\nIIA on 256 test pairs: [\\d.]+ after 5 steps \\(loss [\\d.]+ → [\\d.]+\\); " +
          "control \\(untrained rotation\\) [\\d.]+; chance 0\\.125 \\(1 of 8 values\\)\\n$",
      ),
    );
  });

  it("refuses a relation the facts do not have", () => {
    assertUsageError(["das", "--relation", "height"], "--relation height is not a relation of");
  });
});

describe("tsvene parity", () => {
  it("needs the fixture folder", () => {
    assertUsageError(["parity"], '"tsvene parity" needs <dir>');
  });
});

describe("argument parsing", () => {
  const syntax = {
    name: "demo",
    summary: "A demo.",
    synopsis: "[options]",
    options: {
      prompt: { kind: "string", form: "<text>", required: true, description: "Text." },
      tag: { kind: "string", multiple: true, description: "Tags." },
      steps: { kind: "int", min: 1, description: "Steps." },
      scale: { kind: "number", description: "Scale." },
      mode: { kind: "choice", choices: ["fast", "slow"], description: "Mode." },
      json: { kind: "boolean", description: "JSON." },
    },
    examples: ["tsvene demo --prompt hi --mode fast"],
  } as const satisfies CommandSyntax;
  const parse = (...argv: string[]) => parseCommandArgs(syntax, argv);
  const refuses = (argv: string[], message: string) =>
    assert.throws(
      () => parse(...argv),
      (e: unknown) => e instanceof UsageError && e.message === message,
    );

  it("converts each kind of value", () => {
    const { values } = parse(
      "--prompt",
      "-x y",
      "--tag",
      "a",
      "--tag=b",
      "--steps",
      "3",
      "--scale",
      "-2.5e-1",
      "--mode",
      "slow",
      "--json",
    );
    assert.deepEqual(values, { prompt: "-x y", tag: ["a", "b"], steps: 3, scale: -0.25, mode: "slow", json: true });
    assert.equal(parse("--help").help, true);
  });

  it("names the flag and the expected form in every error", () => {
    refuses(
      ["--prompt", "a", "--colour", "red"],
      'unknown option --colour for "tsvene demo" (options: --prompt, --tag, --steps, --scale, --mode, --json)',
    );
    refuses(["--prompt"], "--prompt needs a value (expected --prompt <text>)");
    refuses(["--prompt", "--json"], "--prompt needs a value (expected --prompt <text>)");
    refuses([], "--prompt is required (expected --prompt <text>)");
    refuses(["--prompt", "a", "--steps", "2.5"], '--steps must be an integer ≥ 1 (expected --steps N), got "2.5"');
    refuses(["--prompt", "a", "--scale", "big"], '--scale must be a number (expected --scale N), got "big"');
    refuses(
      ["--prompt", "a", "--mode", "medium"],
      '--mode must be one of fast, slow (expected --mode fast|slow), got "medium"',
    );
    refuses(["--prompt", "a", "--json=yes"], "--json is a switch and takes no value (write --json)");
    refuses(["--prompt", "a", "--prompt", "b"], "--prompt was given more than once (expected --prompt <text> once)");
    refuses(
      ["--prompt", "a", "stray"],
      '"tsvene demo" takes no positional arguments, got "stray" ' +
        '(values belong after their flag, e.g. --prompt "text"; quote text with spaces)',
    );
  });

  it("reads layer lists", () => {
    assert.deepEqual(parseLayerList("all", 3, "--layers"), [0, 1, 2]);
    assert.deepEqual(parseLayerList("2, 0,2", 3, "--layers"), [2, 0]);
    assert.throws(
      () => parseLayerList("3", 3, "--layers"),
      /--layers: layer 3 is out of range; the model has 3 layers \(0\.\.2\)/,
    );
  });

  it("generates usage from the option table", () => {
    const usage = commandUsage(syntax);
    assert.match(usage, /^Usage: tsvene demo \[options\]\n\nA demo\.\n\nOptions:\n/);
    assert.match(usage, / {2}--prompt <text> +Text\. \(required\)\n/);
    assert.match(usage, / {2}--mode fast\|slow +Mode\.\n/);
    assert.match(usage, /\n\nExamples:\n {2}tsvene demo --prompt hi --mode fast\n$/);
  });
});

describe("progress bar", () => {
  it("draws only on a terminal, and not with --quiet", () => {
    const written: string[] = [];
    const stream = (isTTY: boolean) => ({ isTTY, columns: 60, write: (s: string) => written.push(s) > 0 });
    progressBar("x", { stream: stream(false) }).update(1, 1);
    progressBar("x", { stream: stream(true), quiet: true }).update(1, 1);
    assert.deepEqual(written, []);
    const bar = progressBar("trace", { stream: stream(true) });
    bar.update(2, 2);
    bar.finish();
    assert.equal(written.length, 2);
    assert.match(written[0], /^\rtrace \[#+\] 2\/2 100%$/);
    assert.match(written[1], /^\r +\r$/);
  });

  it("renders the fraction done and the time left", () => {
    assert.equal(renderBar("collect", 1, 4, 3000, 80), `collect [${"#".repeat(10)}${".".repeat(30)}] 1/4 25% ~9s left`);
  });
});
