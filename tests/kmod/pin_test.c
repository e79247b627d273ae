// SPDX-License-Identifier: GPL-2.0
/*
 * Long-term pins and DMA into tiermem mappings. Needs tiermem.ko (PMEM
 * cases also pmem=/dev/pmem0) and the test-only tiermem_pintest.ko, whose
 * ioctl pins a user range with pin_user_pages_fast(FOLL_WRITE |
 * FOLL_LONGTERM), as cudaHostRegister and RDMA registration do. io_uring's
 * IORING_REGISTER_BUFFERS is not used: on 6.1 it refuses every file-backed
 * mapping that is not shmem or hugetlbfs (after pinning), so it cannot tell
 * anything about a character device's mapping.
 *
 * O_DIRECT cases need a scratch block device (TM_ODIRECT_DEV, default
 * /dev/ram0 from brd); they skip without one.
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/io_uring.h>

#include "kselftest_harness.h"
#include "tm_test.h"
#include "pintest/pintest.h"

#define PINTEST_DEV "/dev/tiermem_pintest"

static int pin(int pfd, void *addr, size_t len, struct pintest_pin *p)
{
	memset(p, 0, sizeof(*p));
	p->addr = (uintptr_t)addr;
	p->len = len;
	return tm_ioctl(pfd, PINTEST_IOC_PIN, p);
}

static uint64_t first_word_sum(const void *addr, size_t len)
{
	const char *c = addr;
	uint64_t s = 0;

	for (size_t off = 0; off < len; off += 4096)
		s += *(const uint64_t *)(c + off);
	return s;
}

static int have_pmem(int fd)
{
	struct tiermem_version v;

	return !tm_version(fd, &v) && v.nr_pmem;
}

static int create_tier(int fd, const char *name, __u32 tier, __u64 size,
		       struct tiermem_create *c)
{
	if (tier == TIERMEM_TIER_DDR)
		return tm_create(fd, name, tier, size, 0600, c);
	memset(c, 0, sizeof(*c));
	tm_setname(c->name, name);
	c->tier = tier;
	c->size = size;
	c->mode = 0600;
	c->flags = TIERMEM_CREATE_ANY_PMEM;
	return tm_ioctl(fd, TIERMEM_IOC_CREATE, c);
}

FIXTURE(pin) {
	int fd;
	int pfd;
};

FIXTURE_VARIANT(pin) {
	__u32 tier;
};

FIXTURE_VARIANT_ADD(pin, ddr) {
	.tier = TIERMEM_TIER_DDR,
};

FIXTURE_VARIANT_ADD(pin, pmem) {
	.tier = TIERMEM_TIER_PMEM,
};

FIXTURE_SETUP(pin)
{
	self->fd = tm_dev();
	ASSERT_LE(0, self->fd);
	self->pfd = open(PINTEST_DEV, O_RDWR);
	if (self->pfd < 0)
		SKIP(return, "%s missing (insmod tiermem_pintest.ko)", PINTEST_DEV);
	if (variant->tier == TIERMEM_TIER_PMEM && !have_pmem(self->fd))
		SKIP(return, "no PMEM namespace attached");
}

FIXTURE_TEARDOWN(pin)
{
	close(self->pfd);
	close(self->fd);
}

/*
 * A FOLL_LONGTERM pin of a PMD-mapped range returns the mapped pages: the
 * kernel reads what user space wrote, user space sees what the kernel
 * writes, and the module counts the pins until they are dropped.
 */
