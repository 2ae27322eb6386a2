/**
 * Matrix functions for rotations (DAS): a differentiable matrix exponential, and QR for
 * orthonormal initialisation.
 */
import { formatShape } from "../shape.js";
import { randn } from "../creation.js";
import { record } from "../autograd.js";
import { kernels } from "../kernels/index.js";
import { defaultGenerator, type Generator } from "../random.js";
import { Tensor } from "../tensor.js";

const TAYLOR_DEGREE = 12;

/**
 * exp(A) for square A (or a batch [..., n, n]) by scaling and squaring: A/2^s has 1-norm at
 * most 1/2, where a degree-12 Taylor polynomial in Horner form, R ← I + (A/2^s)·R/k for
 * k = 12…1, is accurate far below float32 rounding; the result is then squared s times.
 *
 * One recorded op: a rotation recomputes it at every training step, where a graph of ~40 small
 * ops cost more than the arithmetic. Forward and backward round exactly as that graph of add,
 * mul and matmul ops did (float32 after every step, products on the same sgemm), so results and
 * gradients are bit-for-bit those of the composition.
 */
export function matrixExp(a: Tensor): Tensor {
  const n = a.shape[a.rank - 1];
  if (a.rank < 2 || a.shape[a.rank - 2] !== n)
    throw new RangeError(`matrixExp: expected square matrices [..., n, n], got ${formatShape(a.shape)}`);
  const values = a.data;
  let norm = 0;
  for (let base = 0; base < a.size; base += n * n) {
    for (let j = 0; j < n; j++) {
      let col = 0;
      for (let i = 0; i < n; i++) col += Math.abs(values[base + i * n + j]);
      norm = Math.max(norm, col);
    }
  }
  if (!Number.isFinite(norm)) throw new RangeError("matrixExp: the matrix has non-finite entries");
  const squarings = norm > 0.5 ? Math.ceil(Math.log2(norm / 0.5)) : 0;
  const products = new MatrixProducts(n, a.size / (n * n));
  const scale = 1 / 2 ** squarings;
  const scaled = scaleBy(values, scale);
  // Step k multiplies S by R_{k+1}, kept as hornerInputs[k] for the backward pass; R_13 = I, and S·I = S.
  const hornerInputs: Float32Array[] = [];
  let result = products.identityPlus(scaled, Math.fround(1 / TAYLOR_DEGREE));
  for (let k = TAYLOR_DEGREE - 1; k >= 1; k--) {
    hornerInputs[k] = result;
    result = products.identityPlus(products.multiply(false, false, scaled, result), Math.fround(1 / k));
  }
  const squared: Float32Array[] = [];
  for (let s = 0; s < squarings; s++) {
    squared.push(result);
    result = products.multiply(false, false, result, result);
  }
  // The backward pass visits the steps in reverse and sums each input's gradients in the order the graph did.
  return record(new Tensor(result, a.shape), [a], (grad) => {
    let g = grad;
    for (let s = squarings - 1; s >= 0; s--) {
      const q = squared[s];
      const left = products.multiply(false, true, g, q);
      const right = products.multiply(true, false, q, g);
      for (let i = 0; i < left.length; i++) left[i] += right[i];
      g = left;
    }
    let gradScaled: Float32Array | null = null;
    for (let k = 1; k <= TAYLOR_DEGREE; k++) {
      const gradProduct = scaleBy(g, Math.fround(1 / k));
      const term = k === TAYLOR_DEGREE ? gradProduct : products.multiply(false, true, gradProduct, hornerInputs[k]);
      if (gradScaled === null) gradScaled = term;
      else for (let i = 0; i < gradScaled.length; i++) gradScaled[i] += term[i];
      if (k < TAYLOR_DEGREE) g = products.multiply(true, false, scaled, gradProduct);
    }
    return [scaleBy(gradScaled as Float32Array, scale)];
  });
}

/**
 * tril(θ) − tril(θ)ᵀ for a square θ (or a batch [..., n, n]): the skew-symmetric matrix torch's
 * orthogonal parametrization makes of its parameter; the diagonal cancels, so only the strict
 * lower triangle gets a gradient. One recorded op, rounding as mul by a 0/1 mask, transpose and
 * sub did (the masked-off entries are θ·0, signed zeros included).
 */
export function skewFromLowerTriangle(theta: Tensor): Tensor {
  const n = theta.shape[theta.rank - 1];
  if (theta.rank < 2 || theta.shape[theta.rank - 2] !== n)
    throw new RangeError(
      `skewFromLowerTriangle: expected square matrices [..., n, n], got ${formatShape(theta.shape)}`,
    );
  const lower = (x: Float32Array, base: number, i: number, j: number) =>
    j <= i ? x[base + i * n + j] : x[base + i * n + j] * 0;
  const out = new Float32Array(theta.size);
  const values = theta.data;
  for (let base = 0; base < out.length; base += n * n) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) out[base + i * n + j] = lower(values, base, i, j) - lower(values, base, j, i);
    }
  }
  return record(new Tensor(out, theta.shape), [theta], (g) => {
    const grad = new Float32Array(g.length);
    for (let base = 0; base < g.length; base += n * n) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const difference = Math.fround(g[base + i * n + j] - g[base + j * n + i]);
          grad[base + i * n + j] = j <= i ? difference : difference * 0;
        }
      }
    }
    return [grad];
  });
}

