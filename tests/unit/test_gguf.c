// SPDX-License-Identifier: MIT
/*
 * GGUF reader: a real llama.cpp-written file parses with the right fields, and
 * malformed files (every truncation, every size field made huge, bad types,
 * misalignment, overlap, duplicates) are refused with a message, never a crash
 * (this runs under ASan and UBSan).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tap.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"

/* ---- a tiny GGUF builder that remembers where each field went ---- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

enum { F_U32, F_U64 };
struct field {
	const char *name;
	size_t off;
	int kind;
};

static struct field fields[256];
static int nfields;

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void mark(struct buf *b, const char *name, int kind)
{
	fields[nfields++] = (struct field){ name, b->n, kind };
}

static void put_u32(struct buf *b, uint32_t v, const char *name)
{
	if (name)
		mark(b, name, F_U32);
	put(b, &v, 4);
}

static void put_u64(struct buf *b, uint64_t v, const char *name)
{
	if (name)
		mark(b, name, F_U64);
	put(b, &v, 8);
}

static void put_str(struct buf *b, const char *s, const char *name)
{
	put_u64(b, strlen(s), name);
	put(b, s, strlen(s));
}

static void pad_to(struct buf *b, size_t align)
{
	static const uint8_t zero[64];

	while (b->n % align)
		put(b, zero, 1);
}

/*
 * A small valid v3 file: one kv of every value type (and arrays of numbers,
 * bools and strings), general.alignment 64, three tensors of different types.
 * Returns the end of the last tensor's data (the file is padded past it).
 */
struct tdesc {
	const char *name;
	uint32_t type;
	uint32_t n_dims;
	uint64_t ne[4];
};

static const struct tdesc tdescs[] = {
	{ "a.f32", TM_F32, 2, { 4, 3 } },
	{ "b.q8_0", TM_Q8_0, 2, { 32, 2 } },
	{ "c.q4_K", TM_Q4_K, 3, { 256, 1, 2 } },
};
#define NT 3

static size_t build(struct buf *b, uint32_t version)
{
	uint64_t off[NT], cur = 0;
	size_t end = 0;

	nfields = 0;
	b->n = 0;
	put(b, "GGUF", 4);
	put_u32(b, version, NULL);
	put_u64(b, NT, "n_tensors");
	put_u64(b, 15, "n_kv");

	put_str(b, "general.architecture", "key len");
	put_u32(b, TM_GGUF_STRING, "kv type");
	put_str(b, "llama", "string len");
	put_str(b, "general.alignment", "key len");
	put_u32(b, TM_GGUF_UINT32, "kv type");
	put_u32(b, 64, NULL);
	put_str(b, "t.u8", "key len"); put_u32(b, TM_GGUF_UINT8, "kv type"); put(b, "\xfe", 1);
	put_str(b, "t.i8", "key len"); put_u32(b, TM_GGUF_INT8, "kv type"); put(b, "\xfe", 1);
	put_str(b, "t.u16", "key len"); put_u32(b, TM_GGUF_UINT16, "kv type"); put(b, "\x01\x02", 2);
	put_str(b, "t.i16", "key len"); put_u32(b, TM_GGUF_INT16, "kv type"); put(b, "\xff\xff", 2);
	put_str(b, "t.i32", "key len"); put_u32(b, TM_GGUF_INT32, "kv type"); put_u32(b, (uint32_t)-7, NULL);
	put_str(b, "t.f32", "key len"); put_u32(b, TM_GGUF_FLOAT32, "kv type");
	{ float f = 1e-5f; put(b, &f, 4); }
	put_str(b, "t.bool", "key len"); put_u32(b, TM_GGUF_BOOL, "kv type"); put(b, "\x01", 1);
	put_str(b, "t.u64", "key len"); put_u32(b, TM_GGUF_UINT64, "kv type"); put_u64(b, 1ull << 40, NULL);
	put_str(b, "t.i64", "key len"); put_u32(b, TM_GGUF_INT64, "kv type"); put_u64(b, (uint64_t)-5, NULL);
	put_str(b, "t.f64", "key len"); put_u32(b, TM_GGUF_FLOAT64, "kv type");
	{ double d = 0.25; put(b, &d, 8); }
	put_str(b, "t.strs", "key len"); put_u32(b, TM_GGUF_ARRAY, "kv type");
	put_u32(b, TM_GGUF_STRING, "array elem type"); put_u64(b, 3, "array len");
	put_str(b, "<unk>", "string len"); put_str(b, "", "string len"); put_str(b, "\xe2\x96\x81the", "string len");
	put_str(b, "t.f32s", "key len"); put_u32(b, TM_GGUF_ARRAY, "kv type");
	put_u32(b, TM_GGUF_FLOAT32, "array elem type"); put_u64(b, 2, "array len");
	{ float f[2] = { -1.5f, 2.5f }; put(b, f, 8); }
	put_str(b, "t.bools", "key len"); put_u32(b, TM_GGUF_ARRAY, "kv type");
	put_u32(b, TM_GGUF_BOOL, "array elem type"); put_u64(b, 2, "array len"); put(b, "\x00\x01", 2);

	for (int i = 0; i < NT; i++) {
		const struct tdesc *t = &tdescs[i];
		uint64_t nel = t->ne[0] * (t->n_dims > 1 ? t->ne[1] : 1) * (t->n_dims > 2 ? t->ne[2] : 1);
		uint64_t nb = nel / tm_dtype_traits(t->type)->block_elems * tm_dtype_traits(t->type)->block_bytes;

		put_str(b, t->name, "tensor name len");
		put_u32(b, t->n_dims, "n_dims");
		for (uint32_t d = 0; d < t->n_dims; d++)
			put_u64(b, t->ne[d], "ne");
		put_u32(b, t->type, "tensor type");
		put_u64(b, cur, "tensor offset");
		off[i] = cur;
		cur = (cur + nb + 63) / 64 * 64;
		end = nb + off[i];
	}
	pad_to(b, 64);
	size_t data = b->n;

	while (b->n < data + cur) {
		uint8_t x = (uint8_t)(b->n * 7);

		put(b, &x, 1);
	}
	return data + end;
}

