// SPDX-License-Identifier: MIT
/*
 * The VRAM expert cache's bookkeeping (lib/experts/vram.c) without a GPU:
 * host memory plays the arena, and the test plays the device. Its copier
 * scribbles over a slot when a copy starts and writes the expert only when
 * it reports the copy done, some polls later (a DMA in flight); pcie steps'
 * gathers are applied before the "kernels" read. After every step each
 * (token, expert) pair must read exactly its expert's bytes from the slot it
 * was given, or (cpu) be the CPU's, reading the zero slot. Decode and
 * prefill steps, every online policy; the pcie hits must equal a plain
 * tm_xcache driven the same way (the same policy code, not a copy of it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "tiermem/experts.h"
#include "tiermem/model.h"

enum { LAYERS = 3, N_EXP = 16, USED = 4, SLOTS = 5, BATCH = 6 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* An expert's byte at offset k of matrix i: never 0 and never the scribble, unique enough. */
static uint8_t pattern(int l, int i, int e, size_t k)
{
	return (uint8_t)(1 + (l * 31 + i * 7 + e * 13 + k * 3) % 200);
}

struct fake {
	struct tm_model m;
	struct tm_layer L[LAYERS];
	char *home[LAYERS][3];
};

static void fake_make(struct fake *f, bool moe)
{
	memset(f, 0, sizeof(*f));
	f->m.hp.arch_name = "llama";
	f->m.hp.moe = moe;
	f->m.hp.n_layer = LAYERS;
	f->m.hp.n_expert = N_EXP;
	f->m.hp.n_expert_used = USED;
	f->m.layers = f->L;
	for (int l = 0; l < LAYERS; l++)
		for (int i = 0; i < 3; i++) {
			struct tm_weight *w = i == 0 ? &f->L[l].gate_exps : i == 1 ? &f->L[l].up_exps : &f->L[l].down_exps;
			/* a wider layer (a mix's q6_K down): the slot must fit the widest */
			size_t mb = 96 + 32 * i + (l == 1 ? 160 : 0);

			w->mat_bytes = mb;
			w->n_mat = N_EXP;
			f->home[l][i] = malloc(mb * N_EXP);
			for (int e = 0; e < N_EXP; e++)
				for (size_t k = 0; k < mb; k++)
					f->home[l][i][e * mb + k] = (char)pattern(l, i, e, k);
			w->data = f->home[l][i];
		}
}

static void fake_free(struct fake *f)
{
	for (int l = 0; l < LAYERS; l++)
		for (int i = 0; i < 3; i++)
			free(f->home[l][i]);
}

/* The device: the arena, and copies in flight (done after `left` more polls). */
struct dev {
	const struct fake *f;
	const struct tm_xvram_layout *lay;
	char *arena;
	int left[1024], l[1024], e[1024];
	bool flying[1024];
	int bad_start;		/* a copy started into a slot that already has one in flight */
};

static void put(struct dev *d, int l, int e, int slot)
{
	for (int i = 0; i < 3; i++) {
		const struct tm_weight *w = i == 0 ? &d->f->L[l].gate_exps : i == 1 ? &d->f->L[l].up_exps :
						     &d->f->L[l].down_exps;

		memcpy(d->arena + (size_t)slot * d->lay->slot_bytes + d->lay->off[i],
		       (const char *)w->data + (size_t)e * w->mat_bytes, w->mat_bytes);
	}
}

static void start(void *arg, int l, int e, int slot)
{
	struct dev *d = arg;

	d->bad_start += d->flying[slot];
	memset(d->arena + (size_t)slot * d->lay->slot_bytes, 0xEE, d->lay->slot_bytes);
	d->flying[slot] = true;
	d->left[slot] = (int)(next() % 4);
	d->l[slot] = l;
	d->e[slot] = e;
}

static bool done(void *arg, int slot)
{
	struct dev *d = arg;

	if (!d->flying[slot])
		return true;
	if (d->left[slot]-- > 0)
		return false;
	put(d, d->l[slot], d->e[slot], slot);
	d->flying[slot] = false;
	return true;
}

/* Does slot hold expert e of layer l (zero: all zero bytes)? */
static bool holds(const struct dev *d, int slot, int l, int e, bool zero)
{
	const char *p = d->arena + (size_t)slot * d->lay->slot_bytes;

	for (int i = 0; i < 3; i++) {
		const struct tm_weight *w = i == 0 ? &d->f->L[l].gate_exps : i == 1 ? &d->f->L[l].up_exps :
						     &d->f->L[l].down_exps;

		for (size_t k = 0; k < w->mat_bytes; k++)
			if ((uint8_t)p[d->lay->off[i] + k] != (zero ? 0 : pattern(l, i, e, k)))
				return false;
	}
	return true;
}

