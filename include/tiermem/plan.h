/* SPDX-License-Identifier: MIT */
/*
 * The placement planner: which tier each tensor of a model goes to, and the
 * tok/s that placement should give. Decode is bandwidth-bound, so the
 * prediction is
 *
 *	seconds per token = sum over tiers of (bytes read per token from it / its GB/s)
 *
 * (tiers that share memory channels are modelled as described in
 * Documentation/tiermem-plan.rst), minimised under the tiers' capacities.
 *
 * A tier, as the user names it on the command line:
 *
 *	--tier NAME=KIND:SIZE[@GBPS][,ch=GROUP][,path=PATH]
 *	--tier NAME=pcie:@GBPS
 *	KIND: ddr | pmem | node:N | file | vram | pcie
 *	SIZE: bytes with an optional K, M, G, T suffix (powers of 1024)
 *	GBPS: read bandwidth in GB/s (1e9 B/s); absent: the caller fills it in
 *	ch=GROUP: tiers naming the same group share memory channels
 *	path=PATH: where a pmem or file tier keeps its data (the rest of the
 *	argument, commas included; empty: the store's default)
 *	pcie: the GPU's link to host memory, which holds nothing (no SIZE): a
 *	tensor the GPU computes from a host tier is read through it
 *
 * With a vram tier the plan is a CPU/GPU hybrid: each tensor is computed
 * where it lives (VRAM: the GPU; a host tier: the CPU) or, with a pcie
 * tier, by the GPU reading its host tier in place over PCIe. The cost model
 * then follows the hybrid forward pass (Documentation/tiermem-plan.rst,
 * "The GPU"): each processor's work adds up, except that a layer's routed
 * experts and its shared experts run at once when they are on different
 * processors, and a layer with work on both pays a hand-off of the hidden
 * state.
 *
 * (the cost model and channel groups: Documentation/tiermem-plan.rst)
 *
 * The planner never touches memory: it reads a GGUF's tensor table (a
 * header-only GGUF does) and writes a plan that `tiermem import` carries out
 * and `tiermem plan` prints.
 */
#ifndef TIERMEM_PLAN_H
#define TIERMEM_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tiermem/gguf.h"

enum tm_tier_kind {
	TM_KIND_DDR,	/* pinned DDR: /dev/tiermem DDR region, else anonymous 2 MiB pages */
	TM_KIND_PMEM,	/* /dev/tiermem PMEM region, a devdax device, or a file on a DAX fs */
	TM_KIND_NODE,	/* anonymous memory bound to a NUMA node: CXL, KMEM Optane, other socket */
	TM_KIND_FILE,	/* a plain file standing in for PMEM: "file (not persistent memory)" */
	TM_KIND_VRAM,	/* GPU memory: what is there, the GPU computes */
	TM_KIND_PCIE,	/* the GPU's link to host memory: no capacity, a bandwidth */
	TM_KIND_COUNT,
};

#define TM_PLAN_MAX_TIERS 8
/*
 * One hand-off of the hidden state between GPU and CPU and back (two copies
 * and a synchronisation), apart from the copies' bytes over the pcie tier.
 * An estimate, not measured here: no GPU (Documentation/tiermem-plan.rst).
 */
#define TM_PLAN_HANDOFF_SEC 20e-6
#define TM_TIER_NAME_MAX 32

struct tm_tier_spec {
	char name[TM_TIER_NAME_MAX];	/* the user's name for it: "ddr", "optane", "cxl0" */
	enum tm_tier_kind kind;
	int node;			/* node:N */
	char path[256];			/* pmem/file: device or directory; empty: the default */
	uint64_t capacity;		/* bytes */
	double gbps;			/* read bandwidth, GB/s (1e9 B/s); 0: not known yet */
	bool gbps_given;		/* from @GBPS rather than a default or a measurement */
	char group[TM_TIER_NAME_MAX];	/* memory-channel group; "" = channels of its own */
};

