// SPDX-License-Identifier: MIT
/*
 * Attention over the KV cache, reading each cache row once: the cache is
 * read in chunks of positions, whole rows (every KV head) at a time, so each
 * thread streams the K and V caches front to back; within a chunk each KV
 * head's rows are turned into floats once (f16, q8_0) and serve all the
 * query heads that share them.
 *
 * f32 and q8_0 values: one pass, an online softmax (a running max and sum
 * per head, the partial output rescaled when the max grows), as llama.cpp's
 * flash attention, the only way it runs a q8_0 cache.
 * f16 values: ggml without flash attention (llama.cpp's f16 reference here)
 * rounds the attention weights to halves after a full softmax, which a
 * one-pass softmax never holds; to give its numbers, the K rows are read in
 * a first pass (all scores kept, ~0.5 MiB per query at 4096 positions of 32
 * heads), the V rows in a second with the rounded weights.
 *
 * Decode has one query and several threads: its positions are split among
 * them, each thread keeps the state of every head for its share, and the
 * caller merges the states (the softmax of a union from the max, sum and
 * unnormalised output of each part; for f16, the max and sum between the
 * passes, unless there are at least as many KV heads as threads: then each
 * thread takes whole KV heads, both passes, one hand-off). With as many
 * queries as threads (prefill), queries go out whole.
 *
 * The queries are rounded as ggml rounds them before its dot products: to
 * halves for an f16 cache, through q8_0 blocks for a q8_0 one (the f32
 * products of the rounded values are its integer ones, summed in another
 * order).
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "kern.h"
#include "kernels/ops.h"
#include "vec.h"

/*
 * Positions per chunk: its K rows as floats (all KV heads) take 32 KiB, as do
 * its V rows, so each fits L1 while the heads work on it (at least 16, the
 * vector scores' step, and at most 64).
 */
static int chunk_len(int kv_floats)
{
	int c = 8192 / (kv_floats > 0 ? kv_floats : 1);

	return c >= 64 ? 64 : c >= 16 ? c & ~15 : 16;
}

/* Positions per online-softmax step: whole chunks, at least 128, so its per-head work is spread thin. */
static int block_len(int C)
{
	return (128 + C - 1) / C * C;
}

static size_t up16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

static int v_dim(const struct tm_attn *a)
{
	return a->v_dim ? a->v_dim : a->head_dim;	/* MLA: V is the first v_dim of the latent K row */
}

/* The f16 path (rounded weights) keeps every score of its range. */
static bool rounded(int type_v)
{
	return type_v == TM_F16;
}

/*
 * One thread's scratch: K and V tiles, one block's scores, the rounded
 * queries (as floats, then as q8_0 blocks: 34 bytes per 32 < 32 floats),
 * m[H], l[H], o[H][vd], and for the f16 path all scores, H rows of n_ctx.
 */
static size_t thread_floats(int n_head, int n_head_kv, int hd, int vd, int n_ctx, int type_v)
{
	size_t C = chunk_len(n_head_kv * hd);

	return up16(C * n_head_kv * hd) + up16(C * n_head_kv * vd) + up16((size_t)n_head * block_len((int)C)) +
	       up16((size_t)n_head * hd) * 2 + 2 * up16(n_head) + up16((size_t)n_head * vd) +
	       (rounded(type_v) ? up16((size_t)n_head * n_ctx) : 0);
}

size_t tm_attention_scratch_floats(int nth, int n_head, int n_head_kv, int head_dim, int v_dim, int n_ctx,
				   int type_v)
{
	return (size_t)nth * thread_floats(n_head, n_head_kv, head_dim, v_dim ? v_dim : head_dim, n_ctx, type_v);
}

struct state {
	float *kt, *vt, *s, *qh, *m, *l, *o, *all;
};

static struct state state_of(const struct tm_attn *a, int ith)
{
	int hd = a->head_dim, vd = v_dim(a), H = a->n_head, KV = a->n_head_kv, C = chunk_len(KV * hd);
	struct state st;

