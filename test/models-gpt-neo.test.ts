/**
 * GPT-Neo has no fixture: the model is checked against a naive element-by-element forward pass
 * written here from the architecture's definition (unscaled scores, global and local causal
 * attention, [out, in] Linear weights, gelu_new, tied head), and for the KV cache, left padding,
 * config parsing, the site map and loading an HF-layout folder with a real GPT-Neo config.json.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { GPTNeoForCausalLM, gptNeoFamily } from "../src/models/gpt-neo.js";
import { maxAbsDiff } from "./support/fixtures.js";
import { checkLeftPaddedLogits, checkSiteTable, gptLayoutRows } from "./support/model-checks.js";

const scratch = await mkdtemp(join(tmpdir(), "tsvene-gpt-neo-"));
after(() => rm(scratch, { recursive: true, force: true }));

/** EleutherAI/gpt-neo-125M's config.json, scaled down (hidden 768 → 16, 12 layers → 4, window 256 → 3, …). */
const CONFIG = {
  activation_function: "gelu_new",
  architectures: ["GPTNeoForCausalLM"],
  attention_dropout: 0,
  attention_layers: ["global", "local", "global", "local"],
  attention_types: [[["global", "local"], 2]],
  bos_token_id: 63,
  embed_dropout: 0,
  eos_token_id: 63,
  gradient_checkpointing: false,
  hidden_size: 16,
  initializer_range: 0.02,
  intermediate_size: null,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 32,
  model_type: "gpt_neo",
  num_heads: 4,
  num_layers: 4,
  resid_dropout: 0,
  summary_activation: null,
  summary_first_dropout: 0.1,
  summary_proj_to_labels: true,
  summary_type: "cls_index",
  summary_use_proj: true,
  transformers_version: "4.9.0.dev0",
  use_cache: true,
  vocab_size: 64,
  window_size: 3,
};

/**
 * A model with every parameter drawn at random (norm weights around 1), large enough that attention
 * is far from uniform.
 */
function randomModel(config: Record<string, unknown> = CONFIG, seed = 11): GPTNeoForCausalLM {
  const m = gptNeoFamily.create(config) as GPTNeoForCausalLM;
  const g = new tv.Generator(seed);
  for (const [name, p] of m.namedParameters()) {
    const isNormWeight = /ln_\d\.weight|ln_f\.weight/.test(name);
    const draw = tv.randn(p.shape, { std: isNormWeight ? 0.2 : 0.5, generator: g });
    p.data.set(isNormWeight ? tv.add(draw, 1).data : draw.data);
  }
  return m;
}

type Matrix = number[][];

/** The weights of a model as plain nested arrays by parameter name. */
function arrays(m: GPTNeoForCausalLM): (name: string) => Matrix {
  const params = new Map(m.namedParameters());
  return (name) => {
    const p = params.get(name);
    assert.ok(p, `parameter ${name}`);
    const cols = p.shape.length === 2 ? p.shape[1] : p.shape[0];
    return Array.from({ length: p.size / cols }, (_, r) => [...p.data.subarray(r * cols, (r + 1) * cols)]);
  };
}

