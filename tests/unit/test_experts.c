// SPDX-License-Identifier: MIT
/*
 * The expert cache and its traces: each policy's hits on short hand-made
 * sequences worked out by hand, slot states, prefetch accounting, the
 * strict trace reader, synthetic traces and the replay's bytes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"

/* One layer, top-1: run a sequence (one expert per token), return the hits. */
static int run_seq(enum tm_xpolicy p, int slots, int n_expert, const int *seq, int n, const int64_t *next)
{
	struct tm_xcache_opts o = { .policy = p, .slots = slots };
	struct tm_xcache *c;
	struct tm_xstats st;

	if (tm_xcache_create(&c, 1, n_expert, &o))
		return -1;
	for (int i = 0; i < n; i++) {
		int s;

		if (i)
			tm_xcache_tick(c);
		if (next)
			tm_xcache_hint_next(c, 0, seq[i], next[i]);
		if (tm_xcache_use(c, 0, seq[i]) < 0 && (s = tm_xcache_admit(c, 0, seq[i], false)) >= 0)
			tm_xcache_ready(c, 0, s);
	}
	tm_xcache_total(c, 0, 1, &st);
	tm_xcache_free(c);
	return st.uses == (uint64_t)n && st.hits + st.misses == st.uses ? (int)st.hits : -2;
}

static void test_policies(void)
{
	static const int a[] = { 0, 1, 0, 2, 1 };
	static const int b[] = { 0, 1, 0, 1, 0, 1, 2, 0, 1 };
	static const int d[] = { 0, 1, 2, 0, 1, 3, 0, 1 };
	static const int64_t dn[] = { 3, 4, INT64_MAX, 6, 7, INT64_MAX, INT64_MAX, INT64_MAX };

	/* 0 1 0 2 1, two slots: only the second 0 hits; 2 evicts 1, then 1 evicts 0 */
	tap_ok(run_seq(TM_XP_LRU, 2, 4, a, 5, NULL) == 1, "LRU: 1 hit in 0 1 0 2 1 with 2 slots");
	/* a one-off (2) after a hot pair: LRU lets it push 0 out, LRFU refuses it */
	tap_ok(run_seq(TM_XP_LRU, 2, 4, b, 9, NULL) == 4, "LRU: 4 hits in 0 1 0 1 0 1 2 0 1");
	tap_ok(run_seq(TM_XP_LRFU, 2, 4, b, 9, NULL) == 6, "LRFU: 6 hits, the one-off 2 is not admitted");
	tap_ok(run_seq(TM_XP_LFU, 2, 4, b, 9, NULL) == 5,
	       "LFU admits every miss: 2 evicts 0 (counted as often as 1, used longer ago), then 0 evicts 2 (5 hits)");
	/* Belady: 2 and 3 are never used again, so they bypass the cache */
	tap_ok(run_seq(TM_XP_OPT, 2, 4, d, 8, dn) == 4, "OPT: 4 hits in 0 1 2 0 1 3 0 1 (2 and 3 bypass)");
	tap_ok(run_seq(TM_XP_LRU, 2, 4, d, 8, NULL) == 0, "LRU: no hit in the same sequence");
	tap_ok(run_seq(TM_XP_STATIC, 2, 4, d, 8, NULL) == 0, "static with nothing preloaded never admits");
	/* mix: the one-off 2 is refused; 3 that turns hot wins a slot on its third use (worked out in the comment below) */
	tap_ok(run_seq(TM_XP_MIX, 2, 4, b, 9, NULL) == 6, "mix: 6 hits, the one-off 2 is not admitted");
	/*
	 * 0 1 0 1 0 1 3 3 3 3: at the 3rd 3 the window (8 tokens) holds 0 twice,
	 * 1 and 3 three times; 3's aged count is the highest: 0.35 x 3/8 + 0.65 x
	 * 0.344 = 0.355 beats 0's 0.35 x 2/8 + 0.65 x 0.326 = 0.300, so 3 evicts 0
	 */
	{
		static const int h[] = { 0, 1, 0, 1, 0, 1, 3, 3, 3, 3 };

		tap_ok(run_seq(TM_XP_MIX, 2, 4, h, 10, NULL) == 5,
		       "mix: an expert turning hot is refused twice, admitted on its 3rd use (5 hits)");
	}
	tap_ok(tm_xpolicy_parse("lrfu") == TM_XP_LRFU && tm_xpolicy_parse("LRU") < 0 &&
	       !strcmp(tm_xpolicy_name(TM_XP_OPT), "opt"), "policy names parse and print");
}

