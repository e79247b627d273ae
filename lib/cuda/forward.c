// SPDX-License-Identifier: MIT
/*
 * The forward pass on the GPU (part of libtiermem-cuda.so): the same
 * sequence as lib/model/forward.c, every weight, the KV cache and all
 * scratch in VRAM, each step a kernel of kernels/cuda/.
 *
 * Per token, only the token ids, the position and the RoPE table (computed
 * on the host by tm_rope_table, so the angles are the CPU's bit for bit)
 * change; they travel in one small parameter block that the first enqueued
 * operation copies to the device and every kernel reads from there. A decode
 * step is therefore the same work every time: it is captured once as a CUDA
 * graph and replayed, which removes the launch gaps between its ~10 kernels
 * per layer.
 *
 * The hybrid (tm_gpu_attach_ot, -ot exps=CPU): a layer whose routed experts
 * stay in host memory routes on the GPU, copies the normed hidden state and
 * the routing to pinned host buffers, runs tm_moe_experts_cpu (the CPU's own
 * expert code, where the experts live) as a host node of the same stream, and
 * adds the sum it copies back. Being part of the stream, it is captured in the
 * decode graph like the kernels. The GPU waits while the CPU works: the
 * architectures this pass runs (llama, qwen3moe) have no shared experts to
 * overlap with, which is where the planner's model (lib/plan/hybrid.c)
 * finds its overlap. pcie weights are registered in place (cudaHostRegister,
 * read-only) and the kernels read them over PCIe.
 *
 * NOT VERIFIED: the hybrid and pcie paths were written and compiled on a
 * machine without a GPU; tests/gpu/check_gpu.c compares their logits with
 * the CPU's on the next machine that has one (make check-gpu).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/quant_decode.h"
#include "kernels/quant_dot.h"
#include "lib/cuda/cuda_internal.h"
#include "lib/gpu/cuda_api.h"
#include "tiermem/error.h"

#define ALIGN 256

/* A weight for the kernels: tm_weight with a device pointer (VRAM, or pinned host memory over PCIe). */
struct dw {
	const char *d;			/* NULL: absent, or computed by the CPU (place) */
	int type, rows, cols, place;	/* place: enum tm_gpu_place */
	size_t row_bytes, mat_bytes, bytes;
};

/* A range of host memory registered for the GPU (pcie weights). */
struct pinned {
	char *base;
	size_t len;
	const char *dev;		/* its device address */
};

/* The argument of a layer's host node: which layer's experts the CPU runs. */
struct hnode {
	struct gctx *g;
	int layer;
};

struct dlayer {
	struct dw attn_norm, wq, wk, wv, wo, q_norm, k_norm, ffn_norm;
	struct dw gate, up, down, gate_inp, gate_exps, up_exps, down_exps;
};

struct gctx {
	const struct tm_model *m;
	int n_ctx, n_batch, n_rot;
	cudaStream_t st;
	char *arena;			/* every weight in VRAM */
	size_t arena_bytes;
	struct dlayer *L;
	struct dw tok_embd, output_norm, output;
	float *k_cache, *v_cache;
	float *x, *xb, *q, *kn, *vn, *att, *hb, *hb2, *yg, *router, *selw, *scores, *logits;
	int *sel;
	/* parameters of one batch: pos0, the tokens, their RoPE tables */
	void *h_par, *d_par;
	size_t par_bytes;
	int *d_pos, *d_tok;
	float *d_cs;
	int use_graph;			/* TIERMEM_CUDA_GRAPH=0 turns graphs off (to compare) */
	int dp4a;			/* TIERMEM_CUDA_MATVEC=dp4a */
	void *xq;			/* then the q8a scratch of the dp4a matvec, else NULL */
	cudaGraphExec_t graph;		/* a decode step, once captured */
	uint64_t graph_bytes[2];	/* weight bytes the captured step reads: VRAM, PCIe */
	uint64_t bytes[2];		/* ... the last enqueued batch read */
	/* the hybrid: placement, the CPU half, its pinned buffers */
	struct tmc_host host;
	struct pinned *pins;
	int n_pins;
	struct hnode *hnodes;		/* one per layer */
	float *h_x, *h_w, *h_out;	/* pinned: n_batch rows of the hidden state, routing, sums */
	int *h_sel;
	int moe_n;			/* rows of the batch in flight, for the host nodes */
	struct tmc_xc *xc;		/* the VRAM expert cache (lib/cuda/xcache.c), or NULL */
	int uncounted;			/* mv() launches whose bytes the cache's host nodes count */
};

