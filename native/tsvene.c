/*
 * tsvene's native kernels (see src/tensor/kernels/types.ts for the contract): sgemm through
 * OpenBLAS, everything else as C loops written so that GCC vectorises them. The TypeScript set in
 * src/tensor/kernels/js.ts is the reference these agree with to float32 rounding.
 *
 * Arguments are checked with the same rules and messages as the TypeScript kernels: here a wrong
 * length would read or write outside the caller's arrays instead of producing NaN.
 *
 * Accuracy: exp is a polynomial (no libm call, so loops vectorise) accurate to about 1 ulp. The
 * GELU forms are computed as x·sigmoid(·) and x·Φ(x) with the large part of the exponent carried
 * in double, so they keep float32 relative accuracy where the textbook 0.5·x·(1 + tanh/erf) loses
 * it to cancellation (x ≲ −3). Row reductions accumulate in double.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <cblas.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One binary runs on every x86-64: hot loops also get AVX2+FMA and AVX-512 clones, one of them
 * chosen at load time for the CPU at hand (AVX-512 halves the time of the double-heavy GELUs). */
#if defined(__x86_64__) && defined(__GNUC__)
#define VECTORISED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VECTORISED
#endif

/* ---------------------------------------------------------------------------------------------
 * Scalar building blocks. All are inline and branch-free so the loops calling them vectorise.
 */

static inline uint32_t float_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

static inline float float_from_bits(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

/* 2^k for k in [-126, 127]; unsigned arithmetic so that the garbage k of a NaN is not undefined. */
static inline float pow2_f32(int32_t k) { return float_from_bits(((uint32_t)k + 127u) << 23); }

/*
 * e^(n·ln2 + r) for a reduced argument |r| ≤ ln2/2 and integer n in [-150, 130]: Cephes' expf
 * polynomial, then 2^n applied as two factors so results down to the subnormal range and up to
 * overflow come out right without a branch.
 */
static inline float exp_reduced_f32(float r, int32_t n) {
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t half = n >> 1;
  return y * pow2_f32(half) * pow2_f32(n - half);
}

/* e^x. Clamping first keeps n in exp_reduced_f32's range; the results there are 0 and +inf anyway. */
static inline float exp_f32(float x) {
  x = x < -104.0f ? -104.0f : x;
  x = x > 89.0f ? 89.0f : x;
  /* Adding 1.5·2^23 rounds x·log2(e) to an integer kept in the low mantissa bits: no float→int
   * conversion, which would be undefined for NaN (NaN still comes out as NaN through r). */
  const float round_shift = 12582912.0f;
  float shifted = x * 1.44269504088896341f + round_shift;
  float n = shifted - round_shift;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  return exp_reduced_f32(r, (int32_t)(float_bits(shifted) - float_bits(round_shift)));
}

/* e^x for an argument that is only known to double precision (e.g. −x²/2 for x ≈ 10, where the
 * float rounding of the argument alone would cost ~2e-6 relative): the reduction runs in double. */
static inline float exp_f32_of_f64(double x) {
  x = x < -104.0 ? -104.0 : x;
  x = x > 89.0 ? 89.0 : x;
  const double round_shift = 6755399441055744.0; /* 1.5·2^52 */
  double shifted = x * 1.4426950408889634 + round_shift;
  double n = shifted - round_shift;
  float r = (float)(x - n * 0.6931471805599453);
  uint64_t shifted_bits, shift_bits;
  memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
  memcpy(&shift_bits, &round_shift, sizeof shift_bits);
  return exp_reduced_f32(r, (int32_t)(uint32_t)(shifted_bits - shift_bits));
}

/* tanh: Cephes' tanhf, an odd polynomial near 0 (where 1 − 2/(e^2x + 1) would cancel) and the
 * exponential form elsewhere; both are computed and one selected, so there is no branch. */
static inline float tanh_f32(float x) {
  float ax = fabsf(x);
  float z = x * x;
  float near_zero =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * x + x;
  float far = copysignf(1.0f - 2.0f / (exp_f32(2.0f * ax) + 1.0f), x);
  return ax < 0.625f ? near_zero : far;
}

/* σ(a) = 1/(1 + e^−a) and 1 − σ(a) from e = e^(−|a|) ∈ [0, 1]: the exponential cannot overflow
 * (x·σ(a) stays right where e^−a would be +inf), and 1 − σ does not cancel where σ ≈ 1. */
typedef struct {
  float sigmoid, complement;
} Sigmoid;

static inline Sigmoid sigmoid_from(float e, bool a_negative) {
  float p = 1.0f / (1.0f + e);
  float q = e * p;
  Sigmoid s = {a_negative ? q : p, a_negative ? p : q};
  return s;
}

#define SQRT_2_OVER_PI 0.7978845608028654
#define GELU_TANH_CUBIC 0.044715
#define INV_SQRT_2PI 0.3989422804014327f

/* a = 2u = 2·√(2/π)·(x + 0.044715·x³), in double: geluTanh(x) = 0.5·x·(1 + tanh u) = x·σ(a). */
static inline double gelu_tanh_sigmoid_arg(float x) {
  double xd = x;
  return 2.0 * SQRT_2_OVER_PI * (xd + GELU_TANH_CUBIC * xd * xd * xd);
}

/*
 * Φ(x), the standard normal CDF, to float32 relative accuracy on both tails. With z = |x|/√2 and
 * t = 1/(1 + z/2), erfc(z) = t·e^(−z² + P(t)), P a degree-12 polynomial in 2t − 1 (a least-squares
 * Chebyshev fit to log(erfc(z)/t) + z² over t ∈ (0, 1], max error 6e-9). −z² = −x²/2 is exact in
 * double, which is why the exponent is formed there.
 */
static inline float normal_cdf_f32(float x) {
  float t = 1.0f / (1.0f + 0.35355339059327373f * fabsf(x));
  float u = 2.0f * t - 1.0f;
  float p = 1.33715034913e-5f;
  p = p * u - 8.72838102169e-5f;
  p = p * u - 3.21137723121e-5f;
  p = p * u + 5.73766372005e-4f;
  p = p * u - 1.82782141716e-4f;
  p = p * u - 2.28876523859e-3f;
  p = p * u + 1.77066611863e-3f;
  p = p * u + 8.80882536939e-3f;
  p = p * u - 9.87453491829e-3f;
  p = p * u - 4.68936405600e-2f;
  p = p * u + 4.73434175211e-2f;
  p = p * u + 6.72643154775e-1f;
  p = p * u - 6.71794085152e-1f;
  double xd = x;
  float half_erfc = 0.5f * t * exp_f32_of_f64(p - 0.5 * xd * xd);
  return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

/* ---------------------------------------------------------------------------------------------
 * Kernels on raw arrays. Elementwise outputs may alias their inputs (in-place use): each element
 * is read before it is written, which `omp simd` (no cross-iteration dependence) allows.
 */

VECTORISED static void gelu_tanh_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    double a = gelu_tanh_sigmoid_arg(x[i]);
    out[i] = x[i] * sigmoid_from(exp_f32_of_f64(-fabs(a)), a < 0).sigmoid;
  }
}

