// SPDX-License-Identifier: MIT
/*
 * tiermem bench: the read bandwidth every other figure is measured against,
 * per tier and thread count, with and without software prefetch, plus the
 * first-touch cost and the decode ceiling for a given active size.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/stream.h"
#include "tiermem/bench.h"
#include "tiermem/device.h"
#include "tiermem/error.h"
#include "tiermem/gpu.h"
#include "tiermem/model.h"

#define MAX_TIERS 16
#define DEFAULT_ACTIVE 16.9e9	/* ~30B active parameters at q4_K_M */

struct bench_tier {
	const char *name;		/* "anon-4k", "anon-thp", "hugetlb", or a PMEM path */
	enum tm_pages pages;
	int is_pmem;		/* named by the user: a PMEM path or a region */
	int is_region;		/* a /dev/tiermem region */
	struct tm_mapping map;
	size_t bytes;
	struct tm_touch touch;
	struct tm_bw bw[64][2];		/* [threads - 1][prefetch?] */
	double best_gbs;
	/* the GPU reading this mapping over PCIe: in place, by cudaMemcpy; 0: not measured, pcie_why says why */
	double pcie_gbs, pcie_copy_gbs;
	char pcie_why[200];
};

struct bench_opts {
	uint64_t size;
	long threads, passes;
	uint64_t prefetch;
	double active;
	const char *model;	/* where active came from, if from a model */
	int json;
	int explicit_ddr;	/* --tier given: a tier that cannot be mapped is an error */
	struct bench_tier tiers[MAX_TIERS];
	int ntiers;
	/*
	 * The GPU's tiers, where a GPU exists: gpu (device memory read by a
	 * CUDA kernel) and pcie (pinned host memory read by the GPU: in place by
	 * a kernel, and by cudaMemcpy). --tier gpu / --tier pcie ask for them
	 * alone, and then a missing GPU is an error.
	 */
	bool want_gpu, want_pcie;
	struct tm_gpu_info gpu;
	double gpu_gbs;		/* 0: not measured, gpu_why says why */
	char gpu_why[256];
	double pcie_gbs, pcie_copy_gbs;	/* 0: not measured, pcie_why says why */
	char pcie_why[256];
};

static const char usage_text[] =
	"usage: tiermem bench [options]\n"
	"Streams each memory tier with vectorised loads on 1..N pinned threads and prints\n"
	"read GB/s (best and median of the timed passes; 1 GB = 1e9 bytes), the cost of\n"
	"first touch, and the decode ceiling: tokens/s = read GB/s / active bytes per token.\n"
	"Where an NVIDIA GPU and libtiermem-cuda.so exist, also the gpu tier (SIZE bytes of\n"
	"device memory read by a CUDA kernel) and the pcie tier: each host tier's mapping\n"
	"(or, with --tier pcie alone, SIZE bytes of anonymous memory), pinned, read by the\n"
	"GPU in place by a CUDA kernel, as -ot REGEX=pcie reads weights, and by cudaMemcpy\n"
	"into VRAM; medians of the passes. Else a line says why not.\n"
	"\n"
	"  --size SIZE          bytes streamed per tier (default: 1G or 4x the last-level cache)\n"
	"  -t, --threads N      measure 1..N threads (default: the CPUs this process may use)\n"
	"  --passes N           timed passes per configuration, after one warm-up (default 10)\n"
	"  --prefetch BYTES     software prefetch distance of the prefetch runs (default 8K)\n"
	"  --tier NAME          tier to measure: anon-4k, anon-thp, hugetlb, gpu, pcie\n"
	"                       (repeatable; default all; hugetlb needs reserved 2 MiB pages;\n"
	"                       gpu and pcie need a GPU, and named here without one they are\n"
	"                       an error)\n"
	"  --pmem PATH          also measure PMEM: a devdax device (/dev/daxX.Y) or a file on\n"
	"                       a DAX filesystem (repeatable)\n"
	"  --region NAME        also measure a /dev/tiermem region (DDR or PMEM tier; needs\n"
	"                       the module); the bytes read are added to its counters\n"
	"  --active-bytes SIZE  weight bytes read per token for the ceiling (default 16.9e9,\n"
	"                       ~30B active parameters at q4_K_M)\n"
	"  --model FILE         take the active bytes from a GGUF model instead: every dense\n"
	"                       weight, one embedding row, and for MoE the router plus the\n"
	"                       experts used per token\n"
	"  --json               one JSON object instead of tables\n"
	"  --expert-trace FILE  replay an MoE routing trace through expert-cache policies\n"
	"                       instead (tiermem bench --expert-trace x --help)\n"
	"\n"
	"tiermem bench --decode MODEL | --name NAME [...]: the share of this ceiling that\n"
	"decode of the model reaches, measured token by token in one process\n"
	"(tiermem bench --decode x --help).\n";

