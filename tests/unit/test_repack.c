// SPDX-License-Identifier: MIT
/*
 * The interleaved-row layouts: repacking is lossless and leaves the tail
 * rows alone; the scalar kernel equals the GGML type's scalar kernel bit for
 * bit; every ISA's kernel (matvec on 1-3 threads, matmul of 1..9 tokens)
 * agrees with it within 3e-5 S (S = sum |w x| of the row: the same integers,
 * only the order of float additions differs) for every row count mod 16.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kern.h"
#include "kernels/cpu/repack.h"
#include "kernels/kernels.h"
#include "tap.h"

static const char *const isas[] = { "scalar", "avx2", "avx512-novnni", "avx512", "avx512-amx" };
static const int row_counts[] = { 1, 5, 15, 16, 17, 31, 32, 33, 47, 64, 77 };
#define NROWS (int)(sizeof(row_counts) / sizeof(row_counts[0]))
#define COLS 768
#define MAXROWS 77

static uint64_t seed = 0x243f6a8885a308d3ull;

static void fill_x(float *x, int n)
{
	tm_fill_random(TM_F32, x, n, &seed, 1.0f);
	for (int i = 0; i < n; i += 37)
		x[i] *= 8.f;	/* a few large activations, as real ones have */
}

/* S per row: the scale a rounding error is proportional to. */
static void row_scale(int type, const void *w, int rows, const float *x, double *s)
{
	float *wf = malloc(COLS * sizeof(float));
	size_t rb = tm_row_bytes(type, COLS);

	for (int r = 0; r < rows; r++) {
		s[r] = 1e-30;
		tm_dequant_row(type, (const char *)w + r * rb, wf, COLS);
		for (int k = 0; k < COLS; k++)
			s[r] += fabs((double)wf[k] * x[k]);
	}
	free(wf);
}

static void test_round_trip(int type)
{
	size_t rb = tm_row_bytes(type, COLS);
	char *w = malloc(rb * MAXROWS), *orig = malloc(rb * MAXROWS);
	int bad_rt = 0, bad_tail = 0, moved = 0;

	for (int i = 0; i < NROWS; i++) {
		int rows = row_counts[i], full = rows / 16 * 16;

		tm_fill_random(type, w, (int64_t)rows * COLS, &seed, 1.0f);
		memcpy(orig, w, rb * rows);
		if (tm_repack(type, w, rows, COLS))
			bad_rt++;
		if (memcmp(w + full * rb, orig + full * rb, (rows - full) * rb))
			bad_tail++;
		if (full && memcmp(w, orig, full * rb))
			moved++;
		if (tm_unrepack(tm_repack_type(type), w, rows, COLS) || memcmp(w, orig, rb * rows))
			bad_rt++;
	}
	tap_ok(bad_rt == 0, "%s: repack then unrepack gives the GGUF bytes back, %d row counts (%d bad)",
	       tm_dtype_traits(type)->name, NROWS, bad_rt);
	tap_ok(bad_tail == 0 && moved == 8, "%s: rows past the last group of 16 stay as they were; "
	       "whole groups are rearranged (%d of 8)", tm_dtype_traits(type)->name, moved);
	free(w);
	free(orig);
}

static void test_scalar_exact(int type)
{
	int rtype = tm_repack_type(type), bad = 0;
	size_t rb = tm_row_bytes(type, COLS);
	char *w = malloc(rb * MAXROWS), *wr = malloc(rb * MAXROWS);
	float *x = malloc(COLS * sizeof(float)), y0[MAXROWS], y1[MAXROWS];
	struct tm_pool *pool = tm_pool_create(1, 0);

	tm_kernels_force_isa("scalar");
	fill_x(x, COLS);
	for (int i = 0; i < NROWS; i++) {
		int rows = row_counts[i];

		tm_fill_random(type, w, (int64_t)rows * COLS, &seed, 1.0f);
		memcpy(wr, w, rb * rows);
		tm_repack(type, wr, rows, COLS);
		tm_matvec(pool, &(struct tm_matvec){ type, w, rb, rows, COLS, x, y0 });
		tm_matvec(pool, &(struct tm_matvec){ rtype, wr, rb, rows, COLS, x, y1 });
		bad += memcmp(y0, y1, rows * sizeof(float)) != 0;
	}
	tap_ok(bad == 0, "scalar %s equals scalar %s bit for bit, %d row counts (%d differ)",
	       tm_dtype_traits(rtype)->name, tm_dtype_traits(type)->name, NROWS, bad);
	tm_pool_destroy(pool);
	free(w);
	free(wr);
	free(x);
}

