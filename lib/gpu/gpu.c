// SPDX-License-Identifier: MIT
/*
 * The GPU path's front door in libtiermem: load libtiermem-cuda.so on first
 * use and forward to it. Nothing here links CUDA, so a machine without a GPU
 * or driver runs everything else unchanged (include/tiermem/gpu.h).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/gpu/cuda_api.h"
#include "tiermem/error.h"
#include "tiermem/gpu.h"

#define LIB_NAME "libtiermem-cuda.so"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const struct tmc_api *api;
static char load_err[2 * PATH_MAX];

/* Beside the running binary, where make puts it (build/) and an install puts both. */
static void lib_path(char *out, size_t n)
{
	const char *env = getenv("TIERMEM_CUDA_LIB");
	char exe[PATH_MAX];
	ssize_t len;
	char *slash;

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return;
	}
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0) {
		snprintf(out, n, "%s", LIB_NAME);
		return;
	}
	exe[len] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(out, n, "%s/%s", exe, LIB_NAME);
}

static void load(void)
{
	char path[PATH_MAX + 64];
	void *h;
	tmc_api_fn fn;

	lib_path(path, sizeof(path));
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(load_err, sizeof(load_err),
			 "no GPU support: cannot load %s (built only where nvcc exists): %s", path, dlerror());
		return;
	}
	fn = (tmc_api_fn)(uintptr_t)dlsym(h, TMC_API_SYMBOL);
	if (!fn || !fn() || fn()->abi != TMC_ABI) {
		snprintf(load_err, sizeof(load_err), "%s is from another build of tiermem (rebuild with make)", path);
		dlclose(h);
		return;
	}
	api = fn();	/* kept loaded for the life of the process */
}

static int get_api(void)
{
	pthread_once(&once, load);
	if (!api)
		return tm_err(-ENODEV, "%s", load_err);
	return 0;
}

/* The object's message into ours (each has its own copy of tm_err's buffer). */
static int relay(int err)
{
	if (err)
		tm_err(err, "%s", api->strerror());
	return err;
}

int tm_gpu_probe(struct tm_gpu_info *info)
{
	int err = get_api();

	return err ? err : relay(api->probe(info));
}

int tm_gpu_attach(struct tm_ctx *c)
{
	struct tm_gpu_info info;
	void *h;
	int err;

	if (c->gpu)
		return 0;
	if (c->n_past)
		return tm_err(-EINVAL, "a context moves to the GPU only before its first token");
	if (!c->k_cache)
		return tm_err(-EINVAL, "a work context of tm_ctx_create_seqs cannot move to the GPU");
	if ((err = tm_gpu_probe(&info)))
		return err;
	if ((err = relay(api->ctx_create(&h, c->m, c->n_ctx, c->n_batch))))
		return err;
	c->gpu = h;
	return 0;
}

int tm_gpu_forward(struct tm_ctx *c, const int32_t *tokens, int n, float *logits, int logits_all)
{
	int V = c->m->hp.n_vocab;

	for (int done = 0; done < n;) {
		int b = n - done < c->n_batch ? n - done : c->n_batch, err;
		uint64_t bytes = 0;
		float *out = logits_all ? logits + (size_t)done * V : c->logits;

		if ((err = relay(api->forward(c->gpu, tokens + done, b, c->n_past, out, logits_all, &bytes))))
			return err;
		c->weight_bytes += bytes;
		c->vram_bytes += bytes;
		c->n_past += b;
		c->n_evals++;
		done += b;
	}
	if (!logits_all && logits)
		memcpy(logits, c->logits, sizeof(float) * V);
	return 0;
}

void tm_gpu_detach(struct tm_ctx *c)
{
	if (c->gpu && api)
		api->ctx_free(c->gpu);
	c->gpu = NULL;
}

int tm_gpu_read_bench(size_t bytes, int reps, double *gbps)
{
	int err = get_api();

	return err ? err : relay(api->read_bench(bytes, reps, gbps));
}
