/**
 * fitPca against independent truths: sklearn's documented PCA example, data built with known
 * principal axes and variances, a power-iteration reference on random data, pyvene's tutorial
 * recipe (μ, population σ, PCA of (X − μ)/σ) computed by hand, and the intervention it builds
 * checked against the PCARotatedSpace formula in plain loops.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tv from "../src/index.js";
import { symmetricEigen } from "../src/intervene/symmetric-eigen.js";

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++)
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
}

/** sklearn ≥ 1.5's svd_flip(u_based_decision=False): the entry of largest magnitude made positive. */
function sklearnSign(row: number[]): number[] {
  let at = 0;
  row.forEach((v, j) => {
    if (Math.abs(v) > Math.abs(row[at])) at = j;
  });
  return row[at] < 0 ? row.map((v) => -v) : row;
}

function rows(t: tv.Tensor): number[][] {
  return t.toArray() as number[][];
}

/** Columns of `z` (n×d, row-major, float64) made zero-mean and orthogonal, each with sample variance 1. */
function whitenColumns(z: Float64Array, n: number, d: number): void {
  for (let j = 0; j < d; j++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += z[i * d + j] / n;
    for (let i = 0; i < n; i++) z[i * d + j] -= mean;
    for (let p = 0; p < j; p++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += z[i * d + j] * z[i * d + p];
      for (let i = 0; i < n; i++) z[i * d + j] -= (dot / (n - 1)) * z[i * d + p];
    }
    let ss = 0;
    for (let i = 0; i < n; i++) ss += z[i * d + j] ** 2;
    const scale = Math.sqrt((n - 1) / ss);
    for (let i = 0; i < n; i++) z[i * d + j] *= scale;
  }
}

