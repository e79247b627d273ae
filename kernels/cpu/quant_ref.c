// SPDX-License-Identifier: MIT
/*
 * The reference decoding of every weight type and the activation quantizers.
 * The SIMD quantizers compute the same expressions in the same order, so all
 * ISAs quantize an activation to the same bytes.
 */
#include <math.h>

#include "kern.h"

void tm_quant_q8_0_ref(const float *x, void *q, int64_t n)
{
	blk_q8_0 *y = q;

	for (int64_t i = 0; i < n / QK; i++, x += QK) {
		float amax = 0.f, d, id;

		for (int j = 0; j < QK; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		d = amax / 127.f;
		/* 127/amax, not 1/d: what llama.cpp's x86 (AVX2) quantizer computes */
		id = amax != 0.f ? 127.f / amax : 0.f;
		y[i].d = tm_f32_to_f16(d);
		for (int j = 0; j < QK; j++)
			y[i].qs[j] = (int8_t)tm_nearest_int(x[j] * id);
	}
}

/*
 * q8_0's bytes plus s = d * sum(qs) rounded to f16, with d as computed, not
 * as stored: llama.cpp's x86 quantizer. q4_1/q5_1 weights have a large min
 * term (m * s per block) that the sum of the row mostly cancels, so the
 * rounding of s shows in their outputs (median 0.04 of a logit's spread on
 * the random synth models): it must be the same rounding.
 */
void tm_quant_q8_1_ref(const float *x, void *q, int64_t n)
{
	blk_q8_1 *y = q;

	for (int64_t i = 0; i < n / QK; i++, x += QK) {
		float amax = 0.f, d, id;
		int sum = 0;

		for (int j = 0; j < QK; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		d = amax / 127.f;
		id = amax != 0.f ? 127.f / amax : 0.f;
		y[i].d = tm_f32_to_f16(d);
		for (int j = 0; j < QK; j++) {
			y[i].qs[j] = (int8_t)tm_nearest_int(x[j] * id);
			sum += y[i].qs[j];
		}
		y[i].s = tm_f32_to_f16(d * (float)sum);
	}
}

/*
 * llama.cpp scales by the element of largest magnitude, keeping its sign, so
 * that element maps to -127 exactly. On a tie between +a and -a we take +a
 * (a SIMD max/min reduction can reproduce that; "the first one" it cannot).
 */
void tm_quant_q8_K_ref(const float *x, void *q, int64_t n)
{
	blk_q8_K *y = q;

	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		float vmax = x[0], vmin = x[0], max, iscale;

		for (int j = 1; j < QK_K; j++) {
			vmax = fmaxf(vmax, x[j]);
			vmin = fminf(vmin, x[j]);
		}
		max = vmax >= -vmin ? vmax : vmin;
		if (max == 0.f) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		iscale = -127.f / max;
		for (int j = 0; j < QK_K; j++) {
			int v = tm_nearest_int(iscale * x[j]);

			y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
		}
		for (int j = 0; j < QK_K / 16; j++) {
			int s = 0;

			for (int l = 0; l < 16; l++)
				s += y[i].qs[16 * j + l];
			y[i].bsums[j] = (int16_t)s;
		}
		y[i].d = 1.f / iscale;
	}
}

void tm_q8_K_permute(void *q, int64_t n)
{
	blk_q8_K *y = q;

	for (int64_t i = 0; i < n / QK_K; i++) {
		for (int s = 1; s < 8; s += 4) {	/* sub-blocks 1<->2 and 5<->6 */
			int8_t tmp[32];
			int16_t bs[2];

			memcpy(tmp, y[i].qs + 32 * s, 32);
			memcpy(y[i].qs + 32 * s, y[i].qs + 32 * (s + 1), 32);
			memcpy(y[i].qs + 32 * (s + 1), tmp, 32);
			memcpy(bs, y[i].bsums + 2 * s, sizeof(bs));
			memcpy(y[i].bsums + 2 * s, y[i].bsums + 2 * (s + 1), sizeof(bs));
			memcpy(y[i].bsums + 2 * (s + 1), bs, sizeof(bs));
		}
	}
}

static void dequant_q4_0(const blk_q4_0 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, b++, y += QK) {
		float d = tm_f16_to_f32(b->d);

		for (int l = 0; l < QK / 2; l++) {
			y[l] = d * ((b->qs[l] & 15) - 8);
			y[l + QK / 2] = d * ((b->qs[l] >> 4) - 8);
		}
	}
}

/* q4_1, q5_0, q5_1: d * q (+ m), q 4 or 5 bits, q5_0 offset by 16. */
static void dequant_legacy(int type, const void *blocks, float *y, int64_t nb)
{
	const struct tm_dtype_traits *t = tm_dtype_traits(type);

	for (int64_t i = 0; i < nb; i++, y += QK) {
		const uint8_t *b = (const uint8_t *)blocks + i * t->block_bytes;
		const blk_q4_1 *b41 = (const void *)b;
		const blk_q5_0 *b50 = (const void *)b;
		const blk_q5_1 *b51 = (const void *)b;
		const uint8_t *qs = type == TM_Q4_1 ? b41->qs : type == TM_Q5_0 ? b50->qs : b51->qs;
		float d = tm_f16_to_f32(b41->d), m = 0.f;
		uint32_t qh = 0;
		int off = 0;

		if (type == TM_Q5_0) {
			memcpy(&qh, b50->qh, 4);
			off = 16;
		} else {
			m = tm_f16_to_f32(b41->m);
			if (type == TM_Q5_1)
				memcpy(&qh, b51->qh, 4);
		}
		for (int l = 0; l < QK; l++) {
			int v = (l < QK / 2 ? qs[l] & 15 : qs[l - QK / 2] >> 4) | (int)((qh >> l) & 1) << 4;

			y[l] = d * (v - off) + m;
		}
	}
}

