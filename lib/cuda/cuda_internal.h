/* SPDX-License-Identifier: MIT */
/* Inside libtiermem-cuda.so: the functions behind its tmc_api table. */
#ifndef TIERMEM_CUDA_INTERNAL_H
#define TIERMEM_CUDA_INTERNAL_H

#include <stddef.h>
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

/* The VRAM expert cache's device side (lib/cuda/xcache.c). */
struct tmc_xc;
/* Its VRAM: the slot arena. */
size_t tmc_xc_vram(const struct tmc_host *host);
/* dev_of: a pinned host address's device address (pcie experts), arg its first argument. */
int tmc_xc_create(struct tmc_xc **out, const struct tm_model *m, const struct tmc_host *host, int n_batch,
		  const char *(*dev_of)(void *arg, const void *host), void *dev_arg);
void tmc_xc_free(struct tmc_xc *xc);
/*
 * Layer l's n rows, routed (sel, selw) from the normed input xb (device
 * memory): enqueue on st the host node that places each pair, the copies of
 * its answer and (pcie) the gathers; then tmc_xc_ids names each pair's slot
 * of the arena, whose matrix i starts at tmc_xc_w(xc, i), slots
 * tmc_xc_slot_bytes apart.
 */
int tmc_xc_resolve(struct tmc_xc *xc, int l, int n, const int *sel, const float *selw, const float *xb,
		   cudaStream_t st);
/* The rows of the call about to run (a replayed graph's host nodes read it): set before every launch. */
void tmc_xc_batch(struct tmc_xc *xc, int n);
const int *tmc_xc_ids(const struct tmc_xc *xc);
const char *tmc_xc_w(const struct tmc_xc *xc, int i);
size_t tmc_xc_slot_bytes(const struct tmc_xc *xc);
/* cpu misses: their sum (n rows), computed by the host node, into dst on st. */
int tmc_xc_cpu_sum(struct tmc_xc *xc, float *dst, int n, cudaStream_t st);
/* After a forward call: add the weight bytes its host nodes counted (VRAM, PCIe); -EIO if a copy failed. */
int tmc_xc_take(struct tmc_xc *xc, uint64_t bytes[2]);

#endif
