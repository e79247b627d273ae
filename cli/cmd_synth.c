// SPDX-License-Identifier: MIT
/*
 * tiermem synth: GGUF files with random weights, shaped like real models of
 * the architectures tiermem runs, for tests (a few MB) and benchmarks (GBs).
 *
 * Weights are random but scaled so a forward pass stays well-conditioned:
 * every matrix has per-element rms 1/sqrt(row length) (so each projection
 * keeps activations at rms ~1), norms are ~1, embeddings rms 1, and the output
 * matrix gives logits of standard deviation ~2.5 (a clear but not degenerate
 * top-1). Quantized blocks are random bytes (every bit pattern is a valid
 * block) with their f16 scales set to give that rms, including the K-quants'
 * sub-block scales and mins.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/synth_vocab.h"
#include "kernels/kernels.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/gguf_write.h"

#define CMD "synth"

enum arch { ARCH_LLAMA, ARCH_QWEN3, ARCH_QWEN3MOE, ARCH_DEEPSEEK2, ARCH_GLM4MOE, NARCH };
static const char *const arch_names[] = { "llama", "qwen3", "qwen3moe", "deepseek2", "glm4moe" };

enum mix { MIX_NONE, MIX_Q4_K_M, MIX_Q5_K_M, MIX_Q2_K, MIX_Q3_K_M };

struct shape {
	enum arch arch;
	uint32_t dim, layers, heads, kv_heads, head_dim, ff, vocab, ctx;
	uint32_t experts, experts_used, expert_ff;	/* experts 0: dense */
	/* deepseek2: MLA dimensions and MoE options (heads' q/k length is nope + rope) */
	uint32_t q_lora, kv_lora, nope, rope, v_head, dense_lead, shared, groups, groups_used;
	bool mla_legacy, sigmoid;	/* attn_kv_b; sigmoid gating with exp_probs_b (V3) */
	bool no_qk_norm;		/* glm4moe without per-head q/k norms (GLM-4.5-Air) */
	uint32_t nextn;			/* glm4moe: trailing multi-token-prediction blocks */
	float yarn;			/* YaRN factor, 0: none */
};

#define MAX_OVERRIDES 8

struct quant {
	int type;		/* every matrix, or the base type of a mix */
	enum mix mix;
	const char *name;	/* as --type took it */
	/* --tensor-type NAME=TYPE: matrices whose name contains NAME get TYPE */
	const char *ovr_name[MAX_OVERRIDES];
	size_t ovr_len[MAX_OVERRIDES];
	int ovr_type[MAX_OVERRIDES], n_ovr;
};

enum role { R_EMBD, R_OUTPUT, R_NORM, R_MATRIX, R_ROUTER, R_BIAS, R_KVB };

struct tplan {
	char name[64];
	int type;
	uint32_t n_dims;
	int64_t ne[3];
	enum role role;
};

/* ---- random numbers: xoshiro256**, seeded per tensor ---- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*name)
		h = (h ^ (uint8_t)*name++) * 0x100000001b3ull;
	h ^= seed * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&h);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

/* Uniform in [-1, 1). */
static inline float rng_sym(struct rng *r)
{
	return (float)(rng_next(r) >> 40) * 0x1p-23f - 1.0f;
}

static void rng_bytes(struct rng *r, uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint64_t x = rng_next(r);

		memcpy(p, &x, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t x = rng_next(r);

		memcpy(p, &x, n);
	}
}

/* ---- weights ---- */

/*
 * rms of a block's values per unit of its f16 scale d, with random bytes:
 *   q8_0  d*q, q uniform int8                      -> 73.9
 *   q4_0  d*(q-8), q in 0..15                      -> 4.64
 *   q4_K  d*sc*q - dmin*m, sc,m in 0..63, q 0..15, dmin = 7.5 d   -> 258
 *   q5_K  same with q in 0..31, dmin = 15.5 d     -> 527
 *   q6_K  d*sc*(q-32), sc int8, q in 0..63        -> 1366
 *   q4_1  d*q + m, q in 0..15, m = -7.5 d          -> 4.61
 *   q5_0  d*(q-16), q in 0..31                     -> 9.25
 *   q5_1  d*q + m, q in 0..31, m = -15.5 d         -> 9.23
 *   q2_K  d*sc*q - dmin*m, sc,m in 0..15, q 0..3, dmin = 1.5 d    -> 13.9
 *   q3_K  d*(sc-32)*v, sc in 0..63, v in -4..3     -> 43.3
 *   iq4_xs d*(ls-32)*value[q], ls in 0..63, q 0..15 -> 1246
 * (sums of squares over the uniform distributions; dmin makes the
 * expected value of a weight zero.)
 */
static void put_f16(uint8_t *p, float v)
{
	uint16_t h = tm_f32_to_f16(v);

	memcpy(p, &h, 2);
}

/* A jittered block scale: blocks differ, as in real files. */
static float jitter(struct rng *r, float d)
{
	return d * (1.0f + 0.25f * rng_sym(r));
}

static void gen_rows(struct rng *r, int type, uint8_t *dst, int64_t nrows, int64_t ncols,
		     float rms, enum role role)
{
	int64_t nel = nrows * ncols;
	const float a = rms * 1.7320508f;	/* uniform [-a, a] has rms a/sqrt(3) */

	switch (type) {
	case TM_F32:
		for (int64_t i = 0; i < nel; i++) {
			float v = role == R_NORM ? 1.0f + 0.1f * rng_sym(r) :
				  role == R_BIAS ? 0.3f * rng_sym(r) : a * rng_sym(r);

			memcpy(dst + 4 * i, &v, 4);
		}
		return;
	case TM_F16:
		for (int64_t i = 0; i < nel; i++)
			put_f16(dst + 2 * i, a * rng_sym(r));
		return;
	case TM_BF16:
		for (int64_t i = 0; i < nel; i++) {
			float v = a * rng_sym(r);
			uint32_t u;
			uint16_t h;

			memcpy(&u, &v, 4);
			h = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);	/* round to nearest even */
			memcpy(dst + 2 * i, &h, 2);
		}
		return;
	}

	const struct tm_dtype_traits *tr = tm_dtype_traits(type);
	int64_t nblocks = nel / tr->block_elems;
	size_t bb = (size_t)tr->block_bytes;

	rng_bytes(r, dst, (size_t)nblocks * bb);
	for (int64_t b = 0; b < nblocks; b++) {
		uint8_t *blk = dst + b * (int64_t)bb;
		float d;

		switch (type) {
		case TM_Q8_0:
			put_f16(blk, jitter(r, rms / 73.9f));
			break;
		case TM_Q4_0:
			put_f16(blk, jitter(r, rms / 4.64f));
			break;
		case TM_Q4_K:
			d = jitter(r, rms / 258.0f);
			put_f16(blk, d);
			put_f16(blk + 2, 7.5f * d);
			break;
		case TM_Q5_K:
			d = jitter(r, rms / 527.0f);
			put_f16(blk, d);
			put_f16(blk + 2, 15.5f * d);
			break;
		case TM_Q6_K:
			put_f16(blk + 208, jitter(r, rms / 1366.0f));	/* d is last in q6_K */
			break;
		case TM_Q4_1:
			d = jitter(r, rms / 4.61f);
			put_f16(blk, d);
			put_f16(blk + 2, -7.5f * d);
			break;
		case TM_Q5_0:
			put_f16(blk, jitter(r, rms / 9.25f));
			break;
		case TM_Q5_1:
			d = jitter(r, rms / 9.23f);
			put_f16(blk, d);
			put_f16(blk + 2, -15.5f * d);
			break;
		case TM_Q2_K:
			d = jitter(r, rms / 13.9f);
			put_f16(blk + 80, d);
			put_f16(blk + 82, 1.5f * d);
			break;
		case TM_Q3_K:
			put_f16(blk + 108, jitter(r, rms / 43.3f));
			break;
		case TM_IQ4_XS:
			put_f16(blk, jitter(r, rms / 1246.0f));
			break;
		}
	}
}