/** The naive forward: logits [T][V] for one sequence, and each layer's attention probabilities [H][T][T]. */
function naiveForward(
  m: GPTNeoForCausalLM,
  ids: number[],
  options: { scale?: number; window?: number | null } = {},
): { logits: Matrix; probs: number[][][][] } {
  const w = arrays(m);
  const s = m.settings;
  const heads = s.numHeads;
  const d = s.hiddenSize / heads;
  const matvec = (W: Matrix, x: number[], b?: number[]) =>
    W.map((row, o) => row.reduce((acc, wi, i) => acc + wi * x[i], b ? b[o] : 0));
  const layerNorm = (x: number[], g: number[], b: number[]) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + s.normEps)) * g[i] + b[i]);
  };
  const geluNew = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const T = ids.length;
  let h = ids.map((id, t) => w("transformer.wte.weight")[id].map((v, i) => v + w("transformer.wpe.weight")[t][i]));
  const probs: number[][][][] = [];
  for (let layer = 0; layer < s.numLayers; layer++) {
    const p = `transformer.h.${layer}`;
    const window =
      options.window === null
        ? undefined
        : s.attentionLayers[layer] === "local"
          ? (options.window ?? s.windowSize)
          : undefined;
    const a = h.map((x) => layerNorm(x, w(`${p}.ln_1.weight`)[0], w(`${p}.ln_1.bias`)[0]));
    const q = a.map((x) => matvec(w(`${p}.attn.attention.q_proj.weight`), x));
    const k = a.map((x) => matvec(w(`${p}.attn.attention.k_proj.weight`), x));
    const v = a.map((x) => matvec(w(`${p}.attn.attention.v_proj.weight`), x));
    const layerProbs = Array.from({ length: heads }, (_, head) =>
      Array.from({ length: T }, (_, i) => {
        const visible = (j: number) => j <= i && (window === undefined || i - j < window);
        const scores = Array.from({ length: T }, (_, j) => {
          let dot = 0;
          for (let c = head * d; c < (head + 1) * d; c++) dot += q[i][c] * k[j][c];
          return dot * (options.scale ?? 1);
        });
        const max = Math.max(...scores.filter((_, j) => visible(j)));
        const exps = scores.map((sc, j) => (visible(j) ? Math.exp(sc - max) : 0));
        const sum = exps.reduce((acc, e) => acc + e, 0);
        return exps.map((e) => e / sum);
      }),
    );
    probs.push(layerProbs);
    const mixed = Array.from({ length: T }, (_, i) =>
      Array.from({ length: s.hiddenSize }, (_, c) => {
        const head = Math.floor(c / d);
        return layerProbs[head][i].reduce((acc, pr, j) => acc + pr * v[j][c], 0);
      }),
    );
    const attnOut = mixed.map((x) =>
      matvec(w(`${p}.attn.attention.out_proj.weight`), x, w(`${p}.attn.attention.out_proj.bias`)[0]),
    );
    h = h.map((x, t) => x.map((xi, i) => xi + attnOut[t][i]));
    const mlpOut = h.map((x) => {
      const n = layerNorm(x, w(`${p}.ln_2.weight`)[0], w(`${p}.ln_2.bias`)[0]);
      const inner = matvec(w(`${p}.mlp.c_fc.weight`), n, w(`${p}.mlp.c_fc.bias`)[0]).map(geluNew);
      return matvec(w(`${p}.mlp.c_proj.weight`), inner, w(`${p}.mlp.c_proj.bias`)[0]);
    });
    h = h.map((x, t) => x.map((xi, i) => xi + mlpOut[t][i]));
  }
  const final = h.map((x) => layerNorm(x, w("transformer.ln_f.weight")[0], w("transformer.ln_f.bias")[0]));
  return { logits: final.map((x) => matvec(w("transformer.wte.weight"), x)), probs };
}

const IDS = [5, 17, 42, 3, 3, 60, 8];

