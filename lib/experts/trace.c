// SPDX-License-Identifier: MIT
/*
 * Expert traces as JSON lines: a header object, then one object per token and
 * MoE layer (Documentation/tiermem-experts.rst). The reader trusts nothing:
 * every key, id, weight and the order of records is checked, and the first
 * fault is reported as PATH:LINE.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tiermem/error.h"
#include "tiermem/experts.h"

static int grow(struct tm_xtrace *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024, k = (size_t)t->model.n_expert_used;
	void *p;

#define GROW(f, n) do { if (!(p = realloc(t->f, sizeof(*t->f) * (n)))) return -ENOMEM; t->f = p; } while (0)
	GROW(tok, cap);
	GROW(layer, cap);
	GROW(has_pred, cap);
	GROW(exp, cap * k);
	GROW(w, cap * k);
	GROW(pred, cap * k);
#undef GROW
	t->cap = cap;
	return 0;
}

/* The checks every record passes, whoever made it; the message has no location. */
static int check_rec(const struct tm_xtrace *t, int tok, int layer, const int *exp, const float *w,
		     const int *pred)
{
	const struct tm_xtrace_model *m = &t->model;
	int k = m->n_expert_used;

	if (tok < 0)
		return tm_err(-EINVAL, "token %d is negative", tok);
	if (layer < 0 || layer >= m->n_layer)
		return tm_err(-EINVAL, "layer %d is outside [0, %d)", layer, m->n_layer);
	if (t->n_rec) {
		int pt = t->tok[t->n_rec - 1], pl = t->layer[t->n_rec - 1];

		if (tok < pt)
			return tm_err(-EINVAL, "token %d after token %d: tokens must not go back", tok, pt);
		if (tok == pt && layer <= pl)
			return tm_err(-EINVAL, "token %d: layer %d after layer %d: layers must increase",
				      tok, layer, pl);
	}
	for (int j = 0; j < k; j++) {
		if (exp[j] < 0 || exp[j] >= m->n_expert)
			return tm_err(-EINVAL, "expert %d is outside [0, %d)", exp[j], m->n_expert);
		if (!isfinite(w[j]) || w[j] < 0)
			return tm_err(-EINVAL, "weight %g of expert %d is not a finite number >= 0",
				      (double)w[j], exp[j]);
		if (pred && (pred[j] < 0 || pred[j] >= m->n_expert))
			return tm_err(-EINVAL, "predicted expert %d is outside [0, %d)", pred[j], m->n_expert);
		for (int i = 0; i < j; i++) {
			if (exp[i] == exp[j])
				return tm_err(-EINVAL, "expert %d is chosen twice", exp[j]);
			if (pred && pred[i] == pred[j])
				return tm_err(-EINVAL, "expert %d is predicted twice", pred[j]);
		}
	}
	return 0;
}

int tm_xtrace_add(struct tm_xtrace *t, int tok, int layer, const int *exp, const float *w,
		  const int *pred)
{
	size_t k = (size_t)t->model.n_expert_used, r = t->n_rec;
	int err = check_rec(t, tok, layer, exp, w, pred);

	if (err)
		return err;
	if (r == t->cap && grow(t))
		return tm_err(-ENOMEM, "out of memory for %zu trace records", r);
	if (!r || t->tok[r - 1] != tok)
		t->n_tokens++;
	t->tok[r] = tok;
	t->layer[r] = (int16_t)layer;
	t->has_pred[r] = pred != NULL;
	for (size_t j = 0; j < k; j++) {
		t->exp[r * k + j] = (int16_t)exp[j];
		t->w[r * k + j] = w[j];
		t->pred[r * k + j] = (int16_t)(pred ? pred[j] : -1);
	}
	t->n_rec++;
	return 0;
}

void tm_xtrace_free(struct tm_xtrace *t)
{
	free(t->tok);
	free(t->layer);
	free(t->has_pred);
	free(t->exp);
	free(t->w);
	free(t->pred);
	memset(t, 0, sizeof(*t));
}

/* An integer member in [lo, hi]; a message naming it otherwise. */
static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return tm_err(-EINVAL, "'%s' is missing", key);
	if (!json_is_integer(v))
		return tm_err(-EINVAL, "'%s' is not an integer", key);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return tm_err(-EINVAL, "'%s' = %lld is outside [%lld, %lld]", key, *out, lo, hi);
	return 0;
}

