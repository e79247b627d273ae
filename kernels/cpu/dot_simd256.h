/* SPDX-License-Identifier: MIT */
/*
 * 256-bit dot kernels and quantizers for every type, included by
 * dot_avx2.c (AVX2+FMA+F16C) and dot_avx512.c (the same code with EVEX
 * encodings and 32 registers, for the types that have no 512-bit kernel).
 * Everything here is static; the including file builds its table.
 *
 * Each kernel runs rows against NX activations (1..TM_NX_MAX): one weight
 * block is loaded and unpacked once and used for all NX tokens, which is what
 * makes prefill cheaper per token than decode. NX is a compile-time constant
 * in each instance (always_inline + switch), so the per-token accumulators
 * live in registers.
 */
#ifndef TIERMEM_DOT_SIMD256_H
#define TIERMEM_DOT_SIMD256_H

#include <immintrin.h>

#include "kern.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

#define DOT_ARGS const void *w, size_t wstride, int nrows, int nblocks, \
		 const void *x, size_t xstride, int nx, float *y, size_t ystride
#define NX_ARGS w, wstride, nrows, nblocks, x, xstride, y, ystride

/* dot_NAME(DOT_ARGS) calling NAME_nx(..., NX) with a constant NX. */
#define NX_DISPATCH(name)						\
__attribute__((unused)) static void dot_##name(DOT_ARGS)					\
{									\
	switch (nx) {							\
	case 1: name##_nx(NX_ARGS, 1); break;				\
	case 2: name##_nx(NX_ARGS, 2); break;				\
	case 3: name##_nx(NX_ARGS, 3); break;				\
	default: name##_nx(NX_ARGS, 4); break;				\
	}								\
}

#define NX_PARAMS const void *w, size_t wstride, int nrows, int nblocks, \
		  const void *x, size_t xstride, float *y, size_t ystride, const int NX

INLINE float hsum256_ps(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

INLINE float hsum128_ps(__m128 s)
{
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

INLINE float f16(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* Sum of products of unsigned bytes u and signed bytes s, 4 a lane, as 8 int32. */
INLINE __m256i dot_u8i8(__m256i u, __m256i s)
{
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Sum of products of signed bytes, as 8 int32: |a| * (b with a's sign). */
INLINE __m256i dot_i8(__m256i a, __m256i b)
{
	return dot_u8i8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* ---- float types ---- */

/* Eight weights as floats; the three float formats differ only here. */
INLINE __m256 load8_f32(const void *p) { return _mm256_loadu_ps(p); }
INLINE __m256 load8_f16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128(p)); }
INLINE __m256 load8_bf16(const void *p)
{
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p)), 16));
}

#define FLOAT_KERNEL(name, T, load8, wscalar)					\
INLINE void name##_nx(NX_PARAMS)						\
{										\
	const int n = nblocks;							\
	for (int r = 0; r < nrows; r++) {					\
		const T *a = (const T *)((const char *)w + r * wstride);	\
		__m256 acc[TM_NX_MAX][2];					\
		int i = 0;							\
		UNROLL for (int t = 0; t < NX; t++)				\
			acc[t][0] = acc[t][1] = _mm256_setzero_ps();		\
		for (; i + 16 <= n; i += 16) {					\
			__m256 w0 = load8(a + i), w1 = load8(a + i + 8);	\
			tm_prefetch_block(a + i, 16 * (int)sizeof(T));		\
			UNROLL for (int t = 0; t < NX; t++) {			\
				const float *b = (const float *)((const char *)x + t * xstride); \
				acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b + i), acc[t][0]); \
				acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b + i + 8), acc[t][1]); \
			}							\
		}								\
		UNROLL for (int t = 0; t < NX; t++) {				\
			const float *b = (const float *)((const char *)x + t * xstride); \
			float s = hsum256_ps(_mm256_add_ps(acc[t][0], acc[t][1])); \
			for (int k = i; k < n; k++)				\
				s += wscalar(a[k]) * b[k];			\
			y[t * ystride + r] = s;					\
		}								\
	}									\
}

static inline float id_f32(float v) { return v; }
FLOAT_KERNEL(f32, float, load8_f32, id_f32)
FLOAT_KERNEL(f16, uint16_t, load8_f16, f16)
FLOAT_KERNEL(bf16, uint16_t, load8_bf16, tm_bf16_to_f32)
NX_DISPATCH(f32)
NX_DISPATCH(f16)
NX_DISPATCH(bf16)

