// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem kselftests: the device, every ioctl with good and bad arguments,
 * DDR regions, huge mappings (counters and smaps), lifetimes, permissions,
 * counters, copies and dma-buf export of DDR. Needs tiermem.ko loaded with
 * ddr_max_mb >= 64; tests that change credentials need root and skip
 * otherwise.
 */
#include <grp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "tm_test.h"

FIXTURE(dev) {
	int fd;
	struct tiermem_version v;
};

FIXTURE_SETUP(dev)
{
	self->fd = tm_dev();
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", TIERMEM_DEVICE, strerror(errno));
	ASSERT_EQ(0, tm_version(self->fd, &self->v));
}

FIXTURE_TEARDOWN(dev)
{
	close(self->fd);
}

TEST_F(dev, version)
{
	ASSERT_EQ(TIERMEM_ABI_VERSION, self->v.abi_version);
	ASSERT_TRUE(self->v.features & TIERMEM_FEAT_DDR);
	ASSERT_LE(64 * MiB, self->v.ddr_max_bytes);
	ASSERT_LE(self->v.ddr_used_bytes, self->v.ddr_max_bytes);
}

/* Output structs come back with reserved fields and padding zeroed. */
TEST_F(dev, no_stale_output)
{
	struct tiermem_version v;
	struct tiermem_create c;
	struct tiermem_open o;
	struct tiermem_stats s;
	const char *name = tm_name("leak");

	memset(&v, 0xa5, sizeof(v));
	ASSERT_EQ(0, ioctl(self->fd, TIERMEM_IOC_VERSION, &v));
	for (size_t i = 0; i < 4; i++)
		ASSERT_EQ(0, v.reserved[i]);

	ASSERT_EQ(0, tm_create(self->fd, name, TIERMEM_TIER_DDR, CHUNK, 0600, &c));
	memset(&o, 0xa5, sizeof(o));
	memset(o.name, 0, sizeof(o.name));
	strcpy(o.name, name);
	o.flags = 0;
	memset(o.reserved, 0, sizeof(o.reserved));
	ASSERT_EQ(0, ioctl(self->fd, TIERMEM_IOC_OPEN, &o));
	ASSERT_EQ(0, o.pmem_index);
	ASSERT_EQ(c.id, o.id);
	memset(&s, 0, sizeof(s));
	memset(&s.c, 0xa5, sizeof(s.c));
	s.id = c.id;
	ASSERT_EQ(0, ioctl(self->fd, TIERMEM_IOC_STATS, &s));
	for (size_t i = 0; i < 6; i++)
		ASSERT_EQ(0, s.c.reserved[i]);
	ASSERT_EQ(0, s.c.faults_pud);
	ASSERT_EQ(0, tm_delete(self->fd, name));
}

TEST_F(dev, unknown_ioctls)
{
	struct tiermem_version big[2];
	char buf[256] = {};

	ASSERT_EQ(-ENOTTY, tm_ioctl(self->fd, _IO(TIERMEM_IOC_MAGIC, 0x7f), NULL));
	ASSERT_EQ(-ENOTTY, tm_ioctl(self->fd, _IOR(TIERMEM_IOC_MAGIC, 0x40, buf), buf));
	ASSERT_EQ(-ENOTTY, tm_ioctl(self->fd, _IOR('x', 0x00, struct tiermem_version), buf));
	/* Right number, wrong direction. */
	ASSERT_EQ(-ENOTTY, tm_ioctl(self->fd, _IOW(TIERMEM_IOC_MAGIC, 0x00, struct tiermem_version), buf));
	/* Smaller than the first version of the struct. */
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, _IOR(TIERMEM_IOC_MAGIC, 0x00, __u32), buf));
	/* A larger (future) struct is accepted when its tail is zero ... */
	memset(big, 0, sizeof(big));
	ASSERT_EQ(0, tm_ioctl(self->fd, _IOWR(TIERMEM_IOC_MAGIC, 0x05, char[sizeof(struct tiermem_list) + 8]), big));
	/* ... and refused when it is not. */
	memset(buf, 0, sizeof(buf));
	buf[sizeof(struct tiermem_list) + 3] = 1;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, _IOWR(TIERMEM_IOC_MAGIC, 0x05, char[sizeof(struct tiermem_list) + 8]), buf));
	/* Bad user pointer. */
	ASSERT_EQ(-EFAULT, tm_ioctl(self->fd, TIERMEM_IOC_CREATE, (void *)8));
}

