// SPDX-License-Identifier: MIT
/*
 * tmvm: the guest's tool over lib/tier/device.c, linked statically into the
 * initramfs. "tmvm selftest" is the library's real test against the module
 * (TAP); the other commands are steps of the multi-boot scenarios (fill a
 * region with a seeded pattern, seal it, verify it on the next boot, fill
 * forever until the host kills QEMU). Exit status 0 when the step did what
 * was asked; messages name the failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "tiermem/device.h"
#include "tiermem/error.h"
#include "tests/unit/tap.h"

#define MIB (1024ull * 1024)

static uint64_t pattern(uint64_t seed, uint64_t i)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill(void *p, uint64_t size, uint64_t seed)
{
	uint64_t *w = p;

	for (uint64_t i = 0; i < size / 8; i++)
		w[i] = pattern(seed, i);
}

/* Index of the first wrong word, or UINT64_MAX. */
static uint64_t check(const void *p, uint64_t size, uint64_t seed)
{
	const uint64_t *w = p;

	for (uint64_t i = 0; i < size / 8; i++)
		if (w[i] != pattern(seed, i))
			return i;
	return UINT64_MAX;
}

static int is_zero(const void *p, uint64_t size)
{
	const uint64_t *w = p;

	for (uint64_t i = 0; i < size / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

static int last_ret;	/* the library's last error, for expect-errno */

#define TRY(what, call)                     \
	do {                                \
		int ret_ = (call);          \
		if (ret_) {                 \
			last_ret = ret_;    \
			return die(what);   \
		}                           \
	} while (0)

static int die(const char *what)
{
	fprintf(stderr, "tmvm: %s: %s\n", what, tm_strerror());
	return 1;
}

/* "ddr", "pmem" (any namespace) or "pmemN" (namespace index N). */
/* ddr, ddrN (on NUMA node N), pmem, pmemN (namespace N) */
static int parse_tier(const char *s, enum tm_tier *t, int *pmem_index, int *node)
{
	*pmem_index = TM_PMEM_ANY;
	*node = -1;
	if (!strncmp(s, "ddr", 3)) {
		*t = TM_TIER_DDR;
		if (s[3])
			*node = atoi(s + 3);
	} else if (!strncmp(s, "pmem", 4)) {
		*t = TM_TIER_PMEM;
		if (s[4])
			*pmem_index = atoi(s + 4);
	} else {
		return -1;
	}
	return 0;
}

/* tmvm attach PATH [format] */
static int cmd_attach(int argc, char **argv)
{
	struct tm_device dev;
	uint32_t index;
	uint64_t size;

	if (argc < 2)
		return 2;
	TRY("open", tm_device_open(&dev, NULL));
	TRY("attach", tm_pmem_attach(&dev, argv[1], argc > 2 && !strcmp(argv[2], "format") ? TM_ATTACH_FORMAT : 0,
			   &index, &size));
	printf("attached %s as pmem %u, %llu bytes\n", argv[1], index, (unsigned long long)size);
	tm_device_close(&dev);
	return 0;
}

/* tmvm detach INDEX */
static int cmd_detach(int argc, char **argv)
{
	struct tm_device dev;

	if (argc < 2)
		return 2;
	TRY("open", tm_device_open(&dev, NULL));
	TRY("detach", tm_pmem_detach(&dev, (uint32_t)atoi(argv[1])));
	tm_device_close(&dev);
	return 0;
}

/*
 * tmvm fill NAME ddr|ddrN|pmem|pmemN MIB SEED [seal|private|forever MARKER]: create (mode
 * 0644, or 0600 with private), write the pattern (SEED "none": nothing)
 * through a writable mapping,
 * then seal, or print MARKER and keep rewriting until killed (the crash
 * scenario).
 */
static int cmd_fill(int argc, char **argv)
{
	struct tm_device dev;
	struct tm_region r;
	enum tm_tier tier;
	uint64_t size, seed;
	int pmem_index, node;
	uint32_t mode;
	void *p;

	if (argc < 5 || parse_tier(argv[2], &tier, &pmem_index, &node))
		return 2;
	size = strtoull(argv[3], NULL, 0) * MIB;
	seed = strtoull(argv[4], NULL, 0);
	mode = argc > 5 && !strcmp(argv[5], "private") ? 0600 : 0644;
	TRY("open", tm_device_open(&dev, NULL));
	if (node >= 0)
		TRY("create", tm_region_create_node(&dev, argv[1], size, mode, node, &r));
	else
		TRY("create", tm_region_create(&dev, argv[1], tier, size, mode, pmem_index, &r));
	TRY("mmap", tm_region_mmap(&dev, &r, TM_MAP_WRITE, &p));
	if (strcmp(argv[4], "none"))
		fill(p, size, seed);
	if (argc > 6 && !strcmp(argv[5], "forever")) {
		printf("%s\n", argv[6]);
		fflush(stdout);
		for (uint64_t s = seed + 1;; s++)
			fill(p, size, s);
	}
	tm_region_munmap(&r, p);
	if (argc > 5 && !strcmp(argv[5], "seal"))
		TRY("seal", tm_region_seal(&dev, &r));
	tm_device_close(&dev);
	return 0;
}

/* tmvm verify NAME SEED STATE: the region exists in STATE and holds the pattern. */
static int cmd_verify(int argc, char **argv)
{
	struct tm_device dev;
	struct tm_region r;
	uint64_t bad;
	void *p;

	if (argc < 4)
		return 2;
	TRY("open", tm_device_open(&dev, NULL));
	TRY("open region", tm_region_open(&dev, argv[1], 0, &r));
	if (strcmp(tm_region_state_name(r.state), argv[3])) {
		fprintf(stderr, "tmvm: region %s is %s, expected %s\n", argv[1],
			tm_region_state_name(r.state), argv[3]);
		return 1;
	}
	TRY("mmap", tm_region_mmap(&dev, &r, 0, &p));
	bad = check(p, r.size, strtoull(argv[2], NULL, 0));
	if (bad != UINT64_MAX) {
		fprintf(stderr, "tmvm: region %s: wrong data at byte %llu\n", argv[1],
			(unsigned long long)(bad * 8));
		return 1;
	}
	tm_region_munmap(&r, p);
	tm_device_close(&dev);
	return 0;
}

/* tmvm write NAME: open for writing and map writable (fails on a sealed region). */
static int cmd_write(int argc, char **argv)
{
	struct tm_device dev;
	struct tm_region r;
	void *p;

	if (argc < 2)
		return 2;
	TRY("open", tm_device_open(&dev, NULL));
	TRY("open region", tm_region_open(&dev, argv[1], TM_REGION_WRITE, &r));
	TRY("mmap", tm_region_mmap(&dev, &r, TM_MAP_WRITE, &p));
	tm_region_munmap(&r, p);
	tm_device_close(&dev);
	return 0;
}

/* tmvm state NAME: print the region's state (filling, sealed, volatile). */
static int cmd_state(int argc, char **argv)
{
	struct tiermem_region_info *list;
	struct tm_device dev;
	size_t n;

	if (argc < 2)
		return 2;
	TRY("open", tm_device_open(&dev, NULL));
	TRY("list", tm_region_list(&dev, &list, &n));
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i].name, argv[1])) {
			printf("%s\n", tm_region_state_name(list[i].state));
			free(list);
			return 0;
		}
	}
	free(list);
	fprintf(stderr, "tmvm: no region %s in the list\n", argv[1]);
	last_ret = -ENOENT;
	return 1;
}

