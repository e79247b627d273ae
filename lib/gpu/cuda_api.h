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

#include "tiermem/experts.h"
#include "tiermem/gpu.h"

#define TMC_ABI (2002 + (int)sizeof(struct tm_model) + (int)sizeof(struct tm_layer) + \
		 (int)sizeof(struct tmc_host))
#define TMC_API_SYMBOL "tmc_api"

/* The weights of a layer the GPU pass knows, in one list for both sides. */
#define TMC_LAYER_WEIGHTS(X) X(attn_norm) X(wq) X(wk) X(wv) X(wo) X(q_norm) X(k_norm) X(ffn_norm) \
	X(gate) X(up) X(down) X(gate_inp) X(gate_exps) X(up_exps) X(down_exps)

/* What libtiermem lends the object for one context: the placement and the CPU half of the hybrid. */
struct tmc_host {
	/* each weight's enum tm_gpu_place, checked by tm_gpu_check_placement */
	const struct tm_override *ot;
	int n_ot;
	/* the routed experts on the CPU: tm_moe_experts_cpu on ctx (called from a CUDA host node) */
	void (*experts)(struct tm_ctx *ctx, int layer, const float *xb, const int *sel, const float *w, int n,
			float *out);
	struct tm_ctx *ctx;
	/*
	 * The VRAM expert cache (NULL: none): its bookkeeping, called from the
	 * object's host nodes through these (libtiermem's code, not the
	 * object's copy of it), for the layers whose routed experts are on the
	 * CPU or pcie.
	 */
	struct tm_xvram *xvram;
	void (*xstep)(struct tm_xvram *x, int l, const int *sel, int n, int *ids, struct tm_xvram_gather *g,
		      int *n_gather);
	void (*xset_copier)(struct tm_xvram *x, const struct tm_xvram_copier *c);
	const struct tm_xvram_layout *xlay;
	enum tm_xvram_miss xmiss;
};

struct tmc_api {
	int abi;
	const char *(*strerror)(void);
	int (*probe)(struct tm_gpu_info *info);
	/*
	 * Weights (those host->ot place in VRAM), KV cache of n_ctx and scratch
	 * for n_batch tokens into VRAM; pcie weights registered where they are.
	 */
	int (*ctx_create)(void **h, const struct tm_model *m, int n_ctx, int n_batch, const struct tmc_host *host);
	/*
	 * n <= n_batch tokens at positions pos0..; logits gets the last row, or
	 * all n rows with all; bytes[0] the weight bytes the kernels read from
	 * VRAM, bytes[1] over PCIe (the CPU half counts its own).
	 */
	int (*forward)(void *h, const int32_t *tokens, int n, int pos0, float *logits, int all,
		       uint64_t bytes[2]);
	void (*ctx_free)(void *h);
	int (*read_bench)(size_t bytes, int reps, double *gbps);
	/*
	 * Host-to-device reads of bytes of host memory at host, registered
	 * (pinned) for the measurement only: gbps[0] a kernel reading it in
	 * place (what -ot pcie does), gbps[1] cudaMemcpy into VRAM; medians.
	 */
	int (*pcie_bench)(void *host, size_t bytes, int reps, double gbps[2]);
};

typedef const struct tmc_api *(*tmc_api_fn)(void);

#endif
