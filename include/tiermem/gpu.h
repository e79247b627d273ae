/* SPDX-License-Identifier: MIT */
/*
 * The GPU: a whole token on one CUDA device, every weight in VRAM.
 *
 * The CUDA code is a separate shared object, libtiermem-cuda.so (built by
 * `make` when nvcc exists, installed beside the tiermem binary), loaded with
 * dlopen the first time one of these functions is called. So neither
 * libtiermem nor tiermem links the CUDA runtime or driver: they run on a
 * machine with no GPU, no driver and no CUDA, and only a --gpu request fails
 * there, with a message naming what is missing. The object links the CUDA
 * runtime statically; it needs only the driver (libcuda.so.1) at run time.
 * TIERMEM_CUDA_LIB names another path for it (tests).
 */
#ifndef TIERMEM_GPU_H
#define TIERMEM_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "tiermem/model.h"

struct tm_gpu_info {
	char name[256];			/* "NVIDIA H200" */
	int cc_major, cc_minor;		/* compute capability */
	int n_sm;
	size_t vram_total, vram_free;
	int runtime_version, driver_version;	/* CUDA's encoding: 13000 is 13.0 */
};

/*
 * Is there a GPU to run on? 0 and *info, or -ENODEV with a one-line reason
 * (no libtiermem-cuda.so, no driver, no device, a driver older than the
 * runtime) in tm_strerror().
 */
int tm_gpu_probe(struct tm_gpu_info *info);

/*
 * Run c's forward passes on the GPU from now on: copy every weight of c's
 * model into VRAM and allocate the KV cache and scratch there. c's position
 * must be 0. Afterwards tm_forward evaluates on the GPU (its CPU buffers go
 * unused) and counts the VRAM weight bytes it reads in c->weight_bytes;
 * tm_ctx_free releases the GPU side. -ENODEV (no GPU), -ENOMEM (too little
 * VRAM: the message says how much is needed and free), -EOPNOTSUPP (a shape
 * or type the kernels lack), -EIO (a CUDA failure), each with a message.
 */
int tm_gpu_attach(struct tm_ctx *c);

/* For tm_forward and tm_ctx_free (lib/model/forward.c) only. */
int tm_gpu_forward(struct tm_ctx *c, const int32_t *tokens, int n, float *logits, int logits_all);
void tm_gpu_detach(struct tm_ctx *c);

/*
 * Device-memory read bandwidth: read a buffer of `bytes` reps times with a
 * plain streaming kernel; *gbps is the median of the reps. -ENODEV, -ENOMEM.
 */
int tm_gpu_read_bench(size_t bytes, int reps, double *gbps);

#endif
