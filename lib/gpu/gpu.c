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
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/gpu/cuda_api.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/gpu.h"
#include "tiermem/mapping.h"

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

static const char *const place_names[] = { [TM_GPU_VRAM] = "VRAM", [TM_GPU_CPU] = "CPU", [TM_GPU_PCIE] = "pcie" };

int tm_gpu_place_parse(const char *s)
{
	for (int i = 0; i < (int)(sizeof(place_names) / sizeof(place_names[0])); i++)
		if (!strcmp(s, place_names[i]))
			return i;
	return -1;
}

enum tm_gpu_place tm_gpu_place_of(const struct tm_override *ot, int n_ot, const char *name)
{
	for (int i = 0; i < n_ot; i++) {
		regex_t re;
		int hit;

		/* tm_override_parse compiled it once already */
		if (regcomp(&re, ot[i].regex, REG_EXTENDED | REG_NOSUB))
			continue;
		hit = !regexec(&re, name, 0, NULL, 0);
		regfree(&re);
		if (hit)
			return (enum tm_gpu_place)tm_gpu_place_parse(ot[i].tier);
	}
	return TM_GPU_VRAM;
}

static int check_weight(const struct tm_model *m, const struct tm_override *ot, int n_ot, const struct tm_weight *w,
			bool expert)
{
	enum tm_gpu_place p;
	int err;

	if (!w->data)
		return 0;
	p = tm_gpu_place_of(ot, n_ot, w->name);
	if (p == TM_GPU_CPU && !expert)
		return tm_err(-EINVAL, "-ot: %s matches a CPU rule, but the GPU pass leaves only routed experts "
			      "(ffn_*_exps) to the CPU", w->name);
	if (p == TM_GPU_PCIE && (err = tm_mapping_pinnable(&m->maps[w->map], NULL)))
		return tm_err_prefix(err, "-ot: %s on pcie", w->name);
	return 0;
}

int tm_gpu_check_placement(const struct tm_model *m, const struct tm_override *ot, int n_ot)
{
	const struct tm_weight *top[] = { &m->tok_embd, &m->output_norm, &m->output };
	int err;

	for (int i = 0; i < n_ot; i++)
		if (tm_gpu_place_parse(ot[i].tier) < 0)
			return tm_err(-EINVAL, "-ot %s=%s: with --gpu a tensor goes to VRAM, CPU (the hybrid: routed "
				      "experts on the CPU) or pcie (read over PCIe from pinned host memory)",
				      ot[i].regex, ot[i].tier);
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
		if ((err = check_weight(m, ot, n_ot, top[i], false)))
			return err;
	for (int l = 0; l < m->hp.n_layer; l++) {
		const struct tm_layer *L = &m->layers[l];
		const struct tm_weight *x[3] = { &L->gate_exps, &L->up_exps, &L->down_exps };
		int on_cpu = 0;

#define CHECK(f) if ((err = check_weight(m, ot, n_ot, &L->f, &L->f == x[0] || &L->f == x[1] || &L->f == x[2]))) \
			return err;
		TMC_LAYER_WEIGHTS(CHECK)
#undef CHECK
		for (int k = 0; k < 3; k++)
			on_cpu += x[k]->data && tm_gpu_place_of(ot, n_ot, x[k]->name) == TM_GPU_CPU;
		if (on_cpu && on_cpu != 3)
			return tm_err(-EINVAL, "-ot: layer %d has %d of its 3 routed-expert tensors on the CPU: "
				      "the hybrid runs a layer's experts on one processor (e.g. -ot exps=CPU)", l, on_cpu);
	}
	return 0;
}

static void cpu_experts(struct tm_ctx *c, int layer, const float *xb, const int *sel, const float *w, int n,
			float *out)
{
	tm_moe_experts_cpu(c, layer, xb, sel, w, n, out);
}

