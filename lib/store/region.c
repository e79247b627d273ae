// SPDX-License-Identifier: MIT
/*
 * Regions of a tier over their three stores (include/tiermem/region.h):
 * files (ordinary or DAX), devdax devices, /dev/tiermem PMEM regions, and
 * the volatile memory a sealed region is copied into for a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "tiermem/device.h"
#include "tiermem/error.h"
#include "tiermem/region.h"

#define SZ_2M (2ULL << 20)

static const char *const store_names[] = {
	[TM_STORE_FILE] = "file", [TM_STORE_DAX] = "dax", [TM_STORE_MODULE] = "tiermem",
};

const char *tm_store_name(enum tm_store store)
{
	return (unsigned int)store <= TM_STORE_MODULE ? store_names[store] : "?";
}

int tm_store_parse(const char *s)
{
	for (int i = 0; i <= TM_STORE_MODULE; i++)
		if (!strcmp(s, store_names[i]))
			return i;
	return -1;
}

bool tm_module_usable(void)
{
	const char *b = getenv("TIERMEM_BACKEND");
	struct tm_device dev;
	bool ok;

	if (b && !strcmp(b, "user"))
		return false;
	if (tm_device_open(&dev, NULL)) {
		tm_clear_error();
		return false;
	}
	ok = dev.version.nr_pmem > 0;
	tm_device_close(&dev);
	return ok;
}

static uint64_t round_2m(uint64_t n)
{
	return (n + SZ_2M - 1) & ~(SZ_2M - 1);
}

static bool is_chardev(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISCHR(st.st_mode);
}

static void filling_path(char *buf, size_t n, const char *loc)
{
	snprintf(buf, n, "%s.filling", loc);
}

/* fsync the directory holding path, so a rename or unlink in it is durable. */
static int sync_dir_of(const char *path)
{
	char tmp[TM_LOC_MAX + 32];
	int fd, ret = 0;

	snprintf(tmp, sizeof(tmp), "%s", path);
	fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

static int free_bytes_at(const char *path, unsigned long long *out)
{
	char tmp[TM_LOC_MAX + 32];
	struct statvfs sv;

	snprintf(tmp, sizeof(tmp), "%s", path);
	if (statvfs(dirname(tmp), &sv))
		return -errno;
	*out = (unsigned long long)sv.f_bavail * sv.f_frsize;
	return 0;
}

static int create_file(struct tm_wregion *r)
{
	char path[TM_LOC_MAX + 16];
	unsigned long long avail = 0;
	int fd, err;

	filling_path(path, sizeof(path), r->loc);
	if (!access(r->loc, F_OK))
		return tm_err(-EEXIST, "%s exists", r->loc);
	unlink(path);	/* a fill that was interrupted: nothing in it is trusted */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return tm_err(-errno, "tier '%s': %s: %s", r->label, path, strerror(errno));
	err = posix_fallocate(fd, 0, (off_t)r->size);
	close(fd);
	if (err) {
		unlink(path);
		if (err == ENOSPC) {
			free_bytes_at(path, &avail);
			return tm_err(-ENOSPC, "tier '%s' is full: %" PRIu64 " bytes needed at %s, %llu free "
				      "(%llu bytes missing)", r->label, r->size, path, avail,
				      (unsigned long long)r->size > avail ? (unsigned long long)r->size - avail : 0);
		}
		return tm_err(-err, "tier '%s': allocating %" PRIu64 " bytes at %s: %s", r->label,
			      r->size, path, strerror(err));
	}
	if (r->store == TM_STORE_DAX)
		err = tm_map_pmem(&r->map, path, 0, 0);
	else
		err = tm_map_file(&r->map, path, TM_MAP_WRITE);
	if (err) {
		unlink(path);
		return tm_err_prefix(err, "tier '%s'", r->label);
	}
	return 0;
}

/* A devdax device holds one region from offset 0; it keeps no state of its own. */
static int create_devdax(struct tm_wregion *r)
{
	int err = tm_map_pmem(&r->map, r->loc, 0, 0);

	if (err)
		return tm_err_prefix(err, "tier '%s'", r->label);
	if (r->map.size < r->size) {
		uint64_t have = r->map.size;

		tm_unmap(&r->map);
		return tm_err(-ENOSPC, "tier '%s' is full: %" PRIu64 " bytes needed on %s, which has %"
			      PRIu64 " (%" PRIu64 " bytes missing)", r->label, r->size, r->loc, have,
			      r->size - have);
	}
	return 0;
}

static int create_module(struct tm_wregion *r)
{
	struct tm_device dev;
	struct tm_region reg;
	int err;

	if ((err = tm_device_open(&dev, NULL)))
		return err;
	err = tm_region_create(&dev, r->loc, TM_TIER_PMEM, r->size, 0644, TM_PMEM_ANY, &reg);
	if (err == -ENOSPC)
		err = tm_err_prefix(-ENOSPC, "tier '%s' is full: no room for %" PRIu64 " bytes in the "
				    "module's PMEM", r->label, r->size);
	else if (err)
		err = tm_err_prefix(err, "tier '%s'", r->label);
	tm_device_close(&dev);
	if (err)
		return err;
	err = tm_map_region(&r->map, r->loc, TM_MAP_WRITE);
	if (err) {
		tm_err_prefix(err, "tier '%s'", r->label);
		tm_region_delete_at(TM_STORE_MODULE, r->loc);
		return err;
	}
	return 0;
}

int tm_wregion_create(struct tm_wregion *r, enum tm_store store, const char *loc,
		      uint64_t size, const char *label)
{
	memset(r, 0, sizeof(*r));
	r->store = store;
	r->size = round_2m(size ? size : 1);
	snprintf(r->label, sizeof(r->label), "%s", label);
	if (snprintf(r->loc, sizeof(r->loc), "%s", loc) >= (int)sizeof(r->loc) - 16)
		return tm_err(-ENAMETOOLONG, "tier '%s': location too long: %s", label, loc);
	switch (store) {
	case TM_STORE_FILE:
		return create_file(r);
	case TM_STORE_DAX:
		return is_chardev(loc) ? create_devdax(r) : create_file(r);
	case TM_STORE_MODULE:
		return create_module(r);
	}
	return tm_err(-EINVAL, "unknown store %d", store);
}

void tm_wregion_write(struct tm_wregion *r, uint64_t off, const void *src, uint64_t n)
{
	tm_mapping_copy(&r->map, off, src, n);
}

static int seal_file(struct tm_wregion *r)
{
	char path[TM_LOC_MAX + 16];
	int err;

	filling_path(path, sizeof(path), r->loc);
	if ((err = tm_mapping_flush(&r->map)))
		return err;
	tm_unmap(&r->map);
	/* the data is durable; only now does the region get its sealed name */
	if (chmod(path, 0444) || rename(path, r->loc))
		return tm_err(-errno, "sealing %s: %s", r->loc, strerror(errno));
	if ((err = sync_dir_of(r->loc)))
		return tm_err(err, "sealing %s: fsync of its directory: %s", r->loc, strerror(-err));
	return 0;
}

static int seal_module(struct tm_wregion *r)
{
	struct tm_device dev;
	struct tm_region reg;
	int err;

	tm_unmap(&r->map);
	if ((err = tm_device_open(&dev, NULL)))
		return err;
	err = tm_region_open(&dev, r->loc, TM_REGION_WRITE, &reg);
	if (!err)
		err = tm_region_seal(&dev, &reg);	/* the module flushes the data first */
	tm_device_close(&dev);
	return err;
}

int tm_wregion_seal(struct tm_wregion *r)
{
	int err;

	switch (r->store) {
	case TM_STORE_FILE:
		return seal_file(r);
	case TM_STORE_DAX:
		if (!is_chardev(r->loc))
			return seal_file(r);
		err = tm_mapping_flush(&r->map);
		tm_unmap(&r->map);
		return err;
	case TM_STORE_MODULE:
		return seal_module(r);
	}
	return tm_err(-EINVAL, "unknown store %d", r->store);
}

void tm_wregion_abort(struct tm_wregion *r)
{
	tm_unmap(&r->map);
	if (r->store == TM_STORE_MODULE || !is_chardev(r->loc)) {
		char path[TM_LOC_MAX + 16];

		filling_path(path, sizeof(path), r->loc);
		if (r->store == TM_STORE_MODULE)
			tm_region_delete_at(TM_STORE_MODULE, r->loc);
		else
			unlink(path);
	}
}

int tm_region_state_at(enum tm_store store, const char *loc, uint64_t *size)
{
	char path[TM_LOC_MAX + 16];
	struct tm_device dev;
	struct tm_region reg;
	struct stat st;
	int state;

	*size = 0;
	if (store == TM_STORE_MODULE) {
		if (tm_device_open(&dev, NULL)) {
			tm_clear_error();
			return TM_RS_MISSING;
		}
		if (tm_region_open(&dev, loc, 0, &reg)) {
			tm_clear_error();
			tm_device_close(&dev);
			return TM_RS_MISSING;
		}
		*size = reg.size;
		state = reg.state == TIERMEM_STATE_SEALED ? TM_RS_SEALED : TM_RS_FILLING;
		tm_device_close(&dev);
		return state;
	}
	if (!stat(loc, &st)) {
		*size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
		return TM_RS_SEALED;
	}
	filling_path(path, sizeof(path), loc);
	if (!stat(path, &st))
		return TM_RS_FILLING;
	return TM_RS_MISSING;
}

int tm_region_delete_at(enum tm_store store, const char *loc)
{
	char path[TM_LOC_MAX + 16];
	struct tm_device dev;
	int err;

	if (store == TM_STORE_MODULE) {
		char live[TIERMEM_NAME_MAX + 8];

		if ((err = tm_device_open(&dev, NULL)))
			return err;
		/* and the DDR copy runs made of it (map_module_ddr) */
		snprintf(live, sizeof(live), "%s-ddr", loc);
		if (tm_region_delete(&dev, live) != -ENOENT)
			tm_clear_error();
		err = tm_region_delete(&dev, loc);
		if (err == -ENOENT)
			err = 0;
		tm_device_close(&dev);
		return err;
	}
	if (is_chardev(loc))
		return 0;	/* a devdax device: its content is simply no longer named */
	filling_path(path, sizeof(path), loc);
	if (unlink(path) && errno != ENOENT)
		return tm_err(-errno, "%s: %s", path, strerror(errno));
	if (unlink(loc) && errno != ENOENT)
		return tm_err(-errno, "%s: %s", loc, strerror(errno));
	sync_dir_of(loc);
	return 0;
}

/* Enough 2 MiB huge pages reserved and free for size bytes? */
static bool hugetlb_free(uint64_t size)
{
	FILE *f = fopen("/proc/meminfo", "r");
	long long free_pages = 0, kb = 0;
	char line[128];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "HugePages_Free: %lld", &free_pages);
		sscanf(line, "Hugepagesize: %lld kB", &kb);
	}
	fclose(f);
	return kb == 2048 && (uint64_t)free_pages * SZ_2M >= size;
}

