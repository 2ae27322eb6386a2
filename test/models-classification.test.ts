/**
 * Sequence classifiers (GPT-2, Llama, Qwen2, Gemma) loaded from HF-layout folders, checked against
 * an independent computation: the LM built from the same weights gives the final-normed hidden
 * states, and score.weightᵀ applied by hand at the hand-found last non-pad token gives the logits.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as tv from "../src/index.js";

const PAD = 0;
const LABELS = 3;

const GPT2 = {
  model_type: "gpt2",
  architectures: ["GPT2ForSequenceClassification"],
  vocab_size: 20,
  n_positions: 16,
  n_embd: 8,
  n_layer: 2,
  n_head: 2,
  pad_token_id: PAD,
  id2label: { 0: "a", 1: "b", 2: "c" },
};
const LLAMA = {
  model_type: "llama",
  architectures: ["LlamaForSequenceClassification"],
  vocab_size: 20,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 16,
  pad_token_id: PAD,
  num_labels: LABELS,
};

const folders: string[] = [];
after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

/** A folder with config.json and random weights for every parameter of the model `config` builds. */
async function checkpoint(config: Record<string, unknown>, seed: number): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), "tsvene-cls-"));
  folders.push(folder);
  const generator = new tv.Generator(seed);
  const weights = new Map(
    tv
      .modelFromConfig(config)
      .namedParameters()
      .map(([name, p]) => [name, tv.randn(p.shape, { std: 0.5, generator })] as const),
  );
  await tv.writeSafetensors(join(folder, "model.safetensors"), weights);
  await writeFile(join(folder, "config.json"), JSON.stringify(config));
  return folder;
}

/** The expected pooled logits: the LM's last hidden state (same weights) at `last[b]`, times score.weightᵀ. */
function expected(
  classifier: tv.PretrainedModel,
  lmConfig: Record<string, unknown>,
  inputs: { inputIds: tv.IntTensor; attentionMask?: tv.IntTensor },
  last: number[],
): number[][] {
  const lm = tv.modelFromConfig(lmConfig);
  const params = new Map(classifier.namedParameters());
  const score = params.get("score.weight")!;
  params.delete("score.weight");
  lm.loadStateDict(params, { ignore: ["lm_head.weight"] });
  const hidden = lm.run({ ...inputs, outputHiddenStates: true }).hiddenStates!.at(-1)!;
  const [, length, width] = hidden.shape;
  return last.map((t, b) => {
    const h = hidden.data.subarray((b * length + t) * width, (b * length + t + 1) * width);
    return Array.from({ length: LABELS }, (_, l) => {
      let dot = 0;
      for (let i = 0; i < width; i++) dot += h[i] * score.data[l * width + i];
      return dot;
    });
  });
}

function assertClose(actual: tv.Tensor, want: number[][]): void {
  assert.deepEqual(actual.shape, [want.length, LABELS]);
  want
    .flat()
    .forEach((w, i) => assert.ok(Math.abs(actual.data[i] - w) < 1e-5, `logit ${i}: ${actual.data[i]} vs ${w}`));
}

const RIGHT = {
  inputIds: tv.intTensor([
    [5, 6, 7, 8, 9],
    [3, 4, 2, PAD, PAD],
  ]),
  attentionMask: tv.intTensor([
    [1, 1, 1, 1, 1],
    [1, 1, 1, 0, 0],
  ]),
};
const LEFT = {
  inputIds: tv.intTensor([
    [PAD, PAD, 3, 4, 2],
    [5, 6, 7, 8, 9],
  ]),
  attentionMask: tv.intTensor([
    [0, 0, 1, 1, 1],
    [1, 1, 1, 1, 1],
  ]),
};

