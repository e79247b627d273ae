// SPDX-License-Identifier: MIT
/*
 * The forward pass: one code path for llama (dense and Mixtral-style MoE),
 * qwen3, qwen3moe, deepseek2 and glm4moe, which differ in per-head q/k norms
 * and q/k/v biases, the RoPE pairing and width, how attention gets its
 * queries, keys and values (MLA for deepseek2: mla_attention), and whether
 * and how the FFN is routed to experts (one routing function with
 * llama.cpp's options).
 *
 * Decode (a batch of one) hands the pool one batch of matvecs per weight
 * group: q, k and v together; wo; gate and up together; down; for MoE the
 * router, then the selected experts' gate and up together, then their downs.
 * Attention is one more hand-off. Prefill (a batch of several) runs each
 * weight through tm_matmul over all rows of the batch, and each expert over
 * the rows routed to it. Weights are read in place, never copied; the K and V
 * projections are written straight into the cache.
 *
 * tm_forward_seqs decodes one token of each of several sequences in one pass:
 * its rows go through the same matmuls as a prefill batch (each weight read
 * once for all of them), only RoPE positions, the KV cache a row writes and
 * the attention differ per row. A `seqs` argument of NULL below means the
 * rows are the consecutive positions of one sequence, c.
 *
 * Under tensor parallel (c->tp, lib/mpi/dense.c) each dense matrix goes
 * through mul_dense one at a time: this process's rows, then a gather.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tiermem/error.h"
#include "tiermem/gpu.h"
#include "tiermem/model.h"

#define MAX_USED 64	/* experts per token we route to; checked in tm_ctx_create */

static size_t max_z(size_t a, size_t b)
{
	return a > b ? a : b;
}

/* The shape tm_attention runs in: per-head K (V) width and the KV heads, MLA's included. */
static void attn_shape(const struct tm_hparams *hp, int *n_kv, int *hd, int *vd)
{
	*n_kv = hp->n_head_kv;
	*hd = *vd = hp->head_dim;
	if (hp->mla && hp->mla_absorbed) {
		*n_kv = 1;
		*hd = hp->kv_lora_rank + hp->qk_rope;
		*vd = hp->kv_lora_rank;
	} else if (hp->mla) {
		*n_kv = hp->n_head;
		*hd = hp->qk_nope + hp->qk_rope;
		*vd = hp->v_head;
	}
}

/*
 * The KV cache on 2 MiB pages (THP, as the weights' DDR copy): attention
 * streams each layer's rows front to back, and on 4 KiB pages every page
 * boundary stops the hardware prefetcher and costs a TLB walk.
 */
static void *kv_alloc(struct tm_mapping *map, size_t size)
{
	return tm_map_anon(map, size, TM_PAGES_THP, 0) ? NULL : map->addr;
}

/* n_ctx 0: a work context for tm_forward_seqs, with no KV cache and n_batch rows of logits. */
static int ctx_alloc(struct tm_ctx **out, const struct tm_model *m, struct tm_pool *pool,
		     int n_ctx, int n_batch, int type_k, int type_v)
{
	const struct tm_hparams *hp = &m->hp;
	size_t E = hp->n_embd, H = hp->n_head, QD = H * hp->head_dim;
	size_t KVD = (size_t)hp->n_head_kv * hp->head_dim;
	size_t B, K = hp->moe ? hp->n_expert_used : 0, F;
	size_t nth = tm_pool_threads(pool);
	int n_kv, hd, vd;
	struct tm_ctx *c;

	*out = NULL;
	/* MLA: q per head before absorption, the decompressed keys and values, the outputs before attn_v_b */
	if (hp->mla) {
		QD = max_z(QD, H * (size_t)(hp->qk_nope + hp->qk_rope));
		QD = max_z(QD, H * (size_t)max_z(hp->v_head, hp->kv_lora_rank));
		QD = max_z(QD, H * (size_t)(hp->qk_nope + hp->v_head));
		/* one latent row serves as K and V: one type */
		if (hp->mla_absorbed)
			type_v = type_k;
	}
	if (K > MAX_USED)
		return tm_err(-EOPNOTSUPP, "%d experts per token; at most %d are supported", (int)K, MAX_USED);
	if (hp->n_head / hp->n_head_kv > 256)
		return tm_err(-EOPNOTSUPP, "%d query heads per KV head; at most 256 are supported",
			      hp->n_head / hp->n_head_kv);
	B = n_batch;
	F = max_z(B * hp->n_ff, max_z(K, B) * hp->n_ff_exp);
	F = max_z(F, B * (size_t)hp->n_ff_exp * hp->n_expert_shared);
	c = calloc(1, sizeof(*c));
	if (!c)
		return tm_err(-ENOMEM, "out of memory");
	c->m = m;
	c->pool = pool;
	c->n_ctx = n_ctx;
	c->n_batch = n_batch;
	c->type_k = type_k;
	c->type_v = type_v;
	if (n_ctx) {
		attn_shape(hp, &n_kv, &hd, &vd);
		c->k_cache = kv_alloc(&c->k_map, tm_kv_row_bytes(type_k, (int)KVD) * hp->n_layer * (size_t)n_ctx);
		/* absorbed MLA: V is the latent part of the K rows */
		c->v_cache = hp->mla_absorbed ? c->k_cache :
			     kv_alloc(&c->v_map, tm_kv_row_bytes(type_v, (int)KVD) * hp->n_layer * (size_t)n_ctx);
		c->scores = malloc(sizeof(float) * tm_attention_scratch_floats((int)nth, hp->n_head, n_kv, hd, vd,
										n_ctx, type_v));
	}
	c->kb = malloc(sizeof(float) * B * KVD);
	c->vb = malloc(sizeof(float) * B * KVD);
	c->x = malloc(sizeof(float) * B * E);
	c->xb = malloc(sizeof(float) * B * max_z(E, QD));
	if (hp->mla) {
		c->qa = malloc(sizeof(float) * B * max_z(hp->kv_lora_rank, hp->q_lora_rank));
		c->kva = malloc(sizeof(float) * B * (hp->kv_lora_rank + hp->qk_rope));
		c->jobs = malloc(sizeof(*c->jobs) * H);
	}
	c->q = malloc(sizeof(float) * B * QD);
	c->att = malloc(sizeof(float) * B * QD);
	c->hb = malloc(sizeof(float) * F);
	c->hb2 = malloc(sizeof(float) * F);
	c->logits = malloc(sizeof(float) * (n_ctx ? 1 : B) * hp->n_vocab);
	c->rope_cs = malloc(sizeof(float) * B * hp->n_rot);
	if (hp->moe) {
		c->router = malloc(sizeof(float) * B * hp->n_expert);
		c->probs = malloc(sizeof(float) * hp->n_expert);
		c->sel = malloc(sizeof(int) * B * K);
		c->selw = malloc(sizeof(float) * B * K);
		c->rows = malloc(sizeof(int) * B);
		c->xg = malloc(sizeof(float) * B * E);
		c->yg = malloc(sizeof(float) * max_z(K, B) * E);
		c->acc = malloc(sizeof(float) * B * E);
		c->rw = malloc(sizeof(float) * B);
	}
	if ((n_ctx && (!c->k_cache || !c->v_cache || !c->scores)) || !c->kb || !c->vb ||
	    !c->x || !c->xb || !c->q || !c->att || !c->hb || !c->hb2 || !c->logits || !c->rope_cs ||
	    (hp->mla && (!c->qa || !c->kva || !c->jobs)) ||
	    (hp->moe && (!c->router || !c->probs || !c->sel || !c->selw || !c->rows || !c->xg || !c->yg ||
			 !c->acc || !c->rw))) {
		tm_ctx_free(c);
		return tm_err(-ENOMEM, "out of memory for a context of %d tokens", n_ctx);
	}
	*out = c;
	return 0;
}

