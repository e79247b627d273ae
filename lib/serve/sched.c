// SPDX-License-Identifier: MIT
/*
 * The scheduler: continuous batching over the slots. Each round it admits
 * queued jobs into free slots (the slot whose cached tokens share the
 * longest prefix with the prompt, whose KV is then reused), evaluates up
 * to --batch-size tokens of new prompts (first admitted first: a long
 * prompt is evaluated in chunks over several steps, so it delays the
 * running streams by one chunk per token, not by its whole prefill), then
 * decodes one token of every running slot with one tm_forward_seqs, so
 * each weight is read once per step for all of them. Jobs join and leave
 * between steps. Model work runs without the lock; only
 * admission and publishing take it.
 *
 * With a mirror of depth > 1 (--split layers over MPI ranks: a pipeline)
 * each call is made, then done later (its logits back, sampled), so that
 * the first rank works on one group of slots while the next ranks work on
 * the groups before it: the running slots are decoded in groups whose size
 * the mirror chooses from the stages' costs (lib/plan/groups.c; any grouping
 * gives the same text: batch invariance), and a round makes its calls, then
 * waits only for the oldest when depth calls are out.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tiermem/error.h"
#include "tiermem/generate.h"
#include "lib/serve/internal.h"

int sched_init(struct tm_server *s)
{
	const struct tm_hparams *hp = &s->m->hp;
	int err;

	s->slots = calloc(s->o.parallel, sizeof(*s->slots));
	if (!s->slots)
		return tm_err(-ENOMEM, "out of memory for %d slots", s->o.parallel);
	for (int i = 0; i < s->o.parallel; i++) {
		struct slot *sl = &s->slots[i];

		if ((err = tm_ctx_create_kv(&sl->ctx, s->m, s->pool, s->o.ctx_size, s->o.ubatch_size,
					    s->o.type_k, s->o.type_v)))
			return err;
		sl->ctx->exact = true;	/* a token's bits do not depend on its batch or on the prefix cache */
		sl->cache = malloc(sizeof(int32_t) * s->o.ctx_size);
		sl->counts = calloc(hp->n_vocab, sizeof(uint32_t));
		if (!sl->cache || !sl->counts)
			return tm_err(-ENOMEM, "out of memory for slot %d", i);
	}
	return tm_ctx_create_seqs(&s->batch, s->m, s->pool, s->o.parallel);
}

void sched_free(struct tm_server *s)
{
	for (int i = 0; s->slots && i < s->o.parallel; i++) {
		tm_ctx_free(s->slots[i].ctx);
		tm_sampler_free(s->slots[i].sampler);
		free(s->slots[i].cache);
		free(s->slots[i].counts);
		free(s->slots[i].raw);
	}
	free(s->slots);
	tm_ctx_free(s->batch);
	free(s->flights);
	s->flights = NULL;
	while (s->queue) {
		struct job *j = s->queue;

		s->queue = j->next;
		job_put(s, j);
	}
}

void job_put(struct tm_server *s, struct job *j)
{
	if (--j->refs > 0)
		return;
	free(j->prompt);
	for (int i = 0; i < j->n_stop; i++)
		free(j->stop[i]);
	free(j->text);
	json_decref(j->tools);
	free(j);
}

bool sched_submit(struct tm_server *s, struct job *j)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	ok = !s->stopping && s->n_queued < s->o.queue;
	if (ok) {
		j->refs++;
		j->next = NULL;
		*s->queue_tail = j;
		s->queue_tail = &j->next;
		s->n_queued++;
		s->n_prompt_tok += j->n_prompt;
		pthread_cond_signal(&s->work);
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
	int n = 0;

	while (n < na && n < nb && a[n] == b[n])
		n++;
	return n;
}

/* Under lock: move queued jobs into free slots, preferring the slot with the longest shared prefix. */
static void admit(struct tm_server *s)
{
	while (s->queue) {
		struct job *j = s->queue;
		int best = -1, best_len = -1;

		for (int i = 0; i < s->o.parallel; i++) {
			struct slot *sl = &s->slots[i];
			int len;

			if (sl->job)
				continue;
			len = common_prefix(sl->cache, sl->n_cache, j->prompt, j->n_prompt);
			if (len > best_len || (len == best_len && sl->t_used < s->slots[best].t_used))
				best = i, best_len = len;
		}
		if (best < 0)
			return;
		s->queue = j->next;
		if (!s->queue)
			s->queue_tail = &s->queue;
		s->n_queued--;
		if (j->cancelled) {
			job_put(s, j);
			continue;
		}
		struct slot *sl = &s->slots[best];

		sl->job = j;
		sl->fresh = true;
		sl->started = false;
		sl->admitted = s->n_admitted++;
		sl->finished = false;
		sl->finish = NULL;
		sl->raw_len = sl->raw_pub = 0;
		sl->n_gen = 0;
		/* the last prompt token is evaluated again: its logits start the completion */
		sl->n_cache = best_len < j->n_prompt ? best_len : j->n_prompt - 1;
		j->n_reused = sl->n_cache;
		s->n_reused_tok += sl->n_cache;
	}
}

