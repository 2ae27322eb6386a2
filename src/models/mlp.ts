/**
 * pyvene's toy MLP (pyvene/models/mlp/modelings_mlp.py): blocks act(ff1(x)) over input
 * embeddings [B, T, h] (T is 1 in pyvene's uses), optionally from its own token and position
 * embeddings (include_emb), and for MLPForClassification a `score` Linear to num_classes.
 * Dropout is the identity at inference and is left out.
 *
 * Not a decoder: `resumeFrom`, `lastPositionLogits` and `cache` are errors. Positions never
 * interact, so padding cannot change a real position's output: `attentionMask` is checked
 * ([B, T]) and needs no other effect.
 */
import { Activation, Embedding, Linear } from "../nn/layers.js";
import { Module, ModuleList } from "../nn/module.js";
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { configBool, configInt, configString, type HFConfig } from "./config.js";
import {
  PretrainedModel,
  inputShape,
  refuseInputs,
  type ModelFamily,
  type ModelInputs,
  type ModelOutput,
  type ModelSettings,
} from "./model.js";
import type { SiteMap } from "./sites.js";

export interface MLPSettings extends ModelSettings {
  readonly numLabels: number;
  readonly activation: string;
  readonly bias: boolean;
  readonly includeEmbeddings: boolean;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly squeezeOutput: boolean;
}

/** pyvene's MLPConfig fields, with its defaults. */
export function mlpSettings(config: HFConfig): MLPSettings {
  const labels =
    config.id2label !== null && typeof config.id2label === "object" ? Object.keys(config.id2label).length : undefined;
  return {
    hiddenSize: configInt(config, "h_dim", 512),
    numLayers: configInt(config, "n_layer", 2),
    // pyvene 0.1.8 writes num_classes; other versions use HF's num_labels (id2label).
    numLabels: configInt(config, ["num_classes", "num_labels"], labels ?? 2),
    activation: configString(config, "activation_function", "gelu"),
    bias: configBool(config, "include_bias", true),
    includeEmbeddings: configBool(config, "include_emb", false),
    vocabSize: configInt(config, "vocab_size", 50257),
    maxPositions: configInt(config, "max_position_embeddings", 512),
    squeezeOutput: configBool(config, "squeeze_output", true),
  };
}

/** act(ff1(x)); pyvene's block also applies dropout, the identity at inference. */
export class MLPBlock extends Module {
  readonly ff1: Linear;
  readonly act: Activation;

  constructor(s: MLPSettings) {
    super();
    this.ff1 = this.module("ff1", new Linear(s.hiddenSize, s.hiddenSize, { bias: s.bias }));
    this.act = this.module("act", new Activation(s.activation));
  }

  protected forward(x: Tensor): Tensor {
    return this.act.call(this.ff1.call(x));
  }
}

export class MLPModel extends Module<IntTensor> {
  readonly wte: Embedding | null;
  readonly wpe: Embedding | null;
  readonly h: ModuleList<MLPBlock>;

  constructor(readonly settings: MLPSettings) {
    super();
    const s = settings;
    this.wte = s.includeEmbeddings ? this.module("wte", new Embedding(s.vocabSize, s.hiddenSize)) : null;
    this.wpe = s.includeEmbeddings ? this.module("wpe", new Embedding(s.maxPositions, s.hiddenSize)) : null;
    this.h = this.module("h", new ModuleList(Array.from({ length: s.numLayers }, () => new MLPBlock(s))));
  }

