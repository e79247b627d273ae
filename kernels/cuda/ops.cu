// SPDX-License-Identifier: MIT
/*
 * The small operations of a token on the GPU: RMSNorm, RoPE with the KV-cache
 * store, attention, MoE routing and combine, embedding rows, and a read loop
 * for the bandwidth figure. Each follows its CPU counterpart in
 * kernels/cpu/ops.c and lib/model/forward.c, where the numerics matter
 * (sums of squares in double, softmax with the max subtracted).
 */
#include <cerrno>
#include <cfloat>
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/types.cuh"

namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;

__device__ __forceinline__ double warp_sum_d(double v)
{
	for (int o = kWarp / 2; o > 0; o /= 2)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ __forceinline__ float warp_max(float v)
{
	for (int o = kWarp / 2; o > 0; o /= 2)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it. */
__device__ double block_sum_d(double v)
{
	__shared__ double part[32];
	int w = threadIdx.x / kWarp, nw = blockDim.x / kWarp;

	v = warp_sum_d(v);
	__syncthreads();
	if (threadIdx.x % kWarp == 0)
		part[w] = v;
	__syncthreads();
	v = 0;
	for (int i = 0; i < nw; i++)
		v += part[i];
	return v;
}

__device__ float block_max(float v)
{
	__shared__ float part[32];
	int w = threadIdx.x / kWarp, nw = blockDim.x / kWarp;

	v = warp_max(v);
	__syncthreads();
	if (threadIdx.x % kWarp == 0)
		part[w] = v;
	__syncthreads();
	v = -INFINITY;
	for (int i = 0; i < nw; i++)
		v = fmaxf(v, part[i]);
	return v;
}

/*
 * qs (the dp4a matvec's q8a, rows of n, its metas at meta): also round the
 * output to q8a, each warp the 32 consecutive elements it just wrote (n a
 * multiple of 32, so every warp's lanes stay together).
 */
__global__ void k_rmsnorm(float *out, const float *x, const float *w, int n, float eps, int8_t *qs, tm_q8a_meta *meta)
{
	const float *xr = x + (size_t)blockIdx.x * n;
	float *o = out + (size_t)blockIdx.x * n;
	double ss = 0;
	float scale;

	for (int i = threadIdx.x; i < n; i += blockDim.x)
		ss += (double)(xr[i] * xr[i]);
	ss = block_sum_d(ss);
	scale = 1.0f / sqrtf((float)(ss / n) + eps);
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float v = w ? xr[i] * scale * w[i] : xr[i] * scale;

		o[i] = v;
		if (qs) {
			size_t e = (size_t)blockIdx.x * n + i;

			tmc_q8a_warp(v, qs + (e & ~(size_t)31), meta + e / 32);
		}
	}
}

/* One warp per head of one token: norm (optional), then rotate the pairs this lane owns. */
__device__ void norm_rope_head(float *p, const float *src, const float *nw, const float *cs, int hd, int n_rot,
			       int mode, float eps)
{
	int lane = threadIdx.x % kWarp, half = n_rot / 2;
	float scale = 1.f;

	if (nw) {
		double ss = 0;

		for (int i = lane; i < hd; i += kWarp)
			ss += (double)(src[i] * src[i]);
		ss = warp_sum_d(ss);
		scale = 1.0f / sqrtf((float)(ss / hd) + eps);
	}
	for (int i = lane; i < hd; i += kWarp)
		p[i] = nw ? src[i] * scale * nw[i] : src[i];
	__syncwarp();
	for (int i = lane; i < half; i += kWarp) {
		int i0 = mode == 2 ? i : 2 * i, i1 = mode == 2 ? i + half : 2 * i + 1;
		float c = cs[2 * i], s = cs[2 * i + 1], a = p[i0], b = p[i1];

		p[i0] = a * c - b * s;
		p[i1] = a * s + b * c;
	}
}

__global__ void k_rope_store(const tmc_rope a)
{
	int t = blockIdx.x, w = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
	size_t pos = (size_t)*a.pos0 + t;
	const float *cs = a.cs + (size_t)t * a.n_rot;
	int hd = a.head_dim;

	for (int h = w; h < a.n_head + a.n_head_kv; h += nw) {
		if (h < a.n_head) {
			float *q = a.q + t * a.q_stride + (size_t)h * hd;

			norm_rope_head(q, q, a.q_norm, cs, hd, a.n_rot, a.mode, a.eps);
		} else {
			int g = h - a.n_head;

			norm_rope_head(a.k_cache + pos * a.kv_stride + (size_t)g * hd,
				       a.k_new + t * a.kv_new_stride + (size_t)g * hd, a.k_norm, cs, hd, a.n_rot,
				       a.mode, a.eps);
		}
	}
	for (int i = threadIdx.x; i < a.n_head_kv * hd; i += blockDim.x)
		a.v_cache[pos * a.kv_stride + i] = a.v_new[t * a.kv_new_stride + i];
}

/*
 * Block (head h, query t). Scores: one thread per cached position, its key
 * row read with 16-byte loads (independent loads in flight, no per-position
 * reductions). Softmax over the block. Output: the block's threads split
 * into head_dim columns times `parts` slices of the positions, each slice
 * summed with several loads in flight, the slices added in shared memory.
 */
__global__ void k_attention(const tmc_attn a)
{
	extern __shared__ float sh[];	/* q: head_dim floats, then the slices' partial sums */
	float *qs = sh, *part = sh + a.head_dim;
	int h = blockIdx.x, t = blockIdx.y, hd = a.head_dim;
	int g = h / (a.n_head / a.n_head_kv);
	int len = *a.pos0 + t + 1;
	const float *q = a.q + t * a.q_stride + (size_t)h * hd;
	float *s = a.scores + ((size_t)t * a.n_head + h) * a.n_ctx;
	float max, inv;
	double sum = 0;

	for (int i = threadIdx.x; i < hd; i += blockDim.x)
		qs[i] = q[i];
	__syncthreads();
	for (int p = threadIdx.x; p < len; p += blockDim.x) {
		const float *k = a.k + (size_t)p * a.kv_stride + (size_t)g * hd;
		float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
		int i = 0;

		if ((hd & 3) == 0) {
			for (; i < hd; i += 4) {
				float4 kv = *reinterpret_cast<const float4 *>(k + i);

				d0 += qs[i] * kv.x;
				d1 += qs[i + 1] * kv.y;
				d2 += qs[i + 2] * kv.z;
				d3 += qs[i + 3] * kv.w;
			}
		}
		for (; i < hd; i++)
			d0 += qs[i] * k[i];
		s[p] = ((d0 + d1) + (d2 + d3)) * a.scale;
	}
	__syncthreads();
	max = -INFINITY;
	for (int p = threadIdx.x; p < len; p += blockDim.x)
		max = fmaxf(max, s[p]);
	max = block_max(max);
	for (int p = threadIdx.x; p < len; p += blockDim.x) {
		float e = expf(s[p] - max);

		s[p] = e;
		sum += e;
	}
	sum = block_sum_d(sum);	/* its barriers also publish the exponentials */
	inv = (float)(1.0 / sum);
	int parts = blockDim.x >= hd ? blockDim.x / hd : 1;

	for (int d0 = 0; d0 < hd; d0 += blockDim.x / parts) {
		int d = d0 + threadIdx.x % (blockDim.x / parts), sl = threadIdx.x / (blockDim.x / parts);
		float acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;

		if (d < hd && sl < parts) {
			const float *v = a.v + (size_t)g * hd + d;
			int p = sl;

			for (; p + 3 * parts < len; p += 4 * parts) {
				acc0 += s[p] * v[(size_t)p * a.kv_stride];
				acc1 += s[p + parts] * v[(size_t)(p + parts) * a.kv_stride];
				acc2 += s[p + 2 * parts] * v[(size_t)(p + 2 * parts) * a.kv_stride];
				acc3 += s[p + 3 * parts] * v[(size_t)(p + 3 * parts) * a.kv_stride];
			}
			for (; p < len; p += parts)
				acc0 += s[p] * v[(size_t)p * a.kv_stride];
			part[threadIdx.x] = (acc0 + acc1) + (acc2 + acc3);
		}
		__syncthreads();
		if (d < hd && sl == 0) {
			float o = 0;

			for (int k = 0; k < parts; k++)
				o += part[threadIdx.x + k * (blockDim.x / parts)];
			a.out[t * a.out_stride + (size_t)h * hd + d] = o * inv;
		}
		__syncthreads();
	}
}

/* One warp per token; probabilities in shared memory (n_expert floats). */
__global__ void k_route(const float *logits, int n_expert, int k, int *sel, float *wout)
{
	extern __shared__ float pr[];
	const float *l = logits + (size_t)blockIdx.x * n_expert;
	int lane = threadIdx.x;
	float max = -INFINITY;
	double sum = 0, wsum = 0;

	for (int e = lane; e < n_expert; e += kWarp)
		max = fmaxf(max, l[e]);
	max = warp_max(max);
	for (int e = lane; e < n_expert; e += kWarp) {
		pr[e] = expf(l[e] - max);
		sum += pr[e];
	}
	sum = warp_sum_d(sum);
	__syncwarp();
	for (int e = lane; e < n_expert; e += kWarp)
		pr[e] *= (float)(1.0 / sum);
	__syncwarp();
	for (int j = 0; j < k; j++) {
		float best = -1.f;
		int bi = n_expert;

		for (int e = lane; e < n_expert; e += kWarp)
			if (pr[e] > best) {	/* strict: within a lane the lower id wins */
				best = pr[e];
				bi = e;
			}
		for (int o = kWarp / 2; o > 0; o /= 2) {
			float ob = __shfl_xor_sync(0xffffffffu, best, o);
			int oi = __shfl_xor_sync(0xffffffffu, bi, o);

			if (ob > best || (ob == best && oi < bi)) {
				best = ob;
				bi = oi;
			}
		}
		if (lane == 0) {
			sel[blockIdx.x * k + j] = bi;
			wout[blockIdx.x * k + j] = best;
			pr[bi] = -2.f;	/* taken */
		}
		wsum += best;
		__syncwarp();
	}
	if (lane == 0)
		for (int j = 0; j < k; j++)
			wout[blockIdx.x * k + j] = (float)(wout[blockIdx.x * k + j] / wsum);
}

__global__ void k_swiglu(float *out, const float *g, const float *u, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

__global__ void k_add(float *x, const float *y, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		x[i] += y[i];
}

__global__ void k_moe_combine(float *x, const float *yg, const float *w, int k, int n)
{
	int t = blockIdx.y, i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i >= n)
		return;
	float acc = 0;

	for (int j = 0; j < k; j++)
		acc += w[t * k + j] * yg[((size_t)t * k + j) * n + i];
	x[(size_t)t * n + i] += acc;
}

template <int T>
__global__ void k_embed(const char *table, size_t row_bytes, const int *tok, int n, float *x)
{
	const char *row = table + (size_t)tok[blockIdx.x] * row_bytes;
	float *o = x + (size_t)blockIdx.x * n;

	for (int c = threadIdx.x; c < n / 8; c += blockDim.x) {
		float v[8];

		float ab[2];

		tmc_dec8a<T>(row, c, v, ab);
		for (int i = 0; i < 8; i++)
			o[8 * c + i] = ab[0] * v[i] - ab[1];
	}
}

/* 16-byte loads, four in flight per thread, grid-stride; the XOR keeps the loads live. */
__global__ void k_read(const uint4 *p, size_t n, unsigned int *sink)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;
	unsigned int acc = 0;

	for (; i + 3 * step < n; i += 4 * step) {
		uint4 a = p[i], b = p[i + step], c = p[i + 2 * step], d = p[i + 3 * step];

		acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
	}
	for (; i < n; i += step) {
		uint4 a = p[i];

		acc ^= a.x ^ a.y ^ a.z ^ a.w;
	}
	if (acc == 0x9e3779b9u)	/* almost never: the store only stops the compiler dropping the loads */
		*sink = acc;
}

