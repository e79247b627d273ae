// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem regions: the registry, lifetimes, permissions and counters.
 *
 * A region's memory may still be pinned (FOLL_LONGTERM, O_DIRECT in flight)
 * after its last reference is gone: pins outlive munmap. Such a region goes
 * to the zombie list and its memory (DDR chunks, PMEM space) is given back
 * only once every page is idle again.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/capability.h>
#include <linux/idr.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/workqueue.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "tiermem.h"

/* See tiermem.h. */
DEFINE_MUTEX(tm_lock);
LIST_HEAD(tm_regions);
static LIST_HEAD(tm_zombies);
/* Regions being populated outside tm_lock: their names are taken. */
static LIST_HEAD(tm_creating);
/* Ids are reused once a region is freed (nothing can name it then). */
static DEFINE_IDA(tm_ids);
struct tm_stat tm_tier_stat[3];

bool tm_name_valid(const char *name)
{
	size_t len = strnlen(name, TIERMEM_NAME_MAX);
	size_t i;

	if (len == 0 || len == TIERMEM_NAME_MAX)
		return false;
	/* NUL-padded: no stale bytes after the terminator. */
	if (memchr_inv(name + len, 0, TIERMEM_NAME_MAX - len))
		return false;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		/* ASCII only: the kernel's isalnum() accepts Latin-1. */
		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

/* An ERR_PTR: -ENOMEM, or -ENOSPC when every id is in use. */
struct tm_region *tm_region_alloc(const char *name, u32 tier, u64 size,
				  u32 mode)
{
	struct tm_region *r = kzalloc(sizeof(*r), GFP_KERNEL);
	int id;

	if (!r)
		return ERR_PTR(-ENOMEM);
	id = ida_alloc_range(&tm_ids, 1, TM_MAX_ID, GFP_KERNEL);
	if (id < 0) {
		kfree(r);
		return ERR_PTR(id);
	}
	r->id = id;
	r->ctr_page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!r->ctr_page) {
		tm_region_husk_free(r);
		return ERR_PTR(-ENOMEM);
	}
	kref_init(&r->ref);
	INIT_LIST_HEAD(&r->node);
	INIT_LIST_HEAD(&r->pmem_node);
	strscpy(r->name, name, sizeof(r->name));
	r->tier = tier;
	r->size = size;
	r->mode = mode;
	r->numa_node = NUMA_NO_NODE;
	r->uid = current_fsuid();
	r->gid = current_fsgid();
	r->state = tier == TIERMEM_TIER_DDR ? TIERMEM_STATE_VOLATILE :
					      TIERMEM_STATE_FILLING;
	return r;
}

/* A region that never held memory (or gave it back). */
void tm_region_husk_free(struct tm_region *r)
{
	if (r->ctr_page)
		__free_page(r->ctr_page);
	ida_free(&tm_ids, r->id);
	kfree(r);
}

/* Names of live regions and of regions being created. */
bool tm_name_taken(const char *name)
{
	struct tm_region *r;

	lockdep_assert_held(&tm_lock);
	if (tm_region_find(name))
		return true;
	list_for_each_entry(r, &tm_creating, node)
		if (!strcmp(r->name, name))
			return true;
	return false;
}

/* Bytes of @tier held by regions @uid owns, listed or being created. */
u64 tm_user_bytes(kuid_t uid, u32 tier)
{
	struct tm_region *r;
	u64 n = 0;

	lockdep_assert_held(&tm_lock);
	list_for_each_entry(r, &tm_regions, node)
		if (r->tier == tier && uid_eq(r->uid, uid))
			n += r->size;
	list_for_each_entry(r, &tm_creating, node)
		if (r->tier == tier && uid_eq(r->uid, uid))
			n += r->size;
	return n;
}

/* Holds @r's name while its memory is populated outside tm_lock. */
void tm_creating_add(struct tm_region *r)
{
	lockdep_assert_held(&tm_lock);
	r->creating = true;
	list_add_tail(&r->node, &tm_creating);
}

