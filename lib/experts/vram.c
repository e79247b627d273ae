// SPDX-License-Identifier: MIT
/*
 * The expert cache in VRAM: its bookkeeping (include/tiermem/experts.h, "The
 * cache in VRAM"). The policy is tm_xcache's, as in the DDR cache; what is
 * new is when a slot may change. The GPU reads a step's slots after the step
 * (the host node that calls tm_xvram_step runs in the CUDA stream before the
 * layer's expert kernels), so:
 *
 * - cpu: an admission's copy is queued and handed to the copier only at the
 *   next step, which the stream runs after this step's kernels; so a slot
 *   evicted now is still read correctly by this step's pairs. The slot turns
 *   READY when the copier reports the copy done, at some later step.
 * - pcie: a miss is gathered (copied over PCIe by a kernel) before the
 *   expert kernels, into its admitted slot or a staging slot; in stream
 *   order that gather precedes every later read, so an admitted slot is
 *   READY at the end of the step (FILLING until then, so that no other
 *   admission of the step takes it). A slot hit earlier in this same step can be evicted by a
 *   later admission of the step: its pairs then read their expert from a
 *   staging slot, gathered again.
 *
 * Nothing here touches a device: the copier is an interface, and the test
 * (tests/unit/test_xvram.c) drives it with host memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/model.h"

#define SLOT_ALIGN 256

struct pending {
	int l, e, slot;
};

struct tm_xvram {
	const struct tm_model *m;
	struct tm_xcache *cache;
	enum tm_xvram_miss miss;
	struct tm_xvram_layout lay;
	struct tm_xvram_copier copier;
	int *slot0;			/* per layer: its first cache slot */
	uint64_t *expert_bytes;		/* per layer: one expert's gate + up + down */
	int last_l;
	/* the last step: its layer and which experts the CPU computes */
	int step_l;
	bool *cpu;			/* per expert */
	/* per step scratch, per expert: its slot for this step (-1: not chosen), whether it hit */
	int *at;
	bool *hit;
	int *order;			/* distinct experts of the step, first use first */
	/* admissions waiting for the next step (cpu; a warm start), copies in flight, pcie's fused slots */
	struct pending *queued, *flying, *fused;
	int n_queued, n_flying;
	struct tm_expert_hook hook;
	struct tm_xvram_stats st;
};

static const struct tm_weight *mat(const struct tm_layer *L, int i)
{
	return i == 0 ? &L->gate_exps : i == 1 ? &L->up_exps : &L->down_exps;
}

static bool cpu_here(void *arg, int l, int e)
{
	const struct tm_xvram *x = arg;

	return l == x->step_l && x->cpu[e];
}

int tm_xvram_create(struct tm_xvram **out, const struct tm_model *m, const struct tm_xcache_opts *o,
		    enum tm_xvram_miss miss, int max_pairs)
{
	const struct tm_hparams *hp = &m->hp;
	struct tm_xvram *x;
	int err, at = 0, E = hp->n_expert;

