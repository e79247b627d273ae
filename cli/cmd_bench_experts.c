// SPDX-License-Identifier: MIT
/*
 * tiermem bench --expert-trace: replay a routing trace through the expert
 * cache's policies and print, for each, the hit rate, the bytes a token reads
 * from each tier and the tok/s the cost model predicts. Runs no model.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"

#define CMD "bench"

static const char usage_text[] =
	"usage: tiermem bench --expert-trace FILE --expert-cache SIZE [options]\n"
	"Replays a routing trace (tiermem synth --expert-trace, tiermem profile --trace)\n"
	"through per-layer expert caches and prints, per policy: hit rate, slow- and\n"
	"fast-tier bytes per token, and predicted tok/s by the planner's cost model on a\n"
	"fast and a slow tier (Documentation/tiermem-experts.rst).\n"
	"No model runs.\n"
	"\n"
	"  --expert-cache SIZE  slots per MoE layer (on average with --split heat): N (experts), N% (of each layer's\n"
	"                       experts), or bytes with a unit (64G: split evenly over the\n"
	"                       trace's MoE layers, whole experts)\n"
	"  --policy P[,P...]    lru, lfu, lrfu, mix, static, opt (default: all; static holds\n"
	"                       each layer's most used experts over the whole trace; opt\n"
	"                       is Belady's, which knows the future: a bound, not a policy)\n"
	"  --half-life H        LFU/LRFU aging half-life in tokens (default 1024 / 16)\n"
	"  --predict            also replay each policy with prefetch of the trace's\n"
	"                       predicted experts (records with \"p\")\n"
	"  --fused              a missed expert is copied into its slot by the read that\n"
	"                       computes it (no second slow-tier read); default: copied\n"
	"                       by a separate read\n"
	"  --fast-gbps X        fast-tier read GB/s (default 100: DDR4 of the seed's rig)\n"
	"  --slow-gbps X        slow-tier read GB/s (default 39: six Optane DIMMs)\n"
	"  --overlap            both tiers read at once over shared channels: time =\n"
	"                       max(slow / slow GB/s, (fast + slow) / fast GB/s); default:\n"
	"                       one after the other, fast / fast GB/s + slow / slow GB/s\n"
	"  --split S            even (default): every MoE layer the same slots; heat: the\n"
	"                       same total split by heat (tm_xheat_split: the globally\n"
	"                       hottest layer/rank pairs, after a floor per layer)\n"
	"  --split-floor F      with --split heat: each MoE layer keeps at least F x the\n"
	"                       even share (default 0.5; 0 to 1)\n"
	"  --expert-heat FILE   the heat for --split heat (tiermem profile); default: the\n"
	"                       trace's own first half of tokens\n"
	"  --json               one JSON object per line instead of a table\n";

/* SIZE -> slots per layer. */
static int parse_cache(const char *s, const struct tm_xtrace *t, int n_moe, long *slots)
{
	size_t n = strlen(s);
	uint64_t bytes;
	double pct;

	if (n && s[n - 1] == '%') {
		char buf[32];

		if (n >= sizeof(buf))
			return usage_error(CMD, "--expert-cache: '%s' is not a size", s);
		memcpy(buf, s, n - 1);
		buf[n - 1] = '\0';
		if (parse_double("--expert-cache", buf, 0, 100, &pct))
			return EXIT_USAGE;
		*slots = (long)(pct / 100.0 * t->model.n_expert + 0.5);
	} else if (n && s[n - 1] >= '0' && s[n - 1] <= '9') {
		if (parse_long("--expert-cache", s, 1, TM_XTRACE_MAX_EXPERTS, slots))
			return EXIT_USAGE;
	} else {
		if (parse_size("--expert-cache", s, &bytes))
			return EXIT_USAGE;
		if (!t->model.expert_bytes)
			return usage_error(CMD, "--expert-cache %s: the trace gives no expert size; give slots (N or N%%)", s);
		*slots = (long)(bytes / t->model.expert_bytes / (uint64_t)n_moe);
	}
	if (*slots < 1)
		return usage_error(CMD, "--expert-cache %s: less than one expert per layer", s);
	if (*slots > t->model.n_expert)
		return usage_error(CMD, "--expert-cache %s: %ld slots per layer, but a layer has only %d experts",
				   s, *slots, t->model.n_expert);
	return 0;
}

/* How many layers the trace routes in; moe[l] says which (n_layer of them). */
static int moe_layers(const struct tm_xtrace *t, bool *moe)
{
	int n = 0;

	for (size_t r = 0; r < t->n_rec; r++)
		if (!moe[t->layer[r]]) {
			moe[t->layer[r]] = true;
			n++;
		}
	return n;
}

