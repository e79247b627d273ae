/* SPDX-License-Identifier: MIT */
/*
 * What prefill's two whole-batch matmuls share: gemm_amx.c (AMX-INT8 tiles)
 * and gemm_vnni_avx512.c (AVX-512 VNNI, for CPUs without AMX). Both files
 * are built with AVX-512; only they include this.
 *
 * - The activations of the whole batch are quantized once, exactly as the
 *   matvec kernels quantize them (q8_0 for q8_0 weights, q8_K for the
 *   K-quants), and laid out per tile of 16 tokens: 4 consecutive bytes of
 *   each of the 16 tokens per 64-byte row (tdpbssd's B operand; for
 *   vpdpbusd one token per 32-bit lane, stored plus 128 since its vector
 *   operand is unsigned: g->bias).
 * - Each thread takes groups of GP panels of 16 weight rows from an atomic
 *   cursor, decodes them once into signed 8-bit codes per sub-block plus
 *   their scales, and runs them against every token tile (g->product), so a
 *   weight byte is read from memory once per batch.
 * - Per sub-block (32 elements; 16 for q6_K, whose scales change every 16)
 *   the product gives 16 x 16 exact integer dot products; the sub-block
 *   scales and the q4_K/q5_K mins are applied per block, the activation
 *   scale once per block, in float.
 */
#ifndef TIERMEM_KERNELS_GEMM_PANEL_H
#define TIERMEM_KERNELS_GEMM_PANEL_H

#include <immintrin.h>
#include <stdatomic.h>

#include "corr.h"
#include "kern.h"
#include "repack.h"

#define TT 16	/* tokens per tile */
#define RT 16	/* weight rows per panel */
/*
 * Panels a thread decodes at once and runs against each token tile in turn:
 * a tile's activations then come from L3 once per 4 panels, not once per
 * panel (one per panel capped a 4096 x 4096 x 512 q4_K matmul at 133
 * GMAC/s on one core with AMX; L2 holds 4 panels of a row of 4096 and the tile).
 */
#define GP 4

/* Elements per sub-block (one integer sum) and per weight block of each type. */
static inline int sub_elems(int type)
{
	return type == TM_Q6_K ? 16 : 32;
}

static inline int block_elems(int type)
{
	return type == TM_Q8_0 ? QK : QK_K;
}

/* The types the panel decoders take (the r16 layouts' groups are decoded straight into panels). */
static inline int gemm_type_ok(int type)
{
	type = tm_repack_base(type);
	return type == TM_Q8_0 || type == TM_Q4_K || type == TM_Q5_K || type == TM_Q6_K;
}

/*
 * The sizes of the pieces of the scratch, for K = cols. Per token tile:
 * codes [K/4][16 tokens][4], dx [act blocks][16] floats, and for q4_K/q5_K
 * bs [K/256][4 pairs][16] int32 (two sub-block sums of 32 as int16).
 * Per thread, GP panels: codes [sub-blocks][16 rows][sub_elems], sc
 * [sub-blocks][16] floats (d * scale; q8_0: d), with a bias corr
 * [sub-blocks][16] int32 (-128 * the sum of the codes, which takes the bias
 * off), dmin [blocks][16] floats and mp [blocks][4][16] int32 (pairs of
 * mins), and for an r16 group the integer scales [sub-blocks][16] and d
 * [blocks][16] floats as well (the r16 dot kernels' order: tile_kq_canon in
 * gemm_amx.c); then one token's quantized row.
 */
struct sizes {
	size_t tile_codes, tile_dx, tile_bs, tile;
	size_t p_codes, p_sc, p_corr, p_dmin, p_mp, p_isc, p_d, panel;
	size_t act_row;	/* one token's quantized blocks, after the thread's panels */
	size_t thread;	/* GP panels and act_row */
};

static inline size_t up64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

