// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/split_args.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/plan.h"
#include "tiermem/store.h"
#include "tiermem/serve.h"
#ifdef TM_HAVE_MPI
#include "tiermem/mpi_split.h"
#endif

void split_args_init(struct split_args *a)
{
	a->kind = 0;
	a->timeout = 60;
	a->heat = NULL;
	a->assign = NULL;
	a->equal_groups = false;
	a->mpi = NULL;
}

#ifdef TM_HAVE_MPI
/* --split experts[,dense] of an MoE model: its experts' assignment over the ranks, once. 0 or an exit code. */
static int make_assign(const char *cmd, struct split_args *a, const struct tm_model *m, const char *name)
{
	struct tm_xheat h = { 0 };
	int ranks, rc, err;

	if (a->heat && a->kind == TM_SPLIT_LAYERS && !a->assign)
		fprintf(stderr, "tiermem %s: note: --split layers splits no experts: --expert-heat only warms an "
			"expert cache here\n", cmd);
	if (a->assign || a->kind == TM_SPLIT_LAYERS || !m->hp.moe)
		return 0;
	ranks = tm_mpi_world_size();
	if (ranks < 0)
		return run_error(cmd, "%s", tm_strerror());
	if (a->heat && (rc = read_heat_arg(cmd, a->heat, m, name, &h)))
		return rc;
	a->assign = calloc(1, sizeof(*a->assign));
	err = a->assign ? tm_xassign_make(a->assign, m->hp.n_layer, m->hp.n_expert, ranks, a->heat ? &h : NULL)
			: -ENOMEM;
	tm_xheat_free(&h);
	if (err) {
		free(a->assign);
		a->assign = NULL;
		return err == -ENOMEM ? run_error(cmd, "out of memory") : usage_error(cmd, "%s", tm_strerror());
	}
	return 0;
}
#endif

int split_args_option(const char *cmd, struct split_args *a, int opt, const char *arg)
{
	if (opt == OPT_MPI_TIMEOUT)
		return parse_double("--mpi-timeout", arg, 0, 1e6, &a->timeout) ? EXIT_USAGE : 0;
	if (opt == OPT_SPLIT_HEAT) {
		a->heat = arg;
		return 0;
	}
#ifdef TM_HAVE_MPI
	a->kind = tm_split_parse(arg);
	if (!a->kind)
		return usage_error(cmd, "--split %s: want experts, layers or experts,dense", arg);
	return 0;
#else
	return usage_error(cmd, "--split needs MPI: run build/tiermem-mpi under mpirun "
			   "(built when mpicc is installed)");
#endif
}

int split_args_start(const char *cmd, struct split_args *a, struct tm_ctx *ctx, const char *name)
{
#ifdef TM_HAVE_MPI
	char hash[33] = "";
	int err, rc;

	if (!a->kind)
		return 0;
	if ((rc = make_assign(cmd, a, ctx->m, name)))
		return rc;
	a->mpi = calloc(1, sizeof(*a->mpi));
	if (!a->mpi)
		return run_error(cmd, "out of memory");
	/* unhashable: refused by every rank in tm_mpi_split_start, which all ranks must reach */
	if (tm_model_identity(ctx->m, name, hash))
		hash[0] = '\0';
	err = tm_mpi_split_start(a->mpi, ctx, a->kind, a->timeout, hash, a->assign);
	/* a refusal is the same on every rank: said once */
	if (err == -EINVAL)
		return a->mpi->rank ? EXIT_USAGE : usage_error(cmd, "%s", tm_strerror());
	if (err)
		return run_error(cmd, "%s", tm_strerror());
#endif
	return 0;
}

int split_args_rank(const struct split_args *a)
{
#ifdef TM_HAVE_MPI
	return a->mpi ? a->mpi->rank : 0;
#else
	return 0;
#endif
}

