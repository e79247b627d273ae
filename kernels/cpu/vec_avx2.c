// SPDX-License-Identifier: MIT
/* The float loops of a layer with 256-bit FMAs: dot, axpy, exp, cache rows (kernels/cpu/vec.h). */
#include <immintrin.h>

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
	size_t bytes = tm_kv_row_bytes(type, len), next = (size_t)n * row_bytes;

	if (len % 32 || type == TM_F32) {
		tm_kv_rows_ref(src, row_bytes, type, off, len, n, ahead, dst);
		return;
	}
	for (int p = 0; p < n; p++, dst += len, row += row_bytes) {
		if (p < ahead)
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