static int close(const float *y, const float *want, const double *s, int n, double *worst)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		double e = fabs((double)y[i] - want[i]) / s[i];

		if (!(e <= 3e-5))
			bad++;
		if (!(e <= *worst))
			*worst = e;
	}
	return bad;
}

/*
 * AMX's matmul on an r16 matrix (whole groups in the r16 dot kernels'
 * order, the GGUF-layout last rows % 16 on the dot kernels) equals n
 * matvecs bit for bit, so a prompt's tokens get the bits decode gives them:
 * every row count, batches of 8-33 tokens, tm_matmul and tm_matmul_exact.
 */
static void test_gemm_exact(int type, struct tm_pool *pool, const char *isa)
{
	static const int ns[] = { 8, 13, 16, 17, 33 };
	int rtype = tm_repack_type(type), bad = 0, bad_exact = 0;
	size_t rb = tm_row_bytes(type, COLS);
	char *wr = malloc(rb * MAXROWS);
	float *x = malloc(33 * COLS * sizeof(float)), *want = malloc(33 * MAXROWS * sizeof(float));
	float *y = malloc(33 * MAXROWS * sizeof(float));

	fill_x(x, 33 * COLS);
	for (int i = 0; i < NROWS; i++) {
		int rows = row_counts[i];

		tm_fill_random(type, wr, (int64_t)rows * COLS, &seed, 1.0f);
		tm_repack(type, wr, rows, COLS);
		for (int t = 0; t < 33; t++)
			tm_matvec(pool, &(struct tm_matvec){ rtype, wr, rb, rows, COLS, x + t * COLS, want + t * rows });
		for (int k = 0; k < 5; k++) {
			memset(y, 0xff, 33 * MAXROWS * sizeof(float));
			tm_matmul(pool, rtype, wr, rb, rows, COLS, x, ns[k], y);
			bad += memcmp(y, want, (size_t)ns[k] * rows * sizeof(float)) != 0;
			memset(y, 0xff, 33 * MAXROWS * sizeof(float));
			tm_matmul_exact(pool, rtype, wr, rb, rows, COLS, x, ns[k], y);
			bad_exact += memcmp(y, want, (size_t)ns[k] * rows * sizeof(float)) != 0;
		}
	}
	tap_ok(bad == 0 && bad_exact == 0, "%s: %s matmul and matmul_exact of 8-33 tokens equal as many matvecs "
	       "bit for bit, %d row counts (%d, %d differ)", isa, tm_dtype_traits(rtype)->name, NROWS, bad, bad_exact);
	free(wr);
	free(x);
	free(want);
	free(y);
}

/*
 * Prefill's VNNI matmul (CPUs without AMX: "avx512") decodes an r16 group
 * straight into the panel its rows give in the GGUF layout: the same bits
 * as the GGUF matrix, for every row count (whole groups and the GGUF-layout
 * tail) and every batch the matmul takes. Smaller batches go to the dot
 * kernels, whose r16 and GGUF forms add in different orders (ulps; the
 * matvec checks hold them to a tolerance), so they are not compared here.
 */
static void test_gemm_same(int type, struct tm_pool *pool, const char *isa)
{
	static const int ns[] = { 16, 17, 24, 31, 33 };
	int rtype = tm_repack_type(type), bad = 0;
	size_t rb = tm_row_bytes(type, COLS);
	char *w = malloc(rb * MAXROWS), *wr = malloc(rb * MAXROWS);
	float *x = malloc(33 * COLS * sizeof(float));
	float *y0 = malloc(33 * MAXROWS * sizeof(float)), *y1 = malloc(33 * MAXROWS * sizeof(float));
	fill_x(x, 33 * COLS);
	for (int i = 0; i < NROWS; i++) {
		int rows = row_counts[i];

		tm_fill_random(type, w, (int64_t)rows * COLS, &seed, 1.0f);
		memcpy(wr, w, rb * rows);
		tm_repack(type, wr, rows, COLS);
		for (int k = 0; k < 5; k++) {
			if (!tm_kern()->gemm->takes(type, ns[k]) || !tm_kern()->gemm->takes(rtype, ns[k])) {
				bad++;	/* the batches above must reach the matmul, or this checks nothing */
				continue;
			}
			memset(y0, 0xff, 33 * MAXROWS * sizeof(float));
			memset(y1, 0xfe, 33 * MAXROWS * sizeof(float));
			tm_matmul(pool, type, w, rb, rows, COLS, x, ns[k], y0);
			tm_matmul(pool, rtype, wr, rb, rows, COLS, x, ns[k], y1);
			bad += memcmp(y0, y1, (size_t)ns[k] * rows * sizeof(float)) != 0;
		}
	}
	tap_ok(bad == 0, "%s: %s matmul of 16-33 tokens equals the GGUF layout's bit for bit, %d row counts "
	       "(%d differ)", isa, tm_dtype_traits(rtype)->name, NROWS, bad);
	free(w);
	free(wr);
	free(x);
	free(y0);
	free(y1);
}

