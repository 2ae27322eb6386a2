/**
 * The portable kernels in plain TypeScript: the fallback where neither the native addon nor the
 * WebAssembly kernels load, and the reference both are tested against. Arithmetic runs in float64
 * (JS numbers) and is rounded to float32 once, when stored.
 *
 * Arguments are checked by checks.ts (the rules and messages native/tsvene.c shares). Except in
 * sgemmBatch and the strided kernels, an output may be the same array as an input of its shape
 * (in-place use); binaryStrided allows it only for an operand read contiguously from offset 0.
 */
import {
  checkAttentionSoftmax,
  checkBinaryStrided,
  checkCopyStrided,
  checkLayerNormRows,
  checkLayerNormRowsBackward,
  checkRmsNormRows,
  checkRmsNormRowsBackward,
  checkSgemmBatch,
  checkSoftmaxRows,
  checkSoftmaxRowsBackward,
  checkUnary,
  checkSelect,
  checkUnaryBackward,
} from "./checks.js";
import type { BinaryOp, Kernels } from "./types.js";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_TANH_CUBIC = 0.044715;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
/** float32's lowest finite value, which masked attention scores become (HF's torch.finfo(float32).min). */
const MASKED_SCORE = -3.4028234663852886e38;

// ---------------------------------------------------------------------------------------------
// Strided loops.

/**
 * dims and per-operand strides with length-1 dims dropped and neighbours merged where every
 * operand is contiguous across them (out always is); rank ≥ 1. For dims without a 0.
 */
interface Layout {
  dims: number[];
  strides: number[][];
}

function mergeLayout(dims: Int32Array, operandStrides: readonly Int32Array[]): Layout {
  const merged: number[] = [];
  const strides: number[][] = operandStrides.map(() => []);
  for (let d = 0; d < dims.length; d++) {
    const dim = dims[d];
    if (dim === 1) continue;
    const last = merged.length - 1;
    if (last >= 0 && operandStrides.every((s, k) => strides[k][last] === s[d] * dim)) {
      merged[last] *= dim;
      for (let k = 0; k < strides.length; k++) strides[k][last] = operandStrides[k][d];
    } else {
      merged.push(dim);
      for (let k = 0; k < strides.length; k++) strides[k].push(operandStrides[k][d]);
    }
  }
  if (merged.length === 0) return { dims: [1], strides: strides.map(() => [0]) };
  return { dims: merged, strides };
}

/**
 * out[o + i] = op(a[ai + i·as], b[bi + i·bs]) for i < n. One function per op, each with separate
 * loops for the common stride pairs, so every loop stays monomorphic and simple in V8.
 */
type BinaryRow = (
  out: Float32Array,
  o: number,
  a: Float32Array,
  ai: number,
  as: number,
  b: Float32Array,
  bi: number,
  bs: number,
  n: number,
) => void;

/** pow as in C (and PyTorch): Math.pow gives NaN for pow(1, NaN) and pow(−1, ±inf), C gives 1. */
export function powC(x: number, y: number): number {
  if (x === 1 || (x === -1 && (y === Infinity || y === -Infinity))) return 1;
  return x ** y;
}

