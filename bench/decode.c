// SPDX-License-Identifier: MIT
/*
 * bench/decode: whole-token speed of the forward pass, as llama.cpp's peer
 * bench measures it (tests/peer/llama.mjs bench): prefill of N random prompt
 * tokens in batches, then greedy decode of G tokens one at a time, after a
 * short warm-up. Prints one JSON object. The weights come from the file's
 * mapping, exactly as `tiermem run` reads them.
 *
 * usage: decode MODEL [--prompt-tokens N] [--gen G] [--threads T] [--batch B]
 *                     [--weights auto|mmap|ddr]   (as tiermem run; default auto)
 *                     [--repack on|off]   (as tiermem run; default the kernels' choice)
 *                     [--isa NAME] [--ab ISA_A,ISA_B [--rounds R]]
 *
 * --isa forces a kernel table (tm_kernels_force_isa). --ab measures prefill
 * only, in one process on one context: R rounds, each a prefill under ISA_A
 * then one under ISA_B (the order alternating by round), and prints the
 * medians and the median of the per-round ratios B/A: a before/after that
 * a noisy host cannot skew between the two.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tiermem/error.h"
#include "tiermem/model.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *arg_str(int argc, char **argv, const char *name)
{
	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Prefill tok/s of np tokens from an empty context under the current ISA; < 0 on error. */
static double prefill_tok_s(struct tm_ctx *c, const int32_t *toks, int np)
{
	double t0;

	tm_ctx_reset(c);
	t0 = now_s();
	if (tm_forward(c, toks, np, NULL, false))
		return -1;
	return np / (now_s() - t0);
}

/* --ab A,B: alternating prefill rounds under two ISAs; prints one JSON object. */
static int prefill_ab(struct tm_ctx *c, const int32_t *toks, int np, const char *ab, int rounds, int nt)
{
	char a[32], b[32];
	const char *comma = strchr(ab, ',');
	double *ta, *tb, *ratio;

	if (!comma || comma - ab >= (long)sizeof(a) || strlen(comma + 1) >= sizeof(b) || rounds < 1 || rounds > 1000) {
		fprintf(stderr, "decode: --ab takes two ISA names, A,B, and --rounds 1..1000\n");
		return 2;
	}
	memcpy(a, ab, comma - ab);
	a[comma - ab] = 0;
	strcpy(b, comma + 1);
	if (tm_kernels_force_isa(a) || tm_kernels_force_isa(b)) {
		fprintf(stderr, "decode: --ab %s: an ISA this CPU does not run\n", ab);
		return 2;
	}
	ta = calloc(rounds, sizeof(double));
	tb = calloc(rounds, sizeof(double));
	ratio = calloc(rounds, sizeof(double));
	if (!ta || !tb || !ratio) {
		fprintf(stderr, "decode: out of memory\n");
		return 1;
	}
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < 2; k++) {
			int first_a = r % 2 == 0, use_a = (k == 0) == first_a;
			double v;

			tm_kernels_force_isa(use_a ? a : b);
			v = prefill_tok_s(c, toks, np);
			if (v < 0) {
				fprintf(stderr, "decode: %s\n", tm_strerror());
				return 1;
			}
			*(use_a ? &ta[r] : &tb[r]) = v;
		}
	for (int r = 0; r < rounds; r++)
		ratio[r] = tb[r] / ta[r];
	printf("{\"threads\":%d,\"prompt_tokens\":%d,\"rounds\":%d,\"a\":\"%s\",\"b\":\"%s\","
	       "\"a_prefill_tok_s\":%.3f,\"b_prefill_tok_s\":%.3f,\"b_over_a\":%.3f}\n",
	       nt, np, rounds, a, b, median(ta, rounds), median(tb, rounds), median(ratio, rounds));
	free(ta);
	free(tb);
	free(ratio);
	return 0;
}

static int arg_int(int argc, char **argv, const char *name, int def)
{
	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return atoi(argv[i + 1]);
	return def;
}