VECTORISED static void gelu_tanh_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float xi = x[i];
    double a = gelu_tanh_sigmoid_arg(xi);
    Sigmoid s = sigmoid_from(exp_f32_of_f64(-fabs(a)), a < 0);
    /* d/dx x·σ(a) = σ·(1 + x·(1 − σ)·a′), a′ = 2√(2/π)(1 + 3·0.044715·x²) */
    float da = (float)(2.0 * SQRT_2_OVER_PI) * (1.0f + 3.0f * (float)GELU_TANH_CUBIC * xi * xi);
    grad_in[i] = grad_out[i] * s.sigmoid * (1.0f + xi * s.complement * da);
  }
}

VECTORISED static void gelu_erf_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = x[i] * normal_cdf_f32(x[i]);
}

VECTORISED static void gelu_erf_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float xi = x[i];
    double xd = xi;
    float pdf = INV_SQRT_2PI * exp_f32_of_f64(-0.5 * xd * xd);
    grad_in[i] = grad_out[i] * (normal_cdf_f32(xi) + xi * pdf);
  }
}

VECTORISED static void silu_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = x[i] * sigmoid_from(exp_f32(-fabsf(x[i])), x[i] < 0).sigmoid;
}

VECTORISED static void silu_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    Sigmoid s = sigmoid_from(exp_f32(-fabsf(x[i])), x[i] < 0);
    grad_in[i] = grad_out[i] * s.sigmoid * (1.0f + x[i] * s.complement);
  }
}

VECTORISED static void exp_array_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = exp_f32(x[i]);
}

VECTORISED static void tanh_array_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = tanh_f32(x[i]);
}

/* A row of −inf gives NaN (−inf − −inf), as in PyTorch; so does a row containing NaN or +inf. */
VECTORISED static void softmax_rows_f32(const float *x, size_t rows, size_t cols, float *out) {
  for (size_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    float *out_row = out + r * cols;
    float row_max = -INFINITY;
#pragma omp simd reduction(max : row_max)
    for (size_t j = 0; j < cols; j++) row_max = row[j] > row_max ? row[j] : row_max;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (size_t j = 0; j < cols; j++) {
      float e = exp_f32_of_f64((double)row[j] - row_max);
      out_row[j] = e;
      sum += e;
    }
    double inv_sum = 1.0 / sum;
#pragma omp simd
    for (size_t j = 0; j < cols; j++) out_row[j] = (float)(out_row[j] * inv_sum);
  }
}

VECTORISED static void softmax_rows_backward_f32(const float *y, const float *grad_out, size_t rows, size_t cols,
                                                 float *grad_in) {
  for (size_t r = 0; r < rows; r++) {
    const float *y_row = y + r * cols;
    const float *g_row = grad_out + r * cols;
    float *gi_row = grad_in + r * cols;
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (size_t j = 0; j < cols; j++) dot += (double)g_row[j] * y_row[j];
#pragma omp simd
    for (size_t j = 0; j < cols; j++) gi_row[j] = (float)(y_row[j] * (g_row[j] - dot));
  }
}

VECTORISED static void layer_norm_rows_f32(const float *x, const float *weight, const float *bias, double eps,
                                           size_t rows, size_t cols, float *out, float *mean, float *rstd) {
  for (size_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    float *out_row = out + r * cols;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (size_t j = 0; j < cols; j++) sum += row[j];
    double mu = sum / (double)cols;
    /* Two passes: the one-pass E[x²] − E[x]² cancels when |mean| ≫ std. */
    double squares = 0.0;
#pragma omp simd reduction(+ : squares)
    for (size_t j = 0; j < cols; j++) {
      double centred = row[j] - mu;
      squares += centred * centred;
    }
    double rs = 1.0 / sqrt(squares / (double)cols + eps);
    mean[r] = (float)mu;
    rstd[r] = (float)rs;
#pragma omp simd
    for (size_t j = 0; j < cols; j++) {
      float normalised = (float)((row[j] - mu) * rs);
      out_row[j] = normalised * (weight ? weight[j] : 1.0f) + (bias ? bias[j] : 0.0f);
    }
  }
}

/* Parameter gradients are summed over rows in double scratch and added to the caller's arrays
 * once, so they do not lose precision with many rows. Returns false when out of memory. */
VECTORISED static bool layer_norm_rows_backward_f32(const float *x, const float *weight, const float *mean,
                                                    const float *rstd, const float *grad_out, size_t rows,
                                                    size_t cols, float *grad_x, float *grad_weight,
                                                    float *grad_bias) {
  double *weight_sums = grad_weight ? calloc(cols, sizeof(double)) : NULL;
  double *bias_sums = grad_bias ? calloc(cols, sizeof(double)) : NULL;
  if ((grad_weight && !weight_sums) || (grad_bias && !bias_sums)) {
    free(weight_sums);
    free(bias_sums);
    return false;
  }
  for (size_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    const float *g_row = grad_out + r * cols;
    float *gx_row = grad_x + r * cols;
    double mu = mean[r], rs = rstd[r];
    double sum_g_hat = 0.0, sum_g_hat_x_hat = 0.0;
#pragma omp simd reduction(+ : sum_g_hat, sum_g_hat_x_hat)
    for (size_t j = 0; j < cols; j++) {
      double x_hat = (row[j] - mu) * rs;
      double g_hat = (double)g_row[j] * (weight ? weight[j] : 1.0f);
      sum_g_hat += g_hat;
      sum_g_hat_x_hat += g_hat * x_hat;
    }
    double mean_g_hat = sum_g_hat / (double)cols;
    double mean_g_hat_x_hat = sum_g_hat_x_hat / (double)cols;
    if (weight_sums) {
#pragma omp simd
      for (size_t j = 0; j < cols; j++) weight_sums[j] += (double)g_row[j] * ((row[j] - mu) * rs);
    }
    if (bias_sums) {
#pragma omp simd
      for (size_t j = 0; j < cols; j++) bias_sums[j] += g_row[j];
    }
    /* Last, so that grad_x may alias grad_out. */
#pragma omp simd
    for (size_t j = 0; j < cols; j++) {
      double x_hat = (row[j] - mu) * rs;
      double g_hat = (double)g_row[j] * (weight ? weight[j] : 1.0f);
      gx_row[j] = (float)(rs * (g_hat - mean_g_hat - x_hat * mean_g_hat_x_hat));
    }
  }
  if (weight_sums)
    for (size_t j = 0; j < cols; j++) grad_weight[j] = (float)(grad_weight[j] + weight_sums[j]);
  if (bias_sums)
    for (size_t j = 0; j < cols; j++) grad_bias[j] = (float)(grad_bias[j] + bias_sums[j]);
  free(weight_sums);
  free(bias_sums);
  return true;
}

