// SPDX-License-Identifier: MIT
/*
 * The placement planner: tier specs and -ot parse strictly, tensors are
 * classified by name, the cost model's arithmetic is exact on a small MoE,
 * always-active tensors win the fast tier over routed experts, overrides win
 * over the plan, a model that does not fit is refused with the bytes missing,
 * and a plan round-trips through JSON.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "tap.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/gguf_write.h"
#include "tiermem/plan.h"

#define N_LAYER 3
#define N_EXP 8
#define N_USED 2
#define DIM 64
#define FF 128
#define VOCAB 1000

/* ---- a small MoE header: every class of tensor, F16 so sizes are easy ---- */

static void add(struct tm_gguf_writer *w, const char *name, int64_t a, int64_t b, int64_t c)
{
	int64_t ne[3] = { a, b, c };

	tm_gguf_writer_add_tensor(w, name, c > 1 ? TM_F16 : (b > 1 ? TM_F16 : TM_F32), c > 1 ? 3 : (b > 1 ? 2 : 1), ne);
}

static int write_moe(const char *path, int mtp)
{
	struct tm_gguf_writer *w;
	char name[64];
	int err;

	if (tm_gguf_writer_new(&w, 32))
		return -1;
	tm_gguf_writer_set_str(w, "general.architecture", "testmoe");
	tm_gguf_writer_set_u32(w, "testmoe.expert_count", N_EXP);
	tm_gguf_writer_set_u32(w, "testmoe.expert_used_count", N_USED);
	if (mtp) {
		tm_gguf_writer_set_u32(w, "testmoe.block_count", N_LAYER);
		tm_gguf_writer_set_u32(w, "testmoe.nextn_predict_layers", (uint32_t)mtp);
	}
	add(w, "token_embd.weight", DIM, VOCAB, 1);
	for (int l = 0; l < N_LAYER; l++) {
		static const char *const attn[] = { "attn_q", "attn_k", "attn_v", "attn_output" };

		snprintf(name, sizeof(name), "blk.%d.attn_norm.weight", l);
		add(w, name, DIM, 1, 1);
		for (int k = 0; k < 4; k++) {
			snprintf(name, sizeof(name), "blk.%d.%s.weight", l, attn[k]);
			add(w, name, DIM, DIM, 1);
		}
		snprintf(name, sizeof(name), "blk.%d.ffn_norm.weight", l);
		add(w, name, DIM, 1, 1);
		snprintf(name, sizeof(name), "blk.%d.ffn_gate_inp.weight", l);
		add(w, name, DIM, N_EXP, 1);
		snprintf(name, sizeof(name), "blk.%d.ffn_gate_exps.weight", l);
		add(w, name, DIM, FF, N_EXP);
		snprintf(name, sizeof(name), "blk.%d.ffn_up_exps.weight", l);
		add(w, name, DIM, FF, N_EXP);
		snprintf(name, sizeof(name), "blk.%d.ffn_down_exps.weight", l);
		add(w, name, FF, DIM, N_EXP);
		snprintf(name, sizeof(name), "blk.%d.ffn_up_shexp.weight", l);
		add(w, name, DIM, FF, 1);
	}
	add(w, "output_norm.weight", DIM, 1, 1);
	add(w, "output.weight", DIM, VOCAB, 1);
	err = tm_gguf_writer_begin(w, path) || tm_gguf_writer_finish_header(w);
	tm_gguf_writer_free(w);
	return err ? -1 : 0;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	rewind(f);
	p = malloc(*n ? *n : 1);
	if (fread(p, 1, *n, f) != *n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

/* F16 sizes */
#define B_EXPS ((uint64_t)DIM * FF * N_EXP * 2)
#define B_SQ ((uint64_t)DIM * DIM * 2)
#define B_SHEXP ((uint64_t)DIM * FF * 2)
#define B_ROUTER ((uint64_t)DIM * N_EXP * 2)
#define B_VEC ((uint64_t)DIM * 4)
#define B_EMBD ((uint64_t)DIM * VOCAB * 2)

static void test_spec_parse(void)
{
	struct tm_tier_spec t;
	struct tm_override o;
	static const char *const bad[] = {
		"x", "=ddr:1G", "a b=ddr:1G", "a=foo:1G", "a=ddr:", "a=ddr:1X", "a=ddr:1G@",
		"a=ddr:1G@-3", "a=ddr:1G@nan", "a=node:x:1G", "a=node:1", "a=ddr:1G,zz=1", "a=ddr:0",
		"a=ddr:1G@5x", "a=ddr:1G,ch=", "a=ddr:1G junk", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=ddr:1G",
		"a=ddr:99999999999T", "a=pcie:1G@5", "a=pcie:1G", "a=pcie:@",
	};
	int nbad = 0;

	tap_ok(!tm_tier_spec_parse("fast=ddr:64G@100", &t) && !strcmp(t.name, "fast") &&
	       t.kind == TM_KIND_DDR && t.capacity == 64ull << 30 && t.gbps == 100 && t.gbps_given &&
	       !t.group[0] && !t.path[0], "tier spec: fast=ddr:64G@100");
	tap_ok(!tm_tier_spec_parse("cxl0=node:2:512G", &t) && t.kind == TM_KIND_NODE && t.node == 2 &&
	       t.capacity == 512ull << 30 && t.gbps == 0 && !t.gbps_given,
	       "tier spec: node:N without a bandwidth leaves it to the caller");
	tap_ok(!tm_tier_spec_parse("opt=pmem:768G@39.5,ch=imc0,path=/mnt/pm,em/x", &t) &&
	       t.kind == TM_KIND_PMEM && t.gbps == 39.5 && !strcmp(t.group, "imc0") &&
	       !strcmp(t.path, "/mnt/pm,em/x"), "tier spec: ch= group and path= (the rest, commas included)");
	tap_ok(!tm_tier_spec_parse("f=file:1M", &t) && t.kind == TM_KIND_FILE && t.capacity == 1 << 20,
	       "tier spec: file kind");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tm_clear_error();
		if (tm_tier_spec_parse(bad[i], &t) != -EINVAL || !strstr(tm_strerror(), "--tier")) {
			printf("# accepted or no message: '%s'\n", bad[i]);
			nbad++;
		}
	}
	tap_ok(!nbad, "tier spec: %zu malformed specs refused with a message naming --tier",
	       sizeof(bad) / sizeof(bad[0]));

	tap_ok(!tm_override_parse("blk\\.[0-9]+\\.ffn_.*_exps=slow", &o) &&
	       !strcmp(o.regex, "blk\\.[0-9]+\\.ffn_.*_exps") && !strcmp(o.tier, "slow"), "-ot REGEX=TIER");
	tap_ok(!tm_override_parse("a=b=fast", &o) && !strcmp(o.regex, "a=b") && !strcmp(o.tier, "fast"),
	       "-ot: the last '=' separates the tier");
	tap_ok(tm_override_parse("(=fast", &o) == -EINVAL && strstr(tm_strerror(), "regex") &&
	       tm_override_parse("exps", &o) == -EINVAL && tm_override_parse("exps=", &o) == -EINVAL &&
	       tm_override_parse("=fast", &o) == -EINVAL, "-ot: bad regex, no '=', no tier, no regex refused");
	tap_ok(!tm_tier_spec_parse("link=pcie:@55.5", &t) && t.kind == TM_KIND_PCIE && !t.capacity && t.gbps == 55.5 &&
	       !tm_tier_spec_parse("g=vram:80G@3350", &t) && t.kind == TM_KIND_VRAM, "tier spec: pcie:@GBPS (no size), vram");
	tap_ok(!tm_tier_spec_parse("link=pcie:", &t) && t.kind == TM_KIND_PCIE && !t.capacity && !t.gbps &&
	       !t.gbps_given && !tm_tier_spec_parse("g=vram:80G", &t) && !t.gbps_given,
	       "tier spec: pcie: and vram:SIZE without @GBPS (measured on demand)");
	tap_ok(!strcmp(tm_tier_kind_name(TM_KIND_PMEM), "pmem") && !strcmp(tm_tier_kind_name(TM_KIND_NODE), "node") &&
	       !strcmp(tm_tier_kind_name(TM_KIND_COUNT), "?"), "kind names");
}

static void test_classify(void)
{
	static const struct {
		const char *name;
		enum tm_tensor_class cls;
	} cases[] = {
		{ "token_embd.weight", TM_TC_EMBD }, { "output.weight", TM_TC_OUTPUT },
		{ "output_norm.weight", TM_TC_OUTPUT }, { "blk.0.attn_q.weight", TM_TC_ATTN },
		{ "blk.3.attn_norm.weight", TM_TC_ATTN }, { "blk.1.attn_kv_a_mqa.weight", TM_TC_ATTN },
		{ "blk.2.ffn_norm.weight", TM_TC_NORM }, { "blk.2.ffn_gate_inp.weight", TM_TC_ROUTER },
		{ "blk.2.exp_probs_b.bias", TM_TC_ROUTER }, { "blk.2.ffn_up_shexp.weight", TM_TC_SHEXP },
		{ "blk.2.ffn_gate_inp_shexp.weight", TM_TC_SHEXP }, { "blk.2.ffn_down_exps.weight", TM_TC_EXPERTS },
		{ "blk.0.ffn_gate.weight", TM_TC_FFN }, { "rope_freqs.weight", TM_TC_OTHER },
	};
	int wrong = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (tm_tensor_classify(cases[i].name) != cases[i].cls) {
			printf("# %s: class %s\n", cases[i].name, tm_tensor_class_name(tm_tensor_classify(cases[i].name)));
			wrong++;
		}
	tap_ok(!wrong, "classes of %zu tensor names", sizeof(cases) / sizeof(cases[0]));
}

static struct tm_tier_spec tier(const char *arg)
{
	struct tm_tier_spec t = { 0 };

	if (tm_tier_spec_parse(arg, &t))
		printf("# %s\n", tm_strerror());
	return t;
}

static int make(struct tm_plan *p, const struct tm_gguf *g, const struct tm_tier_spec *t, int n,
		const struct tm_override *ot, int n_ot)
{
	struct tm_plan_opts o = { .tiers = t, .n_tiers = n, .ot = ot, .n_ot = n_ot };

	return tm_plan_make(p, g, &o);
}

static bool near(double a, double b)
{
	return fabs(a - b) <= 1e-9 * fabs(b);
}

static void test_plan(const struct tm_gguf *g)
{
	/* what a token reads: every always-active byte, 2/8 of the experts, one embedding row */
	const double active = (double)N_LAYER * (2 * B_VEC + 4 * B_SQ + B_ROUTER + B_SHEXP) + B_VEC +
			      B_EMBD + (double)B_EMBD / VOCAB;
	const double experts = (double)N_LAYER * 3 * B_EXPS * N_USED / N_EXP;
	uint64_t total = 0, fast_need = 0;
	struct tm_tier_spec t[3];
	struct tm_override ot[2];
	struct tm_plan p, q;
	char spec[128];
	int bad = 0;

	for (uint64_t i = 0; i < g->n_tensors; i++)
		total += (g->tensors[i].nbytes + 31) / 32 * 32;

	t[0] = tier("slow=pmem:1G@39");
	tap_ok(!make(&p, g, t, 1, NULL, 0) && p.n_tensors == g->n_tensors && p.tier_count[0] == g->n_tensors &&
	       near(p.tier_read[0], active + experts) && near(p.sec_per_token, (active + experts) / 39e9),
	       "one tier: every tensor on it, seconds/token = bytes read per token / its bandwidth");
	{
		const struct tm_plan_tensor *e = tm_plan_find(&p, "blk.1.ffn_up_exps.weight");
		const struct tm_plan_tensor *emb = tm_plan_find(&p, "token_embd.weight");

		tap_ok(e && e->cls == TM_TC_EXPERTS && near(e->read_per_token, (double)B_EXPS * N_USED / N_EXP) &&
		       emb && near(emb->read_per_token, (double)B_EMBD / VOCAB) && !tm_plan_find(&p, "blk.9.x"),
		       "tm_plan_find; experts read used/count of their bytes, the embedding one row");
	}
	tm_plan_free(&p);

	/* room for everything always read, and not for one expert tensor more */
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		char name[64];
		enum tm_tensor_class c;

		snprintf(name, sizeof(name), "%.*s", (int)g->tensors[i].name.len, g->tensors[i].name.ptr);
		c = tm_tensor_classify(name);

		if (c != TM_TC_EXPERTS && c != TM_TC_EMBD)
			fast_need += (g->tensors[i].nbytes + 31) / 32 * 32;
	}
	snprintf(spec, sizeof(spec), "fast=ddr:%llu@200", (unsigned long long)(fast_need + B_EXPS / 2));
	t[1] = tier(spec);
	tap_ok(!make(&p, g, t, 2, NULL, 0), "two tiers: planned");
	for (size_t i = 0; i < p.n_tensors; i++) {
		const struct tm_plan_tensor *x = &p.tensors[i];
		bool want_fast = x->cls != TM_TC_EXPERTS && x->cls != TM_TC_EMBD;

		if ((x->tier == 1) != want_fast) {
			printf("# %s on %s (%s)\n", x->name, p.tiers[x->tier].name, x->why);
			bad++;
		}
	}
	tap_ok(!bad && near(p.sec_per_token, (active - B_EMBD / (double)VOCAB) / 200e9 +
				  (experts + B_EMBD / (double)VOCAB) / 39e9),
	       "two tiers: always-read tensors on the fast one, experts and embedding on the slow; cost exact");
	tap_ok(strstr(tm_plan_find(&p, "blk.0.attn_q.weight")->why, "attention") &&
	       strstr(tm_plan_find(&p, "blk.0.ffn_up_exps.weight")->why, "faster tiers full") &&
	       strstr(tm_plan_find(&p, "blk.0.ffn_up_exps.weight")->why, "25%"),
	       "why: '%s' / '%s'", tm_plan_find(&p, "blk.0.attn_q.weight")->why,
	       tm_plan_find(&p, "blk.0.ffn_up_exps.weight")->why);

	/* naive layer order fills the fast tier from the first tensor (the embedding) on */
	{
		struct tm_plan_opts o = { .tiers = t, .n_tiers = 2, .layer_order = true };

		bool ok = !tm_plan_make(&q, g, &o);

		tap_ok(ok && tm_plan_find(&q, "token_embd.weight")->tier == 1 &&
		       tm_plan_find(&q, "output.weight")->tier == 0 && q.sec_per_token > p.sec_per_token,
		       "layer order: embedding on the fast tier, output spilled, slower (%.3g vs %.3g s/token)",
		       q.sec_per_token, p.sec_per_token);
		tm_plan_free(&q);
	}

	/* -ot wins over the plan, and takes its room first */
	tm_override_parse("blk\\.1\\.ffn_.*_exps=fast", &ot[0]);
	tm_override_parse("attn_q=slow", &ot[1]);
	snprintf(spec, sizeof(spec), "fast=ddr:%llu@200", (unsigned long long)(fast_need + 3 * B_EXPS));
	t[1] = tier(spec);
	tap_ok(!make(&q, g, t, 2, ot, 2) && tm_plan_find(&q, "blk.1.ffn_gate_exps.weight")->tier == 1 &&
	       tm_plan_find(&q, "blk.0.ffn_gate_exps.weight")->tier == 0 &&
	       tm_plan_find(&q, "blk.2.attn_q.weight")->tier == 0 &&
	       !strncmp(tm_plan_find(&q, "blk.2.attn_q.weight")->why, "-ot attn_q", 10),
	       "-ot: overrides win both ways and say so");
	tm_plan_free(&q);
	tm_override_parse("exps=nowhere", &ot[0]);
	tap_ok(make(&q, g, t, 2, ot, 1) == -EINVAL && strstr(tm_strerror(), "nowhere") && !q.tensors,
	       "-ot naming no tier: -EINVAL, nothing allocated");
	tm_plan_free(&p);

	/* does not fit: the bytes missing */
	snprintf(spec, sizeof(spec), "slow=pmem:%llu@39", (unsigned long long)(total - 4 * B_EXPS));
	t[0] = tier(spec);
	tap_ok(make(&p, g, t, 1, NULL, 0) == -ENOSPC && strstr(tm_strerror(), "missing") && !p.tensors,
	       "a model that does not fit: -ENOSPC: %s", tm_strerror());
	t[0] = tier("slow=pmem:1G@39");
	t[1] = tier("slow=ddr:1G@39");
	tap_ok(make(&p, g, t, 2, NULL, 0) == -EINVAL, "two tiers of one name refused");
	t[1] = tier("fast=ddr:1G");
	tap_ok(make(&p, g, t, 2, NULL, 0) == -EINVAL && strstr(tm_strerror(), "bandwidth"),
	       "a tier without a bandwidth refused");
}

