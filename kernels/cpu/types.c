// SPDX-License-Identifier: MIT
#include <string.h>

#include "kernels/kernels.h"

static const struct tm_dtype_traits traits[TM_DTYPE_MAX] = {
	[TM_F32]  = { "f32",  1,   4 },
	[TM_F16]  = { "f16",  1,   2 },
	[TM_BF16] = { "bf16", 1,   2 },
	[TM_Q4_0] = { "q4_0", 32,  18 },	/* f16 d, 16 bytes of nibbles */
	[TM_Q4_1] = { "q4_1", 32,  20 },	/* f16 d, m, 16 bytes of nibbles */
	[TM_Q5_0] = { "q5_0", 32,  22 },	/* f16 d, 4 bytes of high bits, 16 of nibbles */
	[TM_Q5_1] = { "q5_1", 32,  24 },	/* f16 d, m, then as q5_0 */
	[TM_Q8_0] = { "q8_0", 32,  34 },	/* f16 d, 32 int8 */
	[TM_Q8_1] = { "q8_1", 32,  36 },	/* f16 d, f16 d * sum(qs), 32 int8 */
	[TM_Q2_K] = { "q2_K", 256, 84 },	/* 16 scale/min nibble pairs, 64 bytes of 2-bit codes, f16 d, dmin */
	[TM_Q3_K] = { "q3_K", 256, 110 },	/* 32 high-bit bytes, 64 of 2-bit codes, 12 scale bytes, f16 d */
	[TM_Q4_K] = { "q4_K", 256, 144 },	/* f16 d, dmin, 12 scale bytes, 128 nibble bytes */
	[TM_Q5_K] = { "q5_K", 256, 176 },	/* as q4_K plus 32 bytes of high bits */
	[TM_Q6_K] = { "q6_K", 256, 210 },	/* 128 low, 64 high, 16 int8 scales, f16 d */
	[TM_Q8_K] = { "q8_K", 256, 292 },	/* f32 d, 256 int8, 16 int16 block sums */
	[TM_IQ4_XS] = { "iq4_xs", 256, 136 },	/* f16 d, 6-bit scales in 2 + 4 bytes, 128 nibble bytes */
	/* the same bytes per block as their GGML types, in groups of 16 rows (repack.h) */
	[TM_Q4_K_R16] = { "q4_K_r16", 256, 144 },
	[TM_Q6_K_R16] = { "q6_K_r16", 256, 210 },
	[TM_Q8_0_R16] = { "q8_0_r16", 32, 34 },
};

const struct tm_dtype_traits *tm_dtype_traits(int type)
{
	if (type < 0 || type >= TM_DTYPE_MAX || !traits[type].name)
		return NULL;
	return &traits[type];
}

int tm_dtype_by_name(const char *name)
{
	for (int t = 0; t < TM_DTYPE_MAX; t++)
		if (traits[t].name && !tm_dtype_act_only(t) && !strcmp(traits[t].name, name))
			return t;
	return -1;
}

size_t tm_row_bytes(int type, int64_t n)
{
	const struct tm_dtype_traits *t = tm_dtype_traits(type);

	if (!t || n < 0 || n % t->block_elems)
		return 0;
	return (size_t)(n / t->block_elems) * t->block_bytes;
}

float tm_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	float f;

	if (exp == 0x1f) {
		bits = sign | 0x7f800000 | (man << 13);
	} else if (exp) {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man) {
		/* subnormal: scale by 2^-24 exactly */
		f = (float)man * 0x1p-24f;
		return sign ? -f : f;
	} else {
		bits = sign;
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

uint16_t tm_f32_to_f16(float f)
{
	uint32_t x, sign, mant;
	int exp;

	memcpy(&x, &f, sizeof(x));
	sign = (x >> 16) & 0x8000;
	exp = (int)((x >> 23) & 0xff) - 127 + 15;
	mant = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff)		/* inf, nan */
		return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
	if (exp >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		if (exp < -10)
			return (uint16_t)sign;
		mant |= 0x800000;
		uint32_t shift = (uint32_t)(14 - exp);
		uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1);
		uint32_t mid = 1u << (shift - 1);

		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
	uint32_t rem = mant & 0x1fff;

	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;	/* may carry into the exponent: that is the right rounding */
	return (uint16_t)h;
}
