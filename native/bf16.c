/*
 * The bf16 GEMM of bf16.h on AVX512-BF16. vdpbf16ps multiplies 16 pairs of bf16 numbers and adds
 * each pair's two products to a float32 lane; its pairs run along k, so every path first brings
 * two consecutive k values of A, and of each column of W, side by side:
 *
 * - m ≤ DIRECT_MAX_M (generation: GEMV-shaped, memory-bound). W is streamed once, straight from
 *   where it lies. OUT_IN: W's rows are contiguous along k like A's rows, so a tile of A rows × W
 *   rows is a set of dot products, reduced across lanes at the end. IN_OUT: two W rows k, k+1 are
 *   interleaved in registers (vpunpck{l,h}wd) and multiplied by the broadcast pair (a_k, a_k+1);
 *   rows are read front to back (no page-crossing column walks), the sums kept in a small scratch.
 *   When m × n sums are small (a few rows), parts split k instead of n, each streaming one
 *   contiguous block of W rows into its own sums, which the caller adds up at the end. A single
 *   IN_OUT row (decoding) of up to GEMV_MAX_N columns goes to the GEMV of gemv.h instead, which
 *   widens each weight to float32 as it streams past: 1.1–2.5× the rate of the pairs above on
 *   GPT-2's shapes. Wider rows (its sums leave L1) and OUT_IN measured no faster there.
 * - Larger m. Per block of k, a panel of A's rows is rounded to bf16 once, and each block of W
 *   (KC × NC) is packed into pairs of k for 64 columns (a transpose for OUT_IN, the interleave for
 *   IN_OUT) and reused by every 6-row strip of the panel: a 6×64 register tile, 24 vdpbf16ps per 4
 *   loads and 6 broadcasts.
 *
 * Threads split n (or m, when n is too narrow; or k, above) through the pool of pool.h. Every intrinsic sits in
 * a function compiled for AVX-512 alone, so the file builds for any x86-64 (and compiles that part
 * out elsewhere); tv_bf16_gemm_supported checks the CPU before any of it runs.
 */
#include "bf16.h"

#include <stdlib.h>
#include <string.h>

#include "gemv.h"
#include "pool.h"

#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 10))
#define HAVE_AVX512_BF16 1
#include <immintrin.h>
#else
#define HAVE_AVX512_BF16 0
#endif

#if HAVE_AVX512_BF16

/* Tuned on Zen 4 (bench: native/bench/bf16-bench.c). */
enum {
  DIRECT_MAX_M = 32,            /* m up to this takes the direct paths, W read as it lies */
  GEMV_MAX_N = 4096,            /* IN_OUT, one row: gemv.h's GEMV up to this n (its sums stay in L1) */
  MR = 6,                       /* rows of the packed path's register tile */
  NR = 64,                      /* its columns: 4 vectors of 16 */
  KC_MAX = 384,                 /* k per packed block: a 64-column strip is KC·128 bytes */
  NC_STRIPS = 12,               /* strips per packed block: KC × 768 columns ≈ 576 KiB (L2: 1 MiB) */
  MC = 1536,                    /* rows per bf16 panel of A: KC × 1536 ≈ 1.1 MiB */
  DOT_ROWS = 4,                 /* OUT_IN direct: A rows per tile */
  DOT_WIDTH = 8,                /*   W rows per block (1 or 2 tiles) */
  INTERLEAVE_PAIRS = 8,         /* IN_OUT direct: pairs of W rows per pass over the columns */
  SUMS_BYTES = 256 << 10,       /*   its float sums (m × columns) stay in L2 */
  SPLIT_K_SUMS_BYTES = 64 << 10, /*   parts split k when m × n sums (one set per part) fit this */
  PREFETCH_AHEAD = 256,         /* IN_OUT direct, split n: W elements ahead along a row */
  DOT_PREFETCH_ROWS = 32,       /* OUT_IN direct: the same column this many W rows on */
  ROW_PAIRS = 4,                /* IN_OUT direct, split k: pairs of W rows per pass (no prefetch) */
  MIN_MACS_PER_PART = 1 << 19,  /* a part smaller than this costs more to hand out than it saves */
  PARTS_PER_THREAD = 4,         /* direct paths: parts per thread (see plan) */
  ALIGNMENT = 64
};