static void test_states(void)
{
	struct tm_xcache_opts o = { .policy = TM_XP_LRU, .slots = 2 };
	const struct tm_xstats *st;
	struct tm_xcache *c;
	int s0, s1, s2;
	int pre[] = { 5, 3, 9 };

	tap_ok(tm_xcache_create(&c, 2, 4, &(struct tm_xcache_opts){ .slots = 5 }) == -EINVAL &&
	       tm_xcache_create(&c, 2, 4, &(struct tm_xcache_opts){ .slots = 0 }) == -EINVAL &&
	       tm_xcache_create(&c, 2, 4, &(struct tm_xcache_opts){ .slots = 1, .half_life = -1 }) == -EINVAL,
	       "more slots than experts, no slots, a negative half-life: -EINVAL");
	if (tm_xcache_create(&c, 2, 8, &o)) {
		tap_ok(0, "create: %s", tm_strerror());
		return;
	}
	st = tm_xcache_layer_stats(c, 1);
	tm_xcache_use(c, 1, 4);
	s0 = tm_xcache_admit(c, 1, 4, false);
	tap_ok(s0 >= 0 && tm_xcache_state(c, 1, s0) == TM_XS_FILLING && tm_xcache_use(c, 1, 4) < 0,
	       "an admitted expert is FILLING and a use of it is a miss");
	tm_xcache_tick(c);
	tm_xcache_use(c, 1, 6);
	s1 = tm_xcache_admit(c, 1, 6, false);
	tm_xcache_ready(c, 1, s1);
	tm_xcache_tick(c);
	tm_xcache_use(c, 1, 7);
	tap_ok(s1 >= 0 && s1 != s0 && tm_xcache_admit(c, 1, 7, false) == s1 &&
	       tm_xcache_expert_in(c, 1, s1) == 7 && tm_xcache_slot_of(c, 1, 6) == -1,
	       "a FILLING slot is never evicted: the other one is, though more recent");
	tm_xcache_ready(c, 1, s0);
	tm_xcache_tick(c);
	tap_ok(tm_xcache_use(c, 1, 4) == s0 && st->hits == 1 && st->misses == 4 && st->admits == 3 &&
	       st->evicts == 1, "READY: a hit; counters 1 hit, 4 misses, 3 admits, 1 evict");
	tap_ok(tm_xcache_admit(c, 1, 4, true) == -1, "an expert already in a slot is not fetched again");
	tm_xcache_ready(c, 1, s1);
	tm_xcache_tick(c);
	s2 = tm_xcache_admit(c, 1, 2, true);
	tap_ok(s2 == s1 && st->pf_issued == 1, "a prefetch evicts the least recently used (7)");
	tm_xcache_ready(c, 1, s2);
	tm_xcache_tick(c);
	tap_ok(tm_xcache_use(c, 1, 2) == s2 && st->pf_used == 1, "a prefetched expert then chosen: used");
	tm_xcache_tick(c);
	s1 = tm_xcache_admit(c, 1, 1, true);
	tm_xcache_tick(c);
	tap_ok(tm_xcache_use(c, 1, 1) < 0 && st->pf_late == 1, "chosen while still FILLING: late, and a miss");
	tm_xcache_ready(c, 1, s1);
	tm_xcache_admit(c, 1, 5, true);
	tm_xcache_settle(c);
	tap_ok(st->pf_issued == 3 && st->pf_used == 1 && st->pf_late == 1 && st->pf_wasted == 1,
	       "issued 3 = used 1 + late 1 + wasted 1 (unused at the end)");
	tm_xcache_free(c);

	o.policy = TM_XP_STATIC;
	o.slots = 2;
	tm_xcache_create(&c, 1, 16, &o);
	tm_xcache_preload(c, 0, pre, 3);
	tap_ok(tm_xcache_use(c, 0, 5) >= 0 && tm_xcache_use(c, 0, 3) >= 0 && tm_xcache_use(c, 0, 9) < 0 &&
	       tm_xcache_admit(c, 0, 9, false) < 0, "preload fills the slots hottest first; static admits nothing");
	tm_xcache_free(c);
}

