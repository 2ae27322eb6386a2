/**
 * Direct logit attribution: in a pre-norm decoder the last residual stream is the embeddings plus
 * every layer's attention and MLP outputs, so with the final norm's statistics frozen at that
 * stream (TransformerLens's convention: each piece is centred, for LayerNorm, and divided by the
 * stream's own standard deviation or RMS) the readout is linear, and a logit (or a logit
 * difference) splits exactly into one term per piece plus the constant terms of the norm's and the
 * head's biases. The attention output splits further into heads through the output projection.
 */
import type { DecoderModel } from "../models/decoder.js";
import type { PretrainedModel } from "../models/model.js";
import { LayerNorm, Linear, RMSNorm } from "../nn/layers.js";
import { TiedLinear } from "../nn/tied.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { checkPrompt, checkTarget } from "./checks.js";
import { asDecoder } from "./engine.js";
import { recordViews } from "./lens.js";

// The readout analyses are exported together from here: the lens, and the attribution built on its recording.
export { logitLens, type LensOptions, type LensResult } from "./lens.js";

export interface LogitAttributionOptions {
  /** The prompt [1, T]. */
  inputIds: IntTensor;
  /** The token whose logit is attributed. */
  target: number;
  /** When given, the logit difference target − contrast is attributed. */
  contrast?: number;
  /** Default the last position. */
  position?: number;
  /** Split each attention output into heads; default where the site map has head_attention_value_output. */
  heads?: boolean;
}

const LOGIT_ATTRIBUTION_OPTIONS = [
  "inputIds",
  "target",
  "contrast",
  "position",
  "heads",
] as const satisfies readonly (keyof LogitAttributionOptions)[];

/** Each term's share of the logit: embeddings + Σ attention + Σ mlp + bias = total. */
export interface LogitAttributionResult {
  kind: "logit-attribution";
  target: number;
  contrast: number | null;
  position: number;
  /** The model's logit of target at position (minus contrast's). */
  total: number;
  /** The final norm's divisor, frozen at the last stream: its standard deviation (LayerNorm) or RMS. */
  normScale: number;
  embeddings: number;
  /** Per layer. */
  attention: Float32Array;
  mlp: Float32Array;
  /** The constant terms: the final norm's bias and the head's bias. */
  bias: number;
  /** Per layer: values [L × count] row-major, and the output projection's bias; Σ values + bias = attention. */
  heads: { count: number; values: Float32Array; bias: Float32Array } | null;
}