/*
 * llama.cpp's -ot REGEX=TIER: tensors whose name matches go to TIER, whatever
 * the plan says. TIER "CPU" (unless a tier has that name), as llama.cpp spells
 * -ot exps=CPU: host memory, computed by the CPU; the pcie tier's name: host
 * memory, computed by the GPU over PCIe. The plan picks the host tier.
 */
struct tm_override {
	char regex[256];
	char tier[TM_TIER_NAME_MAX];
};

/* What a tensor is, for the order in which tiers are filled. */
enum tm_tensor_class {
	TM_TC_ATTN,		/* attention projections and norms: read every token */
	TM_TC_NORM,		/* other norms and small vectors */
	TM_TC_EMBD,		/* token embedding: one row per token */
	TM_TC_OUTPUT,		/* output norm and classifier */
	TM_TC_ROUTER,		/* MoE router */
	TM_TC_SHEXP,		/* shared experts: read every token */
	TM_TC_EXPERTS,		/* routed experts: n_expert_used / n_expert of them per token */
	TM_TC_FFN,		/* dense FFN */
	TM_TC_OTHER,		/* anything else: assumed read whole every token */
	TM_TC_MTP,		/* multi-token-prediction layers (ARCH.nextn_predict_layers): decode never reads them */
	TM_TC_COUNT,
};

struct tm_plan_tensor {
	char name[64];
	enum tm_tensor_class cls;
	int type;			/* GGML type */
	uint64_t bytes;			/* the whole tensor */
	double read_per_token;		/* expected bytes of it read per decoded token */
	/*
	 * > 0: placed by this read density instead of its own: an expert
	 * split's share of a routed-expert tensor takes the whole tensor's, so
	 * every node of the cluster ranks the layers alike and puts the same
	 * layers' experts in the same tiers (each layer waits for its slowest
	 * node: one node's layer in PMEM would set the pace)
	 */
	double place_density;
	int tier;			/* index in tm_plan.tiers */
	char why[64];			/* why it went there, for the printed plan */
	bool gpu;			/* computed by the GPU: in VRAM, or read over the pcie tier */
	int8_t ot_gpu;			/* -ot chose the processor (1 GPU over PCIe, 0 CPU); -1: the plan */
};

/* Where a hybrid plan's time goes, per token (tm_plan.sec_per_token is their sum). */
struct tm_plan_hybrid {
	double gpu_sec;			/* GPU work outside the MoE phase: VRAM and PCIe reads */
	double cpu_sec;			/* CPU work outside the MoE phase (tm_plan_cost) */
	double moe_sec;			/* every layer's routed + shared experts, overlapped where they can be */
	double moe_serial_sec;		/* ... had the two processors taken turns */
	double handoff_sec;		/* hand-offs of the hidden state */
	int handoffs;			/* per token: layers with work on both processors */
	double vram_read, pcie_read;	/* bytes per token the GPU reads from VRAM, over PCIe */
};

struct tm_plan {
	int n_tiers;
	struct tm_tier_spec tiers[TM_PLAN_MAX_TIERS];
	size_t n_tensors;
	struct tm_plan_tensor *tensors;	/* in the GGUF's tensor order */
	/* per tier */
	uint64_t tier_bytes[TM_PLAN_MAX_TIERS];
	size_t tier_count[TM_PLAN_MAX_TIERS];
	double tier_read[TM_PLAN_MAX_TIERS];	/* bytes read per token */
	double sec_per_token;			/* the prediction; tok/s = 1 / it */
	bool overlap;				/* the cost model it was made under */
	bool layer_order;			/* the naive placement (for comparison) */
	int gpu_tier, pcie_tier;		/* the vram and pcie tiers, -1 when none */
	int n_embd;				/* the hidden state a hand-off copies (0: unknown) */
	struct tm_plan_hybrid hy;		/* with a vram tier */
	/* a node of a cluster (tm_plan_opts.nodes > 1): which, and how split */
	int nodes, rank;
	bool split_layers, tensor_parallel;
	int stage_first, stage_last;		/* a pipeline node's: its layers [first, last) */
	/* tensor_parallel: matrices split per token, and the bytes of their whole outputs (f32) */
	int tp_gathers;
	double tp_gather_bytes;
};