static size_t default_size(void)
{
	long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
	size_t size = 1UL << 30;

	if (llc > 0 && (size_t)llc * 4 > size)
		size = (size_t)llc * 4;
	return size;
}

static int add_tier(struct bench_opts *o, const char *name, int is_pmem, int is_region)
{
	static const char *const ddr[] = { "anon-4k", "anon-thp", "hugetlb" };
	struct bench_tier *t;

	if (o->ntiers == MAX_TIERS)
		return usage_error("bench", "at most %d tiers", MAX_TIERS);
	t = &o->tiers[o->ntiers];
	t->name = name;
	t->is_pmem = is_pmem;
	t->is_region = is_region;
	if (!is_pmem && (!strcmp(name, "gpu") || !strcmp(name, "pcie"))) {
		*(!strcmp(name, "gpu") ? &o->want_gpu : &o->want_pcie) = true;
		return 0;
	}
	if (!is_pmem) {
		int k = -1;

		for (int i = 0; i < 3; i++)
			if (!strcmp(name, ddr[i]))
				k = i;
		if (k < 0)
			return usage_error("bench", "--tier: unknown tier '%s' (anon-4k, anon-thp, hugetlb, gpu, pcie)", name);
		t->pages = (enum tm_pages)k;
	}
	o->ntiers++;
	return 0;
}

static int model_active_bytes(const char *path, double *active)
{
	struct tm_model m;
	int ret = tm_model_load(&m, path);

	if (ret)
		return tm_model_err_is_input(ret) ? usage_error("bench", "%s", tm_strerror())
						  : run_error("bench", "%s", tm_strerror());
	*active = (double)m.bytes_per_token;
	tm_model_free(&m);
	return 0;
}

static int parse_opts(struct bench_opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "passes", required_argument, NULL, 'n' },
		{ "prefetch", required_argument, NULL, 'p' },
		{ "tier", required_argument, NULL, 'T' },
		{ "pmem", required_argument, NULL, 'P' },
		{ "region", required_argument, NULL, 'R' },
		{ "active-bytes", required_argument, NULL, 'a' },
		{ "model", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int c, have_ddr = 0, ret;
	uint64_t v;

	o->size = default_size();
	o->threads = ncpu > 0 ? (ncpu > 64 ? 64 : ncpu) : 1;
	o->passes = 10;
	o->prefetch = 8192;
	o->active = DEFAULT_ACTIVE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_size("--size", optarg, &o->size))
				return EXIT_USAGE;
			if (o->size < (1 << 20))
				return usage_error("bench", "--size: at least 1M");
			break;
		case 't':
			if (parse_long("--threads", optarg, 1, 64, &o->threads))
				return EXIT_USAGE;
			break;
		case 'n':
			if (parse_long("--passes", optarg, 1, 10000, &o->passes))
				return EXIT_USAGE;
			break;
		case 'p':
			if (parse_size("--prefetch", optarg, &o->prefetch))
				return EXIT_USAGE;
			if (o->prefetch == 0 || o->prefetch > (1 << 20))
				return usage_error("bench", "--prefetch: between 1 and 1M bytes");
			break;
		case 'T':
			if ((ret = add_tier(o, optarg, 0, 0)))
				return ret;
			have_ddr = 1;
			break;
		case 'P':
			if ((ret = add_tier(o, optarg, 1, 0)))
				return ret;
			break;
		case 'R':
			if ((ret = add_tier(o, optarg, 1, 1)))
				return ret;
			break;
		case 'a':
			if (parse_size("--active-bytes", optarg, &v))
				return EXIT_USAGE;
			if (!v)
				return usage_error("bench", "--active-bytes: must be positive");
			o->active = (double)v;
			break;
		case 'm':
			if ((ret = model_active_bytes(optarg, &o->active)))
				return ret;
			o->model = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error("bench", "unexpected argument '%s'", argv[optind]);
	if (o->threads > ncpu * 4)
		return usage_error("bench", "--threads: %ld is more than 4x the %ld CPUs here", o->threads, ncpu);
	o->explicit_ddr = have_ddr;
	/* a GPU tier asked for by name is checked before anything is measured */
	if ((o->want_gpu || o->want_pcie) && tm_gpu_probe(&o->gpu))
		return usage_error("bench", "--tier %s: %s", o->want_pcie ? "pcie" : "gpu", tm_strerror());
	if (!have_ddr) {
		/* DDR tiers go first so tables read from slow-to-fast setups alike */
		int npmem = o->ntiers;
		struct bench_tier pmem[MAX_TIERS];

		if (npmem + 3 > MAX_TIERS)
			return usage_error("bench", "too many --pmem paths");
		memcpy(pmem, o->tiers, sizeof(pmem[0]) * npmem);
		o->ntiers = 0;
		add_tier(o, "anon-4k", 0, 0);
		add_tier(o, "anon-thp", 0, 0);
		add_tier(o, "hugetlb", 0, 0);
		memcpy(&o->tiers[3], pmem, sizeof(pmem[0]) * npmem);
		o->ntiers += npmem;
	}
	return 0;
}

