/* SPDX-License-Identifier: MIT */
/* Shared by lib/mpi/: every MPI call that moves data goes through these. */
#ifndef TIERMEM_MPI_INTERNAL_H
#define TIERMEM_MPI_INTERNAL_H

#include "tiermem/mpi_split.h"

/* Message tags: one kind of message each, matched in order between two ranks. */
enum { TAG_X = 1, TAG_LOGITS, TAG_CMD, TAG_TOKS, TAG_REPORT };

/* Before a call: the watchdog starts timing it; returns the start time. */
double tm_mpi_enter(struct tm_mpi_split *s, const char *what);
/*
 * After it: a failure ends the process (one line naming the call and peer,
 * see tiermem/mpi_split.h); else its time and the bytes this rank sent are
 * counted.
 */
void tm_mpi_leave(struct tm_mpi_split *s, double t0, int rc, int peer, uint64_t sent);

/*
 * --split layers: this rank computes from here (its activations in, or
 * rank 0's serve call made) until it next enters an MPI call (or
 * tm_mpi_computed): that time is its busy time.
 */
void tm_mpi_computing(struct tm_mpi_split *s);
void tm_mpi_computed(struct tm_mpi_split *s);
/* overlap.c: keep one such span; collective: on rank 0, the seconds two or more ranks
 * computed at once (-1: no figure, ranks on several machines), kept: spans measured */
void tm_mpi_span(struct tm_mpi_split *s, double t0, double t1);
double tm_mpi_overlap(struct tm_mpi_split *s, int *kept);

/* serve's state (serve_follow.c), NULL or not. */
void tm_mpi_serve_free(struct tm_mpi_serve *v);

/* The expert and stage hooks: set c up for s->kind. */
int tm_mpi_experts_setup(struct tm_mpi_split *s, struct tm_ctx *c);
/* Another context of the same run: the experts' hook, over its expert cache's if it has one. */
int tm_mpi_experts_hook(struct tm_mpi_split *s, struct tm_ctx *c);
int tm_mpi_layers_setup(struct tm_mpi_split *s, struct tm_ctx *c);
/* experts,dense (dense.c): c's dense matrices split by rows over the ranks; again for each context. */
int tm_mpi_dense_setup(struct tm_mpi_split *s, struct tm_ctx *c);
void tm_mpi_dense_free(struct tm_mpi_split *s);
/* End this rank with one line: "tiermem: rank R of N: why" (see tiermem/mpi_split.h). */
void tm_mpi_die(const struct tm_mpi_split *s, const char *why);

#endif
