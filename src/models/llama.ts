/**
 * The Llama family: Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma2, OLMo and OLMo2, as HF
 * transformers implements them with eager attention (4.45; OLMo2 as added in 4.47, Qwen3 as
 * added in 4.51). One decoder, a rotary pre-norm transformer with a gated MLP:
 *
 *   h = x + self_attn(input_layernorm(x))          q, k rotated; k, v shared by query groups (GQA)
 *   y = h + mlp(post_attention_layernorm(h))       mlp(x) = down_proj(act_fn(gate_proj(x)) · up_proj(x))
 *
 * and what each model type changes (llama-settings.ts): biases, norms, norm placement, q/k norms,
 * embedding scale, soft-capping, sliding windows. The run is the decoder base's (decoder.ts).
 */
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";
import { Container, Module, ModuleList, type AnyModule } from "../nn/module.js";
import { Activation, Embedding, LayerNorm, Linear, RMSNorm } from "../nn/layers.js";
import { type KeyValueCache, mergeHeads, repeatKeyValue } from "../nn/attention.js";
import { additiveMask } from "../nn/masks.js";
import { TiedLinear } from "../nn/tied.js";
import { applyRotary, rotaryTablesFromFrequencies } from "../nn/rope.js";
import type { HFConfig } from "./config.js";
import { DecoderModel, type PassInputs } from "./decoder.js";
import { llamaSettings, VARIANTS, type LlamaModelType, type LlamaSettings } from "./llama-settings.js";
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

function makeNorm(s: LlamaSettings, dim: number): AnyModule {
  switch (s.norm) {
    case "rms":
      return new RMSNorm(dim, s.normEps);
    case "offset_rms":
      return new RMSNorm(dim, s.normEps, { offsetWeight: true });
    case "plain_layer_norm":
      return new LayerNorm(dim, 1e-5, { affine: false });
  }
}

/** [B, T, H·d] → [B, H, T, d], with Qwen3's per-head RMS norm applied on [B, T, H, d] as HF does. */
function toHeads(x: Tensor, heads: number, perHeadNorm: RMSNorm | null): Tensor {
  const [b, t, width] = x.shape;
  const split = tv.reshape(x, [b, t, heads, width / heads]);
  return tv.permute(perHeadNorm ? perHeadNorm.call(split) : split, [0, 2, 1, 3]);
}

function softCap(x: Tensor, cap: number | null): Tensor {
  return cap === null ? x : tv.mul(tv.tanh(tv.div(x, cap)), cap);
}

class LlamaAttention extends Module<Tensor, LayerContext> {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  readonly q_norm: RMSNorm | null = null;
  readonly k_norm: RMSNorm | null = null;

  constructor(
    private readonly s: LlamaSettings,
    private readonly layer: number,
  ) {
    super();
    const qWidth = s.numHeads * s.headDim;
    const kvWidth = s.numKeyValueHeads * s.headDim;
    this.q_proj = this.module("q_proj", new Linear(s.hiddenSize, qWidth, { bias: s.qkvBias }));
    this.k_proj = this.module("k_proj", new Linear(s.hiddenSize, kvWidth, { bias: s.qkvBias }));
    this.v_proj = this.module("v_proj", new Linear(s.hiddenSize, kvWidth, { bias: s.qkvBias }));
    this.o_proj = this.module("o_proj", new Linear(qWidth, s.hiddenSize, { bias: s.outputBias }));
    if (s.qkNorm !== "none") {
      const perHead = s.qkNorm === "per_head";
      this.q_norm = this.module("q_norm", new RMSNorm(perHead ? s.headDim : qWidth, s.normEps));
      this.k_norm = this.module("k_norm", new RMSNorm(perHead ? s.headDim : kvWidth, s.normEps));
    }
  }

