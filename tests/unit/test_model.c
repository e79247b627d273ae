// SPDX-License-Identifier: MIT
/*
 * tm_model and tm_forward on tiny GGUF files written here: every architecture
 * loads with the right hyperparameters; decode (batches of one) and prefill
 * (batches of several) agree, so do one and several threads; weight-byte
 * accounting counts what a token reads; bad files and bad calls are refused
 * with a message. (Agreement with llama.cpp is tests/suites/40-peer-logits.sh.)
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tiermem/error.h"
#include "tiermem/generate.h"
#include "tiermem/gguf_write.h"
#include "tiermem/model.h"
#include "tap.h"

enum { VOCAB = 96, EMBD = 32, HEADS = 4, KV_HEADS = 2, LAYERS = 2, FF = 48, CTX = 64 };
/* deepseek2's MLA: latent rank, RoPE and no-RoPE parts of a key, value length */
enum { MLA_R = 16, MLA_ROPE = 8, MLA_NOPE = 8, MLA_V = 8 };
enum { MLA_NONE, MLA_SPLIT, MLA_LEGACY };

struct spec {
	const char *arch;
	int n_expert, n_used;
	int head_dim;		/* 0: EMBD / HEADS */
	int type;		/* of the matrices */
	int mla;		/* deepseek2: MLA_SPLIT (attn_k_b, attn_v_b) or MLA_LEGACY (attn_kv_b) */
	bool tied;
	const char *skip;	/* a tensor to leave out */
	const char *extra;	/* an extra (unsupported) tensor */
	const char *bad_shape;	/* a tensor written one row short */
};

struct tensor {
	char name[64];
	int n_dims;
	int64_t ne[3];
	int type;
	float scale, offset;
};

static uint64_t rng;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static int add(struct tensor *t, int n, const struct spec *s, int type, float scale, float offset,
	       int64_t ne0, int64_t ne1, int64_t ne2, const char *fmt, int layer)
{
	struct tensor *x = &t[n];

	snprintf(x->name, sizeof(x->name), fmt, layer);
	if (s->skip && !strcmp(s->skip, x->name))
		return n;
	x->ne[0] = ne0;
	x->ne[1] = ne1 - (s->bad_shape && !strcmp(s->bad_shape, x->name));
	x->ne[2] = ne2;
	x->n_dims = ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1;
	x->type = type;
	x->scale = scale;
	x->offset = offset;
	return n + 1;
}

/* deepseek2's attention tensors for layer l (model.c's bind_mla). */
static int add_mla(struct tensor *t, int n, const struct spec *s, int l)
{
	int ty = s->type;
	float ws = 1.0f / sqrtf(EMBD);

	n = add(t, n, s, ty, 4 * ws, 0, EMBD, HEADS * (MLA_NOPE + MLA_ROPE), 1, "blk.%d.attn_q.weight", l);
	n = add(t, n, s, ty, 4 * ws, 0, EMBD, MLA_R + MLA_ROPE, 1, "blk.%d.attn_kv_a_mqa.weight", l);
	n = add(t, n, s, TM_F32, 0.1f, 1.0f, MLA_R, 1, 1, "blk.%d.attn_kv_a_norm.weight", l);
	if (s->mla == MLA_SPLIT) {
		n = add(t, n, s, ty, 1.0f, 0, MLA_NOPE, MLA_R, HEADS, "blk.%d.attn_k_b.weight", l);
		n = add(t, n, s, ty, 1.0f / sqrtf(MLA_R), 0, MLA_R, MLA_V, HEADS, "blk.%d.attn_v_b.weight", l);
	} else {
		n = add(t, n, s, ty, 1.0f / sqrtf(MLA_R), 0, MLA_R, HEADS * (MLA_NOPE + MLA_V), 1,
			"blk.%d.attn_kv_b.weight", l);
	}
	return add(t, n, s, ty, 1.0f / sqrtf(HEADS * MLA_V), 0, HEADS * MLA_V, EMBD, 1,
		   "blk.%d.attn_output.weight", l);
}

