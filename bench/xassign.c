// SPDX-License-Identifier: MIT
/*
 * build/bench/xassign: how well the experts' assignment to ranks
 * (tm_xassign_make, as run --split experts --expert-heat TRAIN makes it)
 * balances the routing of other tokens than the ones it was made from.
 *
 *   xassign TRAIN.json TEST.json N...
 *
 * For each N: the assignment by TRAIN's heat and e % N, both measured on
 * TEST's counts (tokens TRAIN never saw, of the same model): sync/mean, the
 * sum over the MoE layers of the layer's most loaded rank over the sum of
 * the layers' means (what a token waits for, one all-reduce per layer,
 * against a perfect split; 1 is perfect), and the ranks' whole-token
 * max/mean. Layers no token of TEST used (dense ones) are left out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/experts.h"
#include "tiermem/error.h"

struct balance {
	double sync, mean, max;
};

/* a (NULL: e % ranks) measured on h's counts */
static struct balance measure(const struct tm_xassign *a, const struct tm_xheat *h, int ranks)
{
	int L = h->model.n_layer, E = h->model.n_expert;
	double *total = calloc((size_t)ranks, sizeof(*total)), *layer = calloc((size_t)ranks, sizeof(*layer));
	struct balance b = { 0 };

	for (int l = 0; total && layer && l < L; l++) {
		double m = 0, sum = 0;

		memset(layer, 0, sizeof(*layer) * ranks);
		for (int e = 0; e < E; e++) {
			int r = a ? tm_xassign_owner(a, l, e) : e % ranks;

			layer[r] += (double)h->counts[(size_t)l * E + e];
		}
		for (int r = 0; r < ranks; r++) {
			m = layer[r] > m ? layer[r] : m;
			sum += layer[r];
			total[r] += layer[r];
		}
		b.sync += m;
		b.mean += sum / ranks;
	}
	for (int r = 0; total && r < ranks; r++)
		b.max = total[r] > b.max ? total[r] : b.max;
	free(total);
	free(layer);
	return b;
}

int main(int argc, char **argv)
{
	struct tm_xheat train, test;

	if (argc < 4) {
		fprintf(stderr, "usage: xassign TRAIN.json TEST.json N...\n");
		return 2;
	}
	if (tm_xheat_read(&train, argv[1]) || tm_xheat_read(&test, argv[2])) {
		fprintf(stderr, "xassign: %s\n", tm_strerror());
		return 2;
	}
	if (train.model.n_layer != test.model.n_layer || train.model.n_expert != test.model.n_expert ||
	    strcmp(train.model.hash, test.model.hash)) {
		fprintf(stderr, "xassign: the two heats are not of one model\n");
		return 2;
	}
	printf("train %llu tokens, test %llu tokens, %d layers of %d experts\n", (unsigned long long)train.tokens,
	       (unsigned long long)test.tokens, test.model.n_layer, test.model.n_expert);
	for (int i = 3; i < argc; i++) {
		int ranks = atoi(argv[i]);
		struct tm_xassign a;
		struct balance h, m;

		if (ranks < 2 || tm_xassign_make(&a, train.model.n_layer, train.model.n_expert, ranks, &train)) {
			fprintf(stderr, "xassign: %s: not a number of ranks for this model\n", argv[i]);
			return 2;
		}
		h = measure(&a, &test, ranks);
		m = measure(NULL, &test, ranks);
		printf("xassign: ranks=%d heat_sync_mean=%.4f mod_sync_mean=%.4f heat_max_mean=%.4f mod_max_mean=%.4f\n",
		       ranks, h.sync / h.mean, m.sync / m.mean, h.max / h.mean, m.max / m.mean);
		tm_xassign_free(&a);
	}
	tm_xheat_free(&train);
	tm_xheat_free(&test);
	return 0;
}