const BINARY_ROWS: Record<BinaryOp, BinaryRow> = {
  add(out, o, a, ai, as, b, bi, bs, n) {
    if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = a[ai + i] + b[bi + i];
    else if (as === 1 && bs === 0) {
      const y = b[bi];
      for (let i = 0; i < n; i++) out[o + i] = a[ai + i] + y;
    } else if (as === 0 && bs === 1) {
      const x = a[ai];
      for (let i = 0; i < n; i++) out[o + i] = x + b[bi + i];
    } else if (as === 0 && bs === 0) {
      const v = a[ai] + b[bi];
      for (let i = 0; i < n; i++) out[o + i] = v;
    } else for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] + b[bi + i * bs];
  },
  sub(out, o, a, ai, as, b, bi, bs, n) {
    if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = a[ai + i] - b[bi + i];
    else if (as === 1 && bs === 0) {
      const y = b[bi];
      for (let i = 0; i < n; i++) out[o + i] = a[ai + i] - y;
    } else if (as === 0 && bs === 1) {
      const x = a[ai];
      for (let i = 0; i < n; i++) out[o + i] = x - b[bi + i];
    } else if (as === 0 && bs === 0) {
      const v = a[ai] - b[bi];
      for (let i = 0; i < n; i++) out[o + i] = v;
    } else for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] - b[bi + i * bs];
  },
  mul(out, o, a, ai, as, b, bi, bs, n) {
    if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = a[ai + i] * b[bi + i];
    else if (as === 1 && bs === 0) {
      const y = b[bi];
      for (let i = 0; i < n; i++) out[o + i] = a[ai + i] * y;
    } else if (as === 0 && bs === 1) {
      const x = a[ai];
      for (let i = 0; i < n; i++) out[o + i] = x * b[bi + i];
    } else if (as === 0 && bs === 0) {
      const v = a[ai] * b[bi];
      for (let i = 0; i < n; i++) out[o + i] = v;
    } else for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] * b[bi + i * bs];
  },
  div(out, o, a, ai, as, b, bi, bs, n) {
    if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = a[ai + i] / b[bi + i];
    else if (as === 1 && bs === 0) {
      const y = b[bi];
      for (let i = 0; i < n; i++) out[o + i] = a[ai + i] / y;
    } else if (as === 0 && bs === 1) {
      const x = a[ai];
      for (let i = 0; i < n; i++) out[o + i] = x / b[bi + i];
    } else if (as === 0 && bs === 0) {
      const v = a[ai] / b[bi];
      for (let i = 0; i < n; i++) out[o + i] = v;
    } else for (let i = 0; i < n; i++) out[o + i] = a[ai + i * as] / b[bi + i * bs];
  },
  pow(out, o, a, ai, as, b, bi, bs, n) {
    if (as === 1 && bs === 1) for (let i = 0; i < n; i++) out[o + i] = powC(a[ai + i], b[bi + i]);
    else if (as === 1 && bs === 0) {
      const y = b[bi];
      for (let i = 0; i < n; i++) out[o + i] = powC(a[ai + i], y);
    } else if (as === 0 && bs === 1) {
      const x = a[ai];
      for (let i = 0; i < n; i++) out[o + i] = powC(x, b[bi + i]);
    } else if (as === 0 && bs === 0) {
      const v = powC(a[ai], b[bi]);
      for (let i = 0; i < n; i++) out[o + i] = v;
    } else for (let i = 0; i < n; i++) out[o + i] = powC(a[ai + i * as], b[bi + i * bs]);
  },
  // a where a ≥ b or a is NaN, else b: NaN from either side wins.
  maximum(out, o, a, ai, as, b, bi, bs, n) {
    if (as === 1 && bs === 1) {
      for (let i = 0; i < n; i++) {
        const x = a[ai + i];
        const y = b[bi + i];
        out[o + i] = x >= y || Number.isNaN(x) ? x : y;
      }
    } else if (as === 1 && bs === 0) {
      const y = b[bi];
      for (let i = 0; i < n; i++) {
        const x = a[ai + i];
        out[o + i] = x >= y || Number.isNaN(x) ? x : y;
      }
    } else if (as === 0 && bs === 1) {
      const x = a[ai];
      for (let i = 0; i < n; i++) {
        const y = b[bi + i];
        out[o + i] = x >= y || Number.isNaN(x) ? x : y;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const x = a[ai + i * as];
        const y = b[bi + i * bs];
        out[o + i] = x >= y || Number.isNaN(x) ? x : y;
      }
    }
  },
};

