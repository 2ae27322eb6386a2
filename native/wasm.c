/*
 * The WebAssembly module (build/wasm/tsvene.wasm, built by scripts/build-wasm.ts): the kernels of
 * kernels.c exported for src/tensor/kernels/wasm.ts, plus an sgemm of its own on 128-bit SIMD.
 * wasm.ts checks every argument and copies the operands into this module's memory first, so the
 * pointers here are offsets into that memory and NULL (0) stands for an absent optional array.
 */
#include <wasm_simd128.h>

#include "kernels.h"

#define EXPORT(name) __attribute__((export_name(name)))

/* The first byte after the module's data and stack: wasm.ts keeps its operands from there on. */
extern unsigned char __heap_base;

EXPORT("heapBase") uintptr_t heap_base(void) { return (uintptr_t)&__heap_base; }

/* There is no libm here: binaryStrided's pow is the host's C-style pow in double (wasm.ts passes the
 * TypeScript kernels' function), rounded once to float as the TypeScript kernels round it. */
__attribute__((import_module("env"), import_name("pow"))) double host_pow(double x, double y);

float powf(float x, float y) { return (float)host_pow(x, y); }

/* ---------------------------------------------------------------------------------------------
 * sgemm: C = alpha·op(A)·op(B) + beta·C, blocked as in BLIS/GotoBLAS. B is packed KC×NC at a time
 * into panels NR columns wide and A MC×KC at a time into panels MR rows tall, each panel laid out
 * so the micro-kernel reads it sequentially; the micro-kernel keeps an MR×NR tile of C in
 * MR·NR/4 f32x4 registers (V8 has 16 on x86-64: 8 accumulators, 2 of B and 1 of A fit). The
 * panels are zero-padded to whole tiles, so edge tiles run the same code and store only their
 * part. Sums are float32, as in BLAS.
 */

#define MR 4
#define NR 8
#define KC 256
#define MC 128
#define NC 2048

static float packed_a[MC * KC] __attribute__((aligned(16)));
static float packed_b[KC * NC] __attribute__((aligned(16)));

typedef struct {
  const float *data;
  size_t ld;
  bool transposed;
} Operand;

/* Element (row, col) of op(X). */
static inline float operand_at(Operand x, size_t row, size_t col) {
  return x.transposed ? x.data[col * x.ld + row] : x.data[row * x.ld + col];
}

/* op(A)[i0 : i0 + mc, p0 : p0 + kc] into packed_a: panel r holds rows i0 + r·MR … as kc columns of MR. */
static void pack_a(Operand a, size_t i0, size_t mc, size_t p0, size_t kc) {
  for (size_t panel = 0; panel * MR < mc; panel++) {
    float *dst = packed_a + panel * MR * kc;
    size_t rows = mc - panel * MR < MR ? mc - panel * MR : MR;
    size_t i = i0 + panel * MR;
    if (a.transposed && rows == MR) {
      for (size_t p = 0; p < kc; p++) wasm_v128_store(dst + p * MR, wasm_v128_load(a.data + (p0 + p) * a.ld + i));
      continue;
    }
    for (size_t r = 0; r < MR; r++)
      for (size_t p = 0; p < kc; p++) dst[p * MR + r] = r < rows ? operand_at(a, i + r, p0 + p) : 0.0f;
  }
}

/* op(B)[p0 : p0 + kc, j0 : j0 + nc] into packed_b: panel s holds columns j0 + s·NR … as kc rows of NR. */
static void pack_b(Operand b, size_t p0, size_t kc, size_t j0, size_t nc) {
  for (size_t panel = 0; panel * NR < nc; panel++) {
    float *dst = packed_b + panel * NR * kc;
    size_t cols = nc - panel * NR < NR ? nc - panel * NR : NR;
    size_t j = j0 + panel * NR;
    if (!b.transposed && cols == NR) {
      for (size_t p = 0; p < kc; p++) {
        const float *src = b.data + (p0 + p) * b.ld + j;
        wasm_v128_store(dst + p * NR, wasm_v128_load(src));
        wasm_v128_store(dst + p * NR + 4, wasm_v128_load(src + 4));
      }
      continue;
    }
    for (size_t s = 0; s < NR; s++)
      for (size_t p = 0; p < kc; p++) dst[p * NR + s] = s < cols ? operand_at(b, p0 + p, j + s) : 0.0f;
  }
}

