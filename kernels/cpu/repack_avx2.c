// SPDX-License-Identifier: MIT
/*
 * AVX2 kernels of the interleaved-row layouts, also used by the AVX-512
 * table without VNNI: each group block of 16 rows as two 256-bit halves of
 * 8 rows, a 32-bit lane per row, both halves before the next block. Without vpdpbusd the products go through vpmaddubsw
 * into 16-bit sums, which a sub-block's codes cannot overflow (q4_K: 8
 * products of at most 15 * 128 * 2; q6_K: 2 of at most 63 * 128 * 2), and the
 * sub-block's scale is applied by the vpmaddwd that widens them to 32 bits.
 */
#include <immintrin.h>

#include "repack.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

INLINE __m256i bcast4(const int8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return _mm256_set1_epi32(v);
}

/* 8 bytes (one per row) -> a 16-bit pair (v, v) per 32-bit lane, after AND mask. */
INLINE __m256i pair16(const void *p, int mask)
{
	__m128i v = _mm_and_si128(_mm_loadl_epi64(p), _mm_set1_epi8((char)mask));

	return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v));
}

/*
 * The mins of a group block, both halves: sum over j of min_j * (block sum
 * of sub-block j) per row, as 16-bit (min_2p, min_2p+1) pairs per row lane
 * against the pair of block sums in one vpmaddwd (|min * sum| < 64 * 4096:
 * exact, as the per-sub-block vpmulld it replaces). The mins are built from
 * the bytes of all 16 rows at once: on Zen 1 the per-sub-block version took
 * a sixth of the kernel's time.
 */
INLINE void q4Kr16_mins(const blk_q4_K_r16 *a, const blk_q8_K *const x0[], int i, __m256 accm[2][TM_NX_MAX],
			const int NX, const int PERM)
{
	const __m128i m03 = _mm_set1_epi8(3), m0f = _mm_set1_epi8(0x0f);
	__m256i msum[2][TM_NX_MAX];

	UNROLL for (int t = 0; t < NX; t++)
		msum[0][t] = msum[1][t] = _mm256_setzero_si256();
	UNROLL for (int p = 0; p < 4; p++) {
		__m128i se = _mm_loadu_si128((const __m128i *)a->sc[2 * p]);
		__m128i so = _mm_loadu_si128((const __m128i *)a->sc[2 * p + 1]);
		__m128i m = _mm_loadu_si128((const __m128i *)a->mh[p]);
		__m128i nl = _mm_and_si128(m, m0f), nh = _mm_and_si128(_mm_srli_epi16(m, 4), m0f);
		/* (min_2p, min_2p+1) of row l at bytes 2l, 2l + 1: rows 0-7, then rows 8-15 */
		__m128i mn[2] = {
			_mm_or_si128(_mm_and_si128(_mm_srli_epi16(_mm_unpacklo_epi8(se, so), 6), m03),
				     _mm_slli_epi16(_mm_unpacklo_epi8(nl, nh), 2)),
			_mm_or_si128(_mm_and_si128(_mm_srli_epi16(_mm_unpackhi_epi8(se, so), 6), m03),
				     _mm_slli_epi16(_mm_unpackhi_epi8(nl, nh), 2)),
		};
		const int j0 = tm_r16_act_sub(2 * p, PERM), j1 = tm_r16_act_sub(2 * p + 1, PERM);

		UNROLL for (int t = 0; t < NX; t++) {
			const int16_t *bs = x0[t][i].bsums;
			int b0 = bs[2 * j0] + bs[2 * j0 + 1], b1 = bs[2 * j1] + bs[2 * j1 + 1];
			__m256i bp = _mm256_set1_epi32((int)((uint32_t)(uint16_t)b0 | (uint32_t)b1 << 16));

			UNROLL for (int h = 0; h < 2; h++)
				msum[h][t] = _mm256_add_epi32(msum[h][t],
							      _mm256_madd_epi16(_mm256_cvtepu8_epi16(mn[h]), bp));
		}
	}
	UNROLL for (int h = 0; h < 2; h++) {
		__m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a->dmin + 8 * h)));

		UNROLL for (int t = 0; t < NX; t++)
			accm[h][t] = _mm256_fmadd_ps(_mm256_mul_ps(dm, _mm256_set1_ps(x0[t][i].d)),
						     _mm256_cvtepi32_ps(msum[h][t]), accm[h][t]);
	}
}

