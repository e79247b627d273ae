/* SPDX-License-Identifier: MIT */
/*
 * A model is a parsed GGUF seen as a transformer: hyperparameters from the
 * metadata and, per layer, pointers to the weight tensors inside the mapping
 * that holds the file. Nothing is copied; the mapping and the tm_gguf must
 * outlive the model.
 *
 * Architectures (general.architecture):
 *   llama     dense, grouped-query attention, RoPE on adjacent pairs; with
 *             {arch}.expert_count > 0 the FFN is a Mixtral-style MoE
 *   qwen3     as llama plus RMSNorm of each q and k head before RoPE, and
 *             RoPE on the two halves of each head (NEOX)
 *   qwen3moe  qwen3 with an MoE FFN in every layer
 *   deepseek2 DeepSeek-V2/V3/R1, Kimi-K2: multi-head latent attention (MLA,
 *             below), RoPE on adjacent pairs of the last qk_rope dims of each
 *             head only, optional YaRN; leading_dense_block_count dense
 *             layers, then MoE layers with shared experts
 *   glm4moe   GLM-4.5/4.6: q/k/v biases, optional per-head q/k norms, NEOX
 *             RoPE on the first rope.dimension_count dims of each head,
 *             post_attention_norm before the FFN, leading dense layers, then
 *             sigmoid-routed experts with exp_probs_b and shared experts; the
 *             last nextn_predict_layers blocks (multi-token prediction) are
 *             accepted and not run
 * MoE routing is llama.cpp's build_moe_ffn with options: gating by softmax or
 * sigmoid over the router logits, an optional per-expert bias added for the
 * choice only (exp_probs_b), group-limited choice (the best expert_group_used
 * of expert_group_count groups by the sum of each group's top two), the top
 * expert_used_count experts weighted by their unbiased probabilities,
 * optionally renormalised to sum 1 (llama, qwen3moe always; deepseek2 by
 * expert_weights_norm) and scaled (expert_weights_scale).
 *
 * MLA (deepseek2): q from attn_q, or low rank (attn_q_a, its norm, attn_q_b);
 * a shared latent c = norm(attn_kv_a_mqa x)[0, kv_lora_rank) and one roped
 * k_pe of qk_rope dims per token. Files from llama.cpp's current converter
 * split the decompression into attn_k_b / attn_v_b (with key_length_mla,
 * value_length_mla): the cache then holds only [c | k_pe] per token and
 * attn_k_b is absorbed into the query (q_nope -> the latent space), attn_v_b
 * applied after attention. Older files carry attn_kv_b: the cache then holds
 * full per-head keys [k_nope | k_pe] and values, as llama.cpp does.
 *
 * A tm_ctx is one sequence being evaluated: the KV cache and every scratch
 * buffer, allocated once, so evaluating a token allocates nothing.
 */
#ifndef TIERMEM_MODEL_H
#define TIERMEM_MODEL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "tiermem/gguf.h"
#include "tiermem/mapping.h"

enum tm_arch {
	TM_ARCH_LLAMA,
	TM_ARCH_QWEN3,
	TM_ARCH_QWEN3MOE,
	TM_ARCH_DEEPSEEK2,
	TM_ARCH_GLM4MOE,
};

/* llama.cpp's expert_gating_func values. */
enum tm_gating {
	TM_GATING_SOFTMAX = 1,
	TM_GATING_SIGMOID = 2,
};

/* The most mappings one model's weights may be spread over (its tiers' regions). */
#define TM_MODEL_MAX_MAPS 16

/*
 * A weight matrix (or a stack of n_mat of them: the experts of a layer) in
 * one of the model's mappings. Row r of matrix e starts at
 * data + e * mat_bytes + r * row_bytes.
 */