describe("GPT-Neo against a naive forward pass", () => {
  const model = randomModel();
  const naive = naiveForward(model, IDS);

  it("gives the naive logits (unscaled scores, local window, [out, in] weights, tied head)", (t) => {
    const logits = tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }).logits);
    const d = maxAbsDiff(logits, tv.tensor([naive.logits]));
    assert.ok(d < 1e-4, `logits differ by ${d}`);
    // The check has teeth: the two readings GPT-Neo does NOT have move the logits far more.
    const scaledDiff = maxAbsDiff(tv.tensor([naiveForward(model, IDS, { scale: 1 / Math.sqrt(4) }).logits]), logits);
    const noWindowDiff = maxAbsDiff(tv.tensor([naiveForward(model, IDS, { window: null }).logits]), logits);
    assert.ok(scaledDiff > 1e-2 && noWindowDiff > 1e-2);
    t.diagnostic(
      `naive: ${d.toExponential(2)}; naive with 1/√d: ${scaledDiff.toExponential(2)}; ` +
        `naive without the window: ${noWindowDiff.toExponential(2)}`,
    );
  });

  it("local layers see the query and the window_size − 1 keys before it; global layers every earlier key", () => {
    const seen: tv.Tensor[] = [];
    const handles = model.transformer.h.items.map((block) =>
      block.attn.attention.attn_dropout.addPreHook((_m, x) => void seen.push(x)),
    );
    tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }));
    handles.forEach((h) => h.remove());
    assert.equal(seen.length, 4);
    const T = IDS.length;
    seen.forEach((probs, layer) => {
      assert.deepEqual(probs.shape, [1, 4, T, T]);
      const local = layer % 2 === 1;
      for (let head = 0; head < 4; head++) {
        for (let i = 0; i < T; i++) {
          for (let j = 0; j < T; j++) {
            const p = probs.data[(head * T + i) * T + j];
            const visible = j <= i && (!local || i - j < 3);
            if (visible) assert.ok(p > 0, `layer ${layer} head ${head}: query ${i} must see key ${j}`);
            else assert.equal(p, 0, `layer ${layer} head ${head}: query ${i} must not see key ${j}`);
          }
        }
      }
      assert.ok(maxAbsDiff(tv.squeeze(probs, 0), tv.tensor(naive.probs[layer])) < 1e-5, `layer ${layer} probabilities`);
    });
  });

  it("scores are q·kᵀ without 1/√d: attention_weight = softmax of the hooked q_proj and k_proj outputs", () => {
    const attention = model.transformer.h.at(0).attn.attention;
    let q: tv.Tensor | undefined;
    let k: tv.Tensor | undefined;
    let probs: tv.Tensor | undefined;
    const handles = [
      attention.q_proj.addPostHook((_m, _x, y) => void (q = y)),
      attention.k_proj.addPostHook((_m, _x, y) => void (k = y)),
      attention.attn_dropout.addPreHook((_m, x) => void (probs = x)),
    ];
    tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }));
    handles.forEach((h) => h.remove());
    const scores = tv.matmul(tv.nn.splitHeads(q!, 4), tv.transpose(tv.nn.splitHeads(k!, 4), -1, -2));
    const expected = tv.softmax(tv.add(scores, tv.nn.additiveMask(null, 1, IDS.length, IDS.length)), -1);
    assert.ok(maxAbsDiff(probs!, expected) < 1e-6);
  });
});

describe("GPT-Neo cache, padding and generation", () => {
  const model = randomModel();
  const long = [9, 1, 33, 33, 7, 50, 2, 11, 40];

  it("KV-cache steps past the local window give the uncached forward's positions", () => {
    tv.noGrad(() => {
      const full = model.run({ inputIds: tv.intTensor([long]) }).logits;
      const cache = model.newCache();
      model.run({ inputIds: tv.intTensor([long.slice(0, 4)]), cache });
      for (let t = 4; t < long.length; t++) {
        const step = model.run({ inputIds: tv.intTensor([[long[t]]]), cache }).logits;
        assert.ok(maxAbsDiff(step, tv.slice(full, 1, t, t + 1)) < 1e-5, `position ${t}`);
      }
      assert.equal(cache.length, long.length);
    });
  });

  it("a left-padded row gives the unpadded row's logits at its real positions (mask-based positions)", () => {
    const short = long.slice(0, 6);
    const { ids: batch, mask, pad } = checkLeftPaddedLogits(model, short, long, 63, 0);
    const withCache = tv.generate(model, batch, { maxNewTokens: 6, attentionMask: mask, eosTokenId: 63 });
    const without = tv.generate(model, batch, {
      maxNewTokens: 6,
      attentionMask: mask,
      eosTokenId: 63,
      useCache: false,
    });
    assert.deepEqual([...withCache.sequences.data], [...without.sequences.data]);
    withCache.scores.forEach((s, i) => assert.ok(maxAbsDiff(s, without.scores[i]) < 1e-5));
    const alone = tv.generate(model, tv.intTensor([short]), { maxNewTokens: 6, eosTokenId: 63 });
    assert.deepEqual(
      [...withCache.sequences.data.subarray(pad, long.length + alone.sequences.shape[1] - short.length)],
      [...alone.sequences.data],
    );
  });
});

