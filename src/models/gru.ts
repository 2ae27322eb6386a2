/**
 * pyvene's toy GRU (pyvene/models/gru/modelings_gru.py). A GRUCell maps the layer input x_t and
 * the layer's previous state h to the new state:
 *   (xr, xz, xn) = thirds of x2h(x_t),  (hr, hz, hn) = thirds of h2h(h)
 *   r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn),  h' = z ⊙ h + (1 − z) ⊙ n
 * GRUModel loops over time and, inside each step, over layers (layer 0 reads x_t, layer l reads
 * layer l−1's new state; states start at zero).
 *
 * Not a decoder: there is no residual stream to resume from and no key/value cache, so
 * `resumeFrom` and `cache` are errors, and so is `lastPositionLogits` (generate reads the last
 * step of the full logits). `attentionMask` must be right padding (ones, then zeros): the real
 * steps are then exactly those of the unpadded input, and the classifier scores the last one.
 *
 * Time steps and hooks: every cell, projection and gate activation is called through `.call()`
 * once per step, with a `GRUStepContext` as the call's context. A hook on any of them receives
 * that context as its last argument, so `context.step` tells it which time step it is seeing
 * (and `context.state` the layer's previous state). Unit "t" interventions select steps that way.
 */
import { Activation, Embedding, Linear } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { configBool, configInt, type HFConfig } from "./config.js";
import {
  PretrainedModel,
  inputShape,
  refuseInputs,
  type ModelFamily,
  type ModelInputs,
  type ModelOutput,
  type ModelSettings,
} from "./model.js";
import type { Site, SiteMap } from "./sites.js";

/** The context of one cell call: the time step and the layer's state before it. */
export interface GRUStepContext {
  /** Time step, 0-based. */
  readonly step: number;
  /** The layer's state h_{t−1} [B, h] (zeros at step 0). */
  readonly state: Tensor;
}

export interface GRUSettings extends ModelSettings {
  readonly numLabels: number;
  readonly bias: boolean;
  readonly includeEmbeddings: boolean;
  readonly vocabSize: number;
  readonly maxPositions: number;
}

/** pyvene's GRUConfig fields, with its defaults. */
export function gruSettings(config: HFConfig): GRUSettings {
  return {
    hiddenSize: configInt(config, "h_dim", 512),
    numLayers: configInt(config, "n_layer", 2),
    numLabels: configInt(config, "n_labels", 2),
    bias: configBool(config, "include_bias", true),
    includeEmbeddings: configBool(config, "include_emb", false),
    vocabSize: configInt(config, "vocab_size", 50257),
    maxPositions: configInt(config, "max_position_embeddings", 512),
  };
}

export class GRUCell extends Module<Tensor, GRUStepContext> {
  readonly x2h: Linear;
  readonly h2h: Linear;
  readonly reset_act: Activation;
  readonly update_act: Activation;
  readonly new_act: Activation;

  constructor(
    readonly hiddenSize: number,
    bias: boolean,
  ) {
    super();
    this.x2h = this.module("x2h", new Linear(hiddenSize, 3 * hiddenSize, { bias }));
    this.h2h = this.module("h2h", new Linear(hiddenSize, 3 * hiddenSize, { bias }));
    this.reset_act = this.module("reset_act", new Activation("sigmoid"));
    this.update_act = this.module("update_act", new Activation("sigmoid"));
    this.new_act = this.module("new_act", new Activation("tanh"));
  }

  protected forward(x: Tensor, ctx: GRUStepContext): Tensor {
    const h = ctx.state;
    const [xr, xz, xn] = tv.split(this.x2h.call(x, ctx), this.hiddenSize, -1);
    const [hr, hz, hn] = tv.split(this.h2h.call(h, ctx), this.hiddenSize, -1);
    const r = this.reset_act.call(tv.add(xr, hr), ctx);
    const z = this.update_act.call(tv.add(xz, hz), ctx);
    const n = this.new_act.call(tv.add(xn, tv.mul(r, hn)), ctx);
    return tv.add(tv.mul(z, h), tv.mul(tv.sub(1, z), n));
  }
}

export class GRUModel extends Module<IntTensor> {
  readonly wte: Embedding | null;
  readonly wpe: Embedding | null;
  readonly cells: ModuleList<GRUCell>;

  constructor(readonly settings: GRUSettings) {
    super();
    const s = settings;
    this.wte = s.includeEmbeddings ? this.module("wte", new Embedding(s.vocabSize, s.hiddenSize)) : null;
    this.wpe = s.includeEmbeddings ? this.module("wpe", new Embedding(s.maxPositions, s.hiddenSize)) : null;
    this.cells = this.module(
      "cells",
      new ModuleList(Array.from({ length: s.numLayers }, () => new GRUCell(s.hiddenSize, s.bias))),
    );
  }

