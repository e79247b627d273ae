// SPDX-License-Identifier: MIT
/*
 * Random weights for tests, benchmarks and synthetic models: random bytes in
 * the quantized fields, with every scale a finite half chosen so the decoded
 * values stay within about +-scale whatever the random codes are.
 */
#include "kern.h"

static uint64_t next(uint64_t *s)
{
	/* splitmix64: fast, and any seed (0 included) is fine */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static float uni(uint64_t *s, float lo, float hi)
{
	return lo + (hi - lo) * (float)(next(s) >> 40) * 0x1p-24f;
}

static void fill_bytes(uint8_t *p, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = next(s);

		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

/* A half in [0.5, 1.5) * unit: the spread keeps blocks distinguishable. */
static uint16_t half_scale(uint64_t *s, float unit)
{
	return tm_f32_to_f16(uni(s, 0.5f, 1.5f) * unit);
}

int tm_fill_random(int type, void *dst, int64_t n, uint64_t *seed, float scale)
{
	const struct tm_dtype_traits *t = tm_dtype_traits(type);
	size_t bytes;
	int64_t nb;

	if (!t || tm_dtype_act_only(type) || n < 0 || n % t->block_elems)
		return -1;
	nb = n / t->block_elems;
	bytes = (size_t)nb * t->block_bytes;
	switch (type) {
	case TM_F32:
		for (int64_t i = 0; i < n; i++)
			((float *)dst)[i] = uni(seed, -scale, scale);
		return 0;
	case TM_F16:
		for (int64_t i = 0; i < n; i++)
			((uint16_t *)dst)[i] = tm_f32_to_f16(uni(seed, -scale, scale));
		return 0;
	case TM_BF16:
		for (int64_t i = 0; i < n; i++) {
			float f = uni(seed, -scale, scale);
			uint32_t u;

			memcpy(&u, &f, 4);
			((uint16_t *)dst)[i] = (uint16_t)(u >> 16);
		}
		return 0;
	}
	fill_bytes(dst, bytes, seed);
	for (int64_t i = 0; i < nb; i++) {
		char *b = (char *)dst + i * t->block_bytes;

		switch (type) {
		case TM_Q4_0: ((blk_q4_0 *)b)->d = half_scale(seed, scale / 8); break;
		case TM_Q8_0: ((blk_q8_0 *)b)->d = half_scale(seed, scale / 128); break;
		case TM_Q4_1:
			((blk_q4_1 *)b)->d = half_scale(seed, scale / 30);
			((blk_q4_1 *)b)->m = half_scale(seed, -scale / 2);
			break;
		case TM_Q5_0: ((blk_q5_0 *)b)->d = half_scale(seed, scale / 16); break;
		case TM_Q5_1:
			((blk_q5_1 *)b)->d = half_scale(seed, scale / 62);
			((blk_q5_1 *)b)->m = half_scale(seed, -scale / 2);
			break;
		case TM_Q2_K:
			((blk_q2_K *)b)->d = half_scale(seed, scale / (15 * 3 * 2));
			((blk_q2_K *)b)->dmin = half_scale(seed, scale / (15 * 2));
			break;
		case TM_Q3_K: ((blk_q3_K *)b)->d = half_scale(seed, scale / (32 * 4)); break;
		case TM_Q4_K:
			((blk_q4_K *)b)->d = half_scale(seed, scale / (63 * 15));
			((blk_q4_K *)b)->dmin = half_scale(seed, scale / 63);
			break;
		case TM_Q5_K:
			((blk_q5_K *)b)->d = half_scale(seed, scale / (63 * 31));
			((blk_q5_K *)b)->dmin = half_scale(seed, scale / 63);
			break;
		case TM_Q6_K: ((blk_q6_K *)b)->d = half_scale(seed, scale / (128 * 32)); break;
		case TM_IQ4_XS: ((blk_iq4_xs *)b)->d = half_scale(seed, scale / (127 * 32)); break;
		}
	}
	return 0;
}