static inline struct sizes sizes_of(int type, int cols, int bias)
{
	int act = type == TM_Q8_0 ? TM_Q8_0 : TM_Q8_K, mins = type == TM_Q4_K || type == TM_Q5_K;
	size_t K = (size_t)cols, nb = K / block_elems(type), ns = K / sub_elems(type);
	size_t nab = K / tm_dtype_traits(act)->block_elems;
	struct sizes s;

	s.tile_codes = K * TT;
	s.tile_dx = up64(nab * TT * sizeof(float));
	s.tile_bs = mins ? nb * 4 * TT * sizeof(int32_t) : 0;
	s.tile = s.tile_codes + s.tile_dx + s.tile_bs;
	s.p_codes = K * RT;
	s.p_sc = ns * RT * sizeof(float);
	s.p_corr = bias ? ns * RT * sizeof(int32_t) : 0;
	s.p_dmin = nb * RT * sizeof(float);
	s.p_mp = mins ? nb * 4 * RT * sizeof(int32_t) : 0;
	s.p_isc = ns * RT * sizeof(int32_t);
	s.p_d = nb * RT * sizeof(float);
	s.panel = up64(s.p_codes + s.p_sc + s.p_corr + s.p_dmin + s.p_mp + s.p_isc + s.p_d);
	s.act_row = up64(tm_row_bytes(act, cols));
	s.thread = GP * s.panel + s.act_row;
	return s;
}

static inline size_t gemm_scratch(int type, int cols, int n, int nth, int bias)
{
	struct sizes s = sizes_of(tm_repack_base(type), cols, bias);

	return (size_t)((n + TT - 1) / TT) * s.tile + (size_t)nth * s.thread + 64;
}

struct panel {
	int8_t *codes;
	float *sc;	/* per sub-block and row: d * scale (q8_0: per block, d) */
	int32_t *corr;	/* per sub-block and row, where the activations carry a bias; else NULL */
	int32_t *mp;
	float *dmin;
	int32_t *isc;	/* r16 groups: per sub-block and row, the integer scale */
	float *d;	/* r16 groups: per block and row, d */
};

struct gemm;
/* out[r][t]: the panel's 16 rows against one token tile's 16 tokens */
typedef void (*gemm_product_fn)(const struct gemm *g, const struct panel *P, const char *tile, float out[RT][TT]);

struct gemm {
	const struct tm_kern *k;
	int type, rtype, rows, cols, n, ntiles, ngroups;	/* rtype: as stored (r16), type: its GGUF type */
	uint32_t bias;	/* XORed into each 4 activation codes: 0, or 0x80808080 (plus 128) */
	const char *w;
	size_t row_stride;
	const float *X;
	float *Y;
	size_t ystride;	/* token t's results at Y + t * ystride */
	struct sizes sz;
	char *tiles, *panels;
	gemm_product_fn product;
	_Alignas(64) atomic_int arrived;
	_Alignas(64) atomic_int next;
};

static inline struct panel panel_at(const struct gemm *g, int ith, int q)
{
	char *p = g->panels + (size_t)ith * g->sz.thread + (size_t)q * g->sz.panel;
	size_t o = g->sz.p_codes;

	return (struct panel){
		.codes = (int8_t *)p,
		.sc = (float *)(p + o),
		.corr = g->sz.p_corr ? (int32_t *)(p + o + g->sz.p_sc) : NULL,
		.dmin = (float *)(p + o + g->sz.p_sc + g->sz.p_corr),
		.mp = (int32_t *)(p + o + g->sz.p_sc + g->sz.p_corr + g->sz.p_dmin),
		.isc = (int32_t *)(p + o + g->sz.p_sc + g->sz.p_corr + g->sz.p_dmin + g->sz.p_mp),
		.d = (float *)(p + o + g->sz.p_sc + g->sz.p_corr + g->sz.p_dmin + g->sz.p_mp + g->sz.p_isc),
	};
}

/* ---- activations: quantize token rows, lay them out per tile ---- */

static inline void put_codes(uint32_t *codes, const int8_t *qs, int n, int t, uint32_t bias)
{
	for (int j = 0; j < n / 4; j++) {
		uint32_t v;

		memcpy(&v, qs + 4 * j, 4);
		codes[j * TT + t] = v ^ bias;
	}
}

