// SPDX-License-Identifier: MIT
#include <immintrin.h>

#include "kernels/stream.h"

uint64_t tm_stream_read_avx2(const void *p, size_t n, size_t prefetch, size_t every)
{
	const char *c = p;
	__m256i a = _mm256_setzero_si256(), b = a, d = a, e = a;

	for (size_t i = 0; i < n; i += 256) {
		tm_stream_prefetch(c, i, prefetch, every);
		a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(c + i)));
		b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(c + i + 32)));
		d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(c + i + 64)));
		e = _mm256_xor_si256(e, _mm256_loadu_si256((const __m256i *)(c + i + 96)));
		a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(c + i + 128)));
		b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(c + i + 160)));
		d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(c + i + 192)));
		e = _mm256_xor_si256(e, _mm256_loadu_si256((const __m256i *)(c + i + 224)));
	}
	a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(d, e));
	return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 1) ^
	       (uint64_t)_mm256_extract_epi64(a, 2) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}
