/**
 * The logit lens and direct logit attribution against the model's own numbers: the lens's last
 * row is the model's output distribution and an earlier row is LayerNorm + head by hand; the
 * attribution's terms sum exactly to the model's logit (difference), and heads to their layer.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import type { AnyModule, Embedding, LayerNorm } from "../src/nn/index.js";
import { fixtureFolder } from "./support/fixtures.js";

const PROMPT = [83, 54, 22, 99, 51, 27];

function hookCount(model: AnyModule): number {
  let n = 0;
  for (const [, m] of model.namedModules()) n += m.hookCount;
  return n;
}

function assertClose(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected}`);
}

/** Σ terms = the model's logit (difference), and per layer Σ heads + bias = the attention term. */
function assertExactSum(
  model: tv.PretrainedModel,
  result: tv.LogitAttributionResult,
  inputIds = tv.intTensor([PROMPT]),
): void {
  const all = model.run({ inputIds }).logits;
  const vocab = all.shape[2];
  const logits = all.data.subarray(result.position * vocab, (result.position + 1) * vocab);
  const expected = logits[result.target] - (result.contrast === null ? 0 : logits[result.contrast]);
  const sum = [result.embeddings, ...result.attention, ...result.mlp, result.bias].reduce((a, b) => a + b, 0);
  assertClose(sum, expected, 1e-4, "embeddings + attention + mlp + bias");
  assertClose(result.total, expected, 1e-5, "total");
  assert.ok(result.heads !== null, "heads are split");
  const { count, values, bias } = result.heads;
  result.attention.forEach((attention, l) => {
    const heads = values.subarray(l * count, (l + 1) * count).reduce((a, b) => a + b, bias[l]);
    assertClose(heads, attention, 1e-5, `layer ${l}: heads + bias`);
  });
}

/** The model with random norm weights and biases (they load as ones and zeros), so that a misplaced one shows. */
function shifted(model: tv.PretrainedModel, seed: number): tv.PretrainedModel {
  const generator = new tv.Generator(seed);
  for (const [name, p] of model.namedParameters()) {
    if (!/(ln_f|norm)\.weight$|\.bias$/.test(name)) continue;
    const noise = tv.randn(p.shape, { std: 0.3, generator }).data;
    p.data.set(name.endsWith(".weight") ? noise.map((x) => 1 + x) : noise);
  }
  return model;
}

/** A small Llama-family model of `modelType` with random weights. */
function randomModel(modelType: string): tv.PretrainedModel {
  const model = tv.modelFromConfig({
    model_type: modelType,
    hidden_size: 16,
    intermediate_size: 32,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 8,
    num_hidden_layers: 2,
    vocab_size: 50,
    max_position_embeddings: 32,
  });
  const generator = new tv.Generator(3);
  for (const p of model.parameters()) p.data.set(tv.randn(p.shape, { std: 0.3, generator }).data);
  return model;
}

