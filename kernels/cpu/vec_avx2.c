// SPDX-License-Identifier: MIT
/* The float loops of a layer with 256-bit FMAs: dot, axpy, exp, cache rows (kernels/cpu/vec.h). */
#include <immintrin.h>
#include <math.h>

#include "kern.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "vec.h"

float tm_dot_f32_avx2(const float *a, const float *b, int n)
{
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int i = 0;
	float r;

	for (; i + 16 <= n; i += 16) {
		acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
		acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
	}
	for (; i + 8 <= n; i += 8)
		acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
	acc0 = _mm256_add_ps(acc0, acc1);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	r = _mm_cvtss_f32(h);
	for (; i < n; i++)
		r += a[i] * b[i];
	return r;
}

void tm_axpy_f32_avx2(float *y, float s, const float *x, int n)
{
	__m256 vs = _mm256_set1_ps(s);
	int i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += s * x[i];
}

void tm_kv_rows_avx2(const void *src, size_t row_bytes, int type, int off, int len, int n, int ahead,
		      float *dst)
{
	const char *row = (const char *)src + tm_kv_row_bytes(type, off);
	size_t bytes = tm_kv_row_bytes(type, len), next = (size_t)TM_KV_AHEAD * row_bytes;
	int pfn = tm_kv_prefetch_rows(n, ahead);

	if (len % 32 || type == TM_F32) {
		tm_kv_rows_ref(src, row_bytes, type, off, len, n, ahead, dst);
		return;
	}
	for (int p = 0; p < n; p++, dst += len, row += row_bytes) {
		if (p < pfn)
			tm_kv_prefetch(row + next, bytes);
		if (type == TM_F16) {
			for (int i = 0; i < len; i += 8)
				_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
					(const __m128i *)((const uint16_t *)row + i))));
			continue;
		}
		for (int b = 0; b < len / 32; b++) {
			const blk_q8_0 *x = (const blk_q8_0 *)row + b;
			__m256 d = _mm256_set1_ps(tm_f16_to_f32(x->d));

			for (int i = 0; i < 32; i += 8) {
				__m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x->qs + i)));

				_mm256_storeu_ps(dst + 32 * b + i, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
			}
		}
	}
}

#define INLINE static inline __attribute__((always_inline))

/* Eight values of a cache row of type from element i on, as floats (kv_rows' arithmetic). */
INLINE __m256 row8(const char *row, int i, int type)
{
	if (type == TM_F16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)i)));
	if (type == TM_Q8_0) {
		const blk_q8_0 *b = (const blk_q8_0 *)row + i / 32;
		__m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + i % 32)));

		return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(b->d)), _mm256_cvtepi32_ps(q));
	}
	return _mm256_loadu_ps((const float *)row + i);
}

/*
 * The sums of eight vectors, v[i]'s in lane i, each as ((l0 + l1) + (l2 +
 * l3)) + ((l4 + l5) + (l6 + l7)) of its lanes: two rounds of hadd, then the
 * halves added. Nine instructions for eight sums.
 */
INLINE __m256 sums8(const __m256 *v)
{
	__m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
	__m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));

	return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/*
 * HB heads x 8 / HB positions per pass, one accumulator each: q . k as an
 * FMA per 8 dims, in dim order, into 8 lanes, which sums8 adds up; each
 * value is made a float once for the HB heads. A score's bits depend only
 * on its query and row, not on the pass it shares (tests/unit/test_ops.c
 * computes them one by one). A partial group repeats its last head, past n
 * the last row is read again; the copies are dropped.
 *
 * It replaced a kernel that kept tm_dot_f32_avx2's two accumulators per
 * score and reduced four scores at a time (a long chain of shuffles for
 * every position): on an AMD EPYC Zen 3 guest that ran at 21-33 ns per
 * position and KV head of 4 heads of 64, against 10-13 for the mix.
 */
