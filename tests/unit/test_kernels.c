// SPDX-License-Identifier: MIT
/*
 * The kernels: decoding of hand-built blocks, the scalar reference against a
 * double-precision sum, every ISA against the scalar reference, batches and
 * matmul against single matvecs, over several thread counts.
 *
 * Tolerances are relative to S = sum |w_i * x_i| of the row (the scale any
 * rounding error is proportional to), never to |y|, which can be ~0:
 *  - reference vs double: 1e-5 S. Within a quantized block the sum is exact
 *    in integers; what is left is float rounding of per-block products and
 *    of the running sum (a few ulps of S for our row lengths).
 *  - ISA vs reference: 2e-5 S. Same integers, same block scales; only the
 *    order of float additions differs (and FMA vs mul+add). A mis-decoded
 *    sub-block or scale is off by a large fraction of S, not 1e-5.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/cpu/kern.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tap.h"

static const int types[] = { TM_F32, TM_F16, TM_BF16, TM_Q4_0, TM_Q4_1, TM_Q5_0, TM_Q5_1, TM_Q8_0,
			     TM_Q2_K, TM_Q3_K, TM_Q4_K, TM_Q5_K, TM_Q6_K, TM_IQ4_XS };
#define NTYPES (int)(sizeof(types) / sizeof(types[0]))
static const char *const isas[] = { "scalar", "avx2", "avx512-novnni", "avx512-vnni", "avx512" };
#define NISAS 5

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}
static float frnd(float lo, float hi)
{
	return lo + (hi - lo) * (float)(rnd() & 0xffffff) / (float)0x1000000;
}

/* Random weights: random bytes, every scale field a sane finite half. */
static void fill_weights(int type, void *w, int rows, int cols)
{
	tm_fill_random(type, w, (int64_t)rows * cols, &rng, 1.0f);
}

static void fill_x(float *x, int n)
{
	for (int i = 0; i < n; i++)
		x[i] = frnd(-1, 1) * (rnd() % 16 == 0 ? 8.f : 1.f);
}

/* The activation as the kernel sees it after quantization, as floats. */
static void act_as_float(int type, const float *x, float *out, int cols)
{
	int act = tm_act_type(type);

	if (act == TM_F32) {
		memcpy(out, x, cols * sizeof(float));
	} else if (act == TM_Q8_0) {
		blk_q8_0 *q = malloc(tm_row_bytes(TM_Q8_0, cols));

		tm_quant_q8_0_ref(x, q, cols);
		tm_dequant_row(TM_Q8_0, q, out, cols);
		free(q);
	} else if (act == TM_Q8_1) {
		blk_q8_1 *q = malloc(tm_row_bytes(TM_Q8_1, cols));

		tm_quant_q8_1_ref(x, q, cols);
		for (int i = 0; i < cols; i++)
			out[i] = tm_f16_to_f32(q[i / QK].d) * q[i / QK].qs[i % QK];
		free(q);
	} else {
		blk_q8_K *q = malloc(tm_row_bytes(TM_Q8_K, cols));

		tm_quant_q8_K_ref(x, q, cols);
		for (int i = 0; i < cols; i++)
			out[i] = q[i / 256].d * q[i / 256].qs[i % 256];
		free(q);
	}
}

struct ref {
	double *y;	/* exact-ish dot of dequantized w and quantized-then-dequantized x */
	double *s;	/* sum |w*x|: the error scale */
};

/*
 * q4_1/q5_1 against q8_1: the kernels take each block's min term as
 * m * s with s = d * sum(qs) rounded to f16 (llama.cpp's), not as
 * m * d16 * sum(qs): what that changes in one row's dot product.
 */
static double q8_1_rounding(int type, const void *wrow, const float *x, int cols)
{
	const struct tm_dtype_traits *t = tm_dtype_traits(type);
	blk_q8_1 *q;
	double e = 0;

	if (tm_act_type(type) != TM_Q8_1)
		return 0;
	q = malloc(tm_row_bytes(TM_Q8_1, cols));
	tm_quant_q8_1_ref(x, q, cols);
	for (int b = 0; b < cols / QK; b++) {
		const blk_q4_1 *wb = (const void *)((const char *)wrow + (size_t)b * t->block_bytes);
		int sum = 0;

		for (int k = 0; k < QK; k++)
			sum += q[b].qs[k];
		e += (double)tm_f16_to_f32(wb->m) *
		     ((double)tm_f16_to_f32(q[b].s) - (double)tm_f16_to_f32(q[b].d) * sum);
	}
	free(q);
	return e;
}

