// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem kselftests for the PMEM tier: needs tiermem.ko loaded with
 * pmem=/dev/pmem0 (an fsdax namespace of at least 256 MiB). Attach, detach
 * and table corruption need root; they skip otherwise. The corruption tests
 * rewrite the on-media table through the block device and restore it.
 */
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "tm_test.h"

#define PMEM_DEV	"/dev/pmem0"
#define HDR_SIZE	4096
#define ENTRY_SIZE	128
#define TABLE_SIZE	(2 * MiB)

static uint32_t crc32_ieee(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t c = ~0U;

	while (n--) {
		c ^= *b++;
		for (int k = 0; k < 8; k++)
			c = c >> 1 ^ (0xedb88320U & -(c & 1));
	}
	return ~c;
}

static int pmem_index(int fd)
{
	struct tiermem_version v;

	if (tm_version(fd, &v) || !v.nr_pmem)
		return -1;
	return 0;
}

static int create_pmem(int fd, const char *name, __u64 size, __u32 mode,
		       struct tiermem_create *c)
{
	struct tiermem_create in = { .tier = TIERMEM_TIER_PMEM, .size = size,
				     .mode = mode,
				     .flags = TIERMEM_CREATE_ANY_PMEM };
	int ret;

	tm_setname(in.name, name);
	ret = tm_ioctl(fd, TIERMEM_IOC_CREATE, &in);
	*c = in;
	return ret;
}

FIXTURE(pmem) {
	int fd;
};

FIXTURE_SETUP(pmem)
{
	self->fd = tm_dev();
	ASSERT_LE(0, self->fd);
	if (pmem_index(self->fd) < 0)
		SKIP(return, "no PMEM namespace attached (load with pmem=" PMEM_DEV ")");
}

FIXTURE_TEARDOWN(pmem)
{
	close(self->fd);
}

/* New regions are zero, filling, PMD-mapped; sealing makes them read-only. */
TEST_F(pmem, create_fill_seal)
{
	const size_t len = 8 * CHUNK;
	struct tiermem_counters st;
	struct tiermem_create c;
	struct tiermem_open o;
	struct tiermem_export e = {};
	char *p;

	ASSERT_EQ(0, create_pmem(self->fd, tm_name("seal"), len, 0644, &c));
	ASSERT_EQ(0, tm_open_region(self->fd, tm_name("seal"), TIERMEM_OPEN_WRITE, &o));
	ASSERT_EQ(TIERMEM_TIER_PMEM, o.tier);
	ASSERT_EQ(TIERMEM_STATE_FILLING, o.state);
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, (uintptr_t)p % CHUNK);
	ASSERT_TRUE(tm_all_zero(p, len));
	tm_fill(p, len, 21);
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(8, st.faults_pmd);
	ASSERT_EQ(0, st.faults_pte);
	ASSERT_EQ(len, st.bytes_mapped);
	/* Not while a writable mapping could still change it. */
	ASSERT_EQ(-EBUSY, tm_seal(self->fd, c.id));
	ASSERT_EQ(0, munmap(p, len));
	ASSERT_EQ(0, tm_seal(self->fd, c.id));
	ASSERT_EQ(-EALREADY, tm_seal(self->fd, c.id));
	ASSERT_EQ(0, tm_open_region(self->fd, tm_name("seal"), TIERMEM_OPEN_WRITE, &o));
	ASSERT_EQ(TIERMEM_STATE_SEALED, o.state);
	ASSERT_EQ(MAP_FAILED, tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE));
	ASSERT_EQ(EACCES, errno);
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(-1, mprotect(p, len, PROT_READ | PROT_WRITE));
	ASSERT_EQ(-1, tm_check(p, len, 21));
	ASSERT_EQ(-EPERM, tm_copy(self->fd, c.id, 0, c.id, CHUNK, 4096));
	e.id = c.id;
	e.flags = TIERMEM_EXPORT_WRITE;
	ASSERT_EQ(-EPERM, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	munmap(p, len);
	/* Its readers still count the bytes they read, through a writable handle. */
	{
		struct tiermem_user_counters *uc;
		int fd2 = tm_dev();

		ASSERT_EQ(0, tm_open_region(fd2, tm_name("seal"), TIERMEM_OPEN_WRITE, &o));
		uc = tm_map(fd2, o.counters_offset, 4096, PROT_READ | PROT_WRITE);
		ASSERT_NE(MAP_FAILED, uc);
		__atomic_fetch_add(&uc->bytes_read, len, __ATOMIC_RELAXED);
		ASSERT_EQ(0, tm_stats(fd2, o.id, &st));
		ASSERT_EQ(len, st.bytes_read);
		ASSERT_EQ(0, st.live_mappings);
		/* ... and the counters page does not block anything. */
		ASSERT_EQ(-EALREADY, tm_seal(self->fd, c.id));
		munmap(uc, 4096);
		close(fd2);
	}
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("seal")));
}

