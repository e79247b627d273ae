// SPDX-License-Identifier: MIT
/*
 * The placement planner. Decode reads every always-active weight once per
 * token and a routed expert's weights only when a token picks it, so what a
 * byte of fast memory is worth is the bytes of it read per token: its
 * "density" (1 for attention and dense FFNs, expert_used / expert_count for
 * routed experts under the uniform prior, one row in vocab for the token
 * embedding). Filling the fastest tier with the densest tensors first
 * minimises sum(read_i / gbps_i) under the capacities, up to the packing of
 * the last tensors that fit (first fit, largest first among equals).
 * Documentation/tiermem-plan.rst has the model.
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "lib/plan/plan_internal.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/plan.h"

static const char *const class_names[TM_TC_COUNT] = {
	[TM_TC_ATTN] = "attention",
	[TM_TC_NORM] = "norm",
	[TM_TC_EMBD] = "embedding",
	[TM_TC_OUTPUT] = "output",
	[TM_TC_ROUTER] = "router",
	[TM_TC_SHEXP] = "shared expert",
	[TM_TC_EXPERTS] = "routed experts",
	[TM_TC_FFN] = "dense FFN",
	[TM_TC_OTHER] = "other",
	[TM_TC_MTP] = "mtp layer",
};

/* Among tensors of equal density, the order the issue asks for. */
static const int class_rank[TM_TC_COUNT] = {
	[TM_TC_ATTN] = 0, [TM_TC_NORM] = 1, [TM_TC_OUTPUT] = 2, [TM_TC_ROUTER] = 3,
	[TM_TC_SHEXP] = 4, [TM_TC_EXPERTS] = 5, [TM_TC_FFN] = 6, [TM_TC_EMBD] = 7,
	[TM_TC_OTHER] = 8, [TM_TC_MTP] = 9,
};

const char *tm_tensor_class_name(enum tm_tensor_class cls)
{
	return (unsigned int)cls < TM_TC_COUNT ? class_names[cls] : "?";
}

static bool has(const char *s, const char *part)
{
	return strstr(s, part) != NULL;
}

enum tm_tensor_class tm_tensor_classify(const char *name)
{
	if (!strcmp(name, "token_embd.weight"))
		return TM_TC_EMBD;
	if (!strncmp(name, "output", 6))
		return TM_TC_OUTPUT;	/* output.weight, output_norm.weight */
	if (strncmp(name, "blk.", 4))
		return TM_TC_OTHER;
	/* qwen2moe's ffn_gate_inp_shexp gates the shared expert: it belongs with it */
	if (has(name, "_shexp"))
		return TM_TC_SHEXP;
	if (has(name, ".ffn_gate_inp") || has(name, ".exp_probs_b"))
		return TM_TC_ROUTER;
	if (has(name, "_exps"))
		return TM_TC_EXPERTS;
	if (has(name, ".attn_"))
		return TM_TC_ATTN;	/* projections, their norms, MLA's low-rank parts */
	if (has(name, "norm"))
		return TM_TC_NORM;
	if (has(name, ".ffn_"))
		return TM_TC_FFN;
	return TM_TC_OTHER;
}

int plan_layer_of(const char *name)
{
	char *end;
	long l;

	if (strncmp(name, "blk.", 4))
		return -1;
	l = strtol(name + 4, &end, 10);
	return end != name + 4 && *end == '.' && l >= 0 && l < (1 << 20) ? (int)l : -1;
}

static int arch_key_u32(const struct tm_gguf *g, const char *suffix, uint32_t *out)
{
	struct tm_gguf_str arch;
	char key[128];

	if (tm_gguf_get_str(g, "general.architecture", &arch) || arch.len > 64)
		return -ENOENT;
	snprintf(key, sizeof(key), "%.*s.%s", (int)arch.len, arch.ptr, suffix);
	return tm_gguf_get_u32(g, key, out);
}