	st.kt = a->scratch + (size_t)ith * thread_floats(H, KV, hd, vd, a->n_ctx, a->type_v);
	st.vt = st.kt + up16((size_t)C * KV * hd);
	st.s = st.vt + up16((size_t)C * KV * vd);
	st.qh = st.s + up16((size_t)H * block_len(C));
	st.m = st.qh + 2 * up16((size_t)H * hd);
	st.l = st.m + up16(H);
	st.o = st.l + up16(H);
	st.all = st.o + up16((size_t)H * vd);
	return st;
}

/* The queries of token t as the dot products take them. */
static const float *queries(const struct tm_attn *a, int t, const struct state *st, const struct tm_vec *v)
{
	int n = a->n_head * a->head_dim;
	const float *q = a->q + (size_t)t * a->q_stride;

	if (a->type_k == TM_F16) {
		memcpy(st->qh, q, sizeof(float) * n);
		v->scale_round_f16(st->qh, n, 1.0f);
		return st->qh;
	}
	if (a->type_k == TM_Q8_0) {
		void *blocks = st->qh + up16((size_t)n);

		tm_kern()->quant_q8_0(q, blocks, n);
		v->kv_rows(blocks, 0, TM_Q8_0, 0, n, 1, st->qh);
		return st->qh;
	}
	return q;
}

/* Fold a chunk's scores (row of head h, n of them) into the running max and sum; row becomes exp(row - max). */
static void online(const struct state *st, int h, float *row, int n, int vd, const struct tm_vec *v)
{
	float cm = v->max(row, n);

	if (cm > st->m[h]) {
		float r = st->m[h] == -INFINITY ? 0.0f : expf(st->m[h] - cm);

		st->l[h] *= r;
		/* o *= r as o += (r - 1) o: the table's vector axpy */
		v->axpy(st->o + (size_t)h * vd, r - 1.0f, st->o + (size_t)h * vd, vd);
		st->m[h] = cm;
	}
	st->l[h] += (float)v->exp_sum(row, n, st->m[h]);
}

enum pass { ONE_PASS, SCORES, MIX };

/*
 * Query t over positions [p0, p1) into st.
 * ONE_PASS: m, l and o (o not yet divided by l). Blocks of block_len()
 * positions: the K tiles' scores, one online softmax step per head, then
 * the V tiles' mix.
 * SCORES: every score in st->all, then m (the max) and l (the sum of
 * exp(score - m)) per head; st->all holds exp(score - m).
 * MIX: with st->l[h] the factor that makes st->all's values the weights,
 * o = the weights rounded to halves times the V rows.
 */
static void attend_range(const struct tm_attn *a, int t, int p0, int p1, int g0, int g1, const struct state *st,
			 const struct tm_vec *v, enum pass pass)
{
	int H = a->n_head, KV = a->n_head_kv, G = H / KV, hd = a->head_dim, vd = v_dim(a), C = chunk_len(KV * hd);
	int ng = g1 - g0, h0 = g0 * G, h1 = g1 * G;
	int B = pass == ONE_PASS ? block_len(C) : p1 - p0;
	const struct tm_vec *f = v->vec_hd && hd % v->vec_hd == 0 ? v : &tm_vec_scalar;
	const struct tm_vec *fv = v->vec_hd && vd % v->vec_hd == 0 ? v : &tm_vec_scalar;
	const float *q = pass == MIX ? NULL : queries(a, t, st, v);
	const char *kc = a->k, *vc = a->v;
	size_t kr = a->k_row_bytes, vr = a->v_row_bytes;
	/* the block's scores (weights): one block in st->s, or the whole range in st->all */
	float *w = pass == ONE_PASS ? st->s : st->all;
	size_t ws = pass == ONE_PASS ? (size_t)B : (size_t)a->n_ctx;

	if (pass == ONE_PASS)
		for (int h = h0; h < h1; h++) {
			st->m[h] = -INFINITY;
			st->l[h] = 0.0f;
		}
	if (pass != SCORES)
		memset(st->o + (size_t)h0 * vd, 0, sizeof(float) * (h1 - h0) * vd);
	if (pass == MIX)
		for (int h = h0; h < h1; h++)
			v->scale_round_f16(w + h * ws, p1 - p0, st->l[h]);
	for (int b0 = p0; b0 < p1; b0 += B) {
		int bn = p1 - b0 < B ? p1 - b0 : B;

		/* rows front to back (KV heads g0..g1 of each): each thread streams its share of both caches */
		for (int c0 = b0; pass != MIX && c0 < b0 + bn; c0 += C) {
			int cn = b0 + bn - c0 < C ? b0 + bn - c0 : C;

			v->kv_rows(kc + c0 * kr, kr, a->type_k, g0 * hd, ng * hd, cn, st->kt);
			for (int g = g0; g < g1; g++)
				f->attn_scores(q + (size_t)g * G * hd, G, hd, st->kt + (size_t)(g - g0) * hd,
					       (size_t)ng * hd, cn, a->scale, w + (size_t)g * G * ws + (c0 - b0), ws);
		}
		if (pass == SCORES)
			break;
		if (pass == ONE_PASS)
			for (int h = h0; h < h1; h++)
				online(st, h, w + h * ws, bn, vd, v);
		for (int c0 = b0; c0 < b0 + bn; c0 += C) {
			int cn = b0 + bn - c0 < C ? b0 + bn - c0 : C;

			v->kv_rows(vc + c0 * vr, vr, a->type_v, g0 * vd, ng * vd, cn, st->vt);
			for (int g = g0; g < g1; g++)
				fv->attn_mix(st->o + (size_t)g * G * vd, G, vd, w + (size_t)g * G * ws + (c0 - b0), ws,
					     st->vt + (size_t)(g - g0) * vd, (size_t)ng * vd, cn);
		}
	}
	if (pass == SCORES)
		for (int h = h0; h < h1; h++) {
			st->m[h] = p1 > p0 ? v->max(w + h * ws, p1 - p0) : -INFINITY;
			st->l[h] = p1 > p0 ? (float)v->exp_sum(w + h * ws, p1 - p0, st->m[h]) : 0.0f;
		}
}

