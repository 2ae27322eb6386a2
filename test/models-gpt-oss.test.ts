/**
 * GPT-OSS (mixture of experts) from a tiny HF-layout checkpoint the test writes: config.json with
 * the fields of openai/gpt-oss-20b's (scaled down: 2 layers, hidden 16, 4 heads of 8 ≠ 16/4, 2 KV
 * heads, 4 experts, top 2, sliding window 3, YaRN) and model.safetensors with HF's parameter names
 * and shapes, loaded through loadPretrained.
 *
 * The truth is an independent float64 reference written below from HF transformers'
 * models/gpt_oss/modeling_gpt_oss.py (GptOssRMSNorm, _apply_rotary_emb, eager_attention_forward
 * with its sink column, GptOssTopKRouter.forward, GptOssExperts.forward, GptOssDecoderLayer) and
 * modeling_rope_utils.py's _compute_yarn_parameters: plain loops over the weights' arrays, sharing
 * nothing with src/models/gpt-oss.ts.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import * as tv from "../src/index.js";
import { GptOssForCausalLM } from "../src/models/gpt-oss.js";
import { ropeAttentionFactor, ropeInverseFrequencies } from "../src/nn/rope.js";
import { maxAbsDiff } from "./support/fixtures.js";
import { gradcheck } from "./support/gradcheck.js";
import { checkCachedDecoding, checkSiteHooks, checkSiteTable } from "./support/model-checks.js";

const [V, D, H, KV, HD, E, K, I, WINDOW] = [40, 16, 4, 2, 8, 4, 2, 12, 3];
const LIMIT = 7;
const ALPHA = 1.702;

/** openai/gpt-oss-20b's config.json fields, sizes scaled down. */
const CONFIG = {
  architectures: ["GptOssForCausalLM"],
  attention_bias: true,
  attention_dropout: 0.0,
  eos_token_id: 39,
  experts_per_token: K,
  head_dim: HD,
  hidden_act: "silu",
  hidden_size: D,
  initial_context_length: 4096,
  initializer_range: 0.02,
  intermediate_size: I,
  layer_types: ["sliding_attention", "full_attention"],
  max_position_embeddings: 131072,
  model_type: "gpt_oss",
  num_attention_heads: H,
  num_experts_per_tok: K,
  num_hidden_layers: 2,
  num_key_value_heads: KV,
  num_local_experts: E,
  output_router_logits: false,
  pad_token_id: 38,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    beta_fast: 32.0,
    beta_slow: 1.0,
    factor: 32.0,
    original_max_position_embeddings: 4096,
    rope_type: "yarn",
    truncate: false,
  },
  rope_theta: 150000,
  router_aux_loss_coef: 0.9,
  sliding_window: WINDOW,
  swiglu_limit: LIMIT,
  tie_word_embeddings: false,
  transformers_version: "4.55.0.dev0",
  use_cache: true,
  vocab_size: V,
};
type Config = typeof CONFIG;
type Weights = Map<string, tv.Tensor>;

/** Every parameter under HF's name and shape (GptOssForCausalLM), deterministic and random. */
function hfWeights(seed: number): Weights {
  const generator = new tv.Generator(seed);
  const weights: Weights = new Map();
  const put = (name: string, shape: number[], std: number, shift = 0) =>
    weights.set(name, tv.add(tv.randn(shape, { std, generator }), shift));
  put("model.embed_tokens.weight", [V, D], 1);
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [D], 0.2, 1);
    put(`${p}.post_attention_layernorm.weight`, [D], 0.2, 1);
    for (const [name, out] of [
      ["q_proj", H * HD],
      ["k_proj", KV * HD],
      ["v_proj", KV * HD],
    ] as const) {
      put(`${p}.self_attn.${name}.weight`, [out, D], 0.3);
      put(`${p}.self_attn.${name}.bias`, [out], 0.1);
    }
    put(`${p}.self_attn.o_proj.weight`, [D, H * HD], 0.3);
    put(`${p}.self_attn.o_proj.bias`, [D], 0.1);
    put(`${p}.self_attn.sinks`, [H], 1.5);
    put(`${p}.mlp.router.weight`, [E, D], 0.5);
    put(`${p}.mlp.router.bias`, [E], 0.5);
    // Wide enough that gate and up pass ±7 (the clamp) for many tokens.
    put(`${p}.mlp.experts.gate_up_proj`, [E, D, 2 * I], 2);
    put(`${p}.mlp.experts.gate_up_proj_bias`, [E, 2 * I], 1);
    put(`${p}.mlp.experts.down_proj`, [E, I, D], 0.1);
    put(`${p}.mlp.experts.down_proj_bias`, [E, D], 0.1);
  }
  put("model.norm.weight", [D], 0.2, 1);
  put("lm_head.weight", [V, D], 0.5);
  return weights;
}

