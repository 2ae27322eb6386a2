/*
 * Matrix-vector products with float32 or bfloat16 weights (decoding one token: every weight streamed
 * once from DRAM) on the thread pool of pool.h. Pure C: no N-API, no BLAS. The kernels need AVX-512
 * (F, BW, VL) and are chosen at run time; where the CPU lacks it they do nothing and say so, and the
 * caller takes another path.
 */
#ifndef TSVENE_GEMV_H
#define TSVENE_GEMV_H

#include <stddef.h>
#include <stdint.h>

/* W's layout in tv_sgemv. */
enum {
  TV_GEMV_OUT_IN = 0, /* W is n×k (torch.nn.Linear's [out, in], a tied LM head): y = W·x */
  TV_GEMV_IN_OUT = 1  /* W is k×n (GPT-2's Conv1D): y = xᵀ·W */
};

/*
 * y[n] = alpha·op(W)·x[k] + beta·y, W row-major with row stride ldw (≥ k for TV_GEMV_OUT_IN, ≥ n
 * for TV_GEMV_IN_OUT); beta = 0 overwrites y without reading it. n, k ≥ 1. The products are summed
 * in float32 in an order of the kernel's choosing (fixed for a given shape and thread count).
 * Returns 1, or 0 with y untouched when this CPU has no AVX-512F or the scratch could not be
 * allocated.
 */
int tv_sgemv(int layout, int n, int k, float alpha, const float *x, const float *w, size_t ldw, float beta,
             float *y);

/*
 * y[n] = xᵀ·W + bias + beta·y for bfloat16 weight bits W (k×n, row stride ldw ≥ n; each weight
 * widened to float32 as it streams past), bias n floats or NULL. x is used as given (tv_bf16_gemm
 * rounds it to bf16 first); subnormal weights count as zero, as in tv_bf16_gemm. Only this layout:
 * n×k rows are dot products, which tv_bf16_gemm's vdpbf16ps path streams as fast. Returns 1, or 0
 * with y untouched.
 */
int tv_bf16_gemv_in_out(int n, int k, const float *x, const uint16_t *w, size_t ldw, const float *bias, float beta,
                        float *y);

#endif