/* Query t's output for heads [h0, h1) from st: o / l after one pass, o after the mix. */
static void finish(const struct tm_attn *a, int t, int h0, int h1, const struct state *st, enum pass pass)
{
	int vd = v_dim(a);
	float *out = a->out + (size_t)t * a->out_stride;

	for (int h = h0; h < h1; h++) {
		float inv = pass == MIX ? 1.0f : 1.0f / st->l[h];

		for (int d = 0; d < vd; d++)
			out[(size_t)h * vd + d] = st->o[(size_t)h * vd + d] * inv;
	}
}

/* f16 (two passes) of query t, KV heads [g0, g1), all its positions, into its output. */
static void attend_rounded(const struct tm_attn *a, int t, int g0, int g1, const struct state *st,
			   const struct tm_vec *v)
{
	int G = a->n_head / a->n_head_kv;

	attend_range(a, t, 0, a->pos0 + t + 1, g0, g1, st, v, SCORES);
	for (int h = g0 * G; h < g1 * G; h++)
		st->l[h] = 1.0f / st->l[h];
	attend_range(a, t, 0, a->pos0 + t + 1, g0, g1, st, v, MIX);
	finish(a, t, g0 * G, g1 * G, st, MIX);
}

/*
 * Parts per query when the queries are fewer than the threads: 1 deals whole
 * queries out. f16 decode with at least as many KV heads as threads splits
 * the heads instead (0): its two passes then need no meeting in between,
 * one hand-off instead of two.
 */
static int parts_of(const struct tm_attn *a, int nth)
{
	int parts = nth / a->n_tok > 1 ? nth / a->n_tok : 1;

	if (parts > 1 && rounded(a->type_v) && a->n_tok == 1 && a->n_head_kv >= nth)
		return 0;
	return parts;
}

struct job {
	const struct tm_attn *a;
	enum pass pass;	/* of the parts; ONE_PASS also for whole queries */
};

