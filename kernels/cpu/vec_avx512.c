// SPDX-License-Identifier: MIT
/* f32 dot and axpy with 512-bit FMAs: attention over the KV cache. */
#include <immintrin.h>

#include "kernels/ops.h"

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