describe("GPT-Neo config", () => {
  it("expands attention_types when attention_layers is absent", () => {
    const { attention_layers: _, ...rest } = CONFIG;
    const m = gptNeoFamily.create({
      ...rest,
      num_layers: 6,
      attention_types: [
        [["global"], 2],
        [["local", "global"], 2],
      ],
    }) as GPTNeoForCausalLM;
    assert.deepEqual(m.settings.attentionLayers, ["global", "global", "local", "global", "local", "global"]);
    assert.equal(m.settings.intermediateSize, 64, "intermediate_size null is 4·hidden_size");
  });

  it("rejects attention layer lists that do not fit, naming the fields", () => {
    assert.throws(() => gptNeoFamily.create({ ...CONFIG, num_layers: 3 }), /list 4 layers .* but "num_layers" is 3/);
    assert.throws(
      () => gptNeoFamily.create({ ...CONFIG, attention_layers: ["global", "sparse", "global", "local"] }),
      /attention layer type "sparse" is not supported \(expected "global" or "local"\)/,
    );
    const { attention_layers: _, ...rest } = CONFIG;
    assert.throws(
      () => gptNeoFamily.create({ ...rest, attention_types: [["global", 4]] }),
      /"attention_types" must be \[\[\["global", "local"\], repeats\], \.\.\.\]/,
    );
    assert.throws(
      () => gptNeoFamily.create({ ...CONFIG, num_heads: 5 }),
      /"hidden_size" \(16\) must be divisible by "num_heads" \(5\)/,
    );
    assert.throws(() => gptNeoFamily.create({ ...CONFIG, window_size: 0 }), /"window_size" must be a positive integer/);
  });
});

describe("GPT-Neo site map and module tree", () => {
  const model = randomModel();

  it("registers HF's GPTNeoForCausalLM parameter names, with lm_head tied to wte", () => {
    const names = model.namedParameters().map(([n]) => n);
    assert.deepEqual(
      names.filter((n) => n.startsWith("transformer.h.1.")),
      [
        "transformer.h.1.ln_1.weight",
        "transformer.h.1.ln_1.bias",
        "transformer.h.1.attn.attention.k_proj.weight",
        "transformer.h.1.attn.attention.v_proj.weight",
        "transformer.h.1.attn.attention.q_proj.weight",
        "transformer.h.1.attn.attention.out_proj.weight",
        "transformer.h.1.attn.attention.out_proj.bias",
        "transformer.h.1.ln_2.weight",
        "transformer.h.1.ln_2.bias",
        "transformer.h.1.mlp.c_fc.weight",
        "transformer.h.1.mlp.c_fc.bias",
        "transformer.h.1.mlp.c_proj.weight",
        "transformer.h.1.mlp.c_proj.bias",
      ],
    );
    assert.deepEqual(model.transformer.h.at(0).mlp.c_fc.weight.shape, [64, 16], "nn.Linear weights are [out, in]");
    assert.equal(model.lm_head.weight, model.transformer.wte.weight);
    assert.ok(!names.includes("lm_head.weight"));
  });

  it("maps pyvene's components to HF's real module paths, with dims from the config", () => {
    const heads = { heads: 4 };
    checkSiteTable(model, "transformer.h.", 2, {
      ...gptLayoutRows(16, 64),
      attention_value_output: [".attn.attention.out_proj", "input", 16],
      head_attention_value_output: [".attn.attention.out_proj", "input", 4, heads],
      attention_output: [".attn", "output", 16],
      attention_input: [".attn", "input", 16],
      query_output: [".attn.attention.q_proj", "output", 16],
      key_output: [".attn.attention.k_proj", "output", 16],
      value_output: [".attn.attention.v_proj", "output", 16],
      head_query_output: [".attn.attention.q_proj", "output", 4, heads],
      head_key_output: [".attn.attention.k_proj", "output", 4, heads],
      head_value_output: [".attn.attention.v_proj", "output", 4, heads],
    });
  });

  it("attention_output is the attention's contribution to the residual stream", () => {
    const block = model.transformer.h.at(1);
    let input: tv.Tensor | undefined;
    let attnOut: tv.Tensor | undefined;
    let mlpIn: tv.Tensor | undefined;
    const handles = [
      block.addPreHook((_m, x) => void (input = x)),
      block.attn.addPostHook((_m, _x, y) => void (attnOut = y)),
      block.mlp.addPreHook((_m, x) => void (mlpIn = x)),
    ];
    tv.noGrad(() => model.run({ inputIds: tv.intTensor([IDS]) }));
    handles.forEach((h) => h.remove());
    assert.ok(
      maxAbsDiff(
        tv.noGrad(() => block.ln_2.call(tv.add(input!, attnOut!))),
        mlpIn!,
      ) < 1e-6,
    );
  });
});

