// SPDX-License-Identifier: MIT
/* The float loops of a layer in plain C, and the table each ISA uses (kernels/cpu/vec.h). */
#include <math.h>
#include <string.h>

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

void tm_kv_rows_ref(const void *src, size_t row_bytes, int type, int off, int len, int n, int ahead,
		    float *dst)
{
	int pfn = tm_kv_prefetch_rows(n, ahead);

	for (int p = 0; p < n; p++, dst += len) {
		const char *row = (const char *)src + p * row_bytes;

		if (p < pfn)
			tm_kv_prefetch(row + (size_t)TM_KV_AHEAD * row_bytes + tm_kv_row_bytes(type, off),
				       tm_kv_row_bytes(type, len));
		if (type == TM_F32) {
			memcpy(dst, (const float *)row + off, sizeof(float) * len);
			continue;
		}
		if (type == TM_F16) {
			for (int i = 0; i < len; i++)
				dst[i] = tm_f16_to_f32(((const uint16_t *)row)[off + i]);
			continue;
		}
		for (int b = 0; b < len / 32; b++) {
			const blk_q8_0 *x = (const blk_q8_0 *)row + off / 32 + b;
			float d = tm_f16_to_f32(x->d);

			for (int i = 0; i < 32; i++)
				dst[32 * b + i] = d * x->qs[i];
		}
	}
}

float tm_max_ref(const float *x, int n)
{
	float m = x[0];

	for (int i = 1; i < n; i++)
		m = x[i] > m ? x[i] : m;
	return m;
}

/* The attention halves over the f32 dot and axpy above. */
static inline void scores_with(float (*dotf)(const float *, const float *, int), const float *q, int G,
			       int hd, const float *k, size_t k_stride, int n, float scale, float *s,
			       size_t s_stride)
{
	for (int p = 0; p < n; p++)
		for (int h = 0; h < G; h++)
			s[h * s_stride + p] = dotf(q + (size_t)h * hd, k + p * k_stride, hd) * scale;
}

static inline void mix_with(void (*axpyf)(float *, float, const float *, int), float *o, int G, int vd,
			    const float *w, size_t w_stride, const float *v, size_t v_stride, int n)
{
	for (int p = 0; p < n; p++)
		for (int h = 0; h < G; h++)
			axpyf(o + (size_t)h * vd, w[h * w_stride + p], v + p * v_stride, vd);
}

static void attn_scores(const float *q, int G, int hd, const float *k, size_t k_stride, int n, float scale,
			float *s, size_t s_stride)
{
	scores_with(dot, q, G, hd, k, k_stride, n, scale, s, s_stride);
}

static void attn_mix(float *o, int G, int vd, const float *w, size_t w_stride, const float *v, size_t v_stride,
		     int n)
{
	mix_with(axpy, o, G, vd, w, w_stride, v, v_stride, n);
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
	.attn_scores = attn_scores, .attn_mix = attn_mix, .kv_rows = tm_kv_rows_ref,
	.max = tm_max_ref, .exp_sum = exp_sum, .swiglu = swiglu, .sumsq = sumsq, .to_f16 = to_f16,
	.scale_round_f16 = scale_round_f16,
};

/*
 * AVX2 machines get its dot and axpy, attention kernels that read the cache
 * rows themselves (with the dot and axpy's sums), its max and exp; the sum of
 * squares stays in C there.
 */
const struct tm_vec tm_vec_avx2 = {
	.dot = tm_dot_f32_avx2, .axpy = tm_axpy_f32_avx2, .vec_hd = 8,
	.attn_scores = tm_attn_scores_avx2, .attn_mix = tm_attn_mix_avx2, .kv_rows = tm_kv_rows_avx2,
	.attn_scores_rows = tm_attn_scores_rows_avx2, .attn_mix_rows = tm_attn_mix_rows_avx2,
	.max = tm_max_avx2, .exp_sum = tm_exp_sum_avx2, .swiglu = tm_swiglu_avx2, .sumsq = sumsq, .to_f16 = to_f16,
	.scale_round_f16 = tm_scale_round_f16_avx2,
};

const struct tm_vec *tm_vec(void)
{
	const struct tm_kern *k = tm_kern();

	if (k == &tm_kern_avx512 || k == &tm_kern_avx512vnni || k == &tm_kern_avx512amx)
		return &tm_vec_avx512;
	if (k == &tm_kern_avx2)
		return &tm_vec_avx2;
	return &tm_vec_scalar;
}