INLINE void scores_hb(const float *q, int G, int hd, const char *k, size_t kr, int type, int n, int ahead,
		      float scale, float *s, size_t ss, const int HB)
{
	const int PB = 8 / HB;
	size_t pf_bytes = tm_kv_row_bytes(type, hd);
	int pfn = tm_kv_prefetch_rows(n, ahead);
	const __m256 vs = _mm256_set1_ps(scale);

	for (int h0 = 0; h0 < G; h0 += HB) {
		int hn = G - h0 < HB ? G - h0 : HB;
		const float *qh[4];

		for (int h = 0; h < HB; h++)
			qh[h] = q + (size_t)(h0 + (h < hn ? h : hn - 1)) * hd;
		for (int p0 = 0; p0 < n; p0 += PB) {
			const char *rows[8];
			__m256 a[8], r;
			float t[8];

#pragma GCC unroll 8
			for (int p = 0; p < PB; p++) {
				rows[p] = k + (size_t)(p0 + p < n ? p0 + p : n - 1) * kr;
				if (h0 == 0 && p0 + p < pfn)
					tm_kv_prefetch(rows[p] + (size_t)TM_KV_AHEAD * kr, pf_bytes);
			}
#pragma GCC unroll 8
			for (int i = 0; i < 8; i++)
				a[i] = _mm256_setzero_ps();
			for (int d = 0; d < hd; d += 8) {
				__m256 qv[4];

#pragma GCC unroll 4
				for (int h = 0; h < HB; h++)
					qv[h] = _mm256_loadu_ps(qh[h] + d);
#pragma GCC unroll 8
				for (int p = 0; p < PB; p++) {
					__m256 x = row8(rows[p], d, type);

#pragma GCC unroll 4
					for (int h = 0; h < HB; h++)
						a[h * PB + p] = _mm256_fmadd_ps(qv[h], x, a[h * PB + p]);
				}
			}
			r = _mm256_mul_ps(sums8(a), vs);
			if (hn == HB && p0 + PB <= n) {
				/* head h's PB scores are lanes h * PB.. of r: one store per head */
				if (HB == 1) {
					_mm256_storeu_ps(s + (size_t)h0 * ss + p0, r);
				} else if (HB == 2) {
					_mm_storeu_ps(s + (size_t)h0 * ss + p0, _mm256_castps256_ps128(r));
					_mm_storeu_ps(s + (size_t)(h0 + 1) * ss + p0, _mm256_extractf128_ps(r, 1));
				} else {
					__m128 lo = _mm256_castps256_ps128(r), hi = _mm256_extractf128_ps(r, 1);

					_mm_storel_pi((__m64 *)(s + (size_t)h0 * ss + p0), lo);
					_mm_storeh_pi((__m64 *)(s + (size_t)(h0 + 1) * ss + p0), lo);
					_mm_storel_pi((__m64 *)(s + (size_t)(h0 + 2) * ss + p0), hi);
					_mm_storeh_pi((__m64 *)(s + (size_t)(h0 + 3) * ss + p0), hi);
				}
				continue;
			}
			_mm256_storeu_ps(t, r);
			for (int h = 0; h < hn; h++)
				for (int p = 0; p < PB && p0 + p < n; p++)
					s[(size_t)(h0 + h) * ss + p0 + p] = t[h * PB + p];
		}
	}
}

void tm_attn_scores_rows_avx2(const float *q, int G, int hd, const void *k, size_t k_row_bytes, int type, int n,
			      int ahead, float scale, float *s, size_t s_stride)
{
	/* one instance per type and group: the type's test leaves the loops */
#define SCORES(T, HB) scores_hb(q, G, hd, k, k_row_bytes, T, n, ahead, scale, s, s_stride, HB)
#define SCORES_T(T) (G % 4 == 0 || G == 3 || G > 4 ? SCORES(T, 4) : G == 2 ? SCORES(T, 2) : SCORES(T, 1))
	if (type == TM_F16)
		SCORES_T(TM_F16);
	else if (type == TM_Q8_0)
		SCORES_T(TM_Q8_0);
	else
		SCORES_T(TM_F32);
#undef SCORES_T
#undef SCORES
}

