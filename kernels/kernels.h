/* SPDX-License-Identifier: MIT */
/*
 * CPU kernels: matvec and friends over weights in GGML's block formats.
 * Kernels take pointers, shapes and a thread pool; they know no model, file,
 * device or tier. Weight pointers point straight into whatever mapping holds
 * the weights and are never copied.
 *
 * The type ids are GGML's (they are what a GGUF file stores), so a tensor's
 * type field can be passed through unchanged.
 */
#ifndef TIERMEM_KERNELS_H
#define TIERMEM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/pool.h"

enum tm_dtype {
	TM_F32 = 0,
	TM_F16 = 1,
	TM_Q4_0 = 2,
	TM_Q4_1 = 3,
	TM_Q5_0 = 6,
	TM_Q5_1 = 7,
	TM_Q8_0 = 8,
	TM_Q8_1 = 9,		/* activations only */
	TM_Q2_K = 10,
	TM_Q3_K = 11,
	TM_Q4_K = 12,
	TM_Q5_K = 13,
	TM_Q6_K = 14,
	TM_Q8_K = 15,		/* activations only */
	TM_IQ4_XS = 23,
	TM_BF16 = 30,
	TM_GGML_TYPES = 40,	/* ids below this are GGML's; unknown ones have no traits */
	/* interleaved-row layouts of GGML's types (below): never in a GGUF file */
	TM_Q4_K_R16 = 40,
	TM_Q6_K_R16 = 41,
	TM_Q8_0_R16 = 42,
	TM_DTYPE_MAX = 48,
};

/* Activation formats (q8_1, q8_K): no weight tensor has them. */
static inline int tm_dtype_act_only(int type)
{
	return type == TM_Q8_1 || type == TM_Q8_K;
}

struct tm_dtype_traits {
	const char *name;	/* GGML's name: "q4_K" */
	int block_elems;	/* elements per block */
	int block_bytes;	/* bytes per block */
};

/* NULL for a type id this build cannot handle. */
const struct tm_dtype_traits *tm_dtype_traits(int type);
/* The weight type named name ("q4_K", "q6_K_r16"), or -1. */
int tm_dtype_by_name(const char *name);
/* Bytes of one row of n elements; 0 if n is not a whole number of blocks. */
size_t tm_row_bytes(int type, int64_t n);
/* Whether a GGUF tensor may hold this type: a GGML weight type this build reads. */
static inline int tm_dtype_in_gguf(int type)
{
	return type >= 0 && type < TM_GGML_TYPES && !tm_dtype_act_only(type) && tm_dtype_traits(type);
}

/*
 * Interleaved-row layouts ("r16"): the blocks of TM_REPACK_ROWS consecutive
 * rows in one block column stored as one group block, so a vector lane holds
 * one row and one activation load feeds all of them, with the 6-bit scales
 * of q4_K rearranged so they unpack with two instructions instead of a dozen
 * (kernels/cpu/repack.h has the byte layouts). A group block takes exactly
 * the bytes its rows' blocks took, so a repacked matrix has the same size,
 * rows and stride as the GGUF's: group g of 16 rows is where rows 16g..16g+15
 * were, and a matrix's last rows % 16 rows stay in the GGUF layout where they
 * were. Matvec and matmul calls on a repacked type must start at a multiple
 * of TM_REPACK_ROWS rows of the matrix (they do: threads split on multiples
 * of 16 rows).
 */
#define TM_REPACK_ROWS 16
/* The repacked type of a GGML type (TM_Q4_K -> TM_Q4_K_R16), or -1 if it has none. */
int tm_repack_type(int type);
/* The GGML type a repacked type holds (TM_Q4_K_R16 -> TM_Q4_K); other types map to themselves. */
int tm_repack_base(int type);
/*
 * Rearrange rows (rows x cols of GGML type `type`, starting at a group
 * boundary of its matrix) in place into tm_repack_type(type), or back with
 * tm_unrepack (type: the repacked type). The rows past the last whole group
 * are left as they are. 0, -EINVAL for a type without a repacked form or a
 * bad shape, -ENOMEM.
 */
int tm_repack(int type, void *rows_data, int rows, int cols);
/*
 * Whether the layout pays by default for one stream (run, logits, bench
 * --decode, import): yes on the AVX-512 VNNI and AMX tables, no on the others.
 * Their q4_K_r16/q6_K_r16 kernels are the AVX2 ones (repack_avx2.c), which on
 * an AMD EPYC Zen 3 guest (AVX2 only, 2026-12-02) decoded slower than the GGML
 * AVX2 kernels: tiermem bench --decode --ctx 64 --gen 16 -t 2, --repack on |
 * off alternating twice, 2 GB Q4_K_M dense 70.8-75.7 % | 79.4-87.3 % of the
 * read ceiling, 4.2 GB Q4_K_M MoE 66.6-72.7 % | 81.8-85.3 % (prefetching
 * their codes into L1 at 4 or 8 KiB instead of L2 at 16 changed nothing
 * beyond the noise). r16 made that host's prefill faster (512 tokens of the
 * dense model, bench/decode, 18.9-21.6 tok/s against 17.1-17.4), which is
 * --repack on's to ask for. The AVX-512 table without VNNI runs the same
 * AVX2 r16 kernels; no such CPU was at hand to measure. On AMX CPUs it was the GGUF
 * layout until session 6, because r16 read DRAM slower (80-89 % of the read
 * ceiling against 90-94 %); the cause was the VNNI kernel spilling vectors
 * (Documentation/tiermem-infer.rst). Idle, after that fix (tiermem bench
 * --decode --repack off|on --ctx 64 --ctx 2048 --gen 16 -t 2, alternating
 * twice plus one more pair, load 1.2-1.8): the 4.2 GB Q4_K_M MoE 90.2-90.5 /
 * 85.5-88.0 % against 92.8-93.7 / 88.5-89.5 % for r16, the 2 GB Q4_K_M dense
 * a tie (93.3-94.0 / 89.2-91.2 % against 93.9-94.5 / 89.5-90.0 %). r16 also
 * makes AMX prefill add up in the matvec's order (test_repack), so run's
 * prefill and decode give a token the same bits, as serve's do.
 */