struct tm_weight {
	char name[64];			/* the GGUF tensor name, for messages */
	const void *data;
	uint8_t map;			/* which of tm_model.maps holds it */
	int type;			/* GGML type id (kernels/kernels.h) */
	int rows, cols;			/* output and input sizes: ne[1], ne[0] */
	int n_mat;			/* ne[2]: experts; 1 for a plain matrix or vector */
	size_t row_bytes, mat_bytes;
	/*
	 * NULL: every matrix is at data. Else a rank's share (tiermem import
	 * --split experts): only the rank's experts are here, packed in
	 * order, matrix e at index mat_at[e] (-1: another rank's).
	 */
	const int *mat_at;
	/*
	 * part_r1 > 0: a rank's share of the rows (tiermem import --split
	 * experts,dense, tm_tp_rows): only rows [part_r0, part_r1) are here,
	 * at data; the forward pass computes only those (its rows hook).
	 */
	int part_r0, part_r1;
};

struct tm_layer {
	struct tm_weight attn_norm, wq, wk, wv, wo;
	struct tm_weight q_norm, k_norm;		/* qwen3*: per-head RMSNorm weights */
	struct tm_weight bq, bk, bv;			/* glm4moe: q/k/v biases */
	struct tm_weight ffn_norm;			/* glm4moe: post_attention_norm */
	struct tm_weight gate, up, down;		/* dense FFN */
	struct tm_weight gate_inp;			/* MoE router: n_expert x n_embd */
	struct tm_weight gate_exps, up_exps, down_exps;	/* MoE experts, n_mat = n_expert */
	struct tm_weight exp_probs_b;			/* routing bias, n_expert (optional) */
	struct tm_weight gate_shexp, up_shexp, down_shexp;	/* shared experts (optional) */
	/* MLA (deepseek2): wq is attn_q when q_lora_rank is 0 */
	struct tm_weight wq_a, q_a_norm, wq_b, wkv_a, kv_a_norm;
	struct tm_weight wk_b, wv_b;			/* split: n_mat = n_head */
	struct tm_weight wkv_b;				/* legacy, unsplit */
	bool moe;					/* this layer's FFN is routed */
};

struct tm_hparams {
	enum tm_arch arch;
	const char *arch_name;		/* "llama", "qwen3", "qwen3moe" */
	int n_vocab, n_embd, n_layer;
	int n_head, n_head_kv, head_dim;	/* head_dim: key and value length */
	int n_ff;			/* dense FFN width (0 when every layer is MoE) */
	int n_expert, n_expert_used, n_ff_exp;
	int n_ctx_train;
	int n_rot, rope_mode;		/* enum tm_rope_mode */
	float rope_base, rope_freq_scale;
	/* YaRN (rope.scaling.type yarn): ext_factor 0 when off; see tm_rope_table_yarn */
	float yarn_ext_factor, yarn_corr[2], rope_mscale;
	float attn_scale;		/* the q.k scale: 1/sqrt(key length), times YaRN's mscale^2 */
	float rms_eps;
	bool moe, qk_norm;
	/* MoE options (see above) */
	int n_layer_dense_lead, n_expert_shared, n_expert_groups, n_group_used;
	int n_layer_nextn;		/* glm4moe: trailing MTP blocks, in the file but not run */
	enum tm_gating gating;
	bool expert_weights_norm;
	float expert_weights_scale;	/* 0: none */
	/* MLA (deepseek2); head_dim is then the cache row's key length per KV head */
	bool mla, mla_absorbed;
	int q_lora_rank, kv_lora_rank, qk_nope, qk_rope, v_head;
};

