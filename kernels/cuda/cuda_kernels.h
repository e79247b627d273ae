/* SPDX-License-Identifier: MIT */
/*
 * The CUDA kernels' C interface: what a token needs to run entirely on the
 * GPU. Like the CPU kernels they take device pointers and shapes only and
 * know no model, file or tier; lib/cuda/ strings them into a forward pass.
 * Every function enqueues on `s` and returns at once: 0, -EINVAL for a type
 * or shape it does not handle, -EIO if the launch failed.
 *
 * Weights are decoded by kernels/quant_decode.h, the same code the CPU tests
 * check against the reference dequantizer; activations stay float (the CPU
 * rounds them to q8 for the quantized dot products), so results differ from
 * the CPU's by that rounding. tests/gpu/check_gpu.c measures by how much.
 */
#ifndef TIERMEM_KERNELS_CUDA_KERNELS_H
#define TIERMEM_KERNELS_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One weight matrix of a matvec launch: row r of matrix e at w + e*mat_stride + r*row_stride. */
struct tmc_mv_job {
	const void *w;
	size_t row_stride, mat_stride;
	int type, rows;
	float *y;
	size_t y_stride;	/* token (or pair) t's outputs at y + t*y_stride */
};

/*
 * Up to 3 matrices against the same inputs in one launch (q, k and v; gate
 * and up): y_t[r] = dot(row r, x_t) (+= with accumulate, the residual add).
 * Token t's input is x + t*x_stride, its outputs job.y + t*job.y_stride. Several
 * tokens (prefill) share each decoded weight chunk, 8 at a time.
 *
 * glu: jobs 0 and 1 are gate and up of equal shape and type, and job 0's y receives
 * silu(gate) * up (SwiGLU fused: neither product goes to memory).
 * ids (device memory, MoE experts): n is a count of (token, expert) pairs;
 * pair p uses matrix ids[p], input row p / x_div and output row p.
 * cols must be a multiple of 8, x 16-byte aligned and x_stride a multiple of 4.
 *
 * xq (device scratch, 16-byte aligned, TM_Q8A_BYTES(xq_rows * cols) bytes,
 * kernels/quant_dot.h) turns on the dp4a path where tmc_matvec_dp4a says
 * it applies: the launch first rounds its x rows to q8a (8-bit, a float
 * scale per 32) and the dot products are integer ones, as the CPU's are,
 * instead of float ones over decoded weights. NULL: the float path.
 */
struct tmc_mv {
	struct tmc_mv_job job[3];
	int n_jobs, cols, n;
	const float *x;
	size_t x_stride;
	int accumulate, glu;
	const int *ids;
	int x_div;
	void *xq;
	int xq_rows;
	int xq_ready;	/* xq holds x's rows already (tmc_rmsnorm_q8a wrote them): no rounding here */
};

int tmc_matvec(const struct tmc_mv *a, cudaStream_t s);
/*
 * 1 where tmc_matvec takes the dp4a path: xq given and big enough, one
 * token (or experts by ids; prefill's tiles stay float), cols a multiple of
 * 32, every job's type quantized and its matrix aligned for the block dots'
 * loads (tm_qdot_align); else 0.
 */
int tmc_matvec_dp4a(const struct tmc_mv *a);
/* Weight bytes one tmc_matvec reads (each matrix row once per launch; ids: once per pair). */
uint64_t tmc_matvec_bytes(const struct tmc_mv *a);

/* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w for n_rows rows of n floats; w may be NULL. */
int tmc_rmsnorm(float *out, const float *x, const float *w, int n_rows, int n, float eps, cudaStream_t s);
/*
 * The same, and out's rows rounded to q8a into xq as a dp4a matvec with
 * that xq and xq_rows would round them (the same bytes), so the matvecs
 * that read out next can skip that step (tmc_mv.xq_ready). n a multiple
 * of 32, n_rows <= xq_rows.
 */
int tmc_rmsnorm_q8a(float *out, const float *x, const float *w, int n_rows, int n, float eps, void *xq,
		    int xq_rows, cudaStream_t s);

/*
 * Positions pos0 .. pos0+n_tok-1 where *pos0 is in device memory (so one
 * captured graph serves every decode step). For each token t: the optional
 * per-head RMSNorm (q_norm/k_norm, qwen3), then RoPE with cs + t*n_rot
 * (tm_rope_table's layout) on q in place and on k_new, which goes with
 * v_new into row pos0+t of the caches.
 */
struct tmc_rope {
	int n_tok, n_head, n_head_kv, head_dim, n_rot, mode;	/* mode: enum tm_rope_mode */
	const int *pos0;
	const float *cs;
	float *q;
	size_t q_stride;
	const float *k_new, *v_new;
	size_t kv_new_stride;
	float *k_cache, *v_cache;	/* this layer's; rows of kv_stride floats */
	size_t kv_stride;
	const float *q_norm, *k_norm;	/* NULL: none */
	float eps;
};

int tmc_rope_store(const struct tmc_rope *a, cudaStream_t s);

/*
 * Causal attention over the caches, as tm_attention (kernels/ops.h): query t
 * at position *pos0 + t attends to rows [0, *pos0 + t]. scores: n_tok *
 * n_head * n_ctx floats of scratch.
 */
struct tmc_attn {
	int n_tok, n_head, n_head_kv, head_dim, n_ctx;
	const int *pos0;
	float scale;
	const float *q;
	size_t q_stride;
	const float *k, *v;
	size_t kv_stride;
	float *out;
	size_t out_stride;
	float *scores;
};

int tmc_attention(const struct tmc_attn *a, cudaStream_t s);

/*
 * MoE routing of n_tok rows of n_expert router logits, as llama.cpp does it:
 * softmax, the top k (the lower id on ties), weights renormalised to sum 1.
 * sel and w: n_tok * k each.
 */
int tmc_route(const float *logits, int n_tok, int n_expert, int k, int *sel, float *w, cudaStream_t s);

/* out[i] = silu(gate[i]) * up[i]: SwiGLU where gate and up differ in type (no fused glu). */
int tmc_swiglu(float *out, const float *gate, const float *up, size_t n, cudaStream_t s);

/* x[i] += y[i]: the CPU's expert sum joining the residual stream (the hybrid). */
int tmc_add(float *x, const float *y, size_t n, cudaStream_t s);

/* x[t] += sum over j of w[t*k + j] * yg[(t*k + j) * n], in order j = 0..k-1. */
int tmc_moe_combine(float *x, const float *yg, const float *w, int n_tok, int k, int n, cudaStream_t s);

/* x[t] = row tok[t] of the embedding table (any decodable type), tok in device memory. */
int tmc_embed(int type, const void *table, size_t row_bytes, const int *tok, int n_tok, int n,
	      float *x, cudaStream_t s);

/* Read bytes (a multiple of 16) of device memory once; sink gets a value derived from all of it. */
int tmc_read(const void *buf, size_t bytes, unsigned int *sink, cudaStream_t s);

/*
 * Copies listed in device memory: jobs[0..*n) (n in device memory too, at
 * most max), each src -> dst of bytes (any alignment; sources may be mapped
 * host memory). For copies whose list a graph's earlier node writes.
 */
struct tmc_copy {
	const void *src;
	void *dst;
	size_t bytes;
};

int tmc_gather(const struct tmc_copy *jobs, const int *n, int max, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
