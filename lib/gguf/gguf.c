// SPDX-License-Identifier: MIT
/*
 * GGUF reader. The whole header and tensor table are validated before
 * tm_gguf_parse() returns, so the rest of the library can trust every
 * length, type, shape and offset it finds in a struct tm_gguf. Nothing is
 * copied out of the mapping: strings, arrays and tensor data are pointers.
 *
 * Every bound is checked against the bytes left in the file before it is used
 * (for an allocation as much as for a read), so a hostile file can neither
 * read past the mapping nor make us allocate more than a small multiple of
 * its own size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"

#define GGUF_MAGIC		"GGUF"
#define GGUF_DEFAULT_ALIGNMENT	32
#define GGUF_MAX_DIMS		4
#define GGUF_MAX_NAME		64	/* GGML_MAX_NAME: names are at most 63 bytes */
#define GGUF_MAX_KEY		65535	/* the GGUF spec: keys are at most 2^16 - 1 bytes */

/* Smallest possible encodings: they bound the counts a file of a given size can hold. */
#define MIN_KV_BYTES		(8 + 1 + 4 + 1)		/* key len, 1-byte key, type, u8 */
#define MIN_TENSOR_BYTES	(8 + 1 + 4 + 8 + 4 + 8)	/* name len, name, n_dims, ne0, type, offset */

/* Hash indexes of keys and tensor names: duplicate checks and O(1) lookups. */
struct gguf_index {
	size_t cap, n;		/* cap: a power of two */
	uint64_t *slot;		/* item index + 1; 0 is empty */
};

struct gguf_priv {
	struct gguf_index kv, tensors;
	uint64_t kv_cap, tensor_cap;	/* entries allocated in g->kv, g->tensors */
};

struct cursor {
	const uint8_t *base;
	size_t size, pos;
};