struct tm_model {
	struct tm_hparams hp;
	struct tm_weight tok_embd, output_norm, output;	/* output may be tok_embd (tied) */
	const float *rope_freqs;	/* optional per-pair frequency divisors (llama 3) */
	struct tm_layer *layers;
	/* weight bytes one decoded token reads: all dense weights, one embedding row,
	 * and for MoE the router plus n_expert_used experts per layer */
	uint64_t bytes_per_token;
	uint64_t bytes_total;		/* all tensor bytes in the file */
	/*
	 * The mappings that hold the weights: maps[0] is the GGUF file's when
	 * the model was loaded from one; an imported model has one per tier
	 * region. With owns_file, tm_model_free releases them and the parse.
	 */
	struct tm_mapping maps[TM_MODEL_MAX_MAPS];
	int n_maps;
	struct tm_gguf gguf;
	void *header;		/* an imported model: its GGUF header (gguf's base), malloc'd */
	bool owns_file;
	/*
	 * share_ranks > 1: an imported share (tiermem import --split experts
	 * --rank R --ranks N) that holds only rank R's routed experts
	 * (share_at, n_layer x n_expert: expert e of layer l's index in the
	 * packed share, -1 where another rank's; tm_xassign_make's rule); it
	 * runs only as that rank of an expert-parallel run with the same
	 * assignment (tm_forward refuses it otherwise).
	 * share_layers: a share of the layers instead (import --split layers):
	 * only the rank's stage of a pipeline has data (the other weights'
	 * data is NULL); it runs only as that rank under --split layers.
	 * share_rows: its dense matrices' rows are a share too (import --split
	 * experts,dense: tm_weight.part_r0/part_r1); it runs only as that rank
	 * under --split experts,dense.
	 */
	int share_rank, share_ranks;
	int *share_at;
	uint64_t share_hash;	/* its assignment's tm_xassign_hash */
	bool share_layers, share_rows;
	bool repacked;		/* tm_model_init_repacked rewrote its tensors in place */
};

/*
 * Read hyperparameters and tensor pointers from a parsed GGUF; checks every
 * tensor's presence, shape and type. Errors (with a tm_err message naming the
 * key or tensor): -EINVAL for missing or inconsistent metadata and tensors,
 * -EOPNOTSUPP for an architecture, tensor type or RoPE scaling this build
 * does not run, -ENOMEM.
 */
int tm_model_init(struct tm_model *m, const struct tm_gguf *g);

/*
 * Where tensors' bytes are, when not inside the GGUF's own data section (a
 * model imported into tier regions, parsed from a header-only GGUF): find
 * returns 0 and the tensor's data and the index of the mapping in
 * m->maps that holds it, or a negative errno with a tm_err message.
 */
struct tm_tensor_src {
	/* 0, 1 when the tensor's data is another process's (a share of the layers: *data NULL), -errno */
	int (*find)(void *arg, const struct tm_gguf_tensor *t, const void **data, int *map);
	/* optional: the kernel type its bytes are in (a repacked layout); NULL: the GGUF's type */
	int (*type)(void *arg, const struct tm_gguf_tensor *t);
	/* optional: true when only rows [*r0, *r1) of the matrix are stored (at the data found) */
	bool (*rows)(void *arg, const struct tm_gguf_tensor *t, int *r0, int *r1);
	void *arg;
};

int tm_model_init_src(struct tm_model *m, const struct tm_gguf *g, const struct tm_tensor_src *src);

/*
 * Weight layouts (lib/model/layout.c). The type a tensor gets in the
 * interleaved-row layout (kernels/kernels.h), or -1 if it keeps the GGUF's:
 * the one rule import and a DDR load share. A weight's type then names its
 * layout too ("r16" or "gguf": tm_layout_name).
 */
int tm_tensor_repacked_type(const struct tm_gguf_tensor *t);
const char *tm_layout_name(int type);
/* "r16" when any of the model's layer matrices is in the interleaved-row layout, else "gguf" */
const char *tm_model_layout(const struct tm_model *m);
/*
 * tm_model_init over a GGUF whose data the model may rewrite (a private copy
 * in DDR): every tensor tm_tensor_repacked_type picks is repacked in place
 * first (bound by the model or not, so the rule alone says which were).
 */
int tm_model_init_repacked(struct tm_model *m, const struct tm_gguf *g);
/*
 * The model's identity, the GGUF's content hash (tm_gguf_content_hash), also
 * when its tensors were repacked in place: those are put back on their way
 * into the hash.
 */
int tm_model_content_hash(const struct tm_model *m, char out[33]);

/* Map and parse a GGUF file, then tm_model_init. -ENOENT etc. for the file. */
int tm_model_load(struct tm_model *m, const char *path);
/*
 * The same over a mapping that already holds a GGUF file, from any backend
 * (a tier region, DDR the file was loaded into): the model takes it over and
 * tm_model_free releases it, also when loading fails.
 */
