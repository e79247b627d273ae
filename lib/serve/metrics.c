// SPDX-License-Identifier: MIT
/*
 * GET /metrics in Prometheus' text format. Totals are counters; tok/s and
 * per-tier GB/s are gauges over the last SERVE_RATE_WINDOW seconds, taken
 * from samples the scheduler records after every step, so they show what
 * the forward passes read (their per-mapping counters), not an estimate.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/generate.h"
#include "tiermem/mapping.h"
#include "lib/serve/internal.h"

void metrics_sample(struct tm_server *s, double now)
{
	struct rate_sample *r;
	int last = (s->rate_next + SERVE_RATE_SAMPLES - 1) % SERVE_RATE_SAMPLES;

	/* one sample per 50 ms is plenty and keeps the ring covering the window */
	if (s->n_rates && now - s->rates[last].t < 0.05)
		r = &s->rates[last];
	else {
		r = &s->rates[s->rate_next];
		s->rate_next = (s->rate_next + 1) % SERVE_RATE_SAMPLES;
		if (s->n_rates < SERVE_RATE_SAMPLES)
			s->n_rates++;
	}
	r->t = now;
	r->tokens = s->n_gen_tok;
	memcpy(r->bytes, s->map_bytes, sizeof(r->bytes));
}

/* The newest sample and the oldest one inside the window ending now. */
static void window(struct tm_server *s, double now, const struct rate_sample **a, const struct rate_sample **b)
{
	*a = *b = NULL;
	for (int k = 0; k < s->n_rates; k++) {
		const struct rate_sample *r = &s->rates[(s->rate_next + SERVE_RATE_SAMPLES - 1 - k) % SERVE_RATE_SAMPLES];

		if (now - r->t > SERVE_RATE_WINDOW)
			break;
		if (!*b)
			*b = r;
		*a = r;
	}
}

#define PUT(...) do { if (put(&buf, &len, &cap, __VA_ARGS__)) goto oom; } while (0)

