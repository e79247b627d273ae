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

/* Print "tiermem CMD: message" to stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "tiermem CMD: message" to stderr; returns 1. */
int run_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