int tm_model_load_mapping(struct tm_model *m, struct tm_mapping *map);

/* Where tm_model_open puts the weights when no tier region holds them. */
enum tm_load {
	TM_LOAD_AUTO,	/* DDR if the file takes at most half the available memory, else MMAP */
	TM_LOAD_MMAP,	/* map the file: zero copies, the page cache's 4 KiB pages */
	TM_LOAD_DDR,	/* read the file once into anonymous 2 MiB pages */
};

/*
 * Load a model from a file with the given policy. 4 KiB pages cost decode a
 * large share of its bandwidth (a TLB miss and a restarted hardware prefetch
 * every 4 KiB), so without the module the weights go to 2 MiB pages when they
 * fit. m->map.backend says which it became.
 */
int tm_model_open(struct tm_model *m, const char *path, enum tm_load how);
/*
 * The same, and where the weights end up in DDR (a copy anyway) with repack,
 * the q4_K/q6_K matrices are rewritten into the interleaved-row layout as
 * they are bound; mapped files keep the GGUF layout.
 */
int tm_model_open_layout(struct tm_model *m, const char *path, enum tm_load how, bool repack);
/* "auto", "mmap", "ddr" -> enum tm_load; -1 for anything else. */
int tm_load_parse(const char *s);

void tm_model_free(struct tm_model *m);

/* An error tm_model_init/_load returned that means "bad input" (exit 2), not a failure to run. */
static inline bool tm_model_err_is_input(int err)
{
	return err != -ENOMEM;
}

/*
 * Where the forward pass reads a routed expert: by default the model's
 * stacked expert tensors; an expert cache (lib/experts/online.c) answers
 * with its fast-tier slot instead. The hooks run on the thread that runs the
 * forward pass, between pool hand-offs, so a pointer changes only when no
 * matvec is reading it. A hook left NULL is not called (without resolve,
 * experts are read where the model has them).
 */
struct tm_expert_at {
	const void *w[3];		/* the expert's gate, up and down matrices */
	uint8_t map[3];			/* the tm_model.maps index holding each */
};

struct tm_ctx;

struct tm_expert_hook {
	/* Experts sel[0..k) of layer l are about to be computed: where each is. */
	void (*resolve)(void *arg, int l, const int *sel, int k, struct tm_expert_at *at);
	/* ... and have been: nothing reads them any more. */
	void (*done)(void *arg, int l, const int *sel, int k);
	/* Decode of one token in c: layer l's attention is done and x (n_embd) is the residual stream. */
	void (*after_attn)(void *arg, struct tm_ctx *c, int l, const float *x);
	/*
	 * Expert parallel (lib/mpi/): whether expert e of layer l is computed
	 * in this process (NULL: all are); the others add nothing to acc
	 * here, and reduce then sums acc (n rows of n_embd) over the processes
	 * before it joins the residual stream.
	 */
	bool (*local)(void *arg, int l, int e);
	void (*reduce)(void *arg, int l, float *acc, int n);
	void *arg;
};

/* Where expert e of layer L is in the model's own stacked expert tensors (no cache). */
void tm_expert_home(const struct tm_layer *L, int e, struct tm_expert_at *at);

/*
 * One token's routing, as the forward pass does it (llama.cpp's
 * build_moe_ffn): the router's logits (n_expert) -> the n_expert_used
 * experts sel and their weights w. bias: the layer's exp_probs_b or NULL;
 * probs: n_expert floats of scratch. Also what a next-layer predictor runs.
 */
void tm_route(const struct tm_hparams *hp, const float *bias, const float *logits, float *probs,
	      int *sel, float *w);

/*
 * Pipeline parallel (lib/mpi/): this process computes layers [first, last)
 * only. When first > 0, recv fills x (n rows of n_embd) from the stage
 * before instead of the embedding; when last < n_layer, send hands x to the
 * next stage and the batch ends there: no logits here. Both run on the
 * forward pass's thread.
 */
struct tm_stage_hook {
	int first, last;
	void (*recv)(void *arg, float *x, int n);
	void (*send)(void *arg, const float *x, int n);
	void *arg;
};

