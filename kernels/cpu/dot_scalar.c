// SPDX-License-Identifier: MIT
/*
 * The scalar reference kernels: portable, plain, and what the SIMD kernels
 * are tested against. One row against one activation at a time.
 */
#include "repack.h"

typedef float (*row_fn)(const void *w, int nb, const void *x);

static float row_f32(const void *w, int n, const void *x)
{
	const float *a = w, *b = x;
	float s = 0.f;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static float row_f16(const void *w, int n, const void *x)
{
	const uint16_t *a = w;
	const float *b = x;
	float s = 0.f;

	for (int i = 0; i < n; i++)
		s += tm_f16_to_f32(a[i]) * b[i];
	return s;
}

static float row_bf16(const void *w, int n, const void *x)
{
	const uint16_t *a = w;
	const float *b = x;
	float s = 0.f;

	for (int i = 0; i < n; i++)
		s += tm_bf16_to_f32(a[i]) * b[i];
	return s;
}

static float row_q4_0(const void *w, int nb, const void *x)
{
	const blk_q4_0 *a = w;
	const blk_q8_0 *b = x;
	float s = 0.f;

	for (int i = 0; i < nb; i++) {
		int sum = 0;

		for (int l = 0; l < QK / 2; l++)
			sum += ((a[i].qs[l] & 15) - 8) * b[i].qs[l] +
			       ((a[i].qs[l] >> 4) - 8) * b[i].qs[l + QK / 2];
		s += (tm_f16_to_f32(a[i].d) * tm_f16_to_f32(b[i].d)) * (float)sum;
	}
	return s;
}

static float row_q8_0(const void *w, int nb, const void *x)
{
	const blk_q8_0 *a = w, *b = x;
	float s = 0.f;

	for (int i = 0; i < nb; i++) {
		int sum = 0;

		for (int l = 0; l < QK; l++)
			sum += a[i].qs[l] * b[i].qs[l];
		s += (tm_f16_to_f32(a[i].d) * tm_f16_to_f32(b[i].d)) * (float)sum;
	}
	return s;
}

/*
 * q4_1, q5_0, q5_1 as llama.cpp pairs them: q5_0 with q8_0 activations,
 * q4_1 and q5_1 with q8_1, whose s = d * sum(qs) (rounded to f16) carries
 * the min term m * sum(x).
 */
static float row_legacy(int type, const void *w, int nb, const void *x)
{
	size_t bsize = (size_t)tm_dtype_traits(type)->block_bytes;
	size_t xsize = (size_t)tm_dtype_traits(tm_act_type(type))->block_bytes;
	float s = 0.f;

	for (int i = 0; i < nb; i++) {
		const uint8_t *base = (const uint8_t *)w + i * bsize;
		const blk_q4_1 *b41 = (const void *)base;
		const blk_q5_0 *b50 = (const void *)base;
		const blk_q5_1 *b51 = (const void *)base;
		const blk_q8_0 *y0 = (const void *)((const uint8_t *)x + i * xsize);
		const blk_q8_1 *y1 = (const void *)y0;
		const uint8_t *qs = type == TM_Q4_1 ? b41->qs : type == TM_Q5_0 ? b50->qs : b51->qs;
		const int8_t *ys = type == TM_Q5_0 ? y0->qs : y1->qs;
		uint32_t qh = 0;
		int sum = 0, off = type == TM_Q5_0 ? 16 : 0;

		if (type != TM_Q4_1)
			memcpy(&qh, type == TM_Q5_0 ? b50->qh : b51->qh, 4);
		for (int l = 0; l < QK; l++) {
			int v = (l < QK / 2 ? qs[l] & 15 : qs[l - QK / 2] >> 4) | (int)((qh >> l) & 1) << 4;

			sum += (v - off) * ys[l];
		}
		s += (tm_f16_to_f32(b41->d) * tm_f16_to_f32(y0->d)) * (float)sum;
		if (type != TM_Q5_0)
			s += tm_f16_to_f32(b41->m) * tm_f16_to_f32(y1->s);
	}
	return s;
}

static float row_q4_1(const void *w, int nb, const void *x)
{
	return row_legacy(TM_Q4_1, w, nb, x);
}

static float row_q5_0(const void *w, int nb, const void *x)
{
	return row_legacy(TM_Q5_0, w, nb, x);
}

static float row_q5_1(const void *w, int nb, const void *x)
{
	return row_legacy(TM_Q5_1, w, nb, x);
}

/* iq4_xs: per sub-block of 32 an exact integer sum, times d * y.d * (ls - 32), as GGML's reference. */
static float row_iq4_xs(const void *w, int nb, const void *x)
{
	const blk_iq4_xs *a = w;
	const blk_q8_K *b = x;
	float s = 0.f;

	for (int i = 0; i < nb; i++, a++, b++) {
		float d = tm_f16_to_f32(a->d) * b->d;

		for (int j = 0; j < QK_K / 32; j++) {
			const uint8_t *qs = a->qs + 16 * j;
			const int8_t *y = b->qs + 32 * j;
			int sum = 0;

			for (int l = 0; l < 16; l++)
				sum += y[l] * tm_iq4nl_values[qs[l] & 15] + y[l + 16] * tm_iq4nl_values[qs[l] >> 4];
			s += d * (float)(tm_dq_iq4_xs_scale(a, j) - 32) * (float)sum;
		}
	}
	return s;
}

/*
 * q2_K and q3_K: per super-block an exact integer sum over the 16
 * sub-blocks of scale * dot(codes, activations); q2_K's mins come through
 * the activation's block sums, as q4_K's do.
 */
static float row_q2_K(const void *w, int nb, const void *x)
{
	const blk_q2_K *a = w;
	const blk_q8_K *b = x;
	float s = 0.f;

	for (int i = 0; i < nb; i++, a++, b++) {
		int isum = 0, msum = 0;

		for (int k = 0; k < 16; k++) {
			int sub = 0, h = k / 8, j = k % 8 / 2, l0 = 16 * (k & 1);

			for (int l = l0; l < l0 + 16; l++)
				sub += ((a->qs[32 * h + l] >> (2 * j)) & 3) * b->qs[16 * k + l - l0];
			isum += (a->scales[k] & 15) * sub;
			msum += (a->scales[k] >> 4) * b->bsums[k];
		}
		s += (tm_f16_to_f32(a->d) * b->d) * (float)isum - (tm_f16_to_f32(a->dmin) * b->d) * (float)msum;
	}
	return s;
}

static float row_q3_K(const void *w, int nb, const void *x)
{
	const blk_q3_K *a = w;
	const blk_q8_K *b = x;
	float s = 0.f;

	for (int i = 0; i < nb; i++, a++, b++) {
		int8_t sc[16];
		int isum = 0;

		tm_q3_K_scales(a->scales, sc);
		for (int k = 0; k < 16; k++) {
			int sub = 0, h = k / 8, j = k % 8 / 2, l0 = 16 * (k & 1);

			for (int l = l0; l < l0 + 16; l++) {
				int v = (a->qs[32 * h + l] >> (2 * j)) & 3;

				v -= (a->hmask[l] >> (4 * h + j)) & 1 ? 0 : 4;
				sub += v * b->qs[16 * k + l - l0];
			}
			isum += sc[k] * sub;
		}
		s += (tm_f16_to_f32(a->d) * b->d) * (float)isum;
	}
	return s;
}

/*
 * q4_K/q5_K: per super-block, sum_j sc[j] * dot(q_j, y_j) as an exact
 * integer, and the mins through the activation's block sums:
 * sum_j m[j] * (bsums[2j] + bsums[2j+1]).
 */
static float row_q45_K(const void *w, int nb, const void *x, size_t bsize, int five)
{
	const blk_q8_K *b = x;
	float s = 0.f;

	for (int i = 0; i < nb; i++, b++) {
		const uint8_t *base = (const uint8_t *)w + i * bsize;
		const blk_q4_K *b4 = (const void *)base;
		const blk_q5_K *b5 = (const void *)base;
		const uint8_t *qs = five ? b5->qs : b4->qs;
		uint32_t u[4];
		uint8_t sm[16];
		int isum = 0, msum = 0;

		tm_kq_scales(b4->scales, u);
		memcpy(sm, u, 16);
		for (int j = 0; j < 8; j++) {
			const uint8_t *q = qs + 32 * (j / 2);
			int shift = 4 * (j & 1), sub = 0;

			for (int l = 0; l < 32; l++) {
				int v = (q[l] >> shift) & 15;

				if (five)
					v |= ((b5->qh[l] >> j) & 1) << 4;
				sub += v * b->qs[32 * j + l];
			}
			isum += sm[j] * sub;
			msum += sm[8 + j] * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
		}
		s += (tm_f16_to_f32(b4->d) * b->d) * (float)isum -
		     (tm_f16_to_f32(b4->dmin) * b->d) * (float)msum;
	}
	return s;
}

static float row_q4_K(const void *w, int nb, const void *x)
{
	return row_q45_K(w, nb, x, sizeof(blk_q4_K), 0);
}

static float row_q5_K(const void *w, int nb, const void *x)
{
	return row_q45_K(w, nb, x, sizeof(blk_q5_K), 1);
}

static float row_q6_K(const void *w, int nb, const void *x)
{
	const blk_q6_K *a = w;
	const blk_q8_K *b = x;
	float s = 0.f;

	for (int i = 0; i < nb; i++, a++, b++) {
		int isum = 0;

		for (int h = 0; h < 2; h++) {
			const uint8_t *ql = a->ql + 64 * h, *qh = a->qh + 32 * h;

			for (int quarter = 0; quarter < 4; quarter++) {
				for (int half16 = 0; half16 < 2; half16++) {
					int sub = 0, k0 = 128 * h + 32 * quarter + 16 * half16;

					for (int l = 16 * half16; l < 16 * half16 + 16; l++) {
						int lo = (quarter & 1) ? ql[l + 32] : ql[l];

						lo = quarter >= 2 ? lo >> 4 : lo & 15;
						lo |= ((qh[l] >> (2 * quarter)) & 3) << 4;
						sub += (lo - 32) * b->qs[k0 + l - 16 * half16];
					}
					isum += a->scales[k0 / 16] * sub;
				}
			}
		}
		s += (tm_f16_to_f32(a->d) * b->d) * (float)isum;
	}
	return s;
}

static void dot_rows(row_fn fn, const void *w, size_t wstride, int nrows, int nblocks,
		     const void *x, size_t xstride, int nx, float *y, size_t ystride)
{
	for (int r = 0; r < nrows; r++)
		for (int t = 0; t < nx; t++)
			y[t * ystride + r] = fn((const char *)w + r * wstride, nblocks,
						(const char *)x + t * xstride);
}

#define SCALAR_DOT(T)								\
static void dot_##T(const void *w, size_t wstride, int nrows, int nblocks,	\
		    const void *x, size_t xstride, int nx, float *y, size_t ystride) \
{										\
	dot_rows(row_##T, w, wstride, nrows, nblocks, x, xstride, nx, y, ystride); \
}
SCALAR_DOT(f32)
SCALAR_DOT(f16)
SCALAR_DOT(bf16)
SCALAR_DOT(q4_0)
SCALAR_DOT(q8_0)
SCALAR_DOT(q4_1)
SCALAR_DOT(q5_0)
SCALAR_DOT(q5_1)
SCALAR_DOT(q2_K)
SCALAR_DOT(q3_K)
SCALAR_DOT(q4_K)
SCALAR_DOT(q5_K)
SCALAR_DOT(q6_K)
SCALAR_DOT(iq4_xs)

const struct tm_kern tm_kern_scalar = {
	.name = "scalar",
	.dot = {
		[TM_F32] = dot_f32, [TM_F16] = dot_f16, [TM_BF16] = dot_bf16,
		[TM_Q4_0] = dot_q4_0, [TM_Q8_0] = dot_q8_0,
		[TM_Q4_1] = dot_q4_1, [TM_Q5_0] = dot_q5_0, [TM_Q5_1] = dot_q5_1,
		[TM_Q2_K] = dot_q2_K, [TM_Q3_K] = dot_q3_K,
		[TM_Q4_K] = dot_q4_K, [TM_Q5_K] = dot_q5_K, [TM_Q6_K] = dot_q6_K,
		[TM_Q4_K_R16] = tm_dot_q4_K_r16_ref, [TM_Q6_K_R16] = tm_dot_q6_K_r16_ref,
		[TM_Q8_0_R16] = tm_dot_q8_0_r16_ref,
		[TM_IQ4_XS] = dot_iq4_xs,
	},
	.quant_q8_0 = tm_quant_q8_0_ref,
	.quant_q8_K = tm_quant_q8_K_ref,
};
