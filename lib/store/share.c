// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/store/store_internal.h"
#include "tiermem/gguf.h"

bool tm_share_applies(const struct tm_gguf_tensor *t)
{
	char name[64];

	if (t->n_dims != 3 || t->ne[2] < 2 || t->name.len >= sizeof(name))
		return false;
	memcpy(name, t->name.ptr, t->name.len);
	name[t->name.len] = '\0';
	return tm_tensor_classify(name) == TM_TC_EXPERTS;
}

uint64_t tm_share_bytes(const struct tm_gguf_tensor *t, int rank, int ranks)
{
	int64_t n = t->ne[2], mine = (n - rank + ranks - 1) / ranks;

	return t->nbytes / (uint64_t)n * (uint64_t)(mine > 0 ? mine : 0);
}

void tm_share_layout(char out[16], int rank, int ranks)
{
	snprintf(out, 16, "experts %d/%d", rank, ranks);
}

int tm_share_parse(const char *layout, int *rank, int *ranks)
{
	int used = 0;

	if (sscanf(layout, "experts %d/%d%n", rank, ranks, &used) != 2 || layout[used] || *ranks < 2 ||
	    *rank < 0 || *rank >= *ranks)
		return -EINVAL;
	return 0;
}
