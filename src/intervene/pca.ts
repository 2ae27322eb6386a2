/**
 * Fitting the basis of a PCARotatedSpaceIntervention from collected activations, as pyvene's users
 * do it: μ and σ are the per-feature mean and population standard deviation (numpy's `X.var(0)`),
 * and the components are those of sklearn's `PCA(n_components).fit((X − μ)/σ)`.
 *
 * The components are the eigenvectors of the d×d sample covariance, computed in float64 (see
 * symmetric-eigen.ts): the top-k right singular vectors of the centred data, which is what sklearn's
 * exact solvers return; explained variance = S²/(N − 1). Signs follow sklearn ≥ 1.5's `svd_flip(…,
 * u_based_decision=False)`: in each component the entry of largest magnitude is positive. (sklearn
 * before 1.5 fixed signs by U instead, and its randomized solver is an approximation of these values.)
 */
import { describe, readOptions } from "../options/index.js";
import { Tensor } from "../tensor/index.js";
import { formatShape } from "../tensor/shape.js";
import { PCARotatedSpaceIntervention, type PCARotatedSpaceOptions } from "./interventions/pca-rotated-space.js";
import { symmetricEigen } from "./symmetric-eigen.js";

export interface FitPcaOptions {
  /** How many components to keep, 1..min(N, d); all min(N, d) when omitted (sklearn's n_components=None). */
  components?: number;
  /**
   * Whether features are scaled to unit variance before the fit (pyvene's tutorials do; default true).
   * With false, σ is all ones and the PCA runs on the centred activations.
   */
  standardize?: boolean;
}

const FIT_PCA_OPTIONS = ["components", "standardize"] as const satisfies readonly (keyof FitPcaOptions)[];

export interface PcaFit {
  /** [k, d]: the principal directions, in order of explained variance (sklearn's components_). */
  components: Tensor;
  /** [d]: the per-feature mean μ. */
  mean: Tensor;
  /** [d]: the per-feature standard deviation σ the components were fitted under (ones without standardize). */
  std: Tensor;
  /** [k]: the variance along each component, S²/(N − 1). */
  explainedVariance: Tensor;
  /** [k]: each component's share of the total variance. */
  explainedVarianceRatio: Tensor;
  /** [k]: the singular values S of the centred (and scaled) data. */
  singularValues: Tensor;
  /** N, the number of activation vectors fitted. */
  samples: number;
}

/** Activations as a tensor, or as collectActivations returns them ({ shape, values }). */
export type PcaActivations = Tensor | { shape: readonly number[]; values: Float32Array };

/**
 * Fits PCA to activations [..., d] (every leading index is one sample, so a collection of shape
 * [examples, positions, d] gives examples·positions samples).
 */
export function fitPca(activations: PcaActivations, fitOptions: FitPcaOptions = {}): PcaFit {
  const options = readOptions<FitPcaOptions>(fitOptions, FIT_PCA_OPTIONS, "fitPca options");
  const { data, n, d } = samplesOf(activations);
  const k = options.components ?? Math.min(n, d);
  if (!Number.isInteger(k) || k < 1 || k > Math.min(n, d))
    throw new RangeError(
      `fitPca: components must be an integer from 1 to min(samples, features) = ${Math.min(n, d)}, got ${describe(k)}`,
    );
  const standardize = options.standardize ?? true;
  if (typeof standardize !== "boolean")
    throw new TypeError(`fitPca: standardize must be true or false, got ${describe(standardize)}`);

  const mean = featureMeans(data, n, d);
  const covariance = sampleCovariance(data, mean, n, d);
  const std = new Float64Array(d).fill(1);
  if (standardize) {
    for (let j = 0; j < d; j++) {
      std[j] = Math.sqrt((covariance[j * d + j] * (n - 1)) / n);
      if (!(std[j] > 0))
        throw new RangeError(
          `fitPca: feature ${j} is constant over the ${n} samples, so it cannot be scaled to unit variance; ` +
            "pass standardize: false or leave that feature out",
        );
    }
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) covariance[i * d + j] /= std[i] * std[j];
  }

  const { values, vectors } = symmetricEigen(covariance, d);
  let totalVariance = 0;
  for (let j = 0; j < d; j++) totalVariance += covariance[j * d + j];
  const variance = Float64Array.from(values.subarray(0, k), (v) => Math.max(v, 0));
  const components = new Float32Array(k * d);
  for (let c = 0; c < k; c++) {
    const row = vectors.subarray(c * d, c * d + d);
    components.set(flipSign(row), c * d);
  }
  return {
    components: new Tensor(components, [k, d]),
    mean: new Tensor(Float32Array.from(mean), [d]),
    std: new Tensor(Float32Array.from(std), [d]),
    explainedVariance: new Tensor(Float32Array.from(variance), [k]),
    explainedVarianceRatio: new Tensor(
      Float32Array.from(variance, (v) => (totalVariance > 0 ? v / totalVariance : 0)),
      [k],
    ),
    singularValues: new Tensor(
      Float32Array.from(variance, (v) => Math.sqrt(v * (n - 1))),
      [k],
    ),
    samples: n,
  };
}