/* NV vectors of output dims from d on, of HB heads, over the n rows (the first pfn prefetching, kv_rows' rule) */
INLINE void mix_dims(float *const *op, const float *const *wh, int d, const char *v, size_t vr, int type, int n,
		     int pfn, size_t pf_bytes, const int HB, const int NV)
{
	__m256 a[8];

#pragma GCC unroll 8
	for (int i = 0; i < HB * NV; i++)
		a[i] = _mm256_loadu_ps(op[i / NV] + d + 8 * (i % NV));
	for (int p = 0; p < n; p++) {
		const char *row = v + (size_t)p * vr;
		__m256 x[8];

		if (p < pfn)
			tm_kv_prefetch(row + (size_t)TM_KV_AHEAD * vr, pf_bytes);
#pragma GCC unroll 8
		for (int c = 0; c < NV; c++)
			x[c] = row8(row, d + 8 * c, type);
#pragma GCC unroll 4
		for (int h = 0; h < HB; h++) {
			__m256 ws = _mm256_set1_ps(wh[h][p]);

#pragma GCC unroll 8
			for (int c = 0; c < NV; c++)
				a[h * NV + c] = _mm256_fmadd_ps(ws, x[c], a[h * NV + c]);
		}
	}
	/* a copy of the last head holds the same sums as it: any order */
#pragma GCC unroll 8
	for (int i = 0; i < HB * NV; i++)
		_mm256_storeu_ps(op[i / NV] + d + 8 * (i % NV), a[i]);
}

/*
 * 8 / HB vectors of output dims of HB heads stay in registers while the rows
 * go by, each o += w * v by one FMA per value in position order, as
 * tm_axpy_f32_avx2 does it: the same bits. A group of fewer than HB heads
 * repeats its last head; dims past the last multiple of 64 / HB go 8 at a
 * time. The first pass over the rows prefetches, a row at a time.
 */
INLINE void mix_hb(float *o, int G, int vd, const float *w, size_t w_stride, const char *v, size_t vr, int type,
		   int n, int ahead, const int HB)
{
	const int VB = 8 / HB;
	size_t pf_bytes = tm_kv_row_bytes(type, vd);

	for (int h0 = 0; h0 < G; h0 += HB) {
		int hn = G - h0 < HB ? G - h0 : HB, pfn = h0 == 0 ? tm_kv_prefetch_rows(n, ahead) : 0, d = 0;
		const float *wh[4];
		float *op[4];

		for (int h = 0; h < HB; h++) {
			wh[h] = w + (size_t)(h0 + (h < hn ? h : hn - 1)) * w_stride;
			op[h] = o + (size_t)(h0 + (h < hn ? h : hn - 1)) * vd;
		}
		for (; d + 8 * VB <= vd; d += 8 * VB, pfn = 0)
			mix_dims(op, wh, d, v, vr, type, n, pfn, pf_bytes, HB, VB);
		for (; d < vd; d += 8, pfn = 0)
			mix_dims(op, wh, d, v, vr, type, n, pfn, pf_bytes, HB, 1);
	}
}

void tm_attn_mix_rows_avx2(float *o, int G, int vd, const float *w, size_t w_stride, const void *v,
			   size_t v_row_bytes, int type, int n, int ahead)
{
#define MIX(T, HB) mix_hb(o, G, vd, w, w_stride, v, v_row_bytes, T, n, ahead, HB)
#define MIX_T(T) (G % 4 == 0 || G == 3 || G > 4 ? MIX(T, 4) : G == 2 ? MIX(T, 2) : MIX(T, 1))
	if (type == TM_F16)
		MIX_T(TM_F16);
	else if (type == TM_Q8_0)
		MIX_T(TM_Q8_0);
	else
		MIX_T(TM_F32);
#undef MIX_T
#undef MIX
}