/* Does the heat cover this layer's n_exp experts? */
static bool has_heat(const struct tm_plan_opts *o, int layer, int64_t n_exp)
{
	return o->expert_heat && layer >= 0 && layer < o->heat_layers && n_exp == o->heat_experts;
}

/* The chance a token uses expert e of layer (has_heat), in [0, 1]. */
static double heat_of(const struct tm_plan_opts *o, int layer, int e)
{
	float h = o->expert_heat[(size_t)layer * (size_t)o->heat_experts + (size_t)e];

	return h > 0 ? (h < 1 ? h : 1) : 0;
}

/* Expected bytes of t read per decoded token. */
static int read_per_token(const struct tm_gguf *g, const struct tm_gguf_tensor *gt,
			  struct tm_plan_tensor *t, bool tied, const struct tm_plan_opts *o)
{
	double bytes = (double)gt->nbytes;
	uint32_t used;
	int64_t n_exp;
	int layer, err;

	switch (t->cls) {
	case TM_TC_EMBD:
		/* one row per token, unless it is also the output matrix */
		t->read_per_token = tied || gt->n_dims < 2 || gt->ne[1] < 1 ? bytes : bytes / (double)gt->ne[1];
		return 0;
	case TM_TC_MTP:
		t->read_per_token = 0;
		return 0;
	case TM_TC_EXPERTS:
		n_exp = gt->n_dims >= 3 ? gt->ne[2] : 1;
		layer = plan_layer_of(t->name);
		if (has_heat(o, layer, n_exp)) {
			double sum = 0;

			for (int e = 0; e < o->heat_experts; e++)
				sum += heat_of(o, layer, e);
			t->read_per_token = bytes / (double)n_exp * sum;
			return 0;
		}
		err = arch_key_u32(g, "expert_used_count", &used);
		if (err)
			return tm_err(-EINVAL, "plan: %s holds experts but the model has no readable "
				      "ARCH.expert_used_count", t->name);
		if (used > n_exp)
			return tm_err(-EINVAL, "plan: expert_used_count %u exceeds the %lld experts of %s",
				      used, (long long)n_exp, t->name);
		t->read_per_token = bytes * used / (double)n_exp;
		return 0;
	default:
		t->read_per_token = bytes;
		return 0;
	}
}

/* Layers by tensor names (block_count may be absent from a header-only test file). */
static int count_layers(const struct tm_gguf *g)
{
	int n = 0;

	for (size_t i = 0; i < g->n_tensors; i++) {
		char name[64];
		size_t len = g->tensors[i].name.len < sizeof(name) - 1 ? g->tensors[i].name.len : sizeof(name) - 1;
		int l;

		memcpy(name, g->tensors[i].name.ptr, len);
		name[len] = 0;
		l = plan_layer_of(name);
		n = l + 1 > n ? l + 1 : n;
	}
	return n;
}

int tm_plan_moe_layers(const struct tm_gguf *g)
{
	int n_layer = count_layers(g), n = 0;

	for (int l = 0; l < n_layer; l++)
		for (size_t i = 0; i < g->n_tensors; i++) {
			char name[64];
			size_t len = g->tensors[i].name.len < sizeof(name) - 1 ? g->tensors[i].name.len : sizeof(name) - 1;

			memcpy(name, g->tensors[i].name.ptr, len);
			name[len] = 0;
			if (plan_layer_of(name) == l && tm_tensor_classify(name) == TM_TC_EXPERTS) {
				n++;
				break;
			}
		}
	return n;
}

bool tm_stage_holds(const char *name, bool tied, int first, int last, int n_layer)
{
	int l = plan_layer_of(name);

	/* layers past the split (multi-token prediction) stay with the last stage */
	if (l >= 0)
		return l >= first && (l < last || last == n_layer);
	if (!strncmp(name, "output", 6))
		return last == n_layer;
	/* a tied embedding is also the last stage's classifier */
	if (!strcmp(name, "token_embd.weight"))
		return first == 0 || (tied && last == n_layer);
	return true;	/* rope_freqs and the like: every stage's layers read them */
}

