// SPDX-License-Identifier: MIT
/*
 * Tensor parallel over MPI (--split experts,dense): besides its share of
 * the routed experts, each rank computes a contiguous range of each dense
 * matrix's rows, in whole groups of 16 (the r16 layout's), and one
 * MPI_Allgatherv per matrix gives every rank every row. A row is the same
 * dot product of the same inputs on whichever rank runs it, and a gather
 * copies its bits, so the ranks' residual streams stay equal to each other
 * and to one process's, up to the experts' sum (lib/mpi/split.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "lib/mpi/mpi_internal.h"
#include "tiermem/error.h"
#include "tiermem/plan.h"

static bool range(void *arg, int rows, int *r0, int *r1)
{
	const struct tm_mpi_split *s = arg;

	return tm_tp_rows(rows, s->ranks, s->rank, r0, r1);
}

/* Grow *p to n floats (never shrinks); NULL ends the rank: a forward pass cannot fail half-way. */
static float *grow(struct tm_mpi_split *s, float **p, size_t *have, size_t n)
{
	if (n > *have) {
		float *q = realloc(*p, sizeof(float) * n);

		if (!q)
			tm_mpi_die(s, "out of memory for a dense matrix's rows");
		*p = q;
		*have = n;
	}
	return *p;
}

static float *buf(void *arg, size_t floats)
{
	struct tm_mpi_split *s = arg;

	return grow(s, &s->tp_part, &s->tp_part_n, floats ? floats : 1);
}

static void gather(void *arg, const float *part, int n, int rows, float *Y)
{
	struct tm_mpi_split *s = arg;
	float *all = Y;
	double t0;

	for (int r = 0, at = 0; r < s->ranks; r++) {
		int r0, r1;

		tm_tp_rows(rows, s->ranks, r, &r0, &r1);
		s->tp_counts[r] = n * (r1 - r0);
		s->tp_displs[r] = at;
		at += s->tp_counts[r];
	}
	/* one row: the ranks' parts side by side are Y; more: [rank][row][its rows], rearranged below */
	if (n > 1)
		all = grow(s, &s->tp_all, &s->tp_all_n, (size_t)n * (size_t)rows);
	t0 = tm_mpi_enter(s, "MPI_Allgatherv of a dense matrix's rows");
	tm_mpi_leave(s, t0, MPI_Allgatherv(part, s->tp_counts[s->rank], MPI_FLOAT, all, s->tp_counts,
					   s->tp_displs, MPI_FLOAT, MPI_COMM_WORLD), -1,
		     sizeof(float) * (uint64_t)s->tp_counts[s->rank]);
	for (int r = 0; r < s->ranks && n > 1; r++) {
		int r0, r1;

		tm_tp_rows(rows, s->ranks, r, &r0, &r1);
		for (int i = 0; i < n; i++)
			memcpy(Y + (size_t)i * rows + r0, all + s->tp_displs[r] + (size_t)i * (r1 - r0),
			       sizeof(float) * (size_t)(r1 - r0));
	}
}

int tm_mpi_dense_setup(struct tm_mpi_split *s, struct tm_ctx *c)
{
	if (!s->tp_counts) {
		s->tp_counts = calloc((size_t)s->ranks, sizeof(*s->tp_counts));
		s->tp_displs = calloc((size_t)s->ranks, sizeof(*s->tp_displs));
		if (!s->tp_counts || !s->tp_displs)
			return tm_err(-ENOMEM, "mpi: out of memory");
		s->rows.range = range;
		s->rows.buf = buf;
		s->rows.gather = gather;
		s->rows.arg = s;
	}
	c->tp = &s->rows;
	return 0;
}

void tm_mpi_dense_free(struct tm_mpi_split *s)
{
	free(s->tp_counts);
	free(s->tp_displs);
	free(s->tp_part);
	free(s->tp_all);
	s->tp_counts = s->tp_displs = NULL;
	s->tp_part = s->tp_all = NULL;
	s->tp_part_n = s->tp_all_n = 0;
}
