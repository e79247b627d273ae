// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/args.h"
#include "cli/run_experts.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/store.h"
#include "tiermem/mapping.h"

#define CMD "run"
#define GROUPS 4

void run_experts_init(struct run_experts *r)
{
	memset(r, 0, sizeof(*r));
	r->o.cache.policy = TM_XP_LRFU;
}

int run_experts_option(struct run_experts *r, int code, const char *arg)
{
	int p;

	switch (code) {
	case RX_CACHE:
		r->size = arg;
		return 0;
	case RX_POLICY:
		p = tm_xpolicy_parse(arg);
		if (p < 0 || p == TM_XP_STATIC || p == TM_XP_OPT)
			return usage_error(CMD, "--expert-policy: '%s' is not lru, lfu or lrfu", arg);
		r->o.cache.policy = (enum tm_xpolicy)p;
		return 0;
	case RX_COPY:
		if (strcmp(arg, "async") && strcmp(arg, "sync"))
			return usage_error(CMD, "--expert-copy: '%s' is not async or sync", arg);
		r->o.sync_copy = !strcmp(arg, "sync");
		return 0;
	case RX_GBPS:
		return parse_double("--expert-copy-gbps", arg, 0.001, 1e6, &r->o.copy_gbps) ? EXIT_USAGE : 0;
	case RX_PREDICT:
		r->o.predict = true;
		return 0;
	case RX_HEAT:
		r->heat = arg;
		return 0;
	}
	return EXIT_USAGE;
}

/* SIZE -> slots per layer, for a model whose expert (gate + up + down) takes eb bytes. */
static int slots_of(const char *s, const struct tm_hparams *hp, uint64_t eb, int *slots)
{
	size_t n = strlen(s);
	double pct;
	uint64_t b;
	long v;

	if (n && s[n - 1] == '%') {
		char buf[32];

		snprintf(buf, sizeof(buf), "%.*s", (int)(n - 1 < 31 ? n - 1 : 31), s);
		if (parse_double("--expert-cache", buf, 0, 100, &pct))
			return EXIT_USAGE;
		v = (long)(pct / 100 * hp->n_expert + 0.5);
	} else if (n && s[n - 1] >= '0' && s[n - 1] <= '9') {
		if (parse_long("--expert-cache", s, 1, 1L << 30, &v))
			return EXIT_USAGE;
	} else {
		long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

		if (parse_size("--expert-cache", s, &b))
			return EXIT_USAGE;
		if (pages > 0 && psz > 0 && b > (uint64_t)pages * (uint64_t)psz)
			return usage_error(CMD, "--expert-cache %s: more than the %.2f GiB of free DDR", s,
					   (double)pages * psz / 1073741824.0);
		v = (long)(b / eb / (uint64_t)hp->n_layer);
	}
	if (v < 1)
		return usage_error(CMD, "--expert-cache %s: less than one expert per layer", s);
	if (v > hp->n_expert)
		return usage_error(CMD, "--expert-cache %s: %ld experts per layer, but a layer has %d", s, v,
				   hp->n_expert);
	*slots = (int)v;
	return 0;
}

/* --expert-heat: the heat must be this model's (content hash), then it fills the slots. */
static int warm(struct run_experts *r, struct tm_model *m)
{
	struct tm_xheat h;
	char hash[33];
	int err;

	if ((err = tm_xheat_read(&h, r->heat)))
		return err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
	err = tm_model_identity(m, r->name, hash);
	if (err == -EINVAL)
		fprintf(stderr, "tiermem run: note: --expert-heat: the model's hash cannot be computed here; only the heat's shape was checked\n");
	else if (err) {
		tm_xheat_free(&h);
		return run_error(CMD, "%s", tm_strerror());
	}
	if ((err = tm_xheat_check(&h, &m->gguf, err ? NULL : hash)) || (err = tm_xonline_warm(r->x, &h))) {
		tm_xheat_free(&h);
		return err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) :
					usage_error(CMD, "--expert-heat %s: %s", r->heat, tm_strerror());
	}
	tm_xheat_free(&h);
	return 0;
}

int run_experts_setup(struct run_experts *r, struct tm_model *m, struct tm_ctx *c)
{
	const struct tm_layer *L = &m->layers[0];
	int rc, err;

	if (!r->size)
		return 0;
	if (!m->hp.moe) {
		fprintf(stderr, "tiermem run: note: --expert-cache has no effect: %s is a dense model, it has no experts\n",
			m->hp.arch_name);
		return 0;
	}
	if (c->gpu)
		return usage_error(CMD, "--expert-cache: the GPU decode (--gpu, -ngl) does not go through the expert cache yet");
	r->m = m;
	if ((rc = slots_of(r->size, &m->hp, L->gate_exps.mat_bytes + L->up_exps.mat_bytes +
			   L->down_exps.mat_bytes, &r->o.cache.slots)))
		return rc;
	r->layer0 = calloc(m->hp.n_layer, sizeof(*r->layer0));
	if (!r->layer0)
		return run_error(CMD, "out of memory");
	if ((err = tm_xonline_create(&r->x, m, &r->o)))
		return err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
	tm_xonline_attach(r->x, c);
	return r->heat ? warm(r, m) : 0;
}

