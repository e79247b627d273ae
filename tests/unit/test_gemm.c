// SPDX-License-Identifier: MIT
/*
 * Prefill's matmul (tm_matmul) on every ISA this CPU has, AMX tiles
 * included, against a double-precision reference: the dot product of the
 * dequantized weight row and the activation as the reference quantizer
 * leaves it. Shapes with tails everywhere: rows not a multiple of the 16-row
 * panel, batches not a multiple of the 16-token tile (and below it), several
 * block counts, 1-3 threads. Tolerance 2e-5 S with S = sum |w_i x_i| (as in
 * test_kernels.c: the integers are exact, only float order differs; a wrong
 * code, scale, min or token is off by a large fraction of S).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kern.h"
#include "kernels/kernels.h"
#include "tap.h"

static uint64_t seed = 0x2545f4914f6cdd1dull;

static float frnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (float)((seed >> 40) & 0xffffff) / (float)0x800000 - 1.f;
}

/* x quantized as the weight type's kernels quantize it, back to floats. */
static void act_as_float(int type, const float *x, float *out, int cols)
{
	if (type == TM_Q8_0) {
		blk_q8_0 *q = malloc(tm_row_bytes(TM_Q8_0, cols));

		tm_quant_q8_0_ref(x, q, cols);
		tm_dequant_row(TM_Q8_0, q, out, cols);
		free(q);
	} else {
		blk_q8_K *q = malloc(tm_row_bytes(TM_Q8_K, cols));

		tm_quant_q8_K_ref(x, q, cols);
		for (int i = 0; i < cols; i++)
			out[i] = q[i / 256].d * q[i / 256].qs[i % 256];
		free(q);
	}
}

/* Worst |Y - reference| / S over n tokens; NaN if any output is not finite. */
static double check(int type, const void *w, int rows, int cols, const float *X, int n, const float *Y)
{
	size_t rb = tm_row_bytes(type, cols);
	float *wf = malloc(cols * sizeof(float)), *xf = malloc(cols * sizeof(float));
	double worst = 0;

	for (int t = 0; t < n; t++) {
		act_as_float(type, X + (size_t)t * cols, xf, cols);
		for (int r = 0; r < rows; r++) {
			double want = 0, s = 1e-30, e;

			tm_dequant_row(type, (const char *)w + r * rb, wf, cols);
			for (int c = 0; c < cols; c++) {
				want += (double)wf[c] * xf[c];
				s += fabs((double)wf[c] * xf[c]);
			}
			e = fabs(Y[(size_t)t * rows + r] - want) / s;
			if (!(e <= worst))
				worst = isnan(e) ? NAN : e;
			if (isnan(worst))
				goto out;
		}
	}
out:
	free(wf);
	free(xf);
	return worst;
}

static void test_shapes(const char *isa)
{
	static const int types[] = { TM_Q8_0, TM_Q4_K, TM_Q5_K, TM_Q6_K };
	static const int rows_l[] = { 1, 17, 45 }, n_l[] = { 8, 16, 17, 40 };
	struct tm_pool *pools[3] = { NULL, tm_pool_create(2, 0), tm_pool_create(3, 0) };

	for (int ti = 0; ti < 4; ti++) {
		int type = types[ti], bad = 0, cases = 0;
		double worst = 0;

		for (int ci = 0; ci < 3; ci++) {
			/* q8_0 also takes rows of 3 and 9 blocks; the K-quants 1, 2, 3 super-blocks */
			int cols = type == TM_Q8_0 ? (int[]){ 96, 288, 512 }[ci] : 256 * (ci + 1);

			for (int ri = 0; ri < 3; ri++) {
				int rows = rows_l[ri];
				size_t rb = tm_row_bytes(type, cols);
				void *w = malloc(rb * rows);

				tm_fill_random(type, w, (int64_t)rows * cols, &seed, 1.0f);
				for (int ni = 0; ni < 4; ni++) {
					int n = n_l[ni];
					float *X = malloc((size_t)n * cols * sizeof(float));
					float *Y = malloc((size_t)n * rows * sizeof(float));
					double e;

					for (int i = 0; i < n * cols; i++)
						X[i] = frnd() * (i % 13 == 0 ? 8.f : 1.f);
					memset(Y, 0xff, (size_t)n * rows * sizeof(float));	/* NaN */
					tm_matmul(pools[(ri + ni) % 3], type, w, rb, rows, cols, X, n, Y);
					e = check(type, w, rows, cols, X, n, Y);
					bad += !(e <= 2e-5);
					if (!(e <= worst))
						worst = e;
					cases++;
					free(X);
					free(Y);
				}
				free(w);
			}
		}
		tap_ok(bad == 0, "%s %s matmul: %d shapes (rows 1-45, 8-40 tokens, 1-3 threads), worst %.2g S",
		       isa, tm_dtype_traits(type)->name, cases, worst);
	}
	for (int i = 0; i < 3; i++)
		tm_pool_destroy(pools[i]);
}

