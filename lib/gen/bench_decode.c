// SPDX-License-Identifier: MIT
/*
 * The share of the read ceiling that decode reaches, measured so that a noisy
 * host cannot fake it: token by token, one decode step and then one read of
 * as many bytes of the same memory with the same threads (every weight
 * mapping's share of what the step read, then the KV cache rows attention
 * read), each timed alone. The host's state changes over seconds, not within
 * a token, so each pair sees the same machine; the median over tokens of
 * read time / decode time is the figure.
 *
 * On a host whose CPUs are oversubscribed (more runnable threads than CPUs:
 * every figure here then depends on how long we wait for a CPU), share_cpu
 * is the same ratio of the process's CPU time, which leaves out the time our
 * threads were descheduled, though not the spinning of one thread that waits
 * for another that is.
 *
 * For a dense model the read covers the bytes the step read. For MoE it
 * covers as many bytes of the same mapping (a window that moves on every
 * token), not the very experts the router chose: the same pages and page
 * size, which is what the read rate depends on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tiermem/bench.h"
#include "tiermem/error.h"
#include "tiermem/generate.h"

#define WARMUP 2

struct window {
	size_t off[TM_MODEL_MAX_MAPS];	/* where each mapping's next read starts */
};

/* bytes of mapping m from w's offset on, wrapping at its end: one or two ranges */
static int map_ranges(const struct tm_mapping *m, size_t *off, uint64_t bytes, struct tm_range *r)
{
	int n = 0;

	if (!bytes || !m->size)
		return 0;
	bytes = bytes < m->size ? bytes : m->size;
	while (bytes) {
		size_t len = m->size - *off < bytes ? m->size - *off : bytes;

		r[n++] = (struct tm_range){ (const char *)m->addr + *off, len };
		bytes -= len;
		*off = (*off + len) % m->size;
	}
	return n;
}

/* what one decode step at position pos read: the weights' bytes per mapping, the cache's rows */
static int step_ranges(const struct tm_ctx *c, const uint64_t *map_bytes, int pos, struct window *w,
		       struct tm_range *r)
{
	const struct tm_model *m = c->m;
	int n = 0;

	for (int i = 0; i < m->n_maps; i++)
		n += map_ranges(&m->maps[i], &w->off[i], map_bytes[i], r + n);
	for (int l = 0; l < m->hp.n_layer; l++)
		for (int v = 0; v < 2; v++) {
			struct tm_kv_view kv = tm_ctx_kv_view(c, l, v);

			for (int g = 0; g < kv.heads; g++)
				r[n++] = (struct tm_range){ kv.base + g * kv.head_bytes, (size_t)(pos + 1) * kv.row_bytes };
		}
	return n;
}

static double quartile(const double *sorted, int n, double q)
{
	double x = q * (n - 1);
	int i = (int)x;

	return i + 1 < n ? sorted[i] + (x - i) * (sorted[i + 1] - sorted[i]) : sorted[n - 1];
}

/*
 * Positions 0 .. n_pos - 2 get random keys and values (attention's speed does
 * not depend on them, and a real prefill of thousands of tokens would take
 * minutes here), position n_pos - 1 a real token, whose logits start decode.
 */
static int seek(struct tm_ctx *c, int n_pos)
{
	uint64_t seed = 1;
	int32_t tok = 1 % c->m->hp.n_vocab;

	tm_ctx_reset(c);
	for (int l = 0; l < c->m->hp.n_layer && n_pos > 1; l++)
		for (int v = 0; v < (c->v_cache == c->k_cache ? 1 : 2); v++) {
			struct tm_kv_view kv = tm_ctx_kv_view(c, l, v);

			for (int g = 0; g < kv.heads; g++)
				tm_fill_random(v ? c->type_v : c->type_k, kv.base + g * kv.head_bytes,
					       (int64_t)(n_pos - 1) * kv.dim, &seed, 1.0f);
		}
	c->n_past = n_pos - 1;
	return tm_forward(c, &tok, 1, NULL, false);
}

