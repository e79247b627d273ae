// SPDX-License-Identifier: MIT
/*
 * The per-layer expert cache's bookkeeping and its replacement policies.
 *
 * Every expert of a layer has one key the policies compare, smallest evicted
 * first. LRU: the token of its last use. LFU and LRFU: its use count aged
 * with a half-life H, kept in the log domain as t/H + log2(count at t), which
 * does not change as time passes, so keys of experts last used at different
 * times compare directly (the LRFU trick of Lee et al., 2001). Keys are kept
 * for every expert, cached or not, so an expert that comes back returns with
 * its history: that is what lets LRFU refuse a one-off expert that would
 * push out a hot one.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/error.h"
#include "tiermem/experts.h"

#define LFU_HALF_LIFE 1024.0
/* chosen by measurement on the 67 %-LRU traces: Documentation/tiermem-experts.rst */
#define LRFU_HALF_LIFE 16.0
/*
 * mix: a recency window and a long-term aged frequency, weighted. Swept on
 * the same traces (window 4-16 tokens, half-life 64-1024, weight 0.2-0.5):
 * Documentation/tiermem-experts.rst.
 */
#define MIX_WINDOW 8
#define MIX_HALF_LIFE 64.0
#define MIX_WEIGHT 0.35

struct xlayer {
	int16_t *slot_of;	/* per expert: its slot, or -1 */
	int16_t *expert_in;	/* per slot: its expert, or -1 */
	uint8_t *state;		/* per slot: enum tm_xslot_state */
	int64_t *pf_tick;	/* per slot: token of an unused prefetch into it, or -1 */
	double *key;		/* per expert */
	/* mix: uses of the last MIX_WINDOW ticks (a ring), per expert and in all */
	int64_t *win_t;
	int16_t *win_e;
	int win_head, win_len, win_cap;
	uint16_t *win_n;
	double sum_key;		/* the aged count of all uses, in the keys' log domain */
	struct tm_xstats st;
};

struct tm_xcache {
	int n_layer, n_expert;
	int *slots;		/* per layer */
	int total;
	enum tm_xpolicy policy;
	double half_life;
	int64_t now;
	struct xlayer *L;
};

static const char *const policy_names[TM_XP_COUNT] = { "lru", "lfu", "lrfu", "static", "opt", "mix" };

int tm_xpolicy_parse(const char *s)
{
	for (int i = 0; i < TM_XP_COUNT; i++)
		if (!strcmp(s, policy_names[i]))
			return i;
	return -1;
}

const char *tm_xpolicy_name(enum tm_xpolicy p)
{
	return (unsigned int)p < TM_XP_COUNT ? policy_names[p] : "?";
}

int tm_xcache_create(struct tm_xcache **out, int n_layer, int n_expert, const struct tm_xcache_opts *o)
{
	struct tm_xcache *c;

	*out = NULL;
	if (n_layer < 1 || n_expert < 1 || n_expert > TM_XTRACE_MAX_EXPERTS)
		return tm_err(-EINVAL, "expert cache: %d layers of %d experts", n_layer, n_expert);
	if (!o->layer_slots && (o->slots < 1 || o->slots > n_expert))
		return tm_err(-EINVAL, "expert cache: %d slots per layer; between 1 and the %d experts",
			      o->slots, n_expert);
	for (int l = 0, sum = 0; o->layer_slots && l < n_layer; l++) {
		if (o->layer_slots[l] < 0 || o->layer_slots[l] > n_expert)
			return tm_err(-EINVAL, "expert cache: %d slots for layer %d; between 0 and the %d experts",
				      o->layer_slots[l], l, n_expert);
		if ((sum += o->layer_slots[l]) == 0 && l == n_layer - 1)
			return tm_err(-EINVAL, "expert cache: no slot in any layer");
	}
	if ((unsigned int)o->policy >= TM_XP_COUNT)
		return tm_err(-EINVAL, "expert cache: unknown policy %d", (int)o->policy);
	if (!isfinite(o->half_life) || o->half_life < 0)
		return tm_err(-EINVAL, "expert cache: half-life %g is not a number of tokens >= 0",
			      o->half_life);
	c = calloc(1, sizeof(*c));
	if (!c)
		return tm_err(-ENOMEM, "out of memory");
	c->n_layer = n_layer;
	c->n_expert = n_expert;
	c->policy = o->policy;
	c->half_life = o->half_life > 0 ? o->half_life :
		       o->policy == TM_XP_LFU ? LFU_HALF_LIFE :
		       o->policy == TM_XP_MIX ? MIX_HALF_LIFE : LRFU_HALF_LIFE;
	c->L = calloc(n_layer, sizeof(*c->L));
	c->slots = malloc(sizeof(*c->slots) * n_layer);
	if (!c->L || !c->slots)
		goto nomem;
	for (int l = 0; l < n_layer; l++) {
		struct xlayer *x = &c->L[l];
		int ns = o->layer_slots ? o->layer_slots[l] : o->slots;

		c->slots[l] = ns;
		c->total += ns;

		x->slot_of = malloc(sizeof(*x->slot_of) * n_expert);
		x->key = malloc(sizeof(*x->key) * n_expert);
		/* a layer may have no slot: one element anyway, so malloc(0) never means failure */
		x->expert_in = malloc(sizeof(*x->expert_in) * (ns ? ns : 1));
		x->state = calloc(ns ? ns : 1, sizeof(*x->state));
		x->pf_tick = malloc(sizeof(*x->pf_tick) * (ns ? ns : 1));
		if (!x->slot_of || !x->key || !x->expert_in || !x->state || !x->pf_tick)
			goto nomem;
		x->sum_key = -INFINITY;
		if (o->policy == TM_XP_MIX) {
			/* a tick sees each expert at most once per layer (a batch resolves each once) */
			x->win_cap = MIX_WINDOW * n_expert;
			x->win_t = malloc(sizeof(*x->win_t) * x->win_cap);
			x->win_e = malloc(sizeof(*x->win_e) * x->win_cap);
			x->win_n = calloc(n_expert, sizeof(*x->win_n));
			if (!x->win_t || !x->win_e || !x->win_n)
				goto nomem;
		}
		for (int e = 0; e < n_expert; e++) {
			x->slot_of[e] = -1;
			x->key[e] = -INFINITY;
		}
		for (int s = 0; s < ns; s++) {
			x->expert_in[s] = -1;
			x->pf_tick[s] = -1;
		}
	}
	*out = c;
	return 0;
nomem:
	tm_xcache_free(c);
	return tm_err(-ENOMEM, "out of memory for an expert cache of %d layers", n_layer);
}

