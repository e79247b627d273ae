// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem copies between regions (promote a PMEM range into DDR, demote it
 * back). PMEM is read with copy_mc_to_kernel(), so poison ends the copy
 * with -EIO instead of a machine check, and written with
 * memcpy_flushcache(), so the bytes are durable when the ioctl returns.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "tiermem.h"

#define TM_COPY_STEP	(64UL << 10)

/*
 * Kernel address of [off, off + n) of @r, inside one chunk. PMEM is asked
 * of the driver inside tm_pmem_enter(): -EIO when a known bad block lies in
 * the pages covered, -ENXIO when the namespace is going away.
 */
static int tm_kaddr(struct tm_region *r, u64 off, size_t n, void **p)
{
	u64 head = off & ~PAGE_MASK;
	pfn_t pfn;
	int ret;

	if (r->tier == TIERMEM_TIER_DDR) {
		*p = page_address(r->chunks[off >> TIERMEM_CHUNK_SHIFT]) +
		     (off & (TIERMEM_CHUNK_SIZE - 1));
		return 0;
	}
	ret = tm_pmem_region_direct(r, off - head, PAGE_ALIGN(head + n), p,
				    &pfn);
	*p += head;
	return ret;
}

static int tm_enter(struct tm_region *r, struct tm_pmem_lock *l)
{
	return r->tier == TIERMEM_TIER_PMEM ? tm_pmem_enter(r->pm, l) : 0;
}

static void tm_exit(struct tm_region *r, struct tm_pmem_lock *l)
{
	if (r->tier == TIERMEM_TIER_PMEM)
		tm_pmem_exit(l);
}

/* Returns the bytes not copied (media error in the source). */
static size_t tm_copy_step(struct tm_region *src, void *s,
			   struct tm_region *dst, void *d, size_t n,
			   void *bounce)
{
	size_t left;

	if (src->tier == TIERMEM_TIER_DDR) {
		if (dst->tier == TIERMEM_TIER_PMEM)
			memcpy_flushcache(d, s, n);
		else
			memcpy(d, s, n);
		return 0;
	}
	if (dst->tier == TIERMEM_TIER_DDR)
		return copy_mc_to_kernel(d, s, n);
	left = copy_mc_to_kernel(bounce, s, n);
	memcpy_flushcache(d, bounce, n - left);
	return left;
}

static bool tm_range_ok(const struct tm_region *r, u64 off, u64 len)
{
	return off <= r->size && len <= r->size - off;
}

static u64 tm_to_page_end(u64 off)
{
	return PAGE_SIZE - (off & ~PAGE_MASK);
}

/*
 * Copies up to @n bytes at @so/@dofs; returns the bytes copied, or an error
 * when none could be: -EIO for a bad block or poison met at the start.
 * A range with a bad block is retried up to the next page boundary, so
 * *copied stops exactly at the first bad page.
 */
static long tm_copy_one(struct tm_region *src, u64 so, struct tm_region *dst,
			u64 dofs, size_t n, void *bounce)
{
	struct tm_pmem_lock ls, ld;
	void *s, *d;
	size_t left;
	int ret;

	ret = tm_enter(src, &ls);
	if (ret)
		return ret;
	ret = tm_enter(dst, &ld);
	if (ret) {
		tm_exit(src, &ls);
		return ret;
	}
	for (;;) {
		ret = tm_kaddr(src, so, n, &s);
		if (!ret)
			ret = tm_kaddr(dst, dofs, n, &d);
		if (ret != -EIO || n <= min(tm_to_page_end(so), tm_to_page_end(dofs)))
			break;
		n = min(tm_to_page_end(so), tm_to_page_end(dofs));
	}
	if (!ret) {
		left = tm_copy_step(src, s, dst, d, n, bounce);
		ret = left == n ? -EIO : n - left;
	}
	tm_exit(dst, &ld);
	tm_exit(src, &ls);
	return ret;
}

int tm_copy(struct tm_region *src, u64 soff, struct tm_region *dst, u64 doff,
	    u64 len, u64 *copied)
{
	void *bounce = NULL;
	u64 done = 0;
	int ret = 0;

	if (!len || !tm_range_ok(src, soff, len) || !tm_range_ok(dst, doff, len))
		return -EINVAL;
	if (src == dst && soff < doff + len && doff < soff + len)
		return -EINVAL;
	if (src->tier == TIERMEM_TIER_PMEM && dst->tier == TIERMEM_TIER_PMEM) {
		bounce = kmalloc(TM_COPY_STEP, GFP_KERNEL);
		if (!bounce)
			return -ENOMEM;
	}
	/* A copy in counts as a writer: the target cannot be sealed under it. */
	mutex_lock(&tm_lock);
	if (dst->state == TIERMEM_STATE_SEALED)
		ret = -EPERM;
	else if (dst->sealing)
		ret = -EBUSY;
	else
		atomic_inc(&dst->writers);
	mutex_unlock(&tm_lock);
	if (ret)
		goto out;
	while (done < len) {
		u64 so = soff + done, dofs = doff + done;
		size_t n = min_t(u64, len - done, TM_COPY_STEP);
		long got;

		/* Stay inside one chunk on both sides. */
		n = min_t(u64, n, TIERMEM_CHUNK_SIZE - (so & (TIERMEM_CHUNK_SIZE - 1)));
		n = min_t(u64, n, TIERMEM_CHUNK_SIZE - (dofs & (TIERMEM_CHUNK_SIZE - 1)));
		got = tm_copy_one(src, so, dst, dofs, n, bounce);
		if (got < 0) {
			if (got == -EIO)
				TM_STAT(src, media_errors, 1);
			ret = got;
			break;
		}
		done += got;
		if (got < n)
			continue;	/* stopped at a page with a bad block */
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	if (dst->tier == TIERMEM_TIER_PMEM)
		tm_fence();
	atomic_dec(&dst->writers);
	TM_STAT(src, bytes_copied, done);
	if (dst != src)
		TM_STAT(dst, bytes_copied, done);
out:
	kfree(bounce);
	*copied = done;
	return ret;
}