struct tm_plan_opts {
	const struct tm_tier_spec *tiers;	/* fastest first is not required */
	int n_tiers;
	const struct tm_override *ot;
	int n_ot;
	/*
	 * Reads from different tiers proceed at the same time (a prefetcher
	 * streams one tier while another is computed on). false: today's
	 * forward pass, which reads one tensor at a time with every thread.
	 */
	bool overlap;
	/* Fill the tiers in the GGUF's tensor order instead (the naive placement). */
	bool layer_order;
	/*
	 * Expert heat: heat[layer * heat_experts + e] is the probability that
	 * expert e of that layer is used by a token. NULL: the uniform prior,
	 * expert_used_count / expert_count. Placement is per tensor (a layer's
	 * experts are one tensor), so heat changes how much a layer's expert
	 * tensors are worth, not which experts of a layer go where.
	 */
	const float *expert_heat;
	int heat_layers, heat_experts;
	/* Each tensor takes its size rounded up to this in a tier; 0: the GGUF's alignment. */
	uint64_t align;
	/*
	 * A plan for one node of a cluster of `nodes` (0 or 1: one machine;
	 * Documentation/tiermem-scale.rst). split_layers false: expert
	 * parallel, every node holds every tensor but only its share of each
	 * routed-expert tensor (assign, below). true: pipeline,
	 * the node holds the layers tm_plan_stages gives it, the embedding on
	 * rank 0 and the output on the last rank.
	 */
	int nodes, rank;
	bool split_layers;
	/*
	 * Expert parallel: whose each routed expert is (tm_xassign_make over
	 * the nodes, by heat or not); the node plans its own experts, read as
	 * often as expert_heat says. NULL: e % nodes, the rule's uniform case.
	 */
	const struct tm_xassign *assign;
	/*
	 * Expert parallel only: also split every dense matrix (attention,
	 * shared experts, dense FFNs, output) by rows over the nodes, in
	 * 16-row groups, the node with the most holding ceil(groups / nodes)
	 * of them, each matrix's output then gathered on every node (tensor
	 * parallel, as --split experts,dense runs it).
	 */
	bool tensor_parallel;
};

struct tm_xassign;

/* A network link between nodes: --link GBPS,LATENCY_US. */
struct tm_link {
	double gbit;		/* Gbit/s, as links are quoted (100 for 100 GbE) */
	double latency_us;	/* one message, end to end */
};

/* What a cluster of nodes predicts for one decode stream. */
struct tm_cluster {
	int nodes;
	bool split_layers;
	double compute_sec;	/* streaming/compute per token: the slowest node (experts), every stage (layers) */
	double comm_sec;	/* per token */
	double sec_per_token;	/* compute_sec + comm_sec: a stream's token waits for both */
	int messages;		/* all-reduces (experts) or hops (layers) per token */
	double message_bytes;
	int gathers;		/* tensor parallel: an allgather per split matrix per token */
	double gather_sec;	/* their part of comm_sec */
};

struct tm_pool;

/*
 * Measure t's read bandwidth here and now (256 MiB of its kind read with
 * tiermem bench's loop on every thread of pool, best of 3 passes) into
 * t->gbps: ddr and node:N anonymous memory, file a temporary file in its path
 * (or TMPDIR), pmem its path (a devdax device, a DAX file or a directory on a
 * DAX filesystem); vram and pcie on this machine's GPU (tm_gpu_read_bench,
 * tm_gpu_pcie_bench's in-place figure; medians). -ENODEV for a NUMA node or
 * a GPU this machine lacks, -EINVAL for pmem without a path.
 */
int tm_tier_measure(struct tm_tier_spec *t, struct tm_pool *pool);