/* ---- q8_0 and q4_0 with q8_0 activations ---- */

INLINE __m256i unpack_q4_0(const blk_q4_0 *b)
{
	__m128i q = _mm_loadu_si128((const __m128i *)b->qs);
	__m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);

	return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(15)), _mm256_set1_epi8(8));
}

INLINE __m256i load_q8_0(const blk_q8_0 *b)
{
	return _mm256_loadu_si256((const __m256i *)b->qs);
}

/*
 * f16(a) * f16(b) in all lanes, the two scales widened by one vcvtph2ps
 * (the same product: both conversions are exact). One row against one
 * token, a conversion a block: on Zen 1 the second took 12 % of q8_0's time.
 */
INLINE __m256 f16_mul_bcast(uint16_t a, uint16_t b)
{
	__m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)a | (uint32_t)b << 16)));

	return _mm256_broadcastss_ps(_mm_mul_ss(f, _mm_movehdup_ps(f)));
}

/*
 * R rows from w (1 or 2) against NX activations. With two, each activation
 * block and its scale are loaded once for both rows; every (row, token) sum
 * is the same ops either way, so a kernel that pairs rows keeps the bits.
 * dot: dot_u8i8, or a table's equal (vpdpbusd gives the same int32 lanes).
 * CVT2: one row against one token widens both scales in one f16_mul_bcast
 * (Zen 1's gain); the VNNI table's CPUs convert them faster one by one (a
 * Zen 5 guest: q8_0 in L3 26.4-27.8 GB/s with it, 28.5-29.0 without).
 * Even and odd blocks go to two accumulators, added at the end: with one,
 * a row against one token waited on the FMA's latency every block (an AMD
 * Zen 5 guest: the VNNI kernel ran 25 GB/s in L3 with one, 28 with two;
 * whole-model q8_0 decode 72-75 -> 78-80 % of the read ceiling).
 */
#define Q80_KERNEL(name, BLK, unpack, dot, CVT2)				\
INLINE void name##_blk(const BLK *const a[2], int i, const void *x, size_t xstride, \
		       __m256 acc[2][TM_NX_MAX], const int NX, const int R)	\
{										\
	__m256i q[2], aq[2];							\
	float d[2];								\
	UNROLL for (int k = 0; k < R; k++) {					\
		q[k] = unpack(a[k] + i);					\
		aq[k] = _mm256_sign_epi8(q[k], q[k]);				\
		d[k] = f16(a[k][i].d);						\
		tm_prefetch_block(a[k] + i, sizeof(BLK));			\
	}									\
	UNROLL for (int t = 0; t < NX; t++) {					\
		const blk_q8_0 *b = (const blk_q8_0 *)((const char *)x + t * xstride) + i; \
		__m256i xb = _mm256_loadu_si256((const __m256i *)b->qs);	\
		float dx = f16(b->d);						\
		UNROLL for (int k = 0; k < R; k++) {				\
			__m256i p = dot(aq[k], _mm256_sign_epi8(xb, q[k]));	\
			__m256 s = CVT2 && NX == 1 && R == 1 ? f16_mul_bcast(a[0][i].d, b->d) : _mm256_set1_ps(d[k] * dx); \
			acc[k][t] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(p), acc[k][t]); \
		}								\
	}									\
}										\
										\
INLINE void name##_rows(const void *w, size_t wstride, int nblocks, const void *x, size_t xstride, \
			float *y, size_t ystride, const int NX, const int R)	\
{										\
	const BLK *a[2];							\
	__m256 acc0[2][TM_NX_MAX], acc1[2][TM_NX_MAX];				\
	int i = 0;								\
	UNROLL for (int k = 0; k < R; k++) {					\
		a[k] = (const BLK *)((const char *)w + k * wstride);		\
		UNROLL for (int t = 0; t < NX; t++)				\
			acc0[k][t] = acc1[k][t] = _mm256_setzero_ps();		\
	}									\
	for (; i + 2 <= nblocks; i += 2) {					\
		name##_blk(a, i, x, xstride, acc0, NX, R);			\
		name##_blk(a, i + 1, x, xstride, acc1, NX, R);			\
	}									\
	if (i < nblocks)							\
		name##_blk(a, i, x, xstride, acc0, NX, R);			\
	UNROLL for (int t = 0; t < NX; t++)					\
		UNROLL for (int k = 0; k < R; k++)				\
			y[t * ystride + k] = hsum256_ps(_mm256_add_ps(acc0[k][t], acc1[k][t])); \
}										\
										\