/*
 * tmvm stream NAME SECONDS: read the region through the tiermem mapping
 * backend again and again, adding the bytes to its counters page, as the
 * inference driver does with weights (what tiermem stats turns into GB/s).
 */
static int cmd_stream(int argc, char **argv)
{
	struct tiermem_user_counters *uc;
	struct tm_mapping m;
	volatile uint64_t sink = 0;
	time_t end;

	if (argc < 3)
		return 2;
	TRY("map", tm_map_region(&m, argv[1], 0));
	uc = tm_mapping_counters(&m);
	if (!uc) {
		fprintf(stderr, "tmvm: no counters page for %s\n", argv[1]);
		return 1;
	}
	end = time(NULL) + atoi(argv[2]);
	while (time(NULL) < end) {
		const uint64_t *w = m.addr;
		uint64_t x = 0;

		for (size_t i = 0; i < m.size / 8; i += 8)
			x += w[i];
		sink += x;
		tm_counters_add_read(uc, m.size);
	}
	m.release(&m);
	return 0;
}

/* tmvm delete NAME */
static int cmd_delete(int argc, char **argv)
{
	struct tm_device dev;

	if (argc < 2)
		return 2;
	TRY("open", tm_device_open(&dev, NULL));
	TRY("delete", tm_region_delete(&dev, argv[1]));
	tm_device_close(&dev);
	return 0;
}

