/* SPDX-License-Identifier: MIT */
/* tiermem run --expert-cache: the online expert cache's options, setup and summary. */
#ifndef TIERMEM_CLI_RUN_EXPERTS_H
#define TIERMEM_CLI_RUN_EXPERTS_H

#include <getopt.h>
#include <stdbool.h>

#include "tiermem/experts.h"
#include "tiermem/model.h"

#include "cli/split_args.h"

#define RUN_EXPERTS_USAGE \
	"  --expert-cache SIZE  MoE: keep experts in a cache of SIZE on DDR (2 MiB pages),\n" \
	"                     per layer: N experts, N% of a layer's experts, or bytes\n" \
	"                     with a unit (split evenly over the MoE layers, whole experts);\n" \
	"                     the rest are read where the model has them (the slow tier)\n" \
	"  --expert-policy P  lru, lfu, lrfu or mix (default lrfu: Documentation/tiermem-experts.rst)\n" \
	"  --expert-copy C    async (default: a copier thread fills admitted experts' slots)\n" \
	"                     or sync (copied at once, on the forward pass's thread)\n" \
	"  --expert-copy-gbps X  the async copier's budget in GB/s (default: none)\n" \
	"  --expert-predict   after each layer's attention, score the next layer's router\n" \
	"                     and prefetch the experts it picks\n" \
	"  --expert-heat FILE start the cache with each layer's hottest experts (a heat\n" \
	"                     file of this model from tiermem profile), and split the\n" \
	"                     slots over the layers by it (skewed layers get more);\n" \
	"                     with --split experts it also assigns the experts to the\n" \
	"                     ranks (see --split), with or without --expert-cache\n" \
	"                     With --gpu and routed experts in host memory (-ot exps=CPU or\n" \
	"                     exps=pcie) the cache is in VRAM (SIZE: N, N% or bytes of VRAM):\n" \
	"                     misses are computed by the CPU (exps=CPU; admitted ones are\n" \
	"                     copied into slots on a side stream) or read over PCIe into\n" \
	"                     their slots (exps=pcie); --expert-policy and --expert-heat\n" \
	"                     apply, the other --expert-* options do not (never run on a\n" \
	"                     GPU yet)\n"

enum { RX_CACHE = 0x200, RX_POLICY, RX_COPY, RX_GBPS, RX_PREDICT, RX_HEAT };

#define RUN_EXPERTS_OPTIONS \
	{ "expert-cache", required_argument, NULL, RX_CACHE }, \
	{ "expert-policy", required_argument, NULL, RX_POLICY }, \
	{ "expert-copy", required_argument, NULL, RX_COPY }, \
	{ "expert-copy-gbps", required_argument, NULL, RX_GBPS }, \
	{ "expert-predict", no_argument, NULL, RX_PREDICT }, \
	{ "expert-heat", required_argument, NULL, RX_HEAT }

struct run_experts {
	const char *cmd;	/* "run", "serve": for messages */
	const char *size;
	const char *heat;
	const char *name;	/* run --name: the store knows the model's hash */
	/* under --split: the experts (tm_xonline_only) and the layers this rank computes; the cache
	 * holds only those (split_args_part fills it) */
	struct split_part part;
	struct tm_xonline_opts o;
	struct tm_xonline *x;
	int *layer_slots;
	int n_moe;		/* MoE layers */	/* per layer: even over MoE layers, or split by --expert-heat */
	double split_floor;	/* tm_xheat_split's floor */
	const struct tm_model *m;
	/* at the end of the prompt: decode's figures are the differences */
	bool marked;
	uint64_t map0[TM_MODEL_MAX_MAPS];
	struct tm_xstats *layer0;
	struct tm_xonline_stats ost0;
	/* --gpu: the cache in VRAM instead (tiermem/experts.h), its counters at the end of the prompt */
	struct tm_xvram *xv;
	struct tm_xheat vheat;		/* --expert-heat: read before the GPU, warm after */
	struct tm_xvram_stats xst0;
	struct tm_xstats xtot0;
};

void run_experts_init(struct run_experts *r, const char *cmd);
/* An option code of RUN_EXPERTS_OPTIONS: 0, or the exit code of a usage error. */
int run_experts_option(struct run_experts *r, int code, const char *arg);
/*
 * After the context exists: make the cache (slots only for the MoE layers
 * in [first, last) when last > 0) and attach it to c (NULL: the
 * caller attaches it to its contexts, as serve does); a note for a dense
 * model. 0 or an exit code.
 */
int run_experts_setup(struct run_experts *r, struct tm_model *m, struct tm_ctx *c);
/*
 * --gpu: before the context moves to the GPU, make the VRAM cache for calls
 * of up to n_batch tokens, its misses served as the -ot rules leave the
 * routed experts (CPU or pcie); r->xv then goes to tm_gpu_attach_xvram. 0
 * (nothing to do without --expert-cache) or an exit code.
 */
struct gpu_ot;
int run_experts_setup_gpu(struct run_experts *r, struct tm_model *m, int n_batch, const struct gpu_ot *ot);
/* The prompt has been evaluated: decode starts now. */
void run_experts_mark(struct run_experts *r, const struct tm_ctx *c);
void run_experts_summary(struct run_experts *r, const struct tm_ctx *c, int n_decoded, double t_decode);
/* The same figures, live, for the run's counters file (tiermem stats); false when no cache runs. */
struct tm_runstat_experts;
bool run_experts_live(struct run_experts *r, const struct tm_ctx *c, int n_decoded, struct tm_runstat_experts *x);
/* The same figures for run --json (NULL when no cache ran). */
struct json_t;
struct json_t *run_experts_json(struct run_experts *r, const struct tm_ctx *c, int n_decoded);
/* After the contexts (the VRAM cache's bookkeeping must outlive the GPU side). */
void run_experts_free(struct run_experts *r);

#endif