static const char *type_name(uint32_t t)
{
	static const char *names[] = {
		"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
		"bool", "string", "array", "uint64", "int64", "float64",
	};
	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

/* Size of a fixed-size value type; 0 for string, array and unknown types. */
static size_t type_size(uint32_t t)
{
	switch (t) {
	case TM_GGUF_UINT8: case TM_GGUF_INT8: case TM_GGUF_BOOL: return 1;
	case TM_GGUF_UINT16: case TM_GGUF_INT16: return 2;
	case TM_GGUF_UINT32: case TM_GGUF_INT32: case TM_GGUF_FLOAT32: return 4;
	case TM_GGUF_UINT64: case TM_GGUF_INT64: case TM_GGUF_FLOAT64: return 8;
	default: return 0;
	}
}

static size_t left(const struct cursor *c)
{
	return c->size - c->pos;
}

static int need(const struct cursor *c, uint64_t n, const char *what)
{
	if (n > left(c))
		return tm_err(-EINVAL, "gguf: %s at offset %zu: needs %llu bytes, only %zu left in the file",
			      what, c->pos, (unsigned long long)n, left(c));
	return 0;
}

static int rd(struct cursor *c, void *out, size_t n, const char *what)
{
	int err = need(c, n, what);

	if (err)
		return err;
	memcpy(out, c->base + c->pos, n);
	c->pos += n;
	return 0;
}

static int rd_u32(struct cursor *c, uint32_t *v, const char *what)
{
	return rd(c, v, sizeof(*v), what);
}

static int rd_u64(struct cursor *c, uint64_t *v, const char *what)
{
	return rd(c, v, sizeof(*v), what);
}

static int rd_str(struct cursor *c, struct tm_gguf_str *s, const char *what)
{
	size_t at = c->pos;
	int err = rd_u64(c, &s->len, what);

	if (err)
		return err;
	if (s->len > left(c))
		return tm_err(-EINVAL, "gguf: %s at offset %zu: length %llu exceeds the %zu bytes left in the file",
			      what, at, (unsigned long long)s->len, left(c));
	s->ptr = (const char *)c->base + c->pos;
	c->pos += s->len;
	return 0;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
	return h;
}

static int index_init(struct gguf_index *ix, size_t cap)
{
	ix->slot = calloc(cap, sizeof(*ix->slot));
	if (!ix->slot)
		return tm_err(-ENOMEM, "gguf: out of memory for a name index");
	ix->cap = cap;
	ix->n = 0;
	return 0;
}

static bool str_same(struct tm_gguf_str a, const char *p, size_t n)
{
	return a.len == n && !memcmp(a.ptr, p, n);
}

typedef const struct tm_gguf_str *(*name_fn)(const struct tm_gguf *, uint64_t);

/*
 * Find name in the index (name_of() gives the name of an item), or the empty
 * slot where it would go. Returns the item index, or -1 with *empty set.
 */
static int64_t index_lookup(const struct gguf_index *ix, const char *p, size_t n,
			    name_fn name_of, const struct tm_gguf *g, size_t *empty)
{
	size_t mask = ix->cap - 1, i = hash_bytes(p, n) & mask;

	for (;; i = (i + 1) & mask) {
		uint64_t s = ix->slot[i];

		if (!s) {
			if (empty)
				*empty = i;
			return -1;
		}
		if (str_same(*name_of(g, s - 1), p, n))
			return (int64_t)(s - 1);
	}
}

/* Add item idx (named p[0..n)); -EEXIST if the name is there already. Grows at half full. */
static int index_add(struct gguf_index *ix, const char *p, size_t n, uint64_t idx,
		     name_fn name_of, const struct tm_gguf *g)
{
	size_t empty = 0;

	if (2 * (ix->n + 1) > ix->cap) {
		struct gguf_index big;
		int err = index_init(&big, 2 * ix->cap);

		if (err)
			return err;
		for (size_t i = 0; i < ix->cap; i++) {
			if (!ix->slot[i])
				continue;
			const struct tm_gguf_str *nm = name_of(g, ix->slot[i] - 1);

			index_lookup(&big, nm->ptr, nm->len, name_of, g, &empty);
			big.slot[empty] = ix->slot[i];
			big.n++;
		}
		free(ix->slot);
		*ix = big;
	}
	if (index_lookup(ix, p, n, name_of, g, &empty) >= 0)
		return -EEXIST;
	ix->slot[empty] = idx + 1;
	ix->n++;
	return 0;
}

/*
 * Make room for item i in an array that grows by doubling: counts in a file
 * are only promises, so memory follows what has actually been parsed. New
 * entries are zeroed.
 */
static int grow(void **arr, uint64_t *cap, uint64_t i, size_t elem)
{
	uint64_t c = *cap ? *cap : 64;
	void *p;

	if (i < *cap)
		return 0;
	while (c <= i)
		c *= 2;
	p = realloc(*arr, c * elem);
	if (!p)
		return tm_err(-ENOMEM, "gguf: out of memory for %llu header entries", (unsigned long long)c);
	memset((char *)p + *cap * elem, 0, (c - *cap) * elem);
	*arr = p;
	*cap = c;
	return 0;
}

static const struct tm_gguf_str *kv_name(const struct tm_gguf *g, uint64_t i)
{
	return &g->kv[i].key;
}

static const struct tm_gguf_str *tensor_name(const struct tm_gguf *g, uint64_t i)
{
	return &g->tensors[i].name;
}

static int rd_scalar(struct cursor *c, uint32_t type, struct tm_gguf_kv *kv, const char *what)
{
	size_t at = c->pos;
	union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
		uint64_t u64; int64_t i64; float f32; double f64; } v;
	int err = rd(c, &v, type_size(type), what);

	if (err)
		return err;
	switch (type) {
	case TM_GGUF_UINT8: kv->v.u64 = v.u8; break;
	case TM_GGUF_INT8: kv->v.i64 = v.i8; break;
	case TM_GGUF_UINT16: kv->v.u64 = v.u16; break;
	case TM_GGUF_INT16: kv->v.i64 = v.i16; break;
	case TM_GGUF_UINT32: kv->v.u64 = v.u32; break;
	case TM_GGUF_INT32: kv->v.i64 = v.i32; break;
	case TM_GGUF_UINT64: kv->v.u64 = v.u64; break;
	case TM_GGUF_INT64: kv->v.i64 = v.i64; break;
	case TM_GGUF_FLOAT32: kv->v.f64 = v.f32; break;
	case TM_GGUF_FLOAT64: kv->v.f64 = v.f64; break;
	case TM_GGUF_BOOL:
		if (v.u8 > 1)
			return tm_err(-EINVAL, "gguf: %s at offset %zu: bool value %u is neither 0 nor 1",
				      what, at, v.u8);
		kv->v.b = v.u8;
		break;
	}
	return 0;
}