VECTORISED static void rms_norm_rows_f32(const float *x, const float *weight, double eps, size_t rows, size_t cols,
                                         float *out, float *rstd) {
  for (size_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    float *out_row = out + r * cols;
    double squares = 0.0;
#pragma omp simd reduction(+ : squares)
    for (size_t j = 0; j < cols; j++) squares += (double)row[j] * row[j];
    double rs = 1.0 / sqrt(squares / (double)cols + eps);
    rstd[r] = (float)rs;
#pragma omp simd
    for (size_t j = 0; j < cols; j++) out_row[j] = (float)(row[j] * rs) * (weight ? weight[j] : 1.0f);
  }
}

VECTORISED static bool rms_norm_rows_backward_f32(const float *x, const float *weight, const float *rstd,
                                                  const float *grad_out, size_t rows, size_t cols, float *grad_x,
                                                  float *grad_weight) {
  double *weight_sums = grad_weight ? calloc(cols, sizeof(double)) : NULL;
  if (grad_weight && !weight_sums) return false;
  for (size_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    const float *g_row = grad_out + r * cols;
    float *gx_row = grad_x + r * cols;
    double rs = rstd[r];
    double sum_g_hat_x_hat = 0.0;
#pragma omp simd reduction(+ : sum_g_hat_x_hat)
    for (size_t j = 0; j < cols; j++)
      sum_g_hat_x_hat += (double)g_row[j] * (weight ? weight[j] : 1.0f) * (row[j] * rs);
    double mean_g_hat_x_hat = sum_g_hat_x_hat / (double)cols;
    if (weight_sums) {
#pragma omp simd
      for (size_t j = 0; j < cols; j++) weight_sums[j] += (double)g_row[j] * (row[j] * rs);
    }
#pragma omp simd
    for (size_t j = 0; j < cols; j++) {
      double x_hat = row[j] * rs;
      double g_hat = (double)g_row[j] * (weight ? weight[j] : 1.0f);
      gx_row[j] = (float)(rs * (g_hat - x_hat * mean_g_hat_x_hat));
    }
  }
  if (weight_sums)
    for (size_t j = 0; j < cols; j++) grad_weight[j] = (float)(grad_weight[j] + weight_sums[j]);
  free(weight_sums);
  return true;
}

/* ---------------------------------------------------------------------------------------------
 * Strided kernels: out is contiguous in the shape dims; each operand is read at offset +
 * Σ i_d·strides[d]. After dropping length-1 dims and merging neighbours across which every
 * operand is contiguous, the two innermost dims run as plain loops and the others through a
 * counter; the innermost loop has separate versions for the common stride pairs so they vectorise.
 */

/* Length-1 dims are dropped, so each dim is ≥ 2 and their product ≤ 2^53 bounds the rank by 53. */
#define MAX_STRIDED_RANK 64

typedef struct {
  size_t rank; /* ≥ 1 */
  size_t dims[MAX_STRIDED_RANK];
  size_t strides[2][MAX_STRIDED_RANK]; /* per operand */
} StridedLayout;

/* For dims with no 0 and a product ≤ 2^53 (checked by the caller). */
static void merge_layout(const int32_t *dims, size_t rank, const int32_t *const *strides, size_t operands,
                         StridedLayout *layout) {
  size_t merged = 0;
  for (size_t d = 0; d < rank; d++) {
    size_t dim = (size_t)dims[d];
    if (dim == 1) continue;
    bool contiguous = merged > 0;
    for (size_t k = 0; k < operands && contiguous; k++)
      contiguous = layout->strides[k][merged - 1] == (size_t)strides[k][d] * dim;
    if (contiguous) {
      layout->dims[merged - 1] *= dim;
      for (size_t k = 0; k < operands; k++) layout->strides[k][merged - 1] = (size_t)strides[k][d];
    } else {
      layout->dims[merged] = dim;
      for (size_t k = 0; k < operands; k++) layout->strides[k][merged] = (size_t)strides[k][d];
      merged++;
    }
  }
  if (merged == 0) {
    layout->dims[0] = 1;
    for (size_t k = 0; k < operands; k++) layout->strides[k][0] = 0;
    merged = 1;
  }
  layout->rank = merged;
}

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM } BinaryOp;

/* out[i] = EXPR(x = a[i·as], y = b[i·bs]) for i < n, one loop per stride pair. */
#define BINARY_ROW(EXPR)                                                                      \
  do {                                                                                        \
    if (as == 1 && bs == 1) {                                                                 \
      _Pragma("omp simd") for (size_t i = 0; i < n; i++) {                                    \
        float x = a[i], y = b[i];                                                             \
        out[i] = (EXPR);                                                                      \
      }                                                                                       \
    } else if (as == 1 && bs == 0) {                                                          \
      const float y = b[0];                                                                   \
      _Pragma("omp simd") for (size_t i = 0; i < n; i++) {                                    \
        float x = a[i];                                                                       \
        out[i] = (EXPR);                                                                      \
      }                                                                                       \
    } else if (as == 0 && bs == 1) {                                                          \
      const float x = a[0];                                                                   \
      _Pragma("omp simd") for (size_t i = 0; i < n; i++) {                                    \
        float y = b[i];                                                                       \
        out[i] = (EXPR);                                                                      \
      }                                                                                       \
    } else if (as == 0 && bs == 0) {                                                          \
      const float x = a[0], y = b[0], value = (EXPR);                                         \
      _Pragma("omp simd") for (size_t i = 0; i < n; i++) out[i] = value;                      \
    } else {                                                                                  \
      _Pragma("omp simd") for (size_t i = 0; i < n; i++) {                                    \
        float x = a[i * as], y = b[i * bs];                                                   \
        out[i] = (EXPR);                                                                      \
      }                                                                                       \
    }                                                                                         \
  } while (0)

