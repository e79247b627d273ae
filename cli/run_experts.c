// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/args.h"
#include "cli/gpu_args.h"
#include "cli/run_experts.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/store.h"
#include "tiermem/mapping.h"
#include "tiermem/runstat.h"

#define GROUPS 4

void run_experts_init(struct run_experts *r, const char *cmd)
{
	memset(r, 0, sizeof(*r));
	r->cmd = cmd;
	r->split_floor = 0.5;
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
			return usage_error(r->cmd, "--expert-policy: '%s' is not lru, lfu, lrfu or mix", arg);
		r->o.cache.policy = (enum tm_xpolicy)p;
		return 0;
	case RX_COPY:
		if (strcmp(arg, "async") && strcmp(arg, "sync"))
			return usage_error(r->cmd, "--expert-copy: '%s' is not async or sync", arg);
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

/*
 * SIZE -> slots per MoE layer, for a model whose expert (gate + up + down)
 * takes eb bytes, in a memory with avail bytes free (0: DDR, asked here).
 */
static int slots_of(const char *cmd, const char *s, const struct tm_hparams *hp, int n_moe, uint64_t eb,
		    uint64_t avail, int *slots)
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
		if (avail && b > avail)
			return usage_error(cmd, "--expert-cache %s: more than the %.2f GiB of free VRAM", s,
					   avail / 1073741824.0);
		if (!avail && pages > 0 && psz > 0 && b > (uint64_t)pages * (uint64_t)psz)
			return usage_error(cmd, "--expert-cache %s: more than the %.2f GiB of free DDR", s,
					   (double)pages * psz / 1073741824.0);
		v = (long)(b / eb / (uint64_t)n_moe);
	}
	if (v < 1)
		return usage_error(cmd, "--expert-cache %s: less than one expert per layer", s);
	if (v > hp->n_expert)
		return usage_error(cmd, "--expert-cache %s: %ld experts per layer, but a layer has %d", s, v,
				   hp->n_expert);
	*slots = (int)v;
	return 0;
}

/* The first layer moe[] marks; NULL: none. */
static const struct tm_layer *first_marked(const struct tm_model *m, const bool *moe)
{
	for (int l = 0; l < m->hp.n_layer; l++)
		if (moe[l])
			return &m->layers[l];
	return NULL;
}

/*
 * The cache's slots per layer (r->layer_slots, allocated): SIZE, in a
 * memory with avail bytes free (0: DDR), as the same number for each layer
 * moe[] marks (at least one), or that total split over them by the
 * --expert-heat file, read into h (Documentation/tiermem-experts.rst).
 */
static int layer_slots_of(struct run_experts *r, struct tm_model *m, const bool *moe, uint64_t avail,
			  struct tm_xheat *h, int *slots)
{
	const struct tm_layer *L = first_marked(m, moe);
	int rc;

	r->n_moe = 0;
	for (int l = 0; l < m->hp.n_layer; l++)
		r->n_moe += moe[l];
	if ((rc = slots_of(r->cmd, r->size, &m->hp, r->n_moe, L->gate_exps.mat_bytes + L->up_exps.mat_bytes +
			   L->down_exps.mat_bytes, avail, slots)))
		return rc;
	/* leading dense layers (deepseek2) get no slots */
	for (int l = 0; l < m->hp.n_layer; l++)
		r->layer_slots[l] = moe[l] ? *slots : 0;
	if (!r->heat)
		return 0;
	if ((rc = read_heat_arg(r->cmd, r->heat, m, r->name, h)))
		return rc;
	if (tm_xheat_split(h, moe, *slots * r->n_moe, r->split_floor, r->layer_slots))
		return usage_error(r->cmd, "--expert-heat %s: %s", r->heat, tm_strerror());
	return 0;
}