describe("GPT-Neo loadPretrained", () => {
  const model = randomModel();
  const ids = tv.intTensor([IDS]);
  const expected = tv.noGrad(() => model.run({ inputIds: ids }).logits);

  it("loads an HF-layout folder with a real GPT-Neo config.json: picks the family, loads strictly, runs", async () => {
    const folder = join(scratch, "gpt-neo-tiny");
    await tv.saveCheckpoint(folder, new Map(model.namedParameters()), {
      config: CONFIG,
      generationConfig: { _from_model_config: true, bos_token_id: 63, eos_token_id: 63 },
    });
    const { model: loaded, config, generationConfig } = await tv.loadPretrained(folder);
    assert.ok(loaded instanceof GPTNeoForCausalLM);
    assert.equal(loaded.family, "gpt_neo");
    assert.equal(config.window_size, 3);
    assert.equal(generationConfig?.eos_token_id, 63);
    assert.equal(
      maxAbsDiff(
        tv.noGrad(() => loaded.run({ inputIds: ids }).logits),
        expected,
      ),
      0,
    );
  });

  it("loads GPTNeoModel-style names and drops the causal buffers older checkpoints stored", async () => {
    const tensors = new Map<string, tv.Tensor | tv.IntTensor>();
    for (const [name, p] of model.namedParameters()) tensors.set(name.replace(/^transformer\./, ""), p);
    const positions = CONFIG.max_position_embeddings;
    for (let layer = 0; layer < 4; layer++) {
      tensors.set(`h.${layer}.attn.attention.bias`, tv.ones([1, 1, positions, positions]));
      tensors.set(`h.${layer}.attn.attention.masked_bias`, tv.tensor(-1e9));
    }
    tensors.set("lm_head.weight", model.transformer.wte.weight);
    const folder = join(scratch, "gpt-neo-model-layout");
    await tv.saveCheckpoint(folder, tensors, { config: { ...CONFIG, architectures: ["GPTNeoModel"] } });
    const { model: loaded } = await tv.loadPretrained(folder);
    assert.equal(
      maxAbsDiff(
        tv.noGrad(() => loaded.run({ inputIds: ids }).logits),
        expected,
      ),
      0,
    );
  });

  it("rejects a folder with a wrongly shaped weight, naming it", async () => {
    const tensors = new Map(model.namedParameters());
    tensors.set("transformer.h.0.attn.attention.q_proj.weight", tv.zeros([16, 8]));
    const folder = join(scratch, "gpt-neo-broken");
    await tv.saveCheckpoint(folder, tensors, { config: CONFIG });
    await assert.rejects(
      tv.loadPretrained(folder),
      /transformer\.h\.0\.attn\.attention\.q_proj\.weight \(\[16, 8\] given, \[16, 16\] expected\)/,
    );
  });
});
