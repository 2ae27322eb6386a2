/**
 * NoiseIntervention: x[..., :interchangeDim] += noise · noiseLevel (spec §5.3). Source-less.
 *
 * pyvene draws its noise once, as NumPy's `RandomState(1).randn(1, 4, embed_dim)`; tsvene does not
 * reproduce NumPy's generator. The default noise has pyvene's shape (1, 4, embedDim) (four
 * positions, as in pyvene's causal-tracing setup) and is drawn from `generator`, or from a
 * `Generator(1)` when none is given, so it is the same on every run. Pass `noise` for other
 * shapes or values. The noise must broadcast against x[..., :interchangeDim]; its last axis may
 * be interchangeDim wide or embedDim wide (then its first interchangeDim columns are used).
 * Both are stored as frozen parameters `noise` and `noise_level` (pyvene's buffers).
 */
import { Generator, type Tensor, add, concat, mul, randn, slice, tensor } from "../../tensor/index.js";
import { broadcastShapes, formatShape } from "../../tensor/shape.js";
import { Intervention, markFrozen, requireEmbedDim, type InterventionOptions } from "../intervention.js";

export const DEFAULT_NOISE_LEVEL = 0.13462981581687927;

export interface NoiseOptions extends InterventionOptions {
  /** The noise tensor; default (1, 4, embedDim) standard normal draws. */
  noise?: Tensor | null;
  /** Scale of the noise (pyvene's misspelled kwarg `noise_leve`); default 0.13462981581687927. */
  noiseLevel?: number;
}

export class NoiseIntervention extends Intervention {
  readonly typeName = "NoiseIntervention";
  readonly noise: Tensor;
  readonly noiseLevel: Tensor;

  constructor(options: NoiseOptions = {}) {
    super(options, ["noise", "noiseLevel"]);
    const level = options.noiseLevel ?? DEFAULT_NOISE_LEVEL;
    if (typeof level !== "number" || !Number.isFinite(level))
      throw new TypeError(`NoiseIntervention: noiseLevel must be a finite number, got ${String(level)}`);
    const noise =
      options.noise ??
      randn([1, 4, requireEmbedDim("NoiseIntervention (without a noise tensor)", this.embedDim)], {
        generator: options.generator ?? new Generator(1),
      });
    if (noise.rank === 0) throw new RangeError("NoiseIntervention: the noise must have at least one axis");
    this.noise = markFrozen(this.parameter("noise", noise.detach()));
    this.noiseLevel = markFrozen(this.parameter("noise_level", tensor(level)));
  }

  override get sourceConstant(): boolean {
    return true;
  }

  protected forward(base: Tensor): Tensor {
    if (base.rank === 0) throw new RangeError("NoiseIntervention: base must have a feature axis");
    const last = base.rank - 1;
    const d = base.shape[last];
    const dim = this.interchangeDim;
    if (dim !== null && (typeof dim !== "number" || !Number.isInteger(dim) || dim < 0)) {
      throw new TypeError(
        `NoiseIntervention: interchangeDim must be a non-negative integer (the first k features get noise), ` +
          `got ${JSON.stringify(dim)}`,
      );
    }
    const k = dim === null ? d : Math.min(dim, d);
    if (k === 0) return base;
    let noise = this.noise;
    const nd = noise.shape[noise.rank - 1];
    if (nd !== k && nd !== 1) {
      if (nd !== d) throw this.shapeError(base, k);
      noise = slice(noise, noise.rank - 1, 0, k);
    }
    const region = k === d ? base : slice(base, last, 0, k);
    let shape: number[];
    try {
      shape = broadcastShapes(region.shape, noise.shape, "NoiseIntervention");
    } catch {
      throw this.shapeError(base, k);
    }
    if (shape.length !== region.rank || shape.some((n, i) => n !== region.shape[i])) throw this.shapeError(base, k);
    const noisy = add(region, mul(noise, this.noiseLevel));
    return k === d ? noisy : concat([noisy, slice(base, last, k)], last);
  }

  private shapeError(base: Tensor, k: number): RangeError {
    return new RangeError(
      `NoiseIntervention: noise of shape ${formatShape(this.noise.shape)} cannot be added ` +
        `to the first ${k} features of base with shape ${formatShape(base.shape)}` +
        " (the default noise covers 4 units, as in pyvene; pass a noise tensor of a matching shape)",
    );
  }
}