static int map_tier(struct bench_opts *o, struct bench_tier *t)
{
	int ret;

	if (t->is_region)
		ret = tm_map_region(&t->map, t->name, 0);
	else if (t->is_pmem)
		ret = tm_map_pmem(&t->map, t->name, 0, 0);
	else
		ret = tm_map_anon(&t->map, o->size, t->pages, 0);
	if (!ret)
		t->bytes = t->map.size < o->size ? t->map.size : o->size;
	return ret;
}

/*
 * Map every tier before measuring, so a bad path or a size that does not fit
 * fails before any figure is printed; PMEM paths first, the likeliest mistakes.
 * hugetlb without reserved pages is left out of the default set, and said so.
 */
static int map_tiers(struct bench_opts *o)
{
	int n = 0;

	for (int pass = 1; pass >= 0; pass--)
		for (int i = 0; i < o->ntiers; i++) {
			struct bench_tier *t = &o->tiers[i];

			if (t->is_pmem != pass || !map_tier(o, t))
				continue;
			if (!t->is_pmem && t->pages == TM_PAGES_HUGETLB && !o->explicit_ddr) {
				fprintf(stderr, "tiermem bench: hugetlb left out: %s\n", tm_strerror());
				t->name = NULL;
				continue;
			}
			for (int j = 0; j < o->ntiers; j++)
				tm_unmap(&o->tiers[j].map);
			return usage_error("bench", "%s", tm_strerror());
		}
	for (int i = 0; i < o->ntiers; i++)
		if (o->tiers[i].name)
			o->tiers[n++] = o->tiers[i];
	o->ntiers = n;
	return 0;
}

static int measure(struct bench_opts *o)
{
	for (int i = 0; i < o->ntiers; i++) {
		struct bench_tier *t = &o->tiers[i];
		struct tm_mapping view = t->map;

		view.size = t->bytes;
		tm_bench_first_touch(&view, !t->is_pmem, &t->touch);
	}
	/* thread counts outermost, tiers inside: tiers are measured close together in time */
	for (int nth = 1; nth <= o->threads; nth++) {
		struct tm_pool *pool = tm_pool_create(nth, TM_POOL_PIN);

		if (!pool)
			return run_error("bench", "cannot start %d threads", nth);
		for (int i = 0; i < o->ntiers; i++) {
			struct bench_tier *t = &o->tiers[i];

			if (isatty(2))
				fprintf(stderr, "\rtiermem bench: %-24.24s %2d thread%s ", t->name, nth, nth > 1 ? "s" : " ");
			for (int pf = 0; pf < 2; pf++) {
				struct tm_bw *bw = &t->bw[nth - 1][pf];

				if (tm_bench_read(&t->map, t->bytes, pool, pf ? o->prefetch : 0, o->passes, bw)) {
					tm_pool_destroy(pool);
					return run_error("bench", "%s", tm_strerror());
				}
				if (bw->best_gbs > t->best_gbs)
					t->best_gbs = bw->best_gbs;
				/* warm-up + passes: what tiermem stats shows for the region */
				tm_counters_add_read(tm_mapping_counters(&t->map),
						     (uint64_t)t->bytes * (o->passes + 1));
			}
		}
		tm_pool_destroy(pool);
	}
	if (isatty(2))
		fprintf(stderr, "\r%60s\r", "");
	return 0;
}

