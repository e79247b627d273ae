/* SPDX-License-Identifier: MIT */
/*
 * MoE experts on a slow tier, cached per layer on a fast one.
 *
 * A tm_xcache is the bookkeeping of such a cache: for every MoE layer a few
 * slots, which expert each holds and in what state, and a replacement policy
 * that decides which expert to admit and which to evict. It holds no weight
 * bytes: the online cache (the forward pass) and the trace replay
 * (`tiermem bench --expert-trace`) both drive the same structure, so a policy
 * measured on a trace is the policy that runs.
 *
 * A slot is EMPTY, FILLING (admitted; its bytes are being copied) or READY.
 * Only a READY slot may be read. The caller moves a slot from FILLING to
 * READY once its copy is complete (tm_xcache_ready); the replay does so at
 * once, the online cache when its copier is done.
 *
 * An expert trace (tm_xtrace) is what the router chose: per token and MoE
 * layer, the experts and their weights, and optionally the experts a
 * predictor guessed for that layer before it ran. Format:
 * Documentation/tiermem-experts.rst.
 */
#ifndef TIERMEM_EXPERTS_H
#define TIERMEM_EXPERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum tm_xpolicy {
	TM_XP_LRU,	/* admit every miss, evict the least recently used */
	TM_XP_LFU,	/* admit every miss, evict the lowest aged use count */
	TM_XP_LRFU,	/* evict the lowest aged count; admit only what outscores the victim */
	TM_XP_STATIC,	/* a fixed set (the hottest per layer), never changed */
	TM_XP_OPT,	/* Belady's: evict what is used furthest ahead; needs the future (replay only) */
	TM_XP_MIX,	/* a recency window plus aged popularity, weighted; admit only what outscores the victim */
	TM_XP_COUNT,
};

/* "lru", "lfu", "lrfu", "static", "opt", "mix" -> policy; -1 for anything else. */
int tm_xpolicy_parse(const char *s);
const char *tm_xpolicy_name(enum tm_xpolicy p);

struct tm_xcache_opts {
	enum tm_xpolicy policy;
	int slots;		/* per layer */
	/*
	 * Or each layer's own number of slots (n_layer of them, 0 allowed, not
	 * all 0): a split by heat (tm_xheat_split). NULL: `slots` everywhere.
	 */
	const int *layer_slots;
	/*
	 * LFU and LRFU age counts with this half-life, in tokens: a use h tokens
	 * ago counts 2^(-h / half_life). 0: the policy's default.
	 */
	double half_life;
};

enum tm_xslot_state { TM_XS_EMPTY, TM_XS_FILLING, TM_XS_READY };

/* Counters, per layer and summed over layers by tm_xcache_total. */
struct tm_xstats {
	uint64_t uses;		/* experts the router chose */
	uint64_t hits;		/* ... found READY in a slot */
	uint64_t misses;	/* ... computed from the slow tier */
	uint64_t admits;	/* misses copied into a slot */
	uint64_t evicts;
	uint64_t pf_issued;	/* prefetches started */
	uint64_t pf_used;	/* ... whose expert the router then chose */
	uint64_t pf_wasted;	/* ... evicted or left unused */
	uint64_t pf_late;	/* ... chosen while still FILLING (counted as misses too) */
};

struct tm_xcache;

/*
 * slots per layer in [1, n_expert]. -EINVAL with a message for bad sizes or
 * a half-life that is negative or not finite, -ENOMEM.
 */
int tm_xcache_create(struct tm_xcache **out, int n_layer, int n_expert, const struct tm_xcache_opts *o);
void tm_xcache_free(struct tm_xcache *c);

/* Start the next token: the clock of recency and aging. */
void tm_xcache_tick(struct tm_xcache *c);
/*
 * The router chose expert e of layer l: counts a hit or a miss, and a use for
 * the policy. Returns the READY slot that holds it, or -1 (a miss; FILLING
 * counts as a miss, and as late if it was prefetched).
 */
