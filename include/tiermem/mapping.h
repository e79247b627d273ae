/* SPDX-License-Identifier: MIT */
/*
 * A mapping is where weights live: a range of virtual memory that one backend
 * owns (a file mapping, anonymous DDR with 4 KiB or 2 MiB pages, a PMEM
 * devdax/fsdax mapping, a /dev/tiermem region). The forward pass only ever
 * sees pointers into mappings, so moving a weight between tiers is a matter of
 * which backend made the mapping, never of the code that reads it.
 */
#ifndef TIERMEM_MAPPING_H
#define TIERMEM_MAPPING_H

#include <stddef.h>
#include <stdint.h>

enum tm_tier {
	TM_TIER_DDR,
	TM_TIER_PMEM,
	TM_TIER_VRAM,
	TM_TIER_FILE,		/* a plain file: the page cache, whatever is beneath it */
	TM_TIER_NODE,		/* anonymous memory bound to a NUMA node (CXL, KMEM PMEM, other socket) */
	TM_TIER_COUNT,
};

enum tm_pages {
	TM_PAGES_4K,		/* anonymous, THP disabled for the range */
	TM_PAGES_THP,		/* anonymous, madvise(MADV_HUGEPAGE), 2 MiB aligned */
	TM_PAGES_HUGETLB,	/* MAP_HUGETLB 2 MiB: needs reserved huge pages */
};

struct tm_mapping {
	void *addr;
	size_t size;
	enum tm_tier tier;
	char backend[32];	/* "anon-4k", "anon-thp", "hugetlb", "file", "devdax", "fsdax", "tiermem" */
	char path[256];		/* source, if any */
	/* an imported model's mapping: the plan's name for its tier and that tier's read GB/s */
	char tier_name[32];
	double gbps;		/* 0: unknown */
	/* private to the backend */
	void *priv;
	void (*release)(struct tm_mapping *m);
	size_t map_size;
	void *map_addr;
};

enum {
	TM_MAP_POPULATE = 1 << 0,	/* fault everything in now */
	TM_MAP_WRITE = 1 << 1,		/* file mappings: writable, shared */
};

/* Map a whole file read-only (or read-write with TM_MAP_WRITE). */
int tm_map_file(struct tm_mapping *m, const char *path, unsigned int flags);
/* Anonymous DDR with the given page kind. */
int tm_map_anon(struct tm_mapping *m, size_t size, enum tm_pages pages, unsigned int flags);
/*
 * Persistent memory by path: a devdax character device (/dev/daxX.Y) or a file
 * on a DAX filesystem. size 0 maps it all. Refuses anything that is not DAX.
 */
int tm_map_pmem(struct tm_mapping *m, const char *path, size_t size, unsigned int flags);
/*
 * Read a whole file into anonymous DDR with the given pages: the userspace DDR
 * tier when no module is loaded (weights then sit on 2 MiB pages instead of
 * the page cache's 4 KiB ones). Shows progress on stderr if it is a terminal.
 */
int tm_map_load(struct tm_mapping *m, const char *path, enum tm_pages pages);
void tm_unmap(struct tm_mapping *m);

/*
 * Fill a writable mapping: on PMEM mapped through libpmem2 its non-temporal
 * copy (nothing lingers in the caches), elsewhere memcpy. tm_mapping_flush
 * then makes everything copied durable (pmem2 drain, or msync of a shared
 * file mapping); anonymous memory has nothing to flush.
 */
void tm_mapping_copy(struct tm_mapping *m, size_t off, const void *src, size_t n);
int tm_mapping_flush(struct tm_mapping *m);

const char *tm_tier_name(enum tm_tier tier);

/*
 * May m be pinned long-term (cudaHostRegister, RDMA registration), so that a
 * device reads it in place? 0, or -EOPNOTSUPP with a one-line reason that
 * offers staging in DDR (lib/tier/pin.c has the rules). kernel: a kernel
 * release as uname -r gives it ("6.1.0-56-amd64"); NULL: the running one.
 */
int tm_mapping_pinnable(const struct tm_mapping *m, const char *kernel);

#endif
