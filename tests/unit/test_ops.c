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

#include "kernels/kernels.h"
#include "kernels/cpu/vec.h"
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

static double half(double x)
{
	return tm_f16_to_f32(tm_f32_to_f16((float)x));
}

/*
 * Causal GQA attention from the definition, in double, over f32 copies of the
 * cache (a q8_0 cache's values as stored); the queries rounded to halves
 * (f16 cache) or through q8_0 blocks (q8_0 cache), and with f16 values the
 * attention weights to halves, as ggml does.
 */
static void attn_ref(const struct tm_attn *a, const float *kf, const float *vf, size_t kv_stride, double *out)
{
	int group = a->n_head / a->n_head_kv, vd = a->v_dim ? a->v_dim : a->head_dim;

	for (int t = 0; t < a->n_tok; t++)
		for (int h = 0; h < a->n_head; h++) {
			int n_kv = a->pos0 + t + 1, g = h / group;
			const float *q = a->q + t * a->q_stride + h * a->head_dim;
			double *s = calloc(n_kv, sizeof(double)), mx = -1e300, sum = 0;
			float q8[256];
			char blocks[256 / 32 * 34];

			if (a->type_k == TM_Q8_0) {
				tm_kv_put_row(TM_Q8_0, q, blocks, a->head_dim);
				tm_dequant_row(TM_Q8_0, blocks, q8, a->head_dim);
				q = q8;
			}
			for (int p = 0; p < n_kv; p++) {
				const float *k = kf + p * kv_stride + g * a->head_dim;

				for (int d = 0; d < a->head_dim; d++)
					s[p] += (a->type_k == TM_F16 ? half(q[d]) : (double)q[d]) * k[d];
				s[p] *= a->scale;
				mx = fmax(mx, s[p]);
			}
			for (int p = 0; p < n_kv; p++)
				sum += s[p] = exp(s[p] - mx);
			for (int d = 0; d < vd; d++) {
				double o = 0;

				for (int p = 0; p < n_kv; p++)
					o += (a->type_v == TM_F16 ? half(s[p] / sum) : s[p] / sum) *
					     vf[p * kv_stride + g * vd + d];
				out[t * a->out_stride + h * vd + d] = o;
			}
			free(s);
		}
}

/*
 * Every ISA and cache type; head sizes the vector code takes (64, 96) and one
 * it leaves to C (40); groups of 4 and 3 query heads per KV head (3: the
 * vector mix's partial group) and MLA's shape (one KV head, V the first 64
 * values of the K rows); 1-4 threads, prefill and decode over 425 positions
 * (several chunks and spans, and decode's spans dealt 2, 3 and 4 ways).
 */
