// SPDX-License-Identifier: MIT
/*
 * Attention over the KV cache, reading each cache row once: each KV head's
 * values are turned into floats once (f16, q8_0: in registers by the
 * AVX-512 and AVX2 kernels, a span's rows of a head per call; through an
 * L1 tile of a chunk's rows by the C ones) and serve all the query heads
 * that share them. A context's cache is head-major, so each head's rows
 * are one stream; the kernels prefetch TM_KV_AHEAD rows ahead in it.
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
 * A query's positions are cut into spans at fixed multiples (span_len(),
 * from the heads' shape only); each span's softmax state (max, sum and
 * unnormalised output per head; for f16, max and sum, then the rounded
 * weights' output) is made alone, and the states are folded in position
 * order. Who computes a span does not change its bits: with as many queries
 * as threads (prefill) a thread folds its query's spans as it goes; decode
 * deals the spans of its one query out to the threads, which then fold
 * the states head by head after a barrier (for f16 with at least as many
 * KV heads as threads, each thread takes whole KV heads instead). So a
 * query's output has the same bits in a prefill batch, alone in decode,
 * beside other sequences in a batched step, and at any thread count: a
 * server's text does not depend on its batch or on its prefix cache.
 *
 * The queries are rounded as ggml rounds them before its dot products: to
 * halves for an f16 cache, through q8_0 blocks for a q8_0 one (the f32
 * products of the rounded values are its integer ones, summed in another
 * order).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "kern.h"
#include "kernels/ops.h"
#include "vec.h"

/*
 * Positions per chunk: its K rows (all KV heads) would take 32 KiB as
 * floats, as would its V rows (at least 16, the vector scores' step, and at
 * most 64). The chunk fixes the spans, hence the bits of every output:
 * keep it. Where a table has no kernels that read the rows themselves,
 * one KV head's rows of a chunk are floats at a time (a tile of C * hd
 * floats that stays in L1 beside the stream; the whole chunk as floats,
 * 32 KiB of K and 32 of V, left L1 too little room).
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

/* Bytes from one KV head's values to the next's: a->k_head_bytes, or side by side in a row. */
static size_t k_head(const struct tm_attn *a)
{
	return a->k_head_bytes ? a->k_head_bytes : tm_kv_row_bytes(a->type_k, a->head_dim);
}

static size_t v_head(const struct tm_attn *a)
{
	return a->v_head_bytes ? a->v_head_bytes : tm_kv_row_bytes(a->type_v, v_dim(a));
}

/* The f16 path (rounded weights) keeps every score of its range. */
static bool rounded(int type_v)
{
	return type_v == TM_F16;
}

/*
 * Positions per span: one online-softmax block. The cut depends on the
 * heads' shape alone, never on the threads or the queries of a call.
 */
static int span_len(int n_head_kv, int hd)
{
	return block_len(chunk_len(n_head_kv * hd));
}

static int spans_of(int n, int S)
{
	return (n + S - 1) / S;
}

/* One softmax state for every head: m[H], l[H], o[H][vd]. */
static size_t part_floats(int n_head, int vd)
{
	return 2 * up16(n_head) + up16((size_t)n_head * vd);
}

/*
 * One thread's scratch: one KV head's K and V tiles, one block's scores, the rounded
 * queries (as floats, then as q8_0 blocks: 34 bytes per 32 < 32 floats),
 * the state of the span at hand and the fold of the spans before it, and
 * for the f16 path all scores (H rows of n_ctx) and each span's max and sum.
 */
static size_t thread_floats(int n_head, int n_head_kv, int hd, int vd, int n_ctx, int type_v)
{
	size_t C = chunk_len(n_head_kv * hd), spans = spans_of(n_ctx, span_len(n_head_kv, hd));

	return up16(C * hd) + up16(C * vd) + up16((size_t)n_head * block_len((int)C)) +
	       up16((size_t)n_head * hd) * 2 + 2 * part_floats(n_head, vd) +
	       (rounded(type_v) ? up16((size_t)n_head * n_ctx) + 2 * up16(spans * n_head) : 0);
}

/* After the threads' scratch: decode's span states, one per span of n_ctx positions. */
size_t tm_attention_scratch_floats(int nth, int n_head, int n_head_kv, int head_dim, int v_dim, int n_ctx,
				   int type_v)
{
	int vd = v_dim ? v_dim : head_dim;

	return (size_t)nth * thread_floats(n_head, n_head_kv, head_dim, vd, n_ctx, type_v) +
	       spans_of(n_ctx, span_len(n_head_kv, head_dim)) * part_floats(n_head, vd);
}

