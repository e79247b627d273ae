// SPDX-License-Identifier: MIT
/*
 * Expert parallel over MPI. Each rank computes the experts the assignment
 * gives it (tm_xassign_make: by heat, or e % ranks). The ranks compute the
 * same dense layers on the same inputs in the same order, so their residual
 * streams stay bit-equal
 * as long as every rank adds the same summed experts: the sum is reduced to
 * rank 0 and broadcast from it (MPI_Allreduce does not promise the same bits
 * on every rank for floats), and only then joins the stream.
 *
 * With an expert cache (--expert-cache) each rank caches its own experts:
 * the forward pass resolves only the experts local() keeps, so only those
 * reach the cache's hook, which this one passes its calls on to (the cache
 * is told which are local too: tm_xonline_only, for its predictor and warm
 * start). Where an expert is read changes only its bits' source, not its
 * bits, so the sums stay the same.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "lib/mpi/mpi_internal.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"

static bool local(void *arg, int l, int e)
{
	const struct tm_mpi_split *s = arg;

	return tm_xassign_owner(s->assign, l, e) == s->rank;
}

static void resolve(void *arg, int l, const int *sel, int k, struct tm_expert_at *at)
{
	const struct tm_expert_hook *in = ((struct tm_mpi_split *)arg)->inner;

	in->resolve(in->arg, l, sel, k, at);
}

static void done(void *arg, int l, const int *sel, int k)
{
	const struct tm_expert_hook *in = ((struct tm_mpi_split *)arg)->inner;

	in->done(in->arg, l, sel, k);
}

static void after_attn(void *arg, struct tm_ctx *c, int l, const float *x)
{
	const struct tm_expert_hook *in = ((struct tm_mpi_split *)arg)->inner;

	in->after_attn(in->arg, c, l, x);
}

/* c's hook: the experts' own, passing an expert cache's calls on. */
int tm_mpi_experts_hook(struct tm_mpi_split *s, struct tm_ctx *c)
{
	const struct tm_expert_hook *in = c->xhook;

	if (in == &s->hook)
		return 0;
	if (in && (in->local || in->reduce || (s->inner && in != s->inner)))
		return tm_err(-EINVAL, "--split experts: a context already has another expert hook");
	if (in) {
		s->inner = in;
		s->hook.resolve = in->resolve ? resolve : NULL;
		s->hook.done = in->done ? done : NULL;
		s->hook.after_attn = in->after_attn ? after_attn : NULL;
	}
	c->xhook = &s->hook;
	return 0;
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
			      "(--split layers or experts,dense splits a dense model)");
	if (!s->assign || s->assign->ranks != s->ranks || s->assign->n_layer != c->m->hp.n_layer ||
	    s->assign->n_expert != c->m->hp.n_expert)
		return tm_err(-EINVAL, "--split experts: no assignment of this model's experts to %d ranks", s->ranks);
	s->sum = malloc(sizeof(float) * (size_t)c->n_batch * (size_t)s->n_embd);
	if (!s->sum)
		return tm_err(-ENOMEM, "mpi: out of memory");
	s->sum_rows = c->n_batch;
	s->hook.local = local;
	s->hook.reduce = reduce;
	s->hook.arg = s;
	return tm_mpi_experts_hook(s, c);
}
