/**
 * Sequence classification on the decoders, as HF's GPT2ForSequenceClassification and
 * LlamaForSequenceClassification (Mistral, Qwen2, Qwen3, Gemma, Gemma2 alike) compute it:
 *
 *   h = norm(blocks(embed(tokens)))             the LM's run, without its LM head
 *   logits = score(h)                           score: Linear(hidden_size, num_labels, bias=False), [B, T, L]
 *   pooled[b] = logits[b, last non-pad token]   found from pad_token_id, so left and right padding both work
 *
 * `run` returns the pooled logits [B, L]. The pyvene sites are the LM's (the same module tree but
 * for `score` in place of `lm_head`). resumeFrom and outputHiddenStates apply as for the LM; the
 * cache and lastPositionLogits are refused: one label per whole sequence leaves nothing to
 * generate, and the output is already one row per sequence. unembed and readout give the score
 * head's per-position logits [B, T, L] (a label lens), as for the LM's vocabulary.
 */
import type { Conv1D } from "../nn/layers.js";
import { Linear } from "../nn/layers.js";
import * as tv from "../tensor/index.js";
import { IntTensor } from "../tensor/index.js";
import { configInt, configOptionalNumber, type HFConfig } from "./config.js";
import type { PassInputs } from "./decoder.js";
import {
  GPT2_PARTS,
  type GPT2Attention,
  type PassContext as GPT2PassContext,
  gpt2PassContext,
  type GPT2Settings,
  gpt2Settings,
  gpt2Sites,
} from "./gpt2.js";
import { GPTLayoutDecoder } from "./gpt2-layout.js";
import { LlamaDecoder } from "./llama.js";
import {
  inputShape,
  refuseInputs,
  type ModelFamily,
  type ModelInputs,
  type ModelOutput,
  type PretrainedModel,
} from "./model.js";

export const GPT2_CLASSIFIERS: readonly string[] = ["GPT2ForSequenceClassification"];

/** HF's classifier class per Llama-family model type (OLMo and OLMo2 have none). */
const LLAMA_CLASSIFIER_TYPES: Readonly<Record<string, string>> = {
  LlamaForSequenceClassification: "llama",
  MistralForSequenceClassification: "mistral",
  Qwen2ForSequenceClassification: "qwen2",
  Qwen3ForSequenceClassification: "qwen3",
  GemmaForSequenceClassification: "gemma",
  Gemma2ForSequenceClassification: "gemma2",
};
export const LLAMA_CLASSIFIERS: readonly string[] = Object.keys(LLAMA_CLASSIFIER_TYPES);

/** Whether config.json's `architectures` names one of `classifiers`. */
export function namesClassifier(config: HFConfig, classifiers: readonly string[]): boolean {
  return Array.isArray(config.architectures) && config.architectures.some((a) => classifiers.includes(String(a)));
}

/** HF's num_labels: the length of `id2label` (what HF saves), else `num_labels`, else 2. */
export function numLabelsOf(config: HFConfig): number {
  const { id2label } = config;
  if (id2label !== undefined && id2label !== null) {
    if (typeof id2label !== "object" || Array.isArray(id2label) || Object.keys(id2label).length === 0)
      throw new TypeError(
        `config.json: "id2label" must be a non-empty object {"0": label, …}, got ${describe(id2label)}`,
      );
    return Object.keys(id2label).length;
  }
  return configInt(config, "num_labels", 2);
}

