/* SPDX-License-Identifier: MIT */
/*
 * Integer dot products of quantized weights with 8-bit activations, written
 * once for the CPU and the GPU like kernels/quant_decode.h (whose block
 * layouts and scale unpacking they use): the GPU's dp4a matvec
 * (kernels/cuda/matvec.cu) runs these functions, and
 * tests/unit/test_quant_dot.c runs the same ones on the host against the
 * CPU's reference dot kernels.
 *
 * Why: decoding every weight to a float and multiplying it in float costs
 * the GPU a few instructions per weight, and a K-quant matvec there was
 * bound by instruction issue at 31-38 % of HBM bandwidth (H200,
 * Documentation/tiermem-gpu.rst). Here the activation is rounded to int8
 * once per matvec and four weights cost one dp4a (a 4-way int8 dot product
 * with a 32-bit accumulator); scales are applied once per 16 or 32 weights.
 *
 * The activation format, q8a, is llama.cpp's idea of q8_1: blocks of 32
 * int8 with a float scale d (not rounded to f16) and the sums of each half
 * block's int8s, which carry the weights' offsets and mins (q2_K's mins
 * come per 16 elements, hence two sums). It is stored as two arrays, so the
 * int8s load as aligned 16-byte words: qs[n] and meta[n / 32].
 *
 * Unit of work: one block of 32 consecutive weights of a row, against one
 * q8a block: tm_qdot_<type>(row, u, xw, xm) is row element 32u .. 32u+31
 * times the activation's block u, as a float (d_w * d_x * integer sum, less
 * the mins). Whole dot products sum these over u.
 */
#ifndef TIERMEM_KERNELS_QUANT_DOT_H
#define TIERMEM_KERNELS_QUANT_DOT_H

#include "kernels/quant_decode.h"

#ifndef __CUDACC__
#include <math.h>
#endif

/* A q8a block's scale and the sums of its int8s 0..15 and 16..31. */
typedef struct { float d; int16_t s[2]; } tm_q8a_meta;

TM_STATIC_ASSERT(sizeof(tm_q8a_meta) == 8, "q8a meta layout");

/* Bytes of n elements of q8a (n a multiple of 32): the int8s, then the metas. */
#define TM_Q8A_BYTES(n) ((size_t)(n) + (size_t)(n) / 32 * sizeof(tm_q8a_meta))

/* Round to nearest, ties to even, |v| < 2^22 (the CPU quantizers' tm_nearest_int; exact on both). */
TM_HD static inline int tm_qd_nearest(float v)
{
#ifdef __CUDA_ARCH__
	return __float2int_rn(v);
#else
	float f = v + 12582912.f;
	int32_t i;

	memcpy(&i, &f, sizeof(i));
	return (i & 0x007fffff) - 0x00400000;
#endif
}

/*
 * A block's scale from its largest magnitude, as the CPU's q8_0 quantizer
 * (tm_quant_q8_0_ref) computes it, so the int8s are the CPU's bit for bit;
 * only d stays a float.
 */
TM_HD static inline void tm_q8a_scale(float amax, float *d, float *id)
{
	*d = amax / 127.f;
	*id = amax != 0.f ? 127.f / amax : 0.f;
}

/* One block of 32 floats to q8a (the host's quantizer; the GPU's is a warp per block, the same arithmetic). */
TM_HD static inline void tm_q8a_block(const float *x, int8_t *q, tm_q8a_meta *m)
{
	float amax = 0.f, id;
	int s0 = 0, s1 = 0;

	for (int i = 0; i < 32; i++)
		amax = fmaxf(amax, fabsf(x[i]));
	tm_q8a_scale(amax, &m->d, &id);
	for (int i = 0; i < 32; i++) {
		q[i] = (int8_t)tm_qd_nearest(x[i] * id);
		if (i < 16)
			s0 += q[i];
		else
			s1 += q[i];
	}
	m->s[0] = (int16_t)s0;
	m->s[1] = (int16_t)s1;
}

/* sum of the 4 products of a's and b's signed bytes, plus c: the GPU's dp4a, the same in C on the host. */
TM_HD static inline int tm_dp4a(uint32_t a, uint32_t b, int c)
{
#ifdef __CUDA_ARCH__
	return __dp4a((int)a, (int)b, c);
#else
	for (int i = 0; i < 4; i++)
		c += (int8_t)(a >> 8 * i) * (int8_t)(b >> 8 * i);
	return c;
#endif
}

/*
 * Loading n little-endian 32-bit words of weight bytes. Block sizes decide
 * the alignment a row's blocks have: 16 bytes for q4_K/q5_K's code arrays
 * (144- and 176-byte blocks, codes at 16-byte offsets; rows and tensors
 * start 16-byte aligned in VRAM), 4 bytes for q4_1, q5_1 and q2_K, only 2
 * for q8_0, q4_0, q5_0, q3_K and q6_K (34, 18, 22, 110, 210 bytes). The host
 * copies; the GPU loads 16 or 4 bytes at a time, or for 2-byte alignment the
 * aligned words around and a funnel shift (n + 1 loads, not 2n). These
 * loaders are the one place host and device code differ here.
 */