const folders: string[] = [];
after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

async function writeFolder(config: object, weights: Weights): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), "tsvene-gpt-oss-"));
  folders.push(folder);
  await tv.writeSafetensors(join(folder, "model.safetensors"), weights);
  await writeFile(join(folder, "config.json"), JSON.stringify(config));
  return folder;
}

function withWeights(config: object, weights: Weights): tv.PretrainedModel {
  const model = tv.modelFromConfig(config as tv.HFConfig);
  model.loadStateDict(weights);
  return model;
}

// ---------------------------------------------------------------------------------------------
// The reference: float64 loops from HF's code

/** _compute_yarn_parameters: per frequency a blend of θ^(−2i/d) and it slowed by `factor`; the cos/sin factor. */
function yarnReference(c: Config, truncate: boolean): { invFreq: number[]; attentionFactor: number } {
  const s = c.rope_scaling;
  const correctionDim = (rotations: number) =>
    (HD * Math.log(s.original_max_position_embeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(c.rope_theta));
  let low = correctionDim(s.beta_fast);
  let high = correctionDim(s.beta_slow);
  if (truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
  [low, high] = [Math.max(low, 0), Math.min(high, HD - 1)];
  const invFreq = Array.from({ length: HD / 2 }, (_, i) => {
    const posFreq = c.rope_theta ** ((2 * i) / HD);
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const extrapolationWeight = 1 - ramp;
    return (1 / (s.factor * posFreq)) * (1 - extrapolationWeight) + (1 / posFreq) * extrapolationWeight;
  });
  return { invFreq, attentionFactor: 0.1 * Math.log(s.factor) + 1 };
}

interface ReferenceOptions {
  /** false: attention without the sink column (what sinks → −∞ must give). */
  sinks?: boolean;
  /** How gate and up sit in gate_up_proj's columns: HF's interleaving, or (wrongly) two halves. */
  gateUp?: "interleaved" | "halves";
  clamp?: boolean;
  /** Replace layer `layer`'s expert output at `position` by `value`. */
  expertOverride?: { layer: number; position: number; value: number[] };
}

interface ReferenceRun {
  logits: number[][];
  /** [layer][position][expert] */
  routerLogits: number[][][];
  /** [layer][position][hidden] */
  expertOutputs: number[][][];
  clamped: { gateAbove: number; upAbove: number; upBelow: number };
}

function reference(c: Config, weights: Weights, ids: number[], options: ReferenceOptions = {}): ReferenceRun {
  const w = (name: string): Float32Array => {
    const t = weights.get(name);
    if (!t) throw new Error(`reference: no weight ${name}`);
    return t.data;
  };
  const linear = (x: number[], name: string, out: number): number[] => {
    const [m, b] = [w(`${name}.weight`), weights.get(`${name}.bias`)?.data];
    return Array.from({ length: out }, (_, o) => x.reduce((acc, v, i) => acc + m[o * x.length + i] * v, b?.[o] ?? 0));
  };
  const rms = (x: number[], name: string): number[] => {
    const inv = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + c.rms_norm_eps);
    const g = w(name);
    return x.map((v, i) => g[i] * v * inv);
  };
  const { invFreq, attentionFactor } = yarnReference(c, false);
  const rotate = (x: number[], position: number): number[] => {
    const half = HD / 2;
    const out = [...x];
    for (let i = 0; i < half; i++) {
      const cos = Math.cos(position * invFreq[i]) * attentionFactor;
      const sin = Math.sin(position * invFreq[i]) * attentionFactor;
      out[i] = x[i] * cos - x[i + half] * sin;
      out[i + half] = x[i + half] * cos + x[i] * sin;
    }
    return out;
  };
  const heads = (x: number[], n: number, t: number): number[][] =>
    Array.from({ length: n }, (_, h) => rotate(x.slice(h * HD, (h + 1) * HD), t));
  const clamped = { gateAbove: 0, upAbove: 0, upBelow: 0 };
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

  const run: ReferenceRun = { logits: [], routerLogits: [], expertOutputs: [], clamped };
  const embed = w("model.embed_tokens.weight");
  let hs = ids.map((id) => Array.from(embed.subarray(id * D, (id + 1) * D)));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    const window = c.layer_types[l] === "sliding_attention" ? c.sliding_window : null;
    const normed = hs.map((x) => rms(x, `${p}.input_layernorm.weight`));
    const qs = normed.map((x, t) => heads(linear(x, `${p}.self_attn.q_proj`, H * HD), H, t));
    const ks = normed.map((x, t) => heads(linear(x, `${p}.self_attn.k_proj`, KV * HD), KV, t));
    const vs = normed.map((x) => {
      const v = linear(x, `${p}.self_attn.v_proj`, KV * HD);
      return Array.from({ length: KV }, (_, h) => v.slice(h * HD, (h + 1) * HD));
    });
    const sinks = w(`${p}.self_attn.sinks`);
    hs = hs.map((x, t) => {
      const merged: number[] = [];
      for (let h = 0; h < H; h++) {
        const kv = Math.floor(h / (H / KV));
        const visible = Array.from({ length: t + 1 }, (_, s) => s).filter((s) => window === null || t - s < window);
        const scores = visible.map((s) => qs[t][h].reduce((a, q, i) => a + q * ks[s][kv][i], 0) / Math.sqrt(HD));
        const logits = options.sinks === false ? scores : [...scores, sinks[h]];
        const top = Math.max(...logits);
        const total = logits.reduce((a, v) => a + Math.exp(v - top), 0);
        for (let i = 0; i < HD; i++)
          merged.push(visible.reduce((a, s, j) => a + (Math.exp(scores[j] - top) / total) * vs[s][kv][i], 0));
      }
      const attended = linear(merged, `${p}.self_attn.o_proj`, D);
      return x.map((v, i) => v + attended[i]);
    });

    const [gu, gub, dp, dpb] = ["gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias"].map((n) =>
      w(`${p}.mlp.experts.${n}`),
    );
    const expert = (x: number[], e: number): number[] => {
      const gateUp = Array.from({ length: 2 * I }, (_, j) =>
        x.reduce((a, v, i) => a + v * gu[(e * D + i) * 2 * I + j], gub[e * 2 * I + j]),
      );
      const mid = Array.from({ length: I }, (_, m) => {
        let [gate, up] = options.gateUp === "halves" ? [gateUp[m], gateUp[I + m]] : [gateUp[2 * m], gateUp[2 * m + 1]];
        if (options.clamp !== false) {
          clamped.gateAbove += gate > LIMIT ? 1 : 0;
          clamped.upAbove += up > LIMIT ? 1 : 0;
          clamped.upBelow += up < -LIMIT ? 1 : 0;
          [gate, up] = [Math.min(gate, LIMIT), Math.min(Math.max(up, -LIMIT), LIMIT)];
        }
        return (up + 1) * gate * sigmoid(ALPHA * gate);
      });
      return Array.from({ length: D }, (_, j) =>
        mid.reduce((a, v, m) => a + v * dp[(e * I + m) * D + j], dpb[e * D + j]),
      );
    };
    run.routerLogits.push([]);
    run.expertOutputs.push([]);
    hs = hs.map((x, t) => {
      const normedMlp = rms(x, `${p}.post_attention_layernorm.weight`);
      const router = linear(normedMlp, `${p}.mlp.router`, E);
      run.routerLogits[l].push(router);
      const chosen = [...router.keys()].sort((a, b) => router[b] - router[a]).slice(0, K);
      const top = Math.max(...chosen.map((e) => router[e]));
      const total = chosen.reduce((a, e) => a + Math.exp(router[e] - top), 0);
      let out = new Array<number>(D).fill(0);
      for (const e of chosen) {
        const weight = Math.exp(router[e] - top) / total;
        out = expert(normedMlp, e).map((v, j) => out[j] + weight * v);
      }
      const override = options.expertOverride;
      if (override?.layer === l && override.position === t) out = override.value;
      run.expertOutputs[l].push(out);
      return x.map((v, i) => v + out[i]);
    });
  }
  run.logits = hs.map((x) => linear(rms(x, "model.norm.weight"), "lm_head", V));
  return run;
}