/* tile = (one packed A panel)·(one packed B panel) over kc, row-major MR×NR. */
static inline void micro_kernel(size_t kc, const float *pa, const float *pb, float *tile) {
  v128_t acc[MR][NR / 4];
#pragma clang loop unroll(full)
  for (size_t r = 0; r < MR; r++)
#pragma clang loop unroll(full)
    for (size_t v = 0; v < NR / 4; v++) acc[r][v] = wasm_f32x4_splat(0.0f);
  for (size_t p = 0; p < kc; p++, pa += MR, pb += NR) {
    v128_t b[NR / 4];
#pragma clang loop unroll(full)
    for (size_t v = 0; v < NR / 4; v++) b[v] = wasm_v128_load(pb + 4 * v);
#pragma clang loop unroll(full)
    for (size_t r = 0; r < MR; r++) {
      v128_t a = wasm_v128_load32_splat(pa + r);
#pragma clang loop unroll(full)
      for (size_t v = 0; v < NR / 4; v++) acc[r][v] = wasm_f32x4_add(acc[r][v], wasm_f32x4_mul(a, b[v]));
    }
  }
#pragma clang loop unroll(full)
  for (size_t r = 0; r < MR; r++)
#pragma clang loop unroll(full)
    for (size_t v = 0; v < NR / 4; v++) wasm_v128_store(tile + r * NR + 4 * v, acc[r][v]);
}

/* The rows × cols corner of a tile into C: C = alpha·tile + beta·C on the first k block (beta = 0
 * does not read C, so NaN there does not survive), C += alpha·tile on the later ones. */
static void store_tile(const float *tile, float *c, size_t ldc, size_t rows, size_t cols, float alpha, float beta,
                       bool first_block) {
  v128_t alpha4 = wasm_f32x4_splat(alpha), beta4 = wasm_f32x4_splat(beta);
  for (size_t r = 0; r < rows; r++) {
    float *row = c + r * ldc;
    const float *t = tile + r * NR;
    size_t j = 0;
    for (; j + 4 <= cols; j += 4) {
      v128_t sum = wasm_f32x4_mul(alpha4, wasm_v128_load(t + j));
      if (!first_block) sum = wasm_f32x4_add(sum, wasm_v128_load(row + j));
      else if (beta != 0.0f) sum = wasm_f32x4_add(sum, wasm_f32x4_mul(beta4, wasm_v128_load(row + j)));
      wasm_v128_store(row + j, sum);
    }
    for (; j < cols; j++) {
      float sum = alpha * t[j];
      if (!first_block) sum += row[j];
      else if (beta != 0.0f) sum += beta * row[j];
      row[j] = sum;
    }
  }
}

static void sgemm(Operand a, Operand b, size_t m, size_t n, size_t k, float alpha, float beta, float *c, size_t ldc) {
  float tile[MR * NR] __attribute__((aligned(16)));
  for (size_t j0 = 0; j0 < n; j0 += NC) {
    size_t nc = n - j0 < NC ? n - j0 : NC;
    for (size_t p0 = 0; p0 < k; p0 += KC) {
      size_t kc = k - p0 < KC ? k - p0 : KC;
      pack_b(b, p0, kc, j0, nc);
      for (size_t i0 = 0; i0 < m; i0 += MC) {
        size_t mc = m - i0 < MC ? m - i0 : MC;
        pack_a(a, i0, mc, p0, kc);
        for (size_t jr = 0; jr < nc; jr += NR) {
          for (size_t ir = 0; ir < mc; ir += MR) {
            micro_kernel(kc, packed_a + ir * kc, packed_b + jr * kc, tile);
            store_tile(tile, c + (i0 + ir) * ldc + j0 + jr, ldc, mc - ir < MR ? mc - ir : MR,
                       nc - jr < NR ? nc - jr : NR, alpha, beta, p0 == 0);
          }
        }
      }
    }
  }
}