/* A ring entry for the next call (make_room made room). */
static struct flight *take_off(struct tm_server *s, int k, int n)
{
	struct flight *f = &s->flights[(s->fly0 + s->n_fly++) % s->depth];

	s->n_made++;
	f->k = k;
	f->n = n;
	return f;
}

/* Up to budget more tokens of the slot's prompt (its sampler made first): the call made; how many, or -1. */
static int prefill(struct tm_server *s, struct slot *sl, const struct tm_hparams *hp, int budget)
{
	const struct tm_serve_mirror *mi = &s->mirror;
	struct job *j = sl->job;
	int k = j->n_prompt - sl->n_cache;
	struct flight *f;

	if (!sl->started) {
		tm_sampler_free(sl->sampler);
		sl->sampler = NULL;
		if (tm_sampler_create(&sl->sampler, &j->sp, hp->n_vocab))
			return -1;
		memset(sl->counts, 0, sizeof(uint32_t) * hp->n_vocab);
		sl->ctx->n_past = sl->n_cache;
		sl->started = true;
	}
	if (k > budget)
		k = budget;
	f = take_off(s, k, 1);
	f->slot[0] = (int)(sl - s->slots);
	if (mi->prefill)
		mi->prefill(mi->arg, f->slot[0], sl->ctx->n_past, j->prompt + sl->n_cache, k);
	f->err = tm_forward(sl->ctx, j->prompt + sl->n_cache, k, NULL, false);
	if (mi->made)
		mi->made(mi->arg);
	sl->flying = true;
	return k;
}

/* The admitted slot whose prompt is still to evaluate that came first, or NULL. */
static struct slot *next_prompt(struct tm_server *s)
{
	struct slot *best = NULL;

	for (int i = 0; i < s->o.parallel; i++) {
		struct slot *sl = &s->slots[i];

		if (sl->job && sl->fresh && !sl->flying && !sl->finished && !sl->job->cancelled &&
		    (!best || sl->admitted < best->admitted))
			best = sl;
	}
	return best;
}

/* OpenAI's penalties over the tokens generated so far, then min-p, then the sampler. */
static int32_t sample(struct tm_server *s, struct slot *sl, const struct tm_hparams *hp)
{
	struct job *j = sl->job;
	float *lg = sl->ctx->logits;

	if (s->test_reply)
		return sl->n_gen < s->n_test_reply ? s->test_reply[sl->n_gen] : tm_tokenizer_eos(s->tok);

	if (j->presence != 0 || j->frequency != 0)
		for (int i = 0; i < hp->n_vocab; i++)
			if (sl->counts[i])
				lg[i] -= j->presence + j->frequency * sl->counts[i];
	if (j->min_p > 0 && j->sp.temperature > 0) {
		float max = lg[tm_argmax(lg, hp->n_vocab)], floor = max + logf(j->min_p);

		for (int i = 0; i < hp->n_vocab; i++)
			if (lg[i] < floor)
				lg[i] = -INFINITY;
	}
	return tm_sampler_sample(sl->sampler, lg);
}

/* A sampled token: end of generation, text (cut at a stop sequence), or the length limit. */
static void emit(struct tm_server *s, struct slot *sl, int32_t tok)
{
	struct job *j = sl->job;
	char piece[256];
	size_t old = sl->raw_len;
	int n;
	long at;

	if (tm_tokenizer_is_eog(s->tok, tok)) {
		sl->finished = true;
		sl->finish = "stop";
		return;
	}
	sl->n_gen++;
	sl->counts[tok]++;
	n = tm_token_piece(s->tok, tok, j->tools_tmpl >= 0, piece, sizeof(piece));
	if (n > (int)sizeof(piece))
		n = sizeof(piece);
	if (n > 0 && buf_append(&sl->raw, &sl->raw_len, &sl->raw_cap, piece, n)) {
		snprintf(j->error, sizeof(j->error), "out of memory for the completion");
		sl->finished = true;
		return;
	}
	at = stop_find(sl->raw, sl->raw_len, old, j->stop, j->n_stop);
	if (at >= 0) {
		sl->raw_len = (size_t)at;
		sl->finished = true;
		sl->finish = "stop";
	} else if (sl->n_gen >= j->max_tokens || sl->ctx->n_past >= sl->ctx->n_ctx) {
		sl->finished = true;
		sl->finish = "length";
	}
	sl->next = tok;
}

