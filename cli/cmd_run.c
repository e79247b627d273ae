// SPDX-License-Identifier: MIT
/*
 * tiermem run: generate text from a prompt, streaming each token as it is
 * sampled, then a summary of the speed and of the weight bytes each token
 * read. Without -m it runs a built-in default: a random-weight Q4_K_M-like
 * llama that tiermem synth writes next to the binary the first time.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/model_args.h"
#include "cli/commands.h"
#include "cli/run_experts.h"
#include "cli/gpu_args.h"
#include "cli/split_args.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "tiermem/error.h"
#include "tiermem/generate.h"
#include "tiermem/model.h"
#include "tiermem/runstat.h"
#include "tiermem/sampler.h"
#include "tiermem/store.h"
#include "tiermem/tokenizer.h"

#define CMD "run"
#define DEFAULT_PROMPT "Once upon a time"
#define DEFAULT_MODEL "default-model.gguf"

static const char usage[] =
	"usage: tiermem run [-m MODEL | --name NAME [--no-verify]] [-p PROMPT] [-n N] [-t T]\n"
	"                   [--temp X] [--top-k K] [--top-p P] [--seed S] [--weights auto|mmap|ddr]\n"
	"                   [--repack on|off] [--json] [--gpu | -ngl N] [-ot REGEX=PLACE]\n"
	"\n"
	"Generates text from PROMPT, printing each token as it is sampled, then a summary\n"
	"on stderr: prompt and generation tok/s, weight bytes read per generated token\n"
	"(MoE: the experts actually used) and the bandwidth that makes. Per tier (each\n"
	"mapping that holds weights): bytes read per token, GB/s (its bytes over the decode\n"
	"time), the share of its bandwidth that is (measured in this process before the\n"
	"prompt: tiermem bench's read loop over up to 512 MiB of that mapping, best of 3),\n"
	"and the planner's predicted tok/s (sum over tiers of bytes per token / bandwidth)\n"
	"next to the measured one. While it runs, the same counters are in\n"
	"TIERMEM_HOME/run/PID.stat for `tiermem stats` (removed at exit).\n"
	"\n"
	"  -m, --model FILE   GGUF model (llama, qwen3, qwen3moe). Default: a random-weight\n"
	"                     llama (Q4_K_M-like, 256 MiB) that `tiermem synth` writes as\n"
	"                     " DEFAULT_MODEL " beside the tiermem binary on first use\n"
	"  --name NAME        a model imported into the store (tiermem import): its tier\n"
	"                     regions are mapped, its PMEM and file tiers without a copy,\n"
	"                     and the GGUF is not opened; every tensor's checksum is checked\n"
	"  --no-verify        with --name: skip the checksums of the zero-copy tiers (the\n"
	"                     tiers copied into DDR or node memory are always checked)\n"
	"  -p, --prompt TEXT  the prompt (default \"" DEFAULT_PROMPT "\"); BOS is added if\n"
	"                     the vocabulary asks for it\n"
	"  -n, --n-predict N  tokens to generate (default 64; stops early at end of\n"
	"                     generation or a full context)\n"
	"  -t, --threads T    threads (default: the CPUs this process may use)\n"
	"  --temp X           temperature (default 0.8; 0 is greedy)\n"
	"  --top-k K          keep the K most likely tokens (default 40; 0: all)\n"
	"  --top-p P          keep the fewest tokens whose probability sums to P\n"
	"                     (default 0.95; 1: all)\n"
	"  --seed S           sampling seed (default: from the clock, printed in the summary)\n"
	"  --weights W        where the weights live: mmap (map the file, 4 KiB pages, no\n"
	"                     copy), ddr (read once into 2 MiB pages: faster decode), auto\n"
	"                     (default: ddr if the file takes at most half the free memory)\n"
	"  --repack on|off    on: weights loaded into DDR get the interleaved-row layout\n"
	"                     for q4_K/q6_K/q8_0 (faster decode with the AVX-512 VNNI kernels\n"
	"                     and on AMD Zen/Zen+: default on there, off with other\n"
	"                     AVX2 ones; mmap keeps the GGUF's; off with --gpu); a\n"
	"                     stored model has the layout import gave it\n"
	"  -ctk, --cache-type-k T, -ctv, --cache-type-v T\n"
	"                     KV cache types: f16 (default, as llama.cpp), f32 or q8_0\n"
	"                     (half f16's bytes; not for deepseek2; CPU decode: --gpu\n"
	"                     keeps its own f32 cache)\n"
	"  --json             print one JSON object on stdout instead: the generated text\n"
	"                     and the summary (nothing else on stdout)\n"
	RUN_EXPERTS_USAGE
	SPLIT_HELP
	"                     (rank 0 samples, prints the text and a per-rank summary)\n"
	GPU_ARGS_HELP;

struct stream {
	const struct tm_tokenizer *tok;
	struct run_experts *rx;
	char buf[256];
	/* --json: the text is kept for the JSON object */
	bool json;
	char *text;
	size_t text_n, text_cap;
	/* live counters: decode starts at the first token sampled */
	const struct tm_ctx *ctx;
	struct tm_runstat_pub *pub;
	uint64_t n_tok, bytes0, map0[TM_MODEL_MAX_MAPS];
	int n_prompt;
	double t0;
};