static size_t up_to(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

static size_t wsize(const struct tm_weight *w)
{
	return w->data ? w->mat_bytes * (size_t)w->n_mat : 0;
}

#define LAYER_WEIGHTS TMC_LAYER_WEIGHTS

static int place_of(const struct tmc_host *h, const struct tm_weight *w)
{
	return h ? (int)tm_gpu_place_of(h->ot, h->n_ot, w->name) : TM_GPU_VRAM;
}

/* What VRAM the weights placed there need. */
static size_t weights_bytes(const struct tm_model *m, const struct tmc_host *h)
{
#define VB(w) (place_of(h, (w)) == TM_GPU_VRAM ? up_to(wsize(w), ALIGN) : 0)
	size_t b = VB(&m->tok_embd) + VB(&m->output_norm);

	if (m->output.data != m->tok_embd.data)
		b += VB(&m->output);
	for (int l = 0; l < m->hp.n_layer; l++) {
		const struct tm_layer *L = &m->layers[l];
#define SZ(f) b += VB(&L->f);
		LAYER_WEIGHTS(SZ)
#undef SZ
	}
#undef VB
	return b;
}

static int by_base(const void *a, const void *b)
{
	const struct pinned *x = a, *y = b;

	return (x->base > y->base) - (x->base < y->base);
}

static void add_range(struct pinned *r, int *n, const struct tm_weight *w, const struct tmc_host *h, size_t page)
{
	uintptr_t a, e;

	if (!w->data || place_of(h, w) != TM_GPU_PCIE)
		return;
	a = (uintptr_t)w->data / page * page;
	e = ((uintptr_t)w->data + wsize(w) + page - 1) / page * page;
	r[*n].base = (char *)a;
	r[*n].len = e - a;
	(*n)++;
}

/*
 * Register the host memory of every pcie weight, ranges merged (CUDA refuses
 * overlapping registrations), read-only where the device supports it (the
 * mappings are): the pages are pinned for the context's life. Where the
 * kernel refuses the pin, the message offers what tm_mapping_pinnable does.
 */
static int pin_pcie(struct gctx *g)
{
	const struct tm_model *m = g->m;
	size_t page = 4096, max = 3 + (size_t)m->hp.n_layer * 15;
	unsigned int flags = cudaHostRegisterMapped;
	int n = 0, ro = 0, dev = 0, err;
	struct pinned *r = calloc(max, sizeof(*r));

	if (!r)
		return tm_err(-ENOMEM, "out of memory");
	add_range(r, &n, &m->tok_embd, &g->host, page);
	add_range(r, &n, &m->output_norm, &g->host, page);
	if (m->output.data != m->tok_embd.data)
		add_range(r, &n, &m->output, &g->host, page);
	for (int l = 0; l < m->hp.n_layer; l++) {
		const struct tm_layer *L = &m->layers[l];
#define RG(f) add_range(r, &n, &L->f, &g->host, page);
		LAYER_WEIGHTS(RG)
#undef RG
	}
	g->pins = r;
	if (!n)
		return 0;
	qsort(r, n, sizeof(*r), by_base);
	g->n_pins = 1;
	for (int i = 1; i < n; i++) {
		struct pinned *last = &r[g->n_pins - 1];

		if (r[i].base <= last->base + last->len) {
			if (r[i].base + r[i].len > last->base + last->len)
				last->len = r[i].base + r[i].len - last->base;
		} else {
			r[g->n_pins++] = r[i];
		}
	}
	cudaGetDevice(&dev);
	if (cudaDeviceGetAttribute(&ro, cudaDevAttrHostRegisterReadOnlySupported, dev) == cudaSuccess && ro)
		flags |= cudaHostRegisterReadOnly;
	for (int i = 0; i < g->n_pins; i++) {
		void *d = NULL;

		if (cudaHostRegister(r[i].base, r[i].len, flags) != cudaSuccess) {
			cudaError_t e = cudaGetLastError();

			g->n_pins = i;	/* the ones registered are undone by gctx_free */
			return tm_err(-EIO, "pcie: pinning %zu MiB of host memory for the GPU failed (CUDA: %s); "
				      "the kernel refuses long-term pins of some mappings (fsdax): stage the "
				      "tensors in DDR or leave them to the CPU (-ot REGEX=CPU)",
				      r[i].len >> 20, cudaGetErrorString(e));
		}
		if ((err = tmc_check(cudaHostGetDevicePointer(&d, r[i].base, 0), "pcie: the device address of pinned memory"))) {
			cudaHostUnregister(r[i].base);
			g->n_pins = i;
			return err;
		}
		r[i].dev = d;
	}
	return 0;
}

/* The device address of a pcie weight's bytes. */
static const char *pinned_at(const struct gctx *g, const void *p)
{
	for (int i = 0; i < g->n_pins; i++)
		if ((const char *)p >= g->pins[i].base && (const char *)p < g->pins[i].base + g->pins[i].len)
			return g->pins[i].dev + ((const char *)p - g->pins[i].base);
	return NULL;
}

/* pinned_at for the expert cache's gathers (lib/cuda/xcache.c). */
static const char *dev_of(void *arg, const void *p)
{
	return pinned_at(arg, p);
}

static int upload(struct gctx *g, struct dw *d, const struct tm_weight *w, size_t *off)
{
	size_t n = wsize(w);
	float probe[8];

	memset(d, 0, sizeof(*d));
	if (!w->data)
		return 0;
	d->type = w->type;
	d->rows = w->rows;
	d->cols = w->cols;
	d->row_bytes = w->row_bytes;
	d->mat_bytes = w->mat_bytes;
	d->bytes = n;
	d->place = place_of(&g->host, w);
	/* the CPU reads it where it is, with its own kernels (tm_moe_experts_cpu); the GPU too, when cached */
	if (d->place == TM_GPU_CPU && !g->host.xvram)
		return 0;
	if (w->cols % 8)
		return tm_err(-EOPNOTSUPP, "tensor %s: rows of %d elements; the GPU kernels need a multiple of 8",
			      w->name, w->cols);
	/* the host decodes a chunk of the same type exactly as the device would: no decoder, no GPU */
	if (tm_dec8(w->type, w->data, 0, probe) < 0)
		return tm_err(-EOPNOTSUPP, "tensor %s: type %s has no GPU decoder (it runs on the CPU)", w->name,
			      tm_dtype_traits(w->type) ? tm_dtype_traits(w->type)->name : "?");
	if (d->place == TM_GPU_CPU)
		return 0;
	if (d->place == TM_GPU_PCIE) {
		d->d = pinned_at(g, w->data);
		return d->d ? 0 : tm_err(-EIO, "pcie: %s is not in the registered host memory", w->name);
	}
	d->d = g->arena + *off;
	*off += up_to(n, ALIGN);
	return tmc_check(cudaMemcpy((void *)d->d, w->data, n, cudaMemcpyHostToDevice), "copying weights to VRAM");
}

static int norm_f32(const struct dw *d, const char *what)
{
	if (d->d && d->type != TM_F32)
		return tm_err(-EOPNOTSUPP, "%s weights of type %s: the GPU path takes f32 norms", what,
			      tm_dtype_traits(d->type) ? tm_dtype_traits(d->type)->name : "?");
	return 0;
}

static int upload_all(struct gctx *g)
{
	const struct tm_model *m = g->m;
	size_t off = 0;
	int err;

	if ((err = upload(g, &g->tok_embd, &m->tok_embd, &off)) ||
	    (err = upload(g, &g->output_norm, &m->output_norm, &off)))
		return err;
	if (m->output.data == m->tok_embd.data)
		g->output = g->tok_embd;	/* tied: one copy */
	else if ((err = upload(g, &g->output, &m->output, &off)))
		return err;
	if ((err = norm_f32(&g->output_norm, "output norm")))
		return err;
	for (int l = 0; l < m->hp.n_layer; l++) {
		const struct tm_layer *L = &m->layers[l];
		struct dlayer *D = &g->L[l];
#define UP(f) if ((err = upload(g, &D->f, &L->f, &off))) return err;
		LAYER_WEIGHTS(UP)
#undef UP
		if ((err = norm_f32(&D->attn_norm, "attention norm")) || (err = norm_f32(&D->ffn_norm, "FFN norm")) ||
		    (err = norm_f32(&D->q_norm, "q norm")) || (err = norm_f32(&D->k_norm, "k norm")))
			return err;
	}
	return 0;
}

static void gctx_free(void *h)
{
	struct gctx *g = h;

	if (!g)
		return;
	if (g->graph)
		cudaGraphExecDestroy(g->graph);
	tmc_xc_free(g->xc);
	cudaFree(g->arena);
	cudaFree(g->k_cache);
	cudaFree(g->v_cache);
	cudaFree(g->x);
	cudaFree(g->d_par);
	cudaFreeHost(g->h_par);
	cudaFreeHost(g->h_x);
	if (g->st)
		cudaStreamDestroy(g->st);
	for (int i = 0; i < g->n_pins; i++)
		cudaHostUnregister(g->pins[i].base);
	free(g->pins);
	free(g->hnodes);
	free(g->L);
	free(g);
}

/* Scratch as one allocation: each buffer a multiple of ALIGN bytes, so every one is aligned. */
static int alloc_scratch(struct gctx *g)
{
	const struct tm_hparams *hp = &g->m->hp;
	size_t B = g->n_batch, E = hp->n_embd, QD = (size_t)hp->n_head * hp->head_dim;
	size_t KVD = (size_t)hp->n_head_kv * hp->head_dim, K = hp->moe ? hp->n_expert_used : 0;
	size_t F = B * hp->n_ff > B * K * hp->n_ff_exp ? B * hp->n_ff : B * K * hp->n_ff_exp;
	/* the dp4a path's activations: any matvec's x rows (one per token) of its widest input */
	size_t cmax = E > QD ? E : QD, XQ;

	cmax = cmax > (size_t)hp->n_ff ? cmax : (size_t)hp->n_ff;
	cmax = cmax > (size_t)hp->n_ff_exp ? cmax : (size_t)hp->n_ff_exp;
	XQ = g->dp4a ? (TM_Q8A_BYTES(B * cmax) + sizeof(float) - 1) / sizeof(float) : 0;
	size_t sizes[] = { B * E, B * E, B * QD, B * KVD, B * KVD, B * QD, F, F, B * K * E, B * hp->n_expert,
			   B * K, B * hp->n_head * (size_t)g->n_ctx, B * hp->n_vocab, B * K, XQ };
	float **ptrs[] = { &g->x, &g->xb, &g->q, &g->kn, &g->vn, &g->att, &g->hb, &g->hb2, &g->yg, &g->router,
			   &g->selw, &g->scores, &g->logits, (float **)&g->sel, (float **)&g->xq };
	size_t total = 0, off = 0, cache = sizeof(float) * hp->n_layer * (size_t)g->n_ctx * KVD;
	char *base;
	int err;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		total += up_to(sizeof(float) * (sizes[i] ? sizes[i] : 1), ALIGN);
	if ((err = tmc_check(cudaMalloc((void **)&g->k_cache, cache), "the K cache")) ||
	    (err = tmc_check(cudaMalloc((void **)&g->v_cache, cache), "the V cache")) ||
	    (err = tmc_check(cudaMalloc((void **)&base, total), "scratch")))
		return err;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		*ptrs[i] = (float *)(base + off);
		off += up_to(sizeof(float) * (sizes[i] ? sizes[i] : 1), ALIGN);
	}
	if (!g->dp4a)
		g->xq = NULL;
	/* x is the allocation's base: gctx_free releases it through g->x */
	g->par_bytes = up_to(sizeof(int) * (1 + B), 16) + sizeof(float) * B * g->n_rot;
	if ((err = tmc_check(cudaMalloc(&g->d_par, g->par_bytes), "parameters")) ||
	    (err = tmc_check(cudaMallocHost(&g->h_par, g->par_bytes), "pinned parameters")))
		return err;
	g->d_pos = g->d_par;
	g->d_tok = g->d_pos + 1;
	g->d_cs = (float *)((char *)g->d_par + up_to(sizeof(int) * (1 + B), 16));
	if (hp->moe) {
		/* the hybrid's copies: hidden state in and sums out (E each), experts and weights (K each) */
		size_t hx = up_to(sizeof(float) * B * E, ALIGN), hk = up_to(sizeof(float) * B * K, ALIGN);

		if ((err = tmc_check(cudaMallocHost((void **)&g->h_x, 2 * hx + 2 * hk), "pinned buffers for the CPU's experts")))
			return err;
		g->h_out = (float *)((char *)g->h_x + hx);
		g->h_w = (float *)((char *)g->h_x + 2 * hx);
		g->h_sel = (int *)((char *)g->h_x + 2 * hx + hk);
	}
	return 0;
}