/* tmvm expect-errno ERRNO CMD ARGS...: CMD must fail with that errno. */
static int cmd_expect(int argc, char **argv);

static int listed(struct tm_device *dev, const char *name, struct tiermem_region_info *out)
{
	struct tiermem_region_info *list;
	size_t n;
	int found = 0;

	if (tm_region_list(dev, &list, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i].name, name)) {
			if (out)
				*out = list[i];
			found = 1;
		}
	}
	free(list);
	return found;
}

static void selftest_ddr(struct tm_device *dev)
{
	struct tm_region r, r2, cp;
	struct tm_device dev2;
	struct tiermem_counters c0, c;
	struct tiermem_region_info info;
	struct tiermem_user_counters *uc;
	uint64_t copied = 0;
	void *p, *q;
	char link[64], target[64];
	ssize_t len;
	int fd = -1;

	if (!tap_ok(!tm_region_create(dev, "vm-ddr", TM_TIER_DDR, 8 * MIB, 0600, TM_PMEM_ANY, &r),
		    "create an 8 MiB DDR region (%s)", tm_strerror()))
		return;
	tap_ok(tm_region_create(dev, "vm-ddr", TM_TIER_DDR, 2 * MIB, 0600, TM_PMEM_ANY, &r2) == -EEXIST &&
	       strstr(tm_strerror(), "exists"), "a second region of the same name: -EEXIST (%s)",
	       tm_strerror());
	tap_ok(listed(dev, "vm-ddr", &info) && info.state == TIERMEM_STATE_VOLATILE &&
	       info.size == 8 * MIB && info.owner_uid == getuid() && info.mode == 0600 &&
	       info.tier == TIERMEM_TIER_DDR, "list: volatile, 8 MiB, owner, mode 0600, tier ddr");
	tm_tier_stats(dev, TM_TIER_DDR, &c0);
	if (!tap_ok(!tm_region_mmap(dev, &r, TM_MAP_WRITE, &p), "mmap writable (%s)", tm_strerror()))
		return;
	tap_ok(((uintptr_t)p & (2 * MIB - 1)) == 0, "the mapping address is 2 MiB aligned (%p)", p);
	tap_ok(is_zero(p, 8 * MIB), "a new region reads as zero");
	fill(p, 8 * MIB, 11);
	tap_ok(!tm_region_stats(dev, &r, &c) && c.faults_pmd == 4 && c.faults_pte == 0 &&
	       c.live_mappings == 1 && c.bytes_mapped >= 8 * MIB,
	       "stats: 4 PMD faults, no PTE fault, one live mapping (pmd %llu pte %llu live %llu)",
	       (unsigned long long)c.faults_pmd, (unsigned long long)c.faults_pte,
	       (unsigned long long)c.live_mappings);
	{
		struct tiermem_counters t;

		tap_ok(!tm_tier_stats(dev, TM_TIER_DDR, &t) && t.faults_pmd >= c0.faults_pmd + 4,
		       "tier ddr stats include the region's faults");
	}

	/* A second open file sees the same bytes. */
	if (tap_ok(!tm_device_open(&dev2, NULL) && !tm_region_open(&dev2, "vm-ddr", 0, &r2) &&
		   !tm_region_mmap(&dev2, &r2, 0, &q), "open by name from another file and map (%s)",
		   tm_strerror())) {
		tap_ok(r2.size == r.size && r2.id == r.id && check(q, 8 * MIB, 11) == UINT64_MAX,
		       "the second mapping reads what the first wrote");
		tm_region_munmap(&r2, q);
		tap_ok(!tm_region_close(&dev2, &r2) && tm_region_close(&dev2, &r2) == -ENOENT,
		       "close a handle; closing it twice: -ENOENT");
		tm_device_close(&dev2);
	}

	/* The counters page: bytes read, added by the reader, seen in stats. */
	if (tap_ok(!tm_region_counters_map(dev, &r, 1, &uc), "map the counters page (%s)",
		   tm_strerror())) {
		tm_counters_add_read(uc, 12345);
		tm_counters_add_read(uc, 55);
		tap_ok(!tm_region_stats(dev, &r, &c) && c.bytes_read == 12400,
		       "bytes added through the counters page show in stats (%llu)",
		       (unsigned long long)c.bytes_read);
		tm_region_counters_unmap(uc);
	}

	/* Copy in the kernel. */
	if (tap_ok(!tm_region_create(dev, "vm-ddr-copy", TM_TIER_DDR, 4 * MIB, 0600, TM_PMEM_ANY, &cp),
		   "create a second DDR region (%s)", tm_strerror())) {
		tap_ok(!tm_region_copy(dev, &r, 2 * MIB, &cp, 0, 4 * MIB, &copied) && copied == 4 * MIB,
		       "copy 4 MiB DDR -> DDR (%s)", tm_strerror());
		if (!tm_region_mmap(dev, &cp, 0, &q)) {
			tap_ok(!memcmp(q, (char *)p + 2 * MIB, 4 * MIB), "the copy holds the bytes");
			tm_region_munmap(&cp, q);
		}
		tap_ok(tm_region_copy(dev, &r, 0, &cp, 2 * MIB, 4 * MIB, NULL) == -EINVAL,
		       "copy past the target's end refused before the kernel");
		tm_region_close(dev, &cp);
		tap_ok(!tm_region_delete(dev, "vm-ddr-copy") && !listed(dev, "vm-ddr-copy", NULL),
		       "delete: gone from the list");
	}

	/* dma-buf export: an fd the kernel calls a dmabuf. */
	if (tap_ok(!tm_region_export(dev, &r, 0, 0, 0, &fd), "export as dma-buf (%s)", tm_strerror())) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, target, sizeof(target) - 1);
		target[len > 0 ? len : 0] = '\0';
		tap_ok(strstr(target, "dmabuf") != NULL, "the exported fd is a dma-buf (%s)", target);
		tap_ok((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "the dma-buf fd is close-on-exec");
		close(fd);
	}

	/* Delete while mapped: the mapping keeps the memory. */
	tap_ok(!tm_region_delete(dev, "vm-ddr"), "delete while mapped (%s)", tm_strerror());
	tap_ok(check(p, 8 * MIB, 11) == UINT64_MAX, "the mapping still reads its data after delete");
	tap_ok(tm_region_open(dev, "vm-ddr", 0, &r2) == -ENOENT && strstr(tm_strerror(), "no region"),
	       "open a deleted region: -ENOENT (%s)", tm_strerror());
	tm_region_munmap(&r, p);
	tm_region_close(dev, &r);
}

