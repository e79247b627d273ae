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
 * The two halves of attention over one chunk of cache rows turned into
 * floats (kernels/cpu/attention.c drives them): G query heads that share one
 * KV head, q_h at q + h * hd, row p at k + p * k_stride (v likewise).
 * scores: s[h * s_stride + p] = scale * q_h . k_p for p < n.
 * mix:    o_h += sum_p w[h * w_stride + p] * v_p, o_h at o + h * vd.
 */
typedef void (*tm_attn_scores_fn)(const float *q, int G, int hd, const float *k, size_t k_stride, int n,
				  float scale, float *s, size_t s_stride);
typedef void (*tm_attn_mix_fn)(float *o, int G, int vd, const float *w, size_t w_stride, const float *v,
			       size_t v_stride, int n);
/*
 * n cache rows of type (TM_F32, TM_F16, TM_Q8_0) as floats: dst[p * len + i]
 * is element off + i of the row at src + p * row_bytes (q8_0: off and len
 * are multiples of 32). While row p is read, the same part of row
 * p + TM_KV_AHEAD is prefetched where that row is below n + ahead (ahead:
 * the rows after these n that the caller reads next): the rows arrive
 * while earlier ones are worked on, the misses spread one row at a time (a
 * burst of them would wait for L1's few fill buffers).
 */
typedef void (*tm_kv_rows_fn)(const void *src, size_t row_bytes, int type, int off, int len, int n, int ahead,
			      float *dst);

/*
 * The same two halves straight from the cache rows (of type, as kv_rows
 * takes them; row p at k + p * k_row_bytes, from the head's first value):
 * each value is made a float once, in a register, and feeds every query
 * head of the group, instead of going through a float tile (whose stores
 * and reloads cost as much as the dot products). The sums are the float
 * kernels' own, in their order: the same bits. Rows are prefetched as
 * kv_rows does it.
 */
typedef void (*tm_attn_scores_rows_fn)(const float *q, int G, int hd, const void *k, size_t k_row_bytes, int type,
				       int n, int ahead, float scale, float *s, size_t s_stride);
typedef void (*tm_attn_mix_rows_fn)(float *o, int G, int vd, const float *w, size_t w_stride, const void *v,
				    size_t v_row_bytes, int type, int n, int ahead);

/*
 * How far ahead the KV kernels prefetch, in rows: 16 rows of a KV head of
 * 128 halves are 4 KiB, 100-200 ns of scores or mix. On Zen 5 (bench/attn,
 * 2048 positions of 6 KV heads, 2 threads) 16 rows ran 5-10 % faster than
 * a whole span (128 rows) ahead; 8, 32 and 64 no better than 16.
 */
enum { TM_KV_AHEAD = 16 };

/* The rows p < this of n that prefetch row p + TM_KV_AHEAD (below n + ahead). */
static inline int tm_kv_prefetch_rows(int n, int ahead)
{
	int m = n + ahead - TM_KV_AHEAD;

	return m < 0 ? 0 : m < n ? m : n;
}

/* kv_rows' prefetch of the row TM_KV_AHEAD further on: bytes from row on (the part it reads) */
static inline void tm_kv_prefetch(const char *row, size_t bytes)
{
	for (size_t o = 0; o < bytes; o += 64)
		__builtin_prefetch(row + o, 0, 3);
}

struct tm_vec {
	float (*dot)(const float *a, const float *b, int n);
	void (*axpy)(float *y, float s, const float *x, int n);
	/* hd (vd) must be a multiple of vec_hd for these two; else the scalar ones run */
	int vec_hd;
	tm_attn_scores_fn attn_scores;
	tm_attn_mix_fn attn_mix;
	tm_kv_rows_fn kv_rows;
	/* NULL where the table has none: kv_rows, then the float kernels */
	tm_attn_scores_rows_fn attn_scores_rows;
	tm_attn_mix_rows_fn attn_mix_rows;
	/* the largest of n >= 1 floats */
	float (*max)(const float *x, int n);
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

/* The AVX2 table's functions of its own (vec_avx2.c); the rest are the scalar ones. */
void tm_kv_rows_avx2(const void *src, size_t row_bytes, int type, int off, int len, int n, int ahead,
		     float *dst);
void tm_attn_scores_rows_avx2(const float *q, int G, int hd, const void *k, size_t k_row_bytes, int type, int n,
			      int ahead, float scale, float *s, size_t s_stride);
void tm_attn_mix_rows_avx2(float *o, int G, int vd, const float *w, size_t w_stride, const void *v,
			   size_t v_row_bytes, int type, int n, int ahead);
void tm_attn_scores_avx2(const float *q, int G, int hd, const float *k, size_t k_stride, int n, float scale, float *s,
			 size_t s_stride);
void tm_attn_mix_avx2(float *o, int G, int vd, const float *w, size_t w_stride, const float *v, size_t v_stride,
		      int n);
void tm_scale_round_f16_avx2(float *x, int n, float scale);
double tm_exp_sum_avx2(float *x, int n, float max);
float tm_max_avx2(const float *x, int n);
void tm_swiglu_avx2(float *out, const float *gate, const float *up, int n);
/* cache rows in C: the tail of the SIMD tables' kv_rows; the largest float in C */
void tm_kv_rows_ref(const void *src, size_t row_bytes, int type, int off, int len, int n, int ahead,
		    float *dst);
float tm_max_ref(const float *x, int n);

extern const struct tm_vec tm_vec_scalar;
extern const struct tm_vec tm_vec_avx2;
extern const struct tm_vec tm_vec_avx512;

#endif
