// SPDX-License-Identifier: MIT
/* The sampler: greedy is argmax, truncations keep the right tokens, draws follow the softmax, seeds repeat. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tap.h"
#include "tiermem/sampler.h"

#define DRAWS 40000

static struct tm_sampler *make(float temp, int top_k, float top_p, uint64_t seed, uint32_t n)
{
	struct tm_sampler_params p;
	struct tm_sampler *s = NULL;

	tm_sampler_params_init(&p);
	p.temperature = temp;
	p.top_k = top_k;
	p.top_p = top_p;
	p.seed = seed;
	if (tm_sampler_create(&s, &p, n))
		return NULL;
	return s;
}

/* Frequencies of DRAWS draws against probabilities: the worst deviation in standard errors. */
static double worst_z_n(struct tm_sampler *s, const float *logits, const double *prob, uint32_t n, int *outside,
		       int draws)
{
	int *hits = calloc(n, sizeof(*hits));
	double worst = 0;

	*outside = 0;
	for (int i = 0; i < draws; i++) {
		int32_t id = tm_sampler_sample(s, logits);

		if (id < 0 || (uint32_t)id >= n)
			(*outside)++;
		else
			hits[id]++;
	}
	for (uint32_t i = 0; i < n; i++) {
		double f = (double)hits[i] / draws;
		double se = sqrt(prob[i] * (1 - prob[i]) / draws);

		if (prob[i] == 0) {
			*outside += hits[i];
			continue;
		}
		if (fabs(f - prob[i]) / se > worst)
			worst = fabs(f - prob[i]) / se;
	}
	free(hits);
	return worst;
}

static double worst_z(struct tm_sampler *s, const float *logits, const double *prob, uint32_t n, int *outside)
{
	return worst_z_n(s, logits, prob, n, outside, DRAWS);
}

static void softmax(const float *l, double *p, uint32_t n, double temp, const int *keep)
{
	double max = -INFINITY, sum = 0;

	for (uint32_t i = 0; i < n; i++)
		if (!keep || keep[i])
			max = fmax(max, l[i]);
	for (uint32_t i = 0; i < n; i++) {
		p[i] = (!keep || keep[i]) ? exp((l[i] - max) / temp) : 0;
		sum += p[i];
	}
	for (uint32_t i = 0; i < n; i++)
		p[i] /= sum;
}

static void test_greedy(void)
{
	struct tm_rng r;
	float v[1000];
	int bad = 0, bad0 = 0;
	struct tm_sampler *g = make(0, 0, 1, 1, 1000), *t0 = make(0, 5, 0.5f, 9, 1000);

	tm_rng_seed(&r, 42);
	for (int trial = 0; trial < 200; trial++) {
		int32_t best = 0;

		for (int i = 0; i < 1000; i++) {
			v[i] = (float)(tm_rng_uniform(&r) * 20 - 10);
			if (v[i] > v[best])
				best = i;
		}
		bad += tm_sampler_sample(g, v) != best || tm_argmax(v, 1000) != best;
		bad0 += tm_sampler_sample(t0, v) != best;
	}
	tap_ok(g && bad == 0, "greedy picks the argmax (200 random rows of 1000)");
	tap_ok(t0 && bad0 == 0, "temperature 0 is greedy whatever top-k and top-p say");
	v[3] = v[7] = 1e9f;
	v[5] = NAN;
	tap_ok(tm_sampler_sample(g, v) == 3, "greedy breaks a tie by the lowest id");
	tm_sampler_free(g);
	tm_sampler_free(t0);
}

static void test_distribution(void)
{
	const float l[6] = { 1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 0.0f };
	double p[6];
	int out;
	struct tm_sampler *s = make(1.0f, 0, 1.0f, 1234, 6);
	double z;

	softmax(l, p, 6, 1.0, NULL);
	z = worst_z(s, l, p, 6, &out);
	tap_ok(out == 0 && z < 5, "temperature 1 draws follow softmax(logits) (worst %.2f standard errors)", z);
	tm_sampler_free(s);

	s = make(0.5f, 0, 1.0f, 99, 6);
	softmax(l, p, 6, 0.5, NULL);
	z = worst_z(s, l, p, 6, &out);
	tap_ok(out == 0 && z < 5, "temperature 0.5 draws follow softmax(logits / 0.5) (worst %.2f)", z);
	tm_sampler_free(s);

	s = make(2.0f, 0, 1.0f, 7, 6);
	softmax(l, p, 6, 2.0, NULL);
	z = worst_z(s, l, p, 6, &out);
	tap_ok(out == 0 && z < 5, "temperature 2 draws follow softmax(logits / 2) (worst %.2f)", z);
	tm_sampler_free(s);
}