static void selftest_pmem(struct tm_device *dev)
{
	struct tm_region r, d;
	struct tiermem_counters c;
	uint64_t copied;
	void *p, *q;

	if (!tap_ok(!tm_region_create(dev, "vm-pmem", TM_TIER_PMEM, 8 * MIB, 0644, TM_PMEM_ANY, &r),
		    "create an 8 MiB PMEM region (%s)", tm_strerror()))
		return;
	tap_ok(r.state == TIERMEM_STATE_FILLING, "a new PMEM region is filling");
	if (!tap_ok(!tm_region_mmap(dev, &r, TM_MAP_WRITE, &p), "mmap writable (%s)", tm_strerror()))
		return;
	tap_ok(is_zero(p, 8 * MIB), "a new PMEM region reads as zero");
	fill(p, 8 * MIB, 22);
	tap_ok(!tm_region_stats(dev, &r, &c) && c.faults_pmd >= 4 && c.faults_pte == 0,
	       "PMEM faults are PMD (or larger): pmd %llu pte %llu", (unsigned long long)c.faults_pmd,
	       (unsigned long long)c.faults_pte);
	tm_region_munmap(&r, p);
	tap_ok(!tm_region_seal(dev, &r) && r.state == TIERMEM_STATE_SEALED, "seal (%s)", tm_strerror());
	tap_ok(tm_region_mmap(dev, &r, TM_MAP_WRITE, &p) < 0, "a sealed region refuses a writable mapping (%s)",
	       tm_strerror());
	if (tap_ok(!tm_region_mmap(dev, &r, 0, &p), "a sealed region maps read-only (%s)", tm_strerror())) {
		tap_ok(check(p, 8 * MIB, 22) == UINT64_MAX, "the sealed region holds its data");
		if (!tm_region_create(dev, "vm-promoted", TM_TIER_DDR, 2 * MIB, 0600, TM_PMEM_ANY, &d)) {
			tap_ok(!tm_region_copy(dev, &r, 6 * MIB, &d, 0, 2 * MIB, &copied) &&
			       copied == 2 * MIB, "promote 2 MiB PMEM -> DDR in the kernel (%s)", tm_strerror());
			if (!tm_region_mmap(dev, &d, 0, &q)) {
				tap_ok(!memcmp(q, (char *)p + 6 * MIB, 2 * MIB), "the promoted copy matches");
				tm_region_munmap(&d, q);
			}
			tm_region_close(dev, &d);
			tm_region_delete(dev, "vm-promoted");
		}
		tm_region_munmap(&r, p);
	}
	tm_region_close(dev, &r);
	tap_ok(!tm_region_delete(dev, "vm-pmem"), "delete the PMEM region (%s)", tm_strerror());
}

