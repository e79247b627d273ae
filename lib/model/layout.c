// SPDX-License-Identifier: MIT
/*
 * Weight layouts: which tensors get the interleaved-row layout
 * (kernels/kernels.h), and repacking a model loaded into DDR in place as its
 * tensors are bound. The rule is one function so that `tiermem import` (which
 * writes the layout into the store) and a DDR load (which makes it in
 * memory) repack the same tensors, and a store's manifest claiming the layout
 * for any other tensor is refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "kernels/kernels.h"
#include "tiermem/error.h"
#include "tiermem/model.h"

/*
 * Every q4_K/q6_K/q8_0 matrix of at least one group of rows, except the token
 * embeddings: the forward pass reads their rows one by one (tm_dequant_row),
 * the only weight it reads other than through a matvec or matmul. A tied
 * output is the embeddings, so it stays in the GGUF layout too.
 */
int tm_tensor_repacked_type(const struct tm_gguf_tensor *t)
{
	int rt = tm_repack_type((int)t->type);

	if (rt < 0 || t->n_dims < 2 || t->ne[1] < TM_REPACK_ROWS || tm_gguf_str_eq(t->name, "token_embd.weight"))
		return -1;
	return rt;
}

const char *tm_layout_name(int type)
{
	return tm_repack_base(type) != type ? "r16" : "gguf";
}

const char *tm_model_layout(const struct tm_model *m)
{
	for (int i = 0; i < m->hp.n_layer; i++) {
		const struct tm_layer *L = &m->layers[i];
		const struct tm_weight *ws[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down,
						 &L->gate_exps, &L->up_exps, &L->down_exps };

		for (size_t k = 0; k < sizeof(ws) / sizeof(ws[0]); k++)
			if (ws[k]->data && tm_repack_base(ws[k]->type) != ws[k]->type)
				return "r16";
	}
	return "gguf";
}

/* A tensor the rule picks, as stacked matrices: bytes of one, and of one group of 16 rows. */
static size_t mat_bytes(const struct tm_gguf_tensor *t, size_t *group)
{
	size_t rb = tm_row_bytes((int)t->type, t->ne[0]);

	*group = TM_REPACK_ROWS * rb;
	return rb * (size_t)t->ne[1];
}

static int repack_tensor(const struct tm_gguf_tensor *t)
{
	size_t group, mat = mat_bytes(t, &group);
	int err = 0;

	for (int64_t e = 0; e < t->ne[2] * t->ne[3] && !err; e++)
		err = tm_repack((int)t->type, (char *)t->data + e * mat, (int)t->ne[1], (int)t->ne[0]);
	return err;
}

/* Hash a repacked tensor's GGUF bytes: whole groups of rows through buf (chunk bytes), put back. */
static int hash_unrepacked(XXH3_state_t *st, const struct tm_gguf_tensor *t, char *buf, size_t chunk)
{
	size_t group, mat = mat_bytes(t, &group), step = chunk / group * group;
	int rt = tm_repack_type((int)t->type), err = 0;

	if (!step)
		return tm_err(-EINVAL, "tensor '%.*s': rows too long to hash", (int)t->name.len, t->name.ptr);
	for (int64_t e = 0; e < t->ne[2] * t->ne[3] && !err; e++)
		for (size_t m = 0; m < mat && !err; m += step) {
			size_t n = mat - m < step ? mat - m : step;

			memcpy(buf, (const char *)t->data + e * mat + m, n);
			err = tm_unrepack(rt, buf, (int)(n / (group / TM_REPACK_ROWS)), (int)t->ne[0]);
			XXH3_128bits_update(st, buf, n);
		}
	return err;
}

static int inplace_find(void *arg, const struct tm_gguf_tensor *t, const void **data, int *map)
{
	(void)arg;
	*data = t->data;
	*map = 0;
	return 0;
}

static int inplace_type(void *arg, const struct tm_gguf_tensor *t)
{
	int rt = tm_tensor_repacked_type(t);

	(void)arg;
	return rt < 0 ? (int)t->type : rt;
}

int tm_model_init_repacked(struct tm_model *m, const struct tm_gguf *g)
{
	int err;

	/* every tensor the rule picks, bound or not, so the rule alone says what was repacked */
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct tm_gguf_tensor *t = &g->tensors[i];

		if (tm_tensor_repacked_type(t) >= 0 && (err = repack_tensor(t)))
			return tm_err(err, "tensor '%.*s': repacking failed", (int)t->name.len, t->name.ptr);
	}
	err = tm_model_init_src(m, g, &(struct tm_tensor_src){ .find = inplace_find, .type = inplace_type });
	m->repacked = !err;
	return err;
}

/*
 * The GGUF's content hash (tm_gguf_content_hash) of a model repacked in
 * place: the repacked tensors are put back into the GGUF layout a chunk at a
 * time on their way into the hash, so the identity stays the file's.
 */
int tm_model_content_hash(const struct tm_model *m, char out[33])
{
	const struct tm_gguf *g = &m->gguf;
	const size_t chunk = 8u << 20;
	XXH3_state_t *st;
	XXH128_hash_t h;
	char *buf;
	int err = 0;

	if (!m->repacked)
		return tm_gguf_content_hash(g, out);
	st = XXH3_createState();
	buf = malloc(chunk);
	if (!st || !buf) {
		XXH3_freeState(st);
		free(buf);
		return tm_err(-ENOMEM, "out of memory");
	}
	XXH3_128bits_reset(st);
	XXH3_128bits_update(st, g->base, g->data_offset);
	for (uint64_t i = 0; i < g->n_tensors && !err; i++) {
		const struct tm_gguf_tensor *t = &g->tensors[i];

		if (tm_tensor_repacked_type(t) < 0)
			XXH3_128bits_update(st, t->data, t->nbytes);
		else
			err = hash_unrepacked(st, t, buf, chunk);
	}
	h = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	free(buf);
	if (err)
		return err;
	snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, (uint64_t)h.high64, (uint64_t)h.low64);
	return 0;
}
