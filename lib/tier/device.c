// SPDX-License-Identifier: MIT
/*
 * The /dev/tiermem ABI, one function per ioctl. Arguments are validated here
 * with messages that name the argument; what only the kernel can judge
 * (permissions, space, state) comes back as its errno with a message naming
 * the region.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tiermem/device.h"
#include "tiermem/error.h"

#define DEV_DEFAULT TIERMEM_DEVICE

static int dev_check(const struct tm_device *dev, const char *what)
{
	if (!dev || dev->fd < 0)
		return tm_err(-EBADF, "%s: the tiermem device is not open", what);
	return 0;
}

/* ioctl with EINTR retried; returns 0 or -errno. */
static int dev_ioctl(const struct tm_device *dev, unsigned long cmd, void *arg)
{
	int ret;

	do
		ret = ioctl(dev->fd, cmd, arg);
	while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : 0;
}

/* The kernel's errno for an operation on region name, as a sentence. */
static int region_err(int err, const char *op, const char *name)
{
	switch (err) {
	case -ENOENT:
		return tm_err(err, "%s: no region named '%s'", op, name);
	case -EEXIST:
		return tm_err(err, "%s: a region named '%s' exists", op, name);
	case -EACCES:
	case -EPERM:
		return tm_err(err, "%s '%s': permission denied (owner and mode of the region)", op, name);
	case -ENOSPC:
		return tm_err(err, "%s '%s': not enough space on the tier", op, name);
	case -ENOMEM:
		return tm_err(err, "%s '%s': out of memory (DDR regions are capped by ddr_max_mb)", op, name);
	case -EBUSY:
		return tm_err(err, "%s '%s': the region is busy (mapped, pinned or exported)", op, name);
	case -ENODEV:
		return tm_err(err, "%s '%s': no PMEM namespace attached there", op, name);
	default:
		return tm_err(err, "%s '%s': %s", op, name, strerror(-err));
	}
}

static int tier_to_uapi(enum tm_tier tier, uint32_t *out)
{
	switch (tier) {
	case TM_TIER_DDR:
		*out = TIERMEM_TIER_DDR;
		return 0;
	case TM_TIER_PMEM:
		*out = TIERMEM_TIER_PMEM;
		return 0;
	default:
		return tm_err(-EINVAL, "tier %d: /dev/tiermem regions are ddr or pmem", (int)tier);
	}
}

static enum tm_tier tier_from_uapi(uint32_t tier)
{
	return tier == TIERMEM_TIER_PMEM ? TM_TIER_PMEM : TM_TIER_DDR;
}

int tm_region_name_check(const char *name)
{
	size_t len;

	if (!name)
		return tm_err(-EINVAL, "region name missing");
	len = strnlen(name, TIERMEM_NAME_MAX);
	if (len == 0)
		return tm_err(-EINVAL, "region name is empty");
	if (len >= TIERMEM_NAME_MAX)
		return tm_err(-EINVAL, "region name longer than %d bytes", TIERMEM_NAME_MAX - 1);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return tm_err(-EINVAL, "region name '%s': byte %zu is not one of [A-Za-z0-9._-]",
				      name, i);
	}
	return 0;
}

const char *tm_region_state_name(uint32_t state)
{
	switch (state) {
	case TIERMEM_STATE_VOLATILE:
		return "volatile";
	case TIERMEM_STATE_FILLING:
		return "filling";
	case TIERMEM_STATE_SEALED:
		return "sealed";
	default:
		return "unknown";
	}
}

