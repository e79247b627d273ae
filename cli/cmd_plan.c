// SPDX-License-Identifier: MIT
/*
 * tiermem plan: which tier each tensor of a model goes to and the tok/s that
 * should give, from the model's tensor table alone (a header-only GGUF of a
 * model that cannot exist on this machine will do).
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/pool.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/gguf.h"
#include "tiermem/mapping.h"
#include "tiermem/plan.h"

#define CMD "plan"

static const char usage[] =
	"usage: tiermem plan -m MODEL --tier NAME=KIND:SIZE[@GBPS][,ch=GROUP][,path=PATH] ...\n"
	"                    [--tier NAME=pcie:[@GBPS]]\n"
	"                    [-ot REGEX=TIER ...] [--overlap] [--layer-order] [--json] [-v]\n"
	"                    [--nodes N [--link GBPS,LATENCY_US | --rank R --split S]]\n"
	"\n"
	"Places every tensor of MODEL on the tiers and predicts decode speed:\n"
	"seconds per token = sum over tiers of bytes read from it per token / its GB/s.\n"
	"Tensors read every token (attention, norms, output, router, shared experts, dense\n"
	"FFNs) fill the fastest tier first, then routed experts by expected reads per token\n"
	"(expert_used_count / expert_count of their bytes), the token embedding (one row per\n"
	"token) last. Prints per tier: bytes, tensors, bytes read per token and predicted\n"
	"tok/s; per class of tensor where it went and why; and what moved compared with\n"
	"placing tensors in file order. Documentation/tiermem-plan.rst has the model.\n"
	"\n"
	"  -m, --model FILE     a GGUF model; a header-only one (tiermem synth --header-only)\n"
	"                       is enough: only the tensor table and metadata are read\n"
	"  --tier SPEC          a tier (repeatable, 1 to 8): NAME=KIND:SIZE[@GBPS]\n"
	"                       KIND: ddr, pmem, node:N (CXL, KMEM Optane, the other socket),\n"
	"                       file (a plain file standing in for PMEM), vram (the GPU: what is\n"
	"                       there, the GPU computes), pcie (the GPU's link to host memory,\n"
	"                       no SIZE: NAME=pcie:[@GBPS]; the GPU may then compute a host tier's\n"
	"                       tensors in place over it). SIZE: 64G, 1T.\n"
	"                       GBPS: read GB/s (1e9 B/s); without it the bandwidth is\n"
	"                       measured here and now with tiermem bench's read loop (256 MiB,\n"
	"                       all threads, best of 3; never cached: this host's ceiling\n"
	"                       moves): ddr and node:N anonymous memory, file a temporary file\n"
	"                       in its path or TMPDIR, pmem its path; vram and pcie on this\n"
	"                       machine's GPU as tiermem bench --tier gpu / pcie measures\n"
	"                       them (pcie: a CUDA kernel reading pinned host memory in\n"
	"                       place); without a GPU, give @GBPS\n"
	"                       ,ch=GROUP: tiers with the same group share memory channels\n"
	"                       ,path=PATH: the device or directory a pmem/file tier uses\n"
	"  -ot, --override-tensor REGEX=TIER\n"
	"                       tensors whose name matches (POSIX extended regex, searched\n"
	"                       anywhere in the name) go to TIER, whatever the plan says;\n"
	"                       the first match wins (repeatable); TIER CPU (llama.cpp's\n"
	"                       -ot exps=CPU): host memory, computed by the CPU; the pcie\n"
	"                       tier's name: host memory, computed by the GPU over PCIe\n"
	"                       With a vram tier the plan is a CPU/GPU hybrid: each tensor is\n"
	"                       computed where it lives, or by the GPU over pcie where that\n"
	"                       predicts faster; a layer's routed and shared experts overlap\n"
	"                       when on different processors (Documentation/tiermem-plan.rst)\n"
	"  --overlap            predict for reads from different channel groups at once (a\n"
	"                       prefetcher); default: one tensor at a time, as decode reads\n"
	"  --layer-order        the naive placement instead: tensors in file order, the\n"
	"                       fastest tier until one does not fit, then the next\n"
	"  --heat FILE          expert heat from tiermem profile: each layer's expert tensors\n"
	"                       are worth what its tokens read of them, not the uniform\n"
	"                       expert_used_count / expert_count (the heat's model hash must\n"
	"                       match, unless MODEL is header-only); with --nodes the experts\n"
	"                       go to the nodes by it, as run --split experts --expert-heat\n"
	"                       assigns them, and each node's expected expert reads are\n"
	"                       printed against those of expert e on node e % N\n"
	"  --nodes N            also predict a cluster of N nodes (2 to 1024), each with the\n"
	"                       tiers given, for one decode stream: expert parallel (every\n"
	"                       node holds the dense tensors and its share of each MoE\n"
	"                       layer's routed experts (by --heat, else e % N), streams it\n"
	"                       at once with the others, the slowest node setting the pace,\n"
	"                       then one all-reduce of n_embd floats per MoE layer), the\n"
	"                       same with each dense matrix split by rows too (tensor\n"
	"                       parallel: one allgather per matrix), and pipeline\n"
	"                       (layers cut by bytes per token as --split layers cuts\n"
	"                       them; nodes take turns, one hop each);\n"
	"                       Documentation/tiermem-scale.rst has the model\n"
	"  --rank R --split experts|layers|experts,dense\n"
	"                       with --nodes: instead, the plan of node R alone as that split\n"
	"                       places it (what import --split S --rank R --ranks N stores),\n"
	"                       with a line saying what it holds; --json: as JSON, with a\n"
	"                       \"node\" object (nodes, rank, split, its layers [first, last))\n"
	"  --link GBPS,LATENCY_US  the network between nodes: Gbit/s (as links are quoted:\n"
	"                       100 for 100 GbE or RoCE) and one message's latency in\n"
	"                       microseconds (default with --nodes: 100,5)\n"
	"  -t, --threads N      threads for measuring bandwidths (default: all CPUs)\n"
	"  --json               the plan as JSON (what tiermem import --plan reads)\n"
	"  -v, --verbose        also list every tensor with its tier and why\n"
	"\n"
	"Exit status: 0 planned, 2 bad input or the model does not fit the tiers (the\n"
	"message says how many bytes are missing), 1 a failure to run.\n";

static int cpus(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) || CPU_COUNT(&set) < 1 ? 1 : CPU_COUNT(&set);
}

/* Bytes read per token: decimal, as bandwidths are GB/s. */
static void gb(char *buf, size_t n, double bytes)
{
	if (bytes >= 1e9)
		snprintf(buf, n, "%.2f GB", bytes / 1e9);
	else if (bytes >= 1e6)
		snprintf(buf, n, "%.2f MB", bytes / 1e6);
	else
		snprintf(buf, n, "%.1f kB", bytes / 1e3);
}

