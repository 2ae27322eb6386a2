/**
 * Dataset sweeps on the embedded default model. Truths: each example's result is the single-prompt
 * library call's (causalTrace, activationPatching, collectActivations), bit for bit; the summary's
 * means and spreads are recomputed here from those results with the token groups written out by
 * hand for each prompt; a sweep stopped after k shards and resumed computes only the other shards
 * (their files untouched) and ends with the uninterrupted run's results. Bad spec keys, bad data
 * lines and a changed spec on resume are refused, naming what was wrong.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { openSweepFolder } from "../src/cli/sweep-folder.js";
import { loadDefaultModel } from "../src/models/default-model.js";
import type { Tokenizer } from "../src/io/tokenizer.js";
import type { PretrainedModel } from "../src/models/model.js";
import { activationPatching, causalTrace, collectActivations } from "../src/sweeps/index.js";
import {
  decodeShard,
  encodeShard,
  runDatasetSweep,
  type ExampleResult,
  type ShardStore,
} from "../src/sweeps/dataset.js";
import { readDataset, readSweepSpec, type SweepSpec } from "../src/sweeps/dataset-spec.js";
import { summarizeSweep, type GridSweepSummary } from "../src/sweeps/dataset-summary.js";
import type { CollectResult, PatchResult, TraceResult } from "../src/sweeps/results.js";
import { intTensor } from "../src/tensor/index.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const scratch = await mkdtemp(join(tmpdir(), "tsvene-sweep-"));
after(() => rm(scratch, { recursive: true, force: true }));

const TRACE_DATA = [
  { prompt: "Lo Da lives in the city of", subject: "Lo Da", target: "Lima" },
  { prompt: "Mi Ro Ka speaks", subject: "Mi Ro Ka", target: "Japanese" },
  { prompt: "I heard that Ka Bo lives in the city of", subject: "Ka Bo" },
  { prompt: "Ro Vi plays", subject: "Ro Vi", target: "golf" },
  { prompt: "Fact : Ro Bo is a resident of", subject: "Ro Bo", target: "Cairo" },
];
/**
 * ROME's groups of each prompt above, by hand (one token per word on this model): subject first,
 * middle, last; the token after the subject; the further tokens; the last token.
 */
const TRACE_GROUPS = [
  [[0], [], [1], [2], [3, 4, 5], [6]],
  [[0], [1], [2], [], [], [3]],
  [[3], [], [4], [5], [6, 7, 8], [9]],
  [[0], [], [1], [], [], [2]],
  [[2], [], [3], [4], [5, 6], [7]],
];
const PATCH_DATA = [
  { base: "Ka Bo lives in the city of", source: "Ro Vi lives in the city of" },
  { base: "Fact : Ka Bo speaks", source: "Fact : Ro Bo speaks", target: "Norwegian" },
  { base: "Lo Da plays", source: "Vi Ro plays" },
];

let model: PretrainedModel;
let tokenizer: Tokenizer;
before(async () => {
  const loaded = await loadDefaultModel();
  model = loaded.model;
  tokenizer = loaded.tokenizer!;
});

const jsonl = (rows: readonly object[]) => rows.map((r) => JSON.stringify(r)).join("\n");
const labels = (ids: readonly number[]) => ids.map((id) => tokenizer.decode([id]));

function memoryStore(): ShardStore & { shards: Map<number, Uint8Array> } {
  const shards = new Map<number, Uint8Array>();
  return {
    shards,
    finished: async () => new Set(shards.keys()),
    read: async (shard) => shards.get(shard)!,
    write: async (shard, bytes) => void shards.set(shard, bytes),
  };
}

async function sweep(spec: SweepSpec, data: readonly object[], store: ShardStore = memoryStore()) {
  const examples = readDataset({ tokenizer, model }, spec.kind, jsonl(data), "data");
  const run = await runDatasetSweep({ model, tokenizer, spec, examples, store });
  assert.ok(run.complete);
  return run.results!;
}

