/**
 * The analysis commands (`tsvene heads`, `attribute`, `lens`), run as users run them (`node
 * dist/src/cli/main.js …` in a child process) on the embedded default model. Each command's JSON
 * grid has the shape and labels of its sweep and the numbers the library gives when called directly
 * in this process; bad flags exit with code 2 and name the flag.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { DEFAULT_MODEL_FOLDER, loadDefaultModel } from "../src/models/default-model.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const scratch = await mkdtemp(join(tmpdir(), "tsvene-cli-analysis-"));
after(() => rm(scratch, { recursive: true, force: true }));

/** The embedded model's default pair, as the help texts give it. */
const BASE = "Ka Bo lives in the city of";
const SOURCE = "Ro Vi lives in the city of";

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
  assert.match(run.stderr, typeof flag === "string" ? new RegExp(flag.replace(/[-[\]()|.]/g, "\\$&")) : flag);
  assert.equal(run.stdout, "");
}

/** A grid as the CLI writes it: rows of values, labelled. */
interface Grid {
  rowTitle: string;
  colTitle: string;
  rowLabels: string[];
  colLabels: string[];
  values: (number | null)[][];
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The grid's rows equal the library's row-major float32 values (JSON keeps each float32 exactly). */
function assertValues(grid: Grid, expected: ArrayLike<number>, what: string): void {
  const cols = grid.colLabels.length;
  assert.equal(grid.values.length * cols, expected.length, `${what}: cell count`);
  grid.values.forEach((row, r) => {
    assert.equal(row.length, cols, `${what}: row ${r} length`);
    row.forEach((v, c) => {
      const want = expected[r * cols + c];
      assert.ok(
        v !== null && Math.abs(v - want) <= 1e-6 * Math.max(1, Math.abs(want)),
        `${what}[${r}][${c}]: ${v} vs ${want}`,
      );
    });
  });
}

let model: tv.PretrainedModel;
let tokenizer: tv.Tokenizer;
let demoPrompt: string;

before(async () => {
  const loaded = await loadDefaultModel();
  model = loaded.model;
  tokenizer = loaded.tokenizer!;
  demoPrompt = (
    JSON.parse(await readFile(join(DEFAULT_MODEL_FOLDER, "facts.json"), "utf8")) as { demo: { prompt: string } }
  ).demo.prompt;
});

const ids = (text: string) => tokenizer.encode(text);
const labels = (text: string) => ids(text).map((id) => tokenizer.decode([id]));
const heads = () => (model.config.n_head as number) ?? 4;

describe("tsvene heads", () => {
  interface Heads {
    kind: string;
    model: string;
    basePrompt: string;
    sourcePrompt: string;
    component: string;
    positions: string;
    metric: string;
    target: number;
    targetLabel: string;
    base: number;
    source: number;
    differingPositions: number[];
    grids: (Grid & { position: number | null })[];
  }

  it("patches each head of the default pair: a layers × heads grid equal to headPatching's", () => {
    const result = json<Heads>("heads");
    const direct = tv.headPatching(model, {
      base: tv.intTensor([ids(BASE)]),
      source: tv.intTensor([ids(SOURCE)]),
      baseTokens: labels(BASE),
      sourceTokens: labels(SOURCE),
    });
    assert.equal(result.kind, "heads");
    assert.deepEqual(
      [result.model, result.basePrompt, result.sourcePrompt, result.component, result.positions, result.metric],
      ["default", BASE, SOURCE, "head_attention_value_output", "all", "probability"],
    );
    assert.equal(result.target, direct.target);
    assert.equal(result.targetLabel, tokenizer.decode([direct.target]));
    assert.deepEqual(result.differingPositions, [0, 1]);
    assert.ok(Math.abs(result.base - direct.base) < 1e-6 && Math.abs(result.source - direct.source) < 1e-6);
    assert.equal(result.grids.length, 1);
    const [grid] = result.grids;
    assert.equal(grid.position, null);
    assert.deepEqual([grid.rowTitle, grid.colTitle], ["layer", "head"]);
    assert.deepEqual(grid.rowLabels, range(model.numLayers).map(String));
    assert.deepEqual(grid.colLabels, range(heads()).map(String));
    assertValues(grid, direct.grids[0].values, "heads grid");
  });

  it("gives one grid per position with --positions each, measuring a --target by logit", async () => {
    const out = join(scratch, "heads.json");
    const base = "Fact : Ka Bo speaks";
    const source = "Fact : Ro Bo speaks";
    const args = ["heads", "--base", base, "--source", source, "--positions", "each", "--metric", "logit"];
    const result = json<Heads>(...args, "--target", "Norwegian", "--out", out, "--quiet");
    const target = tokenizer.encode("Norwegian")[0];
    const direct = tv.headPatching(model, {
      base: tv.intTensor([ids(base)]),
      source: tv.intTensor([ids(source)]),
      baseTokens: labels(base),
      sourceTokens: labels(source),
      positions: "each",
      metric: "logit",
      target,
    });
    assert.equal(result.targetLabel, "Norwegian");
    assert.equal(result.grids.length, ids(base).length);
    result.grids.forEach((grid, p) => {
      assert.equal(grid.position, p);
      assertValues(grid, direct.grids[p].values, `grid at position ${p}`);
    });
    // Positions where the prompts agree carry no difference: patching them changes nothing.
    for (const row of result.grids[0].values) for (const v of row) assert.ok(Math.abs(v! - result.base) < 1e-4);
    assert.deepEqual(JSON.parse(await readFile(out, "utf8")), result);
  });

  it("prints a layers × heads table, and refuses bad flags naming them", () => {
    const run = tsvene("heads", "--quiet");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^head patching of head_attention_value_output: probability of /);
    assert.equal(run.stdout.split("\n").filter((line) => /^\s*\d+ /.test(line)).length, model.numLayers);
    assert.match(run.stdout, /\nbest: layer \d+, head \d+: /);
    assertUsageError(["heads", "--positions", "some"], "--positions must be one of all, each");
    assertUsageError(["heads", "--component", "block_output"], "--component block_output is not split into");
    assertUsageError(["heads", "--component", "nope"], "--component nope is not a component");
    assertUsageError(["heads", "--base", BASE], "--source is required");
    assertUsageError(["heads", "--base", BASE, "--source", "Mi Ro Ka lives in the city of"], /--source must have/);
    assertUsageError(["heads", "--base", "Ada lives in", "--source", SOURCE], /--base "Ada lives in": "Ada"/);
    assertUsageError(["heads", "--target", "Atlantis"], /--target "Atlantis"/);
    assertUsageError(["heads", "--report", join(scratch, "no", "such.html")], /--report .*does not exist/);
  });
});

