/**
 * The Llama family. Llama itself against HF's numbers (fixture llama_tiny_gqa); every other model
 * type against an independent float64 reference decoder written below from HF's equations, plus
 * hand checks of each type's own piece, plus HF-layout folders with each family's real
 * config.json fields (scaled down) loaded through loadPretrained.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tv from "../src/index.js";
import { LlamaForCausalLM, llamaFamily } from "../src/models/llama.js";
import type { LlamaModelType } from "../src/models/llama-settings.js";
import { ropeInverseFrequencies } from "../src/nn/rope.js";
import { maxAbsDiff } from "./support/fixtures.js";
import { checkSiteHooks, fixtureTests, loadedAs, openFixture } from "./support/model-checks.js";

const FIXTURE = "llama_tiny_gqa";
const TOLERANCE = 1e-4;

const { loaded, data } = openFixture(FIXTURE);

// ---------------------------------------------------------------------------------------------
// llama_tiny_gqa: HF's own numbers

test("llama_tiny_gqa: loadPretrained picks the Llama family and loads every weight", async () => {
  const llama = await loadedAs(loaded, LlamaForCausalLM, "llama");
  assert.equal(llama.modelType, "llama");
  assert.notEqual(llama.lm_head.weight, llama.model.embed_tokens.weight);
  assert.deepEqual(llama.model.layers.at(0).self_attn.k_proj.weight.shape, [16, 32]);
});

fixtureTests(FIXTURE, { loaded, data }, TOLERANCE);

test(`llama: pyvene's site map (GQA: key/value heads are the KV heads), \
with modules that exist and hooks that fire`, async () => {
  const { model } = await loaded;
  assert.deepEqual(model.site("block_input", 0), { module: "model.layers.0", hook: "input", dim: 32 });
  assert.deepEqual(model.site("block_output", 2), { module: "model.layers.2", hook: "output", dim: 32 });
  assert.deepEqual(model.site("mlp_activation", 1), { module: "model.layers.1.mlp.act_fn", hook: "output", dim: 64 });
  assert.deepEqual(model.site("mlp_output", 1), { module: "model.layers.1.mlp", hook: "output", dim: 32 });
  assert.deepEqual(model.site("attention_output", 0), { module: "model.layers.0.self_attn", hook: "output", dim: 32 });
  assert.deepEqual(model.site("attention_value_output", 1), {
    module: "model.layers.1.self_attn.o_proj",
    hook: "input",
    dim: 32,
  });
  assert.deepEqual(model.site("head_attention_value_output", 1), {
    module: "model.layers.1.self_attn.o_proj",
    hook: "input",
    dim: 8,
    heads: 4,
  });
  assert.deepEqual(model.site("query_output", 2), {
    module: "model.layers.2.self_attn.q_proj",
    hook: "output",
    dim: 32,
  });
  assert.deepEqual(model.site("key_output", 2), { module: "model.layers.2.self_attn.k_proj", hook: "output", dim: 16 });
  assert.deepEqual(model.site("head_key_output", 0), {
    module: "model.layers.0.self_attn.k_proj",
    hook: "output",
    dim: 8,
    heads: 2,
  });
  assert.deepEqual(model.site("head_value_output", 0), {
    module: "model.layers.0.self_attn.v_proj",
    hook: "output",
    dim: 8,
    heads: 2,
  });
  assert.deepEqual(model.site("head_query_output", 0), {
    module: "model.layers.0.self_attn.q_proj",
    hook: "output",
    dim: 8,
    heads: 4,
  });
  assert.throws(() => model.site("attention_weight", 0), /not available for llama/);
  assert.throws(() => model.site("block_output", 3), /layer 3 is out of range/);
  checkSiteHooks(model);
});

test("llama: mlp_activation is act_fn(gate_proj x), before the product with up_proj", async () => {
  const { model } = await loaded;
  const llama = model as LlamaForCausalLM;
  const mlp = llama.model.layers.at(0).mlp;
  let input: tv.Tensor | null = null;
  let activation: tv.Tensor | null = null;
  const h1 = mlp.addPreHook((_m, x) => void (input = x));
  const h2 = mlp.act_fn.addPostHook((_m, _x, y) => void (activation = y));
  tv.noGrad(() => model.run({ inputIds: tv.intTensor([[5, 6]]) }));
  h1.remove();
  h2.remove();
  const gate = tv.linear(input!, mlp.gate_proj.weight).data;
  const expected = Array.from(gate, (g) => g / (1 + Math.exp(-g)));
  assert.ok(Math.max(...expected.map((e, i) => Math.abs(e - activation!.data[i]))) < 1e-6);
});

// ---------------------------------------------------------------------------------------------
// The other model types: real config.json fields, scaled down (hidden 32, 4 heads, vocab 64)

const VOCAB = 64;

/** Field names and typical values of each type's published config.json, sizes scaled down. */
const REAL_CONFIGS: Record<LlamaModelType, Record<string, unknown>> = {
  // meta-llama/Llama-3.2-1B
  llama: {
    architectures: ["LlamaForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 60,
    eos_token_id: 61,
    head_dim: 8,
    hidden_act: "silu",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 64,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: "llama",
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 2,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: {
      factor: 32.0,
      high_freq_factor: 4.0,
      low_freq_factor: 1.0,
      original_max_position_embeddings: 8192,
      rope_type: "llama3",
    },
    rope_theta: 500000.0,
    tie_word_embeddings: true,
    torch_dtype: "float32",
    transformers_version: "4.45.0.dev0",
    use_cache: true,
    vocab_size: VOCAB,
  },
  // mistralai/Mistral-7B-v0.1 (sliding_window 4096 → 4)
  mistral: {
    architectures: ["MistralForCausalLM"],
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: "silu",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 112,
    max_position_embeddings: 32768,
    model_type: "mistral",
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    sliding_window: 4,
    tie_word_embeddings: false,
    torch_dtype: "float32",
    transformers_version: "4.34.0.dev0",
    use_cache: true,
    vocab_size: VOCAB,
  },
  // Qwen/Qwen2-0.5B
  qwen2: {
    architectures: ["Qwen2ForCausalLM"],
    attention_dropout: 0.0,
    bos_token_id: 63,
    eos_token_id: 63,
    hidden_act: "silu",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 176,
    max_position_embeddings: 131072,
    max_window_layers: 2,
    model_type: "qwen2",
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 131072,
    tie_word_embeddings: true,
    torch_dtype: "float32",
    transformers_version: "4.40.1",
    use_cache: true,
    use_sliding_window: false,
    vocab_size: VOCAB,
  },
  // Qwen/Qwen3-0.6B (head_dim·heads = 64 ≠ hidden 32, as 128·16 ≠ 1024 there)
  qwen3: {
    architectures: ["Qwen3ForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 62,
    eos_token_id: 63,
    head_dim: 16,
    hidden_act: "silu",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 96,
    max_position_embeddings: 40960,
    max_window_layers: 2,
    model_type: "qwen3",
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 1000000,
    sliding_window: null,
    tie_word_embeddings: true,
    torch_dtype: "float32",
    transformers_version: "4.51.0",
    use_cache: true,
    use_sliding_window: false,
    vocab_size: VOCAB,
  },
  // google/gemma-2b (its hidden_act "gelu" is ignored by HF: Gemma uses the tanh GELU)
  gemma: {
    architectures: ["GemmaForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 2,
    eos_token_id: 1,
    head_dim: 16,
    hidden_act: "gelu",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 256,
    max_position_embeddings: 8192,
    model_type: "gemma",
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 1,
    pad_token_id: 0,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 10000.0,
    torch_dtype: "float32",
    transformers_version: "4.38.0.dev0",
    use_cache: true,
    vocab_size: VOCAB,
  },
  // google/gemma-2-2b (3 layers so that layers 0 and 2 slide and layer 1 does not; window 4096 → 4)
  gemma2: {
    architectures: ["Gemma2ForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    attn_logit_softcapping: 50.0,
    bos_token_id: 2,
    cache_implementation: "hybrid",
    eos_token_id: 1,
    final_logit_softcapping: 30.0,
    head_dim: 16,
    hidden_act: "gelu_pytorch_tanh",
    hidden_activation: "gelu_pytorch_tanh",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 128,
    max_position_embeddings: 8192,
    model_type: "gemma2",
    num_attention_heads: 4,
    num_hidden_layers: 3,
    num_key_value_heads: 2,
    pad_token_id: 0,
    query_pre_attn_scalar: 16,
    rms_norm_eps: 1e-6,
    rope_theta: 10000.0,
    sliding_window: 4,
    torch_dtype: "float32",
    transformers_version: "4.42.4",
    use_cache: true,
    vocab_size: VOCAB,
  },
  // allenai/OLMo-1B-hf
  olmo: {
    architectures: ["OlmoForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    clip_qkv: null,
    eos_token_id: 63,
    hidden_act: "silu",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 128,
    max_position_embeddings: 2048,
    model_type: "olmo",
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 4,
    pad_token_id: 1,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: true,
    torch_dtype: "float32",
    transformers_version: "4.40.0.dev0",
    use_cache: true,
    vocab_size: VOCAB,
  },
  // allenai/OLMo-2-1124-7B
  olmo2: {
    architectures: ["Olmo2ForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    eos_token_id: 63,
    hidden_act: "silu",
    hidden_size: 32,
    initializer_range: 0.02,
    intermediate_size: 88,
    max_position_embeddings: 4096,
    model_type: "olmo2",
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 4,
    pad_token_id: 62,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 500000,
    tie_word_embeddings: false,
    torch_dtype: "float32",
    transformers_version: "4.47.0.dev0",
    use_cache: true,
    vocab_size: VOCAB,
  },
};

const TYPES = Object.keys(REAL_CONFIGS) as LlamaModelType[];

/** A model of a type with every parameter random (norm weights around their identity value). */
function randomModel(type: LlamaModelType, overrides: Record<string, unknown> = {}, seed = 7): LlamaForCausalLM {
  const model = new LlamaForCausalLM({ ...REAL_CONFIGS[type], ...overrides });
  const generator = new tv.Generator(seed);
  const offsetNorms = type === "gemma" || type === "gemma2";
  for (const [name, p] of model.namedParameters()) {
    const noise = tv.randn(p.shape, { std: name.endsWith("norm.weight") ? 0.2 : 0.25, generator }).data;
    p.data.set(name.endsWith("norm.weight") && !offsetNorms ? noise.map((v) => 1 + v) : noise);
  }
  return model;
}

const IDS = [3, 17, 42, 8, 25, 60, 11, 33, 5];

// ------------------------------------------------------------------
// An independent reference decoder: float64 loops straight from HF's equations, with its own
// description of every model type (nothing shared with src/models/llama.ts but the weights).

interface Reference {
  layout: "pre" | "sandwich" | "post";
  norm: "rms" | "one_plus_rms" | "plain_layer_norm";
  qkNorm: "none" | "per_head" | "full_width";
  /** Only to show that placement matters: the q/k norm applied after rotary instead of before. */
  qkNormAfterRotary?: boolean;
  gelu: boolean;
  embedScale: boolean;
  /** Scores multiplied by this (1/√head_dim, or query_pre_attn_scalar^−½). */
  scoreScale: number;
  attnCap: number | null;
  finalCap: number | null;
  windows: (number | null)[];
  clip: number | null;
  eps: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  invFreq: number[];
}

function referenceOf(type: LlamaModelType, config: Record<string, unknown>): Reference {
  // biome-ignore lint/suspicious/noExplicitAny: the reference reads config fields of several types
  const c = config as Record<string, any>;
  const heads = c.num_attention_heads;
  const headDim = c.head_dim ?? c.hidden_size / heads;
  const layers = c.num_hidden_layers;
  const invFreq = Array.from({ length: headDim / 2 }, (_, i) => 1 / (c.rope_theta ?? 10000) ** ((2 * i) / headDim));
  const scaling = c.rope_scaling;
  const freqs =
    scaling?.rope_type === "llama3"
      ? llama3Reference(invFreq, scaling)
      : scaling?.rope_type === "linear"
        ? invFreq.map((f) => f / scaling.factor)
        : invFreq;
  const windows: (number | null)[] = new Array(layers).fill(null);
  if (type === "mistral" && c.sliding_window) windows.fill(c.sliding_window);
  if (type === "gemma2" && c.sliding_window) for (let l = 0; l < layers; l += 2) windows[l] = c.sliding_window;
  const gemmaLike = type === "gemma" || type === "gemma2";
  return {
    layout: type === "gemma2" ? "sandwich" : type === "olmo2" ? "post" : "pre",
    norm: gemmaLike ? "one_plus_rms" : type === "olmo" ? "plain_layer_norm" : "rms",
    qkNorm: type === "qwen3" ? "per_head" : type === "olmo2" ? "full_width" : "none",
    gelu: gemmaLike,
    embedScale: gemmaLike,
    scoreScale: type === "gemma2" ? c.query_pre_attn_scalar ** -0.5 : 1 / Math.sqrt(headDim),
    attnCap: type === "gemma2" ? c.attn_logit_softcapping : null,
    finalCap: type === "gemma2" ? c.final_logit_softcapping : null,
    windows,
    clip: type === "olmo" ? (c.clip_qkv ?? null) : null,
    eps: type === "olmo" ? 1e-5 : c.rms_norm_eps,
    heads,
    kvHeads: c.num_key_value_heads ?? heads,
    headDim,
    invFreq: freqs,
  };
}

/** Llama 3's rope scaling in float64, from Meta's description. */
function llama3Reference(invFreq: number[], s: Record<string, number>): number[] {
  const lowWavelength = s.original_max_position_embeddings / s.low_freq_factor;
  const highWavelength = s.original_max_position_embeddings / s.high_freq_factor;
  return invFreq.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < highWavelength) return f;
    if (wavelength > lowWavelength) return f / s.factor;
    const smooth =
      (s.original_max_position_embeddings / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return ((1 - smooth) * f) / s.factor + smooth * f;
  });
}

/** Logits [T][V] for one unpadded sequence at positions 0..T−1. */
function referenceLogits(model: LlamaForCausalLM, r: Reference, ids: number[]): number[][] {
  const params = new Map(model.namedParameters());
  const get = (name: string): Float32Array | null => params.get(name)?.data ?? null;
  const linear = (x: number[], name: string): number[] => {
    const w = params.get(`${name}.weight`)!;
    const [out, inp] = w.shape;
    const b = get(`${name}.bias`);
    return Array.from({ length: out }, (_, o) => {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) acc += w.data[o * inp + i] * x[i];
      return acc;
    });
  };
  const rms = (x: number[], w: Float32Array | null, onePlus: boolean, eps: number): number[] => {
    const inv = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + eps);
    return x.map((v, i) => v * inv * (w === null ? 1 : onePlus ? 1 + w[i] : w[i]));
  };
  const norm = (x: number[], name: string): number[] => {
    if (r.norm === "plain_layer_norm") {
      const mean = x.reduce((a, v) => a + v, 0) / x.length;
      const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
      return x.map((v) => (v - mean) / Math.sqrt(variance + 1e-5));
    }
    return rms(x, get(`${name}.weight`), r.norm === "one_plus_rms", r.eps);
  };
  const act = (x: number): number =>
    r.gelu ? 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))) : x / (1 + Math.exp(-x));
  const cap = (x: number, c: number | null): number => (c === null ? x : c * Math.tanh(x / c));
  const clip = (x: number[]): number[] =>
    r.clip === null ? x : x.map((v) => Math.min(r.clip!, Math.max(-r.clip!, v)));
  const rotate = (x: number[], position: number): number[] => {
    const half = r.headDim / 2;
    const out = [...x];
    for (let i = 0; i < half; i++) {
      const [c, s] = [Math.cos(position * r.invFreq[i]), Math.sin(position * r.invFreq[i])];
      out[i] = x[i] * c - x[i + half] * s;
      out[i + half] = x[i + half] * c + x[i] * s;
    }
    return out;
  };
  const headsOf = (x: number[], n: number): number[][] =>
    Array.from({ length: n }, (_, h) => x.slice(h * r.headDim, (h + 1) * r.headDim));

  const embed = params.get("model.embed_tokens.weight")!;
  const D = embed.shape[1];
  const scale = r.embedScale ? Math.fround(Math.sqrt(D)) : 1;
  let hs = ids.map((id) => Array.from(embed.data.subarray(id * D, (id + 1) * D), (v) => v * scale));
  for (let l = 0; l < model.numLayers; l++) {
    const p = `model.layers.${l}`;
    const attnIn = hs.map((x) => (r.layout === "post" ? x : norm(x, `${p}.input_layernorm`)));
    const qs: number[][][] = [];
    const ks: number[][][] = [];
    const vs: number[][][] = [];
    attnIn.forEach((x, t) => {
      const [qw, kw] = [get(`${p}.self_attn.q_norm.weight`), get(`${p}.self_attn.k_norm.weight`)];
      const qkNorm = (q: number[], k: number[]): [number[], number[]] => {
        if (r.qkNorm === "full_width") return [rms(q, qw, false, r.eps), rms(k, kw, false, r.eps)];
        if (r.qkNorm === "none") return [q, k];
        const perHead = (x: number[], w: Float32Array | null, n: number) =>
          headsOf(x, n).flatMap((h) => rms(h, w, false, r.eps));
        return [perHead(q, qw, r.heads), perHead(k, kw, r.kvHeads)];
      };
      const rotateAll = (x: number[], n: number) => headsOf(x, n).flatMap((h) => rotate(h, t));
      let q = clip(linear(x, `${p}.self_attn.q_proj`));
      let k = clip(linear(x, `${p}.self_attn.k_proj`));
      const v = clip(linear(x, `${p}.self_attn.v_proj`));
      if (r.qkNormAfterRotary) {
        [q, k] = qkNorm(rotateAll(q, r.heads), rotateAll(k, r.kvHeads));
      } else {
        [q, k] = qkNorm(q, k);
        [q, k] = [rotateAll(q, r.heads), rotateAll(k, r.kvHeads)];
      }
      qs.push(headsOf(q, r.heads));
      ks.push(headsOf(k, r.kvHeads));
      vs.push(headsOf(v, r.kvHeads));
    });
    const window = r.windows[l];
    const attended = hs.map((_, t) => {
      const merged: number[] = [];
      for (let h = 0; h < r.heads; h++) {
        const kv = Math.floor(h / (r.heads / r.kvHeads));
        const visible = Array.from({ length: t + 1 }, (_, s) => s).filter((s) => window === null || t - s < window);
        const scores = visible.map((s) =>
          cap(qs[t][h].reduce((a, q, i) => a + q * ks[s][kv][i], 0) * r.scoreScale, r.attnCap),
        );
        const top = Math.max(...scores);
        const weights = scores.map((s) => Math.exp(s - top));
        const total = weights.reduce((a, b) => a + b, 0);
        for (let i = 0; i < r.headDim; i++)
          merged.push(visible.reduce((a, s, j) => a + (weights[j] / total) * vs[s][kv][i], 0));
      }
      return linear(merged, `${p}.self_attn.o_proj`);
    });
    hs = hs.map((x, t) => {
      const a = r.layout === "pre" ? attended[t] : norm(attended[t], `${p}.post_attention_layernorm`);
      const h = x.map((v, i) => v + a[i]);
      const mlpIn =
        r.layout === "pre"
          ? norm(h, `${p}.post_attention_layernorm`)
          : r.layout === "sandwich"
            ? norm(h, `${p}.pre_feedforward_layernorm`)
            : h;
      const up = linear(mlpIn, `${p}.mlp.up_proj`);
      const gated = linear(mlpIn, `${p}.mlp.gate_proj`).map((g, i) => act(g) * up[i]);
      const down = linear(gated, `${p}.mlp.down_proj`);
      const m = r.layout === "pre" ? down : norm(down, `${p}.post_feedforward_layernorm`);
      return h.map((v, i) => v + m[i]);
    });
  }
  const head = params.has("lm_head.weight") ? "lm_head" : "model.embed_tokens";
  return hs.map((x) => linear(norm(x, "model.norm"), head).map((v) => cap(v, r.finalCap)));
}

