// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem DDR tier: regions built from zeroed 2 MiB compound pages. They are
 * not on any LRU, so they are never swapped, reclaimed or migrated; their
 * count against ddr_max_mb is taken under tm_lock.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "tiermem.h"

u64 tm_ddr_used;
u64 tm_ddr_max;

int tm_ddr_populate(struct tm_region *r)
{
	unsigned long i, n = r->size >> TIERMEM_CHUNK_SHIFT;

	lockdep_assert_held(&tm_lock);
	if (r->size > tm_ddr_max - tm_ddr_used)
		return -ENOSPC;
	r->chunks = kvcalloc(n, sizeof(*r->chunks), GFP_KERNEL);
	if (!r->chunks)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		r->chunks[i] = alloc_pages(GFP_KERNEL | __GFP_COMP | __GFP_ZERO |
					   __GFP_NOWARN | __GFP_RETRY_MAYFAIL,
					   TM_CHUNK_ORDER);
		if (!r->chunks[i])
			break;
		r->nr_chunks++;
		cond_resched();
	}
	if (r->nr_chunks < n) {
		tm_ddr_release(r);
		return -ENOMEM;
	}
	tm_ddr_used += r->size;
	return 0;
}

void tm_ddr_release(struct tm_region *r)
{
	unsigned long i;

	/*
	 * Only the allocation's own reference is dropped here: a chunk still
	 * pinned by someone is freed by the final unpin (compound page).
	 */
	for (i = 0; i < r->nr_chunks; i++)
		__free_pages(r->chunks[i], TM_CHUNK_ORDER);
	if (r->nr_chunks == r->size >> TIERMEM_CHUNK_SHIFT)
		tm_ddr_used -= r->size;
	r->nr_chunks = 0;
	kvfree(r->chunks);
	r->chunks = NULL;
}

bool tm_ddr_idle(const struct tm_region *r)
{
	unsigned long i;

	for (i = 0; i < r->nr_chunks; i++)
		if (page_count(r->chunks[i]) != 1)
			return false;
	return true;
}

u64 tm_ddr_pinned(const struct tm_region *r)
{
	unsigned long i;
	u64 n = 0;

	for (i = 0; i < r->nr_chunks; i++)
		n += head_compound_pincount(r->chunks[i]);
	return n;
}