static void keep_text(struct stream *s, const char *p, size_t n)
{
	if (s->text_n + n + 1 > s->text_cap) {
		size_t cap = (s->text_n + n + 1) * 2;
		char *t = realloc(s->text, cap);

		if (!t)
			return;	/* the summary still comes; the text is cut */
		s->text = t;
		s->text_cap = cap;
	}
	memcpy(s->text + s->text_n, p, n);
	s->text_n += n;
	s->text[s->text_n] = '\0';
}

/*
 * Between tokens: what the decode steps read so far, per tier, for tiermem
 * stats. Called at every token (before its own decode step: the n-th token
 * follows n - 1 steps) and once at the end (done, after the last token, which
 * is not decoded).
 */
static void publish(struct stream *s, int decoding)
{
	const struct tm_ctx *c = s->ctx;
	uint64_t per[TM_MODEL_MAX_MAPS];
	uint64_t n = decoding == 2 ? (s->n_tok ? s->n_tok - 1 : 0) : s->n_tok;
	struct tm_runstat_experts x;

	if (!s->pub || !s->pub->s)
		return;
	if (decoding != 2 && !s->n_tok++) {
		s->t0 = tm_now();
		s->bytes0 = c->weight_bytes;
		memcpy(s->map0, c->map_bytes, sizeof(s->map0));
	}
	for (int i = 0; i < TM_MODEL_MAX_MAPS; i++)
		per[i] = c->map_bytes[i] - s->map0[i];
	tm_runstat_update(s->pub, c, (uint64_t)s->n_prompt, n, tm_now() - s->t0, c->weight_bytes - s->bytes0,
			  per, decoding, run_experts_live(s->rx, c, (int)n, &x) ? &x : NULL);
}

static int on_token(void *arg, int32_t id)
{
	struct stream *s = arg;
	int len;

	run_experts_mark(s->rx, s->ctx);	/* the first token: the prompt is done */
	publish(s, 1);
	if (tm_tokenizer_is_eog(s->tok, id))
		return 1;
	len = tm_token_piece(s->tok, id, false, s->buf, sizeof(s->buf));
	if (len > (int)sizeof(s->buf))
		len = sizeof(s->buf);
	if (len > 0 && s->json) {
		keep_text(s, s->buf, (size_t)len);
	} else if (len > 0) {
		fwrite(s->buf, 1, len, stdout);
		fflush(stdout);
	}
	return 0;
}

/* The counters file goes with the process, also on Ctrl-C. */
static char counters_path[4096];

