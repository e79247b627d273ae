// SPDX-License-Identifier: MIT
/*
 * AVX-512 VNNI kernels of the interleaved-row layouts: a 512-bit vector is
 * one octet (8 elements) of 16 rows, a lane per row, and vpdpbusd against 4
 * broadcast activation bytes does 64 multiply-adds. Per 64 bytes of q4_K
 * codes that is a load, two ANDs and two vpdpbusd; the scales cost an AND per
 * sub-block of all 16 rows. The GGML kernels spend about three times the
 * instructions per byte (nibble shuffles, the 12-byte scale unpack per row).
 */
#include <immintrin.h>

#include "corr.h"
#include "repack.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

INLINE __m512i bcast4(const int8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return _mm512_set1_epi32(v);
}

/*
 * acc += the 16 lanes of u (unsigned bytes) dotted with the 4 signed bytes at
 * p: vpdpbusd with an embedded broadcast, one instruction where the
 * intrinsics give two (GCC does not fold the broadcast into vpdpbusd).
 */
INLINE __m512i dpbusd_b4(__m512i acc, __m512i u, const int8_t *p)
{
#if defined(__GNUC__) && defined(__x86_64__)
	__asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*(const int32_t (*)[1])p));
	return acc;
#else
	return _mm512_dpbusd_epi32(acc, u, bcast4(p));
#endif
}

/* The line at p + off, ahead into L2 (kern.h): one prefetch per line read, no loop. */
INLINE void prefetch(const void *p, int off)
{
	tm_prefetch_l2((const char *)p + off);
}

/* The 8 sums of 32 activations of a q8_K block, as int32. */
INLINE __m256i bsum32(const blk_q8_K *b)
{
	return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), _mm256_set1_epi16(1));
}

INLINE void q4Kr16_group(const blk_q4_K_r16 *a, int nblocks, const blk_q8_K *const x0[], float *y,
			 size_t ystride, const int NX)
{
	const __m512i m0f = _mm512_set1_epi8(0x0f), mf0 = _mm512_set1_epi8((char)0xf0);
	const __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15);
	__m512 acc[TM_NX_MAX], accm[TM_NX_MAX];

	UNROLL for (int t = 0; t < NX; t++)
		acc[t] = accm[t] = _mm512_setzero_ps();
	for (int i = 0; i < nblocks; i++, a++) {
		__m512i isum[TM_NX_MAX], msum[TM_NX_MAX];
		__m512i bs[TM_NX_MAX];

		UNROLL for (int c = 0; c < 256; c += 64)	/* the header; codes as they are read */
			prefetch(a, c);
		tm_prefetch_far(a);
		UNROLL for (int t = 0; t < NX; t++) {
			isum[t] = msum[t] = _mm512_setzero_si512();
			bs[t] = _mm512_castsi256_si512(bsum32(x0[t] + i));
		}
		/*
		 * Sub-blocks in pairs (they share mh), the pairs not unrolled:
		 * all 8 unrolled need more than 32 vector registers and GCC
		 * spilled some per sub-block. In L2 that cost little, but from
		 * DRAM it read 0.87-0.92 of the read loop against 0.95-1.02
		 * without spills (GGUF q4_K 1.0); the prefetch distance and
		 * level made no difference (Documentation/tiermem-infer.rst).
		 */
		_Pragma("GCC unroll 1") for (int jp = 0; jp < 4; jp++) {
			__m512i mh = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)a->mh[jp]));

			UNROLL for (int k = 0; k < 2; k++) {
				const int j = 2 * jp + k, js = tm_r16_act_sub(j, 1);
				__m512i sc8 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)a->sc[j]));
				__m512i sc = _mm512_and_si512(sc8, m63);
				__m512i mn = _mm512_or_si512(_mm512_srli_epi32(sc8, 6), _mm512_slli_epi32(
					_mm512_and_si512(_mm512_srli_epi32(mh, 4 * k), m15), 2));
				__m512i lo[TM_NX_MAX], hi[TM_NX_MAX];

				UNROLL for (int t = 0; t < NX; t++)
					lo[t] = hi[t] = _mm512_setzero_si512();
				UNROLL for (int o = 0; o < 4; o++) {
					__m512i v = _mm512_loadu_si512(a->qs[4 * j + o]);

					prefetch(a->qs[4 * j + o], 0);
					__m512i vl = _mm512_and_si512(v, m0f), vh = _mm512_and_si512(v, mf0);

					UNROLL for (int t = 0; t < NX; t++) {
						const int8_t *yq = x0[t][i].qs + 32 * js + 8 * o;

						lo[t] = dpbusd_b4(lo[t], vl, yq);
						hi[t] = dpbusd_b4(hi[t], vh, yq + 4);
					}
				}
				UNROLL for (int t = 0; t < NX; t++) {
					/* the high nibbles were taken in place: 16 times their value */
					__m512i s = _mm512_add_epi32(lo[t], _mm512_srai_epi32(hi[t], 4));

					isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s, sc));
					msum[t] = _mm512_add_epi32(msum[t], _mm512_mullo_epi32(mn,
						_mm512_permutexvar_epi32(_mm512_set1_epi32(js), bs[t])));
				}
			}
		}
		__m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)a->d));
		__m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)a->dmin));

		UNROLL for (int t = 0; t < NX; t++) {
			__m512 yd = _mm512_set1_ps(x0[t][i].d);

			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, yd), _mm512_cvtepi32_ps(isum[t]), acc[t]);
			accm[t] = _mm512_fmadd_ps(_mm512_mul_ps(dm, yd), _mm512_cvtepi32_ps(msum[t]), accm[t]);
		}
	}
	UNROLL for (int t = 0; t < NX; t++)
		_mm512_storeu_ps(y + t * ystride, _mm512_sub_ps(acc[t], accm[t]));
}

