// SPDX-License-Identifier: MIT
/*
 * Pipeline parallel over MPI: rank r computes layers [first, last) and
 * passes the residual stream (n rows of n_embd floats) to rank r + 1, point
 * to point; the last rank computes the logits. Every rank keeps a KV cache
 * for its own layers only in effect (the context's cache has room for all;
 * only this rank's layers' pages are ever touched).
 */
#include <errno.h>
#include <stdlib.h>

#include <mpi.h>

#include "lib/mpi/mpi_internal.h"
#include "tiermem/error.h"
#include "tiermem/plan.h"

static void recv_x(void *arg, float *x, int n)
{
	struct tm_mpi_split *s = arg;
	double t0 = tm_mpi_enter(s, "MPI_Recv of the activations");

	tm_mpi_leave(s, t0, MPI_Recv(x, n * s->n_embd, MPI_FLOAT, s->rank - 1, TAG_X, MPI_COMM_WORLD,
				     MPI_STATUS_IGNORE), s->rank - 1, 0);
	tm_mpi_computing(s);
}

static void send_x(void *arg, const float *x, int n)
{
	struct tm_mpi_split *s = arg;
	double t0 = tm_mpi_enter(s, "MPI_Send of the activations");

	tm_mpi_leave(s, t0, MPI_Send(x, n * s->n_embd, MPI_FLOAT, s->rank + 1, TAG_X, MPI_COMM_WORLD),
		     s->rank + 1, sizeof(float) * (uint64_t)n * (uint64_t)s->n_embd);
	/* a call longer than a batch goes on with its next rows here */
	s->rows_left -= n;
	if (s->rows_left > 0)
		tm_mpi_computing(s);
}

int tm_mpi_layers_setup(struct tm_mpi_split *s, struct tm_ctx *c)
{
	int *first = calloc((size_t)s->ranks + 1, sizeof(*first)), err;

	if (!first)
		return tm_err(-ENOMEM, "mpi: out of memory");
	/* every rank computes the same split from the same model */
	err = tm_plan_stages(&c->m->gguf, c->m->hp.n_layer, s->ranks, first);
	if (err) {
		free(first);
		return tm_err_prefix(err, "--split layers");
	}
	s->first = first[s->rank];
	s->last = first[s->rank + 1];
	free(first);
	s->stage.first = s->first;
	s->stage.last = s->last;
	s->stage.recv = recv_x;
	s->stage.send = send_x;
	s->stage.arg = s;
	c->stage = &s->stage;
	return 0;
}
