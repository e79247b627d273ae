// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem: /dev/tiermem, regions of pinned DDR and of persistent memory.
 *
 * Each open file keeps handles on the regions it created or opened; mmap
 * offsets are handed out per region (id << 40) and only resolve through a
 * handle of the same file, so one file can map many regions and a file can
 * map nothing it was not allowed to open.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/dma-buf.h>
#include <linux/file.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "tiermem.h"

#define CREATE_TRACE_POINTS
#include "trace.h"

static unsigned int ddr_max_mb = 1024;
module_param(ddr_max_mb, uint, 0444);
MODULE_PARM_DESC(ddr_max_mb, "Most DRAM all DDR regions may hold, in MiB");

static char *pmem;
module_param(pmem, charp, 0444);
MODULE_PARM_DESC(pmem, "PMEM namespaces to attach at load, comma-separated (e.g. /dev/pmem0)");

static unsigned int pmem_user_max_mb;
module_param(pmem_user_max_mb, uint, 0644);
MODULE_PARM_DESC(pmem_user_max_mb, "Most PMEM the regions of one user (not CAP_SYS_ADMIN) may hold, in MiB; 0: no limit");

static bool pmem_format;
module_param(pmem_format, bool, 0444);
MODULE_PARM_DESC(pmem_format, "Write an empty region table on pmem= namespaces whose first 2 MiB are all zero (default: refuse them)");

struct tm_handle {
	struct list_head node;
	struct tm_region *r;
	bool writable;
};

struct tm_file {
	struct mutex lock;		/* guards handles */
	struct list_head handles;
};

static bool tm_zero(const void *p, size_t n)
{
	return !memchr_inv(p, 0, n);
}

static struct tm_handle *tm_handle_find(struct tm_file *tf, u64 id)
{
	struct tm_handle *h;

	lockdep_assert_held(&tf->lock);
	list_for_each_entry(h, &tf->handles, node)
		if (h->r->id == id)
			return h;
	return NULL;
}

/* Takes over the caller's reference on @r, also on failure. */
static int tm_handle_add(struct tm_file *tf, struct tm_region *r,
			 bool writable)
{
	struct tm_handle *h = kzalloc(sizeof(*h), GFP_KERNEL), *old;

	if (!h) {
		tm_region_put(r);
		return -ENOMEM;
	}
	mutex_lock(&tf->lock);
	old = tm_handle_find(tf, r->id);
	if (old) {
		old->writable |= writable;
	} else {
		h->r = r;
		h->writable = writable;
		list_add(&h->node, &tf->handles);
	}
	mutex_unlock(&tf->lock);
	if (old) {
		kfree(h);
		tm_region_put(r);
	}
	return 0;
}

/* Returns a referenced region opened in this file, or an ERR_PTR. */
static struct tm_region *tm_file_region(struct tm_file *tf, u64 id,
					bool write)
{
	struct tm_handle *h;
	struct tm_region *r;

	mutex_lock(&tf->lock);
	h = tm_handle_find(tf, id);
	if (!h) {
		mutex_unlock(&tf->lock);
		return ERR_PTR(-ENOENT);
	}
	if (write && !h->writable) {
		mutex_unlock(&tf->lock);
		return ERR_PTR(-EACCES);
	}
	r = h->r;
	tm_region_get(r);
	mutex_unlock(&tf->lock);
	return r;
}

static int tm_open(struct inode *inode, struct file *file)
{
	struct tm_file *tf = kzalloc(sizeof(*tf), GFP_KERNEL);

	if (!tf)
		return -ENOMEM;
	mutex_init(&tf->lock);
	INIT_LIST_HEAD(&tf->handles);
	file->private_data = tf;
	tm_inode_use(file);
	return 0;
}

static int tm_release(struct inode *inode, struct file *file)
{
	struct tm_file *tf = file->private_data;
	struct tm_handle *h, *tmp;

	list_for_each_entry_safe(h, tmp, &tf->handles, node) {
		list_del(&h->node);
		tm_region_put(h->r);
		kfree(h);
	}
	kfree(tf);
	return 0;
}