static void attention_worker(void *arg, int ith, int nth)
{
	const struct job *j = arg;
	const struct tm_attn *a = j->a;
	const struct tm_vec *v = tm_vec();
	struct state st = state_of(a, ith);
	int parts = parts_of(a, nth);
	long lo, hi;

	if (parts == 0) {
		int g0 = a->n_head_kv * ith / nth, g1 = a->n_head_kv * (ith + 1) / nth;

		attend_rounded(a, 0, g0, g1, &st, v);
		return;
	}
	if (parts == 1) {
		/* a causal query's cost grows with its position: round-robin evens it out */
		for (int t = ith; t < a->n_tok; t += nth) {
			if (rounded(a->type_v)) {
				attend_rounded(a, t, 0, a->n_head_kv, &st, v);
			} else {
				attend_range(a, t, 0, a->pos0 + t + 1, 0, a->n_head_kv, &st, v, ONE_PASS);
				finish(a, t, 0, a->n_head, &st, ONE_PASS);
			}
		}
		return;
	}
	if (ith >= a->n_tok * parts)
		return;
	tm_split(a->pos0 + ith / parts + 1, 16, ith % parts, parts, &lo, &hi);
	attend_range(a, ith / parts, (int)lo, (int)hi, 0, a->n_head_kv, &st, v, j->pass);
}

/*
 * Head h of query t over its parts (threads t * parts ..): the max M and the
 * sum L of exp(score - M) of the union. An empty part (fewer positions than
 * parts) has l = 0 and m = -inf.
 */
static void union_of(const struct tm_attn *a, int t, int parts, int h, float *M, float *L)
{
	*M = -INFINITY;
	*L = 0.0f;
	for (int i = 0; i < parts; i++) {
		struct state st = state_of(a, t * parts + i);

		*M = st.m[h] > *M ? st.m[h] : *M;
	}
	for (int i = 0; i < parts; i++) {
		struct state st = state_of(a, t * parts + i);

		*L += st.l[h] > 0.0f ? st.l[h] * expf(st.m[h] - *M) : 0.0f;
	}
}

/* The parts of query t into its output: after ONE_PASS each o weighted by its share, after MIX summed. */
static void merge(const struct tm_attn *a, int t, int parts, enum pass pass)
{
	int vd = v_dim(a);
	float *out = a->out + (size_t)t * a->out_stride;

	for (int h = 0; h < a->n_head; h++) {
		float M, L, *oh = out + (size_t)h * vd;

		if (pass == ONE_PASS)
			union_of(a, t, parts, h, &M, &L);
		memset(oh, 0, sizeof(float) * vd);
		for (int i = 0; i < parts; i++) {
			struct state st = state_of(a, t * parts + i);

			if (pass == MIX)
				tm_vec()->axpy(oh, 1.0f, st.o + (size_t)h * vd, vd);
			else if (st.l[h] > 0.0f)
				tm_vec()->axpy(oh, expf(st.m[h] - M) / L, st.o + (size_t)h * vd, vd);
		}
	}
}

void tm_attention(struct tm_pool *pool, const struct tm_attn *a)
{
	int nth = tm_pool_threads(pool), parts = parts_of(a, nth);
	struct job j = { a, rounded(a->type_v) && parts > 1 ? SCORES : ONE_PASS };

	tm_pool_run(pool, attention_worker, &j);
	if (parts <= 1)
		return;
	if (j.pass == SCORES) {
		/* every part mixes with the weights of the whole softmax: one more hand-off */
		for (int t = 0; t < a->n_tok; t++)
			for (int h = 0; h < a->n_head; h++) {
				float M, L;

				union_of(a, t, parts, h, &M, &L);
				/* a part's exp(score - m) times exp(m - M) / L: the weights */
				for (int i = 0; i < parts; i++) {
					struct state st = state_of(a, t * parts + i);

					st.l[h] = st.l[h] > 0.0f ? expf(st.m[h] - M) / L : 0.0f;
				}
			}
		j.pass = MIX;
		tm_pool_run(pool, attention_worker, &j);
	}
	for (int t = 0; t < a->n_tok; t++)
		merge(a, t, parts, j.pass);
}

void tm_f32_to_f16_row(const float *x, uint16_t *y, int n)
{
	tm_vec()->to_f16(x, y, n);
}

size_t tm_kv_row_bytes(int type, int n)
{
	switch (type) {
	case TM_F16: return (size_t)n * 2;
	case TM_Q8_0: return (size_t)n / QK * sizeof(blk_q8_0);
	default: return (size_t)n * 4;
	}
}

void tm_kv_put_row(int type, const float *x, void *row, int n)
{
	if (type == TM_F16)
		tm_f32_to_f16_row(x, row, n);
	else if (type == TM_Q8_0)
		tm_kern()->quant_q8_0(x, row, n);
	else
		memcpy(row, x, sizeof(float) * n);
}
