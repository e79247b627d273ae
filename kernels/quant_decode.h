/* SPDX-License-Identifier: MIT */
/*
 * GGML's block layouts and the decoding of each weight type, written once
 * for the CPU and the GPU: this header compiles as host C (kernels/cpu,
 * tests) and as CUDA device code (kernels/cuda), where TM_HD makes every
 * function __host__ __device__.
 *
 * The unit of decoding is a chunk of 8 consecutive elements of a row: small
 * enough that a GPU thread keeps it in registers, large enough that a block's
 * scales are unpacked once per chunk rather than per element. Chunk k8 holds
 * elements 8*k8 .. 8*k8+7 of the row, whatever the type's block size.
 *
 * Each decoder computes the same float expressions in the same order as the
 * reference dequantizer (kernels/cpu/quant_ref.c), so on the host the two
 * agree bit for bit (tests/unit/test_quant_decode.c checks every type); on
 * the GPU the compiler may contract a multiply-add, a rounding difference.
 */
#ifndef TIERMEM_KERNELS_QUANT_DECODE_H
#define TIERMEM_KERNELS_QUANT_DECODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define TM_HD __host__ __device__
#define TM_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#include <string.h>
#define TM_HD
#define TM_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#ifdef __cplusplus
extern "C" {
#endif
float tm_f16_to_f32(uint16_t h);
#ifdef __cplusplus
}
#endif

#define QK 32		/* elements per q4_0 / q8_0 block */
#define QK_K 256	/* elements per K-quant super-block */

typedef struct { uint16_t d; uint8_t qs[QK / 2]; } blk_q4_0;
typedef struct { uint16_t d; int8_t qs[QK]; } blk_q8_0;
/* d * q + m; element l is the low nibble of qs[l], element l + 16 the high one. */
typedef struct { uint16_t d, m; uint8_t qs[QK / 2]; } blk_q4_1;
/* As q4_0 with a fifth bit: bit l of the little-endian qh for element l; values - 16. */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK / 2]; } blk_q5_0;
/* As q4_1 with q5_0's fifth bit (no offset). */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; } blk_q5_1;
/*
 * 16 sub-blocks of 16: d * (scales[k] & 15) * q - dmin * (scales[k] >> 4), q 2 bits.
 * Element 128 h + 32 j + l is bits 2j..2j+1 of qs[32 h + l]; sub-block (128 h + 32 j + l) / 16.
 */
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; } blk_q2_K;
/*
 * 16 sub-blocks of 16: d * (sc[k] - 32) * (q - 4 * !hbit), sc 6 bits packed in
 * 12 bytes (tm_q3_K_scales in kernels/cpu/kern.h), q the 2 bits of q2_K's
 * layout, the high bit of element 128 h + 32 j + l bit 4 h + j of hmask[l].
 */
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; } blk_q3_K;
/* 8 sub-blocks of 32; 6-bit scales and mins packed into 12 bytes. */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } blk_q4_K;
/* As q4_K; bit 4 of element 32*j + l is bit j of qh[l]. */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } blk_q5_K;
/* 16 sub-blocks of 16, signed 8-bit scales, values 0..63 offset by 32. */
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } blk_q6_K;
/*
 * 8 sub-blocks of 32: d * (ls - 32) * value[q], value the 16 non-linear
 * levels of iq4_nl (tm_iq4nl_values in kernels/cpu/kern.h), ls 6 bits: the
 * low 4 in scales_l[j / 2] (odd j the high nibble), the high 2 bits 2j..2j+1
 * of scales_h. Element l of sub-block j is the low nibble of qs[16 j + l]
 * for l < 16, the high nibble of qs[16 j + l - 16] after.
 */
typedef struct { uint16_t d, scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; } blk_iq4_xs;

