/* SPDX-License-Identifier: MIT */
/*
 * --split and --mpi-timeout for run, logits and serve (Documentation/tiermem-scale.rst).
 * The plain build parses them and refuses --split with a message pointing to
 * build/tiermem-mpi; the MPI build (TM_HAVE_MPI) runs lib/mpi/. The
 * commands call the same functions in both builds.
 */
#ifndef TIERMEM_CLI_SPLIT_ARGS_H
#define TIERMEM_CLI_SPLIT_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tiermem/generate.h"
#include "tiermem/model.h"

struct tm_mpi_split;
struct tm_xassign;

struct split_args {
	int kind;			/* enum tm_split_kind; 0: no --split */
	double timeout;			/* --mpi-timeout seconds */
	const char *heat;		/* --expert-heat: the experts' assignment balances it */
	struct tm_xassign *assign;	/* --split experts[,dense]: whose each expert is, once made */
	bool equal_groups;		/* serve --pipeline-groups equal */
	struct tm_mpi_split *mpi;	/* once started */
};

#define OPT_SPLIT 0x5350
#define OPT_MPI_TIMEOUT 0x4d54
#define OPT_SPLIT_HEAT 0x5348
#define SPLIT_OPTIONS \
	{ "split", required_argument, NULL, OPT_SPLIT }, \
	{ "mpi-timeout", required_argument, NULL, OPT_MPI_TIMEOUT }
/* logits: --expert-heat for the split alone (run and serve have it from their expert cache's options) */
#define SPLIT_HEAT_OPTION { "expert-heat", required_argument, NULL, OPT_SPLIT_HEAT }
#define SPLIT_HEAT_HELP \
	"  --expert-heat FILE with --split experts: assign the experts to the ranks by\n" \
	"                     this heat (tiermem profile of this model), as run does\n"
#define SPLIT_HELP \
	"  --split experts|layers|experts,dense\n" \
	"                     under mpirun, with build/tiermem-mpi: experts: each rank\n" \
	"                     computes its share of each MoE layer's experts (with\n" \
	"                     --expert-heat FILE: balanced by expected reads per token,\n" \
	"                     hottest first onto the least loaded rank, at most\n" \
	"                     ceil(experts / ranks) a rank; else expert e on rank\n" \
	"                     e % ranks), the experts' sums are added over the ranks; layers:\n" \
	"                     each rank computes a range of layers (balanced by bytes\n" \
	"                     read per token) and passes the activations on;\n" \
	"                     experts,dense: experts, and each rank computes 1/ranks of\n" \
	"                     every dense matrix's rows, gathered after each (tensor\n" \
	"                     parallel; a dense model too). Every rank must open the\n" \
	"                     same model with the same split\n" \
	"  --mpi-timeout SEC  with --split: a rank that waits this long for the others\n" \
	"                     in one MPI call gives up (default 60; 0: never)\n"

void split_args_init(struct split_args *a);
/* One of OPT_SPLIT, OPT_MPI_TIMEOUT, OPT_SPLIT_HEAT: 0, or EXIT_USAGE after a message. */
int split_args_option(const char *cmd, struct split_args *a, int opt, const char *arg);
/*
 * With --split: start MPI and set ctx up for this rank (name: the store
 * name the model was opened by, or NULL); 0, or an exit code after a message.
 */
int split_args_start(const char *cmd, struct split_args *a, struct tm_ctx *ctx, const char *name);
/* This process's rank (0 without --split): only rank 0 writes results. */
int split_args_rank(const struct split_args *a);
/* The sampler tm_generate is to call: sample itself, or rank 0's broadcast over MPI. */
void split_args_sampler(struct split_args *a, tm_sample_fn *sample, void **sampler);
/* logits: bring the last stage's rows to rank 0 (layers). */
void split_args_logits(struct split_args *a, float *logits, int rows);
/* Counters since the prompt, per token, on rank 0 (collective). */
void split_args_report(struct split_args *a, FILE *f, uint64_t tokens);
/*
 * serve: is this process an MPI follower rank (starts MPI with --split)?
 * 1 yes, 0 no, or minus an exit code after a message.
 */
int split_args_follower(const char *cmd, const struct split_args *a);
/* What this rank computes, for an expert cache that is to hold only that. */
struct split_part {
	const struct tm_xassign *assign;	/* --split experts: the rank's experts (else NULL: all) */
	int rank;
	int first, last;	/* --split layers: layers [first, last) (else all) */
};
/*
 * Before tm_mpi_split_start (starts MPI with --split; name: as for
 * split_args_start). 0, or an exit code after a message.
 */
int split_args_part(const char *cmd, struct split_args *a, const struct tm_model *m, const char *name,
		    struct split_part *p);
/*
 * serve, with --split: start MPI on srv's contexts; on a follower rank, then
 * run rank 0's forward calls until it stops. 0, or an exit code after a message.
 */
struct tm_server;
int split_args_serve(const char *cmd, struct split_args *a, struct tm_server *srv, const char *name);
/* rank 0, after tm_serve_run: the followers stop */
void split_args_serve_stop(struct split_args *a);
void split_args_free(struct split_args *a);

#endif
