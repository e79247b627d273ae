// SPDX-License-Identifier: MIT
/*
 * A list of copies made by the device itself, whose sources and count are
 * known only on the device (written there by an earlier copy of the same
 * stream), so that a captured graph can replay them with new contents: the
 * VRAM expert cache gathers missed experts from pinned host memory (read
 * over PCIe through their mapped addresses) into its slots this way.
 */
#include <cerrno>
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"

namespace {

constexpr int kThreads = 256;
constexpr int kBlocksPerJob = 16;

/* blockIdx.y: a job; its blocks stride over it in the widest unit all three of src, dst and bytes allow. */
__global__ void k_gather(const tmc_copy *jobs, const int *n)
{
	if ((int)blockIdx.y >= *n)
		return;
	const tmc_copy j = jobs[blockIdx.y];
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;
	uintptr_t a = reinterpret_cast<uintptr_t>(j.src) | reinterpret_cast<uintptr_t>(j.dst) | j.bytes;

	if (!(a & 15)) {
		const uint4 *s = static_cast<const uint4 *>(j.src);
		uint4 *d = static_cast<uint4 *>(j.dst);

		for (; i < j.bytes / 16; i += step)
			d[i] = s[i];
	} else if (!(a & 3)) {
		const uint32_t *s = static_cast<const uint32_t *>(j.src);
		uint32_t *d = static_cast<uint32_t *>(j.dst);

		for (; i < j.bytes / 4; i += step)
			d[i] = s[i];
	} else {
		const unsigned char *s = static_cast<const unsigned char *>(j.src);
		unsigned char *d = static_cast<unsigned char *>(j.dst);

		for (; i < j.bytes; i += step)
			d[i] = s[i];
	}
}

}  // namespace

extern "C" int tmc_gather(const struct tmc_copy *jobs, const int *n, int max, cudaStream_t s)
{
	if (max < 1 || max > 65535)
		return -EINVAL;
	k_gather<<<dim3(kBlocksPerJob, (unsigned)max), kThreads, 0, s>>>(jobs, n);
	return cudaGetLastError() == cudaSuccess ? 0 : -EIO;
}
