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
 * software-prefetch distance in bytes, 0 for none; every is the bytes from one
 * prefetch to the next, a power of two: 64 (or less) prefetches each line, more
 * one line per that many bytes and leaves the rest to the hardware prefetcher.
 * Which reads fastest depends on the CPU: on AMD Zen 3 none, on Zen 5 a line
 * per 2 KiB (6-8 % over none, each line 2-13 % under it, one thread). The
 * result, the XOR of all 64-bit words (the tail zero-padded), depends on every
 * byte, so the loads cannot be optimised away, and it is the same on every ISA.
 */
uint64_t tm_stream_read(const void *p, size_t n, size_t prefetch, size_t every);
/* The loads tm_stream_read uses here: "avx512", "avx2" or "scalar". */
const char *tm_stream_isa(void);

/* Per-ISA bodies, for dispatch and tests; they need n to be a multiple of 256. */
uint64_t tm_stream_read_scalar(const void *p, size_t n, size_t prefetch, size_t every);
uint64_t tm_stream_read_avx2(const void *p, size_t n, size_t prefetch, size_t every);
uint64_t tm_stream_read_avx512(const void *p, size_t n, size_t prefetch, size_t every);

/* For the bodies: the prefetches of the 256 bytes at c + i (i a multiple of 256). */
static inline void tm_stream_prefetch(const char *c, size_t i, size_t prefetch, size_t every)
{
	if (!prefetch)
		return;
	if (every > 256) {
		if (!(i & (every - 1)))
			__builtin_prefetch(c + i + prefetch, 0, 3);
		return;
	}
	for (size_t o = 0; o < 256; o += every < 64 ? 64 : every)
		__builtin_prefetch(c + i + prefetch + o, 0, 3);
}

#endif
