// SPDX-License-Identifier: MIT
/*
 * make check-gpu: the CUDA path against the CPU, on a machine with a GPU.
 *
 *   check-gpu kernels            each kernel of kernels/cuda/ on fresh random data
 *   check-gpu logits MODEL...    whole-model logits, GPU vs CPU, decode and prefill;
 *                                the VRAM counter per decoded token
 *   check-gpu bench MODEL [ROUNDS] [TOKENS]
 *                                decode tok/s with all weights in VRAM, alternating
 *                                with a read of the same bytes: share of bandwidth
 *
 * TAP on stdout. Without a GPU every check is "# SKIP" with the reason, never a pass.
 *
 * Kernel tolerance: a GPU result y against the CPU's double-precision sum
 * over the reference dequantization (tm_dequant_row) must satisfy
 * |y - ref| <= 2e-5 * sum |w_i x_i|: float accumulation in another order
 * over <= 4096 terms costs under 1e-6 of that sum, so 2e-5 leaves a margin
 * while a mis-decoded chunk (8 of 512 values wrong) moves a dot product by
 * about 1e-2 of it, 500 times the bound. The small ops get 1e-5 relative.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/quant_dot.h"
#include "tests/unit/tap.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/generate.h"
#include "tiermem/gpu.h"
#include "tiermem/model.h"

static uint64_t rng = 42;

static float frand(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (float)(z >> 40) * 0x1p-24f * 2.f - 1.f;
}

static void fill(float *x, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = frand() * scale;
}

#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
	fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); exit(1); } } while (0)

static void *dput(const void *h, size_t bytes)
{
	void *d;

	CK(cudaMalloc(&d, bytes ? bytes : 16));
	if (h)
		CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
	return d;
}

/* A float buffer on the device filled with NaN, so an unwritten element cannot pass. */
static float *dnan(size_t n)
{
	float *h = malloc(sizeof(float) * n), *d;

	for (size_t i = 0; i < n; i++)
		h[i] = NAN;
	d = dput(h, sizeof(float) * n);
	free(h);
	return d;
}

static float *dget(const float *d, size_t n)
{
	float *h = malloc(sizeof(float) * n);

	CK(cudaDeviceSynchronize());
	CK(cudaMemcpy(h, d, sizeof(float) * n, cudaMemcpyDeviceToHost));
	return h;
}

/* max over i of |a - b| / (tol * scale_i + tiny): <= 1 passes; NaN fails. */
static double worst(const float *got, const double *ref, const double *scale, size_t n, double tol)
{
	double w = 0;

	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - ref[i]) / (tol * scale[i] + 1e-30);

		if (isnan(got[i]) || isnan(e))
			return INFINITY;
		if (e > w)
			w = e;
	}
	return w;
}

/* Nonzero where the CPU rounds this weight type's activations to q8: every quantized type. */
static int tm_act_type_of(int type)
{
	return type != TM_F32 && type != TM_F16 && type != TM_BF16;
}

static const int types[] = { TM_F32, TM_F16, TM_BF16, TM_Q4_0, TM_Q4_1, TM_Q5_0, TM_Q5_1, TM_Q8_0,
			     TM_Q2_K, TM_Q3_K, TM_Q4_K, TM_Q5_K, TM_Q6_K, TM_IQ4_XS };
#define NTYPES (int)(sizeof(types) / sizeof(types[0]))

struct wmat {
	int type, rows, cols, n_mat;
	size_t row_bytes;
	void *h, *d;
	float *deq;		/* n_mat * rows * cols */
};

static void wmat_make(struct wmat *w, int type, int rows, int cols, int n_mat)
{
	w->type = type;
	w->rows = rows;
	w->cols = cols;
	w->n_mat = n_mat;
	w->row_bytes = tm_row_bytes(type, cols);
	w->h = malloc(w->row_bytes * rows * n_mat);
	w->deq = malloc(sizeof(float) * rows * cols * n_mat);
	tm_fill_random(type, w->h, (int64_t)rows * cols * n_mat, &rng, 0.5f);
	for (int r = 0; r < rows * n_mat; r++)
		tm_dequant_row(type, (char *)w->h + r * w->row_bytes, w->deq + (size_t)r * cols, cols);
	w->d = dput(w->h, w->row_bytes * rows * n_mat);
}

static void wmat_free(struct wmat *w)
{
	free(w->h);
	free(w->deq);
	cudaFree(w->d);
}

static struct tmc_mv_job job_of(const struct wmat *w, float *y, size_t ys)
{
	return (struct tmc_mv_job){ .w = w->d, .row_stride = w->row_bytes,
				    .mat_stride = w->row_bytes * w->rows, .type = w->type, .rows = w->rows,
				    .y = y, .y_stride = ys };
}

/* ref[r] = sum of deq row r (matrix mat) * x, and the scale sum |w x|. */
static void ref_dot(const struct wmat *w, int mat, int r, const float *x, double *ref, double *scale)
{
	const float *row = w->deq + ((size_t)mat * w->rows + r) * w->cols;
	double s = 0, a = 0;

	for (int i = 0; i < w->cols; i++) {
		s += (double)row[i] * x[i];
		a += fabs((double)row[i] * x[i]);
	}
	*ref = s;
	*scale = a;
}

static double silu(double g)
{
	return g / (1.0 + exp(-g));
}

/* n tokens through one matrix of each type: matvec (n 1) and the tiled matmul (n 13), += on top of y0. */
static void check_matvec(void)
{
	const int rows = 67, cols = 512;

	for (int ti = 0; ti < NTYPES; ti++) {
		for (int pass = 0; pass < 2; pass++) {
			int n = pass ? 13 : 1, acc = pass;
			struct wmat w;
			float *x = malloc(sizeof(float) * n * cols), *y0 = malloc(sizeof(float) * n * rows);
			double *ref = malloc(sizeof(double) * n * rows), *sc = malloc(sizeof(double) * n * rows);
			float *dx, *dy, *got;
			int err;

			wmat_make(&w, types[ti], rows, cols, 1);
			fill(x, (size_t)n * cols, 1.f);
			fill(y0, (size_t)n * rows, 1.f);
			dx = dput(x, sizeof(float) * n * cols);
			dy = acc ? dput(y0, sizeof(float) * n * rows) : dnan((size_t)n * rows);
			err = tmc_matvec(&(struct tmc_mv){ .job = { job_of(&w, dy, rows) }, .n_jobs = 1, .cols = cols,
							   .n = n, .x = dx, .x_stride = cols, .accumulate = acc }, 0);
			got = dget(dy, (size_t)n * rows);
			for (int t = 0; t < n; t++)
				for (int r = 0; r < rows; r++) {
					ref_dot(&w, 0, r, x + t * cols, &ref[t * rows + r], &sc[t * rows + r]);
					if (acc) {
						ref[t * rows + r] += y0[t * rows + r];
						sc[t * rows + r] += fabs(y0[t * rows + r]);
					}
				}
			double e = worst(got, ref, sc, (size_t)n * rows, 2e-5);

			tap_ok(!err && e <= 1, "matvec %s, %d token%s%s: worst error %.3g of the bound",
			       tm_dtype_traits(types[ti])->name, n, n > 1 ? "s (tiled matmul)" : "",
			       acc ? ", accumulating" : "", e);
			free(got);
			free(x);
			free(y0);
			free(ref);
			free(sc);
			cudaFree(dx);
			cudaFree(dy);
			wmat_free(&w);
		}
	}
}

static double rel_err(const float *got, const float *ref, size_t n)
{
	double num = 0, den = 0;

	for (size_t i = 0; i < n; i++) {
		if (isnan(got[i]))
			return INFINITY;
		num = fmax(num, fabs((double)got[i] - ref[i]));
		den = fmax(den, fabs((double)ref[i]));
	}
	return num / (den + 1e-30);
}

