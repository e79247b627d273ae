// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"

int parse_size(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	if (!s || !isdigit((unsigned char)*s))
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno)
		goto bad;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: goto bad;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		goto bad;
	*out = (uint64_t)v << shift;
	return 0;
bad:
	fprintf(stderr, "tiermem: %s: '%s' is not a size (examples: 4096, 64K, 2M, 16G)\n", opt, s ? s : "");
	return -1;
}

int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = s ? strtol(s, &end, 10) : 0;
	if (!s || !*s || *end || errno) {
		fprintf(stderr, "tiermem: %s: '%s' is not a whole number\n", opt, s ? s : "");
		return -1;
	}
	if (v < lo || v > hi) {
		fprintf(stderr, "tiermem: %s: %ld is out of range [%ld, %ld]\n", opt, v, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = s ? strtod(s, &end) : 0;
	if (!s || !*s || *end || errno || isnan(v)) {
		fprintf(stderr, "tiermem: %s: '%s' is not a number\n", opt, s ? s : "");
		return -1;
	}
	if (v < lo || v > hi) {
		fprintf(stderr, "tiermem: %s: %g is out of range [%g, %g]\n", opt, v, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static void vreport(const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "tiermem %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cmd, fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

int run_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cmd, fmt, ap);
	va_end(ap);
	return 1;
}
