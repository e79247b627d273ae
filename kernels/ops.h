/* SPDX-License-Identifier: MIT */
/*
 * The small float operations of a transformer layer: RMSNorm, RoPE, softmax,
 * SwiGLU and attention over a KV cache. Like the matvec kernels they take
 * pointers and shapes only and know no model; the forward pass (lib/model/forward.c)
 * strings them together.
 *
 * Numerics follow ggml where it matters for matching llama.cpp's logits:
 * sums of squares and softmax denominators accumulate in double, RoPE angles
 * are built by repeated multiplication in float exactly as ggml builds them.
 */
#ifndef TIERMEM_KERNELS_OPS_H
#define TIERMEM_KERNELS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/pool.h"

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; out may be x; w may be NULL (no weight). */
void tm_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* In place over n_rows consecutive rows of n floats each (per-head q/k norm). */
void tm_rmsnorm_rows(float *x, const float *w, int n_rows, int n, float eps);

enum tm_rope_mode {
	TM_ROPE_NORM = 0,	/* rotate adjacent pairs (x[2i], x[2i+1]): llama */
	TM_ROPE_NEOX = 2,	/* rotate (x[i], x[i + n_rot/2]): qwen3, gpt-neox (ggml's id) */
};

/*
 * The cos/sin table of one position: cs[2i] = cos(theta_i), cs[2i+1] = sin(theta_i),
 * theta_i = pos * freq_scale * base^(-2i/n_rot) / (freq_factors ? freq_factors[i] : 1),
 * for i in [0, n_rot/2). cs holds n_rot floats.
 */
void tm_rope_table(float *cs, int pos, int n_rot, float base, float freq_scale,
		   const float *freq_factors);

/*
 * The same with YaRN, as ggml's rope_yarn: with ext_factor != 0 each angle
 * blends the scaled (interpolated) and unscaled (extrapolated) angle by a
 * ramp between the correction dims corr[0..1], and cos/sin are multiplied by
 * mscale * (1 + 0.1 ln(1 / freq_scale)); with ext_factor 0 by mscale alone.
 */
void tm_rope_table_yarn(float *cs, int pos, int n_rot, float base, float freq_scale,
			const float *freq_factors, float ext_factor, const float corr[2], float mscale);

/* Rotate the first n_rot dims of each of n_heads heads of head_dim floats. */
void tm_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs,
		   enum tm_rope_mode mode);

/* In-place softmax of n floats. */
void tm_softmax(float *x, int n);

/* out[i] = silu(gate[i]) * up[i]; out may alias either input. */
void tm_swiglu(float *out, const float *gate, const float *up, int n);

/* y[i] += a * x[i] */
void tm_axpy(float *y, float a, const float *x, int n);

/*
 * x[0..n) times the orthonormal Walsh-Hadamard matrix of order block (a power
 * of 2; Sylvester's order, entries +-1/sqrt(block)), block by block, in
 * place; its own inverse. Rotating queries and keys alike leaves their dot
 * products unchanged and spreads each head's outliers over its values, so a
 * quantized KV cache loses less (llama.cpp does this for quantized caches).
 */
void tm_hadamard(float *x, int n, int block);

/* Index of the largest value (the first one on ties). */
int tm_argmax(const float *x, int n);

/*
 * Causal multi-head attention with grouped KV heads, over a cache that already
 * holds the keys and values of the queries' own positions.
 *
 * Query t (0 <= t < n_tok) sits at position pos0 + t and attends to cache rows
 * [0, pos0 + t]. Query head h reads KV head h / (n_head / n_head_kv).
 * q and out: n_tok rows of q_stride / out_stride floats (head h at
 * h * head_dim in q, h * v_dim in out).
 * k and v: cache row p at k + p * k_row_bytes (v + p * v_row_bytes), of
 * type_k / type_v elements (TM_F32, TM_F16, TM_Q8_0: then head_dim and v_dim
 * are multiples of 32), KV head g at g * k_head_bytes of k and
 * g * v_head_bytes of v (0: side by side in the row, g * head_dim and
 * g * v_dim elements in; a head-major cache, each head's rows together, is
 * read as fast streams, a slice of each row per head is not); v_dim 0
 * means head_dim (MLA's latent cache gives v = k with a shorter v_dim).
 * scratch: tm_attention_scratch_floats() floats for the pool's thread
 * count, these shapes and n_ctx >= pos0 + n_tok positions
 * (only an f16 V cache, whose weights are rounded after a whole softmax,
 * keeps every score). Queries are rounded as ggml does before its f16 or
 * q8_0 dot products. Each cache row is read once; one hand-off to the pool,
 * two for f16 at decode (kernels/cpu/attention.c). A query's output has the
 * same bits whatever n_tok, the other queries and the pool's thread count.
 */
struct tm_attn {
	int n_tok, pos0;
	int n_head, n_head_kv, head_dim;
	float scale;
	const float *q;
	size_t q_stride;
	int type_k, type_v;
	const void *k, *v;
	size_t k_row_bytes, v_row_bytes;
	size_t k_head_bytes, v_head_bytes;
	int v_dim;
	float *out;
	size_t out_stride;
	float *scratch;
	int n_ctx;
};

void tm_attention(struct tm_pool *pool, const struct tm_attn *a);
size_t tm_attention_scratch_floats(int nth, int n_head, int n_head_kv, int head_dim, int v_dim, int n_ctx,
				   int type_v);

/* KV cache rows: the bytes of n elements of type (TM_F32, TM_F16, TM_Q8_0: n a multiple of 32), one row stored. */
size_t tm_kv_row_bytes(int type, int n);
void tm_kv_put_row(int type, const float *x, void *row, int n);

/* f32 dot and axpy per ISA (kernels/cpu/vec.h has the rest of the per-ISA float loops). */
float tm_dot_f32_avx2(const float *a, const float *b, int n);
float tm_dot_f32_avx512(const float *a, const float *b, int n);
void tm_axpy_f32_avx2(float *y, float s, const float *x, int n);
void tm_axpy_f32_avx512(float *y, float s, const float *x, int n);

/* n floats to IEEE halves (round to nearest even), vectorised where the CPU can. */
void tm_f32_to_f16_row(const float *x, uint16_t *y, int n);

#endif