/*
 * q6_K: codes 0..63 (value + 32) built from 4 low bits and 2 high ones with
 * a shift, an AND and a ternary-logic OR; the +32 comes off per sub-block
 * through the activation's block sums.
 */
INLINE __m512i q6_high(__m512i hv, const int sh)
{
	/* the 2 bits at sh..sh+1 of each byte, moved to bits 4..5 */
	if (sh < 4)
		return _mm512_and_si512(_mm512_slli_epi16(hv, 4 - sh), _mm512_set1_epi8(0x30));
	if (sh > 4)
		return _mm512_and_si512(_mm512_srli_epi16(hv, sh - 4), _mm512_set1_epi8(0x30));
	return _mm512_and_si512(hv, _mm512_set1_epi8(0x30));
}

INLINE void q6Kr16_group(const blk_q6_K_r16 *a, int nblocks, const blk_q8_K *const x0[], float *y,
			 size_t ystride, const int NX)
{
	const __m512i m0f = _mm512_set1_epi8(0x0f);
	__m512 acc[TM_NX_MAX];

	UNROLL for (int t = 0; t < NX; t++)
		acc[t] = _mm512_setzero_ps();
	for (int i = 0; i < nblocks; i++, a++) {
		__m512i isum[TM_NX_MAX];

		_Static_assert(sizeof(*a) <= 64 * (5 + 3 * 16), "the prefetches cover a q6_K_r16 block");
		UNROLL for (int c = 0; c < 320; c += 64)	/* d, scales; codes below */
			prefetch(a, c);
		tm_prefetch_far(a);
		UNROLL for (int t = 0; t < NX; t++)
			isum[t] = _mm512_setzero_si512();
		UNROLL for (int s = 0; s < 16; s++) {
			__m512i hv = _mm512_loadu_si512(a->qh[s]);

			/*
			 * Lines 5 + 3s .. 7 + 3s in address order, as the AVX2
			 * kernel: prefetched as read (a qh line, then two ql lines
			 * 2 KiB before it), whole-model decode of the 2 GB Q4_K_M
			 * (a q6_K in every other ffn_down) at 64 positions gave
			 * 84.6 / 85.4 % on a Zen 5 guest, in order 88.3 / 89.5 %.
			 */
			UNROLL for (int k = 0; k < 3; k++)
				prefetch(a, 64 * (5 + 3 * s + k));
			__m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)a->sc[s]));
			__m512i dp[TM_NX_MAX];

			UNROLL for (int t = 0; t < NX; t++)
				dp[t] = _mm512_set1_epi32(-32 * x0[t][i].bsums[s]);
			UNROLL for (int k = 0; k < 2; k++) {
				const int o = 2 * s + k;
				__m512i v = _mm512_loadu_si512(a->ql[o]);

				/* (v & 0x0f) | high bits: ternary logic 0xf8 is A | (B & C) */
				__m512i ql = _mm512_ternarylogic_epi32(q6_high(hv, 4 * k), v, m0f, 0xf8);
				__m512i qhi = _mm512_ternarylogic_epi32(q6_high(hv, 4 * k + 2),
									_mm512_srli_epi16(v, 4), m0f, 0xf8);

				UNROLL for (int t = 0; t < NX; t++) {
					const int8_t *yq = x0[t][i].qs + 8 * o;

					dp[t] = dpbusd_b4(dp[t], ql, yq);
					dp[t] = dpbusd_b4(dp[t], qhi, yq + 4);
				}
			}
			UNROLL for (int t = 0; t < NX; t++)
				isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dp[t], sc));
		}
		__m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)a->d));

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(x0[t][i].d)),
						 _mm512_cvtepi32_ps(isum[t]), acc[t]);
	}
	UNROLL for (int t = 0; t < NX; t++)
		_mm512_storeu_ps(y + t * ystride, acc[t]);
}

