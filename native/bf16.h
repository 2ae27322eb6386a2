/*
 * Products of float32 activations with bfloat16 weights, the weights read where they lie (a
 * memory-mapped safetensors tensor in Hugging Face layout: no packing or conversion at load time).
 * Pure C: no N-API, no BLAS. The kernel needs AVX512-BF16 (vdpbf16ps) and is chosen at run time,
 * so the file builds for any target and tv_bf16_gemm_supported says whether it can run.
 */
#ifndef TSVENE_BF16_H
#define TSVENE_BF16_H

#include <stdint.h>

/* W's layout in tv_bf16_gemm. */
enum {
  TV_BF16_OUT_IN = 0, /* W is n×k (torch.nn.Linear's [out, in]); the product uses Wᵀ */
  TV_BF16_IN_OUT = 1  /* W is k×n (GPT-2's Conv1D); the product uses W */
};

/* tv_bf16_gemm's results. */
enum {
  TV_BF16_OK = 0,
  TV_BF16_UNSUPPORTED = 1,  /* this CPU (or this build's target) has no AVX512-BF16 */
  TV_BF16_BAD_ARGUMENT = 2, /* a layout, size, stride or pointer outside the contract below */
  TV_BF16_NO_MEMORY = 3     /* the scratch buffers could not be allocated */
};

/* 1 when this CPU runs the AVX512-BF16 kernel, else 0. */
int tv_bf16_gemm_supported(void);

/*
 * C[m×n] = A[m×k]·op(W) + bias + beta·C, all row-major: A float32 (row stride lda ≥ k), W bfloat16
 * bits (row stride ldw ≥ k for TV_BF16_OUT_IN, ≥ n for TV_BF16_IN_OUT), bias n floats or NULL
 * (added to every row), C float32 (row stride ldc ≥ n). beta = 0 overwrites C without reading it.
 * As in PyTorch's bf16 matmul, A is rounded to bfloat16 (to nearest even; NaN stays NaN) and the
 * products are summed in float32; as in vdpbf16ps (which oneDNN, behind PyTorch, uses too), bf16
 * subnormals (|x| < 2^-126) count as zero. Pointers may be NULL where nothing is read through them
 * (m, n or k is 0). Every shape m, n, k ≥ 0 works; the work is split over tv_pool_threads()
 * threads.
 * Returns TV_BF16_OK, or an error code with C untouched.
 */
int tv_bf16_gemm(int layout, int m, int n, int k, const float *a, int lda, const uint16_t *w, int ldw,
                 const float *bias, float beta, float *c, int ldc);

#endif