/* A softmax state: the span at hand (attend_range's output), or the fold of several. */
struct part {
	float *m, *l, *o;
};

struct state {
	float *kt, *vt, *s, *qh, *all, *sm, *sl;
	struct part cur, acc;
};

static struct part part_at(float *p, int H)
{
	return (struct part){ p, p + up16(H), p + 2 * up16(H) };
}

static struct state state_of(const struct tm_attn *a, int ith)
{
	int hd = a->head_dim, vd = v_dim(a), H = a->n_head, KV = a->n_head_kv, C = chunk_len(KV * hd);
	size_t spans = spans_of(a->n_ctx, span_len(KV, hd));
	struct state st;

	st.kt = a->scratch + (size_t)ith * thread_floats(H, KV, hd, vd, a->n_ctx, a->type_v);
	st.vt = st.kt + up16((size_t)C * hd);
	st.s = st.vt + up16((size_t)C * vd);
	st.qh = st.s + up16((size_t)H * block_len(C));
	st.cur = part_at(st.qh + 2 * up16((size_t)H * hd), H);
	st.acc = part_at(st.cur.m + part_floats(H, vd), H);
	st.all = st.acc.m + part_floats(H, vd);
	st.sm = st.all + up16((size_t)H * a->n_ctx);
	st.sl = st.sm + up16(spans * H);
	return st;
}

/* Decode's state of span j (shared: the threads write their spans, then fold them by heads). */
static struct part slot(const struct tm_attn *a, int nth, int j)
{
	int H = a->n_head, vd = v_dim(a);
	float *base = a->scratch + (size_t)nth * thread_floats(H, a->n_head_kv, a->head_dim, vd, a->n_ctx, a->type_v);

	return part_at(base + (size_t)j * part_floats(H, vd), H);
}

/*
 * The queries of token t as the dot products take them (heads [h0, h1) at
 * their places): once per call of a thread, not per span.
 */
static const float *queries(const struct tm_attn *a, int t, int h0, int h1, const struct state *st,
			    const struct tm_vec *v)
{
	size_t o = (size_t)h0 * a->head_dim;
	int n = (h1 - h0) * a->head_dim;
	const float *q = a->q + (size_t)t * a->q_stride;

	if (a->type_k == TM_F16) {
		memcpy(st->qh + o, q + o, sizeof(float) * n);
		v->scale_round_f16(st->qh + o, n, 1.0f);
		return st->qh;
	}
	if (a->type_k == TM_Q8_0) {
		/* head_dim is a multiple of 32 for a q8_0 cache: each head's blocks are its own */
		blk_q8_0 *blocks = (blk_q8_0 *)(st->qh + up16((size_t)a->n_head * a->head_dim)) + o / QK;

		tm_kern()->quant_q8_0(q + o, blocks, n);
		v->kv_rows(blocks, 0, TM_Q8_0, 0, n, 1, 0, st->qh + o);
		return st->qh;
	}
	return q;
}

/* Fold a block's scores (row of head h, n of them) into p's max and sum; row becomes exp(row - max). */
static void online(const struct part *p, int h, float *row, int n, int vd, const struct tm_vec *v)
{
	float cm = v->max(row, n);

	if (cm > p->m[h]) {
		float r = p->m[h] == -INFINITY ? 0.0f : expf(p->m[h] - cm);

		p->l[h] *= r;
		/* o *= r as o += (r - 1) o: the table's vector axpy */
		v->axpy(p->o + (size_t)h * vd, r - 1.0f, p->o + (size_t)h * vd, vd);
		p->m[h] = cm;
	}
	p->l[h] += (float)v->exp_sum(row, n, p->m[h]);
}

enum pass { ONE_PASS, SCORES, MIX };

/*
 * Query t over positions [p0, p1) (one span) into p, KV heads [g0, g1),
 * q its queries (queries(); NULL for MIX).
 * ONE_PASS: m, l and o (o not yet divided by l): the K tiles' scores, one
 * online softmax step per head, then the V tiles' mix.
 * SCORES: every score into st->all at its position, then m (the max) and l
 * (the sum of exp(score - m)) per head; st->all holds exp(score - m).
 * MIX: with p->l[h] the factor that makes st->all's values the weights,
 * o = the weights rounded to halves times the V rows.
 */
