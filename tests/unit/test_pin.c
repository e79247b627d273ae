// SPDX-License-Identifier: MIT
/*
 * tm_mapping_pinnable: which mappings the GPU may read in place over PCIe
 * (a long-term pin, as cudaHostRegister takes), decided without a GPU: real
 * anonymous and file mappings, and the other backends described by hand, on
 * an old and a new kernel. Refusals are one line that offers DDR staging.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tiermem/error.h"
#include "tiermem/mapping.h"

static struct tm_mapping fake(const char *backend, enum tm_tier tier, const char *path)
{
	struct tm_mapping m = { .tier = tier };

	snprintf(m.backend, sizeof(m.backend), "%s", backend);
	snprintf(m.path, sizeof(m.path), "%s", path);
	return m;
}

/* Refused with one line that names the mapping, the reason and both ways out. */
static int refused(int err, const char *path)
{
	const char *msg = tm_strerror();

	return err == -EOPNOTSUPP && strstr(msg, path) && strstr(msg, "DDR") && strstr(msg, "CPU") &&
	       !strchr(msg, '\n');
}

int main(void)
{
	struct tm_mapping m, f;
	char path[] = "/tmp/tm-pin-XXXXXX";
	int fd = mkstemp(path), ok;

	ok = !tm_map_anon(&m, 4 << 20, TM_PAGES_THP, 0);
	tap_ok(ok && !tm_mapping_pinnable(&m, "6.1.0-56-amd64") && !tm_mapping_pinnable(&m, "6.16.0"),
	       "anonymous 2 MiB pages (%s): pinnable on any kernel", ok ? m.backend : "?");
	if (ok)
		tm_unmap(&m);
	ok = !tm_map_anon(&m, 1 << 20, TM_PAGES_4K, 0);
	tap_ok(ok && !tm_mapping_pinnable(&m, NULL), "anonymous 4 KiB pages: pinnable on this kernel");
	if (ok)
		tm_unmap(&m);
	ok = fd >= 0 && write(fd, "0123456789abcdef", 16) == 16 && !tm_map_file(&f, path, 0);
	tap_ok(ok && !strcmp(f.backend, "file") && !tm_mapping_pinnable(&f, "6.1.0"),
	       "a plain file's page cache: pinnable (read-only registration)");
	if (ok)
		tm_unmap(&f);

	m = fake("hugetlb", TM_TIER_DDR, "");
	tap_ok(!tm_mapping_pinnable(&m, "6.1.0"), "hugetlb: pinnable");
	m = fake("devdax", TM_TIER_PMEM, "/dev/dax0.0");
	tap_ok(!tm_mapping_pinnable(&m, "6.1.0") && !tm_mapping_pinnable(&m, "7.2.0"),
	       "devdax: pinnable on any kernel (compound ZONE_DEVICE pages)");
	m = fake("fsdax", TM_TIER_PMEM, "/mnt/pmem0/model");
	tap_ok(refused(tm_mapping_pinnable(&m, "6.1.0"), "/mnt/pmem0/model"),
	       "fsdax file: refused on any kernel: %s", tm_strerror());
	m = fake("tiermem", TM_TIER_DDR, "/dev/tiermem");
	tap_ok(!tm_mapping_pinnable(&m, "6.1.0") && !tm_mapping_pinnable(&m, "7.0"),
	       "a tiermem DDR region: pinnable");
	m = fake("tiermem", TM_TIER_PMEM, "/dev/tiermem");
	tap_ok(!tm_mapping_pinnable(&m, "6.1.0-56-amd64") && !tm_mapping_pinnable(&m, "6.14.9"),
	       "a tiermem PMEM region on 6.1 to 6.14: pinnable (fsdax pages behind a character device)");
	tap_ok(refused(tm_mapping_pinnable(&m, "6.15.0"), "/dev/tiermem") &&
	       refused(tm_mapping_pinnable(&m, "10.0.1"), "/dev/tiermem") &&
	       refused(tm_mapping_pinnable(&m, "weird"), "/dev/tiermem"),
	       "a tiermem PMEM region from 6.15, or on a kernel release that does not parse: refused");
	m = fake("tape", TM_TIER_FILE, "/dev/st0");
	tap_ok(refused(tm_mapping_pinnable(&m, "6.1.0"), "/dev/st0"), "an unknown backend: refused");
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	return tap_done();
}
