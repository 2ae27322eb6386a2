/**
 * Sweeps against brute force: every cell of a trace or patching grid recomputed on its own with a
 * plain IntervenableModel (no caching, no resuming, no batching), and collection against the
 * model's own hidden states.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { fixtureFolder } from "./support/fixtures.js";

const PROMPT = [83, 54, 22, 99, 51, 27];
const TOKENS = PROMPT.map(String);

/**
 * The metric of one cell: corrupt (optional), restore `component` at the window's layers and
 * position p from `sourceIds`.
 */
function bruteForceCell(
  model: tv.PretrainedModel,
  baseIds: number[],
  sourceIds: number[],
  component: string,
  layers: number[],
  p: number,
  noise: tv.Tensor | null,
  corrupted: number[],
  target: number,
  metric: "probability" | "logit",
): number {
  const corrupt = noise
    ? [
        {
          layer: 0,
          component: "block_input",
          maxNumberOfUnits: corrupted.length,
          interventionType: tv.AdditionIntervention,
        },
      ]
    : [];
  const collect = new tv.IntervenableModel(
    layers.map((layer) => ({ layer, component, interventionType: tv.CollectIntervention })),
    model,
  );
  const clean = collect.forward({ inputIds: tv.intTensor([sourceIds]) }, null, {
    unitLocations: { base: layers.map(() => [[p]]) },
  }).collected;
  const im = new tv.IntervenableModel(
    [...corrupt, ...layers.map((layer) => ({ layer, component, interventionType: tv.VanillaIntervention }))],
    model,
  );
  const logits = im.forward({ inputIds: tv.intTensor([baseIds]) }, null, {
    unitLocations: { base: [...corrupt.map(() => [corrupted]), ...layers.map(() => [[p]])] },
    sourceRepresentations: [...corrupt.map(() => tv.unsqueeze(noise!, 0)), ...clean],
  }).intervened.logits;
  return tv.measure(logits, target, metric)[0];
}

function assertGridMatches(grid: tv.ScoreGrid, cell: (layer: number, p: number) => number, tolerance: number): void {
  for (let l = 0; l < grid.rows; l++) {
    for (let p = 0; p < grid.cols; p++) {
      const expected = cell(l, p);
      const actual = grid.values[l * grid.cols + p];
      assert.ok(Math.abs(actual - expected) <= tolerance, `cell (${l}, ${p}): ${actual} vs brute force ${expected}`);
    }
  }
}

