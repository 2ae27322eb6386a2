/*
 * tsvene's kernels on raw arrays: the computing half of the contract in src/tensor/kernels/types.ts,
 * shared by the N-API addon (tsvene.c, which adds OpenBLAS sgemm) and the WebAssembly module
 * (wasm.c, which adds its own sgemm). Callers check every argument first: these trust sizes and
 * bounds. Elementwise and row kernels allow an output to be the very same array as an input.
 */
#ifndef TSVENE_KERNELS_H
#define TSVENE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void gelu_tanh_f32(const float *x, float *out, size_t n);
void gelu_tanh_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n);
void gelu_erf_f32(const float *x, float *out, size_t n);
void gelu_erf_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n);
void silu_f32(const float *x, float *out, size_t n);
void silu_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n);
void relu_f32(const float *x, float *out, size_t n);
void relu_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n);
void select_f32(const float *cond, const float *a, const float *b, float *out, size_t n);
void exp_array_f32(const float *x, float *out, size_t n);
void tanh_array_f32(const float *x, float *out, size_t n);

void softmax_rows_f32(const float *x, size_t rows, size_t cols, float *out);
/*
 * GPT-2's attention probabilities from raw scores x [batch, heads, queries, keys], the queries
 * being the last `queries` of the `keys` positions: each score divided by divisor where the key is
 * at or before the query's position and (window > 0) fewer than window positions behind it, float32's
 * lowest value elsewhere; plus padding[b, key] when padding is not NULL; then softmax over keys.
 * queries ≤ keys.
 */
void attention_softmax_f32(const float *x, size_t batch, size_t heads, size_t queries, size_t keys, float divisor,
                           size_t window, const float *padding, float *out);
void softmax_rows_backward_f32(const float *y, const float *grad_out, size_t rows, size_t cols, float *grad_in);

void layer_norm_rows_f32(const float *x, const float *weight, const float *bias, double eps, size_t rows, size_t cols,
                         float *out, float *mean, float *rstd);
/* weight_sums and bias_sums: zeroed scratch of cols doubles each, non-NULL exactly when grad_weight
 * and grad_bias are (the parameter gradients are summed there in double, then added once). */
void layer_norm_rows_backward_f32(const float *x, const float *weight, const float *mean, const float *rstd,
                                  const float *grad_out, size_t rows, size_t cols, float *grad_x, float *grad_weight,
                                  float *grad_bias, double *weight_sums, double *bias_sums);
void rms_norm_rows_f32(const float *x, const float *weight, double eps, size_t rows, size_t cols, float *out,
                       float *rstd);
/* weight_sums: as in layer_norm_rows_backward_f32, with grad_weight. */
void rms_norm_rows_backward_f32(const float *x, const float *weight, const float *rstd, const float *grad_out,
                                size_t rows, size_t cols, float *grad_x, float *grad_weight, double *weight_sums);

/*
 * Strided kernels: out is contiguous in the shape dims; each operand is read at offset +
 * Σ i_d·strides[d]. merge_layout first drops length-1 dims and merges neighbours across which
 * every operand is contiguous.
 */

/* Length-1 dims are dropped, so each dim is ≥ 2 and their product ≤ 2^53 bounds the rank by 53. */
#define MAX_STRIDED_RANK 64

typedef struct {
  size_t rank; /* ≥ 1 */
  size_t dims[MAX_STRIDED_RANK];
  size_t strides[2][MAX_STRIDED_RANK]; /* per operand */
} StridedLayout;

/* For dims with no 0 and a product ≤ 2^53 (checked by the caller); operands is 1 or 2. */
void merge_layout(const int32_t *dims, size_t rank, const int32_t *const *strides, size_t operands,
                  StridedLayout *layout);

/* The order of the op names in the TypeScript contract's BinaryOp. */
typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM } BinaryOp;

/* size: the product of the layout's dims, out's length. */
void binary_strided_f32(BinaryOp op, const StridedLayout *layout, const float *a, size_t a_offset, const float *b,
                        size_t b_offset, float *out, size_t size);
void copy_strided_f32(const StridedLayout *layout, const float *src, size_t src_offset, float *out, size_t size);

/* C = beta·C for an m×n matrix with row stride ldc; beta = 0 writes zeros (NaN in C does not survive). */
void scale_matrix_f32(float *c, size_t m, size_t n, size_t ldc, float beta);

#endif
