// SPDX-License-Identifier: MIT
/*
 * Repacking into the interleaved-row layouts and back (repack.h has the
 * layouts), and their scalar kernels: the reference the SIMD ones are tested
 * against, which compute each row's block sums exactly as the GGML type's
 * scalar kernel does, so the two agree bit for bit.
 */
#include <errno.h>
#include <stdlib.h>

#include "repack.h"

int tm_repack_type(int type)
{
	switch (type) {
	case TM_Q4_K: return TM_Q4_K_R16;
	case TM_Q6_K: return TM_Q6_K_R16;
	case TM_Q8_0: return TM_Q8_0_R16;
	default: return -1;
	}
}

/*
 * The AVX2 table's GGUF kernels decoded faster on a Zen 3 host (79-87 % of
 * the read ceiling against 67-76 %), its r16 ones on a Zen 1 host (68.0-68.8 %
 * against 57.8-58.0 %, dense Q4_K_M at 64 positions, alternating twice; in
 * L3, q4_K_r16 9.6 GB/s a thread against 7.3). Other AVX2 CPUs are unmeasured
 * and keep the GGUF layout.
 */
int tm_kernels_repack_default(void)
{
	const struct tm_kern *k = tm_kern();

	return k->repack || (k == &tm_kern_avx2 && tm_cpu_avx2_split());
}

int tm_repack_base(int type)
{
	switch (type) {
	case TM_Q4_K_R16: return TM_Q4_K;
	case TM_Q6_K_R16: return TM_Q6_K;
	case TM_Q8_0_R16: return TM_Q8_0;
	default: return type;
	}
}

/*
 * Four bytes at a time in a word (a load took 8-10 instructions a byte: a
 * 4 GB model repacked at 0.3 GB/s). Every operation stays within its byte
 * (shifts by at most 4 right before a nibble mask, left only of masked
 * bits), so the byte order of the word does not matter.
 */