static void test_layer_slots(void)
{
	static const int two[] = { 0, 3 }, none[] = { 0, 0 }, bad[] = { -1, 2 };
	struct tm_xcache_opts o = { .policy = TM_XP_LRU, .layer_slots = two };
	struct tm_xheat h = { .model = { .n_layer = 2, .n_expert = 4 } };
	uint64_t counts[] = { 100, 90, 80, 70, 10, 300, 1, 5 };
	bool moe[] = { false, true };
	struct tm_xcache *c;
	int slots[2];

	tap_ok(tm_xcache_create(&c, 2, 4, &(struct tm_xcache_opts){ .layer_slots = none }) == -EINVAL &&
	       tm_xcache_create(&c, 2, 4, &(struct tm_xcache_opts){ .layer_slots = bad }) == -EINVAL,
	       "per-layer slots: none at all, or a negative count: -EINVAL");
	if (tm_xcache_create(&c, 2, 4, &o)) {
		tap_ok(0, "create: %s", tm_strerror());
		return;
	}
	tap_ok(tm_xcache_slots(c, 0) == 0 && tm_xcache_slots(c, 1) == 3 && tm_xcache_slots_total(c) == 3 &&
	       tm_xcache_use(c, 0, 1) < 0 && tm_xcache_admit(c, 0, 1, false) < 0 &&
	       tm_xcache_use(c, 1, 1) < 0 && tm_xcache_admit(c, 1, 1, false) >= 0,
	       "a layer without slots misses and admits nothing; its neighbour has 3");
	tm_xcache_free(c);

	h.tokens = 300;
	h.counts = counts;
	/* the hottest (layer, rank) pairs: layer 1's 300, then layer 0's 100, 90 and 80 */
	tap_ok(!tm_xheat_split(&h, NULL, 4, 0, slots) && slots[0] == 3 && slots[1] == 1,
	       "split by heat: a flat layer's ranks beat a skewed one's tail (3 + 1)");
	tap_ok(!tm_xheat_split(&h, NULL, 4, 1, slots) && slots[0] == 2 && slots[1] == 2,
	       "a floor of the whole even share: an even split");
	tap_ok(!tm_xheat_split(&h, moe, 4, 0.5, slots) && slots[0] == 0 && slots[1] == 4,
	       "layers without experts get none");
	tap_ok(tm_xheat_split(&h, NULL, 9, 0, slots) == -EINVAL && tm_xheat_split(&h, NULL, 4, 1.5, slots) == -EINVAL,
	       "more slots than experts, a floor above 1: -EINVAL");
}

static char path[64];