INLINE void q4Kr16_group(const blk_q4_K_r16 *a, int nblocks, const blk_q8_K *const x0[], float *y,
			 size_t ystride, const int NX, const int PERM)
{
	const __m256i m0f = _mm256_set1_epi8(0x0f);
	__m256 acc[2][TM_NX_MAX], accm[2][TM_NX_MAX];

	UNROLL for (int t = 0; t < NX; t++)
		acc[0][t] = accm[0][t] = acc[1][t] = accm[1][t] = _mm256_setzero_ps();
	for (int i = 0; i < nblocks; i++, a++) {
		/* the header into L2 (kern.h), the codes line by line as they are read */
		UNROLL for (int c = 0; c < 256; c += 64)
			tm_prefetch_l2((const char *)a + c);
		q4Kr16_mins(a, x0, i, accm, NX, PERM);
		UNROLL for (int h = 0; h < 2; h++) {
			__m256i isum[TM_NX_MAX];

			UNROLL for (int t = 0; t < NX; t++)
				isum[t] = _mm256_setzero_si256();
			/*
			 * Not unrolled: unrolled, GCC spilled ~300 vectors per
			 * block (16 registers here), and read 11 GB/s from DRAM
			 * and 27 in L2 against 13-14 and 30-32 rolled.
			 */
			_Pragma("GCC unroll 1") for (int j = 0; j < 8; j++) {
				const int js = tm_r16_act_sub(j, PERM);
				__m256i sc = pair16(a->sc[j] + 8 * h, 63);
				__m256i s16[TM_NX_MAX];

				UNROLL for (int t = 0; t < NX; t++)
					s16[t] = _mm256_setzero_si256();
				UNROLL for (int o = 0; o < 4; o++) {
					__m256i v = _mm256_loadu_si256((const __m256i *)a->qs[4 * j + o][8 * h]);

					if (h == 0)
						tm_prefetch_l2(a->qs[4 * j + o]);
					__m256i vl = _mm256_and_si256(v, m0f);
					__m256i vh = _mm256_and_si256(_mm256_srli_epi16(v, 4), m0f);

					UNROLL for (int t = 0; t < NX; t++) {
						const int8_t *yq = x0[t][i].qs + 32 * js + 8 * o;

						s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(vl, bcast4(yq)));
						s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(vh, bcast4(yq + 4)));
					}
				}
				UNROLL for (int t = 0; t < NX; t++)
					isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], sc));
			}
			__m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a->d + 8 * h)));

			UNROLL for (int t = 0; t < NX; t++)
				acc[h][t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x0[t][i].d)),
							    _mm256_cvtepi32_ps(isum[t]), acc[h][t]);
		}
	}
	UNROLL for (int h = 0; h < 2; h++)
		UNROLL for (int t = 0; t < NX; t++)
			_mm256_storeu_ps(y + t * ystride + 8 * h, _mm256_sub_ps(acc[h][t], accm[h][t]));
}

/* The 2 bits at sh..sh+1 of each byte, moved to bits 4..5. */
INLINE __m256i q6_high(__m256i hv, const int sh)
{
	const __m256i m30 = _mm256_set1_epi8(0x30);

	if (sh < 4)
		return _mm256_and_si256(_mm256_slli_epi16(hv, 4 - sh), m30);
	if (sh > 4)
		return _mm256_and_si256(_mm256_srli_epi16(hv, sh - 4), m30);
	return _mm256_and_si256(hv, m30);
}

/*
 * 32 * sum over s of scale_s * (block sum of sub-block s), both halves of a
 * group block, by (scale_s, scale_s+1) pairs in one vpmaddwd (exact: |scale
 * * sum| < 128 * 2048), subtracted from each half's sums: codes are stored
 * + 32, as in q6_K.
 */