int tm_ctx_create_kv(struct tm_ctx **out, const struct tm_model *m, struct tm_pool *pool,
		     int n_ctx, int n_batch, int type_k, int type_v)
{
	const struct tm_hparams *hp = &m->hp;
	int n_kv, hd, vd;

	*out = NULL;
	if (n_ctx < 1 || n_ctx > hp->n_ctx_train)
		return tm_err(-EINVAL, "context of %d tokens: the model allows 1 to %d", n_ctx, hp->n_ctx_train);
	if (n_batch < 1)
		return tm_err(-EINVAL, "batch of %d tokens", n_batch);
	if ((type_k != TM_F32 && type_k != TM_F16 && type_k != TM_Q8_0) ||
	    (type_v != TM_F32 && type_v != TM_F16 && type_v != TM_Q8_0))
		return tm_err(-EOPNOTSUPP, "KV cache types %d/%d: this build runs f32, f16 and q8_0", type_k, type_v);
	attn_shape(hp, &n_kv, &hd, &vd);
	if ((type_k == TM_Q8_0 || type_v == TM_Q8_0) && hp->mla)
		return tm_err(-EOPNOTSUPP, "a q8_0 KV cache is not supported for MLA (deepseek2) yet: use f16 or f32");
	/* q8_0 blocks of 32 must not straddle two heads */
	if ((type_k == TM_Q8_0 || type_v == TM_Q8_0) && (hd % 32 || vd % 32))
		return tm_err(-EOPNOTSUPP, "a q8_0 KV cache needs heads of a multiple of 32 values; this model's are %d (K) and %d (V)",
			      hd, vd);
	return ctx_alloc(out, m, pool, n_ctx, n_batch < n_ctx ? n_batch : n_ctx, type_k, type_v);
}

int tm_ctx_create(struct tm_ctx **out, const struct tm_model *m, struct tm_pool *pool,
		  int n_ctx, int n_batch)
{
	return tm_ctx_create_kv(out, m, pool, n_ctx, n_batch, TM_F32, TM_F32);
}

int tm_kv_type_parse(const char *s)
{
	if (!strcmp(s, "f32"))
		return TM_F32;
	if (!strcmp(s, "f16"))
		return TM_F16;
	if (!strcmp(s, "q8_0"))
		return TM_Q8_0;
	return -1;
}

int tm_ctx_create_seqs(struct tm_ctx **out, const struct tm_model *m, struct tm_pool *pool, int n_seq)
{
	*out = NULL;
	if (n_seq < 1)
		return tm_err(-EINVAL, "a batch of %d sequences", n_seq);
	return ctx_alloc(out, m, pool, 0, n_seq, TM_F32, TM_F32);
}

void tm_ctx_free(struct tm_ctx *c)
{
	if (!c)
		return;
	tm_gpu_detach(c);
	tm_unmap(&c->v_map);
	tm_unmap(&c->k_map);
	free(c->kb);
	free(c->vb);
	free(c->x);
	free(c->xb);
	free(c->q);
	free(c->att);
	free(c->hb);
	free(c->hb2);
	free(c->logits);
	free(c->scores);
	free(c->rope_cs);
	free(c->qa);
	free(c->kva);
	free(c->jobs);
	free(c->router);
	free(c->probs);
	free(c->sel);
	free(c->selw);
	free(c->rows);
	free(c->xg);
	free(c->yg);
	free(c->acc);
	free(c->rw);
	free(c);
}

void tm_ctx_reset(struct tm_ctx *c)
{
	c->n_past = 0;
}

size_t tm_ctx_kv_row_bytes(const struct tm_ctx *c, int v)
{
	return tm_kv_row_bytes(v ? c->type_v : c->type_k, c->m->hp.n_head_kv * c->m->hp.head_dim);
}

struct tm_kv_view tm_ctx_kv_view(const struct tm_ctx *c, int layer, int v)
{
	const struct tm_hparams *hp = &c->m->hp;
	int n_kv, hd, vd;
	size_t part;

	attn_shape(hp, &n_kv, &hd, &vd);
	/* absorbed MLA: V is the first vd values of the latent K rows */
	if (v && hp->mla_absorbed) {
		struct tm_kv_view k = tm_ctx_kv_view(c, layer, 0);

		k.dim = vd;
		return k;
	}
	part = tm_kv_row_bytes(v ? c->type_v : c->type_k, v ? vd : hd);
	return (struct tm_kv_view){
		.base = (char *)(v ? c->v_cache : c->k_cache) + (size_t)layer * c->n_ctx * tm_ctx_kv_row_bytes(c, v),
		.heads = n_kv, .dim = v ? vd : hd, .row_bytes = part, .head_bytes = (size_t)c->n_ctx * part,
	};
}

/* A matvec over one matrix of w, found at p (a matrix of w, or its copy in an expert cache). */
static struct tm_matvec job_at(const struct tm_weight *w, const void *p, const float *x, float *y)
{
	return (struct tm_matvec){
		.type = w->type,
		.w = p,
		.row_stride = w->row_bytes,
		.rows = w->rows,
		.cols = w->cols,
		.x = x,
		.y = y,
	};
}

