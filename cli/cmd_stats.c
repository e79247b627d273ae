// SPDX-License-Identifier: MIT
/*
 * tiermem stats: the module's counters per tier and per region (faults by
 * page size, bytes mapped, live mappings, bytes copied, media errors, pinned
 * pages, exports, and bytes read as reported by the readers through the
 * counters page), and every running `tiermem run`'s per-tier counters from
 * its file in TIERMEM_HOME/run (these need no module). With --watch, a
 * sample every SEC seconds and the read bandwidth in GB/s between samples.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiermem/device.h"
#include "tiermem/error.h"
#include "tiermem/runstat.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: tiermem stats [--watch SEC] [--count N] [--json] [--device PATH]\n\n"
		   "Counters of /dev/tiermem per tier (ddr, pmem) and per region that you may read:\n"
		   "faults by page size (pte 4 KiB, pmd 2 MiB, pud 1 GiB), bytes mapped, live\n"
		   "mappings, bytes copied in the kernel, media errors, pinned pages, live dma-buf\n"
		   "exports, and bytes read (added by the programs that stream the data); without\n"
		   "the module, none of these.\n"
		   "Then every `tiermem run` in progress (module or not: each publishes its counters\n"
		   "in TIERMEM_HOME/run/PID.stat): per tier, bytes read per token, GB/s, the share\n"
		   "of that tier's bandwidth (measured by the run), and predicted against measured\n"
		   "tok/s; averages over the decode so far, or over the last interval with --watch.\n"
		   "A run with --expert-cache adds its cache: hits in total and per layer group,\n"
		   "misses, admissions and prefetches (used, wasted, late) per token, bytes per\n"
		   "token from the cache and from the slow tier, and the planner's predicted tok/s\n"
		   "at that hit rate (averages over the decode so far, as the run's summary).\n\n"
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

/* ---- runs, from their counters files ---- */

struct runs {
	struct tm_runstat *v;
	size_t n;
};

struct run_fig {
	double tps, pred;
	double per_tok[TM_MODEL_MAX_MAPS], gbps[TM_MODEL_MAX_MAPS];
};

/* Over the decode so far, or since prev (the same pid) when there is one. */
static void run_figures(const struct tm_runstat *r, const struct runs *prev, double dt, struct run_fig *f)
{
	const struct tm_runstat *p = NULL;
	double tok, t;

	for (size_t j = 0; prev && j < prev->n; j++)
		if (prev->v[j].pid == r->pid && prev->v[j].start_ticks == r->start_ticks)
			p = &prev->v[j];
	tok = (double)r->n_decoded - (p ? (double)p->n_decoded : 0);
	t = p ? dt : r->t_decode;
	f->tps = t > 0 ? tok / t : 0;
	for (uint32_t i = 0; i < r->n_tiers; i++) {
		double b = (double)r->tier_decode_bytes[i] - (p ? (double)p->tier_decode_bytes[i] : 0);

		f->per_tok[i] = tok > 0 ? b / tok : 0;
		f->gbps[i] = t > 0 ? b / t / 1e9 : 0;
	}
	f->pred = tm_run_predict_tps(r->tiers, f->per_tok, (int)r->n_tiers);
}

/* A JSON string, escaped (a model path may hold anything). */
static void json_string_print(const char *str)
{
	json_t *j = json_string(str);
	char *d = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

	fputs(d ? d : "null", stdout);
	free(d);
	json_decref(j);
}

static const char *const run_states[] = { "prefill", "decoding", "done" };

