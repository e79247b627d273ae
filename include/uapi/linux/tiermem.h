/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tiermem: one character device (/dev/tiermem) for regions of pinned DDR and
 * of persistent memory (PMEM, through the kernel's DAX API).
 *
 * ABI rules (see Documentation/tiermem.rst):
 * - Every argument is a fixed-size struct with explicit padding; pointers and
 *   sizes are __u64. Reserved fields and padding must be zero on input, or the
 *   ioctl fails with -EINVAL; the kernel zeroes them on output.
 * - The size of each struct is part of its ioctl number. The driver matches
 *   ioctls on type and number and takes the size from the command, so a struct
 *   may grow at its end: an older program (smaller size) gets the new fields
 *   as zero, a newer program (larger size) is accepted when its extra bytes
 *   are zero. TIERMEM_IOC_VERSION reports the ABI version and feature bits.
 * - Unknown ioctls fail with -ENOTTY, unknown flag bits with -EINVAL.
 */
#ifndef _UAPI_LINUX_TIERMEM_H
#define _UAPI_LINUX_TIERMEM_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define TIERMEM_ABI_VERSION	1
#define TIERMEM_DEVICE		"/dev/tiermem"

/* Region names: 1..63 bytes of [A-Za-z0-9._-], NUL-terminated, NUL-padded. */
#define TIERMEM_NAME_MAX	64
/* PMEM paths for attach: NUL-terminated, NUL-padded. */
#define TIERMEM_PATH_MAX	128
#define TIERMEM_PMEM_MAX	8

/* Every region size and copy granule of mappings: 2 MiB. */
#define TIERMEM_CHUNK_SHIFT	21
#define TIERMEM_CHUNK_SIZE	(1ULL << TIERMEM_CHUNK_SHIFT)

enum tiermem_tier {
	TIERMEM_TIER_DDR = 1,	/* pinned DRAM, volatile */
	TIERMEM_TIER_PMEM = 2,	/* persistent memory (fsdax namespace) */
};

enum tiermem_state {
	TIERMEM_STATE_VOLATILE = 1,	/* DDR: exists until deleted or unload */
	TIERMEM_STATE_FILLING = 2,	/* PMEM: created, not yet sealed */
	TIERMEM_STATE_SEALED = 3,	/* PMEM: flushed and sealed; maps read-only */
};

/* Feature bits in tiermem_version.features. */
#define TIERMEM_FEAT_DDR	(1ULL << 0)
#define TIERMEM_FEAT_PMEM	(1ULL << 1)
#define TIERMEM_FEAT_COPY	(1ULL << 2)
#define TIERMEM_FEAT_DMABUF	(1ULL << 3)
#define TIERMEM_FEAT_USER_CTR	(1ULL << 4)
/* tiermem_region_info.bad_bytes and .numa_node are filled in */
#define TIERMEM_FEAT_INFO_BAD_NODE	(1ULL << 5)
/* TIERMEM_CREATE_NODE is understood */
#define TIERMEM_FEAT_CREATE_NODE	(1ULL << 6)

struct tiermem_version {
	__u32 abi_version;	/* out: TIERMEM_ABI_VERSION */
	__u32 nr_pmem;		/* out: attached PMEM namespaces */
	__u64 features;		/* out: TIERMEM_FEAT_* */
	__u64 ddr_max_bytes;	/* out: module parameter ddr_max_mb */
	__u64 ddr_used_bytes;	/* out: DDR allocated to regions */
	__u64 reserved[4];
};

/* tiermem_create.flags */
#define TIERMEM_CREATE_ANY_PMEM	(1U << 0)	/* pick any attached namespace */
#define TIERMEM_CREATE_NODE	(1U << 1)	/* DDR: memory of numa_node only */

struct tiermem_create {
	char name[TIERMEM_NAME_MAX];	/* in */
	__u32 tier;		/* in: enum tiermem_tier */
	__u32 flags;		/* in: TIERMEM_CREATE_* */
	__u64 size;		/* in: bytes, multiple of TIERMEM_CHUNK_SIZE */
	__u32 mode;		/* in: permission bits 0777 (owner = caller) */
	__u32 pmem_index;	/* in: PMEM namespace unless ANY_PMEM */
	/* out: as from TIERMEM_IOC_OPEN; the region is open in this file */
	__u64 id;
	__u64 mmap_offset;
	__s32 numa_node;	/* in: with TIERMEM_CREATE_NODE, else 0 */
	__u32 pad;
	__u64 reserved[3];
};

/* tiermem_open.flags */
#define TIERMEM_OPEN_WRITE	(1U << 0)	/* needs write permission */

struct tiermem_open {
	char name[TIERMEM_NAME_MAX];	/* in */
	__u32 flags;		/* in: TIERMEM_OPEN_* */
	__u32 tier;		/* out */
	__u64 id;		/* out: handle for the other ioctls */
	__u64 size;		/* out */
	__u64 mmap_offset;	/* out: the region's offset for mmap() */
	__u64 counters_offset;	/* out: offset of its counters page */
	__u32 state;		/* out: enum tiermem_state */
	__u32 pmem_index;	/* out: PMEM only */
	__u64 reserved[4];
};

/* Ioctls that name a region by id: close, delete-by-id, seal. */
struct tiermem_region_ref {
	__u64 id;
	__u32 flags;		/* must be 0 */
	__u32 pad;
	__u64 reserved[2];
};

struct tiermem_delete {
	char name[TIERMEM_NAME_MAX];
	__u32 flags;		/* must be 0 */
	__u32 pad;
	__u64 reserved[2];
};

struct tiermem_region_info {
	char name[TIERMEM_NAME_MAX];
	__u64 id;
	__u64 size;
	__u64 pmem_offset;	/* PMEM: byte offset in the namespace */
	__u32 tier;
	__u32 state;
	__u32 owner_uid;
	__u32 mode;
	__u32 pmem_index;
	__u32 flags;		/* TIERMEM_INFO_* */
	__u64 bad_bytes;	/* PMEM: bytes in the namespace's known bad blocks */
	__s32 numa_node;	/* PMEM: the namespace's; DDR: of its first chunk; -1 */
	__u32 pad;
};

#define TIERMEM_INFO_DELETED	(1U << 0)	/* deleted, still mapped/pinned */

struct tiermem_list {
	__u64 entries;		/* in: user pointer to tiermem_region_info[] */
	__u32 capacity;		/* in: entries that fit */
	__u32 count;		/* out: regions that exist (may be > capacity) */
	__u32 flags;		/* must be 0 */
	__u32 pad;
	__u64 reserved[2];
};

struct tiermem_counters {
	__u64 faults_pte;	/* 4 KiB faults (alignment forbade larger) */
	__u64 faults_pmd;	/* 2 MiB faults */
	__u64 faults_pud;	/* 1 GiB faults */
	__u64 bytes_mapped;	/* bytes inserted into page tables */
	__u64 live_mappings;	/* VMAs mapping it now */
	__u64 bytes_copied;	/* by TIERMEM_IOC_COPY (as source or target) */
	__u64 media_errors;	/* poison met by copies, reported by the media */
	__u64 pinned_pages;	/* 4 KiB pages held by pins (best effort) */
	__u64 bytes_read;	/* added by user space through the counters page */
	__u64 exports;		/* dma-bufs exported and still alive */
	__u64 reserved[6];
};

/* tiermem_stats.flags: which counters */
#define TIERMEM_STATS_TIER	(1U << 0)	/* sum over a tier, not a region */

struct tiermem_stats {
	__u64 id;		/* in: region, unless TIERMEM_STATS_TIER */
	__u32 tier;		/* in: with TIERMEM_STATS_TIER */
	__u32 flags;		/* in */
	__u64 reserved[2];
	struct tiermem_counters c;	/* out */
};

struct tiermem_attach {
	char path[TIERMEM_PATH_MAX];	/* in: e.g. "/dev/pmem0" */
	__u32 flags;		/* in: TIERMEM_ATTACH_* */
	__u32 index;		/* out: namespace index */
	__u64 size;		/* out: usable bytes */
	__u64 reserved[4];
};

/* Write an empty table if none is found (never over a corrupted one). */
#define TIERMEM_ATTACH_FORMAT	(1U << 0)

struct tiermem_detach {
	__u32 index;
	__u32 flags;		/* must be 0 */
	__u64 reserved[2];
};

struct tiermem_copy {
	__u64 src_id;
	__u64 src_offset;
	__u64 dst_id;
	__u64 dst_offset;
	__u64 length;
	__u32 flags;		/* must be 0 */
	__u32 pad;
	__u64 copied;		/* out: bytes copied before an error, or length */
	__u64 reserved[2];
};

/* tiermem_export.flags */
#define TIERMEM_EXPORT_CLOEXEC	(1U << 0)
#define TIERMEM_EXPORT_WRITE	(1U << 1)

struct tiermem_export {
	__u64 id;		/* in */
	__u64 offset;		/* in: page-aligned */
	__u64 length;		/* in: page-aligned, 0 = to the end */
	__u32 flags;		/* in */
	__s32 fd;		/* out: dma-buf file descriptor */
	__u64 reserved[2];
};

/*
 * The counters page (mmap at tiermem_open.counters_offset, one page,
 * MAP_SHARED, writable only with write permission on the region). Readers
 * and writers use 64-bit atomic adds/loads on bytes_read.
 */
struct tiermem_user_counters {
	__u64 bytes_read;
	__u64 reserved[7];
};

#define TIERMEM_IOC_MAGIC	0xE6

#define TIERMEM_IOC_VERSION	_IOR(TIERMEM_IOC_MAGIC, 0x00, struct tiermem_version)
#define TIERMEM_IOC_CREATE	_IOWR(TIERMEM_IOC_MAGIC, 0x01, struct tiermem_create)
#define TIERMEM_IOC_OPEN	_IOWR(TIERMEM_IOC_MAGIC, 0x02, struct tiermem_open)
#define TIERMEM_IOC_CLOSE	_IOW(TIERMEM_IOC_MAGIC, 0x03, struct tiermem_region_ref)
#define TIERMEM_IOC_DELETE	_IOW(TIERMEM_IOC_MAGIC, 0x04, struct tiermem_delete)
#define TIERMEM_IOC_LIST	_IOWR(TIERMEM_IOC_MAGIC, 0x05, struct tiermem_list)
#define TIERMEM_IOC_STATS	_IOWR(TIERMEM_IOC_MAGIC, 0x06, struct tiermem_stats)
#define TIERMEM_IOC_SEAL	_IOW(TIERMEM_IOC_MAGIC, 0x07, struct tiermem_region_ref)
#define TIERMEM_IOC_ATTACH	_IOWR(TIERMEM_IOC_MAGIC, 0x08, struct tiermem_attach)
#define TIERMEM_IOC_DETACH	_IOW(TIERMEM_IOC_MAGIC, 0x09, struct tiermem_detach)
#define TIERMEM_IOC_COPY	_IOWR(TIERMEM_IOC_MAGIC, 0x0a, struct tiermem_copy)
#define TIERMEM_IOC_EXPORT	_IOWR(TIERMEM_IOC_MAGIC, 0x0b, struct tiermem_export)

#endif /* _UAPI_LINUX_TIERMEM_H */