static void test_top_k(void)
{
	const float l[8] = { 0.1f, 2.0f, 1.5f, -3.0f, 1.9f, 0.0f, 1.0f, 1.4f };
	const int keep[8] = { 0, 1, 1, 0, 1, 0, 0, 0 };
	double p[8];
	int out;
	struct tm_sampler *s = make(1.0f, 3, 1.0f, 5, 8), *k1 = make(1.5f, 1, 1.0f, 5, 8);
	double z;
	int bad = 0;

	softmax(l, p, 8, 1.0, keep);
	z = worst_z(s, l, p, 8, &out);
	tap_ok(out == 0 && z < 5, "top-k 3 keeps exactly the 3 best, renormalised (worst %.2f, %d outside)", z, out);
	for (int i = 0; i < 1000; i++)
		bad += tm_sampler_sample(k1, l) != 1;
	tap_ok(bad == 0, "top-k 1 is always the best token");
	tm_sampler_free(s);
	tm_sampler_free(k1);

	/* NaNs never enter; equal logits: the lowest ids, so the result does not depend on the scan */
	float e[64];
	struct tm_sampler *k4 = make(1.0f, 4, 1.0f, 7, 64);

	for (int i = 0; i < 64; i++)
		e[i] = i % 3 ? 0.5f : __builtin_nanf("");
	bad = 0;
	for (int i = 0; i < 2000; i++) {
		int t = tm_sampler_sample(k4, e);

		bad += t != 1 && t != 2 && t != 4 && t != 5;
	}
	tap_ok(bad == 0, "top-k 4 over ties and NaNs keeps the 4 lowest non-NaN ids (1, 2, 4, 5)");
	tm_sampler_free(k4);
}

static void test_top_p(void)
{
	/* Probabilities 0.5, 0.3, 0.15, 0.05 in a shuffled order. */
	const float l[4] = { logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f) };
	const int keep2[4] = { 0, 1, 0, 1 }, keep3[4] = { 1, 1, 0, 1 };
	double p[4];
	int out;
	double z;
	struct tm_sampler *s = make(1.0f, 0, 0.75f, 11, 4);

	softmax(l, p, 4, 1.0, keep2);
	z = worst_z(s, l, p, 4, &out);
	tap_ok(out == 0 && z < 5, "top-p 0.75 keeps {0.5, 0.3} (worst %.2f, %d outside)", z, out);
	tm_sampler_free(s);

	s = make(1.0f, 0, 0.85f, 12, 4);
	softmax(l, p, 4, 1.0, keep3);
	z = worst_z(s, l, p, 4, &out);
	tap_ok(out == 0 && z < 5, "top-p 0.85 keeps {0.5, 0.3, 0.15} (worst %.2f, %d outside)", z, out);
	tm_sampler_free(s);

	/* Top-p is judged at temperature 1, before the temperature applies. */
	s = make(3.0f, 0, 0.75f, 13, 4);
	softmax(l, p, 4, 3.0, keep2);
	z = worst_z(s, l, p, 4, &out);
	tap_ok(out == 0 && z < 5, "top-p before temperature: T=3 spreads only over the kept two (worst %.2f)", z);
	tm_sampler_free(s);

	/* Top-k, then top-p over what top-k left: renormalised {0.5, 0.3} -> 0.625, 0.375. */
	s = make(1.0f, 2, 0.6f, 14, 4);
	const int keep1[4] = { 0, 1, 0, 0 };
	softmax(l, p, 4, 1.0, keep1);
	z = worst_z(s, l, p, 4, &out);
	tap_ok(out == 0 && z < 5, "top-k 2 then top-p 0.6 keeps only the best (worst %.2f, %d outside)", z, out);
	tm_sampler_free(s);
}