INLINE void name##_nx(NX_PARAMS)						\
{										\
	for (int r = 0; r < nrows; r++)						\
		name##_rows((const char *)w + r * wstride, wstride, nblocks, x, xstride, y + r, ystride, NX, 1); \
}										\
										\
/* the AVX2 table's: rows in pairs for prefill (NX > 1), one at a time for decode */ \
INLINE void name##x2_nx(NX_PARAMS)						\
{										\
	int r = 0;								\
										\
	for (; NX > 1 && r + 2 <= nrows; r += 2)				\
		name##_rows((const char *)w + r * wstride, wstride, nblocks, x, xstride, y + r, ystride, NX, 2); \
	for (; r < nrows; r++)							\
		name##_rows((const char *)w + r * wstride, wstride, nblocks, x, xstride, y + r, ystride, NX, 1); \
}

Q80_KERNEL(q8_0, blk_q8_0, load_q8_0, dot_u8i8, 1)
Q80_KERNEL(q4_0, blk_q4_0, unpack_q4_0, dot_u8i8, 1)
NX_DISPATCH(q8_0)
NX_DISPATCH(q4_0)
NX_DISPATCH(q8_0x2)
NX_DISPATCH(q4_0x2)

/* ---- q5_0 (q8_0 activations), q4_1 and q5_1 (q8_1 activations) ---- */

/* A 32-element block's 4-bit codes in element order: low nibbles 0..15, high 16..31. */
INLINE __m256i nibbles32(const uint8_t *qs)
{
	__m128i q = _mm_loadu_si128((const __m128i *)qs);

	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(15));
}

/* The fifth bits (bit l of the little-endian qh for element l) as 16 in byte l. */
INLINE __m256i fifth_bits(const uint8_t *qh)
{
	const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
	uint32_t v;
	__m256i b;

	memcpy(&v, qh, 4);
	b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v),
				_mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
						 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
	return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit), _mm256_set1_epi8(16));
}

/* q5_0: signed values -16..15, so it runs as q4_0 does. */
INLINE __m256i unpack_q5_0(const blk_q5_0 *b)
{
	return _mm256_sub_epi8(_mm256_or_si256(nibbles32(b->qs), fifth_bits(b->qh)), _mm256_set1_epi8(16));
}

Q80_KERNEL(q5_0, blk_q5_0, unpack_q5_0, dot_u8i8, 1)
NX_DISPATCH(q5_0)

/* q4_1 and q5_1: unsigned codes (0..15, 0..31) straight into maddubs. */
INLINE __m256i unpack_q4_1(const blk_q4_1 *b)
{
	return nibbles32(b->qs);
}

INLINE __m256i unpack_q5_1(const blk_q5_1 *b)
{
	return _mm256_or_si256(nibbles32(b->qs), fifth_bits(b->qh));
}

/*
 * llama.cpp's order: the d products accumulate in 8 float lanes, the
 * m * s terms (s the activation's d * sum(qs)) in one float, added last.
 */
#define Q81_KERNEL(name, BLK, unpack)						\
INLINE void name##_nx(NX_PARAMS)						\
{										\
	for (int r = 0; r < nrows; r++) {					\
		const BLK *a = (const BLK *)((const char *)w + r * wstride);	\
		__m256 acc[TM_NX_MAX];						\
		float sm[TM_NX_MAX];						\
		UNROLL for (int t = 0; t < NX; t++) {				\
			acc[t] = _mm256_setzero_ps();				\
			sm[t] = 0.f;						\
		}								\
		for (int i = 0; i < nblocks; i++) {				\
			__m256i q = unpack(a + i);				\
			float d = f16(a[i].d), m = f16(a[i].m);			\
			tm_prefetch_block(a + i, sizeof(BLK));			\
			UNROLL for (int t = 0; t < NX; t++) {			\
				const blk_q8_1 *b = (const blk_q8_1 *)((const char *)x + t * xstride) + i; \
				__m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256( \
					(const __m256i *)b->qs)), _mm256_set1_epi16(1)); \
				acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * f16(b->d)), _mm256_cvtepi32_ps(p), acc[t]); \
				sm[t] += m * f16(b->s);				\
			}							\
		}								\
		UNROLL for (int t = 0; t < NX; t++)				\
			y[t * ystride + r] = hsum256_ps(acc[t]) + sm[t];	\
	}									\
}

