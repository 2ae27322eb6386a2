/**
 * GPT-OSS, as HF transformers implements it (models/gpt_oss, eager attention): a Llama-style
 * rotary pre-norm decoder whose MLP is a mixture of experts.
 *
 *   h = x + self_attn(input_layernorm(x))        q/k/v/o with biases; GQA; one learned sink per head
 *   y = h + mlp(post_attention_layernorm(h))     mlp = experts weighted by the router's top k
 *
 * Attention: scores·head_dim^−½ plus the mask, joined by the head's sink logit as one more
 * column; the softmax runs over all of them and the sink's column is dropped, so a head may give
 * its query less than full weight. Layers listed as "sliding_attention" see only the last
 * `sliding_window` positions.
 *
 * Router: logits = Linear(hidden → experts); the top k logits per token, softmaxed among
 * themselves, weight their experts (the others get 0). Expert e: gate_up = x·gate_up_proj[e] + b
 * with gate and up interleaved (even and odd columns), gate ≤ limit, |up| ≤ limit,
 * out = ((up + 1)·gate·σ(alpha·gate))·down_proj[e] + b. Every expert runs on every token and the
 * zero weights drop the unchosen, as HF's inference path does.
 *
 * pyvene's sites add router_input/router_output (the router's logits [B, T, experts]: tsvene
 * routes from this output, so a write there changes the routing) and expert_input/expert_output.
 */
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";
import { IntTensor } from "../tensor/index.js";
import { Container, Module, ModuleList, type AnyModule } from "../nn/module.js";
import { Embedding, Linear, RMSNorm } from "../nn/layers.js";
import { type KeyValueCache, mergeHeads, repeatKeyValue, splitHeads } from "../nn/attention.js";
import { additiveMask } from "../nn/masks.js";
import { TiedLinear } from "../nn/tied.js";
import { applyRotary, rotaryTablesFromFrequencies } from "../nn/rope.js";
import type { HFConfig } from "./config.js";
import { DecoderModel, type PassInputs } from "./decoder.js";
import { gptOssSettings, type GptOssSettings } from "./gpt-oss-settings.js";
import type { ModelFamily } from "./model.js";
import { layerSites, type SiteMap } from "./sites.js";

/** Per-call state every layer reads. */
interface LayerContext {
  readonly cos: Tensor;
  readonly sin: Tensor;
  /** The additive mask [B, 1, T, past+T] for a sliding window, or full causal for null. */
  readonly mask: (slidingWindow: number | null) => Tensor;
  readonly cache: KeyValueCache | null;
}

class GptOssAttention extends Module<Tensor, LayerContext> {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  /** One logit per head that competes in the softmax and attends to nothing. */
  readonly sinks: Tensor;

  constructor(
    private readonly s: GptOssSettings,
    private readonly layer: number,
  ) {
    super();
    const qWidth = s.numHeads * s.headDim;
    const kvWidth = s.numKeyValueHeads * s.headDim;
    const bias = s.attentionBias;
    this.q_proj = this.module("q_proj", new Linear(s.hiddenSize, qWidth, { bias }));
    this.k_proj = this.module("k_proj", new Linear(s.hiddenSize, kvWidth, { bias }));
    this.v_proj = this.module("v_proj", new Linear(s.hiddenSize, kvWidth, { bias }));
    this.o_proj = this.module("o_proj", new Linear(qWidth, s.hiddenSize, { bias }));
    this.sinks = this.parameter("sinks", tv.zeros([s.numHeads]));
  }

  protected forward(x: Tensor, ctx: LayerContext): Tensor {
    const s = this.s;
    const q = applyRotary(splitHeads(this.q_proj.call(x), s.numHeads), ctx.cos, ctx.sin);
    let k = applyRotary(splitHeads(this.k_proj.call(x), s.numKeyValueHeads), ctx.cos, ctx.sin);
    let v = splitHeads(this.v_proj.call(x), s.numKeyValueHeads);
    if (ctx.cache) ({ key: k, value: v } = ctx.cache.update(this.layer, k, v));

    const groups = s.numHeads / s.numKeyValueHeads;
    const raw = tv.matmul(q, tv.transpose(repeatKeyValue(k, groups)));
    const scores = tv.add(tv.mul(raw, s.headDim ** -0.5), ctx.mask(s.slidingWindows[this.layer]));
    const [b, heads, t, keys] = scores.shape;
    const sinks = tv.expand(tv.reshape(this.sinks, [1, heads, 1, 1]), [b, heads, t, 1]);
    const weights = tv.slice(tv.softmax(tv.concat([scores, sinks], -1), -1), -1, 0, keys);
    return this.o_proj.call(mergeHeads(tv.matmul(weights, repeatKeyValue(v, groups))));
  }
}

