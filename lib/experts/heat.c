// SPDX-License-Identifier: MIT
/*
 * Heat files: per layer and expert, how many profiled tokens used it, with
 * the identity of the model they were measured on. JSON:
 *
 *   {"format":"tiermem-expert-heat","version":1,
 *    "model":{"hash":..,"arch":..,"n_layer":..,"n_expert":..,"n_expert_used":..},
 *    "tokens":N,"counts":[[c, c, ...], ...]}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/gguf.h"
#include "tiermem/model.h"
#include "tiermem/store.h"

int tm_xheat_alloc(struct tm_xheat *h, const struct tm_xtrace_model *m)
{
	memset(h, 0, sizeof(*h));
	if (m->n_layer < 1 || m->n_layer > 4096 || m->n_expert < 1 || m->n_expert > TM_XTRACE_MAX_EXPERTS)
		return tm_err(-EINVAL, "heat: %d layers of %d experts", m->n_layer, m->n_expert);
	h->model = *m;
	h->counts = calloc((size_t)m->n_layer * m->n_expert, sizeof(*h->counts));
	return h->counts ? 0 : tm_err(-ENOMEM, "out of memory");
}

void tm_xheat_free(struct tm_xheat *h)
{
	free(h->counts);
	memset(h, 0, sizeof(*h));
}

static int str_member(json_t *o, const char *key, char *buf, size_t n)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) >= n)
		return tm_err(-EINVAL, "'%s' is missing or not a string of at most %zu characters", key, n - 1);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int int_member(json_t *o, const char *key, long long lo, long long hi, long long *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return tm_err(-EINVAL, "'%s' is missing or not an integer", key);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return tm_err(-EINVAL, "'%s' = %lld is outside [%lld, %lld]", key, *out, lo, hi);
	return 0;
}

static int parse(struct tm_xheat *h, json_t *j)
{
	struct tm_xtrace_model m = { 0 };
	json_t *mo, *counts, *row, *v;
	long long n;
	size_t l, e;
	char fmt[32];
	int err;

	if (!json_is_object(j))
		return tm_err(-EINVAL, "not a JSON object");
	if ((err = str_member(j, "format", fmt, sizeof(fmt))) || strcmp(fmt, TM_XHEAT_FORMAT))
		return err ? err : tm_err(-EINVAL, "format '%s' is not " TM_XHEAT_FORMAT, fmt);
	if ((err = int_member(j, "version", 0, INT32_MAX, &n)))
		return err;
	if (n != TM_XHEAT_VERSION)
		return tm_err(-EINVAL, "heat version %lld; this tiermem reads version %d", n, TM_XHEAT_VERSION);
	mo = json_object_get(j, "model");
	if (!json_is_object(mo))
		return tm_err(-EINVAL, "'model' is missing or not an object");
	if ((err = str_member(mo, "hash", m.hash, sizeof(m.hash))) ||
	    (err = str_member(mo, "arch", m.arch, sizeof(m.arch))))
		return err;
	if ((err = int_member(mo, "n_layer", 1, 4096, &n)))
		return err;
	m.n_layer = (int)n;
	if ((err = int_member(mo, "n_expert", 1, TM_XTRACE_MAX_EXPERTS, &n)))
		return err;
	m.n_expert = (int)n;
	if ((err = int_member(mo, "n_expert_used", 1, m.n_expert, &n)))
		return err;
	m.n_expert_used = (int)n;
	if ((err = tm_xheat_alloc(h, &m)))
		return err;
	if ((err = int_member(j, "tokens", 1, INT64_MAX, &n)))
		return err;
	h->tokens = (uint64_t)n;
	counts = json_object_get(j, "counts");
	if (!json_is_array(counts) || json_array_size(counts) != (size_t)m.n_layer)
		return tm_err(-EINVAL, "'counts' must be an array of %d layers", m.n_layer);
	json_array_foreach(counts, l, row) {
		if (!json_is_array(row) || json_array_size(row) != (size_t)m.n_expert)
			return tm_err(-EINVAL, "counts[%zu] must be an array of %d counts", l, m.n_expert);
		json_array_foreach(row, e, v) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    (uint64_t)json_integer_value(v) > h->tokens)
				return tm_err(-EINVAL, "counts[%zu][%zu] is not a count in [0, tokens]", l, e);
			h->counts[l * m.n_expert + e] = (uint64_t)json_integer_value(v);
		}
	}
	return 0;
}

int tm_xheat_read(struct tm_xheat *h, const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	int err;

	memset(h, 0, sizeof(*h));
	if (!j)
		return tm_err(-EINVAL, "%s: not a heat file: %s (line %d)", path, je.text, je.line);
	err = parse(h, j);
	json_decref(j);
	if (err) {
		char why[400];

		snprintf(why, sizeof(why), "%s", tm_strerror());
		tm_xheat_free(h);
		return tm_err(err, "%s: %s", path, why);
	}
	return 0;
}

int tm_xheat_write(const struct tm_xheat *h, const char *path)
{
	const struct tm_xtrace_model *m = &h->model;
	json_t *counts = json_array(), *j;
	char tmp[4096];
	int err = 0;

	if (!counts)
		return tm_err(-ENOMEM, "out of memory");
	for (int l = 0; l < m->n_layer && !err; l++) {
		json_t *row = json_array();

		err = !row || json_array_append_new(counts, row);
		for (int e = 0; e < m->n_expert && !err; e++)
			err = json_array_append_new(row, json_integer((json_int_t)h->counts[(size_t)l * m->n_expert + e]));
	}
	j = json_pack("{s:s, s:i, s:{s:s, s:s, s:i, s:i, s:i}, s:I, s:o}", "format", TM_XHEAT_FORMAT,
		      "version", TM_XHEAT_VERSION, "model", "hash", m->hash, "arch", m->arch,
		      "n_layer", m->n_layer, "n_expert", m->n_expert, "n_expert_used", m->n_expert_used,
		      "tokens", (json_int_t)h->tokens, "counts", counts);
	if (err || !j) {
		if (!j)
			json_decref(counts);
		json_decref(j);
		return tm_err(-ENOMEM, "out of memory");
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		json_decref(j);
		return tm_err(-EINVAL, "%s: path too long", path);
	}
	err = json_dump_file(j, tmp, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (err || rename(tmp, path)) {
		int e = errno;

		remove(tmp);
		return tm_err(-(e ? e : EIO), "%s: cannot write the heat file", path);
	}
	return 0;
}

int tm_xheat_probs(const struct tm_xheat *h, float **out)
{
	size_t n = (size_t)h->model.n_layer * h->model.n_expert;
	float *p = malloc(sizeof(*p) * n);

	*out = NULL;
	if (!p)
		return tm_err(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		p[i] = (float)((double)h->counts[i] / (double)h->tokens);
	*out = p;
	return 0;
}

struct ent {
	uint64_t n;
	int e;
};

static int hotter(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	return x->n != y->n ? (x->n < y->n ? 1 : -1) : x->e - y->e;
}

void tm_xheat_order(const struct tm_xheat *h, int l, int *order)
{
	int n = h->model.n_expert;
	struct ent *v = malloc(sizeof(*v) * n);

	if (!v) {
		for (int e = 0; e < n; e++)
			order[e] = e;
		return;
	}
	for (int e = 0; e < n; e++)
		v[e] = (struct ent){ h->counts[(size_t)l * n + e], e };
	qsort(v, n, sizeof(*v), hotter);
	for (int e = 0; e < n; e++)
		order[e] = v[e].e;
	free(v);
}

int tm_xheat_check(const struct tm_xheat *h, const struct tm_gguf *g, const char *hash)
{
	struct tm_gguf_str arch;
	uint32_t n_layer = 0, n_expert = 0;
	char key[96];

	if (tm_gguf_get_str(g, "general.architecture", &arch))
		return tm_err(-EINVAL, "the model names no architecture");
	snprintf(key, sizeof(key), "%.*s.block_count", (int)(arch.len < 40 ? arch.len : 40), arch.ptr);
	tm_gguf_get_u32(g, key, &n_layer);
	snprintf(key, sizeof(key), "%.*s.expert_count", (int)(arch.len < 40 ? arch.len : 40), arch.ptr);
	tm_gguf_get_u32(g, key, &n_expert);
	if (!n_expert)
		return tm_err(-EINVAL, "the model has no experts: heat does not apply to it");
	if ((int)n_layer != h->model.n_layer || (int)n_expert != h->model.n_expert)
		return tm_err(-EINVAL, "the heat is of a model with %d layers of %d experts; this one has %u of %u",
			      h->model.n_layer, h->model.n_expert, n_layer, n_expert);
	if (hash && strcmp(hash, h->model.hash))
		return tm_err(-EINVAL, "the heat is of another model (hash %.32s; this model's is %.32s)",
			      h->model.hash, hash);
	return 0;
}

int tm_xheat_from_trace(struct tm_xheat *h, const struct tm_xtrace *t, int t0, int t1)
{
	int k = t->model.n_expert_used, n = t->model.n_expert, err;
	int last = -1;

	if ((err = tm_xheat_alloc(h, &t->model)))
		return err;
	for (size_t r = 0; r < t->n_rec; r++) {
		if (t->tok[r] < t0 || t->tok[r] >= t1)
			continue;
		if (t->tok[r] != last) {
			h->tokens++;
			last = t->tok[r];
		}
		for (int j = 0; j < k; j++)
			h->counts[(size_t)t->layer[r] * n + t->exp[r * k + j]]++;
	}
	return 0;
}

static int more(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x != y ? (x < y ? 1 : -1) : 0;
}

struct cand {
	uint64_t n;
	int l, rank;
};

static int better(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	return x->rank != y->rank ? x->rank - y->rank : x->l - y->l;
}

/*
 * The s-th slot of a layer is worth about the use count of the layer's s-th
 * hottest expert (what a cache holding that layer's hottest experts would
 * gain by one more slot), so the slots go to the globally hottest (layer,
 * rank) pairs: hot-skewed layers get more, flat ones fewer. A floor keeps
 * every MoE layer some slots, since recency (not only popularity) fills them.
 */
