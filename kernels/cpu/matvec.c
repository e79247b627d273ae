// SPDX-License-Identifier: MIT
/*
 * Matvec batches and matmul over the pool: one hand-off per call. Each call
 * first quantizes every distinct activation once (a matvec on the calling
 * thread before the hand-off; a matmul's many tokens shared among the threads,
 * which then meet at a spin barrier). Then the threads of a matvec batch take
 * runs of weight bytes from a shared cursor, large first and smaller towards
 * the end, so a vCPU the host slows down takes less instead of stalling the
 * others at the end of every hand-off. A MoE token's experts (gate, up,
 * SwiGLU, down: tm_matvec_glu) are one such batch whose down rows wait for
 * their pair's product, taken by the thread that ends the pair's rows.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "kern.h"
#include "kernels/ops.h"

/* Thread boundaries fall on multiples of this many rows, so no two threads write one line of y. */
#define ROW_ALIGN 16
/* ... and each call on an interleaved-row type starts at a whole group of its rows */
_Static_assert(ROW_ALIGN % TM_REPACK_ROWS == 0, "row ranges split on repacked groups");
/* The smallest run of weight bytes a thread takes from the cursor: a few us of streaming. */
#define MIN_CHUNK (64 << 10)
/* matmul: rows per tile are sized so a tile of weights stays in L2 while every token passes over it. */
#define TILE_BYTES (256 << 10)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

void tm_barrier_wait(atomic_int *arrived, int nth)
{
	if (nth == 1)
		return;
	atomic_fetch_add_explicit(arrived, 1, memory_order_acq_rel);
	for (int i = 0; atomic_load_explicit(arrived, memory_order_acquire) < nth; i++)
		if (i < 4096)
			cpu_relax();
		else
			sched_yield();
}

static tm_dot_fn dot_fn(const struct tm_kern *k, int type)
{
	return k->dot[type] ? k->dot[type] : tm_kern_scalar.dot[type];
}

static tm_quant_fn quant_fn(const struct tm_kern *k, int act)
{
	if (act == TM_Q8_0)
		return k->quant_q8_0 ? k->quant_q8_0 : tm_quant_q8_0_ref;
	if (act == TM_Q8_1)
		return tm_quant_q8_1_ref;	/* two types use it: no SIMD version */
	if (act == TM_ACT_Q8_KP)
		return k->quant_q8_Kp;
	return k->quant_q8_K ? k->quant_q8_K : tm_quant_q8_K_ref;
}

/* An activation as the kernels take it: the float x itself, or its blocks in buf. */
struct act {
	const float *x;
	int cols, type;
	size_t off;
};

struct batch {
	const struct tm_matvec *jobs;
	int njobs, nacts;
	const struct tm_kern *k;
	size_t *prefix;		/* weight bytes before job j; prefix[njobs] is the total */
	int *act_of;		/* job -> acts index */
	struct act *acts;
	char *buf;
	int quantized;		/* buf was filled before the hand-off */
	int nacts_first;	/* acts quantized before the rows run; the rest (glu's downs) by ready_pair */
	/* tm_matvec_glu: jobs [0, first) are gate/up pairs, then one down per pair */
	int first;
	atomic_int *left;	/* rows of pair p not yet run */
	atomic_int *ready;	/* pair p's product, and its down's activation, are written */
	_Alignas(64) atomic_int arrived;
	_Alignas(64) atomic_size_t next;	/* the weight-byte cursor */
};

/*
 * Scratch of the calling thread (job tables, quantized activations), kept
 * between calls so a matvec allocates nothing once the first token has run.
 */
static _Thread_local struct {
	char *p;
	size_t n;
} arena;

static void *arena_get(size_t n)
{
	n = (n + 63) & ~(size_t)63;
	if (n > arena.n) {
		char *p = aligned_alloc(64, n);

		if (!p)
			return NULL;
		free(arena.p);
		arena.p = p;
		arena.n = n;
	}
	return arena.p;
}