	*out = NULL;
	if (!hp->moe)
		return tm_err(-EINVAL, "%s has no experts: an expert cache has nothing to hold", hp->arch_name);
	if (max_pairs < 1 || (miss != TM_XVRAM_CPU && miss != TM_XVRAM_PCIE))
		return tm_err(-EINVAL, "VRAM expert cache: %d pairs per call, miss mode %d", max_pairs, (int)miss);
	x = calloc(1, sizeof(*x));
	if (!x)
		return tm_err(-ENOMEM, "out of memory");
	x->m = m;
	x->miss = miss;
	x->last_l = -1;
	x->step_l = -1;
	if ((err = tm_xcache_create(&x->cache, hp->n_layer, E, o)))
		goto fail;
	x->slot0 = calloc(hp->n_layer, sizeof(*x->slot0));
	x->expert_bytes = calloc(hp->n_layer, sizeof(*x->expert_bytes));
	x->cpu = calloc(E, sizeof(*x->cpu));
	x->at = malloc(sizeof(*x->at) * E);
	x->hit = calloc(E, sizeof(*x->hit));
	x->order = malloc(sizeof(*x->order) * E);
	x->queued = malloc(sizeof(*x->queued) * (tm_xcache_slots_total(x->cache) + 1));
	x->flying = malloc(sizeof(*x->flying) * (tm_xcache_slots_total(x->cache) + 1));
	x->fused = malloc(sizeof(*x->fused) * E);
	if (!x->slot0 || !x->expert_bytes || !x->cpu || !x->at || !x->hit || !x->order || !x->queued ||
	    !x->flying || !x->fused) {
		err = tm_err(-ENOMEM, "out of memory");
		goto fail;
	}
	for (int e = 0; e < E; e++)
		x->at[e] = -1;
	/* a slot fits the widest expert of any layer */
	for (int i = 0; i < 3; i++) {
		size_t most = 0;

		for (int l = 0; l < hp->n_layer; l++)
			if (mat(&m->layers[l], i)->mat_bytes > most)
				most = mat(&m->layers[l], i)->mat_bytes;
		x->lay.off[i] = x->lay.slot_bytes;
		x->lay.slot_bytes += (most + SLOT_ALIGN - 1) / SLOT_ALIGN * SLOT_ALIGN;
	}
	for (int l = 0; l < hp->n_layer; l++) {
		x->slot0[l] = at;
		at += tm_xcache_slots(x->cache, l);
		for (int i = 0; i < 3; i++)
			x->expert_bytes[l] += mat(&m->layers[l], i)->mat_bytes;
	}
	x->lay.n_cache = at;
	x->lay.zero = at;
	x->lay.staging0 = at + 1;
	/* a step's distinct experts, at most: each needs at most one staging slot */
	x->lay.n_staging = miss == TM_XVRAM_PCIE ? (max_pairs < E ? max_pairs : E) : 0;
	x->lay.n_slots = x->lay.staging0 + x->lay.n_staging;
	x->hook = (struct tm_expert_hook){ .local = cpu_here, .arg = x };
	*out = x;
	return 0;
fail:
	tm_xvram_free(x);
	return err;
}

void tm_xvram_free(struct tm_xvram *x)
{
	if (!x)
		return;
	tm_xcache_free(x->cache);
	free(x->slot0);
	free(x->expert_bytes);
	free(x->cpu);
	free(x->at);
	free(x->hit);
	free(x->order);
	free(x->queued);
	free(x->flying);
	free(x->fused);
	free(x);
}

void tm_xvram_set_copier(struct tm_xvram *x, const struct tm_xvram_copier *c)
{
	x->copier = *c;
}

const struct tm_xvram_layout *tm_xvram_layout(const struct tm_xvram *x)
{
	return &x->lay;
}

enum tm_xvram_miss tm_xvram_miss_mode(const struct tm_xvram *x)
{
	return x->miss;
}

/* cpu: finished copies make their slots READY; the queued ones start (this step runs after their step's reads). */
static void copies(struct tm_xvram *x)
{
	int k = 0;

	for (int i = 0; i < x->n_flying; i++) {
		struct pending *p = &x->flying[i];

		if (x->copier.done(x->copier.arg, p->slot))
			tm_xcache_ready(x->cache, p->l, p->slot - x->slot0[p->l]);
		else
			x->flying[k++] = *p;
	}
	x->n_flying = k;
	for (int i = 0; i < x->n_queued; i++) {
		struct pending *p = &x->queued[i];

		x->copier.start(x->copier.arg, p->l, p->e, p->slot);
		x->flying[x->n_flying++] = *p;
		x->st.copies++;
		x->st.copy_bytes += x->expert_bytes[p->l];
		x->st.pcie_bytes += x->expert_bytes[p->l];
	}
	x->n_queued = 0;
}

static void gather(struct tm_xvram *x, int l, int e, int slot, struct tm_xvram_gather *g, int *n)
{
	g[(*n)++] = (struct tm_xvram_gather){ .l = l, .e = e, .slot = slot };
	x->st.gathers++;
	x->st.pcie_bytes += x->expert_bytes[l];
}

