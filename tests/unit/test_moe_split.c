// SPDX-License-Identifier: MIT
/*
 * tm_moe_experts_cpu, the CPU half of the CPU/GPU hybrid (the GPU routes,
 * the CPU runs the routed experts), checked without a GPU: inside a CPU
 * forward pass, at every MoE layer the expert hook's reduce sees the
 * routed experts' sum the pass computed; the split function, given the same
 * normed input and routing on a second context, must return it bit for bit,
 * for prefill batches and decode steps. The model is a small Mixtral-style
 * llama MoE with random f32 weights, written here.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "tap.h"
#include "tiermem/error.h"
#include "tiermem/gguf_write.h"
#include "tiermem/model.h"

enum { E = 64, HEADS = 4, KV = 2, F = 96, N_EXP = 4, USED = 2, LAYERS = 2, V = 128 };

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
}

struct t {
	char name[48];
	int nd;
	int64_t ne[3];
};

static int write_model(const char *path)
{
	struct tm_gguf_writer *w;
	struct t ts[64];
	int n = 0, err = 0;

#define T(nm, d, a, b, c) do { snprintf(ts[n].name, sizeof(ts[n].name), "%s", nm); ts[n].nd = d; \
		ts[n].ne[0] = a; ts[n].ne[1] = b; ts[n].ne[2] = c; n++; } while (0)
	T("token_embd.weight", 2, E, V, 1);
	for (int l = 0; l < LAYERS; l++) {
		char s[48];

#define L(suffix, d, a, b, c) do { snprintf(s, sizeof(s), "blk.%d.%s", l, suffix); T(s, d, a, b, c); } while (0)
		L("attn_norm.weight", 1, E, 1, 1);
		L("attn_q.weight", 2, E, E, 1);
		L("attn_k.weight", 2, E, E / HEADS * KV, 1);
		L("attn_v.weight", 2, E, E / HEADS * KV, 1);
		L("attn_output.weight", 2, E, E, 1);
		L("ffn_norm.weight", 1, E, 1, 1);
		L("ffn_gate_inp.weight", 2, E, N_EXP, 1);
		L("ffn_gate_exps.weight", 3, E, F, N_EXP);
		L("ffn_up_exps.weight", 3, E, F, N_EXP);
		L("ffn_down_exps.weight", 3, F, E, N_EXP);
#undef L
	}
	T("output_norm.weight", 1, E, 1, 1);
	T("output.weight", 2, E, V, 1);
#undef T
	if (tm_gguf_writer_new(&w, 32))
		return -1;
	tm_gguf_writer_set_str(w, "general.architecture", "llama");
	tm_gguf_writer_set_u32(w, "llama.context_length", 256);
	tm_gguf_writer_set_u32(w, "llama.embedding_length", E);
	tm_gguf_writer_set_u32(w, "llama.block_count", LAYERS);
	tm_gguf_writer_set_u32(w, "llama.feed_forward_length", F);
	tm_gguf_writer_set_u32(w, "llama.attention.head_count", HEADS);
	tm_gguf_writer_set_u32(w, "llama.attention.head_count_kv", KV);
	tm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	tm_gguf_writer_set_u32(w, "llama.expert_count", N_EXP);
	tm_gguf_writer_set_u32(w, "llama.expert_used_count", USED);
	for (int i = 0; i < n; i++)
		err |= tm_gguf_writer_add_tensor(w, ts[i].name, TM_F32, ts[i].nd, ts[i].ne);
	err |= tm_gguf_writer_begin(w, path);
	for (int i = 0; i < n && !err; i++) {
		size_t cnt = (size_t)(ts[i].ne[0] * ts[i].ne[1] * ts[i].ne[2]);
		float *buf = malloc(sizeof(float) * cnt);
		bool norm = strstr(ts[i].name, "norm") != NULL;

		if (!buf)
			return -1;
		for (size_t k = 0; k < cnt; k++)
			buf[k] = norm ? 1.0f + 0.1f * frand() : frand() * (strstr(ts[i].name, "gate_inp") ? 4.0f : 0.5f);
		err |= tm_gguf_writer_data(w, buf, sizeof(float) * cnt);
		free(buf);
	}
	err |= tm_gguf_writer_finish(w);
	tm_gguf_writer_free(w);
	return err ? -1 : 0;
}

struct probe {
	struct tm_ctx *a, *b;		/* the pass, and the context the split function works in */
	float out[8 * E], part[8 * E], zeroed[8 * E];
	int calls, rows, diff;
	int part_diff, part_same;	/* the `local` filter (the GPU's VRAM cache takes the rest) */
};