typedef struct {
  int layout, m, n, k;
  const float *a;
  size_t lda;
  const uint16_t *w;
  size_t ldw;
  const float *bias;
  float beta;
  float *c;
  size_t ldc;
  /* The plan. */
  int direct;            /* the m ≤ DIRECT_MAX_M paths, else the packed one */
  int split_m;           /* parts own rows of C (else columns) */
  int split_k;           /* IN_OUT direct: parts own rows of W, each summing into its own scratch */
  int units, unit;       /* the split dimension in units of `unit` */
  uint16_t *a_bf16;      /* direct paths: A rounded, rows of a_bf16_ld (zero-padded to 32) */
  size_t a_bf16_ld;
  int kc;                /* packed path: k per block (even unless it is all of k) */
  int parts, threads;    /* the split into parts, run by up to `threads` threads */
  char *scratch;         /* per thread: scratch_size bytes */
  size_t scratch_size;
} Gemm;

static size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

static int min_int(int x, int y) { return x < y ? x : y; }

/* Part `part` of `parts` owns units [begin, end) of `units`, the parts' shares differing by ≤ 1. */
static void part_range(int units, int part, int parts, int *begin, int *end) {
  *begin = (int)((long long)units * part / parts);
  *end = (int)((long long)units * (part + 1) / parts);
}

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))
#define INLINE_TARGET static inline __attribute__((always_inline)) TARGET
/* Loops over register tiles must unroll fully, or GCC keeps the tile in memory. */
#define UNROLL _Pragma("GCC unroll 16")

static inline uint32_t load_pair(const uint16_t *p) {
  uint32_t pair;
  memcpy(&pair, p, sizeof pair);
  return pair;
}

static inline __mmask16 mask16(int count) { return count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1); }
static inline __mmask32 mask32(int count) {
  return count >= 32 ? 0xFFFFFFFFu : count <= 0 ? 0 : (__mmask32)((1u << count) - 1);
}

/* Asks for W's line PREFETCH_AHEAD elements on (an address only: past W's end it is harmless, as
 * are the other prefetches past a part's or W's end). */
INLINE_TARGET void prefetch_ahead(const uint16_t *w) {
  _mm_prefetch((const char *)((uintptr_t)w + PREFETCH_AHEAD * sizeof *w), _MM_HINT_T0);
}

/* Rounds 16 floats to bf16 as c10::BFloat16 does: to nearest even, any NaN to 0x7FC0. */
INLINE_TARGET __m256i round_to_bf16(__m512 x) {
  __m512i bits = _mm512_castps_si512(x);
  __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF)));
  rounded = _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC00000));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16));
}

/* dst[0, padded) = src[0, len) rounded to bf16, then zeros. */
static TARGET void round_row_to_bf16(const float *src, int len, uint16_t *dst, int padded) {
  for (int i = 0; i < padded; i += 16) {
    __m512 x = _mm512_maskz_loadu_ps(mask16(len - i > 0 ? len - i : 0), src + i);
    _mm256_mask_storeu_epi16(dst + i, mask16(padded - i), round_to_bf16(x));
  }
}

/* c[0, count) = sums + bias + beta·c, bias optional; beta = 0 reads nothing from c. */
INLINE_TARGET void finish16(float *c, __m512 sums, const float *bias, float beta, int count) {
  __mmask16 mask = mask16(count);
  if (bias) sums = _mm512_add_ps(sums, _mm512_maskz_loadu_ps(mask, bias));
  if (beta == 1.0f) {
    sums = _mm512_add_ps(sums, _mm512_maskz_loadu_ps(mask, c));
  } else if (beta != 0.0f) {
    sums = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, c), _mm512_set1_ps(beta), sums);
  }
  _mm512_mask_storeu_ps(c, mask, sums);
}

INLINE_TARGET void finish4(float *c, __m128 sums, const float *bias, float beta, int count) {
  __mmask8 mask = (__mmask8)((1u << (count < 4 ? count : 4)) - 1);
  if (bias) sums = _mm_add_ps(sums, _mm_maskz_loadu_ps(mask, bias));
  if (beta == 1.0f) {
    sums = _mm_add_ps(sums, _mm_maskz_loadu_ps(mask, c));
  } else if (beta != 0.0f) {
    sums = _mm_fmadd_ps(_mm_maskz_loadu_ps(mask, c), _mm_set1_ps(beta), sums);
  }
  _mm_mask_storeu_ps(c, mask, sums);
}

/* The lane sums of four vectors, in order. */
INLINE_TARGET __m128 sum_lanes4(__m512 a, __m512 b, __m512 c, __m512 d) {
  __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
  abcd = _mm512_add_ps(abcd, _mm512_shuffle_f32x4(abcd, abcd, 0x4E));
  abcd = _mm512_add_ps(abcd, _mm512_shuffle_f32x4(abcd, abcd, 0xB1));
  return _mm512_castps512_ps128(abcd);
}

