// SPDX-License-Identifier: MIT
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/model_args.h"
#include "kernels/kernels.h"
#include "tiermem/error.h"
#include "tiermem/model.h"
#include "tiermem/store.h"

void model_args_init(struct model_args *a, int load, int kv)
{
	*a = (struct model_args){ .load = load, .threads = default_threads(), .type_k = kv, .type_v = kv,
				    .repack = tm_kernels_repack_default() };
}

void model_args_rewrite(int argc, char **argv)
{
	args_kv_aliases(argc, argv);
}

int model_args_option(struct model_args *a, const char *cmd, int code, const char *arg, bool *handled)
{
	*handled = true;
	switch (code) {
	case 'm':
		a->path = arg;
		return 0;
	case OPT_MA_NAME:
		a->name = arg;
		return 0;
	case OPT_MA_NO_VERIFY:
		a->open_flags |= TM_OPEN_NO_VERIFY;
		return 0;
	case OPT_MA_WEIGHTS:
		if ((a->load = tm_load_parse(arg)) < 0)
			return usage_error(cmd, "--weights: '%s' is not auto, mmap or ddr", arg);
		return 0;
	case OPT_MA_REPACK:
		if (strcmp(arg, "on") && strcmp(arg, "off"))
			return usage_error(cmd, "--repack: '%s' is not on or off", arg);
		a->repack = !strcmp(arg, "on");
		return 0;
	case 't':
		return parse_long("-t", arg, 1, 1024, &a->threads) ? EXIT_USAGE : 0;
	case OPT_CACHE_TYPE_K:
		return parse_kv_type("--cache-type-k", arg, &a->type_k) ? EXIT_USAGE : 0;
	case OPT_CACHE_TYPE_V:
		return parse_kv_type("--cache-type-v", arg, &a->type_v) ? EXIT_USAGE : 0;
	}
	*handled = false;
	return 0;
}

int model_args_check(const struct model_args *a, const char *cmd, bool required)
{
	if (a->path && a->name)
		return usage_error(cmd, "give -m MODEL or --name NAME, not both");
	if ((a->open_flags & TM_OPEN_NO_VERIFY) && !a->name)
		return usage_error(cmd, "--no-verify applies to --name (a model in the store) only");
	if (required && !a->path && !a->name)
		return usage_error(cmd, "no model: give -m MODEL.gguf or --name NAME");
	return 0;
}

int model_args_open(const struct model_args *a, const char *cmd, struct tm_model *m)
{
	int err;

	if (a->name)
		err = tm_model_open_name(m, a->name, a->open_flags);
	else
		err = tm_model_open_layout(m, a->path, (enum tm_load)a->load, a->repack);
	if (!err)
		return 0;
	return tm_model_err_is_input(err) ? usage_error(cmd, "%s", tm_strerror()) :
					    run_error(cmd, "%s", tm_strerror());
}

const char *model_args_label(const struct model_args *a)
{
	return a->name ? a->name : a->path;
}