static void set_u32(struct buf *b, size_t off, uint32_t v) { memcpy(b->p + off, &v, 4); }
static void set_u64(struct buf *b, size_t off, uint64_t v) { memcpy(b->p + off, &v, 8); }

/* Parse a private copy of exactly n bytes, so ASan sees any read past them. */
static int parse_copy(const uint8_t *p, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	struct tm_gguf g;
	int err;

	memcpy(copy, p, n);
	tm_clear_error();
	err = tm_gguf_parse(&g, copy, n);
	if (!err)
		tm_gguf_free(&g);
	else if (!tm_strerror()[0])
		err = 1;	/* refused without a reason: count it as a failure */
	free(copy);
	return err;
}

static int find_field(const char *name, int nth)
{
	for (int i = 0; i < nfields; i++)
		if (!strcmp(fields[i].name, name) && nth-- == 0)
			return i;
	return -1;
}

static void test_real_file(void)
{
	const char *path = "../shared/models/llama-2-tiny-random.gguf";
	FILE *f = fopen(path, "rb");
	struct tm_gguf g;
	struct tm_gguf_str s;
	uint64_t n;
	uint32_t u;
	float eps;
	const struct tm_gguf_kv *kv;
	const struct tm_gguf_tensor *t;

	if (!f) {
		tap_skip("%s not found (run from the repository root)", path);
		return;
	}
	fseek(f, 0, SEEK_END);
	size_t size = (size_t)ftell(f);
	uint8_t *p = malloc(size);

	rewind(f);
	if (fread(p, 1, size, f) != size)
		size = 0;
	fclose(f);

	int err = tm_gguf_parse(&g, p, size);

	tap_ok(!err, "llama-2-tiny-random.gguf parses (%s)", err ? tm_strerror() : "ok");
	if (err) {
		free(p);
		return;
	}
	tap_ok(g.version == 3 && g.alignment == 32 && g.n_tensors == 12 && g.n_kv == 18,
	       "version 3, alignment 32, 12 tensors, 18 kvs");
	tap_ok(!tm_gguf_get_str(&g, "general.architecture", &s) && tm_gguf_str_eq(s, "llama"),
	       "general.architecture = llama");
	tap_ok(!tm_gguf_get_arr(&g, "tokenizer.ggml.tokens", TM_GGUF_STRING, &n, &kv) && n == 32000 &&
	       tm_gguf_str_eq(kv->v.arr.strs[0], "<unk>") && tm_gguf_str_eq(kv->v.arr.strs[2], "</s>") &&
	       tm_gguf_str_eq(kv->v.arr.strs[3 + 0x41], "<0x41>"),
	       "32000 tokens, indexed: <unk>, </s>, <0x41>");
	tap_ok(!tm_gguf_get_arr(&g, "tokenizer.ggml.scores", TM_GGUF_FLOAT32, &n, NULL) && n == 32000,
	       "32000 float32 scores");
	tap_ok(!tm_gguf_get_u32(&g, "llama.embedding_length", &u) && u == 8 &&
	       !tm_gguf_get_f32(&g, "llama.attention.layer_norm_rms_epsilon", &eps) &&
	       eps > 0.99e-5f && eps < 1.01e-5f, "embedding_length 8, rms eps 1e-5");
	t = tm_gguf_tensor(&g, "token_embd.weight");
	tap_ok(t && t->type == TM_F16 && t->n_dims == 2 && t->ne[0] == 8 && t->ne[1] == 32000 &&
	       t->nbytes == 512000 && t->data == p + g.data_offset + t->offset &&
	       (size_t)((const uint8_t *)t->data - p) % 32 == 0,
	       "token_embd.weight: f16 [8, 32000], zero-copy, aligned");
	t = tm_gguf_tensor(&g, "blk.0.ffn_down.weight");
	tap_ok(t && t->ne[0] == 32 && t->ne[1] == 8 && tm_gguf_tensor(&g, "output_norm.weight")->type == TM_F32,
	       "ffn_down [32, 8], output_norm f32");
	tap_ok(!tm_gguf_tensor(&g, "nope") && !tm_gguf_find(&g, "nope") &&
	       tm_gguf_get_u32(&g, "nope", &u) == -ENOENT, "absent names: NULL / -ENOENT");
	tap_ok(tm_gguf_get_u32(&g, "general.name", &u) == -EINVAL && strstr(tm_strerror(), "general.name"),
	       "a string read as u32 is -EINVAL naming the key");

	/* the header alone: tensor infos, no data; a plain parse of it is refused */
	uint64_t data_offset = g.data_offset, data_size = g.data_size;
	struct tm_gguf h;

	tap_ok(data_offset + data_size <= size && data_size > size / 2,
	       "data_size %llu: the end of the last tensor", (unsigned long long)data_size);
	tm_gguf_free(&g);
	err = tm_gguf_parse_flags(&h, p, data_offset - 1, TM_GGUF_HEADER_ONLY);
	t = err ? NULL : tm_gguf_tensor(&h, "token_embd.weight");
	tap_ok(!err && h.n_tensors == 12 && t && !t->data && t->nbytes == 512000 &&
	       h.data_size == data_size, "header-only parse: 12 tensors, sizes kept, data NULL (%s)",
	       err ? tm_strerror() : "ok");
	if (!err)
		tm_gguf_free(&h);
	err = tm_gguf_parse(&h, p, data_offset + 64);
	tap_ok(err == -EINVAL && strstr(tm_strerror(), "past the end"),
	       "the same bytes without the flag: -EINVAL, a tensor past the end");
	free(p);
}