void tm_xcache_free(struct tm_xcache *c)
{
	if (!c)
		return;
	for (int l = 0; c->L && l < c->n_layer; l++) {
		free(c->L[l].slot_of);
		free(c->L[l].key);
		free(c->L[l].expert_in);
		free(c->L[l].state);
		free(c->L[l].pf_tick);
		free(c->L[l].win_t);
		free(c->L[l].win_e);
		free(c->L[l].win_n);
	}
	free(c->L);
	free(c->slots);
	free(c);
}

void tm_xcache_tick(struct tm_xcache *c)
{
	c->now++;
}

/* mix: forget the uses older than the window. */
static void expire(const struct tm_xcache *c, struct xlayer *x)
{
	while (x->win_len && x->win_t[x->win_head] <= c->now - MIX_WINDOW) {
		x->win_n[x->win_e[x->win_head]]--;
		x->win_head = (x->win_head + 1) % x->win_cap;
		x->win_len--;
	}
}

static void touch(struct tm_xcache *c, struct xlayer *x, int e)
{
	double t = (double)c->now / c->half_life;

	if (c->policy == TM_XP_OPT)
		return;
	if (c->policy == TM_XP_LRU) {
		x->key[e] = (double)c->now;
		return;
	}
	x->key[e] = t + log2(exp2(x->key[e] - t) + 1.0);
	if (c->policy != TM_XP_MIX)
		return;
	x->sum_key = t + log2(exp2(x->sum_key - t) + 1.0);
	expire(c, x);
	if (x->win_len == x->win_cap) {	/* cannot happen (see create); forget the oldest */
		x->win_n[x->win_e[x->win_head]]--;
		x->win_head = (x->win_head + 1) % x->win_cap;
		x->win_len--;
	}
	int at = (x->win_head + x->win_len++) % x->win_cap;

	x->win_t[at] = c->now;
	x->win_e[at] = (int16_t)e;
	x->win_n[e]++;
}

/*
 * What the policy keeps the highest. mix: the expert's share of the window's
 * uses and its share of the aged long-term uses (a ratio of two counts aged
 * alike, so it does not change with time), weighted: an estimate of the
 * chance that the next use is this expert, from recency and popularity both.
 */
static double score(const struct tm_xcache *c, const struct xlayer *x, int e)
{
	if (c->policy != TM_XP_MIX)
		return x->key[e];
	return MIX_WEIGHT * (x->win_len ? (double)x->win_n[e] / x->win_len : 0) +
	       (1 - MIX_WEIGHT) * (isfinite(x->key[e]) ? exp2(x->key[e] - x->sum_key) : 0);
}

int tm_xcache_use(struct tm_xcache *c, int l, int e)
{
	struct xlayer *x = &c->L[l];
	int s = x->slot_of[e];

	x->st.uses++;
	touch(c, x, e);
	if (s >= 0 && x->pf_tick[s] >= 0) {
		if (x->state[s] == TM_XS_READY)
			x->st.pf_used++;
		else
			x->st.pf_late++;
		x->pf_tick[s] = -1;
	}
	if (s >= 0 && x->state[s] == TM_XS_READY) {
		x->st.hits++;
		return s;
	}
	x->st.misses++;
	return -1;
}

