// SPDX-License-Identifier: MIT
/*
 * The GPU pass's placement rules (-ot REGEX=VRAM|CPU|pcie with --gpu),
 * checked before any GPU is touched, so here without one: the hybrid leaves
 * only routed experts to the CPU, a layer's three expert tensors together;
 * pcie needs a pinnable mapping; unknown places are refused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "tiermem/error.h"
#include "tiermem/gpu.h"

#define N_LAYER 2

static char bytes[64];

static void weight(struct tm_weight *w, const char *name, int map)
{
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->data = bytes;
	w->map = (uint8_t)map;
}

/* A model with two MoE layers; experts of layer l in maps[l] (0: anonymous DDR, 1: an fsdax file). */
static void model(struct tm_model *m, struct tm_layer *L)
{
	char name[64];

	memset(m, 0, sizeof(*m));
	memset(L, 0, sizeof(*L) * N_LAYER);
	m->hp.n_layer = N_LAYER;
	m->layers = L;
	m->n_maps = 2;
	snprintf(m->maps[0].backend, sizeof(m->maps[0].backend), "anon-thp");
	snprintf(m->maps[1].backend, sizeof(m->maps[1].backend), "fsdax");
	snprintf(m->maps[1].path, sizeof(m->maps[1].path), "/mnt/pmem0/m.gguf");
	weight(&m->tok_embd, "token_embd.weight", 0);
	weight(&m->output_norm, "output_norm.weight", 0);
	weight(&m->output, "output.weight", 0);
	for (int l = 0; l < N_LAYER; l++) {
#define W(f, s) snprintf(name, sizeof(name), "blk.%d.%s.weight", l, s); weight(&L[l].f, name, 0);
		W(attn_norm, "attn_norm") W(wq, "attn_q") W(wk, "attn_k") W(wv, "attn_v") W(wo, "attn_output")
		W(ffn_norm, "ffn_norm") W(gate_inp, "ffn_gate_inp")
#undef W
#define X(f, s) snprintf(name, sizeof(name), "blk.%d.%s.weight", l, s); weight(&L[l].f, name, l);
		X(gate_exps, "ffn_gate_exps") X(up_exps, "ffn_up_exps") X(down_exps, "ffn_down_exps")
#undef X
	}
}

static int rules(struct tm_override *ot, const char *a, const char *b)
{
	int n = 0;

	if (a && !tm_override_parse(a, &ot[n]))
		n++;
	if (b && !tm_override_parse(b, &ot[n]))
		n++;
	return n;
}

int main(void)
{
	struct tm_layer L[N_LAYER];
	struct tm_model m;
	struct tm_override ot[2];
	int n;

	model(&m, L);
	tap_ok(tm_gpu_place_parse("CPU") == TM_GPU_CPU && tm_gpu_place_parse("pcie") == TM_GPU_PCIE &&
	       tm_gpu_place_parse("VRAM") == TM_GPU_VRAM && tm_gpu_place_parse("CUDA0") < 0 &&
	       tm_gpu_place_parse("cpu") < 0, "place names: VRAM, CPU, pcie (as written)");
	tap_ok(!tm_gpu_check_placement(&m, NULL, 0) && tm_gpu_place_of(NULL, 0, "blk.0.attn_q.weight") == TM_GPU_VRAM,
	       "no rules: everything in VRAM");
	n = rules(ot, "exps=CPU", NULL);
	tap_ok(!tm_gpu_check_placement(&m, ot, n) && tm_gpu_place_of(ot, n, "blk.1.ffn_down_exps.weight") == TM_GPU_CPU &&
	       tm_gpu_place_of(ot, n, "blk.1.ffn_gate_inp.weight") == TM_GPU_VRAM,
	       "-ot exps=CPU: the hybrid (routed experts on the CPU, the router on the GPU)");
	n = rules(ot, "blk\\.0\\..*exps=VRAM", "exps=CPU");
	tap_ok(!tm_gpu_check_placement(&m, ot, n) && tm_gpu_place_of(ot, n, "blk.0.ffn_up_exps.weight") == TM_GPU_VRAM &&
	       tm_gpu_place_of(ot, n, "blk.1.ffn_up_exps.weight") == TM_GPU_CPU,
	       "the first matching rule wins: layer 0's experts in VRAM, the rest on the CPU");
	n = rules(ot, "attn_q=CPU", NULL);
	tap_ok(tm_gpu_check_placement(&m, ot, n) == -EINVAL && strstr(tm_strerror(), "blk.0.attn_q.weight") &&
	       strstr(tm_strerror(), "routed experts"), "a CPU rule on attention: refused: %s", tm_strerror());
	n = rules(ot, "gate_exps=CPU", NULL);
	tap_ok(tm_gpu_check_placement(&m, ot, n) == -EINVAL && strstr(tm_strerror(), "1 of its 3"),
	       "one of a layer's three expert tensors on the CPU: refused: %s", tm_strerror());
	n = rules(ot, "blk\\.0\\..*exps=pcie", NULL);
	tap_ok(!tm_gpu_check_placement(&m, ot, n) && tm_gpu_place_of(ot, n, "blk.0.ffn_up_exps.weight") == TM_GPU_PCIE,
	       "pcie on anonymous DDR: accepted");
	n = rules(ot, "exps=pcie", NULL);
	tap_ok(tm_gpu_check_placement(&m, ot, n) == -EOPNOTSUPP && strstr(tm_strerror(), "blk.1.ffn_gate_exps") &&
	       strstr(tm_strerror(), "fsdax") && strstr(tm_strerror(), "DDR"),
	       "pcie on an fsdax file: refused, DDR staging offered: %s", tm_strerror());
	n = rules(ot, "exps=CUDA0", NULL);
	tap_ok(tm_gpu_check_placement(&m, ot, n) == -EINVAL && strstr(tm_strerror(), "CUDA0"),
	       "an unknown place: refused: %s", tm_strerror());
	return tap_done();
}
