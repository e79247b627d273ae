/* SPDX-License-Identifier: MIT */
/*
 * Internal to the CPU kernels: GGML's block layouts, the per-ISA kernel
 * table and the helpers the scalar and SIMD files share.
 *
 * Dot products pair each weight type with the activation type llama.cpp
 * uses, so our arithmetic tracks its: q8_0, q4_0 and q5_0 weights with q8_0
 * activations, q4_1 and q5_1 with q8_1, the K-quants with q8_K activations,
 * f32/f16/bf16 with floats.
 * Within a quantized block the dot product is an exact integer sum; only the
 * float accumulation across blocks differs between ISAs.
 */
#ifndef TIERMEM_KERNELS_KERN_H
#define TIERMEM_KERNELS_KERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

/* The weight types' block layouts, shared with the GPU kernels. */
#include "kernels/quant_decode.h"

/* Activations for the K-quants: bsums[i] = sum of qs[16*i .. 16*i+15]. */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } blk_q8_K;

_Static_assert(sizeof(blk_q8_K) == 292, "q8_K layout");

/* iq4_xs: the 16 levels a 4-bit code stands for (GGML's iq4_nl values). */
static const int8_t tm_iq4nl_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

/* Activations for q4_1 and q5_1: q8_0 plus s = d * sum(qs), d before its f16 rounding. */
typedef struct { uint16_t d, s; int8_t qs[QK]; } blk_q8_1;

_Static_assert(sizeof(blk_q8_1) == 36, "q8_1 layout");

/* Most tokens one kernel call handles against the same weight rows. */
#define TM_NX_MAX 4

/*
 * y[t * ystride + r] = dot(row r, x_t) for r < nrows, t < nx (nx <= TM_NX_MAX).
 * Row r is at w + r * wstride and holds nblocks blocks; x_t is at
 * x + t * xstride in the weight type's activation format.
 */
typedef void (*tm_dot_fn)(const void *w, size_t wstride, int nrows, int nblocks,
			  const void *x, size_t xstride, int nx, float *y, size_t ystride);
/* Quantize n floats (a multiple of the block size) into activation blocks. */
typedef void (*tm_quant_fn)(const float *x, void *q, int64_t n);

struct tm_kern;

/*
 * A whole-batch matmul (tm_matmul's shapes, token t's results at
 * Y + t * ystride) for the types and batch sizes `takes` accepts; it needs
 * `scratch` bytes (any alignment) for nth threads. exact_r16: on an
 * interleaved-row type it takes whole groups of rows only (rows a multiple
 * of TM_REPACK_ROWS) and equals the table's dot kernels bit for bit there.
 */
struct tm_gemm {
	int exact_r16;
	int (*takes)(int type, int n);
	size_t (*scratch)(int type, int cols, int n, int nth);
	void (*run)(struct tm_pool *pool, const struct tm_kern *k, int type, const void *w, size_t row_stride,
		    int rows, int cols, const float *X, int n, float *Y, size_t ystride, void *scratch);
};

struct tm_kern {
	const char *name;
	tm_dot_fn dot[TM_DTYPE_MAX];
	tm_quant_fn quant_q8_0, quant_q8_K;
	/*
	 * Set where this table's q4_K/q5_K kernels take q8_K activations with
	 * sub-blocks 1<->2 and 5<->6 swapped (TM_ACT_Q8_KP), the order in
	 * which a 64-byte load of 4-bit codes yields them: no shuffles.
	 */
	tm_quant_fn quant_q8_Kp;
	/* prefill's matmul where this table has one of its own (NULL: the dot kernels, 4 tokens a pass) */
	const struct tm_gemm *gemm;
	/* 1 where its interleaved-row kernels decode faster than its GGML ones (tm_kernels_repack_default) */
	int repack;
};

/* 1 on CPUs that run a 256-bit instruction as two 128-bit halves (AMD Zen, Zen+) */
int tm_cpu_avx2_split(void);

/* An activation format private to the kernels: q8_K in the order above. */
#define TM_ACT_Q8_KP (TM_DTYPE_MAX + 1)

