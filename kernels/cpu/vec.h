/* SPDX-License-Identifier: MIT */
/*
 * Internal to the CPU kernels: the float loops of a layer (attention over the
 * KV cache, softmax, SwiGLU, RMSNorm's sum of squares, f16 rows) per ISA.
 * Decode runs them once per layer per token between the matvecs, on one
 * thread or while the others wait, so at thousands of positions or tens of
 * thousands of FFN rows a scalar libm loop costs as much as a weight.
 */
#ifndef TIERMEM_KERNELS_VEC_H
#define TIERMEM_KERNELS_VEC_H

#include <stddef.h>
#include <stdint.h>

/*
 * Attention of G query heads that share one KV head (hd floats each, q and
 * out laid out head after head), over n cache rows: row p of K at
 * k + p * k_row_bytes, hd elements of type_k (TM_F32 or TM_F16).
 * scores: s[h * s_stride + p] = scale * q_h . k_p.
 * mix:    out_h = sum_p s[h * s_stride + p] * v_p.
 */
typedef void (*tm_attn_scores_fn)(const float *q, int G, int hd, const void *k, size_t k_row_bytes,
				  int type_k, int n, float scale, float *s, size_t s_stride);
typedef void (*tm_attn_mix_fn)(float *out, int G, int hd, const float *s, size_t s_stride,
			       const void *v, size_t v_row_bytes, int type_v, int n);

struct tm_vec {
	float (*dot)(const float *a, const float *b, int n);
	void (*axpy)(float *y, float s, const float *x, int n);
	/* hd must be a multiple of vec_hd (and at most 256) for these two; else the scalar ones run */
	int vec_hd;
	tm_attn_scores_fn attn_scores;
	tm_attn_mix_fn attn_mix;
	/* x[i] = exp(x[i] - max); returns the sum */
	double (*exp_sum)(float *x, int n, float max);
	void (*swiglu)(float *out, const float *gate, const float *up, int n);
	double (*sumsq)(const float *x, int n);
	void (*to_f16)(const float *x, uint16_t *y, int n);
	/* x[i] = the half nearest to x[i] * scale, as a float */
	void (*scale_round_f16)(float *x, int n, float scale);
};

/* The functions for the ISA the dispatcher has picked (follows tm_kernels_force_isa). */
const struct tm_vec *tm_vec(void);

/* n halves to floats with F16C (the AVX2 table's cache rows) */
void tm_f16_to_f32_row_avx2(const uint16_t *x, float *y, int n);
/* the AVX2 table's scale_round_f16 */
void tm_scale_round_f16_avx2(float *x, int n, float scale);

extern const struct tm_vec tm_vec_scalar;
extern const struct tm_vec tm_vec_avx2;
extern const struct tm_vec tm_vec_avx512;

#endif
