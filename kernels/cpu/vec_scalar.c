// SPDX-License-Identifier: MIT
/* The float loops of a layer in plain C, and the table each ISA uses (kernels/cpu/vec.h). */
#include <math.h>

#include "kern.h"
#include "kernels/ops.h"
#include "vec.h"

/* Eight partial sums so the compiler can keep a vector of them without -ffast-math. */
static float dot(const float *a, const float *b, int n)
{
	float acc[8] = { 0 };
	int i = 0;

	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		acc[0] += a[i] * b[i];
	return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void axpy(float *y, float a, const float *x, int n)
{
	for (int i = 0; i < n; i++)
		y[i] += a * x[i];
}

static inline float elem(const void *row, int type, int i)
{
	return type == TM_F16 ? tm_f16_to_f32(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

static void attn_scores(const float *q, int G, int hd, const void *k, size_t k_row_bytes, int type_k,
			int n, float scale, float *s, size_t s_stride)
{
	float kv[512];

	for (int p = 0; p < n; p++) {
		const void *row = (const char *)k + p * k_row_bytes;

		for (int off = 0; off < hd; off += 512) {
			int len = hd - off < 512 ? hd - off : 512;

			for (int d = 0; d < len; d++)
				kv[d] = elem(row, type_k, off + d);
			for (int h = 0; h < G; h++) {
				float r = dot(q + (size_t)h * hd + off, kv, len);

				s[h * s_stride + p] = off ? s[h * s_stride + p] + r * scale : r * scale;
			}
		}
	}
}

static void attn_mix(float *out, int G, int hd, const float *s, size_t s_stride, const void *v,
		     size_t v_row_bytes, int type_v, int n)
{
	for (int i = 0; i < G * hd; i++)
		out[i] = 0.0f;
	for (int p = 0; p < n; p++) {
		const void *row = (const char *)v + p * v_row_bytes;

		for (int d = 0; d < hd; d++) {
			float x = elem(row, type_v, d);

			for (int h = 0; h < G; h++)
				out[(size_t)h * hd + d] += s[h * s_stride + p] * x;
		}
	}
}

static double exp_sum(float *x, int n, float max)
{
	double sum = 0.0;

	for (int i = 0; i < n; i++) {
		x[i] = expf(x[i] - max);
		sum += x[i];
	}
	return sum;
}

static void swiglu(float *out, const float *gate, const float *up, int n)
{
	for (int i = 0; i < n; i++) {
		float g = gate[i];

		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

static double sumsq(const float *x, int n)
{
	double sum = 0.0;

	for (int i = 0; i < n; i++)
		sum += (double)(x[i] * x[i]);
	return sum;
}

static void to_f16(const float *x, uint16_t *y, int n)
{
	for (int i = 0; i < n; i++)
		y[i] = tm_f32_to_f16(x[i]);
}

static void scale_round_f16(float *x, int n, float scale)
{
	for (int i = 0; i < n; i++)
		x[i] = tm_f16_to_f32(tm_f32_to_f16(x[i] * scale));
}

const struct tm_vec tm_vec_scalar = {
	.dot = dot, .axpy = axpy, .vec_hd = 0,
	.attn_scores = attn_scores, .attn_mix = attn_mix,
	.exp_sum = exp_sum, .swiglu = swiglu, .sumsq = sumsq, .to_f16 = to_f16,
	.scale_round_f16 = scale_round_f16,
};

/* AVX2 machines get its dot and axpy; the rest stays in C there (not measured on one). */
const struct tm_vec tm_vec_avx2 = {
	.dot = tm_dot_f32_avx2, .axpy = tm_axpy_f32_avx2, .vec_hd = 0,
	.attn_scores = attn_scores, .attn_mix = attn_mix,
	.exp_sum = exp_sum, .swiglu = swiglu, .sumsq = sumsq, .to_f16 = to_f16,
	.scale_round_f16 = scale_round_f16,
};

const struct tm_vec *tm_vec(void)
{
	const struct tm_kern *k = tm_kern();

	if (k == &tm_kern_avx512 || k == &tm_kern_avx512vnni)
		return &tm_vec_avx512;
	if (k == &tm_kern_avx2)
		return &tm_vec_avx2;
	return &tm_vec_scalar;
}
