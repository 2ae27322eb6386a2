/**
 * Orthogonal rotation layers with PyTorch's `parametrizations.orthogonal` (spec §6.2), under
 * pyvene's state-dict names:
 *
 *   parametrizations.weight.original   θ, the trainable parameter (shape of the weight)
 *   parametrizations.weight.0.base     B, a frozen n×n orthogonal base (pyvene's buffer)
 *
 * Square n×n (RotateLayer, torch's "matrix_exp" map): W = B·expm(tril(θ) − tril(θ)ᵀ).
 * Tall n×m (LowRankRotateLayer, torch's "householder" map):
 *   A = tril(θ, −1), τ_j = 2/(1 + Σ_i A_ij²), Q = first m columns of H_1⋯H_m with
 *   H_j = I − τ_j v_j v_jᵀ (v_j: 1 at row j, A's column j below it), Q := Q·diag(trunc(diag θ)),
 *   W = B·Q.
 * W is computed from recorded ops on every call to `weight()`, so autograd gives θ's gradient
 * (only θ's strictly lower triangle receives a non-zero one). At construction and after
 * `setWeight(W)`, θ = −I and W equals the given (or initial) orthonormal matrix exactly.
 *
 * The column signs use trunc(diag θ) as torch's `.int()` cast does: they get no gradient, and
 * a diagonal entry pushed into (−1, 1) by something other than a gradient (weight decay) zeroes
 * its column, as in PyTorch.
 */
import {
  Tensor,
  add,
  div,
  full,
  isGradEnabled,
  matmul,
  matrixExp,
  mul,
  orthogonal,
  qr,
  slice,
  sub,
  sum,
  transpose,
  defaultGenerator,
  type Generator,
} from "../tensor/index.js";
import { formatShape } from "../tensor/shape.js";
import { skewFromLowerTriangle } from "../tensor/ops/linalg.js";
import { Module } from "../nn/module.js";
import { markFrozen } from "./intervention.js";

export interface RotateLayerOptions {
  /** Random numbers for the orthogonal initial weight (torch.nn.init.orthogonal_); default: the global generator. */
  generator?: Generator;
}

/** Largest |WᵀW − I| accepted by setWeight. */
const ORTHONORMAL_TOLERANCE = 1e-4;

/** A container that only holds named children and parameters (the parametrization plumbing). */
class Holder extends Module {
  add(name: string, t: Tensor): Tensor {
    return this.parameter(name, t);
  }

  child<M extends Holder>(name: string, m: M): M {
    return this.module(name, m);
  }

  protected forward(): Tensor {
    throw new Error("a parametrization container has no forward; use the rotation layer");
  }
}

/** The parametrised layer shared by the square and tall cases. */
abstract class OrthogonalLayer extends Module {
  /** θ: `parametrizations.weight.original`. */
  readonly original: Tensor;
  /** B: `parametrizations.weight.0.base`. */
  readonly base: Tensor;

  constructor(
    readonly n: number,
    readonly m: number,
    options: RotateLayerOptions,
    name: string,
  ) {
    super();
    if (!Number.isInteger(n) || n < 1 || !Number.isInteger(m) || m < 1 || m > n) {
      throw new RangeError(`${name}: expected integer sizes with 1 ≤ m ≤ n, got n=${n}, m=${m}`);
    }
    const weight = this.module("parametrizations", new Holder()).child("weight", new Holder());
    this.original = weight.add("original", negativeIdentity(n, m)).requireGrad();
    this.base = markFrozen(weight.child("0", new Holder()).add("base", new Tensor(new Float32Array(n * n), [n, n])));
    this.setWeight(orthogonal(n, m, options.generator ?? defaultGenerator));
  }

  /** The current rotation W(θ, B), recorded for autograd. */
  abstract weight(): Tensor;

  /**
   * Makes W(θ) equal `w` exactly: θ is reset to −I and B set to w (square) or to an n×n
   * orthogonal completion of w whose first m columns are w (tall). w must be orthonormal.
   * Writes into the existing parameter tensors, so optimisers holding them keep working.
   */
  setWeight(w: Tensor): void {
    const { n, m } = this;
    if (w.rank !== 2 || w.shape[0] !== n || w.shape[1] !== m) {
      throw new RangeError(`setWeight: expected a ${n}×${m} matrix, got shape ${formatShape(w.shape)}`);
    }
    const deviation = orthonormalDeviation(w.data, n, m);
    if (!(deviation <= ORTHONORMAL_TOLERANCE)) {
      throw new RangeError(
        `setWeight: the columns of the ${n}×${m} matrix are not orthonormal ` +
          `(max |WᵀW − I| = ${deviation.toExponential(2)}, tolerance ${ORTHONORMAL_TOLERANCE})`,
      );
    }
    const b = m === n ? w.data : completeOrthonormal(w.data, n, m);
    this.base.data.set(b);
    this.original.data.set(negativeIdentity(n, m).data);
  }

