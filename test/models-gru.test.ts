import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tv from "../src/index.js";
import { GRUBaseModel, GRUCell, GRUForClassification, GRULMHeadModel, type GRUStepContext } from "../src/models/gru.js";
import { maxAbsDiff } from "./support/fixtures.js";

/** pyvene's GRUConfig fields as save_pretrained writes them, scaled down. */
function gruConfig(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    architectures: ["GRUForClassification"],
    h_dim: 3,
    include_bias: true,
    include_emb: false,
    initializer_range: 0.02,
    max_position_embeddings: 16,
    model_type: "gru",
    n_labels: 2,
    n_layer: 2,
    pdrop: 0.3,
    problem_type: "single_label_classification",
    torch_dtype: "float32",
    transformers_version: "4.45.0.dev0",
    vocab_size: 7,
    ...overrides,
  };
}

function randomise(model: tv.nn.AnyModule, seed: number): void {
  const generator = new tv.Generator(seed);
  for (const [, p] of model.namedParameters()) p.data.set(tv.rand(p.shape, { low: -0.8, high: 0.8, generator }).data);
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** One GRU step in plain numbers, straight from the gate equations (W stored [out, in]). */
function naiveStep(cell: GRUCell, x: number[], h: number[]): number[] {
  const n = h.length;
  const affine = (w: Float32Array, b: Float32Array | undefined, v: number[], row: number) =>
    v.reduce((acc, vi, i) => acc + w[row * n + i] * vi, b ? b[row] : 0);
  const bx = cell.x2h.bias?.data;
  const bh = cell.h2h.bias?.data;
  return h.map((hi, i) => {
    const r = sigmoid(affine(cell.x2h.weight.data, bx, x, i) + affine(cell.h2h.weight.data, bh, h, i));
    const z = sigmoid(affine(cell.x2h.weight.data, bx, x, n + i) + affine(cell.h2h.weight.data, bh, h, n + i));
    const candidate = Math.tanh(
      affine(cell.x2h.weight.data, bx, x, 2 * n + i) + r * affine(cell.h2h.weight.data, bh, h, 2 * n + i),
    );
    return z * hi + (1 - z) * candidate;
  });
}

test("gru: one cell step equals the gate equations for set weights", () => {
  const cell = new GRUCell(2, true);
  // x2h rows: reset (2), update (2), new (2); the same layout for h2h.
  cell.x2h.weight.data.set([0.5, -1, 1, 0, 0, 1, -0.5, 0.25, 2, 0, 0, -1]);
  cell.x2h.bias!.data.set([0.1, 0, -0.2, 0.3, 0, 0.5]);
  cell.h2h.weight.data.set([1, 0, 0, 1, 0.5, 0.5, -1, 0, 0, 2, 1, -1]);
  cell.h2h.bias!.data.set([0, 0.2, 0, 0, -0.1, 0]);
  const x = [1, -2];
  const h = [0.5, -0.25];
  // By hand: r = σ([0.5·1 − 1·(−2) + 0.1 + 0.5, 1 + 0 − 0.25 + 0.2]) = σ([3.1, 0.95]), and so on.
  const r = [sigmoid(3.1), sigmoid(0.95)];
  const z = [sigmoid(-2 - 0.2 + 0.5 * 0.5 + 0.5 * -0.25), sigmoid(-0.5 - 0.5 + 0.3 - 0.5)];
  const candidate = [Math.tanh(2 + 0 + r[0] * (-0.5 - 0.1)), Math.tanh(-1 * -2 + 0.5 + r[1] * (0.5 + 0.25))];
  const expected = h.map((hi, i) => z[i] * hi + (1 - z[i]) * candidate[i]);
  const out = cell.call(tv.tensor([x]), { step: 0, state: tv.tensor([h]) });
  assert.deepEqual(out.shape, [1, 2]);
  expected.forEach((e, i) => assert.ok(Math.abs(out.data[i] - e) < 1e-6, `h'[${i}] = ${out.data[i]}, expected ${e}`));
  naiveStep(cell, x, h).forEach((v, i) =>
    assert.ok(Math.abs(v - expected[i]) < 1e-6, "the naive step used below agrees"),
  );
});

test("gru: the model loops over time, layers inside each step, from zero states", () => {
  const model = new GRUBaseModel(gruConfig({ architectures: ["GRUModel"] }));
  randomise(model, 4);
  const [B, T, H] = [2, 4, 3];
  const x = tv.randn([B, T, H], { generator: new tv.Generator(8) });
  const out = model.run({ inputsEmbeds: x, outputHiddenStates: true });
  assert.deepEqual(out.logits.shape, [B, T, H]);
  assert.equal(out.hiddenStates!.length, 3);
  const cells = [0, 1].map((l) => model.getModule(`cells.${l}`) as GRUCell);
  let worst = 0;
  for (let b = 0; b < B; b++) {
    const states = [
      [0, 0, 0],
      [0, 0, 0],
    ];
    for (let t = 0; t < T; t++) {
      let input = [...x.data.subarray((b * T + t) * H, (b * T + t + 1) * H)];
      for (let l = 0; l < 2; l++) {
        states[l] = naiveStep(cells[l], input, states[l]);
        input = states[l];
        const got = out.hiddenStates![l + 1].data.subarray((b * T + t) * H, (b * T + t + 1) * H);
        states[l].forEach((v, i) => (worst = Math.max(worst, Math.abs(v - got[i]))));
      }
      const last = out.logits.data.subarray((b * T + t) * H, (b * T + t + 1) * H);
      states[1].forEach((v, i) => (worst = Math.max(worst, Math.abs(v - last[i]))));
    }
  }
  assert.ok(worst < 1e-5, `states differ from the naive loop by ${worst}`);
});

test("gru: every cell call is hookable and its context tells the time step", () => {
  const model = new GRULMHeadModel(gruConfig({ architectures: ["GRULMHeadModel"] }));
  randomise(model, 6);
  const seen: string[] = [];
  const handles = [
    model.getModule("gru.cells.0").addPreHook((_m, _x, ctx) => void seen.push(`cell0@${(ctx as GRUStepContext).step}`)),
    model
      .getModule("gru.cells.1.x2h")
      .addPostHook((_m, _x, _y, ctx) => void seen.push(`x2h1@${(ctx as GRUStepContext).step}`)),
    model
      .getModule("gru.cells.1.new_act")
      .addPostHook((_m, _x, _y, ctx) => void seen.push(`new1@${(ctx as GRUStepContext).step}`)),
  ];
  const x = tv.randn([1, 3, 3], { generator: new tv.Generator(1) });
  const before = model.run({ inputsEmbeds: x }).logits;
  assert.deepEqual(seen, ["cell0@0", "x2h1@0", "new1@0", "cell0@1", "x2h1@1", "new1@1", "cell0@2", "x2h1@2", "new1@2"]);
  handles.forEach((h) => h.remove());
  // Zeroing the layer-0 state only at step 1 changes that step and later ones, not step 0.
  const handle = model
    .getModule("gru.cells.0")
    .addPostHook((_m, _x, y, ctx) => ((ctx as GRUStepContext).step === 1 ? tv.zerosLike(y) : undefined));
  const after = model.run({ inputsEmbeds: x }).logits;
  handle.remove();
  assert.equal(maxAbsDiff(tv.slice(after, 1, 0, 1), tv.slice(before, 1, 0, 1)), 0);
  assert.ok(maxAbsDiff(tv.slice(after, 1, 1), tv.slice(before, 1, 1)) > 1e-4);
});

test("gru: the classifier scores the state at attentionMask.sum − 1, or the last step", () => {
  const model = new GRUForClassification(gruConfig({ n_labels: 3 }));
  randomise(model, 2);
  assert.equal(model.score.bias, null);
  model.score.weight.data.set([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const x = tv.randn([2, 4, 3], { generator: new tv.Generator(3) });
  const states = model.gru.encode({ inputsEmbeds: x }).states;
  const stateAt = (b: number, t: number) => [...states.data.subarray((b * 4 + t) * 3, (b * 4 + t + 1) * 3)];
  const masked = model.run({
    inputsEmbeds: x,
    attentionMask: tv.intTensor([
      [1, 1, 0, 0],
      [1, 1, 1, 1],
    ]),
  }).logits;
  assert.deepEqual(masked.shape, [2, 3]);
  assert.deepEqual([...masked.data], [...stateAt(0, 1), ...stateAt(1, 3)]);
  const unmasked = model.run({ inputsEmbeds: x }).logits;
  assert.deepEqual([...unmasked.data], [...stateAt(0, 3), ...stateAt(1, 3)]);
  assert.throws(
    () => model.run({ inputsEmbeds: x, attentionMask: tv.intTensor([[1, 1, 1]]) }),
    /attentionMask must be \[2, 4\]/,
  );
  assert.throws(
    () =>
      model.run({
        inputsEmbeds: x,
        attentionMask: tv.intTensor([
          [0, 0, 0, 0],
          [1, 1, 1, 1],
        ]),
      }),
    /row 0 has no real step/,
  );
});

test("gru: LM head logits [B, T, vocab] from token and position embeddings", () => {
  const model = new GRULMHeadModel(gruConfig({ architectures: ["GRULMHeadModel"], include_emb: true }));
  randomise(model, 9);
  assert.equal(model.lm_head.bias, null);
  assert.notEqual(model.lm_head.weight, model.gru.wte!.weight);
  const ids = tv.intTensor([
    [1, 2, 3, 4, 5],
    [6, 5, 4, 3, 2],
  ]);
  const out = model.run({
    inputIds: ids,
    positionIds: tv.intTensor([
      [0, 1, 2, 3, 4],
      [0, 1, 2, 3, 4],
    ]),
    outputHiddenStates: true,
  });
  assert.deepEqual(out.logits.shape, [2, 5, 7]);
  const embedded = tv.add(
    tv.embedding(model.gru.wte!.weight, ids),
    tv.embedding(
      model.gru.wpe!.weight,
      tv.intTensor([
        [0, 1, 2, 3, 4],
        [0, 1, 2, 3, 4],
      ]),
    ),
  );
  assert.equal(maxAbsDiff(out.hiddenStates![0], embedded), 0);
  assert.equal(maxAbsDiff(out.logits, tv.linear(out.hiddenStates![2], model.lm_head.weight)), 0);
  assert.equal(model.newCache(), null);
  const generated = tv.generate(model, tv.intTensor([[1, 2]]), { maxNewTokens: 3 });
  assert.deepEqual(generated.sequences.shape, [1, 5]);
});

test("gru: both heads share pyvene's site map under gru., the fused thirds included", () => {
  for (const architecture of ["GRUForClassification", "GRULMHeadModel"]) {
    const model = tv.modelFromConfig(gruConfig({ architectures: [architecture] }));
    assert.deepEqual(model.site("cell_input", 1), { module: "gru.cells.1", hook: "input", dim: 3, recurrent: true });
    assert.deepEqual(model.site("cell_output", 0), { module: "gru.cells.0", hook: "output", dim: 3, recurrent: true });
    assert.deepEqual(model.site("update_gate_input", 0), {
      module: "gru.cells.0.update_act",
      hook: "input",
      dim: 3,
      recurrent: true,
    });
    assert.deepEqual(model.site("new_gate_output", 1), {
      module: "gru.cells.1.new_act",
      hook: "output",
      dim: 3,
      recurrent: true,
    });
    assert.deepEqual(model.site("h2h_output", 0), {
      module: "gru.cells.0.h2h",
      hook: "output",
      dim: 9,
      recurrent: true,
    });
    assert.deepEqual(model.site("update_x2h_output", 0), {
      module: "gru.cells.0.x2h",
      hook: "output",
      dim: 3,
      recurrent: true,
      fusedPart: { index: 1, of: 3 },
    });
    assert.deepEqual(model.site("new_h2h_output", 1), {
      module: "gru.cells.1.h2h",
      hook: "output",
      dim: 3,
      recurrent: true,
      fusedPart: { index: 2, of: 3 },
    });
    for (const component of Object.keys(model.sites)) model.getModule(model.site(component, 1).module);
    assert.equal(Object.keys(model.sites).length, 16);
  }
  const bare = tv.modelFromConfig(gruConfig({ architectures: ["GRUModel"] }));
  assert.deepEqual(bare.site("reset_x2h_output", 0), {
    module: "cells.0.x2h",
    hook: "output",
    dim: 3,
    recurrent: true,
    fusedPart: { index: 0, of: 3 },
  });
});

test("gru: an HF-layout folder with pyvene's GRU config loads strictly and runs", async () => {
  const folder = await mkdtemp(join(tmpdir(), "tsvene-gru-"));
  try {
    const config = gruConfig({});
    const source = new GRUForClassification(config);
    randomise(source, 12);
    assert.deepEqual(
      source.namedParameters().map(([n]) => n),
      [
        "gru.cells.0.x2h.weight",
        "gru.cells.0.x2h.bias",
        "gru.cells.0.h2h.weight",
        "gru.cells.0.h2h.bias",
        "gru.cells.1.x2h.weight",
        "gru.cells.1.x2h.bias",
        "gru.cells.1.h2h.weight",
        "gru.cells.1.h2h.bias",
        "score.weight",
      ],
    );
    await tv.saveCheckpoint(folder, new Map(source.namedParameters()), { config });
    const { model } = await tv.loadPretrained(folder);
    assert.ok(model instanceof GRUForClassification);
    assert.equal(model.family, "gru");
    const x = tv.randn([1, 5, 3], { generator: new tv.Generator(5) });
    const out = model.run({ inputsEmbeds: x });
    assert.deepEqual(out.logits.shape, [1, 2]);
    assert.equal(maxAbsDiff(out.logits, source.run({ inputsEmbeds: x }).logits), 0);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
  assert.throws(() => tv.modelFromConfig(gruConfig({ architectures: undefined })), /must name a GRU class/);
  assert.throws(() => new GRUForClassification(gruConfig({ h_dim: 2.5 })), /h_dim/);
});