Q81_KERNEL(q4_1, blk_q4_1, unpack_q4_1)
Q81_KERNEL(q5_1, blk_q5_1, unpack_q5_1)
NX_DISPATCH(q4_1)
NX_DISPATCH(q5_1)

/* ---- q4_K and q5_K with q8_K activations ---- */

/*
 * The 12 packed scale bytes of a q4_K/q5_K block as [sc0..sc7, m0..m7], the
 * layout of tm_kq_scales, in a few vector ops. Reads 16 bytes: the block's
 * codes follow its scales, so the 4 extra bytes are in bounds and ignored.
 */
INLINE __m128i kq_scales_vec(const uint8_t *packed)
{
	const __m128i v = _mm_loadu_si128((const __m128i *)packed);
	/* low bits: sc0-3 = s0-3 & 63, sc4-7 = s8-11 & 15, m0-3 = s4-7 & 63, m4-7 = s8-11 >> 4 */
	const __m128i p = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
	const __m128i lo = _mm_or_si128(
		_mm_and_si128(p, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
		_mm_and_si128(_mm_srli_epi16(p, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15)));
	/* high bits 4-5: sc4-7 from the top of s0-3, m4-7 from the top of s4-7 */
	const __m128i r = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));

	return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(r, 2), _mm_set1_epi8(0x30)));
}

/*
 * The mins term of a q4_K/q5_K block for one activation, as 8 int32:
 * m_j * (bsums[2j] + bsums[2j+1]), from the mins each repeated twice as i16.
 */
INLINE __m256i kq_mins_dup(__m128i scv)
{
	return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scv, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11,
									  12, 12, 13, 13, 14, 14, 15, 15)));
}

/* A K-quant block's d and dmin (adjacent halves) as floats in lanes 0 and 1. */
INLINE __m128 kq_d_dmin(const uint16_t *d)
{
	uint32_t v;

	memcpy(&v, d, 4);
	return _mm_cvtph_ps(_mm_cvtsi32_si128((int)v));
}

/* i16 scale k of a 128-bit vector of 8, broadcast to all 16 lanes of 256 bits. */
INLINE __m256i bcast_i16(__m256i sc8x2, int k)
{
	return _mm256_shuffle_epi8(sc8x2, _mm256_set1_epi16((short)((2 * k) | ((2 * k + 1) << 8))));
}

/*
 * One q4_K/q5_K super-block against NX activations: isum[t] gets
 * sum_j sc[j] * dot(q_j, y_j) in 8 lanes, msum[t] sum_j m[j] * bsum_j in 4.
 */
INLINE void kq45_block(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
		       const blk_q8_K *const xb[], __m256i isum[], __m256i msum[], const int NX)
{
	const __m256i m4 = _mm256_set1_epi8(15);
	const __m128i scv = kq_scales_vec(scales);
	const __m256i sm = _mm256_cvtepu8_epi16(scv);
	const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00), mins = kq_mins_dup(scv);
	__m256i hb = _mm256_setzero_si256();

	UNROLL for (int t = 0; t < NX; t++) {
		msum[t] = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)xb[t]->bsums));
		isum[t] = _mm256_setzero_si256();
	}
	if (qh)
		hb = _mm256_loadu_si256((const __m256i *)qh);
	UNROLL for (int c = 0; c < 4; c++) {
		__m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
		__m256i lo = _mm256_and_si256(q, m4);
		__m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
		__m256i slo = bcast_i16(sc, 2 * c), shi = bcast_i16(sc, 2 * c + 1);

		if (qh) {
			const __m256i one = _mm256_set1_epi8(1);

			lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4));
			hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4));
		}
		UNROLL for (int t = 0; t < NX; t++) {
			const __m256i *yq = (const __m256i *)(xb[t]->qs + 64 * c);
			__m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256(yq)), slo);
			__m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256(yq + 1)), shi);

			isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
		}
	}
}