/*
 * vpunpck{l,h}wd of rows k and k+1 leave column 8l+i (l: 128-bit lane, i < 8) in dword 4l+i of the
 * low result when i < 4 and of the high one (index 16 + 4l + i − 4) otherwise; these put 32
 * columns back in order, 16 per index vector.
 */
static const int32_t INTERLEAVED_ORDER[2][16] = {{0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23},
                                                 {8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31}};

/* IN_OUT direct: the columns whose sums for `rows` rows fit SUMS_BYTES (a multiple of 32, ≥ 32). */
static int sums_block_width(int rows) {
  int width = (int)(SUMS_BYTES / sizeof(float) / (size_t)rows) / 32 * 32;
  return width < 32 ? 32 : width;
}

/* ---- OUT_IN, small m: dot products of A rows with W rows. ---- */

/*
 * C[rows × cols] from A rows (bf16, zero-padded to 32) and W rows w[0, cols), cols ≤ width: rows ×
 * width dot products, one accumulator each (8 or more in flight hide vdpbf16ps's latency).
 */
INLINE_TARGET void dot_tile(const int rows, const int width, int k, const uint16_t *a, size_t lda, const uint16_t *w,
                            size_t ldw, int cols, float *c, size_t ldc, const float *bias, float beta) {
  const uint16_t *w_row[DOT_WIDTH];
  UNROLL
  for (int j = 0; j < width; j++) w_row[j] = w + (size_t)min_int(j, cols - 1) * ldw;
  __m512 acc[DOT_ROWS][DOT_WIDTH];
  UNROLL
  for (int i = 0; i < rows; i++)
    UNROLL
    for (int j = 0; j < width; j++) acc[i][j] = _mm512_setzero_ps();
  for (int kk = 0; kk < k; kk += 32) {
    __mmask32 valid = mask32(k - kk);
    __m512bh wv[DOT_WIDTH];
    UNROLL
    for (int j = 0; j < width; j++) {
      _mm_prefetch((const char *)(w_row[j] + kk + DOT_PREFETCH_ROWS * ldw), _MM_HINT_T0);
      wv[j] = (__m512bh)_mm512_maskz_loadu_epi16(valid, w_row[j] + kk);
    }
    UNROLL
    for (int i = 0; i < rows; i++) {
      __m512bh av = (__m512bh)_mm512_loadu_si512(a + i * lda + kk);
      UNROLL
      for (int j = 0; j < width; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, wv[j]);
    }
  }
  UNROLL
  for (int i = 0; i < rows; i++)
    UNROLL
    for (int j = 0; j < width; j += 4) {
      __m128 sums = sum_lanes4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
      if (j < cols) finish4(c + i * ldc + j, sums, bias ? bias + j : NULL, beta, cols - j);
    }
}

/* Rows [0, rows) of C's columns [0, cols), cols ≤ DOT_WIDTH, with as many accumulators as fit. */
static TARGET void dot_block(int rows, int k, const uint16_t *a, size_t lda, const uint16_t *w, size_t ldw, int cols,
                             float *c, size_t ldc, const float *bias, float beta) {
  switch (rows) {
    case 1:
      dot_tile(1, 8, k, a, lda, w, ldw, cols, c, ldc, bias, beta);
      break;
    case 2:
      dot_tile(2, 8, k, a, lda, w, ldw, cols, c, ldc, bias, beta);
      break;
    default:
      for (int j = 0; j < cols; j += 4) {
        const float *bias_j = bias ? bias + j : NULL;
        if (rows == 3)
          dot_tile(3, 4, k, a, lda, w + j * ldw, ldw, min_int(4, cols - j), c + j, ldc, bias_j, beta);
        else
          dot_tile(4, 4, k, a, lda, w + j * ldw, ldw, min_int(4, cols - j), c + j, ldc, bias_j, beta);
      }
  }
}

static TARGET void out_in_direct_part(const Gemm *g, int n0, int n1) {
  for (int j = n0; j < n1; j += DOT_WIDTH) {
    int cols = min_int(DOT_WIDTH, n1 - j);
    for (int i = 0; i < g->m; i += DOT_ROWS)
      dot_block(min_int(DOT_ROWS, g->m - i), g->k, g->a_bf16 + i * g->a_bf16_ld, g->a_bf16_ld,
                g->w + (size_t)j * g->ldw, g->ldw, cols, g->c + i * g->ldc + j, g->ldc, g->bias ? g->bias + j : NULL,
                g->beta);
  }
}

