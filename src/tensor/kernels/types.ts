/**
 * The compute primitives the tensor ops stand on. Three implementations exist: `js` (portable,
 * the reference), `native` (the C addon: OpenBLAS sgemm plus vectorised loops) and `wasm` (the
 * addon's C loops and a SIMD sgemm compiled to WebAssembly). Every array is row-major float32;
 * kernels write into `out` arrays the caller allocated and never keep them.
 */
/** The elementwise binary operations of binaryStrided. */
export type BinaryOp = "add" | "sub" | "mul" | "div" | "pow" | "maximum";

export interface Kernels {
  readonly name: "native" | "wasm" | "js";

  /**
   * For each i < offsets length: C_i = alpha * op(A_i) @ op(B_i) + beta * C_i, where op transposes
   * when the flag is set. A_i starts at a[aOffsets[i]] (likewise B_i, C_i); op(A_i) is m×k,
   * op(B_i) is k×n, C_i is m×n; lda/ldb/ldc are the row strides of the stored matrices.
   */
  sgemmBatch(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    aOffsets: Int32Array,
    b: Float32Array,
    ldb: number,
    bOffsets: Int32Array,
    beta: number,
    c: Float32Array,
    ldc: number,
    cOffsets: Int32Array,
  ): void;

  /** out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
  geluTanh(x: Float32Array, out: Float32Array): void;
  /** gradIn = gradOut · d geluTanh(x)/dx */
  geluTanhBackward(x: Float32Array, gradOut: Float32Array, gradIn: Float32Array): void;
  /** out = 0.5·x·(1 + erf(x/√2)) */
  geluErf(x: Float32Array, out: Float32Array): void;
  geluErfBackward(x: Float32Array, gradOut: Float32Array, gradIn: Float32Array): void;
  /** out = x·sigmoid(x) */
  silu(x: Float32Array, out: Float32Array): void;
  siluBackward(x: Float32Array, gradOut: Float32Array, gradIn: Float32Array): void;
  exp(x: Float32Array, out: Float32Array): void;
  tanh(x: Float32Array, out: Float32Array): void;
  /** out = max(x, 0); NaN stays NaN */
  relu(x: Float32Array, out: Float32Array): void;
  /** gradIn = gradOut where x > 0, else 0 */
  reluBackward(x: Float32Array, gradOut: Float32Array, gradIn: Float32Array): void;
  /** out = cond ≠ 0 ? a : b elementwise (NaN in cond counts as ≠ 0); all four of one length */
  select(cond: Float32Array, a: Float32Array, b: Float32Array, out: Float32Array): void;

  /**
   * out[i] = op(a[aOffset + Σ_d i_d·aStrides[d]], b[bOffset + Σ_d i_d·bStrides[d]]) for every
   * multi-index (i_0, …, i_{r−1}) of the shape `dims`, out being contiguous (row-major) in that
   * shape: out.length = Π dims, 1 for dims of length 0 (a scalar). Strides are ≥ 0; 0 broadcasts.
   * Both operands must lie inside their arrays: offset + Σ (dims[d] − 1)·strides[d] < length when
   * out is not empty. add/sub/mul/div are IEEE float32 operations; pow is pow() as in C (so
   * pow(1, NaN) = pow(−1, ±inf) = 1, unlike Math.pow) rounded to float32, within 2 ulp between
   * the two kernel sets; maximum gives a where a ≥ b or a is NaN, else b (NaN from either side
   * wins). out must not overlap a or b, except as the very same elements read contiguously
   * (in-place use with offset 0 and the contiguous strides).
   */
  binaryStrided(
    op: BinaryOp,
    dims: Int32Array,
    a: Float32Array,
    aOffset: number,
    aStrides: Int32Array,
    b: Float32Array,
    bOffset: number,
    bStrides: Int32Array,
    out: Float32Array,
  ): void;
  /**
   * out[i] = src[srcOffset + Σ_d i_d·srcStrides[d]] with out contiguous in the shape `dims`, as
   * in binaryStrided (same rules for dims, strides and bounds): the copy behind permute,
   * transpose, expand and slice. out must not overlap src.
   */
  copyStrided(dims: Int32Array, src: Float32Array, srcOffset: number, srcStrides: Int32Array, out: Float32Array): void;