TEST_F(dev, create_bad_args)
{
	struct tiermem_create c;
	const char *bad_names[] = { "", ".", "..", "a/b", "a b", "x\n", "\xff" };
	size_t i;

#define CREATE_EINVAL(mod) do { \
	memset(&c, 0, sizeof(c)); \
	strcpy(c.name, tm_name("bad")); \
	c.tier = TIERMEM_TIER_DDR; \
	c.size = CHUNK; \
	c.mode = 0600; \
	mod; \
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_CREATE, &c)); \
} while (0)

	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		CREATE_EINVAL(memset(c.name, 0, sizeof(c.name)); strcpy(c.name, bad_names[i]));
	CREATE_EINVAL(memset(c.name, 'a', sizeof(c.name)));	/* no NUL */
	CREATE_EINVAL(c.name[40] = 'z');			/* stale byte after NUL */
	CREATE_EINVAL(c.tier = 0);
	CREATE_EINVAL(c.tier = 3);
	CREATE_EINVAL(c.size = 0);
	CREATE_EINVAL(c.size = CHUNK + 4096);
	CREATE_EINVAL(c.size = ~0ULL & ~(CHUNK - 1));		/* overflow */
	CREATE_EINVAL(c.size = 1ULL << 40);
	CREATE_EINVAL(c.mode = 01000);
	CREATE_EINVAL(c.flags = 1 << 7);
	CREATE_EINVAL(c.flags = TIERMEM_CREATE_ANY_PMEM);	/* DDR takes no pmem flag */
	CREATE_EINVAL(c.pmem_index = 1);
	CREATE_EINVAL(c.reserved[2] = 1);
	CREATE_EINVAL(c.pad = 1);
	CREATE_EINVAL(c.numa_node = 1);				/* without TIERMEM_CREATE_NODE */
	CREATE_EINVAL(c.flags = TIERMEM_CREATE_NODE; c.numa_node = -1);
	CREATE_EINVAL(c.tier = TIERMEM_TIER_PMEM; c.flags = TIERMEM_CREATE_NODE);
	CREATE_EINVAL(c.tier = TIERMEM_TIER_PMEM; c.pmem_index = TIERMEM_PMEM_MAX);
	/* A name of 63 characters is fine. */
	memset(&c, 0, sizeof(c));
	memset(c.name, 'n', TIERMEM_NAME_MAX - 1);
	c.tier = TIERMEM_TIER_DDR;
	c.size = CHUNK;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_CREATE, &c));
	ASSERT_EQ(0, tm_delete(self->fd, c.name));
}

TEST_F(dev, other_bad_args)
{
	struct tiermem_open o = {};
	struct tiermem_region_ref ref = {};
	struct tiermem_delete d = {};
	struct tiermem_list l = {};
	struct tiermem_stats s = {};
	struct tiermem_copy cp = {};
	struct tiermem_export e = {};
	struct tiermem_detach dt = {};
	struct tiermem_create c;
	const char *name = tm_name("args");

	ASSERT_EQ(0, tm_create(self->fd, name, TIERMEM_TIER_DDR, CHUNK, 0600, &c));
	strcpy(o.name, name);
	o.flags = 2;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_OPEN, &o));
	o.flags = 0;
	o.reserved[0] = 1;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_OPEN, &o));
	ASSERT_EQ(-ENOENT, tm_open_region(self->fd, tm_name("nosuch"), 0, NULL));

	ref.id = c.id;
	ref.flags = 1;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_CLOSE, &ref));
	ref.flags = 0;
	ref.pad = 1;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_CLOSE, &ref));
	ASSERT_EQ(-ENOENT, tm_close_region(self->fd, c.id + 1000));

	strcpy(d.name, name);
	d.flags = 1;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_DELETE, &d));
	ASSERT_EQ(-ENOENT, tm_delete(self->fd, tm_name("nosuch")));

	l.flags = 1;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_LIST, &l));
	l.flags = 0;
	l.capacity = 4;
	ASSERT_EQ(-EFAULT, tm_ioctl(self->fd, TIERMEM_IOC_LIST, &l));
	l.entries = 16;
	ASSERT_EQ(-EFAULT, tm_ioctl(self->fd, TIERMEM_IOC_LIST, &l));

	s.id = c.id;
	s.flags = 2;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_STATS, &s));
	s.flags = TIERMEM_STATS_TIER;
	s.tier = 0;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_STATS, &s));	/* id with tier */
	s.id = 0;
	s.tier = 9;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_STATS, &s));
	s.flags = 0;
	s.tier = 0;
	s.id = c.id + 1000;
	ASSERT_EQ(-ENOENT, tm_ioctl(self->fd, TIERMEM_IOC_STATS, &s));

	/* DDR regions cannot be sealed. */
	ASSERT_EQ(-EINVAL, tm_seal(self->fd, c.id));

	cp.src_id = cp.dst_id = c.id;
	cp.length = 4096;
	cp.dst_offset = 8192;
	cp.flags = 1;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_COPY, &cp));

	e.id = c.id;
	e.flags = 1 << 5;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));

	dt.index = 0;
	dt.flags = 1;
	if (geteuid() == 0)
		ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_DETACH, &dt));
	ASSERT_EQ(0, tm_delete(self->fd, name));
}

