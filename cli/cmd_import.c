// SPDX-License-Identifier: MIT
/*
 * tiermem import: copy a GGUF once into tier regions (lib/store/import.c),
 * with a progress bar on a terminal and a one-line summary otherwise.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/kernels.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/plan.h"
#include "tiermem/store.h"

#define CMD "import"

static const char usage[] =
	"usage: tiermem import -m MODEL.gguf --name NAME [--plan PLAN.json |\n"
	"                      --tier NAME=KIND:SIZE[@GBPS][,path=P] ...] [-ot REGEX=TIER ...]\n"
	"                      [--repack on|off] [--replace] [-q] [--json]\n"
	"                      [--split experts|layers|experts,dense --rank R --ranks N\n"
	"                       [--expert-heat FILE]]\n"
	"\n"
	"Copies every tensor of MODEL.gguf into regions of its tiers, once, by a placement\n"
	"plan (the fastest tier first, see tiermem plan), then writes the model's manifest;\n"
	"`tiermem run --name NAME` then generates from the regions without the GGUF file.\n"
	"Importing the same contents again is a no-op; a name holding other contents is\n"
	"refused unless --replace. A kill at any point leaves the model incomplete, never\n"
	"trusted (tiermem list says so; import again or tiermem rm it).\n"
	"\n"
	"  -m, --model FILE      the GGUF to import (llama, qwen3, qwen3moe)\n"
	"  --name NAME           the model's name in the store ([A-Za-z0-9._-], up to 40)\n"
	"  --plan FILE           a plan from `tiermem plan --json` for this model\n"
	"  --tier SPEC           a tier NAME=KIND:SIZE[@GBPS][,path=P]; KIND ddr, pmem,\n"
	"                        node:N or file; pmem needs path= (a directory on a DAX\n"
	"                        filesystem or /dev/daxX.Y) unless the tiermem module has\n"
	"                        PMEM; file (not persistent memory) defaults to the store.\n"
	"                        Default: ddr up to half the free memory, the rest file\n"
	"                        (with the module: its DDR budget, the rest its PMEM)\n"
	"  -ot, --override-tensor REGEX=TIER   tensors matching REGEX go to TIER\n"
	"  --repack on|off       on: q4_K/q6_K/q8_0 matrices are stored in the interleaved-\n"
	"                        row layout the AVX-512 VNNI kernels decode fastest (default:\n"
	"                        on with those kernels and on AMD Zen/Zen+, off with\n"
	"                        other AVX2 ones, whose GGUF kernels decode faster;\n"
	"                        the GPU kernels read only the GGUF layout: off for\n"
	"                        --gpu). The model's identity stays the GGUF's content\n"
	"                        hash, so changing a stored model's layout takes --replace\n"
	"  --replace             replace what NAME holds now (after the new copy is sealed)\n"
	"  -q, --quiet           no progress bar\n"
	"  --json                print the result as JSON (what tiermem plan --json prints\n"
	"                        of the plan placed, under \"plan\"), not text\n"
	"  --split experts --rank R --ranks N\n"
	"                        import only what rank R of an expert-parallel run over\n"
	"                        N nodes reads (mpirun -np N tiermem-mpi run --name NAME\n"
	"                        --split experts): every tensor but the routed experts,\n"
	"                        and of those the rank's share of each layer: with\n"
	"                        --expert-heat FILE (tiermem profile of this model) the\n"
	"                        experts are balanced over the ranks by expected reads per\n"
	"                        token (hottest first onto the least loaded rank, at most\n"
	"                        ceil(experts / N) a rank), else expert e when e % N is R.\n"
	"                        The store records the assignment: the run must give the\n"
	"                        same --expert-heat (or none), or it is refused at start\n"
	"  --split experts,dense --rank R --ranks N [--expert-heat FILE]\n"
	"                        the same for --split experts,dense (a dense model too):\n"
	"                        its experts as above, and of every attention, dense-FFN,\n"
	"                        shared-expert and output matrix only the rows rank R\n"
	"                        computes (its 16-row groups); the rest whole\n"
	"  --split layers --rank R --ranks N\n"
	"                        import only rank R's stage of a pipeline over N nodes\n"
	"                        (mpirun -np N tiermem-mpi run|serve --name NAME --split\n"
	"                        layers): its layers as that run splits them, the token\n"
	"                        embedding on rank 0, the output on the last rank\n"
	"\n"
	"The store: TIERMEM_HOME (default /var/lib/tiermem as root, ~/.local/share/tiermem\n"
	"otherwise); with the tiermem module and PMEM, /dev/tiermem regions\n"
	"(TIERMEM_BACKEND=user keeps to the userspace store). Exit 2: bad input, a name\n"
	"in use, a tier too small or missing; 1: the import failed.\n";

struct bar {
	bool tty;
	double t0, last;
	const char *phase;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct bar *b = arg;
	double t = now_s(), rate, eta;

	if (b->phase != phase) {
		if (b->phase)
			fputc('\n', stderr);
		b->phase = phase;
		b->t0 = t;
		b->last = 0;
	}
	if (t - b->last < 0.2 && done < total)
		return;
	b->last = t;
	rate = t > b->t0 ? done / (t - b->t0) : 0;
	eta = rate > 0 ? (total - done) / rate : 0;
	fprintf(stderr, "\r%-8s %6.2f / %.2f GB  %7.1f MB/s  ETA %4.0f s  [", phase, done / 1e9,
		total / 1e9, rate / 1e6, eta);
	for (int i = 0; i < 30; i++)
		fputc(total && (uint64_t)i * total < done * 30 ? '#' : '.', stderr);
	fputs("]", stderr);
}

static int grow(void **arr, int n, size_t size)
{
	void *p = realloc(*arr, (n + 1) * size);

	if (!p)
		return -1;
	*arr = p;
	return 0;
}

/* A share: what this rank holds (its plan and bytes are of that alone). */
static void print_share(const struct tm_import_opts *o, const struct tm_import_result *r)
{
	const struct tm_plan *p = &r->plan;

	if (o->share_ranks < 2)
		return;
	if (o->share_layers)
		printf("  rank %d of %d holds layers %d-%d%s%s (%zu tensors)\n", o->share_rank, o->share_ranks,
		       r->first, r->last - 1, tm_plan_find(p, "token_embd.weight") ? ", the token embedding" : "",
		       tm_plan_find(p, "output_norm.weight") ? ", the output" : "", p->n_tensors);
	else if (!o->share_rows && !o->share_heat)
		printf("  rank %d of %d holds every tensor but the routed experts, and experts e %% %d == %d of "
		       "each MoE layer: %d of %d\n", o->share_rank, o->share_ranks, o->share_ranks, o->share_rank,
		       r->experts, r->n_expert);
	else if (!o->share_rows)
		printf("  rank %d of %d holds every tensor but the routed experts, and its share of each MoE "
		       "layer's experts by heat (assignment %016" PRIx64 "): %d to %d of %d\n", o->share_rank,
		       o->share_ranks, r->assign_hash, r->experts_min, r->experts, r->n_expert);
	else if (r->n_expert)
		printf("  rank %d of %d holds %d to %d of each MoE layer's %d experts (%s), its rows of %d dense "
		       "matrices (%.2f of %.2f MiB), every other tensor whole\n", o->share_rank, o->share_ranks,
		       r->experts_min, r->experts, r->n_expert, o->share_heat ? "by heat" : "e % N", r->row_mats,
		       r->row_bytes / 1048576.0, r->row_whole / 1048576.0);
	else
		printf("  rank %d of %d holds its rows of %d dense matrices (%.2f of %.2f MiB), every other "
		       "tensor whole\n", o->share_rank, o->share_ranks, r->row_mats, r->row_bytes / 1048576.0,
		       r->row_whole / 1048576.0);
}