/* Sizes: binary, as --tier 768G means 768 GiB. */
static void gib(char *buf, size_t n, double bytes)
{
	if (bytes >= 1073741824.0)
		snprintf(buf, n, "%.2f GiB", bytes / 1073741824.0);
	else if (bytes >= 1048576.0)
		snprintf(buf, n, "%.2f MiB", bytes / 1048576.0);
	else
		snprintf(buf, n, "%.1f KiB", bytes / 1024.0);
}

static void print_tiers(const struct tm_plan *p)
{
	char cap[32], bytes[32], rd[32];

	printf("%-10s %-8s %11s %9s %11s %8s %13s %12s %9s\n", "tier", "kind", "capacity", "GB/s",
	       "bytes", "tensors", "read/token", "ms/token", "tok/s");
	for (int i = 0; i < p->n_tiers; i++) {
		const struct tm_tier_spec *t = &p->tiers[i];
		double sec = p->tier_read[i] / (t->gbps * 1e9);
		char kind[24];

		if (t->kind == TM_KIND_NODE)
			snprintf(kind, sizeof(kind), "node:%d", t->node);
		else
			snprintf(kind, sizeof(kind), "%s", tm_tier_kind_name(t->kind));
		if (t->kind == TM_KIND_PCIE) {
			/* holds nothing: what the GPU reads through it */
			sec = p->hy.pcie_read / (t->gbps * 1e9);
			gb(rd, sizeof(rd), p->hy.pcie_read);
			printf("%-10s %-8s %11s %8.1f%s %11s %8s %13s %12.3f %9.2f\n", t->name, kind, "-", t->gbps,
			       t->gbps_given ? " " : "*", "-", "-", rd, sec * 1e3, sec > 0 ? 1 / sec : 0);
			continue;
		}
		gib(cap, sizeof(cap), (double)t->capacity);
		gib(bytes, sizeof(bytes), (double)p->tier_bytes[i]);
		gb(rd, sizeof(rd), p->tier_read[i]);
		printf("%-10s %-8s %11s %8.1f%s %11s %8zu %13s %12.3f %9.2f\n", t->name, kind, cap, t->gbps,
		       t->gbps_given ? " " : "*", bytes, p->tier_count[i], rd, sec * 1e3, sec > 0 ? 1 / sec : 0);
	}
	for (int i = 0; i < p->n_tiers; i++)
		if (!p->tiers[i].gbps_given) {
			printf("  * measured here now (tiermem bench's read loop, 256 MiB, best of 3)\n");
			break;
		}
	for (int i = 0; i < p->n_tiers; i++)
		if (p->tiers[i].kind == TM_KIND_FILE) {
			printf("  %s: file (not persistent memory)\n", p->tiers[i].name);
		}
	printf("  tok/s per tier: if that tier's reads were the whole token\n");
}

