// SPDX-License-Identifier: MIT
/*
 * The integer block dots the GPU's dp4a matvec runs (kernels/quant_dot.h),
 * on the host, against the CPU's scalar reference kernels.
 *
 * Fed the CPU's own activation bytes (q8_0, q8_1 or q8_K, rewritten as q8a
 * blocks: the same int8s, the same scale), the block dots see the CPU's
 * integers. For q8_0, q4_0, q5_0 and iq4_xs the CPU applies the scales per
 * 32 weights in the same float expression, so the row sums must be equal
 * bit for bit. For the other K-quants the CPU sums the integers of a whole
 * 256-element block before its one float multiply, and q4_1/q5_1 take their
 * min through q8_1's f16-rounded s: there the bound is
 * |got - cpu| <= 2e-5 * sum |w_i x_i| (dequantized weights times the
 * activation as quantized), plus for q4_1/q5_1 half an f16 ulp of each
 * block's min term |m * s| (2^-11 of it): float rounding in another order
 * costs under 1e-6 of that sum over 1024 terms, one wrong integer in a
 * block about 1e-3. Then the whole GPU pipeline on the host: q8a quantization
 * (tm_q8a_block, the GPU's arithmetic) and the block dots, against a double
 * sum, with the same bound.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kern.h"
#include "kernels/quant_dot.h"
#include "tap.h"

#define N 1024
#define ROWS 6

static const int types[] = { TM_Q4_0, TM_Q4_1, TM_Q5_0, TM_Q5_1, TM_Q8_0, TM_Q2_K, TM_Q3_K,
			     TM_Q4_K, TM_Q5_K, TM_Q6_K, TM_IQ4_XS };

static int exact_type(int type)
{
	return type == TM_Q8_0 || type == TM_Q4_0 || type == TM_Q5_0 || type == TM_IQ4_XS;
}

/* The CPU's activation blocks for this type, as q8a: the same int8s and scales. */
static void cpu_act_as_q8a(int type, const float *x, int8_t *qs, tm_q8a_meta *meta)
{
	int act = tm_act_type(type);

	if (act == TM_Q8_K) {
		blk_q8_K b[N / QK_K];

		tm_quant_q8_K_ref(x, b, N);
		for (int u = 0; u < N / 32; u++) {
			const blk_q8_K *k = &b[u / 8];

			memcpy(qs + 32 * u, k->qs + 32 * (u % 8), 32);
			meta[u] = (tm_q8a_meta){ .d = k->d, .s = { k->bsums[2 * (u % 8)], k->bsums[2 * (u % 8) + 1] } };
		}
	} else {
		blk_q8_1 b1[N / QK];
		blk_q8_0 b0[N / QK];

		if (act == TM_Q8_1)
			tm_quant_q8_1_ref(x, b1, N);
		else
			tm_quant_q8_0_ref(x, b0, N);
		for (int u = 0; u < N / 32; u++) {
			const int8_t *q = act == TM_Q8_1 ? b1[u].qs : b0[u].qs;
			int s0 = 0, s1 = 0;

			memcpy(qs + 32 * u, q, 32);
			for (int i = 0; i < 16; i++) {
				s0 += q[i];
				s1 += q[16 + i];
			}
			meta[u] = (tm_q8a_meta){ .d = tm_f16_to_f32(act == TM_Q8_1 ? b1[u].d : b0[u].d),
						 .s = { (int16_t)s0, (int16_t)s1 } };
		}
	}
}

/* A row's dot product as the GPU sums it: the block dots in order. */
static float qdot_row(int type, const void *row, const int8_t *qs, const tm_q8a_meta *meta)
{
	float s = 0.f;

	for (int u = 0; u < N / 32; u++) {
		uint32_t xw[8];

		memcpy(xw, qs + 32 * u, 32);
		s += tm_qdot(type, row, u, xw, meta[u]);
	}
	return s;
}

/* sum of deq(row) * (d * q) in double, and sum of the magnitudes. */
static void ref_row(const float *deq, const int8_t *qs, const tm_q8a_meta *meta, double *ref, double *mag)
{
	*ref = *mag = 0;
	for (int i = 0; i < N; i++) {
		double t = (double)deq[i] * ((double)meta[i / 32].d * qs[i]);

		*ref += t;
		*mag += fabs(t);
	}
}

/* q4_1/q5_1: half an f16 ulp of each block's min term m * s, s = d * sum(x int8s) as q8_1 holds it. */
static double min_ulp(int type, const char *row, const float *x)
{
	blk_q8_1 b[N / QK];
	size_t bb = (size_t)tm_dtype_traits(type)->block_bytes;
	double e = 0;

	if (type != TM_Q4_1 && type != TM_Q5_1)
		return 0;
	tm_quant_q8_1_ref(x, b, N);
	for (int u = 0; u < N / QK; u++) {
		const blk_q4_1 *w = (const void *)(row + u * bb);	/* d and m lead q5_1's block too */

		e += fabs((double)tm_f16_to_f32(w->m) * tm_f16_to_f32(b[u].s)) * 0x1p-11;
	}
	return e;
}