int launched()
{
	return cudaGetLastError() == cudaSuccess ? 0 : -EIO;
}

}  // namespace

extern "C" int tmc_rmsnorm(float *out, const float *x, const float *w, int n_rows, int n, float eps, cudaStream_t s)
{
	if (n_rows < 1 || n < 1)
		return -EINVAL;
	k_rmsnorm<<<n_rows, 1024, 0, s>>>(out, x, w, n, eps, nullptr, nullptr);	/* one row per block: all the threads one block may have */
	return launched();
}

extern "C" int tmc_rmsnorm_q8a(float *out, const float *x, const float *w, int n_rows, int n, float eps, void *xq,
			       int xq_rows, cudaStream_t s)
{
	int8_t *qs = static_cast<int8_t *>(xq);

	if (n_rows < 1 || n < 32 || n % 32 || !xq || (reinterpret_cast<uintptr_t>(xq) & 15) || n_rows > xq_rows)
		return -EINVAL;
	k_rmsnorm<<<n_rows, 1024, 0, s>>>(out, x, w, n, eps, qs,
					  reinterpret_cast<tm_q8a_meta *>(qs + (size_t)xq_rows * n));
	return launched();
}

extern "C" int tmc_rope_store(const struct tmc_rope *a, cudaStream_t s)
{
	if (a->n_tok < 1 || a->n_head < 1 || a->n_head_kv < 1 || a->n_rot > a->head_dim || a->n_rot % 2 ||
	    (a->mode != 0 && a->mode != 2))
		return -EINVAL;
	k_rope_store<<<a->n_tok, kThreads, 0, s>>>(*a);
	return launched();
}