/* Σ_p x[p]·y[p] over n floats, in four f32x4 partial sums. */
static float dot_f32(const float *x, const float *y, size_t n) {
  v128_t s0 = wasm_f32x4_splat(0.0f), s1 = s0, s2 = s0, s3 = s0;
  size_t p = 0;
  for (; p + 16 <= n; p += 16) {
    s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(x + p), wasm_v128_load(y + p)));
    s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(wasm_v128_load(x + p + 4), wasm_v128_load(y + p + 4)));
    s2 = wasm_f32x4_add(s2, wasm_f32x4_mul(wasm_v128_load(x + p + 8), wasm_v128_load(y + p + 8)));
    s3 = wasm_f32x4_add(s3, wasm_f32x4_mul(wasm_v128_load(x + p + 12), wasm_v128_load(y + p + 12)));
  }
  for (; p + 4 <= n; p += 4) s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(x + p), wasm_v128_load(y + p)));
  v128_t s = wasm_f32x4_add(wasm_f32x4_add(s0, s1), wasm_f32x4_add(s2, s3));
  float sum = wasm_f32x4_extract_lane(s, 0) + wasm_f32x4_extract_lane(s, 1) + wasm_f32x4_extract_lane(s, 2) +
              wasm_f32x4_extract_lane(s, 3);
  for (; p < n; p++) sum += x[p] * y[p];
  return sum;
}

/* One row of A (decoding a single token) times op(B): streams B once instead of packing it. */
static void sgemv_row(const float *a, Operand b, size_t n, size_t k, float alpha, float beta, float *c) {
  if (b.transposed) {
    for (size_t j = 0; j < n; j++) {
      float product = alpha * dot_f32(a, b.data + j * b.ld, k);
      c[j] = beta == 0.0f ? product : product + beta * c[j];
    }
    return;
  }
  scale_matrix_f32(c, 1, n, n, beta);
  for (size_t p = 0; p < k; p++) {
    const float *row = b.data + p * b.ld;
    v128_t scale = wasm_f32x4_splat(alpha * a[p]);
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
      wasm_v128_store(c + j, wasm_f32x4_add(wasm_v128_load(c + j), wasm_f32x4_mul(scale, wasm_v128_load(row + j))));
    for (; j < n; j++) c[j] += alpha * a[p] * row[j];
  }
}

/* The offsets are element offsets from a, b and c; wasm.ts has checked every matrix lies inside. */
EXPORT("sgemmBatch")
void sgemm_batch(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, double alpha, const float *a, size_t lda,
                 const int32_t *a_offsets, const float *b, size_t ldb, const int32_t *b_offsets, double beta, float *c,
                 size_t ldc, const int32_t *c_offsets, size_t count) {
  if (m == 0 || n == 0) return;
  for (size_t i = 0; i < count; i++) {
    float *ci = c + c_offsets[i];
    /* As in BLAS, alpha = 0 or k = 0 reads neither A nor B (an Inf or NaN there does not matter). */
    if (alpha == 0.0 || k == 0) {
      scale_matrix_f32(ci, m, n, ldc, (float)beta);
      continue;
    }
    Operand ai = {a + a_offsets[i], lda, trans_a}, bi = {b + b_offsets[i], ldb, trans_b};
    if (m == 1 && !trans_a)
      sgemv_row(ai.data, bi, n, k, (float)alpha, (float)beta, ci);
    else
      sgemm(ai, bi, m, n, k, (float)alpha, (float)beta, ci, ldc);
  }
}

/* ---------------------------------------------------------------------------------------------
 * The kernels of kernels.c, as the module's exports.
 */

EXPORT("geluTanh") void gelu_tanh(const float *x, float *out, size_t n) { gelu_tanh_f32(x, out, n); }
EXPORT("geluTanhBackward") void gelu_tanh_backward(const float *x, const float *grad_out, float *grad_in, size_t n) {
  gelu_tanh_backward_f32(x, grad_out, grad_in, n);
}
EXPORT("geluErf") void gelu_erf(const float *x, float *out, size_t n) { gelu_erf_f32(x, out, n); }
EXPORT("geluErfBackward") void gelu_erf_backward(const float *x, const float *grad_out, float *grad_in, size_t n) {
  gelu_erf_backward_f32(x, grad_out, grad_in, n);
}
EXPORT("silu") void silu(const float *x, float *out, size_t n) { silu_f32(x, out, n); }
EXPORT("siluBackward") void silu_backward(const float *x, const float *grad_out, float *grad_in, size_t n) {
  silu_backward_f32(x, grad_out, grad_in, n);
}
EXPORT("exp") void exp_array(const float *x, float *out, size_t n) { exp_array_f32(x, out, n); }
EXPORT("tanh") void tanh_array(const float *x, float *out, size_t n) { tanh_array_f32(x, out, n); }
EXPORT("relu") void relu(const float *x, float *out, size_t n) { relu_f32(x, out, n); }
EXPORT("select") void select(const float *cond, const float *a, const float *b, float *out, size_t n) {
  select_f32(cond, a, b, out, n);
}
EXPORT("reluBackward") void relu_backward(const float *x, const float *grad_out, float *grad_in, size_t n) {
  relu_backward_f32(x, grad_out, grad_in, n);
}

