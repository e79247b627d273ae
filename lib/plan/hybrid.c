// SPDX-License-Identifier: MIT
/*
 * The planner with a GPU: the CPU/GPU hybrid that huge MoE models run
 * (llama.cpp's -ot exps=CPU, KTransformers). A tensor in VRAM is computed by
 * the GPU; one on a host tier by the CPU where it lives, or, with a pcie
 * tier, by the GPU reading it in place over PCIe. Per token:
 *
 *	GPU work outside the MoE phase (VRAM and PCIe reads, one after another)
 *	+ CPU work outside it (tm_plan_cost over the host tiers' reads)
 *	+ per layer, the MoE phase: routed experts and shared experts, at once
 *	  when each is wholly on its own processor (bounded by the host tiers
 *	  both read), else one after the other
 *	+ per layer with work on both processors, a hand-off of the hidden state
 *
 * The forward pass this models is lib/cuda/forward.c's hybrid; the model is
 * arithmetic on the bandwidths given, not measured here (no GPU).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/plan/plan_internal.h"
#include "tiermem/error.h"
#include "tiermem/plan.h"

enum { ROUTED, SHARED };

struct layer_acc {
	double cpu[2][TM_PLAN_MAX_TIERS];	/* CPU reads per tier: routed, shared experts */
	double gpu[2];				/* GPU seconds: the same two */
	double host[TM_PLAN_MAX_TIERS];		/* both processors' reads of each host tier */
	bool on_cpu, on_gpu;
};

/* The GPU's seconds for t: VRAM at its bandwidth, a host tier at the slower of it and PCIe. */
static double gpu_sec(const struct tm_plan *p, const struct tm_plan_tensor *t)
{
	double bw = p->tiers[t->tier].gbps;

	if (t->tier != p->gpu_tier && p->tiers[p->pcie_tier].gbps < bw)
		bw = p->tiers[p->pcie_tier].gbps;
	return t->read_per_token / (bw * 1e9);
}

static double max3(double a, double b, double c)
{
	return a > b ? (a > c ? a : c) : (b > c ? b : c);
}

/* One layer's MoE phase. */
static double moe_phase(const struct tm_plan *p, const struct layer_acc *a, double *serial)
{
	double rc = tm_plan_cost(p, a->cpu[ROUTED]), sc = tm_plan_cost(p, a->cpu[SHARED]);
	double rg = a->gpu[ROUTED], sg = a->gpu[SHARED], bound = 0;

	*serial = rc + rg + sc + sg;
	if (!((rc > 0 && rg == 0 && sg > 0 && sc == 0) || (rg > 0 && rc == 0 && sc > 0 && sg == 0)))
		return *serial;
	/* at once: each host tier still serves both processors' reads */
	for (int i = 0; i < p->n_tiers; i++)
		if (i != p->gpu_tier && a->host[i] / (p->tiers[i].gbps * 1e9) > bound)
			bound = a->host[i] / (p->tiers[i].gbps * 1e9);
	return max3(rc + rg, sc + sg, bound);
}

