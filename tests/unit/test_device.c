// SPDX-License-Identifier: MIT
/*
 * lib/tier/device.c on a machine without the module: a missing /dev/tiermem is a
 * clean -ENODEV that says so, a node that is not tiermem is recognised, and
 * every argument check fires before any ioctl. The real calls are tested in
 * the VM (tests/vm, plan "device").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tiermem/device.h"
#include "tiermem/error.h"
#include "tap.h"

#define MIB (1024ull * 1024)

static int has(const char *needle)
{
	return strstr(tm_strerror(), needle) != NULL;
}

static void test_no_device(void)
{
	struct tm_device dev;
	struct tm_mapping m;
	int ret;

	ret = tm_device_open(&dev, "/nonexistent/tiermem");
	tap_ok(ret == -ENODEV && dev.fd == -1 && has("module is not loaded") && has("/nonexistent"),
	       "missing device node: -ENODEV naming the path and the module (%d: %s)", ret,
	       tm_strerror());
	ret = tm_device_open(&dev, "/dev/null");
	tap_ok(ret == -ENODEV && dev.fd == -1 && has("not a tiermem device"),
	       "/dev/null is recognised as not a tiermem device (%d: %s)", ret, tm_strerror());
	if (access(TIERMEM_DEVICE, F_OK) != 0) {
		ret = tm_map_region(&m, "weights", 0);
		tap_ok(ret == -ENODEV && m.addr == NULL && has("module is not loaded"),
		       "tm_map_region without the module: -ENODEV, nothing mapped (%s)", tm_strerror());
	} else {
		tap_skip("/dev/tiermem exists on this host: the no-module path is not testable here");
	}
	tm_device_close(&dev);	/* harmless on a closed device */
	tap_ok(tm_region_create(NULL, "a", TM_TIER_DDR, 2 * MIB, 0600, TM_PMEM_ANY, NULL) == -EBADF &&
	       tm_region_delete(&dev, "a") == -EBADF && tm_device_refresh(&dev) == -EBADF,
	       "calls on a closed device: -EBADF");
}

