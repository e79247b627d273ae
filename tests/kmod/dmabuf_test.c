// SPDX-License-Identifier: GPL-2.0
/*
 * dma-buf export into a real importer: vgem (virtual GEM) imports the
 * tiermem dma-buf through libdrm's drmPrimeFDToHandle, which makes the DRM
 * core attach it and map its scatterlist for vgem's device. The bytes are
 * then read back through the importer: the GEM handle is exported again
 * (PRIME hands back the very dma-buf it imported) and mapped. PRIME maps
 * for DMA_BIDIRECTIONAL, so only writable exports import. Needs
 * tiermem.ko and vgem loaded (PMEM cases also pmem=/dev/pmem0).
 */
#include <sys/stat.h>
#include <xf86drm.h>

#include "kselftest_harness.h"
#include "tm_test.h"

static int open_vgem(void)
{
	char path[32];

	for (int i = 0; i < 16; i++) {
		drmVersionPtr v;
		int fd;

		snprintf(path, sizeof(path), "/dev/dri/card%d", i);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		v = drmGetVersion(fd);
		if (v && !strcmp(v->name, "vgem")) {
			drmFreeVersion(v);
			return fd;
		}
		if (v)
			drmFreeVersion(v);
		close(fd);
	}
	return -1;
}

static int gem_close(int fd, uint32_t handle)
{
	struct drm_gem_close c = { .handle = handle };

	return drmIoctl(fd, DRM_IOCTL_GEM_CLOSE, &c) ? -errno : 0;
}

FIXTURE(vgem) {
	int fd;
	int vgem;
};

FIXTURE_VARIANT(vgem) {
	__u32 tier;
};

FIXTURE_VARIANT_ADD(vgem, ddr) {
	.tier = TIERMEM_TIER_DDR,
};

FIXTURE_VARIANT_ADD(vgem, pmem) {
	.tier = TIERMEM_TIER_PMEM,
};

FIXTURE_SETUP(vgem)
{
	struct tiermem_version v;

	self->fd = tm_dev();
	ASSERT_LE(0, self->fd);
	self->vgem = open_vgem();
	if (self->vgem < 0)
		SKIP(return, "no vgem device (modprobe vgem)");
	ASSERT_EQ(0, tm_version(self->fd, &v));
	if (variant->tier == TIERMEM_TIER_PMEM && !v.nr_pmem)
		SKIP(return, "no PMEM namespace attached");
}

FIXTURE_TEARDOWN(vgem)
{
	close(self->vgem);
	close(self->fd);
}

TEST_F(vgem, import_and_read_back)
{
	const size_t len = 4 * CHUNK, off = CHUNK - 4 * 4096, elen = 2 * CHUNK;
	struct tiermem_export e = {};
	struct tiermem_counters st;
	struct tiermem_create c = { .tier = variant->tier, .size = len, .mode = 0600 };
	struct stat s1, s2;
	uint32_t handle, handle2;
	int fd2;
	char *p, *q;

	if (variant->tier == TIERMEM_TIER_PMEM)
		c.flags = TIERMEM_CREATE_ANY_PMEM;
	tm_setname(c.name, tm_name("vgem"));
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_CREATE, &c));
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, len, 17);

	e.id = c.id;
	e.offset = off;
	e.length = elen;
	/* PRIME maps for DMA_BIDIRECTIONAL: a read-only export refuses it. */
	e.flags = TIERMEM_EXPORT_CLOEXEC;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	ASSERT_NE(0, drmPrimeFDToHandle(self->vgem, e.fd, &handle));
	close(e.fd);
	e.flags = TIERMEM_EXPORT_CLOEXEC | TIERMEM_EXPORT_WRITE;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	ASSERT_EQ(0, fstat(e.fd, &s1));
	ASSERT_EQ(0, drmPrimeFDToHandle(self->vgem, e.fd, &handle));
	/* Importing the same dma-buf again gives the same object. */
	ASSERT_EQ(0, drmPrimeFDToHandle(self->vgem, e.fd, &handle2));
	ASSERT_EQ(handle, handle2);
	/* The importer holds the dma-buf (and the region) on its own. */
	close(e.fd);
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(1, st.exports);
	ASSERT_EQ(0, drmPrimeHandleToFD(self->vgem, handle, DRM_CLOEXEC, &fd2));
	ASSERT_EQ(0, fstat(fd2, &s2));
	ASSERT_EQ(s1.st_ino, s2.st_ino);
	q = mmap(NULL, elen, PROT_READ, MAP_SHARED, fd2, 0);
	ASSERT_NE(MAP_FAILED, q);
	ASSERT_EQ(0, memcmp(p + off, q, elen));
	/* Writes through the region show through the importer's buffer. */
	p[off + 123] ^= 0x5a;
	ASSERT_EQ(p[off + 123], q[123]);
	munmap(q, elen);
	close(fd2);
	ASSERT_EQ(0, gem_close(self->vgem, handle));
	ASSERT_EQ(0, tm_stats(self->fd, c.id, &st));
	ASSERT_EQ(0, st.exports);
	munmap(p, len);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("vgem")));
}

/* The region stays alive for the importer after delete and close. */
TEST_F(vgem, importer_keeps_region)
{
	const size_t len = 2 * CHUNK;
	struct tiermem_export e = {};
	struct tiermem_create c = { .tier = variant->tier, .size = len, .mode = 0600 };
	uint32_t handle;
	int fd2;
	char *p, *q;

	if (variant->tier == TIERMEM_TIER_PMEM)
		c.flags = TIERMEM_CREATE_ANY_PMEM;
	tm_setname(c.name, tm_name("vkeep"));
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_CREATE, &c));
	p = tm_map(self->fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	ASSERT_NE(MAP_FAILED, p);
	tm_fill(p, len, 23);
	munmap(p, len);
	e.id = c.id;
	e.flags = TIERMEM_EXPORT_WRITE;
	ASSERT_EQ(0, tm_ioctl(self->fd, TIERMEM_IOC_EXPORT, &e));
	ASSERT_EQ(0, drmPrimeFDToHandle(self->vgem, e.fd, &handle));
	close(e.fd);
	ASSERT_EQ(0, tm_delete(self->fd, tm_name("vkeep")));
	ASSERT_EQ(0, tm_close_region(self->fd, c.id));
	ASSERT_EQ(0, drmPrimeHandleToFD(self->vgem, handle, DRM_CLOEXEC, &fd2));
	q = mmap(NULL, len, PROT_READ, MAP_SHARED, fd2, 0);
	ASSERT_NE(MAP_FAILED, q);
	ASSERT_EQ(-1, tm_check(q, len, 23));
	munmap(q, len);
	close(fd2);
	ASSERT_EQ(0, gem_close(self->vgem, handle));
}

TEST_HARNESS_MAIN
