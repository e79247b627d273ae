// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem PMEM tier: fsdax namespaces (/dev/pmemN) reached through the
 * kernel's DAX API. The whole namespace is mapped once at attach with
 * dax_direct_access(); its pfn keeps the flags it came with (PFN_DEV|PFN_MAP)
 * so inserted entries are devmap entries that GUP can pin.
 *
 * device-dax namespaces are not accepted: on 6.1 their dax_device has no
 * direct_access operation a module could call (see Documentation).
 */
#include <linux/blkdev.h>
#include <linux/dax.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "tiermem.h"

struct tm_pmem *tm_pmems[TIERMEM_PMEM_MAX];

static const fmode_t tm_bdev_mode = FMODE_READ | FMODE_WRITE | FMODE_EXCL;

/* Counts poison reported by the media; the generic path kills users. */
static int tm_notify_failure(struct dax_device *dax, u64 off, u64 len,
			     int mf_flags)
{
	struct tm_pmem *pm = dax_holder(dax);
	struct tm_region *r;

	mutex_lock(&tm_lock);
	list_for_each_entry(r, &pm->regions, pmem_node)
		if (off < r->pm_off + r->size && r->pm_off < off + len)
			TM_STAT(r, media_errors, 1);
	mutex_unlock(&tm_lock);
	pr_err("tiermem: %s: media error at offset %llu (+%llu)\n", pm->path,
	       off, len);
	return -EOPNOTSUPP;
}

static const struct dax_holder_operations tm_holder_ops = {
	.notify_failure = tm_notify_failure,
};

static void tm_pmem_put(struct tm_pmem *pm)
{
	if (pm->dax)
		fs_put_dax(pm->dax, pm);
	if (!IS_ERR_OR_NULL(pm->bdev))
		blkdev_put(pm->bdev, tm_bdev_mode);
	kfree(pm);
}

static int tm_pmem_map(struct tm_pmem *pm)
{
	u64 start = 0, bytes = bdev_nr_bytes(pm->bdev);
	long nr, avail;
	int id;

	pm->dax = fs_dax_get_by_bdev(pm->bdev, &start, pm, &tm_holder_ops);
	if (IS_ERR_OR_NULL(pm->dax)) {
		pm->dax = NULL;
		pr_err("tiermem: %s: not DAX-capable or already held (an fsdax namespace is needed)\n",
		       pm->path);
		return -EOPNOTSUPP;
	}
	if (!IS_ALIGNED(start, PAGE_SIZE))
		return -EINVAL;
	nr = bytes >> PAGE_SHIFT;
	id = dax_read_lock();
	avail = dax_direct_access(pm->dax, start >> PAGE_SHIFT, nr, DAX_ACCESS,
				  &pm->kaddr, &pm->pfn);
	dax_read_unlock(id);
	if (avail < 0) {
		pr_err("tiermem: %s: dax_direct_access failed (%ld)\n",
		       pm->path, avail);
		return avail;
	}
	pm->size = ALIGN_DOWN((u64)min(avail, nr) << PAGE_SHIFT,
			      TIERMEM_CHUNK_SIZE);
	if (pm->size <= tm_table_data_start()) {
		pr_err("tiermem: %s: too small (%llu bytes usable)\n", pm->path,
		       pm->size);
		return -ENOSPC;
	}
	pm->pmd_ok = IS_ALIGNED(pfn_t_to_pfn(pm->pfn), TM_CHUNK_PAGES);
	if (!pm->pmd_ok)
		pr_warn("tiermem: %s: not 2 MiB aligned in memory, mappings use 4 KiB pages\n",
			pm->path);
	return 0;
}

int tm_pmem_attach(const char *path, bool format, u32 *index, u64 *size)
{
	struct tm_pmem *pm = kzalloc(sizeof(*pm), GFP_KERNEL);
	u32 i;
	int ret;

	if (!pm)
		return -ENOMEM;
	INIT_LIST_HEAD(&pm->regions);
	strscpy(pm->path, path, sizeof(pm->path));
	pm->bdev = blkdev_get_by_path(path, tm_bdev_mode, pm);
	if (IS_ERR(pm->bdev)) {
		ret = PTR_ERR(pm->bdev);
		pr_err("tiermem: %s: cannot open (%d)\n", path, ret);
		goto fail;
	}
	ret = tm_pmem_map(pm);
	if (ret)
		goto fail;
	mutex_lock(&tm_lock);
	for (i = 0; i < TIERMEM_PMEM_MAX && tm_pmems[i]; i++)
		;
	ret = -ENOSPC;
	if (i < TIERMEM_PMEM_MAX) {
		pm->index = i;
		ret = tm_table_load(pm, format);
	}
	if (!ret)
		tm_pmems[i] = pm;
	mutex_unlock(&tm_lock);
	if (ret)
		goto fail;
	*index = i;
	*size = pm->size;
	pr_info("tiermem: attached %s as pmem%u, %llu MiB\n", path, i,
		pm->size >> 20);
	return 0;
fail:
	tm_pmem_put(pm);
	return ret;
}

/* Only regions nobody uses (registry reference, idle pages) may go. */
int tm_pmem_detach(u32 index)
{
	struct tm_region *r, *tmp;
	struct tm_pmem *pm;

	mutex_lock(&tm_lock);
	tm_zombies_reap(false);
	pm = tm_pmems[index];
	if (!pm) {
		mutex_unlock(&tm_lock);
		return -ENOENT;
	}
	list_for_each_entry(r, &pm->regions, pmem_node) {
		if (r->deleted || kref_read(&r->ref) != 1 || !tm_pmem_idle(r)) {
			mutex_unlock(&tm_lock);
			return -EBUSY;
		}
	}
	tm_pmems[index] = NULL;
	list_for_each_entry_safe(r, tmp, &pm->regions, pmem_node)
		tm_region_drop_locked(r);
	mutex_unlock(&tm_lock);
	pr_info("tiermem: detached %s (pmem%u)\n", pm->path, index);
	tm_pmem_put(pm);
	return 0;
}

