/*
 * A small persistent thread pool for native kernels that split their work into parts. Its threads
 * are created on first use; between runs they yield their cores for a fraction of a millisecond
 * (runs that follow closely find them awake), then sleep on a condition variable, so an idle pool
 * costs nothing while OpenBLAS's own threads (which share the same cores) or JavaScript run.
 */
#ifndef TSVENE_POOL_H
#define TSVENE_POOL_H

/* Runs part `part` of `parts` on pool thread `thread` (0 is the caller's; scratch can be kept per
 * thread). Parts may run in any order. */
typedef void (*TvPoolTask)(void *context, int part, int parts, int thread);

/* How many threads a run may use: the online CPUs, capped by tv_pool_set_max_threads. ≥ 1. */
int tv_pool_threads(void);

/* Caps the threads runs use (≥ 1; values below 1 mean 1). Affects the runs that start after it. */
void tv_pool_set_max_threads(int threads);

/*
 * Runs task(context, p, parts, t) for every p in [0, parts), on threads t in [0, threads), and
 * returns when all parts have finished. The caller is thread 0 and takes parts too: parts go to
 * whichever thread asks first, so a worker that wakes late (or not at all: the pool busy with
 * another caller's run, a thread that could not start) only leaves more of them to the caller.
 */
void tv_pool_run(TvPoolTask task, void *context, int parts, int threads);

#endif
