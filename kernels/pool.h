/* SPDX-License-Identifier: MIT */
/*
 * A fixed pool of pinned threads for kernels that must keep every core
 * streaming memory. Decode calls tm_pool_run() hundreds of times per token, so
 * a hand-off costs a cache-line write, not a syscall: idle workers spin for a
 * while before they sleep on a futex.
 */
#ifndef TIERMEM_KERNELS_POOL_H
#define TIERMEM_KERNELS_POOL_H

struct tm_pool;

/* Called once on every thread of the pool; ith is 0 (the caller) .. nth-1. */
typedef void (*tm_pool_fn)(void *arg, int ith, int nth);

enum {
	TM_POOL_PIN = 1 << 0,	/* pin thread i to the i-th CPU the creator may use;
				 * the creator gets its affinity back at destroy */
};

/* nthreads counts the calling thread; 1 makes a pool that runs inline. */
struct tm_pool *tm_pool_create(int nthreads, unsigned int flags);
void tm_pool_destroy(struct tm_pool *pool);
int tm_pool_threads(const struct tm_pool *pool);
/*
 * Nonzero when the pool has more threads than the CPUs its creator may use:
 * its threads then sleep and yield instead of spinning (slower hand-offs,
 * but no thread holds a CPU the one it waits for needs).
 */
int tm_pool_oversubscribed(const struct tm_pool *pool);

/* Run fn on all threads and wait for all of them. Not reentrant. */
void tm_pool_run(struct tm_pool *pool, tm_pool_fn fn, void *arg);

/* The share [*lo, *hi) of n items for thread ith of nth, in blocks of align items. */
static inline void tm_split(long n, long align, int ith, int nth, long *lo, long *hi)
{
	long blocks = (n + align - 1) / align;
	long b0 = blocks * ith / nth, b1 = blocks * (ith + 1) / nth;

	*lo = b0 * align < n ? b0 * align : n;
	*hi = b1 * align < n ? b1 * align : n;
}

#endif
