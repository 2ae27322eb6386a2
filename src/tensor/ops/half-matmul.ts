/**
 * Products with 16-bit weights, which stay 2 bytes in memory: a bf16 GEMM where the kernel set
 * has one (AVX512-BF16 in the addon), otherwise the converting path, which widens the weight a
 * block at a time (exactly) and runs the float32 GEMM on each block, so the result equals the
 * float32 product with the widened weight and no full float32 copy is ever held.
 */
import { kernels } from "../kernels/index.js";
import { widenInto, type HalfStorage } from "../half.js";

/** Elements of the widened block the converting path holds at once (4 MiB). */
const BLOCK_ELEMENTS = 1 << 20;

const zero = new Int32Array([0]);

/**
 * C[m×n] = A[m×k]·op(W) + beta·C for W stored row-major as `half`: with `transposeW`, W is n×k
 * and op(W) = Wᵀ (torch.nn.Linear's [out, in]); otherwise W is k×n.
 */
export function halfMatmul(
  transposeW: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  half: HalfStorage,
  beta: number,
  c: Float32Array,
): void {
  if (m === 0 || n === 0) return;
  const set = kernels();
  if (half.dtype === "bfloat16" && set.bf16Gemm?.(transposeW, m, n, k, a, half.bits, beta, c)) return;
  if (transposeW) {
    // Blocks of W's rows are blocks of C's columns.
    const rowsPerBlock = Math.max(1, Math.floor(BLOCK_ELEMENTS / Math.max(k, 1)));
    const block = new Float32Array(Math.min(rowsPerBlock, n) * k);
    for (let n0 = 0; n0 < n; n0 += rowsPerBlock) {
      const nb = Math.min(rowsPerBlock, n - n0);
      widenInto(half, n0 * k, nb * k, block);
      set.sgemmBatch(false, true, m, nb, k, 1, a, k, zero, block, k, zero, beta, c, n, new Int32Array([n0]));
    }
    return;
  }
  // Blocks of W's rows are slices of the inner dimension, accumulated into C.
  if (k === 0) {
    if (beta === 0) c.fill(0, 0, m * n);
    return;
  }
  const rowsPerBlock = Math.max(1, Math.floor(BLOCK_ELEMENTS / n));
  const block = new Float32Array(Math.min(rowsPerBlock, k) * n);
  for (let k0 = 0; k0 < k; k0 += rowsPerBlock) {
    const kb = Math.min(rowsPerBlock, k - k0);
    widenInto(half, k0 * n, kb * n, block);
    set.sgemmBatch(
      false,
      false,
      m,
      n,
      kb,
      1,
      a,
      k,
      new Int32Array([k0]),
      block,
      n,
      zero,
      k0 === 0 ? beta : 1,
      c,
      n,
      zero,
    );
  }
}