/* Float arithmetic, not double: each operation rounds once to float32, as IEEE float ops do (the
 * TypeScript kernels get the same result by rounding the double result once). maximum keeps a
 * where a ≥ b or a is NaN, else b, so NaN from either side wins. powf is not vectorised. */
static inline __attribute__((always_inline)) void binary_row_f32(BinaryOp op, float *out, const float *a, size_t as,
                                                                 const float *b, size_t bs, size_t n) {
  switch (op) {
    case OP_ADD: BINARY_ROW(x + y); break;
    case OP_SUB: BINARY_ROW(x - y); break;
    case OP_MUL: BINARY_ROW(x * y); break;
    case OP_DIV: BINARY_ROW(x / y); break;
    case OP_POW: BINARY_ROW(powf(x, y)); break;
    case OP_MAXIMUM: BINARY_ROW(x >= y || x != x ? x : y); break;
  }
}

VECTORISED static void binary_strided_f32(BinaryOp op, const StridedLayout *layout, const float *a, size_t a_offset,
                                          const float *b, size_t b_offset, float *out, size_t size) {
  size_t rank = layout->rank;
  const size_t *dims = layout->dims, *sa = layout->strides[0], *sb = layout->strides[1];
  size_t n = dims[rank - 1], as = sa[rank - 1], bs = sb[rank - 1];
  if (rank == 1) {
    binary_row_f32(op, out, a + a_offset, as, b + b_offset, bs, n);
    return;
  }
  size_t m = dims[rank - 2], am = sa[rank - 2], bm = sb[rank - 2];
  size_t counter[MAX_STRIDED_RANK] = {0};
  size_t ai = a_offset, bi = b_offset;
  for (size_t o = 0; o < size;) {
    for (size_t j = 0; j < m; j++, o += n) binary_row_f32(op, out + o, a + ai + j * am, as, b + bi + j * bm, bs, n);
    for (size_t d = rank - 2; d-- > 0;) {
      ai += sa[d];
      bi += sb[d];
      if (++counter[d] < dims[d]) break;
      ai -= sa[d] * dims[d];
      bi -= sb[d] * dims[d];
      counter[d] = 0;
    }
  }
}

/* out[i] = src[i·s] for i < n: memcpy for contiguous rows, a fill for broadcast ones. */
static inline __attribute__((always_inline)) void copy_row_f32(float *out, const float *src, size_t s, size_t n) {
  if (s == 1) {
    memcpy(out, src, n * sizeof(float));
  } else if (s == 0) {
    const float value = src[0];
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = value;
  } else {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = src[i * s];
  }
}

/* out[j·n + i] = src[j + i·s] for j < m, i < n: a transpose, done in tiles so that each cache
 * line read from src serves a whole tile row instead of one element. */
#define TRANSPOSE_TILE 8
static inline __attribute__((always_inline)) void transpose_block_f32(float *out, const float *src, size_t s,
                                                                      size_t m, size_t n) {
  for (size_t jb = 0; jb < m; jb += TRANSPOSE_TILE) {
    size_t je = jb + TRANSPOSE_TILE < m ? jb + TRANSPOSE_TILE : m;
    for (size_t ib = 0; ib < n; ib += TRANSPOSE_TILE) {
      size_t ie = ib + TRANSPOSE_TILE < n ? ib + TRANSPOSE_TILE : n;
      for (size_t j = jb; j < je; j++)
        for (size_t i = ib; i < ie; i++) out[j * n + i] = src[j + i * s];
    }
  }
}

VECTORISED static void copy_strided_f32(const StridedLayout *layout, const float *src, size_t src_offset, float *out,
                                        size_t size) {
  size_t rank = layout->rank;
  const size_t *dims = layout->dims, *ss = layout->strides[0];
  size_t n = dims[rank - 1], s = ss[rank - 1];
  if (rank == 1) {
    copy_row_f32(out, src + src_offset, s, n);
    return;
  }
  size_t m = dims[rank - 2], sm = ss[rank - 2];
  /* The inner rows gather with stride s while the dim above them is contiguous in src. */
  bool transpose = s > 1 && sm == 1;
  size_t counter[MAX_STRIDED_RANK] = {0};
  size_t si = src_offset;
  for (size_t o = 0; o < size;) {
    if (transpose) {
      transpose_block_f32(out + o, src + si, s, m, n);
      o += m * n;
    } else {
      for (size_t j = 0; j < m; j++, o += n) copy_row_f32(out + o, src + si + j * sm, s, n);
    }
    for (size_t d = rank - 2; d-- > 0;) {
      si += ss[d];
      if (++counter[d] < dims[d]) break;
      si -= ss[d] * dims[d];
      counter[d] = 0;
    }
  }
}

/* C = beta·C for an m×n matrix with row stride ldc; beta = 0 writes zeros (NaN in C does not survive). */
static void scale_matrix_f32(float *c, size_t m, size_t n, size_t ldc, float beta) {
  for (size_t i = 0; i < m; i++) {
    float *row = c + i * ldc;
#pragma omp simd
    for (size_t j = 0; j < n; j++) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
  }
}

/* ---------------------------------------------------------------------------------------------
 * N-API argument handling. Each reader throws a TypeError/RangeError naming the kernel and the
 * argument, and returns false; the entry points then return NULL (undefined) with it pending.
 */

#define MAX_ARGS 16

typedef struct {
  napi_env env;
  const char *kernel;
  napi_value argv[MAX_ARGS];
} Call;

typedef struct {
  float *data;
  size_t length;
} F32;

