// SPDX-License-Identifier: MIT
/*
 * GGUF writer: what it writes, the reader reads back exactly (every kv type,
 * tensors of every supported type, alignment); an unfinished write leaves no
 * file under the destination name and no temp file behind.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "tap.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/gguf_write.h"

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	rewind(f);
	p = malloc(*n ? *n : 1);
	if (fread(p, 1, *n, f) != *n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static const uint32_t types[] = { TM_F32, TM_F16, TM_BF16, TM_Q8_0, TM_Q4_0, TM_Q4_K, TM_Q5_K, TM_Q6_K };
#define NTYPES (sizeof(types) / sizeof(types[0]))

static int write_file(const char *path, uint32_t align, int stop_early)
{
	struct tm_gguf_writer *w;
	const char *strs[] = { "<unk>", "", "\xc4\xa0the" };
	int32_t ints[3] = { -1, 0, 7 };
	int err;

	if ((err = tm_gguf_writer_new(&w, align)))
		return err;
	err = tm_gguf_writer_set_str(w, "general.architecture", "llama");
	err = err ?: tm_gguf_writer_set_u8(w, "k.u8", 200);
	err = err ?: tm_gguf_writer_set_i8(w, "k.i8", -100);
	err = err ?: tm_gguf_writer_set_u16(w, "k.u16", 60000);
	err = err ?: tm_gguf_writer_set_i16(w, "k.i16", -30000);
	err = err ?: tm_gguf_writer_set_u32(w, "k.u32", 4000000000u);
	err = err ?: tm_gguf_writer_set_i32(w, "k.i32", -2000000000);
	err = err ?: tm_gguf_writer_set_u64(w, "k.u64", 1ull << 50);
	err = err ?: tm_gguf_writer_set_i64(w, "k.i64", -(1ll << 50));
	err = err ?: tm_gguf_writer_set_f32(w, "k.f32", 1e-6f);
	err = err ?: tm_gguf_writer_set_f64(w, "k.f64", 3.5);
	err = err ?: tm_gguf_writer_set_bool(w, "k.bool", true);
	err = err ?: tm_gguf_writer_set_arr_str(w, "k.strs", strs, NULL, 3);
	err = err ?: tm_gguf_writer_set_arr(w, "k.ints", TM_GGUF_INT32, ints, 3);
	if (!err && tm_gguf_writer_set_u32(w, "k.u8", 1) != -EEXIST)
		err = -1;
	for (size_t i = 0; !err && i < NTYPES; i++) {
		char name[32];
		int64_t ne[3] = { 256, 3, 2 };

		snprintf(name, sizeof(name), "t.%zu", i);
		err = tm_gguf_writer_add_tensor(w, name, types[i], i % 3 + 1, ne);
	}
	if (!err) {
		int64_t ne[1] = { 33 };

		if (tm_gguf_writer_add_tensor(w, "bad", TM_Q8_0, 1, ne) != -EINVAL)
			err = -1;
	}
	err = err ?: tm_gguf_writer_begin(w, path);
	for (uint32_t i = 0; !err && i < NTYPES; i++) {
		uint64_t n = tm_gguf_writer_tensor_bytes(w, i);
		uint8_t *p = malloc(n);

		for (uint64_t j = 0; j < n; j++)
			p[j] = (uint8_t)(i * 31 + j);
		if (stop_early && i == NTYPES - 1)
			n--;
		/* in two uneven pieces, to cross the internal buffering */
		err = tm_gguf_writer_data(w, p, n / 3);
		err = err ?: tm_gguf_writer_data(w, p + n / 3, n - n / 3);
		free(p);
	}
	err = err ?: tm_gguf_writer_finish(w);
	tm_gguf_writer_free(w);
	return err;
}