static void test_small_valid(struct buf *b)
{
	struct tm_gguf g;
	const struct tm_gguf_kv *kv;
	struct tm_gguf_str s;
	uint64_t n, u64;
	uint32_t u32;
	float f;
	bool bo;

	build(b, 3);
	int err = tm_gguf_parse(&g, b->p, b->n);

	tap_ok(!err, "the built file parses (%s)", err ? tm_strerror() : "ok");
	if (err)
		return;
	tap_ok(g.alignment == 64 && g.data_offset % 64 == 0 && g.n_tensors == NT,
	       "alignment 64 honoured");
	int ok = !tm_gguf_get_u32(&g, "t.u8", &u32) && u32 == 254;
	ok &= !tm_gguf_get_u32(&g, "t.u16", &u32) && u32 == 0x0201;
	ok &= tm_gguf_get_u32(&g, "t.i8", &u32) == -EINVAL;		/* -2 */
	ok &= tm_gguf_get_u32(&g, "t.u64", &u32) == -EINVAL;		/* 2^40 */
	ok &= !tm_gguf_get_u64(&g, "t.u64", &u64) && u64 == 1ull << 40;
	ok &= tm_gguf_find(&g, "t.i16")->v.i64 == -1 && tm_gguf_find(&g, "t.i32")->v.i64 == -7;
	ok &= tm_gguf_find(&g, "t.i64")->v.i64 == -5;
	ok &= !tm_gguf_get_f32(&g, "t.f32", &f) && f == 1e-5f;
	ok &= !tm_gguf_get_f32(&g, "t.f64", &f) && f == 0.25f;
	ok &= !tm_gguf_get_bool(&g, "t.bool", &bo) && bo;
	ok &= tm_gguf_get_bool(&g, "t.u8", &bo) == -EINVAL;
	ok &= !tm_gguf_get_str(&g, "general.architecture", &s) && tm_gguf_str_eq(s, "llama");
	ok &= !tm_gguf_get_arr(&g, "t.strs", TM_GGUF_STRING, &n, &kv) && n == 3 &&
	      kv->v.arr.strs[1].len == 0 && tm_gguf_str_eq(kv->v.arr.strs[2], "\xe2\x96\x81the");
	ok &= tm_gguf_get_arr(&g, "t.strs", TM_GGUF_FLOAT32, &n, &kv) == -EINVAL;
	ok &= !tm_gguf_get_arr(&g, "t.f32s", TM_GGUF_FLOAT32, &n, &kv) && n == 2;
	if (ok) {
		float v[2];

		memcpy(v, kv->v.arr.data, 8);
		ok = v[0] == -1.5f && v[1] == 2.5f;
	}
	tap_ok(ok, "every value type reads back, typed getters check range and type");
	const struct tm_gguf_tensor *t = tm_gguf_tensor(&g, "c.q4_K");

	tap_ok(t && t->n_dims == 3 && t->ne[2] == 2 && t->ne[3] == 1 && t->nbytes == 2 * 144 &&
	       t->offset % 64 == 0 && tm_gguf_tensor(&g, "b.q8_0")->nbytes == 2 * 34,
	       "tensor shapes and byte sizes");
	tm_gguf_free(&g);

	build(b, 2);
	tap_ok(!parse_copy(b->p, b->n), "version 2 parses too");
}