TEST_F(dev, create_open_list_delete)
{
	const char *name = tm_name("life");
	struct tiermem_region_info *e;
	struct tiermem_create c;
	struct tiermem_open o;
	struct tiermem_list l = {};
	int fd2 = tm_dev();
	__u32 i, found = 0;

	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, tm_create(self->fd, name, TIERMEM_TIER_DDR, 2 * CHUNK, 0640, &c));
	ASSERT_NE(0, c.id);
	ASSERT_EQ(0, c.mmap_offset % (1ULL << 30));
	ASSERT_EQ(-EEXIST, tm_create(fd2, name, TIERMEM_TIER_DDR, CHUNK, 0600, NULL));

	ASSERT_EQ(0, tm_open_region(fd2, name, TIERMEM_OPEN_WRITE, &o));
	ASSERT_EQ(c.id, o.id);
	ASSERT_EQ(2 * CHUNK, o.size);
	ASSERT_EQ(TIERMEM_TIER_DDR, o.tier);
	ASSERT_EQ(TIERMEM_STATE_VOLATILE, o.state);
	ASSERT_EQ(c.mmap_offset, o.mmap_offset);

	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_LIST, &l));
	ASSERT_LE(1, l.count);
	l.capacity = l.count + 4;
	e = calloc(l.capacity, sizeof(*e));
	l.entries = (uintptr_t)e;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_LIST, &l));
	for (i = 0; i < l.count && i < l.capacity; i++) {
		if (strcmp(e[i].name, name))
			continue;
		found++;
		ASSERT_EQ(c.id, e[i].id);
		ASSERT_EQ(2 * CHUNK, e[i].size);
		ASSERT_EQ(0640, e[i].mode);
		ASSERT_EQ(geteuid(), e[i].owner_uid);
		ASSERT_EQ(TIERMEM_TIER_DDR, e[i].tier);
		ASSERT_EQ(0, e[i].flags);
		ASSERT_EQ(0, e[i].bad_bytes);
		ASSERT_EQ(0, e[i].pad);
		ASSERT_LE(0, e[i].numa_node);
	}
	ASSERT_EQ(1, found);
	free(e);

	ASSERT_EQ(0, tm_delete(fd2, name));
	ASSERT_EQ(-ENOENT, tm_open_region(self->fd, name, 0, NULL));
	ASSERT_EQ(-ENOENT, tm_delete(self->fd, name));
	/* The name is free again at once. */
	ASSERT_EQ(0, tm_create(self->fd, name, TIERMEM_TIER_DDR, CHUNK, 0600, &c));
	ASSERT_EQ(0, tm_delete(self->fd, name));
	close(fd2);
}

TEST_F(dev, ddr_cap)
{
	struct tiermem_create c;
	struct tiermem_version v;
	__u64 over = (self->v.ddr_max_bytes - self->v.ddr_used_bytes + CHUNK) & ~(CHUNK - 1);

	ASSERT_EQ(-ENOSPC, tm_create(self->fd, tm_name("cap"), TIERMEM_TIER_DDR, over, 0600, NULL));
	ASSERT_EQ(0, tm_version(self->fd, &v));
	ASSERT_EQ(self->v.ddr_used_bytes, v.ddr_used_bytes);
	ASSERT_EQ(0, tm_create(self->fd, tm_name("cap"), TIERMEM_TIER_DDR, 4 * CHUNK, 0600, &c));
	ASSERT_EQ(0, tm_version(self->fd, &v));
	ASSERT_EQ(self->v.ddr_used_bytes + 4 * CHUNK, v.ddr_used_bytes);
	/* Deleted, but still open in this file: like an unlinked file. */
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("cap")));
	ASSERT_EQ(0, tm_version(self->fd, &v));
	ASSERT_EQ(self->v.ddr_used_bytes + 4 * CHUNK, v.ddr_used_bytes);
	ASSERT_EQ(0, tm_close_region(self->fd, c.id));
	ASSERT_EQ(0, tm_version(self->fd, &v));
	ASSERT_EQ(self->v.ddr_used_bytes, v.ddr_used_bytes);
}

/* New memory reads as zero, also when it reuses a deleted region's pages. */
TEST_F(dev, zeroed)
{
	const size_t len = 8 * CHUNK;
	struct tiermem_create c;
	int round;

	for (round = 0; round < 3; round++) {
		void *p;

		ASSERT_EQ(0, tm_create(self->fd, tm_name("zero"), TIERMEM_TIER_DDR, len, 0600, &c));
		p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
		ASSERT_NE(MAP_FAILED, p);
		ASSERT_TRUE(tm_all_zero(p, len));
		memset(p, 0xee, len);
		munmap(p, len);
		ASSERT_EQ(0, tm_delete(self->fd, tm_name("zero")));
		ASSERT_EQ(0, tm_close_region(self->fd, c.id));
	}
}

