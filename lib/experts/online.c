// SPDX-License-Identifier: MIT
/*
 * The expert cache in the forward pass. Slots live in one anonymous mapping
 * on 2 MiB pages (the DDR tier without the module); a slot holds one
 * expert's gate, up and down matrices. The forward pass asks, through
 * struct tm_expert_hook, where each routed expert is: a READY slot, else its
 * home in the model's mappings (the slow tier). After the layer has run, its
 * misses are offered to the policy; an admitted expert is copied into its
 * slot either at once on the forward pass's thread (sync) or by a copier
 * thread with a bandwidth budget (async). Only the forward pass's thread
 * changes the cache's state, and only inside a hook, which runs between pool
 * hand-offs: a copy that the copier finishes is marked READY at the next
 * hook, so no matvec ever reads a slot that is being written.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/model.h"

_Static_assert(sizeof(((struct tm_xonline_stats *)0)->copy_read) / sizeof(uint64_t) == TM_MODEL_MAX_MAPS,
	       "copy_read has one counter per model mapping");

#define COPY_CHUNK (1u << 20)

struct copy_job {
	const void *src[3];
	void *dst[3];
	int l, s;
	atomic_bool done;
};

struct tm_xonline {
	struct tm_model *m;
	struct tm_xcache *cache;
	struct tm_xonline_opts o;
	struct tm_expert_hook hook;
	int map;			/* index of the region in m->maps */
	char *base;
	size_t off[3], slot_bytes;
	size_t *slot0;			/* per layer: its first slot's index in the region */
	int last_l;			/* the layer of the last resolve: a lower one starts a token */
	bool missed[64];		/* of the last resolve */
	int16_t *pred;			/* per layer: n_expert_used predicted experts, pred[0] < 0 if none */
	const struct tm_xassign *only;	/* tm_xonline_only; NULL: every expert */
	int only_rank;
	float *xn, *logits, *probs;	/* prediction scratch */
	struct tm_xonline_stats st;
	/* the copier: a ring of jobs, FIFO, one thread */
	struct copy_job *ring;
	size_t cap, head, tail, harvest;	/* pushed, taken by the copier, marked ready */
	pthread_t thread;
	bool have_thread, stop;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	_Atomic uint64_t copied_bytes;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const struct tm_weight *mat(const struct tm_layer *L, int i)
{
	return i == 0 ? &L->gate_exps : i == 1 ? &L->up_exps : &L->down_exps;
}

static char *slot_ptr(const struct tm_xonline *x, int l, int s)
{
	return x->base + (x->slot0[l] + (size_t)s) * x->slot_bytes;
}

/* Copy with a budget: sleep whenever the copier is ahead of copy_gbps. */
static void copy_budgeted(struct tm_xonline *x, void *dst, const void *src, size_t n, double t0,
			  uint64_t *done)
{
	for (size_t at = 0; at < n; at += COPY_CHUNK) {
		size_t len = n - at < COPY_CHUNK ? n - at : COPY_CHUNK;

		memcpy((char *)dst + at, (const char *)src + at, len);
		*done += len;
		if (x->o.copy_gbps > 0) {
			double ahead = *done / (x->o.copy_gbps * 1e9) - (now_s() - t0);

			if (ahead > 1e-4)
				nanosleep(&(struct timespec){ 0, (long)(ahead * 1e9) }, NULL);
		}
	}
}

static void *copier(void *arg)
{
	struct tm_xonline *x = arg;
	double t0 = now_s();
	uint64_t done = 0;

	pthread_mutex_lock(&x->lock);
	for (;;) {
		while (!x->stop && x->tail == x->head)
			pthread_cond_wait(&x->wake, &x->lock);
		if (x->stop)
			break;
		struct copy_job *j = &x->ring[x->tail % x->cap];

		pthread_mutex_unlock(&x->lock);
		if (x->o.copy_gbps > 0 && now_s() - t0 > 1.0) {
			/* the budget is a rate, not a debt: idle time does not buy a burst */
			t0 = now_s();
			done = 0;
		}
		for (int i = 0; i < 3; i++)
			copy_budgeted(x, j->dst[i], j->src[i],
				      mat(&x->m->layers[j->l], i)->mat_bytes, t0, &done);
		atomic_store_explicit(&j->done, true, memory_order_release);
		pthread_mutex_lock(&x->lock);
		x->tail++;
	}
	pthread_mutex_unlock(&x->lock);
	return NULL;
}

