// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "kernels/stream.h"
#include "tiermem/bench.h"
#include "tiermem/error.h"

const struct tm_ref_tier tm_ref_tiers[] = {
	{ "HBM3e",                  1400, 4800 },
	{ "GDDR6X (RTX 3060)",       360,  360 },
	{ "DDR5-6000 8-channel",     280,  280 },
	{ "DDR4-3200 dual-channel",   50,   50 },
	{ "Optane PMem, 6 DIMMs",     30,   40 },
	{ "NVMe Gen5",                14,   14 },
};
const int tm_n_ref_tiers = sizeof(tm_ref_tiers) / sizeof(tm_ref_tiers[0]);

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double tm_cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double tm_median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double tm_decode_ceiling(double read_gbs, double active_bytes)
{
	if (read_gbs <= 0 || active_bytes <= 0)
		return 0;
	return read_gbs * 1e9 / active_bytes;
}

/*
 * Threads take 2 MiB chunks from a shared counter rather than fixed halves:
 * on a shared host one vCPU is often slower than the other, and a fixed split
 * would measure twice the slower one instead of what the memory delivers.
 */
#define READ_CHUNK (2UL << 20)

struct read_job {
	const struct tm_range *r;
	int n;
	size_t total;
	size_t prefetch, every;
	_Alignas(64) atomic_size_t next;
	_Alignas(64) volatile uint64_t sink[64];	/* one slot per thread, 8 apart */
};

static size_t whole_chunks(size_t n)
{
	return (n + READ_CHUNK - 1) / READ_CHUNK * READ_CHUNK;
}

/*
 * The chunk at cursor offset off, each range rounded up to whole chunks so no
 * chunk straddles two ranges: its pointer and length (never 0).
 */
static const char *chunk_at(const struct read_job *j, size_t off, size_t *len)
{
	int i = 0;

	while (off >= whole_chunks(j->r[i].n)) {
		off -= whole_chunks(j->r[i].n);
		i++;
	}
	*len = j->r[i].n - off < READ_CHUNK ? j->r[i].n - off : READ_CHUNK;
	return (const char *)j->r[i].p + off;
}

static void read_share(void *p, int ith, int nth)
{
	struct read_job *j = p;
	uint64_t sum = 0;
	size_t off, len;

	(void)nth;
	while ((off = atomic_fetch_add_explicit(&j->next, READ_CHUNK, memory_order_relaxed)) < j->total) {
		const char *c = chunk_at(j, off, &len);

		sum ^= tm_stream_read(c, len, j->prefetch, j->every);
	}
	j->sink[(ith * 8) % 64] = sum;
}

void tm_read_ranges(struct tm_pool *pool, const struct tm_range *r, int n, size_t prefetch, size_t every)
{
	static struct read_job job;	/* aligned members; one reader at a time */
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += whole_chunks(r[i].n);
	job.r = r;
	job.n = n;
	job.prefetch = prefetch;
	job.every = every;
	job.total = total;
	atomic_store(&job.next, 0);
	if (total)
		tm_pool_run(pool, read_share, &job);
}

/*
 * Which loop reads fastest depends on the CPU: an AMD EPYC Zen 3 guest read
 * 22 GB/s without prefetch and 16 with each line prefetched 8 KiB ahead (and
 * its decode showed 111 % of the slower loop); a Zen 5 one reads fastest with
 * a line per 2 KiB.
 */
static const size_t read_every[TM_READ_LOOPS] = { 0, 64, 2048 };

int tm_read_fastest(struct tm_pool *pool, const struct tm_range *r, int n, size_t prefetch, int first,
		    double *t, double *cpu)
{
	int loops = prefetch ? TM_READ_LOOPS : 1, won = 0;
	double best = 0, best_cpu = 0;

	for (int k = 0; k < loops; k++) {
		int l = (first + k) % loops;
		double c0 = tm_cpu_now(), t0 = now_s(), dt, dc;

		tm_read_ranges(pool, r, n, read_every[l] ? prefetch : 0, read_every[l]);
		dt = now_s() - t0;
		dc = tm_cpu_now() - c0;
		if (k == 0 || dt < best) {
			best = dt;
			best_cpu = dc;
			won = l;
		}
	}
	if (t)
		*t = best;
	if (cpu)
		*cpu = best_cpu;
	return won;
}

int tm_bench_read(const struct tm_mapping *m, size_t bytes, struct tm_pool *pool,
		  size_t prefetch, int passes, struct tm_bw *out)
{
	struct tm_range r = { m->addr, bytes };
	double *gbs;

	if (!bytes || bytes > m->size || passes < 1)
		return tm_err(-EINVAL, "bench: %zu bytes of a %zu-byte mapping, %d passes", bytes, m->size, passes);
	gbs = calloc(passes, sizeof(*gbs));
	if (!gbs)
		return tm_err(-ENOMEM, "bench: out of memory");
	tm_read_ranges(pool, &r, 1, prefetch, 64);	/* warm-up: TLB, page tables, clocks */
	for (int i = 0; i < passes; i++) {
		double t = now_s();

		tm_read_ranges(pool, &r, 1, prefetch, 64);
		gbs[i] = bytes / (now_s() - t) / 1e9;
	}
	out->threads = tm_pool_threads(pool);
	out->prefetch = prefetch;
	out->passes = passes;
	out->best_gbs = 0;
	for (int i = 0; i < passes; i++)
		if (gbs[i] > out->best_gbs)
			out->best_gbs = gbs[i];
	out->median_gbs = tm_median(gbs, passes);
	free(gbs);
	return 0;
}

static long faults_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

int tm_bench_first_touch(const struct tm_mapping *m, int writable, struct tm_touch *out)
{
	volatile char *p = m->addr;
	unsigned long sum = 0;
	long f0;
	double t0, gib = m->size / (double)(1UL << 30);

	if (!m->size)
		return tm_err(-EINVAL, "bench: empty mapping");
	f0 = faults_now();
	t0 = now_s();
	for (size_t off = 0; off < m->size; off += 4096) {
		if (writable)
			p[off] = 1;
		else
			sum += p[off];
	}
	out->ms_per_gib = (now_s() - t0) * 1e3 / gib;
	out->faults_per_gib = (faults_now() - f0) / gib;
	(void)sum;
	out->bytes = m->size;
	return 0;
}
