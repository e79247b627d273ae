// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/gpu_args.h"
#include "tiermem/error.h"

void gpu_args_rewrite(int argc, char **argv)
{
	static char long_form[] = "--n-gpu-layers";

	args_alias(argc, argv, "-ngl", long_form);
	args_ot_alias(argc, argv);
}

int gpu_args_parse_ot(const char *cmd, const char *s, struct gpu_ot *o)
{
	if (o->n == (int)(sizeof(o->ot) / sizeof(o->ot[0])))
		return usage_error(cmd, "at most %zu -ot rules", sizeof(o->ot) / sizeof(o->ot[0]));
	if (tm_override_parse(s, &o->ot[o->n]))
		return usage_error(cmd, "%s", tm_strerror());
	if (tm_gpu_place_parse(o->ot[o->n].tier) < 0)
		return usage_error(cmd, "-ot %s: the place is VRAM, CPU (routed experts on the CPU) or pcie", s);
	o->n++;
	return 0;
}

int gpu_args_parse_ngl(const char *cmd, const char *s, long *ngl)
{
	if (parse_long("-ngl", s, 0, 1L << 30, ngl))
		return EXIT_USAGE;
	return 0;
}

int gpu_args_probe(const char *cmd, long ngl, const struct gpu_ot *ot)
{
	struct tm_gpu_info info;

	if (ot->n && !ngl)
		return usage_error(cmd, "-ot places tensors around the GPU: give --gpu (to place tensors on tiers: tiermem import -ot)");
	if (ngl && tm_gpu_probe(&info))
		return usage_error(cmd, "--gpu: %s", tm_strerror());
	return 0;
}

int gpu_args_attach(const char *cmd, struct tm_ctx *ctx, long ngl, const struct gpu_ot *ot, struct tm_gpu_info *info,
		    struct tm_xvram *xv)
{
	int n_layer = ctx->m->hp.n_layer, err;

	memset(info, 0, sizeof(*info));
	if (ngl == 0)
		return 0;
	if (ctx->m->share_ranks > 1)
		return usage_error(cmd, "--gpu: this model holds only a share of its routed experts "
				   "(tiermem import --split): the GPU takes whole models");
	if (ngl > 0 && ngl < n_layer)
		return usage_error(cmd, "-ngl %ld: the model has %d layers, and splitting them between GPU and CPU is not supported yet; use -ngl %d (or 999, or --gpu) for all, 0 for none",
				   ngl, n_layer, n_layer);
	if ((err = tm_gpu_probe(info)) || (err = tm_gpu_attach_xvram(ctx, ot->ot, ot->n, xv))) {
		if (err == -ENODEV || err == -EOPNOTSUPP || err == -EINVAL)
			return usage_error(cmd, "--gpu: %s", tm_strerror());
		return run_error(cmd, "--gpu: %s", tm_strerror());
	}
	return 0;
}

void gpu_args_summary(const struct tm_ctx *ctx, int n)
{
	uint64_t cpu = ctx->weight_bytes - ctx->vram_bytes - ctx->pcie_bytes;

	if (n < 1)
		return;
	fprintf(stderr, "weights:     %.2f MB/token from VRAM, %.2f MB/token over PCIe, %.2f MB/token by the CPU "
		"(averaged over the %d prompt and generated tokens)\n", ctx->vram_bytes / 1e6 / n,
		ctx->pcie_bytes / 1e6 / n, cpu / 1e6 / n, n);
}