  /** Row-wise softmax of a rows×cols matrix, max-subtracted. */
  softmaxRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void;
  /** gradIn = y ⊙ (gradOut − rowsum(gradOut ⊙ y)), y the softmax output. */
  softmaxRowsBackward(y: Float32Array, gradOut: Float32Array, rows: number, cols: number, gradIn: Float32Array): void;

  /**
   * GPT-2's attention probabilities in one pass over raw scores x [batch, heads, queries, keys],
   * the queries being the last `queries` of the `keys` positions (queries ≤ keys): a score is
   * divided by divisor (both float32, one rounding) where its key is at or before the query's
   * position and, with window > 0, fewer than window positions behind it, and is float32's lowest
   * value elsewhere (HF's torch.where with the causal bias); padding [batch, keys], unless null, is
   * then added (one float32 rounding), and each row goes through softmaxRows. out may be x.
   */
  attentionSoftmax(
    x: Float32Array,
    batch: number,
    heads: number,
    queries: number,
    keys: number,
    divisor: number,
    window: number,
    padding: Float32Array | null,
    out: Float32Array,
  ): void;

  /**
   * Row-wise layer norm: out = (x − mean)·rstd·weight + bias, rstd = 1/√(var + eps) with the biased
   * variance. weight/bias may be null (treated as 1 and 0). Writes each row's mean and rstd.
   */
  layerNormRows(
    x: Float32Array,
    weight: Float32Array | null,
    bias: Float32Array | null,
    eps: number,
    rows: number,
    cols: number,
    out: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
  ): void;
  /**
   * Gradients of layerNormRows. gradX is written; gradWeight/gradBias (when not null) are
   * accumulated into (+=), so the caller passes zeroed arrays.
   */
  layerNormRowsBackward(
    x: Float32Array,
    weight: Float32Array | null,
    mean: Float32Array,
    rstd: Float32Array,
    gradOut: Float32Array,
    rows: number,
    cols: number,
    gradX: Float32Array,
    gradWeight: Float32Array | null,
    gradBias: Float32Array | null,
  ): void;

  /** Row-wise RMS norm: out = x·rstd·weight, rstd = 1/√(mean(x²) + eps). Writes each row's rstd. */
  rmsNormRows(
    x: Float32Array,
    weight: Float32Array | null,
    eps: number,
    rows: number,
    cols: number,
    out: Float32Array,
    rstd: Float32Array,
  ): void;
  /** Gradients of rmsNormRows; gradWeight (when not null) is accumulated into. */
  rmsNormRowsBackward(
    x: Float32Array,
    weight: Float32Array | null,
    rstd: Float32Array,
    gradOut: Float32Array,
    rows: number,
    cols: number,
    gradX: Float32Array,
    gradWeight: Float32Array | null,
  ): void;

  /**
   * Optional, where the CPU allows it: C[m×n] = A[m×k]·op(W) + beta·C (beta 0 or 1) for bf16
   * weight bits W, stored n×k with op(W) = Wᵀ when transposeW, else k×n; A is rounded to bf16
   * and products accumulate in float32. Returns false, writing nothing, when it cannot run here.
   */
  bf16Gemm?(
    transposeW: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    w: Uint16Array,
    beta: number,
    c: Float32Array,
  ): boolean;
}

/** The kernel functions: every member of Kernels but its name. */
export type KernelFunctions = Omit<Kernels, "name">;

/**
 * One entry per kernel function. The type makes the compiler require every function of
 * KernelFunctions here and refuse anything else, so KERNEL_FUNCTION_NAMES cannot miss a kernel.
 */
const KERNEL_FUNCTION_SET: { readonly [K in keyof KernelFunctions]: true } = {
  sgemmBatch: true,
  binaryStrided: true,
  copyStrided: true,
  geluTanh: true,
  geluTanhBackward: true,
  geluErf: true,
  geluErfBackward: true,
  silu: true,
  siluBackward: true,
  exp: true,
  tanh: true,
  relu: true,
  reluBackward: true,
  select: true,
  softmaxRows: true,
  softmaxRowsBackward: true,
  attentionSoftmax: true,
  layerNormRows: true,
  layerNormRowsBackward: true,
  rmsNormRows: true,
  rmsNormRowsBackward: true,
};

/** The names of the kernel functions, which the native addon and the WebAssembly module must all export. */
export const KERNEL_FUNCTION_NAMES = Object.freeze(Object.keys(KERNEL_FUNCTION_SET) as (keyof KernelFunctions)[]);