function compareWithReference(
  model: LlamaForCausalLM,
  type: LlamaModelType,
  config: Record<string, unknown>,
  ids = IDS,
): number {
  const logits = tv.noGrad(() => model.run({ inputIds: tv.intTensor([ids]) }).logits);
  const expected = referenceLogits(model, referenceOf(type, config), ids);
  return Math.max(...expected.flat().map((e, i) => Math.abs(e - logits.data[i])));
}

for (const type of TYPES) {
  test(`${type}: the whole decoder equals an independent float64 reference from HF's equations`, (t) => {
    const model = randomModel(type);
    const diff = compareWithReference(model, type, REAL_CONFIGS[type]);
    t.diagnostic(`${type}: max |logit − reference| ${diff.toExponential(2)}`);
    assert.ok(diff < TOLERANCE, `${type}: logits differ from the reference by ${diff}`);
  });
}

test("llama: attention_bias and mlp_bias add biases to every projection, checked against the reference", () => {
  const overrides = { attention_bias: true, mlp_bias: true, tie_word_embeddings: false };
  const model = randomModel("llama", overrides);
  const names = model.namedParameters().map(([n]) => n);
  for (const proj of [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
  ]) {
    assert.ok(names.includes(`model.layers.1.${proj}.bias`), proj);
  }
  assert.ok(names.includes("lm_head.weight"));
  assert.ok(compareWithReference(model, "llama", { ...REAL_CONFIGS.llama, ...overrides }) < TOLERANCE);
});

