/* SPDX-License-Identifier: MIT */
/* What lib/store's files share: the manifest in memory and the catalog's records. */
#ifndef TIERMEM_STORE_INTERNAL_H
#define TIERMEM_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tiermem/plan.h"
#include "tiermem/region.h"
#include "tiermem/store.h"

#define TM_MANIFEST_VERSION 1

/* One region of a model: a tier of the plan. */
struct tm_mregion {
	char tier[TM_TIER_NAME_MAX];	/* the plan's name for the tier */
	enum tm_tier_kind kind;
	int node;
	double gbps;
	enum tm_store store;		/* where its bytes persist */
	char loc[TM_LOC_MAX];
	uint64_t size;			/* allocated */
	uint64_t used;			/* filled from the start */
};

#define TM_LAYOUT_MAX 24	/* "r16 rows 4095/4096" and its NUL fit */

struct tm_mtensor {
	char name[64];
	int region;
	uint64_t offset, bytes;
	int type;
	/* "gguf": the GGUF's own bytes; "r16": interleaved rows (kernels.h); a share's (below) */
	char layout[TM_LAYOUT_MAX];
	uint64_t hash;		/* XXH3-64 of its bytes */
};

struct tm_manifest {
	char name[TM_MODEL_NAME_MAX];
	char hash[33];
	char source[256];
	uint64_t source_size;
	char imported[32];	/* UTC, ISO 8601 */
	uint64_t header_size, header_hash;
	double sec_per_token;	/* the plan's prediction */
	int n_regions;
	struct tm_mregion regions[TM_PLAN_MAX_TIERS];
	size_t n_tensors;
	struct tm_mtensor *tensors;
	/*
	 * A share of the experts imported with --expert-heat: the assignment
	 * (tm_xassign_make's owner table, xowner_layers x xowner_experts).
	 * NULL: e % N, as every share before heat-aware splits.
	 */
	int *xowner;
	int xowner_layers, xowner_experts;
};

/* JSON text (malloc'd, NUL-terminated), or NULL with a message. */
char *tm_manifest_dump(const struct tm_manifest *mf);
/* Parse and check a manifest; where names it in messages. */
int tm_manifest_parse(struct tm_manifest *mf, const char *json, size_t len, const char *where);
void tm_manifest_free(struct tm_manifest *mf);

/* A model as found in the catalog, with what a run needs from it. */
struct tm_record {
	bool module;			/* the manifest is a /dev/tiermem region */
	char dir[TM_LOC_MAX];		/* userspace: models/NAME */
	char mregion[64];		/* module: the manifest region's name */
	bool has_manifest;		/* sealed manifest found */
	bool importing;			/* an import marker or a filling manifest region */
	int importer_pid;		/* > 0 when that import's process is alive */
	char bad[256];			/* why the manifest found is not trusted */
	struct tm_manifest mf;
	void *header;			/* the GGUF header, malloc'd (only from tm_record_load) */
};

/* Find a model (-ENOENT); with header, read and check the GGUF header too. */
int tm_record_find(struct tm_record *rec, const char *name, bool header);
void tm_record_free(struct tm_record *rec);

/* The userspace model directory of name. */
int tm_model_dir(char *buf, size_t n, const char *name);

/* Write the manifest last and atomically; the model is sealed once this returns 0. */
int tm_record_commit(struct tm_record *rec, const void *header, size_t header_len);
/* mkdir -p; 0 or a negative errno. */
int tm_mkdirs(char *path);
/* dir/file written whole through a temporary, fsync'd, renamed; the directory fsync'd. */
int tm_write_atomic(const char *dir, const char *file, const void *p, size_t n);
/* Remove what an interrupted import left, keeping the sealed model rec holds, if any. */
void tm_record_cleanup(const char *name, const struct tm_record *rec);
/* Delete a model's regions and header (not the manifest). */
void tm_manifest_delete_data(const struct tm_manifest *mf, const char *dir);

/*
 * A rank's share of the routed experts (tiermem import --split experts
 * --rank R --ranks N [--expert-heat FILE]): each routed-expert tensor holds
 * only rank R's matrices (tm_xassign_make; the manifest's xowner, or
 * e % N), packed in order, under the layout "experts R/N"; every other
 * tensor is whole ("gguf").
 */
bool tm_share_applies(const struct tm_gguf_tensor *t);
/* The N of t's "blk.N.", or -1. */
int tm_share_layer(const struct tm_gguf_tensor *t);
/* Bytes of t's share holding count of its matrices. */
uint64_t tm_share_bytes(const struct tm_gguf_tensor *t, int count);
/* Does rank hold expert e of layer l by mf's assignment? (l, e inside it: tm_share_count checks) */
bool tm_share_holds(const struct tm_manifest *mf, int l, int e, int rank, int ranks);
/* How many of t's experts rank holds by mf's assignment; -EINVAL when t does not fit it (or it names no rank of ranks). */
int tm_share_count(const struct tm_manifest *mf, const struct tm_gguf_tensor *t, int rank, int ranks);
/*
 * m is rank of ranks' share by mf's assignment: m->share_at and
 * share_hash, and the expert weights' mat_at. -ENOMEM, -EIO (an assignment
 * of another shape than the model).
 */
struct tm_model;
int tm_share_bind(const struct tm_manifest *mf, struct tm_model *m, int rank, int ranks);
void tm_share_layout(char out[TM_LAYOUT_MAX], int rank, int ranks);
/* "experts R/N" -> rank, ranks (0 < N, 0 <= R < N); -EINVAL for anything else. */
int tm_share_parse(const char *layout, int *rank, int *ranks);

/*
 * A rank's share of the layers (tiermem import --split layers --rank R
 * --ranks N): the tensors of its layers [first, last) (tm_plan_stages) as
 * tm_stage_holds says, the plan's own rule; the others are stored with no
 * bytes under the layout "layers R/N".
 */
bool tm_share_layers_holds(const struct tm_gguf *g, const struct tm_gguf_tensor *t, int first, int last,
			   int n_layer);
void tm_share_layers_layout(char out[TM_LAYOUT_MAX], int rank, int ranks);
int tm_share_layers_parse(const char *layout, int *rank, int *ranks);

/*
 * A rank's share of the dense matrices' rows too (tiermem import --split
 * experts,dense --rank R --ranks N): besides its experts (as above), each
 * matrix tensor parallel splits (tm_tp_splits) holds only the rank's rows
 * (tm_tp_rows), under the layout "rows R/N"; the rest is whole.
 */
bool tm_share_rows(const struct tm_gguf_tensor *t, int rank, int ranks, int *r0, int *r1);
/* "rows R/N", or with r16 "r16 rows R/N": the rows in the interleaved-row layout (tm_tensor_repacked_type) */
void tm_share_rows_layout(char out[TM_LAYOUT_MAX], int rank, int ranks, bool r16);
/* Either -> rank, ranks, and *r16 (NULL: not wanted); -EINVAL for anything else. */
int tm_share_rows_parse(const char *layout, int *rank, int *ranks, bool *r16);

#endif