/*
 * The GPU's tiers: the same bytes as each host tier, medians of the passes.
 * Measured only where libtiermem-cuda.so loads and finds a GPU (and, without
 * --tier, only then tried); elsewhere the table says why and the JSON has no
 * "gpu" / "pcie" key.
 */
static void measure_gpu(struct bench_opts *o)
{
	bool any = !o->explicit_ddr;
	struct tm_mapping host;
	int best = -1;

	if (tm_gpu_probe(&o->gpu)) {
		snprintf(o->gpu_why, sizeof(o->gpu_why), "%s", tm_strerror());
		snprintf(o->pcie_why, sizeof(o->pcie_why), "%s", tm_strerror());
		return;
	}
	if ((any || o->want_gpu) && tm_gpu_read_bench(o->size, (int)o->passes, &o->gpu_gbs)) {
		snprintf(o->gpu_why, sizeof(o->gpu_why), "%s", tm_strerror());
		o->gpu_gbs = 0;
	}
	if (!any && !o->want_pcie)
		return;
	/*
	 * Each host tier's own mapping, where it may be pinned (a PMEM tier's
	 * figure is what -ot pcie would get from it); the headline figure is
	 * the THP tier's, else the first measured.
	 */
	for (int i = 0; i < o->ntiers; i++) {
		struct bench_tier *t = &o->tiers[i];

		if (tm_gpu_pcie_bench(&t->map, t->bytes, (int)o->passes, &t->pcie_gbs, &t->pcie_copy_gbs)) {
			snprintf(t->pcie_why, sizeof(t->pcie_why), "%s", tm_strerror());
			t->pcie_gbs = t->pcie_copy_gbs = 0;
		} else if (best < 0 || (!t->is_pmem && t->pages == TM_PAGES_THP)) {
			best = i;
		}
	}
	if (best >= 0) {
		o->pcie_gbs = o->tiers[best].pcie_gbs;
		o->pcie_copy_gbs = o->tiers[best].pcie_copy_gbs;
		return;
	}
	if (o->ntiers) {
		snprintf(o->pcie_why, sizeof(o->pcie_why), "%s", o->tiers[0].pcie_why);
		return;
	}
	/* --tier pcie alone: anonymous THP memory, what the weights' mappings mostly are */
	if (tm_map_anon(&host, o->size, TM_PAGES_THP, 0)) {
		snprintf(o->pcie_why, sizeof(o->pcie_why), "%s", tm_strerror());
		return;
	}
	memset(host.addr, 0x5a, host.size);
	if (tm_gpu_pcie_bench(&host, o->size, (int)o->passes, &o->pcie_gbs, &o->pcie_copy_gbs)) {
		snprintf(o->pcie_why, sizeof(o->pcie_why), "%s", tm_strerror());
		o->pcie_gbs = o->pcie_copy_gbs = 0;
	}
	tm_unmap(&host);
}

/* A GPU tier's failure is an error only when it was asked for by name. */
static int gpu_error(const struct bench_opts *o)
{
	if (o->want_gpu && o->gpu_gbs <= 0)
		return run_error("bench", "--tier gpu: %s", o->gpu_why);
	if (o->want_pcie && o->pcie_gbs <= 0)
		return run_error("bench", "--tier pcie: %s", o->pcie_why);
	return 0;
}