int tm_device_open(struct tm_device *dev, const char *path)
{
	int fd, ret;

	if (!dev)
		return tm_err(-EINVAL, "tm_device_open: no device struct");
	memset(dev, 0, sizeof(*dev));
	dev->fd = -1;
	if (!path)
		path = DEV_DEFAULT;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT || ret == -ENXIO || ret == -ENODEV)
			return tm_err(-ENODEV, "%s: no such device: the tiermem module is not loaded "
				      "(modprobe tiermem); the file, anonymous and pmem mappings work without it",
				      path);
		if (ret == -EACCES || ret == -EPERM)
			return tm_err(ret, "%s: permission denied (the udev rule gives group tiermem rw)",
				      path);
		return tm_err(ret, "%s: %s", path, strerror(-ret));
	}
	dev->fd = fd;
	ret = tm_device_refresh(dev);
	if (ret == -ENOTTY || ret == -EINVAL) {
		ret = tm_err(-ENODEV, "%s is not a tiermem device", path);
	} else if (!ret && dev->version.abi_version != TIERMEM_ABI_VERSION) {
		ret = tm_err(-EPROTO, "%s speaks tiermem ABI %u, this library ABI %d: rebuild one of them",
			     path, dev->version.abi_version, TIERMEM_ABI_VERSION);
	}
	if (ret) {
		close(fd);
		dev->fd = -1;
	}
	return ret;
}

void tm_device_close(struct tm_device *dev)
{
	if (dev && dev->fd >= 0) {
		close(dev->fd);
		dev->fd = -1;
	}
}

int tm_device_refresh(struct tm_device *dev)
{
	struct tiermem_version v;
	int ret = dev_check(dev, "version");

	if (ret)
		return ret;
	memset(&v, 0, sizeof(v));
	ret = dev_ioctl(dev, TIERMEM_IOC_VERSION, &v);
	if (ret)
		return tm_err(ret, "TIERMEM_IOC_VERSION: %s", strerror(-ret));
	dev->version = v;
	return 0;
}

/* numa_node < 0: anywhere. */
static int region_create(struct tm_device *dev, const char *name, enum tm_tier tier,
			 uint64_t size, uint32_t mode, int pmem_index, int numa_node,
			 struct tm_region *r)
{
	struct tiermem_create c;
	uint32_t utier = 0;
	int ret;

	if ((ret = dev_check(dev, "create")) || (ret = tm_region_name_check(name)) ||
	    (ret = tier_to_uapi(tier, &utier)))
		return ret;
	if (!r)
		return tm_err(-EINVAL, "create '%s': no region struct", name);
	if (!size || size % TIERMEM_CHUNK_SIZE)
		return tm_err(-EINVAL, "create '%s': size %llu is not a positive multiple of 2 MiB",
			      name, (unsigned long long)size);
	if (mode & ~0777u)
		return tm_err(-EINVAL, "create '%s': mode %#o has bits beyond 0777", name, mode);
	if (pmem_index < TM_PMEM_ANY || pmem_index >= TIERMEM_PMEM_MAX)
		return tm_err(-EINVAL, "create '%s': PMEM index %d out of range", name, pmem_index);
	if (tier == TM_TIER_DDR && pmem_index > 0)
		return tm_err(-EINVAL, "create '%s': a PMEM index for a DDR region", name);

	memset(&c, 0, sizeof(c));
	memcpy(c.name, name, strlen(name));
	c.tier = utier;
	c.size = size;
	c.mode = mode;
	if (tier == TM_TIER_PMEM) {
		if (pmem_index == TM_PMEM_ANY)
			c.flags = TIERMEM_CREATE_ANY_PMEM;
		else
			c.pmem_index = (uint32_t)pmem_index;
	}
	if (numa_node >= 0) {
		c.flags |= TIERMEM_CREATE_NODE;
		c.numa_node = numa_node;
	}
	ret = dev_ioctl(dev, TIERMEM_IOC_CREATE, &c);
	if (ret)
		return region_err(ret, "create", name);

	memset(r, 0, sizeof(*r));
	memcpy(r->name, name, strlen(name));
	r->id = c.id;
	r->size = size;
	r->mmap_offset = c.mmap_offset;
	r->tier = tier;
	r->state = tier == TM_TIER_PMEM ? TIERMEM_STATE_FILLING : TIERMEM_STATE_VOLATILE;
	r->pmem_index = tier == TM_TIER_PMEM && pmem_index >= 0 ? (uint32_t)pmem_index : 0;
	r->writable = 1;
	return 0;
}

