/* SPDX-License-Identifier: MIT */
/*
 * Decode over several processes with MPI (Documentation/tiermem-scale.rst).
 * experts: every process holds the whole model and computes everything but
 * the routed experts, of which it computes only its share
 * (tm_xassign_make: balanced by heat, or expert e on rank e % ranks); each
 * MoE layer's weighted expert sum is summed over the ranks before it joins
 * the residual stream. layers: rank r
 * computes a contiguous range of layers (tm_plan_stages: balanced by bytes
 * read per token) and passes the activations to rank r + 1; the last rank
 * computes the logits. Rank 0 samples and broadcasts each token. Built only
 * into build/tiermem-mpi (when mpicc is found); the rest of tiermem knows
 * nothing of MPI.
 *
 * A failed MPI call, or a wait for the other ranks longer than the timeout
 * (a rank died or hangs: Open MPI 4.1 as Debian builds it has no ULFM, so a
 * dead peer on shared memory is not an error MPI returns), prints one line
 * naming the rank and the call and ends the process with _exit(1): the
 * collective cannot complete, and MPI_Finalize would wait for it too.
 */
#ifndef TIERMEM_MPI_SPLIT_H
#define TIERMEM_MPI_SPLIT_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "tiermem/generate.h"
#include "tiermem/model.h"

enum tm_split_kind {
	TM_SPLIT_NONE,
	TM_SPLIT_EXPERTS,
	TM_SPLIT_LAYERS,
	TM_SPLIT_EXPERTS_DENSE,	/* experts, and every dense matrix's rows (tensor parallel, lib/mpi/dense.c) */
};

/* What one rank counted: since the start, and since tm_mpi_mark. */
struct tm_mpi_counts {
	double sec;		/* wall time */
	double mpi_sec;		/* inside MPI calls that move data, waiting for the others included */
	uint64_t calls;		/* such calls */
	uint64_t sent;		/* bytes this rank sent (a broadcast counts once, on its root) */
	uint64_t weight_bytes;	/* weights the forward passes read */
	uint64_t map_bytes[TM_MODEL_MAX_MAPS];
	/*
	 * serve --split layers: time this rank computed its layers (not
	 * waiting in MPI); rank 0: time at least one call was in the pipeline
	 * (every rank computes only then, so the ranks' busy time over it is
	 * above 1 only if ranks computed at once), and calls made while
	 * another was still in it. On one machine tm_mpi_report also
	 * measures the time two or more ranks computed at once.
	 */
	double busy_sec, active_sec;
	uint64_t overlapped;
};

struct tm_mpi_split {
	struct tm_expert_hook hook;
	const struct tm_expert_hook *inner;	/* experts: an expert cache's, which hook passes calls on to */
	struct tm_stage_hook stage;
	const struct tm_xassign *assign;	/* experts: whose each expert is (the caller's, outlives s) */
	enum tm_split_kind kind;
	int rank, ranks;
	int n_embd, n_vocab;
	int first, last;	/* layers: this rank's [first, last) */
	double busy_t0;		/* when this rank began computing, if busy */
	bool busy;
	double *spans;		/* [t0, t1) of each time it computed (lib/mpi/overlap.c) */
	int n_spans;
	bool spans_full;
	int rows_left;		/* serve: rows of the current call this rank is still to send on */
	uint64_t tokens;	/* serve, rank 0: tokens decoded */
	struct tm_mpi_serve *serve;	/* serve's state (serve_follow.c) */
	bool equal_groups;	/* serve --split layers: a group per stage, not by cost (before tm_mpi_serve_start) */
	float *sum;		/* experts: reduce's buffer, sum_rows * n_embd */
	/* experts,dense: the rows hook, this rank's part of a matrix, the gathered parts, their layout */
	struct tm_rows_hook rows;
	float *tp_part, *tp_all;
	size_t tp_part_n, tp_all_n;
	int *tp_counts, *tp_displs;
	int sum_rows;		/* the largest n_batch of a context it serves */
	const struct tm_ctx *ctx;
	struct tm_mpi_counts now, mark;
	/* sampling: rank 0 runs it and broadcasts the token */
	tm_sample_fn sample;
	void *sampler;
	bool marked;
	/* the watchdog (see above) */
	double timeout;
	const char *waiting;	/* the call a rank is inside, or NULL */
	double since;		/* when it entered it */
	pthread_mutex_t lock;
	pthread_t watchdog;
	bool watching, stop;
};

