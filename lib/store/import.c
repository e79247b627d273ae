// SPDX-License-Identifier: MIT
/*
 * tiermem import: a GGUF copied once into tier regions by a plan. Order, so
 * that a kill at any point leaves nothing a run trusts:
 *
 *   1. hash the GGUF (identity: a no-op if the name already holds it);
 *   2. write the import marker (userspace: importing.json with our pid and
 *      every region we will create; module: the manifest region, filling);
 *   3. create every region (all space allocated before a byte is copied, so
 *      a tier too small fails here, naming the tier and the bytes missing);
 *   4. copy the tensors, flush and seal each region;
 *   5. write the manifest (temp + fsync + rename, or seal the manifest region);
 *   6. only then delete a replaced model's regions, and the marker.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/store/store_internal.h"
#include "kernels/pool.h"
#include "tiermem/device.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/gguf.h"
#include "tiermem/model.h"

#define TENSOR_ALIGN 64		/* a cache line; the kernels need the GGUF's 32 at most */
#define CHUNK (8u << 20)	/* bytes copied or hashed between two progress calls */

struct import {
	const struct tm_import_opts *o;
	struct tm_import_result *r;
	struct tm_mapping src;
	struct tm_gguf g;
	struct tm_record old;		/* what the name holds now */
	struct tm_manifest mf;		/* what it will hold */
	struct tm_wregion w[TM_PLAN_MAX_TIERS];
	int tier_region[TM_PLAN_MAX_TIERS];	/* plan tier -> region index, -1 if empty */
	enum { NONE, FILLING, SEALED } state[TM_PLAN_MAX_TIERS];	/* of w[i], made by us */
	struct tm_wregion mregion;	/* module: the manifest region */
	bool have_mregion, have_marker;
	uint64_t total, done;
	uint64_t align;			/* of each tensor in its region */
	int first, last, n_layer;	/* a share of the layers: the rank's [first, last) */
	struct tm_xassign assign;	/* a share of the experts: whose each expert is */
};

static void progress(struct import *im, const char *phase, uint64_t n)
{
	im->done += n;
	if (im->o->progress)
		im->o->progress(im->o->arg, phase, im->done, im->total);
}

static void hex128(XXH128_hash_t h, char out[33])
{
	snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, (uint64_t)h.high64, (uint64_t)h.low64);
}

/* Identity of the GGUF: XXH3-128 over its header and tensor data; XXH3-64 per tensor. */
static int hash_source(struct import *im)
{
	XXH3_state_t *st = XXH3_createState();

	if (!st)
		return tm_err(-ENOMEM, "out of memory");
	XXH3_128bits_reset(st);
	XXH3_128bits_update(st, im->g.base, im->g.data_offset);
	im->done = 0;
	for (size_t i = 0; i < im->mf.n_tensors; i++) {
		const struct tm_gguf_tensor *t = &im->g.tensors[i];
		XXH3_state_t *ts = XXH3_createState();

		if (!ts) {
			XXH3_freeState(st);
			return tm_err(-ENOMEM, "out of memory");
		}
		XXH3_64bits_reset(ts);
		for (uint64_t off = 0; off < t->nbytes; off += CHUNK) {
			uint64_t n = t->nbytes - off < CHUNK ? t->nbytes - off : CHUNK;

			XXH3_128bits_update(st, (const char *)t->data + off, n);
			XXH3_64bits_update(ts, (const char *)t->data + off, n);
			progress(im, "hashing", n);
		}
		im->mf.tensors[i].hash = XXH3_64bits_digest(ts);
		XXH3_freeState(ts);
	}
	hex128(XXH3_128bits_digest(st), im->mf.hash);
	XXH3_freeState(st);
	return 0;
}

static long long mem_available(void)
{
	long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	return pages > 0 && psz > 0 ? (long long)pages * psz : 0;
}

/*
 * Without --tier: DDR up to half the free memory (the module's DDR budget
 * with the module), the rest on the module's PMEM or, without it, on a file
 * in the store, labelled as not persistent memory.
 */
