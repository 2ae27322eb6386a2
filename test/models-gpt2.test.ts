/**
 * GPT-2 against HF's outputs on the gpt2_tiny fixture (logits, hidden states, greedy generation),
 * the real openai-community/gpt2 checkpoint layout, the KV cache, left padding, the pyvene site
 * map, and the attention variants checked against a naive per-element computation.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { GPT2LMHeadModel, gpt2Family } from "../src/models/gpt2.js";
import { fixtureFolder, maxAbsDiff, modelInputs, readCases, readFixtureTensors } from "./support/fixtures.js";
import {
  checkGreedyGeneration,
  checkLeftPaddedLogits,
  checkReferences,
  checkSiteTable,
  floatTensor,
  gptLayoutRows,
  type SiteTable,
} from "./support/model-checks.js";

const FIXTURE = "gpt2_tiny";
const TOLERANCE = 1e-4;

const scratch = await mkdtemp(join(tmpdir(), "tsvene-gpt2-"));
after(() => rm(scratch, { recursive: true, force: true }));

const loaded = await tv.loadPretrained(fixtureFolder(FIXTURE));
const model = loaded.model as GPT2LMHeadModel;
const config = loaded.config;
const cases = await readCases(FIXTURE);
const tensors = await readFixtureTensors(FIXTURE);
const weights = (await tv.loadCheckpoint(fixtureFolder(FIXTURE))).tensors;

const float = (key: string): tv.Tensor => floatTensor(tensors, key);

/** The fixture model rebuilt with some config fields changed. */
function variant(changes: Record<string, unknown>): GPT2LMHeadModel {
  const m = gpt2Family.create({ ...config, ...changes }) as GPT2LMHeadModel;
  m.loadStateDict(weights);
  return m;
}

describe("GPT-2 against the gpt2_tiny fixture", () => {
  it("loadPretrained picks GPT-2, ties lm_head to wte, and loads every weight", () => {
    assert.ok(model instanceof GPT2LMHeadModel);
    assert.equal(model.family, "gpt2");
    assert.equal(model.lm_head.weight, model.transformer.wte.weight);
    const names = model.namedParameters().map(([name]) => name);
    assert.ok(!names.includes("lm_head.weight"), "the tied weight is listed once, as transformer.wte.weight");
    assert.deepEqual(names.slice(0, 4), [
      "transformer.wte.weight",
      "transformer.wpe.weight",
      "transformer.h.0.ln_1.weight",
      "transformer.h.0.ln_1.bias",
    ]);
    assert.deepEqual(model.transformer.h.at(0).attn.c_attn.weight.shape, [32, 96], "Conv1D weights are [in, out]");
    assert.deepEqual([...names].sort(), [...weights.keys()].sort());
  });

  it("reproduces HF's logits and every hidden state for each reference input", (t) => {
    checkReferences(t, model, cases, tensors, TOLERANCE);
  });

  it("reproduces HF's greedy generation (sequences exactly, scores), with and without the KV cache", (t) => {
    checkGreedyGeneration(t, model, config.eos_token_id as number, cases, tensors, TOLERANCE);
  });
});