int main(int argc, char **argv)
{
	int np, ng, nt, nb, ret;
	struct tm_model m;
	struct tm_pool *pool;
	struct tm_ctx *c;
	int32_t *toks, tok;
	double t0, t_pre, t_dec;
	uint64_t b0;

	if (argc < 2) {
		fprintf(stderr, "usage: decode MODEL [--prompt-tokens N] [--gen G] [--threads T] [--batch B]\n");
		return 2;
	}
	np = arg_int(argc, argv, "--prompt-tokens", 512);
	ng = arg_int(argc, argv, "--gen", 64);
	nt = arg_int(argc, argv, "--threads", (int)sysconf(_SC_NPROCESSORS_ONLN));
	nb = arg_int(argc, argv, "--batch", 512);
	if (np < 1 || ng < 1 || nt < 1 || nb < 1) {
		fprintf(stderr, "decode: counts must be positive\n");
		return 2;
	}
	int load = TM_LOAD_AUTO;

	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--weights") && (load = tm_load_parse(argv[i + 1])) < 0) {
			fprintf(stderr, "decode: --weights: auto, mmap or ddr\n");
			return 2;
		}
	const char *isa = arg_str(argc, argv, "--isa"), *ab = arg_str(argc, argv, "--ab");
	const char *rp = arg_str(argc, argv, "--repack");

	if (isa && tm_kernels_force_isa(isa)) {
		fprintf(stderr, "decode: --isa %s: not an ISA this CPU runs\n", isa);
		return 2;
	}
	if (rp && strcmp(rp, "on") && strcmp(rp, "off")) {
		fprintf(stderr, "decode: --repack: on or off\n");
		return 2;
	}
	/* as tiermem run: the kernels' choice unless told */
	ret = tm_model_open_layout(&m, argv[1], load, rp ? !strcmp(rp, "on") : tm_kernels_repack_default());
	if (ret) {
		fprintf(stderr, "decode: %s\n", tm_strerror());
		return 2;
	}
	pool = tm_pool_create(nt, TM_POOL_PIN);
	if (!pool || tm_ctx_create(&c, &m, pool, np + ng + 8, nb < np ? nb : np)) {
		fprintf(stderr, "decode: %s\n", tm_strerror());
		return 1;
	}
	toks = malloc(sizeof(*toks) * np);
	srand(1);
	for (int i = 0; i < np; i++)
		toks[i] = rand() % m.hp.n_vocab;

	/* warm-up: page tables, caches, the pool's threads */
	tm_forward(c, toks, np < 8 ? np : 8, NULL, false);
	for (int i = 0; i < 4; i++) {
		tok = tm_argmax(c->logits, m.hp.n_vocab);
		tm_forward(c, &tok, 1, NULL, false);
	}
	tm_ctx_reset(c);
	if (ab) {
		ret = prefill_ab(c, toks, np, ab, arg_int(argc, argv, "--rounds", 3), nt);
		free(toks);
		tm_ctx_free(c);
		tm_pool_destroy(pool);
		tm_model_free(&m);
		return ret;
	}

	t0 = now_s();
	if (tm_forward(c, toks, np, NULL, false)) {
		fprintf(stderr, "decode: %s\n", tm_strerror());
		return 1;
	}
	t_pre = now_s() - t0;

	b0 = c->weight_bytes;
	t0 = now_s();
	for (int i = 0; i < ng; i++) {
		tok = tm_argmax(c->logits, m.hp.n_vocab);
		if (tm_forward(c, &tok, 1, NULL, false)) {
			fprintf(stderr, "decode: %s\n", tm_strerror());
			return 1;
		}
	}
	t_dec = now_s() - t0;

	printf("{\"model\":\"%s\",\"backend\":\"%s\",\"threads\":%d,\"isa\":\"%s\",\"layout\":\"%s\",\"prompt_tokens\":%d,\"gen_tokens\":%d,"
	       "\"prefill_s\":%.6f,\"prefill_tok_s\":%.4f,\"decode_s\":%.6f,\"decode_tok_s\":%.4f,"
	       "\"bytes_per_token\":%.0f,\"decode_gbs\":%.4f}\n",
	       argv[1], m.maps[0].backend, nt, tm_kernels_isa(), m.repacked ? "r16" : "gguf", np, ng, t_pre, np / t_pre, t_dec, ng / t_dec,
	       (double)(c->weight_bytes - b0) / ng, (double)(c->weight_bytes - b0) / t_dec / 1e9);
	free(toks);
	tm_ctx_free(c);
	tm_pool_destroy(pool);
	tm_model_free(&m);
	return 0;
}