void run_experts_mark(struct run_experts *r, const struct tm_ctx *c)
{
	if (!r->x || r->marked)
		return;
	r->marked = true;
	memcpy(r->map0, c->map_bytes, sizeof(r->map0));
	for (int l = 0; l < r->m->hp.n_layer; l++)
		r->layer0[l] = *tm_xcache_layer_stats(tm_xonline_cache(r->x), l);
	tm_xonline_stats(r->x, &r->ost0);
}

/* a - b, counter by counter */
static void sub(struct tm_xstats *a, const struct tm_xstats *b)
{
	a->uses -= b->uses;
	a->hits -= b->hits;
	a->misses -= b->misses;
	a->admits -= b->admits;
	a->evicts -= b->evicts;
	a->pf_issued -= b->pf_issued;
	a->pf_used -= b->pf_used;
	a->pf_wasted -= b->pf_wasted;
	a->pf_late -= b->pf_late;
}

static void group(struct run_experts *r, int l0, int l1, struct tm_xstats *out)
{
	const struct tm_xcache *xc = tm_xonline_cache(r->x);

	memset(out, 0, sizeof(*out));
	for (int l = l0; l < l1; l++) {
		struct tm_xstats s = *tm_xcache_layer_stats(xc, l);

		sub(&s, &r->layer0[l]);
		out->uses += s.uses;
		out->hits += s.hits;
		out->misses += s.misses;
		out->admits += s.admits;
		out->evicts += s.evicts;
		out->pf_issued += s.pf_issued;
		out->pf_used += s.pf_used;
		out->pf_wasted += s.pf_wasted;
		out->pf_late += s.pf_late;
	}
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * a / b : 0;
}

/* Decode's figures, per token where it says so. */
struct figures {
	struct tm_xstats t, g[GROUPS];
	int ng, g0[GROUPS], g1[GROUPS];
	double nt, cache_b, hit_b, slow, slow_exp, all_b, copies, copy_wait, pred_right;
	double tps_with, tps_without;
	struct tm_xcost rig;
};

static bool figures(struct run_experts *r, const struct tm_ctx *c, int n_decoded, struct figures *f)
{
	const struct tm_model *m = r->m;
	struct tm_xonline_stats os;
	int nl, cm;

	if (!r->x || !r->marked)
		return false;
	memset(f, 0, sizeof(*f));
	nl = m->hp.n_layer;
	cm = tm_xonline_map(r->x);
	f->nt = n_decoded > 0 ? n_decoded : 1;
	tm_xonline_drain(r->x);
	tm_xonline_stats(r->x, &os);
	group(r, 0, nl, &f->t);
	/* experts' bytes differ between layers (q4_K_M gives some layers' ffn_down q6_K) */
	for (int l = 0; l < nl; l++) {
		const struct tm_layer *L = &m->layers[l];
		struct tm_xstats s;
		double b = (double)(L->gate_exps.mat_bytes + L->up_exps.mat_bytes + L->down_exps.mat_bytes);

		group(r, l, l + 1, &s);
		f->hit_b += s.hits * b;
		f->slow_exp += s.misses * b;
		f->all_b += s.uses * b;
	}
	f->ng = nl < GROUPS ? nl : GROUPS;
	for (int g = 0; g < f->ng; g++) {
		f->g0[g] = g * nl / f->ng;
		f->g1[g] = (g + 1) * nl / f->ng;
		group(r, f->g0[g], f->g1[g], &f->g[g]);
	}
	for (int i = 0; i < m->n_maps; i++)
		if (i != cm)
			f->slow += (double)(c->map_bytes[i] - r->map0[i]);
	f->cache_b = (double)(c->map_bytes[cm] - r->map0[cm]);
	f->copies = (double)(os.copy_bytes - r->ost0.copy_bytes);
	f->copy_wait = os.copy_wait_s - r->ost0.copy_wait_s;
	f->pred_right = pct(os.pred_right - r->ost0.pred_right, os.pred_total - r->ost0.pred_total);
	/* the interim cost model of Documentation/tiermem-experts.rst, on the seed's rig */
	f->rig = (struct tm_xcost){ .fast_gbps = 100, .slow_gbps = 39 };
	double dense = (f->slow - f->slow_exp) / f->nt, cp = f->copies / f->nt;

	f->tps_with = 1 / tm_xcost_sec_per_tok(&f->rig, dense + f->cache_b / f->nt + cp, f->slow_exp / f->nt + cp);
	f->tps_without = 1 / tm_xcost_sec_per_tok(&f->rig, dense, f->all_b / f->nt);
	return true;
}