/* A writable dma-buf also blocks the seal. */
TEST_F(pmem, seal_blocked_by_writable_export)
{
	struct tiermem_create c;
	struct tiermem_export e = {};

	ASSERT_EQ(0, create_pmem(self->fd, tm_name("sealx"), CHUNK, 0600, &c));
	e.id = c.id;
	e.flags = TIERMEM_EXPORT_WRITE;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	ASSERT_EQ(-EBUSY, tm_seal(self->fd, c.id));
	close(e.fd);
	ASSERT_EQ(0, tm_seal(self->fd, c.id));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("sealx")));
}

TEST_F(pmem, space_and_args)
{
	struct tiermem_create c;
	struct tiermem_attach a = {};

	ASSERT_EQ(-ENOSPC, create_pmem(self->fd, tm_name("huge"), 1ULL << 38, 0600, &c));
	ASSERT_EQ(-ENODEV, tm_create_pmem(self->fd, tm_name("nodev"), TIERMEM_TIER_PMEM,
					  CHUNK, 0600, TIERMEM_PMEM_MAX - 1, NULL));
	if (geteuid() != 0)
		return;
	/* Attach arguments: path not NUL-terminated, empty, unknown flags. */
	memset(a.path, 'x', sizeof(a.path));
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_ATTACH, &a));
	memset(a.path, 0, sizeof(a.path));
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_ATTACH, &a));
	strcpy(a.path, PMEM_DEV);
	a.flags = 4;
	ASSERT_EQ(-EINVAL, tm_ioctl(self->fd, TIERMEM_IOC_ATTACH, &a));
	/* Already attached: the exclusive open fails. */
	a.flags = 0;
	ASSERT_EQ(-EBUSY, tm_ioctl(self->fd, TIERMEM_IOC_ATTACH, &a));
	strcpy(a.path, "/dev/null");
	ASSERT_GT(0, tm_ioctl(self->fd, TIERMEM_IOC_ATTACH, &a));
	strcpy(a.path, "/nonexistent");
	ASSERT_EQ(-ENOENT, tm_ioctl(self->fd, TIERMEM_IOC_ATTACH, &a));
}