void split_args_sampler(struct split_args *a, tm_sample_fn *sample, void **sampler)
{
#ifdef TM_HAVE_MPI
	if (!a->mpi)
		return;
	tm_mpi_split_sampler(a->mpi, *sample, *sampler);
	*sample = tm_mpi_sample;
	*sampler = a->mpi;
#endif
}

void split_args_logits(struct split_args *a, float *logits, int rows)
{
#ifdef TM_HAVE_MPI
	if (a->mpi)
		tm_mpi_logits_to_root(a->mpi, logits, rows);
#endif
}

void split_args_report(struct split_args *a, FILE *f, uint64_t tokens)
{
#ifdef TM_HAVE_MPI
	if (a->mpi)
		tm_mpi_report(a->mpi, f, tokens);
#endif
}

int split_args_follower(const char *cmd, const struct split_args *a)
{
#ifdef TM_HAVE_MPI
	int rank;

	if (!a->kind)
		return 0;
	rank = tm_mpi_world_rank();
	if (rank < 0)
		return -run_error(cmd, "%s", tm_strerror());
	return rank > 0;
#else
	return 0;
#endif
}

int split_args_part(const char *cmd, struct split_args *a, const struct tm_model *m, const char *name,
		    struct split_part *p)
{
	*p = (struct split_part){ .assign = NULL, .rank = 0, .first = 0, .last = m->hp.n_layer };
#ifdef TM_HAVE_MPI
	int *first, rc, ranks;

	if (!a->kind)
		return 0;
	p->rank = tm_mpi_world_rank();
	ranks = tm_mpi_world_size();
	if (p->rank < 0 || ranks < 0)
		return run_error(cmd, "%s", tm_strerror());
	if (a->kind != TM_SPLIT_LAYERS) {
		rc = make_assign(cmd, a, m, name);
		p->assign = a->assign;
		return rc;
	}
	first = calloc((size_t)ranks + 1, sizeof(*first));
	if (!first)
		return run_error(cmd, "out of memory");
	/* the stages tm_mpi_split_start sets up; a split it refuses keeps every layer here (refused there) */
	if (!tm_plan_stages(&m->gguf, m->hp.n_layer, ranks, first)) {
		p->first = first[p->rank];
		p->last = first[p->rank + 1];
	}
	free(first);
	p->rank = 0;
#endif
	return 0;
}

int split_args_serve(const char *cmd, struct split_args *a, struct tm_server *srv, const char *name)
{
#ifdef TM_HAVE_MPI
	int rc, err;

	if (!a->kind)
		return 0;
	if (a->equal_groups && a->kind != TM_SPLIT_LAYERS)
		return tm_mpi_world_rank() ? EXIT_USAGE :
		       usage_error(cmd, "--pipeline-groups: only with --split layers (a pipeline)");
	if ((rc = split_args_start(cmd, a, tm_serve_ctx(srv, tm_serve_slots(srv)), name)))
		return rc;
	a->mpi->equal_groups = a->equal_groups;
	err = tm_mpi_serve_start(a->mpi, srv);
	if (err == -EINVAL)
		return a->mpi->rank ? EXIT_USAGE : usage_error(cmd, "%s", tm_strerror());
	if (err)
		return run_error(cmd, "%s", tm_strerror());
	if (a->mpi->rank && tm_mpi_serve_follow(a->mpi, srv))
		return run_error(cmd, "rank %d: %s", a->mpi->rank, tm_strerror());
#endif
	return 0;
}

void split_args_serve_stop(struct split_args *a)
{
#ifdef TM_HAVE_MPI
	if (a->mpi)
		tm_mpi_serve_stop(a->mpi);
#endif
}

void split_args_free(struct split_args *a)
{
#ifdef TM_HAVE_MPI
	if (a->mpi)
		tm_mpi_split_free(a->mpi);
	free(a->mpi);
	a->mpi = NULL;
#endif
	if (a->assign)
		tm_xassign_free(a->assign);
	free(a->assign);
	a->assign = NULL;
}