static void check_type(int type, uint64_t *rng)
{
	const char *name = tm_dtype_traits(type)->name;
	size_t rb = tm_row_bytes(type, N);
	int nb = N / tm_dtype_traits(type)->block_elems;
	void *w = malloc(rb * ROWS);
	float *x = malloc(sizeof(float) * N), *deq = malloc(sizeof(float) * N);
	int8_t *qs = malloc(N);
	tm_q8a_meta *meta = malloc(sizeof(tm_q8a_meta) * (N / 32));
	double worst = 0, worst2 = 0;
	int differ = 0;

	if (!w || !x || !deq || !qs || !meta || tm_fill_random(type, w, (int64_t)N * ROWS, rng, 1.0f) ||
	    tm_fill_random(TM_F32, x, N, rng, 2.0f)) {
		tap_ok(0, "%s: setup", name);
		goto out;
	}
	cpu_act_as_q8a(type, x, qs, meta);
	for (int r = 0; r < ROWS; r++) {
		const char *row = (const char *)w + r * rb;
		void *xa = malloc((size_t)tm_row_bytes(tm_act_type(type), N));
		float cpu, got = qdot_row(type, row, qs, meta);
		double ref, mag;

		/* the CPU's own path: its quantizer, its scalar dot */
		if (tm_act_type(type) == TM_Q8_K)
			tm_quant_q8_K_ref(x, xa, N);
		else if (tm_act_type(type) == TM_Q8_1)
			tm_quant_q8_1_ref(x, xa, N);
		else
			tm_quant_q8_0_ref(x, xa, N);
		tm_kern_scalar.dot[type](row, rb, 1, nb, xa, 0, 1, &cpu, 1);
		free(xa);
		tm_dequant_row(type, row, deq, N);
		ref_row(deq, qs, meta, &ref, &mag);
		differ += memcmp(&got, &cpu, sizeof(float)) != 0;
		worst = fmax(worst, isnan(got) ? INFINITY : fabs((double)got - cpu) / (2e-5 * mag + min_ulp(type, row, x)));
	}
	if (exact_type(type))
		tap_ok(!differ, "%s: block dots on the CPU's activations equal the scalar kernel bit for bit (%d of %d rows differ)",
		       name, differ, ROWS);
	else
		tap_ok(worst <= 1, "%s: block dots on the CPU's activations within the bound of the scalar kernel (worst %.3g of it)",
		       name, worst);

	/* the GPU's pipeline on the host: its quantizer, its block dots, against a double sum */
	for (int u = 0; u < N / 32; u++)
		tm_q8a_block(x + 32 * u, qs + 32 * u, &meta[u]);
	for (int r = 0; r < ROWS; r++) {
		const char *row = (const char *)w + r * rb;
		float got = qdot_row(type, row, qs, meta);
		double ref, mag;

		tm_dequant_row(type, row, deq, N);
		ref_row(deq, qs, meta, &ref, &mag);
		worst2 = fmax(worst2, isnan(got) ? INFINITY : fabs(got - ref) / (2e-5 * mag));
	}
	tap_ok(worst2 <= 1, "%s: q8a quantization and block dots against a double sum (worst %.3g of the bound)", name,
	       worst2);
out:
	free(w);
	free(x);
	free(deq);
	free(qs);
	free(meta);
}

/* tm_q8a_block gives the CPU's q8_0 int8s, an unrounded scale and the half sums. */
static void check_quant(uint64_t *rng)
{
	float x[N];
	blk_q8_0 b[N / QK];
	int8_t qs[N];
	tm_q8a_meta meta[N / 32];
	int bad = 0;

	tm_fill_random(TM_F32, x, N, rng, 3.0f);
	for (int i = 0; i < 32; i++)	/* a zero block: scale 0, int8s 0 */
		x[64 + i] = 0.f;
	tm_quant_q8_0_ref(x, b, N);
	for (int u = 0; u < N / 32; u++) {
		float amax = 0.f;
		int s0 = 0, s1 = 0;

		tm_q8a_block(x + 32 * u, qs + 32 * u, &meta[u]);
		for (int i = 0; i < 32; i++) {
			amax = fmaxf(amax, fabsf(x[32 * u + i]));
			if (i < 16)
				s0 += qs[32 * u + i];
			else
				s1 += qs[32 * u + i];
		}
		bad += memcmp(qs + 32 * u, b[u].qs, 32) != 0;
		bad += meta[u].d != amax / 127.f || meta[u].s[0] != s0 || meta[u].s[1] != s1;
	}
	tap_ok(!bad && meta[2].d == 0.f, "q8a quantizer: the CPU's q8_0 int8s, float scale, half sums (%d blocks wrong)",
	       bad);
}

/* The host's dp4a emulation on edge values. */
static void check_dp4a(void)
{
	int ok = tm_dp4a(0x80808080u, 0x80808080u, 0) == 4 * 16384 && tm_dp4a(0x7f7f7f7fu, 0x81818181u, 5) == 5 - 4 * 16129 &&
		 tm_dp4a(0x00000102u, 0x000003ffu, 0) == -2 + 3;

	tap_ok(ok, "dp4a emulation: signed bytes, accumulator");
}

int main(void)
{
	uint64_t rng = 7;
	int wrong = 0;

	check_dp4a();
	check_quant(&rng);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		check_type(types[i], &rng);
	for (int t = 0; t < TM_GGML_TYPES; t++)
		if (tm_qdot_has(t) != (tm_dtype_in_gguf(t) && t != TM_F32 && t != TM_F16 && t != TM_BF16))
			wrong++;
	tap_ok(!wrong, "tm_qdot_has lists exactly the quantized weight types (%d ids wrong)", wrong);
	/* the GPU's loads need every block of an aligned row aligned as well */
	wrong = 0;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		wrong += tm_dtype_traits(types[i])->block_bytes % tm_qdot_align(types[i]) != 0;
	tap_ok(!wrong, "every block size is a multiple of its type's load alignment (%d not)", wrong);
	return tap_done();
}