static void attend_range(const struct tm_attn *a, int t, const float *q, int p0, int p1, int g0, int g1,
			 const struct state *st, const struct part *p, const struct tm_vec *v, enum pass pass)
{
	int H = a->n_head, KV = a->n_head_kv, G = H / KV, hd = a->head_dim, vd = v_dim(a), C = chunk_len(KV * hd);
	int h0 = g0 * G, h1 = g1 * G, n = p1 - p0;
	const struct tm_vec *f = v->vec_hd && hd % v->vec_hd == 0 ? v : &tm_vec_scalar;
	const struct tm_vec *fv = v->vec_hd && vd % v->vec_hd == 0 ? v : &tm_vec_scalar;
	/* the rows straight into the vector kernels where the table has them (the same bits) */
	bool kd = f == v && v->attn_scores_rows, vdir = fv == v && v->attn_mix_rows;
	/*
	 * Rows per call: a float tile's C, or the whole span where the kernels
	 * read the rows themselves (a call per KV head, its rows one run; a
	 * score, and a head's sum over positions in order, have the same bits
	 * either way).
	 */
	int KC = kd ? n : C, VC = vdir ? n : C;
	const char *kc = a->k, *vc = a->v;
	size_t kr = a->k_row_bytes, vr = a->v_row_bytes, kh = k_head(a), vh = v_head(a);
	/* the query's last position + 1: the rows after a call's are prefetched up to there */
	int pe = a->pos0 + t + 1;
	/* the span's scores (weights): in st->s, or in st->all at their positions */
	float *w = pass == ONE_PASS ? st->s : st->all + p0;
	size_t ws = pass == ONE_PASS ? (size_t)block_len(C) : (size_t)a->n_ctx;

	if (pass == ONE_PASS)
		for (int h = h0; h < h1; h++) {
			p->m[h] = -INFINITY;
			p->l[h] = 0.0f;
		}
	if (pass != SCORES)
		memset(p->o + (size_t)h0 * vd, 0, sizeof(float) * (h1 - h0) * vd);
	if (pass == MIX)
		for (int h = h0; h < h1; h++)
			v->scale_round_f16(w + h * ws, n, p->l[h]);
	/* rows front to back (KV heads g0..g1 of each): each thread streams its share of both caches */
	for (int c0 = p0; pass != MIX && c0 < p1; c0 += KC) {
		int cn = p1 - c0 < KC ? p1 - c0 : KC;

		int nn = pe - (c0 + cn) < KC ? pe - (c0 + cn) : KC;

		for (int g = g0; g < g1; g++) {
			float *s = w + (size_t)g * G * ws + (c0 - p0);

			if (kd) {
				v->attn_scores_rows(q + (size_t)g * G * hd, G, hd, kc + g * kh + c0 * kr, kr,
						    a->type_k, cn, nn, a->scale, s, ws);
				continue;
			}
			v->kv_rows(kc + g * kh + c0 * kr, kr, a->type_k, 0, hd, cn, nn, st->kt);
			f->attn_scores(q + (size_t)g * G * hd, G, hd, st->kt, (size_t)hd, cn, a->scale, s, ws);
		}
	}
	if (pass == SCORES) {
		for (int h = h0; h < h1; h++) {
			p->m[h] = v->max(w + h * ws, n);
			p->l[h] = (float)v->exp_sum(w + h * ws, n, p->m[h]);
		}
		return;
	}
	if (pass == ONE_PASS)
		for (int h = h0; h < h1; h++)
			online(p, h, w + h * ws, n, vd, v);
	for (int c0 = p0; c0 < p1; c0 += VC) {
		int cn = p1 - c0 < VC ? p1 - c0 : VC;

		int nn = pe - (c0 + cn) < VC ? pe - (c0 + cn) : VC;

		for (int g = g0; g < g1; g++) {
			float *o = p->o + (size_t)g * G * vd;
			const float *wg = w + (size_t)g * G * ws + (c0 - p0);

			if (vdir) {
				v->attn_mix_rows(o, G, vd, wg, ws, vc + g * vh + c0 * vr, vr, a->type_v, cn, nn);
				continue;
			}
			v->kv_rows(vc + g * vh + c0 * vr, vr, a->type_v, 0, vd, cn, nn, st->vt);
			fv->attn_mix(o, G, vd, wg, ws, st->vt, (size_t)vd, cn);
		}
	}
}

/*
 * The fold of spans 0..j-1 (acc; m -inf, l 0 and o 0 before span 0) and
 * span j's state into acc, heads [h0, h1): the softmax of the union. With
 * o NULL, the max and sum only (f16's first pass). Decode and prefill both
 * come here, span by span in position order: that is what makes their bits
 * equal.
 */