static void test_names(void)
{
	char longname[80];
	int bad = 0;
	static const char *const good[] = { "a", "llama-7b.q4_k", "A.B_C-9" };
	static const char *const wrong[] = { "", "a b", "a/b", "x\n", "naïve", "$x" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		bad += tm_region_name_check(good[i]) != 0;
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
		bad += tm_region_name_check(wrong[i]) != -EINVAL;
	bad += tm_region_name_check(NULL) != -EINVAL;
	memset(longname, 'x', 63);
	longname[63] = '\0';
	bad += tm_region_name_check(longname) != 0;
	memset(longname, 'x', 64);
	longname[64] = '\0';
	bad += tm_region_name_check(longname) != -EINVAL || !has("longer than 63");
	tap_ok(!bad, "region names: 1..63 bytes of [A-Za-z0-9._-] (%d wrong verdicts)", bad);
	tap_ok(!strcmp(tm_region_state_name(TIERMEM_STATE_SEALED), "sealed") &&
	       !strcmp(tm_region_state_name(TIERMEM_STATE_FILLING), "filling") &&
	       !strcmp(tm_region_state_name(99), "unknown"), "state names");
}

/*
 * A device struct on /dev/null: arguments that pass the library's checks
 * reach the ioctl (-ENOTTY from /dev/null), the others fail with -EINVAL
 * before it. That tells the two apart without a module.
 */
static void test_arguments(void)
{
	struct tm_device dev = { .fd = open("/dev/null", O_RDWR) };
	struct tm_region r, a = { .name = "a", .size = 4 * MIB, .id = 1 },
			    b = { .name = "b", .size = 2 * MIB, .id = 2 };
	struct tiermem_counters c;
	uint64_t copied = 7;
	char path[200];
	int fd = -1, bad = 0;

	if (!tap_ok(dev.fd >= 0, "open /dev/null"))
		return;
	/* create */
	bad += tm_region_create(&dev, "w", TM_TIER_DDR, 2 * MIB, 0600, TM_PMEM_ANY, &r) != -ENOTTY;
	bad += tm_region_create(&dev, "w", TM_TIER_PMEM, 4 * MIB, 0644, 1, &r) != -ENOTTY;
	bad += tm_region_create_node(&dev, "w", 2 * MIB, 0600, 0, &r) != -ENOTTY;
	tap_ok(!bad, "create with good arguments reaches the kernel");
	bad = 0;
	bad += tm_region_create_node(&dev, "w", 2 * MIB, 0600, -1, &r) != -EINVAL;
	bad += tm_region_create_node(&dev, "w", 3 * MIB, 0600, 0, &r) != -EINVAL;
	bad += tm_region_create_node(&dev, "bad/name", 2 * MIB, 0600, 0, &r) != -EINVAL;
	tap_ok(!bad, "create on a node: node, size and name checked (%d)", bad);
	bad = 0;
	bad += tm_region_create(&dev, "w", TM_TIER_DDR, 0, 0600, TM_PMEM_ANY, &r) != -EINVAL;
	bad += tm_region_create(&dev, "w", TM_TIER_DDR, 3 * MIB, 0600, TM_PMEM_ANY, &r) != -EINVAL ||
	       !has("multiple of 2 MiB");
	bad += tm_region_create(&dev, "w", TM_TIER_DDR, 2 * MIB, 01000, TM_PMEM_ANY, &r) != -EINVAL;
	bad += tm_region_create(&dev, "w", TM_TIER_FILE, 2 * MIB, 0600, TM_PMEM_ANY, &r) != -EINVAL;
	bad += tm_region_create(&dev, "w", TM_TIER_PMEM, 2 * MIB, 0600, TIERMEM_PMEM_MAX, &r) != -EINVAL;
	bad += tm_region_create(&dev, "w", TM_TIER_PMEM, 2 * MIB, 0600, -2, &r) != -EINVAL;
	bad += tm_region_create(&dev, "w", TM_TIER_DDR, 2 * MIB, 0600, 3, &r) != -EINVAL;
	bad += tm_region_create(&dev, "bad name", TM_TIER_DDR, 2 * MIB, 0600, TM_PMEM_ANY, &r) != -EINVAL;
	bad += tm_region_create(&dev, "w", TM_TIER_DDR, 2 * MIB, 0600, TM_PMEM_ANY, NULL) != -EINVAL;
	tap_ok(!bad, "create refuses size 0, unaligned size, mode, tier, PMEM index, name (%d)", bad);

	/* open, delete */
	bad = 0;
	bad += tm_region_open(&dev, "w", TM_REGION_WRITE, &r) != -ENOTTY;
	bad += tm_region_open(&dev, "w", 0x100, &r) != -EINVAL;
	bad += tm_region_open(&dev, "", 0, &r) != -EINVAL;
	bad += tm_region_delete(&dev, "w") != -ENOTTY;
	bad += tm_region_delete(&dev, "w/x") != -EINVAL;
	tap_ok(!bad, "open and delete: names and flags checked, good ones reach the kernel");

	/* seal: PMEM only */
	bad = 0;
	a.tier = TM_TIER_DDR;
	bad += tm_region_seal(&dev, &a) != -EINVAL || !has("only PMEM");
	a.tier = TM_TIER_PMEM;
	bad += tm_region_seal(&dev, &a) != -ENOTTY;
	tap_ok(!bad, "seal: only PMEM regions");

	/* copy: ranges */
	bad = 0;
	bad += tm_region_copy(&dev, &a, 0, &b, 0, 2 * MIB, &copied) != -ENOTTY;
	bad += tm_region_copy(&dev, &a, 0, &b, 0, 0, NULL) != -EINVAL;
	bad += tm_region_copy(&dev, &a, 3 * MIB, &b, 0, 2 * MIB, NULL) != -EINVAL ||
	       !has("beyond the end of 'a'");
	bad += tm_region_copy(&dev, &a, 0, &b, 1, 2 * MIB, NULL) != -EINVAL ||
	       !has("beyond the end of 'b'");
	bad += tm_region_copy(&dev, &a, UINT64_MAX - 10, &b, 0, 20, NULL) != -EINVAL;
	bad += tm_region_copy(&dev, &a, 0, &b, UINT64_MAX, 1, NULL) != -EINVAL;
	bad += tm_region_copy(&dev, NULL, 0, &b, 0, 1, NULL) != -EINVAL;
	tap_ok(!bad, "copy: zero length, ranges past the end and offset overflow refused (%d)", bad);

	/* export */
	bad = 0;
	bad += tm_region_export(&dev, &a, 0, 0, 0, &fd) != -ENOTTY;
	bad += tm_region_export(&dev, &a, 4096, 8192, TM_EXPORT_WRITE, &fd) != -ENOTTY;
	bad += tm_region_export(&dev, &a, 100, 0, 0, &fd) != -EINVAL;
	bad += tm_region_export(&dev, &a, 0, 100, 0, &fd) != -EINVAL;
	bad += tm_region_export(&dev, &a, 4 * MIB, 0, 0, &fd) != -EINVAL;
	bad += tm_region_export(&dev, &a, 2 * MIB, 4 * MIB, 0, &fd) != -EINVAL;
	bad += tm_region_export(&dev, &a, 0, 0, 0x8, &fd) != -EINVAL;
	tap_ok(!bad && fd == -1, "export: alignment, range and flags checked (%d)", bad);

	/* attach, detach */
	bad = 0;
	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	bad += tm_pmem_attach(&dev, "/dev/pmem0", TM_ATTACH_FORMAT, NULL, NULL) != -ENOTTY;
	bad += tm_pmem_attach(&dev, path, 0, NULL, NULL) != -ENAMETOOLONG;
	bad += tm_pmem_attach(&dev, "", 0, NULL, NULL) != -EINVAL;
	bad += tm_pmem_attach(&dev, "/dev/pmem0", 0x10, NULL, NULL) != -EINVAL;
	bad += tm_pmem_detach(&dev, 0) != -ENOTTY;
	bad += tm_pmem_detach(&dev, TIERMEM_PMEM_MAX) != -EINVAL;
	tap_ok(!bad, "attach and detach: path length, flags, index checked (%d)", bad);

	/* stats, list, mmap */
	bad = 0;
	bad += tm_region_stats(&dev, &a, &c) != -ENOTTY;
	bad += tm_tier_stats(&dev, TM_TIER_PMEM, &c) != -ENOTTY;
	bad += tm_tier_stats(&dev, TM_TIER_VRAM, &c) != -EINVAL;
	{
		void *addr = NULL;

		bad += tm_region_mmap(&dev, &a, 0x80, &addr) != -EINVAL || addr != NULL;
	}
	{
		struct tiermem_region_info *list = NULL;
		size_t n = 99;

		bad += tm_region_list(&dev, &list, &n) != -ENOTTY || list != NULL || n != 99;
	}
	tap_ok(!bad, "stats, list and mmap: arguments checked, nothing returned on failure (%d)", bad);
	close(dev.fd);
}

int main(void)
{
	test_no_device();
	test_names();
	test_arguments();
	return tap_done();
}