/* mmap(NULL) gets 2 MiB aligned addresses and one PMD fault per 2 MiB. */
TEST_F(dev, pmd_mappings)
{
	const size_t len = 16 * CHUNK;
	struct tiermem_counters st;
	struct tiermem_create c;
	char *p;
	size_t i;

	ASSERT_EQ(0, tm_create(self->fd, tm_name("pmd"), TIERMEM_TIER_DDR, len, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, (uintptr_t)p % CHUNK);
	for (i = 0; i < len; i += 4096)
		p[i] = (char)i;
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(16, st.faults_pmd);
	ASSERT_EQ(0, st.faults_pte);
	ASSERT_EQ(0, st.faults_pud);
	ASSERT_EQ(len, st.bytes_mapped);
	ASSERT_EQ(1, st.live_mappings);
	ASSERT_EQ(len / 1024, tm_smaps_kb(p, "FilePmdMapped"));
	ASSERT_EQ(2048, tm_smaps_kb(p, "KernelPageSize"));
	for (i = 0; i < len; i += 4096)
		ASSERT_EQ((char)i, p[i]);
	ASSERT_EQ(0, munmap(p, len));
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(0, st.live_mappings);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pmd")));
}

/* Where the address is not 2 MiB aligned, 4 KiB entries, counted. */
TEST_F(dev, pte_fallback)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_counters st;
	struct tiermem_create c;
	char *area, *p;
	size_t i;

	ASSERT_EQ(0, tm_create(self->fd, tm_name("pte"), TIERMEM_TIER_DDR, len, 0600, &c));
	area = mmap(NULL, len + 2 * CHUNK, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	p = (char *)(((uintptr_t)area + CHUNK) & ~(CHUNK - 1)) + 4096;
	p = mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, self->fd, c.mmap_offset);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < 8; i++)
		p[i * 4096] = 1;
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(0, st.faults_pmd);
	ASSERT_EQ(8, st.faults_pte);
	ASSERT_EQ(8 * 4096, st.bytes_mapped);
	ASSERT_EQ(0, tm_smaps_kb(p, "FilePmdMapped"));
	munmap(area, len + 2 * CHUNK);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pte")));
}

TEST_F(dev, mmap_refusals)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_create c;
	void *p;
	int fd2 = tm_dev();

	ASSERT_EQ(0, tm_create(self->fd, tm_name("refuse"), TIERMEM_TIER_DDR, len, 0600, &c));
	/* Private mappings. */
	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, self->fd, c.mmap_offset);
	ASSERT_EQ(MAP_FAILED, p);
	ASSERT_EQ(EINVAL, errno);
	/* Beyond the end, from the start or the middle. */
	ASSERT_EQ(MAP_FAILED, tm_map(self->fd, c.mmap_offset, len + 4096, PROT_READ));
	ASSERT_EQ(MAP_FAILED, tm_map(self->fd, c.mmap_offset + CHUNK, len, PROT_READ));
	ASSERT_EQ(MAP_FAILED, tm_map(self->fd, c.mmap_offset + len, 4096, PROT_READ));
	/* An offset no region of this file owns, or another file's region. */
	ASSERT_EQ(MAP_FAILED, tm_map(self->fd, c.mmap_offset + (1ULL << 40), 4096, PROT_READ));
	ASSERT_EQ(MAP_FAILED, tm_map(self->fd, 0, 4096, PROT_READ));
	ASSERT_EQ(MAP_FAILED, tm_map(fd2, c.mmap_offset, len, PROT_READ));
	/* Growing a mapping. */
	p = tm_map(self->fd, c.mmap_offset, CHUNK, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(MAP_FAILED, mremap(p, CHUNK, len, 0));
	/* Splitting inside a 2 MiB entry. */
	ASSERT_EQ(-1, munmap((char *)p + 4096, 4096));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(0, munmap(p, CHUNK));
	/* Splitting on 2 MiB boundaries is fine. */
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, munmap((char *)p + CHUNK, CHUNK));
	ASSERT_EQ(0, munmap(p, CHUNK));
	close(fd2);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("refuse")));
}