export function directLogitAttribution(
  anyModel: PretrainedModel,
  attributionOptions: LogitAttributionOptions,
): LogitAttributionResult {
  const where = "directLogitAttribution";
  const model = asDecoder(anyModel, where);
  const options = readOptions<LogitAttributionOptions>(
    attributionOptions,
    LOGIT_ATTRIBUTION_OPTIONS,
    `${where} options`,
  );
  const inputIds = checkPrompt(options.inputIds, "inputIds", where);
  const length = inputIds.shape[1];
  const vocab = model.settings.vocabSize;
  if (options.target === undefined)
    throw new RangeError(`${where}: target is required (a token id in 0..${vocab - 1})`);
  const target = checkTarget(options.target, vocab, where)!;
  const contrast = options.contrast ?? null;
  if (contrast !== null && (!Number.isInteger(contrast) || contrast < 0 || contrast >= vocab))
    throw new RangeError(`${where}: contrast must be a token id in 0..${vocab - 1}, got ${describe(contrast)}`);
  if (contrast === target) throw new RangeError(`${where}: contrast must differ from target (${target})`);
  const position = options.position ?? length - 1;
  if (!Number.isInteger(position) || position < 0 || position >= length)
    throw new RangeError(`${where}: position must be an integer in 0..${length - 1}, got ${describe(position)}`);
  const hasHeads = Object.hasOwn(model.sites, "head_attention_value_output");
  const splitHeads = options.heads ?? hasHeads;
  if (typeof splitHeads !== "boolean")
    throw new RangeError(`${where}: heads must be true or false, got ${describe(splitHeads)}`);
  if (splitHeads && !hasHeads)
    throw new RangeError(`${where}: heads: ${model.family} has no head_attention_value_output site to split`);

  const layers = Array.from({ length: model.numLayers }, (_, l) => l);
  const sites = [
    model.site("block_input", 0),
    ...layers.map((l) => model.site("attention_output", l)),
    ...layers.map((l) => model.site("mlp_output", l)),
    ...(splitHeads ? layers.map((l) => model.site("head_attention_value_output", l)) : []),
  ];
  const { views, final } = recordViews(model, inputIds, sites);
  const at = (view: Tensor) => atPosition(view, position);
  const stream = at(final);
  const embeddings = at(views[0]);
  const attention = layers.map((l) => at(views[1 + l]));
  const mlp = layers.map((l) => at(views[1 + layers.length + l]));
  checkResidualSum(stream, [embeddings, ...attention, ...mlp], model, where);

  const readout = readoutDirection(model, stream, target, contrast, where);
  const dot = (v: Float32Array) => v.reduce((sum, x, i) => sum + x * readout.direction[i], 0);
  const logits = tv.noGrad(() => model.unembed(tv.slice(final, 1, position, position + 1))).data;
  const result: LogitAttributionResult = {
    kind: "logit-attribution",
    target,
    contrast,
    position,
    total: logits[target] - (contrast === null ? 0 : logits[contrast]),
    normScale: readout.scale,
    embeddings: dot(embeddings),
    attention: Float32Array.from(attention, dot),
    mlp: Float32Array.from(mlp, dot),
    bias: readout.constant,
    heads: null,
  };
  const parts = [result.embeddings, ...result.attention, ...result.mlp, result.bias];
  const sum = parts.reduce((a, b) => a + b, 0);
  const scale = Math.max(1, Math.abs(result.total), ...parts.map(Math.abs));
  // A family that transforms its logits after the head (Gemma2's soft-cap) is not linear in the stream.
  if (Math.abs(sum - result.total) > 1e-4 * scale) {
    throw new RangeError(
      `${where}: the terms sum to ${sum}, not the model's ${result.total}: ${model.family}'s logits are not ` +
        "linear in the final norm's output (e.g. soft-capped), so they do not split into direct contributions",
    );
  }
  if (splitHeads) {
    const headViews = layers.map((l) => views[1 + 2 * layers.length + l]);
    result.heads = headContributions(model, headViews, position, dot, result.attention, where);
  }
  return result;
}

/** The position's row [D] of a per-position value [1, T, D]. */
function atPosition(view: Tensor, position: number): Float32Array {
  const width = view.shape[2];
  return view.data.slice(position * width, (position + 1) * width);
}

/** The embeddings plus each layer's outputs must rebuild the last stream (not so with post-norms on the outputs). */
function checkResidualSum(stream: Float32Array, pieces: Float32Array[], model: DecoderModel, where: string): void {
  const scale = Math.max(1, ...stream.map(Math.abs));
  for (let i = 0; i < stream.length; i++) {
    const sum = pieces.reduce((s, piece) => s + piece[i], 0);
    if (Math.abs(sum - stream[i]) > 1e-4 * scale) {
      throw new RangeError(
        `${where}: ${model.family}'s last residual stream is not the embeddings plus the attention and MLP outputs ` +
          `(dimension ${i}: ${sum} vs ${stream[i]}); its blocks normalise their outputs before adding them, ` +
          "so direct contributions are not defined",
      );
    }
  }
}

/**
 * The readout with the final norm frozen at `stream`: a term's contribution is piece · direction,
 * plus `constant` once (the norm's bias and the head's bias along target − contrast).
 */