function describe(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** config.json's pad_token_id, which pooling needs to find each row's last real token; null when absent. */
function padTokenOf(config: HFConfig): number | null {
  const id = configOptionalNumber(config, "pad_token_id");
  if (id === undefined) return null;
  if (!Number.isInteger(id) || id < 0)
    throw new TypeError(`config.json: "pad_token_id" must be a non-negative integer or null, got ${id}`);
  return id;
}

/** What both classifiers add to their decoder: the score head, its size, and the padding token. */
interface Classifier {
  readonly family: string;
  readonly numLabels: number;
  readonly padTokenId: number | null;
}

/**
 * Per row, the position whose logits HF pools [B, 1]: the last token that is not pad_token_id
 * (argmax of position × non-pad, so 0 for an all-pad row); the last position without ids or
 * without a padding token, where HF allows only a batch of one.
 */
function poolingPositions(model: Classifier, inputs: ModelInputs): IntTensor {
  const { batch, length } = inputShape(inputs);
  const pad = model.padTokenId;
  if (pad === null && batch !== 1) {
    throw new RangeError(
      `${model.family} sequence classifier: batch size ${batch} needs config.json "pad_token_id" to find each ` +
        "row's last token (HF: cannot handle batch sizes > 1 if no padding token is defined); " +
        "set it or run rows one by one",
    );
  }
  const out = new Int32Array(batch).fill(length - 1);
  const ids = inputs.inputIds;
  if (pad !== null && ids !== undefined) {
    for (let b = 0; b < batch; b++) {
      let last = 0;
      for (let t = 0; t < length; t++) if (ids.data[b * length + t] !== pad) last = t;
      out[b] = last;
    }
  }
  return new IntTensor(out, [batch, 1]);
}

/** The decoder's run with the score head, pooled per row: logits [B, num_labels]. */
function classify(model: Classifier, inputs: ModelInputs, run: (inputs: ModelInputs) => ModelOutput): ModelOutput {
  refuseInputs(inputs, `${model.family} sequence classifier`, {
    cache: "it scores whole sequences; there is nothing to generate",
    lastPositionLogits: "its logits are already one row per sequence, at each row's last non-pad token",
  });
  const positions = poolingPositions(model, inputs);
  const { logits, hiddenStates } = run(inputs);
  const pooled = tv.reshape(tv.gatherAt(logits, 1, positions), [positions.shape[0], model.numLabels]);
  return hiddenStates ? { logits: pooled, hiddenStates } : { logits: pooled };
}

/** HF's GPT2ForSequenceClassification: `transformer.*` and `score`. */
export class GPT2ForSequenceClassification
  extends GPTLayoutDecoder<GPT2Settings, GPT2Attention, GPT2PassContext, Conv1D>
  implements Classifier
{
  readonly family = "gpt2";
  readonly numLabels: number;
  readonly padTokenId: number | null;
  readonly score: Linear;

  constructor(config: HFConfig) {
    super(config, gpt2Settings(config), gpt2Sites, GPT2_PARTS);
    this.numLabels = numLabelsOf(config);
    this.padTokenId = padTokenOf(config);
    this.score = this.module("score", new Linear(this.settings.hiddenSize, this.numLabels, { bias: false }));
  }

  protected get lmHead(): Linear {
    return this.score;
  }

  protected passContext(pass: PassInputs): GPT2PassContext {
    return gpt2PassContext(pass);
  }

  override run(inputs: ModelInputs): ModelOutput {
    return classify(this, inputs, (i) => super.run(i));
  }
}

/** HF's *ForSequenceClassification of the Llama family: `model.*` and `score` (no logit soft-cap, as HF's). */
export class LlamaForSequenceClassification extends LlamaDecoder implements Classifier {
  readonly numLabels: number;
  readonly padTokenId: number | null;
  readonly score: Linear;

  constructor(config: HFConfig) {
    super(withModelType(config));
    this.numLabels = numLabelsOf(config);
    this.padTokenId = padTokenOf(config);
    this.score = this.module("score", new Linear(this.settings.hiddenSize, this.numLabels, { bias: false }));
  }

  protected get lmHead(): Linear {
    return this.score;
  }

  override run(inputs: ModelInputs): ModelOutput {
    return classify(this, inputs, (i) => super.run(i));
  }
}

/** A config without model_type gets the one its classifier class implies, as the LM's settings reader needs it. */
function withModelType(config: HFConfig): HFConfig {
  if (config.model_type !== undefined && config.model_type !== null) return config;
  const named = Array.isArray(config.architectures) ? config.architectures.map(String) : [];
  const type = named.map((a) => LLAMA_CLASSIFIER_TYPES[a]).find((t) => t !== undefined);
  return type === undefined ? config : { ...config, model_type: type };
}

/**
 * `family` also reading its classifier checkpoints: `architectures` naming one of `classifiers`
 * builds `Classifier` instead of the LM. The `score.*` weights bypass the family's renaming (which
 * would put GPT-2's under `transformer.`).
 */
export function withSequenceClassification(
  family: ModelFamily,
  classifiers: readonly string[],
  Classifier: new (config: HFConfig) => PretrainedModel,
): ModelFamily {
  const adapt = family.adaptCheckpoint;
  return {
    ...family,
    architectures: [...family.architectures, ...classifiers],
    create: (config) => (namesClassifier(config, classifiers) ? new Classifier(config) : family.create(config)),
    adaptCheckpoint(tensors, model) {
      if (!(model instanceof Classifier)) return adapt ? adapt(tensors, model) : tensors;
      const isHead = (name: string) => name.startsWith("score.");
      const body = new Map([...tensors].filter(([name]) => !isHead(name)));
      const adapted = new Map(adapt ? adapt(body, model) : body);
      for (const [name, t] of tensors) if (isHead(name)) adapted.set(name, t);
      return adapted;
    },
  };
}
