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
#include "tiermem/plan.h"

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
 * tm_ctx_free releases the GPU side; pcie_bytes counts what the GPU read
 * over PCIe (tm_gpu_attach_ot). -ENODEV (no GPU), -ENOMEM (too little
 * VRAM: the message says how much is needed and free), -EOPNOTSUPP (a shape
 * or type the kernels lack), -EIO (a CUDA failure), each with a message.
 */
int tm_gpu_attach(struct tm_ctx *c);

/*
 * Where the GPU forward pass takes a weight from: llama.cpp's -ot
 * REGEX=PLACE (--override-tensor), the first matching rule winning.
 *
 *	VRAM	copied into VRAM (every weight without a rule)
 *	CPU	llama.cpp's spelling of "left in host memory and computed by the
 *		CPU": the hybrid of huge MoE models, for routed experts only
 *		(ffn_gate_exps, ffn_up_exps, ffn_down_exps, all three of a layer
 *		alike); per MoE layer the GPU routes, the hidden state goes to
 *		the CPU, tm_moe_experts_cpu runs there, the sum comes back
 *	pcie	left in host memory, pinned (cudaHostRegister), and read by the
 *		GPU in place over PCIe; the mapping must be long-term pinnable
 *		(tm_mapping_pinnable: fsdax files are not)
 */
enum tm_gpu_place {
	TM_GPU_VRAM,
	TM_GPU_CPU,
	TM_GPU_PCIE,
};

/* "VRAM", "CPU", "pcie" -> enum tm_gpu_place; -1 for anything else. */
int tm_gpu_place_parse(const char *s);
/* The place of the weight called name under the rules. */
enum tm_gpu_place tm_gpu_place_of(const struct tm_override *ot, int n_ot, const char *name);
/*
 * Check the rules against m before a GPU is touched: CPU only for routed
 * experts and all three of a layer's alike, pcie only on pinnable mappings,
 * every place name known. 0, or -EINVAL / -EOPNOTSUPP with one line.
 */
int tm_gpu_check_placement(const struct tm_model *m, const struct tm_override *ot, int n_ot);
/* tm_gpu_attach with -ot rules (ot is read during the call only). */
int tm_gpu_attach_ot(struct tm_ctx *c, const struct tm_override *ot, int n_ot);
/*
 * ... and an expert cache in VRAM (tiermem/experts.h, "The cache in VRAM")
 * for the routed experts the rules leave in host memory, all of them on
 * the CPU or all on pcie, as x's miss mode says (-EINVAL otherwise, or when
 * every expert is in VRAM). x must outlive the context's GPU side (free it
 * after tm_ctx_free); with CPU misses it becomes c's expert hook.
 */
struct tm_xvram;
int tm_gpu_attach_xvram(struct tm_ctx *c, const struct tm_override *ot, int n_ot, struct tm_xvram *x);

/* For tm_forward and tm_ctx_free (lib/model/forward.c) only. */
int tm_gpu_forward(struct tm_ctx *c, const int32_t *tokens, int n, float *logits, int logits_all);
void tm_gpu_detach(struct tm_ctx *c);

/*
 * Device-memory read bandwidth: read a buffer of `bytes` reps times with a
 * plain streaming kernel; *gbps is the median of the reps. -ENODEV, -ENOMEM.
 */
int tm_gpu_read_bench(size_t bytes, int reps, double *gbps);

/*
 * Host-to-device read bandwidth of the first bytes of mapping m (the pcie
 * tier), pinned for the measurement only: *in_place is a CUDA kernel
 * reading the pinned pages where they are (what -ot REGEX=pcie does),
 * *copy is cudaMemcpy into VRAM (the copy engines); medians of reps.
 * -EOPNOTSUPP for a mapping that cannot be pinned (tm_mapping_pinnable),
 * -ENODEV without a GPU, -ENOMEM, -EIO.
 */
struct tm_mapping;
int tm_gpu_pcie_bench(const struct tm_mapping *m, size_t bytes, int reps, double *in_place, double *copy);

#endif