static int default_tiers(struct tm_tier_spec *t, bool module)
{
	char home[TM_LOC_MAX];
	struct statvfs sv;
	struct tm_device dev;

	memset(t, 0, 2 * sizeof(*t));
	snprintf(t[0].name, sizeof(t[0].name), "ddr");
	t[0].kind = TM_KIND_DDR;
	t[0].capacity = mem_available() / 2;
	if (module && !tm_device_open(&dev, NULL)) {
		uint64_t max = dev.version.ddr_max_bytes, used = dev.version.ddr_used_bytes;

		t[0].capacity = max > used ? max - used : 0;
		tm_device_close(&dev);
		snprintf(t[1].name, sizeof(t[1].name), "pmem");
		t[1].kind = TM_KIND_PMEM;
		t[1].capacity = 1ULL << 50;	/* the module says what fits when the region is made */
		return 2;
	}
	snprintf(t[1].name, sizeof(t[1].name), "file");
	t[1].kind = TM_KIND_FILE;
	t[1].capacity = tm_store_home(home, sizeof(home)) || statvfs(home, &sv) ? 0 :
			(uint64_t)sv.f_bavail * sv.f_frsize;
	return 2;
}

static int cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) || CPU_COUNT(&set) < 1)
		return 1;
	return CPU_COUNT(&set);
}

/* The backend a tier needs is here: before anything is measured or written. */
static int check_backend(const struct tm_tier_spec *s, bool module)
{
	struct stat st;

	switch (s->kind) {
	case TM_KIND_VRAM:
	case TM_KIND_PCIE:
		return tm_err(-ENODEV, "tier '%s' is %s: the store keeps host tiers only; import with "
			      "those, then run --gpu (with -ot exps=CPU for the hybrid) fills VRAM", s->name, tm_tier_kind_name(s->kind));
	case TM_KIND_NODE:
		if (tm_node_check(s->node))
			return tm_err_prefix(-ENODEV, "tier '%s'", s->name);
		return 0;
	case TM_KIND_PMEM:
		if (s->path[0] && stat(s->path, &st))
			return tm_err(-ENODEV, "tier '%s': %s: %s", s->name, s->path, strerror(errno));
		if (!s->path[0] && !module)
			return tm_err(-ENODEV, "tier '%s' is pmem but names no DAX path and no tiermem module "
				      "with PMEM is loaded: add ,path=/mnt/pmem (a directory on a DAX "
				      "filesystem) or ,path=/dev/daxX.Y, or use kind file", s->name);
		return 0;
	default:
		return 0;
	}
}

/* Bandwidths nobody gave, measured here and now as tiermem plan does (the plan needs them). */
static int measure_missing(struct tm_tier_spec *t, int n)
{
	struct tm_pool *pool = NULL;
	int err = 0;

	for (int i = 0; i < n && !err; i++) {
		if (t[i].gbps > 0)
			continue;
		if (!pool && !(pool = tm_pool_create(cpus(), TM_POOL_PIN)))
			return tm_err(-ENOMEM, "cannot start threads to measure tier '%s'", t[i].name);
		if ((err = tm_tier_measure(&t[i], pool)))
			tm_err_prefix(err, "measuring tier '%s' (give its bandwidth as @GBPS)", t[i].name);
	}
	tm_pool_destroy(pool);
	return err;
}

/*
 * A share of the experts: the run's assignment (tm_xassign_make, by the heat
 * if given, which must be this model's); the manifest records it unless it
 * is e % N, so shares imported without heat stay as they were.
 */
static int assign_experts(struct import *im, const struct tm_hparams *hp)
{
	const struct tm_xheat *h = im->o->share_heat;
	int err;

	if (h && (err = tm_xheat_check(h, &im->g, im->mf.hash)))
		return tm_err_prefix(err, "--expert-heat");
	if ((err = tm_xassign_make(&im->assign, hp->n_layer, hp->n_expert, im->o->share_ranks, h)))
		return err;
	im->r->experts_min = hp->n_expert;
	for (int l = 0; l < hp->n_layer; l++) {
		int n = tm_xassign_count(&im->assign, l, im->o->share_rank);

		im->r->experts = n > im->r->experts ? n : im->r->experts;
		im->r->experts_min = n < im->r->experts_min ? n : im->r->experts_min;
	}
	im->r->assign_hash = im->assign.hash;
	if (tm_xassign_is_mod(&im->assign))
		return 0;
	im->mf.xowner = malloc(sizeof(*im->mf.xowner) * (size_t)hp->n_layer * hp->n_expert);
	if (!im->mf.xowner)
		return tm_err(-ENOMEM, "out of memory");
	memcpy(im->mf.xowner, im->assign.owner, sizeof(*im->mf.xowner) * (size_t)hp->n_layer * hp->n_expert);
	im->mf.xowner_layers = hp->n_layer;
	im->mf.xowner_experts = hp->n_expert;
	return 0;
}

