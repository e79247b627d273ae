// SPDX-License-Identifier: MIT
/*
 * From a parsed GGUF to a tm_model: hyperparameters from the metadata,
 * tensor pointers into the mapping, and a check of every shape and type up
 * front so the forward pass never meets a tensor it cannot run.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "tiermem/error.h"
#include "tiermem/model.h"

static const struct {
	const char *name;
	enum tm_arch arch;
	int rope_mode;
	bool qk_norm, moe_always;
} archs[] = {
	{ "llama", TM_ARCH_LLAMA, TM_ROPE_NORM, false, false },
	{ "qwen3", TM_ARCH_QWEN3, TM_ROPE_NEOX, true, false },
	{ "qwen3moe", TM_ARCH_QWEN3MOE, TM_ROPE_NEOX, true, true },
	{ "deepseek2", TM_ARCH_DEEPSEEK2, TM_ROPE_NORM, false, false },
	{ "glm4moe", TM_ARCH_GLM4MOE, TM_ROPE_NEOX, false, true },
};

struct loader {
	struct tm_model *m;
	const struct tm_gguf *g;
	const struct tm_tensor_src *src;	/* NULL: the GGUF's own data, mapping 0 */
	const char *arch;
	bool *used;		/* per GGUF tensor: bound to a weight */
};

/* {arch}.suffix as an int in [lo, hi]; -ENOENT if absent and not required. */
static int get_int(struct loader *l, const char *suffix, bool required, long lo, long hi, int *out)
{
	char key[128];
	uint32_t v;
	int err;

	snprintf(key, sizeof(key), "%s.%s", l->arch, suffix);
	err = tm_gguf_get_u32(l->g, key, &v);
	if (err == -ENOENT) {
		if (required)
			return tm_err(-EINVAL, "metadata key '%s' is missing", key);
		return err;
	}
	if (err)
		return err;
	if (v < lo || v > hi)
		return tm_err(-EINVAL, "metadata key '%s' = %u is out of range [%ld, %ld]", key, v, lo, hi);
	*out = (int)v;
	return 0;
}

static int get_float(struct loader *l, const char *suffix, bool required, float *out)
{
	char key[128];
	int err;

	snprintf(key, sizeof(key), "%s.%s", l->arch, suffix);
	err = tm_gguf_get_f32(l->g, key, out);
	if (err == -ENOENT && required)
		return tm_err(-EINVAL, "metadata key '%s' is missing", key);
	if (!err && !isfinite(*out))
		return tm_err(-EINVAL, "metadata key '%s' is not a finite number", key);
	return err;
}

static int get_bool(struct loader *l, const char *suffix, bool *out)
{
	char key[128];

	snprintf(key, sizeof(key), "%s.%s", l->arch, suffix);
	return tm_gguf_get_bool(l->g, key, out);
}

static int opt(int err)
{
	return err == -ENOENT ? 0 : err;
}

enum {
	OPTIONAL = 1 << 0,
	VECTOR = 1 << 1,	/* a norm or frequency vector: f32 only, as llama.cpp writes them */
};

/*
 * Bind one tensor to w after checking that it exists (unless OPTIONAL) and has
 * exactly the dims ne0 x ne1 x ne2 (1 where unused) and a type we run.
 */