/* ---- IN_OUT, small m: interleaved W rows times broadcast A pairs, summed in a scratch. ---- */

/*
 * Adds rows [k0, k0 + 2·pairs) of 32 W columns (w0: row k0's first; `cols` of them valid; the very
 * last row missing when `last_row_missing`) times A rows' columns k0… into sums (the interleaved
 * order; one row of 32 per A row, stride lds). `prefetch` when the rows' segment goes on far enough
 * for a prefetch ahead to stay in it (past it lie other parts' columns).
 */
INLINE_TARGET void interleave_pairs(const int pairs, const uint16_t *w0, size_t ldw, __mmask32 cols,
                                    int last_row_missing, int prefetch, const uint16_t *a, size_t lda, int rows,
                                    float *sums, size_t lds) {
  __m512bh low[INTERLEAVE_PAIRS], high[INTERLEAVE_PAIRS];
  UNROLL
  for (int p = 0; p < pairs; p++) {
    const uint16_t *first_row = w0 + 2 * p * ldw;
    int missing = p == pairs - 1 && last_row_missing;
    const uint16_t *second_row = missing ? first_row : first_row + ldw;
    if (prefetch) {
      prefetch_ahead(first_row);
      prefetch_ahead(second_row);
    }
    __m512i first = _mm512_maskz_loadu_epi16(cols, first_row);
    __m512i second = _mm512_maskz_loadu_epi16(missing ? 0 : cols, second_row);
    low[p] = (__m512bh)_mm512_unpacklo_epi16(first, second);
    high[p] = (__m512bh)_mm512_unpackhi_epi16(first, second);
  }
  for (int i = 0; i < rows; i++) {
    float *s = sums + i * lds;
    const uint16_t *ai = a + i * lda;
    __m512 s0 = _mm512_loadu_ps(s), s1 = _mm512_loadu_ps(s + 16);
    UNROLL
    for (int p = 0; p < pairs; p++) {
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)load_pair(ai + 2 * p));
      s0 = _mm512_dpbf16_ps(s0, av, low[p]);
      s1 = _mm512_dpbf16_ps(s1, av, high[p]);
    }
    _mm512_storeu_ps(s, s0);
    _mm512_storeu_ps(s + 16, s1);
  }
}

/*
 * Adds W rows [k0, k1) (k0 even; k1 even unless it is k) of columns [j0, j0 + width) times A's
 * columns k0… to sums (the interleaved order, row stride lds), `pairs` pairs of rows per pass over
 * the columns; every A row shares each interleaved W vector, so W is read once whatever m is.
 */
INLINE_TARGET void in_out_accumulate(const Gemm *g, const int pairs, int prefetch, int j0, int width, int k0, int k1,
                                     float *sums, size_t lds) {
  int full_end = k0 + (k1 - k0) / (2 * pairs) * (2 * pairs);
  for (int kk = k0; kk < full_end; kk += 2 * pairs) {
    const uint16_t *w0 = g->w + (size_t)kk * g->ldw + j0;
    for (int j = 0; j < width; j += 32)
      interleave_pairs(pairs, w0 + j, g->ldw, mask32(width - j), 0, prefetch && j + PREFETCH_AHEAD < width,
                       g->a_bf16 + kk, g->a_bf16_ld, g->m, sums + j, lds);
  }
  for (int kk = full_end; kk < k1; kk += 2) {
    const uint16_t *w0 = g->w + (size_t)kk * g->ldw + j0;
    for (int j = 0; j < width; j += 32)
      interleave_pairs(1, w0 + j, g->ldw, mask32(width - j), kk + 1 == k1, 0, g->a_bf16 + kk, g->a_bf16_ld, g->m,
                       sums + j, lds);
  }
}

/* C's columns [j0, j0 + width) from `count` sums buffers (as in_out_accumulate left them, each
 * sums_step floats after the previous one), added in order, plus bias and beta·C. */