/* Pipeline: does tensor name belong to this node's stage (layers [first[rank], first[rank + 1]))? */
static bool on_stage(const char *name, bool tied, const int *first, const struct tm_plan_opts *o)
{
	return tm_stage_holds(name, tied, first[o->rank], first[o->rank + 1], first[o->nodes]);
}

/*
 * Expert parallel: the share of a routed-expert tensor node o->rank holds,
 * its experts by o->assign (else e % nodes), read as often as the heat
 * says each is used (else each as often).
 */
static void expert_share(const struct tm_gguf_tensor *gt, struct tm_plan_tensor *t, const struct tm_plan_opts *o)
{
	int64_t n_exp = gt->n_dims >= 3 ? gt->ne[2] : 1, mine = 0;
	int l = plan_layer_of(t->name);
	const struct tm_xassign *a = o->assign;
	double used = 0;

	if (a && (l < 0 || l >= a->n_layer || n_exp != a->n_expert))
		a = NULL;
	for (int e = 0; e < n_exp; e++) {
		if ((a ? tm_xassign_owner(a, l, e) : e % o->nodes) != o->rank)
			continue;
		mine++;
		used += has_heat(o, l, n_exp) ? heat_of(o, l, e) : 0;
	}
	t->bytes = (uint64_t)((double)gt->nbytes * (double)mine / (double)n_exp + 0.5);
	if (has_heat(o, l, n_exp))
		t->read_per_token = (double)gt->nbytes / (double)n_exp * used;
	else
		t->read_per_token *= (double)mine / (double)n_exp;
}

/*
 * Tensor parallel (--split experts,dense, lib/mpi/dense.c): a dense
 * matrix's share on the node with the most, ceil(groups / nodes) of its
 * 16-row groups, and its output to gather. Vectors, matrices of fewer
 * groups than nodes, the embedding (one row read), routers and 3-D tensors
 * (routed experts, split by expert; MLA's per-head attn_k_b/attn_v_b) are
 * not split, as decode splits none of them.
 */
static void dense_share(struct tm_plan *p, const struct tm_gguf_tensor *gt, struct tm_plan_tensor *t, int nodes)
{
	double rows, groups, mine;

	if (!tm_tp_splits(gt, nodes))
		return;
	rows = (double)gt->ne[1];
	groups = ceil(rows / 16);
	mine = ceil(groups / nodes) * 16;
	mine = mine < rows ? mine : rows;
	t->bytes = (uint64_t)((double)gt->nbytes * mine / rows + 0.5);
	t->read_per_token *= mine / rows;
	p->tp_gathers++;
	p->tp_gather_bytes += rows * sizeof(float);
}

/*
 * glm4moe and others keep their multi-token-prediction layers last: how many
 * (0 without them), and the layers before them (by block_count, or by tensor
 * names when a header-only test file lacks it).
 */
static uint32_t mtp_layers(const struct tm_gguf *g, uint32_t *n_layer)
{
	uint32_t n_mtp = 0;

	if (arch_key_u32(g, "block_count", n_layer))
		*n_layer = (uint32_t)count_layers(g);
	if (arch_key_u32(g, "nextn_predict_layers", &n_mtp) || n_mtp > *n_layer)
		n_mtp = 0;
	return n_mtp;
}

/*
 * Expected bytes per token (the uniform prior) of each layer below n_layer
 * (layer[]), of the first stage's extras and the last's. Tensors of no
 * layer that every stage holds (tm_stage_holds) weigh on none.
 */
