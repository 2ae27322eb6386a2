/**
 * The one run every transformer family shares, as HF's *ForCausalLM computes it:
 *
 *   x = embed(tokens, positions)          token embeddings, plus what the family adds (positions, a scale)
 *   x = block_l(x, pass)  for each l      pass: what the blocks share in one call (masks, rotary tables, cache)
 *   logits = head(norm(x))
 *
 * The base owns the run: the input checks, positions (past..past+T−1 unless given), resuming at
 * a block from a given residual stream, last-position logits, HF's hidden states and the
 * key/value cache. A family supplies its pieces, at the module paths HF gives them, the pass
 * context its blocks read, and its site map.
 */
import { KeyValueCache } from "../nn/attention.js";
import { type Embedding, Linear } from "../nn/layers.js";
import { positionIds } from "../nn/masks.js";
import { TiedLinear } from "../nn/tied.js";
import type { AnyModule, Module } from "../nn/module.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import {
  inputShape,
  PretrainedModel,
  refuseInputs,
  type ModelInputs,
  type ModelOutput,
  type ModelSettings,
} from "./model.js";

/** The settings every decoder family has, under these names. */
export interface DecoderSettings extends ModelSettings {
  readonly vocabSize: number;
}

/** What a family's pass context is built from. */
export interface PassInputs {
  readonly batch: number;
  /** Positions in this call. */
  readonly length: number;
  /** Positions already in the cache. */
  readonly past: number;
  /** Position ids [B, T]. */
  readonly positions: IntTensor;
  /** 1 real, 0 padding over past + length keys [B, past + T]; null means all ones. */
  readonly attentionMask: IntTensor | null;
  readonly cache: KeyValueCache | null;
}

/** A call's checked inputs: what the run needs before any module is called. */
interface Start {
  readonly passInputs: PassInputs;
  /** The first block to run, and its input when resuming. */
  readonly first: number;
  readonly resumed: Tensor | null;
}

/** A transformer family: P is the context its blocks share in one pass. */
export abstract class DecoderModel<P = unknown> extends PretrainedModel {
  abstract override readonly settings: DecoderSettings;

  /** The token embedding table (wte, embed_tokens, embed_in). */
  protected abstract get tokenEmbedding(): Embedding;
  protected abstract get blocks(): readonly Module<Tensor, P>[];
  protected abstract get finalNorm(): AnyModule;
  protected abstract get lmHead(): AnyModule;
  /** What every block reads in one pass: masks, rotary tables, the cache. */
  protected abstract passContext(pass: PassInputs): P;

  /** The residual stream entering block 0 from the token embeddings [B, T, D]; the family adds positions or a scale. */
  protected embed(tokens: Tensor, _positions: IntTensor): Tensor {
    return tokens;
  }

  /** Logits from the normalised hidden states: the head, and what the family applies after it. */
  protected logits(h: Tensor): Tensor {
    return this.afterHead(this.lmHead.call(h));
  }

  /** What the family applies to the head's output, elementwise (Gemma2's soft-cap); nothing by default. */
  protected afterHead(logits: Tensor): Tensor {
    return logits;
  }

  /** A learned position table's size and config field, for families that have one: positions past it are an error. */
  protected get positionTable(): { size: number; field: string } | null {
    return null;
  }

  override newCache(): KeyValueCache {
    return new KeyValueCache(this.numLayers);
  }

  run(inputs: ModelInputs): ModelOutput {
    const start = this.check(inputs);
    const pass = this.passContext(start.passInputs);
    // HF's hidden states: the embeddings (or the resumed stream), each block's output, the last one normalised.
    const hiddenStates: Tensor[] | null = inputs.outputHiddenStates ? [] : null;
    let x = this.enter(inputs, start);
    for (const block of this.blocks.slice(start.first)) {
      hiddenStates?.push(x);
      x = block.call(x, pass);
    }
    x = this.finalNorm.call(x);
    hiddenStates?.push(x);
    // The head is the widest matmul (vocabulary); generation and the sweeps need only the last position.
    const logits = this.logits(inputs.lastPositionLogits ? tv.slice(x, 1, -1) : x);
    return hiddenStates ? { logits, hiddenStates } : { logits };
  }

  /**
   * Logits [B, T, V] read from a residual stream [B, T, D] as if it were the last block's output: the final norm, the
   * head and what the family applies after it. The logit lens reads every layer's stream through it.
   */
  unembed(hidden: Tensor): Tensor {
    return this.headLogits(this.finalNorm.call(hidden));
  }

  /** Logits from hidden states the final norm has already seen (HF's last hidden state): the head and what follows. */
  headLogits(normalised: Tensor): Tensor {
    return this.logits(normalised);
  }