static int get_str(json_t *o, const char *key, char *buf, size_t n)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return tm_err(-EINVAL, "'%s' is missing", key);
	if (!json_is_string(v))
		return tm_err(-EINVAL, "'%s' is not a string", key);
	if (json_string_length(v) >= n)
		return tm_err(-EINVAL, "'%s' is longer than %zu characters", key, n - 1);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* Every member of o must be one of the names given: a typo is an error, not a default. */
static int only_keys(json_t *o, const char *const *keys)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		size_t i;

		for (i = 0; keys[i] && strcmp(keys[i], k); i++)
			;
		if (!keys[i])
			return tm_err(-EINVAL, "unknown key '%.40s'", k);
	}
	return 0;
}

static int parse_header(struct tm_xtrace *t, json_t *h)
{
	static const char *const top[] = { "format", "version", "model", "source", NULL };
	static const char *const mk[] = { "hash", "arch", "n_layer", "n_expert", "n_expert_used",
					  "expert_bytes", "dense_bytes", NULL };
	struct tm_xtrace_model *m = &t->model;
	char fmt[32];
	long long v;
	json_t *mo;
	int err;

	if (!json_is_object(h))
		return tm_err(-EINVAL, "the first line is not a JSON object (a trace header)");
	if ((err = get_str(h, "format", fmt, sizeof(fmt))) || strcmp(fmt, TM_XTRACE_FORMAT))
		return err ? err : tm_err(-EINVAL, "format '%s' is not " TM_XTRACE_FORMAT, fmt);
	if ((err = get_int(h, "version", 0, INT32_MAX, &v)))
		return err;
	if (v != TM_XTRACE_VERSION)
		return tm_err(-EINVAL, "trace version %lld; this tiermem reads version %d", v, TM_XTRACE_VERSION);
	if ((err = only_keys(h, top)))
		return err;
	t->source[0] = '\0';
	if (json_object_get(h, "source") && (err = get_str(h, "source", t->source, sizeof(t->source))))
		return err;
	mo = json_object_get(h, "model");
	if (!json_is_object(mo))
		return tm_err(-EINVAL, "'model' is missing or not an object");
	if ((err = only_keys(mo, mk)) || (err = get_str(mo, "hash", m->hash, sizeof(m->hash))) ||
	    (err = get_str(mo, "arch", m->arch, sizeof(m->arch))))
		return err;
	if ((err = get_int(mo, "n_layer", 1, 4096, &v)))
		return err;
	m->n_layer = (int)v;
	if ((err = get_int(mo, "n_expert", 1, TM_XTRACE_MAX_EXPERTS, &v)))
		return err;
	m->n_expert = (int)v;
	if ((err = get_int(mo, "n_expert_used", 1, TM_XTRACE_MAX_USED, &v)))
		return err;
	m->n_expert_used = (int)v;
	if (m->n_expert_used > m->n_expert)
		return tm_err(-EINVAL, "n_expert_used %d exceeds n_expert %d", m->n_expert_used, m->n_expert);
	if ((err = get_int(mo, "expert_bytes", 0, INT64_MAX, &v)))
		return err;
	m->expert_bytes = (uint64_t)v;
	if ((err = get_int(mo, "dense_bytes", 0, INT64_MAX, &v)))
		return err;
	m->dense_bytes = (uint64_t)v;
	return 0;
}

static int int_array(json_t *o, const char *key, int k, int *out)
{
	json_t *a = json_object_get(o, key), *v;
	size_t i;

	if (!json_is_array(a))
		return tm_err(-EINVAL, "'%s' is missing or not an array", key);
	if (json_array_size(a) != (size_t)k)
		return tm_err(-EINVAL, "'%s' has %zu entries; the model uses %d experts per token",
			      key, json_array_size(a), k);
	json_array_foreach(a, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < INT16_MIN ||
		    json_integer_value(v) > INT16_MAX)
			return tm_err(-EINVAL, "'%s'[%zu] is not an expert id", key, i);
		out[i] = (int)json_integer_value(v);
	}
	return 0;
}

