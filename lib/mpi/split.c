// SPDX-License-Identifier: MIT
/*
 * Expert parallel over MPI. The ranks compute the same dense layers on the
 * same inputs in the same order, so their residual streams stay bit-equal
 * as long as every rank adds the same summed experts: the sum is reduced to
 * rank 0 and broadcast from it (MPI_Allreduce does not promise the same bits
 * on every rank for floats), and only then joins the stream. Open MPI's
 * default error handler aborts the whole job when a rank dies.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/mpi_split.h"

static bool local(void *arg, int l, int e)
{
	const struct tm_mpi_split *s = arg;

	return e % s->ranks == s->rank;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void reduce(void *arg, int l, float *acc, int n)
{
	struct tm_mpi_split *s = arg;
	int count = n * s->n_embd;
	double t0 = now();

	MPI_Reduce(acc, s->sum, count, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
	if (!s->rank)
		memcpy(acc, s->sum, sizeof(float) * (size_t)count);
	MPI_Bcast(acc, count, MPI_FLOAT, 0, MPI_COMM_WORLD);
	s->reduces++;
	s->reduce_sec += now() - t0;
}

static void finalize(void)
{
	int done = 0;

	MPI_Finalized(&done);
	if (!done)
		MPI_Finalize();
}

static int start(void)
{
	int up = 0;

	MPI_Initialized(&up);
	if (up)
		return 0;
	if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
		return tm_err(-EIO, "mpi: MPI_Init failed");
	atexit(finalize);
	return 0;
}

/* Every rank's model hash against rank 0's; the same answer on every rank. */
static int same_model(const struct tm_mpi_split *s, const struct tm_model *m)
{
	char mine[33] = "", *all = malloc(33 * (size_t)s->ranks);
	int err = 0;

	if (!all)
		return tm_err(-ENOMEM, "mpi: out of memory");
	if (tm_gguf_content_hash(&m->gguf, mine))
		snprintf(mine, sizeof(mine), "unhashable");
	MPI_Allgather(mine, 33, MPI_CHAR, all, 33, MPI_CHAR, MPI_COMM_WORLD);
	for (int r = 1; r < s->ranks && !err; r++)
		if (memcmp(all, all + 33 * r, 33) || !strcmp(all, "unhashable"))
			err = tm_err(-EINVAL, "mpi: rank %d opened another model (hash %.32s, rank 0's %.32s): "
				     "every rank must open the same one", r, all + 33 * r, all);
	free(all);
	return err;
}

int tm_mpi_split_experts(struct tm_mpi_split *s, struct tm_ctx *c)
{
	int err;

	memset(s, 0, sizeof(*s));
	if ((err = start()))
		return err;
	MPI_Comm_rank(MPI_COMM_WORLD, &s->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &s->ranks);
	s->n_embd = c->m->hp.n_embd;
	s->sum = malloc(sizeof(float) * (size_t)c->n_batch * (size_t)s->n_embd);
	if (!s->sum)
		return tm_err(-ENOMEM, "mpi: out of memory");
	if ((err = same_model(s, c->m))) {
		tm_mpi_split_free(s);
		return err;
	}
	s->hook.local = local;
	s->hook.reduce = reduce;
	s->hook.arg = s;
	c->xhook = &s->hook;
	return 0;
}

void tm_mpi_split_free(struct tm_mpi_split *s)
{
	free(s->sum);
	s->sum = NULL;
}