/* The float kernels: the same over f32 rows */
void tm_attn_scores_avx2(const float *q, int G, int hd, const float *k, size_t k_stride, int n, float scale, float *s,
			 size_t s_stride)
{
	tm_attn_scores_rows_avx2(q, G, hd, k, k_stride * sizeof(float), TM_F32, n, 0, scale, s, s_stride);
}

void tm_attn_mix_avx2(float *o, int G, int vd, const float *w, size_t w_stride, const float *v, size_t v_stride,
		      int n)
{
	tm_attn_mix_rows_avx2(o, G, vd, w, w_stride, v, v_stride * sizeof(float), TM_F32, n, 0);
}

/*
 * e^x as the AVX-512 table's exp512 computes it (x = n ln2 + r, Taylor to
 * r^6), with 2^n put together in the exponent bits, so n must stay in
 * [-126, 127]: below -87.33 the result is 0, above 88.3 it is e^88.3 (not
 * inf; softmax and SwiGLU never need more); NaN stays NaN.
 */
static inline __m256 exp256(__m256 x)
{
	const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
	__m256 n, r, p, zero = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33f), _CMP_LT_OQ);
	__m256i e;

	x = _mm256_max_ps(_mm256_set1_ps(-87.33f), x);
	x = _mm256_min_ps(_mm256_set1_ps(88.3f), x);
	n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
			    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_fnmadd_ps(n, ln2_hi, x);
	r = _mm256_fnmadd_ps(n, ln2_lo, r);
	p = _mm256_set1_ps(1.0f / 720);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
	return _mm256_andnot_ps(zero, p);
}

static inline float hsum256(__m256 v)
{
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}

/*
 * tm_max_ref's m = x > m ? x : m is maxps(x, m) lane by lane; max is exact,
 * so the order of the lanes cannot change the value (only, among equal
 * zeros, which sign comes back, and an all-NaN row gives -inf: neither
 * changes what softmax takes from it).
 */
float tm_max_avx2(const float *x, int n)
{
	__m256 m = _mm256_set1_ps(-INFINITY);
	__m128 h;
	float r;
	int i = 0;

	for (; i + 8 <= n; i += 8)
		m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
	h = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
	h = _mm_max_ps(_mm_movehl_ps(h, h), h);
	h = _mm_max_ss(_mm_movehdup_ps(h), h);
	r = _mm_cvtss_f32(h);
	for (; i < n; i++)
		r = x[i] > r ? x[i] : r;
	return r;
}

double tm_exp_sum_avx2(float *x, int n, float max)
{
	__m256 m = _mm256_set1_ps(max);
	double sum = 0.0;
	int i = 0;

	for (; i + 8 <= n; i += 8) {
		__m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));

		_mm256_storeu_ps(x + i, e);
		sum += hsum256(e);
	}
	for (; i < n; i++) {
		float t[8] = { x[i] - max };

		x[i] = _mm256_cvtss_f32(exp256(_mm256_loadu_ps(t)));
		sum += x[i];
	}
	return sum;
}

void tm_swiglu_avx2(float *out, const float *gate, const float *up, int n)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	int i = 0;

	for (; i + 8 <= n; i += 8) {
		__m256 g = _mm256_loadu_ps(gate + i), e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));

		_mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
	}
	for (; i < n; i++) {
		float t[8] = { -gate[i] };
		float e = _mm256_cvtss_f32(exp256(_mm256_loadu_ps(t)));

		out[i] = gate[i] / (1.0f + e) * up[i];
	}
}

void tm_scale_round_f16_avx2(float *x, int n, float scale)
{
	__m256 s = _mm256_set1_ps(scale);
	int i = 0;

	for (; i + 8 <= n; i += 8) {
		__m128i h = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), _MM_FROUND_TO_NEAREST_INT);

		_mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
	}
	for (; i < n; i++)
		x[i] = tm_f16_to_f32(tm_f32_to_f16(x[i] * scale));
}