static const void *act_ptr(const struct batch *b, int j)
{
	const struct act *a = &b->acts[b->act_of[j]];

	return a->type == TM_F32 ? (const void *)a->x : b->buf + a->off;
}

/* The first (job, row) at or after byte offset pos, rows rounded up to ROW_ALIGN. */
static void locate(const struct batch *b, size_t pos, int *job, int *row)
{
	int j = 0;

	while (j < b->njobs && b->prefix[j + 1] <= pos)
		j++;
	if (j == b->njobs) {
		*job = j;
		*row = 0;
		return;
	}
	size_t rb = tm_row_bytes(b->jobs[j].type, b->jobs[j].cols);
	size_t r = (pos - b->prefix[j] + rb - 1) / rb;

	r = (r + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
	if (r >= (size_t)b->jobs[j].rows) {
		*job = j + 1;
		*row = 0;
	} else {
		*job = j;
		*row = (int)r;
	}
}

static void quantize_share(const struct act *acts, int nacts, char *buf,
			   const struct tm_kern *k, int ith, int nth)
{
	for (int a = 0; a < nacts; a++) {
		const struct tm_dtype_traits *t;
		long lo, hi;

		if (acts[a].type == TM_F32)
			continue;
		t = tm_dtype_traits(tm_act_base(acts[a].type));
		tm_split(acts[a].cols / t->block_elems, 1, ith, nth, &lo, &hi);
		if (hi > lo)
			quant_fn(k, acts[a].type)(acts[a].x + lo * t->block_elems,
						  buf + acts[a].off + lo * t->block_bytes,
						  (hi - lo) * t->block_elems);
	}
}

/*
 * Measured (bench/matvec --overhead, 2 threads, rows of 4096 and 14336):
 * quantizing on the caller before the hand-off cost 2.5 and 6.8 us per call,
 * sharing it behind the barrier 3.9 and 8.8 us, on a busy host where the
 * barrier waits for a late thread. Re-measure on a quiet one.
 */
static _Atomic int serial_quant = 1;

void tm_matvec_serial_quant(int on)
{
	atomic_store(&serial_quant, on);
}

/* The next run [*lo, *hi) of weight bytes: a share of what is left, at least MIN_CHUNK. */
static int claim(struct batch *b, int nth, size_t *lo, size_t *hi)
{
	size_t total = b->prefix[b->njobs], pos, size;

	pos = atomic_load_explicit(&b->next, memory_order_relaxed);
	do {
		if (pos >= total)
			return 0;
		size = (total - pos) / (2 * (size_t)nth);
		if (size < MIN_CHUNK)
			size = MIN_CHUNK;
	} while (!atomic_compare_exchange_weak_explicit(&b->next, &pos, pos + size, memory_order_relaxed,
							memory_order_relaxed));
	*lo = pos;
	*hi = total - pos < size ? total : pos + size;
	return 1;
}

/*
 * A thread's walk over its rows: the runs it claims, cut into segments (one
 * job's rows within a run). Before the last rows of a segment it prefetches
 * the first bytes of the next one, in the same run or a newly claimed one:
 * the kernels prefetch ahead of the rows they read, so without this every
 * matrix (the experts of a MoE layer are 24 small matrices at scattered
 * addresses) and every claim would start its stream cold.
 */
struct walk {
	struct batch *b;
	int nth, j, r, j1, r1;	/* the segments left of the current run: (j, r) up to (j1, r1) */
	int single;		/* nth == 1: the one run [0, total) is taken without the cursor */
};

struct seg {
	int job, lo, hi;
};

/* Bytes prefetched at the start of the next segment: what the kernels read before their own prefetch reaches. */
#define LEAD_BYTES TM_PREFETCH_L2_AHEAD

static void walk_run(struct walk *w, size_t from, size_t to)
{
	locate(w->b, from, &w->j, &w->r);
	locate(w->b, to, &w->j1, &w->r1);
}

/* The next segment with rows, claiming a new run when this one is done; 0 when none is left. */
static int walk_next(struct walk *w, struct seg *s)
{
	const struct batch *b = w->b;
	size_t lo, hi;

	for (;;) {
		for (; w->j <= w->j1 && w->j < b->njobs; w->j++, w->r = 0) {
			int hi_row = w->j == w->j1 ? w->r1 : b->jobs[w->j].rows;

			/* empty, or refused by job_ok */
			if (b->prefix[w->j + 1] == b->prefix[w->j] || hi_row <= w->r)
				continue;
			*s = (struct seg){ w->j, w->r, hi_row };
			w->j++;
			w->r = 0;
			return 1;
		}
		if (w->single || !claim(w->b, w->nth, &lo, &hi))
			return 0;
		walk_run(w, lo, hi);
	}
}

static void prefetch_seg(const struct batch *b, const struct seg *s)
{
	const struct tm_matvec *m = &b->jobs[s->job];
	const char *p = (const char *)m->w + (size_t)s->lo * m->row_stride;
	size_t n = (size_t)(s->hi - s->lo) * m->row_stride;

	n = n < LEAD_BYTES ? n : LEAD_BYTES;
	for (size_t o = 0; o < n; o += 64)
		__builtin_prefetch(p + o, 0, 2);
}

/* glu: pair p's gate and up rows are all written: its product, its down's activation, then the flag. */
static void ready_pair(const struct batch *b, int p)
{
	const struct tm_matvec *g = &b->jobs[2 * p], *u = &b->jobs[2 * p + 1];
	int d = b->first + p;

	tm_swiglu(g->y, g->y, u->y, g->rows);
	if (b->prefix[d + 1] != b->prefix[d])
		quantize_share(&b->acts[b->act_of[d]], 1, b->buf, b->k, 0, 1);
	atomic_store_explicit(&b->ready[p], 1, memory_order_release);
}

static void wait_ready(const atomic_int *r)
{
	for (int i = 0; !atomic_load_explicit(r, memory_order_acquire); i++)
		if (i < 4096)
			cpu_relax();
		else
			sched_yield();
}

static void run_rows(const struct batch *b, const struct seg *s, int lo, int hi)
{
	const struct tm_matvec *m = &b->jobs[s->job];
	int nb = m->cols / tm_dtype_traits(m->type)->block_elems;

	if (hi <= lo)
		return;
	dot_fn(b->k, m->type)((const char *)m->w + lo * m->row_stride, m->row_stride,
			      hi - lo, nb, act_ptr(b, s->job), 0, 1, m->y + lo, 0);
	/* the last rows of a pair: this thread takes its product (acq_rel: it sees the other rows' y) */
	if (s->job < b->first &&
	    atomic_fetch_sub_explicit(&b->left[s->job / 2], hi - lo, memory_order_acq_rel) == hi - lo)
		ready_pair(b, s->job / 2);
}

static void walk_all(struct walk *w)
{
	const struct batch *b = w->b;
	struct seg cur, next;
	int more = walk_next(w, &cur);

	while (more) {
		const struct tm_matvec *m = &b->jobs[cur.job];
		/* the last rows, from a multiple of ROW_ALIGN (a repacked group starts there), that cover LEAD_BYTES */
		int tail = (int)((LEAD_BYTES + m->row_stride - 1) / m->row_stride);
		int cut;

		if (b->ready && cur.job >= b->first)
			wait_ready(&b->ready[cur.job - b->first]);
		cut = (cur.hi - tail) / ROW_ALIGN * ROW_ALIGN;
		cut = cut > cur.lo ? cut : cur.lo;
		run_rows(b, &cur, cur.lo, cut);
		more = walk_next(w, &next);
		if (more)
			prefetch_seg(b, &next);
		run_rows(b, &cur, cut, cur.hi);
		cur = next;
	}
}

static void batch_run(void *arg, int ith, int nth)
{
	struct batch *b = arg;
	struct walk w = { .b = b, .nth = nth, .single = nth == 1 };

	if (b->buf && !b->quantized) {
		quantize_share(b->acts, b->nacts_first, b->buf, b->k, ith, nth);
		tm_barrier_wait(&b->arrived, nth);
	}
	if (w.single)
		walk_run(&w, 0, b->prefix[b->njobs]);
	else
		w.j = w.j1 = b->njobs;	/* nothing yet: the first walk_next claims */
	walk_all(&w);
}

/* NaN rows for a shape or type no kernel takes: callers check types first; never silently zero. */
static int shape_ok(int type, int rows, int cols, float *y, size_t ystride, int n)
{
	const struct tm_dtype_traits *t = tm_dtype_traits(type);

	if (t && !tm_dtype_act_only(type) && cols > 0 && cols % t->block_elems == 0)
		return 1;
	for (int i = 0; i < n; i++)
		for (int r = 0; r < rows; r++)
			y[i * ystride + r] = __builtin_nanf("");
	return 0;
}

static int job_ok(const struct tm_matvec *m)
{
	return m->rows <= 0 || shape_ok(m->type, m->rows, m->cols, m->y, 0, 1);
}

/* Out of memory for the scratch: every row NaN, as for a job no kernel takes. */
static void fail_all(const struct tm_matvec *jobs, int njobs)
{
	for (int j = 0; j < njobs; j++)
		for (int r = 0; r < jobs[j].rows; r++)
			jobs[j].y[r] = __builtin_nanf("");
}

/*
 * The tables of a batch of jobs then more (tm_matvec_glu's downs, NULL
 * otherwise: nmore 0) in the calling thread's arena, with `extra` bytes
 * before them for the caller. Jobs share an activation where x, cols and
 * type agree, except the more's: each has its own, quantized later.
 */
static char *batch_init(struct batch *b, const struct tm_matvec *jobs, int njobs,
			const struct tm_matvec *more, int nmore, size_t extra)
{
	int n = njobs + nmore;
	size_t need = 0, meta, bound = 0;
	char *mem;

	extra = (extra + 63) & ~(size_t)63;
	meta = (n + 1) * sizeof(size_t) + n * (sizeof(int) + sizeof(struct act));
	meta = (meta + 63) & ~(size_t)63;
	for (int j = 0; j < n; j++) {
		const struct tm_matvec *m = j < njobs ? &jobs[j] : &more[j - njobs];

		if (m->cols > 0)
			bound += tm_row_bytes(TM_Q8_K, (m->cols + QK_K - 1) / QK_K * QK_K) + 64;
	}
	mem = arena_get(extra + meta + bound);
	if (!mem)
		return NULL;
	b->njobs = n;
	b->k = tm_kern();
	b->prefix = (size_t *)(mem + extra);
	b->acts = (struct act *)(b->prefix + n + 1);
	b->act_of = (int *)(b->acts + n);
	b->prefix[0] = 0;
	for (int j = 0; j < n; j++) {
		const struct tm_matvec *m = j < njobs ? &jobs[j] : &more[j - njobs];
		int act = tm_act_type_k(b->k, m->type), a;

		if (j == njobs)
			b->nacts_first = b->nacts;
		b->prefix[j + 1] = b->prefix[j];
		b->act_of[j] = 0;
		if (!job_ok(m))
			continue;
		b->prefix[j + 1] += (size_t)m->rows * tm_row_bytes(m->type, m->cols);
		for (a = j < njobs ? 0 : b->nacts; a < b->nacts; a++)
			if (b->acts[a].x == m->x && b->acts[a].cols == m->cols && b->acts[a].type == act)
				break;
		if (a == b->nacts) {
			b->acts[a] = (struct act){ .x = m->x, .cols = m->cols, .type = act, .off = need };
			if (act != TM_F32)
				need += (tm_row_bytes(tm_act_base(act), m->cols) + 63) & ~(size_t)63;
			b->nacts++;
		}
		b->act_of[j] = a;
	}
	if (!nmore)
		b->nacts_first = b->nacts;
	if (need)
		b->buf = mem + extra + meta;
	return mem;
}

static void batch_start(struct tm_pool *pool, struct batch *b)
{
	if (b->buf && (atomic_load_explicit(&serial_quant, memory_order_relaxed) || tm_pool_threads(pool) == 1)) {
		quantize_share(b->acts, b->nacts_first, b->buf, b->k, 0, 1);
		b->quantized = 1;
	}
	tm_pool_run(pool, batch_run, b);
}

void tm_matvec_batch(struct tm_pool *pool, const struct tm_matvec *jobs, int njobs)
{
	struct batch b = { .jobs = jobs, .first = 0 };

	if (njobs <= 0)
		return;
	if (!batch_init(&b, jobs, njobs, NULL, 0, 0)) {
		fail_all(jobs, njobs);
		return;
	}
	batch_start(pool, &b);
}

void tm_matvec(struct tm_pool *pool, const struct tm_matvec *job)
{
	tm_matvec_batch(pool, job, 1);
}

void tm_matvec_glu(struct tm_pool *pool, const struct tm_matvec *gate_up, const struct tm_matvec *down, int n)
{
	struct batch b = { .first = 2 * n };
	size_t jobs_bytes = (size_t)3 * n * sizeof(struct tm_matvec);
	struct tm_matvec *jobs;
	char *mem;
	int bad = 0;

	if (n <= 0)
		return;
	for (int p = 0; p < n; p++)
		bad |= gate_up[2 * p].rows != gate_up[2 * p + 1].rows || gate_up[2 * p].rows != down[p].cols ||
		       down[p].x != gate_up[2 * p].y;
	mem = bad ? NULL : batch_init(&b, gate_up, 2 * n, down, n, jobs_bytes + 2 * n * sizeof(atomic_int));
	if (!mem) {
		fail_all(gate_up, 2 * n);
		fail_all(down, n);
		return;
	}
	/* one array of jobs for the walk: the pairs, then the downs */
	jobs = (struct tm_matvec *)mem;
	memcpy(jobs, gate_up, 2 * n * sizeof(*jobs));
	memcpy(jobs + 2 * n, down, n * sizeof(*jobs));
	b.jobs = jobs;
	b.left = (atomic_int *)(jobs + 3 * n);
	b.ready = b.left + n;
	for (int p = 0; p < n; p++) {
		size_t rows = 0;

		for (int j = 2 * p; j < 2 * p + 2; j++)
			rows += b.prefix[j + 1] != b.prefix[j] ? (size_t)jobs[j].rows : 0;
		atomic_init(&b.left[p], (int)rows);
		atomic_init(&b.ready[p], 0);
	}
	/* a pair with no rows to run (refused jobs: NaN rows) is ready now */
	for (int p = 0; p < n; p++)
		if (!atomic_load_explicit(&b.left[p], memory_order_relaxed))
			ready_pair(&b, p);
	batch_start(pool, &b);
}

struct mm {
	const struct tm_kern *k;
	int type, act, rows, cols, n;
	const void *w;
	size_t row_stride, xrow;	/* xrow: bytes of one token's activation */
	const float *X;
	float *Y;
	size_t ystride;
	char *xq;
	_Alignas(64) atomic_int arrived;
};

static void matmul_run(void *arg, int ith, int nth)
{
	struct mm *m = arg;
	const struct tm_dtype_traits *t = tm_dtype_traits(m->type);
	int nb = m->cols / t->block_elems;
	tm_dot_fn dot = dot_fn(m->k, m->type);
	const char *x = m->xq ? m->xq : (const char *)m->X;
	long lo, hi, tile;

	if (m->xq) {
		const struct tm_dtype_traits *at = tm_dtype_traits(tm_act_base(m->act));
		long ablocks = (long)m->n * (m->cols / at->block_elems), qlo, qhi;

		/* X and xq are both dense, so the tokens' blocks form one run */
		tm_split(ablocks, 1, ith, nth, &qlo, &qhi);
		if (qhi > qlo)
			quant_fn(m->k, m->act)(m->X + qlo * at->block_elems,
					       m->xq + qlo * at->block_bytes,
					       (qhi - qlo) * at->block_elems);
		tm_barrier_wait(&m->arrived, nth);
	}
	tm_split(m->rows, ROW_ALIGN, ith, nth, &lo, &hi);
	tile = TILE_BYTES / (long)m->row_stride;
	tile = tile < ROW_ALIGN ? ROW_ALIGN : tile / ROW_ALIGN * ROW_ALIGN;
	for (long r0 = lo; r0 < hi; r0 += tile) {
		int nr = (int)(hi - r0 < tile ? hi - r0 : tile);

		for (int t0 = 0; t0 < m->n; t0 += TM_NX_MAX) {
			int nx = m->n - t0 < TM_NX_MAX ? m->n - t0 : TM_NX_MAX;

			dot((const char *)m->w + r0 * m->row_stride, m->row_stride, nr, nb,
			    x + t0 * m->xrow, m->xrow, nx, m->Y + (size_t)t0 * m->ystride + r0, m->ystride);
		}
	}
}

/*
 * exact: n matvecs bit for bit. The whole-batch kernel takes an
 * interleaved-row matrix's whole groups (its last rows % 16, in the GGUF
 * layout, go to the dot kernels); where it is exact there (exact_r16: AMX),
 * exact calls take it too.
 */
static void matmul(struct tm_pool *pool, int type, const void *w, size_t row_stride,
		   int rows, int cols, const float *X, int n, float *Y, int exact)
{
	struct mm m = {
		.k = tm_kern(), .type = type, .rows = rows,
		.cols = cols, .n = n, .w = w, .row_stride = row_stride, .X = X, .Y = Y, .ystride = rows,
	};
	int grouped = tm_repack_base(type) != type;

	if (n <= 0 || rows <= 0 || !shape_ok(type, rows, cols, Y, rows, n))
		return;
	grouped = grouped && m.k->gemm && m.k->gemm->exact_r16;
	if ((!exact || grouped) && m.k->gemm && m.k->gemm->takes(type, n)) {
		int whole = grouped ? rows / TM_REPACK_ROWS * TM_REPACK_ROWS : rows;
		void *s = whole ? arena_get(m.k->gemm->scratch(type, cols, n, tm_pool_threads(pool))) : NULL;

		if (s) {
			m.k->gemm->run(pool, m.k, type, w, row_stride, whole, cols, X, n, Y, rows, s);
			if (whole == rows)
				return;
			/* the tail: its own pass of the dot kernels over the last rows */
			m.rows = rows - whole;
			m.w = (const char *)w + (size_t)whole * row_stride;
			m.Y = Y + whole;
		}
	}
	m.act = tm_act_type_k(m.k, type);
	m.xrow = tm_row_bytes(tm_act_base(m.act), cols);
	if (m.act != TM_F32 && !(m.xq = arena_get(m.xrow * n))) {
		for (int i = 0; i < n; i++)
			for (int r = 0; r < m.rows; r++)
				m.Y[(size_t)i * rows + r] = __builtin_nanf("");
		return;
	}
	tm_pool_run(pool, matmul_run, &m);
}

void tm_matmul(struct tm_pool *pool, int type, const void *w, size_t row_stride,
	       int rows, int cols, const float *X, int n, float *Y)
{
	matmul(pool, type, w, row_stride, rows, cols, X, n, Y, 0);
}

void tm_matmul_exact(struct tm_pool *pool, int type, const void *w, size_t row_stride,
		     int rows, int cols, const float *X, int n, float *Y)
{
	matmul(pool, type, w, row_stride, rows, cols, X, n, Y, 1);
}