#define KQ45_KERNEL(name, BLK, HAS_QH)						\
INLINE void name##_nx(NX_PARAMS)						\
{										\
	for (int r = 0; r < nrows; r++) {					\
		const BLK *a = (const BLK *)((const char *)w + r * wstride);	\
		__m256 acc[TM_NX_MAX], accm[TM_NX_MAX];				\
		UNROLL for (int t = 0; t < NX; t++) {				\
			acc[t] = _mm256_setzero_ps();				\
			accm[t] = _mm256_setzero_ps();				\
		}								\
		for (int i = 0; i < nblocks; i++) {				\
			const blk_q8_K *xb[TM_NX_MAX];				\
			__m256i isum[TM_NX_MAX], msum[TM_NX_MAX];		\
			const __m128 dd = kq_d_dmin(&a[i].d);			\
			if (HAS_QH)	/* q5_K into L2: kern.h */		\
				tm_prefetch_block_l2(a + i, sizeof(BLK));	\
			else							\
				tm_prefetch_block(a + i, sizeof(BLK));		\
			UNROLL for (int t = 0; t < NX; t++)			\
				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i; \
			kq45_block(a[i].scales, a[i].qs, HAS_QH ? (const uint8_t *)&a[i] + 16 : NULL, \
				   xb, isum, msum, NX);				\
			UNROLL for (int t = 0; t < NX; t++) {			\
				__m128 s = _mm_mul_ps(dd, _mm_set1_ps(xb[t]->d)); \
				acc[t] = _mm256_fmadd_ps(_mm256_broadcastss_ps(s), \
							 _mm256_cvtepi32_ps(isum[t]), acc[t]); \
				accm[t] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(s)), \
							  _mm256_cvtepi32_ps(msum[t]), accm[t]); \
			}							\
		}								\
		UNROLL for (int t = 0; t < NX; t++)				\
			y[t * ystride + r] = hsum256_ps(acc[t]) - hsum256_ps(accm[t]); \
	}									\
}

KQ45_KERNEL(q4_K, blk_q4_K, 0)
KQ45_KERNEL(q5_K, blk_q5_K, 1)
NX_DISPATCH(q4_K)
NX_DISPATCH(q5_K)

/* ---- q6_K with q8_K activations ---- */

/*
 * Values are 0..63 (offset 32), so maddubs takes them as unsigned and the
 * offset comes off once per block: 32 * sum_k sc[k] * bsum[k].
 */
INLINE void q6K_nx(NX_PARAMS)
{
	const __m256i m4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3);

	for (int r = 0; r < nrows; r++) {
		const blk_q6_K *a = (const blk_q6_K *)((const char *)w + r * wstride);
		__m256 acc[TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = _mm256_setzero_ps();
		for (int i = 0; i < nblocks; i++) {
			const blk_q8_K *xb[TM_NX_MAX];
			__m256i isum[TM_NX_MAX];
			__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
			float d = f16(a[i].d);

			tm_prefetch_block_l2(a + i, sizeof(blk_q6_K));
			UNROLL for (int t = 0; t < NX; t++) {
				__m256i bs;

				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i;
				bs = _mm256_loadu_si256((const __m256i *)xb[t]->bsums);
				isum[t] = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
				isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), isum[t]);
			}
			UNROLL for (int h = 0; h < 2; h++) {
				const uint8_t *ql = a[i].ql + 64 * h, *qh = a[i].qh + 32 * h;
				/* the 8 scales of this half, in both 128-bit lanes */
				__m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
						: _mm256_permute2x128_si256(sc16, sc16, 0x00);
				__m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
				__m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
				__m256i hb = _mm256_loadu_si256((const __m256i *)qh);
				__m256i q[4];

				q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
						       _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4));
				q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
						       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4));
				q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
						       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4));
				q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
						       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4));
				UNROLL for (int k = 0; k < 4; k++) {
					/* low 16 elements use scale 2k, high 16 scale 2k+1 */
					__m256i s = _mm256_shuffle_epi8(sch, _mm256_setr_epi8(
						4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1,
						4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1, 4 * k, 4 * k + 1,
						4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3,
						4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3, 4 * k + 2, 4 * k + 3));

					UNROLL for (int t = 0; t < NX; t++) {
						__m256i yv = _mm256_loadu_si256((const __m256i *)(xb[t]->qs + 128 * h + 32 * k));

						isum[t] = _mm256_add_epi32(isum[t],
							_mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), s));
					}
				}
			}
			UNROLL for (int t = 0; t < NX; t++)
				acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb[t]->d),
							 _mm256_cvtepi32_ps(isum[t]), acc[t]);
		}
		UNROLL for (int t = 0; t < NX; t++)
			y[t * ystride + r] = hsum256_ps(acc[t]);
	}
}
#define q6_K_nx q6K_nx
NX_DISPATCH(q6_K)

