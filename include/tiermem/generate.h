/* SPDX-License-Identifier: MIT */
/*
 * The generation loop: prefill the prompt in batches, then decode one token
 * at a time, each sampled from the last logits and handed to a callback as
 * soon as it exists (for streaming). It knows no tokenizer and no sampling
 * rule: the caller passes both as callbacks. It times the two phases and
 * counts the weight bytes each read, so a run can report tok/s, bytes per
 * token and the bandwidth that implies.
 */
#ifndef TIERMEM_GENERATE_H
#define TIERMEM_GENERATE_H

#include <stdint.h>

#include "tiermem/model.h"

/* Choose the next token from n_vocab logits (which it may modify). */
typedef int32_t (*tm_sample_fn)(void *sampler, float *logits, int n_vocab);
/* A token was generated; return nonzero to stop (end of generation, a full buffer). */
typedef int (*tm_token_fn)(void *arg, int32_t token);

struct tm_gen_stats {
	int n_prompt;			/* prompt tokens evaluated */
	int n_sampled;			/* tokens generated (each passed to the callback) */
	int n_decoded;			/* of those, evaluated by a decode step */
	double t_prompt, t_decode;	/* seconds: prefill; the decode steps and their sampling */
	uint64_t bytes_prompt;		/* weight bytes the prefill read */
	uint64_t bytes_decode;		/* weight bytes the decode steps read */
	uint64_t handoffs_decode;	/* pool hand-offs of the decode steps */
	uint64_t map_bytes_decode[TM_MODEL_MAX_MAPS];	/* of bytes_decode, per model mapping (tier) */
};

/*
 * Evaluate the prompt (n_prompt >= 1) from the context's current position,
 * then generate up to n_predict tokens: sample, call on_token, evaluate it,
 * repeat. The last token sampled is not evaluated. Stops early when on_token
 * returns nonzero or the context is full. 0 or a negative errno.
 */
int tm_generate(struct tm_ctx *c, const int32_t *prompt, int n_prompt, int n_predict,
		tm_sample_fn sample, void *sampler, tm_token_fn on_token, void *arg,
		struct tm_gen_stats *st);

/* Seconds on a monotonic clock. */
double tm_now(void);

#endif