static int write_model(const char *path, const struct spec *s)
{
	static struct tensor t[256];
	struct tm_gguf_writer *w;
	char key[128];
	int hd = s->head_dim ? s->head_dim : EMBD / HEADS;
	int qd = HEADS * hd, kvd = KV_HEADS * hd, n = 0, err;
	bool qwen = !strncmp(s->arch, "qwen3", 5), moe = s->n_expert > 0;
	int ty = s->type;
	float ws = 1.0f / sqrtf(EMBD);

	rng = 0x243f6a8885a308d3ull;
	n = add(t, n, s, ty, 1.0f, 0, EMBD, VOCAB, 1, "token_embd.weight", 0);
	n = add(t, n, s, TM_F32, 0.1f, 1.0f, EMBD, 1, 1, "output_norm.weight", 0);
	if (!s->tied)
		n = add(t, n, s, ty, ws, 0, EMBD, VOCAB, 1, "output.weight", 0);
	for (int l = 0; l < LAYERS; l++) {
		n = add(t, n, s, TM_F32, 0.1f, 1.0f, EMBD, 1, 1, "blk.%d.attn_norm.weight", l);
		if (s->mla) {
			n = add_mla(t, n, s, l);
			goto ffn;
		}
		/* large q and k weights: peaked attention, so positions matter */
		n = add(t, n, s, ty, 4 * ws, 0, EMBD, qd, 1, "blk.%d.attn_q.weight", l);
		n = add(t, n, s, ty, 4 * ws, 0, EMBD, kvd, 1, "blk.%d.attn_k.weight", l);
		n = add(t, n, s, ty, ws, 0, EMBD, kvd, 1, "blk.%d.attn_v.weight", l);
		n = add(t, n, s, ty, 1.0f / sqrtf(qd), 0, qd, EMBD, 1, "blk.%d.attn_output.weight", l);
		if (qwen) {
			n = add(t, n, s, TM_F32, 0.3f, 1.0f, hd, 1, 1, "blk.%d.attn_q_norm.weight", l);
			n = add(t, n, s, TM_F32, 0.3f, 1.0f, hd, 1, 1, "blk.%d.attn_k_norm.weight", l);
		}
ffn:
		n = add(t, n, s, TM_F32, 0.1f, 1.0f, EMBD, 1, 1, "blk.%d.ffn_norm.weight", l);
		if (!moe) {
			n = add(t, n, s, ty, ws, 0, EMBD, FF, 1, "blk.%d.ffn_gate.weight", l);
			n = add(t, n, s, ty, ws, 0, EMBD, FF, 1, "blk.%d.ffn_up.weight", l);
			n = add(t, n, s, ty, 1.0f / sqrtf(FF), 0, FF, EMBD, 1, "blk.%d.ffn_down.weight", l);
		} else {
			n = add(t, n, s, TM_F32, 3 * ws, 0, EMBD, s->n_expert, 1, "blk.%d.ffn_gate_inp.weight", l);
			n = add(t, n, s, ty, ws, 0, EMBD, FF, s->n_expert, "blk.%d.ffn_gate_exps.weight", l);
			n = add(t, n, s, ty, ws, 0, EMBD, FF, s->n_expert, "blk.%d.ffn_up_exps.weight", l);
			n = add(t, n, s, ty, 1.0f / sqrtf(FF), 0, FF, EMBD, s->n_expert,
				"blk.%d.ffn_down_exps.weight", l);
		}
	}
	if (s->extra)
		n = add(t, n, s, TM_F32, 0.1f, 0, EMBD, 1, 1, s->extra, 0);

	if ((err = tm_gguf_writer_new(&w, 0)))
		return err;
	tm_gguf_writer_set_str(w, "general.architecture", s->arch);
#define KEY(k) (snprintf(key, sizeof(key), "%s." k, s->arch), key)
	tm_gguf_writer_set_u32(w, KEY("context_length"), CTX);
	tm_gguf_writer_set_u32(w, KEY("embedding_length"), EMBD);
	tm_gguf_writer_set_u32(w, KEY("block_count"), LAYERS);
	tm_gguf_writer_set_u32(w, KEY("feed_forward_length"), FF);
	tm_gguf_writer_set_u32(w, KEY("attention.head_count"), HEADS);
	/* MLA: one latent KV head (split) or one per head (legacy) */
	tm_gguf_writer_set_u32(w, KEY("attention.head_count_kv"),
			       !s->mla ? KV_HEADS : s->mla == MLA_SPLIT ? 1 : HEADS);
	if (s->head_dim) {
		tm_gguf_writer_set_u32(w, KEY("attention.key_length"), hd);
		tm_gguf_writer_set_u32(w, KEY("attention.value_length"), hd);
	}
	if (s->mla) {
		/* llama.cpp's converter: the split layout's key/value length is the latent cache row */
		bool split = s->mla == MLA_SPLIT;

		tm_gguf_writer_set_u32(w, KEY("attention.kv_lora_rank"), MLA_R);
		tm_gguf_writer_set_u32(w, KEY("rope.dimension_count"), MLA_ROPE);
		tm_gguf_writer_set_u32(w, KEY("attention.key_length"), split ? MLA_R + MLA_ROPE : MLA_NOPE + MLA_ROPE);
		tm_gguf_writer_set_u32(w, KEY("attention.value_length"), split ? MLA_R : MLA_V);
		if (split) {
			tm_gguf_writer_set_u32(w, KEY("attention.key_length_mla"), MLA_NOPE + MLA_ROPE);
			tm_gguf_writer_set_u32(w, KEY("attention.value_length_mla"), MLA_V);
		}
	}
	tm_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
	tm_gguf_writer_set_f32(w, KEY("rope.freq_base"), 10000.0f);
	if (moe) {
		tm_gguf_writer_set_u32(w, KEY("expert_count"), s->n_expert);
		tm_gguf_writer_set_u32(w, KEY("expert_used_count"), s->n_used);
		if (qwen)
			tm_gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), FF);
	}