static int tm_ioc_version(struct tm_file *tf, void *arg)
{
	struct tiermem_version *v = arg;
	unsigned int i;

	v->abi_version = TIERMEM_ABI_VERSION;
	v->features = TIERMEM_FEAT_DDR | TIERMEM_FEAT_PMEM | TIERMEM_FEAT_COPY |
		      TIERMEM_FEAT_DMABUF | TIERMEM_FEAT_USER_CTR |
		      TIERMEM_FEAT_INFO_BAD_NODE | TIERMEM_FEAT_CREATE_NODE;
	mutex_lock(&tm_lock);
	tm_zombies_reap();
	for (i = 0; i < TIERMEM_PMEM_MAX; i++)
		v->nr_pmem += !!tm_pmems[i];
	v->ddr_max_bytes = tm_ddr_max;
	v->ddr_used_bytes = tm_ddr_used;
	mutex_unlock(&tm_lock);
	return 0;
}

static int tm_create_check(const struct tiermem_create *c)
{
	if (!tm_zero(c->reserved, sizeof(c->reserved)) || !tm_name_valid(c->name))
		return -EINVAL;
	if (c->mode & ~0777U)
		return -EINVAL;
	if (!c->size || !IS_ALIGNED(c->size, TIERMEM_CHUNK_SIZE) ||
	    c->size > TM_REGION_MAX_SIZE)
		return -EINVAL;
	if (c->pad || (!(c->flags & TIERMEM_CREATE_NODE) && c->numa_node))
		return -EINVAL;
	switch (c->tier) {
	case TIERMEM_TIER_DDR:
		if (c->flags & ~TIERMEM_CREATE_NODE || c->pmem_index)
			return -EINVAL;
		if (c->flags & TIERMEM_CREATE_NODE &&
		    (c->numa_node < 0 || c->numa_node >= MAX_NUMNODES ||
		     !node_online(c->numa_node)))
			return -EINVAL;
		return 0;
	case TIERMEM_TIER_PMEM:
		if (c->flags & ~TIERMEM_CREATE_ANY_PMEM)
			return -EINVAL;
		if (c->flags & TIERMEM_CREATE_ANY_PMEM ? c->pmem_index :
		    c->pmem_index >= TIERMEM_PMEM_MAX)
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

union tm_ioctl_arg {
	struct tiermem_version version;
	struct tiermem_create create;
	struct tiermem_open open;
	struct tiermem_region_ref ref;
	struct tiermem_delete del;
	struct tiermem_list list;
	struct tiermem_stats stats;
	struct tiermem_attach attach;
	struct tiermem_detach detach;
	struct tiermem_copy copy;
	struct tiermem_export export;
};

/* What an ioctl left to finish once its result reached user space. */
struct tm_call {
	union tm_ioctl_arg arg;
	struct tm_region *created;	/* CREATE: undone if the copy-out fails */
	struct dma_buf *buf;		/* EXPORT: its fd is installed after it */
};

static struct tm_call *tm_call_of(void *arg)
{
	return container_of(arg, struct tm_call, arg);
}

static int tm_quota_check(const struct tiermem_create *c)
{
	u64 max = (u64)pmem_user_max_mb << 20;

	lockdep_assert_held(&tm_lock);
	if (c->tier != TIERMEM_TIER_PMEM || !max || capable(CAP_SYS_ADMIN))
		return 0;
	if (c->size > max ||
	    tm_user_bytes(current_fsuid(), TIERMEM_TIER_PMEM) > max - c->size)
		return -EDQUOT;
	return 0;
}

/*
 * The name, the DDR budget or the PMEM space are taken under tm_lock; the
 * memory is allocated and zeroed outside it (the region is listed as
 * creating meanwhile), so a large create holds up nobody else.
 */
static int tm_ioc_create(struct tm_file *tf, void *arg)
{
	struct tiermem_create *c = arg;
	struct tm_region *r;
	int ret;

	ret = tm_create_check(c);
	if (ret)
		return ret;
	mutex_lock(&tm_lock);
	tm_zombies_reap();
	ret = tm_name_taken(c->name) ? -EEXIST : tm_quota_check(c);
	if (ret)
		goto unlock;
	r = tm_region_alloc(c->name, c->tier, c->size, c->mode);
	if (IS_ERR(r)) {
		ret = PTR_ERR(r);
		goto unlock;
	}
	if (c->flags & TIERMEM_CREATE_NODE)
		r->numa_node = c->numa_node;
	ret = c->tier == TIERMEM_TIER_DDR ? tm_ddr_reserve(r) : 0;
	if (ret) {
		tm_region_husk_free(r);
		goto unlock;
	}
	tm_creating_add(r);
	mutex_unlock(&tm_lock);

	if (c->tier == TIERMEM_TIER_DDR)
		ret = tm_ddr_populate(r);
	else
		ret = tm_pmem_create(r, c->pmem_index,
				     c->flags & TIERMEM_CREATE_ANY_PMEM);

	mutex_lock(&tm_lock);
	tm_creating_del(r);
	trace_tiermem_region_create(r->id, r->name, r->tier, r->size, ret);
	if (ret) {
		mutex_unlock(&tm_lock);
		/* The release frees what was allocated and the husk. */
		tm_region_put(r);
		return ret;
	}
	tm_registry_add(r);
	tm_region_get(r);	/* the handle's; the registry keeps the first */
	tm_region_get(r);	/* until the result reached user space */
	mutex_unlock(&tm_lock);
	c->id = r->id;
	c->mmap_offset = tm_region_offset(r);
	tm_call_of(arg)->created = r;
	return tm_handle_add(tf, r, true);
unlock:
	mutex_unlock(&tm_lock);
	return ret;
}

/* The caller never learnt of the region: it goes again. */
static void tm_create_undo(struct tm_file *tf, struct tm_region *r)
{
	struct tm_handle *h;

	mutex_lock(&tf->lock);
	h = tm_handle_find(tf, r->id);
	if (h)
		list_del(&h->node);
	mutex_unlock(&tf->lock);
	if (h) {
		tm_region_put(h->r);
		kfree(h);
	}
	mutex_lock(&tm_lock);
	if (!r->deleted) {
		tm_registry_del(r);
		r->deleted = true;
		if (r->tier == TIERMEM_TIER_PMEM)
			tm_pmem_forget(r);
		tm_region_put_locked(r);	/* the registry's */
	}
	mutex_unlock(&tm_lock);
}

static void tm_fill_open(struct tiermem_open *o, struct tm_region *r)
{
	o->tier = r->tier;
	o->id = r->id;
	o->size = r->size;
	o->mmap_offset = tm_region_offset(r);
	o->counters_offset = o->mmap_offset + TM_CTR_REL;
	o->state = r->state;
	o->pmem_index = r->pm ? r->pm->index : 0;
}

static int tm_ioc_open(struct tm_file *tf, void *arg)
{
	struct tiermem_open *o = arg;
	bool write = o->flags & TIERMEM_OPEN_WRITE;
	struct tm_region *r;

	if (o->flags & ~TIERMEM_OPEN_WRITE ||
	    !tm_zero(o->reserved, sizeof(o->reserved)) || !tm_name_valid(o->name))
		return -EINVAL;
	mutex_lock(&tm_lock);
	r = tm_region_find(o->name);
	if (!r) {
		mutex_unlock(&tm_lock);
		return -ENOENT;
	}
	if (!tm_may_access(r, false) || (write && !tm_may_access(r, true))) {
		mutex_unlock(&tm_lock);
		return -EACCES;
	}
	tm_region_get(r);
	tm_fill_open(o, r);
	mutex_unlock(&tm_lock);
	return tm_handle_add(tf, r, write);
}

static int tm_ioc_close(struct tm_file *tf, void *arg)
{
	struct tiermem_region_ref *ref = arg;
	struct tm_handle *h;

	if (ref->flags || ref->pad || !tm_zero(ref->reserved, sizeof(ref->reserved)))
		return -EINVAL;
	mutex_lock(&tf->lock);
	h = tm_handle_find(tf, ref->id);
	if (h)
		list_del(&h->node);
	mutex_unlock(&tf->lock);
	if (!h)
		return -ENOENT;
	tm_region_put(h->r);
	kfree(h);
	return 0;
}

static int tm_ioc_delete(struct tm_file *tf, void *arg)
{
	struct tiermem_delete *d = arg;
	struct tm_region *r;

	if (d->flags || d->pad || !tm_zero(d->reserved, sizeof(d->reserved)) ||
	    !tm_name_valid(d->name))
		return -EINVAL;
	mutex_lock(&tm_lock);
	r = tm_region_find(d->name);
	if (!r) {
		mutex_unlock(&tm_lock);
		return -ENOENT;
	}
	/* The owner may always delete; others need write permission. */
	if (!uid_eq(current_fsuid(), r->uid) && !tm_may_access(r, true)) {
		mutex_unlock(&tm_lock);
		return -EACCES;
	}
	tm_registry_del(r);
	r->deleted = true;
	if (r->tier == TIERMEM_TIER_PMEM)
		tm_pmem_forget(r);
	trace_tiermem_region_delete(r->id, r->name, r->tier, r->size, 0);
	mutex_unlock(&tm_lock);
	tm_region_put(r);	/* the registry's reference */
	return 0;
}

static void tm_fill_info(struct tiermem_region_info *e, struct tm_region *r)
{
	memcpy(e->name, r->name, sizeof(e->name));
	e->id = r->id;
	e->size = r->size;
	e->tier = r->tier;
	e->state = r->state;
	e->owner_uid = from_kuid_munged(current_user_ns(), r->uid);
	e->mode = r->mode;
	e->numa_node = -1;
	if (r->pm) {
		e->pmem_index = r->pm->index;
		e->pmem_offset = r->pm_off;
		e->bad_bytes = tm_pmem_bad_bytes(r);
		e->numa_node = r->pm->node;
	} else if (r->nr_chunks) {
		e->numa_node = page_to_nid(r->chunks[0]);
	}
}

static u32 tm_list_fill(struct tiermem_region_info *buf, u32 cap)
{
	struct tm_region *r;
	u32 n = 0;

	lockdep_assert_held(&tm_lock);
	list_for_each_entry(r, &tm_regions, node) {
		if (n < cap)
			tm_fill_info(&buf[n], r);
		n++;
	}
	return n;
}

/* Up to capacity entries (no hidden cap); count says how many exist. */
static int tm_ioc_list(struct tm_file *tf, void *arg)
{
	struct tiermem_list *l = arg;
	struct tiermem_region_info *buf = NULL;
	u32 n, cap;
	int ret = 0;

	if (l->flags || l->pad || !tm_zero(l->reserved, sizeof(l->reserved)))
		return -EINVAL;
	if (l->capacity && !l->entries)
		return -EFAULT;
	mutex_lock(&tm_lock);
	n = tm_list_fill(NULL, 0);
	mutex_unlock(&tm_lock);
	do {
		/* Room for what exists now and a few created meanwhile. */
		cap = min_t(u32, l->capacity, n + 16);
		kvfree(buf);
		buf = NULL;
		if (cap) {
			buf = kvcalloc(cap, sizeof(*buf), GFP_KERNEL);
			if (!buf)
				return -ENOMEM;
		}
		mutex_lock(&tm_lock);
		n = tm_list_fill(buf, cap);
		mutex_unlock(&tm_lock);
	} while (n > cap && cap < l->capacity);
	if (cap && copy_to_user(u64_to_user_ptr(l->entries), buf,
				(size_t)min(n, cap) * sizeof(*buf)))
		ret = -EFAULT;
	l->count = n;
	kvfree(buf);
	return ret;
}

static int tm_ioc_stats(struct tm_file *tf, void *arg)
{
	struct tiermem_stats *s = arg;
	struct tm_region *r;

	if (s->flags & ~TIERMEM_STATS_TIER ||
	    !tm_zero(s->reserved, sizeof(s->reserved)))
		return -EINVAL;
	if (s->flags & TIERMEM_STATS_TIER) {
		if (s->id || (s->tier != TIERMEM_TIER_DDR &&
			      s->tier != TIERMEM_TIER_PMEM))
			return -EINVAL;
		tm_tier_counters(s->tier, &s->c, false);
		return 0;
	}
	if (s->tier)
		return -EINVAL;
	r = tm_file_region(tf, s->id, false);
	if (IS_ERR(r))
		return PTR_ERR(r);
	tm_region_counters(r, &s->c, false);
	tm_region_put(r);
	return 0;
}

static int tm_ioc_seal(struct tm_file *tf, void *arg)
{
	struct tiermem_region_ref *ref = arg;
	struct tm_region *r;
	int ret;

	if (ref->flags || ref->pad || !tm_zero(ref->reserved, sizeof(ref->reserved)))
		return -EINVAL;
	r = tm_file_region(tf, ref->id, true);
	if (IS_ERR(r))
		return PTR_ERR(r);
	ret = r->tier == TIERMEM_TIER_PMEM ? tm_pmem_seal(r) : -EINVAL;
	trace_tiermem_region_seal(r->id, r->name, r->tier, r->size, ret);
	tm_region_put(r);
	return ret;
}

static int tm_ioc_attach(struct tm_file *tf, void *arg)
{
	struct tiermem_attach *a = arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (a->flags & ~TIERMEM_ATTACH_FORMAT ||
	    !tm_zero(a->reserved, sizeof(a->reserved)))
		return -EINVAL;
	if (!memchr(a->path, 0, sizeof(a->path)) || !a->path[0])
		return -EINVAL;
	return tm_pmem_attach(a->path, a->flags & TIERMEM_ATTACH_FORMAT,
			      &a->index, &a->size);
}

static int tm_ioc_detach(struct tm_file *tf, void *arg)
{
	struct tiermem_detach *d = arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (d->flags || !tm_zero(d->reserved, sizeof(d->reserved)) ||
	    d->index >= TIERMEM_PMEM_MAX)
		return -EINVAL;
	return tm_pmem_detach(d->index);
}

static int tm_ioc_copy(struct tm_file *tf, void *arg)
{
	struct tiermem_copy *c = arg;
	struct tm_region *src, *dst;
	int ret;

	if (c->flags || c->pad || !tm_zero(c->reserved, sizeof(c->reserved)))
		return -EINVAL;
	c->copied = 0;
	src = tm_file_region(tf, c->src_id, false);
	if (IS_ERR(src))
		return PTR_ERR(src);
	dst = tm_file_region(tf, c->dst_id, true);
	if (IS_ERR(dst)) {
		tm_region_put(src);
		return PTR_ERR(dst);
	}
	ret = tm_copy(src, c->src_offset, dst, c->dst_offset, c->length,
		      &c->copied);
	trace_tiermem_copy(src->id, c->src_offset, dst->id, c->dst_offset,
			   c->length, c->copied, ret);
	tm_region_put(dst);
	tm_region_put(src);
	return ret;
}

static int tm_ioc_export(struct tm_file *tf, void *arg)
{
	struct tiermem_export *e = arg;
	bool write = e->flags & TIERMEM_EXPORT_WRITE;
	struct tm_region *r;
	struct dma_buf *buf;
	int fd;

	if (e->flags & ~(TIERMEM_EXPORT_CLOEXEC | TIERMEM_EXPORT_WRITE) ||
	    !tm_zero(e->reserved, sizeof(e->reserved)))
		return -EINVAL;
	r = tm_file_region(tf, e->id, write);
	if (IS_ERR(r))
		return PTR_ERR(r);
	fd = get_unused_fd_flags(e->flags & TIERMEM_EXPORT_CLOEXEC ? O_CLOEXEC : 0);
	if (fd < 0) {
		tm_region_put(r);
		return fd;
	}
	buf = tm_export(r, e->offset, e->length, write);
	tm_region_put(r);
	if (IS_ERR(buf)) {
		put_unused_fd(fd);
		return PTR_ERR(buf);
	}
	/* Installed once the caller has the number (tm_call_finish). */
	e->fd = fd;
	tm_call_of(arg)->buf = buf;
	return 0;
}

struct tm_ioctl_desc {
	unsigned int cmd;
	int (*fn)(struct tm_file *tf, void *arg);
};

static const struct tm_ioctl_desc tm_ioctls[] = {
	[_IOC_NR(TIERMEM_IOC_VERSION)] = { TIERMEM_IOC_VERSION, tm_ioc_version },
	[_IOC_NR(TIERMEM_IOC_CREATE)] = { TIERMEM_IOC_CREATE, tm_ioc_create },
	[_IOC_NR(TIERMEM_IOC_OPEN)] = { TIERMEM_IOC_OPEN, tm_ioc_open },
	[_IOC_NR(TIERMEM_IOC_CLOSE)] = { TIERMEM_IOC_CLOSE, tm_ioc_close },
	[_IOC_NR(TIERMEM_IOC_DELETE)] = { TIERMEM_IOC_DELETE, tm_ioc_delete },
	[_IOC_NR(TIERMEM_IOC_LIST)] = { TIERMEM_IOC_LIST, tm_ioc_list },
	[_IOC_NR(TIERMEM_IOC_STATS)] = { TIERMEM_IOC_STATS, tm_ioc_stats },
	[_IOC_NR(TIERMEM_IOC_SEAL)] = { TIERMEM_IOC_SEAL, tm_ioc_seal },
	[_IOC_NR(TIERMEM_IOC_ATTACH)] = { TIERMEM_IOC_ATTACH, tm_ioc_attach },
	[_IOC_NR(TIERMEM_IOC_DETACH)] = { TIERMEM_IOC_DETACH, tm_ioc_detach },
	[_IOC_NR(TIERMEM_IOC_COPY)] = { TIERMEM_IOC_COPY, tm_ioc_copy },
	[_IOC_NR(TIERMEM_IOC_EXPORT)] = { TIERMEM_IOC_EXPORT, tm_ioc_export },
};

/* After the copy-out: @ok says whether the caller got the result. */
static void tm_call_finish(struct tm_file *tf, struct tm_call *call, bool ok)
{
	struct tiermem_export *e = &call->arg.export;

	if (call->created) {
		if (!ok)
			tm_create_undo(tf, call->created);
		tm_region_put(call->created);
	}
	if (call->buf) {
		if (ok) {
			fd_install(e->fd, call->buf->file);
		} else {
			put_unused_fd(e->fd);
			dma_buf_put(call->buf);
		}
	}
}

/*
 * Matched on type and number; the size comes from the command, so structs
 * can grow at their end (copy_struct_from_user checks the extra bytes).
 * COPY's result goes out on failure too: it says how far the copy got.
 */
static long tm_ioctl(struct file *file, unsigned int cmd, unsigned long uarg)
{
	const struct tm_ioctl_desc *d;
	void __user *up = (void __user *)uarg;
	struct tm_call call;
	unsigned int nr = _IOC_NR(cmd);
	size_t ksize, usize = _IOC_SIZE(cmd);
	bool ok;
	int ret;

	if (_IOC_TYPE(cmd) != TIERMEM_IOC_MAGIC || nr >= ARRAY_SIZE(tm_ioctls))
		return -ENOTTY;
	d = &tm_ioctls[nr];
	if (!d->fn || _IOC_DIR(cmd) != _IOC_DIR(d->cmd))
		return -ENOTTY;
	ksize = _IOC_SIZE(d->cmd);
	if (usize < ksize)
		return -EINVAL;
	memset(&call, 0, sizeof(call));
	if (_IOC_DIR(cmd) & _IOC_WRITE) {
		ret = copy_struct_from_user(&call.arg, ksize, up, usize);
		if (ret)
			return ret == -E2BIG ? -EINVAL : ret;
	}
	ret = d->fn(file->private_data, &call.arg);
	ok = !ret || cmd == TIERMEM_IOC_COPY;
	if (ok && (_IOC_DIR(cmd) & _IOC_READ))
		ok = !copy_to_user(up, &call.arg, ksize);
	tm_call_finish(file->private_data, &call, !ret && ok);
	if (ret)
		return ret;
	return ok ? 0 : -EFAULT;
}

static int tm_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct tm_file *tf = file->private_data;
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	struct tm_handle *h;
	int ret;

	mutex_lock(&tf->lock);
	h = tm_handle_find(tf, off >> TM_OFF_SHIFT);
	mutex_lock(&tm_lock);
	ret = h ? tm_mmap_region(h->r, vma, h->writable,
				 off & ((1ULL << TM_OFF_SHIFT) - 1)) : -EINVAL;
	mutex_unlock(&tm_lock);
	mutex_unlock(&tf->lock);
	return ret;
}

static const struct file_operations tm_fops = {
	.owner = THIS_MODULE,
	.open = tm_open,
	.release = tm_release,
	.unlocked_ioctl = tm_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = tm_mmap,
	.get_unmapped_area = tm_get_unmapped_area,
	.llseek = noop_llseek,
};

static struct miscdevice tm_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "tiermem",
	.fops = &tm_fops,
	/* Until udev's rule gives it to the tiermem group (packaging/). */
	.mode = 0600,
};