extern "C" int tmc_attention(const struct tmc_attn *a, cudaStream_t s)
{
	if (a->n_tok < 1 || a->n_head_kv < 1 || a->n_head % a->n_head_kv || a->head_dim < 1 ||
	    a->head_dim > 4096)
		return -EINVAL;
	k_attention<<<dim3(a->n_head, a->n_tok), kThreads, sizeof(float) * (a->head_dim + kThreads), s>>>(*a);
	return launched();
}

extern "C" int tmc_route(const float *logits, int n_tok, int n_expert, int k, int *sel, float *w, cudaStream_t s)
{
	if (n_tok < 1 || n_expert < 1 || n_expert > 4096 || k < 1 || k > n_expert)
		return -EINVAL;
	k_route<<<n_tok, kWarp, sizeof(float) * n_expert, s>>>(logits, n_expert, k, sel, w);
	return launched();
}

extern "C" int tmc_swiglu(float *out, const float *gate, const float *up, size_t n, cudaStream_t s)
{
	if (!n)
		return -EINVAL;
	k_swiglu<<<(unsigned)((n + kThreads - 1) / kThreads), kThreads, 0, s>>>(out, gate, up, n);
	return launched();
}

extern "C" int tmc_add(float *x, const float *y, size_t n, cudaStream_t s)
{
	if (!n)
		return -EINVAL;
	k_add<<<(unsigned)((n + kThreads - 1) / kThreads), kThreads, 0, s>>>(x, y, n);
	return launched();
}