static void on_signal(int sig)
{
	if (counters_path[0])
		unlink(counters_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int32_t sample(void *sampler, float *logits, int n_vocab)
{
	return tm_sampler_sample(sampler, logits);
}

/* The built-in default model: beside the binary, written by tiermem synth if missing. */
static int default_model(char *path, size_t n)
{
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct stat st;
	char *slash;

	if (len <= 0)
		return run_error(CMD, "cannot find the tiermem binary's directory for the default model");
	exe[len] = '\0';
	slash = strrchr(exe, '/');
	*slash = '\0';
	if ((size_t)snprintf(path, n, "%.*s/%s", (int)(n - sizeof(DEFAULT_MODEL) - 1), exe,
			     DEFAULT_MODEL) >= n)
		return run_error(CMD, "the path of the default model is too long");
	if (!stat(path, &st))
		return 0;
	fprintf(stderr, "tiermem run: no -m given; writing the default model %s with tiermem synth\n", path);
	char *argv[] = { "synth", "--arch", "llama", "--type", "q4_K_M", "--size", "256M",
			 "--seed", "1", "-q", "-o", path, NULL };
	int rc, saved;

	/* synth describes the file on stdout; keep stdout for the generated text */
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	if (saved >= 0)
		dup2(STDERR_FILENO, STDOUT_FILENO);
	rc = cmd_synth(sizeof(argv) / sizeof(argv[0]) - 1, argv);
	fflush(stdout);
	if (saved >= 0) {
		dup2(saved, STDOUT_FILENO);
		close(saved);
	}

	if (rc)
		return run_error(CMD, "could not write the default model %s", path);
	return 0;
}

/* An imported model: which tier, backend and place each of its mappings is. */
static void print_tiers(const struct tm_model *m)
{
	if (!m->maps[0].tier_name[0])
		return;
	for (int i = 0; i < m->n_maps; i++)
		fprintf(stderr, "tier %-8s %-5s %9.1f MiB  %s%s%s\n", m->maps[i].tier_name,
			tm_tier_name(m->maps[i].tier), m->maps[i].size / 1048576.0, m->maps[i].backend,
			m->maps[i].path[0] ? ": " : "", m->maps[i].path);
}

static void summary(const struct tm_model *m, const struct tm_gen_stats *st, int threads, uint64_t seed,
		    const struct tm_sampler_params *sp, const struct tm_gpu_info *gpu, double t_load)
{
	double per_tok = st->n_decoded ? (double)st->bytes_decode / st->n_decoded : 0;

	if (gpu->name[0])
		fprintf(stderr, "\n\n%s: %d layers, dim %d, %s%.1f MiB of weights in VRAM (GPU: %s, CUDA %d.%d)\n",
			m->hp.arch_name, m->hp.n_layer, m->hp.n_embd, m->hp.moe ? "MoE, " : "",
			m->bytes_total / 1048576.0, gpu->name, gpu->runtime_version / 1000,
			gpu->runtime_version % 1000 / 10);
	else
		fprintf(stderr, "\n\n%s: %d layers, dim %d, %s%.1f MiB of weights (%s, %s); %d threads, %s kernels\n",
			m->hp.arch_name, m->hp.n_layer, m->hp.n_embd, m->hp.moe ? "MoE, " : "",
			m->bytes_total / 1048576.0, tm_tier_name(m->maps[0].tier), m->maps[0].backend, threads,
			tm_kernels_isa());
	print_tiers(m);
	/* time to first token = load + prompt (the bandwidth measurement between them is not counted) */
	fprintf(stderr, "load:        %8.3f s to open the model (map, copy, checksums, vocabulary)\n", t_load);
	fprintf(stderr, "prompt:      %5d tokens in %8.3f s = %8.1f tok/s\n", st->n_prompt, st->t_prompt,
		st->t_prompt > 0 ? st->n_prompt / st->t_prompt : 0);
	if (st->n_decoded)
		fprintf(stderr, "generation:  %5d tokens in %8.3f s = %8.1f tok/s (%d sampled; temp %g, top-k %d, top-p %g, seed %llu)\n",
			st->n_decoded, st->t_decode, st->n_decoded / st->t_decode, st->n_sampled,
			sp->temperature, (int)sp->top_k, sp->top_p, (unsigned long long)seed);
	else
		fprintf(stderr, "generation:  1 token sampled from the prompt's logits, no decode step to time\n");
	if (st->n_decoded)
		fprintf(stderr, "weights:     %.1f MiB read per token, %.2f GB/s; %.0f pool hand-offs per token\n",
			per_tok / 1048576.0, st->bytes_decode / st->t_decode / 1e9,
			(double)st->handoffs_decode / st->n_decoded);
}

/*
 * Per tier: bytes read per token, GB/s (those bytes over the whole decode
 * time, so the shares of the tiers add up to the part of the time they keep
 * busy at their measured bandwidth), and the planner's prediction.
 */
struct tier_row {
	double per_tok, gbps, share;
};

static double tier_rows(const struct tm_model *m, const struct tm_gen_stats *st,
			const struct tm_run_tier *tiers, struct tier_row *r)
{
	double per[TM_MODEL_MAX_MAPS] = { 0 };

	for (int i = 0; i < m->n_maps; i++) {
		per[i] = st->n_decoded ? (double)st->map_bytes_decode[i] / st->n_decoded : 0;
		r[i].per_tok = per[i];
		r[i].gbps = st->t_decode > 0 ? st->map_bytes_decode[i] / st->t_decode / 1e9 : 0;
		r[i].share = tiers[i].bench_gbps > 0 ? r[i].gbps / tiers[i].bench_gbps : 0;
	}
	return tm_run_predict_tps(tiers, per, m->n_maps);
}

static void tier_summary(const struct tm_model *m, const struct tm_gen_stats *st,
			 const struct tm_run_tier *tiers)
{
	struct tier_row r[TM_MODEL_MAX_MAPS];
	double pred = tier_rows(m, st, tiers, r);

	if (!st->n_decoded)
		return;
	fprintf(stderr, "tier         backend      read/token        GB/s   bench GB/s   share\n");
	for (int i = 0; i < m->n_maps; i++)
		fprintf(stderr, "%-12s %-10s %10.2f MiB  %10.2f  %11.2f  %5.1f%%%s\n", tiers[i].tier,
			tiers[i].backend, r[i].per_tok / 1048576.0, r[i].gbps, tiers[i].bench_gbps,
			100 * r[i].share, m->maps[i].tier == TM_TIER_FILE ? "  (file: not persistent memory)" : "");
	fprintf(stderr, "tok/s:       predicted %.1f (planner: sum of bytes/token / bench GB/s), measured %.1f\n",
		pred, st->n_decoded / st->t_decode);
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2 : p[0] >= 0xe0 && p[0] < 0xf0 ? 3 :
		     p[0] >= 0xf0 && p[0] < 0xf5 ? 4 : 0;

	if (!len || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;	/* overlong, surrogate, beyond U+10FFFF */
	return len;
}

/*
 * JSON strings are UTF-8; a token may end inside a character (byte-level
 * BPE), so bytes that are not valid UTF-8 become U+FFFD.
 */
static json_t *json_text(const char *text, size_t n)
{
	char *buf = malloc(n * 3 + 1);
	size_t o = 0;
	json_t *j;

	if (!buf)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq((const unsigned char *)text + i, n - i);

		if (len) {
			memcpy(buf + o, text + i, len);
			o += len;
			i += len;
		} else {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j;
}

static int json_summary(const struct tm_model *m, const struct tm_gen_stats *st,
			const struct tm_run_tier *tiers, const struct stream *out, uint64_t seed,
			double t_load, json_t *experts)
{
	struct tier_row r[TM_MODEL_MAX_MAPS];
	double pred = tier_rows(m, st, tiers, r);
	json_t *root, *arr = json_array();
	int rc;

	for (int i = 0; i < m->n_maps; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s, s:f, s:f, s:f, s:f}", "tier", tiers[i].tier,
						     "backend", tiers[i].backend, "read_per_token", r[i].per_tok,
						     "gbps", r[i].gbps, "bench_gbps", tiers[i].bench_gbps,
						     "share", r[i].share));
	root = json_pack("{s:o, s:s, s:f, s:i, s:i, s:f, s:f, s:I, s:f, s:f, s:f, s:I, s:o}",
			 "text", json_text(out->text ? out->text : "", out->text_n), "arch", m->hp.arch_name,
			 "load_s", t_load,
			 "n_prompt", st->n_prompt, "n_decoded", st->n_decoded,
			 "prompt_tps", st->t_prompt > 0 ? st->n_prompt / st->t_prompt : 0,
			 "decode_tps", st->t_decode > 0 && st->n_decoded ? st->n_decoded / st->t_decode : 0,
			 "bytes_per_token", (json_int_t)(st->n_decoded ? st->bytes_decode / st->n_decoded : 0),
			 "decode_gbps", st->t_decode > 0 ? st->bytes_decode / st->t_decode / 1e9 : 0,
			 "predicted_tps", pred, "measured_tps",
			 st->t_decode > 0 && st->n_decoded ? st->n_decoded / st->t_decode : 0,
			 "seed", (json_int_t)seed, "tiers", arr);
	if (!root) {
		json_decref(experts);
		return run_error(CMD, "building the JSON summary failed");
	}
	if (experts)
		json_object_set_new(root, "experts", experts);
	rc = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	putchar('\n');
	return rc ? run_error(CMD, "writing the JSON summary failed") : 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		MODEL_ARGS_OPTIONS,
		{ "prompt", required_argument, NULL, 'p' },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "temp", required_argument, NULL, 'T' },
		{ "top-k", required_argument, NULL, 'K' },
		{ "top-p", required_argument, NULL, 'P' },
		{ "seed", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		RUN_EXPERTS_OPTIONS,
		SPLIT_OPTIONS,
		{ "gpu", no_argument, NULL, 'G' },
		{ "n-gpu-layers", required_argument, NULL, 'L' },
		GPU_ARGS_OT_OPTION,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *prompt = DEFAULT_PROMPT, *model_path;
	struct model_args ma;
	char defpath[PATH_MAX];
	long n_predict = 64, top_k = 40;
	double temp = 0.8, top_p = 0.95;
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	double t_load = 0;
	struct tm_sampler_params sp;
	struct tm_model model = { 0 };
	struct tm_tokenizer *tok = NULL;
	struct tm_sampler *sampler = NULL;
	struct tm_pool *pool = NULL;
	struct tm_ctx *ctx = NULL;
	struct tm_gen_stats st;
	struct stream out = { 0 };
	struct tm_run_tier tiers[TM_MODEL_MAX_MAPS];
	struct tm_runstat_pub pub = { 0 };
	bool json = false;
	struct run_experts rx;
	struct tm_gpu_info gpu = { 0 };
	long ngl = 0;
	struct gpu_ot ot = { 0 };
	int32_t *ids = NULL;
	int c, n, err, rc = 1;
	bool handled;
	char *end;
	struct split_args split;
	tm_sample_fn sample_fn = sample;
	void *sample_arg;

	split_args_init(&split);
	run_experts_init(&rx, CMD);
	model_args_init(&ma, TM_LOAD_AUTO, TM_F16);
	model_args_rewrite(argc, argv);
	optind = 1;
	gpu_args_rewrite(argc, argv);
	while ((c = getopt_long(argc, argv, "m:p:n:t:h", opts, NULL)) != -1) {
		if ((rc = model_args_option(&ma, CMD, c, optarg, &handled)))
			return rc;
		if (handled)
			continue;
		switch (c) {
		case 'p': prompt = optarg; break;
		case OPT_SPLIT: case OPT_MPI_TIMEOUT:
			if ((rc = split_args_option(CMD, &split, c, optarg)))
				return rc;
			break;
		case 'G': ngl = -1; break;
		case GPU_ARGS_OT:
			if (gpu_args_parse_ot(CMD, optarg, &ot))
				return EXIT_USAGE;
			break;
		case 'L':
			if (gpu_args_parse_ngl(CMD, optarg, &ngl))
				return EXIT_USAGE;
			break;
		case 'n':
			if (parse_long("-n", optarg, LONG_MIN, LONG_MAX, &n_predict))
				return EXIT_USAGE;
			if (n_predict < 1)
				return usage_error(CMD, "-n %ld: nothing to generate; give 1 or more tokens", n_predict);
			break;
		case 'T':
			if (parse_double("--temp", optarg, 0, 100, &temp))
				return EXIT_USAGE;
			break;
		case 'K':
			if (parse_long("--top-k", optarg, 0, INT32_MAX, &top_k))
				return EXIT_USAGE;
			break;
		case 'P':
			if (parse_double("--top-p", optarg, 0, 1, &top_p))
				return EXIT_USAGE;
			if (top_p <= 0)
				return usage_error(CMD, "--top-p must be above 0");
			break;
		case 'S':
			errno = 0;
			seed = strtoull(optarg, &end, 10);
			if (!*optarg || *end || errno || *optarg == '-')
				return usage_error(CMD, "--seed: '%s' is not a whole number >= 0", optarg);
			break;
		case 'j': json = true; break;
		case RX_CACHE: case RX_POLICY: case RX_COPY: case RX_GBPS: case RX_PREDICT: case RX_HEAT:
			if ((rc = run_experts_option(&rx, c, optarg)))
				return rc;
			break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error(CMD, "unexpected argument '%s' (quote the prompt: -p \"...\")", argv[optind]);
	if ((rc = gpu_args_probe(CMD, ngl, &ot)))
		return rc;
	if ((rc = model_args_check(&ma, CMD, false)))
		return rc;
	if (!ma.path && !ma.name) {
		if ((rc = default_model(defpath, sizeof(defpath))))
			return rc;
		ma.path = defpath;
	}
	model_path = model_args_label(&ma);

	if (ngl || ot.n)	/* the GPU kernels read the GGUF layout */
		ma.repack = false;
	t_load = tm_now();
	if ((rc = model_args_open(&ma, CMD, &model)))
		return rc;
	err = tm_tokenizer_load(&tok, &model.gguf);
	if (err) {
		rc = err == -ENOMEM ? run_error(CMD, "out of memory") :
		     usage_error(CMD, "%s: no usable vocabulary: %s", model_path, tm_strerror());
		goto out;
	}
	t_load = tm_now() - t_load;
	n = tm_tokenize_alloc(tok, prompt, strlen(prompt), true, false, &ids);
	if (n < 0) {
		rc = run_error(CMD, "tokenizing the prompt failed: %s", tm_strerror());
		goto out;
	}
	if (n == 0) {
		rc = usage_error(CMD, "the prompt is empty and the vocabulary adds no BOS: nothing to start from");
		goto out;
	}
	if (n > model.hp.n_ctx_train) {
		rc = usage_error(CMD, "the prompt is %d tokens; the model's context is %d", n,
				 model.hp.n_ctx_train);
		goto out;
	}
	tm_sampler_params_init(&sp);
	sp.temperature = (float)temp;
	sp.top_k = (int32_t)top_k;
	sp.top_p = (float)top_p;
	sp.seed = seed;
	if ((err = tm_sampler_create(&sampler, &sp, model.hp.n_vocab))) {
		rc = usage_error(CMD, "%s", tm_strerror());
		goto out;
	}
	/* ranks on one machine would all pin to its first CPUs: under --split the scheduler places them */
	pool = tm_pool_create((int)ma.threads, split.kind ? 0 : TM_POOL_PIN);
	if (!pool) {
		rc = run_error(CMD, "cannot start %ld threads", ma.threads);
		goto out;
	}
	/*
	 * The cache holds the prompt and every token but the last, which is
	 * never evaluated; -n beyond the model's context stops when it is full
	 * (n <= n_ctx_train here, so the sum cannot overflow).
	 */
	long n_ctx = n_predict >= model.hp.n_ctx_train ? model.hp.n_ctx_train : n + n_predict - 1;

	if (n_ctx > model.hp.n_ctx_train)
		n_ctx = model.hp.n_ctx_train;
	if ((err = tm_ctx_create_kv(&ctx, &model, pool, (int)n_ctx, 64, ma.type_k, ma.type_v))) {
		rc = tm_model_err_is_input(err) ? usage_error(CMD, "%s", tm_strerror())
						    : run_error(CMD, "%s", tm_strerror());
		goto out;
	}
	/* an expert cache in VRAM exists before the context moves there */
	if ((ngl && (rc = run_experts_setup_gpu(&rx, &model, ctx->n_batch, &ot))) ||
	    (rc = gpu_args_attach(CMD, ctx, ngl, &ot, &gpu, rx.xv)))
		goto out;
	/* before the tiers are measured: the cache region is a tier of the run */
	rx.name = ma.name;
	split.heat = rx.heat;
	if ((rc = split_args_part(CMD, &split, &model, ma.name, &rx.part)))
		goto out;
	if ((rc = run_experts_setup(&rx, &model, ctx)))
		goto out;
	rc = 1;
	if ((err = tm_run_tiers_measure(&model, pool, tiers))) {
		rc = run_error(CMD, "measuring the tiers' bandwidth: %s", tm_strerror());
		goto out;
	}
	/* best effort: a run without a writable TIERMEM_HOME still runs, unwatched */
	if (tm_runstat_create(&pub, model_path, &model, tiers))
		fprintf(stderr, "tiermem run: not published for tiermem stats: %s\n", tm_strerror());
	if (pub.s) {
		snprintf(counters_path, sizeof(counters_path), "%s", pub.path);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
	}
	/* after the handlers above: the runtime's SIGTERM then says why, and still removes the counters */
	if ((rc = split_args_start(CMD, &split, ctx, ma.name)))
		goto out;
	rc = 1;
	/* one rank writes the text */
	if (split_args_rank(&split) && !freopen("/dev/null", "w", stdout)) {
		rc = run_error(CMD, "cannot silence rank %d's stdout", split_args_rank(&split));
		goto out;
	}
	sample_arg = sampler;
	split_args_sampler(&split, &sample_fn, &sample_arg);
	out.json = json;
	if (json)
		keep_text(&out, prompt, strlen(prompt));
	else
		fputs(prompt, stdout);
	fflush(stdout);
	out.tok = tok;
	out.ctx = ctx;
	out.rx = &rx;
	out.pub = &pub;
	out.n_prompt = n;
	err = tm_generate(ctx, ids, n, (int)(n_predict > INT_MAX ? INT_MAX : n_predict), sample_fn, sample_arg,
			  on_token, &out, &st);
	if (err) {
		rc = run_error(CMD, "%s", tm_strerror());
		goto out;
	}
	publish(&out, 2);
	split_args_report(&split, stderr, (uint64_t)st.n_decoded);
	if (split_args_rank(&split)) {
		rc = 0;
		goto out;
	}
	if (json) {
		rc = json_summary(&model, &st, tiers, &out, seed, t_load, run_experts_json(&rx, ctx, st.n_decoded));
		goto out;
	}
	summary(&model, &st, (int)ma.threads, seed, &sp, &gpu, t_load);
	if (!gpu.name[0])	/* on the GPU the weights are read from VRAM, not from these mappings */
		tier_summary(&model, &st, tiers);
	else
		gpu_args_summary(ctx, st.n_prompt + st.n_decoded);
	run_experts_summary(&rx, ctx, st.n_decoded, st.t_decode);
	rc = 0;
out:
	split_args_free(&split);
	tm_runstat_remove(&pub);
	counters_path[0] = '\0';
	free(out.text);
	tm_ctx_free(ctx);
	run_experts_free(&rx);	/* after the context: the VRAM cache's bookkeeping outlives its GPU side */
	tm_pool_destroy(pool);
	tm_sampler_free(sampler);
	free(ids);
	tm_tokenizer_free(tok);
	tm_model_free(&model);
	return rc;
}