static int attention_case(int nh, int nkv, int hd, int vd, int type, const char *isa)
{
	enum { POS0 = 420, NT = 5, NCTX = POS0 + NT, MAXH = 8, MAXKVD = 192 };
	static float q[NT * MAXH * 96], kf[NCTX * MAXKVD], vf[NCTX * MAXKVD];
	static char kc[NCTX * MAXKVD * 4], vc[NCTX * MAXKVD * 4];
	static float out[NT * MAXH * 96], scratch[1 << 17];
	static double ref[NT * MAXH * 96];
	static float first[NT * MAXH * 96], batch[NT * MAXH * 96];
	static char kh[NCTX * MAXKVD * 4], vh[NCTX * MAXKVD * 4];
	bool mla = vd != hd;
	/*
	 * f16 values: a weight whose float value lies within rounding noise of a
	 * tie between two halves may round the other way than in double, moving
	 * the output by 2^-11 of that weight's share (seen: 3e-5); a wrong head
	 * or a lost part moves it by 0.1-1.
	 */
	double tol = type == TM_F16 ? 1e-4 : 1e-5;
	size_t kvs = (size_t)nkv * hd, rb = tm_kv_row_bytes(type, (int)kvs), part = tm_kv_row_bytes(type, hd);
	int bad = 0, varies = 0, moved = 0;
	const char *tn = tm_dtype_traits(type)->name;

	fill(q, NT * nh * hd, 1.0f);
	fill(kf, NCTX * kvs, 1.0f);
	fill(vf, NCTX * kvs, 1.0f);
	for (int p = 0; p < NCTX; p++) {
		/* the cache as stored, and what it holds back as floats */
		tm_kv_put_row(type, kf + p * kvs, kc + p * rb, (int)kvs);
		tm_kv_put_row(type, vf + p * kvs, vc + p * rb, (int)kvs);
		tm_dequant_row(type, kc + p * rb, kf + p * kvs, (int64_t)kvs);
		tm_dequant_row(type, vc + p * rb, vf + p * kvs, (int64_t)kvs);
		/* the same cache head-major, as a context keeps it: KV head g's rows together */
		for (int g = 0; g < nkv; g++) {
			memcpy(kh + (g * NCTX + p) * part, kc + p * rb + g * part, part);
			memcpy(vh + (g * NCTX + p) * part, vc + p * rb + g * part, part);
		}
	}
	if (tm_kernels_force_isa(isa))
		return 0;
	for (int nth = 1; nth <= 4; nth++) {
		struct tm_pool *pool = tm_pool_create(nth, 0);
		struct tm_attn a = {
			.n_tok = NT, .pos0 = POS0, .n_head = nh, .n_head_kv = nkv, .head_dim = hd,
			.scale = 1.0f / sqrtf(hd), .q = q, .q_stride = nh * hd, .type_k = type, .type_v = type,
			.k = kc, .v = mla ? kc : vc, .k_row_bytes = rb, .v_row_bytes = rb, .v_dim = mla ? vd : 0,
			.out = out, .out_stride = nh * vd, .scratch = scratch, .n_ctx = NCTX,
		};

		if (tm_attention_scratch_floats(nth, nh, nkv, hd, vd, NCTX, type) > sizeof(scratch) / sizeof(float)) {
			tm_pool_destroy(pool);
			return tap_ok(0, "attention test scratch too small"), 1;
		}
		memset(out, 0, sizeof(out));
		tm_attention(pool, &a);
		attn_ref(&a, kf, mla ? kf : vf, kvs, ref);
		bad += maxrel(out, ref, NT * nh * vd) > tol;
		/*
		 * Batch invariance: each query alone (decode: its positions
		 * split over the threads) gives its prefill row's bits, and
		 * every thread count gives the one-thread bits.
		 */
		if (nth == 1)
			memcpy(first, out, sizeof(first));
		varies += memcmp(first, out, sizeof(float) * NT * nh * vd) != 0;
		memcpy(batch, out, sizeof(batch));
		for (int t = 0; t < NT; t++) {
			struct tm_attn one = a;

			one.n_tok = 1;
			one.pos0 = POS0 + t;
			one.q = q + t * nh * hd;
			tm_attention(pool, &one);
			varies += memcmp(out, batch + t * nh * vd, sizeof(float) * nh * vd) != 0;
		}
		/* head-major rows: the bits of side-by-side heads, batch and decode */
		if (!mla) {
			struct tm_attn h = a;

			h.k = kh;
			h.v = vh;
			h.k_row_bytes = h.v_row_bytes = part;
			h.k_head_bytes = h.v_head_bytes = NCTX * part;
			tm_attention(pool, &h);
			moved += memcmp(out, batch, sizeof(float) * NT * nh * vd) != 0;
			h.n_tok = 1;
			h.pos0 = POS0 + NT - 1;
			h.q = q + (NT - 1) * nh * hd;
			tm_attention(pool, &h);
			moved += memcmp(out, batch + (NT - 1) * nh * vd, sizeof(float) * nh * vd) != 0;
		}
		/* one query at the end (decode) reads every cached position */
		a.n_tok = 1;
		a.pos0 = NCTX - 1;
		tm_attention(pool, &a);
		attn_ref(&a, kf, mla ? kf : vf, kvs, ref);
		bad += maxrel(out, ref, nh * vd) > tol;
		/* and one at the start: fewer positions than threads */
		a.pos0 = 0;
		tm_attention(pool, &a);
		attn_ref(&a, kf, mla ? kf : vf, kvs, ref);
		bad += maxrel(out, ref, nh * vd) > tol;
		tm_pool_destroy(pool);
	}
	tap_ok(!bad, "attention on %s, %s cache, %d heads of %d (V %d) over %d KV heads: matches the definition",
	       isa, tn, nh, hd, vd, nkv);
	tap_ok(!varies, "attention on %s, %s cache, %d heads of %d over %d KV heads: a query's bits do not depend on "
	       "the queries beside it or the thread count", isa, tn, nh, hd, nkv);
	if (!mla)
		tap_ok(!moved, "attention on %s, %s cache, %d heads of %d over %d KV heads: a head-major cache gives the "
		       "bits of heads side by side in a row", isa, tn, nh, hd, nkv);
	return 1;
}