/* Where a tensor is computed, for the tables: "" without a GPU, else "gpu"/"cpu". */
static const char *proc(const struct tm_plan *p, bool gpu)
{
	return p->gpu_tier < 0 ? "" : gpu ? "gpu" : "cpu";
}

static void print_classes(const struct tm_plan *p)
{
	printf("\n%-16s %-10s %-4s %8s %11s %13s  %s\n", "class", "tier", p->gpu_tier < 0 ? "" : "on", "tensors",
	       "bytes", "read/token", "why");
	for (int c = 0; c < TM_TC_COUNT; c++)
		for (int i = 0; i < 2 * p->n_tiers; i++) {
			size_t n = 0;
			double bytes = 0, rd = 0;
			const char *why = "";
			char b[32], r[32];

			for (size_t k = 0; k < p->n_tensors; k++) {
				const struct tm_plan_tensor *t = &p->tensors[k];

				if ((int)t->cls != c || t->tier != i / 2 || t->gpu != (i % 2))
					continue;
				if (!n++)
					why = t->why;
				bytes += (double)t->bytes;
				rd += t->read_per_token;
			}
			if (!n)
				continue;
			gib(b, sizeof(b), bytes);
			gb(r, sizeof(r), rd);
			printf("%-16s %-10s %-4s %8zu %11s %13s  %s\n", tm_tensor_class_name(c), p->tiers[i / 2].name,
			       proc(p, i % 2), n, b, r, why);
		}
}

/* What the planner did differently from file order: tensors per class, from and to. */
static void print_moves(const struct tm_plan *p, const struct tm_plan *naive)
{
	int printed = 0;

	printf("\nmoved, compared with file order (--layer-order: %.2f tok/s):\n",
	       naive->sec_per_token > 0 ? 1 / naive->sec_per_token : 0);
	for (int c = 0; c < TM_TC_COUNT; c++)
		for (int from = 0; from < p->n_tiers; from++)
			for (int to = 0; to < p->n_tiers; to++) {
				size_t n = 0;
				double bytes = 0, rd = 0;
				const char *first = NULL, *why = "";
				char b[32], r[32];

				if (from == to)
					continue;
				for (size_t k = 0; k < p->n_tensors; k++) {
					const struct tm_plan_tensor *t = &p->tensors[k];

					if ((int)t->cls != c || naive->tensors[k].tier != from || t->tier != to)
						continue;
					if (!n++) {
						first = t->name;
						why = t->why;
					}
					bytes += (double)t->bytes;
					rd += t->read_per_token;
				}
				if (!n)
					continue;
				gib(b, sizeof(b), bytes);
				gb(r, sizeof(r), rd);
				printf("  %zu %s tensor%s (%s%s; %s, %s read/token): %s -> %s: %s\n", n,
				       tm_tensor_class_name(c), n > 1 ? "s" : "", n > 1 ? "first " : "", first, b, r,
				       p->tiers[from].name, p->tiers[to].name, why);
				printed++;
			}
	if (!printed)
		printf("  nothing: file order gives the same placement\n");
}

static void print_tensors(const struct tm_plan *p)
{
	printf("\n%-48s %-16s %-10s %-4s %12s %14s  %s\n", "tensor", "class", "tier", p->gpu_tier < 0 ? "" : "on",
	       "bytes", "read/token", "why");
	for (size_t k = 0; k < p->n_tensors; k++) {
		const struct tm_plan_tensor *t = &p->tensors[k];

		printf("%-48s %-16s %-10s %-4s %12llu %14.0f  %s\n", t->name, tm_tensor_class_name(t->cls),
		       p->tiers[t->tier].name, proc(p, t->gpu), (unsigned long long)t->bytes, t->read_per_token,
		       t->why);
	}
}

