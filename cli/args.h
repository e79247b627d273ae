/* SPDX-License-Identifier: MIT */
/* Argument parsing shared by the subcommands: strict, with errors that name the option. */
#ifndef TIERMEM_CLI_ARGS_H
#define TIERMEM_CLI_ARGS_H

#include <stdint.h>

#define EXIT_USAGE 2

/* "4096", "64K", "2M", "16G", "1T" (powers of 1024); -1 and a message on bad input. */
int parse_size(const char *opt, const char *s, uint64_t *out);
/* A whole number in [lo, hi]; -1 and a message naming opt otherwise. */
int parse_long(const char *opt, const char *s, long lo, long hi, long *out);
int parse_double(const char *opt, const char *s, double lo, double hi, double *out);

/*
 * llama.cpp's single-dash long flags (-ngl, -ctk): getopt_long would read
 * -ctk as -c -t k, so each is rewritten to its long name (argv[i] = name)
 * before getopt_long sees argv; scanning stops at "--".
 */
void args_alias(int argc, char **argv, const char *alias, char *name);
/* -ot -> --override-tensor (tiermem plan, import). */
void args_ot_alias(int argc, char **argv);
/* -ctk/-ctv -> --cache-type-k/-v */
void args_kv_aliases(int argc, char **argv);
/* "f32" or "f16" -> the GGML type id; -1 and a message naming opt otherwise. */
int parse_kv_type(const char *opt, const char *s, int *out);
#define KV_TYPE_OPTIONS \
	{ "cache-type-k", required_argument, NULL, 0x4b54 }, \
	{ "cache-type-v", required_argument, NULL, 0x5654 }
#define OPT_CACHE_TYPE_K 0x4b54
#define OPT_CACHE_TYPE_V 0x5654

/*
 * --expert-heat FILE of the model m (opened by --name name, or NULL): read
 * and checked (tm_xheat_read_model), a note when only its shape could be.
 * 0, or an exit code after a message.
 */
struct tm_xheat;
struct tm_model;
int read_heat_arg(const char *cmd, const char *path, const struct tm_model *m, const char *name,
		  struct tm_xheat *h);

/* The default thread count: the CPUs this process may run on. */
int default_threads(void);

/* Print "tiermem CMD: message" to stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "tiermem CMD: message" to stderr; returns 1. */
int run_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