static int rd_array(struct cursor *c, struct tm_gguf_kv *kv, const char *what)
{
	size_t at = c->pos;
	uint32_t et;
	uint64_t n;
	int err;

	if ((err = rd_u32(c, &et, what)) || (err = rd_u64(c, &n, what)))
		return err;
	if (et == TM_GGUF_ARRAY)
		return tm_err(-EINVAL, "gguf: %s at offset %zu: nested arrays are not allowed", what, at);
	if (et != TM_GGUF_STRING && !type_size(et))
		return tm_err(-EINVAL, "gguf: %s at offset %zu: unknown array element type %u", what, at, et);
	kv->v.arr.type = et;
	kv->v.arr.n = n;
	if (et != TM_GGUF_STRING) {
		size_t es = type_size(et);

		if (n > left(c) / es)
			return tm_err(-EINVAL, "gguf: %s at offset %zu: %llu %s elements exceed the %zu bytes left in the file",
				      what, at, (unsigned long long)n, type_name(et), left(c));
		kv->v.arr.data = c->base + c->pos;
		if (et == TM_GGUF_BOOL)
			for (uint64_t i = 0; i < n; i++)
				if (c->base[c->pos + i] > 1)
					return tm_err(-EINVAL, "gguf: %s at offset %llu: bool element %llu is %u, neither 0 nor 1",
						      what, (unsigned long long)(c->pos + i),
						      (unsigned long long)i, c->base[c->pos + i]);
		c->pos += n * es;
		return 0;
	}
	/* Every string takes at least its 8-byte length: this bounds the allocation. */
	if (n > left(c) / 8)
		return tm_err(-EINVAL, "gguf: %s at offset %zu: %llu strings exceed the %zu bytes left in the file",
			      what, at, (unsigned long long)n, left(c));
	kv->v.arr.data = c->base + c->pos;
	uint64_t cap = 0;

	for (uint64_t i = 0; i < n; i++)
		if ((err = grow((void **)&kv->v.arr.strs, &cap, i, sizeof(*kv->v.arr.strs))) ||
		    (err = rd_str(c, &kv->v.arr.strs[i], what)))
			return err;
	return 0;
}

static int parse_kv(struct tm_gguf *g, struct cursor *c, uint64_t i)
{
	struct gguf_priv *pv = (struct gguf_priv *)g->priv;
	struct tm_gguf_kv *kv = &g->kv[i];
	char what[160];
	int err;

	kv->offset = c->pos;
	snprintf(what, sizeof(what), "key of kv %llu", (unsigned long long)i);
	if ((err = rd_str(c, &kv->key, what)))
		return err;
	if (!kv->key.len || kv->key.len > GGUF_MAX_KEY)
		return tm_err(-EINVAL, "gguf: kv %llu at offset %llu: key length %llu is not in 1..%d",
			      (unsigned long long)i, (unsigned long long)kv->offset,
			      (unsigned long long)kv->key.len, GGUF_MAX_KEY);
	err = index_add(&pv->kv, kv->key.ptr, kv->key.len, i, kv_name, g);
	if (err == -EEXIST)
		return tm_err(-EINVAL, "gguf: kv %llu at offset %llu: duplicate key '%.*s'",
			      (unsigned long long)i, (unsigned long long)kv->offset,
			      (int)(kv->key.len > 100 ? 100 : kv->key.len), kv->key.ptr);
	if (err)
		return err;

	snprintf(what, sizeof(what), "kv '%.*s'", (int)(kv->key.len > 100 ? 100 : kv->key.len),
		 kv->key.ptr);
	size_t at = c->pos;

	if ((err = rd_u32(c, &kv->type, what)))
		return err;
	switch (kv->type) {
	case TM_GGUF_STRING:
		return rd_str(c, &kv->v.str, what);
	case TM_GGUF_ARRAY:
		return rd_array(c, kv, what);
	default:
		if (!type_size(kv->type))
			return tm_err(-EINVAL, "gguf: %s at offset %zu: unknown value type %u",
				      what, at, kv->type);
		return rd_scalar(c, kv->type, kv, what);
	}
}

