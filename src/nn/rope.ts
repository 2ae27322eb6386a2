/**
 * Rotary inverse frequencies as HF's modeling_rope_utils computes them, rounding to float32 at
 * every step as its float32 tensors do: the default θ^(−2i/d), "linear" scaling (positions
 * interpolated by a factor), Llama 3's frequency-dependent scaling and YaRN (with its factor on
 * cos/sin, `ropeAttentionFactor`); the cos/sin tables built from them, and rotation of the first
 * features of queries and keys (half-split layout, as Llama and NeoX).
 */
import * as tv from "../tensor/index.js";
import { type IntTensor, Tensor } from "../tensor/index.js";

export type RopeScaling =
  | { readonly type: "linear"; readonly factor: number }
  | {
      readonly type: "llama3";
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    }
  | {
      readonly type: "yarn";
      readonly factor: number;
      readonly originalMaxPositionEmbeddings: number;
      readonly betaFast: number;
      readonly betaSlow: number;
      /** Round the blend's dimension range outwards to integers (HF's default; GPT-OSS sets false). */
      readonly truncate: boolean;
      /** The cos/sin factor when the config states it; else from factor (and mscale, mscaleAllDim). */
      readonly attentionFactor: number | null;
      readonly mscale: number | null;
      readonly mscaleAllDim: number | null;
    };

const f32 = Math.fround;

/** inv_freq [dim/2] for rotary features of size `dim` with base θ, optionally scaled. */
export function ropeInverseFrequencies(dim: number, base: number, scaling: RopeScaling | null = null): Float32Array {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0)
    throw new RangeError(`rope: the rotary dimension must be a positive even integer, got ${dim}`);
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / f32(base ** f32((2 * i) / dim));
  if (scaling === null) return inv;
  if (scaling.type === "linear") return inv.map((v) => v / f32(scaling.factor));
  if (scaling.type === "yarn") return yarnFrequencies(dim, base, scaling);
  return llama3Scaled(inv, scaling);
}

type Yarn = Extract<RopeScaling, { type: "yarn" }>;

/** The factor HF multiplies cos and sin by: YaRN's attention factor, 1 for every other scaling. */
export function ropeAttentionFactor(scaling: RopeScaling | null): number {
  if (scaling?.type !== "yarn") return 1;
  if (scaling.attentionFactor !== null) return scaling.attentionFactor;
  const mscale = (scale: number, m: number): number => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  if (scaling.mscale && scaling.mscaleAllDim)
    return mscale(scaling.factor, scaling.mscale) / mscale(scaling.factor, scaling.mscaleAllDim);
  return mscale(scaling.factor, 1);
}

/**
 * YaRN: per frequency, a blend of the original (extrapolated) and the factor-slowed (interpolated)
 * frequency. Dimensions below the one completing beta_fast rotations over the original context keep
 * the original, those above the one completing beta_slow take the slowed, and a linear ramp joins them.
 */
function yarnFrequencies(dim: number, base: number, s: Yarn): Float32Array {
  const rotationDim = (rotations: number): number =>
    (dim * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = rotationDim(s.betaFast);
  let high = rotationDim(s.betaSlow);
  if (s.truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const half = dim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const position = f32(base ** f32((2 * i) / dim));
    const extrapolated = f32(1 / position);
    const interpolated = f32(1 / f32(s.factor * position));
    const ramp = Math.min(Math.max(f32(f32(i - f32(low)) / f32(high - low)), 0), 1);
    const keep = f32(1 - ramp);
    out[i] = f32(f32(interpolated * f32(1 - keep)) + f32(extrapolated * keep));
  }
  return out;
}

/**
 * Llama 3: wavelengths longer than original/lowFreqFactor are slowed by `factor`, shorter than
 * original/highFreqFactor kept, and those between interpolated smoothly.
 */
function llama3Scaled(inv: Float32Array, s: Extract<RopeScaling, { type: "llama3" }>): Float32Array {
  const factor = f32(s.factor);
  const lowWavelength = f32(s.originalMaxPositionEmbeddings / s.lowFreqFactor);
  const highWavelength = f32(s.originalMaxPositionEmbeddings / s.highFreqFactor);
  const out = new Float32Array(inv.length);
  for (let i = 0; i < inv.length; i++) {
    const wavelength = f32(f32(2 * Math.PI) / inv[i]);
    const slowed = wavelength > lowWavelength ? f32(inv[i] / factor) : inv[i];
    const medium = !(wavelength < highWavelength) && !(wavelength > lowWavelength);
    if (!medium) {
      out[i] = slowed;
      continue;
    }
    const smooth = f32(
      f32(f32(f32(s.originalMaxPositionEmbeddings) / wavelength) - f32(s.lowFreqFactor)) /
        f32(s.highFreqFactor - s.lowFreqFactor),
    );
    out[i] = f32(f32(f32(f32(1 - smooth) * slowed) / factor) + f32(smooth * slowed));
  }
  return out;
}

/** cos and sin tables [..., T, 2·invFreq.length] at the given positions. */
export function rotaryTablesFromFrequencies(positions: IntTensor, invFreq: Float32Array): { cos: Tensor; sin: Tensor } {
  const half = invFreq.length;
  const dim = 2 * half;
  const n = positions.data.length;
  const cos = new Float32Array(n * dim);
  const sin = new Float32Array(n * dim);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f32(positions.data[p] * invFreq[i]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * dim + i] = c;
      cos[p * dim + half + i] = c;
      sin[p * dim + i] = s;
      sin[p * dim + half + i] = s;
    }
  }
  const shape = [...positions.shape, dim];
  return { cos: new Tensor(cos, shape), sin: new Tensor(sin, shape) };
}

/**
 * Rotates the first rotaryDim features of x [B, H, T, d] by position: x·cos + rotateHalf(x)·sin,
 * rotateHalf(a, b) = (−b, a); the remaining features pass through (NeoX's partial rotary).
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const rotaryDim = cos.shape[cos.rank - 1];
  const d = x.shape[x.rank - 1];
  const c = tv.unsqueeze(cos, 1);
  const s = tv.unsqueeze(sin, 1);
  const rot = rotaryDim === d ? x : tv.slice(x, -1, 0, rotaryDim);
  const [first, second] = tv.split(rot, rotaryDim / 2, -1);
  const rotated = tv.add(tv.mul(rot, c), tv.mul(tv.concat([tv.neg(second), first], -1), s));
  return rotaryDim === d ? rotated : tv.concat([rotated, tv.slice(x, -1, rotaryDim)], -1);
}