extern const struct tm_kern tm_kern_scalar;
extern const struct tm_kern tm_kern_avx2;
extern const struct tm_kern tm_kern_avx512;
extern const struct tm_kern tm_kern_avx512vnni;
extern const struct tm_kern tm_kern_avx512vnni_dot;
extern const struct tm_kern tm_kern_avx512amx;
extern const struct tm_gemm tm_gemm_amx, tm_gemm_vnni;

/* The reference quantizers (quant_ref.c); SIMD ones produce the same bytes. */
void tm_quant_q8_0_ref(const float *x, void *q, int64_t n);
void tm_quant_q8_1_ref(const float *x, void *q, int64_t n);
void tm_quant_q8_K_ref(const float *x, void *q, int64_t n);
/* Reorder q8_K blocks in place into TM_ACT_Q8_KP (the swap is its own inverse). */
void tm_q8_K_permute(void *q, int64_t n);

/*
 * matvec.c: quantize a matvec's activations on the calling thread before
 * the hand-off (1, the default) or share the work among the threads behind a
 * barrier (0). For benchmarks that compare the two.
 */
void tm_matvec_serial_quant(int on);

/* One-shot barrier for the threads of one pool run; yields after a while (threads may outnumber CPUs). */
void tm_barrier_wait(_Atomic int *arrived, int nth);

/* The table in use (dispatch.c). */
const struct tm_kern *tm_kern(void);

/* The activation format a weight type's dot product takes: TM_F32, TM_Q8_0, TM_Q8_1 or TM_Q8_K. */
static inline int tm_act_type(int type)
{
	switch (type) {
	case TM_Q4_0: case TM_Q5_0: case TM_Q8_0: case TM_Q8_0_R16: return TM_Q8_0;
	case TM_Q4_1: case TM_Q5_1: return TM_Q8_1;
	case TM_Q2_K: case TM_Q3_K: case TM_Q4_K: case TM_Q5_K: case TM_Q6_K: case TM_IQ4_XS:
	case TM_Q4_K_R16: case TM_Q6_K_R16:
		return TM_Q8_K;
	default: return TM_F32;
	}
}

/* The activation format weight type `type` takes under table k (may be TM_ACT_Q8_KP). */
static inline int tm_act_type_k(const struct tm_kern *k, int type)
{
	if (k->quant_q8_Kp && (type == TM_Q4_K || type == TM_Q5_K || type == TM_Q4_K_R16))
		return TM_ACT_Q8_KP;
	return tm_act_type(type);
}

/* The GGML type whose block size an activation format has. */
static inline int tm_act_base(int act)
{
	return act == TM_ACT_Q8_KP ? TM_Q8_K : act;
}

/*
 * Weights are read once per token, far ahead of use: software prefetch this
 * far ahead keeps enough misses in flight (cpu-facts: 2-3x better than the
 * hardware prefetcher alone at 10-30 instructions per cache line).
 */
#define TM_PREFETCH_AHEAD 8192
static inline void tm_prefetch_block(const void *p, int bytes)
{
	const char *c = (const char *)p + TM_PREFETCH_AHEAD;

	for (int o = 0; o < bytes; o += 64)
		__builtin_prefetch(c + o, 0, 3);
}

/*
 * The same into L2 (prefetcht1), 8 KiB ahead, for the kernels where that
 * streamed DRAM faster. One thread, each kernel alternating with the read
 * loop over its own 0.8 GB (medians of 9, this AMX KVM guest, load 4-9):
 * the VNNI q4_K_r16 kernel 0.68-0.83 of the read loop with prefetcht0 at
 * 8 KiB, 0.95-1.02 with prefetcht1 at 8-16 KiB (whole-model Q4_K_M decode
 * 80 % -> 96-103 %); GGML q6_K 0.76 -> 0.97-1.0 (AVX2 0.71 -> 0.85),
 * q5_K 0.69 -> 0.87 (AVX2 0.70 -> 0.76). q4_K (0.93 either way) and q8_0
 * (1.07 vs 0.99) keep tm_prefetch_block. The likely cause: an L1 prefetch
 * holds one of the core's few L1 fill buffers for the whole DRAM latency.
 * 8 rather than 16 KiB from an AMD Zen 5 guest (read ceiling 60-68 GB/s on
 * 2 threads), where whole-model decode at 64 positions, alternating, gave
 * the 2 GB Q4_K_M 78-80 % at 16 KiB, 81-86 % at 8, 77-82 % at 12, 80-84 %
 * at 4, and the 4 GB MoE 71-77 %, 79-84 %, 75-80 %, 60-78 %. -D
 * TM_PREFETCH_L2_AHEAD=N builds another distance, to measure it.
 */