/** out[o + i] = src[si + i·s] for i < n. */
function copyRow(out: Float32Array, o: number, src: Float32Array, si: number, s: number, n: number): void {
  if (s === 1) {
    // subarray allocates a view: worth it only for long rows (the threshold is a measured guess).
    if (n >= 256) out.set(src.subarray(si, si + n), o);
    else for (let i = 0; i < n; i++) out[o + i] = src[si + i];
  } else if (s === 0) {
    // fill is a builtin call: worth it only for long rows, like subarray above.
    if (n >= 256) out.fill(src[si], o, o + n);
    else for (let i = 0, v = src[si]; i < n; i++) out[o + i] = v;
  } else {
    for (let i = 0; i < n; i++) out[o + i] = src[si + i * s];
  }
}

// ---------------------------------------------------------------------------------------------
// Scalar functions.

/** σ(a) = 1/(1 + e^−a). In float64 e^−a = +inf only where σ is below float32's range anyway. */
function sigmoid(a: number): number {
  return 1 / (1 + Math.exp(-a));
}

/** 2u in geluTanh(x) = 0.5·x·(1 + tanh u) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³). */
function geluTanhSigmoidArg(x: number): number {
  return 2 * SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x);
}

/**
 * Chebyshev coefficients (in 2t − 1) of P(t) = log(erfc(z)/t) + z², t = 1/(1 + z/2): a least-squares
 * fit at 600 Chebyshev nodes over t ∈ (0, 1], max error 2.4e-16 (computed with mpmath at 50
 * digits). native/tsvene.c uses the first 13 terms, converted to a power series.
 */
const ERFC_CHEBYSHEV = [
  -0.65132685989085472, 0.64196979235649026, 0.019476473204185836, -0.0095615147868086316, -0.00094659534448203687,
  0.00036683949785276145, 4.2523324806907772e-5, -2.0278578112534243e-5, -1.6242900046470255e-6, 1.3036558355805232e-6,
  1.5626441722066143e-8, -8.5238095914926543e-8, 6.5290544390988515e-9, 5.0593434955514689e-9, -9.9136415649303309e-10,
  -2.2736512229318359e-10, 9.6467911020155268e-11, 2.3940380830391147e-12, -6.8860275264975534e-12,
  8.9448792730907257e-13, 3.1309213993429581e-13, -1.1270822361367252e-13, 3.8109052551892321e-16,
  7.106097613609237e-15, -1.5230282014571043e-15,
];

/**
 * Φ(x), the standard normal CDF, with relative accuracy on both tails (JS has no Math.erf).
 * With z = |x|/√2 and t = 1/(1 + z/2): erfc(z) = t·e^(−z² + P(t)); Φ(x) = erfc(z)/2 for x < 0 and
 * 1 − erfc(z)/2 otherwise, so nothing is computed as 1 − (something close to 1).
 */
function normalCdf(x: number): number {
  const t = 1 / (1 + Math.abs(x) / (2 * Math.SQRT2));
  const u = 2 * t - 1;
  // Clenshaw's recurrence for Σ c_k·T_k(u).
  let next = 0;
  let afterNext = 0;
  for (let i = ERFC_CHEBYSHEV.length - 1; i >= 1; i--) {
    const current = ERFC_CHEBYSHEV[i] + 2 * u * next - afterNext;
    afterNext = next;
    next = current;
  }
  const p = ERFC_CHEBYSHEV[0] + u * next - afterNext;
  const halfErfc = 0.5 * t * Math.exp(p - 0.5 * x * x);
  return x < 0 ? halfErfc : 1 - halfErfc;
}

/**
 * out[outStart : outStart + cols] = softmax of x[start : start + cols], with `exps` as scratch of
 * cols; out may be x. A row of −inf gives NaN (−inf − −inf), as in PyTorch; so does a row with NaN
 * or +inf.
 */
