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
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tiermem/error.h"
#include "tiermem/model.h"

/*
 * Every q4_K/q6_K matrix of at least one group of rows, except the token
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

struct inplace {
	const struct tm_gguf *g;
	bool *done;		/* per tensor: already rewritten (a tensor may be bound twice) */
	int err;
};

/* The tensor's bytes where the GGUF put them, repacked there the first time it is bound. */
static int inplace_find(void *arg, const struct tm_gguf_tensor *t, const void **data, int *map)
{
	struct inplace *p = arg;
	size_t i = t - p->g->tensors;
	int rt = tm_tensor_repacked_type(t), err;

	*data = t->data;
	*map = 0;
	if (rt < 0 || p->done[i])
		return 0;
	for (int64_t e = 0; e < t->ne[2] * t->ne[3]; e++) {
		size_t mat = tm_row_bytes((int)t->type, t->ne[0]) * (size_t)t->ne[1];

		err = tm_repack((int)t->type, (char *)t->data + e * mat, (int)t->ne[1], (int)t->ne[0]);
		if (err)
			return tm_err(err, "tensor '%.*s': repacking failed", (int)t->name.len, t->name.ptr);
	}
	p->done[i] = true;
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
	struct inplace p = { .g = g, .done = calloc(g->n_tensors + 1, sizeof(bool)) };
	int err;

	if (!p.done)
		return tm_err(-ENOMEM, "out of memory");
	err = tm_model_init_src(m, g, &(struct tm_tensor_src){ .find = inplace_find, .type = inplace_type,
							       .arg = &p });
	free(p.done);
	return err;
}
