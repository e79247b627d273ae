// SPDX-License-Identifier: MIT
/*
 * AVX-512 (F/BW/VL/DQ) kernels: 512-bit versions of most types, plus a VNNI
 * flavour of the quantized kernels (vpdpbusd for q8_0/q4_0, vpdpwssd to
 * scale and accumulate the K-quants) for CPUs that have it. The
 * dispatcher picks tm_kern_avx512vnni only where cpuid reports VNNI. The
 * Makefile compiles this file with -mavx512vnni, so the non-VNNI kernels use
 * intrinsics only (no scalar integer loops the compiler could vectorise into
 * VNNI instructions).
 *
 * Quantizers, the float tails and q4_0/q8_0/q4_1/q5_0/q5_1 (whose blocks of 32
 * paired into 512-bit vectors ran slower than one block a 256-bit vector: the
 * per-block scale assembly, not the products, bounds them) come from the
 * 256-bit template, q4_0/q8_0 with a vpdpbusd flavour of their own here.
 */
#include "dot_simd256.h"
#include "repack.h"

INLINE float hsum512_ps(__m512 v)
{
	return hsum256_ps(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

/* ---- float types ---- */

INLINE __m512 load16_f32(const void *p) { return _mm512_loadu_ps(p); }
INLINE __m512 load16_f16(const void *p) { return _mm512_cvtph_ps(_mm256_loadu_si256(p)); }
INLINE __m512 load16_bf16(const void *p)
{
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p)), 16));
}

#define FLOAT512_KERNEL(name, T, load16, wscalar)				\
INLINE void name##_512_nx(NX_PARAMS)						\
{										\
	const int n = nblocks;							\
	for (int r = 0; r < nrows; r++) {					\
		const T *a = (const T *)((const char *)w + r * wstride);	\
		__m512 acc[TM_NX_MAX][2];					\
		int i = 0;							\
		UNROLL for (int t = 0; t < NX; t++)				\
			acc[t][0] = acc[t][1] = _mm512_setzero_ps();		\
		for (; i + 32 <= n; i += 32) {					\
			__m512 w0 = load16(a + i), w1 = load16(a + i + 16);	\
			tm_prefetch_block(a + i, 32 * (int)sizeof(T));		\
			UNROLL for (int t = 0; t < NX; t++) {			\
				const float *b = (const float *)((const char *)x + t * xstride); \
				acc[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(b + i), acc[t][0]); \
				acc[t][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(b + i + 16), acc[t][1]); \
			}							\
		}								\
		UNROLL for (int t = 0; t < NX; t++) {				\
			const float *b = (const float *)((const char *)x + t * xstride); \
			float s = hsum512_ps(_mm512_add_ps(acc[t][0], acc[t][1])); \
			for (int k = i; k < n; k++)				\
				s += wscalar(a[k]) * b[k];			\
			y[t * ystride + r] = s;					\
		}								\
	}									\
}

FLOAT512_KERNEL(f32, float, load16_f32, id_f32)
FLOAT512_KERNEL(f16, uint16_t, load16_f16, f16)
FLOAT512_KERNEL(bf16, uint16_t, load16_bf16, tm_bf16_to_f32)
NX_DISPATCH(f32_512)
NX_DISPATCH(f16_512)
NX_DISPATCH(bf16_512)

/*
 * ---- q8_0 and q4_0: the 256-bit kernels, with vpdpbusd where there is VNNI ----
 * Two blocks a 512-bit vector (their 32 codes and f16 scales paired with
 * inserts) ran 0.65-0.7x as fast in L2 as one block a 256-bit vector (q8_0
 * 19 vs 28 GB/s, q4_0 8 vs 11.5, one thread, bench/matvec --cpu-time), and
 * two rows a vector, sharing the activation, 0.8x. vpdpbusd for maddubs +
 * madd gives the same int32 lanes (maddubs's int16 pairs cannot saturate:
 * activations are -127..127, so a pair is at most 2 * 128 * 127), so the
 * AVX2 and AVX-512 tables give the same bits (test_kernels checks it):
 * dot_simd256.h's kernels with vpdpbusd for their products.
 */
