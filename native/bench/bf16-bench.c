/*
 * Checks tv_bf16_gemm (native/bf16.c) against a float64 product of the same bf16-rounded inputs,
 * then times it against OpenBLAS's cblas_sgemm on float32 copies of the weights. How to build and
 * run: native/bench/README.md.
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../bf16.h"
#include "../pool.h"

static _Thread_local uint64_t random_state = 0x9E3779B97F4A7C15u;

static uint64_t next_random(void) {
  random_state ^= random_state << 13;
  random_state ^= random_state >> 7;
  random_state ^= random_state << 17;
  return random_state;
}

/* Uniform in [-1, 1). */
static float random_float(void) { return (float)((double)(next_random() >> 11) / 4503599627370496.0 - 1.0); }

static int random_below(int bound) { return (int)(next_random() % (uint64_t)bound); }

/* c10::BFloat16's rounding: to nearest even, any NaN to 0x7FC0. */
static uint16_t to_bf16(float x) {
  if (isnan(x)) return 0x7FC0;
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  return (uint16_t)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

static float from_bf16(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float x;
  memcpy(&x, &bits, sizeof x);
  return x;
}

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* With --cpu-time, calls are timed by the process's CPU time, which preemption by other processes
 * on a shared machine does not inflate; meant for --threads 1, where no thread waits or spins. */
static clockid_t call_clock = CLOCK_MONOTONIC;

static double call_seconds(void) {
  struct timespec t;
  clock_gettime(call_clock, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *checked_malloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p) {
    fprintf(stderr, "out of memory (%zu bytes)\n", size);
    exit(2);
  }
  return p;
}

/* ---- Part 1: correctness. ---- */

typedef struct {
  int layout, m, n, k, lda, ldw, ldc, with_bias;
  float beta;
} Case;

/* Runs one case; returns the largest |error| / (Σ|a||w| + |bias| + |beta·c|), or a negative value
 * (and prints why) when something other than the numbers is wrong. */
static double check_case(const Case *t) {
  int w_rows = t->layout == TV_BF16_OUT_IN ? t->n : t->k;
  size_t a_size = (size_t)t->m * t->lda, w_size = (size_t)w_rows * t->ldw, c_size = (size_t)t->m * t->ldc;
  float *a = checked_malloc(a_size * sizeof *a);
  uint16_t *w = checked_malloc(w_size * sizeof *w);
  float *bias = checked_malloc((size_t)t->n * sizeof *bias);
  float *c = checked_malloc(c_size * sizeof *c), *c0 = checked_malloc(c_size * sizeof *c0);
  for (size_t i = 0; i < a_size; i++) a[i] = random_float() * 4.0f;
  for (size_t i = 0; i < w_size; i++) w[i] = to_bf16(random_float());
  for (int j = 0; j < t->n; j++) bias[j] = random_float();
  for (size_t i = 0; i < c_size; i++) c0[i] = t->beta == 0.0f ? NAN : random_float();
  memcpy(c, c0, c_size * sizeof *c);

  int status = tv_bf16_gemm(t->layout, t->m, t->n, t->k, a, t->lda, w, t->ldw, t->with_bias ? bias : NULL, t->beta, c,
                            t->ldc);
  double worst = 0.0;
  if (status != TV_BF16_OK) {
    printf("  status %d\n", status);
    worst = -1.0;
  }
  for (int i = 0; i < t->m && worst >= 0.0; i++) {
    for (int j = 0; j < t->ldc; j++) {
      float got = c[(size_t)i * t->ldc + j];
      if (j >= t->n) {
        if (memcmp(&got, &c0[(size_t)i * t->ldc + j], sizeof got) != 0) {
          printf("  C[%d][%d] past n was written\n", i, j);
          worst = -1.0;
        }
        continue;
      }
      double sum = 0.0, scale = 0.0;
      for (int p = 0; p < t->k; p++) {
        double x = from_bf16(to_bf16(a[(size_t)i * t->lda + p]));
        double y = from_bf16(t->layout == TV_BF16_OUT_IN ? w[(size_t)j * t->ldw + p] : w[(size_t)p * t->ldw + j]);
        sum += x * y;
        scale += fabs(x * y);
      }
      if (t->with_bias) {
        sum += bias[j];
        scale += fabs(bias[j]);
      }
      if (t->beta != 0.0f) {
        double old = c0[(size_t)i * t->ldc + j];
        sum += t->beta * old;
        scale += fabs(t->beta * old);
      }
      double error = fabs(got - sum) / (scale > 0.0 ? scale : 1.0);
      if (!(error <= 1.0)) {
        printf("  C[%d][%d] = %g, expected %g\n", i, j, got, sum);
        worst = -1.0;
        break;
      }
      if (error > worst) worst = error;
    }
  }
  free(a);
  free(w);
  free(bias);
  free(c);
  free(c0);
  return worst;
}

static int run_checks(int random_cases) {
  static const int sizes[] = {1, 2, 3, 5, 6, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129, 385, 770, 1100};
  const int size_count = (int)(sizeof sizes / sizeof sizes[0]);
  /* Shapes the random ones rarely reach: IN_OUT's direct path over several column blocks, and the
   * packed path over several panels of A rows (split over n, then over m). */
  static const Case fixed[] = {
      {.layout = TV_BF16_IN_OUT, .m = 32, .n = 3000, .k = 33, .lda = 33, .ldw = 3000, .ldc = 3000, .beta = 1.0f},
      {.layout = TV_BF16_IN_OUT, .m = 31, .n = 3013, .k = 18, .lda = 20, .ldw = 3020, .ldc = 3015, .with_bias = 1},
      {.layout = TV_BF16_IN_OUT, .m = 1, .n = 70001, .k = 3, .lda = 3, .ldw = 70001, .ldc = 70001, .with_bias = 1},
      {.layout = TV_BF16_OUT_IN, .m = 1600, .n = 140, .k = 41, .lda = 41, .ldw = 41, .ldc = 140, .beta = 1.0f},
      {.layout = TV_BF16_IN_OUT, .m = 3203, .n = 33, .k = 800, .lda = 800, .ldw = 33, .ldc = 33, .with_bias = 1},
  };
  const int fixed_count = (int)(sizeof fixed / sizeof fixed[0]);
  int failures = 0;
  double worst = 0.0;
  for (int index = 0; index < fixed_count + random_cases; index++) {
    Case t;
    t.layout = index % 2;
    t.m = index % 7 == 0 ? 1 : sizes[random_below(size_count)];
    t.n = sizes[random_below(size_count)];
    t.k = sizes[random_below(size_count)];
    if (index % 5 == 0) t.m += 40 + random_below(100); /* the packed path */
    int slack = index % 3 == 0 ? random_below(9) : 0;
    t.lda = t.k + slack;
    t.ldw = (t.layout == TV_BF16_OUT_IN ? t.k : t.n) + slack;
    t.ldc = t.n + slack;
    t.with_bias = random_below(2);
    t.beta = (float[]){0.0f, 1.0f, 0.5f}[random_below(3)];
    if (index < fixed_count) t = fixed[index];
    double error = check_case(&t);
    if (error < 0.0 || error > 1e-5) {
      printf("FAIL layout %d m %d n %d k %d lda %d ldw %d ldc %d bias %d beta %g: relative error %g\n", t.layout, t.m,
             t.n, t.k, t.lda, t.ldw, t.ldc, t.with_bias, t.beta, error);
      failures++;
    }
    if (error > worst) worst = error;
  }
  printf("%d fixed and %d random cases, %d failed; largest error relative to sum |a||w|: %.2e\n", fixed_count,
         random_cases, failures, worst);
  return failures;
}

/* A product large enough to use every thread, checked against the reference; 1 when it matches. */
static int threaded_product_matches(void) {
  Case t = {.layout = TV_BF16_OUT_IN, .m = 64, .n = 256, .k = 256, .lda = 256, .ldw = 256, .ldc = 256};
  double error = check_case(&t);
  return error >= 0.0 && error <= 1e-5;
}

static void *repeat_threaded_products(void *failures) {
  for (int i = 0; i < 20; i++)
    if (!threaded_product_matches()) ++*(int *)failures;
  return NULL;
}

/* Two callers at once: one gets the pool, the other runs its parts alone; both get right answers. */
static int concurrent_callers_agree(void) {
  pthread_t other;
  int failures[2] = {0, 0};
  if (pthread_create(&other, NULL, repeat_threaded_products, &failures[1]) != 0) return 0;
  repeat_threaded_products(&failures[0]);
  pthread_join(other, NULL);
  return failures[0] == 0 && failures[1] == 0;
}

/* The pool's workers do not survive fork(): the child must start its own rather than wait forever. */
static int threads_survive_fork(void) {
  if (!threaded_product_matches()) return 0;
  pid_t child = fork();
  if (child < 0) return 0;
  if (child == 0) {
    alarm(20);
    _exit(threaded_product_matches() ? 0 : 1);
  }
  int status;
  return waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* After a threaded product, the idle pool must sleep: the process uses (almost) no CPU for 200 ms. */
static int idle_pool_sleeps(void) {
  if (!threaded_product_matches()) return 0;
  struct timespec before, after;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &before);
  usleep(200000);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &after);
  double busy = (after.tv_sec - before.tv_sec) + (after.tv_nsec - before.tv_nsec) * 1e-9;
  return busy < 0.005;
}

