// SPDX-License-Identifier: MIT
/*
 * How many groups a pipeline's running sequences are decoded in
 * (serve --split layers, Documentation/tiermem-scale.rst).
 *
 * Stage s takes a + b * rows seconds for a call of rows sequences: a is what
 * a call costs whatever its size (its weights streamed once, the hand-off),
 * b what each row adds (its arithmetic, its own KV cache). With g groups of
 * rows / g, at most one call per group in the pipeline, a round in which
 * every sequence gets one token lasts the longer of one group's way through
 * every stage (the largest group's: the pipeline starves, stages wait for
 * the next group) and the busiest stage's g calls of all the rows (it
 * never waits). Per-call cost favours few
 * groups, per-row cost with several stages favours many.
 */
#include <math.h>

#include "tiermem/plan.h"

double tm_pipeline_round(const struct tm_stage_cost *st, int stages, int rows, int groups)
{
	int r = (rows + groups - 1) / groups;
	double way = 0, most = 0;

	for (int s = 0; s < stages; s++) {
		double busy = groups * st[s].call_sec + rows * st[s].row_sec;

		way += st[s].call_sec + st[s].row_sec * r;
		most = busy > most ? busy : most;
	}
	return fmax(way, most);
}

int tm_pipeline_groups(const struct tm_stage_cost *st, int stages, int rows, int now, double margin)
{
	int most = stages < rows ? stages : rows, best = 1;
	double best_t, t;

	if (most < 1)
		return 1;
	best_t = tm_pipeline_round(st, stages, rows, 1);
	for (int g = 2; g <= most; g++)
		if ((t = tm_pipeline_round(st, stages, rows, g)) < best_t)
			best_t = t, best = g;
	/* measured costs are noisy: a change must be worth more than the noise, or the choice flaps */
	now = now < 1 ? 1 : now > most ? most : now;
	return tm_pipeline_round(st, stages, rows, now) <= best_t * (1 + margin) ? now : best;
}

void tm_stage_fit_add(struct tm_stage_fit *f, double rows, double sec)
{
	const double keep = 0.95;	/* the last ~20 calls weigh most: costs move with the load */

	f->n = f->n * keep + 1;
	f->x = f->x * keep + rows;
	f->y = f->y * keep + sec;
	f->xx = f->xx * keep + rows * rows;
	f->xy = f->xy * keep + rows * sec;
}

bool tm_stage_fit_get(const struct tm_stage_fit *f, struct tm_stage_cost *c)
{
	double var, mx, my;

	if (f->n < 4)
		return false;
	mx = f->x / f->n;
	my = f->y / f->n;
	var = f->xx / f->n - mx * mx;
	/* calls all of one size cannot tell a call's cost from a row's */
	if (var < 0.1)
		return false;
	c->row_sec = (f->xy / f->n - mx * my) / var;
	c->call_sec = my - c->row_sec * mx;
	/* noise can tip either below 0: then the other alone explains the times */
	if (c->row_sec < 0) {
		c->row_sec = 0;
		c->call_sec = my;
	} else if (c->call_sec < 0) {
		c->call_sec = 0;
		c->row_sec = f->xy / f->xx;
	}
	return true;
}