describe("dataset sweeps give each example the single-prompt call's result", () => {
  it("trace: every grid, spread and score bit for bit, with the target of each line", async () => {
    const spec = readSweepSpec({ kind: "trace", shard_size: 2, samples: 3, seed: 4 });
    const results = (await sweep(spec, TRACE_DATA)) as TraceResult[];
    assert.equal(results.length, TRACE_DATA.length);
    TRACE_DATA.forEach((row, i) => {
      const ids = tokenizer.encode(row.prompt);
      const targetId = row.target === undefined ? undefined : tokenizer.encode(` ${row.target}`).at(-1);
      const direct = causalTrace(model, {
        inputIds: intTensor([ids]),
        tokens: labels(ids),
        corruptedPositions: TRACE_GROUPS[i].slice(0, 3).flat(),
        target: targetId,
        samples: 3,
        seed: 4,
      });
      assert.deepEqual(results[i].grid.values, direct.grid.values);
      assert.deepEqual(results[i].grid.spread, direct.grid.spread);
      assert.deepEqual(results[i].corruptedPositions, TRACE_GROUPS[i].slice(0, 3).flat());
      assert.equal(results[i].target, direct.target);
      assert.equal(results[i].targetLabel, tokenizer.decode([direct.target]));
      for (const key of ["clean", "corrupted", "corruptedSpread", "noiseStd"] as const)
        assert.equal(results[i][key], direct[key]);
    });
  });

  it("patch and collect: grids and activations bit for bit", async () => {
    const patches = (await sweep(
      readSweepSpec({ kind: "patch", shardSize: 2, component: "mlp_output", metric: "logit" }),
      PATCH_DATA,
    )) as PatchResult[];
    PATCH_DATA.forEach((row, i) => {
      const [base, source] = [tokenizer.encode(row.base), tokenizer.encode(row.source)];
      const direct = activationPatching(model, {
        base: intTensor([base]),
        source: intTensor([source]),
        baseTokens: labels(base),
        sourceTokens: labels(source),
        component: "mlp_output",
        metric: "logit",
        target: row.target === undefined ? undefined : tokenizer.encode(` ${row.target}`).at(-1),
      });
      assert.deepEqual(patches[i].grid.values, direct.grid.values);
      assert.equal(patches[i].base, direct.base);
      assert.equal(patches[i].source, direct.source);
    });
    const prompts = TRACE_DATA.slice(0, 3).map((r) => ({ prompt: r.prompt }));
    const collected = (await sweep(readSweepSpec({ kind: "collect", layers: [1, 5] }), prompts)) as CollectResult[];
    prompts.forEach(({ prompt }, i) => {
      const direct = collectActivations(model, { inputIds: intTensor([tokenizer.encode(prompt)]), layers: [1, 5] });
      assert.deepEqual(collected[i].activations, direct.activations);
    });
  });

  it("a shard's bytes decode to the same results, NaN and infinities included", () => {
    const odd = {
      kind: "collect",
      component: "block_output",
      layers: [0],
      activations: [{ layer: 0, shape: [1, 1, 3], values: Float32Array.of(Number.NaN, -Infinity, 1e-40) }],
      extra: Number.NaN,
    } as unknown as ExampleResult;
    assert.deepEqual(decodeShard(encodeShard([odd]), "shard"), [odd]);
  });
});