#undef KEY
	for (int i = 0; i < n; i++)
		if ((err = tm_gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne)))
			goto out;
	if ((err = tm_gguf_writer_begin(w, path)))
		goto out;
	for (int i = 0; i < n && !err; i++) {
		int64_t cnt = t[i].ne[0] * t[i].ne[1] * t[i].ne[2];

		for (int64_t j = 0; j < cnt && !err; j++) {
			float v = t[i].offset + t[i].scale * frand();
			uint16_t h;

			if (t[i].type == TM_F16) {
				h = tm_f32_to_f16(v);
				err = tm_gguf_writer_data(w, &h, 2);
			} else {
				err = tm_gguf_writer_data(w, &v, 4);
			}
		}
	}
	if (!err)
		err = tm_gguf_writer_finish(w);
out:
	tm_gguf_writer_free(w);
	return err;
}

static char dir[] = "/tmp/tm-test-model-XXXXXX";

static int load(const struct spec *s, struct tm_model *m)
{
	char path[128];
	int err;

	snprintf(path, sizeof(path), "%s/m.gguf", dir);
	if ((err = write_model(path, s))) {
		printf("# writing %s failed: %d %s\n", s->arch, err, tm_strerror());
		return err;
	}
	tm_clear_error();
	return tm_model_load(m, path);
}

static double maxdiff(const float *a, const float *b, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i] - b[i]));
	return m;
}

/* Logits of every position of toks, with the given threads and batch size. */
static int run(const struct tm_model *m, int threads, int batch, const int32_t *toks, int n, float *out)
{
	struct tm_pool *pool = tm_pool_create(threads, 0);
	struct tm_ctx *c;
	int err = tm_ctx_create(&c, m, pool, CTX, batch);

	if (!err)
		err = tm_forward(c, toks, n, out, true);
	tm_ctx_free(c);
	tm_pool_destroy(pool);
	return err;
}


/* ---- an independent double-precision forward pass, written from the definitions ---- */

static void ref_row(const struct tm_weight *w, int mat, int r, double *out)
{
	float tmp[4096];

	tm_dequant_row(w->type, (const char *)w->data + (size_t)mat * w->mat_bytes + (size_t)r * w->row_bytes,
		       tmp, w->cols);
	for (int i = 0; i < w->cols; i++)
		out[i] = tmp[i];
}

static void ref_mv(const struct tm_weight *w, int mat, const double *x, double *y)
{
	double row[4096];

	for (int r = 0; r < w->rows; r++) {
		double s = 0;

		ref_row(w, mat, r, row);
		for (int i = 0; i < w->cols; i++)
			s += row[i] * x[i];
		y[r] = s;
	}
}

static void ref_norm(double *x, const struct tm_weight *w, int n, double eps)
{
	const float *g = w->data;
	double ss = 0;

	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	for (int i = 0; i < n; i++)
		x[i] = x[i] / sqrt(ss / n + eps) * g[i];
}

static void ref_rope(double *x, int hd, int pos, double base, bool neox)
{
	for (int i = 0; i < hd / 2; i++) {
		double th = pos * pow(base, -2.0 * i / hd);
		int a = neox ? i : 2 * i, b = neox ? i + hd / 2 : 2 * i + 1;
		double x0 = x[a], x1 = x[b];

		x[a] = x0 * cos(th) - x1 * sin(th);
		x[b] = x0 * sin(th) + x1 * cos(th);
	}
}

