// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "run", cmd_run, "generate text from a prompt and report tok/s and weight bytes per token" },
	{ "logits", cmd_logits, "evaluate token ids and write the raw logits of every position" },
	{ "serve", cmd_serve, "an OpenAI-compatible HTTP server with continuous batching, metrics and a dashboard" },
	{ "tokenize", cmd_tokenize, "print the token ids of a text under a model's vocabulary" },
	{ "bench", cmd_bench, "measure the read bandwidth of each memory tier and the decode ceiling" },
	{ "profile", cmd_profile, "record which experts a MoE model's tokens use: a heat file, a routing trace" },
	{ "plan", cmd_plan, "place a model's tensors on memory tiers and predict tok/s (no memory touched)" },
	{ "import", cmd_import, "copy a GGUF once into tier regions by a placement plan (run it with --name)" },
	{ "list", cmd_list, "the imported models: name, state, size, tiers, hash, source" },
	{ "rm", cmd_rm, "delete imported models and free their regions" },
	{ "synth", cmd_synth, "write a GGUF model with random weights (llama, llama-moe, qwen3, qwen3moe; any type)" },
	{ "convert", cmd_convert, "convert a llama2.c checkpoint to GGUF" },
	{ "info", cmd_info, "the tiermem module: version, tiers, PMEM, regions with state, size, owner" },
	{ "stats", cmd_stats, "counters per tier and region, read GB/s with --watch" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: tiermem COMMAND [options]   (tiermem COMMAND --help for its options)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "tiermem: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
