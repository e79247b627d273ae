/* SPDX-License-Identifier: MIT */
/*
 * Regions of a tier, one API whatever backs them. A region is created with a
 * size, filled, flushed and sealed; from then on it is found again by where
 * it is stored (its "location"), mapped read-only, and deleted. Where its
 * bytes are kept between runs:
 *
 *   TM_STORE_FILE    a file on an ordinary filesystem (the page cache)
 *   TM_STORE_DAX     a file on a DAX filesystem, or a devdax device, filled
 *                    through libpmem2's non-temporal copies
 *   TM_STORE_MODULE  a /dev/tiermem PMEM region (persistent)
 *
 * Filling and sealed mean what they mean in the module's table: a region is
 * trusted only once sealed, and a crash while filling leaves a region that
 * says it is incomplete. A file region is written as LOCATION.filling and
 * renamed to LOCATION (read-only) at seal, after its data is durable; a
 * module region is sealed by the module; a devdax device keeps no state of
 * its own (the manifest that names it is written only after the seal, and
 * its content hashes are checked when it is mapped).
 *
 * How a sealed region is brought into memory for a run (tm_load_to):
 *
 *   TM_TO_MAP        zero copy: the stored bytes are the weights
 *   TM_TO_DDR        copied into anonymous 2 MiB pages (hugetlb when enough
 *                    are reserved, else THP), or, with the module, into a
 *                    /dev/tiermem DDR region that stays loaded for later runs
 *   TM_TO_NODE       copied into anonymous memory bound to NUMA node N
 *
 * DDR and node memory are volatile, so a tier of those kinds is stored in a
 * persistent region and copied at the start of each run (the module's DDR
 * region survives the process, so only the first run after a reboot or an
 * unload copies).
 */
#ifndef TIERMEM_REGION_H
#define TIERMEM_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "tiermem/mapping.h"

enum tm_store {
	TM_STORE_FILE,
	TM_STORE_DAX,
	TM_STORE_MODULE,
};

enum tm_load_to {
	TM_TO_MAP,
	TM_TO_DDR,
	TM_TO_NODE,
};

enum tm_region_state_u {
	TM_RS_MISSING,
	TM_RS_FILLING,
	TM_RS_SEALED,
};

#define TM_LOC_MAX 256

/* A region being filled. */
struct tm_wregion {
	enum tm_store store;
	char loc[TM_LOC_MAX];
	char label[64];		/* the tier's name, for messages */
	uint64_t size;
	struct tm_mapping map;	/* writable */
};

/*
 * Create a region of size bytes (rounded up to 2 MiB) at loc and map it for
 * writing. Space is allocated now, so a tier too small fails here with
 * -ENOSPC and a message naming label and the bytes missing, not later with
 * a SIGBUS. -EEXIST if loc exists.
 */
int tm_wregion_create(struct tm_wregion *r, enum tm_store store, const char *loc,
		      uint64_t size, const char *label);
/* Copy n bytes to offset off (off + n <= size). */
void tm_wregion_write(struct tm_wregion *r, uint64_t off, const void *src, uint64_t n);
/* Make the data durable, seal the region, unmap it. */
int tm_wregion_seal(struct tm_wregion *r);
/* Unmap and delete a region that was not sealed. */
void tm_wregion_abort(struct tm_wregion *r);

/* State of the region at loc; *size gets its size when it exists. */
int tm_region_state_at(enum tm_store store, const char *loc, uint64_t *size);
/* Delete the region at loc (sealed or filling); 0 if it was already gone. */
int tm_region_delete_at(enum tm_store store, const char *loc);

/*
 * Map the sealed region at loc for reading: zero copy (TM_TO_MAP) or copied
 * into volatile memory (TM_TO_DDR, TM_TO_NODE with node). used bytes from
 * the start are copied; the mapping's size is used. -ENOENT when it is
 * missing, -EBUSY when it is still filling.
 */
int tm_region_map_at(struct tm_mapping *m, enum tm_store store, const char *loc, uint64_t used,
		     enum tm_load_to to, int node);

const char *tm_store_name(enum tm_store store);
int tm_store_parse(const char *s);	/* -1 if unknown */

/* NUMA node N exists here: 0, or -ENODEV saying which nodes there are. */
int tm_node_check(int node);

/* Is /dev/tiermem there, with PMEM attached? (TIERMEM_BACKEND=user: never.) */
bool tm_module_usable(void);

#endif