/** A PCARotatedSpaceIntervention in the basis of `fit` (its components, mean and std). */
export function pcaRotatedSpaceIntervention(
  fit: PcaFit,
  options: Omit<PCARotatedSpaceOptions, "pca" | "pcaMean" | "pcaStd"> = {},
): PCARotatedSpaceIntervention {
  if (!fit || !(fit.components instanceof Tensor) || !(fit.mean instanceof Tensor) || !(fit.std instanceof Tensor))
    throw new TypeError(
      `pcaRotatedSpaceIntervention: expected the result of fitPca ({ components, mean, std, … }), got ${describe(fit)}`,
    );
  return new PCARotatedSpaceIntervention({ ...options, pca: fit.components, pcaMean: fit.mean, pcaStd: fit.std });
}

function samplesOf(activations: PcaActivations): { data: Float32Array; n: number; d: number } {
  const isCollected =
    activations !== null &&
    typeof activations === "object" &&
    !(activations instanceof Tensor) &&
    Array.isArray(activations.shape) &&
    activations.values instanceof Float32Array;
  if (!(activations instanceof Tensor) && !isCollected)
    throw new TypeError(
      `fitPca: activations must be a Tensor [..., d] or a collected { shape, values }, got ${describe(activations)}`,
    );
  const [data, shape] =
    activations instanceof Tensor ? [activations.data, activations.shape] : [activations.values, activations.shape];
  const d = shape[shape.length - 1];
  if (shape.length < 2 || !(d > 0) || data.length % d !== 0)
    throw new RangeError(
      `fitPca: activations must have shape [..., d] with at least one leading dimension, got ${formatShape(shape)}`,
    );
  const n = data.length / d;
  if (n < 2) throw new RangeError(`fitPca: needs at least 2 samples to estimate variances, got ${n}`);
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new RangeError(`fitPca: activation ${Math.floor(bad / d)}, feature ${bad % d} is ${data[bad]}`);
  return { data, n, d };
}

function featureMeans(data: Float32Array, n: number, d: number): Float64Array {
  const mean = new Float64Array(d);
  for (let s = 0; s < n; s++) for (let j = 0; j < d; j++) mean[j] += data[s * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  return mean;
}

/** The d×d covariance Σ (x − μ)(x − μ)ᵀ / (N − 1), accumulated in float64 over the upper triangle. */
function sampleCovariance(data: Float32Array, mean: Float64Array, n: number, d: number): Float64Array {
  const covariance = new Float64Array(d * d);
  const centred = new Float64Array(d);
  for (let s = 0; s < n; s++) {
    for (let j = 0; j < d; j++) centred[j] = data[s * d + j] - mean[j];
    for (let i = 0; i < d; i++) {
      const ci = centred[i];
      if (ci === 0) continue;
      const row = i * d;
      for (let j = i; j < d; j++) covariance[row + j] += ci * centred[j];
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = covariance[i * d + j] / (n - 1);
      covariance[i * d + j] = v;
      covariance[j * d + i] = v;
    }
  }
  return covariance;
}

/** sklearn's sign rule: the row negated when its entry of largest magnitude (the first such) is negative. */
function flipSign(row: Float64Array): Float64Array {
  let at = 0;
  for (let j = 1; j < row.length; j++) if (Math.abs(row[j]) > Math.abs(row[at])) at = j;
  return row[at] < 0 ? row.map((v) => -v) : row;
}