/*
 * TIERMEM_CUDA_MATVEC: "float" (the default: weights decoded to floats,
 * float activations) or "dp4a" (activations rounded to q8a once per
 * matvec, integer dot products: kernels/quant_dot.h). Until a GPU has
 * measured dp4a faster and check-gpu has passed it, float stays the default;
 * the variable lets one run A/B the two.
 */
static int matvec_path_dp4a(void)
{
	const char *v = getenv("TIERMEM_CUDA_MATVEC");

	return v && !strcmp(v, "dp4a");
}

int tmc_ctx_create(void **out, const struct tm_model *m, int n_ctx, int n_batch, const struct tmc_host *host)
{
	const struct tm_hparams *hp = &m->hp;
	size_t need, KVD = (size_t)hp->n_head_kv * hp->head_dim, free_b, total_b;
	struct gctx *g;
	int err;

	*out = NULL;
	/* this pass has no MLA, q/k/v biases, shared experts or routing options (deepseek2, glm4moe) */
	if (hp->arch != TM_ARCH_LLAMA && hp->arch != TM_ARCH_QWEN3 && hp->arch != TM_ARCH_QWEN3MOE)
		return tm_err(-EOPNOTSUPP, "the GPU decode runs llama, qwen3 and qwen3moe; %s runs on the CPU only",
			      hp->arch_name);
	if (n_batch > n_ctx)
		n_batch = n_ctx;
	if (getenv("TIERMEM_CUDA_MATVEC") && strcmp(getenv("TIERMEM_CUDA_MATVEC"), "float") &&
	    strcmp(getenv("TIERMEM_CUDA_MATVEC"), "dp4a"))
		return tm_err(-EINVAL, "TIERMEM_CUDA_MATVEC=%s: the matvec path is float or dp4a", getenv("TIERMEM_CUDA_MATVEC"));
	if ((err = tmc_check(cudaMemGetInfo(&free_b, &total_b), "reading free VRAM")))
		return err;
	need = weights_bytes(m, host) + 2 * sizeof(float) * hp->n_layer * (size_t)n_ctx * KVD +
	       (host && host->xvram ? tmc_xc_vram(host) : 0);
	if (need > free_b)
		return tm_err(-ENOMEM, "too little VRAM: the weights and a %d-token KV cache need %.2f GiB, %.2f GiB of %.2f are free",
			      n_ctx, need / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0);
	g = calloc(1, sizeof(*g));
	if (!g || !(g->L = calloc(hp->n_layer, sizeof(*g->L))) ||
	    !(g->hnodes = calloc(hp->n_layer, sizeof(*g->hnodes)))) {
		if (g)
			free(g->L);
		free(g);
		return tm_err(-ENOMEM, "out of memory");
	}
	if (host)
		g->host = *host;
	for (int l = 0; l < hp->n_layer; l++)
		g->hnodes[l] = (struct hnode){ .g = g, .layer = l };
	g->m = m;
	g->n_ctx = n_ctx;
	g->n_batch = n_batch;
	g->n_rot = hp->n_rot;
	g->use_graph = !(getenv("TIERMEM_CUDA_GRAPH") && !strcmp(getenv("TIERMEM_CUDA_GRAPH"), "0"));
	g->dp4a = matvec_path_dp4a();
	if ((err = tmc_check(cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking), "creating a stream")) ||
	    (err = tmc_check(cudaMalloc((void **)&g->arena, g->arena_bytes = weights_bytes(m, host) + ALIGN),
			     "VRAM for the weights")) ||
	    (err = pin_pcie(g)) || (err = upload_all(g)) || (err = alloc_scratch(g)) ||
	    (host && host->xvram && (err = tmc_xc_create(&g->xc, m, host, n_batch, dev_of, g)))) {
		gctx_free(g);
		return err;
	}
	/* the caller's rules were read above only: every weight's place is in its dw now */
	g->host.ot = NULL;
	g->host.n_ot = 0;
	*out = g;
	return 0;
}