/* NAME=KIND:SIZE[@GBPS] -> spec; -EINVAL with a message naming the part that is wrong. */
int tm_tier_spec_parse(const char *arg, struct tm_tier_spec *out);
/* REGEX=TIER -> override (the regex is checked with regcomp). */
int tm_override_parse(const char *arg, struct tm_override *out);
const char *tm_tier_kind_name(enum tm_tier_kind kind);
const char *tm_tensor_class_name(enum tm_tensor_class cls);
/* The class of a tensor, by its GGUF name. */
enum tm_tensor_class tm_tensor_classify(const char *name);

/*
 * Place every tensor of g. -ENOSPC when the model does not fit the tiers
 * (the message says how many bytes are missing), -EINVAL for an override
 * naming no tier, -ENOMEM.
 */
int tm_plan_make(struct tm_plan *p, const struct tm_gguf *g, const struct tm_plan_opts *o);
/* The entry for a tensor, or NULL. */
const struct tm_plan_tensor *tm_plan_find(const struct tm_plan *p, const char *name);
/* The index of the tier called name, or -1. */
int tm_plan_tier(const struct tm_plan *p, const char *name);
/* Seconds per token for bytes read per tier (p's tiers and cost model), all of it by the CPU. */
double tm_plan_cost(const struct tm_plan *p, const double *tier_read);
/*
 * The prediction for p's tensors where they are and on the processors they
 * are marked for: p->sec_per_token and, with a vram tier, p->hy. Without one
 * it is tm_plan_cost over the tiers' reads. 0 or -ENOMEM.
 */
int tm_plan_predict(struct tm_plan *p);
void tm_plan_free(struct tm_plan *p);

/*
 * Pipeline stages: contiguous layer ranges, stage r holding layers
 * [first[r], first[r + 1]) of the n_layer (first[nodes] = n_layer), that
 * minimise the largest stage's expected bytes read per token under the
 * uniform expert prior, counting the embedding row on stage 0 and the
 * output (a tied embedding's whole matrix) on the last; with equal nodes
 * that is the largest stage's time. The one split: run, logits and serve
 * --split layers, import --split layers --rank R and plan --nodes all take
 * it, so it depends on the model alone (no heat, no tiers: a node's import
 * cannot see the others' tiers, and every rank must compute the same cut).
 * -EINVAL when a stage would have no layer, -ENOMEM.
 */
int tm_plan_stages(const struct tm_gguf *g, int n_layer, int nodes, int *first);
/*
 * Tensor parallel (--split experts,dense, lib/plan/tp_rows.c): rank's rows
 * of a dense matrix of rows rows split over ranks, a contiguous run of
 * whole 16-row groups (the r16 layout's) [*r0, *r1); false when it has
 * fewer groups than ranks (every rank holds and computes it whole). Decode
 * computes these rows, import --split experts,dense stores them, and the
 * planner counts them.
 */
bool tm_tp_rows(int rows, int ranks, int rank, int *r0, int *r1);
/*
 * Is t split by rows over ranks: an attention, dense-FFN, shared-expert or
 * output matrix (2-D; the embedding, routers, vectors and 3-D tensors
 * never) of at least one group per rank. The matrices the forward pass
 * hands to its rows hook (lib/model/forward.c, mul_dense).
 */
bool tm_tp_splits(const struct tm_gguf_tensor *t, int ranks);

/*
 * A pipeline stage's measured cost: a call of rows sequences takes
 * call_sec + rows * row_sec seconds (lib/plan/groups.c).
 */
struct tm_stage_cost {
	double call_sec, row_sec;
};
/*
 * Seconds for every one of rows sequences to get one token when they are
 * decoded in groups of at most ceil(rows / groups) over the stages, one call
 * per group in flight: the longer of the largest group's way through every
 * stage and the busiest stage's groups calls of rows rows in all.
 */
double tm_pipeline_round(const struct tm_stage_cost *st, int stages, int rows, int groups);
/*
 * The number of groups (1 to min(stages, rows)) with the shortest round,
 * unless now's (the number in use, clamped to that range) is within margin
 * (a fraction) of it: then now. 1 for rows < 1.
 */