static int parse_tensor_info(struct tm_gguf *g, struct cursor *c, uint64_t i)
{
	struct gguf_priv *pv = (struct gguf_priv *)g->priv;
	struct tm_gguf_tensor *t = &g->tensors[i];
	size_t at = c->pos;
	char what[160];
	int err;

	snprintf(what, sizeof(what), "name of tensor %llu", (unsigned long long)i);
	if ((err = rd_str(c, &t->name, what)))
		return err;
	if (!t->name.len || t->name.len >= GGUF_MAX_NAME)
		return tm_err(-EINVAL, "gguf: tensor %llu at offset %zu: name length %llu is not in 1..%d",
			      (unsigned long long)i, at, (unsigned long long)t->name.len, GGUF_MAX_NAME - 1);
	snprintf(what, sizeof(what), "tensor '%.*s'", (int)t->name.len, t->name.ptr);
	err = index_add(&pv->tensors, t->name.ptr, t->name.len, i, tensor_name, g);
	if (err == -EEXIST)
		return tm_err(-EINVAL, "gguf: %s at offset %zu: duplicate tensor name", what, at);
	if (err)
		return err;

	at = c->pos;
	if ((err = rd_u32(c, &t->n_dims, what)))
		return err;
	if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
		return tm_err(-EINVAL, "gguf: %s at offset %zu: n_dims %u is not in 1..%d",
			      what, at, t->n_dims, GGUF_MAX_DIMS);
	uint64_t nelem = 1;

	for (int d = 0; d < GGUF_MAX_DIMS; d++) {
		uint64_t ne = 1;

		at = c->pos;
		if (d < (int)t->n_dims && (err = rd_u64(c, &ne, what)))
			return err;
		if (ne == 0 || ne > INT64_MAX)
			return tm_err(-EINVAL, "gguf: %s at offset %zu: dimension %d is %lld",
				      what, at, d, (long long)ne);
		if (__builtin_mul_overflow(nelem, ne, &nelem) || nelem > INT64_MAX)
			return tm_err(-EINVAL, "gguf: %s at offset %zu: element count overflows at dimension %d",
				      what, at, d);
		t->ne[d] = (int64_t)ne;
	}

	at = c->pos;
	if ((err = rd_u32(c, &t->type, what)))
		return err;
	const struct tm_dtype_traits *tr = tm_dtype_traits((int)t->type);

	if (!tm_dtype_in_gguf((int)t->type))
		return tm_err(-EINVAL, "gguf: %s at offset %zu: tensor type %u is not supported",
			      what, at, t->type);
	if (t->ne[0] % tr->block_elems)
		return tm_err(-EINVAL, "gguf: %s at offset %zu: row length %lld is not a multiple of the %s block size %d",
			      what, at, (long long)t->ne[0], tr->name, tr->block_elems);
	if (__builtin_mul_overflow(nelem / (uint64_t)tr->block_elems, (uint64_t)tr->block_bytes, &t->nbytes))
		return tm_err(-EINVAL, "gguf: %s at offset %zu: byte size overflows", what, at);

	at = c->pos;
	if ((err = rd_u64(c, &t->offset, what)))
		return err;
	if (t->offset % g->alignment)
		return tm_err(-EINVAL, "gguf: %s at offset %zu: data offset %llu is not a multiple of the alignment %llu",
			      what, at, (unsigned long long)t->offset, (unsigned long long)g->alignment);
	return 0;
}