void tmc_ctx_free(void *h)
{
	gctx_free(h);
}

static struct tmc_mv_job mvjob(const struct dw *w, float *y, size_t y_stride)
{
	return (struct tmc_mv_job){ .w = w->d, .row_stride = w->row_bytes, .mat_stride = w->mat_bytes,
				    .type = w->type, .rows = w->rows, .y = y, .y_stride = y_stride };
}

/* Weight bytes read from d: g->bytes[0] from VRAM, [1] over PCIe. */
static void count(struct gctx *g, const struct dw *d, uint64_t b)
{
	g->bytes[d->place == TM_GPU_PCIE] += b;
}

/* One launch; its weight bytes go into g->bytes, each job's by where its matrix is. */
static int mv(struct gctx *g, struct tmc_mv *a)
{
	int err;

	a->xq = g->xq;
	a->xq_rows = g->n_batch;
	err = tmc_matvec(a, g->st);

	if (err)
		return tm_err(err, "matvec launch failed (type %d, %d rows, %d cols)", a->job[0].type,
			      a->job[0].rows, a->cols);
	for (int j = 0; j < a->n_jobs && !g->uncounted; j++) {
		struct tmc_mv one = *a;
		const char *w = a->job[j].w;

		one.n_jobs = 1;
		one.job[0] = a->job[j];
		g->bytes[!(w >= g->arena && w < g->arena + g->arena_bytes)] += tmc_matvec_bytes(&one);
	}
	return 0;
}

