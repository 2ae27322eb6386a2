/*
 * tsvene's kernels on raw arrays (see kernels.h), compiled into both the N-API addon and the
 * WebAssembly module. The TypeScript set in src/tensor/kernels/js.ts is the reference these agree
 * with to float32 rounding.
 *
 * No libc: only compiler builtins (__builtin_sqrt and the like become instructions; powf is the one
 * call, to libm in the addon and to the host in WebAssembly), so the file compiles for wasm32
 * without a sysroot.
 *
 * Accuracy: exp is a polynomial (no libm call, so loops vectorise) accurate to about 1 ulp. The
 * GELU forms are computed as x·sigmoid(·) and x·Φ(x) with the large part of the exponent carried
 * in double (geluTanh's, outside WebAssembly, in float32 pairs through fma, which in the addon's
 * baseline x86-64 clone is libm's fmaf), so they keep float32 relative accuracy where the textbook
 * 0.5·x·(1 + tanh/erf) loses it to cancellation (x ≲ −3). Row reductions accumulate in double.
 */
#include "kernels.h"

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
  __builtin_memcpy(&bits, &value, sizeof bits);
  return bits;
}

static inline float float_from_bits(uint32_t bits) {
  float value;
  __builtin_memcpy(&value, &bits, sizeof value);
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
  __builtin_memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
  __builtin_memcpy(&shift_bits, &round_shift, sizeof shift_bits);
  return exp_reduced_f32(r, (int32_t)(uint32_t)(shifted_bits - shift_bits));
}

/* tanh: Cephes' tanhf, an odd polynomial near 0 (where 1 − 2/(e^2x + 1) would cancel) and the
 * exponential form elsewhere; both are computed and one selected, so there is no branch. */
static inline float tanh_f32(float x) {
  float ax = __builtin_fabsf(x);
  float z = x * x;
  float near_zero =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * x + x;
  float far = __builtin_copysignf(1.0f - 2.0f / (exp_f32(2.0f * ax) + 1.0f), x);
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

/*
 * e^(−|a|) for a = 2u = 2·√(2/π)·(x + 0.044715·x³): geluTanh(x) = 0.5·x·(1 + tanh u) = x·σ(a), and a
 * has x's sign. For x < 0 the result's relative error is a's absolute error, so a must be formed
 * more precisely than float32 carries it (|a| reaches 104 before e^−|a| underflows).
 */
#ifdef __wasm__
/* WebAssembly has no fused multiply-add: a in double. */
static inline float gelu_tanh_exp_neg_abs_arg(float x) {
  double xd = x;
  double a = 2.0 * SQRT_2_OVER_PI * (xd + GELU_TANH_CUBIC * xd * xd * xd);
  return exp_f32_of_f64(-__builtin_fabs(a));
}
#else
#define GELU_TANH_C1 (2.0 * SQRT_2_OVER_PI)
#define GELU_TANH_C3 (2.0 * SQRT_2_OVER_PI * GELU_TANH_CUBIC)
/* In float32 pairs: |a| = |x|·(c1 + c3·x²) carried as hi + lo through exact fma products and a 2Sum
 * (about 2^−44 relative), then reduced by n·ln2 in two parts with lo added to the remainder. As
 * accurate as the double form above it, at twice the vector width. */
static inline float gelu_tanh_exp_neg_abs_arg(float x) {
  const float c1_hi = (float)GELU_TANH_C1, c1_lo = (float)(GELU_TANH_C1 - (double)(float)GELU_TANH_C1);
  const float c3_hi = (float)GELU_TANH_C3, c3_lo = (float)(GELU_TANH_C3 - (double)(float)GELU_TANH_C3);
  /* Beyond 16, |a| > 104 and the result is 0 anyway; the cap keeps inf out of the error terms. */
  float ax = __builtin_fabsf(x);
  ax = ax < 16.0f ? ax : 16.0f;
  float square = ax * ax;
  float square_lo = __builtin_fmaf(ax, ax, -square);
  float cubic = c3_hi * square;
  float cubic_lo = __builtin_fmaf(c3_hi, square, -cubic) + __builtin_fmaf(c3_hi, square_lo, c3_lo * square);
  float sum = c1_hi + cubic;
  float cubic_part = sum - c1_hi;
  float sum_lo = (c1_hi - (sum - cubic_part)) + (cubic - cubic_part) + (c1_lo + cubic_lo);
  float abs_a = ax * sum;
  float abs_a_lo = __builtin_fmaf(ax, sum, -abs_a) + ax * sum_lo;
  abs_a = abs_a < 104.0f ? abs_a : 104.0f;
  /* n = round(−|a|·log2 e) kept in the low mantissa bits, as in exp_f32; n·0.693359375 is exact. */
  const float round_shift = 12582912.0f;
  float shifted = -abs_a * 1.44269504088896341f + round_shift;
  float n = shifted - round_shift;
  float r = __builtin_fmaf(n, -0.693359375f, -abs_a);
  r = __builtin_fmaf(n, 2.12194440e-4f, r) - abs_a_lo;
  return exp_reduced_f32(r, (int32_t)(float_bits(shifted) - float_bits(round_shift)));
}
#endif

/*
 * Φ(x), the standard normal CDF, to float32 relative accuracy on both tails. With z = |x|/√2 and
 * t = 1/(1 + z/2), erfc(z) = t·e^(−z² + P(t)), P a degree-12 polynomial in 2t − 1 (a least-squares
 * Chebyshev fit to log(erfc(z)/t) + z² over t ∈ (0, 1], max error 6e-9). −z² = −x²/2 is exact in
 * double, which is why the exponent is formed there.
 */
static inline float normal_cdf_f32(float x) {
  float t = 1.0f / (1.0f + 0.35355339059327373f * __builtin_fabsf(x));
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

VECTORISED void gelu_tanh_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = x[i] * sigmoid_from(gelu_tanh_exp_neg_abs_arg(x[i]), x[i] < 0).sigmoid;
}

VECTORISED void gelu_tanh_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float xi = x[i];
    Sigmoid s = sigmoid_from(gelu_tanh_exp_neg_abs_arg(xi), xi < 0);
    /* d/dx x·σ(a) = σ·(1 + x·(1 − σ)·a′), a′ = 2√(2/π)(1 + 3·0.044715·x²) */
    float da = (float)(2.0 * SQRT_2_OVER_PI) * (1.0f + 3.0f * (float)GELU_TANH_CUBIC * xi * xi);
    grad_in[i] = grad_out[i] * s.sigmoid * (1.0f + xi * s.complement * da);
  }
}