int tm_xcache_use(struct tm_xcache *c, int l, int e);
/*
 * After a miss of e (or for a prefetch): whether the policy admits it, and
 * into which slot. Returns the slot, now FILLING with e (its previous expert
 * evicted), or -1 when not admitted (the static policy never admits; LRFU
 * refuses an expert that scores below every victim; a slot that is FILLING
 * is never evicted). A prefetch is admitted over the policy's filter, since
 * a predictor expects it now; it is counted as issued.
 */
int tm_xcache_admit(struct tm_xcache *c, int l, int e, bool prefetch);
/* OPT only: expert e of layer l is next used at token `next` (INT64_MAX: never). */
void tm_xcache_hint_next(struct tm_xcache *c, int l, int e, int64_t next);
/* The copy into slot s of layer l is complete. */
void tm_xcache_ready(struct tm_xcache *c, int l, int s);
/* Where expert e of layer l is: its slot (any state) or -1. */
int tm_xcache_slot_of(const struct tm_xcache *c, int l, int e);
int tm_xcache_expert_in(const struct tm_xcache *c, int l, int s);
enum tm_xslot_state tm_xcache_state(const struct tm_xcache *c, int l, int s);
/*
 * Fill layer l with the given experts, hottest first, READY (a warm start
 * from heat, or the static placement). Extra experts beyond the slots are
 * ignored. Does not count as uses or admissions.
 */
void tm_xcache_preload(struct tm_xcache *c, int l, const int *experts, int n);
/* Prefetched experts still unused count as wasted from now on (end of a run). */
void tm_xcache_settle(struct tm_xcache *c);

const struct tm_xstats *tm_xcache_layer_stats(const struct tm_xcache *c, int l);
void tm_xcache_total(const struct tm_xcache *c, int l0, int l1, struct tm_xstats *out);
int tm_xcache_slots(const struct tm_xcache *c, int l);	/* layer l's */
int tm_xcache_slots_total(const struct tm_xcache *c);

/* ------------------------------------------------------------------ */
/* Traces */

#define TM_XTRACE_FORMAT "tiermem-expert-trace"
#define TM_XTRACE_VERSION 1
#define TM_XTRACE_MAX_USED 64
#define TM_XTRACE_MAX_EXPERTS 4096

/* What a trace was recorded from: enough to cost it without the model. */
struct tm_xtrace_model {
	char hash[80];		/* the model's content hash; "synthetic" for synth traces */
	char arch[32];
	int n_layer;		/* all layers of the model */
	int n_expert, n_expert_used;
	uint64_t expert_bytes;	/* one routed expert: its gate, up and down matrices */
	uint64_t dense_bytes;	/* bytes every token reads besides routed experts */
};

struct tm_xtrace {
	struct tm_xtrace_model model;
	char source[128];	/* how it was made, for the reader */
	size_t n_rec, cap;
	int32_t *tok;		/* per record: token index, nondecreasing */
	int16_t *layer;		/* MoE layer, increasing within a token */
	bool *has_pred;
	int16_t *exp;		/* n_rec x n_expert_used: the experts chosen */
	float *w;		/* ... and their weights */
	int16_t *pred;		/* n_rec x n_expert_used: predicted experts, if has_pred */
	int n_tokens;		/* distinct token indices */
};

/*
 * Read a trace, checking everything: a bad line gives -EINVAL and the message
 * "PATH:LINE: what is wrong". -ENOENT etc. for the file, -ENOMEM.
 */
int tm_xtrace_read(struct tm_xtrace *t, const char *path);
/* Header line, then records appended with tm_xtrace_write_rec. */
int tm_xtrace_write_header(FILE *f, const struct tm_xtrace_model *m, const char *source);
int tm_xtrace_write_rec(FILE *f, int tok, int layer, const int *exp, const float *w,
			const int *pred, int k);
/* Append a record in memory (the checks of the reader); for builders of traces. */
int tm_xtrace_add(struct tm_xtrace *t, int tok, int layer, const int *exp, const float *w,
		  const int *pred);