/* Read used bytes of the stored region into dst. */
static int read_stored(enum tm_store store, const char *loc, void *dst, uint64_t used)
{
	struct tm_mapping src;
	uint64_t done = 0;
	int fd, err;

	if (store == TM_STORE_MODULE || is_chardev(loc)) {
		err = store == TM_STORE_MODULE ? tm_map_region(&src, loc, 0) : tm_map_pmem(&src, loc, 0, 0);
		if (err)
			return err;
		if (src.size < used) {
			tm_unmap(&src);
			return tm_err(-EINVAL, "%s holds %zu bytes, %" PRIu64 " expected", loc, src.size, used);
		}
		memcpy(dst, src.addr, used);
		tm_unmap(&src);
		return 0;
	}
	fd = open(loc, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tm_err(-errno, "%s: %s", loc, strerror(errno));
	while (done < used) {
		ssize_t n = read(fd, (char *)dst + done, used - done);

		if (n <= 0) {
			err = tm_err(n < 0 ? -errno : -EIO, "%s: read at %" PRIu64 ": %s", loc, done,
				     n < 0 ? strerror(errno) : "the region is shorter than its manifest says");
			close(fd);
			return err;
		}
		done += n;
	}
	close(fd);
	return 0;
}

int tm_node_check(int node)
{
	if (numa_available() < 0)
		return tm_err(-ENODEV, "node:%d: this kernel has no NUMA support", node);
	if (node < 0 || node > numa_max_node() || !numa_bitmask_isbitset(numa_all_nodes_ptr, node)) {
		if (numa_max_node() == 0)
			return tm_err(-ENODEV, "node:%d: this machine has one NUMA node (node:0)", node);
		return tm_err(-ENODEV, "node:%d: this machine has NUMA nodes 0..%d only", node,
			      numa_max_node());
	}
	return 0;
}

static int map_node(struct tm_mapping *m, uint64_t used, int node)
{
	int err;

	if ((err = tm_node_check(node)))
		return err;
	if ((err = tm_map_anon(m, used, TM_PAGES_THP, 0)))
		return err;
	/* bound before the first touch, so every page is allocated on the node */
	numa_tonode_memory(m->addr, m->size, node);
	m->tier = TM_TIER_NODE;
	snprintf(m->backend, sizeof(m->backend), "node:%d", node);
	return 0;
}

/* With the module: a DDR region beside the stored one, filled once and kept. */
static int map_module_ddr(struct tm_mapping *m, const char *loc, uint64_t used)
{
	char name[TIERMEM_NAME_MAX];
	struct tm_device dev;
	struct tm_region reg;
	int err;

	if (snprintf(name, sizeof(name), "%s-ddr", loc) >= (int)sizeof(name))
		return tm_err(-ENAMETOOLONG, "region name %s-ddr is too long", loc);
	if (!tm_map_region(m, name, 0) && m->size >= used)
		return 0;	/* loaded by an earlier run; the caller checks its hashes */
	tm_unmap(m);
	tm_clear_error();
	if ((err = tm_device_open(&dev, NULL)))
		return err;
	tm_region_delete(&dev, name);
	err = tm_region_create(&dev, name, TM_TIER_DDR, round_2m(used), 0644, TM_PMEM_ANY, &reg);
	tm_device_close(&dev);
	if (err)
		return err;
	if ((err = tm_map_region(m, name, TM_MAP_WRITE)))
		return err;
	if ((err = read_stored(TM_STORE_MODULE, loc, m->addr, used))) {
		tm_unmap(m);
		tm_region_delete_at(TM_STORE_MODULE, name);
		return err;
	}
	return 0;
}

int tm_region_map_at(struct tm_mapping *m, enum tm_store store, const char *loc, uint64_t used,
		     enum tm_load_to to, int node)
{
	uint64_t size;
	int state = tm_region_state_at(store, loc, &size), err;

	memset(m, 0, sizeof(*m));
	if (state == TM_RS_MISSING && !(store == TM_STORE_DAX && is_chardev(loc)))
		return tm_err(-ENOENT, "region %s is missing", loc);
	if (state == TM_RS_FILLING)
		return tm_err(-EBUSY, "region %s was never sealed", loc);
	if (store != TM_STORE_MODULE && !is_chardev(loc) && size < used)
		return tm_err(-EINVAL, "region %s has %" PRIu64 " bytes, its manifest says %" PRIu64,
			      loc, size, used);
	if (to == TM_TO_MAP) {
		if (store == TM_STORE_MODULE)
			err = tm_map_region(m, loc, 0);
		else if (is_chardev(loc))
			err = tm_map_pmem(m, loc, 0, 0);
		else
			err = tm_map_file(m, loc, 0);	/* on a DAX filesystem this maps the media */
		if (!err && store == TM_STORE_FILE) {
			m->tier = TM_TIER_FILE;
			snprintf(m->backend, sizeof(m->backend), "file (not persistent memory)");
		} else if (!err && store == TM_STORE_DAX && !is_chardev(loc)) {
			m->tier = TM_TIER_PMEM;
			snprintf(m->backend, sizeof(m->backend), "fsdax");
		}
		if (!err && m->size < used) {
			tm_unmap(m);
			return tm_err(-EINVAL, "region %s is shorter than its manifest says", loc);
		}
		return err;
	}
	if (to == TM_TO_DDR && store == TM_STORE_MODULE)
		return map_module_ddr(m, loc, used);
	if (to == TM_TO_NODE)
		err = map_node(m, used, node);
	else
		err = tm_map_anon(m, used, hugetlb_free(used) ? TM_PAGES_HUGETLB : TM_PAGES_THP, 0);
	if (err)
		return err;
	if ((err = read_stored(store, loc, m->addr, used))) {
		tm_unmap(m);
		return err;
	}
	snprintf(m->path, sizeof(m->path), "%s", loc);
	return 0;
}