/* --split heat: slots per layer from a heat file of the trace's model, or the trace's first half. */
static int split_by_heat(const struct tm_xtrace *t, const bool *moe, const char *path, int total,
			 double floor_share, int *slots)
{
	struct tm_xheat h;
	int err;

	if (path) {
		if ((err = tm_xheat_read(&h, path)))
			return err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
		if (h.model.n_layer != t->model.n_layer || h.model.n_expert != t->model.n_expert ||
		    (strcmp(t->model.hash, "synthetic") && strcmp(h.model.hash, t->model.hash))) {
			err = usage_error(CMD, "--expert-heat %s: the heat is of another model (%d layers of %d experts, hash %.32s) than the trace's (%d of %d, %.32s)",
					  path, h.model.n_layer, h.model.n_expert, h.model.hash, t->model.n_layer,
					  t->model.n_expert, t->model.hash);
			tm_xheat_free(&h);
			return err;
		}
	} else if ((err = tm_xheat_from_trace(&h, t, 0, (t->tok[t->n_rec - 1] + 1) / 2 + 1))) {
		return run_error(CMD, "%s", tm_strerror());
	}
	err = tm_xheat_split(&h, moe, total, floor_share, slots);
	tm_xheat_free(&h);
	return err ? usage_error(CMD, "%s", tm_strerror()) : 0;
}

static void print_row(const char *name, bool pred, const struct tm_xreplay_result *r, int n_tok,
		      bool json)
{
	const struct tm_xstats *s = &r->st;

	if (json) {
		printf("{\"policy\":\"%s\",\"predict\":%s,\"hit_rate\":%.6f,\"slow_bytes_per_token\":%.0f,"
		       "\"fast_bytes_per_token\":%.0f,\"predicted_tok_s\":%.4f,\"uses\":%llu,\"hits\":%llu,"
		       "\"misses\":%llu,\"admits\":%llu,\"evicts\":%llu,\"prefetch_issued\":%llu,"
		       "\"prefetch_used\":%llu,\"prefetch_wasted\":%llu}\n", name, pred ? "true" : "false",
		       r->hit_rate, r->slow_bytes_per_tok, r->fast_bytes_per_tok, r->pred_tok_s,
		       (unsigned long long)s->uses, (unsigned long long)s->hits,
		       (unsigned long long)s->misses, (unsigned long long)s->admits,
		       (unsigned long long)s->evicts, (unsigned long long)s->pf_issued,
		       (unsigned long long)s->pf_used, (unsigned long long)s->pf_wasted);
		return;
	}
	printf("%-8s %-7s %6.1f %%  %12.1f  %12.1f  %9.2f  %9.1f  %7.1f %7.1f\n", name, pred ? "yes" : "no",
	       100 * r->hit_rate, r->slow_bytes_per_tok / 1048576.0, r->fast_bytes_per_tok / 1048576.0,
	       r->pred_tok_s, (double)s->admits / n_tok, (double)s->pf_used / n_tok,
	       (double)s->pf_wasted / n_tok);
}

