// SPDX-License-Identifier: MIT
/*
 * A tier's read bandwidth when the user gives none: measured here, now, with
 * tiermem bench's read loop (tm_bench_read, every thread of the pool, best of
 * a few passes) over memory of that kind. It is measured on demand rather
 * than cached, because this host's ceiling moves by 4x within the hour and a
 * stale figure would silently skew every plan; 256 MiB takes well under a
 * second. A plan for another machine gives @GBPS instead. vram and pcie
 * are measured on this machine's GPU (tm_gpu_read_bench, tm_gpu_pcie_bench:
 * median of the passes); without one the error names what is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tiermem/bench.h"
#include "tiermem/error.h"
#include "tiermem/gpu.h"
#include "tiermem/plan.h"

#define MEASURE_BYTES (256ul << 20)
#define MEASURE_PASSES 3

/* node:N: anonymous memory bound to the node before it is touched. */
static int map_node(struct tm_mapping *m, int node)
{
	unsigned long mask[64] = { 0 };
	int err;

	if (numa_available() < 0 || node > numa_max_node() || !numa_bitmask_isbitset(numa_all_nodes_ptr, node))
		return tm_err(-ENODEV, "node:%d: this machine has no NUMA node %d (nodes 0..%d)", node, node,
			      numa_available() < 0 ? 0 : numa_max_node());
	if ((err = tm_map_anon(m, MEASURE_BYTES, TM_PAGES_THP, 0)))
		return err;
	mask[node / 64] = 1ul << (node % 64);
	if (mbind(m->addr, m->size, MPOL_BIND, mask, sizeof(mask) * 8, 0)) {
		err = tm_err(-errno, "node:%d: mbind: %s", node, strerror(errno));
		tm_unmap(m);
		return err;
	}
	return 0;
}

/* A file of MEASURE_BYTES in dir, unlinked at once; written so its pages are real. */
static int map_temp_file(struct tm_mapping *m, const char *dir, bool pmem)
{
	char path[300];
	size_t chunk = 1 << 20;
	char *buf;
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/.tiermem-bw-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return tm_err(-errno, "measuring %s: %s", dir, strerror(errno));
	buf = malloc(chunk);
	if (!buf) {
		err = tm_err(-ENOMEM, "out of memory");
		goto out;
	}
	memset(buf, 0x5a, chunk);
	for (size_t done = 0; !err && done < MEASURE_BYTES; done += chunk)
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			err = tm_err(-EIO, "measuring %s: writing %zu bytes failed", dir, MEASURE_BYTES);
	free(buf);
	if (!err)
		err = pmem ? tm_map_pmem(m, path, MEASURE_BYTES, 0) : tm_map_file(m, path, 0);
out:
	unlink(path);
	close(fd);
	return err;
}

static int map_for(struct tm_mapping *m, const struct tm_tier_spec *t)
{
	struct stat st;
	const char *tmp = getenv("TMPDIR");

	switch (t->kind) {
	case TM_KIND_DDR:
		return tm_map_anon(m, MEASURE_BYTES, TM_PAGES_THP, 0);
	case TM_KIND_NODE:
		return map_node(m, t->node);
	case TM_KIND_FILE:
		return map_temp_file(m, t->path[0] ? t->path : tmp && *tmp ? tmp : "/tmp", false);
	case TM_KIND_PMEM:
		if (!t->path[0])
			return tm_err(-EINVAL, "tier %s: pmem has no path to measure: give @GBPS or ,path=DEVICE-OR-DAX-DIR",
				      t->name);
		if (stat(t->path, &st))
			return tm_err(-errno, "tier %s: %s: %s", t->name, t->path, strerror(errno));
		if (S_ISDIR(st.st_mode))
			return map_temp_file(m, t->path, true);
		return tm_map_pmem(m, t->path, MEASURE_BYTES, 0);
	default:
		return tm_err(-EINVAL, "tier %s: %s bandwidth cannot be measured here: give @GBPS", t->name,
			      tm_tier_kind_name(t->kind));
	}
}

/* The GPU's tiers: device memory, and pinned host memory read in place over PCIe (-ot pcie's way). */
static int measure_gpu(struct tm_tier_spec *t)
{
	struct tm_gpu_info info;
	struct tm_mapping m;
	double copy;
	int err;

	if ((err = tm_gpu_probe(&info))) {
		char why[256];

		snprintf(why, sizeof(why), "%s", tm_strerror());	/* tm_err writes where it lies */
		return tm_err(err, "tier %s: %s bandwidth is measured on a GPU: %s; give @GBPS", t->name,
			      tm_tier_kind_name(t->kind), why);
	}
	if (t->kind == TM_KIND_VRAM)
		err = tm_gpu_read_bench(MEASURE_BYTES, MEASURE_PASSES, &t->gbps);
	else if (!(err = tm_map_anon(&m, MEASURE_BYTES, TM_PAGES_THP, 0))) {
		memset(m.addr, 0x5a, m.size);
		err = tm_gpu_pcie_bench(&m, m.size, MEASURE_PASSES, &t->gbps, &copy);
		tm_unmap(&m);
	}
	if (err)
		return tm_err_prefix(err, "tier %s", t->name);
	t->gbps_given = false;
	return 0;
}

int tm_tier_measure(struct tm_tier_spec *t, struct tm_pool *pool)
{
	struct tm_mapping m;
	struct tm_bw bw;
	int err;

	if (t->kind == TM_KIND_VRAM || t->kind == TM_KIND_PCIE)
		return measure_gpu(t);
	if ((err = map_for(&m, t)))
		return err;
	/* anonymous pages never written all read the one zero page, from cache */
	if (t->kind == TM_KIND_DDR || t->kind == TM_KIND_NODE)
		memset(m.addr, 0x5a, m.size);
	/* first touch (and, for anonymous memory, the zero fill) stays out of the timing */
	err = tm_bench_read(&m, m.size < MEASURE_BYTES ? m.size : MEASURE_BYTES, pool, 0, MEASURE_PASSES, &bw);
	tm_unmap(&m);
	if (err)
		return err;
	t->gbps = bw.best_gbs;
	t->gbps_given = false;
	return 0;
}
