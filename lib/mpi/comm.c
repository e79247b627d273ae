// SPDX-License-Identifier: MIT
/*
 * What both splits share: starting MPI, the identity check at start, the
 * watchdog, counters, sampling on rank 0, and the cluster report.
 *
 * A rank that dies: Open MPI's runtime (mpirun/orted) sees the process end
 * and tears the job down with SIGTERM (then SIGKILL); the handler below turns
 * that into one line saying why. Where the runtime does not notice (a rank
 * that hangs, is stopped, or a runtime started with --enable-recovery), the
 * watchdog ends a rank that has waited in one MPI call longer than the
 * timeout. Errors MPI returns (MPI_ERRORS_RETURN) end the rank with a line
 * too. Either way the rank calls _exit: the collective it was in can never
 * complete, and MPI_Finalize would wait for it as well.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "lib/mpi/mpi_internal.h"
#include "tiermem/error.h"
#include "tiermem/experts.h"

enum tm_split_kind tm_split_parse(const char *s)
{
	return !strcmp(s, "experts") ? TM_SPLIT_EXPERTS : !strcmp(s, "layers") ? TM_SPLIT_LAYERS :
	       !strcmp(s, "experts,dense") ? TM_SPLIT_EXPERTS_DENSE : TM_SPLIT_NONE;
}

const char *tm_split_name(enum tm_split_kind kind)
{
	return kind == TM_SPLIT_EXPERTS ? "experts" : kind == TM_SPLIT_LAYERS ? "layers" :
	       kind == TM_SPLIT_EXPERTS_DENSE ? "experts,dense" : "none";
}

static void finalize(void)
{
	int done = 0;

	MPI_Finalized(&done);
	if (!done)
		MPI_Finalize();
}

/* The runtime's SIGTERM when another rank ended: the line, then whatever handled it before. */
static char term_line[160];
static struct sigaction term_old;

static void on_term(int sig)
{
	ssize_t w = write(STDERR_FILENO, term_line, strlen(term_line));

	(void)w;
	if (term_old.sa_handler != SIG_DFL && term_old.sa_handler != SIG_IGN && term_old.sa_handler) {
		term_old.sa_handler(sig);
		return;
	}
	_exit(1);
}

static int init(void)
{
	int up = 0;

	MPI_Initialized(&up);
	if (!up) {
		if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
			return tm_err(-EIO, "mpi: MPI_Init failed");
		atexit(finalize);
	}
	return 0;
}

int tm_mpi_world_rank(void)
{
	int rank = 0, err = init();

	if (err)
		return err;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	return rank;
}

int tm_mpi_world_size(void)
{
	int ranks = 1, err = init();

	if (err)
		return err;
	MPI_Comm_size(MPI_COMM_WORLD, &ranks);
	return ranks;
}

static int start(struct tm_mpi_split *s)
{
	struct sigaction sa = { .sa_handler = on_term };
	int err = init();

	if (err)
		return err;
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	MPI_Comm_rank(MPI_COMM_WORLD, &s->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &s->ranks);
	snprintf(term_line, sizeof(term_line), "tiermem: rank %d of %d: stopped by the MPI runtime: "
		 "another rank ended or died\n", s->rank, s->ranks);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &term_old);
	return 0;
}

void tm_mpi_die(const struct tm_mpi_split *s, const char *why)
{
	fprintf(stderr, "tiermem: rank %d of %d: %s\n", s->rank, s->ranks, why);
	fflush(stderr);
	_exit(1);
}

static void die(const struct tm_mpi_split *s, const char *fmt, const char *what, double sec)
{
	char why[MPI_MAX_ERROR_STRING + 256];

	snprintf(why, sizeof(why), fmt, what, sec);
	tm_mpi_die(s, why);
}

static void *watch(void *arg)
{
	struct tm_mpi_split *s = arg;
	const struct timespec tick = { 0, 100 * 1000 * 1000 };

	for (;;) {
		const char *what;
		double since;
		bool stop;

		nanosleep(&tick, NULL);
		pthread_mutex_lock(&s->lock);
		stop = s->stop;
		what = s->waiting;
		since = s->since;
		pthread_mutex_unlock(&s->lock);
		if (stop)
			return NULL;
		if (what && tm_now() - since > s->timeout)
			die(s, "no answer in %s for %.0f s: another rank died or hangs; giving up "
			    "(--mpi-timeout)", what, tm_now() - since);
	}
}