static double silu(double g)
{
	return g / (1 + exp(-g));
}

/* logits[t][v] for tokens toks[0..n) from position 0 */
static void ref_forward(const struct tm_model *m, const int32_t *toks, int n, double *logits)
{
	const struct tm_hparams *hp = &m->hp;
	int E = hp->n_embd, hd = hp->head_dim, H = hp->n_head, G = hp->n_head_kv;
	int QD = H * hd, KVD = G * hd, F = hp->moe ? hp->n_ff_exp : hp->n_ff;
	double *K = calloc((size_t)n * hp->n_layer * KVD, sizeof(double));
	double *V = calloc((size_t)n * hp->n_layer * KVD, sizeof(double));
	double x[4096], xn[4096], q[4096], att[4096], o[4096], g[4096], u[4096], acc[4096];
	double p[256], r[256];

	for (int t = 0; t < n; t++) {
		ref_row(&m->tok_embd, 0, toks[t], x);
		for (int l = 0; l < hp->n_layer; l++) {
			const struct tm_layer *L = &m->layers[l];
			double *k = K + ((size_t)l * n + t) * KVD, *v = V + ((size_t)l * n + t) * KVD;

			memcpy(xn, x, sizeof(double) * E);
			ref_norm(xn, &L->attn_norm, E, hp->rms_eps);
			ref_mv(&L->wq, 0, xn, q);
			ref_mv(&L->wk, 0, xn, k);
			ref_mv(&L->wv, 0, xn, v);
			for (int h = 0; h < H; h++) {
				if (hp->qk_norm)
					ref_norm(q + h * hd, &L->q_norm, hd, hp->rms_eps);
				ref_rope(q + h * hd, hd, t, hp->rope_base, hp->rope_mode == TM_ROPE_NEOX);
			}
			for (int h = 0; h < G; h++) {
				if (hp->qk_norm)
					ref_norm(k + h * hd, &L->k_norm, hd, hp->rms_eps);
				ref_rope(k + h * hd, hd, t, hp->rope_base, hp->rope_mode == TM_ROPE_NEOX);
			}
			for (int h = 0; h < H; h++) {
				int kvh = h / (H / G);
				double mx = -1e300, sum = 0, sc[CTX];

				for (int s2 = 0; s2 <= t; s2++) {
					const double *ks = K + ((size_t)l * n + s2) * KVD + kvh * hd;

					sc[s2] = 0;
					for (int d = 0; d < hd; d++)
						sc[s2] += q[h * hd + d] * ks[d];
					sc[s2] /= sqrt(hd);
					mx = fmax(mx, sc[s2]);
				}
				for (int s2 = 0; s2 <= t; s2++)
					sum += sc[s2] = exp(sc[s2] - mx);
				for (int d = 0; d < hd; d++) {
					att[h * hd + d] = 0;
					for (int s2 = 0; s2 <= t; s2++)
						att[h * hd + d] += sc[s2] / sum *
								   V[((size_t)l * n + s2) * KVD + kvh * hd + d];
				}
			}
			(void)QD;
			ref_mv(&L->wo, 0, att, o);
			for (int i = 0; i < E; i++)
				x[i] += o[i];
			memcpy(xn, x, sizeof(double) * E);
			ref_norm(xn, &L->ffn_norm, E, hp->rms_eps);
			if (!hp->moe) {
				ref_mv(&L->gate, 0, xn, g);
				ref_mv(&L->up, 0, xn, u);
				for (int i = 0; i < F; i++)
					g[i] = silu(g[i]) * u[i];
				ref_mv(&L->down, 0, g, o);
				for (int i = 0; i < E; i++)
					x[i] += o[i];
				continue;
			}
			/* softmax over the router, the top k, weights renormalised */
			double mx = -1e300, sum = 0, wsum = 0;
			bool used[256] = { false };

			ref_mv(&L->gate_inp, 0, xn, r);
			for (int e = 0; e < hp->n_expert; e++)
				mx = fmax(mx, r[e]);
			for (int e = 0; e < hp->n_expert; e++)
				sum += p[e] = exp(r[e] - mx);
			for (int e = 0; e < hp->n_expert; e++)
				p[e] /= sum;
			memset(acc, 0, sizeof(double) * E);
			int sel[64];

			for (int j = 0; j < hp->n_expert_used; j++) {
				int best = -1;

				for (int e = 0; e < hp->n_expert; e++)
					if (!used[e] && (best < 0 || p[e] > p[best]))
						best = e;
				used[best] = true;
				sel[j] = best;
				wsum += p[best];
			}
			for (int j = 0; j < hp->n_expert_used; j++) {
				ref_mv(&L->gate_exps, sel[j], xn, g);
				ref_mv(&L->up_exps, sel[j], xn, u);
				for (int i = 0; i < F; i++)
					g[i] = silu(g[i]) * u[i];
				ref_mv(&L->down_exps, sel[j], g, o);
				for (int i = 0; i < E; i++)
					acc[i] += p[sel[j]] / wsum * o[i];
			}
			for (int i = 0; i < E; i++)
				x[i] += acc[i];
		}
		memcpy(xn, x, sizeof(double) * E);
		ref_norm(xn, &m->output_norm, E, hp->rms_eps);
		ref_mv(&m->output, 0, xn, logits + (size_t)t * hp->n_vocab);
	}
	free(K);
	free(V);
}