/* The VRAM cache's filter, as tm_xvram_attach sets it: here, odd experts are the CPU's. */
static bool odd(void *arg, int l, int e)
{
	return e % 2;
}

static const struct tm_expert_hook odd_only = { .local = odd };

static void reduce(void *arg, int l, float *acc, int n)
{
	struct probe *p = arg;

	/* a's normed FFN input and routing are what the GPU would hand over */
	tm_moe_experts_cpu(p->b, l, p->a->xb, p->a->sel, p->a->selw, n, p->out);
	p->calls++;
	p->rows += n;
	p->diff += memcmp(p->out, acc, sizeof(float) * n * E) != 0;

	/* with `local`, the split function sums only those experts: as if the others weighed 0 */
	float w[8 * USED];

	for (int i = 0; i < n * USED; i++)
		w[i] = p->a->sel[i] % 2 ? p->a->selw[i] : 0.0f;
	tm_moe_experts_cpu(p->b, l, p->a->xb, p->a->sel, w, n, p->zeroed);
	p->b->xhook = &odd_only;
	tm_moe_experts_cpu(p->b, l, p->a->xb, p->a->sel, p->a->selw, n, p->part);
	p->b->xhook = NULL;
	p->part_diff += memcmp(p->part, p->zeroed, sizeof(float) * n * E) != 0;
	p->part_same += !memcmp(p->part, p->out, sizeof(float) * n * E);
}

int main(void)
{
	char path[] = "/tmp/tm-moe-split-XXXXXX";
	int fd = mkstemp(path);
	struct tm_model m;
	struct tm_pool *pool = tm_pool_create(2, 0);
	struct probe p = { 0 };
	struct tm_expert_hook hook = { .reduce = reduce, .arg = &p };
	int32_t tok[8] = { 3, 17, 99, 5, 64, 1, 127, 42 };
	bool ok;

	if (fd >= 0)
		close(fd);
	ok = fd >= 0 && pool && !write_model(path) && !tm_model_load(&m, path);
	if (!tap_ok(ok, "a small llama MoE (%d experts top-%d, f32) written and loaded%s%s", N_EXP, USED,
		    ok ? "" : ": ", ok ? "" : tm_strerror())) {
		unlink(path);
		tm_pool_destroy(pool);
		return tap_done();
	}
	ok = !tm_ctx_create(&p.a, &m, pool, 64, 8) && !tm_ctx_create(&p.b, &m, pool, 64, 8);
	if (ok) {
		p.a->xhook = &hook;
		ok = !tm_forward(p.a, tok, 5, NULL, false);
	}
	tap_ok(ok && p.calls == LAYERS && p.rows == 5 * LAYERS && !p.diff,
	       "prefill (5 rows): the split function's sum equals the pass's at every MoE layer (%d calls, %d differ)",
	       p.calls, p.diff);
	p.calls = p.rows = p.diff = 0;
	for (int i = 5; i < 8 && ok; i++)
		ok = !tm_forward(p.a, tok + i, 1, NULL, false);
	tap_ok(ok && p.calls == 3 * LAYERS && p.rows == 3 * LAYERS && !p.diff,
	       "decode (3 steps of one row): equal bit for bit (%d calls, %d differ)", p.calls, p.diff);
	tap_ok(ok && !p.part_diff && p.part_same < 4 * LAYERS,
	       "an expert hook's local (the VRAM cache's CPU misses): the split function sums only those experts, "
	       "bit for bit the sum with the others' weights 0, prefill and decode (%d of %d differ; %d calls "
	       "had only local experts)", p.part_diff, 4 * LAYERS, p.part_same);
	tap_ok(p.b->weight_bytes > 0 && p.b->weight_bytes % (3 * (uint64_t)E * F * sizeof(float)) == 0,
	       "the split function counts the experts it read in its context (%llu bytes: whole experts)",
	       (unsigned long long)p.b->weight_bytes);
	tm_ctx_free(p.a);
	tm_ctx_free(p.b);
	tm_model_free(&m);
	tm_pool_destroy(pool);
	unlink(path);
	return tap_done();
}
