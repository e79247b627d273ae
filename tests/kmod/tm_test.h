/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the tiermem kselftests: thin ioctl wrappers that
 * return 0 or -errno, and /proc/self/smaps lookups. */
#ifndef TM_TEST_H
#define TM_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/tiermem.h>

#define MiB (1UL << 20)
#define CHUNK (2UL * MiB)

static inline int tm_dev(void)
{
	return open(TIERMEM_DEVICE, O_RDWR | O_CLOEXEC);
}

/* Names go into zeroed, fixed-size fields; longer ones are cut. */
static inline void tm_setname(char *dst, const char *name)
{
	size_t n = strlen(name);

	memcpy(dst, name, n < TIERMEM_NAME_MAX ? n : TIERMEM_NAME_MAX - 1);
}

static inline int tm_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

/* A name unique to this process and tag. */
static inline const char *tm_name(const char *tag)
{
	static char buf[8][TIERMEM_NAME_MAX];
	static int n;
	char *b = buf[n++ & 7];

	snprintf(b, TIERMEM_NAME_MAX, "t%d-%s", (int)getpid(), tag);
	return b;
}

static inline int tm_create_pmem(int fd, const char *name, __u32 tier,
				 __u64 size, __u32 mode, __u32 pmem_index,
				 struct tiermem_create *out)
{
	struct tiermem_create c = { .tier = tier, .size = size, .mode = mode,
				    .pmem_index = pmem_index };
	int ret;

	tm_setname(c.name, name);
	ret = tm_ioctl(fd, TIERMEM_IOC_CREATE, &c);
	if (out)
		*out = c;
	return ret;
}

static inline int tm_create(int fd, const char *name, __u32 tier, __u64 size,
			    __u32 mode, struct tiermem_create *out)
{
	return tm_create_pmem(fd, name, tier, size, mode, 0, out);
}

static inline int tm_open_region(int fd, const char *name, __u32 flags,
				 struct tiermem_open *out)
{
	struct tiermem_open o = { .flags = flags };
	int ret;

	tm_setname(o.name, name);
	ret = tm_ioctl(fd, TIERMEM_IOC_OPEN, &o);
	if (out)
		*out = o;
	return ret;
}

static inline int tm_delete(int fd, const char *name)
{
	struct tiermem_delete d = {};

	tm_setname(d.name, name);
	return tm_ioctl(fd, TIERMEM_IOC_DELETE, &d);
}

static inline int tm_close_region(int fd, __u64 id)
{
	struct tiermem_region_ref r = { .id = id };

	return tm_ioctl(fd, TIERMEM_IOC_CLOSE, &r);
}

static inline int tm_seal(int fd, __u64 id)
{
	struct tiermem_region_ref r = { .id = id };

	return tm_ioctl(fd, TIERMEM_IOC_SEAL, &r);
}

static inline int tm_stats(int fd, __u64 id, struct tiermem_counters *c)
{
	struct tiermem_stats s = { .id = id };
	int ret = tm_ioctl(fd, TIERMEM_IOC_STATS, &s);

	*c = s.c;
	return ret;
}

static inline int tm_tier_stats(int fd, __u32 tier, struct tiermem_counters *c)
{
	struct tiermem_stats s = { .tier = tier, .flags = TIERMEM_STATS_TIER };
	int ret = tm_ioctl(fd, TIERMEM_IOC_STATS, &s);

	*c = s.c;
	return ret;
}

static inline int tm_version(int fd, struct tiermem_version *v)
{
	memset(v, 0, sizeof(*v));
	return tm_ioctl(fd, TIERMEM_IOC_VERSION, v);
}

static inline int tm_copy(int fd, __u64 src, __u64 soff, __u64 dst, __u64 doff,
			  __u64 len)
{
	struct tiermem_copy c = { .src_id = src, .src_offset = soff,
				  .dst_id = dst, .dst_offset = doff,
				  .length = len };

	return tm_ioctl(fd, TIERMEM_IOC_COPY, &c);
}

static inline void *tm_map(int fd, __u64 off, size_t len, int prot)
{
	return mmap(NULL, len, prot, MAP_SHARED, fd, off);
}

/* A "Field:  N kB" value of the smaps entry containing @addr, or -1. */
static inline long tm_smaps_kb(const void *addr, const char *field)
{
	unsigned long lo, hi, a = (unsigned long)addr;
	char line[512];
	size_t flen = strlen(field);
	long val = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && !strncmp(line, field, flen) && line[flen] == ':') {
			val = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* Deterministic fill so any byte's value is known. */
static inline uint64_t tm_pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ULL ^ i * 0xbf58476d1ce4e5b9ULL;

	return x ^ (x >> 31);
}

static inline void tm_fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *q = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		q[i] = tm_pattern(seed, i);
}

/* Returns the first mismatching word index, or -1. */
static inline long tm_check(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *q = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (q[i] != tm_pattern(seed, i))
			return (long)i;
	return -1;
}

static inline int tm_all_zero(const void *p, size_t len)
{
	const uint64_t *q = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (q[i])
			return 0;
	return 1;
}

#endif /* TM_TEST_H */