/* ---- q2_K and q3_K with q8_K activations ---- */

/*
 * Both hold 16 sub-blocks of 16 with 2-bit codes in the same layout: chunk h
 * (32 bytes) gives, at shift 2j, the 32 elements 128h + 32j .. +31, sub-blocks
 * 8h + 2j (low 16) and 8h + 2j + 1 (high 16). Codes are unsigned (q3_K's
 * high bit folded in makes 0..7 = value + 4, the 4 taken off through the
 * activation's block sums), so maddubs takes them directly.
 *
 * The i16 scales of sub-blocks 2p (low lane) and 2p + 1 (high lane), from
 * the 16 scales as i16 in sc16 (dword p holds the pair).
 */
INLINE __m256i k23_pair_scales(__m256i sc16, int p)
{
	__m256i pair = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(p));

	return _mm256_shuffle_epi8(pair, _mm256_set_m128i(_mm_set1_epi16(0x0302), _mm_set1_epi16(0x0100)));
}

/* sum_k sc[k] * dot16(code_k, y_k) for one block: codes from qs (and hmask for q3_K). */
INLINE void k23_block(const uint8_t *qs, const uint8_t *hmask, __m256i sc16,
		      const blk_q8_K *const xb[], __m256i isum[], const int NX)
{
	const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
	__m256i hb = hmask ? _mm256_loadu_si256((const __m256i *)hmask) : _mm256_setzero_si256();

	UNROLL for (int h = 0; h < 2; h++) {
		__m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));

		UNROLL for (int j = 0; j < 4; j++) {
			__m256i c = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
			__m256i s = k23_pair_scales(sc16, 4 * h + j);

			if (hmask)
				c = _mm256_or_si256(c, _mm256_slli_epi16(
					_mm256_and_si256(_mm256_srli_epi16(hb, 4 * h + j), one), 2));
			UNROLL for (int t = 0; t < NX; t++) {
				__m256i yv = _mm256_loadu_si256((const __m256i *)(xb[t]->qs + 128 * h + 32 * j));

				isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(c, yv), s));
			}
		}
	}
}

INLINE void q2K_nx(NX_PARAMS)
{
	for (int r = 0; r < nrows; r++) {
		const blk_q2_K *a = (const blk_q2_K *)((const char *)w + r * wstride);
		__m256 acc[TM_NX_MAX], accm[TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = accm[t] = _mm256_setzero_ps();
		for (int i = 0; i < nblocks; i++) {
			const blk_q8_K *xb[TM_NX_MAX];
			__m256i isum[TM_NX_MAX], msum[TM_NX_MAX];
			__m128i raw = _mm_loadu_si128((const __m128i *)a[i].scales);
			__m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(15)));
			__m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15)));
			float d = f16(a[i].d), dmin = f16(a[i].dmin);

			tm_prefetch_block(a + i, sizeof(blk_q2_K));
			UNROLL for (int t = 0; t < NX; t++) {
				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i;
				msum[t] = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)xb[t]->bsums));
				isum[t] = _mm256_setzero_si256();
			}
			k23_block(a[i].qs, NULL, sc16, xb, isum, NX);
			UNROLL for (int t = 0; t < NX; t++) {
				acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb[t]->d), _mm256_cvtepi32_ps(isum[t]), acc[t]);
				accm[t] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * xb[t]->d), _mm256_cvtepi32_ps(msum[t]), accm[t]);
			}
		}
		UNROLL for (int t = 0; t < NX; t++)
			y[t * ystride + r] = hsum256_ps(acc[t]) - hsum256_ps(accm[t]);
	}
}
#define q2_K_nx q2K_nx
NX_DISPATCH(q2_K)