int tm_region_create(struct tm_device *dev, const char *name, enum tm_tier tier,
		     uint64_t size, uint32_t mode, int pmem_index, struct tm_region *r)
{
	return region_create(dev, name, tier, size, mode, pmem_index, -1, r);
}

int tm_region_create_node(struct tm_device *dev, const char *name, uint64_t size,
			  uint32_t mode, int numa_node, struct tm_region *r)
{
	if (numa_node < 0)
		return tm_err(-EINVAL, "create '%s': NUMA node %d", name ? name : "", numa_node);
	return region_create(dev, name, TM_TIER_DDR, size, mode, TM_PMEM_ANY, numa_node, r);
}

/* TIERMEM_IOC_OPEN into a tm_region; the kernel adds a handle to this file. */
static int region_open_ioctl(struct tm_device *dev, const char *name, unsigned int flags,
			     struct tm_region *r)
{
	struct tiermem_open o;
	int ret;

	memset(&o, 0, sizeof(o));
	memcpy(o.name, name, strlen(name));
	o.flags = flags & TM_REGION_WRITE ? TIERMEM_OPEN_WRITE : 0;
	ret = dev_ioctl(dev, TIERMEM_IOC_OPEN, &o);
	if (ret)
		return region_err(ret, "open", name);
	memset(r, 0, sizeof(*r));
	memcpy(r->name, name, strlen(name));
	r->id = o.id;
	r->size = o.size;
	r->mmap_offset = o.mmap_offset;
	r->counters_offset = o.counters_offset;
	r->tier = tier_from_uapi(o.tier);
	r->state = o.state;
	r->pmem_index = o.pmem_index;
	r->writable = !!(flags & TM_REGION_WRITE);
	return 0;
}

int tm_region_open(struct tm_device *dev, const char *name, unsigned int flags,
		   struct tm_region *r)
{
	int ret;

	if ((ret = dev_check(dev, "open")) || (ret = tm_region_name_check(name)))
		return ret;
	if (!r)
		return tm_err(-EINVAL, "open '%s': no region struct", name);
	if (flags & ~TM_REGION_WRITE)
		return tm_err(-EINVAL, "open '%s': unknown flags %#x", name, flags);
	return region_open_ioctl(dev, name, flags, r);
}

static int region_ref(struct tm_device *dev, const struct tm_region *r, const char *op,
		      unsigned long cmd)
{
	struct tiermem_region_ref ref;
	int ret = dev_check(dev, op);

	if (ret)
		return ret;
	if (!r)
		return tm_err(-EINVAL, "%s: no region", op);
	memset(&ref, 0, sizeof(ref));
	ref.id = r->id;
	ret = dev_ioctl(dev, cmd, &ref);
	return ret ? region_err(ret, op, r->name) : 0;
}

int tm_region_close(struct tm_device *dev, struct tm_region *r)
{
	return region_ref(dev, r, "close", TIERMEM_IOC_CLOSE);
}

int tm_region_seal(struct tm_device *dev, struct tm_region *r)
{
	int ret;

	if (r && r->tier != TM_TIER_PMEM)
		return tm_err(-EINVAL, "seal '%s': only PMEM regions are sealed", r->name);
	ret = region_ref(dev, r, "seal", TIERMEM_IOC_SEAL);
	if (!ret)
		r->state = TIERMEM_STATE_SEALED;
	return ret;
}

int tm_region_delete(struct tm_device *dev, const char *name)
{
	struct tiermem_delete d;
	int ret;

	if ((ret = dev_check(dev, "delete")) || (ret = tm_region_name_check(name)))
		return ret;
	memset(&d, 0, sizeof(d));
	memcpy(d.name, name, strlen(name));
	ret = dev_ioctl(dev, TIERMEM_IOC_DELETE, &d);
	return ret ? region_err(ret, "delete", name) : 0;
}