test(`rope_scaling: llama3 inv_freq equals Meta's formula, with Llama 3.1's published values; \
linear divides by the factor`, () => {
  // Llama 3.1 8B: θ 500000, head_dim 128, factor 8, low 1, high 4, original context 8192.
  const scaling = {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  } as const;
  const ours = ropeInverseFrequencies(128, 500000, scaling);
  const plain = Array.from({ length: 64 }, (_, i) => 1 / 500000 ** ((2 * i) / 128));
  const expected = llama3Reference(plain, {
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  });
  expected.forEach((e, i) => assert.ok(Math.abs(ours[i] - e) <= 1e-6 * e, `inv_freq[${i}]: ${ours[i]} vs ${e}`));
  // High frequencies (wavelength < 2048) untouched, low ones (> 8192) slowed 8×, one in between smoothed.
  assert.equal(ours[0], 1);
  assert.ok(Math.abs(ours[63] - 500000 ** (-126 / 128) / 8) < 1e-7 * ours[63]);
  const medium = plain.findIndex((f) => (2 * Math.PI) / f >= 2048 && (2 * Math.PI) / f <= 8192);
  assert.ok(medium > 0 && ours[medium] < plain[medium] && ours[medium] > plain[medium] / 8);
  const linear = ropeInverseFrequencies(8, 10000, { type: "linear", factor: 4 });
  [1, 0.1, 0.01, 0.001].forEach((f, i) => assert.ok(Math.abs(linear[i] - f / 4) < 1e-7 * f));
  // And through a config: rope_scaling {"type": "linear"} (the legacy key) changes positions as t/factor.
  const scaled = randomModel("llama", { rope_scaling: { type: "linear", factor: 2.0 } });
  assert.ok(
    compareWithReference(scaled, "llama", {
      ...REAL_CONFIGS.llama,
      rope_scaling: { rope_type: "linear", factor: 2.0 },
    }) < TOLERANCE,
  );
});

