// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "cli/args.h"
#include "cli/gpu_args.h"
#include "tiermem/error.h"

void gpu_args_rewrite(int argc, char **argv)
{
	static char long_form[] = "--n-gpu-layers";

	args_alias(argc, argv, "-ngl", long_form);
}

int gpu_args_parse_ngl(const char *cmd, const char *s, long *ngl)
{
	if (parse_long("-ngl", s, 0, 1L << 30, ngl))
		return EXIT_USAGE;
	return 0;
}

int gpu_args_probe(const char *cmd, long ngl)
{
	struct tm_gpu_info info;

	if (ngl && tm_gpu_probe(&info))
		return usage_error(cmd, "--gpu: %s", tm_strerror());
	return 0;
}

int gpu_args_attach(const char *cmd, struct tm_ctx *ctx, long ngl, struct tm_gpu_info *info)
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
	if ((err = tm_gpu_probe(info)) || (err = tm_gpu_attach(ctx))) {
		if (err == -ENODEV || err == -EOPNOTSUPP || err == -EINVAL)
			return usage_error(cmd, "--gpu: %s", tm_strerror());
		return run_error(cmd, "--gpu: %s", tm_strerror());
	}
	return 0;
}