int tm_kernels_repack_default(void);
int tm_unrepack(int rtype, void *rows_data, int rows, int cols);

/* IEEE half and bfloat16 <-> float, portable. */
float tm_f16_to_f32(uint16_t h);
uint16_t tm_f32_to_f16(float f);
static inline float tm_bf16_to_f32(uint16_t h)
{
	union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
	return v.f;
}

/*
 * Which instruction set the dispatcher picked: "avx512-amx" (VNNI, and
 * prefill's matmul on AMX-INT8 tiles), "avx512" (with VNNI),
 * "avx512-novnni", "avx2" or "scalar".
 */
const char *tm_kernels_isa(void);
/*
 * Force an ISA (for tests and benchmarks): one of the names above, or
 * "avx512-vnni" (VNNI without AMX, prefill's matmul on vpdpbusd), or
 * "avx512-vnni-dot" (the same with prefill on the per-row dot kernels, for
 * before/after benches); "avx512" takes the best AVX-512 flavour
 * the CPU has. Returns 0, or -1 if the CPU lacks it. Not thread-safe against
 * running kernels. The environment variable TIERMEM_ISA forces one of these
 * names for a whole program (tests, benches); one the CPU lacks is ignored.
 */
int tm_kernels_force_isa(const char *isa);

/*
 * One matvec: y[r] = dot(row r of w, x) for r in [0, rows).
 * Row r starts at (const char *)w + r * row_stride; cols is a multiple of the
 * type's block_elems. x is float; the kernel quantizes it itself where the
 * type's dot product wants quantized activations (q8_0, q8_K).
 */
struct tm_matvec {
	int type;
	const void *w;
	size_t row_stride;
	int rows, cols;
	const float *x;
	float *y;
};

/*
 * Run several independent matvecs in one hand-off to the pool (q, k and v; gate
 * and up; the experts of one token), split so every thread streams about the
 * same number of weight bytes (a contiguous range each, in whole rows). Each
 * distinct x (pointer, cols, activation format) is quantized once per call.
 * A job whose type has no kernel, or whose cols is not a whole number of
 * blocks, gets NaN rows (validate types up front; this is only a backstop).
 */
void tm_matvec_batch(struct tm_pool *pool, const struct tm_matvec *jobs, int njobs);
/*
 * A gated FFN of n experts for one token in one hand-off: gate_up[2 p] and
 * gate_up[2 p + 1] (gate and up), then silu(gate) * up over the gate's output,
 * then down[p] on it: down[p].x must be gate_up[2 p].y, and the pair's rows
 * down[p].cols (else every row is NaN). The thread that runs a pair's last
 * rows writes its product and quantizes it; down rows wait for that, so the
 * downs stream on without a second hand-off and the product is not taken
 * serially. Bits equal tm_matvec_batch of the pairs, tm_swiglu, then
 * tm_matvec_batch of the downs.
 */
void tm_matvec_glu(struct tm_pool *pool, const struct tm_matvec *gate_up, const struct tm_matvec *down, int n);
void tm_matvec(struct tm_pool *pool, const struct tm_matvec *job);

/*
 * Batched prompt processing: Y[i][r] = dot(row r of w, X[i]) for i in [0, n).
 * X is n rows of cols floats (stride cols), Y is n rows of rows floats (stride rows).
 * Where the kernel table has a whole-batch kernel for the type (AMX tiles:
 * q8_0, q4_K, q5_K, q6_K from 8 tokens on, q4_K_r16 and q6_K_r16 from 12;
 * AVX-512 VNNI without AMX: gemm_vnni_avx512.c), each weight panel is
 * decoded once for the batch and a token's result does not depend on the
 * other tokens of the batch. The integer sums are the matvec kernels' and
 * only the order of float additions differs (a few ulps), except on AMX
 * with the interleaved-row types, whose order is the matvec kernels' too:
 * there the results equal n tm_matvec calls exactly. Otherwise threads
 * split the rows; each streams its rows in tiles that stay in L2 while
 * every token passes over them, 4 tokens per pass, and the results equal n
 * tm_matvec calls exactly.
 */
void tm_matmul(struct tm_pool *pool, int type, const void *w, size_t row_stride,
	       int rows, int cols, const float *X, int n, float *Y);
/*
 * tm_matmul that always equals n tm_matvec calls bit for bit (batched decode
 * and serve's prompts: a token's bits must not depend on its batch): the
 * dot kernels, or the whole-batch kernel where it is exact (AMX, r16).
 */
void tm_matmul_exact(struct tm_pool *pool, int type, const void *w, size_t row_stride,
		     int rows, int cols, const float *X, int n, float *Y);

/* Dequantize n elements (a multiple of block_elems) of one row. */
void tm_dequant_row(int type, const void *src, float *dst, int64_t n);

/*
 * Fill n elements (a multiple of block_elems) of a weight type with random
 * values for tests, benchmarks and synthetic models: random bytes in the
 * quantized codes, every scale a sane finite half, decoded values within about
 * +-scale. *seed advances, so successive calls give fresh data. Returns 0, or
 * -1 for a type it cannot fill.
 */
int tm_fill_random(int type, void *dst, int64_t n, uint64_t *seed, float scale);

#endif