function softmaxRow(
  x: Float32Array,
  start: number,
  cols: number,
  out: Float32Array,
  outStart: number,
  exps: Float64Array,
): void {
  let max = -Infinity;
  for (let j = 0; j < cols; j++) if (x[start + j] > max) max = x[start + j];
  let sum = 0;
  for (let j = 0; j < cols; j++) {
    exps[j] = Math.exp(x[start + j] - max);
    sum += exps[j];
  }
  for (let j = 0; j < cols; j++) out[outStart + j] = exps[j] / sum;
}

// ---------------------------------------------------------------------------------------------
// sgemm.

/**
 * Row i of op(A)·op(B), in float64, into rowSums. Both branches work on four terms at once: four
 * rows of B per pass over rowSums, or four dot products sharing the loads of A's row. That halves
 * the time of the one-at-a-time loops (fewer passes, independent additions).
 */
function productRow(
  transA: boolean,
  transB: boolean,
  i: number,
  n: number,
  k: number,
  a: Float32Array,
  aStart: number,
  lda: number,
  b: Float32Array,
  bStart: number,
  ldb: number,
  rowSums: Float64Array,
): void {
  // A(i, p) = a[aRow + p·aStep] in either layout.
  const aRow = transA ? aStart + i : aStart + i * lda;
  const aStep = transA ? lda : 1;
  if (!transB) {
    // op(B) = B: walk rows of B, contiguous, accumulating A(i, p)·B(p, :) into rowSums.
    rowSums.fill(0);
    let p = 0;
    for (; p + 4 <= k; p += 4) {
      const a0 = a[aRow + p * aStep];
      const a1 = a[aRow + (p + 1) * aStep];
      const a2 = a[aRow + (p + 2) * aStep];
      const a3 = a[aRow + (p + 3) * aStep];
      const b0 = bStart + p * ldb;
      const b1 = b0 + ldb;
      const b2 = b1 + ldb;
      const b3 = b2 + ldb;
      for (let j = 0; j < n; j++) rowSums[j] += a0 * b[b0 + j] + a1 * b[b1 + j] + a2 * b[b2 + j] + a3 * b[b3 + j];
    }
    for (; p < k; p++) {
      const ap = a[aRow + p * aStep];
      const bp = bStart + p * ldb;
      for (let j = 0; j < n; j++) rowSums[j] += ap * b[bp + j];
    }
    return;
  }
  // op(B) = Bᵀ: entry j is the dot product of A's row i with B's row j, contiguous.
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const b0 = bStart + j * ldb;
    const b1 = b0 + ldb;
    const b2 = b1 + ldb;
    const b3 = b2 + ldb;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let p = 0; p < k; p++) {
      const ap = a[aRow + p * aStep];
      s0 += ap * b[b0 + p];
      s1 += ap * b[b1 + p];
      s2 += ap * b[b2 + p];
      s3 += ap * b[b3 + p];
    }
    rowSums[j] = s0;
    rowSums[j + 1] = s1;
    rowSums[j + 2] = s2;
    rowSums[j + 3] = s3;
  }
  for (; j < n; j++) {
    const bj = bStart + j * ldb;
    let sum = 0;
    for (let p = 0; p < k; p++) sum += a[aRow + p * aStep] * b[bj + p];
    rowSums[j] = sum;
  }
}

// ---------------------------------------------------------------------------------------------