static void test_attention(void)
{
	static const char *const isas[] = { "scalar", "avx2", "avx512" };
	static const int types[] = { TM_F32, TM_F16, TM_Q8_0 };
	const char *was = tm_kernels_isa();

	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			int type = types[j];

			if (!attention_case(8, 2, 64, 64, type, isas[i]) ||
			    (type != TM_Q8_0 && !attention_case(6, 2, 40, 40, type, isas[i])) ||
			    !attention_case(6, 2, 64, 64, type, isas[i]) || !attention_case(4, 1, 96, 64, type, isas[i])) {
				tap_skip("this CPU has no %s", isas[i]);
				break;
			}
		}
	tm_kernels_force_isa(was);
}

/* The AVX2 scores kernel's sum, one score at a time: 8 lanes of FMAs in dim order, then a pairwise tree. */
static float dot8_ref(const float *a, const float *b, int n)
{
	float l[8] = { 0 };

	for (int d = 0; d < n; d += 8)
		for (int i = 0; i < 8; i++)
			l[i] = fmaf(a[d + i], b[d + i], l[i]);
	return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/*
 * The AVX2 table's attention kernels read the cache rows themselves, several
 * heads and positions a pass; each score and output must have the bits of
 * one computed alone from the rows as floats (kv_rows): dot8_ref times the
 * scale per head and position, and tm_axpy_f32_avx2 per position and head.
 * Groups of 1-5 and 8 heads (whole and partial passes), head sizes 40 (a
 * last 8 dims) to 128, a head that is not the row's first, the next chunk
 * prefetched.
 */
static void test_attention_rows_avx2(void)
{
	enum { N = 37, MAXG = 8, MAXD = 128, KV = 2 };
	static const int groups[] = { 1, 2, 3, 4, 5, 8 }, dims[] = { 40, 64, 96, 128 };
	static const int types[] = { TM_F32, TM_F16, TM_Q8_0 };
	static float q[MAXG * MAXD], w[MAXG * N], tile[N * MAXD], x[KV * MAXD];
	static float s_ref[MAXG * N], s_got[MAXG * N], o_ref[MAXG * MAXD], o_got[MAXG * MAXD];
	static char rows[2 * N * KV * MAXD * 4];
	const char *was = tm_kernels_isa();
	const struct tm_vec *v;
	int cases = 0, bad = 0;

	if (tm_kernels_force_isa("avx2")) {
		tap_skip("this CPU has no avx2");
		return;
	}
	v = tm_vec();
	for (int ti = 0; ti < 3; ti++)
		for (int di = 0; di < 4; di++)
			for (int gi = 0; gi < 6; gi++) {
				int type = types[ti], hd = dims[di], G = groups[gi];
				size_t rb = tm_kv_row_bytes(type, KV * hd);
				const char *head = rows + tm_kv_row_bytes(type, hd);	/* KV head 1 */

				if (type == TM_Q8_0 && hd % 32)
					continue;
				for (int p = 0; p < 2 * N; p++) {
					fill(x, KV * hd, 1.0f);
					tm_kv_put_row(type, x, rows + p * rb, KV * hd);
				}
				fill(q, G * hd, 1.0f);
				fill(w, G * N, 1.0f);
				fill(o_ref, G * hd, 1.0f);
				memcpy(o_got, o_ref, sizeof(float) * G * hd);
				v->kv_rows(rows, rb, type, hd, hd, N, 0, tile);
				for (int p = 0; p < N; p++)
					for (int h = 0; h < G; h++)
						s_ref[h * N + p] = dot8_ref(q + h * hd, tile + p * hd, hd) * 0.125f;
				v->attn_scores_rows(q, G, hd, head, rb, type, N, 5, 0.125f, s_got, N);
				for (int p = 0; p < N; p++)
					for (int h = 0; h < G; h++)
						tm_axpy_f32_avx2(o_ref + h * hd, w[h * N + p], tile + p * hd, hd);
				v->attn_mix_rows(o_got, G, hd, w, N, head, rb, type, N, 5);
				bad += memcmp(s_ref, s_got, sizeof(float) * G * N) != 0 ||
				       memcmp(o_ref, o_got, sizeof(float) * G * hd) != 0;
				cases++;
			}
	tap_ok(!bad && cases == 66, "avx2 attention from the cache rows: the bits of kv_rows + dot8_ref and the f32 axpy "
	       "(%d of %d cases differ)", bad, cases);
	tm_kernels_force_isa(was);
}

/* The Walsh-Hadamard rotation: Sylvester's matrix over sqrt(block) by definition, and its own inverse. */
static void test_hadamard(void)
{
	enum { N = 256 };
	float x[N], y[N];
	double worst = 0, back = 0;

	fill(x, N, 1.0f);
	memcpy(y, x, sizeof(x));
	tm_hadamard(y, N, 64);
	for (int b = 0; b < N; b += 64)
		for (int i = 0; i < 64; i++) {
			double want = 0;

			for (int j = 0; j < 64; j++)
				want += (__builtin_popcount(i & j) & 1 ? -1.0 : 1.0) / 8.0 * x[b + j];
			worst = fmax(worst, fabs(y[b + i] - want));
		}
	tm_hadamard(y, N, 64);
	for (int i = 0; i < N; i++)
		back = fmax(back, fabs(y[i] - x[i]));
	tap_ok(worst < 1e-5 && back < 1e-5, "Walsh-Hadamard rotation of order 64: matches the matrix (%.1g), "
	       "twice is the identity (%.1g)", worst, back);
}

/* The vector exp (softmax, SwiGLU) against libm's, over the range that matters and its ends. */
static void test_vector_exp(void)
{
	static const char *const isas[] = { "scalar", "avx2", "avx512" };
	const char *was = tm_kernels_isa();
	enum { N = 1000 };
	float x[N + 3], xin[N], g[N], u[N], y[N];
	double worst = 0;

	for (int k = 0; k < 3; k++) {
		if (tm_kernels_force_isa(isas[k])) {
			tap_skip("this CPU has no %s", isas[k]);
			continue;
		}
		worst = 0;
		for (int i = 0; i < N; i++)
			x[i] = xin[i] = -87.0f + 87.0f * i / N;
		x[N] = -1000.0f;
		x[N + 1] = 0.0f;
		x[N + 2] = -1e-30f;
		tm_softmax(x, N + 3);	/* max 0: x becomes exp(x) / sum */
		for (int i = 0; i < N; i++) {
			double want = exp((double)xin[i]);

			worst = fmax(worst, fabs(x[i] / x[N + 1] / want - 1));
		}
		for (int i = 0; i < N; i++) {
			g[i] = -30.0f + 60.0f * i / N;
			u[i] = 1.0f + i % 7;
		}
		tm_swiglu(y, g, u, N);
		for (int i = 0; i < N; i++) {
			double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];

			worst = fmax(worst, fabs(y[i] - want) / fmax(fabs(want), 1e-30));
		}
		tap_ok(worst < 1e-6 && x[N] == 0.0f, "%s exp in softmax and SwiGLU: worst relative error %.2g",
		       isas[k], worst);
	}
	tm_kernels_force_isa(was);
}