/* --json: the result, with the placement as tiermem plan --json prints it. */
static int print_json(const struct tm_import_opts *o, const struct tm_import_result *r)
{
	json_t *root, *share = json_null();
	char hash[17];
	int err;

	snprintf(hash, sizeof(hash), "%016" PRIx64, r->assign_hash);
	if (o->share_ranks > 1 && o->share_layers)
		share = json_pack("{s:s, s:i, s:i, s:i, s:i}", "split", "layers", "rank", o->share_rank, "ranks",
				  o->share_ranks, "first", r->first, "last", r->last);
	else if (o->share_ranks > 1)
		share = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:i, s:I, s:I}", "split",
				  o->share_rows ? "experts,dense" : "experts", "rank", o->share_rank, "ranks",
				  o->share_ranks, "experts_min", r->experts_min, "experts_max", r->experts, "n_expert",
				  r->n_expert, "assignment", o->share_heat ? "heat" : "e % N", "assignment_hash", hash,
				  "row_matrices", r->row_mats, "row_bytes", (json_int_t)r->row_bytes,
				  "row_bytes_whole", (json_int_t)r->row_whole);
	root = json_pack("{s:s, s:s, s:b, s:s, s:I, s:f, s:o, s:o}", "name", o->name, "hash", r->hash,
			 "unchanged", r->unchanged, "store", r->module ? "tiermem module" : "userspace",
			 "bytes", (json_int_t)r->bytes, "seconds", r->seconds, "share", share,
			 "plan", r->unchanged ? json_null() : tm_plan_json(&r->plan));
	if (!root)
		return run_error(CMD, "out of memory");
	err = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER) || fputc('\n', stdout) == EOF;
	json_decref(root);
	return err ? run_error(CMD, "writing the JSON failed") : 0;
}