static void test_arch(const struct spec *s, const char *label)
{
	enum { N = 13 };
	static const int32_t toks[N] = { 1, 17, 42, 5, 88, 3, 64, 64, 9, 77, 2, 50, 31 };
	static float a[N * VOCAB], b[N * VOCAB], c[N * VOCAB];
	struct tm_model m;
	int err = load(s, &m);

	if (!tap_ok(!err, "%s: loads (%s)", label, err ? tm_strerror() : "ok"))
		return;
	tap_ok(m.hp.n_vocab == VOCAB && m.hp.n_embd == EMBD && m.hp.n_layer == LAYERS &&
	       m.hp.n_head_kv == KV_HEADS && m.hp.head_dim == (s->head_dim ? s->head_dim : EMBD / HEADS) &&
	       m.hp.moe == (s->n_expert > 0) && m.hp.n_ctx_train == CTX &&
	       (s->tied ? m.output.data == m.tok_embd.data : m.output.data != m.tok_embd.data),
	       "%s: hyperparameters and tied output read from metadata", label);

	err = run(&m, 1, 1, toks, N, a) || run(&m, 1, 5, toks, N, b) || run(&m, 3, 64, toks, N, c);
	double scale = 0;

	for (int i = 0; i < N * VOCAB; i++)
		scale = fmax(scale, fabs(a[i]));
	tap_ok(!err && scale > 0 && maxdiff(a, b, N * VOCAB) < 1e-4 * scale &&
	       maxdiff(a, c, N * VOCAB) < 1e-4 * scale,
	       "%s: decode, prefill in batches of 5 and prefill on 3 threads agree (%.2g, %.2g of %.3g)",
	       label, maxdiff(a, b, N * VOCAB), maxdiff(a, c, N * VOCAB), scale);

	/* the definitions, in double precision */
	static double ref[N * VOCAB];
	double worst = 0;

	ref_forward(&m, toks, N, ref);
	for (int t = 0; t < N; t++) {
		double mean = 0, var = 0, d = 0;

		for (int v = 0; v < VOCAB; v++)
			mean += ref[t * VOCAB + v] / VOCAB;
		for (int v = 0; v < VOCAB; v++) {
			var += (ref[t * VOCAB + v] - mean) * (ref[t * VOCAB + v] - mean) / VOCAB;
			d = fmax(d, fabs(ref[t * VOCAB + v] - a[t * VOCAB + v]));
		}
		worst = fmax(worst, d / sqrt(var));
	}
	tap_ok(worst < 1e-4, "%s: logits equal an independent double-precision forward pass (max %.2g std)",
	       label, worst);

	/* and so does every kernel ISA this CPU has (a CI machine may pick another) */
	static const char *const isas[] = { "scalar", "avx2", "avx512" };
	const char *dflt = tm_kernels_isa();
	int tried = 0, bad_isa = 0;

	for (size_t k = 0; k < sizeof(isas) / sizeof(isas[0]); k++) {
		if (tm_kernels_force_isa(isas[k]))
			continue;
		tried++;
		if (run(&m, 2, 5, toks, N, c)) {
			bad_isa++;
			continue;
		}
		for (int t = 0; t < N * VOCAB; t++)
			if (fabs(c[t] - ref[t]) > 1e-4 * scale)
				bad_isa++;
	}
	tm_kernels_force_isa(strncmp(dflt, "avx512", 6) ? dflt : "avx512");
	tap_ok(tried >= 1 && !bad_isa, "%s: the same logits with each of %d kernel ISAs", label, tried);

	/* positions matter: swapping two earlier tokens changes the later logits */
	int32_t swapped[N];

	memcpy(swapped, toks, sizeof(toks));
	swapped[1] = toks[2];
	swapped[2] = toks[1];
	err = run(&m, 1, 64, swapped, N, b);
	tap_ok(!err && maxdiff(a + 3 * VOCAB, b + 3 * VOCAB, VOCAB) > 1e-2 * scale,
	       "%s: RoPE makes the logits depend on token order (%.3g)", label,
	       maxdiff(a + 3 * VOCAB, b + 3 * VOCAB, VOCAB));

	/* one decoded token reads what bytes_per_token promises */
	struct tm_pool *pool = tm_pool_create(1, 0);
	struct tm_ctx *ctx;
	uint64_t before;

	err = tm_ctx_create(&ctx, &m, pool, CTX, 8);
	if (!err)
		err = tm_forward(ctx, toks, 4, NULL, false);
	before = ctx ? ctx->weight_bytes : 0;
	uint64_t h0 = ctx ? ctx->handoffs : 0;
	/* per layer: qkv, attention, wo, gate+up, down (MoE: the router, then the experts' gate, up and down in one); then the output */
	uint64_t want_h = (uint64_t)LAYERS * 5 + 1;

	if (!err)
		err = tm_forward(ctx, toks + 4, 1, a, false);
	tap_ok(!err && ctx->weight_bytes - before == m.bytes_per_token &&
	       !memcmp(a, ctx->logits, sizeof(float) * VOCAB),
	       "%s: a decoded token reads bytes_per_token = %llu weight bytes", label,
	       (unsigned long long)m.bytes_per_token);
	tap_ok(!err && ctx->map_bytes[0] == ctx->weight_bytes,
	       "%s: every byte is counted against the one mapping that holds it", label);
	tap_ok(!err && ctx->handoffs - h0 == want_h, "%s: a decoded token takes %llu pool hand-offs (want %llu)",
	       label, (unsigned long long)(ctx->handoffs - h0), (unsigned long long)want_h);

	/* bad calls */
	int32_t bad = VOCAB;
	int e1 = tm_forward(ctx, &bad, 1, NULL, false);
	tm_ctx_reset(ctx);
	static int32_t many[CTX + 1];
	int e2 = tm_forward(ctx, many, CTX + 1, NULL, false);

	tap_ok(e1 == -EINVAL && e2 == -EINVAL && strstr(tm_strerror(), "context"),
	       "%s: a token outside the vocabulary and an overfull context are refused", label);
	tm_ctx_free(ctx);
	tm_pool_destroy(pool);
	tm_model_free(&m);
}

