// SPDX-License-Identifier: MIT
/*
 * Expert parallel over MPI. The ranks compute the same dense layers on the
 * same inputs in the same order, so their residual streams stay bit-equal
 * as long as every rank adds the same summed experts: the sum is reduced to
 * rank 0 and broadcast from it (MPI_Allreduce does not promise the same bits
 * on every rank for floats), and only then joins the stream.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "lib/mpi/mpi_internal.h"
#include "tiermem/error.h"

static bool local(void *arg, int l, int e)
{
	const struct tm_mpi_split *s = arg;

	return e % s->ranks == s->rank;
}

static void reduce(void *arg, int l, float *acc, int n)
{
	struct tm_mpi_split *s = arg;
	int count = n * s->n_embd;
	uint64_t bytes = sizeof(float) * (uint64_t)count;
	double t0;

	t0 = tm_mpi_enter(s, "MPI_Reduce of the experts' sum");
	tm_mpi_leave(s, t0, MPI_Reduce(acc, s->sum, count, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD), -1,
		     s->rank ? bytes : 0);
	if (!s->rank)
		memcpy(acc, s->sum, bytes);
	t0 = tm_mpi_enter(s, "MPI_Bcast of the experts' sum");
	tm_mpi_leave(s, t0, MPI_Bcast(acc, count, MPI_FLOAT, 0, MPI_COMM_WORLD), 0, s->rank ? 0 : bytes);
}

int tm_mpi_experts_setup(struct tm_mpi_split *s, struct tm_ctx *c)
{
	if (!c->m->hp.moe)
		return tm_err(-EINVAL, "--split experts: the model has no routed experts to split "
			      "(--split layers splits a dense model)");
	if (c->xhook)
		return tm_err(-EINVAL, "--split experts does not combine with an expert cache yet: "
			      "both decide where a routed expert is read");
	s->sum = malloc(sizeof(float) * (size_t)c->n_batch * (size_t)s->n_embd);
	if (!s->sum)
		return tm_err(-ENOMEM, "mpi: out of memory");
	s->sum_rows = c->n_batch;
	s->hook.local = local;
	s->hook.reduce = reduce;
	s->hook.arg = s;
	c->xhook = &s->hook;
	return 0;
}
