// SPDX-License-Identifier: MIT
/*
 * build/bench/attn: decode attention alone, as the share of the read ceiling
 * it reaches over the KV cache it reads. One step is one query token
 * attending over P positions in each of L layers (tm_attention per layer,
 * as forward.c calls it); after each step the same threads read the same
 * cache rows (tm_read_fastest: the fastest of three read loops), and the
 * median over steps of read time / attention time is the figure, as in
 * tiermem bench --decode, and the same ratio of the process's CPU time (on a
 * loaded host, where threads wait for a CPU at every hand-off, the only one
 * that means something at -t 1).
 *
 *   attn [--layers L] [--heads H] [--kv-heads G] [--head-dim D] [--ctx P]
 *        [--type f16|f32|q8_0] [-t T] [--steps N] [--pages thp|4k] [--layout heads|rows]
 *
 * Defaults: the q8_0 dense benchmark model's shape (14 layers, 32 heads,
 * 8 KV heads of 64) at 2048 positions, f16, 2 threads, 32 steps, the cache
 * on 2 MiB pages as a context allocates it (--pages 4k: as malloc would),
 * head-major as a context keeps it (--layout rows: every KV head's values
 * side by side in a position's row, the layout before 2026-12-02's, to see
 * what reading a slice of each row per head costs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tiermem/bench.h"
#include "tiermem/mapping.h"
#include "tiermem/model.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static long arg_long(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end || v < lo || v > hi) {
		fprintf(stderr, "attn: %s: '%s' is not in [%ld, %ld]\n", opt, s, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	long L = 14, H = 32, G = 8, D = 64, P = 2048, T = 2, N = 32;
	int type = TM_F16;
	enum tm_pages pages = TM_PAGES_THP;
	int heads = 1;
	struct tm_mapping km, vm;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v) {
			fprintf(stderr, "usage: attn [--layers L] [--heads H] [--kv-heads G] [--head-dim D] "
				"[--ctx P] [--type f16|f32|q8_0] [-t T] [--steps N] [--pages thp|4k] "
				"[--layout heads|rows]\n");
			return 2;
		}
		i++;
		if (!strcmp(o, "--layers"))
			L = arg_long(o, v, 1, 1024);
		else if (!strcmp(o, "--heads"))
			H = arg_long(o, v, 1, 1024);
		else if (!strcmp(o, "--kv-heads"))
			G = arg_long(o, v, 1, 1024);
		else if (!strcmp(o, "--head-dim"))
			D = arg_long(o, v, 1, 1024);
		else if (!strcmp(o, "--ctx"))
			P = arg_long(o, v, 1, 1 << 20);
		else if (!strcmp(o, "-t"))
			T = arg_long(o, v, 1, 256);
		else if (!strcmp(o, "--pages")) {
			if (strcmp(v, "thp") && strcmp(v, "4k")) {
				fprintf(stderr, "attn: --pages: '%s' is not thp or 4k\n", v);
				return 2;
			}
			pages = !strcmp(v, "thp") ? TM_PAGES_THP : TM_PAGES_4K;
		} else if (!strcmp(o, "--layout")) {
			if (strcmp(v, "heads") && strcmp(v, "rows")) {
				fprintf(stderr, "attn: --layout: '%s' is not heads or rows\n", v);
				return 2;
			}
			heads = !strcmp(v, "heads");
		} else if (!strcmp(o, "--steps"))
			N = arg_long(o, v, 1, 100000);
		else if (!strcmp(o, "--type")) {
			if ((type = tm_kv_type_parse(v)) < 0) {
				fprintf(stderr, "attn: --type: '%s' is not a KV cache type\n", v);
				return 2;
			}
		} else {
			fprintf(stderr, "attn: unknown option '%s'\n", o);
			return 2;
		}
	}
	if (H % G) {
		fprintf(stderr, "attn: %ld heads do not share %ld KV heads evenly\n", H, G);
		return 2;
	}

	size_t row = tm_kv_row_bytes(type, (int)(G * D)), part = tm_kv_row_bytes(type, (int)D), layer = row * P;
	struct tm_pool *pool = tm_pool_create((int)T, TM_POOL_PIN);
	char *k = tm_map_anon(&km, layer * L, pages, 0) ? NULL : km.addr;
	char *v = tm_map_anon(&vm, layer * L, pages, 0) ? NULL : vm.addr;
	float *q = malloc(sizeof(float) * H * D), *out = malloc(sizeof(float) * H * D);
	float *scratch = malloc(tm_attention_scratch_floats((int)T, (int)H, (int)G, (int)D, 0, (int)P, type) * sizeof(float));
	struct tm_range *r = malloc(sizeof(*r) * 2 * L);
	double *ratio = malloc(sizeof(double) * N), *ta = malloc(sizeof(double) * N);
	double *cratio = malloc(sizeof(double) * N), *ca = malloc(sizeof(double) * N);
	uint64_t seed = 7;

	if (!pool || !k || !v || !q || !out || !scratch || !r || !ratio || !ta || !cratio || !ca) {
		fprintf(stderr, "attn: out of memory\n");
		return 1;
	}
	tm_fill_random(type, k, (int64_t)L * P * G * D, &seed, 1.0f);
	tm_fill_random(type, v, (int64_t)L * P * G * D, &seed, 1.0f);
	tm_fill_random(TM_F32, q, H * D, &seed, 1.0f);
	for (long l = 0; l < L; l++) {
		r[2 * l] = (struct tm_range){ k + l * layer, layer };
		r[2 * l + 1] = (struct tm_range){ v + l * layer, layer };
	}
	for (long s = -2; s < N; s++) {
		double c0 = tm_cpu_now(), t0 = now_s(), t1, c1, tr, cr;

		for (long l = 0; l < L; l++)
			tm_attention(pool, &(struct tm_attn){
				.n_tok = 1, .pos0 = (int)P - 1,
				.n_head = (int)H, .n_head_kv = (int)G, .head_dim = (int)D,
				.scale = 0.125f, .q = q, .q_stride = H * D,
				.type_k = type, .type_v = type,
				.k = k + l * layer, .v = v + l * layer,
				.k_row_bytes = heads ? part : row, .v_row_bytes = heads ? part : row,
				.k_head_bytes = heads ? part * P : 0, .v_head_bytes = heads ? part * P : 0,
				.out = out, .out_stride = H * D,
				.scratch = scratch, .n_ctx = (int)P,
			});
		t1 = now_s();
		c1 = tm_cpu_now();
		tm_read_fastest(pool, r, (int)(2 * L), 8192, (int)(s + 2) % TM_READ_LOOPS, &tr, &cr);
		if (s >= 0) {
			ratio[s] = tr / (t1 - t0);
			cratio[s] = cr / (c1 - c0);
			ca[s] = c1 - c0;
			ta[s] = t1 - t0;
		}
	}
	qsort(ratio, N, sizeof(double), cmp_d);
	qsort(ta, N, sizeof(double), cmp_d);
	qsort(cratio, N, sizeof(double), cmp_d);
	qsort(ca, N, sizeof(double), cmp_d);
	printf("attn: %ld layers, %ld heads / %ld KV heads of %ld, %ld positions, %s, %s, %ld threads, %s\n",
	       L, H, G, D, P, tm_dtype_traits(type)->name,
	       heads ? "head-major" : "heads side by side", T, tm_kernels_isa());
	printf("share of the read ceiling %.1f%% (q1 %.1f%%, q3 %.1f%%; of CPU time %.1f%%), %.1f us per layer "
	       "(CPU %.1f), %.1f GB/s of KV\n", ratio[N / 2] * 100, ratio[N / 4] * 100, ratio[3 * N / 4] * 100,
	       cratio[N / 2] * 100, ta[N / 2] / L * 1e6, ca[N / 2] / L * 1e6,
	       2.0 * layer * L / ta[N / 2] / 1e9);
	tm_pool_destroy(pool);
	tm_unmap(&km);
	tm_unmap(&vm);
	free(q);
	free(out);
	free(scratch);
	free(r);
	free(ratio);
	free(ta);
	free(cratio);
	free(ca);
	return 0;
}