static struct tm_matvec job(const struct tm_weight *w, int mat, const float *x, float *y)
{
	return job_at(w, (const char *)w->data + (size_t)mat * w->mat_bytes, x, y);
}

/* Y[n][rows] = X[n][cols] W^T for the matrix of w at p: a matvec for one row, else a matmul. */
static void mul_at(struct tm_ctx *c, const struct tm_weight *w, const void *p, const float *X, int n,
		   float *Y)
{
	c->handoffs++;
	if (n == 1) {
		struct tm_matvec j = job_at(w, p, X, Y);

		tm_matvec_batch(c->pool, &j, 1);
	} else {
		/*
		 * one hand-off per weight; tm_matmul keeps the whole batch on it.
		 * A tm_forward_seqs work context (no cache of its own) decodes
		 * one token of each sequence: bit for bit what the sequence
		 * alone would get, so its text does not depend on the batch.
		 */
		if (c->k_cache && !c->exact)
			tm_matmul(c->pool, w->type, p, w->row_bytes, w->rows, w->cols, X, n, Y);
		else
			tm_matmul_exact(c->pool, w->type, p, w->row_bytes, w->rows, w->cols, X, n, Y);
	}
}

static void mul(struct tm_ctx *c, const struct tm_weight *w, int mat, const float *X, int n, float *Y)
{
	mul_at(c, w, (const char *)w->data + (size_t)mat * w->mat_bytes, X, n, Y);
}

/*
 * A dense matrix: under tensor parallel (c->tp) this process computes its
 * rows only, into the hook's scratch, and the hook gathers every process's.
 * Its row range starts on a multiple of 16 rows (the r16 layout's groups),
 * so the part is a matrix of the same layout at row_bytes * r0.
 */
static bool dense_part(const struct tm_ctx *c, const struct tm_weight *w, struct tm_weight *part)
{
	int r0, r1;

	if (!c->tp)
		return false;
	if (w->part_r1) {
		/* a share of the rows holds what the range would be: one rule, tm_tp_rows */
		r0 = w->part_r0;
		r1 = w->part_r1;
	} else if (!c->tp->range(c->tp->arg, w->rows, &r0, &r1)) {
		return false;
	}
	*part = *w;
	part->data = (const char *)w->data + (size_t)(r0 - w->part_r0) * w->row_bytes;
	part->part_r0 = part->part_r1 = 0;
	part->rows = r1 - r0;
	part->mat_bytes = w->row_bytes * (size_t)part->rows;
	return true;
}

static void mul_dense(struct tm_ctx *c, const struct tm_weight *w, const float *X, int n, float *Y)
{
	struct tm_weight part;
	float *buf;

	if (!dense_part(c, w, &part)) {
		mul(c, w, 0, X, n, Y);
		return;
	}
	buf = c->tp->buf(c->tp->arg, (size_t)n * (size_t)part.rows);
	if (part.rows)
		mul(c, &part, 0, X, n, buf);
	c->tp->gather(c->tp->arg, buf, n, w->rows, Y);
}

/*
 * Count n_mat matrices of w as read, against the mapping that holds them: the
 * per-tier figures of a run come from here, weight by weight, not from an
 * estimate made afterwards.
 */
static void acct_mats(struct tm_ctx *c, const struct tm_weight *w, uint64_t n_mat)
{
	uint64_t b = (uint64_t)w->mat_bytes * n_mat;

	c->weight_bytes += b;
	c->map_bytes[w->map] += b;
}

static void acct(struct tm_ctx *c, const struct tm_weight *w)
{
	acct_mats(c, w, w->data ? (uint64_t)w->n_mat : 0);
}

/* A matrix mul_dense computed: its rows here only. */
static void acct_dense(struct tm_ctx *c, const struct tm_weight *w)
{
	struct tm_weight part;

	acct(c, w->data && dense_part(c, w, &part) ? &part : w);
}

/* One position's K or V row (every KV head's values, dim apart in x) into a layer's cache. */
static void put_row(const struct tm_kv_view *kv, int type, int pos, const float *x)
{
	for (int g = 0; g < kv->heads; g++)
		tm_kv_put_row(type, x + (size_t)g * kv->dim, kv->base + g * kv->head_bytes + pos * kv->row_bytes,
			      kv->dim);
}

/* The sequence row i of a batch belongs to: seqs[i], or c itself (rows pos0.. of one sequence). */
static struct tm_ctx *row_seq(struct tm_ctx *c, struct tm_ctx *const *seqs, int i)
{
	return seqs ? seqs[i] : c;
}

/*
 * The K and V rows of the batch (n rows of k and v, each a cache row wide)
 * into their caches: row i at position pos0 + i of c, or, for several
 * sequences, at the position of sequence i. v NULL: one cache serves as both
 * (absorbed MLA's latent rows).
 */
static void store_kv(struct tm_ctx *c, struct tm_ctx *const *seqs, int layer, int pos0, int n,
		     const float *k, const float *v)
{
	const struct tm_hparams *hp = &c->m->hp;
	size_t KVD = (size_t)hp->n_head_kv * hp->head_dim;

	for (int i = 0; i < n; i++) {
		struct tm_ctx *s = row_seq(c, seqs, i);
		struct tm_kv_view kc = tm_ctx_kv_view(s, layer, 0), vc = tm_ctx_kv_view(s, layer, 1);
		int pos = seqs ? s->n_past : pos0 + i;

		put_row(&kc, s->type_k, pos, k + i * KVD);
		if (v)
			put_row(&vc, s->type_v, pos, v + i * KVD);
	}
}

/*
 * A quantized cache holds keys and values rotated as llama.cpp's does: q and
 * k by the Walsh-Hadamard matrix of the largest power of 2 (>= 64) that
 * divides head_dim, v by that of order 64 and the attention output back
 * (heads of a multiple of 64 only; MLA refuses a q8_0 cache). 0: no rotation.
 */
static int k_rotation(const struct tm_ctx *c)
{
	int hd = c->m->hp.head_dim, r = 64;

	if (c->type_k != TM_Q8_0 || hd % 64)
		return 0;
	while (hd % (2 * r) == 0)
		r *= 2;
	return r;
}

static int v_rotation(const struct tm_ctx *c)
{
	return c->type_v == TM_Q8_0 && c->m->hp.head_dim % 64 == 0 ? 64 : 0;
}

