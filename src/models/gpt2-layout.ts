/**
 * GPT-2's model layout, which GPT-Neo shares: learned token and position embeddings, pre-LayerNorm
 * blocks (ln_1, attn, ln_2, mlp), a final LayerNorm and an output projection tied to the token
 * embeddings. A family supplies its attention module, its MLP projection layer (GPT-2's Conv1D,
 * GPT-Neo's Linear), the per-pass attention context, and its config names; everything else,
 * module and parameter names included, is the same in both.
 *
 * Module tree (= HF parameter names):
 *   transformer.{wte, wpe, drop, h.N.{ln_1, attn, ln_2, mlp.{c_fc, act, c_proj, dropout}}, ln_f},
 *   lm_head (weight = transformer.wte.weight)
 */
import { KeyValueCache, positionIds } from "../nn/attention.js";
import { Activation, Embedding, Identity, LayerNorm } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import { TiedLinear } from "../nn/tied.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import type { HFConfig } from "./config.js";
import { inputShape, lastPosition, PretrainedModel, resumePoint, type ModelFamily, type ModelInputs, type ModelOutput } from "./model.js";
import type { Site, SiteMap } from "./sites.js";

/** The config fields the layout itself reads (each family's settings add their attention's). */
export interface GPTLayoutSettings {
  vocabSize: number;
  /** The longest sequence (learned position table): n_positions / max_position_embeddings. */
  positions: number;
  dim: number;
  layers: number;
  heads: number;
  /** MLP width: n_inner / intermediate_size, or 4·dim when null. */
  inner: number;
  eps: number;
  activation: string;
}

/**
 * What a family puts into the layout: A is its attention module (`attn`), built from the settings
 * S and the layer index; P what the attention modules share in one pass; L the MLP's projection
 * layer (GPT-2's Conv1D, GPT-Neo's Linear).
 */
export interface GPTLayoutParts<S extends GPTLayoutSettings, A extends Module<Tensor, P>, P, L extends Module> {
  /** The config field that bounds positions, named in errors. */
  readonly positionsField: string;
  readonly attention: new (s: S, layer: number) => A;
  readonly projection: new (inFeatures: number, outFeatures: number) => L;
  /** The pass context, from the attention mask (null: all ones) over past + length keys. */
  pass(mask: IntTensor | null, batch: number, length: number, past: number, cache: KeyValueCache | null): P;
}

/** HF's GPT2MLP / GPTNeoMLP: dropout(c_proj(act(c_fc(x)))). */
export class GPTMLP<L extends Module> extends Module {
  readonly c_fc: L;
  readonly c_proj: L;
  readonly act: Activation;
  readonly dropout: Identity;

  constructor(s: GPTLayoutSettings, Projection: new (inFeatures: number, outFeatures: number) => L) {
    super();
    this.c_fc = this.module("c_fc", new Projection(s.dim, s.inner));
    this.c_proj = this.module("c_proj", new Projection(s.inner, s.dim));
    this.act = this.module("act", new Activation(s.activation));
    this.dropout = this.module("dropout", new Identity());
  }

  protected forward(x: Tensor): Tensor {
    return this.dropout.call(this.c_proj.call(this.act.call(this.c_fc.call(x))));
  }
}

/** HF's GPT2Block / GPTNeoBlock: x + attn(ln_1(x)), then + mlp(ln_2(·)). */
export class GPTBlock<S extends GPTLayoutSettings, A extends Module<Tensor, P>, P, L extends Module> extends Module<Tensor, P> {
  readonly ln_1: LayerNorm;
  readonly attn: A;
  readonly ln_2: LayerNorm;
  readonly mlp: GPTMLP<L>;

  constructor(s: S, layer: number, parts: GPTLayoutParts<S, A, P, L>) {
    super();
    this.ln_1 = this.module("ln_1", new LayerNorm(s.dim, s.eps));
    this.attn = this.module("attn", new parts.attention(s, layer));
    this.ln_2 = this.module("ln_2", new LayerNorm(s.dim, s.eps));
    this.mlp = this.module("mlp", new GPTMLP(s, parts.projection));
  }

  protected forward(x: Tensor, pass: P): Tensor {
    const h = tv.add(x, this.attn.call(this.ln_1.call(x), pass));
    return tv.add(h, this.mlp.call(this.ln_2.call(h)));
  }
}

/** HF's GPT2Model / GPTNeoModel. Its input is the model inputs; its output the final normalised hidden state. */
export class GPTTransformer<S extends GPTLayoutSettings, A extends Module<Tensor, P>, P, L extends Module> extends Module<ModelInputs, Tensor[] | null> {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Identity;
  readonly h: ModuleList<GPTBlock<S, A, P, L>>;
  readonly ln_f: LayerNorm;

  constructor(readonly s: S, private readonly parts: GPTLayoutParts<S, A, P, L>) {
    super();
    this.wte = this.module("wte", new Embedding(s.vocabSize, s.dim));
    this.wpe = this.module("wpe", new Embedding(s.positions, s.dim));
    this.drop = this.module("drop", new Identity());
    this.h = this.module("h", new ModuleList(Array.from({ length: s.layers }, (_, i) => new GPTBlock(s, i, parts))));
    this.ln_f = this.module("ln_f", new LayerNorm(s.dim, s.eps));
  }