function readoutDirection(
  model: DecoderModel,
  stream: Float32Array,
  target: number,
  contrast: number | null,
  where: string,
): { direction: Float32Array; constant: number; scale: number } {
  const { norm, head } = model.readout;
  if (!(head instanceof Linear || head instanceof TiedLinear))
    throw new TypeError(`${where}: ${model.family}'s head is a ${head.constructor.name}, not a linear unembedding`);
  const width = stream.length;
  const row = (id: number) => head.weight.data.subarray(id * width, (id + 1) * width);
  const unembed = Float32Array.from(row(target), (w, i) => w - (contrast === null ? 0 : row(contrast)[i]));
  const headBias = head instanceof Linear && head.bias ? pick(head.bias.data, target, contrast) : 0;
  const mean = (v: Float32Array) => v.reduce((a, b) => a + b, 0) / v.length;
  if (norm instanceof LayerNorm) {
    const centre = mean(stream);
    const scale = Math.sqrt(mean(stream.map((x) => (x - centre) ** 2)) + norm.eps);
    const weighted = Float32Array.from(unembed, (u, i) => u * (norm.weight ? norm.weight.data[i] : 1));
    // Σ (c_i − mean c)·a_i = Σ c_i·(a_i − mean a): centring moves onto the direction.
    const offset = mean(weighted);
    const constant = (norm.bias ? norm.bias.data.reduce((s, b, i) => s + b * unembed[i], 0) : 0) + headBias;
    return { direction: weighted.map((a) => (a - offset) / scale), constant, scale };
  }
  if (norm instanceof RMSNorm) {
    const scale = Math.sqrt(mean(stream.map((x) => x * x)) + norm.eps);
    const weight = (i: number) =>
      norm.weight === null ? 1 : norm.options.offsetWeight ? 1 + norm.weight.data[i] : norm.weight.data[i];
    return { direction: unembed.map((u, i) => (u * weight(i)) / scale), constant: headBias, scale };
  }
  throw new TypeError(`${where}: ${model.family}'s final norm is a ${norm.constructor.name}, not LayerNorm or RMSNorm`);
}

function pick(values: Float32Array, target: number, contrast: number | null): number {
  return values[target] - (contrast === null ? 0 : values[contrast]);
}

/**
 * Each head's term: its slice of the output projection's input through the projection alone (the
 * other heads zeroed), less the projection of zeros, which is the bias's term.
 */
function headContributions(
  model: DecoderModel,
  headViews: Tensor[],
  position: number,
  dot: (v: Float32Array) => number,
  attention: Float32Array,
  where: string,
): { count: number; values: Float32Array; bias: Float32Array } {
  const [, count, length, headDim] = headViews[0].shape;
  const values = new Float32Array(headViews.length * count);
  const bias = new Float32Array(headViews.length);
  headViews.forEach((view, l) => {
    const projection = model.getModule(model.site("head_attention_value_output", l).module);
    // Row h holds head h's value alone; the last row is zeros.
    const input = new Float32Array((count + 1) * count * headDim);
    for (let h = 0; h < count; h++) {
      const from = (h * length + position) * headDim;
      input.set(view.data.subarray(from, from + headDim), (h * count + h) * headDim);
    }
    const out = tv.noGrad(() => projection.call(new tv.Tensor(input, [count + 1, 1, count * headDim]))) as Tensor;
    const width = out.shape[2];
    const terms = Array.from({ length: count + 1 }, (_, h) => dot(out.data.subarray(h * width, (h + 1) * width)));
    bias[l] = terms[count];
    for (let h = 0; h < count; h++) values[l * count + h] = terms[h] - terms[count];
    const sum = terms.slice(0, count).reduce((a, t) => a + t - terms[count], terms[count]);
    if (Math.abs(sum - attention[l]) > 1e-4 * Math.max(1, Math.abs(attention[l]))) {
      throw new RangeError(
        `${where}: at layer ${l} the heads sum to ${sum}, not the attention output's ${attention[l]}: ` +
          `${model.family}'s attention changes its value after the output projection; pass heads: false`,
      );
    }
  });
  return { count, values, bias };
}