VECTORISED void gelu_erf_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = x[i] * normal_cdf_f32(x[i]);
}

VECTORISED void gelu_erf_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float xi = x[i];
    double xd = xi;
    float pdf = INV_SQRT_2PI * exp_f32_of_f64(-0.5 * xd * xd);
    grad_in[i] = grad_out[i] * (normal_cdf_f32(xi) + xi * pdf);
  }
}

VECTORISED void silu_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = x[i] * sigmoid_from(exp_f32(-__builtin_fabsf(x[i])), x[i] < 0).sigmoid;
}

VECTORISED void silu_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    Sigmoid s = sigmoid_from(exp_f32(-__builtin_fabsf(x[i])), x[i] < 0);
    grad_in[i] = grad_out[i] * s.sigmoid * (1.0f + x[i] * s.complement);
  }
}

/* x > 0 ? x : 0 would turn NaN into 0; PyTorch's relu keeps NaN. */
VECTORISED void relu_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = x[i] > 0.0f || x[i] != x[i] ? x[i] : 0.0f;
}

VECTORISED void relu_backward_f32(const float *x, const float *grad_out, float *grad_in, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) grad_in[i] = x[i] > 0.0f ? grad_out[i] : 0.0f;
}

VECTORISED void select_f32(const float *cond, const float *a, const float *b, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = cond[i] != 0.0f ? a[i] : b[i];
}

VECTORISED void exp_array_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = exp_f32(x[i]);
}

VECTORISED void tanh_array_f32(const float *x, float *out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = tanh_f32(x[i]);
}

/* One row's softmax; out_row may be row. A row of −inf gives NaN (−inf − −inf), as in PyTorch; so
 * does a row containing NaN or +inf. */
