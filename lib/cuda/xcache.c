// SPDX-License-Identifier: MIT
/*
 * The expert cache in VRAM, device side (part of libtiermem-cuda.so): the
 * slot arena, the host node that asks the bookkeeping (lib/experts/vram.c)
 * where each (token, expert) pair is, and the two ways a miss is served:
 *
 * - CPU: the host node also runs the CPU's expert code for the missed pairs
 *   only (the context's xhook, tm_xvram_attach), whose sum comes back after
 *   the GPU's kernels have summed the hits (the misses read the zero slot:
 *   exactly 0). Admitted misses are copied into their slots by a copier
 *   thread with cudaMemcpyAsync on a side stream, so the decode stream never
 *   waits for a copy; the bookkeeping hands a copy over only at the next
 *   step, once this step's kernels are done with the slot. A warm start
 *   (--expert-heat) fills the hottest experts' slots the same way, in
 *   either mode.
 * - pcie: the host node lists gathers (expert, slot) and tmc_gather copies
 *   them from pinned host memory (read over PCIe through its mapped address)
 *   into their slots before the kernels run: one PCIe read serves the
 *   product and the admission.
 *
 * All of it is in the decode stream, so the captured decode graph replays it
 * with each token's routing. Host nodes make no CUDA calls (CUDA forbids
 * it): the copier thread does.
 *
 * NOT VERIFIED: written and compiled on a machine without a GPU;
 * tests/gpu/check_gpu.c compares logits and greedy text with and without the
 * cache on the next machine that has one (make check-gpu). The bookkeeping
 * is tested on the CPU (tests/unit/test_xvram.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_kernels.h"
#include "lib/cuda/cuda_internal.h"
#include "lib/gpu/cuda_api.h"
#include "tiermem/error.h"

struct xnode {
	struct tmc_xc *xc;
	int layer;
};

struct xjob {
	int l, e, slot;
};

struct tmc_xc {
	const struct tm_model *m;
	struct tmc_host host;
	struct tm_xvram_layout lay;
	const char *(*dev_of)(void *arg, const void *host);	/* pcie: a pinned host address's device one */
	void *dev_arg;
	int n_batch, max_jobs, dev;
	char *arena;
	int *d_ids, *d_njobs;
	struct tmc_copy *d_jobs;
	/* pinned host buffers: routing and hidden state in, ids and gathers out, the CPU's sum */
	int *h_sel, *h_ids, *h_njobs;
	float *h_x, *h_w, *h_out;
	struct tmc_copy *h_jobs;
	struct tm_xvram_gather *gat;
	struct xnode *nodes;
	int moe_n;
	uint64_t bytes[2];		/* weight bytes the host nodes counted since the last take: VRAM, PCIe */
	/* the copier (CPU misses) */
	cudaStream_t side;
	pthread_t thread;
	bool have_thread, stop;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct xjob *ring;
	size_t cap, head, tail;
	_Atomic unsigned char *done;	/* per arena slot */
	int copy_err;			/* a failed copy: its slot never becomes READY */
};

static const struct tm_weight *mat(const struct tm_layer *L, int i)
{
	return i == 0 ? &L->gate_exps : i == 1 ? &L->up_exps : &L->down_exps;
}

static uint64_t expert_bytes(const struct tm_layer *L)
{
	return mat(L, 0)->mat_bytes + mat(L, 1)->mat_bytes + mat(L, 2)->mat_bytes;
}