/* One row's query (all heads), key and value before the cache and attention see them. */
static void rotate_qkv(const struct tm_ctx *c, float *q, float *k, float *v)
{
	const struct tm_hparams *hp = &c->m->hp;
	int QD = hp->n_head * hp->head_dim, KVD = hp->n_head_kv * hp->head_dim;

	if (k_rotation(c)) {
		tm_hadamard(q, QD, k_rotation(c));
		tm_hadamard(k, KVD, k_rotation(c));
	}
	if (v_rotation(c))
		tm_hadamard(v, KVD, v_rotation(c));
}

/*
 * Attention of the batch's rows over their caches. shape gives the heads,
 * the query and output rows and their strides; each sequence attends over
 * its own cache from its own position (seqs), or the rows are positions
 * pos0.. of c.
 */
static void attend(struct tm_ctx *c, struct tm_ctx *const *seqs, int layer, int pos0, int n,
		   const struct tm_attn *shape)
{
	for (int i = 0; i < (seqs ? n : 1); i++) {
		struct tm_ctx *s = row_seq(c, seqs, i);
		struct tm_kv_view kc = tm_ctx_kv_view(s, layer, 0), vc = tm_ctx_kv_view(s, layer, 1);
		struct tm_attn a = *shape;
		int rows = seqs ? 1 : n;

		a.n_tok = rows;
		a.pos0 = seqs ? s->n_past : pos0;
		a.q += i * shape->q_stride;
		a.out += i * shape->out_stride;
		a.type_k = s->type_k;
		a.type_v = s->type_v;
		a.k = kc.base;
		a.v = vc.base;
		a.k_row_bytes = kc.row_bytes;
		a.v_row_bytes = vc.row_bytes;
		a.k_head_bytes = kc.head_bytes;
		a.v_head_bytes = vc.head_bytes;
		a.scratch = s->scores;
		a.n_ctx = s->n_ctx;
		c->handoffs++;
		tm_attention(c->pool, &a);
		/* query t reads the K and V rows of positions 0 .. pos0 + t (absorbed MLA: the latent row twice) */
		c->kv_bytes += (kc.heads * kc.row_bytes + vc.heads * vc.row_bytes) *
			       ((uint64_t)rows * a.pos0 + (uint64_t)rows * (rows + 1) / 2);
	}
}

/*
 * MLA (deepseek2): queries, the latent and k_pe, the cache and attention;
 * returns the rows (n of them) that attn_output takes. See model.h. Rows
 * are positions pos0.. of c, or with seqs one token of each sequence, as in
 * attention_block.
 */
static const float *mla_attention(struct tm_ctx *c, struct tm_ctx *const *seqs, const struct tm_layer *L,
				  int layer, int pos0, int n)
{
	const struct tm_hparams *hp = &c->m->hp;
	int H = hp->n_head, R = hp->kv_lora_rank, rope = hp->qk_rope, nope = hp->qk_nope;
	size_t QR = (size_t)H * (nope + rope), KVA = (size_t)R + rope, KVD = (size_t)hp->n_head_kv * hp->head_dim;

	if (hp->q_lora_rank) {
		mul_dense(c, &L->wq_a, c->xb, n, c->qa);
		for (int i = 0; i < n; i++)
			tm_rmsnorm(c->qa + (size_t)i * hp->q_lora_rank, c->qa + (size_t)i * hp->q_lora_rank,
				   L->q_a_norm.data, hp->q_lora_rank, hp->rms_eps);
		mul_dense(c, &L->wq_b, c->qa, n, c->q);
	} else {
		mul_dense(c, &L->wq, c->xb, n, c->q);
	}
	mul_dense(c, &L->wkv_a, c->xb, n, c->kva);
	for (int i = 0; i < n; i++) {
		float *kv = c->kva + i * KVA;
		const float *cs = c->rope_cs + (size_t)i * hp->n_rot;

		tm_rmsnorm(kv, kv, L->kv_a_norm.data, R, hp->rms_eps);
		tm_rope_apply(kv + R, 1, rope, rope, cs, hp->rope_mode);
		tm_rope_apply(c->q + i * QR + nope, H, nope + rope, rope, cs, hp->rope_mode);
	}
	if (!hp->mla_absorbed) {
		/* decompress each token's latent into per-head keys [k_nope | k_pe] and values */
		size_t KVB = (size_t)H * (nope + hp->v_head);

		for (int i = 0; i < n; i++)
			memcpy(c->qa + (size_t)i * R, c->kva + i * KVA, sizeof(float) * R);
		mul_dense(c, &L->wkv_b, c->qa, n, c->att);
		for (int i = 0; i < n; i++) {
			float *k = c->kb + i * KVD, *v = c->vb + i * KVD;
			const float *kv = c->att + i * KVB;

			for (int h = 0; h < H; h++) {
				memcpy(k + (size_t)h * (nope + rope), kv + (size_t)h * (nope + hp->v_head),
				       sizeof(float) * nope);
				memcpy(k + (size_t)h * (nope + rope) + nope, c->kva + i * KVA + R, sizeof(float) * rope);
				memcpy(v + (size_t)h * hp->v_head, kv + (size_t)h * (nope + hp->v_head) + nope,
				       sizeof(float) * hp->v_head);
			}
			/* V rows take the room of K rows; the rest is never read */
			memset(v + (size_t)H * hp->v_head, 0, sizeof(float) * (KVD - (size_t)H * hp->v_head));
		}
		store_kv(c, seqs, layer, pos0, n, c->kb, c->vb);
		attend(c, seqs, layer, pos0, n, &(struct tm_attn){
			.n_head = H, .n_head_kv = H, .head_dim = nope + rope, .scale = hp->attn_scale,
			.q = c->q, .q_stride = QR, .v_dim = hp->v_head,
			.out = c->att, .out_stride = (size_t)H * hp->v_head,
		});
		acct_dense(c, &L->wkv_b);
		return c->att;
	}
	/* absorbed: the cache row is [c | k_pe]; q_nope goes into the latent space through attn_k_b */
	size_t QA = (size_t)H * KVA;

	store_kv(c, seqs, layer, pos0, n, c->kva, NULL);
	for (int i = 0; i < n; i++) {
		float *qi = c->q + i * QR, *qa = c->xb + i * QA;

		for (int h = 0; h < H; h++) {
			c->jobs[h] = job(&L->wk_b, h, qi + (size_t)h * (nope + rope), qa + (size_t)h * KVA);
			memcpy(qa + (size_t)h * KVA + R, qi + (size_t)h * (nope + rope) + nope, sizeof(float) * rope);
		}
		tm_matvec_batch(c->pool, c->jobs, H);
		c->handoffs++;
	}
	attend(c, seqs, layer, pos0, n, &(struct tm_attn){
		.n_head = H, .n_head_kv = 1, .head_dim = (int)KVA, .scale = hp->attn_scale,
		.q = c->xb, .q_stride = QA, .v_dim = R,
		.out = c->att, .out_stride = (size_t)H * R,
	});
	/* each head's latent output back to its value space through attn_v_b */
	for (int i = 0; i < n; i++) {
		for (int h = 0; h < H; h++)
			c->jobs[h] = job(&L->wv_b, h, c->att + (size_t)i * H * R + (size_t)h * R,
					 c->q + (size_t)i * H * hp->v_head + (size_t)h * hp->v_head);
		tm_matvec_batch(c->pool, c->jobs, H);
		c->handoffs++;
	}
	acct(c, &L->wk_b);
	acct(c, &L->wv_b);
	return c->q;
}