void tm_xtrace_free(struct tm_xtrace *t);

/* Synthetic routing: per-layer Zipf popularity that drifts, with temporal locality. */
struct tm_xsynth_opts {
	struct tm_xtrace_model model;
	int tokens;
	double zipf;		/* popularity exponent: p(rank r) ~ 1 / r^zipf */
	double zipf_spread;	/* layers' exponents run linearly from zipf - spread to zipf + spread */
	double locality;	/* chance that a choice reuses an expert of the last `window` tokens */
	int window;
	double drift;		/* popularity swaps per layer per token */
	double pred_acc;	/* chance each predicted expert is right; < 0: no predictions */
	uint64_t seed;
};

void tm_xsynth_defaults(struct tm_xsynth_opts *o);
int tm_xsynth(struct tm_xtrace *t, const struct tm_xsynth_opts *o);

/* ------------------------------------------------------------------ */
/* Replay */

/* The cost model of a replay (see Documentation/tiermem-experts.rst). */
struct tm_xcost {
	double fast_gbps, slow_gbps;	/* read bandwidths, 1e9 B/s */
	bool fused_admit;		/* a missed expert is copied by the read that computes it */
	/*
	 * Reads from both tiers at once over shared memory channels: the slow
	 * tier's media limit and the channels' bandwidth (fast_gbps, carrying
	 * both tiers' bytes) bound the time, whichever is slower. Default: one
	 * tier after the other (the streams' times add).
	 */
	bool overlap;
};

struct tm_xreplay_opts {
	struct tm_xcache_opts cache;
	bool predict;			/* prefetch the trace's predicted experts */
	struct tm_xcost cost;
};

struct tm_xreplay_result {
	struct tm_xstats st;
	double hit_rate;		/* hits / uses */
	double slow_bytes_per_tok;	/* misses + copies of admitted misses + prefetches */
	double fast_bytes_per_tok;	/* dense bytes + hits + writes of copies */
	double pred_tok_s;
};

/*
 * Replay trace t through a cache of the given policy. For the static policy
 * the cache holds, per layer, the experts the whole trace uses most (an
 * oracle's choice, which flatters static placement); OPT sees the whole
 * trace's future: the bound no online policy can beat.
 */
int tm_xreplay(const struct tm_xtrace *t, const struct tm_xreplay_opts *o, struct tm_xreplay_result *r);
/* Seconds per token from bytes per token on each tier: the interim cost model. */
double tm_xcost_sec_per_tok(const struct tm_xcost *c, double fast_bytes, double slow_bytes);

struct tm_model;
struct tm_ctx;

/* ------------------------------------------------------------------ */
/* Heat: how often each expert of each layer was used (tiermem profile) */

#define TM_XHEAT_FORMAT "tiermem-expert-heat"
#define TM_XHEAT_VERSION 1

struct tm_xheat {
	struct tm_xtrace_model model;	/* hash, arch, n_layer, n_expert, n_expert_used */
	uint64_t tokens;		/* tokens profiled */
	uint64_t *counts;		/* n_layer x n_expert: tokens that used the expert */
};

int tm_xheat_alloc(struct tm_xheat *h, const struct tm_xtrace_model *m);
/* Strict, as the trace reader: -EINVAL with "PATH: what is wrong". */
int tm_xheat_read(struct tm_xheat *h, const char *path);
int tm_xheat_write(const struct tm_xheat *h, const char *path);
/* Per layer and expert: the share of tokens that used it (counts / tokens), n_layer x n_expert. */
int tm_xheat_probs(const struct tm_xheat *h, float **out);
/* Layer l's experts, most used first (n_expert of them). */
void tm_xheat_order(const struct tm_xheat *h, int l, int *order);
void tm_xheat_free(struct tm_xheat *h);
/* Heat counted from trace t's tokens in [t0, t1) (a profile taken from a trace). */
int tm_xheat_from_trace(struct tm_xheat *h, const struct tm_xtrace *t, int t0, int t1);
/*
 * Split `total` slots over the layers by heat: the globally hottest (layer,
 * rank) pairs get them, after a floor of floor_share x the even share per
 * MoE layer. moe: which layers have experts (NULL: all); others get 0.
 * slots: n_layer. -EINVAL for a total that does not fit, -ENOMEM.
 */