TM_HD static inline void tm_qd_ld16(const uint8_t *p, uint32_t w[4])
{
#ifdef __CUDA_ARCH__
	uint4 v = *(const uint4 *)p;

	w[0] = v.x;
	w[1] = v.y;
	w[2] = v.z;
	w[3] = v.w;
#else
	memcpy(w, p, 16);
#endif
}

TM_HD static inline uint32_t tm_qd_ld4(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
	return *(const uint32_t *)p;
#else
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
#endif
}

TM_HD static inline void tm_qd_ld2(const uint8_t *p, uint32_t *w, int n)
{
#ifdef __CUDA_ARCH__
	const uint32_t *a = (const uint32_t *)((uintptr_t)p & ~(uintptr_t)3);
	unsigned sh = 8 * (unsigned)((uintptr_t)p & 3);
	uint32_t lo = a[0];

	for (int i = 0; i < n; i++) {
		/* aligned p: the word after the last is not read (it may lie past the tensor) */
		uint32_t hi = sh || i + 1 < n ? a[i + 1] : 0;

		w[i] = __funnelshift_r(lo, hi, sh);
		lo = hi;
	}
#else
	memcpy(w, p, 4 * (size_t)n);
#endif
}

/* The sum of a signed byte word times 8-bit activations: dot of 4 words (16 elements). */
TM_HD static inline int tm_qd_dot4(const uint32_t *w, const uint32_t *x)
{
	return tm_dp4a(w[3], x[3], tm_dp4a(w[2], x[2], tm_dp4a(w[1], x[1], tm_dp4a(w[0], x[0], 0))));
}

/*
 * Bits 4i..4i+3 of h (i = 0..7) spread into bit 0 of each byte of a word:
 * the 5th bit of 4 elements of q5_0/q5_1. The multiplier copies the nibble
 * to 4 non-overlapping places 7 bits apart (no carries), the mask keeps
 * bit 0, 8 + 1, 16 + 2 and 24 + 3 of them.
 */
TM_HD static inline uint32_t tm_qd_spread4(uint32_t h, int i)
{
	return (((h >> 4 * i) & 15) * 0x00204081u) & 0x01010101u;
}

/* q8_0: 32 signed bytes; per block (d_w * d_x) * sum, the CPU's expression. */
TM_HD static inline float tm_qdot_q8_0(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q8_0 *b = (const blk_q8_0 *)row + u;
	uint32_t w[8];

	tm_qd_ld2((const uint8_t *)b->qs, w, 8);
	return (tm_dq_half(b->d) * xm.d) * (float)(tm_qd_dot4(w, xw) + tm_qd_dot4(w + 4, xw + 4));
}

/*
 * q4_0, q4_1, q5_0, q5_1: the 16 code bytes' low nibbles are elements 0..15,
 * the high ones 16..31; q5's 5th bit comes from qh. Offsets (q4_0's 8,
 * q5_0's 16) come off through the activation's sums; q4_1/q5_1's min is
 * m * d_x * sum(x int8s) (the CPU rounds d_x * sum to f16 first: q8_1).
 */
TM_HD static inline int tm_qd_legacy_isum(const uint32_t q[4], uint32_t qh, int five, const uint32_t xw[8])
{
	uint32_t lo[4], hi[4];

	for (int i = 0; i < 4; i++) {
		lo[i] = q[i] & 0x0F0F0F0Fu;
		hi[i] = (q[i] >> 4) & 0x0F0F0F0Fu;
		if (five) {
			lo[i] |= tm_qd_spread4(qh, i) << 4;
			hi[i] |= tm_qd_spread4(qh, i + 4) << 4;
		}
	}
	return tm_qd_dot4(lo, xw) + tm_qd_dot4(hi, xw + 4);
}

TM_HD static inline float tm_qdot_q4_0(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q4_0 *b = (const blk_q4_0 *)row + u;
	uint32_t q[4];

	tm_qd_ld2(b->qs, q, 4);
	return (tm_dq_half(b->d) * xm.d) * (float)(tm_qd_legacy_isum(q, 0, 0, xw) - 8 * (xm.s[0] + xm.s[1]));
}

TM_HD static inline float tm_qdot_q5_0(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q5_0 *b = (const blk_q5_0 *)row + u;
	uint32_t q[4], qh;

	tm_qd_ld2(b->qh, &qh, 1);
	tm_qd_ld2(b->qs, q, 4);
	return (tm_dq_half(b->d) * xm.d) * (float)(tm_qd_legacy_isum(q, qh, 1, xw) - 16 * (xm.s[0] + xm.s[1]));
}

