// SPDX-License-Identifier: MIT
/*
 * The weight types the CUDA kernels decode, in one place: a compile-time
 * decoder per GGML type id (kernels/quant_decode.h) and the list that
 * switches from a run-time type to a kernel instantiation.
 */
#ifndef TIERMEM_KERNELS_CUDA_TYPES_CUH
#define TIERMEM_KERNELS_CUDA_TYPES_CUH

#include "kernels/quant_decode.h"
#include "kernels/quant_dot.h"

/* X(T) for every type id with a decoder: f32 f16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K iq4_xs bf16. */
#define TMC_FOR_TYPES(X) X(0) X(1) X(2) X(3) X(6) X(7) X(8) X(10) X(11) X(12) X(13) X(14) X(23) X(30)

/* A chunk of 8 elements in affine form (scale * v - min), by type id. */
template <int T>
__device__ __forceinline__ void tmc_dec8a(const char *row, int k8, float v[8], float ab[2])
{
	if constexpr (T == 0) tm_dec8a_f32(row, k8, v, ab);
	else if constexpr (T == 1) tm_dec8a_f16(row, k8, v, ab);
	else if constexpr (T == 2) tm_dec8a_q4_0(row, k8, v, ab);
	else if constexpr (T == 3) tm_dec8a_q4_1(row, k8, v, ab);
	else if constexpr (T == 6) tm_dec8a_q5_0(row, k8, v, ab);
	else if constexpr (T == 7) tm_dec8a_q5_1(row, k8, v, ab);
	else if constexpr (T == 8) tm_dec8a_q8_0(row, k8, v, ab);
	else if constexpr (T == 10) tm_dec8a_q2_K(row, k8, v, ab);
	else if constexpr (T == 11) tm_dec8a_q3_K(row, k8, v, ab);
	else if constexpr (T == 12) tm_dec8a_q4_K(row, k8, v, ab);
	else if constexpr (T == 13) tm_dec8a_q5_K(row, k8, v, ab);
	else if constexpr (T == 14) tm_dec8a_q6_K(row, k8, v, ab);
	else if constexpr (T == 23) tm_dec8a_iq4_xs(row, k8, v, ab);
	else {
		static_assert(T == 30, "a type without a decoder");
		tm_dec8a_bf16(row, k8, v, ab);
	}
}

/* X(T) for every type id with an integer block dot (kernels/quant_dot.h): the quantized ones. */
#define TMC_FOR_QTYPES(X) X(2) X(3) X(6) X(7) X(8) X(10) X(11) X(12) X(13) X(14) X(23)

/* Unit u (32 weights) of a row against a q8a block, by type id. */
template <int T>
__device__ __forceinline__ float tmc_qdot(const char *row, int u, const uint32_t xw[8], tm_q8a_meta xm)
{
	if constexpr (T == 2) return tm_qdot_q4_0(row, u, xw, xm);
	else if constexpr (T == 3) return tm_qdot_q4_1(row, u, xw, xm);
	else if constexpr (T == 6) return tm_qdot_q5_0(row, u, xw, xm);
	else if constexpr (T == 7) return tm_qdot_q5_1(row, u, xw, xm);
	else if constexpr (T == 8) return tm_qdot_q8_0(row, u, xw, xm);
	else if constexpr (T == 10) return tm_qdot_q2_K(row, u, xw, xm);
	else if constexpr (T == 11) return tm_qdot_q3_K(row, u, xw, xm);
	else if constexpr (T == 12) return tm_qdot_q4_K(row, u, xw, xm);
	else if constexpr (T == 13) return tm_qdot_q5_K(row, u, xw, xm);
	else if constexpr (T == 14) return tm_qdot_q6_K(row, u, xw, xm);
	else {
		static_assert(T == 23, "a type without a block dot");
		return tm_qdot_iq4_xs(row, u, xw, xm);
	}
}

/*
 * Element v of each lane of a warp (lane l: element l of a q8a block) into
 * that block: tm_q8a_block's arithmetic, so the host's tests describe it.
 * Every lane of the warp must call it.
 */
__device__ __forceinline__ void tmc_q8a_warp(float v, int8_t *qs, tm_q8a_meta *meta)
{
	int lane = threadIdx.x & 31;
	float amax = fabsf(v), d, id;

	for (int o = 16; o > 0; o /= 2)
		amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
	tm_q8a_scale(amax, &d, &id);
	int q = tm_qd_nearest(v * id), s = q;

	/* the sums of lanes 0..15 and 16..31, in lanes 0 and 16 */
	for (int o = 8; o > 0; o /= 2)
		s += __shfl_xor_sync(0xffffffffu, s, o);
	int s1 = __shfl_sync(0xffffffffu, s, 16);

	qs[lane] = (int8_t)q;
	if (lane == 0)
		*meta = tm_q8a_meta{ d, { (int16_t)s, (int16_t)s1 } };
}

/* Types whose chunks have a min (element = scale * q - min). */
template <int T>
constexpr bool tmc_has_min = T == 3 || T == 7 || T == 10 || T == 12 || T == 13;

/* Types whose chunks have a scale other than 1 (every quantized type). */
template <int T>
constexpr bool tmc_has_scale = !(T == 0 || T == 1 || T == 30);

/* Whether the kernels decode this type. */
static inline bool tmc_decodable(int type)
{
	switch (type) {
#define TMC_CASE(T) case T:
	TMC_FOR_TYPES(TMC_CASE)
#undef TMC_CASE
		return true;
	default:
		return false;
	}
}

#endif