static void test_truncation(struct buf *b)
{
	size_t end = build(b, 3), bad = 0;
	int accepted = 0;

	for (size_t n = 0; n < end; n++)
		if (!parse_copy(b->p, n)) {
			accepted++;
			bad = n;
		}
	tap_ok(!accepted, "every truncation before the end of the data refused (%d accepted, last at %zu)",
	       accepted, bad);
	tap_ok(!parse_copy(b->p, end), "truncating only the trailing padding is still valid");
}

static void test_huge_fields(struct buf *b)
{
	static const uint64_t huge[] = {
		UINT64_MAX, INT64_MAX, (uint64_t)INT64_MAX + 1, 1ull << 32, UINT32_MAX, 1ull << 40,
		4096, 1ull << 62, (1ull << 58) + 1,
	};
	int accepted = 0, tried = 0;
	char what[200] = "";

	build(b, 3);
	int nf = nfields;
	struct field saved[256];

	memcpy(saved, fields, sizeof(fields));
	for (int i = 0; i < nf; i++) {
		for (size_t h = 0; h < sizeof(huge) / sizeof(huge[0]); h++) {
			/* a u32 field gets the low half: skip those that become small, valid values */
			if (saved[i].kind == F_U32 && (uint32_t)huge[h] < 4096)
				continue;
			build(b, 3);
			if (saved[i].kind == F_U64)
				set_u64(b, saved[i].off, huge[h]);
			else
				set_u32(b, saved[i].off, (uint32_t)huge[h]);
			tried++;
			if (!parse_copy(b->p, b->n)) {
				accepted++;
				snprintf(what, sizeof(what), "%s at %zu = %llu", saved[i].name, saved[i].off,
					 (unsigned long long)huge[h]);
			}
		}
	}
	tap_ok(!accepted, "%d files with a size/type/count field made huge: all refused %s",
	       tried, what);
}

/* Build, apply one corruption, expect refusal with a message containing want. */
static int refused(struct buf *b, const char *label, const char *want)
{
	struct tm_gguf g;
	int err = tm_gguf_parse(&g, b->p, b->n);

	if (!err) {
		tm_gguf_free(&g);
		printf("# %s: accepted\n", label);
		return 0;
	}
	if (want && !strstr(tm_strerror(), want)) {
		printf("# %s: message '%s' lacks '%s'\n", label, tm_strerror(), want);
		return 0;
	}
	return 1;
}

static size_t field_off(const char *name, int nth)
{
	return fields[find_field(name, nth)].off;
}

static size_t find_bytes(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i + n <= b->n; i++)
		if (!memcmp(b->p + i, s, n))
			return i;
	abort();
}

