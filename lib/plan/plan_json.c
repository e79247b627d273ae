// SPDX-License-Identifier: MIT
/*
 * Plans as JSON (jansson): what `tiermem plan --json` prints and
 * `tiermem import --plan` reads. Reading checks every field and recomputes
 * the per-tier totals and the prediction from the tensors, so a hand-edited
 * plan is judged by the same arithmetic as a made one.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/plan/plan_internal.h"
#include "tiermem/error.h"
#include "tiermem/plan.h"

#define PLAN_JSON_VERSION 1

static json_t *tier_json(const struct tm_plan *p, int i)
{
	const struct tm_tier_spec *t = &p->tiers[i];
	double sec = t->gbps > 0 ? p->tier_read[i] / (t->gbps * 1e9) : 0;

	return json_pack("{s:s, s:s, s:i, s:s, s:s, s:I, s:f, s:b, s:I, s:I, s:f, s:f, s:f}",
			 "name", t->name, "kind", tm_tier_kind_name(t->kind), "node", t->node,
			 "path", t->path, "group", t->group, "capacity", (json_int_t)t->capacity,
			 "gbps", t->gbps, "gbps_given", t->gbps_given,
			 "bytes", (json_int_t)p->tier_bytes[i], "tensors", (json_int_t)p->tier_count[i],
			 "read_per_token", p->tier_read[i], "sec_per_token", sec,
			 "tok_per_s_alone", sec > 0 ? 1 / sec : 0);
}

json_t *tm_plan_json(const struct tm_plan *p)
{
	json_t *root, *tiers, *tensors;

	root = json_pack("{s:i, s:b, s:b, s:f, s:f, s:i, s:o, s:o}", "version", PLAN_JSON_VERSION,
			 "overlap", p->overlap, "layer_order", p->layer_order,
			 "sec_per_token", p->sec_per_token,
			 "tok_per_s", p->sec_per_token > 0 ? 1 / p->sec_per_token : 0, "n_embd", p->n_embd,
			 "tiers", tiers = json_array(), "tensors", tensors = json_array());
	if (!root) {
		tm_err(-ENOMEM, "plan: building the JSON");
		return NULL;
	}
	/* derived, for reading: recomputed from the tensors when the plan is read back */
	if (p->gpu_tier >= 0)
		json_object_set_new(root, "hybrid", json_pack("{s:f, s:f, s:f, s:f, s:f, s:i, s:f, s:f, s:f}",
			"gpu_sec", p->hy.gpu_sec, "cpu_sec", p->hy.cpu_sec, "moe_sec", p->hy.moe_sec,
			"moe_serial_sec", p->hy.moe_serial_sec, "handoff_sec", p->hy.handoff_sec,
			"handoffs", p->hy.handoffs, "handoff_fixed_sec", TM_PLAN_HANDOFF_SEC,
			"vram_read", p->hy.vram_read, "pcie_read", p->hy.pcie_read));
	/* one node of a cluster (plan --nodes N --rank R --split S): what it holds; not read back */
	if (p->nodes > 1)
		json_object_set_new(root, "node", json_pack("{s:i, s:i, s:s, s:i, s:i}", "nodes", p->nodes,
							    "rank", p->rank, "split", p->split_layers ? "layers" :
							    p->tensor_parallel ? "experts,dense" : "experts",
							    "first", p->split_layers ? p->stage_first : -1,
							    "last", p->split_layers ? p->stage_last : -1));
	for (int i = 0; i < p->n_tiers; i++)
		json_array_append_new(tiers, tier_json(p, i));
	for (size_t i = 0; i < p->n_tensors; i++) {
		const struct tm_plan_tensor *t = &p->tensors[i];

		json_array_append_new(tensors, json_pack("{s:s, s:s, s:i, s:I, s:f, s:s, s:s, s:s}",
							 "name", t->name, "class", tm_tensor_class_name(t->cls),
							 "type", t->type, "bytes", (json_int_t)t->bytes,
							 "read_per_token", t->read_per_token,
							 "tier", p->tiers[t->tier].name,
							 "compute", t->gpu ? "gpu" : "cpu", "why", t->why));
	}
	return root;
}

int tm_plan_write_json(const struct tm_plan *p, FILE *f)
{
	json_t *root = tm_plan_json(p);
	int rc;

	if (!root)
		return -ENOMEM;
	rc = json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (rc || fputc('\n', f) == EOF || fflush(f))
		return tm_err(-EIO, "plan: writing the JSON failed");
	return 0;
}

/* ---- reading ---- */

static int copy_str(char *dst, size_t cap, json_t *v, const char *what, size_t at)
{
	const char *s = json_string_value(v);

	if (!s)
		return tm_err(-EINVAL, "plan JSON: %s of entry %zu is missing or not a string", what, at);
	if (strlen(s) >= cap)
		return tm_err(-EINVAL, "plan JSON: %s of entry %zu is longer than %zu bytes", what, at, cap - 1);
	strcpy(dst, s);
	return 0;
}