INLINE __m256i dot_u8i8_vnni(__m256i u, __m256i s)
{
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

Q80_KERNEL(q8_0_vnni, blk_q8_0, load_q8_0, dot_u8i8_vnni, 0)
Q80_KERNEL(q4_0_vnni, blk_q4_0, unpack_q4_0, dot_u8i8_vnni, 0)
NX_DISPATCH(q8_0_vnni)
NX_DISPATCH(q4_0_vnni)

/* ---- q4_K and q5_K ---- */

/* acc + madd(p, s): a single vpdpwssd with VNNI. */
INLINE __m512i madd_acc(__m512i acc, __m512i p, __m512i s, const int vnni)
{
	if (vnni)
		return _mm512_dpwssd_epi32(acc, p, s);
	return _mm512_add_epi32(acc, _mm512_madd_epi16(p, s));
}

/* Index vectors for vpermw: lanes 0..15 take i16 element a, lanes 16..31 element b. */
INLINE __m512i idx2(int a, int b)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)),
				  _mm256_set1_epi16((short)b), 1);
}

/*
 * 64 bytes of q4_K codes (chunks c and c+1) hold sub-blocks 2c and 2c+2 in
 * their low nibbles and 2c+1 and 2c+3 in their high ones. The activations
 * come in that order (TM_ACT_Q8_KP: sub-blocks 1<->2 and 5<->6 swapped), so
 * both nibble vectors meet 64 contiguous activation bytes without a shuffle.
 */
INLINE void kq45_block_512(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
			   const blk_q8_K *const xb[], __m512i isum[], __m256i msum[], const int NX,
			   const int VNNI)
{
	const __m512i m4 = _mm512_set1_epi8(15);
	const __m128i scv = kq_scales_vec(scales);
	const __m512i sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(scv));
	/* the mins, each twice, in the activations' sub-block order */
	const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scv, _mm_setr_epi8(
		8, 8, 10, 10, 9, 9, 11, 11, 12, 12, 14, 14, 13, 13, 15, 15)));

	UNROLL for (int t = 0; t < NX; t++) {
		msum[t] = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)xb[t]->bsums));
		isum[t] = _mm512_setzero_si512();
	}
	UNROLL for (int c = 0; c < 4; c += 2) {
		__m512i v = _mm512_loadu_si512(qs + 32 * c);
		__m512i qa = _mm512_and_si512(v, m4), qb = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
		__m512i sa = _mm512_permutexvar_epi16(idx2(2 * c, 2 * c + 2), sc);
		__m512i sb = _mm512_permutexvar_epi16(idx2(2 * c + 1, 2 * c + 3), sc);

		if (qh) {
			/* bit j of qh[l] is bit 4 of sub-block j's element l */
			const __m512i one = _mm512_set1_epi8(1);
			__m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));

			qa = _mm512_or_si512(qa, _mm512_slli_epi16(_mm512_and_si512(
				_mm512_srlv_epi16(hb, idx2(2 * c, 2 * c + 2)), one), 4));
			qb = _mm512_or_si512(qb, _mm512_slli_epi16(_mm512_and_si512(
				_mm512_srlv_epi16(hb, idx2(2 * c + 1, 2 * c + 3)), one), 4));
		}
		UNROLL for (int t = 0; t < NX; t++) {
			const int8_t *yq = xb[t]->qs + 64 * c;

			isum[t] = madd_acc(isum[t], _mm512_maddubs_epi16(qa, _mm512_loadu_si512(yq)), sa, VNNI);
			isum[t] = madd_acc(isum[t], _mm512_maddubs_epi16(qb, _mm512_loadu_si512(yq + 64)), sb, VNNI);
		}
	}
}

