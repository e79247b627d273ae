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

typedef void (*f16_row_fn)(const uint16_t *x, float *y, int n);

static void f16_row(const uint16_t *x, float *y, int n)
{
	for (int i = 0; i < n; i++)
		y[i] = tm_f16_to_f32(x[i]);
}

/* len elements from off of a cache row as floats: the row itself (f32) or converted into buf */
static inline const float *row_f32(f16_row_fn cvt, const void *row, int type, int off, int len, float *buf)
{
	if (type != TM_F16)
		return (const float *)row + off;
	cvt((const uint16_t *)row + off, buf, len);
	return buf;
}

/*
 * The attention loops over any f32 dot and axpy: rows are converted to floats
 * once, then each head takes its dot and axpy (the AVX2 table passes its own).
 */
static inline void scores_with(float (*dotf)(const float *, const float *, int), f16_row_fn cvt,
			       const float *q, int G,
			       int hd, const void *k, size_t k_row_bytes, int type_k, int n, float scale,
			       float *s, size_t s_stride)
{
	float kv[512];

	for (int p = 0; p < n; p++) {
		const void *row = (const char *)k + p * k_row_bytes;

		for (int off = 0; off < hd; off += 512) {
			int len = hd - off < 512 ? hd - off : 512;

			const float *kr = row_f32(cvt, row, type_k, off, len, kv);

			for (int h = 0; h < G; h++) {
				float r = dotf(q + (size_t)h * hd + off, kr, len);

				s[h * s_stride + p] = off ? s[h * s_stride + p] + r * scale : r * scale;
			}
		}
	}
}

static inline void mix_with(void (*axpyf)(float *, float, const float *, int), f16_row_fn cvt,
			    float *out, int G, int hd,
			    const float *s, size_t s_stride, const void *v, size_t v_row_bytes, int type_v, int n)
{
	float x[512];

	for (int i = 0; i < G * hd; i++)
		out[i] = 0.0f;
	for (int p = 0; p < n; p++) {
		const void *row = (const char *)v + p * v_row_bytes;

		for (int off = 0; off < hd; off += 512) {
			int len = hd - off < 512 ? hd - off : 512;

			const float *vr = row_f32(cvt, row, type_v, off, len, x);

			for (int h = 0; h < G; h++)
				axpyf(out + (size_t)h * hd + off, s[h * s_stride + p], vr, len);
		}
	}
}

static void attn_scores(const float *q, int G, int hd, const void *k, size_t k_row_bytes, int type_k,
			int n, float scale, float *s, size_t s_stride)
{
	scores_with(dot, f16_row, q, G, hd, k, k_row_bytes, type_k, n, scale, s, s_stride);
}

static void attn_mix(float *out, int G, int hd, const float *s, size_t s_stride, const void *v,
		     size_t v_row_bytes, int type_v, int n)
{
	mix_with(axpy, f16_row, out, G, hd, s, s_stride, v, v_row_bytes, type_v, n);
}

static void attn_scores_avx2(const float *q, int G, int hd, const void *k, size_t k_row_bytes, int type_k,
			     int n, float scale, float *s, size_t s_stride)
{
	scores_with(tm_dot_f32_avx2, tm_f16_to_f32_row_avx2, q, G, hd, k, k_row_bytes, type_k, n, scale, s, s_stride);
}

static void attn_mix_avx2(float *out, int G, int hd, const float *s, size_t s_stride, const void *v,
			  size_t v_row_bytes, int type_v, int n)
{
	mix_with(tm_axpy_f32_avx2, tm_f16_to_f32_row_avx2, out, G, hd, s, s_stride, v, v_row_bytes, type_v, n);
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

/*
 * AVX2 machines get its dot and axpy, also inside attention; exp, SwiGLU and
 * the sum of squares stay in C there (not measured on such a machine).
 */
const struct tm_vec tm_vec_avx2 = {
	.dot = tm_dot_f32_avx2, .axpy = tm_axpy_f32_avx2, .vec_hd = 8,
	.attn_scores = attn_scores_avx2, .attn_mix = attn_mix_avx2,
	.exp_sum = exp_sum, .swiglu = swiglu, .sumsq = sumsq, .to_f16 = to_f16,
	.scale_round_f16 = tm_scale_round_f16_avx2,
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
