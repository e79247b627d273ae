/* SPDX-License-Identifier: MIT */
/*
 * libtiermem's thin wrapper over the /dev/tiermem ABI (include/uapi/linux/
 * tiermem.h): one call per ioctl, in the spirit of liburing. Arguments are
 * checked here first (names, sizes, alignment, flags), so a mistake gets a
 * message naming the argument rather than a bare EINVAL from the kernel.
 * Every function returns 0 or a negative errno and records a reason
 * (tm_strerror()).
 *
 * Without the module (no /dev/tiermem), tm_device_open() fails with -ENODEV
 * and says so; the user-space backends of mapping.h (file, anonymous DDR,
 * devdax/fsdax PMEM) work without it.
 */
#ifndef TIERMEM_DEVICE_H
#define TIERMEM_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "uapi/linux/tiermem.h"

#include "tiermem/mapping.h"

struct tm_device {
	int fd;
	struct tiermem_version version;	/* as read at open */
};

/* A region open in a tm_device (the kernel keeps it open per file). */
struct tm_region {
	char name[TIERMEM_NAME_MAX];
	uint64_t id;
	uint64_t size;
	uint64_t mmap_offset;
	uint64_t counters_offset;
	enum tm_tier tier;		/* TM_TIER_DDR or TM_TIER_PMEM */
	uint32_t state;			/* TIERMEM_STATE_* */
	uint32_t pmem_index;
	int writable;			/* opened for writing */
};

/* Open /dev/tiermem (path NULL) or another node; checks the ABI version. */
int tm_device_open(struct tm_device *dev, const char *path);
void tm_device_close(struct tm_device *dev);
/* Re-read version, PMEM count and DDR use into dev->version. */
int tm_device_refresh(struct tm_device *dev);

/* Names: 1..63 bytes of [A-Za-z0-9._-]. 0 or -EINVAL with the reason. */
int tm_region_name_check(const char *name);
const char *tm_region_state_name(uint32_t state);

#define TM_PMEM_ANY (-1)

/*
 * Create a region of size bytes (a multiple of 2 MiB) on tier TM_TIER_DDR or
 * TM_TIER_PMEM, with permission bits mode (<= 0777) for other users; PMEM on
 * namespace pmem_index or TM_PMEM_ANY. The new region is open for writing;
 * PMEM regions start in state filling.
 */
int tm_region_create(struct tm_device *dev, const char *name, enum tm_tier tier,
		     uint64_t size, uint32_t mode, int pmem_index, struct tm_region *r);
/*
 * A DDR region whose memory comes from NUMA node numa_node only (-ENOMEM
 * when that node has too little free; -EINVAL for a node that is not
 * online, or a module without TIERMEM_FEAT_CREATE_NODE).
 */
int tm_region_create_node(struct tm_device *dev, const char *name, uint64_t size,
			  uint32_t mode, int numa_node, struct tm_region *r);

enum {
	TM_REGION_WRITE = 1 << 0,	/* open for writing (needs the permission) */
};

int tm_region_open(struct tm_device *dev, const char *name, unsigned int flags,
		   struct tm_region *r);
/*
 * Drop this file's handle on the region (mappings made from it stay valid).
 * The kernel keeps one handle per open file and region: opening a region
 * twice in one tm_device merges the two (write access is kept), and one
 * close drops it.
 */
int tm_region_close(struct tm_device *dev, struct tm_region *r);
int tm_region_delete(struct tm_device *dev, const char *name);
/* Flush and seal a PMEM region: from now on it maps read-only. */
int tm_region_seal(struct tm_device *dev, struct tm_region *r);

/* All regions; *out is malloc'd (free() it), *count entries. */
int tm_region_list(struct tm_device *dev, struct tiermem_region_info **out, size_t *count);

/*
 * mmap the whole region (MAP_SHARED; TM_MAP_WRITE for a writable mapping,
 * TM_MAP_POPULATE to fault it in now). The kernel aligns the address to
 * 2 MiB so the mapping uses huge pages.
 */
int tm_region_mmap(struct tm_device *dev, const struct tm_region *r, unsigned int flags,
		   void **addr);
int tm_region_munmap(const struct tm_region *r, void *addr);

/* Counters of one region, or the sum over a tier. */
int tm_region_stats(struct tm_device *dev, const struct tm_region *r,
		    struct tiermem_counters *c);
int tm_tier_stats(struct tm_device *dev, enum tm_tier tier, struct tiermem_counters *c);

/*
 * The region's counters page: the code that streams weights adds the bytes
 * it read, so another process (tiermem stats) can show each tier's GB/s.
 * write needs write permission on the region.
 */
int tm_region_counters_map(struct tm_device *dev, const struct tm_region *r, int write,
			   struct tiermem_user_counters **uc);
void tm_region_counters_unmap(struct tiermem_user_counters *uc);

static inline void tm_counters_add_read(struct tiermem_user_counters *uc, uint64_t bytes)
{
	if (uc)
		__atomic_fetch_add(&uc->bytes_read, bytes, __ATOMIC_RELAXED);
}

enum {
	TM_ATTACH_FORMAT = 1 << 0,	/* write an empty table if there is none */
};

/* PMEM namespaces (needs CAP_SYS_ADMIN): path is a DAX-capable /dev/pmemN. */
int tm_pmem_attach(struct tm_device *dev, const char *path, unsigned int flags,
		   uint32_t *index, uint64_t *size);
int tm_pmem_detach(struct tm_device *dev, uint32_t index);

/* Copy length bytes between regions in the kernel; *copied (may be NULL). */
int tm_region_copy(struct tm_device *dev, const struct tm_region *src, uint64_t src_off,
		   const struct tm_region *dst, uint64_t dst_off, uint64_t length,
		   uint64_t *copied);

enum {
	TM_EXPORT_WRITE = 1 << 0,	/* importers may write */
};

/*
 * Export [offset, offset + length) (page-aligned; length 0 = to the end) as a
 * dma-buf; *fd is close-on-exec.
 */
int tm_region_export(struct tm_device *dev, const struct tm_region *r, uint64_t offset,
		     uint64_t length, unsigned int flags, int *fd);

/*
 * The "tiermem" mapping backend: opens /dev/tiermem, opens region name and
 * maps it whole (TM_MAP_WRITE, TM_MAP_POPULATE as for the other backends).
 * m->tier is TM_TIER_DDR or TM_TIER_PMEM, m->backend "tiermem", m->path
 * "/dev/tiermem:NAME". m->release (tm_unmap) unmaps and closes everything.
 */
int tm_map_region(struct tm_mapping *m, const char *name, unsigned int flags);
/* The counters page of a mapping made by tm_map_region (NULL otherwise). */
struct tiermem_user_counters *tm_mapping_counters(const struct tm_mapping *m);

#endif
