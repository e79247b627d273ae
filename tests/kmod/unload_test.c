// SPDX-License-Identifier: GPL-2.0
/*
 * Module unload: refused while anything still uses the module (a mapping,
 * an open file, a dma-buf), allowed after the last of them is gone, with
 * every pinned page back. Each test unloads and reloads tiermem.ko with the
 * parameters it had. Needs root and the module file: TIERMEM_KO, or
 * ./tiermem.ko, or /lib/modules/$(uname -r)/extra/tiermem.ko. Run it last.
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "kselftest_harness.h"
#include "tm_test.h"
#include "pintest/pintest.h"

static int read_param(const char *name, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/tiermem/parameters/%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int ko_fd(void)
{
	const char *env = getenv("TIERMEM_KO");
	struct utsname u;
	char path[256];
	int fd;

	if (env)
		return open(env, O_RDONLY | O_CLOEXEC);
	fd = open("tiermem.ko", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	uname(&u);
	snprintf(path, sizeof(path), "/lib/modules/%s/extra/tiermem.ko", u.release);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static int unload(void)
{
	return syscall(SYS_delete_module, "tiermem", O_NONBLOCK) ? -errno : 0;
}

FIXTURE(unload) {
	int ko;
	char params[256];
};

FIXTURE_SETUP(unload)
{
	char pmem[160] = "", ddr[32] = "";

	if (geteuid() != 0)
		SKIP(return, "needs root");
	self->ko = ko_fd();
	if (self->ko < 0)
		SKIP(return, "tiermem.ko not found (set TIERMEM_KO)");
	ASSERT_EQ(0, read_param("ddr_max_mb", ddr, sizeof(ddr)));
	read_param("pmem", pmem, sizeof(pmem));
	if (!strcmp(pmem, "(null)"))
		pmem[0] = 0;
	snprintf(self->params, sizeof(self->params), "ddr_max_mb=%s%s%s", ddr,
		 pmem[0] ? " pmem=" : "", pmem);
}

/* Whatever happened, leave the module loaded for the next test. */
FIXTURE_TEARDOWN(unload)
{
	if (access(TIERMEM_DEVICE, F_OK) && self->ko >= 0)
		syscall(SYS_finit_module, self->ko, self->params, 0);
	if (self->ko >= 0)
		close(self->ko);
}

static int reload(int ko, const char *params)
{
	int fd;

	if (syscall(SYS_finit_module, ko, params, 0))
		return -errno;
	fd = tm_dev();
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

#define ASSERT_BUSY(ret) ASSERT_TRUE((ret) == -EWOULDBLOCK || (ret) == -EBUSY)

TEST_F(unload, refused_while_mapped)
{
	struct tiermem_create c;
	int fd = tm_dev();
	void *p;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, tm_create(fd, tm_name("unl"), TIERMEM_TIER_DDR, CHUNK, 0600, &c));
	p = tm_map(fd, c.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	memset(p, 1, CHUNK);
	close(fd);
	ASSERT_BUSY(unload());
	ASSERT_EQ(0, munmap(p, CHUNK));
	ASSERT_EQ(0, unload());
	ASSERT_NE(0, access(TIERMEM_DEVICE, F_OK));
	ASSERT_EQ(0, reload(self->ko, self->params));
	/* DDR regions are volatile: gone with the module. */
	fd = tm_dev();
	ASSERT_EQ(-ENOENT, tm_open_region(fd, tm_name("unl"), 0, NULL));
	close(fd);
}

TEST_F(unload, refused_while_open)
{
	int fd = tm_dev();

	ASSERT_LE(0, fd);
	ASSERT_BUSY(unload());
	close(fd);
	ASSERT_EQ(0, unload());
	ASSERT_EQ(0, reload(self->ko, self->params));
}

TEST_F(unload, refused_while_exported)
{
	struct tiermem_export e = {};
	struct tiermem_create c;
	int fd = tm_dev();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, tm_create(fd, tm_name("unle"), TIERMEM_TIER_DDR, CHUNK, 0600, &c));
	e.id = c.id;
	ASSERT_EQ(0, tm_ioctl(fd, TIERMEM_IOC_EXPORT, &e));
	close(fd);
	ASSERT_BUSY(unload());
	close(e.fd);
	ASSERT_EQ(0, unload());
	ASSERT_EQ(0, reload(self->ko, self->params));
}

/* PMEM regions come back after a reload (re-read from the media). */
TEST_F(unload, pmem_regions_survive_reload)
{
	struct tiermem_version v;
	struct tiermem_create c = { .tier = TIERMEM_TIER_PMEM, .size = CHUNK,
				    .mode = 0600, .flags = TIERMEM_CREATE_ANY_PMEM };
	struct tiermem_open o;
	int fd = tm_dev();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, tm_version(fd, &v));
	if (!v.nr_pmem)
		SKIP(return, "no PMEM attached");
	tm_setname(c.name, tm_name("unlp"));
	ASSERT_EQ(0, tm_ioctl(fd, TIERMEM_IOC_CREATE, &c));
	close(fd);
	ASSERT_EQ(0, unload());
	ASSERT_EQ(0, reload(self->ko, self->params));
	fd = tm_dev();
	ASSERT_EQ(0, tm_open_region(fd, tm_name("unlp"), 0, &o));
	ASSERT_EQ(TIERMEM_STATE_FILLING, o.state);
	ASSERT_EQ(0, tm_delete(fd, tm_name("unlp")));
	close(fd);
}

