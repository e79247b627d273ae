// SPDX-License-Identifier: MIT
/*
 * tiermem serve: load a model and answer the OpenAI API over HTTP until
 * SIGTERM or SIGINT, which finish the requests already admitted and exit 0.
 * Flags are llama-server's where it has one.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/model_args.h"
#include "cli/commands.h"
#include "cli/run_experts.h"
#include "cli/split_args.h"
#include "kernels/pool.h"
#include "tiermem/error.h"
#include "tiermem/model.h"
#include "tiermem/serve.h"
#include "tiermem/store.h"
#include "tiermem/tokenizer.h"

#define CMD "serve"

static const char usage[] =
	"usage: tiermem serve (-m MODEL.gguf | --name NAME [--no-verify]) [--host ADDR]\n"
	"                     [--port N] [-np N] [-c N] [-b N] [-ub N]\n"
	"                     [--api-key KEY] [-t T] [--chat-template NAME] [--alias ID]\n"
	"                     [--reasoning-format F] [--reasoning-budget N] ...\n"
	"\n"
	"An OpenAI-compatible HTTP server: POST /v1/chat/completions and /v1/completions\n"
	"(streamed as server-sent events with \"stream\": true), GET /v1/models, /health,\n"
	"/metrics (Prometheus), /props, and a live dashboard at /. Up to --parallel\n"
	"requests decode together, each weight read once per step for all of them.\n"
	"SIGTERM or SIGINT finishes the admitted requests, then exits 0.\n"
	"\n"
	"  -m, --model FILE        GGUF model (llama, qwen3, qwen3moe)\n"
	"  --name NAME             a model imported into the store (tiermem import), its\n"
	"                          weights where the import's plan put them; its id is NAME\n"
	"  --no-verify             with --name: skip the checksums of the zero-copy tiers\n"
	"  --host ADDR             address to listen on (default 127.0.0.1: this machine only)\n"
	"  --port N                TCP port (default 8080; 0: any free port, printed at start)\n"
	"  -np, --parallel N       slots: requests decoded together (default 4)\n"
	"  -c, --ctx-size N        tokens per slot, prompt plus completion (default 4096,\n"
	"                          at most the model's training context)\n"
	"  -b, --batch-size N      prompt tokens evaluated per step, over all slots (default\n"
	"                          64): a long prompt is evaluated in chunks between the\n"
	"                          running requests' decode steps, not all at once\n"
	"  -ub, --ubatch-size N    prompt tokens per forward batch (default 64)\n"
	"  --api-key KEY           require 'Authorization: Bearer KEY' (not for /health,\n"
	"                          /metrics, /props and the dashboard /); default: none\n"
	"  --api-key-file FILE     the key from the first line of FILE (not on the command\n"
	"                          line, where other users can read it)\n"
	"  -a, --alias ID          the model id clients name (default: the file's name\n"
	"                          without .gguf)\n"
	"  -t, --threads T         threads for the forward pass (default: the CPUs this\n"
	"                          process may use)\n"
	"  --chat-template NAME    chatml, qwen2, qwen2.5, qwen3, llama2, llama3, llama3.1,\n"
	"                          deepseek3, kimi-k2, glm4, glm4.5 (default: recognised from\n"
	"                          the model's tokenizer.chat_template; chatml if it has\n"
	"                          none); OpenAI tools work with qwen2.5, qwen3, llama3.1,\n"
	"                          deepseek3, kimi-k2 and glm4.5: calls in the model's\n"
	"                          output come back as tool_calls\n"
	"  --chat-template-file F  recognise the template from this file's text instead\n"
	"  --reasoning-format F    auto (default) or deepseek: a chat reply's leading\n"
	"                          <think>...</think> comes back as reasoning_content, the\n"
	"                          rest as content; none: all of it is content. A request's\n"
	"                          \"reasoning_format\" overrides\n"
	"  --reasoning-budget N    -1 (default): the model may think; 0: thinking templates\n"
	"                          (qwen3, glm4.5) are rendered with enable_thinking false,\n"
	"                          which asks it not to (a request's chat_template_kwargs\n"
	"                          overrides); no other budget: thinking tokens are not counted\n"
	"  --queue N               requests that may wait for a slot (default 64); more get 503\n"
	"  --timeout S             seconds a request may take to arrive, and an idle\n"
	"                          connection may stay open (default 30)\n"
	"  --weights W             auto, mmap or ddr: as for tiermem run (default auto)\n"
	"  --repack on|off         interleaved-row q4_K/q6_K/q8_0 in DDR (default on: cheaper\n"
	"                          decode, and exact prompt tiles on AMX CPUs)\n"
	"  -ctk, --cache-type-k T, -ctv, --cache-type-v T\n"
	"                          KV cache types: f16 (default, as llama-server), f32 or\n"
	"                          q8_0\n"
	"Under mpirun, with build/tiermem-mpi (rank 0 answers HTTP; the other ranks run\n"
	"the same forward calls; with --split layers the ranks are a pipeline, each\n"
	"working on another group of the running sequences; SIGTERM to rank 0 stops\n"
	"them all with 0 and prints every rank's counters; SIGTERM to mpirun ends the\n"
	"job at once, mpirun exits 1):\n"
	SPLIT_HELP
	"  --pipeline-groups cost|equal\n"
	"                     with --split layers: decode the running sequences in as\n"
	"                     many groups (at most one per rank) as the ranks' measured\n"
	"                     cost per call and per row says is fastest (cost, the\n"
	"                     default), or always in one group per rank (equal)\n"
	"MoE expert cache (as for tiermem run; one cache for every slot and the batched\n"
	"decode; its hits and misses in /metrics):\n"
	RUN_EXPERTS_USAGE;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0;
	long n;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && n < (1 << 20) && !fseek(f, 0, SEEK_SET) &&
	    (buf = malloc(n + 1)))
		len = fread(buf, 1, n, f);
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

/* The id clients name: the file's name less its directory and .gguf. */
static void model_id(char *out, size_t n, const char *path)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len > 5 && !strcmp(base + len - 5, ".gguf"))
		len -= 5;
	snprintf(out, n, "%.*s", (int)len, base);
}