function logitsOf(model: tv.PretrainedModel, ids: number[][]): tv.Tensor {
  return tv.noGrad(() => model.run({ inputIds: tv.intTensor(ids) }).logits);
}

/** Largest |model − reference| over rows [B][T][V]. */
function distance(logits: tv.Tensor, expected: number[][][]): number {
  return maxAbsDiff(logits, tv.tensor(expected));
}

const IDS = [3, 17, 9, 25, 30, 11, 5];
const OTHER = [12, 1, 33, 7, 20, 2, 14];
const TOLERANCE = 1e-4;
const weights = hfWeights(5);
const loaded = writeFolder(CONFIG, weights).then((folder) => tv.loadPretrained(folder));

test("gpt_oss: an HF-layout folder loads through loadPretrained as GptOssForCausalLM, strictly", async () => {
  const { model } = await loaded;
  assert.ok(model instanceof GptOssForCausalLM);
  assert.equal(model.family, "gpt_oss");
  assert.equal(tv.familyOf({ ...CONFIG, model_type: undefined }).name, "gpt_oss");
  assert.deepEqual(new Set(model.namedParameters().map(([n]) => n)), new Set(weights.keys()));
});

test("gpt_oss: YaRN's inverse frequencies and cos/sin factor are HF's (truncate false and true)", () => {
  for (const truncate of [false, true]) {
    const scaling = { ...CONFIG.rope_scaling, truncate };
    const expected = yarnReference({ ...CONFIG, rope_scaling: scaling }, truncate);
    const yarn = {
      type: "yarn",
      factor: 32,
      originalMaxPositionEmbeddings: 4096,
      betaFast: 32,
      betaSlow: 1,
      truncate,
      attentionFactor: null,
      mscale: null,
      mscaleAllDim: null,
    } as const;
    const got = ropeInverseFrequencies(HD, CONFIG.rope_theta, yarn);
    expected.invFreq.forEach((f, i) => assert.ok(Math.abs(got[i] - f) <= 1e-6 * f, `truncate ${truncate}: ${i}`));
    assert.ok(Math.abs(ropeAttentionFactor(yarn) - expected.attentionFactor) < 1e-12);
  }
  // head_dim 8 puts the ramp inside: one frequency kept, one slowed by 32, one blended.
  const { invFreq } = yarnReference(CONFIG, false);
  assert.equal(invFreq[0], 1);
  assert.ok(Math.abs(invFreq[3] - 1 / (32 * CONFIG.rope_theta ** 0.75)) < 1e-15);
});

