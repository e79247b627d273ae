// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem dma-buf export: a region (or a page-aligned range of it) as a
 * dma-buf for GPU drivers and RDMA. The scatterlist has one entry per
 * 2 MiB piece; CPU mmap of the dma-buf maps the same pages.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

#include "tiermem.h"

struct tm_dmabuf {
	struct tm_region *r;
	u64 off;
	u64 len;
	bool write;
};

/* PMEM: inside tm_pmem_enter(); -EIO for a range with a known bad block. */
static int tm_dmabuf_page(struct tm_region *r, u64 rel, u64 len,
			  struct page **page)
{
	void *kaddr;
	pfn_t pfn;
	int ret;

	if (r->tier == TIERMEM_TIER_PMEM) {
		ret = tm_pmem_region_direct(r, rel, PAGE_ALIGN(len), &kaddr,
					    &pfn);
		*page = ret ? NULL : pfn_t_to_page(pfn);
		return ret;
	}
	*page = r->chunks[rel >> TIERMEM_CHUNK_SHIFT] +
		((rel & (TIERMEM_CHUNK_SIZE - 1)) >> PAGE_SHIFT);
	return 0;
}

static unsigned int tm_dmabuf_nents(const struct tm_dmabuf *b)
{
	u64 first = b->off >> TIERMEM_CHUNK_SHIFT;
	u64 last = (b->off + b->len - 1) >> TIERMEM_CHUNK_SHIFT;

	return last - first + 1;
}

static int tm_dmabuf_fill(struct tm_dmabuf *b, struct sg_table *sgt)
{
	u64 pos = b->off, end = b->off + b->len;
	struct scatterlist *sg;
	struct page *page;
	int i, ret;

	for_each_sgtable_sg(sgt, sg, i) {
		u64 n = min(end, ALIGN(pos + 1, TIERMEM_CHUNK_SIZE)) - pos;

		ret = tm_dmabuf_page(b->r, pos, n, &page);
		if (ret)
			return ret;
		sg_set_page(sg, page, n, 0);
		pos += n;
	}
	return 0;
}

/*
 * A device may only write what the exporter's handle could: a read-only
 * export maps for DMA_TO_DEVICE (device reads memory) and nothing else, so
 * an IOMMU keeps the pages read-only for the device.
 */
static struct sg_table *tm_map_dma_buf(struct dma_buf_attachment *at,
				       enum dma_data_direction dir)
{
	struct tm_dmabuf *b = at->dmabuf->priv;
	struct tm_pmem_lock l;
	struct sg_table *sgt;
	int ret;

	if (!b->write && dir != DMA_TO_DEVICE)
		return ERR_PTR(-EACCES);
	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table(sgt, tm_dmabuf_nents(b), GFP_KERNEL);
	if (ret)
		goto free;
	if (b->r->tier == TIERMEM_TIER_PMEM) {
		ret = tm_pmem_enter(b->r->pm, &l);
		if (ret)
			goto table;
		ret = tm_dmabuf_fill(b, sgt);
		tm_pmem_exit(&l);
	} else {
		ret = tm_dmabuf_fill(b, sgt);
	}
	if (ret)
		goto table;
	ret = dma_map_sgtable(at->dev, sgt, dir, 0);
	if (ret)
		goto table;
	return sgt;
table:
	sg_free_table(sgt);
free:
	kfree(sgt);
	return ERR_PTR(ret);
}

static void tm_unmap_dma_buf(struct dma_buf_attachment *at,
			     struct sg_table *sgt, enum dma_data_direction dir)
{
	dma_unmap_sgtable(at->dev, sgt, dir, 0);
	sg_free_table(sgt);
	kfree(sgt);
}

static void tm_dmabuf_release(struct dma_buf *buf)
{
	struct tm_dmabuf *b = buf->priv;

	if (b->write)
		atomic_dec(&b->r->writers);
	TM_STAT(b->r, exports, -1);
	tm_region_put(b->r);
	kfree(b);
}

