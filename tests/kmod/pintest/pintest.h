/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * /dev/tiermem_pintest: a test-only device that long-term pins a user range
 * the way cudaHostRegister does (pin_user_pages_fast with FOLL_WRITE |
 * FOLL_LONGTERM), then reads and writes the pinned pages from the kernel as
 * a DMA engine would. One pinned range per open file; closing unpins.
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

#define PINTEST_IOC_PIN		_IOWR('p', 0xe0, struct pintest_pin)
#define PINTEST_IOC_WRITE	_IOW('p', 0xe1, struct pintest_write)
#define PINTEST_IOC_UNPIN	_IO('p', 0xe2)

#endif