static int read_tier(json_t *o, struct tm_tier_spec *t, size_t at)
{
	json_t *kind = json_object_get(o, "kind"), *cap = json_object_get(o, "capacity");
	json_t *gbps = json_object_get(o, "gbps"), *node = json_object_get(o, "node");
	json_t *path = json_object_get(o, "path"), *group = json_object_get(o, "group");
	int err, k;

	memset(t, 0, sizeof(*t));
	if ((err = copy_str(t->name, sizeof(t->name), json_object_get(o, "name"), "tier name", at)))
		return err;
	for (k = 0; k < TM_KIND_COUNT; k++)
		if (json_is_string(kind) && !strcmp(json_string_value(kind), tm_tier_kind_name(k)))
			break;
	if (k == TM_KIND_COUNT)
		return tm_err(-EINVAL, "plan JSON: tier %s has no known kind", t->name);
	t->kind = k;
	if (t->kind == TM_KIND_PCIE ? !json_is_integer(cap) || json_integer_value(cap) != 0 :
				      !json_is_integer(cap) || json_integer_value(cap) <= 0)
		return tm_err(-EINVAL, "plan JSON: tier %s: capacity must be a positive integer (0 for pcie)", t->name);
	t->capacity = (uint64_t)json_integer_value(cap);
	if (!json_is_number(gbps) || !(json_number_value(gbps) > 0) || !isfinite(json_number_value(gbps)))
		return tm_err(-EINVAL, "plan JSON: tier %s: gbps must be a positive number", t->name);
	t->gbps = json_number_value(gbps);
	t->gbps_given = json_is_true(json_object_get(o, "gbps_given"));
	if (node && (!json_is_integer(node) || json_integer_value(node) < 0 || json_integer_value(node) > 4095))
		return tm_err(-EINVAL, "plan JSON: tier %s: node must be 0..4095", t->name);
	t->node = node ? (int)json_integer_value(node) : 0;
	if ((path && (err = copy_str(t->path, sizeof(t->path), path, "tier path", at))) ||
	    (group && (err = copy_str(t->group, sizeof(t->group), group, "tier group", at))))
		return err;
	return 0;
}

static int read_tensor(json_t *o, struct tm_plan *p, struct tm_plan_tensor *t, size_t at)
{
	json_t *bytes = json_object_get(o, "bytes"), *rpt = json_object_get(o, "read_per_token");
	json_t *type = json_object_get(o, "type"), *why = json_object_get(o, "why");
	json_t *cls = json_object_get(o, "class"), *compute = json_object_get(o, "compute");
	char tier[TM_TIER_NAME_MAX];
	int err;

	if ((err = copy_str(t->name, sizeof(t->name), json_object_get(o, "name"), "tensor name", at)) ||
	    (err = copy_str(tier, sizeof(tier), json_object_get(o, "tier"), "tensor tier", at)))
		return err;
	t->tier = tm_plan_tier(p, tier);
	if (t->tier < 0 || t->tier == p->pcie_tier)
		return tm_err(-EINVAL, "plan JSON: tensor %s is on tier %s, which the plan does not list%s",
			      t->name, tier, t->tier >= 0 ? " as one that holds tensors" : "");
	/* absent: where it lives (VRAM: the GPU) */
	t->gpu = t->tier == p->gpu_tier;
	t->ot_gpu = -1;
	if (compute && (!json_is_string(compute) ||
			(strcmp(json_string_value(compute), "gpu") && strcmp(json_string_value(compute), "cpu"))))
		return tm_err(-EINVAL, "plan JSON: tensor %s: compute must be \"gpu\" or \"cpu\"", t->name);
	if (compute)
		t->gpu = !strcmp(json_string_value(compute), "gpu");
	if (t->gpu && t->tier != p->gpu_tier && p->pcie_tier < 0)
		return tm_err(-EINVAL, "plan JSON: tensor %s: the GPU computes it from host tier %s but the plan has no pcie tier",
			      t->name, tier);
	if (!t->gpu && t->tier == p->gpu_tier)
		return tm_err(-EINVAL, "plan JSON: tensor %s: in VRAM but computed by the CPU", t->name);
	if (!json_is_integer(bytes) || json_integer_value(bytes) < 0)
		return tm_err(-EINVAL, "plan JSON: tensor %s: bytes must be a non-negative integer", t->name);
	t->bytes = (uint64_t)json_integer_value(bytes);
	if (!json_is_number(rpt) || !(json_number_value(rpt) >= 0) ||
	    json_number_value(rpt) > (double)t->bytes)
		return tm_err(-EINVAL, "plan JSON: tensor %s: read_per_token must be 0..bytes", t->name);
	t->read_per_token = json_number_value(rpt);
	t->type = json_is_integer(type) ? (int)json_integer_value(type) : -1;
	t->cls = tm_tensor_classify(t->name);
	for (int c = 0; c < TM_TC_COUNT; c++)
		if (json_is_string(cls) && !strcmp(json_string_value(cls), tm_tensor_class_name(c)))
			t->cls = c;
	if (why && (err = copy_str(t->why, sizeof(t->why), why, "tensor why", at)))
		return err;
	return 0;
}