static void *copier(void *arg)
{
	struct tmc_xc *xc = arg;

	cudaSetDevice(xc->dev);
	pthread_mutex_lock(&xc->lock);
	for (;;) {
		while (!xc->stop && xc->tail == xc->head)
			pthread_cond_wait(&xc->wake, &xc->lock);
		if (xc->stop)
			break;
		struct xjob j = xc->ring[xc->tail % xc->cap];
		const struct tm_layer *L = &xc->m->layers[j.l];
		struct tm_expert_at home;
		cudaError_t e = cudaSuccess;

		pthread_mutex_unlock(&xc->lock);
		tm_expert_home(L, j.e, &home);
		for (int i = 0; i < 3 && e == cudaSuccess; i++)
			e = cudaMemcpyAsync(xc->arena + (size_t)j.slot * xc->lay.slot_bytes + xc->lay.off[i], home.w[i],
					    mat(L, i)->mat_bytes, cudaMemcpyHostToDevice, xc->side);
		if (e == cudaSuccess)
			e = cudaStreamSynchronize(xc->side);
		if (e == cudaSuccess)
			atomic_store_explicit(&xc->done[j.slot], 1, memory_order_release);
		pthread_mutex_lock(&xc->lock);
		if (e != cudaSuccess)
			xc->copy_err = (int)e;
		xc->tail++;
	}
	pthread_mutex_unlock(&xc->lock);
	return NULL;
}

/* From the host node (the bookkeeping's step): no CUDA call here, the copier makes them. */
static void copy_start(void *arg, int l, int e, int slot)
{
	struct tmc_xc *xc = arg;

	atomic_store_explicit(&xc->done[slot], 0, memory_order_relaxed);
	pthread_mutex_lock(&xc->lock);
	/* one job per cache slot at most (a FILLING slot is never taken again): the ring cannot overflow */
	xc->ring[xc->head++ % xc->cap] = (struct xjob){ .l = l, .e = e, .slot = slot };
	pthread_cond_signal(&xc->wake);
	pthread_mutex_unlock(&xc->lock);
}

static bool copy_done(void *arg, int slot)
{
	struct tmc_xc *xc = arg;

	return atomic_load_explicit(&xc->done[slot], memory_order_acquire);
}

/*
 * Layer l's host node: where each pair is; pcie: the gathers as copies for
 * tmc_gather; cpu: the CPU computes the missed pairs. Counts the weight
 * bytes read from VRAM (hits) and over PCIe (gathers).
 */
static void CUDART_CB resolve(void *arg)
{
	const struct xnode *nd = arg;
	struct tmc_xc *xc = nd->xc;
	const struct tm_layer *L = &xc->m->layers[nd->layer];
	int n = xc->moe_n, K = xc->m->hp.n_expert_used, ng = 0, nj = 0;
	uint64_t eb = expert_bytes(L);

	xc->host.xstep(xc->host.xvram, nd->layer, xc->h_sel, n, xc->h_ids, xc->gat, &ng);
	for (int i = 0; i < ng; i++) {
		struct tm_expert_at home;

		tm_expert_home(L, xc->gat[i].e, &home);
		for (int k = 0; k < 3; k++)
			xc->h_jobs[nj++] = (struct tmc_copy){
				.src = xc->dev_of(xc->dev_arg, home.w[k]),
				.dst = xc->arena + (size_t)xc->gat[i].slot * xc->lay.slot_bytes + xc->lay.off[k],
				.bytes = mat(L, k)->mat_bytes,
			};
		xc->bytes[1] += eb;
	}
	*xc->h_njobs = nj;
	for (int p = 0; p < n * K; p++) {
		bool gathered = false;

		for (int i = 0; i < ng && !gathered; i++)
			gathered = xc->gat[i].slot == xc->h_ids[p];
		if (xc->h_ids[p] != xc->lay.zero && !gathered)
			xc->bytes[0] += eb;
	}
	if (xc->host.xmiss == TM_XVRAM_CPU)
		xc->host.experts(xc->host.ctx, nd->layer, xc->h_x, xc->h_sel, xc->h_w, n, xc->h_out);
}

static const char *no_dev(void *arg, const void *host)
{
	return NULL;
}