/* Every ISA, matvec on 1-3 threads and matmul of 1..9 tokens, against the scalar GGML kernel. */
static void test_isas(int type)
{
	enum { NT = 9 };
	int rtype = tm_repack_type(type);
	size_t rb = tm_row_bytes(type, COLS);
	char *w = malloc(rb * MAXROWS), *wr = malloc(rb * MAXROWS);
	float *x = malloc(NT * COLS * sizeof(float)), *want = malloc(NT * MAXROWS * sizeof(float));
	float *y = malloc(NT * MAXROWS * sizeof(float));
	double *s = malloc(NT * MAXROWS * sizeof(double));
	struct tm_pool *pools[3] = { tm_pool_create(1, 0), tm_pool_create(2, 0), tm_pool_create(3, 0) };

	fill_x(x, NT * COLS);
	for (int ii = 0; ii < 5; ii++) {
		int bad_mv = 0, bad_mm = 0, bad_exact = 0;
		double worst_mv = 0, worst_mm = 0;

		if (tm_kernels_force_isa(isas[ii])) {
			tap_skip("%s %s: not on this CPU", isas[ii], tm_dtype_traits(rtype)->name);
			continue;
		}
		for (int i = 0; i < NROWS; i++) {
			int rows = row_counts[i];

			tm_fill_random(type, w, (int64_t)rows * COLS, &seed, 1.0f);
			memcpy(wr, w, rb * rows);
			tm_repack(type, wr, rows, COLS);
			tm_kernels_force_isa("scalar");
			for (int t = 0; t < NT; t++) {
				tm_matvec(pools[0], &(struct tm_matvec){ type, w, rb, rows, COLS, x + t * COLS,
									  want + t * rows });
				row_scale(type, w, rows, x + t * COLS, s + t * rows);
			}
			tm_kernels_force_isa(isas[ii]);
			for (int p = 0; p < 3; p++) {
				memset(y, 0xff, rows * sizeof(float));
				tm_matvec(pools[p], &(struct tm_matvec){ rtype, wr, rb, rows, COLS, x, y });
				bad_mv += close(y, want, s, rows, &worst_mv);
			}
			for (int n = 1; n <= NT; n += 4) {
				memset(y, 0xff, NT * MAXROWS * sizeof(float));
				tm_matmul(pools[n % 3], rtype, wr, rb, rows, COLS, x, n, y);
				bad_mm += close(y, want, s, n * rows, &worst_mm);
			}
		}
		/* batched decode's tm_matmul_exact: n matvecs bit for bit (a text must not depend on its batch) */
		tm_fill_random(type, wr, (int64_t)MAXROWS * COLS, &seed, 1.0f);
		tm_repack(type, wr, MAXROWS, COLS);
		tm_matmul_exact(pools[1], rtype, wr, rb, MAXROWS, COLS, x, NT, y);
		for (int t = 0; t < NT; t++) {
			tm_matvec(pools[1], &(struct tm_matvec){ rtype, wr, rb, MAXROWS, COLS, x + t * COLS, want });
			bad_exact += memcmp(want, y + t * MAXROWS, MAXROWS * sizeof(float)) != 0;
		}
		tap_ok(bad_exact == 0, "%s %s tm_matmul_exact of %d tokens equals %d matvecs bit for bit (%d differ)",
		       isas[ii], tm_dtype_traits(rtype)->name, NT, NT, bad_exact);
		if (tm_kern()->gemm && tm_kern()->gemm->exact_r16)
			test_gemm_exact(type, pools[1], isas[ii]);
		else if (tm_kern()->gemm)
			test_gemm_same(type, pools[1], isas[ii]);
		tap_ok(bad_mv == 0, "%s %s matvec, 1-3 threads, %d row counts: worst %.2g S (tol 3e-5)",
		       isas[ii], tm_dtype_traits(rtype)->name, NROWS, worst_mv);
		tap_ok(bad_mm == 0, "%s %s matmul of 1, 5 and 9 tokens, %d row counts: worst %.2g S",
		       isas[ii], tm_dtype_traits(rtype)->name, NROWS, worst_mm);
	}
	for (int p = 0; p < 3; p++)
		tm_pool_destroy(pools[p]);
	free(w);
	free(wr);
	free(x);
	free(want);
	free(y);
	free(s);
}

