// SPDX-License-Identifier: MIT
/*
 * A cluster's decode speed on paper, from per-node plans and a link model
 * (Documentation/tiermem-scale.rst). A single stream's token passes every
 * layer in order, so nothing overlaps: its time is the streaming of the
 * slowest node (experts split) or of every stage in turn (layers split),
 * plus the messages it waits for.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/plan/plan_internal.h"
#include "tiermem/error.h"
#include "tiermem/plan.h"

int tm_link_parse(const char *arg, struct tm_link *out)
{
	char *end;
	double gbit, lat;

	gbit = strtod(arg, &end);
	if (end == arg || *end != ',' || !(gbit > 0) || !isfinite(gbit))
		return tm_err(-EINVAL, "--link %s: want GBPS,LATENCY_US (Gbit/s > 0, microseconds >= 0), e.g. 100,5", arg);
	arg = end + 1;
	lat = strtod(arg, &end);
	if (end == arg || *end || !(lat >= 0) || !isfinite(lat))
		return tm_err(-EINVAL, "--link: bad latency '%s': want microseconds >= 0", arg);
	out->gbit = gbit;
	out->latency_us = lat;
	return 0;
}

double tm_link_send(const struct tm_link *l, double bytes)
{
	return l->latency_us * 1e-6 + bytes * 8 / (l->gbit * 1e9);
}

double tm_allreduce_sec(const struct tm_link *l, int nodes, double bytes)
{
	int rounds = 0;

	while ((1 << rounds) < nodes)
		rounds++;
	return rounds * tm_link_send(l, bytes);
}

double tm_allgather_sec(const struct tm_link *l, int nodes, double bytes)
{
	int rounds = 0;

	while ((1 << rounds) < nodes)
		rounds++;
	return rounds ? rounds * l->latency_us * 1e-6 + bytes * (nodes - 1) / nodes * 8 / (l->gbit * 1e9) : 0;
}

/* The layers the plans' tensors name (0: none). */
static int layers_of(const struct tm_plan *plans, int nodes)
{
	int layers = 0;

	for (int r = 0; r < nodes; r++)
		for (size_t i = 0; i < plans[r].n_tensors; i++) {
			int l = plan_layer_of(plans[r].tensors[i].name);

			layers = l + 1 > layers ? l + 1 : layers;
		}
	return layers;
}

/*
 * at[l * nodes + r]: node r's routed-expert reads of layer l per token, or
 * (time) the seconds they take from their tiers; NULL when out of memory.
 */
static double *per_layer(const struct tm_plan *plans, int nodes, int layers, bool time)
{
	double *at = calloc((size_t)(layers ? layers : 1) * (size_t)nodes, sizeof(*at));

	for (int r = 0; at && r < nodes; r++)
		for (size_t i = 0; i < plans[r].n_tensors; i++) {
			const struct tm_plan_tensor *t = &plans[r].tensors[i];
			int l = plan_layer_of(t->name);

			if (t->cls == TM_TC_EXPERTS && l >= 0)
				at[(size_t)l * nodes + r] += time ? t->read_per_token / (plans[r].tiers[t->tier].gbps * 1e9) :
								    t->read_per_token;
		}
	return at;
}

/*
 * Expert parallel: the streaming a token waits for. Each MoE layer's
 * all-reduce waits for the layer's slowest node, so with serial plans (tiers
 * read in turn, no GPU: a tensor takes its reads over its tier's rate) it is
 * the dense part of the slowest node plus, per layer, the slowest node's
 * experts; otherwise the slowest node's whole token.
 */
static double expert_wait(const struct tm_plan *plans, int nodes)
{
	int layers = layers_of(plans, nodes);
	double most = 0, dense = 0, wait = 0, *at;
	bool serial = true;

	for (int r = 0; r < nodes; r++) {
		most = plans[r].sec_per_token > most ? plans[r].sec_per_token : most;
		serial = serial && !plans[r].overlap && plans[r].gpu_tier < 0;
	}
	if (!serial || !(at = per_layer(plans, nodes, layers, true)))
		return most;
	for (int r = 0; r < nodes; r++) {
		double mine = 0;

		for (int l = 0; l < layers; l++)
			mine += at[(size_t)l * nodes + r];
		dense = plans[r].sec_per_token - mine > dense ? plans[r].sec_per_token - mine : dense;
	}
	for (int l = 0; l < layers; l++) {
		double m = 0;

		for (int r = 0; r < nodes; r++)
			m = at[(size_t)l * nodes + r] > m ? at[(size_t)l * nodes + r] : m;
		wait += m;
	}
	free(at);
	return dense + wait;
}

void tm_cluster_predict(struct tm_cluster *c, const struct tm_plan *node_plans, int nodes, bool split_layers,
			const struct tm_link *l, int n_embd, int moe_layers)
{
	memset(c, 0, sizeof(*c));
	c->nodes = nodes;
	c->split_layers = split_layers;
	c->message_bytes = (double)n_embd * sizeof(float);
	if (split_layers) {
		for (int r = 0; r < nodes; r++)
			c->compute_sec += node_plans[r].sec_per_token;
		c->messages = nodes > 1 ? nodes : 0;
		c->comm_sec = c->messages * tm_link_send(l, c->message_bytes);
	} else {
		const struct tm_plan *p = &node_plans[0];	/* every node splits the same dense matrices */

		c->compute_sec = expert_wait(node_plans, nodes);
		c->messages = nodes > 1 ? moe_layers : 0;
		c->comm_sec = c->messages * tm_allreduce_sec(l, nodes, c->message_bytes);
		/* tensor parallel: the gathers are linear in their bytes, so their sum is one formula */
		c->gathers = nodes > 1 ? p->tp_gathers : 0;
		if (c->gathers)
			c->gather_sec = c->gathers * tm_allgather_sec(l, nodes, 0) +
					tm_allgather_sec(l, nodes, p->tp_gather_bytes) - tm_allgather_sec(l, nodes, 0);
		c->comm_sec += c->gather_sec;
	}
	c->sec_per_token = c->compute_sec + c->comm_sec;
}

int tm_cluster_expert_load(const struct tm_plan *plans, int nodes, double *per_node, struct tm_expert_load *out)
{
	int layers;
	double *at;

	memset(out, 0, sizeof(*out));
	if (nodes < 1)
		return tm_err(-EINVAL, "plan: %d nodes", nodes);
	layers = layers_of(plans, nodes);
	at = per_layer(plans, nodes, layers, false);
	if (!at)
		return tm_err(-ENOMEM, "plan: out of memory");
	for (int r = 0; r < nodes; r++) {
		per_node[r] = 0;
		for (int l = 0; l < layers; l++)
			per_node[r] += at[(size_t)l * nodes + r];
		out->max = per_node[r] > out->max ? per_node[r] : out->max;
		out->mean += per_node[r] / nodes;
	}
	for (int l = 0; l < layers; l++) {
		double m = 0;

		for (int r = 0; r < nodes; r++)
			m = at[(size_t)l * nodes + r] > m ? at[(size_t)l * nodes + r] : m;
		out->sync += m;
	}
	free(at);
	return 0;
}
