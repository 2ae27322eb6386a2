/**
 * GPT-2's model layout, which GPT-Neo shares: learned token and position embeddings, pre-LayerNorm
 * blocks (ln_1, attn, ln_2, mlp), a final LayerNorm and an output projection tied to the token
 * embeddings, run by the decoder base (decoder.ts). A family supplies its attention module, its
 * MLP projection layer (GPT-2's Conv1D, GPT-Neo's Linear), its pass context, and its config
 * names; everything else, module and parameter names included, is the same in both.
 *
 * Module tree (= HF parameter names):
 *   transformer.{wte, wpe, drop, h.N.{ln_1, attn, ln_2, mlp.{c_fc, act, c_proj, dropout}}, ln_f},
 *   lm_head (weight = transformer.wte.weight)
 */
import { Activation, Embedding, Identity, LayerNorm } from "../nn/layers.js";
import { Container, Module, ModuleList } from "../nn/module.js";
import { quietSubmodules, recycleIntermediate } from "../nn/recycle.js";
import { TiedLinear } from "../nn/tied.js";
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import type { HFConfig } from "./config.js";
import { DecoderModel, type DecoderSettings } from "./decoder.js";
import type { ModelFamily, PretrainedModel } from "./model.js";
import type { Site, SiteMap } from "./sites.js";

/** The config fields the layout itself reads (each family's settings add their attention's). */
export interface GPTLayoutSettings extends DecoderSettings {
  /** The longest sequence (learned position table): n_positions / max_position_embeddings. */
  readonly maxPositions: number;
  readonly numHeads: number;
  /** MLP width: n_inner / intermediate_size, or 4·hiddenSize when null. */
  readonly intermediateSize: number;
  readonly normEps: number;
  readonly activation: string;
}

/**
 * What a family puts into the layout: A is its attention module (`attn`), built from the settings
 * S and the layer index; L the MLP's projection layer (GPT-2's Conv1D, GPT-Neo's Linear). The
 * pass context P its attention reads comes from the family's passContext.
 */
export interface GPTLayoutParts<S extends GPTLayoutSettings, A extends Module<Tensor, P>, P, L extends Module> {
  /** The config field that bounds positions, named in errors. */
  readonly positionsField: string;
  readonly attention: new (s: S, layer: number) => A;
  readonly projection: new (inFeatures: number, outFeatures: number) => L;
}

/** HF's GPT2MLP / GPTNeoMLP: dropout(c_proj(act(c_fc(x)))). */
export class GPTMLP<L extends Module> extends Module {
  readonly c_fc: L;
  readonly c_proj: L;
  readonly act: Activation;
  readonly dropout: Identity;

  constructor(s: GPTLayoutSettings, Projection: new (inFeatures: number, outFeatures: number) => L) {
    super();
    this.c_fc = this.module("c_fc", new Projection(s.hiddenSize, s.intermediateSize));
    this.c_proj = this.module("c_proj", new Projection(s.intermediateSize, s.hiddenSize));
    this.act = this.module("act", new Activation(s.activation));
    this.dropout = this.module("dropout", new Identity());
  }

  protected forward(x: Tensor): Tensor {
    const quiet = quietSubmodules(this, x);
    const hidden = this.c_fc.call(x);
    const activated = this.act.call(hidden);
    const output = this.c_proj.call(activated);
    recycleIntermediate(hidden, activated, quiet, this.c_fc, this.act);
    recycleIntermediate(activated, output, quiet, this.act, this.c_proj);
    return this.dropout.call(output);
  }
}

/** HF's GPT2Block / GPTNeoBlock: x + attn(ln_1(x)), then + mlp(ln_2(·)). */
export class GPTBlock<S extends GPTLayoutSettings, A extends Module<Tensor, P>, P, L extends Module> extends Module<
  Tensor,
  P
> {
  readonly ln_1: LayerNorm;
  readonly attn: A;
  readonly ln_2: LayerNorm;
  readonly mlp: GPTMLP<L>;

  constructor(s: S, layer: number, parts: GPTLayoutParts<S, A, P, L>) {
    super();
    this.ln_1 = this.module("ln_1", new LayerNorm(s.hiddenSize, s.normEps));
    this.attn = this.module("attn", new parts.attention(s, layer));
    this.ln_2 = this.module("ln_2", new LayerNorm(s.hiddenSize, s.normEps));
    this.mlp = this.module("mlp", new GPTMLP(s, parts.projection));
  }

  protected forward(x: Tensor, pass: P): Tensor {
    const quiet = quietSubmodules(this, x);
    const attnInput = this.ln_1.call(x);
    const attnOutput = this.attn.call(attnInput, pass);
    const h = tv.add(x, attnOutput);
    const mlpInput = this.ln_2.call(h);
    const mlpOutput = this.mlp.call(mlpInput);
    const output = tv.add(h, mlpOutput);
    recycleIntermediate(attnInput, attnOutput, quiet, this.ln_1, this.attn);
    recycleIntermediate(attnOutput, h, quiet, this.attn);
    recycleIntermediate(mlpInput, mlpOutput, quiet, this.ln_2, this.mlp);
    recycleIntermediate(mlpOutput, output, quiet, this.mlp);
    recycleIntermediate(h, output, quiet, this.ln_2);
    return output;
  }
}