static inline void put_token(const struct gemm *g, int tok, char *rowbuf)
{
	char *tile = g->tiles + (size_t)(tok / TT) * g->sz.tile;
	int t = tok % TT, K = g->cols;
	uint32_t *codes = (uint32_t *)tile;
	float *dx = (float *)(tile + g->sz.tile_codes);
	int32_t *bs = (int32_t *)(tile + g->sz.tile_codes + g->sz.tile_dx);

	if (g->type == TM_Q8_0) {
		const blk_q8_0 *q = (const blk_q8_0 *)rowbuf;

		g->k->quant_q8_0(g->X + (size_t)tok * K, rowbuf, K);
		for (int b = 0; b < K / QK; b++) {
			put_codes(codes + b * (QK / 4) * TT, q[b].qs, QK, t, g->bias);
			dx[b * TT + t] = tm_f16_to_f32(q[b].d);
		}
		return;
	}
	const blk_q8_K *q = (const blk_q8_K *)rowbuf;

	g->k->quant_q8_K(g->X + (size_t)tok * K, rowbuf, K);
	for (int b = 0; b < K / QK_K; b++) {
		put_codes(codes + b * (QK_K / 4) * TT, q[b].qs, QK_K, t, g->bias);
		dx[b * TT + t] = q[b].d;
		if (g->sz.tile_bs)
			for (int p = 0; p < 4; p++) {
				const int16_t *s = q[b].bsums + 4 * p;
				uint16_t lo = (uint16_t)(s[0] + s[1]), hi = (uint16_t)(s[2] + s[3]);

				bs[(b * 4 + p) * TT + t] = (int32_t)((uint32_t)lo | (uint32_t)hi << 16);
			}
	}
}

static inline void quantize_tiles(const struct gemm *g, int ith, int nth)
{
	long lo, hi;
	char *rowbuf = g->panels + (size_t)ith * g->sz.thread + GP * g->sz.panel;

	tm_split(g->ntiles, 1, ith, nth, &lo, &hi);
	for (long T = lo; T < hi; T++) {
		/* the padding tokens of the last tile: any codes do, their results are dropped */
		if ((T + 1) * TT > g->n)
			memset(g->tiles + T * g->sz.tile, 0, g->sz.tile);
		for (int t = (int)T * TT; t < (T + 1) * TT && t < g->n; t++)
			put_token(g, t, rowbuf);
	}
}

/* ---- weights: decode a panel of 16 rows; every decoder fills corr where it is set ---- */

static inline void decode_q8_0(const struct panel *P, const blk_q8_0 *a, int r, int nb)
{
	for (int b = 0; b < nb; b++) {
		__m256i v = _mm256_loadu_si256((const __m256i *)a[b].qs);

		_mm256_storeu_si256((__m256i *)(P->codes + ((size_t)b * RT + r) * QK), v);
		P->sc[b * RT + r] = tm_f16_to_f32(a[b].d);
		if (P->corr)
			P->corr[b * RT + r] = corr_32(_mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)), 128);
	}
}

/* q4_K/q5_K: low nibbles of 32 bytes are sub-block 2c, high ones 2c+1; q5_K adds bit j of qh. */
static inline void decode_q45_K(const struct panel *P, const void *row, int r, int nb, int q5)
{
	const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
	size_t bsz = q5 ? sizeof(blk_q5_K) : sizeof(blk_q4_K);

	for (int b = 0; b < nb; b++) {
		const char *blk = (const char *)row + b * bsz;
		const uint16_t *dd = (const uint16_t *)blk;
		const uint8_t *scales = (const uint8_t *)blk + 4;
		const uint8_t *qh = q5 ? (const uint8_t *)blk + 16 : NULL;
		const uint8_t *qs = (const uint8_t *)blk + (q5 ? 48 : 16);
		uint32_t u[4];
		uint8_t sm[16];
		__m256i hb = q5 ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();

		tm_kq_scales(scales, u);
		memcpy(sm, u, 16);
		for (int c = 0; c < 4; c++) {
			__m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
			__m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
			int s = b * 8 + 2 * c;

			if (q5) {
				lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(
					_mm256_srli_epi16(hb, 2 * c), one), 4));
				hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(
					_mm256_srli_epi16(hb, 2 * c + 1), one), 4));
			}
			_mm256_storeu_si256((__m256i *)(P->codes + ((size_t)s * RT + r) * 32), lo);
			_mm256_storeu_si256((__m256i *)(P->codes + ((size_t)(s + 1) * RT + r) * 32), hi);
			if (P->corr) {
				P->corr[s * RT + r] = corr_32(lo, 0);
				P->corr[(s + 1) * RT + r] = corr_32(hi, 0);
			}
		}
		float d = tm_f16_to_f32(dd[0]);

		for (int j = 0; j < 8; j++)
			P->sc[(b * 8 + j) * RT + r] = d * sm[j];
		for (int p = 0; p < 4; p++)
			P->mp[(b * 4 + p) * RT + r] = (int32_t)(sm[8 + 2 * p] | (uint32_t)sm[9 + 2 * p] << 16);
		P->dmin[b * RT + r] = tm_f16_to_f32(dd[1]);
	}
}

