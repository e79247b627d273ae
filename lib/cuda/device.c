// SPDX-License-Identifier: MIT
/*
 * libtiermem-cuda.so's entry point and the device itself: is there one, what
 * is it, how fast does it read its memory.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_kernels.h"
#include "lib/cuda/cuda_internal.h"
#include "lib/gpu/cuda_api.h"
#include "tiermem/error.h"

int tmc_check(cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
		return 0;
	cudaGetLastError();	/* clear a sticky-free error so the next call starts clean */
	return tm_err(e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO, "%s: CUDA error %d (%s)", what, (int)e,
		      cudaGetErrorString(e));
}

int tmc_probe(struct tm_gpu_info *info)
{
	struct cudaDeviceProp p;
	int n = 0, drv = 0, rt = 0, dev = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	memset(info, 0, sizeof(*info));
	cudaDriverGetVersion(&drv);
	cudaRuntimeGetVersion(&rt);
	if (e == cudaErrorInsufficientDriver && drv == 0)
		return tm_err(-ENODEV, "no GPU: no NVIDIA driver (libcuda.so.1) on this machine");
	if (e == cudaErrorInsufficientDriver)
		return tm_err(-ENODEV, "no usable GPU: the NVIDIA driver supports CUDA %d.%d, tiermem's runtime is %d.%d",
			      drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
	if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0))
		return tm_err(-ENODEV, "no GPU: the NVIDIA driver sees no CUDA device");
	if (e != cudaSuccess)
		return tm_err(-ENODEV, "no usable GPU: %s", cudaGetErrorString(e));
	if (getenv("CUDA_DEVICE"))
		dev = atoi(getenv("CUDA_DEVICE"));
	if (cudaSetDevice(dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess)
		return tm_err(-ENODEV, "no usable GPU: cannot open CUDA device %d", dev);
	snprintf(info->name, sizeof(info->name), "%s", p.name);
	info->cc_major = p.major;
	info->cc_minor = p.minor;
	info->n_sm = p.multiProcessorCount;
	info->driver_version = drv;
	info->runtime_version = rt;
	if (p.major < 8)
		return tm_err(-ENODEV, "no usable GPU: %s has compute capability %d.%d; tiermem is built for 8.0 and 9.0",
			      p.name, p.major, p.minor);
	return tmc_check(cudaMemGetInfo(&info->vram_free, &info->vram_total), "reading free VRAM");
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One timed pass: the read kernel over src, or (dst set) a copy of src into dst; on stream 0. */
struct pass {
	const void *src;
	void *dst;
	size_t bytes;
	unsigned int *sink;
};

static int enqueue_pass(const struct pass *p)
{
	if (p->dst)
		return tmc_check(cudaMemcpyAsync(p->dst, p->src, p->bytes, cudaMemcpyHostToDevice, 0), "cudaMemcpy");
	return tmc_read(p->src, p->bytes, p->sink, 0) ? tm_err(-EIO, "the read kernel did not launch") : 0;
}

/* reps timed passes after one warm-up: *gbps is their median. */
static int timed(const struct pass *p, int reps, double *gbps)
{
	cudaEvent_t e0 = NULL, e1 = NULL;
	double *t = calloc(reps, sizeof(double));
	int err;

	if (!t)
		return tm_err(-ENOMEM, "out of memory");
	if ((err = tmc_check(cudaEventCreate(&e0), "event")) || (err = tmc_check(cudaEventCreate(&e1), "event")))
		goto out;
	for (int i = -1; i < reps; i++) {
		float ms = 0;

		if ((err = tmc_check(cudaEventRecord(e0, 0), "event")) || (err = enqueue_pass(p)) ||
		    (err = tmc_check(cudaEventRecord(e1, 0), "event")) ||
		    (err = tmc_check(cudaEventSynchronize(e1), "reading")) ||
		    (err = tmc_check(cudaEventElapsedTime(&ms, e0, e1), "event")))
			break;
		if (i >= 0)
			t[i] = p->bytes / (ms * 1e-3) / 1e9;
	}
	if (!err) {
		qsort(t, reps, sizeof(double), cmp_d);
		*gbps = t[reps / 2];
	}
out:
	if (e0)
		cudaEventDestroy(e0);
	if (e1)
		cudaEventDestroy(e1);
	free(t);
	return err;
}

int tmc_read_bench(size_t bytes, int reps, double *gbps)
{
	struct pass p = { .bytes = bytes & ~(size_t)15 };
	void *buf = NULL;
	int err;

	if (reps < 1 || p.bytes == 0)
		return tm_err(-EINVAL, "read bench of %zu bytes, %d reps", bytes, reps);
	if (!(err = tmc_check(cudaMalloc(&buf, p.bytes), "VRAM for the read buffer")) &&
	    !(err = tmc_check(cudaMalloc((void **)&p.sink, sizeof(*p.sink)), "VRAM")) &&
	    !(err = tmc_check(cudaMemset(buf, 0x5a, p.bytes), "filling the read buffer"))) {
		p.src = buf;
		err = timed(&p, reps, gbps);
	}
	cudaFree(buf);
	cudaFree(p.sink);
	return err;
}

/*
 * The pcie tier: host memory pinned as -ot pcie pins it (mapped, read-only
 * where the device allows), read in place by the read kernel over PCIe, and
 * copied into VRAM by cudaMemcpy (the copy engines), for comparison.
 */
int tmc_pcie_bench(void *host, size_t bytes, int reps, double gbps[2])
{
	struct pass p = { .bytes = bytes & ~(size_t)15 };
	unsigned int flags = cudaHostRegisterMapped;
	void *dev = NULL, *vram = NULL;
	int ro = 0, d = 0, err;

	if (reps < 1 || p.bytes == 0 || ((uintptr_t)host & 15))
		return tm_err(-EINVAL, "pcie bench of %zu bytes at %p, %d reps", bytes, host, reps);
	cudaGetDevice(&d);
	if (cudaDeviceGetAttribute(&ro, cudaDevAttrHostRegisterReadOnlySupported, d) == cudaSuccess && ro)
		flags |= cudaHostRegisterReadOnly;
	if ((err = tmc_check(cudaHostRegister(host, p.bytes, flags), "pinning host memory for the GPU")))
		return err;
	if (!(err = tmc_check(cudaHostGetDevicePointer(&dev, host, 0), "the device address of pinned memory")) &&
	    !(err = tmc_check(cudaMalloc((void **)&p.sink, sizeof(*p.sink)), "VRAM"))) {
		p.src = dev;
		err = timed(&p, reps, &gbps[0]);
	}
	if (!err && !(err = tmc_check(cudaMalloc(&vram, p.bytes), "VRAM for the copy"))) {
		p.src = host;
		p.dst = vram;
		err = timed(&p, reps, &gbps[1]);
	}
	cudaFree(vram);
	cudaFree(p.sink);
	cudaHostUnregister(host);
	return err;
}

static const struct tmc_api api = {
	.abi = TMC_ABI,
	.strerror = tm_strerror,
	.probe = tmc_probe,
	.ctx_create = tmc_ctx_create,
	.forward = tmc_forward,
	.ctx_free = tmc_ctx_free,
	.read_bench = tmc_read_bench,
	.pcie_bench = tmc_pcie_bench,
};

__attribute__((visibility("default"))) const struct tmc_api *tmc_api(void)
{
	return &api;
}