TM_STATIC_ASSERT(sizeof(blk_q4_0) == 18, "q4_0 layout");
TM_STATIC_ASSERT(sizeof(blk_q8_0) == 34, "q8_0 layout");
TM_STATIC_ASSERT(sizeof(blk_q4_1) == 20, "q4_1 layout");
TM_STATIC_ASSERT(sizeof(blk_q5_0) == 22, "q5_0 layout");
TM_STATIC_ASSERT(sizeof(blk_q5_1) == 24, "q5_1 layout");
TM_STATIC_ASSERT(sizeof(blk_q2_K) == 84, "q2_K layout");
TM_STATIC_ASSERT(sizeof(blk_q3_K) == 110, "q3_K layout");
TM_STATIC_ASSERT(sizeof(blk_q4_K) == 144, "q4_K layout");
TM_STATIC_ASSERT(sizeof(blk_q5_K) == 176, "q5_K layout");
TM_STATIC_ASSERT(sizeof(blk_q6_K) == 210, "q6_K layout");
TM_STATIC_ASSERT(sizeof(blk_iq4_xs) == 136, "iq4_xs layout");

/*
 * A byte permute: byte i of the result is byte (sel >> 4 i) & 7 of the
 * 8-byte value b:a (a the low word). The GPU's __byte_perm, and the same in
 * C on the host, so code built on it is tested on the CPU as it runs on the
 * GPU. Only selectors 0..7 (no sign replication).
 */
TM_HD static inline uint32_t tm_dq_prmt(uint32_t a, uint32_t b, uint32_t sel)
{
#ifdef __CUDA_ARCH__
	return __byte_perm(a, b, sel);
#else
	uint64_t v = (uint64_t)b << 32 | a;
	uint32_t r = 0;

	for (int i = 0; i < 4; i++)
		r |= (uint32_t)(v >> 8 * ((sel >> 4 * i) & 7) & 255) << 8 * i;
	return r;
#endif
}

/*
 * iq4_nl's 16 levels (tm_iq4nl_values in kernels/cpu/kern.h, which
 * test_quant_decode checks against these) as 4 little-endian words of 4
 * int8: a lookup is a byte permute, with no table in memory (an indexed
 * local array would go to the GPU's slow local memory).
 */
#define TM_IQ4NL_W0 0xBFAD9881u	/* -127 -104 -83 -65 */
#define TM_IQ4NL_W1 0xF6EADDCFu	/* -49 -35 -22 -10 */
#define TM_IQ4NL_W2 0x26190D01u	/* 1 13 25 38 */
#define TM_IQ4NL_W3 0x71594535u	/* 53 69 89 113 */

/* Four 4-bit codes (the low nibbles of q's bytes) to their four iq4_nl levels, as bytes. */
TM_HD static inline uint32_t tm_dq_iq4nl4(uint32_t q)
{
	uint32_t sel = (q & 7) | (q >> 4 & 0x70) | (q >> 8 & 0x700) | (q >> 12 & 0x7000);
	uint32_t lo = tm_dq_prmt(TM_IQ4NL_W0, TM_IQ4NL_W1, sel), hi = tm_dq_prmt(TM_IQ4NL_W2, TM_IQ4NL_W3, sel);
	uint32_t m = (q >> 3 & 0x01010101u) * 255;	/* 0xff in the bytes whose code is 8..15 */

	return (lo & ~m) | (hi & m);
}

/* IEEE half to float: the hardware conversion on the GPU, the portable one on the host. */
TM_HD static inline float tm_dq_half(uint16_t h)
{
#ifdef __CUDA_ARCH__
	return __half2float(__ushort_as_half(h));
#else
	return tm_f16_to_f32(h);
#endif
}

/*
 * A small integer (|v| < 2^22) to float. On the GPU by adding it to the
 * mantissa of 1.5 * 2^23 and subtracting that again: two full-rate
 * operations instead of a conversion instruction, which runs at a quarter of
 * the rate and would otherwise bound a matvec below memory speed. Exact
 * either way, so host and device decode to the same values.
 */
TM_HD static inline float tm_dq_i2f(int v)
{
#ifdef __CUDA_ARCH__
	return __int_as_float(0x4B400000 + v) - 12582912.0f;
#else
	return (float)v;
#endif
}

/*
 * Scale and min of sub-block j (0..7) of a q4_K/q5_K block: 6 bits each in
 * 12 bytes, the same unpacking as tm_kq_scales (kernels/cpu/kern.h) does
 * four at a time.
 */