/*
 * q6_K: element 128h + 32q + l has its low 4 bits in ql[64h + 32(q & 1) + l]
 * (high nibble for q >= 2) and its high 2 in qh[32h + l] >> 2q; stored
 * minus 32, so no block sums are needed.
 */
static inline void decode_q6_K(const struct panel *P, const blk_q6_K *a, int r, int nb)
{
	const __m256i m4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);

	for (int b = 0; b < nb; b++) {
		for (int h = 0; h < 2; h++) {
			__m256i l0 = _mm256_loadu_si256((const __m256i *)(a[b].ql + 64 * h));
			__m256i l1 = _mm256_loadu_si256((const __m256i *)(a[b].ql + 64 * h + 32));
			__m256i qh = _mm256_loadu_si256((const __m256i *)(a[b].qh + 32 * h));

			for (int q = 0; q < 4; q++) {
				__m256i l = q & 1 ? l1 : l0;
				__m256i lo = _mm256_and_si256(q >= 2 ? _mm256_srli_epi16(l, 4) : l, m4);
				__m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * q), m3);
				__m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
				__m256i v = _mm256_sub_epi8(u, off);
				int s = b * 16 + 8 * h + 2 * q;

				_mm_storeu_si128((__m128i *)(P->codes + ((size_t)s * RT + r) * 16),
						 _mm256_castsi256_si128(v));
				_mm_storeu_si128((__m128i *)(P->codes + ((size_t)(s + 1) * RT + r) * 16),
						 _mm256_extracti128_si256(v, 1));
				if (P->corr) {
					P->corr[s * RT + r] = corr_16(_mm256_castsi256_si128(u), 32);
					P->corr[(s + 1) * RT + r] = corr_16(_mm256_extracti128_si256(u, 1), 32);
				}
			}
		}
		float d = tm_f16_to_f32(a[b].d);

		for (int j = 0; j < 16; j++)
			P->sc[(b * 16 + j) * RT + r] = d * a[b].scales[j];
	}
}

/*
 * The interleaved-row types (repack.h): a group block holds one block of all
 * 16 rows of the panel, a 512-bit load one octet (8 codes) of every row, a
 * row per 32-bit lane. Decoding a group is a transpose: row r's codes of a
 * sub-block gathered from the lanes r of its octets. The panel it gives is
 * byte for byte the one its rows give in the GGUF layout, so the results are
 * the same bits whichever layout a matrix is in. The lanes also give corr:
 * vpdpbusd against ones sums a row's codes 4 at a time.
 */

/* rows 4L..4L+3 of a 16-row transpose step: 128-bit lane L of r0..r3 side by side, for L = 0..3 */
static inline void lanes4x4(__m512i r0, __m512i r1, __m512i r2, __m512i r3, __m512i out[4])
{
	__m512i t0 = _mm512_shuffle_i64x2(r0, r1, 0x44), t1 = _mm512_shuffle_i64x2(r0, r1, 0xee);
	__m512i t2 = _mm512_shuffle_i64x2(r2, r3, 0x44), t3 = _mm512_shuffle_i64x2(r2, r3, 0xee);

	out[0] = _mm512_shuffle_i64x2(t0, t2, 0x88);
	out[1] = _mm512_shuffle_i64x2(t0, t2, 0xdd);
	out[2] = _mm512_shuffle_i64x2(t1, t3, 0x88);
	out[3] = _mm512_shuffle_i64x2(t1, t3, 0xdd);
}