int tm_bench_decode(struct tm_ctx *c, int n_pos, int n_tokens, size_t prefetch,
		    struct tm_decode_share *out)
{
	const struct tm_model *m = c->m;
	uint64_t mb0[TM_MODEL_MAX_MAPS], mb[TM_MODEL_MAX_MAPS], wsum = 0, ksum = 0;
	double *ratio, *t_dec, *t_read, *cpu_ratio;
	struct tm_range *r;
	struct window w = { { 0 } };
	int err = 0, wins[TM_READ_LOOPS] = { 0 };

	memset(out, 0, sizeof(*out));
	if (n_tokens < 1)
		return tm_err(-EINVAL, "bench: no tokens to decode");
	if (m->hp.n_layer > 1024)
		return tm_err(-EINVAL, "bench: %d layers", m->hp.n_layer);
	if (n_pos < 1 || n_pos > c->n_ctx - WARMUP - n_tokens)
		return tm_err(-EINVAL, "bench: %d positions and %d tokens do not fit a context of %d",
			      n_pos, WARMUP + n_tokens, c->n_ctx);
	if ((err = seek(c, n_pos)))
		return err;
	ratio = calloc(n_tokens, sizeof(*ratio));
	t_dec = calloc(n_tokens, sizeof(*t_dec));
	t_read = calloc(n_tokens, sizeof(*t_read));
	cpu_ratio = calloc(n_tokens, sizeof(*cpu_ratio));
	/* a window's two pieces per mapping, each KV head's rows of K and V per layer */
	r = calloc(2 * TM_MODEL_MAX_MAPS + 2 * (size_t)m->hp.n_layer * tm_ctx_kv_view(c, 0, 0).heads, sizeof(*r));
	if (!ratio || !t_dec || !t_read || !cpu_ratio || !r) {
		err = tm_err(-ENOMEM, "bench: out of memory");
		goto out;
	}
	out->n_pos = n_pos + WARMUP;
	for (int i = -WARMUP; i < n_tokens; i++) {
		int32_t tok = tm_argmax(c->logits, m->hp.n_vocab);
		uint64_t w0 = c->weight_bytes, k0 = c->kv_bytes;
		int pos = c->n_past, n;
		double t0, td, tr, c0, cd, cr;
		int won;

		memcpy(mb0, c->map_bytes, sizeof(mb0));
		c0 = tm_cpu_now();
		t0 = tm_now();
		if ((err = tm_forward(c, &tok, 1, NULL, false)))
			goto out;
		td = tm_now() - t0;
		cd = tm_cpu_now() - c0;
		for (int j = 0; j < m->n_maps; j++)
			mb[j] = c->map_bytes[j] - mb0[j];
		n = step_ranges(c, mb, pos, &w, r);
		won = tm_read_fastest(c->pool, r, n, prefetch, (i + WARMUP) % TM_READ_LOOPS, &tr, &cr);
		if (i < 0)
			continue;
		wins[won]++;
		t_dec[i] = td;
		t_read[i] = tr;
		ratio[i] = tr / td;
		cpu_ratio[i] = cd > 0 ? cr / cd : 0;
		wsum += c->weight_bytes - w0;
		ksum += c->kv_bytes - k0;
	}
	out->tokens = n_tokens;
	out->weight_bytes = (double)wsum / n_tokens;
	out->kv_bytes = (double)ksum / n_tokens;
	out->share = tm_median(ratio, n_tokens);	/* sorts ratio */
	out->share_q1 = quartile(ratio, n_tokens, 0.25);
	out->share_q3 = quartile(ratio, n_tokens, 0.75);
	out->share_cpu = tm_median(cpu_ratio, n_tokens);
	out->read_loops = prefetch ? TM_READ_LOOPS : 1;
	out->prefetch_faster = (double)(wins[1] + wins[2]) / n_tokens;
	out->sparse_faster = (double)wins[2] / n_tokens;
	out->decode_tok_s = 1.0 / tm_median(t_dec, n_tokens);
	out->read_gbs = (out->weight_bytes + out->kv_bytes) / tm_median(t_read, n_tokens) / 1e9;
out:
	free(ratio);
	free(t_dec);
	free(t_read);
	free(cpu_ratio);
	free(r);
	return err;
}