static int32_t greedy(void *unused, float *logits, int n)
{
	return tm_argmax(logits, n);
}

struct sink {
	int32_t toks[CTX];
	int n, stop_at;
};

static int collect(void *arg, int32_t tok)
{
	struct sink *s = arg;

	s->toks[s->n++] = tok;
	return s->n == s->stop_at;
}

/* tm_generate: the tokens a manual greedy loop of tm_forward gives, with honest stats. */
static void test_generate(void)
{
	static const int32_t prompt[5] = { 1, 40, 41, 7, 90 };
	struct tm_model m = { 0 };
	struct tm_pool *pool = tm_pool_create(2, 0);
	struct tm_ctx *c = NULL;
	struct tm_gen_stats st;
	struct sink s = { .stop_at = -1 };
	int32_t want[CTX], tok;
	int err = load(&(struct spec){ .arch = "qwen3moe", .type = TM_F32, .n_expert = 4, .n_used = 2 }, &m);

	if (!err)
		err = tm_ctx_create(&c, &m, pool, 24, 4);
	if (!err)
		err = tm_forward(c, prompt, 5, NULL, false);
	for (int i = 0; !err && i < 10; i++) {
		want[i] = tok = tm_argmax(c->logits, VOCAB);
		err = tm_forward(c, &tok, 1, NULL, false);
	}
	if (!tap_ok(!err, "generate: reference loop ran (%s)", tm_strerror()))
		goto out;
	tm_ctx_reset(c);
	err = tm_generate(c, prompt, 5, 10, greedy, NULL, collect, &s, &st);
	tap_ok(!err && s.n == 10 && !memcmp(s.toks, want, sizeof(int32_t) * 10) &&
	       st.n_prompt == 5 && st.n_sampled == 10 && st.n_decoded == 9 &&
	       st.bytes_decode == 9 * m.bytes_per_token && st.t_prompt > 0 && st.t_decode > 0,
	       "generate: greedy tokens equal the forward loop's; 9 decode steps read 9 x bytes_per_token");

	tm_ctx_reset(c);
	s.n = 0;
	s.stop_at = 3;
	err = tm_generate(c, prompt, 5, 10, greedy, NULL, collect, &s, &st);
	tap_ok(!err && s.n == 3 && st.n_decoded == 2, "generate: stops when the callback says so");

	tm_ctx_reset(c);
	s.n = 0;
	s.stop_at = -1;
	err = tm_generate(c, prompt, 5, 100, greedy, NULL, collect, &s, &st);
	tap_ok(!err && s.n == 24 - 5 + 1 && c->n_past == 24, "generate: stops at a full context (%d tokens)", s.n);
	tm_ctx_reset(c);
	tap_ok(tm_generate(c, prompt, 5, 0, greedy, NULL, collect, &s, &st) == -EINVAL &&
	       tm_generate(c, want, 25, 1, greedy, NULL, collect, &s, &st) == -EINVAL,
	       "generate: refuses -n 0 and a prompt longer than the context");
out:
	tm_ctx_free(c);
	tm_pool_destroy(pool);
	tm_model_free(&m);
}