int tm_xheat_split(const struct tm_xheat *h, const bool *moe, int total, double floor_share, int *slots);
/*
 * Whether heat h was measured on the model g: its layers and experts, and
 * its content hash when hash is given (NULL: a header-only GGUF, whose
 * identity cannot be computed). -EINVAL with a message saying what differs.
 */
struct tm_gguf;
int tm_xheat_check(const struct tm_xheat *h, const struct tm_gguf *g, const char *hash);
/*
 * Read path and check it is model m's (tm_model_identity(m, name)); where
 * m's hash cannot be computed, only the shape is checked and *shape_only
 * says so. -EINVAL (a bad file, another model's), -ENOMEM, -EIO.
 */
struct tm_model;
int tm_xheat_read_model(struct tm_xheat *h, const char *path, const struct tm_model *m, const char *name,
			bool *shape_only);

/* ------------------------------------------------------------------ */
/* Expert parallel: which rank holds each routed expert (--split experts) */

struct tm_xassign {
	int n_layer, n_expert, ranks;
	int *owner;		/* n_layer x n_expert: the rank of expert e of layer l */
	uint64_t hash;		/* XXH3-64 of owner: ranks and stores compare assignments by it */
	bool heat;		/* made from heat (else the uniform prior: e % ranks) */
};

/*
 * The one rule (lib/experts/assign.c), for run, logits, serve, import, the
 * expert cache and plan --nodes: per layer, the experts go to the ranks so
 * that each rank's expected reads per token (h's use counts) are balanced,
 * at most ceil(n_expert / ranks) experts a rank. h NULL (or equal counts):
 * expert e on rank e % ranks. -EINVAL for a heat of another shape, -ENOMEM.
 */
int tm_xassign_make(struct tm_xassign *a, int n_layer, int n_expert, int ranks, const struct tm_xheat *h);
static inline int tm_xassign_owner(const struct tm_xassign *a, int l, int e)
{
	return a->owner[(size_t)l * (size_t)a->n_expert + (size_t)e];
}
/* Its identity, from the owner table and ranks (what a.hash holds after tm_xassign_make). */
uint64_t tm_xassign_hash(const struct tm_xassign *a);
/* Experts of layer l on rank. */
int tm_xassign_count(const struct tm_xassign *a, int l, int rank);
/* Is it e % ranks in every layer? */
bool tm_xassign_is_mod(const struct tm_xassign *a);
void tm_xassign_free(struct tm_xassign *a);

/*
 * tiermem profile's recorder: counts the experts every decoded token uses
 * into a heat table and, given a FILE, writes the routing trace (choices and
 * their weights). Record with a context of batch 1 so every token is seen.
 */
struct tm_xprofile;

int tm_xprofile_create(struct tm_xprofile **out, const struct tm_model *m, const char *hash, FILE *trace);
void tm_xprofile_attach(struct tm_xprofile *p, struct tm_ctx *c);
const struct tm_xheat *tm_xprofile_heat(const struct tm_xprofile *p);
/* 0, or the first error writing the trace. */
int tm_xprofile_error(const struct tm_xprofile *p);
void tm_xprofile_free(struct tm_xprofile *p);

/* ------------------------------------------------------------------ */
/* The online cache: slots on the fast tier, in the forward pass */

struct tm_xonline_opts {
	struct tm_xcache_opts cache;
	bool predict;		/* after layer l's attention, score layer l+1's router and prefetch */
	bool sync_copy;		/* copy an admitted expert at once on the forward pass's thread */
	double copy_gbps;	/* the background copier's budget, GB/s; 0: as fast as it goes */
};