static void attention_block(struct tm_ctx *c, struct tm_ctx *const *seqs, const struct tm_layer *L,
			    int layer, int pos0, int n)
{
	const struct tm_hparams *hp = &c->m->hp;
	size_t E = hp->n_embd, QD = (size_t)hp->n_head * hp->head_dim;
	size_t KVD = (size_t)hp->n_head_kv * hp->head_dim;
	float *k = c->kb, *v = c->vb;

	for (int i = 0; i < n; i++)
		tm_rmsnorm(c->xb + i * E, c->x + i * E, L->attn_norm.data, (int)E, hp->rms_eps);
	if (hp->mla) {
		mul_dense(c, &L->wo, mla_attention(c, seqs, L, layer, pos0, n), n, c->xb);
		goto residual;
	}
	if (n == 1 && !c->tp) {
		struct tm_matvec jobs[3] = {
			job(&L->wq, 0, c->xb, c->q),
			job(&L->wk, 0, c->xb, k),
			job(&L->wv, 0, c->xb, v),
		};

		tm_matvec_batch(c->pool, jobs, 3);
		c->handoffs++;
	} else {
		mul_dense(c, &L->wq, c->xb, n, c->q);
		mul_dense(c, &L->wk, c->xb, n, k);
		mul_dense(c, &L->wv, c->xb, n, v);
	}
	for (int i = 0; i < n; i++) {
		float *qi = c->q + i * QD, *ki = k + i * KVD;
		const float *cs = c->rope_cs + (size_t)i * hp->n_rot;

		/* glm4moe's biases */
		if (L->bq.data)
			tm_axpy(qi, 1.0f, L->bq.data, (int)QD);
		if (L->bk.data)
			tm_axpy(ki, 1.0f, L->bk.data, (int)KVD);
		if (L->bv.data)
			tm_axpy(v + i * KVD, 1.0f, L->bv.data, (int)KVD);
		if (hp->qk_norm || L->q_norm.data) {
			tm_rmsnorm_rows(qi, L->q_norm.data, hp->n_head, hp->head_dim, hp->rms_eps);
			tm_rmsnorm_rows(ki, L->k_norm.data, hp->n_head_kv, hp->head_dim, hp->rms_eps);
		}
		tm_rope_apply(qi, hp->n_head, hp->head_dim, hp->n_rot, cs, hp->rope_mode);
		tm_rope_apply(ki, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, hp->rope_mode);
		rotate_qkv(row_seq(c, seqs, i), qi, ki, v + i * KVD);
	}
	store_kv(c, seqs, layer, pos0, n, k, v);
	attend(c, seqs, layer, pos0, n, &(struct tm_attn){
		.n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
		.scale = hp->attn_scale, .q = c->q, .q_stride = QD, .out = c->att, .out_stride = QD,
	});
	for (int i = 0; i < n; i++)
		if (v_rotation(row_seq(c, seqs, i)))
			tm_hadamard(c->att + i * QD, (int)QD, v_rotation(row_seq(c, seqs, i)));
	mul_dense(c, &L->wo, c->att, n, c->xb);
residual:
	for (int i = 0; i < n; i++)
		tm_axpy(c->x + i * E, 1.0f, c->xb + i * E, (int)E);
	acct(c, &L->attn_norm);
	acct_dense(c, &L->wq);
	acct_dense(c, &L->wk);
	acct_dense(c, &L->wv);
	acct_dense(c, &L->wo);
	acct(c, &L->q_norm);
	acct(c, &L->k_norm);
	acct(c, &L->bq);
	acct(c, &L->bk);
	acct(c, &L->bv);
	acct_dense(c, &L->wq_a);
	acct(c, &L->q_a_norm);
	acct_dense(c, &L->wq_b);
	acct_dense(c, &L->wkv_a);
	acct(c, &L->kv_a_norm);
}

static void dense_ffn(struct tm_ctx *c, const struct tm_layer *L, int n)
{
	const struct tm_hparams *hp = &c->m->hp;
	size_t E = hp->n_embd;

	if (n == 1 && !c->tp) {
		struct tm_matvec jobs[2] = {
			job(&L->gate, 0, c->xb, c->hb),
			job(&L->up, 0, c->xb, c->hb2),
		};

		tm_matvec_batch(c->pool, jobs, 2);
		c->handoffs++;
	} else {
		mul_dense(c, &L->gate, c->xb, n, c->hb);
		mul_dense(c, &L->up, c->xb, n, c->hb2);
	}
	tm_swiglu(c->hb, c->hb, c->hb2, n * hp->n_ff);
	mul_dense(c, &L->down, c->hb, n, c->xb);
	for (int i = 0; i < n; i++)
		tm_axpy(c->x + i * E, 1.0f, c->xb + i * E, (int)E);
	acct_dense(c, &L->gate);
	acct_dense(c, &L->up);
	acct_dense(c, &L->down);
}

/*
 * llama.cpp's build_moe_ffn routing, one token: probabilities by softmax or
 * sigmoid; the choice on them plus the layer's bias (if any), within the
 * best n_group_used groups (by the sum of each group's two best) when
 * groups are set; the top k; their unbiased probabilities, optionally
 * divided by their sum and scaled. probs: n_expert floats of scratch.
 */