static int make_plan(struct import *im, bool module)
{
	struct tm_tier_spec tiers[TM_PLAN_MAX_TIERS];
	struct tm_plan_opts po = { .tiers = tiers, .n_tiers = im->o->n_tiers, .ot = im->o->ot,
				   .n_ot = im->o->n_ot, .align = im->align };
	int err;

	/* a share: planned as that node of the cluster, its tensors only (its experts, its stage) */
	if (im->o->share_ranks > 1) {
		po.nodes = im->o->share_ranks;
		po.rank = im->o->share_rank;
		po.split_layers = im->o->share_layers;
		po.assign = im->o->share_layers ? NULL : &im->assign;
		po.tensor_parallel = im->o->share_rows;
	}

	if (im->o->plan_path) {
		if ((err = tm_plan_read_json(&im->r->plan, im->o->plan_path)))
			return err;
		if ((err = tm_plan_match(&im->r->plan, &im->g)))
			return tm_err_prefix(err, "%s is not a plan for this model (make it with tiermem "
					     "plan -m MODEL)", im->o->plan_path);
		for (int i = 0; i < im->r->plan.n_tiers; i++)
			if ((err = check_backend(&im->r->plan.tiers[i], module)))
				return err;
		return 0;
	}
	if (po.n_tiers)
		memcpy(tiers, im->o->tiers, po.n_tiers * sizeof(*tiers));
	else
		po.n_tiers = default_tiers(tiers, module);
	for (int i = 0; i < po.n_tiers; i++)
		if ((err = check_backend(&tiers[i], module)))
			return err;
	if ((err = measure_missing(tiers, po.n_tiers)))
		return err;
	return tm_plan_make(&im->r->plan, &im->g, &po);
}

/* A location, or -ENAMETOOLONG naming the tier. */
static int loc_fmt(struct tm_mregion *r, const char *fmt, ...) TM_PRINTF(2, 3);

static int loc_fmt(struct tm_mregion *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->loc, sizeof(r->loc), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(r->loc) - 16)
		return tm_err(-ENAMETOOLONG, "tier '%s': the path of its region is too long", r->tier);
	return 0;
}

/* Where tier i's region goes, and how it is stored. */
static int region_place(struct import *im, int t, bool module, struct tm_mregion *r)
{
	const struct tm_tier_spec *s = &im->r->plan.tiers[t];
	struct stat st;

	memset(r, 0, sizeof(*r));
	snprintf(r->tier, sizeof(r->tier), "%s", s->name);
	r->kind = s->kind;
	r->node = s->node;
	r->gbps = s->gbps;
	switch (s->kind) {
	case TM_KIND_PMEM:
		if (s->path[0]) {
			if (stat(s->path, &st))
				return tm_err(-ENODEV, "tier '%s': %s: %s", s->name, s->path, strerror(errno));
			r->store = TM_STORE_DAX;
			if (S_ISCHR(st.st_mode))
				return loc_fmt(r, "%s", s->path);
			return loc_fmt(r, "%s/%s-%s-%.12s.tiermem", s->path, im->mf.name, s->name,
				       im->mf.hash);
		}
		break;
	case TM_KIND_FILE:
		r->store = TM_STORE_FILE;
		if (s->path[0])
			return loc_fmt(r, "%s/%s-%s-%.12s.region", s->path, im->mf.name, s->name,
				       im->mf.hash);
		return loc_fmt(r, "%s/%s-%.12s.region", im->old.dir, s->name, im->mf.hash);
	default:
		break;
	}
	/* DDR and node memory are volatile: their bytes persist in the module's PMEM or a file */
	if (module) {
		r->store = TM_STORE_MODULE;
		return loc_fmt(r, "%s.%.8s.r%d", im->mf.name, im->mf.hash, t);
	}
	r->store = TM_STORE_FILE;
	return loc_fmt(r, "%s/%s-%.12s.region", im->old.dir, s->name, im->mf.hash);
}

