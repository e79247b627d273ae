// SPDX-License-Identifier: MIT
/* The thread pool and the small type helpers every kernel relies on. */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tap.h"

struct count_arg {
	atomic_int calls;
	atomic_int seen[8];
	long n;
	atomic_long covered;
};

static void count_fn(void *p, int ith, int nth)
{
	struct count_arg *a = p;
	long lo, hi;

	atomic_fetch_add(&a->calls, 1);
	atomic_fetch_add(&a->seen[ith], 1);
	tm_split(a->n, 32, ith, nth, &lo, &hi);
	atomic_fetch_add(&a->covered, hi - lo);
}

static void test_pool(int nth)
{
	struct tm_pool *pool = tm_pool_create(nth, 0);
	struct count_arg a = { .n = 1000 };
	int bad = 0;

	if (!tap_ok(pool != NULL, "pool of %d threads created", nth))
		return;
	for (int r = 0; r < 2000; r++)
		tm_pool_run(pool, count_fn, &a);
	for (int i = 0; i < nth; i++)
		bad += atomic_load(&a.seen[i]) != 2000;
	tap_ok(atomic_load(&a.calls) == 2000 * nth && !bad,
	       "%d threads: every thread ran every one of 2000 jobs", nth);
	tap_ok(atomic_load(&a.covered) == 2000L * 1000, "%d threads: tm_split covers each item once", nth);
	tm_pool_destroy(pool);
}

static void add_fn(void *p, int ith, int nth)
{
	atomic_fetch_add((atomic_int *)p, 1);
}

/* More threads than CPUs: the pool says so (its threads then sleep instead of spinning) and still runs every job. */
static void test_oversubscribed(void)
{
	cpu_set_t set;
	int ncpu, nth, over;
	struct tm_pool *pool;
	atomic_int calls = 0;

	sched_getaffinity(0, sizeof(set), &set);
	ncpu = CPU_COUNT(&set);
	nth = ncpu * 3 < 1024 ? ncpu * 3 : 1024;
	pool = tm_pool_create(nth, TM_POOL_PIN);
	if (!tap_ok(pool != NULL, "pool of %d threads on %d CPUs created", nth, ncpu))
		return;
	over = tm_pool_oversubscribed(pool);
	for (int r = 0; r < 200; r++)
		tm_pool_run(pool, add_fn, &calls);
	tap_ok(over && atomic_load(&calls) == 200 * nth,
	       "%d threads on %d CPUs: oversubscribed, and every thread ran all 200 jobs", nth, ncpu);
	tm_pool_destroy(pool);
	pool = tm_pool_create(ncpu, TM_POOL_PIN);
	tap_ok(pool && !tm_pool_oversubscribed(pool), "%d threads on %d CPUs: not oversubscribed", ncpu, ncpu);
	tm_pool_destroy(pool);
}

static void cpu_fn(void *p, int ith, int nth)
{
	((int *)p)[ith] = sched_getcpu();
}

/* Pinned pools spread over distinct CPUs, also when created one after another. */
static void test_pinning(void)
{
	cpu_set_t before, after;
	int ncpu, cpus[2], bad = 0;

	sched_getaffinity(0, sizeof(before), &before);
	ncpu = CPU_COUNT(&before);
	for (int round = 0; round < 3; round++) {
		struct tm_pool *pool = tm_pool_create(ncpu >= 2 ? 2 : 1, TM_POOL_PIN);

		tm_pool_run(pool, cpu_fn, cpus);
		if (ncpu >= 2)
			bad += cpus[0] == cpus[1];
		tm_pool_destroy(pool);
	}
	sched_getaffinity(0, sizeof(after), &after);
	if (ncpu >= 2)
		tap_ok(!bad, "pinned 2-thread pools run on two CPUs, every time one is created");
	else
		tap_skip("one CPU here: pinned threads cannot be on distinct CPUs");
	tap_ok(CPU_EQUAL(&before, &after), "destroying a pinned pool restores the creator's affinity");
}

static void test_split(void)
{
	int bad = 0;

	for (long n = 0; n < 300; n++)
		for (int nth = 1; nth <= 5; nth++) {
			long prev = 0, lo, hi;

			for (int i = 0; i < nth; i++) {
				tm_split(n, 32, i, nth, &lo, &hi);
				bad += lo != prev || hi < lo || (lo % 32 && lo != n);
				prev = hi;
			}
			bad += prev != n;
		}
	tap_ok(!bad, "tm_split: contiguous, block-aligned shares that add up to n");
}

static void test_f16(void)
{
	int bad = 0;

	/* every finite half round-trips through float exactly */
	for (uint32_t h = 0; h < 0x10000; h++) {
		if ((h & 0x7c00) == 0x7c00)
			continue;
		bad += tm_f32_to_f16(tm_f16_to_f32((uint16_t)h)) != h;
	}
	tap_ok(!bad, "f16 -> f32 -> f16 round-trips all finite halves (%d bad)", bad);
	tap_ok(tm_f16_to_f32(0x3c00) == 1.0f && tm_f16_to_f32(0xc000) == -2.0f &&
	       tm_f16_to_f32(0x0001) == 0x1p-24f, "f16 decodes 1, -2 and the smallest subnormal");
	tap_ok(tm_f32_to_f16(65520.0f) == 0x7c00 && tm_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00,
	       "f32 -> f16 rounds to nearest even and overflows to inf");
	tap_ok(tm_bf16_to_f32(0x3f80) == 1.0f, "bf16 1.0");
}

static void test_traits(void)
{
	tap_ok(tm_row_bytes(TM_Q4_K, 4096) == 16 * 144 && tm_row_bytes(TM_Q8_0, 64) == 68 &&
	       tm_row_bytes(TM_F16, 3) == 6, "row sizes of q4_K, q8_0, f16");
	tap_ok(tm_row_bytes(TM_Q4_K, 100) == 0 && tm_row_bytes(99, 256) == 0 &&
	       tm_dtype_traits(-1) == NULL, "partial blocks and unknown types are refused");
}

int main(void)
{
	test_pool(1);
	test_pool(2);
	test_pool(4);
	test_pinning();
	test_oversubscribed();
	test_split();
	test_f16();
	test_traits();
	return tap_done();
}