for (const [name, config, lmArchitecture] of [
  ["GPT-2", GPT2, "GPT2LMHeadModel"],
  ["Llama", LLAMA, "LlamaForCausalLM"],
] as const) {
  describe(`${name} sequence classifier`, () => {
    const lmConfig = { ...config, architectures: [lmArchitecture] };

    it("loads score.weight from a folder and pools at the last non-pad token (right and left padding)", async () => {
      const { model } = await tv.loadPretrained(await checkpoint(config, 1));
      assert.ok(model.namedParameters().some(([n, p]) => n === "score.weight" && p.shape.join() === `${LABELS},8`));
      assert.ok(!model.namedParameters().some(([n]) => n.startsWith("lm_head")));
      assertClose(model.run(RIGHT).logits, expected(model, lmConfig, RIGHT, [4, 2]));
      assertClose(model.run(LEFT).logits, expected(model, lmConfig, LEFT, [4, 4]));
      const hidden = model.run({ ...RIGHT, outputHiddenStates: true }).hiddenStates;
      assert.equal(hidden?.length, 3);
    });

    it("without pad_token_id: a batch of one pools the last position, a larger batch is refused", async () => {
      const { pad_token_id: _, ...noPad } = config;
      const { model } = await tv.loadPretrained(await checkpoint(noPad, 2));
      const one = { inputIds: tv.intTensor([[3, 4, 2, PAD]]) };
      assertClose(model.run(one).logits, expected(model, { ...noPad, architectures: [lmArchitecture] }, one, [3]));
      assert.throws(() => model.run(RIGHT), /batch size 2 needs config.json "pad_token_id"/);
    });

    it("refuses the cache and lastPositionLogits, and a score head of the wrong size naming the field", async () => {
      const folder = await checkpoint(config, 3);
      const { model } = await tv.loadPretrained(folder);
      assert.throws(() => model.run({ ...RIGHT, lastPositionLogits: true }), /lastPositionLogits is not supported/);
      assert.throws(() => model.run({ ...RIGHT, cache: model.newCache() }), /cache is not supported/);
      await writeFile(join(folder, "config.json"), JSON.stringify({ ...config, id2label: undefined, num_labels: 4 }));
      await assert.rejects(tv.loadPretrained(folder), /num_labels is 4 but the weights hold 3 \(score\.weight/);
    });

    it("has TransformerLens names: the cached resid_post of layer 0 is the block's output", async () => {
      const { model } = await tv.loadPretrained(await checkpoint(config, 5));
      const { cache } = tv.runWithCache(model, RIGHT, { names: ["blocks.0.hook_resid_post"] });
      const hidden = model.run({ ...RIGHT, outputHiddenStates: true }).hiddenStates!;
      assert.deepEqual([...cache.get("blocks.0.hook_resid_post").data], [...hidden[1].data]);
    });

    it("takes pyvene's sites: a Vanilla interchange at a block output changes the pooled logits", async () => {
      const { model } = await tv.loadPretrained(await checkpoint(config, 4));
      const im = new tv.IntervenableModel(
        { layer: 0, component: "block_output", interventionType: tv.VanillaIntervention },
        model,
      );
      const base = { inputIds: RIGHT.inputIds };
      const source = {
        inputIds: tv.intTensor([
          [9, 8, 7, 6, 5],
          [2, 3, 4, PAD, PAD],
        ]),
      };
      const { intervened } = im.forward(base, [source], {
        unitLocations: { "sources->base": [[[[2], [2]]], [[[2], [2]]]] },
      });
      const clean = model.run(base).logits;
      assert.deepEqual(intervened.logits.shape, [2, LABELS]);
      assert.notDeepEqual(Array.from(intervened.logits.data), Array.from(clean.data));
    });
  });
}

for (const [type, architecture] of [
  ["qwen2", "Qwen2ForSequenceClassification"],
  ["gemma", "GemmaForSequenceClassification"],
] as const) {
  it(`${architecture} loads and runs, pooling as the LM's hidden states say`, async () => {
    const config = { ...LLAMA, model_type: type, architectures: [architecture], head_dim: 4 };
    const { model } = await tv.loadPretrained(await checkpoint(config, 5));
    assert.ok(model instanceof tv.LlamaForSequenceClassification);
    const lmConfig = { ...config, architectures: [architecture.replace("SequenceClassification", "CausalLM")] };
    assertClose(model.run(LEFT).logits, expected(model, lmConfig, LEFT, [4, 4]));
  });
}
