/*
 * The candidates to tv_bf16_gemm, timed on the shapes of bf16-bench.c: oneDNN's matmul primitive
 * (Debian's libdnnl-dev) with bf16 weights in their Hugging Face layout, with f32 or bf16 source,
 * and with weights reordered to oneDNN's own blocked layout (a load-time packing tsvene does not
 * do: the ceiling), and libxsmm's JIT bf16 kernels (libxsmm-dev) on
 * weights prepacked to their VNNI form, threaded by tsvene's pool. Each result is first compared with
 * tv_bf16_gemm's. Not part of the project build; see native/bench/README.md.
 */
#include <libxsmm.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bf16.h"
#include "../pool.h"

static uint64_t random_state = 0x2545F4914F6CDD1Du;

static float random_float(void) {
  random_state ^= random_state << 13;
  random_state ^= random_state >> 7;
  random_state ^= random_state << 17;
  return (float)((double)(random_state >> 11) / 4503599627370496.0 - 1.0);
}

static uint16_t to_bf16(float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  return (uint16_t)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

static double seconds_on(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* As in bf16-bench.c: --cpu-time times calls by the process's CPU time (with --threads 1). */
static clockid_t call_clock = CLOCK_MONOTONIC;

/* oneDNN's threads are OpenMP's (libgomp). */
extern void omp_set_num_threads(int threads);

static void *checked_malloc(size_t size) {
  void *p = malloc(size);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

typedef struct {
  int layout, m, n, k;
  float *a;
  uint16_t *a_bf16, *w;
  float *c, *reference;
} Problem;

/* Largest |x − reference| relative to the reference's largest magnitude. */
static double difference(const Problem *p) {
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < (size_t)p->m * p->n; i++) {
    double d = fabs((double)p->c[i] - p->reference[i]);
    if (!(d <= worst)) worst = d;
    if (fabs(p->reference[i]) > scale) scale = fabs(p->reference[i]);
  }
  return worst / (scale > 0 ? scale : 1);
}

/* ---- oneDNN ---- */

typedef enum { DNNL_F32_SOURCE, DNNL_BF16_SOURCE, DNNL_BF16_PREPACKED } DnnlVariant;

typedef struct {
  dnnl_primitive_t matmul, source_reorder;
  dnnl_memory_t source_f32, source, weights, destination;
  dnnl_stream_t stream;
} DnnlRun;

static dnnl_engine_t engine;

#define DNNL_OR_FAIL(call) \
  if ((call) != dnnl_success) return 0

/* Builds the primitive; returns 0 when oneDNN has no implementation for the variant. */
static int dnnl_prepare(const Problem *p, DnnlVariant variant, DnnlRun *run, const char **implementation) {
  dnnl_memory_desc_t source_md, source_f32_md, plain_weights_md, weights_md, destination_md;
  dnnl_dims_t source_dims = {p->m, p->k}, weight_dims = {p->k, p->n}, destination_dims = {p->m, p->n};
  dnnl_format_tag_t weight_tag = p->layout == TV_BF16_OUT_IN ? dnnl_ba : dnnl_ab;
  dnnl_data_type_t source_type = variant == DNNL_F32_SOURCE ? dnnl_f32 : dnnl_bf16;
  DNNL_OR_FAIL(dnnl_memory_desc_init_by_tag(&source_md, 2, source_dims, source_type, dnnl_ab));
  DNNL_OR_FAIL(dnnl_memory_desc_init_by_tag(&source_f32_md, 2, source_dims, dnnl_f32, dnnl_ab));
  DNNL_OR_FAIL(dnnl_memory_desc_init_by_tag(&plain_weights_md, 2, weight_dims, dnnl_bf16, weight_tag));
  DNNL_OR_FAIL(dnnl_memory_desc_init_by_tag(&weights_md, 2, weight_dims, dnnl_bf16,
                                            variant == DNNL_BF16_PREPACKED ? dnnl_format_tag_any : weight_tag));
  DNNL_OR_FAIL(dnnl_memory_desc_init_by_tag(&destination_md, 2, destination_dims, dnnl_f32, dnnl_ab));
  dnnl_matmul_desc_t desc;
  DNNL_OR_FAIL(dnnl_matmul_desc_init(&desc, &source_md, &weights_md, NULL, &destination_md));
  dnnl_primitive_desc_t pd;
  DNNL_OR_FAIL(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
  DNNL_OR_FAIL(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, (void *)implementation));
  DNNL_OR_FAIL(dnnl_primitive_create(&run->matmul, pd));
  const dnnl_memory_desc_t *chosen_weights_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  DNNL_OR_FAIL(dnnl_stream_create(&run->stream, engine, dnnl_stream_default_flags));
  DNNL_OR_FAIL(dnnl_memory_create(&run->source_f32, &source_f32_md, engine, p->a));
  DNNL_OR_FAIL(dnnl_memory_create(&run->destination, &destination_md, engine, p->c));
  dnnl_memory_t plain_weights;
  DNNL_OR_FAIL(dnnl_memory_create(&plain_weights, &plain_weights_md, engine, p->w));
  if (variant == DNNL_BF16_PREPACKED) {
    DNNL_OR_FAIL(dnnl_memory_create(&run->weights, chosen_weights_md, engine, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t reorder_pd;
    dnnl_primitive_t reorder;
    DNNL_OR_FAIL(dnnl_reorder_primitive_desc_create(&reorder_pd, &plain_weights_md, engine, chosen_weights_md, engine,
                                                    NULL));
    DNNL_OR_FAIL(dnnl_primitive_create(&reorder, reorder_pd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, plain_weights}, {DNNL_ARG_TO, run->weights}};
    DNNL_OR_FAIL(dnnl_primitive_execute(reorder, run->stream, 2, args));
    DNNL_OR_FAIL(dnnl_stream_wait(run->stream));
  } else {
    run->weights = plain_weights;
  }
  run->source_reorder = NULL;
  run->source = run->source_f32;
  if (variant != DNNL_F32_SOURCE) {
    /* The f32 → bf16 rounding of A is part of every call, as it is in tv_bf16_gemm. */
    DNNL_OR_FAIL(dnnl_memory_create(&run->source, &source_md, engine, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t reorder_pd;
    DNNL_OR_FAIL(dnnl_reorder_primitive_desc_create(&reorder_pd, &source_f32_md, engine, &source_md, engine, NULL));
    DNNL_OR_FAIL(dnnl_primitive_create(&run->source_reorder, reorder_pd));
  }
  return 1;
}

static void dnnl_call(DnnlRun *run) {
  if (run->source_reorder) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, run->source_f32}, {DNNL_ARG_TO, run->source}};
    dnnl_primitive_execute(run->source_reorder, run->stream, 2, args);
  }
  dnnl_exec_arg_t args[3] = {
      {DNNL_ARG_SRC, run->source}, {DNNL_ARG_WEIGHTS, run->weights}, {DNNL_ARG_DST, run->destination}};
  dnnl_primitive_execute(run->matmul, run->stream, 3, args);
  dnnl_stream_wait(run->stream);
}

/*
 * ---- libxsmm 1.17: column-major, so C (m×n row-major) is Cᵀ = op(W)ᵀ·Aᵀ. Its bf16 GEMMs take the
 * first operand only in VNNI form (pairs along k side by side) and do not transpose it, so W is
 * packed into that form once, untimed: a load-time layout change, like oneDNN's prepacked variant.
 */

static uint16_t *libxsmm_pack_weights(const Problem *p) {
  uint16_t *packed = checked_malloc((size_t)p->n * (p->k + 1) * sizeof *packed);
  for (int kk = 0; kk < p->k + (p->k & 1); kk++)
    for (int j = 0; j < p->n; j++) {
      uint16_t value = 0;
      if (kk < p->k) value = p->layout == TV_BF16_OUT_IN ? p->w[(size_t)j * p->k + kk] : p->w[(size_t)kk * p->n + j];
      packed[((size_t)(kk / 2) * p->n + j) * 2 + kk % 2] = value;
    }
  return packed;
}

typedef struct {
  const Problem *problem;
  const uint16_t *packed_weights;
  libxsmm_bsmmfunction kernel, edge_kernel;
} LibxsmmCall;

enum { LIBXSMM_COLUMNS = 64 };

/* The JIT kernels do the blocks of 64 columns (libxsmm's m), split over the threads. */
static void libxsmm_part(void *context, int part, int parts, int thread) {
  (void)thread;
  const LibxsmmCall *call = context;
  const Problem *p = call->problem;
  int blocks = (p->n + LIBXSMM_COLUMNS - 1) / LIBXSMM_COLUMNS;
  for (int b = blocks * part / parts; b < blocks * (part + 1) / parts; b++) {
    int j = b * LIBXSMM_COLUMNS;
    libxsmm_bsmmfunction kernel = j + LIBXSMM_COLUMNS <= p->n ? call->kernel : call->edge_kernel;
    kernel(call->packed_weights + 2 * (size_t)j, p->a_bf16, p->c + j);
  }
}

static void libxsmm_call(const Problem *p, const uint16_t *packed_weights) {
  const libxsmm_blasint ldw = p->n, lda = p->k, ldc = p->n;
  const float one = 1.0f, zero = 0.0f;
  LibxsmmCall call = {p, packed_weights, NULL, NULL};
  call.kernel = libxsmm_bsmmdispatch(LIBXSMM_COLUMNS, p->m, p->k, &ldw, &lda, &ldc, &one, &zero, NULL, NULL);
  call.edge_kernel =
      libxsmm_bsmmdispatch(p->n % LIBXSMM_COLUMNS, p->m, p->k, &ldw, &lda, &ldc, &one, &zero, NULL, NULL);
  for (size_t i = 0; i < (size_t)p->m * p->k; i++) p->a_bf16[i] = to_bf16(p->a[i]);
  tv_pool_run(libxsmm_part, &call, tv_pool_threads(), tv_pool_threads());
}

/* ---- the table ---- */

enum { CANDIDATES = 5 };
static const char *const NAMES[CANDIDATES] = {"tv_bf16_gemm", "dnnl f32 src", "dnnl bf16 src", "dnnl prepacked",
                                              "libxsmm prepacked"};

static void call(int candidate, Problem *p, DnnlRun *runs, const uint16_t *packed_weights) {
  if (candidate == 0)
    tv_bf16_gemm(p->layout, p->m, p->n, p->k, p->a, p->k, p->w, p->layout == TV_BF16_OUT_IN ? p->k : p->n, NULL, 0.0f,
                 p->c, p->n);
  else if (candidate <= 3)
    dnnl_call(&runs[candidate - 1]);
  else
    libxsmm_call(p, packed_weights);
}

static void measure(int layout, int m, int n, int k, int rounds, int with_libxsmm) {
  Problem p = {.layout = layout, .m = m, .n = n, .k = k};
  p.a = checked_malloc((size_t)m * k * sizeof *p.a);
  p.a_bf16 = checked_malloc((size_t)m * k * sizeof *p.a_bf16);
  p.w = checked_malloc((size_t)n * k * sizeof *p.w);
  p.c = checked_malloc((size_t)m * n * sizeof *p.c);
  p.reference = checked_malloc((size_t)m * n * sizeof *p.reference);
  for (size_t i = 0; i < (size_t)m * k; i++) p.a[i] = random_float();
  for (size_t i = 0; i < (size_t)n * k; i++) p.w[i] = to_bf16(random_float());
  call(0, &p, NULL, NULL);
  memcpy(p.reference, p.c, (size_t)m * n * sizeof *p.c);

  uint16_t *packed_weights = with_libxsmm ? libxsmm_pack_weights(&p) : NULL;
  DnnlRun runs[3];
  int available[CANDIDATES] = {1, 0, 0, 0, with_libxsmm};
  const char *implementation[3] = {"", "", ""};
  for (int v = 0; v < 3; v++) available[v + 1] = dnnl_prepare(&p, (DnnlVariant)v, &runs[v], &implementation[v]);
  double best[CANDIDATES], flops = 2.0 * m * n * k;
  for (int i = 0; i < CANDIDATES; i++) best[i] = 1e30;
  char agreement[CANDIDATES][32] = {""};
  for (int i = 1; i < CANDIDATES; i++) {
    if (!available[i]) continue;
    call(i, &p, runs, packed_weights);
    snprintf(agreement[i], sizeof agreement[i], "%.0e", difference(&p));
  }
  /* The fastest single call, the candidates taking turns in stretches of ~50 ms. */
  for (int round = 0; round < rounds; round++)
    for (int i = 0; i < CANDIDATES; i++) {
      if (!available[i]) continue;
      double stretch_start = seconds_on(CLOCK_MONOTONIC);
      do {
        double start = seconds_on(call_clock);
        call(i, &p, runs, packed_weights);
        double seconds = seconds_on(call_clock) - start;
        if (seconds < best[i]) best[i] = seconds;
      } while (seconds_on(CLOCK_MONOTONIC) - stretch_start < 0.05);
    }
  printf("| %s | %d | %d | %d |", layout == TV_BF16_OUT_IN ? "out_in" : "in_out", m, n, k);
  for (int i = 0; i < CANDIDATES; i++) {
    if (available[i])
      printf(" %.1f%s%s%s |", flops / best[i] / 1e9, i ? " (Δ " : "", agreement[i], i ? ")" : "");
    else
      printf(" – |");
  }
  printf("\n");
  static int printed;
  if (!printed++)
    printf("<!-- oneDNN implementations: %s / %s / %s -->\n", implementation[0], implementation[1], implementation[2]);
  fflush(stdout);
  free(p.a);
  free(p.a_bf16);
  free(p.w);
  free(p.c);
  free(p.reference);
  free(packed_weights);
}

int main(int argc, char **argv) {
  int rounds = 3, only_m = 0, threads = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--m") && i + 1 < argc) {
      only_m = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--cpu-time")) {
      call_clock = CLOCK_PROCESS_CPUTIME_ID;
    } else {
      fprintf(stderr, "unknown argument %s; expected --rounds N, --m M, --threads N, --cpu-time\n", argv[i]);
      return 2;
    }
  }
  if (threads > 0) {
    tv_pool_set_max_threads(threads);
    omp_set_num_threads(threads);
  }
  if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return 2;
  libxsmm_init();
  printf("libxsmm target: %s; GFLOP/s of the fastest call (%s time) in %d rounds; threads %d\n",
         libxsmm_get_target_arch(), call_clock == CLOCK_MONOTONIC ? "wall-clock" : "CPU", rounds, tv_pool_threads());
  printf("(Δ: largest difference from tv_bf16_gemm's C, relative to max |C|)\n");
  printf("| layout | m | n | k |");
  for (int i = 0; i < CANDIDATES; i++) printf(" %s |", NAMES[i]);
  printf("\n|---|---|---|---|---|---|---|---|---|\n");
  static const int ms[] = {1, 8, 120, 2048};
  static const int shapes[][2] = {{2304, 768}, {768, 768},   {3072, 768},   {768, 3072},
                                  {4096, 4096}, {11008, 4096}, {4096, 11008}};
  for (int layout = 0; layout < 2; layout++)
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
      if (only_m && ms[mi] != only_m) continue;
      for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        measure(layout, ms[mi], shapes[s][0], shapes[s][1], rounds, 1);
    }
  return 0;
}
