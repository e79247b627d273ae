// SPDX-License-Identifier: MIT
/*
 * tiermem logits: evaluate given token ids from position 0 and write the raw
 * logits, the format external correctness checks read: little-endian float32,
 * one row of n_vocab per position, nothing else.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/model_args.h"
#include "cli/commands.h"
#include "cli/gpu_args.h"
#include "cli/split_args.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "tiermem/error.h"
#include "tiermem/generate.h"
#include "tiermem/model.h"
#include "tiermem/store.h"

static const char usage[] =
	"usage: tiermem logits (-m MODEL | --name NAME) --tokens ID,ID,... -o FILE [-t THREADS]\n"
	"                      [--batch N] [--gpu | -ngl N] [-ot REGEX=PLACE]\n"
	"\n"
	"Evaluates the token ids from position 0 in one sequence and writes the logits\n"
	"to FILE as raw little-endian float32, one row of n_vocab per position.\n"
	"\n"
	"  -m, --model FILE   GGUF model (llama, qwen3, qwen3moe)\n"
	"  --name NAME        a model imported into the store (tiermem import)\n"
	"  --no-verify        with --name: skip the checksums of the zero-copy tiers\n"
	"  --weights W        with -m: mmap (default here: the file's own pages), ddr or\n"
	"                     auto, as for tiermem run\n"
	"  --repack on|off    with --weights ddr: interleaved-row q4_K/q6_K/q8_0 (default on\n"
	"                     with the AVX-512 VNNI kernels and on AMD Zen/Zen+, off\n"
	"                     with other AVX2 ones)\n"
	"  --tokens LIST      comma-separated token ids\n"
	"  -o, --output FILE  where the logits go\n"
	"  -t, --threads N    threads (default 1)\n"
	"  --batch N          tokens per forward batch (default 64); 1 runs every\n"
	"                     position through the decode path, more through prefill\n"
	"  -ctk, --cache-type-k T, -ctv, --cache-type-v T\n"
	"                     KV cache types: f32 (default here: exact logits), f16 or\n"
	"                     q8_0\n"
	SPLIT_HELP
	"                     (rank 0 writes FILE)\n"
	SPLIT_HEAT_HELP
	GPU_ARGS_HELP;

/* "1,2,3" -> ids; -1 after printing a message naming the bad item. */
static int parse_tokens(const char *s, int32_t **out, int *n)
{
	int cap = 16, cnt = 0;
	int32_t *ids = malloc(sizeof(*ids) * cap);
	const char *p = s;

	if (!ids)
		return -1;
	while (*p) {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
			fprintf(stderr, "tiermem logits: --tokens: '%s' is not a list of token ids (item %d)\n",
				s, cnt + 1);
			free(ids);
			return -1;
		}
		if (cnt == cap) {
			int32_t *t = realloc(ids, sizeof(*ids) * (cap *= 2));

			if (!t) {
				free(ids);
				return -1;
			}
			ids = t;
		}
		ids[cnt++] = (int32_t)v;
		p = *end ? end + 1 : end;
		if (*end && !*p) {
			fprintf(stderr, "tiermem logits: --tokens: '%s' ends with a comma\n", s);
			free(ids);
			return -1;
		}
	}
	if (!cnt) {
		fprintf(stderr, "tiermem logits: --tokens: no token ids\n");
		free(ids);
		return -1;
	}
	*out = ids;
	*n = cnt;
	return 0;
}