/*
 * x[0..7]: dword lane r of x[k] is bytes 4k..4k+3 of row r's 32 codes.
 * Writes the 16 rows' 32 bytes each, contiguous, at dst.
 */
static inline void transpose_16x8(const __m512i x[8], int8_t *dst)
{
	__m512i a[4], b[4], c[4], d[4], o[4];

	for (int i = 0; i < 4; i++) {
		a[i] = _mm512_unpacklo_epi32(x[2 * i], x[2 * i + 1]);	/* rows 4L, 4L+1 */
		b[i] = _mm512_unpackhi_epi32(x[2 * i], x[2 * i + 1]);	/* rows 4L+2, 4L+3 */
	}
	/* c[0]/c[1]: rows 4L, 4L+1, dwords 0..3; c[2]/c[3]: the same rows, dwords 4..7; d: rows 4L+2, 4L+3 */
	c[0] = _mm512_unpacklo_epi64(a[0], a[1]);
	c[1] = _mm512_unpackhi_epi64(a[0], a[1]);
	c[2] = _mm512_unpacklo_epi64(a[2], a[3]);
	c[3] = _mm512_unpackhi_epi64(a[2], a[3]);
	d[0] = _mm512_unpacklo_epi64(b[0], b[1]);
	d[1] = _mm512_unpackhi_epi64(b[0], b[1]);
	d[2] = _mm512_unpacklo_epi64(b[2], b[3]);
	d[3] = _mm512_unpackhi_epi64(b[2], b[3]);
	/* lane L of (c0, c2, c1, c3) is rows 4L and 4L+1 whole */
	lanes4x4(c[0], c[2], c[1], c[3], o);
	for (int L = 0; L < 4; L++)
		_mm512_storeu_si512(dst + (4 * L) * 32, o[L]);
	lanes4x4(d[0], d[2], d[1], d[3], o);
	for (int L = 0; L < 4; L++)
		_mm512_storeu_si512(dst + (4 * L + 2) * 32, o[L]);
}

/* x[0..3]: dword lane r of x[k] is bytes 4k..4k+3 of row r's 16 codes; 16 rows of 16 bytes to dst. */
static inline void transpose_16x4(const __m512i x[4], int8_t *dst)
{
	__m512i a0 = _mm512_unpacklo_epi32(x[0], x[1]), a1 = _mm512_unpacklo_epi32(x[2], x[3]);
	__m512i b0 = _mm512_unpackhi_epi32(x[0], x[1]), b1 = _mm512_unpackhi_epi32(x[2], x[3]);
	__m512i o[4];

	lanes4x4(_mm512_unpacklo_epi64(a0, a1), _mm512_unpackhi_epi64(a0, a1),
		 _mm512_unpacklo_epi64(b0, b1), _mm512_unpackhi_epi64(b0, b1), o);
	for (int L = 0; L < 4; L++)
		_mm512_storeu_si512(dst + (4 * L) * 16, o[L]);
}

/* -128 x the row sums of n vectors of codes (dword lane r: 4 codes of row r); u: the codes are unsigned */
static inline __m512i lanes_corr(const __m512i *x, int n, int u)
{
	const __m512i ones = _mm512_set1_epi8(1);
	__m512i c = _mm512_setzero_si512();

	for (int k = 0; k < n; k++)
		c = u ? _mm512_dpbusd_epi32(c, x[k], ones) : _mm512_dpbusd_epi32(c, ones, x[k]);
	return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(c, 7));
}

/* q8_0_r16: quad k of the 16 rows is dword lane l of qs[k], plus 128 */
static inline void decode_q8_0_r16(const struct panel *P, const blk_q8_0_r16 *g, int nb)
{
	for (int b = 0; b < nb; b++, g++) {
		__m512i x[8];

		for (int k = 0; k < 8; k++)
			x[k] = _mm512_xor_si512(_mm512_loadu_si512(g->qs[k]), _mm512_set1_epi8((char)0x80));
		transpose_16x8(x, P->codes + (size_t)b * RT * QK);
		if (P->corr)
			_mm512_storeu_si512(P->corr + b * RT, lanes_corr(x, 8, 0));
		_mm512_storeu_ps(P->sc + b * RT, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->d)));
	}
}

