import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tv from "../src/index.js";
import { MLPBaseModel, MLPForClassification } from "../src/models/mlp.js";
import { fixtureFolder, maxAbsDiff, modelInputs, readCases, readFixtureTensors } from "./support/fixtures.js";

const FIXTURE = "mlp_tiny";
const TOLERANCE = 1e-4;

const loaded = tv.loadPretrained(fixtureFolder(FIXTURE));
const fixture = Promise.all([readCases(FIXTURE), readFixtureTensors(FIXTURE)]);

test("mlp_tiny: loadPretrained picks pyvene's MLPForClassification", async () => {
  const { model } = await loaded;
  assert.ok(model instanceof MLPForClassification);
  assert.equal(model.family, "mlp");
  assert.equal(model.numLayers, 2);
  assert.deepEqual(
    model.namedParameters().map(([n]) => n),
    ["mlp.h.0.ff1.weight", "mlp.h.0.ff1.bias", "mlp.h.1.ff1.weight", "mlp.h.1.ff1.bias", "score.weight", "score.bias"],
  );
});

test("mlp_tiny: logits and hidden states of each reference input match pyvene", async (t) => {
  const { model } = await loaded;
  const [cases, tensors] = await fixture;
  for (const [name, ref] of Object.entries(cases.references)) {
    const inputs = modelInputs(cases, tensors, name);
    assert.ok(inputs.inputsEmbeds, `${name} is given as inputs_embeds`);
    const out = tv.noGrad(() => model.run({ ...inputs, outputHiddenStates: true }));
    const expected = tensors.get(ref.logits) as tv.Tensor;
    assert.deepEqual(out.logits.shape, expected.shape, "squeeze_output false keeps [B, 1, C]");
    const logitDiff = maxAbsDiff(out.logits, expected);
    assert.ok(logitDiff < TOLERANCE, `${name}: logits differ by ${logitDiff}`);
    assert.equal(out.hiddenStates!.length, ref.hidden_states.length);
    const diffs = ref.hidden_states.map((key, i) => {
      const d = maxAbsDiff(out.hiddenStates![i], tensors.get(key) as tv.Tensor);
      assert.ok(d < TOLERANCE, `${name}: hidden state ${i} differs by ${d}`);
      return d;
    });
    assert.equal(out.hiddenStates![0], inputs.inputsEmbeds, "entry 0 is the input");
    t.diagnostic(
      `${name}: logits ${logitDiff.toExponential(2)}, hidden states ${diffs.map((d) => d.toExponential(2)).join(" ")}`,
    );
  }
});

test("mlp: pyvene's site map; at inference the activation site is the block output", async () => {
  const { model } = await loaded;
  assert.deepEqual(model.site("block_input", 0), { module: "mlp.h.0", hook: "input", dim: 16 });
  assert.deepEqual(model.site("block_output", 1), { module: "mlp.h.1", hook: "output", dim: 16 });
  assert.deepEqual(model.site("mlp_activation", 1), { module: "mlp.h.1.act", hook: "output", dim: 16 });
  assert.throws(() => model.site("mlp_output", 0), /not available for mlp/);
  const [cases, tensors] = await fixture;
  const inputs = modelInputs(cases, tensors, "base");
  let activation: tv.Tensor | null = null;
  const handle = model.getModule("mlp.h.0.act").addPostHook((_m, _x, y) => {
    activation = y;
  });
  const out = tv.noGrad(() => model.run({ ...inputs, outputHiddenStates: true }));
  handle.remove();
  // Dropout is the identity at inference, so the block output is its activation.
  assert.equal(maxAbsDiff(activation!, out.hiddenStates![1]), 0);
});

