// SPDX-License-Identifier: MIT
/* The AVX2 table: the 256-bit kernels of dot_simd256.h. */
#include "dot_simd256.h"
#include "repack.h"

const struct tm_kern tm_kern_avx2 = {
	.name = "avx2",
	.dot = {
		[TM_F32] = dot_f32, [TM_F16] = dot_f16, [TM_BF16] = dot_bf16,
		[TM_Q4_0] = dot_q4_0x2, [TM_Q8_0] = dot_q8_0x2,
		[TM_Q4_1] = dot_q4_1, [TM_Q5_0] = dot_q5_0, [TM_Q5_1] = dot_q5_1,
		[TM_Q2_K] = dot_q2_K, [TM_Q3_K] = dot_q3_K,
		[TM_Q4_K] = dot_q4_K, [TM_Q5_K] = dot_q5_K, [TM_Q6_K] = dot_q6_K,
		[TM_Q4_K_R16] = tm_dot_q4_K_r16_avx2, [TM_Q6_K_R16] = tm_dot_q6_K_r16_avx2,
		[TM_Q8_0_R16] = tm_dot_q8_0_r16_avx2,
		[TM_IQ4_XS] = dot_iq4_xs,
	},
	.quant_q8_0 = quant_q8_0_256,
	.quant_q8_K = quant_q8_K_256,
};