/* Contract checks beyond the numbers: bad arguments, empty shapes, NaN, fork, an idle pool. */
static int run_contract_checks(void) {
  int failures = 0;
  float a[4] = {1, 2, 3, NAN}, c[4] = {7, 7, 7, 7}, bias[2] = {0.5f, -0.5f};
  uint16_t w[4] = {to_bf16(1), to_bf16(2), to_bf16(3), to_bf16(4)};
#define EXPECT(condition)                                 \
  if (!(condition)) {                                     \
    printf("FAIL contract: %s (line %d)\n", #condition, __LINE__); \
    failures++;                                           \
  }
  EXPECT(tv_bf16_gemm(2, 1, 1, 1, a, 1, w, 1, NULL, 0, c, 1) == TV_BF16_BAD_ARGUMENT);
  EXPECT(tv_bf16_gemm(0, -1, 1, 1, a, 1, w, 1, NULL, 0, c, 1) == TV_BF16_BAD_ARGUMENT);
  EXPECT(tv_bf16_gemm(0, 1, 2, 2, a, 1, w, 2, NULL, 0, c, 2) == TV_BF16_BAD_ARGUMENT);   /* lda < k */
  EXPECT(tv_bf16_gemm(1, 1, 2, 2, a, 2, w, 1, NULL, 0, c, 2) == TV_BF16_BAD_ARGUMENT);   /* ldw < n */
  EXPECT(tv_bf16_gemm(0, 1, 2, 2, a, 2, w, 2, NULL, 0, c, 1) == TV_BF16_BAD_ARGUMENT);   /* ldc < n */
  EXPECT(tv_bf16_gemm(0, 1, 2, 2, NULL, 2, w, 2, NULL, 0, c, 2) == TV_BF16_BAD_ARGUMENT); /* no A */
  EXPECT(c[0] == 7 && c[1] == 7);
  EXPECT(tv_bf16_gemm(0, 0, 2, 2, NULL, 0, NULL, 0, NULL, 0, NULL, 0) == TV_BF16_OK);
  EXPECT(tv_bf16_gemm(0, 2, 2, 0, NULL, 0, NULL, 0, bias, 1, c, 2) == TV_BF16_OK);         /* k = 0: C += bias */
  EXPECT(c[0] == 7.5f && c[1] == 6.5f && c[2] == 7.5f && c[3] == 6.5f);
  EXPECT(tv_bf16_gemm(1, 2, 2, 0, NULL, 0, NULL, 0, NULL, 0, c, 2) == TV_BF16_OK);         /* k = 0, beta 0 */
  EXPECT(c[0] == 0 && c[3] == 0);
  /* Row 1 of A holds a NaN: row 0 of C stays finite, row 1 is NaN. */
  EXPECT(tv_bf16_gemm(0, 2, 2, 2, a, 2, w, 2, NULL, 0, c, 2) == TV_BF16_OK);
  EXPECT(c[0] == 5 && c[1] == 11 && isnan(c[2]) && isnan(c[3]));
  /* bf16 subnormals count as zero (vdpbf16ps): 2^-133 · 2^100 gives 0, not 2^-33. */
  float subnormal = 0x1p-133f, product = -1.0f;
  uint16_t big = to_bf16(0x1p100f);
  EXPECT(tv_bf16_gemm(0, 1, 1, 1, &subnormal, 1, &big, 1, NULL, 0, &product, 1) == TV_BF16_OK && product == 0.0f);
  EXPECT(concurrent_callers_agree());
  EXPECT(threads_survive_fork());
  EXPECT(idle_pool_sleeps());
#undef EXPECT
  printf("contract checks: %d failed\n", failures);
  return failures;
}

/* ---- Part 2: GFLOP/s against sgemm. ---- */

enum { BF16, SGEMM, SGEMV, VARIANTS };

static void call_variant(int variant, int layout, int m, int n, int k, const float *a, const uint16_t *w,
                         const float *w32, float *c) {
  int ldw = layout == TV_BF16_OUT_IN ? k : n;
  if (variant == BF16) {
    tv_bf16_gemm(layout, m, n, k, a, k, w, ldw, NULL, 0.0f, c, n);
  } else if (variant == SGEMM) {
    enum CBLAS_TRANSPOSE transpose_w = layout == TV_BF16_OUT_IN ? CblasTrans : CblasNoTrans;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose_w, m, n, k, 1.0f, a, k, w32, ldw, 0.0f, c, n);
  } else if (layout == TV_BF16_OUT_IN) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w32, k, a, 1, 0.0f, c, 1);
  } else {
    cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.0f, w32, n, a, 1, 0.0f, c, 1);
  }
}