#define KQ45_512_KERNEL(name, BLK, HAS_QH, VNNI)				\
INLINE void name##_nx(NX_PARAMS)						\
{										\
	for (int r = 0; r < nrows; r++) {					\
		const BLK *a = (const BLK *)((const char *)w + r * wstride);	\
		__m512 acc[TM_NX_MAX];						\
		__m256 accm[TM_NX_MAX];						\
		UNROLL for (int t = 0; t < NX; t++) {				\
			acc[t] = _mm512_setzero_ps();				\
			accm[t] = _mm256_setzero_ps();				\
		}								\
		for (int i = 0; i < nblocks; i++) {				\
			const blk_q8_K *xb[TM_NX_MAX];				\
			__m512i isum[TM_NX_MAX];				\
			__m256i msum[TM_NX_MAX];				\
			const __m128 dd = kq_d_dmin(&a[i].d);			\
			if (HAS_QH)	/* q5_K into L2: kern.h */		\
				tm_prefetch_block_l2(a + i, sizeof(BLK));	\
			else							\
				tm_prefetch_block(a + i, sizeof(BLK));		\
			UNROLL for (int t = 0; t < NX; t++)			\
				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i; \
			kq45_block_512(a[i].scales, a[i].qs, HAS_QH ? (const uint8_t *)&a[i] + 16 : NULL, \
				       xb, isum, msum, NX, VNNI);		\
			UNROLL for (int t = 0; t < NX; t++) {			\
				__m128 s = _mm_mul_ps(dd, _mm_set1_ps(xb[t]->d)); \
				acc[t] = _mm512_fmadd_ps(_mm512_broadcastss_ps(s), \
							 _mm512_cvtepi32_ps(isum[t]), acc[t]); \
				accm[t] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(s)), \
							  _mm256_cvtepi32_ps(msum[t]), accm[t]); \
			}							\
		}								\
		UNROLL for (int t = 0; t < NX; t++)				\
			y[t * ystride + r] = hsum512_ps(acc[t]) - hsum256_ps(accm[t]); \
	}									\
}

KQ45_512_KERNEL(q4_K_512, blk_q4_K, 0, 0)
KQ45_512_KERNEL(q5_K_512, blk_q5_K, 1, 0)
KQ45_512_KERNEL(q4_K_vnni, blk_q4_K, 0, 1)
KQ45_512_KERNEL(q5_K_vnni, blk_q5_K, 1, 1)
NX_DISPATCH(q4_K_512)
NX_DISPATCH(q5_K_512)
NX_DISPATCH(q4_K_vnni)
NX_DISPATCH(q5_K_vnni)

/* ---- q6_K ---- */

/* vpermw index: lane l (0..31) takes i16 element base + l / 8. */
INLINE __m512i idx4(int base)
{
	return _mm512_add_epi16(_mm512_set1_epi16((short)base),
				_mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
								   19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8,
								   7, 6, 5, 4, 3, 2, 1, 0), 3));
}

/* Per half of 128: [q0 | q1] and [q2 | q3] as in the 256-bit kernel, 64 bytes each. */
INLINE void q6K_512_body(NX_PARAMS, const int VNNI)
{
	const __m512i m4 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3);
	const __m512i sh01 = idx2(0, 2), sh23 = idx2(4, 6);

	for (int r = 0; r < nrows; r++) {
		const blk_q6_K *a = (const blk_q6_K *)((const char *)w + r * wstride);
		__m512 acc[TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = _mm512_setzero_ps();
		for (int i = 0; i < nblocks; i++) {
			const blk_q8_K *xb[TM_NX_MAX];
			__m512i isum[TM_NX_MAX];
			__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
			__m512i sc = _mm512_castsi256_si512(sc16);
			float d = f16(a[i].d);

			tm_prefetch_block_l2(a + i, sizeof(blk_q6_K));
			UNROLL for (int t = 0; t < NX; t++) {
				__m256i bs, m;

				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i;
				bs = _mm256_loadu_si256((const __m256i *)xb[t]->bsums);
				m = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
				isum[t] = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), m));
			}
			UNROLL for (int h = 0; h < 2; h++) {
				__m512i l = _mm512_loadu_si512(a[i].ql + 64 * h);
				__m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h)));
				__m512i q01 = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(
					_mm512_and_si512(_mm512_srlv_epi16(hb, sh01), m3), 4));
				__m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
					_mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, sh23), m3), 4));
				__m512i s01 = _mm512_permutexvar_epi16(idx4(8 * h), sc);
				__m512i s23 = _mm512_permutexvar_epi16(idx4(8 * h + 4), sc);

				UNROLL for (int t = 0; t < NX; t++) {
					const int8_t *yq = xb[t]->qs + 128 * h;

					isum[t] = madd_acc(isum[t], _mm512_maddubs_epi16(q01, _mm512_loadu_si512(yq)), s01, VNNI);
					isum[t] = madd_acc(isum[t], _mm512_maddubs_epi16(q23, _mm512_loadu_si512(yq + 64)), s23, VNNI);
				}
			}
			UNROLL for (int t = 0; t < NX; t++)
				acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * xb[t]->d),
							 _mm512_cvtepi32_ps(isum[t]), acc[t]);
		}
		UNROLL for (int t = 0; t < NX; t++)
			y[t * ystride + r] = hsum512_ps(acc[t]);
	}
}
INLINE void q6_K_512_nx(NX_PARAMS) { q6K_512_body(NX_ARGS, NX, 0); }
INLINE void q6_K_vnni_nx(NX_PARAMS) { q6K_512_body(NX_ARGS, NX, 1); }
NX_DISPATCH(q6_K_512)
NX_DISPATCH(q6_K_vnni)

