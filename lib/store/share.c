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

/* The layouts of the two kinds of share: "WHAT R/N". */
static void layout_of(char out[16], const char *what, int rank, int ranks)
{
	snprintf(out, 16, "%s %d/%d", what, rank, ranks);
}

static int parse_of(const char *layout, const char *what, int *rank, int *ranks)
{
	size_t n = strlen(what);
	int used = 0;

	if (strncmp(layout, what, n) || layout[n] != ' ' ||
	    sscanf(layout + n + 1, "%d/%d%n", rank, ranks, &used) != 2 || layout[n + 1 + used] || *ranks < 2 ||
	    *rank < 0 || *rank >= *ranks)
		return -EINVAL;
	return 0;
}

void tm_share_layout(char out[16], int rank, int ranks)
{
	layout_of(out, "experts", rank, ranks);
}

int tm_share_parse(const char *layout, int *rank, int *ranks)
{
	return parse_of(layout, "experts", rank, ranks);
}

/* A tensor's name as a C string (names longer than out are not the ones asked about). */
static void name_of(const struct tm_gguf_tensor *t, char *out, size_t n)
{
	size_t len = t->name.len < n - 1 ? t->name.len : n - 1;

	memcpy(out, t->name.ptr, len);
	out[len] = '\0';
}

bool tm_share_layers_holds(const struct tm_gguf *g, const struct tm_gguf_tensor *t, int first, int last,
			   int n_layer)
{
	char name[96];

	name_of(t, name, sizeof(name));
	return tm_stage_holds(name, !tm_gguf_tensor(g, "output.weight"), first, last, n_layer);
}

void tm_share_layers_layout(char out[16], int rank, int ranks)
{
	layout_of(out, "layers", rank, ranks);
}

int tm_share_layers_parse(const char *layout, int *rank, int *ranks)
{
	return parse_of(layout, "layers", rank, ranks);
}
