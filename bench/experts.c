// SPDX-License-Identifier: MIT
/*
 * build/bench/experts: a MoE layer's decode step alone (gate and up of K
 * random experts of E in one matvec batch, SwiGLU, their down matrices in a
 * second), as forward.c's routed_one does it, over as many layers as fit in
 * --gb, against a read of as many bytes of the same mapping, token by token
 * (the in-process share of tiermem bench --decode, without the rest of the
 * model). Two ways taken in alternation, token by token, in the same
 * process, so the host's noise falls on both alike:
 *   two batches: gate and up in one hand-off, SwiGLU on the caller, downs in a second
 *   glu: tm_matvec_glu, all in one hand-off (what forward.c does)
 *
 *   experts [--gb G] [--embd N] [--ff N] [--experts E] [--used K]
 *           [--type T] [--down-type T] [--tokens N] [-t T]
 *
 * Defaults: the 4.2 GB Q4_K_M bench MoE (qwen3moe, 2048 x 768, 64 experts,
 * top 8, q4_K gate/up, q6_K down), 2 GB of layers, 200 tokens, 2 threads.
 * Heavy on memory bandwidth.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kern.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tiermem/bench.h"
#include "tiermem/generate.h"
#include "tiermem/mapping.h"

#define MAX_USED 32

struct layer_shape {
	int embd, ff, n_exp, used, type, down_type;
	size_t gate_rb, down_rb, mat_gate, mat_down, bytes;	/* a layer: gate, up, down tensors */
};

struct scratch {
	float *x, *hb, *hb2, *yg;
};

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One token through n_layers MoE layers at base: K distinct random experts each. */
static void token(struct tm_pool *pool, const struct layer_shape *sh, const char *base, int n_layers,
		  struct scratch *s, uint64_t *seed, int glu)
{
	struct tm_matvec jobs[2 * MAX_USED], down[MAX_USED];

	for (int l = 0; l < n_layers; l++) {
		const char *gate = base + l * sh->bytes, *up = gate + sh->n_exp * sh->mat_gate;
		const char *down_w = up + sh->n_exp * sh->mat_gate;
		int sel[MAX_USED];

		for (int j = 0; j < sh->used; j++) {
			int e, dup;

			do {
				e = (int)(next_rand(seed) % sh->n_exp);
				dup = 0;
				for (int i = 0; i < j; i++)
					dup |= sel[i] == e;
			} while (dup);
			sel[j] = e;
			jobs[2 * j] = (struct tm_matvec){ sh->type, gate + e * sh->mat_gate, sh->gate_rb, sh->ff,
							  sh->embd, s->x, s->hb + (size_t)j * sh->ff };
			jobs[2 * j + 1] = (struct tm_matvec){ sh->type, up + e * sh->mat_gate, sh->gate_rb, sh->ff,
							      sh->embd, s->x, s->hb2 + (size_t)j * sh->ff };
		}
		for (int j = 0; j < sh->used; j++)
			down[j] = (struct tm_matvec){ sh->down_type, down_w + sel[j] * sh->mat_down, sh->down_rb,
						      sh->embd, sh->ff, s->hb + (size_t)j * sh->ff,
						      s->yg + (size_t)j * sh->embd };
		if (glu) {
			tm_matvec_glu(pool, jobs, down, sh->used);
			continue;
		}
		tm_matvec_batch(pool, jobs, 2 * sh->used);
		tm_swiglu(s->hb, s->hb, s->hb2, sh->used * sh->ff);
		tm_matvec_batch(pool, down, sh->used);
	}
}

/* Fill n bytes at p with rows of type (cols each): a 64 MiB unit of random blocks, copied on. */
static void fill(char *p, size_t n, int type, int cols, uint64_t *seed)
{
	size_t rb = tm_row_bytes(type, cols), unit = ((size_t)64 << 20) / rb * rb;

	unit = unit < n / rb * rb ? unit : n / rb * rb;
	tm_fill_random(type, p, (int64_t)(unit / rb) * cols, seed, 0.05f);
	for (size_t off = unit; off + rb <= n; off += unit)
		memcpy(p + off, p, n - off < unit ? (n - off) / rb * rb : unit);
}