TM_HD static inline float tm_qdot_q4_1(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q4_1 *b = (const blk_q4_1 *)row + u;
	uint32_t q[4];

	for (int i = 0; i < 4; i++)
		q[i] = tm_qd_ld4(b->qs + 4 * i);
	return (tm_dq_half(b->d) * xm.d) * (float)tm_qd_legacy_isum(q, 0, 0, xw) +
	       tm_dq_half(b->m) * (xm.d * (float)(xm.s[0] + xm.s[1]));
}

TM_HD static inline float tm_qdot_q5_1(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q5_1 *b = (const blk_q5_1 *)row + u;
	uint32_t q[4], qh = tm_qd_ld4(b->qh);

	for (int i = 0; i < 4; i++)
		q[i] = tm_qd_ld4(b->qs + 4 * i);
	return (tm_dq_half(b->d) * xm.d) * (float)tm_qd_legacy_isum(q, qh, 1, xw) +
	       tm_dq_half(b->m) * (xm.d * (float)(xm.s[0] + xm.s[1]));
}

/*
 * q2_K and q3_K: unit u (0..7 of a super-block) is elements 128 h + 32 j + l
 * (h = u / 4, j = u % 4, l = 0..31): bits 2j..2j+1 of qs[32 h + l], two
 * sub-blocks of 16 (scales 2u and 2u + 1). q2_K: d * sc * q - dmin * m;
 * q3_K: d * sc * (q + 4 * hbit - 4), hbit bit 4h + j of hmask[l].
 */
TM_HD static inline float tm_qdot_q2_K(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q2_K *b = (const blk_q2_K *)row + u / 8;
	int k = u % 8, h = k / 4, j = k % 4, s0 = b->scales[2 * k], s1 = b->scales[2 * k + 1];
	uint32_t q[8];

	for (int i = 0; i < 8; i++)
		q[i] = (tm_qd_ld4(b->qs + 32 * h + 4 * i) >> 2 * j) & 0x03030303u;
	int isum = (s0 & 15) * tm_qd_dot4(q, xw) + (s1 & 15) * tm_qd_dot4(q + 4, xw + 4);
	int msum = (s0 >> 4) * xm.s[0] + (s1 >> 4) * xm.s[1];

	return (tm_dq_half(b->d) * xm.d) * (float)isum - (tm_dq_half(b->dmin) * xm.d) * (float)msum;
}

TM_HD static inline float tm_qdot_q3_K(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q3_K *b = (const blk_q3_K *)row + u / 8;
	int k = u % 8, h = k / 4, j = k % 4;
	uint32_t q[8], hm[8];

	tm_qd_ld2(b->qs + 32 * h, q, 8);
	tm_qd_ld2(b->hmask, hm, 8);
	for (int i = 0; i < 8; i++)
		q[i] = ((q[i] >> 2 * j) & 0x03030303u) | ((hm[i] >> (4 * h + j)) & 0x01010101u) << 2;
	int isum = tm_dq_q3_K_scale(b->scales, 2 * k) * (tm_qd_dot4(q, xw) - 4 * xm.s[0]) +
		   tm_dq_q3_K_scale(b->scales, 2 * k + 1) * (tm_qd_dot4(q + 4, xw + 4) - 4 * xm.s[1]);

	return (tm_dq_half(b->d) * xm.d) * (float)isum;
}

/*
 * q4_K and q5_K: unit u is sub-block j = u % 8, its codes the low (even j)
 * or high (odd j) nibbles of 32 bytes at 32 (j / 2): two aligned 16-byte
 * loads (the neighbouring lane, j ^ 1, loads the same bytes in the same
 * instruction on the GPU). q5_K: bit j of qh[l] is bit 4.
 */
TM_HD static inline float tm_qdot_q45_K(const uint16_t *dd, const uint8_t *scales, const uint8_t *qh,
					const uint8_t *qs, int j, const uint32_t xw[8], tm_q8a_meta xm)
{
	uint32_t q[8];
	int sc, m;

	tm_qd_ld16(qs + 32 * (j / 2), q);
	tm_qd_ld16(qs + 32 * (j / 2) + 16, q + 4);
	for (int i = 0; i < 8; i++)
		q[i] = (q[i] >> 4 * (j & 1)) & 0x0F0F0F0Fu;
	if (qh) {
		uint32_t h[8];

		tm_qd_ld16(qh, h);
		tm_qd_ld16(qh + 16, h + 4);
		for (int i = 0; i < 8; i++)
			q[i] |= ((h[i] >> j) & 0x01010101u) << 4;
	}
	tm_dq_kq_scale(scales, j, &sc, &m);
	return (tm_dq_half(dd[0]) * xm.d) * (float)(sc * (tm_qd_dot4(q, xw) + tm_qd_dot4(q + 4, xw + 4))) -
	       (tm_dq_half(dd[1]) * xm.d) * (float)(m * (xm.s[0] + xm.s[1]));
}

