// SPDX-License-Identifier: MIT
/*
 * Prompt-batch matmul for AVX-512 VNNI CPUs without AMX (Cascade Lake and
 * Ice Lake Xeons: the Optane servers), for q8_0, q4_K, q5_K, q6_K and the
 * r16 layouts; other types keep the per-row kernels.
 *
 * The per-row kernels unpack every weight block again for each pass of at
 * most 4 tokens. Here, as on AMX tiles, a panel of 16 weight rows is decoded
 * once per batch and run against every tile of 16 tokens (gemm_panel.h):
 *
 * - a token tile holds 4 codes of each token per 64-byte vector, one token
 *   per 32-bit lane, so one vpdpbusd multiplies 4 codes of one weight row,
 *   broadcast, with 4 codes of each of the 16 tokens;
 * - vpdpbusd takes its vector operand unsigned: the activations are stored
 *   plus 128 (x ^ 0x80), and each row's sub-block sum starts at -128 times
 *   the sum of its codes (corr, taken as the panel is decoded), so the
 *   integer sum of a sub-block is the exact dot product, as in the matvec
 *   kernels;
 * - the float epilogue (sub-block scales, mins through the block sums, the
 *   block scales) is gemm_amx.c's on the GGUF layout, operation for
 *   operation (not its r16 order: see exact_r16 below).
 *
 * A token's result is computed in its own lane with the same operations
 * whatever the other tokens of its batch are, the panel split over threads,
 * or where in the batch it sits: it does not depend on its batch. Against
 * the matvec kernels only the order of float additions differs (ulps).
 */
#include "gemm_panel.h"

static int takes(int type, int n)
{
	/*
	 * Below these a tile is mostly padding and the per-row VNNI kernels,
	 * which unpack a block once for 4 tokens, do as well (1024 x 4096, one
	 * thread: q8_0 2x faster here at 8 tokens; q4_K 0.6x at 8, 1.2x at 16;
	 * q6_K 0.4x at 8, 0.9-1.0x at 16-24).
	 */
	return gemm_type_ok(type) && n >= (tm_repack_base(type) == TM_Q8_0 ? 8 : 16);
}

static size_t scratch(int type, int cols, int n, int nth)
{
	return gemm_scratch(type, cols, n, nth, 1);
}

/* ---- the products ---- */

/*
 * The exact integer dot product of row r's sub-block at w (ks codes) with
 * the 16 tokens' codes xv: the plus-128 bias comes off through corr.
 */
static inline __attribute__((always_inline)) __m512i sub_dot(const __m512i *xv, const int8_t *w, int32_t corr, int ks)
{
	__m512i c = _mm512_set1_epi32(corr);

	UNROLL_RT for (int k = 0; k < ks / 4; k++) {
		int32_t w4;

		memcpy(&w4, w + 4 * k, 4);
		c = _mm512_dpbusd_epi32(c, xv[k], _mm512_set1_epi32(w4));
	}
	return c;
}

/* out[r][t] for the panel P and token tile `tile`: q8_0. */
static void tile_q8_0(const struct gemm *g, const struct panel *P, const char *tile, float out[RT][TT])
{
	const __m512i *xq = (const __m512i *)tile;
	const float *dx = (const float *)(tile + g->sz.tile_codes), *dw = P->sc;
	int nb = g->cols / QK;
	__m512 acc[RT];

	UNROLL_RT for (int r = 0; r < RT; r++)
		acc[r] = _mm512_setzero_ps();
	for (int b = 0; b < nb; b++) {
		__m512 x = _mm512_load_ps(dx + b * TT);
		const int8_t *w = P->codes + (size_t)b * RT * QK;
		__m512i xv[QK / 4];

		UNROLL_RT for (int k = 0; k < QK / 4; k++)
			xv[k] = _mm512_load_si512(xq + b * (QK / 4) + k);
		UNROLL_RT for (int r = 0; r < RT; r++) {
			__m512i c = sub_dot(xv, w + r * QK, P->corr[b * RT + r], QK);

			acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(c), x),
						 _mm512_set1_ps(dw[b * RT + r]), acc[r]);
		}
	}
	UNROLL_RT for (int r = 0; r < RT; r++)
		_mm512_store_ps(out[r], acc[r]);
}

/*
 * K-quants: a sub-block's integer sums (|sum| < 2^16) times its scale
 * d * sc round once each (not exact: the product can need 33 bits), in the
 * AMX kernel's order, not the matvec kernels'. The mins go through the block sums (q4_K/q5_K).
 */
static inline __attribute__((always_inline)) void tile_kq(const struct gemm *g, const struct panel *P,
							  const char *tile, float out[RT][TT], int ks)
{
	const __m512i *xq = (const __m512i *)tile;
	const float *scd = P->sc;
	const int ns = QK_K / ks;
	int nb = g->cols / QK_K;

	UNROLL_RT for (int r = 0; r < RT; r++)
		_mm512_store_ps(out[r], _mm512_setzero_ps());
	for (int b = 0; b < nb; b++) {
		__m512 blk[RT];

		UNROLL_RT for (int r = 0; r < RT; r++)
			blk[r] = _mm512_setzero_ps();
		for (int j = 0; j < ns; j++) {
			size_t s = (size_t)b * ns + j;
			const int8_t *w = P->codes + s * RT * ks;
			__m512i xv[8];

			UNROLL_RT for (int k = 0; k < ks / 4; k++)
				xv[k] = _mm512_load_si512(xq + s * (ks / 4) + k);
			UNROLL_RT for (int r = 0; r < RT; r++) {
				__m512i c = sub_dot(xv, w + r * ks, P->corr[s * RT + r], ks);

				blk[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(scd[s * RT + r]), blk[r]);
			}
		}
		kq_block_end(g, P, tile, b, blk, out);
	}
}

static void tile_kq32(const struct gemm *g, const struct panel *P, const char *tile, float out[RT][TT])
{
	tile_kq(g, P, tile, out, 32);
}

static void tile_kq16(const struct gemm *g, const struct panel *P, const char *tile, float out[RT][TT])
{
	tile_kq(g, P, tile, out, 16);
}

static void gemm_run(void *arg, int ith, int nth)
{
	struct gemm *g = arg;

	quantize_tiles(g, ith, nth);
	tm_barrier_wait(&g->arrived, nth);
	gemm_panels(g, ith);
}

static void run(struct tm_pool *pool, const struct tm_kern *k, int type, const void *w, size_t row_stride,
		int rows, int cols, const float *X, int n, float *Y, size_t ystride, void *mem)
{
	int base = tm_repack_base(type);

	gemm_start(pool, k, type, w, row_stride, rows, cols, X, n, Y, ystride, mem, 0x80808080u,
		   base == TM_Q8_0 ? tile_q8_0 : base == TM_Q6_K ? tile_kq16 : tile_kq32, gemm_run);
}

const struct tm_gemm tm_gemm_vnni = {
	.exact_r16 = 0,	/* its float order is its own on every layout */
	.takes = takes,
	.scratch = scratch,
	.run = run,
};