static int parse_rec(struct tm_xtrace *t, json_t *r)
{
	static const char *const keys[] = { "t", "l", "e", "w", "p", NULL };
	int k = t->model.n_expert_used, exp[TM_XTRACE_MAX_USED], pred[TM_XTRACE_MAX_USED];
	float w[TM_XTRACE_MAX_USED];
	long long tok, layer;
	json_t *a, *v;
	size_t i;
	int err;

	if (!json_is_object(r))
		return tm_err(-EINVAL, "a record is a JSON object");
	if ((err = only_keys(r, keys)) || (err = get_int(r, "t", 0, INT32_MAX, &tok)) ||
	    (err = get_int(r, "l", 0, 4095, &layer)) || (err = int_array(r, "e", k, exp)))
		return err;
	a = json_object_get(r, "w");
	if (!json_is_array(a) || json_array_size(a) != (size_t)k)
		return tm_err(-EINVAL, "'w' must be an array of %d weights", k);
	json_array_foreach(a, i, v) {
		if (!json_is_number(v))
			return tm_err(-EINVAL, "'w'[%zu] is not a number", i);
		w[i] = (float)json_number_value(v);
	}
	if (json_object_get(r, "p") && (err = int_array(r, "p", k, pred)))
		return err;
	return tm_xtrace_add(t, (int)tok, (int)layer, exp, w, json_object_get(r, "p") ? pred : NULL);
}

int tm_xtrace_read(struct tm_xtrace *t, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	ssize_t len;
	int err = 0;

	memset(t, 0, sizeof(*t));
	if (!f)
		return tm_err(-errno, "%s: %s", path, strerror(errno));
	while ((len = getline(&line, &cap, f)) >= 0) {
		json_error_t je;
		json_t *j;

		lineno++;
		if ((size_t)len != strlen(line)) {
			err = tm_err(-EINVAL, "%s:%ld: a NUL byte in the line", path, lineno);
			break;
		}
		j = json_loads(line, JSON_REJECT_DUPLICATES, &je);
		if (!j) {
			err = tm_err(-EINVAL, "%s:%ld: not JSON: %s", path, lineno, je.text);
			break;
		}
		err = lineno == 1 ? parse_header(t, j) : parse_rec(t, j);
		json_decref(j);
		if (err) {
			char why[400];

			snprintf(why, sizeof(why), "%s", tm_strerror());
			err = tm_err(err, "%s:%ld: %s", path, lineno, why);
			break;
		}
	}
	if (!err && ferror(f))
		err = tm_err(-EIO, "%s: read error", path);
	if (!err && lineno == 0)
		err = tm_err(-EINVAL, "%s: empty file, not an expert trace", path);
	if (!err && t->n_rec == 0)
		err = tm_err(-EINVAL, "%s: a header and no records", path);
	free(line);
	fclose(f);
	if (err)
		tm_xtrace_free(t);
	return err;
}

int tm_xtrace_write_header(FILE *f, const struct tm_xtrace_model *m, const char *source)
{
	json_t *h = json_pack("{s:s, s:i, s:{s:s, s:s, s:i, s:i, s:i, s:I, s:I}, s:s}",
			      "format", TM_XTRACE_FORMAT, "version", TM_XTRACE_VERSION,
			      "model", "hash", m->hash, "arch", m->arch, "n_layer", m->n_layer,
			      "n_expert", m->n_expert, "n_expert_used", m->n_expert_used,
			      "expert_bytes", (json_int_t)m->expert_bytes,
			      "dense_bytes", (json_int_t)m->dense_bytes, "source", source ? source : "");
	int err;

	if (!h)
		return tm_err(-ENOMEM, "out of memory");
	err = json_dumpf(h, f, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(h);
	if (err || fputc('\n', f) == EOF)
		return tm_err(-EIO, "writing the trace header failed");
	return 0;
}

static void put_ints(FILE *f, const char *key, const int *v, int k)
{
	fprintf(f, ",\"%s\":[", key);
	for (int j = 0; j < k; j++)
		fprintf(f, "%s%d", j ? "," : "", v[j]);
	fputc(']', f);
}

int tm_xtrace_write_rec(FILE *f, int tok, int layer, const int *exp, const float *w,
			const int *pred, int k)
{
	fprintf(f, "{\"t\":%d,\"l\":%d", tok, layer);
	put_ints(f, "e", exp, k);
	fputs(",\"w\":[", f);
	for (int j = 0; j < k; j++)
		fprintf(f, "%s%.6g", j ? "," : "", (double)w[j]);
	fputc(']', f);
	if (pred)
		put_ints(f, "p", pred, k);
	if (fputs("}\n", f) == EOF)
		return tm_err(-EIO, "writing the trace failed");
	return 0;
}