int tm_region_list(struct tm_device *dev, struct tiermem_region_info **out, size_t *count)
{
	struct tiermem_region_info *buf = NULL;
	struct tiermem_list l;
	uint32_t cap = 16;
	int ret;

	if ((ret = dev_check(dev, "list")))
		return ret;
	if (!out || !count)
		return tm_err(-EINVAL, "list: no output pointers");
	/* Regions may appear between two calls: grow until everything fits. */
	for (;;) {
		struct tiermem_region_info *nb = realloc(buf, (size_t)cap * sizeof(*buf));

		if (!nb) {
			free(buf);
			return tm_err(-ENOMEM, "list: out of memory");
		}
		buf = nb;
		memset(buf, 0, (size_t)cap * sizeof(*buf));
		memset(&l, 0, sizeof(l));
		l.entries = (uint64_t)(uintptr_t)buf;
		l.capacity = cap;
		ret = dev_ioctl(dev, TIERMEM_IOC_LIST, &l);
		if (ret) {
			free(buf);
			return tm_err(ret, "list: %s", strerror(-ret));
		}
		if (l.count <= cap)
			break;
		cap = l.count + 16;
	}
	for (uint32_t i = 0; i < l.count; i++)
		buf[i].name[TIERMEM_NAME_MAX - 1] = '\0';
	*out = buf;
	*count = l.count;
	return 0;
}

int tm_region_mmap(struct tm_device *dev, const struct tm_region *r, unsigned int flags,
		   void **addr)
{
	int prot = PROT_READ, mflags = MAP_SHARED, ret;
	void *p;

	if ((ret = dev_check(dev, "mmap")))
		return ret;
	if (!r || !addr)
		return tm_err(-EINVAL, "mmap: no region or no address pointer");
	if (flags & ~(TM_MAP_WRITE | TM_MAP_POPULATE))
		return tm_err(-EINVAL, "mmap '%s': unknown flags %#x", r->name, flags);
	if (flags & TM_MAP_WRITE)
		prot |= PROT_WRITE;
	if (flags & TM_MAP_POPULATE)
		mflags |= MAP_POPULATE;
	p = mmap(NULL, r->size, prot, mflags, dev->fd, (off_t)r->mmap_offset);
	if (p == MAP_FAILED) {
		ret = -errno;
		if (ret == -EACCES || ret == -EPERM)
			return tm_err(ret, "mmap '%s'%s: permission denied%s", r->name,
				      flags & TM_MAP_WRITE ? " writable" : "",
				      r->state == TIERMEM_STATE_SEALED ? " (the region is sealed)" : "");
		return tm_err(ret, "mmap '%s' (%llu bytes): %s", r->name,
			      (unsigned long long)r->size, strerror(-ret));
	}
	*addr = p;
	return 0;
}

int tm_region_munmap(const struct tm_region *r, void *addr)
{
	if (!r || !addr)
		return tm_err(-EINVAL, "munmap: no region or address");
	if (munmap(addr, r->size))
		return tm_err(-errno, "munmap '%s': %s", r->name, strerror(errno));
	return 0;
}

static int stats_ioctl(struct tm_device *dev, struct tiermem_stats *s, const char *what,
		       struct tiermem_counters *c)
{
	int ret = dev_ioctl(dev, TIERMEM_IOC_STATS, s);

	if (ret)
		return tm_err(ret, "stats of %s: %s", what, strerror(-ret));
	*c = s->c;
	return 0;
}

int tm_region_stats(struct tm_device *dev, const struct tm_region *r,
		    struct tiermem_counters *c)
{
	struct tiermem_stats s;
	int ret;

	if ((ret = dev_check(dev, "stats")))
		return ret;
	if (!r || !c)
		return tm_err(-EINVAL, "stats: no region or no counters");
	memset(&s, 0, sizeof(s));
	s.id = r->id;
	return stats_ioctl(dev, &s, r->name, c);
}