describe("the summary", () => {
  it("trace: ROME's token groups, mean and spread over examples as computed by hand", async () => {
    const results = (await sweep(readSweepSpec({ kind: "trace", samples: 2 }), TRACE_DATA)) as TraceResult[];
    const summary = summarizeSweep(results) as GridSweepSummary;
    const cols = summary.map.colLabels.length;
    assert.equal(cols, 6);
    assert.deepEqual(summary.map.counts, [5, 1, 5, 3, 3, 5]);
    for (let layer = 0; layer < model.numLayers; layer++) {
      for (let g = 0; g < cols; g++) {
        const perExample = results.flatMap((r, e) => {
          const positions = TRACE_GROUPS[e][g];
          if (positions.length === 0) return [];
          let sum = 0;
          for (const p of positions) sum += r.grid.values[layer * r.grid.cols + p];
          return [sum / positions.length];
        });
        const mean = perExample.reduce((a, v) => a + v, 0) / perExample.length;
        const variance =
          perExample.length > 1 ? perExample.reduce((a, v) => a + (v - mean) ** 2, 0) / (perExample.length - 1) : 0;
        assert.ok(Math.abs(summary.map.values[layer * cols + g] - mean) < 1e-12, `layer ${layer} group ${g}`);
        assert.ok(Math.abs(summary.map.spread[layer * cols + g] - Math.sqrt(variance)) < 1e-12);
      }
    }
    const clean = results.map((r) => r.clean);
    assert.ok(Math.abs(summary.scores.clean.mean - clean.reduce((a, v) => a + v, 0) / 5) < 1e-12);
  });

  it("patch: prompts of different lengths line up at their last token", async () => {
    const results = (await sweep(readSweepSpec({ kind: "patch" }), PATCH_DATA)) as PatchResult[];
    const summary = summarizeSweep(results) as GridSweepSummary;
    // Lengths 7, 5, 3: the longest sets seven columns, "last-6" … "last".
    assert.deepEqual(summary.map.colLabels, ["last-6", "last-5", "last-4", "last-3", "last-2", "last-1", "last"]);
    assert.deepEqual(summary.map.counts, [1, 1, 2, 2, 3, 3, 3]);
    const at = (r: PatchResult, layer: number, p: number) => r.grid.values[layer * r.grid.cols + p];
    const [a, b, c] = results;
    // Column "last-2" is position 4 of the first prompt, 2 of the second, 0 of the third.
    const values = [at(a, 3, 4), at(b, 3, 2), at(c, 3, 0)];
    const mean = (values[0] + values[1] + values[2]) / 3;
    assert.ok(Math.abs(summary.map.values[3 * 7 + 4] - mean) < 1e-12);
    assert.ok(Math.abs(summary.map.values[3 * 7 + 0] - at(a, 3, 0)) < 1e-12);
    assert.equal(summary.map.spread[3 * 7 + 0], 0);
  });
});