static int launched(int err, const char *what)
{
	return err ? tm_err(err, "%s: kernel launch failed", what) : 0;
}

/*
 * gate and up with SwiGLU into job 0's y: fused in the matvec when both have
 * one type (the usual case), else two products and a separate SwiGLU over
 * the n outputs.
 */
static int glu(struct gctx *g, struct tmc_mv *a, size_t n)
{
	int err;

	if (a->job[0].type == a->job[1].type)
		return mv(g, a);
	a->glu = 0;
	a->job[1].y = g->hb2;
	if ((err = mv(g, a)))
		return err;
	return launched(tmc_swiglu(a->job[0].y, a->job[0].y, g->hb2, n, g->st), "swiglu");
}

/*
 * RMSNorm into g->xb; on the dp4a path also into the q8a scratch, so the
 * matvecs reading xb next skip their rounding (returns through *ready
 * whether it did: their tmc_mv.xq_ready).
 */
static int norm_xb(struct gctx *g, const float *x, const struct dw *w, int n, int *ready)
{
	const struct tm_hparams *hp = &g->m->hp;
	int E = (int)hp->n_embd;

	*ready = g->dp4a && E % 32 == 0;
	if (*ready)
		return launched(tmc_rmsnorm_q8a(g->xb, x, (const float *)w->d, n, E, hp->rms_eps, g->xq, g->n_batch,
						g->st), "rmsnorm");
	return launched(tmc_rmsnorm(g->xb, x, (const float *)w->d, n, E, hp->rms_eps, g->st), "rmsnorm");
}

