// SPDX-License-Identifier: MIT
/*
 * Synthetic routing traces. Random-weight models route almost uniformly, so
 * policies are compared on traces with the two properties real routers show:
 *
 *   skew      per layer, expert popularity follows a Zipf law over a random
 *             ranking, p(rank r) ~ 1 / r^zipf;
 *   drift     the ranking changes as the text does: `drift` random swaps of
 *             two ranks per layer per token;
 *   locality  a choice reuses, with probability `locality`, an expert the
 *             same layer used in the last `window` tokens (topics persist).
 *
 * Predictions model a next-layer predictor of known accuracy: each predicted
 * expert is the true one with probability pred_acc, else a wrong expert.
 * That is an assumption about the predictor, not a measurement of one.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/error.h"
#include "tiermem/experts.h"

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double unif(uint64_t *s)
{
	return (double)(rnd(s) >> 11) * 0x1p-53;
}

static int below(uint64_t *s, int n)
{
	return (int)(unif(s) * n);
}

void tm_xsynth_defaults(struct tm_xsynth_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->model.hash, sizeof(o->model.hash), "synthetic");
	snprintf(o->model.arch, sizeof(o->model.arch), "qwen3moe");
	o->model.n_layer = 94;
	o->model.n_expert = 128;
	o->model.n_expert_used = 8;
	/* Qwen3-235B-A22B at Q4_K_M: 3 x 4096 x 1536 weights at ~4.5 bits */
	o->model.expert_bytes = 10616832;
	o->model.dense_bytes = 4000000000ull;
	o->tokens = 2000;
	/* calibrated so that per-layer LRU with 64 slots hits about 67 % (the public figure) */
	o->zipf = 0.5;
	o->locality = 0.21;
	o->window = 8;
	o->drift = 0.2;
	o->pred_acc = -1;
	o->seed = 1;
}

struct lstate {
	int *rank;		/* rank -> expert */
	int *recent;		/* window x k, a ring of the last tokens' experts */
	int n_recent;
};

static bool chosen(const int *v, int n, int e)
{
	for (int i = 0; i < n; i++)
		if (v[i] == e)
			return true;
	return false;
}