static int bind(struct loader *l, struct tm_weight *w, unsigned int flags, long ne0, long ne1,
		long ne2, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static int bind(struct loader *l, struct tm_weight *w, unsigned int flags, long ne0, long ne1,
		long ne2, const char *fmt, ...)
{
	const struct tm_dtype_traits *tr;
	const struct tm_gguf_tensor *t;
	int64_t want[4] = { ne0, ne1, ne2, 1 };
	bool held = true;
	va_list ap;

	memset(w, 0, sizeof(*w));
	va_start(ap, fmt);
	vsnprintf(w->name, sizeof(w->name), fmt, ap);
	va_end(ap);
	t = tm_gguf_tensor(l->g, w->name);
	if (!t) {
		if (flags & OPTIONAL)
			return 0;
		return tm_err(-EINVAL, "tensor '%s' is missing", w->name);
	}
	l->used[t - l->g->tensors] = true;
	for (int d = 0; d < 4; d++)
		if (t->ne[d] != want[d])
			return tm_err(-EINVAL, "tensor '%s' has shape [%" PRId64 ", %" PRId64 ", %" PRId64
				      "], expected [%ld, %ld, %ld]", w->name, t->ne[0], t->ne[1],
				      t->ne[2], ne0, ne1, ne2);
	tr = tm_dtype_traits((int)t->type);
	if (!tm_dtype_in_gguf((int)t->type))
		return tm_err(-EOPNOTSUPP, "tensor '%s' has type %s (id %u), which tiermem does not run",
			      w->name, tr ? tr->name : "unknown", t->type);
	if ((flags & VECTOR) && t->type != TM_F32)
		return tm_err(-EOPNOTSUPP, "tensor '%s' is a %s vector; norm and frequency vectors must be f32",
			      w->name, tr->name);
	w->data = t->data;
	w->map = 0;
	if (l->src) {
		int map = 0, err = l->src->find(l->src->arg, t, &w->data, &map);

		if (err < 0)
			return err;
		held = !err;
		if (map < 0 || map >= TM_MODEL_MAX_MAPS)
			return tm_err(-EINVAL, "tensor '%s': mapping %d is out of range", w->name, map);
		w->map = (uint8_t)map;
	}
	if (!w->data && held)
		return tm_err(-EINVAL, "tensor '%s' has no data (a header-only GGUF cannot be run)",
			      w->name);
	w->type = l->src && l->src->type ? l->src->type(l->src->arg, t) : (int)t->type;
	w->cols = (int)ne0;
	w->rows = (int)ne1;
	w->n_mat = (int)ne2;
	w->row_bytes = tm_row_bytes(w->type, ne0);
	if (!w->row_bytes)
		return tm_err(-EINVAL, "tensor '%s': row length %ld is not a multiple of %s's block of %d",
			      w->name, ne0, tr->name, tr->block_elems);
	w->mat_bytes = w->row_bytes * (size_t)ne1;
	if (t->nbytes != w->mat_bytes * (size_t)ne2)
		return tm_err(-EINVAL, "tensor '%s': %" PRIu64 " bytes of data, expected %zu",
			      w->name, t->nbytes, w->mat_bytes * (size_t)ne2);
	if (l->src && l->src->rows && l->src->rows(l->src->arg, t, &w->part_r0, &w->part_r1) &&
	    (ne2 != 1 || w->part_r0 < 0 || w->part_r0 >= w->part_r1 || w->part_r1 > w->rows))
		return tm_err(-EINVAL, "tensor '%s': a share of rows %d-%d of a %d-row matrix", w->name,
			      w->part_r0, w->part_r1 - 1, w->rows);
	return 0;
}

/* A tensor of the trailing multi-token-prediction blocks (glm4moe): accepted, not run. */
static bool is_nextn(struct loader *l, const struct tm_gguf_tensor *t)
{
	unsigned int blk;
	char name[128];

	if (!l->m->hp.n_layer_nextn)
		return false;
	snprintf(name, sizeof(name), "%.*s", (int)(t->name.len < 127 ? t->name.len : 127), t->name.ptr);
	return sscanf(name, "blk.%u.", &blk) == 1 && blk >= (unsigned int)l->m->hp.n_layer &&
	       blk < (unsigned int)(l->m->hp.n_layer + l->m->hp.n_layer_nextn);
}

static uint64_t wbytes(const struct tm_weight *w)
{
	if (w->part_r1)
		return (uint64_t)w->row_bytes * (uint64_t)(w->part_r1 - w->part_r0);
	return w->data ? (uint64_t)w->mat_bytes * w->n_mat : 0;
}

/*
 * MLA's dimensions (deepseek2). llama.cpp's converter writes the split
 * layout's key_length / value_length as the latent cache row (kv_lora_rank +
 * qk_rope, kv_lora_rank) and the per-head sizes as *_mla; older files have
 * only the per-head sizes in key_length / value_length.
 */
static int read_mla(struct loader *l, int key_len, int val_len)
{
	struct tm_hparams *hp = &l->m->hp;
	int k_mla = 0, v_mla = 0, err;

	hp->mla = true;
	if ((err = opt(get_int(l, "attention.q_lora_rank", false, 0, 1 << 16, &hp->q_lora_rank))) ||
	    (err = get_int(l, "attention.kv_lora_rank", true, 1, 1 << 16, &hp->kv_lora_rank)) ||
	    (err = opt(get_int(l, "attention.key_length_mla", false, 2, 1 << 16, &k_mla))) ||
	    (err = opt(get_int(l, "attention.value_length_mla", false, 1, 1 << 16, &v_mla))))
		return err;
	hp->qk_rope = hp->n_rot;
	hp->mla_absorbed = k_mla && v_mla;
	if (!!k_mla != !!v_mla)
		return tm_err(-EINVAL, "%s.attention.%s_length_mla is missing (the other is given)",
			      l->arch, k_mla ? "value" : "key");
	if (hp->mla_absorbed) {
		if (key_len != hp->kv_lora_rank + hp->qk_rope || val_len != hp->kv_lora_rank)
			return tm_err(-EINVAL, "%s.attention.key_length %d / value_length %d: with the split MLA layout they must be kv_lora_rank + rope dims (%d) and kv_lora_rank (%d)",
				      l->arch, key_len, val_len, hp->kv_lora_rank + hp->qk_rope, hp->kv_lora_rank);
		key_len = k_mla;
		val_len = v_mla;
	}
	hp->qk_nope = key_len - hp->qk_rope;
	hp->v_head = val_len;
	if (hp->qk_rope < 2 || hp->qk_rope % 2 || hp->qk_nope < 1)
		return tm_err(-EINVAL, "%s.rope.dimension_count %d: must be even and below the key length %d",
			      l->arch, hp->qk_rope, key_len);
	if (hp->n_head_kv != 1 && hp->n_head_kv != hp->n_head)
		return tm_err(-EINVAL, "%s.attention.head_count_kv %d: MLA has one latent KV head or one per head",
			      l->arch, hp->n_head_kv);
	/* the cache's K rows: the latent and k_pe, or full per-head keys */
	hp->n_head_kv = hp->mla_absorbed ? 1 : hp->n_head;
	hp->head_dim = hp->mla_absorbed ? hp->kv_lora_rank + hp->qk_rope : key_len;
	return 0;
}

/*
 * YaRN as llama.cpp applies it (llama_context's cparams, ggml's rope_yarn and
 * deepseek2's kq_scale): frequencies blend interpolation and extrapolation
 * over a ramp between the correction dims; cos/sin and the q.k scale carry
 * magnitude factors. Sets rope_freq_scale first (the caller's factor).
 */
static int read_yarn(struct loader *l, float factor)
{
	struct tm_hparams *hp = &l->m->hp;
	float log_mul = 0.0f, attn = 1.0f, fast = 32.0f, slow = 1.0f, mscale;
	int orig = hp->n_ctx_train, err;

	if ((err = opt(get_float(l, "rope.scaling.yarn_log_multiplier", false, &log_mul))) ||
	    (err = opt(get_float(l, "rope.scaling.attn_factor", false, &attn))) ||
	    (err = opt(get_int(l, "rope.scaling.original_context_length", false, 1, INT_MAX, &orig))))
		return err;
	if (factor <= 0.0f)
		return tm_err(-EINVAL, "%s.rope.scaling.factor is missing or not positive for YaRN", l->arch);
	if (hp->arch == TM_ARCH_DEEPSEEK2)
		log_mul /= 0.1f;	/* llama.cpp undoes its converter's factor for deepseek2 */
	hp->yarn_ext_factor = 1.0f;
	/* attention factor: llama_context's, with mscale = mscale_all_dim for deepseek2 */
	if (log_mul != 0.0f) {
		float ms = hp->arch == TM_ARCH_DEEPSEEK2 && log_mul != 1.0f ? log_mul : 1.0f;
		float a = factor <= 1.0f ? 1.0f : 0.1f * ms * logf(factor) + 1.0f;
		float b = factor <= 1.0f ? 1.0f : 0.1f * log_mul * logf(factor) + 1.0f;

		mscale = a / b;
	} else {
		mscale = factor <= 1.0f ? 1.0f : 0.1f * logf(factor) + 1.0f;
	}
	mscale *= 1.0f / (1.0f + 0.1f * logf(factor));
	mscale *= attn;
	hp->rope_mscale = mscale;
	/* ggml_rope_yarn_corr_dims */
	{
		float n = (float)hp->n_rot, base = hp->rope_base;
		float lo = floorf(n * logf((float)orig / (fast * 2 * (float)M_PI)) / (2 * logf(base)));
		float hi = ceilf(n * logf((float)orig / (slow * 2 * (float)M_PI)) / (2 * logf(base)));

		hp->yarn_corr[0] = lo > 0 ? lo : 0;
		hp->yarn_corr[1] = hi < n - 1 ? hi : n - 1;
	}
	/* deepseek2's kq_scale: the original attention factor times the log multiplier's mscale, squared */
	{
		float org = mscale * (1.0f + 0.1f * logf(1.0f / hp->rope_freq_scale));
		float m = org * (1.0f + 0.1f * log_mul * logf(1.0f / hp->rope_freq_scale));

		hp->attn_scale *= m * m;
	}
	return 0;
}

static int read_moe_options(struct loader *l)
{
	struct tm_hparams *hp = &l->m->hp;
	bool ds = hp->arch == TM_ARCH_DEEPSEEK2, glm = hp->arch == TM_ARCH_GLM4MOE;
	int gating = ds ? 0 : glm ? TM_GATING_SIGMOID : TM_GATING_SOFTMAX, err;

	hp->expert_weights_norm = !ds && !glm;	/* llama, qwen3moe: always */
	if ((err = opt(get_int(l, "leading_dense_block_count", false, 0, hp->n_layer, &hp->n_layer_dense_lead))) ||
	    (err = opt(get_int(l, "expert_shared_count", false, 0, 64, &hp->n_expert_shared))) ||
	    (err = opt(get_int(l, "expert_group_count", false, 0, 4096, &hp->n_expert_groups))) ||
	    (err = opt(get_int(l, "expert_group_used_count", false, 0, 4096, &hp->n_group_used))) ||
	    (err = opt(get_int(l, "expert_gating_func", false, 0, 1 << 20, &gating))) ||
	    (err = opt(get_bool(l, "expert_weights_norm", &hp->expert_weights_norm))) ||
	    (err = opt(get_float(l, "expert_weights_scale", false, &hp->expert_weights_scale))))
		return err;
	if ((ds || glm) && hp->moe &&
	    (err = get_int(l, "expert_shared_count", true, 0, 64, &hp->n_expert_shared)))
		return err;
	if (glm && (err = opt(get_int(l, "nextn_predict_layers", false, 0, hp->n_layer - 1, &hp->n_layer_nextn))))
		return err;
	hp->n_layer -= hp->n_layer_nextn;
	if (hp->n_layer_dense_lead > hp->n_layer)
		return tm_err(-EINVAL, "%s.leading_dense_block_count %d exceeds the %d layers",
			      l->arch, hp->n_layer_dense_lead, hp->n_layer);
	if (gating == 0)	/* DeepSeek-V2 files say nothing: llama.cpp's default */
		gating = TM_GATING_SOFTMAX;
	if (gating != TM_GATING_SOFTMAX && gating != TM_GATING_SIGMOID)
		return tm_err(-EOPNOTSUPP, "%s.expert_gating_func %d is not supported (1 softmax, 2 sigmoid)",
			      l->arch, gating);
	hp->gating = (enum tm_gating)gating;
	if (!hp->moe)
		return 0;
	if (hp->n_expert_groups >= hp->n_expert)
		return tm_err(-EINVAL, "%s.expert_group_count %d must be below expert_count %d",
			      l->arch, hp->n_expert_groups, hp->n_expert);
	if (hp->n_expert_groups > 1) {
		if (hp->n_expert % hp->n_expert_groups)
			return tm_err(-EINVAL, "%s.expert_group_count %d does not divide expert_count %d",
				      l->arch, hp->n_expert_groups, hp->n_expert);
		if (hp->n_group_used < 1 || hp->n_group_used >= hp->n_expert_groups)
			return tm_err(-EINVAL, "%s.expert_group_used_count %d must be in 1..%d",
				      l->arch, hp->n_group_used, hp->n_expert_groups - 1);
		if (hp->n_group_used * (hp->n_expert / hp->n_expert_groups) < hp->n_expert_used)
			return tm_err(-EINVAL, "%s.expert_group_used_count %d: %d groups of %d hold fewer than the %d experts used",
				      l->arch, hp->n_group_used, hp->n_group_used, hp->n_expert / hp->n_expert_groups,
				      hp->n_expert_used);
		if (hp->n_expert / hp->n_expert_groups < 2)
			return tm_err(-EINVAL, "%s.expert_group_count %d: groups need 2 experts each",
				      l->arch, hp->n_expert_groups);
	}
	if (!isfinite(hp->expert_weights_scale) || hp->expert_weights_scale < 0.0f)
		return tm_err(-EINVAL, "%s.expert_weights_scale is negative", l->arch);
	return 0;
}

static int read_hparams(struct loader *l)
{
	struct tm_hparams *hp = &l->m->hp;
	struct tm_gguf_str scaling;
	float factor = 0.0f;
	bool yarn = false;
	int err, key_len, val_len;

	if ((err = get_int(l, "context_length", true, 1, INT_MAX, &hp->n_ctx_train)) ||
	    (err = get_int(l, "embedding_length", true, 1, 1 << 20, &hp->n_embd)) ||
	    (err = get_int(l, "block_count", true, 1, 4096, &hp->n_layer)) ||
	    (err = get_int(l, "attention.head_count", true, 1, 4096, &hp->n_head)))
		return err;
	hp->n_head_kv = hp->n_head;
	hp->head_dim = hp->n_embd / hp->n_head;
	if ((err = opt(get_int(l, "attention.head_count_kv", false, 1, hp->n_head, &hp->n_head_kv))) ||
	    (err = opt(get_int(l, "attention.key_length", false, 2, 1 << 16, &hp->head_dim))))
		return err;
	key_len = val_len = hp->head_dim;
	if ((err = opt(get_int(l, "attention.value_length", false, 1, 1 << 16, &val_len))))
		return err;
	hp->n_rot = hp->head_dim;
	if ((err = opt(get_int(l, "rope.dimension_count", false, 0, 1 << 16, &hp->n_rot))))
		return err;
	if (hp->arch == TM_ARCH_DEEPSEEK2) {
		if ((err = read_mla(l, key_len, val_len)))
			return err;
	} else {
		if (val_len != hp->head_dim)
			return tm_err(-EOPNOTSUPP, "%s.attention.value_length %d differs from key_length %d",
				      l->arch, val_len, hp->head_dim);
		if (hp->arch == TM_ARCH_GLM4MOE) {
			if (hp->n_rot < 2 || hp->n_rot % 2 || hp->n_rot > hp->head_dim)
				return tm_err(-EINVAL, "%s.rope.dimension_count %d: must be even and at most the head size %d",
					      l->arch, hp->n_rot, hp->head_dim);
		} else if (hp->n_rot != hp->head_dim)
			return tm_err(-EOPNOTSUPP, "%s.rope.dimension_count %d differs from the head size %d",
				      l->arch, hp->n_rot, hp->head_dim);
	}
	if (hp->head_dim < 2 || hp->head_dim % 2)
		return tm_err(-EINVAL, "head size %d (embedding %d / %d heads) is not a positive even number",
			      hp->head_dim, hp->n_embd, hp->n_head);
	if (hp->n_head % hp->n_head_kv)
		return tm_err(-EINVAL, "%d attention heads are not a multiple of %d KV heads",
			      hp->n_head, hp->n_head_kv);
	if ((long)hp->n_head * hp->head_dim > (1 << 20))
		return tm_err(-EINVAL, "%d heads of %d are too wide", hp->n_head, hp->head_dim);
	/* the q.k scale: 1/sqrt of the per-head key length (MLA: before absorption) */
	hp->attn_scale = 1.0f / sqrtf((float)(hp->mla ? hp->qk_nope + hp->qk_rope : hp->head_dim));
	hp->rope_mscale = 1.0f;
	hp->rope_base = 10000.0f;
	if ((err = opt(get_float(l, "rope.freq_base", false, &hp->rope_base))))
		return err;
	if (hp->rope_base <= 0.0f)
		return tm_err(-EINVAL, "%s.rope.freq_base %g is not positive", l->arch, hp->rope_base);

	/* RoPE scaling: linear (a frequency scale) is what llama.cpp does for "none" too */
	char key[128];

	snprintf(key, sizeof(key), "%s.rope.scaling.type", l->arch);
	err = tm_gguf_get_str(l->g, key, &scaling);
	if (!err) {
		yarn = tm_gguf_str_eq(scaling, "yarn");
		if (!yarn && !tm_gguf_str_eq(scaling, "none") && !tm_gguf_str_eq(scaling, "linear"))
			return tm_err(-EOPNOTSUPP, "RoPE scaling '%.*s' (%s) is not supported",
				      (int)(scaling.len > 32 ? 32 : scaling.len), scaling.ptr, key);
		if (yarn && hp->arch != TM_ARCH_DEEPSEEK2)
			return tm_err(-EOPNOTSUPP, "RoPE scaling 'yarn' (%s) is supported for deepseek2 only", key);
	}
	if ((err = opt(err)))
		return err;
	err = get_float(l, "rope.scaling.factor", false, &factor);
	if (err == -ENOENT)
		err = get_float(l, "rope.scale_linear", false, &factor);
	if ((err = opt(err)))
		return err;
	if (factor < 0.0f)
		return tm_err(-EINVAL, "RoPE scaling factor %g is negative", factor);
	hp->rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
	/* llama.cpp never scales when the type says none */
	if (!err && !tm_gguf_get_str(l->g, key, &scaling) && tm_gguf_str_eq(scaling, "none"))
		hp->rope_freq_scale = 1.0f;
	if (yarn && (err = read_yarn(l, factor)))
		return err;

	if ((err = get_float(l, "attention.layer_norm_rms_epsilon", true, &hp->rms_eps)))
		return err;
	if (hp->rms_eps < 0.0f)
		return tm_err(-EINVAL, "%s.attention.layer_norm_rms_epsilon is negative", l->arch);

	hp->n_ff = 0;
	if ((err = opt(get_int(l, "feed_forward_length", false, 1, 1 << 24, &hp->n_ff))))
		return err;
	hp->n_expert = hp->n_expert_used = 0;
	if ((err = opt(get_int(l, "expert_count", false, 0, 4096, &hp->n_expert))) ||
	    (err = opt(get_int(l, "expert_used_count", false, 0, 4096, &hp->n_expert_used))))
		return err;
	if (hp->n_expert_used > hp->n_expert)
		return tm_err(-EINVAL, "%s.expert_used_count %d exceeds expert_count %d",
			      l->arch, hp->n_expert_used, hp->n_expert);
	hp->moe = hp->n_expert > 0;
	if (hp->moe && !hp->n_expert_used)
		return tm_err(-EINVAL, "%s.expert_count is %d but expert_used_count is 0 or missing",
			      l->arch, hp->n_expert);
	if ((err = read_moe_options(l)))
		return err;
	if (hp->moe) {
		hp->n_ff_exp = hp->arch == TM_ARCH_LLAMA ? hp->n_ff : hp->n_ff / hp->n_expert_used;
		if (hp->arch == TM_ARCH_DEEPSEEK2 || hp->arch == TM_ARCH_GLM4MOE)
			err = get_int(l, "expert_feed_forward_length", true, 1, 1 << 24, &hp->n_ff_exp);
		else if (hp->arch != TM_ARCH_LLAMA)
			err = opt(get_int(l, "expert_feed_forward_length", false, 1, 1 << 24, &hp->n_ff_exp));
		if (err)
			return err;
		if (hp->n_ff_exp <= 0)
			return tm_err(-EINVAL, "%s: the expert FFN width is missing", l->arch);
		if (hp->n_layer_dense_lead > 0 && hp->n_ff <= 0)
			return tm_err(-EINVAL, "metadata key '%s.feed_forward_length' is missing (%d dense layers)",
				      l->arch, hp->n_layer_dense_lead);
	} else if (hp->n_ff <= 0) {
		return tm_err(-EINVAL, "metadata key '%s.feed_forward_length' is missing", l->arch);
	}
	return 0;
}

/* MLA's projections (deepseek2), in llama.cpp's names and shapes. */
static int bind_mla(struct loader *l, int i)
{
	const struct tm_hparams *hp = &l->m->hp;
	struct tm_layer *L = &l->m->layers[i];
	long E = hp->n_embd, H = hp->n_head, R = hp->kv_lora_rank, kq = hp->qk_nope + hp->qk_rope;
	int err;

	if (hp->q_lora_rank) {
		if ((err = bind(l, &L->wq_a, 0, E, hp->q_lora_rank, 1, "blk.%d.attn_q_a.weight", i)) ||
		    (err = bind(l, &L->q_a_norm, VECTOR, hp->q_lora_rank, 1, 1, "blk.%d.attn_q_a_norm.weight", i)) ||
		    (err = bind(l, &L->wq_b, 0, hp->q_lora_rank, H * kq, 1, "blk.%d.attn_q_b.weight", i)))
			return err;
	} else if ((err = bind(l, &L->wq, 0, E, H * kq, 1, "blk.%d.attn_q.weight", i))) {
		return err;
	}
	if ((err = bind(l, &L->wkv_a, 0, E, R + hp->qk_rope, 1, "blk.%d.attn_kv_a_mqa.weight", i)) ||
	    (err = bind(l, &L->kv_a_norm, VECTOR, R, 1, 1, "blk.%d.attn_kv_a_norm.weight", i)) ||
	    (err = bind(l, &L->wo, 0, H * hp->v_head, E, 1, "blk.%d.attn_output.weight", i)))
		return err;
	if (hp->mla_absorbed)
		return (err = bind(l, &L->wk_b, 0, hp->qk_nope, R, H, "blk.%d.attn_k_b.weight", i)) ||
		       (err = bind(l, &L->wv_b, 0, R, hp->v_head, H, "blk.%d.attn_v_b.weight", i)) ? err : 0;
	return bind(l, &L->wkv_b, 0, R, H * (hp->qk_nope + hp->v_head), 1, "blk.%d.attn_kv_b.weight", i);
}

static int bind_layer(struct loader *l, int i)
{
	const struct tm_hparams *hp = &l->m->hp;
	struct tm_layer *L = &l->m->layers[i];
	long E = hp->n_embd, qd = (long)hp->n_head * hp->head_dim;
	long kvd = (long)hp->n_head_kv * hp->head_dim;
	long F = hp->n_ff_exp, S = (long)hp->n_ff_exp * hp->n_expert_shared;
	int err;

	L->moe = hp->moe && i >= hp->n_layer_dense_lead;
	if ((err = bind(l, &L->attn_norm, VECTOR, E, 1, 1, "blk.%d.attn_norm.weight", i)) ||
	    (err = bind(l, &L->ffn_norm, VECTOR, E, 1, 1, hp->arch == TM_ARCH_GLM4MOE ?
			"blk.%d.post_attention_norm.weight" : "blk.%d.ffn_norm.weight", i)))
		return err;
	if (hp->arch == TM_ARCH_GLM4MOE &&
	    ((err = bind(l, &L->bq, OPTIONAL | VECTOR, qd, 1, 1, "blk.%d.attn_q.bias", i)) ||
	     (err = bind(l, &L->bk, OPTIONAL | VECTOR, kvd, 1, 1, "blk.%d.attn_k.bias", i)) ||
	     (err = bind(l, &L->bv, OPTIONAL | VECTOR, kvd, 1, 1, "blk.%d.attn_v.bias", i)) ||
	     (err = bind(l, &L->q_norm, OPTIONAL | VECTOR, hp->head_dim, 1, 1, "blk.%d.attn_q_norm.weight", i)) ||
	     (err = bind(l, &L->k_norm, OPTIONAL | VECTOR, hp->head_dim, 1, 1, "blk.%d.attn_k_norm.weight", i))))
		return err;
	if (!!L->q_norm.data != !!L->k_norm.data)
		return tm_err(-EINVAL, "blk.%d: attn_q_norm and attn_k_norm come together", i);
	if (hp->mla) {
		if ((err = bind_mla(l, i)))
			return err;
	} else if ((err = bind(l, &L->wq, 0, E, qd, 1, "blk.%d.attn_q.weight", i)) ||
		   (err = bind(l, &L->wk, 0, E, kvd, 1, "blk.%d.attn_k.weight", i)) ||
		   (err = bind(l, &L->wv, 0, E, kvd, 1, "blk.%d.attn_v.weight", i)) ||
		   (err = bind(l, &L->wo, 0, qd, E, 1, "blk.%d.attn_output.weight", i))) {
		return err;
	}
	if (hp->qk_norm &&
	    ((err = bind(l, &L->q_norm, VECTOR, hp->head_dim, 1, 1, "blk.%d.attn_q_norm.weight", i)) ||
	     (err = bind(l, &L->k_norm, VECTOR, hp->head_dim, 1, 1, "blk.%d.attn_k_norm.weight", i))))
		return err;
	if (!L->moe)
		return (err = bind(l, &L->gate, 0, E, hp->n_ff, 1, "blk.%d.ffn_gate.weight", i)) ||
		       (err = bind(l, &L->up, 0, E, hp->n_ff, 1, "blk.%d.ffn_up.weight", i)) ||
		       (err = bind(l, &L->down, 0, hp->n_ff, E, 1, "blk.%d.ffn_down.weight", i)) ? err : 0;
	if ((err = bind(l, &L->gate_inp, 0, E, hp->n_expert, 1, "blk.%d.ffn_gate_inp.weight", i)) ||
	    (err = bind(l, &L->gate_exps, 0, E, F, hp->n_expert, "blk.%d.ffn_gate_exps.weight", i)) ||
	    (err = bind(l, &L->up_exps, 0, E, F, hp->n_expert, "blk.%d.ffn_up_exps.weight", i)) ||
	    (err = bind(l, &L->down_exps, 0, F, E, hp->n_expert, "blk.%d.ffn_down_exps.weight", i)))
		return err;
	if ((hp->arch == TM_ARCH_DEEPSEEK2 || hp->arch == TM_ARCH_GLM4MOE) &&
	    (err = bind(l, &L->exp_probs_b, (hp->arch == TM_ARCH_GLM4MOE ? 0 : OPTIONAL) | VECTOR, hp->n_expert,
			1, 1, "blk.%d.exp_probs_b.bias", i)))
		return err;
	if (S && ((err = bind(l, &L->gate_shexp, 0, E, S, 1, "blk.%d.ffn_gate_shexp.weight", i)) ||
		  (err = bind(l, &L->up_shexp, 0, E, S, 1, "blk.%d.ffn_up_shexp.weight", i)) ||
		  (err = bind(l, &L->down_shexp, 0, S, E, 1, "blk.%d.ffn_down_shexp.weight", i))))
		return err;
	return 0;
}

static void count_bytes(struct tm_model *m)
{
	const struct tm_hparams *hp = &m->hp;
	uint64_t b = m->tok_embd.row_bytes + wbytes(&m->output_norm) + wbytes(&m->output);

	for (int i = 0; i < hp->n_layer; i++) {
		const struct tm_layer *L = &m->layers[i];

		b += wbytes(&L->attn_norm) + wbytes(&L->wq) + wbytes(&L->wk) + wbytes(&L->wv) +
		     wbytes(&L->wo) + wbytes(&L->q_norm) + wbytes(&L->k_norm) + wbytes(&L->ffn_norm) +
		     wbytes(&L->gate) + wbytes(&L->up) + wbytes(&L->down) + wbytes(&L->gate_inp) +
		     wbytes(&L->exp_probs_b) + wbytes(&L->gate_shexp) + wbytes(&L->up_shexp) +
		     wbytes(&L->down_shexp) + wbytes(&L->wq_a) + wbytes(&L->q_a_norm) + wbytes(&L->wq_b) +
		     wbytes(&L->wkv_a) + wbytes(&L->kv_a_norm) + wbytes(&L->wk_b) + wbytes(&L->wv_b) +
		     wbytes(&L->wkv_b) + wbytes(&L->bq) + wbytes(&L->bk) + wbytes(&L->bv);
		if (L->moe)
			b += (uint64_t)hp->n_expert_used * (L->gate_exps.mat_bytes + L->up_exps.mat_bytes +
							     L->down_exps.mat_bytes);
	}
	m->bytes_per_token = b;
}

int tm_model_init(struct tm_model *m, const struct tm_gguf *g)
{
	return tm_model_init_src(m, g, NULL);
}

int tm_model_init_src(struct tm_model *m, const struct tm_gguf *g, const struct tm_tensor_src *src)
{
	struct tm_hparams *hp = &m->hp;
	struct tm_gguf_str name;
	struct loader l = { .m = m, .g = g, .src = src };
	struct tm_weight freqs;
	uint64_t n_tok;
	size_t a;
	int err;

	m->layers = NULL;
	memset(hp, 0, sizeof(*hp));
	err = tm_gguf_get_str(g, "general.architecture", &name);
	if (err == -ENOENT)
		return tm_err(-EINVAL, "metadata key 'general.architecture' is missing");
	if (err)
		return err;
	for (a = 0; a < sizeof(archs) / sizeof(archs[0]); a++)
		if (tm_gguf_str_eq(name, archs[a].name))
			break;
	if (a == sizeof(archs) / sizeof(archs[0]))
		return tm_err(-EOPNOTSUPP, "architecture '%.*s' is not supported (llama, qwen3, qwen3moe, deepseek2, glm4moe are)",
			      (int)(name.len > 64 ? 64 : name.len), name.ptr);
	hp->arch = archs[a].arch;
	hp->arch_name = archs[a].name;
	hp->rope_mode = archs[a].rope_mode;
	hp->qk_norm = archs[a].qk_norm;
	l.arch = archs[a].name;
	if ((err = read_hparams(&l)))
		return err;
	if (archs[a].moe_always && !hp->moe)
		return tm_err(-EINVAL, "%s needs %s.expert_count > 0", l.arch, l.arch);

	l.used = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*l.used));
	m->layers = calloc(hp->n_layer, sizeof(*m->layers));
	if (!l.used || !m->layers) {
		err = tm_err(-ENOMEM, "out of memory for %d layers", hp->n_layer);
		goto out;
	}

	/* the vocabulary size is the embedding's row count; the tokenizer must agree */
	const struct tm_gguf_tensor *te = tm_gguf_tensor(g, "token_embd.weight");

	if (!te) {
		err = tm_err(-EINVAL, "tensor 'token_embd.weight' is missing");
		goto out;
	}
	if (te->ne[1] < 1 || te->ne[1] > INT_MAX) {
		err = tm_err(-EINVAL, "tensor 'token_embd.weight' has %" PRId64 " rows", te->ne[1]);
		goto out;
	}
	hp->n_vocab = (int)te->ne[1];
	if (!tm_gguf_get_arr(g, "tokenizer.ggml.tokens", TM_GGUF_STRING, &n_tok, NULL) &&
	    n_tok != (uint64_t)hp->n_vocab) {
		err = tm_err(-EINVAL, "the vocabulary has %" PRIu64 " tokens but token_embd.weight has %d rows",
			     n_tok, hp->n_vocab);
		goto out;
	}
	if ((err = bind(&l, &m->tok_embd, 0, hp->n_embd, hp->n_vocab, 1, "token_embd.weight")) ||
	    (err = bind(&l, &m->output_norm, VECTOR, hp->n_embd, 1, 1, "output_norm.weight")) ||
	    (err = bind(&l, &m->output, OPTIONAL, hp->n_embd, hp->n_vocab, 1, "output.weight")) ||
	    (err = bind(&l, &freqs, OPTIONAL | VECTOR, hp->n_rot / 2, 1, 1, "rope_freqs.weight")))
		goto out;
	/* llama.cpp applies frequency factors for llama (3.x) only; elsewhere the tensor is refused */
	if (freqs.data && hp->arch != TM_ARCH_LLAMA) {
		err = tm_err(-EOPNOTSUPP, "tensor 'rope_freqs.weight' is not used by %s", l.arch);
		goto out;
	}
	if (!m->output.data)
		m->output = m->tok_embd;	/* tied classifier */
	m->rope_freqs = freqs.data;
	for (int i = 0; i < hp->n_layer; i++)
		if ((err = bind_layer(&l, i)))
			goto out;

	/* a tensor we would silently ignore (a bias, a fused qkv) changes the result: refuse */
	for (uint64_t t = 0; t < g->n_tensors; t++) {
		if (l.used[t] || is_nextn(&l, &g->tensors[t]))
			continue;
		err = tm_err(-EOPNOTSUPP, "tensor '%.*s' is not used by tiermem's %s forward pass",
			     (int)(g->tensors[t].name.len > 96 ? 96 : g->tensors[t].name.len),
			     g->tensors[t].name.ptr, l.arch);
		goto out;
	}
	count_bytes(m);
	m->bytes_total = 0;
	for (uint64_t t = 0; t < g->n_tensors; t++)
		m->bytes_total += g->tensors[t].nbytes;
	err = 0;
