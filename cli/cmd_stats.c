// SPDX-License-Identifier: MIT
/*
 * tiermem stats: the module's counters per tier and per region (faults by
 * page size, bytes mapped, live mappings, bytes copied, media errors, pinned
 * pages, exports, and bytes read as reported by the readers through the
 * counters page). With --watch, a sample every SEC seconds and the read
 * bandwidth in GB/s between samples.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiermem/device.h"
#include "tiermem/error.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: tiermem stats [--watch SEC] [--count N] [--json] [--device PATH]\n\n"
		   "Counters of /dev/tiermem per tier (ddr, pmem) and per region that you may read:\n"
		   "faults by page size (pte 4 KiB, pmd 2 MiB, pud 1 GiB), bytes mapped, live\n"
		   "mappings, bytes copied in the kernel, media errors, pinned pages, live dma-buf\n"
		   "exports, and bytes read (added by the programs that stream the data).\n\n"
		   "  --watch SEC    sample every SEC seconds (0.1 .. 3600) and show the read\n"
		   "                 bandwidth between samples in GB/s; runs until interrupted\n"
		   "  --count N      with --watch, stop after N samples\n"
		   "  --json         JSON: one object, or with --watch one object per line\n"
		   "  --device PATH  the device node (default /dev/tiermem)\n");
}

struct sample_row {
	char name[TIERMEM_NAME_MAX];	/* region name, or "" for a tier total */
	enum tm_tier tier;
	struct tiermem_counters c;
	double gbps;			/* read bandwidth since the last sample; < 0 unknown */
};