/* The 2-bit code of element k of a q2_K/q3_K block (their layouts share it). */
static inline int k23_low(const uint8_t *qs, int k)
{
	return (qs[32 * (k / 128) + k % 32] >> (2 * (k % 128 / 32))) & 3;
}

static void dequant_q2_K(const blk_q2_K *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, b++, y += QK_K) {
		float d = tm_f16_to_f32(b->d), dmin = tm_f16_to_f32(b->dmin);

		for (int k = 0; k < QK_K; k++) {
			uint8_t sc = b->scales[k / 16];

			y[k] = d * (sc & 15) * k23_low(b->qs, k) - dmin * (sc >> 4);
		}
	}
}

static void dequant_q3_K(const blk_q3_K *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, b++, y += QK_K) {
		float d = tm_f16_to_f32(b->d);
		int8_t sc[16];

		tm_q3_K_scales(b->scales, sc);
		for (int k = 0; k < QK_K; k++) {
			int hbit = (b->hmask[k % 32] >> (k / 32)) & 1;

			y[k] = d * sc[k / 16] * (k23_low(b->qs, k) - (hbit ? 0 : 4));
		}
	}
}

static void dequant_q8_0(const blk_q8_0 *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, b++, y += QK) {
		float d = tm_f16_to_f32(b->d);

		for (int l = 0; l < QK; l++)
			y[l] = d * b->qs[l];
	}
}

/* q4_K and q5_K: sub-block j of 32 is d*sc[j]*q - dmin*m[j]; q has 4 or 5 bits. */
static void dequant_q45_K(const void *blocks, size_t bsize, int five, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK_K) {
		const uint8_t *base = (const uint8_t *)blocks + i * bsize;
		const blk_q4_K *b4 = (const void *)base;
		const blk_q5_K *b5 = (const void *)base;
		const uint8_t *qs = five ? b5->qs : b4->qs;
		float d = tm_f16_to_f32(b4->d), dmin = tm_f16_to_f32(b4->dmin);
		uint32_t u[4];
		uint8_t sm[16];

		tm_kq_scales(b4->scales, u);
		memcpy(sm, u, 16);
		for (int j = 0; j < 8; j++) {
			float dl = d * sm[j], ml = dmin * sm[8 + j];
			/* sub-blocks 2c and 2c+1 share the bytes of chunk c: low, high nibble */
			const uint8_t *q = qs + 32 * (j / 2);
			int shift = 4 * (j & 1);

			for (int l = 0; l < 32; l++) {
				int v = (q[l] >> shift) & 15;

				if (five)
					v |= ((b5->qh[l] >> j) & 1) << 4;
				y[32 * j + l] = dl * v - ml;
			}
		}
	}
}

/* The 6-bit value of element k (0..255) of a q6_K block, before the -32 offset. */
static inline int q6_value(const blk_q6_K *b, int k)
{
	int half = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
	const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
	int lo = (quarter & 1) ? ql[l + 32] : ql[l];

	lo = quarter >= 2 ? lo >> 4 : lo & 15;
	return lo | (((qh[l] >> (2 * quarter)) & 3) << 4);
}

static void dequant_q6_K(const blk_q6_K *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, b++, y += QK_K) {
		float d = tm_f16_to_f32(b->d);

		for (int k = 0; k < QK_K; k++)
			y[k] = d * b->scales[k / 16] * (q6_value(b, k) - 32);
	}
}

static void dequant_iq4_xs(const blk_iq4_xs *b, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, b++) {
		float d = tm_f16_to_f32(b->d);

		for (int j = 0; j < QK_K / 32; j++, y += 32) {
			const uint8_t *qs = b->qs + 16 * j;
			float dl = d * (float)(tm_dq_iq4_xs_scale(b, j) - 32);

			for (int l = 0; l < 16; l++) {
				y[l] = dl * tm_iq4nl_values[qs[l] & 15];
				y[l + 16] = dl * tm_iq4nl_values[qs[l] >> 4];
			}
		}
	}
}

void tm_dequant_row(int type, const void *src, float *dst, int64_t n)
{
	const uint16_t *h = src;
	const struct tm_dtype_traits *t = tm_dtype_traits(type);
	int64_t nb = t ? n / t->block_elems : 0;

	switch (type) {
	case TM_F32:
		memcpy(dst, src, (size_t)n * sizeof(float));
		break;
	case TM_F16:
		for (int64_t i = 0; i < n; i++)
			dst[i] = tm_f16_to_f32(h[i]);
		break;
	case TM_BF16:
		for (int64_t i = 0; i < n; i++)
			dst[i] = tm_bf16_to_f32(h[i]);
		break;
	case TM_Q4_0: dequant_q4_0(src, dst, nb); break;
	case TM_Q8_0: dequant_q8_0(src, dst, nb); break;
	case TM_Q4_1: case TM_Q5_0: case TM_Q5_1: dequant_legacy(type, src, dst, nb); break;
	case TM_Q2_K: dequant_q2_K(src, dst, nb); break;
	case TM_Q3_K: dequant_q3_K(src, dst, nb); break;
	case TM_Q4_K: dequant_q45_K(src, sizeof(blk_q4_K), 0, dst, nb); break;
	case TM_Q5_K: dequant_q45_K(src, sizeof(blk_q5_K), 1, dst, nb); break;
	case TM_Q6_K: dequant_q6_K(src, dst, nb); break;
	case TM_IQ4_XS: dequant_iq4_xs(src, dst, nb); break;
	default:
		for (int64_t i = 0; i < n; i++)
			dst[i] = NAN;	/* callers check types up front; never silently zero */
		break;
	}
}
