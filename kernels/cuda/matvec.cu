// SPDX-License-Identifier: MIT
/*
 * Matvec (decode) and matmul (prefill) for every weight type the CPU runs:
 * one warp per weight row, each lane decoding 8-element chunks with the
 * shared decoders (kernels/quant_decode.h) and dotting them with up to 8
 * tokens' float activations; a shuffle sum ends the row. Consecutive lanes
 * take consecutive chunks, so a warp reads a row's blocks front to back.
 *
 * The dp4a path (decode and experts, quantized types; tmc_mv.xq): the
 * activation rounded to q8a once per launch by a warp per 32 elements, then
 * the same grid with each lane taking 32-weight units through the integer
 * block dots of kernels/quant_dot.h, 4 weights per dp4a.
 */
#include <cerrno>
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/types.cuh"

namespace {

constexpr int kWarp = 32;
constexpr int kWarps = 4;	/* warps per thread block, sharing its rows' columns */
constexpr int kTile = 8;	/* tokens per pass over a row in prefill */

__device__ __forceinline__ float warp_sum(float v)
{
	for (int o = kWarp / 2; o > 0; o /= 2)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/*
 * R weight rows of type T (GLU: R gate rows, then R up rows) against up to NT
 * tokens: each lane decodes its chunk of every row in affine form (scale *
 * q - min), then loads each token's 8 activations once for all the rows and
 * applies each row's scale and min once per chunk: sum(q x) and sum(x) are
 * what the 8 elements cost. Sharing the activation loads between rows keeps
 * the L1 traffic for x below the weight traffic.
 */
template <int T, int NT, int NR>
__device__ __forceinline__ void dot_rows(const char *const rows[NR], int nch, const float *x, size_t xs, int nt,
					 float acc[NR][NT])
{
#pragma unroll 2
	for (int c = threadIdx.x + kWarp * threadIdx.y; c < nch; c += kWarp * kWarps) {
		float v[NR][8], ab[NR][2];

#pragma unroll
		for (int r = 0; r < NR; r++)
			tmc_dec8a<T>(rows[r], c, v[r], ab[r]);
#pragma unroll
		for (int t = 0; t < NT; t++) {
			if (t < nt) {
				const float4 *xp = reinterpret_cast<const float4 *>(x + t * xs + 8 * c);
				float4 p = xp[0], q = xp[1];
				float sx = 0.f;

				if constexpr (tmc_has_min<T>)
					sx = ((p.x + p.y) + (p.z + p.w)) + ((q.x + q.y) + (q.z + q.w));
#pragma unroll
				for (int r = 0; r < NR; r++) {
					float d = v[r][0] * p.x + v[r][1] * p.y + v[r][2] * p.z + v[r][3] * p.w +
						  v[r][4] * q.x + v[r][5] * q.y + v[r][6] * q.z + v[r][7] * q.w;

					if constexpr (tmc_has_min<T>)
						acc[r][t] += ab[r][0] * d - ab[r][1] * sx;
					else if constexpr (tmc_has_scale<T>)
						acc[r][t] += ab[r][0] * d;
					else
						acc[r][t] += d;
				}
			}
		}
	}
}

/*
 * The dp4a path's rows: lane units of 32 weights, the activation's 32 int8s
 * (two 16-byte loads) and its meta loaded once for all NR rows.
 */
template <int T, int NR>
__device__ __forceinline__ void qdot_rows(const char *const rows[NR], int nu, const int8_t *xq, const tm_q8a_meta *xm,
					  float acc[NR][1])
{
#pragma unroll 2
	for (int u = threadIdx.x + kWarp * threadIdx.y; u < nu; u += kWarp * kWarps) {
		const uint8_t *xp = reinterpret_cast<const uint8_t *>(xq) + 32 * u;
		uint32_t xw[8];
		tm_q8a_meta m = xm[u];

		tm_qd_ld16(xp, xw);
		tm_qd_ld16(xp + 16, xw + 4);
#pragma unroll
		for (int r = 0; r < NR; r++)
			acc[r][0] += tmc_qdot<T>(rows[r], u, xw, m);
	}
}

template <int NR>
__device__ __forceinline__ void qdot_any(int type, const char *const rows[NR], int nu, const int8_t *xq,
					 const tm_q8a_meta *xm, float acc[NR][1])
{
	switch (type) {
#define TMC_CASE(T) case T: qdot_rows<T, NR>(rows, nu, xq, xm, acc); break;
	TMC_FOR_QTYPES(TMC_CASE)
#undef TMC_CASE
	default: break;	/* tmc_matvec took the float path */
	}
}

/*
 * q8a of rows x-rows of cols floats: a warp per block of 32, lane i one
 * element, the arithmetic of tm_q8a_block (so the host's tests describe it).
 * qs: rows * cols int8s, meta after them.
 */
__global__ void __launch_bounds__(kWarp * kWarps) k_quant_q8a(const float *x, size_t x_stride, int cols, int rows,
							      int8_t *qs, tm_q8a_meta *meta)
{
	int blk = blockIdx.x * kWarps + threadIdx.y, per_row = cols / 32, lane = threadIdx.x;

	if (blk >= rows * per_row)
		return;
	int row = blk / per_row, b = blk % per_row;

	tmc_q8a_warp(x[(size_t)row * x_stride + 32 * b + lane], qs + (size_t)blk * 32, meta + blk);
}

template <int NT, int NR>
__device__ __forceinline__ void dot_any(int type, const char *const rows[NR], int nch, const float *x, size_t xs,
					int nt, float acc[NR][NT])
{
	switch (type) {
#define TMC_CASE(T) case T: dot_rows<T, NT, NR>(rows, nch, x, xs, nt, acc); break;
	TMC_FOR_TYPES(TMC_CASE)
#undef TMC_CASE
	default: break;	/* tmc_matvec refused it */
	}
}

/*
 * blockIdx.x: a group of R rows over the jobs' rows end to end (GLU: job 0's
 * rows only, each with job 1's row of the same index), its columns split
 * among the block's kWarps warps (more loads in flight for the small
 * matrices of decode) and summed through shared memory;
 * blockIdx.y: a token tile, or a (token, expert) pair with ids.
 */
template <int NT, int R, bool GLU, bool Q>
__global__ void __launch_bounds__(kWarp * kWarps) k_matvec(const tmc_mv a)
{
	constexpr int NR = GLU ? 2 * R : R;
	__shared__ float part[kWarps][NR][NT];
	int g = blockIdx.x, j = 0, nt;
	int g0 = (a.job[0].rows + R - 1) / R, g1 = a.n_jobs > 1 ? (a.job[1].rows + R - 1) / R : 0;
	size_t tok0, mat = 0, xrow;
	const float *x;

	/* the job by comparisons, not a run-time array index (which would go to local memory) */
	if (g >= g0) {
		g -= g0;
		j = 1;
		if (g >= g1) {
			g -= g1;
			j = 2;
		}
	}
	if (j >= a.n_jobs || (GLU && j > 0))
		return;
	const tmc_mv_job &J = j == 0 ? a.job[0] : j == 1 ? a.job[1] : a.job[2];
	int r0 = g * R;

	if (r0 >= J.rows)
		return;
	if (a.ids) {
		int p = blockIdx.y;

		mat = (size_t)a.ids[p];
		xrow = (size_t)(p / a.x_div);
		x = a.x + xrow * a.x_stride;
		tok0 = p;
		nt = 1;
	} else {
		tok0 = (size_t)blockIdx.y * NT;
		xrow = tok0;
		x = a.x + tok0 * a.x_stride;
		nt = min(NT, a.n - (int)tok0);
	}

	const char *rows[NR];
	float acc[NR][NT];
	int nr = min(R, J.rows - r0);

#pragma unroll
	for (int r = 0; r < R; r++) {
		/* rows past the end repeat the last one: loads stay in bounds, results are dropped */
		size_t row = (size_t)(r0 + min(r, nr - 1));

		rows[r] = static_cast<const char *>(J.w) + mat * J.mat_stride + row * J.row_stride;
		if (GLU)
			rows[R + r] = static_cast<const char *>(a.job[1].w) + mat * a.job[1].mat_stride +
				      row * a.job[1].row_stride;
	}
#pragma unroll
	for (int r = 0; r < NR; r++)
#pragma unroll
		for (int t = 0; t < NT; t++)
			acc[r][t] = 0.f;
	if constexpr (Q) {
		static_assert(NT == 1, "the dp4a path takes one token per block");
		const int8_t *xq = static_cast<const int8_t *>(a.xq) + xrow * a.cols;
		const tm_q8a_meta *xm = reinterpret_cast<const tm_q8a_meta *>(static_cast<const int8_t *>(a.xq) +
									       (size_t)a.xq_rows * a.cols) + xrow * (a.cols / 32);

		qdot_any<NR>(J.type, rows, a.cols / 32, xq, xm, reinterpret_cast<float (*)[1]>(acc));
	} else {
		dot_any<NT, NR>(J.type, rows, a.cols / 8, x, a.x_stride, nt, acc);
	}
#pragma unroll
	for (int r = 0; r < NR; r++)
#pragma unroll
		for (int t = 0; t < NT; t++) {
			float v = warp_sum(acc[r][t]);

			if (threadIdx.x == 0)
				part[threadIdx.y][r][t] = v;
		}
	__syncthreads();
	if (threadIdx.x != 0 || threadIdx.y != 0)
		return;
#pragma unroll
	for (int r = 0; r < NR; r++)
#pragma unroll
		for (int t = 0; t < NT; t++)
			acc[r][t] = part[0][r][t] + part[1][r][t] + part[2][r][t] + part[3][r][t];
#pragma unroll
	for (int r = 0; r < R; r++) {
#pragma unroll
		for (int t = 0; t < NT; t++) {
			if (r < nr && t < nt) {
				float *y = J.y + (tok0 + t) * J.y_stride + r0 + r, v = acc[r][t];

				if (GLU)
					v = v / (1.0f + expf(-v)) * acc[R + r][t];
				*y = a.accumulate ? *y + v : v;
			}
		}
	}
}

}  // namespace

extern "C" uint64_t tmc_matvec_bytes(const struct tmc_mv *a)
{
	uint64_t b = 0, passes = a->ids ? (uint64_t)a->n : (uint64_t)(a->n + kTile - 1) / kTile;

	if (!a->ids && a->n == 1)
		passes = 1;
	for (int j = 0; j < a->n_jobs; j++)
		b += (uint64_t)a->job[j].rows * a->job[j].row_stride;
	return b * passes;
}

/* Rows of x a launch reads: one per token, or per x_div pairs with ids. */
static int x_rows(const struct tmc_mv *a)
{
	return a->ids ? (a->n - 1) / a->x_div + 1 : a->n;
}

extern "C" int tmc_matvec_dp4a(const struct tmc_mv *a)
{
	if (!a->xq || (reinterpret_cast<uintptr_t>(a->xq) & 15) || !(a->ids || a->n == 1) || a->cols % 32 ||
	    a->n_jobs < 1 || a->n_jobs > 3 || x_rows(a) > a->xq_rows)
		return 0;
	for (int j = 0; j < a->n_jobs; j++) {
		const struct tmc_mv_job *J = &a->job[j];
		size_t al = (size_t)tm_qdot_align(J->type);

		if (!tm_qdot_has(J->type) || (reinterpret_cast<uintptr_t>(J->w) | J->row_stride | J->mat_stride) % al)
			return 0;
	}
	return 1;
}

extern "C" int tmc_matvec(const struct tmc_mv *a, cudaStream_t s)
{
	int one = a->ids || a->n == 1, R = a->glu ? (one ? 2 : 1) : (one ? 4 : 2), groups = 0;

	if (a->n_jobs < 1 || a->n_jobs > 3 || a->n < 1 || a->cols < 8 || a->cols % 8 ||
	    (reinterpret_cast<uintptr_t>(a->x) & 15) || a->x_stride % 4 || (a->ids && a->x_div < 1) ||
	    (a->glu && (a->n_jobs != 2 || a->job[0].rows != a->job[1].rows || a->job[0].type != a->job[1].type)))
		return -EINVAL;
	for (int j = 0; j < a->n_jobs; j++) {
		if (!tmc_decodable(a->job[j].type) || a->job[j].rows < 1 || !a->job[j].y)
			return -EINVAL;
		groups += a->glu && j ? 0 : (a->job[j].rows + R - 1) / R;
	}
	dim3 block(kWarp, kWarps);
	unsigned gx = (unsigned)groups;
	unsigned gy = one ? (unsigned)a->n : (unsigned)((a->n + kTile - 1) / kTile);

	if (tmc_matvec_dp4a(a)) {
		int nb = x_rows(a) * (a->cols / 32);
		int8_t *qs = static_cast<int8_t *>(a->xq);

		if (!a->xq_ready)
			k_quant_q8a<<<(nb + kWarps - 1) / kWarps, block, 0, s>>>(
				a->x, a->x_stride, a->cols, x_rows(a), qs,
				reinterpret_cast<tm_q8a_meta *>(qs + (size_t)a->xq_rows * a->cols));
		if (a->glu)
			k_matvec<1, 2, true, true><<<dim3(gx, gy), block, 0, s>>>(*a);
		else
			k_matvec<1, 4, false, true><<<dim3(gx, gy), block, 0, s>>>(*a);
	} else if (one && a->glu) {
		k_matvec<1, 2, true, false><<<dim3(gx, gy), block, 0, s>>>(*a);
	} else if (one) {
		k_matvec<1, 4, false, false><<<dim3(gx, gy), block, 0, s>>>(*a);
	} else if (a->glu) {
		k_matvec<kTile, 1, true, false><<<dim3(gx, gy), block, 0, s>>>(*a);
	} else {
		k_matvec<kTile, 2, false, false><<<dim3(gx, gy), block, 0, s>>>(*a);
	}
	return cudaGetLastError() == cudaSuccess ? 0 : -EIO;
}