static TARGET void in_out_finish(const Gemm *g, int j0, int width, const float *sums, size_t lds, int count,
                                 size_t sums_step) {
  __m512i order0 = _mm512_loadu_si512(INTERLEAVED_ORDER[0]), order1 = _mm512_loadu_si512(INTERLEAVED_ORDER[1]);
  for (int i = 0; i < g->m; i++) {
    float *c = g->c + (size_t)i * g->ldc + j0;
    for (int j = 0; j < width; j += 32) {
      const float *s = sums + i * lds + j;
      __m512 low = _mm512_loadu_ps(s), high = _mm512_loadu_ps(s + 16);
      for (int p = 1; p < count; p++) {
        low = _mm512_add_ps(low, _mm512_loadu_ps(s + p * sums_step));
        high = _mm512_add_ps(high, _mm512_loadu_ps(s + p * sums_step + 16));
      }
      const float *bias = g->bias ? g->bias + j0 + j : NULL;
      finish16(c + j, _mm512_permutex2var_ps(low, order0, high), bias, g->beta, width - j);
      if (width - j > 16)
        finish16(c + j + 16, _mm512_permutex2var_ps(low, order1, high), bias ? bias + 16 : NULL, g->beta,
                 width - j - 16);
    }
  }
}

/* Columns [n0, n1), all of k, in blocks whose sums fit SUMS_BYTES. */
static TARGET void in_out_direct_columns(const Gemm *g, int n0, int n1, float *sums) {
  int block = sums_block_width(g->m);
  for (int j0 = n0; j0 < n1; j0 += block) {
    int width = min_int(block, n1 - j0);
    size_t lds = round_up((size_t)width, 32);
    memset(sums, 0, g->m * lds * sizeof *sums);
    in_out_accumulate(g, INTERLEAVE_PAIRS, 1, j0, width, 0, g->k, sums, lds);
    in_out_finish(g, j0, width, sums, lds, 1, 0);
  }
}

/* W rows [k0, k1), all of n, into this part's own sums, which run_gemm adds up once all have run:
 * a part streams one contiguous block of W, where a split of n would read short pieces of rows; fewer
 * rows per pass and no software prefetch (measured faster) leave that stream to the hardware. */
static TARGET void in_out_direct_rows(const Gemm *g, int k0, int k1, float *sums) {
  size_t lds = round_up((size_t)g->n, 32);
  memset(sums, 0, g->m * lds * sizeof *sums);
  in_out_accumulate(g, ROW_PAIRS, 0, 0, g->n, k0, k1, sums, lds);
}

/* ---- Larger m: packed W blocks, 6×64 register tiles. ---- */

/* Transposes a 16×16 matrix of 32-bit elements held as 16 rows. */
INLINE_TARGET void transpose16(__m512i r[16]) {
  __m512i t[16];
  UNROLL
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  UNROLL
  for (int i = 0; i < 4; i++) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  UNROLL
  for (int e = 0; e < 4; e++) {
    __m512i u0 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x88), u1 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xDD);
    __m512i v0 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x88), v1 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xDD);
    t[e] = _mm512_shuffle_i32x4(u0, v0, 0x88);
    t[4 + e] = _mm512_shuffle_i32x4(u1, v1, 0x88);
    t[8 + e] = _mm512_shuffle_i32x4(u0, v0, 0xDD);
    t[12 + e] = _mm512_shuffle_i32x4(u1, v1, 0xDD);
  }
  UNROLL
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

/*
 * Packs W's k range [k0, k0 + kc) for columns [j0, j0 + cols) (cols ≤ NR) as a strip: for each
 * pair p, NR dwords (W[k0+2p][j], W[k0+2p+1][j]) in column order, zeros past the columns and k.
 */
static TARGET void pack_strip_out_in(const Gemm *g, int k0, int kc, int j0, int cols, uint32_t *strip) {
  int pairs = (kc + 1) / 2;
  for (int p0 = 0; p0 < pairs; p0 += 16) {
    __mmask32 valid = mask32(kc - 2 * p0);
    for (int group = 0; group < NR / 16; group++) {
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        int j = group * 16 + i;
        r[i] = j < cols ? _mm512_maskz_loadu_epi16(valid, g->w + (size_t)(j0 + j) * g->ldw + k0 + 2 * p0)
                        : _mm512_setzero_si512();
      }
      transpose16(r);
      for (int q = 0; q < 16; q++) _mm512_storeu_si512(strip + (size_t)(p0 + q) * NR + group * 16, r[q]);
    }
  }
}