  /** Marks θ as needing (or not) a gradient; B stays frozen. */
  override requireGrad(flag = true): this {
    this.original.requireGrad(flag);
    return this;
  }

  /** x·W (rows are vectors). */
  protected forward(x: Tensor): Tensor {
    return matmul(x, this.weight());
  }
}

/** Square n×n rotation, W = B·expm(tril(θ) − tril(θ)ᵀ) (torch's matrix_exp orthogonal map). */
export class RotateLayer extends OrthogonalLayer {
  constructor(n: number, options: RotateLayerOptions = {}) {
    super(n, n, options, "RotateLayer");
  }

  weight(): Tensor {
    const skew = skewFromLowerTriangle(this.original);
    // expm(0) = I exactly, so W = B; skip the matrix functions when no gradient is needed.
    if ((!this.original.requiresGrad || !isGradEnabled()) && skew.data.every((v) => v === 0)) return this.base.clone();
    return matmul(this.base, matrixExp(skew));
  }
}

/** Tall n×m matrix with orthonormal columns, W = B·Q(θ) (torch's householder orthogonal map). */
export class LowRankRotateLayer extends OrthogonalLayer {
  private readonly strictLower: Tensor;
  private readonly firstColumns: Tensor;

  constructor(n: number, m: number, options: RotateLayerOptions = {}) {
    super(n, m, options, "LowRankRotateLayer");
    this.strictLower = triangleMask(n, m, -1);
    this.firstColumns = eye(n, m);
  }

  weight(): Tensor {
    const { m } = this;
    const a = mul(this.original, this.strictLower);
    const v = add(a, this.firstColumns);
    const tau = div(2, add(1, sum(mul(a, a), 0)));
    let q: Tensor = this.firstColumns;
    for (let j = m - 1; j >= 0; j--) {
      const vj = slice(v, 1, j, j + 1);
      const projected = matmul(transpose(vj), q);
      q = sub(q, mul(mul(vj, slice(tau, 0, j, j + 1)), projected));
    }
    const signs = new Float32Array(m);
    for (let j = 0; j < m; j++) signs[j] = Math.trunc(this.original.data[j * m + j]);
    return matmul(this.base, mul(q, new Tensor(signs, [1, m])));
  }
}

function negativeIdentity(n: number, m: number): Tensor {
  const t = full([n, m], 0);
  for (let j = 0; j < Math.min(n, m); j++) t.data[j * m + j] = -1;
  return t;
}

function eye(n: number, m: number): Tensor {
  const t = full([n, m], 0);
  for (let j = 0; j < Math.min(n, m); j++) t.data[j * m + j] = 1;
  return t;
}

/** 1 where column ≤ row + offset (tril with a diagonal offset), else 0. */
function triangleMask(n: number, m: number, offset: number): Tensor {
  const t = full([n, m], 0);
  for (let i = 0; i < n; i++) for (let j = 0; j < m && j <= i + offset; j++) t.data[i * m + j] = 1;
  return t;
}

function orthonormalDeviation(w: Float32Array, n: number, m: number): number {
  let worst = 0;
  for (let a = 0; a < m; a++) {
    for (let b = a; b < m; b++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += w[i * m + a] * w[i * m + b];
      worst = Math.max(worst, Math.abs(dot - (a === b ? 1 : 0)));
    }
  }
  return Number.isNaN(worst) ? Infinity : worst;
}

/**
 * An n×n orthogonal matrix whose first m columns are w (n×m, orthonormal columns) exactly and
 * whose other columns span the orthogonal complement: the last n−m columns of the complete Q of
 * w's Householder QR. Deterministic (no random numbers).
 */
function completeOrthonormal(w: Float32Array, n: number, m: number): Float32Array {
  const q = qr(new Tensor(w, [n, m]), { mode: "complete" }).q.data;
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < n; c++) out[i * n + c] = c < m ? w[i * m + c] : q[i * n + c];
  }
  return out;
}