static inline void decode_q4_K_r16(const struct panel *P, const blk_q4_K_r16 *g, int nb)
{
	const __m512i m4 = _mm512_set1_epi8(15), m6 = _mm512_set1_epi32(63);

	for (int b = 0; b < nb; b++, g++) {
		__m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->d));
		__m512i mn[8];

		for (int j = 0; j < 8; j++) {
			__m512i x[8];
			__m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)g->sc[j]));
			__m512i mh = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)g->mh[j / 2]));

			for (int k = 0; k < 4; k++) {
				__m512i v = _mm512_loadu_si512(g->qs[4 * j + k]);

				x[2 * k] = _mm512_and_si512(v, m4);
				x[2 * k + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
			}
			transpose_16x8(x, P->codes + (size_t)(b * 8 + j) * RT * 32);
			if (P->corr)
				_mm512_storeu_si512(P->corr + (b * 8 + j) * RT, lanes_corr(x, 8, 1));
			_mm512_storeu_si512(P->isc + (b * 8 + j) * RT, _mm512_and_si512(sc, m6));
			_mm512_storeu_ps(P->sc + (b * 8 + j) * RT,
					 _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(sc, m6))));
			mn[j] = _mm512_or_si512(_mm512_srli_epi32(sc, 6), _mm512_slli_epi32(
				_mm512_and_si512(_mm512_srli_epi32(mh, 4 * (j & 1)), _mm512_set1_epi32(15)), 2));
		}
		for (int p = 0; p < 4; p++)
			_mm512_storeu_si512(P->mp + (b * 4 + p) * RT,
					    _mm512_or_si512(mn[2 * p], _mm512_slli_epi32(mn[2 * p + 1], 16)));
		_mm512_storeu_ps(P->d + b * RT, d);
		_mm512_storeu_ps(P->dmin + b * RT, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->dmin)));
	}
}

/* q6_K_r16: sub-block s (16 codes) is octets 2s, 2s+1 with the top bits of qh[s] (repack.h) */
static inline void decode_q6_K_r16(const struct panel *P, const blk_q6_K_r16 *g, int nb)
{
	const __m512i m4 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3), off = _mm512_set1_epi8(32);

	for (int b = 0; b < nb; b++, g++) {
		__m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->d));

		for (int s = 0; s < 16; s++) {
			__m512i l0 = _mm512_loadu_si512(g->ql[2 * s]), l1 = _mm512_loadu_si512(g->ql[2 * s + 1]);
			__m512i h = _mm512_loadu_si512(g->qh[s]), x[4];
			__m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)g->sc[s]));

			for (int k = 0; k < 4; k++) {
				__m512i l = k < 2 ? l0 : l1;
				__m512i lo = _mm512_and_si512(k & 1 ? _mm512_srli_epi16(l, 4) : l, m4);
				__m512i hi = _mm512_and_si512(_mm512_srli_epi16(h, 2 * k), m3);

				x[k] = _mm512_sub_epi8(_mm512_or_si512(lo, _mm512_slli_epi16(hi, 4)), off);
			}
			transpose_16x4(x, P->codes + (size_t)(b * 16 + s) * RT * 16);
			if (P->corr)
				_mm512_storeu_si512(P->corr + (b * 16 + s) * RT, lanes_corr(x, 4, 0));
			_mm512_storeu_si512(P->isc + (b * 16 + s) * RT, sc);
			_mm512_storeu_ps(P->sc + (b * 16 + s) * RT, _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc)));
		}
		_mm512_storeu_ps(P->d + b * RT, d);
	}
}

