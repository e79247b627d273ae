// SPDX-License-Identifier: MIT
/*
 * The float ops of kernels/ops.h against straightforward double-precision
 * references written from the definitions (not from the ops' code).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tap.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)	/* uniform in [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static void fill(float *x, int n, float scale)
{
	for (int i = 0; i < n; i++)
		x[i] = frand() * scale;
}

static double maxrel(const float *a, const double *b, int n)
{
	double m = 0, s = 0;

	for (int i = 0; i < n; i++)
		s = fmax(s, fabs(b[i]));
	for (int i = 0; i < n; i++)
		m = fmax(m, fabs(a[i] - b[i]));
	return s > 0 ? m / s : m;
}

static void test_rmsnorm(void)
{
	enum { N = 1000 };
	float x[N], w[N], y[N];
	double ref[N], ss = 0;

	fill(x, N, 3.0f);
	fill(w, N, 1.0f);
	for (int i = 0; i < N; i++)
		ss += (double)x[i] * x[i];
	for (int i = 0; i < N; i++)
		ref[i] = x[i] / sqrt(ss / N + 1e-5) * w[i];
	tm_rmsnorm(y, x, w, N, 1e-5f);
	tap_ok(maxrel(y, ref, N) < 1e-6, "rmsnorm matches x / rms(x) * w");
	memcpy(y, x, sizeof(x));
	tm_rmsnorm_rows(y, NULL, 10, 100, 1e-6f);
	int bad = 0;

	for (int r = 0; r < 10; r++) {
		double s = 0;

		for (int i = 0; i < 100; i++)
			s += (double)y[r * 100 + i] * y[r * 100 + i];
		bad += fabs(s / 100 - 1.0) > 1e-4;
	}
	tap_ok(!bad, "rmsnorm_rows normalises each row separately (%d bad rows)", bad);
}

static void rope_ref(double *out, const float *x, int head_dim, int pos, double base, bool neox)
{
	int half = head_dim / 2;

	for (int i = 0; i < half; i++) {
		double th = pos * pow(base, -2.0 * i / head_dim);
		int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;

		out[i0] = x[i0] * cos(th) - x[i1] * sin(th);
		out[i1] = x[i0] * sin(th) + x[i1] * cos(th);
	}
}

static void test_rope(void)
{
	enum { HD = 64, NH = 3 };
	float x[NH * HD], y[NH * HD], cs[HD];
	double ref[NH * HD];
	int bad_norm = 0, bad_neox = 0, bad_zero = 0;

	for (int pos = 0; pos < 600; pos += 37) {
		fill(x, NH * HD, 1.0f);
		tm_rope_table(cs, pos, HD, 10000.0f, 1.0f, NULL);
		for (int mode = 0; mode < 2; mode++) {
			bool neox = mode == 1;

			memcpy(y, x, sizeof(x));
			tm_rope_apply(y, NH, HD, HD, cs, neox ? TM_ROPE_NEOX : TM_ROPE_NORM);
			for (int h = 0; h < NH; h++)
				rope_ref(ref + h * HD, x + h * HD, HD, pos, 10000.0, neox);
			/* float angles of up to ~600 rad carry ~3e-5 absolute error */
			if (maxrel(y, ref, NH * HD) > 2e-4)
				*(neox ? &bad_neox : &bad_norm) += 1;
			if (pos == 0 && memcmp(x, y, sizeof(x)))
				bad_zero++;
		}
	}
	tap_ok(!bad_norm, "rope NORM rotates adjacent pairs by pos * base^(-2i/d)");
	tap_ok(!bad_neox, "rope NEOX rotates (i, i + d/2) by the same angles");
	tap_ok(!bad_zero, "rope at position 0 is the identity");

	/* frequency scale and per-pair factors divide the angle */
	float cs2[HD], ff[HD / 2];

	for (int i = 0; i < HD / 2; i++)
		ff[i] = 1.0f + (float)i;
	tm_rope_table(cs, 100, HD, 500000.0f, 0.25f, ff);
	tm_rope_table(cs2, 25, HD, 500000.0f, 1.0f, NULL);
	int bad = 0;

	for (int i = 0; i < HD / 2; i++) {
		double th = 25.0 * pow(500000.0, -2.0 * i / HD) / ff[i];

		bad += fabs(cs[2 * i] - cos(th)) > 1e-5 || fabs(cs[2 * i + 1] - sin(th)) > 1e-5;
		bad += i == 0 && fabs(cs[0] - cs2[0]) > 1e-6;
	}
	tap_ok(!bad, "rope table applies freq_scale and freq_factors");
}