static int write_file(const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

#define HDR "{\"format\":\"tiermem-expert-trace\",\"version\":1,\"model\":{\"hash\":\"h\",\"arch\":\"qwen3moe\"," \
	    "\"n_layer\":2,\"n_expert\":4,\"n_expert_used\":2,\"expert_bytes\":1000,\"dense_bytes\":500}}\n"

static void test_reader(void)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "", "empty file" },
		{ HDR, "no records" },
		{ "{\"format\":\"x\"}\n", "format 'x'" },
		{ "{\"format\":\"tiermem-expert-trace\",\"version\":2}\n", "version 2" },
		{ HDR "{\"t\":0,\"l\":0,\"e\":[0,1],\"w\":[0.5,0.5]\n", ":2: not JSON" },
		{ HDR "{\"t\":0,\"l\":0,\"e\":[0,1],\"w\":[0.5,0.5],\"x\":1}\n", ":2: unknown key 'x'" },
		{ HDR "{\"t\":0,\"l\":0,\"e\":[0,1,2],\"w\":[0.5,0.5]}\n", ":2: 'e' has 3 entries" },
		{ HDR "{\"t\":0,\"l\":0,\"e\":[1,1],\"w\":[0.5,0.5]}\n", ":2: expert 1 is chosen twice" },
		{ HDR "{\"t\":0,\"l\":0,\"e\":[0,4],\"w\":[0.5,0.5]}\n", ":2: expert 4 is outside" },
		{ HDR "{\"t\":0,\"l\":2,\"e\":[0,1],\"w\":[0.5,0.5]}\n", ":2: layer 2 is outside" },
		{ HDR "{\"t\":0,\"l\":0,\"e\":[0,1],\"w\":[0.5,-1]}\n", ":2: weight -1" },
		{ HDR "{\"t\":1,\"l\":0,\"e\":[0,1],\"w\":[1,0]}\n{\"t\":0,\"l\":1,\"e\":[0,1],\"w\":[1,0]}\n",
		  ":3: token 0 after token 1" },
		{ HDR "{\"t\":0,\"l\":1,\"e\":[0,1],\"w\":[1,0]}\n{\"t\":0,\"l\":1,\"e\":[0,1],\"w\":[1,0]}\n",
		  ":3: token 0: layer 1 after layer 1" },
		{ HDR "{\"t\":0,\"l\":0,\"e\":[0,1],\"w\":[1,0],\"p\":[2,2]}\n", ":2: expert 2 is predicted twice" },
		{ HDR "{\"t\":\"0\",\"l\":0,\"e\":[0,1],\"w\":[1,0]}\n", ":2: 't' is not an integer" },
	};
	struct tm_xtrace t;
	int wrong = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err;

		write_file(bad[i].text);
		err = tm_xtrace_read(&t, path);
		if (err != -EINVAL || !strstr(tm_strerror(), bad[i].want)) {
			printf("# case %zu: %d '%s', wanted '%s'\n", i, err, tm_strerror(), bad[i].want);
			wrong++;
		}
	}
	tap_ok(!wrong, "%zu malformed traces: each -EINVAL with PATH:LINE and what is wrong",
	       sizeof(bad) / sizeof(bad[0]));

	write_file(HDR "{\"t\":0,\"l\":0,\"e\":[3,1],\"w\":[0.75,0.25],\"p\":[3,2]}\n"
		       "{\"t\":0,\"l\":1,\"e\":[0,1],\"w\":[1,0]}\n{\"t\":4,\"l\":0,\"e\":[2,1],\"w\":[0.5,0.5]}\n");
	tap_ok(!tm_xtrace_read(&t, path) && t.n_rec == 3 && t.n_tokens == 2 && t.model.expert_bytes == 1000 &&
	       t.exp[0] == 3 && t.w[0] == 0.75f && t.has_pred[0] && t.pred[1] == 2 && !t.has_pred[1] &&
	       t.tok[2] == 4 && !strcmp(t.model.hash, "h"), "a good trace reads back field by field");
	tm_xtrace_free(&t);
}

