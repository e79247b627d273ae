/* SPDX-License-Identifier: MIT */
/*
 * Codes stored as unsigned bytes (a signed code + 128, or a q4/q6 code less
 * its offset) meet signed activations in vpdpbusd or an AMX tile; what the
 * stored offset added comes off afterwards as -128 x a byte sum. For the
 * AVX-512 files (the panel decoders, the VNNI r16 kernels).
 */
#ifndef TIERMEM_KERNELS_CPU_CORR_H
#define TIERMEM_KERNELS_CPU_CORR_H

#include <immintrin.h>
#include <stdint.h>

/* -128 x the sum of 32 unsigned bytes less `off` each */
static inline int32_t corr_32(__m256i u, int off)
{
	__m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256());
	__m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));

	return -128 * ((int32_t)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * off);
}

static inline int32_t corr_16(__m128i u, int off)
{
	__m128i s = _mm_sad_epu8(u, _mm_setzero_si128());

	return -128 * ((int32_t)(_mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1)) - 16 * off);
}

#endif
