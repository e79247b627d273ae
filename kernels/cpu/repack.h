/* SPDX-License-Identifier: MIT */
/*
 * The interleaved-row layouts (kernels/kernels.h says what they are for).
 * One group block holds block column i of 16 rows. Codes are stored by
 * "octet" (8 consecutive elements of a row) and row: the 4 bytes of row l
 * for octet o sit at [o][l], so a 512-bit load holds one octet of all 16
 * rows, each in its own 32-bit lane, and one broadcast of 4 activation bytes
 * meets all 16 rows in one vpdpbusd. Byte b of an octet holds element 8o+b
 * in its low nibble and 8o+4+b in its high one.
 */
#ifndef TIERMEM_KERNELS_REPACK_H
#define TIERMEM_KERNELS_REPACK_H

#include "kern.h"

#define R16 TM_REPACK_ROWS

/*
 * q4_K: eight sub-blocks of 32 (octets 4j..4j+3), each a 6-bit scale and
 * a 6-bit min. sc holds the scale whole, so the hot loop unpacks it with an
 * AND; the mins, needed once per block, are split between the top bits of sc
 * and the nibbles of mh. 64 + 128 + 64 bytes of header replace 16 x 16.
 */
typedef struct {
	uint16_t d[R16], dmin[R16];
	uint8_t sc[8][R16];	/* scale of sub-block j, row l | (its min & 3) << 6 */
	uint8_t mh[4][R16];	/* min >> 2 of sub-block 2p (low nibble) and 2p + 1 (high) */
	uint8_t qs[32][R16][4];
} blk_q4_K_r16;

/*
 * q6_K: sixteen sub-blocks of 16 (octets 2s, 2s+1) with int8 scales; the low
 * 4 bits of each code as q4_K_r16's qs, the top 2 bits in qh[s]: byte b of row
 * l holds, from bit 0 up, those of elements 16s+b, 16s+4+b, 16s+8+b, 16s+12+b
 * (the low and high nibble of octet 2s, then of octet 2s+1).
 */
typedef struct {
	uint16_t d[R16];
	int8_t sc[16][R16];
	uint8_t ql[32][R16][4];
	uint8_t qh[16][R16][4];
} blk_q6_K_r16;

/*
 * q8_0: the 32 codes of a block in 8 quads of 4 (elements 4k..4k+3 at
 * qs[k][l]), each plus 128 (code ^ 0x80): vpdpbusd takes the weights as its
 * unsigned operand against a broadcast of 4 signed activation bytes, and
 * 128 x the activations' sum comes off once per block for all 16 rows.
 */
typedef struct {
	uint16_t d[R16];
	uint8_t qs[8][R16][4];
} blk_q8_0_r16;

_Static_assert(sizeof(blk_q4_K_r16) == R16 * sizeof(blk_q4_K), "q4_K_r16 takes its rows' bytes");
_Static_assert(sizeof(blk_q8_0_r16) == R16 * sizeof(blk_q8_0), "q8_0_r16 takes its rows' bytes");
_Static_assert(sizeof(blk_q6_K_r16) == R16 * sizeof(blk_q6_K), "q6_K_r16 takes its rows' bytes");

/*
 * The kernels (same arguments as tm_dot_fn). Rows come in whole groups
 * first; a call's nrows % 16 last rows are the matrix's tail, in the GGML
 * layout, and go to the GGML type's kernel of the table in use.
 */
void tm_dot_q4_K_r16_ref(const void *w, size_t wstride, int nrows, int nblocks,
			 const void *x, size_t xstride, int nx, float *y, size_t ystride);
void tm_dot_q6_K_r16_ref(const void *w, size_t wstride, int nrows, int nblocks,
			 const void *x, size_t xstride, int nx, float *y, size_t ystride);
void tm_dot_q8_0_r16_ref(const void *w, size_t wstride, int nrows, int nblocks,
			 const void *x, size_t xstride, int nx, float *y, size_t ystride);
/* AVX2 (also the AVX-512 table without VNNI); perm: activations in TM_ACT_Q8_KP order */
void tm_dot_q4_K_r16_avx2(const void *w, size_t wstride, int nrows, int nblocks,
			  const void *x, size_t xstride, int nx, float *y, size_t ystride);
void tm_dot_q4_K_r16_avx2p(const void *w, size_t wstride, int nrows, int nblocks,
			   const void *x, size_t xstride, int nx, float *y, size_t ystride);
void tm_dot_q6_K_r16_avx2(const void *w, size_t wstride, int nrows, int nblocks,
			  const void *x, size_t xstride, int nx, float *y, size_t ystride);
void tm_dot_q8_0_r16_avx2(const void *w, size_t wstride, int nrows, int nblocks,
			  const void *x, size_t xstride, int nx, float *y, size_t ystride);
/* AVX-512 with VNNI; q4_K_r16 takes TM_ACT_Q8_KP activations there */
void tm_dot_q4_K_r16_vnni(const void *w, size_t wstride, int nrows, int nblocks,
			  const void *x, size_t xstride, int nx, float *y, size_t ystride);
void tm_dot_q6_K_r16_vnni(const void *w, size_t wstride, int nrows, int nblocks,
			  const void *x, size_t xstride, int nx, float *y, size_t ystride);
void tm_dot_q8_0_r16_vnni(const void *w, size_t wstride, int nrows, int nblocks,
			  const void *x, size_t xstride, int nx, float *y, size_t ystride);

/* The rows past the last whole group: the GGML type's kernel of the table in use. */
/* Where sub-block j of 32 sits in the activations (TM_ACT_Q8_KP swaps 1<->2 and 5<->6). */
static inline int tm_r16_act_sub(int j, int perm)
{
	if (!perm || (j & 3) == 0 || (j & 3) == 3)
		return j;
	return (j & 3) == 1 ? j + 1 : j - 1;
}

static inline void tm_r16_tail(int base, int full, const void *w, size_t wstride, int nrows, int nblocks,
			       const void *x, size_t xstride, int nx, float *y, size_t ystride)
{
	if (full < nrows)
		tm_kern()->dot[base]((const char *)w + (size_t)full * wstride, wstride, nrows - full, nblocks,
				     x, xstride, nx, y + full, ystride);
}

#endif