  /** With `hiddenStates` an array, HF's hidden_states are appended to it. */
  protected forward(inputs: ModelInputs, hiddenStates: Tensor[] | null): Tensor {
    const { batch, length } = inputShape(inputs);
    const cache = inputs.cache ?? null;
    const past = cache?.length ?? 0;
    const positions = inputs.positionIds ?? positionIds(null, batch, length, past);
    checkIds(positions, [batch, length], this.s.positions, "positionIds", this.parts.positionsField);
    if (inputs.inputIds) checkIds(inputs.inputIds, [batch, length], this.s.vocabSize, "inputIds", "vocab_size");
    const pass = this.parts.pass(inputs.attentionMask ?? null, batch, length, past, cache);

    const resume = inputs.resumeFrom ?? null;
    let x = resume ? resume.hidden : this.drop.call(tv.add(inputs.inputsEmbeds ?? this.wte.call(inputs.inputIds!), this.wpe.call(positions)));
    for (const block of this.h.items.slice(resume?.layer ?? 0)) {
      hiddenStates?.push(x);
      x = block.call(x, pass);
    }
    x = this.ln_f.call(x);
    hiddenStates?.push(x);
    return x;
  }
}

/** HF's GPT2LMHeadModel / GPTNeoForCausalLM: `transformer`, then `lm_head` tied to its token embeddings. */
export abstract class GPTLayoutLM<S extends GPTLayoutSettings, A extends Module<Tensor, P>, P, L extends Module> extends PretrainedModel {
  readonly numLayers: number;
  readonly sites: SiteMap;
  readonly transformer: GPTTransformer<S, A, P, L>;
  readonly lm_head: TiedLinear;

  constructor(readonly config: HFConfig, readonly settings: S, sites: (s: S) => SiteMap, parts: GPTLayoutParts<S, A, P, L>) {
    super();
    this.numLayers = settings.layers;
    this.sites = sites(settings);
    this.transformer = this.module("transformer", new GPTTransformer(settings, parts));
    this.lm_head = this.module("lm_head", new TiedLinear(this.transformer.wte.weight));
  }

  override get supportsResume(): boolean {
    return true;
  }

  run(inputs: ModelInputs): ModelOutput {
    resumePoint(inputs, this, this.settings.dim);
    const hiddenStates = inputs.outputHiddenStates ? [] : null;
    const last = this.transformer.call(inputs, hiddenStates);
    const logits = this.lm_head.call(inputs.lastPositionLogits ? lastPosition(last) : last);
    return hiddenStates ? { logits, hiddenStates } : { logits };
  }

  override newCache(): KeyValueCache {
    return new KeyValueCache(this.numLayers);
  }
}

/** The site of a component at `transformer.h.<layer><path>`, with an optional view (fused part, heads). */
export function layerSite(path: string, hook: Site["hook"], dim: number, view: Partial<Site> = {}): (layer: number) => Site {
  return (layer) => ({ module: `transformer.h.${layer}${path}`, hook, dim, ...view });
}

/** pyvene's block and MLP components, at the same paths in every GPT-2-layout family (spec §7.1/§7.2). */
export function blockAndMlpSites(s: GPTLayoutSettings): SiteMap {
  return {
    block_input: layerSite("", "input", s.dim),
    block_output: layerSite("", "output", s.dim),
    mlp_activation: layerSite(".mlp.act", "output", s.inner),
    mlp_output: layerSite(".mlp", "output", s.dim),
    mlp_input: layerSite(".mlp", "input", s.dim),
  };
}

/** Ids or positions of shape [B, T], each in 0..limit−1, or an error naming the config field that bounds them. */
export function checkIds(ids: IntTensor, shape: readonly number[], limit: number, what: string, field: string): void {
  if (ids.shape.length !== 2 || ids.shape[0] !== shape[0] || ids.shape[1] !== shape[1]) {
    throw new RangeError(`model inputs: ${what} must be [${shape.join(", ")}], got [${ids.shape.join(", ")}]`);
  }
  const bad = ids.data.find((i) => i < 0 || i >= limit);
  if (bad !== undefined) throw new RangeError(`model inputs: ${what} contains ${bad}, outside 0..${limit - 1} (${field} = ${limit})`);
}

/**
 * A GPT-2-layout family: model_type `name`, HF's LM class and bare model class (`architectures`),
 * and an adaptCheckpoint that accepts either's keys (the bare model's lack the `transformer.`
 * prefix) and drops the causal-mask buffers `buffer` matches, which HF rebuilds.
 */
export function gptLayoutFamily(name: string, architectures: readonly [string, string], create: (config: HFConfig) => PretrainedModel, buffer: RegExp): ModelFamily {
  return {
    name,
    modelTypes: [name],
    architectures,
    create,
    adaptCheckpoint(tensors) {
      const out = new Map<string, Tensor | IntTensor>();
      for (const [key, t] of tensors) {
        if (buffer.test(key)) continue;
        out.set(key.startsWith("transformer.") || key.startsWith("lm_head.") ? key : `transformer.${key}`, t);
      }
      return out;
    },
  };
}