static void test_softmax_swiglu(void)
{
	enum { N = 517 };
	float x[N], g[N], u[N], y[N];
	double ref[N], sum = 0, mx = -1e30;

	fill(x, N, 20.0f);
	for (int i = 0; i < N; i++)
		mx = fmax(mx, x[i]);
	for (int i = 0; i < N; i++)
		sum += exp(x[i] - mx);
	for (int i = 0; i < N; i++)
		ref[i] = exp(x[i] - mx) / sum;
	memcpy(y, x, sizeof(x));
	tm_softmax(y, N);
	tap_ok(maxrel(y, ref, N) < 1e-5, "softmax matches exp(x - max) / sum");

	fill(g, N, 8.0f);
	fill(u, N, 2.0f);
	for (int i = 0; i < N; i++)
		ref[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
	tm_swiglu(y, g, u, N);
	tap_ok(maxrel(y, ref, N) < 1e-6, "swiglu is silu(gate) * up");
	memcpy(y, g, sizeof(g));
	tm_swiglu(y, y, u, N);
	tap_ok(maxrel(y, ref, N) < 1e-6, "swiglu in place over gate");
	x[0] = 1; x[1] = 7; x[2] = 7; x[3] = -3;
	tap_ok(tm_argmax(x, 4) == 1, "argmax takes the first of equal maxima");
}

/* Causal GQA attention from the definition, in double. */
static void attn_ref(const struct tm_attn *a, double *out)
{
	int group = a->n_head / a->n_head_kv;

	for (int t = 0; t < a->n_tok; t++)
		for (int h = 0; h < a->n_head; h++) {
			int n_kv = a->pos0 + t + 1, g = h / group;
			const float *q = a->q + t * a->q_stride + h * a->head_dim;
			double *s = calloc(n_kv, sizeof(double)), mx = -1e300, sum = 0;

			for (int p = 0; p < n_kv; p++) {
				const float *k = a->k + p * a->kv_stride + g * a->head_dim;

				for (int d = 0; d < a->head_dim; d++)
					s[p] += (double)q[d] * k[d];
				s[p] *= a->scale;
				mx = fmax(mx, s[p]);
			}
			for (int p = 0; p < n_kv; p++)
				sum += s[p] = exp(s[p] - mx);
			for (int d = 0; d < a->head_dim; d++) {
				double o = 0;

				for (int p = 0; p < n_kv; p++)
					o += s[p] / sum * a->v[p * a->kv_stride + g * a->head_dim + d];
				out[t * a->out_stride + h * a->head_dim + d] = o;
			}
			free(s);
		}
}

static void test_attention(void)
{
	enum { NH = 8, NKV = 2, HD = 40, POS0 = 13, NT = 5, NCTX = POS0 + NT };
	static float q[NT * NH * HD], k[NCTX * NKV * HD], v[NCTX * NKV * HD];
	static float out[NT * NH * HD], scratch[4 * NCTX];
	static double ref[NT * NH * HD];
	int bad = 0;

	fill(q, NT * NH * HD, 1.0f);
	fill(k, NCTX * NKV * HD, 1.0f);
	fill(v, NCTX * NKV * HD, 1.0f);
	for (int nth = 1; nth <= 4; nth *= 2) {
		struct tm_pool *pool = tm_pool_create(nth, 0);
		struct tm_attn a = {
			.n_tok = NT, .pos0 = POS0, .n_head = NH, .n_head_kv = NKV, .head_dim = HD,
			.scale = 1.0f / sqrtf(HD), .q = q, .q_stride = NH * HD,
			.k = k, .v = v, .kv_stride = NKV * HD,
			.out = out, .out_stride = NH * HD,
			.scratch = scratch, .scratch_stride = NCTX,
		};

		memset(out, 0, sizeof(out));
		tm_attention(pool, &a);
		attn_ref(&a, ref);
		bad += maxrel(out, ref, NT * NH * HD) > 1e-5;
		/* one query at the end (decode) reads every cached position */
		a.n_tok = 1;
		a.pos0 = NCTX - 1;
		tm_attention(pool, &a);
		attn_ref(&a, ref);
		bad += maxrel(out, ref, NH * HD) > 1e-5;
		tm_pool_destroy(pool);
	}
	tap_ok(!bad, "attention (GQA 8/2 heads, causal, 1-4 threads) matches the definition");
}

int main(void)
{
	test_rmsnorm();
	test_rope();
	test_softmax_swiglu();
	test_attention();
	return tap_done();
}