/** HF's GPT2Model / GPTNeoModel: the embeddings, blocks and final norm, which the LM runs. */
export class GPTTransformer<
  S extends GPTLayoutSettings,
  A extends Module<Tensor, P>,
  P,
  L extends Module,
> extends Container {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Identity;
  readonly h: ModuleList<GPTBlock<S, A, P, L>>;
  readonly ln_f: LayerNorm;

  constructor(s: S, parts: GPTLayoutParts<S, A, P, L>) {
    super();
    this.wte = this.module("wte", new Embedding(s.vocabSize, s.hiddenSize));
    this.wpe = this.module("wpe", new Embedding(s.maxPositions, s.hiddenSize));
    this.drop = this.module("drop", new Identity());
    this.h = this.module("h", new ModuleList(Array.from({ length: s.numLayers }, (_, i) => new GPTBlock(s, i, parts))));
    this.ln_f = this.module("ln_f", new LayerNorm(s.hiddenSize, s.normEps));
  }
}

/**
 * The layout without its head: `transformer` run by the decoder base. The LM adds `lm_head`; the
 * sequence classifiers (classification.ts) add `score`.
 */
export abstract class GPTLayoutDecoder<
  S extends GPTLayoutSettings,
  A extends Module<Tensor, P>,
  P,
  L extends Module,
> extends DecoderModel<P> {
  readonly sites: SiteMap;
  readonly transformer: GPTTransformer<S, A, P, L>;

  constructor(
    readonly config: HFConfig,
    readonly settings: S,
    sites: (s: S) => SiteMap,
    private readonly parts: GPTLayoutParts<S, A, P, L>,
  ) {
    super();
    this.sites = sites(settings);
    this.transformer = this.module("transformer", new GPTTransformer(settings, parts));
  }

  protected get tokenEmbedding(): Embedding {
    return this.transformer.wte;
  }

  protected get blocks(): readonly GPTBlock<S, A, P, L>[] {
    return this.transformer.h.items;
  }

  protected get finalNorm(): LayerNorm {
    return this.transformer.ln_f;
  }

  protected override get positionTable(): { size: number; field: string } {
    return { size: this.settings.maxPositions, field: this.parts.positionsField };
  }

  /** drop(tokens + wpe(positions)). */
  protected override embed(tokens: Tensor, positions: IntTensor): Tensor {
    return this.transformer.drop.call(tv.add(tokens, this.transformer.wpe.call(positions)));
  }
}

/** HF's GPT2LMHeadModel / GPTNeoForCausalLM: `transformer`, then `lm_head` tied to its token embeddings. */
export abstract class GPTLayoutLM<
  S extends GPTLayoutSettings,
  A extends Module<Tensor, P>,
  P,
  L extends Module,
> extends GPTLayoutDecoder<S, A, P, L> {
  readonly lm_head: TiedLinear;

  constructor(config: HFConfig, settings: S, sites: (s: S) => SiteMap, parts: GPTLayoutParts<S, A, P, L>) {
    super(config, settings, sites, parts);
    this.lm_head = this.module("lm_head", new TiedLinear(this.transformer.wte.weight));
  }

  protected get lmHead(): TiedLinear {
    return this.lm_head;
  }
}

/** The site of a component at `transformer.h.<layer><path>`, with an optional view (fused part, heads). */
export function layerSite(
  path: string,
  hook: Site["hook"],
  dim: number,
  view: Partial<Site> = {},
): (layer: number) => Site {
  return (layer) => ({ module: `transformer.h.${layer}${path}`, hook, dim, ...view });
}

/** pyvene's block and MLP components, at the same paths in every GPT-2-layout family (spec §7.1/§7.2). */
export function blockAndMlpSites(s: GPTLayoutSettings): SiteMap {
  return {
    block_input: layerSite("", "input", s.hiddenSize),
    block_output: layerSite("", "output", s.hiddenSize),
    mlp_activation: layerSite(".mlp.act", "output", s.intermediateSize),
    mlp_output: layerSite(".mlp", "output", s.hiddenSize),
    mlp_input: layerSite(".mlp", "input", s.hiddenSize),
  };
}

/**
 * A GPT-2-layout family: model_type `name`, HF's LM class and bare model class (`architectures`),
 * and an adaptCheckpoint that accepts either's keys (the bare model's lack the `transformer.`
 * prefix) and drops the causal-mask buffers `buffer` matches, which HF rebuilds.
 */
export function gptLayoutFamily(
  name: string,
  architectures: readonly [string, string],
  create: (config: HFConfig) => PretrainedModel,
  buffer: RegExp,
): ModelFamily {
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