/* q, k, v of three types in one launch; then gate/up fused with SwiGLU; then experts by id. */
static void check_matvec_multi(void)
{
	const int cols = 256, n = 3;
	struct wmat a, b, c;
	float *x = malloc(sizeof(float) * n * cols), *dx, *ya, *yb, *yc, *ga, *gb, *gc;
	double e = 0;
	int err;

	wmat_make(&a, TM_Q4_K, 64, cols, 1);
	wmat_make(&b, TM_Q6_K, 16, cols, 1);
	wmat_make(&c, TM_Q8_0, 16, cols, 1);
	fill(x, (size_t)n * cols, 1.f);
	dx = dput(x, sizeof(float) * n * cols);
	ya = dnan(n * 64);
	yb = dnan(n * 16);
	yc = dnan(n * 16);
	err = tmc_matvec(&(struct tmc_mv){ .job = { job_of(&a, ya, 64), job_of(&b, yb, 16), job_of(&c, yc, 16) },
					   .n_jobs = 3, .cols = cols, .n = n, .x = dx, .x_stride = cols }, 0);
	ga = dget(ya, n * 64);
	gb = dget(yb, n * 16);
	gc = dget(yc, n * 16);
	for (int t = 0; t < n; t++) {
		const struct wmat *ws[3] = { &a, &b, &c };
		float *gs[3] = { ga, gb, gc };

		for (int k = 0; k < 3; k++)
			for (int r = 0; r < ws[k]->rows; r++) {
				double ref, sc, d;

				ref_dot(ws[k], 0, r, x + t * cols, &ref, &sc);
				d = fabs(gs[k][t * ws[k]->rows + r] - ref) / (2e-5 * sc);
				e = isnan(d) || isnan(gs[k][t * ws[k]->rows + r]) ? INFINITY : fmax(e, d);
			}
	}
	tap_ok(!err && e <= 1, "one launch, three matrices of q4_K, q6_K, q8_0 (q, k, v): worst %.3g of the bound", e);
	free(ga);
	free(gb);
	free(gc);
	cudaFree(ya);
	cudaFree(yb);
	cudaFree(yc);

	/* gate (a, 64 rows) and up (a second q4_K) fused: silu(gate) * up */
	struct wmat u, u5;

	wmat_make(&u, TM_Q4_K, 64, cols, 1);
	wmat_make(&u5, TM_Q5_K, 64, cols, 1);
	ya = dnan(n * 64);
	err = tmc_matvec(&(struct tmc_mv){ .job = { job_of(&a, ya, 64), job_of(&u, ya, 64) }, .n_jobs = 2,
					   .cols = cols, .n = n, .x = dx, .x_stride = cols, .glu = 1 }, 0);
	ga = dget(ya, n * 64);
	e = 0;
	for (int t = 0; t < n; t++)
		for (int r = 0; r < 64; r++) {
			double g, gs, up, us, ref, d;

			ref_dot(&a, 0, r, x + t * cols, &g, &gs);
			ref_dot(&u, 0, r, x + t * cols, &up, &us);
			ref = silu(g) * up;
			/* first-order error propagation of both dot products' bounds */
			d = fabs(ga[t * 64 + r] - ref) / (2e-5 * (fabs(up) * gs + fabs(silu(g)) * us) + 1e-30);
			e = isnan(d) ? INFINITY : fmax(e, d);
		}
	tap_ok(!err && e <= 1, "gate and up fused with SwiGLU (q4_K): worst %.3g of the bound", e);
	tap_ok(tmc_matvec(&(struct tmc_mv){ .job = { job_of(&a, ya, 64), job_of(&u5, ya, 64) }, .n_jobs = 2,
					    .cols = cols, .n = n, .x = dx, .x_stride = cols, .glu = 1 }, 0) == -EINVAL,
	       "fused SwiGLU refuses gate and up of different types (the forward pass then uses tmc_swiglu)");
	free(ga);
	{
		float g[256], up[256], ref[256];
		float *dg, *du, *got;

		fill(g, 256, 6.f);
		fill(up, 256, 2.f);
		tm_swiglu(ref, g, up, 256);
		dg = dput(g, sizeof(g));
		du = dput(up, sizeof(up));
		err = tmc_swiglu(dg, dg, du, 256, 0);
		got = dget(dg, 256);
		e = rel_err(got, ref, 256);
		tap_ok(!err && e < 1e-6, "swiglu: relative error %.3g", e);
		free(got);
		cudaFree(dg);
		cudaFree(du);
	}
	cudaFree(ya);
	wmat_free(&u);
	wmat_free(&u5);

	/* experts: 5 matrices, 2 tokens x 3 experts each, pair p reads token p / 3 */
	struct wmat ex;
	int ids[6] = { 4, 0, 2, 2, 1, 4 }, *did;
	const int E = 32;

	wmat_make(&ex, TM_Q4_K, E, cols, 5);
	did = dput(ids, sizeof(ids));
	ya = dnan(6 * E);
	err = tmc_matvec(&(struct tmc_mv){ .job = { job_of(&ex, ya, E) }, .n_jobs = 1, .cols = cols, .n = 6,
					   .x = dx, .x_stride = cols, .ids = did, .x_div = 3 }, 0);
	ga = dget(ya, 6 * E);
	e = 0;
	for (int p = 0; p < 6; p++)
		for (int r = 0; r < E; r++) {
			double ref, sc, d;

			ref_dot(&ex, ids[p], r, x + (p / 3) * cols, &ref, &sc);
			d = fabs(ga[p * E + r] - ref) / (2e-5 * sc);
			e = isnan(d) ? INFINITY : fmax(e, d);
		}
	tap_ok(!err && e <= 1, "experts chosen by device-side ids (MoE): worst %.3g of the bound", e);
	tap_ok(tmc_matvec(&(struct tmc_mv){ .job = { job_of(&ex, ya, E) }, .n_jobs = 1, .cols = 100, .n = 1,
					    .x = dx, .x_stride = cols }, 0) == -EINVAL &&
	       tmc_matvec(&(struct tmc_mv){ .job = { { .w = ex.d, .type = TM_Q8_K, .rows = 4, .y = ya } },
					    .n_jobs = 1, .cols = cols, .n = 1, .x = dx, .x_stride = cols }, 0) == -EINVAL,
	       "matvec refuses a column count off the 8-element chunks and a type without a decoder");
	free(ga);
	cudaFree(ya);
	cudaFree(did);
	wmat_free(&ex);
	wmat_free(&a);
	wmat_free(&b);
	wmat_free(&c);
	cudaFree(dx);
	free(x);
}

/*
 * The dp4a path (kernels/quant_dot.h): the device's q8a quantization must
 * give the host's bytes (tm_q8a_block, which test_quant_dot checks against
 * the CPU's q8_0 quantizer), and each type's matvec must match a double sum
 * over the reference dequantization times the activation as quantized,
 * within the float path's bound (2e-5 of sum |w_i x_i|): the integer sums
 * are exact, only the float combination of units differs.
 */
struct qact {
	int8_t *qs;
	tm_q8a_meta *meta;
	float *deq;		/* d * q per element */
};

static void qact_make(struct qact *q, const float *x, int n_rows, int cols)
{
	q->qs = malloc((size_t)n_rows * cols);
	q->meta = malloc(sizeof(tm_q8a_meta) * n_rows * (cols / 32));
	q->deq = malloc(sizeof(float) * n_rows * cols);
	for (int b = 0; b < n_rows * cols / 32; b++) {
		tm_q8a_block(x + 32 * b, q->qs + 32 * b, &q->meta[b]);
		for (int i = 0; i < 32; i++)
			q->deq[32 * b + i] = q->meta[b].d * q->qs[32 * b + i];
	}
}

static void qact_free(struct qact *q)
{
	free(q->qs);
	free(q->meta);
	free(q->deq);
}

/* The first n_rows rows of the device's q8a scratch (laid out for xq_rows rows of cols) equal the host's. */
static int qact_same(const void *dxq, const struct qact *q, int n_rows, int xq_rows, int cols)
{
	size_t nq = (size_t)n_rows * cols, all = (size_t)xq_rows * cols, bytes = TM_Q8A_BYTES(all);
	char *h = malloc(bytes);
	int same;

	CK(cudaDeviceSynchronize());
	CK(cudaMemcpy(h, dxq, bytes, cudaMemcpyDeviceToHost));
	same = !memcmp(h, q->qs, nq) && !memcmp(h + all, q->meta, sizeof(tm_q8a_meta) * (nq / 32));
	free(h);
	return same;
}