int tm_tier_stats(struct tm_device *dev, enum tm_tier tier, struct tiermem_counters *c)
{
	struct tiermem_stats s;
	int ret;

	if ((ret = dev_check(dev, "stats")))
		return ret;
	memset(&s, 0, sizeof(s));
	if ((ret = tier_to_uapi(tier, &s.tier)))
		return ret;
	if (!c)
		return tm_err(-EINVAL, "stats: no counters");
	s.flags = TIERMEM_STATS_TIER;
	return stats_ioctl(dev, &s, tier == TM_TIER_PMEM ? "tier pmem" : "tier ddr", c);
}

int tm_region_counters_map(struct tm_device *dev, const struct tm_region *r, int write,
			   struct tiermem_user_counters **uc)
{
	uint64_t off;
	long page = sysconf(_SC_PAGESIZE);
	void *p;
	int ret;

	if ((ret = dev_check(dev, "counters")))
		return ret;
	if (!r || !uc)
		return tm_err(-EINVAL, "counters: no region or no pointer");
	off = r->counters_offset;
	if (!off) {
		/*
		 * A region from create: its counters offset comes with an open,
		 * which the kernel merges into this file's handle (one handle per
		 * file and region), so there is nothing to close afterwards.
		 */
		struct tm_region tmp;

		ret = region_open_ioctl(dev, r->name, 0, &tmp);
		if (ret)
			return ret;
		off = tmp.counters_offset;
	}
	p = mmap(NULL, (size_t)page, PROT_READ | (write ? PROT_WRITE : 0), MAP_SHARED, dev->fd,
		 (off_t)off);
	if (p == MAP_FAILED)
		return tm_err(-errno, "counters page of '%s'%s: %s", r->name,
			      write ? " (writable)" : "", strerror(errno));
	*uc = p;
	return 0;
}

void tm_region_counters_unmap(struct tiermem_user_counters *uc)
{
	if (uc)
		munmap(uc, (size_t)sysconf(_SC_PAGESIZE));
}

int tm_pmem_attach(struct tm_device *dev, const char *path, unsigned int flags,
		   uint32_t *index, uint64_t *size)
{
	struct tiermem_attach a;
	size_t len;
	int ret;

	if ((ret = dev_check(dev, "attach")))
		return ret;
	if (!path || !(len = strnlen(path, TIERMEM_PATH_MAX)))
		return tm_err(-EINVAL, "attach: no path");
	if (len >= TIERMEM_PATH_MAX)
		return tm_err(-ENAMETOOLONG, "attach: path longer than %d bytes", TIERMEM_PATH_MAX - 1);
	if (flags & ~TM_ATTACH_FORMAT)
		return tm_err(-EINVAL, "attach %s: unknown flags %#x", path, flags);
	memset(&a, 0, sizeof(a));
	memcpy(a.path, path, len);
	a.flags = flags & TM_ATTACH_FORMAT ? TIERMEM_ATTACH_FORMAT : 0;
	ret = dev_ioctl(dev, TIERMEM_IOC_ATTACH, &a);
	switch (ret) {
	case 0:
		break;
	case -EPERM:
		return tm_err(ret, "attach %s: needs CAP_SYS_ADMIN", path);
	case -EBUSY:
		return tm_err(ret, "attach %s: already attached or in use", path);
	case -EUCLEAN:
	case -EBADMSG:
		return tm_err(ret, "attach %s: the region table on the media is corrupted (see dmesg)",
			      path);
	case -ENODATA:
		return tm_err(ret, "attach %s: no region table (attach with format to write one)", path);
	default:
		return tm_err(ret, "attach %s: %s (a DAX-capable fsdax /dev/pmemN? see dmesg)", path,
			      strerror(-ret));
	}
	if (index)
		*index = a.index;
	if (size)
		*size = a.size;
	return 0;
}