static int attention_block(struct gctx *g, const struct dlayer *D, int l, int n)
{
	const struct tm_hparams *hp = &g->m->hp;
	size_t E = hp->n_embd, QD = (size_t)hp->n_head * hp->head_dim;
	size_t KVD = (size_t)hp->n_head_kv * hp->head_dim;
	float *kc = g->k_cache + (size_t)l * g->n_ctx * KVD, *vc = g->v_cache + (size_t)l * g->n_ctx * KVD;
	struct tmc_mv qkv = { .job = { mvjob(&D->wq, g->q, QD), mvjob(&D->wk, g->kn, KVD), mvjob(&D->wv, g->vn, KVD) },
			      .n_jobs = 3, .cols = (int)E, .n = n, .x = g->xb, .x_stride = E };
	struct tmc_mv wo = { .job = { mvjob(&D->wo, g->x, E) }, .n_jobs = 1, .cols = (int)QD, .n = n,
			     .x = g->att, .x_stride = QD, .accumulate = 1 };
	int err;

	if ((err = norm_xb(g, g->x, &D->attn_norm, n, &qkv.xq_ready)) || (err = mv(g, &qkv)))
		return err;
	err = tmc_rope_store(&(struct tmc_rope){
		.n_tok = n, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
		.n_rot = hp->n_rot, .mode = hp->rope_mode, .pos0 = g->d_pos, .cs = g->d_cs,
		.q = g->q, .q_stride = QD, .k_new = g->kn, .v_new = g->vn, .kv_new_stride = KVD,
		.k_cache = kc, .v_cache = vc, .kv_stride = KVD,
		.q_norm = hp->qk_norm ? (const float *)D->q_norm.d : NULL,
		.k_norm = hp->qk_norm ? (const float *)D->k_norm.d : NULL, .eps = hp->rms_eps }, g->st);
	if ((err = launched(err, "rope")))
		return err;
	err = tmc_attention(&(struct tmc_attn){
		.n_tok = n, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
		.n_ctx = g->n_ctx, .pos0 = g->d_pos, .scale = 1.0f / sqrtf((float)hp->head_dim),
		.q = g->q, .q_stride = QD, .k = kc, .v = vc, .kv_stride = KVD,
		.out = g->att, .out_stride = QD, .scores = g->scores }, g->st);
	if ((err = launched(err, "attention")) || (err = mv(g, &wo)))
		return err;
	count(g, &D->attn_norm, D->attn_norm.bytes);
	count(g, &D->q_norm, D->q_norm.bytes);
	count(g, &D->k_norm, D->k_norm.bytes);
	return 0;
}

static void CUDART_CB host_experts(void *arg)
{
	const struct hnode *hn = arg;
	struct gctx *g = hn->g;

	g->host.experts(g->host.ctx, hn->layer, g->h_x, g->h_sel, g->h_w, g->moe_n, g->h_out);
}

/*
 * The hybrid's split point: layer l's routed experts on the CPU. The routing
 * (g->sel, g->selw) and the normed input (g->xb) go to pinned host memory,
 * the host node runs the CPU's expert code, the sum comes back into g->yg
 * and joins the residual stream. All on g->st, so it is captured with the
 * kernels. (Not run on a GPU yet: see the top of this file.)
 */
static int cpu_experts(struct gctx *g, int l, int n)
{
	const struct tm_hparams *hp = &g->m->hp;
	size_t E = hp->n_embd, K = hp->n_expert_used;
	int err;

	if (!g->host.experts)
		return tm_err(-EINVAL, "layer %d's experts are left to the CPU, but no CPU half was given", l);
	if ((err = tmc_check(cudaMemcpyAsync(g->h_x, g->xb, sizeof(float) * n * E, cudaMemcpyDeviceToHost, g->st),
			     "copying the hidden state to the CPU")) ||
	    (err = tmc_check(cudaMemcpyAsync(g->h_sel, g->sel, sizeof(int) * n * K, cudaMemcpyDeviceToHost, g->st),
			     "copying the routing to the CPU")) ||
	    (err = tmc_check(cudaMemcpyAsync(g->h_w, g->selw, sizeof(float) * n * K, cudaMemcpyDeviceToHost, g->st),
			     "copying the routing to the CPU")) ||
	    (err = tmc_check(cudaLaunchHostFunc(g->st, host_experts, &g->hnodes[l]), "the CPU's experts")) ||
	    (err = tmc_check(cudaMemcpyAsync(g->yg, g->h_out, sizeof(float) * n * E, cudaMemcpyHostToDevice, g->st),
			     "copying the CPU's experts back")))
		return err;
	return launched(tmc_add(g->x, g->yg, (size_t)n * E, g->st), "adding the CPU's experts");
}

/*
 * Layer l's routed experts through the VRAM cache: each pair's slot comes
 * from the cache's host node (pcie misses gathered into slots first), the
 * expert kernels read the slot arena by those ids, and the weighted sum
 * joins the residual stream; with the experts on the CPU, its sum of the
 * missed pairs (which read the zero slot here: 0) joins it too.
 */
