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
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/badblocks.h>
#include <linux/blkdev.h>
#include <linux/dax.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/srcu.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "tiermem.h"

struct tm_pmem *tm_pmems[TIERMEM_PMEM_MAX];
/* Namespaces removed under us, freed once their last region is. */
static LIST_HEAD(tm_dead_pmems);
/* Readers of a namespace's memory; tm_pmem_revoke() waits for them. */
DEFINE_STATIC_SRCU(tm_pmem_srcu);

static const fmode_t tm_bdev_mode = FMODE_READ | FMODE_WRITE | FMODE_EXCL;

/*
 * The namespace's memory stays mapped until tm_pmem_exit(): the removal
 * path calls our notify_failure (tm_pmem_revoke) before it kills the dax
 * device, and that waits for every section entered here.
 */
int tm_pmem_enter(const struct tm_pmem *pm, struct tm_pmem_lock *l)
{
	l->srcu = srcu_read_lock(&tm_pmem_srcu);
	l->dax = dax_read_lock();
	if (!READ_ONCE(pm->dead) && dax_alive(pm->dax))
		return 0;
	tm_pmem_exit(l);
	return -ENXIO;
}

void tm_pmem_exit(struct tm_pmem_lock *l)
{
	dax_read_unlock(l->dax);
	srcu_read_unlock(&tm_pmem_srcu, l->srcu);
}

/*
 * Kernel address and pfn of [off, off + len) of the namespace, page aligned,
 * between enter and exit: -EIO when a known bad block lies in the range,
 * -ENXIO when the namespace is going away.
 */
int tm_pmem_direct(const struct tm_pmem *pm, u64 off, u64 len, void **kaddr,
		   pfn_t *pfn)
{
	long nr = len >> PAGE_SHIFT, got;

	got = dax_direct_access(pm->dax, (pm->start + off) >> PAGE_SHIFT, nr,
				DAX_ACCESS, kaddr, pfn);
	if (got < 0)
		return got;
	return got < nr ? -EIO : 0;
}

int tm_pmem_region_direct(const struct tm_region *r, u64 off, u64 len,
			  void **kaddr, pfn_t *pfn)
{
	return tm_pmem_direct(r->pm, r->pm_off + off, len, kaddr, pfn);
}

static struct badblocks *tm_pmem_bb(const struct tm_pmem *pm)
{
	return pm->bdev->bd_disk->bb;
}

static sector_t tm_pmem_sector(const struct tm_region *r)
{
	return (r->pm->start + r->pm_off) >> SECTOR_SHIFT;
}

/*
 * Calls @fn for each run of known bad sectors inside @r, with the run's
 * byte offset and length relative to the region. The badblocks API takes
 * an int count: regions are walked 1 GiB at a time.
 */
static void tm_pmem_bad_walk(const struct tm_region *r,
			     void (*fn)(void *arg, u64 off, u64 len), void *arg)
{
	struct badblocks *bb = r->pm ? tm_pmem_bb(r->pm) : NULL;
	sector_t s, base, end, first;
	int n, nbad;

	if (!bb || !bb->count)
		return;
	base = tm_pmem_sector(r);
	end = base + (r->size >> SECTOR_SHIFT);
	for (s = base; s < end; ) {
		n = min_t(sector_t, end - s, SZ_1G >> SECTOR_SHIFT);
		if (!badblocks_check(bb, s, n, &first, &nbad)) {
			s += n;
			continue;
		}
		first = max(first, s);
		nbad = min_t(sector_t, first + nbad, end) - first;
		if (nbad <= 0)
			break;
		fn(arg, (u64)(first - base) << SECTOR_SHIFT,
		   (u64)nbad << SECTOR_SHIFT);
		s = first + nbad;
	}
}

static void tm_bad_sum(void *arg, u64 off, u64 len)
{
	*(u64 *)arg += len;
}

/* Bytes of @r in the namespace's list of known bad blocks. */
u64 tm_pmem_bad_bytes(const struct tm_region *r)
{
	u64 n = 0;

	tm_pmem_bad_walk(r, tm_bad_sum, &n);
	return n;
}

struct tm_bad_buf {
	char *buf;
	ssize_t len;
};

static void tm_bad_line(void *arg, u64 off, u64 len)
{
	struct tm_bad_buf *b = arg;

	b->len += sysfs_emit_at(b->buf, b->len, "%llu %llu\n", off, len);
}