static inline __attribute__((always_inline)) void softmax_row_f32(const float *row, size_t cols, float *out_row) {
  float row_max = -__builtin_inff();
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

VECTORISED void softmax_rows_f32(const float *x, size_t rows, size_t cols, float *out) {
  for (size_t r = 0; r < rows; r++) softmax_row_f32(x + r * cols, cols, out + r * cols);
}

/* float32's lowest finite value, which masked scores become (HF's torch.finfo(float32).min). */
#define MASKED_SCORE (-3.40282347e+38f)

/* Each row is written masked first and then normalised in place, so out may be x. */
VECTORISED void attention_softmax_f32(const float *x, size_t batch, size_t heads, size_t queries, size_t keys,
                                      float divisor, size_t window, const float *padding, float *out) {
  for (size_t b = 0; b < batch; b++) {
    const float *pad_row = padding ? padding + b * keys : NULL;
    for (size_t r = 0; r < heads * queries; r++) {
      size_t offset = (b * heads * queries + r) * keys;
      const float *row = x + offset;
      float *out_row = out + offset;
      /* The query sits at key position last; it sees keys first..last. */
      size_t last = keys - queries + r % queries;
      size_t first = window > 0 && last + 1 > window ? last + 1 - window : 0;
#pragma omp simd
      for (size_t j = 0; j < keys; j++) {
        float score = j >= first && j <= last ? row[j] / divisor : MASKED_SCORE;
        out_row[j] = pad_row ? score + pad_row[j] : score;
      }
      softmax_row_f32(out_row, keys, out_row);
    }
  }
}

VECTORISED void softmax_rows_backward_f32(const float *y, const float *grad_out, size_t rows, size_t cols,
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

VECTORISED void layer_norm_rows_f32(const float *x, const float *weight, const float *bias, double eps, size_t rows,
                                    size_t cols, float *out, float *mean, float *rstd) {
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
    double rs = 1.0 / __builtin_sqrt(squares / (double)cols + eps);
    mean[r] = (float)mu;
    rstd[r] = (float)rs;
#pragma omp simd
    for (size_t j = 0; j < cols; j++) {
      float normalised = (float)((row[j] - mu) * rs);
      out_row[j] = normalised * (weight ? weight[j] : 1.0f) + (bias ? bias[j] : 0.0f);
    }
  }
}

/* Parameter gradients are summed over rows in the caller's zeroed double scratch (cols each, given
 * with grad_weight / grad_bias) and added to grad_weight / grad_bias once, so they do not lose
 * precision with many rows. */
VECTORISED void layer_norm_rows_backward_f32(const float *x, const float *weight, const float *mean, const float *rstd,
                                             const float *grad_out, size_t rows, size_t cols, float *grad_x,
                                             float *grad_weight, float *grad_bias, double *weight_sums,
                                             double *bias_sums) {
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
}

VECTORISED void rms_norm_rows_f32(const float *x, const float *weight, double eps, size_t rows, size_t cols,
                                  float *out, float *rstd) {
  for (size_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    float *out_row = out + r * cols;
    double squares = 0.0;
#pragma omp simd reduction(+ : squares)
    for (size_t j = 0; j < cols; j++) squares += (double)row[j] * row[j];
    double rs = 1.0 / __builtin_sqrt(squares / (double)cols + eps);
    rstd[r] = (float)rs;
#pragma omp simd
    for (size_t j = 0; j < cols; j++) out_row[j] = (float)(row[j] * rs) * (weight ? weight[j] : 1.0f);
  }
}

/* weight_sums: zeroed double scratch of cols, given with grad_weight (as in layer_norm_rows_backward_f32). */
VECTORISED void rms_norm_rows_backward_f32(const float *x, const float *weight, const float *rstd,
                                           const float *grad_out, size_t rows, size_t cols, float *grad_x,
                                           float *grad_weight, double *weight_sums) {
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
}

/* ---------------------------------------------------------------------------------------------
 * Strided kernels: out is contiguous in the shape dims; each operand is read at offset +
 * Σ i_d·strides[d]. After dropping length-1 dims and merging neighbours across which every
 * operand is contiguous, the two innermost dims run as plain loops and the others through a
 * counter; the innermost loop has separate versions for the common stride pairs so they vectorise.
 */

void merge_layout(const int32_t *dims, size_t rank, const int32_t *const *strides, size_t operands,
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
    case OP_POW: BINARY_ROW(__builtin_powf(x, y)); break;
    case OP_MAXIMUM: BINARY_ROW(x >= y || x != x ? x : y); break;
  }
}

VECTORISED void binary_strided_f32(BinaryOp op, const StridedLayout *layout, const float *a, size_t a_offset,
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
    __builtin_memcpy(out, src, n * sizeof(float));
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

VECTORISED void copy_strided_f32(const StridedLayout *layout, const float *src, size_t src_offset, float *out,
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
void scale_matrix_f32(float *c, size_t m, size_t n, size_t ldc, float beta) {
  for (size_t i = 0; i < m; i++) {
    float *row = c + i * ldc;
#pragma omp simd
    for (size_t j = 0; j < n; j++) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
  }
}