static TARGET void pack_strip_in_out(const Gemm *g, int k0, int kc, int j0, int cols, uint32_t *strip) {
  __m512i order0 = _mm512_loadu_si512(INTERLEAVED_ORDER[0]), order1 = _mm512_loadu_si512(INTERLEAVED_ORDER[1]);
  int pairs = (kc + 1) / 2;
  for (int p = 0; p < pairs; p++) {
    const uint16_t *row = g->w + (size_t)(k0 + 2 * p) * g->ldw + j0;
    int has_second = 2 * p + 1 < kc;
    for (int half = 0; half < NR / 32; half++) {
      __mmask32 valid = mask32(cols - 32 * half);
      __m512i first = _mm512_maskz_loadu_epi16(valid, row + 32 * half);
      __m512i second = _mm512_maskz_loadu_epi16(has_second ? valid : 0, row + g->ldw + 32 * half);
      __m512i low = _mm512_unpacklo_epi16(first, second), high = _mm512_unpackhi_epi16(first, second);
      uint32_t *out = strip + (size_t)p * NR + 32 * half;
      _mm512_storeu_si512(out, _mm512_permutex2var_epi32(low, order0, high));
      _mm512_storeu_si512(out + 16, _mm512_permutex2var_epi32(low, order1, high));
    }
  }
}

/* C[rows × cols] (rows ≤ MR, cols ≤ NR) from A rows (bf16, stride lda) and a packed strip. */
static TARGET void tile_6x64(int pairs, const uint16_t *a, size_t lda, int rows, const uint32_t *strip, float *c,
                             size_t ldc, int cols, const float *bias, float beta) {
  const uint16_t *a_row[MR];
  UNROLL
  for (int i = 0; i < MR; i++) a_row[i] = a + (size_t)(i < rows ? i : 0) * lda;
  __m512 acc[MR][4];
  UNROLL
  for (int i = 0; i < MR; i++)
    UNROLL
    for (int q = 0; q < 4; q++) acc[i][q] = _mm512_setzero_ps();
  for (int p = 0; p < pairs; p++) {
    const uint32_t *b = strip + (size_t)p * NR;
    __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
    __m512bh b2 = (__m512bh)_mm512_loadu_si512(b + 32), b3 = (__m512bh)_mm512_loadu_si512(b + 48);
    UNROLL
    for (int i = 0; i < MR; i++) {
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)load_pair(a_row[i] + 2 * p));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
      acc[i][2] = _mm512_dpbf16_ps(acc[i][2], av, b2);
      acc[i][3] = _mm512_dpbf16_ps(acc[i][3], av, b3);
    }
  }
  UNROLL
  for (int i = 0; i < rows; i++)
    for (int q = 0; q < 4 && 16 * q < cols; q++)
      finish16(c + i * ldc + 16 * q, acc[i][q], bias ? bias + 16 * q : NULL, beta, cols - 16 * q);
}

/*
 * Rows [m0, m1) × columns [n0, n1) of C. Per block of k: a block of up to MC rows of A is rounded
 * to bf16 once (a contiguous panel the hardware prefetcher streams; A's own rows are far apart),
 * then per block of NC columns W is packed and every 6-row strip of the panel runs over it.
 */
static TARGET void packed_part(const Gemm *g, int m0, int m1, int n0, int n1, char *scratch) {
  size_t pairs_capacity = round_up((size_t)(g->kc + 1) / 2, 16);
  size_t strip_size = pairs_capacity * NR;
  uint32_t *strips = (uint32_t *)scratch;
  uint16_t *a_panel = (uint16_t *)(strips + NC_STRIPS * strip_size);
  for (int k0 = 0; k0 < g->k; k0 += g->kc) {
    int kc = min_int(g->kc, g->k - k0);
    int pairs = (kc + 1) / 2;
    const float *bias = k0 == 0 ? g->bias : NULL;
    float beta = k0 == 0 ? g->beta : 1.0f;
    for (int mb = m0; mb < m1; mb += MC) {
      int panel_rows = min_int(MC, m1 - mb);
      for (int i = 0; i < panel_rows; i++)
        round_row_to_bf16(g->a + (size_t)(mb + i) * g->lda + k0, kc, a_panel + (size_t)i * 2 * pairs, 2 * pairs);
      for (int nb = n0; nb < n1; nb += NC_STRIPS * NR) {
        int width = min_int(NC_STRIPS * NR, n1 - nb);
        for (int s = 0; s * NR < width; s++) {
          int cols = min_int(NR, width - s * NR);
          if (g->layout == TV_BF16_OUT_IN)
            pack_strip_out_in(g, k0, kc, nb + s * NR, cols, strips + s * strip_size);
          else
            pack_strip_in_out(g, k0, kc, nb + s * NR, cols, strips + s * strip_size);
        }
        for (int i0 = 0; i0 < panel_rows; i0 += MR) {
          float *c = g->c + (size_t)(mb + i0) * g->ldc + nb;
          for (int s = 0; s * NR < width; s++)
            tile_6x64(pairs, a_panel + (size_t)i0 * 2 * pairs, 2 * pairs, min_int(MR, panel_rows - i0),
                      strips + s * strip_size, c + s * NR, g->ldc, min_int(NR, width - s * NR),
                      bias ? bias + nb + s * NR : NULL, beta);
        }
      }
    }
  }
}