static int read_plan(struct tm_plan *p, json_t *root)
{
	json_t *tiers = json_object_get(root, "tiers"), *tensors = json_object_get(root, "tensors");
	json_t *version = json_object_get(root, "version"), *embd = json_object_get(root, "n_embd");
	int err;

	if (!json_is_integer(version) || json_integer_value(version) != PLAN_JSON_VERSION)
		return tm_err(-EINVAL, "plan JSON: version must be %d", PLAN_JSON_VERSION);
	if (!json_is_array(tiers) || !json_array_size(tiers) || json_array_size(tiers) > TM_PLAN_MAX_TIERS)
		return tm_err(-EINVAL, "plan JSON: tiers must be an array of 1 to %d tiers", TM_PLAN_MAX_TIERS);
	if (!json_is_array(tensors))
		return tm_err(-EINVAL, "plan JSON: tensors must be an array");
	p->n_tiers = (int)json_array_size(tiers);
	for (int i = 0; i < p->n_tiers; i++) {
		if ((err = read_tier(json_array_get(tiers, (size_t)i), &p->tiers[i], (size_t)i)))
			return err;
		for (int j = 0; j < i; j++)
			if (!strcmp(p->tiers[j].name, p->tiers[i].name))
				return tm_err(-EINVAL, "plan JSON: two tiers are named %s", p->tiers[i].name);
	}
	if ((err = plan_gpu_tiers(p->tiers, p->n_tiers, &p->gpu_tier, &p->pcie_tier)))
		return tm_err_prefix(err, "plan JSON");
	if (embd && (!json_is_integer(embd) || json_integer_value(embd) < 0 || json_integer_value(embd) >= 1 << 30))
		return tm_err(-EINVAL, "plan JSON: n_embd must be a non-negative integer");
	p->n_embd = embd ? (int)json_integer_value(embd) : 0;
	p->overlap = json_is_true(json_object_get(root, "overlap"));
	p->layer_order = json_is_true(json_object_get(root, "layer_order"));
	p->n_tensors = json_array_size(tensors);
	p->tensors = calloc(p->n_tensors ? p->n_tensors : 1, sizeof(*p->tensors));
	if (!p->tensors)
		return tm_err(-ENOMEM, "plan JSON: out of memory");
	for (size_t i = 0; i < p->n_tensors; i++) {
		struct tm_plan_tensor *t = &p->tensors[i];

		if ((err = read_tensor(json_array_get(tensors, i), p, t, i)))
			return err;
		if (tm_plan_find(p, t->name) != t)
			return tm_err(-EINVAL, "plan JSON: tensor %s is listed twice", t->name);
		p->tier_bytes[t->tier] += t->bytes;
		p->tier_count[t->tier]++;
		p->tier_read[t->tier] += t->read_per_token;
	}
	for (int i = 0; i < p->n_tiers; i++)
		if (p->tier_bytes[i] > p->tiers[i].capacity)
			return tm_err(-ENOSPC, "plan JSON: tier %s holds %llu bytes of tensors but has %llu",
				      p->tiers[i].name, (unsigned long long)p->tier_bytes[i],
				      (unsigned long long)p->tiers[i].capacity);
	return tm_plan_predict(p);
}

int tm_plan_read_json(struct tm_plan *p, const char *path)
{
	json_error_t jerr;
	json_t *root;
	int err;

	memset(p, 0, sizeof(*p));
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return tm_err(-EINVAL, "plan JSON: %s:%d: %s", path, jerr.line, jerr.text);
	if (!json_is_object(root))
		err = tm_err(-EINVAL, "plan JSON: %s is not a JSON object", path);
	else
		err = read_plan(p, root);
	json_decref(root);
	if (err)
		tm_plan_free(p);
	return err;
}

int tm_plan_match(const struct tm_plan *p, const struct tm_gguf *g)
{
	char name[64];

	if (p->n_tensors != g->n_tensors)
		return tm_err(-EINVAL, "plan: it places %zu tensors, the model has %llu",
			      p->n_tensors, (unsigned long long)g->n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct tm_gguf_tensor *gt = &g->tensors[i];
		const struct tm_plan_tensor *t;

		if (gt->name.len >= sizeof(name))
			return tm_err(-EINVAL, "plan: the model's tensor %.40s... has a name too long", gt->name.ptr);
		memcpy(name, gt->name.ptr, gt->name.len);
		name[gt->name.len] = '\0';
		t = tm_plan_find(p, name);
		if (!t)
			return tm_err(-EINVAL, "plan: the model's tensor %s is not in the plan", name);
		if (t->bytes != gt->nbytes)
			return tm_err(-EINVAL, "plan: tensor %s has %llu bytes in the plan, %llu in the model",
				      name, (unsigned long long)t->bytes, (unsigned long long)gt->nbytes);
	}
	return 0;
}