/* K distinct experts of one token, skewed (the low ids are hot), so the cache hits. */
static void route(int *sel)
{
	for (int j = 0; j < USED; j++) {
		int e;
		bool dup;

		do {
			uint64_t r = next() % 100;

			e = r < 60 ? (int)(r % 6) : (int)(r % N_EXP);
			dup = false;
			for (int i = 0; i < j; i++)
				dup |= sel[i] == e;
		} while (dup);
		sel[j] = e;
	}
}

struct run {
	int bad_read, bad_zero, bad_cpu, steps, warm_err;
	uint64_t ref_hits, hits, early_hits;	/* early: in the first 4 tokens */
	double step_s;		/* time in tm_xvram_step (the host node's share of a GPU step) */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void drive(enum tm_xvram_miss miss, enum tm_xpolicy pol, bool warm, struct run *r)
{
	struct fake f;
	struct tm_xvram *x;
	struct tm_xcache *ref;
	struct tm_xcache_opts o = { .policy = pol, .slots = SLOTS };
	struct tm_ctx ctx;
	struct dev d = { 0 };
	struct tm_xvram_gather g[N_EXP];
	int sel[BATCH * USED], ids[BATCH * USED], ng;

	memset(r, 0, sizeof(*r));
	memset(&ctx, 0, sizeof(ctx));
	fake_make(&f, true);
	if (tm_xvram_create(&x, &f.m, &o, miss, BATCH * USED) || tm_xcache_create(&ref, LAYERS, N_EXP, &o)) {
		r->bad_read = -1;
		fake_free(&f);
		return;
	}
	d.f = &f;
	d.lay = tm_xvram_layout(x);
	d.arena = malloc((size_t)d.lay->n_slots * d.lay->slot_bytes);
	memset(d.arena, 0xEE, (size_t)d.lay->n_slots * d.lay->slot_bytes);
	memset(d.arena + (size_t)d.lay->zero * d.lay->slot_bytes, 0, d.lay->slot_bytes);
	/* the device side always sets its copier (cpu admissions, warm starts) */
	tm_xvram_set_copier(x, &(struct tm_xvram_copier){ .start = start, .done = done, .arg = &d });
	tm_xvram_attach(x, &ctx);
	for (int l = 0; warm && l < LAYERS; l++) {
		int hot[N_EXP];

		for (int e = 0; e < N_EXP; e++)
			hot[e] = e;	/* route() makes the low ids hot */
		r->warm_err |= tm_xvram_warm(x, l, hot, N_EXP);
	}
	for (int tok = 0; tok < 300; tok++) {
		int n = tok % 7 == 0 ? BATCH : 1;	/* now and then a prefill batch */

		tm_xcache_tick(ref);
		for (int l = 0; l < LAYERS; l++) {
			for (int t = 0; t < n; t++)
				route(sel + t * USED);
			double t0 = now_s();

			tm_xvram_step(x, l, sel, n, ids, g, &ng);
			r->step_s += now_s() - t0;
			r->steps++;
			/* the device: gathers first, then every pair reads its slot */
			for (int i = 0; i < ng; i++)
				put(&d, g[i].l, g[i].e, g[i].slot);
			for (int p = 0; p < n * USED; p++) {
				bool cpu = ctx.xhook->local(ctx.xhook->arg, l, sel[p]);

				if (cpu) {
					r->bad_cpu += miss != TM_XVRAM_CPU || ids[p] != d.lay->zero;
					r->bad_zero += !holds(&d, ids[p], l, sel[p], true);
				} else {
					r->bad_read += ids[p] < 0 || ids[p] >= d.lay->n_slots || ids[p] == d.lay->zero ||
						       !holds(&d, ids[p], l, sel[p], false);
				}
			}
			/* the reference: the same policy, pcie's order (use all, admit misses, ready at the end) */
			if (tok == 4) {
				struct tm_xstats a;

				tm_xcache_total(tm_xvram_cache(x), 0, LAYERS, &a);
				r->early_hits = a.hits;
			}
			if (miss == TM_XVRAM_PCIE) {
				int seen[N_EXP] = { 0 }, adm[N_EXP], na = 0;

				for (int p = 0; p < n * USED; p++)
					if (!seen[sel[p]]++ && tm_xcache_use(ref, l, sel[p]) < 0)
						adm[na++] = sel[p];
				for (int i = 0; i < na; i++) {
					int s = tm_xcache_admit(ref, l, adm[i], false);

					adm[i] = s;
				}
				for (int i = 0; i < na; i++)
					if (adm[i] >= 0)
						tm_xcache_ready(ref, l, adm[i]);
			}
		}
	}
	{
		struct tm_xstats a, b;

		tm_xcache_total(tm_xvram_cache(x), 0, LAYERS, &a);
		tm_xcache_total(ref, 0, LAYERS, &b);
		r->hits = a.hits;
		r->ref_hits = miss == TM_XVRAM_PCIE && !warm ? b.hits : a.hits;
	}
	r->bad_read += d.bad_start;
	free(d.arena);
	tm_xcache_free(ref);
	tm_xvram_free(x);
	fake_free(&f);
}

int main(void)
{
	static const enum tm_xpolicy pols[] = { TM_XP_LRU, TM_XP_LFU, TM_XP_LRFU, TM_XP_MIX };
	struct tm_xcache_opts o = { .policy = TM_XP_LRU, .slots = SLOTS };
	struct tm_xvram *x;
	struct fake f;

	for (int mode = 0; mode < 2; mode++) {
		enum tm_xvram_miss miss = mode ? TM_XVRAM_PCIE : TM_XVRAM_CPU;
		int bad = 0, bad_zero = 0, bad_cpu = 0, steps = 0, hitless = 0, refdiff = 0;
		uint64_t hits = 0;
		double step_s = 0;

		for (size_t i = 0; i < sizeof(pols) / sizeof(pols[0]); i++) {
			struct run r;

			drive(miss, pols[i], false, &r);
			bad += r.bad_read;
			bad_zero += r.bad_zero;
			bad_cpu += r.bad_cpu;
			steps += r.steps;
			hitless += r.hits == 0;
			refdiff += r.hits != r.ref_hits;
			hits += r.hits;
			step_s += r.step_s;
		}
		/* sanitized build, shared host: an upper bound on what a host node adds per MoE layer */
		printf("# %s: %.2f us per tm_xvram_step (ASan build)\n", mode ? "pcie" : "cpu", step_s / steps * 1e6);
		tap_ok(!bad && !bad_zero && !bad_cpu && !hitless,
		       "%s: %d steps over 4 policies, decode and prefill: every pair reads its own expert's bytes "
		       "(%d wrong), the CPU's pairs read the zero slot (%d, %d wrong), %llu hits",
		       mode ? "pcie" : "cpu (copies in flight over several polls)", steps, bad, bad_zero, bad_cpu,
		       (unsigned long long)hits);
		if (miss == TM_XVRAM_PCIE)
			tap_ok(!refdiff, "pcie: hits equal a plain tm_xcache of the same policy driven the same way "
			       "(%d policies differ)", refdiff);
	}

	/* a warm start: the hottest experts copied in from the first step, so the first tokens hit */
	for (int mode = 0; mode < 2; mode++) {
		struct run cold, hot;
		int bad = 0;

		drive(mode ? TM_XVRAM_PCIE : TM_XVRAM_CPU, TM_XP_LRFU, false, &cold);
		drive(mode ? TM_XVRAM_PCIE : TM_XVRAM_CPU, TM_XP_LRFU, true, &hot);
		bad = hot.bad_read + hot.bad_zero + hot.bad_cpu;
		tap_ok(!hot.warm_err && !bad && hot.early_hits > cold.early_hits,
		       "%s, lrfu, warm start: every pair reads its own expert (%d wrong); hits in the first 4 tokens "
		       "%llu warm, %llu cold", mode ? "pcie" : "cpu", bad, (unsigned long long)hot.early_hits,
		       (unsigned long long)cold.early_hits);
	}
	fake_make(&f, true);
	if (!tap_ok(!tm_xvram_create(&x, &f.m, &o, TM_XVRAM_PCIE, 3 * USED), "create"))
		return 1;
	tap_ok(tm_xvram_warm(x, 0, (int[]){ 0, 1 }, 2) == -EINVAL, "a warm start without the device's copier is refused");
	{
		const struct tm_xvram_layout *lay = tm_xvram_layout(x);
		size_t widest = 0;

		for (int i = 0; i < 3; i++)
			widest += (f.L[1].gate_exps.mat_bytes + 32 * (size_t)i + 255) / 256 * 256;
		tap_ok(lay->n_cache == LAYERS * SLOTS && lay->zero == lay->n_cache && lay->staging0 == lay->zero + 1 &&
		       lay->n_staging == 3 * USED && lay->n_slots == lay->staging0 + lay->n_staging &&
		       lay->slot_bytes == widest && lay->off[1] == lay->off[0] + 256 * ((f.L[1].gate_exps.mat_bytes + 255) / 256),
		       "layout: %d cache slots, a zero slot, %d staging (pcie), slots of %zu bytes fit the widest layer",
		       lay->n_cache, lay->n_staging, lay->slot_bytes);
	}
	tm_xvram_free(x);
	fake_free(&f);
	fake_make(&f, false);
	tap_ok(tm_xvram_create(&x, &f.m, &o, TM_XVRAM_CPU, 4) == -EINVAL && !x, "a dense model is refused");
	fake_free(&f);
	fake_make(&f, true);
	tap_ok(tm_xvram_create(&x, &f.m, &o, TM_XVRAM_CPU, 0) == -EINVAL &&
	       tm_xvram_create(&x, &f.m, &(struct tm_xcache_opts){ .policy = TM_XP_LRU, .slots = N_EXP + 1 },
			       TM_XVRAM_CPU, 4) == -EINVAL, "no pairs, more slots than experts: refused");
	fake_free(&f);
	printf("1..%d\n", tap_count);
	return tap_failed != 0;
}
