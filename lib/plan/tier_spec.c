// SPDX-License-Identifier: MIT
/*
 * The planner's command-line vocabulary: --tier NAME=KIND:SIZE[@GBPS][,ch=G][,path=P]
 * and -ot REGEX=TIER. Parsed in lib/ because `plan` and `import` both take them.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/error.h"
#include "tiermem/plan.h"
#include "tiermem/size.h"

static const char *const kind_names[TM_KIND_COUNT] = {
	[TM_KIND_DDR] = "ddr",
	[TM_KIND_PMEM] = "pmem",
	[TM_KIND_NODE] = "node",
	[TM_KIND_FILE] = "file",
	[TM_KIND_VRAM] = "vram",
	[TM_KIND_PCIE] = "pcie",
};

const char *tm_tier_kind_name(enum tm_tier_kind kind)
{
	return (unsigned int)kind < TM_KIND_COUNT ? kind_names[kind] : "?";
}

/* A tier or group name: it appears in plans, manifests and -ot, so keep it plain. */
static bool plain_name(const char *s, size_t len)
{
	if (!len || len >= TM_TIER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

/* KIND at *s: advances past it. */
static int parse_kind(const char **s, const char *arg, struct tm_tier_spec *t)
{
	const char *p = *s;

	for (int k = 0; k < TM_KIND_COUNT; k++) {
		size_t n = strlen(kind_names[k]);

		if (strncmp(p, kind_names[k], n) || p[n] != ':')
			continue;
		t->kind = k;
		p += n + 1;
		if (k == TM_KIND_NODE) {
			char *end;
			long node;

			errno = 0;
			node = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : -1;
			if (node < 0 || errno || node > 4095 || *end != ':')
				return tm_err(-EINVAL, "--tier %s: node:N needs a node number and ':SIZE' after it", arg);
			t->node = (int)node;
			p = end + 1;
		}
		*s = p;
		return 0;
	}
	return tm_err(-EINVAL, "--tier %s: kind must be ddr, pmem, node:N, file, vram or pcie (NAME=KIND:SIZE[@GBPS], NAME=pcie:[@GBPS])",
		      arg);
}

/* The ,ch=GROUP and ,path=PATH options after SIZE[@GBPS]. */
static int parse_options(const char *p, const char *arg, struct tm_tier_spec *t)
{
	while (*p == ',') {
		p++;
		if (!strncmp(p, "path=", 5)) {
			/* the rest, commas included: paths may hold anything */
			if (strlen(p + 5) >= sizeof(t->path))
				return tm_err(-EINVAL, "--tier %s: path is longer than %zu bytes", arg, sizeof(t->path) - 1);
			strcpy(t->path, p + 5);
			return 0;
		}
		if (!strncmp(p, "ch=", 3)) {
			size_t n = strcspn(p + 3, ",");

			if (!plain_name(p + 3, n))
				return tm_err(-EINVAL, "--tier %s: ch= needs a group name of letters, digits, '_', '-', '.'", arg);
			memcpy(t->group, p + 3, n);
			t->group[n] = '\0';
			p += 3 + n;
			continue;
		}
		return tm_err(-EINVAL, "--tier %s: unknown option after the size (ch=GROUP or path=PATH)", arg);
	}
	if (*p)
		return tm_err(-EINVAL, "--tier %s: unexpected '%s' (NAME=KIND:SIZE[@GBPS][,ch=GROUP][,path=PATH])", arg, p);
	return 0;
}

int tm_tier_spec_parse(const char *arg, struct tm_tier_spec *out)
{
	struct tm_tier_spec t = { 0 };
	const char *eq, *p;
	char num[64];
	size_t n;
	int err;

	if (!arg || !(eq = strchr(arg, '=')))
		return tm_err(-EINVAL, "--tier %s: expected NAME=KIND:SIZE[@GBPS] (e.g. fast=ddr:64G@100)", arg ? arg : "");
	if (!plain_name(arg, (size_t)(eq - arg)))
		return tm_err(-EINVAL, "--tier %s: the name must be 1-%d letters, digits, '_', '-', '.'",
			      arg, TM_TIER_NAME_MAX - 1);
	memcpy(t.name, arg, (size_t)(eq - arg));
	p = eq + 1;
	if ((err = parse_kind(&p, arg, &t)))
		return err;

	/* a link, not a store: it holds nothing, so it has no size */
	if (t.kind == TM_KIND_PCIE && *p && *p != '@')
		return tm_err(-EINVAL, "--tier %s: a pcie tier is the GPU's link to host memory and holds nothing: "
			      "give NAME=pcie:@GBPS or NAME=pcie: (measured), no size", arg);
	if (t.kind != TM_KIND_PCIE) {
		n = strcspn(p, "@,");
		if (!n || n >= sizeof(num))
			return tm_err(-EINVAL, "--tier %s: missing size after the kind", arg);
		memcpy(num, p, n);
		num[n] = '\0';
		if (tm_parse_size(num, &t.capacity) || !t.capacity)
			return tm_err(-EINVAL, "--tier %s: '%s' is not a size (examples: 64G, 768G, 1T)", arg, num);
		p += n;
	}
	if (*p == '@') {
		char *end;

		p++;
		n = strcspn(p, ",");
		if (!n || n >= sizeof(num))
			return tm_err(-EINVAL, "--tier %s: missing GB/s after '@'", arg);
		memcpy(num, p, n);
		num[n] = '\0';
		errno = 0;
		t.gbps = strtod(num, &end);
		if (*end || errno || !isfinite(t.gbps) || t.gbps <= 0 || t.gbps > 1e6)
			return tm_err(-EINVAL, "--tier %s: '%s' is not a bandwidth in GB/s (e.g. 39 or 280.5)", arg, num);
		t.gbps_given = true;
		p += n;
	}
	if ((err = parse_options(p, arg, &t)))
		return err;
	*out = t;
	return 0;
}

int tm_override_parse(const char *arg, struct tm_override *out)
{
	struct tm_override o = { 0 };
	const char *eq = arg ? strrchr(arg, '=') : NULL;
	regex_t re;
	int rc;

	/* the last '=': a regex may contain one, a tier name never does */
	if (!eq || eq == arg)
		return tm_err(-EINVAL, "-ot %s: expected REGEX=TIER (e.g. 'ffn_.*_exps=pmem')", arg ? arg : "");
	if ((size_t)(eq - arg) >= sizeof(o.regex))
		return tm_err(-EINVAL, "-ot %s: the regex is longer than %zu bytes", arg, sizeof(o.regex) - 1);
	if (!plain_name(eq + 1, strlen(eq + 1)))
		return tm_err(-EINVAL, "-ot %s: '%s' is not a tier name", arg, eq + 1);
	memcpy(o.regex, arg, (size_t)(eq - arg));
	strcpy(o.tier, eq + 1);
	rc = regcomp(&re, o.regex, REG_EXTENDED | REG_NOSUB);
	if (rc) {
		char msg[128];

		regerror(rc, &re, msg, sizeof(msg));
		return tm_err(-EINVAL, "-ot %s: bad regex: %s", arg, msg);
	}
	regfree(&re);
	*out = o;
	return 0;
}