void tm_route(const struct tm_hparams *hp, const float *bias, const float *logits, float *probs,
	      int *sel, float *w)
{
	int n_expert = hp->n_expert, k = hp->n_expert_used;
	float choice[4096];	/* n_expert <= 4096 (model.c) */
	double sum = 0.0;

	memcpy(probs, logits, sizeof(float) * n_expert);
	if (hp->gating == TM_GATING_SIGMOID) {
		for (int e = 0; e < n_expert; e++)
			probs[e] = 1.0f / (1.0f + expf(-probs[e]));
	} else {
		tm_softmax(probs, n_expert);
	}
	for (int e = 0; e < n_expert; e++)
		choice[e] = bias ? probs[e] + bias[e] : probs[e];
	if (hp->n_expert_groups > 1) {
		int per = n_expert / hp->n_expert_groups;
		float score[4096];
		bool keep[4096] = { false };

		for (int g = 0; g < hp->n_expert_groups; g++) {
			float a = -INFINITY, b = -INFINITY;

			for (int e = g * per; e < (g + 1) * per; e++) {
				if (choice[e] > a) {
					b = a;
					a = choice[e];
				} else if (choice[e] > b) {
					b = choice[e];
				}
			}
			score[g] = a + b;
		}
		for (int j = 0; j < hp->n_group_used; j++) {
			int best = -1;

			for (int g = 0; g < hp->n_expert_groups; g++)
				if (!keep[g] && (best < 0 || score[g] > score[best]))
					best = g;
			keep[best] = true;
		}
		for (int e = 0; e < n_expert; e++)
			if (!keep[e / per])
				choice[e] = -INFINITY;
	}
	for (int j = 0; j < k; j++) {
		int best = -1;

		for (int e = 0; e < n_expert; e++) {
			bool taken = false;

			for (int t = 0; t < j && !taken; t++)
				taken = sel[t] == e;
			if (!taken && (best < 0 || choice[e] > choice[best]))
				best = e;
		}
		sel[j] = best;
		w[j] = probs[best];
		sum += probs[best];
	}
	if (hp->expert_weights_norm) {
		/* llama.cpp clamps the sum to the smallest normal f16 */
		if (sum < 6.103515625e-5)
			sum = 6.103515625e-5;
		for (int j = 0; j < k; j++)
			w[j] = (float)(w[j] / sum);
	}
	if (hp->expert_weights_scale != 0.0f && hp->expert_weights_scale != 1.0f)
		for (int j = 0; j < k; j++)
			w[j] *= hp->expert_weights_scale;
}

/*
 * The shared experts: a SwiGLU FFN on every token, added to the residual
 * stream after the routed experts' sum (which expert-parallel processes sum
 * first; every process computes the shared experts itself).
 */
static void shared_experts(struct tm_ctx *c, const struct tm_layer *L, int n)
{
	const struct tm_hparams *hp = &c->m->hp;
	int E = hp->n_embd, S = L->gate_shexp.rows;

	if (!L->gate_shexp.data)
		return;
	if (n == 1 && !c->tp) {
		struct tm_matvec jobs[2] = {
			job(&L->gate_shexp, 0, c->xb, c->hb),
			job(&L->up_shexp, 0, c->xb, c->hb2),
		};

		tm_matvec_batch(c->pool, jobs, 2);
		c->handoffs++;
	} else {
		mul_dense(c, &L->gate_shexp, c->xb, n, c->hb);
		mul_dense(c, &L->up_shexp, c->xb, n, c->hb2);
	}
	tm_swiglu(c->hb, c->hb, c->hb2, n * S);
	mul_dense(c, &L->down_shexp, c->hb, n, c->yg);
	for (int i = 0; i < n; i++)
		tm_axpy(c->x + (size_t)i * E, 1.0f, c->yg + (size_t)i * E, E);
	acct_dense(c, &L->gate_shexp);
	acct_dense(c, &L->up_shexp);
	acct_dense(c, &L->down_shexp);
}

void tm_expert_home(const struct tm_layer *L, int e, struct tm_expert_at *at)
{
	const struct tm_weight *w[3] = { &L->gate_exps, &L->up_exps, &L->down_exps };

	for (int i = 0; i < 3; i++) {
		size_t k = w[i]->mat_at ? (size_t)w[i]->mat_at[e] : (size_t)e;

		at->w[i] = (const char *)w[i]->data + k * w[i]->mat_bytes;
		at->map[i] = w[i]->map;
	}
}

/* Where experts sel[0..k) of layer l are: the hook's answer, else in the model's tensors. */
static void experts_at(struct tm_ctx *c, const struct tm_layer *L, const int *sel, int k,
		       struct tm_expert_at *at)
{
	if (c->xhook && c->xhook->resolve) {
		c->xhook->resolve(c->xhook->arg, (int)(L - c->m->layers), sel, k, at);
		return;
	}
	for (int j = 0; j < k; j++)
		tm_expert_home(L, sel[j], &at[j]);
}

/* k experts read: their bytes, against the mappings they were read from; the hook may now move them. */
static void experts_done(struct tm_ctx *c, const struct tm_layer *L, const int *sel, int k,
			 const struct tm_expert_at *at)
{
	const struct tm_weight *w[3] = { &L->gate_exps, &L->up_exps, &L->down_exps };

	for (int j = 0; j < k; j++)
		for (int i = 0; i < 3; i++) {
			c->weight_bytes += w[i]->mat_bytes;
			c->map_bytes[at[j].map[i]] += w[i]->mat_bytes;
		}
	if (c->xhook && c->xhook->done)
		c->xhook->done(c->xhook->arg, (int)(L - c->m->layers), sel, k);
}

static bool expert_here(const struct tm_ctx *c, const struct tm_layer *L, int e)
{
	return !c->xhook || !c->xhook->local || c->xhook->local(c->xhook->arg, (int)(L - c->m->layers), e);
}

/* The experts' weighted sum, acc (n rows), joins the residual stream: summed over processes first. */
static void experts_join(struct tm_ctx *c, const struct tm_layer *L, int n)
{
	size_t E = c->m->hp.n_embd;

	if (c->xhook && c->xhook->reduce)
		c->xhook->reduce(c->xhook->arg, (int)(L - c->m->layers), c->acc, n);
	for (int i = 0; i < n; i++)
		tm_axpy(c->x + i * E, 1.0f, c->acc + i * E, (int)E);
}