/* general.alignment, once the kvs are read: a u32 power of two. */
static int read_alignment(struct tm_gguf *g)
{
	const struct tm_gguf_kv *kv = tm_gguf_find(g, "general.alignment");

	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	if (!kv)
		return 0;
	if (kv->type != TM_GGUF_UINT32)
		return tm_err(-EINVAL, "gguf: kv 'general.alignment' at offset %llu: type %s, expected uint32",
			      (unsigned long long)kv->offset, type_name(kv->type));
	if (!kv->v.u64 || (kv->v.u64 & (kv->v.u64 - 1)))
		return tm_err(-EINVAL, "gguf: kv 'general.alignment' at offset %llu: %llu is not a power of two",
			      (unsigned long long)kv->offset, (unsigned long long)kv->v.u64);
	g->alignment = kv->v.u64;
	return 0;
}

static int cmp_offset(const void *a, const void *b)
{
	const struct tm_gguf_tensor *x = *(const struct tm_gguf_tensor *const *)a;
	const struct tm_gguf_tensor *y = *(const struct tm_gguf_tensor *const *)b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/*
 * Every tensor inside the file and no two sharing a byte. A header-only parse
 * checks the tensors against each other and against the data size the
 * header implies, and leaves their data NULL.
 */
static int check_data(struct tm_gguf *g, bool header_only)
{
	uint64_t data_size = header_only ? UINT64_MAX : g->size - g->data_offset;
	const struct tm_gguf_tensor **order;

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct tm_gguf_tensor *t = &g->tensors[i];

		if (t->offset > data_size || t->nbytes > data_size - t->offset)
			return tm_err(-EINVAL, "gguf: tensor '%.*s': data [%llu, +%llu) at file offset %llu runs past the end of the file (%zu bytes)",
				      (int)t->name.len, t->name.ptr, (unsigned long long)t->offset,
				      (unsigned long long)t->nbytes,
				      (unsigned long long)(g->data_offset + t->offset), g->size);
		t->data = header_only ? NULL : g->base + g->data_offset + t->offset;
		if (t->offset + t->nbytes > g->data_size)
			g->data_size = t->offset + t->nbytes;
	}
	if (g->n_tensors < 2)
		return 0;
	order = malloc(g->n_tensors * sizeof(*order));
	if (!order)
		return tm_err(-ENOMEM, "gguf: out of memory sorting %llu tensors",
			      (unsigned long long)g->n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		order[i] = &g->tensors[i];
	qsort(order, g->n_tensors, sizeof(*order), cmp_offset);
	for (uint64_t i = 1; i < g->n_tensors; i++) {
		const struct tm_gguf_tensor *a = order[i - 1], *b = order[i];

		if (b->offset < a->offset + a->nbytes) {
			int err = tm_err(-EINVAL, "gguf: tensor '%.*s' at data offset %llu overlaps tensor '%.*s' [%llu, +%llu)",
					 (int)b->name.len, b->name.ptr, (unsigned long long)b->offset,
					 (int)a->name.len, a->name.ptr, (unsigned long long)a->offset,
					 (unsigned long long)a->nbytes);
			free(order);
			return err;
		}
	}
	free(order);
	return 0;
}

static int parse(struct tm_gguf *g, struct cursor *c, bool header_only)
{
	char magic[4];
	uint64_t n;
	int err;

	if ((err = rd(c, magic, 4, "magic")))
		return err;
	if (memcmp(magic, GGUF_MAGIC, 4))
		return tm_err(-EINVAL, "gguf: magic at offset 0: not a GGUF file");
	if ((err = rd_u32(c, &g->version, "version")))
		return err;
	if (g->version != 2 && g->version != 3)
		return tm_err(-EINVAL, "gguf: version at offset 4: %u is not supported (only 2 and 3)",
			      g->version);
	if ((err = rd_u64(c, &g->n_tensors, "tensor count")))
		return err;
	if ((err = rd_u64(c, &g->n_kv, "kv count")))
		return err;
	if (g->n_tensors > left(c) / MIN_TENSOR_BYTES)
		return tm_err(-EINVAL, "gguf: tensor count at offset 8: %llu tensors cannot fit in a %zu-byte file",
			      (unsigned long long)g->n_tensors, g->size);
	if (g->n_kv > left(c) / MIN_KV_BYTES)
		return tm_err(-EINVAL, "gguf: kv count at offset 16: %llu kv pairs cannot fit in a %zu-byte file",
			      (unsigned long long)g->n_kv, g->size);

	struct gguf_priv *pv = (struct gguf_priv *)g->priv;

	if ((err = index_init(&pv->kv, 16)) || (err = index_init(&pv->tensors, 16)))
		return err;
	for (n = 0; n < g->n_kv; n++)
		if ((err = grow((void **)&g->kv, &pv->kv_cap, n, sizeof(*g->kv))) ||
		    (err = parse_kv(g, c, n)))
			return err;
	if ((err = read_alignment(g)))
		return err;
	for (n = 0; n < g->n_tensors; n++)
		if ((err = grow((void **)&g->tensors, &pv->tensor_cap, n, sizeof(*g->tensors))) ||
		    (err = parse_tensor_info(g, c, n)))
			return err;

	size_t table_end = c->pos;
	uint64_t pad = (g->alignment - table_end % g->alignment) % g->alignment;

	g->data_offset = table_end + pad;
	if (g->data_offset > g->size && !header_only) {
		if (g->n_tensors)
			return tm_err(-EINVAL, "gguf: data section at offset %llu starts past the end of the file (%zu bytes)",
				      (unsigned long long)g->data_offset, g->size);
		g->data_offset = g->size;	/* no tensors: the padding may be missing */
	}
	return check_data(g, header_only);
}

int tm_gguf_parse_flags(struct tm_gguf *g, const void *base, size_t size, unsigned int flags)
{
	struct cursor c = { .base = base, .size = size, .pos = 0 };
	int err;

	memset(g, 0, sizeof(*g));
	g->base = base;
	g->size = size;
	g->priv = calloc(1, sizeof(struct gguf_priv));
	if (!g->priv)
		return tm_err(-ENOMEM, "gguf: out of memory");
	err = parse(g, &c, flags & TM_GGUF_HEADER_ONLY);
	if (err)
		tm_gguf_free(g);
	return err;
}

int tm_gguf_parse(struct tm_gguf *g, const void *base, size_t size)
{
	return tm_gguf_parse_flags(g, base, size, 0);
}

void tm_gguf_free(struct tm_gguf *g)
{
	struct gguf_priv *pv = (struct gguf_priv *)g->priv;

	if (g->kv && pv)
		for (uint64_t i = 0; i < pv->kv_cap; i++)
			if (g->kv[i].type == TM_GGUF_ARRAY)
				free(g->kv[i].v.arr.strs);
	if (pv) {
		free(pv->kv.slot);
		free(pv->tensors.slot);
		free(pv);
	}
	free(g->kv);
	free(g->tensors);
	memset(g, 0, sizeof(*g));
}

const struct tm_gguf_kv *tm_gguf_find(const struct tm_gguf *g, const char *key)
{
	const struct gguf_priv *pv = (const struct gguf_priv *)g->priv;
	int64_t i;

	if (!pv || !pv->kv.slot)
		return NULL;
	i = index_lookup(&pv->kv, key, strlen(key), kv_name, g, NULL);
	return i < 0 ? NULL : &g->kv[i];
}

const struct tm_gguf_tensor *tm_gguf_tensor(const struct tm_gguf *g, const char *name)
{
	const struct gguf_priv *pv = (const struct gguf_priv *)g->priv;
	int64_t i;

	if (!pv || !pv->tensors.slot)
		return NULL;
	i = index_lookup(&pv->tensors, name, strlen(name), tensor_name, g, NULL);
	return i < 0 ? NULL : &g->tensors[i];
}

static bool is_signed(uint32_t t)
{
	return t == TM_GGUF_INT8 || t == TM_GGUF_INT16 || t == TM_GGUF_INT32 || t == TM_GGUF_INT64;
}

static bool is_unsigned(uint32_t t)
{
	return t == TM_GGUF_UINT8 || t == TM_GGUF_UINT16 || t == TM_GGUF_UINT32 || t == TM_GGUF_UINT64;
}

static int bad_type(const struct tm_gguf_kv *kv, const char *key, const char *want)
{
	return tm_err(-EINVAL, "gguf: kv '%s' at offset %llu: type %s, expected %s",
		      key, (unsigned long long)kv->offset, type_name(kv->type), want);
}

int tm_gguf_get_u64(const struct tm_gguf *g, const char *key, uint64_t *out)
{
	const struct tm_gguf_kv *kv = tm_gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (is_unsigned(kv->type)) {
		*out = kv->v.u64;
		return 0;
	}
	if (!is_signed(kv->type))
		return bad_type(kv, key, "an integer");
	if (kv->v.i64 < 0)
		return tm_err(-EINVAL, "gguf: kv '%s' at offset %llu: %lld is negative",
			      key, (unsigned long long)kv->offset, (long long)kv->v.i64);
	*out = (uint64_t)kv->v.i64;
	return 0;
}

int tm_gguf_get_u32(const struct tm_gguf *g, const char *key, uint32_t *out)
{
	uint64_t v;
	int err = tm_gguf_get_u64(g, key, &v);

	if (err)
		return err;
	if (v > UINT32_MAX)
		return tm_err(-EINVAL, "gguf: kv '%s': %llu does not fit in 32 bits",
			      key, (unsigned long long)v);
	*out = (uint32_t)v;
	return 0;
}

int tm_gguf_get_f32(const struct tm_gguf *g, const char *key, float *out)
{
	const struct tm_gguf_kv *kv = tm_gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type == TM_GGUF_FLOAT32 || kv->type == TM_GGUF_FLOAT64)
		*out = (float)kv->v.f64;
	else if (is_unsigned(kv->type))
		*out = (float)kv->v.u64;
	else if (is_signed(kv->type))
		*out = (float)kv->v.i64;
	else
		return bad_type(kv, key, "a number");
	return 0;
}

int tm_gguf_get_bool(const struct tm_gguf *g, const char *key, bool *out)
{
	const struct tm_gguf_kv *kv = tm_gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != TM_GGUF_BOOL)
		return bad_type(kv, key, "bool");
	*out = kv->v.b;
	return 0;
}

int tm_gguf_get_str(const struct tm_gguf *g, const char *key, struct tm_gguf_str *out)
{
	const struct tm_gguf_kv *kv = tm_gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != TM_GGUF_STRING)
		return bad_type(kv, key, "string");
	*out = kv->v.str;
	return 0;
}

int tm_gguf_get_arr(const struct tm_gguf *g, const char *key, uint32_t elem_type,
		    uint64_t *n, const struct tm_gguf_kv **out)
{
	const struct tm_gguf_kv *kv = tm_gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != TM_GGUF_ARRAY)
		return bad_type(kv, key, "array");
	if (kv->v.arr.type != elem_type)
		return tm_err(-EINVAL, "gguf: kv '%s' at offset %llu: array of %s, expected array of %s",
			      key, (unsigned long long)kv->offset, type_name(kv->v.arr.type),
			      type_name(elem_type));
	*n = kv->v.arr.n;
	if (out)
		*out = kv;
	return 0;
}