static void print_gpu_table(const struct bench_opts *o)
{
	bool any = !o->explicit_ddr;

	if (o->gpu_gbs > 0)
		printf("\n%-5s %-22s %7.1f GB/s median (CUDA read kernel, %.2f GiB): ceiling %.2f tok/s\n", "gpu",
		       o->gpu.name, o->gpu_gbs, o->size / (double)(1UL << 30),
		       tm_decode_ceiling(o->gpu_gbs, o->active));
	else if (any || o->want_gpu)
		printf("\ngpu   not measured: %s\n", o->gpu_why);
	if (o->pcie_gbs > 0)
		printf("%-5s %-22s %7.1f GB/s median in place (CUDA kernel reading pinned host memory, %.2f GiB): "
		       "ceiling %.2f tok/s\n%-5s %-22s %7.1f GB/s median by cudaMemcpy into VRAM\n", "pcie",
		       o->gpu.name, o->pcie_gbs, o->size / (double)(1UL << 30),
		       tm_decode_ceiling(o->pcie_gbs, o->active), "", "", o->pcie_copy_gbs);
	else if (any || o->want_pcie)
		printf("pcie  not measured: %s\n", o->pcie_why);
	for (int i = 0; o->pcie_gbs > 0 && i < o->ntiers; i++) {
		const struct bench_tier *t = &o->tiers[i];

		if (t->pcie_gbs > 0)
			printf("      %-22.22s %7.1f GB/s in place, %7.1f GB/s cudaMemcpy (this tier's mapping, pinned)\n",
			       t->is_pmem ? t->name : t->map.backend, t->pcie_gbs, t->pcie_copy_gbs);
		else
			printf("      %-22.22s not measured: %s\n", t->is_pmem ? t->name : t->map.backend, t->pcie_why);
	}
}

static void print_table(const struct bench_opts *o)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	printf("tiermem bench: %.2f GiB per tier, %s loads, %ld passes, %ld CPUs\n",
	       o->size / (double)(1UL << 30), tm_stream_isa(), o->passes, ncpu);
	if (!o->ntiers) {	/* --tier gpu / pcie alone */
		print_gpu_table(o);
		return;
	}
	printf("\n");
	printf("%-5s %-22s %7s   %-17s %-17s\n", "", "", "", "no prefetch", "prefetch");
	printf("%-5s %-22s %7s   %-17s %-17s\n", "tier", "backend", "threads",
	       "GB/s best/median", "GB/s best/median");
	for (int i = 0; i < o->ntiers; i++) {
		const struct bench_tier *t = &o->tiers[i];

		for (int nth = 1; nth <= o->threads; nth++) {
			const struct tm_bw *a = &t->bw[nth - 1][0], *b = &t->bw[nth - 1][1];
			char name[23];

			snprintf(name, sizeof(name), "%s", t->is_pmem ? t->name : t->map.backend);
			printf("%-5s %-22s %7d   %7.1f / %-7.1f %7.1f / %-7.1f\n",
			       nth == 1 ? tm_tier_name(t->map.tier) : "", nth == 1 ? name : "",
			       nth, a->best_gbs, a->median_gbs, b->best_gbs, b->median_gbs);
		}
	}
	printf("\n(prefetch distance %llu bytes)\n\n", (unsigned long long)o->prefetch);
	printf("%-22s %12s %12s %10s %16s\n", "first touch / ceiling", "ms per GiB", "faults/GiB",
	       "best GB/s", "ceiling tok/s");
	for (int i = 0; i < o->ntiers; i++) {
		const struct bench_tier *t = &o->tiers[i];

		printf("%-22.22s %12.1f %12.0f %10.1f %16.2f\n", t->is_pmem ? t->name : t->map.backend,
		       t->touch.ms_per_gib, t->touch.faults_per_gib, t->best_gbs,
		       tm_decode_ceiling(t->best_gbs, o->active));
	}
	printf("\ndecode ceiling for %.3f GB of weights read per token%s%s:\n", o->active / 1e9,
	       o->model ? " by " : "", o->model ? o->model : "");
	printf("%-26s %16s %18s\n", "reference tier", "read GB/s", "ceiling tok/s");
	for (int i = 0; i < tm_n_ref_tiers; i++) {
		const struct tm_ref_tier *r = &tm_ref_tiers[i];
		char gbs[32], tps[32];

		if (r->gbs_lo == r->gbs_hi) {
			snprintf(gbs, sizeof(gbs), "%.0f", r->gbs_lo);
			snprintf(tps, sizeof(tps), "%.1f", tm_decode_ceiling(r->gbs_lo, o->active));
		} else {
			snprintf(gbs, sizeof(gbs), "%.0f-%.0f", r->gbs_lo, r->gbs_hi);
			snprintf(tps, sizeof(tps), "%.1f-%.1f", tm_decode_ceiling(r->gbs_lo, o->active),
				 tm_decode_ceiling(r->gbs_hi, o->active));
		}
		printf("%-26s %16s %18s\n", r->name, gbs, tps);
	}
	print_gpu_table(o);
}