static double share(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

/* A run's expert cache (run --expert-cache): its counters since decode began. */
static void experts_text(const struct tm_runstat_experts *x, uint64_t n_decoded)
{
	double nt = n_decoded ? (double)n_decoded : 1;

	if (!x->on)
		return;
	printf("  experts: %d slots over %d MoE layers of %d experts, %s: hits %.1f %% (layers",
	       x->slots, x->n_moe_layers, x->n_expert, x->policy, 100 * share(x->total.hits, x->total.uses));
	for (uint32_t g = 0; g < x->n_groups; g++)
		printf("%s %d-%d %.1f %%", g ? "," : "", x->groups[g].first_layer, x->groups[g].last_layer,
		       100 * share(x->groups[g].hits, x->groups[g].uses));
	printf(")\n  experts per token: %.1f misses, %.1f admitted, prefetches %.1f used, %.1f wasted, %.1f late\n",
	       x->total.misses / nt, x->total.admits / nt, x->total.pf_used / nt, x->total.pf_wasted / nt,
	       x->total.pf_late / nt);
	printf("  experts per token: %.2f MiB from the cache, %.2f MiB of missed experts from the slow tier, %.2f MiB copied;"
	       " predicted at %g/%g GB/s: %.2f tok/s, %.2f without the cache\n",
	       x->cache_bytes_per_token / 1048576.0, x->slow_expert_bytes_per_token / 1048576.0,
	       x->copy_bytes_per_token / 1048576.0, x->rig_fast_gbps, x->rig_slow_gbps, x->predicted_tps,
	       x->predicted_tps_without);
}

static void xgroup_json(const struct tm_runstat_xgroup *g)
{
	printf("{\"first_layer\": %d, \"last_layer\": %d, \"uses\": %llu, \"hits\": %llu, \"misses\": %llu, "
	       "\"admits\": %llu, \"prefetch_issued\": %llu, \"prefetch_used\": %llu, \"prefetch_wasted\": %llu, "
	       "\"prefetch_late\": %llu, \"hit_rate\": %.6f}", g->first_layer, g->last_layer,
	       (unsigned long long)g->uses, (unsigned long long)g->hits, (unsigned long long)g->misses,
	       (unsigned long long)g->admits, (unsigned long long)g->pf_issued, (unsigned long long)g->pf_used,
	       (unsigned long long)g->pf_wasted, (unsigned long long)g->pf_late, share(g->hits, g->uses));
}

static void experts_json(const struct tm_runstat_experts *x)
{
	if (!x->on) {
		printf(", \"experts\": null");
		return;
	}
	printf(", \"experts\": {\"slots\": %d, \"n_expert\": %d, \"moe_layers\": %d, \"policy\": \"%s\", \"total\": ",
	       x->slots, x->n_expert, x->n_moe_layers, x->policy);
	xgroup_json(&x->total);
	printf(", \"layer_groups\": [");
	for (uint32_t g = 0; g < x->n_groups; g++) {
		printf("%s", g ? ", " : "");
		xgroup_json(&x->groups[g]);
	}
	printf("], \"cache_bytes_per_token\": %.1f, \"hit_bytes_per_token\": %.1f, \"slow_bytes_per_token\": %.1f, "
	       "\"slow_expert_bytes_per_token\": %.1f, \"copy_bytes_per_token\": %.1f, \"rig_fast_gbps\": %g, "
	       "\"rig_slow_gbps\": %g, \"predicted_tps_rig\": %.4f, \"predicted_tps_rig_without_cache\": %.4f}",
	       x->cache_bytes_per_token, x->hit_bytes_per_token, x->slow_bytes_per_token,
	       x->slow_expert_bytes_per_token, x->copy_bytes_per_token, x->rig_fast_gbps, x->rig_slow_gbps,
	       x->predicted_tps, x->predicted_tps_without);
}

static void print_runs_text(const struct runs *runs, const struct runs *prev, double dt)
{
	if (!runs->n) {
		printf("no tiermem run in progress\n");
		return;
	}
	for (size_t k = 0; k < runs->n; k++) {
		const struct tm_runstat *r = &runs->v[k];
		struct run_fig f;

		run_figures(r, prev, dt, &f);
		printf("run %d: %s, %s, %llu tokens decoded: %.2f tok/s, predicted %.2f\n", r->pid, r->model,
		       run_states[r->decoding < 3 ? r->decoding : 2], (unsigned long long)r->n_decoded, f.tps, f.pred);
		printf("  %-6s %-10s %14s %10s %11s %7s\n", "tier", "backend", "read/token", "GB/s", "bench GB/s",
		       "share");
		for (uint32_t i = 0; i < r->n_tiers; i++)
			printf("  %-6s %-10s %10.2f MiB %10.3f %11.2f %6.1f%%\n", r->tiers[i].tier, r->tiers[i].backend,
			       f.per_tok[i] / 1048576.0, f.gbps[i], r->tiers[i].bench_gbps,
			       r->tiers[i].bench_gbps > 0 ? 100 * f.gbps[i] / r->tiers[i].bench_gbps : 0);
		experts_text(&r->experts, r->n_decoded);
	}
}

static void print_runs_json(const struct runs *runs, const struct runs *prev, double dt, int pretty)
{
	const char *nl = pretty ? "\n    " : " ";

	printf("\"runs\": [");
	for (size_t k = 0; k < runs->n; k++) {
		const struct tm_runstat *r = &runs->v[k];
		struct run_fig f;

		run_figures(r, prev, dt, &f);
		printf("%s%s{\"pid\": %d, \"state\": \"%s\", \"n_decoded\": %llu, \"tok_per_s\": %.4f, "
		       "\"predicted_tok_per_s\": %.4f, \"model\": ", k ? "," : "", nl, r->pid,
		       run_states[r->decoding < 3 ? r->decoding : 2], (unsigned long long)r->n_decoded, f.tps, f.pred);
		json_string_print(r->model);
		printf(", \"tiers\": [");
		for (uint32_t i = 0; i < r->n_tiers; i++)
			printf("%s{\"tier\": \"%s\", \"backend\": \"%s\", \"bytes_read\": %llu, "
			       "\"read_per_token\": %.1f, \"read_gbps\": %.4f, \"bench_gbps\": %.4f, \"share\": %.4f}",
			       i ? ", " : "", r->tiers[i].tier, r->tiers[i].backend,
			       (unsigned long long)r->tiers[i].bytes, f.per_tok[i], f.gbps[i], r->tiers[i].bench_gbps,
			       r->tiers[i].bench_gbps > 0 ? f.gbps[i] / r->tiers[i].bench_gbps : 0);
		printf("]");
		experts_json(&r->experts);
		printf("}");
	}
	printf("%s]", runs->n && pretty ? "\n  " : "");
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

static void print_json(const struct sample *s, bool module, const struct runs *runs, const struct runs *prev,
		       double dt, int pretty)
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
	printf("%s],%s\"module\": %s,%s", pretty ? "\n  " : "", pretty ? "\n  " : " ", module ? "true" : "false",
	       pretty ? "\n  " : " ");
	print_runs_json(runs, prev, dt, pretty);
	printf("%s}\n", pretty ? "\n" : "");
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
	struct runs runs = { 0 }, prev_runs = { 0 };
	char dir[4096];
	bool module;
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

	if (tm_runstat_dir(dir, sizeof(dir)))
		return run_error("stats", "%s", tm_strerror());
	/* without the module (or another --device) the runs' own counters are still there */
	module = !tm_device_open(&dev, path);
	if (!module && path)
		return run_error("stats", "%s", tm_strerror());
	if (!module && !json)
		printf("module: not loaded (%s); the runs' own counters follow\n\n", tm_strerror());
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0;; i++) {
		if (module) {
			ret = take_sample(&dev, &cur);
		} else {
			cur.rows = NULL;
			cur.n = 0;
			cur.t = now();
			ret = 0;
		}
		if (!ret)
			ret = tm_runstat_scan(dir, &runs.v, &runs.n);
		if (ret)
			break;
		if (i)
			rates(&cur, &prev);
		if (json) {
			print_json(&cur, module, &runs, i ? &prev_runs : NULL, cur.t - prev.t, !watch);
		} else {
			if (module)
				print_text(&cur);
			if (module)
				putchar('\n');
			print_runs_text(&runs, i ? &prev_runs : NULL, cur.t - prev.t);
		}
		free(prev.rows);
		prev = cur;
		cur.rows = NULL;
		free(prev_runs.v);
		prev_runs = runs;
		runs.v = NULL;
		if (!watch || (count && i + 1 >= count))
			break;
		if (!json)
			putchar('\n');
		usleep((useconds_t)(watch * 1e6));
	}
	free(prev.rows);
	free(cur.rows);
	free(prev_runs.v);
	free(runs.v);
	if (module)
		tm_device_close(&dev);
	if (ret)
		return run_error("stats", "%s", tm_strerror());
	return 0;
}
