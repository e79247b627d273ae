// SPDX-License-Identifier: MIT
/*
 * The manifest as JSON (jansson): the model's identity, its regions and,
 * per tensor, the region, offset, layout and content hash. Format in
 * Documentation/tiermem-store.rst; a manifest that does not check out in
 * every field is refused, never half-used.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "lib/store/store_internal.h"
#include "tiermem/error.h"

static const char *const kind_names[TM_KIND_COUNT] = {
	[TM_KIND_DDR] = "ddr", [TM_KIND_PMEM] = "pmem", [TM_KIND_NODE] = "node",
	[TM_KIND_FILE] = "file", [TM_KIND_VRAM] = "vram", [TM_KIND_PCIE] = "pcie",
};

static json_t *region_json(const struct tm_mregion *r)
{
	return json_pack("{s:s, s:s, s:i, s:f, s:s, s:s, s:I, s:I}", "tier", r->tier,
			 "kind", kind_names[r->kind], "node", r->node, "gbps", r->gbps,
			 "store", tm_store_name(r->store), "location", r->loc,
			 "size", (json_int_t)r->size, "used", (json_int_t)r->used);
}

static json_t *tensor_json(const struct tm_mtensor *t)
{
	char hash[17];

	snprintf(hash, sizeof(hash), "%016" PRIx64, t->hash);
	return json_pack("{s:s, s:i, s:I, s:I, s:i, s:s, s:s}", "name", t->name, "region", t->region,
			 "offset", (json_int_t)t->offset, "bytes", (json_int_t)t->bytes, "type", t->type,
			 "layout", t->layout, "hash", hash);
}

/* A share's expert assignment: per layer, each expert's rank. */
static json_t *owner_json(const struct tm_manifest *mf)
{
	json_t *layers = json_array();

	for (int l = 0; layers && l < mf->xowner_layers; l++) {
		json_t *row = json_array();

		for (int e = 0; row && e < mf->xowner_experts; e++)
			if (json_array_append_new(row, json_integer(mf->xowner[(size_t)l * mf->xowner_experts + e]))) {
				json_decref(row);
				row = NULL;
			}
		if (!row || json_array_append_new(layers, row)) {
			json_decref(layers);
			layers = NULL;
		}
	}
	return layers;
}

static int parse_owner(struct tm_manifest *mf, json_t *j, const char *where)
{
	size_t L = json_array_size(j), E = L ? json_array_size(json_array_get(j, 0)) : 0;

	if (!json_is_array(j) || L < 1 || L > 4096 || E < 2 || E > 4096)
		return tm_err(-EINVAL, "%s: expert_owner is not a table of layers of experts", where);
	mf->xowner = malloc(sizeof(*mf->xowner) * L * E);
	if (!mf->xowner)
		return tm_err(-ENOMEM, "out of memory");
	mf->xowner_layers = (int)L;
	mf->xowner_experts = (int)E;
	for (size_t l = 0; l < L; l++) {
		json_t *row = json_array_get(j, l);

		if (!json_is_array(row) || json_array_size(row) != E)
			return tm_err(-EINVAL, "%s: expert_owner[%zu] is not %zu ranks", where, l, E);
		for (size_t e = 0; e < E; e++) {
			json_t *v = json_array_get(row, e);

			if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= 4096)
				return tm_err(-EINVAL, "%s: expert_owner[%zu][%zu] is not a rank", where, l, e);
			mf->xowner[l * E + e] = (int)json_integer_value(v);
		}
	}
	return 0;
}

char *tm_manifest_dump(const struct tm_manifest *mf)
{
	json_t *root, *regions = json_array(), *tensors = json_array();
	char hh[17];
	char *text;

	snprintf(hh, sizeof(hh), "%016" PRIx64, mf->header_hash);
	for (int i = 0; i < mf->n_regions; i++)
		json_array_append_new(regions, region_json(&mf->regions[i]));
	for (size_t i = 0; i < mf->n_tensors; i++)
		json_array_append_new(tensors, tensor_json(&mf->tensors[i]));
	root = json_pack("{s:s, s:i, s:s, s:s, s:s, s:I, s:s, s:{s:I, s:s}, s:f, s:o, s:o}",
			 "format", "tiermem-manifest", "version", TM_MANIFEST_VERSION, "name", mf->name,
			 "hash", mf->hash, "source", mf->source, "source_size", (json_int_t)mf->source_size,
			 "imported", mf->imported, "header", "size", (json_int_t)mf->header_size,
			 "hash", hh, "sec_per_token", mf->sec_per_token, "regions", regions,
			 "tensors", tensors);
	if (root && mf->xowner && json_object_set_new(root, "expert_owner", owner_json(mf))) {
		json_decref(root);
		root = NULL;
	}
	if (!root) {
		tm_err(-ENOMEM, "out of memory for the manifest");
		return NULL;
	}
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		tm_err(-ENOMEM, "out of memory for the manifest");
	return text;
}

static int copy_str(char *dst, size_t n, const char *src, const char *what, const char *where)
{
	if (!src || strlen(src) >= n)
		return tm_err(-EINVAL, "%s: manifest field %s is missing or too long", where, what);
	strcpy(dst, src);
	return 0;
}

static int parse_hex64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || strlen(s) != 16)
		return -1;
	*out = strtoull(s, &end, 16);
	return *end ? -1 : 0;
}

