import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tv from "../src/index.js";
import { GPTNeoXForCausalLM, gptNeoXFamily } from "../src/models/gpt-neox.js";
import { maxAbsDiff } from "./support/fixtures.js";
import { checkSiteHooks, fixtureTests, loadedAs, openFixture } from "./support/model-checks.js";

const FIXTURE = "gpt_neox_tiny";
const { loaded, data } = openFixture(FIXTURE);

test("gpt_neox_tiny: loadPretrained picks GPT-NeoX and loads every weight", async () => {
  const model = await loadedAs(loaded, GPTNeoXForCausalLM, "gpt_neox");
  assert.equal(model.settings.rotaryNdims, 2);
  assert.notEqual(model.embed_out.weight, model.gpt_neox.embed_in.weight);
});

fixtureTests(FIXTURE, { loaded, data });

test("gpt_neox: pyvene's site map, with modules that exist and hooks that fire", async () => {
  const { model } = await loaded;
  assert.deepEqual(model.site("block_output", 2), { module: "gpt_neox.layers.2", hook: "output", dim: 32 });
  assert.deepEqual(model.site("mlp_activation", 0), { module: "gpt_neox.layers.0.mlp.act", hook: "output", dim: 128 });
  assert.deepEqual(model.site("attention_value_output", 1), {
    module: "gpt_neox.layers.1.attention.dense",
    hook: "input",
    dim: 32,
  });
  assert.deepEqual(model.site("head_attention_value_output", 1), {
    module: "gpt_neox.layers.1.attention.dense",
    hook: "input",
    dim: 8,
    heads: 4,
  });
  assert.deepEqual(model.site("attention_output", 0), {
    module: "gpt_neox.layers.0.attention",
    hook: "output",
    dim: 32,
  });
  assert.throws(() => model.site("query_output", 0), /not available for gpt_neox/);
  checkSiteHooks(model);
});

/** A 1-layer NeoX with random weights, for the pieces the fixture does not cover. */
function tinyConfig(overrides: Record<string, unknown>): Record<string, unknown> {
  // Field names and defaults as in EleutherAI/pythia-70m's config.json, scaled down.
  return {
    architectures: ["GPTNeoXForCausalLM"],
    model_type: "gpt_neox",
    bos_token_id: 0,
    eos_token_id: 0,
    hidden_act: "gelu",
    hidden_size: 16,
    initializer_range: 0.02,
    intermediate_size: 64,
    layer_norm_eps: 1e-5,
    max_position_embeddings: 32,
    num_attention_heads: 2,
    num_hidden_layers: 1,
    rotary_emb_base: 10000,
    rotary_pct: 0.5,
    tie_word_embeddings: false,
    torch_dtype: "float32",
    use_cache: true,
    use_parallel_residual: true,
    vocab_size: 20,
    ...overrides,
  };
}

function randomise(model: GPTNeoXForCausalLM, seed: number): void {
  const generator = new tv.Generator(seed);
  for (const [, p] of model.namedParameters()) p.data.set(tv.randn(p.shape, { std: 0.3, generator }).data);
}

test("gpt_neox: the fused query_key_value is [q|k|v] per head, checked against a naive attention", () => {
  const model = new GPTNeoXForCausalLM(tinyConfig({ rotary_pct: 0.5 }));
  randomise(model, 3);
  const attention = model.gpt_neox.layers.at(0).attention;
  const [T, D, H, d, rot] = [4, 16, 2, 8, 4];
  const x = tv.randn([1, T, D], { generator: new tv.Generator(9) });
  let denseInput: tv.Tensor | null = null;
  const handle = attention.dense.addPreHook((_m, v) => {
    denseInput = v;
  });
  tv.noGrad(() => model.run({ inputsEmbeds: x }));
  handle.remove();
  // Independent computation from the layer's weights: the input of attention is ln1(x).
  const h = tv.layerNorm(
    x,
    model.gpt_neox.layers.at(0).input_layernorm.weight,
    model.gpt_neox.layers.at(0).input_layernorm.bias,
    1e-5,
  );
  const qkv = tv.linear(h, attention.query_key_value.weight, attention.query_key_value.bias).data;
  const at = (t: number, head: number, part: number, i: number) => qkv[t * 3 * D + head * 3 * d + part * d + i];
  const rotate = (t: number, head: number, part: number): number[] => {
    const v = Array.from({ length: d }, (_, i) => at(t, head, part, i));
    const out = [...v];
    for (let i = 0; i < rot / 2; i++) {
      const angle = t / 10000 ** ((2 * i) / rot);
      const [a, b] = [v[i], v[i + rot / 2]];
      out[i] = a * Math.cos(angle) - b * Math.sin(angle);
      out[i + rot / 2] = b * Math.cos(angle) + a * Math.sin(angle);
    }
    return out;
  };
  let worst = 0;
  for (let head = 0; head < H; head++) {
    for (let t = 0; t < T; t++) {
      const q = rotate(t, head, 0);
      const scores = Array.from(
        { length: t + 1 },
        (_, s) => rotate(s, head, 1).reduce((acc, k, i) => acc + k * q[i], 0) / Math.sqrt(d),
      );
      const top = Math.max(...scores);
      const weights = scores.map((s) => Math.exp(s - top));
      const total = weights.reduce((a, b) => a + b, 0);
      for (let i = 0; i < d; i++) {
        const expected = weights.reduce((acc, w, s) => acc + (w / total) * at(s, head, 2, i), 0);
        worst = Math.max(worst, Math.abs(expected - denseInput!.data[t * D + head * d + i]));
      }
    }
  }
  assert.ok(worst < 1e-5, `attention output differs from the naive computation by ${worst}`);
});