static void test_bad_values(struct buf *b)
{
	int ok = 1;
	size_t o;

	build(b, 3); memcpy(b->p, "GGUG", 4);
	ok &= refused(b, "magic", "magic");
	build(b, 1);
	ok &= refused(b, "version 1", "version");
	build(b, 4);
	ok &= refused(b, "version 4", "version");
	build(b, 3); set_u32(b, field_off("kv type", 2), 13);
	ok &= refused(b, "kv type 13", "type 13");
	build(b, 3); set_u32(b, field_off("array elem type", 0), TM_GGUF_ARRAY);
	ok &= refused(b, "nested array", "nested");
	build(b, 3); set_u32(b, field_off("array elem type", 1), 77);
	ok &= refused(b, "array elem type 77", "element type");
	build(b, 3); o = find_bytes(b, "t.bool") + 6 + 4; b->p[o] = 2;
	ok &= refused(b, "bool 2", "bool");
	build(b, 3); o = find_bytes(b, "t.bools") + 7 + 4 + 4 + 8; b->p[o + 1] = 0x80;
	ok &= refused(b, "bool array element", "bool");
	build(b, 3); o = find_bytes(b, "general.alignment") + 17 + 4; set_u32(b, o, 48);
	ok &= refused(b, "alignment 48", "general.alignment");
	build(b, 3); set_u32(b, o, 0);
	ok &= refused(b, "alignment 0", "general.alignment");
	build(b, 3); set_u32(b, o - 4, TM_GGUF_INT32);
	ok &= refused(b, "alignment as int32", "general.alignment");
	build(b, 3); set_u32(b, field_off("tensor type", 1), 99);
	ok &= refused(b, "tensor type 99", "type 99");
	build(b, 3); set_u32(b, field_off("tensor type", 1), TM_Q8_K);
	ok &= refused(b, "tensor type q8_K", "not supported");
	build(b, 3); set_u32(b, field_off("tensor type", 1), 4 /* GGML q4_2, removed */);
	ok &= refused(b, "tensor type 4", "not supported");
	build(b, 3); set_u32(b, field_off("n_dims", 0), 0);
	ok &= refused(b, "n_dims 0", "n_dims");
	build(b, 3); set_u32(b, field_off("n_dims", 0), 5);
	ok &= refused(b, "n_dims 5", "n_dims");
	build(b, 3); set_u64(b, field_off("ne", 1), 0);
	ok &= refused(b, "dim 0", "dimension");
	build(b, 3); set_u64(b, field_off("ne", 2), 16);	/* q8_0 row of 16 */
	ok &= refused(b, "row not a block multiple", "multiple");
	build(b, 3); set_u64(b, field_off("tensor offset", 1), 96);
	ok &= refused(b, "unaligned offset", "alignment");
	build(b, 3); set_u64(b, field_off("tensor offset", 1), 0);
	ok &= refused(b, "overlapping tensors", "overlaps");
	build(b, 3); o = find_bytes(b, "c.q4_K"); memcpy(b->p + o, "b.q8_0", 6);
	ok &= refused(b, "duplicate tensor name", "duplicate");
	build(b, 3); o = find_bytes(b, "t.i16"); memcpy(b->p + o, "t.u16", 5);
	ok &= refused(b, "duplicate key", "duplicate key");
	build(b, 3); set_u64(b, field_off("key len", 3), 0);
	ok &= refused(b, "empty key", NULL);
	build(b, 3); set_u64(b, field_off("n_tensors", 0), NT + 1);
	ok &= refused(b, "one tensor too many", NULL);
	build(b, 3); set_u64(b, field_off("n_kv", 0), 16);
	ok &= refused(b, "one kv too many", NULL);
	/* keys up to the spec's 65535 bytes, in an otherwise valid file */
	for (int len = 65535; len <= 65536; len++) {
		b->n = 0;
		put(b, "GGUF", 4);
		put_u32(b, 3, NULL);
		put_u64(b, 0, NULL);
		put_u64(b, 1, NULL);
		put_u64(b, (uint64_t)len, NULL);
		for (int i = 0; i < len; i++)
			put(b, "k", 1);
		put_u32(b, TM_GGUF_UINT8, NULL);
		put(b, "\x01", 1);
		ok &= len == 65535 ? !parse_copy(b->p, b->n) : refused(b, "key of 65536 bytes", "key length");
	}
	tap_ok(ok, "bad magic, versions, value/element/tensor types, bools, alignment, dims, offsets, overlap, duplicates, long keys refused");

	build(b, 3); set_u32(b, field_off("tensor type", 2), 99);
	refused(b, "", NULL);
	tap_ok(strstr(tm_strerror(), "c.q4_K") && strstr(tm_strerror(), "offset"),
	       "the message names the tensor and the offset: %s", tm_strerror());
}

int main(void)
{
	struct buf b = { 0 };

	test_real_file();
	test_small_valid(&b);
	test_truncation(&b);
	test_huge_fields(&b);
	test_bad_values(&b);
	free(b.p);
	return tap_done();
}