static TARGET void round_a_rows(const Gemm *g) {
  for (int i = 0; i < g->m; i++)
    round_row_to_bf16(g->a + (size_t)i * g->lda, g->k, g->a_bf16 + i * g->a_bf16_ld, (int)g->a_bf16_ld);
}

static void run_part(void *context, int part, int parts, int thread) {
  const Gemm *g = context;
  int begin, end;
  part_range(g->units, part, parts, &begin, &end);
  begin *= g->unit;
  end = min_int(end * g->unit, g->split_k ? g->k : g->split_m ? g->m : g->n);
  char *scratch = g->scratch + (g->split_k ? part : thread) * g->scratch_size;
  if (g->split_k) {
    in_out_direct_rows(g, begin, end, (float *)scratch);
    return;
  }
  if (begin >= end) return;
  if (!g->direct) {
    if (g->split_m)
      packed_part(g, begin, end, 0, g->n, scratch);
    else
      packed_part(g, 0, g->m, begin, end, scratch);
  } else if (g->layout == TV_BF16_OUT_IN) {
    out_in_direct_part(g, begin, end);
  } else {
    in_out_direct_columns(g, begin, end, (float *)scratch);
  }
}

/*
 * Chooses the path, the parts and the scratch sizes; allocates nothing. The direct paths (short,
 * memory-bound) cut the columns into several parts per thread, so that the caller, which starts at
 * once, takes more of them when a worker wakes late; the packed path cuts one part per thread, each
 * packing its own W blocks and A panels.
 */
static void plan(Gemm *g) {
  int threads = tv_pool_threads();
  double macs = (double)g->m * g->n * g->k, most_parts = threads * (double)PARTS_PER_THREAD;
  int parts = macs / MIN_MACS_PER_PART < most_parts ? (int)(macs / MIN_MACS_PER_PART) : (int)most_parts;
  g->direct = g->m <= DIRECT_MAX_M;
  if (g->direct) {
    g->split_m = 0;
    g->split_k = g->layout == TV_BF16_IN_OUT && parts > 1 &&
                 g->m * round_up((size_t)g->n, 32) * sizeof(float) <= SPLIT_K_SUMS_BYTES;
    g->unit = g->split_k ? 2 * ROW_PAIRS : g->layout == TV_BF16_OUT_IN ? DOT_WIDTH : 32;
    g->a_bf16_ld = round_up((size_t)g->k, 32);
  } else {
    int blocks = (g->k + KC_MAX - 1) / KC_MAX;
    g->kc = (int)round_up((size_t)(g->k + blocks - 1) / blocks, 2);
    parts = min_int(parts, threads);
    g->split_m = (g->n + NR - 1) / NR < parts;
    g->unit = g->split_m ? MR : NR;
  }
  g->units = ((g->split_k ? g->k : g->split_m ? g->m : g->n) + g->unit - 1) / g->unit;
  g->parts = parts < 1 || threads == 1 ? 1 : min_int(parts, g->units);
  g->threads = min_int(threads, g->parts);
  int widest_part = (g->units + g->parts - 1) / g->parts * g->unit;
  if (g->split_k) {
    g->scratch_size = g->m * round_up((size_t)g->n, 32) * sizeof(float);
  } else if (g->direct) {
    size_t width = round_up((size_t)min_int(widest_part, sums_block_width(g->m)), 32);
    g->scratch_size = g->layout == TV_BF16_IN_OUT ? g->m * width * sizeof(float) : 0;
  } else {
    size_t pairs_capacity = round_up((size_t)(g->kc + 1) / 2, 16);
    size_t panel_rows = (size_t)min_int(MC, g->split_m ? widest_part : g->m);
    g->scratch_size = (NC_STRIPS * NR * sizeof(uint32_t) + panel_rows * 2 * sizeof(uint16_t)) * pairs_capacity;
  }
  g->scratch_size = round_up(g->scratch_size, ALIGNMENT);
}

/* x[0, k) rounded to bf16 and back to float32, subnormals to zero: A as the other paths read it. */
static TARGET void round_to_bf16_floats(const float *x, int k, float *rounded) {
  for (int i = 0; i < k; i += 16) {
    __mmask16 valid = mask16(k - i);
    __m256i bits = round_to_bf16(_mm512_maskz_loadu_ps(valid, x + i));
    __mmask16 normal = _mm256_test_epi16_mask(bits, _mm256_set1_epi16(0x7F80));
    __m512i widened = _mm512_slli_epi32(_mm512_maskz_cvtepu16_epi32(normal, bits), 16);
    _mm512_mask_storeu_ps(rounded + i, valid, _mm512_castsi512_ps(widened));
  }
}