static void test_heat_and_overlap(const struct tm_gguf *g)
{
	struct tm_tier_spec t[2] = { tier("slow=pmem:1G@40,ch=imc"), tier("fast=ddr:1G@100,ch=imc") };
	float heat[N_LAYER * N_EXP];
	struct tm_plan_opts o = { .tiers = t, .n_tiers = 1, .expert_heat = heat,
				  .heat_layers = N_LAYER, .heat_experts = N_EXP };
	struct tm_plan p;
	double r[2] = { 40e9, 100e9 };

	for (int i = 0; i < N_LAYER * N_EXP; i++)
		heat[i] = (i % N_EXP) == 0 ? 1.0f : 0.0f;	/* one expert always used */
	tap_ok(!tm_plan_make(&p, g, &o) &&
	       near(tm_plan_find(&p, "blk.2.ffn_down_exps.weight")->read_per_token, (double)B_EXPS / N_EXP),
	       "expert heat: reads per token follow the given probabilities");
	tm_plan_free(&p);

	o.expert_heat = NULL;
	o.n_tiers = 2;
	tap_ok(!tm_plan_make(&p, g, &o) && near(tm_plan_cost(&p, r), 2.0), "serial reads: the times add");
	p.overlap = true;
	tap_ok(near(tm_plan_cost(&p, r), 140e9 / 100e9), "overlap on shared channels: bounded by the channels");
	p.tiers[1].group[0] = '\0';
	tap_ok(near(tm_plan_cost(&p, r), 1.0), "overlap on separate channels: the slowest tier sets the pace");
	tm_plan_free(&p);
}

