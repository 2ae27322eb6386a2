/**
 * GPT-Neo as HF's GPTNeoForCausalLM (transformers 4.45, eager attention): GPT-2's layout with
 * separate bias-free q/k/v Linear projections, layers alternating global and local (sliding
 * window) causal attention, and scores that are NOT scaled by 1/√d. Attention runs in float32.
 *
 * Module tree (= HF parameter names):
 *   transformer.{wte, wpe, drop, h.N.{ln_1, attn.attention.{k_proj, v_proj, q_proj, out_proj,
 *   attn_dropout, resid_dropout}, ln_2, mlp.{c_fc, act, c_proj, dropout}}, ln_f},
 *   lm_head (weight = transformer.wte.weight)
 *
 * Masking: the layer's boolean `bias` buffer (causal; local layers also drop keys w or more
 * positions behind the query, HF's `bias ^ tril(bias, -window_size)`) is applied with
 * torch.where, then the 4-D causal-and-padding mask of float32 minima is added.
 */
import { additiveMask, KeyValueCache, mergeHeads, positionIds, splitHeads } from "../nn/attention.js";
import { whereCausal } from "../nn/causal.js";
import { Activation, Embedding, Identity, LayerNorm, Linear } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { TiedLinear } from "../nn/tied.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import { configInt, configNumber, configString, type HFConfig } from "./config.js";
import { checkIds } from "./gpt2.js";
import { inputShape, PretrainedModel, type ModelFamily, type ModelInputs, type ModelOutput } from "./model.js";
import type { Site, SiteMap } from "./sites.js";

export type AttentionKind = "global" | "local";

/** The fields of GPTNeoConfig that shape the computation, with HF's defaults. */
export interface GPTNeoSettings {
  vocabSize: number;
  positions: number;
  dim: number;
  layers: number;
  heads: number;
  /** MLP width: intermediate_size, or 4·hidden_size when null. */
  inner: number;
  eps: number;
  activation: string;
  /** Local layers see the query and the window − 1 keys before it. */
  windowSize: number;
  /** Per layer: "global" or "local". */
  attentionLayers: AttentionKind[];
}

export function gptNeoSettings(config: HFConfig): GPTNeoSettings {
  const dim = configInt(config, "hidden_size", 2048);
  const heads = configInt(config, "num_heads", 8);
  if (dim % heads !== 0) throw new RangeError(`config.json: "hidden_size" (${dim}) must be divisible by "num_heads" (${heads})`);
  const layers = configInt(config, "num_layers", 24);
  return {
    vocabSize: configInt(config, "vocab_size", 50257),
    positions: configInt(config, "max_position_embeddings", 2048),
    dim,
    layers,
    heads,
    inner: configInt(config, "intermediate_size", 4 * dim),
    eps: configNumber(config, "layer_norm_epsilon", 1e-5),
    activation: configString(config, "activation_function", "gelu_new"),
    windowSize: configInt(config, "window_size", 256),
    attentionLayers: attentionLayers(config, layers),
  };
}

const KINDS: readonly string[] = ["global", "local"];

/**
 * The per-layer kinds as HF's GPTNeoConfig has them: `attention_layers` when config.json stores it
 * (HF sets stored fields last), else `attention_types` expanded: [[["global", "local"], 6]] means
 * that pair 6 times.
 */
function attentionLayers(config: HFConfig, layers: number): AttentionKind[] {
  const form = '[[["global", "local"], repeats], ...]';
  let kinds: unknown[];
  if (config.attention_layers !== undefined && config.attention_layers !== null) {
    if (!Array.isArray(config.attention_layers)) throw new TypeError(`config.json: "attention_layers" must be a list of "global"/"local", got ${JSON.stringify(config.attention_layers)}`);
    kinds = config.attention_layers;
  } else {
    const types = config.attention_types ?? [[["global", "local"], 12]];
    if (!Array.isArray(types)) throw new TypeError(`config.json: "attention_types" must be ${form}, got ${JSON.stringify(types)}`);
    kinds = types.flatMap((item) => {
      if (!Array.isArray(item) || item.length !== 2 || !Array.isArray(item[0]) || !Number.isInteger(item[1]) || item[1] < 0) {
        throw new TypeError(`config.json: "attention_types" must be ${form}, got ${JSON.stringify(types)}`);
      }
      const [pattern, repeats] = item as [unknown[], number];
      return Array.from({ length: repeats }, () => pattern).flat();
    });
  }
  const unknown = kinds.find((k) => typeof k !== "string" || !KINDS.includes(k));
  if (unknown !== undefined) throw new RangeError(`config.json: attention layer type ${JSON.stringify(unknown)} is not supported (expected "global" or "local")`);
  if (kinds.length !== layers) {
    throw new RangeError(`config.json: the attention layer types list ${kinds.length} layers (${JSON.stringify(kinds)}) but "num_layers" is ${layers}; they must agree`);
  }
  return kinds as AttentionKind[];
}