static void fold(const struct part *acc, const struct part *p, int h0, int h1, int vd, bool o,
		 const struct tm_vec *v)
{
	for (int h = h0; h < h1; h++) {
		float M = p->m[h] > acc->m[h] ? p->m[h] : acc->m[h];
		float x = acc->l[h] > 0.0f ? expf(acc->m[h] - M) : 0.0f;
		float y = expf(p->m[h] - M);

		acc->m[h] = M;
		acc->l[h] = acc->l[h] * x + p->l[h] * y;
		if (!o)
			continue;
		if (x != 1.0f)
			v->axpy(acc->o + (size_t)h * vd, x - 1.0f, acc->o + (size_t)h * vd, vd);
		v->axpy(acc->o + (size_t)h * vd, y, p->o + (size_t)h * vd, vd);
	}
}

static void empty(const struct part *acc, int h0, int h1, int vd)
{
	for (int h = h0; h < h1; h++) {
		acc->m[h] = -INFINITY;
		acc->l[h] = 0.0f;
	}
	memset(acc->o + (size_t)h0 * vd, 0, sizeof(float) * (h1 - h0) * vd);
}

/* f16: span j's factor from its max and sum and the union's (acc): exp(m - M) / L turns exp(s - m) into weights. */
static void weigh(const struct part *acc, float *m, float *l, int h0, int h1)
{
	for (int h = h0; h < h1; h++)
		l[h] = expf(m[h] - acc->m[h]) / acc->l[h];
}

/* f16: span j's output (mixed with the rounded weights) added to acc's, in position order. */
static void add(const struct part *acc, const struct part *p, int h0, int h1, int vd, const struct tm_vec *v)
{
	for (int h = h0; h < h1; h++)
		v->axpy(acc->o + (size_t)h * vd, 1.0f, p->o + (size_t)h * vd, vd);
}

/* Query t's output for heads [h0, h1) from the fold: o / l after one pass, o after the mix. */
static void finish(const struct tm_attn *a, int t, int h0, int h1, const struct part *acc, enum pass pass)
{
	int vd = v_dim(a);
	float *out = a->out + (size_t)t * a->out_stride;

	for (int h = h0; h < h1; h++) {
		float inv = pass == MIX ? 1.0f : 1.0f / acc->l[h];

		for (int d = 0; d < vd; d++)
			out[(size_t)h * vd + d] = acc->o[(size_t)h * vd + d] * inv;
	}
}

/* Query t, KV heads [g0, g1), every span in order on this thread, into its output. */
static void attend_whole(const struct tm_attn *a, int t, int g0, int g1, const struct state *st,
			 const struct tm_vec *v)
{
	int G = a->n_head / a->n_head_kv, h0 = g0 * G, h1 = g1 * G, vd = v_dim(a);
	int n = a->pos0 + t + 1, S = span_len(a->n_head_kv, a->head_dim), ns = spans_of(n, S);
	const float *q = queries(a, t, h0, h1, st, v);

	empty(&st->acc, h0, h1, vd);
	if (!rounded(a->type_v)) {
		for (int j = 0; j < ns; j++) {
			attend_range(a, t, q, j * S, j == ns - 1 ? n : (j + 1) * S, g0, g1, st, &st->cur, v, ONE_PASS);
			fold(&st->acc, &st->cur, h0, h1, vd, true, v);
		}
		finish(a, t, h0, h1, &st->acc, ONE_PASS);
		return;
	}
	for (int j = 0; j < ns; j++) {
		struct part p = { st->sm + (size_t)j * a->n_head, st->sl + (size_t)j * a->n_head, NULL };

		attend_range(a, t, q, j * S, j == ns - 1 ? n : (j + 1) * S, g0, g1, st, &p, v, SCORES);
		fold(&st->acc, &p, h0, h1, vd, false, v);
	}
	for (int j = 0; j < ns; j++) {
		struct part p = { st->sm + (size_t)j * a->n_head, st->sl + (size_t)j * a->n_head, st->cur.o };

		weigh(&st->acc, p.m, p.l, h0, h1);
		attend_range(a, t, NULL, j * S, j == ns - 1 ? n : (j + 1) * S, g0, g1, st, &p, v, MIX);
		add(&st->acc, &p, h0, h1, vd, v);
	}
	finish(a, t, h0, h1, &st->acc, MIX);
}

enum mode { QUERIES, HEADS, SPANS };

/*
 * Whole queries round-robin (prefill, or one thread); one decode query's
 * spans dealt out (SPANS), or for f16 with at least as many KV heads as
 * threads its KV heads (HEADS: its two passes need no meeting between).
 */
static enum mode mode_of(const struct tm_attn *a, int nth)
{
	if (a->n_tok > 1 || nth == 1)
		return QUERIES;
	return rounded(a->type_v) && a->n_head_kv >= nth ? HEADS : SPANS;
}