/* The VRAM cache serves the routed experts left in host memory, all of them in its one way (CPU or pcie). */
static int check_xvram(const struct tm_model *m, const struct tm_override *ot, int n_ot, const struct tm_xvram *x)
{
	enum tm_gpu_place want = tm_xvram_miss_mode(x) == TM_XVRAM_CPU ? TM_GPU_CPU : TM_GPU_PCIE;
	int n = 0;

	for (int l = 0; l < m->hp.n_layer; l++) {
		const struct tm_layer *L = &m->layers[l];
		enum tm_gpu_place p;

		if (!L->moe || !L->gate_exps.data)
			continue;
		p = tm_gpu_place_of(ot, n_ot, L->gate_exps.name);
		if (p == TM_GPU_VRAM)
			continue;
		if (p != want || tm_gpu_place_of(ot, n_ot, L->up_exps.name) != want ||
		    tm_gpu_place_of(ot, n_ot, L->down_exps.name) != want)
			return tm_err(-EINVAL, "--expert-cache with --gpu: layer %d's routed experts are not all on %s, "
				      "as the cache's misses are: give one -ot rule for them all (exps=CPU or exps=pcie)",
				      l, want == TM_GPU_CPU ? "the CPU" : "pcie");
		n++;
	}
	if (!n)
		return tm_err(-EINVAL, "--expert-cache with --gpu: every routed expert is in VRAM already; leave them "
			      "in host memory for the cache to serve (-ot exps=CPU or -ot exps=pcie)");
	return 0;
}

int tm_gpu_attach_xvram(struct tm_ctx *c, const struct tm_override *ot, int n_ot, struct tm_xvram *x)
{
	struct tmc_host host = { .ot = ot, .n_ot = n_ot, .experts = cpu_experts, .ctx = c };
	struct tm_gpu_info info;
	void *h;
	int err;

	if (c->gpu)
		return 0;
	if (c->n_past)
		return tm_err(-EINVAL, "a context moves to the GPU only before its first token");
	if (!c->k_cache)
		return tm_err(-EINVAL, "a work context of tm_ctx_create_seqs cannot move to the GPU");
	if ((err = tm_gpu_check_placement(c->m, ot, n_ot)) || (x && (err = check_xvram(c->m, ot, n_ot, x))) ||
	    (err = tm_gpu_probe(&info)))
		return err;
	if (x) {
		host.xvram = x;
		host.xstep = tm_xvram_step;
		host.xset_copier = tm_xvram_set_copier;
		host.xlay = tm_xvram_layout(x);
		host.xmiss = tm_xvram_miss_mode(x);
		if (host.xmiss == TM_XVRAM_CPU)
			tm_xvram_attach(x, c);	/* the CPU computes only the misses */
	}
	if ((err = relay(api->ctx_create(&h, c->m, c->n_ctx, c->n_batch, &host)))) {
		c->xhook = NULL;
		return err;
	}
	c->gpu = h;
	return 0;
}

int tm_gpu_attach_ot(struct tm_ctx *c, const struct tm_override *ot, int n_ot)
{
	return tm_gpu_attach_xvram(c, ot, n_ot, NULL);
}

int tm_gpu_attach(struct tm_ctx *c)
{
	return tm_gpu_attach_ot(c, NULL, 0);
}

int tm_gpu_forward(struct tm_ctx *c, const int32_t *tokens, int n, float *logits, int logits_all)
{
	int V = c->m->hp.n_vocab;

	for (int done = 0; done < n;) {
		int b = n - done < c->n_batch ? n - done : c->n_batch, err;
		uint64_t bytes[2] = { 0, 0 };
		float *out = logits_all ? logits + (size_t)done * V : c->logits;

		if ((err = relay(api->forward(c->gpu, tokens + done, b, c->n_past, out, logits_all, bytes))))
			return err;
		/* the CPU half, if any, counted its experts itself */
		c->weight_bytes += bytes[0] + bytes[1];
		c->vram_bytes += bytes[0];
		c->pcie_bytes += bytes[1];
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

int tm_gpu_pcie_bench(const struct tm_mapping *m, size_t bytes, int reps, double *in_place, double *copy)
{
	double g[2] = { 0, 0 };
	int err;

	if (!bytes || bytes > m->size)
		return tm_err(-EINVAL, "pcie bench: %zu bytes of a %zu-byte mapping", bytes, m->size);
	if ((err = tm_mapping_pinnable(m, NULL)) || (err = get_api()) ||
	    (err = relay(api->pcie_bench(m->addr, bytes, reps, g))))
		return err;
	*in_place = g[0];
	*copy = g[1];
	return 0;
}
