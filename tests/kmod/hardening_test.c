// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem under hostile and failing conditions (issue 14). Each test fails
 * on a module without the matching fix:
 *
 *   read-only dma-buf exports map only for DMA_TO_DEVICE;
 *   mprotect cannot hide a writable mapping from the seal, nor can a pin
 *   taken for writing through a mapping since unmapped;
 *   a poisoned page (media error reported after attach, or a bad block
 *   known at attach) is SIGBUS for whoever touches it, every other page of
 *   the namespace stays reachable, info and sysfs show the bad bytes, and a
 *   new region never hands out the bad page;
 *   a namespace unbound while mapped revokes its regions (SIGBUS, ENXIO,
 *   no oops) and they come back when it is attached again.
 *
 * Needs root, tiermem.ko with pmem=/dev/pmem0, tiermem_pintest.ko, and
 * /dev/pmem1 (fsdax, not attached: the tests attach, poison and unbind it).
 * The namespace test runs last: it unbinds and rebinds pmem1's driver.
 * TM_HARDENING_ONLY=TEXT runs only the tests whose names contain TEXT.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "tm_test.h"
#include "pintest/pintest.h"

#define SCRATCH_DEV	"/dev/pmem1"
#define DMA_BIDIRECTIONAL	0
#define DMA_TO_DEVICE		1
#define DMA_FROM_DEVICE		2

static int pin_dev(void)
{
	return open("/dev/tiermem_pintest", O_RDWR | O_CLOEXEC);
}

/* The region's entry from TIERMEM_IOC_LIST. */
static int region_info(int fd, const char *name, struct tiermem_region_info *out)
{
	struct tiermem_region_info buf[64];
	struct tiermem_list l = { .entries = (uintptr_t)buf, .capacity = 64 };
	int ret = tm_ioctl(fd, TIERMEM_IOC_LIST, &l);

	if (ret)
		return ret;
	for (__u32 i = 0; i < l.count && i < 64; i++) {
		if (!strcmp(buf[i].name, name)) {
			*out = buf[i];
			return 0;
		}
	}
	return -ENOENT;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -errno;
}

/* The signal a child gets for reading one byte at @p (0: none). */
static int touch_signal(const volatile char *p)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		(void)*p;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static int dmabuf_map(int pfd, int dmabuf, __u32 dir)
{
	struct pintest_dmabuf_map m = { .fd = dmabuf, .dir = dir };
	int ret = tm_ioctl(pfd, PINTEST_IOC_DMABUF_MAP, &m);

	return ret ? ret : m.result;
}

static int notify(int pfd, const char *dev, __u64 off, __u64 len)
{
	struct pintest_notify n = { .offset = off, .length = len };

	snprintf(n.path, sizeof(n.path), "%s", dev);
	return tm_ioctl(pfd, PINTEST_IOC_NOTIFY, &n);
}

static int attach(int fd, const char *dev, __u32 flags, __u32 *index)
{
	struct tiermem_attach a = { .flags = flags };
	int ret;

	snprintf(a.path, sizeof(a.path), "%s", dev);
	ret = tm_ioctl(fd, TIERMEM_IOC_ATTACH, &a);
	*index = a.index;
	return ret;
}

static int detach(int fd, __u32 index)
{
	struct tiermem_detach d = { .index = index };

	return tm_ioctl(fd, TIERMEM_IOC_DETACH, &d);
}

/* /dev/pmem1, attached (an empty table is written on blank media). */
static int scratch_index(int fd, __u32 *index)
{
	return attach(fd, SCRATCH_DEV, TIERMEM_ATTACH_FORMAT, index);
}

FIXTURE(hard) {
	int fd;
	int pfd;
	const char *only;
};

/* 6.1's harness runs the body after a SKIP in the setup: check here. */
#define SELECTED() do { \
	if (self->only && !strstr(_metadata->name, self->only)) \
		SKIP(return, "not selected (TM_HARDENING_ONLY=%s)", self->only); \
} while (0)