/* Sum of the padded sizes of tensors whose class is in mask. */
static uint64_t class_bytes(const struct tm_gguf *g, unsigned int mask)
{
	uint64_t b = 0;

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%.*s", (int)g->tensors[i].name.len, g->tensors[i].name.ptr);
		if (mask & (1u << tm_tensor_classify(name)))
			b += (g->tensors[i].nbytes + 31) / 32 * 32;
	}
	return b;
}

/* A vram tier: the CPU/GPU hybrid's arithmetic (lib/plan/hybrid.c), exact on the small MoE. */
static void test_hybrid(const struct tm_gguf *g, const char *dir)
{
	const double active = (double)N_LAYER * (2 * B_VEC + 4 * B_SQ + B_ROUTER + B_SHEXP) + B_VEC +
			      B_EMBD + (double)B_EMBD / VOCAB;
	const double routed = 3.0 * B_EXPS * N_USED / N_EXP, row = (double)B_EMBD / VOCAB;	/* per layer */
	struct tm_tier_spec t[4] = { tier("gpu=vram:1G@1000"), tier("ddr=ddr:1G@100") };
	struct tm_override ot[1];
	struct tm_plan p, q;
	bool all = true, split = true, same;
	char spec[64], path[96];
	double want;
	FILE *f;
	int err;

	tap_ok(!make(&p, g, t, 1, NULL, 0) && p.gpu_tier == 0 && p.pcie_tier < 0 && p.hy.handoffs == 0 &&
	       near(p.sec_per_token, (active + N_LAYER * routed) / 1000e9) && near(p.hy.vram_read, active + N_LAYER * routed),
	       "all in VRAM: every byte at the GPU's bandwidth, no hand-off");
	for (size_t i = 0; i < p.n_tensors; i++)
		all = all && p.tensors[i].gpu;
	tap_ok(all, "all in VRAM: every tensor computed by the GPU");
	tm_plan_free(&p);

	/* llama.cpp's -ot exps=CPU: routed experts on the host and the CPU, the rest on the GPU */
	tm_override_parse("_exps=CPU", &ot[0]);
	err = make(&p, g, t, 2, ot, 1);
	tap_ok(!err, "-ot exps=CPU with vram and ddr: planned");
	for (size_t i = 0; i < p.n_tensors; i++) {
		const struct tm_plan_tensor *x = &p.tensors[i];
		bool exps = x->cls == TM_TC_EXPERTS;

		split = split && x->gpu == !exps && x->tier == (exps ? 1 : 0);
	}
	/* per layer the CPU's routed experts (100 GB/s) hide the GPU's shared expert */
	want = (active - N_LAYER * B_SHEXP) / 1000e9 + N_LAYER * routed / 100e9 + N_LAYER * TM_PLAN_HANDOFF_SEC;
	tap_ok(split && p.hy.handoffs == N_LAYER && near(p.sec_per_token, want) &&
	       near(p.hy.moe_serial_sec, N_LAYER * (routed / 100e9 + B_SHEXP / 1000e9)) &&
	       near(p.hy.moe_sec, N_LAYER * routed / 100e9),
	       "hybrid: GPU %.3f us + MoE %.3f us (the shared expert overlapped, %.3f us serial) + %d hand-offs",
	       p.hy.gpu_sec * 1e6, p.hy.moe_sec * 1e6, p.hy.moe_serial_sec * 1e6, p.hy.handoffs);
	tm_plan_free(&p);

	/*
	 * PCIe: VRAM holds exactly the attention, norms, output and routers;
	 * the shared experts fill a fast host tier, the routed ones a slow one.
	 * The CPU is busy with the routed experts, so the planner has the GPU
	 * read the shared experts over PCIe, at once.
	 */
	snprintf(spec, sizeof(spec), "gpu=vram:%llu@1000",
		 (unsigned long long)class_bytes(g, 1u << TM_TC_ATTN | 1u << TM_TC_NORM | 1u << TM_TC_OUTPUT |
					      1u << TM_TC_ROUTER));
	t[0] = tier(spec);
	snprintf(spec, sizeof(spec), "fast=ddr:%llu@100", (unsigned long long)class_bytes(g, 1u << TM_TC_SHEXP));
	t[1] = tier(spec);
	t[2] = tier("slow=pmem:1G@39");
	t[3] = tier("link=pcie:@50");
	want = (active - N_LAYER * B_SHEXP - row) / 1000e9 + row / 39e9 + N_LAYER * routed / 39e9 +
	       N_LAYER * (TM_PLAN_HANDOFF_SEC + 2.0 * 4 * DIM / 50e9);
	err = make(&p, g, t, 4, ot, 1);
	tap_ok(!err && p.pcie_tier == 3 && tm_plan_find(&p, "blk.1.ffn_up_shexp.weight")->gpu &&
	       tm_plan_find(&p, "blk.1.ffn_up_shexp.weight")->tier == 1 &&
	       strstr(tm_plan_find(&p, "blk.1.ffn_up_shexp.weight")->why, "PCIe") &&
	       !tm_plan_find(&p, "blk.1.ffn_up_exps.weight")->gpu && !tm_plan_find(&p, "token_embd.weight")->gpu &&
	       near(p.hy.pcie_read, N_LAYER * B_SHEXP) && near(p.sec_per_token, want),
	       "pcie: the GPU reads the shared experts over PCIe while the CPU runs the routed ones (%.4f us/token)",
	       p.sec_per_token * 1e6);
	snprintf(path, sizeof(path), "%s/hybrid.json", dir);
	same = p.tensors && (f = fopen(path, "w")) && !tm_plan_write_json(&p, f) && !fclose(f) &&
	       !tm_plan_read_json(&q, path);
	for (size_t i = 0; same && i < p.n_tensors; i++)
		same = q.tensors[i].gpu == p.tensors[i].gpu && q.tensors[i].tier == p.tensors[i].tier;
	tap_ok(same && q.gpu_tier == 0 && q.pcie_tier == 3 && q.n_embd == DIM && near(q.sec_per_token, p.sec_per_token) &&
	       q.hy.handoffs == p.hy.handoffs, "hybrid plan through JSON: processors and prediction equal");
	tm_plan_free(&q);
	unlink(path);
	tm_plan_free(&p);
	/* the same with the shared experts on the routed experts' tier: PCIe would share its bandwidth, no gain */
	t[1] = tier("slow=pmem:1G@39");
	t[2] = tier("link=pcie:@50");
	tap_ok(!make(&p, g, t, 3, ot, 1) && !tm_plan_find(&p, "blk.1.ffn_up_shexp.weight")->gpu,
	       "pcie: not chosen where the host tier's bandwidth is the bound either way");
	tm_plan_free(&p);
	tm_override_parse("_shexp=link", &ot[0]);
	tap_ok(!make(&p, g, t, 3, ot, 1) && tm_plan_find(&p, "blk.1.ffn_up_shexp.weight")->gpu &&
	       tm_plan_find(&p, "blk.1.ffn_up_shexp.weight")->tier == 1, "-ot REGEX=PCIE_TIER: host memory, the GPU computes");
	tm_plan_free(&p);

	t[0] = tier("link=pcie:@50");
	tap_ok(make(&p, g, t, 2, NULL, 0) == -EINVAL && strstr(tm_strerror(), "vram"), "pcie without vram: %s",
	       tm_strerror());
	t[0] = tier("g1=vram:1G@1000");
	t[1] = tier("g2=vram:1G@1000");
	tap_ok(make(&p, g, t, 2, NULL, 0) == -EINVAL && strstr(tm_strerror(), "one GPU"), "two vram tiers: %s",
	       tm_strerror());
}