/* A layer-sized case: many panels from the cursor, 3 threads, two token tiles and a tail. */
static void test_large(const char *isa)
{
	const int rows = 1000, cols = 2048, n = 37;
	size_t rb = tm_row_bytes(TM_Q4_K, cols);
	void *w = malloc(rb * rows);
	float *X = malloc((size_t)n * cols * sizeof(float)), *Y = malloc((size_t)n * rows * sizeof(float));
	struct tm_pool *pool = tm_pool_create(3, 0);
	double e;

	tm_fill_random(TM_Q4_K, w, (int64_t)rows * cols, &seed, 1.0f);
	for (int i = 0; i < n * cols; i++)
		X[i] = frnd();
	tm_matmul(pool, TM_Q4_K, w, rb, rows, cols, X, n, Y);
	e = check(TM_Q4_K, w, rows, cols, X, n, Y);
	tap_ok(e <= 2e-5, "%s q4_K matmul 1000 x 2048, 37 tokens, 3 threads: worst %.2g S", isa, e);
	tm_pool_destroy(pool);
	free(w);
	free(X);
	free(Y);
}

/*
 * tm_matmul_exact (batched decode) equals tm_matvec bit for bit, under every
 * table, AMX's included: each kernel's arithmetic for a token must not depend
 * on how many tokens share its call (batch invariance).
 */
static void test_exact(const char *isa)
{
	static const int types[] = { TM_Q4_K, TM_Q8_0, TM_Q2_K, TM_Q3_K, TM_IQ4_XS, TM_Q4_1, TM_Q5_0, TM_Q5_1, TM_Q4_0 };
	/* an odd row count: kernels that take rows in pairs (AVX2 q8_0, q4_0) end on a single one */
	const int rows = 41, cols = 512, n = 17;
	struct tm_pool *pool = tm_pool_create(2, 0);
	int off = 0;

	for (int ti = 0; ti < (int)(sizeof(types) / sizeof(types[0])); ti++) {
		int type = types[ti];
		size_t rb = tm_row_bytes(type, cols);
		void *w = malloc(rb * rows);
		float *X = malloc((size_t)n * cols * sizeof(float)), *Y = malloc((size_t)n * rows * sizeof(float));
		float y[41];

		tm_fill_random(type, w, (int64_t)rows * cols, &seed, 1.0f);
		for (int i = 0; i < n * cols; i++)
			X[i] = frnd();
		tm_matmul_exact(pool, type, w, rb, rows, cols, X, n, Y);
		for (int t = 0; t < n; t++) {
			struct tm_matvec m = { type, w, rb, rows, cols, X + (size_t)t * cols, y };

			tm_matvec(pool, &m);
			off += memcmp(y, Y + (size_t)t * rows, sizeof(y)) != 0;
		}
		free(w);
		free(X);
		free(Y);
	}
	tap_ok(off == 0, "%s: tm_matmul_exact of 17 tokens equals 17 matvecs bit for bit, q4_K q8_0 q2_K q3_K iq4_xs q4_1 q5_0 q5_1 q4_0 (%d differ)",
	       isa, off);
	tm_pool_destroy(pool);
}

/*
 * Batch invariance: a token's outputs from a table's whole-batch matmul do
 * not depend on its batch. 40 tokens at once, then windows of 16-33 of them
 * starting anywhere (so each token sits at other lanes of other tiles, with
 * other padding) on 1-3 threads: every output the same bits.
 */