test("rope_scaling types other than linear and llama3 are rejected, naming the type", () => {
  for (const type of ["dynamic", "yarn", "longrope"]) {
    assert.throws(
      () => new LlamaForCausalLM({ ...REAL_CONFIGS.llama, rope_scaling: { rope_type: type, factor: 2 } }),
      new RegExp(`rope_scaling type "${type}" is not supported`),
    );
  }
  assert.throws(
    () => new LlamaForCausalLM({ ...REAL_CONFIGS.llama, rope_scaling: { rope_type: "llama3", factor: 8 } }),
    /rope_scaling.low_freq_factor/,
  );
  assert.throws(
    () => new LlamaForCausalLM({ ...REAL_CONFIGS.llama, rope_scaling: "linear" }),
    /"rope_scaling" must be null or an object/,
  );
});

test(`gemma: embeddings × √hidden_size rounded to float32, RMS norm scaled by (1 + w), \
tanh GELU despite hidden_act "gelu"`, () => {
  const model = randomModel("gemma");
  const finalNorm = model.model.norm as tv.nn.RMSNorm;
  let lastBlock: tv.Tensor | null = null;
  const handle = model.model.layers.at(1).addPostHook((_m, _x, y) => void (lastBlock = y));
  const { hiddenStates } = tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]), outputHiddenStates: true }));
  handle.remove();
  const table = model.model.embed_tokens.weight.data;
  const scale = Math.fround(Math.sqrt(32));
  assert.equal(scale, 5.656854152679443);
  IDS.forEach((id, t) => {
    for (let i = 0; i < 32; i++)
      assert.equal(hiddenStates![0].data[t * 32 + i], Math.fround(table[id * 32 + i] * scale));
  });
  const w = finalNorm.weight!.data;
  let worst = 0;
  for (let t = 0; t < IDS.length; t++) {
    const x = Array.from(lastBlock!.data.subarray(t * 32, (t + 1) * 32));
    const inv = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / 32 + 1e-6);
    x.forEach((v, i) => (worst = Math.max(worst, Math.abs(v * inv * (1 + w[i]) - hiddenStates![2].data[t * 32 + i]))));
  }
  assert.ok(worst < 1e-5, `final norm differs from x/rms·(1+w) by ${worst}`);
  assert.equal(model.settings.activation, "gelu_pytorch_tanh");
  assert.equal(model.model.layers.at(0).mlp.act_fn.kind, "gelu_pytorch_tanh");
  // hidden_activation, when given, is what Gemma uses.
  assert.equal(new LlamaForCausalLM({ ...REAL_CONFIGS.gemma, hidden_activation: "gelu" }).settings.activation, "gelu");
  // Tied by default: lm_head.weight is the embedding table.
  assert.equal(model.lm_head.weight, model.model.embed_tokens.weight);
});