  /**
   * The last layer's state at every step [B, T, h]. With outputHiddenStates, also the input
   * [B, T, h] followed by each layer's states over time [B, T, h] (n_layer + 1 entries).
   */
  encode(inputs: ModelInputs): { states: Tensor; hiddenStates?: Tensor[] } {
    const { batch, length } = inputShape(inputs);
    refuseInputs(inputs, "gru", {
      resumeFrom: "a recurrent model has no residual stream to resume from",
      lastPositionLogits: "a decoder option; take the last step of the logits",
      cache: "the GRU has no key/value cache",
    });
    const hidden = this.settings.hiddenSize;
    if (length === 0) throw new RangeError("gru: inputs need at least one time step (got T = 0)");
    if (inputs.attentionMask) checkRightPadding(inputs.attentionMask, batch, length);
    let x: Tensor;
    if (inputs.inputIds) {
      if (!this.wte)
        throw new RangeError(
          "gru: inputIds need token embeddings (include_emb true); give inputsEmbeds [B, T, h_dim] instead",
        );
      x = this.wte.call(inputs.inputIds);
    } else {
      x = inputs.inputsEmbeds!;
      if (x.shape[2] !== hidden)
        throw new RangeError(`gru: inputsEmbeds must be [B, T, ${hidden}], got [${x.shape.join(", ")}]`);
    }
    // As pyvene: position embeddings are added only when positions are given.
    if (inputs.positionIds) {
      if (!this.wpe) throw new RangeError("gru: positionIds need position embeddings (include_emb true)");
      x = tv.add(x, this.wpe.call(inputs.positionIds));
    }
    const states = this.cells.items.map(() => tv.zeros([batch, hidden]));
    const perLayer: Tensor[][] = this.cells.items.map(() => []);
    for (let step = 0; step < length; step++) {
      let input = tv.squeeze(tv.slice(x, 1, step, step + 1), 1);
      this.cells.items.forEach((cell, layer) => {
        input = cell.call(input, { step, state: states[layer] });
        states[layer] = input;
        perLayer[layer].push(input);
      });
    }
    const overTime = perLayer.map((list) => tv.stack(list, 1));
    const last = overTime[overTime.length - 1];
    return inputs.outputHiddenStates ? { states: last, hiddenStates: [x, ...overTime] } : { states: last };
  }

  protected forward(ids: IntTensor): Tensor {
    return this.encode({ inputIds: ids }).states;
  }
}

/** A mask [B, T] of ones then zeros per row: the steps after the real ones cannot change the real steps' states. */
function checkRightPadding(mask: IntTensor, batch: number, length: number): void {
  if (mask.shape.length !== 2 || mask.shape[0] !== batch || mask.shape[1] !== length) {
    throw new RangeError(`gru: attentionMask must be [${batch}, ${length}], got [${mask.shape.join(", ")}]`);
  }
  for (let b = 0; b < batch; b++) {
    const row = mask.data.subarray(b * length, (b + 1) * length);
    const firstPad = row.indexOf(0);
    if (firstPad >= 0 && row.subarray(firstPad).some((v) => v !== 0)) {
      throw new RangeError(
        `gru: attentionMask row ${b} has a real step after padding; the GRU reads the steps in order, ` +
          "so only right padding (ones, then zeros) leaves the real steps' states unchanged",
      );
    }
  }
}

/**
 * pyvene's GRU map (spec §7.1) under `prefix`. `{reset,update,new}_{x2h,h2h}_output` take their
 * third of the fused projection on every GRU model (pyvene's GRU-LM map drops that split: DESIGN.md).
 */
function gruSites(prefix: string, hidden: number): SiteMap {
  const cell = (l: number) => `${prefix}cells.${l}`;
  const site =
    (suffix: string, hook: Site["hook"], dim: number, part?: number) =>
    (l: number): Site => {
      const module = suffix ? `${cell(l)}.${suffix}` : cell(l);
      return part === undefined
        ? { module, hook, dim, recurrent: true }
        : { module, hook, dim, recurrent: true, fusedPart: { index: part, of: 3 } };
    };
  return {
    cell_input: site("", "input", hidden),
    cell_output: site("", "output", hidden),
    reset_gate_input: site("reset_act", "input", hidden),
    update_gate_input: site("update_act", "input", hidden),
    new_gate_input: site("new_act", "input", hidden),
    reset_gate_output: site("reset_act", "output", hidden),
    update_gate_output: site("update_act", "output", hidden),
    new_gate_output: site("new_act", "output", hidden),
    x2h_output: site("x2h", "output", 3 * hidden),
    h2h_output: site("h2h", "output", 3 * hidden),
    reset_x2h_output: site("x2h", "output", hidden, 0),
    update_x2h_output: site("x2h", "output", hidden, 1),
    new_x2h_output: site("x2h", "output", hidden, 2),
    reset_h2h_output: site("h2h", "output", hidden, 0),
    update_h2h_output: site("h2h", "output", hidden, 1),
    new_h2h_output: site("h2h", "output", hidden, 2),
  };
}

