/* SPDX-License-Identifier: MIT */
/* Sizes as people write them, for the CLI and for specs parsed in lib/. */
#ifndef TIERMEM_SIZE_H
#define TIERMEM_SIZE_H

#include <stdint.h>

/*
 * "4096", "64K", "2M", "16G", "1T" (powers of 1024; an optional "i" and "B"
 * after the suffix). 0 or -EINVAL (not a size, or it overflows 64 bits).
 */
int tm_parse_size(const char *s, uint64_t *out);

#endif