/** What every block of one forward pass shares. */
interface PassContext {
  cache: KeyValueCache | null;
  /** The additive causal-and-padding mask [B, 1, T, S]. */
  mask: Tensor;
}

/** HF's GPTNeoSelfAttention. */
class GPTNeoSelfAttention extends Module<Tensor, PassContext> {
  readonly attn_dropout: Identity;
  readonly resid_dropout: Identity;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly q_proj: Linear;
  readonly out_proj: Linear;

  constructor(readonly s: GPTNeoSettings, readonly layer: number) {
    super();
    this.attn_dropout = this.module("attn_dropout", new Identity());
    this.resid_dropout = this.module("resid_dropout", new Identity());
    this.k_proj = this.module("k_proj", new Linear(s.dim, s.dim, { bias: false }));
    this.v_proj = this.module("v_proj", new Linear(s.dim, s.dim, { bias: false }));
    this.q_proj = this.module("q_proj", new Linear(s.dim, s.dim, { bias: false }));
    this.out_proj = this.module("out_proj", new Linear(s.dim, s.dim));
  }

  protected forward(x: Tensor, { cache, mask }: PassContext): Tensor {
    const q = splitHeads(this.q_proj.call(x), this.s.heads);
    const kNew = splitHeads(this.k_proj.call(x), this.s.heads);
    const vNew = splitHeads(this.v_proj.call(x), this.s.heads);
    const { key: k, value: v } = cache ? cache.update(this.layer, kNew, vNew) : { key: kNew, value: vNew };
    const window = this.s.attentionLayers[this.layer] === "local" ? this.s.windowSize : undefined;
    // GPT-Neo does not divide the scores by √d.
    const scores = tv.add(whereCausal(tv.matmul(q, tv.transpose(k, -1, -2)), window), mask);
    const probs = this.attn_dropout.call(tv.softmax(scores, -1));
    return this.resid_dropout.call(this.out_proj.call(mergeHeads(tv.matmul(probs, v))));
  }
}

/** HF's GPTNeoAttention: a wrapper holding the global or local self-attention as `attention`. */
class GPTNeoAttention extends Module<Tensor, PassContext> {
  readonly attention: GPTNeoSelfAttention;

  constructor(s: GPTNeoSettings, layer: number) {
    super();
    this.attention = this.module("attention", new GPTNeoSelfAttention(s, layer));
  }

  protected forward(x: Tensor, pass: PassContext): Tensor {
    return this.attention.call(x, pass);
  }
}

class GPTNeoMLP extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  readonly act: Activation;
  readonly dropout: Identity;

  constructor(s: GPTNeoSettings) {
    super();
    this.c_fc = this.module("c_fc", new Linear(s.dim, s.inner));
    this.c_proj = this.module("c_proj", new Linear(s.inner, s.dim));
    this.act = this.module("act", new Activation(s.activation));
    this.dropout = this.module("dropout", new Identity());
  }

  protected forward(x: Tensor): Tensor {
    return this.dropout.call(this.c_proj.call(this.act.call(this.c_fc.call(x))));
  }
}

class GPTNeoBlock extends Module<Tensor, PassContext> {
  readonly ln_1: LayerNorm;
  readonly attn: GPTNeoAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: GPTNeoMLP;

  constructor(s: GPTNeoSettings, layer: number) {
    super();
    this.ln_1 = this.module("ln_1", new LayerNorm(s.dim, s.eps));
    this.attn = this.module("attn", new GPTNeoAttention(s, layer));
    this.ln_2 = this.module("ln_2", new LayerNorm(s.dim, s.eps));
    this.mlp = this.module("mlp", new GPTNeoMLP(s));
  }

  protected forward(x: Tensor, pass: PassContext): Tensor {
    const h = tv.add(x, this.attn.call(this.ln_1.call(x), pass));
    return tv.add(h, this.mlp.call(this.ln_2.call(h)));
  }
}

/** HF's GPTNeoModel. Its input is the model inputs; its output the final normalised hidden state. */
export class GPTNeoModel extends Module<ModelInputs, Tensor[] | null> {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Identity;
  readonly h: ModuleList<GPTNeoBlock>;
  readonly ln_f: LayerNorm;

  constructor(readonly s: GPTNeoSettings) {
    super();
    this.wte = this.module("wte", new Embedding(s.vocabSize, s.dim));
    this.wpe = this.module("wpe", new Embedding(s.positions, s.dim));
    this.drop = this.module("drop", new Identity());
    this.h = this.module("h", new ModuleList(Array.from({ length: s.layers }, (_, i) => new GPTNeoBlock(s, i))));
    this.ln_f = this.module("ln_f", new LayerNorm(s.dim, s.eps));
  }

