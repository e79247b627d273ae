// SPDX-License-Identifier: MIT
/*
 * The sampler: greedy, or top-k -> top-p -> temperature -> draw. Top-k takes
 * one pass over the logits with a heap of the k best (a 152k vocabulary is
 * not copied per token, and almost every logit fails one comparison with the
 * heap's worst). Top-p needs the best tokens in order but not the whole
 * vocabulary sorted: the best 64, 256, 1024, ... are selected in linear time
 * and sorted until they cover top_p, a handful for any peaked distribution.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tiermem/error.h"
#include "tiermem/sampler.h"

struct cand {
	int32_t id;
	float logit;
};

struct tm_sampler {
	struct tm_sampler_params p;
	uint32_t n_vocab;
	struct tm_rng rng;
	struct cand *c;
	double *w;
};

/* ---- xoshiro256**, seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void tm_rng_seed(struct tm_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t tm_rng_next(struct tm_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double tm_rng_uniform(struct tm_rng *r)
{
	return (double)(tm_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- sampler ---- */

void tm_sampler_params_init(struct tm_sampler_params *p)
{
	memset(p, 0, sizeof(*p));
	p->top_p = 1.0f;
}

int tm_sampler_create(struct tm_sampler **out, const struct tm_sampler_params *p, uint32_t n_vocab)
{
	struct tm_sampler *s;

	*out = NULL;
	if (!n_vocab || n_vocab > INT32_MAX)
		return tm_err(-EINVAL, "sampler: a vocabulary of %u tokens", n_vocab);
	if (!isfinite(p->temperature))
		return tm_err(-EINVAL, "sampler: temperature %g is not a number", (double)p->temperature);
	if (!(p->top_p > 0.0f) || !isfinite(p->top_p))
		return tm_err(-EINVAL, "sampler: top-p %g must be in (0, 1]", (double)p->top_p);
	s = calloc(1, sizeof(*s));
	if (!s)
		return tm_err(-ENOMEM, "sampler: out of memory");
	s->p = *p;
	s->n_vocab = n_vocab;
	if (p->temperature > 0.0f) {
		s->c = malloc(n_vocab * sizeof(*s->c));
		s->w = malloc(n_vocab * sizeof(*s->w));
		if (!s->c || !s->w) {
			tm_sampler_free(s);
			return tm_err(-ENOMEM, "sampler: out of memory for %u candidates", n_vocab);
		}
	}
	tm_rng_seed(&s->rng, p->seed);
	*out = s;
	return 0;
}

void tm_sampler_free(struct tm_sampler *s)
{
	if (!s)
		return;
	free(s->c);
	free(s->w);
	free(s);
}

void tm_sampler_seed(struct tm_sampler *s, uint64_t seed)
{
	s->p.seed = seed;
	tm_rng_seed(&s->rng, seed);
}

/* Better first: higher logit, then lower id (so results do not depend on the selection's order). */
static int better(const struct cand *a, const struct cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *x, const void *y)
{
	const struct cand *a = x, *b = y;

	return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

static void swap(struct cand *a, struct cand *b)
{
	struct cand t = *a;

	*a = *b;
	*b = t;
}

/* Move the k best of c[0..n) to the front, in no particular order (quickselect). */
static void select_best(struct cand *c, size_t n, size_t k, struct tm_rng *r)
{
	size_t lo = 0, hi = n;

	while (hi - lo > 1 && k > lo && k < hi) {
		/* A pivot from the generator keeps the worst case away from any fixed input. */
		size_t pi = lo + (size_t)(tm_rng_next(r) % (hi - lo)), store = lo;

		swap(&c[pi], &c[hi - 1]);
		for (size_t i = lo; i + 1 < hi; i++)
			if (better(&c[i], &c[hi - 1]))
				swap(&c[i], &c[store++]);
		swap(&c[store], &c[hi - 1]);
		if (store < k)
			lo = store + 1;
		else
			hi = store;
	}
}

/* c[0..n) is a heap whose root is the worst; sift c[i] down. */
static void heap_down(struct cand *c, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, w = i;

		if (l < n && better(&c[w], &c[l]))
			w = l;
		if (l + 1 < n && better(&c[w], &c[l + 1]))
			w = l + 1;
		if (w == i)
			return;
		swap(&c[i], &c[w]);
		i = w;
	}
}

/* The k best non-NaN logits into c, best first; returns how many there are (< k if fewer). */
static size_t top_k_scan(const float *logits, uint32_t n_vocab, size_t k, struct cand *c)
{
	size_t n = 0;

	for (uint32_t i = 0; i < n_vocab; i++) {
		struct cand x = { (int32_t)i, logits[i] };

		if (isnan(x.logit))
			continue;
		if (n < k) {
			c[n++] = x;
			if (n == k)
				for (size_t j = k / 2; j-- > 0;)
					heap_down(c, k, j);
		} else if (better(&x, &c[0])) {
			c[0] = x;
			heap_down(c, k, 0);
		}
	}
	qsort(c, n, sizeof(*c), cmp_cand);
	return n;
}

int32_t tm_sampler_sample(struct tm_sampler *s, const float *logits)
{
	struct tm_rng pivots;
	size_t n = 0;
	double sum = 0.0;
	float max;

	if (s->p.temperature <= 0.0f)
		return tm_argmax(logits, (int)s->n_vocab);
	/* Pivot choices must not consume the draw's randomness: their own stream. */
	tm_rng_seed(&pivots, s->rng.s[0] ^ 0x5bd1e995u);
	if (s->p.top_k > 0 && (uint32_t)s->p.top_k < s->n_vocab) {
		n = top_k_scan(logits, s->n_vocab, (size_t)s->p.top_k, s->c);
	} else {
		for (uint32_t i = 0; i < s->n_vocab; i++)
			if (!isnan(logits[i]))
				s->c[n++] = (struct cand){ (int32_t)i, logits[i] };
	}
	if (!n)
		return -1;

	if (s->p.top_p < 1.0f) {
		/* Probabilities at temperature 1 over what top-k left. */
		double cum = 0.0;
		size_t k = 64, keep = n;

		max = -INFINITY;
		for (size_t i = 0; i < n; i++)
			max = fmaxf(max, s->c[i].logit);
		sum = 0.0;
		for (size_t i = 0; i < n; i++)
			sum += exp((double)s->c[i].logit - max);
		for (size_t sorted = 0;; k *= 4) {
			if (k > n)
				k = n;
			select_best(s->c + sorted, n - sorted, k - sorted, &pivots);
			qsort(s->c + sorted, k - sorted, sizeof(*s->c), cmp_cand);
			for (; sorted < k; sorted++) {
				cum += exp((double)s->c[sorted].logit - max) / sum;
				if (cum >= s->p.top_p) {
					keep = sorted + 1;
					break;
				}
			}
			if (keep < n || k == n)
				break;
		}
		n = keep;
	}

	/* Temperature, then a draw from the softmax of what is left. */
	max = -INFINITY;
	for (size_t i = 0; i < n; i++)
		max = fmaxf(max, s->c[i].logit);
	sum = 0.0;
	for (size_t i = 0; i < n; i++) {
		s->w[i] = exp(((double)s->c[i].logit - max) / s->p.temperature);
		sum += s->w[i];
	}
	double u = tm_rng_uniform(&s->rng) * sum, acc = 0.0;
	for (size_t i = 0; i < n; i++) {
		acc += s->w[i];
		if (u < acc)
			return s->c[i].id;
	}
	return s->c[n - 1].id;
}