/* For sysfs: one "offset length" line (bytes in the region) per bad run. */
ssize_t tm_pmem_bad_show(const struct tm_region *r, char *buf)
{
	struct tm_bad_buf b = { .buf = buf };

	tm_pmem_bad_walk(r, tm_bad_line, &b);
	return b.len;
}

static void tm_pmem_put(struct tm_pmem *pm)
{
	if (pm->dax)
		fs_put_dax(pm->dax, pm);
	if (!IS_ERR_OR_NULL(pm->bdev))
		blkdev_put(pm->bdev, tm_bdev_mode);
	kfree(pm);
}

/* Frees removed namespaces nothing refers to any more. */
void tm_pmem_reap_dead(void)
{
	struct tm_pmem *pm, *tmp;

	lockdep_assert_held(&tm_lock);
	list_for_each_entry_safe(pm, tmp, &tm_dead_pmems, dead_node) {
		if (!list_empty(&pm->regions))
			continue;
		list_del(&pm->dead_node);
		tm_pmem_put(pm);
	}
}

static struct tm_pmem *tm_pmem_by_dax(struct dax_device *dax)
{
	u32 i;

	lockdep_assert_held(&tm_lock);
	for (i = 0; i < TIERMEM_PMEM_MAX; i++)
		if (tm_pmems[i] && tm_pmems[i]->dax == dax)
			return tm_pmems[i];
	return NULL;
}

/*
 * The namespace is being disabled or destroyed: its memory and struct pages
 * go once we return. No new access may start (dead), running ones are
 * waited for, every user mapping is zapped (later faults get SIGBUS) and
 * the regions leave the registry; their handles fail with -ENXIO. The media
 * is not touched: the regions come back when the namespace is attached again.
 */
static void tm_pmem_revoke(struct tm_pmem *pm)
{
	struct tm_region *r;
	u64 pinned = 0;

	lockdep_assert_held(&tm_lock);
	tm_pmems[pm->index] = NULL;
	list_add_tail(&pm->dead_node, &tm_dead_pmems);
	list_for_each_entry(r, &pm->regions, pmem_node)
		pinned += tm_pmem_pinned(r);
	WRITE_ONCE(pm->dead, true);
	synchronize_srcu(&tm_pmem_srcu);
	list_for_each_entry(r, &pm->regions, pmem_node)
		tm_zap_region(r);
	if (pinned)
		pr_err("%s: removed with %llu pages still pinned by devices; their owners must unpin them\n",
		       pm->path, pinned);
	pr_warn("%s (pmem%u) is going away: its regions are revoked\n",
		pm->path, pm->index);
again:
	list_for_each_entry(r, &pm->regions, pmem_node) {
		/* A creator frees its region itself when it sees -ENXIO. */
		if (r->deleted || r->creating)
			continue;
		tm_registry_del(r);
		r->deleted = true;
		/* May free @r, which leaves the list: walk it again. */
		tm_region_put_locked(r);
		goto again;
	}
	tm_pmem_reap_dead();
}

static bool tm_whole_device(u64 off, u64 len)
{
	return off == 0 && len == U64_MAX;
}

/*
 * Called by the dax core with @off relative to the dax device: on media
 * errors (memory_failure) and, for the whole device, before the namespace
 * is removed. Poisoned pages are added to the namespace's bad blocks and
 * unmapped, so a later fault on them gets SIGBUS.
 */
static int tm_notify_failure(struct dax_device *dax, u64 off, u64 len,
			     int mf_flags)
{
	struct badblocks *bb;
	struct tm_region *r;
	struct tm_pmem *pm;
	u64 end;

	mutex_lock(&tm_lock);
	/* Not dax_holder(): a detach may have freed it under us. */
	pm = tm_pmem_by_dax(dax);
	if (!pm) {
		mutex_unlock(&tm_lock);
		return -ENXIO;
	}
	if (tm_whole_device(off, len)) {
		tm_pmem_revoke(pm);
		mutex_unlock(&tm_lock);
		return 0;
	}
	end = off + min(len, U64_MAX - off);
	off = off > pm->start ? off - pm->start : 0;
	end = end > pm->start ? end - pm->start : 0;
	bb = tm_pmem_bb(pm);
	if (bb && end > off)
		badblocks_set(bb, (pm->start + off) >> SECTOR_SHIFT,
			      DIV_ROUND_UP(end - off, SECTOR_SIZE), 1);
	list_for_each_entry(r, &pm->regions, pmem_node) {
		if (off < r->pm_off + r->size && r->pm_off < end) {
			TM_STAT(r, media_errors, 1);
			tm_zap_region(r);
		}
	}
	pr_err_ratelimited("%s: media error at offset %llu (+%llu)\n",
			   pm->path, off, end - off);
	mutex_unlock(&tm_lock);
	/* The generic path still signals the task that consumed the poison. */
	return -EOPNOTSUPP;
}

