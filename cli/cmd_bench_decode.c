// SPDX-License-Identifier: MIT
/*
 * tiermem bench --decode MODEL: the share of the read ceiling decode reaches,
 * measured in-process token by token (tm_bench_decode), at one or more
 * context lengths.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/model_args.h"
#include "cli/commands.h"
#include "kernels/kernels.h"
#include "tiermem/bench.h"
#include "tiermem/error.h"
#include "tiermem/model.h"

#define CMD "bench"
#define MAX_CTX 8

static const char usage[] =
	"usage: tiermem bench (--decode MODEL | --name NAME) [--ctx P]... [--gen N] [-t T]\n"
	"                     [--weights W] [--repack on|off] [--json]\n"
	"Decodes N tokens greedily after P positions of context and, after each decode\n"
	"step, reads as many bytes of the same memory with the same threads (the weight\n"
	"mappings, then the KV cache rows attention read). Prints the median over tokens\n"
	"of read time / decode time: the share of the read ceiling decode reaches, which\n"
	"a noisy host cannot fake as it can a decode figure and a ceiling taken apart.\n"
	"\"cpu share\" is the same ratio of the process's CPU time: on a host with more\n"
	"runnable threads than CPUs it leaves out the time our threads waited for one.\n"
	"\n"
	"  --ctx P          positions of context before the first measured token (default\n"
	"                   64; repeat for several). Positions before P - 1 hold random\n"
	"                   keys and values: attention's speed does not depend on them\n"
	"  --gen N          tokens measured per context (default 32; 2 more warm up)\n"
	"  -t, --threads T  threads (default: the CPUs this process may use)\n"
	"  --weights W      auto, mmap or ddr, as tiermem run (default auto)\n"
	"  --repack on|off  interleaved-row q4_K/q6_K/q8_0 in DDR, as tiermem run (default on\n"
	"                   with the AVX-512 VNNI kernels and on AMD Zen/Zen+, off with\n"
	"                   other AVX2 ones)\n"
	"  --name NAME      a model imported into the store instead (tiermem import)\n"
	"  -ctk, --cache-type-k T, -ctv, --cache-type-v T\n"
	"                   KV cache types, f16 (default, as tiermem run), f32 or q8_0\n"
	"  --prefetch BYTES the read runs three times per token: without software prefetch,\n"
	"                   prefetching each line BYTES ahead, and one line per 2 KiB\n"
	"                   BYTES ahead; the fastest is the ceiling (which is fastest\n"
	"                   depends on the CPU; default 8K; 0: only without)\n"
	"  --json           one JSON object\n";

int cmd_bench_decode(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "decode", required_argument, NULL, 'm' },
		MODEL_ARGS_OPTIONS,
		{ "ctx", required_argument, NULL, 'c' },
		{ "gen", required_argument, NULL, 'g' },
		{ "prefetch", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path;
	long ctx[MAX_CTX], n_gen = 32, max_ctx = 0;
	int n_ctx = 0, json = 0, c, err, rc = 1;
	bool handled;
	struct model_args ma;
	uint64_t prefetch = 8192;
	struct tm_model m = { 0 };
	struct tm_pool *pool = NULL;
	struct tm_ctx *tc = NULL;
	struct tm_decode_share res[MAX_CTX];

	/* --decode takes the next word as its MODEL: --help there still asks for help */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		}
	model_args_init(&ma, TM_LOAD_AUTO, TM_F16);
	model_args_rewrite(argc, argv);
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		if ((rc = model_args_option(&ma, CMD, c, optarg, &handled)))
			return rc;
		if (handled)
			continue;
		switch (c) {
		case 'c':
			if (n_ctx == MAX_CTX)
				return usage_error(CMD, "--ctx: at most %d", MAX_CTX);
			if (parse_long("--ctx", optarg, 1, 1 << 20, &ctx[n_ctx]))
				return EXIT_USAGE;
			n_ctx++;
			break;
		case 'g':
			if (parse_long("--gen", optarg, 1, 100000, &n_gen))
				return EXIT_USAGE;
			break;
		case 'p':
			if (parse_size("--prefetch", optarg, &prefetch))
				return EXIT_USAGE;
			if (prefetch > (1 << 20))
				return usage_error(CMD, "--prefetch: at most 1M bytes");
			break;
		case 'j': json = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error(CMD, "unexpected argument '%s'", argv[optind]);
	if ((rc = model_args_check(&ma, CMD, true)))
		return rc;
	rc = 1;
	path = model_args_label(&ma);
	if (!n_ctx)
		ctx[n_ctx++] = 64;
	for (int i = 0; i < n_ctx; i++)
		max_ctx = ctx[i] > max_ctx ? ctx[i] : max_ctx;
	if (ma.threads > default_threads())
		return usage_error(CMD, "-t %ld: more threads than the %d CPUs this process may use "
				   "would measure threads fighting for CPUs", ma.threads, default_threads());

	if ((rc = model_args_open(&ma, CMD, &m)))
		return rc;
	rc = 1;
	if (max_ctx + 2 + n_gen > m.hp.n_ctx_train) {
		rc = usage_error(CMD, "--ctx %ld plus %ld tokens exceed the model's context of %d",
				 max_ctx, n_gen + 2, m.hp.n_ctx_train);
		goto out;
	}
	pool = tm_pool_create((int)ma.threads, TM_POOL_PIN);
	if (!pool) {
		rc = run_error(CMD, "cannot start %ld threads", ma.threads);
		goto out;
	}
	if ((err = tm_ctx_create_kv(&tc, &m, pool, (int)(max_ctx + 2 + n_gen), 1, ma.type_k, ma.type_v))) {
		rc = tm_model_err_is_input(err) ? usage_error(CMD, "%s", tm_strerror())
						    : run_error(CMD, "%s", tm_strerror());
		goto out;
	}
	for (int i = 0; i < n_ctx; i++) {
		if (isatty(2))
			fprintf(stderr, "\rtiermem bench: decode at %ld positions ", ctx[i]);
		if ((err = tm_bench_decode(tc, (int)ctx[i], (int)n_gen, prefetch, &res[i]))) {
			rc = run_error(CMD, "%s", tm_strerror());
			goto out;
		}
	}
	if (isatty(2))
		fprintf(stderr, "\r%60s\r", "");
	if (json) {
		printf("{\"model\":\"%s\",\"backend\":\"%s\",\"threads\":%ld,\"isa\":\"%s\",\"layout\":\"%s\",\"runs\":[",
		       path, m.maps[0].backend, ma.threads, tm_kernels_isa(), tm_model_layout(&m));
		for (int i = 0; i < n_ctx; i++)
			printf("%s{\"kv_elem_bytes\":%.4f,\"ctx\":%d,\"tokens\":%d,\"share\":%.4f,\"share_q1\":%.4f,\"share_q3\":%.4f,\"share_cpu\":%.4f,"
			       "\"decode_tok_s\":%.3f,\"read_gbs\":%.3f,\"weight_bytes\":%.0f,\"kv_bytes\":%.0f,"
			       "\"read_loops\":%d,\"prefetch_faster\":%.4f,\"sparse_faster\":%.4f}",
			       i ? "," : "", (double)(tm_ctx_kv_row_bytes(tc, 0) + tm_ctx_kv_row_bytes(tc, 1)) /
			       (2.0 * m.hp.n_head_kv * m.hp.head_dim),
			       res[i].n_pos, res[i].tokens, res[i].share, res[i].share_q1,
			       res[i].share_q3, res[i].share_cpu, res[i].decode_tok_s, res[i].read_gbs, res[i].weight_bytes,
			       res[i].kv_bytes, res[i].read_loops, res[i].prefetch_faster, res[i].sparse_faster);
		printf("]}\n");
	} else {
		printf("%s: %s weights, %s layout, %ld threads, %s kernels, %d tokens per context\n", path,
		       m.maps[0].backend, tm_model_layout(&m), ma.threads, tm_kernels_isa(), res[0].tokens);
		if (prefetch) {
			double pf = 0, sp = 0;

			for (int i = 0; i < n_ctx; i++) {
				pf += res[i].prefetch_faster / n_ctx;
				sp += res[i].sparse_faster / n_ctx;
			}
			printf("read: the fastest of no prefetch, each line and a line per 2 KiB %llu bytes ahead, per token\n"
			       "      (fastest without prefetch on %.0f%% of tokens, each line %.0f%%, a line per 2 KiB %.0f%%)\n",
			       (unsigned long long)prefetch, (1 - pf) * 100, (pf - sp) * 100, sp * 100);
		}
		printf("%8s %10s %10s %10s %10s %12s %12s %14s\n", "context", "share", "q1", "q3", "cpu share",
		       "decode tok/s", "read GB/s", "MB per token");
		for (int i = 0; i < n_ctx; i++)
			printf("%8d %9.1f%% %9.1f%% %9.1f%% %9.1f%% %12.2f %12.1f %8.1f+%.1f KV\n", res[i].n_pos,
			       res[i].share * 100, res[i].share_q1 * 100, res[i].share_q3 * 100, res[i].share_cpu * 100,
			       res[i].decode_tok_s, res[i].read_gbs, res[i].weight_bytes / 1e6,
			       res[i].kv_bytes / 1e6);
	}
	rc = 0;
out:
	tm_ctx_free(tc);
	tm_pool_destroy(pool);
	tm_model_free(&m);
	return rc;
}
