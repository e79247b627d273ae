/* SPDX-License-Identifier: MIT */
/*
 * The read ceiling: stream a buffer with the widest loads the CPU has and do
 * nothing else, so every other figure (a matvec, a whole token) can be stated
 * as a fraction of what the memory delivers.
 */
#ifndef TIERMEM_KERNELS_STREAM_H
#define TIERMEM_KERNELS_STREAM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Read n bytes at p (any alignment; the tail is read too). prefetch is the
 * software-prefetch distance in bytes, 0 for none. The result, the XOR of all
 * 64-bit words (the tail zero-padded), depends on every byte, so the loads
 * cannot be optimised away, and it is the same on every ISA.
 */
uint64_t tm_stream_read(const void *p, size_t n, size_t prefetch);
/* The loads tm_stream_read uses here: "avx512", "avx2" or "scalar". */
const char *tm_stream_isa(void);

/* Per-ISA bodies, for dispatch and tests; they need n to be a multiple of 256. */
uint64_t tm_stream_read_scalar(const void *p, size_t n, size_t prefetch);
uint64_t tm_stream_read_avx2(const void *p, size_t n, size_t prefetch);
uint64_t tm_stream_read_avx512(const void *p, size_t n, size_t prefetch);

#endif
