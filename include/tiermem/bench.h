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
 * own contiguous share, `passes` times after one warm-up pass; with a prefetch
 * distance, each line is prefetched.
 */
int tm_bench_read(const struct tm_mapping *m, size_t bytes, struct tm_pool *pool,
		  size_t prefetch, int passes, struct tm_bw *out);

/* A span of memory to read. */
struct tm_range {
	const void *p;
	size_t n;
};

/*
 * Read n ranges once with every thread of pool, threads taking 2 MiB chunks
 * from a shared cursor: the read loop of tm_bench_read, over any memory (the
 * weights and KV cache a decode step just read, for tm_bench_decode).
 * prefetch and every as tm_stream_read's (kernels/stream.h).
 */
void tm_read_ranges(struct tm_pool *pool, const struct tm_range *r, int n, size_t prefetch, size_t every);

/* The read loops of tm_read_fastest: without prefetch, each line, one line per 2 KiB. */
#define TM_READ_LOOPS 3
/*
 * The read ceiling of n ranges: tm_read_ranges once per loop, without
 * software prefetch, prefetching each line `prefetch` bytes ahead, and one
 * line per 2 KiB as far ahead (only the first with prefetch 0), loop `first`
 * first (turn it from call to call), and the fastest counts: its wall and
 * process CPU seconds into t and cpu (either may be NULL). Returns its index
 * (0, 1, 2 as listed).
 */
int tm_read_fastest(struct tm_pool *pool, const struct tm_range *r, int n, size_t prefetch, int first,
		    double *t, double *cpu);
/* This process's CPU time, seconds. */
double tm_cpu_now(void);

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

/*
 * The share of the read ceiling a decode step reaches, measured in-process:
 * n_tokens times, one decode step (greedy, from c's current position), then a
 * read of the same number of bytes from the same memory by the same threads
 * (lib/gen/bench_decode.c says exactly which bytes). share is the median over
 * tokens of read time / decode time; q1 and q3 its quartiles. With a
 * prefetch distance the read runs three times, without software prefetch,
 * prefetching each line and one line per 2 KiB, and the fastest is the
 * ceiling.
 */
struct tm_decode_share {
	int tokens;
	int n_pos;			/* context positions before the first measured token */
	double share, share_q1, share_q3;
	double share_cpu;		/* the same from the process's CPU time (oversubscribed hosts) */
	double decode_tok_s;		/* 1 / the median decode step */
	double read_gbs;		/* bytes per token / the median read */
	double weight_bytes, kv_bytes;	/* read per token (means) */
	int read_loops;			/* 3: without prefetch, each line, a line per 2 KiB; 1: without */
	double prefetch_faster;		/* share of tokens whose fastest read prefetched */
	double sparse_faster;		/* ... whose fastest read prefetched a line per 2 KiB */
};

struct tm_ctx;
/*
 * Resets c and puts it at position n_pos (random keys and values before it,
 * a real token at n_pos - 1); two warm-up steps follow, not counted. c needs
 * room for n_pos + 2 + n_tokens positions.
 */
int tm_bench_decode(struct tm_ctx *c, int n_pos, int n_tokens, size_t prefetch,
		    struct tm_decode_share *out);

/* The median of n values (sorts v in place). */
double tm_median(double *v, int n);

#endif
