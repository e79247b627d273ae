// SPDX-License-Identifier: GPL-2.0
/*
 * PMEM persistence across boots, driven by the host in successive boots on
 * the same NVDIMM file (tiermem.ko loaded with pmem=/dev/pmem0 each time):
 *
 *   persist_test setup              boot 1: a sealed and a filling region,
 *                                   then a clean shutdown
 *   persist_test check-persisted    boot 2: both are back, states, owner,
 *                                   mode and sealed bytes intact; deletes them
 *   persist_test fill-and-hang      boot 1: seals one region, then fills
 *                                   another forever after printing the line
 *                                   "TIERMEM-FILLING" (the host kills QEMU)
 *   persist_test check-after-crash  boot 2: the region being filled is
 *                                   reported filling, never sealed; the
 *                                   sealed one is intact; deletes them
 */
#include "kselftest.h"
#include "tm_test.h"

#define SEALED_LEN	(16 * MiB)
#define FILLING_LEN	(64 * MiB)

static int fd;

static void check(int ok, const char *what)
{
	ksft_test_result(ok, "%s\n", what);
}

static int make_region(const char *name, __u64 len, __u32 mode,
		       struct tiermem_create *c)
{
	memset(c, 0, sizeof(*c));
	tm_setname(c->name, name);
	c->tier = TIERMEM_TIER_PMEM;
	c->size = len;
	c->mode = mode;
	c->flags = TIERMEM_CREATE_ANY_PMEM;
	return tm_ioctl(fd, TIERMEM_IOC_CREATE, c);
}

/* Creates, fills and seals @name. */
static int make_sealed(const char *name, uint64_t seed)
{
	struct tiermem_create c;
	void *p;

	if (make_region(name, SEALED_LEN, 0640, &c))
		return -1;
	p = tm_map(fd, c.mmap_offset, SEALED_LEN, PROT_READ | PROT_WRITE);
	if (p == MAP_FAILED)
		return -1;
	tm_fill(p, SEALED_LEN, seed);
	munmap(p, SEALED_LEN);
	return tm_seal(fd, c.id);
}

static int info_of(const char *name, struct tiermem_region_info *out)
{
	struct tiermem_region_info e[256];
	struct tiermem_list l = { .entries = (uintptr_t)e, .capacity = 256 };

	if (tm_ioctl(fd, TIERMEM_IOC_LIST, &l))
		return -1;
	for (__u32 i = 0; i < l.count && i < 256; i++) {
		if (!strcmp(e[i].name, name)) {
			*out = e[i];
			return 0;
		}
	}
	return -1;
}

static void check_sealed(const char *name, uint64_t seed)
{
	struct tiermem_region_info info;
	struct tiermem_open o = {};
	void *p;

	check(!tm_open_region(fd, name, 0, &o), "sealed region is back");
	check(o.state == TIERMEM_STATE_SEALED, "sealed region is still sealed");
	check(o.size == SEALED_LEN, "sealed region keeps its size");
	check(!info_of(name, &info) && info.mode == 0640 && info.owner_uid == 0,
	      "sealed region keeps owner and mode");
	p = tm_map(fd, o.mmap_offset, SEALED_LEN, PROT_READ);
	check(p != MAP_FAILED && tm_check(p, SEALED_LEN, seed) == -1,
	      "sealed region's bytes are intact");
	check(tm_map(fd, o.mmap_offset, SEALED_LEN, PROT_READ | PROT_WRITE) == MAP_FAILED,
	      "sealed region maps read-only");
	if (p != MAP_FAILED)
		munmap(p, SEALED_LEN);
}

static void check_filling(const char *name)
{
	struct tiermem_open o = {};

	check(!tm_open_region(fd, name, 0, &o), "interrupted region is back");
	check(o.state == TIERMEM_STATE_FILLING,
	      "interrupted region is reported filling (incomplete), not sealed");
	check(o.size == FILLING_LEN, "interrupted region keeps its size");
}

static int fill_and_hang(void)
{
	struct tiermem_create c;
	uint64_t *p;

	if (make_sealed("crash-sealed", 3) || make_region("crash-filling", FILLING_LEN, 0600, &c))
		return ksft_exit_fail_msg("setup failed: %s\n", strerror(errno));
	p = tm_map(fd, c.mmap_offset, FILLING_LEN, PROT_READ | PROT_WRITE);
	if (p == MAP_FAILED)
		return ksft_exit_fail_msg("mmap failed\n");
	tm_fill(p, FILLING_LEN / 2, 4);
	printf("TIERMEM-FILLING\n");
	fflush(stdout);
	for (uint64_t i = 0;; i++)
		p[(i * 4096 / 8) % (FILLING_LEN / 8)] = i;
	return 1;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	struct tiermem_create c;

	fd = tm_dev();
	if (fd < 0)
		return ksft_exit_fail_msg("open %s: %s\n", TIERMEM_DEVICE, strerror(errno));
	if (!strcmp(mode, "fill-and-hang"))
		return fill_and_hang();
	ksft_print_header();
	if (!strcmp(mode, "setup")) {
		ksft_set_plan(2);
		check(!make_sealed("persist-sealed", 1), "create, fill and seal a region");
		check(!make_region("persist-filling", FILLING_LEN, 0600, &c),
		      "create a region left filling");
	} else if (!strcmp(mode, "check-persisted")) {
		ksft_set_plan(10);
		check_sealed("persist-sealed", 1);
		check_filling("persist-filling");
		check(!tm_delete(fd, "persist-sealed") && !tm_delete(fd, "persist-filling"),
		      "delete them");
	} else if (!strcmp(mode, "check-after-crash")) {
		ksft_set_plan(10);
		check_sealed("crash-sealed", 3);
		check_filling("crash-filling");
		check(!tm_delete(fd, "crash-sealed") && !tm_delete(fd, "crash-filling"),
		      "delete them");
	} else {
		return ksft_exit_fail_msg("usage: %s setup|check-persisted|fill-and-hang|check-after-crash\n",
					  argv[0]);
	}
	ksft_print_cnts();
	return ksft_get_fail_cnt() ? ksft_exit_fail() : ksft_exit_pass();
}
