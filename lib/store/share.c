// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/store_internal.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/gguf.h"
#include "tiermem/model.h"
#include "tiermem/plan.h"

bool tm_share_applies(const struct tm_gguf_tensor *t)
{
	char name[64];

	if (t->n_dims != 3 || t->ne[2] < 2 || t->name.len >= sizeof(name))
		return false;
	memcpy(name, t->name.ptr, t->name.len);
	name[t->name.len] = '\0';
	return tm_tensor_classify(name) == TM_TC_EXPERTS;
}

int tm_share_layer(const struct tm_gguf_tensor *t)
{
	char name[64];
	int l, used = 0;

	if (t->name.len >= sizeof(name))
		return -1;
	memcpy(name, t->name.ptr, t->name.len);
	name[t->name.len] = '\0';
	return sscanf(name, "blk.%d.%n", &l, &used) == 1 && used && l >= 0 ? l : -1;
}

uint64_t tm_share_bytes(const struct tm_gguf_tensor *t, int count)
{
	return t->nbytes / (uint64_t)t->ne[2] * (uint64_t)count;
}

bool tm_share_holds(const struct tm_manifest *mf, int l, int e, int rank, int ranks)
{
	return mf->xowner ? mf->xowner[(size_t)l * mf->xowner_experts + e] == rank : e % ranks == rank;
}

int tm_share_count(const struct tm_manifest *mf, const struct tm_gguf_tensor *t, int rank, int ranks)
{
	int l = tm_share_layer(t), n = 0;

	if (mf->xowner && (l < 0 || l >= mf->xowner_layers || t->ne[2] != mf->xowner_experts))
		return -EINVAL;
	for (int e = 0; e < t->ne[2]; e++) {
		if (mf->xowner && mf->xowner[(size_t)l * mf->xowner_experts + e] >= ranks)
			return -EINVAL;
		n += tm_share_holds(mf, l, e, rank, ranks);
	}
	return n;
}

int tm_share_bind(const struct tm_manifest *mf, struct tm_model *m, int rank, int ranks)
{
	int L = m->hp.n_layer, E = m->hp.n_expert, err;
	struct tm_xassign a;

	if (mf->xowner && (mf->xowner_layers != L || mf->xowner_experts != E))
		return tm_err(-EIO, "model '%s': its expert assignment is of %d layers of %d experts, the model "
			      "has %d of %d", mf->name, mf->xowner_layers, mf->xowner_experts, L, E);
	/* the uniform rule's table, then the manifest's over it: one hash for either */
	if ((err = tm_xassign_make(&a, L, E, ranks, NULL)))
		return err;
	for (size_t i = 0; mf->xowner && i < (size_t)L * E; i++)
		if (mf->xowner[i] >= ranks) {
			tm_xassign_free(&a);
			return tm_err(-EIO, "model '%s': its expert assignment names rank %d of %d", mf->name,
				      mf->xowner[i], ranks);
		}
	if (mf->xowner)
		memcpy(a.owner, mf->xowner, sizeof(*a.owner) * (size_t)L * E);
	a.hash = tm_xassign_hash(&a);
	m->share_at = malloc(sizeof(*m->share_at) * (size_t)L * E);
	if (!m->share_at) {
		tm_xassign_free(&a);
		return tm_err(-ENOMEM, "out of memory");
	}
	for (int l = 0; l < L; l++) {
		int *at = m->share_at + (size_t)l * E, k = 0;

		for (int e = 0; e < E; e++)
			at[e] = tm_xassign_owner(&a, l, e) == rank ? k++ : -1;
		m->layers[l].gate_exps.mat_at = at;
		m->layers[l].up_exps.mat_at = at;
		m->layers[l].down_exps.mat_at = at;
	}
	m->share_hash = a.hash;
	tm_xassign_free(&a);
	return 0;
}

/* The layouts of the two kinds of share: "WHAT R/N". */
static void layout_of(char out[TM_LAYOUT_MAX], const char *what, int rank, int ranks)
{
	snprintf(out, TM_LAYOUT_MAX, "%s %d/%d", what, rank, ranks);
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

void tm_share_layout(char out[TM_LAYOUT_MAX], int rank, int ranks)
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

void tm_share_layers_layout(char out[TM_LAYOUT_MAX], int rank, int ranks)
{
	layout_of(out, "layers", rank, ranks);
}

int tm_share_layers_parse(const char *layout, int *rank, int *ranks)
{
	return parse_of(layout, "layers", rank, ranks);
}

bool tm_share_rows(const struct tm_gguf_tensor *t, int rank, int ranks, int *r0, int *r1)
{
	return tm_tp_splits(t, ranks) && tm_tp_rows((int)t->ne[1], ranks, rank, r0, r1);
}

void tm_share_rows_layout(char out[TM_LAYOUT_MAX], int rank, int ranks, bool r16)
{
	layout_of(out, r16 ? "r16 rows" : "rows", rank, ranks);
}

int tm_share_rows_parse(const char *layout, int *rank, int *ranks, bool *r16)
{
	bool r = !strncmp(layout, "r16 ", 4);

	if (r16)
		*r16 = r;
	return parse_of(layout + (r ? 4 : 0), "rows", rank, ranks);
}