/* One IN_OUT row (decoding): gemv.h's GEMV streams W as it lies, widening each weight as it comes. */
static int run_one_row(int n, int k, const float *a, const uint16_t *w, int ldw, const float *bias, float beta,
                       float *c) {
  float *rounded = aligned_alloc(ALIGNMENT, round_up((size_t)k * sizeof(float), ALIGNMENT));
  if (!rounded) return TV_BF16_NO_MEMORY;
  round_to_bf16_floats(a, k, rounded);
  int done = tv_bf16_gemv_in_out(n, k, rounded, w, (size_t)ldw, bias, beta, c);
  free(rounded);
  return done ? TV_BF16_OK : TV_BF16_NO_MEMORY;
}

/* tv_bf16_gemm past the checks, for m, n, k ≥ 1; everything is allocated before C is touched. */
static int run_gemm(int layout, int m, int n, int k, const float *a, int lda, const uint16_t *w, int ldw,
                    const float *bias, float beta, float *c, int ldc) {
  if (m == 1 && layout == TV_BF16_IN_OUT && n <= GEMV_MAX_N) return run_one_row(n, k, a, w, ldw, bias, beta, c);
  Gemm g = {.layout = layout, .m = m, .n = n, .k = k, .a = a, .lda = (size_t)lda, .w = w, .ldw = (size_t)ldw,
            .bias = bias, .beta = beta, .c = c, .ldc = (size_t)ldc};
  plan(&g);
  size_t a_bf16_size = g.direct ? round_up(g.m * g.a_bf16_ld * sizeof(uint16_t), ALIGNMENT) : 0;
  size_t size = a_bf16_size + (g.split_k ? g.parts : g.threads) * g.scratch_size;
  char *memory = NULL;
  if (size > 0) {
    memory = aligned_alloc(ALIGNMENT, size);
    if (!memory) return TV_BF16_NO_MEMORY;
  }
  g.a_bf16 = (uint16_t *)memory;
  g.scratch = memory + a_bf16_size;
  if (g.direct) round_a_rows(&g);
  tv_pool_run(run_part, &g, g.parts, g.threads);
  if (g.split_k)
    in_out_finish(&g, 0, n, (const float *)g.scratch, round_up((size_t)n, 32), g.parts, g.scratch_size / sizeof(float));
  free(memory);
  return TV_BF16_OK;
}

#endif

int tv_bf16_gemm_supported(void) {
#if HAVE_AVX512_BF16
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
  return 0;
#endif
}

static int arguments_valid(int layout, int m, int n, int k, const float *a, int lda, const uint16_t *w, int ldw,
                           const float *c, int ldc) {
  if (layout != TV_BF16_OUT_IN && layout != TV_BF16_IN_OUT) return 0;
  if (m < 0 || n < 0 || k < 0) return 0;
  if (m == 0 || n == 0) return 1;
  if (!c || ldc < n) return 0;
  if (k == 0) return 1;
  return a && w && lda >= k && ldw >= (layout == TV_BF16_OUT_IN ? k : n);
}

/* C = bias + beta·C: the product with k = 0. */
static void scale_and_add_bias(int m, int n, const float *bias, float beta, float *c, size_t ldc) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      float *x = c + i * ldc + j;
      *x = (bias ? bias[j] : 0.0f) + (beta == 0.0f ? 0.0f : beta * *x);
    }
}

int tv_bf16_gemm(int layout, int m, int n, int k, const float *a, int lda, const uint16_t *w, int ldw,
                 const float *bias, float beta, float *c, int ldc) {
  if (!arguments_valid(layout, m, n, k, a, lda, w, ldw, c, ldc)) return TV_BF16_BAD_ARGUMENT;
  if (!tv_bf16_gemm_supported()) return TV_BF16_UNSUPPORTED;
  if (m == 0 || n == 0) return TV_BF16_OK;
  if (k == 0) {
    scale_and_add_bias(m, n, bias, beta, c, (size_t)ldc);
    return TV_BF16_OK;
  }
#if HAVE_AVX512_BF16
  return run_gemm(layout, m, n, k, a, lda, w, ldw, bias, beta, c, ldc);
#else
  return TV_BF16_UNSUPPORTED;
#endif
}
