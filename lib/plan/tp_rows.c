// SPDX-License-Identifier: MIT
/*
 * Tensor parallel's one rule (--split experts,dense): which matrices are
 * split by rows, and which rows each rank has. Decode computes them
 * (lib/mpi/dense.c), a per-rank import stores them (lib/store/import.c),
 * the planner counts them (plan.c): all three ask here.
 */
#include <string.h>

#include "tiermem/plan.h"

bool tm_tp_rows(int rows, int ranks, int rank, int *r0, int *r1)
{
	long groups = (rows + 15) / 16;

	/* fewer groups than ranks: every rank computes it whole, as one process does */
	if (ranks < 2 || rows < 16 * ranks)
		return false;
	*r0 = (int)(groups * rank / ranks * 16);
	*r1 = (int)(groups * (rank + 1) / ranks * 16);
	*r0 = *r0 < rows ? *r0 : rows;
	*r1 = *r1 < rows ? *r1 : rows;
	return true;
}

bool tm_tp_splits(const struct tm_gguf_tensor *t, int ranks)
{
	char name[96];
	enum tm_tensor_class cls;
	int r0, r1;

	if (t->n_dims != 2 || t->name.len >= sizeof(name))
		return false;
	memcpy(name, t->name.ptr, t->name.len);
	name[t->name.len] = '\0';
	cls = tm_tensor_classify(name);
	return (cls == TM_TC_ATTN || cls == TM_TC_SHEXP || cls == TM_TC_FFN || cls == TM_TC_OUTPUT) &&
	       tm_tp_rows((int)t->ne[1], ranks, 0, &r0, &r1);
}