/* Regions and tensor offsets from the plan. */
static int lay_out(struct import *im, bool module)
{
	const struct tm_plan *p = &im->r->plan;
	uint64_t align = im->align;
	int err;

	for (int t = 0; t < p->n_tiers; t++)
		im->tier_region[t] = -1;
	for (size_t i = 0; i < im->mf.n_tensors; i++) {
		const struct tm_gguf_tensor *gt = &im->g.tensors[i];
		struct tm_mtensor *mt = &im->mf.tensors[i];
		const struct tm_plan_tensor *pt;
		struct tm_mregion *r;
		int t, r0, r1;

		snprintf(mt->name, sizeof(mt->name), "%.*s", (int)gt->name.len, gt->name.ptr);
		mt->type = (int)gt->type;
		pt = tm_plan_find(p, mt->name);
		if (!pt && im->o->share_ranks > 1 && im->o->share_layers &&
		    !tm_share_layers_holds(&im->g, gt, im->first, im->last, im->n_layer)) {
			/* another stage's: no bytes; its region is the first (set below: one exists) */
			mt->region = -1;
			tm_share_layers_layout(mt->layout, im->o->share_rank, im->o->share_ranks);
			continue;
		}
		if (!pt || pt->tier < 0 || pt->tier >= p->n_tiers)
			return tm_err(-EINVAL, "the plan places no tensor %s", mt->name);
		t = pt->tier;
		if (im->tier_region[t] < 0) {
			im->tier_region[t] = im->mf.n_regions++;
			if ((err = region_place(im, t, module, &im->mf.regions[im->tier_region[t]])))
				return err;
		}
		r = &im->mf.regions[im->tier_region[t]];
		mt->region = im->tier_region[t];
		mt->offset = (r->used + align - 1) / align * align;
		mt->bytes = gt->nbytes;
		snprintf(mt->layout, sizeof(mt->layout), "%s",
			 !im->o->gguf_layout && tm_tensor_repacked_type(gt) >= 0 ? "r16" : "gguf");
		if (im->o->share_ranks > 1 && im->o->share_layers) {
			if (!tm_share_layers_holds(&im->g, gt, im->first, im->last, im->n_layer))
				return tm_err(-EINVAL, "the stage's plan places %s, which the stage does not hold",
					      mt->name);
		} else if (im->o->share_ranks > 1 && tm_share_applies(gt)) {	/* a share keeps the GGUF layout */
			int count = tm_share_count(&im->mf, gt, im->o->share_rank, im->o->share_ranks);

			if (count < 0)
				return tm_err(-EINVAL, "tensor %s does not fit the expert assignment", mt->name);
			mt->bytes = tm_share_bytes(gt, count);
			tm_share_layout(mt->layout, im->o->share_rank, im->o->share_ranks);
		} else if (im->o->share_rows && tm_share_rows(gt, im->o->share_rank, im->o->share_ranks, &r0, &r1)) {
			/* its rows, in the layout the whole tensor would have */
			mt->bytes = gt->nbytes / (uint64_t)gt->ne[1] * (uint64_t)(r1 - r0);
			tm_share_rows_layout(mt->layout, im->o->share_rank, im->o->share_ranks, !strcmp(mt->layout, "r16"));
			im->r->row_mats++;
			im->r->row_bytes += mt->bytes;
			im->r->row_whole += gt->nbytes;
		}
		r->used = mt->offset + mt->bytes;
	}
	if (!im->mf.n_regions)
		return tm_err(-EINVAL, "the plan places no tensor");
	for (size_t i = 0; i < im->mf.n_tensors; i++)
		if (im->mf.tensors[i].region < 0)
			im->mf.tensors[i].region = 0;
	for (int i = 0; i < im->mf.n_regions; i++)
		im->mf.regions[i].size = im->mf.regions[i].used;
	return 0;
}

static int write_marker(struct import *im)
{
	json_t *j, *regions = json_array();
	char *text;
	int err;

	for (int i = 0; i < im->mf.n_regions; i++)
		json_array_append_new(regions, json_pack("{s:s, s:s}", "store",
			tm_store_name(im->mf.regions[i].store), "location", im->mf.regions[i].loc));
	j = json_pack("{s:i, s:s, s:s, s:o}", "pid", (int)getpid(), "source", im->mf.source,
		      "hash", im->mf.hash, "regions", regions);
	text = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
	json_decref(j);
	if (!text)
		return tm_err(-ENOMEM, "out of memory");
	err = tm_write_atomic(im->old.dir, "importing.json", text, strlen(text));
	free(text);
	if (!err)
		im->have_marker = true;
	return err;
}

static int create_manifest_region(struct import *im)
{
	char loc[64];
	uint64_t size = 64 + im->g.data_offset + 65536 + 400 * (uint64_t)im->mf.n_tensors;
	int err;

	/* name is at most 40 bytes: this fits */
	snprintf(loc, sizeof(loc), "%.40s.m%.8s", im->mf.name, im->mf.hash);
	memcpy(im->old.mregion, loc, sizeof(loc));
	err = tm_wregion_create(&im->mregion, TM_STORE_MODULE, loc, size, "manifest");
	if (err)
		return err;
	tm_unmap(&im->mregion.map);	/* filled last, by tm_record_commit */
	im->have_mregion = true;
	return 0;
}

