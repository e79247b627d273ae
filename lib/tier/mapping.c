// SPDX-License-Identifier: MIT
/*
 * The userspace mapping backends: file, anonymous DDR (4 KiB, THP, hugetlb)
 * and PMEM by path. /dev/tiermem regions are another backend (lib/tier/device.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifdef TM_HAVE_PMEM2
#include <libpmem2.h>
#endif

#include "tiermem/error.h"
#include "tiermem/mapping.h"

#define SZ_2M (2UL << 20)

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

static const char *const tier_names[TM_TIER_COUNT] = {
	[TM_TIER_DDR] = "ddr", [TM_TIER_PMEM] = "pmem",
	[TM_TIER_VRAM] = "vram", [TM_TIER_FILE] = "file", [TM_TIER_NODE] = "node",
};

const char *tm_tier_name(enum tm_tier tier)
{
	return (unsigned int)tier < TM_TIER_COUNT ? tier_names[tier] : "?";
}

static void init_mapping(struct tm_mapping *m, enum tm_tier tier, const char *backend, const char *path)
{
	memset(m, 0, sizeof(*m));
	m->tier = tier;
	snprintf(m->backend, sizeof(m->backend), "%s", backend);
	if (path)
		snprintf(m->path, sizeof(m->path), "%s", path);
}

static void release_munmap(struct tm_mapping *m)
{
	munmap(m->map_addr, m->map_size);
}

/* Bytes the kernel thinks it can still hand out without swapping. */
static long long mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	long long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

static int populate(struct tm_mapping *m, int writable)
{
	volatile const char *p = m->addr;
	unsigned long sum = 0;

	if (writable) {
		/* a write fault gives a private page now, not the shared zero page */
		for (size_t off = 0; off < m->size; off += 4096)
			((volatile char *)m->addr)[off] = 0;
		return 0;
	}
	for (size_t off = 0; off < m->size; off += 4096)
		sum += p[off];
	(void)sum;
	return 0;
}

