/**
 * Matrix functions for rotations (DAS): a differentiable matrix exponential, composed from
 * recorded ops so autograd differentiates it, and QR for orthonormal initialisation.
 */
import { formatShape } from "../shape.js";
import { randn } from "../creation.js";
import { defaultGenerator, type Generator } from "../random.js";
import { Tensor } from "../tensor.js";
import { add, mul } from "./elementwise.js";
import { matmul } from "./matmul.js";

const TAYLOR_DEGREE = 12;

function identityLike(_a: Tensor, n: number): Tensor {
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) data[i * n + i] = 1;
  return new Tensor(data, [n, n]);
}

/**
 * exp(A) for square A (or a batch [..., n, n]) by scaling and squaring: A/2^s has 1-norm at
 * most 1/2, where a degree-12 Taylor polynomial in Horner form is accurate far below float32
 * rounding; the result is then squared s times. Every step is a recorded op.
 */
export function matrixExp(a: Tensor): Tensor {
  const n = a.shape[a.rank - 1];
  if (a.rank < 2 || a.shape[a.rank - 2] !== n)
    throw new RangeError(`matrixExp: expected square matrices [..., n, n], got ${formatShape(a.shape)}`);
  let norm = 0;
  for (let base = 0; base < a.size; base += n * n) {
    for (let j = 0; j < n; j++) {
      let col = 0;
      for (let i = 0; i < n; i++) col += Math.abs(a.data[base + i * n + j]);
      norm = Math.max(norm, col);
    }
  }
  if (!Number.isFinite(norm)) throw new RangeError("matrixExp: the matrix has non-finite entries");
  const squarings = norm > 0.5 ? Math.ceil(Math.log2(norm / 0.5)) : 0;
  const scaled = mul(a, 1 / 2 ** squarings);
  const eye = identityLike(a, n);
  let result: Tensor = eye;
  for (let k = TAYLOR_DEGREE; k >= 1; k--) result = add(eye, mul(matmul(scaled, result), 1 / k));
  for (let s = 0; s < squarings; s++) result = matmul(result, result);
  return result;
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