/* A read-only handle maps read-only and cannot gain write by mprotect. */
TEST_F(dev, readonly_handle)
{
	const size_t len = CHUNK;
	struct tiermem_create c;
	struct tiermem_open o;
	struct tiermem_export e = {};
	char *w, *r;
	/* A read-only file: its MAP_SHARED mappings have no VM_SHARED. */
	int fd2 = open(TIERMEM_DEVICE, O_RDONLY);

	ASSERT_EQ(0, tm_create(self->fd, tm_name("ro"), TIERMEM_TIER_DDR, len, 0600, &c));
	w = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, w);
	strcpy(w, "hello");
	ASSERT_EQ(0, tm_open_region(fd2, tm_name("ro"), 0, &o));
	ASSERT_EQ(MAP_FAILED, tm_map(fd2, o.mmap_offset, len, PROT_READ | PROT_WRITE));
	ASSERT_EQ(EACCES, errno);
	r = tm_map(fd2, o.mmap_offset, len, PROT_READ);
	ASSERT_NE(MAP_FAILED, r);
	ASSERT_STREQ("hello", r);
	ASSERT_EQ(-1, mprotect(r, len, PROT_READ | PROT_WRITE));
	/* Copies into it and writable exports need a writable handle. */
	ASSERT_EQ(-EACCES, tm_copy(fd2, o.id, 0, o.id, 4096, 4096));
	e.id = o.id;
	e.flags = TIERMEM_EXPORT_WRITE;
	ASSERT_EQ(-EACCES, tm_ioctl(fd2, TIERMEM_IOC_EXPORT, &e));
	munmap(r, len);
	munmap(w, len);
	close(fd2);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("ro")));
}

/* Deleting a mapped region keeps its memory under the mapping. */
TEST_F(dev, delete_while_mapped)
{
	const size_t len = 4 * CHUNK;
	struct tiermem_create c;
	struct tiermem_version v;
	struct tiermem_counters st;
	void *p;

	ASSERT_EQ(0, tm_create(self->fd, tm_name("dwm"), TIERMEM_TIER_DDR, len, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, len, 7);
	ASSERT_EQ(0, tm_close_region(self->fd, c.id));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("dwm")));
	ASSERT_EQ(-ENOENT, tm_open_region(self->fd, tm_name("dwm"), 0, NULL));
	/* Other allocations do not get these pages. */
	ASSERT_EQ(0, tm_create(self->fd, tm_name("dwm2"), TIERMEM_TIER_DDR, len, 0600, NULL));
	ASSERT_EQ(-1, tm_check(p, len, 7));
	ASSERT_EQ(0, tm_version(self->fd, &v));
	ASSERT_EQ(self->v.ddr_used_bytes + 2 * len, v.ddr_used_bytes);
	ASSERT_EQ(0, tm_tier_stats(self->fd, TIERMEM_TIER_DDR, &st));
	ASSERT_LE(1, st.live_mappings);
	ASSERT_EQ(0, munmap(p, len));
	ASSERT_EQ(0, tm_version(self->fd, &v));
	ASSERT_EQ(self->v.ddr_used_bytes + len, v.ddr_used_bytes);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("dwm2")));
}

/* A child inherits the mapping; both see the same memory. */
TEST_F(dev, fork_shares)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_create c;
	volatile uint64_t *p;
	pid_t pid;
	int status;

	ASSERT_EQ(0, tm_create(self->fd, tm_name("fork"), TIERMEM_TIER_DDR, len, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		p[CHUNK / 8] = p[0] + 41;
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_EQ(42, p[CHUNK / 8]);
	munmap((void *)p, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("fork")));
}

/*
 * Runs @fn in a child with uid/gid 65534 (nobody), in the device's group so
 * it may open /dev/tiermem; returns its exit code.
 */