int tm_pmem_detach(struct tm_device *dev, uint32_t index)
{
	struct tiermem_detach d;
	int ret;

	if ((ret = dev_check(dev, "detach")))
		return ret;
	if (index >= TIERMEM_PMEM_MAX)
		return tm_err(-EINVAL, "detach: PMEM index %u out of range", index);
	memset(&d, 0, sizeof(d));
	d.index = index;
	ret = dev_ioctl(dev, TIERMEM_IOC_DETACH, &d);
	if (ret == -EBUSY)
		return tm_err(ret, "detach pmem %u: regions on it are open, mapped or pinned", index);
	if (ret)
		return tm_err(ret, "detach pmem %u: %s", index, strerror(-ret));
	return 0;
}

/* a + b <= limit without overflow. */
static int range_ok(uint64_t a, uint64_t b, uint64_t limit)
{
	return a <= limit && b <= limit - a;
}

int tm_region_copy(struct tm_device *dev, const struct tm_region *src, uint64_t src_off,
		   const struct tm_region *dst, uint64_t dst_off, uint64_t length,
		   uint64_t *copied)
{
	struct tiermem_copy c;
	int ret;

	if ((ret = dev_check(dev, "copy")))
		return ret;
	if (!src || !dst)
		return tm_err(-EINVAL, "copy: no source or no target region");
	if (!length)
		return tm_err(-EINVAL, "copy '%s' -> '%s': length 0", src->name, dst->name);
	if (!range_ok(src_off, length, src->size))
		return tm_err(-EINVAL, "copy: [%llu, +%llu) is beyond the end of '%s' (%llu bytes)",
			      (unsigned long long)src_off, (unsigned long long)length, src->name,
			      (unsigned long long)src->size);
	if (!range_ok(dst_off, length, dst->size))
		return tm_err(-EINVAL, "copy: [%llu, +%llu) is beyond the end of '%s' (%llu bytes)",
			      (unsigned long long)dst_off, (unsigned long long)length, dst->name,
			      (unsigned long long)dst->size);
	memset(&c, 0, sizeof(c));
	c.src_id = src->id;
	c.src_offset = src_off;
	c.dst_id = dst->id;
	c.dst_offset = dst_off;
	c.length = length;
	ret = dev_ioctl(dev, TIERMEM_IOC_COPY, &c);
	if (copied)
		*copied = c.copied;
	if (ret == -EIO)
		return tm_err(ret, "copy '%s' -> '%s': media error after %llu bytes", src->name,
			      dst->name, (unsigned long long)c.copied);
	if (ret)
		return tm_err(ret, "copy '%s' -> '%s': %s", src->name, dst->name, strerror(-ret));
	return 0;
}

int tm_region_export(struct tm_device *dev, const struct tm_region *r, uint64_t offset,
		     uint64_t length, unsigned int flags, int *fd)
{
	struct tiermem_export e;
	long page = sysconf(_SC_PAGESIZE);
	int ret;

	if ((ret = dev_check(dev, "export")))
		return ret;
	if (!r || !fd)
		return tm_err(-EINVAL, "export: no region or no fd pointer");
	if (flags & ~TM_EXPORT_WRITE)
		return tm_err(-EINVAL, "export '%s': unknown flags %#x", r->name, flags);
	if (offset % (uint64_t)page || length % (uint64_t)page)
		return tm_err(-EINVAL, "export '%s': offset and length must be multiples of %ld",
			      r->name, page);
	if (!range_ok(offset, length, r->size) || offset == r->size)
		return tm_err(-EINVAL, "export '%s': [%llu, +%llu) is beyond its %llu bytes", r->name,
			      (unsigned long long)offset, (unsigned long long)length,
			      (unsigned long long)r->size);
	memset(&e, 0, sizeof(e));
	e.id = r->id;
	e.offset = offset;
	e.length = length;
	e.flags = TIERMEM_EXPORT_CLOEXEC | (flags & TM_EXPORT_WRITE ? TIERMEM_EXPORT_WRITE : 0);
	ret = dev_ioctl(dev, TIERMEM_IOC_EXPORT, &e);
	if (ret)
		return region_err(ret, "export", r->name);
	*fd = e.fd;
	return 0;
}
