/* SPDX-License-Identifier: MIT */
/*
 * GGUF v2/v3 reader, zero-copy: every string, array and tensor points into the
 * caller's mapping of the file, which must outlive the tm_gguf. Parsing
 * validates the whole header and tensor table up front; a malformed file is
 * refused with a tm_err() message naming the field and its file offset.
 */
#ifndef TIERMEM_GGUF_H
#define TIERMEM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tm_gguf_type {
	TM_GGUF_UINT8 = 0, TM_GGUF_INT8 = 1, TM_GGUF_UINT16 = 2, TM_GGUF_INT16 = 3,
	TM_GGUF_UINT32 = 4, TM_GGUF_INT32 = 5, TM_GGUF_FLOAT32 = 6, TM_GGUF_BOOL = 7,
	TM_GGUF_STRING = 8, TM_GGUF_ARRAY = 9, TM_GGUF_UINT64 = 10, TM_GGUF_INT64 = 11,
	TM_GGUF_FLOAT64 = 12,
};

/* Not NUL-terminated: it points into the mapping. */
struct tm_gguf_str {
	const char *ptr;
	uint64_t len;
};

struct tm_gguf_kv {
	struct tm_gguf_str key;
	uint32_t type;			/* enum tm_gguf_type */
	union {
		uint64_t u64;		/* any unsigned integer type, widened */
		int64_t i64;		/* any signed integer type, widened */
		double f64;		/* float32 or float64, widened */
		bool b;
		struct tm_gguf_str str;
		struct {
			uint32_t type;	/* element type (never ARRAY) */
			uint64_t n;
			const void *data;	/* fixed-size elements, little-endian, maybe unaligned */
			struct tm_gguf_str *strs;	/* STRING elements, indexed (owned by tm_gguf) */
		} arr;
	} v;
	uint64_t offset;		/* file offset of the key, for messages */
};

struct tm_gguf_tensor {
	struct tm_gguf_str name;
	uint32_t n_dims;
	int64_t ne[4];			/* ne[0] is the row length (contiguous), unused dims 1 */
	uint32_t type;			/* GGML type id: kernels/kernels.h enum tm_dtype */
	uint64_t offset;		/* from the start of the data section */
	uint64_t nbytes;
	const void *data;		/* base + data_offset + offset */
};

struct tm_gguf {
	const uint8_t *base;
	size_t size;
	uint32_t version;
	uint64_t n_kv, n_tensors;
	struct tm_gguf_kv *kv;
	struct tm_gguf_tensor *tensors;
	uint64_t alignment;
	uint64_t data_offset;
	uint64_t data_size;		/* the end of the last tensor, from data_offset */
	void *priv;			/* the reader's name indexes */
};

/* 0 or -EINVAL (malformed), -ENOMEM; the message names field and offset. */
int tm_gguf_parse(struct tm_gguf *g, const void *base, size_t size);

enum {
	/*
	 * The metadata and tensor table only: base may end anywhere after the
	 * tensor table (a header-only GGUF from `tiermem synth --header-only`,
	 * or the header an import keeps of its source). Tensor infos are
	 * checked as usual, but every tensor's data is NULL.
	 */
	TM_GGUF_HEADER_ONLY = 1 << 0,
};

int tm_gguf_parse_flags(struct tm_gguf *g, const void *base, size_t size, unsigned int flags);
void tm_gguf_free(struct tm_gguf *g);
/*
 * A model's identity: XXH3-128 of the header and every tensor's data, 32 hex
 * digits. -EINVAL for a header-only parse (no data to hash).
 */
int tm_gguf_content_hash(const struct tm_gguf *g, char out[33]);

const struct tm_gguf_kv *tm_gguf_find(const struct tm_gguf *g, const char *key);
const struct tm_gguf_tensor *tm_gguf_tensor(const struct tm_gguf *g, const char *name);

/*
 * Typed getters: 0, -ENOENT if the key is absent, -EINVAL (with a message) if
 * it has an incompatible type or is out of range for the result.
 */
int tm_gguf_get_u32(const struct tm_gguf *g, const char *key, uint32_t *out);
int tm_gguf_get_u64(const struct tm_gguf *g, const char *key, uint64_t *out);
int tm_gguf_get_f32(const struct tm_gguf *g, const char *key, float *out);
int tm_gguf_get_bool(const struct tm_gguf *g, const char *key, bool *out);
int tm_gguf_get_str(const struct tm_gguf *g, const char *key, struct tm_gguf_str *out);
/* An array of the given element type: its length and element pointer. */
int tm_gguf_get_arr(const struct tm_gguf *g, const char *key, uint32_t elem_type,
		    uint64_t *n, const struct tm_gguf_kv **kv);

static inline bool tm_gguf_str_eq(struct tm_gguf_str s, const char *lit)
{
	size_t i = 0;

	for (; i < s.len; i++)
		if (!lit[i] || lit[i] != s.ptr[i])
			return false;
	return lit[i] == '\0';
}

#endif