void tm_creating_del(struct tm_region *r)
{
	lockdep_assert_held(&tm_lock);
	r->creating = false;
	list_del_init(&r->node);
}

void tm_region_get(struct tm_region *r)
{
	kref_get(&r->ref);
}

static bool tm_region_idle(const struct tm_region *r)
{
	if (r->tier == TIERMEM_TIER_DDR)
		return tm_ddr_idle(r);
	return tm_pmem_idle(r);
}

static void tm_region_free(struct tm_region *r)
{
	if (r->tier == TIERMEM_TIER_DDR)
		tm_ddr_release(r);
	else
		tm_pmem_release(r);
	tm_region_husk_free(r);
}

/* Detach: @r holds only the registry's reference and is idle. */
void tm_region_drop_locked(struct tm_region *r)
{
	lockdep_assert_held(&tm_lock);
	tm_registry_del(r);
	tm_region_free(r);
}

static void tm_reap_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(tm_reap_work, tm_reap_fn);

/*
 * A zombie holds a reference on the module: its pages are still pinned,
 * so neither they nor (PMEM) the space under them may be handed out again,
 * not even by a reloaded module. This work frees zombies once idle.
 */
static void tm_reap_fn(struct work_struct *work)
{
	mutex_lock(&tm_lock);
	tm_zombies_reap();
	mutex_unlock(&tm_lock);
}

/* Set by the unload: nothing can hold the module any more. */
static bool tm_unloading;

static void tm_region_release_locked(struct kref *ref)
{
	struct tm_region *r = container_of(ref, struct tm_region, ref);

	list_del_init(&r->node);
	if (tm_region_idle(r)) {
		tm_region_free(r);
		return;
	}
	if (tm_unloading) {
		/*
		 * Pinned, never deleted: its PMEM space stays recorded on the
		 * media, so a reload cannot hand it out; DDR chunks are
		 * compound pages the last unpin frees.
		 */
		pr_warn("region %s still pinned at unload; its pages are released by the last unpin\n",
			r->name);
		tm_region_free(r);
		return;
	}
	__module_get(THIS_MODULE);
	list_add_tail(&r->node, &tm_zombies);
	schedule_delayed_work(&tm_reap_work, HZ);
}

/* Called with tm_lock held (kref_put_mutex). */
static void tm_region_release(struct kref *ref)
{
	tm_region_release_locked(ref);
	mutex_unlock(&tm_lock);
}

void tm_region_put(struct tm_region *r)
{
	kref_put_mutex(&r->ref, tm_region_release, &tm_lock);
}

void tm_region_put_locked(struct tm_region *r)
{
	lockdep_assert_held(&tm_lock);
	kref_put(&r->ref, tm_region_release_locked);
}

/*
 * Frees zombies whose pages are idle again, each dropping its module
 * reference: unload cannot happen while any is left.
 */
void tm_zombies_reap(void)
{
	struct tm_region *r, *tmp;

	lockdep_assert_held(&tm_lock);
	list_for_each_entry_safe(r, tmp, &tm_zombies, node) {
		if (!tm_region_idle(r))
			continue;
		list_del(&r->node);
		tm_region_free(r);
		module_put(THIS_MODULE);
	}
	tm_pmem_reap_dead();
	if (!list_empty(&tm_zombies))
		schedule_delayed_work(&tm_reap_work, HZ);
}

/* Unload: no zombie is left (each holds the module), the work may be. */
void tm_zombies_stop(void)
{
	cancel_delayed_work_sync(&tm_reap_work);
}

void tm_regions_unloading(void)
{
	mutex_lock(&tm_lock);
	tm_unloading = true;
	mutex_unlock(&tm_lock);
}

struct tm_region *tm_region_find(const char *name)
{
	struct tm_region *r;

	lockdep_assert_held(&tm_lock);
	list_for_each_entry(r, &tm_regions, node)
		if (!strcmp(r->name, name))
			return r;
	return NULL;
}