/* Where a CPU/GPU plan's time goes (lib/plan/hybrid.c). */
static void print_hybrid(const struct tm_plan *p)
{
	const struct tm_plan_hybrid *h = &p->hy;
	char v[32], c[32];

	gb(v, sizeof(v), h->vram_read);
	gb(c, sizeof(c), h->pcie_read);
	printf("  GPU %.3f ms (reads %s from VRAM, %s over PCIe), CPU %.3f ms, outside the MoE phase\n",
	       h->gpu_sec * 1e3, v, c, h->cpu_sec * 1e3);
	printf("  MoE phase %.3f ms: routed and shared experts on different processors overlap (%.3f ms one after the other)\n",
	       h->moe_sec * 1e3, h->moe_serial_sec * 1e3);
	printf("  %d hand-off%s of the hidden state per token: %.3f ms (%.0f us each, estimated%s)\n", h->handoffs,
	       h->handoffs == 1 ? "" : "s", h->handoff_sec * 1e3, TM_PLAN_HANDOFF_SEC * 1e6,
	       p->pcie_tier >= 0 ? ", plus the copies over PCIe" : "");
	printf("hybrid: gpu_ms=%.4f cpu_ms=%.4f moe_ms=%.4f moe_serial_ms=%.4f handoffs=%d tok_s=%.4f\n",
	       h->gpu_sec * 1e3, h->cpu_sec * 1e3, h->moe_sec * 1e3, h->moe_serial_sec * 1e3, h->handoffs,
	       1 / p->sec_per_token);
}

static void print_plan(const char *path, const struct tm_gguf *g, const struct tm_plan *p,
		       const struct tm_plan *naive, int naive_err, bool verbose)
{
	double total = 0, rd = 0;
	struct tm_gguf_str arch = { "?", 1 };
	char a[32], b[32];

	for (size_t k = 0; k < p->n_tensors; k++) {
		total += (double)p->tensors[k].bytes;
		rd += p->tensors[k].read_per_token;
	}
	tm_gguf_get_str(g, "general.architecture", &arch);
	gib(a, sizeof(a), total);
	gb(b, sizeof(b), rd);
	printf("model: %s (%.*s, %zu tensors, %s; %s read per token)\n\n", path, (int)arch.len, arch.ptr,
	       p->n_tensors, a, b);
	print_tiers(p);
	printf("\npredicted: %.2f tok/s (%.3f ms/token; %s)\n", 1 / p->sec_per_token, p->sec_per_token * 1e3,
	       p->overlap ? "channel groups read at once, tiers in a group share its channels" :
			    "tiers read one after another, as decode reads one tensor at a time");
	if (p->gpu_tier >= 0)
		print_hybrid(p);
	print_classes(p);
	if (!p->layer_order) {
		if (naive_err)
			printf("\nfile order (--layer-order) does not fit these tiers: %s\n", tm_strerror());
		else
			print_moves(p, naive);
	}
	if (verbose)
		print_tensors(p);
}

struct plan_args {
	const char *model;
	struct tm_tier_spec tiers[TM_PLAN_MAX_TIERS];
	struct tm_override ot[64];
	struct tm_plan_opts o;
	long threads, nodes, rank;
	const char *split;	/* --split: with --rank, that node's plan alone */
	struct tm_link link;
	bool json, verbose, link_given;
	const char *heat;	/* --heat FILE: tiermem profile's expert heat */
	struct tm_xassign assign;	/* --heat with --nodes: the experts' assignment to the nodes */
	const struct tm_xassign *nodes_assign;	/* &assign once made, else NULL */
};