/**
 * The top `k` logits of each token softmaxed among themselves, scattered into dense weights
 * [B, T, experts] (0 for the experts not chosen). Ties go to the lower expert index.
 */
function topKWeights(logits: Tensor, k: number): Tensor {
  const experts = logits.shape[logits.rank - 1];
  const tokens = logits.size / experts;
  const flat = tv.reshape(logits, [tokens, experts]);
  const chosen = new Int32Array(tokens * k);
  const order = Array.from({ length: experts }, (_, e) => e);
  for (let n = 0; n < tokens; n++) {
    const row = flat.data.subarray(n * experts, (n + 1) * experts);
    const ranked = [...order].sort((a, c) => row[c] - row[a] || a - c);
    chosen.set(ranked.slice(0, k), n * k);
  }
  const index = new IntTensor(chosen, [tokens, k]);
  const weights = tv.softmax(tv.gatherAt(flat, 1, index), -1);
  return tv.reshape(tv.writeAt(tv.zeros([tokens, experts]), 1, index, weights), logits.shape);
}

/** The experts, all at once: parameters [E, …] as HF stores them (x·W layout, gate/up interleaved). */
class GptOssExperts extends Module<Tensor, Tensor> {
  readonly gate_up_proj: Tensor;
  readonly gate_up_proj_bias: Tensor;
  readonly down_proj: Tensor;
  readonly down_proj_bias: Tensor;

  constructor(private readonly s: GptOssSettings) {
    super();
    const [e, d, inner] = [s.numExperts, s.hiddenSize, s.intermediateSize];
    this.gate_up_proj = this.parameter("gate_up_proj", tv.zeros([e, d, 2 * inner]));
    this.gate_up_proj_bias = this.parameter("gate_up_proj_bias", tv.zeros([e, 2 * inner]));
    this.down_proj = this.parameter("down_proj", tv.zeros([e, inner, d]));
    this.down_proj_bias = this.parameter("down_proj_bias", tv.zeros([e, d]));
  }

  /** x [B, T, D] and the routing weights [B, T, E] → Σₑ weightₑ·expertₑ(x) [B, T, D]. */
  protected forward(x: Tensor, routing: Tensor): Tensor {
    const { numExperts: e, intermediateSize: inner, swigluLimit: limit, swigluAlpha: alpha } = this.s;
    const [b, t, d] = x.shape;
    const tokens = tv.reshape(x, [1, b * t, d]);
    const gateUp = tv.add(tv.matmul(tokens, this.gate_up_proj), tv.unsqueeze(this.gate_up_proj_bias, 1));
    const [gateColumn, upColumn] = tv.split(tv.reshape(gateUp, [e, b * t, inner, 2]), 1, -1);
    const gate = tv.clamp(tv.squeeze(gateColumn, -1), undefined, limit);
    const up = tv.clamp(tv.squeeze(upColumn, -1), -limit, limit);
    const glu = tv.mul(gate, tv.sigmoid(tv.mul(gate, alpha)));
    const out = tv.add(tv.matmul(tv.mul(tv.add(up, 1), glu), this.down_proj), tv.unsqueeze(this.down_proj_bias, 1));
    const perExpert = tv.unsqueeze(tv.transpose(tv.reshape(routing, [b * t, e])), -1);
    return tv.reshape(tv.sum(tv.mul(out, perExpert), 0), [b, t, d]);
  }
}

class GptOssMLP extends Module {
  readonly router: Linear;
  readonly experts: GptOssExperts;

  constructor(private readonly s: GptOssSettings) {
    super();
    this.router = this.module("router", new Linear(s.hiddenSize, s.numExperts, { bias: true }));
    this.experts = this.module("experts", new GptOssExperts(s));
  }

  protected forward(x: Tensor): Tensor {
    return this.experts.call(x, topKWeights(this.router.call(x), this.s.expertsPerToken));
  }
}

class GptOssDecoderLayer extends Module<Tensor, LayerContext> {
  readonly self_attn: GptOssAttention;
  readonly mlp: GptOssMLP;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;

  constructor(s: GptOssSettings, layer: number) {
    super();
    this.self_attn = this.module("self_attn", new GptOssAttention(s, layer));
    this.mlp = this.module("mlp", new GptOssMLP(s));
    this.input_layernorm = this.module("input_layernorm", new RMSNorm(s.hiddenSize, s.normEps));
    this.post_attention_layernorm = this.module("post_attention_layernorm", new RMSNorm(s.hiddenSize, s.normEps));
  }

  protected forward(x: Tensor, ctx: LayerContext): Tensor {
    const h = tv.add(x, this.self_attn.call(this.input_layernorm.call(x), ctx));
    return tv.add(h, this.mlp.call(this.post_attention_layernorm.call(h)));
  }
}

