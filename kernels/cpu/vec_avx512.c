// SPDX-License-Identifier: MIT
/* The float loops of a layer with 512-bit FMAs (kernels/cpu/vec.h). */
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "vec.h"

float tm_dot_f32_avx512(const float *a, const float *b, int n)
{
	__m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
	int i = 0;
	float r;

	for (; i + 32 <= n; i += 32) {
		acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
		acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
	}
	for (; i + 16 <= n; i += 16)
		acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
	r = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
	for (; i < n; i++)
		r += a[i] * b[i];
	return r;
}

void tm_axpy_f32_avx512(float *y, float s, const float *x, int n)
{
	__m512 vs = _mm512_set1_ps(s);
	int i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_fmadd_ps(vs, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += s * x[i];
}

/*
 * e^x to about 1 ulp: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor
 * series to r^6 (the next term is below 1.2e-7 relative), times 2^n by
 * scalef, which also gives 0 and inf at the ends. NaN stays NaN: max/min
 * return their second operand when either is NaN.
 */
static inline __m512 exp512(__m512 x)
{
	const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
	__m512 n, r, p;

	x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
	x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
	n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
				 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, ln2_hi, x);
	r = _mm512_fnmadd_ps(n, ln2_lo, r);
	p = _mm512_set1_ps(1.0f / 720);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

static inline __mmask16 tail(int left)
{
	return left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
}

static double exp_sum(float *x, int n, float max)
{
	__m512 m = _mm512_set1_ps(max);
	double sum = 0.0;

	for (int i = 0; i < n; i += 16) {
		__mmask16 k = tail(n - i);
		__m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m));

		e = _mm512_maskz_mov_ps(k, e);
		_mm512_mask_storeu_ps(x + i, k, e);
		sum += _mm512_reduce_add_ps(e);
	}
	return sum;
}

static void swiglu(float *out, const float *gate, const float *up, int n)
{
	const __m512 one = _mm512_set1_ps(1.0f);

	for (int i = 0; i < n; i += 16) {
		__mmask16 k = tail(n - i);
		__m512 g = _mm512_maskz_loadu_ps(k, gate + i), u = _mm512_maskz_loadu_ps(k, up + i);
		__m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));

		_mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
	}
}

/* In double, as ggml sums RMSNorm's squares; eight lanes instead of one chain. */
static double sumsq(const float *x, int n)
{
	__m512d acc = _mm512_setzero_pd();
	double r;
	int i = 0;

	for (; i + 8 <= n; i += 8) {
		__m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));

		acc = _mm512_fmadd_pd(v, v, acc);
	}
	r = _mm512_reduce_add_pd(acc);
	for (; i < n; i++)
		r += (double)(x[i] * x[i]);
	return r;
}

static void to_f16(const float *x, uint16_t *y, int n)
{
	int i = 0;

	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *)(y + i),
				    _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		y[i] = tm_f32_to_f16(x[i]);
}

static void scale_round_f16(float *x, int n, float scale)
{
	__m512 s = _mm512_set1_ps(scale);

	for (int i = 0; i < n; i += 16) {
		__mmask16 k = tail(n - i);
		__m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), s),
					    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);

		_mm512_mask_storeu_ps(x + i, k, _mm512_cvtph_ps(h));
	}
}

/* 16 elements of a cache row as floats */
static inline __m512 load16(const char *row, int type, int c)
{
	if (type == TM_F16)
		return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 32 * c)));
	return _mm512_loadu_ps((const float *)(row + 64 * c));
}

/* Each cache row is converted once and used by all G heads. */
static void attn_scores(const float *q, int G, int hd, const void *k, size_t k_row_bytes, int type_k,
			int n, float scale, float *s, size_t s_stride)
{
	int nc = hd / 16;
	__m512 kv[16];

	for (int p = 0; p < n; p++) {
		const char *row = (const char *)k + p * k_row_bytes;

		if (p + 8 < n)
			for (int o = 0; o < nc * (type_k == TM_F16 ? 32 : 64); o += 64)
				_mm_prefetch(row + 8 * k_row_bytes + o, _MM_HINT_T0);
		for (int c = 0; c < nc; c++)
			kv[c] = load16(row, type_k, c);
		for (int h = 0; h < G; h++) {
			const float *qh = q + (size_t)h * hd;
			__m512 acc = _mm512_mul_ps(_mm512_loadu_ps(qh), kv[0]);

			for (int c = 1; c < nc; c++)
				acc = _mm512_fmadd_ps(_mm512_loadu_ps(qh + 16 * c), kv[c], acc);
			s[h * s_stride + p] = _mm512_reduce_add_ps(acc) * scale;
		}
	}
}

/*
 * 16 output dims of 4 heads stay in registers while the rows go by; a group
 * of fewer than 4 heads repeats its last head and drops the copies.
 */
static void attn_mix(float *out, int G, int hd, const float *s, size_t s_stride, const void *v,
		     size_t v_row_bytes, int type_v, int n)
{
	for (int h0 = 0; h0 < G; h0 += 4) {
		int hn = G - h0 < 4 ? G - h0 : 4;
		const float *sp[4];

		for (int h = 0; h < 4; h++)
			sp[h] = s + (size_t)(h0 + (h < hn ? h : hn - 1)) * s_stride;
		for (int c = 0; c < hd / 16; c++) {
			__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

			for (int p = 0; p < n; p++) {
				__m512 x = load16((const char *)v + p * v_row_bytes, type_v, c);

				a0 = _mm512_fmadd_ps(_mm512_set1_ps(sp[0][p]), x, a0);
				a1 = _mm512_fmadd_ps(_mm512_set1_ps(sp[1][p]), x, a1);
				a2 = _mm512_fmadd_ps(_mm512_set1_ps(sp[2][p]), x, a2);
				a3 = _mm512_fmadd_ps(_mm512_set1_ps(sp[3][p]), x, a3);
			}
			__m512 acc[4] = { a0, a1, a2, a3 };

			for (int h = 0; h < hn; h++)
				_mm512_storeu_ps(out + (size_t)(h0 + h) * hd + 16 * c, acc[h]);
		}
	}
}

const struct tm_vec tm_vec_avx512 = {
	.dot = tm_dot_f32_avx512,
	.axpy = tm_axpy_f32_avx512,
	.vec_hd = 16,
	.attn_scores = attn_scores,
	.attn_mix = attn_mix,
	.exp_sum = exp_sum,
	.swiglu = swiglu,
	.sumsq = sumsq,
	.to_f16 = to_f16,
	.scale_round_f16 = scale_round_f16,
};
