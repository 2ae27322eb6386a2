/**
 * The decoder contract, the same for every transformer family: resuming at a block gives the full
 * run's logits, last-position logits are the full logits' last row, runBlocks stops after a block
 * with hooks firing only up to it, and the inputs a run cannot honour are errors. The GRU and the
 * MLP are not decoders: they refuse the decoder-only inputs, naming them.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tv from "../src/index.js";
import { maxAbsDiff } from "./support/fixtures.js";

/**
 * One small config per decoder family (Gemma2 for the Llama family: embedding scale, soft-capped
 * logits, sliding windows).
 */
const CONFIGS: Record<string, Record<string, unknown>> = {
  gpt2: { model_type: "gpt2", n_embd: 16, n_head: 2, n_layer: 3, n_positions: 16, vocab_size: 20 },
  gpt_neo: {
    model_type: "gpt_neo",
    hidden_size: 16,
    num_heads: 2,
    num_layers: 3,
    attention_layers: ["global", "local", "global"],
    window_size: 2,
    max_position_embeddings: 16,
    vocab_size: 20,
  },
  gpt_neox: {
    model_type: "gpt_neox",
    hidden_size: 16,
    num_attention_heads: 2,
    num_hidden_layers: 3,
    intermediate_size: 32,
    rotary_pct: 0.5,
    vocab_size: 20,
  },
  gemma2: {
    model_type: "gemma2",
    hidden_size: 16,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 8,
    num_hidden_layers: 3,
    intermediate_size: 32,
    sliding_window: 2,
    vocab_size: 20,
  },
};

/** Each family's final norm and head, by HF's module paths. */
const TAIL: Record<string, string[]> = {
  gpt2: ["transformer.ln_f", "lm_head"],
  gpt_neo: ["transformer.ln_f", "lm_head"],
  gpt_neox: ["gpt_neox.final_layer_norm", "embed_out"],
  gemma2: ["model.norm", "lm_head"],
};

function decoder(name: string, seed: number): tv.DecoderModel {
  const model = tv.modelFromConfig(CONFIGS[name]);
  assert.ok(model instanceof tv.DecoderModel);
  tv.nn.initNormal(model, 0.3, new tv.Generator(seed));
  return model;
}

const IDS = tv.intTensor([
  [3, 1, 4, 1, 5],
  [9, 2, 6, 5, 3],
]);

/** The block_output of every layer of one run, through hooks. */
function blockOutputs(model: tv.DecoderModel, run: () => unknown): Map<number, tv.Tensor> {
  const seen = new Map<number, tv.Tensor>();
  const handles = Array.from({ length: model.numLayers }, (_, l) =>
    model.getModule(model.site("block_output", l).module).addPostHook((_m, _x, y) => void seen.set(l, y)),
  );
  try {
    run();
  } finally {
    handles.forEach((h) => h.remove());
  }
  return seen;
}