static void check_dp4a(void)
{
	const int rows = 67, cols = 512, E = 32;
	const int qt[] = { TM_Q4_0, TM_Q4_1, TM_Q5_0, TM_Q5_1, TM_Q8_0, TM_Q2_K, TM_Q3_K, TM_Q4_K, TM_Q5_K, TM_Q6_K,
			   TM_IQ4_XS };
	float *x = malloc(sizeof(float) * 2 * cols), *dx, *dy, *got;
	double *ref = malloc(sizeof(double) * 6 * rows), *sc = malloc(sizeof(double) * 6 * rows);
	struct qact q;
	void *dxq = dput(NULL, TM_Q8A_BYTES(2 * cols));
	int err, on;

	fill(x, 2 * (size_t)cols, 1.f);
	x[7] = 3.5f;	/* a block whose largest magnitude is an outlier */
	qact_make(&q, x, 2, cols);
	dx = dput(x, sizeof(float) * 2 * cols);
	for (size_t ti = 0; ti < sizeof(qt) / sizeof(qt[0]); ti++) {
		struct wmat w;
		struct tmc_mv a;
		double e;

		wmat_make(&w, qt[ti], rows, cols, 1);
		dy = dnan(rows);
		a = (struct tmc_mv){ .job = { job_of(&w, dy, rows) }, .n_jobs = 1, .cols = cols, .n = 1, .x = dx,
				     .x_stride = cols, .xq = dxq, .xq_rows = 2 };
		on = tmc_matvec_dp4a(&a);
		err = tmc_matvec(&a, 0);
		got = dget(dy, rows);
		for (int r = 0; r < rows; r++)	/* the reference against the activation as quantized */
			ref_dot(&w, 0, r, q.deq, &ref[r], &sc[r]);
		e = worst(got, ref, sc, rows, 2e-5);
		tap_ok(on && !err && e <= 1 && qact_same(dxq, &q, 1, 2, cols),
		       "dp4a matvec %s: %s, the device's q8a = the host's, worst error %.3g of the bound",
		       tm_dtype_traits(qt[ti])->name, on ? "dp4a path taken" : "dp4a path NOT taken", e);
		free(got);
		cudaFree(dy);
		wmat_free(&w);
	}

	/* three jobs (q4_K, q6_K, q8_0), fused SwiGLU (q5_K), experts by id (q6_K, 2 tokens x 3 experts) */
	{
		struct wmat a4, b6, c8, g5, u5, ex;
		float *ya = dnan(64), *yb = dnan(16), *yc = dnan(16), *ga, *gb, *gc;
		int ids[6] = { 4, 0, 2, 2, 1, 4 }, *did = dput(ids, sizeof(ids));
		struct tmc_mv a;
		double e = 0;

		wmat_make(&a4, TM_Q4_K, 64, cols, 1);
		wmat_make(&b6, TM_Q6_K, 16, cols, 1);
		wmat_make(&c8, TM_Q8_0, 16, cols, 1);
		a = (struct tmc_mv){ .job = { job_of(&a4, ya, 64), job_of(&b6, yb, 16), job_of(&c8, yc, 16) },
				     .n_jobs = 3, .cols = cols, .n = 1, .x = dx, .x_stride = cols, .xq = dxq, .xq_rows = 2 };
		on = tmc_matvec_dp4a(&a);
		err = tmc_matvec(&a, 0);
		ga = dget(ya, 64);
		gb = dget(yb, 16);
		gc = dget(yc, 16);
		{
			const struct wmat *ws[3] = { &a4, &b6, &c8 };
			float *gs[3] = { ga, gb, gc };

			for (int k = 0; k < 3; k++)
				for (int r = 0; r < ws[k]->rows; r++) {
					double rf, s2;

					ref_dot(ws[k], 0, r, q.deq, &rf, &s2);
					e = isnan(gs[k][r]) ? INFINITY : fmax(e, fabs(gs[k][r] - rf) / (2e-5 * s2));
				}
		}
		tap_ok(on && !err && e <= 1, "dp4a: one launch of q4_K, q6_K and q8_0 (q, k, v): worst %.3g of the bound", e);
		free(ga); free(gb); free(gc);

		wmat_make(&g5, TM_Q5_K, 64, cols, 1);
		wmat_make(&u5, TM_Q5_K, 64, cols, 1);
		cudaFree(ya);
		ya = dnan(64);
		a = (struct tmc_mv){ .job = { job_of(&g5, ya, 64), job_of(&u5, ya, 64) }, .n_jobs = 2, .cols = cols,
				     .n = 1, .x = dx, .x_stride = cols, .glu = 1, .xq = dxq, .xq_rows = 2 };
		on = tmc_matvec_dp4a(&a);
		err = tmc_matvec(&a, 0);
		ga = dget(ya, 64);
		e = 0;
		for (int r = 0; r < 64; r++) {
			double g, gs, up, us, rf;

			ref_dot(&g5, 0, r, q.deq, &g, &gs);
			ref_dot(&u5, 0, r, q.deq, &up, &us);
			rf = silu(g) * up;
			double d = fabs(ga[r] - rf) / (2e-5 * (fabs(up) * gs + fabs(silu(g)) * us) + 1e-30);

			e = isnan(d) ? INFINITY : fmax(e, d);
		}
		tap_ok(on && !err && e <= 1, "dp4a: gate and up (q5_K) fused with SwiGLU: worst %.3g of the bound", e);
		free(ga);
		cudaFree(ya);

		wmat_make(&ex, TM_Q6_K, E, cols, 5);
		ya = dnan(6 * E);
		a = (struct tmc_mv){ .job = { job_of(&ex, ya, E) }, .n_jobs = 1, .cols = cols, .n = 6, .x = dx,
				     .x_stride = cols, .ids = did, .x_div = 3, .xq = dxq, .xq_rows = 2 };
		on = tmc_matvec_dp4a(&a);
		err = tmc_matvec(&a, 0);
		ga = dget(ya, 6 * E);
		e = 0;
		for (int p = 0; p < 6; p++)
			for (int r = 0; r < E; r++) {
				double rf, s2;

				ref_dot(&ex, ids[p], r, q.deq + (p / 3) * cols, &rf, &s2);
				e = isnan(ga[p * E + r]) ? INFINITY : fmax(e, fabs(ga[p * E + r] - rf) / (2e-5 * s2));
			}
		tap_ok(on && !err && e <= 1 && qact_same(dxq, &q, 2, 2, cols),
		       "dp4a: experts by device-side ids (q6_K, 2 tokens): worst %.3g of the bound, both rows' q8a = the host's", e);
		free(ga);
		cudaFree(ya);

		/* where the path does not apply, the float one runs */
		struct wmat f16;

		wmat_make(&f16, TM_F16, 16, cols, 1);
		a = (struct tmc_mv){ .job = { job_of(&a4, dy = dnan(64), 64), job_of(&f16, dy, 16) }, .n_jobs = 2,
				     .cols = cols, .n = 1, .x = dx, .x_stride = cols, .xq = dxq, .xq_rows = 2 };
		int f16_off = !tmc_matvec_dp4a(&a);

		a.n_jobs = 1;
		a.n = 3;
		int batch_off = !tmc_matvec_dp4a(&a);

		a.n = 1;
		a.xq_rows = 0;
		int small_off = !tmc_matvec_dp4a(&a);

		a.xq_rows = 2;
		a.job[0].row_stride += 2;	/* q4_K rows off 16-byte alignment */
		int align_off = !tmc_matvec_dp4a(&a);

		tap_ok(f16_off && batch_off && small_off && align_off,
		       "dp4a path declined for an f16 job, 3 tokens, too small a scratch, misaligned q4_K rows");
		cudaFree(dy);
		wmat_free(&f16);
		wmat_free(&a4); wmat_free(&b6); wmat_free(&c8); wmat_free(&g5); wmat_free(&u5); wmat_free(&ex);
		cudaFree(did);
	}
	/*
	 * RMSNorm that also rounds its output to q8a for the matvecs after it
	 * (tmc_mv.xq_ready): the host's q8a of the device's own floats, and a
	 * matvec reading them equal, bit for bit, to one rounding x itself.
	 */
	{
		float *wn = malloc(sizeof(float) * cols), *ref2 = malloc(sizeof(float) * 2 * cols), *gout, *g1, *g2;
		float *dwn, *dout = dnan(2 * (size_t)cols), *dy1 = dnan(16), *dy2 = dnan(16);
		struct qact q2;
		struct wmat a4;
		struct tmc_mv a;
		int ok_norm, same_q, same_y;

		fill(wn, cols, 1.f);
		dwn = dput(wn, sizeof(float) * cols);
		for (int t = 0; t < 2; t++)
			tm_rmsnorm(ref2 + t * cols, x + t * cols, wn, cols, 1e-5f);
		err = tmc_rmsnorm_q8a(dout, dx, dwn, 2, cols, 1e-5f, dxq, 2, 0);
		gout = dget(dout, 2 * (size_t)cols);
		qact_make(&q2, gout, 2, cols);
		ok_norm = !err && rel_err(gout, ref2, 2 * (size_t)cols) < 1e-5;
		same_q = qact_same(dxq, &q2, 2, 2, cols);
		wmat_make(&a4, TM_Q4_K, 16, cols, 1);
		a = (struct tmc_mv){ .job = { job_of(&a4, dy1, 16) }, .n_jobs = 1, .cols = cols, .n = 1, .x = dout,
				     .x_stride = cols, .xq = dxq, .xq_rows = 2, .xq_ready = 1 };
		err = tmc_matvec(&a, 0);
		a.job[0].y = dy2;
		a.xq_ready = 0;
		err |= tmc_matvec(&a, 0);
		g1 = dget(dy1, 16);
		g2 = dget(dy2, 16);
		same_y = !err && !memcmp(g1, g2, sizeof(float) * 16) && !isnan(g1[0]);
		tap_ok(ok_norm && same_q && same_y,
		       "rmsnorm with q8a output: norm %s, q8a = the host's of its floats %s, a matvec on it = one rounding x itself %s",
		       ok_norm ? "ok" : "WRONG", same_q ? "yes" : "NO", same_y ? "bit for bit" : "DIFFERS");
		tap_ok(tmc_rmsnorm_q8a(dout, dx, dwn, 3, cols, 1e-5f, dxq, 2, 0) == -EINVAL &&
		       tmc_rmsnorm_q8a(dout, dx, dwn, 1, 40, 1e-5f, dxq, 2, 0) == -EINVAL,
		       "rmsnorm with q8a output refuses more rows than the scratch and a width off 32");
		qact_free(&q2);
		wmat_free(&a4);
		free(wn); free(ref2); free(gout); free(g1); free(g2);
		cudaFree(dwn); cudaFree(dout); cudaFree(dy1); cudaFree(dy2);
	}
	qact_free(&q);
	free(x);
	free(ref);
	free(sc);
	cudaFree(dx);
	cudaFree(dxq);
}

