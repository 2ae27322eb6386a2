/*
 * tsvene's native addon: the N-API entry points of the kernels in kernels.c, plus sgemm through
 * OpenBLAS (see src/tensor/kernels/types.ts for the contract).
 *
 * Arguments are checked with the same rules and messages as the TypeScript kernels: here a wrong
 * length would read or write outside the caller's arrays instead of producing NaN.
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

#include "bf16.h"
#include "gemv.h"
#include "kernels.h"
#include "pool.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#ifndef _WIN32
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

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
    /* A single row (decoding one token) is a matrix-vector product: a GEMV streams B once, where
       sgemm's packing of a transposed B costs a third more on the LM head. tv_sgemv (on the pool,
       awake between a decoding step's products) where the CPU has AVX-512, else OpenBLAS's. */
    if (m == 1 && !trans_a) {
      if (tv_sgemv(trans_b ? TV_GEMV_OUT_IN : TV_GEMV_IN_OUT, (int)n, (int)k, (float)alpha, a.data + a_offsets[i],
                   b.data + b_offsets[i], ldb, (float)beta, c.data + c_offsets[i]))
        continue;
      cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, trans_b ? (int)n : (int)k,
                  trans_b ? (int)k : (int)n, (float)alpha, b.data + b_offsets[i], ldb ? (int)ldb : 1,
                  a.data + a_offsets[i], 1, (float)beta, c.data + c_offsets[i], 1);
      continue;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                (int)n, (int)k, (float)alpha, a.data + a_offsets[i], lda ? (int)lda : 1, b.data + b_offsets[i],
                ldb ? (int)ldb : 1, (float)beta, c.data + c_offsets[i], (int)ldc);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Elementwise and row kernels over large arrays run in parts on the thread pool (pool.h), each part
 * a range of elements or of rows: every element is computed as it would be in one piece, so results
 * do not depend on the split. A part is big enough to outweigh handing it out; an array below two
 * parts stays on the calling thread, where waking a worker would cost more than it saves.
 */

#define ELEMENTS_PER_PART ((size_t)1 << 15)

/* How many parts `units` units (elements or rows) of `unit_size` elements make; 1 keeps them whole. */
static int parts_for(size_t units, size_t unit_size) {
  size_t parts = units * unit_size / ELEMENTS_PER_PART;
  if (parts > units) parts = units;
  if (parts > 1024) parts = 1024;
  return parts < 2 || tv_pool_threads() < 2 ? 1 : (int)parts;
}

/* The first of `units` units in part `part` of `parts`; part `parts` gives the end. */
static size_t part_start(size_t units, int part, int parts) { return units * (size_t)part / (size_t)parts; }

typedef void (*UnaryKernel)(const float *x, float *out, size_t n);
typedef void (*UnaryBackwardKernel)(const float *x, const float *grad_out, float *grad_in, size_t n);

typedef struct {
  UnaryKernel compute;
  UnaryBackwardKernel compute_backward;
  const float *x, *grad_out;
  float *out;
  size_t n;
} UnaryRun;

static void unary_part(void *context, int part, int parts, int thread) {
  (void)thread;
  const UnaryRun *run = context;
  size_t first = part_start(run->n, part, parts), end = part_start(run->n, part + 1, parts);
  if (run->compute)
    run->compute(run->x + first, run->out + first, end - first);
  else
    run->compute_backward(run->x + first, run->grad_out + first, run->out + first, end - first);
}

static void run_unary(const UnaryRun *run) {
  int parts = parts_for(run->n, 1);
  tv_pool_run(unary_part, (void *)run, parts, tv_pool_threads());
}