static void test_synth_replay(void)
{
	struct tm_xsynth_opts o;
	struct tm_xtrace a, b, c;
	struct tm_xreplay_result r, rs, rp;
	struct tm_xreplay_opts ro = { .cache = { .policy = TM_XP_LRU, .slots = 32 },
				      .cost = { .fast_gbps = 100, .slow_gbps = 40 } };
	FILE *f;
	int same = 1, right = 0, total = 0;

	tm_xsynth_defaults(&o);
	o.model.n_layer = 4;
	o.tokens = 3000;
	o.zipf = 0;
	o.locality = 0;
	o.drift = 0;
	o.pred_acc = 0.9;
	if (tm_xsynth(&a, &o) || tm_xsynth(&b, &o)) {
		tap_ok(0, "synth: %s", tm_strerror());
		return;
	}
	for (size_t i = 0; i < a.n_rec * 8; i++)
		same &= a.exp[i] == b.exp[i];
	tap_ok(same && a.n_rec == b.n_rec && a.n_rec == 12000, "synth: the same seed gives the same trace");
	for (size_t r0 = 0; r0 < a.n_rec; r0++)
		for (int j = 0; j < 8; j++, total++)
			for (int i = 0; i < 8; i++)
				right += a.pred[r0 * 8 + j] == a.exp[r0 * 8 + i];
	tap_ok(fabs((double)right / total - 0.9) < 0.01, "predictions right %.3f of the time (asked 0.9)",
	       (double)right / total);
	tm_xreplay(&a, &ro, &r);
	/* uniform routing: any cache of 32 of 128 experts hits 1/4 of the time */
	tap_ok(fabs(r.hit_rate - 0.25) < 0.015, "uniform routing: LRU-32 of 128 hits %.3f (1/4 expected)",
	       r.hit_rate);
	ro.predict = true;
	tm_xreplay(&a, &ro, &rp);
	tap_ok(rp.st.pf_used + rp.st.pf_wasted == rp.st.pf_issued && rp.hit_rate > 0.85,
	       "with 90%%-right predictions prefetched, hits %.3f; issued = used + wasted", rp.hit_rate);
	/* bytes: slow = (misses + admits + prefetches) x B / tokens; fast = dense + (hits + copies) x B / tokens */
	tap_ok(fabs(r.slow_bytes_per_tok - (double)o.model.expert_bytes * (r.st.misses + r.st.admits) / 3000) < 1 &&
	       fabs(r.fast_bytes_per_tok - (o.model.dense_bytes + (double)o.model.expert_bytes *
					    (r.st.hits + r.st.admits) / 3000)) < 1 &&
	       fabs(1 / r.pred_tok_s - (r.fast_bytes_per_tok / 100e9 + r.slow_bytes_per_tok / 40e9)) < 1e-9,
	       "replay bytes per tier and predicted tok/s follow the documented formula");
	ro.predict = false;
	ro.cost.fused_admit = true;
	ro.cache.policy = TM_XP_STATIC;
	tm_xreplay(&a, &ro, &rs);
	tap_ok(rs.st.admits == 0 && fabs(rs.hit_rate - 0.25) < 0.03 &&
	       fabs(rs.slow_bytes_per_tok - (double)o.model.expert_bytes * rs.st.misses / 3000) < 1,
	       "static: no admissions, slow bytes are the misses'");

	/* written and read back, the trace replays the same */
	f = fopen(path, "w");
	tm_xtrace_write_header(f, &a.model, a.source);
	for (size_t i = 0; i < a.n_rec; i++) {
		int e[8], p[8];

		for (int j = 0; j < 8; j++) {
			e[j] = a.exp[i * 8 + j];
			p[j] = a.pred[i * 8 + j];
		}
		tm_xtrace_write_rec(f, a.tok[i], a.layer[i], e, a.w + i * 8, p, 8);
	}
	fclose(f);
	ro.cache.policy = TM_XP_LRU;
	ro.cost.fused_admit = false;
	tap_ok(!tm_xtrace_read(&c, path) && !tm_xreplay(&c, &ro, &rs) && rs.st.hits == r.st.hits &&
	       rs.st.admits == r.st.admits, "a written trace reads back and replays to the same counts");
	tm_xtrace_free(&a);
	tm_xtrace_free(&b);
	tm_xtrace_free(&c);

	o.zipf = 0.5;
	o.locality = 0.22;
	o.drift = 0.2;
	o.pred_acc = -1;
	o.model.n_layer = 8;
	o.tokens = 2000;
	tm_xsynth(&a, &o);
	ro.cache.slots = 64;
	tm_xreplay(&a, &ro, &r);
	tap_ok(fabs(r.hit_rate - 0.67) < 0.03, "the calibrated locality: LRU-64 of 128 hits %.3f (about 0.67)",
	       r.hit_rate);
	ro.cache.slots = 32;
	ro.cache.policy = TM_XP_LRFU;
	tm_xreplay(&a, &ro, &rp);
	ro.cache.policy = TM_XP_LRU;
	tm_xreplay(&a, &ro, &r);
	ro.cache.policy = TM_XP_OPT;
	tm_xreplay(&a, &ro, &rs);
	tap_ok(rp.slow_bytes_per_tok < r.slow_bytes_per_tok && rs.hit_rate >= rp.hit_rate &&
	       rs.hit_rate >= r.hit_rate, "at 25 %%: LRFU reads fewer slow bytes than LRU; OPT hits most "
	       "(%.3f %.3f %.3f)", rp.hit_rate, r.hit_rate, rs.hit_rate);
	tm_xtrace_free(&a);
}