/* File-like permission bits: owner, group, other; CAP_DAC_OVERRIDE wins. */
bool tm_may_access(const struct tm_region *r, bool write)
{
	u32 want = write ? 2 : 4;
	u32 bits;

	if (uid_eq(current_fsuid(), r->uid))
		bits = r->mode >> 6;
	else if (in_group_p(r->gid))
		bits = r->mode >> 3;
	else
		bits = r->mode;
	if (bits & want)
		return true;
	return capable(CAP_DAC_OVERRIDE);
}

u64 tm_region_offset(const struct tm_region *r)
{
	return r->id << TM_OFF_SHIFT;
}

u64 tm_region_pinned(const struct tm_region *r)
{
	if (r->tier == TIERMEM_TIER_DDR)
		return tm_ddr_pinned(r);
	return tm_pmem_pinned(r);
}

u64 tm_region_bytes_read(const struct tm_region *r)
{
	struct tiermem_user_counters *uc = page_address(r->ctr_page);

	return READ_ONCE(uc->bytes_read);
}

void tm_stat_add(struct tm_region *r, size_t field, s64 v)
{
	atomic64_add(v, (atomic64_t *)((char *)&r->st + field));
	atomic64_add(v, (atomic64_t *)((char *)&tm_tier_stat[r->tier] + field));
}

static void tm_stat_read(struct tm_stat *s, struct tiermem_counters *c)
{
	c->faults_pte = atomic64_read(&s->faults_pte);
	c->faults_pmd = atomic64_read(&s->faults_pmd);
	c->faults_pud = atomic64_read(&s->faults_pud);
	c->bytes_mapped = atomic64_read(&s->bytes_mapped);
	c->live_mappings = atomic64_read(&s->live_mappings);
	c->bytes_copied = atomic64_read(&s->bytes_copied);
	c->media_errors = atomic64_read(&s->media_errors);
	c->exports = atomic64_read(&s->exports);
}

/*
 * Pins are read from every 4 KiB struct page of a PMEM region. Readers of
 * world-readable sysfs files get a count at most a second old, so they can
 * make the module walk each region at most once a second.
 */
static u64 tm_region_pinned_cached(struct tm_region *r)
{
	unsigned long at = READ_ONCE(r->pinned_at);
	u64 n;

	if (at && time_before(jiffies, at + HZ))
		return READ_ONCE(r->pinned);
	n = tm_region_pinned(r);
	WRITE_ONCE(r->pinned, n);
	WRITE_ONCE(r->pinned_at, jiffies ?: 1);
	return n;
}

static u64 tm_pinned(struct tm_region *r, bool cached)
{
	return cached ? tm_region_pinned_cached(r) : tm_region_pinned(r);
}

/* @cached: for sysfs (see tm_region_pinned_cached). */
void tm_region_counters(struct tm_region *r, struct tiermem_counters *c,
			bool cached)
{
	memset(c, 0, sizeof(*c));
	tm_stat_read(&r->st, c);
	c->pinned_pages = tm_pinned(r, cached);
	c->bytes_read = tm_region_bytes_read(r);
}

/*
 * Event counters are kept per tier as they happen; pins and bytes read are
 * summed over the regions (zombies included) at the time of the call.
 */
void tm_tier_counters(u32 tier, struct tiermem_counters *c, bool cached)
{
	struct tm_region *r;

	memset(c, 0, sizeof(*c));
	tm_stat_read(&tm_tier_stat[tier], c);
	mutex_lock(&tm_lock);
	list_for_each_entry(r, &tm_regions, node) {
		if (r->tier != tier)
			continue;
		c->pinned_pages += tm_pinned(r, cached);
		c->bytes_read += tm_region_bytes_read(r);
	}
	list_for_each_entry(r, &tm_zombies, node)
		if (r->tier == tier)
			c->pinned_pages += tm_pinned(r, cached);
	mutex_unlock(&tm_lock);
}