/* --expert-heat with the VRAM cache: each layer's hottest experts, copied by the device's copier. */
static int vram_warm(struct run_experts *r)
{
	const struct tm_hparams *hp;
	int *order, err = 0;

	if (!r->xv || !r->heat)
		return 0;
	hp = &r->m->hp;
	order = malloc(sizeof(int) * hp->n_expert);
	if (!order)
		return run_error(r->cmd, "out of memory");
	for (int l = 0; l < hp->n_layer && !err; l++)
		if (r->m->layers[l].moe) {
			tm_xheat_order(&r->vheat, l, order);
			err = tm_xvram_warm(r->xv, l, order, hp->n_expert);
		}
	free(order);
	tm_xheat_free(&r->vheat);
	return err ? run_error(r->cmd, "--expert-heat: %s", tm_strerror()) : 0;
}

int run_experts_setup(struct run_experts *r, struct tm_model *m, struct tm_ctx *c)
{
	const struct tm_hparams *hp = &m->hp;
	struct tm_xheat h = { 0 };
	bool *moe;
	int rc = 0, err, slots = 0;

	if (!r->size)
		return 0;
	if (!hp->moe) {
		fprintf(stderr, "tiermem %s: note: --expert-cache has no effect: %s is a dense model, it has no experts\n",
			r->cmd, hp->arch_name);
		return 0;
	}
	if (c && c->gpu)
		return vram_warm(r);	/* run_experts_setup_gpu made the cache in VRAM, if any */
	r->m = m;
	r->layer0 = calloc(hp->n_layer, sizeof(*r->layer0));
	r->layer_slots = calloc(hp->n_layer, sizeof(*r->layer_slots));
	moe = calloc(hp->n_layer, sizeof(*moe));
	if (!r->layer0 || !r->layer_slots || !moe) {
		free(moe);
		return run_error(r->cmd, "out of memory");
	}
	for (int l = 0; l < hp->n_layer; l++)
		moe[l] = m->layers[l].moe && (!r->part.last || (l >= r->part.first && l < r->part.last));
	if (!first_marked(m, moe)) {
		fprintf(stderr, "tiermem %s: note: --expert-cache has no effect: layers %d-%d have no experts\n",
			r->cmd, r->part.first, r->part.last - 1);
		goto out;
	}
	if ((rc = layer_slots_of(r, m, moe, 0, &h, &slots)))
		goto out;
	r->o.cache.slots = slots;
	r->o.cache.layer_slots = r->layer_slots;
	if ((err = tm_xonline_create(&r->x, m, &r->o))) {
		rc = err == -ENOMEM ? run_error(r->cmd, "%s", tm_strerror()) : usage_error(r->cmd, "%s", tm_strerror());
		goto out;
	}
	if (c)
		tm_xonline_attach(r->x, c);
	tm_xonline_only(r->x, r->part.assign, r->part.rank);
	if (r->heat && (err = tm_xonline_warm(r->x, &h)))
		rc = err == -ENOMEM ? run_error(r->cmd, "%s", tm_strerror()) :
				      usage_error(r->cmd, "--expert-heat %s: %s", r->heat, tm_strerror());
out:
	tm_xheat_free(&h);
	free(moe);
	return rc;
}