static void print_json(const struct bench_opts *o)
{
	printf("{\"size\":%llu,\"isa\":\"%s\",\"passes\":%ld,\"prefetch\":%llu,\"active_bytes\":%.0f,"
	       "\"model\":\"%s\",\"tiers\":[", (unsigned long long)o->size, tm_stream_isa(), o->passes,
	       (unsigned long long)o->prefetch, o->active, o->model ? o->model : "");
	for (int i = 0; i < o->ntiers; i++) {
		const struct bench_tier *t = &o->tiers[i];

		printf("%s{\"tier\":\"%s\",\"backend\":\"%s\",\"path\":\"%s\",\"bytes\":%zu,"
		       "\"first_touch\":{\"ms_per_gib\":%.3f,\"faults_per_gib\":%.1f},\"read\":[",
		       i ? "," : "", tm_tier_name(t->map.tier), t->map.backend, t->map.path, t->bytes,
		       t->touch.ms_per_gib, t->touch.faults_per_gib);
		for (int nth = 1; nth <= o->threads; nth++)
			for (int pf = 0; pf < 2; pf++) {
				const struct tm_bw *b = &t->bw[nth - 1][pf];

				printf("%s{\"threads\":%d,\"prefetch\":%zu,\"best_gbs\":%.3f,\"median_gbs\":%.3f}",
				       nth == 1 && pf == 0 ? "" : ",", b->threads, b->prefetch,
				       b->best_gbs, b->median_gbs);
			}
		printf("],\"best_gbs\":%.3f,\"ceiling_tok_s\":%.3f", t->best_gbs,
		       tm_decode_ceiling(t->best_gbs, o->active));
		if (t->pcie_gbs > 0)
			printf(",\"pcie\":{\"median_gbs\":%.3f,\"copy_median_gbs\":%.3f}", t->pcie_gbs, t->pcie_copy_gbs);
		printf("}");
	}
	printf("]");
	if (o->gpu_gbs > 0)
		printf(",\"gpu\":{\"name\":\"%s\",\"bytes\":%llu,\"median_gbs\":%.3f,\"ceiling_tok_s\":%.3f}",
		       o->gpu.name, (unsigned long long)o->size, o->gpu_gbs, tm_decode_ceiling(o->gpu_gbs, o->active));
	if (o->pcie_gbs > 0)
		printf(",\"pcie\":{\"name\":\"%s\",\"bytes\":%llu,\"median_gbs\":%.3f,\"copy_median_gbs\":%.3f,"
		       "\"ceiling_tok_s\":%.3f}", o->gpu.name, (unsigned long long)o->size, o->pcie_gbs,
		       o->pcie_copy_gbs, tm_decode_ceiling(o->pcie_gbs, o->active));
	printf(",\"reference\":[");
	for (int i = 0; i < tm_n_ref_tiers; i++) {
		const struct tm_ref_tier *r = &tm_ref_tiers[i];

		printf("%s{\"name\":\"%s\",\"gbs_lo\":%.0f,\"gbs_hi\":%.0f,\"tok_s_lo\":%.3f,\"tok_s_hi\":%.3f}",
		       i ? "," : "", r->name, r->gbs_lo, r->gbs_hi, tm_decode_ceiling(r->gbs_lo, o->active),
		       tm_decode_ceiling(r->gbs_hi, o->active));
	}
	printf("]}\n");
}

int cmd_bench(int argc, char **argv)
{
	static struct bench_opts o;
	int ret;

	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--expert-trace", 14))
			return cmd_bench_experts(argc, argv);
		else if (!strcmp(argv[i], "--decode") || !strncmp(argv[i], "--decode=", 9) ||
			 !strcmp(argv[i], "--name") || !strncmp(argv[i], "--name=", 7))
			return cmd_bench_decode(argc, argv);
	memset(&o, 0, sizeof(o));
	ret = parse_opts(&o, argc, argv);
	if (ret)
		return ret;
	ret = map_tiers(&o);
	if (ret)
		return ret;
	ret = measure(&o);
	if (!ret) {
		measure_gpu(&o);
		ret = gpu_error(&o);
	}
	if (!ret) {
		if (o.json)
			print_json(&o);
		else
			print_table(&o);
	}
	for (int i = 0; i < o.ntiers; i++)
		tm_unmap(&o.tiers[i].map);
	return ret;
}
