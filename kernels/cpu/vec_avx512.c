// SPDX-License-Identifier: MIT
/* The float loops of a layer with 512-bit FMAs (kernels/cpu/vec.h). */
#include <immintrin.h>

#include "kern.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "vec.h"

float tm_dot_f32_avx512(const float *a, const float *b, int n)
{
	__m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
	int i = 0;
	float r;

	for (; i + 32 <= n; i += 32) {
		acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
		acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
	}
	for (; i + 16 <= n; i += 16)
		acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
	r = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
	for (; i < n; i++)
		r += a[i] * b[i];
	return r;
}

void tm_axpy_f32_avx512(float *y, float s, const float *x, int n)
{
	__m512 vs = _mm512_set1_ps(s);
	int i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_fmadd_ps(vs, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += s * x[i];
}

/*
 * e^x to about 1 ulp: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor
 * series to r^6 (the next term is below 1.2e-7 relative), times 2^n by
 * scalef, which also gives 0 and inf at the ends. NaN stays NaN: max/min
 * return their second operand when either is NaN.
 */
static inline __m512 exp512(__m512 x)
{
	const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
	__m512 n, r, p;

	x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
	x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
	n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
				 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, ln2_hi, x);
	r = _mm512_fnmadd_ps(n, ln2_lo, r);
	p = _mm512_set1_ps(1.0f / 720);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

static inline __mmask16 tail(int left)
{
	return left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
}

/* The sum in double, as ggml sums softmax's exps, in 16 lanes reduced once. */
static double exp_sum(float *x, int n, float max)
{
	__m512 m = _mm512_set1_ps(max);
	__m512d lo = _mm512_setzero_pd(), hi = lo;

	for (int i = 0; i < n; i += 16) {
		__mmask16 k = tail(n - i);
		__m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m));

		e = _mm512_maskz_mov_ps(k, e);
		_mm512_mask_storeu_ps(x + i, k, e);
		lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
		hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
	}
	return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

static void swiglu(float *out, const float *gate, const float *up, int n)
{
	const __m512 one = _mm512_set1_ps(1.0f);

	for (int i = 0; i < n; i += 16) {
		__mmask16 k = tail(n - i);
		__m512 g = _mm512_maskz_loadu_ps(k, gate + i), u = _mm512_maskz_loadu_ps(k, up + i);
		__m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));

		_mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
	}
}

/* In double, as ggml sums RMSNorm's squares; eight lanes instead of one chain. */
static double sumsq(const float *x, int n)
{
	__m512d acc = _mm512_setzero_pd();
	double r;
	int i = 0;

	for (; i + 8 <= n; i += 8) {
		__m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));

		acc = _mm512_fmadd_pd(v, v, acc);
	}
	r = _mm512_reduce_add_pd(acc);
	for (; i < n; i++)
		r += (double)(x[i] * x[i]);
	return r;
}

static void to_f16(const float *x, uint16_t *y, int n)
{
	int i = 0;

	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *)(y + i),
				    _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		y[i] = tm_f32_to_f16(x[i]);
}

static void scale_round_f16(float *x, int n, float scale)
{
	__m512 s = _mm512_set1_ps(scale);

	for (int i = 0; i < n; i += 16) {
		__mmask16 k = tail(n - i);
		__m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), s),
					    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);

		_mm512_mask_storeu_ps(x + i, k, _mm512_cvtph_ps(h));
	}
}

static void kv_rows(const void *src, size_t row_bytes, int type, int off, int len, int n, int ahead,
		     float *dst)
{
	const char *row = (const char *)src + tm_kv_row_bytes(type, off);
	size_t bytes = tm_kv_row_bytes(type, len), next = (size_t)TM_KV_AHEAD * row_bytes;
	int pfn = tm_kv_prefetch_rows(n, ahead);

	if (len % 32 || type == TM_F32) {
		tm_kv_rows_ref(src, row_bytes, type, off, len, n, ahead, dst);
		return;
	}
	for (int p = 0; p < n; p++, dst += len, row += row_bytes) {
		if (p < pfn)
			tm_kv_prefetch(row + next, bytes);
		if (type == TM_F16) {
			for (int i = 0; i < len; i += 16)
				_mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(
					(const __m256i *)((const uint16_t *)row + i))));
			continue;
		}
		for (int b = 0; b < len / 32; b++) {
			const blk_q8_0 *x = (const blk_q8_0 *)row + b;
			__m512 d = _mm512_set1_ps(tm_f16_to_f32(x->d));

			for (int i = 0; i < 32; i += 16) {
				__m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(x->qs + i)));

				_mm512_storeu_ps(dst + 32 * b + i, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q)));
			}
		}
	}
}