int run_experts_setup_gpu(struct run_experts *r, struct tm_model *m, int n_batch, const struct gpu_ot *ot)
{
	const struct tm_hparams *hp = &m->hp;
	struct tm_gpu_info info;
	enum tm_gpu_place p;
	bool *moe;
	int rc, err, slots;

	if (!r->size || !hp->moe)
		return 0;	/* a dense model: run_experts_setup says so */
	if (r->o.predict || r->o.sync_copy || r->o.copy_gbps > 0)
		return usage_error(r->cmd, "--expert-cache with --gpu: --expert-predict, --expert-copy and "
				   "--expert-copy-gbps are the DDR cache's; the VRAM cache takes --expert-policy and --expert-heat");
	moe = calloc(hp->n_layer, sizeof(*moe));
	if (!moe)
		return run_error(r->cmd, "out of memory");
	for (int l = 0; l < hp->n_layer; l++)
		moe[l] = m->layers[l].moe;
	p = tm_gpu_place_of(ot->ot, ot->n, first_marked(m, moe)->gate_exps.name);
	if (p == TM_GPU_VRAM)
		rc = usage_error(r->cmd, "--expert-cache with --gpu: the routed experts are in VRAM already; leave "
				 "them in host memory for the cache to serve (-ot exps=CPU or -ot exps=pcie)");
	else if (tm_gpu_probe(&info))
		rc = usage_error(r->cmd, "--gpu: %s", tm_strerror());
	else if (!(r->layer_slots = calloc(hp->n_layer, sizeof(*r->layer_slots))))
		rc = run_error(r->cmd, "out of memory");
	else	/* split by heat as the DDR cache's; the slots are warmed after the GPU attaches */
		rc = layer_slots_of(r, m, moe, info.vram_free ? info.vram_free : 1, &r->vheat, &slots);
	free(moe);
	if (rc)
		return rc;
	r->m = m;
	r->o.cache.slots = slots;
	r->o.cache.layer_slots = r->layer_slots;
	if ((err = tm_xvram_create(&r->xv, m, &r->o.cache, p == TM_GPU_CPU ? TM_XVRAM_CPU : TM_XVRAM_PCIE,
				   n_batch * hp->n_expert_used)))
		return err == -ENOMEM ? run_error(r->cmd, "%s", tm_strerror()) : usage_error(r->cmd, "%s", tm_strerror());
	return 0;
}

/* The VRAM cache's decode figures: the counters since the end of the prompt. */
static void vram_figures(struct run_experts *r, struct tm_xvram_stats *s, struct tm_xstats *t)
{
	tm_xvram_stats(r->xv, s);
	tm_xcache_total(tm_xvram_cache(r->xv), 0, r->m->hp.n_layer, t);
	s->pairs -= r->xst0.pairs;
	s->hit_pairs -= r->xst0.hit_pairs;
	s->hit_bytes -= r->xst0.hit_bytes;
	s->pcie_bytes -= r->xst0.pcie_bytes;
	s->gathers -= r->xst0.gathers;
	s->copies -= r->xst0.copies;
	s->copy_bytes -= r->xst0.copy_bytes;
	s->cpu_pairs -= r->xst0.cpu_pairs;
	t->admits -= r->xtot0.admits;
	t->evicts -= r->xtot0.evicts;
}

static void vram_summary(struct run_experts *r, int n_decoded)
{
	const struct tm_xvram_layout *lay = tm_xvram_layout(r->xv);
	double nt = n_decoded > 0 ? n_decoded : 1;
	struct tm_xvram_stats s;
	struct tm_xstats t;

	vram_figures(r, &s, &t);
	fprintf(stderr, "experts:     VRAM cache of %d slots (%s%d per MoE layer of %d experts), %.2f GiB, policy %s%s, misses %s\n",
		lay->n_cache, r->heat ? "split by heat, on average " : "", lay->n_cache / (r->n_moe ? r->n_moe : 1),
		r->m->hp.n_expert, (double)lay->n_slots * lay->slot_bytes / 1073741824.0,
		tm_xpolicy_name(r->o.cache.policy), r->heat ? ", warm from heat" : "",
		tm_xvram_miss_mode(r->xv) == TM_XVRAM_CPU ? "computed by the CPU, admissions copied on a side stream" :
		"read over PCIe into their slots");
	fprintf(stderr, "             decode: hits %.1f %% of %.1f expert uses per token; per token %.2f MB from VRAM slots, %.2f MB over PCIe (%.1f gathered, %.1f copied experts), %.1f admitted, %.1f evicted\n",
		s.pairs ? 100.0 * s.hit_pairs / s.pairs : 0, s.pairs / nt, s.hit_bytes / nt / 1e6, s.pcie_bytes / nt / 1e6,
		s.gathers / nt, s.copies / nt, t.admits / nt, t.evicts / nt);
}

