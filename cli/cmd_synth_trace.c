// SPDX-License-Identifier: MIT
/*
 * tiermem synth --expert-trace: a synthetic routing trace (lib/experts/synth.c)
 * written as JSON lines, for comparing expert-cache policies without a model.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"

#define CMD "synth"

static const char usage_text[] =
	"usage: tiermem synth --expert-trace -o OUT.jsonl [options]\n"
	"Writes a synthetic MoE routing trace (format: Documentation/tiermem-experts.rst):\n"
	"per layer, Zipf popularity over a random ranking that drifts over tokens, and\n"
	"temporal locality. Defaults: a Qwen3-235B-like model (94 layers, 128 experts top-8,\n"
	"10.1 MiB per expert) and the locality at which per-layer LRU-64 hits about 67 %.\n"
	"\n"
	"  -o, --output FILE        where to write (a temp file renamed at the end)\n"
	"  --layers N --experts N --experts-used K\n"
	"  --expert-bytes SIZE      bytes of one routed expert (gate + up + down)\n"
	"  --dense-bytes SIZE       bytes a token reads besides routed experts\n"
	"  --tokens N               tokens (default 2000)\n"
	"  --zipf S                 popularity exponent (default 0.5; 0: uniform)\n"
	"  --zipf-spread X          layers' exponents run from S - X to S + X (default 0: all S)\n"
	"  --locality P             chance a choice reuses an expert of the last W tokens\n"
	"                           (default 0.21)\n"
	"  --window W               (default 8)\n"
	"  --drift D                popularity swaps per layer per token (default 0.2)\n"
	"  --predict-accuracy A     add predictions (\"p\"): each predicted expert is right with\n"
	"                           probability A (a model of a predictor, not a measured one)\n"
	"  --seed S                 (default 1)\n";

int cmd_synth_trace(int argc, char **argv)
{
	struct tm_xsynth_opts o;
	struct tm_xtrace t;
	const char *out = NULL;
	char tmp[4096];
	FILE *f;
	int err = 0;

	tm_xsynth_defaults(&o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t sz;
		double d;
		long n;

		if (!strcmp(a, "--expert-trace"))
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (!v)
			return usage_error(CMD, "%s needs a value (see --expert-trace --help)", a);
		i++;
		if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			out = v;
		} else if (!strcmp(a, "--layers") || !strcmp(a, "--experts") || !strcmp(a, "--experts-used") ||
			   !strcmp(a, "--tokens") || !strcmp(a, "--window")) {
			long hi = !strcmp(a, "--experts") ? TM_XTRACE_MAX_EXPERTS :
				  !strcmp(a, "--experts-used") ? TM_XTRACE_MAX_USED :
				  !strcmp(a, "--layers") ? 4096 : 100000000;

			if (parse_long(a, v, 1, hi, &n))
				return EXIT_USAGE;
			*(!strcmp(a, "--layers") ? &o.model.n_layer : !strcmp(a, "--experts") ? &o.model.n_expert :
			  !strcmp(a, "--experts-used") ? &o.model.n_expert_used :
			  !strcmp(a, "--tokens") ? &o.tokens : &o.window) = (int)n;
		} else if (!strcmp(a, "--expert-bytes") || !strcmp(a, "--dense-bytes")) {
			if (parse_size(a, v, &sz))
				return EXIT_USAGE;
			*(!strcmp(a, "--expert-bytes") ? &o.model.expert_bytes : &o.model.dense_bytes) = sz;
		} else if (!strcmp(a, "--zipf") || !strcmp(a, "--drift")) {
			if (parse_double(a, v, 0, 1000, &d))
				return EXIT_USAGE;
			*(!strcmp(a, "--zipf") ? &o.zipf : &o.drift) = d;
		} else if (!strcmp(a, "--zipf-spread")) {
			if (parse_double(a, v, 0, 10, &o.zipf_spread))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--locality") || !strcmp(a, "--predict-accuracy")) {
			if (parse_double(a, v, 0, 1, &d))
				return EXIT_USAGE;
			*(!strcmp(a, "--locality") ? &o.locality : &o.pred_acc) = d;
		} else if (!strcmp(a, "--seed")) {
			if (parse_long(a, v, 0, __LONG_MAX__, &n))
				return EXIT_USAGE;
			o.seed = (uint64_t)n;
		} else {
			return usage_error(CMD, "--expert-trace: unknown option '%s' (see --expert-trace --help)", a);
		}
	}
	if (!out)
		return usage_error(CMD, "--expert-trace: no output file: -o OUT.jsonl");
	if (o.model.n_expert_used > o.model.n_expert)
		return usage_error(CMD, "--experts-used %d exceeds --experts %d", o.model.n_expert_used,
				   o.model.n_expert);
	if ((err = tm_xsynth(&t, &o)))
		return err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out, (int)getpid()) >= sizeof(tmp)) {
		tm_xtrace_free(&t);
		return usage_error(CMD, "output path too long");
	}
	f = fopen(tmp, "w");
	if (!f) {
		tm_xtrace_free(&t);
		return run_error(CMD, "%s: %s", tmp, strerror(errno));
	}
	int k = t.model.n_expert_used, e[TM_XTRACE_MAX_USED], p[TM_XTRACE_MAX_USED];

	err = tm_xtrace_write_header(f, &t.model, t.source);
	for (size_t r = 0; !err && r < t.n_rec; r++) {
		for (int j = 0; j < k; j++) {
			e[j] = t.exp[r * k + j];
			p[j] = t.pred[r * k + j];
		}
		err = tm_xtrace_write_rec(f, t.tok[r], t.layer[r], e, t.w + r * k, t.has_pred[r] ? p : NULL, k);
	}
	if (fclose(f) && !err)
		err = tm_err(-EIO, "%s: %s", tmp, strerror(errno));
	if (!err && rename(tmp, out))
		err = tm_err(-errno, "%s: %s", out, strerror(errno));
	if (err)
		unlink(tmp);
	else
		printf("%s: %d tokens x %d layers, %d experts top-%d (%s)\n", out, t.n_tokens, t.model.n_layer,
		       t.model.n_expert, k, t.source);
	tm_xtrace_free(&t);
	return err ? run_error(CMD, "%s", tm_strerror()) : 0;
}