int tm_plan_predict(struct tm_plan *p)
{
	struct tm_plan_hybrid *h = &p->hy;
	double serial[TM_PLAN_MAX_TIERS] = { 0 }, copy = TM_PLAN_HANDOFF_SEC;
	struct layer_acc *la;
	int n_layer = 0;

	memset(h, 0, sizeof(*h));
	if (p->gpu_tier < 0) {
		p->sec_per_token = tm_plan_cost(p, p->tier_read);
		return 0;
	}
	for (size_t i = 0; i < p->n_tensors; i++) {
		int l = plan_layer_of(p->tensors[i].name);

		n_layer = l + 1 > n_layer ? l + 1 : n_layer;
	}
	la = calloc(n_layer ? (size_t)n_layer : 1, sizeof(*la));
	if (!la)
		return tm_err(-ENOMEM, "plan: out of memory");
	for (size_t i = 0; i < p->n_tensors; i++) {
		const struct tm_plan_tensor *t = &p->tensors[i];
		int l = plan_layer_of(t->name);
		int phase = t->cls == TM_TC_EXPERTS ? ROUTED : t->cls == TM_TC_SHEXP ? SHARED : -1;
		struct layer_acc *a = l >= 0 ? &la[l] : NULL;

		if (!(t->read_per_token > 0))
			continue;
		if (t->gpu) {
			if (t->tier == p->gpu_tier)
				h->vram_read += t->read_per_token;
			else
				h->pcie_read += t->read_per_token;
		}
		if (a && phase >= 0) {
			if (t->gpu)
				a->gpu[phase] += gpu_sec(p, t);
			else
				a->cpu[phase][t->tier] += t->read_per_token;
			if (t->tier != p->gpu_tier)
				a->host[t->tier] += t->read_per_token;
		} else if (t->gpu) {
			h->gpu_sec += gpu_sec(p, t);
		} else {
			serial[t->tier] += t->read_per_token;
		}
		if (a) {
			a->on_gpu |= t->gpu;
			a->on_cpu |= !t->gpu;
		}
	}
	h->cpu_sec = tm_plan_cost(p, serial);
	if (p->pcie_tier >= 0)
		copy += 2.0 * sizeof(float) * p->n_embd / (p->tiers[p->pcie_tier].gbps * 1e9);
	for (int l = 0; l < n_layer; l++) {
		double s;

		h->moe_sec += moe_phase(p, &la[l], &s);
		h->moe_serial_sec += s;
		if (la[l].on_cpu && la[l].on_gpu)
			h->handoffs++;
	}
	h->handoff_sec = h->handoffs * copy;
	p->sec_per_token = h->gpu_sec + h->cpu_sec + h->moe_sec + h->handoff_sec;
	free(la);
	return 0;
}

/* A move of the search: the free host tensors of one layer and class (a layer's three expert tensors go together). */
static bool same_group(const struct tm_plan_tensor *a, const struct tm_plan_tensor *b)
{
	int la = plan_layer_of(a->name);

	return la >= 0 && la == plan_layer_of(b->name) && a->cls == b->cls;
}

static bool free_on_host(const struct tm_plan *p, const struct tm_plan_tensor *t)
{
	return t->tier != p->gpu_tier && t->ot_gpu < 0 && t->read_per_token > 0;
}

static void flip(struct tm_plan *p, size_t lead)
{
	const struct tm_plan_tensor *g = &p->tensors[lead];
	bool to = !g->gpu;

	for (size_t i = lead; i < p->n_tensors; i++)
		if (i == lead || (free_on_host(p, &p->tensors[i]) && same_group(&p->tensors[i], g)))
			p->tensors[i].gpu = to;
}

int plan_choose_processors(struct tm_plan *p)
{
	double best;
	int err;

	for (size_t i = 0; i < p->n_tensors; i++) {
		struct tm_plan_tensor *t = &p->tensors[i];

		t->gpu = t->tier == p->gpu_tier || (p->gpu_tier >= 0 && t->ot_gpu == 1);
	}
	if ((err = tm_plan_predict(p)) || p->pcie_tier < 0)
		return err;
	/*
	 * Local search from "every host tensor on the CPU": move a group to
	 * the other processor when that lowers the prediction, until no move
	 * does (a few passes; each is O(tensors^2) at worst).
	 */
	best = p->sec_per_token;
	for (int pass = 0; pass < 4; pass++) {
		bool changed = false;

		for (size_t i = 0; i < p->n_tensors; i++) {
			bool lead = free_on_host(p, &p->tensors[i]);

			for (size_t j = 0; lead && j < i; j++)
				lead = !(free_on_host(p, &p->tensors[j]) && same_group(&p->tensors[j], &p->tensors[i]));
			if (!lead)
				continue;
			flip(p, i);
			if ((err = tm_plan_predict(p)))
				return err;
			if (p->sec_per_token < best * (1 - 1e-12)) {
				best = p->sec_per_token;
				changed = true;
			} else {
				flip(p, i);
			}
		}
		if (!changed)
			break;
	}
	return tm_plan_predict(p);
}