static inline void decode_panel(const struct gemm *g, const struct panel *P, int r0)
{
	int nr = g->rows - r0 < RT ? g->rows - r0 : RT, nb = g->cols / block_elems(g->type);
	const char *base = g->w + (size_t)r0 * g->row_stride;

	/* rows past the end: zero codes and scales, results dropped */
	if (nr < RT)
		memset(P->codes, 0, g->sz.panel);
	/* a whole group of an r16 matrix (its last rows % 16 rows keep the GGUF layout) */
	if (g->rtype != g->type && nr == RT) {
		if (g->type == TM_Q8_0)
			decode_q8_0_r16(P, (const blk_q8_0_r16 *)base, nb);
		else if (g->type == TM_Q4_K)
			decode_q4_K_r16(P, (const blk_q4_K_r16 *)base, nb);
		else
			decode_q6_K_r16(P, (const blk_q6_K_r16 *)base, nb);
		return;
	}
	for (int r = 0; r < nr; r++) {
		const char *row = base + (size_t)r * g->row_stride;

		switch (g->type) {
		case TM_Q8_0: decode_q8_0(P, (const blk_q8_0 *)row, r, nb); break;
		case TM_Q4_K: decode_q45_K(P, row, r, nb, 0); break;
		case TM_Q5_K: decode_q45_K(P, row, r, nb, 1); break;
		default: decode_q6_K(P, (const blk_q6_K *)row, r, nb); break;
		}
	}
}

