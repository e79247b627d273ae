// SPDX-License-Identifier: MIT
/*
 * A model built from the store: its GGUF header parsed header-only, each
 * region mapped (zero copy, or copied into DDR / node memory for those
 * volatile tiers), every tensor's content hash checked, and the weights
 * bound to pointers into the regions. The GGUF file is never opened.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "lib/store/store_internal.h"
#include "tiermem/error.h"
#include "tiermem/model.h"

struct bind_ctx {
	const struct tm_manifest *mf;
	const struct tm_model *m;
};

/* The kernel type of a tensor's stored bytes: its manifest's layout (checked by check_table). */
static int tensor_type(void *arg, const struct tm_gguf_tensor *t)
{
	struct bind_ctx *b = arg;
	const struct tm_mtensor *mt = &b->mf->tensors[t - b->m->gguf.tensors];
	int rank, ranks;
	bool r16;

	/* a share of the rows says its layout in its own */
	if (tm_share_rows_parse(mt->layout, &rank, &ranks, &r16))
		r16 = !strcmp(mt->layout, "r16");
	return r16 ? tm_tensor_repacked_type(t) : (int)t->type;
}

static int find_tensor(void *arg, const struct tm_gguf_tensor *t, const void **data, int *map)
{
	struct bind_ctx *b = arg;
	size_t i = t - b->m->gguf.tensors;
	const struct tm_mtensor *mt = &b->mf->tensors[i];
	int rank, ranks;

	*map = mt->region;
	if (!tm_share_layers_parse(mt->layout, &rank, &ranks)) {
		*data = NULL;	/* another rank's layers: nothing stored here */
		return 1;
	}
	*data = (const char *)b->m->maps[mt->region].addr + mt->offset;
	return 0;
}

/* A share of the rows: the rows stored (the rule's for the share's rank, checked by check_table). */
static bool tensor_rows(void *arg, const struct tm_gguf_tensor *t, int *r0, int *r1)
{
	struct bind_ctx *b = arg;
	const struct tm_mtensor *mt = &b->mf->tensors[t - b->m->gguf.tensors];
	int rank, ranks;

	return !tm_share_rows_parse(mt->layout, &rank, &ranks, NULL) && tm_share_rows(t, rank, ranks, r0, r1);
}

/* Is this share's rank and N those of the others found so far (and not of the layers)? */
static bool same_share(int rank, int ranks, int *share_rank, int *share_ranks, bool layers)
{
	if (layers || (*share_ranks && (rank != *share_rank || ranks != *share_ranks)))
		return false;
	*share_rank = rank;
	*share_ranks = ranks;
	return true;
}