/* Copies the copier has finished: their slots become READY (forward pass's thread only). */
static void harvest(struct tm_xonline *x)
{
	while (x->harvest != x->head) {
		struct copy_job *j = &x->ring[x->harvest % x->cap];

		if (!atomic_load_explicit(&j->done, memory_order_acquire))
			break;
		tm_xcache_ready(x->cache, j->l, j->s);
		x->harvest++;
	}
}

/* Slot s of layer l now belongs to expert e: fill it. */
static void fill(struct tm_xonline *x, int l, int s, int e)
{
	const struct tm_layer *L = &x->m->layers[l];
	char *dst = slot_ptr(x, l, s);
	const void *src[3];
	struct tm_expert_at home;
	size_t bytes = 0;

	/* where the model has it: a share of the experts packs them (tm_expert_home knows how) */
	tm_expert_home(L, e, &home);
	for (int i = 0; i < 3; i++) {
		const struct tm_weight *w = mat(L, i);

		src[i] = home.w[i];
		x->st.copy_read[home.map[i]] += w->mat_bytes;
		bytes += w->mat_bytes;
	}
	x->st.copies++;
	x->st.copy_bytes += bytes;
	if (x->o.sync_copy) {
		double t0 = now_s();

		for (int i = 0; i < 3; i++)
			memcpy(dst + x->off[i], src[i], mat(L, i)->mat_bytes);
		tm_xcache_ready(x->cache, l, s);
		x->st.copy_wait_s += now_s() - t0;
		return;
	}
	/* the ring holds every slot once, and a FILLING slot is never reused: it cannot overflow */
	struct copy_job *j = &x->ring[x->head % x->cap];

	for (int i = 0; i < 3; i++) {
		j->src[i] = src[i];
		j->dst[i] = dst + x->off[i];
	}
	j->l = l;
	j->s = s;
	atomic_store_explicit(&j->done, false, memory_order_relaxed);
	pthread_mutex_lock(&x->lock);
	x->head++;
	pthread_cond_signal(&x->wake);
	pthread_mutex_unlock(&x->lock);
}

static void on_resolve(void *arg, int l, const int *sel, int k, struct tm_expert_at *at)
{
	struct tm_xonline *x = arg;
	const struct tm_layer *L = &x->m->layers[l];
	int K = x->m->hp.n_expert_used;
	int16_t *p = x->pred + (size_t)l * K;

	if (l < x->last_l)
		tm_xcache_tick(x->cache);
	x->last_l = l;
	harvest(x);
	if (p[0] >= 0) {
		for (int j = 0; j < k; j++)
			for (int i = 0; i < K; i++)
				x->st.pred_right += p[i] == sel[j];
		x->st.pred_total += K;
		p[0] = -1;
	}
	for (int j = 0; j < k; j++) {
		int s = tm_xcache_use(x->cache, l, sel[j]);

		x->missed[j] = s < 0;
		if (s < 0) {
			tm_expert_home(L, sel[j], &at[j]);
			continue;
		}
		for (int i = 0; i < 3; i++) {
			at[j].w[i] = slot_ptr(x, l, s) + x->off[i];
			at[j].map[i] = (uint8_t)x->map;
		}
	}
}

/* Is expert e computed in this process (tm_xonline_only)? */
static bool here(const struct tm_xonline *x, int l, int e)
{
	return !x->only || tm_xassign_owner(x->only, l, e) == x->only_rank;
}

static void on_done(void *arg, int l, const int *sel, int k)
{
	struct tm_xonline *x = arg;

	for (int j = 0; j < k; j++) {
		int s;

		if (x->missed[j] && (s = tm_xcache_admit(x->cache, l, sel[j], false)) >= 0)
			fill(x, l, s, sel[j]);
	}
}

/*
 * Fate's predictor: layer l's FFN input (the residual stream after its
 * attention, normed by layer l's ffn_norm) through layer l+1's router.
 */