int tm_map_file(struct tm_mapping *m, const char *path, unsigned int flags)
{
	int wr = !!(flags & TM_MAP_WRITE);
	struct stat st;
	void *addr;
	int fd, err;

	init_mapping(m, TM_TIER_FILE, "file", path);
	fd = open(path, (wr ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return tm_err(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st)) {
		err = -errno;
		close(fd);
		return tm_err(err, "%s: %s", path, strerror(-err));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return tm_err(-EINVAL, "%s: not a regular file", path);
	}
	if (st.st_size == 0) {
		close(fd);
		return tm_err(-EINVAL, "%s: empty file", path);
	}
	addr = mmap(NULL, st.st_size, PROT_READ | (wr ? PROT_WRITE : 0),
		    MAP_SHARED | ((flags & TM_MAP_POPULATE) ? MAP_POPULATE : 0), fd, 0);
	err = -errno;
	close(fd);
	if (addr == MAP_FAILED)
		return tm_err(err, "%s: mmap: %s", path, strerror(-err));
	/* Weights are read front to back once per token: ask for huge page-cache pages and readahead. */
	madvise(addr, st.st_size, MADV_HUGEPAGE);
	madvise(addr, st.st_size, MADV_WILLNEED);
	m->addr = m->map_addr = addr;
	m->size = m->map_size = st.st_size;
	m->release = release_munmap;
	return 0;
}

int tm_map_anon(struct tm_mapping *m, size_t size, enum tm_pages pages, unsigned int flags)
{
	static const char *const names[] = { "anon-4k", "anon-thp", "hugetlb" };
	long long avail = mem_available();
	int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	size_t len = size;
	char *addr;

	if ((unsigned int)pages > TM_PAGES_HUGETLB)
		return tm_err(-EINVAL, "unknown page kind %d", pages);
	init_mapping(m, TM_TIER_DDR, names[pages], NULL);
	if (size == 0)
		return tm_err(-EINVAL, "size is 0");
	if (avail > 0 && size > (unsigned long long)avail)
		return tm_err(-ENOMEM, "%zu bytes asked, only %lld available in memory", size, avail);
	if (pages == TM_PAGES_HUGETLB) {
		len = (size + SZ_2M - 1) & ~(SZ_2M - 1);
		mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB;
	} else if (pages == TM_PAGES_THP) {
		len = size + SZ_2M;	/* room to align the start to 2 MiB */
	}
	addr = mmap(NULL, len, PROT_READ | PROT_WRITE, mflags, -1, 0);
	if (addr == MAP_FAILED) {
		if (pages == TM_PAGES_HUGETLB)
			return tm_err(-errno, "hugetlb: no %zu MiB of 2 MiB huge pages reserved "
				      "(echo N > /proc/sys/vm/nr_hugepages)", len >> 20);
		return tm_err(-errno, "mmap %zu bytes: %s", len, strerror(errno));
	}
	m->map_addr = addr;
	m->map_size = len;
	m->release = release_munmap;
	if (pages == TM_PAGES_THP) {
		m->addr = (void *)(((unsigned long)addr + SZ_2M - 1) & ~(SZ_2M - 1));
		madvise(m->addr, size, MADV_HUGEPAGE);
	} else {
		m->addr = addr;
		if (pages == TM_PAGES_4K)
			madvise(addr, size, MADV_NOHUGEPAGE);
	}
	m->size = size;
	if (flags & TM_MAP_POPULATE)
		populate(m, 1);
	return 0;
}

int tm_map_load(struct tm_mapping *m, const char *path, enum tm_pages pages)
{
	struct stat st;
	size_t done = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tm_err(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size == 0) {
		close(fd);
		return tm_err(-EINVAL, "%s: not a non-empty regular file", path);
	}
	ret = tm_map_anon(m, st.st_size, pages, 0);
	if (ret) {
		close(fd);
		return ret;
	}
	snprintf(m->path, sizeof(m->path), "%s", path);
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, (char *)m->addr + done, st.st_size - done);

		if (n <= 0) {
			ret = tm_err(n < 0 ? -errno : -EIO, "%s: read at %zu: %s", path, done,
				     n < 0 ? strerror(errno) : "file shrank");
			close(fd);
			tm_unmap(m);
			return ret;
		}
		done += n;
	}
	close(fd);
	return 0;
}

