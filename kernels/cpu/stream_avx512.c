// SPDX-License-Identifier: MIT
#include <immintrin.h>

#include "kernels/stream.h"

uint64_t tm_stream_read_avx512(const void *p, size_t n, size_t prefetch, size_t every)
{
	const char *c = p;
	__m512i a = _mm512_setzero_si512(), b = a, d = a, e = a;

	for (size_t i = 0; i < n; i += 256) {
		tm_stream_prefetch(c, i, prefetch, every);
		a = _mm512_xor_si512(a, _mm512_loadu_si512(c + i));
		b = _mm512_xor_si512(b, _mm512_loadu_si512(c + i + 64));
		d = _mm512_xor_si512(d, _mm512_loadu_si512(c + i + 128));
		e = _mm512_xor_si512(e, _mm512_loadu_si512(c + i + 192));
	}
	a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(d, e));
	/* fold to the XOR of all 64-bit words, the same value every ISA returns */
	__m256i h = _mm256_xor_si256(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));

	return (uint64_t)_mm256_extract_epi64(h, 0) ^ (uint64_t)_mm256_extract_epi64(h, 1) ^
	       (uint64_t)_mm256_extract_epi64(h, 2) ^ (uint64_t)_mm256_extract_epi64(h, 3);
}