int tmc_xc_create(struct tmc_xc **out, const struct tm_model *m, const struct tmc_host *host, int n_batch,
		  const char *(*dev_of)(void *arg, const void *host), void *dev_arg)
{
	const struct tm_hparams *hp = &m->hp;
	size_t K = hp->n_expert_used, E = hp->n_embd, B = n_batch, pin;
	struct tmc_xc *xc;
	char *p;
	int err;

	*out = NULL;
	xc = calloc(1, sizeof(*xc));
	if (!xc)
		return tm_err(-ENOMEM, "out of memory");
	xc->m = m;
	xc->host = *host;
	xc->lay = *host->xlay;
	xc->n_batch = n_batch;
	xc->dev_of = dev_of ? dev_of : no_dev;
	xc->dev_arg = dev_arg;
	xc->max_jobs = 3 * (xc->lay.n_staging ? xc->lay.n_staging : 1);
	pthread_mutex_init(&xc->lock, NULL);
	pthread_cond_init(&xc->wake, NULL);
	cudaGetDevice(&xc->dev);
	xc->nodes = calloc(hp->n_layer, sizeof(*xc->nodes));
	xc->gat = calloc(xc->lay.n_staging ? xc->lay.n_staging : 1, sizeof(*xc->gat));
	xc->cap = (size_t)xc->lay.n_cache + 1;
	xc->ring = calloc(xc->cap, sizeof(*xc->ring));
	xc->done = calloc(xc->lay.n_slots, sizeof(*xc->done));
	if (!xc->nodes || !xc->gat || !xc->ring || !xc->done) {
		err = tm_err(-ENOMEM, "out of memory");
		goto fail;
	}
	for (int l = 0; l < hp->n_layer; l++)
		xc->nodes[l] = (struct xnode){ .xc = xc, .layer = l };
	/* pinned: sel and ids (B*K ints each), hidden state and sums (B*E floats each), weights, the gathers */
	pin = sizeof(int) * 2 * B * K + sizeof(float) * (2 * B * E + B * K) + sizeof(int) * 4 +
	      sizeof(struct tmc_copy) * xc->max_jobs;
	if ((err = tmc_check(cudaMalloc((void **)&xc->arena, (size_t)xc->lay.n_slots * xc->lay.slot_bytes),
			     "VRAM for the expert cache")) ||
	    (err = tmc_check(cudaMemset(xc->arena + (size_t)xc->lay.zero * xc->lay.slot_bytes, 0, xc->lay.slot_bytes),
			     "zeroing the expert cache's zero slot")) ||
	    (err = tmc_check(cudaMalloc((void **)&xc->d_jobs, sizeof(struct tmc_copy) * xc->max_jobs +
					sizeof(int) * (B * K + 4)), "VRAM for the expert cache's lists")) ||
	    (err = tmc_check(cudaMallocHost((void **)&p, pin), "pinned buffers for the expert cache")))
		goto fail;
	/* one allocation each side: the jobs (aligned as allocations are), their count, the ids */
	xc->d_njobs = (int *)(xc->d_jobs + xc->max_jobs);
	xc->d_ids = xc->d_njobs + 4;
	xc->h_jobs = (struct tmc_copy *)p;
	xc->h_njobs = (int *)(p + sizeof(struct tmc_copy) * xc->max_jobs);
	xc->h_sel = xc->h_njobs + 4;
	xc->h_ids = xc->h_sel + B * K;
	xc->h_x = (float *)(xc->h_ids + B * K);
	xc->h_out = xc->h_x + B * E;
	xc->h_w = xc->h_out + B * E;
	/* the copier: CPU misses' admissions, and a warm start's copies in either mode */
	if ((err = tmc_check(cudaStreamCreateWithFlags(&xc->side, cudaStreamNonBlocking), "the copy stream")))
		goto fail;
	if (pthread_create(&xc->thread, NULL, copier, xc)) {
		err = tm_err(-EAGAIN, "cannot start the expert cache's copier thread");
		goto fail;
	}
	xc->have_thread = true;
	host->xset_copier(host->xvram, &(struct tm_xvram_copier){ .start = copy_start, .done = copy_done, .arg = xc });
	*out = xc;
	return 0;
fail:
	tmc_xc_free(xc);
	return err;
}