describe("sweeps", () => {
  let gpt2: tv.PretrainedModel;
  let neox: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    neox = (await tv.loadPretrained(fixtureFolder("gpt_neox_tiny"))).model;
  });

  it("causal tracing equals restoring each cell on its own (block_output; resumed staircase)", () => {
    const noise = tv.randn([3, 32], { std: 0.5, generator: new tv.Generator(1) });
    const trace = tv.causalTrace(gpt2, {
      inputIds: tv.intTensor([PROMPT]),
      tokens: TOKENS,
      corruptedPositions: [0, 1, 2],
      noise,
      metric: "logit",
    });
    assert.deepEqual([trace.grid.rows, trace.grid.cols], [4, 6]);
    assertGridMatches(
      trace.grid,
      (l, p) => bruteForceCell(gpt2, PROMPT, PROMPT, "block_output", [l], p, noise, [0, 1, 2], trace.target, "logit"),
      1e-5,
    );
    const last = trace.grid.values[3 * 6 + 5];
    assert.ok(
      Math.abs(last - trace.clean) < 1e-5,
      "restoring the last layer at the last position recovers the clean logit",
    );
  });

  it("traces any per-position component of the site map (mlp_activation, 4·d wide)", () => {
    const noise = tv.randn([2, 32], { std: 0.5, generator: new tv.Generator(4) });
    const inputIds = tv.intTensor([PROMPT]);
    const trace = tv.causalTrace(gpt2, {
      inputIds,
      tokens: TOKENS,
      corruptedPositions: [1, 2],
      noise,
      component: "mlp_activation",
      metric: "logit",
    });
    const cell = (l: number, p: number) =>
      bruteForceCell(gpt2, PROMPT, PROMPT, "mlp_activation", [l], p, noise, [1, 2], trace.target, "logit");
    assertGridMatches(trace.grid, cell, 1e-5);
  });

  it("windows of layers restore together (mlp_output, window 3) and probabilities are measured", () => {
    const noise = tv.randn([2, 32], { std: 0.5, generator: new tv.Generator(2) });
    const trace = tv.causalTrace(gpt2, {
      inputIds: tv.intTensor([PROMPT]),
      tokens: TOKENS,
      corruptedPositions: [1, 2],
      noise,
      component: "mlp_output",
      window: 3,
    });
    // ROME's window of 3: the layer and one on each side, clipped at both edges.
    const windowOf = (l: number) => [l - 1, l, l + 1].filter((x) => x >= 0 && x < 4);
    assertGridMatches(
      trace.grid,
      (l, p) =>
        bruteForceCell(gpt2, PROMPT, PROMPT, "mlp_output", windowOf(l), p, noise, [1, 2], trace.target, "probability"),
      1e-6,
    );
  });

  it("GPT-NeoX (parallel attention, rotary) gives the brute-force cells too (attention_output)", () => {
    const noise = tv.randn([2, 32], { std: 0.5, generator: new tv.Generator(3) });
    const trace = tv.causalTrace(neox, {
      inputIds: tv.intTensor([PROMPT]),
      tokens: TOKENS,
      corruptedPositions: [0, 1],
      noise,
      component: "attention_output",
      metric: "logit",
    });
    assertGridMatches(
      trace.grid,
      (l, p) => bruteForceCell(neox, PROMPT, PROMPT, "attention_output", [l], p, noise, [0, 1], trace.target, "logit"),
      1e-5,
    );
  });

  it("later positions reuse the patched run's earlier keys: sliding windows, local attention, GQA", async () => {
    const small = { hidden_size: 16, num_hidden_layers: 3, vocab_size: 100, intermediate_size: 32 };
    const models: [string, tv.PretrainedModel][] = [
      [
        "gemma2, sliding window 2",
        tv.modelFromConfig({
          ...small,
          model_type: "gemma2",
          num_attention_heads: 2,
          num_key_value_heads: 1,
          head_dim: 8,
          sliding_window: 2,
        }),
      ],
      [
        "gpt_neo, local window 2",
        tv.modelFromConfig({
          model_type: "gpt_neo",
          hidden_size: 16,
          num_heads: 2,
          num_layers: 3,
          attention_layers: ["local", "global", "local"],
          window_size: 2,
          max_position_embeddings: 16,
          vocab_size: 100,
        }),
      ],
      ["llama, grouped keys", (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model],
    ];
    for (const [name, model] of models) {
      if (!name.startsWith("llama")) tv.nn.initNormal(model, 0.3, new tv.Generator(5));
      const width = (model as tv.DecoderModel).settings.hiddenSize;
      const noise = tv.randn([2, width], { std: 0.5, generator: new tv.Generator(4) });
      const trace = tv.causalTrace(model, {
        inputIds: tv.intTensor([PROMPT]),
        tokens: TOKENS,
        corruptedPositions: [1, 2],
        noise,
        window: 2,
        metric: "logit",
      });
      // ROME's window of 2: the layer and the one below it.
      const windowOf = (l: number) => (l === 0 ? [0] : [l - 1, l]);
      assertGridMatches(
        trace.grid,
        (l, p) =>
          bruteForceCell(model, PROMPT, PROMPT, "block_output", windowOf(l), p, noise, [1, 2], trace.target, "logit"),
        1e-5,
      );
    }
  });

  it("activation patching equals patching each cell on its own", () => {
    const source = [54, 46, 23, 32, 54, 30];
    const patch = tv.activationPatching(gpt2, {
      base: tv.intTensor([PROMPT]),
      source: tv.intTensor([source]),
      baseTokens: TOKENS,
      sourceTokens: source.map(String),
      metric: "logit",
    });
    assertGridMatches(
      patch.grid,
      (l, p) => bruteForceCell(gpt2, PROMPT, source, "block_output", [l], p, null, [], patch.target, "logit"),
      1e-5,
    );
    assert.throws(
      () =>
        tv.activationPatching(gpt2, {
          base: tv.intTensor([PROMPT]),
          source: tv.intTensor([[1, 2]]),
          baseTokens: TOKENS,
          sourceTokens: ["1", "2"],
        }),
      /same length/,
    );
  });

  it("collection returns each layer's block output for every example, as the model's hidden states", () => {
    const ids = tv.intTensor([PROMPT, [3, 74, 81, 8, 16, 20], [1, 2, 3, 4, 5, 6]]);
    const result = tv.collectActivations(gpt2, { inputIds: ids, layers: [0, 2], batchSize: 2 });
    const hidden = gpt2.run({ inputIds: ids, outputHiddenStates: true }).hiddenStates!;
    assert.deepEqual(
      result.activations.map((a) => a.shape),
      [
        [3, 6, 32],
        [3, 6, 32],
      ],
    );
    assert.deepEqual(result.activations[0].values, hidden[1].data);
    assert.deepEqual(result.activations[1].values, hidden[3].data);
    let hooks = 0;
    for (const [, m] of gpt2.namedModules()) hooks += m.hookCount;
    assert.equal(hooks, 0);
  });
});