static void on_after_attn(void *arg, struct tm_ctx *c, int l, const float *xr)
{
	struct tm_xonline *x = arg;
	const struct tm_hparams *hp = &x->m->hp;
	int K = hp->n_expert_used, sel[64];
	const struct tm_layer *L = &x->m->layers[l], *N;
	float w[64];
	int16_t *p;

	if (!x->o.predict || l + 1 >= hp->n_layer || !x->m->layers[l + 1].moe)
		return;
	N = &x->m->layers[l + 1];
	/* a share of the layers (--split layers): the next layer may be another rank's */
	if (!N->gate_inp.data || !N->gate_exps.data)
		return;
	p = x->pred + (size_t)(l + 1) * K;
	tm_rmsnorm(x->xn, xr, L->ffn_norm.data, hp->n_embd, hp->rms_eps);
	struct tm_matvec job = {
		.type = N->gate_inp.type, .w = N->gate_inp.data, .row_stride = N->gate_inp.row_bytes,
		.rows = N->gate_inp.rows, .cols = N->gate_inp.cols, .x = x->xn, .y = x->logits,
	};

	tm_matvec_batch(c->pool, &job, 1);
	c->handoffs++;
	c->weight_bytes += N->gate_inp.mat_bytes;
	c->map_bytes[N->gate_inp.map] += N->gate_inp.mat_bytes;
	x->st.router_bytes += N->gate_inp.mat_bytes;
	harvest(x);
	/* the forward pass's own routing (bias, groups, gating), on a guess of the next layer's input */
	tm_route(hp, N->exp_probs_b.data, x->logits, x->probs, sel, w);
	for (int j = 0; j < K; j++)
		p[j] = (int16_t)sel[j];
	for (int j = 0; j < K; j++) {
		int s;

		if (!here(x, l + 1, p[j]))
			continue;
		s = tm_xcache_admit(x->cache, l + 1, p[j], true);
		if (s >= 0)
			fill(x, l + 1, s, p[j]);
	}
}

int tm_xonline_create(struct tm_xonline **out, struct tm_model *m, const struct tm_xonline_opts *o)
{
	const struct tm_hparams *hp = &m->hp;
	struct tm_xonline *x;
	long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	size_t total;
	int err;

	*out = NULL;
	if (!hp->moe)
		return tm_err(-EINVAL, "%s has no experts: an expert cache has nothing to hold", hp->arch_name);
	if (hp->n_expert_used > 64)
		return tm_err(-EINVAL, "%d experts per token; the cache handles at most 64", hp->n_expert_used);
	if (m->n_maps >= TM_MODEL_MAX_MAPS)
		return tm_err(-EINVAL, "the model already uses %d mappings", m->n_maps);
	x = calloc(1, sizeof(*x));
	if (!x)
		return tm_err(-ENOMEM, "out of memory");
	x->m = m;
	x->o = *o;
	x->map = -1;
	x->last_l = -1;
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->wake, NULL);
	if ((err = tm_xcache_create(&x->cache, hp->n_layer, hp->n_expert, &o->cache)))
		goto fail;
	/* a slot fits the largest expert: mixes like q4_K_M give some layers a wider type */
	for (int i = 0; i < 3; i++) {
		size_t most = 0;

		for (int l = 0; l < hp->n_layer; l++)
			if (mat(&m->layers[l], i)->mat_bytes > most)
				most = mat(&m->layers[l], i)->mat_bytes;
		x->off[i] = x->slot_bytes;
		x->slot_bytes += (most + 63) & ~(size_t)63;
	}
	x->slot0 = malloc(sizeof(*x->slot0) * hp->n_layer);
	if (!x->slot0) {
		err = tm_err(-ENOMEM, "out of memory");
		goto fail;
	}
	for (int l = 0, at = 0; l < hp->n_layer; at += tm_xcache_slots(x->cache, l), l++)
		x->slot0[l] = (size_t)at;
	total = x->slot_bytes * (size_t)tm_xcache_slots_total(x->cache);
	if (pages > 0 && psz > 0 && total > (size_t)pages * psz) {
		err = tm_err(-ENOSPC, "an expert cache of %.2f GiB (%d slots x %.1f MiB) exceeds "
			     "the %.2f GiB of free DDR", total / 1073741824.0, tm_xcache_slots_total(x->cache),
			     x->slot_bytes / 1048576.0, (double)pages * psz / 1073741824.0);
		goto fail;
	}
	if ((err = tm_map_anon(&m->maps[m->n_maps], total, TM_PAGES_THP, 0)))
		goto fail;
	x->map = m->n_maps++;
	snprintf(m->maps[x->map].path, sizeof(m->maps[x->map].path), "expert cache");
	x->base = m->maps[x->map].addr;
	x->pred = malloc(sizeof(*x->pred) * hp->n_layer * hp->n_expert_used);
	x->xn = malloc(sizeof(float) * hp->n_embd);
	x->logits = malloc(sizeof(float) * hp->n_expert);
	x->probs = malloc(sizeof(float) * hp->n_expert);
	x->cap = (size_t)tm_xcache_slots_total(x->cache);
	x->ring = calloc(x->cap, sizeof(*x->ring));
	if (!x->pred || !x->xn || !x->logits || !x->probs || !x->ring) {
		err = tm_err(-ENOMEM, "out of memory");
		goto fail;
	}
	for (int l = 0; l < hp->n_layer; l++)
		x->pred[(size_t)l * hp->n_expert_used] = -1;
	if (!o->sync_copy) {
		if ((err = pthread_create(&x->thread, NULL, copier, x))) {
			err = tm_err(-err, "cannot start the expert copier thread");
			goto fail;
		}
		x->have_thread = true;
	}
	x->hook = (struct tm_expert_hook){
		.resolve = on_resolve, .done = on_done, .after_attn = on_after_attn, .arg = x,
	};
	*out = x;
	return 0;