/* Promote a PMEM range into DDR and demote it back, counted. */
TEST_F(pmem, copy_promote_demote)
{
	const size_t len = 4 * CHUNK;
	struct tiermem_create pm, dd;
	struct tiermem_counters st, t0, t1;
	char *pp, *pd;

	ASSERT_EQ(0, tm_tier_stats(self->fd, TIERMEM_TIER_PMEM, &t0));
	ASSERT_EQ(0, create_pmem(self->fd, tm_name("cpp"), len, 0600, &pm));
	ASSERT_EQ(0, tm_create(self->fd, tm_name("cpd"), TIERMEM_TIER_DDR, len, 0600, &dd));
	pp = tm_map(self->fd, pm.mmap_offset, len, PROT_READ | PROT_WRITE);
	pd = tm_map(self->fd, dd.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, pp);
	ASSERT_NE(MAP_FAILED, pd);
	tm_fill(pp, len, 5);
	ASSERT_EQ(0, tm_copy(self->fd, pm.id, 0, dd.id, 0, len));
	ASSERT_EQ(-1, tm_check(pd, len, 5));
	tm_fill(pd, len, 6);
	ASSERT_EQ(0, tm_copy(self->fd, dd.id, 4096, pm.id, 4096, len - 8192));
	ASSERT_EQ(0, memcmp(pp + 4096, pd + 4096, len - 8192));
	ASSERT_EQ(tm_pattern(5, 0), *(uint64_t *)pp);
	/* PMEM to PMEM, within one region. */
	ASSERT_EQ(0, tm_copy(self->fd, pm.id, 0, pm.id, 2 * CHUNK, CHUNK));
	ASSERT_EQ(0, memcmp(pp, pp + 2 * CHUNK, CHUNK));
	ASSERT_EQ(0, tm_stats(self->fd, pm.id, &st));
	ASSERT_EQ(len + len - 8192 + CHUNK, st.bytes_copied);
	ASSERT_EQ(0, st.media_errors);
	ASSERT_EQ(0, tm_tier_stats(self->fd, TIERMEM_TIER_PMEM, &t1));
	ASSERT_EQ(t0.bytes_copied + st.bytes_copied, t1.bytes_copied);
	munmap(pp, len);
	munmap(pd, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("cpp")));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("cpd")));
}

TEST_F(pmem, export_pmem)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_create c;
	struct tiermem_export e = {};
	char *p, *q;

	ASSERT_EQ(0, create_pmem(self->fd, tm_name("pexp"), len, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, len, 8);
	e.id = c.id;
	e.offset = 8192;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	q = mmap(NULL, len - 8192, PROT_READ, MAP_SHARED, e.fd, 0);
	ASSERT_NE(MAP_FAILED, q);
	ASSERT_EQ(0, memcmp(p + 8192, q, len - 8192));
	munmap(q, len - 8192);
	munmap(p, len);
	close(e.fd);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pexp")));
}

/* A deleted but mapped region keeps its space: a new one lands elsewhere. */
TEST_F(pmem, delete_while_mapped)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_region_info e[64];
	struct tiermem_list l = { .entries = (uintptr_t)e, .capacity = 64 };
	struct tiermem_create a, b;
	__u64 aoff = 0, boff = 0;
	char *p, *q;

	ASSERT_EQ(0, create_pmem(self->fd, tm_name("pdel"), len, 0600, &a));
	p = tm_map(self->fd, a.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, len, 4);
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_LIST, &l));
	for (__u32 i = 0; i < l.count && i < 64; i++)
		if (e[i].id == a.id)
			aoff = e[i].pmem_offset;
	ASSERT_NE(0, aoff);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pdel")));
	ASSERT_EQ(0, tm_close_region(self->fd, a.id));
	ASSERT_EQ(0, create_pmem(self->fd, tm_name("pdel2"), len, 0600, &b));
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_LIST, &l));
	for (__u32 i = 0; i < l.count && i < 64; i++)
		if (e[i].id == b.id)
			boff = e[i].pmem_offset;
	ASSERT_NE(0, boff);
	ASSERT_TRUE(boff + len <= aoff || aoff + len <= boff);
	q = tm_map(self->fd, b.mmap_offset, len, PROT_READ);
	ASSERT_NE(MAP_FAILED, q);
	ASSERT_TRUE(tm_all_zero(q, len));
	ASSERT_EQ(-1, tm_check(p, len, 4));
	munmap(q, len);
	munmap(p, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pdel2")));
}

static int attach(int fd, struct tiermem_attach *a)
{
	memset(a, 0, sizeof(*a));
	strcpy(a->path, PMEM_DEV);
	return tm_ioctl(fd, TIERMEM_IOC_ATTACH, a);
}

static int detach(int fd, __u32 index)
{
	struct tiermem_detach d = { .index = index };

	return tm_ioctl(fd, TIERMEM_IOC_DETACH, &d);
}