describe("GPT-2 checkpoints", () => {
  const reference = float(cases.references.base.logits);
  const baseInputs = modelInputs(cases, tensors, "base");

  it(`loads the openai-community/gpt2 layout: no transformer. prefix, \
with attn.bias / attn.masked_bias buffers`, async () => {
    const positions = config.n_positions as number;
    const causal = new Float32Array(positions * positions);
    for (let i = 0; i < positions; i++) for (let j = 0; j <= i; j++) causal[i * positions + j] = 1;
    const real = new Map<string, tv.Tensor | tv.IntTensor>();
    for (const [name, t] of weights) real.set(name.replace(/^transformer\./, ""), t);
    for (let layer = 0; layer < model.numLayers; layer++) {
      real.set(`h.${layer}.attn.bias`, new tv.Tensor(causal, [1, 1, positions, positions]));
      real.set(`h.${layer}.attn.masked_bias`, tv.tensor(-1e4));
    }
    assert.ok(real.has("wte.weight") && real.has("h.0.attn.c_attn.weight") && !real.has("lm_head.weight"));
    const folder = join(scratch, "openai-layout");
    await tv.saveCheckpoint(folder, real, { config: { ...config, architectures: ["GPT2LMHeadModel"] } });
    const { model: m } = await tv.loadPretrained(folder);
    assert.equal(m.family, "gpt2");
    const d = maxAbsDiff(
      tv.noGrad(() => m.run(baseInputs).logits),
      reference,
    );
    assert.ok(d < TOLERANCE, `logits differ by ${d}`);
  });

  it("loads a GPT2Model checkpoint (no prefix, no lm_head) and one that also stores the tied lm_head", async () => {
    const bare = new Map([...weights].map(([name, t]) => [name.replace(/^transformer\./, ""), t]));
    const bareFolder = join(scratch, "gpt2model");
    await tv.saveCheckpoint(bareFolder, bare, { config: { ...config, architectures: ["GPT2Model"] } });
    const withHead = new Map(weights);
    withHead.set("lm_head.weight", weights.get("transformer.wte.weight")!);
    const headFolder = join(scratch, "with-lm-head");
    await tv.saveCheckpoint(headFolder, withHead, { config });
    for (const folder of [bareFolder, headFolder]) {
      const { model: m } = await tv.loadPretrained(folder);
      assert.ok(
        maxAbsDiff(
          tv.noGrad(() => m.run(baseInputs).logits),
          reference,
        ) < TOLERANCE,
        folder,
      );
    }
  });

  it("rejects a checkpoint with a missing weight, naming it", () => {
    const broken = new Map(weights);
    broken.delete("transformer.h.1.mlp.c_fc.bias");
    const m = gpt2Family.create(config);
    assert.throws(
      () => m.loadStateDict(gpt2Family.adaptCheckpoint!(broken, m)),
      /missing: transformer\.h\.1\.mlp\.c_fc\.bias/,
    );
  });
});

describe("GPT-2 cache, padding and positions", () => {
  const ids = cases.inputs.src_long.input_ids!;

  it("a KV-cache step gives the uncached forward's last position", () => {
    tv.noGrad(() => {
      const full = model.run({ inputIds: tv.intTensor(ids) }).logits;
      const cache = model.newCache();
      const prompt = tv.intTensor(ids.map((row) => row.slice(0, -2)));
      model.run({ inputIds: prompt, cache });
      const step1 = model.run({ inputIds: tv.intTensor(ids.map((row) => row.slice(-2, -1))), cache }).logits;
      const step2 = model.run({ inputIds: tv.intTensor(ids.map((row) => row.slice(-1))), cache }).logits;
      assert.equal(cache.length, ids[0].length);
      assert.ok(maxAbsDiff(step1, tv.slice(full, 1, -2, -1)) < 1e-5);
      assert.ok(maxAbsDiff(step2, tv.slice(full, 1, -1)) < 1e-5);
    });
  });

  it("a left-padded row gives the unpadded row's logits at its real positions (mask-based positions)", () => {
    const short = cases.inputs.base.input_ids![0];
    const long = ids[1];
    const { ids: batch, mask, pad } = checkLeftPaddedLogits(model, short, long, 0, 0);
    const generated = tv.generate(model, batch, { maxNewTokens: 4, attentionMask: mask, eosTokenId: 999 });
    const generatedAlone = tv.generate(model, tv.intTensor([short]), { maxNewTokens: 4, eosTokenId: 999 });
    assert.deepEqual([...generated.sequences.data.subarray(pad, long.length + 4)], [...generatedAlone.sequences.data]);
  });

  it("gives the fixture's logits from inputsEmbeds = wte(ids)", () => {
    const inputs = modelInputs(cases, tensors, "src0");
    const embeds = tv.embedding(model.transformer.wte.weight, inputs.inputIds!);
    const d = maxAbsDiff(
      tv.noGrad(() => model.run({ inputsEmbeds: embeds }).logits),
      float(cases.references.src0.logits),
    );
    assert.ok(d < TOLERANCE);
  });

  it("rejects positions past n_positions and ids past vocab_size, naming the config field", () => {
    const tooLong = tv.intTensor([Array.from({ length: 65 }, () => 1)]);
    assert.throws(
      () => model.run({ inputIds: tooLong }),
      /positionIds contains 64, outside 0\.\.63 \(n_positions = 64\)/,
    );
    assert.throws(
      () => model.run({ inputIds: tv.intTensor([[1, 100]]) }),
      /inputIds contains 100, outside 0\.\.99 \(vocab_size = 100\)/,
    );
    assert.throws(
      () => model.run({ inputIds: tv.intTensor([[1, 2]]), attentionMask: tv.intTensor([[1, 1, 1]]) }),
      /attentionMask must be \[1, 2\] \(the batch, and the cached and new positions\), got \[1, 3\]/,
    );
  });
});

