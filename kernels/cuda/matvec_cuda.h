/* SPDX-License-Identifier: MIT */
/*
 * CUDA matvec for q8_0 and q4_K weights already in device memory.
 *
 * UNTESTED ON HARDWARE: this builds with nvcc (tests/suites/60-cuda-build.sh
 * checks that) but has never run on a GPU. Treat its results as unverified
 * until a test compares them with the CPU reference kernels.
 *
 * Activations are float (no q8 quantization as on the CPU), so results differ
 * from the CPU kernels by the activation rounding, a few 1e-3 relative.
 */
#ifndef TIERMEM_KERNELS_CUDA_MATVEC_H
#define TIERMEM_KERNELS_CUDA_MATVEC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * y[r] = dot(row r of w, x) for r < rows; w, x and y are device pointers,
 * type is TM_Q8_0 or TM_Q4_K (GGML ids), cols a multiple of the block size.
 * Runs on `stream` (a cudaStream_t, 0 for the default). Returns 0, or -EINVAL
 * for a type or shape it does not handle, or -EIO if the launch failed.
 */
int tm_cuda_matvec(int type, const void *w, size_t row_stride, int rows, int cols,
		   const float *x, float *y, void *stream);

#ifdef __cplusplus
}
#endif

#endif