/*
 * The slot to reuse: an empty one, else the one whose expert has the lowest
 * key. Never a FILLING slot (its copy is in flight), nor one prefetched this
 * very token (a batch of prefetches must not evict itself).
 */
static int victim(const struct tm_xcache *c, const struct xlayer *x, int ns)
{
	double low = 0;
	int best = -1;

	for (int s = 0; s < ns; s++) {
		double k;

		if (x->state[s] == TM_XS_EMPTY)
			return s;
		if (x->state[s] == TM_XS_FILLING || x->pf_tick[s] == c->now)
			continue;
		k = score(c, x, x->expert_in[s]);
		if (best < 0 || k < low) {
			best = s;
			low = k;
		}
	}
	return best;
}

int tm_xcache_admit(struct tm_xcache *c, int l, int e, bool prefetch)
{
	struct xlayer *x = &c->L[l];
	int s, old;

	if (c->policy == TM_XP_STATIC || x->slot_of[e] >= 0)
		return -1;
	if (c->policy == TM_XP_MIX)
		expire(c, x);
	s = victim(c, x, c->slots[l]);
	if (s < 0)
		return -1;
	old = x->expert_in[s];
	if (!prefetch && (c->policy == TM_XP_LRFU || c->policy == TM_XP_OPT || c->policy == TM_XP_MIX) &&
	    old >= 0 && score(c, x, e) <= score(c, x, old))
		return -1;
	if (old >= 0) {
		x->slot_of[old] = -1;
		x->st.evicts++;
		if (x->pf_tick[s] >= 0)
			x->st.pf_wasted++;
	}
	x->expert_in[s] = (int16_t)e;
	x->slot_of[e] = (int16_t)s;
	x->state[s] = TM_XS_FILLING;
	x->pf_tick[s] = prefetch ? c->now : -1;
	if (prefetch)
		x->st.pf_issued++;
	else
		x->st.admits++;
	return s;
}

void tm_xcache_hint_next(struct tm_xcache *c, int l, int e, int64_t next)
{
	c->L[l].key[e] = -(double)next;
}

void tm_xcache_ready(struct tm_xcache *c, int l, int s)
{
	c->L[l].state[s] = TM_XS_READY;
}

int tm_xcache_slot_of(const struct tm_xcache *c, int l, int e)
{
	return c->L[l].slot_of[e];
}

int tm_xcache_expert_in(const struct tm_xcache *c, int l, int s)
{
	return c->L[l].expert_in[s];
}

enum tm_xslot_state tm_xcache_state(const struct tm_xcache *c, int l, int s)
{
	return (enum tm_xslot_state)c->L[l].state[s];
}

void tm_xcache_preload(struct tm_xcache *c, int l, const int *experts, int n)
{
	struct xlayer *x = &c->L[l];
	int s = 0, ns = c->slots[l];

	for (int i = 0; i < n && s < ns; i++) {
		int e = experts[i];

		if (e < 0 || e >= c->n_expert || x->slot_of[e] >= 0)
			continue;
		while (s < ns && x->state[s] != TM_XS_EMPTY)
			s++;
		if (s == ns)
			break;
		x->expert_in[s] = (int16_t)e;
		x->slot_of[e] = (int16_t)s;
		x->state[s] = TM_XS_READY;
	}
}

void tm_xcache_settle(struct tm_xcache *c)
{
	for (int l = 0; l < c->n_layer; l++)
		for (int s = 0; s < c->slots[l]; s++)
			if (c->L[l].pf_tick[s] >= 0) {
				c->L[l].pf_tick[s] = -1;
				c->L[l].st.pf_wasted++;
			}
}

const struct tm_xstats *tm_xcache_layer_stats(const struct tm_xcache *c, int l)
{
	return &c->L[l].st;
}

void tm_xcache_total(const struct tm_xcache *c, int l0, int l1, struct tm_xstats *out)
{
	memset(out, 0, sizeof(*out));
	for (int l = l0; l < l1 && l < c->n_layer; l++) {
		const struct tm_xstats *s = &c->L[l].st;

		out->uses += s->uses;
		out->hits += s->hits;
		out->misses += s->misses;
		out->admits += s->admits;
		out->evicts += s->evicts;
		out->pf_issued += s->pf_issued;
		out->pf_used += s->pf_used;
		out->pf_wasted += s->pf_wasted;
		out->pf_late += s->pf_late;
	}
}

int tm_xcache_slots(const struct tm_xcache *c, int l)
{
	return c->slots[l];
}

int tm_xcache_slots_total(const struct tm_xcache *c)
{
	return c->total;
}
