// SPDX-License-Identifier: MIT
/*
 * q8_0 and q4_K matvec in CUDA: one warp per row, weights read once,
 * coalesced within a warp. UNTESTED ON HARDWARE (no GPU where this was
 * written): it is only known to compile. The block layouts are GGML's, the
 * same as kernels/cpu/kern.h describes.
 */
#include <cerrno>
#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/matvec_cuda.h"
#include "kernels/kernels.h"

namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 4;	/* warps per thread block, one row each */

struct blk_q8_0 { uint16_t d; int8_t qs[32]; };
struct blk_q4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
static_assert(sizeof(blk_q8_0) == 34, "q8_0 layout");
static_assert(sizeof(blk_q4_K) == 144, "q4_K layout");

__device__ __forceinline__ float half_at(const uint16_t *p)
{
	__half_raw r;

	r.x = *p;
	return __half2float(__half(r));
}

__device__ __forceinline__ float warp_sum(float v)
{
	for (int o = kWarp / 2; o > 0; o /= 2)
		v += __shfl_down_sync(0xffffffffu, v, o);
	return v;
}

/* Lane l takes element l of every block: 32 lanes read a block's codes together. */
__global__ void matvec_q8_0(const char *w, size_t stride, int rows, int nb, const float *x, float *y)
{
	int row = blockIdx.x * kRowsPerBlock + threadIdx.y, lane = threadIdx.x;

	if (row >= rows)
		return;
	const blk_q8_0 *b = reinterpret_cast<const blk_q8_0 *>(w + (size_t)row * stride);
	float s = 0.f;

	for (int i = 0; i < nb; i++)
		s += half_at(&b[i].d) * b[i].qs[lane] * x[i * 32 + lane];
	s = warp_sum(s);
	if (lane == 0)
		y[row] = s;
}

/* Scale and min j (0..7) of a q4_K block: 6 bits each, packed in 12 bytes. */
__device__ __forceinline__ void scale_min(const uint8_t *q, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/*
 * Lane l covers 8 elements of sub-block l / 4 (32 elements each) in every
 * super-block: bytes 32 * (j / 2) + 8 * (l % 4) .. +7, low nibbles for even
 * sub-blocks, high for odd ones.
 */
__global__ void matvec_q4_K(const char *w, size_t stride, int rows, int nb, const float *x, float *y)
{
	int row = blockIdx.x * kRowsPerBlock + threadIdx.y, lane = threadIdx.x;

	if (row >= rows)
		return;
	const blk_q4_K *b = reinterpret_cast<const blk_q4_K *>(w + (size_t)row * stride);
	int j = lane / 4, off = 8 * (lane % 4), shift = 4 * (j & 1);
	float s = 0.f;

	for (int i = 0; i < nb; i++) {
		int sc, m;
		float d = half_at(&b[i].d), dmin = half_at(&b[i].dmin), dot = 0.f, xs = 0.f;
		const uint8_t *q = b[i].qs + 32 * (j / 2) + off;
		const float *xv = x + i * 256 + 32 * j + off;

		scale_min(b[i].scales, j, &sc, &m);
		for (int k = 0; k < 8; k++) {
			dot += ((q[k] >> shift) & 15) * xv[k];
			xs += xv[k];
		}
		s += d * sc * dot - dmin * m * xs;
	}
	s = warp_sum(s);
	if (lane == 0)
		y[row] = s;
}

}  // namespace

extern "C" int tm_cuda_matvec(int type, const void *w, size_t row_stride, int rows, int cols,
			      const float *x, float *y, void *stream)
{
	dim3 block(kWarp, kRowsPerBlock), grid((rows + kRowsPerBlock - 1) / kRowsPerBlock);
	cudaStream_t st = static_cast<cudaStream_t>(stream);
	const char *wc = static_cast<const char *>(w);

	if (rows <= 0 || cols <= 0)
		return -EINVAL;
	switch (type) {
	case TM_Q8_0:
		if (cols % 32)
			return -EINVAL;
		matvec_q8_0<<<grid, block, 0, st>>>(wc, row_stride, rows, cols / 32, x, y);
		break;
	case TM_Q4_K:
		if (cols % 256)
			return -EINVAL;
		matvec_q4_K<<<grid, block, 0, st>>>(wc, row_stride, rows, cols / 256, x, y);
		break;
	default:
		return -EINVAL;
	}
	return cudaGetLastError() == cudaSuccess ? 0 : -EIO;
}