/*
 * The crash tests' hook: TIERMEM_TEST_STALL=N stops the copy once N bytes
 * are in, says so on stderr, and waits to be killed (kill -9 on the host,
 * QEMU killed in the VM), so the kill lands mid-import every time.
 */
static void test_stall(uint64_t done)
{
	static long long at = -2;

	if (at == -2) {
		const char *e = getenv("TIERMEM_TEST_STALL");

		at = e ? atoll(e) : -1;
	}
	if (at < 0 || done < (uint64_t)at)
		return;
	fprintf(stderr, "TIERMEM-IMPORT-STALLED at %" PRIu64 " bytes (TIERMEM_TEST_STALL)\n", done);
	fflush(stderr);
	for (;;)
		pause();
}

/* bytes from src to the tensor's region at at, into the hash (if there is a state). */
static void copy_span(struct import *im, const struct tm_mtensor *mt, uint64_t at, const char *src, uint64_t bytes,
		      XXH3_state_t *st)
{
	for (uint64_t off = 0; off < bytes; off += CHUNK) {
		uint64_t n = bytes - off < CHUNK ? bytes - off : CHUNK;

		tm_wregion_write(&im->w[mt->region], at + off, src + off, n);
		if (st)
			XXH3_64bits_update(st, src + off, n);
		progress(im, "copying", n);
	}
}

/*
 * A share: its experts one matrix at a time, packed, or its rows of a dense
 * matrix; its hash is of what the region holds.
 */
static void copy_share(struct import *im, size_t i)
{
	const struct tm_gguf_tensor *gt = &im->g.tensors[i];
	struct tm_mtensor *mt = &im->mf.tensors[i];
	int R = im->o->share_rank, N = im->o->share_ranks, rank, ranks, r0, r1;
	XXH3_state_t *st = XXH3_createState();

	if (st)
		XXH3_64bits_reset(st);
	if (!tm_share_rows_parse(mt->layout, &rank, &ranks, NULL) && tm_share_rows(gt, R, N, &r0, &r1)) {
		uint64_t row = gt->nbytes / (uint64_t)gt->ne[1];

		copy_span(im, mt, mt->offset, (const char *)gt->data + row * (uint64_t)r0, mt->bytes, st);
	} else {
		uint64_t mat = gt->nbytes / (uint64_t)gt->ne[2], at = mt->offset;

		for (int64_t e = 0; e < gt->ne[2]; e++) {
			if (!tm_share_holds(&im->mf, tm_share_layer(gt), (int)e, R, N))
				continue;
			copy_span(im, mt, at, (const char *)gt->data + (uint64_t)e * mat, mat, st);
			at += mat;
		}
	}
	/* without a hash state (out of memory) the region fails its check at open: never trusted */
	mt->hash = st ? XXH3_64bits_digest(st) : ~mt->hash;
	XXH3_freeState(st);
}

/*
 * A tensor in the interleaved-row layout: whole groups of rows repacked in a
 * buffer, then written; each matrix's tail rows as they are. mats matrices
 * of mat bytes from byte from of the tensor (a share of the rows: one, its
 * rows, which start on a group). Its hash is over the bytes stored, so a run
 * checks what it reads.
 */
static int copy_repacked(struct import *im, struct tm_mtensor *mt, const struct tm_gguf_tensor *t, uint64_t from,
			 size_t mat, int64_t mats)
{
	size_t rb = tm_row_bytes((int)t->type, t->ne[0]);
	size_t step = CHUNK / (TM_REPACK_ROWS * rb) * TM_REPACK_ROWS * rb;
	XXH3_state_t *st = XXH3_createState();
	uint64_t off = 0;
	int err = 0;
	char *buf;

	step = step ? step : TM_REPACK_ROWS * rb;	/* a chunk, or one group if that is larger */
	buf = malloc(step);
	if (!st || !buf) {
		XXH3_freeState(st);
		free(buf);
		return tm_err(-ENOMEM, "out of memory");
	}
	XXH3_64bits_reset(st);
	for (int64_t e = 0; e < mats && !err; e++)
		for (size_t m = 0; m < mat && !err; m += step) {
			size_t n = mat - m < step ? mat - m : step;

			memcpy(buf, (const char *)t->data + from + off, n);
			if ((err = tm_repack((int)t->type, buf, (int)(n / rb), (int)t->ne[0])))
				err = tm_err(err, "tensor %s: repacking failed", mt->name);
			tm_wregion_write(&im->w[mt->region], mt->offset + off, buf, n);
			XXH3_64bits_update(st, buf, n);
			off += n;
			progress(im, "copying", n);
			test_stall(im->done);
		}
	mt->hash = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	free(buf);
	return err;
}

