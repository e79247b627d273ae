// SPDX-License-Identifier: MIT
#include "cli/args.h"
#include "cli/commands.h"

/* Replaced by the bandwidth benchmark in the next commit. */
int cmd_bench(int argc, char **argv)
{
	return run_error("bench", "not built yet");
}