static void tm_attach_param(void)
{
	char *list, *p, *path;
	u64 size;
	u32 index;
	int ret;

	if (!pmem || !*pmem)
		return;
	list = kstrdup(pmem, GFP_KERNEL);
	if (!list)
		return;
	p = list;
	while ((path = strsep(&p, ",")) != NULL) {
		if (!*path)
			continue;
		ret = tm_pmem_attach(path, pmem_format, &index, &size);
		if (ret)
			pr_err("pmem=%s: attach failed (%d)\n", path, ret);
	}
	kfree(list);
}

static void tm_drop_registry(void)
{
	struct tm_region *r;

	mutex_lock(&tm_lock);
	while (!list_empty(&tm_regions)) {
		r = list_first_entry(&tm_regions, struct tm_region, node);
		tm_registry_del(r);
		mutex_unlock(&tm_lock);
		tm_region_put(r);
		mutex_lock(&tm_lock);
	}
	tm_zombies_reap();
	mutex_unlock(&tm_lock);
}

static int __init tm_init(void)
{
	int ret;

	tm_ddr_max = (u64)ddr_max_mb << 20;
	ret = tm_inode_init();
	if (ret)
		return ret;
	ret = tm_sysfs_init();
	if (ret)
		goto inode;
	tm_attach_param();
	ret = misc_register(&tm_misc);
	if (ret)
		goto drop;
	return 0;
drop:
	tm_regions_unloading();
	tm_drop_registry();
	tm_pmem_detach_all();
	tm_zombies_stop();
	tm_sysfs_exit();
inode:
	tm_inode_exit();
	return ret;
}

static void __exit tm_exit(void)
{
	misc_deregister(&tm_misc);
	tm_regions_unloading();
	tm_drop_registry();
	tm_pmem_detach_all();
	tm_zombies_stop();
	tm_sysfs_exit();
	tm_inode_exit();
}

module_init(tm_init);
module_exit(tm_exit);
MODULE_DESCRIPTION("tiermem: pinned DDR and PMEM DAX regions with huge mappings");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(DMA_BUF);