/* GFLOP/s of the fastest single call of each variant (sgemv only when m = 1), the variants taking
 * turns in `rounds` stretches of ~50 ms. */
static void time_shape(int layout, int m, int n, int k, int rounds, double gflops[VARIANTS]) {
  float *a = checked_malloc((size_t)m * k * sizeof *a);
  uint16_t *w = checked_malloc((size_t)n * k * sizeof *w);
  float *w32 = checked_malloc((size_t)n * k * sizeof *w32);
  float *c = checked_malloc((size_t)m * n * sizeof *c);
  for (size_t i = 0; i < (size_t)m * k; i++) a[i] = random_float();
  for (size_t i = 0; i < (size_t)n * k; i++) w32[i] = from_bf16(w[i] = to_bf16(random_float()));
  int variants = m == 1 ? VARIANTS : SGEMV;
  double fastest[VARIANTS] = {1e30, 1e30, 1e30};
  for (int round = -1; round < rounds; round++)
    for (int variant = 0; variant < variants; variant++) {
      double stretch_start = now_seconds();
      do {
        double start = call_seconds();
        call_variant(variant, layout, m, n, k, a, w, w32, c);
        double seconds = call_seconds() - start;
        if (round >= 0 && seconds < fastest[variant]) fastest[variant] = seconds;
      } while (now_seconds() - stretch_start < 0.05);
    }
  free(a);
  free(w);
  free(w32);
  free(c);
  for (int variant = 0; variant < VARIANTS; variant++)
    gflops[variant] = variant < variants ? 2.0 * m * n * k / fastest[variant] / 1e9 : 0.0;
}