/* The K routed experts c->sel/c->selw of one row, c->xb: their weighted sum into c->acc. */
static void routed_one(struct tm_ctx *c, const struct tm_layer *L, int K)
{
	const struct tm_hparams *hp = &c->m->hp;
	int F = hp->n_ff_exp, E = hp->n_embd;
	struct tm_matvec jobs[2 * MAX_USED], down[MAX_USED];
	struct tm_expert_at at[MAX_USED];

	experts_at(c, L, c->sel, K, at);
	for (int j = 0; j < K; j++) {
		jobs[2 * j] = job_at(&L->gate_exps, at[j].w[0], c->xb, c->hb + (size_t)j * F);
		jobs[2 * j + 1] = job_at(&L->up_exps, at[j].w[1], c->xb, c->hb2 + (size_t)j * F);
		down[j] = job_at(&L->down_exps, at[j].w[2], c->hb + (size_t)j * F, c->yg + (size_t)j * E);
	}
	/* gate, up, SwiGLU and down in one hand-off: each expert's down rows start when its product is there */
	tm_matvec_glu(c->pool, jobs, down, K);
	c->handoffs++;
	experts_done(c, L, c->sel, K, at);
	/* llama.cpp sums the weighted experts first, then adds the residual */
	memset(c->acc, 0, sizeof(float) * E);
	for (int j = 0; j < K; j++)
		tm_axpy(c->acc, c->selw[j], c->yg + (size_t)j * E, E);
}

/* Prefill: each expert runs once, as a matmul over the rows of the batch routed to it; sums into c->acc. */
static void routed_batch(struct tm_ctx *c, const struct tm_layer *L, int n)
{
	const struct tm_hparams *hp = &c->m->hp;
	int K = hp->n_expert_used, F = hp->n_ff_exp, E = hp->n_embd;

	memset(c->acc, 0, sizeof(float) * n * E);
	for (int e = 0; e < hp->n_expert; e++) {
		int cnt = 0;

		for (int i = 0; i < n; i++)
			for (int j = 0; j < K; j++)
				if (c->sel[i * K + j] == e) {
					c->rows[cnt] = i;
					c->rw[cnt] = c->selw[i * K + j];
					memcpy(c->xg + (size_t)cnt * E, c->xb + (size_t)i * E, sizeof(float) * E);
					cnt++;
				}
		if (!cnt || !expert_here(c, L, e))
			continue;
		struct tm_expert_at at;

		experts_at(c, L, &e, 1, &at);
		if (cnt == 1) {
			struct tm_matvec jobs[2] = {
				job_at(&L->gate_exps, at.w[0], c->xg, c->hb),
				job_at(&L->up_exps, at.w[1], c->xg, c->hb2),
			};

			tm_matvec_batch(c->pool, jobs, 2);
			c->handoffs++;
		} else {
			mul_at(c, &L->gate_exps, at.w[0], c->xg, cnt, c->hb);
			mul_at(c, &L->up_exps, at.w[1], c->xg, cnt, c->hb2);
		}
		tm_swiglu(c->hb, c->hb, c->hb2, cnt * F);
		mul_at(c, &L->down_exps, at.w[2], c->hb, cnt, c->yg);
		experts_done(c, L, &e, 1, &at);
		for (int r = 0; r < cnt; r++)
			tm_axpy(c->acc + (size_t)c->rows[r] * E, c->rw[r], c->yg + (size_t)r * E, E);
	}
}

/*
 * Of one row's K experts in c->sel/c->selw, only those computed here (expert
 * parallel; the GPU's VRAM cache takes the rest), in their order: how many.
 */
static int local_only(struct tm_ctx *c, const struct tm_layer *L, int K)
{
	int k = 0;

	if (!c->xhook || !c->xhook->local)
		return K;
	for (int j = 0; j < K; j++)
		if (expert_here(c, L, c->sel[j])) {
			c->sel[k] = c->sel[j];
			c->selw[k++] = c->selw[j];
		}
	return k;
}

static void moe_ffn_one(struct tm_ctx *c, const struct tm_layer *L)
{
	const struct tm_hparams *hp = &c->m->hp;
	int K = hp->n_expert_used;

	mul(c, &L->gate_inp, 0, c->xb, 1, c->router);
	tm_route(hp, L->exp_probs_b.data, c->router, c->probs, c->sel, c->selw);
	routed_one(c, L, local_only(c, L, K));
	experts_join(c, L, 1);
	shared_experts(c, L, 1);
	acct(c, &L->gate_inp);
	acct(c, &L->exp_probs_b);
}

static void moe_ffn_batch(struct tm_ctx *c, const struct tm_layer *L, int n)
{
	const struct tm_hparams *hp = &c->m->hp;
	int K = hp->n_expert_used;

	mul(c, &L->gate_inp, 0, c->xb, n, c->router);
	for (int i = 0; i < n; i++)
		tm_route(hp, L->exp_probs_b.data, c->router + (size_t)i * hp->n_expert, c->probs,
		      c->sel + (size_t)i * K, c->selw + (size_t)i * K);
	acct(c, &L->gate_inp);
	routed_batch(c, L, n);
	experts_join(c, L, n);
	shared_experts(c, L, n);
	acct(c, &L->exp_probs_b);
}

void tm_moe_experts_cpu(struct tm_ctx *c, int layer, const float *xb, const int *sel, const float *w, int n,
			float *out)
{
	const struct tm_hparams *hp = &c->m->hp;
	size_t E = hp->n_embd, K = hp->n_expert_used;

	memcpy(c->xb, xb, sizeof(float) * n * E);
	memcpy(c->sel, sel, sizeof(int) * n * K);
	memcpy(c->selw, w, sizeof(float) * n * K);
	if (n == 1)
		routed_one(c, &c->m->layers[layer], local_only(c, &c->m->layers[layer], (int)K));
	else
		routed_batch(c, &c->m->layers[layer], n);
	memcpy(out, c->acc, sizeof(float) * n * E);
}

static void ffn_block(struct tm_ctx *c, const struct tm_layer *L, int n)
{
	const struct tm_hparams *hp = &c->m->hp;
	size_t E = hp->n_embd;

	for (int i = 0; i < n; i++)
		tm_rmsnorm(c->xb + i * E, c->x + i * E, L->ffn_norm.data, (int)E, hp->rms_eps);
	acct(c, &L->ffn_norm);
	if (!L->moe)
		dense_ffn(c, L, n);
	else if (n == 1)
		moe_ffn_one(c, L);
	else
		moe_ffn_batch(c, L, n);
}

/*
 * One batch of n <= n_batch rows: tokens at positions n_past.. of c, or with
 * seqs, one token of each seqs[i] at its own n_past. logits: n rows, or NULL
 * for c->logits (the last row).
 */
