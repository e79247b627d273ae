// SPDX-License-Identifier: MIT
/*
 * Which rank holds and computes each routed expert under --split experts
 * (Documentation/tiermem-scale.rst). Every MoE layer ends in an all-reduce
 * that waits for its slowest rank, so each layer is balanced on its own: by
 * expected bytes read per token, which within a layer is the experts' use
 * counts (every expert has the same bytes). Greedy, hottest first (ties by
 * index) onto the rank with the least expected reads that still has room
 * (ties: fewer experts, then the ranks in turn from l % ranks, so the rank
 * that takes each layer's hottest expert changes from layer to layer and the
 * ranks' whole-token reads balance too). Room: ceil(n_expert / ranks)
 * experts a rank, as many as e % ranks gives its fullest rank, so a rank's
 * share never needs more memory than before. A layer keeps e % ranks unless
 * the greedy's slowest rank would be faster by more than the counts' noise
 * (worth_leaving): so with equal counts (the uniform prior, or no heat)
 * every layer is exactly e % ranks, which stores imported before heat-aware
 * splits hold, and a short profile moves few experts.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "tiermem/error.h"
#include "tiermem/experts.h"

/* The most any rank of layer l's assignment owner[] reads, by counts. */
static uint64_t slowest(const int *owner, const uint64_t *counts, int n, int ranks, uint64_t *load)
{
	uint64_t max = 0;

	memset(load, 0, sizeof(*load) * ranks);
	for (int e = 0; e < n; e++)
		load[owner[e]] += counts[e];
	for (int r = 0; r < ranks; r++)
		max = load[r] > max ? load[r] : max;
	return max;
}

/* Rank r's place among tied ranks in layer l: the first tie goes to rank l % ranks. */
static int turn(int r, int l, int ranks)
{
	return ((r - l) % ranks + ranks) % ranks;
}

/* order: layer l's experts, hottest first (tm_xheat_order: ties by index) */
static void greedy(int *owner, const uint64_t *counts, int n, int ranks, int l, const int *order, uint64_t *load,
		   int *have)
{
	int room = (n + ranks - 1) / ranks;

	memset(load, 0, sizeof(*load) * ranks);
	memset(have, 0, sizeof(*have) * ranks);
	for (int i = 0; i < n; i++) {
		int best = -1;

		for (int r = 0; r < ranks; r++)
			if (have[r] < room && (best < 0 || load[r] < load[best] ||
					       (load[r] == load[best] && (have[r] < have[best] ||
									  (have[r] == have[best] &&
									   turn(r, l, ranks) < turn(best, l, ranks))))))
				best = r;
		owner[order[i]] = best;
		load[best] += counts[order[i]];
		have[best]++;
	}
}

/*
 * Does the greedy's slowest rank (by counts) beat e % N's by more than the
 * noise of a count that size? Use counts are about Poisson, so a count of
 * n is n +- sqrt(n): a smaller gain is the profile's sampling, not the
 * traffic's (measured with bench/xassign on two profiles of the 4.2 GB
 * bench MoE: a one-sigma guard kept e % N where leaving it did not pay on
 * other tokens).
 */
static bool worth_leaving(double mod, double greedy)
{
	return mod - greedy > sqrt(mod);
}

int tm_xassign_make(struct tm_xassign *a, int n_layer, int n_expert, int ranks, const struct tm_xheat *h)
{
	size_t n = (size_t)n_layer * (size_t)n_expert;
	uint64_t *load;
	int *have, *mod, *order;

	memset(a, 0, sizeof(*a));
	if (n_layer < 1 || n_expert < 1 || ranks < 1 || ranks > 4096)
		return tm_err(-EINVAL, "expert split: %d ranks for %d layers of %d experts", ranks, n_layer, n_expert);
	if (h && (h->model.n_layer != n_layer || h->model.n_expert != n_expert))
		return tm_err(-EINVAL, "expert split: the heat is of %d layers of %d experts, the model has %d of %d",
			      h->model.n_layer, h->model.n_expert, n_layer, n_expert);
	a->owner = malloc(sizeof(*a->owner) * n);
	order = malloc(sizeof(*order) * n_expert);
	load = malloc(sizeof(*load) * ranks);
	have = malloc(sizeof(*have) * ranks);
	mod = malloc(sizeof(*mod) * n_expert);
	if (!a->owner || !order || !load || !have || !mod) {
		free(a->owner);
		a->owner = NULL;
		free(order), free(load), free(have), free(mod);
		return tm_err(-ENOMEM, "out of memory");
	}
	a->n_layer = n_layer;
	a->n_expert = n_expert;
	a->ranks = ranks;
	a->heat = h != NULL;
	for (int e = 0; e < n_expert; e++)
		mod[e] = e % ranks;
	for (int l = 0; l < n_layer; l++) {
		int *owner = a->owner + (size_t)l * n_expert;
		const uint64_t *c;

		memcpy(owner, mod, sizeof(*owner) * n_expert);
		if (!h)
			continue;	/* the uniform prior: e % N */
		c = h->counts + (size_t)l * n_expert;
		tm_xheat_order(h, l, order);
		greedy(owner, c, n_expert, ranks, l, order, load, have);
		if (!worth_leaving((double)slowest(mod, c, n_expert, ranks, load),
				   (double)slowest(owner, c, n_expert, ranks, load)))
			memcpy(owner, mod, sizeof(*owner) * n_expert);
	}
	a->hash = tm_xassign_hash(a);
	free(order), free(load), free(have), free(mod);
	return 0;
}

uint64_t tm_xassign_hash(const struct tm_xassign *a)
{
	uint64_t h = XXH3_64bits(a->owner, sizeof(*a->owner) * (size_t)a->n_layer * (size_t)a->n_expert);

	return h ^ (uint64_t)a->ranks;
}

int tm_xassign_count(const struct tm_xassign *a, int l, int rank)
{
	int n = 0;

	for (int e = 0; e < a->n_expert; e++)
		n += a->owner[(size_t)l * a->n_expert + e] == rank;
	return n;
}

bool tm_xassign_is_mod(const struct tm_xassign *a)
{
	for (size_t i = 0; i < (size_t)a->n_layer * a->n_expert; i++)
		if (a->owner[i] != (int)(i % (size_t)a->n_expert) % a->ranks)
			return false;
	return true;
}

void tm_xassign_free(struct tm_xassign *a)
{
	free(a->owner);
	memset(a, 0, sizeof(*a));
}