int tm_pipeline_groups(const struct tm_stage_cost *st, int stages, int rows, int now, double margin);
/* A least-squares line through a stage's (rows, seconds) calls, recent calls weighing most. */
struct tm_stage_fit {
	double n, x, y, xx, xy;
};
void tm_stage_fit_add(struct tm_stage_fit *f, double rows, double sec);
/* The fitted cost; false until there are a few calls of different sizes. */
bool tm_stage_fit_get(const struct tm_stage_fit *f, struct tm_stage_cost *c);

/*
 * Does the stage holding layers [first, last) of n_layer hold tensor name?
 * Its layers (those from n_layer on, multi-token prediction, with the last
 * stage), the token embedding on the first stage (and on the last when tied:
 * tied is true when the model has no output.weight), output* on the last,
 * every other tensor (rope_freqs) on every stage.
 */
bool tm_stage_holds(const char *name, bool tied, int first, int last, int n_layer);

/* GBPS,LATENCY_US -> link; -EINVAL naming the part that is wrong. */
int tm_link_parse(const char *arg, struct tm_link *out);
/* Seconds for one message of bytes over l: latency + bytes / rate. */
double tm_link_send(const struct tm_link *l, double bytes);
/*
 * Seconds for an all-reduce of bytes over nodes nodes by recursive doubling:
 * ceil(log2(nodes)) rounds, each one message of the whole vector each way
 * (the small-message algorithm MPI libraries use); 0 for one node.
 */
double tm_allreduce_sec(const struct tm_link *l, int nodes, double bytes);
/*
 * Seconds for an allgather of a vector of bytes (each node holding 1/nodes
 * of it) by recursive doubling: ceil(log2(nodes)) latencies, and
 * (nodes - 1) / nodes of the vector received; 0 for one node.
 */
double tm_allgather_sec(const struct tm_link *l, int nodes, double bytes);
/* Layers of g that hold routed experts (each costs one all-reduce when experts are split). */
int tm_plan_moe_layers(const struct tm_gguf *g);
/*
 * Combine per-node plans into a cluster prediction for one stream. experts:
 * node_plans[0..nodes-1] are the nodes (node r planned as rank r); they
 * stream at once, and each MoE layer's all-reduce of n_embd floats waits for
 * the layer's slowest node: with serial plans the streaming is the slowest
 * node's dense part plus, per layer, the slowest node's experts (from their
 * tiers); with overlapping or GPU plans the slowest node's whole token. layers:
 * node_plans[0..nodes-1] are the stages, run one after another by a single
 * stream, plus one hop of n_embd floats from each stage to the next and from
 * the last back to the first (the sampled token starts the next step).
 */
void tm_cluster_predict(struct tm_cluster *c, const struct tm_plan *node_plans, int nodes, bool split_layers,
			const struct tm_link *l, int n_embd, int moe_layers);

/*
 * The routed experts' expected bytes read per token on each node of an
 * expert split, from the nodes' plans (plans[0..nodes-1], node r planned as
 * rank r): per_node[r], their max and mean, and sync: the sum over the
 * layers of the layer's most loaded node, what a token waits for when each
 * layer's all-reduce waits for its slowest node. -ENOMEM.
 */
struct tm_expert_load {
	double max, mean, sync;
};
int tm_cluster_expert_load(const struct tm_plan *plans, int nodes, double *per_node, struct tm_expert_load *out);

int tm_plan_write_json(const struct tm_plan *p, FILE *f);
/* The object tm_plan_write_json writes (a jansson json_t, the caller's reference), or NULL (-ENOMEM). */
struct json_t;
struct json_t *tm_plan_json(const struct tm_plan *p);
/*
 * A plan written by tm_plan_write_json (`tiermem plan --json`): every field is
 * checked, the per-tier totals and the prediction are recomputed from the
 * tensors, and no tier may hold more than its capacity. It is not checked
 * against a model: that is tm_plan_match.
 */
int tm_plan_read_json(struct tm_plan *p, const char *path);
/* 0 if p places exactly g's tensors, with the same sizes; -EINVAL naming the first difference. */
int tm_plan_match(const struct tm_plan *p, const struct tm_gguf *g);

#endif
