// SPDX-License-Identifier: MIT
/*
 * Copy a GGUF with one deliberate change, for negative checks (tiermem run on
 * a wrong model must FAIL against llama.cpp on the original) and bad-input
 * tests. Test-side only: the product has no such hook.
 *
 *   gguf-patch IN OUT SUFFIX zero|swap-heads   every tensor whose name ends in SUFFIX
 *   gguf-patch IN OUT NAME drop-key            the key or tensor renamed (last byte '~'): missing
 *   gguf-patch IN OUT KEY set-u32 VALUE        a u32 key's value
 *
 * zero: all bytes 0 (an f32 routing bias of 0 is a dropped bias).
 * swap-heads: for a 3-D tensor (ne[2] matrices), matrices 0 and 1 swapped:
 * MLA's attn_k_b absorbed with the wrong head's matrix.
 * Exit 0 when written, 2 on bad usage or when nothing matched.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/gguf.h"

int main(int argc, char **argv)
{
	struct tm_gguf g;
	FILE *f;
	long size;
	uint8_t *buf;
	int hits = 0;

	bool key_op = argc >= 5 && (!strcmp(argv[4], "drop-key") || !strcmp(argv[4], "set-u32"));

	if (argc < 5 || (!key_op && strcmp(argv[4], "zero") && strcmp(argv[4], "swap-heads")) ||
	    argc != (!strcmp(argv[4], "set-u32") ? 6 : 5)) {
		fprintf(stderr, "usage: gguf-patch IN OUT SUFFIX zero|swap-heads | IN OUT KEY drop-key | IN OUT KEY set-u32 N\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET)) {
		fprintf(stderr, "gguf-patch: cannot read %s\n", argv[1]);
		return 2;
	}
	buf = malloc((size_t)size);
	if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size || tm_gguf_parse(&g, buf, (size_t)size)) {
		fprintf(stderr, "gguf-patch: %s is not a GGUF this build reads\n", argv[1]);
		return 2;
	}
	fclose(f);
	for (uint64_t i = 0; key_op && i < g.n_kv; i++) {
		const struct tm_gguf_kv *kv = &g.kv[i];
		char *k = (char *)kv->key.ptr;

		if (kv->key.len != strlen(argv[3]) || memcmp(k, argv[3], kv->key.len))
			continue;
		if (!strcmp(argv[4], "drop-key")) {
			k[kv->key.len - 1] = '~';
		} else {
			uint32_t v = (uint32_t)strtoul(argv[5], NULL, 0);

			if (kv->type != TM_GGUF_UINT32)
				continue;
			memcpy(k + kv->key.len + 4, &v, 4);
		}
		hits++;
	}
	for (uint64_t i = 0; !strcmp(argv[4], "drop-key") && i < g.n_tensors; i++) {
		char *k = (char *)g.tensors[i].name.ptr;

		if (g.tensors[i].name.len == strlen(argv[3]) && !memcmp(k, argv[3], g.tensors[i].name.len)) {
			k[g.tensors[i].name.len - 1] = '~';
			hits++;
		}
	}
	for (uint64_t i = 0; !key_op && i < g.n_tensors; i++) {
		const struct tm_gguf_tensor *t = &g.tensors[i];
		size_t sl = strlen(argv[3]);
		uint8_t *d = (uint8_t *)t->data;

		if (t->name.len < sl || memcmp(t->name.ptr + t->name.len - sl, argv[3], sl))
			continue;
		if (!strcmp(argv[4], "zero")) {
			memset(d, 0, t->nbytes);
		} else {
			size_t m = t->nbytes / (size_t)t->ne[2];
			uint8_t *tmp = malloc(m);

			if (t->ne[2] < 2 || !tmp)
				continue;
			memcpy(tmp, d, m);
			memcpy(d, d + m, m);
			memcpy(d + m, tmp, m);
			free(tmp);
		}
		hits++;
	}
	if (!hits) {
		fprintf(stderr, "gguf-patch: nothing in %s matches %s\n", argv[1], argv[3]);
		return 2;
	}
	f = fopen(argv[2], "wb");
	if (!f || fwrite(buf, 1, (size_t)size, f) != (size_t)size || fclose(f)) {
		fprintf(stderr, "gguf-patch: cannot write %s\n", argv[2]);
		return 1;
	}
	tm_gguf_free(&g);
	free(buf);
	return 0;
}