static void check_file(const char *path, uint32_t align)
{
	size_t n;
	uint8_t *p = slurp(path, &n);
	struct tm_gguf g;
	int ok, err;

	err = p ? tm_gguf_parse(&g, p, n) : -ENOENT;
	tap_ok(!err, "align %u: the written file parses (%s)", align, err ? tm_strerror() : "ok");
	if (err) {
		free(p);
		return;
	}
	uint64_t an;
	uint32_t u32;
	float f;
	bool b;
	struct tm_gguf_str s;
	const struct tm_gguf_kv *kv;

	ok = g.version == 3 && g.alignment == (align ? align : 32) && g.n_kv == 14u + (align && align != 32);
	ok &= !tm_gguf_get_str(&g, "general.architecture", &s) && tm_gguf_str_eq(s, "llama");
	ok &= tm_gguf_find(&g, "k.u8")->v.u64 == 200 && tm_gguf_find(&g, "k.i8")->v.i64 == -100;
	ok &= tm_gguf_find(&g, "k.u16")->v.u64 == 60000 && tm_gguf_find(&g, "k.i16")->v.i64 == -30000;
	ok &= !tm_gguf_get_u32(&g, "k.u32", &u32) && u32 == 4000000000u;
	ok &= tm_gguf_find(&g, "k.i32")->v.i64 == -2000000000;
	ok &= tm_gguf_find(&g, "k.u64")->v.u64 == 1ull << 50 && tm_gguf_find(&g, "k.i64")->v.i64 == -(1ll << 50);
	ok &= !tm_gguf_get_f32(&g, "k.f32", &f) && f == 1e-6f && tm_gguf_find(&g, "k.f64")->v.f64 == 3.5;
	ok &= !tm_gguf_get_bool(&g, "k.bool", &b) && b;
	ok &= !tm_gguf_get_arr(&g, "k.strs", TM_GGUF_STRING, &an, &kv) && an == 3 &&
	      tm_gguf_str_eq(kv->v.arr.strs[0], "<unk>") && kv->v.arr.strs[1].len == 0 &&
	      tm_gguf_str_eq(kv->v.arr.strs[2], "\xc4\xa0the");
	ok &= !tm_gguf_get_arr(&g, "k.ints", TM_GGUF_INT32, &an, &kv) && an == 3 &&
	      !memcmp(kv->v.arr.data, (int32_t[]){ -1, 0, 7 }, 12);
	tap_ok(ok, "align %u: every kv reads back", align);

	int bad = 0;

	for (uint32_t i = 0; i < NTYPES; i++) {
		char name[32];
		const struct tm_gguf_tensor *t;

		snprintf(name, sizeof(name), "t.%u", i);
		t = tm_gguf_tensor(&g, name);
		if (!t || t->type != types[i] || t->n_dims != i % 3 + 1 || t->ne[0] != 256 ||
		    (uintptr_t)((const uint8_t *)t->data - p) % g.alignment) {
			bad++;
			continue;
		}
		for (uint64_t j = 0; j < t->nbytes; j++)
			if (((const uint8_t *)t->data)[j] != (uint8_t)(i * 31 + j)) {
				bad++;
				break;
			}
	}
	tap_ok(!bad, "align %u: %zu tensors of every type: shapes, alignment and bytes (%d bad)",
	       align, NTYPES, bad);
	tm_gguf_free(&g);
	free(p);
}

int main(void)
{
	char dir[] = "/tmp/tm-gguf-write-XXXXXX", path[256];

	if (!mkdtemp(dir)) {
		tap_ok(0, "mkdtemp");
		return tap_done();
	}
	snprintf(path, sizeof(path), "%s/out.gguf", dir);

	int err = write_file(path, 0, 0);

	tap_ok(!err, "write with the default alignment (%s)", err ? tm_strerror() : "ok");
	check_file(path, 0);
	unlink(path);
	err = write_file(path, 128, 0);
	tap_ok(!err, "write with alignment 128 (%s)", err ? tm_strerror() : "ok");
	check_file(path, 128);
	unlink(path);

	err = write_file(path, 0, 1);

	tap_ok(err == -EINVAL && access(path, F_OK) != 0 && count_entries(dir) == 0,
	       "a write missing one byte fails at finish, leaves neither the file nor a temp file");
	struct tm_gguf_writer *w;

	tap_ok(tm_gguf_writer_new(&w, 24) == -EINVAL, "alignment 24 refused");
	rmdir(dir);
	return tap_done();
}