/* ---- the tensor plan ---- */

static bool use_more_bits(int i, int n)
{
	/* llama.cpp's choice of layers that get more bits in *_M mixes */
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* Type of a matrix under the mix, as llama.cpp's llama_tensor_get_type() picks it. */
static int mix_type_of(const struct quant *q, const struct shape *s, const char *kind, int layer)
{
	int n = (int)s->layers;
	bool v = !strcmp(kind, "attn_v") || !strcmp(kind, "attn_kv_b");

	if (q->mix == MIX_NONE)
		return q->type;
	if (!strcmp(kind, "output"))
		return TM_Q6_K;
	if (v) {
		if (s->experts == 8)
			return TM_Q8_0;
		if (q->mix == MIX_Q2_K)
			return s->heads >= 4 * s->kv_heads ? TM_Q4_K : TM_Q3_K;
		if (q->mix == MIX_Q3_K_M)
			return layer < 2 ? TM_Q5_K : TM_Q4_K;
		return use_more_bits(layer, n) ? TM_Q6_K : q->type;
	}
	if (!strcmp(kind, "attn_k"))
		return s->experts == 8 ? TM_Q8_0 : q->type;
	if (!strcmp(kind, "ffn_down") || !strcmp(kind, "ffn_down_exps") || !strcmp(kind, "ffn_down_shexp")) {
		if (q->mix == MIX_Q2_K)
			return TM_Q3_K;
		if (q->mix == MIX_Q3_K_M)
			return layer < n / 16 ? TM_Q5_K : TM_Q4_K;
		return use_more_bits(layer, n) ? TM_Q6_K : q->type;
	}
	if (!strcmp(kind, "attn_output")) {
		if (s->experts == 8)
			return q->mix == MIX_Q5_K_M ? q->type : TM_Q5_K;
		if (q->mix == MIX_Q2_K)
			return TM_Q3_K;
		if (q->mix == MIX_Q3_K_M)
			return TM_Q4_K;
	}
	return q->type;
}

/*
 * llama-quantize's fallback for a row length that is not a whole number of
 * 256-blocks: the legacy 32-block type of about as many bits (MLA's
 * attn_k_b rows are 128 long, for instance). What still does not fit is
 * refused later (check_blocks).
 */
static int fallback_type(int type, int64_t ne0)
{
	if (ne0 % 256 == 0 || ne0 % 32)
		return type;
	switch (type) {
	case TM_Q2_K: case TM_Q3_K: return TM_Q4_0;
	case TM_Q4_K: return TM_Q5_0;
	case TM_Q5_K: return TM_Q5_1;
	case TM_Q6_K: return TM_Q8_0;
	case TM_IQ4_XS: return TM_Q4_0;	/* llama-quantize: iq4_nl, which tiermem lacks */
	default: return type;
	}
}

/* kind's type for a row length of ne0. */
static int mix_type(const struct quant *q, const struct shape *s, const char *kind, int layer, int64_t ne0)
{
	return fallback_type(mix_type_of(q, s, kind, layer), ne0);
}

static void add(struct tplan *t, int *n, const char *name, int type, enum role role,
		uint32_t n_dims, int64_t ne0, int64_t ne1, int64_t ne2)
{
	struct tplan *p = &t[(*n)++];

	snprintf(p->name, sizeof(p->name), "%s", name);
	p->type = type;
	p->role = role;
	p->n_dims = n_dims;
	p->ne[0] = ne0;
	p->ne[1] = ne1;
	p->ne[2] = ne2;
}

static int plan_capacity(const struct shape *s)
{
	return 4 + (int)(s->layers + s->nextn) * 28;
}

/* Layer l's dense FFN: gate and up (dim -> ff), down. */
static void plan_ffn(const struct shape *s, const struct quant *q, struct tplan *t, int *n, uint32_t l)
{
	int il = (int)l;
	char nm[64];

#define T(suffix) (snprintf(nm, sizeof(nm), "blk.%u." suffix, l), nm)
	add(t, n, T("ffn_gate.weight"), mix_type(q, s, "ffn_gate", il, s->dim), R_MATRIX, 2, s->dim, s->ff, 1);
	add(t, n, T("ffn_up.weight"), mix_type(q, s, "ffn_up", il, s->dim), R_MATRIX, 2, s->dim, s->ff, 1);
	add(t, n, T("ffn_down.weight"), mix_type(q, s, "ffn_down", il, s->ff), R_MATRIX, 2, s->ff, s->dim, 1);
#undef T
}

/*
 * Layer l's MoE FFN: the router (f32, as llama.cpp's quantizer leaves it), the
 * routing bias exp_probs_b if bias, the routed experts eff wide, and shared
 * experts sh wide if sh > 0.
 */
static void plan_experts(const struct shape *s, const struct quant *q, struct tplan *t, int *n, uint32_t l,
			 int64_t eff, bool bias, int64_t sh)
{
	int il = (int)l;
	char nm[64];

#define T(suffix) (snprintf(nm, sizeof(nm), "blk.%u." suffix, l), nm)
	add(t, n, T("ffn_gate_inp.weight"), TM_F32, R_ROUTER, 2, s->dim, s->experts, 1);
	if (bias)
		add(t, n, T("exp_probs_b.bias"), TM_F32, R_BIAS, 1, s->experts, 1, 1);
	add(t, n, T("ffn_gate_exps.weight"), mix_type(q, s, "ffn_gate_exps", il, s->dim), R_MATRIX, 3,
	    s->dim, eff, s->experts);
	add(t, n, T("ffn_up_exps.weight"), mix_type(q, s, "ffn_up_exps", il, s->dim), R_MATRIX, 3,
	    s->dim, eff, s->experts);
	add(t, n, T("ffn_down_exps.weight"), mix_type(q, s, "ffn_down_exps", il, eff), R_MATRIX, 3,
	    eff, s->dim, s->experts);
	if (sh) {
		add(t, n, T("ffn_gate_shexp.weight"), mix_type(q, s, "ffn_gate_shexp", il, s->dim), R_MATRIX, 2,
		    s->dim, sh, 1);
		add(t, n, T("ffn_up_shexp.weight"), mix_type(q, s, "ffn_up_shexp", il, s->dim), R_MATRIX, 2,
		    s->dim, sh, 1);
		add(t, n, T("ffn_down_shexp.weight"), mix_type(q, s, "ffn_down_shexp", il, sh), R_MATRIX, 2,
		    sh, s->dim, 1);
	}
#undef T
}

/* glm4moe's layer: biased q/k/v, optional q/k norms, post_attention_norm, dense or routed + shared experts. */
static void plan_glm4moe_layer(const struct shape *s, const struct quant *q, struct tplan *t, int *n, uint32_t l)
{
	int64_t qd = (int64_t)s->heads * s->head_dim, kvd = (int64_t)s->kv_heads * s->head_dim;
	int64_t sh = (int64_t)s->expert_ff * s->shared;
	int il = (int)l;
	char nm[64];

#define T(suffix) (snprintf(nm, sizeof(nm), "blk.%u." suffix, l), nm)
	add(t, n, T("attn_norm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
	add(t, n, T("attn_q.weight"), mix_type(q, s, "attn_q", il, s->dim), R_MATRIX, 2, s->dim, qd, 1);
	add(t, n, T("attn_k.weight"), mix_type(q, s, "attn_k", il, s->dim), R_MATRIX, 2, s->dim, kvd, 1);
	add(t, n, T("attn_v.weight"), mix_type(q, s, "attn_v", il, s->dim), R_MATRIX, 2, s->dim, kvd, 1);
	add(t, n, T("attn_q.bias"), TM_F32, R_BIAS, 1, qd, 1, 1);
	add(t, n, T("attn_k.bias"), TM_F32, R_BIAS, 1, kvd, 1, 1);
	add(t, n, T("attn_v.bias"), TM_F32, R_BIAS, 1, kvd, 1, 1);
	if (!s->no_qk_norm) {
		add(t, n, T("attn_q_norm.weight"), TM_F32, R_NORM, 1, s->head_dim, 1, 1);
		add(t, n, T("attn_k_norm.weight"), TM_F32, R_NORM, 1, s->head_dim, 1, 1);
	}
	add(t, n, T("attn_output.weight"), mix_type(q, s, "attn_output", il, qd), R_MATRIX, 2, qd, s->dim, 1);
	add(t, n, T("post_attention_norm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
	if (l < s->dense_lead)
		plan_ffn(s, q, t, n, l);
	else
		plan_experts(s, q, t, n, l, s->expert_ff, true, sh);
	if (l >= s->layers) {	/* the MTP block's own tensors */
		add(t, n, T("nextn.eh_proj.weight"), mix_type(q, s, "nextn", il, 2 * (int64_t)s->dim), R_MATRIX, 2,
		    2 * (int64_t)s->dim, s->dim, 1);
		add(t, n, T("nextn.enorm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
		add(t, n, T("nextn.hnorm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
		add(t, n, T("nextn.shared_head_norm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
	}
#undef T
}

/* deepseek2's layer: MLA, then a dense FFN for the leading layers, else routed and shared experts. */
static void plan_deepseek2_layer(const struct shape *s, const struct quant *q, struct tplan *t, int *n, uint32_t l)
{
	int64_t H = s->heads, kq = (int64_t)s->nope + s->rope, sh = (int64_t)s->expert_ff * s->shared;
	int il = (int)l;
	char nm[64];

#define T(suffix) (snprintf(nm, sizeof(nm), "blk.%u." suffix, l), nm)
	add(t, n, T("attn_norm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
	if (s->q_lora) {
		add(t, n, T("attn_q_a.weight"), mix_type(q, s, "attn_q_a", il, s->dim), R_MATRIX, 2, s->dim, s->q_lora, 1);
		add(t, n, T("attn_q_a_norm.weight"), TM_F32, R_NORM, 1, s->q_lora, 1, 1);
		add(t, n, T("attn_q_b.weight"), mix_type(q, s, "attn_q_b", il, s->q_lora), R_MATRIX, 2, s->q_lora, H * kq, 1);
	} else {
		add(t, n, T("attn_q.weight"), mix_type(q, s, "attn_q", il, s->dim), R_MATRIX, 2, s->dim, H * kq, 1);
	}
	add(t, n, T("attn_kv_a_mqa.weight"), mix_type(q, s, "attn_kv_a_mqa", il, s->dim), R_MATRIX, 2, s->dim,
	    (int64_t)s->kv_lora + s->rope, 1);
	add(t, n, T("attn_kv_a_norm.weight"), TM_F32, R_NORM, 1, s->kv_lora, 1, 1);
	if (s->mla_legacy) {
		add(t, n, T("attn_kv_b.weight"), mix_type(q, s, "attn_kv_b", il, s->kv_lora), R_KVB, 2, s->kv_lora,
		    H * (s->nope + s->v_head), 1);
	} else {
		add(t, n, T("attn_k_b.weight"), mix_type(q, s, "attn_k_b", il, s->nope), R_KVB, 3, s->nope, s->kv_lora, H);
		add(t, n, T("attn_v_b.weight"), mix_type(q, s, "attn_v_b", il, s->kv_lora), R_KVB, 3, s->kv_lora,
		    s->v_head, H);
	}
	add(t, n, T("attn_output.weight"), mix_type(q, s, "attn_output", il, H * s->v_head), R_MATRIX, 2,
	    H * s->v_head, s->dim, 1);
	add(t, n, T("ffn_norm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
	if (!s->experts || l < s->dense_lead)
		plan_ffn(s, q, t, n, l);
	else
		plan_experts(s, q, t, n, l, s->expert_ff, s->sigmoid, sh);
#undef T
}

/* Tensors in llama.cpp's names and shapes (ne[0] = input length). */
static int build_plan(const struct shape *s, const struct quant *q, struct tplan *t)
{
	int64_t qdim = (int64_t)s->heads * s->head_dim, kvdim = (int64_t)s->kv_heads * s->head_dim;
	bool moe = s->experts > 0;
	uint32_t eff = s->arch == ARCH_QWEN3MOE ? s->expert_ff : s->ff;
	char nm[64];
	int n = 0;

	add(t, &n, "token_embd.weight", mix_type(q, s, "token_embd", 0, s->dim), R_EMBD, 2, s->dim, s->vocab, 1);
	for (uint32_t l = 0; l < s->layers + s->nextn; l++) {
		int il = (int)l;

		if (s->arch == ARCH_DEEPSEEK2) {
			plan_deepseek2_layer(s, q, t, &n, l);
			continue;
		}
		if (s->arch == ARCH_GLM4MOE) {
			plan_glm4moe_layer(s, q, t, &n, l);
			continue;
		}

#define T(suffix) (snprintf(nm, sizeof(nm), "blk.%u." suffix, l), nm)
		add(t, &n, T("attn_norm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
		add(t, &n, T("attn_q.weight"), mix_type(q, s, "attn_q", il, s->dim), R_MATRIX, 2, s->dim, qdim, 1);
		add(t, &n, T("attn_k.weight"), mix_type(q, s, "attn_k", il, s->dim), R_MATRIX, 2, s->dim, kvdim, 1);
		add(t, &n, T("attn_v.weight"), mix_type(q, s, "attn_v", il, s->dim), R_MATRIX, 2, s->dim, kvdim, 1);
		add(t, &n, T("attn_output.weight"), mix_type(q, s, "attn_output", il, qdim), R_MATRIX, 2, qdim, s->dim, 1);
		if (s->arch != ARCH_LLAMA) {
			add(t, &n, T("attn_q_norm.weight"), TM_F32, R_NORM, 1, s->head_dim, 1, 1);
			add(t, &n, T("attn_k_norm.weight"), TM_F32, R_NORM, 1, s->head_dim, 1, 1);
		}
		add(t, &n, T("ffn_norm.weight"), TM_F32, R_NORM, 1, s->dim, 1, 1);
		if (!moe)
			plan_ffn(s, q, t, &n, l);
		else
			plan_experts(s, q, t, &n, l, eff, false, 0);
#undef T
	}
	add(t, &n, "output_norm.weight", TM_F32, R_NORM, 1, s->dim, 1, 1);
	add(t, &n, "output.weight", mix_type(q, s, "output", 0, s->dim), R_OUTPUT, 2, s->dim, s->vocab, 1);
	for (int i = 0; i < n; i++)
		for (int k = 0; k < q->n_ovr; k++) {
			char pat[64];

			snprintf(pat, sizeof(pat), "%.*s", (int)q->ovr_len[k], q->ovr_name[k]);
			if (t[i].role != R_NORM && t[i].role != R_BIAS && t[i].role != R_ROUTER && strstr(t[i].name, pat))
				t[i].type = q->ovr_type[k];
		}
	return n;
}

static uint64_t tensor_bytes(const struct tplan *p)
{
	return tm_row_bytes(p->type, p->ne[0]) * (uint64_t)p->ne[1] * (uint64_t)p->ne[2];
}

static uint64_t tensor_params(const struct tplan *p)
{
	return (uint64_t)p->ne[0] * (uint64_t)p->ne[1] * (uint64_t)p->ne[2];
}

/* Total bytes (or parameters) of the model with the given shape. */
static uint64_t plan_total(const struct shape *s, const struct quant *q, bool params)
{
	struct tplan *t = calloc((size_t)plan_capacity(s), sizeof(*t));
	uint64_t sum = 0;

	if (!t)
		return 0;
	int n = build_plan(s, q, t);

	for (int i = 0; i < n; i++)
		sum += params ? tensor_params(&t[i]) : tensor_bytes(&t[i]);
	free(t);
	return sum;
}

/* ---- shapes ---- */

static uint32_t round_up(uint32_t x, uint32_t a)
{
	return (x + a - 1) / a * a;
}

static double type_bits(const struct quant *q)
{
	switch (q->mix) {
	case MIX_Q4_K_M: return 4.9;
	case MIX_Q5_K_M: return 5.7;
	case MIX_Q2_K: return 3.0;
	case MIX_Q3_K_M: return 3.9;
	default: break;
	}
	const struct tm_dtype_traits *tr = tm_dtype_traits(q->type);

	return 8.0 * tr->block_bytes / tr->block_elems;
}

/* Dimensions of a model of about `params` parameters, like published ones. */
static void preset(struct shape *s, double params)
{
	static const struct { double upto; uint32_t dim, head_dim, ff; } table[] = {
		{ 30e6, 256, 64, 768 },
		{ 300e6, 768, 64, 2048 },
		{ 2.5e9, 2048, 64, 8192 },
		{ 5e9, 3072, 128, 8192 },
		{ 12e9, 4096, 128, 14336 },
		{ 1e30, 5120, 128, 17920 },
	};
	size_t i = 0;

	while (params > table[i].upto)
		i++;
	s->dim = table[i].dim;
	s->head_dim = table[i].head_dim;
	s->ff = table[i].ff;
	s->heads = s->dim / s->head_dim;
	s->kv_heads = s->heads >= 8 ? s->heads / 4 : s->heads / 2;
	s->expert_ff = round_up(s->dim * 3 / 8, 256);
	/* real vocabularies, unless they would be most of a small model */
	s->vocab = params < 30e6 ? 4096 : params < 300e6 || s->arch == ARCH_LLAMA ? 32000 : 151936;
}

static const struct {
	const char *name;
	int type;
	enum mix mix;
	uint32_t file_type;	/* llama_ftype */
} types[] = {
	{ "f32", TM_F32, MIX_NONE, 0 },
	{ "f16", TM_F16, MIX_NONE, 1 },
	{ "bf16", TM_BF16, MIX_NONE, 32 },
	{ "q8_0", TM_Q8_0, MIX_NONE, 7 },
	{ "q4_0", TM_Q4_0, MIX_NONE, 2 },
	{ "q4_K", TM_Q4_K, MIX_NONE, 14 },
	{ "q5_K", TM_Q5_K, MIX_NONE, 16 },
	{ "q6_K", TM_Q6_K, MIX_NONE, 18 },
	{ "q4_1", TM_Q4_1, MIX_NONE, 3 },
	{ "q5_0", TM_Q5_0, MIX_NONE, 8 },
	{ "q5_1", TM_Q5_1, MIX_NONE, 9 },
	{ "q3_K", TM_Q3_K, MIX_NONE, 11 },
	{ "iq4_xs", TM_IQ4_XS, MIX_NONE, 30 },
	{ "q2_K", TM_Q2_K, MIX_Q2_K, 10 },
	{ "q3_K_M", TM_Q3_K, MIX_Q3_K_M, 12 },
	{ "q4_K_M", TM_Q4_K, MIX_Q4_K_M, 15 },
	{ "q5_K_M", TM_Q5_K, MIX_Q5_K_M, 17 },
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

static void help(FILE *f)
{
	fprintf(f,
"usage: tiermem synth [options] -o OUT.gguf\n"
"Writes a GGUF model with random weights (deterministic for a seed) that\n"
"llama.cpp and tiermem load: real tensor names, shapes and metadata, and a small\n"
"real tokenizer (a SentencePiece-style vocabulary for llama, GPT-2 byte-level\n"
"BPE with merges for qwen3/qwen3moe, learned from a built-in text and padded\n"
"with filler pieces to the vocabulary size).\n"
"\n"
"  -o, --output FILE   where to write (via a temp file renamed at the end)\n"
"  --arch A            llama (default; dense, GQA), llama-moe (llama with\n"
"                      Mixtral-style experts: 8, top-2 unless --experts),\n"
"                      qwen3 (q/k norms), qwen3moe (default 8 experts top-2 for\n"
"                      small models, 64 top-8 with --size/--params), deepseek2\n"
"                      (MLA, a leading dense layer, routed + shared experts;\n"
"                      test size: 3 layers, 8 experts top-2, kv_lora_rank 256,\n"
"                      qk_nope 64, qk_rope 32, v_head 64; sized: DeepSeek-V2-Lite's\n"
"                      MLA dims, 64 experts top-6, 2 shared), glm4moe (biased\n"
"                      q/k/v, q/k norms, RoPE on half of each head, a dense\n"
"                      first layer, 8 experts top-2 + 1 shared, sigmoid routing\n"
"                      with exp_probs_b, one MTP block llama.cpp and tiermem skip)\n"
"  --type T            f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q3_K, q4_K,\n"
"                      q5_K, q6_K, iq4_xs: every matrix in T (like llama-quantize\n"
"                      --pure; iq4_xs rows that are not whole 256-blocks in q4_0);\n"
"                      norms and MoE routers f32.\n"
"                      q2_K, q3_K_M, q4_K_M, q5_K_M: llama.cpp's mixes (q6_K\n"
"                      output.weight; more bits for attn_v, ffn_down and\n"
"                      attn_output as llama-quantize picks them; with 8 experts\n"
"                      q8_0 attn_k/attn_v and q5_K attn_output). Rows that are\n"
"                      not whole 256-blocks fall back as llama-quantize does\n"
"                      (q2_K/q3_K to q4_0, q4_K to q5_0, q5_K to q5_1, q6_K to\n"
"                      q8_0). Default f32. --ftype is a synonym.\n"
"  --size BYTES        aim at a file of about this size (e.g. 64M, 2G): picks\n"
"                      published-like dimensions and the number of layers\n"
"  --params N          aim at N parameters instead (e.g. 500M, 1B, 7B)\n"
"  --dim N --layers N --heads N --kv-heads N --head-dim N --ff N --vocab N\n"
"  --experts N --experts-used N --expert-ff N --ctx N\n"
"                      set one dimension (wins over --size/--params); --experts\n"
"                      with --arch llama makes it MoE (top-2 by default); an\n"
"                      expert's ff is --ff for llama, --expert-ff for qwen3moe\n"
"  deepseek2 only:\n"
"  --mla split|legacy  attn_k_b/attn_v_b (llama.cpp's current layout, default)\n"
"                      or the older unsplit attn_kv_b\n"
"  --q-lora-rank N --kv-lora-rank N --qk-nope N --qk-rope N --v-head N\n"
"  --dense-layers N --shared-experts N --expert-groups N --expert-groups-used N\n"
"  --gating softmax|sigmoid  sigmoid: DeepSeek-V3/Kimi-K2 routing (exp_probs_b\n"
"                      bias, weights normalised and scaled by 2.5); default softmax\n"
"  --yarn F            YaRN RoPE scaling by F (DeepSeek-V2's mscale 0.707)\n"
"  glm4moe only: --qk-norm yes|no (default yes), --nextn N (MTP blocks, default 1),\n"
"  --qk-rope N (RoPE dims per head, default half), --dense-layers N, --shared-experts N\n"
"  --tensor-type NAME=TYPE  matrices whose name contains NAME in TYPE (as\n"
"                      llama-quantize's; e.g. attn_k_b=f32), up to 8 times\n"
"  --seed N            random seed (default 1)\n"
"  --dry-run           print the shape and size, write nothing\n"
"  --header-only       write the metadata and tensor table only, no tensor data: a\n"
"                      file of a few MB that `tiermem plan` (not run) reads, for\n"
"                      models that cannot exist here (e.g. a 1T-parameter MoE)\n"
"  -q, --quiet         no progress on stderr\n"
"  --expert-trace      write a synthetic MoE routing trace instead of a model\n"
"                      (tiermem synth --expert-trace --help)\n"
"\n"
"Without --size/--params: a test model of a few MB (dim 256, 2 layers, 4 heads,\n"
"2 KV heads, ff 768 (256 per expert for MoE), vocab 1024). Matrix row lengths\n"
"must be multiples of the type's block (32, or 256 for the K types). Progress\n"
"goes to stderr for files over 256 MiB; the last line on stdout describes the\n"
"file written.\n");
}

static int parse_count(const char *opt, const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end), mul = 1;

	if (end == s || v <= 0)
		goto bad;
	switch (*end) {
	case 'k': case 'K': mul = 1e3; end++; break;
	case 'm': case 'M': mul = 1e6; end++; break;
	case 'b': case 'B': case 'g': case 'G': mul = 1e9; end++; break;
	case 't': case 'T': mul = 1e12; end++; break;
	}
	if (*end)
		goto bad;
	*out = v * mul;
	return 0;
bad:
	fprintf(stderr, "tiermem: %s: '%s' is not a count (examples: 500M, 1B, 7B)\n", opt, s);
	return -1;
}

#define O_SETMAX 24

struct opts {
	const char *out;
	struct shape s;
	struct quant q;
	uint32_t file_type;
	uint64_t seed, size;
	double params;
	bool dry, quiet, moe_alias, header_only;
	const char *ds2_opt;	/* a deepseek2-only option given */
	const char *glm_opt;	/* a glm4moe-only option given */
	long set[O_SETMAX];	/* explicit dimensions, -1 when not given */
};

enum { O_DIM, O_LAYERS, O_HEADS, O_KV, O_HD, O_FF, O_VOCAB, O_EXP, O_EXPU, O_EFF, O_CTX,
       O_QLORA, O_KVLORA, O_NOPE, O_ROPE, O_VHEAD, O_DENSE, O_SHARED, O_GROUPS, O_GUSED, O_NEXTN, O_N };
static const char *const dim_opts[O_N] = {
	"--dim", "--layers", "--heads", "--kv-heads", "--head-dim", "--ff", "--vocab",
	"--experts", "--experts-used", "--expert-ff", "--ctx",
	"--q-lora-rank", "--kv-lora-rank", "--qk-nope", "--qk-rope", "--v-head", "--dense-layers",
	"--shared-experts", "--expert-groups", "--expert-groups-used", "--nextn",
};
/* deepseek2-only dimensions: the others are refused with them */
#define DS2_OPTS_FIRST O_QLORA

static int parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->seed = 1;
	o->q.type = TM_F32;
	o->q.name = "f32";
	for (int i = 0; i < O_N; i++)
		o->set[i] = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		long l;
		int k;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			help(stdout);
			exit(0);
		}
		if (!strcmp(a, "--dry-run")) {
			o->dry = true;
			continue;
		}
		if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			o->quiet = true;
			continue;
		}
		if (!strcmp(a, "--header-only")) {
			o->header_only = true;
			continue;
		}
		for (k = 0; k < O_N; k++)
			if (!strcmp(a, dim_opts[k]))
				break;
		if (!v)
			return usage_error(CMD, "%s needs a value (see --help)", a);
		i++;
		if (k < O_N) {
			if (parse_long(a, v, k == O_EXP || k == O_EXPU || k == O_QLORA || k == O_DENSE ||
					   k == O_SHARED || k == O_GROUPS || k == O_GUSED || k == O_NEXTN ? 0 : 1, 1L << 24, &l))
				return EXIT_USAGE;
			o->set[k] = l;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			o->out = v;
		} else if (!strcmp(a, "--mla")) {
			if (strcmp(v, "split") && strcmp(v, "legacy"))
				return usage_error(CMD, "--mla: '%s' is not split or legacy", v);
			o->s.mla_legacy = !strcmp(v, "legacy");
			o->ds2_opt = a;
		} else if (!strcmp(a, "--qk-norm")) {
			if (strcmp(v, "yes") && strcmp(v, "no"))
				return usage_error(CMD, "--qk-norm: '%s' is not yes or no", v);
			o->s.no_qk_norm = !strcmp(v, "no");
			o->glm_opt = a;
		} else if (!strcmp(a, "--gating")) {
			if (strcmp(v, "softmax") && strcmp(v, "sigmoid"))
				return usage_error(CMD, "--gating: '%s' is not softmax or sigmoid", v);
			o->s.sigmoid = !strcmp(v, "sigmoid");
			o->ds2_opt = a;
		} else if (!strcmp(a, "--yarn")) {
			char *end;

			o->s.yarn = strtof(v, &end);
			if (end == v || *end || !(o->s.yarn > 1.0f) || o->s.yarn > 1024.0f)
				return usage_error(CMD, "--yarn: '%s' is not a scaling factor in (1, 1024]", v);
			o->ds2_opt = a;
		} else if (!strcmp(a, "--arch")) {
			if (!strcmp(v, "llama-moe") || !strcmp(v, "mixtral")) {
				o->s.arch = ARCH_LLAMA;
				o->moe_alias = true;
				continue;
			}
			for (k = 0; k < NARCH && strcmp(v, arch_names[k]); k++)
				;
			if (k == NARCH)
				return usage_error(CMD, "--arch: unknown architecture '%s' (llama, llama-moe, qwen3, qwen3moe, deepseek2)", v);
			o->s.arch = (enum arch)k;
		} else if (!strcmp(a, "--type") || !strcmp(a, "--ftype")) {
			size_t t;

			for (t = 0; t < NTYPES && strcasecmp(v, types[t].name); t++)
				;
			if (t == NTYPES)
				return usage_error(CMD, "%s: unknown type '%s' (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q3_K q4_K q5_K q6_K iq4_xs q2_K q3_K_M q4_K_M q5_K_M)", a, v);
			o->q.type = types[t].type;
			o->q.mix = types[t].mix;
			o->q.name = types[t].name;
			o->file_type = types[t].file_type;
		} else if (!strcmp(a, "--tensor-type")) {
			const char *eq = strchr(v, '=');
			size_t t;

			if (!eq || eq == v || eq - v > 60 || o->q.n_ovr == MAX_OVERRIDES)
				return usage_error(CMD, "--tensor-type: '%s' is not NAME=TYPE (at most %d)", v, MAX_OVERRIDES);
			for (t = 0; t < NTYPES && (types[t].mix != MIX_NONE || strcasecmp(eq + 1, types[t].name)); t++)
				;
			if (t == NTYPES)
				return usage_error(CMD, "--tensor-type: unknown type '%s' (a plain type: f32 f16 q8_0 q4_K ...)", eq + 1);
			o->q.ovr_name[o->q.n_ovr] = v;
			o->q.ovr_len[o->q.n_ovr] = (size_t)(eq - v);
			o->q.ovr_type[o->q.n_ovr++] = types[t].type;
		} else if (!strcmp(a, "--size")) {
			if (parse_size(a, v, &o->size))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--params")) {
			if (parse_count(a, v, &o->params))
				return EXIT_USAGE;
		} else if (!strcmp(a, "--seed")) {
			if (parse_long(a, v, 0, __LONG_MAX__, &l))
				return EXIT_USAGE;
			o->seed = (uint64_t)l;
		} else {
			return usage_error(CMD, "unknown option '%s' (see --help)", a);
		}
	}
	return 0;
}

static void apply_explicit(struct shape *s, const long *set)
{
	uint32_t *field[O_N] = {
		&s->dim, &s->layers, &s->heads, &s->kv_heads, &s->head_dim, &s->ff, &s->vocab,
		&s->experts, &s->experts_used, &s->expert_ff, &s->ctx,
		&s->q_lora, &s->kv_lora, &s->nope, &s->rope, &s->v_head, &s->dense_lead, &s->shared,
		&s->groups, &s->groups_used, &s->nextn,
	};

	for (int k = 0; k < O_N; k++)
		if (set[k] >= 0)
			*field[k] = (uint32_t)set[k];
}

/* Fill in the shape: preset from size/params, explicit options, consistency checks. */
static int make_shape(struct opts *o)
{
	struct shape *s = &o->s;
	bool sized = o->size || o->params > 0;

	if (o->size && o->params > 0)
		return usage_error(CMD, "--size and --params: give one");
	if (sized) {
		double p = o->params > 0 ? o->params : (double)o->size * 8 / type_bits(&o->q);

		/* MoE models have the width of a dense model several times smaller */
		if (s->arch == ARCH_QWEN3MOE || s->arch == ARCH_DEEPSEEK2 || s->arch == ARCH_GLM4MOE)
			p /= 8;
		else if (o->moe_alias || o->set[O_EXP] > 0)
			p /= 6;
		preset(s, p);
		s->layers = 1;
	} else {
		s->dim = 256;
		s->layers = 2;
		s->heads = 4;
		s->kv_heads = 2;
		s->head_dim = 64;
		s->ff = 768;
		s->vocab = 1024;
		s->expert_ff = 256;
	}
	s->ctx = 4096;
	if (s->arch == ARCH_DEEPSEEK2) {
		/* test size: MLA of DeepSeek-V2-Lite's proportions; sized: its dimensions */
		s->heads = sized ? s->dim / 128 : 4;
		s->kv_lora = sized ? 512 : 256;
		s->nope = sized ? 128 : 64;
		s->rope = sized ? 64 : 32;
		s->v_head = sized ? 128 : 64;
		s->experts = sized ? 64 : 8;
		s->experts_used = sized ? 6 : 2;
		s->shared = sized ? 2 : 1;
		s->dense_lead = 1;
		if (!sized)
			s->layers = 3;
	}
	if (s->arch == ARCH_GLM4MOE) {
		/* GLM-4.5-Air's proportions: partial RoPE on half of each head, one MTP block */
		s->experts = sized ? 64 : 8;
		s->experts_used = sized ? 8 : 2;
		s->shared = 1;
		s->dense_lead = 1;
		s->nextn = 1;
		if (!sized)
			s->layers = 3;
	}
	for (int k = DS2_OPTS_FIRST; k < O_N; k++) {
		bool glm_ok = k == O_ROPE || k == O_DENSE || k == O_SHARED || k == O_NEXTN;

		if (o->set[k] >= 0 && s->arch != ARCH_DEEPSEEK2 && !(glm_ok && s->arch == ARCH_GLM4MOE))
			return usage_error(CMD, "%s is for --arch %s", dim_opts[k], glm_ok ? "deepseek2 or glm4moe" : "deepseek2");
		if (k == O_NEXTN && o->set[k] >= 0 && s->arch != ARCH_GLM4MOE)
			return usage_error(CMD, "%s is for --arch glm4moe", dim_opts[k]);
	}
	if (o->glm_opt && s->arch != ARCH_GLM4MOE)
		return usage_error(CMD, "%s is for --arch glm4moe", o->glm_opt);
	if (o->ds2_opt && s->arch != ARCH_DEEPSEEK2)
		return usage_error(CMD, "%s is for --arch deepseek2", o->ds2_opt);
	if (o->moe_alias || s->arch == ARCH_QWEN3MOE) {
		bool big = sized && s->arch == ARCH_QWEN3MOE;

		s->experts = big ? 64 : 8;
		s->experts_used = big ? 8 : 2;
		if (!sized && o->moe_alias)
			s->ff = 256;	/* eight experts of the dense ff would make the test model 5x bigger */
	}
	/* dimensions that others derive from, first */
	bool reshaped = o->set[O_DIM] >= 0 || o->set[O_HEADS] >= 0 || o->set[O_HD] >= 0;

	if (o->set[O_DIM] >= 0 && o->set[O_HD] < 0 && o->set[O_HEADS] < 0)
		s->heads = (uint32_t)o->set[O_DIM] / s->head_dim ? (uint32_t)o->set[O_DIM] / s->head_dim : 1;
	apply_explicit(s, o->set);
	if (s->arch == ARCH_DEEPSEEK2) {
		s->head_dim = s->nope + s->rope;	/* shown; MLA has its own dims */
		s->kv_heads = s->heads;
		if (s->rope % 2 || !s->rope)
			return usage_error(CMD, "--qk-rope %u must be even (RoPE rotates pairs)", s->rope);
		if (s->experts && s->groups && (s->groups >= s->experts || s->experts % s->groups ||
						s->groups_used < 1 || s->groups_used >= s->groups ||
						s->groups_used * (s->experts / s->groups) < s->experts_used))
			return usage_error(CMD, "--expert-groups %u / --expert-groups-used %u do not fit %u experts, %u used",
					   s->groups, s->groups_used, s->experts, s->experts_used);
		if (s->dense_lead > s->layers)
			return usage_error(CMD, "--dense-layers %u exceeds --layers %u", s->dense_lead, s->layers);
	} else if (o->set[O_HD] < 0) {
		if (s->dim % s->heads)
			return usage_error(CMD, "--dim %u is not a multiple of --heads %u", s->dim, s->heads);
		s->head_dim = s->dim / s->heads;
	}
	if (o->set[O_KV] < 0 && reshaped)
		s->kv_heads = s->heads % 2 ? s->heads : s->heads / 2;

	if (s->arch == ARCH_QWEN3 && s->experts)
		return usage_error(CMD, "--experts: qwen3 is dense; use --arch qwen3moe");
	if (s->arch == ARCH_QWEN3MOE && !s->experts)
		return usage_error(CMD, "--experts: qwen3moe needs at least one expert");
	if (s->experts && o->set[O_EXPU] < 0 && !s->experts_used)
		s->experts_used = s->experts < 2 ? s->experts : 2;
	if (s->experts && (s->experts_used < 1 || s->experts_used > s->experts))
		return usage_error(CMD, "--experts-used %u must be in 1..%u", s->experts_used, s->experts);
	if (!s->experts)
		s->experts_used = 0;
	if (s->arch == ARCH_GLM4MOE) {
		if (o->set[O_ROPE] < 0)
			s->rope = s->head_dim / 2;
		if (s->rope % 2 || !s->rope || s->rope > s->head_dim)
			return usage_error(CMD, "--qk-rope %u must be even and at most the head size %u", s->rope, s->head_dim);
		if (!s->experts)
			return usage_error(CMD, "--experts: glm4moe needs at least one expert");
		if (s->dense_lead > s->layers)
			return usage_error(CMD, "--dense-layers %u exceeds --layers %u", s->dense_lead, s->layers);
	}
	if (s->kv_heads > s->heads || s->heads % s->kv_heads)
		return usage_error(CMD, "--kv-heads %u must divide --heads %u", s->kv_heads, s->heads);
	if (s->head_dim % 2)
		return usage_error(CMD, "--head-dim %u must be even (RoPE rotates pairs)", s->head_dim);
	uint32_t vmin = synth_vocab_min(s->arch == ARCH_LLAMA ? SYNTH_VOCAB_SPM : SYNTH_VOCAB_GPT2);

	if (s->vocab < vmin)
		return usage_error(CMD, "--vocab %u: this tokenizer needs at least %u", s->vocab, vmin);

	/* Solve the layer count for the size asked, unless given. */
	if (sized && o->set[O_LAYERS] < 0) {
		bool by_params = o->params > 0;
		double target = by_params ? o->params : (double)o->size;

		s->layers = 1;
		double one = (double)plan_total(s, &o->q, by_params);

		s->layers = 2;
		double per = (double)plan_total(s, &o->q, by_params) - one;
		double l = (target - (one - per)) / per;

		s->layers = l < 1 ? 1 : l > 4096 ? 4096 : (uint32_t)(l + 0.5);
		/* mixes give some layers more bits depending on the count: settle it exactly */
		while (s->layers > 1 && (double)plan_total(s, &o->q, by_params) > target) {
			s->layers--;
			if ((double)plan_total(s, &o->q, by_params) <= target) {
				/* keep whichever of the two is nearer */
				s->layers++;
				double over = (double)plan_total(s, &o->q, by_params) - target;

				s->layers--;
				if (over < target - (double)plan_total(s, &o->q, by_params))
					s->layers++;
				break;
			}
		}
	}
	return 0;
}

static int check_blocks(const struct tplan *t, int n)
{
	for (int i = 0; i < n; i++) {
		const struct tm_dtype_traits *tr = tm_dtype_traits(t[i].type);

		if (t[i].ne[0] % tr->block_elems)
			return usage_error(CMD, "%s: row length %lld is not a multiple of %s's block of %d (choose dimensions that are)",
					   t[i].name, (long long)t[i].ne[0], tr->name, tr->block_elems);
	}
	return 0;
}

/*
 * deepseek2's keys as llama.cpp's converter writes them: the split MLA
 * layout's key/value length are the latent cache row's, with the per-head
 * sizes in *_mla; an older (legacy) file has only the per-head sizes.
 */
static int write_meta_deepseek2(struct tm_gguf_writer *w, const struct shape *s)
{
	const char *a = "deepseek2";
	char key[96];
	int err = 0;

#define K(suffix) (snprintf(key, sizeof(key), "%s." suffix, a), key)
	err = err ?: tm_gguf_writer_set_u32(w, K("rope.dimension_count"), s->rope);
	err = err ?: tm_gguf_writer_set_u32(w, K("attention.q_lora_rank"), s->q_lora);
	err = err ?: tm_gguf_writer_set_u32(w, K("attention.kv_lora_rank"), s->kv_lora);
	if (s->mla_legacy) {
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.key_length"), s->nope + s->rope);
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.value_length"), s->v_head);
	} else {
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.key_length"), s->kv_lora + s->rope);
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.value_length"), s->kv_lora);
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.key_length_mla"), s->nope + s->rope);
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.value_length_mla"), s->v_head);
	}
	err = err ?: tm_gguf_writer_set_u32(w, K("leading_dense_block_count"), s->experts ? s->dense_lead : s->layers);
	/* llama.cpp reads these two even for a dense deepseek2 */
	err = err ?: tm_gguf_writer_set_u32(w, K("expert_shared_count"), s->experts ? s->shared : 0);
	if (!s->experts)
		err = err ?: tm_gguf_writer_set_u32(w, K("expert_feed_forward_length"), s->expert_ff);
	if (s->experts) {
		/* DeepSeek-V3 / Kimi-K2: sigmoid, bias, normalised and scaled; V2: softmax */
		err = err ?: tm_gguf_writer_set_u32(w, K("expert_gating_func"), s->sigmoid ? 2 : 1);
		err = err ?: tm_gguf_writer_set_bool(w, K("expert_weights_norm"), s->sigmoid);
		err = err ?: tm_gguf_writer_set_f32(w, K("expert_weights_scale"), s->sigmoid ? 2.5f : 1.0f);
		if (s->groups) {
			err = err ?: tm_gguf_writer_set_u32(w, K("expert_group_count"), s->groups);
			err = err ?: tm_gguf_writer_set_u32(w, K("expert_group_used_count"), s->groups_used);
		}
	}
	if (s->yarn > 0.0f) {
		uint32_t orig = (uint32_t)(s->ctx / s->yarn);

		err = err ?: tm_gguf_writer_set_str(w, K("rope.scaling.type"), "yarn");
		err = err ?: tm_gguf_writer_set_f32(w, K("rope.scaling.factor"), s->yarn);
		err = err ?: tm_gguf_writer_set_u32(w, K("rope.scaling.original_context_length"), orig > 16 ? orig : 16);
		/* 0.1 * mscale_all_dim, DeepSeek-V2's 0.707 */
		err = err ?: tm_gguf_writer_set_f32(w, K("rope.scaling.yarn_log_multiplier"), 0.0707f);
	}
#undef K
	return err;
}

static int write_meta(struct tm_gguf_writer *w, const struct opts *o)
{
	const struct shape *s = &o->s;
	const char *a = arch_names[s->arch];
	char key[96], name[128];
	int err = 0;

#define K(suffix) (snprintf(key, sizeof(key), "%s." suffix, a), key)
	snprintf(name, sizeof(name), "tiermem synth %s%s %s seed %llu", a,
		 s->arch == ARCH_LLAMA && s->experts ? "-moe" : "",
		 o->q.name,
		 (unsigned long long)o->seed);
	err = err ?: tm_gguf_writer_set_str(w, "general.architecture", a);
	err = err ?: tm_gguf_writer_set_str(w, "general.name", name);
	err = err ?: tm_gguf_writer_set_u32(w, "general.file_type", o->file_type);
	err = err ?: tm_gguf_writer_set_u32(w, "general.quantization_version", 2);
	err = err ?: tm_gguf_writer_set_u32(w, K("context_length"), s->ctx);
	err = err ?: tm_gguf_writer_set_u32(w, K("embedding_length"), s->dim);
	err = err ?: tm_gguf_writer_set_u32(w, K("block_count"), s->layers + s->nextn);
	err = err ?: tm_gguf_writer_set_u32(w, K("feed_forward_length"), s->ff);
	err = err ?: tm_gguf_writer_set_u32(w, K("attention.head_count"), s->heads);
	err = err ?: tm_gguf_writer_set_u32(w, K("attention.head_count_kv"),
					   s->arch == ARCH_DEEPSEEK2 && !s->mla_legacy ? 1 : s->kv_heads);
	err = err ?: tm_gguf_writer_set_f32(w, K("attention.layer_norm_rms_epsilon"),
					   s->arch == ARCH_LLAMA ? 1e-5f : 1e-6f);
	err = err ?: tm_gguf_writer_set_f32(w, K("rope.freq_base"),
					   s->arch == ARCH_LLAMA || s->arch == ARCH_DEEPSEEK2 ? 10000.0f : 1000000.0f);
	err = err ?: tm_gguf_writer_set_u32(w, K("vocab_size"), s->vocab);
	if (s->arch == ARCH_DEEPSEEK2) {
		err = err ?: write_meta_deepseek2(w, s);
	} else if (s->arch == ARCH_GLM4MOE) {
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.key_length"), s->head_dim);
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.value_length"), s->head_dim);
		err = err ?: tm_gguf_writer_set_u32(w, K("rope.dimension_count"), s->rope);
		err = err ?: tm_gguf_writer_set_u32(w, K("nextn_predict_layers"), s->nextn);
		err = err ?: tm_gguf_writer_set_u32(w, K("leading_dense_block_count"), s->dense_lead);
		err = err ?: tm_gguf_writer_set_u32(w, K("expert_shared_count"), s->shared);
		err = err ?: tm_gguf_writer_set_u32(w, K("expert_gating_func"), 2);
		err = err ?: tm_gguf_writer_set_bool(w, K("expert_weights_norm"), true);
		err = err ?: tm_gguf_writer_set_f32(w, K("expert_weights_scale"), 2.5f);
	} else if (s->arch == ARCH_LLAMA) {
		err = err ?: tm_gguf_writer_set_u32(w, K("rope.dimension_count"), s->head_dim);
	} else {
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.key_length"), s->head_dim);
		err = err ?: tm_gguf_writer_set_u32(w, K("attention.value_length"), s->head_dim);
	}
	if (s->experts) {
		err = err ?: tm_gguf_writer_set_u32(w, K("expert_count"), s->experts);
		err = err ?: tm_gguf_writer_set_u32(w, K("expert_used_count"), s->experts_used);
		if (s->arch == ARCH_QWEN3MOE || s->arch == ARCH_DEEPSEEK2 || s->arch == ARCH_GLM4MOE)
			err = err ?: tm_gguf_writer_set_u32(w, K("expert_feed_forward_length"), s->expert_ff);
	}
#undef K
	err = err ?: synth_vocab_write(w, s->arch == ARCH_LLAMA ? SYNTH_VOCAB_SPM : SYNTH_VOCAB_GPT2, s->vocab);
	return err;
}

static float role_rms(const struct tplan *p, const struct shape *s)
{
	switch (p->role) {
	case R_EMBD: return 1.0f;
	case R_OUTPUT: return 2.5f / sqrtf((float)s->dim);
	case R_ROUTER: return 2.0f / sqrtf((float)s->dim);
	case R_NORM: return 1.0f;
	default: return 1.0f / sqrtf((float)p->ne[0]);
	}
}

/* Interrupted: remove the partial temp file (unlink is async-signal-safe). */
static const char *volatile partial;

static void on_signal(int sig)
{
	if (partial)
		unlink(partial);
	signal(sig, SIG_DFL);
	raise(sig);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * MLA's decompression in float types: one set of values per layer (drawn as
 * attn_kv_b's rows: per head qk_nope key rows then v_head value rows, each
 * kv_lora long), written in whichever layout the file has, so a split and a
 * legacy file of the same seed are the same model (llama.cpp's converter
 * splits attn_kv_b the same way, transposing the key part).
 */
static int gen_kvb(const struct opts *o, const struct tplan *p, uint8_t *dst)
{
	float *out = (float *)(void *)dst;	/* dst holds a float per element */
	const struct shape *s = &o->s;
	int64_t H = s->heads, R = s->kv_lora, per = (int64_t)s->nope + s->v_head;
	float *kvb = malloc(sizeof(float) * (size_t)(H * per * R));
	const float a = 1.7320508f / sqrtf((float)R);
	char seed_name[64];
	unsigned int l = 0;
	struct rng r;
	int64_t i = 0;

	if (!kvb)
		return tm_err(-ENOMEM, "out of memory");
	sscanf(p->name, "blk.%u.", &l);
	snprintf(seed_name, sizeof(seed_name), "blk.%u.attn_kv_b.weight", l);
	rng_seed(&r, o->seed, seed_name);
	for (int64_t k = 0; k < H * per * R; k++)
		kvb[k] = a * rng_sym(&r);
	for (int64_t h = 0; h < H; h++) {
		const float *blk = kvb + h * per * R;

		if (strstr(p->name, "attn_kv_b")) {
			for (int64_t k = 0; k < per * R; k++)
				out[i++] = blk[k];
		} else if (strstr(p->name, "attn_k_b")) {
			/* [h][row r of the latent][col j of nope] = key row j, element r */
			for (int64_t rr = 0; rr < R; rr++)
				for (int64_t j = 0; j < s->nope; j++)
					out[i++] = blk[j * R + rr];
		} else {
			for (int64_t k = 0; k < (int64_t)s->v_head * R; k++)
				out[i++] = blk[s->nope * R + k];
		}
	}
	if (p->type == TM_F16) {
		for (int64_t k = 0; k < i; k++) {
			uint16_t h = tm_f32_to_f16(out[k]);

			memcpy(dst + 2 * k, &h, 2);	/* in place: byte 2k is behind float k */
		}
	}
	free(kvb);
	return 0;
}

static int write_data(struct tm_gguf_writer *w, const struct opts *o, const struct tplan *t, int n)
{
	const size_t chunk = 8u << 20;
	uint8_t *buf = malloc(chunk);
	uint64_t total = tm_gguf_writer_total_bytes(w), done = 0;
	/* the bar only on a terminal (a log gets the closing line alone) */
	bool big = !o->quiet && total > (256ull << 20), progress = big && isatty(STDERR_FILENO);
	double t0 = now(), last = t0;
	int err = 0;

	if (!buf)
		return tm_err(-ENOMEM, "out of memory");
	for (int i = 0; i < n && !err; i++) {
		const struct tplan *p = &t[i];
		size_t row = tm_row_bytes(p->type, p->ne[0]);
		int64_t rows = p->ne[1] * p->ne[2], per = (int64_t)(chunk / row);
		float rms = role_rms(p, &o->s);
		struct rng r;

		if (per < 1)
			per = 1;	/* a row longer than the chunk: never with these shapes */
		if (p->role == R_KVB && (p->type == TM_F32 || p->type == TM_F16)) {
			uint8_t *all = malloc(sizeof(float) * (size_t)(p->ne[0] * rows));

			err = all ? gen_kvb(o, p, all) : tm_err(-ENOMEM, "out of memory");
			err = err ?: tm_gguf_writer_data(w, all, (size_t)rows * row);
			done += (uint64_t)rows * row;
			free(all);
			continue;
		}
		rng_seed(&r, o->seed, p->name);
		for (int64_t r0 = 0; r0 < rows && !err; r0 += per) {
			int64_t k = rows - r0 < per ? rows - r0 : per;

			gen_rows(&r, p->type, buf, k, p->ne[0], rms, p->role);
			err = tm_gguf_writer_data(w, buf, (size_t)k * row);
			done += (uint64_t)k * row;
			if (progress && now() - last > 1.0) {
				last = now();
				fprintf(stderr, "\rsynth: %.2f / %.2f GiB (%.0f%%), %.0f MiB/s   ",
					done / 1073741824.0, total / 1073741824.0, 100.0 * done / total,
					done / 1048576.0 / (last - t0));
			}
		}
	}
	if (big)
		fprintf(stderr, "%ssynth: %.2f GiB in %.1f s%s\n", progress ? "\r" : "", done / 1073741824.0,
			now() - t0, progress ? "                              " : "");
	free(buf);
	return err;
}

int cmd_synth(int argc, char **argv)
{
	struct opts o;
	struct tplan *t = NULL;
	struct tm_gguf_writer *w = NULL;
	int n, rc, err;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--expert-trace"))
			return cmd_synth_trace(argc, argv);
	if ((rc = parse_opts(argc, argv, &o)))
		return rc;
	if (!o.out && !o.dry)
		return usage_error(CMD, "no output file: -o OUT.gguf (see --help)");
	if ((rc = make_shape(&o)))
		return rc;
	t = calloc((size_t)plan_capacity(&o.s), sizeof(*t));
	if (!t)
		return run_error(CMD, "out of memory");
	n = build_plan(&o.s, &o.q, t);
	if ((rc = check_blocks(t, n))) {
		free(t);
		return rc;
	}
	uint64_t bytes = 0, params = 0;

	for (int i = 0; i < n; i++) {
		bytes += tensor_bytes(&t[i]);
		params += tensor_params(&t[i]);
	}
	const struct shape *s = &o.s;
	char desc[512];

	snprintf(desc, sizeof(desc),
		 "%s: %s%s, %u layers, dim %u, %u heads (%u kv, head dim %u), ff %u, vocab %u%s, %s, %.3g M params, %.1f MiB of weights",
		 o.dry ? "would write" : o.out, arch_names[s->arch], s->arch == ARCH_LLAMA && s->experts ? " (moe)" : "",
		 s->layers, s->dim, s->heads, s->kv_heads, s->head_dim, s->ff, s->vocab, "",
		 o.q.name,
		 params / 1e6, bytes / 1048576.0);
	if (s->experts) {
		size_t l = strlen(desc);

		snprintf(desc + l, sizeof(desc) - l, ", %u experts (top %u, ff %u)", s->experts, s->experts_used,
			 s->arch == ARCH_QWEN3MOE || s->arch == ARCH_DEEPSEEK2 || s->arch == ARCH_GLM4MOE ?
			 s->expert_ff : s->ff);
	}
	if (o.header_only) {
		size_t l = strlen(desc);

		snprintf(desc + l, sizeof(desc) - l, "; header only (no tensor data)");
	}
	if (o.dry) {
		printf("%s\n", desc);
		free(t);
		return 0;
	}
	err = tm_gguf_writer_new(&w, 32);
	err = err ?: write_meta(w, &o);
	for (int i = 0; !err && i < n; i++)
		err = tm_gguf_writer_add_tensor(w, t[i].name, (uint32_t)t[i].type, t[i].n_dims, t[i].ne);
	err = err ?: tm_gguf_writer_begin(w, o.out);
	if (!err) {
		partial = tm_gguf_writer_temp_path(w);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
	}
	if (o.header_only)
		err = err ?: tm_gguf_writer_finish_header(w);
	else
		err = err ?: write_data(w, &o, t, n) ?: tm_gguf_writer_finish(w);
	partial = NULL;
	tm_gguf_writer_free(w);
	free(t);
	if (err)
		return run_error(CMD, "%s", tm_strerror());
	printf("%s\n", desc);
	return 0;
}