int main(int argc, char **argv)
{
	struct layer_shape sh = { .embd = 2048, .ff = 768, .n_exp = 64, .used = 8 };
	const char *type_s = "q4_K", *down_s = "q6_K";
	double gb = 2.0;
	int tokens = 200, nth = 2, n_layers, nv = 2;
	struct tm_mapping map;
	struct tm_pool *pool;
	struct scratch s;
	uint64_t seed = 1, rseed = 5;
	size_t tok_bytes, off = 0;
	double *ratio[2], *t_dec[2];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("usage: experts [--gb G] [--embd N] [--ff N] [--experts E] [--used K] [--type T] "
			       "[--down-type T] [--tokens N] [-t T]\n");
			return 0;
		}
		if (!v) {
			fprintf(stderr, "experts: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--gb")) gb = atof(v);
		else if (!strcmp(a, "--embd")) sh.embd = atoi(v);
		else if (!strcmp(a, "--ff")) sh.ff = atoi(v);
		else if (!strcmp(a, "--experts")) sh.n_exp = atoi(v);
		else if (!strcmp(a, "--used")) sh.used = atoi(v);
		else if (!strcmp(a, "--type")) type_s = v;
		else if (!strcmp(a, "--down-type")) down_s = v;
		else if (!strcmp(a, "--tokens")) tokens = atoi(v);
		else if (!strcmp(a, "-t")) nth = atoi(v);
		else {
			fprintf(stderr, "experts: unknown option %s\n", a);
			return 2;
		}
	}
	sh.type = tm_dtype_by_name(type_s);
	sh.down_type = tm_dtype_by_name(down_s);
	if (sh.type < 0 || sh.down_type < 0) {
		fprintf(stderr, "experts: unknown type %s\n", sh.type < 0 ? type_s : down_s);
		return 2;
	}
	if (sh.embd < 256 || sh.embd % 256 || sh.ff < 256 || sh.ff % 256 ||
	    sh.used < 1 || sh.used > MAX_USED || sh.n_exp < sh.used || sh.n_exp > 4096 || tokens < 1 ||
	    tokens > 100000 || nth < 1 || nth > 256 || !(gb > 0 && gb <= 64)) {
		fprintf(stderr, "experts: bad option value (sizes multiples of 256, 1 <= used <= %d and <= experts)\n",
			MAX_USED);
		return 2;
	}
	sh.gate_rb = tm_row_bytes(sh.type, sh.embd);
	sh.down_rb = tm_row_bytes(sh.down_type, sh.ff);
	sh.mat_gate = sh.gate_rb * sh.ff;
	sh.mat_down = sh.down_rb * sh.embd;
	sh.bytes = sh.n_exp * (2 * sh.mat_gate + sh.mat_down);
	n_layers = (int)(gb * 1e9 / sh.bytes);
	if (n_layers < 1) {
		fprintf(stderr, "experts: --gb %.2f holds no layer of %zu bytes\n", gb, sh.bytes);
		return 2;
	}
	tok_bytes = n_layers * sh.used * (2 * sh.mat_gate + sh.mat_down);
	if (tm_map_anon(&map, n_layers * sh.bytes, TM_PAGES_THP, TM_MAP_POPULATE)) {
		fprintf(stderr, "experts: cannot map %zu bytes\n", n_layers * sh.bytes);
		return 1;
	}
	pool = tm_pool_create(nth, TM_POOL_PIN);
	s.x = calloc(sh.embd, sizeof(float));
	s.hb = calloc((size_t)sh.used * sh.ff, sizeof(float));
	s.hb2 = calloc((size_t)sh.used * sh.ff, sizeof(float));
	s.yg = calloc((size_t)sh.used * sh.embd, sizeof(float));
	for (int v = 0; v < nv; v++) {
		ratio[v] = calloc(tokens, sizeof(double));
		t_dec[v] = calloc(tokens, sizeof(double));
	}
	if (!pool || !s.x || !s.hb || !s.hb2 || !s.yg || !ratio[0] || !t_dec[0] || !ratio[1] || !t_dec[1]) {
		fprintf(stderr, "experts: out of memory\n");
		return 1;
	}
	for (int l = 0; l < n_layers; l++) {
		char *p = (char *)map.addr + l * sh.bytes;

		fill(p, 2 * sh.n_exp * sh.mat_gate, sh.type, sh.embd, &seed);
		fill(p + 2 * sh.n_exp * sh.mat_gate, sh.n_exp * sh.mat_down, sh.down_type, sh.ff, &seed);
	}
	tm_fill_random(TM_F32, s.x, sh.embd, &seed, 1.f);
	printf("# %d layers of %d experts (%s %d x %d gate/up, %s down), top %d: %.1f MB per token, "
	       "%d threads, %s kernels, %d tokens per variant\n", n_layers, sh.n_exp, type_s, sh.ff, sh.embd,
	       down_s, sh.used, tok_bytes / 1e6, nth, tm_kernels_isa(), tokens);
	for (int i = -2; i < tokens; i++)
		for (int v = 0; v < nv; v++) {
			struct tm_range r[2];
			int nr = 0;
			size_t left = tok_bytes;
			double t0, td, tr;

			t0 = tm_now();
			token(pool, &sh, map.addr, n_layers, &s, &rseed, v);
			td = tm_now() - t0;
			/* as many bytes of the same mapping, a window that moves on */
			while (left) {
				size_t n = map.size - off < left ? map.size - off : left;

				r[nr++] = (struct tm_range){ (const char *)map.addr + off, n };
				left -= n;
				off = (off + n) % map.size;
			}
			tm_read_fastest(pool, r, nr, 8192, (i + 2) % TM_READ_LOOPS, &tr, NULL);
			if (i >= 0) {
				ratio[v][i] = tr / td;
				t_dec[v][i] = td;
			}
		}
	for (int v = 0; v < nv; v++) {
		double sh_med = tm_median(ratio[v], tokens), td = tm_median(t_dec[v], tokens);

		printf("%-11s share %5.1f %%  step %.3f ms  %.1f GB/s\n", v ? "glu" : "two batches", sh_med * 100,
		       td * 1e3, tok_bytes / td / 1e9);
	}
	tm_pool_destroy(pool);
	tm_unmap(&map);
	free(s.x);
	free(s.hb);
	free(s.hb2);
	free(s.yg);
	for (int v = 0; v < nv; v++) {
		free(ratio[v]);
		free(t_dec[v]);
	}
	return 0;
}