describe("fitPca", () => {
  it("reproduces sklearn's documented example (explained_variance_ratio_, singular_values_)", () => {
    const x = tv.tensor([
      [-1, -1],
      [-2, -1],
      [-3, -2],
      [1, 1],
      [2, 1],
      [3, 2],
    ]);
    const fit = tv.fitPca(x, { components: 2, standardize: false });
    // sklearn's PCA docstring prints [0.9924... 0.0075...] and [6.30061... 0.54980...].
    close(fit.explainedVarianceRatio.data, [0.99244289, 0.00755711], 1e-6, "ratio");
    close(fit.singularValues.data, [6.30061232, 0.54980396], 1e-5, "singular values");
    // By hand: the covariance [[5.6, 3.6], [3.6, 2.4]] has eigenvalues 4 ± √15.52 and the top eigenvector
    // (1, (λ₁ − 5.6)/3.6) normalised; both components keep a positive largest entry.
    const l1 = 4 + Math.sqrt(15.52);
    const slope = (l1 - 5.6) / 3.6;
    const c = 1 / Math.hypot(1, slope);
    close(fit.components.data, [c, slope * c, -slope * c, c], 1e-6, "components");
    close(fit.explainedVariance.data, [l1, 8 - l1], 1e-5, "explained variance");
    close(fit.mean.data, [0, 0], 0, "mean");
    close(fit.std.data, [1, 1], 0, "std without standardize");
  });

  it("finds known principal axes: Q's rows by variance, signed by sklearn's rule, variances exact", () => {
    const [n, d] = [40, 5];
    const q = rows(tv.orthogonal(d, d, new tv.Generator(11)));
    const axisStd = [0.5, 3, 1, 2.2, 0.1];
    const mu = [1, -2, 0.5, 4, -3];
    const z = Float64Array.from(tv.randn([n, d], { generator: new tv.Generator(12) }).data);
    whitenColumns(z, n, d);
    const data = new Float32Array(n * d);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < d; j++) {
        let v = mu[j];
        for (let a = 0; a < d; a++) v += z[i * d + a] * axisStd[a] * q[a][j];
        data[i * d + j] = v;
      }
    const fit = tv.fitPca(new tv.Tensor(data, [n, d]), { components: 3, standardize: false });
    const order = [1, 3, 2]; // the axes of the three largest variances
    assert.deepEqual(fit.components.shape, [3, d]);
    close(
      fit.components.data,
      order.flatMap((a) => sklearnSign(q[a])),
      2e-5,
      "components",
    );
    close(
      fit.explainedVariance.data,
      order.map((a) => axisStd[a] ** 2),
      1e-4,
      "explained variance",
    );
    const total = axisStd.reduce((s, v) => s + v * v, 0);
    close(
      fit.explainedVarianceRatio.data,
      order.map((a) => axisStd[a] ** 2 / total),
      1e-5,
      "ratio",
    );
    close(fit.mean.data, mu, 1e-5, "mean");
    assert.equal(fit.samples, n);
  });

  it("agrees with power iteration with deflation on random correlated data", () => {
    const [n, d, k] = [60, 7, 3];
    const base = tv.randn([n, d], { generator: new tv.Generator(21) });
    const mix = tv.randn([d, d], { generator: new tv.Generator(22) });
    const x = tv.matmul(base, mix);
    const fit = tv.fitPca(x, { components: k, standardize: false });
    // The reference: covariance by loops, then the dominant eigenvector by repeated multiplication.
    const mean = Array.from({ length: d }, (_, j) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += x.data[i * d + j];
      return s / n;
    });
    const cov = Array.from({ length: d }, (_, a) =>
      Array.from({ length: d }, (_, b) => {
        let s = 0;
        for (let i = 0; i < n; i++) s += (x.data[i * d + a] - mean[a]) * (x.data[i * d + b] - mean[b]);
        return s / (n - 1);
      }),
    );
    for (let c = 0; c < k; c++) {
      let v = Array.from({ length: d }, (_, j) => 1 + j / 10);
      let lambda = 0;
      for (let step = 0; step < 5000; step++) {
        const w = cov.map((r) => r.reduce((s, value, j) => s + value * v[j], 0));
        lambda = Math.hypot(...w);
        v = w.map((value) => value / lambda);
      }
      close(rows(fit.components)[c], sklearnSign(v), 1e-4, `component ${c}`);
      assert.ok(Math.abs(fit.explainedVariance.data[c] - lambda) <= 1e-4 * lambda, `variance ${c}`);
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a][b] -= lambda * v[a] * v[b];
    }
  });

  it("standardizes as pyvene's tutorials do: μ, population σ, then PCA of (X − μ)/σ", () => {
    const [n, d] = [30, 4];
    const x = tv.add(
      tv.mul(tv.randn([n, d], { generator: new tv.Generator(31) }), tv.tensor([1, 10, 0.1, 3])),
      tv.tensor([5, -1, 2, 0]),
    );
    const fit = tv.fitPca(x, { components: 2 });
    const mean = [0, 1, 2, 3].map((j) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += x.data[i * d + j];
      return s / n;
    });
    const std = [0, 1, 2, 3].map((j) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += (x.data[i * d + j] - mean[j]) ** 2;
      return Math.sqrt(s / n); // numpy's X.var(axis=0) ** 0.5: ddof = 0
    });
    close(fit.mean.data, mean, 1e-5, "mean");
    close(fit.std.data, std, 1e-5, "std");
    const scaled = new Float32Array(n * d);
    for (let i = 0; i < n * d; i++) scaled[i] = (x.data[i] - mean[i % d]) / std[i % d];
    const plain = tv.fitPca(new tv.Tensor(scaled, [n, d]), { components: 2, standardize: false });
    close(fit.components.data, plain.components.data, 1e-5, "components of the scaled data");
    close(fit.explainedVariance.data, plain.explainedVariance.data, 1e-5, "explained variance");
  });

  it("reads collected activations [examples, positions, d] as examples·positions samples", () => {
    const x = tv.randn([3, 4, 5], { generator: new tv.Generator(41) });
    const fit = tv.fitPca({ shape: [3, 4, 5], values: x.data }, { standardize: false });
    const flat = tv.fitPca(x.reshape([12, 5]), { standardize: false });
    assert.equal(fit.samples, 12);
    assert.deepEqual(fit.components.shape, [5, 5]);
    close(fit.components.data, flat.components.data, 0, "same samples");
  });

  it("builds a PCARotatedSpaceIntervention that swaps the first component (checked in loops)", () => {
    const [n, d] = [25, 3];
    const data = tv.matmul(
      tv.randn([n, d], { generator: new tv.Generator(51) }),
      tv.tensor([
        [2, 0.5, 0],
        [0, 1, 0.3],
        [0.1, 0, 0.4],
      ]),
    );
    const fit = tv.fitPca(data);
    const iv = tv.pcaRotatedSpaceIntervention(fit);
    assert.ok(iv instanceof tv.PCARotatedSpaceIntervention);
    iv.setInterchangeDim(1);
    const base = tv.tensor([[0.3, -1, 2]]);
    const source = tv.tensor([[1, 0.5, -0.2]]);
    const out = iv.call(base, { source, subspaces: null });
    const [c, mu, sd] = [rows(fit.components), Array.from(fit.mean.data), Array.from(fit.std.data)];
    const project = (v: ArrayLike<number>) =>
      c.map((row) => row.reduce((s, w, j) => s + ((v[j] - mu[j]) / sd[j]) * w, 0));
    const rx = project(base.data);
    const rs = project(source.data);
    rx[0] = rs[0];
    const expected = mu.map((m, j) => rx.reduce((s, r, a) => s + r * c[a][j], 0) * sd[j] + m);
    close(out.data, expected, 1e-5, "swapped output");
  });

  it("refuses bad input with errors naming it", () => {
    const x = tv.randn([10, 3], { generator: new tv.Generator(61) });
    assert.throws(() => tv.fitPca(x, { components: 4 }), /components must be an integer from 1 to .* = 3, got 4/);
    assert.throws(() => tv.fitPca(x, { components: 1.5 }), /components must be an integer/);
    assert.throws(() => tv.fitPca(x, { nComponents: 2 } as object), /unknown option "nComponents"/);
    assert.throws(() => tv.fitPca(tv.tensor([1, 2, 3])), /shape \[\.\.\., d\] with at least one leading dimension/);
    assert.throws(() => tv.fitPca(tv.tensor([[1, 2]])), /at least 2 samples/);
    assert.throws(
      () =>
        tv.fitPca(
          tv.tensor([
            [1, NaN],
            [2, 3],
          ]),
        ),
      /activation 0, feature 1 is NaN/,
    );
    assert.throws(() => tv.fitPca([[1, 2]] as unknown as tv.Tensor), /must be a Tensor \[\.\.\., d\]/);
    const constant = tv.tensor([
      [1, 5],
      [2, 5],
      [3, 5],
    ]);
    assert.throws(() => tv.fitPca(constant), /feature 1 is constant .* standardize: false/);
    assert.equal(tv.fitPca(constant, { standardize: false }).explainedVariance.data[1], 0);
  });
});