void tmc_xc_free(struct tmc_xc *xc)
{
	if (!xc)
		return;
	if (xc->have_thread) {
		pthread_mutex_lock(&xc->lock);
		xc->stop = true;
		pthread_cond_signal(&xc->wake);
		pthread_mutex_unlock(&xc->lock);
		pthread_join(xc->thread, NULL);
	}
	if (xc->side)
		cudaStreamDestroy(xc->side);
	cudaFree(xc->arena);
	cudaFree(xc->d_jobs);
	cudaFreeHost(xc->h_jobs);
	pthread_mutex_destroy(&xc->lock);
	pthread_cond_destroy(&xc->wake);
	free(xc->nodes);
	free(xc->gat);
	free(xc->ring);
	free(xc->done);
	free(xc);
}

size_t tmc_xc_vram(const struct tmc_host *host)
{
	return (size_t)host->xlay->n_slots * host->xlay->slot_bytes;
}

int tmc_xc_resolve(struct tmc_xc *xc, int l, int n, const int *sel, const float *selw, const float *xb,
		   cudaStream_t st)
{
	size_t K = xc->m->hp.n_expert_used, E = xc->m->hp.n_embd;
	int err;

	if ((err = tmc_check(cudaMemcpyAsync(xc->h_sel, sel, sizeof(int) * n * K, cudaMemcpyDeviceToHost, st),
			     "copying the routing to the host")))
		return err;
	if (xc->host.xmiss == TM_XVRAM_CPU &&
	    ((err = tmc_check(cudaMemcpyAsync(xc->h_x, xb, sizeof(float) * n * E, cudaMemcpyDeviceToHost, st),
			      "copying the hidden state to the CPU")) ||
	     (err = tmc_check(cudaMemcpyAsync(xc->h_w, selw, sizeof(float) * n * K, cudaMemcpyDeviceToHost, st),
			      "copying the routing to the CPU"))))
		return err;
	if ((err = tmc_check(cudaLaunchHostFunc(st, resolve, &xc->nodes[l]), "the expert cache's host node")) ||
	    (err = tmc_check(cudaMemcpyAsync(xc->d_ids, xc->h_ids, sizeof(int) * n * K, cudaMemcpyHostToDevice, st),
			     "copying the expert cache's slots")))
		return err;
	if (xc->host.xmiss != TM_XVRAM_PCIE)
		return 0;
	if ((err = tmc_check(cudaMemcpyAsync(xc->d_jobs, xc->h_jobs, sizeof(struct tmc_copy) * xc->max_jobs,
					     cudaMemcpyHostToDevice, st), "copying the expert cache's gathers")) ||
	    (err = tmc_check(cudaMemcpyAsync(xc->d_njobs, xc->h_njobs, sizeof(int), cudaMemcpyHostToDevice, st),
			     "copying the expert cache's gathers")))
		return err;
	return tmc_gather(xc->d_jobs, xc->d_njobs, xc->max_jobs, st) ? tm_err(-EIO, "gather: kernel launch failed") : 0;
}

void tmc_xc_batch(struct tmc_xc *xc, int n)
{
	xc->moe_n = n;
}

const int *tmc_xc_ids(const struct tmc_xc *xc)
{
	return xc->d_ids;
}

const char *tmc_xc_w(const struct tmc_xc *xc, int i)
{
	return xc->arena + xc->lay.off[i];
}

size_t tmc_xc_slot_bytes(const struct tmc_xc *xc)
{
	return xc->lay.slot_bytes;
}

int tmc_xc_cpu_sum(struct tmc_xc *xc, float *dst, int n, cudaStream_t st)
{
	return tmc_check(cudaMemcpyAsync(dst, xc->h_out, sizeof(float) * n * xc->m->hp.n_embd, cudaMemcpyHostToDevice,
					 st), "copying the CPU's experts back");
}

int tmc_xc_take(struct tmc_xc *xc, uint64_t bytes[2])
{
	int err = 0;

	bytes[0] += xc->bytes[0];
	bytes[1] += xc->bytes[1];
	xc->bytes[0] = xc->bytes[1] = 0;
	pthread_mutex_lock(&xc->lock);
	if (xc->copy_err)
		err = tm_err(-EIO, "expert cache: copying an expert into VRAM failed: CUDA error %d (%s)", xc->copy_err,
			     cudaGetErrorString((cudaError_t)xc->copy_err));
	pthread_mutex_unlock(&xc->lock);
	return err;
}