struct tm_xonline_stats {
	uint64_t copies;	/* experts copied into slots (admissions and prefetches) */
	uint64_t copy_read[16];	/* bytes the copies read, per model mapping (TM_MODEL_MAX_MAPS) */
	uint64_t copy_bytes;	/* ... in all (and written to the cache region) */
	uint64_t pred_right;	/* predicted experts the router then chose */
	uint64_t pred_total;	/* experts predicted */
	uint64_t router_bytes;	/* router weights the predictions read */
	double copy_wait_s;	/* time the forward pass spent copying (sync) or waiting for the copier */
};

struct tm_xonline;

/*
 * An expert cache for model m: o->cache.slots slots per MoE layer in one
 * anonymous 2 MiB-page mapping (the fast tier without the module), added to
 * m->maps so the forward pass's per-mapping counters show the bytes it
 * serves. Free it before the model. -EINVAL for a dense model or bad sizes;
 * -ENOSPC when the cache exceeds the free memory (the message says both).
 */
int tm_xonline_create(struct tm_xonline **out, struct tm_model *m, const struct tm_xonline_opts *o);
/*
 * Route c's MoE layers through the cache (sets c->xhook). Several contexts
 * may share one cache (serve: every slot and the batched decode), as long as
 * their forward passes run on one thread; each forward pass is a tick of the
 * policy's clock (a batched step of n sequences counts once). Free the cache
 * only after the contexts' last forward pass.
 */
void tm_xonline_attach(struct tm_xonline *x, struct tm_ctx *c);
/*
 * Expert parallel (--split experts): this process computes only the
 * experts a gives rank (a: NULL for every expert; it must outlive x), so
 * only those are ever resolved here; the predictor prefetches and the warm
 * start fills only those too. Before tm_xonline_warm.
 */
void tm_xonline_only(struct tm_xonline *x, const struct tm_xassign *a, int rank);
/* Warm start: fill every layer's slots with its hottest experts of h, now. */
int tm_xonline_warm(struct tm_xonline *x, const struct tm_xheat *h);
/* Wait for copies in flight and mark them ready. */
void tm_xonline_drain(struct tm_xonline *x);
const struct tm_xcache *tm_xonline_cache(const struct tm_xonline *x);
int tm_xonline_map(const struct tm_xonline *x);		/* its index in m->maps */
uint64_t tm_xonline_bytes(const struct tm_xonline *x);	/* the region's size */
void tm_xonline_stats(struct tm_xonline *x, struct tm_xonline_stats *out);
void tm_xonline_free(struct tm_xonline *x);

/* ------------------------------------------------------------------ */
/* The cache in VRAM: slots on the GPU (run --gpu --expert-cache) */

/*
 * With the GPU pass (tiermem/gpu.h) and routed experts left in host memory
 * (-ot exps=CPU or exps=pcie), hot experts are kept in slots of one VRAM
 * arena. This is its bookkeeping, with no device in it: per MoE layer and
 * forward call it says, for each (token, expert) pair, which arena slot the
 * GPU's expert kernels read, under the same tm_xcache policies as the DDR
 * cache. A miss is computed where the expert lives:
 *
 *	TM_XVRAM_CPU	by the CPU (tm_moe_experts_cpu; tm_xvram_attach makes
 *			it skip the pairs the GPU takes). The pair reads the
 *			arena's zero slot, so its GPU product is exactly 0.
 *			An admitted miss is copied into its slot by the
 *			copier (the device's side stream), started at the
 *			next step, when the GPU is done with this step's
 *			slots; the slot is READY once the copier says so.
 *	TM_XVRAM_PCIE	by the GPU over PCIe: the step lists gathers (expert,
 *			slot) that a device kernel copies from pinned host
 *			memory before the expert kernels run; an admitted
 *			miss is gathered straight into its slot (one PCIe
 *			read serves the product and the admission), the rest
 *			into staging slots. Every pair then reads VRAM.
 *
 * Arena slots: the cache's slots (layer by layer), then one zero slot, then
 * the staging slots (pcie only). A slot holds gate, up and down at
 * layout.off[i]; every layer's experts fit (mixes give some layers wider
 * types).
 */