  /** The last block's output, and every block's input plus the last output when asked for. */
  encode(inputs: ModelInputs): { last: Tensor; hiddenStates?: Tensor[] } {
    const { batch, length } = inputShape(inputs);
    refuseInputs(inputs, "mlp", {
      resumeFrom: "not a decoder; run the blocks from the input",
      lastPositionLogits: "not a decoder; take the last position of the logits",
      cache: "the MLP has no key/value cache",
    });
    const mask = inputs.attentionMask;
    if (mask && (mask.shape.length !== 2 || mask.shape[0] !== batch || mask.shape[1] !== length)) {
      throw new RangeError(`mlp: attentionMask must be [${batch}, ${length}], got [${mask.shape.join(", ")}]`);
    }
    const hidden = this.settings.hiddenSize;
    let x: Tensor;
    if (inputs.inputIds) {
      if (!this.wte)
        throw new RangeError(
          "mlp: inputIds need token embeddings (include_emb true); give inputsEmbeds [B, T, h_dim] instead",
        );
      x = this.wte.call(inputs.inputIds);
    } else {
      x = inputs.inputsEmbeds!;
      if (x.shape[2] !== hidden)
        throw new RangeError(`mlp: inputsEmbeds must be [B, T, ${hidden}], got [${x.shape.join(", ")}]`);
    }
    // As pyvene: position embeddings are added only when positions are given.
    if (inputs.positionIds) {
      if (!this.wpe) throw new RangeError("mlp: positionIds need position embeddings (include_emb true)");
      x = tv.add(x, this.wpe.call(inputs.positionIds));
    }
    const hiddenStates: Tensor[] = [];
    for (const block of this.h.items) {
      hiddenStates.push(x);
      x = block.call(x);
    }
    hiddenStates.push(x);
    return inputs.outputHiddenStates ? { last: x, hiddenStates } : { last: x };
  }

  protected forward(ids: IntTensor): Tensor {
    return this.encode({ inputIds: ids }).last;
  }
}

/** Sites of pyvene's MLP maps (spec §7.1/§7.2), under `prefix` (`mlp.` for the classifier). */
function mlpSites(prefix: string, hidden: number): SiteMap {
  return {
    block_input: (l) => ({ module: `${prefix}h.${l}`, hook: "input", dim: hidden }),
    block_output: (l) => ({ module: `${prefix}h.${l}`, hook: "output", dim: hidden }),
    mlp_activation: (l) => ({ module: `${prefix}h.${l}.act`, hook: "output", dim: hidden }),
  };
}

/** score(MLPModel(x)), [B, T, C], or [B, C] when squeeze_output and T is 1 (torch's squeeze(1)). */
export class MLPForClassification extends PretrainedModel {
  readonly family = "mlp";
  readonly settings: MLPSettings;
  readonly sites: SiteMap;
  readonly mlp: MLPModel;
  readonly score: Linear;

  constructor(readonly config: HFConfig) {
    super();
    const s = (this.settings = mlpSettings(config));
    this.sites = mlpSites("mlp.", s.hiddenSize);
    this.mlp = this.module("mlp", new MLPModel(s));
    this.score = this.module("score", new Linear(s.hiddenSize, s.numLabels, { bias: s.bias }));
  }

  run(inputs: ModelInputs): ModelOutput {
    const { last, hiddenStates } = this.mlp.encode(inputs);
    const scores = this.score.call(last);
    const logits = this.settings.squeezeOutput && scores.shape[1] === 1 ? tv.squeeze(scores, 1) : scores;
    return hiddenStates ? { logits, hiddenStates } : { logits };
  }
}

/** The bare MLPModel; its `logits` are the last block's output [B, T, h] (pyvene's output[0]). */
export class MLPBaseModel extends PretrainedModel {
  readonly family = "mlp";
  readonly settings: MLPSettings;
  readonly sites: SiteMap;
  private readonly body: MLPModel;

  constructor(readonly config: HFConfig) {
    super();
    this.settings = mlpSettings(config);
    this.sites = mlpSites("", this.settings.hiddenSize);
    this.body = new MLPModel(this.settings);
    for (const [name, child] of this.body.children()) this.module(name, child);
  }

  run(inputs: ModelInputs): ModelOutput {
    const { last, hiddenStates } = this.body.encode(inputs);
    return hiddenStates ? { logits: last, hiddenStates } : { logits: last };
  }
}

const ARCHITECTURES = ["MLPForClassification", "MLPModel"] as const;

export const mlpFamily: ModelFamily = {
  name: "mlp",
  modelTypes: ["mlp"],
  architectures: ARCHITECTURES,
  create(config) {
    const named = Array.isArray(config.architectures) ? config.architectures.map(String) : [];
    const architecture = named.find((a) => (ARCHITECTURES as readonly string[]).includes(a));
    if (named.length > 0 && architecture === undefined) {
      throw new RangeError(
        `config.json: architectures ${JSON.stringify(named)} has no MLP class ` +
          `(expected one of ${ARCHITECTURES.join(", ")})`,
      );
    }
    // Without architectures: the classifier, the only class pyvene builds (create_mlp_classifier).
    return architecture === "MLPModel" ? new MLPBaseModel(config) : new MLPForClassification(config);
  },
};
