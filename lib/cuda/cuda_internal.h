/* SPDX-License-Identifier: MIT */
/* Inside libtiermem-cuda.so: the functions behind its tmc_api table. */
#ifndef TIERMEM_CUDA_INTERNAL_H
#define TIERMEM_CUDA_INTERNAL_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "tiermem/gpu.h"

/* 0, or -EIO (-ENOMEM for an allocation) with "what: CUDA's reason" recorded. */
int tmc_check(cudaError_t e, const char *what);

int tmc_probe(struct tm_gpu_info *info);
struct tmc_host;
int tmc_ctx_create(void **h, const struct tm_model *m, int n_ctx, int n_batch, const struct tmc_host *host);
int tmc_forward(void *h, const int32_t *tokens, int n, int pos0, float *logits, int all, uint64_t bytes[2]);
void tmc_ctx_free(void *h);
int tmc_read_bench(size_t bytes, int reps, double *gbps);
int tmc_pcie_bench(void *host, size_t bytes, int reps, double gbps[2]);

#endif
