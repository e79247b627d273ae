// SPDX-License-Identifier: MIT
/*
 * bench/kv_bytes: KV cache bytes per token of context, tiermem's (measured
 * from a context's cache: rows per layer and whether V has its own rows)
 * against llama.cpp's for the same file (its rule, not measured: per layer
 * n_head_kv * key_length keys plus, except for MLA files, n_head_kv *
 * value_length values, in the cache type: f16 by default, f32 as the logits
 * suite runs it). For deepseek2's split MLA layout both sides keep one
 * latent row of kv_lora_rank + qk_rope per token and layer; the MHA figure
 * is what full per-head keys and values would take.
 *
 * usage: kv_bytes MODEL...   (one JSON line per model)
 */
#include <stdio.h>

#include "tiermem/error.h"
#include "tiermem/model.h"

int main(int argc, char **argv)
{
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: kv_bytes MODEL...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct tm_model m;
		struct tm_ctx *c;
		struct tm_pool *pool = tm_pool_create(1, 0);
		const struct tm_hparams *hp;
		double ours, peer_elems, mha_elems;

		if (tm_model_load(&m, argv[i]) || tm_ctx_create(&c, &m, pool, 16, 1)) {
			fprintf(stderr, "kv_bytes: %s: %s\n", argv[i], tm_strerror());
			tm_model_free(&m);
			tm_pool_destroy(pool);
			rc = 1;
			continue;
		}
		hp = &m.hp;
		ours = (double)(tm_ctx_kv_row_bytes(c, 0) + (c->v_cache == c->k_cache ? 0 : tm_ctx_kv_row_bytes(c, 1))) *
		       hp->n_layer;
		if (hp->mla_absorbed) {
			peer_elems = (double)(hp->kv_lora_rank + hp->qk_rope) * hp->n_layer;
			mha_elems = (double)hp->n_head * (hp->qk_nope + hp->qk_rope + hp->v_head) * hp->n_layer;
		} else if (hp->mla) {
			peer_elems = (double)hp->n_head * (hp->qk_nope + hp->qk_rope + hp->v_head) * hp->n_layer;
			mha_elems = peer_elems;
		} else {
			peer_elems = 2.0 * hp->n_head_kv * hp->head_dim * hp->n_layer;
			mha_elems = 2.0 * hp->n_head * hp->head_dim * hp->n_layer;
		}
		printf("{\"model\":\"%s\",\"arch\":\"%s\",\"mla\":\"%s\",\"tiermem_f32\":%.0f,"
		       "\"llama_cpp_f16\":%.0f,\"llama_cpp_f32\":%.0f,\"mha_f16\":%.0f}\n",
		       argv[i], hp->arch_name, hp->mla_absorbed ? "latent" : hp->mla ? "legacy" : "none",
		       ours, 2 * peer_elems, 4 * peer_elems, 2 * mha_elems);
		tm_ctx_free(c);
		tm_model_free(&m);
		tm_pool_destroy(pool);
	}
	return rc;
}
