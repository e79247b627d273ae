/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * /dev/tiermem_pintest: a test-only device that long-term pins a user range
 * the way cudaHostRegister does (pin_user_pages_fast with FOLL_WRITE |
 * FOLL_LONGTERM), then reads and writes the pinned pages from the kernel as
 * a DMA engine would. One pinned range per open file; closing unpins.
 * Also plays a DMA importer (attach and map a dma-buf for one direction)
 * and a failing DIMM (the dax core's notify_failure on a PMEM range).
 */
#ifndef PINTEST_H
#define PINTEST_H

#include <linux/ioctl.h>
#include <linux/types.h>

struct pintest_pin {
	__u64 addr;		/* in: page aligned */
	__u64 len;		/* in: page multiple */
	__u64 pinned;		/* out: pages pinned */
	__u64 sum;		/* out: sum of the first u64 of every page */
	__u64 pfn_runs;		/* out: runs of physically contiguous pages */
	__u64 reserved[3];
};

struct pintest_write {
	__u64 seed;		/* writes seed + i at byte 8 of pinned page i */
	__u64 reserved[3];
};

struct pintest_dmabuf_map {
	__s32 fd;		/* in: dma-buf */
	__u32 dir;		/* in: enum dma_data_direction */
	__s32 result;		/* out: 0 or -errno of the mapping */
	__u32 pad;
	__u64 reserved[2];
};

struct pintest_notify {
	char path[128];		/* in: fsdax block device, e.g. /dev/pmem1 */
	__u64 offset;		/* in: bytes into the block device */
	__u64 length;		/* in: bytes */
	__s32 mf_flags;		/* in: memory_failure flags */
	__s32 result;		/* out: what the holder's notify_failure said */
	__u64 reserved[2];
};

#define PINTEST_IOC_PIN		_IOWR('p', 0xe0, struct pintest_pin)
#define PINTEST_IOC_WRITE	_IOW('p', 0xe1, struct pintest_write)
#define PINTEST_IOC_UNPIN	_IO('p', 0xe2)
#define PINTEST_IOC_DMABUF_MAP	_IOWR('p', 0xe3, struct pintest_dmabuf_map)
#define PINTEST_IOC_NOTIFY	_IOWR('p', 0xe4, struct pintest_notify)

#endif