/** Products of batches of n×n matrices on the active sgemm, and the Horner step I + c·P. */
class MatrixProducts {
  private readonly offsets: Int32Array;

  constructor(
    private readonly n: number,
    count: number,
  ) {
    this.offsets = Int32Array.from({ length: count }, (_, i) => i * n * n);
  }

  /** op(X)·op(Y) for every matrix of the batch, in a fresh array. */
  multiply(transX: boolean, transY: boolean, x: Float32Array, y: Float32Array): Float32Array {
    const { n, offsets } = this;
    const out = new Float32Array(x.length);
    kernels().sgemmBatch(transX, transY, n, n, n, 1, x, n, offsets, y, n, offsets, 0, out, n, offsets);
    return out;
  }

  /** I + c·P, rounding the product and then the sum to float32 (as mul then add did). */
  identityPlus(p: Float32Array, c: number): Float32Array {
    const { n } = this;
    const out = new Float32Array(p.length);
    for (let base = 0; base < out.length; base += n * n) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) out[base + i * n + j] = (i === j ? 1 : 0) + Math.fround(p[base + i * n + j] * c);
      }
    }
    return out;
  }
}

/** c·x rounded to float32, in a fresh array. */
function scaleBy(x: Float32Array, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * c;
  return out;
}

/**
 * QR of an m×n matrix with m ≥ n by Householder reflections (in float64), as torch.linalg.qr:
 * mode "reduced" (default) gives Q m×n with orthonormal columns and R n×n upper triangular;
 * "complete" gives Q m×m orthogonal (its first n columns those of the reduced Q) and R m×n.
 * A = QR either way. Signs follow LAPACK (R's diagonal may be negative). Not differentiable: it
 * serves initialisation and orthogonal completion.
 */
export function qr(a: Tensor, options: { mode?: "reduced" | "complete" } = {}): { q: Tensor; r: Tensor } {
  if (a.rank !== 2 || a.shape[0] < a.shape[1])
    throw new RangeError(`qr: expected a 2-D matrix with rows ≥ columns, got ${formatShape(a.shape)}`);
  const mode = options.mode ?? "reduced";
  if (mode !== "reduced" && mode !== "complete")
    throw new RangeError(`qr: mode must be "reduced" or "complete", got ${JSON.stringify(mode)}`);
  const [m, n] = a.shape;
  const w = Float64Array.from(a.data);
  const reflectors: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const v = new Float64Array(m);
    let norm = 0;
    for (let i = j; i < m; i++) norm += w[i * n + j] ** 2;
    norm = Math.sqrt(norm);
    const alpha = w[j * n + j] > 0 ? -norm : norm;
    for (let i = j; i < m; i++) v[i] = w[i * n + j];
    v[j] -= alpha;
    let vnorm = 0;
    for (let i = j; i < m; i++) vnorm += v[i] ** 2;
    if (vnorm > 0) {
      for (let c = j; c < n; c++) {
        let dot = 0;
        for (let i = j; i < m; i++) dot += v[i] * w[i * n + c];
        const f = (2 * dot) / vnorm;
        for (let i = j; i < m; i++) w[i * n + c] -= f * v[i];
      }
    }
    reflectors.push(vnorm > 0 ? v.map((x) => x / Math.sqrt(vnorm)) : v);
  }
  // Q = H_0 H_1 ⋯ H_{n-1} applied to the first k columns of the m×m identity, from the last reflector back.
  const k = mode === "complete" ? m : n;
  const q = new Float64Array(m * k);
  for (let i = 0; i < k; i++) q[i * k + i] = 1;
  for (let j = n - 1; j >= 0; j--) {
    const v = reflectors[j];
    for (let c = 0; c < k; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i] * q[i * k + c];
      for (let i = j; i < m; i++) q[i * k + c] -= 2 * dot * v[i];
    }
  }
  const rows = mode === "complete" ? m : n;
  const r = new Float32Array(rows * n);
  for (let i = 0; i < n; i++) for (let c = i; c < n; c++) r[i * n + c] = w[i * n + c];
  return { q: new Tensor(Float32Array.from(q), [m, k]), r: new Tensor(r, [rows, n]) };
}

/**
 * A random matrix with orthonormal rows or columns (whichever are fewer), as
 * torch.nn.init.orthogonal_: QR of a standard normal draw, with Q's columns signed so that R's
 * diagonal is positive, which makes the draw uniform over orthogonal matrices.
 */
export function orthogonal(rows: number, cols: number, generator: Generator = defaultGenerator): Tensor {
  const tall = rows >= cols;
  const draw = randn(tall ? [rows, cols] : [cols, rows], { generator });
  const { q, r } = qr(draw);
  const [m, n] = q.shape;
  const signed = q.data.slice();
  for (let c = 0; c < n; c++) {
    if (r.data[c * n + c] < 0) for (let i = 0; i < m; i++) signed[i * n + c] = -signed[i * n + c];
  }
  if (tall) return new Tensor(signed, [m, n]);
  const t = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let c = 0; c < n; c++) t[c * m + i] = signed[i * n + c];
  return new Tensor(t, [n, m]);
}
