// SPDX-License-Identifier: MIT
#include "cli/args.h"
#include "cli/commands.h"

int cmd_convert(int argc, char **argv)
{
	return usage_error("convert", "not written yet");
}