static int copy_tensors(struct import *im)
{
	int err;

	im->done = 0;
	for (size_t i = 0; i < im->mf.n_tensors; i++) {
		struct tm_mtensor *mt = &im->mf.tensors[i];
		const struct tm_gguf_tensor *gt = &im->g.tensors[i];
		const char *src = gt->data;
		size_t rb = tm_row_bytes((int)gt->type, gt->ne[0]);	/* of one row of one matrix */
		int rank, ranks, r0, r1;
		bool r16;

		if (!strcmp(mt->layout, "r16")) {
			if ((err = copy_repacked(im, mt, gt, 0, rb * (size_t)gt->ne[1], gt->ne[2] * gt->ne[3])))
				return err;
			continue;
		}
		if (!tm_share_rows_parse(mt->layout, &rank, &ranks, &r16) && r16 &&
		    tm_share_rows(gt, rank, ranks, &r0, &r1)) {
			if ((err = copy_repacked(im, mt, gt, rb * (uint64_t)r0, rb * (size_t)(r1 - r0), 1)))
				return err;
			continue;
		}
		if (!tm_share_layers_parse(mt->layout, &rank, &ranks)) {
			mt->hash = XXH3_64bits("", 0);	/* another rank's: nothing stored */
			continue;
		}
		if (strcmp(mt->layout, "gguf")) {
			copy_share(im, i);
			continue;
		}
		for (uint64_t off = 0; off < mt->bytes; off += CHUNK) {
			uint64_t n = mt->bytes - off < CHUNK ? mt->bytes - off : CHUNK;

			tm_wregion_write(&im->w[mt->region], mt->offset + off, src + off, n);
			progress(im, "copying", n);
			test_stall(im->done);
		}
	}
	for (int i = 0; i < im->mf.n_regions; i++) {
		if ((err = tm_wregion_seal(&im->w[i])))
			return err;
		im->state[i] = SEALED;
	}
	return 0;
}

/* Do two manifests record the same expert assignment (none: e % N)? */
static bool same_owner(const struct tm_manifest *a, const struct tm_manifest *b)
{
	if (!a->xowner || !b->xowner)
		return !a->xowner && !b->xowner;
	return a->xowner_layers == b->xowner_layers && a->xowner_experts == b->xowner_experts &&
	       !memcmp(a->xowner, b->xowner, sizeof(*a->xowner) * (size_t)a->xowner_layers * a->xowner_experts);
}

/*
 * A stored model's share: "rows R/N" (its experts too, if it has any),
 * "experts R/N", "layers R/N", or "" for the whole model.
 */
static void share_of(const struct tm_manifest *mf, char out[TM_LAYOUT_MAX])
{
	int rank, ranks;

	out[0] = '\0';
	for (size_t i = 0; i < mf->n_tensors; i++)
		if (!tm_share_rows_parse(mf->tensors[i].layout, &rank, &ranks, NULL))
			tm_share_rows_layout(out, rank, ranks, false);
		else if (!out[0] && (!tm_share_parse(mf->tensors[i].layout, &rank, &ranks) ||
				     !tm_share_layers_parse(mf->tensors[i].layout, &rank, &ranks)))
			snprintf(out, TM_LAYOUT_MAX, "%s", mf->tensors[i].layout);
}

static void unlink_marker(const char *dir)
{
	char path[TM_LOC_MAX + 32];

	snprintf(path, sizeof(path), "%s/importing.json", dir);
	unlink(path);
}

static void abort_import(struct import *im)
{
	for (int i = 0; i < im->mf.n_regions; i++) {
		if (im->state[i] == FILLING)
			tm_wregion_abort(&im->w[i]);
		else if (im->state[i] == SEALED)	/* no manifest names it */
			tm_region_delete_at(im->mf.regions[i].store, im->mf.regions[i].loc);
	}
	if (im->have_mregion)
		tm_region_delete_at(TM_STORE_MODULE, im->mregion.loc);
	if (im->have_marker)
		unlink_marker(im->old.dir);
	if (!im->old.has_manifest)
		rmdir(im->old.dir);
}