void tm_mpi_computing(struct tm_mpi_split *s)
{
	s->busy_t0 = tm_now();
	s->busy = true;
}

void tm_mpi_computed(struct tm_mpi_split *s)
{
	double t;

	if (!s->busy)
		return;
	t = tm_now();
	s->now.busy_sec += t - s->busy_t0;
	tm_mpi_span(s, s->busy_t0, t);
	s->busy = false;
}

double tm_mpi_enter(struct tm_mpi_split *s, const char *what)
{
	double t0;

	tm_mpi_computed(s);
	t0 = tm_now();

	pthread_mutex_lock(&s->lock);
	s->waiting = what;
	s->since = t0;
	pthread_mutex_unlock(&s->lock);
	return t0;
}

void tm_mpi_leave(struct tm_mpi_split *s, double t0, int rc, int peer, uint64_t sent)
{
	pthread_mutex_lock(&s->lock);
	s->waiting = NULL;
	pthread_mutex_unlock(&s->lock);
	if (rc != MPI_SUCCESS) {
		char msg[MPI_MAX_ERROR_STRING], what[MPI_MAX_ERROR_STRING + 32];
		int len = 0;

		MPI_Error_string(rc, msg, &len);
		snprintf(what, sizeof(what), "%.*s (peer %d)", len, msg, peer);
		die(s, "an MPI call failed: %s after %.1f s", what, tm_now() - t0);
	}
	s->now.mpi_sec += tm_now() - t0;
	s->now.calls++;
	s->now.sent += sent;
}

/* What every rank says of itself at start. */
struct ident {
	char hash[33];		/* "" when it cannot be computed */
	char split[16];
	int share_rank, share_ranks;	/* tm_model's: an imported share of the experts or layers */
	int share_layers, share_rows;
	uint64_t share_hash;		/* a share of the experts: its assignment's */
	uint64_t assign_hash;		/* the run's expert assignment (--expert-heat or e % N); 0: none */
};

/* Is rank r's ident consistent with rank 0's and with its place? The same answer on every rank. */
static int check_ident(const struct tm_mpi_split *s, const struct ident *all, int r)
{
	const struct ident *me = &all[r];

	if (!me->hash[0] || !all[0].hash[0])
		return tm_err(-EINVAL, "mpi: rank %d cannot compute its model's identity: every rank must "
			      "open the same model, by -m FILE or --name", me->hash[0] ? 0 : r);
	if (strcmp(me->hash, all[0].hash))
		return tm_err(-EINVAL, "mpi: rank %d opened another model (hash %s, rank 0's %s): every rank "
			      "must open the same one", r, me->hash, all[0].hash);
	if (strcmp(me->split, all[0].split))
		return tm_err(-EINVAL, "mpi: rank %d runs --split %s, rank 0 --split %s: every rank must run "
			      "the same split", r, me->split, all[0].split);
	const char *what = me->share_layers ? "layers" : me->share_rows ? "experts,dense" : "experts";

	if (me->share_rows && s->kind != TM_SPLIT_EXPERTS_DENSE)
		return tm_err(-EINVAL, "mpi: rank %d's model holds only rank %d of %d's rows of the dense "
			      "matrices (tiermem import --split experts,dense): run it with --split experts,dense",
			      r, me->share_rank, me->share_ranks);
	if (me->share_ranks > 1 && !me->share_layers && s->kind == TM_SPLIT_LAYERS)
		return tm_err(-EINVAL, "mpi: rank %d's model holds only rank %d of %d's routed experts "
			      "(tiermem import --split experts): run it with --split experts", r,
			      me->share_rank, me->share_ranks);
	if (me->share_ranks > 1 && me->share_layers && s->kind != TM_SPLIT_LAYERS)
		return tm_err(-EINVAL, "mpi: rank %d's model holds only rank %d of %d's layers "
			      "(tiermem import --split layers): run it with --split layers", r,
			      me->share_rank, me->share_ranks);
	if (me->share_ranks > 1 && (me->share_rank != r || me->share_ranks != s->ranks))
		return tm_err(-EINVAL, "mpi: rank %d of %d opened the share imported for rank %d of %d "
			      "(tiermem import --split %s --rank %d --ranks %d); it needs --rank %d --ranks %d",
			      r, s->ranks, me->share_rank, me->share_ranks, what, me->share_rank, me->share_ranks,
			      r, s->ranks);
	if (me->assign_hash != all[0].assign_hash)
		return tm_err(-EINVAL, "mpi: rank %d assigns the experts to the ranks otherwise than rank 0 "
			      "(another --expert-heat, or none): every rank must give the same heat file", r);
	if (me->share_ranks > 1 && !me->share_layers && me->share_hash != me->assign_hash)
		return tm_err(-EINVAL, "mpi: rank %d's model holds the experts of another assignment than this "
			      "run's: it was imported with another heat (tiermem import --split experts "
			      "--expert-heat FILE, or none: e %% N) than this run's --expert-heat; give the "
			      "import's heat, or import again with the run's", r);
	return 0;
}