INLINE void q6Kr16_mins(const blk_q6_K_r16 *a, const blk_q8_K *const x0[], int i, __m256i isum[2][TM_NX_MAX],
			const int NX)
{
	UNROLL for (int s = 0; s < 16; s += 2) {
		__m128i se = _mm_loadu_si128((const __m128i *)a->sc[s]);
		__m128i so = _mm_loadu_si128((const __m128i *)a->sc[s + 1]);
		__m256i sp[2] = { _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(se, so)),
				  _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(se, so)) };

		UNROLL for (int t = 0; t < NX; t++) {
			const int16_t *bs = x0[t][i].bsums + s;
			__m256i bp = _mm256_set1_epi32((int)((uint32_t)(uint16_t)bs[0] | (uint32_t)(uint16_t)bs[1] << 16));

			UNROLL for (int h = 0; h < 2; h++)
				isum[h][t] = _mm256_sub_epi32(isum[h][t], _mm256_slli_epi32(_mm256_madd_epi16(sp[h], bp), 5));
		}
	}
}

INLINE void q6Kr16_group(const blk_q6_K_r16 *a, int nblocks, const blk_q8_K *const x0[], float *y,
			 size_t ystride, const int NX, const int PERM)
{
	const __m256i m0f = _mm256_set1_epi8(0x0f);
	__m256 acc[2][TM_NX_MAX];

	(void)PERM;
	UNROLL for (int t = 0; t < NX; t++)
		acc[0][t] = acc[1][t] = _mm256_setzero_ps();
	for (int i = 0; i < nblocks; i++, a++) {
		/* d and the scales into L2 (kern.h), the codes line by line below */
		_Static_assert(sizeof(*a) <= 64 * (5 + 3 * 16), "the prefetches cover a q6_K_r16 block");
		UNROLL for (int c = 0; c < 288; c += 64)
			tm_prefetch_l2((const char *)a + c);
		__m256i isums[2][TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++)
			isums[0][t] = isums[1][t] = _mm256_setzero_si256();
		q6Kr16_mins(a, x0, i, isums, NX);
		UNROLL for (int h = 0; h < 2; h++) {
			__m256i *isum = isums[h];

			UNROLL for (int s = 0; s < 16; s++) {
				__m256i hv = _mm256_loadu_si256((const __m256i *)a->qh[s][8 * h]);

				/*
				 * Lines 5 + 3s .. 7 + 3s of the block a prefetch distance on,
				 * in address order: prefetched as read (ql and qh
				 * lines alternating, 2 KiB apart), DRAM gave two
				 * threads 0.63-0.68 of the read loop, in order
				 * 0.78-0.82 (Zen 1, alternating three times).
				 */
				if (h == 0)
					UNROLL for (int k = 0; k < 3; k++)
						tm_prefetch_l2((const char *)a + 64 * (5 + 3 * s + k));
				/* (sc, sc) as 16-bit halves of each lane */
				__m128i s8 = _mm_loadl_epi64((const void *)(a->sc[s] + 8 * h));
				__m256i sc = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s8, s8));

				UNROLL for (int k = 0; k < 2; k++) {
					const int o = 2 * s + k;
					__m256i v = _mm256_loadu_si256((const __m256i *)a->ql[o][8 * h]);
					__m256i ql = _mm256_or_si256(_mm256_and_si256(v, m0f), q6_high(hv, 4 * k));
					__m256i qhi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m0f),
								      q6_high(hv, 4 * k + 2));

					UNROLL for (int t = 0; t < NX; t++) {
						const int8_t *yq = x0[t][i].qs + 8 * o;
						__m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(ql, bcast4(yq)),
									     _mm256_maddubs_epi16(qhi, bcast4(yq + 4)));

						isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, sc));
					}
				}
			}
			__m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a->d + 8 * h)));

			UNROLL for (int t = 0; t < NX; t++)
				acc[h][t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x0[t][i].d)),
							    _mm256_cvtepi32_ps(isum[t]), acc[h][t]);
		}
	}
	UNROLL for (int h = 0; h < 2; h++)
		UNROLL for (int t = 0; t < NX; t++)
			_mm256_storeu_ps(y + t * ystride + 8 * h, acc[h][t]);
}