/*
 * tm_forward_seqs: three sequences with different prompts decode together,
 * joining and leaving between steps, and each gets exactly the logits it
 * gets decoding alone (dense); the weights are counted once per step.
 */
static void test_forward_seqs(const struct spec *sp, const char *label, bool exact)
{
	static const int32_t prompts[3][4] = { { 1, 40, 41, 7 }, { 2, 9 }, { 5, 6, 7, 8 } };
	static const int n_prompt[3] = { 4, 2, 3 };
	/* which sequences take part in each step: all, then one leaves, then it rejoins */
	static const int steps[4][3] = { { 1, 1, 1 }, { 1, 0, 1 }, { 0, 1, 1 }, { 1, 1, 1 } };
	struct tm_model m = { 0 };
	struct tm_pool *pool = tm_pool_create(2, 0);
	struct tm_ctx *alone[3] = { 0 }, *batched[3] = { 0 }, *work = NULL;
	int err = load(sp, &m), bad = 0, n_steps = 0;
	double worst = 0;
	uint64_t bytes = 0, bytes_steps = 0, rows = 0;

	for (int i = 0; !err && i < 3; i++) {
		err = tm_ctx_create(&alone[i], &m, pool, CTX, 4);
		if (!err)
			err = tm_ctx_create(&batched[i], &m, pool, CTX, 4);
		if (!err)
			err = tm_forward(alone[i], prompts[i], n_prompt[i], NULL, false);
		if (!err)
			err = tm_forward(batched[i], prompts[i], n_prompt[i], NULL, false);
	}
	if (!err)
		err = tm_ctx_create_seqs(&work, &m, pool, 3);
	for (int s = 0; !err && s < 4; s++) {
		struct tm_ctx *seqs[3];
		int32_t toks[3];
		int n = 0;

		for (int i = 0; i < 3; i++) {
			if (!steps[s][i])
				continue;
			toks[n] = tm_argmax(alone[i]->logits, VOCAB);
			seqs[n++] = batched[i];
			if (tm_argmax(batched[i]->logits, VOCAB) != toks[n - 1])
				bad++;
			if ((err = tm_forward(alone[i], &toks[n - 1], 1, NULL, false)))
				break;
		}
		if (err)
			break;
		bytes = work->weight_bytes;
		if ((err = tm_forward_seqs(work, seqs, toks, n)))
			break;
		bytes_steps += work->weight_bytes - bytes - (uint64_t)n * m.tok_embd.row_bytes;
		rows += n;
		n_steps++;
		for (int i = 0; i < 3; i++)
			if (steps[s][i]) {
				worst = fmax(worst, maxdiff(alone[i]->logits, batched[i]->logits, VOCAB));
				bad += alone[i]->n_past != batched[i]->n_past;
			}
	}
	if (tap_ok(!err, "%s: forward_seqs ran (%s)", label, tm_strerror())) {
		tap_ok(!bad && (exact ? worst == 0 : worst < 1e-4),
		       "%s: each of 3 batched sequences gets the logits it gets alone (max diff %g, %d bad)",
		       label, worst, bad);
		/* MoE: the union of the rows' experts, at most what the rows read alone */
		uint64_t once = (uint64_t)n_steps * (m.bytes_per_token - m.tok_embd.row_bytes);

		tap_ok(m.hp.moe ? bytes_steps >= once && bytes_steps < rows * m.bytes_per_token :
		       bytes_steps == once, "%s: a step reads each weight once for all its sequences (%llu bytes, %llu rows)",
		       label, (unsigned long long)bytes_steps, (unsigned long long)rows);
	}
	if (work) {
		int32_t t0 = 0;
		struct tm_ctx *twice[2] = { batched[0], batched[0] };

		tap_ok(tm_forward_seqs(work, twice, (int32_t[]){ 1, 1 }, 2) == -EINVAL &&
		       tm_forward_seqs(work, batched, (int32_t[]){ 1, VOCAB, 1 }, 3) == -EINVAL &&
		       tm_forward_seqs(work, batched, &t0, 0) == -EINVAL &&
		       tm_forward_seqs(batched[0], batched, &t0, 1) == -EINVAL,
		       "%s: forward_seqs refuses a sequence twice, a bad id, no rows, a non-work context", label);
	}
	for (int i = 0; i < 3; i++) {
		tm_ctx_free(alone[i]);
		tm_ctx_free(batched[i]);
	}
	tm_ctx_free(work);
	tm_pool_destroy(pool);
	tm_model_free(&m);
}