/* ---- q2_K and q3_K ---- */

/*
 * The 2-bit layout of dot_simd256.h's k23_block, 64 codes a vector: chunk h
 * (32 bytes) broadcast to both halves and shifted by 2j in the low half and
 * 2j + 2 in the high one gives elements 128h + 32j .. +63, sub-blocks
 * 8h + 2j .. +3, against 64 contiguous activation bytes.
 */
INLINE void k23_block_512(const uint8_t *qs, const uint8_t *hmask, __m512i sc,
			  const blk_q8_K *const xb[], __m512i isum[], const int NX, const int VNNI)
{
	const __m512i m3 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
	__m512i hb = _mm512_setzero_si512();

	if (hmask)
		hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)hmask));
	UNROLL for (int h = 0; h < 2; h++) {
		__m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * h)));

		UNROLL for (int j = 0; j < 4; j += 2) {
			__m512i c = _mm512_and_si512(_mm512_srlv_epi16(q, idx2(2 * j, 2 * j + 2)), m3);
			__m512i s = _mm512_permutexvar_epi16(idx4(8 * h + 2 * j), sc);

			if (hmask)
				c = _mm512_or_si512(c, _mm512_slli_epi16(_mm512_and_si512(
					_mm512_srlv_epi16(hb, idx2(4 * h + j, 4 * h + j + 1)), one), 2));
			UNROLL for (int t = 0; t < NX; t++) {
				__m512i yv = _mm512_loadu_si512(xb[t]->qs + 128 * h + 32 * j);

				isum[t] = madd_acc(isum[t], _mm512_maddubs_epi16(c, yv), s, VNNI);
			}
		}
	}
}

INLINE void q2K_512_body(NX_PARAMS, const int VNNI)
{
	for (int r = 0; r < nrows; r++) {
		const blk_q2_K *a = (const blk_q2_K *)((const char *)w + r * wstride);
		__m512 acc[TM_NX_MAX];
		__m256 accm[TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++) {
			acc[t] = _mm512_setzero_ps();
			accm[t] = _mm256_setzero_ps();
		}
		for (int i = 0; i < nblocks; i++) {
			const blk_q8_K *xb[TM_NX_MAX];
			__m512i isum[TM_NX_MAX];
			__m256i msum[TM_NX_MAX];
			__m128i raw = _mm_loadu_si128((const __m128i *)a[i].scales);
			__m512i sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(15))));
			__m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15)));
			float d = f16(a[i].d), dmin = f16(a[i].dmin);

			tm_prefetch_block(a + i, sizeof(blk_q2_K));
			UNROLL for (int t = 0; t < NX; t++) {
				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i;
				msum[t] = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)xb[t]->bsums));
				isum[t] = _mm512_setzero_si512();
			}
			k23_block_512(a[i].qs, NULL, sc, xb, isum, NX, VNNI);
			UNROLL for (int t = 0; t < NX; t++) {
				acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * xb[t]->d), _mm512_cvtepi32_ps(isum[t]), acc[t]);
				accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * xb[t]->d), _mm256_cvtepi32_ps(msum[t]), accm[t]);
			}
		}
		UNROLL for (int t = 0; t < NX; t++)
			y[t * ystride + r] = hsum512_ps(acc[t]) - hsum256_ps(accm[t]);
	}
}
INLINE void q2_K_512_nx(NX_PARAMS) { q2K_512_body(NX_ARGS, NX, 0); }
INLINE void q2_K_vnni_nx(NX_PARAMS) { q2K_512_body(NX_ARGS, NX, 1); }
NX_DISPATCH(q2_K_512)
NX_DISPATCH(q2_K_vnni)