describe("tsvene attribute", () => {
  interface Attribution {
    kind: string;
    model: string;
    cleanPrompt: string;
    corruptedPrompt: string;
    component: string;
    unit: string;
    metric: string;
    target: number;
    targetLabel: string;
    contrast: number | null;
    contrastLabel: string | null;
    clean: number;
    corrupted: number;
    tokens: string[];
    grid: Grid & { layers: number[] };
  }

  it("estimates every layer × position of the default pair as attributionPatching does", () => {
    const result = json<Attribution>("attribute");
    const direct = tv.attributionPatching(model, {
      clean: tv.intTensor([ids(SOURCE)]),
      corrupted: tv.intTensor([ids(BASE)]),
      tokens: labels(SOURCE),
    });
    assert.equal(result.kind, "attribution");
    assert.deepEqual(
      [result.model, result.cleanPrompt, result.corruptedPrompt, result.component, result.unit, result.metric],
      ["default", SOURCE, BASE, "block_output", "pos", "probability"],
    );
    assert.equal(result.target, direct.target);
    assert.ok(Math.abs(result.clean - direct.clean) < 1e-6 && Math.abs(result.corrupted - direct.corrupted) < 1e-6);
    const { grid } = result;
    assert.deepEqual([grid.rowTitle, grid.colTitle], ["layer", "position"]);
    assert.deepEqual(grid.rowLabels, range(model.numLayers).map(String));
    assert.deepEqual(grid.colLabels, labels(SOURCE));
    assertValues(grid, direct.grid.values, "attribution grid");
  });

  it("attributes heads (h and h.pos) with a logit difference against a --contrast", () => {
    const clean = "Fact : Ro Bo speaks";
    const corrupted = "Fact : Ka Bo speaks";
    const [target, contrast] = ["Norwegian", "Arabic"].map((t) => tokenizer.encode(t)[0]);
    const args = [
      "attribute",
      "--clean",
      clean,
      "--corrupted",
      corrupted,
      "--component",
      "head_attention_value_output",
    ];
    for (const unit of ["h", "h.pos"] as const) {
      const result = json<Attribution>(...args, "--unit", unit, "--target", "Norwegian", "--contrast", "Arabic");
      const direct = tv.attributionPatching(model, {
        clean: tv.intTensor([ids(clean)]),
        corrupted: tv.intTensor([ids(corrupted)]),
        component: "head_attention_value_output",
        unit,
        metric: "logitDiff",
        target,
        contrast,
      });
      assert.deepEqual([result.metric, result.contrast, result.contrastLabel], ["logitDiff", contrast, "Arabic"]);
      const { grid } = result;
      if (unit === "h") {
        assert.deepEqual([grid.rowTitle, grid.colTitle], ["layer", "head"]);
        assert.deepEqual(grid.rowLabels, range(model.numLayers).map(String));
        assert.deepEqual(grid.colLabels, range(heads()).map(String));
      } else {
        assert.deepEqual([grid.rowTitle, grid.colTitle], ["layer.head", "position"]);
        assert.deepEqual(
          grid.rowLabels,
          range(model.numLayers).flatMap((l) => range(heads()).map((h) => `${l}.${h}`)),
        );
        assert.deepEqual(grid.colLabels, labels(clean));
      }
      assertValues(grid, direct.grid.values, `attribution grid (unit ${unit})`);
    }
  });

  it("prints the grid as a table, and refuses bad flags naming them", () => {
    const run = tsvene("attribute", "--quiet");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^attribution patching of block_output \(unit pos\): /);
    assert.equal(run.stdout.split("\n").filter((line) => /^\s*\d+ /.test(line)).length, model.numLayers);
    assert.match(run.stdout, /\nlargest: layer \d+, position \d+ /);
    assertUsageError(["attribute", "--unit", "h"], "--unit h does not fit --component block_output");
    assertUsageError(["attribute", "--unit", "each"], "--unit must be one of pos, h, h.pos");
    assertUsageError(["attribute", "--metric", "probability", "--contrast", "Lima"], "--contrast is only read by");
    assertUsageError(["attribute", "--metric", "logits"], "--metric must be one of");
    assertUsageError(["attribute", "--clean", SOURCE], "--corrupted is required");
    assertUsageError(["attribute", "--target", "Quito", "--contrast", "Quito"], "--contrast must be another token");
  });
});