int tm_xheat_split(const struct tm_xheat *h, const bool *moe, int total, double floor_share, int *slots)
{
	int L = h->model.n_layer, n = h->model.n_expert, n_moe = 0, left = total, floor_n;
	struct cand *v;
	uint64_t *row;
	size_t nc = 0;

	for (int l = 0; l < L; l++)
		n_moe += !moe || moe[l];
	if (total < 1 || n_moe < 1 || (int64_t)total > (int64_t)n_moe * n)
		return tm_err(-EINVAL, "expert cache: %d slots cannot be split over %d layers of %d experts",
			      total, n_moe, n);
	if (!(floor_share >= 0 && floor_share <= 1))
		return tm_err(-EINVAL, "expert cache: a floor of %g of the even share is not in [0, 1]", floor_share);
	floor_n = (int)(floor_share * total / n_moe);
	v = malloc(sizeof(*v) * (size_t)L * n);
	row = malloc(sizeof(*row) * n);
	if (!v || !row) {
		free(v);
		free(row);
		return tm_err(-ENOMEM, "out of memory");
	}
	for (int l = 0; l < L; l++) {
		slots[l] = 0;
		if (moe && !moe[l])
			continue;
		slots[l] = floor_n;
		left -= floor_n;
	}
	for (int l = 0; l < L; l++) {
		if (moe && !moe[l])
			continue;
		for (int e = 0; e < n; e++)
			row[e] = h->counts[(size_t)l * n + e];
		/* the layer's counts, hottest first: rank r is worth its count */
		qsort(row, n, sizeof(*row), more);
		for (int r = floor_n; r < n; r++)
			v[nc++] = (struct cand){ row[r], l, r };
	}
	qsort(v, nc, sizeof(*v), better);
	for (size_t i = 0; i < nc && left > 0; i++, left--)
		slots[v[i].l]++;
	free(v);
	free(row);
	return 0;
}

int tm_xheat_read_model(struct tm_xheat *h, const char *path, const struct tm_model *m, const char *name,
			bool *shape_only)
{
	char hash[33];
	int err;

	if ((err = tm_xheat_read(h, path)))
		return err;
	err = tm_model_identity(m, name, hash);
	*shape_only = err == -EINVAL;
	if (err && err != -EINVAL) {
		tm_xheat_free(h);
		return err;
	}
	if ((err = tm_xheat_check(h, &m->gguf, *shape_only ? NULL : hash))) {
		tm_xheat_free(h);
		return tm_err_prefix(err, "%s", path);
	}
	return 0;
}