/* Regions and their states survive a detach and a new attach. */
TEST_F(pmem, detach_attach_keeps_regions)
{
	const size_t len = 2 * CHUNK;
	char dir[TIERMEM_NAME_MAX + 32];
	struct tiermem_create s, f;
	struct tiermem_attach a;
	struct tiermem_open o;
	char *p;

	if (geteuid() != 0)
		SKIP(return, "attach needs CAP_SYS_ADMIN");
	ASSERT_EQ(0, create_pmem(self->fd, tm_name("keep-s"), len, 0640, &s));
	ASSERT_EQ(0, create_pmem(self->fd, tm_name("keep-f"), len, 0600, &f));
	p = tm_map(self->fd, s.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, len, 77);
	/* Busy while mapped, while open. */
	ASSERT_EQ(-EBUSY, detach(self->fd, 0));
	munmap(p, len);
	ASSERT_EQ(0, tm_seal(self->fd, s.id));
	ASSERT_EQ(-EBUSY, detach(self->fd, 0));
	ASSERT_EQ(0, tm_close_region(self->fd, s.id));
	ASSERT_EQ(0, tm_close_region(self->fd, f.id));
	snprintf(dir, sizeof(dir), "/sys/kernel/tiermem/regions/%s", tm_name("keep-s"));
	ASSERT_EQ(0, access(dir, F_OK));
	ASSERT_EQ(0, detach(self->fd, 0));
	ASSERT_EQ(-ENOENT, detach(self->fd, 0));
	ASSERT_EQ(-ENOENT, tm_open_region(self->fd, tm_name("keep-s"), 0, NULL));
	ASSERT_NE(0, access(dir, F_OK));
	ASSERT_EQ(0, attach(self->fd, &a));
	ASSERT_EQ(0, a.index);
	ASSERT_EQ(0, access(dir, F_OK));
	ASSERT_EQ(0, tm_open_region(self->fd, tm_name("keep-s"), 0, &o));
	ASSERT_EQ(TIERMEM_STATE_SEALED, o.state);
	ASSERT_EQ(len, o.size);
	p = tm_map(self->fd, o.mmap_offset, len, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(-1, tm_check(p, len, 77));
	munmap(p, len);
	ASSERT_EQ(0, tm_open_region(self->fd, tm_name("keep-f"), 0, &o));
	ASSERT_EQ(TIERMEM_STATE_FILLING, o.state);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("keep-s")));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("keep-f")));
}

