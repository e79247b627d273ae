// SPDX-License-Identifier: MIT
/*
 * Writes small valid GGUF files (the fuzzer's seeds) into a directory and
 * checks that each parses: kvs of every type, tensors of every type, two
 * alignments, and a file with no tensors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/gguf_write.h"

static int seed(const char *dir, int k)
{
	static const uint32_t types[] = { TM_F32, TM_F16, TM_BF16, TM_Q8_0, TM_Q4_0, TM_Q4_K, TM_Q5_K, TM_Q6_K };
	const char *strs[] = { "<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81the" };
	float scores[5] = { 0, 0, 0, -1, -2 };
	int32_t tt[5] = { 2, 3, 3, 6, 1 };
	uint8_t flags[2] = { 0, 1 };
	struct tm_gguf_writer *w;
	char path[512];
	int err;

	snprintf(path, sizeof(path), "%s/seed-%d.gguf", dir, k);
	if ((err = tm_gguf_writer_new(&w, k == 1 ? 64 : 0)))
		return err;
	err = tm_gguf_writer_set_str(w, "general.architecture", k == 2 ? "qwen3" : "llama");
	err = err ?: tm_gguf_writer_set_u32(w, "llama.block_count", 1);
	err = err ?: tm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	err = err ?: tm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, 5);
	err = err ?: tm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", 6, scores, 5);
	err = err ?: tm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", 5, tt, 5);
	err = err ?: tm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
	if (k == 0) {
		err = err ?: tm_gguf_writer_set_u8(w, "x.u8", 1);
		err = err ?: tm_gguf_writer_set_i8(w, "x.i8", -1);
		err = err ?: tm_gguf_writer_set_u16(w, "x.u16", 2);
		err = err ?: tm_gguf_writer_set_i16(w, "x.i16", -2);
		err = err ?: tm_gguf_writer_set_i32(w, "x.i32", -3);
		err = err ?: tm_gguf_writer_set_u64(w, "x.u64", 4);
		err = err ?: tm_gguf_writer_set_i64(w, "x.i64", -4);
		err = err ?: tm_gguf_writer_set_f64(w, "x.f64", 0.5);
		err = err ?: tm_gguf_writer_set_arr(w, "x.bools", TM_GGUF_BOOL, flags, 2);
	}
	for (int i = 0; !err && k != 3 && i < 8; i++) {
		int64_t ne[3] = { types[i] >= TM_Q4_K && types[i] <= TM_Q6_K ? 256 : 32, 2, 1 + (i & 1) };
		char name[32];

		if (k == 2 && i > 2)
			break;
		snprintf(name, sizeof(name), "blk.0.t%d.weight", i);
		err = tm_gguf_writer_add_tensor(w, name, types[i], (uint32_t)(i % 3 + 1), ne);
	}
	err = err ?: tm_gguf_writer_begin(w, path);
	if (!err) {
		uint64_t n = tm_gguf_writer_total_bytes(w);
		uint8_t *p = calloc(1, n + 1);

		for (uint64_t i = 0; i < n; i++)
			p[i] = (uint8_t)(i * 13 + 5);
		for (uint32_t i = 0; !err && tm_gguf_writer_tensor_bytes(w, i); i++)
			err = tm_gguf_writer_data(w, p, tm_gguf_writer_tensor_bytes(w, i));
		free(p);
	}
	err = err ?: tm_gguf_writer_finish(w);
	tm_gguf_writer_free(w);
	if (err)
		return err;

	FILE *f = fopen(path, "rb");
	struct tm_gguf g;
	long n;
	uint8_t *p;

	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	p = malloc((size_t)n);
	if (fread(p, 1, (size_t)n, f) != (size_t)n)
		err = -1;
	fclose(f);
	err = err ?: tm_gguf_parse(&g, p, (size_t)n);
	if (!err)
		tm_gguf_free(&g);
	free(p);
	return err;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds DIR\n");
		return 2;
	}
	for (int k = 0; k < 4; k++)
		if (seed(argv[1], k)) {
			fprintf(stderr, "make_seeds: seed %d: %s\n", k, tm_strerror());
			return 1;
		}
	return 0;
}