FIXTURE_SETUP(hard)
{
	struct tiermem_version v;

	self->only = getenv("TM_HARDENING_ONLY");
	ASSERT_EQ(0, geteuid()) TH_LOG("needs root");
	self->fd = tm_dev();
	ASSERT_LE(0, self->fd);
	self->pfd = pin_dev();
	ASSERT_LE(0, self->pfd) TH_LOG("tiermem_pintest.ko is not loaded");
	ASSERT_EQ(0, tm_version(self->fd, &v));
	ASSERT_LE(1, v.nr_pmem) TH_LOG("load tiermem with pmem=/dev/pmem0");
}

FIXTURE_TEARDOWN(hard)
{
	close(self->pfd);
	close(self->fd);
}

/* Item 1: a device may only write what the export allows. */
static void export_directions(struct __test_metadata *_metadata, int fd,
			      int pfd, __u32 tier)
{
	struct tiermem_export e = { .flags = TIERMEM_EXPORT_CLOEXEC };
	struct tiermem_create c;
	const char *name = tm_name(tier == TIERMEM_TIER_DDR ? "exd" : "exp");

	ASSERT_EQ(0, tm_create(fd, name, tier, CHUNK, 0600, &c));
	e.id = c.id;
	ASSERT_EQ(0, tm_ioctl(fd, TIERMEM_IOC_EXPORT, &e));
	EXPECT_EQ(0, dmabuf_map(pfd, e.fd, DMA_TO_DEVICE));
	EXPECT_EQ(-EACCES, dmabuf_map(pfd, e.fd, DMA_BIDIRECTIONAL));
	EXPECT_EQ(-EACCES, dmabuf_map(pfd, e.fd, DMA_FROM_DEVICE));
	close(e.fd);
	e.flags |= TIERMEM_EXPORT_WRITE;
	ASSERT_EQ(0, tm_ioctl(fd, TIERMEM_IOC_EXPORT, &e));
	EXPECT_EQ(0, dmabuf_map(pfd, e.fd, DMA_TO_DEVICE));
	EXPECT_EQ(0, dmabuf_map(pfd, e.fd, DMA_BIDIRECTIONAL));
	EXPECT_EQ(0, dmabuf_map(pfd, e.fd, DMA_FROM_DEVICE));
	close(e.fd);
	ASSERT_EQ(0, tm_delete(fd, name));
}

TEST_F(hard, hardening_readonly_export_ddr)
{
	SELECTED();
	export_directions(_metadata, self->fd, self->pfd, TIERMEM_TIER_DDR);
}

TEST_F(hard, hardening_readonly_export_pmem)
{
	SELECTED();
	export_directions(_metadata, self->fd, self->pfd, TIERMEM_TIER_PMEM);
}