/* Raw table access through the block device, bypassing any cache. */
static int table_io(void *buf, int write)
{
	int fd = open(PMEM_DEV, (write ? O_RDWR : O_RDONLY) | O_DIRECT | O_SYNC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write ? pwrite(fd, buf, TABLE_SIZE, 0) : pread(fd, buf, TABLE_SIZE, 0);
	close(fd);
	return n == TABLE_SIZE ? 0 : -EIO;
}

static int find_slot(const uint8_t *t, const char *name)
{
	for (int i = 0; i < (TABLE_SIZE - HDR_SIZE) / ENTRY_SIZE; i++) {
		const uint8_t *e = t + HDR_SIZE + i * ENTRY_SIZE;

		if (*(const uint64_t *)e && !strcmp((const char *)e + 8, name))
			return i;
	}
	return -1;
}

static void entry_recrc(uint8_t *t, int slot)
{
	uint8_t *e = t + HDR_SIZE + slot * ENTRY_SIZE;
	uint32_t crc = crc32_ieee(e + 8, 116);

	memcpy(e + 124, &crc, 4);
}

/* True when the kernel log since @kfd was opened holds @what. */
static int klog_has(int kfd, const char *what)
{
	char rec[1024];
	ssize_t n;
	int found = 0;

	while ((n = read(kfd, rec, sizeof(rec) - 1)) > 0) {
		rec[n] = 0;
		if (strstr(rec, what))
			found = 1;
	}
	return found;
}

enum corruption { HDR_CRC, ENTRY_CRC, ENTRY_OFFSET, OVERLAP, STATE_WORD, BAD_MAGIC };

static void corrupt(uint8_t *t, enum corruption how, int s1, int s2)
{
	uint8_t *e1 = t + HDR_SIZE + s1 * ENTRY_SIZE;
	uint8_t *e2 = t + HDR_SIZE + s2 * ENTRY_SIZE;
	uint64_t v;

	switch (how) {
	case HDR_CRC:
		t[20] ^= 0x40;			/* a geometry byte, crc unchanged */
		break;
	case ENTRY_CRC:
		e1[10] ^= 1;			/* a name byte */
		break;
	case ENTRY_OFFSET:
		v = 1ULL << 50;			/* far past the end, crc fixed */
		memcpy(e1 + 72, &v, 8);
		entry_recrc(t, s1);
		break;
	case OVERLAP:
		memcpy(&v, e1 + 72, 8);		/* e2 starts inside e1 */
		v += CHUNK;
		memcpy(e2 + 72, &v, 8);
		entry_recrc(t, s2);
		break;
	case STATE_WORD:
		e1[5] ^= 0xff;
		break;
	case BAD_MAGIC:
		t[0] ^= 0xff;
		break;
	}
}

static const struct {
	enum corruption how;
	const char *log;
} cases[] = {
	{ HDR_CRC, "header checksum mismatch" },
	{ ENTRY_CRC, "bad checksum" },
	{ ENTRY_OFFSET, "impossible offset or size" },
	{ OVERLAP, "overlap" },
	{ STATE_WORD, "bad state word" },
	{ BAD_MAGIC, "no tiermem region table" },
};

/* Every corruption is refused at attach, logged, and nothing is changed. */
TEST_F(pmem, corrupted_table_refused)
{
	uint8_t *good, *bad, *now;
	struct tiermem_create c1, c2;
	struct tiermem_attach a;
	struct tiermem_open o;
	int s1, s2, kfd;

	if (geteuid() != 0)
		SKIP(return, "attach needs CAP_SYS_ADMIN");
	ASSERT_EQ(0, create_pmem(self->fd, tm_name("cor1"), 2 * CHUNK, 0600, &c1));
	ASSERT_EQ(0, create_pmem(self->fd, tm_name("cor2"), CHUNK, 0600, &c2));
	ASSERT_EQ(0, tm_close_region(self->fd, c1.id));
	ASSERT_EQ(0, tm_close_region(self->fd, c2.id));
	ASSERT_EQ(0, detach(self->fd, 0));
	ASSERT_EQ(0, posix_memalign((void **)&good, 4096, TABLE_SIZE));
	ASSERT_EQ(0, posix_memalign((void **)&bad, 4096, TABLE_SIZE));
	ASSERT_EQ(0, posix_memalign((void **)&now, 4096, TABLE_SIZE));
	ASSERT_EQ(0, table_io(good, 0));
	s1 = find_slot(good, tm_name("cor1"));
	s2 = find_slot(good, tm_name("cor2"));
	ASSERT_LE(0, s1);
	ASSERT_LE(0, s2);
	kfd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	ASSERT_LE(0, kfd);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lseek(kfd, 0, SEEK_END);
		memcpy(bad, good, TABLE_SIZE);
		corrupt(bad, cases[i].how, s1, s2);
		ASSERT_EQ(0, table_io(bad, 1));
		/* Never formatted over, even when asked to format. */
		memset(&a, 0, sizeof(a));
		strcpy(a.path, PMEM_DEV);
		a.flags = TIERMEM_ATTACH_FORMAT;
		ASSERT_EQ(-EUCLEAN, tm_ioctl(self->fd, TIERMEM_IOC_ATTACH, &a))
			TH_LOG("corruption %zu accepted", i);
		ASSERT_TRUE(klog_has(kfd, cases[i].log)) TH_LOG("no log line '%s'", cases[i].log);
		/* The refused table is left as it was on the media. */
		ASSERT_EQ(0, table_io(now, 0));
		ASSERT_EQ(0, memcmp(now, bad, TABLE_SIZE));
	}
	ASSERT_EQ(0, table_io(good, 1));
	ASSERT_EQ(0, attach(self->fd, &a));
	ASSERT_EQ(0, tm_open_region(self->fd, tm_name("cor1"), 0, &o));
	ASSERT_EQ(2 * CHUNK, o.size);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("cor1")));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("cor2")));
	close(kfd);
	free(good);
	free(bad);
	free(now);
}

TEST_HARNESS_MAIN