/*
 * Tensor parallel (lib/mpi/, --split experts,dense): this process computes
 * rows [r0, r1) of each dense matrix (attention projections, dense FFN,
 * shared experts, output; not routers, routed experts or MLA's per-head
 * matrices) and gather makes the whole output on every process. range
 * answers false to compute every row here (a matrix too small to split);
 * buf is scratch for n rows of r1 - r0 floats; gather takes part (n rows of
 * this process's r1 - r0) and writes Y, n rows of rows. Each row is the
 * same dot product with the same inputs whichever process computes it, so
 * the bits are one process's. Both run on the forward pass's thread.
 */
struct tm_rows_hook {
	bool (*range)(void *arg, int rows, int *r0, int *r1);
	float *(*buf)(void *arg, size_t floats);
	void (*gather)(void *arg, const float *part, int n, int rows, float *Y);
	void *arg;
};

/* One sequence: KV cache (f32) and scratch for batches of up to n_batch tokens. */
struct tm_ctx {
	const struct tm_model *m;
	struct tm_pool *pool;
	int n_ctx, n_batch, n_past;
	/*
	 * Per layer n_ctx * tm_ctx_kv_row_bytes() bytes of type_k (type_v),
	 * head-major: each KV head's rows together (tm_ctx_kv_view), so
	 * attention streams a head's rows front to back; with the heads side by
	 * side in a row it read a slice of each row per head, at a third of the
	 * speed on AMD Zen 4 (bench/attn --layout). MLA: a legacy file's V
	 * heads (v_head wide) take the room of K heads; the split layout keeps
	 * one latent cache (v_cache is k_cache, V the first kv_lora_rank
	 * elements of each row).
	 */
	void *k_cache, *v_cache;
	struct tm_mapping k_map, v_map;	/* what k_cache and v_cache point into */
	int type_k, type_v;		/* TM_F32 or TM_F16 (GGML type ids) */
	/*
	 * Prompt batches take tm_matmul_exact, so a token gets the bits decode
	 * would give it whichever batch or prefix cache it came with (serve
	 * sets it; on AMX hosts it costs prefill speed on the GGUF layout and
	 * on types without an interleaved-row layout).
	 */
	bool exact;
	/* scratch, n_batch rows each */
	float *x, *xb, *q, *att, *hb, *hb2;
	float *logits;			/* n_vocab: the last position's logits (tm_forward_seqs: n_batch rows) */
	float *scores;			/* attention: n_threads * group * (n_ctx + head_dim) */
	float *rope_cs;			/* n_batch * n_rot */
	float *kb, *vb;			/* n_batch K and V rows before they go to their caches */
	/* MoE */
	float *qa, *kva;		/* MLA: low-rank q (or latents), [latent | k_pe], n_batch rows */
	struct tm_matvec *jobs;		/* MLA: one matvec per head */
	float *router;			/* n_batch * n_expert logits */
	float *probs;			/* n_expert */
	int *sel;			/* n_batch * n_expert_used expert ids */
	float *selw;			/* their weights */
	int *rows;			/* prefill: the batch rows routed to one expert */
	float *rw;			/* and their weights */
	float *xg, *yg;			/* gathered expert inputs, expert outputs */
	float *acc;			/* the weighted sum of the experts */
	/* accounting: weight bytes the forward passes have read so far, in all and per mapping */
	uint64_t weight_bytes;
	uint64_t kv_bytes;		/* KV cache bytes attention has read */
	uint64_t map_bytes[TM_MODEL_MAX_MAPS];
	uint64_t n_evals;		/* forward batches */
	const struct tm_expert_hook *xhook;	/* NULL: experts are read where the model has them */
	const struct tm_stage_hook *stage;	/* NULL: every layer is computed here */
	const struct tm_rows_hook *tp;		/* NULL: every dense matrix's rows are computed here */
	uint64_t handoffs;		/* jobs handed to the pool (each wakes every thread once) */
	/* tm_gpu_attach (tiermem/gpu.h): forward passes run on the GPU, reading VRAM */
	void *gpu;
	uint64_t vram_bytes;		/* of weight_bytes, those read from VRAM */
	uint64_t pcie_bytes;		/* ... and those the GPU read over PCIe from pinned host memory */
};