/* --nodes: per-node plans and the link model's arithmetic, exact on the small MoE. */
static void test_cluster(const struct tm_gguf *g)
{
	const double active = (double)N_LAYER * (2 * B_VEC + 4 * B_SQ + B_ROUTER + B_SHEXP) + B_VEC +
			      B_EMBD + (double)B_EMBD / VOCAB;
	const double experts = (double)N_LAYER * 3 * B_EXPS * N_USED / N_EXP;
	struct tm_tier_spec t[1] = { tier("slow=pmem:1G@39") };
	struct tm_plan_opts o = { .tiers = t, .n_tiers = 1, .nodes = 3 };
	struct tm_link l, bad;
	struct tm_plan p, st[2], nodes[3];
	struct tm_cluster c;
	const double msg = DIM * 4.0, send = 5e-6 + msg * 8 / 100e9;

	tap_ok(!tm_link_parse("100,5", &l) && l.gbit == 100 && l.latency_us == 5 &&
	       tm_link_parse("100", &bad) == -EINVAL && tm_link_parse("0,5", &bad) == -EINVAL &&
	       tm_link_parse("100,-1", &bad) == -EINVAL && tm_link_parse("100,5x", &bad) == -EINVAL &&
	       tm_link_parse(",5", &bad) == -EINVAL, "--link GBPS,LATENCY_US parses strictly");
	tap_ok(near(tm_link_send(&l, 1250), 5.1e-6) && tm_allreduce_sec(&l, 1, msg) == 0 &&
	       near(tm_allreduce_sec(&l, 2, msg), send) && near(tm_allreduce_sec(&l, 3, msg), 2 * send) &&
	       near(tm_allreduce_sec(&l, 8, msg), 3 * send) && near(tm_allreduce_sec(&l, 9, msg), 4 * send),
	       "a message is latency + bytes / rate; an all-reduce ceil(log2 N) of them");
	tap_ok(tm_plan_moe_layers(g) == N_LAYER, "every layer of the small MoE holds routed experts");

	/* experts over 3 nodes: the node with ceil(8 / 3) = 3 experts sets the pace */
	tap_ok(!tm_plan_make(&p, g, &o) && p.n_tensors == g->n_tensors &&
	       tm_plan_find(&p, "blk.0.ffn_up_exps.weight")->bytes == B_EXPS * 3 / N_EXP &&
	       near(tm_plan_find(&p, "blk.0.attn_q.weight")->read_per_token, (double)B_SQ) &&
	       near(p.sec_per_token, (active + experts * 3 / N_EXP) / 39e9),
	       "expert parallel: a node holds every dense tensor and 3/8 of each expert tensor");
	/* every node: ranks 0 and 1 hold 3 experts a layer, rank 2 holds 2; each layer waits for a 3 */
	nodes[0] = p;
	for (int r = 1; r < 3; r++) {
		o.rank = r;
		tm_plan_make(&nodes[r], g, &o);
	}
	o.rank = 0;
	tm_cluster_predict(&c, nodes, 3, false, &l, DIM, N_LAYER);
	tap_ok(c.messages == N_LAYER && near(c.comm_sec, N_LAYER * 2 * send) &&
	       near(c.sec_per_token, p.sec_per_token + N_LAYER * 2 * send),
	       "expert parallel: streaming plus one all-reduce of n_embd floats per MoE layer");
	/*
	 * each layer's all-reduce waits for its slowest node: node 0 made to
	 * read layer 0's experts twice as slowly, node 1 layer 1's, so the
	 * token waits for both, more than either node's own token
	 */
	{
		struct tm_plan_tensor *a = (struct tm_plan_tensor *)tm_plan_find(&nodes[0], "blk.0.ffn_up_exps.weight");
		struct tm_plan_tensor *b = (struct tm_plan_tensor *)tm_plan_find(&nodes[1], "blk.1.ffn_up_exps.weight");
		double extra = a->read_per_token / 39e9, alone;

		a->read_per_token *= 2;
		b->read_per_token *= 2;
		nodes[0].sec_per_token += extra;
		nodes[1].sec_per_token += extra;
		alone = nodes[0].sec_per_token;
		tm_cluster_predict(&c, nodes, 3, false, &l, DIM, N_LAYER);
		tap_ok(near(c.compute_sec, alone + extra), "expert parallel: each MoE layer waits for its slowest node "
		       "(two nodes slow in different layers: %.3g s against %.3g s for either alone)", c.compute_sec, alone);
	}
	for (int r = 1; r < 3; r++)
		tm_plan_free(&nodes[r]);
	tm_plan_free(&p);
	/*
	 * tensor parallel over 3 nodes, in 16-row groups: each of the 4
	 * attention matrices (64 rows: 2 of 4 groups on the node with the
	 * most), the shared expert (128: 3 of 8) per layer and the output
	 * (1000: 21 of 63) is split and gathered: 16 gathers of 8608 bytes in
	 * all; norms and the router (8 rows) stay whole
	 */
	o.tensor_parallel = true;
	tap_ok(!tm_plan_make(&p, g, &o) && tm_plan_find(&p, "blk.0.attn_q.weight")->bytes == B_SQ * 32 / DIM &&
	       tm_plan_find(&p, "blk.0.ffn_up_shexp.weight")->bytes == B_SHEXP * 48 / FF &&
	       tm_plan_find(&p, "output.weight")->bytes == B_EMBD * 336 / VOCAB &&
	       tm_plan_find(&p, "blk.0.ffn_gate_inp.weight")->bytes == B_ROUTER &&
	       tm_plan_find(&p, "blk.0.ffn_up_exps.weight")->bytes == B_EXPS * 3 / N_EXP && p.tp_gathers == 16 &&
	       near(p.tp_gather_bytes, 8608), "tensor parallel: dense matrices split by rows, one gather each");
	nodes[0] = nodes[1] = nodes[2] = p;	/* the same dense matrices on every node */
	tm_cluster_predict(&c, nodes, 3, false, &l, DIM, N_LAYER);
	tap_ok(c.gathers == 16 && near(c.gather_sec, 16 * 2 * 5e-6 + 8608 * 2.0 / 3 * 8 / 100e9) &&
	       near(c.comm_sec, N_LAYER * 2 * send + c.gather_sec) && near(tm_allgather_sec(&l, 1, 8608), 0),
	       "tensor parallel: each gather ceil(log2 N) latencies, (N - 1) / N of its output over the link");
	tm_plan_free(&p);
	o.tensor_parallel = false;
	/* rank 2 holds experts 2 and 5 only: its own share, as its per-rank import stores it */
	o.rank = 2;
	tap_ok(!tm_plan_make(&p, g, &o) && tm_plan_find(&p, "blk.0.ffn_up_exps.weight")->bytes == B_EXPS * 2 / N_EXP &&
	       near(p.sec_per_token, (active + experts * 2 / N_EXP) / 39e9),
	       "expert parallel: rank 2 of 3 is planned with its own 2/8 of each expert tensor");
	tm_plan_free(&p);
	o.rank = 0;

	/*
	 * layers over 2 nodes, balanced by bytes read per token: a layer reads
	 * about 150 KB (its experts at 2 of 8), the output matrix 128 KB, so
	 * the last stage takes one layer and the output: [0,2) and [2,3)
	 */
	o.nodes = 2;
	o.split_layers = true;
	o.rank = 0;
	tap_ok(!tm_plan_make(&st[0], g, &o) && st[0].n_tensors == 23 && st[0].stage_first == 0 &&
	       st[0].stage_last == 2 && tm_plan_find(&st[0], "token_embd.weight") &&
	       tm_plan_find(&st[0], "blk.1.attn_q.weight") && !tm_plan_find(&st[0], "blk.2.attn_q.weight") &&
	       !tm_plan_find(&st[0], "output.weight"), "pipeline rank 0: the embedding and layers 0-1");
	o.rank = 1;
	tap_ok(!tm_plan_make(&st[1], g, &o) && st[1].n_tensors == 13 && st[1].stage_first == 2 &&
	       st[1].stage_last == 3 && tm_plan_find(&st[1], "output.weight") &&
	       tm_plan_find(&st[1], "blk.2.ffn_down_exps.weight") && !tm_plan_find(&st[1], "blk.1.attn_q.weight") &&
	       !tm_plan_find(&st[1], "token_embd.weight"), "pipeline rank 1: layer 2 and the output");
	tm_cluster_predict(&c, st, 2, true, &l, DIM, N_LAYER);
	tap_ok(near(c.compute_sec, (active + experts) / 39e9) && c.messages == 2 && near(c.comm_sec, 2 * send),
	       "pipeline: the stages' times add up to one node's; one hop per stage");
	tm_plan_free(&st[0]);
	tm_plan_free(&st[1]);
	o.rank = 2;
	tap_ok(tm_plan_make(&p, g, &o) == -EINVAL, "a rank outside the nodes refused");
	{
		int first[5] = { -1, -1, -1, -1, -1 };

		tap_ok(!tm_plan_stages(g, N_LAYER, 3, first) && first[0] == 0 && first[1] == 1 &&
		       first[2] == 2 && first[3] == 3, "stages: 3 layers over 3 nodes, one each");
		tap_ok(tm_plan_stages(g, N_LAYER, 4, first) == -EINVAL, "stages: 4 nodes for 3 layers refused");
	}
	{
		/*
		 * heat that reads every expert of layer 0 and none of the others
		 * would, counted, cut after layer 0; it changes the stages' times only
		 */
		static float heat[N_LAYER * N_EXP];

		for (int i = 0; i < N_LAYER * N_EXP; i++)
			heat[i] = i / N_EXP == 0 ? 1.0f : 0.0f;
		o.expert_heat = heat;
		o.heat_layers = N_LAYER;
		o.heat_experts = N_EXP;
		o.rank = 1;
		tap_ok(!tm_plan_make(&st[1], g, &o) && st[1].stage_first == 2 && st[1].stage_last == 3,
		       "stages: the cut is the model's alone (heat given: layers [2, 3) still on the last node)");
		tm_plan_free(&st[1]);
		o.expert_heat = NULL;
	}
	/* which stage holds what: the rule the plan and a per-rank import share */
	tap_ok(tm_stage_holds("blk.2.attn_q.weight", false, 2, 3, 3) && !tm_stage_holds("blk.1.attn_q.weight", false, 2, 3, 3) &&
	       tm_stage_holds("blk.3.nextn.eh_proj.weight", false, 2, 3, 3) &&
	       !tm_stage_holds("blk.3.nextn.eh_proj.weight", false, 0, 2, 3) &&
	       tm_stage_holds("token_embd.weight", false, 0, 2, 3) && !tm_stage_holds("token_embd.weight", false, 2, 3, 3) &&
	       tm_stage_holds("token_embd.weight", true, 2, 3, 3) && tm_stage_holds("output.weight", false, 2, 3, 3) &&
	       !tm_stage_holds("output_norm.weight", false, 0, 2, 3) && tm_stage_holds("rope_freqs.weight", false, 1, 2, 3),
	       "stage_holds: layers (past the split: the last stage's), the embedding first (tied: last too), "
	       "the output last, rope_freqs everywhere");
}

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static void test_json(const struct tm_gguf *g, const char *dir)
{
	struct tm_tier_spec t[2] = { tier("slow=pmem:1G@39,ch=imc,path=/mnt/pmem0"), tier("fast=node:1:300K@120.5") };
	struct tm_plan_opts o = { .tiers = t, .n_tiers = 2, .overlap = true };
	struct tm_plan p, q;
	char path[96];
	FILE *f;
	int same = 1;
	static const char *const bad[] = {
		"", "[]", "{\"version\":2}", "{\"version\":1,\"tiers\":[],\"tensors\":[]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"a\",\"kind\":\"tape\",\"capacity\":1,\"gbps\":1}],\"tensors\":[]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"a\",\"kind\":\"ddr\",\"capacity\":-1,\"gbps\":1}],\"tensors\":[]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"a\",\"kind\":\"ddr\",\"capacity\":9,\"gbps\":0}],\"tensors\":[]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"a\",\"kind\":\"ddr\",\"capacity\":9,\"gbps\":1}],"
		"\"tensors\":[{\"name\":\"x\",\"tier\":\"b\",\"bytes\":1,\"read_per_token\":1}]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"a\",\"kind\":\"ddr\",\"capacity\":9,\"gbps\":1}],"
		"\"tensors\":[{\"name\":\"x\",\"tier\":\"a\",\"bytes\":10,\"read_per_token\":1}]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"a\",\"kind\":\"ddr\",\"capacity\":9,\"gbps\":1}],"
		"\"tensors\":[{\"name\":\"x\",\"tier\":\"a\",\"bytes\":1,\"read_per_token\":2}]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"a\",\"kind\":\"ddr\",\"capacity\":9,\"gbps\":1}],"
		"\"tensors\":[{\"name\":\"x\",\"tier\":\"a\",\"bytes\":1,\"read_per_token\":1},"
		"{\"name\":\"x\",\"tier\":\"a\",\"bytes\":1,\"read_per_token\":1}]}",
		/* the GPU computing a host tensor with no pcie tier; the CPU computing one in VRAM; a bad processor */
		"{\"version\":1,\"tiers\":[{\"name\":\"a\",\"kind\":\"ddr\",\"capacity\":9,\"gbps\":1},"
		"{\"name\":\"g\",\"kind\":\"vram\",\"capacity\":9,\"gbps\":1}],"
		"\"tensors\":[{\"name\":\"x\",\"tier\":\"a\",\"bytes\":1,\"read_per_token\":1,\"compute\":\"gpu\"}]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"g\",\"kind\":\"vram\",\"capacity\":9,\"gbps\":1}],"
		"\"tensors\":[{\"name\":\"x\",\"tier\":\"g\",\"bytes\":1,\"read_per_token\":1,\"compute\":\"cpu\"}]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"g\",\"kind\":\"vram\",\"capacity\":9,\"gbps\":1}],"
		"\"tensors\":[{\"name\":\"x\",\"tier\":\"g\",\"bytes\":1,\"read_per_token\":1,\"compute\":\"tpu\"}]}",
		/* a pcie tier holding a tensor, or with a capacity */
		"{\"version\":1,\"tiers\":[{\"name\":\"g\",\"kind\":\"vram\",\"capacity\":9,\"gbps\":1},"
		"{\"name\":\"p\",\"kind\":\"pcie\",\"capacity\":0,\"gbps\":1}],"
		"\"tensors\":[{\"name\":\"x\",\"tier\":\"p\",\"bytes\":1,\"read_per_token\":1}]}",
		"{\"version\":1,\"tiers\":[{\"name\":\"g\",\"kind\":\"vram\",\"capacity\":9,\"gbps\":1},"
		"{\"name\":\"p\",\"kind\":\"pcie\",\"capacity\":5,\"gbps\":1}],\"tensors\":[]}",
	};
	int nbad = 0;

	snprintf(path, sizeof(path), "%s/plan.json", dir);
	if (!tap_ok(!tm_plan_make(&p, g, &o) && (f = fopen(path, "w")) && !tm_plan_write_json(&p, f) &&
		    !fclose(f), "plan written as JSON"))
		return;
	tap_ok(!tm_plan_read_json(&q, path) && !tm_plan_match(&q, g), "read back and matching the model");
	same = q.n_tiers == p.n_tiers && q.n_tensors == p.n_tensors && q.overlap &&
	       near(q.sec_per_token, p.sec_per_token) && !memcmp(q.tier_bytes, p.tier_bytes, sizeof(p.tier_bytes));
	for (int i = 0; same && i < p.n_tiers; i++)
		same = !strcmp(q.tiers[i].name, p.tiers[i].name) && q.tiers[i].kind == p.tiers[i].kind &&
		       q.tiers[i].node == p.tiers[i].node && q.tiers[i].capacity == p.tiers[i].capacity &&
		       q.tiers[i].gbps == p.tiers[i].gbps && !strcmp(q.tiers[i].path, p.tiers[i].path) &&
		       !strcmp(q.tiers[i].group, p.tiers[i].group);
	for (size_t i = 0; same && i < p.n_tensors; i++)
		same = !strcmp(q.tensors[i].name, p.tensors[i].name) && q.tensors[i].tier == p.tensors[i].tier &&
		       q.tensors[i].bytes == p.tensors[i].bytes && q.tensors[i].cls == p.tensors[i].cls &&
		       q.tensors[i].type == p.tensors[i].type && !strcmp(q.tensors[i].why, p.tensors[i].why) &&
		       near(q.tensors[i].read_per_token, p.tensors[i].read_per_token);
	tap_ok(same, "JSON round trip: tiers, tensors, placement, reasons and prediction equal");
	q.tensors[3].bytes++;
	tap_ok(tm_plan_match(&q, g) == -EINVAL && strstr(tm_strerror(), q.tensors[3].name),
	       "a plan for another model is refused: %s", tm_strerror());
	tm_plan_free(&q);
	tm_plan_free(&p);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err;

		write_text(path, bad[i]);
		tm_clear_error();
		err = tm_plan_read_json(&q, path);
		if (!err || !*tm_strerror() || q.tensors) {
			printf("# accepted: %s\n", bad[i]);
			nbad++;
		}
		tm_plan_free(&q);
	}
	tap_ok(!nbad, "%zu malformed plan files refused with a message", sizeof(bad) / sizeof(bad[0]));
	unlink(path);
}