EXPORT("softmaxRows") void softmax_rows(const float *x, size_t rows, size_t cols, float *out) {
  softmax_rows_f32(x, rows, cols, out);
}
EXPORT("attentionSoftmax")
void attention_softmax(const float *x, size_t batch, size_t heads, size_t queries, size_t keys, double divisor,
                       size_t window, const float *padding, float *out) {
  attention_softmax_f32(x, batch, heads, queries, keys, (float)divisor, window, padding, out);
}
EXPORT("softmaxRowsBackward")
void softmax_rows_backward(const float *y, const float *grad_out, size_t rows, size_t cols, float *grad_in) {
  softmax_rows_backward_f32(y, grad_out, rows, cols, grad_in);
}

EXPORT("layerNormRows")
void layer_norm_rows(const float *x, const float *weight, const float *bias, double eps, size_t rows, size_t cols,
                     float *out, float *mean, float *rstd) {
  layer_norm_rows_f32(x, weight, bias, eps, rows, cols, out, mean, rstd);
}

/* scratch: room for 2·cols doubles, zeroed here for the parameter-gradient sums. */
EXPORT("layerNormRowsBackward")
void layer_norm_rows_backward(const float *x, const float *weight, const float *mean, const float *rstd,
                              const float *grad_out, size_t rows, size_t cols, float *grad_x, float *grad_weight,
                              float *grad_bias, double *scratch) {
  __builtin_memset(scratch, 0, 2 * cols * sizeof(double));
  layer_norm_rows_backward_f32(x, weight, mean, rstd, grad_out, rows, cols, grad_x, grad_weight, grad_bias,
                               grad_weight ? scratch : NULL, grad_bias ? scratch + cols : NULL);
}

EXPORT("rmsNormRows")
void rms_norm_rows(const float *x, const float *weight, double eps, size_t rows, size_t cols, float *out,
                   float *rstd) {
  rms_norm_rows_f32(x, weight, eps, rows, cols, out, rstd);
}

/* scratch: room for cols doubles, zeroed here for the weight-gradient sums. */
EXPORT("rmsNormRowsBackward")
void rms_norm_rows_backward(const float *x, const float *weight, const float *rstd, const float *grad_out, size_t rows,
                            size_t cols, float *grad_x, float *grad_weight, double *scratch) {
  __builtin_memset(scratch, 0, cols * sizeof(double));
  rms_norm_rows_backward_f32(x, weight, rstd, grad_out, rows, cols, grad_x, grad_weight,
                             grad_weight ? scratch : NULL);
}

/* op: a BinaryOp; dims and the strides have rank entries; size = Π dims > 0 (wasm.ts returns early on 0). */
EXPORT("binaryStrided")
void binary_strided(int32_t op, size_t rank, const int32_t *dims, const float *a, size_t a_offset,
                    const int32_t *a_strides, const float *b, size_t b_offset, const int32_t *b_strides, float *out,
                    size_t size) {
  StridedLayout layout;
  const int32_t *const strides[2] = {a_strides, b_strides};
  merge_layout(dims, rank, strides, 2, &layout);
  binary_strided_f32((BinaryOp)op, &layout, a, a_offset, b, b_offset, out, size);
}

EXPORT("copyStrided")
void copy_strided(size_t rank, const int32_t *dims, const float *src, size_t src_offset, const int32_t *src_strides,
                  float *out, size_t size) {
  StridedLayout layout;
  const int32_t *const strides[1] = {src_strides};
  merge_layout(dims, rank, strides, 1, &layout);
  copy_strided_f32(&layout, src, src_offset, out, size);
}