for (const [name, seed] of [
  ["gpt2", 1],
  ["gpt_neo", 2],
  ["gpt_neox", 3],
  ["gemma2", 4],
] as const) {
  describe(`decoder contract: ${name}`, () => {
    const model = decoder(name, seed);
    const full = tv.noGrad(() => model.run({ inputIds: IDS, outputHiddenStates: true }));

    it("resumes at every block from that block's input and gives the full run's logits", () => {
      assert.ok(model instanceof tv.DecoderModel);
      for (let layer = 0; layer < model.numLayers; layer++) {
        const hidden = full.hiddenStates![layer];
        const resumed = tv.noGrad(() =>
          model.run({ inputIds: IDS, resumeFrom: { layer, hidden }, outputHiddenStates: true }),
        );
        assert.ok(maxAbsDiff(resumed.logits, full.logits) < 1e-5, `layer ${layer}`);
        assert.equal(
          resumed.hiddenStates!.length,
          model.numLayers - layer + 1,
          "hidden states start at the resumed block's input",
        );
      }
    });

    it("resumes later positions on a frozen prefix of a one-row cache: the full rows, the cache unchanged", () => {
      const tokens = [9, 2, 6, 5, 3];
      const row = tv.intTensor([tokens]);
      const cache = model.newCache();
      const one = tv.noGrad(() => model.run({ inputIds: row, cache, outputHiddenStates: true }));
      const length = row.shape[1];
      for (const start of [1, 3, length - 1]) {
        const prefix = cache.prefix(start);
        for (const layer of [0, model.numLayers - 1]) {
          // Three rows resumed on the one-row prefix, as the sweeps batch them.
          const inputIds = tv.intTensor([0, 1, 2].map(() => tokens.slice(start)));
          const hidden = tv.expand(tv.slice(one.hiddenStates![layer], 1, start), [3, length - start, 16]);
          const logits = tv.noGrad(() => model.run({ inputIds, resumeFrom: { layer, hidden }, cache: prefix }).logits);
          const expected = tv.slice(one.logits, 1, start);
          for (let r = 0; r < 3; r++)
            assert.ok(maxAbsDiff(tv.slice(logits, 0, r, r + 1), expected) < 1e-5, `start ${start}, layer ${layer}`);
          assert.equal(prefix.length, start, "a frozen cache keeps no new positions");
        }
      }
      assert.equal(cache.length, length);
      assert.throws(
        () => model.run({ inputIds: row, resumeFrom: { layer: 1, hidden: one.hiddenStates![1] }, cache }),
        /resumeFrom and a cache cannot be combined .*frozen one, cache\.prefix\(n\)/,
      );
      assert.throws(() => cache.prefix(length + 1), /length must be in 1\.\.5, got 6/);
    });

    it("tokenLogits are unembed's columns for those tokens; a hooked head is run, hook and all", () => {
      const stream = full.hiddenStates![1];
      const all = tv.noGrad(() => model.unembed(stream));
      const tokens = [7, 0, 19, 7];
      const some = tv.noGrad(() => model.tokenLogits(stream, tokens));
      assert.deepEqual(some.shape, [2, 5, 4]);
      assert.ok(maxAbsDiff(some, tv.indexSelect(all, -1, tokens)) < 1e-5);
      const head = model.getModule(TAIL[name][1]);
      const handle = head.addPostHook((_m, _x, y) => tv.mul(y, 2));
      try {
        const doubled = tv.noGrad(() => model.tokenLogits(stream, tokens));
        const expected = tv.indexSelect(
          tv.noGrad(() => model.unembed(stream)),
          -1,
          tokens,
        );
        assert.ok(maxAbsDiff(doubled, expected) < 1e-5);
        assert.ok(maxAbsDiff(doubled, some) > 1e-3, "the hook changed the logits");
      } finally {
        handle.remove();
      }
      assert.throws(() => model.tokenLogits(stream, [20]), /token 20 is outside 0\.\.19 \(the vocabulary\)/);
    });

    it("lastPositionLogits are the last row of the full logits, [B, 1, V]", () => {
      const last = tv.noGrad(() => model.run({ inputIds: IDS, lastPositionLogits: true }).logits);
      assert.deepEqual(last.shape, [2, 1, 20]);
      assert.ok(maxAbsDiff(last, tv.slice(full.logits, 1, -1)) < 1e-6);
    });

    it("runBlocks returns a block's output, runs no later block, norm or head, and resumes", () => {
      const outputs = blockOutputs(model, () => tv.noGrad(() => model.run({ inputIds: IDS })));
      for (let last = 0; last < model.numLayers; last++) {
        let ran = 0;
        const handles = [
          ...Array.from({ length: model.numLayers }, (_, l) =>
            model.getModule(model.site("block_input", l).module).addPreHook(() => void (ran = Math.max(ran, l))),
          ),
          model.getModule(model.site("block_output", last).module).addPostHook(() => void (ran += 100)),
          ...TAIL[name].map((path) => model.getModule(path).addPreHook(() => assert.fail(`${path} ran`))),
        ];
        const stream = tv.noGrad(() => model.runBlocks({ inputIds: IDS }, last));
        handles.forEach((h) => h.remove());
        assert.equal(ran, last + 100, `blocks 0..${last} ran and no later one`);
        assert.equal(maxAbsDiff(stream, outputs.get(last)!), 0);
        const from = Math.max(0, last - 1);
        const resumed = tv.noGrad(() =>
          model.runBlocks({ inputIds: IDS, resumeFrom: { layer: from, hidden: full.hiddenStates![from] } }, last),
        );
        assert.ok(maxAbsDiff(resumed, stream) < 1e-5);
      }
      const norm = model.settings.numLayers - 1;
      assert.ok(
        maxAbsDiff(outputs.get(norm)!, full.hiddenStates![norm + 1]) > 1e-3,
        "the last hidden state is normalised, the block output not",
      );
    });

    it("refuses what it cannot honour, naming the input", () => {
      const hidden = full.hiddenStates![1];
      assert.throws(
        () => model.runBlocks({ inputIds: IDS, outputHiddenStates: true }, 0),
        /outputHiddenStates is not supported by .*runBlocks/,
      );
      assert.throws(
        () => model.runBlocks({ inputIds: IDS, lastPositionLogits: true }, 0),
        /lastPositionLogits is not supported/,
      );
      assert.throws(() => model.runBlocks({ inputIds: IDS, cache: model.newCache() }, 0), /cache is not supported/);
      assert.throws(
        () => model.runBlocks({ inputIds: IDS, resumeFrom: { layer: 1, hidden } }, 0),
        /lastLayer 0 is out of range \(expected 1\.\.2/,
      );
      assert.throws(() => model.runBlocks({ inputIds: IDS }, 3), /lastLayer 3 is out of range/);
      assert.throws(
        () => model.run({ inputIds: IDS, resumeFrom: { layer: 1, hidden }, cache: model.newCache() }),
        /resumeFrom and a cache cannot be combined/,
      );
      assert.throws(
        () => model.run({ inputIds: IDS, resumeFrom: { layer: 3, hidden } }),
        /resumeFrom.layer 3 is out of range/,
      );
      assert.throws(
        () => model.run({ inputIds: IDS, resumeFrom: { layer: 1, hidden: tv.slice(hidden, 1, 1) } }),
        /resumeFrom.hidden must be \[2, 5, 16\]/,
      );
      assert.throws(
        () => model.run({ inputIds: IDS, cache: new tv.nn.KeyValueCache(2) }),
        /cache must be a KeyValueCache of 3 layers/,
      );
      assert.throws(
        () => model.run({ inputIds: tv.intTensor([[20]]) }),
        /inputIds contains 20, outside 0\.\.19 \(vocab_size = 20\)/,
      );
      assert.throws(
        () => model.run({ inputIds: IDS, positionIds: tv.intTensor([[0, 1]]) }),
        /positionIds must be \[2, 5\]/,
      );
      assert.throws(() => model.run({ inputsEmbeds: tv.zeros([1, 2, 8]) }), /inputsEmbeds must be \[B, T, 16\]/);
      assert.throws(
        () => model.run({ inputIds: IDS, attentionMask: tv.intTensor([[1, 1, 1, 1, 1]]) }),
        /attentionMask must be \[2, 5\]/,
      );
    });
  });
}

describe("non-decoders refuse the decoder inputs", () => {
  const gru = tv.modelFromConfig({
    model_type: "gru",
    architectures: ["GRULMHeadModel"],
    h_dim: 4,
    n_layer: 2,
    include_emb: true,
    vocab_size: 10,
  });
  const mlp = tv.modelFromConfig({ model_type: "mlp", architectures: ["MLPForClassification"], h_dim: 4, n_layer: 2 });
  const ids = tv.intTensor([[1, 2, 3]]);
  const embeds = tv.zeros([1, 3, 4]);

  it("GRU and MLP: resumeFrom, lastPositionLogits and cache are errors; they cannot resume", () => {
    for (const [model, inputs] of [
      [gru, { inputIds: ids }],
      [mlp, { inputsEmbeds: embeds }],
    ] as const) {
      assert.ok(!(model instanceof tv.DecoderModel));
      assert.equal(model.newCache(), null);
      const family = model.family;
      assert.throws(
        () => model.run({ ...inputs, resumeFrom: { layer: 1, hidden: embeds } }),
        new RegExp(`resumeFrom is not supported by ${family}`),
      );
      assert.throws(
        () => model.run({ ...inputs, lastPositionLogits: true }),
        new RegExp(`lastPositionLogits is not supported by ${family}`),
      );
      assert.throws(
        () => model.run({ ...inputs, cache: new tv.nn.KeyValueCache(2) }),
        new RegExp(`cache is not supported by ${family}`),
      );
      model.run({ ...inputs, lastPositionLogits: false, cache: null });
    }
  });

  it("GRU: a left-padded mask is an error, a right-padded one is the unpadded run at the real steps", () => {
    tv.nn.initNormal(gru, 0.5, new tv.Generator(5));
    assert.throws(
      () => gru.run({ inputIds: ids, attentionMask: tv.intTensor([[0, 1, 1]]) }),
      /row 0 has a real step after padding/,
    );
    const padded = gru.run({ inputIds: tv.intTensor([[1, 2, 0]]), attentionMask: tv.intTensor([[1, 1, 0]]) }).logits;
    const alone = gru.run({ inputIds: tv.intTensor([[1, 2]]) }).logits;
    assert.equal(maxAbsDiff(tv.slice(padded, 1, 0, 2), alone), 0);
  });

  it("MLP: the mask must fit the inputs", () => {
    assert.throws(
      () => mlp.run({ inputsEmbeds: embeds, attentionMask: tv.intTensor([[1, 1]]) }),
      /mlp: attentionMask must be \[1, 3\]/,
    );
  });

  it("generate runs the GRU LM on its full logits and refuses models without token logits", () => {
    const { sequences, scores } = tv.generate(gru, ids, { maxNewTokens: 2 });
    assert.deepEqual(sequences.shape, [1, 5]);
    // generate passes positions, as HF's does; the GRU adds position embeddings when given them.
    const logits = gru.run({ inputIds: ids, positionIds: tv.intTensor([[0, 1, 2]]) }).logits;
    assert.equal(maxAbsDiff(scores[0], tv.squeeze(tv.slice(logits, 1, -1), 1)), 0);
    const classifier = tv.modelFromConfig({
      model_type: "gru",
      architectures: ["GRUForClassification"],
      h_dim: 4,
      n_layer: 1,
      include_emb: true,
      vocab_size: 10,
    });
    assert.throws(
      () => tv.generate(classifier, ids, { maxNewTokens: 1 }),
      /generate: the gru model gives logits \[1, 2\]/,
    );
  });
});
