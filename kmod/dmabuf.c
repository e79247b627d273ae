// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem dma-buf export: a region (or a page-aligned range of it) as a
 * dma-buf for GPU drivers and RDMA. The scatterlist has one entry per
 * 2 MiB piece; CPU mmap of the dma-buf maps the same pages.
 */
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

static struct page *tm_dmabuf_page(struct tm_region *r, u64 rel)
{
	if (r->tier == TIERMEM_TIER_PMEM)
		return pfn_t_to_page(tm_pmem_pfn(r, rel));
	return r->chunks[rel >> TIERMEM_CHUNK_SHIFT] +
	       ((rel & (TIERMEM_CHUNK_SIZE - 1)) >> PAGE_SHIFT);
}

static unsigned int tm_dmabuf_nents(const struct tm_dmabuf *b)
{
	u64 first = b->off >> TIERMEM_CHUNK_SHIFT;
	u64 last = (b->off + b->len - 1) >> TIERMEM_CHUNK_SHIFT;

	return last - first + 1;
}

static struct sg_table *tm_map_dma_buf(struct dma_buf_attachment *at,
				       enum dma_data_direction dir)
{
	struct tm_dmabuf *b = at->dmabuf->priv;
	struct scatterlist *sg;
	struct sg_table *sgt;
	u64 pos = b->off, end = b->off + b->len;
	int ret;

	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table(sgt, tm_dmabuf_nents(b), GFP_KERNEL);
	if (ret)
		goto free;
	for_each_sgtable_sg(sgt, sg, ret) {
		u64 n = min(end, ALIGN(pos + 1, TIERMEM_CHUNK_SIZE)) - pos;

		sg_set_page(sg, tm_dmabuf_page(b->r, pos), n, 0);
		pos += n;
	}
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

	if (rel >= b->len)
		return VM_FAULT_SIGBUS;
	rel += b->off;
	if (b->r->tier == TIERMEM_TIER_PMEM)
		return vmf_insert_mixed(vma, vmf->address & PAGE_MASK,
					tm_pmem_pfn(b->r, rel));
	return tm_insert_page(vma, vmf->address, tm_dmabuf_page(b->r, rel));
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

/* Returns a dma-buf fd; the dma-buf holds a reference on @r. */
int tm_export(struct tm_region *r, u64 off, u64 len, u32 flags)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	bool write = flags & TIERMEM_EXPORT_WRITE;
	struct tm_dmabuf *b;
	struct dma_buf *buf;
	int ret = 0, fd;

	if (!PAGE_ALIGNED(off) || !PAGE_ALIGNED(len) || off >= r->size)
		return -EINVAL;
	if (!len)
		len = r->size - off;
	if (len > r->size - off)
		return -EINVAL;
	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	mutex_lock(&tm_lock);
	if (write && r->state == TIERMEM_STATE_SEALED)
		ret = -EPERM;
	else if (write)
		atomic_inc(&r->writers);
	mutex_unlock(&tm_lock);
	if (ret) {
		kfree(b);
		return ret;
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
		return PTR_ERR(buf);
	}
	TM_STAT(r, exports, 1);
	fd = dma_buf_fd(buf, flags & TIERMEM_EXPORT_CLOEXEC ? O_CLOEXEC : 0);
	if (fd < 0)
		dma_buf_put(buf);	/* the release undoes the rest */
	return fd;
}
