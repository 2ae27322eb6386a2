/**
 * GPT-Neo as HF's GPTNeoForCausalLM (transformers 4.45, eager attention): GPT-2's layout
 * (gpt2-layout.ts, with Linear instead of Conv1D MLP projections) with separate bias-free q/k/v
 * Linear projections, layers alternating global and local (sliding window) causal attention, and
 * scores that are NOT scaled by 1/√d. Attention runs in float32.
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
import { type KeyValueCache, mergeHeads, splitHeads } from "../nn/attention.js";
import { additiveMask, whereCausal } from "../nn/masks.js";
import { Identity, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import * as tv from "../tensor/index.js";
import type { Tensor } from "../tensor/index.js";
import { configInt, configNumber, configString, type HFConfig } from "./config.js";
import type { PassInputs } from "./decoder.js";
import { blockAndMlpSites, gptLayoutFamily, GPTLayoutLM, layerSite, type GPTLayoutSettings } from "./gpt2-layout.js";
import type { SiteMap } from "./sites.js";

export type AttentionKind = "global" | "local";

/**
 * The fields of GPTNeoConfig that shape the computation, with HF's defaults
 * (maxPositions: max_position_embeddings).
 */
export interface GPTNeoSettings extends GPTLayoutSettings {
  /** Local layers see the query and the window − 1 keys before it. */
  readonly windowSize: number;
  /** Per layer: "global" or "local". */
  readonly attentionLayers: readonly AttentionKind[];
}

export function gptNeoSettings(config: HFConfig): GPTNeoSettings {
  const hiddenSize = configInt(config, "hidden_size", 2048);
  const numHeads = configInt(config, "num_heads", 8);
  if (hiddenSize % numHeads !== 0)
    throw new RangeError(`config.json: "hidden_size" (${hiddenSize}) must be divisible by "num_heads" (${numHeads})`);
  const numLayers = configInt(config, "num_layers", 24);
  return {
    vocabSize: configInt(config, "vocab_size", 50257),
    maxPositions: configInt(config, "max_position_embeddings", 2048),
    hiddenSize,
    numLayers,
    numHeads,
    intermediateSize: configInt(config, "intermediate_size", 4 * hiddenSize),
    normEps: configNumber(config, "layer_norm_epsilon", 1e-5),
    activation: configString(config, "activation_function", "gelu_new"),
    windowSize: configInt(config, "window_size", 256),
    attentionLayers: attentionLayers(config, numLayers),
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
    if (!Array.isArray(config.attention_layers))
      throw new TypeError(
        `config.json: "attention_layers" must be a list of "global"/"local", ` +
          `got ${JSON.stringify(config.attention_layers)}`,
      );
    kinds = config.attention_layers;
  } else {
    const types = config.attention_types ?? [[["global", "local"], 12]];
    if (!Array.isArray(types))
      throw new TypeError(`config.json: "attention_types" must be ${form}, got ${JSON.stringify(types)}`);
    kinds = types.flatMap((item) => {
      if (
        !Array.isArray(item) ||
        item.length !== 2 ||
        !Array.isArray(item[0]) ||
        !Number.isInteger(item[1]) ||
        item[1] < 0
      ) {
        throw new TypeError(`config.json: "attention_types" must be ${form}, got ${JSON.stringify(types)}`);
      }
      const [pattern, repeats] = item as [unknown[], number];
      return Array.from({ length: repeats }, () => pattern).flat();
    });
  }
  const unknown = kinds.find((k) => typeof k !== "string" || !KINDS.includes(k));
  if (unknown !== undefined)
    throw new RangeError(
      `config.json: attention layer type ${JSON.stringify(unknown)} is not supported (expected "global" or "local")`,
    );
  if (kinds.length !== layers) {
    throw new RangeError(
      `config.json: the attention layer types list ${kinds.length} layers (${JSON.stringify(kinds)}) ` +
        `but "num_layers" is ${layers}; they must agree`,
    );
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

  constructor(
    readonly s: GPTNeoSettings,
    readonly layer: number,
  ) {
    super();
    this.attn_dropout = this.module("attn_dropout", new Identity());
    this.resid_dropout = this.module("resid_dropout", new Identity());
    const d = s.hiddenSize;
    this.k_proj = this.module("k_proj", new Linear(d, d, { bias: false }));
    this.v_proj = this.module("v_proj", new Linear(d, d, { bias: false }));
    this.q_proj = this.module("q_proj", new Linear(d, d, { bias: false }));
    this.out_proj = this.module("out_proj", new Linear(d, d));
  }

  protected forward(x: Tensor, { cache, mask }: PassContext): Tensor {
    const q = splitHeads(this.q_proj.call(x), this.s.numHeads);
    const kNew = splitHeads(this.k_proj.call(x), this.s.numHeads);
    const vNew = splitHeads(this.v_proj.call(x), this.s.numHeads);
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

/**
 * GPT-Neo's parts in the layout: the global/local attention wrapper, Linear MLP projections,
 * a causal-and-padding mask.
 */
export class GPTNeoForCausalLM extends GPTLayoutLM<GPTNeoSettings, GPTNeoAttention, PassContext, Linear> {
  readonly family = "gpt_neo";

  constructor(config: HFConfig) {
    super(config, gptNeoSettings(config), gptNeoSites, {
      positionsField: "max_position_embeddings",
      attention: GPTNeoAttention,
      projection: Linear,
    });
  }

  protected passContext({ attentionMask, batch, length, past, cache }: PassInputs): PassContext {
    return { cache, mask: additiveMask(attentionMask, batch, length, past + length) };
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
  const d = s.hiddenSize;
  const heads = { heads: s.numHeads };
  const head = d / s.numHeads;
  return {
    ...blockAndMlpSites(s),
    attention_value_output: layerSite(".attn.attention.out_proj", "input", d),
    head_attention_value_output: layerSite(".attn.attention.out_proj", "input", head, heads),
    attention_output: layerSite(".attn", "output", d),
    attention_input: layerSite(".attn", "input", d),
    query_output: layerSite(".attn.attention.q_proj", "output", d),
    key_output: layerSite(".attn.attention.k_proj", "output", d),
    value_output: layerSite(".attn.attention.v_proj", "output", d),
    head_query_output: layerSite(".attn.attention.q_proj", "output", head, heads),
    head_key_output: layerSite(".attn.attention.k_proj", "output", head, heads),
    head_value_output: layerSite(".attn.attention.v_proj", "output", head, heads),
  };
}

/** The causal `bias` / `masked_bias` buffers that checkpoints written by older transformers contain. */
const ATTENTION_BUFFER = /^(transformer\.)?h\.\d+\.attn\.attention\.(bias|masked_bias)$/;

/** Reads GPTNeoForCausalLM checkpoints, and GPTNeoModel ones (no `transformer.` prefix). */
export const gptNeoFamily = gptLayoutFamily(
  "gpt_neo",
  ["GPTNeoForCausalLM", "GPTNeoModel"],
  (config) => new GPTNeoForCausalLM(config),
  ATTENTION_BUFFER,
);