static int as_nobody(int (*fn)(void *), void *arg)
{
	struct stat st;
	pid_t pid;
	int status;

	if (stat(TIERMEM_DEVICE, &st))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		if (setgroups(1, &st.st_gid) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(100);
		_exit(fn(arg));
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

struct perm_case {
	const char *priv;	/* mode 0600 */
	const char *shared;	/* mode 0644 */
	const char *open_rw;	/* mode 0666 */
};

static int nobody_checks(void *arg)
{
	struct perm_case *pc = arg;
	struct tiermem_attach a = {};
	struct tiermem_detach d = {};
	struct tiermem_open o;
	struct tiermem_create c;
	char *p;
	int fd = tm_dev();

	if (fd < 0)
		return 1;
	if (tm_open_region(fd, pc->priv, 0, NULL) != -EACCES)
		return 2;
	if (tm_delete(fd, pc->priv) != -EACCES)
		return 3;
	if (tm_open_region(fd, pc->shared, TIERMEM_OPEN_WRITE, NULL) != -EACCES)
		return 4;
	if (tm_open_region(fd, pc->shared, 0, &o))
		return 5;
	if (tm_delete(fd, pc->shared) != -EACCES)
		return 6;
	p = tm_map(fd, o.mmap_offset, o.size, PROT_READ);
	if (p == MAP_FAILED || strcmp(p, "root data"))
		return 7;
	if (tm_map(fd, o.mmap_offset, o.size, PROT_READ | PROT_WRITE) != MAP_FAILED)
		return 8;
	/* Others read the counters page but cannot add to it. */
	if (tm_map(fd, o.counters_offset, 4096, PROT_READ | PROT_WRITE) != MAP_FAILED ||
	    tm_map(fd, o.counters_offset, 4096, PROT_READ) == MAP_FAILED)
		return 17;
	if (tm_open_region(fd, pc->open_rw, TIERMEM_OPEN_WRITE, NULL))
		return 9;
	strcpy(a.path, "/dev/pmem0");
	if (tm_ioctl(fd, TIERMEM_IOC_ATTACH, &a) != -EPERM)
		return 10;
	if (tm_ioctl(fd, TIERMEM_IOC_DETACH, &d) != -EPERM)
		return 11;
	/* Its own region: owned by nobody, zeroed. */
	if (tm_create(fd, "nobody-own", TIERMEM_TIER_DDR, CHUNK, 0600, &c))
		return 12;
	p = tm_map(fd, c.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	if (p == MAP_FAILED || !tm_all_zero(p, CHUNK))
		return 13;
	/* Mode 0: not even its owner may open it, but the owner may delete it. */
	if (tm_create(fd, "nobody-mode0", TIERMEM_TIER_DDR, CHUNK, 0, NULL))
		return 14;
	if (tm_open_region(fd, "nobody-mode0", 0, NULL) != -EACCES)
		return 15;
	if (tm_delete(fd, "nobody-mode0"))
		return 16;
	return 0;
}

TEST_F(dev, permissions)
{
	struct perm_case pc = { tm_name("p600"), tm_name("p644"), tm_name("p666") };
	struct tiermem_create c;
	struct tiermem_open o;
	char *p;

	if (geteuid() != 0) {
		/* Already unprivileged: the checks that need no second user. */
		struct tiermem_attach a = {};
		struct tiermem_detach d = {};

		strcpy(a.path, "/dev/pmem0");
		ASSERT_EQ(-EPERM, tm_ioctl(self->fd, TIERMEM_IOC_ATTACH, &a));
		ASSERT_EQ(-EPERM, tm_ioctl(self->fd, TIERMEM_IOC_DETACH, &d));
		ASSERT_EQ(0, tm_create(self->fd, pc.priv, TIERMEM_TIER_DDR, CHUNK, 0, &c));
		ASSERT_EQ(-EACCES, tm_open_region(self->fd, pc.priv, 0, NULL));
		ASSERT_EQ(0, tm_delete(self->fd, pc.priv));
		return;
	}
	ASSERT_EQ(0, tm_create(self->fd, pc.priv, TIERMEM_TIER_DDR, CHUNK, 0600, NULL));
	ASSERT_EQ(0, tm_create(self->fd, pc.shared, TIERMEM_TIER_DDR, CHUNK, 0644, &c));
	ASSERT_EQ(0, tm_create(self->fd, pc.open_rw, TIERMEM_TIER_DDR, CHUNK, 0666, NULL));
	p = tm_map(self->fd, c.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	strcpy(p, "root data");
	ASSERT_EQ(0, as_nobody(nobody_checks, &pc));
	/* The region nobody made is owned by nobody; root may still open it. */
	ASSERT_EQ(0, tm_open_region(self->fd, "nobody-own", TIERMEM_OPEN_WRITE, &o));
	ASSERT_EQ(0, tm_delete(self->fd, "nobody-own"));
	munmap(p, CHUNK);
	ASSERT_EQ(0, tm_delete(self->fd, pc.priv));
	ASSERT_EQ(0, tm_delete(self->fd, pc.shared));
	ASSERT_EQ(0, tm_delete(self->fd, pc.open_rw));
}

/* The counters page: the owner adds bytes read, everyone sees them. */
TEST_F(dev, counters_page)
{
	struct tiermem_create c;
	struct tiermem_open o, ro;
	struct tiermem_counters st;
	struct tiermem_user_counters *uc, *ruc;
	int fd2 = tm_dev();

	ASSERT_EQ(0, tm_create(self->fd, tm_name("ctr"), TIERMEM_TIER_DDR, CHUNK, 0644, &c));
	ASSERT_EQ(0, tm_open_region(self->fd, tm_name("ctr"), TIERMEM_OPEN_WRITE, &o));
	uc = tm_map(self->fd, o.counters_offset, 4096, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, uc);
	ASSERT_EQ(MAP_FAILED, tm_map(self->fd, o.counters_offset, 8192, PROT_READ));
	__atomic_fetch_add(&uc->bytes_read, 12345, __ATOMIC_RELAXED);
	__atomic_fetch_add(&uc->bytes_read, 55, __ATOMIC_RELAXED);
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(12400, st.bytes_read);
	ASSERT_EQ(0, tm_open_region(fd2, tm_name("ctr"), 0, &ro));
	/* A read-only handle reads the counters, even the owner's. */
	ASSERT_EQ(MAP_FAILED, tm_map(fd2, ro.counters_offset, 4096, PROT_READ | PROT_WRITE));
	ruc = tm_map(fd2, ro.counters_offset, 4096, PROT_READ);
	ASSERT_NE(MAP_FAILED, ruc);
	ASSERT_EQ(12400, __atomic_load_n(&ruc->bytes_read, __ATOMIC_RELAXED));
	ASSERT_EQ(0, tm_tier_stats(fd2, TIERMEM_TIER_DDR, &st));
	ASSERT_LE(12400, st.bytes_read);
	munmap(ruc, 4096);
	munmap(uc, 4096);
	close(fd2);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("ctr")));
}

static unsigned long long sysfs_u64(const char *tier, const char *name)
{
	char path[192];
	unsigned long long v = ~0ULL;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/tiermem/%s/%s", tier, name);
	f = fopen(path, "r");
	if (!f)
		return ~0ULL;
	if (fscanf(f, "%llu", &v) != 1)
		v = ~0ULL;
	fclose(f);
	return v;
}

TEST_F(dev, sysfs_matches_ioctl)
{
	char dir[TIERMEM_NAME_MAX + 16], path[TIERMEM_NAME_MAX + 48];
	struct tiermem_counters st;
	struct tiermem_create c;
	char *p;

	ASSERT_EQ(0, tm_create(self->fd, tm_name("sysfs"), TIERMEM_TIER_DDR, 2 * CHUNK, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, 2 * CHUNK, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, p[0] + p[CHUNK]);
	ASSERT_EQ(0, tm_tier_stats(self->fd, TIERMEM_TIER_DDR, &st));
	ASSERT_LE(2, st.faults_pmd);
	ASSERT_EQ(st.faults_pmd, sysfs_u64("ddr", "faults_pmd"));
	ASSERT_EQ(st.faults_pte, sysfs_u64("ddr", "faults_pte"));
	ASSERT_EQ(st.bytes_mapped, sysfs_u64("ddr", "bytes_mapped"));
	ASSERT_EQ(st.live_mappings, sysfs_u64("ddr", "live_mappings"));
	ASSERT_EQ(0, sysfs_u64("ddr", "faults_pud"));
	/* Per region: /sys/kernel/tiermem/regions/NAME/, while it exists. */
	snprintf(dir, sizeof(dir), "regions/%s", tm_name("sysfs"));
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(2, st.faults_pmd);
	ASSERT_EQ(2, sysfs_u64(dir, "faults_pmd"));
	ASSERT_EQ(2 * CHUNK, sysfs_u64(dir, "bytes_mapped"));
	ASSERT_EQ(1, sysfs_u64(dir, "live_mappings"));
	ASSERT_EQ(0, sysfs_u64(dir, "pinned_pages"));
	munmap(p, 2 * CHUNK);
	ASSERT_EQ(0, sysfs_u64(dir, "live_mappings"));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("sysfs")));
	snprintf(path, sizeof(path), "/sys/kernel/tiermem/%s", dir);
	ASSERT_NE(0, access(path, F_OK));
}

TEST_F(dev, copy_ddr)
{
	const size_t len = 4 * CHUNK;
	struct tiermem_create a, b;
	struct tiermem_counters st;
	char *pa, *pb;

	ASSERT_EQ(0, tm_create(self->fd, tm_name("cpa"), TIERMEM_TIER_DDR, len, 0600, &a));
	ASSERT_EQ(0, tm_create(self->fd, tm_name("cpb"), TIERMEM_TIER_DDR, len, 0600, &b));
	pa = tm_map(self->fd, a.mmap_offset, len, PROT_READ | PROT_WRITE);
	pb = tm_map(self->fd, b.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, pa);
	ASSERT_NE(MAP_FAILED, pb);
	tm_fill(pa, len, 3);
	/* Unaligned offsets crossing chunk boundaries. */
	ASSERT_EQ(0, tm_copy(self->fd, a.id, 8, b.id, 4096 + 16, len - 8192));
	ASSERT_EQ(0, memcmp(pa + 8, pb + 4096 + 16, len - 8192));
	ASSERT_TRUE(tm_all_zero(pb, 4096 + 16));
	ASSERT_EQ(0, tm_stats(self->fd, b.id, &st));
	ASSERT_EQ(len - 8192, st.bytes_copied);
	/* Bad ranges. */
	ASSERT_EQ(-EINVAL, tm_copy(self->fd, a.id, 0, b.id, 0, 0));
	ASSERT_EQ(-EINVAL, tm_copy(self->fd, a.id, len - 4096, b.id, 0, 8192));
	ASSERT_EQ(-EINVAL, tm_copy(self->fd, a.id, 0, b.id, ~0ULL, 8192));
	ASSERT_EQ(-EINVAL, tm_copy(self->fd, a.id, 4096, b.id, 0, ~0ULL));
	/* Overlapping inside one region; disjoint is fine. */
	ASSERT_EQ(-EINVAL, tm_copy(self->fd, a.id, 0, a.id, 4096, 8192));
	ASSERT_EQ(0, tm_copy(self->fd, a.id, 0, a.id, CHUNK, 8192));
	ASSERT_EQ(0, memcmp(pa, pa + CHUNK, 8192));
	ASSERT_EQ(-ENOENT, tm_copy(self->fd, a.id + 999, 0, b.id, 0, 4096));
	munmap(pa, len);
	munmap(pb, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("cpa")));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("cpb")));
}

