// SPDX-License-Identifier: MIT
/* tiermem list and tiermem rm: the models in the store. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiermem/error.h"
#include "tiermem/store.h"

static const char list_usage[] =
	"usage: tiermem list [--json]\n"
	"\n"
	"The models in the store (tiermem import): name, state, size, tiers, backend,\n"
	"content hash and source GGUF. State is sealed (runs), importing (pid),\n"
	"incomplete (an import was interrupted: import again or tiermem rm it) or\n"
	"regions missing (deleted or lost: import again with --replace or rm it).\n";

static const char rm_usage[] =
	"usage: tiermem rm NAME...\n"
	"\n"
	"Deletes models from the store: the manifest first (so nothing trusts a half-\n"
	"deleted model), then its regions. An incomplete import is cleared the same way.\n";

static void print_json(const struct tm_store_model *m, size_t n)
{
	json_t *arr = json_array();
	char *text;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:I, s:s, s:s, s:s, s:s}",
			"name", m[i].name, "state", m[i].state, "usable", m[i].usable,
			"bytes", (json_int_t)m[i].bytes, "tiers", m[i].tiers, "backend", m[i].backend,
			"hash", m[i].hash, "source", m[i].source));
	text = json_dumps(arr, JSON_INDENT(1));
	if (text)
		puts(text);
	free(text);
	json_decref(arr);
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct tm_store_model *m;
	bool json = false;
	size_t n;
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': fputs(list_usage, stdout); return 0;
		default: fputs(list_usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error("list", "unexpected argument '%s'", argv[optind]);
	if ((err = tm_store_list(&m, &n)))
		return run_error("list", "%s", tm_strerror());
	if (json) {
		print_json(m, n);
	} else if (!n) {
		printf("no models (tiermem import -m FILE --name NAME adds one)\n");
	} else {
		printf("%-20s %-34s %10s  %-7s %-12s %s\n", "NAME", "STATE", "SIZE", "BACKEND", "HASH",
		       "TIERS / SOURCE");
		for (size_t i = 0; i < n; i++)
			printf("%-20s %-34s %8.1f MiB  %-7s %-12.12s %s%s%s\n", m[i].name, m[i].state,
			       m[i].bytes / 1048576.0, m[i].backend, m[i].hash[0] ? m[i].hash : "-",
			       m[i].tiers, m[i].tiers[0] ? " / " : "", m[i].source);
	}
	free(m);
	return 0;
}

int cmd_rm(int argc, char **argv)
{
	int rc = 0, err;

	if (argc < 2)
		return usage_error("rm", "give the name of a model (tiermem list shows them)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(rm_usage, stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		err = tm_store_remove(argv[i]);
		if (!err) {
			printf("removed %s\n", argv[i]);
			continue;
		}
		if (err == -ENOENT || err == -EINVAL || err == -EBUSY)
			rc = usage_error("rm", "%s", tm_strerror());
		else if (!rc)
			rc = run_error("rm", "%s", tm_strerror());
		else
			run_error("rm", "%s", tm_strerror());
	}
	return rc;
}