static napi_value unary(napi_env env, napi_callback_info info, const char *kernel, UnaryKernel compute) {
  Call call;
  F32 x, out;
  if (!begin_call(env, info, kernel, 2, &call) || !f32_arg(&call, 0, "x", &x) || !f32_arg(&call, 1, "out", &out) ||
      !expect_length(&call, "out", out.length, x.length, "x.length"))
    return NULL;
  UnaryRun run = {compute, NULL, x.data, NULL, out.data, x.length};
  run_unary(&run);
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
  UnaryRun run = {NULL, compute, x.data, grad_out.data, grad_in.data, x.length};
  run_unary(&run);
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
UNARY_ENTRY(relu_entry, "relu", relu_f32)
UNARY_BACKWARD_ENTRY(relu_backward_entry, "reluBackward", relu_backward_f32)

static napi_value select_entry(napi_env env, napi_callback_info info) {
  Call call;
  F32 cond, a, b, out;
  if (!begin_call(env, info, "select", 4, &call) || !f32_arg(&call, 0, "cond", &cond) || !f32_arg(&call, 1, "a", &a) ||
      !f32_arg(&call, 2, "b", &b) || !f32_arg(&call, 3, "out", &out) ||
      !expect_length(&call, "a", a.length, cond.length, "cond.length") ||
      !expect_length(&call, "b", b.length, cond.length, "cond.length") ||
      !expect_length(&call, "out", out.length, cond.length, "cond.length"))
    return NULL;
  select_f32(cond.data, a.data, b.data, out.data, cond.length);
  return NULL;
}

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

/* Split by batch entries, each with its own padding row. */
typedef struct {
  const float *x, *padding;
  size_t batch, heads, queries, keys, window;
  float divisor;
  float *out;
} AttentionSoftmaxRun;

static void attention_softmax_part(void *context, int part, int parts, int thread) {
  (void)thread;
  const AttentionSoftmaxRun *run = context;
  size_t first = part_start(run->batch, part, parts), end = part_start(run->batch, part + 1, parts);
  size_t entry = run->heads * run->queries * run->keys;
  attention_softmax_f32(run->x + first * entry, end - first, run->heads, run->queries, run->keys, run->divisor,
                        run->window, run->padding ? run->padding + first * run->keys : NULL,
                        run->out + first * entry);
}

static napi_value attention_softmax(napi_env env, napi_callback_info info) {
  Call call;
  F32 x, padding, out;
  size_t batch, heads, queries, keys, window;
  double divisor;
  if (!begin_call(env, info, "attentionSoftmax", 9, &call) || !f32_arg(&call, 0, "x", &x) ||
      !size_arg(&call, 1, "batch", &batch) || !size_arg(&call, 2, "heads", &heads) ||
      !size_arg(&call, 3, "queries", &queries) || !size_arg(&call, 4, "keys", &keys) ||
      !number_arg(&call, 5, "divisor", &divisor) || !size_arg(&call, 6, "window", &window) ||
      !optional_f32_arg(&call, 7, "padding", &padding) || !f32_arg(&call, 8, "out", &out))
    return NULL;
  /* In double, as the TypeScript checks multiply: four sizes below 2^31 can overflow size_t's product check. */
  double size = (double)batch * (double)heads * (double)queries * (double)keys;
  if (queries > keys) {
    throw_error(&call, true, "queries (%zu) must not exceed keys (%zu): the queries are the last keys positions",
                queries, keys);
    return NULL;
  }
  if (x.length != size) {
    throw_error(&call, true, "x has %zu elements; expected batch*heads*queries*keys = %.0f", x.length, size);
    return NULL;
  }
  if (out.length != size) {
    throw_error(&call, true, "out has %zu elements; expected batch*heads*queries*keys = %.0f", out.length, size);
    return NULL;
  }
  if (padding.data && !expect_length(&call, "padding", padding.length, batch * keys, "batch*keys")) return NULL;
  AttentionSoftmaxRun run = {x.data, padding.data, batch, heads, queries, keys, window, (float)divisor, out.data};
  tv_pool_run(attention_softmax_part, &run, parts_for(batch, heads * queries * keys), tv_pool_threads());
  return NULL;
}

/* weight, bias and the parameter gradients are optional (null) row-length arrays. */
static bool optional_row_arg(const Call *call, size_t index, const char *name, size_t cols, F32 *out) {
  return optional_f32_arg(call, index, name, out) &&
         (!out->data || expect_length(call, name, out->length, cols, "cols"));
}

typedef struct {
  const float *x, *weight, *bias;
  double eps;
  size_t rows, cols;
  float *out, *mean, *rstd;
} LayerNormRun;

static void layer_norm_part(void *context, int part, int parts, int thread) {
  (void)thread;
  const LayerNormRun *run = context;
  size_t first = part_start(run->rows, part, parts), end = part_start(run->rows, part + 1, parts);
  layer_norm_rows_f32(run->x + first * run->cols, run->weight, run->bias, run->eps, end - first, run->cols,
                      run->out + first * run->cols, run->mean + first, run->rstd + first);
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
  LayerNormRun run = {x.data, weight.data, bias.data, eps, rows, cols, out.data, mean.data, rstd.data};
  tv_pool_run(layer_norm_part, &run, parts_for(rows, cols), tv_pool_threads());
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
  double *weight_sums = grad_weight.data ? calloc(cols, sizeof(double)) : NULL;
  double *bias_sums = grad_bias.data ? calloc(cols, sizeof(double)) : NULL;
  if ((grad_weight.data && !weight_sums) || (grad_bias.data && !bias_sums))
    throw_error(&call, false, "out of memory");
  else
    layer_norm_rows_backward_f32(x.data, weight.data, mean.data, rstd.data, grad_out.data, rows, cols, grad_x.data,
                                 grad_weight.data, grad_bias.data, weight_sums, bias_sums);
  free(weight_sums);
  free(bias_sums);
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
  double *weight_sums = grad_weight.data ? calloc(cols, sizeof(double)) : NULL;
  if (grad_weight.data && !weight_sums)
    throw_error(&call, false, "out of memory");
  else
    rms_norm_rows_backward_f32(x.data, weight.data, rstd.data, grad_out.data, rows, cols, grad_x.data,
                               grad_weight.data, weight_sums);
  free(weight_sums);
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

/* A strided op split along the outermost dim of its merged layout: a part is that layout with the
 * dim cut to its range and the offsets moved to the range's start. b is NULL for a copy. */
typedef struct {
  BinaryOp op;
  const StridedLayout *layout;
  const float *a, *b;
  size_t a_offset, b_offset;
  float *out;
  size_t size;
} StridedRun;

static void strided_part(void *context, int part, int parts, int thread) {
  (void)thread;
  const StridedRun *run = context;
  size_t outer = run->layout->dims[0], inner = run->size / outer;
  size_t first = part_start(outer, part, parts), end = part_start(outer, part + 1, parts);
  StridedLayout layout = *run->layout;
  layout.dims[0] = end - first;
  size_t a_offset = run->a_offset + first * layout.strides[0][0], size = (end - first) * inner;
  float *out = run->out + first * inner;
  if (run->b)
    binary_strided_f32(run->op, &layout, run->a, a_offset, run->b, run->b_offset + first * layout.strides[1][0], out,
                       size);
  else
    copy_strided_f32(&layout, run->a, a_offset, out, size);
}

static void run_strided(const StridedRun *run) {
  int parts = parts_for(run->layout->dims[0], run->size / run->layout->dims[0]);
  tv_pool_run(strided_part, (void *)run, parts, tv_pool_threads());
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
  StridedRun run = {op, &layout, a.data, b.data, a_offset, b_offset, out.data, size};
  run_strided(&run);
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
  StridedRun run = {OP_ADD, &layout, src.data, NULL, src_offset, 0, out.data, size};
  run_strided(&run);
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * bf16Gemm(transposeW, m, n, k, a, w, beta, c) → boolean: C[m×n] = A[m×k]·op(W) + beta·C for
 * bf16 weight bits W (n×k and op(W) = Wᵀ when transposeW, else k×n), dense rows. false, with C
 * untouched, when this CPU has no AVX512-BF16: the caller then takes its converting path.
 */
static napi_value bf16_gemm(napi_env env, napi_callback_info info) {
  Call call;
  bool transpose_w;
  size_t m, n, k, w_length;
  double beta;
  F32 a, c;
  void *w;
  if (!begin_call(env, info, "bf16Gemm", 8, &call) || !bool_arg(&call, 0, "transposeW", &transpose_w) ||
      !size_arg(&call, 1, "m", &m) || !size_arg(&call, 2, "n", &n) || !size_arg(&call, 3, "k", &k) ||
      !f32_arg(&call, 4, "a", &a) ||
      !typed_array_arg(&call, 5, "w", napi_uint16_array, "a Uint16Array", &w, &w_length) ||
      !number_arg(&call, 6, "beta", &beta) || !f32_arg(&call, 7, "c", &c) ||
      !expect_length(&call, "a", a.length, m * k, "m·k") || !expect_length(&call, "w", w_length, n * k, "n·k") ||
      !expect_length(&call, "c", c.length, m * n, "m·n"))
    return NULL;
  if (beta != 0.0 && beta != 1.0) {
    throw_error(&call, true, "beta must be 0 or 1, got %g", beta);
    return NULL;
  }
  napi_value result;
  if (!tv_bf16_gemm_supported()) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  int status = tv_bf16_gemm(transpose_w ? TV_BF16_OUT_IN : TV_BF16_IN_OUT, (int)m, (int)n, (int)k, a.data,
                            k ? (int)k : 1, w, transpose_w ? (k ? (int)k : 1) : (n ? (int)n : 1), NULL, (float)beta,
                            c.data, n ? (int)n : 1);
  if (status == TV_BF16_NO_MEMORY) {
    napi_throw_error(env, NULL, "bf16Gemm: out of memory for the kernel's scratch buffers");
    return NULL;
  }
  if (status != TV_BF16_OK) {
    throw_error(&call, true, "the kernel refused the arguments (status %d)", status);
    return NULL;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

/* ---------------------------------------------------------------------------------------------
 * mapFile(fd, offset, length, path): bytes [offset, offset + length) of the open file `fd`, mapped
 * copy-on-write (MAP_PRIVATE, readable and writable) as an external ArrayBuffer whose finalizer
 * unmaps them once no view of it is left. A write through the buffer stays in this process; the
 * file never changes. Pages are read on first touch; MADV_WILLNEED queues the whole range for
 * read-ahead, because callers map exactly what they are about to load. `path` names the file in
 * errors. As with any mapping, truncating the file underneath makes a later touch past the new
 * end raise SIGBUS; readers that must survive that read instead of mapping.
 */
#ifndef _WIN32

/* Every Node since v14 accepts buffers of 2^32 bytes on 64-bit hosts. Beyond its own limit Node
 * throws after already running the finalizer, so lengths that could reach it are refused here. */
#define MAX_MAPPED_BYTES ((uint64_t)1 << 32)

typedef struct {
  void *base;
  size_t length;
} Mapping;

static void unmap_file(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  Mapping *mapping = hint;
  munmap(mapping->base, mapping->length);
  free(mapping);
}

static bool offset_arg(const Call *call, size_t index, const char *name, uint64_t *value) {
  double number;
  if (!number_arg(call, index, name, &number)) return false;
  if (!(number >= 0 && number <= 9007199254740991.0 && number == floor(number)))
    return throw_error(call, true, "%s must be an integer in [0, 2^53), got %g", name, number);
  *value = (uint64_t)number;
  return true;
}

static bool system_error(const Call *call, const char *what, const char *path, int errnum) {
  char message[1024];
  snprintf(message, sizeof message, "%s: cannot %s %s: %s", call->kernel, what, path, strerror(errnum));
  napi_throw_error(call->env, NULL, message);
  return false;
}

static napi_value map_file(napi_env env, napi_callback_info info) {
  Call call;
  double fd_number;
  uint64_t offset = 0, length = 0; /* = 0: for GCC's maybe-uninitialized only */
  char path[768];
  if (!begin_call(env, info, "mapFile", 4, &call) || !number_arg(&call, 0, "fd", &fd_number) ||
      !offset_arg(&call, 1, "offset", &offset) || !offset_arg(&call, 2, "length", &length))
    return NULL;
  if (napi_get_value_string_utf8(env, call.argv[3], path, sizeof path, NULL) != napi_ok) {
    throw_error(&call, false, "path must be a string");
    return NULL;
  }
  if (!(fd_number >= 0 && fd_number <= INT32_MAX && fd_number == floor(fd_number))) {
    throw_error(&call, true, "fd must be a file descriptor (an integer in [0, 2^31)), got %g", fd_number);
    return NULL;
  }
  if (length > MAX_MAPPED_BYTES) {
    throw_error(&call, true, "length %llu exceeds the %llu bytes one mapping may span", (unsigned long long)length,
                (unsigned long long)MAX_MAPPED_BYTES);
    return NULL;
  }
  int fd = (int)fd_number;
  struct stat file;
  if (fstat(fd, &file) != 0) {
    system_error(&call, "inspect", path, errno);
    return NULL;
  }
  if (offset + length > (uint64_t)file.st_size) {
    throw_error(&call, true, "bytes [%llu, %llu) run past the end of the %lld-byte file %s",
                (unsigned long long)offset, (unsigned long long)(offset + length), (long long)file.st_size, path);
    return NULL;
  }
  napi_value result;
  if (length == 0) return napi_create_arraybuffer(env, 0, NULL, &result) == napi_ok ? result : NULL;

  /* mmap takes page-aligned offsets: map from the page holding `offset` and hand out the rest. */
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  uint64_t lead = offset % page;
  size_t mapped_length = (size_t)(lead + length);
  void *base = mmap(NULL, mapped_length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)(offset - lead));
  if (base == MAP_FAILED) {
    system_error(&call, "map", path, errno);
    return NULL;
  }
  madvise(base, mapped_length, MADV_WILLNEED); /* advice only: a refusal changes no result */
  Mapping *mapping = malloc(sizeof *mapping);
  if (mapping == NULL) {
    munmap(base, mapped_length);
    system_error(&call, "map", path, ENOMEM);
    return NULL;
  }
  mapping->base = base;
  mapping->length = mapped_length;
  napi_status status =
      napi_create_external_arraybuffer(env, (char *)base + lead, (size_t)length, unmap_file, mapping, &result);
  if (status != napi_ok) {
    /* Only this refusal comes before Node takes the mapping; after any other, its finalizer runs. */
    if (status == napi_no_external_buffers_allowed) {
      munmap(base, mapped_length);
      free(mapping);
    }
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) {
      char message[1024];
      snprintf(message, sizeof message, "mapFile: Node refused an ArrayBuffer over the mapping of %s (status %d)",
               path, (int)status);
      napi_throw_error(env, NULL, message);
    }
    return NULL;
  }
  return result;
}

#endif

/* Tensors get fresh output arrays on every op. glibc serves large ones with mmap and hands freed
 * ones back to the kernel, so each output's first touch page-faults and is zeroed: a GEMM's output
 * ran 17% slower than a reused one (172 vs 206 GFLOP/s, 128×768·768×3072). Keeping blocks up to
 * 64 MiB in the heap, and 256 MiB of free heap before trimming, lets outputs reuse warm memory as
 * PyTorch's do; larger blocks (weights) still come from mmap. */
static void keep_freed_memory_warm(void) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  keep_freed_memory_warm();
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
      {"relu", NULL, relu_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reluBackward", NULL, relu_backward_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"select", NULL, select_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmaxRows", NULL, softmax_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmaxRowsBackward", NULL, softmax_rows_backward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attentionSoftmax", NULL, attention_softmax, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNormRows", NULL, layer_norm_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNormRowsBackward", NULL, layer_norm_rows_backward, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rmsNormRows", NULL, rms_norm_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rmsNormRowsBackward", NULL, rms_norm_rows_backward, NULL, NULL, NULL, napi_enumerable, NULL},
#ifndef _WIN32
      {"mapFile", NULL, map_file, NULL, NULL, NULL, napi_enumerable, NULL},
#endif
      {"bf16Gemm", NULL, bf16_gemm, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) != napi_ok)
    return NULL;
  return exports;
}
