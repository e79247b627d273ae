/* SPDX-License-Identifier: MIT */
/*
 * What a memory tier can deliver to token generation: streaming read
 * bandwidth over a mapping, the cost of first touch, and the decode ceiling
 * (tokens/s = read bandwidth / weight bytes touched per token).
 * Bandwidths are decimal GB/s (1e9 bytes per second) throughout.
 */
#ifndef TIERMEM_BENCH_H
#define TIERMEM_BENCH_H

#include <stddef.h>

#include "kernels/pool.h"
#include "tiermem/mapping.h"

struct tm_bw {
	int threads;
	size_t prefetch;	/* software prefetch distance, bytes; 0 = none */
	int passes;
	double best_gbs;
	double median_gbs;
};

/*
 * Read the first `bytes` of m with every thread of pool, each streaming its
 * own contiguous share, `passes` times after one warm-up pass.
 */
int tm_bench_read(const struct tm_mapping *m, size_t bytes, struct tm_pool *pool,
		  size_t prefetch, int passes, struct tm_bw *out);

struct tm_touch {
	size_t bytes;
	double ms_per_gib;
	double faults_per_gib;	/* minor + major page faults of this process */
};

/* Touch every 4 KiB of a fresh mapping once (a write if writable, else a read). */
int tm_bench_first_touch(const struct tm_mapping *m, int writable, struct tm_touch *out);

/* tokens/s when every token reads active_bytes at read_gbs; 0 if either is not positive. */
double tm_decode_ceiling(double read_gbs, double active_bytes);

struct tm_ref_tier {
	const char *name;
	double gbs_lo, gbs_hi;	/* published read bandwidth range */
};

/* Reference tiers (HBM3e ... NVMe Gen5), for ceilings next to the measured ones. */
extern const struct tm_ref_tier tm_ref_tiers[];
extern const int tm_n_ref_tiers;

/* The median of n values (sorts v in place). */
double tm_median(double *v, int n);

#endif
