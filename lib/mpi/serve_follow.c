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
 * A follower waits for the next command without the watchdog (rank 0 may
 * wait for a request as long as it likes) and without spinning: it polls a
 * nonblocking receive and sleeps between polls (a short nap first: in a
 * busy pipeline the next command is close), so idle followers leave the
 * CPUs to whoever computes. A rank that dies is the runtime's to notice (it
 * stops the others, see comm.c); inside a forward call the watchdog still
 * covers every message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "lib/mpi/mpi_internal.h"
#include "tiermem/error.h"
#include "tiermem/serve.h"

enum { OP_PREFILL = 1, OP_DECODE, OP_STOP };

/* A command; its tokens (prefill: n; decode: n slots, then n tokens) follow in a second message. */
struct cmd {
	int32_t op, slot, n_past, n;
};

/* The calls in the pipeline, oldest first: the receives of their logits (rank 0, --split layers). */
struct tm_mpi_serve {
	struct tm_server *srv;
	int depth, slots;
	MPI_Request *rq;	/* depth rows of slots */
	int *n_rq;		/* per row */
	int head, count;
	double since;		/* when the pipeline last became busy */
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

/* Rank 0, --split layers: a call of rows tokens made; post the receives of its n contexts' logits. */
static void expect(struct tm_mpi_split *s, struct tm_ctx *const *ctxs, int n, int rows)
{
	struct tm_mpi_serve *v = s->serve;
	int row = (v->head + v->count) % v->depth;
	MPI_Request *rq = v->rq + (size_t)row * v->slots;

	if (v->count)
		s->now.overlapped++;
	else
		v->since = tm_now();
	v->count++;
	v->n_rq[row] = n;
	for (int i = 0; i < n; i++) {
		double t0 = tm_mpi_enter(s, "MPI_Irecv of the logits");

		tm_mpi_leave(s, t0, MPI_Irecv(ctxs[i]->logits, s->n_vocab, MPI_FLOAT, s->ranks - 1, TAG_LOGITS,
					      MPI_COMM_WORLD, &rq[i]), s->ranks - 1, 0);
	}
	/* this rank computes its layers of the call from here to its MPI_Send of the activations */
	s->rows_left = rows;
	tm_mpi_computing(s);
}

static bool pipeline(const struct tm_mpi_split *s)
{
	return s->kind == TM_SPLIT_LAYERS && s->ranks > 1;
}

static void on_prefill(void *arg, int slot, int n_past, const int32_t *toks, int n)
{
	struct tm_mpi_split *s = arg;
	struct tm_ctx *c = tm_serve_ctx(s->serve->srv, slot);

	send_cmd(s, OP_PREFILL, slot, n_past, toks, NULL, n);
	if (pipeline(s))
		expect(s, &c, 1, n);
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
	if (pipeline(s))
		expect(s, ctxs, n, n);
}

/* The oldest call's logits: rank 0 waits for them; the last rank of a pipeline sends them. */
static void on_done(void *arg, struct tm_ctx *const *ctxs, int n)
{
	struct tm_mpi_split *s = arg;
	struct tm_mpi_serve *v = s->serve;
	double t0;

	if (!pipeline(s))
		return;
	if (s->rank) {
		for (int i = 0; i < n; i++)
			tm_mpi_logits_to_root(s, ctxs[i]->logits, 1);
		return;
	}
	t0 = tm_mpi_enter(s, "MPI_Waitall for the logits");
	tm_mpi_leave(s, t0, MPI_Waitall(v->n_rq[v->head], v->rq + (size_t)v->head * v->slots,
					MPI_STATUSES_IGNORE), s->ranks - 1, 0);
	v->head = (v->head + 1) % v->depth;
	if (!--v->count)
		s->now.active_sec += tm_now() - v->since;
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
	v->rq = calloc((size_t)v->depth * (size_t)v->slots, sizeof(*v->rq));
	v->n_rq = calloc((size_t)v->depth, sizeof(*v->n_rq));
	if (!v->rq || !v->n_rq)
		return tm_err(-ENOMEM, "mpi: out of memory");
	if (!s->rank)
		tm_serve_mirror(srv, &(struct tm_serve_mirror){ .prefill = on_prefill, .decode = on_decode,
								 .done = on_done, .depth = v->depth, .arg = s });
	return 0;
}

void tm_mpi_serve_free(struct tm_mpi_serve *v)
{
	if (!v)
		return;
	free(v->rq);
	free(v->n_rq);
	free(v);
}

void tm_mpi_serve_stop(struct tm_mpi_split *s)
{
	if (s->rank)
		return;
	send_cmd(s, OP_STOP, 0, 0, NULL, NULL, 0);
	tm_mpi_report(s, stderr, s->tokens);
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
		double t0;

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
		/* rank 0 ran the same call on the same state: it failed there too and said so */
		(void)err;
	}
	free(buf);
	tm_mpi_report(s, stderr, 0);
	return 0;
}