int cmd_serve(int argc, char **argv)
{
	static char parallel_name[] = "--parallel", ubatch_name[] = "--ubatch-size";
	static const struct option opts[] = {
		MODEL_ARGS_OPTIONS,
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "parallel", required_argument, NULL, 'N' },
		{ "ctx-size", required_argument, NULL, 'c' },
		{ "batch-size", required_argument, NULL, 'b' },
		{ "ubatch-size", required_argument, NULL, 'U' },
		{ "api-key", required_argument, NULL, 'k' },
		{ "api-key-file", required_argument, NULL, 'K' },
		{ "alias", required_argument, NULL, 'a' },
		{ "chat-template", required_argument, NULL, 'C' },
		{ "chat-template-file", required_argument, NULL, 'F' },
		{ "reasoning-format", required_argument, NULL, 'R' },
		{ "reasoning-budget", required_argument, NULL, 'B' },
		{ "queue", required_argument, NULL, 'Q' },
		{ "timeout", required_argument, NULL, 'O' },
		{ "pipeline-groups", required_argument, NULL, 'G' },
		RUN_EXPERTS_OPTIONS,
		SPLIT_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct tm_serve_opts so = { .host = "127.0.0.1", .port = 8080, .parallel = 4, .queue = 64,
				    .timeout_s = 30 };
	const char *alias = NULL, *tmpl_file = NULL, *key_file = NULL;
	long port = 8080, parallel = 4, ctx = 4096, queue = 64, timeout = 30;
	long batch = SERVE_BATCH_DEFAULT, ubatch = SERVE_BATCH_DEFAULT;
	bool ctx_given = false, handled;
	int c, err, rc = 1;
	struct model_args ma;
	struct tm_model model = { 0 };
	struct tm_tokenizer *tok = NULL;
	struct tm_pool *pool = NULL;
	struct tm_server *srv = NULL;
	char id[128], *tmpl_text = NULL, *key_buf = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	struct run_experts rx;
	struct split_args split;
	int follower = 0;

	/* llama-server spells --parallel -np, which getopt cannot take as a short option */
	args_alias(argc, argv, "-np", parallel_name);
	args_alias(argc, argv, "-ub", ubatch_name);
	model_args_init(&ma, TM_LOAD_AUTO, TM_F16);
	/* Prompts take the exact tiles on it (Documentation/tiermem-serve.rst, batch invariance). */
	ma.repack = true;
	model_args_rewrite(argc, argv);
	run_experts_init(&rx, CMD);
	split_args_init(&split);
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:c:b:a:t:h", opts, NULL)) != -1) {
		if ((rc = model_args_option(&ma, CMD, c, optarg, &handled)))
			return rc;
		if (handled)
			continue;
		switch (c) {
		case 'H': so.host = optarg; break;
		case 'p':
			if (parse_long("--port", optarg, 0, 65535, &port))
				return EXIT_USAGE;
			break;
		case 'N':
			if (parse_long("--parallel", optarg, 1, 256, &parallel))
				return EXIT_USAGE;
			break;
		case 'c':
			if (parse_long("--ctx-size", optarg, 2, INT_MAX, &ctx))
				return EXIT_USAGE;
			ctx_given = true;
			break;
		case 'b':
			if (parse_long("--batch-size", optarg, 1, 1 << 20, &batch))
				return EXIT_USAGE;
			break;
		case 'U':
			if (parse_long("--ubatch-size", optarg, 1, 1 << 16, &ubatch))
				return EXIT_USAGE;
			break;
		case 'k':
			if (!*optarg)
				return usage_error(CMD, "--api-key: the key is empty");
			so.api_key = optarg;
			break;
		case 'K': key_file = optarg; break;
		case 'a': alias = optarg; break;
		case 'C': so.chat_template = optarg; break;
		case 'F': tmpl_file = optarg; break;
		case 'R':
			if ((so.reasoning_format = tm_reasoning_format_parse(optarg)) < 0)
				return usage_error(CMD, "--reasoning-format %s: not auto, deepseek or none", optarg);
			break;
		case 'B':
			if (strcmp(optarg, "-1") && strcmp(optarg, "0"))
				return usage_error(CMD, "--reasoning-budget %s: only -1 (think) and 0 (do not) are supported", optarg);
			so.no_thinking = !strcmp(optarg, "0");
			break;
		case 'Q':
			if (parse_long("--queue", optarg, 0, 100000, &queue))
				return EXIT_USAGE;
			break;
		case 'O':
			if (parse_long("--timeout", optarg, 1, 86400, &timeout))
				return EXIT_USAGE;
			break;
		case 'G':
			if (strcmp(optarg, "cost") && strcmp(optarg, "equal"))
				return usage_error(CMD, "--pipeline-groups %s: want cost or equal", optarg);
			split.equal_groups = !strcmp(optarg, "equal");
			break;
		case OPT_SPLIT: case OPT_MPI_TIMEOUT:
			if ((rc = split_args_option(CMD, &split, c, optarg)))
				return rc;
			break;
		case 'h': fputs(usage, stdout); return 0;
		case '?': fputs(usage, stderr); return EXIT_USAGE;
		default:
			if ((rc = run_experts_option(&rx, c, optarg)))
				return rc;
		}
	}
	rc = 1;
	if (optind < argc)
		rc = usage_error(CMD, "unexpected argument '%s'", argv[optind]);
	else if (split.equal_groups && !split.kind)
		rc = usage_error(CMD, "--pipeline-groups: only with --split layers (a pipeline)");
	else if (model_args_check(&ma, CMD, true))
		rc = EXIT_USAGE;
	else if (tmpl_file && !(tmpl_text = read_text(tmpl_file)))
		rc = usage_error(CMD, "--chat-template-file %s: cannot read it (or it is over 1 MiB)", tmpl_file);
	else if (key_file && !(key_buf = read_text(key_file)))
		rc = usage_error(CMD, "--api-key-file %s: cannot read it", key_file);
	else if (key_file && !*(key_buf[strcspn(key_buf, "\r\n")] = '\0', key_buf))
		rc = usage_error(CMD, "--api-key-file %s: the first line is empty", key_file);
	else if (key_file)
		so.api_key = key_buf;
	if (rc == EXIT_USAGE)
		goto out;

	if ((rc = model_args_open(&ma, CMD, &model)))
		goto out;
	rc = 1;
	err = tm_tokenizer_load(&tok, &model.gguf);
	if (err) {
		rc = err == -ENOMEM ? run_error(CMD, "out of memory") :
		     usage_error(CMD, "%s: no usable vocabulary: %s", model_args_label(&ma), tm_strerror());
		goto out;
	}
	if (!ctx_given && ctx > model.hp.n_ctx_train)
		ctx = model.hp.n_ctx_train;
	if ((follower = split_args_follower(CMD, &split)) < 0) {
		rc = -follower;
		goto out;
	}
	/* ranks on one machine would all pin to its first CPUs: under --split the scheduler places them */
	pool = tm_pool_create((int)ma.threads, split.kind ? 0 : TM_POOL_PIN);
	if (!pool) {
		rc = run_error(CMD, "cannot start %ld threads", ma.threads);
		goto out;
	}
	model_id(id, sizeof(id), model_args_label(&ma));
	so.model_id = alias ? alias : id;
	so.port = (int)port;
	so.parallel = (int)parallel;
	so.ctx_size = (int)ctx;
	so.batch_size = (int)batch;
	so.ubatch_size = (int)ubatch;
	so.queue = (int)queue;
	so.timeout_s = (int)timeout;
	so.chat_template_text = tmpl_text;
	so.test_reply = getenv("TIERMEM_SERVE_TEST_REPLY");
	if (so.test_reply)
		fprintf(stderr, "%s: TIERMEM_SERVE_TEST_REPLY is set: every completion is its text, not the model's (tests only)\n",
			CMD);
	so.type_k = ma.type_k;
	so.type_v = ma.type_v;
	so.no_http = follower;
	/* before the server's threads start, so they inherit the mask: signals come here */
	if (!follower) {
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	/* the cache's region is one of the model's mappings: made before the server counts them */
	rx.name = ma.name;
	split.heat = rx.heat;
	if ((rc = split_args_part(CMD, &split, &model, ma.name, &rx.part)))
		goto out;
	if ((rc = run_experts_setup(&rx, &model, NULL)))
		goto out;
	rc = 1;
	err = tm_serve_create(&srv, &so, &model, tok, pool);
	if (err) {
		rc = err == -EINVAL ? usage_error(CMD, "%s", tm_strerror()) : run_error(CMD, "%s", tm_strerror());
		goto out;
	}
	if (rx.x)
		tm_serve_expert_cache(srv, rx.x);
	/* a follower returns from here when rank 0 stops it */
	if ((rc = split_args_serve(CMD, &split, srv, ma.name)) || follower)
		goto out;
	rc = 1;
	/* rank 0 stops the others itself: not the MPI runtime's handler, which would end it at once */
	if (split.kind) {
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	fprintf(stderr, "tiermem serve: %s (%s, %.1f MiB, %s %s) on http://%s%s%s:%d/ with %d slots of %d tokens, "
		"chat template %s\n", so.model_id, model.hp.arch_name, model.bytes_total / 1048576.0,
		tm_tier_name(model.maps[0].tier), model.maps[0].backend, strchr(so.host, ':') ? "[" : "", so.host,
		strchr(so.host, ':') ? "]" : "", tm_serve_port(srv), so.parallel, so.ctx_size,
		tm_serve_chat_template(srv));
	err = tm_serve_run(srv, &stop);
	split_args_serve_stop(&split);
	rc = err ? run_error(CMD, "%s", tm_strerror()) : 0;
	if (!rc)
		fprintf(stderr, "tiermem serve: stopped\n");
out:
	tm_serve_free(srv);
	split_args_free(&split);
	run_experts_free(&rx);
	tm_pool_destroy(pool);
	tm_tokenizer_free(tok);
	tm_model_free(&model);
	free(tmpl_text);
	free(key_buf);
	return rc;
}
