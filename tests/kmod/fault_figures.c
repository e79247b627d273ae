// SPDX-License-Identifier: GPL-2.0
/*
 * Figures, not a test: page faults to map and touch SIZE_MB (default 1024)
 * through /dev/tiermem (DDR, and PMEM when attached) against 4 KiB
 * anonymous memory (THP off) and THP anonymous memory. Counts come from
 * the module's counters and from getrusage(). Needs ddr_max_mb >= SIZE_MB
 * and a guest with enough RAM.
 */
#include <sys/resource.h>

#include "tm_test.h"

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void touch(volatile char *p, size_t len)
{
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
}

static void anon(size_t len, int thp)
{
	char *base = mmap(NULL, len + CHUNK, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = base;
	long f0;

	if (p == MAP_FAILED) {
		perror("mmap anon");
		return;
	}
	p = (char *)(((uintptr_t)p + CHUNK - 1) & ~(CHUNK - 1));
	madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	f0 = minflt();
	touch(p, len);
	printf("anon %-8s %5zu MiB: %8ld page faults, AnonHugePages %ld kB\n",
	       thp ? "THP" : "4KiB", len >> 20, minflt() - f0,
	       tm_smaps_kb(p, "AnonHugePages"));
	munmap(base, len + CHUNK);
}

static void region(int fd, __u32 tier, size_t len)
{
	struct tiermem_create c = { .tier = tier, .size = len, .mode = 0600 };
	struct tiermem_counters st;
	const char *name = tier == TIERMEM_TIER_DDR ? "figures-ddr" : "figures-pmem";
	long f0;
	char *p;

	if (tier == TIERMEM_TIER_PMEM)
		c.flags = TIERMEM_CREATE_ANY_PMEM;
	tm_setname(c.name, name);
	if (tm_ioctl(fd, TIERMEM_IOC_CREATE, &c)) {
		printf("%s: create failed: %s\n", name, strerror(errno));
		return;
	}
	p = tm_map(fd, c.mmap_offset, len, PROT_READ | PROT_WRITE);
	if (p == MAP_FAILED) {
		perror("mmap region");
		return;
	}
	f0 = minflt();
	touch(p, len);
	f0 = minflt() - f0;
	tm_stats(fd, c.id, &st);
	printf("tiermem %-4s %5zu MiB: %8ld page faults (module: %llu PMD, %llu PTE, %llu PUD; %llu MiB mapped); FilePmdMapped %ld kB\n",
	       tier == TIERMEM_TIER_DDR ? "ddr" : "pmem", len >> 20, f0,
	       st.faults_pmd, st.faults_pte, st.faults_pud, st.bytes_mapped >> 20,
	       tm_smaps_kb(p, "FilePmdMapped"));
	munmap(p, len);
	tm_delete(fd, name);
}

int main(int argc, char **argv)
{
	size_t len = (size_t)(argc > 1 ? atol(argv[1]) : 1024) << 20;
	struct tiermem_version v;
	int fd = tm_dev();

	if (fd < 0 || tm_version(fd, &v)) {
		perror(TIERMEM_DEVICE);
		return 1;
	}
	anon(len, 0);
	anon(len, 1);
	region(fd, TIERMEM_TIER_DDR, len);
	if (v.nr_pmem)
		region(fd, TIERMEM_TIER_PMEM, len);
	return 0;
}