  protected forward(x: Tensor, ctx: LayerContext): Tensor {
    const s = this.s;
    let q = this.q_proj.call(x);
    let k = this.k_proj.call(x);
    let v = this.v_proj.call(x);
    if (s.clipQkv !== null) [q, k, v] = [q, k, v].map((t) => tv.clamp(t, -s.clipQkv!, s.clipQkv!));
    if (s.qkNorm === "full_width") [q, k] = [this.q_norm!.call(q), this.k_norm!.call(k)];
    const perHead = s.qkNorm === "per_head";
    q = applyRotary(toHeads(q, s.numHeads, perHead ? this.q_norm : null), ctx.cos, ctx.sin);
    k = applyRotary(toHeads(k, s.numKeyValueHeads, perHead ? this.k_norm : null), ctx.cos, ctx.sin);
    v = toHeads(v, s.numKeyValueHeads, null);
    if (ctx.cache) ({ key: k, value: v } = ctx.cache.update(this.layer, k, v));

    const groups = s.numHeads / s.numKeyValueHeads;
    const raw = tv.matmul(q, tv.transpose(repeatKeyValue(k, groups)));
    const scaled =
      s.queryPreAttnScalar === null ? tv.div(raw, Math.sqrt(s.headDim)) : tv.mul(raw, s.queryPreAttnScalar ** -0.5);
    const scores = tv.add(softCap(scaled, s.attnLogitSoftcapping), ctx.mask(s.slidingWindows[this.layer]));
    const out = tv.matmul(tv.softmax(scores, -1), repeatKeyValue(v, groups));
    return this.o_proj.call(mergeHeads(out));
  }
}

class LlamaMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  readonly act_fn: Activation;

  constructor(s: LlamaSettings) {
    super();
    this.gate_proj = this.module("gate_proj", new Linear(s.hiddenSize, s.intermediateSize, { bias: s.mlpBias }));
    this.up_proj = this.module("up_proj", new Linear(s.hiddenSize, s.intermediateSize, { bias: s.mlpBias }));
    this.down_proj = this.module("down_proj", new Linear(s.intermediateSize, s.hiddenSize, { bias: s.mlpBias }));
    this.act_fn = this.module("act_fn", new Activation(s.activation));
  }

  protected forward(x: Tensor): Tensor {
    return this.down_proj.call(tv.mul(this.act_fn.call(this.gate_proj.call(x)), this.up_proj.call(x)));
  }
}

class LlamaDecoderLayer extends Module<Tensor, LayerContext> {
  readonly self_attn: LlamaAttention;
  readonly mlp: LlamaMLP;
  readonly input_layernorm: AnyModule | null = null;
  readonly post_attention_layernorm: AnyModule;
  readonly pre_feedforward_layernorm: AnyModule | null = null;
  readonly post_feedforward_layernorm: AnyModule | null = null;

  constructor(
    private readonly s: LlamaSettings,
    layer: number,
  ) {
    super();
    const norm = (name: string): AnyModule => this.module(name, makeNorm(s, s.hiddenSize));
    this.self_attn = this.module("self_attn", new LlamaAttention(s, layer));
    this.mlp = this.module("mlp", new LlamaMLP(s));
    if (s.layout !== "post") this.input_layernorm = norm("input_layernorm");
    this.post_attention_layernorm = norm("post_attention_layernorm");
    if (s.layout === "sandwich") this.pre_feedforward_layernorm = norm("pre_feedforward_layernorm");
    if (s.layout !== "pre") this.post_feedforward_layernorm = norm("post_feedforward_layernorm");
  }

  protected forward(x: Tensor, ctx: LayerContext): Tensor {
    switch (this.s.layout) {
      case "pre": {
        const h = tv.add(x, this.self_attn.call(this.input_layernorm!.call(x), ctx));
        return tv.add(h, this.mlp.call(this.post_attention_layernorm.call(h)));
      }
      case "sandwich": {
        const h = tv.add(
          x,
          this.post_attention_layernorm.call(this.self_attn.call(this.input_layernorm!.call(x), ctx)),
        );
        return tv.add(h, this.post_feedforward_layernorm!.call(this.mlp.call(this.pre_feedforward_layernorm!.call(h))));
      }
      case "post": {
        const h = tv.add(x, this.post_attention_layernorm.call(this.self_attn.call(x, ctx)));
        return tv.add(h, this.post_feedforward_layernorm!.call(this.mlp.call(h)));
      }
    }
  }
}

/** HF's LlamaModel: the embeddings, layers and final norm, which the LM runs. */
class LlamaModel extends Container {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: AnyModule;

  constructor(s: LlamaSettings) {
    super();
    this.embed_tokens = this.module("embed_tokens", new Embedding(s.vocabSize, s.hiddenSize));
    this.layers = this.module(
      "layers",
      new ModuleList(Array.from({ length: s.numLayers }, (_, i) => new LlamaDecoderLayer(s, i))),
    );
    this.norm = this.module("norm", makeNorm(s, s.hiddenSize));
  }
}

