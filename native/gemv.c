/*
 * The GEMVs of gemv.h on AVX-512. Both layouts give every part one contiguous block of W, so each
 * thread streams it front to back and the hardware prefetcher keeps DRAM busy:
 *
 * - OUT_IN: parts own blocks of W's rows, that is of y; DOT_ROWS rows at a time are dotted with x
 *   (held in L1), one accumulator each, reduced across lanes at the end; a software prefetch asks
 *   for the rows PREFETCH_ROWS on.
 * - IN_OUT: parts own blocks of W's rows, that is of k; each adds x[i]·W[i, :] for its rows, one
 *   row at a time, into its own n sums (in L1/L2), and the caller adds the parts' sums up, in part
 *   order, once all have run. Its weights may be bf16, each widened to float32 as it is loaded.
 *
 * Parts are several per thread, so that the caller, which starts at once, takes more of them when a
 * worker is late. Every intrinsic sits in a function compiled for AVX-512 (F, BW, VL) alone, so the
 * file builds for any x86-64 (and compiles that part out elsewhere).
 */
#include "gemv.h"

#include <stdlib.h>

#include "pool.h"

#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 10))
#define HAVE_AVX512 1
#include <immintrin.h>
#else
#define HAVE_AVX512 0
#endif

#if HAVE_AVX512

enum {
  DOT_ROWS = 8,                /* OUT_IN: W rows dotted at a time */
  AXPY_ROWS = 8,               /* IN_OUT: parts split k in units of this many rows */
  AXPY_WIDTH = 64,             /*   columns per unrolled step: 4 vectors */
  PREFETCH_ROWS = 16,          /* OUT_IN: rows ahead that the software prefetch asks for */
  MIN_MACS_PER_PART = 1 << 17, /* a part smaller than this costs more to hand out than it saves */
  PARTS_PER_THREAD = 4,
  ALIGNMENT = 64
};

typedef struct {
  int layout, n, k;
  float alpha, beta;
  const float *x, *w;
  const uint16_t *w16; /* IN_OUT: bf16 weights, or NULL: w holds float32 ones */
  size_t ldw;
  const float *bias;   /* IN_OUT: n floats added to y, or NULL */
  float *y;
  int unit, units;     /* parts split units of `unit` rows of W */
  float *sums;         /* IN_OUT: per part, sums_stride floats */
  size_t sums_stride;
} Gemv;

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define INLINE_TARGET static inline __attribute__((always_inline)) TARGET
/* Loops over register tiles must unroll fully, or GCC keeps the tile in memory. */
#define UNROLL _Pragma("GCC unroll 16")

static int min_int(int x, int y) { return x < y ? x : y; }

static size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

static inline __mmask16 mask16(int count) {
  return count >= 16 ? 0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

INLINE_TARGET void prefetch(const float *p) { _mm_prefetch((const char *)p, _MM_HINT_T0); }

/* W's elements [offset, offset + 16) as float32, zeros past `valid`. A bf16 weight's bits are the
 * top half of its float32; subnormal ones count as zero, as in vdpbf16ps (bf16.h). */
INLINE_TARGET __m512 load_w(const Gemv *g, size_t offset, __mmask16 valid, int bf16) {
  if (!bf16) return _mm512_maskz_loadu_ps(valid, g->w + offset);
  __m256i bits = _mm256_maskz_loadu_epi16(valid, g->w16 + offset);
  __mmask16 normal = _mm256_test_epi16_mask(bits, _mm256_set1_epi16(0x7F80));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_maskz_cvtepu16_epi32(normal, bits), 16));
}

/* y[0, count) = alpha·sums + bias + beta·y; beta = 0 reads nothing from y. */
INLINE_TARGET void store16(float *y, __m512 sums, float alpha, const float *bias, float beta, int count) {
  __mmask16 mask = mask16(count);
  sums = _mm512_mul_ps(sums, _mm512_set1_ps(alpha));
  if (bias) sums = _mm512_add_ps(sums, _mm512_maskz_loadu_ps(mask, bias));
  if (beta != 0.0f) sums = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, y), _mm512_set1_ps(beta), sums);
  _mm512_mask_storeu_ps(y, mask, sums);
}

/* The lane sums of eight vectors, in order, in the low 8 lanes. */
INLINE_TARGET __m512 sum_lanes8(const __m512 v[8]) {
  __m512 s[4], t[2];
  UNROLL
  for (int i = 0; i < 4; i++)
    s[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  UNROLL
  for (int i = 0; i < 2; i++)
    t[i] = _mm512_add_ps(_mm512_shuffle_ps(s[2 * i], s[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(s[2 * i], s[2 * i + 1], 0xEE));
  /* t[i]'s 128-bit lane l holds vectors 4i…4i+3's sums over lane l of each: add the lanes up. */
  __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], 0x88), _mm512_shuffle_f32x4(t[0], t[1], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(u, u, 0x08), _mm512_shuffle_f32x4(u, u, 0x0D));
}

/* ---- OUT_IN: y[j] = x · W[j, :]. ---- */

static TARGET void dot_rows(const Gemv *g, int j0, int j1) {
  int k = g->k;
  for (int j = j0; j < j1; j += DOT_ROWS) {
    int rows = min_int(DOT_ROWS, j1 - j);
    const float *row[DOT_ROWS];
    UNROLL
    for (int r = 0; r < DOT_ROWS; r++) row[r] = g->w + (size_t)(j + min_int(r, rows - 1)) * g->ldw;
    __m512 acc[DOT_ROWS];
    UNROLL
    for (int r = 0; r < DOT_ROWS; r++) acc[r] = _mm512_setzero_ps();
    for (int i = 0; i < k; i += 16) {
      __mmask16 valid = mask16(k - i);
      __m512 xv = _mm512_maskz_loadu_ps(valid, g->x + i);
      UNROLL
      for (int r = 0; r < DOT_ROWS; r++) {
        prefetch(row[r] + i + PREFETCH_ROWS * g->ldw);
        acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(valid, row[r] + i), xv, acc[r]);
      }
    }
    store16(g->y + j, sum_lanes8(acc), g->alpha, NULL, g->beta, rows);
  }
}