#ifndef TM_PREFETCH_L2_AHEAD
#define TM_PREFETCH_L2_AHEAD 8192
#endif
/*
 * Set once by tm_kern(): on AMD Zen 5 (family 1Ah) the same prefetches into
 * L1 (prefetcht0) read DRAM faster than into L2: whole-model decode at 64
 * positions, alternating, the 2 GB Q4_K_M 98.8-107.5 % of the read ceiling
 * against 84.2-87.1 %, the 4 GB MoE 89.1-96.8 % against 88.4-95.5 % (tok/s
 * 55.7-60.5 against 41.1-50.1); bench/matvec from DRAM, 2 threads,
 * q4_K_r16 0.94 against 0.85 of the read loop. TIERMEM_PREFETCH=l1|l2
 * overrides it, to measure another CPU.
 */
extern int tm_prefetch_to_l1;

static inline void tm_prefetch_l2(const void *p)
{
	const char *c = (const char *)p + TM_PREFETCH_L2_AHEAD;

	if (tm_prefetch_to_l1)
		__builtin_prefetch(c, 0, 3);
	else
		__builtin_prefetch(c, 0, 2);
}

/*
 * One line as far again ahead, once per block of 2-3 KiB, in the VNNI r16
 * kernels that prefetch each line (tm_prefetch_l2): it gets the hardware
 * prefetcher going on each 4 KiB page before the line-by-line prefetches
 * reach it. AMD Zen 5, bench/matvec from DRAM, 2 threads: q4_K_r16 54.8-55.3
 * -> 59.5-60.7 GB/s, q6_K_r16 50.7-58.6 -> 61.5-65.4 (the read loop 57-66);
 * whole-model decode at 64 positions, alternating twice, the 2 GB Q4_K_M
 * 82.2 / 88.5 -> 92.7 / 95.3 % of the ceiling, the 4 GB MoE 79.3 / 77.0 ->
 * 96.3 / 88.6 %. The AVX2 r16 kernels gained nothing there (55.9-60.3
 * against 58.9-60.9 GB/s for q4_K_r16) and go without. Only Zen 5 was
 * measured.
 */
static inline void tm_prefetch_far(const void *p)
{
	__builtin_prefetch((const char *)p + 2 * TM_PREFETCH_L2_AHEAD, 0, 3);
}

static inline void tm_prefetch_block_l2(const void *p, int bytes)
{
	for (int o = 0; o < bytes; o += 64)
		tm_prefetch_l2((const char *)p + o);
}

/* Round to nearest, ties to even, for |v| < 2^22: what the SIMD converts do. */
static inline int tm_nearest_int(float v)
{
	float f = v + 12582912.f;
	int32_t i;

	memcpy(&i, &f, sizeof(i));
	return (i & 0x007fffff) - 0x00400000;
}

/* q4_K/q5_K scales: bytes 0..7 of out are the 8 scales, 8..15 the 8 mins. */
static inline void tm_kq_scales(const uint8_t *packed, uint32_t out[4])
{
	const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
	uint32_t u[3];

	memcpy(u, packed, 12);
	out[0] = u[0] & m6;
	out[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
	out[2] = u[1] & m6;
	out[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
}

/* q3_K's 16 six-bit scales, unpacked and with their offset of 32 taken off. */
static inline void tm_q3_K_scales(const uint8_t *packed, int8_t out[16])
{
	for (int k = 0; k < 16; k++)
		out[k] = (int8_t)tm_dq_q3_K_scale(packed, k);
}

#endif