TEST_F(pin, longterm_pmd)
{
	const size_t len = 4 * CHUNK;
	struct tiermem_counters st;
	struct tiermem_create c;
	struct pintest_write w = { .seed = 1000 };
	struct pintest_pin p;
	char *m;

	ASSERT_EQ(0, create_tier(self->fd, tm_name("pin"), variant->tier, len, &c));
	m = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	tm_fill(m, len, 31);
	ASSERT_EQ(0, pin(self->pfd, m, len, &p));
	ASSERT_EQ(len / 4096, p.pinned);
	ASSERT_EQ(first_word_sum(m, len), p.sum);
	/* Each 2 MiB piece is physically contiguous. */
	ASSERT_GE(len / CHUNK, p.pfn_runs);
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(len / 4096, st.pinned_pages);
	ASSERT_EQ(len / CHUNK, st.faults_pmd);
	ASSERT_EQ(0, tm_ioctl(self->pfd, PINTEST_IOC_WRITE, &w));
	for (size_t i = 0; i < len / 4096; i++)
		ASSERT_EQ(1000 + i, *(uint64_t *)(m + i * 4096 + 8));
	ASSERT_EQ(0, tm_ioctl(self->pfd, PINTEST_IOC_UNPIN, NULL));
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(0, st.pinned_pages);
	munmap(m, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pin")));
}

/* Pinning faults in an untouched mapping, across a 2 MiB boundary. */
TEST_F(pin, longterm_untouched_subrange)
{
	const size_t len = 4 * CHUNK;
	struct tiermem_counters st;
	struct tiermem_create c;
	struct pintest_pin p;
	char *m;

	ASSERT_EQ(0, create_tier(self->fd, tm_name("pinu"), variant->tier, len, &c));
	m = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, pin(self->pfd, m + CHUNK - 8192, 16384, &p));
	ASSERT_EQ(4, p.pinned);
	ASSERT_EQ(0, p.sum);
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(2, st.faults_pmd);
	ASSERT_EQ(4, st.pinned_pages);
	ASSERT_EQ(0, tm_ioctl(self->pfd, PINTEST_IOC_UNPIN, NULL));
	munmap(m, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pinu")));
}

/* 4 KiB-mapped (unaligned) ranges pin too. */
TEST_F(pin, longterm_pte)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_counters st;
	struct tiermem_create c;
	struct pintest_pin p;
	char *area, *m;

	ASSERT_EQ(0, create_tier(self->fd, tm_name("pinp"), variant->tier, len, &c));
	area = mmap(NULL, len + 2 * CHUNK, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	m = (char *)(((uintptr_t)area + CHUNK) & ~(CHUNK - 1)) + 4096;
	m = mmap(m, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, self->fd, c.mmap_offset);
	ASSERT_NE(MAP_FAILED, m);
	tm_fill(m, 64 * 4096, 2);
	ASSERT_EQ(0, pin(self->pfd, m, 64 * 4096, &p));
	ASSERT_EQ(64, p.pinned);
	ASSERT_EQ(first_word_sum(m, 64 * 4096), p.sum);
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(0, st.faults_pmd);
	ASSERT_EQ(64, st.faults_pte);
	ASSERT_EQ(64, st.pinned_pages);
	ASSERT_EQ(0, tm_ioctl(self->pfd, PINTEST_IOC_UNPIN, NULL));
	munmap(area, len + 2 * CHUNK);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pinp")));
}

/*
 * A pin outlives munmap, close and delete: the memory stays (the kernel
 * can still write it) and is accounted until the last unpin.
 */
TEST_F(pin, pin_outlives_unmap_and_delete)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_counters t;
	struct tiermem_create c, c2;
	struct tiermem_version v0, v;
	struct pintest_write w = { .seed = 5 };
	struct pintest_pin p;
	char *m;

	ASSERT_EQ(0, tm_version(self->fd, &v0));
	ASSERT_EQ(0, create_tier(self->fd, tm_name("pino"), variant->tier, len, &c));
	m = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	tm_fill(m, len, 9);
	ASSERT_EQ(0, pin(self->pfd, m, len, &p));
	ASSERT_EQ(0, munmap(m, len));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pino")));
	ASSERT_EQ(0, tm_close_region(self->fd, c.id));
	ASSERT_EQ(0, tm_tier_stats(self->fd, variant->tier, &t));
	ASSERT_LE(len / 4096, t.pinned_pages);
	ASSERT_EQ(0, tm_version(self->fd, &v));
	if (variant->tier == TIERMEM_TIER_DDR)
		ASSERT_EQ(v0.ddr_used_bytes + len, v.ddr_used_bytes);
	/* A new region does not get the pinned memory. */
	ASSERT_EQ(0, create_tier(self->fd, tm_name("pino2"), variant->tier, len, &c2));
	m = tm_map(self->fd, c2.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, tm_ioctl(self->pfd, PINTEST_IOC_WRITE, &w));
	ASSERT_TRUE(tm_all_zero(m, len));
	munmap(m, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pino2")));
	ASSERT_EQ(0, tm_close_region(self->fd, c2.id));
	ASSERT_EQ(0, tm_ioctl(self->pfd, PINTEST_IOC_UNPIN, NULL));
	ASSERT_EQ(0, tm_tier_stats(self->fd, variant->tier, &t));
	ASSERT_EQ(0, t.pinned_pages);
	ASSERT_EQ(0, tm_version(self->fd, &v));
	ASSERT_EQ(v0.ddr_used_bytes, v.ddr_used_bytes);
}

/* A process that exits without unpinning gives its pins back. */
TEST_F(pin, pins_dropped_at_exit)
{
	const size_t len = CHUNK;
	struct tiermem_counters st;
	struct tiermem_create c;
	struct pintest_pin p;
	int status;
	pid_t pid;
	char *m;

	ASSERT_EQ(0, create_tier(self->fd, tm_name("pinx"), variant->tier, len, &c));
	m = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int pfd = open(PINTEST_DEV, O_RDWR);

		_exit(pfd < 0 || pin(pfd, m, len, &p) || p.pinned != len / 4096);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(0, st.pinned_pages);
	munmap(m, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("pinx")));
}

