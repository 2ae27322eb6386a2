/*
 * The WebAssembly module (build/wasm/tsvene.wasm, built by scripts/build-wasm.ts): the kernels of
 * kernels.c exported for src/tensor/kernels/wasm.ts, plus an sgemm of its own on 128-bit SIMD.
 * wasm.ts checks every argument and copies the operands into this module's memory first, so the
 * pointers here are offsets into that memory and NULL (0) stands for an absent optional array.
 *
 * Built with TSVENE_WASM_THREADS (build/wasm/tsvene-threads.wasm), the memory is shared and other
 * instances of the module on it, each in its own worker, may serve as helpers (serveHelper): a
 * large sgemmBatch is then cut into parts along whole rows or columns of C, never along k, so each
 * element is summed as on one thread and the result is bit-identical.
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

/* The threaded build has room for the caller and THREADS_MAX − 1 helpers (build-wasm.ts passes
 * wasm.ts's WASM_THREADS_MAX); each thread packs into its own buffers. */
#ifndef TSVENE_WASM_THREADS
#define THREADS_MAX 1
#endif

static float packed_a[THREADS_MAX][MC * KC] __attribute__((aligned(16)));
static float packed_b[THREADS_MAX][KC * NC] __attribute__((aligned(16)));

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
static void pack_a(Operand a, size_t i0, size_t mc, size_t p0, size_t kc, size_t thread) {
  for (size_t panel = 0; panel * MR < mc; panel++) {
    float *dst = packed_a[thread] + panel * MR * kc;
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
static void pack_b(Operand b, size_t p0, size_t kc, size_t j0, size_t nc, size_t thread) {
  for (size_t panel = 0; panel * NR < nc; panel++) {
    float *dst = packed_b[thread] + panel * NR * kc;
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

static void sgemm(Operand a, Operand b, size_t m, size_t n, size_t k, float alpha, float beta, float *c, size_t ldc,
                  size_t thread) {
  float tile[MR * NR] __attribute__((aligned(16)));
  for (size_t j0 = 0; j0 < n; j0 += NC) {
    size_t nc = n - j0 < NC ? n - j0 : NC;
    for (size_t p0 = 0; p0 < k; p0 += KC) {
      size_t kc = k - p0 < KC ? k - p0 : KC;
      pack_b(b, p0, kc, j0, nc, thread);
      for (size_t i0 = 0; i0 < m; i0 += MC) {
        size_t mc = m - i0 < MC ? m - i0 : MC;
        pack_a(a, i0, mc, p0, kc, thread);
        for (size_t jr = 0; jr < nc; jr += NR) {
          for (size_t ir = 0; ir < mc; ir += MR) {
            micro_kernel(kc, packed_a[thread] + ir * kc, packed_b[thread] + jr * kc, tile);
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

/* One sgemmBatch call, its pointers already offsets into this memory and its scalars in float. */
typedef struct {
  /* alpha = 0 (as a double) or k = 0: C is only scaled by beta. */
  bool scale_only;
  bool trans_a, trans_b;
  size_t m, n, k;
  float alpha, beta;
  const float *a;
  size_t lda;
  const int32_t *a_offsets;
  const float *b;
  size_t ldb;
  const int32_t *b_offsets;
  float *c;
  size_t ldc;
  const int32_t *c_offsets;
  size_t count;
} GemmCall;

/* Rows [row0, row0 + rows) × columns [col0, col0 + cols) of matrix i's C. Whether a row goes through
 * sgemv_row depends on the whole call's m, so that every part sums as the whole would. */
static void gemm_block(const GemmCall *g, size_t i, size_t row0, size_t rows, size_t col0, size_t cols,
                       size_t thread) {
  float *c = g->c + g->c_offsets[i] + row0 * g->ldc + col0;
  /* As in BLAS, alpha = 0 or k = 0 reads neither A nor B (an Inf or NaN there does not matter). */
  if (g->scale_only) {
    scale_matrix_f32(c, rows, cols, g->ldc, g->beta);
    return;
  }
  Operand a = {g->a + g->a_offsets[i] + (g->trans_a ? row0 : row0 * g->lda), g->lda, g->trans_a};
  Operand b = {g->b + g->b_offsets[i] + (g->trans_b ? col0 * g->ldb : col0), g->ldb, g->trans_b};
  if (g->m == 1 && !g->trans_a)
    sgemv_row(a.data, b, cols, g->k, g->alpha, g->beta, c);
  else
    sgemm(a, b, rows, cols, g->k, g->alpha, g->beta, c, g->ldc, thread);
}

/* Part `part` of `parts`: whole matrices when there are enough of them, else a band of every
 * matrix's C, whole NR-wide column panels (A is shared) or MR-tall row panels when C is taller. */
static void gemm_part(const GemmCall *g, size_t part, size_t parts, size_t thread) {
  if (g->count >= parts) {
    for (size_t i = g->count * part / parts; i < g->count * (part + 1) / parts; i++)
      gemm_block(g, i, 0, g->m, 0, g->n, thread);
    return;
  }
  bool by_columns = g->n >= g->m;
  size_t extent = by_columns ? g->n : g->m, unit = by_columns ? NR : MR;
  size_t units = (extent + unit - 1) / unit;
  size_t from = units * part / parts * unit, to = units * (part + 1) / parts * unit;
  if (to > extent) to = extent;
  if (from >= to) return;
  for (size_t i = 0; i < g->count; i++) {
    if (by_columns)
      gemm_block(g, i, 0, g->m, from, to - from, thread);
    else
      gemm_block(g, i, from, to - from, 0, g->n, thread);
  }
}

#ifdef TSVENE_WASM_THREADS
#include <stdatomic.h>

/* Below this many flops a call stays on the caller's thread: waking helpers costs more. */
#define TEAM_MIN_FLOPS 4e6
#define HELPER_STACK_BYTES 65536
#define TICKETS_CLOSED (1 << 30)

static unsigned char helper_stacks[THREADS_MAX - 1][HELPER_STACK_BYTES] __attribute__((aligned(16)));
/* The caller and the helpers serving, and how many of them a call may use (limitTeam); the call
 * they share; its parts, handed out as tickets. */
static atomic_int team_size = 1;
static atomic_int team_limit = THREADS_MAX;
static GemmCall team_call;
static atomic_int team_parts;
static atomic_int next_ticket = TICKETS_CLOSED;
static atomic_int parts_done;
/* Bumped once per shared call: the word the helpers sleep on. */
static atomic_int generation;

/* Takes parts of team_call until none is left. A helper that wakes late gets a ticket past the
 * last part (or a closed one while the caller writes the next call) and goes back to sleep. */
static void run_tickets(size_t thread) {
  for (;;) {
    int ticket = atomic_fetch_add(&next_ticket, 1);
    int parts = atomic_load(&team_parts);
    if (ticket >= parts) return;
    gemm_part(&team_call, (size_t)ticket, (size_t)parts, thread);
    if (atomic_fetch_add(&parts_done, 1) + 1 == parts) __builtin_wasm_memory_atomic_notify((int *)&parts_done, 1);
  }
}

/* The top of helper `thread`'s stack: wasm.ts sets the instance's __stack_pointer to it first. */
EXPORT("helperStackTop") uintptr_t helper_stack_top(int32_t thread) {
  return (uintptr_t)(helper_stacks[thread - 1] + HELPER_STACK_BYTES);
}

/* Joins the team as helper `thread` (1 … THREADS_MAX − 1) and serves its calls; never returns. */
EXPORT("serveHelper") void serve_helper(int32_t thread) {
  int seen = atomic_load(&generation);
  atomic_fetch_add(&team_size, 1);
  for (;;) {
    __builtin_wasm_memory_atomic_wait32((int *)&generation, seen, -1);
    int now = atomic_load(&generation);
    if (now == seen) continue;
    seen = now;
    run_tickets((size_t)thread);
  }
}

EXPORT("teamSize") int32_t team_size_now(void) { return atomic_load(&team_size); }
EXPORT("limitTeam") void limit_team(int32_t threads) { atomic_store(&team_limit, threads < 1 ? 1 : threads); }

/* How many parts `g` is cut into: 1 below TEAM_MIN_FLOPS, else one per thread serving (at most the limit). */
static int team_parts_for(const GemmCall *g) {
  double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k * (double)g->count;
  int size = atomic_load(&team_size), limit = atomic_load(&team_limit);
  return g->scale_only || flops < TEAM_MIN_FLOPS ? 1 : size < limit ? size : limit;
}

static void run_call(const GemmCall *g) {
  int parts = team_parts_for(g);
  if (parts == 1) {
    gemm_part(g, 0, 1, 0);
    return;
  }
  atomic_store(&next_ticket, TICKETS_CLOSED);
  team_call = *g;
  atomic_store(&team_parts, parts);
  atomic_store(&parts_done, 0);
  atomic_store(&next_ticket, 0);
  atomic_fetch_add(&generation, 1);
  __builtin_wasm_memory_atomic_notify((int *)&generation, (unsigned)parts - 1);
  run_tickets(0);
  for (int done; (done = atomic_load(&parts_done)) < parts;)
    __builtin_wasm_memory_atomic_wait32((int *)&parts_done, done, -1);
}
#else
static void run_call(const GemmCall *g) { gemm_part(g, 0, 1, 0); }
#endif

/* The offsets are element offsets from a, b and c; wasm.ts has checked every matrix lies inside. */
EXPORT("sgemmBatch")
void sgemm_batch(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, double alpha, const float *a, size_t lda,
                 const int32_t *a_offsets, const float *b, size_t ldb, const int32_t *b_offsets, double beta, float *c,
                 size_t ldc, const int32_t *c_offsets, size_t count) {
  if (m == 0 || n == 0 || count == 0) return;
  GemmCall call = {
      .scale_only = alpha == 0.0 || k == 0,
      .trans_a = trans_a,
      .trans_b = trans_b,
      .m = m,
      .n = n,
      .k = k,
      .alpha = (float)alpha,
      .beta = (float)beta,
      .a = a,
      .lda = lda,
      .a_offsets = a_offsets,
      .b = b,
      .ldb = ldb,
      .b_offsets = b_offsets,
      .c = c,
      .ldc = ldc,
      .c_offsets = c_offsets,
      .count = count,
  };
  run_call(&call);
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
