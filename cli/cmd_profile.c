// SPDX-License-Identifier: MIT
/*
 * tiermem profile: run prompts through a MoE model and record which experts
 * each token used, per layer (a heat file for plan --heat and the cache's
 * warm start) and, with --trace, the routing trace itself.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/model_args.h"
#include "cli/commands.h"
#include "kernels/pool.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/model.h"
#include "tiermem/store.h"
#include "tiermem/tokenizer.h"

#define CMD "profile"

static const char usage[] =
	"usage: tiermem profile (-m MODEL | --name NAME) -f PROMPTS.txt [-o heat.json]\n"
	"                       [--trace FILE] [-n N] [-t T]\n"
	"Runs each line of PROMPTS.txt (a prompt per line; empty lines skipped) through a MoE\n"
	"model, token by token, then generates N more tokens greedily, and records which\n"
	"experts every token used in every layer:\n"
	"\n"
	"  -o, --output FILE  the heat file (default heat.json): per layer and expert, the\n"
	"                     tokens that used it, with the model's content hash; for\n"
	"                     tiermem plan --heat and run --expert-heat\n"
	"  --trace FILE       also the routing trace (Documentation/tiermem-experts.rst),\n"
	"                     for tiermem bench --expert-trace\n"
	"  -n N               tokens generated after each prompt (default 16)\n"
	"  -m, --model FILE   the MoE model (GGUF)\n"
	"  --name NAME        or a model imported into the store (tiermem import); its\n"
	"                     heat carries the same content hash as the GGUF's\n"
	"  --weights W, --repack on|off, --no-verify, -ctk T, -ctv T\n"
	"                     as for tiermem run\n"
	"  -t, --threads T    threads (default: the CPUs this process may use)\n"
	"\n"
	"Random-weight models route almost uniformly: real heat comes from real models.\n";

static int argmax(const float *v, int n)
{
	int best = 0;

	for (int i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return best;
}

int cmd_profile(int argc, char **argv)
{
	static const struct option opts[] = {
		MODEL_ARGS_OPTIONS,
		{ "file", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "trace", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *model_path, *prompts = NULL, *out = "heat.json", *trace = NULL;
	long n_gen = 16;
	struct model_args ma;
	bool handled;
	struct tm_model model = { 0 };
	struct tm_tokenizer *tok = NULL;
	struct tm_pool *pool = NULL;
	struct tm_ctx *ctx = NULL;
	struct tm_xprofile *prof = NULL;
	FILE *pf = NULL, *tf = NULL;
	char hash[33], tpath[4096] = "", *line = NULL;
	size_t cap = 0;
	int c, err, rc = 1, n_prompts = 0;

	model_args_init(&ma, TM_LOAD_AUTO, TM_F16);
	model_args_rewrite(argc, argv);
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:f:o:n:t:h", opts, NULL)) != -1) {
		if ((rc = model_args_option(&ma, CMD, c, optarg, &handled)))
			return rc;
		if (handled)
			continue;
		switch (c) {
		case 'f': prompts = optarg; break;
		case 'o': out = optarg; break;
		case 'T': trace = optarg; break;
		case 'n':
			if (parse_long("-n", optarg, 0, 1 << 20, &n_gen))
				return EXIT_USAGE;
			break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error(CMD, "unexpected argument '%s'", argv[optind]);
	if ((!ma.path && !ma.name) || !prompts)
		return usage_error(CMD, "-m MODEL or --name NAME, and -f PROMPTS.txt are required (see --help)");
	if ((rc = model_args_check(&ma, CMD, true)))
		return rc;
	model_path = model_args_label(&ma);
	if (!(pf = fopen(prompts, "r")))
		return usage_error(CMD, "%s: %s", prompts, strerror(errno));
	if ((rc = model_args_open(&ma, CMD, &model)))
		goto out;
	rc = 1;
	if (!model.hp.moe) {
		rc = usage_error(CMD, "%s is a dense model (%s): it has no experts to profile", model_path,
				 model.hp.arch_name);
		goto out;
	}
	if ((err = tm_model_identity(&model, ma.name, hash))) {
		rc = run_error(CMD, "%s", tm_strerror());
		goto out;
	}
	if ((err = tm_tokenizer_load(&tok, &model.gguf))) {
		rc = usage_error(CMD, "%s: no usable vocabulary: %s", model_path, tm_strerror());
		goto out;
	}
	if (trace) {
		snprintf(tpath, sizeof(tpath), "%s.tmp", trace);
		if (!(tf = fopen(tpath, "w"))) {
			rc = usage_error(CMD, "%s: %s", tpath, strerror(errno));
			tpath[0] = '\0';
			goto out;
		}
	}
	if ((err = tm_xprofile_create(&prof, &model, hash, tf))) {
		rc = run_error(CMD, "%s", tm_strerror());
		goto out;
	}
	if (!(pool = tm_pool_create((int)ma.threads, TM_POOL_PIN))) {
		rc = run_error(CMD, "cannot start %ld threads", ma.threads);
		goto out;
	}
	/* batch 1: every prompt token goes through the decode path, so each is recorded */
	if ((err = tm_ctx_create_kv(&ctx, &model, pool, model.hp.n_ctx_train, 1, ma.type_k, ma.type_v))) {
		rc = tm_model_err_is_input(err) ? usage_error(CMD, "%s", tm_strerror())
						    : run_error(CMD, "%s", tm_strerror());
		goto out;
	}
	tm_xprofile_attach(prof, ctx);
	while (getline(&line, &cap, pf) >= 0) {
		int32_t *ids = NULL, next;
		size_t len = strcspn(line, "\r\n");
		int n;

		if (!len)
			continue;
		n = tm_tokenize_alloc(tok, line, len, true, false, &ids);
		if (n <= 0) {
			free(ids);
			continue;
		}
		if (n + n_gen > ctx->n_ctx)
			n = (int)(ctx->n_ctx - n_gen > 1 ? ctx->n_ctx - n_gen : 1);
		tm_ctx_reset(ctx);
		err = tm_forward(ctx, ids, n, NULL, false);
		free(ids);
		for (long g = 0; !err && g < n_gen && ctx->n_past < ctx->n_ctx; g++) {
			next = argmax(ctx->logits, model.hp.n_vocab);
			if (tm_tokenizer_is_eog(tok, next))
				break;
			err = tm_forward(ctx, &next, 1, NULL, false);
		}
		if (err) {
			rc = run_error(CMD, "%s", tm_strerror());
			goto out;
		}
		n_prompts++;
		if (isatty(STDERR_FILENO))
			fprintf(stderr, "\rprofile: %d prompts, %llu tokens", n_prompts,
				(unsigned long long)tm_xprofile_heat(prof)->tokens);
	}
	if (isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (!n_prompts) {
		rc = usage_error(CMD, "%s: no prompt (one per line)", prompts);
		goto out;
	}
	if ((err = tm_xprofile_error(prof)) || (tf && fclose(tf))) {
		tf = NULL;
		rc = run_error(CMD, "writing the trace %s failed", trace);
		goto out;
	}
	tf = NULL;
	if (trace && rename(tpath, trace)) {
		rc = run_error(CMD, "%s: %s", trace, strerror(errno));
		goto out;
	}
	tpath[0] = '\0';
	if ((err = tm_xheat_write(tm_xprofile_heat(prof), out))) {
		rc = run_error(CMD, "%s", tm_strerror());
		goto out;
	}
	/* how skewed: the share of routes the hottest quarter of each layer's experts took */
	const struct tm_xheat *h = tm_xprofile_heat(prof);
	int E = h->model.n_expert, q = E / 4 > 0 ? E / 4 : 1, *order = malloc(sizeof(int) * E);
	double top = 0, all = 0;

	for (int l = 0; order && l < h->model.n_layer; l++) {
		tm_xheat_order(h, l, order);
		for (int e = 0; e < E; e++) {
			all += h->counts[(size_t)l * E + order[e]];
			if (e < q)
				top += h->counts[(size_t)l * E + order[e]];
		}
	}
	free(order);
	printf("%s: %d prompts, %llu tokens, model %s; the hottest %d of %d experts per layer took %.1f %% of the routes (uniform: %.1f %%)%s%s\n",
	       out, n_prompts, (unsigned long long)h->tokens, hash, q, E, all ? 100 * top / all : 0,
	       100.0 * q / E, trace ? "; trace " : "", trace ? trace : "");
	rc = 0;
out:
	if (tf)
		fclose(tf);
	if (tpath[0])
		unlink(tpath);
	free(line);
	if (pf)
		fclose(pf);
	tm_xprofile_free(prof);
	tm_ctx_free(ctx);
	tm_pool_destroy(pool);
	tm_tokenizer_free(tok);
	tm_model_free(&model);
	return rc;
}