/* What the name holds now decides: a no-op, a refusal, or room to import. */
static int check_old(struct import *im, bool *unchanged)
{
	struct tm_record *old = &im->old;
	int err;

	*unchanged = false;
	err = tm_record_find(old, im->mf.name, false);
	if (err == -ENOENT) {
		tm_clear_error();
		memset(old, 0, sizeof(*old));
		return tm_model_dir(old->dir, sizeof(old->dir), im->mf.name);
	}
	if (err)
		return err;
	if (old->importer_pid)
		return tm_err(-EEXIST, "model '%s' is being imported by process %d; wait for it to finish",
			      im->mf.name, old->importer_pid);
	if (old->importing) {
		/* an import that died: nothing of it was trusted; clear it away */
		tm_record_cleanup(im->mf.name, old);
		unlink_marker(old->dir);
		old->importing = false;
	}
	if (!old->has_manifest)
		return 0;
	if (!strcmp(old->mf.hash, im->mf.hash)) {
		char was[TM_LAYOUT_MAX], will[TM_LAYOUT_MAX];
		uint64_t size;

		share_of(&old->mf, was);
		will[0] = '\0';
		if (im->o->share_ranks > 1 && im->o->share_layers)
			tm_share_layers_layout(will, im->o->share_rank, im->o->share_ranks);
		else if (im->o->share_ranks > 1 && im->o->share_rows)
			tm_share_rows_layout(will, im->o->share_rank, im->o->share_ranks, false);
		else if (im->o->share_ranks > 1)
			tm_share_layout(will, im->o->share_rank, im->o->share_ranks);
		if (strcmp(was, will) || !same_owner(&old->mf, &im->mf)) {
			if (!im->o->replace)
				return tm_err(-EEXIST, "model '%s' holds this model as another share (%s%s); give "
					      "--replace to replace it, or another --name", im->mf.name,
					      was[0] ? was : "whole", strcmp(was, will) ? "" : ", another expert assignment");
			goto broken;
		}
		if (im->o->replace)
			goto broken;	/* asked for: a region may be corrupted in place */
		for (int i = 0; i < old->mf.n_regions; i++)
			if (tm_region_state_at(old->mf.regions[i].store, old->mf.regions[i].loc, &size) !=
			    TM_RS_SEALED)
				goto broken;
		*unchanged = true;
		return 0;
broken:
		/* the same contents, regions gone or --replace: copy again into the same places */
		tm_manifest_delete_data(&old->mf, NULL);
		return 0;
	}
	if (!im->o->replace)
		return tm_err(-EEXIST, "model '%s' already holds other contents (hash %.12s, from %s); "
			      "give --replace to replace it, or another --name", im->mf.name,
			      old->mf.hash, old->mf.source);
	return 0;
}