/* out[r][t] into Y[t][r0 + r] for nt tokens and nr rows: a 16 x 16 transpose, then row stores. */
static inline void store_out(float out[RT][TT], float *Y, size_t ystride, int nt, int nr)
{
	__m512 v[16], u[16];
	__mmask16 keep = (__mmask16)((1u << nr) - 1);

	for (int i = 0; i < 16; i++)
		v[i] = _mm512_load_ps(out[i]);
	/* within 128-bit lanes: 4 x 4 transposes of rows 4k .. 4k+3 */
	for (int k = 0; k < 16; k += 4) {
		__m512 t0 = _mm512_unpacklo_ps(v[k], v[k + 1]), t1 = _mm512_unpackhi_ps(v[k], v[k + 1]);
		__m512 t2 = _mm512_unpacklo_ps(v[k + 2], v[k + 3]), t3 = _mm512_unpackhi_ps(v[k + 2], v[k + 3]);

		u[k] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
		u[k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
		u[k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
		u[k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
	}
	/*
	 * u[4k + i] lane l holds out[4k + (i)][...]: column 4l + i of rows 4k..4k+3.
	 * Gather the four 128-bit pieces of each token: token 4l + i takes lane l
	 * of u[i], u[4 + i], u[8 + i], u[12 + i].
	 */
	for (int i = 0; i < 4; i++) {
		__m512 a = _mm512_shuffle_f32x4(u[i], u[4 + i], 0x44), b = _mm512_shuffle_f32x4(u[i], u[4 + i], 0xee);
		__m512 c = _mm512_shuffle_f32x4(u[8 + i], u[12 + i], 0x44), d = _mm512_shuffle_f32x4(u[8 + i], u[12 + i], 0xee);

		v[i] = _mm512_shuffle_f32x4(a, c, 0x88);	/* token i */
		v[4 + i] = _mm512_shuffle_f32x4(a, c, 0xdd);	/* token 4 + i */
		v[8 + i] = _mm512_shuffle_f32x4(b, d, 0x88);	/* token 8 + i */
		v[12 + i] = _mm512_shuffle_f32x4(b, d, 0xdd);	/* token 12 + i */
	}
	for (int t = 0; t < nt; t++)
		_mm512_mask_storeu_ps(Y + (size_t)t * ystride, keep, v[t]);
}

#define UNROLL_RT _Pragma("GCC unroll 16")

/*
 * Row r's min term of K-quant block b (q4_K/q5_K), in integers: its four
 * packed pairs of sub-block mins times the tokens' four block sums bsum.
 */
static inline __attribute__((always_inline)) __m512i kq_mins_row(const int32_t *mp, int r, const __m512i bsum[4])
{
	__m512i m = _mm512_madd_epi16(_mm512_set1_epi32(mp[r]), bsum[0]);

	m = _mm512_dpwssd_epi32(m, _mm512_set1_epi32(mp[RT + r]), bsum[1]);
	m = _mm512_dpwssd_epi32(m, _mm512_set1_epi32(mp[2 * RT + r]), bsum[2]);
	return _mm512_dpwssd_epi32(m, _mm512_set1_epi32(mp[3 * RT + r]), bsum[3]);
}

/* The tokens' four block sums of K-quant block b, from the tile's sums bs. */
static inline __attribute__((always_inline)) void kq_block_sums(const int32_t *bs, int b, __m512i bsum[4])
{
	for (int i = 0; i < 4; i++)
		bsum[i] = _mm512_load_si512(bs + (b * 4 + i) * TT);
}

/*
 * The end of K-quant block b for the panel's 16 rows, given blk[r] (the sum
 * of the block's sub-block products times their scales): the mins off
 * through the activations' block sums (q4_K/q5_K), then out += blk * the
 * tokens' block scales.
 */
static inline __attribute__((always_inline)) void kq_block_end(const struct gemm *g, const struct panel *P,
							       const char *tile, int b, __m512 blk[RT],
							       float out[RT][TT])
{
	const float *dx = (const float *)(tile + g->sz.tile_codes);
	const int32_t *bs = (const int32_t *)(tile + g->sz.tile_codes + g->sz.tile_dx);
	__m512 x = _mm512_load_ps(dx + b * TT);

	if (g->sz.p_mp) {
		const int32_t *mp = P->mp + (size_t)b * 4 * RT;
		const float *dmin = P->dmin + (size_t)b * RT;
		__m512i bsum[4];

		kq_block_sums(bs, b, bsum);
		UNROLL_RT for (int r = 0; r < RT; r++)
			blk[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(kq_mins_row(mp, r, bsum)), _mm512_set1_ps(dmin[r]),
						  blk[r]);
	}
	UNROLL_RT for (int r = 0; r < RT; r++)
		_mm512_store_ps(out[r], _mm512_fmadd_ps(blk[r], x, _mm512_load_ps(out[r])));
}

/* One thread's panels, after the barrier: groups from the cursor, each against every token tile. */
static inline void gemm_panels(struct gemm *g, int ith)
{
	struct panel P[GP];
	_Alignas(64) float out[RT][TT];
	int grp;

	for (int q = 0; q < GP; q++)
		P[q] = panel_at(g, ith, q);
	while ((grp = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed)) < g->ngroups) {
		int np = 0;

		for (; np < GP && (grp * GP + np) * RT < g->rows; np++)
			decode_panel(g, &P[np], (grp * GP + np) * RT);
		for (int T = 0; T < g->ntiles; T++) {
			int nt = g->n - T * TT < TT ? g->n - T * TT : TT;
			const char *tile = g->tiles + (size_t)T * g->sz.tile;

			for (int q = 0; q < np; q++) {
				int r0 = (grp * GP + q) * RT, nr = g->rows - r0 < RT ? g->rows - r0 : RT;

				g->product(g, &P[q], tile, out);
				store_out(out, g->Y + (size_t)T * TT * g->ystride + r0, g->ystride, nt, nr);
			}
		}
	}
}

/* Fill g for one matmul (the shapes of tm_gemm.run) and run fn(g) on the pool. */
static inline void gemm_start(struct tm_pool *pool, const struct tm_kern *k, int type, const void *w,
			      size_t row_stride, int rows, int cols, const float *X, int n, float *Y, size_t ystride, void *mem,
			      uint32_t bias, gemm_product_fn product, void (*fn)(void *, int, int))
{
	struct gemm g = {
		.k = k, .type = tm_repack_base(type), .rtype = type, .rows = rows, .cols = cols, .n = n,
		.ntiles = (n + TT - 1) / TT, .ngroups = (rows + GP * RT - 1) / (GP * RT), .bias = bias,
		.w = w, .row_stride = row_stride, .X = X, .Y = Y, .ystride = ystride,
		.sz = sizes_of(tm_repack_base(type), cols, bias != 0), .product = product,
	};
	char *base = (char *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);

	g.tiles = base;
	g.panels = base + (size_t)g.ntiles * g.sz.tile;
	tm_pool_run(pool, fn, &g);
}

#endif
