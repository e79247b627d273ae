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
	ret = tm_model_open(&m, argv[1], load);
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

	printf("{\"model\":\"%s\",\"backend\":\"%s\",\"threads\":%d,\"isa\":\"%s\",\"prompt_tokens\":%d,\"gen_tokens\":%d,"
	       "\"prefill_s\":%.6f,\"prefill_tok_s\":%.4f,\"decode_s\":%.6f,\"decode_tok_s\":%.4f,"
	       "\"bytes_per_token\":%.0f,\"decode_gbs\":%.4f}\n",
	       argv[1], m.maps[0].backend, nt, tm_kernels_isa(), np, ng, t_pre, np / t_pre, t_dec, ng / t_dec,
	       (double)(c->weight_bytes - b0) / ng, (double)(c->weight_bytes - b0) / t_dec / 1e9);
	free(toks);
	tm_ctx_free(c);
	tm_pool_destroy(pool);
	tm_model_free(&m);
	return 0;
}
