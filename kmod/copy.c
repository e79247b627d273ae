// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem copies between regions (promote a PMEM range into DDR, demote it
 * back). PMEM is read with copy_mc_to_kernel(), so poison ends the copy
 * with -EIO instead of a machine check, and written with
 * memcpy_flushcache(), so the bytes are durable when the ioctl returns.
 */
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "tiermem.h"

#define TM_COPY_STEP	(64UL << 10)

/* Kernel address of byte @off; contiguous up to the next chunk boundary. */
static void *tm_kaddr(struct tm_region *r, u64 off)
{
	if (r->tier == TIERMEM_TIER_PMEM)
		return tm_pmem_kaddr(r, off);
	return page_address(r->chunks[off >> TIERMEM_CHUNK_SHIFT]) +
	       (off & (TIERMEM_CHUNK_SIZE - 1));
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
	else
		atomic_inc(&dst->writers);
	mutex_unlock(&tm_lock);
	if (ret)
		goto out;
	while (done < len) {
		u64 so = soff + done, dofs = doff + done;
		size_t n = min_t(u64, len - done, TM_COPY_STEP);
		size_t left;

		/* Stay inside one chunk on both sides. */
		n = min_t(u64, n, TIERMEM_CHUNK_SIZE - (so & (TIERMEM_CHUNK_SIZE - 1)));
		n = min_t(u64, n, TIERMEM_CHUNK_SIZE - (dofs & (TIERMEM_CHUNK_SIZE - 1)));
		left = tm_copy_step(src, tm_kaddr(src, so), dst, tm_kaddr(dst, dofs),
				    n, bounce);
		done += n - left;
		if (left) {
			TM_STAT(src, media_errors, 1);
			ret = -EIO;
			break;
		}
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
