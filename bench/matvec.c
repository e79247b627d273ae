// SPDX-License-Identifier: MIT
/*
 * build/bench/matvec: GB/s of weights a matvec streams, per type, ISA and
 * thread count, next to a plain read loop over the same buffer measured in
 * the same run (right before each type), since the host's bandwidth drifts.
 * Also the prefill gain: one matmul of N tokens against N matvecs.
 *
 *   matvec [--gb G] [--cols N] [--call-rows R] [--threads 1,2]
 *          [--types q4_K,q6_K,...] [--isa avx512,avx2,...] [--passes P]
 *          [--prefill N] [--batch N] [--cpu-time] [--overhead]
 *
 * --call-rows R: rows per tm_matvec call (a model's matrix; 0 = all in one
 * call). Each call quantizes x again, as decode does. --overhead: only time
 * small calls (16 rows) with x quantized on the caller or by all threads
 * behind a barrier. --batch N: the cost of N tokens through tm_matmul_exact
 * (batched decode) and through the table's whole-batch kernel (AMX) called
 * directly, as multiples of one matvec, medians of alternating passes.
 * --cpu-time: time with the thread's CPU clock (use with --threads 1 on a
 * busy host: time the thread was preempted does not count). Heavy on memory
 * bandwidth: run it on a quiet machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/kern.h"
#include "kernels/kernels.h"
#include "tiermem/bench.h"
#include "tiermem/mapping.h"

/* --cpu-time: the calling thread's CPU time, not wall time (1 thread: a busy host's preemption does not count) */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(clock_id, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Split a comma list in place; returns the count. */
static int split_list(char *s, char **out, int max)
{
	int n = 0;

	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
		out[n++] = tok;
	return n;
}

struct run {
	struct tm_pool *pool;
	int type, cols, call_rows;
	size_t rb;
	long rows;
	const char *w;
	const float *x;
	float *y;
};

static double matvec_pass(const struct run *r)
{
	double t = now_s();
	long step = r->call_rows ? r->call_rows : r->rows;

	for (long r0 = 0; r0 < r->rows; r0 += step) {
		struct tm_matvec m = {
			.type = r->type, .w = r->w + r0 * r->rb, .row_stride = r->rb,
			.rows = (int)(r->rows - r0 < step ? r->rows - r0 : step), .cols = r->cols,
			.x = r->x, .y = r->y + r0,
		};

		tm_matvec(r->pool, &m);
	}
	return now_s() - t;
}

/* Seconds for n tokens: one matmul against n matvecs, over the first rows of w. */
static void prefill_gain(const struct run *r, int n, long rows, double *t_mm, double *t_mv)
{
	float *X = malloc((size_t)n * r->cols * sizeof(float));
	float *Y = malloc((size_t)n * rows * sizeof(float));
	uint64_t seed = 7;
	double t;

	tm_fill_random(TM_F32, X, (int64_t)n * r->cols, &seed, 1.f);
	tm_matmul(r->pool, r->type, r->w, r->rb, (int)rows, r->cols, X, n, Y);	/* warm */
	t = now_s();
	tm_matmul(r->pool, r->type, r->w, r->rb, (int)rows, r->cols, X, n, Y);
	*t_mm = now_s() - t;
	t = now_s();
	for (int i = 0; i < n; i++) {
		struct tm_matvec m = { r->type, r->w, r->rb, (int)rows, r->cols, X + (size_t)i * r->cols, Y + (size_t)i * rows };

		tm_matvec(r->pool, &m);
	}
	*t_mv = now_s() - t;
	free(X);
	free(Y);
}

/*
 * Seconds for one pass of n tokens over the matrix in calls of call_rows rows:
 * how = 0: tm_matmul_exact (batched decode), 1: the AMX whole-batch kernel
 * called directly whatever n (the table's gemm), 2: one tm_matvec (n ignored).
 */
static double batch_pass(const struct run *r, int how, int n, const float *X, float *Y, void *scratch)
{
	const struct tm_kern *k = tm_kern();
	long step = r->call_rows ? r->call_rows : r->rows;
	double t = now_s();

	for (long r0 = 0; r0 < r->rows; r0 += step) {
		int nr = (int)(r->rows - r0 < step ? r->rows - r0 : step);
		const char *w = r->w + r0 * r->rb;

		if (how == 0)
			tm_matmul_exact(r->pool, r->type, w, r->rb, nr, r->cols, X, n, Y);
		else if (how == 1)
			k->gemm->run(r->pool, k, r->type, w, r->rb, nr, r->cols, X, n, Y, nr, scratch);
		else
			tm_matvec(r->pool, &(struct tm_matvec){ r->type, w, r->rb, nr, r->cols, X, Y });
	}
	return now_s() - t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median pass times, taken alternating: 1 matvec, exact n, AMX n (if the table has it). */
static void batch_cost(const struct run *r, int n, int passes)
{
	const struct tm_kern *k = tm_kern();
	int call = r->call_rows ? r->call_rows : (int)r->rows, ways = k->gemm ? 3 : 2;
	float *X = malloc((size_t)n * r->cols * sizeof(float));
	float *Y = malloc((size_t)n * call * sizeof(float));
	void *s = k->gemm ? malloc(k->gemm->scratch(r->type, r->cols, n, tm_pool_threads(r->pool))) : NULL;
	double *t = malloc(sizeof(double) * 3 * passes), med[3];
	uint64_t seed = 11;

	tm_fill_random(TM_F32, X, (int64_t)n * r->cols, &seed, 1.f);
	for (int h = 0; h < ways; h++)
		batch_pass(r, (h + 2) % 3, n, X, Y, s);	/* warm-up */
	for (int p = 0; p < passes; p++)
		for (int h = 0; h < ways; h++)
			t[h * passes + p] = batch_pass(r, (h + 2) % 3, n, X, Y, s);
	for (int h = 0; h < ways; h++) {
		qsort(t + h * passes, passes, sizeof(double), cmp_double);
		med[h] = t[h * passes + passes / 2];
	}
	printf("  %d tok: 1 matvec %.2f ms, exact %.2fx", n, med[0] * 1e3, med[1] / med[0]);
	if (ways == 3)
		printf(", amx %.2fx", med[2] / med[0]);
	free(X);
	free(Y);
	free(s);
	free(t);
}

/* Microseconds per small call (16 rows, so the hand-off and quantizing dominate). */
static void call_overhead(int nth)
{
	static const int colss[] = { 4096, 14336 };
	struct tm_pool *pool = tm_pool_create(nth, TM_POOL_PIN);
	uint64_t seed = 3;

	for (int c = 0; c < 2; c++) {
		int cols = colss[c], rows = 16;
		size_t rb = tm_row_bytes(TM_Q4_K, cols);
		void *w = malloc(rb * rows);
		float *x = malloc(cols * sizeof(float)), *y = malloc(rows * sizeof(float));
		struct tm_matvec m = { TM_Q4_K, w, rb, rows, cols, x, y };

		tm_fill_random(TM_Q4_K, w, (int64_t)rows * cols, &seed, 0.05f);
		tm_fill_random(TM_F32, x, cols, &seed, 1.f);
		for (int serial = 1; serial >= 0; serial--) {
			double best = 1e30;

			tm_matvec_serial_quant(serial);
			for (int k = 0; k < 20; k++) {
				double t = now_s();

				for (int i = 0; i < 200; i++)
					tm_matvec(pool, &m);
				t = (now_s() - t) / 200;
				best = t < best ? t : best;
			}
			printf("overhead %d threads, q4_K 16 x %d, x quantized %s: %.2f us per call\n",
			       nth, cols, serial ? "on the caller" : "by all threads + barrier", best * 1e6);
		}
		free(w);
		free(x);
		free(y);
	}
	tm_matvec_serial_quant(1);
	tm_pool_destroy(pool);
}

int main(int argc, char **argv)
{
	double gb = 1.0;
	int cols = 4096, call_rows = 4096, passes = 3, prefill = 0, batch = 0;
	char threads_s[64] = "1,2", types_s[128] = "f32,f16,bf16,q4_0,q8_0,q4_K,q5_K,q6_K";
	char isa_s[128] = "avx512,avx512-novnni,avx2,scalar";
	char *thr[8], *typ[16], *isa[8];
	int nthr, ntyp, nisa;
	struct tm_mapping map;
	size_t bytes, min_rb, fill_bytes = 64 << 20;
	float *x, *y;
	uint64_t seed = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--cpu-time")) {
			clock_id = CLOCK_THREAD_CPUTIME_ID;
			continue;
		}
		if (!strcmp(a, "--overhead")) {
			for (int t = 1; t <= 2; t++)
				call_overhead(t);
			return 0;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("usage: matvec [--gb G] [--cols N] [--call-rows R] [--threads 1,2] "
			       "[--types q4_K,...] [--isa avx512,avx2,...] [--passes P] [--prefill N] [--batch N] [--cpu-time] "
			       "[--overhead]\n");
			return 0;
		}
		if (!v) {
			fprintf(stderr, "matvec: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--gb")) gb = atof(v);
		else if (!strcmp(a, "--cols")) cols = atoi(v);
		else if (!strcmp(a, "--call-rows")) call_rows = atoi(v);
		else if (!strcmp(a, "--passes")) passes = atoi(v);
		else if (!strcmp(a, "--prefill")) prefill = atoi(v);
		else if (!strcmp(a, "--batch")) batch = atoi(v);
		else if (!strcmp(a, "--threads")) snprintf(threads_s, sizeof(threads_s), "%s", v);
		else if (!strcmp(a, "--types")) snprintf(types_s, sizeof(types_s), "%s", v);
		else if (!strcmp(a, "--isa")) snprintf(isa_s, sizeof(isa_s), "%s", v);
		else {
			fprintf(stderr, "matvec: unknown option %s\n", a);
			return 2;
		}
	}
	if (gb <= 0 || gb > 64 || cols < 256 || cols % 256 || passes < 1 || call_rows < 0 || prefill < 0 || batch < 0 || batch > 64) {
		fprintf(stderr, "matvec: bad --gb, --cols (a multiple of 256), --passes, --call-rows or --prefill\n");
		return 2;
	}
	nthr = split_list(threads_s, thr, 8);
	ntyp = split_list(types_s, typ, 16);
	nisa = split_list(isa_s, isa, 8);
	for (int i = 0; i < ntyp; i++)
		if (tm_dtype_by_name(typ[i]) < 0) {
			fprintf(stderr, "matvec: unknown type %s\n", typ[i]);
			return 2;
		}
	bytes = (size_t)(gb * 1e9);
	if (tm_map_anon(&map, bytes, TM_PAGES_THP, TM_MAP_POPULATE)) {
		fprintf(stderr, "matvec: cannot map %zu bytes\n", bytes);
		return 1;
	}
	x = malloc(cols * sizeof(float));
	/* room for the most rows: those of the smallest type asked for (q2_K's are below q4_0's) */
	min_rb = tm_row_bytes(TM_Q4_0, cols);
	for (int i = 0; i < ntyp; i++)
		if (tm_row_bytes(tm_dtype_by_name(typ[i]), cols) < min_rb)
			min_rb = tm_row_bytes(tm_dtype_by_name(typ[i]), cols);
	y = malloc((bytes / min_rb + 16) * sizeof(float));
	tm_fill_random(TM_F32, x, cols, &seed, 1.f);
	printf("# %.2f GB of weights, rows of %d, %d rows per call, best of %d passes; "
	       "ratio = matvec GB/s / read-loop GB/s measured just before\n",
	       bytes / 1e9, cols, call_rows, passes);
	printf("%-6s %-14s %3s %9s %9s %6s", "type", "isa", "thr", "GB/s", "read", "ratio");
	if (prefill)
		printf("  prefill(%d tok) speedup vs %d matvecs", prefill, prefill);
	printf("\n");
	for (int ti = 0; ti < ntyp; ti++) {
		int type = tm_dtype_by_name(typ[ti]);
		size_t rb = tm_row_bytes(type, cols), used;
		long rows;

		/* random blocks with sane scales, replicated: filling GBs at random costs minutes */
		/* whole groups of 16 rows, so a repacked type's copies stay whole groups */
		size_t unit = fill_bytes / rb / TM_REPACK_ROWS * TM_REPACK_ROWS * rb;

		rows = (long)(bytes / rb);
		used = rows * rb;
		if (unit > used)
			unit = used / (TM_REPACK_ROWS * rb) * TM_REPACK_ROWS * rb;
		unit = unit ? unit : TM_REPACK_ROWS * rb;
		tm_fill_random(tm_repack_base(type), map.addr, (int64_t)(unit / rb) * cols, &seed, 0.05f);
		if (tm_repack_base(type) != type)
			tm_repack(tm_repack_base(type), map.addr, (int)(unit / rb), cols);
		for (size_t off = unit; off < used; off += unit)
			memcpy((char *)map.addr + off, map.addr, used - off < unit ? used - off : unit);
		for (int hi = 0; hi < nthr; hi++) {
			int nth = atoi(thr[hi]);
			struct tm_pool *pool = tm_pool_create(nth, TM_POOL_PIN);
			struct tm_bw rd;

			if (!pool || tm_bench_read(&map, used, pool, 0, passes, &rd)) {
				fprintf(stderr, "matvec: pool of %d threads or read loop failed\n", nth);
				return 1;
			}
			for (int ii = 0; ii < nisa; ii++) {
				struct run r = { pool, type, cols, call_rows, rb, rows, map.addr, x, y };
				double best = 1e30;

				if (tm_kernels_force_isa(isa[ii]))
					continue;
				matvec_pass(&r);	/* warm-up */
				for (int p = 0; p < passes; p++) {
					double t = matvec_pass(&r);

					best = t < best ? t : best;
				}
				printf("%-6s %-14s %3d %9.2f %9.2f %6.3f", typ[ti], tm_kernels_isa(), nth,
				       used / best / 1e9, rd.best_gbs, used / best / 1e9 / rd.best_gbs);
				if (batch)
					batch_cost(&r, batch, passes);
				if (prefill) {
					double tmm, tmv;
					long prow = (long)((256 << 20) / rb) < rows ? (long)((256 << 20) / rb) : rows;

					prefill_gain(&r, prefill, prow, &tmm, &tmv);
					printf("  %.2fx", tmv / tmm);
				}
				printf("\n");
				fflush(stdout);
			}
			tm_pool_destroy(pool);
		}
	}
	free(x);
	free(y);
	tm_unmap(&map);
	return 0;
}
