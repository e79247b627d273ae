// SPDX-License-Identifier: MIT
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "vec.h"

void tm_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
	double sum = tm_vec()->sumsq(x, n);
	float scale;

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
	static const float none[2];

	tm_rope_table_yarn(cs, pos, n_rot, base, freq_scale, freq_factors, 0.0f, none, 1.0f);
}

void tm_rope_table_yarn(float *cs, int pos, int n_rot, float base, float freq_scale,
			const float *freq_factors, float ext_factor, const float corr[2], float mscale)
{
	/* ggml's order of rounding: theta_i = pos * s^i by repeated multiplication */
	const float theta_scale = powf(base, -2.0f / (float)n_rot);
	float theta = (float)pos;

	if (ext_factor != 0.0f)
		mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
	for (int i = 0; i < n_rot / 2; i++) {
		float ff = freq_factors ? freq_factors[i] : 1.0f;
		float t = freq_scale * (theta / ff);

		if (ext_factor != 0.0f) {
			float y = ((float)i - corr[0]) / fmaxf(0.001f, corr[1] - corr[0]);
			float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * ext_factor;

			t = t * (1.0f - ramp) + (theta / ff) * ramp;
		}
		cs[2 * i] = cosf(t) * mscale;
		cs[2 * i + 1] = sinf(t) * mscale;
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
	float max = -INFINITY, inv;

	for (int i = 0; i < n; i++)
		if (x[i] > max)
			max = x[i];
	inv = (float)(1.0 / tm_vec()->exp_sum(x, n, max));
	for (int i = 0; i < n; i++)
		x[i] *= inv;
}

void tm_swiglu(float *out, const float *gate, const float *up, int n)
{
	tm_vec()->swiglu(out, gate, up, n);
}

void tm_axpy(float *y, float a, const float *x, int n)
{
	tm_vec()->axpy(y, a, x, n);
}

void tm_hadamard(float *x, int n, int block)
{
	float norm = 1.0f / sqrtf((float)block);

	for (float *b = x; b + block <= x + n; b += block) {
		for (int s = 1; s < block; s *= 2)
			for (int i = 0; i < block; i += 2 * s)
				for (int j = i; j < i + s; j++) {
					float u = b[j], w = b[j + s];

					b[j] = u + w;
					b[j + s] = u - w;
				}
		for (int i = 0; i < block; i++)
			b[i] *= norm;
	}
}

int tm_argmax(const float *x, int n)
{
	int best = 0;

	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