static int wait_unload(int seconds)
{
	int ret = unload();

	for (int i = 0; i < seconds * 10 && (ret == -EWOULDBLOCK || ret == -EBUSY); i++) {
		usleep(100000);
		ret = unload();
	}
	return ret;
}

/*
 * A region deleted while its pages are pinned lives on as a zombie that
 * holds the module: unloading then would free the PMEM space still under
 * the pin, and a reload could give it to a new region. The unload waits
 * for the unpin (the zombie is freed within about a second).
 */
TEST_F(unload, hardening_unload_refused_with_pinned_zombie)
{
	struct tiermem_counters st;
	struct tiermem_version v;
	struct tiermem_create c = { .tier = TIERMEM_TIER_PMEM, .size = CHUNK,
				    .mode = 0600, .flags = TIERMEM_CREATE_ANY_PMEM };
	struct pintest_pin p = {};
	struct pintest_write w = { .seed = 3 };
	int fd = tm_dev(), pfd = open("/dev/tiermem_pintest", O_RDWR);
	char *m;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, pfd) TH_LOG("tiermem_pintest.ko not loaded");
	ASSERT_EQ(0, tm_version(fd, &v));
	ASSERT_LE(1, v.nr_pmem) TH_LOG("no PMEM attached");
	tm_setname(c.name, tm_name("unlpin"));
	ASSERT_EQ(0, tm_ioctl(fd, TIERMEM_IOC_CREATE, &c));
	m = tm_map(fd, c.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	p.addr = (uintptr_t)m;
	p.len = CHUNK;
	ASSERT_EQ(0, tm_ioctl(pfd, PINTEST_IOC_PIN, &p));
	ASSERT_EQ(0, tm_stats(fd, c.id, &st));
	ASSERT_EQ(CHUNK / 4096, st.pinned_pages);
	munmap(m, CHUNK);
	ASSERT_EQ(0, tm_delete(fd, tm_name("unlpin")));
	close(fd);
	ASSERT_BUSY(unload());
	/* The pinned memory is still there for its holder. */
	ASSERT_EQ(0, tm_ioctl(pfd, PINTEST_IOC_WRITE, &w));
	ASSERT_EQ(0, tm_ioctl(pfd, PINTEST_IOC_UNPIN, NULL));
	close(pfd);
	ASSERT_EQ(0, wait_unload(5));
	ASSERT_EQ(0, reload(self->ko, self->params));
	fd = tm_dev();
	ASSERT_EQ(0, tm_tier_stats(fd, TIERMEM_TIER_PMEM, &st));
	ASSERT_EQ(0, st.pinned_pages);
	close(fd);
}

/*
 * A region never deleted and still pinned does not hold the module (its
 * registry entry goes only with the unload): the unload frees it, the
 * pinned pages stay for their holder until the unpin.
 */
TEST_F(unload, unload_with_pin_held_then_unpin)
{
	struct tiermem_counters st;
	struct tiermem_create c;
	struct pintest_pin p = {};
	struct pintest_write w = { .seed = 3 };
	int fd = tm_dev(), pfd = open("/dev/tiermem_pintest", O_RDWR);
	char *m;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, pfd) TH_LOG("tiermem_pintest.ko not loaded");
	ASSERT_EQ(0, tm_create(fd, tm_name("unlpin2"), TIERMEM_TIER_DDR, CHUNK, 0600, &c));
	m = tm_map(fd, c.mmap_offset, CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	p.addr = (uintptr_t)m;
	p.len = CHUNK;
	ASSERT_EQ(0, tm_ioctl(pfd, PINTEST_IOC_PIN, &p));
	munmap(m, CHUNK);
	close(fd);
	ASSERT_EQ(0, unload());
	ASSERT_EQ(0, tm_ioctl(pfd, PINTEST_IOC_WRITE, &w));
	ASSERT_EQ(0, tm_ioctl(pfd, PINTEST_IOC_UNPIN, NULL));
	close(pfd);
	ASSERT_EQ(0, reload(self->ko, self->params));
	fd = tm_dev();
	ASSERT_EQ(0, tm_tier_stats(fd, TIERMEM_TIER_DDR, &st));
	ASSERT_EQ(0, st.pinned_pages);
	close(fd);
}

/* The usual case: no pins left, the counter is zero, the unload is clean. */
TEST_F(unload, clean_after_unpin)
{
	struct tiermem_counters st;
	struct tiermem_create c;
	struct pintest_pin p = {};
	int fd = tm_dev(), pfd = open("/dev/tiermem_pintest", O_RDWR);
	char *m;

	ASSERT_LE(0, fd);
	if (pfd < 0)
		SKIP(return, "tiermem_pintest.ko not loaded");
	ASSERT_EQ(0, tm_create(fd, tm_name("unlc"), TIERMEM_TIER_DDR, 2 * CHUNK, 0600, &c));
	m = tm_map(fd, c.mmap_offset, 2 * CHUNK, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, m);
	p.addr = (uintptr_t)m;
	p.len = 2 * CHUNK;
	ASSERT_EQ(0, tm_ioctl(pfd, PINTEST_IOC_PIN, &p));
	ASSERT_EQ(0, tm_ioctl(pfd, PINTEST_IOC_UNPIN, NULL));
	ASSERT_EQ(0, tm_tier_stats(fd, TIERMEM_TIER_DDR, &st));
	ASSERT_EQ(0, st.pinned_pages);
	munmap(m, 2 * CHUNK);
	close(pfd);
	close(fd);
	ASSERT_EQ(0, unload());
	ASSERT_EQ(0, reload(self->ko, self->params));
}

TEST_HARNESS_MAIN
