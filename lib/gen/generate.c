// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>
#include <time.h>

#include "tiermem/error.h"
#include "tiermem/generate.h"

double tm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int tm_generate(struct tm_ctx *c, const int32_t *prompt, int n_prompt, int n_predict,
		tm_sample_fn sample, void *sampler, tm_token_fn on_token, void *arg,
		struct tm_gen_stats *st)
{
	int n_vocab = c->m->hp.n_vocab, err;
	uint64_t b0, h0;
	double t0;

	memset(st, 0, sizeof(*st));
	if (n_prompt < 1)
		return tm_err(-EINVAL, "the prompt has no tokens");
	if (n_predict < 1)
		return tm_err(-EINVAL, "nothing to generate (%d tokens)", n_predict);
	if (n_prompt > c->n_ctx - c->n_past)
		return tm_err(-EINVAL, "the prompt's %d tokens exceed the context of %d", n_prompt,
			      c->n_ctx - c->n_past);

	b0 = c->weight_bytes;
	t0 = tm_now();
	if ((err = tm_forward(c, prompt, n_prompt, NULL, false)))
		return err;
	st->t_prompt = tm_now() - t0;
	st->bytes_prompt = c->weight_bytes - b0;
	st->n_prompt = n_prompt;

	b0 = c->weight_bytes;
	h0 = c->handoffs;
	for (int i = 0; i < TM_MODEL_MAX_MAPS; i++)
		st->map_bytes_decode[i] = c->map_bytes[i];
	t0 = tm_now();
	for (;;) {
		int32_t tok = sample(sampler, c->logits, n_vocab);

		st->n_sampled++;
		if (on_token(arg, tok) || st->n_sampled == n_predict || c->n_past == c->n_ctx)
			break;
		if ((err = tm_forward(c, &tok, 1, NULL, false)))
			return err;
		st->n_decoded++;
	}
	st->t_decode = tm_now() - t0;
	st->bytes_decode = c->weight_bytes - b0;
	st->handoffs_decode = c->handoffs - h0;
	for (int i = 0; i < TM_MODEL_MAX_MAPS; i++)
		st->map_bytes_decode[i] = c->map_bytes[i] - st->map_bytes_decode[i];
	return 0;
}