/* On unload, after every region was released. */
void tm_pmem_detach_all(void)
{
	u32 i;

	mutex_lock(&tm_lock);
	for (i = 0; i < TIERMEM_PMEM_MAX; i++) {
		if (tm_pmems[i]) {
			tm_pmem_put(tm_pmems[i]);
			tm_pmems[i] = NULL;
		}
	}
	mutex_unlock(&tm_lock);
}

/* First fit, 2 MiB aligned, in the namespace's data area. */
static int tm_pmem_place(struct tm_pmem *pm, struct tm_region *r)
{
	u64 pos = tm_table_data_start();
	struct tm_region *o;
	u32 slot;

	slot = find_first_zero_bit(pm->slot_used, pm->nr_slots);
	if (slot >= pm->nr_slots)
		return -ENOSPC;
	list_for_each_entry(o, &pm->regions, pmem_node) {
		if (o->pm_off - pos >= r->size)
			break;
		pos = o->pm_off + o->size;
	}
	if (pos > pm->size || pm->size - pos < r->size)
		return -ENOSPC;
	r->pm = pm;
	r->pm_off = pos;
	r->slot = slot;
	set_bit(slot, pm->slot_used);
	/* Keep pm->regions sorted by offset. */
	if (list_entry_is_head(o, &pm->regions, pmem_node))
		list_add_tail(&r->pmem_node, &pm->regions);
	else
		list_add_tail(&r->pmem_node, &o->pmem_node);
	return 0;
}

static void tm_pmem_zero(struct tm_region *r)
{
	u64 off;

	for (off = 0; off < r->size; off += TIERMEM_CHUNK_SIZE) {
		void *p = tm_pmem_kaddr(r, off);

		memset(p, 0, TIERMEM_CHUNK_SIZE);
		tm_pmem_flush(r, p, TIERMEM_CHUNK_SIZE);
		cond_resched();
	}
}

/*
 * New regions read as zero and are recorded as filling before they are
 * handed out; a crash before the seal leaves them filling.
 */
int tm_pmem_create(struct tm_region *r, u32 index, bool any)
{
	u32 i;
	int ret = -ENODEV;

	lockdep_assert_held(&tm_lock);
	for (i = any ? 0 : index; i < TIERMEM_PMEM_MAX; i++) {
		if (tm_pmems[i]) {
			ret = tm_pmem_place(tm_pmems[i], r);
			if (!ret)
				break;
		}
		if (!any)
			break;
	}
	if (ret)
		return ret;
	tm_pmem_zero(r);
	return tm_table_write(r->pm, r, TIERMEM_STATE_FILLING);
}

int tm_pmem_seal(struct tm_region *r)
{
	int ret = 0;

	mutex_lock(&tm_lock);
	if (r->deleted)
		ret = -ENOENT;
	else if (r->state == TIERMEM_STATE_SEALED)
		ret = -EALREADY;
	else if (atomic_read(&r->writers))
		ret = -EBUSY;
	if (!ret) {
		tm_pmem_flush(r, tm_pmem_kaddr(r, 0), r->size);
		tm_table_write(r->pm, r, TIERMEM_STATE_SEALED);
		r->state = TIERMEM_STATE_SEALED;
	}
	mutex_unlock(&tm_lock);
	return ret;
}

/* Deleted: the slot is free on media now, the space when the memory is. */
void tm_pmem_forget(struct tm_region *r)
{
	lockdep_assert_held(&tm_lock);
	tm_table_clear(r->pm, r->slot);
	clear_bit(r->slot, r->pm->slot_used);
}

/* The region's memory is idle: its space may be reused. */
void tm_pmem_release(struct tm_region *r)
{
	if (!r->pm)
		return;
	if (!r->deleted)
		clear_bit(r->slot, r->pm->slot_used);
	list_del_init(&r->pmem_node);
	r->pm = NULL;
}

static struct page *tm_pmem_page(const struct tm_region *r, u64 off)
{
	return pfn_to_page(pfn_t_to_pfn(tm_pmem_pfn(r, off)));
}

/* ZONE_DEVICE fsdax pages are idle at refcount 1; a pin adds 1024. */
bool tm_pmem_idle(const struct tm_region *r)
{
	u64 off;

	if (!r->pm)
		return true;
	for (off = 0; off < r->size; off += PAGE_SIZE)
		if (page_ref_count(tm_pmem_page(r, off)) != 1)
			return false;
	return true;
}

u64 tm_pmem_pinned(const struct tm_region *r)
{
	u64 off, n = 0;

	if (!r->pm)
		return 0;
	for (off = 0; off < r->size; off += PAGE_SIZE)
		n += (page_ref_count(tm_pmem_page(r, off)) - 1) /
		     GUP_PIN_COUNTING_BIAS;
	return n;
}

void *tm_pmem_kaddr(const struct tm_region *r, u64 off)
{
	return r->pm->kaddr + r->pm_off + off;
}

pfn_t tm_pmem_pfn(const struct tm_region *r, u64 off)
{
	u64 pfn = pfn_t_to_pfn(r->pm->pfn) + ((r->pm_off + off) >> PAGE_SHIFT);

	return __pfn_to_pfn_t(pfn, r->pm->pfn.val & PFN_FLAGS_MASK);
}

void tm_pmem_flush(const struct tm_region *r, void *addr, size_t len)
{
	dax_flush(r->pm->dax, addr, len);
	tm_fence();
}