/** The GRU models: a GRUModel (`body`) whose states [B, T, h] a head turns into the logits. */
abstract class GRUPretrained extends PretrainedModel {
  readonly family = "gru";
  readonly settings: GRUSettings;
  readonly sites: SiteMap;
  protected readonly body: GRUModel;

  constructor(
    readonly config: HFConfig,
    prefix: string,
  ) {
    super();
    this.settings = gruSettings(config);
    this.sites = gruSites(prefix, this.settings.hiddenSize);
    this.body = new GRUModel(this.settings);
  }

  run(inputs: ModelInputs): ModelOutput {
    const { states, hiddenStates } = this.body.encode(inputs);
    const logits = this.head(states, inputs);
    return hiddenStates ? { logits, hiddenStates } : { logits };
  }

  /** The logits from the last layer's states. */
  protected abstract head(states: Tensor, inputs: ModelInputs): Tensor;
}

/** A head model: the GRUModel registered as `gru`; the subclass registers its head after it. */
abstract class GRUWithHead extends GRUPretrained {
  readonly gru: GRUModel;

  constructor(config: HFConfig) {
    super(config, "gru.");
    this.gru = this.module("gru", this.body);
  }
}

/** score (no bias) on the state at index attentionMask.sum − 1 of each row, or the last step: [B, n_labels]. */
export class GRUForClassification extends GRUWithHead {
  readonly score: Linear;

  constructor(config: HFConfig) {
    super(config);
    this.score = this.module("score", new Linear(this.settings.hiddenSize, this.settings.numLabels, { bias: false }));
  }

  protected head(states: Tensor, inputs: ModelInputs): Tensor {
    const [batch, length] = states.shape;
    const mask = inputs.attentionMask ?? null;
    // pyvene counts the mask's ones (right padding, as encode checked); an all-zero row has no state to pick.
    const index = Array.from({ length: batch }, (_, b) => {
      if (mask === null) return length - 1;
      const count = mask.data.subarray(b * length, (b + 1) * length).reduce((s, v) => s + (v !== 0 ? 1 : 0), 0);
      if (count === 0) throw new RangeError(`gru: attentionMask row ${b} has no real step to classify`);
      return count - 1;
    });
    const pooled = tv.squeeze(tv.gatherAt(states, 1, tv.intTensor(index, [batch, 1])), 1);
    return this.score.call(pooled);
  }
}

/** lm_head (no bias, untied) on the state at every step: [B, T, vocab]. */
export class GRULMHeadModel extends GRUWithHead {
  readonly lm_head: Linear;

  constructor(config: HFConfig) {
    super(config);
    this.lm_head = this.module(
      "lm_head",
      new Linear(this.settings.hiddenSize, this.settings.vocabSize, { bias: false }),
    );
  }

  protected head(states: Tensor): Tensor {
    return this.lm_head.call(states);
  }
}

/** The bare GRUModel; its `logits` are the last layer's states [B, T, h] (pyvene's output[0]). */
export class GRUBaseModel extends GRUPretrained {
  constructor(config: HFConfig) {
    super(config, "");
    for (const [name, child] of this.body.children()) this.module(name, child);
  }

  protected head(states: Tensor): Tensor {
    return states;
  }
}

const ARCHITECTURES = ["GRUForClassification", "GRULMHeadModel", "GRUModel"] as const;

export const gruFamily: ModelFamily = {
  name: "gru",
  modelTypes: ["gru"],
  architectures: ARCHITECTURES,
  create(config) {
    const named = Array.isArray(config.architectures) ? config.architectures.map(String) : [];
    const architecture = named.find((a) => (ARCHITECTURES as readonly string[]).includes(a));
    // The heads differ in shape and weights, so the class must be named.
    if (architecture === undefined) {
      throw new RangeError(
        `config.json: architectures ${JSON.stringify(config.architectures)} must name a GRU class ` +
          `(one of ${ARCHITECTURES.join(", ")})`,
      );
    }
    if (architecture === "GRUForClassification") return new GRUForClassification(config);
    if (architecture === "GRULMHeadModel") return new GRULMHeadModel(config);
    return new GRUBaseModel(config);
  },
};
