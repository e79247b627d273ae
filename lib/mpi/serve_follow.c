// SPDX-License-Identifier: MIT
/*
 * tiermem serve over MPI: rank 0 runs HTTP and the scheduler; every other
 * rank makes the same forward calls on contexts made alike, in the same
 * order. Before each call rank 0 sends a command (what, which slot, from
 * which position, the tokens); a stop command ends the followers.
 *
 * --split experts: every rank computes every call at once (the experts'
 * sums meet in collectives), so rank 0 sends each command to every rank.
 * --split layers: the ranks are a pipeline. A command goes down it with the
 * activations, rank to rank; the last rank sends the logits back to rank 0,
 * which posted their receives when it made the call. The scheduler keeps up
 * to ranks calls in the pipeline (tm_serve_mirror's depth), each of another
 * group of sequences, so rank 0 computes one group's first layers while the
 * next ranks compute the groups before it. Posting the receives first is
 * what keeps that from deadlocking: the last rank's logits never wait for
 * rank 0, which may itself wait to hand its activations to rank 1.
 *
 * After each call every follower sends rank 0 a report: the time it
 * computed the call and its counters so far (a receive rank 0 posted when
 * it made the call, so nothing waits on it), which /metrics shows per rank.
 *
 * How many groups: from those times rank 0 fits each stage's cost
 * per call and per row (tm_stage_fit) and takes the number of groups with
 * the shortest predicted round (tm_pipeline_groups). Until the calls have
 * had different sizes, which a fit needs, every other decode step is of one
 * slot; --pipeline-groups equal keeps a group per stage.
 *
 * A follower waits for the next command without the watchdog (rank 0 may
 * wait for a request as long as it likes) and without spinning: it polls a
 * nonblocking receive and sleeps between polls (a short nap first: in a
 * busy pipeline the next command is close), so idle followers leave the
 * CPUs to whoever computes. A rank that dies is the runtime's to notice (it
 * stops the others, see comm.c); inside a forward call the watchdog still
 * covers every message.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "lib/mpi/mpi_internal.h"
#include "tiermem/error.h"
#include "tiermem/plan.h"
#include "tiermem/serve.h"

/* another number of groups only for a predicted gain above this (the fits are noisy) */
#define GROUP_MARGIN 0.05

enum { OP_PREFILL = 1, OP_DECODE, OP_STOP };

/* A command; its tokens (prefill: n; decode: n slots, then n tokens) follow in a second message. */
struct cmd {
	int32_t op, slot, n_past, n;
};

/*
 * A follower's report after each call: its decode rows (0: a prompt chunk)
 * and the seconds it computed them (--split layers), then its counters
 * since the start (tm_mpi_mark): wall and MPI seconds, MPI calls, bytes
 * sent, seconds computing, weight bytes read.
 */
struct report {
	double rows, sec;
	double wall, mpi, calls, sent, busy, weights;
};
#define REPORT_N ((int)(sizeof(struct report) / sizeof(double)))

/*
 * Rank 0: the calls in flight, oldest first (--split layers: up to ranks;
 * else one): the receives of their logits (layers) and of the followers'
 * reports; the stages' fits; the newest reports, for /metrics.
 */
struct tm_mpi_serve {
	struct tm_server *srv;
	int depth, slots;
	MPI_Request *rq;	/* depth rows of slots + ranks */
	int *n_rq;		/* per row */
	struct report *cost;	/* depth rows of ranks */
	int head, count;
	double since;		/* when the pipeline last became busy */
	double busy0;		/* this rank's busy seconds when its newest call began */
	struct tm_stage_fit *fit;	/* per stage */
	bool equal;		/* --pipeline-groups equal */
	unsigned explored;	/* decode steps made to vary the calls' sizes */
	int groups;		/* the number of groups chosen last (a group per stage at first) */
	uint64_t *chosen;	/* decode steps made with 1..depth groups (index 0: exploring) */
	/* /metrics reads these from an HTTP thread: under lock */
	pthread_mutex_t lock;
	struct report *last;	/* per rank (rank 0's own: its counters) */
};

