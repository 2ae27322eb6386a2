/*
 * The thread pool of pool.h. After a run a worker watches for the next one for
 * WORKER_SPIN_NANOSECONDS, then blocks in pthread_cond_wait: a decoding step posts a run every few
 * tens of microseconds (one per GEMV), and a worker woken from sleep for each of them arrives late
 * and leaves its parts to the caller (one thread's bandwidth). It watches with sched_yield, not a
 * pause loop, so that the JavaScript thread, BLAS's threads or another process that want its core
 * get it (a pause loop made W4 slower on a busy machine); once the runs stop, the idle pool takes
 * no CPU time at all. A run's parts are handed out one at a time under state_lock to the caller
 * and to the workers that are awake or wake up for it: on a VM, waking a sleeping thread costs
 * tens of microseconds, as long as a whole GEMV, so nothing waits for a worker that has not
 * started yet. The caller, which is blocked in the run anyway, spins a little before sleeping
 * while workers finish, to spare itself the same wake-up.
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

/* How long the caller spins for the workers' last parts before it sleeps. */
#define CALLER_SPIN_NANOSECONDS 200000

/* How long a worker watches for the next run before it sleeps: a decoding step's products come
 * tens of microseconds apart (W4: 90% of the gaps under 105 µs on a busy machine). */
#define WORKER_SPIN_NANOSECONDS 200000

/* Read and written atomically. */
static int max_threads_cap = MAX_THREADS;

/* Held for a whole run: the pool serves one caller at a time (others run their parts alone). */
static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;

/* Guards everything below; finished_parts is also read atomically by the spinning caller, and
 * run_generation by the spinning workers (both written atomically under the lock). */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t run_posted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t parts_finished = PTHREAD_COND_INITIALIZER;
static int started_workers;
static unsigned long run_generation;
static unsigned long worker_start_generation[MAX_THREADS];
static TvPoolTask run_task;
static void *run_context;
static int run_parts, run_threads, next_part, finished_parts;

/* Called with state_lock held; returns with it held. Runs parts of the current run until none is
 * left, or until another run has replaced it (the last part finished let its caller go on). */
static void take_parts(int thread, unsigned long generation) {
  while (run_generation == generation && next_part < run_parts) {
    TvPoolTask task = run_task;
    void *context = run_context;
    int parts = run_parts, part = next_part++;
    pthread_mutex_unlock(&state_lock);
    task(context, part, parts, thread);
    pthread_mutex_lock(&state_lock);
    if (__atomic_add_fetch(&finished_parts, 1, __ATOMIC_RELEASE) == parts) pthread_cond_signal(&parts_finished);
  }
}

static long long elapsed_nanoseconds(const struct timespec *since) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - since->tv_sec) * 1000000000LL + (now.tv_nsec - since->tv_nsec);
}

/* Called with state_lock held; returns with it held, once a run newer than `seen` is posted. */
static void await_run(unsigned long seen) {
  pthread_mutex_unlock(&state_lock);
  struct timespec spin_start;
  clock_gettime(CLOCK_MONOTONIC, &spin_start);
  while (__atomic_load_n(&run_generation, __ATOMIC_ACQUIRE) == seen &&
         elapsed_nanoseconds(&spin_start) < WORKER_SPIN_NANOSECONDS)
    sched_yield();
  pthread_mutex_lock(&state_lock);
  while (run_generation == seen) pthread_cond_wait(&run_posted, &state_lock);
}

static void *worker_main(void *argument) {
  int index = (int)(intptr_t)argument;
  pthread_mutex_lock(&state_lock);
  unsigned long seen = worker_start_generation[index];
  for (;;) {
    await_run(seen);
    seen = run_generation;
    if (index < run_threads) take_parts(index, seen);
  }
  return NULL; /* never reached; GCC asks for it */
}

/* A child of fork() has none of the workers: it starts its own, from a pool state reset to empty. */
static void reset_in_child(void) {
  pthread_mutex_init(&run_lock, NULL);
  pthread_mutex_init(&state_lock, NULL);
  pthread_cond_init(&run_posted, NULL);
  pthread_cond_init(&parts_finished, NULL);
  started_workers = 0;
  run_parts = next_part = finished_parts = 0;
}

static void register_fork_handler(void) { pthread_atfork(NULL, NULL, reset_in_child); }

/* Called with run_lock held. Signals stay with the process's own threads (Node's among them). */
static void start_workers(int wanted) {
  static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;
  pthread_once(&fork_handler_once, register_fork_handler);
  if (wanted > MAX_THREADS - 1) wanted = MAX_THREADS - 1;
  while (started_workers < wanted) {
    int index = started_workers + 1;
    pthread_mutex_lock(&state_lock);
    worker_start_generation[index] = run_generation;
    pthread_mutex_unlock(&state_lock);
    sigset_t all_signals, previous;
    sigfillset(&all_signals);
    pthread_sigmask(SIG_SETMASK, &all_signals, &previous);
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int failed = pthread_create(&thread, &attributes, worker_main, (void *)(intptr_t)index);
    pthread_attr_destroy(&attributes);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (failed) return;
    pthread_mutex_lock(&state_lock);
    started_workers = index;
    pthread_mutex_unlock(&state_lock);
  }
}

int tv_pool_threads(void) {
  static int online_cpus;
  int online = __atomic_load_n(&online_cpus, __ATOMIC_RELAXED);
  if (online == 0) {
    long count = sysconf(_SC_NPROCESSORS_ONLN);
    online = count < 1 ? 1 : count > MAX_THREADS ? MAX_THREADS : (int)count;
    __atomic_store_n(&online_cpus, online, __ATOMIC_RELAXED);
  }
  int cap = __atomic_load_n(&max_threads_cap, __ATOMIC_RELAXED);
  return online < cap ? online : cap;
}

void tv_pool_set_max_threads(int threads) {
  int cap = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
  __atomic_store_n(&max_threads_cap, cap, __ATOMIC_RELAXED);
}

void tv_pool_run(TvPoolTask task, void *context, int parts, int threads) {
  if (threads > parts) threads = parts;
  if (threads <= 1 || pthread_mutex_trylock(&run_lock) != 0) {
    for (int part = 0; part < parts; part++) task(context, part, parts, 0);
    return;
  }
  start_workers(threads - 1);
  pthread_mutex_lock(&state_lock);
  run_task = task;
  run_context = context;
  run_parts = parts;
  run_threads = started_workers + 1 < threads ? started_workers + 1 : threads;
  next_part = 0;
  finished_parts = 0;
  unsigned long generation = run_generation + 1;
  __atomic_store_n(&run_generation, generation, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&state_lock);
  /* After the unlock, so that a woken worker does not block on the mutex at once. */
  pthread_cond_broadcast(&run_posted);

  pthread_mutex_lock(&state_lock);
  take_parts(0, generation);
  pthread_mutex_unlock(&state_lock);
  struct timespec spin_start;
  clock_gettime(CLOCK_MONOTONIC, &spin_start);
  while (__atomic_load_n(&finished_parts, __ATOMIC_ACQUIRE) < parts &&
         elapsed_nanoseconds(&spin_start) < CALLER_SPIN_NANOSECONDS) {
  }
  pthread_mutex_lock(&state_lock);
  while (finished_parts < parts) pthread_cond_wait(&parts_finished, &state_lock);
  pthread_mutex_unlock(&state_lock);
  pthread_mutex_unlock(&run_lock);
}