static void test_heat(void)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "", "not a heat file" },
		{ "{\"format\":\"tiermem-expert-heat\",\"version\":2}", "version 2" },
		{ "{\"format\":\"tiermem-expert-heat\",\"version\":1,\"model\":{\"hash\":\"h\",\"arch\":\"a\","
		  "\"n_layer\":1,\"n_expert\":2,\"n_expert_used\":1},\"tokens\":3,\"counts\":[[1,4]]}",
		  "counts[0][1] is not a count in [0, tokens]" },
		{ "{\"format\":\"tiermem-expert-heat\",\"version\":1,\"model\":{\"hash\":\"h\",\"arch\":\"a\","
		  "\"n_layer\":2,\"n_expert\":2,\"n_expert_used\":1},\"tokens\":3,\"counts\":[[1,2]]}",
		  "'counts' must be an array of 2 layers" },
		{ "{\"format\":\"tiermem-expert-heat\",\"version\":1,\"model\":{\"hash\":\"h\",\"arch\":\"a\","
		  "\"n_layer\":1,\"n_expert\":2,\"n_expert_used\":3},\"tokens\":3,\"counts\":[[1,2]]}",
		  "'n_expert_used' = 3 is outside" },
	};
	struct tm_xtrace_model m = { .hash = "abc", .arch = "qwen3moe", .n_layer = 2, .n_expert = 3,
				     .n_expert_used = 1 };
	struct tm_xheat h, r;
	int order[3], wrong = 0;
	float *p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(bad[i].text);
		if (tm_xheat_read(&r, path) != -EINVAL || !strstr(tm_strerror(), bad[i].want)) {
			printf("# heat case %zu: '%s', wanted '%s'\n", i, tm_strerror(), bad[i].want);
			wrong++;
		}
	}
	tap_ok(!wrong, "%zu malformed heat files: each -EINVAL saying what is wrong", sizeof(bad) / sizeof(bad[0]));
	tm_xheat_alloc(&h, &m);
	h.tokens = 10;
	h.counts[0] = 2, h.counts[1] = 7, h.counts[2] = 1;
	h.counts[3] = 5, h.counts[4] = 0, h.counts[5] = 5;
	tap_ok(!tm_xheat_write(&h, path) && !tm_xheat_read(&r, path) && r.tokens == 10 && r.counts[1] == 7 &&
	       r.counts[5] == 5 && !strcmp(r.model.hash, "abc") && r.model.n_expert == 3,
	       "heat written and read back");
	tm_xheat_order(&r, 0, order);
	tap_ok(order[0] == 1 && order[1] == 0 && order[2] == 2, "hottest first: 1 0 2");
	tm_xheat_order(&r, 1, order);
	tap_ok(order[0] == 0 && order[1] == 2 && order[2] == 1, "ties by expert id: 0 2 1");
	tap_ok(!tm_xheat_probs(&r, &p) && fabsf(p[1] - 0.7f) < 1e-6f && p[4] == 0.0f,
	       "probabilities are counts / tokens");
	free(p);
	tm_xheat_free(&h);
	tm_xheat_free(&r);
}

int main(void)
{
	snprintf(path, sizeof(path), "/tmp/tm-test-experts.%d", (int)getpid());
	test_policies();
	test_states();
	test_layer_slots();
	test_reader();
	test_synth_replay();
	test_heat();
	unlink(path);
	return tap_done();
}