/* ---- IN_OUT: sums += x[i] · W[i, :] for the part's rows i. ---- */

/* One row at a time: a part reads its block of W strictly in order, which the hardware prefetcher
 * follows best (more rows at a time, or a software prefetch, measured slower); the sums stay in L1. */
INLINE_TARGET void axpy_rows(const Gemv *g, int i0, int i1, float *sums, int bf16) {
  int n = g->n;
  for (int j = 0; j < n; j += 16) _mm512_mask_storeu_ps(sums + j, mask16(n - j), _mm512_setzero_ps());
  for (int i = i0; i < i1; i++) {
    size_t row = (size_t)i * g->ldw;
    __m512 xi = _mm512_set1_ps(g->x[i]);
    for (int j = 0; j < n; j += AXPY_WIDTH) {
      UNROLL
      for (int q = 0; q < AXPY_WIDTH / 16; q++) {
        __mmask16 valid = mask16(n - j - 16 * q);
        __m512 sum = _mm512_fmadd_ps(xi, load_w(g, row + j + 16 * q, valid, bf16),
                                     _mm512_maskz_loadu_ps(valid, sums + j + 16 * q));
        _mm512_mask_storeu_ps(sums + j + 16 * q, valid, sum);
      }
    }
  }
}

static TARGET void axpy_rows_f32(const Gemv *g, int i0, int i1, float *sums) { axpy_rows(g, i0, i1, sums, 0); }
static TARGET void axpy_rows_bf16(const Gemv *g, int i0, int i1, float *sums) { axpy_rows(g, i0, i1, sums, 1); }

/* y = alpha · (the parts' sums, added in part order) + bias + beta·y. */
static TARGET void add_sums(const Gemv *g, int parts) {
  for (int j = 0; j < g->n; j += 16) {
    __mmask16 valid = mask16(g->n - j);
    __m512 total = _mm512_maskz_loadu_ps(valid, g->sums + j);
    for (int p = 1; p < parts; p++)
      total = _mm512_add_ps(total, _mm512_maskz_loadu_ps(valid, g->sums + p * g->sums_stride + j));
    store16(g->y + j, total, g->alpha, g->bias ? g->bias + j : NULL, g->beta, g->n - j);
  }
}

static void run_part(void *context, int part, int parts, int thread) {
  (void)thread;
  const Gemv *g = context;
  int rows = g->layout == TV_GEMV_OUT_IN ? g->n : g->k;
  int begin = (int)((long long)g->units * part / parts) * g->unit;
  int end = min_int((int)((long long)g->units * (part + 1) / parts) * g->unit, rows);
  if (g->layout == TV_GEMV_OUT_IN) {
    if (begin < end) dot_rows(g, begin, end);
  } else {
    (g->w16 ? axpy_rows_bf16 : axpy_rows_f32)(g, begin, end, g->sums + part * g->sums_stride);
  }
}

static int run_gemv(Gemv g) {
  int layout = g.layout, n = g.n, k = g.k;
  int threads = tv_pool_threads();
  double macs = (double)n * k, most_parts = threads * (double)PARTS_PER_THREAD;
  int parts = macs / MIN_MACS_PER_PART < most_parts ? (int)(macs / MIN_MACS_PER_PART) : (int)most_parts;
  g.unit = layout == TV_GEMV_OUT_IN ? DOT_ROWS : AXPY_ROWS;
  g.units = ((layout == TV_GEMV_OUT_IN ? n : k) + g.unit - 1) / g.unit;
  parts = parts < 1 || threads == 1 ? 1 : min_int(parts, g.units);
  if (layout == TV_GEMV_IN_OUT) {
    g.sums_stride = round_up((size_t)n, ALIGNMENT / sizeof(float));
    g.sums = aligned_alloc(ALIGNMENT, parts * g.sums_stride * sizeof(float));
    if (!g.sums) return 0;
  }
  tv_pool_run(run_part, &g, parts, min_int(threads, parts));
  if (layout == TV_GEMV_IN_OUT) {
    add_sums(&g, parts);
    free(g.sums);
  }
  return 1;
}

#endif

static int supported(void) {
#if HAVE_AVX512
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  return 0;
#endif
}

int tv_sgemv(int layout, int n, int k, float alpha, const float *x, const float *w, size_t ldw, float beta,
             float *y) {
  if (!supported()) return 0;
#if HAVE_AVX512
  return run_gemv((Gemv){.layout = layout, .n = n, .k = k, .alpha = alpha, .beta = beta, .x = x, .w = w,
                         .ldw = ldw, .y = y});
#else
  (void)layout, (void)n, (void)k, (void)alpha, (void)x, (void)w, (void)ldw, (void)beta, (void)y;
  return 0;
#endif
}

int tv_bf16_gemv_in_out(int n, int k, const float *x, const uint16_t *w, size_t ldw, const float *bias, float beta,
                        float *y) {
  if (!supported()) return 0;
#if HAVE_AVX512
  return run_gemv((Gemv){.layout = TV_GEMV_IN_OUT, .n = n, .k = k, .alpha = 1.0f, .beta = beta, .x = x, .w16 = w,
                         .ldw = ldw, .bias = bias, .y = y});
#else
  (void)n, (void)k, (void)x, (void)w, (void)ldw, (void)bias, (void)beta, (void)y;
  return 0;
#endif
}
