// SPDX-License-Identifier: MIT
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"

void tm_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
	double sum = 0.0;
	float scale;

	for (int i = 0; i < n; i++)
		sum += (double)(x[i] * x[i]);
	scale = 1.0f / sqrtf((float)(sum / n) + eps);
	if (w) {
		for (int i = 0; i < n; i++)
			out[i] = x[i] * scale * w[i];
	} else {
		for (int i = 0; i < n; i++)
			out[i] = x[i] * scale;
	}
}

void tm_rmsnorm_rows(float *x, const float *w, int n_rows, int n, float eps)
{
	for (int r = 0; r < n_rows; r++)
		tm_rmsnorm(x + (size_t)r * n, x + (size_t)r * n, w, n, eps);
}

void tm_rope_table(float *cs, int pos, int n_rot, float base, float freq_scale,
		   const float *freq_factors)
{
	/* ggml's order of rounding: theta_i = pos * s^i by repeated multiplication */
	const float theta_scale = powf(base, -2.0f / (float)n_rot);
	float theta = (float)pos;

	for (int i = 0; i < n_rot / 2; i++) {
		float ff = freq_factors ? freq_factors[i] : 1.0f;
		float t = freq_scale * (theta / ff);

		cs[2 * i] = cosf(t);
		cs[2 * i + 1] = sinf(t);
		theta *= theta_scale;
	}
}

void tm_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs,
		   enum tm_rope_mode mode)
{
	int half = n_rot / 2;

	for (int h = 0; h < n_heads; h++) {
		float *p = x + (size_t)h * head_dim;

		for (int i = 0; i < half; i++) {
			int i0 = mode == TM_ROPE_NEOX ? i : 2 * i;
			int i1 = mode == TM_ROPE_NEOX ? i + half : 2 * i + 1;
			float c = cs[2 * i], s = cs[2 * i + 1];
			float a = p[i0], b = p[i1];

			p[i0] = a * c - b * s;
			p[i1] = a * s + b * c;
		}
	}
}

void tm_softmax(float *x, int n)
{
	float max = -INFINITY;
	double sum = 0.0;
	float inv;

	for (int i = 0; i < n; i++)
		if (x[i] > max)
			max = x[i];
	for (int i = 0; i < n; i++) {
		x[i] = expf(x[i] - max);
		sum += x[i];
	}
	inv = (float)(1.0 / sum);
	for (int i = 0; i < n; i++)
		x[i] *= inv;
}

void tm_swiglu(float *out, const float *gate, const float *up, int n)
{
	for (int i = 0; i < n; i++) {
		float g = gate[i];

		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void tm_axpy(float *y, float a, const float *x, int n)
{
	for (int i = 0; i < n; i++)
		y[i] += a * x[i];
}

int tm_argmax(const float *x, int n)
{
	int best = 0;

	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

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

struct vec_fns {
	float (*dot)(const float *a, const float *b, int n);
	void (*axpy)(float *y, float s, const float *x, int n);
};

/* Attention reads the whole KV cache per token: with plain C it cost more than the weights. */
static struct vec_fns vec_pick(void)
{
	const char *isa = tm_kernels_isa();

	if (!strncmp(isa, "avx512", 6))
		return (struct vec_fns){ tm_dot_f32_avx512, tm_axpy_f32_avx512 };
	if (!strcmp(isa, "avx2"))
		return (struct vec_fns){ tm_dot_f32_avx2, tm_axpy_f32_avx2 };
	return (struct vec_fns){ dot, tm_axpy };
}

static void attend_one(const struct tm_attn *a, int t, int h, float *score, const struct vec_fns *v)
{
	int group = a->n_head / a->n_head_kv;
	int n_kv = a->pos0 + t + 1;
	size_t koff = (size_t)(h / group) * a->head_dim;
	const float *q = a->q + (size_t)t * a->q_stride + (size_t)h * a->head_dim;
	float *out = a->out + (size_t)t * a->out_stride + (size_t)h * a->head_dim;

	for (int p = 0; p < n_kv; p++)
		score[p] = v->dot(q, a->k + (size_t)p * a->kv_stride + koff, a->head_dim) * a->scale;
	tm_softmax(score, n_kv);
	for (int d = 0; d < a->head_dim; d++)
		out[d] = 0.0f;
	for (int p = 0; p < n_kv; p++)
		v->axpy(out, score[p], a->v + (size_t)p * a->kv_stride + koff, a->head_dim);
}

static void attention_worker(void *arg, int ith, int nth)
{
	const struct tm_attn *a = arg;
	float *score = a->scratch + (size_t)ith * a->scratch_stride;
	const struct vec_fns v = vec_pick();
	long lo, hi;

	/*
	 * A causal query's cost grows with its position: deal whole queries out
	 * round-robin when there are enough; otherwise (decode) split the heads
	 * of the one query into runs, so a thread's heads share KV rows.
	 */
	if (a->n_tok >= nth) {
		for (int t = ith; t < a->n_tok; t += nth)
			for (int h = 0; h < a->n_head; h++)
				attend_one(a, t, h, score, &v);
		return;
	}
	tm_split((long)a->n_tok * a->n_head, 1, ith, nth, &lo, &hi);
	for (long i = lo; i < hi; i++)
		attend_one(a, (int)(i / a->n_head), (int)(i % a->n_head), score, &v);
}

void tm_attention(struct tm_pool *pool, const struct tm_attn *a)
{
	tm_pool_run(pool, attention_worker, (void *)a);
}