static int stage_reads(const struct tm_gguf *g, int n_layer, double *layer, double *head, double *tail)
{
	const struct tm_plan_opts uniform = { 0 };
	bool tied = !tm_gguf_tensor(g, "output.weight");
	int err;

	*head = *tail = 0;
	for (size_t i = 0; i < g->n_tensors; i++) {
		const struct tm_gguf_tensor *gt = &g->tensors[i];
		struct tm_plan_tensor t = { 0 };
		int l;

		if (gt->name.len >= sizeof(t.name))
			continue;	/* fill_tensors refuses it */
		memcpy(t.name, gt->name.ptr, gt->name.len);
		t.cls = tm_tensor_classify(t.name);
		if ((err = read_per_token(g, gt, &t, false, &uniform)))
			return err;
		l = plan_layer_of(t.name);
		if (l >= 0)
			layer[l] += l < n_layer ? t.read_per_token : 0;
		else if (t.cls == TM_TC_EMBD)
			*head += t.read_per_token, *tail += tied ? (double)gt->nbytes : 0;
		else if (t.cls == TM_TC_OUTPUT)
			*tail += t.read_per_token;
	}
	return 0;
}

int tm_plan_stages(const struct tm_gguf *g, int n_layer, int nodes, int *first)
{
	double *sum, *best, head, tail;
	int *from, err = 0;

	if (nodes < 1 || n_layer < nodes)
		return tm_err(-EINVAL, "cannot split %d layers over %d nodes: each needs a layer at least",
			      n_layer, nodes);
	sum = calloc((size_t)n_layer + 1, sizeof(*sum));
	best = calloc((size_t)nodes * (n_layer + 1), sizeof(*best));
	from = calloc((size_t)nodes * (n_layer + 1), sizeof(*from));
	if (!sum || !best || !from) {
		err = tm_err(-ENOMEM, "plan: out of memory");
		goto out;
	}
	if ((err = stage_reads(g, n_layer, sum + 1, &head, &tail)))
		goto out;
	for (int l = 0; l < n_layer; l++)
		sum[l + 1] += sum[l];
	/*
	 * best[r][j]: the smallest largest stage when stages 0..r hold layers
	 * [0, j); from[r][j] where stage r starts. Exact, and small: L^2 * N.
	 */
	for (int r = 0; r < nodes; r++)
		for (int j = r + 1; j <= n_layer - (nodes - 1 - r); j++) {
			double extra = (r ? 0 : head) + (r == nodes - 1 ? tail : 0);
			size_t at = (size_t)r * (n_layer + 1) + j;

			best[at] = -1;
			for (int i = r ? r : 0; i < j && (r || !i); i++) {
				double stage = sum[j] - sum[i] + extra;
				double worst = r ? best[at - (n_layer + 1) - j + i] : 0;

				worst = worst > stage ? worst : stage;
				if (best[at] < 0 || worst < best[at]) {
					best[at] = worst;
					from[at] = i;
				}
			}
		}
	first[nodes] = n_layer;
	for (int r = nodes - 1; r >= 0; r--)
		first[r] = from[(size_t)r * (n_layer + 1) + first[r + 1]];
out:
	free(sum);
	free(best);
	free(from);
	return err;
}

static int fill_placed(struct tm_plan *p, const struct tm_gguf *g, const struct tm_plan_opts *o,
		       const int *first)
{
	size_t k = 0;
	bool tied = !tm_gguf_tensor(g, "output.weight");
	uint32_t n_layer, n_mtp = mtp_layers(g, &n_layer);
	int err;

	p->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*p->tensors));
	if (!p->tensors)
		return tm_err(-ENOMEM, "plan: out of memory for %llu tensors", (unsigned long long)g->n_tensors);
	for (size_t i = 0; i < g->n_tensors; i++) {
		const struct tm_gguf_tensor *gt = &g->tensors[i];
		struct tm_plan_tensor *t = &p->tensors[k];

		if (gt->name.len >= sizeof(t->name))
			return tm_err(-EINVAL, "plan: tensor name '%.*s...' is longer than %zu bytes",
				      40, gt->name.ptr, sizeof(t->name) - 1);
		memset(t->name, 0, sizeof(t->name));
		memcpy(t->name, gt->name.ptr, gt->name.len);
		if (first && !on_stage(t->name, tied, first, o))
			continue;
		k++;
		p->n_tensors = k;
		t->cls = tm_tensor_classify(t->name);
		if (n_mtp && plan_layer_of(t->name) >= (int)(n_layer - n_mtp))
			t->cls = TM_TC_MTP;
		t->type = (int)gt->type;
		t->bytes = gt->nbytes;
		t->tier = -1;
		t->ot_gpu = -1;
		if ((err = read_per_token(g, gt, t, tied, o)))
			return err;
		if (o->nodes > 1 && !o->split_layers && t->cls == TM_TC_EXPERTS) {
			t->place_density = gt->nbytes ? t->read_per_token / (double)gt->nbytes : 0;
			expert_share(gt, t, o);
		}
		else if (o->nodes > 1 && !o->split_layers && o->tensor_parallel)
			dense_share(p, gt, t, o->nodes);
	}
	return 0;
}

