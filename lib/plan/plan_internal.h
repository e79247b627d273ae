/* SPDX-License-Identifier: MIT */
/* Shared by the planner's files (lib/plan/), not part of the API. */
#ifndef TIERMEM_PLAN_INTERNAL_H
#define TIERMEM_PLAN_INTERNAL_H

#include "tiermem/plan.h"

/* The N of "blk.N.", or -1. */
int plan_layer_of(const char *name);
/* The vram and pcie tiers of t (one GPU at most; pcie needs vram), or -1 each; -EINVAL. */
int plan_gpu_tiers(const struct tm_tier_spec *t, int n, int *gpu, int *pcie);
/*
 * With a pcie tier: which processor computes each tensor on a host tier that
 * no -ot decided, chosen to minimise the prediction; then tm_plan_predict.
 */
int plan_choose_processors(struct tm_plan *p);

#endif