/* Every rank's model identity, split and share against rank 0's and its place. */
static int same_run(struct tm_mpi_split *s, const struct tm_model *m, const char *identity)
{
	struct ident mine = { .share_rank = m->share_rank, .share_ranks = m->share_ranks,
			      .share_layers = m->share_layers, .share_rows = m->share_rows,
			      .share_hash = m->share_hash,
			      .assign_hash = s->assign ? s->assign->hash : 0 }, *all;
	int err = 0;
	double t0;

	all = calloc((size_t)s->ranks, sizeof(*all));
	if (!all)
		return tm_err(-ENOMEM, "mpi: out of memory");
	snprintf(mine.hash, sizeof(mine.hash), "%s", identity ? identity : "");
	snprintf(mine.split, sizeof(mine.split), "%s", tm_split_name(s->kind));
	t0 = tm_mpi_enter(s, "MPI_Allgather of the model hashes");
	tm_mpi_leave(s, t0, MPI_Allgather(&mine, sizeof(mine), MPI_BYTE, all, sizeof(mine), MPI_BYTE,
					  MPI_COMM_WORLD), -1, sizeof(mine));
	for (int r = 0; r < s->ranks && !err; r++)
		err = check_ident(s, all, r);
	free(all);
	return err;
}

int tm_mpi_split_start(struct tm_mpi_split *s, struct tm_ctx *c, enum tm_split_kind kind, double timeout,
		       const char *identity, const struct tm_xassign *assign)
{
	int err;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->kind = kind;
	s->assign = kind == TM_SPLIT_LAYERS ? NULL : assign;
	s->ctx = c;
	s->n_embd = c->m->hp.n_embd;
	s->n_vocab = c->m->hp.n_vocab;
	s->timeout = timeout;
	if ((err = start(s)))
		return err;
	s->now.sec = tm_now();
	/* before the first collective: a rank that never arrives is caught there too */
	if (timeout > 0 && !pthread_create(&s->watchdog, NULL, watch, s))
		s->watching = true;
	if ((err = same_run(s, c->m, identity)))
		return err;
	if (c->gpu)
		return tm_err(-EINVAL, "--split runs on the CPU: drop --gpu / -ngl");
	if (kind == TM_SPLIT_LAYERS)
		err = tm_mpi_layers_setup(s, c);
	else if (kind == TM_SPLIT_EXPERTS || c->m->hp.moe)
		err = tm_mpi_experts_setup(s, c);
	/* experts,dense: a dense model's matrices split by rows alone */
	if (!err && kind == TM_SPLIT_EXPERTS_DENSE)
		err = tm_mpi_dense_setup(s, c);
	tm_mpi_mark(s);
	return err;
}

void tm_mpi_mark(struct tm_mpi_split *s)
{
	s->now.sec = tm_now();
	s->now.weight_bytes = s->ctx->weight_bytes;
	memcpy(s->now.map_bytes, s->ctx->map_bytes, sizeof(s->now.map_bytes));
	s->mark = s->now;
	s->n_spans = 0;
	s->spans_full = false;
}

void tm_mpi_split_sampler(struct tm_mpi_split *s, tm_sample_fn sample, void *sampler)
{
	s->sample = sample;
	s->sampler = sampler;
	s->marked = false;
}