fail:
	tm_xonline_free(x);
	return err;
}

void tm_xonline_only(struct tm_xonline *x, const struct tm_xassign *a, int rank)
{
	x->only = a;
	x->only_rank = rank;
}

void tm_xonline_attach(struct tm_xonline *x, struct tm_ctx *c)
{
	c->xhook = &x->hook;
}

int tm_xonline_warm(struct tm_xonline *x, const struct tm_xheat *h)
{
	const struct tm_hparams *hp = &x->m->hp;
	int *order;

	if (h->model.n_layer != hp->n_layer || h->model.n_expert != hp->n_expert)
		return tm_err(-EINVAL, "heat of %d layers of %d experts for a model of %d of %d",
			      h->model.n_layer, h->model.n_expert, hp->n_layer, hp->n_expert);
	order = malloc(sizeof(int) * hp->n_expert);
	if (!order)
		return tm_err(-ENOMEM, "out of memory");
	for (int l = 0; l < hp->n_layer; l++) {
		const struct tm_layer *L = &x->m->layers[l];
		int n = 0;

		if (!L->gate_exps.data)
			continue;	/* another rank's layer (a share of the layers) */
		tm_xheat_order(h, l, order);
		/* the hottest of the experts computed here */
		for (int j = 0; j < hp->n_expert; j++)
			if (here(x, l, order[j]))
				order[n++] = order[j];
		tm_xcache_preload(x->cache, l, order, n);
		for (int s = 0; s < tm_xcache_slots(x->cache, l); s++) {
			int e = tm_xcache_expert_in(x->cache, l, s);
			struct tm_expert_at home;

			if (e >= 0)
				tm_expert_home(L, e, &home);
			for (int i = 0; e >= 0 && i < 3; i++) {
				const struct tm_weight *w = mat(L, i);

				memcpy(slot_ptr(x, l, s) + x->off[i], home.w[i], w->mat_bytes);
				x->st.copy_read[home.map[i]] += w->mat_bytes;
				x->st.copy_bytes += w->mat_bytes;
			}
		}
	}
	free(order);
	return 0;
}

void tm_xonline_drain(struct tm_xonline *x)
{
	double t0 = now_s();

	while (x->harvest != x->head) {
		harvest(x);
		if (x->harvest != x->head)
			sched_yield();
	}
	x->st.copy_wait_s += now_s() - t0;
}

const struct tm_xcache *tm_xonline_cache(const struct tm_xonline *x)
{
	return x->cache;
}

int tm_xonline_map(const struct tm_xonline *x)
{
	return x->map;
}

uint64_t tm_xonline_bytes(const struct tm_xonline *x)
{
	return x->map >= 0 ? x->m->maps[x->map].size : 0;
}

void tm_xonline_stats(struct tm_xonline *x, struct tm_xonline_stats *out)
{
	*out = x->st;
}

void tm_xonline_free(struct tm_xonline *x)
{
	if (!x)
		return;
	if (x->have_thread) {
		pthread_mutex_lock(&x->lock);
		x->stop = true;
		pthread_cond_signal(&x->wake);
		pthread_mutex_unlock(&x->lock);
		pthread_join(x->thread, NULL);
	}
	if (x->map >= 0) {
		/* the region is the model's last mapping: hand it back before the model goes */
		tm_unmap(&x->m->maps[x->map]);
		x->m->n_maps--;
	}
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->wake);
	tm_xcache_free(x->cache);
	free(x->pred);
	free(x->xn);
	free(x->logits);
	free(x->probs);
	free(x->ring);
	free(x->slot0);
	free(x);
}
