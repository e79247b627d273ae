// SPDX-License-Identifier: MIT
/* The bandwidth benchmark's pieces: read loops, mappings and the ceiling arithmetic. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/stream.h"
#include "tiermem/bench.h"
#include "tiermem/error.h"
#include "tiermem/mapping.h"
#include "tap.h"

static void test_stream(void)
{
	size_t n = (1 << 20) + 256 * 3;
	uint64_t *buf = malloc(n + 64), want = 0;
	int bad = 0;

	srand(1);
	for (size_t i = 0; i < (n + 64) / 8; i++)
		buf[i] = ((uint64_t)rand() << 40) ^ ((uint64_t)rand() << 20) ^ (uint64_t)rand();
	for (size_t i = 0; i < n / 8; i++)
		want ^= buf[i];
	__builtin_cpu_init();
	/* no prefetch; each line; two lines per 256 bytes; a line per 2 KiB */
	static const size_t pf[][2] = { { 0, 64 }, { 8192, 64 }, { 4096, 128 }, { 8192, 2048 } };

	for (int k = 0; k < 4; k++) {
		bad += tm_stream_read_scalar(buf, n, pf[k][0], pf[k][1]) != want;
		if (__builtin_cpu_supports("avx2"))
			bad += tm_stream_read_avx2(buf, n, pf[k][0], pf[k][1]) != want;
		if (__builtin_cpu_supports("avx512f"))
			bad += tm_stream_read_avx512(buf, n, pf[k][0], pf[k][1]) != want;
	}
	tap_ok(!bad, "read loops (scalar, avx2, avx512 where present) see every word, with and without prefetch");

	/* a length that is not a multiple of 256 or of 8: the tail counts, zero-padded */
	uint64_t tail = 0;
	memcpy(&tail, (char *)buf + 1000 - 1000 % 8, 1000 % 8);
	want = 0;
	for (size_t i = 0; i < 1000 / 8; i++)
		want ^= buf[i];
	tap_ok(tm_stream_read(buf, 1000, 0, 64) == (want ^ tail), "tm_stream_read reads an odd-sized tail (%s)",
	       tm_stream_isa());
	free(buf);
}

/* The table in the foundation issue: ~16.9 GB active per token (30B at q4). */
static void test_ceiling(void)
{
	const double active = 16.9e9;
	static const struct { const char *name; double lo, hi; } want[] = {
		{ "HBM3e", 80, 285 }, { "GDDR6X", 21, 21.5 }, { "DDR5", 16, 16.7 },
		{ "DDR4", 2.9, 3.0 }, { "Optane", 1.7, 2.4 }, { "NVMe", 0.8, 0.85 },
	};
	int bad = 0;

	for (int i = 0; i < tm_n_ref_tiers; i++) {
		const struct tm_ref_tier *r = &tm_ref_tiers[i];
		double lo = tm_decode_ceiling(r->gbs_lo, active), hi = tm_decode_ceiling(r->gbs_hi, active);

		if (!strstr(r->name, want[i].name) || lo < want[i].lo || hi > want[i].hi) {
			printf("# %s: %.2f-%.2f tok/s, expected within %.2f-%.2f\n", r->name, lo, hi, want[i].lo, want[i].hi);
			bad++;
		}
	}
	tap_ok(tm_n_ref_tiers == 6 && !bad, "reference ceilings match the table (HBM3e ~80-280 ... NVMe ~0.8 tok/s)");
	tap_ok(tm_decode_ceiling(50, 1e9) == 50.0 && tm_decode_ceiling(0, 1e9) == 0 &&
	       tm_decode_ceiling(50, 0) == 0, "ceiling = GB/s * 1e9 / bytes; 0 for non-positive inputs");
	double v[] = { 5, 1, 4, 2, 3 }, w[] = { 4, 1, 3, 2 };
	tap_ok(tm_median(v, 5) == 3 && tm_median(w, 4) == 2.5, "median of odd and even counts");
}

static void test_mappings(void)
{
	struct tm_mapping m;
	struct tm_touch touch;
	struct tm_bw bw;
	struct tm_pool *pool;
	int ret;

	ret = tm_map_anon(&m, 8 << 20, TM_PAGES_THP, 0);
	tap_ok(!ret && ((uintptr_t)m.addr & ((2 << 20) - 1)) == 0 && m.size == 8 << 20 &&
	       m.tier == TM_TIER_DDR && !strcmp(m.backend, "anon-thp"), "THP mapping is 2 MiB aligned");
	if (!ret) {
		tap_ok(!tm_bench_first_touch(&m, 1, &touch) && touch.faults_per_gib > 0 &&
		       touch.bytes == m.size, "first touch counts faults");
		pool = tm_pool_create(2, 0);
		ret = tm_bench_read(&m, m.size, pool, 8192, 3, &bw);
		tap_ok(!ret && bw.threads == 2 && bw.best_gbs >= bw.median_gbs && bw.median_gbs > 0,
		       "read bench reports best >= median > 0");
		tap_ok(tm_bench_read(&m, m.size + 1, pool, 0, 3, &bw) == -EINVAL,
		       "read bench refuses more bytes than the mapping has");
		tm_pool_destroy(pool);
		tm_unmap(&m);
	}
	tap_ok(tm_map_anon(&m, (size_t)1 << 50, TM_PAGES_4K, 0) == -ENOMEM &&
	       strstr(tm_strerror(), "available"), "a size beyond available memory is refused: %s", tm_strerror());
	tap_ok(tm_map_anon(&m, 0, TM_PAGES_4K, 0) == -EINVAL, "size 0 is refused");
	tap_ok(tm_map_file(&m, "/nonexistent/x.gguf", 0) == -ENOENT && strstr(tm_strerror(), "/nonexistent/x.gguf"),
	       "a missing file is named: %s", tm_strerror());
	tap_ok(tm_map_pmem(&m, "/dev/null", 0, 0) == -EINVAL, "a char device that is not devdax is refused: %s",
	       tm_strerror());

	char path[] = "/tmp/tm-bench-XXXXXX";
	int fd = mkstemp(path);

	tap_ok(fd >= 0 && ftruncate(fd, 4 << 20) == 0, "temp file");
	ret = tm_map_pmem(&m, path, 0, 0);
	tap_ok(ret == -EINVAL && strstr(tm_strerror(), "DAX"), "a file off DAX is refused as PMEM: %s", tm_strerror());
	if (!ret)
		tm_unmap(&m);
	ret = tm_map_file(&m, path, 0);
	tap_ok(!ret && m.size == 4 << 20 && m.tier == TM_TIER_FILE, "a plain file maps read-only");
	if (!ret)
		tm_unmap(&m);
	close(fd);
	unlink(path);
}

int main(void)
{
	test_stream();
	test_ceiling();
	test_mappings();
	return tap_done();
}