void run_experts_mark(struct run_experts *r, const struct tm_ctx *c)
{
	if (r->xv && !r->marked) {
		r->marked = true;
		tm_xvram_stats(r->xv, &r->xst0);
		tm_xcache_total(tm_xvram_cache(r->xv), 0, r->m->hp.n_layer, &r->xtot0);
		return;
	}
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

static bool figures(struct run_experts *r, const struct tm_ctx *c, int n_decoded, bool drain, struct figures *f)
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
	/* copies in flight change no counter: draining only waits for them (not while decoding) */
	if (drain)
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
	/* the planner's cost model (tm_xcost_sec_per_tok) on the seed's rig */
	f->rig = (struct tm_xcost){ .fast_gbps = 100, .slow_gbps = 39 };
	double dense = (f->slow - f->slow_exp) / f->nt, cp = f->copies / f->nt;

	f->tps_with = 1 / tm_xcost_sec_per_tok(&f->rig, dense + f->cache_b / f->nt + cp, f->slow_exp / f->nt + cp);
	f->tps_without = 1 / tm_xcost_sec_per_tok(&f->rig, dense, f->all_b / f->nt);
	return true;
}

/* The fewest and most slots of a MoE layer. */
static void slot_range(const struct run_experts *r, int *lo, int *hi)
{
	*lo = r->m->hp.n_expert;
	*hi = 0;
	for (int l = 0; l < r->m->hp.n_layer; l++)
		if (r->m->layers[l].moe) {
			int n = tm_xcache_slots(tm_xonline_cache(r->x), l);

			*lo = n < *lo ? n : *lo;
			*hi = n > *hi ? n : *hi;
		}
}