describe("causal tracing with several noise draws", () => {
  it("averages the grids of single-draw traces, each with its own slice of the noise", async () => {
    const { model } = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
    const inputIds = tv.intTensor([[83, 54, 22, 99, 51, 27]]);
    const tokens = ["a", "b", "c", "d", "e", "f"];
    const noise = tv.randn([3, 2, 32], { generator: new tv.Generator(5) });
    const traced = tv.causalTrace(model, { inputIds, tokens, corruptedPositions: [1, 2], noise, samples: 3 });
    const single = [0, 1, 2].map((s) =>
      tv.causalTrace(model, {
        inputIds,
        tokens,
        corruptedPositions: [1, 2],
        noise: tv.squeeze(tv.slice(noise, 0, s, s + 1), 0),
      }),
    );
    assert.equal(traced.samples, 3);
    traced.grid.values.forEach((v, i) =>
      assert.ok(Math.abs(v - single.reduce((a, t) => a + t.grid.values[i], 0) / 3) < 1e-6),
    );
    assert.ok(Math.abs(traced.corrupted - single.reduce((a, t) => a + t.corrupted, 0) / 3) < 1e-6);
    // The spread is the draws' standard deviation (n − 1 divisor), per cell and for the corrupted run.
    const sd = (xs: number[]) => {
      const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
      return Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
    };
    traced.grid.spread!.forEach((s, i) => assert.ok(Math.abs(s - sd(single.map((t) => t.grid.values[i]))) < 1e-5));
    assert.ok(Math.abs(traced.corruptedSpread - sd(single.map((t) => t.corrupted))) < 1e-6);
    assert.ok(traced.corruptedSpread > 0);
    assert.deepEqual([single[0].samples, single[0].corruptedSpread, traced.noiseStd, traced.seed], [1, 0, null, null]);
    assert.throws(
      () => tv.causalTrace(model, { inputIds, tokens, corruptedPositions: [1, 2], noise, samples: 2 }),
      /noise must be \[2, 2, 32\]/,
    );
  });

  it("draws 10 samples of 3 × the embeddings' std by default and says so; a seed repeats them", async () => {
    const { model } = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
    const inputIds = tv.intTensor([[83, 54, 22, 99]]);
    const options = { inputIds, tokens: ["a", "b", "c", "d"], corruptedPositions: [0, 1], seed: 4 };
    const traced = tv.causalTrace(model, options);
    const embeddings = model.run({ inputIds, outputHiddenStates: true }).hiddenStates![0];
    assert.equal(traced.samples, 10);
    assert.equal(traced.seed, 4);
    assert.ok(Math.abs(traced.noiseStd! - 3 * Math.sqrt(tv.variance(embeddings).item())) < 1e-6);
    assert.equal(traced.grid.spread!.length, traced.grid.values.length);
    assert.deepEqual(tv.causalTrace(model, options).grid.values, traced.grid.values);
    assert.throws(() => tv.causalTrace(model, { ...options, samples: 0 }), /samples must be a positive integer, got 0/);
  });
});

describe("sweeps need a decoder", () => {
  it("refuse a model that cannot resume from a block, naming the families that can", async () => {
    const mlp = tv.modelFromConfig({
      model_type: "mlp",
      architectures: ["MLPForClassification"],
      h_dim: 4,
      n_layer: 2,
      num_classes: 2,
    });
    assert.throws(
      () => tv.causalTrace(mlp, { inputIds: tv.intTensor([[0, 1]]), tokens: ["a", "b"], corruptedPositions: [0] }),
      /causalTrace: mlp is not a transformer decoder; the sweeps run on GPT-2, GPT-Neo, GPT-NeoX and the Llama family/,
    );
  });
});
