/* SPDX-License-Identifier: MIT */
#ifndef TIERMEM_CLI_COMMANDS_H
#define TIERMEM_CLI_COMMANDS_H

/*
 * Each subcommand is int cmd_NAME(int argc, char **argv), argv[0] being its
 * name. Exit codes: 0 success, 1 the work failed, 2 bad usage or bad input.
 */
int cmd_bench(int argc, char **argv);
/* tiermem bench --decode MODEL (cmd_bench hands it argv when --decode is given) */
int cmd_bench_decode(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_serve(int argc, char **argv);
/* bench --expert-trace and synth --expert-trace: the expert cache's trace tools */
int cmd_bench_experts(int argc, char **argv);
int cmd_synth_trace(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);

#endif