test("gpt_oss: logits match the float64 reference, for a batch of two, with the clamp active", async () => {
  const { model } = await loaded;
  const runs = [IDS, OTHER].map((ids) => reference(CONFIG, weights, ids));
  assert.ok(distance(logitsOf(model, [IDS, OTHER]), [runs[0].logits, runs[1].logits]) < TOLERANCE);
  const { clamped } = runs[0];
  assert.ok(clamped.gateAbove > 0 && clamped.upAbove > 0 && clamped.upBelow > 0, JSON.stringify(clamped));
  // The reference tells these apart: dropping the clamp or reading gate/up as halves changes the logits.
  const logits = logitsOf(model, [IDS]);
  for (const variant of [{ clamp: false }, { gateUp: "halves" }] as const)
    assert.ok(distance(logits, [reference(CONFIG, weights, IDS, variant).logits]) > 1e-2, JSON.stringify(variant));
});

test("gpt_oss: the sinks take part in the softmax; at −∞ they leave plain attention", async () => {
  const { model } = await loaded;
  const withSinks = logitsOf(model, [IDS]);
  const setSinks = (value: number): Weights =>
    new Map([...weights].map(([n, t]) => [n, n.endsWith(".sinks") ? tv.full(t.shape, value) : t]));
  const zero = withWeights(CONFIG, setSinks(0));
  const zeroLogits = logitsOf(zero, [IDS]);
  assert.ok(maxAbsDiff(withSinks, zeroLogits) > 1e-2);
  assert.ok(distance(zeroLogits, [reference(CONFIG, setSinks(0), IDS).logits]) < TOLERANCE);
  const none = logitsOf(withWeights(CONFIG, setSinks(-1e30)), [IDS]);
  assert.ok(distance(none, [reference(CONFIG, weights, IDS, { sinks: false }).logits]) < TOLERANCE);
});

