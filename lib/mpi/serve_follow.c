// SPDX-License-Identifier: MIT
/*
 * tiermem serve over MPI: rank 0 runs HTTP and the scheduler; every other
 * rank makes the same forward calls on contexts made alike, in the same
 * order, so the collectives inside the forward passes (the experts' sums,
 * the layers' hand-offs) meet. Before each call rank 0 broadcasts a command
 * (what, which slot, from which position, the tokens); a stop command ends
 * the followers. With several sequences in flight every rank works on the
 * same step at once: with --split layers the ranks take turns on each call,
 * they do not pipeline different sequences.
 *
 * A follower waits for the next command without the watchdog (rank 0 may
 * wait for a request as long as it likes) and without spinning: it polls a
 * nonblocking broadcast and sleeps between polls, so idle followers leave
 * the CPUs to whoever computes. A rank that dies is the runtime's to notice
 * (it stops the others, see comm.c); inside a forward call the watchdog
 * still covers every collective.
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

/* A command; its tokens (prefill: n; decode: n slots, then n tokens) follow in a second broadcast. */
struct cmd {
	int32_t op, slot, n_past, n;
};

static void bcast(struct tm_mpi_split *s, void *buf, int count, const char *what)
{
	double t0 = tm_mpi_enter(s, what);

	tm_mpi_leave(s, t0, MPI_Bcast(buf, count, MPI_INT32_T, 0, MPI_COMM_WORLD), 0,
		     s->rank ? 0 : sizeof(int32_t) * (uint64_t)count);
}

static void send_cmd(struct tm_mpi_split *s, int op, int slot, int n_past, const int32_t *a, const int32_t *b,
		     int n)
{
	struct cmd c = { op, slot, n_past, n };
	int32_t *buf;
	int count = n * (b ? 2 : 1);

	MPI_Request rq;
	double t0;
	int rc;

	/* the followers wait in MPI_Ibcast, which only a nonblocking broadcast matches */
	t0 = tm_mpi_enter(s, "MPI_Ibcast of a server command");
	rc = MPI_Ibcast(&c, sizeof(c) / sizeof(int32_t), MPI_INT32_T, 0, MPI_COMM_WORLD, &rq);
	if (rc == MPI_SUCCESS)
		rc = MPI_Wait(&rq, MPI_STATUS_IGNORE);
	tm_mpi_leave(s, t0, rc, -1, sizeof(c));
	if (!n)
		return;
	buf = malloc(sizeof(int32_t) * (size_t)count);
	if (!buf) {
		/* the followers wait for this broadcast: without it the job cannot go on */
		fprintf(stderr, "tiermem: rank 0: out of memory for a server command\n");
		_exit(1);
	}
	memcpy(buf, a, sizeof(int32_t) * (size_t)n);
	if (b)
		memcpy(buf + n, b, sizeof(int32_t) * (size_t)n);
	bcast(s, buf, count, "MPI_Bcast of a server command's tokens");
	free(buf);
}

static void on_prefill(void *arg, int slot, int n_past, const int32_t *toks, int n)
{
	send_cmd(arg, OP_PREFILL, slot, n_past, toks, NULL, n);
}

static void on_decode(void *arg, const int *slots, const int32_t *toks, int n)
{
	int32_t ids[n];

	for (int i = 0; i < n; i++)
		ids[i] = slots[i];
	send_cmd(arg, OP_DECODE, 0, 0, ids, toks, n);
}

/* layers: the last rank's logits of each context to rank 0, which samples them */
static void on_done(void *arg, struct tm_ctx *const *ctxs, int n)
{
	for (int i = 0; i < n; i++)
		tm_mpi_logits_to_root(arg, ctxs[i]->logits, 1);
}

static int attach(struct tm_mpi_split *s, struct tm_ctx *c)
{
	if (s->kind == TM_SPLIT_LAYERS) {
		c->stage = &s->stage;
		return 0;
	}
	if (c->xhook && c->xhook != &s->hook)
		return tm_err(-EINVAL, "--split experts does not combine with an expert cache yet: "
			      "both decide where a routed expert is read");
	if (c->n_batch > s->sum_rows) {
		float *sum = realloc(s->sum, sizeof(float) * (size_t)c->n_batch * (size_t)s->n_embd);

		if (!sum)
			return tm_err(-ENOMEM, "mpi: out of memory");
		s->sum = sum;
		s->sum_rows = c->n_batch;
	}
	c->xhook = &s->hook;
	return 0;
}

int tm_mpi_serve_start(struct tm_mpi_split *s, struct tm_server *srv)
{
	int err;

	for (int i = 0; i <= tm_serve_slots(srv); i++)
		if ((err = attach(s, tm_serve_ctx(srv, i))))
			return err;
	if (!s->rank)
		tm_serve_mirror(srv, &(struct tm_serve_mirror){ .prefill = on_prefill, .decode = on_decode,
								 .done = on_done, .arg = s });
	return 0;
}

void tm_mpi_serve_stop(struct tm_mpi_split *s)
{
	if (!s->rank)
		send_cmd(s, OP_STOP, 0, 0, NULL, NULL, 0);
}

/* The next command, waited for without the watchdog and without spinning. */
static void next_cmd(struct tm_mpi_split *s, struct cmd *c)
{
	const struct timespec nap = { 0, 2 * 1000 * 1000 };
	MPI_Request rq;
	int done = 0, rc;

	rc = MPI_Ibcast(c, sizeof(*c) / sizeof(int32_t), MPI_INT32_T, 0, MPI_COMM_WORLD, &rq);
	while (rc == MPI_SUCCESS && !(rc = MPI_Test(&rq, &done, MPI_STATUS_IGNORE)) && !done)
		nanosleep(&nap, NULL);
	tm_mpi_leave(s, tm_mpi_enter(s, "MPI_Ibcast of a server command"), rc, 0, 0);
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

		next_cmd(s, &cmd);
		if (cmd.op == OP_STOP)
			break;
		/* rank 0 sends only what its own scheduler ran: anything else is a bug, not input */
		if (cmd.n < 1 || cmd.n > (cmd.op == OP_DECODE ? slots : most) || cmd.slot < 0 || cmd.slot >= slots) {
			free(buf);
			return tm_err(-EPROTO, "mpi serve: a malformed command from rank 0 (op %d, %d tokens)",
				      cmd.op, cmd.n);
		}
		bcast(s, buf, cmd.n * (cmd.op == OP_DECODE ? 2 : 1), "MPI_Bcast of a server command's tokens");
		if (cmd.op == OP_PREFILL) {
			c = tm_serve_ctx(srv, cmd.slot);
			c->n_past = cmd.n_past;
			err = tm_forward(c, buf, cmd.n, NULL, false);
			on_done(s, &c, 1);
		} else {
			for (int i = 0; i < cmd.n; i++)
				seqs[i] = tm_serve_ctx(srv, buf[i] >= 0 && buf[i] < slots ? buf[i] : 0);
			err = tm_forward_seqs(tm_serve_ctx(srv, slots), seqs, buf + cmd.n, cmd.n);
			on_done(s, seqs, cmd.n);
		}
		/* rank 0 ran the same call on the same state: it failed there too and said so */
		(void)err;
	}
	free(buf);
	return 0;
}