/** Softmax rows of q·kᵀ·scale over the causal positions, element by element. [B, H, T, T] as nested arrays. */
function naiveAttention(qkv: tv.Tensor, heads: number, scale: number): number[][][][] {
  const [batch, length, width] = qkv.shape;
  const dim = width / 3;
  const d = dim / heads;
  const at = (b: number, t: number, part: number, h: number, i: number) =>
    qkv.data[(b * length + t) * width + part * dim + h * d + i];
  return Array.from({ length: batch }, (_, b) =>
    Array.from({ length: heads }, (_, h) =>
      Array.from({ length }, (_, q) => {
        const scores = Array.from({ length: q + 1 }, (_, k) => {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += at(b, q, 0, h, i) * at(b, k, 1, h, i);
          return dot * scale;
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const sum = exps.reduce((a, e) => a + e, 0);
        return Array.from({ length }, (_, k) => (k <= q ? exps[k] / sum : 0));
      }),
    ),
  );
}

/** The c_attn output and the attention probabilities (attn_dropout's input) of one layer. */
function captureAttention(
  m: GPT2LMHeadModel,
  layer: number,
  ids: number[][],
): { qkv: tv.Tensor; probs: tv.Tensor; logits: tv.Tensor } {
  const attn = m.transformer.h.at(layer).attn;
  let qkv: tv.Tensor | undefined;
  let probs: tv.Tensor | undefined;
  const hooks = [
    attn.c_attn.addPostHook((_m, _x, y) => void (qkv = y)),
    attn.attn_dropout.addPreHook((_m, x) => void (probs = x)),
  ];
  const logits = tv.noGrad(() => m.run({ inputIds: tv.intTensor(ids) }).logits);
  hooks.forEach((h) => h.remove());
  return { qkv: qkv!, probs: probs!, logits };
}

describe("GPT-2 attention variants against a naive computation", () => {
  const ids = cases.inputs.base.input_ids!;
  const headDim = 32 / 4;
  const variants: [string, Record<string, unknown>, (layer: number) => number][] = [
    ["default (1/√d)", {}, () => 1 / Math.sqrt(headDim)],
    ["scale_attn_weights false", { scale_attn_weights: false }, () => 1],
    [
      "scale_attn_by_inverse_layer_idx",
      { scale_attn_by_inverse_layer_idx: true },
      (layer) => 1 / Math.sqrt(headDim) / (layer + 1),
    ],
    [
      "reorder_and_upcast_attn + inverse layer",
      { reorder_and_upcast_attn: true, scale_attn_by_inverse_layer_idx: true },
      (layer) => 1 / Math.sqrt(headDim) / (layer + 1),
    ],
  ];
  for (const [label, changes, scale] of variants) {
    it(`${label}: attention_weight equals softmax(q·kᵀ·scale) over causal keys`, () => {
      const m = variant(changes);
      for (const layer of [0, 2]) {
        const { qkv, probs } = captureAttention(m, layer, ids);
        assert.deepEqual(probs.shape, [2, 4, 6, 6]);
        const expected = tv.tensor(naiveAttention(qkv, 4, scale(layer)));
        assert.ok(maxAbsDiff(probs, expected) < 1e-6, `${label} layer ${layer}: ${maxAbsDiff(probs, expected)}`);
      }
    });
  }

  it("reorder_and_upcast_attn gives the default path's numbers in float32", () => {
    const plain = captureAttention(variant({}), 1, ids).logits;
    const upcast = captureAttention(variant({ reorder_and_upcast_attn: true }), 1, ids).logits;
    assert.ok(maxAbsDiff(plain, upcast) < 1e-5);
  });

  it("n_inner and activation_function come from the config; null n_inner is 4·n_embd", () => {
    const m = gpt2Family.create({ ...config, n_inner: 48, activation_function: "relu" }) as GPT2LMHeadModel;
    assert.deepEqual(m.transformer.h.at(0).mlp.c_fc.weight.shape, [32, 48]);
    assert.equal(m.transformer.h.at(0).mlp.act.kind, "relu");
    assert.equal(m.site("mlp_activation", 0).dim, 48);
    assert.deepEqual(model.transformer.h.at(0).mlp.c_fc.weight.shape, [32, 128]);
  });

  it("rejects configs it cannot run, naming the field", () => {
    assert.throws(
      () => gpt2Family.create({ ...config, add_cross_attention: true }),
      /"add_cross_attention": true is not supported/,
    );
    assert.throws(
      () => gpt2Family.create({ ...config, n_head: 5 }),
      /"n_embd" \(32\) must be divisible by "n_head" \(5\)/,
    );
    assert.throws(() => gpt2Family.create({ ...config, activation_function: "swiglu" }), /unknown activation "swiglu"/);
    assert.throws(() => gpt2Family.create({ ...config, n_layer: "4" }), /"n_layer" must be a number/);
  });
});

describe("GPT-2 pyvene site map", () => {
  const expected: SiteTable = {
    ...gptLayoutRows(32, 128),
    attention_value_output: [".attn.c_proj", "input", 32],
    head_attention_value_output: [".attn.c_proj", "input", 8, { heads: 4 }],
    attention_weight: [".attn.attn_dropout", "input", 64],
    attention_output: [".attn.resid_dropout", "output", 32],
    attention_input: [".attn", "input", 32],
    query_output: [".attn.c_attn", "output", 32, { fusedPart: { index: 0, of: 3 } }],
    key_output: [".attn.c_attn", "output", 32, { fusedPart: { index: 1, of: 3 } }],
    value_output: [".attn.c_attn", "output", 32, { fusedPart: { index: 2, of: 3 } }],
    head_query_output: [".attn.c_attn", "output", 8, { fusedPart: { index: 0, of: 3 }, heads: 4 }],
    head_key_output: [".attn.c_attn", "output", 8, { fusedPart: { index: 1, of: 3 }, heads: 4 }],
    head_value_output: [".attn.c_attn", "output", 8, { fusedPart: { index: 2, of: 3 }, heads: 4 }],
  };

  it("has exactly spec §7.1's GPT-2 components, under transformer., with §7.2's dims", () => {
    checkSiteTable(model, "transformer.h.", 3, expected);
    assert.throws(() => model.site("attention_weight", 4), /layer 4 is out of range for gpt2 with 4 layers/);
  });

  it("hooks at every site see the value the component names", () => {
    const seen = new Map<string, tv.Tensor>();
    const handles = Object.keys(model.sites).map((component) => {
      const site = model.site(component, 1);
      const m = model.getModule(site.module);
      return site.hook === "input"
        ? m.addPreHook((_m: unknown, x: tv.Tensor) => void seen.set(component, x))
        : m.addPostHook((_m: unknown, _x: unknown, y: tv.Tensor) => void seen.set(component, y));
    });
    tv.noGrad(() => model.run({ inputIds: tv.intTensor(cases.inputs.base.input_ids!) }));
    handles.forEach((h) => h.remove());
    assert.deepEqual(seen.get("block_output")!.shape, [2, 6, 32]);
    assert.deepEqual(seen.get("mlp_activation")!.shape, [2, 6, 128]);
    assert.deepEqual(
      seen.get("query_output")!.shape,
      [2, 6, 96],
      "the fused q|k|v output; the site's fusedPart selects q",
    );
    assert.deepEqual(seen.get("attention_weight")!.shape, [2, 4, 6, 6]);
    const rowSums = tv.sum(seen.get("attention_weight")!, -1);
    assert.ok(rowSums.data.every((s) => Math.abs(s - 1) < 1e-6));
    // attention_output is the attention block's whole contribution: block input + it = the residual
    // stream before the MLP.
    const mlpInput = seen.get("mlp_input")!;
    const ln2 = model.transformer.h.at(1).ln_2;
    const residual = tv.add(seen.get("block_input")!, seen.get("attention_output")!);
    assert.ok(
      maxAbsDiff(
        tv.noGrad(() => ln2.call(residual)),
        mlpInput,
      ) < 1e-6,
    );
    assert.ok(maxAbsDiff(tv.add(residual, seen.get("mlp_output")!), seen.get("block_output")!) < 1e-6);
  });
});