struct job {
	const struct tm_attn *a;
	enum pass pass;	/* SPANS: ONE_PASS, or f16's SCORES then MIX */
	_Alignas(64) atomic_int arrived;	/* SPANS: every span's state is made */
};

/*
 * Decode: heads [h0, h1) of the output from the span states, in position
 * order: the fold of attend_whole (ONE_PASS), or f16's mixed spans added up
 * (MIX). A head's fold is its own, so the threads share the heads out once
 * every span is made; the bits are those of a fold on one thread.
 */
static void gather_heads(const struct tm_attn *a, int ith, int nth, const struct state *st, enum pass pass,
			 const struct tm_vec *v)
{
	int H = a->n_head, vd = v_dim(a), h0 = H * ith / nth, h1 = H * (ith + 1) / nth;
	int ns = spans_of(a->pos0 + 1, span_len(a->n_head_kv, a->head_dim));

	empty(&st->acc, h0, h1, vd);
	for (int s = 0; s < ns; s++) {
		struct part p = slot(a, nth, s);

		if (pass == ONE_PASS)
			fold(&st->acc, &p, h0, h1, vd, true, v);
		else
			add(&st->acc, &p, h0, h1, vd, v);
	}
	finish(a, 0, h0, h1, &st->acc, pass);
}

/* Decode's spans, contiguous per thread (each streams its share of the cache front to back), then the fold by heads. */
static void attend_spans(struct job *j, int ith, int nth, const struct state *st, const struct tm_vec *v)
{
	const struct tm_attn *a = j->a;
	int n = a->pos0 + 1, S = span_len(a->n_head_kv, a->head_dim), ns = spans_of(n, S);
	const float *q = j->pass == MIX ? NULL : queries(a, 0, 0, a->n_head, st, v);

	for (int s = ns * ith / nth; s < ns * (ith + 1) / nth; s++) {
		struct part p = slot(a, nth, s);

		attend_range(a, 0, q, s * S, s == ns - 1 ? n : (s + 1) * S, 0, a->n_head_kv, st, &p, v, j->pass);
	}
	if (j->pass == SCORES)
		return;	/* the caller folds the maxima and sums, then runs the mix */
	tm_barrier_wait(&j->arrived, nth);
	gather_heads(a, ith, nth, st, j->pass, v);
}

static void attention_worker(void *arg, int ith, int nth)
{
	struct job *j = arg;
	const struct tm_attn *a = j->a;
	const struct tm_vec *v = tm_vec();
	struct state st = state_of(a, ith);

	switch (mode_of(a, nth)) {
	case QUERIES:
		/* a causal query's cost grows with its position: round-robin evens it out */
		for (int t = ith; t < a->n_tok; t += nth)
			attend_whole(a, t, 0, a->n_head_kv, &st, v);
		return;
	case HEADS:
		/* a KV head at a time: its K rows one stream, then its V rows */
		for (int g = a->n_head_kv * ith / nth; g < a->n_head_kv * (ith + 1) / nth; g++)
			attend_whole(a, 0, g, g + 1, &st, v);
		return;
	case SPANS:
		attend_spans(j, ith, nth, &st, v);
	}
}

/*
 * f16 decode after its scores: the spans' maxima and sums folded in position
 * order (cheap: no vectors), each span's factor, then the mix of every span
 * with the weights of the whole softmax, whose outputs the threads add up.
 */
static void fold_spans(struct tm_pool *pool, struct job *j)
{
	const struct tm_attn *a = j->a;
	const struct tm_vec *v = tm_vec();
	int nth = tm_pool_threads(pool), H = a->n_head, vd = v_dim(a);
	int ns = spans_of(a->pos0 + 1, span_len(a->n_head_kv, a->head_dim));
	struct part acc = state_of(a, 0).acc;

	empty(&acc, 0, H, vd);
	for (int s = 0; s < ns; s++) {
		struct part p = slot(a, nth, s);

		fold(&acc, &p, 0, H, vd, false, v);
	}
	for (int s = 0; s < ns; s++) {
		struct part p = slot(a, nth, s);

		weigh(&acc, p.m, p.l, 0, H);
	}
	j->pass = MIX;
	tm_pool_run(pool, attention_worker, j);
}

void tm_attention(struct tm_pool *pool, const struct tm_attn *a)
{
	struct job j = { a, rounded(a->type_v) ? SCORES : ONE_PASS, 0 };

	tm_pool_run(pool, attention_worker, &j);
	if (mode_of(a, tm_pool_threads(pool)) == SPANS && j.pass == SCORES)
		fold_spans(pool, &j);
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