void tm_mpi_logits_to_root(struct tm_mpi_split *s, float *logits, int rows)
{
	int last = s->ranks - 1;

	if (s->kind != TM_SPLIT_LAYERS || !last || (s->rank && s->rank != last))
		return;
	for (int i = 0; i < rows; i++) {
		float *row = logits + (size_t)i * s->n_vocab;
		double t0;

		if (s->rank) {
			t0 = tm_mpi_enter(s, "MPI_Send of the logits");
			tm_mpi_leave(s, t0, MPI_Send(row, s->n_vocab, MPI_FLOAT, 0, TAG_LOGITS, MPI_COMM_WORLD), 0,
				     sizeof(float) * (uint64_t)s->n_vocab);
		} else {
			t0 = tm_mpi_enter(s, "MPI_Recv of the logits");
			tm_mpi_leave(s, t0, MPI_Recv(row, s->n_vocab, MPI_FLOAT, last, TAG_LOGITS, MPI_COMM_WORLD,
						     MPI_STATUS_IGNORE), last, 0);
		}
	}
}

int32_t tm_mpi_sample(void *arg, float *logits, int n_vocab)
{
	struct tm_mpi_split *s = arg;
	int32_t tok = 0;
	double t0;

	if (!s->marked) {
		tm_mpi_mark(s);
		s->marked = true;
	}
	tm_mpi_logits_to_root(s, logits, 1);
	if (!s->rank)
		tok = s->sample(s->sampler, logits, n_vocab);
	t0 = tm_mpi_enter(s, "MPI_Bcast of the sampled token");
	tm_mpi_leave(s, t0, MPI_Bcast(&tok, 1, MPI_INT32_T, 0, MPI_COMM_WORLD), 0, s->rank ? 0 : sizeof(tok));
	return tok;
}

/* One rank's counters since the mark, as doubles for one MPI_Gather. */
enum {
	F_SEC, F_MPI, F_CALLS, F_SENT, F_WEIGHTS, F_FIRST, F_LAST, F_BUSY, F_ACTIVE, F_OVERLAP, F_MAPS,
	F_N = F_MAPS + TM_MODEL_MAX_MAPS
};

/* The fewest (most) experts of an MoE layer rank r computes. */
static int experts_of(const struct tm_mpi_split *s, int r, bool most)
{
	int n = most ? 0 : s->assign->n_expert;

	for (int l = 0; l < s->assign->n_layer; l++) {
		int k = tm_xassign_count(s->assign, l, r);

		if (s->ctx->m->layers[l].moe)
			n = most ? (k > n ? k : n) : (k < n ? k : n);
	}
	return n;
}

static void report_line(FILE *f, const struct tm_mpi_split *s, int r, const double *v, const char *tiers,
			double tok, double pipeline)
{
	fprintf(f, "rank %d: ", r);
	if (s->kind == TM_SPLIT_LAYERS)
		fprintf(f, "layers %d-%d, ", (int)v[F_FIRST], (int)v[F_LAST] - 1);
	else if (s->assign && !tm_xassign_is_mod(s->assign))
		fprintf(f, "experts by heat (%d to %d of %d a layer), ", experts_of(s, r, false), experts_of(s, r, true),
			s->assign->n_expert);
	else if (s->kind == TM_SPLIT_EXPERTS || s->ctx->m->hp.moe)
		fprintf(f, "experts e %% %d == %d, ", s->ranks, r);
	if (s->kind == TM_SPLIT_EXPERTS_DENSE)
		fprintf(f, "dense rows part %d of %d, ", r, s->ranks);
	fprintf(f, "%.2f MiB of weights/token, %.3f ms/token in %.1f MPI calls (%.1f %% of %.3f ms), "
		"%.1f KiB sent/token;", v[F_WEIGHTS] / tok / 1048576.0, v[F_MPI] / tok * 1e3, v[F_CALLS] / tok,
		v[F_SEC] > 0 ? 100 * v[F_MPI] / v[F_SEC] : 0, v[F_SEC] / tok * 1e3, v[F_SENT] / tok / 1024);
	for (int i = 0; i < TM_MODEL_MAX_MAPS; i++)
		if (v[F_MAPS + i] > 0)
			fprintf(f, " %s %.2f MiB", tiers + 16 * i, v[F_MAPS + i] / tok / 1048576.0);
	if (pipeline > 0)
		fprintf(f, "; computed %.3f s, %.1f %% of the %.3f s calls were in the pipeline", v[F_BUSY],
			100 * v[F_BUSY] / pipeline, pipeline);
	fputc('\n', f);
}

