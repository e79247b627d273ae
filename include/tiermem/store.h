/* SPDX-License-Identifier: MIT */
/*
 * The store: models imported once into tier regions (tiermem/region.h) and
 * found again by name. A model is its regions, the source GGUF's header
 * (metadata and tensor table, so a run never opens the GGUF) and a manifest
 * (tensor -> region, offset, layout, content hash) written last: a model
 * without a sealed manifest is never run. Documentation/tiermem-store.rst
 * has the layout on disk and in /dev/tiermem, and the crash semantics.
 *
 * Where the catalog lives: TIERMEM_HOME (default /var/lib/tiermem as root,
 * ~/.local/share/tiermem otherwise) without the module; with the module and
 * PMEM attached, in /dev/tiermem regions (the manifest in one of its own).
 */
#ifndef TIERMEM_STORE_H
#define TIERMEM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tiermem/model.h"
#include "tiermem/plan.h"

/* Model names: 1..40 bytes of [A-Za-z0-9._-], not starting with '.' or '-'. */
#define TM_MODEL_NAME_MAX 41

int tm_model_name_check(const char *name);
/* The userspace catalog's directory (created if missing). */
int tm_store_home(char *buf, size_t n);
/* The same path, not created (for readers: a missing store holds nothing). */
int tm_store_home_path(char *buf, size_t n);

/* One model as `tiermem list` shows it. */
struct tm_store_model {
	char name[TM_MODEL_NAME_MAX];
	char state[64];		/* "sealed", "importing (pid N)", "incomplete: ...", "regions missing: ..." */
	bool usable;		/* run --name will map it */
	uint64_t bytes;		/* tensor bytes */
	char tiers[160];	/* "ddr 1.2 GiB (ddr), pmem 0.8 GiB (file (not persistent memory))" */
	char source[256];
	char hash[33];		/* identity: XXH3-128 of the GGUF's header and tensor data, hex */
	char backend[16];	/* "user" or "module" */
};

/* All models, by name; *out malloc'd. */
int tm_store_list(struct tm_store_model **out, size_t *n);
/* The identity (content hash) of the model stored as name; -ENOENT if there is none. */
int tm_store_model_hash(const char *name, char hash[33]);
/*
 * A model's identity, whichever way it was opened: from the store's manifest
 * when name (what tm_model_open_name was given) is set, since a stored
 * model's GGUF is only its header; else hashed from the GGUF's data.
 */
int tm_model_identity(const struct tm_model *m, const char *name, char hash[33]);
/* Delete a model: its manifest first (so it is never half-trusted), then its regions. */
int tm_store_remove(const char *name);

struct tm_xheat;

struct tm_import_opts {
	const char *name;
	/* placement: a plan file, or tiers (+ overrides) to plan with; neither: the defaults */
	const char *plan_path;
	const struct tm_tier_spec *tiers;
	int n_tiers;
	const struct tm_override *ot;
	int n_ot;
	bool replace;		/* the name may hold other contents: replace them */
	/*
	 * share_ranks > 1: import only what rank share_rank of an
	 * expert-parallel run over share_ranks nodes reads (every tensor but
	 * the routed experts, and of those the ones tm_xassign_make gives
	 * it, packed; Documentation/tiermem-scale.rst).
	 * share_layers: of a pipeline (--split layers) instead: the rank's
	 * layers (tm_plan_stages), with the embedding on the first rank and
	 * the output on the last. share_rows: of an expert-parallel run with
	 * tensor-parallel dense matrices (--split experts,dense): the rank's
	 * experts as above (none for a dense model), and of each matrix that
	 * splits by rows (tm_tp_splits) only the rank's rows (tm_tp_rows).
	 */
	int share_rank, share_ranks;
	bool share_layers, share_rows;
	/*
	 * A share of the experts: the heat (tiermem profile; checked to be
	 * this model's) its assignment balances (tm_xassign_make); NULL:
	 * e % share_ranks. The manifest records the assignment, and a run
	 * with another is refused.
	 */
	const struct tm_xheat *share_heat;
	bool gguf_layout;	/* keep every tensor in the GGUF layout (default: q4_K/q6_K matrices
				 * in the interleaved-row layout, tm_tensor_repacked_type) */
	/* called now and then while copying (and hashing): bytes done of total */
	void (*progress)(void *arg, const char *phase, uint64_t done, uint64_t total);
	void *arg;
};

struct tm_import_result {
	bool unchanged;		/* the same contents were already there under the name */
	char hash[33];
	uint64_t bytes;		/* tensor bytes copied */
	double seconds;		/* copying, flushing, sealing */
	bool module;		/* regions in /dev/tiermem */
	struct tm_plan plan;	/* where each tensor went (tm_plan_free it); a share's tensors only */
	int first, last;	/* a share of the layers: the rank's layers [first, last) */
	int experts, n_expert;	/* a share of the experts: the most of a layer's n_expert it holds */
	int experts_min;	/* ... and the fewest */
	uint64_t assign_hash;	/* ... its assignment's identity (tm_xassign_hash) */
	int row_mats;		/* a share of the rows: matrices stored in part */
	uint64_t row_bytes, row_whole;	/* ... their bytes stored, and whole */
};

/*
 * Import a GGUF. Errors (tm_strerror says which and what to do): -EEXIST
 * for a name holding other contents (without replace) or being imported by
 * a live process; -ENOSPC for a plan that does not fit or a tier that fills
 * up (named, with the bytes missing); -ENODEV for a missing backend (node:N
 * with no such node, pmem with no DAX path); -EINVAL for a bad file. On any
 * error nothing of this import is kept and an earlier model of the name is
 * untouched.
 */
int tm_import(const char *gguf_path, const struct tm_import_opts *o, struct tm_import_result *r);

enum {
	TM_OPEN_NO_VERIFY = 1 << 0,	/* skip the hashes of zero-copy tiers (copied ones are checked) */
};

/*
 * Build a model from the store: maps each sealed region (zero copy for PMEM
 * and file tiers, copied into DDR/node memory for those), checks content
 * hashes, and binds the tensors. -ENOENT for no such model, -EBUSY for one
 * still filling or left incomplete, -EIO for regions missing or a checksum
 * mismatch; the message says what to do.
 */
int tm_model_open_name(struct tm_model *m, const char *name, unsigned int flags);

#endif