/* Under lock: hand the slot's settled text to its job; free the slot when done or abandoned. */
static void publish(struct tm_server *s, struct slot *sl, double now)
{
	struct job *j = sl->job;
	size_t end = sl->raw_len;

	if (!j)
		return;
	if (!sl->finished && !j->cancelled) {
		end -= stop_holdback(sl->raw, end, j->stop, j->n_stop);
		end = utf8_complete(sl->raw, end);
	}
	if (end > sl->raw_pub && !j->cancelled) {
		if (utf8_append(&j->text, &j->len, &j->cap, sl->raw + sl->raw_pub, end - sl->raw_pub)) {
			snprintf(j->error, sizeof(j->error), "out of memory for the completion");
			sl->finished = true;
		}
		sl->raw_pub = end;
	}
	s->n_gen_tok += sl->n_gen - j->n_gen;
	j->n_gen = sl->n_gen;
	/* a slot in a call keeps its job until the call is done: its context is still in use */
	if ((sl->finished || j->cancelled) && !sl->flying) {
		j->finish = sl->finish ? sl->finish : "stop";
		j->done = true;
		if (j->error[0])
			s->n_errors++;
		sl->job = NULL;
		sl->t_used = now;
		job_put(s, j);
	}
}

static void fail_slot(struct slot *sl)
{
	snprintf(sl->job->error, sizeof(sl->job->error), "%s", tm_strerror());
	sl->finished = true;
	sl->n_cache = 0;	/* its KV is not to be trusted for reuse */
}

/*
 * The oldest call is done: its logits (brought back by the mirror) sampled.
 * A prompt whose last token was in it samples its first token (first: not
 * decoded again before that is published). A failed decode step's error.
 */
static int land(struct tm_server *s, bool *first)
{
	const struct tm_hparams *hp = &s->m->hp;
	const struct tm_serve_mirror *mi = &s->mirror;
	struct flight *f = &s->flights[s->fly0];
	struct tm_ctx *ctxs[s->o.parallel];
	struct slot *sl;

	for (int i = 0; i < f->n; i++) {
		ctxs[i] = s->slots[f->slot[i]].ctx;
		s->slots[f->slot[i]].flying = false;
	}
	if (mi->done)
		mi->done(mi->arg, ctxs, f->n);
	s->fly0 = (s->fly0 + 1) % s->depth;
	s->n_fly--;
	if (f->k) {
		sl = &s->slots[f->slot[0]];
		if (f->err) {
			fail_slot(sl);
			return 0;
		}
		/* the cache list grows with the KV, so a job cancelled mid-prompt leaves a reusable prefix */
		memcpy(sl->cache + sl->n_cache, sl->job->prompt + sl->n_cache, sizeof(int32_t) * f->k);
		sl->n_cache += f->k;
		if (sl->n_cache == sl->job->n_prompt) {
			sl->fresh = false;
			first[f->slot[0]] = true;
			emit(s, sl, sample(s, sl, hp));
		}
		return 0;
	}
	for (int i = 0; i < f->n; i++) {
		sl = &s->slots[f->slot[i]];
		if (f->err) {
			fail_slot(sl);
			continue;
		}
		sl->cache[sl->n_cache++] = f->toks[i];
		emit(s, sl, sample(s, sl, hp));
	}
	return f->err;
}

/* Before a call: the oldest done if depth calls are out. */
static int make_room(struct tm_server *s, bool *first)
{
	return s->n_fly == s->depth ? land(s, first) : 0;
}

/* A running slot whose next token can go into a decode step now. */
static bool ready(const struct slot *sl, const bool *first, int i)
{
	return sl->job && !sl->fresh && !sl->flying && !first[i] && !sl->finished && !sl->job->cancelled;
}

/*
 * One decode step of the ready slots: all of them, or with depth > 1 a
 * group of the running ones (the mirror's choice, else a depth-th).
 */