test(`gemma2: tanh soft-capping of scores and logits, query_pre_attn_scalar, sandwich norms, \
sliding window on even layers`, (t) => {
  // Small caps and a scalar unlike head_dim, so that each piece moves the logits.
  const overrides = { attn_logit_softcapping: 0.5, final_logit_softcapping: 1.5, query_pre_attn_scalar: 3 };
  const config = { ...REAL_CONFIGS.gemma2, ...overrides };
  const model = randomModel("gemma2", overrides);
  const diff = compareWithReference(model, "gemma2", config);
  assert.ok(diff < TOLERANCE, `differs from the reference by ${diff}`);
  // The reference is sensitive to each piece: dropping any of them moves it far from the model.
  const base = referenceOf("gemma2", config);
  const logits = tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }).logits).data;
  const distance = (r: Reference) =>
    Math.max(
      ...referenceLogits(model, r, IDS)
        .flat()
        .map((e, i) => Math.abs(e - logits[i])),
    );
  const without = {
    attnCap: distance({ ...base, attnCap: null }),
    finalCap: distance({ ...base, finalCap: null }),
    scalar: distance({ ...base, scoreScale: 1 / Math.sqrt(16) }),
    window: distance({ ...base, windows: base.windows.map(() => null) }),
    oddWindows: distance({ ...base, windows: [null, 4, null] }),
  };
  t.diagnostic(`distance without each piece: ${JSON.stringify(without)}`);
  for (const [piece, d] of Object.entries(without)) assert.ok(d > 1e-2, `${piece}: ${d}`);
  // Every logit lies inside the final cap.
  assert.ok(Math.max(...logits.map(Math.abs)) < 1.5);
  assert.deepEqual(model.settings.slidingWindows, [4, null, 4]);
  assert.deepEqual(
    model.model.layers
      .at(0)
      .children()
      .map(([n]) => n),
    [
      "self_attn",
      "mlp",
      "input_layernorm",
      "post_attention_layernorm",
      "pre_feedforward_layernorm",
      "post_feedforward_layernorm",
    ],
  );
});