/* Item 2: mmap RW, mprotect RO, munmap: nothing may write, the seal works. */
TEST_F(hard, hardening_seal_after_mprotect_ro)
{
	SELECTED();
	struct tiermem_create c;
	const char *name = tm_name("mpro");
	char *p;

	ASSERT_EQ(0, tm_create(self->fd, name, TIERMEM_TIER_PMEM, CHUNK, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	ASSERT_EQ(0, mprotect(p, CHUNK, PROT_READ));
	ASSERT_EQ(0, munmap(p, CHUNK));
	EXPECT_EQ(0, tm_seal(self->fd, c.id));
	ASSERT_EQ(0, tm_delete(self->fd, name));
}

/*
 * Item 2: split a read-only-made mapping and make both halves writable
 * again; unmapping one half leaves a writable half, so no seal.
 */
TEST_F(hard, hardening_seal_refused_after_split_mprotect)
{
	SELECTED();
	struct tiermem_create c;
	const char *name = tm_name("msplit");
	char *p;

	ASSERT_EQ(0, tm_create(self->fd, name, TIERMEM_TIER_PMEM, 2 * CHUNK, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, 2 * CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, mprotect(p, 2 * CHUNK, PROT_READ));
	ASSERT_EQ(0, mprotect(p, CHUNK, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, mprotect(p + CHUNK, CHUNK, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, munmap(p, CHUNK));
	EXPECT_EQ(-EBUSY, tm_seal(self->fd, c.id));
	p[CHUNK] = 7;
	ASSERT_EQ(0, munmap(p + CHUNK, CHUNK));
	EXPECT_EQ(0, tm_seal(self->fd, c.id));
	ASSERT_EQ(0, tm_delete(self->fd, name));
}

/* Item 2: a pin taken for writing outlives its mapping and blocks a seal. */
TEST_F(hard, hardening_seal_refused_while_write_pinned)
{
	SELECTED();
	struct pintest_pin pin = { .len = CHUNK };
	struct tiermem_create c;
	const char *name = tm_name("mpin");
	char *p;

	ASSERT_EQ(0, tm_create(self->fd, name, TIERMEM_TIER_PMEM, CHUNK, 0600, &c));
	p = tm_map(self->fd, c.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	pin.addr = (uintptr_t)p;
	ASSERT_EQ(0, tm_ioctl(self->pfd, PINTEST_IOC_PIN, &pin));
	ASSERT_EQ(0, munmap(p, CHUNK));
	EXPECT_EQ(-EBUSY, tm_seal(self->fd, c.id));
	ASSERT_EQ(0, tm_ioctl(self->pfd, PINTEST_IOC_UNPIN, NULL));
	EXPECT_EQ(0, tm_seal(self->fd, c.id));
	ASSERT_EQ(0, tm_delete(self->fd, name));
}

/*
 * Item 4: a media error reported after the region was mapped: the page is
 * unmapped and SIGBUS from then on, its neighbours are not, info and sysfs
 * show it; a new region in the same place never hands the bad page out.
 */
TEST_F(hard, hardening_poison_after_attach)
{
	SELECTED();
	const __u64 bad = CHUNK + 2 * 4096;
	struct tiermem_region_info info;
	struct tiermem_counters st;
	struct tiermem_create c;
	const char *name = tm_name("poison");
	char path[160], text[256], want[64];
	char *p;

	ASSERT_EQ(0, tm_create_pmem(self->fd, name, TIERMEM_TIER_PMEM, 2 * CHUNK,
				    0600, 0, &c));
	ASSERT_EQ(0, region_info(self->fd, name, &info));
	p = tm_map(self->fd, c.mmap_offset, 2 * CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, 2 * CHUNK, 41);
	ASSERT_EQ(0, touch_signal(p + bad));
	ASSERT_EQ(0, notify(self->pfd, "/dev/pmem0", info.pmem_offset + bad, 4096));
	EXPECT_EQ(SIGBUS, touch_signal(p + bad));
	EXPECT_EQ(0, touch_signal(p + bad - 4096));
	EXPECT_EQ(0, touch_signal(p + bad + 4096));
	EXPECT_EQ(-1, tm_check(p, CHUNK, 41));
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	EXPECT_LE(1, st.media_errors);
	ASSERT_EQ(0, region_info(self->fd, name, &info));
	EXPECT_EQ(4096, info.bad_bytes);
	snprintf(path, sizeof(path), "/sys/kernel/tiermem/regions/%s/badblocks", name);
	ASSERT_EQ(0, read_file(path, text, sizeof(text)));
	snprintf(want, sizeof(want), "%llu 4096\n", (unsigned long long)bad);
	EXPECT_STREQ(want, text);
	ASSERT_EQ(0, munmap(p, 2 * CHUNK));

	/* Re-import: the bad page is cleared or the space left unused. */
	ASSERT_EQ(0, tm_delete(self->fd, name));
	ASSERT_EQ(0, tm_close_region(self->fd, c.id));
	ASSERT_EQ(0, tm_create_pmem(self->fd, name, TIERMEM_TIER_PMEM, 2 * CHUNK,
				    0600, 0, &c));
	ASSERT_EQ(0, region_info(self->fd, name, &info));
	EXPECT_EQ(0, info.bad_bytes);
	p = tm_map(self->fd, c.mmap_offset, 2 * CHUNK, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0, touch_signal(p + bad));
	EXPECT_TRUE(tm_all_zero(p, 2 * CHUNK));
	munmap(p, 2 * CHUNK);
	ASSERT_EQ(0, tm_delete(self->fd, name));
}

/*
 * Item 4: a bad block known when the namespace is attached (after a
 * reboot, say) costs its page, not the namespace: attach works, the other
 * region reads in full, the poisoned one everywhere but there.
 */
TEST_F(hard, hardening_badblock_at_attach)
{
	SELECTED();
	struct tiermem_region_info ia, ib;
	struct tiermem_create ca, cb;
	struct tiermem_open oa, ob;
	const char *a = tm_name("bba"), *b = tm_name("bbb");
	char text[64];
	__u32 index;
	char *p;

	ASSERT_EQ(0, scratch_index(self->fd, &index));
	ASSERT_EQ(0, tm_create_pmem(self->fd, a, TIERMEM_TIER_PMEM, CHUNK, 0644, index, &ca));
	ASSERT_EQ(0, tm_create_pmem(self->fd, b, TIERMEM_TIER_PMEM, CHUNK, 0644, index, &cb));
	p = tm_map(self->fd, ca.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, CHUNK, 51);
	munmap(p, CHUNK);
	p = tm_map(self->fd, cb.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, CHUNK, 52);
	munmap(p, CHUNK);
	ASSERT_EQ(0, tm_seal(self->fd, ca.id));
	ASSERT_EQ(0, tm_seal(self->fd, cb.id));
	ASSERT_EQ(0, region_info(self->fd, a, &ia));
	ASSERT_EQ(0, tm_close_region(self->fd, ca.id));
	ASSERT_EQ(0, tm_close_region(self->fd, cb.id));
	ASSERT_EQ(0, detach(self->fd, index));

	/* One 4 KiB page, 8 sectors, 64 KiB into region a. */
	snprintf(text, sizeof(text), "%llu 8",
		 (unsigned long long)(ia.pmem_offset + 65536) / 512);
	ASSERT_EQ(0, write_file("/sys/block/pmem1/badblocks", text));
	ASSERT_EQ(0, attach(self->fd, SCRATCH_DEV, 0, &index));

	ASSERT_EQ(0, tm_open_region(self->fd, b, 0, &ob));
	p = tm_map(self->fd, ob.mmap_offset, CHUNK, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, tm_check(p, CHUNK, 52));
	munmap(p, CHUNK);
	ASSERT_EQ(0, region_info(self->fd, b, &ib));
	EXPECT_EQ(0, ib.bad_bytes);

	ASSERT_EQ(0, tm_open_region(self->fd, a, 0, &oa));
	p = tm_map(self->fd, oa.mmap_offset, CHUNK, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, tm_check(p, 65536, 51));
	EXPECT_EQ(SIGBUS, touch_signal(p + 65536));
	EXPECT_EQ(0, touch_signal(p + 65536 + 4096));
	munmap(p, CHUNK);
	ASSERT_EQ(0, region_info(self->fd, a, &ia));
	EXPECT_EQ(4096, ia.bad_bytes);
	ASSERT_EQ(0, tm_delete(self->fd, a));
	ASSERT_EQ(0, tm_delete(self->fd, b));
	ASSERT_EQ(0, tm_close_region(self->fd, oa.id));
	ASSERT_EQ(0, tm_close_region(self->fd, ob.id));
	ASSERT_EQ(0, detach(self->fd, index));
}

/* Low item: a failed copy still says how far it got. */
TEST_F(hard, hardening_copy_reports_bytes_before_error)
{
	struct tiermem_region_info info;
	struct tiermem_create src, dst;
	struct tiermem_copy cp = { .length = 2 * CHUNK };
	const char *s = tm_name("cpsrc"), *d = tm_name("cpdst");

	SELECTED();
	ASSERT_EQ(0, tm_create_pmem(self->fd, s, TIERMEM_TIER_PMEM, 2 * CHUNK, 0600, 0, &src));
	ASSERT_EQ(0, tm_create(self->fd, d, TIERMEM_TIER_DDR, 2 * CHUNK, 0600, &dst));
	ASSERT_EQ(0, region_info(self->fd, s, &info));
	ASSERT_EQ(0, notify(self->pfd, "/dev/pmem0", info.pmem_offset + CHUNK + 3 * 4096, 4096));
	cp.src_id = src.id;
	cp.dst_id = dst.id;
	EXPECT_EQ(-EIO, tm_ioctl(self->fd, TIERMEM_IOC_COPY, &cp));
	EXPECT_EQ(CHUNK + 3 * 4096, cp.copied);
	ASSERT_EQ(0, tm_delete(self->fd, s));
	ASSERT_EQ(0, tm_delete(self->fd, d));
}

/* Medium item 5: ids come back once their region is gone. */
TEST_F(hard, hardening_ids_reused)
{
	struct tiermem_create a, b;
	char path[160], text[32];

	SELECTED();
	ASSERT_EQ(0, tm_create(self->fd, tm_name("ida"), TIERMEM_TIER_DDR, CHUNK, 0600, &a));
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("ida")));
	ASSERT_EQ(0, tm_close_region(self->fd, a.id));
	ASSERT_EQ(0, tm_create(self->fd, tm_name("idb"), TIERMEM_TIER_DDR, CHUNK, 0600, &b));
	EXPECT_EQ(a.id, b.id);
	/* Also expected: the region's NUMA node in sysfs (one node here). */
	snprintf(path, sizeof(path), "/sys/kernel/tiermem/regions/%s/numa_node", tm_name("idb"));
	EXPECT_EQ(0, read_file(path, text, sizeof(text)));
	EXPECT_STREQ("0\n", text);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("idb")));
}

static int open_fds(void)
{
	char path[64];
	int n = 0;

	for (int i = 0; i < 1024; i++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		n += !access(path, F_OK);
	}
	return n;
}

/*
 * Low item: when the result cannot reach the caller, a create leaves no
 * region behind and an export no file descriptor.
 */
TEST_F(hard, hardening_failed_copyout_leaves_nothing)
{
	struct tiermem_create *c, made;
	struct tiermem_export *e;
	void *page;
	int before;

	SELECTED();
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, page);
	c = page;
	c->tier = TIERMEM_TIER_DDR;
	c->size = CHUNK;
	c->mode = 0600;
	tm_setname(c->name, tm_name("cpo"));
	ASSERT_EQ(0, mprotect(page, 4096, PROT_READ));
	EXPECT_EQ(-EFAULT, tm_ioctl(self->fd, TIERMEM_IOC_CREATE, c));
	EXPECT_EQ(-ENOENT, tm_open_region(self->fd, tm_name("cpo"), 0, NULL));

	ASSERT_EQ(0, tm_create(self->fd, tm_name("cpe"), TIERMEM_TIER_DDR, CHUNK, 0600, &made));
	ASSERT_EQ(0, mprotect(page, 4096, PROT_READ | PROT_WRITE));
	memset(page, 0, 4096);
	e = page;
	e->id = made.id;
	ASSERT_EQ(0, mprotect(page, 4096, PROT_READ));
	before = open_fds();
	EXPECT_EQ(-EFAULT, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, e));
	EXPECT_EQ(before, open_fds());
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("cpe")));
	munmap(page, 4096);
}