/*
 * q8_0: 8 vpdpbusd a block for 16 rows (codes + 128, unsigned, against 4
 * signed activation bytes broadcast), less 128 x the activations' sum, which
 * leaves row_q8_0's exact integer sums; (d * dx) * sum added per block as the
 * scalar kernel does. The GGUF kernel spends about 13 instructions on a
 * block of one row, this one about 2.
 */
INLINE __m512i q8_0_bias_corr(const int8_t *qs)
{
	__m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)qs), _mm256_set1_epi8((char)0x80));

	return _mm512_set1_epi32(corr_32(u, 128));
}

INLINE void q8_0r16_group(const blk_q8_0_r16 *a, int nblocks, const blk_q8_0 *const x0[], float *y,
			  size_t ystride, const int NX)
{
	__m512 acc[TM_NX_MAX];

	UNROLL for (int t = 0; t < NX; t++)
		acc[t] = _mm512_setzero_ps();
	for (int i = 0; i < nblocks; i++, a++) {
		__m512i isum[TM_NX_MAX];

		/*
		 * One line per 4 blocks (2176 bytes, so every 4 KiB page is
		 * announced), not each line: at ~2 instructions per 64 bytes
		 * the hardware prefetcher keeps up and the software one only
		 * has to start it early on each page; a prefetch per line
		 * held the loads up instead. AMD Zen 5, bench/matvec from
		 * DRAM, 2 threads: 42-43 GB/s (0.64-0.73 of the read loop)
		 * -> 68-73 (1.2); a line per 8 blocks the same, per 16 less,
		 * none 50 (the loads then wait). Only Zen 5 was measured.
		 */
		if (!(i & 3))
			prefetch(a, 0);
		UNROLL for (int t = 0; t < NX; t++)
			isum[t] = q8_0_bias_corr(x0[t][i].qs);
		UNROLL for (int k = 0; k < 8; k++) {
			__m512i v = _mm512_loadu_si512(a->qs[k]);

			UNROLL for (int t = 0; t < NX; t++)
				isum[t] = dpbusd_b4(isum[t], v, x0[t][i].qs + 4 * k);
		}
		__m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)a->d));

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_mul_ps(d, _mm512_set1_ps(_cvtsh_ss(x0[t][i].d))),
								     _mm512_cvtepi32_ps(isum[t])));
	}
	UNROLL for (int t = 0; t < NX; t++)
		_mm512_storeu_ps(y + t * ystride, acc[t]);
}

#define R16_VNNI(T, BASE, ACT)								\
void tm_dot_##T##_r16_vnni(const void *w, size_t wstride, int nrows, int nblocks,	\
			   const void *x, size_t xstride, int nx, float *y, size_t ystride) \
{											\
	const ACT *x0[TM_NX_MAX];							\
	int full = nrows / R16 * R16;							\
											\
	for (int t = 0; t < nx && t < TM_NX_MAX; t++)					\
		x0[t] = (const ACT *)((const char *)x + t * xstride);			\
	for (int r0 = 0; r0 < full; r0 += R16) {					\
		const blk_##T##_r16 *g = (const void *)((const char *)w + (size_t)r0 * wstride); \
											\
		switch (nx) {								\
		case 1: T##r16_group(g, nblocks, x0, y + r0, ystride, 1); break;	\
		case 2: T##r16_group(g, nblocks, x0, y + r0, ystride, 2); break;	\
		case 3: T##r16_group(g, nblocks, x0, y + r0, ystride, 3); break;	\
		default: T##r16_group(g, nblocks, x0, y + r0, ystride, 4); break;	\
		}									\
	}										\
	tm_r16_tail(BASE, full, w, wstride, nrows, nblocks, x, xstride, nx, y, ystride); \
}
#define q4_Kr16_group q4Kr16_group
#define q6_Kr16_group q6Kr16_group
R16_VNNI(q4_K, TM_Q4_K, blk_q8_K)
R16_VNNI(q6_K, TM_Q6_K, blk_q8_K)
R16_VNNI(q8_0, TM_Q8_0, blk_q8_0)
