/* SPDX-License-Identifier: GPL-2.0 */
/* tiermem: internal declarations shared by the module's files. */
#ifndef TIERMEM_INTERNAL_H
#define TIERMEM_INTERNAL_H

#include <linux/atomic.h>
#include <linux/bits.h>
#include <linux/kobject.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/pfn_t.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/tiermem.h>

#define TM_CHUNK_ORDER		(TIERMEM_CHUNK_SHIFT - PAGE_SHIFT)
#define TM_CHUNK_PAGES		BIT(TM_CHUNK_ORDER)

/*
 * Fake mmap offsets: region id N owns [N << 40, (N + 1) << 40). Its data
 * starts at the base, its counters page sits at base + TM_CTR_REL. The base
 * is 1 GiB aligned, so thp_get_unmapped_area() aligns addresses to 2 MiB.
 */
#define TM_OFF_SHIFT		40
#define TM_CTR_REL		BIT_ULL(39)
#define TM_REGION_MAX_SIZE	TM_CTR_REL
#define TM_MAX_ID		((1ULL << (63 - TM_OFF_SHIFT)) - 1)

struct tm_pmem;
struct tm_region_kobj;
struct dma_buf;

/* One set per region and one per tier. */
struct tm_stat {
	atomic64_t faults_pte;
	atomic64_t faults_pmd;
	atomic64_t faults_pud;
	atomic64_t bytes_mapped;
	atomic64_t live_mappings;
	atomic64_t bytes_copied;
	atomic64_t media_errors;
	atomic64_t exports;
};

/*
 * A region lives while anything refers to it: the registry (until deleted),
 * each open handle, each VMA, each dma-buf. Its memory outlives it while
 * pages are still pinned: see tm_region_release() and the zombie list.
 */
struct tm_region {
	struct kref ref;
	struct list_head node;		/* tm_regions, under tm_lock */
	struct list_head pmem_node;	/* pm->regions while memory is held */
	char name[TIERMEM_NAME_MAX];
	u64 id;
	u64 size;
	u32 tier;
	u32 state;			/* enum tiermem_state, under tm_lock */
	kuid_t uid;
	kgid_t gid;
	u32 mode;
	bool deleted;			/* out of the registry, under tm_lock */
	bool creating;			/* memory being populated, not listed */
	bool sealing;			/* being flushed for a seal: no writers */
	bool ddr_accounted;		/* counted in tm_ddr_used */
	int numa_node;			/* DDR: allocate here only, or NUMA_NO_NODE */
	/*
	 * Mappings that may write (VM_MAYWRITE: mprotect cannot change it),
	 * writable dma-bufs and copies in: they block a seal.
	 */
	atomic_t writers;
	struct tm_stat st;
	u64 pinned;			/* cached for sysfs at pinned_at */
	unsigned long pinned_at;
	/* /sys/kernel/tiermem/regions/NAME while in the registry */
	struct tm_region_kobj *kobj;
	struct page *ctr_page;		/* struct tiermem_user_counters */

	/* DDR: compound 2 MiB chunks. */
	struct page **chunks;
	unsigned long nr_chunks;

	/* PMEM: a slice of an attached namespace. */
	struct tm_pmem *pm;
	u64 pm_off;			/* byte offset in the namespace */
	u32 slot;			/* table entry */
};

/*
 * An attached PMEM namespace. Its memory is reached only between
 * tm_pmem_enter() and tm_pmem_exit(), through dax_direct_access() of the
 * range at hand, so a bad block refuses just the pages it covers and a
 * namespace being removed (dead) refuses everything: see tm_pmem_revoke().
 */
struct tm_pmem {
	u32 index;
	char path[TIERMEM_PATH_MAX];
	struct block_device *bdev;
	struct dax_device *dax;
	u64 start;			/* byte offset of the bdev in the dax device */
	unsigned long pfn0;		/* pfn of byte 0 (for struct page lookups) */
	u64 size;			/* bytes reachable */
	bool pmd_ok;			/* pfn of byte 0 is 2 MiB aligned */
	bool dead;			/* namespace going away: no access */
	int node;			/* NUMA node of the namespace */
	u32 nr_slots;
	/* Every region holding space here, live, deleted or zombie. */
	struct list_head regions;
	struct list_head dead_node;	/* tm_dead_pmems once dead */
	unsigned long *slot_used;
};

/* What tm_pmem_enter() took. */
struct tm_pmem_lock {
	int srcu;
	int dax;
};

/*
 * Non-temporal stores (memcpy_flushcache) and cache-line write-backs
 * (dax_flush) are weakly ordered; this fence makes them reach the
 * persistence domain before any later store.
 */
static inline void tm_fence(void)
{
	/* sfence on x86: orders the flushes above before what follows. */
	wmb();
}