test("gemma2 and mistral: a sliding window of w hides keys w or more positions back (1-layer models)", () => {
  // With one layer, the logits at position t depend on tokens t−w+1..t only when the layer slides.
  const probe = (type: "gemma2" | "mistral", window: number) => {
    const model = randomModel(type, { num_hidden_layers: 1, sliding_window: window });
    const changed = [...IDS];
    changed[0] = (changed[0] + 1) % VOCAB;
    const [a, b] = [IDS, changed].map((ids) => tv.noGrad(() => model.run({ inputIds: tv.intTensor([ids]) }).logits));
    return IDS.map((_, t) => maxAbsDiff(tv.slice(a, 1, t, t + 1), tv.slice(b, 1, t, t + 1)));
  };
  for (const type of ["gemma2", "mistral"] as const) {
    const moved = probe(type, 3);
    moved.forEach((d, t) =>
      t < 3
        ? assert.ok(d > 1e-4, `${type}: position ${t} should see token 0`)
        : assert.equal(d, 0, `${type}: position ${t} must not see token 0`),
    );
  }
  // Gemma2's layer 1 (odd) attends everywhere.
  const twoLayer = randomModel("gemma2", { num_hidden_layers: 2, sliding_window: 3 });
  assert.deepEqual(twoLayer.settings.slidingWindows, [3, null]);
  // Mistral with "sliding_window": null (v0.2 and later) has full attention.
  assert.deepEqual(randomModel("mistral", { sliding_window: null }).settings.slidingWindows, [null, null]);
});

test("qwen2: q/k/v projections carry biases and o_proj none, checked against the reference", () => {
  const model = randomModel("qwen2");
  const attn = model.model.layers.at(0).self_attn;
  assert.ok(attn.q_proj.bias && attn.k_proj.bias && attn.v_proj.bias);
  assert.equal(attn.o_proj.bias, null);
  // The bias matters: zeroing it moves the logits, and the reference still agrees.
  const before = tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }).logits);
  attn.v_proj.bias!.data.fill(0);
  const after = tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }).logits);
  assert.ok(maxAbsDiff(before, after) > 1e-3);
  assert.ok(compareWithReference(model, "qwen2", REAL_CONFIGS.qwen2) < TOLERANCE);
  // use_sliding_window true is refused rather than guessed.
  assert.throws(
    () => new LlamaForCausalLM({ ...REAL_CONFIGS.qwen2, use_sliding_window: true }),
    /"use_sliding_window": true is not supported for qwen2/,
  );
});

/*
 * What HF transformers does, which this test pins:
 * - models/qwen3/modeling_qwen3.py, Qwen3Attention: q_norm and k_norm are Qwen3RMSNorm(head_dim) ("unlike olmo,
 *   only on the head dim!"), applied as q_norm(q_proj(h).view(..., -1, head_dim)) before apply_rotary_pos_emb.
 * - models/olmo2/modeling_olmo2.py, Olmo2Attention: q_norm = Olmo2RMSNorm(num_attention_heads * head_dim) and
 *   k_norm over num_key_value_heads * head_dim, applied to the whole projection, q_norm(q_proj(h)), before the
 *   view into heads and before rotary.
 * - Olmo2DecoderLayer: no input_layernorm; h = h + post_attention_layernorm(self_attn(h)), then
 *   h = h + post_feedforward_layernorm(mlp(h)) (the norm wraps each sublayer's output inside the residual).
 */