TEST_F(dev, export_ddr)
{
	const size_t len = 4 * CHUNK;
	struct tiermem_create c;
	struct tiermem_export e = {};
	struct tiermem_counters st;
	char *p, *q;

	ASSERT_EQ(0, tm_create(self->fd, tm_name("exp"), TIERMEM_TIER_DDR, len, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, len, 11);
	e.id = c.id;
	e.offset = CHUNK - 8192;
	e.length = CHUNK;
	e.flags = TIERMEM_EXPORT_CLOEXEC;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	ASSERT_LE(0, e.fd);
	ASSERT_EQ(FD_CLOEXEC, fcntl(e.fd, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(CHUNK, lseek(e.fd, 0, SEEK_END));
	ASSERT_EQ(MAP_FAILED, mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0));
	q = mmap(NULL, CHUNK, PROT_READ, MAP_SHARED, e.fd, 0);
	ASSERT_NE(MAP_FAILED, q);
	ASSERT_EQ(0, memcmp(p + CHUNK - 8192, q, CHUNK));
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(1, st.exports);
	/* The dma-buf keeps the memory after delete. */
	munmap(p, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("exp")));
	ASSERT_EQ(0, tm_close_region(self->fd, c.id));
	ASSERT_EQ(tm_pattern(11, (CHUNK - 8192) / 8), *(uint64_t *)q);
	munmap(q, CHUNK);
	close(e.fd);

	ASSERT_EQ(0, tm_create(self->fd, tm_name("exp"), TIERMEM_TIER_DDR, len, 0600, &c));
	e.id = c.id;
	e.flags = 0;
	e.offset = 100;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	e.offset = 0;
	e.length = len + 4096;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	e.offset = len;
	e.length = 0;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	e.offset = 0;
	e.flags = TIERMEM_EXPORT_WRITE;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, e.fd, 0);
	ASSERT_NE(MAP_FAILED, q);
	q[len - 1] = 9;
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ);
	ASSERT_EQ(9, p[len - 1]);
	munmap(q, len);
	munmap(p, len);
	close(e.fd);
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(0, st.exports);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("exp")));
}