static void print_placement(const struct tm_import_result *r)
{
	const struct tm_plan *p = &r->plan;

	for (int t = 0; t < p->n_tiers; t++)
		if (p->tier_count[t])
			printf("  %-10s %-6s %10.1f MiB in %5zu tensors\n", p->tiers[t].name,
			       tm_tier_kind_name(p->tiers[t].kind), p->tier_bytes[t] / 1048576.0,
			       p->tier_count[t]);
}

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "name", required_argument, NULL, 'N' },
		{ "plan", required_argument, NULL, 'P' },
		{ "tier", required_argument, NULL, 'T' },
		{ "override-tensor", required_argument, NULL, 'O' },
		{ "replace", no_argument, NULL, 'R' },
		{ "repack", required_argument, NULL, 'K' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "split", required_argument, NULL, 'S' },
		{ "rank", required_argument, NULL, 'r' },
		{ "ranks", required_argument, NULL, 'n' },
		{ "expert-heat", required_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct tm_import_opts o = { 0 };
	struct tm_import_result r;
	struct tm_tier_spec *tiers = NULL;
	struct tm_override *ot = NULL;
	struct bar bar = { 0 };
	const char *model = NULL;
	bool quiet = false, split = false, json = false;
	const char *heat_path = NULL;
	struct tm_xheat heat = { 0 };
	long rank = -1, ranks = 0;
	int c, err, rc = EXIT_USAGE;

	o.gguf_layout = !tm_kernels_repack_default();
	args_ot_alias(argc, argv);
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'N': o.name = optarg; break;
		case 'P': o.plan_path = optarg; break;
		case 'T':
			if (o.n_tiers == TM_PLAN_MAX_TIERS) {
				usage_error(CMD, "at most %d --tier", TM_PLAN_MAX_TIERS);
				goto out;
			}
			if (grow((void **)&tiers, o.n_tiers, sizeof(*tiers)))
				goto oom;
			if (tm_tier_spec_parse(optarg, &tiers[o.n_tiers])) {
				usage_error(CMD, "%s", tm_strerror());
				goto out;
			}
			o.n_tiers++;
			break;
		case 'O':
			if (grow((void **)&ot, o.n_ot, sizeof(*ot)))
				goto oom;
			if (tm_override_parse(optarg, &ot[o.n_ot])) {
				usage_error(CMD, "%s", tm_strerror());
				goto out;
			}
			o.n_ot++;
			break;
		case 'R': o.replace = true; break;
		case 'K':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				usage_error(CMD, "--repack: '%s' is not on or off", optarg);
				goto out;
			}
			o.gguf_layout = !strcmp(optarg, "off");
			break;
		case 'q': quiet = true; break;
		case 'S':
			if (strcmp(optarg, "experts") && strcmp(optarg, "layers") && strcmp(optarg, "experts,dense")) {
				usage_error(CMD, "--split %s: want experts, layers or experts,dense", optarg);
				goto out;
			}
			o.share_layers = !strcmp(optarg, "layers");
			o.share_rows = !strcmp(optarg, "experts,dense");
			split = true;
			break;
		case 'r':
			if (parse_long("--rank", optarg, 0, 4095, &rank))
				goto out;
			break;
		case 'n':
			if (parse_long("--ranks", optarg, 2, 4096, &ranks))
				goto out;
			break;
		case 'H': heat_path = optarg; break;
		case 'J': json = true; break;
		case 'h': fputs(usage, stdout); rc = 0; goto out;
		default: fputs(usage, stderr); goto out;
		}
	}
	if (optind < argc) {
		usage_error(CMD, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (!model || !o.name) {
		usage_error(CMD, "-m MODEL.gguf and --name NAME are required (see --help)");
		goto out;
	}
	if (split != (rank >= 0) || split != (ranks > 0) || (split && rank >= ranks)) {
		usage_error(CMD, "--split, --rank R and --ranks N go together, with 0 <= R < N");
		goto out;
	}
	if (heat_path && (!split || o.share_layers)) {
		usage_error(CMD, "--expert-heat assigns experts to ranks: it needs --split experts --rank R --ranks N");
		goto out;
	}
	/* checked to be this model's by the import, which hashes it */
	if (heat_path && (err = tm_xheat_read(&heat, heat_path))) {
		rc = err == -ENOMEM ? run_error(CMD, "%s", tm_strerror()) :
				      usage_error(CMD, "--expert-heat: %s", tm_strerror());
		goto out;
	}
	o.share_heat = heat_path ? &heat : NULL;
	o.share_rank = (int)rank;
	o.share_ranks = (int)ranks;
	if (o.plan_path && (o.n_tiers || o.n_ot)) {
		usage_error(CMD, "--plan already says where every tensor goes: give it without --tier and -ot");
		goto out;
	}
	o.tiers = tiers;
	o.ot = ot;
	if (!quiet && isatty(STDERR_FILENO)) {
		bar.tty = true;
		o.progress = on_progress;
		o.arg = &bar;
	}
	err = tm_import(model, &o, &r);
	if (bar.phase)
		fputc('\n', stderr);
	if (err) {
		if (err == -ENOMEM || err == -EIO)
			rc = run_error(CMD, "%s", tm_strerror());
		else
			rc = usage_error(CMD, "%s", tm_strerror());
		goto out_plan;
	}
	if (json) {
		rc = print_json(&o, &r);
		goto out_plan;
	}
	if (r.unchanged) {
		printf("%s: already imported with the same contents (hash %.12s); nothing to do\n", o.name,
		       r.hash);
	} else {
		printf("%s: imported %.2f GB in %.2f s (%.0f MB/s), hash %.12s, %s store\n", o.name,
		       r.bytes / 1e9, r.seconds, r.seconds > 0 ? r.bytes / r.seconds / 1e6 : 0, r.hash,
		       r.module ? "tiermem module" : "userspace");
		print_share(&o, &r);
		print_placement(&r);
	}
	rc = 0;
out_plan:
	tm_plan_free(&r.plan);
	goto out;
oom:
	rc = run_error(CMD, "out of memory");
out:
	tm_xheat_free(&heat);
	free(tiers);
	free(ot);
	return rc;
}