/* n_ctx <= hp.n_ctx_train; n_batch >= 1. The pool must outlive the context. An f32 KV cache. */
int tm_ctx_create(struct tm_ctx **out, const struct tm_model *m, struct tm_pool *pool,
		  int n_ctx, int n_batch);
/*
 * The same with a KV cache of type_k / type_v: TM_F32 or TM_F16 (llama.cpp's
 * default: half the bytes attention reads per token, keys and values rounded
 * to halves); -EOPNOTSUPP for another type.
 */
int tm_ctx_create_kv(struct tm_ctx **out, const struct tm_model *m, struct tm_pool *pool,
		     int n_ctx, int n_batch, int type_k, int type_v);
/* "f32", "f16" (llama.cpp's --cache-type-k/-v names) -> TM_F32, TM_F16; -1 for another. */
int tm_kv_type_parse(const char *s);
void tm_ctx_free(struct tm_ctx *c);
/* Forget the sequence (the cache is overwritten as positions are reused). */
void tm_ctx_reset(struct tm_ctx *c);
/* Bytes one position of one layer takes in the K cache (v = 0) or the V cache (v = 1). */
size_t tm_ctx_kv_row_bytes(const struct tm_ctx *c, int v);

/*
 * A layer's K (v = 0) or V (v = 1) cache: KV head g's value at position p
 * (dim values of the cache's type) at base + g * head_bytes + p * row_bytes,
 * for g < heads (MLA: the shape attention runs in; absorbed, V is the
 * first dim values of the K rows).
 */
struct tm_kv_view {
	char *base;
	int heads, dim;
	size_t row_bytes, head_bytes;
};
struct tm_kv_view tm_ctx_kv_view(const struct tm_ctx *c, int layer, int v);

/*
 * Evaluate n tokens at positions n_past .. n_past + n - 1 and advance n_past.
 * Batches of n_batch go through the matmul kernels; a batch of one is decode
 * (matvecs). With logits_all, logits receives n rows of n_vocab (one per
 * position); otherwise c->logits holds the last position's row (logits may be
 * NULL, or receives a copy). -EINVAL for a bad token id or a full context.
 */
int tm_forward(struct tm_ctx *c, const int32_t *tokens, int n, float *logits, bool logits_all);

/*
 * Continuous batching: a work context holds the scratch of up to n_seq rows
 * and no KV cache; tm_forward_seqs evaluates one token of each of n
 * sequences (contexts from tm_ctx_create, each its own cache and position)
 * in one pass that reads every weight once for all of them. Each sequence's
 * n_past advances by one and its logits land in seqs[i]->logits. The
 * results equal n separate tm_forward calls exactly (tm_matmul equals
 * matvecs; attention runs per sequence, MLA included), except that an MoE
 * layer sums a row's experts in expert order, not selection order. The weight bytes are
 * counted once, on the work context. -EINVAL for a full sequence, a bad id,
 * a sequence twice, or n outside [1, n_seq].
 */
int tm_ctx_create_seqs(struct tm_ctx **out, const struct tm_model *m, struct tm_pool *pool, int n_seq);
int tm_forward_seqs(struct tm_ctx *work, struct tm_ctx *const *seqs, const int32_t *tokens, int n);

/*
 * The CPU half of the CPU/GPU hybrid (lib/cuda/forward.c), the one place
 * its work is split: the routed experts of layer `layer` for n <= n_batch
 * rows that were routed elsewhere. xb: the rows' normed FFN input; sel and
 * w: n * n_expert_used experts and weights; out: n rows of the weighted
 * sum, for the caller to add to its residual stream. The experts are read
 * where they live (through c's expert hook, if any) by c's pool, with the
 * code of tm_forward, and counted in c's per-mapping counters. Uses c's CPU
 * scratch, which a context attached to the GPU leaves unused.
 */
void tm_moe_experts_cpu(struct tm_ctx *c, int layer, const float *xb, const int *sel, const float *w, int n,
			float *out);

#endif