/** pyvene's MLPConfig fields (as save_pretrained writes them), scaled down. */
function mlpConfig(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    activation_function: "relu",
    architectures: ["MLPForClassification"],
    h_dim: 4,
    include_bias: false,
    include_emb: false,
    max_position_embeddings: 8,
    model_type: "mlp",
    n_layer: 1,
    num_classes: 3,
    pdrop: 0.3,
    problem_type: "single_label_classification",
    squeeze_output: true,
    torch_dtype: "float32",
    vocab_size: 10,
    ...overrides,
  };
}

test("mlp: a hand-computed one-block ReLU classifier; squeeze_output gives [B, C]", () => {
  const model = new MLPForClassification(mlpConfig({}));
  model.mlp.h.at(0).ff1.weight.data.set([1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]);
  model.score.weight.data.set([1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, -1]);
  const x = tv.tensor([[[1, 2, -3, 4]], [[-1, -2, 3, 0.5]]]);
  const { logits } = model.run({ inputsEmbeds: x });
  // relu(W1 x): [1, 0, 0, 4] and [0, 2, 6, 0.5]; then score rows.
  assert.deepEqual(logits.shape, [2, 3]);
  assert.deepEqual([...logits.data], [1, 4, -3, 2, 6.5, -0.5]);
});

test("mlp: include_emb reads ids, adds position embeddings only when positions are given", () => {
  const model = new MLPForClassification(mlpConfig({ include_emb: true, squeeze_output: false }));
  const generator = new tv.Generator(1);
  for (const [, p] of model.namedParameters()) p.data.set(tv.randn(p.shape, { generator }).data);
  const ids = tv.intTensor([[3], [7]]);
  const positions = tv.intTensor([[2], [5]]);
  const wte = tv.embedding(model.mlp.wte!.weight, ids);
  const withPositions = tv.add(wte, tv.embedding(model.mlp.wpe!.weight, positions));
  const out = model.run({ inputIds: ids, positionIds: positions, outputHiddenStates: true });
  assert.equal(maxAbsDiff(out.hiddenStates![0], withPositions), 0);
  assert.deepEqual(out.logits.shape, [2, 1, 3]);
  assert.equal(maxAbsDiff(model.run({ inputIds: ids, outputHiddenStates: true }).hiddenStates![0], wte), 0);
  const plain = new MLPForClassification(mlpConfig({}));
  assert.throws(() => plain.run({ inputIds: ids }), /include_emb/);
  assert.throws(() => plain.run({ inputsEmbeds: tv.zeros([1, 1, 5]) }), /inputsEmbeds must be \[B, T, 4\]/);
});

test("mlp: an HF-layout folder with pyvene's MLP config loads strictly; MLPModel has unprefixed sites", async () => {
  const folder = await mkdtemp(join(tmpdir(), "tsvene-mlp-"));
  try {
    const config = mlpConfig({ architectures: ["MLPModel"], include_bias: true, n_layer: 2 });
    const source = new MLPBaseModel(config);
    const generator = new tv.Generator(2);
    for (const [, p] of source.namedParameters()) p.data.set(tv.randn(p.shape, { generator }).data);
    assert.deepEqual(
      source.namedParameters().map(([n]) => n),
      ["h.0.ff1.weight", "h.0.ff1.bias", "h.1.ff1.weight", "h.1.ff1.bias"],
    );
    await tv.saveCheckpoint(folder, new Map(source.namedParameters()), { config });
    const { model } = await tv.loadPretrained(folder);
    assert.ok(model instanceof MLPBaseModel);
    assert.deepEqual(model.site("mlp_activation", 1), { module: "h.1.act", hook: "output", dim: 4 });
    const x = tv.randn([3, 1, 4], { generator });
    const out = model.run({ inputsEmbeds: x });
    assert.deepEqual(out.logits.shape, [3, 1, 4], "the bare model's output is its last hidden state");
    assert.equal(maxAbsDiff(out.logits, source.run({ inputsEmbeds: x }).logits), 0);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
  assert.throws(() => tv.modelFromConfig(mlpConfig({ architectures: ["GPT2LMHeadModel"] })), /no MLP class/);
});
