/* SPDX-License-Identifier: MIT */
/*
 * The options every command that runs a model takes, parsed and acted on in
 * one place: -m/--model or --name, --no-verify, --weights, -t/--threads and
 * the KV cache types. A command puts MODEL_ARGS_OPTIONS in its getopt table
 * and hands every code it does not know to model_args_option first.
 */
#ifndef TIERMEM_CLI_MODEL_ARGS_H
#define TIERMEM_CLI_MODEL_ARGS_H

#include <stdbool.h>

#include "cli/args.h"

struct tm_model;

struct model_args {
	const char *path;	/* -m */
	const char *name;	/* --name */
	unsigned int open_flags;	/* TM_OPEN_* for --name */
	int load;		/* enum tm_load for -m */
	long threads;
	int type_k, type_v;	/* GGML type ids of the KV cache */
	bool repack;		/* --repack: interleaved-row layout where weights are loaded into DDR */
};

#define OPT_MA_NAME 0x4d4e
#define OPT_MA_NO_VERIFY 0x4d56
#define OPT_MA_WEIGHTS 0x4d57
#define OPT_MA_REPACK 0x4d52
/* 'm' and 't' are also short options: put "m:t:" in the getopt string */
#define MODEL_ARGS_OPTIONS \
	{ "model", required_argument, NULL, 'm' }, \
	{ "name", required_argument, NULL, OPT_MA_NAME }, \
	{ "no-verify", no_argument, NULL, OPT_MA_NO_VERIFY }, \
	{ "weights", required_argument, NULL, OPT_MA_WEIGHTS }, \
	{ "repack", required_argument, NULL, OPT_MA_REPACK }, \
	{ "threads", required_argument, NULL, 't' }, \
	KV_TYPE_OPTIONS

/* Defaults: the CPUs this process may use, --weights load, KV cache type kv (TM_F16, TM_F32), --repack on. */
void model_args_init(struct model_args *a, int load, int kv);
/* Rewrite llama.cpp's single-dash spellings (-ctk, -ctv) before getopt_long. */
void model_args_rewrite(int argc, char **argv);
/*
 * *handled = false for a code that is not a model option; else 0, or
 * EXIT_USAGE after a message naming the option and the command.
 */
int model_args_option(struct model_args *a, const char *cmd, int code, const char *arg, bool *handled);
/* After parsing: -m and --name together, --no-verify without --name, no model when one is needed. */
int model_args_check(const struct model_args *a, const char *cmd, bool required);
/* The model named by -m or --name; 0, or the exit code after a message. */
int model_args_open(const struct model_args *a, const char *cmd, struct tm_model *m);
/* What to call the model in messages: the path or the store name. */
const char *model_args_label(const struct model_args *a);

#endif