test("gpt_neox: the sequential residual is x + attn(ln1 x), then + mlp(ln2 ·)", () => {
  for (const parallel of [false, true]) {
    const model = new GPTNeoXForCausalLM(tinyConfig({ use_parallel_residual: parallel }));
    randomise(model, 5);
    const layer = model.gpt_neox.layers.at(0);
    const x = tv.randn([2, 3, 16], { generator: new tv.Generator(11) });
    const out = tv.noGrad(() => model.run({ inputsEmbeds: x, outputHiddenStates: true }));
    const norm = (n: tv.nn.LayerNorm, v: tv.Tensor) => tv.layerNorm(v, n.weight, n.bias, 1e-5);
    const mlp = (v: tv.Tensor) => {
      const m = layer.mlp;
      return tv.linear(
        tv.gelu(tv.linear(v, m.dense_h_to_4h.weight, m.dense_h_to_4h.bias)),
        m.dense_4h_to_h.weight,
        m.dense_4h_to_h.bias,
      );
    };
    let attn: tv.Tensor | null = null;
    const handle = layer.attention.addPostHook((_m, _x, y) => {
      attn = y;
    });
    tv.noGrad(() => model.run({ inputsEmbeds: x }));
    handle.remove();
    const expected = parallel
      ? tv.add(tv.add(x, attn!), mlp(norm(layer.post_attention_layernorm, x)))
      : tv.add(tv.add(x, attn!), mlp(norm(layer.post_attention_layernorm, tv.add(x, attn!))));
    const rotary = tv.nn.rotaryTablesFromFrequencies(
      tv.nn.positionIds(null, 2, 3),
      tv.nn.ropeInverseFrequencies(4, 10000),
    );
    const blockOutput = tv.noGrad(() =>
      layer.call(x, { mask: tv.nn.additiveMask(null, 2, 3, 3), rotary, cache: null }),
    );
    assert.ok(maxAbsDiff(blockOutput, expected) < 1e-5, `parallel ${parallel}`);
    assert.ok(maxAbsDiff(out.hiddenStates![1], norm(model.gpt_neox.final_layer_norm, expected)) < 1e-5);
  }
});

test("gpt_neox: an HF-layout folder with tied embeddings loads strictly and runs", async () => {
  const folder = await mkdtemp(join(tmpdir(), "tsvene-neox-"));
  try {
    const config = tinyConfig({ tie_word_embeddings: true, rotary_pct: 0.25 });
    const source = new GPTNeoXForCausalLM(config);
    randomise(source, 7);
    assert.equal(source.embed_out.weight, source.gpt_neox.embed_in.weight);
    const names = source.namedParameters().map(([n]) => n);
    assert.ok(!names.includes("embed_out.weight"), "tied output weight is saved once, as HF does");
    const weights = new Map<string, tv.Tensor>(source.namedParameters());
    // Pythia checkpoints also carry the attention buffers that HF rebuilds.
    weights.set("gpt_neox.layers.0.attention.bias", tv.ones([1, 1, 32, 32]));
    weights.set("gpt_neox.layers.0.attention.masked_bias", tv.tensor([-1e9]));
    weights.set("gpt_neox.layers.0.attention.rotary_emb.inv_freq", tv.ones([1]));
    await tv.saveCheckpoint(folder, weights, { config });
    const { model } = await tv.loadPretrained(folder);
    assert.ok(model instanceof GPTNeoXForCausalLM);
    const ids = tv.intTensor([[3, 1, 4, 1, 5]]);
    const expected = tv.noGrad(() => source.run({ inputIds: ids }).logits);
    assert.equal(
      maxAbsDiff(
        tv.noGrad(() => model.run({ inputIds: ids }).logits),
        expected,
      ),
      0,
    );
    assert.equal(gptNeoXFamily.adaptCheckpoint!(weights, model).size, names.length);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
});

test("gpt_neox: config errors name the field", () => {
  assert.throws(
    () => new GPTNeoXForCausalLM(tinyConfig({ num_attention_heads: 3 })),
    /hidden_size 16 must be divisible by num_attention_heads 3/,
  );
  assert.throws(
    () => new GPTNeoXForCausalLM(tinyConfig({ rope_scaling: { type: "linear", factor: 2 } })),
    /rope_scaling/,
  );
  assert.throws(() => new GPTNeoXForCausalLM(tinyConfig({ intermediate_size: undefined })), /intermediate_size/);
  assert.throws(
    () => new GPTNeoXForCausalLM(tinyConfig({ rotary_pct: 0.375 })),
    /3 rotary features per head; rotary embeddings need an even number/,
  );
});
