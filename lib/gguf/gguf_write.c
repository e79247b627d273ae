// SPDX-License-Identifier: MIT
/*
 * GGUF v3 writer: metadata and the tensor table are serialised into memory as
 * they are declared; begin() writes them to a temp file, data() streams the
 * tensors, finish() renames. See include/tiermem/gguf_write.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/gguf_write.h"

#define GGUF_VERSION	3
#define MAX_DIMS	4
#define MAX_NAME	64
#define IO_CHUNK	(4u << 20)

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

struct wtensor {
	char name[MAX_NAME];
	uint32_t type, n_dims;
	int64_t ne[MAX_DIMS];
	uint64_t offset, nbytes;
};

struct tm_gguf_writer {
	uint32_t alignment;
	struct bytes kv;		/* serialised kv pairs */
	uint64_t n_kv;
	char **keys;			/* for duplicate checks */
	struct wtensor *t;
	uint32_t n_t, cap_t;
	uint64_t data_size;		/* all tensors, padded */

	/* streaming state */
	char *path, *tmp;
	int fd;
	uint8_t *io;			/* write buffer */
	size_t io_n;
	uint32_t cur;			/* tensor being written */
	uint64_t cur_done;		/* bytes of it written */
	bool begun, failed;
	bool header_only;		/* finish without tensor data */
};