void tm_mpi_report(struct tm_mpi_split *s, FILE *f, uint64_t tokens)
{
	const struct tm_model *m = s->ctx->m;
	double mine[F_N] = { 0 }, *all = NULL, tok = tokens ? (double)tokens : 1, mpi = 0, sec = 0, busy = 0;
	char names[TM_MODEL_MAX_MAPS * 16] = "", *all_names = NULL;
	double t0, overlap = -1;
	int kept = 0;

	mine[F_SEC] = tm_now() - s->mark.sec;
	mine[F_MPI] = s->now.mpi_sec - s->mark.mpi_sec;
	mine[F_CALLS] = (double)(s->now.calls - s->mark.calls);
	mine[F_SENT] = (double)(s->now.sent - s->mark.sent);
	mine[F_WEIGHTS] = (double)(s->ctx->weight_bytes - s->mark.weight_bytes);
	mine[F_FIRST] = s->first;
	mine[F_LAST] = s->last;
	mine[F_BUSY] = s->now.busy_sec - s->mark.busy_sec;
	mine[F_ACTIVE] = s->now.active_sec - s->mark.active_sec;
	mine[F_OVERLAP] = (double)(s->now.overlapped - s->mark.overlapped);
	for (int i = 0; i < m->n_maps && i < TM_MODEL_MAX_MAPS; i++) {
		mine[F_MAPS + i] = (double)(s->ctx->map_bytes[i] - s->mark.map_bytes[i]);
		snprintf(names + 16 * i, 16, "%s", m->maps[i].tier_name[0] ? m->maps[i].tier_name :
			 tm_tier_name(m->maps[i].tier));
	}
	if (!s->rank) {
		all = calloc((size_t)s->ranks, sizeof(mine));
		all_names = calloc((size_t)s->ranks, sizeof(names));
	}
	t0 = tm_mpi_enter(s, "MPI_Gather of the counters");
	tm_mpi_leave(s, t0, MPI_Gather(mine, F_N, MPI_DOUBLE, all, F_N, MPI_DOUBLE, 0, MPI_COMM_WORLD), 0, 0);
	t0 = tm_mpi_enter(s, "MPI_Gather of the tier names");
	tm_mpi_leave(s, t0, MPI_Gather(names, sizeof(names), MPI_CHAR, all_names, sizeof(names), MPI_CHAR, 0,
				       MPI_COMM_WORLD), 0, 0);
	if (s->kind == TM_SPLIT_LAYERS)
		overlap = tm_mpi_overlap(s, &kept);
	if (s->rank || !all || !all_names) {
		free(all);
		free(all_names);
		return;
	}
	for (int r = 0; r < s->ranks; r++) {
		report_line(f, s, r, all + (size_t)r * F_N, all_names + (size_t)r * sizeof(names), tok,
			    all[F_ACTIVE]);
		mpi += all[(size_t)r * F_N + F_MPI];
		sec += all[(size_t)r * F_N + F_SEC];
		busy += all[(size_t)r * F_N + F_BUSY];
	}
	fprintf(f, "cluster: split=%s ranks=%d tokens=%llu ms_per_token=%.3f mpi_ms_per_token=%.3f mpi_share=%.3f",
		tm_split_name(s->kind), s->ranks, (unsigned long long)tokens, all[F_SEC] / tok * 1e3,
		mpi / s->ranks / tok * 1e3, sec > 0 ? mpi / sec : 0);
	/* serve --split layers: above 1, ranks computed at once (see tm_mpi_counts) */
	if (all[F_ACTIVE] > 0)
		fprintf(f, " pipeline_sec=%.3f busy_sec=%.3f parallelism=%.3f overlapped_calls=%.0f", all[F_ACTIVE],
			busy, busy / all[F_ACTIVE], all[F_OVERLAP]);
	if (all[F_ACTIVE] > 0 && overlap >= 0)
		fprintf(f, " overlap_sec=%.6f overlap_share=%.3f spans=%d", overlap, overlap / all[F_ACTIVE], kept);
	fputc('\n', f);
	free(all);
	free(all_names);
}

void tm_mpi_split_free(struct tm_mpi_split *s)
{
	if (s->watching) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->watchdog, NULL);
		s->watching = false;
	}
	free(s->sum);
	s->sum = NULL;
	tm_mpi_dense_free(s);
	tm_mpi_serve_free(s->serve);
	s->serve = NULL;
	free(s->spans);
	s->spans = NULL;
}
