/**
 * pyvene's helper functions (spec §8.4–8.5): setSeed, topVals, embedToDistrib. Truths: a fresh
 * Generator with the same seed, a distribution sorted by hand, and pyvene's formula for GPT-2
 * (embed · wteᵀ, then softmax) beside the model's own logits.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { fixtureFolder } from "./support/fixtures.js";

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++)
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
}

describe("setSeed", () => {
  const draws = () => {
    const normal = tv.randn([6]).data;
    const rotation = new tv.LowRankRotatedSpaceIntervention({ embedDim: 4, lowRankDimension: 2 });
    return [normal, tv.rand([3]).data, rotation.rotateLayer.weight().data];
  };

  it("makes the default draws (randn, rand, initial intervention weights) repeat, and other seeds differ", () => {
    tv.setSeed(7);
    const first = draws();
    tv.setSeed(7);
    assert.deepEqual(draws(), first);
    tv.setSeed(8);
    const other = draws();
    first.forEach((values, i) => assert.notDeepEqual(other[i], values));
  });

  it("seeds the generator a fresh Generator(seed) starts from, and rejects a non-integer seed", () => {
    tv.setSeed(11);
    assert.deepEqual(tv.randn([5]).data, tv.randn([5], { generator: new tv.Generator(11) }).data);
    assert.throws(() => tv.setSeed(1.5), /seed must be an integer/);
  });
});

describe("topVals", () => {
  const words = [" the", " Madrid", "\n", " Rome", "Paris"];
  const tokenizer = { decode: (ids: readonly number[]) => ids.map((i) => words[i]).join("") };

  it("lists the n largest values, largest first, ties by the lower id, tokens as pyvene's format_token", () => {
    const distribution = tv.tensor([0.1, 0.3, 0.05, 0.3, 0.25]);
    // Sorted by hand: 0.3 (id 1), 0.3 (id 3), 0.25 (id 4).
    assert.deepEqual(tv.topVals(tokenizer, distribution, 3), [
      { token: "_Madrid", id: 1, value: distribution.data[1] },
      { token: "_Rome", id: 3, value: distribution.data[3] },
      { token: "Paris", id: 4, value: distribution.data[4] },
    ]);
    const all = tv.topVals(tokenizer, tv.tensor([[[0.1, 0.2, 0.4, 0.2, 0.1]]]), 5);
    assert.deepEqual(
      all.map((v) => v.token),
      ["\\n", "_Madrid", "_Rome", "_the", "Paris"],
    );
  });

  it("rejects a batch of rows, n out of range and NaN values", () => {
    assert.throws(() => tv.topVals(tokenizer, tv.zeros([2, 5])), /one row of values over the vocabulary/);
    assert.throws(() => tv.topVals(tokenizer, tv.zeros([5])), /n must be an integer from 1 to the vocabulary size 5/);
    assert.throws(() => tv.topVals(tokenizer, tv.zeros([5]), 0), /n must be an integer/);
    assert.throws(() => tv.topVals(tokenizer, tv.tensor([0, Number.NaN, 1]), 2), /NaN/);
    assert.throws(() => tv.topVals({} as typeof tokenizer, tv.zeros([5]), 2), /tokenizer must have decode/);
  });
});

describe("embedToDistrib (tiny GPT-2)", () => {
  let model: tv.DecoderModel;
  let final: tv.Tensor;
  let logits: tv.Tensor;

  before(async () => {
    model = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model as tv.DecoderModel;
    const out = model.run({
      inputIds: tv.intTensor([
        [83, 54, 22, 99, 51, 27],
        [3, 74, 81, 8, 16, 20],
      ]),
      outputHiddenStates: true,
    });
    final = out.hiddenStates!.at(-1)!;
    logits = out.logits;
  });

  it("the final hidden state gives the model's own output distribution, and pyvene's embed · wteᵀ", () => {
    const wte = model.namedParameters().find(([name]) => name === "transformer.wte.weight")![1];
    const pyvene = tv.matmul(final, tv.transpose(wte));
    assertClose(tv.embedToDistrib(model, final, { logits: true }).data, pyvene.data, 1e-5);
    assertClose(tv.embedToDistrib(model, final, { logits: true }).data, logits.data, 1e-5);
    const probabilities = tv.embedToDistrib(model, final);
    assert.deepEqual(probabilities.shape, [2, 6, 100]);
    assertClose(probabilities.data, tv.softmax(logits, -1).data, 1e-6);
    assertClose(tv.embedToDistrib(model, final, { log: true }).data, tv.logSoftmax(logits, -1).data, 1e-5);
    const row = tv.embedToDistrib(model, tv.slice(tv.slice(final, 0, 0, 1), 1, 5));
    let sum = 0;
    for (const p of row.data) sum += p;
    assert.ok(Math.abs(sum - 1) < 1e-5);
  });

  it("rejects another kind of model, a tensor of the wrong width, and log with logits", () => {
    assert.throws(() => tv.embedToDistrib({}, final), /needs one of tsvene's decoder language models/);
    assert.throws(() => tv.embedToDistrib(model, tv.zeros([1, 2, 31])), /final hidden states \[\.\.\., 32\]/);
    assert.throws(() => tv.embedToDistrib(model, final, { log: true, logits: true }), /give log or logits, not both/);
    assert.throws(() => tv.embedToDistrib(model, final, { logit: true } as tv.EmbedToDistribOptions), /unknown option/);
  });
});