extern "C" int tmc_moe_combine(float *x, const float *yg, const float *w, int n_tok, int k, int n, cudaStream_t s)
{
	if (n_tok < 1 || k < 1 || n < 1)
		return -EINVAL;
	k_moe_combine<<<dim3((n + kThreads - 1) / kThreads, n_tok), kThreads, 0, s>>>(x, yg, w, k, n);
	return launched();
}

extern "C" int tmc_embed(int type, const void *table, size_t row_bytes, const int *tok, int n_tok, int n,
			 float *x, cudaStream_t s)
{
	const char *t = static_cast<const char *>(table);

	if (n_tok < 1 || n < 8 || n % 8)
		return -EINVAL;
	switch (type) {
#define TMC_CASE(T) case T: k_embed<T><<<n_tok, kThreads, 0, s>>>(t, row_bytes, tok, n, x); break;
	TMC_FOR_TYPES(TMC_CASE)
#undef TMC_CASE
	default: return -EINVAL;
	}
	return launched();
}

extern "C" int tmc_read(const void *buf, size_t bytes, unsigned int *sink, cudaStream_t s)
{
	int dev, sms;

	if (!bytes || bytes % 16 || (reinterpret_cast<uintptr_t>(buf) & 15))
		return -EINVAL;
	if (cudaGetDevice(&dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
		return -EIO;
	k_read<<<sms * 8, kThreads, 0, s>>>(static_cast<const uint4 *>(buf), bytes / 16, sink);
	return launched();
}