static void send_to(struct tm_mpi_split *s, int dest, const struct cmd *c, const int32_t *toks, int count)
{
	double t0 = tm_mpi_enter(s, "MPI_Send of a server command");

	tm_mpi_leave(s, t0, MPI_Send(c, sizeof(*c) / sizeof(int32_t), MPI_INT32_T, dest, TAG_CMD, MPI_COMM_WORLD),
		     dest, sizeof(*c));
	if (!count)
		return;
	t0 = tm_mpi_enter(s, "MPI_Send of a server command's tokens");
	tm_mpi_leave(s, t0, MPI_Send(toks, count, MPI_INT32_T, dest, TAG_TOKS, MPI_COMM_WORLD), dest,
		     sizeof(int32_t) * (uint64_t)count);
}

/* Rank 0's command to the ranks that get it from this one: every follower, or the next stage. */
static void pass_on(struct tm_mpi_split *s, const struct cmd *c, const int32_t *toks, int count)
{
	if (s->kind == TM_SPLIT_LAYERS) {
		if (s->rank + 1 < s->ranks)
			send_to(s, s->rank + 1, c, toks, count);
		return;
	}
	for (int r = 1; !s->rank && r < s->ranks; r++)
		send_to(s, r, c, toks, count);
}

static int source(const struct tm_mpi_split *s)
{
	return s->kind == TM_SPLIT_LAYERS ? s->rank - 1 : 0;
}

static int n_toks(const struct cmd *c)
{
	return c->op == OP_DECODE ? 2 * c->n : c->op == OP_PREFILL ? c->n : 0;
}

static void send_cmd(struct tm_mpi_split *s, int op, int slot, int n_past, const int32_t *a, const int32_t *b,
		     int n)
{
	struct cmd c = { op, slot, n_past, n };
	int count = n_toks(&c);
	int32_t *buf = count ? malloc(sizeof(int32_t) * (size_t)count) : NULL;

	if (count && !buf) {
		/* the followers wait for this command: without it the job cannot go on */
		fprintf(stderr, "tiermem: rank 0: out of memory for a server command\n");
		_exit(1);
	}
	if (count)
		memcpy(buf, a, sizeof(int32_t) * (size_t)n);
	if (b)
		memcpy(buf + n, b, sizeof(int32_t) * (size_t)n);
	pass_on(s, &c, buf, count);
	free(buf);
}

static bool pipeline(const struct tm_mpi_split *s)
{
	return s->kind == TM_SPLIT_LAYERS && s->ranks > 1;
}

/*
 * Rank 0: a call of rows tokens made (decode: of rows slots); post the
 * receives of the followers' reports of it and, --split layers, of its n
 * contexts' logits.
 */
static void expect(struct tm_mpi_split *s, struct tm_ctx *const *ctxs, int n, int rows, bool decode)
{
	struct tm_mpi_serve *v = s->serve;
	int row = (v->head + v->count) % v->depth;
	MPI_Request *rq = v->rq + (size_t)row * (v->slots + s->ranks);
	struct report *cost = v->cost + (size_t)row * s->ranks;

	if (!pipeline(s))
		n = 0;
	else if (v->count)
		s->now.overlapped++;
	else
		v->since = tm_now();
	v->count++;
	v->n_rq[row] = n + s->ranks - 1;
	for (int i = 0; i < n; i++) {
		double t0 = tm_mpi_enter(s, "MPI_Irecv of the logits");

		tm_mpi_leave(s, t0, MPI_Irecv(ctxs[i]->logits, s->n_vocab, MPI_FLOAT, s->ranks - 1, TAG_LOGITS,
					      MPI_COMM_WORLD, &rq[i]), s->ranks - 1, 0);
	}
	for (int r = 1; r < s->ranks; r++) {
		double t0 = tm_mpi_enter(s, "MPI_Irecv of a rank's report");

		tm_mpi_leave(s, t0, MPI_Irecv(&cost[r], REPORT_N, MPI_DOUBLE, r, TAG_REPORT, MPI_COMM_WORLD,
					      &rq[n + r - 1]), r, 0);
	}
	cost[0] = (struct report){ .rows = decode ? rows : 0 };
	if (!pipeline(s))
		return;
	/* this rank computes its layers of the call from here to its MPI_Send of the activations */
	s->rows_left = rows;
	v->busy0 = s->now.busy_sec;
	tm_mpi_computing(s);
}