static int decode(struct tm_server *s, bool *first)
{
	struct tm_ctx *seqs[s->o.parallel];
	const struct tm_serve_mirror *mi = &s->mirror;
	int n = 0, running = 0, most, err;
	struct flight *f;

	for (int i = 0; i < s->o.parallel; i++)
		n += ready(&s->slots[i], first, i);
	if (!n)
		return 0;
	/* the oldest call done first: its slots may join this step */
	err = make_room(s, first);
	for (int i = 0; i < s->o.parallel; i++) {
		const struct slot *sl = &s->slots[i];

		running += sl->job && !sl->finished && !sl->job->cancelled;
	}
	most = mi->group ? mi->group(mi->arg, running) : (running + s->depth - 1) / s->depth;
	f = take_off(s, 0, 0);
	for (int i = 0; i < s->o.parallel && f->n < most; i++) {
		struct slot *sl = &s->slots[i];

		if (!ready(sl, first, i))
			continue;
		seqs[f->n] = sl->ctx;
		f->toks[f->n] = sl->next;
		f->slot[f->n++] = i;
		sl->flying = true;
	}
	if (mi->decode)
		mi->decode(mi->arg, f->slot, f->toks, f->n);
	f->err = tm_forward_seqs(s->batch, seqs, f->toks, f->n);
	if (mi->made)
		mi->made(mi->arg);
	return err;
}

/*
 * One round: up to batch_size tokens of new prompts (a prompt whose last
 * token is in samples its first token, published before its next one is
 * decoded), then one decode step for the other running slots; every call
 * is done by the end of the round, or with depth > 1 all but depth - 1.
 */
static int step(struct tm_server *s)
{
	const struct tm_hparams *hp = &s->m->hp;
	bool first[s->o.parallel];
	uint64_t made = s->n_made;
	int err = 0, e;
	struct slot *sl;

	memset(first, 0, sizeof(first));
	for (int budget = s->o.batch_size, k; budget > 0 && (sl = next_prompt(s)); budget -= k) {
		if ((e = make_room(s, first)))
			err = e;
		/* the oldest call done may have ended this one's job */
		if (sl != next_prompt(s)) {
			k = 0;
			continue;
		}
		if ((k = prefill(s, sl, hp, budget)) < 0) {
			fail_slot(sl);
			k = 0;
		}
	}
	if ((e = decode(s, first)))
		err = e;
	/* with nothing new made, wait for the oldest call rather than spin */
	if (s->n_fly && (s->n_fly == s->depth || s->n_made == made) && (e = land(s, first)))
		err = e;
	return err;
}

static bool busy(struct tm_server *s)
{
	for (int i = 0; i < s->o.parallel; i++)
		if (s->slots[i].job)
			return true;
	return false;
}

static void add_bytes(struct tm_server *s, const struct tm_ctx *c, uint64_t *seen)
{
	for (int i = 0; i < s->m->n_maps; i++) {
		s->map_bytes[i] += c->map_bytes[i] - seen[i];
		seen[i] = c->map_bytes[i];
	}
}

int sched_loop(struct tm_server *s, volatile sig_atomic_t *stop)
{
	uint64_t seen[s->o.parallel + 1][TM_MODEL_MAX_MAPS];
	int err = 0, *ids;

	memset(seen, 0, sizeof(seen));
	s->depth = s->mirror.depth > 1 ? s->mirror.depth : 1;
	s->flights = calloc(s->depth, sizeof(*s->flights) + 2 * sizeof(int32_t) * s->o.parallel);
	if (!s->flights)
		return tm_err(-ENOMEM, "out of memory for the scheduler");
	ids = (int *)(s->flights + s->depth);
	for (int i = 0; i < s->depth; i++) {
		s->flights[i].slot = ids + 2 * i * s->o.parallel;
		s->flights[i].toks = ids + (2 * i + 1) * s->o.parallel;
	}
	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (*stop && !s->stopping) {
			s->stopping = true;
			pthread_mutex_unlock(&s->lock);
			http_quiesce(s);
			pthread_mutex_lock(&s->lock);
		}
		admit(s);
		if (!busy(s)) {
			struct timespec ts;

			if (s->stopping && !s->queue)
				break;
			metrics_sample(s, tm_now());
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000;
			if (ts.tv_nsec >= 1000000000)
				ts.tv_sec++, ts.tv_nsec -= 1000000000;
			pthread_cond_timedwait(&s->work, &s->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&s->lock);
		err = step(s);
		pthread_mutex_lock(&s->lock);
		double now = tm_now();

		for (int i = 0; i < s->o.parallel; i++) {
			add_bytes(s, s->slots[i].ctx, seen[i]);
			publish(s, &s->slots[i], now);
		}
		add_bytes(s, s->batch, seen[s->o.parallel]);
		if (s->xcache)
			tm_xcache_total(tm_xonline_cache(s->xcache), 0, s->m->hp.n_layer, &s->xstats);
		metrics_sample(s, now);
		pthread_cond_broadcast(&s->progress);
		if (err)
			fprintf(stderr, "tiermem serve: decode step failed: %s\n", tm_strerror());
	}
	pthread_cond_broadcast(&s->progress);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