/* "experts", "layers", "experts,dense" -> kind; TM_SPLIT_NONE for anything else. */
enum tm_split_kind tm_split_parse(const char *s);
const char *tm_split_name(enum tm_split_kind kind);

/* Start MPI if it is not yet (finalised at exit); this process's rank, or -EIO. */
int tm_mpi_world_rank(void);
/* ... the number of ranks, or -EIO. */
int tm_mpi_world_size(void);

/*
 * Start MPI (once per process; finalised at exit), check that every rank
 * runs the same split of the same model (identity: tm_model_identity's hash)
 * with the same expert assignment (assign: tm_xassign_make over the ranks,
 * for experts and experts,dense; an imported share must hold its rank's
 * experts of it), and set c up for this rank's part. timeout: seconds a rank may wait in one
 * MPI call before it gives up (0: forever). -EINVAL (on every rank) with a
 * message naming the first rank that differs, a dense model split by
 * experts, more ranks than layers, a GPU context; -ENOMEM, -EIO when MPI
 * fails.
 */
struct tm_xassign;
int tm_mpi_split_start(struct tm_mpi_split *s, struct tm_ctx *c, enum tm_split_kind kind, double timeout,
		       const char *identity, const struct tm_xassign *assign);

/*
 * A tm_sample_fn for tm_generate: rank 0 samples (layers: with the logits
 * the last rank sends it) with sample(sampler, ...) and every rank returns
 * its token. The first call marks the counters (the prompt is done).
 */
void tm_mpi_split_sampler(struct tm_mpi_split *s, tm_sample_fn sample, void *sampler);
int32_t tm_mpi_sample(void *s, float *logits, int n_vocab);

/* layers: the last rank's rows rows of logits (n_vocab each) to rank 0; nothing for experts. */
void tm_mpi_logits_to_root(struct tm_mpi_split *s, float *logits, int rows);

/* Counters from here on are per token (tm_mpi_sample marks at its first call). */
void tm_mpi_mark(struct tm_mpi_split *s);

/*
 * Every rank's counters since the mark, gathered on rank 0, which prints
 * per rank: its share, weights and MPI time per token, MPI's share of the
 * time, bytes sent per token and weight bytes per tier per token; then one
 * "cluster:" line for scripts. Collective: every rank calls it.
 */
void tm_mpi_report(struct tm_mpi_split *s, FILE *f, uint64_t tokens);

/*
 * tiermem serve (lib/mpi/serve_follow.c): after tm_mpi_split_start on one of
 * srv's contexts, set up the others; on rank 0, announce every forward call
 * of the scheduler to the followers. The followers (tm_serve_create with
 * no_http) then run tm_mpi_serve_follow, which makes the same calls until
 * rank 0's tm_mpi_serve_stop. With --split layers the ranks form a pipeline
 * (the scheduler keeps up to ranks calls in it, rank r computing one call
 * while rank r + 1 computes the one before). At the stop every rank reports
 * (tm_mpi_report, collective). 0, -EINVAL (--split experts on contexts
 * with different expert caches), -ENOMEM; follow: -EPROTO for a command it
 * cannot run.
 */
struct tm_server;
int tm_mpi_serve_start(struct tm_mpi_split *s, struct tm_server *srv);
int tm_mpi_serve_follow(struct tm_mpi_split *s, struct tm_server *srv);
void tm_mpi_serve_stop(struct tm_mpi_split *s);

void tm_mpi_split_free(struct tm_mpi_split *s);

#endif