test("gpt_oss: the sliding layer sees the last 3 positions; all-full attention differs from position 3", async () => {
  const full = { ...CONFIG, layer_types: ["full_attention", "full_attention"] };
  const fullLogits = logitsOf(withWeights(full, weights), [IDS]);
  assert.ok(distance(fullLogits, [reference(full, weights, IDS).logits]) < TOLERANCE);
  const sliding = logitsOf((await loaded).model, [IDS]);
  const rows = (t: tv.Tensor, from: number, to: number) => tv.slice(t, 1, from, to);
  assert.equal(maxAbsDiff(rows(sliding, 0, WINDOW), rows(fullLogits, 0, WINDOW)), 0);
  assert.ok(maxAbsDiff(rows(sliding, WINDOW, IDS.length), rows(fullLogits, WINDOW, IDS.length)) > 1e-3);
});

test("gpt_oss: a router bias that forces experts 0 and 2 runs exactly those two", async () => {
  const forced = new Map(weights);
  forced.set("model.layers.1.mlp.router.weight", tv.zeros([E, D]));
  forced.set("model.layers.1.mlp.router.bias", tv.tensor([2, -3, 1, -3]));
  const model = withWeights(CONFIG, forced);
  const logits = logitsOf(model, [IDS]);
  assert.ok(distance(logits, [reference(CONFIG, forced, IDS).logits]) < TOLERANCE);
  // Experts 1 and 3 may change freely; expert 0 may not.
  const perturb = (expert: number): Weights => {
    const changed = new Map(forced);
    const name = "model.layers.1.mlp.experts.down_proj_bias";
    const bias = forced.get(name)!.data.slice();
    bias.fill(5, expert * D, (expert + 1) * D);
    changed.set(name, new tv.Tensor(bias, [E, D]));
    return changed;
  };
  assert.equal(maxAbsDiff(logitsOf(withWeights(CONFIG, perturb(1)), [IDS]), logits), 0);
  assert.equal(maxAbsDiff(logitsOf(withWeights(CONFIG, perturb(3)), [IDS]), logits), 0);
  assert.ok(maxAbsDiff(logitsOf(withWeights(CONFIG, perturb(0)), [IDS]), logits) > 1e-2);
});

test("gpt_oss: pyvene's sites, with router and expert sites, at modules that exist and hooks that fire", async () => {
  const { model } = await loaded;
  checkSiteTable(model, "model.layers.", 1, {
    block_input: ["", "input", D],
    block_output: ["", "output", D],
    mlp_input: [".mlp", "input", D],
    mlp_output: [".mlp", "output", D],
    router_input: [".mlp.router", "input", D],
    router_output: [".mlp.router", "output", E],
    expert_input: [".mlp.experts", "input", D],
    expert_output: [".mlp.experts", "output", D],
    attention_input: [".self_attn", "input", D],
    attention_output: [".self_attn", "output", D],
    attention_value_output: [".self_attn.o_proj", "input", H * HD],
    head_attention_value_output: [".self_attn.o_proj", "input", HD, { heads: H }],
    query_output: [".self_attn.q_proj", "output", H * HD],
    key_output: [".self_attn.k_proj", "output", KV * HD],
    value_output: [".self_attn.v_proj", "output", KV * HD],
    head_query_output: [".self_attn.q_proj", "output", HD, { heads: H }],
    head_key_output: [".self_attn.k_proj", "output", HD, { heads: KV }],
    head_value_output: [".self_attn.v_proj", "output", HD, { heads: KV }],
  });
  checkSiteHooks(model);
  const names = tv.hookNames(model);
  assert.ok(names.includes("blocks.1.hook_resid_post") && names.includes("blocks.0.attn.hook_q"));
  assert.ok(!names.some((n) => n.includes("mlp.hook_pre")));
});

