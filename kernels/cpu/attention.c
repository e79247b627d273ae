// SPDX-License-Identifier: MIT
/*
 * Attention over the KV cache, one (query, KV head) pair at a time: the
 * scores of all the query heads that share the KV head in one pass over its
 * K rows, a softmax per head with a vector exp, then one pass over its V rows.
 * Each cache row is read (and converted from f16) once per pair, not once per
 * query head, and no function is called per position.
 *
 * With an f16 cache the arithmetic is ggml's for its f16 matmuls: the queries
 * are rounded to halves before the scores, and the attention weights (after
 * the softmax) before they mix the values; with f32 nothing is rounded.
 */
#include <math.h>

#include "kern.h"
#include "kernels/ops.h"
#include "vec.h"

static void attend_group(const struct tm_attn *a, int t, int g, float *s, float *qh, const struct tm_vec *v)
{
	int G = a->n_head / a->n_head_kv, hd = a->head_dim, n = a->pos0 + t + 1;
	int vd = a->v_dim ? a->v_dim : hd;	/* MLA: V is the first v_dim of the latent K row */
	size_t ke = a->type_k == TM_F16 ? 2 : 4, ve = a->type_v == TM_F16 ? 2 : 4;
	const float *q = a->q + (size_t)t * a->q_stride + (size_t)g * G * hd;
	float *out = a->out + (size_t)t * a->out_stride + (size_t)g * G * vd;
	const void *k = (const char *)a->k + (size_t)g * hd * ke;
	const void *vv = (const char *)a->v + (size_t)g * vd * ve;
	const struct tm_vec *f = v->vec_hd && hd % v->vec_hd == 0 && hd <= 256 ? v : &tm_vec_scalar;
	const struct tm_vec *fv = v->vec_hd && vd % v->vec_hd == 0 && vd <= 256 ? v : &tm_vec_scalar;
	float inv[256];

	if (a->type_k == TM_F16) {
		for (int i = 0; i < G * hd; i++)
			qh[i] = q[i];
		v->scale_round_f16(qh, G * hd, 1.0f);
		q = qh;
	}
	f->attn_scores(q, G, hd, k, a->k_row_bytes, a->type_k, n, a->scale, s, a->scratch_stride);
	for (int h = 0; h < G; h++) {
		float *row = s + h * a->scratch_stride, max = -INFINITY;

		for (int p = 0; p < n; p++)
			max = row[p] > max ? row[p] : max;
		inv[h] = (float)(1.0 / v->exp_sum(row, n, max));
		if (a->type_v == TM_F16) {
			v->scale_round_f16(row, n, inv[h]);
			inv[h] = 1.0f;
		}
	}
	fv->attn_mix(out, G, vd, s, a->scratch_stride, vv, a->v_row_bytes, a->type_v, n);
	/* f32: normalised after the mix, vd multiplications instead of n */
	if (a->type_v != TM_F16)
		for (int h = 0; h < G; h++)
			for (int d = 0; d < vd; d++)
				out[(size_t)h * vd + d] *= inv[h];
}

static void attention_worker(void *arg, int ith, int nth)
{
	const struct tm_attn *a = arg;
	int G = a->n_head / a->n_head_kv;
	float *s = a->scratch + (size_t)ith * G * (a->scratch_stride + a->head_dim);
	float *qh = s + (size_t)G * a->scratch_stride;
	const struct tm_vec *v = tm_vec();
	long lo, hi;

	/*
	 * A causal query's cost grows with its position: deal whole queries out
	 * round-robin when there are enough; otherwise (decode) split the KV
	 * heads of the one query.
	 */
	if (a->n_tok >= nth) {
		for (int t = ith; t < a->n_tok; t += nth)
			for (int g = 0; g < a->n_head_kv; g++)
				attend_group(a, t, g, s, qh, v);
		return;
	}
	tm_split((long)a->n_tok * a->n_head_kv, 1, ith, nth, &lo, &hi);
	for (long i = lo; i < hi; i++)
		attend_group(a, (int)(i / a->n_head_kv), (int)(i % a->n_head_kv), s, qh, v);
}

void tm_attention(struct tm_pool *pool, const struct tm_attn *a)
{
	tm_pool_run(pool, attention_worker, (void *)a);
}

void tm_f32_to_f16_row(const float *x, uint16_t *y, int n)
{
	tm_vec()->to_f16(x, y, n);
}