static int odirect_dev(void)
{
	const char *dev = getenv("TM_ODIRECT_DEV");

	return open(dev ? dev : "/dev/ram0", O_RDWR | O_DIRECT);
}

/*
 * O_DIRECT: the block layer DMAs straight out of one tiermem mapping and
 * into another (get_user_pages on the mappings), PMD and 4 KiB alike.
 */
TEST_F(pin, odirect_roundtrip)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_create src, dst;
	char *s, *d;
	int bfd = odirect_dev();

	if (bfd < 0)
		SKIP(return, "no scratch block device for O_DIRECT (set TM_ODIRECT_DEV or load brd)");
	ASSERT_EQ(0, create_tier(self->fd, tm_name("ods"), variant->tier, len, &src));
	ASSERT_EQ(0, tm_create(self->fd, tm_name("odd"), TIERMEM_TIER_DDR, len, 0600, &dst));
	s = tm_map(self->fd, src.mmap_offset, len, PROT_READ | PROT_WRITE);
	d = tm_map(self->fd, dst.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, s);
	ASSERT_NE(MAP_FAILED, d);
	tm_fill(s, len, 44);
	ASSERT_EQ((ssize_t)len, pwrite(bfd, s, len, 0));
	ASSERT_EQ(len - 4096, pread(bfd, d + 4096, len - 4096, 4096));
	ASSERT_EQ(0, memcmp(s + 4096, d + 4096, len - 4096));
	ASSERT_TRUE(tm_all_zero(d, 4096));
	/* And back into the source tier. */
	memset(s, 0, len);
	ASSERT_EQ((ssize_t)len, pread(bfd, s, len, 0));
	ASSERT_EQ(-1, tm_check(s, len, 44));
	munmap(s, len);
	munmap(d, len);
	close(bfd);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("ods")));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("odd")));
}

static int uring_register(void *addr, size_t len)
{
	struct io_uring_params p = {};
	struct iovec iov = { .iov_base = addr, .iov_len = len };
	int ring = syscall(__NR_io_uring_setup, 4, &p), ret;

	if (ring < 0)
		return -errno;
	ret = syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1);
	ret = ret < 0 ? -errno : 0;
	close(ring);
	return ret;
}

/*
 * Why the io_uring proof is not used: on 6.1 buffer registration
 * works on anonymous memory but refuses (-EOPNOTSUPP) any file-backed
 * mapping that is not shmem or hugetlbfs, after pinning it. If this test
 * ever fails, the kernel changed and io_uring became a usable pin test.
 */
TEST_F(pin, io_uring_refuses_char_device_mappings)
{
	const size_t len = CHUNK;
	struct tiermem_counters st;
	struct tiermem_create c;
	char *m, *a;
	int ret;

	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, a);
	ret = uring_register(a, len);
	if (ret == -ENOSYS || ret == -EPERM)
		SKIP(return, "io_uring unavailable (%d)", ret);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, create_tier(self->fd, tm_name("uring"), variant->tier, len, &c));
	m = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(-EOPNOTSUPP, uring_register(m, len));
	/* It pinned, then let go: nothing stays pinned. */
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(0, st.pinned_pages);
	munmap(m, len);
	munmap(a, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("uring")));
}

TEST_HARNESS_MAIN