/* Rank 0: its own part of the newest call computed (its forward pass returned). */
static void on_made(void *arg)
{
	struct tm_mpi_split *s = arg;
	struct tm_mpi_serve *v = s->serve;
	int row = (v->head + v->count - 1) % v->depth;

	tm_mpi_computed(s);
	v->cost[(size_t)row * s->ranks].sec = s->now.busy_sec - v->busy0;
}

/* Slots in the next decode step: a group of the running ones, as many groups as the costs say. */
static int on_group(void *arg, int running)
{
	struct tm_mpi_split *s = arg;
	struct tm_mpi_serve *v = s->serve;
	struct tm_stage_cost c[s->ranks];
	int g = v->depth;

	for (int r = 0; r < s->ranks && !v->equal; r++)
		if (!tm_stage_fit_get(&v->fit[r], &c[r])) {
			/* calls of one size cannot be fitted: every other step of one slot */
			if (running > 1 && v->explored++ % 2)
				g = 0;
			break;
		} else if (r == s->ranks - 1) {
			g = v->groups = tm_pipeline_groups(c, s->ranks, running, v->groups, GROUP_MARGIN);
		}
	pthread_mutex_lock(&v->lock);
	v->chosen[g]++;
	pthread_mutex_unlock(&v->lock);
	return g ? (running + g - 1) / g : 1;
}

static void on_prefill(void *arg, int slot, int n_past, const int32_t *toks, int n)
{
	struct tm_mpi_split *s = arg;
	struct tm_ctx *c = tm_serve_ctx(s->serve->srv, slot);

	send_cmd(s, OP_PREFILL, slot, n_past, toks, NULL, n);
	if (s->ranks > 1)
		expect(s, &c, 1, n, false);
}

static void on_decode(void *arg, const int *slots, const int32_t *toks, int n)
{
	struct tm_mpi_split *s = arg;
	struct tm_ctx *ctxs[n];
	int32_t ids[n];

	for (int i = 0; i < n; i++) {
		ids[i] = slots[i];
		ctxs[i] = tm_serve_ctx(s->serve->srv, slots[i]);
	}
	s->tokens += (uint64_t)n;
	send_cmd(s, OP_DECODE, 0, 0, ids, toks, n);
	if (s->ranks > 1)
		expect(s, ctxs, n, n, true);
}

/* This rank's counters since the mark, into a report. */
static void counters(const struct tm_mpi_split *s, struct report *r)
{
	r->wall = tm_now() - s->mark.sec;
	r->mpi = s->now.mpi_sec - s->mark.mpi_sec;
	r->calls = (double)(s->now.calls - s->mark.calls);
	r->sent = (double)(s->now.sent - s->mark.sent);
	r->busy = s->now.busy_sec - s->mark.busy_sec;
	r->weights = (double)(s->ctx->weight_bytes - s->mark.weight_bytes);
}

/*
 * The oldest call is done: rank 0 waits for its reports (and, in a
 * pipeline, its logits, which the last rank sends).
 */
static void on_done(void *arg, struct tm_ctx *const *ctxs, int n)
{
	struct tm_mpi_split *s = arg;
	struct tm_mpi_serve *v = s->serve;
	struct report *rep = v->cost + (size_t)v->head * s->ranks;
	double t0;

	if (s->rank) {
		for (int i = 0; i < n && pipeline(s); i++)
			tm_mpi_logits_to_root(s, ctxs[i]->logits, 1);
		return;
	}
	if (s->ranks < 2)
		return;
	t0 = tm_mpi_enter(s, pipeline(s) ? "MPI_Waitall for the logits" : "MPI_Waitall for the ranks' reports");
	tm_mpi_leave(s, t0, MPI_Waitall(v->n_rq[v->head], v->rq + (size_t)v->head * (v->slots + s->ranks),
					MPI_STATUSES_IGNORE), s->ranks - 1, 0);
	pthread_mutex_lock(&v->lock);
	for (int r = 0; r < s->ranks && pipeline(s); r++)
		if (rep[r].rows > 0)
			tm_stage_fit_add(&v->fit[r], rep[r].rows, rep[r].sec);
	counters(s, &v->last[0]);
	for (int r = 1; r < s->ranks; r++)
		v->last[r] = rep[r];
	pthread_mutex_unlock(&v->lock);
	v->head = (v->head + 1) % v->depth;
	if (!--v->count && pipeline(s))
		s->now.active_sec += tm_now() - v->since;
}