export const jsKernels: Kernels = {
  name: "js",

  sgemmBatch(transA, transB, m, n, k, alpha, a, lda, aOffsets, b, ldb, bOffsets, beta, c, ldc, cOffsets) {
    checkSgemmBatch(transA, transB, m, n, k, alpha, a, lda, aOffsets, b, ldb, bOffsets, beta, c, ldc, cOffsets);
    if (m === 0 || n === 0) return;

    const rowSums = new Float64Array(n);
    for (let batch = 0; batch < aOffsets.length; batch++) {
      for (let i = 0; i < m; i++) {
        // As in BLAS: alpha = 0 does not read A or B, and beta = 0 does not read C (so NaNs there
        // do not propagate).
        if (alpha !== 0) {
          productRow(transA, transB, i, n, k, a, aOffsets[batch], lda, b, bOffsets[batch], ldb, rowSums);
        }
        const cRow = cOffsets[batch] + i * ldc;
        for (let j = 0; j < n; j++) {
          const product = alpha === 0 ? 0 : alpha * rowSums[j];
          c[cRow + j] = beta === 0 ? product : product + beta * c[cRow + j];
        }
      }
    }
  },

  binaryStrided(op, dims, a, aOffset, aStrides, b, bOffset, bStrides, out) {
    const size = checkBinaryStrided(op, dims, a, aOffset, aStrides, b, bOffset, bStrides, out);
    if (size === 0) return;
    const row = BINARY_ROWS[op];

    const layout = mergeLayout(dims, [aStrides, bStrides]);
    const [sa, sb] = layout.strides;
    const rank = layout.dims.length;
    const n = layout.dims[rank - 1];
    const as = sa[rank - 1];
    const bs = sb[rank - 1];
    if (rank === 1) {
      row(out, 0, a, aOffset, as, b, bOffset, bs, n);
      return;
    }
    // The two innermost dims as plain loops, the others through a counter.
    const m = layout.dims[rank - 2];
    const am = sa[rank - 2];
    const bm = sb[rank - 2];
    const counter = new Array<number>(rank - 2).fill(0);
    let ai = aOffset;
    let bi = bOffset;
    for (let o = 0; o < size; ) {
      for (let j = 0; j < m; j++, o += n) row(out, o, a, ai + j * am, as, b, bi + j * bm, bs, n);
      for (let d = rank - 3; d >= 0; d--) {
        ai += sa[d];
        bi += sb[d];
        if (++counter[d] < layout.dims[d]) break;
        ai -= sa[d] * layout.dims[d];
        bi -= sb[d] * layout.dims[d];
        counter[d] = 0;
      }
    }
  },

  copyStrided(dims, src, srcOffset, srcStrides, out) {
    const size = checkCopyStrided(dims, src, srcOffset, srcStrides, out);
    if (size === 0) return;

    const layout = mergeLayout(dims, [srcStrides]);
    const [ss] = layout.strides;
    const rank = layout.dims.length;
    const n = layout.dims[rank - 1];
    const s = ss[rank - 1];
    if (rank === 1) {
      copyRow(out, 0, src, srcOffset, s, n);
      return;
    }
    const m = layout.dims[rank - 2];
    const sm = ss[rank - 2];
    const counter = new Array<number>(rank - 2).fill(0);
    let si = srcOffset;
    for (let o = 0; o < size; ) {
      for (let j = 0; j < m; j++, o += n) copyRow(out, o, src, si + j * sm, s, n);
      for (let d = rank - 3; d >= 0; d--) {
        si += ss[d];
        if (++counter[d] < layout.dims[d]) break;
        si -= ss[d] * layout.dims[d];
        counter[d] = 0;
      }
    }
  },

  geluTanh(x, out) {
    checkUnary("geluTanh", x, out);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * sigmoid(geluTanhSigmoidArg(x[i]));
  },

  geluTanhBackward(x, gradOut, gradIn) {
    checkUnaryBackward("geluTanhBackward", x, gradOut, gradIn);
    for (let i = 0; i < x.length; i++) {
      const xi = x[i];
      const a = geluTanhSigmoidArg(xi);
      // d/dx x·σ(a) = σ(a)·(1 + x·σ(−a)·a′),
      // with 1 − σ(a) = σ(−a) and a′ = 2√(2/π)(1 + 3·0.044715·x²).
      const da = 2 * SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_CUBIC * xi * xi);
      gradIn[i] = gradOut[i] * sigmoid(a) * (1 + xi * sigmoid(-a) * da);
    }
  },

  geluErf(x, out) {
    checkUnary("geluErf", x, out);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * normalCdf(x[i]);
  },

  geluErfBackward(x, gradOut, gradIn) {
    checkUnaryBackward("geluErfBackward", x, gradOut, gradIn);
    for (let i = 0; i < x.length; i++) {
      const xi = x[i];
      gradIn[i] = gradOut[i] * (normalCdf(xi) + xi * INV_SQRT_2PI * Math.exp(-0.5 * xi * xi));
    }
  },

  silu(x, out) {
    checkUnary("silu", x, out);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * sigmoid(x[i]);
  },

  siluBackward(x, gradOut, gradIn) {
    checkUnaryBackward("siluBackward", x, gradOut, gradIn);
    for (let i = 0; i < x.length; i++) {
      const xi = x[i];
      gradIn[i] = gradOut[i] * sigmoid(xi) * (1 + xi * sigmoid(-xi));
    }
  },

  exp(x, out) {
    checkUnary("exp", x, out);
    for (let i = 0; i < x.length; i++) out[i] = Math.exp(x[i]);
  },

  tanh(x, out) {
    checkUnary("tanh", x, out);
    for (let i = 0; i < x.length; i++) out[i] = Math.tanh(x[i]);
  },

  relu(x, out) {
    checkUnary("relu", x, out);
    for (let i = 0; i < x.length; i++) out[i] = Math.max(x[i], 0);
  },

  select(cond, a, b, out) {
    checkSelect(cond, a, b, out);
    for (let i = 0; i < cond.length; i++) out[i] = cond[i] !== 0 ? a[i] : b[i];
  },

  reluBackward(x, gradOut, gradIn) {
    checkUnaryBackward("reluBackward", x, gradOut, gradIn);
    for (let i = 0; i < x.length; i++) gradIn[i] = x[i] > 0 ? gradOut[i] : 0;
  },

  softmaxRows(x, rows, cols, out) {
    checkSoftmaxRows(x, rows, cols, out);
    const exps = new Float64Array(cols);
    for (let r = 0; r < rows; r++) softmaxRow(x, r * cols, cols, out, r * cols, exps);
  },

  attentionSoftmax(x, batch, heads, queries, keys, divisor, window, padding, out) {
    checkAttentionSoftmax(x, batch, heads, queries, keys, divisor, window, padding, out);
    const d = Math.fround(divisor);
    const row = new Float32Array(keys);
    const exps = new Float64Array(keys);
    for (let b = 0; b < batch; b++) {
      for (let r = 0; r < heads * queries; r++) {
        const start = (b * heads * queries + r) * keys;
        // The query sits at key position `last` and sees keys first..last.
        const last = keys - queries + (r % queries);
        const first = window > 0 ? Math.max(0, last + 1 - window) : 0;
        for (let j = 0; j < keys; j++) {
          const score = j >= first && j <= last ? x[start + j] / d : MASKED_SCORE;
          row[j] = padding === null ? score : Math.fround(score) + padding[b * keys + j];
        }
        softmaxRow(row, 0, keys, out, start, exps);
      }
    }
  },

  softmaxRowsBackward(y, gradOut, rows, cols, gradIn) {
    checkSoftmaxRowsBackward(y, gradOut, rows, cols, gradIn);
    for (let r = 0; r < rows; r++) {
      const start = r * cols;
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += gradOut[start + j] * y[start + j];
      for (let j = 0; j < cols; j++) gradIn[start + j] = y[start + j] * (gradOut[start + j] - dot);
    }
  },

  layerNormRows(x, weight, bias, eps, rows, cols, out, mean, rstd) {
    checkLayerNormRows(x, weight, bias, eps, rows, cols, out, mean, rstd);
    for (let r = 0; r < rows; r++) {
      const start = r * cols;
      let sum = 0;
      for (let j = 0; j < cols; j++) sum += x[start + j];
      const mu = sum / cols;
      // Two passes: the one-pass E[x²] − E[x]² cancels when |mean| ≫ std.
      let squares = 0;
      for (let j = 0; j < cols; j++) squares += (x[start + j] - mu) ** 2;
      const rs = 1 / Math.sqrt(squares / cols + eps);
      mean[r] = mu;
      rstd[r] = rs;
      for (let j = 0; j < cols; j++) {
        const normalised = (x[start + j] - mu) * rs;
        out[start + j] = normalised * (weight ? weight[j] : 1) + (bias ? bias[j] : 0);
      }
    }
  },

  layerNormRowsBackward(x, weight, mean, rstd, gradOut, rows, cols, gradX, gradWeight, gradBias) {
    checkLayerNormRowsBackward(x, weight, mean, rstd, gradOut, rows, cols, gradX, gradWeight, gradBias);
    // Parameter gradients are summed over rows in float64 and added to the caller's arrays once.
    const weightSums = gradWeight ? new Float64Array(cols) : null;
    const biasSums = gradBias ? new Float64Array(cols) : null;
    for (let r = 0; r < rows; r++) {
      const start = r * cols;
      const mu = mean[r];
      const rs = rstd[r];
      let sumGHat = 0;
      let sumGHatXHat = 0;
      for (let j = 0; j < cols; j++) {
        const gHat = gradOut[start + j] * (weight ? weight[j] : 1);
        sumGHat += gHat;
        sumGHatXHat += gHat * (x[start + j] - mu) * rs;
      }
      const meanGHat = sumGHat / cols;
      const meanGHatXHat = sumGHatXHat / cols;
      for (let j = 0; j < cols; j++) {
        const g = gradOut[start + j];
        const xHat = (x[start + j] - mu) * rs;
        if (weightSums) weightSums[j] += g * xHat;
        if (biasSums) biasSums[j] += g;
        // Written last, so that gradX may be gradOut.
        gradX[start + j] = rs * (g * (weight ? weight[j] : 1) - meanGHat - xHat * meanGHatXHat);
      }
    }
    if (gradWeight && weightSums) for (let j = 0; j < cols; j++) gradWeight[j] += weightSums[j];
    if (gradBias && biasSums) for (let j = 0; j < cols; j++) gradBias[j] += biasSums[j];
  },

  rmsNormRows(x, weight, eps, rows, cols, out, rstd) {
    checkRmsNormRows(x, weight, eps, rows, cols, out, rstd);
    for (let r = 0; r < rows; r++) {
      const start = r * cols;
      let squares = 0;
      for (let j = 0; j < cols; j++) squares += x[start + j] * x[start + j];
      const rs = 1 / Math.sqrt(squares / cols + eps);
      rstd[r] = rs;
      for (let j = 0; j < cols; j++) out[start + j] = x[start + j] * rs * (weight ? weight[j] : 1);
    }
  },

  rmsNormRowsBackward(x, weight, rstd, gradOut, rows, cols, gradX, gradWeight) {
    checkRmsNormRowsBackward(x, weight, rstd, gradOut, rows, cols, gradX, gradWeight);
    const weightSums = gradWeight ? new Float64Array(cols) : null;
    for (let r = 0; r < rows; r++) {
      const start = r * cols;
      const rs = rstd[r];
      let sumGHatXHat = 0;
      for (let j = 0; j < cols; j++) {
        sumGHatXHat += gradOut[start + j] * (weight ? weight[j] : 1) * x[start + j] * rs;
      }
      const meanGHatXHat = sumGHatXHat / cols;
      for (let j = 0; j < cols; j++) {
        const g = gradOut[start + j];
        const xHat = x[start + j] * rs;
        if (weightSums) weightSums[j] += g * xHat;
        gradX[start + j] = rs * (g * (weight ? weight[j] : 1) - xHat * meanGHatXHat);
      }
    }
    if (gradWeight && weightSums) for (let j = 0; j < cols; j++) gradWeight[j] += weightSums[j];
  },
};