static int grow(struct bytes *b, size_t n)
{
	if (b->n + n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;

	while (cap < b->n + n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);

	if (!p)
		return tm_err(-ENOMEM, "gguf writer: out of memory");
	b->p = p;
	b->cap = cap;
	return 0;
}

static int put(struct bytes *b, const void *p, size_t n)
{
	int err = grow(b, n);

	if (err)
		return err;
	memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

static int put_u32(struct bytes *b, uint32_t v) { return put(b, &v, 4); }
static int put_u64(struct bytes *b, uint64_t v) { return put(b, &v, 8); }

static int put_str(struct bytes *b, const char *s, size_t n)
{
	int err = put_u64(b, n);

	return err ? err : put(b, s, n);
}

int tm_gguf_writer_new(struct tm_gguf_writer **out, uint32_t alignment)
{
	struct tm_gguf_writer *w;

	if (alignment & (alignment - 1))
		return tm_err(-EINVAL, "gguf writer: alignment %u is not a power of two", alignment);
	w = calloc(1, sizeof(*w));
	if (!w)
		return tm_err(-ENOMEM, "gguf writer: out of memory");
	w->alignment = alignment ? alignment : 32;
	w->fd = -1;
	*out = w;
	if (alignment && alignment != 32) {
		int err = tm_gguf_writer_set_u32(w, "general.alignment", alignment);

		if (err) {
			tm_gguf_writer_free(w);
			return err;
		}
	}
	return 0;
}

void tm_gguf_writer_free(struct tm_gguf_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp)
		unlink(w->tmp);		/* unfinished: never leave it behind */
	for (uint64_t i = 0; i < w->n_kv; i++)
		free(w->keys[i]);
	free(w->keys);
	free(w->kv.p);
	free(w->t);
	free(w->path);
	free(w->tmp);
	free(w->io);
	free(w);
}

/* Start a kv: checks, records the key, writes key and type. */
static int kv_begin(struct tm_gguf_writer *w, const char *key, uint32_t type)
{
	char **keys;
	int err;

	if (w->begun)
		return tm_err(-EINVAL, "gguf writer: kv '%s' set after the header was written", key);
	if (!*key || strlen(key) > 65535)
		return tm_err(-EINVAL, "gguf writer: a key must be 1..65535 bytes");
	for (uint64_t i = 0; i < w->n_kv; i++)
		if (!strcmp(w->keys[i], key))
			return tm_err(-EEXIST, "gguf writer: key '%s' set twice", key);
	keys = realloc(w->keys, (w->n_kv + 1) * sizeof(*keys));
	if (!keys)
		return tm_err(-ENOMEM, "gguf writer: out of memory");
	w->keys = keys;
	keys[w->n_kv] = strdup(key);
	if (!keys[w->n_kv])
		return tm_err(-ENOMEM, "gguf writer: out of memory");
	w->n_kv++;
	if ((err = put_str(&w->kv, key, strlen(key))) || (err = put_u32(&w->kv, type)))
		return err;
	return 0;
}

static int kv_scalar(struct tm_gguf_writer *w, const char *key, uint32_t type, const void *v, size_t n)
{
	int err = kv_begin(w, key, type);

	return err ? err : put(&w->kv, v, n);
}

#define SETTER(name, ctype, gtype) \
int tm_gguf_writer_set_##name(struct tm_gguf_writer *w, const char *key, ctype v) \
{ \
	return kv_scalar(w, key, gtype, &v, sizeof(v)); \
}
SETTER(u8, uint8_t, TM_GGUF_UINT8)
SETTER(i8, int8_t, TM_GGUF_INT8)
SETTER(u16, uint16_t, TM_GGUF_UINT16)
SETTER(i16, int16_t, TM_GGUF_INT16)
SETTER(u32, uint32_t, TM_GGUF_UINT32)
SETTER(i32, int32_t, TM_GGUF_INT32)
SETTER(u64, uint64_t, TM_GGUF_UINT64)
SETTER(i64, int64_t, TM_GGUF_INT64)
SETTER(f32, float, TM_GGUF_FLOAT32)
SETTER(f64, double, TM_GGUF_FLOAT64)
#undef SETTER

int tm_gguf_writer_set_bool(struct tm_gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v;

	return kv_scalar(w, key, TM_GGUF_BOOL, &b, 1);
}

int tm_gguf_writer_set_str(struct tm_gguf_writer *w, const char *key, const char *v)
{
	int err = kv_begin(w, key, TM_GGUF_STRING);

	return err ? err : put_str(&w->kv, v, strlen(v));
}

static size_t elem_size(uint32_t t)
{
	switch (t) {
	case TM_GGUF_UINT8: case TM_GGUF_INT8: case TM_GGUF_BOOL: return 1;
	case TM_GGUF_UINT16: case TM_GGUF_INT16: return 2;
	case TM_GGUF_UINT32: case TM_GGUF_INT32: case TM_GGUF_FLOAT32: return 4;
	case TM_GGUF_UINT64: case TM_GGUF_INT64: case TM_GGUF_FLOAT64: return 8;
	default: return 0;
	}
}

int tm_gguf_writer_set_arr(struct tm_gguf_writer *w, const char *key, uint32_t elem_type,
			   const void *data, uint64_t n)
{
	size_t es = elem_size(elem_type);
	int err;

	if (!es)
		return tm_err(-EINVAL, "gguf writer: kv '%s': element type %u is not a fixed-size type",
			      key, elem_type);
	if (n > SIZE_MAX / es)
		return tm_err(-EINVAL, "gguf writer: kv '%s': array too long", key);
	if ((err = kv_begin(w, key, TM_GGUF_ARRAY)) || (err = put_u32(&w->kv, elem_type)) ||
	    (err = put_u64(&w->kv, n)))
		return err;
	return put(&w->kv, data, n * es);
}

int tm_gguf_writer_set_arr_str(struct tm_gguf_writer *w, const char *key,
			       const char *const *strs, const size_t *lens, uint64_t n)
{
	int err;

	if ((err = kv_begin(w, key, TM_GGUF_ARRAY)) || (err = put_u32(&w->kv, TM_GGUF_STRING)) ||
	    (err = put_u64(&w->kv, n)))
		return err;
	for (uint64_t i = 0; i < n; i++)
		if ((err = put_str(&w->kv, strs[i], lens ? lens[i] : strlen(strs[i]))))
			return err;
	return 0;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

int tm_gguf_writer_add_tensor(struct tm_gguf_writer *w, const char *name, uint32_t type,
			      uint32_t n_dims, const int64_t *ne)
{
	const struct tm_dtype_traits *tr = tm_dtype_traits((int)type);
	uint64_t nel = 1, nbytes;
	size_t len = strlen(name);

	if (w->begun)
		return tm_err(-EINVAL, "gguf writer: tensor '%s' added after the header was written", name);
	if (!len || len >= MAX_NAME)
		return tm_err(-EINVAL, "gguf writer: tensor name '%s' is not 1..%d bytes", name, MAX_NAME - 1);
	if (!tm_dtype_in_gguf((int)type))
		return tm_err(-EINVAL, "gguf writer: tensor '%s': type %u is not supported", name, type);
	if (n_dims < 1 || n_dims > MAX_DIMS)
		return tm_err(-EINVAL, "gguf writer: tensor '%s': %u dimensions", name, n_dims);
	for (uint32_t d = 0; d < n_dims; d++)
		if (ne[d] <= 0 || __builtin_mul_overflow(nel, (uint64_t)ne[d], &nel) || nel > INT64_MAX)
			return tm_err(-EINVAL, "gguf writer: tensor '%s': bad dimension %u", name, d);
	if (ne[0] % tr->block_elems)
		return tm_err(-EINVAL, "gguf writer: tensor '%s': row length %lld is not a multiple of %s's %d",
			      name, (long long)ne[0], tr->name, tr->block_elems);
	nbytes = nel / tr->block_elems * tr->block_bytes;
	for (uint32_t i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return tm_err(-EINVAL, "gguf writer: tensor '%s' added twice", name);
	if (w->n_t == w->cap_t) {
		uint32_t cap = w->cap_t ? 2 * w->cap_t : 64;
		struct wtensor *t = realloc(w->t, cap * sizeof(*t));

		if (!t)
			return tm_err(-ENOMEM, "gguf writer: out of memory");
		w->t = t;
		w->cap_t = cap;
	}
	struct wtensor *t = &w->t[w->n_t++];

	memcpy(t->name, name, len + 1);
	t->type = type;
	t->n_dims = n_dims;
	memcpy(t->ne, ne, n_dims * sizeof(*ne));
	t->offset = w->data_size;
	t->nbytes = nbytes;
	w->data_size = align_up(t->offset + nbytes, w->alignment);
	return 0;
}

uint64_t tm_gguf_writer_tensor_bytes(const struct tm_gguf_writer *w, uint32_t i)
{
	return i < w->n_t ? w->t[i].nbytes : 0;
}

uint64_t tm_gguf_writer_total_bytes(const struct tm_gguf_writer *w)
{
	return w->data_size;
}

static int flush_io(struct tm_gguf_writer *w)
{
	size_t done = 0;

	while (done < w->io_n) {
		ssize_t r = write(w->fd, w->io + done, w->io_n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			w->failed = true;
			return tm_err(r < 0 ? -errno : -EIO, "gguf writer: writing %s: %s", w->tmp,
				      strerror(r < 0 ? errno : EIO));
		}
		done += (size_t)r;
	}
	w->io_n = 0;
	return 0;
}

static int out(struct tm_gguf_writer *w, const void *p, size_t n)
{
	const uint8_t *s = p;

	while (n) {
		size_t k = IO_CHUNK - w->io_n < n ? IO_CHUNK - w->io_n : n;

		memcpy(w->io + w->io_n, s, k);
		w->io_n += k;
		s += k;
		n -= k;
		if (w->io_n == IO_CHUNK) {
			int err = flush_io(w);

			if (err)
				return err;
		}
	}
	return 0;
}

static int out_zeros(struct tm_gguf_writer *w, uint64_t n)
{
	static const uint8_t zero[256];

	while (n) {
		size_t k = n < sizeof(zero) ? n : sizeof(zero);
		int err = out(w, zero, k);

		if (err)
			return err;
		n -= k;
	}
	return 0;
}

int tm_gguf_writer_begin(struct tm_gguf_writer *w, const char *path)
{
	struct bytes h = { 0 };
	mode_t mask;
	int err;

	if (w->begun)
		return tm_err(-EINVAL, "gguf writer: begin() called twice");
	w->path = strdup(path);
	w->io = malloc(IO_CHUNK);
	if (!w->path || !w->io || asprintf(&w->tmp, "%s.tmp.XXXXXX", path) < 0) {
		w->tmp = NULL;
		return tm_err(-ENOMEM, "gguf writer: out of memory");
	}
	w->fd = mkstemp(w->tmp);
	if (w->fd < 0) {
		err = -errno;
		free(w->tmp);
		w->tmp = NULL;
		return tm_err(err, "gguf writer: cannot create a temp file beside %s: %s", path, strerror(-err));
	}
	mask = umask(0);
	umask(mask);
	fchmod(w->fd, 0666 & ~mask);
	w->begun = true;

	/* The magic is written last, by finish(): a temp file left by a killed writer is not GGUF. */
	if ((err = put(&h, "\0\0\0\0", 4)) || (err = put_u32(&h, GGUF_VERSION)) ||
	    (err = put_u64(&h, w->n_t)) || (err = put_u64(&h, w->n_kv)) ||
	    (err = put(&h, w->kv.p, w->kv.n)))
		goto out;
	for (uint32_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];

		if ((err = put_str(&h, t->name, strlen(t->name))) || (err = put_u32(&h, t->n_dims)))
			goto out;
		for (uint32_t d = 0; d < t->n_dims; d++)
			if ((err = put_u64(&h, (uint64_t)t->ne[d])))
				goto out;
		if ((err = put_u32(&h, t->type)) || (err = put_u64(&h, t->offset)))
			goto out;
	}
	if ((err = out(w, h.p, h.n)) || (err = out_zeros(w, align_up(h.n, w->alignment) - h.n)))
		goto out;
	/* Zero-byte tensors do not exist, so cur always has data still to come. */
out:
	free(h.p);
	if (err)
		w->failed = true;
	return err;
}

int tm_gguf_writer_data(struct tm_gguf_writer *w, const void *p, size_t n)
{
	const uint8_t *s = p;
	int err;

	if (!w->begun || w->failed)
		return tm_err(-EINVAL, "gguf writer: data() without a successful begin()");
	while (n) {
		if (w->cur >= w->n_t)
			return tm_err(-EINVAL, "gguf writer: %zu bytes of data beyond the last tensor", n);
		struct wtensor *t = &w->t[w->cur];
		uint64_t want = t->nbytes - w->cur_done;
		size_t k = want < n ? (size_t)want : n;

		if ((err = out(w, s, k)))
			return err;
		s += k;
		n -= k;
		w->cur_done += k;
		if (w->cur_done == t->nbytes) {
			uint64_t end = t->offset + t->nbytes;

			if ((err = out_zeros(w, align_up(end, w->alignment) - end)))
				return err;
			w->cur++;
			w->cur_done = 0;
		}
	}
	return 0;
}

int tm_gguf_writer_finish(struct tm_gguf_writer *w)
{
	int err;

	if (!w->begun || w->failed)
		return tm_err(-EINVAL, "gguf writer: finish() without a successful begin()");
	if (w->cur < w->n_t && !w->header_only)
		return tm_err(-EINVAL, "gguf writer: tensor '%s' is missing %llu bytes of data",
			      w->t[w->cur].name, (unsigned long long)(w->t[w->cur].nbytes - w->cur_done));
	if ((err = flush_io(w)))
		return err;
	if (pwrite(w->fd, "GGUF", 4, 0) != 4) {
		w->failed = true;
		return tm_err(-EIO, "gguf writer: writing the magic of %s: %s", w->tmp, strerror(errno));
	}
	if (fsync(w->fd) < 0 || close(w->fd) < 0) {
		err = -errno;
		w->fd = -1;
		return tm_err(err, "gguf writer: syncing %s: %s", w->tmp, strerror(-err));
	}
	w->fd = -1;
	if (rename(w->tmp, w->path) < 0) {
		err = -errno;
		return tm_err(err, "gguf writer: renaming %s to %s: %s", w->tmp, w->path, strerror(-err));
	}
	free(w->tmp);
	w->tmp = NULL;
	return 0;
}

int tm_gguf_writer_finish_header(struct tm_gguf_writer *w)
{
	if (w->cur || w->cur_done)
		return tm_err(-EINVAL, "gguf writer: a header-only finish after tensor data was written");
	w->header_only = true;
	return tm_gguf_writer_finish(w);
}

const char *tm_gguf_writer_temp_path(const struct tm_gguf_writer *w)
{
	return w->tmp;
}