/* One counter per rank from the newest reports (at, a double's offset in struct report). */
static void per_rank(FILE *f, const struct tm_mpi_split *s, const char *name, const char *type, const char *help,
		     size_t at)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	for (int r = 0; r < s->ranks; r++)
		fprintf(f, "%s{rank=\"%d\"} %.15g\n", name, r, *(const double *)((const char *)&s->serve->last[r] + at));
}

/* Rank 0's /metrics: each rank's counters as of its last report, the cluster's MPI share, the pipeline's fit. */
static char *on_metrics(void *arg)
{
	const struct tm_mpi_split *s = arg;
	struct tm_mpi_serve *v = s->serve;
	double mpi = 0, wall = 0;
	struct tm_stage_cost c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	pthread_mutex_lock(&v->lock);
	fprintf(f, "# HELP tiermem_mpi_ranks Ranks of the MPI job (serve --split).\n# TYPE tiermem_mpi_ranks gauge\n"
		"tiermem_mpi_ranks{split=\"%s\"} %d\n", tm_split_name(s->kind), s->ranks);
	per_rank(f, s, "tiermem_mpi_seconds_total", "counter", "Seconds each rank spent in MPI calls that move "
		 "data, waiting for the others included (as of its last report, after a forward call).",
		 offsetof(struct report, mpi));
	per_rank(f, s, "tiermem_mpi_calls_total", "counter", "MPI calls that move data, per rank.",
		 offsetof(struct report, calls));
	per_rank(f, s, "tiermem_mpi_sent_bytes_total", "counter", "Bytes each rank sent (a broadcast counts "
		 "once, on its root).", offsetof(struct report, sent));
	per_rank(f, s, "tiermem_mpi_weight_bytes_total", "counter", "Weight bytes each rank's forward passes "
		 "read.", offsetof(struct report, weights));
	per_rank(f, s, "tiermem_mpi_wall_seconds", "gauge", "Seconds since the start, as of each rank's last "
		 "report.", offsetof(struct report, wall));
	if (pipeline(s))
		per_rank(f, s, "tiermem_mpi_compute_seconds_total", "counter", "Seconds each stage computed its "
			 "layers (--split layers).", offsetof(struct report, busy));
	for (int r = 0; r < s->ranks; r++)
		mpi += v->last[r].mpi, wall += v->last[r].wall;
	fprintf(f, "# HELP tiermem_mpi_share The ranks' MPI seconds over their wall seconds, all ranks.\n"
		"# TYPE tiermem_mpi_share gauge\ntiermem_mpi_share %.4f\n", wall > 0 ? mpi / wall : 0);
	if (pipeline(s)) {
		fprintf(f, "# HELP tiermem_pipeline_stage_seconds A stage's fitted cost of a decode call: per call "
			"and per row.\n# TYPE tiermem_pipeline_stage_seconds gauge\n");
		for (int r = 0; r < s->ranks; r++)
			if (tm_stage_fit_get(&v->fit[r], &c))
				fprintf(f, "tiermem_pipeline_stage_seconds{stage=\"%d\",per=\"call\"} %.6g\n"
					"tiermem_pipeline_stage_seconds{stage=\"%d\",per=\"row\"} %.6g\n", r,
					c.call_sec, r, c.row_sec);
		fprintf(f, "# HELP tiermem_pipeline_decode_steps_total Decode steps by the number of groups the "
			"running sequences were split in (0: exploring, one slot).\n"
			"# TYPE tiermem_pipeline_decode_steps_total counter\n");
		for (int g = 0; g <= v->depth; g++)
			fprintf(f, "tiermem_pipeline_decode_steps_total{groups=\"%d\"} %llu\n", g,
				(unsigned long long)v->chosen[g]);
	}
	pthread_mutex_unlock(&v->lock);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int attach(struct tm_mpi_split *s, struct tm_ctx *c)
{
	if (s->kind == TM_SPLIT_LAYERS) {
		c->stage = &s->stage;
		return 0;
	}
	if (c->n_batch > s->sum_rows) {
		float *sum = realloc(s->sum, sizeof(float) * (size_t)c->n_batch * (size_t)s->n_embd);

		if (!sum)
			return tm_err(-ENOMEM, "mpi: out of memory");
		s->sum = sum;
		s->sum_rows = c->n_batch;
	}
	if (s->kind == TM_SPLIT_EXPERTS_DENSE) {
		int err = tm_mpi_dense_setup(s, c);

		if (err || !c->m->hp.moe)
			return err;
	}
	return tm_mpi_experts_hook(s, c);
}

int tm_mpi_serve_start(struct tm_mpi_split *s, struct tm_server *srv)
{
	struct tm_mpi_serve *v;
	int err;

	for (int i = 0; i <= tm_serve_slots(srv); i++)
		if ((err = attach(s, tm_serve_ctx(srv, i))))
			return err;
	v = s->serve = calloc(1, sizeof(*v));
	if (!v)
		return tm_err(-ENOMEM, "mpi: out of memory");
	v->srv = srv;
	v->slots = tm_serve_slots(srv);
	v->depth = pipeline(s) ? s->ranks : 1;
	v->equal = s->equal_groups;
	v->groups = v->depth;
	v->rq = calloc((size_t)v->depth * (size_t)(v->slots + s->ranks), sizeof(*v->rq));
	v->n_rq = calloc((size_t)v->depth, sizeof(*v->n_rq));
	v->cost = calloc((size_t)v->depth * (size_t)s->ranks, sizeof(*v->cost));
	v->fit = calloc((size_t)s->ranks, sizeof(*v->fit));
	v->chosen = calloc((size_t)v->depth + 1, sizeof(*v->chosen));
	v->last = calloc((size_t)s->ranks, sizeof(*v->last));
	pthread_mutex_init(&v->lock, NULL);
	if (!v->rq || !v->n_rq || !v->cost || !v->fit || !v->chosen || !v->last)
		return tm_err(-ENOMEM, "mpi: out of memory");
	if (!s->rank)
		tm_serve_mirror(srv, &(struct tm_serve_mirror){ .prefill = on_prefill, .decode = on_decode,
								 .made = pipeline(s) ? on_made : NULL,
								 .group = pipeline(s) ? on_group : NULL,
								 .done = on_done, .metrics = on_metrics,
								 .depth = v->depth, .arg = s });
	return 0;
}

/* Rank 0 at the stop: the stages' fitted costs and the groups the decode steps were made in. */
static void report_groups(const struct tm_mpi_split *s, FILE *f)
{
	const struct tm_mpi_serve *v = s->serve;
	struct tm_stage_cost c;

	fprintf(f, "pipeline groups (%s):", v->equal ? "equal" : "by cost");
	for (int r = 0; r < s->ranks; r++)
		if (tm_stage_fit_get(&v->fit[r], &c))
			fprintf(f, " stage %d %.3f ms + %.3f ms/row;", r, c.call_sec * 1e3, c.row_sec * 1e3);
		else
			fprintf(f, " stage %d not fitted;", r);
	fprintf(f, " decode steps: %llu exploring", (unsigned long long)v->chosen[0]);
	for (int g = 1; g <= v->depth; g++)
		fprintf(f, ", %llu in %d group%s", (unsigned long long)v->chosen[g], g, g > 1 ? "s" : "");
	fputc('\n', f);
}

void tm_mpi_serve_free(struct tm_mpi_serve *v)
{
	if (!v)
		return;
	free(v->rq);
	free(v->n_rq);
	free(v->cost);
	free(v->fit);
	free(v->chosen);
	free(v->last);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

void tm_mpi_serve_stop(struct tm_mpi_split *s)
{
	if (s->rank)
		return;
	send_cmd(s, OP_STOP, 0, 0, NULL, NULL, 0);
	if (pipeline(s))
		report_groups(s, stderr);
	tm_mpi_report(s, stderr, s->tokens);
}

/* A follower's report of the call it just computed, to rank 0 (which posted its receive). */
static void send_report(struct tm_mpi_split *s, double rows, double sec)
{
	struct report r = { .rows = rows, .sec = sec };
	double t0;

	counters(s, &r);
	t0 = tm_mpi_enter(s, "MPI_Send of a rank's report");
	tm_mpi_leave(s, t0, MPI_Send(&r, REPORT_N, MPI_DOUBLE, 0, TAG_REPORT, MPI_COMM_WORLD), 0, sizeof(r));
}

/* The next command, waited for without the watchdog and without spinning. */
static void next_cmd(struct tm_mpi_split *s, struct cmd *c)
{
	struct timespec nap = { 0, 20 * 1000 };
	MPI_Request rq;
	int done = 0, rc;

	rc = MPI_Irecv(c, sizeof(*c) / sizeof(int32_t), MPI_INT32_T, source(s), TAG_CMD, MPI_COMM_WORLD, &rq);
	while (rc == MPI_SUCCESS && !(rc = MPI_Test(&rq, &done, MPI_STATUS_IGNORE)) && !done) {
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 2 * 1000 * 1000)
			nap.tv_nsec *= 2;
	}
	tm_mpi_leave(s, tm_mpi_enter(s, "MPI_Irecv of a server command"), rc, source(s), 0);
}

int tm_mpi_serve_follow(struct tm_mpi_split *s, struct tm_server *srv)
{
	int slots = tm_serve_slots(srv), most = tm_serve_ctx(srv, 0)->n_ctx;
	int32_t *buf;

	/* a prompt chunk fits its slot; a decode step is a slot and a token for each slot */
	if (most < 2 * slots)
		most = 2 * slots;
	buf = malloc(sizeof(int32_t) * (size_t)most);

	if (!buf)
		return tm_err(-ENOMEM, "mpi: out of memory");
	for (;;) {
		struct tm_ctx *seqs[slots], *c;
		struct cmd cmd;
		int err = 0;
		double t0, busy0;

		next_cmd(s, &cmd);
		if (cmd.op == OP_STOP) {
			pass_on(s, &cmd, NULL, 0);
			break;
		}
		/* rank 0 sends only what its own scheduler ran: anything else is a bug, not input */
		if (cmd.n < 1 || cmd.n > (cmd.op == OP_DECODE ? slots : most) || cmd.slot < 0 || cmd.slot >= slots ||
		    (cmd.op != OP_DECODE && cmd.op != OP_PREFILL)) {
			free(buf);
			return tm_err(-EPROTO, "mpi serve: a malformed command from rank %d (op %d, %d tokens)",
				      source(s), cmd.op, cmd.n);
		}
		t0 = tm_mpi_enter(s, "MPI_Recv of a server command's tokens");
		tm_mpi_leave(s, t0, MPI_Recv(buf, n_toks(&cmd), MPI_INT32_T, source(s), TAG_TOKS, MPI_COMM_WORLD,
					     MPI_STATUS_IGNORE), source(s), 0);
		/* the next stage gets the command before this one computes: it waits for our activations */
		pass_on(s, &cmd, buf, n_toks(&cmd));
		s->rows_left = cmd.n;
		busy0 = s->now.busy_sec;
		if (cmd.op == OP_PREFILL) {
			c = tm_serve_ctx(srv, cmd.slot);
			c->n_past = cmd.n_past;
			err = tm_forward(c, buf, cmd.n, NULL, false);
			tm_mpi_computed(s);
			on_done(s, &c, 1);
		} else {
			for (int i = 0; i < cmd.n; i++)
				seqs[i] = tm_serve_ctx(srv, buf[i] >= 0 && buf[i] < slots ? buf[i] : 0);
			err = tm_forward_seqs(tm_serve_ctx(srv, slots), seqs, buf + cmd.n, cmd.n);
			tm_mpi_computed(s);
			on_done(s, seqs, cmd.n);
		}
		send_report(s, cmd.op == OP_DECODE ? cmd.n : 0, s->now.busy_sec - busy0);
		/* rank 0 ran the same call on the same state: it failed there too and said so */
		(void)err;
	}
	free(buf);
	tm_mpi_report(s, stderr, 0);
	return 0;
}