static int cached_experts(struct gctx *g, const struct dlayer *D, int l, int n)
{
	const struct tm_hparams *hp = &g->m->hp;
	size_t E = hp->n_embd, K = hp->n_expert_used, Fe = hp->n_ff_exp, sb = tmc_xc_slot_bytes(g->xc);
	struct tmc_mv gu = { .job = { mvjob(&D->gate_exps, g->hb, Fe), mvjob(&D->up_exps, g->hb, Fe) },
			     .n_jobs = 2, .cols = (int)E, .n = n * (int)K, .x = g->xb, .x_stride = E, .glu = 1,
			     .ids = tmc_xc_ids(g->xc), .x_div = (int)K };
	struct tmc_mv down = { .job = { mvjob(&D->down_exps, g->yg, E) }, .n_jobs = 1, .cols = (int)Fe,
			       .n = n * (int)K, .x = g->hb, .x_stride = Fe, .ids = tmc_xc_ids(g->xc), .x_div = 1 };
	int err;

	for (int i = 0; i < 2; i++) {
		gu.job[i].w = tmc_xc_w(g->xc, i);
		gu.job[i].mat_stride = sb;
	}
	down.job[0].w = tmc_xc_w(g->xc, 2);
	down.job[0].mat_stride = sb;
	if ((err = tmc_xc_resolve(g->xc, l, n, g->sel, g->selw, g->xb, g->st)))
		return err;
	g->uncounted = 1;
	err = glu(g, &gu, (size_t)n * K * Fe);
	if (!err)
		err = mv(g, &down);
	g->uncounted = 0;
	if (err || (err = launched(tmc_moe_combine(g->x, g->yg, g->selw, n, (int)K, (int)E, g->st), "moe combine")))
		return err;
	if (D->gate_exps.place != TM_GPU_CPU)
		return 0;
	if ((err = tmc_xc_cpu_sum(g->xc, g->yg, n, g->st)))
		return err;
	return launched(tmc_add(g->x, g->yg, (size_t)n * E, g->st), "adding the CPU's experts");
}

static int ffn_block(struct gctx *g, const struct dlayer *D, int l, int n)
{
	const struct tm_hparams *hp = &g->m->hp;
	size_t E = hp->n_embd, K = hp->n_expert_used, Fe = hp->n_ff_exp, F = hp->n_ff;
	int err;

	int ready;

	if ((err = norm_xb(g, g->x, &D->ffn_norm, n, &ready)))
		return err;
	count(g, &D->ffn_norm, D->ffn_norm.bytes);
	if (!hp->moe) {
		struct tmc_mv gu = { .job = { mvjob(&D->gate, g->hb, F), mvjob(&D->up, NULL, F) }, .n_jobs = 2,
				     .cols = (int)E, .n = n, .x = g->xb, .x_stride = E, .glu = 1, .xq_ready = ready };
		struct tmc_mv down = { .job = { mvjob(&D->down, g->x, E) }, .n_jobs = 1, .cols = (int)F, .n = n,
				       .x = g->hb, .x_stride = F, .accumulate = 1 };

		gu.job[1].y = g->hb;	/* unused with glu, but a job needs an output */
		if ((err = glu(g, &gu, (size_t)n * F)) || (err = mv(g, &down)))
			return err;
		return 0;
	}
	struct tmc_mv router = { .job = { mvjob(&D->gate_inp, g->router, hp->n_expert) }, .n_jobs = 1,
				 .cols = (int)E, .n = n, .x = g->xb, .x_stride = E, .xq_ready = ready };
	struct tmc_mv gu = { .job = { mvjob(&D->gate_exps, g->hb, Fe), mvjob(&D->up_exps, g->hb, Fe) },
			     .n_jobs = 2, .cols = (int)E, .n = n * (int)K, .x = g->xb, .x_stride = E, .glu = 1,
			     .ids = g->sel, .x_div = (int)K, .xq_ready = ready };
	struct tmc_mv down = { .job = { mvjob(&D->down_exps, g->yg, E) }, .n_jobs = 1, .cols = (int)Fe,
			       .n = n * (int)K, .x = g->hb, .x_stride = Fe, .ids = g->sel, .x_div = 1 };

	if ((err = mv(g, &router)) ||
	    (err = launched(tmc_route(g->router, n, hp->n_expert, (int)K, g->sel, g->selw, g->st), "route")))
		return err;
	if (g->xc && D->gate_exps.place != TM_GPU_VRAM)
		return cached_experts(g, D, l, n);
	if (D->gate_exps.place == TM_GPU_CPU)
		return cpu_experts(g, l, n);
	if ((err = glu(g, &gu, (size_t)n * K * Fe)) || (err = mv(g, &down)) ||
	    (err = launched(tmc_moe_combine(g->x, g->yg, g->selw, n, (int)K, (int)E, g->st), "moe combine")))
		return err;
	return 0;
}