void tm_xvram_step(struct tm_xvram *x, int l, const int *sel, int n, int *ids, struct tm_xvram_gather *g,
		   int *n_gather)
{
	int K = x->m->hp.n_expert_used, nd = 0, staged = 0, n_fused = 0;

	*n_gather = 0;
	if (x->copier.done)
		copies(x);
	if (l <= x->last_l)
		tm_xcache_tick(x->cache);
	x->last_l = l;
	memset(x->cpu, 0, sizeof(*x->cpu) * x->m->hp.n_expert);
	x->step_l = l;
	/* each distinct expert is used once per step (a batch counts as one tick) */
	for (int p = 0; p < n * K; p++) {
		int e = sel[p], s;

		if (x->at[e] != -1)
			continue;
		x->order[nd++] = e;
		s = tm_xcache_use(x->cache, l, e);
		x->hit[e] = s >= 0;
		x->at[e] = s >= 0 ? x->slot0[l] + s : -2;	/* -2: a miss, placed below */
	}
	for (int i = 0; i < nd; i++) {
		int e = x->order[i], s;

		if (x->hit[e])
			continue;
		s = tm_xcache_admit(x->cache, l, e, false);
		if (x->miss == TM_XVRAM_CPU) {
			x->cpu[e] = true;
			x->at[e] = x->lay.zero;
			if (s >= 0 && x->copier.start)
				x->queued[x->n_queued++] = (struct pending){ .l = l, .e = e, .slot = x->slot0[l] + s };
			continue;
		}
		if (s >= 0) {
			/*
			 * fused: the gather that feeds this step's kernels fills the
			 * slot. READY only after the step's admissions: FILLING, no
			 * later admission of this step can take it back.
			 */
			x->at[e] = x->slot0[l] + s;
			x->fused[n_fused++] = (struct pending){ .l = l, .e = e, .slot = s };
		} else {
			x->at[e] = x->lay.staging0 + staged++;
		}
		gather(x, l, e, x->at[e], g, n_gather);
	}
	for (int i = 0; i < n_fused; i++)
		tm_xcache_ready(x->cache, l, x->fused[i].slot);
	/* pcie: a hit whose slot this step's admissions took is gathered again, into staging */
	for (int i = 0; x->miss == TM_XVRAM_PCIE && i < nd; i++) {
		int e = x->order[i];

		if (x->hit[e] && tm_xcache_slot_of(x->cache, l, e) != x->at[e] - x->slot0[l]) {
			x->hit[e] = false;
			x->at[e] = x->lay.staging0 + staged++;
			gather(x, l, e, x->at[e], g, n_gather);
		}
	}
	for (int p = 0; p < n * K; p++) {
		int e = sel[p];

		ids[p] = x->at[e];
		x->st.pairs++;
		if (x->hit[e]) {
			x->st.hit_pairs++;
			x->st.hit_bytes += x->expert_bytes[l];
		} else if (x->miss == TM_XVRAM_CPU) {
			x->st.cpu_pairs++;
		}
	}
	for (int i = 0; i < nd; i++) {
		x->at[x->order[i]] = -1;
		x->hit[x->order[i]] = false;
	}
}

int tm_xvram_warm(struct tm_xvram *x, int l, const int *experts, int n)
{
	int left = tm_xcache_slots(x->cache, l);

	if (!x->copier.start)
		return tm_err(-EINVAL, "VRAM expert cache: a warm start needs the device's copier");
	/* admitted, FILLING: READY once the copier has copied them (from the first step on) */
	for (int k = 0; k < n && left > 0; k++) {
		int s;

		if (experts[k] < 0 || experts[k] >= x->m->hp.n_expert ||
		    (s = tm_xcache_admit(x->cache, l, experts[k], false)) < 0)
			continue;
		x->queued[x->n_queued++] = (struct pending){ .l = l, .e = experts[k], .slot = x->slot0[l] + s };
		left--;
	}
	return 0;
}

void tm_xvram_attach(struct tm_xvram *x, struct tm_ctx *c)
{
	c->xhook = &x->hook;
}

const struct tm_xcache *tm_xvram_cache(const struct tm_xvram *x)
{
	return x->cache;
}

void tm_xvram_stats(const struct tm_xvram *x, struct tm_xvram_stats *out)
{
	*out = x->st;
}