describe("interrupt and resume", () => {
  it("stopped after 2 of 3 shards, resumed: finished shards untouched, results as an uninterrupted run", async () => {
    const spec = readSweepSpec({ kind: "trace", shardSize: 2, samples: 2 });
    const examples = readDataset({ tokenizer, model }, spec.kind, jsonl(TRACE_DATA), "data");
    const manifest = { tsvene: "test", spec, data: { sha256: "d", examples: 5 }, model: { sha256: "m" }, shards: 3 };
    const out = join(scratch, "resume");
    const stop = new AbortController();
    const first = await runDatasetSweep({
      model,
      tokenizer,
      spec,
      examples,
      store: await openSweepFolder("--out", out, manifest),
      signal: stop.signal,
      // The fourth example ends the second shard: stop before the third starts.
      onProgress: (done) => done === 4 && stop.abort(),
    });
    assert.equal(first.complete, false);
    assert.deepEqual(first.computed, [0, 1]);
    const shardFiles = join(out, "shards");
    assert.deepEqual(await readdir(shardFiles), ["00000.safetensors", "00001.safetensors"]);
    const times = await Promise.all([0, 1].map((s) => stat(join(shardFiles, `0000${s}.safetensors`))));

    const resumed = await runDatasetSweep({
      model,
      tokenizer,
      spec,
      examples,
      store: await openSweepFolder("--out", out, manifest),
    });
    assert.equal(resumed.complete, true);
    assert.deepEqual(resumed.computed, [2]);
    assert.deepEqual(resumed.reused.sort(), [0, 1]);
    const after = await Promise.all([0, 1].map((s) => stat(join(shardFiles, `0000${s}.safetensors`))));
    assert.deepEqual(
      after.map((s) => s.mtimeMs),
      times.map((s) => s.mtimeMs),
    );
    const uninterrupted = await sweep(spec, TRACE_DATA);
    assert.deepEqual(resumed.results, uninterrupted);

    await assert.rejects(
      openSweepFolder("--out", out, { ...manifest, spec: { ...spec, shardSize: 3 } }),
      /holds the results of another sweep[\s\S]*the spec differs \(was .*"shardSize":2.*now .*"shardSize":3/,
    );
    await assert.rejects(
      openSweepFolder("--out", out, { ...manifest, data: { sha256: "other", examples: 5 } }),
      /the data \(its SHA-256\) differs/,
    );
  });
});

describe("tsvene sweep", () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [MAIN, "sweep", ...args], { encoding: "utf8" });
  const files = async (name: string, spec: object, data: string) => {
    const [specFile, dataFile] = [join(scratch, `${name}.json`), join(scratch, `${name}.jsonl`)];
    await writeFile(specFile, JSON.stringify(spec));
    await writeFile(dataFile, data);
    return ["--spec", specFile, "--data", dataFile];
  };

  it("writes the results folder; a lost shard is recomputed alone and the files come out the same", async () => {
    const args = await files("cli", { kind: "trace", shardSize: 2, samples: 2 }, jsonl(TRACE_DATA));
    const out = join(scratch, "cli-out");
    const firstRun = run(...args, "--out", out, "--json");
    assert.equal(firstRun.status, 0, firstRun.stderr);
    assert.deepEqual((await readdir(out)).sort(), ["examples.jsonl", "manifest.json", "shards", "summary.json"]);
    const summary = await readFile(join(out, "summary.json"), "utf8");
    const examples = await readFile(join(out, "examples.jsonl"), "utf8");
    assert.deepEqual(JSON.parse(firstRun.stdout), JSON.parse(summary));
    const lines = examples
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { line: number; prompt: string });
    assert.deepEqual(
      lines.map((l) => [l.line, l.prompt]),
      TRACE_DATA.map((r, i) => [i + 1, r.prompt]),
    );
    const kept = await stat(join(out, "shards", "00000.safetensors"));
    await rm(join(out, "shards", "00001.safetensors"));
    const again = run(...args, "--out", out);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /\(1 shard\(s\) computed, 2 already finished\)/);
    assert.equal((await stat(join(out, "shards", "00000.safetensors"))).mtimeMs, kept.mtimeMs);
    assert.equal(await readFile(join(out, "summary.json"), "utf8"), summary);
    assert.equal(await readFile(join(out, "examples.jsonl"), "utf8"), examples);

    const changed = run(
      ...(await files("cli", { kind: "trace", shardSize: 2, samples: 3 }, jsonl(TRACE_DATA))),
      "--out",
      out,
    );
    assert.equal(changed.status, 2);
    assert.match(changed.stderr, /cannot be resumed: the spec differs .*"samples":2.*"samples":3/);
  });

  it("refuses unknown spec keys and bad data lines, by line, before anything is written", async () => {
    const typo = run(
      ...(await files("typo", { kind: "trace", sampels: 2 }, jsonl(TRACE_DATA))),
      "--out",
      join(scratch, "typo"),
    );
    assert.equal(typo.status, 2);
    assert.match(typo.stderr, /unknown option "sampels" \(did you mean "samples"\?\)/);
    const data = [
      JSON.stringify(TRACE_DATA[0]),
      "",
      JSON.stringify({ prompt: "Zork lives", subject: "Zork" }),
      "{not json",
      JSON.stringify({ prompt: "Lo Da plays", subject: "Ka Bo" }),
      JSON.stringify({ prompt: "Lo Da plays", subjekt: "Lo" }),
    ].join("\n");
    const out = join(scratch, "bad");
    const bad = run(...(await files("bad", { kind: "trace" }, data)), "--out", out);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /4 bad lines/);
    assert.match(bad.stderr, /line 3: prompt "Zork lives": "Zork" .* not in the model's vocabulary/);
    assert.match(bad.stderr, /line 4: not valid JSON/);
    assert.match(bad.stderr, /line 5: subject "Ka Bo" does not occur in the prompt "Lo Da plays"/);
    assert.match(bad.stderr, /line 6: .*unknown option "subjekt" \(did you mean "subject"\?\)/);
    await assert.rejects(stat(out), { code: "ENOENT" });
    const pair = JSON.stringify({ base: "Ka Bo lives in the city of", source: "Ro Vi plays" });
    const uneven = run(...(await files("uneven", { kind: "patch" }, pair)), "--out", out);
    assert.equal(uneven.status, 2);
    assert.match(uneven.stderr, /line 1: "source" must have as many tokens as "base"/);
    const badOption = run(
      ...(await files(
        "window",
        { kind: "patch", window: 99 },
        pair.replace("Ro Vi plays", "Ro Vi lives in the city of"),
      )),
      "--out",
      out,
    );
    assert.equal(badOption.status, 2);
    assert.match(badOption.stderr, /sweep spec: window/);
  });
});