/* The header's tensor table and the manifest must describe the same tensors. */
static int check_table(const struct tm_manifest *mf, const struct tm_gguf *g, int *share_rank, int *share_ranks,
		       bool *layers, bool *rows)
{
	if (g->n_tensors != mf->n_tensors)
		return tm_err(-EIO, "model '%s': its header has %" PRIu64 " tensors, its manifest %zu",
			      mf->name, g->n_tensors, mf->n_tensors);
	for (size_t i = 0; i < mf->n_tensors; i++) {
		const struct tm_gguf_tensor *t = &g->tensors[i];
		const struct tm_mtensor *mt = &mf->tensors[i];

		uint64_t bytes = t->nbytes;
		int rank, ranks, r0, r1;
		bool r16;

		if (!tm_share_parse(mt->layout, &rank, &ranks)) {
			if (!tm_share_applies(t) || !same_share(rank, ranks, share_rank, share_ranks, *layers))
				return tm_err(-EIO, "model '%s': tensor %s holds a share of experts (%s) that does "
					      "not fit the others", mf->name, mt->name, mt->layout);
			if (tm_share_count(mf, t, rank, ranks) < 0)
				return tm_err(-EIO, "model '%s': tensor %s does not fit the share's expert "
					      "assignment (expert_owner: another shape, or a rank not of %d)",
					      mf->name, mt->name, ranks);
			bytes = tm_share_bytes(t, tm_share_count(mf, t, rank, ranks));
		} else if (!tm_share_rows_parse(mt->layout, &rank, &ranks, &r16)) {
			if (!tm_share_rows(t, rank, ranks, &r0, &r1) || (r16 && tm_tensor_repacked_type(t) < 0) ||
			    !same_share(rank, ranks, share_rank, share_ranks, *layers))
				return tm_err(-EIO, "model '%s': tensor %s holds a share of rows (%s) that does "
					      "not fit it or the others", mf->name, mt->name, mt->layout);
			*rows = true;
			bytes = t->nbytes / (uint64_t)t->ne[1] * (uint64_t)(r1 - r0);
		} else if (!tm_share_layers_parse(mt->layout, &rank, &ranks)) {
			if ((*share_ranks && !*layers) || (*layers && (rank != *share_rank || ranks != *share_ranks)))
				return tm_err(-EIO, "model '%s': tensor %s is left to another rank (%s), which does "
					      "not fit the others", mf->name, mt->name, mt->layout);
			*share_rank = rank;
			*share_ranks = ranks;
			*layers = true;
			bytes = 0;
		} else if (!strcmp(mt->layout, "r16")) {
			if (tm_tensor_repacked_type(t) < 0)
				return tm_err(-EIO, "model '%s': tensor %s claims layout r16, which it cannot "
					      "have (type %d): the manifest is corrupted; import it again with "
					      "--replace", mf->name, mt->name, mt->type);
		} else if (strcmp(mt->layout, "gguf")) {
			return tm_err(-EOPNOTSUPP, "model '%s': tensor %s has layout '%s', which this "
				      "tiermem does not read (import it again)", mf->name, mt->name,
				      mt->layout);
		}
		if (!tm_gguf_str_eq(t->name, mt->name) || bytes != mt->bytes || (int)t->type != mt->type)
			return tm_err(-EIO, "model '%s': tensor %zu (%s) differs between its header and its "
				      "manifest", mf->name, i, mt->name);
	}
	if (mf->xowner && (!*share_ranks || *layers))
		return tm_err(-EIO, "model '%s': an expert assignment in a model that is no share of experts",
			      mf->name);
	/* a share holds every routed-expert tensor as a share */
	for (size_t i = 0; i < mf->n_tensors && *share_ranks && !*layers; i++) {
		int rank, ranks;

		if (tm_share_applies(&g->tensors[i]) && tm_share_parse(mf->tensors[i].layout, &rank, &ranks))
			return tm_err(-EIO, "model '%s': tensor %s is whole in a share of experts", mf->name,
				      mf->tensors[i].name);
	}
	return 0;
}

/* A share of the experts: each layer's routed experts of the rank, packed (tm_share_bind). */
static int bind_share(const struct tm_manifest *mf, struct tm_model *m, int rank, int ranks, bool layers,
		      bool rows)
{
	m->share_rank = rank;
	m->share_ranks = ranks;
	m->share_layers = layers;
	m->share_rows = rows;
	return ranks > 1 && !layers && m->hp.moe ? tm_share_bind(mf, m, rank, ranks) : 0;
}

static enum tm_load_to load_to(const struct tm_mregion *r)
{
	switch (r->kind) {
	case TM_KIND_DDR:
		return TM_TO_DDR;
	case TM_KIND_NODE:
		return TM_TO_NODE;
	default:
		return TM_TO_MAP;
	}
}

static int map_regions(struct tm_model *m, const struct tm_manifest *mf)
{
	int err;

	for (int i = 0; i < mf->n_regions; i++) {
		const struct tm_mregion *r = &mf->regions[i];
		struct tm_mapping *map = &m->maps[i];

		err = tm_region_map_at(map, r->store, r->loc, r->used, load_to(r), r->node);
		if (err == -ENOENT || err == -EBUSY || err == -EINVAL) {
			char why[256];

			snprintf(why, sizeof(why), "%s", tm_strerror());
			return tm_err(-EIO, "model '%s': %s (tier '%s'); import it again with --replace, "
				      "or tiermem rm %s", mf->name, why, r->tier, mf->name);
		}
		if (err)
			return tm_err_prefix(err, "model '%s', tier '%s'", mf->name, r->tier);
		m->n_maps = i + 1;
		snprintf(map->tier_name, sizeof(map->tier_name), "%s", r->tier);
		map->gbps = r->gbps;
	}
	return 0;
}

/*
 * Checksums on every CPU: a 500 GB PMEM tier checked by one thread would take
 * minutes; several reach the tier's read bandwidth. Threads take tensors from
 * a shared cursor; the lowest failing index is reported.
 */