/* Guards the registry, the zombies, the PMEM table and DDR accounting. */
extern struct mutex tm_lock;
extern struct list_head tm_regions;
extern struct tm_pmem *tm_pmems[TIERMEM_PMEM_MAX];
extern struct tm_stat tm_tier_stat[3];
extern u64 tm_ddr_used;
extern u64 tm_ddr_max;

/* region.c */
bool tm_name_valid(const char *name);
struct tm_region *tm_region_alloc(const char *name, u32 tier, u64 size,
				  u32 mode);
void tm_region_husk_free(struct tm_region *r);
bool tm_name_taken(const char *name);
void tm_creating_add(struct tm_region *r);
void tm_creating_del(struct tm_region *r);
u64 tm_user_bytes(kuid_t uid, u32 tier);
void tm_region_get(struct tm_region *r);
void tm_region_put(struct tm_region *r);
void tm_region_put_locked(struct tm_region *r);
void tm_region_drop_locked(struct tm_region *r);
struct tm_region *tm_region_find(const char *name);
bool tm_may_access(const struct tm_region *r, bool write);
u64 tm_region_offset(const struct tm_region *r);
u64 tm_region_pinned(const struct tm_region *r);
u64 tm_region_bytes_read(const struct tm_region *r);
void tm_region_counters(struct tm_region *r, struct tiermem_counters *c,
			bool cached);
void tm_tier_counters(u32 tier, struct tiermem_counters *c, bool cached);
void tm_stat_add(struct tm_region *r, size_t field, s64 v);
void tm_zombies_reap(void);
void tm_zombies_stop(void);
void tm_regions_unloading(void);

#define TM_STAT(r, f, v) \
	tm_stat_add((r), offsetof(struct tm_stat, f), (v))

/* ddr.c */
int tm_ddr_reserve(struct tm_region *r);
int tm_ddr_populate(struct tm_region *r);
void tm_ddr_release(struct tm_region *r);
bool tm_ddr_idle(const struct tm_region *r);
u64 tm_ddr_pinned(const struct tm_region *r);

/* pmem.c */
int tm_pmem_enter(const struct tm_pmem *pm, struct tm_pmem_lock *l);
void tm_pmem_exit(struct tm_pmem_lock *l);
int tm_pmem_direct(const struct tm_pmem *pm, u64 off, u64 len, void **kaddr,
		   pfn_t *pfn);
u64 tm_pmem_bad_bytes(const struct tm_region *r);
ssize_t tm_pmem_bad_show(const struct tm_region *r, char *buf);
void tm_pmem_reap_dead(void);
int tm_pmem_attach(const char *path, bool format, u32 *index, u64 *size);
int tm_pmem_detach(u32 index);
void tm_pmem_detach_all(void);
int tm_pmem_create(struct tm_region *r, u32 index, bool any);
int tm_pmem_seal(struct tm_region *r);
void tm_pmem_release(struct tm_region *r);
void tm_pmem_forget(struct tm_region *r);
bool tm_pmem_idle(const struct tm_region *r);
u64 tm_pmem_pinned(const struct tm_region *r);
int tm_pmem_region_direct(const struct tm_region *r, u64 off, u64 len,
			  void **kaddr, pfn_t *pfn);

/* table.c: the on-media region table */
int tm_table_load(struct tm_pmem *pm, bool format);
int tm_table_write(struct tm_pmem *pm, struct tm_region *r, u32 state);
void tm_table_clear(struct tm_pmem *pm, u32 slot);
u64 tm_table_data_start(void);

/* inode.c: one address_space for every open file, so mappings can be zapped */
int tm_inode_init(void);
void tm_inode_exit(void);
void tm_inode_use(struct file *file);
void tm_zap_region(struct tm_region *r);

/* mmap.c */
int tm_mmap_region(struct tm_region *r, struct vm_area_struct *vma,
		   bool writable, u64 rel);
vm_fault_t tm_insert_page(struct vm_area_struct *vma, unsigned long addr,
			  struct page *page);
unsigned long tm_get_unmapped_area(struct file *file, unsigned long addr,
				   unsigned long len, unsigned long pgoff,
				   unsigned long flags);

/* copy.c */
int tm_copy(struct tm_region *src, u64 soff, struct tm_region *dst, u64 doff,
	    u64 len, u64 *copied);

/* dmabuf.c */
struct dma_buf *tm_export(struct tm_region *r, u64 off, u64 len, bool write);

/* sysfs.c */
void tm_registry_add(struct tm_region *r);
void tm_registry_del(struct tm_region *r);
int tm_sysfs_init(void);
void tm_sysfs_exit(void);

#endif /* TIERMEM_INTERNAL_H */