static const struct dax_holder_operations tm_holder_ops = {
	.notify_failure = tm_notify_failure,
};

/*
 * Asynchronous DAX: stores become durable only through a flush request to
 * the host. On 6.1 dax_synchronous() can be stale: a dax_device is recycled
 * from a slab whose constructor alone clears its flags, so a virtio-pmem
 * device may inherit DAXDEV_SYNC from a freed namespace (seen in the VM
 * after a namespace was unbound). virtio-pmem is the only provider of
 * asynchronous regions on 6.1, so its bus is checked too.
 */
static bool tm_pmem_async(struct tm_pmem *pm)
{
	struct device *d;

	if (!dax_synchronous(pm->dax))
		return true;
	for (d = disk_to_dev(pm->bdev->bd_disk); d; d = d->parent)
		if (d->bus && !strcmp(d->bus->name, "virtio"))
			return true;
	return false;
}

static int tm_pmem_map(struct tm_pmem *pm)
{
	struct tm_pmem_lock l;
	void *kaddr;
	pfn_t pfn;
	int ret;

	pm->dax = fs_dax_get_by_bdev(pm->bdev, &pm->start, pm, &tm_holder_ops);
	if (IS_ERR_OR_NULL(pm->dax)) {
		pm->dax = NULL;
		pr_err("%s: not DAX-capable or already held (an fsdax namespace is needed)\n",
		       pm->path);
		return -EOPNOTSUPP;
	}
	if (tm_pmem_async(pm)) {
		pr_err("%s: asynchronous DAX device (e.g. virtio-pmem) not supported: stores would not be durable\n",
		       pm->path);
		return -EOPNOTSUPP;
	}
	pm->size = ALIGN_DOWN(bdev_nr_bytes(pm->bdev), TIERMEM_CHUNK_SIZE);
	pm->node = pm->bdev->bd_disk->node_id;
	if (pm->size <= tm_table_data_start()) {
		pr_err("%s: too small (%llu bytes usable)\n", pm->path,
		       pm->size);
		return -ENOSPC;
	}
	ret = tm_pmem_enter(pm, &l);
	if (ret)
		return ret;
	/* The table's chunk must be readable; the rest is checked on use. */
	ret = tm_pmem_direct(pm, 0, tm_table_data_start(), &kaddr, &pfn);
	tm_pmem_exit(&l);
	if (ret) {
		pr_err("%s: region table area not accessible (%d%s)\n",
		       pm->path, ret, ret == -EIO ? ": bad blocks" : "");
		return ret;
	}
	pm->pfn0 = pfn_t_to_pfn(pfn);
	pm->pmd_ok = IS_ALIGNED(pm->pfn0, TM_CHUNK_PAGES);
	if (!pm->pmd_ok)
		pr_warn("%s: not 2 MiB aligned in memory, mappings use 4 KiB pages\n",
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
		pr_err("%s: cannot open (%d)\n", path, ret);
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
	pr_info("attached %s as pmem%u, %llu MiB\n", path, i,
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
	tm_zombies_reap();
	pm = tm_pmems[index];
	if (!pm) {
		mutex_unlock(&tm_lock);
		return -ENOENT;
	}
	list_for_each_entry(r, &pm->regions, pmem_node) {
		if (r->deleted || r->creating || r->sealing ||
		    kref_read(&r->ref) != 1 || !tm_pmem_idle(r)) {
			mutex_unlock(&tm_lock);
			return -EBUSY;
		}
	}
	tm_pmems[index] = NULL;
	list_for_each_entry_safe(r, tmp, &pm->regions, pmem_node)
		tm_region_drop_locked(r);
	mutex_unlock(&tm_lock);
	pr_info("detached %s (pmem%u)\n", pm->path, index);
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
	tm_pmem_reap_dead();
	mutex_unlock(&tm_lock);
}

/* First fit at or after @from, 2 MiB aligned, in the data area. */
static int tm_pmem_place(struct tm_pmem *pm, struct tm_region *r, u64 from)
{
	u64 pos = max(tm_table_data_start(), from);
	struct tm_region *o;
	u32 slot;

	slot = find_first_zero_bit(pm->slot_used, pm->nr_slots);
	if (slot >= pm->nr_slots)
		return -ENOSPC;
	list_for_each_entry(o, &pm->regions, pmem_node) {
		if (o->pm_off + o->size <= pos)
			continue;
		if (o->pm_off >= pos && o->pm_off - pos >= r->size)
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

/*
 * One page with a known bad block: only the driver's zeroing clears the
 * poison (and the bad block) as it writes; a store would leave it.
 */
static int tm_pmem_zero_page(struct tm_region *r, u64 off)
{
	void *p;
	pfn_t pfn;
	int ret;

	ret = tm_pmem_region_direct(r, off, PAGE_SIZE, &p, &pfn);
	if (ret == -EIO)
		return dax_zero_page_range(r->pm->dax,
					   (r->pm->start + r->pm_off + off) >>
					   PAGE_SHIFT, 1);
	if (ret)
		return ret;
	memset(p, 0, PAGE_SIZE);
	dax_flush(r->pm->dax, p, PAGE_SIZE);
	return 0;
}

static int tm_pmem_zero_chunk(struct tm_region *r, u64 off)
{
	void *p;
	pfn_t pfn;
	u64 o;
	int ret;

	ret = tm_pmem_region_direct(r, off, TIERMEM_CHUNK_SIZE, &p, &pfn);
	if (ret != -EIO) {
		if (ret)
			return ret;
		memset(p, 0, TIERMEM_CHUNK_SIZE);
		dax_flush(r->pm->dax, p, TIERMEM_CHUNK_SIZE);
		return 0;
	}
	for (o = off; o < off + TIERMEM_CHUNK_SIZE; o += PAGE_SIZE) {
		ret = tm_pmem_zero_page(r, o);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * New regions read as zero. Chunks with known bad blocks are zeroed page
 * by page through the driver, which clears poison it can clear; a page it
 * cannot clear is -EIO, with *@bad the offset of its chunk.
 */
static int tm_pmem_zero(struct tm_region *r, u64 *bad)
{
	struct tm_pmem_lock l;
	u64 off;
	int ret = 0;

	for (off = 0; off < r->size && !ret; off += TIERMEM_CHUNK_SIZE) {
		ret = tm_pmem_enter(r->pm, &l);
		if (ret)
			break;
		ret = tm_pmem_zero_chunk(r, off);
		tm_pmem_exit(&l);
		if (!ret && fatal_signal_pending(current))
			ret = -EINTR;
		cond_resched();
	}
	tm_fence();
	*bad = off - TIERMEM_CHUNK_SIZE;
	return ret;
}

/*
 * Places @r on namespace @i and zeroes it, outside tm_lock (the region is
 * listed as creating, so neither a detach nor a removal frees it or its
 * namespace under us). Space with bad blocks the driver cannot clear is
 * left unused: the region goes after it.
 */
static int tm_pmem_create_on(u32 i, struct tm_region *r, bool any)
{
	struct tm_pmem *pm;
	u64 from = 0, bad;
	int ret;

	for (;;) {
		mutex_lock(&tm_lock);
		pm = tm_pmems[i];
		ret = pm ? tm_pmem_place(pm, r, from) : any ? -ENOSPC : -ENODEV;
		mutex_unlock(&tm_lock);
		if (ret)
			return ret;
		ret = tm_pmem_zero(r, &bad);
		if (ret != -EIO)
			break;
		pr_warn_ratelimited("%s: bad blocks at offset %llu could not be cleared; leaving that space unused\n",
				    pm->path, r->pm_off + bad);
		from = r->pm_off + bad + TIERMEM_CHUNK_SIZE;
		mutex_lock(&tm_lock);
		tm_pmem_release(r);
		mutex_unlock(&tm_lock);
	}
	mutex_lock(&tm_lock);
	if (!ret)
		ret = tm_table_write(pm, r, TIERMEM_STATE_FILLING);
	if (ret)
		tm_pmem_release(r);
	mutex_unlock(&tm_lock);
	return ret;
}

/*
 * New regions read as zero and are recorded as filling before they are
 * handed out; a crash before the seal leaves them filling. Called without
 * tm_lock, with @r listed as creating.
 */
int tm_pmem_create(struct tm_region *r, u32 index, bool any)
{
	u32 i;
	int ret = -ENODEV;

	for (i = any ? 0 : index; i < TIERMEM_PMEM_MAX; i++) {
		ret = tm_pmem_create_on(i, r, any);
		if (ret != -ENOSPC || !any)
			break;
	}
	return ret;
}

/* Writes back [off, off + len) of @r; pages with bad blocks are skipped. */
static int tm_pmem_flush_range(struct tm_region *r, u64 off, u64 len)
{
	void *p;
	pfn_t pfn;
	int ret;

	ret = tm_pmem_region_direct(r, off, len, &p, &pfn);
	if (!ret)
		dax_flush(r->pm->dax, p, len);
	if (ret != -EIO || len == PAGE_SIZE)
		return ret == -EIO ? 0 : ret;
	for (; len; off += PAGE_SIZE, len -= PAGE_SIZE) {
		ret = tm_pmem_flush_range(r, off, PAGE_SIZE);
		if (ret)
			return ret;
	}
	return 0;
}

static int tm_pmem_flush_region(struct tm_region *r)
{
	struct tm_pmem_lock l;
	u64 off;
	int ret = 0;

	for (off = 0; off < r->size && !ret; off += TIERMEM_CHUNK_SIZE) {
		ret = tm_pmem_enter(r->pm, &l);
		if (ret)
			break;
		ret = tm_pmem_flush_range(r, off, TIERMEM_CHUNK_SIZE);
		tm_pmem_exit(&l);
		cond_resched();
	}
	tm_fence();
	return ret;
}

/*
 * Sealed data is read-only for good: nothing that may still write may
 * exist. Writers counts mappings that may become writable, writable
 * dma-bufs and copies in; a page still held (a pin taken for writing
 * through a mapping since unmapped, O_DIRECT in flight) also refuses.
 * While the region is flushed (outside tm_lock) it is marked sealing, which
 * refuses new writers as a seal would.
 */
int tm_pmem_seal(struct tm_region *r)
{
	int ret = 0;

	mutex_lock(&tm_lock);
	if (READ_ONCE(r->pm->dead))
		ret = -ENXIO;
	else if (r->deleted)
		ret = -ENOENT;
	else if (r->state == TIERMEM_STATE_SEALED)
		ret = -EALREADY;
	else if (r->sealing || atomic_read(&r->writers))
		ret = -EBUSY;
	else
		r->sealing = true;
	mutex_unlock(&tm_lock);
	if (ret)
		return ret;
	/* No new write pin can start: no mapping may write any more. */
	ret = tm_pmem_idle(r) ? tm_pmem_flush_region(r) : -EBUSY;
	mutex_lock(&tm_lock);
	if (!ret && r->deleted)
		ret = -ENOENT;
	if (!ret)
		ret = tm_table_write(r->pm, r, TIERMEM_STATE_SEALED);
	if (!ret)
		r->state = TIERMEM_STATE_SEALED;
	r->sealing = false;
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

/* Only while the namespace is alive: its struct pages go with it. */
static struct page *tm_pmem_page(const struct tm_region *r, u64 off)
{
	return pfn_to_page(r->pm->pfn0 + ((r->pm_off + off) >> PAGE_SHIFT));
}

/*
 * ZONE_DEVICE fsdax pages are idle at refcount 1; a pin adds 1024. A removed
 * namespace has no pages left to wait for.
 */
bool tm_pmem_idle(const struct tm_region *r)
{
	struct tm_pmem_lock l;
	bool idle = true;
	u64 off;

	if (!r->pm || tm_pmem_enter(r->pm, &l))
		return true;
	for (off = 0; off < r->size && idle; off += PAGE_SIZE)
		idle = page_ref_count(tm_pmem_page(r, off)) == 1;
	tm_pmem_exit(&l);
	return idle;
}

u64 tm_pmem_pinned(const struct tm_region *r)
{
	struct tm_pmem_lock l;
	u64 off, n = 0;

	if (!r->pm || tm_pmem_enter(r->pm, &l))
		return 0;
	for (off = 0; off < r->size; off += PAGE_SIZE)
		n += (page_ref_count(tm_pmem_page(r, off)) - 1) /
		     GUP_PIN_COUNTING_BIAS;
	tm_pmem_exit(&l);
	return n;
}