static float vmax(const float *x, int n)
{
	__m512 m = _mm512_set1_ps(x[0]);

	for (int i = 0; i < n; i += 16)
		m = _mm512_mask_max_ps(m, tail(n - i), m, _mm512_maskz_loadu_ps(tail(n - i), x + i));
	return _mm512_reduce_max_ps(m);
}

/* Four vectors to one whose 128-bit lane L holds [sum of a's lane L, b's, c's, d's]. */
static inline __m512 sum4_lanes(__m512 a, __m512 b, __m512 c, __m512 d)
{
	__m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
	__m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));

	return _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xee));
}

/* Sixteen vectors to the vector of their sums: ~3 instructions per sum, not ~8 as one reduction each. */
static inline __m512 sum16(const __m512 *a)
{
	__m512 v0 = sum4_lanes(a[0], a[1], a[2], a[3]), v1 = sum4_lanes(a[4], a[5], a[6], a[7]);
	__m512 v2 = sum4_lanes(a[8], a[9], a[10], a[11]), v3 = sum4_lanes(a[12], a[13], a[14], a[15]);
	__m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, 0x44), _mm512_shuffle_f32x4(v0, v1, 0xee));
	__m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(v2, v3, 0x44), _mm512_shuffle_f32x4(v2, v3, 0xee));

	return _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, 0x88), _mm512_shuffle_f32x4(x01, x23, 0xdd));
}

#define INLINE static inline __attribute__((always_inline))

/* Sixteen values of a cache row of type from element i on, as floats (kv_rows' arithmetic). */
INLINE __m512 row16(const char *row, int i, int type)
{
	if (type == TM_F16)
		return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * (size_t)i)));
	if (type == TM_Q8_0) {
		const blk_q8_0 *b = (const blk_q8_0 *)row + i / 32;
		__m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + i % 32)));

		return _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b->d)), _mm512_cvtepi32_ps(q));
	}
	return _mm512_loadu_ps((const float *)row + i);
}

/*
 * HB heads x 16 / HB positions per pass: 16 dot products side by side
 * (accumulator h * PB + p: head h's lanes of dims d, d + 16, ...), summed
 * together by sum16, whose tree is the same for every accumulator, so a
 * score's bits do not depend on its place. Each row value is loaded (and
 * converted) once for the HB heads. A partial group repeats its last head,
 * past n the last row is read again; the copies are dropped.
 */
INLINE void scores_hb(const float *q, int G, int hd, const char *k, size_t kr, int type, int n, int ahead,
		      float scale, float *s, size_t ss, const int HB)
{
	const int PB = 16 / HB;
	const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	__m512 vs = _mm512_set1_ps(scale);
	size_t pf_bytes = tm_kv_row_bytes(type, hd);
	int pfn = tm_kv_prefetch_rows(n, ahead);

	for (int h0 = 0; h0 < G; h0 += HB) {
		int hn = G - h0 < HB ? G - h0 : HB;
		const float *qh[4];

		for (int h = 0; h < HB; h++)
			qh[h] = q + (size_t)(h0 + (h < hn ? h : hn - 1)) * hd;
		for (int p0 = 0; p0 < n; p0 += PB) {
			const char *rows[16];
			__m512 acc[16];

#pragma GCC unroll 16
			for (int p = 0; p < PB; p++) {
				rows[p] = k + (size_t)(p0 + p < n ? p0 + p : n - 1) * kr;
				if (h0 == 0 && p0 + p < pfn)
					tm_kv_prefetch(rows[p] + (size_t)TM_KV_AHEAD * kr, pf_bytes);
			}
#pragma GCC unroll 16
			for (int i = 0; i < 16; i++)
				acc[i] = _mm512_setzero_ps();
			for (int d = 0; d < hd; d += 16) {
				__m512 kv[16];

#pragma GCC unroll 16
				for (int p = 0; p < PB; p++)
					kv[p] = row16(rows[p], d, type);
#pragma GCC unroll 4
				for (int h = 0; h < HB; h++) {
					__m512 x = _mm512_loadu_ps(qh[h] + d);

#pragma GCC unroll 16
					for (int p = 0; p < PB; p++)
						acc[h * PB + p] = _mm512_fmadd_ps(x, kv[p], acc[h * PB + p]);
				}
			}
			__m512 r = _mm512_mul_ps(sum16(acc), vs);
			__mmask16 m = tail(n - p0 < PB ? n - p0 : PB);

			for (int h = 0; h < hn; h++)
				_mm512_mask_storeu_ps(s + (size_t)(h0 + h) * ss + p0, m,
						      h ? _mm512_permutexvar_ps(_mm512_add_epi32(iota,
							  _mm512_set1_epi32(h * PB)), r) : r);
		}
	}
}