/*
 * tm_q3_K_scales in vector ops, as 16 signed bytes. The 12 scale bytes end
 * 2 bytes before the block does, so they are read as 8 + 4, not 16.
 */
INLINE __m128i q3K_scales_vec(const uint8_t *packed)
{
	const __m128i m4 = _mm_set1_epi8(15);
	uint32_t h;
	__m128i lo = _mm_loadl_epi64((const __m128i *)packed), hi;

	memcpy(&h, packed + 8, 4);
	/* scale k's low bits: nibble k / 8 of byte k % 8 */
	lo = _mm_unpacklo_epi64(_mm_and_si128(lo, m4), _mm_and_si128(_mm_srli_epi16(lo, 4), m4));
	/* its high bits: bits 2 (k / 4) of byte 8 + k % 4, one shift per dword */
	hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)h), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
	return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
}

INLINE void q3K_nx(NX_PARAMS)
{
	for (int r = 0; r < nrows; r++) {
		const blk_q3_K *a = (const blk_q3_K *)((const char *)w + r * wstride);
		__m256 acc[TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = _mm256_setzero_ps();
		for (int i = 0; i < nblocks; i++) {
			const blk_q8_K *xb[TM_NX_MAX];
			__m256i isum[TM_NX_MAX];
			__m256i sc16;
			float d = f16(a[i].d);

			tm_prefetch_block(a + i, sizeof(blk_q3_K));
			sc16 = _mm256_cvtepi8_epi16(q3K_scales_vec(a[i].scales));
			UNROLL for (int t = 0; t < NX; t++) {
				/* the codes carry +4: take 4 * sum_k sc[k] * bsum[k] off */
				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i;
				isum[t] = _mm256_slli_epi32(_mm256_madd_epi16(sc16,
						_mm256_loadu_si256((const __m256i *)xb[t]->bsums)), 2);
				isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), isum[t]);
			}
			k23_block(a[i].qs, a[i].hmask, sc16, xb, isum, NX);
			UNROLL for (int t = 0; t < NX; t++)
				acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb[t]->d), _mm256_cvtepi32_ps(isum[t]), acc[t]);
		}
		UNROLL for (int t = 0; t < NX; t++)
			y[t * ystride + r] = hsum256_ps(acc[t]);
	}
}
#define q3_K_nx q3K_nx
NX_DISPATCH(q3_K)

/* ---- iq4_xs with q8_K activations ---- */

/*
 * Each sub-block's 16 code bytes become its 32 signed levels through one
 * byte shuffle of the 16 values per nibble half; the signed products go
 * through dot_i8's sign trick, the pairs straight into madd with the
 * sub-block's scale - 32 (|level * y| <= 127 * 127, times 2 * 32 fits).
 */
INLINE void iq4xs_nx(NX_PARAMS)
{
	const __m128i values = _mm_loadu_si128((const __m128i *)tm_iq4nl_values), m4 = _mm_set1_epi8(15);

	for (int r = 0; r < nrows; r++) {
		const blk_iq4_xs *a = (const blk_iq4_xs *)((const char *)w + r * wstride);
		__m256 acc[TM_NX_MAX];

		UNROLL for (int t = 0; t < NX; t++)
			acc[t] = _mm256_setzero_ps();
		for (int i = 0; i < nblocks; i++) {
			const blk_q8_K *xb[TM_NX_MAX];
			__m256i isum[TM_NX_MAX];

			tm_prefetch_block(a + i, sizeof(blk_iq4_xs));
			UNROLL for (int t = 0; t < NX; t++) {
				xb[t] = (const blk_q8_K *)((const char *)x + t * xstride) + i;
				isum[t] = _mm256_setzero_si256();
			}
			for (int j = 0; j < QK_K / 32; j++) {
				__m128i q = _mm_loadu_si128((const __m128i *)(a[i].qs + 16 * j));
				__m256i v = _mm256_set_m128i(_mm_shuffle_epi8(values, _mm_and_si128(_mm_srli_epi16(q, 4), m4)),
							     _mm_shuffle_epi8(values, _mm_and_si128(q, m4)));
				__m256i av = _mm256_sign_epi8(v, v), ls = _mm256_set1_epi16((int16_t)(tm_dq_iq4_xs_scale(a + i, j) - 32));

				UNROLL for (int t = 0; t < NX; t++) {
					__m256i yv = _mm256_loadu_si256((const __m256i *)(xb[t]->qs + 32 * j));

					isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(
						_mm256_maddubs_epi16(av, _mm256_sign_epi8(yv, v)), ls));
				}
			}
			UNROLL for (int t = 0; t < NX; t++)
				acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(f16(a[i].d) * xb[t]->d), _mm256_cvtepi32_ps(isum[t]), acc[t]);
		}
		UNROLL for (int t = 0; t < NX; t++)
			y[t * ystride + r] = hsum256_ps(acc[t]);
	}
}
#define iq4_xs_nx iq4xs_nx
NX_DISPATCH(iq4_xs)