static int parse_args(int argc, char **argv, struct plan_args *a)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "tier", required_argument, NULL, 'T' },
		{ "override-tensor", required_argument, NULL, 'O' },
		{ "overlap", no_argument, NULL, 'o' },
		{ "layer-order", no_argument, NULL, 'L' },
		{ "heat", required_argument, NULL, 'H' },
		{ "threads", required_argument, NULL, 't' },
		{ "nodes", required_argument, NULL, 'N' },
		{ "link", required_argument, NULL, 'K' },
		{ "json", no_argument, NULL, 'j' },
		{ "rank", required_argument, NULL, 'R' },
		{ "split", required_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	a->o.tiers = a->tiers;
	a->o.ot = a->ot;
	a->threads = cpus();
	a->rank = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:t:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': a->model = optarg; break;
		case 'T':
			if (a->o.n_tiers == TM_PLAN_MAX_TIERS)
				return usage_error(CMD, "at most %d tiers", TM_PLAN_MAX_TIERS);
			if (tm_tier_spec_parse(optarg, &a->tiers[a->o.n_tiers]))
				return usage_error(CMD, "%s", tm_strerror());
			a->o.n_tiers++;
			break;
		case 'O':
			if (a->o.n_ot == (int)(sizeof(a->ot) / sizeof(a->ot[0])))
				return usage_error(CMD, "at most %zu -ot overrides", sizeof(a->ot) / sizeof(a->ot[0]));
			if (tm_override_parse(optarg, &a->ot[a->o.n_ot]))
				return usage_error(CMD, "%s", tm_strerror());
			a->o.n_ot++;
			break;
		case 'o': a->o.overlap = true; break;
		case 'L': a->o.layer_order = true; break;
		case 'H': a->heat = optarg; break;
		case 't':
			if (parse_long("-t", optarg, 1, 1024, &a->threads))
				return EXIT_USAGE;
			break;
		case 'N':
			if (parse_long("--nodes", optarg, 1, 1024, &a->nodes))
				return EXIT_USAGE;
			break;
		case 'K':
			if (tm_link_parse(optarg, &a->link))
				return usage_error(CMD, "%s", tm_strerror());
			a->link_given = true;
			break;
		case 'j': a->json = true; break;
		case 'R':
			if (parse_long("--rank", optarg, 0, 1023, &a->rank))
				return EXIT_USAGE;
			break;
		case 'S':
			if (strcmp(optarg, "experts") && strcmp(optarg, "layers") && strcmp(optarg, "experts,dense"))
				return usage_error(CMD, "--split %s: want experts, layers or experts,dense", optarg);
			a->split = optarg;
			break;
		case 'v': a->verbose = true; break;
		case 'h': fputs(usage, stdout); return -1;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error(CMD, "unexpected argument '%s'", argv[optind]);
	if (!a->model)
		return usage_error(CMD, "no model: give -m MODEL.gguf (a header-only one will do)");
	if (!a->o.n_tiers)
		return usage_error(CMD, "no tiers: give --tier NAME=KIND:SIZE[@GBPS] at least once");
	if (a->link_given && a->nodes < 2)
		return usage_error(CMD, "--link needs --nodes N (N >= 2)");
	if ((a->rank >= 0) != !!a->split || (a->split && (a->nodes < 2 || a->rank >= a->nodes)))
		return usage_error(CMD, "--rank R and --split S go together, with --nodes N and 0 <= R < N");
	if (a->split && a->link_given)
		return usage_error(CMD, "--rank plans one node: --link is for the whole cluster's prediction");
	if (a->nodes > 1 && !a->split && (a->json || a->o.layer_order))
		return usage_error(CMD, "--nodes prints text only and plans by the planner (no --json, --layer-order; "
				   "--rank R --split S: one node's plan, --json too)");
	if (a->split && a->o.layer_order)
		return usage_error(CMD, "--rank plans by the planner (no --layer-order)");
	if (a->split) {
		/* this node's plan in place of the whole model's */
		a->o.nodes = (int)a->nodes;
		a->o.rank = (int)a->rank;
		a->o.split_layers = !strcmp(a->split, "layers");
		a->o.tensor_parallel = !strcmp(a->split, "experts,dense");
		a->nodes = 0;
	}
	if (!a->link_given) {
		a->link.gbit = 100;
		a->link.latency_us = 5;
	}
	return 0;
}

/* Bandwidths the user left out, measured here; one pool for all of them. */
static int measure_missing(struct plan_args *a)
{
	struct tm_pool *pool = NULL;
	int rc = 0;

	for (int i = 0; i < a->o.n_tiers && !rc; i++) {
		int err;

		if (a->tiers[i].gbps_given)
			continue;
		if (!pool && !(pool = tm_pool_create((int)a->threads, TM_POOL_PIN)))
			return run_error(CMD, "cannot start %ld threads", a->threads);
		if ((err = tm_tier_measure(&a->tiers[i], pool)))
			rc = err == -ENOMEM || err == -EIO ? run_error(CMD, "%s", tm_strerror()) :
							     usage_error(CMD, "%s", tm_strerror());
	}
	tm_pool_destroy(pool);
	return rc;
}

/*
 * --heat: expert heat from tiermem profile, checked against this model (its
 * shape, and its content hash unless the GGUF is header-only).
 */