static bool throw_error(const Call *call, bool range_error, const char *format, ...) {
  char message[512];
  int prefix = snprintf(message, sizeof message, "%s: ", call->kernel);
  va_list args;
  va_start(args, format);
  vsnprintf(message + prefix, sizeof message - (size_t)prefix, format, args);
  va_end(args);
  if (range_error)
    napi_throw_range_error(call->env, NULL, message);
  else
    napi_throw_type_error(call->env, NULL, message);
  return false;
}

static bool begin_call(napi_env env, napi_callback_info info, const char *kernel, size_t expected, Call *call) {
  call->env = env;
  call->kernel = kernel;
  size_t argc = MAX_ARGS;
  if (napi_get_cb_info(env, info, &argc, call->argv, NULL, NULL) != napi_ok)
    return throw_error(call, false, "could not read the arguments");
  if (argc < expected) return throw_error(call, false, "expected %zu arguments, got %zu", expected, argc);
  return true;
}

static bool is_null(const Call *call, size_t index) {
  napi_valuetype type;
  return napi_typeof(call->env, call->argv[index], &type) == napi_ok && type == napi_null;
}

static bool typed_array_arg(const Call *call, size_t index, const char *name, napi_typedarray_type wanted,
                            const char *wanted_name, void **data, size_t *length) {
  bool is_typed_array = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(call->env, call->argv[index], &is_typed_array) != napi_ok || !is_typed_array ||
      napi_get_typedarray_info(call->env, call->argv[index], &type, length, data, NULL, NULL) != napi_ok ||
      type != wanted)
    return throw_error(call, false, "%s must be %s", name, wanted_name);
  return true;
}

static bool f32_arg(const Call *call, size_t index, const char *name, F32 *out) {
  void *data;
  if (!typed_array_arg(call, index, name, napi_float32_array, "a Float32Array", &data, &out->length)) return false;
  out->data = data;
  return true;
}

/* A Float32Array or null; null comes back as data == NULL. */
static bool optional_f32_arg(const Call *call, size_t index, const char *name, F32 *out) {
  if (is_null(call, index)) {
    out->data = NULL;
    out->length = 0;
    return true;
  }
  void *data;
  if (!typed_array_arg(call, index, name, napi_float32_array, "a Float32Array or null", &data, &out->length))
    return false;
  out->data = data;
  return true;
}

static bool i32_arg(const Call *call, size_t index, const char *name, const int32_t **data, size_t *length) {
  void *raw;
  if (!typed_array_arg(call, index, name, napi_int32_array, "an Int32Array", &raw, length)) return false;
  *data = raw;
  return true;
}

static bool number_arg(const Call *call, size_t index, const char *name, double *value) {
  napi_valuetype type;
  if (napi_typeof(call->env, call->argv[index], &type) != napi_ok || type != napi_number ||
      napi_get_value_double(call->env, call->argv[index], value) != napi_ok)
    return throw_error(call, false, "%s must be a number", name);
  return true;
}

static bool bool_arg(const Call *call, size_t index, const char *name, bool *value) {
  napi_valuetype type;
  if (napi_typeof(call->env, call->argv[index], &type) != napi_ok || type != napi_boolean ||
      napi_get_value_bool(call->env, call->argv[index], value) != napi_ok)
    return throw_error(call, false, "%s must be a boolean", name);
  return true;
}

/* Sizes are capped at 2^31 − 1 because OpenBLAS takes them as int. */
static bool size_arg(const Call *call, size_t index, const char *name, size_t *value) {
  double number;
  if (!number_arg(call, index, name, &number)) return false;
  if (!(number >= 0 && number <= INT32_MAX && number == floor(number)))
    return throw_error(call, true, "%s must be an integer in [0, 2^31), got %g", name, number);
  *value = (size_t)number;
  return true;
}

static bool expect_length(const Call *call, const char *name, size_t length, size_t expected, const char *what) {
  if (length != expected)
    return throw_error(call, true, "%s has %zu elements; expected %s = %zu", name, length, what, expected);
  return true;
}

/* ---------------------------------------------------------------------------------------------
 * Entry points.
 */

/* Checks one operand of sgemmBatch: its leading dimension and that every matrix of the batch lies
 * inside the array. A matrix without columns may have ld = 0 (e.g. k = 0); BLAS gets 1 then. */
static bool check_sgemm_operand(const Call *call, const char *array_name, size_t array_length,
                                const char *ld_name, size_t ld, const char *offsets_name, const int32_t *offsets,
                                size_t count, size_t stored_rows, size_t stored_cols) {
  if (ld < stored_cols)
    return throw_error(call, true, "%s must be at least %zu (the columns of the stored %s), got %zu", ld_name,
                       stored_cols, array_name, ld);
  uint64_t extent = stored_rows == 0 || stored_cols == 0 ? 0 : (uint64_t)(stored_rows - 1) * ld + stored_cols;
  for (size_t i = 0; i < count; i++) {
    if (offsets[i] < 0)
      return throw_error(call, true, "%s[%zu] is negative (%d)", offsets_name, i, (int)offsets[i]);
    if ((uint64_t)offsets[i] + extent > array_length)
      return throw_error(call, true, "%s is too short for matrix %zu: offset %d + extent %llu > length %zu",
                         array_name, i, (int)offsets[i], (unsigned long long)extent, array_length);
  }
  return true;
}