/* A character device whose sysfs subsystem is "dax": a devdax namespace. */
static int is_devdax(const struct stat *st)
{
	char link[128], target[256];
	ssize_t n;

	if (!S_ISCHR(st->st_mode))
		return 0;
	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/subsystem",
		 major(st->st_rdev), minor(st->st_rdev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	return strstr(target, "/dax") != NULL;
}

#ifdef TM_HAVE_PMEM2
static void release_pmem2(struct tm_mapping *m)
{
	struct pmem2_map *map = m->priv;

	pmem2_map_delete(&map);
}

/* libpmem2 maps both devdax and files; store granularity PAGE means "not DAX". */
static int map_pmem2(struct tm_mapping *m, int fd, size_t size, int devdax)
{
	struct pmem2_config *cfg = NULL;
	struct pmem2_source *src = NULL;
	struct pmem2_map *map = NULL;
	int ret;

	ret = pmem2_source_from_fd(&src, fd);
	if (!ret)
		ret = pmem2_config_new(&cfg);
	if (!ret)
		ret = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	if (!ret && size)
		ret = pmem2_config_set_length(cfg, size);
	if (!ret)
		ret = pmem2_map_new(&map, cfg, src);
	if (ret) {
		ret = tm_err(ret < 0 ? ret : -EINVAL, "%s: libpmem2: %s", m->path, pmem2_errormsg());
		goto out;
	}
	if (!devdax && pmem2_map_get_store_granularity(map) == PMEM2_GRANULARITY_PAGE) {
		pmem2_map_delete(&map);
		ret = tm_err(-EINVAL, "%s: not on a DAX filesystem (mount with -o dax)", m->path);
		goto out;
	}
	m->addr = m->map_addr = pmem2_map_get_address(map);
	m->size = m->map_size = pmem2_map_get_size(map);
	m->priv = map;
	m->release = release_pmem2;
out:
	if (cfg)
		pmem2_config_delete(&cfg);
	if (src)
		pmem2_source_delete(&src);
	return ret;
}
#else
/* Without libpmem2: MAP_SYNC is accepted only on DAX, which is the check we need. */
static int map_pmem2(struct tm_mapping *m, int fd, size_t size, int devdax)
{
	int mflags = devdax ? MAP_SHARED : MAP_SHARED_VALIDATE | MAP_SYNC;
	void *addr;
	struct stat st;

	if (!size) {
		if (devdax || fstat(fd, &st))
			return tm_err(-EINVAL, "%s: give a size (built without libpmem2)", m->path);
		size = st.st_size;
	}
	addr = mmap(NULL, size, PROT_READ | PROT_WRITE, mflags, fd, 0);
	if (addr == MAP_FAILED) {
		if (errno == EOPNOTSUPP)
			return tm_err(-EINVAL, "%s: not on a DAX filesystem (mount with -o dax)", m->path);
		return tm_err(-errno, "%s: mmap: %s", m->path, strerror(errno));
	}
	m->addr = m->map_addr = addr;
	m->size = m->map_size = size;
	m->release = release_munmap;
	return 0;
}
#endif

int tm_map_pmem(struct tm_mapping *m, const char *path, size_t size, unsigned int flags)
{
	struct stat st;
	int fd, ret, devdax;

	init_mapping(m, TM_TIER_PMEM, "fsdax", path);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return tm_err(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st)) {
		ret = tm_err(-errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	devdax = is_devdax(&st);
	if (devdax) {
		snprintf(m->backend, sizeof(m->backend), "devdax");
	} else if (!S_ISREG(st.st_mode)) {
		ret = tm_err(-EINVAL, "%s: neither a devdax device nor a file on a DAX filesystem", path);
		goto out;
	} else if (size > (size_t)st.st_size) {
		ret = tm_err(-EINVAL, "%s: %zu bytes asked, the file has %lld", path, size, (long long)st.st_size);
		goto out;
	}
	ret = map_pmem2(m, fd, size, devdax);
	if (!ret && (flags & TM_MAP_POPULATE))
		populate(m, 0);
out:
	close(fd);
	return ret;
}

void tm_mapping_copy(struct tm_mapping *m, size_t off, const void *src, size_t n)
{
#ifdef TM_HAVE_PMEM2
	if (m->release == release_pmem2) {
		pmem2_memcpy_fn copy = pmem2_get_memcpy_fn(m->priv);

		copy((char *)m->addr + off, src, n, PMEM2_F_MEM_NONTEMPORAL | PMEM2_F_MEM_NODRAIN);
		return;
	}
#endif
	memcpy((char *)m->addr + off, src, n);
}

int tm_mapping_flush(struct tm_mapping *m)
{
#ifdef TM_HAVE_PMEM2
	if (m->release == release_pmem2) {
		pmem2_drain_fn drain = pmem2_get_drain_fn(m->priv);

		drain();
		return 0;
	}
#endif
	if (m->tier == TM_TIER_DDR || m->tier == TM_TIER_NODE)
		return 0;
	if (msync(m->map_addr, m->map_size, MS_SYNC))
		return tm_err(-errno, "%s: msync: %s", m->path[0] ? m->path : m->backend, strerror(errno));
	return 0;
}

void tm_unmap(struct tm_mapping *m)
{
	if (m && m->release)
		m->release(m);
	if (m)
		memset(m, 0, sizeof(*m));
}
