/* SPDX-License-Identifier: MIT */
/* Shared by lib/mpi/: every MPI call that moves data goes through these. */
#ifndef TIERMEM_MPI_INTERNAL_H
#define TIERMEM_MPI_INTERNAL_H

#include "tiermem/mpi_split.h"

/* Before a call: the watchdog starts timing it; returns the start time. */
double tm_mpi_enter(struct tm_mpi_split *s, const char *what);
/*
 * After it: a failure ends the process (one line naming the call and peer,
 * see tiermem/mpi_split.h); else its time and the bytes this rank sent are
 * counted.
 */
void tm_mpi_leave(struct tm_mpi_split *s, double t0, int rc, int peer, uint64_t sent);

/* The expert and stage hooks: set c up for s->kind. */
int tm_mpi_experts_setup(struct tm_mpi_split *s, struct tm_ctx *c);
int tm_mpi_layers_setup(struct tm_mpi_split *s, struct tm_ctx *c);

#endif