  /**
   * The logits of `tokens` only [B, T, k], from a residual stream [B, T, D], as `unembed` gives them
   * (column i is token tokens[i]): the head's rows for those tokens alone, when the head is a plain
   * projection without hooks, which skips the vocabulary-wide matmul; else the full logits, gathered.
   */
  tokenLogits(hidden: Tensor, tokens: readonly number[]): Tensor {
    const bad = tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= this.settings.vocabSize);
    if (bad !== undefined)
      throw new RangeError(`tokenLogits: token ${bad} is outside 0..${this.settings.vocabSize - 1} (the vocabulary)`);
    const head = this.lmHead;
    const normalised = this.finalNorm.call(hidden);
    if (!(head instanceof Linear || head instanceof TiedLinear) || head.hookCount > 0)
      return tv.indexSelect(this.logits(normalised), -1, tokens);
    const bias = head instanceof Linear && head.bias !== null ? tv.indexSelect(head.bias, 0, tokens) : null;
    return this.afterHead(tv.linear(normalised, tv.indexSelect(head.weight, 0, tokens), bias));
  }

  /** The final norm and the head themselves, for analyses that apply them piece by piece (direct logit attribution). */
  get readout(): { readonly norm: AnyModule; readonly head: AnyModule } {
    return { norm: this.finalNorm, head: this.lmHead };
  }

  /**
   * The residual stream [B, T, D] after block `lastLayer` (its block_output, before any final
   * norm): the embeddings, or `inputs.resumeFrom`, through the blocks up to and including
   * `lastLayer`, with hooks firing as usual; the blocks after it, the norm and the head do not run.
   */
  runBlocks(inputs: ModelInputs, lastLayer: number): Tensor {
    const cannot = {
      outputHiddenStates: "it returns one residual stream",
      lastPositionLogits: "it computes no logits",
    };
    const cache = "the blocks after lastLayer would not extend it; a frozen one, cache.prefix(n), may be read";
    refuseInputs(inputs, `${this.family}.runBlocks`, inputs.cache?.frozen ? cannot : { ...cannot, cache });
    const start = this.check(inputs);
    if (!Number.isInteger(lastLayer) || lastLayer < start.first || lastLayer >= this.numLayers) {
      throw new RangeError(
        `runBlocks: lastLayer ${lastLayer} is out of range ` +
          `(expected ${start.first}..${this.numLayers - 1}: from the first block run to the last block)`,
      );
    }
    const pass = this.passContext(start.passInputs);
    let x = this.enter(inputs, start);
    for (const block of this.blocks.slice(start.first, lastLayer + 1)) x = block.call(x, pass);
    return x;
  }

  /**
   * Every check on a call's inputs, before any module runs: shapes, ids within their tables, the mask,
   * the resume point, the cache.
   */
  private check(inputs: ModelInputs): Start {
    const { batch, length } = inputShape(inputs);
    const s = this.settings;
    const cache = inputs.cache ?? null;
    if (cache !== null && (!(cache instanceof KeyValueCache) || cache.layers !== this.numLayers)) {
      throw new TypeError(
        `model inputs: cache must be a KeyValueCache of ${this.numLayers} layers (model.newCache()), ` +
          `got ${cache instanceof KeyValueCache ? `one of ${cache.layers}` : typeof cache}`,
      );
    }
    const past = cache?.length ?? 0;
    const mask = inputs.attentionMask ?? null;
    if (mask !== null && (mask.shape.length !== 2 || mask.shape[0] !== batch || mask.shape[1] !== past + length)) {
      throw new RangeError(
        `model inputs: attentionMask must be [${batch}, ${past + length}] ` +
          `(the batch, and the cached and new positions), got [${mask.shape.join(", ")}]`,
      );
    }
    const positions = inputs.positionIds ?? positionIds(null, batch, length, past);
    checkIds(positions, [batch, length], "positionIds", this.positionTable);
    if (inputs.inputIds)
      checkIds(inputs.inputIds, [batch, length], "inputIds", { size: s.vocabSize, field: "vocab_size" });
    const embeds = inputs.inputsEmbeds;
    if (embeds && embeds.shape[2] !== s.hiddenSize) {
      throw new RangeError(
        `model inputs: inputsEmbeds must be [B, T, ${s.hiddenSize}], got [${embeds.shape.join(", ")}]`,
      );
    }
    const resume = inputs.resumeFrom;
    if (resume) {
      if (cache !== null && !cache.frozen)
        throw new TypeError(
          "model inputs: resumeFrom and a cache cannot be combined (the skipped blocks would not extend the cache; " +
            "a frozen one, cache.prefix(n), may be read)",
        );
      const { layer, hidden } = resume;
      if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
        throw new RangeError(
          `model inputs: resumeFrom.layer ${layer} is out of range (expected 0..${this.numLayers - 1})`,
        );
      }
      if (
        !(hidden instanceof Tensor) ||
        hidden.rank !== 3 ||
        hidden.shape[0] !== batch ||
        hidden.shape[1] !== length ||
        hidden.shape[2] !== s.hiddenSize
      ) {
        const got = hidden instanceof Tensor ? `[${hidden.shape.join(", ")}]` : typeof hidden;
        throw new RangeError(
          `model inputs: resumeFrom.hidden must be [${batch}, ${length}, ${s.hiddenSize}], got ${got}`,
        );
      }
    }
    const passInputs = { batch, length, past, positions, attentionMask: mask, cache };
    return { passInputs, first: resume?.layer ?? 0, resumed: resume?.hidden ?? null };
  }

  /** The first block's input: the resumed residual stream, or the embeddings. */
  private enter(inputs: ModelInputs, { passInputs, resumed }: Start): Tensor {
    if (resumed) return resumed;
    return this.embed(inputs.inputsEmbeds ?? this.tokenEmbedding.call(inputs.inputIds!), passInputs.positions);
  }
}

/**
 * Ids or positions of shape [B, T], each within `table` when there is one,
 * or an error naming the config field that sizes it.
 */
function checkIds(
  ids: IntTensor,
  shape: readonly number[],
  what: string,
  table: { size: number; field: string } | null,
): void {
  if (!(ids instanceof IntTensor) || ids.shape.length !== 2 || ids.shape[0] !== shape[0] || ids.shape[1] !== shape[1]) {
    const got = ids instanceof IntTensor ? `[${ids.shape.join(", ")}]` : typeof ids;
    throw new RangeError(`model inputs: ${what} must be [${shape.join(", ")}] like the inputs, got ${got}`);
  }
  if (table === null) return;
  const bad = ids.data.find((i) => i < 0 || i >= table.size);
  if (bad !== undefined)
    throw new RangeError(
      `model inputs: ${what} contains ${bad}, outside 0..${table.size - 1} (${table.field} = ${table.size})`,
    );
}