struct verify_job {
	const struct tm_model *m;
	const struct tm_manifest *mf;
	unsigned int flags;
	size_t next;		/* atomic cursor */
	size_t bad;		/* lowest failing tensor, or n_tensors */
};

static void *verify_worker(void *arg)
{
	struct verify_job *j = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->mf->n_tensors) {
		const struct tm_mtensor *mt = &j->mf->tensors[i];
		const struct tm_mregion *r = &j->mf->regions[mt->region];
		size_t bad;

		if ((j->flags & TM_OPEN_NO_VERIFY) && load_to(r) == TM_TO_MAP)
			continue;
		if (XXH3_64bits((const char *)j->m->maps[mt->region].addr + mt->offset, mt->bytes) == mt->hash)
			continue;
		bad = __atomic_load_n(&j->bad, __ATOMIC_RELAXED);
		while (i < bad && !__atomic_compare_exchange_n(&j->bad, &bad, i, false, __ATOMIC_RELAXED,
							     __ATOMIC_RELAXED))
			;
	}
	return NULL;
}

static int verify(const struct tm_model *m, const struct tm_manifest *mf, unsigned int flags)
{
	struct verify_job j = { .m = m, .mf = mf, .flags = flags, .bad = mf->n_tensors };
	pthread_t th[64];
	int n = 0, want = 1;
	cpu_set_t set;

	if (!sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) > 1)
		want = CPU_COUNT(&set) < 64 ? CPU_COUNT(&set) : 64;
	while (n < want - 1 && !pthread_create(&th[n], NULL, verify_worker, &j))
		n++;
	verify_worker(&j);
	while (n--)
		pthread_join(th[n], NULL);
	if (j.bad < mf->n_tensors) {
		const struct tm_mtensor *mt = &mf->tensors[j.bad];
		const struct tm_mregion *r = &mf->regions[mt->region];

		return tm_err(-EIO, "model '%s': tensor %s in region %s (tier '%s') fails its "
			      "checksum: the region is corrupted; import it again with --replace, "
			      "or tiermem rm %s", mf->name, mt->name, r->loc, r->tier, mf->name);
	}
	return 0;
}

int tm_model_open_name(struct tm_model *m, const char *name, unsigned int flags)
{
	struct tm_record rec;
	struct bind_ctx b;
	int err, share_rank = 0, share_ranks = 0;
	bool layers = false, rows = false;

	memset(m, 0, sizeof(*m));
	if ((err = tm_record_find(&rec, name, true)))
		return err;
	if (!rec.has_manifest) {
		if (rec.bad[0])
			err = tm_err(-EIO, "model '%s': %s; tiermem rm %s and import it again", name,
				     rec.bad, name);
		else if (rec.importer_pid)
			err = tm_err(-EBUSY, "model '%s' is still being imported (process %d); wait for it "
				     "to finish", name, rec.importer_pid);
		else
			err = tm_err(-EBUSY, "model '%s' is incomplete (its import was interrupted): import "
				     "it again (tiermem import -m FILE --name %s) or tiermem rm %s",
				     name, name, name);
		tm_record_free(&rec);
		return err;
	}
	m->owns_file = true;
	m->header = rec.header;
	rec.header = NULL;
	err = tm_gguf_parse_flags(&m->gguf, m->header, rec.mf.header_size, TM_GGUF_HEADER_ONLY);
	if (err) {
		err = tm_err_prefix(-EIO, "model '%s': its stored GGUF header does not parse", name);
		goto out;
	}
	if ((err = check_table(&rec.mf, &m->gguf, &share_rank, &share_ranks, &layers, &rows)) ||
	    (err = map_regions(m, &rec.mf)) ||
	    (err = verify(m, &rec.mf, flags)))
		goto out;
	b.mf = &rec.mf;
	b.m = m;
	err = tm_model_init_src(m, &m->gguf, &(struct tm_tensor_src){ .find = find_tensor, .type = tensor_type,
									      .rows = tensor_rows, .arg = &b });
	if (!err)
		err = bind_share(&rec.mf, m, share_rank, share_ranks, layers, rows);
out:
	tm_record_free(&rec);
	if (err)
		tm_model_free(m);
	return err;
}
