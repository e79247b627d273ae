/* SPDX-License-Identifier: MIT */
/*
 * Picking the next token from a row of logits: greedy, or a random draw
 * after top-k, top-p (nucleus) and temperature, in llama.cpp's order: top-k,
 * then top-p on the untempered probabilities, then temperature, then the
 * draw. The randomness is the sampler's own xoshiro256** generator seeded
 * from the seed, so a seed repeats the same choices for the same logits on
 * any machine.
 */
#ifndef TIERMEM_SAMPLER_H
#define TIERMEM_SAMPLER_H

#include <stdint.h>

struct tm_sampler_params {
	float temperature;	/* <= 0: greedy (argmax, lowest id on a tie) */
	int32_t top_k;		/* <= 0: all tokens */
	float top_p;		/* >= 1: all tokens; else the fewest best tokens whose probability sums to >= top_p */
	uint64_t seed;
};

/* Greedy, no truncation, seed 0. */
void tm_sampler_params_init(struct tm_sampler_params *p);

struct tm_sampler;

/* 0, -EINVAL (a bad parameter, named), -ENOMEM. */
int tm_sampler_create(struct tm_sampler **s, const struct tm_sampler_params *p, uint32_t n_vocab);
void tm_sampler_free(struct tm_sampler *s);
/* Restart the random sequence as if just created with this seed. */
void tm_sampler_seed(struct tm_sampler *s, uint64_t seed);
/* The chosen id from n_vocab logits (not modified). Greedy is kernels/ops.h tm_argmax. NaN logits are never drawn. */
int32_t tm_sampler_sample(struct tm_sampler *s, const float *logits);

/* The generator itself (xoshiro256**), for tests and other seeded choices. */
struct tm_rng {
	uint64_t s[4];
};
void tm_rng_seed(struct tm_rng *r, uint64_t seed);
uint64_t tm_rng_next(struct tm_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double tm_rng_uniform(struct tm_rng *r);

#endif