/** HF's GptOssModel: the embeddings, layers and final norm, which the LM runs. */
class GptOssModel extends Container {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<GptOssDecoderLayer>;
  readonly norm: RMSNorm;

  constructor(s: GptOssSettings) {
    super();
    this.embed_tokens = this.module("embed_tokens", new Embedding(s.vocabSize, s.hiddenSize));
    this.layers = this.module(
      "layers",
      new ModuleList(Array.from({ length: s.numLayers }, (_, i) => new GptOssDecoderLayer(s, i))),
    );
    this.norm = this.module("norm", new RMSNorm(s.hiddenSize, s.normEps));
  }
}

/**
 * pyvene's GPT-OSS site map (spec §7), with widths from the projections' real shapes (pyvene's
 * table says hidden_size/heads, which is not head_dim for GPT-OSS). It has no mlp_activation.
 */
function gptOssSites(s: GptOssSettings): SiteMap {
  const at = layerSites("model.layers");
  const d = s.hiddenSize;
  return {
    block_input: at("", "input", d),
    block_output: at("", "output", d),
    mlp_input: at(".mlp", "input", d),
    mlp_output: at(".mlp", "output", d),
    router_input: at(".mlp.router", "input", d),
    router_output: at(".mlp.router", "output", s.numExperts),
    expert_input: at(".mlp.experts", "input", d),
    expert_output: at(".mlp.experts", "output", d),
    attention_input: at(".self_attn", "input", d),
    attention_output: at(".self_attn", "output", d),
    attention_value_output: at(".self_attn.o_proj", "input", s.numHeads * s.headDim),
    head_attention_value_output: at(".self_attn.o_proj", "input", s.headDim, s.numHeads),
    query_output: at(".self_attn.q_proj", "output", s.numHeads * s.headDim),
    key_output: at(".self_attn.k_proj", "output", s.numKeyValueHeads * s.headDim),
    value_output: at(".self_attn.v_proj", "output", s.numKeyValueHeads * s.headDim),
    head_query_output: at(".self_attn.q_proj", "output", s.headDim, s.numHeads),
    head_key_output: at(".self_attn.k_proj", "output", s.headDim, s.numKeyValueHeads),
    head_value_output: at(".self_attn.v_proj", "output", s.headDim, s.numKeyValueHeads),
  };
}

/** GptOssForCausalLM: `model.*` and `lm_head`, as HF names them, run by the decoder base. */
export class GptOssForCausalLM extends DecoderModel<LayerContext> {
  readonly family = "gpt_oss";
  readonly settings: GptOssSettings;
  readonly sites: SiteMap;
  readonly model: GptOssModel;
  readonly lm_head: Linear | TiedLinear;

  constructor(readonly config: HFConfig) {
    super();
    const s = (this.settings = gptOssSettings(config));
    this.sites = gptOssSites(s);
    this.model = this.module("model", new GptOssModel(s));
    this.lm_head = this.module(
      "lm_head",
      s.tieWordEmbeddings
        ? new TiedLinear(this.model.embed_tokens.weight)
        : new Linear(s.hiddenSize, s.vocabSize, { bias: false }),
    );
  }

  protected get tokenEmbedding(): Embedding {
    return this.model.embed_tokens;
  }

  protected get blocks(): readonly GptOssDecoderLayer[] {
    return this.model.layers.items;
  }

  protected get finalNorm(): AnyModule {
    return this.model.norm;
  }

  protected get lmHead(): Linear | TiedLinear {
    return this.lm_head;
  }

  /** Rotary tables (times YaRN's factor) at the positions, and one mask per window, built when a layer first asks. */
  protected passContext({ attentionMask, batch, length, past, positions, cache }: PassInputs): LayerContext {
    const tables = rotaryTablesFromFrequencies(positions, this.settings.invFreq);
    const factor = this.settings.ropeAttentionFactor;
    const [cos, sin] =
      factor === 1 ? [tables.cos, tables.sin] : [tv.mul(tables.cos, factor), tv.mul(tables.sin, factor)];
    const masks = new Map<number | null, Tensor>();
    const mask = (window: number | null): Tensor => {
      let m = masks.get(window);
      if (!m) masks.set(window, (m = additiveMask(attentionMask, batch, length, past + length, window ?? undefined)));
      return m;
    };
    return { cos, sin, mask, cache };
  }
}

export const gptOssFamily: ModelFamily = {
  name: "gpt_oss",
  modelTypes: ["gpt_oss"],
  architectures: ["GptOssForCausalLM"],
  create: (config) => new GptOssForCausalLM(config),
};