/* A 150k vocabulary with a peaked head: top-p must find the head without sorting everything. */
static void test_large_vocab(void)
{
	const uint32_t n = 151936;
	float *l = malloc(n * sizeof(*l));
	double *p = malloc(n * sizeof(*p));
	int *keep = calloc(n, sizeof(*keep));
	struct tm_rng r;
	int out;

	tm_rng_seed(&r, 3);
	for (uint32_t i = 0; i < n; i++)
		l[i] = (float)(tm_rng_uniform(&r) * 2 - 10);
	/* Ten tokens hold almost all the mass. */
	for (int i = 0; i < 10; i++) {
		uint32_t id = (uint32_t)(tm_rng_next(&r) % n);

		l[id] = 10.0f - (float)i * 0.3f;
	}
	softmax(l, p, n, 1.0, NULL);
	/* The set top-p 0.9 must keep, computed the slow way. */
	uint32_t *order = malloc(n * sizeof(*order));
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	for (uint32_t i = 0; i < 40; i++)	/* partial selection sort: the head is enough */
		for (uint32_t j = i + 1; j < n; j++)
			if (l[order[j]] > l[order[i]]) {
				uint32_t t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
	double cum = 0;
	int kept = 0;
	for (uint32_t i = 0; i < 40 && cum < 0.9; i++, kept++) {
		cum += p[order[i]];
		keep[order[i]] = 1;
	}
	softmax(l, p, n, 1.0, keep);
	struct tm_sampler *s = make(1.0f, 0, 0.9f, 21, n);
	/* Each draw scans the whole vocabulary: fewer draws, under the sanitizers. */
	double z = worst_z_n(s, l, p, n, &out, 1500);
	tap_ok(kept > 1 && kept < 40 && out == 0 && z < 5,
	       "top-p 0.9 on a 151936-token vocabulary keeps the %d-token head (worst %.2f, %d outside)", kept, z, out);
	tm_sampler_free(s);
	free(order);
	free(l);
	free(p);
	free(keep);
}

static void test_seed(void)
{
	float l[50];
	int32_t a[300], b[300], c[300];
	struct tm_sampler *s1 = make(0.8f, 20, 0.95f, 77, 50), *s2 = make(0.8f, 20, 0.95f, 77, 50);
	struct tm_sampler *s3 = make(0.8f, 20, 0.95f, 78, 50);
	int same = 1, differ = 0;

	for (int i = 0; i < 50; i++)
		l[i] = (float)((i * 37) % 11) * 0.3f;
	for (int i = 0; i < 300; i++) {
		a[i] = tm_sampler_sample(s1, l);
		b[i] = tm_sampler_sample(s2, l);
		c[i] = tm_sampler_sample(s3, l);
		same &= a[i] == b[i];
		differ |= a[i] != c[i];
	}
	tap_ok(same, "the same seed repeats the same 300 choices");
	tap_ok(differ, "another seed makes other choices");
	tm_sampler_seed(s1, 77);
	same = 1;
	for (int i = 0; i < 300; i++)
		same &= tm_sampler_sample(s1, l) == a[i];
	tap_ok(same, "re-seeding restarts the sequence");
	tm_sampler_free(s1);
	tm_sampler_free(s2);
	tm_sampler_free(s3);

	struct tm_rng r;
	tm_rng_seed(&r, 0);
	double mean = 0;
	int bad = 0;
	for (int i = 0; i < 100000; i++) {
		double u = tm_rng_uniform(&r);

		bad += u < 0 || u >= 1;
		mean += u;
	}
	mean /= 100000;
	tap_ok(!bad && fabs(mean - 0.5) < 0.005, "uniform draws lie in [0, 1) with mean %.4f", mean);
}

static void test_bad_params(void)
{
	struct tm_sampler_params p;
	struct tm_sampler *s;

	tm_sampler_params_init(&p);
	p.top_p = 0;
	tap_ok(tm_sampler_create(&s, &p, 10) < 0, "top-p 0 is refused");
	tm_sampler_params_init(&p);
	p.temperature = NAN;
	tap_ok(tm_sampler_create(&s, &p, 10) < 0, "a NaN temperature is refused");
	tm_sampler_params_init(&p);
	tap_ok(tm_sampler_create(&s, &p, 0) < 0, "an empty vocabulary is refused");
}

int main(void)
{
	test_greedy();
	test_distribution();
	test_top_k();
	test_top_p();
	test_large_vocab();
	test_seed();
	test_bad_params();
	return tap_done();
}
