// SPDX-License-Identifier: MIT
/*
 * Prompt-batch matmul on Intel AMX-INT8 tiles, for q8_0, q4_K, q5_K and q6_K
 * weights (the Q4_K_M mix and q8_0); other types keep the per-row kernels.
 *
 * The matvec kernels unpack a weight block for at most 4 tokens and spend
 * two or three vector instructions per 64 multiply-adds; a tile
 * multiply-add (tdpbssd) does 16 x 16 x 32 of them in one instruction.
 * The batch's layout, the panels and their decoding are gemm_panel.h's
 * (shared with the VNNI kernel); here, per sub-block, one tile product of
 * a panel (the A operand) and a token tile (B) gives the 16 x 16 integer
 * dot products, and the sub-block scales, mins and block scales are applied
 * in float. Only the order of float additions across blocks differs from
 * the matvec kernels. Two products alternate between tiles 0/2/4 and 1/3/5
 * so a tile product overlaps the vector work on the previous one.
 *
 * This file is built with -mamx-tile -mamx-int8 and AVX-512; dispatch.c
 * reaches it only where cpuid reports AMX-INT8 and the kernel granted the
 * tile state (arch_prctl ARCH_REQ_XCOMP_PERM).
 */
#include "gemm_panel.h"

struct tile_cfg {
	uint8_t palette, start_row, reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
};

/*
 * Below these batches the padding of a tile of 16 tokens costs more than the
 * dot kernels' unpacking. The r16 dot kernels are the cheaper ones: in L2,
 * thread CPU time (bench/matvec --cpu-time --batch N), a 16-row panel set
 * against one tile cost about as much as 3 passes of 4 tokens (0.69 ms
 * against 0.23 per pass, 1700 x 4096 q4_K_r16).
 */
#define MIN_TOKENS 8
#define MIN_TOKENS_R16 12

static int takes(int type, int n)
{
	return n >= (tm_repack_base(type) != type ? MIN_TOKENS_R16 : MIN_TOKENS) && gemm_type_ok(type);
}

static size_t scratch(int type, int cols, int n, int nth)
{
	return gemm_scratch(type, cols, n, nth, 0);
}

/* ---- the tile products ---- */

/* C tile c = A tile a (16 rows x sub-block) . B tile b (its 16 tokens), stored to out. */
#define TILE_PRODUCT(c, a, b, A, B, ks, out)				\
	do {								\
		_tile_loadd(a, A, ks);					\
		_tile_loadd(b, B, 64);					\
		_tile_zero(c);						\
		_tile_dpbssd(c, a, b);					\
		_tile_stored(c, out, 64);				\
	} while (0)

/*
 * out[r][t] for the panel P and token tile `tile`: q8_0. canon: a q8_0_r16
 * group in the order of the dot kernels (row_q8_0's): (d * dx) * sum added
 * block by block, not fused, so prefill equals decode bit for bit.
 */
static inline void tile_q8_0_in(const struct gemm *g, const struct panel *P, const char *tile,
				float out[RT][TT], const int canon)
{
	const int8_t *xq = (const int8_t *)tile;
	const float *dx = (const float *)(tile + g->sz.tile_codes), *dw = P->sc;
	int nb = g->cols / QK;
	_Alignas(64) int32_t c[2][RT][TT];
	__m512 acc[RT];

	UNROLL_RT for (int r = 0; r < RT; r++)
		acc[r] = _mm512_setzero_ps();
	for (int b = 0; b < nb; b++) {
		__m512 x = _mm512_load_ps(dx + b * TT);

		if (b % 2 == 0)
			TILE_PRODUCT(0, 2, 4, P->codes + (size_t)b * RT * QK, xq + (size_t)b * QK * TT, QK, c[0]);
		else
			TILE_PRODUCT(1, 3, 5, P->codes + (size_t)b * RT * QK, xq + (size_t)b * QK * TT, QK, c[1]);
		UNROLL_RT for (int r = 0; r < RT; r++) {
			__m512 s = _mm512_cvtepi32_ps(_mm512_load_si512(c[b % 2][r]));

			acc[r] = canon ? _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(dw[b * RT + r]), x), s))
				       : _mm512_fmadd_ps(_mm512_mul_ps(s, x), _mm512_set1_ps(dw[b * RT + r]), acc[r]);
		}
	}
	UNROLL_RT for (int r = 0; r < RT; r++)
		_mm512_store_ps(out[r], acc[r]);
}