static uint32_t get4(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void put4(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* the nibble at bit sh (0 or 4) of each of the 4 bytes at p */
static uint32_t nibbles4(const uint8_t *p, int sh)
{
	return (get4(p) >> sh) & 0x0f0f0f0fu;
}

static void q4_K_pack(const blk_q4_K *const rows[R16], blk_q4_K_r16 *g)
{
	for (int l = 0; l < R16; l++) {
		const blk_q4_K *a = rows[l];
		uint32_t u[4];
		uint8_t sm[16];

		tm_kq_scales(a->scales, u);
		memcpy(sm, u, 16);
		g->d[l] = a->d;
		g->dmin[l] = a->dmin;
		for (int j = 0; j < 8; j++)
			g->sc[j][l] = (uint8_t)(sm[j] | (sm[8 + j] & 3) << 6);
		for (int p = 0; p < 4; p++)
			g->mh[p][l] = (uint8_t)((sm[8 + 2 * p] >> 2) | (sm[9 + 2 * p] >> 2) << 4);
		/* octet 8c + k: bytes 8 (k & 3) .. + 7 of chunk c's 32, low nibbles for k < 4 */
		for (int c = 0; c < 4; c++)
			for (int k = 0; k < 8; k++) {
				const uint8_t *q = a->qs + 32 * c + 8 * (k & 3);

				put4(g->qs[8 * c + k][l], nibbles4(q, k < 4 ? 0 : 4) | nibbles4(q + 4, k < 4 ? 0 : 4) << 4);
			}
	}
}

/* GGML's 12-byte packing of 8 scales and 8 mins (what tm_kq_scales undoes). */
static void kq_scales_pack(const uint8_t sc[8], const uint8_t mn[8], uint8_t out[12])
{
	for (int j = 0; j < 4; j++) {
		out[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
		out[j + 4] = (uint8_t)((mn[j] & 63) | (mn[j + 4] >> 4) << 6);
		out[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
	}
}

static void q4_K_unpack(const blk_q4_K_r16 *g, blk_q4_K *const rows[R16])
{
	for (int l = 0; l < R16; l++) {
		blk_q4_K *a = rows[l];
		uint8_t sc[8], mn[8];

		a->d = g->d[l];
		a->dmin = g->dmin[l];
		for (int j = 0; j < 8; j++) {
			sc[j] = g->sc[j][l] & 63;
			mn[j] = (uint8_t)((g->sc[j][l] >> 6) | ((g->mh[j / 2][l] >> (4 * (j & 1))) & 15) << 2);
		}
		kq_scales_pack(sc, mn, a->scales);
		/* the inverse of q4_K_pack: chunk c's bytes 8k .. 8k + 7 from octets 8c + k and 8c + k + 4 */
		for (int c = 0; c < 4; c++)
			for (int k = 0; k < 4; k++) {
				uint32_t lo = get4(g->qs[8 * c + k][l]), hi = get4(g->qs[8 * c + k + 4][l]);
				uint8_t *q = a->qs + 32 * c + 8 * k;

				put4(q, (lo & 0x0f0f0f0fu) | (hi & 0x0f0f0f0fu) << 4);
				put4(q + 4, ((lo >> 4) & 0x0f0f0f0fu) | (hi & 0xf0f0f0f0u));
			}
	}
}

/* Element of octet o, byte b, nibble n (0 low, 1 high) -> its place in the qh bytes. */
static int q6_qh_shift(int o, int n)
{
	return 4 * (o & 1) + 2 * n;
}

static void q6_K_pack(const blk_q6_K *const rows[R16], blk_q6_K_r16 *g)
{
	memset(g->qh, 0, sizeof(g->qh));
	for (int l = 0; l < R16; l++) {
		const blk_q6_K *a = rows[l];

		g->d[l] = a->d;
		for (int s = 0; s < 16; s++)
			g->sc[s][l] = a->scales[s];
		for (int o = 0; o < 32; o++) {
			/* elements 8o + b and 8o + 4 + b: one half, quarter and run of 8 of q6_K's layout */
			int h = o / 16, quarter = (o % 16) / 4, l0 = 8 * (o % 4), sh = quarter >= 2 ? 4 : 0;
			const uint8_t *ql = a->ql + 64 * h + 32 * (quarter & 1) + l0, *qh = a->qh + 32 * h + l0;

			uint32_t hi0 = (get4(qh) >> (2 * quarter)) & 0x03030303u;
			uint32_t hi1 = (get4(qh + 4) >> (2 * quarter)) & 0x03030303u;

			put4(g->ql[o][l], nibbles4(ql, sh) | nibbles4(ql + 4, sh) << 4);
			put4(g->qh[o / 2][l], get4(g->qh[o / 2][l]) | hi0 << q6_qh_shift(o, 0) | hi1 << q6_qh_shift(o, 1));
		}
	}
}

static void q6_K_unpack(const blk_q6_K_r16 *g, blk_q6_K *const rows[R16])
{
	for (int l = 0; l < R16; l++) {
		blk_q6_K *a = rows[l];

		a->d = g->d[l];
		for (int s = 0; s < 16; s++)
			a->scales[s] = g->sc[s][l];
		/* the inverse of q6_K_pack: octet 16h + 4 quarter + m holds q6_K's bytes 8m .. 8m + 7 of a run */
		for (int h = 0; h < 2; h++)
			for (int m = 0; m < 4; m++) {
				uint32_t w0 = 0, w1 = 0;

				for (int r = 0; r < 2; r++) {
					uint32_t lo = get4(g->ql[16 * h + 4 * r + m][l]);
					uint32_t hi = get4(g->ql[16 * h + 4 * (r + 2) + m][l]);
					uint8_t *q = a->ql + 64 * h + 32 * r + 8 * m;

					put4(q, (lo & 0x0f0f0f0fu) | (hi & 0x0f0f0f0fu) << 4);
					put4(q + 4, ((lo >> 4) & 0x0f0f0f0fu) | (hi & 0xf0f0f0f0u));
				}
				for (int quarter = 0; quarter < 4; quarter++) {
					int o = 16 * h + 4 * quarter + m;
					uint32_t hv = get4(g->qh[o / 2][l]);

					w0 |= ((hv >> q6_qh_shift(o, 0)) & 0x03030303u) << (2 * quarter);
					w1 |= ((hv >> q6_qh_shift(o, 1)) & 0x03030303u) << (2 * quarter);
				}
				put4(a->qh + 32 * h + 8 * m, w0);
				put4(a->qh + 32 * h + 8 * m + 4, w1);
			}
	}
}

static void q8_0_pack(const blk_q8_0 *const rows[R16], blk_q8_0_r16 *g)
{
	for (int l = 0; l < R16; l++) {
		g->d[l] = rows[l]->d;
		for (int k = 0; k < 8; k++)
			put4(g->qs[k][l], get4((const uint8_t *)rows[l]->qs + 4 * k) ^ 0x80808080u);
	}
}

static void q8_0_unpack(const blk_q8_0_r16 *g, blk_q8_0 *const rows[R16])
{
	for (int l = 0; l < R16; l++) {
		rows[l]->d = g->d[l];
		for (int k = 0; k < 8; k++)
			put4((uint8_t *)rows[l]->qs + 4 * k, get4(g->qs[k][l]) ^ 0x80808080u);
	}
}

/* Each whole group of 16 rows: copied out, then rewritten in place in the other layout. */
static int convert(int base, int to_r16, void *data, int rows, int cols)
{
	const struct tm_dtype_traits *t = tm_dtype_traits(base);
	size_t bs, rb;
	int nb;
	char *tmp;

	if (tm_repack_type(base) < 0 || rows < 0 || cols <= 0 || cols % t->block_elems)
		return -EINVAL;
	nb = cols / t->block_elems;
	bs = (size_t)t->block_bytes;
	rb = bs * nb;
	if (rows < R16)
		return 0;
	if (!(tmp = malloc(R16 * rb)))
		return -ENOMEM;
	for (int r0 = 0; r0 + R16 <= rows; r0 += R16) {
		char *grp = (char *)data + (size_t)r0 * rb;

		memcpy(tmp, grp, R16 * rb);
		for (int i = 0; i < nb; i++) {
			/* to_r16: rows[] in tmp, group block in place; back: the reverse */
			char *gb = (to_r16 ? grp : tmp) + i * R16 * bs;
			void *rp[R16];

			for (int l = 0; l < R16; l++)
				rp[l] = (to_r16 ? tmp : grp) + l * rb + i * bs;
			if (base == TM_Q8_0 && to_r16)
				q8_0_pack((const blk_q8_0 *const *)rp, (blk_q8_0_r16 *)gb);
			else if (base == TM_Q8_0)
				q8_0_unpack((const blk_q8_0_r16 *)gb, (blk_q8_0 *const *)rp);
			else if (base == TM_Q4_K && to_r16)
				q4_K_pack((const blk_q4_K *const *)rp, (blk_q4_K_r16 *)gb);
			else if (base == TM_Q4_K)
				q4_K_unpack((const blk_q4_K_r16 *)gb, (blk_q4_K *const *)rp);
			else if (to_r16)
				q6_K_pack((const blk_q6_K *const *)rp, (blk_q6_K_r16 *)gb);
			else
				q6_K_unpack((const blk_q6_K_r16 *)gb, (blk_q6_K *const *)rp);
		}
	}
	free(tmp);
	return 0;
}

int tm_repack(int type, void *rows_data, int rows, int cols)
{
	return convert(type, 1, rows_data, rows, cols);
}

int tm_unrepack(int rtype, void *rows_data, int rows, int cols)
{
	int base = tm_repack_base(rtype);

	return base == rtype ? -EINVAL : convert(base, 0, rows_data, rows, cols);
}

/* Row l of a q4_K_r16 group against one q8_K activation: row_q45_K's arithmetic. */
static float row_q4_K_r16(const blk_q4_K_r16 *g, int l, int nb, const blk_q8_K *b)
{
	float s = 0.f;

	for (int i = 0; i < nb; i++, g++, b++) {
		int isum = 0, msum = 0;

		for (int j = 0; j < 8; j++) {
			int sc = g->sc[j][l] & 63, sub = 0;
			int mn = (g->sc[j][l] >> 6) | ((g->mh[j / 2][l] >> (4 * (j & 1))) & 15) << 2;

			for (int o = 4 * j; o < 4 * j + 4; o++)
				for (int k = 0; k < 4; k++) {
					uint8_t v = g->qs[o][l][k];

					sub += (v & 15) * b->qs[8 * o + k] + (v >> 4) * b->qs[8 * o + 4 + k];
				}
			isum += sc * sub;
			msum += mn * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
		}
		s += (tm_f16_to_f32(g->d[l]) * b->d) * (float)isum -
		     (tm_f16_to_f32(g->dmin[l]) * b->d) * (float)msum;
	}
	return s;
}

static float row_q6_K_r16(const blk_q6_K_r16 *g, int l, int nb, const blk_q8_K *b)
{
	float s = 0.f;

	for (int i = 0; i < nb; i++, g++, b++) {
		int isum = 0;

		for (int sb = 0; sb < 16; sb++) {
			int sub = 0;

			for (int o = 2 * sb; o < 2 * sb + 2; o++)
				for (int k = 0; k < 4; k++) {
					uint8_t v = g->ql[o][l][k], h = g->qh[sb][l][k];
					int lo = (v & 15) | ((h >> q6_qh_shift(o, 0)) & 3) << 4;
					int hi = (v >> 4) | ((h >> q6_qh_shift(o, 1)) & 3) << 4;

					sub += (lo - 32) * b->qs[8 * o + k] + (hi - 32) * b->qs[8 * o + 4 + k];
				}
			isum += g->sc[sb][l] * sub;
		}
		s += (tm_f16_to_f32(g->d[l]) * b->d) * (float)isum;
	}
	return s;
}

/* Row l of a q8_0_r16 group: row_q8_0's arithmetic, (d * dx) * sum added block by block. */
static float row_q8_0_r16(const blk_q8_0_r16 *g, int l, int nb, const blk_q8_0 *b)
{
	float s = 0.f;

	for (int i = 0; i < nb; i++, g++, b++) {
		int sum = 0;

		for (int k = 0; k < 8; k++)
			for (int e = 0; e < 4; e++)
				sum += (int8_t)(g->qs[k][l][e] ^ 0x80) * b->qs[4 * k + e];
		s += (tm_f16_to_f32(g->d[l]) * tm_f16_to_f32(b->d)) * (float)sum;
	}
	return s;
}

#define R16_REF(T, ACT)									\
void tm_dot_##T##_r16_ref(const void *w, size_t wstride, int nrows, int nblocks,	\
			  const void *x, size_t xstride, int nx, float *y, size_t ystride) \
{											\
	int full = nrows / R16 * R16;							\
											\
	for (int r0 = 0; r0 < full; r0 += R16) {					\
		const blk_##T##_r16 *g = (const void *)((const char *)w + (size_t)r0 * wstride); \
											\
		for (int t = 0; t < nx; t++)						\
			for (int l = 0; l < R16; l++)					\
				y[t * ystride + r0 + l] = row_##T##_r16(g, l, nblocks,	\
					(const ACT *)((const char *)x + t * xstride)); \
	}										\
	tm_r16_tail(TM_##T, full, w, wstride, nrows, nblocks, x, xstride, nx, y, ystride); \
}
#define TM_q4_K TM_Q4_K
#define TM_q6_K TM_Q6_K
#define TM_q8_0 TM_Q8_0
R16_REF(q4_K, blk_q8_K)
R16_REF(q6_K, blk_q8_K)
R16_REF(q8_0, blk_q8_0)