static void reference(int type, const void *w, int rows, int cols, const float *x, struct ref *r)
{
	float *wf = malloc(cols * sizeof(float)), *xf = malloc(cols * sizeof(float));
	size_t rb = tm_row_bytes(type, cols);

	act_as_float(type, x, xf, cols);
	for (int i = 0; i < rows; i++) {
		double y = 0, s = 0;

		tm_dequant_row(type, (const char *)w + i * rb, wf, cols);
		for (int k = 0; k < cols; k++) {
			y += (double)wf[k] * xf[k];
			s += fabs((double)wf[k] * xf[k]);
		}
		r->y[i] = y + q8_1_rounding(type, (const char *)w + i * rb, x, cols);
		r->s[i] = s + 1e-30;
	}
	free(wf);
	free(xf);
}

static int close_to(const float *y, const double *want, const double *s, int n, double tol, double *worst)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		double e = fabs(y[i] - want[i]) / s[i];

		if (!(e <= tol))
			bad++;
		if (e > *worst || isnan(e))
			*worst = e;
	}
	return bad;
}

/* ---- hand-built blocks with known values ---- */

static void pack_kq_scales(uint8_t out[12], const uint8_t sc[8], const uint8_t m[8])
{
	for (int j = 0; j < 4; j++) {
		out[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
		out[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
		out[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
	}
}

static int check_known(int type)
{
	uint8_t blk[2 * 210];
	float want[512], got[512];
	int n = type == TM_Q4_0 || type == TM_Q8_0 ? 64 : 512, bad = 0;
	const float d = 0.5f, dmin = 0.25f;

	memset(blk, 0, sizeof(blk));
	for (int b = 0; b < n / (n == 64 ? 32 : 256); b++) {
		if (type == TM_Q8_0) {
			blk_q8_0 *q = (blk_q8_0 *)blk + b;

			q->d = tm_f32_to_f16(d * (b + 1));
			for (int l = 0; l < 32; l++) {
				q->qs[l] = (int8_t)(l * 9 - 100 + b);
				want[32 * b + l] = d * (b + 1) * q->qs[l];
			}
		} else if (type == TM_Q4_0) {
			blk_q4_0 *q = (blk_q4_0 *)blk + b;

			q->d = tm_f32_to_f16(d * (b + 1));
			for (int k = 0; k < 32; k++) {
				int v = (k * 5 + b) % 16;

				q->qs[k % 16] |= (uint8_t)(v << (k < 16 ? 0 : 4));
				want[32 * b + k] = d * (b + 1) * (v - 8);
			}
		} else if (type == TM_Q4_K || type == TM_Q5_K) {
			int five = type == TM_Q5_K;
			blk_q4_K *q4 = (blk_q4_K *)(blk + b * (five ? 176 : 144));
			blk_q5_K *q5 = (blk_q5_K *)q4;
			uint8_t *qs = five ? q5->qs : q4->qs, sc[8], m[8];

			for (int j = 0; j < 8; j++) {
				sc[j] = (uint8_t)(7 * j + 5 + b);	/* 5..57: uses the high bits */
				m[j] = (uint8_t)(63 - 6 * j - b);
			}
			q4->d = tm_f32_to_f16(d);
			q4->dmin = tm_f32_to_f16(dmin);
			pack_kq_scales(q4->scales, sc, m);
			for (int k = 0; k < 256; k++) {
				int j = k / 32, l = k % 32, v = (k * 7 + b * 3) % (five ? 32 : 16);

				qs[32 * (j / 2) + l] |= (uint8_t)((v & 15) << (4 * (j & 1)));
				if (five)
					q5->qh[l] |= (uint8_t)((v >> 4) << j);
				want[256 * b + k] = d * sc[j] * v - dmin * m[j];
			}
		} else if (type == TM_Q6_K) {
			blk_q6_K *q = (blk_q6_K *)(blk + b * 210);

			q->d = tm_f32_to_f16(d);
			for (int i = 0; i < 16; i++)
				q->scales[i] = (int8_t)(i * 11 - 80 + b);
			for (int k = 0; k < 256; k++) {
				int v = (k * 13 + b) % 64, h = k / 128, r = k % 128, qt = r / 32, l = r % 32;
				uint8_t *ql = q->ql + 64 * h + l + (qt & 1) * 32;

				*ql |= (uint8_t)((v & 15) << (qt >= 2 ? 4 : 0));
				q->qh[32 * h + l] |= (uint8_t)((v >> 4) << (2 * qt));
				want[256 * b + k] = d * q->scales[k / 16] * (v - 32);
			}
		}
	}
	tm_dequant_row(type, blk, got, n);
	for (int i = 0; i < n; i++)
		bad += got[i] != want[i];
	return bad;
}

/*
 * The types added for the K-quant mixes, built from ggml's layout
 * description: element order, bit positions and scale packing.
 */
static int check_known2(int type)
{
	uint8_t blk[2 * 110];
	float want[512], got[512];
	int n = type == TM_Q2_K || type == TM_Q3_K ? 512 : 64, bad = 0;
	const float d = 0.5f, m = -1.25f;

	memset(blk, 0, sizeof(blk));
	for (int b = 0; b < 2; b++) {
		if (type == TM_Q4_1 || type == TM_Q5_0 || type == TM_Q5_1) {
			int bs = tm_dtype_traits(type)->block_bytes, five = type != TM_Q4_1;
			uint8_t *p = blk + b * bs, *qs = p + (type == TM_Q5_0 ? 6 : type == TM_Q5_1 ? 8 : 4);
			uint8_t *qh = p + (type == TM_Q5_0 ? 2 : 4);
			uint16_t hd = tm_f32_to_f16(d * (b + 1)), hm = tm_f32_to_f16(m);

			memcpy(p, &hd, 2);
			if (type != TM_Q5_0)
				memcpy(p + 2, &hm, 2);
			for (int k = 0; k < 32; k++) {
				int v = (k * 7 + b * 3) % (five ? 32 : 16);

				qs[k % 16] |= (uint8_t)((v & 15) << (k < 16 ? 0 : 4));
				if (five)
					qh[k / 8] |= (uint8_t)((v >> 4) << (k % 8));
				want[32 * b + k] = type == TM_Q5_0 ? d * (b + 1) * (v - 16) : d * (b + 1) * v + m;
			}
		} else if (type == TM_Q2_K) {
			blk_q2_K *q = (blk_q2_K *)blk + b;

			q->d = tm_f32_to_f16(d);
			q->dmin = tm_f32_to_f16(0.25f);
			for (int k = 0; k < 16; k++)
				q->scales[k] = (uint8_t)(((k * 5 + b) % 16) | (((k * 3 + 7) % 16) << 4));
			for (int k = 0; k < 256; k++) {
				int h = k / 128, j = k % 128 / 32, l = k % 32, v = (k * 11 + b) % 4;
				uint8_t sc = q->scales[k / 16];

				q->qs[32 * h + l] |= (uint8_t)(v << (2 * j));
				want[256 * b + k] = d * (sc & 15) * v - 0.25f * (sc >> 4);
			}
		} else {
			blk_q3_K *q = (blk_q3_K *)blk + b;
			int sc[16];

			q->d = tm_f32_to_f16(d);
			for (int k = 0; k < 16; k++) {
				sc[k] = (k * 13 + 5 + b) % 64;	/* stored with +32: values -32..31 */
				q->scales[k % 8] |= (uint8_t)((sc[k] & 15) << (4 * (k / 8)));
				q->scales[8 + k % 4] |= (uint8_t)((sc[k] >> 4) << (2 * (k / 4)));
			}
			for (int k = 0; k < 256; k++) {
				int h = k / 128, j = k % 128 / 32, l = k % 32, v = (k * 11 + b) % 8 - 4;

				/* v in -4..3: low two bits of v + 4, and the high bit set when v >= 0 */
				q->qs[32 * h + l] |= (uint8_t)(((v + 4) & 3) << (2 * j));
				if (v >= 0)
					q->hmask[l] |= (uint8_t)(1 << (4 * h + j));
				want[256 * b + k] = d * (sc[k / 16] - 32) * v;
			}
		}
	}
	tm_dequant_row(type, blk, got, n);
	for (int i = 0; i < n; i++)
		bad += got[i] != want[i];
	return bad;
}

static void test_known_blocks(void)
{
	static const int qt[] = { TM_Q4_0, TM_Q8_0, TM_Q4_K, TM_Q5_K, TM_Q6_K };
	uint16_t h[4] = { tm_f32_to_f16(1.5f), tm_f32_to_f16(-2.25f), 0x3c00, 0x0001 };
	uint16_t bf[2] = { 0x3fc0, 0xc010 };
	float f[4];

	for (int i = 0; i < 5; i++) {
		int bad = check_known(qt[i]);

		tap_ok(bad == 0, "dequant_row %s decodes hand-built blocks (%d wrong)",
		       tm_dtype_traits(qt[i])->name, bad);
	}
	for (int t = TM_Q4_1; t <= TM_Q3_K; t++) {
		int bad;

		if (t == TM_Q8_0 || tm_dtype_act_only(t) || !tm_dtype_traits(t))
			continue;
		bad = check_known2(t);
		tap_ok(bad == 0, "dequant_row %s decodes hand-built blocks (%d wrong)", tm_dtype_traits(t)->name, bad);
	}
	{
		/*
		 * iq4_xs as GGML lays it out: sub-block j's scale is the nibble j % 2
		 * of scales_l[j / 2] plus bits 2j..2j+1 of scales_h as bits 4-5; its
		 * element l < 16 the low nibble of qs[16 j + l], l >= 16 the high one.
		 */
		blk_iq4_xs b;
		float out[QK_K];
		int bad = 0;

		memset(&b, 0, sizeof(b));
		b.d = tm_f32_to_f16(0.5f);
		for (int j = 0; j < 8; j++) {
			int ls = 32 + (j % 2 ? -(j + 1) : j + 1);	/* 33, 30, 35, 28, ...: bits 4-5 vary */

			b.scales_l[j / 2] |= (uint8_t)((ls & 15) << 4 * (j % 2));
			b.scales_h |= (uint16_t)((ls >> 4) << 2 * j);
		}
		for (int k = 0; k < QK_K / 2; k++)
			b.qs[k] = (uint8_t)((k % 16) | ((15 - k % 16) << 4));
		tm_dequant_row(TM_IQ4_XS, &b, out, QK_K);
		for (int k = 0; k < QK_K; k++) {
			int j = k / 32, l = k % 32, ls = 32 + (j % 2 ? -(j + 1) : j + 1);
			int code = l < 16 ? l : 15 - (l - 16);

			bad += out[k] != 0.5f * (float)(ls - 32) * tm_iq4nl_values[code];
		}
		tap_ok(bad == 0, "dequant_row iq4_xs decodes a hand-built block (%d wrong)", bad);
	}
	tm_dequant_row(TM_F16, h, f, 4);
	tap_ok(f[0] == 1.5f && f[1] == -2.25f && f[2] == 1.f && f[3] == 0x1p-24f, "dequant_row f16");
	tm_dequant_row(TM_BF16, bf, f, 2);
	tap_ok(f[0] == 1.5f && f[1] == -2.25f, "dequant_row bf16");
}

static void test_fill_random(void)
{
	const int n = 4096;
	float *v = malloc(n * sizeof(float));
	void *w = malloc(tm_row_bytes(TM_F32, n));
	int bad = 0;

	for (int ti = 0; ti < NTYPES; ti++) {
		float amax = 0;

		if (tm_fill_random(types[ti], w, n, &rng, 0.5f)) {
			bad++;
			continue;
		}
		tm_dequant_row(types[ti], w, v, n);
		for (int i = 0; i < n; i++) {
			if (!isfinite(v[i]))
				bad++;
			amax = fmaxf(amax, fabsf(v[i]));
		}
		/* the scale bounds the values, and random codes reach near it */
		bad += amax > 0.5f * 1.5f * 1.001f || amax < 0.5f * 0.3f;
	}
	tap_ok(bad == 0 && tm_fill_random(TM_Q4_K, w, 100, &rng, 1.f) == -1,
	       "fill_random: finite values within the scale, every type; partial blocks refused");
	free(v);
	free(w);
}

static void test_quantizers(void)
{
	int cols = 1024, bad = 0, badq = 0;
	float *x = malloc(cols * sizeof(float)), *xf = malloc(cols * sizeof(float));

	fill_x(x, cols);
	x[5] = -9.f;	/* the q8_K block's scale comes from a negative max */
	for (int a = 0; a < 2; a++) {
		int type = a ? TM_Q4_K : TM_Q8_0;

		act_as_float(type, x, xf, cols);
		for (int i = 0; i < cols; i++) {
			int blk = a ? 256 : 32;
			float amax = 0;

			for (int k = i / blk * blk; k < i / blk * blk + blk; k++)
				amax = fmaxf(amax, fabsf(x[k]));
			/* half a step, plus the f16 rounding of the q8_0 scale */
			bad += fabsf(xf[i] - x[i]) > amax / 127.f * 0.5f + amax * 1e-3f;
		}
	}
	tap_ok(bad == 0, "reference quantizers stay within half a step (%d off)", bad);
	for (int i = 0; i < NISAS; i++) {
		const struct tm_kern *k;
		void *q0 = malloc(tm_row_bytes(TM_Q8_K, cols)), *q1 = malloc(tm_row_bytes(TM_Q8_K, cols));

		if (tm_kernels_force_isa(isas[i]))
			goto next;
		k = tm_kern();
		if (k->quant_q8_0) {
			tm_quant_q8_0_ref(x, q0, cols);
			k->quant_q8_0(x, q1, cols);
			badq += memcmp(q0, q1, tm_row_bytes(TM_Q8_0, cols)) != 0;
		}
		if (k->quant_q8_K) {
			tm_quant_q8_K_ref(x, q0, cols);
			k->quant_q8_K(x, q1, cols);
			badq += memcmp(q0, q1, tm_row_bytes(TM_Q8_K, cols)) != 0;
		}
		if (k->quant_q8_Kp) {
			/* the private order: the reference's bytes, sub-blocks 1<->2 and 5<->6 swapped */
			tm_quant_q8_K_ref(x, q0, cols);
			k->quant_q8_Kp(x, q1, cols);
			badq += memcmp(q0, q1, tm_row_bytes(TM_Q8_K, cols)) == 0;
			tm_q8_K_permute(q1, cols);
			badq += memcmp(q0, q1, tm_row_bytes(TM_Q8_K, cols)) != 0;
		}
next:
		free(q0);
		free(q1);
	}
	tap_ok(badq == 0, "every ISA's quantizers give the reference's bytes");
	free(x);
	free(xf);
}

/* Every type on every ISA, several thread counts, vs the double reference. */
static int odd_cols(int type)
{
	int be = tm_dtype_traits(type)->block_elems;

	/* an odd number of blocks (and of floats) exercises every kernel's tail */
	return be == 1 ? 743 : be == 32 ? 736 : 768;
}

static void test_matvec_types(void)
{
	const int rows = 37, cmax = 768;
	float *x = malloc(cmax * sizeof(float)), *y = malloc(rows * sizeof(float));
	struct ref r = { malloc(rows * sizeof(double)), malloc(rows * sizeof(double)) };
	struct tm_pool *pools[3] = { tm_pool_create(1, 0), tm_pool_create(2, 0), tm_pool_create(3, 0) };

	fill_x(x, cmax);
	for (int i = 0; i < NISAS; i++) {
		if (tm_kernels_force_isa(isas[i])) {
			tap_skip("%s: not on this CPU", isas[i]);
			continue;
		}
		for (int ti = 0; ti < NTYPES; ti++) {
			int type = types[ti], bad = 0, cols = odd_cols(type);
			size_t rb = tm_row_bytes(type, cols);
			void *w = malloc(rb * rows);
			double worst = 0, tol = i == 0 ? 1e-5 : 2e-5;

			fill_weights(type, w, rows, cols);
			reference(type, w, rows, cols, x, &r);
			for (int p = 0; p < 3; p++) {
				struct tm_matvec m = { type, w, rb, rows, cols, x, y };

				memset(y, 0xff, rows * sizeof(float));
				tm_matvec(pools[p], &m);
				bad += close_to(y, r.y, r.s, rows, tol, &worst);
			}
			tap_ok(bad == 0, "%s %s matvec, %d cols, 1-3 threads: worst error %.2g S (tol %.0g)",
			       isas[i], tm_dtype_traits(type)->name, cols, worst, tol);
			free(w);
		}
	}
	for (int p = 0; p < 3; p++)
		tm_pool_destroy(pools[p]);
	free(x);
	free(y);
	free(r.y);
	free(r.s);
}

/* A batch of jobs of mixed types, shared and distinct x, odd rows. */
static void test_batch(void)
{
	enum { NJ = 6, COLS = 512 };
	static const int jt[NJ] = { TM_Q4_K, TM_Q6_K, TM_Q4_K, TM_Q8_0, TM_F16, TM_Q5_K };
	static const int jr[NJ] = { 33, 17, 1, 70, 5, 129 };
	float *xs[3];
	void *w[NJ];
	float *y[NJ];
	struct tm_matvec jobs[NJ];
	struct ref r[NJ];

	for (int i = 0; i < 3; i++) {
		xs[i] = malloc(COLS * sizeof(float));
		fill_x(xs[i], COLS);
	}
	for (int j = 0; j < NJ; j++) {
		size_t rb = tm_row_bytes(jt[j], COLS);

		w[j] = malloc(rb * jr[j]);
		y[j] = malloc(jr[j] * sizeof(float));
		fill_weights(jt[j], w[j], jr[j], COLS);
		jobs[j] = (struct tm_matvec){ jt[j], w[j], rb, jr[j], COLS, xs[j % 3 == 2 ? 1 : j % 2], y[j] };
		r[j].y = malloc(jr[j] * sizeof(double));
		r[j].s = malloc(jr[j] * sizeof(double));
		reference(jt[j], w[j], jr[j], COLS, jobs[j].x, &r[j]);
	}
	for (int i = 0; i < NISAS; i++) {
		int bad = 0;
		double worst = 0;

		if (tm_kernels_force_isa(isas[i]))
			continue;
		for (int nth = 1; nth <= 4; nth++) {
			struct tm_pool *pool = tm_pool_create(nth, 0);

			for (int rep = 0; rep < 3; rep++) {
				for (int j = 0; j < NJ; j++)
					memset(y[j], 0xff, jr[j] * sizeof(float));
				tm_matvec_batch(pool, jobs, NJ);
				for (int j = 0; j < NJ; j++)
					bad += close_to(y[j], r[j].y, r[j].s, jr[j], 2e-5, &worst);
			}
			tm_pool_destroy(pool);
		}
		tap_ok(bad == 0, "%s: batch of %d mixed jobs, 1-4 threads (worst %.2g S)", isas[i], NJ, worst);
	}
	for (int j = 0; j < NJ; j++) {
		free(w[j]);
		free(y[j]);
		free(r[j].y);
		free(r[j].s);
	}
	for (int i = 0; i < 3; i++)
		free(xs[i]);
}

/*
 * tm_matvec_glu: n experts' gate, up, SwiGLU and down in one hand-off give
 * the bits of two batches with tm_swiglu between them, whatever the threads
 * (each pair's product is taken by whichever thread ends its rows).
 */
static void test_glu(void)
{
	enum { N = 5, E = 512, F = 512, D = 45 };
	static const int gt[N] = { TM_Q4_K, TM_Q8_0, TM_Q4_K, TM_F16, TM_Q5_K };
	static const int dt[N] = { TM_Q6_K, TM_Q4_K, TM_Q8_0, TM_Q6_K, TM_Q4_K };
	float *x = malloc(E * sizeof(float)), *h = malloc(2 * N * F * sizeof(float));
	float *want = malloc(N * D * sizeof(float)), *got = malloc(N * D * sizeof(float));
	struct tm_matvec gu[2 * N], down[N];
	void *w[3 * N];

	fill_x(x, E);
	for (int p = 0; p < N; p++) {
		size_t grb = tm_row_bytes(gt[p], E), drb = tm_row_bytes(dt[p], F);

		for (int i = 0; i < 2; i++) {
			w[2 * p + i] = malloc(grb * F);
			fill_weights(gt[p], w[2 * p + i], F, E);
			gu[2 * p + i] = (struct tm_matvec){ gt[p], w[2 * p + i], grb, F, E, x, h + (2 * p + i) * F };
		}
		w[2 * N + p] = malloc(drb * D);
		fill_weights(dt[p], w[2 * N + p], D, F);
		down[p] = (struct tm_matvec){ dt[p], w[2 * N + p], drb, D, F, h + 2 * p * F, NULL };
	}
	for (int i = 0; i < NISAS; i++) {
		int bad = 0, nan = 0;

		if (tm_kernels_force_isa(isas[i]))
			continue;
		for (int nth = 1; nth <= 4; nth++) {
			struct tm_pool *pool = tm_pool_create(nth, 0);

			for (int rep = 0; rep < 3; rep++) {
				for (int p = 0; p < N; p++)
					down[p].y = want + p * D;
				tm_matvec_batch(pool, gu, 2 * N);
				for (int p = 0; p < N; p++)
					tm_swiglu(h + 2 * p * F, h + 2 * p * F, h + (2 * p + 1) * F, F);
				tm_matvec_batch(pool, down, N);
				for (int p = 0; p < N; p++)
					down[p].y = got + p * D;
				memset(h, 0xff, 2 * N * F * sizeof(float));
				memset(got, 0xff, N * D * sizeof(float));
				tm_matvec_glu(pool, gu, down, N);
				bad += memcmp(want, got, N * D * sizeof(float)) != 0;
			}
			/* a down that does not read its gate's output: refused, every row NaN */
			down[2].x = x;
			tm_matvec_glu(pool, gu, down, N);
			down[2].x = h + 4 * F;
			for (int r = 0; r < N * D; r++)
				nan += !isnan(got[r]);
			tm_pool_destroy(pool);
		}
		tap_ok(bad == 0 && nan == 0, "%s: glu of %d experts equals two batches around tm_swiglu bit for bit, "
		       "1-4 threads (%d differ); a down not on its gate's output gives NaN rows (%d not)",
		       isas[i], N, bad, nan);
	}
	for (int j = 0; j < 3 * N; j++)
		free(w[j]);
	free(x);
	free(h);
	free(want);
	free(got);
}

/* matmul of n tokens equals n matvecs, on every ISA, for n around the tile width. */
static void test_matmul(void)
{
	const int rows = 45, cols = 512, nmax = 11;
	float *X = malloc(nmax * cols * sizeof(float)), *Y = malloc(nmax * rows * sizeof(float));
	float *yv = malloc(rows * sizeof(float));
	struct tm_pool *pool2 = tm_pool_create(2, 0), *pool3 = tm_pool_create(3, 0);

	fill_x(X, nmax * cols);
	for (int i = 0; i < NISAS; i++) {
		int bad = 0;
		double worst = 0;

		if (tm_kernels_force_isa(isas[i]))
			continue;
		for (int ti = 0; ti < NTYPES; ti++) {
			int type = types[ti];
			size_t rb = tm_row_bytes(type, cols);
			void *w = malloc(rb * rows);
			double s[64];

			fill_weights(type, w, rows, cols);
			for (int n = 1; n <= nmax; n += 3) {
				tm_matmul(n % 2 ? pool2 : pool3, type, w, rb, rows, cols, X, n, Y);
				for (int t = 0; t < n; t++) {
					struct tm_matvec m = { type, w, rb, rows, cols, X + t * cols, yv };
					double want[64];

					tm_matvec(NULL, &m);
					for (int k = 0; k < rows; k++) {
						float wf[512];

						tm_dequant_row(type, (char *)w + k * rb, wf, cols);
						s[k] = 1e-30;
						for (int c = 0; c < cols; c++)
							s[k] += fabs((double)wf[c] * X[t * cols + c]);
						want[k] = yv[k];
					}
					bad += close_to(Y + t * rows, want, s, rows, 2e-5, &worst);
				}
			}
			free(w);
		}
		tap_ok(bad == 0, "%s: matmul of 1-10 tokens equals matvecs, every type (worst %.2g S)",
		       isas[i], worst);
	}
	tm_pool_destroy(pool2);
	tm_pool_destroy(pool3);
	free(X);
	free(Y);
	free(yv);
}

/* Enough rows for several weight tiles per thread, so tiling and the thread split meet. */
static void test_matmul_tiles(void)
{
	static const int tt[] = { TM_Q4_K, TM_F32, TM_Q8_0 };
	const int cols = 512, rows = 2003, n = 6;
	float *X = malloc(n * cols * sizeof(float)), *Y = malloc(n * rows * sizeof(float));
	float *yv = malloc(rows * sizeof(float));
	struct tm_pool *pool = tm_pool_create(3, 0);
	int bad = 0;

	fill_x(X, n * cols);
	/* the best ISA here; the same arithmetic per (row, token) either way */
	if (tm_kernels_force_isa("avx512") && tm_kernels_force_isa("avx2"))
		tm_kernels_force_isa("scalar");
	for (int i = 0; i < 3; i++) {
		size_t rb = tm_row_bytes(tt[i], cols);
		void *w = malloc(rb * rows);

		fill_weights(tt[i], w, rows, cols);
		memset(Y, 0xff, n * rows * sizeof(float));
		tm_matmul(pool, tt[i], w, rb, rows, cols, X, n, Y);
		for (int t = 0; t < n; t++) {
			struct tm_matvec m = { tt[i], w, rb, rows, cols, X + t * cols, yv };

			tm_matvec(pool, &m);
			for (int r = 0; r < rows; r++)
				bad += !(fabsf(Y[t * rows + r] - yv[r]) <= 1e-4f * (1.f + fabsf(yv[r])));
		}
		free(w);
	}
	tap_ok(bad == 0, "%s: matmul over several tiles and 3 threads equals matvecs (%d off)",
	       tm_kernels_isa(), bad);
	tm_pool_destroy(pool);
	free(X);
	free(Y);
	free(yv);
}

/*
 * q4_0 and q8_0 run the same 256-bit kernel in every SIMD table (vpdpbusd
 * for maddubs + madd where there is VNNI): the same bits as the AVX2 table,
 * for 1-4 tokens at once, also with q8_0 codes of -128 (the extreme the
 * int16 pairs of maddubs must hold without saturating).
 */
static void test_q80_tables_agree(void)
{
	static const int qtypes[] = { TM_Q4_0, TM_Q8_0 };
	const int rows = 19, cols = 736, nx = 4;
	float *x = malloc((size_t)nx * cols * sizeof(float));
	float *y0 = malloc((size_t)nx * rows * sizeof(float)), *y1 = malloc((size_t)nx * rows * sizeof(float));
	void *xq = malloc((size_t)nx * tm_row_bytes(TM_Q8_0, cols));
	size_t xs = tm_row_bytes(TM_Q8_0, cols);
	int bad = 0, ran = 0;
	const char *was = tm_kernels_isa();

	fill_x(x, nx * cols);
	for (int t = 0; t < nx; t++)
		tm_quant_q8_0_ref(x + (size_t)t * cols, (char *)xq + t * xs, cols);
	for (int ti = 0; ti < 2; ti++) {
		int type = qtypes[ti];
		size_t rb = tm_row_bytes(type, cols);
		char *w = malloc(rb * rows);

		fill_weights(type, w, rows, cols);
		if (type == TM_Q8_0)	/* row 3: every code -128 */
			for (int b = 0; b < cols / QK; b++)
				memset(((blk_q8_0 *)(w + 3 * rb))[b].qs, 0x80, QK);
		if (tm_kernels_force_isa("avx2"))
			goto next;
		for (int n = 1; n <= nx; n++) {
			tm_kern()->dot[type](w, rb, rows, cols / QK, xq, xs, n, y0, rows);
			for (int i = 2; i < NISAS; i++) {
				if (tm_kernels_force_isa(isas[i]))
					continue;
				memset(y1, 0xff, (size_t)nx * rows * sizeof(float));
				tm_kern()->dot[type](w, rb, rows, cols / QK, xq, xs, n, y1, rows);
				bad += memcmp(y0, y1, (size_t)n * rows * sizeof(float)) != 0;
				ran++;
				tm_kernels_force_isa("avx2");
			}
		}
next:
		free(w);
	}
	if (!ran)
		tap_skip("q4_0/q8_0 across tables: no AVX-512 on this CPU");
	else
		tap_ok(bad == 0, "q4_0/q8_0: every AVX-512 table gives the AVX2 table's bits, 1-4 tokens (%d of %d differ)",
		       bad, ran);
	tm_kernels_force_isa(was);
	free(x);
	free(y0);
	free(y1);
	free(xq);
}

/* A job no kernel takes yields NaN rows, and the valid jobs beside it still run. */
static void test_bad_jobs(void)
{
	float x[256], y0[3], y1[3], y2[2], w[3 * 256];
	struct tm_matvec jobs[3] = {
		{ TM_Q4_K, w, 144, 3, 100, x, y0 },	/* cols not a whole block */
		{ TM_F32, w, 1024, 3, 256, x, y1 },
		{ 77, w, 4, 2, 256, x, y2 },		/* no such type */
	};
	struct tm_pool *pool = tm_pool_create(2, 0);
	int bad = 0;

	for (int i = 0; i < 256; i++)
		x[i] = 1.f;
	for (int i = 0; i < 3 * 256; i++)
		w[i] = (float)(i / 256 + 1);
	tm_matvec_batch(pool, jobs, 3);
	for (int r = 0; r < 3; r++)
		bad += !isnan(y0[r]) || y1[r] != 256.f * (r + 1);
	bad += !isnan(y2[0]) || !isnan(y2[1]);
	tm_matmul(pool, TM_Q8_K, w, 292, 2, 256, x, 1, y2);
	bad += !isnan(y2[0]) || !isnan(y2[1]);
	tap_ok(bad == 0, "unknown types and partial blocks give NaN rows; other jobs still run");
	tm_pool_destroy(pool);
}

/* tm_prefetch_to_l1 as a fresh process with TIERMEM_PREFETCH=val (NULL: unset) chooses it; -1 if the child failed. */
static int prefetch_choice(const char *val)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (val)
			setenv("TIERMEM_PREFETCH", val, 1);
		else
			unsetenv("TIERMEM_PREFETCH");
		tm_kern();
		_exit(tm_prefetch_to_l1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void test_prefetch_env(void)
{
	int dflt = prefetch_choice(NULL);

	tap_ok(prefetch_choice("l1") == 1 && prefetch_choice("l2") == 0 && (dflt == 0 || dflt == 1) &&
	       prefetch_choice("l3") == dflt && prefetch_choice("") == dflt,
	       "TIERMEM_PREFETCH=l1 prefetches into L1, l2 into L2; unset, empty or unknown leaves this CPU's choice (%s)",
	       dflt == 1 ? "L1" : "L2");
}

int main(void)
{
	const char *isa;

	test_prefetch_env();	/* first: the children must choose, not inherit this process's table */
	isa = tm_kernels_isa();

	tap_ok(isa && *isa, "dispatcher picked %s", isa);
	tap_ok(tm_kernels_force_isa("scalar") == 0 && tm_kernels_force_isa("mmx") == -1,
	       "force_isa takes scalar, refuses an unknown name");
	test_known_blocks();
	test_fill_random();
	test_quantizers();
	test_matvec_types();
	test_batch();
	test_glu();
	test_matmul();
	test_matmul_tiles();
	test_q80_tables_agree();
	test_bad_jobs();
	return tap_done();
}