static napi_value sgemm_batch(napi_env env, napi_callback_info info) {
  Call call;
  bool trans_a, trans_b;
  size_t m, n, k, lda, ldb, ldc, a_count, b_count, c_count;
  double alpha, beta;
  F32 a, b, c;
  const int32_t *a_offsets, *b_offsets, *c_offsets;
  if (!begin_call(env, info, "sgemmBatch", 16, &call) || !bool_arg(&call, 0, "transA", &trans_a) ||
      !bool_arg(&call, 1, "transB", &trans_b) || !size_arg(&call, 2, "m", &m) || !size_arg(&call, 3, "n", &n) ||
      !size_arg(&call, 4, "k", &k) || !number_arg(&call, 5, "alpha", &alpha) || !f32_arg(&call, 6, "a", &a) ||
      !size_arg(&call, 7, "lda", &lda) || !i32_arg(&call, 8, "aOffsets", &a_offsets, &a_count) ||
      !f32_arg(&call, 9, "b", &b) || !size_arg(&call, 10, "ldb", &ldb) ||
      !i32_arg(&call, 11, "bOffsets", &b_offsets, &b_count) || !number_arg(&call, 12, "beta", &beta) ||
      !f32_arg(&call, 13, "c", &c) || !size_arg(&call, 14, "ldc", &ldc) ||
      !i32_arg(&call, 15, "cOffsets", &c_offsets, &c_count))
    return NULL;
  if (b_count != a_count || c_count != a_count) {
    throw_error(&call, true, "aOffsets, bOffsets and cOffsets must have the same length, got %zu, %zu and %zu",
                a_count, b_count, c_count);
    return NULL;
  }
  if (!check_sgemm_operand(&call, "a", a.length, "lda", lda, "aOffsets", a_offsets, a_count, trans_a ? k : m,
                           trans_a ? m : k) ||
      !check_sgemm_operand(&call, "b", b.length, "ldb", ldb, "bOffsets", b_offsets, b_count, trans_b ? n : k,
                           trans_b ? k : n) ||
      !check_sgemm_operand(&call, "c", c.length, "ldc", ldc, "cOffsets", c_offsets, c_count, m, n))
    return NULL;
  if (m == 0 || n == 0) return NULL;
  /* Reference BLAS does not read A or B when alpha = 0 or k = 0, but OpenBLAS (small-matrix path)
   * multiplies anyway, turning an Inf or NaN in A or B into NaN: do that case here. */
  if (alpha == 0.0 || k == 0) {
    for (size_t i = 0; i < c_count; i++) scale_matrix_f32(c.data + c_offsets[i], m, n, ldc, (float)beta);
    return NULL;
  }
  for (size_t i = 0; i < a_count; i++) {
    /* A single row (decoding one token) is a matrix-vector product: sgemv streams B once, where
       sgemm's packing of a transposed B costs a third more on the LM head. */
    if (m == 1 && !trans_a) {
      cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, trans_b ? (int)n : (int)k, trans_b ? (int)k : (int)n,
                  (float)alpha, b.data + b_offsets[i], ldb ? (int)ldb : 1, a.data + a_offsets[i], 1, (float)beta,
                  c.data + c_offsets[i], 1);
      continue;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                (int)n, (int)k, (float)alpha, a.data + a_offsets[i], lda ? (int)lda : 1, b.data + b_offsets[i],
                ldb ? (int)ldb : 1, (float)beta, c.data + c_offsets[i], (int)ldc);
  }
  return NULL;
}

typedef void (*UnaryKernel)(const float *x, float *out, size_t n);
typedef void (*UnaryBackwardKernel)(const float *x, const float *grad_out, float *grad_in, size_t n);

static napi_value unary(napi_env env, napi_callback_info info, const char *kernel, UnaryKernel compute) {
  Call call;
  F32 x, out;
  if (!begin_call(env, info, kernel, 2, &call) || !f32_arg(&call, 0, "x", &x) || !f32_arg(&call, 1, "out", &out) ||
      !expect_length(&call, "out", out.length, x.length, "x.length"))
    return NULL;
  compute(x.data, out.data, x.length);
  return NULL;
}

static napi_value unary_backward(napi_env env, napi_callback_info info, const char *kernel,
                                 UnaryBackwardKernel compute) {
  Call call;
  F32 x, grad_out, grad_in;
  if (!begin_call(env, info, kernel, 3, &call) || !f32_arg(&call, 0, "x", &x) ||
      !f32_arg(&call, 1, "gradOut", &grad_out) || !f32_arg(&call, 2, "gradIn", &grad_in) ||
      !expect_length(&call, "gradOut", grad_out.length, x.length, "x.length") ||
      !expect_length(&call, "gradIn", grad_in.length, x.length, "x.length"))
    return NULL;
  compute(x.data, grad_out.data, grad_in.data, x.length);
  return NULL;
}

#define UNARY_ENTRY(entry, kernel, compute) \
  static napi_value entry(napi_env env, napi_callback_info info) { return unary(env, info, kernel, compute); }
#define UNARY_BACKWARD_ENTRY(entry, kernel, compute)               \
  static napi_value entry(napi_env env, napi_callback_info info) { \
    return unary_backward(env, info, kernel, compute);             \
  }

UNARY_ENTRY(gelu_tanh, "geluTanh", gelu_tanh_f32)
UNARY_BACKWARD_ENTRY(gelu_tanh_backward, "geluTanhBackward", gelu_tanh_backward_f32)
UNARY_ENTRY(gelu_erf, "geluErf", gelu_erf_f32)
UNARY_BACKWARD_ENTRY(gelu_erf_backward, "geluErfBackward", gelu_erf_backward_f32)
UNARY_ENTRY(silu, "silu", silu_f32)
UNARY_BACKWARD_ENTRY(silu_backward, "siluBackward", silu_backward_f32)
UNARY_ENTRY(exp_entry, "exp", exp_array_f32)
UNARY_ENTRY(tanh_entry, "tanh", tanh_array_f32)

static napi_value softmax_rows(napi_env env, napi_callback_info info) {
  Call call;
  F32 x, out;
  size_t rows, cols;
  if (!begin_call(env, info, "softmaxRows", 4, &call) || !f32_arg(&call, 0, "x", &x) ||
      !size_arg(&call, 1, "rows", &rows) || !size_arg(&call, 2, "cols", &cols) || !f32_arg(&call, 3, "out", &out) ||
      !expect_length(&call, "x", x.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "out", out.length, rows * cols, "rows*cols"))
    return NULL;
  softmax_rows_f32(x.data, rows, cols, out.data);
  return NULL;
}

static napi_value softmax_rows_backward(napi_env env, napi_callback_info info) {
  Call call;
  F32 y, grad_out, grad_in;
  size_t rows, cols;
  if (!begin_call(env, info, "softmaxRowsBackward", 5, &call) || !f32_arg(&call, 0, "y", &y) ||
      !f32_arg(&call, 1, "gradOut", &grad_out) || !size_arg(&call, 2, "rows", &rows) ||
      !size_arg(&call, 3, "cols", &cols) || !f32_arg(&call, 4, "gradIn", &grad_in) ||
      !expect_length(&call, "y", y.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "gradOut", grad_out.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "gradIn", grad_in.length, rows * cols, "rows*cols"))
    return NULL;
  softmax_rows_backward_f32(y.data, grad_out.data, rows, cols, grad_in.data);
  return NULL;
}