__attribute__((format(printf, 4, 5)))
static int put(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	return buf_append(buf, len, cap, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

char *metrics_text(struct tm_server *s)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	const struct rate_sample *a, *b;
	double now = tm_now(), dt;
	int busy = 0;

	pthread_mutex_lock(&s->lock);
	window(s, now, &a, &b);
	dt = a && b && b->t > a->t ? b->t - a->t : 0;
	for (int i = 0; i < s->o.parallel; i++)
		busy += s->slots[i].job != NULL;
	PUT("# HELP tiermem_requests_total Completion requests accepted into the queue.\n"
	    "# TYPE tiermem_requests_total counter\ntiermem_requests_total %llu\n",
	    (unsigned long long)s->n_requests);
	PUT("# HELP tiermem_request_errors_total Requests answered with an error (4xx, 5xx).\n"
	    "# TYPE tiermem_request_errors_total counter\ntiermem_request_errors_total %llu\n",
	    (unsigned long long)s->n_errors);
	PUT("# HELP tiermem_prompt_tokens_total Prompt tokens of accepted requests.\n"
	    "# TYPE tiermem_prompt_tokens_total counter\ntiermem_prompt_tokens_total %llu\n",
	    (unsigned long long)s->n_prompt_tok);
	PUT("# HELP tiermem_prompt_tokens_reused_total Prompt tokens whose KV came from a slot's cache.\n"
	    "# TYPE tiermem_prompt_tokens_reused_total counter\ntiermem_prompt_tokens_reused_total %llu\n",
	    (unsigned long long)s->n_reused_tok);
	PUT("# HELP tiermem_generated_tokens_total Completion tokens generated.\n"
	    "# TYPE tiermem_generated_tokens_total counter\ntiermem_generated_tokens_total %llu\n",
	    (unsigned long long)s->n_gen_tok);
	PUT("# HELP tiermem_tokens_per_second Completion tokens per second, all slots, last %.0f s.\n"
	    "# TYPE tiermem_tokens_per_second gauge\ntiermem_tokens_per_second %.3f\n", SERVE_RATE_WINDOW,
	    dt > 0 ? (b->tokens - a->tokens) / dt : 0.0);
	PUT("# HELP tiermem_queue_depth Requests waiting for a slot.\n"
	    "# TYPE tiermem_queue_depth gauge\ntiermem_queue_depth %d\n", s->n_queued);
	PUT("# HELP tiermem_slots_busy Slots running a request.\n"
	    "# TYPE tiermem_slots_busy gauge\ntiermem_slots_busy %d\n", busy);
	PUT("# HELP tiermem_slots Slots (--parallel).\n# TYPE tiermem_slots gauge\ntiermem_slots %d\n",
	    s->o.parallel);
	PUT("# HELP tiermem_tier_read_bytes_total Weight bytes the forward passes read, per mapping (name: the import plan's tier) and its tier.\n"
	    "# TYPE tiermem_tier_read_bytes_total counter\n");
	for (int i = 0; i < s->m->n_maps; i++)
		PUT("tiermem_tier_read_bytes_total{map=\"%d\",name=\"%s\",tier=\"%s\",backend=\"%s\"} %llu\n", i,
		    s->m->maps[i].tier_name, tm_tier_name(s->m->maps[i].tier), s->m->maps[i].backend,
		    (unsigned long long)s->map_bytes[i]);
	PUT("# HELP tiermem_tier_read_gbps Weight read rate per mapping, GB/s, last %.0f s.\n"
	    "# TYPE tiermem_tier_read_gbps gauge\n", SERVE_RATE_WINDOW);
	for (int i = 0; i < s->m->n_maps; i++)
		PUT("tiermem_tier_read_gbps{map=\"%d\",name=\"%s\",tier=\"%s\",backend=\"%s\"} %.3f\n", i,
		    s->m->maps[i].tier_name, tm_tier_name(s->m->maps[i].tier), s->m->maps[i].backend,
		    dt > 0 ? (b->bytes[i] - a->bytes[i]) / dt / 1e9 : 0.0);
	if (s->xcache) {
		const struct tm_xstats *x = &s->xstats;

		PUT("# HELP tiermem_expert_cache_hits_total Routed experts found in the expert cache.\n"
		    "# TYPE tiermem_expert_cache_hits_total counter\ntiermem_expert_cache_hits_total %llu\n",
		    (unsigned long long)x->hits);
		PUT("# HELP tiermem_expert_cache_misses_total Routed experts read from where the model has them.\n"
		    "# TYPE tiermem_expert_cache_misses_total counter\ntiermem_expert_cache_misses_total %llu\n",
		    (unsigned long long)x->misses);
		PUT("# HELP tiermem_expert_cache_admissions_total Missed experts copied into the cache.\n"
		    "# TYPE tiermem_expert_cache_admissions_total counter\ntiermem_expert_cache_admissions_total %llu\n",
		    (unsigned long long)x->admits);
		PUT("# HELP tiermem_expert_cache_prefetches_total Prefetches by outcome.\n"
		    "# TYPE tiermem_expert_cache_prefetches_total counter\n"
		    "tiermem_expert_cache_prefetches_total{outcome=\"used\"} %llu\n"
		    "tiermem_expert_cache_prefetches_total{outcome=\"wasted\"} %llu\n"
		    "tiermem_expert_cache_prefetches_total{outcome=\"late\"} %llu\n",
		    (unsigned long long)x->pf_used, (unsigned long long)x->pf_wasted,
		    (unsigned long long)x->pf_late);
	}
	if (s->mirror.metrics) {
		char *more = s->mirror.metrics(s->mirror.arg);

		if (more && buf_append(&buf, &len, &cap, more, strlen(more))) {
			free(more);
			goto oom;
		}
		free(more);
	}
	PUT("# HELP tiermem_uptime_seconds Seconds since the server started.\n"
	    "# TYPE tiermem_uptime_seconds gauge\ntiermem_uptime_seconds %.1f\n", now - s->t_start);
	pthread_mutex_unlock(&s->lock);
	return buf;
oom:
	pthread_mutex_unlock(&s->lock);
	free(buf);
	return NULL;
}
