// SPDX-License-Identifier: MIT
/*
 * llama.cpp's decode speed without node: a small driver against the
 * libllama of node-llama-cpp's prebuilt binaries (the peer the project
 * pins), so the CUDA build can reach a GPU machine that has no node and
 * takes 64 MiB a call (bench/gpu-peer-stage.sh builds it against the
 * release's own llama.h, extracted from the package's source bundle; it is
 * not part of `make`). Loads the model with every layer on the GPU
 * (-ngl), optionally llama.cpp's -ot PATTERN=CPU (routed experts in host
 * memory, computed by the CPU), evaluates a prompt of -p tokens, then
 * decodes -n tokens greedily one at a time, and prints one JSON line:
 * prompt and decode tokens per second, and the GPU it ran on. With -ngl
 * above 0 and no GPU backend loaded (no CUDA runtime or cuBLAS found), it
 * fails rather than quietly running on the CPU.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int usage(void)
{
	fprintf(stderr, "usage: llama_decode MODEL [-ngl N] [-ot PATTERN=CPU] [-p PROMPT_TOKENS] [-n DECODE_TOKENS] "
		"[-t THREADS] [--libdir DIR]\n");
	return 2;
}

static void quiet(enum ggml_log_level level, const char *text, void *data)
{
	(void)data;
	if (level == GGML_LOG_LEVEL_ERROR)
		fputs(text, stderr);
}

int main(int argc, char **argv)
{
	const char *path = NULL, *ot = NULL, *libdir = NULL;
	int ngl = 999, n_prompt = 16, n_gen = 64, threads = 4;
	struct llama_model_tensor_buft_override over[2] = { { 0 } };
	char pattern[256];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-ngl") && v)
			ngl = atoi(argv[++i]);
		else if (!strcmp(a, "-ot") && v)
			ot = argv[++i];
		else if (!strcmp(a, "-p") && v)
			n_prompt = atoi(argv[++i]);
		else if (!strcmp(a, "-n") && v)
			n_gen = atoi(argv[++i]);
		else if (!strcmp(a, "-t") && v)
			threads = atoi(argv[++i]);
		else if (!strcmp(a, "--libdir") && v)
			libdir = argv[++i];
		else if (a[0] != '-' && !path)
			path = a;
		else
			return usage();
	}
	if (!path || n_prompt < 1 || n_gen < 1 || threads < 1)
		return usage();
	llama_log_set(quiet, NULL);
	/* the release loads its backends (CPU variants, CUDA) as modules from its directory */
	if (libdir)
		ggml_backend_load_all_from_path(libdir);
	else
		ggml_backend_load_all();
	llama_backend_init();

	char gpu[256] = "";

	for (size_t i = 0; i < ggml_backend_dev_count(); i++)
		if (ggml_backend_dev_type(ggml_backend_dev_get(i)) == GGML_BACKEND_DEVICE_TYPE_GPU && !gpu[0])
			snprintf(gpu, sizeof(gpu), "%s", ggml_backend_dev_description(ggml_backend_dev_get(i)));
	if (ngl > 0 && !gpu[0]) {
		fprintf(stderr, "llama_decode: -ngl %d but no GPU backend loaded (is the CUDA runtime and cuBLAS on "
			"LD_LIBRARY_PATH?)\n", ngl);
		return 1;
	}
	for (char *c = gpu; *c; c++)	/* it goes into a JSON string */
		if (*c == '"' || *c == '\\')
			*c = ' ';

	struct llama_model_params mp = llama_model_default_params();

	mp.n_gpu_layers = ngl;
	if (ot) {
		const char *eq = strrchr(ot, '=');
		ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);

		if (!eq || strcmp(eq + 1, "CPU") || (size_t)(eq - ot) >= sizeof(pattern) || !cpu) {
			fprintf(stderr, "llama_decode: -ot takes PATTERN=CPU\n");
			return 2;
		}
		memcpy(pattern, ot, (size_t)(eq - ot));
		pattern[eq - ot] = '\0';
		over[0].pattern = pattern;
		over[0].buft = ggml_backend_dev_buffer_type(cpu);
		mp.tensor_buft_overrides = over;
	}
	struct llama_model *model = llama_model_load_from_file(path, mp);

	if (!model) {
		fprintf(stderr, "llama_decode: cannot load %s\n", path);
		return 1;
	}
	struct llama_context_params cp = llama_context_default_params();

	cp.n_ctx = (uint32_t)(n_prompt + n_gen + 8);
	cp.n_batch = (uint32_t)n_prompt;
	cp.n_ubatch = (uint32_t)n_prompt;
	cp.n_threads = threads;
	cp.n_threads_batch = threads;
	struct llama_context *ctx = llama_init_from_model(model, cp);
	const struct llama_vocab *vocab = llama_model_get_vocab(model);
	int V = llama_vocab_n_tokens(vocab);
	llama_token *prompt = malloc(sizeof(llama_token) * n_prompt), tok;
	double t0, t1, t2;
	int err = 0;

	if (!ctx || !prompt) {
		fprintf(stderr, "llama_decode: cannot create a context\n");
		return 1;
	}
	for (int i = 0; i < n_prompt; i++)	/* fixed ids: the same prompt for every run */
		prompt[i] = (llama_token)((i * 7919 + 13) % V);
	t0 = now_s();
	err = llama_decode(ctx, llama_batch_get_one(prompt, n_prompt));
	t1 = now_s();
	for (int i = 0; i < n_gen && !err; i++) {
		const float *lg = llama_get_logits_ith(ctx, -1);
		int best = 0;

		for (int j = 1; j < V; j++)
			if (lg[j] > lg[best])
				best = j;
		tok = best;
		err = llama_decode(ctx, llama_batch_get_one(&tok, 1));
	}
	t2 = now_s();
	if (err) {
		fprintf(stderr, "llama_decode: llama_decode failed (%d)\n", err);
		return 1;
	}
	printf("{\"prompt_tokens\":%d,\"prompt_tok_s\":%.3f,\"decode_tokens\":%d,\"decode_tok_s\":%.3f,\"ngl\":%d,"
	       "\"ot\":\"%s\",\"gpu\":\"%s\"}\n", n_prompt, n_prompt / (t1 - t0), n_gen, n_gen / (t2 - t1), ngl,
	       ot ? ot : "", gpu);
	free(prompt);
	llama_free(ctx);
	llama_model_free(model);
	llama_backend_free();
	return 0;
}
