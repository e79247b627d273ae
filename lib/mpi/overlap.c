// SPDX-License-Identifier: MIT
/*
 * When ranks computed at once (--split layers). Each rank keeps the spans
 * of time it computed its layers (tm_mpi_computing .. tm_mpi_computed);
 * rank 0 gathers them and measures the time two or more ranks were inside
 * a span together. Ranks that take turns can never overlap: a rank's span
 * ends before it sends the activations, the next one's starts after it has
 * them; so any overlap is the pipeline's. Spans are compared by
 * CLOCK_MONOTONIC, one clock only on one machine: ranks on several
 * machines get no figure.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "lib/mpi/mpi_internal.h"

enum { MAX_SPANS = 32768 };	/* per rank: 512 KiB; later spans are not kept (reported) */

void tm_mpi_span(struct tm_mpi_split *s, double t0, double t1)
{
	if (!s->spans && !(s->spans = malloc(sizeof(double) * 2 * MAX_SPANS)))
		s->n_spans = MAX_SPANS;	/* no room: counted as full */
	if (s->n_spans == MAX_SPANS) {
		s->spans_full = true;
		return;
	}
	s->spans[2 * s->n_spans] = t0;
	s->spans[2 * s->n_spans + 1] = t1;
	s->n_spans++;
}

struct event {
	double t;
	int d;
};

static int by_time(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	/* an end before a start at the same instant: touching spans do not overlap */
	return x->t < y->t ? -1 : x->t > y->t ? 1 : x->d - y->d;
}

/* Seconds during which two or more of the spans (n pairs) overlap, up to time end. */
static double sweep(const double *spans, int n, double end)
{
	struct event *ev = malloc(sizeof(*ev) * 2 * (size_t)n);
	double sec = 0;
	int k = 0, in = 0;

	if (!ev)
		return -1;
	for (int i = 0; i < n; i++) {
		if (spans[2 * i] >= end)
			continue;
		ev[k++] = (struct event){ spans[2 * i], 1 };
		ev[k++] = (struct event){ spans[2 * i + 1] < end ? spans[2 * i + 1] : end, -1 };
	}
	qsort(ev, (size_t)k, sizeof(*ev), by_time);
	for (int i = 0; i < k; i++) {
		if (in >= 2)
			sec += ev[i].t - ev[i - 1].t;
		in += ev[i].d;
	}
	free(ev);
	return sec;
}

/* A hash of this machine's name, as a double for the gather. */
static double host(void)
{
	char name[256] = "";
	uint32_t h = 2166136261u;

	gethostname(name, sizeof(name) - 1);
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h;
}

double tm_mpi_overlap(struct tm_mpi_split *s, int *kept)
{
	double mine[3] = { s->n_spans, s->spans_full, host() }, *heads = NULL, *spans = NULL, end = 1e300;
	double t0, sec = -1;
	int *counts = NULL, *displs = NULL, total = 0, rc;

	*kept = 0;
	if (!s->rank)
		heads = calloc((size_t)s->ranks, sizeof(mine));
	t0 = tm_mpi_enter(s, "MPI_Gather of the compute span counts");
	tm_mpi_leave(s, t0, MPI_Gather(mine, 3, MPI_DOUBLE, heads, 3, MPI_DOUBLE, 0, MPI_COMM_WORLD), 0, 0);
	if (!s->rank && heads) {
		counts = calloc((size_t)s->ranks, sizeof(*counts));
		displs = calloc((size_t)s->ranks, sizeof(*displs));
	}
	if (counts && displs) {
		for (int r = 0; r < s->ranks; r++) {
			counts[r] = 2 * (int)heads[3 * r];
			displs[r] = total;
			total += counts[r];
		}
		spans = malloc(sizeof(double) * (size_t)(total ? total : 1));
	}
	/* every rank takes part (the root's buffers may be missing: then no figure) */
	t0 = tm_mpi_enter(s, "MPI_Gatherv of the compute spans");
	rc = MPI_Gatherv(s->spans ? s->spans : mine, 2 * s->n_spans, MPI_DOUBLE, spans, counts, displs, MPI_DOUBLE, 0,
			 MPI_COMM_WORLD);
	tm_mpi_leave(s, t0, rc, 0, 0);
	if (spans) {
		bool one_host = true;

		for (int r = 0; r < s->ranks; r++) {
			one_host &= heads[3 * r + 2] == heads[2];
			/* a rank that stopped keeping spans: measure only up to its last kept one */
			if (heads[3 * r + 1] && counts[r] && spans[displs[r] + counts[r] - 1] < end)
				end = spans[displs[r] + counts[r] - 1];
		}
		*kept = total / 2;
		sec = one_host ? sweep(spans, total / 2, end) : -1;
	}
	free(heads);
	free(counts);
	free(displs);
	free(spans);
	return sec;
}