static void check_ops(void)
{
	const int n_tok = 3, n_head = 4, n_head_kv = 2, hd = 64, n_rot = 64, n_ctx = 16, pos0 = 5;
	const int QD = n_head * hd, KVD = n_head_kv * hd, E = 384;
	struct tm_pool *pool = tm_pool_create(1, 0);
	float *x = malloc(sizeof(float) * n_tok * E), *w = malloc(sizeof(float) * E), *ref, *got;
	float *dx, *dw, *dout;
	double e;

	/* RMSNorm */
	fill(x, (size_t)n_tok * E, 3.f);
	fill(w, E, 1.f);
	ref = malloc(sizeof(float) * n_tok * E);
	for (int t = 0; t < n_tok; t++)
		tm_rmsnorm(ref + t * E, x + t * E, w, E, 1e-5f);
	dx = dput(x, sizeof(float) * n_tok * E);
	dw = dput(w, sizeof(float) * E);
	dout = dnan((size_t)n_tok * E);
	{
		int err = tmc_rmsnorm(dout, dx, dw, n_tok, E, 1e-5f, 0);

		got = dget(dout, (size_t)n_tok * E);
		e = rel_err(got, ref, (size_t)n_tok * E);
		tap_ok(!err && e < 1e-5, "rmsnorm: relative error %.3g", e);
	}
	free(got);
	free(ref);
	cudaFree(dout);

	/* RoPE + cache store, both pairings, with and without the qwen3 per-head norms */
	for (int mode = 0; mode <= 2; mode += 2)
		for (int norm = 0; norm < 2; norm++) {
			float *q = malloc(sizeof(float) * n_tok * QD), *k = malloc(sizeof(float) * n_tok * KVD);
			float *v = malloc(sizeof(float) * n_tok * KVD), *cs = malloc(sizeof(float) * n_tok * n_rot);
			float *qn = malloc(sizeof(float) * hd), *kn = malloc(sizeof(float) * hd);
			float *kref = malloc(sizeof(float) * n_ctx * KVD), *qref = malloc(sizeof(float) * n_tok * QD);
			float *dq, *dk, *dv, *dcs, *dkc, *dvc, *dqn, *dkn, *gq, *gk, *gv;
			int *dpos = dput(&pos0, sizeof(int)), bad = 0;

			fill(q, (size_t)n_tok * QD, 1.f);
			fill(k, (size_t)n_tok * KVD, 1.f);
			fill(v, (size_t)n_tok * KVD, 1.f);
			fill(qn, hd, 1.f);
			fill(kn, hd, 1.f);
			for (int t = 0; t < n_tok; t++)
				tm_rope_table(cs + t * n_rot, pos0 + t, n_rot, 10000.f, 1.f, NULL);
			dq = dput(q, sizeof(float) * n_tok * QD);
			dk = dput(k, sizeof(float) * n_tok * KVD);
			dv = dput(v, sizeof(float) * n_tok * KVD);
			dcs = dput(cs, sizeof(float) * n_tok * n_rot);
			dqn = dput(qn, sizeof(float) * hd);
			dkn = dput(kn, sizeof(float) * hd);
			dkc = dnan((size_t)n_ctx * KVD);
			dvc = dnan((size_t)n_ctx * KVD);
			memcpy(qref, q, sizeof(float) * n_tok * QD);
			for (int t = 0; t < n_tok; t++) {
				float *kr = kref + (size_t)(pos0 + t) * KVD;

				memcpy(kr, k + t * KVD, sizeof(float) * KVD);
				if (norm) {
					tm_rmsnorm_rows(qref + t * QD, qn, n_head, hd, 1e-6f);
					tm_rmsnorm_rows(kr, kn, n_head_kv, hd, 1e-6f);
				}
				tm_rope_apply(qref + t * QD, n_head, hd, n_rot, cs + t * n_rot, mode);
				tm_rope_apply(kr, n_head_kv, hd, n_rot, cs + t * n_rot, mode);
			}
			int err = tmc_rope_store(&(struct tmc_rope){
				.n_tok = n_tok, .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd, .n_rot = n_rot,
				.mode = mode, .pos0 = dpos, .cs = dcs, .q = dq, .q_stride = QD, .k_new = dk, .v_new = dv,
				.kv_new_stride = KVD, .k_cache = dkc, .v_cache = dvc, .kv_stride = KVD,
				.q_norm = norm ? dqn : NULL, .k_norm = norm ? dkn : NULL, .eps = 1e-6f }, 0);
			gq = dget(dq, (size_t)n_tok * QD);
			gk = dget(dkc, (size_t)n_ctx * KVD);
			gv = dget(dvc, (size_t)n_ctx * KVD);
			e = rel_err(gq, qref, (size_t)n_tok * QD);
			e = fmax(e, rel_err(gk + pos0 * KVD, kref + pos0 * KVD, (size_t)n_tok * KVD));
			for (int i = 0; i < n_tok * KVD; i++)
				bad += gv[pos0 * KVD + i] != v[i];
			for (int i = 0; i < pos0 * KVD; i++)	/* rows before pos0 untouched */
				bad += !isnan(gk[i]) || !isnan(gv[i]);
			tap_ok(!err && e < 1e-5 && !bad, "rope %s%s and cache store at position %d: error %.3g, %d misplaced",
			       mode ? "neox" : "norm", norm ? " with q/k norms" : "", pos0, e, bad);
			free(q); free(k); free(v); free(cs); free(qn); free(kn); free(kref); free(qref);
			free(gq); free(gk); free(gv);
			cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(dcs); cudaFree(dkc); cudaFree(dvc);
			cudaFree(dqn); cudaFree(dkn); cudaFree(dpos);
		}

	/* attention over a cache of pos0 + n_tok rows, grouped KV heads: short, and longer than a block */
	for (int cfg = 0; cfg < 2; cfg++) {
		int at_tok = cfg ? 2 : n_tok, at_pos = cfg ? 300 : pos0, at_hd = cfg ? 128 : hd, at_ctx = cfg ? 320 : n_ctx;
		int at_QD = n_head * at_hd, at_KVD = n_head_kv * at_hd, len = at_pos + at_tok;
		float *q = malloc(sizeof(float) * at_tok * at_QD), *kc = malloc(sizeof(float) * len * at_KVD);
		float *vc = malloc(sizeof(float) * len * at_KVD), *out = malloc(sizeof(float) * at_tok * at_QD);
		float *scratch = malloc(sizeof(float) * tm_attention_scratch_floats(tm_pool_threads(pool), n_head,
										      n_head_kv, at_hd, 0, at_ctx, TM_F32));
		float *dq, *dk, *dv, *dsc, *dout2;
		int *dpos = dput(&at_pos, sizeof(int));

		fill(q, (size_t)at_tok * at_QD, 2.f);
		fill(kc, (size_t)len * at_KVD, 2.f);
		fill(vc, (size_t)len * at_KVD, 1.f);
		tm_attention(pool, &(struct tm_attn){ .n_tok = at_tok, .pos0 = at_pos, .n_head = n_head,
			.n_head_kv = n_head_kv, .head_dim = at_hd, .scale = 0.125f, .q = q, .q_stride = at_QD,
			.type_k = TM_F32, .type_v = TM_F32, .k = kc, .v = vc,
			.k_row_bytes = sizeof(float) * at_KVD, .v_row_bytes = sizeof(float) * at_KVD,
			.out = out, .out_stride = at_QD, .scratch = scratch, .n_ctx = at_ctx });
		dq = dput(q, sizeof(float) * at_tok * at_QD);
		dk = dput(kc, sizeof(float) * len * at_KVD);
		dv = dput(vc, sizeof(float) * len * at_KVD);
		dsc = dnan((size_t)at_tok * n_head * at_ctx);
		dout2 = dnan((size_t)at_tok * at_QD);
		int err = tmc_attention(&(struct tmc_attn){ .n_tok = at_tok, .n_head = n_head, .n_head_kv = n_head_kv,
			.head_dim = at_hd, .n_ctx = at_ctx, .pos0 = dpos, .scale = 0.125f, .q = dq, .q_stride = at_QD,
			.k = dk, .v = dv, .kv_stride = at_KVD, .out = dout2, .out_stride = at_QD, .scores = dsc }, 0);
		got = dget(dout2, (size_t)at_tok * at_QD);
		e = rel_err(got, out, (size_t)at_tok * at_QD);
		tap_ok(!err && e < 1e-5, "attention, %d queries at %d.., %d heads of %d over %d KV heads: error %.3g",
		       at_tok, at_pos, n_head, at_hd, n_head_kv, e);
		free(q); free(kc); free(vc); free(out); free(scratch); free(got);
		cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(dsc); cudaFree(dout2); cudaFree(dpos);
	}

	/* routing: softmax, top-k, renormalised; then the weighted sum of expert outputs */
	{
		const int n_exp = 64, K = 8, T = 4;
		float *lg = malloc(sizeof(float) * T * n_exp), *gw, *p = malloc(sizeof(float) * n_exp);
		int *gsel = malloc(sizeof(int) * T * K), *dsel, bad = 0;
		float *dlg, *dw2;

		fill(lg, (size_t)T * n_exp, 4.f);
		lg[3] = lg[7];	/* a tie: the lower id must win, as on the CPU */
		dlg = dput(lg, sizeof(float) * T * n_exp);
		dsel = dput(NULL, sizeof(int) * T * K);
		dw2 = dnan((size_t)T * K);
		int err = tmc_route(dlg, T, n_exp, K, dsel, dw2, 0);

		gw = dget(dw2, (size_t)T * K);
		CK(cudaMemcpy(gsel, dsel, sizeof(int) * T * K, cudaMemcpyDeviceToHost));
		e = 0;
		for (int t = 0; t < T; t++) {
			double sum = 0, wsel[64];
			int sel[64];

			memcpy(p, lg + t * n_exp, sizeof(float) * n_exp);
			tm_softmax(p, n_exp);
			for (int j = 0; j < K; j++) {
				int best = -1;

				for (int x2 = 0; x2 < n_exp; x2++) {
					int taken = 0;

					for (int i = 0; i < j; i++)
						taken |= sel[i] == x2;
					if (!taken && (best < 0 || p[x2] > p[best]))
						best = x2;
				}
				sel[j] = best;
				wsel[j] = p[best];
				sum += p[best];
			}
			for (int j = 0; j < K; j++) {
				bad += gsel[t * K + j] != sel[j];
				e = fmax(e, fabs(gw[t * K + j] - wsel[j] / sum) / (wsel[j] / sum));
			}
		}
		tap_ok(!err && !bad && e < 1e-5, "routing: top-%d of %d experts for %d tokens, %d ids differ, weights error %.3g",
		       K, n_exp, T, bad, e);
		free(gw);

		/* combine: x += sum_j w_j y_j */
		float *yg = malloc(sizeof(float) * T * K * E), *x0 = malloc(sizeof(float) * T * E);
		float *xr = malloc(sizeof(float) * T * E), *wk = malloc(sizeof(float) * T * K);
		float *dyg, *dx0, *dwk;

		fill(yg, (size_t)T * K * E, 1.f);
		fill(x0, (size_t)T * E, 1.f);
		fill(wk, (size_t)T * K, 1.f);
		for (int t = 0; t < T; t++) {
			float acc[384] = { 0 };

			for (int j = 0; j < K; j++)
				tm_axpy(acc, wk[t * K + j], yg + ((size_t)t * K + j) * E, E);
			for (int i = 0; i < E; i++)
				xr[t * E + i] = x0[t * E + i] + acc[i];
		}
		dyg = dput(yg, sizeof(float) * T * K * E);
		dx0 = dput(x0, sizeof(float) * T * E);
		dwk = dput(wk, sizeof(float) * T * K);
		err = tmc_moe_combine(dx0, dyg, dwk, T, K, E, 0);
		got = dget(dx0, (size_t)T * E);
		e = rel_err(got, xr, (size_t)T * E);
		tap_ok(!err && e < 1e-5, "MoE combine of %d experts: error %.3g", K, e);
		free(got); free(yg); free(x0); free(xr); free(wk); free(lg); free(p); free(gsel);
		cudaFree(dyg); cudaFree(dx0); cudaFree(dwk); cudaFree(dlg); cudaFree(dsel); cudaFree(dw2);
	}

	/* embedding rows of every type */
	{
		int bad = 0, tok[3] = { 5, 0, 5 }, *dtok = dput(tok, sizeof(tok));

		for (int ti = 0; ti < NTYPES; ti++) {
			struct wmat t;
			float *dxe = dnan(3 * 512);

			wmat_make(&t, types[ti], 9, 512, 1);
			if (tmc_embed(types[ti], t.d, t.row_bytes, dtok, 3, 512, dxe, 0))
				bad++;
			got = dget(dxe, 3 * 512);
			for (int r = 0; r < 3; r++)
				if (rel_err(got + r * 512, t.deq + tok[r] * 512, 512) > 1e-6)
					bad++;
			free(got);
			cudaFree(dxe);
			wmat_free(&t);
		}
		tap_ok(!bad, "embedding rows of all %d types: %d wrong", NTYPES, bad);
		cudaFree(dtok);
	}
	free(x);
	free(w);
	cudaFree(dx);
	cudaFree(dw);
	tm_pool_destroy(pool);
}

