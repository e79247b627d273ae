// SPDX-License-Identifier: MIT
/* The experts' assignment to ranks under --split experts (lib/experts/assign.c). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tiermem/experts.h"

static struct tm_xheat heat_of(int n_layer, int n_expert, uint64_t *counts)
{
	struct tm_xheat h = { 0 };

	h.model.n_layer = n_layer;
	h.model.n_expert = n_expert;
	h.model.n_expert_used = 2;
	h.tokens = 1000000;
	h.counts = counts;
	return h;
}

/* The most a rank of layer l reads, by counts c. */
static uint64_t slowest(const struct tm_xassign *a, int l, const uint64_t *c, bool mod)
{
	uint64_t load[16] = { 0 }, max = 0;

	for (int e = 0; e < a->n_expert; e++)
		load[mod ? e % a->ranks : tm_xassign_owner(a, l, e)] += c[(size_t)l * a->n_expert + e];
	for (int r = 0; r < a->ranks; r++)
		max = load[r] > max ? load[r] : max;
	return max;
}

static void test_uniform(void)
{
	uint64_t flat[2 * 16], zero[2 * 16] = { 0 };
	struct tm_xheat hf = heat_of(2, 16, flat), hz = heat_of(2, 16, zero);
	struct tm_xassign a, b, c;
	int bad = 0;

	for (int i = 0; i < 2 * 16; i++)
		flat[i] = 77;
	for (int ranks = 1; ranks <= 5; ranks++) {
		if (tm_xassign_make(&a, 2, 16, ranks, NULL) || tm_xassign_make(&b, 2, 16, ranks, &hf) ||
		    tm_xassign_make(&c, 2, 16, ranks, &hz)) {
			bad++;
			continue;
		}
		for (int l = 0; l < 2; l++)
			for (int e = 0; e < 16; e++)
				bad += tm_xassign_owner(&a, l, e) != e % ranks || tm_xassign_owner(&b, l, e) != e % ranks ||
				       tm_xassign_owner(&c, l, e) != e % ranks;
		bad += !tm_xassign_is_mod(&a) || a.hash != b.hash || a.hash != c.hash || a.heat || !b.heat;
		tm_xassign_free(&a);
		tm_xassign_free(&b);
		tm_xassign_free(&c);
	}
	tap_ok(!bad, "no heat, equal counts, all-zero counts: expert e on rank e %% ranks (1 to 5 ranks), one hash");
}

static void test_greedy(void)
{
	/* hottest first onto the least loaded rank with room (3): 0, 3, 4 on rank 0; 1, 2, 5 on rank 1 */
	uint64_t c[6] = { 1000, 900, 800, 700, 100, 100 }, skew[8] = { 100, 1, 100, 1, 100, 1, 100, 1 };
	uint64_t small[6] = { 10, 9, 8, 7, 1, 1 };
	uint64_t one[8] = { 1000, 1, 1, 1, 1, 1, 1, 1 };
	static const int want[6] = { 0, 1, 1, 0, 0, 1 };
	struct tm_xheat h = heat_of(1, 6, c), hs = heat_of(1, 8, skew), h1 = heat_of(1, 8, one);
	struct tm_xheat hsmall = heat_of(1, 6, small);
	struct tm_xassign a;
	int bad = 0;

	tap_ok(!tm_xassign_make(&a, 1, 6, 2, &h) && !memcmp(a.owner, want, sizeof(want)) && !tm_xassign_is_mod(&a) &&
	       slowest(&a, 0, c, false) == 1800 && slowest(&a, 0, c, true) == 1900,
	       "greedy: 1000 900 800 700 100 100 over 2 ranks -> 0 1 1 0 0 1 (1800 each; e %% 2 gives 1900 and 1700)");
	tm_xassign_free(&a);
	tap_ok(!tm_xassign_make(&a, 1, 6, 2, &hsmall) && tm_xassign_is_mod(&a),
	       "the same skew in counts 100 times smaller: a gain of 1 in 19 is within a count's noise (sqrt 19), e %% 2 kept");
	tm_xassign_free(&a);
	tap_ok(!tm_xassign_make(&a, 1, 8, 2, &hs) && slowest(&a, 0, skew, false) == 202 &&
	       slowest(&a, 0, skew, true) == 400, "the hot experts all on even indices: e %% 2 puts 400 on rank 0, "
	       "the heat 202 on each");
	tm_xassign_free(&a);
	if (tm_xassign_make(&a, 1, 8, 2, &h1))
		bad++;
	else
		bad += tm_xassign_count(&a, 0, 0) != 4 || tm_xassign_count(&a, 0, 1) != 4;
	tm_xassign_free(&a);
	if (tm_xassign_make(&a, 1, 8, 3, &h1))
		bad++;
	else
		for (int r = 0; r < 3; r++)
			bad += tm_xassign_count(&a, 0, r) > 3;
	tm_xassign_free(&a);
	tap_ok(!bad, "room: at most ceil(experts / ranks) a rank, however skewed (8 over 2 and 3 ranks)");
}

static void test_never_worse(void)
{
	enum { L = 40, E = 24 };
	uint64_t c[L * E];
	struct tm_xheat h = heat_of(L, E, c);
	struct tm_xassign a, b;
	int worse = 0, better = 0, bad = 0;

	srand(7);
	for (int i = 0; i < L * E; i++)
		c[i] = (uint64_t)(rand() % 1000) * (uint64_t)(rand() % 1000) / (1 + i % E);
	for (int ranks = 2; ranks <= 5; ranks++) {
		if (tm_xassign_make(&a, L, E, ranks, &h) || tm_xassign_make(&b, L, E, ranks, &h)) {
			bad++;
			continue;
		}
		bad += a.hash != b.hash || memcmp(a.owner, b.owner, sizeof(int) * L * E);
		for (int l = 0; l < L; l++) {
			worse += slowest(&a, l, c, false) > slowest(&a, l, c, true);
			better += slowest(&a, l, c, false) < slowest(&a, l, c, true);
			for (int r = 0; r < ranks; r++)
				bad += tm_xassign_count(&a, l, r) > (E + ranks - 1) / ranks;
		}
		tm_xassign_free(&a);
		tm_xassign_free(&b);
	}
	tap_ok(!bad && !worse && better > 0, "random skews, 40 layers, 2-5 ranks: deterministic, no layer's slowest "
	       "rank slower than e %% N's, %d of 160 faster (beyond the counts' noise)", better);
}

static void test_bad(void)
{
	uint64_t c[4] = { 1, 2, 3, 4 };
	struct tm_xheat h = heat_of(1, 4, c);
	struct tm_xassign a;

	tap_ok(tm_xassign_make(&a, 2, 4, 2, &h) == -EINVAL && tm_xassign_make(&a, 1, 8, 2, &h) == -EINVAL &&
	       tm_xassign_make(&a, 1, 4, 0, NULL) == -EINVAL && !a.owner,
	       "a heat of another shape, 0 ranks: -EINVAL, nothing allocated");
}

int main(void)
{
	test_uniform();
	test_greedy();
	test_never_worse();
	test_bad();
	return tap_done();
}