test("gpt_oss: Collect at router_output gives the reference's router logits", async () => {
  const { model } = await loaded;
  const positions = IDS.map((_, t) => t);
  const im = new tv.IntervenableModel(
    { layer: 1, component: "router_output", maxNumberOfUnits: IDS.length, interventionType: tv.CollectIntervention },
    model,
  );
  const { collected } = im.forward({ inputIds: tv.intTensor([IDS]) }, null, { unitLocations: { base: [[positions]] } });
  assert.deepEqual(collected[0].shape, [1, IDS.length, E]);
  assert.ok(distance(collected[0], [reference(CONFIG, weights, IDS).routerLogits[1]]) < 1e-5);
});

test("gpt_oss: a Vanilla interchange at expert_output puts the source's expert output into the base run", async () => {
  const { model } = await loaded;
  const im = new tv.IntervenableModel(
    { layer: 0, component: "expert_output", interventionType: tv.VanillaIntervention },
    model,
  );
  const { intervened } = im.forward({ inputIds: tv.intTensor([IDS]) }, [{ inputIds: tv.intTensor([OTHER]) }], {
    unitLocations: { "sources->base": [[[[4]]], [[[2]]]] },
  });
  const value = reference(CONFIG, weights, OTHER).expertOutputs[0][4];
  const expected = reference(CONFIG, weights, IDS, { expertOverride: { layer: 0, position: 2, value } });
  assert.ok(distance(intervened.logits, [expected.logits]) < TOLERANCE);
  assert.ok(distance(intervened.logits, [reference(CONFIG, weights, IDS).logits]) > 1e-3);
});

test("gpt_oss: gradients through the sinks, the routing weights and the experts match finite differences", () => {
  // Every expert chosen and gates away from the clamp: a small step changes no choice, so L is smooth.
  const smooth = new Map([...weights].map(([n, t]) => [n, n.endsWith("gate_up_proj") ? tv.mul(t, 0.2) : t] as const));
  const model = withWeights({ ...CONFIG, num_experts_per_tok: E }, smooth);
  const params = new Map(model.namedParameters());
  const inputs = [
    "model.layers.0.self_attn.sinks",
    "model.layers.1.mlp.router.bias",
    "model.layers.0.mlp.experts.gate_up_proj_bias",
    "model.layers.1.mlp.experts.down_proj_bias",
  ].map((name) => params.get(name)!.requireGrad());
  const ids = tv.intTensor([IDS.slice(0, 4)]);
  gradcheck(() => model.run({ inputIds: ids }).logits, inputs, { eps: 1e-2, atol: 2e-3, rtol: 1e-2 });
});

test("gpt_oss: decoding through the KV cache (past the sliding window) gives the full pass's logits", async () => {
  checkCachedDecoding((await loaded).model, [IDS, OTHER]);
});

test("gpt_oss: configs tsvene would run differently from HF are refused, naming the field", async () => {
  const refused: [object, RegExp][] = [
    [{ rope_scaling: undefined }, /"rope_scaling" is missing/],
    [{ rope_scaling: { rope_type: "linear", factor: 2 } }, /rope_scaling type "linear" is not supported/],
    [{ quantization_config: { quant_method: "mxfp4" } }, /quantized GPT-OSS checkpoints/],
    [{ layer_types: ["full_attention"] }, /"layer_types" must list/],
    [{ num_experts_per_tok: 5 }, /num_experts_per_tok \(5\) must be at most num_local_experts \(4\)/],
    [{ partial_rotary_factor: 0.5 }, /partial_rotary_factor/],
  ];
  for (const [change, message] of refused)
    assert.throws(() => tv.modelFromConfig({ ...CONFIG, ...change }), message, JSON.stringify(change));
  const plain = tv.modelFromConfig({ ...CONFIG, rope_scaling: null }) as GptOssForCausalLM;
  assert.equal(plain.settings.ropeAttentionFactor, 1);
  const folder = await writeFolder({ ...CONFIG, intermediate_size: 10 }, weights);
  await assert.rejects(tv.loadPretrained(folder), /intermediate_size is 10 but the weights hold 12/);
});
