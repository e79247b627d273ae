// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the GGUF reader: any input is either refused with a
 * message or yields a table whose every string, array and tensor lies inside
 * the input (touched here, so ASan catches a pointer the reader got wrong).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/error.h"
#include "tiermem/gguf.h"

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n)
{
	if (n) {
		sink ^= ((const uint8_t *)p)[0];
		sink ^= ((const uint8_t *)p)[n - 1];
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A private copy of exactly size bytes: a read past it is an ASan report. */
	uint8_t *copy = malloc(size ? size : 1);
	struct tm_gguf g;

	memcpy(copy, data, size);
	if (tm_gguf_parse(&g, copy, size)) {
		if (!tm_strerror()[0])
			abort();	/* refused without saying why */
		free(copy);
		return 0;
	}
	for (uint64_t i = 0; i < g.n_kv; i++) {
		const struct tm_gguf_kv *kv = &g.kv[i];
		char key[128];
		size_t n = kv->key.len < sizeof(key) - 1 ? kv->key.len : sizeof(key) - 1;

		touch(kv->key.ptr, kv->key.len);
		if (kv->type == TM_GGUF_STRING)
			touch(kv->v.str.ptr, kv->v.str.len);
		if (kv->type == TM_GGUF_ARRAY && kv->v.arr.type == TM_GGUF_STRING)
			for (uint64_t j = 0; j < kv->v.arr.n; j++)
				touch(kv->v.arr.strs[j].ptr, kv->v.arr.strs[j].len);
		memcpy(key, kv->key.ptr, n);
		key[n] = '\0';
		/* Lookups by name must find a kv with that name (keys may hold NULs). */
		const struct tm_gguf_kv *f = tm_gguf_find(&g, key);

		if (!f || strlen(key) != f->key.len || memcmp(f->key.ptr, key, f->key.len)) {
			if (strlen(key) == kv->key.len)
				abort();
		}
		uint32_t u32;
		uint64_t u64;
		float fl;
		bool b;
		struct tm_gguf_str s;

		tm_gguf_get_u32(&g, key, &u32);
		tm_gguf_get_u64(&g, key, &u64);
		tm_gguf_get_f32(&g, key, &fl);
		tm_gguf_get_bool(&g, key, &b);
		tm_gguf_get_str(&g, key, &s);
	}
	for (uint64_t i = 0; i < g.n_tensors; i++) {
		const struct tm_gguf_tensor *t = &g.tensors[i];

		touch(t->name.ptr, t->name.len);
		touch(t->data, t->nbytes);
		if ((const uint8_t *)t->data < copy || (const uint8_t *)t->data + t->nbytes > copy + size)
			abort();
	}
	tm_gguf_free(&g);
	free(copy);
	return 0;
}