/* Four heads a pass where groups of four fit, else two or one: few repeated heads, few repeated rows. */
static void attn_scores_rows(const float *q, int G, int hd, const void *k, size_t k_row_bytes, int type, int n,
			     int ahead, float scale, float *s, size_t s_stride)
{
	/* one instance per type and group: the type's test leaves the loops */
#define SCORES(T, HB) scores_hb(q, G, hd, k, k_row_bytes, T, n, ahead, scale, s, s_stride, HB)
#define SCORES_T(T) (G % 4 == 0 || G == 3 || G > 4 ? SCORES(T, 4) : G == 2 ? SCORES(T, 2) : SCORES(T, 1))
	if (type == TM_F16)
		SCORES_T(TM_F16);
	else if (type == TM_Q8_0)
		SCORES_T(TM_Q8_0);
	else
		SCORES_T(TM_F32);
#undef SCORES_T
#undef SCORES
}

static void attn_scores(const float *q, int G, int hd, const float *k, size_t k_stride, int n, float scale,
			float *s, size_t s_stride)
{
	attn_scores_rows(q, G, hd, k, k_stride * sizeof(float), TM_F32, n, 0, scale, s, s_stride);
}

/* Row p's 64 values from d on times the 4 heads' weights at p, into a[h * 4 + c] (dims d + 16c). */
INLINE void mix_row(__m512 *a, const char *row, int d, int type, const float *const *w, int p)
{
	__m512 x[4];

#pragma GCC unroll 4
	for (int c = 0; c < 4; c++)
		x[c] = row16(row, d + 16 * c, type);
#pragma GCC unroll 4
	for (int h = 0; h < 4; h++) {
		__m512 s = _mm512_set1_ps(w[h][p]);

#pragma GCC unroll 4
		for (int c = 0; c < 4; c++)
			a[h * 4 + c] = _mm512_fmadd_ps(s, x[c], a[h * 4 + c]);
	}
}

/*
 * Rows [0, n) into 64 output dims of 4 heads from d on: 16 registers that
 * stay put while the rows go by; rows p < pfn prefetch kv_rows' way, in a
 * loop of their own (a test in the one loop made the compiler spill an
 * accumulator). Instanced per type below, each a function of its own:
 * inlined into mix's loops, GCC 12 kept a quarter of the accumulators on
 * the stack and the mix ran at 9-10 ns per position of 4 heads of 128 in
 * L2 instead of 5.
 */
INLINE void mix64(float *const *op, const float *const *wh, int d, const char *v, size_t vr, int type, int n,
		  int pfn, size_t pf_bytes)
{
	__m512 a[16];
	int p = 0;

#pragma GCC unroll 16
	for (int i = 0; i < 16; i++)
		a[i] = _mm512_loadu_ps(op[i / 4] + d + 16 * (i % 4));
	for (; p < pfn; p++) {
		tm_kv_prefetch(v + (size_t)(p + TM_KV_AHEAD) * vr, pf_bytes);
		mix_row(a, v + (size_t)p * vr, d, type, wh, p);
	}
	for (; p < n; p++)
		mix_row(a, v + (size_t)p * vr, d, type, wh, p);
	/* a copy of the last head holds the same sums as it: any order */
#pragma GCC unroll 16
	for (int i = 15; i >= 0; i--)
		_mm512_storeu_ps(op[i / 4] + d + 16 * (i % 4), a[i]);
}

typedef void (*mix64_fn)(float *const *op, const float *const *wh, int d, const char *v, size_t vr, int n, int pfn,
			 size_t pf_bytes);