enum tm_xvram_miss { TM_XVRAM_CPU, TM_XVRAM_PCIE };

struct tm_xvram_layout {
	size_t slot_bytes, off[3];
	int n_cache;		/* cache slots, all layers */
	int zero;		/* the zero slot's index */
	int staging0, n_staging;
	int n_slots;		/* all of them: the arena is n_slots * slot_bytes */
};

/* The device side's asynchronous copies of experts (from their homes) into slots: CPU admissions, warm starts. */
struct tm_xvram_copier {
	void (*start)(void *arg, int l, int e, int slot);
	bool (*done)(void *arg, int slot);	/* has the copy into slot completed? */
	void *arg;
};

struct tm_xvram_gather {
	int l, e, slot;		/* expert e of layer l, from its home into slot */
};

struct tm_xvram_stats {
	uint64_t pairs, hit_pairs;	/* (token, expert) pairs, and those read from a READY slot */
	uint64_t hit_bytes;		/* weight bytes the hit pairs read from VRAM */
	uint64_t pcie_bytes;		/* weight bytes read over PCIe: gathers and copies into slots */
	uint64_t gathers, copies;	/* experts gathered (pcie), copied by the copier (cpu) */
	uint64_t copy_bytes;
	uint64_t cpu_pairs;		/* pairs the CPU computed */
};

struct tm_xvram;

/*
 * For model m's MoE layers (o: policy and slots, as tm_xcache_create), with
 * forward calls of up to max_pairs (token, expert) pairs (n_batch *
 * n_expert_used). -EINVAL for a dense model or bad sizes, -ENOMEM.
 */
int tm_xvram_create(struct tm_xvram **out, const struct tm_model *m, const struct tm_xcache_opts *o,
		    enum tm_xvram_miss miss, int max_pairs);
void tm_xvram_free(struct tm_xvram *x);
void tm_xvram_set_copier(struct tm_xvram *x, const struct tm_xvram_copier *c);
const struct tm_xvram_layout *tm_xvram_layout(const struct tm_xvram *x);
enum tm_xvram_miss tm_xvram_miss_mode(const struct tm_xvram *x);

/*
 * Layer l is about to compute the experts sel[0..n*K) (K = n_expert_used,
 * token by token): ids[p] gets pair p's arena slot; gather (room for
 * layout.n_staging entries) the copies a pcie step needs before the
 * kernels, *n_gather their count (n * K <= the max_pairs of create). Copies admitted by earlier steps start
 * here (the GPU has finished reading those steps' slots) and finished ones
 * become READY; a call for a layer at or below the last one starts a new
 * token for the policy's clock. Called from one thread at a time.
 */
void tm_xvram_step(struct tm_xvram *x, int l, const int *sel, int n, int *ids, struct tm_xvram_gather *gather,
		   int *n_gather);
/*
 * TM_XVRAM_CPU: c's MoE code (tm_moe_experts_cpu) computes only the pairs
 * of the last step that missed (an xhook with `local`); the rest add 0.
 */
void tm_xvram_attach(struct tm_xvram *x, struct tm_ctx *c);
/*
 * Warm start of layer l (both modes; the copier must be set, as the device
 * side does): its slots admit experts[0..n), hottest first, as many as fit;
 * their copies start at the next step and the slots are READY once done.
 * Counted as admissions and copies. -EINVAL without a copier.
 */
int tm_xvram_warm(struct tm_xvram *x, int l, const int *experts, int n);
const struct tm_xcache *tm_xvram_cache(const struct tm_xvram *x);
void tm_xvram_stats(const struct tm_xvram *x, struct tm_xvram_stats *out);

#endif