TM_HD static inline void tm_dq_kq_scale(const uint8_t *q, int j, int *sc, int *m)
{
	/* three loads and selects, no branch: lanes of a GPU warp hold different j */
	int a = q[j & 3], b = q[(j & 3) + 4], c = q[(j & 3) + 8], hi = j >= 4;

	*sc = hi ? (c & 15) | ((a >> 6) << 4) : a & 63;
	*m = hi ? (c >> 4) | ((b >> 6) << 4) : b & 63;
}

/* The signed scale of sub-block k (0..15) of a q3_K block: 6 bits in 12 bytes, less 32. */
TM_HD static inline int tm_dq_q3_K_scale(const uint8_t *packed, int k)
{
	int lo = (packed[k % 8] >> (4 * (k / 8))) & 15, hi = (packed[8 + k % 4] >> (2 * (k / 4))) & 3;

	return (lo | hi << 4) - 32;
}

/* The 6-bit scale of sub-block j (0..7) of an iq4_xs block (the -32 not taken off). */
TM_HD static inline int tm_dq_iq4_xs_scale(const blk_iq4_xs *b, int j)
{
	return ((b->scales_l[j / 2] >> 4 * (j % 2)) & 15) | (((b->scales_h >> 2 * j) & 3) << 4);
}

/*
 * Each type's decoder gives a chunk in affine form: element i is
 * ab[0] * v[i] - ab[1] (a block's scale and min times small integers, or
 * 1 and 0 for float types). A dot product can then multiply by the scale
 * and min once per chunk, after summing v[i] * x[i] and x[i], instead of
 * once per element; tm_dec8_* below apply the affine map for those who
 * want the values.
 */
TM_HD static inline void tm_dec8a_f32(const void *row, int64_t k8, float v[8], float ab[2])
{
	const float *p = (const float *)row + 8 * k8;

	for (int i = 0; i < 8; i++)
		v[i] = p[i];
	ab[0] = 1.0f;
	ab[1] = 0.0f;
}

TM_HD static inline void tm_dec8a_f16(const void *row, int64_t k8, float v[8], float ab[2])
{
	const uint16_t *p = (const uint16_t *)row + 8 * k8;

	for (int i = 0; i < 8; i++)
		v[i] = tm_dq_half(p[i]);
	ab[0] = 1.0f;
	ab[1] = 0.0f;
}

TM_HD static inline void tm_dec8a_bf16(const void *row, int64_t k8, float v[8], float ab[2])
{
	const uint16_t *p = (const uint16_t *)row + 8 * k8;

	for (int i = 0; i < 8; i++) {
		uint32_t u = (uint32_t)p[i] << 16;
		float f;

#ifdef __CUDA_ARCH__
		f = __uint_as_float(u);
#else
		memcpy(&f, &u, sizeof(f));
#endif
		v[i] = f;
	}
	ab[0] = 1.0f;
	ab[1] = 0.0f;
}

TM_HD static inline void tm_dec8a_q8_0(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q8_0 *b = (const blk_q8_0 *)row + k8 / 4;
	const int8_t *q = b->qs + 8 * (k8 % 4);

	for (int i = 0; i < 8; i++)
		v[i] = tm_dq_i2f(q[i]);
	ab[0] = tm_dq_half(b->d);
	ab[1] = 0.0f;
}

/* Elements 0..15 of a block are the low nibbles of qs[0..15], 16..31 the high ones. */
TM_HD static inline void tm_dec8a_q4_0(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q4_0 *b = (const blk_q4_0 *)row + k8 / 4;
	int c = (int)(k8 % 4), shift = 4 * (c >> 1);
	const uint8_t *q = b->qs + 8 * (c & 1);

	for (int i = 0; i < 8; i++)
		v[i] = tm_dq_i2f(((q[i] >> shift) & 15) - 8);
	ab[0] = tm_dq_half(b->d);
	ab[1] = 0.0f;
}