int cmd_bench_experts(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "expert-trace", required_argument, NULL, 'x' },
		{ "expert-cache", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "half-life", required_argument, NULL, 'H' },
		{ "predict", no_argument, NULL, 'P' },
		{ "fused", no_argument, NULL, 'F' },
		{ "fast-gbps", required_argument, NULL, 'f' },
		{ "slow-gbps", required_argument, NULL, 's' },
		{ "overlap", no_argument, NULL, 'O' },
		{ "json", no_argument, NULL, 'j' },
		{ "split", required_argument, NULL, 'S' },
		{ "split-floor", required_argument, NULL, 'L' },
		{ "expert-heat", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *trace = NULL, *cache = NULL, *policies = "lru,lfu,lrfu,static,opt,mix", *heat = NULL;
	bool by_heat = false, *moe = NULL;
	double floor_share = 0.5;
	int *layer_slots = NULL;
	struct tm_xreplay_opts ro = { .cost = { .fast_gbps = 100, .slow_gbps = 39 } };
	bool predict = false, json = false, want[TM_XP_COUNT] = { false };
	struct tm_xtrace t;
	long slots;
	int c, rc, n_moe, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'x': trace = optarg; break;
		case 'c': cache = optarg; break;
		case 'p': policies = optarg; break;
		case 'H':
			if (parse_double("--half-life", optarg, 0.01, 1e9, &ro.cache.half_life))
				return EXIT_USAGE;
			break;
		case 'P': predict = true; break;
		case 'F': ro.cost.fused_admit = true; break;
		case 'f':
			if (parse_double("--fast-gbps", optarg, 0.001, 1e6, &ro.cost.fast_gbps))
				return EXIT_USAGE;
			break;
		case 's':
			if (parse_double("--slow-gbps", optarg, 0.001, 1e6, &ro.cost.slow_gbps))
				return EXIT_USAGE;
			break;
		case 'O': ro.cost.overlap = true; break;
		case 'j': json = true; break;
		case 'S':
			if (strcmp(optarg, "even") && strcmp(optarg, "heat"))
				return usage_error(CMD, "--split: '%s' is not even or heat", optarg);
			by_heat = !strcmp(optarg, "heat");
			break;
		case 'L':
			if (parse_double("--split-floor", optarg, 0, 1, &floor_share))
				return EXIT_USAGE;
			break;
		case 'E': heat = optarg; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error(CMD, "unexpected argument '%s'", argv[optind]);
	if (!trace || !cache)
		return usage_error(CMD, "--expert-trace FILE needs --expert-cache SIZE (see --expert-trace --help)");
	for (const char *p = policies; *p;) {
		char name[16];
		size_t n = strcspn(p, ",");
		int k;

		snprintf(name, sizeof(name), "%.*s", (int)(n < 15 ? n : 15), p);
		if ((k = tm_xpolicy_parse(name)) < 0)
			return usage_error(CMD, "--policy: unknown policy '%.*s' (lru, lfu, lrfu, mix, static, opt)", (int)n, p);
		want[k] = true;
		p += n + (p[n] == ',');
	}
	if (heat && !by_heat)
		return usage_error(CMD, "--expert-heat is for --split heat");
	if ((err = tm_xtrace_read(&t, trace)))
		return err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
	moe = calloc(t.model.n_layer, sizeof(*moe));
	layer_slots = calloc(t.model.n_layer, sizeof(*layer_slots));
	if (!moe || !layer_slots) {
		rc = run_error(CMD, "out of memory");
		goto out;
	}
	n_moe = moe_layers(&t, moe);
	if (!n_moe) {
		rc = usage_error(CMD, "%s: the trace has no records", trace);
		goto out;
	}
	if ((rc = parse_cache(cache, &t, n_moe, &slots)))
		goto out;
	ro.cache.slots = (int)slots;
	/* layers the trace never routes get no slots */
	for (int l = 0; l < t.model.n_layer; l++)
		layer_slots[l] = moe[l] ? (int)slots : 0;
	if (by_heat && (rc = split_by_heat(&t, moe, heat, (int)slots * n_moe, floor_share, layer_slots)))
		goto out;
	ro.cache.layer_slots = layer_slots;
	if (!json) {
		printf("trace %s: %s, %d experts top-%d, %d MoE layers of %d, %d tokens, model %s\n  (%s)\n",
		       trace, t.model.arch, t.model.n_expert, t.model.n_expert_used, n_moe, t.model.n_layer,
		       t.n_tokens, t.model.hash, t.source[0] ? t.source : "no source given");
		printf("cache: %ld slots per %s (%.1f %% of the experts, %.2f GiB); fast %g GB/s, slow %g GB/s%s;"
		       " admission %s\n", slots, by_heat ? "MoE layer on average" : "layer", 100.0 * slots / t.model.n_expert,
		       (double)slots * n_moe * t.model.expert_bytes / 1073741824.0, ro.cost.fast_gbps,
		       ro.cost.slow_gbps, ro.cost.overlap ? " at once on shared channels" : " one after the other",
		       ro.cost.fused_admit ? "fused with the miss's read" : "a separate copy");
		if (by_heat) {
			int lo = t.model.n_expert, hi = 0;

			for (int l = 0; l < t.model.n_layer; l++)
				if (moe[l]) {
					lo = layer_slots[l] < lo ? layer_slots[l] : lo;
					hi = layer_slots[l] > hi ? layer_slots[l] : hi;
				}
			printf("split by heat (%s, floor %.2f of the even share): %d to %d slots per layer\n",
			       heat ? heat : "the trace's first half", floor_share, lo, hi);
		}
		printf("policy   predict   hits     slow MiB/tok  fast MiB/tok  pred tok/s admits/tok  pf used/wasted per tok\n");
	}
	rc = 0;
	for (int p = 0; p < TM_XP_COUNT && !rc; p++) {
		for (int pr = 0; pr <= (predict ? 1 : 0) && !rc; pr++) {
			struct tm_xreplay_result r;

			if (!want[p] || (pr && p == TM_XP_STATIC))
				continue;
			ro.cache.policy = (enum tm_xpolicy)p;
			ro.predict = pr;
			if ((err = tm_xreplay(&t, &ro, &r)))
				rc = run_error(CMD, "%s", tm_strerror());
			else
				print_row(tm_xpolicy_name(ro.cache.policy), pr, &r, t.n_tokens, json);
		}
	}
out:
	free(moe);
	free(layer_slots);
	tm_xtrace_free(&t);
	return rc;
}