/* weight, bias and the parameter gradients are optional (null) row-length arrays. */
static bool optional_row_arg(const Call *call, size_t index, const char *name, size_t cols, F32 *out) {
  return optional_f32_arg(call, index, name, out) &&
         (!out->data || expect_length(call, name, out->length, cols, "cols"));
}

static napi_value layer_norm_rows(napi_env env, napi_callback_info info) {
  Call call;
  F32 x, weight, bias, out, mean, rstd;
  double eps;
  size_t rows, cols;
  if (!begin_call(env, info, "layerNormRows", 9, &call) || !f32_arg(&call, 0, "x", &x) ||
      !number_arg(&call, 3, "eps", &eps) || !size_arg(&call, 4, "rows", &rows) ||
      !size_arg(&call, 5, "cols", &cols) || !optional_row_arg(&call, 1, "weight", cols, &weight) ||
      !optional_row_arg(&call, 2, "bias", cols, &bias) || !f32_arg(&call, 6, "out", &out) ||
      !f32_arg(&call, 7, "mean", &mean) || !f32_arg(&call, 8, "rstd", &rstd) ||
      !expect_length(&call, "x", x.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "out", out.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "mean", mean.length, rows, "rows") ||
      !expect_length(&call, "rstd", rstd.length, rows, "rows"))
    return NULL;
  layer_norm_rows_f32(x.data, weight.data, bias.data, eps, rows, cols, out.data, mean.data, rstd.data);
  return NULL;
}

static napi_value layer_norm_rows_backward(napi_env env, napi_callback_info info) {
  Call call;
  F32 x, weight, mean, rstd, grad_out, grad_x, grad_weight, grad_bias;
  size_t rows, cols;
  if (!begin_call(env, info, "layerNormRowsBackward", 10, &call) || !f32_arg(&call, 0, "x", &x) ||
      !size_arg(&call, 5, "rows", &rows) || !size_arg(&call, 6, "cols", &cols) ||
      !optional_row_arg(&call, 1, "weight", cols, &weight) || !f32_arg(&call, 2, "mean", &mean) ||
      !f32_arg(&call, 3, "rstd", &rstd) || !f32_arg(&call, 4, "gradOut", &grad_out) ||
      !f32_arg(&call, 7, "gradX", &grad_x) || !optional_row_arg(&call, 8, "gradWeight", cols, &grad_weight) ||
      !optional_row_arg(&call, 9, "gradBias", cols, &grad_bias) ||
      !expect_length(&call, "x", x.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "mean", mean.length, rows, "rows") ||
      !expect_length(&call, "rstd", rstd.length, rows, "rows") ||
      !expect_length(&call, "gradOut", grad_out.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "gradX", grad_x.length, rows * cols, "rows*cols"))
    return NULL;
  if (!layer_norm_rows_backward_f32(x.data, weight.data, mean.data, rstd.data, grad_out.data, rows, cols,
                                    grad_x.data, grad_weight.data, grad_bias.data))
    throw_error(&call, false, "out of memory");
  return NULL;
}

static napi_value rms_norm_rows(napi_env env, napi_callback_info info) {
  Call call;
  F32 x, weight, out, rstd;
  double eps;
  size_t rows, cols;
  if (!begin_call(env, info, "rmsNormRows", 7, &call) || !f32_arg(&call, 0, "x", &x) ||
      !number_arg(&call, 2, "eps", &eps) || !size_arg(&call, 3, "rows", &rows) ||
      !size_arg(&call, 4, "cols", &cols) || !optional_row_arg(&call, 1, "weight", cols, &weight) ||
      !f32_arg(&call, 5, "out", &out) || !f32_arg(&call, 6, "rstd", &rstd) ||
      !expect_length(&call, "x", x.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "out", out.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "rstd", rstd.length, rows, "rows"))
    return NULL;
  rms_norm_rows_f32(x.data, weight.data, eps, rows, cols, out.data, rstd.data);
  return NULL;
}

static napi_value rms_norm_rows_backward(napi_env env, napi_callback_info info) {
  Call call;
  F32 x, weight, rstd, grad_out, grad_x, grad_weight;
  size_t rows, cols;
  if (!begin_call(env, info, "rmsNormRowsBackward", 8, &call) || !f32_arg(&call, 0, "x", &x) ||
      !size_arg(&call, 4, "rows", &rows) || !size_arg(&call, 5, "cols", &cols) ||
      !optional_row_arg(&call, 1, "weight", cols, &weight) || !f32_arg(&call, 2, "rstd", &rstd) ||
      !f32_arg(&call, 3, "gradOut", &grad_out) || !f32_arg(&call, 6, "gradX", &grad_x) ||
      !optional_row_arg(&call, 7, "gradWeight", cols, &grad_weight) ||
      !expect_length(&call, "x", x.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "rstd", rstd.length, rows, "rows") ||
      !expect_length(&call, "gradOut", grad_out.length, rows * cols, "rows*cols") ||
      !expect_length(&call, "gradX", grad_x.length, rows * cols, "rows*cols"))
    return NULL;
  if (!rms_norm_rows_backward_f32(x.data, weight.data, rstd.data, grad_out.data, rows, cols, grad_x.data,
                                  grad_weight.data))
    throw_error(&call, false, "out of memory");
  return NULL;
}

static const char *const BINARY_OP_NAMES[] = {"add", "sub", "mul", "div", "pow", "maximum"};

/* The op string, mapped to its enum once per call. A short buffer suffices: a longer (truncated)
 * string matches no name, nor does one with an embedded NUL (the length is compared too). */