describe("logit lens and direct logit attribution", () => {
  let gpt2: tv.PretrainedModel;
  let llama: tv.PretrainedModel;
  /** Copies whose final norms (and GPT-2's biases) are not the identity they are initialised to. */
  let gpt2Shifted: tv.PretrainedModel;
  let llamaShifted: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    llama = (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model;
    gpt2Shifted = shifted((await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model, 1);
    llamaShifted = shifted((await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model, 2);
  });

  it("the lens's last row is the model's softmax, with its top tokens in order", () => {
    for (const model of [gpt2, llama]) {
      const lens = tv.logitLens(model, { inputIds: tv.intTensor([PROMPT]), topK: 3 });
      const { logits } = model.run({ inputIds: tv.intTensor([PROMPT]) });
      const vocab = logits.shape[2];
      const probs = tv.softmax(logits, -1).data;
      const { rows, cols, values, layers } = lens.targetProbability;
      assert.deepEqual(layers, [-1, ...Array.from({ length: model.numLayers }, (_, l) => l)]);
      const lastRow = probs.subarray((cols - 1) * vocab);
      const top = lastRow.indexOf(Math.max(...lastRow));
      assert.equal(lens.target, top, "the default target is the model's prediction");
      for (let p = 0; p < cols; p++) {
        const row = probs.subarray(p * vocab, (p + 1) * vocab);
        const cell = (rows - 1) * cols + p;
        assertClose(values[cell], row[lens.target], 1e-6, `${model.family} position ${p}`);
        const expected = Array.from(row.keys())
          .sort((a, b) => row[b] - row[a])
          .slice(0, 3);
        assert.deepEqual(Array.from(lens.top.ids.subarray(cell * 3, cell * 3 + 3)), expected);
        expected.forEach((id, i) => assertClose(lens.top.probabilities[cell * 3 + i], row[id], 1e-6, "top"));
      }
      assert.equal(hookCount(model), 0);
    }
  });

  it("an earlier row of the lens is ln_f and the tied head applied by hand", () => {
    const target = 7;
    const model = gpt2Shifted;
    const lens = tv.logitLens(model, { inputIds: tv.intTensor([PROMPT]), target, tokens: PROMPT.map(String) });
    const { hiddenStates } = model.run({ inputIds: tv.intTensor([PROMPT]), outputHiddenStates: true });
    const lnF = model.getModule("transformer.ln_f") as LayerNorm;
    const wte = model.getModule("transformer.wte") as Embedding;
    // hiddenStates[0] is the embeddings (row −1), hiddenStates[l + 1] block l's output (row l).
    for (const layer of [-1, 1]) {
      const normed = tv.layerNorm(hiddenStates![layer + 1], lnF.weight, lnF.bias, lnF.eps);
      const probs = tv.softmax(tv.linear(normed, wte.weight), -1).data;
      for (let p = 0; p < PROMPT.length; p++) {
        const cell = (layer + 1) * PROMPT.length + p;
        assertClose(lens.targetProbability.values[cell], probs[p * 100 + target], 1e-6, `layer ${layer} p ${p}`);
      }
    }
  });

  it("GPT-2: the terms sum exactly to the logit difference, and heads to their layer", () => {
    const result = tv.directLogitAttribution(gpt2, { inputIds: tv.intTensor([PROMPT]), target: 7, contrast: 12 });
    assert.equal(result.position, PROMPT.length - 1);
    assert.equal(result.attention.length, 4);
    assert.equal(result.heads?.count, 4);
    assertExactSum(gpt2, result);
    const earlier = tv.directLogitAttribution(gpt2, { inputIds: tv.intTensor([PROMPT]), target: 3, position: 2 });
    assertExactSum(gpt2, earlier);
    assert.equal(hookCount(gpt2), 0);
  });

  it("Llama (RMSNorm, GQA, untied head): the terms sum exactly to the logit and the logit difference", () => {
    for (const contrast of [undefined, 40]) {
      const result = tv.directLogitAttribution(llama, { inputIds: tv.intTensor([PROMPT]), target: 5, contrast });
      assert.equal(result.heads?.count, 4);
      assert.equal(result.bias, 0, "no norm or head bias");
      assertExactSum(llama, result);
    }
    const noHeads = tv.directLogitAttribution(llama, { inputIds: tv.intTensor([PROMPT]), target: 5, heads: false });
    assert.equal(noHeads.heads, null);
    assert.equal(hookCount(llama), 0);
  });

  it("with random final-norm weights and biases the sums stay exact, and the biases have their own terms", () => {
    const inputIds = tv.intTensor([PROMPT]);
    const gpt2Result = tv.directLogitAttribution(gpt2Shifted, { inputIds, target: 7, contrast: 12 });
    assert.ok(gpt2Result.bias !== 0, "ln_f's bias gives a constant term");
    assert.ok(
      gpt2Result.heads!.bias.every((b) => b !== 0),
      "each c_proj bias gives a term",
    );
    assertExactSum(gpt2Shifted, gpt2Result);
    assertExactSum(llamaShifted, tv.directLogitAttribution(llamaShifted, { inputIds, target: 5, contrast: 40 }));
  });

  it("Gemma's offset RMSNorm attributes exactly; OLMo2's normalised block outputs are refused", () => {
    const inputIds = tv.intTensor([[3, 14, 15, 9, 26]]);
    const gemma = randomModel("gemma");
    assertExactSum(gemma, tv.directLogitAttribution(gemma, { inputIds, target: 5, contrast: 8 }), inputIds);
    const olmo2 = randomModel("olmo2");
    assert.throws(
      () => tv.directLogitAttribution(olmo2, { inputIds, target: 5 }),
      /llama's last residual stream is not the embeddings plus the attention and MLP outputs/,
    );
    assert.equal(hookCount(olmo2), 0);
  });

  it("bad options name the field", () => {
    const inputIds = tv.intTensor([PROMPT]);
    assert.throws(() => tv.logitLens(gpt2, { inputIds, topk: 3 } as never), /did you mean "topK"/);
    assert.throws(() => tv.logitLens(gpt2, { inputIds, topK: 0 }), /topK must be an integer in 1\.\.100/);
    assert.throws(() => tv.logitLens(gpt2, { inputIds, target: 100 }), /target must be a token id in 0\.\.99/);
    assert.throws(() => tv.logitLens(gpt2, { inputIds, tokens: ["a"] }), /tokens must be 6 strings/);
    assert.throws(() => tv.directLogitAttribution(gpt2, { inputIds } as never), /target is required/);
    assert.throws(() => tv.directLogitAttribution(gpt2, { inputIds, target: 3, contrast: 3 }), /contrast must differ/);
    assert.throws(
      () => tv.directLogitAttribution(gpt2, { inputIds, target: 3, contrast: 1.5 }),
      /contrast must be a token id in 0\.\.99, got 1\.5/,
    );
    assert.throws(() => tv.directLogitAttribution(gpt2, { inputIds, target: 3, position: 6 }), /position must be/);
    assert.throws(
      () => tv.directLogitAttribution(gpt2, { inputIds: tv.intTensor([PROMPT, PROMPT]), target: 3 }),
      /inputIds must be one prompt/,
    );
    assert.equal(hookCount(gpt2), 0);
  });
});