/*
 * Several processes at once: each makes, fills, checks and deletes its own
 * regions while all of them map and read one shared region, which the
 * parent deletes in the middle.
 */
TEST_F(dev, many_processes)
{
	const int nproc = 4, rounds = 6;
	const size_t len = 2 * CHUNK;
	struct tiermem_create c;
	void *p;
	int i, status, bad = 0;
	pid_t pids[4];
	char shared[TIERMEM_NAME_MAX];

	strcpy(shared, tm_name("shared"));
	ASSERT_EQ(0, tm_create(self->fd, shared, TIERMEM_TIER_DDR, len, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, len, 99);
	munmap(p, len);
	for (i = 0; i < nproc; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i])
			continue;
		for (int r = 0; r < rounds; r++) {
			struct tiermem_create mine;
			struct tiermem_open o;
			int fd = tm_dev();
			char name[32];
			void *q;

			snprintf(name, sizeof(name), "mp-%d-%d", i, r);
			if (tm_create(fd, name, TIERMEM_TIER_DDR, len, 0600, &mine))
				_exit(1);
			q = tm_map(fd, mine.mmap_offset, len, PROT_READ | PROT_WRITE);
			if (q == MAP_FAILED || !tm_all_zero(q, len))
				_exit(2);
			tm_fill(q, len, i * 100 + r);
			if (tm_delete(fd, name) || tm_check(q, len, i * 100 + r) != -1)
				_exit(3);
			munmap(q, len);
			/* The shared one may be gone already; if not, it is intact. */
			if (!tm_open_region(fd, shared, 0, &o)) {
				q = tm_map(fd, o.mmap_offset, len, PROT_READ);
				if (q == MAP_FAILED || tm_check(q, len, 99) != -1)
					_exit(4);
				usleep(1000);
				munmap(q, len);
			}
			close(fd);
		}
		_exit(0);
	}
	usleep(20000);
	ASSERT_EQ(0, tm_delete(self->fd, shared));
	for (i = 0; i < nproc; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			bad++;
		TH_LOG("child %d status %d", i, status);
	}
	ASSERT_EQ(0, bad);
}

TEST_HARNESS_MAIN