static void test_invariant(const char *isa)
{
	static const int types[] = { TM_Q8_0, TM_Q4_K, TM_Q5_K, TM_Q6_K };
	static const int win[][2] = { { 0, 16 }, { 3, 17 }, { 5, 24 }, { 11, 17 }, { 7, 33 }, { 24, 16 } };
	const int rows = 37, cols = 512, n = 40;
	struct tm_pool *pools[3];

	if (!tm_kern()->gemm) {	/* "avx512-vnni" on a CPU without VNNI is the plain AVX-512 table */
		tap_skip("%s: this CPU has no whole-batch matmul for it", isa);
		return;
	}
	pools[0] = NULL;
	pools[1] = tm_pool_create(2, 0);
	pools[2] = tm_pool_create(3, 0);
	for (int ti = 0; ti < 4; ti++) {
		int type = types[ti], off = 0, taken = 1;
		size_t rb = tm_row_bytes(type, cols);
		void *w = malloc(rb * rows);
		float *X = malloc((size_t)n * cols * sizeof(float));
		float *Y = malloc((size_t)n * rows * sizeof(float)), *Z = malloc((size_t)n * rows * sizeof(float));

		tm_fill_random(type, w, (int64_t)rows * cols, &seed, 1.0f);
		for (int i = 0; i < n * cols; i++)
			X[i] = frnd() * (i % 7 == 0 ? 4.f : 1.f);
		tm_matmul(pools[1], type, w, rb, rows, cols, X, n, Y);
		for (int wi = 0; wi < 6; wi++) {
			int s = win[wi][0], m = win[wi][1];

			taken &= tm_kern()->gemm->takes(type, m);
			tm_matmul(pools[wi % 3], type, w, rb, rows, cols, X + (size_t)s * cols, m, Z);
			off += memcmp(Z, Y + (size_t)s * rows, (size_t)m * rows * sizeof(float)) != 0;
		}
		tap_ok(taken && off == 0, "%s %s matmul: a token's outputs are the same bits in batches of 16-40 "
		       "at any position, 1-3 threads (%d of 6 windows differ)", isa, tm_dtype_traits(type)->name, off);
		free(w);
		free(X);
		free(Y);
		free(Z);
	}
	for (int i = 0; i < 3; i++)
		tm_pool_destroy(pools[i]);
}

/* The r16 layouts (import/DDR-load repack): their matmul equals the GGUF layout's within 2e-5 S. */
static void test_r16(const char *isa)
{
	const int rows = 45, cols = 512, n = 19;
	struct tm_pool *pool = tm_pool_create(2, 0);
	int bad = 0;

	for (int ti = 0; ti < 2; ti++) {
		int type = ti ? TM_Q6_K : TM_Q4_K;
		size_t rb = tm_row_bytes(type, cols);
		void *w = malloc(rb * rows), *wr = malloc(rb * rows);
		float *X = malloc((size_t)n * cols * sizeof(float)), *Y = malloc((size_t)n * rows * sizeof(float));
		double e;

		tm_fill_random(type, w, (int64_t)rows * cols, &seed, 1.0f);
		memcpy(wr, w, rb * rows);
		bad += tm_repack(type, wr, rows, cols) != 0;
		for (int i = 0; i < n * cols; i++)
			X[i] = frnd();
		tm_matmul(pool, tm_repack_type(type), wr, rb, rows, cols, X, n, Y);
		e = check(type, w, rows, cols, X, n, Y);
		bad += !(e <= 2e-5);
		free(w);
		free(wr);
		free(X);
		free(Y);
	}
	tap_ok(bad == 0, "%s: matmul of q4_K_r16 and q6_K_r16 (45 rows: 2 groups and a GGUF tail) equals the GGUF's", isa);
	tm_pool_destroy(pool);
}

int main(void)
{
	static const char *const isas[] = { "avx512-amx", "avx512-vnni", "avx2", "scalar" };

	for (int i = 0; i < 4; i++) {
		if (tm_kernels_force_isa(isas[i])) {
			tap_skip("%s: this CPU (or its kernel) does not run it", isas[i]);
			continue;
		}
		test_shapes(isas[i]);
		test_exact(isas[i]);
		test_r16(isas[i]);
		if (i <= 1) {	/* the whole-batch matmuls: AMX and VNNI */
			test_invariant(isas[i]);
			test_large(isas[i]);
		}
	}
	return tap_done();
}
