// SPDX-License-Identifier: MIT
/*
 * tiermem info: is the module loaded, which ABI and features, how much DDR
 * is in use, how many PMEM namespaces are attached, and every region with
 * its tier, state, size, owner and mode.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiermem/device.h"
#include "tiermem/error.h"
#include "tiermem/region.h"
#include "tiermem/store.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: tiermem info [--device PATH]\n\n"
		   "Shows whether the tiermem module is loaded (/dev/tiermem), its ABI version and\n"
		   "features, DDR in use against ddr_max_mb, the number of attached PMEM namespaces,\n"
		   "and every region: name, tier (ddr|pmem), state (volatile|filling|sealed), size,\n"
		   "owner uid, mode, PMEM namespace and offset, NUMA node, and the bytes of a PMEM\n"
		   "region that lie in the namespace's known bad blocks (reading them is SIGBUS;\n"
		   "delete and create the region again to clear them). A PMEM region that is still\n"
		   "'filling' after a reboot was never sealed: its contents are incomplete.\n"
		   "Then the store (tiermem import): its directory, the backend its tiers use now\n"
		   "and how many models it holds.\n"
		   "Exit status 1 when the module is not loaded.\n\n"
		   "  --device PATH   the device node (default /dev/tiermem)\n");
}

/* "2 MiB", "1.5 GiB": sizes are multiples of 2 MiB, so whole MiB are exact. */
static void human(char *buf, size_t len, uint64_t bytes)
{
	if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0)
		snprintf(buf, len, "%" PRIu64 " GiB", bytes >> 30);
	else if (bytes >= (1ull << 30))
		snprintf(buf, len, "%.2f GiB", (double)bytes / (1ull << 30));
	else if (bytes % (1ull << 20) == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", bytes >> 20);
	else
		snprintf(buf, len, "%" PRIu64 " B", bytes);
}

static void print_features(uint64_t f)
{
	static const struct { uint64_t bit; const char *name; } names[] = {
		{ TIERMEM_FEAT_DDR, "ddr" }, { TIERMEM_FEAT_PMEM, "pmem" },
		{ TIERMEM_FEAT_COPY, "copy" }, { TIERMEM_FEAT_DMABUF, "dmabuf" },
		{ TIERMEM_FEAT_USER_CTR, "user-counters" },
		{ TIERMEM_FEAT_INFO_BAD_NODE, "info-bad-node" },
		{ TIERMEM_FEAT_CREATE_NODE, "create-node" },
	};

	printf("features:");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (f & names[i].bit)
			printf(" %s", names[i].name);
	if (f & ~(uint64_t)0x7f)
		printf(" (unknown bits %#" PRIx64 ")", f & ~(uint64_t)0x7f);
	putchar('\n');
}

/* Node and bad bytes: only modules with TIERMEM_FEAT_INFO_BAD_NODE fill them. */
static void print_region_extra(const struct tiermem_region_info *e, uint64_t features)
{
	char bad[32];

	if (!(features & TIERMEM_FEAT_INFO_BAD_NODE))
		return;
	if (e->numa_node >= 0)
		printf(" node %d", e->numa_node);
	if (e->bad_bytes) {
		human(bad, sizeof(bad), e->bad_bytes);
		printf(" (bad blocks: %s)", bad);
	}
}

static void print_regions(const struct tiermem_region_info *list, size_t n, uint64_t features)
{
	char size[32];

	printf("regions: %zu\n", n);
	if (!n)
		return;
	printf("  %-24s %-5s %-9s %10s %6s %4s %s\n", "NAME", "TIER", "STATE", "SIZE", "OWNER",
	       "MODE", "PMEM");
	for (size_t i = 0; i < n; i++) {
		const struct tiermem_region_info *e = &list[i];

		human(size, sizeof(size), e->size);
		printf("  %-24s %-5s %-9s %10s %6u %04o ", e->name,
		       e->tier == TIERMEM_TIER_PMEM ? "pmem" : "ddr", tm_region_state_name(e->state),
		       size, e->owner_uid, e->mode);
		if (e->tier == TIERMEM_TIER_PMEM)
			printf("pmem%u@%" PRIu64, e->pmem_index, (uint64_t)e->pmem_offset);
		else
			printf("-");
		print_region_extra(e, features);
		if (e->flags & TIERMEM_INFO_DELETED)
			printf(" (deleted, still mapped)");
		putchar('\n');
	}
}

/* Which backend the store uses now, and what it holds (tiermem list has the details). */
static void print_store(void)
{
	struct tm_store_model *m;
	char home[256];
	size_t n, sealed = 0;

	if (tm_store_home(home, sizeof(home))) {
		printf("store: %s\n", tm_strerror());
		tm_clear_error();
		return;
	}
	if (tm_module_usable())
		printf("store: %s; ddr and pmem tiers in /dev/tiermem regions (module with PMEM)\n", home);
	else
		printf("store: %s; userspace backends (ddr: 2 MiB pages, pmem: a DAX path, node:N, "
		       "file: not persistent memory)\n", home);
	if (tm_store_list(&m, &n)) {
		tm_clear_error();
		return;
	}
	for (size_t i = 0; i < n; i++)
		sealed += m[i].usable;
	printf("models: %zu (%zu usable; tiermem list)\n", n, sealed);
	free(m);
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	struct tiermem_region_info *list;
	struct tm_device dev;
	char used[32], max[32];
	size_t n;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error("info", "unexpected argument '%s'", argv[optind]);

	ret = tm_device_open(&dev, path);
	if (ret == -ENODEV) {
		printf("module: not loaded (%s)\n", path ? path : TIERMEM_DEVICE);
		ret = run_error("info", "%s", tm_strerror());
		print_store();
		return ret;
	}
	if (ret)
		return run_error("info", "%s", tm_strerror());
	printf("module: loaded (%s)\n", path ? path : TIERMEM_DEVICE);
	printf("abi: %u\n", dev.version.abi_version);
	print_features(dev.version.features);
	human(used, sizeof(used), dev.version.ddr_used_bytes);
	human(max, sizeof(max), dev.version.ddr_max_bytes);
	printf("ddr: %s used of %s (ddr_max_mb)\n", used, max);
	printf("pmem namespaces: %u\n", dev.version.nr_pmem);
	ret = tm_region_list(&dev, &list, &n);
	tm_device_close(&dev);
	if (ret)
		return run_error("info", "%s", tm_strerror());
	print_regions(list, n, dev.version.features);
	free(list);
	print_store();
	return 0;
}
