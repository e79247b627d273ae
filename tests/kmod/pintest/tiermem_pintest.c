// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem_pintest: proves that tiermem mappings can be long-term pinned
 * (FOLL_LONGTERM, what zero-copy GPU DMA registration needs) and that the
 * pinned pages are the ones user space sees. Debian does not build the
 * kernel's own CONFIG_GUP_TEST, so this small module plays its part.
 */
#include <linux/blkdev.h>
#include <linux/dax.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/highmem.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "pintest.h"

static struct device *pt_dev(void);

struct pt_file {
	struct mutex lock;		/* guards pages and nr */
	struct page **pages;
	unsigned long nr;
};

static void pt_unpin(struct pt_file *pf)
{
	if (pf->pages)
		unpin_user_pages_dirty_lock(pf->pages, pf->nr, true);
	kvfree(pf->pages);
	pf->pages = NULL;
	pf->nr = 0;
}

static int pt_pin(struct pt_file *pf, struct pintest_pin *p)
{
	unsigned long nr = p->len >> PAGE_SHIFT, i;
	long got;

	if (!PAGE_ALIGNED(p->addr) || !PAGE_ALIGNED(p->len) || !nr ||
	    nr > INT_MAX || pf->pages)
		return -EINVAL;
	pf->pages = kvcalloc(nr, sizeof(*pf->pages), GFP_KERNEL);
	if (!pf->pages)
		return -ENOMEM;
	while (pf->nr < nr) {
		got = pin_user_pages_fast(p->addr + (pf->nr << PAGE_SHIFT),
					  nr - pf->nr, FOLL_WRITE | FOLL_LONGTERM,
					  pf->pages + pf->nr);
		if (got <= 0) {
			pt_unpin(pf);
			return got ? got : -EFAULT;
		}
		pf->nr += got;
	}
	p->pinned = pf->nr;
	p->sum = 0;
	p->pfn_runs = 0;
	for (i = 0; i < nr; i++) {
		u64 *v = kmap_local_page(pf->pages[i]);

		p->sum += v[0];
		kunmap_local(v);
		if (!i || page_to_pfn(pf->pages[i]) != page_to_pfn(pf->pages[i - 1]) + 1)
			p->pfn_runs++;
	}
	return 0;
}

static void pt_write(struct pt_file *pf, u64 seed)
{
	unsigned long i;

	for (i = 0; i < pf->nr; i++) {
		u64 *v = kmap_local_page(pf->pages[i]);

		v[1] = seed + i;
		kunmap_local(v);
	}
}

/* What an importer does: attach, map for @dir, unmap, detach. */
static int pt_dmabuf_map(struct device *dev, struct pintest_dmabuf_map *m)
{
	struct dma_buf_attachment *at;
	struct dma_buf *buf;
	struct sg_table *sgt;
	int ret = 0;

	if (!valid_dma_direction(m->dir) || m->dir == DMA_NONE)
		return -EINVAL;
	buf = dma_buf_get(m->fd);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	at = dma_buf_attach(buf, dev);
	if (IS_ERR(at)) {
		ret = PTR_ERR(at);
		goto put;
	}
	sgt = dma_buf_map_attachment_unlocked(at, m->dir);
	if (IS_ERR(sgt))
		m->result = PTR_ERR(sgt);
	else
		dma_buf_unmap_attachment_unlocked(at, sgt, m->dir);
	dma_buf_detach(buf, at);
put:
	dma_buf_put(buf);
	return ret;
}

/* What the pmem driver does on a machine check in the range. */
static int pt_notify(struct pintest_notify *n)
{
	struct block_device *bdev;
	struct dax_device *dax;
	u64 start;

	if (!memchr(n->path, 0, sizeof(n->path)))
		return -EINVAL;
	bdev = blkdev_get_by_path(n->path, FMODE_READ, NULL);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	dax = fs_dax_get_by_bdev(bdev, &start, NULL, NULL);
	if (!dax) {
		blkdev_put(bdev, FMODE_READ);
		return -EOPNOTSUPP;
	}
	n->result = dax_holder_notify_failure(dax, start + n->offset,
					      n->length, n->mf_flags);
	fs_put_dax(dax, NULL);
	blkdev_put(bdev, FMODE_READ);
	return 0;
}

static long pt_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct pt_file *pf = file->private_data;
	void __user *up = (void __user *)arg;
	struct pintest_dmabuf_map m;
	struct pintest_notify n;
	struct pintest_write w;
	struct pintest_pin p;
	long ret = 0;

	mutex_lock(&pf->lock);
	switch (cmd) {
	case PINTEST_IOC_PIN:
		if (copy_from_user(&p, up, sizeof(p))) {
			ret = -EFAULT;
			break;
		}
		ret = pt_pin(pf, &p);
		if (!ret && copy_to_user(up, &p, sizeof(p)))
			ret = -EFAULT;
		break;
	case PINTEST_IOC_WRITE:
		if (copy_from_user(&w, up, sizeof(w)))
			ret = -EFAULT;
		else if (!pf->pages)
			ret = -EINVAL;
		else
			pt_write(pf, w.seed);
		break;
	case PINTEST_IOC_UNPIN:
		pt_unpin(pf);
		break;
	case PINTEST_IOC_DMABUF_MAP:
		if (copy_from_user(&m, up, sizeof(m))) {
			ret = -EFAULT;
			break;
		}
		ret = pt_dmabuf_map(pt_dev(), &m);
		if (!ret && copy_to_user(up, &m, sizeof(m)))
			ret = -EFAULT;
		break;
	case PINTEST_IOC_NOTIFY:
		if (copy_from_user(&n, up, sizeof(n))) {
			ret = -EFAULT;
			break;
		}
		ret = pt_notify(&n);
		if (!ret && copy_to_user(up, &n, sizeof(n)))
			ret = -EFAULT;
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&pf->lock);
	return ret;
}

static int pt_open(struct inode *inode, struct file *file)
{
	struct pt_file *pf = kzalloc(sizeof(*pf), GFP_KERNEL);

	if (!pf)
		return -ENOMEM;
	mutex_init(&pf->lock);
	file->private_data = pf;
	return 0;
}

static int pt_release(struct inode *inode, struct file *file)
{
	struct pt_file *pf = file->private_data;

	pt_unpin(pf);
	kfree(pf);
	return 0;
}

static const struct file_operations pt_fops = {
	.owner = THIS_MODULE,
	.open = pt_open,
	.release = pt_release,
	.unlocked_ioctl = pt_ioctl,
};

static struct miscdevice pt_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "tiermem_pintest",
	.fops = &pt_fops,
	.mode = 0666,
};

static struct device *pt_dev(void)
{
	return pt_misc.this_device;
}

static int __init pt_init(void)
{
	int ret = misc_register(&pt_misc);

	if (ret)
		return ret;
	/* A DMA-capable device for dma-buf attachments (direct mapping). */
	ret = dma_coerce_mask_and_coherent(pt_dev(), DMA_BIT_MASK(64));
	if (ret)
		misc_deregister(&pt_misc);
	return ret;
}

static void __exit pt_exit(void)
{
	misc_deregister(&pt_misc);
}

module_init(pt_init);
module_exit(pt_exit);
MODULE_DESCRIPTION("tiermem test helper: long-term pins, dma-buf import, media failures");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(DMA_BUF);
