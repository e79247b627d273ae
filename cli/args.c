// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/model.h"
#include "tiermem/size.h"

int parse_size(const char *opt, const char *s, uint64_t *out)
{
	if (!tm_parse_size(s, out))
		return 0;
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

void args_alias(int argc, char **argv, const char *alias, char *name)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], alias))
			argv[i] = name;
	}
}

void args_kv_aliases(int argc, char **argv)
{
	static char k[] = "--cache-type-k", v[] = "--cache-type-v";

	args_alias(argc, argv, "-ctk", k);
	args_alias(argc, argv, "-ctv", v);
}

/* llama.cpp spells it -ot; getopt would read -o -t */
void args_ot_alias(int argc, char **argv)
{
	static char ot[] = "--override-tensor";

	args_alias(argc, argv, "-ot", ot);
}

int parse_kv_type(const char *opt, const char *s, int *out)
{
	int t = tm_kv_type_parse(s);

	if (t < 0) {
		fprintf(stderr, "tiermem: %s: '%s' is not a KV cache type this build runs (f32, f16, q8_0)\n", opt, s);
		return -1;
	}
	*out = t;
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

int default_threads(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
}

int read_heat_arg(const char *cmd, const char *path, const struct tm_model *m, const char *name,
		  struct tm_xheat *h)
{
	bool shape_only;
	int err = tm_xheat_read_model(h, path, m, name, &shape_only);

	if (err)
		return err == -EINVAL ? usage_error(cmd, "--expert-heat: %s", tm_strerror()) :
					run_error(cmd, "--expert-heat: %s", tm_strerror());
	if (shape_only)
		fprintf(stderr, "tiermem %s: note: --expert-heat: the model's hash cannot be computed here; only "
			"the heat's shape was checked\n", cmd);
	return 0;
}