/** pyvene's LLaMA site map (spec §7.1/§7.2), with widths from the projections' real shapes. */
function llamaSites(s: LlamaSettings): SiteMap {
  const at = layerSites("model.layers");
  const d = s.hiddenSize;
  return {
    block_input: at("", "input", d),
    block_output: at("", "output", d),
    mlp_activation: at(".mlp.act_fn", "output", s.intermediateSize),
    mlp_output: at(".mlp", "output", d),
    mlp_input: at(".mlp", "input", d),
    attention_value_output: at(".self_attn.o_proj", "input", s.numHeads * s.headDim),
    head_attention_value_output: at(".self_attn.o_proj", "input", s.headDim, s.numHeads),
    attention_output: at(".self_attn", "output", d),
    attention_input: at(".self_attn", "input", d),
    query_output: at(".self_attn.q_proj", "output", s.numHeads * s.headDim),
    key_output: at(".self_attn.k_proj", "output", s.numKeyValueHeads * s.headDim),
    value_output: at(".self_attn.v_proj", "output", s.numKeyValueHeads * s.headDim),
    head_query_output: at(".self_attn.q_proj", "output", s.headDim, s.numHeads),
    head_key_output: at(".self_attn.k_proj", "output", s.headDim, s.numKeyValueHeads),
    head_value_output: at(".self_attn.v_proj", "output", s.headDim, s.numKeyValueHeads),
  };
}

/**
 * Every Llama-family model without its head: `model.*`, run by the decoder base. The LM adds
 * `lm_head`; the sequence classifiers (classification.ts) add `score`.
 */
export abstract class LlamaDecoder extends DecoderModel<LayerContext> {
  readonly family = "llama";
  readonly settings: LlamaSettings;
  readonly sites: SiteMap;
  readonly model: LlamaModel;

  constructor(readonly config: HFConfig) {
    super();
    const s = (this.settings = llamaSettings(config));
    this.sites = llamaSites(s);
    this.model = this.module("model", new LlamaModel(s));
  }

  /** The HF model_type this model was built as. */
  get modelType(): LlamaModelType {
    return this.settings.modelType;
  }

  protected get tokenEmbedding(): Embedding {
    return this.model.embed_tokens;
  }

  protected get blocks(): readonly LlamaDecoderLayer[] {
    return this.model.layers.items;
  }

  protected get finalNorm(): AnyModule {
    return this.model.norm;
  }

  /** Rotary tables at the positions, and one mask per sliding window, built when a layer first asks. */
  protected passContext({ attentionMask, batch, length, past, positions, cache }: PassInputs): LayerContext {
    const { cos, sin } = rotaryTablesFromFrequencies(positions, this.settings.invFreq);
    const masks = new Map<number | null, Tensor>();
    const mask = (window: number | null): Tensor => {
      let m = masks.get(window);
      if (!m) masks.set(window, (m = additiveMask(attentionMask, batch, length, past + length, window ?? undefined)));
      return m;
    };
    return { cos, sin, mask, cache };
  }

  /** Gemma scales the embeddings by √hidden_size. */
  protected override embed(tokens: Tensor): Tensor {
    const scale = this.settings.embeddingScale;
    return scale === null ? tokens : tv.mul(tokens, scale);
  }
}

/** *ForCausalLM of every Llama-family model type: `model.*` and `lm_head`, as HF names them. */
export class LlamaForCausalLM extends LlamaDecoder {
  readonly lm_head: Linear | TiedLinear;

  constructor(config: HFConfig) {
    super(config);
    const s = this.settings;
    this.lm_head = this.module(
      "lm_head",
      s.tieWordEmbeddings
        ? new TiedLinear(this.model.embed_tokens.weight)
        : new Linear(s.hiddenSize, s.vocabSize, { bias: false }),
    );
  }

  protected get lmHead(): Linear | TiedLinear {
    return this.lm_head;
  }

  /** Gemma2 soft-caps the logits. */
  protected override afterHead(logits: Tensor): Tensor {
    return softCap(logits, this.settings.finalLogitSoftcapping);
  }
}

export const llamaFamily: ModelFamily = {
  name: "llama",
  modelTypes: Object.keys(VARIANTS),
  architectures: Object.values(VARIANTS).map((v) => v.architecture),
  create: (config) => new LlamaForCausalLM(config),
  // Older Llama checkpoints also store the rotary inv_freq buffer, which HF rebuilds from the config.
  adaptCheckpoint: (tensors) =>
    new Map([...tensors].filter(([name]) => !name.endsWith(".self_attn.rotary_emb.inv_freq"))),
};