/* glm4moe-style: the last nextn_predict_layers layers predict further tokens; decode skips them */
static void test_mtp(const char *dir)
{
	struct tm_tier_spec t = tier("slow=pmem:1G@39");
	struct tm_plan_opts o = { .tiers = &t, .n_tiers = 1 };
	char path[96];
	struct tm_gguf g;
	struct tm_plan p;
	uint8_t *buf = NULL;
	size_t n = 0;
	bool ok;

	snprintf(path, sizeof(path), "%s/mtp.gguf", dir);
	ok = !write_moe(path, 1) && (buf = slurp(path, &n)) && !tm_gguf_parse_flags(&g, buf, n, TM_GGUF_HEADER_ONLY);
	if (ok) {
		ok = !tm_plan_make(&p, &g, &o);
		ok = ok && tm_plan_find(&p, "blk.2.attn_q.weight")->cls == TM_TC_MTP &&
		     tm_plan_find(&p, "blk.2.ffn_up_exps.weight")->read_per_token == 0 &&
		     tm_plan_find(&p, "blk.1.attn_q.weight")->cls == TM_TC_ATTN &&
		     strstr(tm_plan_find(&p, "blk.2.attn_q.weight")->why, "not read");
		tm_plan_free(&p);
		tm_gguf_free(&g);
	}
	tap_ok(ok, "nextn_predict_layers: the last layer is an MTP layer, read 0 bytes per token");
	free(buf);
	unlink(path);
}