/* Low item: the counters page is writable only through a writable handle. */
TEST_F(hard, hardening_counters_page_follows_handle)
{
	struct tiermem_create c;
	struct tiermem_open ro, rw;
	int fd2 = tm_dev(), fd3 = tm_dev();
	void *p;

	SELECTED();
	ASSERT_EQ(0, tm_create(self->fd, tm_name("ctrro"), TIERMEM_TIER_DDR, CHUNK, 0600, &c));
	ASSERT_EQ(0, tm_open_region(fd2, tm_name("ctrro"), 0, &ro));
	EXPECT_EQ(MAP_FAILED, tm_map(fd2, ro.counters_offset, 4096, PROT_READ | PROT_WRITE));
	p = tm_map(fd2, ro.counters_offset, 4096, PROT_READ);
	EXPECT_NE(MAP_FAILED, p);
	munmap(p, 4096);
	ASSERT_EQ(0, tm_open_region(fd3, tm_name("ctrro"), TIERMEM_OPEN_WRITE, &rw));
	p = tm_map(fd3, rw.counters_offset, 4096, PROT_READ | PROT_WRITE);
	EXPECT_NE(MAP_FAILED, p);
	munmap(p, 4096);
	close(fd2);
	close(fd3);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("ctrro")));
}

/* Medium item 5: DDR regions are charged to the creator's memory cgroup. */
TEST_F(hard, hardening_ddr_charged_to_memcg)
{
	const char *cg = "/sys/fs/cgroup/tmtest";
	char path[128], text[64];
	int status;
	pid_t pid;

	SELECTED();
	if (access("/sys/fs/cgroup/cgroup.subtree_control", F_OK))
		ASSERT_EQ(0, system("mount -t cgroup2 none /sys/fs/cgroup"));
	ASSERT_EQ(0, write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory"));
	mkdir(cg, 0755);
	pid = fork();
	if (pid == 0) {
		struct tiermem_create c;
		long long before, after;
		int fd;

		snprintf(text, sizeof(text), "%d", (int)getpid());
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
		if (write_file(path, text))
			_exit(10);
		snprintf(path, sizeof(path), "%s/memory.current", cg);
		if (read_file(path, text, sizeof(text)))
			_exit(11);
		before = atoll(text);
		fd = tm_dev();
		if (tm_create(fd, tm_name("memcg"), TIERMEM_TIER_DDR, 32 * CHUNK, 0600, &c))
			_exit(12);
		if (read_file(path, text, sizeof(text)))
			_exit(13);
		after = atoll(text);
		tm_delete(fd, tm_name("memcg"));
		_exit(after - before >= 64LL << 20 ? 0 : 14);
	}
	ASSERT_LT(0, pid);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	rmdir(cg);
}

/* Medium item 5: pmem_user_max_mb limits what one user's regions hold. */
TEST_F(hard, hardening_pmem_user_quota)
{
	const char *param = "/sys/module/tiermem/parameters/pmem_user_max_mb";
	int status;
	pid_t pid;

	SELECTED();
	ASSERT_EQ(0, write_file(param, "4"));
	pid = fork();
	if (pid == 0) {
		gid_t groups[] = { 900 };	/* tiermem, which owns /dev/tiermem */
		struct tiermem_create c;
		int fd, r1, r2, r3;

		if (setgroups(1, groups) || setgid(1000) || setuid(1000))
			_exit(10);
		fd = tm_dev();
		if (fd < 0)
			_exit(11);
		r1 = tm_create(fd, "quota-a", TIERMEM_TIER_PMEM, CHUNK, 0600, &c);
		r2 = tm_create(fd, "quota-b", TIERMEM_TIER_PMEM, 2 * CHUNK, 0600, &c);
		r3 = tm_create(fd, "quota-c", TIERMEM_TIER_PMEM, CHUNK, 0600, &c);
		tm_delete(fd, "quota-a");
		tm_delete(fd, "quota-c");
		_exit(!r1 && r2 == -EDQUOT && !r3 ? 0 : 12);
	}
	ASSERT_LT(0, pid);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	write_file(param, "0");
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

/* The device behind /dev/pmem1 and its driver's directory. */
static int scratch_driver(char *devname, size_t dlen, char *drv, size_t len)
{
	char link[512];
	ssize_t n;
	const char *base;

	n = readlink("/sys/block/pmem1/device", link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = 0;
	base = strrchr(link, '/');
	if (strlen(base ? base + 1 : link) >= dlen)
		return -ENAMETOOLONG;
	strcpy(devname, base ? base + 1 : link);
	n = readlink("/sys/block/pmem1/device/driver", link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = 0;
	base = strrchr(link, '/');
	if (strlen(base ? base + 1 : link) + 21 >= len)
		return -ENAMETOOLONG;
	strcpy(drv, "/sys/bus/nd/drivers/");
	strcat(drv, base ? base + 1 : link);
	return 0;
}

/*
 * Item 3: the namespace is unbound while a region on it is mapped. The
 * mapping is revoked (SIGBUS), the region's handle gets ENXIO, its name is
 * gone, nothing oopses (panic_on_warn), and after the namespace comes back
 * an attach finds the region as it was. Runs last: it unbinds pmem1.
 */
TEST_F(hard, hardening_namespace_unbind_while_mapped)
{
	SELECTED();
	struct tiermem_counters st;
	struct tiermem_version v0, v1;
	struct tiermem_create c;
	struct tiermem_open o;
	const char *name = tm_name("unbind");
	char dev[512], drv[600], path[640];
	__u32 index;
	char *p, *q;

	ASSERT_EQ(0, scratch_index(self->fd, &index));
	ASSERT_EQ(0, tm_create_pmem(self->fd, name, TIERMEM_TIER_PMEM, 2 * CHUNK,
				    0600, index, &c));
	p = tm_map(self->fd, c.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	q = tm_map(self->fd, c.mmap_offset + CHUNK, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, q);
	tm_fill(p, CHUNK, 61);
	ASSERT_EQ(0, tm_version(self->fd, &v0));

	ASSERT_EQ(0, scratch_driver(dev, sizeof(dev), drv, sizeof(drv)));
	snprintf(path, sizeof(path), "%s/unbind", drv);
	ASSERT_EQ(0, write_file(path, dev));

	EXPECT_EQ(SIGBUS, touch_signal(p));
	EXPECT_EQ(SIGBUS, touch_signal(q));
	EXPECT_EQ(-ENXIO, tm_seal(self->fd, c.id));
	EXPECT_EQ(-ENOENT, tm_open_region(self->fd, name, 0, NULL));
	EXPECT_EQ(-ENOENT, tm_delete(self->fd, name));
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	EXPECT_EQ(0, st.pinned_pages);
	ASSERT_EQ(0, tm_version(self->fd, &v1));
	EXPECT_EQ(v0.nr_pmem - 1, v1.nr_pmem);
	EXPECT_EQ(MAP_FAILED, tm_map(self->fd, c.mmap_offset, CHUNK, PROT_READ));
	ASSERT_EQ(0, munmap(p, CHUNK));
	ASSERT_EQ(0, munmap(q, CHUNK));
	ASSERT_EQ(0, tm_close_region(self->fd, c.id));

	snprintf(path, sizeof(path), "%s/bind", drv);
	ASSERT_EQ(0, write_file(path, dev));
	for (int i = 0; i < 50 && access(SCRATCH_DEV, F_OK); i++)
		usleep(100000);
	ASSERT_EQ(0, attach(self->fd, SCRATCH_DEV, 0, &index));
	ASSERT_EQ(0, tm_open_region(self->fd, name, 0, &o));
	EXPECT_EQ(TIERMEM_STATE_FILLING, o.state);
	p = tm_map(self->fd, o.mmap_offset, CHUNK, PROT_READ);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, tm_check(p, CHUNK, 61));
	munmap(p, CHUNK);
	ASSERT_EQ(0, tm_delete(self->fd, name));
	ASSERT_EQ(0, tm_close_region(self->fd, o.id));
	ASSERT_EQ(0, detach(self->fd, index));
}

TEST_HARNESS_MAIN