static void tile_q8_0(const struct gemm *g, const struct panel *P, const char *tile, float out[RT][TT])
{
	tile_q8_0_in(g, P, tile, out, 0);
}

static void tile_q8_0_canon(const struct gemm *g, const struct panel *P, const char *tile, float out[RT][TT])
{
	tile_q8_0_in(g, P, tile, out, 1);
}

/*
 * K-quants: ns sub-blocks of ks elements per block. A sub-block's 16 x 16
 * integer sums (|sum| < 2^16) times its scale d * sc (P->sc holds them as
 * floats; up to 17 significant bits) round once each (not exact: the product
 * can need 33 bits), and a block's sum of them rounds in its own order, not
 * the GGUF matvec kernels' (tile_kq_canon gives the r16 kernels' order).
 * The mins go through the block sums (q4_K/q5_K).
 */
static void tile_kq(const struct gemm *g, const struct panel *P, const char *tile, float out[RT][TT])
{
	const int8_t *xq = (const int8_t *)tile;
	const float *scd = P->sc;
	const int ks = sub_elems(g->type), ns = QK_K / ks;
	int nb = g->cols / QK_K;
	_Alignas(64) int32_t c[2][RT][TT];

	UNROLL_RT for (int r = 0; r < RT; r++)
		_mm512_store_ps(out[r], _mm512_setzero_ps());
	for (int b = 0; b < nb; b++) {
		__m512 blk[RT];

		UNROLL_RT for (int r = 0; r < RT; r++)
			blk[r] = _mm512_setzero_ps();
		for (int j = 0; j < ns; j += 2) {
			size_t s = (size_t)b * ns + j;

			TILE_PRODUCT(0, 2, 4, P->codes + s * RT * ks, xq + s * ks * TT, ks, c[0]);
			TILE_PRODUCT(1, 3, 5, P->codes + (s + 1) * RT * ks, xq + (s + 1) * ks * TT, ks, c[1]);
			UNROLL_RT for (int r = 0; r < RT; r++)
				blk[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[0][r])),
							 _mm512_set1_ps(scd[s * RT + r]), blk[r]);
			UNROLL_RT for (int r = 0; r < RT; r++)
				blk[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[1][r])),
							 _mm512_set1_ps(scd[(s + 1) * RT + r]), blk[r]);
		}
		kq_block_end(g, P, tile, b, blk, out);
	}
}

/*
 * An r16 group (q4_K, q6_K) in the order of the r16 dot kernels
 * (repack_avx512.c), so prefill equals decode bit for bit: per block, the
 * exact integer sum of sub-block scale times tile product, and for q4_K of
 * min times block sums; then per block acc += (d * dx) * isum and
 * accm += (dmin * dx) * msum, each one rounding of a fused multiply-add;
 * the result acc - accm.
 */