/* Rank by inverse CDF: cdf[r] = P(rank <= r). */
static int zipf_rank(const double *cdf, int n, uint64_t *s)
{
	double u = unif(s);
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void route(const struct tm_xsynth_opts *o, struct lstate *ls, const double *cdf,
		  uint64_t *s, int *exp, float *w)
{
	int k = o->model.n_expert_used, n = o->model.n_expert;
	double sum = 0;

	for (int j = 0; j < k; j++) {
		int e = -1;

		for (int tries = 0; tries < 16 && e < 0 && ls->n_recent && unif(s) < o->locality; tries++) {
			int c = ls->recent[below(s, ls->n_recent)];

			if (!chosen(exp, j, c))
				e = c;
		}
		while (e < 0) {
			int c = ls->rank[zipf_rank(cdf, n, s)];

			if (!chosen(exp, j, c))
				e = c;
		}
		exp[j] = e;
		/* router-like weights: decreasing, summing to 1 */
		w[j] = (float)(exp2(-j * 0.5) * (0.5 + unif(s)));
		sum += w[j];
	}
	for (int j = 0; j < k; j++)
		w[j] = (float)(w[j] / sum);
}

static void predict(const struct tm_xsynth_opts *o, const int *exp, int *pred, uint64_t *s)
{
	int k = o->model.n_expert_used, n = o->model.n_expert;

	for (int j = 0; j < k; j++) {
		int e = exp[j];

		if (unif(s) >= o->pred_acc && n >= 2 * k)
			do
				e = below(s, n);
			while (chosen(exp, k, e) || chosen(pred, j, e));
		pred[j] = e;
	}
}

int tm_xsynth(struct tm_xtrace *t, const struct tm_xsynth_opts *o)
{
	const struct tm_xtrace_model *m = &o->model;
	int k = m->n_expert_used, n = m->n_expert, W = o->window;
	int exp[TM_XTRACE_MAX_USED], pred[TM_XTRACE_MAX_USED];
	float w[TM_XTRACE_MAX_USED];
	struct lstate *ls = NULL;
	double *cdf = NULL;
	int n_cdf = o->zipf_spread > 0 ? m->n_layer : 1;
	uint64_t s = o->seed;
	int err = 0;

	memset(t, 0, sizeof(*t));
	if (m->n_layer < 1 || m->n_layer > 4096 || n < 1 || n > TM_XTRACE_MAX_EXPERTS || k < 1 ||
	    k > TM_XTRACE_MAX_USED || k > n)
		return tm_err(-EINVAL, "synthetic trace: %d layers, %d experts, %d used per token",
			      m->n_layer, n, k);
	if (o->tokens < 1 || W < 1 || !(o->zipf >= 0) || !(o->zipf_spread >= 0 && o->zipf_spread <= 10) || !(o->locality >= 0 && o->locality <= 1) ||
	    !(o->drift >= 0) || !(o->pred_acc <= 1))
		return tm_err(-EINVAL, "synthetic trace: bad parameters (tokens %d, window %d, zipf %g, "
			      "locality %g, drift %g, prediction accuracy %g)", o->tokens, W, o->zipf,
			      o->locality, o->drift, o->pred_acc);
	t->model = *m;
	snprintf(t->source, sizeof(t->source), "synth: zipf %g +- %g, locality %g over %d tokens, drift %g, seed %llu",
		 o->zipf, o->zipf_spread, o->locality, W, o->drift, (unsigned long long)o->seed);
	cdf = malloc(sizeof(*cdf) * n * n_cdf);
	ls = calloc(m->n_layer, sizeof(*ls));
	if (!cdf || !ls)
		goto nomem;
	/* with a spread, layer l's exponent runs from zipf - spread to zipf + spread (not below 0) */
	for (int i = 0; i < n_cdf; i++) {
		double *c = cdf + (size_t)i * n, acc = 0;
		double z = o->zipf + (n_cdf > 1 ? o->zipf_spread * (2.0 * i / (n_cdf - 1) - 1.0) : 0);

		z = z > 0 ? z : 0;
		for (int r = 0; r < n; r++)
			c[r] = acc += pow(r + 1, -z);
		for (int r = 0; r < n; r++)
			c[r] /= acc;
		c[n - 1] = 1.0;
	}
	for (int l = 0; l < m->n_layer; l++) {
		ls[l].rank = malloc(sizeof(int) * n);
		ls[l].recent = malloc(sizeof(int) * (size_t)W * k);
		if (!ls[l].rank || !ls[l].recent)
			goto nomem;
		for (int r = 0; r < n; r++)
			ls[l].rank[r] = r;
		for (int r = n - 1; r > 0; r--) {
			int q = below(&s, r + 1), tmp = ls[l].rank[r];

			ls[l].rank[r] = ls[l].rank[q];
			ls[l].rank[q] = tmp;
		}
	}
	for (int tok = 0; tok < o->tokens && !err; tok++) {
		for (int l = 0; l < m->n_layer && !err; l++) {
			struct lstate *x = &ls[l];
			double d = o->drift;

			for (; d > 0; d -= 1.0) {
				if (d < 1.0 && unif(&s) >= d)
					break;
				int a = below(&s, n), b = below(&s, n), tmp = x->rank[a];

				x->rank[a] = x->rank[b];
				x->rank[b] = tmp;
			}
			route(o, x, cdf + (n_cdf > 1 ? (size_t)l * n : 0), &s, exp, w);
			if (o->pred_acc >= 0)
				predict(o, exp, pred, &s);
			memcpy(x->recent + (size_t)(tok % W) * k, exp, sizeof(int) * k);
			if (x->n_recent < W * k)
				x->n_recent += k;
			err = tm_xtrace_add(t, tok, l, exp, w, o->pred_acc >= 0 ? pred : NULL);
		}
	}
	goto out;
nomem:
	err = tm_err(-ENOMEM, "out of memory for a synthetic trace");
out:
	for (int l = 0; ls && l < m->n_layer; l++) {
		free(ls[l].rank);
		free(ls[l].recent);
	}
	free(ls);
	free(cdf);
	if (err)
		tm_xtrace_free(t);
	return err;
}
