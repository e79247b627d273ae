// SPDX-License-Identifier: MIT
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels/pool.h"

/* About a millisecond of spinning: longer than any gap between two matvecs of one token. */
#define TM_POOL_SPIN 100000

struct tm_worker {
	struct tm_pool *pool;
	int ith;
	pthread_t tid;
};

struct tm_pool {
	int nth;
	unsigned int flags;
	int *cpus;
	struct tm_worker *workers;
	cpu_set_t caller_cpus;		/* the creator's affinity, restored at destroy */
	int pinned_caller;
	int spin;			/* spins before sleeping: 0 when threads outnumber CPUs */

	_Alignas(64) atomic_uint gen;
	atomic_int sleepers;
	atomic_int stop;
	tm_pool_fn fn;
	void *arg;
	_Alignas(64) atomic_int pending;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void futex_wait(atomic_uint *addr, unsigned int val)
{
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void pin_self(const struct tm_pool *pool, int ith)
{
	cpu_set_t set;

	if (!(pool->flags & TM_POOL_PIN) || pool->cpus[ith] < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(pool->cpus[ith], &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static unsigned int wait_for_job(struct tm_pool *pool, unsigned int seen)
{
	unsigned int gen;

	for (int i = 0; i < pool->spin; i++) {
		gen = atomic_load_explicit(&pool->gen, memory_order_acquire);
		if (gen != seen)
			return gen;
		cpu_relax();
	}
	for (;;) {
		atomic_fetch_add(&pool->sleepers, 1);
		gen = atomic_load(&pool->gen);
		if (gen == seen)
			futex_wait(&pool->gen, seen);
		atomic_fetch_sub(&pool->sleepers, 1);
		gen = atomic_load_explicit(&pool->gen, memory_order_acquire);
		if (gen != seen)
			return gen;
	}
}

static void *worker_main(void *p)
{
	struct tm_worker *w = p;
	struct tm_pool *pool = w->pool;
	unsigned int seen = 0;

	pin_self(pool, w->ith);
	for (;;) {
		seen = wait_for_job(pool, seen);
		if (atomic_load(&pool->stop))
			return NULL;
		pool->fn(pool->arg, w->ith, pool->nth);
		atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
	}
}

/* The CPUs in set, in order; -1 where there are fewer than nth. */
static void list_cpus(const cpu_set_t *set, int *cpus, int nth)
{
	int k = 0;

	for (int i = 0; i < nth; i++)
		cpus[i] = -1;
	for (int c = 0; c < CPU_SETSIZE && k < nth; c++)
		if (CPU_ISSET(c, set))
			cpus[k++] = c;
}

struct tm_pool *tm_pool_create(int nthreads, unsigned int flags)
{
	struct tm_pool *pool;
	int i;

	if (nthreads < 1 || nthreads > 1024) {
		errno = EINVAL;
		return NULL;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->nth = nthreads;
	pool->flags = flags;
	pool->cpus = calloc(nthreads, sizeof(*pool->cpus));
	pool->workers = calloc(nthreads, sizeof(*pool->workers));
	if (!pool->cpus || !pool->workers)
		goto err_free;
	/*
	 * Workers inherit the creator's affinity, so they start before the
	 * creator pins itself; destroy gives the creator its affinity back, so
	 * a later pool (or anything else) is not confined to one CPU.
	 */
	if (sched_getaffinity(0, sizeof(pool->caller_cpus), &pool->caller_cpus))
		CPU_ZERO(&pool->caller_cpus);
	list_cpus(&pool->caller_cpus, pool->cpus, nthreads);
	/*
	 * More threads than CPUs: a spinning thread would hold a CPU that the
	 * thread it waits for needs (measured: -t 64 on 2 CPUs decoded at 0.6
	 * tok/s instead of ~40), so idle threads sleep at once and the caller
	 * yields while it waits.
	 */
	pool->spin = CPU_COUNT(&pool->caller_cpus) >= nthreads ? TM_POOL_SPIN : 0;
	for (i = 1; i < nthreads; i++) {
		pool->workers[i].pool = pool;
		pool->workers[i].ith = i;
		if (pthread_create(&pool->workers[i].tid, NULL, worker_main, &pool->workers[i]))
			goto err_stop;
	}
	if ((flags & TM_POOL_PIN) && pool->cpus[0] >= 0) {
		pin_self(pool, 0);
		pool->pinned_caller = 1;
	}
	return pool;

err_stop:
	pool->nth = i;
	tm_pool_destroy(pool);
	errno = EAGAIN;
	return NULL;
err_free:
	free(pool->cpus);
	free(pool->workers);
	free(pool);
	errno = ENOMEM;
	return NULL;
}

void tm_pool_destroy(struct tm_pool *pool)
{
	if (!pool)
		return;
	atomic_store(&pool->stop, 1);
	atomic_fetch_add(&pool->gen, 1);
	futex_wake_all(&pool->gen);
	for (int i = 1; i < pool->nth; i++)
		pthread_join(pool->workers[i].tid, NULL);
	if (pool->pinned_caller)
		sched_setaffinity(0, sizeof(pool->caller_cpus), &pool->caller_cpus);
	free(pool->cpus);
	free(pool->workers);
	free(pool);
}

int tm_pool_threads(const struct tm_pool *pool)
{
	return pool ? pool->nth : 1;
}

void tm_pool_run(struct tm_pool *pool, tm_pool_fn fn, void *arg)
{
	if (!pool || pool->nth == 1) {
		fn(arg, 0, 1);
		return;
	}
	pool->fn = fn;
	pool->arg = arg;
	atomic_store_explicit(&pool->pending, pool->nth - 1, memory_order_relaxed);
	atomic_fetch_add(&pool->gen, 1);
	if (atomic_load(&pool->sleepers))
		futex_wake_all(&pool->gen);
	fn(arg, 0, pool->nth);
	while (atomic_load_explicit(&pool->pending, memory_order_acquire)) {
		if (pool->spin)
			cpu_relax();
		else
			sched_yield();
	}
}

int tm_pool_oversubscribed(const struct tm_pool *pool)
{
	return pool && !pool->spin;
}
