// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem DDR tier: regions built from zeroed 2 MiB compound pages. They are
 * not on any LRU, so they are never swapped, reclaimed or migrated; their
 * count against ddr_max_mb is taken under tm_lock, before they are
 * allocated outside it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "tiermem.h"

u64 tm_ddr_used;
u64 tm_ddr_max;

/* Counts @r against ddr_max_mb before its memory is allocated. */
int tm_ddr_reserve(struct tm_region *r)
{
	lockdep_assert_held(&tm_lock);
	if (r->size > tm_ddr_max - tm_ddr_used)
		return -ENOSPC;
	tm_ddr_used += r->size;
	r->ddr_accounted = true;
	return 0;
}

/* A zeroed 2 MiB chunk, charged to the caller's memory cgroup. */
static struct page *tm_ddr_chunk(int node)
{
	gfp_t gfp = GFP_KERNEL | __GFP_COMP | __GFP_ZERO | __GFP_ACCOUNT |
		    __GFP_NOWARN | __GFP_RETRY_MAYFAIL;

	if (node == NUMA_NO_NODE)
		return alloc_pages(gfp, TM_CHUNK_ORDER);
	return alloc_pages_node(node, gfp | __GFP_THISNODE, TM_CHUNK_ORDER);
}

/*
 * Outside tm_lock: allocating and zeroing gigabytes takes a while. The
 * chunks are charged to the caller's memory cgroup (__GFP_ACCOUNT), and a
 * fatal signal stops the work (-EINTR).
 */
int tm_ddr_populate(struct tm_region *r)
{
	unsigned long i, n = r->size >> TIERMEM_CHUNK_SHIFT;

	r->chunks = kvcalloc(n, sizeof(*r->chunks), GFP_KERNEL);
	if (!r->chunks)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (fatal_signal_pending(current))
			return -EINTR;
		r->chunks[i] = tm_ddr_chunk(r->numa_node);
		if (!r->chunks[i])
			return -ENOMEM;
		r->nr_chunks++;
		cond_resched();
	}
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
	if (r->ddr_accounted)
		tm_ddr_used -= r->size;
	r->ddr_accounted = false;
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