/*
 * q8_0: the codes back to signed (^ 0x80), then row_q8_0's sums exactly:
 * |code| times the activation with the code's sign in vpmaddubsw (a pair is
 * at most 2 * 128 * 127, no saturation), widened by vpmaddwd, 4 products a
 * lane per quad; (d * dx) * sum added per block as the scalar kernel does.
 */
INLINE void q8_0r16_group(const blk_q8_0_r16 *a, int nblocks, const blk_q8_0 *const x0[], float *y,
			  size_t ystride, const int NX, const int PERM)
{
	const __m256i bias = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
	__m256 acc[2][TM_NX_MAX];

	(void)PERM;
	UNROLL for (int t = 0; t < NX; t++)
		acc[0][t] = acc[1][t] = _mm256_setzero_ps();
	for (int i = 0; i < nblocks; i++, a++) {
		__m256i isum[2][TM_NX_MAX];

		/* one line per 4 blocks, as the VNNI kernel (Zen 5: 45-50 -> 59-62 GB/s) */
		if (!(i & 3))
			tm_prefetch_l2(a);
		UNROLL for (int t = 0; t < NX; t++)
			isum[0][t] = isum[1][t] = _mm256_setzero_si256();
		UNROLL for (int k = 0; k < 8; k++) {
			UNROLL for (int h = 0; h < 2; h++) {
				__m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)a->qs[k][8 * h]), bias);
				__m256i aq = _mm256_sign_epi8(q, q);

				UNROLL for (int t = 0; t < NX; t++) {
					__m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(bcast4(x0[t][i].qs + 4 * k), q));

					isum[h][t] = _mm256_add_epi32(isum[h][t], _mm256_madd_epi16(p, ones));
				}
			}
		}
		UNROLL for (int h = 0; h < 2; h++) {
			__m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a->d + 8 * h)));

			UNROLL for (int t = 0; t < NX; t++)
				acc[h][t] = _mm256_add_ps(acc[h][t], _mm256_mul_ps(_mm256_mul_ps(d,
						_mm256_set1_ps(_cvtsh_ss(x0[t][i].d))), _mm256_cvtepi32_ps(isum[h][t])));
		}
	}
	UNROLL for (int h = 0; h < 2; h++)
		UNROLL for (int t = 0; t < NX; t++)
			_mm256_storeu_ps(y + t * ystride + 8 * h, acc[h][t]);
}

/*
 * Both halves of a group block are taken before the next block: with a pass
 * over the group per half, each prefetching its own ~44 % of a block, the
 * first pass read the rest from DRAM unannounced and the second ran from L2
 * while DRAM idled (0.56-0.57 of the read loop from DRAM, one thread,
 * q4_K_r16 and q6_K_r16, against 0.8-0.84 for the GGML kernels; one pass:
 * 0.82 and 0.70, alternating, medians of 7, load 7-8: a noisy host).
 */
#define R16_AVX2(name, T, BASE, PERM, ACT)						\
void tm_dot_##name(const void *w, size_t wstride, int nrows, int nblocks,		\
		   const void *x, size_t xstride, int nx, float *y, size_t ystride)	\
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
		case 1: T##r16_group(g, nblocks, x0, y + r0, ystride, 1, PERM); break;	\
		case 2: T##r16_group(g, nblocks, x0, y + r0, ystride, 2, PERM); break;	\
		case 3: T##r16_group(g, nblocks, x0, y + r0, ystride, 3, PERM); break;	\
		default: T##r16_group(g, nblocks, x0, y + r0, ystride, 4, PERM); break;	\
		}									\
	}										\
	tm_r16_tail(BASE, full, w, wstride, nrows, nblocks, x, xstride, nx, y, ystride); \
}
#define q4_Kr16_group q4Kr16_group
#define q6_Kr16_group q6Kr16_group
R16_AVX2(q4_K_r16_avx2, q4_K, TM_Q4_K, 0, blk_q8_K)
R16_AVX2(q4_K_r16_avx2p, q4_K, TM_Q4_K, 1, blk_q8_K)
R16_AVX2(q6_K_r16_avx2, q6_K, TM_Q6_K, 0, blk_q8_K)
R16_AVX2(q8_0_r16_avx2, q8_0, TM_Q8_0, 0, blk_q8_0)