static vm_fault_t tm_dmabuf_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct tm_dmabuf *b = vma->vm_private_data;
	u64 rel = ((u64)vmf->pgoff << PAGE_SHIFT);
	struct tm_pmem_lock l;
	struct page *page;
	vm_fault_t ret;
	void *kaddr;
	pfn_t pfn;

	if (rel >= b->len)
		return VM_FAULT_SIGBUS;
	rel += b->off;
	if (b->r->tier == TIERMEM_TIER_DDR) {
		tm_dmabuf_page(b->r, rel, PAGE_SIZE, &page);
		return tm_insert_page(vma, vmf->address, page);
	}
	if (tm_pmem_enter(b->r->pm, &l))
		return VM_FAULT_SIGBUS;
	if (tm_pmem_region_direct(b->r, rel, PAGE_SIZE, &kaddr, &pfn))
		ret = VM_FAULT_SIGBUS;
	else
		ret = vmf_insert_mixed(vma, vmf->address & PAGE_MASK, pfn);
	tm_pmem_exit(&l);
	return ret;
}

static const struct vm_operations_struct tm_dmabuf_vm_ops = {
	.fault = tm_dmabuf_fault,
};

static int tm_dmabuf_mmap(struct dma_buf *buf, struct vm_area_struct *vma)
{
	struct tm_dmabuf *b = buf->priv;

	/* VM_MAYSHARE: a read-only file's MAP_SHARED loses VM_SHARED. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (!b->write && (vma->vm_flags & VM_WRITE))
		return -EACCES;
	if (!(vma->vm_flags & VM_WRITE))
		vma->vm_flags &= ~VM_MAYWRITE;
	vma->vm_flags |= VM_MIXEDMAP | VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_private_data = b;
	vma->vm_ops = &tm_dmabuf_vm_ops;
	return 0;
}

static const struct dma_buf_ops tm_dmabuf_ops = {
	.map_dma_buf = tm_map_dma_buf,
	.unmap_dma_buf = tm_unmap_dma_buf,
	.release = tm_dmabuf_release,
	.mmap = tm_dmabuf_mmap,
};

/*
 * Returns a dma-buf (not yet in any fd table) holding a reference on @r;
 * with @write, devices may write it and the region cannot be sealed.
 */
struct dma_buf *tm_export(struct tm_region *r, u64 off, u64 len, bool write)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	struct tm_dmabuf *b;
	struct dma_buf *buf;
	int ret = 0;

	if (!PAGE_ALIGNED(off) || !PAGE_ALIGNED(len) || off >= r->size)
		return ERR_PTR(-EINVAL);
	if (!len)
		len = r->size - off;
	if (len > r->size - off)
		return ERR_PTR(-EINVAL);
	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return ERR_PTR(-ENOMEM);
	mutex_lock(&tm_lock);
	if (r->pm && READ_ONCE(r->pm->dead))
		ret = -ENXIO;
	else if (write && r->state == TIERMEM_STATE_SEALED)
		ret = -EPERM;
	else if (write && r->sealing)
		ret = -EBUSY;
	else if (write)
		atomic_inc(&r->writers);
	mutex_unlock(&tm_lock);
	if (ret) {
		kfree(b);
		return ERR_PTR(ret);
	}
	tm_region_get(r);
	b->r = r;
	b->off = off;
	b->len = len;
	b->write = write;
	exp.ops = &tm_dmabuf_ops;
	exp.size = len;
	exp.flags = write ? O_RDWR : O_RDONLY;
	exp.priv = b;
	buf = dma_buf_export(&exp);
	if (IS_ERR(buf)) {
		if (write)
			atomic_dec(&r->writers);
		tm_region_put(r);
		kfree(b);
		return buf;
	}
	TM_STAT(r, exports, 1);
	return buf;
}
