// SPDX-License-Identifier: MIT
/*
 * The shared block decoders (kernels/quant_decode.h), which the CUDA kernels
 * run on the GPU, against the CPU's reference dequantizer: bit-for-bit equal
 * on the host, for every type, on random blocks, at every chunk of a row.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kern.h"
#include "kernels/quant_decode.h"
#include "tap.h"

static const int types[] = { TM_F32, TM_F16, TM_BF16, TM_Q4_0, TM_Q4_1, TM_Q5_0, TM_Q5_1, TM_Q8_0,
			     TM_Q2_K, TM_Q3_K, TM_Q4_K, TM_Q5_K, TM_Q6_K, TM_IQ4_XS };

static void check_type(int type, uint64_t *rng)
{
	const int64_t n = 4 * 256;
	size_t bytes = tm_row_bytes(type, n);
	void *row = malloc(bytes);
	float *ref = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
	int64_t bad = 0, nan = 0;

	if (!row || !ref || !got || tm_fill_random(type, row, n, rng, 2.0f)) {
		tap_ok(0, "%s: setup", tm_dtype_traits(type)->name);
		goto out;
	}
	tm_dequant_row(type, row, ref, n);
	/* poison, so a chunk the decoder skipped cannot pass as zeros */
	for (int64_t i = 0; i < n; i++)
		got[i] = NAN;
	for (int64_t k8 = 0; k8 < n / 8; k8++)
		if (tm_dec8(type, row, k8, got + 8 * k8))
			bad++;
	for (int64_t i = 0; i < n; i++) {
		nan += isnan(ref[i]);
		if (memcmp(&ref[i], &got[i], sizeof(float)))
			bad++;
	}
	tap_ok(bad == 0 && nan == 0, "%s: 8-element decoder equals tm_dequant_row bit for bit (%lld of %lld differ)",
	       tm_dtype_traits(type)->name, (long long)bad, (long long)n);
out:
	free(row);
	free(ref);
	free(got);
}

/* The byte permute's emulation, and the iq4_nl lookup built on it against the CPU's table. */
static void check_prmt(void)
{
	int bad = 0;

	for (uint32_t c = 0; c < 65536; c++) {	/* every 4 codes of 4 bits */
		uint32_t q = (c & 15) | (c >> 4 & 15) << 8 | (c >> 8 & 15) << 16 | (c >> 12 & 15) << 24;
		/* the high nibbles hold noise that the lookup must ignore */
		uint32_t lv = tm_dq_iq4nl4(q | 0xa0b0c0d0u);

		for (int i = 0; i < 4; i++)
			bad += (int8_t)(lv >> 8 * i) != tm_iq4nl_values[q >> 8 * i & 15];
	}
	bad += tm_dq_prmt(0x03020100u, 0x07060504u, 0x4711) != 0x04070101u;
	tap_ok(!bad, "byte permute emulation and the iq4_nl lookup of all 65536 code quadruples (%d wrong)", bad);
}

int main(void)
{
	uint64_t rng = 16;
	float o[8] = { 0 };

	check_prmt();

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		check_type(types[i], &rng);
	tap_ok(tm_dec8(TM_Q8_K, o, 0, o) == -1 && tm_dec8(99, o, 0, o) == -1,
	       "types without a weight decoder are refused");
	return tap_done();
}