/* Each table's max equals the scalar one's on rows of every length mod 8 and 16, maxima anywhere. */
static void test_vector_max(void)
{
	static const char *const isas[] = { "avx2", "avx512" };
	const char *was = tm_kernels_isa();
	float x[300];
	uint32_t seed = 7;
	int bad = 0, cases = 0;

	for (int k = 0; k < 2; k++) {
		if (tm_kernels_force_isa(isas[k])) {
			tap_skip("this CPU has no %s", isas[k]);
			continue;
		}
		bad = cases = 0;
		for (int n = 1; n <= 300; n += n < 40 ? 1 : 37)
			for (int at = 0; at < n; at += 1 + n / 5) {
				for (int i = 0; i < n; i++) {
					seed = seed * 1664525u + 1013904223u;
					x[i] = -50.0f + (float)(seed >> 8) / (1 << 24) * 40.0f;
				}
				x[at] = 3.5f + at;	/* the maximum at each place in turn, the tail included */
				if (n > 2)
					x[n - 1] = -INFINITY;
				bad += tm_vec()->max(x, n) != tm_max_ref(x, n);
				cases++;
			}
		tap_ok(bad == 0 && cases > 100, "%s max equals the scalar max on %d rows (%d differ)", isas[k],
		       cases, bad);
	}
	tm_kernels_force_isa(was);
}

int main(void)
{
	test_rmsnorm();
	test_rope();
	test_softmax_swiglu();
	test_attention();
	test_attention_rows_avx2();
	test_hadamard();
	test_vector_exp();
	test_vector_max();
	return tap_done();
}