/* Every operation of a batch of n, on g->st; logits rows: n with all, else the last. */
static int enqueue(struct gctx *g, int n, int all)
{
	const struct tm_model *m = g->m;
	const struct tm_hparams *hp = &m->hp;
	size_t E = hp->n_embd;
	int rows = all ? n : 1, err;
	float *last = g->x + (size_t)(all ? 0 : n - 1) * E;
	struct tmc_mv out = { .job = { mvjob(&g->output, g->logits, hp->n_vocab) }, .n_jobs = 1, .cols = (int)E,
			      .n = rows, .x = g->xb, .x_stride = E };

	g->bytes[0] = g->bytes[1] = 0;
	if ((err = tmc_check(cudaMemcpyAsync(g->d_par, g->h_par, g->par_bytes, cudaMemcpyHostToDevice, g->st),
			     "copying parameters")) ||
	    (err = launched(tmc_embed(g->tok_embd.type, g->tok_embd.d, g->tok_embd.row_bytes, g->d_tok, n, (int)E,
				      g->x, g->st), "embedding")))
		return err;
	count(g, &g->tok_embd, (uint64_t)n * g->tok_embd.row_bytes);
	for (int l = 0; l < hp->n_layer; l++)
		if ((err = attention_block(g, &g->L[l], l, n)) || (err = ffn_block(g, &g->L[l], l, n)))
			return err;
	if ((err = launched(tmc_rmsnorm(g->xb, last, (const float *)g->output_norm.d, rows, (int)E, hp->rms_eps,
					g->st), "rmsnorm")) ||
	    (err = mv(g, &out)))
		return err;
	count(g, &g->output_norm, g->output_norm.bytes);
	return 0;
}

/* Capture one decode step as a graph; on any failure the caller falls back to plain launches. */
static int capture(struct gctx *g)
{
	cudaGraph_t graph = NULL;
	int err;

	if (cudaStreamBeginCapture(g->st, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
		return -EIO;
	err = enqueue(g, 1, 0);
	if (cudaStreamEndCapture(g->st, &graph) != cudaSuccess || err) {
		if (graph)
			cudaGraphDestroy(graph);
		cudaGetLastError();
		return err ? err : -EIO;
	}
	err = cudaGraphInstantiate(&g->graph, graph, 0) == cudaSuccess ? 0 : -EIO;
	cudaGraphDestroy(graph);
	if (err) {
		g->graph = NULL;
		cudaGetLastError();
		return err;
	}
	g->graph_bytes[0] = g->bytes[0];
	g->graph_bytes[1] = g->bytes[1];
	return 0;
}

int tmc_forward(void *h, const int32_t *tokens, int n, int pos0, float *logits, int all, uint64_t bytes[2])
{
	struct gctx *g = h;
	const struct tm_model *m = g->m;
	int *par = g->h_par, err;
	float *cs = (float *)((char *)g->h_par + ((char *)g->d_cs - (char *)g->d_par));
	size_t rows = all ? (size_t)n : 1;

	if (n < 1 || n > g->n_batch || pos0 + n > g->n_ctx)
		return tm_err(-EINVAL, "GPU batch of %d tokens at position %d (batch %d, context %d)", n, pos0,
			      g->n_batch, g->n_ctx);
	/* the previous step's copy of the parameters has finished: tmc_forward synchronizes */
	par[0] = pos0;
	for (int i = 0; i < n; i++) {
		par[1 + i] = tokens[i];
		tm_rope_table(cs + (size_t)i * g->n_rot, pos0 + i, g->n_rot, m->hp.rope_base,
			      m->hp.rope_freq_scale, m->rope_freqs);
	}
	g->moe_n = n;	/* for the host nodes; the previous batch's have run (tmc_forward synchronizes) */
	if (g->xc)
		tmc_xc_batch(g->xc, n);
	if (n == 1 && g->use_graph && !g->graph && capture(g))
		g->use_graph = 0;	/* could not capture: plain launches from now on */
	if (n == 1 && g->graph)
		err = tmc_check(cudaGraphLaunch(g->graph, g->st), "launching the decode graph");
	else
		err = enqueue(g, n, all);
	if (err)
		return err;
	if ((err = tmc_check(cudaMemcpyAsync(logits, g->logits, sizeof(float) * rows * m->hp.n_vocab,
					     cudaMemcpyDeviceToHost, g->st), "copying logits")) ||
	    (err = tmc_check(cudaStreamSynchronize(g->st), "running the forward pass")))
		return err;
	bytes[0] = n == 1 && g->graph ? g->graph_bytes[0] : g->bytes[0];
	bytes[1] = n == 1 && g->graph ? g->graph_bytes[1] : g->bytes[1];
	return g->xc ? tmc_xc_take(g->xc, bytes) : 0;
}