test(`qwen3 and olmo2: q/k RMS norms sit between the projection and rotary, \
per head (Qwen3) or over the full width (OLMo2)`, (t) => {
  const shapes: Record<string, number[][]> = {};
  for (const type of ["qwen3", "olmo2"] as const) {
    const model = randomModel(type);
    const attn = model.model.layers.at(0).self_attn;
    const seen: number[][] = [];
    let projected: tv.Tensor | null = null;
    let normalised: tv.Tensor | null = null;
    const handles = [
      attn.q_proj.addPostHook((_m, _x, y) => void (projected = y)),
      attn.q_norm!.addPreHook((_m, x) => void seen.push([...x.shape])),
      attn.q_norm!.addPostHook((_m, _x, y) => void (normalised = y)),
    ];
    tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }));
    handles.forEach((h) => h.remove());
    shapes[type] = seen;
    // Hand computation of the norm on the projection: per head of 16 (Qwen3) or over all 64/32 features (OLMo2).
    const width = type === "qwen3" ? 16 : projected!.shape[2];
    const w = attn.q_norm!.weight!.data;
    let worst = 0;
    for (let start = 0; start < projected!.size; start += width) {
      const x = Array.from(projected!.data.subarray(start, start + width));
      const inv = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / width + 1e-6);
      x.forEach((v, i) => (worst = Math.max(worst, Math.abs(v * inv * w[i] - normalised!.data[start + i]))));
    }
    assert.ok(worst < 1e-5, `${type}: q_norm differs from the hand computation by ${worst}`);
    assert.ok(compareWithReference(model, type, REAL_CONFIGS[type]) < TOLERANCE);
    // The placement matters: without the norms, or with them after rotary, the logits move.
    const logits = tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }).logits).data;
    const base = referenceOf(type, REAL_CONFIGS[type]);
    for (const variant of [{ qkNorm: "none" as const }, { qkNormAfterRotary: true }]) {
      const d = Math.max(
        ...referenceLogits(model, { ...base, ...variant }, IDS)
          .flat()
          .map((e, i) => Math.abs(e - logits[i])),
      );
      t.diagnostic(`${type} with ${JSON.stringify(variant)}: logits move by ${d.toExponential(2)}`);
      assert.ok(d > 1e-3, `${type} ${JSON.stringify(variant)}: ${d}`);
    }
  }
  assert.deepEqual(shapes.qwen3, [[1, IDS.length, 4, 16]]);
  assert.deepEqual(shapes.olmo2, [[1, IDS.length, 32]]);
  assert.equal(randomModel("olmo2").model.layers.at(0).input_layernorm, null);
  assert.deepEqual(
    randomModel("olmo2")
      .model.layers.at(0)
      .children()
      .map(([n]) => n),
    ["self_attn", "mlp", "post_attention_layernorm", "post_feedforward_layernorm"],
  );
});

test("olmo: LayerNorm without weight or bias, and clip_qkv clamping q, k and v", (t) => {
  const model = randomModel("olmo", { clip_qkv: 0.4 });
  assert.ok(!model.namedParameters().some(([n]) => n.includes("norm")), "OLMo's norms have no parameters");
  // Hand computation of the non-parametric LayerNorm on the final hidden state.
  let lastBlock: tv.Tensor | null = null;
  const handle = model.model.layers.at(1).addPostHook((_m, _x, y) => void (lastBlock = y));
  const { hiddenStates } = tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]), outputHiddenStates: true }));
  handle.remove();
  let worst = 0;
  for (let pos = 0; pos < IDS.length; pos++) {
    const x = Array.from(lastBlock!.data.subarray(pos * 32, (pos + 1) * 32));
    const mean = x.reduce((a, v) => a + v, 0) / 32;
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / 32;
    x.forEach(
      (v, i) =>
        (worst = Math.max(
          worst,
          Math.abs((v - mean) / Math.sqrt(variance + 1e-5) - hiddenStates![2].data[pos * 32 + i]),
        )),
    );
  }
  assert.ok(worst < 1e-5, `LayerNorm differs by ${worst}`);
  const config = { ...REAL_CONFIGS.olmo, clip_qkv: 0.4 };
  assert.ok(compareWithReference(model, "olmo", config) < TOLERANCE);
  const logits = tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }).logits).data;
  const unclipped = Math.max(
    ...referenceLogits(model, { ...referenceOf("olmo", config), clip: null }, IDS)
      .flat()
      .map((e, i) => Math.abs(e - logits[i])),
  );
  t.diagnostic(`clip_qkv 0.4 moves the logits by ${unclipped.toExponential(2)}`);
  assert.ok(unclipped > 1e-2);
  // The q_proj output (pyvene's query_output) is the projection before the clamp, as HF's hook sees it.
  let query: tv.Tensor | null = null;
  const h = model.model.layers.at(0).self_attn.q_proj.addPostHook((_m, _x, y) => void (query = y));
  tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }));
  h.remove();
  assert.ok(Math.max(...query!.data.map(Math.abs)) > 0.4);
});

test("qwen3 and gemma: head_dim from the config, with heads·head_dim ≠ hidden_size in the site map", () => {
  const qwen3 = randomModel("qwen3");
  assert.deepEqual(qwen3.model.layers.at(0).self_attn.q_proj.weight.shape, [64, 32]);
  assert.deepEqual(qwen3.model.layers.at(0).self_attn.o_proj.weight.shape, [32, 64]);
  assert.deepEqual(qwen3.site("query_output", 0), {
    module: "model.layers.0.self_attn.q_proj",
    hook: "output",
    dim: 64,
  });
  assert.deepEqual(qwen3.site("key_output", 0), { module: "model.layers.0.self_attn.k_proj", hook: "output", dim: 32 });
  assert.deepEqual(qwen3.site("head_key_output", 1), {
    module: "model.layers.1.self_attn.k_proj",
    hook: "output",
    dim: 16,
    heads: 2,
  });
  assert.deepEqual(qwen3.site("attention_value_output", 1), {
    module: "model.layers.1.self_attn.o_proj",
    hook: "input",
    dim: 64,
  });
  assert.deepEqual(qwen3.site("head_attention_value_output", 1), {
    module: "model.layers.1.self_attn.o_proj",
    hook: "input",
    dim: 16,
    heads: 4,
  });
  const gemma = randomModel("gemma");
  assert.deepEqual(gemma.site("head_value_output", 0), {
    module: "model.layers.0.self_attn.v_proj",
    hook: "output",
    dim: 16,
    heads: 1,
  });
  assert.deepEqual(gemma.site("mlp_activation", 0), { module: "model.layers.0.mlp.act_fn", hook: "output", dim: 256 });
});