/*
 * Weights are streamed from sealed PMEM regions, so their readers must be
 * able to report bytes read. The kernel (kmod/mmap.c) refuses a writable
 * counters page on a sealed region today: shown as a skip naming the gap,
 * never as a pass, until the module allows it.
 */
static void sealed_counters(struct tm_device *dev)
{
	struct tm_region r;
	struct tm_mapping m;

	if (tm_region_create(dev, "vm-sealed-ctr", TM_TIER_PMEM, 2 * MIB, 0644, TM_PMEM_ANY, &r) ||
	    tm_region_seal(dev, &r)) {
		tap_ok(0, "create and seal a PMEM region (%s)", tm_strerror());
		return;
	}
	if (tap_ok(!tm_map_region(&m, "vm-sealed-ctr", 0), "tm_map_region of a sealed region (%s)",
		   tm_strerror())) {
		if (tm_mapping_counters(&m))
			tap_ok(1, "a reader of a sealed PMEM region gets a writable counters page");
		else
			tap_skip("kmod refuses a writable counters page on a sealed region: "
				 "bytes read from sealed PMEM cannot be counted");
		m.release(&m);
	}
	tm_region_close(dev, &r);
	tm_region_delete(dev, "vm-sealed-ctr");
}

/* The mapping backend, as the inference driver will use it. */
static void selftest_backend(struct tm_device *dev)
{
	struct tm_mapping m;
	struct tm_region r;
	void *p;

	if (tm_region_create(dev, "vm-weights", TM_TIER_DDR, 4 * MIB, 0644, TM_PMEM_ANY, &r) ||
	    tm_region_mmap(dev, &r, TM_MAP_WRITE, &p)) {
		tap_ok(0, "set up a region for the backend (%s)", tm_strerror());
		return;
	}
	fill(p, 4 * MIB, 33);
	tm_region_munmap(&r, p);
	if (tap_ok(!tm_map_region(&m, "vm-weights", 0), "tm_map_region (%s)", tm_strerror())) {
		tap_ok(m.tier == TM_TIER_DDR && !strcmp(m.backend, "tiermem") && m.size == 4 * MIB &&
		       !strcmp(m.path, "/dev/tiermem:vm-weights"), "backend tiermem, tier ddr, path, size");
		tap_ok(check(m.addr, m.size, 33) == UINT64_MAX, "weights read through the mapping");
		tap_ok(tm_mapping_counters(&m) != NULL, "the owner gets a writable counters page");
		m.release(&m);
		tap_ok(m.addr == NULL && m.priv == NULL, "release unmaps and forgets");
	}
	sealed_counters(dev);
	tap_ok(tm_map_region(&m, "no-such-region", 0) == -ENOENT && m.addr == NULL,
	       "tm_map_region of a missing region: -ENOENT (%s)", tm_strerror());
	tm_region_close(dev, &r);
	tm_region_delete(dev, "vm-weights");
}