static void forward_batch(struct tm_ctx *c, struct tm_ctx *const *seqs, const int32_t *tok, int n,
			  float *logits)
{
	const struct tm_model *m = c->m;
	const struct tm_hparams *hp = &m->hp;
	size_t E = hp->n_embd;
	int pos0 = c->n_past;
	const struct tm_stage_hook *st = c->stage;
	int l0 = st ? st->first : 0, l1 = st ? st->last : hp->n_layer;

	for (int i = 0; i < n; i++) {
		if (!l0)
			tm_dequant_row(m->tok_embd.type, (const char *)m->tok_embd.data +
				       (size_t)tok[i] * m->tok_embd.row_bytes, c->x + i * E, (int64_t)E);
		tm_rope_table_yarn(c->rope_cs + (size_t)i * hp->n_rot, seqs ? seqs[i]->n_past : pos0 + i,
				   hp->n_rot, hp->rope_base, hp->rope_freq_scale, m->rope_freqs,
				   hp->yarn_ext_factor, hp->yarn_corr, hp->rope_mscale);
	}
	if (l0) {
		st->recv(st->arg, c->x, n);
	} else {
		c->weight_bytes += (uint64_t)n * m->tok_embd.row_bytes;
		c->map_bytes[m->tok_embd.map] += (uint64_t)n * m->tok_embd.row_bytes;
	}
	for (int l = l0; l < l1; l++) {
		attention_block(c, seqs, &m->layers[l], l, pos0, n);
		if (c->xhook && c->xhook->after_attn && n == 1)
			c->xhook->after_attn(c->xhook->arg, c, l, c->x);
		ffn_block(c, &m->layers[l], n);
	}
	if (l1 < hp->n_layer) {
		st->send(st->arg, c->x, n);
		goto advance;
	}
	acct(c, &m->output_norm);
	acct_dense(c, &m->output);
	if (logits) {
		for (int i = 0; i < n; i++)
			tm_rmsnorm(c->xb + i * E, c->x + i * E, m->output_norm.data, (int)E, hp->rms_eps);
		mul_dense(c, &m->output, c->xb, n, logits);
	} else {
		tm_rmsnorm(c->xb, c->x + (n - 1) * E, m->output_norm.data, (int)E, hp->rms_eps);
		mul_dense(c, &m->output, c->xb, 1, c->logits);
	}
advance:
	if (seqs)
		for (int i = 0; i < n; i++)
			seqs[i]->n_past++;
	else
		c->n_past += n;
	c->n_evals++;
}

/* A share computes only its own experts or layers: with the hook that says which. */
static int check_share(const struct tm_ctx *c)
{
	const struct tm_model *m = c->m;

	if (m->share_ranks > 1 && m->share_layers && !c->stage)
		return tm_err(-EINVAL, "this model holds only rank %d of %d's layers (tiermem import --split "
			      "layers): run it as that rank under mpirun -np %d with --split layers",
			      m->share_rank, m->share_ranks, m->share_ranks);
	if (m->share_rows && !c->tp)
		return tm_err(-EINVAL, "this model holds only rank %d of %d's rows of the dense matrices "
			      "(tiermem import --split experts,dense): run it as that rank under mpirun -np %d "
			      "with --split experts,dense", m->share_rank, m->share_ranks, m->share_ranks);
	if (m->share_ranks > 1 && !m->share_layers && m->hp.moe && !(c->xhook && c->xhook->local))
		return tm_err(-EINVAL, "this model holds only rank %d of %d's routed experts (tiermem import "
			      "--split experts): run it as that rank under mpirun -np %d with --split experts",
			      m->share_rank, m->share_ranks, m->share_ranks);
	return 0;
}

int tm_forward(struct tm_ctx *c, const int32_t *tokens, int n, float *logits, bool logits_all)
{
	const struct tm_hparams *hp = &c->m->hp;
	int err;

	if ((err = check_share(c)))
		return err;
	if (n < 1)
		return tm_err(-EINVAL, "no tokens to evaluate");
	if (n > c->n_ctx - c->n_past)
		return tm_err(-EINVAL, "%d more tokens do not fit the context: %d of %d positions used",
			      n, c->n_past, c->n_ctx);
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
			return tm_err(-EINVAL, "token id %d is outside the vocabulary [0, %d)",
				      (int)tokens[i], hp->n_vocab);
	if (c->gpu)
		return tm_gpu_forward(c, tokens, n, logits, logits_all);
	for (int done = 0; done < n;) {
		int b = n - done < c->n_batch ? n - done : c->n_batch;

		forward_batch(c, NULL, tokens + done, b,
			      logits_all ? logits + (size_t)done * hp->n_vocab : NULL);
		done += b;
	}
	if (!logits_all && logits)
		memcpy(logits, c->logits, sizeof(float) * hp->n_vocab);
	return 0;
}

int tm_forward_seqs(struct tm_ctx *work, struct tm_ctx *const *seqs, const int32_t *tokens, int n)
{
	const struct tm_hparams *hp = &work->m->hp;
	int err;

	if (work->k_cache)
		return tm_err(-EINVAL, "tm_forward_seqs: the work context must come from tm_ctx_create_seqs");
	if ((err = check_share(work)))
		return err;
	if (n < 1 || n > work->n_batch)
		return tm_err(-EINVAL, "%d sequences in a batch of at most %d", n, work->n_batch);
	for (int i = 0; i < n; i++) {
		if (seqs[i]->m != work->m || !seqs[i]->k_cache)
			return tm_err(-EINVAL, "sequence %d is not a context of this model", i);
		if (seqs[i]->gpu)
			return tm_err(-EOPNOTSUPP, "sequence %d runs on the GPU: batched decode is CPU-only", i);
		for (int j = 0; j < i; j++)
			if (seqs[j] == seqs[i])
				return tm_err(-EINVAL, "sequence %d appears twice in one batch", i);
		if (seqs[i]->n_past >= seqs[i]->n_ctx)
			return tm_err(-EINVAL, "sequence %d is full: %d of %d positions used", i,
				      seqs[i]->n_past, seqs[i]->n_ctx);
		if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
			return tm_err(-EINVAL, "token id %d is outside the vocabulary [0, %d)",
				      (int)tokens[i], hp->n_vocab);
	}
	forward_batch(work, seqs, tokens, n, n > 1 ? work->logits : NULL);
	/* a stage before the last computes no logits: the sequences' may be on their way in (lib/mpi/) */
	if (work->stage && work->stage->last < hp->n_layer)
		return 0;
	for (int i = 0; i < n; i++)
		memcpy(seqs[i]->logits, work->logits + (size_t)i * hp->n_vocab, sizeof(float) * hp->n_vocab);
	return 0;
}