int cmd_logits(int argc, char **argv)
{
	static const struct option opts[] = {
		MODEL_ARGS_OPTIONS,
		{ "tokens", required_argument, NULL, 'T' },
		{ "output", required_argument, NULL, 'o' },
		{ "batch", required_argument, NULL, 'b' },
		{ "gpu", no_argument, NULL, 'G' },
		{ "n-gpu-layers", required_argument, NULL, 'L' },
		SPLIT_OPTIONS,
		SPLIT_HEAT_OPTION,
		GPU_ARGS_OT_OPTION,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *tok_arg = NULL, *out_path = NULL;
	long batch = 64;
	struct model_args ma;
	struct tm_model model = { 0 };
	struct tm_pool *pool = NULL;
	struct tm_ctx *ctx = NULL;
	int32_t *ids = NULL;
	float *logits = NULL;
	FILE *f = NULL;
	int n = 0, c, rc = 1;
	struct tm_gpu_info gpu;
	long ngl = 0;
	struct gpu_ot ot = { 0 };
	bool handled;
	struct split_args split;
	int err;

	/* the file's own pages and f32 KV: what the peer suites compare against llama.cpp */
	split_args_init(&split);
	model_args_init(&ma, TM_LOAD_MMAP, TM_F32);
	ma.threads = 1;
	model_args_rewrite(argc, argv);
	optind = 1;
	gpu_args_rewrite(argc, argv);
	while ((c = getopt_long(argc, argv, "m:o:t:h", opts, NULL)) != -1) {
		if ((rc = model_args_option(&ma, "logits", c, optarg, &handled)))
			return rc;
		if (handled)
			continue;
		switch (c) {
		case 'G': ngl = -1; break;
		case GPU_ARGS_OT:
			if (gpu_args_parse_ot("logits", optarg, &ot))
				return EXIT_USAGE;
			break;
		case 'L':
			if (gpu_args_parse_ngl("logits", optarg, &ngl))
				return EXIT_USAGE;
			break;
		case OPT_SPLIT: case OPT_MPI_TIMEOUT: case OPT_SPLIT_HEAT:
			if (split_args_option("logits", &split, c, optarg))
				return EXIT_USAGE;
			break;
		case 'T': tok_arg = optarg; break;
		case 'o': out_path = optarg; break;
		case 'b':
			if (parse_long("--batch", optarg, 1, 1 << 16, &batch))
				return EXIT_USAGE;
			break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error("logits", "unexpected argument '%s'", argv[optind]);
	if ((!ma.path && !ma.name) || !tok_arg || !out_path)
		return usage_error("logits", "-m MODEL or --name NAME, --tokens LIST and -o FILE are required (see --help)");
	if (split.heat && !split.kind)
		return usage_error("logits", "--expert-heat assigns experts to ranks: it needs --split experts");
	if ((rc = model_args_check(&ma, "logits", true)))
		return rc;
	if (gpu_args_probe("logits", ngl, &ot))
		return EXIT_USAGE;
	if (parse_tokens(tok_arg, &ids, &n))
		return EXIT_USAGE;

	if (ngl || ot.n)	/* the GPU kernels read the GGUF layout */
		ma.repack = false;
	if ((rc = model_args_open(&ma, "logits", &model))) {
		free(ids);
		return rc;
	}
	rc = 1;
	if (n > model.hp.n_ctx_train) {
		rc = usage_error("logits", "%d tokens exceed the model's context of %d", n,
				 model.hp.n_ctx_train);
		goto out;
	}
	for (int i = 0; i < n; i++)
		if (ids[i] >= model.hp.n_vocab) {
			rc = usage_error("logits", "token id %d is outside the vocabulary [0, %d)",
					 (int)ids[i], model.hp.n_vocab);
			goto out;
		}
	/* ranks on one machine would all pin to its first CPUs: under --split the scheduler places them */
	pool = tm_pool_create((int)ma.threads, split.kind ? 0 : TM_POOL_PIN);
	if (!pool) {
		rc = run_error("logits", "cannot start %ld threads", ma.threads);
		goto out;
	}
	logits = malloc(sizeof(float) * (size_t)n * model.hp.n_vocab);
	if (!logits) {
		rc = run_error("logits", "out of memory");
		goto out;
	}
	if ((err = tm_ctx_create_kv(&ctx, &model, pool, n, (int)batch, ma.type_k, ma.type_v))) {
		rc = tm_model_err_is_input(err) ? usage_error("logits", "%s", tm_strerror())
						: run_error("logits", "%s", tm_strerror());
		goto out;
	}
	if ((rc = gpu_args_attach("logits", ctx, ngl, &ot, &gpu, NULL)))
		goto out;
	if ((rc = split_args_start("logits", &split, ctx, ma.name)))
		goto out;
	rc = 1;
	if (tm_forward(ctx, ids, n, logits, true)) {
		rc = run_error("logits", "%s", tm_strerror());
		goto out;
	}
	split_args_logits(&split, logits, n);
	split_args_report(&split, stderr, (uint64_t)n);
	if (split_args_rank(&split)) {
		rc = 0;
		goto out;
	}
	f = fopen(out_path, "wb");
	if (!f) {
		rc = usage_error("logits", "%s: %s", out_path, strerror(errno));
		goto out;
	}
	if (fwrite(logits, sizeof(float) * model.hp.n_vocab, n, f) != (size_t)n || fclose(f)) {
		f = NULL;
		rc = run_error("logits", "%s: write failed", out_path);
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (f)
		fclose(f);
	split_args_free(&split);
	tm_ctx_free(ctx);
	tm_pool_destroy(pool);
	free(logits);
	free(ids);
	tm_model_free(&model);
	return rc;
}