describe("symmetricEigen", () => {
  it("diagonalizes: A·v = λ·v with orthonormal v, eigenvalues descending, input untouched", () => {
    const n = 9;
    const r = tv.randn([n, n], { generator: new tv.Generator(71) }).data;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = r[i * n + j] + r[j * n + i];
    const copy = a.slice();
    const { values, vectors } = symmetricEigen(a, n);
    assert.deepEqual(a, copy);
    let trace = 0;
    for (let i = 0; i < n; i++) trace += a[i * n + i];
    assert.ok(Math.abs(values.reduce((s, v) => s + v, 0) - trace) < 1e-10, "eigenvalues sum to the trace");
    for (let k = 0; k < n; k++) {
      if (k > 0) assert.ok(values[k] <= values[k - 1], "descending");
      for (let i = 0; i < n; i++) {
        let av = 0;
        for (let j = 0; j < n; j++) av += a[i * n + j] * vectors[k * n + j];
        assert.ok(Math.abs(av - values[k] * vectors[k * n + i]) < 1e-10, `A v = λ v (${k}, ${i})`);
      }
      for (let l = 0; l < n; l++) {
        let dot = 0;
        for (let j = 0; j < n; j++) dot += vectors[k * n + j] * vectors[l * n + j];
        assert.ok(Math.abs(dot - (k === l ? 1 : 0)) < 1e-12, `orthonormal (${k}, ${l})`);
      }
    }
  });
});