/* n_embd: ARCH.embedding_length, else the embedding's row length (0: neither). */
static int embd_width(const struct tm_gguf *g)
{
	const struct tm_gguf_tensor *t = tm_gguf_tensor(g, "token_embd.weight");
	uint32_t n = 0;

	if (!arch_key_u32(g, "embedding_length", &n) && n && n < (1u << 30))
		return (int)n;
	return t && t->ne[0] < (1 << 30) ? (int)t->ne[0] : 0;
}

int plan_gpu_tiers(const struct tm_tier_spec *t, int n, int *gpu, int *pcie)
{
	*gpu = *pcie = -1;
	for (int i = 0; i < n; i++) {
		int *slot = t[i].kind == TM_KIND_VRAM ? gpu : t[i].kind == TM_KIND_PCIE ? pcie : NULL;

		if (slot && *slot >= 0)
			return tm_err(-EINVAL, "plan: two %s tiers (%s, %s): the planner models one GPU",
				      tm_tier_kind_name(t[i].kind), t[*slot].name, t[i].name);
		if (slot)
			*slot = i;
	}
	if (*pcie >= 0 && *gpu < 0)
		return tm_err(-EINVAL, "plan: pcie tier %s without a vram tier: give the GPU too (NAME=vram:SIZE@GBPS)",
			      t[*pcie].name);
	return 0;
}

static int fill_tensors(struct tm_plan *p, const struct tm_gguf *g, const struct tm_plan_opts *o)
{
	uint32_t n_layer, n_mtp = mtp_layers(g, &n_layer);
	int err, *first = NULL;

	if (o->nodes > 1 && o->split_layers) {
		first = calloc((size_t)o->nodes + 1, sizeof(*first));
		if (!first)
			return tm_err(-ENOMEM, "plan: out of memory");
		if ((err = tm_plan_stages(g, (int)(n_layer - n_mtp), o->nodes, first))) {
			free(first);
			return err;
		}
		p->stage_first = first[o->rank];
		p->stage_last = first[o->rank + 1];
	}
	err = fill_placed(p, g, o, first);
	free(first);
	return err;
}

static int check_tiers(const struct tm_plan_opts *o)
{
	int gpu, pcie;

	if (o->n_tiers < 1 || o->n_tiers > TM_PLAN_MAX_TIERS)
		return tm_err(-EINVAL, "plan: give 1 to %d tiers (--tier NAME=KIND:SIZE[@GBPS])", TM_PLAN_MAX_TIERS);
	for (int i = 0; i < o->n_tiers; i++) {
		const struct tm_tier_spec *t = &o->tiers[i];

		if (!t->name[0] || (!t->capacity && t->kind != TM_KIND_PCIE))
			return tm_err(-EINVAL, "plan: tier %d has no name or no size", i);
		if (!(t->gbps > 0))
			return tm_err(-EINVAL, "plan: tier %s has no bandwidth (give @GBPS)", t->name);
		for (int j = 0; j < i; j++)
			if (!strcmp(o->tiers[j].name, t->name))
				return tm_err(-EINVAL, "plan: two tiers are named %s", t->name);
	}
	return plan_gpu_tiers(o->tiers, o->n_tiers, &gpu, &pcie);
}