INLINE void q3K_512_body(NX_PARAMS, const int VNNI)
{
	for (int r = 0; r < nrows; r++) {
		const blk_q3_K *a = (const blk_q3_K *)((const char *)w + r * wstride);
		__m512 acc[TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = _mm512_setzero_ps();
		for (int i = 0; i < nblocks; i++) {
			const blk_q8_K *xb[TM_NX_MAX];
			__m512i isum[TM_NX_MAX];
			__m256i sc16 = _mm256_cvtepi8_epi16(q3K_scales_vec(a[i].scales));
			float d = f16(a[i].d);

			tm_prefetch_block(a + i, sizeof(blk_q3_K));
			UNROLL for (int t = 0; t < NX; t++) {
				/* the codes carry +4: take 4 * sum_k sc[k] * bsum[k] off */
				__m256i m;

				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i;
				m = _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)xb[t]->bsums)), 2);
				isum[t] = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), m));
			}
			k23_block_512(a[i].qs, a[i].hmask, _mm512_castsi256_si512(sc16), xb, isum, NX, VNNI);
			UNROLL for (int t = 0; t < NX; t++)
				acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * xb[t]->d), _mm512_cvtepi32_ps(isum[t]), acc[t]);
		}
		UNROLL for (int t = 0; t < NX; t++)
			y[t * ystride + r] = hsum512_ps(acc[t]);
	}
}
INLINE void q3_K_512_nx(NX_PARAMS) { q3K_512_body(NX_ARGS, NX, 0); }
INLINE void q3_K_vnni_nx(NX_PARAMS) { q3K_512_body(NX_ARGS, NX, 1); }
NX_DISPATCH(q3_K_512)
NX_DISPATCH(q3_K_vnni)

/* ---- iq4_xs ---- */

/* The 8 sub-block scales of an iq4_xs block, less 32, as i16 (tm_dq_iq4_xs_scale in vector ops). */
INLINE __m128i iq4xs_scales_vec(const blk_iq4_xs *b)
{
	uint32_t l;
	__m128i lo, hi;

	memcpy(&l, b->scales_l, 4);
	lo = _mm_cvtepu8_epi16(_mm_shuffle_epi8(_mm_cvtsi32_si128((int)l),
						_mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1)));
	lo = _mm_and_si128(_mm_srlv_epi16(lo, _mm_setr_epi16(0, 4, 0, 4, 0, 4, 0, 4)), _mm_set1_epi16(15));
	hi = _mm_and_si128(_mm_srlv_epi16(_mm_set1_epi16((short)b->scales_h),
					  _mm_setr_epi16(0, 2, 4, 6, 8, 10, 12, 14)), _mm_set1_epi16(3));
	return _mm_sub_epi16(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi16(32));
}

/*
 * 64 code bytes are sub-blocks 4g..4g+3; their levels (one vpshufb per
 * nibble half) are put in element order two sub-blocks a vector, then the
 * signed products go as in the 256-bit kernel: |level| times y with the
 * level's sign (|level * y| <= 127 * 127, so maddubs does not saturate).
 */
INLINE void iq4xs_512_body(NX_PARAMS, const int VNNI)
{
	const __m512i values = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)tm_iq4nl_values));
	const __m512i m4 = _mm512_set1_epi8(15);
	const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
	const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);

	for (int r = 0; r < nrows; r++) {
		const blk_iq4_xs *a = (const blk_iq4_xs *)((const char *)w + r * wstride);
		__m512 acc[TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = _mm512_setzero_ps();
		for (int i = 0; i < nblocks; i++) {
			const blk_q8_K *xb[TM_NX_MAX];
			__m512i isum[TM_NX_MAX];
			__m512i sc = _mm512_castsi128_si512(iq4xs_scales_vec(a + i));

			tm_prefetch_block(a + i, sizeof(blk_iq4_xs));
			UNROLL for (int t = 0; t < NX; t++) {
				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i;
				isum[t] = _mm512_setzero_si512();
			}
			UNROLL for (int g = 0; g < 2; g++) {
				__m512i v = _mm512_loadu_si512(a[i].qs + 64 * g);
				__m512i lo = _mm512_shuffle_epi8(values, _mm512_and_si512(v, m4));
				__m512i hi = _mm512_shuffle_epi8(values, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));

				UNROLL for (int k = 0; k < 2; k++) {
					__m512i lv = _mm512_permutex2var_epi64(lo, k ? second : first, hi);
					__mmask64 neg = _mm512_movepi8_mask(lv);
					__m512i al = _mm512_abs_epi8(lv);
					__m512i s = _mm512_permutexvar_epi16(idx2(4 * g + 2 * k, 4 * g + 2 * k + 1), sc);

					UNROLL for (int t = 0; t < NX; t++) {
						__m512i yv = _mm512_loadu_si512(xb[t]->qs + 128 * g + 64 * k);

						yv = _mm512_mask_sub_epi8(yv, neg, _mm512_setzero_si512(), yv);
						isum[t] = madd_acc(isum[t], _mm512_maddubs_epi16(al, yv), s, VNNI);
					}
				}
			}
			UNROLL for (int t = 0; t < NX; t++)
				acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(f16(a[i].d) * xb[t]->d),
							 _mm512_cvtepi32_ps(isum[t]), acc[t]);
		}
		UNROLL for (int t = 0; t < NX; t++)
			y[t * ystride + r] = hsum512_ps(acc[t]);
	}
}
INLINE void iq4_xs_512_nx(NX_PARAMS) { iq4xs_512_body(NX_ARGS, NX, 0); }
INLINE void iq4_xs_vnni_nx(NX_PARAMS) { iq4xs_512_body(NX_ARGS, NX, 1); }
NX_DISPATCH(iq4_xs_512)
NX_DISPATCH(iq4_xs_vnni)