/*
 * The AVX2 q4_K_r16 kernel for activations in TM_ACT_Q8_KP order (the
 * AVX-512 table without VNNI runs it) gives the plain kernel's bits: it
 * reads the same sub-blocks' codes and sums, found where the permutation
 * put them. Whole groups only: the tail rows go to the table's q4_K kernel,
 * which takes the table's own order. Runs wherever AVX2 does.
 */
static void test_avx2_permuted(void)
{
	const int rows = 64, nb = COLS / 256;
	size_t rb = tm_row_bytes(TM_Q4_K, COLS), xs = tm_row_bytes(TM_Q8_K, COLS);
	char *w = malloc(rb * rows), *xq = malloc(4 * xs), *xp = malloc(4 * xs);
	float *x = malloc(4 * COLS * sizeof(float)), y0[4 * 64], y1[4 * 64];
	const char *was = tm_kernels_isa();
	int bad = 0;

	if (tm_kernels_force_isa("avx2")) {
		tap_skip("avx2 q4_K_r16 with permuted activations: no AVX2 on this CPU");
		goto out;
	}
	tm_fill_random(TM_Q4_K, w, (int64_t)rows * COLS, &seed, 1.0f);
	tm_repack(TM_Q4_K, w, rows, COLS);
	fill_x(x, 4 * COLS);
	for (int t = 0; t < 4; t++) {
		tm_kern()->quant_q8_K(x + t * COLS, xq + t * xs, COLS);
		memcpy(xp + t * xs, xq + t * xs, xs);
		tm_q8_K_permute(xp + t * xs, COLS);
	}
	bad += memcmp(xq, xp, 4 * xs) == 0;	/* the permutation moved something */
	for (int nx = 1; nx <= 4; nx++) {
		memset(y1, 0xff, sizeof(y1));
		tm_dot_q4_K_r16_avx2(w, rb, rows, nb, xq, xs, nx, y0, rows);
		tm_dot_q4_K_r16_avx2p(w, rb, rows, nb, xp, xs, nx, y1, rows);
		bad += memcmp(y0, y1, (size_t)nx * rows * sizeof(float)) != 0;
	}
	tap_ok(bad == 0, "avx2 q4_K_r16 on TM_ACT_Q8_KP activations equals it on q8_K ones bit for bit, 1-4 tokens "
	       "(%d differ)", bad);
out:
	tm_kernels_force_isa(was);
	free(w);
	free(xq);
	free(xp);
	free(x);
}

static void test_bad_input(void)
{
	float buf[256 * 16];

	tap_ok(tm_repack(TM_F32, buf, 16, 256) == -EINVAL && tm_repack(TM_Q5_0, buf, 16, 256) == -EINVAL &&
	       tm_repack(TM_Q8_0, buf, 16, 100) == -EINVAL &&
	       tm_repack(TM_Q4_K, buf, 16, 100) == -EINVAL && tm_repack(TM_Q4_K, buf, -1, 256) == -EINVAL &&
	       tm_unrepack(TM_Q4_K, buf, 16, 256) == -EINVAL,
	       "repack refuses types without a repacked form, bad shapes, and unrepacking a GGML type");
	tap_ok(tm_repack_type(TM_Q4_K) == TM_Q4_K_R16 && tm_repack_base(TM_Q6_K_R16) == TM_Q6_K &&
	       tm_repack_base(TM_Q8_0) == TM_Q8_0 && tm_repack_type(TM_Q8_0) == TM_Q8_0_R16 &&
	       tm_repack_base(TM_Q8_0_R16) == TM_Q8_0 && !tm_dtype_in_gguf(TM_Q8_0_R16) && !tm_dtype_in_gguf(TM_Q4_K_R16) && tm_dtype_in_gguf(TM_Q4_K),
	       "type mapping: a repacked type is never a GGUF tensor type");
}

int main(void)
{
	const int types[] = { TM_Q4_K, TM_Q6_K, TM_Q8_0 };

	for (int i = 0; i < (int)(sizeof(types) / sizeof(types[0])); i++) {
		test_round_trip(types[i]);
		test_scalar_exact(types[i]);
		test_isas(types[i]);
	}
	test_avx2_permuted();
	test_bad_input();
	return tap_done();
}