out:
	free(l.used);
	if (err) {
		free(m->layers);
		m->layers = NULL;
	}
	return err;
}

static int load_mapping(struct tm_model *m, struct tm_mapping *map, bool repack)
{
	int err;

	memset(m, 0, sizeof(*m));
	m->maps[0] = *map;
	m->n_maps = 1;
	memset(map, 0, sizeof(*map));
	if ((err = tm_gguf_parse(&m->gguf, m->maps[0].addr, m->maps[0].size))) {
		tm_unmap(&m->maps[0]);
		return err;
	}
	m->owns_file = true;
	err = repack ? tm_model_init_repacked(m, &m->gguf) : tm_model_init(m, &m->gguf);
	if (err) {
		tm_model_free(m);
		return err;
	}
	return 0;
}

int tm_model_load_mapping(struct tm_model *m, struct tm_mapping *map)
{
	return load_mapping(m, map, false);
}

int tm_load_parse(const char *s)
{
	static const char *const names[] = { "auto", "mmap", "ddr" };

	for (int i = 0; i < 3; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

int tm_model_open(struct tm_model *m, const char *path, enum tm_load how)
{
	return tm_model_open_layout(m, path, how, false);
}

int tm_model_open_layout(struct tm_model *m, const char *path, enum tm_load how, bool repack)
{
	struct tm_mapping map;
	struct stat st;
	long long avail = -1;
	int err;

	memset(m, 0, sizeof(*m));
	if (how == TM_LOAD_AUTO) {
		long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

		if (pages > 0 && psz > 0)
			avail = (long long)pages * psz;
		how = TM_LOAD_MMAP;
		if (!stat(path, &st) && avail > 0 && (long long)st.st_size <= avail / 2)
			how = TM_LOAD_DDR;
	}
	if (how == TM_LOAD_DDR)
		err = tm_map_load(&map, path, TM_PAGES_THP);
	else
		err = tm_map_file(&map, path, 0);
	if (err)
		return err;
	return load_mapping(m, &map, repack && how == TM_LOAD_DDR);
}

int tm_model_load(struct tm_model *m, const char *path)
{
	struct tm_mapping map;
	int err;

	memset(m, 0, sizeof(*m));
	if ((err = tm_map_file(&map, path, 0)))
		return err;
	return tm_model_load_mapping(m, &map);
}

void tm_model_free(struct tm_model *m)
{
	free(m->layers);
	m->layers = NULL;
	free(m->share_at);
	m->share_at = NULL;
	if (m->owns_file) {
		tm_gguf_free(&m->gguf);
		for (int i = 0; i < m->n_maps; i++)
			tm_unmap(&m->maps[i]);
		m->n_maps = 0;
		free(m->header);
		m->header = NULL;
		m->owns_file = false;
	}
}