static int load_heat(struct plan_args *a, const struct tm_gguf *g, const struct tm_mapping *map,
		     struct tm_xheat *heat, float **probs)
{
	struct tm_gguf full;
	char hash[33];
	bool have_hash = false;
	int err;

	if ((err = tm_xheat_read(heat, a->heat)))
		return err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
	if (!tm_gguf_parse(&full, map->addr, map->size)) {
		have_hash = !tm_gguf_content_hash(&full, hash);
		tm_gguf_free(&full);
	}
	if ((err = tm_xheat_check(heat, g, have_hash ? hash : NULL)))
		return usage_error(CMD, "--heat %s: %s", a->heat, tm_strerror());
	if (!have_hash)
		fprintf(stderr, "tiermem plan: note: %s has no tensor data, so only the heat's shape was checked, not its model hash\n",
			a->model);
	if ((err = tm_xheat_probs(heat, probs)))
		return run_error(CMD, "%s", tm_strerror());
	a->o.expert_heat = *probs;
	a->o.heat_layers = heat->model.n_layer;
	a->o.heat_experts = heat->model.n_expert;
	return 0;
}

static void print_cluster_line(const char *mode, const struct tm_cluster *c, const struct tm_plan *one)
{
	double share = c->sec_per_token > 0 ? c->comm_sec / c->sec_per_token : 0;

	printf("  streaming %.3f ms/token, communication %.3f ms/token (%d message%s of %.1f kB", c->compute_sec * 1e3,
	       c->comm_sec * 1e3, c->messages, c->messages == 1 ? "" : "s", c->message_bytes / 1e3);
	if (c->gathers)
		printf(", %d allgathers taking %.3f ms", c->gathers, c->gather_sec * 1e3);
	printf("; %.1f %% of the token)\n", 100 * share);
	printf("  predicted: %.2f tok/s, %.2fx one node (%.2f tok/s)%s\n", 1 / c->sec_per_token,
	       one->sec_per_token / c->sec_per_token, 1 / one->sec_per_token,
	       share > 0.5 ? "; communication dominates" : "");
	printf("cluster: split=%s nodes=%d stream_ms=%.4f comm_ms=%.4f tok_s=%.4f vs_one=%.4f\n", mode, c->nodes,
	       c->compute_sec * 1e3, c->comm_sec * 1e3, 1 / c->sec_per_token, one->sec_per_token / c->sec_per_token);
}

/*
 * Every node of an expert split planned (its own experts by o->assign); the
 * slowest sets the pace. 0, or -1 after saying which node does not fit.
 */
static int expert_nodes(const struct tm_gguf *g, const struct tm_plan_opts *o, struct tm_plan *p, int *slow)
{
	struct tm_plan_opts node = *o;

	*slow = 0;
	for (int r = 0; r < o->nodes; r++) {
		node.rank = r;
		if (tm_plan_make(&p[r], g, &node)) {
			printf("  node %d's share does not fit its tiers: %s\n", r, tm_strerror());
			return -1;
		}
		if (p[r].sec_per_token > p[*slow].sec_per_token)
			*slow = r;
	}
	return 0;
}

/*
 * The routed experts' expected reads per token per node, their balance and
 * the prediction (with the slowest node), for scripts too:
 * "balance: assign=heat|mod nodes=N max_mean=... sync_mean=... tok_s=...".
 */
static int print_balance(const char *assign, const struct tm_plan *p, int n, const struct tm_cluster *c)
{
	double *per = calloc((size_t)n, sizeof(*per));
	struct tm_expert_load ld;

	if (!per || tm_cluster_expert_load(p, n, per, &ld)) {
		free(per);
		return run_error(CMD, "out of memory");
	}
	printf("  routed experts read per token (%s):", assign);
	for (int r = 0; r < n && r < 16; r++)
		printf(" node %d %.2f MB%s", r, per[r] / 1e6, r + 1 < n ? "," : "");
	printf("%s\n", n > 16 ? " ..." : "");
	printf("  max/mean %.3f; slowest node per MoE layer, summed: %.2f MB against a mean of %.2f MB (%.3f)\n",
	       ld.mean > 0 ? ld.max / ld.mean : 1, ld.sync / 1e6, ld.mean / 1e6, ld.mean > 0 ? ld.sync / ld.mean : 1);
	printf("balance: assign=%s nodes=%d max_mean=%.4f sync_mean=%.4f tok_s=%.4f\n",
	       strcmp(assign, "e % N") ? "heat" : "mod", n, ld.mean > 0 ? ld.max / ld.mean : 1,
	       ld.mean > 0 ? ld.sync / ld.mean : 1, 1 / c->sec_per_token);
	free(per);
	return 0;
}

