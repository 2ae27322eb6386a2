/**
 * Eigen-decomposition of a real symmetric matrix in float64, for PCA on a covariance matrix:
 * Householder reduction to tridiagonal form, then implicit QR steps with Wilkinson shifts on the
 * tridiagonal matrix. Both stages are backward stable and cost O(n³) in all (about 9n³ flops with
 * the vectors), against roughly ten sweeps of 4n³ for cyclic Jacobi. The eigenvectors are kept as
 * the rows of a row-major matrix so that every rotation and reflection updates contiguous rows.
 */

export interface SymmetricEigen {
  /** Eigenvalues, in descending order. */
  values: Float64Array;
  /** Row i (n values) is the unit eigenvector of values[i]. */
  vectors: Float64Array;
}

/** Beyond this many QR steps per eigenvalue the iteration has failed to converge (it needs 2–3 in practice). */
const MAX_STEPS_PER_VALUE = 60;

/** The eigenvalues and eigenvectors of the symmetric n×n row-major `matrix` (left unchanged). */
export function symmetricEigen(matrix: Float64Array, n: number): SymmetricEigen {
  if (matrix.length !== n * n) throw new RangeError(`symmetricEigen: ${matrix.length} values for a ${n}×${n} matrix`);
  const a = matrix.slice();
  const basis = identity(n);
  tridiagonalize(a, basis, n);
  const diagonal = new Float64Array(n);
  const offDiagonal = new Float64Array(Math.max(n - 1, 0));
  for (let i = 0; i < n; i++) diagonal[i] = a[i * n + i];
  for (let i = 0; i + 1 < n; i++) offDiagonal[i] = a[i * n + i + 1];
  diagonalizeTridiagonal(diagonal, offDiagonal, basis, n);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => diagonal[j] - diagonal[i]);
  const values = Float64Array.from(order, (i) => diagonal[i]);
  const vectors = new Float64Array(n * n);
  order.forEach((from, to) => vectors.set(basis.subarray(from * n, from * n + n), to * n));
  return { values, vectors };
}

function identity(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

/**
 * Reduces `a` in place to tridiagonal T = Qᵀ A Q by reflections H = I − 2vvᵀ that zero column k
 * below its subdiagonal, applying each to `basis` (which holds Qᵀ in its rows) as it goes.
 */
function tridiagonalize(a: Float64Array, basis: Float64Array, n: number): void {
  for (let k = 0; k + 2 < n; k++) {
    const m = n - k - 1;
    const v = new Float64Array(m);
    let norm = 0;
    for (let i = 0; i < m; i++) {
      v[i] = a[(k + 1 + i) * n + k];
      norm += v[i] * v[i];
    }
    norm = Math.sqrt(norm);
    if (norm === 0) continue;
    // The reflection's target takes the sign opposite to x₀, so that v₀ = x₀ − α never cancels.
    const alpha = v[0] > 0 ? -norm : norm;
    v[0] -= alpha;
    let vNorm = 0;
    for (let i = 0; i < m; i++) vNorm += v[i] * v[i];
    vNorm = Math.sqrt(vNorm);
    for (let i = 0; i < m; i++) v[i] /= vNorm;
    reflectTrailingBlock(a, v, k + 1, n);
    a[(k + 1) * n + k] = alpha;
    a[k * n + k + 1] = alpha;
    for (let i = 1; i < m; i++) {
      a[(k + 1 + i) * n + k] = 0;
      a[k * n + k + 1 + i] = 0;
    }
    reflectRows(basis, v, k + 1, n);
  }
}

/** B := H B H for the trailing block B = a[start.., start..], as the rank-2 update B − v wᵀ − w vᵀ. */
function reflectTrailingBlock(a: Float64Array, v: Float64Array, start: number, n: number): void {
  const m = v.length;
  const p = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const row = (start + i) * n + start;
    let s = 0;
    for (let j = 0; j < m; j++) s += a[row + j] * v[j];
    p[i] = s;
  }
  let vp = 0;
  for (let i = 0; i < m; i++) vp += v[i] * p[i];
  const w = new Float64Array(m);
  for (let i = 0; i < m; i++) w[i] = 2 * p[i] - 2 * vp * v[i];
  for (let i = 0; i < m; i++) {
    const row = (start + i) * n + start;
    for (let j = 0; j < m; j++) a[row + j] -= v[i] * w[j] + w[i] * v[j];
  }
}

/** Rows start.. of `basis` := H times them. */
function reflectRows(basis: Float64Array, v: Float64Array, start: number, n: number): void {
  const t = new Float64Array(n);
  for (let i = 0; i < v.length; i++) {
    const row = (start + i) * n;
    for (let c = 0; c < n; c++) t[c] += v[i] * basis[row + c];
  }
  for (let i = 0; i < v.length; i++) {
    const row = (start + i) * n;
    const f = 2 * v[i];
    for (let c = 0; c < n; c++) basis[row + c] -= f * t[c];
  }
}

/**
 * Diagonalizes the symmetric tridiagonal matrix (diagonal d, off-diagonal e) in place by implicit
 * shifted QR steps, deflating wherever an off-diagonal entry becomes negligible; each Givens
 * rotation is applied to the rows of `basis` too.
 */
function diagonalizeTridiagonal(d: Float64Array, e: Float64Array, basis: Float64Array, n: number): void {
  const negligible = (i: number) => Math.abs(e[i]) <= Number.EPSILON * (Math.abs(d[i]) + Math.abs(d[i + 1]));
  let steps = 0;
  for (let last = n - 1; last > 0; ) {
    if (negligible(last - 1)) {
      e[last - 1] = 0;
      last--;
      continue;
    }
    let first = last - 1;
    while (first > 0 && !negligible(first - 1)) first--;
    if (++steps > MAX_STEPS_PER_VALUE * n)
      throw new Error("symmetricEigen: the QR iteration did not converge (is the matrix finite?)");
    qrStep(d, e, basis, n, first, last);
  }
}

/** One implicit QR step with a Wilkinson shift on the unreduced block first..last, chasing the bulge down. */
function qrStep(d: Float64Array, e: Float64Array, basis: Float64Array, n: number, first: number, last: number): void {
  const delta = (d[last - 1] - d[last]) / 2;
  const b = e[last - 1];
  const shift = d[last] - (b * b) / (delta + (delta >= 0 ? 1 : -1) * Math.hypot(delta, b));
  let x = d[first] - shift;
  let z = e[first];
  for (let k = first; k < last; k++) {
    const r = Math.hypot(x, z);
    const c = r === 0 ? 1 : x / r;
    const s = r === 0 ? 0 : z / r;
    if (k > first) e[k - 1] = r;
    const [dk, dk1, ek] = [d[k], d[k + 1], e[k]];
    d[k] = c * c * dk + 2 * c * s * ek + s * s * dk1;
    d[k + 1] = s * s * dk - 2 * c * s * ek + c * c * dk1;
    e[k] = c * s * (dk1 - dk) + (c * c - s * s) * ek;
    if (k + 1 < last) {
      z = s * e[k + 1];
      e[k + 1] *= c;
    }
    x = e[k];
    rotateRows(basis, n, k, c, s);
  }
}

function rotateRows(basis: Float64Array, n: number, k: number, c: number, s: number): void {
  const top = k * n;
  const bottom = top + n;
  for (let i = 0; i < n; i++) {
    const u = basis[top + i];
    const w = basis[bottom + i];
    basis[top + i] = c * u + s * w;
    basis[bottom + i] = c * w - s * u;
  }
}