TM_HD static inline float tm_qdot_q4_K(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q4_K *b = (const blk_q4_K *)row + u / 8;

	return tm_qdot_q45_K(&b->d, b->scales, NULL, b->qs, u % 8, xw, xm);
}

TM_HD static inline float tm_qdot_q5_K(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q5_K *b = (const blk_q5_K *)row + u / 8;

	return tm_qdot_q45_K(&b->d, b->scales, b->qh, b->qs, u % 8, xw, xm);
}

/*
 * q6_K: unit u is elements 128 h + 32 q + l (h = u / 4, q = u % 4): low 4
 * bits from ql[64 h + 32 (q & 1) + l] (high nibble for q >= 2), high 2 bits
 * from qh[32 h + l] >> 2q, less 32; sub-blocks of 16 with signed scales.
 */
TM_HD static inline float tm_qdot_q6_K(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_q6_K *b = (const blk_q6_K *)row + u / 8;
	int k = u % 8, h = k / 4, qq = k % 4;
	uint32_t q[8], hb[8];

	tm_qd_ld2(b->ql + 64 * h + 32 * (qq & 1), q, 8);
	tm_qd_ld2(b->qh + 32 * h, hb, 8);
	for (int i = 0; i < 8; i++)
		q[i] = ((q[i] >> 4 * (qq >> 1)) & 0x0F0F0F0Fu) | ((hb[i] >> 2 * qq) & 0x03030303u) << 4;
	int isum = b->scales[2 * k] * (tm_qd_dot4(q, xw) - 32 * xm.s[0]) +
		   b->scales[2 * k + 1] * (tm_qd_dot4(q + 4, xw + 4) - 32 * xm.s[1]);

	return (tm_dq_half(b->d) * xm.d) * (float)isum;
}

/* iq4_xs: unit u is sub-block u % 8, 16 code bytes as q4_0's, each code one of 16 levels (byte permutes). */
TM_HD static inline float tm_qdot_iq4_xs(const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	const blk_iq4_xs *b = (const blk_iq4_xs *)row + u / 8;
	int j = u % 8;
	uint32_t q[4], lo[4], hi[4];

	for (int i = 0; i < 4; i++) {
		q[i] = tm_qd_ld4(b->qs + 16 * j + 4 * i);
		lo[i] = tm_dq_iq4nl4(q[i] & 0x0F0F0F0Fu);
		hi[i] = tm_dq_iq4nl4((q[i] >> 4) & 0x0F0F0F0Fu);
	}
	/* the CPU's float order: (d_w * d_x * (ls - 32)) * sum */
	return ((tm_dq_half(b->d) * xm.d) * (float)(tm_dq_iq4_xs_scale(b, j) - 32)) *
	       (float)(tm_qd_dot4(lo, xw) + tm_qd_dot4(hi, xw + 4));
}

/*
 * The alignment a row of this type needs for the loads above: the address
 * of the matrix, its row and matrix strides must be multiples of it (else
 * the GPU takes the float path).
 */
TM_HD static inline int tm_qdot_align(int type)
{
	return type == 12 || type == 13 ? 16 : type == 3 || type == 7 || type == 10 || type == 23 ? 4 : 2;
}

/* Whether a type has a block dot here: every quantized weight type (GGML ids). */
TM_HD static inline int tm_qdot_has(int type)
{
	switch (type) {
	case 2: case 3: case 6: case 7: case 8: case 10: case 11: case 12: case 13: case 14: case 23:
		return 1;
	default:
		return 0;
	}
}

/* Unit u of a row of any type above by its GGML id (0 for others); the GPU calls the per-type functions. */
TM_HD static inline float tm_qdot(int type, const void *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	switch (type) {
	case 2: return tm_qdot_q4_0(row, u, xw, xm);
	case 3: return tm_qdot_q4_1(row, u, xw, xm);
	case 6: return tm_qdot_q5_0(row, u, xw, xm);
	case 7: return tm_qdot_q5_1(row, u, xw, xm);
	case 8: return tm_qdot_q8_0(row, u, xw, xm);
	case 10: return tm_qdot_q2_K(row, u, xw, xm);
	case 11: return tm_qdot_q3_K(row, u, xw, xm);
	case 12: return tm_qdot_q4_K(row, u, xw, xm);
	case 13: return tm_qdot_q5_K(row, u, xw, xm);
	case 14: return tm_qdot_q6_K(row, u, xw, xm);
	case 23: return tm_qdot_iq4_xs(row, u, xw, xm);
	default: return 0.f;
	}
}

#endif