/* err per position = max |gpu - cpu| / std(cpu row), the peer suite's measure */
static void row_err(const float *a, const float *b, int V, double *err, int *same_top)
{
	double mean = 0, var = 0, mx = 0;
	int ta = 0, tb = 0;

	for (int i = 0; i < V; i++)
		mean += b[i];
	mean /= V;
	for (int i = 0; i < V; i++) {
		var += (b[i] - mean) * (b[i] - mean);
		mx = isnan(a[i]) ? INFINITY : fmax(mx, fabs((double)a[i] - b[i]));
		if (a[i] > a[ta])
			ta = i;
		if (b[i] > b[tb])
			tb = i;
	}
	*err = mx / (sqrt(var / V) + 1e-30);
	*same_top = ta == tb;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * row_err over n positions of a against b: errs[0..n) sorted ascending,
 * *mx their largest (by fmax: a NaN error is not counted), and how many positions
 * share the top-1 token.
 */
static int rows_err(const float *a, const float *b, int n, int V, double *errs, double *mx)
{
	int top = 0, same;

	*mx = 0;
	for (int i = 0; i < n; i++) {
		row_err(a + (size_t)i * V, b + (size_t)i * V, V, &errs[i], &same);
		top += same;
		*mx = fmax(*mx, errs[i]);
	}
	qsort(errs, n, sizeof(double), cmp_d);
	return top;
}

/*
 * The model with every matrix dequantized to f32 (tm_dequant_row): on it
 * the CPU computes what the GPU computes on the quantized file (float
 * activations, no q8 rounding), up to the order of float sums.
 */
struct twin {
	struct tm_model m;
	void *bufs[4096];
	int n;
};

static int to_f32(struct twin *t, struct tm_weight *w)
{
	size_t rows = (size_t)w->rows * w->n_mat;
	float *f;

	if (!w->data || w->type == TM_F32)
		return 0;
	if (t->n == (int)(sizeof(t->bufs) / sizeof(t->bufs[0])) || !(f = malloc(sizeof(float) * rows * w->cols)))
		return -1;
	for (size_t r = 0; r < rows; r++)
		tm_dequant_row(w->type, (const char *)w->data + r * w->row_bytes, f + r * w->cols, w->cols);
	t->bufs[t->n++] = f;
	w->data = f;
	w->type = TM_F32;
	w->row_bytes = sizeof(float) * w->cols;
	w->mat_bytes = w->row_bytes * w->rows;
	return 0;
}

static int twin_make(struct twin *t, const struct tm_model *m)
{
	int err = 0, tied = m->output.data == m->tok_embd.data;

	t->m = *m;
	t->n = 0;
	t->m.owns_file = false;
	t->m.layers = malloc(sizeof(*m->layers) * m->hp.n_layer);
	if (!t->m.layers)
		return -1;
	memcpy(t->m.layers, m->layers, sizeof(*m->layers) * m->hp.n_layer);
	err |= to_f32(t, &t->m.tok_embd);
	if (tied)
		t->m.output = t->m.tok_embd;
	else
		err |= to_f32(t, &t->m.output);
	for (int l = 0; l < m->hp.n_layer; l++) {
		struct tm_layer *L = &t->m.layers[l];
		struct tm_weight *ws[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down,
					   &L->gate_inp, &L->gate_exps, &L->up_exps, &L->down_exps };

		for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
			err |= to_f32(t, ws[i]);
	}
	return err;
}

static void twin_free(struct twin *t)
{
	for (int i = 0; i < t->n; i++)
		free(t->bufs[i]);
	free(t->m.layers);
}

/* tok[0..n) through gc: decode step by step (batch 1) or in batches. */
static int forward_all(struct tm_ctx *gc, const int32_t *tok, int n, int batch, float *out)
{
	int err = 0, V = gc->m->hp.n_vocab;

	if (batch > 1)
		return tm_forward(gc, tok, n, out, true);
	for (int i = 0; i < n && !err; i++)
		err = tm_forward(gc, tok + i, 1, out + (size_t)i * V, true);
	return err;
}

/* The GPU's logits for tok[0..n) under -ot rules: decode step by step (batch 1) or in batches; *gcp kept for its counters. */
static int gpu_logits(const struct tm_model *m, struct tm_pool *pool, const int32_t *tok, int n, int batch,
		      const char *rule, float *out, struct tm_ctx **gcp)
{
	struct tm_override ot;
	int err, V = m->hp.n_vocab;

	*gcp = NULL;
	for (size_t i = 0; i < (size_t)n * V; i++)
		out[i] = NAN;
	if (rule && tm_override_parse(rule, &ot))
		return -EINVAL;
	if ((err = tm_ctx_create(gcp, m, pool, n, batch)) || (err = tm_gpu_attach_ot(*gcp, &ot, rule ? 1 : 0)))
		return err;
	return forward_all(*gcp, tok, n, batch, out);
}

/*
 * The hybrid (-ot exps=CPU: routed experts on the CPU, per MoE layer the
 * hidden state to the host and back, the CPU's work a host node of the
 * captured graph) and pcie (-ot exps=pcie: the experts read in place from the
 * registered file mapping) on an MoE model. Written without a GPU; these are
 * the checks that say whether they work.
 * - hybrid vs the CPU path: for unquantized weights the exact tier (both
 *   halves compute in float); with quantized experts the CPU half rounds its
 *   activations to q8 as tm_forward does, so the distance is printed, and the
 *   top-1 agreement, not bounded. The weight bytes: GPU (VRAM) plus the CPU
 *   half's equal the model's per-token count, the experts' not in VRAM.
 * - pcie vs all-in-VRAM: the same kernels on the same bytes, so bit-identical
 *   logits; the PCIe counter holds exactly the experts' bytes.
 */
static void check_offload(const struct tm_model *m, struct tm_pool *pool, const char *name, const int32_t *tok,
			  int n, const float *ref, int quant, const float *vram1)
{
	int V = m->hp.n_vocab;
	float *out = malloc(sizeof(float) * n * V);
	struct tm_ctx *gc = NULL;
	int err;

	if (!out)
		return;
	for (int batch = 1; batch <= 16; batch += 15) {
		double errs[40], mx;
		int top;

		err = gpu_logits(m, pool, tok, n, batch, "_exps=CPU", out, &gc);
		top = rows_err(out, ref, n, V, errs, &mx);
		if (quant)
			printf("# %s hybrid %s vs CPU (q8-rounded experts on the CPU): max %.3g, median %.3g, same top-1 at %d of %d%s\n",
			       name, batch == 1 ? "decode" : "prefill", mx, errs[n / 2], top, n, err ? " (FAILED TO RUN)" : "");
		if (!quant || err)
			tap_ok(!err && mx <= 0.01 && errs[n / 2] <= 0.005,
			       "%s: hybrid -ot exps=CPU %s vs CPU logits: max %.3g, median %.3g; same top-1 at %d%s%s", name,
			       batch == 1 ? "decode" : "prefill (batch 16)", mx, errs[n / 2], top, err ? ": " : "",
			       err ? tm_strerror() : "");
		if (!err && batch == 1)
			tap_ok(gc->weight_bytes == (uint64_t)n * m->bytes_per_token && gc->vram_bytes < gc->weight_bytes &&
			       !gc->pcie_bytes,
			       "%s: hybrid counters: %llu weight bytes per token (%llu from VRAM, the rest by the CPU), the model's count %llu",
			       name, (unsigned long long)(gc->weight_bytes / n), (unsigned long long)(gc->vram_bytes / n),
			       (unsigned long long)m->bytes_per_token);
		tm_ctx_free(gc);
		gc = NULL;
	}
	err = gpu_logits(m, pool, tok, n, 1, "_exps=pcie", out, &gc);
	tap_ok(!err && !memcmp(out, vram1, sizeof(float) * n * V),
	       "%s: -ot exps=pcie (experts read over PCIe from the registered mapping): logits bit-identical to all-in-VRAM%s%s",
	       name, err ? ": " : "", err ? tm_strerror() : "");
	if (!err)
		tap_ok(gc->vram_bytes + gc->pcie_bytes == (uint64_t)n * m->bytes_per_token && gc->pcie_bytes > 0,
		       "%s: pcie counters: %llu bytes per token over PCIe, %llu from VRAM", name,
		       (unsigned long long)(gc->pcie_bytes / n), (unsigned long long)(gc->vram_bytes / n));
	tm_ctx_free(gc);
	free(out);
}

/* gpu_logits with the VRAM expert cache (a quarter of each layer's experts, LRU); *xp kept for its counters. */
static int cached_logits(const struct tm_model *m, struct tm_pool *pool, const int32_t *tok, int n, int batch,
			 const char *rule, float *out, struct tm_ctx **gcp, struct tm_xvram **xp)
{
	struct tm_xcache_opts o = { .policy = TM_XP_LRU, .slots = m->hp.n_expert / 4 ? m->hp.n_expert / 4 : 1 };
	struct tm_override ot;
	int err, V = m->hp.n_vocab;

	*gcp = NULL;
	*xp = NULL;
	for (size_t i = 0; i < (size_t)n * V; i++)
		out[i] = NAN;
	if (tm_override_parse(rule, &ot))
		return -EINVAL;
	if ((err = tm_ctx_create(gcp, m, pool, n, batch)) ||
	    (err = tm_xvram_create(xp, m, &o, strstr(rule, "CPU") ? TM_XVRAM_CPU : TM_XVRAM_PCIE,
				   (*gcp)->n_batch * m->hp.n_expert_used)) ||
	    (err = tm_gpu_attach_xvram(*gcp, &ot, 1, *xp)))
		return err;
	return forward_all(*gcp, tok, n, batch, out);
}

/*
 * The expert cache in VRAM (run --gpu --expert-cache), against the same
 * placement without it, decode and prefill:
 * - pcie: hits read the expert from its VRAM slot, misses are gathered over
 *   PCIe into a slot first; the same kernels on the same bytes, so the
 *   logits (and so the greedy text) must be bit-identical to -ot exps=pcie
 *   without the cache. Counters: VRAM + PCIe bytes = the model's per token.
 * - CPU: the GPU computes the hits from their slots, the CPU the misses.
 *   The GPU keeps activations float where the CPU rounds them to q8, so for
 *   unquantized experts both are the exact tier (bounds as check_model)
 *   and the greedy tokens must equal the hybrid's; for quantized ones the
 *   distance and top-1 agreement are printed (the cache moves work from
 *   the q8-rounding CPU to the float GPU). Counters: as the hybrid's.
 * In both the cache must hit (40 tokens, a quarter of the experts cached).
 * Written without a GPU: these checks are what says whether it works.
 */
static void check_xcache(const struct tm_model *m, struct tm_pool *pool, const char *name, const int32_t *tok,
			 int n, int quant)
{
	int V = m->hp.n_vocab;
	float *a = malloc(sizeof(float) * n * V), *b = malloc(sizeof(float) * n * V);

	for (int mode = 0; a && b && mode < 2; mode++) {
		const char *rule = mode ? "_exps=pcie" : "_exps=CPU";

		for (int batch = 1; batch <= 16; batch += 15) {
			struct tm_ctx *gc = NULL, *xc = NULL;
			struct tm_xvram *x = NULL;
			struct tm_xvram_stats st = { 0 };
			double errs[40], mx;
			int err, err2, top;
			const char *what = batch == 1 ? "decode" : "prefill (batch 16)";

			err = gpu_logits(m, pool, tok, n, batch, rule, a, &gc);
			err2 = cached_logits(m, pool, tok, n, batch, rule, b, &xc, &x);
			if (x)
				tm_xvram_stats(x, &st);
			if (err || err2) {
				tap_ok(0, "%s: VRAM expert cache, %s, %s: %s", name, rule + 6, what, tm_strerror());
			} else if (mode) {
				tap_ok(!memcmp(a, b, sizeof(float) * n * V) && st.hit_pairs > 0,
				       "%s: VRAM expert cache with misses over PCIe, %s: logits bit-identical to -ot exps=pcie "
				       "without it (%llu of %llu expert uses hit)", name, what,
				       (unsigned long long)st.hit_pairs, (unsigned long long)st.pairs);
			} else {
				top = rows_err(b, a, n, V, errs, &mx);
				if (quant)
					printf("# %s VRAM cache, CPU misses, %s vs the hybrid: max %.3g, median %.3g, same top-1 at %d of %d (%llu of %llu uses hit)\n",
					       name, what, mx, errs[n / 2], top, n, (unsigned long long)st.hit_pairs,
					       (unsigned long long)st.pairs);
				else
					tap_ok(mx <= 0.01 && errs[n / 2] <= 0.005 && top == n && st.hit_pairs > 0,
					       "%s: VRAM expert cache with CPU misses, %s, vs -ot exps=CPU without it: max %.3g, "
					       "median %.3g, the same greedy token at %d of %d (%llu of %llu uses hit)", name, what,
					       mx, errs[n / 2], top, n, (unsigned long long)st.hit_pairs,
					       (unsigned long long)st.pairs);
			}
			if (!err && !err2 && batch == 1)
				tap_ok(xc->weight_bytes == (uint64_t)n * m->bytes_per_token &&
				       (mode ? xc->vram_bytes + xc->pcie_bytes == xc->weight_bytes : !xc->pcie_bytes),
				       "%s: VRAM expert cache (%s) counters: %llu weight bytes per token, %llu from VRAM, %llu over "
				       "PCIe; the model's count %llu", name, rule + 6,
				       (unsigned long long)(xc->weight_bytes / n), (unsigned long long)(xc->vram_bytes / n),
				       (unsigned long long)(xc->pcie_bytes / n), (unsigned long long)m->bytes_per_token);
			tm_ctx_free(gc);
			tm_ctx_free(xc);
			tm_xvram_free(x);
		}
	}
	free(a);
	free(b);
}

/*
 * Whole model: the CPU's logits (tm_forward) against the GPU's for the same
 * tokens, decode (batch 1, the captured graph) and prefill (batch 16).
 * The CPU rounds activations to q8_0/q8_K for quantized weights and the GPU
 * does not, so for those the reference is the CPU on the f32 twin (above),
 * which does the GPU's arithmetic; then every type is held to the peer
 * suite's exact tier (tests/suites/40-peer-logits.sh): per position
 * max |gpu - cpu| / std(cpu row), worst <= 0.01 and median <= 0.005.
 * Measured on an H200: about 1e-6 for f32/f16/bf16. A mis-decoded sub-block
 * or a wrong RoPE gives errors of order 0.1-1 (that suite's analysis).
 * The distance to the CPU's own q8-rounded path is printed as a comment:
 * it is the rounding the CPU does, not a GPU error.
 */
static void check_model(const char *path)
{
	struct tm_model m;
	struct tm_pool *pool = tm_pool_create(2, 0);
	const int n = 40;
	int32_t tok[40];
	float *cpu = NULL, *gpu = NULL, *vram1 = NULL;
	struct tm_ctx *cc = NULL, *gc = NULL;
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

	if (tm_model_load(&m, path)) {
		tap_ok(0, "%s: %s", name, tm_strerror());
		tm_pool_destroy(pool);
		return;
	}
	int V = m.hp.n_vocab, quant = 0;
	uint64_t s = 7;
	float *ref = NULL;
	struct twin *tw = calloc(1, sizeof(*tw));

	for (int l = 0; l < m.hp.n_layer; l++)
		quant |= tm_act_type_of(m.layers[l].wq.type) || tm_act_type_of(m.layers[l].down.type) ||
			 tm_act_type_of(m.layers[l].down_exps.type) || tm_act_type_of(m.output.type);
	for (int i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		tok[i] = (int32_t)((s >> 33) % (uint64_t)V);
	}
	cpu = malloc(sizeof(float) * n * V);
	gpu = malloc(sizeof(float) * n * V);
	vram1 = malloc(sizeof(float) * n * V);
	if (tm_ctx_create(&cc, &m, pool, n, 16) || tm_forward(cc, tok, n, cpu, true)) {
		tap_ok(0, "%s: CPU forward: %s", name, tm_strerror());
		goto out;
	}
	ref = cpu;
	if (quant) {
		tm_ctx_free(cc);
		cc = NULL;
		ref = malloc(sizeof(float) * n * V);
		if (!tw || !ref || twin_make(tw, &m) || tm_ctx_create(&cc, &tw->m, pool, n, 16) ||
		    tm_forward(cc, tok, n, ref, true)) {
			tap_ok(0, "%s: CPU forward on the f32 twin failed", name);
			goto out;
		}
	}
	/*
	 * TIERMEM_CUDA_MATVEC=dp4a rounds the GPU's activations to 8 bits as the
	 * CPU's quantized path does (in blocks of 32, not q8_K's 256): against
	 * the f32 twin it may then be as far as the CPU's own path is, not
	 * further: median <= 1.5 x the CPU's median + 0.005 (a mis-decoded block
	 * costs 0.1-1). Prefill's dense matmuls stay float, its experts (by ids)
	 * take dp4a, so prefill is held to the same bound.
	 */
	int dp4a = getenv("TIERMEM_CUDA_MATVEC") && !strcmp(getenv("TIERMEM_CUDA_MATVEC"), "dp4a");
	double cpu_med = 0;

	if (quant && dp4a) {
		double e3[40], mx3;

		rows_err(cpu, ref, n, V, e3, &mx3);
		cpu_med = e3[n / 2];
	}
	for (int batch = 1; batch <= 16; batch += 15) {
		double errs[40], med, mx;
		int top, err;

		for (size_t i = 0; i < (size_t)n * V; i++)
			gpu[i] = NAN;
		if ((err = tm_ctx_create(&gc, &m, pool, n, batch)) || (err = tm_gpu_attach(gc))) {
			tap_ok(0, "%s: GPU context: %s", name, tm_strerror());
			tm_ctx_free(gc);
			gc = NULL;
			continue;
		}
		if (batch == 1) {
			/* decode: one token per step, through the captured graph */
			for (int i = 0; i < n && !err; i++)
				err = tm_forward(gc, tok + i, 1, gpu + (size_t)i * V, true);
		} else {
			err = tm_forward(gc, tok, n, gpu, true);
		}
		if (quant) {
			double e2[40], mx2;
			int t2 = rows_err(gpu, cpu, n, V, e2, &mx2);

			printf("# %s %s: against the CPU's q8-rounded path: max %.3g, median %.3g, same top-1 at %d of %d\n",
			       name, batch == 1 ? "decode" : "prefill", e2[n - 1], e2[n / 2], t2, n);
		}
		top = rows_err(gpu, ref, n, V, errs, &mx);
		med = errs[n / 2];
		if (quant && dp4a) {
			tap_ok(!err && med <= 1.5 * cpu_med + 0.005,
			       "%s (%s, %s): GPU %s, dp4a path, vs CPU (f32 twin) logits over %d positions: median %.3g "
			       "(bound 1.5 x the CPU q8 path's %.3g + 0.005), max %.3g; same top-1 at %d",
			       name, m.hp.arch_name, tm_dtype_traits(m.layers[0].wq.type)->name,
			       batch == 1 ? "decode" : "prefill (batch 16)", n, med, cpu_med, mx, top);
		} else {
			tap_ok(!err && mx <= 0.01 && med <= 0.005,
			       "%s (%s, %s): GPU %s vs CPU%s logits over %d positions: max %.3g, median %.3g (bounds 0.01, 0.005); same top-1 at %d",
			       name, m.hp.arch_name, tm_dtype_traits(m.layers[0].wq.type)->name,
			       batch == 1 ? "decode" : "prefill (batch 16)", quant ? " (f32 twin)" : "", n, mx, med, top);
		}
		if (batch == 1) {
			uint64_t per = gc->vram_bytes / n;

			memcpy(vram1, gpu, sizeof(float) * n * V);
			tap_ok(gc->vram_bytes == (uint64_t)n * m.bytes_per_token,
			       "%s: VRAM counter: %llu weight bytes per decoded token, the model's own count is %llu",
			       name, (unsigned long long)per, (unsigned long long)m.bytes_per_token);
		}
		tm_ctx_free(gc);
		gc = NULL;
	}
	if (m.hp.moe && !dp4a) {	/* the hybrid and the VRAM expert cache are checked on the float path */
		check_offload(&m, pool, name, tok, n, quant ? cpu : ref, quant, vram1);
		check_xcache(&m, pool, name, tok, n, quant);
	}
out:
	tm_ctx_free(cc);
	if (ref != cpu)
		free(ref);
	if (tw)
		twin_free(tw);
	free(tw);
	free(cpu);
	free(gpu);
	free(vram1);
	tm_model_free(&m);
	tm_pool_destroy(pool);
}

/*
 * Decode speed with all weights in VRAM, alternating rounds of `tokens`
 * decode steps with reads of bytes_per_token bytes as many times (the same
 * bytes a token streams, one read kernel each), medians over the rounds.
 */
static int decode_steps(struct tm_ctx *c, int n_vocab, int tokens, double *tps)
{
	int32_t t = 1;
	double t0;

	tm_ctx_reset(c);
	for (int i = 0; i < 4; i++)	/* warm-up; the first one captures the graph */
		if (tm_forward(c, &t, 1, NULL, false))
			return -1;
	t0 = tm_now();
	for (int i = 0; i < tokens; i++) {
		t = (int32_t)((t * 7919 + i) % n_vocab);
		if (tm_forward(c, &t, 1, NULL, false))
			return -1;
	}
	*tps = tokens / (tm_now() - t0);
	return 0;
}

static int bench(const char *path, int rounds, int tokens)
{
	struct tm_model m;
	struct tm_pool *pool = tm_pool_create(1, 0);
	struct tm_ctx *cg = NULL, *cn = NULL;
	double tps[64], gbps[64], share[64], tps_ng[64];
	struct tm_gpu_info info;
	int rc = 1;

	if (rounds > 64)
		rounds = 64;
	if (tm_model_load(&m, path)) {
		fprintf(stderr, "bench: %s\n", tm_strerror());
		tm_pool_destroy(pool);
		return 1;
	}
	if (tm_gpu_probe(&info)) {
		printf("bench: SKIP: %s\n", tm_strerror());
		rc = 0;
		goto out;
	}
	/* two copies in VRAM: one decoding through the captured graph, one with plain launches */
	setenv("TIERMEM_CUDA_GRAPH", "0", 1);
	if (tm_ctx_create(&cn, &m, pool, tokens + 8, 1) || tm_gpu_attach(cn))
		goto fail;
	setenv("TIERMEM_CUDA_GRAPH", "1", 1);
	if (tm_ctx_create(&cg, &m, pool, tokens + 8, 1) || tm_gpu_attach(cg))
		goto fail;
	for (int r = 0; r < rounds; r++) {
		if (decode_steps(cg, m.hp.n_vocab, tokens, &tps[r]) ||
		    decode_steps(cn, m.hp.n_vocab, tokens, &tps_ng[r]) ||
		    tm_gpu_read_bench(m.bytes_per_token, tokens, &gbps[r]))
			goto fail;
		share[r] = tps[r] * m.bytes_per_token / 1e9 / gbps[r];
	}
	qsort(tps, rounds, sizeof(double), cmp_d);
	qsort(tps_ng, rounds, sizeof(double), cmp_d);
	qsort(gbps, rounds, sizeof(double), cmp_d);
	qsort(share, rounds, sizeof(double), cmp_d);
	printf("bench %s: %s, %.1f MiB read per token on %s: decode %.1f tok/s (graph), %.1f tok/s (plain launches); "
	       "read kernel %.0f GB/s on the same byte count; bandwidth share %.1f%% "
	       "(medians of %d alternating rounds of %d tokens)\n",
	       strrchr(path, '/') ? strrchr(path, '/') + 1 : path, m.hp.arch_name, m.bytes_per_token / 1048576.0,
	       info.name, tps[rounds / 2], tps_ng[rounds / 2], gbps[rounds / 2], 100 * share[rounds / 2], rounds,
	       tokens);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bench: %s\n", tm_strerror());
out:
	tm_ctx_free(cg);
	tm_ctx_free(cn);
	tm_model_free(&m);
	tm_pool_destroy(pool);
	return rc;
}

/*
 * One matvec alone (decode's shape: 1 token) over a 64K x 8K matrix of each
 * type, 4 matrices in turn so that no read hits the 60 MB L2, timed with
 * events: weight GB/s against the read kernel's on as many bytes.
 */
static int kbench(void)
{
	const int rows = 65536, cols = 8192, reps = 20;
	const int kt[] = { TM_Q4_K, TM_Q5_K, TM_Q6_K, TM_Q8_0, TM_Q4_0, TM_Q4_1, TM_Q5_0, TM_Q5_1, TM_Q2_K, TM_Q3_K,
			   TM_IQ4_XS, TM_F16, TM_BF16 };
	struct tm_gpu_info info;
	float *x = malloc(sizeof(float) * cols), *dx, *dy;
	void *dxq;
	cudaEvent_t e0, e1;

	if (tm_gpu_probe(&info)) {
		printf("kbench: SKIP: %s\n", tm_strerror());
		free(x);
		return 0;
	}
	CK(cudaSetDevice(0));
	CK(cudaEventCreate(&e0));
	CK(cudaEventCreate(&e1));
	fill(x, cols, 1.f);
	dx = dput(x, sizeof(float) * cols);
	dxq = dput(NULL, TM_Q8A_BYTES(cols));
	dy = dnan(rows);
	for (size_t i = 0; i < sizeof(kt) / sizeof(kt[0]); i++) {
		size_t rb = tm_row_bytes(kt[i], cols), bytes = rb * rows;
		void *w[4];
		double t[2][20], rd;
		unsigned char *h = malloc(rb * 1024);
		int modes = tm_qdot_has(kt[i]) ? 2 : 1;

		tm_fill_random(kt[i], h, (int64_t)1024 * cols, &rng, 0.5f);
		for (int k = 0; k < 4; k++) {
			CK(cudaMalloc(&w[k], bytes));
			for (int r = 0; r < rows; r += 1024)
				CK(cudaMemcpy((char *)w[k] + (size_t)r * rb, h, rb * 1024, cudaMemcpyHostToDevice));
		}
		/* the float path and the dp4a path alternating, each on the next copy */
		for (int r = -2; r < reps; r++) {
			for (int mode = 0; mode < modes; mode++) {
				float ms;

				CK(cudaEventRecord(e0, 0));
				tmc_matvec(&(struct tmc_mv){ .job = { { .w = w[(2 * r + mode + 8) % 4], .row_stride = rb,
									 .type = kt[i], .rows = rows, .y = dy } },
							     .n_jobs = 1, .cols = cols, .n = 1, .x = dx, .x_stride = cols,
							     .xq = mode ? dxq : NULL, .xq_rows = 1 }, 0);
				CK(cudaEventRecord(e1, 0));
				CK(cudaEventSynchronize(e1));
				CK(cudaEventElapsedTime(&ms, e0, e1));
				if (r >= 0)
					t[mode][r] = bytes / (ms * 1e-3) / 1e9;
			}
		}
		if (tm_gpu_read_bench(bytes, reps, &rd))
			rd = 0;
		for (int mode = 0; mode < modes; mode++) {
			qsort(t[mode], reps, sizeof(double), cmp_d);
			printf("kbench %-6s %-5s matvec %dx%d (%.0f MB): %.0f GB/s; read kernel on as many bytes %.0f GB/s (%.0f%%)\n",
			       tm_dtype_traits(kt[i])->name, mode ? "dp4a" : "float", rows, cols, bytes / 1e6,
			       t[mode][reps / 2], rd, 100 * t[mode][reps / 2] / rd);
		}
		if (modes == 2)
			printf("kbench %-6s dp4a / float: %.2fx\n", tm_dtype_traits(kt[i])->name, t[1][reps / 2] / t[0][reps / 2]);
		for (int k = 0; k < 4; k++)
			cudaFree(w[k]);
		free(h);
	}
	free(x);
	cudaFree(dx);
	cudaFree(dxq);
	cudaFree(dy);
	return 0;
}

int main(int argc, char **argv)
{
	struct tm_gpu_info info;

	if (argc < 2) {
		fprintf(stderr, "usage: check-gpu kernels | logits MODEL... | bench MODEL [ROUNDS] [TOKENS] | kbench\n");
		return 2;
	}
	if (!getenv("TIERMEM_CUDA_LIB")) {
		/* make puts this binary in build/cuda/ and the object in build/ */
		char exe[4096], lib[4200];
		ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		if (len > 0) {
			exe[len] = '\0';
			*strrchr(exe, '/') = '\0';
			snprintf(lib, sizeof(lib), "%s/../libtiermem-cuda.so", exe);
			setenv("TIERMEM_CUDA_LIB", lib, 0);
		}
	}
	if (!strcmp(argv[1], "kbench"))
		return kbench();
	if (!strcmp(argv[1], "bench"))
		return argc < 3 ? 2 : bench(argv[2], argc > 3 ? atoi(argv[3]) : 5, argc > 4 ? atoi(argv[4]) : 64);
	if (tm_gpu_probe(&info)) {
		tap_skip("%s", tm_strerror());
		return tap_done();
	}
	printf("# %s, compute capability %d.%d, %d SMs, %.1f GiB VRAM; CUDA runtime %d, driver %d\n", info.name,
	       info.cc_major, info.cc_minor, info.n_sm, info.vram_total / 1073741824.0, info.runtime_version,
	       info.driver_version);
	if (!strcmp(argv[1], "kernels")) {
		CK(cudaSetDevice(0));
		check_matvec();
		check_matvec_multi();
		check_dp4a();
		check_ops();
	} else if (!strcmp(argv[1], "logits")) {
		for (int i = 2; i < argc; i++)
			check_model(argv[i]);
	} else {
		fprintf(stderr, "check-gpu: unknown mode '%s'\n", argv[1]);
		return 2;
	}
	return tap_done();
}