#define AVX512_DOTS(v)								\
	[TM_F32] = dot_f32_512, [TM_F16] = dot_f16_512, [TM_BF16] = dot_bf16_512, \
	/* the 256-bit kernels: two blocks a 512-bit vector ran 0.67-0.72x as fast in L2 */ \
	/* (q8_0 and q4_0 too: 256-bit, VNNI or not, in each table below) */ \
	[TM_Q4_1] = dot_q4_1, [TM_Q5_0] = dot_q5_0, [TM_Q5_1] = dot_q5_1,	\
	[TM_Q2_K] = dot_q2_K_##v, [TM_Q3_K] = dot_q3_K_##v,			\
	[TM_Q4_K] = dot_q4_K_##v, [TM_Q5_K] = dot_q5_K_##v, [TM_Q6_K] = dot_q6_K_##v, \
	[TM_IQ4_XS] = dot_iq4_xs_##v

/* q8_K for the q4_K/q5_K kernels above: the reference's bytes, reordered. */
static void quant_q8_Kp_512(const float *x, void *q, int64_t n)
{
	quant_q8_K_256(x, q, n);
	tm_q8_K_permute(q, n);
}

const struct tm_kern tm_kern_avx512 = {
	.name = "avx512-novnni",
	.dot = { AVX512_DOTS(512), [TM_Q8_0] = dot_q8_0, [TM_Q4_0] = dot_q4_0, [TM_Q4_K_R16] = tm_dot_q4_K_r16_avx2p, [TM_Q6_K_R16] = tm_dot_q6_K_r16_avx2,
		 [TM_Q8_0_R16] = tm_dot_q8_0_r16_avx2 },
	.quant_q8_0 = quant_q8_0_256,
	.quant_q8_K = quant_q8_K_256,
	.quant_q8_Kp = quant_q8_Kp_512,
};

#define VNNI_TABLE							\
	.dot = { AVX512_DOTS(vnni), [TM_Q8_0] = dot_q8_0_vnni, [TM_Q4_0] = dot_q4_0_vnni, [TM_Q4_K_R16] = tm_dot_q4_K_r16_vnni, [TM_Q6_K_R16] = tm_dot_q6_K_r16_vnni, \
		 [TM_Q8_0_R16] = tm_dot_q8_0_r16_vnni }, \
	.quant_q8_0 = quant_q8_0_256,					\
	.quant_q8_K = quant_q8_K_256,					\
	.quant_q8_Kp = quant_q8_Kp_512,				\
	.repack = 1

/* VNNI without AMX: prefill's matmul on vpdpbusd over panels of 16 rows and 16 tokens (gemm_vnni_avx512.c). */
const struct tm_kern tm_kern_avx512vnni = {
	.name = "avx512",
	VNNI_TABLE,
	.gemm = &tm_gemm_vnni,
};

/* The same without the whole-batch matmul (prefill on the dot kernels, 4 tokens a pass): before/after benches. */
const struct tm_kern tm_kern_avx512vnni_dot = {
	.name = "avx512-vnni-dot",
	VNNI_TABLE,
};

/* The VNNI table with prefill's matmul on AMX tiles (gemm_amx.c). */
const struct tm_kern tm_kern_avx512amx = {
	.name = "avx512-amx",
	VNNI_TABLE,
	.gemm = &tm_gemm_amx,
};