/*
 * An expert-parallel cluster (o->tensor_parallel: its dense matrices split
 * too): the slowest node's tiers and the prediction; with balance, each
 * node's expected expert reads (and, when the experts are assigned by heat,
 * the same for e % N).
 */
static int print_expert_split(const struct tm_gguf *g, const struct tm_plan_opts *o, const struct plan_args *a,
			      const struct tm_plan *one, int moe, const char *mode, bool balance)
{
	struct tm_plan *p = calloc((size_t)o->nodes, sizeof(*p));
	struct tm_plan_opts mod = *o;
	struct tm_cluster c;
	int slow, rc = 0;

	if (!p)
		return run_error(CMD, "out of memory");
	if (!moe) {
		printf("  the model has no routed experts: nothing to split\n");
	} else if (!expert_nodes(g, o, p, &slow)) {
		printf("  node %d, the slowest over the whole token:\n", slow);
		print_tiers(&p[slow]);
		tm_cluster_predict(&c, p, o->nodes, false, &a->link, one->n_embd, moe);
		print_cluster_line(mode, &c, one);
		if (balance)
			rc = print_balance(o->assign ? "by heat" : "e % N", p, o->nodes, &c);
		for (int r = 0; r < o->nodes; r++)
			tm_plan_free(&p[r]);
		mod.assign = NULL;
		if (!rc && balance && o->assign && !expert_nodes(g, &mod, p, &slow)) {
			tm_cluster_predict(&c, p, o->nodes, false, &a->link, one->n_embd, moe);
			printf("  with expert e on node e %% N instead: streaming %.3f ms/token, %.2f tok/s\n",
			       c.compute_sec * 1e3, 1 / c.sec_per_token);
			rc = print_balance("e % N", p, o->nodes, &c);
		}
	}
	for (int r = 0; r < o->nodes; r++)
		tm_plan_free(&p[r]);
	free(p);
	return rc;
}

/*
 * --nodes: one plan per node (experts: the node with the most experts;
 * layers: every stage), combined with the link model. A node whose share
 * does not fit its tiers is said so, and that split is skipped.
 */
static int print_cluster(const struct tm_gguf *g, const struct plan_args *a, const struct tm_plan *one)
{
	int n = (int)a->nodes, n_embd = one->n_embd, moe = tm_plan_moe_layers(g);
	struct tm_plan_opts o = a->o;
	struct tm_plan *stages = calloc((size_t)n, sizeof(*stages));
	struct tm_cluster c;
	int err = 0;

	if (!stages)
		return run_error(CMD, "out of memory");
	printf("\ncluster: %d nodes, each with the tiers above; link %.0f Gbit/s, %.1f us; n_embd %d, %d MoE layers\n",
	       n, a->link.gbit, a->link.latency_us, n_embd, moe);

	o.nodes = n;
	o.rank = 0;
	o.assign = a->nodes_assign;
	printf("\nexpert parallel: every node holds the dense tensors and at most %s of each MoE layer's experts,\n"
	       "%s\n", "ceil(expert_count / N)", o.assign ? "balanced by the heat's expected reads per token" :
	       "expert e on node e % N");
	if ((err = print_expert_split(g, &o, a, one, moe, "experts", true)))
		goto out;
	o.tensor_parallel = true;
	printf("\nexpert parallel, dense matrices split by rows (tensor parallel, --split experts,dense):\n"
	       "every node holds 1/N of the 16-row groups of each attention, shared-expert, dense-FFN and output\n"
	       "matrix, and each matrix's output is gathered on every node\n");
	if ((err = print_expert_split(g, &o, a, one, moe, "experts,dense", false)))
		goto out;
	o.tensor_parallel = false;
	o.assign = NULL;

	o.split_layers = true;
	printf("\npipeline: contiguous layers per node; one stream's token visits the nodes in turn\n");
	for (int r = 0; r < n; r++) {
		char tiers[256] = "";
		size_t len = 0;

		o.rank = r;
		if ((err = tm_plan_make(&stages[r], g, &o))) {
			printf("  node %d's layers do not fit its tiers: %s\n", r, tm_strerror());
			break;
		}
		for (int i = 0; i < stages[r].n_tiers && len < sizeof(tiers); i++)
			len += (size_t)snprintf(tiers + len, sizeof(tiers) - len, " %s %.2f GiB", stages[r].tiers[i].name,
						stages[r].tier_bytes[i] / 1073741824.0);
		printf("  node %d: layers %d-%d, %zu tensors,%s; %.3f ms/token\n", r, stages[r].stage_first,
		       stages[r].stage_last - 1, stages[r].n_tensors, tiers, stages[r].sec_per_token * 1e3);
	}
	if (!err) {
		tm_cluster_predict(&c, stages, n, true, &a->link, n_embd, moe);
		print_cluster_line("layers", &c, one);
	}
out:
	for (int r = 0; r < n; r++)
		tm_plan_free(&stages[r]);
	free(stages);
	return err > 0 ? err : 0;
}

