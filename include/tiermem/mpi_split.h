/* SPDX-License-Identifier: MIT */
/*
 * Expert-parallel decode over MPI (Documentation/tiermem-scale.rst): every
 * process holds the whole model and computes everything but the routed
 * experts, of which it computes only its share (expert e of every layer on
 * rank e % ranks); each MoE layer's weighted expert sum is then summed over
 * the ranks before it joins the residual stream. Built only into
 * build/tiermem-mpi (when mpicc is found); the rest of tiermem knows
 * nothing of MPI.
 */
#ifndef TIERMEM_MPI_SPLIT_H
#define TIERMEM_MPI_SPLIT_H

#include <stdint.h>

#include "tiermem/model.h"

struct tm_mpi_split {
	struct tm_expert_hook hook;
	int rank, ranks;
	int n_embd;
	float *sum;		/* reduce's buffer: n_batch * n_embd */
	uint64_t reduces;	/* all-reduces so far */
	double reduce_sec;	/* time spent in them */
};

/*
 * Start MPI (once per process; finalised at exit), check that every rank
 * opened the same model (its content hash), and route m's MoE layers through
 * s on c. -EINVAL with a message naming the first rank whose model differs
 * (every rank returns it), -ENOMEM, -EIO when MPI fails.
 */
int tm_mpi_split_experts(struct tm_mpi_split *s, struct tm_ctx *c);
void tm_mpi_split_free(struct tm_mpi_split *s);

#endif
