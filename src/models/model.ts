/**
 * What every model family provides: a module tree with HF parameter names, `run` over token ids
 * (or embeddings) with HF's masking, positions and hidden-state conventions, and the pyvene site
 * map. The transformer families share one run (decoder.ts); the others (GRU, MLP) run their own
 * and refuse the decoder-only inputs.
 */
import type { KeyValueCache } from "../nn/attention.js";
import { checkMaskValues } from "../nn/masks.js";
import { Module } from "../nn/module.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import { describe, exactKeys } from "../options/index.js";
import type { HFConfig } from "./config.js";
import type { Site, SiteMap } from "./sites.js";

export interface ModelInputs {
  /** Token ids [B, T]. */
  inputIds?: IntTensor;
  /** Input embeddings [B, T, D], instead of ids (HF's inputs_embeds). */
  inputsEmbeds?: Tensor;
  /** 1 for real tokens, 0 for padding, over all positions including cached ones: [B, past + T]. Null means all ones. */
  attentionMask?: IntTensor | null;
  /** Positions [B, T]. Default past..past+T−1, as HF's forward (generation passes mask-based ones). */
  positionIds?: IntTensor;
  /** Keys and values of earlier positions; updated in place with this call's (decoders only). */
  cache?: KeyValueCache | null;
  /** Also return HF's hidden_states: embeddings, each block's output, the last one normalised. */
  outputHiddenStates?: boolean;
  /**
   * Resume at block `layer` with `hidden` [B, T, D] as that block's input, skipping the
   * embeddings and the blocks before it: sweeps reuse a cached prefix this way. inputIds or
   * inputsEmbeds still give the batch, length and default positions (decoders only). With a frozen
   * cache (`cache.prefix(n)`), the positions are n.. and attend to the cached n before them.
   */
  resumeFrom?: { layer: number; hidden: Tensor };
  /** Compute the LM head at the last position only, giving logits [B, 1, V] (decoders only). */
  lastPositionLogits?: boolean;
}

/** The batch size of a run's input: model inputs (from inputIds or inputsEmbeds) or a plain tensor. */
export function batchSize(input: ModelInputs | Tensor | IntTensor, where = "model inputs"): number {
  if (input instanceof Tensor || input instanceof IntTensor) return input.shape[0];
  const t = input.inputIds ?? input.inputsEmbeds;
  if (!t) throw new TypeError(`${where}: give inputIds or inputsEmbeds`);
  return t.shape[0];
}

export interface ModelOutput {
  logits: Tensor;
  hiddenStates?: Tensor[];
}

/** The settings every family reads from its config.json, under these names (each family adds its own). */
export interface ModelSettings {
  /** The width of the hidden states (n_embd, hidden_size, h_dim). */
  readonly hiddenSize: number;
  readonly numLayers: number;
}

export abstract class PretrainedModel extends Module<IntTensor> {
  /** The family's name, e.g. "gpt2" or "llama". */
  abstract readonly family: string;
  /** The HF config.json this model was built from. */
  abstract readonly config: HFConfig;
  /** The config resolved into what the computation needs, with the family's defaults. */
  abstract readonly settings: ModelSettings;
  abstract readonly sites: SiteMap;

  get numLayers(): number {
    return this.settings.numLayers;
  }

  abstract run(inputs: ModelInputs): ModelOutput;

  /** An empty key/value cache for generation; null for architectures without one (all but the decoders). */
  newCache(): KeyValueCache | null {
    return null;
  }

  /** The site of a pyvene component at a layer, with errors that list what exists. */
  site(component: string, layer: number): Site {
    const at = Object.hasOwn(this.sites, component) ? this.sites[component] : undefined;
    if (at === undefined) {
      throw new RangeError(
        `component "${component}" is not available for ${this.family} ` +
          `(available: ${Object.keys(this.sites).join(", ")})`,
      );
    }
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
      throw new RangeError(
        `layer ${layer} is out of range for ${this.family} with ${this.numLayers} layers ` +
          `(expected 0..${this.numLayers - 1})`,
      );
    }
    return at(layer);
  }

  protected forward(ids: IntTensor): Tensor {
    return this.run({ inputIds: ids }).logits;
  }
}

const MODEL_INPUTS = [
  "inputIds",
  "inputsEmbeds",
  "attentionMask",
  "positionIds",
  "cache",
  "outputHiddenStates",
  "resumeFrom",
  "lastPositionLogits",
] as const satisfies readonly (keyof ModelInputs)[];

/**
 * The batch and length of a call's inputs, checking that exactly one of ids and embeddings is
 * given and that no key is unknown. `run` takes camelCase only (IntervenableModel and the sweeps
 * also read pyvene's `input_ids`): a snake_case key here is an error, not a silently dropped input.
 */
export function inputShape(inputs: ModelInputs): { batch: number; length: number } {
  if (typeof inputs !== "object" || inputs === null)
    throw new TypeError(`model inputs must be an object {inputIds, …}, got ${describe(inputs)}`);
  exactKeys(inputs, MODEL_INPUTS, "model inputs");
  const { inputIds, inputsEmbeds } = inputs;
  if (inputs.attentionMask) checkMaskValues(inputs.attentionMask);
  if ((inputIds === undefined) === (inputsEmbeds === undefined)) {
    throw new TypeError("model inputs: give exactly one of inputIds [B, T] and inputsEmbeds [B, T, D]");
  }
  if (inputIds !== undefined && !(inputIds instanceof IntTensor))
    throw new TypeError(`model inputs: inputIds must be an IntTensor [B, T], got ${describe(inputIds)}`);
  if (inputsEmbeds !== undefined && !(inputsEmbeds instanceof Tensor))
    throw new TypeError(`model inputs: inputsEmbeds must be a Tensor [B, T, D], got ${describe(inputsEmbeds)}`);
  if (inputIds !== undefined) {
    if (inputIds.shape.length !== 2)
      throw new RangeError(`model inputs: inputIds must be [B, T], got [${inputIds.shape.join(", ")}]`);
    return { batch: inputIds.shape[0], length: inputIds.shape[1] };
  }
  const e = inputsEmbeds!;
  if (e.rank !== 3) throw new RangeError(`model inputs: inputsEmbeds must be [B, T, D], got [${e.shape.join(", ")}]`);
  return { batch: e.shape[0], length: e.shape[1] };
}

/**
 * Refuses the inputs a family cannot honour, naming the first one given and why, so that a run
 * never silently does less than asked. `cannot` maps an input to the reason.
 */
export function refuseInputs(
  inputs: ModelInputs,
  family: string,
  cannot: { readonly [K in keyof ModelInputs]?: string },
): void {
  for (const [key, why] of Object.entries(cannot)) {
    const value = inputs[key as keyof ModelInputs];
    if (value !== undefined && value !== null && value !== false)
      throw new TypeError(`model inputs: ${key} is not supported by ${family} (${why}); leave it out`);
  }
}

/** A model family: how HF names it and how to build one from its config.json. */
export interface ModelFamily {
  readonly name: string;
  /** HF `model_type` values this family reads. */
  readonly modelTypes: readonly string[];
  /** HF `architectures` class names this family reads. */
  readonly architectures: readonly string[];
  create(config: HFConfig): PretrainedModel;
  /**
   * Checkpoint tensors renamed to this model's parameter names, with buffers HF does not load
   * (e.g. GPT-2's causal `attn.bias`) dropped; identity when the names already match.
   */
  adaptCheckpoint?(tensors: Map<string, Tensor | IntTensor>, model: PretrainedModel): Map<string, Tensor | IntTensor>;
}
