/* SPDX-License-Identifier: MIT */
/*
 * What libtiermem-cuda.so exports to libtiermem (lib/gpu/gpu.c), as one
 * table of functions returned by tmc_api(). Both sides are built from the
 * same tree; abi guards against a stale object from another build.
 * Errors are negative errnos with the reason in the object's own tm_err
 * buffer, which strerror() returns.
 */
#ifndef TIERMEM_GPU_CUDA_API_H
#define TIERMEM_GPU_CUDA_API_H

#include <stdint.h>

#include "tiermem/gpu.h"

#define TMC_ABI (1000 + (int)sizeof(struct tm_model) + (int)sizeof(struct tm_layer))
#define TMC_API_SYMBOL "tmc_api"

struct tmc_api {
	int abi;
	const char *(*strerror)(void);
	int (*probe)(struct tm_gpu_info *info);
	/* Weights, KV cache of n_ctx and scratch for n_batch tokens into VRAM. */
	int (*ctx_create)(void **h, const struct tm_model *m, int n_ctx, int n_batch);
	/*
	 * n <= n_batch tokens at positions pos0..; logits gets the last row, or
	 * all n rows with all; *bytes the weight bytes the kernels read.
	 */
	int (*forward)(void *h, const int32_t *tokens, int n, int pos0, float *logits, int all,
		       uint64_t *bytes);
	void (*ctx_free)(void *h);
	int (*read_bench)(size_t bytes, int reps, double *gbps);
};

typedef const struct tmc_api *(*tmc_api_fn)(void);

#endif