int tm_plan_tier(const struct tm_plan *p, const char *name)
{
	for (int i = 0; i < p->n_tiers; i++)
		if (!strcmp(p->tiers[i].name, name))
			return i;
	return -1;
}

/* Indices of the tiers that hold tensors (not pcie), fastest first (ties: the order given); how many. */
static int speed_order(const struct tm_plan *p, int *order)
{
	int n = 0;

	for (int i = 0; i < p->n_tiers; i++) {
		int j = n++;

		if (p->tiers[i].kind == TM_KIND_PCIE) {
			n--;
			continue;
		}
		while (j > 0 && p->tiers[order[j - 1]].gbps < p->tiers[i].gbps) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	return n;
}

static uint64_t padded(uint64_t bytes, uint64_t align)
{
	return align > 1 ? (bytes + align - 1) / align * align : bytes;
}

struct placer {
	struct tm_plan *p;
	int order[TM_PLAN_MAX_TIERS], n_order;	/* the tiers that hold tensors, fastest first */
	uint64_t align;
	uint64_t used[TM_PLAN_MAX_TIERS];
	uint64_t missing;		/* bytes that fit nowhere */
	const char *first_missing;
};

static bool room(const struct placer *pl, int tier, const struct tm_plan_tensor *t)
{
	/* -ot REGEX=CPU or =PCIE: host memory */
	if (t->ot_gpu >= 0 && tier == pl->p->gpu_tier)
		return false;
	return pl->p->tiers[tier].capacity - pl->used[tier] >= padded(t->bytes, pl->align);
}

static void put(struct placer *pl, struct tm_plan_tensor *t, int tier)
{
	t->tier = tier;
	pl->used[tier] += padded(t->bytes, pl->align);
}

static void lost(struct placer *pl, const struct tm_plan_tensor *t)
{
	if (!pl->missing)
		pl->first_missing = t->name;
	pl->missing += padded(t->bytes, pl->align);
}

/* -ot: applied before anything else, so they take their tier's room first. */
static int apply_overrides(struct placer *pl, const struct tm_plan_opts *o)
{
	struct tm_plan *p = pl->p;

	for (int k = 0; k < o->n_ot; k++) {
		int tier = tm_plan_tier(p, o->ot[k].tier), on = -1;
		regex_t re;

		/* llama.cpp's =CPU, and the pcie tier: a processor; the plan picks the host tier */
		if (tier < 0 && !strcmp(o->ot[k].tier, "CPU"))
			on = 0;
		else if (tier >= 0 && tier == p->pcie_tier)
			on = 1;
		if (tier < 0 && on < 0)
			return tm_err(-EINVAL, "plan: -ot %s=%s names no tier (the tiers are given with --tier; "
				      "CPU: host memory, computed by the CPU)", o->ot[k].regex, o->ot[k].tier);
		if (regcomp(&re, o->ot[k].regex, REG_EXTENDED | REG_NOSUB))
			return tm_err(-EINVAL, "plan: -ot %s: bad regex", o->ot[k].regex);
		for (size_t i = 0; i < p->n_tensors; i++) {
			struct tm_plan_tensor *t = &p->tensors[i];

			/* the first override that matches wins, as in llama.cpp */
			if (t->tier >= 0 || t->why[0] || regexec(&re, t->name, 0, NULL, 0))
				continue;
			snprintf(t->why, sizeof(t->why), "-ot %.40s", o->ot[k].regex);
			if (on >= 0)
				t->ot_gpu = (int8_t)on;		/* placed with the rest, on a host tier */
			else if (room(pl, tier, t))
				put(pl, t, tier);
			else
				lost(pl, t);
		}
		regfree(&re);
	}
	return 0;
}

static double density(const struct tm_plan_tensor *t)
{
	return t->bytes ? t->read_per_token / (double)t->bytes : 0;
}

/* What a tensor's place is chosen by: its density, or the one it is given (place_density). */
static double worth(const struct tm_plan_tensor *t)
{
	return t->place_density > 0 ? t->place_density : density(t);
}

static int by_worth(const void *a, const void *b, void *arg)
{
	const struct tm_plan_tensor *ts = arg;
	const struct tm_plan_tensor *x = &ts[*(const size_t *)a], *y = &ts[*(const size_t *)b];
	double dx = worth(x), dy = worth(y);

	if (dx != dy)
		return dx > dy ? -1 : 1;
	if (class_rank[x->cls] != class_rank[y->cls])
		return class_rank[x->cls] - class_rank[y->cls];
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static void explain(struct tm_plan_tensor *t, const struct tm_plan *p, int fastest)
{
	char what[40];

	if (t->why[0])
		return;
	if (t->cls == TM_TC_EXPERTS)
		snprintf(what, sizeof(what), "routed experts, %.3g%% read/token", 100 * density(t));
	else if (t->cls == TM_TC_EMBD && density(t) < 1)
		snprintf(what, sizeof(what), "embedding, one row/token");
	else if (t->cls == TM_TC_OTHER)
		snprintf(what, sizeof(what), "unclassified, read every token");
	else if (t->cls == TM_TC_MTP)
		snprintf(what, sizeof(what), "mtp layer, not read by decode");
	else
		snprintf(what, sizeof(what), "%s, read every token", class_names[t->cls]);
	if (p->layer_order)
		snprintf(t->why, sizeof(t->why), "layer order");
	else if (t->gpu && t->tier != p->gpu_tier)
		snprintf(t->why, sizeof(t->why), "%s; GPU over PCIe", what);
	else if (t->tier == fastest || t->tier < 0)
		snprintf(t->why, sizeof(t->why), "%s", what);
	else
		snprintf(t->why, sizeof(t->why), "%s; faster tiers full", what);
}

/* Not placed yet: no override, or one that chose only the processor. */
static bool unplaced(const struct tm_plan_tensor *t)
{
	return t->tier < 0 && (!t->why[0] || t->ot_gpu >= 0);
}

/* The planner's order: densest first, each to the fastest tier with room. */
static int place_by_worth(struct placer *pl)
{
	struct tm_plan *p = pl->p;
	size_t *idx = malloc((p->n_tensors ? p->n_tensors : 1) * sizeof(*idx));
	size_t n = 0;

	if (!idx)
		return tm_err(-ENOMEM, "plan: out of memory");
	for (size_t i = 0; i < p->n_tensors; i++)
		if (unplaced(&p->tensors[i]))
			idx[n++] = i;
	qsort_r(idx, n, sizeof(*idx), by_worth, p->tensors);
	for (size_t k = 0; k < n; k++) {
		struct tm_plan_tensor *t = &p->tensors[idx[k]];
		int j = 0;

		while (j < pl->n_order && !room(pl, pl->order[j], t))
			j++;
		if (j < pl->n_order)
			put(pl, t, pl->order[j]);
		else
			lost(pl, t);
	}
	free(idx);
	return 0;
}

/* The naive placement: GGUF order, a tier closed once a tensor spilled past it (like -ngl). */
static void place_in_order(struct placer *pl)
{
	struct tm_plan *p = pl->p;
	int j = 0, h = 0;	/* the open tier, and the open host tier for -ot CPU/PCIE */

	for (size_t i = 0; i < p->n_tensors; i++) {
		struct tm_plan_tensor *t = &p->tensors[i];
		int *at = t->ot_gpu >= 0 ? &h : &j;

		if (!unplaced(t))
			continue;
		while (*at < pl->n_order && !room(pl, pl->order[*at], t))
			(*at)++;
		if (*at < pl->n_order)
			put(pl, t, pl->order[*at]);
		else
			lost(pl, t);
	}
}

double tm_plan_cost(const struct tm_plan *p, const double *tier_read)
{
	double total = 0;
	bool done[TM_PLAN_MAX_TIERS] = { false };

	if (!p->overlap) {
		/* one tensor at a time: tiers take turns, channels shared or not */
		for (int i = 0; i < p->n_tiers; i++)
			total += tier_read[i] / (p->tiers[i].gbps * 1e9);
		return total;
	}
	/*
	 * Concurrent reads: each channel group streams at once with the
	 * others, so the slowest group sets the pace. Inside a group every
	 * tier is held to its own bandwidth and all of them together to the
	 * channels', taken as the fastest member's (the DDR that saturates
	 * them).
	 */
	for (int i = 0; i < p->n_tiers; i++) {
		double own = 0, sum = 0, cap = 0;

		if (done[i])
			continue;
		for (int j = i; j < p->n_tiers; j++) {
			double t;

			if (j != i && (!p->tiers[i].group[0] || strcmp(p->tiers[i].group, p->tiers[j].group)))
				continue;
			done[j] = true;
			t = tier_read[j] / (p->tiers[j].gbps * 1e9);
			own = own > t ? own : t;
			sum += tier_read[j];
			cap = cap > p->tiers[j].gbps ? cap : p->tiers[j].gbps;
		}
		if (sum / (cap * 1e9) > own)
			own = sum / (cap * 1e9);
		total = total > own ? total : own;
	}
	return total;
}

static int totals(struct tm_plan *p, int fastest)
{
	int err;

	for (size_t i = 0; i < p->n_tensors; i++) {
		struct tm_plan_tensor *t = &p->tensors[i];

		p->tier_bytes[t->tier] += t->bytes;
		p->tier_count[t->tier]++;
		p->tier_read[t->tier] += t->read_per_token;
	}
	if ((err = plan_choose_processors(p)))
		return err;
	for (size_t i = 0; i < p->n_tensors; i++)
		explain(&p->tensors[i], p, fastest);
	return 0;
}

int tm_plan_make(struct tm_plan *p, const struct tm_gguf *g, const struct tm_plan_opts *o)
{
	struct placer pl = { .p = p };
	int err;

	memset(p, 0, sizeof(*p));
	if ((err = check_tiers(o)))
		return err;
	if (o->nodes > 1 && (o->rank < 0 || o->rank >= o->nodes))
		return tm_err(-EINVAL, "plan: rank %d of %d nodes", o->rank, o->nodes);
	p->n_tiers = o->n_tiers;
	memcpy(p->tiers, o->tiers, (size_t)o->n_tiers * sizeof(*o->tiers));
	p->overlap = o->overlap;
	p->layer_order = o->layer_order;
	p->n_embd = embd_width(g);
	if (o->nodes > 1) {
		p->nodes = o->nodes;
		p->rank = o->rank;
		p->split_layers = o->split_layers;
		p->tensor_parallel = o->tensor_parallel && !o->split_layers;
	}
	plan_gpu_tiers(p->tiers, p->n_tiers, &p->gpu_tier, &p->pcie_tier);
	pl.align = o->align ? o->align : g->alignment;
	pl.n_order = speed_order(p, pl.order);

	if ((err = fill_tensors(p, g, o)) || (err = apply_overrides(&pl, o)))
		goto fail;
	if (o->layer_order)
		place_in_order(&pl);
	else if ((err = place_by_worth(&pl)))
		goto fail;
	if (pl.missing) {
		err = tm_err(-ENOSPC, "plan: the model does not fit the tiers: %llu bytes (%.2f GB) missing "
			     "(first tensor left out: %s)", (unsigned long long)pl.missing,
			     pl.missing / 1e9, pl.first_missing);
		goto fail;
	}
	if (!(err = totals(p, pl.order[0])))
		return 0;
fail:
	tm_plan_free(p);
	return err;
}

const struct tm_plan_tensor *tm_plan_find(const struct tm_plan *p, const char *name)
{
	for (size_t i = 0; i < p->n_tensors; i++)
		if (!strcmp(p->tensors[i].name, name))
			return &p->tensors[i];
	return NULL;
}

void tm_plan_free(struct tm_plan *p)
{
	free(p->tensors);
	memset(p, 0, sizeof(*p));
}