static bool binary_op_arg(const Call *call, size_t index, const char *name, BinaryOp *op) {
  napi_valuetype type;
  char text[16];
  size_t length;
  if (napi_typeof(call->env, call->argv[index], &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(call->env, call->argv[index], text, sizeof text, &length) != napi_ok)
    return throw_error(call, false, "%s must be a string", name);
  for (size_t i = 0; i < sizeof BINARY_OP_NAMES / sizeof BINARY_OP_NAMES[0]; i++) {
    if (length == strlen(BINARY_OP_NAMES[i]) && strcmp(text, BINARY_OP_NAMES[i]) == 0) {
      *op = (BinaryOp)i;
      return true;
    }
  }
  return throw_error(call, true, "%s must be one of \"add\", \"sub\", \"mul\", \"div\", \"pow\", \"maximum\"", name);
}

/* Checks dims (no entry negative) and gives their product, 0 when an entry is 0. The product is
 * formed in double exactly as the TypeScript kernels form it, so both refuse the same dims. */
static bool dims_product(const Call *call, const int32_t *dims, size_t rank, size_t *size) {
  double product = 1.0;
  bool empty = false;
  for (size_t d = 0; d < rank; d++) {
    if (dims[d] < 0) return throw_error(call, true, "dims[%zu] is negative (%d)", d, (int)dims[d]);
    if (dims[d] == 0) empty = true;
    product *= dims[d];
  }
  if (empty) {
    *size = 0;
    return true;
  }
  if (product > 9007199254740992.0) return throw_error(call, true, "the product of dims is above 2^53");
  *size = (size_t)product;
  return true;
}

static bool check_strides(const Call *call, const char *name, const int32_t *strides, size_t count, size_t rank) {
  if (!expect_length(call, name, count, rank, "dims.length")) return false;
  for (size_t d = 0; d < rank; d++)
    if (strides[d] < 0) return throw_error(call, true, "%s[%zu] is negative (%d)", name, d, (int)strides[d]);
  return true;
}

/* The last element read, offset + Σ (dims[d] − 1)·strides[d], lies inside the array (dims all ≥ 1).
 * Summed in double in the TypeScript kernels' order: exact below 2^53, never below the length when
 * the exact sum is not, and printed the same. */
static bool check_extent(const Call *call, const char *array_name, size_t length, const char *offset_name,
                         size_t offset, const char *strides_name, const int32_t *strides, const int32_t *dims,
                         size_t rank) {
  double last = (double)offset;
  for (size_t d = 0; d < rank; d++) {
    double term = (double)(dims[d] - 1) * (double)strides[d];
    last += term;
  }
  if (last >= (double)length)
    return throw_error(call, true, "%s is too short: %s + sum((dims[d] - 1) * %s[d]) = %.0f, but %s has %zu elements",
                       array_name, offset_name, strides_name, last, array_name, length);
  return true;
}

static napi_value binary_strided(napi_env env, napi_callback_info info) {
  Call call;
  BinaryOp op = OP_ADD;
  const int32_t *dims, *a_strides, *b_strides;
  size_t rank, a_offset, b_offset, a_count, b_count, size = 0; /* = 0 and = OP_ADD: for GCC's
                                                                * maybe-uninitialized only */
  F32 a, b, out;
  if (!begin_call(env, info, "binaryStrided", 9, &call) || !binary_op_arg(&call, 0, "op", &op) ||
      !i32_arg(&call, 1, "dims", &dims, &rank) || !f32_arg(&call, 2, "a", &a) ||
      !size_arg(&call, 3, "aOffset", &a_offset) || !i32_arg(&call, 4, "aStrides", &a_strides, &a_count) ||
      !f32_arg(&call, 5, "b", &b) || !size_arg(&call, 6, "bOffset", &b_offset) ||
      !i32_arg(&call, 7, "bStrides", &b_strides, &b_count) || !f32_arg(&call, 8, "out", &out) ||
      !dims_product(&call, dims, rank, &size) || !check_strides(&call, "aStrides", a_strides, a_count, rank) ||
      !check_strides(&call, "bStrides", b_strides, b_count, rank) ||
      !expect_length(&call, "out", out.length, size, "the product of dims"))
    return NULL;
  if (size == 0) return NULL;
  if (!check_extent(&call, "a", a.length, "aOffset", a_offset, "aStrides", a_strides, dims, rank) ||
      !check_extent(&call, "b", b.length, "bOffset", b_offset, "bStrides", b_strides, dims, rank))
    return NULL;
  StridedLayout layout;
  const int32_t *const strides[2] = {a_strides, b_strides};
  merge_layout(dims, rank, strides, 2, &layout);
  binary_strided_f32(op, &layout, a.data, a_offset, b.data, b_offset, out.data, size);
  return NULL;
}

static napi_value copy_strided(napi_env env, napi_callback_info info) {
  Call call;
  const int32_t *dims, *src_strides;
  size_t rank, src_offset, src_count, size = 0; /* = 0: for GCC's maybe-uninitialized only */
  F32 src, out;
  if (!begin_call(env, info, "copyStrided", 5, &call) || !i32_arg(&call, 0, "dims", &dims, &rank) ||
      !f32_arg(&call, 1, "src", &src) || !size_arg(&call, 2, "srcOffset", &src_offset) ||
      !i32_arg(&call, 3, "srcStrides", &src_strides, &src_count) || !f32_arg(&call, 4, "out", &out) ||
      !dims_product(&call, dims, rank, &size) || !check_strides(&call, "srcStrides", src_strides, src_count, rank) ||
      !expect_length(&call, "out", out.length, size, "the product of dims"))
    return NULL;
  if (size == 0) return NULL;
  if (!check_extent(&call, "src", src.length, "srcOffset", src_offset, "srcStrides", src_strides, dims, rank))
    return NULL;
  StridedLayout layout;
  const int32_t *const strides[1] = {src_strides};
  merge_layout(dims, rank, strides, 1, &layout);
  copy_strided_f32(&layout, src.data, src_offset, out.data, size);
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  const napi_property_descriptor functions[] = {
      {"sgemmBatch", NULL, sgemm_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"binaryStrided", NULL, binary_strided, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copyStrided", NULL, copy_strided, NULL, NULL, NULL, napi_enumerable, NULL},
      {"geluTanh", NULL, gelu_tanh, NULL, NULL, NULL, napi_enumerable, NULL},
      {"geluTanhBackward", NULL, gelu_tanh_backward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"geluErf", NULL, gelu_erf, NULL, NULL, NULL, napi_enumerable, NULL},
      {"geluErfBackward", NULL, gelu_erf_backward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"silu", NULL, silu, NULL, NULL, NULL, napi_enumerable, NULL},
      {"siluBackward", NULL, silu_backward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"exp", NULL, exp_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tanh", NULL, tanh_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmaxRows", NULL, softmax_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmaxRowsBackward", NULL, softmax_rows_backward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNormRows", NULL, layer_norm_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNormRowsBackward", NULL, layer_norm_rows_backward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rmsNormRows", NULL, rms_norm_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rmsNormRowsBackward", NULL, rms_norm_rows_backward, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) != napi_ok)
    return NULL;
  return exports;
}