  /** With `hiddenStates` an array, HF's hidden_states are appended to it. */
  protected forward(inputs: ModelInputs, hiddenStates: Tensor[] | null): Tensor {
    const { batch, length } = inputShape(inputs);
    const cache = inputs.cache ?? null;
    const past = cache?.length ?? 0;
    const positions = inputs.positionIds ?? positionIds(null, batch, length, past);
    checkIds(positions, [batch, length], this.s.positions, "positionIds", "max_position_embeddings");
    if (inputs.inputIds) checkIds(inputs.inputIds, [batch, length], this.s.vocabSize, "inputIds", "vocab_size");
    const pass: PassContext = { cache, mask: additiveMask(inputs.attentionMask ?? null, batch, length, past + length) };

    const tokens = inputs.inputsEmbeds ?? this.wte.call(inputs.inputIds!);
    let x = this.drop.call(tv.add(tokens, this.wpe.call(positions)));
    for (const block of this.h.items) {
      hiddenStates?.push(x);
      x = block.call(x, pass);
    }
    x = this.ln_f.call(x);
    hiddenStates?.push(x);
    return x;
  }
}

export class GPTNeoForCausalLM extends PretrainedModel {
  readonly family = "gpt_neo";
  readonly numLayers: number;
  readonly sites: SiteMap;
  readonly settings: GPTNeoSettings;
  readonly transformer: GPTNeoModel;
  readonly lm_head: TiedLinear;

  constructor(readonly config: HFConfig) {
    super();
    this.settings = gptNeoSettings(config);
    this.numLayers = this.settings.layers;
    this.sites = gptNeoSites(this.settings);
    this.transformer = this.module("transformer", new GPTNeoModel(this.settings));
    this.lm_head = this.module("lm_head", new TiedLinear(this.transformer.wte.weight));
  }

  run(inputs: ModelInputs): ModelOutput {
    const hiddenStates = inputs.outputHiddenStates ? [] : null;
    const logits = this.lm_head.call(this.transformer.call(inputs, hiddenStates));
    return hiddenStates ? { logits, hiddenStates } : { logits };
  }

  override newCache(): KeyValueCache {
    return new KeyValueCache(this.numLayers);
  }
}

/**
 * pyvene's GPTNeoForCausalLM components, at HF's real module paths. pyvene 0.1.8 writes
 * `h[L].attn.q_proj` / `.k_proj` / `.v_proj` / `.out_proj`, which do not exist in HF's model (the
 * projections sit one level down, in `attn.attention`); here they are `attn.attention.*`.
 * block/mlp/attention input and output keep pyvene's paths (`attn` is the wrapper, whose output
 * is the attention output after out_proj). The head components split into `num_heads` heads,
 * which pyvene intends but cannot do (its `n_head` entry is a bare string). Dims are pyvene's:
 * hidden_size, intermediate_size then hidden_size·4, hidden_size/num_heads per head.
 */
export function gptNeoSites(s: GPTNeoSettings): SiteMap {
  const head = s.dim / s.heads;
  const at = (path: string, hook: Site["hook"], dim: number, heads?: number) =>
    (layer: number): Site => ({ module: `transformer.h.${layer}${path}`, hook, dim, ...(heads ? { heads } : {}) });
  return {
    block_input: at("", "input", s.dim),
    block_output: at("", "output", s.dim),
    mlp_activation: at(".mlp.act", "output", s.inner),
    mlp_output: at(".mlp", "output", s.dim),
    mlp_input: at(".mlp", "input", s.dim),
    attention_value_output: at(".attn.attention.out_proj", "input", s.dim),
    head_attention_value_output: at(".attn.attention.out_proj", "input", head, s.heads),
    attention_output: at(".attn", "output", s.dim),
    attention_input: at(".attn", "input", s.dim),
    query_output: at(".attn.attention.q_proj", "output", s.dim),
    key_output: at(".attn.attention.k_proj", "output", s.dim),
    value_output: at(".attn.attention.v_proj", "output", s.dim),
    head_query_output: at(".attn.attention.q_proj", "output", head, s.heads),
    head_key_output: at(".attn.attention.k_proj", "output", head, s.heads),
    head_value_output: at(".attn.attention.v_proj", "output", head, s.heads),
  };
}

/** The causal `bias` / `masked_bias` buffers that checkpoints written by older transformers contain. */
const ATTENTION_BUFFER = /^(transformer\.)?h\.\d+\.attn\.attention\.(bias|masked_bias)$/;

export const gptNeoFamily: ModelFamily = {
  name: "gpt_neo",
  modelTypes: ["gpt_neo"],
  architectures: ["GPTNeoForCausalLM", "GPTNeoModel"],
  create: (config) => new GPTNeoForCausalLM(config),
  /** Accepts GPTNeoForCausalLM keys, and GPTNeoModel ones (no `transformer.` prefix). */
  adaptCheckpoint(tensors) {
    const out = new Map<string, Tensor | IntTensor>();
    for (const [name, t] of tensors) {
      if (ATTENTION_BUFFER.test(name)) continue;
      out.set(name.startsWith("transformer.") || name.startsWith("lm_head.") ? name : `transformer.${name}`, t);
    }
    return out;
  },
};