/* Pipeline groups: per-row cost wants a group per stage, per-call cost few groups. */
static void test_groups(void)
{
	const struct tm_stage_cost rows2[] = { { 1, 1 }, { 1, 1 } }, uneven[] = { { 10, 0 }, { 1, 0 } };
	const struct tm_stage_cost calls[] = { { 1, 0 }, { 1, 0 } }, slight[] = { { 1, 0.001 }, { 1, 0.001 } };
	const struct tm_stage_cost rows3[] = { { 0, 1 }, { 0, 1 }, { 0, 1 } };
	struct tm_stage_fit f = { 0 }, same = { 0 }, down = { 0 };
	struct tm_stage_cost c = { -1, -1 };
	bool got;

	/* 4 rows over 2 stages: one group goes the whole way in 2 * (1 + 4); two of 2 keep both busy */
	tap_ok(tm_pipeline_round(rows2, 2, 4, 1) == 10 && tm_pipeline_round(rows2, 2, 4, 2) == 6 &&
	       tm_pipeline_groups(rows2, 2, 4, 1, 0.05) == 2, "per-row cost: a group per stage (round 10 -> 6)");
	tap_ok(tm_pipeline_round(rows2, 2, 5, 2) == 8, "5 rows in 2 groups: the larger group of 3 sets the round");
	tap_ok(tm_pipeline_groups(uneven, 2, 4, 2, 0.05) == 1 && tm_pipeline_round(uneven, 2, 4, 2) == 20,
	       "per-call cost on an uneven cut: one group (a second doubles the busy stage's calls)");
	tap_ok(tm_pipeline_groups(calls, 2, 4, 2, 0.05) == 2 && tm_pipeline_groups(calls, 2, 4, 1, 0.05) == 1,
	       "per-call cost alone: a tie, the groups in use stay");
	tap_ok(tm_pipeline_groups(slight, 2, 4, 1, 0.05) == 1 && tm_pipeline_groups(slight, 2, 4, 1, 0) == 2 &&
	       tm_pipeline_groups(slight, 2, 4, 2, 0.05) == 2,
	       "a change predicted to gain less than the margin is not made; with margin 0 it is");
	tap_ok(tm_pipeline_groups(rows3, 3, 6, 1, 0.05) == 3 && tm_pipeline_groups(rows3, 3, 2, 3, 0.05) == 2 &&
	       tm_pipeline_groups(rows3, 3, 0, 3, 0.05) == 1,
	       "3 stages: 3 groups of 6 rows, never more groups than rows");

	for (int i = 0; i < 8; i++) {
		tm_stage_fit_add(&f, 1 + i % 4, 0.5 + 0.25 * (1 + i % 4));
		tm_stage_fit_add(&same, 2, 1);
		tm_stage_fit_add(&down, 1 + i % 2, 1 - 0.1 * (i % 2));
	}
	got = tm_stage_fit_get(&f, &c);
	tap_ok(got && fabs(c.call_sec - 0.5) < 1e-9 && fabs(c.row_sec - 0.25) < 1e-9,
	       "a line through calls of 1-4 rows: 0.5 s a call, 0.25 s a row (got %g, %g)", c.call_sec, c.row_sec);
	tap_ok(!tm_stage_fit_get(&same, &c), "calls all of one size: no fit");
	got = tm_stage_fit_get(&down, &c);
	tap_ok(got && c.row_sec == 0 && c.call_sec > 0.9 && c.call_sec < 1,
	       "larger calls measured faster (noise): no per-row cost, the (weighted) mean per call (%g)",
	       c.call_sec);
}

int main(void)
{
	char dir[] = "/tmp/tm-plan-XXXXXX", path[64];
	struct tm_gguf g;
	uint8_t *buf = NULL;
	size_t n = 0;
	bool ok;

	test_spec_parse();
	test_classify();
	test_groups();
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/moe.gguf", dir);
	ok = !write_moe(path, 0) && (buf = slurp(path, &n)) && n < 8192 &&
	     !tm_gguf_parse_flags(&g, buf, n, TM_GGUF_HEADER_ONLY);
	if (!tap_ok(ok, "a header-only GGUF: %zu bytes, parsed", n)) {
		free(buf);
		return tap_done();
	}
	test_plan(&g);
	test_heat_and_overlap(&g);
	test_hybrid(&g, dir);
	test_cluster(&g);
	test_json(&g, dir);
	test_mtp(dir);
	tm_gguf_free(&g);
	free(buf);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