/* tmvm selftest: the library against the loaded module (PMEM attached). */
static int cmd_selftest(int argc, char **argv)
{
	struct tm_device dev;

	if (!tap_ok(!tm_device_open(&dev, NULL), "open /dev/tiermem (%s)", tm_strerror()))
		return tap_done();
	tap_ok(dev.version.abi_version == TIERMEM_ABI_VERSION && dev.version.nr_pmem >= 1,
	       "ABI version %u, %u PMEM namespaces attached", dev.version.abi_version,
	       dev.version.nr_pmem);
	selftest_ddr(&dev);
	selftest_pmem(&dev);
	selftest_backend(&dev);
	tm_device_close(&dev);
	return tap_done();
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} cmds[] = {
	{ "attach", cmd_attach }, { "detach", cmd_detach }, { "fill", cmd_fill },
	{ "verify", cmd_verify }, { "state", cmd_state }, { "delete", cmd_delete },
	{ "selftest", cmd_selftest }, { "expect-errno", cmd_expect }, { "stream", cmd_stream },
	{ "write", cmd_write },
};

static int run(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (argc > 0 && !strcmp(argv[0], cmds[i].name))
			return cmds[i].fn(argc, argv);
	fprintf(stderr, "usage: tmvm attach|detach|fill|verify|state|write|delete|stream|selftest|expect-errno ...\n");
	return 2;
}

static int cmd_expect(int argc, char **argv)
{
	int want, got;

	if (argc < 3)
		return 2;
	want = atoi(argv[1]);
	last_ret = 0;
	got = run(argc - 2, argv + 2);
	if (got == 0) {
		fprintf(stderr, "tmvm: %s succeeded, expected errno %d\n", argv[2], want);
		return 1;
	}
	if (last_ret != -want) {
		fprintf(stderr, "tmvm: %s failed with %d (%s), expected -%d\n", argv[2], last_ret,
			tm_strerror(), want);
		return 1;
	}
	printf("%s failed as expected: %s\n", argv[2], tm_strerror());
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run(argc - 1, argv + 1);
}