int cmd_plan(int argc, char **argv)
{
	struct plan_args a = { 0 };
	struct tm_plan p = { 0 }, naive = { 0 };
	struct tm_mapping map;
	struct tm_gguf g;
	struct tm_xheat heat = { 0 };
	float *probs = NULL;
	int rc, err, naive_err = 0;

	args_ot_alias(argc, argv);
	rc = parse_args(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((err = tm_map_file(&map, a.model, 0)))
		return usage_error(CMD, "%s", tm_strerror());
	if ((err = tm_gguf_parse_flags(&g, map.addr, map.size, TM_GGUF_HEADER_ONLY))) {
		rc = err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
		goto out_map;
	}
	if (a.heat && (rc = load_heat(&a, &g, &map, &heat, &probs)))
		goto out;
	/* the run's rule (tm_xassign_make), over the nodes of the cluster or of --rank's split */
	if (a.heat && (a.nodes > 1 || a.o.nodes > 1)) {
		if ((err = tm_xassign_make(&a.assign, heat.model.n_layer, heat.model.n_expert,
					   a.nodes > 1 ? (int)a.nodes : a.o.nodes, &heat))) {
			rc = err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
			goto out;
		}
		a.nodes_assign = &a.assign;
		a.o.assign = a.o.nodes > 1 && !a.o.split_layers ? &a.assign : NULL;
	}
	if ((rc = measure_missing(&a)))
		goto out;
	if (a.split && strcmp(a.split, "layers") && !tm_plan_moe_layers(&g) && !a.o.tensor_parallel) {
		rc = usage_error(CMD, "--split experts: %s has no routed experts to split", a.model);
		goto out;
	}
	if ((err = tm_plan_make(&p, &g, &a.o))) {
		rc = err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) : usage_error(CMD, "%s", tm_strerror());
		goto out;
	}
	if (a.json) {
		rc = tm_plan_write_json(&p, stdout) ? run_error(CMD, "%s", tm_strerror()) : 0;
		goto out;
	}
	if (!a.o.layer_order) {
		struct tm_plan_opts no = a.o;

		no.layer_order = true;
		naive_err = tm_plan_make(&naive, &g, &no);
	}
	if (p.nodes > 1 && p.split_layers)
		printf("rank %d of %d (--split layers) holds layers %d-%d%s%s; its plan alone:\n", p.rank, p.nodes,
		       p.stage_first, p.stage_last - 1, tm_plan_find(&p, "token_embd.weight") ? ", the token embedding" : "",
		       tm_plan_find(&p, "output_norm.weight") ? ", the output" : "");
	else if (p.nodes > 1 && !a.o.assign)
		printf("rank %d of %d (--split %s) holds experts e %% %d == %d of each MoE layer%s; its plan alone:\n",
		       p.rank, p.nodes, a.split, p.nodes, p.rank,
		       p.tensor_parallel ? " and 1/N of each dense matrix's 16-row groups" : " and every dense tensor");
	else if (p.nodes > 1)
		printf("rank %d of %d (--split %s) holds its share of each MoE layer's experts by heat%s; its plan "
		       "alone:\n", p.rank, p.nodes, a.split,
		       p.tensor_parallel ? " and 1/N of each dense matrix's 16-row groups" : " and every dense tensor");
	print_plan(a.model, &g, &p, &naive, naive_err, a.verbose);
	rc = a.nodes > 1 ? print_cluster(&g, &a, &p) : 0;
out:
	tm_plan_free(&naive);
	tm_plan_free(&p);
	tm_gguf_free(&g);
	tm_xheat_free(&heat);
	tm_xassign_free(&a.assign);
	free(probs);
out_map:
	tm_unmap(&map);
	return rc;
}