void run_experts_summary(struct run_experts *r, const struct tm_ctx *c, int n_decoded, double t_decode)
{
	const struct tm_model *m = r->m;
	struct figures f;
	char groups[512];
	size_t gl = 0;
	int cm, lo, hi;

	if (r->xv && r->marked) {
		vram_summary(r, n_decoded);
		return;
	}
	if (!figures(r, c, n_decoded, true, &f))
		return;
	cm = tm_xonline_map(r->x);
	slot_range(r, &lo, &hi);
	for (int g = 0; g < f.ng && gl < sizeof(groups); g++)
		gl += snprintf(groups + gl, sizeof(groups) - gl, "%s%d-%d %.1f %%", gl ? ", " : "", f.g0[g],
			       f.g1[g] - 1, pct(f.g[g].hits, f.g[g].uses));
	fprintf(stderr, "experts:     cache of %d slots, %d to %d of %d experts per MoE layer (%s, %.0f %% on average), %.2f GiB on %s (%s), policy %s, copies %s%s\n",
		tm_xcache_slots_total(tm_xonline_cache(r->x)), lo, hi, m->hp.n_expert,
		r->heat ? "split by heat" : "even", 100.0 * tm_xcache_slots_total(tm_xonline_cache(r->x)) /
		((double)r->n_moe * m->hp.n_expert),
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

static json_t *layer_slots_json(const struct run_experts *r)
{
	json_t *a = json_array();

	for (int l = 0; a && l < r->m->hp.n_layer; l++)
		json_array_append_new(a, json_integer(tm_xcache_slots(tm_xonline_cache(r->x), l)));
	return a;
}

static void xgroup(struct tm_runstat_xgroup *g, const struct tm_xstats *s, int l0, int l1)
{
	*g = (struct tm_runstat_xgroup){
		.first_layer = l0, .last_layer = l1 - 1, .uses = s->uses, .hits = s->hits, .misses = s->misses,
		.admits = s->admits, .pf_issued = s->pf_issued, .pf_used = s->pf_used,
		.pf_wasted = s->pf_wasted, .pf_late = s->pf_late,
	};
}

bool run_experts_live(struct run_experts *r, const struct tm_ctx *c, int n_decoded, struct tm_runstat_experts *x)
{
	struct figures f;

	memset(x, 0, sizeof(*x));
	if (!figures(r, c, n_decoded, false, &f))
		return false;
	x->on = 1;
	x->n_groups = (uint32_t)f.ng;
	x->slots = tm_xcache_slots_total(tm_xonline_cache(r->x));
	x->n_expert = r->m->hp.n_expert;
	x->n_moe_layers = r->n_moe;
	snprintf(x->policy, sizeof(x->policy), "%s", tm_xpolicy_name(r->o.cache.policy));
	xgroup(&x->total, &f.t, 0, r->m->hp.n_layer);
	for (int g = 0; g < f.ng && g < TM_RUNSTAT_XGROUPS; g++)
		xgroup(&x->groups[g], &f.g[g], f.g0[g], f.g1[g]);
	x->cache_bytes_per_token = f.cache_b / f.nt;
	x->hit_bytes_per_token = f.hit_b / f.nt;
	x->slow_bytes_per_token = f.slow / f.nt;
	x->slow_expert_bytes_per_token = f.slow_exp / f.nt;
	x->copy_bytes_per_token = f.copies / f.nt;
	x->rig_fast_gbps = f.rig.fast_gbps;
	x->rig_slow_gbps = f.rig.slow_gbps;
	x->predicted_tps = f.tps_with;
	x->predicted_tps_without = f.tps_without;
	return true;
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
	json_t *groups, *j;

	if (r->xv && r->marked) {
		struct tm_xvram_stats s;
		struct tm_xstats t;
		double nt = n_decoded > 0 ? n_decoded : 1;

		vram_figures(r, &s, &t);
		return json_pack("{s:s, s:i, s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f}", "where", "vram",
				 "slots", tm_xvram_layout(r->xv)->n_cache, "policy", tm_xpolicy_name(r->o.cache.policy),
				 "misses", tm_xvram_miss_mode(r->xv) == TM_XVRAM_CPU ? "cpu" : "pcie",
				 "pairs", (json_int_t)s.pairs, "hit_pairs", (json_int_t)s.hit_pairs,
				 "hit_bytes_per_token", s.hit_bytes / nt, "pcie_bytes_per_token", s.pcie_bytes / nt,
				 "gathers_per_token", s.gathers / nt, "copies_per_token", s.copies / nt,
				 "admits_per_token", t.admits / nt);
	}
	groups = json_array();
	if (!groups || !figures(r, c, n_decoded, true, &f)) {
		json_decref(groups);
		return NULL;
	}
	for (int g = 0; g < f.ng; g++) {
		json_t *o = stats_json(&f.g[g], f.nt);

		json_object_set_new(o, "first_layer", json_integer(f.g0[g]));
		json_object_set_new(o, "last_layer", json_integer(f.g1[g] - 1));
		json_array_append_new(groups, o);
	}
	j = json_pack("{s:i, s:o, s:s, s:b, s:b, s:o, s:o, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
		      "slots", tm_xcache_slots_total(tm_xonline_cache(r->x)), "layer_slots", layer_slots_json(r),
		      "policy", tm_xpolicy_name(r->o.cache.policy), "sync_copy", r->o.sync_copy,
		      "predict", r->o.predict, "total", stats_json(&f.t, f.nt), "layer_groups", groups,
		      "cache_bytes_per_token", f.cache_b / f.nt, "hit_bytes_per_token", f.hit_b / f.nt,
		      "slow_bytes_per_token", f.slow / f.nt,
		      "slow_expert_bytes_per_token", f.slow_exp / f.nt, "copy_bytes_per_token", f.copies / f.nt,
		      "predictions_right_pct", f.pred_right, "predicted_tps_rig", f.tps_with,
		      "predicted_tps_rig_without_cache", f.tps_without);
	return j;
}

void run_experts_free(struct run_experts *r)
{
	tm_xonline_free(r->x);
	r->x = NULL;
	tm_xvram_free(r->xv);
	r->xv = NULL;
	tm_xheat_free(&r->vheat);
	free(r->layer0);
	r->layer0 = NULL;
	free(r->layer_slots);
	r->layer_slots = NULL;
}