static void tile_kq_canon(const struct gemm *g, const struct panel *P, const char *tile, float out[RT][TT])
{
	const int8_t *xq = (const int8_t *)tile;
	const float *dx = (const float *)(tile + g->sz.tile_codes);
	const int32_t *bs = (const int32_t *)(tile + g->sz.tile_codes + g->sz.tile_dx);
	const int ks = sub_elems(g->type), ns = QK_K / ks, mins = g->sz.p_mp != 0;
	int nb = g->cols / QK_K;
	_Alignas(64) int32_t c[2][RT][TT];
	_Alignas(64) float accm[RT][TT];

	UNROLL_RT for (int r = 0; r < RT; r++) {
		_mm512_store_ps(out[r], _mm512_setzero_ps());
		_mm512_store_ps(accm[r], _mm512_setzero_ps());
	}
	for (int b = 0; b < nb; b++) {
		__m512i isum[RT];
		__m512 x = _mm512_load_ps(dx + b * TT);

		UNROLL_RT for (int r = 0; r < RT; r++)
			isum[r] = _mm512_setzero_si512();
		for (int j = 0; j < ns; j += 2) {
			size_t s = (size_t)b * ns + j;

			TILE_PRODUCT(0, 2, 4, P->codes + s * RT * ks, xq + s * ks * TT, ks, c[0]);
			TILE_PRODUCT(1, 3, 5, P->codes + (s + 1) * RT * ks, xq + (s + 1) * ks * TT, ks, c[1]);
			UNROLL_RT for (int r = 0; r < RT; r++)
				isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(_mm512_load_si512(c[0][r]),
								     _mm512_set1_epi32(P->isc[s * RT + r])));
			UNROLL_RT for (int r = 0; r < RT; r++)
				isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(_mm512_load_si512(c[1][r]),
								     _mm512_set1_epi32(P->isc[(s + 1) * RT + r])));
		}
		UNROLL_RT for (int r = 0; r < RT; r++)
			_mm512_store_ps(out[r], _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(P->d[b * RT + r]), x),
								_mm512_cvtepi32_ps(isum[r]), _mm512_load_ps(out[r])));
		if (mins) {
			const int32_t *mp = P->mp + (size_t)b * 4 * RT;
			const float *dmin = P->dmin + (size_t)b * RT;
			__m512i bsum[4];

			kq_block_sums(bs, b, bsum);
			UNROLL_RT for (int r = 0; r < RT; r++)
				_mm512_store_ps(accm[r], _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(dmin[r]), x),
									 _mm512_cvtepi32_ps(kq_mins_row(mp, r, bsum)),
									 _mm512_load_ps(accm[r])));
		}
	}
	if (mins)
		UNROLL_RT for (int r = 0; r < RT; r++)
			_mm512_store_ps(out[r], _mm512_sub_ps(_mm512_load_ps(out[r]), _mm512_load_ps(accm[r])));
}

static void load_tiles(int ks)
{
	struct tile_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.palette = 1;
	for (int i = 0; i < 2; i++) {
		cfg.rows[i] = RT;		/* C: 16 rows x 16 int32 */
		cfg.colsb[i] = 64;
		cfg.rows[2 + i] = RT;		/* A: 16 rows x ks codes */
		cfg.colsb[2 + i] = (uint16_t)ks;
		cfg.rows[4 + i] = (uint8_t)(ks / 4);	/* B: ks/4 rows of 16 tokens x 4 */
		cfg.colsb[4 + i] = 64;
	}
	_tile_loadconfig(&cfg);
}

static void gemm_run(void *arg, int ith, int nth)
{
	struct gemm *g = arg;

	quantize_tiles(g, ith, nth);
	tm_barrier_wait(&g->arrived, nth);
	load_tiles(sub_elems(g->type));
	gemm_panels(g, ith);
	_tile_release();
}

static void run(struct tm_pool *pool, const struct tm_kern *k, int type, const void *w, size_t row_stride,
		int rows, int cols, const float *X, int n, float *Y, size_t ystride, void *mem)
{
	/* an r16 matrix comes as whole groups (matvec.c runs its last rows % 16 on the dot kernels) */
	gemm_start(pool, k, type, w, row_stride, rows, cols, X, n, Y, ystride, mem, 0,
		   type == TM_Q8_0_R16 ? tile_q8_0_canon : tm_repack_base(type) != type ? tile_kq_canon :
		   type == TM_Q8_0 ? tile_q8_0 : tile_kq, gemm_run);
}

const struct tm_gemm tm_gemm_amx = {
	.exact_r16 = 1,
	.takes = takes,
	.scratch = scratch,
	.run = run,
};