/*
 * q4_1, q5_0, q5_1: chunk c (0..3) of a block of 32 holds elements 8c..8c+7,
 * the low nibbles of qs[8c..] for c < 2, the high ones of qs[8c - 16..]
 * after; the fifth bit of element l is bit l of qh. q5_0's min is -0.0, not
 * 0: the reference adds a zero min (d * (q - 16) + 0.f), which turns a -0.0
 * product into +0.0, and x - -0.0 does the same.
 */
TM_HD static inline void tm_dec8a_legacy(uint16_t d, float min, const uint8_t *qh, const uint8_t *qs, int c,
					 int off, float v[8], float ab[2])
{
	const uint8_t *q = qs + 8 * (c & 1);
	int shift = 4 * (c >> 1);
	uint32_t h = qh ? (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24 : 0;

	for (int i = 0; i < 8; i++)
		v[i] = tm_dq_i2f((((q[i] >> shift) & 15) | (int)((h >> (8 * c + i)) & 1) << 4) - off);
	ab[0] = tm_dq_half(d);
	ab[1] = min;
}

TM_HD static inline void tm_dec8a_q4_1(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q4_1 *b = (const blk_q4_1 *)row + k8 / 4;

	tm_dec8a_legacy(b->d, -tm_dq_half(b->m), NULL, b->qs, (int)(k8 % 4), 0, v, ab);
}

TM_HD static inline void tm_dec8a_q5_0(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q5_0 *b = (const blk_q5_0 *)row + k8 / 4;

	tm_dec8a_legacy(b->d, -0.0f, b->qh, b->qs, (int)(k8 % 4), 16, v, ab);
}

TM_HD static inline void tm_dec8a_q5_1(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q5_1 *b = (const blk_q5_1 *)row + k8 / 4;

	tm_dec8a_legacy(b->d, -tm_dq_half(b->m), b->qh, b->qs, (int)(k8 % 4), 0, v, ab);
}

/*
 * q2_K and q3_K: chunk c (0..31) holds elements k0 = 8c .. k0+7, with
 * k0 = 128 h + 32 j + l0: the 2-bit codes are bits 2j..2j+1 of
 * qs[32 h + l0 ..], in one sub-block of 16 (k0 / 16). q2_K: d * sc * q -
 * dmin * m; q3_K: d * sc * (q - 4 unless bit 4h + j of hmask[l0 + i]).
 */
TM_HD static inline void tm_dec8a_q2_K(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q2_K *b = (const blk_q2_K *)row + k8 / 32;
	int k0 = 8 * (int)(k8 % 32), h = k0 / 128, j = k0 % 128 / 32, l0 = k0 % 32, sc = b->scales[k0 / 16];
	const uint8_t *q = b->qs + 32 * h + l0;

	for (int i = 0; i < 8; i++)
		v[i] = tm_dq_i2f((q[i] >> (2 * j)) & 3);
	ab[0] = tm_dq_half(b->d) * tm_dq_i2f(sc & 15);
	ab[1] = tm_dq_half(b->dmin) * tm_dq_i2f(sc >> 4);
}

TM_HD static inline void tm_dec8a_q3_K(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q3_K *b = (const blk_q3_K *)row + k8 / 32;
	int k0 = 8 * (int)(k8 % 32), h = k0 / 128, j = k0 % 128 / 32, l0 = k0 % 32;
	const uint8_t *q = b->qs + 32 * h + l0, *hm = b->hmask + l0;

	for (int i = 0; i < 8; i++)
		v[i] = tm_dq_i2f(((q[i] >> (2 * j)) & 3) - ((hm[i] >> (4 * h + j)) & 1 ? 0 : 4));
	ab[0] = tm_dq_half(b->d) * tm_dq_i2f(tm_dq_q3_K_scale(b->scales, k0 / 16));
	ab[1] = 0.0f;
}

/* iq4_xs: chunk c (0..31) lies in sub-block j = c / 4; its codes are nibbles as q4_0's in 16 bytes. */
TM_HD static inline void tm_dec8a_iq4_xs(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_iq4_xs *b = (const blk_iq4_xs *)row + k8 / 32;
	int c = (int)(k8 % 32), j = c / 4, shift = 4 * ((c >> 1) & 1);
	const uint8_t *q = b->qs + 16 * j + 8 * (c & 1);

	for (int w = 0; w < 2; w++) {
		uint32_t codes = 0, lv;

		for (int i = 0; i < 4; i++)
			codes |= (uint32_t)((q[4 * w + i] >> shift) & 15) << 8 * i;
		lv = tm_dq_iq4nl4(codes);
		for (int i = 0; i < 4; i++)
			v[4 * w + i] = tm_dq_i2f((int8_t)(lv >> 8 * i));
	}
	ab[0] = tm_dq_half(b->d) * tm_dq_i2f(tm_dq_iq4_xs_scale(b, j) - 32);
	ab[1] = 0.0f;
}

/*
 * 8 bytes as one little-endian word. On the GPU one 8-byte load: the callers
 * pass addresses that are 8-byte aligned there (q4_K/q5_K blocks are 144 and
 * 176 bytes, their code arrays start at offsets 16 and 48, and every tensor
 * in VRAM starts 256-byte aligned); on the host a memcpy, any alignment.
 */
TM_HD static inline uint64_t tm_dq_ld8(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
	return *(const unsigned long long *)p;
#else
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;	/* x86-64: little-endian, as GGUF */
#endif
}

/*
 * q4_K and q5_K: chunk c (0..31) of a super-block lies in sub-block j = c/4,
 * whose 4-bit codes are the low (even j) or high (odd j) nibbles of bytes
 * 32*(j/2) .. +31; q5_K adds bit j of qh[l] as bit 4. Element = d*sc*q - dmin*m.
 */
TM_HD static inline void tm_dec8a_q45_K(const uint16_t *dd, const uint8_t *scales, const uint8_t *qh,
					const uint8_t *qs, int c, float v[8], float ab[2])
{
	int j = c / 4, l0 = 8 * (c % 4), shift = 4 * (j & 1), sc, m;
	uint64_t q = tm_dq_ld8(qs + 32 * (j / 2) + l0) >> shift, h = qh ? tm_dq_ld8(qh + l0) >> j : 0;

	tm_dq_kq_scale(scales, j, &sc, &m);
	ab[0] = tm_dq_half(dd[0]) * tm_dq_i2f(sc);
	ab[1] = tm_dq_half(dd[1]) * tm_dq_i2f(m);
#ifdef __CUDA_ARCH__
	/*
	 * The same integers with fewer instructions (a matvec is bound by their
	 * issue rate): mask the 4 codes of a 32-bit word at once, then one byte
	 * permute per element builds the float 2^23 + code, less 2^23.
	 */
	uint32_t w[2] = { (uint32_t)q & 0x0F0F0F0Fu, (uint32_t)(q >> 32) & 0x0F0F0F0Fu };

	w[0] |= ((uint32_t)h & 0x01010101u) << 4;
	w[1] |= ((uint32_t)(h >> 32) & 0x01010101u) << 4;
	for (int i = 0; i < 8; i++)
		v[i] = __uint_as_float(__byte_perm(w[i / 4], 0x4B000000u, 0x7440 + i % 4)) - 8388608.0f;
#else
	for (int i = 0; i < 8; i++)
		v[i] = tm_dq_i2f((int)((q >> (8 * i)) & 15) | (int)(((h >> (8 * i)) & 1) << 4));
#endif
}

TM_HD static inline void tm_dec8a_q4_K(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q4_K *b = (const blk_q4_K *)row + k8 / 32;

	tm_dec8a_q45_K(&b->d, b->scales, NULL, b->qs, (int)(k8 % 32), v, ab);
}

TM_HD static inline void tm_dec8a_q5_K(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q5_K *b = (const blk_q5_K *)row + k8 / 32;

	tm_dec8a_q45_K(&b->d, b->scales, b->qh, b->qs, (int)(k8 % 32), v, ab);
}

/*
 * q6_K: element k = 128*half + 32*quarter + l takes its low 4 bits from
 * ql[64*half + l (+32 for odd quarters)] (high nibble for quarters 2 and 3)
 * and its high 2 bits from qh[32*half + l] >> 2*quarter, minus 32; a chunk
 * of 8 keeps half and quarter fixed and lies in one sub-block of 16 (one
 * signed scale).
 */
TM_HD static inline void tm_dec8a_q6_K(const void *row, int64_t k8, float v[8], float ab[2])
{
	const blk_q6_K *b = (const blk_q6_K *)row + k8 / 32;
	int k0 = 8 * (int)(k8 % 32), half = k0 / 128, r = k0 % 128, quarter = r / 32, l0 = r % 32;
	const uint8_t *ql = b->ql + 64 * half + ((quarter & 1) ? 32 : 0) + l0;
	const uint8_t *qh = b->qh + 32 * half + l0;
	int shift = quarter >= 2 ? 4 : 0;

	for (int i = 0; i < 8; i++)
		v[i] = tm_dq_i2f((((ql[i] >> shift) & 15) | (((qh[i] >> (2 * quarter)) & 3) << 4)) - 32);
	ab[0] = tm_dq_half(b->d) * tm_dq_i2f(b->scales[k0 / 16]);
	ab[1] = 0.0f;
}

/* The values of a chunk: the affine map of the decoders above. */
#define TM_DEC8_VALUES(T) \
TM_HD static inline void tm_dec8_##T(const void *row, int64_t k8, float o[8]) \
{ \
	float v[8], ab[2]; \
 \
	tm_dec8a_##T(row, k8, v, ab); \
	for (int i = 0; i < 8; i++) \
		o[i] = ab[0] * v[i] - ab[1]; \
}
TM_DEC8_VALUES(f32)
TM_DEC8_VALUES(f16)
TM_DEC8_VALUES(bf16)
TM_DEC8_VALUES(q8_0)
TM_DEC8_VALUES(q4_0)
TM_DEC8_VALUES(q4_K)
TM_DEC8_VALUES(q5_K)
TM_DEC8_VALUES(q6_K)
TM_DEC8_VALUES(q4_1)
TM_DEC8_VALUES(q5_0)
TM_DEC8_VALUES(q5_1)
TM_DEC8_VALUES(q2_K)
TM_DEC8_VALUES(q3_K)
TM_DEC8_VALUES(iq4_xs)
#undef TM_DEC8_VALUES

/*
 * Any type by its GGML id (kernels/kernels.h: 0 f32, 1 f16, 2 q4_0, 3 q4_1,
 * 6 q5_0, 7 q5_1, 8 q8_0, 10 q2_K, 11 q3_K, 12 q4_K, 13 q5_K, 14 q6_K,
 * 23 iq4_xs, 30 bf16): every weight type a GGUF may hold. Returns 0, or -1 for a type it does
 * not decode (o untouched). GPU kernels call the per-type functions from a
 * template instead, so the switch is not in their inner loop.
 */
TM_HD static inline int tm_dec8(int type, const void *row, int64_t k8, float o[8])
{
	switch (type) {
	case 0: tm_dec8_f32(row, k8, o); return 0;
	case 1: tm_dec8_f16(row, k8, o); return 0;
	case 2: tm_dec8_q4_0(row, k8, o); return 0;
	case 3: tm_dec8_q4_1(row, k8, o); return 0;
	case 6: tm_dec8_q5_0(row, k8, o); return 0;
	case 7: tm_dec8_q5_1(row, k8, o); return 0;
	case 8: tm_dec8_q8_0(row, k8, o); return 0;
	case 12: tm_dec8_q4_K(row, k8, o); return 0;
	case 13: tm_dec8_q5_K(row, k8, o); return 0;
	case 14: tm_dec8_q6_K(row, k8, o); return 0;
	case 10: tm_dec8_q2_K(row, k8, o); return 0;
	case 11: tm_dec8_q3_K(row, k8, o); return 0;
	case 23: tm_dec8_iq4_xs(row, k8, o); return 0;
	case 30: tm_dec8_bf16(row, k8, o); return 0;
	default: return -1;
	}
}

#endif