static int parse_region(struct tm_mregion *r, json_t *j, const char *where, int i)
{
	const char *tier = NULL, *kind = NULL, *store = NULL, *loc = NULL;
	json_int_t size = -1, used = -1;
	int node = 0, k;
	double gbps = 0;

	if (json_unpack(j, "{s:s, s:s, s:i, s:F, s:s, s:s, s:I, s:I}", "tier", &tier, "kind", &kind,
			"node", &node, "gbps", &gbps, "store", &store, "location", &loc, "size", &size,
			"used", &used))
		return tm_err(-EINVAL, "%s: region %d is malformed", where, i);
	memset(r, 0, sizeof(*r));
	for (k = 0; k < TM_KIND_COUNT; k++)
		if (!strcmp(kind, kind_names[k]))
			break;
	if (k == TM_KIND_COUNT || (r->store = tm_store_parse(store)) < 0 || size < 0 || used < 0 ||
	    used > size)
		return tm_err(-EINVAL, "%s: region %d has a bad kind, store or size", where, i);
	r->kind = k;
	r->node = node;
	r->gbps = gbps;
	r->size = size;
	r->used = used;
	if (copy_str(r->tier, sizeof(r->tier), tier, "tier", where) ||
	    copy_str(r->loc, sizeof(r->loc), loc, "location", where))
		return -EINVAL;
	return 0;
}

static int parse_tensor(const struct tm_manifest *mf, struct tm_mtensor *t, json_t *j,
			const char *where, size_t i)
{
	const char *name = NULL, *layout = NULL, *hash = NULL;
	json_int_t off = -1, bytes = -1;
	int region = -1, type = -1;

	if (json_unpack(j, "{s:s, s:i, s:I, s:I, s:i, s:s, s:s}", "name", &name, "region", &region,
			"offset", &off, "bytes", &bytes, "type", &type, "layout", &layout,
			"hash", &hash))
		return tm_err(-EINVAL, "%s: tensor %zu is malformed", where, i);
	if (copy_str(t->name, sizeof(t->name), name, "tensor name", where) ||
	    copy_str(t->layout, sizeof(t->layout), layout, "layout", where))
		return -EINVAL;
	if (region < 0 || region >= mf->n_regions || off < 0 || bytes < 0 ||
	    (uint64_t)off + (uint64_t)bytes > mf->regions[region].used || parse_hex64(hash, &t->hash))
		return tm_err(-EINVAL, "%s: tensor %s lies outside its region or has a bad hash", where,
			      t->name);
	t->region = region;
	t->offset = off;
	t->bytes = bytes;
	t->type = type;
	return 0;
}

int tm_manifest_parse(struct tm_manifest *mf, const char *text, size_t len, const char *where)
{
	const char *format = NULL, *name = NULL, *hash = NULL, *source = NULL, *imported = NULL;
	const char *hh = NULL;
	json_int_t ssize = 0, hsize = -1;
	json_t *root, *regions = NULL, *tensors = NULL;
	json_error_t jerr;
	int version = 0, err = -EINVAL;
	double spt = 0;

	memset(mf, 0, sizeof(*mf));
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return tm_err(-EINVAL, "%s: not JSON: %s at line %d", where, jerr.text, jerr.line);
	if (json_unpack(root, "{s:s, s:i, s:s, s:s, s:s, s:I, s:s, s:{s:I, s:s}, s:F, s:o, s:o}",
			"format", &format, "version", &version, "name", &name, "hash", &hash,
			"source", &source, "source_size", &ssize, "imported", &imported, "header",
			"size", &hsize, "hash", &hh, "sec_per_token", &spt, "regions", &regions,
			"tensors", &tensors) ||
	    strcmp(format, "tiermem-manifest") || !json_is_array(regions) || !json_is_array(tensors)) {
		tm_err(-EINVAL, "%s: not a tiermem manifest", where);
		goto out;
	}
	if (version != TM_MANIFEST_VERSION) {
		tm_err(-EINVAL, "%s: manifest version %d; this tiermem reads version %d (import again)",
		       where, version, TM_MANIFEST_VERSION);
		goto out;
	}
	if (copy_str(mf->name, sizeof(mf->name), name, "name", where) ||
	    copy_str(mf->hash, sizeof(mf->hash), hash, "hash", where) ||
	    copy_str(mf->source, sizeof(mf->source), source, "source", where) ||
	    copy_str(mf->imported, sizeof(mf->imported), imported, "imported", where) ||
	    parse_hex64(hh, &mf->header_hash) || hsize <= 0)
		goto bad;
	mf->source_size = ssize;
	mf->header_size = hsize;
	mf->sec_per_token = spt;
	if (json_array_size(regions) < 1 || json_array_size(regions) > TM_PLAN_MAX_TIERS) {
		tm_err(-EINVAL, "%s: %zu regions (1..%d)", where, json_array_size(regions), TM_PLAN_MAX_TIERS);
		goto out;
	}
	mf->n_regions = (int)json_array_size(regions);
	for (int i = 0; i < mf->n_regions; i++)
		if (parse_region(&mf->regions[i], json_array_get(regions, i), where, i))
			goto out;
	mf->n_tensors = json_array_size(tensors);
	mf->tensors = calloc(mf->n_tensors ? mf->n_tensors : 1, sizeof(*mf->tensors));
	if (!mf->tensors) {
		err = tm_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < mf->n_tensors; i++)
		if (parse_tensor(mf, &mf->tensors[i], json_array_get(tensors, i), where, i))
			goto out;
	if (json_object_get(root, "expert_owner") &&
	    (err = parse_owner(mf, json_object_get(root, "expert_owner"), where)))
		goto out;
	err = 0;
	goto out;
bad:
	tm_err(-EINVAL, "%s: a manifest field is missing or malformed", where);
out:
	json_decref(root);
	if (err)
		tm_manifest_free(mf);
	return err;
}

void tm_manifest_free(struct tm_manifest *mf)
{
	free(mf->tensors);
	mf->tensors = NULL;
	mf->n_tensors = 0;
	free(mf->xowner);
	mf->xowner = NULL;
}
