// SPDX-License-Identifier: MIT
/*
 * Replaying a routing trace through a cache policy, and what it costs.
 *
 * Bytes per token, by tier (B: one expert's bytes):
 *   slow: B per miss (computed from the slow tier), B per prefetch (read to
 *         be copied), and B per admitted miss unless the admission is fused
 *         with the read that computes it (then the copy costs no slow read);
 *   fast: the dense bytes every token reads, B per hit, and B per copy
 *         written into a slot (admission or prefetch).
 * Seconds per token come from the planner's cost model (tm_plan_cost) on a
 * plan of two tiers, fast and slow: without overlap the streams' times add
 * (one tensor at a time, as the forward pass reads), which is never
 * optimistic; with overlap (a prefetcher reading both tiers at once) the two
 * tiers are one channel group, as Optane DIMMs beside DDR4 ones are, so the
 * slow media's limit or the shared channels' (carrying both streams at the
 * fast tier's rate) binds, whichever is slower.
 * In a replay a copy completes at once: prefetches are never late here.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/plan.h"

double tm_xcost_sec_per_tok(const struct tm_xcost *c, double fast_bytes, double slow_bytes)
{
	struct tm_plan p = { .n_tiers = 2, .overlap = c->overlap };
	double read[2] = { fast_bytes, slow_bytes };

	p.tiers[0] = (struct tm_tier_spec){ .name = "fast", .kind = TM_KIND_DDR, .gbps = c->fast_gbps, .group = "ch" };
	p.tiers[1] = (struct tm_tier_spec){ .name = "slow", .kind = TM_KIND_PMEM, .gbps = c->slow_gbps, .group = "ch" };
	return tm_plan_cost(&p, read);
}

/* Per layer, the experts the whole trace uses most, into the cache: the static placement. */
static int preload_hottest(struct tm_xcache *c, const struct tm_xtrace *t)
{
	int n = t->model.n_expert;
	int *order = malloc(sizeof(int) * n);
	struct tm_xheat h;
	int err;

	if (!order)
		return tm_err(-ENOMEM, "out of memory");
	if ((err = tm_xheat_from_trace(&h, t, 0, INT32_MAX))) {
		free(order);
		return err;
	}
	for (int l = 0; l < t->model.n_layer; l++) {
		tm_xheat_order(&h, l, order);
		tm_xcache_preload(c, l, order, n);
	}
	tm_xheat_free(&h);
	free(order);
	return 0;
}

/* Per record and choice: the token at which the same layer next uses that expert. */
static int64_t *next_uses(const struct tm_xtrace *t)
{
	int k = t->model.n_expert_used, n = t->model.n_expert;
	int64_t *next = malloc(sizeof(*next) * t->n_rec * k);
	int64_t *last = malloc(sizeof(*last) * (size_t)t->model.n_layer * n);

	if (!next || !last) {
		free(next);
		free(last);
		tm_err(-ENOMEM, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < (size_t)t->model.n_layer * n; i++)
		last[i] = INT64_MAX;
	for (size_t r = t->n_rec; r-- > 0;) {
		int64_t *lt = last + (size_t)t->layer[r] * n;

		for (int j = 0; j < k; j++)
			next[r * k + j] = lt[t->exp[r * k + j]];
		for (int j = 0; j < k; j++)
			lt[t->exp[r * k + j]] = t->tok[r];
	}
	free(last);
	return next;
}

int tm_xreplay(const struct tm_xtrace *t, const struct tm_xreplay_opts *o, struct tm_xreplay_result *r)
{
	const struct tm_xtrace_model *m = &t->model;
	int k = m->n_expert_used;
	struct tm_xcache *c;
	int64_t *next = NULL;
	double B = (double)m->expert_bytes, nt = t->n_tokens ? t->n_tokens : 1;
	int err;

	memset(r, 0, sizeof(*r));
	if (!(o->cost.fast_gbps > 0) || !(o->cost.slow_gbps > 0))
		return tm_err(-EINVAL, "bandwidths must be positive (fast %g, slow %g GB/s)",
			      o->cost.fast_gbps, o->cost.slow_gbps);
	if ((err = tm_xcache_create(&c, m->n_layer, m->n_expert, &o->cache)))
		return err;
	if (o->cache.policy == TM_XP_STATIC && (err = preload_hottest(c, t))) {
		tm_xcache_free(c);
		return err;
	}
	if (o->cache.policy == TM_XP_OPT && !(next = next_uses(t))) {
		tm_xcache_free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->n_rec; i++) {
		const int16_t *e = t->exp + i * k, *p = t->pred + i * k;
		int l = t->layer[i], s;
		bool missed[TM_XTRACE_MAX_USED];

		if (i && t->tok[i] != t->tok[i - 1])
			tm_xcache_tick(c);
		if (o->predict && t->has_pred[i])
			for (int j = 0; j < k; j++)
				if ((s = tm_xcache_admit(c, l, p[j], true)) >= 0)
					tm_xcache_ready(c, l, s);
		/* as in the forward pass: look all k up, compute, then admit the misses */
		for (int j = 0; j < k; j++) {
			if (next)
				tm_xcache_hint_next(c, l, e[j], next[i * k + j]);
			missed[j] = tm_xcache_use(c, l, e[j]) < 0;
		}
		for (int j = 0; j < k; j++)
			if (missed[j] && (s = tm_xcache_admit(c, l, e[j], false)) >= 0)
				tm_xcache_ready(c, l, s);
	}
	free(next);
	tm_xcache_settle(c);
	tm_xcache_total(c, 0, m->n_layer, &r->st);
	tm_xcache_free(c);
	r->hit_rate = r->st.uses ? (double)r->st.hits / r->st.uses : 0;
	r->slow_bytes_per_tok = B * (r->st.misses + r->st.pf_issued +
				     (o->cost.fused_admit ? 0 : r->st.admits)) / nt;
	r->fast_bytes_per_tok = (double)m->dense_bytes + B * (r->st.hits + r->st.admits + r->st.pf_issued) / nt;
	r->pred_tok_s = 1.0 / tm_xcost_sec_per_tok(&o->cost, r->fast_bytes_per_tok, r->slow_bytes_per_tok);
	return 0;
}
