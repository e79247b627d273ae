/* SPDX-License-Identifier: MIT */
/*
 * GGUF v3 writer. Metadata and the tensor table are collected in memory; the
 * tensor data is then streamed in declaration order (so a file of many GB
 * needs no more memory than one chunk). Everything goes to a temporary file
 * next to the destination, renamed over it only by tm_gguf_writer_finish():
 * a writer that fails or is killed never leaves a half-written file under
 * the destination name, and the temp file gets its GGUF magic only at the
 * end, so one left behind by a killed writer never looks like a GGUF file.
 *
 *	tm_gguf_writer_new(&w, 32);
 *	tm_gguf_writer_set_str(w, "general.architecture", "llama");
 *	tm_gguf_writer_add_tensor(w, "output.weight", TM_Q6_K, 2, ne);
 *	tm_gguf_writer_begin(w, path);		header and tensor table
 *	tm_gguf_writer_data(w, buf, n);		... every tensor's bytes, in order
 *	tm_gguf_writer_finish(w);		pads, fsyncs, renames
 *	tm_gguf_writer_free(w);			removes the temp file if unfinished
 */
#ifndef TIERMEM_GGUF_WRITE_H
#define TIERMEM_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tm_gguf_writer;

/* alignment: a power of two, 0 for GGUF's default 32 (written as general.alignment otherwise). */
int tm_gguf_writer_new(struct tm_gguf_writer **w, uint32_t alignment);
void tm_gguf_writer_free(struct tm_gguf_writer *w);

/* Metadata, in the order given; a key set twice is -EEXIST. */
int tm_gguf_writer_set_u8(struct tm_gguf_writer *w, const char *key, uint8_t v);
int tm_gguf_writer_set_i8(struct tm_gguf_writer *w, const char *key, int8_t v);
int tm_gguf_writer_set_u16(struct tm_gguf_writer *w, const char *key, uint16_t v);
int tm_gguf_writer_set_i16(struct tm_gguf_writer *w, const char *key, int16_t v);
int tm_gguf_writer_set_u32(struct tm_gguf_writer *w, const char *key, uint32_t v);
int tm_gguf_writer_set_i32(struct tm_gguf_writer *w, const char *key, int32_t v);
int tm_gguf_writer_set_u64(struct tm_gguf_writer *w, const char *key, uint64_t v);
int tm_gguf_writer_set_i64(struct tm_gguf_writer *w, const char *key, int64_t v);
int tm_gguf_writer_set_f32(struct tm_gguf_writer *w, const char *key, float v);
int tm_gguf_writer_set_f64(struct tm_gguf_writer *w, const char *key, double v);
int tm_gguf_writer_set_bool(struct tm_gguf_writer *w, const char *key, bool v);
int tm_gguf_writer_set_str(struct tm_gguf_writer *w, const char *key, const char *v);
/* An array of n fixed-size elements (enum tm_gguf_type, not STRING or ARRAY), little-endian. */
int tm_gguf_writer_set_arr(struct tm_gguf_writer *w, const char *key, uint32_t elem_type,
			   const void *data, uint64_t n);
/* An array of n strings; lens may be NULL for NUL-terminated strings. */
int tm_gguf_writer_set_arr_str(struct tm_gguf_writer *w, const char *key,
			       const char *const *strs, const size_t *lens, uint64_t n);

/*
 * Declare a tensor (GGML type id, ne[0] the row length). Offsets follow the
 * declaration order, each aligned. Returns 0 or -EINVAL (bad shape or type,
 * duplicate name).
 */
int tm_gguf_writer_add_tensor(struct tm_gguf_writer *w, const char *name, uint32_t type,
			      uint32_t n_dims, const int64_t *ne);
/* Byte size of tensor i as declared, and the total of all tensor data with padding. */
uint64_t tm_gguf_writer_tensor_bytes(const struct tm_gguf_writer *w, uint32_t i);
uint64_t tm_gguf_writer_total_bytes(const struct tm_gguf_writer *w);

/* Create the temp file beside path and write the header and tensor table. */
int tm_gguf_writer_begin(struct tm_gguf_writer *w, const char *path);
/* Append tensor data; chunks may span tensors. Padding is added between tensors. */
int tm_gguf_writer_data(struct tm_gguf_writer *w, const void *p, size_t n);
/* All data written: flush, fsync, rename onto path. */
int tm_gguf_writer_finish(struct tm_gguf_writer *w);
/*
 * Finish with no tensor data at all: a header-only GGUF (metadata and tensor
 * table), which tm_gguf_parse_flags(..., TM_GGUF_HEADER_ONLY) reads.
 */
int tm_gguf_writer_finish_header(struct tm_gguf_writer *w);
/* The temp file being written (after begin(), until finish()), else NULL: for a signal handler to unlink. */
const char *tm_gguf_writer_temp_path(const struct tm_gguf_writer *w);

#endif