/* ---- activation quantizers: the reference's expressions, vectorised ---- */

/* 32 int32 (four vectors, in order) to 32 int8, saturating. */
INLINE __m256i pack_i32_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3)
{
	__m256i a = _mm256_packs_epi32(i0, i1), b = _mm256_packs_epi32(i2, i3);

	return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

INLINE float hmax256_ps(__m256 v)
{
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}

INLINE float hmin256_ps(__m256 v)
{
	__m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	m = _mm_min_ps(m, _mm_movehl_ps(m, m));
	m = _mm_min_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}

static void quant_q8_0_256(const float *x, void *q, int64_t n)
{
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	blk_q8_0 *out = q;

	for (int64_t i = 0; i < n / QK; i++, x += QK) {
		__m256 v[4], m;
		float amax, d, id;

		for (int k = 0; k < 4; k++)
			v[k] = _mm256_loadu_ps(x + 8 * k);
		m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], absmask), _mm256_and_ps(v[1], absmask)),
				  _mm256_max_ps(_mm256_and_ps(v[2], absmask), _mm256_and_ps(v[3], absmask)));
		amax = hmax256_ps(m);
		d = amax / 127.f;
		id = amax != 0.f ? 127.f / amax : 0.f;
		out[i].d = tm_f32_to_f16(d);
		m = _mm256_set1_ps(id);
		_mm256_storeu_si256((__m256i *)out[i].qs,
			pack_i32_i8(_mm256_cvtps_epi32(_mm256_mul_ps(v[0], m)), _mm256_cvtps_epi32(_mm256_mul_ps(v[1], m)),
				    _mm256_cvtps_epi32(_mm256_mul_ps(v[2], m)), _mm256_cvtps_epi32(_mm256_mul_ps(v[3], m))));
	}
}

static void quant_q8_K_256(const float *x, void *q, int64_t n)
{
	blk_q8_K *out = q;

	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		__m256 vmax = _mm256_loadu_ps(x), vmin = vmax, s;
		float mx, mn, max, iscale;

		for (int k = 8; k < QK_K; k += 8) {
			__m256 v = _mm256_loadu_ps(x + k);

			vmax = _mm256_max_ps(vmax, v);
			vmin = _mm256_min_ps(vmin, v);
		}
		mx = hmax256_ps(vmax);
		mn = hmin256_ps(vmin);
		max = mx >= -mn ? mx : mn;
		if (max == 0.f) {
			memset(&out[i], 0, sizeof(out[i]));
			continue;
		}
		iscale = -127.f / max;
		s = _mm256_set1_ps(iscale);
		for (int k = 0; k < QK_K; k += 32) {
			__m256i b = pack_i32_i8(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k), s)),
						_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8), s)),
						_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 16), s)),
						_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 24), s)));
			/* sums of 8 bytes as unsigned (+128 each), per 64-bit lane */
			__m256i sad = _mm256_sad_epu8(_mm256_xor_si256(b, _mm256_set1_epi8((char)0x80)),
						      _mm256_setzero_si256());
			uint64_t s8[4];

			_mm256_storeu_si256((__m256i *)(out[i].qs + k), b);
			_mm256_storeu_si256((__m256i *)s8, sad);
			out[i].bsums[k / 16] = (int16_t)((int)(s8[0] + s8[1]) - 16 * 128);
			out[i].bsums[k / 16 + 1] = (int16_t)((int)(s8[2] + s8[3]) - 16 * 128);
		}
		out[i].d = 1.f / iscale;
	}
}

#endif