static void run_timings(int rounds, int only_m) {
  static const int ms[] = {1, 8, 120, 2048};
  static const int shapes[][2] = {{2304, 768}, {768, 768},   {3072, 768},   {768, 3072},
                                  {4096, 4096}, {11008, 4096}, {4096, 11008}};
  printf("\nGFLOP/s of the fastest call (%s time) in %d alternating stretches of 50 ms; threads %d\n",
         call_clock == CLOCK_MONOTONIC ? "wall-clock" : "CPU", rounds, tv_pool_threads());
  printf("| layout | m | n | k | bf16 | sgemm | bf16/sgemm | sgemv | bf16/sgemv |\n|---|---|---|---|---|---|---|---|---|\n");
  for (int layout = 0; layout < 2; layout++)
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
      int m = only_m ? only_m : ms[mi];
      if (only_m && mi > 0) break;
      for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        double g[VARIANTS];
        time_shape(layout, m, shapes[s][0], shapes[s][1], rounds, g);
        printf("| %s | %d | %d | %d | %.1f | %.1f | %.2f |", layout == TV_BF16_OUT_IN ? "out_in" : "in_out", m,
               shapes[s][0], shapes[s][1], g[BF16], g[SGEMM], g[BF16] / g[SGEMM]);
        if (g[SGEMV] > 0)
          printf(" %.1f | %.2f |\n", g[SGEMV], g[BF16] / g[SGEMV]);
        else
          printf(" – | – |\n");
        fflush(stdout);
      }
    }
}

int main(int argc, char **argv) {
  int check = 1, bench = 1, rounds = 5, cases = 400, only_m = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--check-only")) {
      bench = 0;
    } else if (!strcmp(argv[i], "--bench-only")) {
      check = 0;
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      int threads = atoi(argv[++i]);
      tv_pool_set_max_threads(threads);
      openblas_set_num_threads(threads);
    } else if (!strcmp(argv[i], "--cpu-time")) {
      call_clock = CLOCK_PROCESS_CPUTIME_ID;
    } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--cases") && i + 1 < argc) {
      cases = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--m") && i + 1 < argc) { /* one m (any) instead of the list */
      only_m = atoi(argv[++i]);
    } else {
      fprintf(stderr,
              "unknown argument %s; expected --check-only, --bench-only, --threads N, --cpu-time, --rounds N, --cases N, "
              "--m M\n",
              argv[i]);
      return 2;
    }
  }
  if (!tv_bf16_gemm_supported()) {
    printf("this CPU has no AVX512-BF16: tv_bf16_gemm returns TV_BF16_UNSUPPORTED\n");
    return 1;
  }
  int failures = 0;
  if (check) failures = run_contract_checks() + run_checks(cases);
  if (bench) run_timings(rounds, only_m);
  return failures ? 1 : 0;
}