test("config errors name the field and the expected form", () => {
  assert.throws(
    () => new LlamaForCausalLM({ ...REAL_CONFIGS.mistral, num_key_value_heads: 3 }),
    /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/,
  );
  assert.throws(
    () => new LlamaForCausalLM({ ...REAL_CONFIGS.mistral, hidden_size: undefined }),
    /"hidden_size" is required/,
  );
  assert.throws(
    () => new LlamaForCausalLM({ ...REAL_CONFIGS.mistral, hidden_size: 30 }),
    /hidden_size \(30\) must be a multiple of num_attention_heads \(4\)/,
  );
  assert.throws(
    () => new LlamaForCausalLM({ ...REAL_CONFIGS.gemma2, attn_logit_softcapping: -1 }),
    /"attn_logit_softcapping" must be a positive number or null/,
  );
  assert.throws(
    () => new LlamaForCausalLM({ ...REAL_CONFIGS.llama, model_type: "bert", architectures: ["BertModel"] }),
    /is not a Llama-family model/,
  );
  // The architecture decides when model_type is missing.
  assert.equal(new LlamaForCausalLM({ ...REAL_CONFIGS.olmo2, model_type: undefined }).modelType, "olmo2");
});

// ------------------------------------------------------------------
// HF-layout folders: config.json with the real fields, random weights, loadPretrained

test(`every model type: an HF-layout folder loads strictly through loadPretrained, runs, \
and generates the same with and without the cache`, async (t) => {
  const root = await mkdtemp(join(tmpdir(), "tsvene-llama-"));
  try {
    for (const type of TYPES) {
      const source = randomModel(type, {}, 11);
      const config = REAL_CONFIGS[type];
      const folder = join(root, type);
      const weights = new Map(source.namedParameters());
      await tv.saveCheckpoint(folder, weights, {
        config: config as tv.JsonObject,
        generationConfig: { eos_token_id: config.eos_token_id as number },
      });

      const { model } = await tv.loadPretrained(folder);
      assert.ok(model instanceof LlamaForCausalLM, type);
      assert.equal(tv.familyOf(config).name, "llama");
      assert.equal((model as LlamaForCausalLM).modelType, type);
      // Strict: the saved keys are exactly the model's parameters (a tied lm_head is stored once, as HF does).
      assert.deepEqual(new Set(model.namedParameters().map(([n]) => n)), new Set(weights.keys()), type);
      assert.equal(
        weights.has("lm_head.weight"),
        !(config.tie_word_embeddings ?? ["gemma", "gemma2"].includes(type)),
        `${type}: lm_head stored iff untied`,
      );
      const extra = new Map(weights);
      extra.set("model.layers.0.self_attn.extra.weight", tv.zeros([1]));
      assert.throws(() => model.loadStateDict(extra), /unexpected: model.layers.0.self_attn.extra.weight/);
      const missing = new Map(weights);
      missing.delete("model.layers.1.mlp.up_proj.weight");
      assert.throws(() => model.loadStateDict(missing), /missing: model.layers.1.mlp.up_proj.weight/);

      const ids = tv.intTensor([IDS]);
      const logits = tv.noGrad(() => model.run({ inputIds: ids }).logits);
      assert.equal(
        maxAbsDiff(
          logits,
          tv.noGrad(() => source.run({ inputIds: ids }).logits),
        ),
        0,
        `${type}: loaded weights`,
      );
      assert.ok(compareWithReference(model as LlamaForCausalLM, type, config) < TOLERANCE, `${type}: reference`);

      // Cached generation equals uncached, on a batch with a left-padded row.
      const prompts = tv.intTensor([
        [0, 0, 9, 21, 4],
        [7, 30, 2, 19, 44],
      ]);
      const mask = tv.intTensor([
        [0, 0, 1, 1, 1],
        [1, 1, 1, 1, 1],
      ]);
      const options = { maxNewTokens: 7, attentionMask: mask, eosTokenId: config.eos_token_id as number };
      const cached = tv.generate(model, prompts, { ...options, useCache: true });
      const uncached = tv.generate(model, prompts, { ...options, useCache: false });
      assert.deepEqual([...cached.sequences.data], [...uncached.sequences.data], `${type}: sequences`);
      const scoreDiff = Math.max(...cached.scores.map((s, i) => maxAbsDiff(s, uncached.scores[i])));
      assert.ok(scoreDiff < 1e-5, `${type}: scores differ by ${scoreDiff}`);
      t.diagnostic(
        `${type}: ${weights.size} tensors, cached vs uncached scores ${scoreDiff.toExponential(2)}, ` +
          `new tokens ${[...cached.sequences.data].slice(5, 12).join(" ")}`,
      );
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("old Llama checkpoints with rotary inv_freq buffers load (the buffers are rebuilt from the config)", () => {
  const model = randomModel("llama");
  const tensors = new Map<string, tv.Tensor | tv.IntTensor>(model.namedParameters());
  tensors.set("model.layers.0.self_attn.rotary_emb.inv_freq", tv.zeros([4]));
  const adapted = llamaFamily.adaptCheckpoint!(tensors, model);
  assert.ok(!adapted.has("model.layers.0.self_attn.rotary_emb.inv_freq"));
  model.loadStateDict(adapted);
  assert.deepEqual(llamaFamily.modelTypes, ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "olmo2"]);
  assert.ok(
    llamaFamily.architectures.includes("Olmo2ForCausalLM") && llamaFamily.architectures.includes("Qwen3ForCausalLM"),
  );
});