static void now_utc(char *buf, size_t n)
{
	struct timespec ts;
	struct tm tmv;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tmv);
	/* nanoseconds, so two imports within a second still order */
	strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tmv);
	snprintf(buf + strlen(buf), n - strlen(buf), ".%09ldZ", ts.tv_nsec % 1000000000L);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_import(struct import *im, const char *path)
{
	struct tm_model check;
	bool module = tm_module_usable(), unchanged;
	double t0;
	int err;

	if ((err = tm_map_file(&im->src, path, 0)))
		return err;
	madvise(im->src.addr, im->src.size, MADV_SEQUENTIAL);
	if ((err = tm_gguf_parse(&im->g, im->src.addr, im->src.size)))
		return err;
	/* refuse now what a run would refuse later */
	if ((err = tm_model_init(&check, &im->g)))
		return err;
	free(check.layers);
	if (im->o->share_ranks > 1 && !im->o->share_layers && !im->o->share_rows && !check.hp.moe)
		return tm_err(-EINVAL, "--split experts: %s has no routed experts to split", path);
	if (im->o->share_ranks > 1 && !im->o->share_layers)
		im->r->n_expert = check.hp.n_expert;
	else if (im->o->share_heat)
		return tm_err(-EINVAL, "--expert-heat assigns experts to ranks: it needs --split experts");
	if (im->o->share_ranks > 1 && im->o->share_layers) {
		int first[4097];

		/* the stages every rank of the run computes from the same model */
		if ((err = tm_plan_stages(&im->g, check.hp.n_layer, im->o->share_ranks, first)))
			return tm_err_prefix(err, "--split layers");
		im->first = first[im->o->share_rank];
		im->last = first[im->o->share_rank + 1];
		im->n_layer = check.hp.n_layer;
		im->r->first = im->first;
		im->r->last = im->last;
	}
	if (!realpath(path, im->mf.source))
		snprintf(im->mf.source, sizeof(im->mf.source), "%s", path);
	im->mf.source_size = im->src.size;
	im->align = im->g.alignment > TENSOR_ALIGN ? im->g.alignment : TENSOR_ALIGN;
	im->mf.header_size = im->g.data_offset;
	im->mf.header_hash = XXH3_64bits(im->g.base, im->g.data_offset);
	im->mf.n_tensors = im->g.n_tensors;
	im->mf.tensors = calloc(im->g.n_tensors ? im->g.n_tensors : 1, sizeof(*im->mf.tensors));
	if (!im->mf.tensors)
		return tm_err(-ENOMEM, "out of memory");
	for (uint64_t i = 0; i < im->g.n_tensors; i++)
		im->total += im->g.tensors[i].nbytes;
	if ((err = hash_source(im)))
		return err;
	snprintf(im->r->hash, sizeof(im->r->hash), "%s", im->mf.hash);
	im->r->module = module;
	if (im->o->share_ranks > 1 && !im->o->share_layers && check.hp.moe && (err = assign_experts(im, &check.hp)))
		return err;
	if ((err = check_old(im, &unchanged)))
		return err;
	if (unchanged) {
		im->r->unchanged = true;
		return 0;
	}
	if ((err = make_plan(im, module)))
		return err;
	if ((err = lay_out(im, module)))
		return err;
	im->mf.sec_per_token = im->r->plan.sec_per_token;
	now_utc(im->mf.imported, sizeof(im->mf.imported));
	im->old.module = module;

	t0 = now_s();
	if ((err = tm_mkdirs(im->old.dir)))
		return tm_err(err, "%s: %s", im->old.dir, strerror(-err));
	if ((err = write_marker(im)))
		return err;
	if (module && (err = create_manifest_region(im)))
		return err;
	for (int i = 0; i < im->mf.n_regions; i++) {
		struct tm_mregion *r = &im->mf.regions[i];

		if ((err = tm_wregion_create(&im->w[i], r->store, r->loc, r->used, r->tier)))
			return err;
		r->size = im->w[i].size;
		im->state[i] = FILLING;
	}
	if ((err = copy_tensors(im)))
		return err;
	{
		struct tm_record rec = im->old;

		rec.mf = im->mf;
		if ((err = tm_record_commit(&rec, im->g.base, im->g.data_offset)))
			return err;
	}
	/* committed: the old contents (a --replace) are no longer named by anything */
	if (im->old.has_manifest && strcmp(im->old.mf.hash, im->mf.hash))
		tm_manifest_delete_data(&im->old.mf, im->old.dir);
	{
		struct tm_record keep = im->old;

		keep.mf = im->mf;
		keep.has_manifest = true;
		memcpy(keep.mregion, im->old.mregion, sizeof(keep.mregion));
		tm_record_cleanup(im->mf.name, &keep);
	}
	im->have_mregion = false;
	im->r->seconds = now_s() - t0;
	im->r->bytes = 0;
	for (size_t i = 0; i < im->mf.n_tensors; i++)
		im->r->bytes += im->mf.tensors[i].bytes;
	unlink_marker(im->old.dir);
	return 0;
}

int tm_import(const char *gguf_path, const struct tm_import_opts *o, struct tm_import_result *r)
{
	struct import *im;
	int err;

	memset(r, 0, sizeof(*r));
	if ((err = tm_model_name_check(o->name)))
		return err;
	if (o->share_rows && o->share_layers)
		return tm_err(-EINVAL, "a share is of the layers or of the experts and rows, not both");
	if (o->share_ranks > 1 && (o->share_rank < 0 || o->share_rank >= o->share_ranks || o->share_ranks > 4096))
		return tm_err(-EINVAL, "--rank %d --ranks %d: want 0 <= rank < ranks <= 4096", o->share_rank,
			      o->share_ranks);
	if (o->share_ranks > 1 && o->plan_path)
		return tm_err(-EINVAL, "--split with --plan: a plan file places the whole model; give --tier "
			      "to plan the share");
	im = calloc(1, sizeof(*im));
	if (!im)
		return tm_err(-ENOMEM, "out of memory");
	im->o = o;
	im->r = r;
	snprintf(im->mf.name, sizeof(im->mf.name), "%s", o->name);
	err = run_import(im, gguf_path);
	if (err) {
		char why[512];

		/* the clean-up may record reasons of its own; the user needs the first */
		snprintf(why, sizeof(why), "%s", tm_strerror());
		abort_import(im);
		tm_err(err, "%s", why);
	}
	tm_record_free(&im->old);
	tm_manifest_free(&im->mf);
	tm_xassign_free(&im->assign);
	tm_gguf_free(&im->g);
	tm_unmap(&im->src);
	free(im);
	return err;
}