static void expect_refusal(const struct spec *s, int want, const char *needle, const char *what)
{
	struct tm_model m;
	int err = load(s, &m);

	tap_ok(err == want && strstr(tm_strerror(), needle), "refuses %s: %d '%s'", what, err,
	       tm_strerror());
	if (!err)
		tm_model_free(&m);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		tap_ok(0, "mkdtemp");
		return tap_done();
	}
	test_arch(&(struct spec){ .arch = "llama", .type = TM_F32 }, "llama f32");
	test_arch(&(struct spec){ .arch = "llama", .type = TM_F16, .tied = true }, "llama f16 tied");
	test_arch(&(struct spec){ .arch = "llama", .type = TM_F32, .n_expert = 4, .n_used = 2 },
		  "llama MoE 4x2");
	test_arch(&(struct spec){ .arch = "qwen3", .type = TM_F32, .head_dim = 16 }, "qwen3 (head 16)");
	test_arch(&(struct spec){ .arch = "qwen3moe", .type = TM_F16, .n_expert = 6, .n_used = 3,
				  .head_dim = 12 }, "qwen3moe 6x3");

	test_generate();
	test_forward_seqs(&(struct spec){ .arch = "llama", .type = TM_F32 }, "llama f32", true);
	test_forward_seqs(&(struct spec){ .arch = "qwen3", .type = TM_F16, .head_dim = 16 }, "qwen3 f16", true);
	test_forward_seqs(&(struct spec){ .arch = "qwen3moe", .type = TM_F32, .n_expert = 4, .n_used = 2 },
			  "qwen3moe", false);
	test_forward_seqs(&(struct spec){ .arch = "deepseek2", .type = TM_F32, .mla = MLA_SPLIT },
			  "deepseek2 split MLA", true);
	test_forward_seqs(&(struct spec){ .arch = "deepseek2", .type = TM_F16, .mla = MLA_LEGACY },
			  "deepseek2 legacy MLA", true);
	expect_refusal(&(struct spec){ .arch = "gpt2", .type = TM_F32 }, -EOPNOTSUPP, "gpt2",
		       "an unsupported architecture");
	expect_refusal(&(struct spec){ .arch = "llama", .type = TM_F32, .skip = "blk.1.attn_v.weight" },
		       -EINVAL, "blk.1.attn_v.weight", "a missing tensor");
	expect_refusal(&(struct spec){ .arch = "llama", .type = TM_F32, .bad_shape = "blk.0.ffn_up.weight" },
		       -EINVAL, "blk.0.ffn_up.weight", "a tensor of the wrong shape");
	expect_refusal(&(struct spec){ .arch = "llama", .type = TM_F32, .extra = "blk.0.attn_q.bias" },
		       -EOPNOTSUPP, "blk.0.attn_q.bias", "a tensor the forward pass would ignore");
	expect_refusal(&(struct spec){ .arch = "qwen3moe", .type = TM_F32 }, -EINVAL, "expert_count",
		       "qwen3moe without experts");
	expect_refusal(&(struct spec){ .arch = "qwen3", .type = TM_F32, .skip = "blk.0.attn_k_norm.weight" },
		       -EINVAL, "attn_k_norm", "qwen3 without its k norm");

	char path[128];

	snprintf(path, sizeof(path), "%s/m.gguf", dir);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