#define MIX64(name, T)                                                                                          \
	static __attribute__((noinline)) void name(float *const *op, const float *const *wh, int d, const char *v, \
						   size_t vr, int n, int pfn, size_t pf_bytes)                   \
	{                                                                                                       \
		mix64(op, wh, d, v, vr, T, n, pfn, pf_bytes);                                                   \
	}
MIX64(mix64_f16, TM_F16)
MIX64(mix64_q8_0, TM_Q8_0)
MIX64(mix64_f32, TM_F32)

/*
 * 64 output dims of 4 heads at a time (mix64); a group of fewer than 4
 * heads repeats its last head and drops the copies, dims past the last
 * multiple of 64 go 16 at a time.
 */
INLINE void mix(float *o, int G, int vd, const float *w, size_t w_stride, const char *v, size_t vr, int type, int n,
		int ahead)
{
	size_t pf_bytes = tm_kv_row_bytes(type, vd);
	mix64_fn m64 = type == TM_F16 ? mix64_f16 : type == TM_Q8_0 ? mix64_q8_0 : mix64_f32;

	for (int h0 = 0; h0 < G; h0 += 4) {
		int hn = G - h0 < 4 ? G - h0 : 4, d = 0, pfn = h0 == 0 ? tm_kv_prefetch_rows(n, ahead) : 0;
		const float *wh[4];
		float *op[4];

		for (int h = 0; h < 4; h++) {
			wh[h] = w + (size_t)(h0 + (h < hn ? h : hn - 1)) * w_stride;
			op[h] = o + (size_t)(h0 + (h < hn ? h : hn - 1)) * vd;
		}
		for (; d + 64 <= vd; d += 64, pfn = 0)
			m64(op, wh, d, v, vr, n, pfn, pf_bytes);
		for (; d < vd; d += 16, pfn = 0) {
			__m512 a0 = _mm512_loadu_ps(op[0] + d), a1 = _mm512_loadu_ps(op[1] + d);
			__m512 a2 = _mm512_loadu_ps(op[2] + d), a3 = _mm512_loadu_ps(op[3] + d);

			for (int p = 0; p < n; p++) {
				const char *row = v + (size_t)p * vr;

				if (p < pfn)
					tm_kv_prefetch(row + (size_t)TM_KV_AHEAD * vr, pf_bytes);
				__m512 x = row16(row, d, type);

				a0 = _mm512_fmadd_ps(_mm512_set1_ps(wh[0][p]), x, a0);
				a1 = _mm512_fmadd_ps(_mm512_set1_ps(wh[1][p]), x, a1);
				a2 = _mm512_fmadd_ps(_mm512_set1_ps(wh[2][p]), x, a2);
				a3 = _mm512_fmadd_ps(_mm512_set1_ps(wh[3][p]), x, a3);
			}
			_mm512_storeu_ps(op[3] + d, a3);
			_mm512_storeu_ps(op[2] + d, a2);
			_mm512_storeu_ps(op[1] + d, a1);
			_mm512_storeu_ps(op[0] + d, a0);
		}
	}
}

static void attn_mix_rows(float *o, int G, int vd, const float *w, size_t w_stride, const void *v,
			  size_t v_row_bytes, int type, int n, int ahead)
{
	if (type == TM_F16)
		mix(o, G, vd, w, w_stride, v, v_row_bytes, TM_F16, n, ahead);
	else if (type == TM_Q8_0)
		mix(o, G, vd, w, w_stride, v, v_row_bytes, TM_Q8_0, n, ahead);
	else
		mix(o, G, vd, w, w_stride, v, v_row_bytes, TM_F32, n, ahead);
}

static void attn_mix(float *o, int G, int vd, const float *w, size_t w_stride, const float *v, size_t v_stride,
		     int n)
{
	attn_mix_rows(o, G, vd, w, w_stride, v, v_stride * sizeof(float), TM_F32, n, 0);
}

const struct tm_vec tm_vec_avx512 = {
	.dot = tm_dot_f32_avx512,
	.axpy = tm_axpy_f32_avx512,
	.vec_hd = 16,
	.attn_scores = attn_scores,
	.attn_mix = attn_mix,
	.kv_rows = kv_rows,
	.attn_scores_rows = attn_scores_rows,
	.attn_mix_rows = attn_mix_rows,
	.max = vmax,
	.exp_sum = exp_sum,
	.swiglu = swiglu,
	.sumsq = sumsq,
	.to_f16 = to_f16,
	.scale_round_f16 = scale_round_f16,
};