describe("tsvene lens", () => {
  interface Lens {
    kind: string;
    model: string;
    prompt: string;
    tokens: string[];
    target: number;
    targetLabel: string;
    topK: number;
    targetProbability: Grid & { layers: number[]; positions: number[] };
    top: { k: number; tokens: string[][][]; ids: number[][][]; probabilities: number[][][] };
    directLogitAttribution?: {
      kind: string;
      target: number;
      contrast: number | null;
      total: number;
      embeddings: number;
      bias: number;
      layers: Grid;
      heads?: Grid & { bias: number[] };
    };
  }

  it("reads the demo prompt through the lens: (layers + 1) × tokens as logitLens gives, with the top tokens", () => {
    const result = json<Lens>("lens");
    const promptIds = ids(demoPrompt);
    const direct = tv.logitLens(model, { inputIds: tv.intTensor([promptIds]), tokens: labels(demoPrompt) });
    assert.equal(result.kind, "lens");
    assert.deepEqual([result.model, result.prompt, result.topK], ["default", demoPrompt, 5]);
    assert.equal(result.target, direct.target);
    assert.equal(result.targetLabel, tokenizer.decode([direct.target]));
    assert.equal(result.directLogitAttribution, undefined);
    const grid = result.targetProbability;
    assert.deepEqual([grid.rowTitle, grid.colTitle], ["layer", "position"]);
    assert.deepEqual(
      grid.layers,
      range(model.numLayers + 1).map((l) => l - 1),
    );
    assert.deepEqual(grid.rowLabels, ["embed", ...range(model.numLayers).map(String)]);
    assert.deepEqual(grid.colLabels, labels(demoPrompt));
    assertValues(grid, direct.targetProbability.values, "lens grid");
    const cells = (model.numLayers + 1) * promptIds.length;
    assert.deepEqual(result.top.ids.flat(2), Array.from(direct.top.ids));
    assert.equal(result.top.tokens.flat(2).length, cells * 5);
    assert.deepEqual(
      result.top.tokens.flat(2),
      result.top.ids.flat(2).map((id) => tokenizer.decode([id])),
    );
    // The last row is the model's own prediction: its top token at the end is the target.
    assert.equal(result.top.ids[model.numLayers][promptIds.length - 1][0], result.target);
  });

  it("adds direct logit attribution with --dla and --contrast, as directLogitAttribution gives", () => {
    const prompt = "Fact : Ka Bo speaks";
    const result = json<Lens>(
      "lens",
      "--prompt",
      prompt,
      "--target",
      "Arabic",
      "--top-k",
      "3",
      "--dla",
      "--contrast",
      "French",
    );
    const [target, contrast] = ["Arabic", "French"].map((t) => tokenizer.encode(t)[0]);
    const inputIds = tv.intTensor([ids(prompt)]);
    const lens = tv.logitLens(model, { inputIds, target, topK: 3 });
    const dla = tv.directLogitAttribution(model, { inputIds, target, contrast });
    assert.deepEqual([result.target, result.topK, result.top.ids[0][0].length], [target, 3, 3]);
    assertValues(result.targetProbability, lens.targetProbability.values, "lens grid");
    const attribution = result.directLogitAttribution!;
    assert.deepEqual(
      [attribution.kind, attribution.target, attribution.contrast],
      ["logit-attribution", target, contrast],
    );
    assert.ok(Math.abs(attribution.total - dla.total) < 1e-5);
    const layers = attribution.layers;
    assert.deepEqual([layers.rowTitle, layers.colTitle, layers.colLabels], ["layer", "part", ["attention", "mlp"]]);
    assertValues(
      layers,
      range(model.numLayers).flatMap((l) => [dla.attention[l], dla.mlp[l]]),
      "attention and MLP contributions",
    );
    assert.deepEqual(attribution.heads!.colLabels, range(heads()).map(String));
    assertValues(attribution.heads!, dla.heads!.values, "head contributions");
    // The parts add up to the logit difference.
    const sum = layers.values.flat().reduce((a, b) => a! + b!, 0)! + attribution.embeddings + attribution.bias;
    assert.ok(Math.abs(sum - attribution.total) < 1e-3, `${sum} vs ${attribution.total}`);
  });

  it("prints the tables and writes a report, and refuses bad flags naming them", async () => {
    const report = join(scratch, "lens.html");
    const run = tsvene("lens", "--dla", "--report", report, "--quiet");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^logit lens: probability of /);
    assert.match(run.stdout, /\ntop token of each cell \(its probability\):\n/);
    assert.match(run.stdout, /\ndirect logit attribution of logit\(/);
    assert.match(await readFile(report, "utf8"), /^<!DOCTYPE html>[\s\S]*<svg/);
    assertUsageError(["lens", "--top-k", "0"], "--top-k must be an integer ≥ 1");
    assertUsageError(["lens", "--top-k", "100000"], "--top-k 100000 is more than the vocabulary");
    assertUsageError(["lens", "--contrast", "Lima"], "--contrast is read only with --dla");
    assertUsageError(["lens", "--prompt", "Ada speaks"], /--prompt "Ada speaks"/);
    assertUsageError(["lens", "--target", "Atlantis"], /--target "Atlantis"/);
    assertUsageError(["lens", "--dla", "--contrast", "Lima"], "--contrast must be another token than the target");
  });
});

describe("tsvene --help", () => {
  it("lists the analysis commands, each with its usage", () => {
    const general = tsvene("--help").stdout;
    for (const name of ["heads", "attribute", "lens"]) {
      assert.match(general, new RegExp(`^  ${name} `, "m"));
      const usage = tsvene(name, "--help");
      assert.equal(usage.code, 0);
      assert.match(usage.stdout, new RegExp(`^Usage: tsvene ${name} `));
      for (const flag of ["--json", "--report", "--quiet", "--out", "--model"]) assert.ok(usage.stdout.includes(flag));
    }
  });
});