void run_experts_summary(struct run_experts *r, const struct tm_ctx *c, int n_decoded, double t_decode)
{
	const struct tm_model *m = r->m;
	struct figures f;
	char groups[512];
	size_t gl = 0;
	int cm;

	if (!figures(r, c, n_decoded, &f))
		return;
	cm = tm_xonline_map(r->x);
	for (int g = 0; g < f.ng && gl < sizeof(groups); g++)
		gl += snprintf(groups + gl, sizeof(groups) - gl, "%s%d-%d %.1f %%", gl ? ", " : "", f.g0[g],
			       f.g1[g] - 1, pct(f.g[g].hits, f.g[g].uses));
	fprintf(stderr, "experts:     cache of %d of %d experts per layer (%.0f %%), %.2f GiB on %s (%s), policy %s, copies %s%s\n",
		tm_xcache_slots(tm_xonline_cache(r->x)), m->hp.n_expert,
		pct((uint64_t)tm_xcache_slots(tm_xonline_cache(r->x)), (uint64_t)m->hp.n_expert),
		tm_xonline_bytes(r->x) / 1073741824.0, tm_tier_name(m->maps[cm].tier), m->maps[cm].backend,
		tm_xpolicy_name(r->o.cache.policy), r->o.sync_copy ? "sync" : "async",
		r->o.predict ? ", prediction on" : "");
	fprintf(stderr, "             decode: hits %.1f %% (layers %s); per token %.1f misses, %.1f admitted\n",
		pct(f.t.hits, f.t.uses), groups, f.t.misses / f.nt, f.t.admits / f.nt);
	if (r->o.predict)
		fprintf(stderr, "             prefetch per token: %.1f issued, %.1f used, %.1f wasted, %.1f late; predictions right %.1f %%\n",
			f.t.pf_issued / f.nt, f.t.pf_used / f.nt, f.t.pf_wasted / f.nt, f.t.pf_late / f.nt,
			f.pred_right);
	fprintf(stderr, "             per token: %.2f MiB from the cache region (hits x their experts' bytes: %.2f), %.1f MiB from the model's mappings (experts %.1f), %.1f MiB copied%s\n",
		f.cache_b / f.nt / 1048576, f.hit_b / f.nt / 1048576, f.slow / f.nt / 1048576,
		f.slow_exp / f.nt / 1048576, f.copies / f.nt / 1048576, r->o.sync_copy ? "" : " by the copier");
	if (t_decode > 0)
		fprintf(stderr, "             copy time on the forward pass: %.3f s of %.3f s decoding\n", f.copy_wait,
			t_decode);
	fprintf(stderr, "             predicted with the dense weights on a fast tier of %g GB/s and the experts on a slow one of %g GB/s: %.2f tok/s at this hit rate, %.2f without the cache\n",
		f.rig.fast_gbps, f.rig.slow_gbps, f.tps_with, f.tps_without);
}

static json_t *stats_json(const struct tm_xstats *s, double nt)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f}", "uses", (json_int_t)s->uses,
			 "hits", (json_int_t)s->hits, "misses", (json_int_t)s->misses,
			 "admits", (json_int_t)s->admits, "hit_rate", s->uses ? (double)s->hits / s->uses : 0.0,
			 "prefetch_issued_per_token", s->pf_issued / nt, "prefetch_used_per_token", s->pf_used / nt,
			 "prefetch_wasted_per_token", s->pf_wasted / nt, "prefetch_late_per_token", s->pf_late / nt);
}

json_t *run_experts_json(struct run_experts *r, const struct tm_ctx *c, int n_decoded)
{
	struct figures f;
	json_t *groups = json_array(), *j;

	if (!groups || !figures(r, c, n_decoded, &f)) {
		json_decref(groups);
		return NULL;
	}
	for (int g = 0; g < f.ng; g++) {
		json_t *o = stats_json(&f.g[g], f.nt);

		json_object_set_new(o, "first_layer", json_integer(f.g0[g]));
		json_object_set_new(o, "last_layer", json_integer(f.g1[g] - 1));
		json_array_append_new(groups, o);
	}
	j = json_pack("{s:i, s:s, s:b, s:b, s:o, s:o, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
		      "slots_per_layer", tm_xcache_slots(tm_xonline_cache(r->x)),
		      "policy", tm_xpolicy_name(r->o.cache.policy), "sync_copy", r->o.sync_copy,
		      "predict", r->o.predict, "total", stats_json(&f.t, f.nt), "layer_groups", groups,
		      "cache_bytes_per_token", f.cache_b / f.nt, "slow_bytes_per_token", f.slow / f.nt,
		      "slow_expert_bytes_per_token", f.slow_exp / f.nt, "copy_bytes_per_token", f.copies / f.nt,
		      "predictions_right_pct", f.pred_right, "predicted_tps_rig", f.tps_with,
		      "predicted_tps_rig_without_cache", f.tps_without);
	return j;
}

void run_experts_free(struct run_experts *r)
{
	tm_xonline_free(r->x);
	r->x = NULL;
	free(r->layer0);
	r->layer0 = NULL;
}