struct sample {
	struct sample_row *rows;
	size_t n;
	double t;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *tier_name(enum tm_tier t)
{
	return t == TM_TIER_PMEM ? "pmem" : "ddr";
}

/*
 * One sample: both tiers, then every region this user may open (regions are
 * opened read-only for their counters and closed again).
 */
static int take_sample(struct tm_device *dev, struct sample *s)
{
	struct tiermem_region_info *list;
	size_t n;
	int ret;

	ret = tm_region_list(dev, &list, &n);
	if (ret)
		return ret;
	s->rows = calloc(n + 2, sizeof(*s->rows));
	if (!s->rows) {
		free(list);
		return tm_err(-ENOMEM, "stats: out of memory");
	}
	s->n = 0;
	s->t = now();
	for (int t = 0; t < 2; t++) {
		struct sample_row *row = &s->rows[s->n];

		row->tier = t ? TM_TIER_PMEM : TM_TIER_DDR;
		row->gbps = -1;
		ret = tm_tier_stats(dev, row->tier, &row->c);
		if (ret)
			goto out;
		s->n++;
	}
	for (size_t i = 0; i < n; i++) {
		struct sample_row *row = &s->rows[s->n];
		struct tm_region r;

		if (list[i].flags & TIERMEM_INFO_DELETED)
			continue;
		if (tm_region_open(dev, list[i].name, 0, &r))
			continue;	/* not ours to read, or deleted since the list */
		ret = tm_region_stats(dev, &r, &row->c);
		tm_region_close(dev, &r);
		if (ret)
			continue;
		memcpy(row->name, list[i].name, sizeof(row->name));
		row->tier = r.tier;
		row->gbps = -1;
		s->n++;
	}
	ret = 0;
out:
	free(list);
	return ret;
}

/* Bandwidth of each row against the same row (tier or region name) before. */
static void rates(struct sample *cur, const struct sample *prev)
{
	double dt = cur->t - prev->t;

	for (size_t i = 0; i < cur->n; i++) {
		struct sample_row *r = &cur->rows[i];

		for (size_t j = 0; j < prev->n; j++) {
			const struct sample_row *p = &prev->rows[j];

			if (p->tier == r->tier && !strcmp(p->name, r->name) && dt > 0 &&
			    r->c.bytes_read >= p->c.bytes_read) {
				r->gbps = (double)(r->c.bytes_read - p->c.bytes_read) / dt / 1e9;
				break;
			}
		}
	}
}

#define COUNTERS(X) \
	X(faults_pte) X(faults_pmd) X(faults_pud) X(bytes_mapped) X(live_mappings) \
	X(bytes_copied) X(media_errors) X(pinned_pages) X(bytes_read) X(exports)

static void print_json_row(const struct sample_row *r, int pretty)
{
	const char *sep = pretty ? ",\n      " : ", ";

	printf("%s{\"tier\": \"%s\"", pretty ? "    " : "", tier_name(r->tier));
	if (r->name[0])
		printf("%s\"name\": \"%s\"", sep, r->name);	/* names need no escaping */
#define X(f) printf("%s\"" #f "\": %" PRIu64, sep, (uint64_t)r->c.f);
	COUNTERS(X)
#undef X
	if (r->gbps >= 0)
		printf("%s\"read_gbps\": %.3f", sep, r->gbps);
	printf("}");
}

static void print_json(const struct sample *s, int pretty)
{
	printf("{%s\"time\": %.3f,%s\"tiers\": [%s", pretty ? "\n  " : "", s->t,
	       pretty ? "\n  " : " ", pretty ? "\n" : "");
	for (int regions = 0; regions < 2; regions++) {
		int first = 1;

		if (regions)
			printf("%s],%s\"regions\": [%s", pretty ? "\n  " : "", pretty ? "\n  " : " ",
			       pretty ? "\n" : "");
		for (size_t i = 0; i < s->n; i++) {
			if (!!s->rows[i].name[0] != regions)
				continue;
			if (!first)
				printf(",%s", pretty ? "\n" : " ");
			print_json_row(&s->rows[i], pretty);
			first = 0;
		}
	}
	printf("%s]%s}\n", pretty ? "\n  " : "", pretty ? "\n" : "");
}

static void print_text(const struct sample *s)
{
	printf("%-5s %-24s %10s %10s %10s %14s %5s %14s %6s %10s %16s %7s %10s\n", "TIER", "REGION",
	       "PTE", "PMD", "PUD", "MAPPED", "LIVE", "COPIED", "MEDERR", "PINNED", "BYTES_READ",
	       "EXPORTS", "READ");
	for (size_t i = 0; i < s->n; i++) {
		const struct sample_row *r = &s->rows[i];
		const struct tiermem_counters *c = &r->c;
		char bw[32] = "-";

		if (r->gbps >= 0)
			snprintf(bw, sizeof(bw), "%.3f GB/s", r->gbps);
		printf("%-5s %-24s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %14" PRIu64 " %5" PRIu64
		       " %14" PRIu64 " %6" PRIu64 " %10" PRIu64 " %16" PRIu64 " %7" PRIu64 " %10s\n",
		       tier_name(r->tier), r->name[0] ? r->name : "(total)", (uint64_t)c->faults_pte,
		       (uint64_t)c->faults_pmd, (uint64_t)c->faults_pud, (uint64_t)c->bytes_mapped,
		       (uint64_t)c->live_mappings, (uint64_t)c->bytes_copied, (uint64_t)c->media_errors,
		       (uint64_t)c->pinned_pages, (uint64_t)c->bytes_read, (uint64_t)c->exports, bw);
	}
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "watch", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "device", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sample prev = { 0 }, cur = { 0 };
	const char *path = NULL;
	double watch = 0;
	long count = 0;
	int json = 0, c, ret;
	struct tm_device dev;

	optind = 1;
	while ((c = getopt_long(argc, argv, "w:n:jd:h", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (parse_double("--watch", optarg, 0.1, 3600, &watch))
				return EXIT_USAGE;
			break;
		case 'n':
			if (parse_long("--count", optarg, 1, 1L << 30, &count))
				return EXIT_USAGE;
			break;
		case 'j':
			json = 1;
			break;
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
		return usage_error("stats", "unexpected argument '%s'", argv[optind]);
	if (count && !watch)
		return usage_error("stats", "--count needs --watch");

	ret = tm_device_open(&dev, path);
	if (ret)
		return run_error("stats", "%s", tm_strerror());
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0;; i++) {
		ret = take_sample(&dev, &cur);
		if (ret)
			break;
		if (i)
			rates(&cur, &prev);
		if (json)
			print_json(&cur, !watch);
		else
			print_text(&cur);
		free(prev.rows);
		prev = cur;
		cur.rows = NULL;
		if (!watch || (count && i + 1 >= count))
			break;
		if (!json)
			putchar('\n');
		usleep((useconds_t)(watch * 1e6));
	}
	free(prev.rows);
	free(cur.rows);
	tm_device_close(&dev);
	if (ret)
		return run_error("stats", "%s", tm_strerror());
	return 0;
}
