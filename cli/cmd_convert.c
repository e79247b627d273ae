// SPDX-License-Identifier: MIT
/*
 * tiermem convert --llama2c: a llama2.c checkpoint (Karpathy's run.c format)
 * to a llama GGUF with f32 weights, copied bit for bit.
 *
 * No permutation of wq/wk: llama2.c rotates adjacent pairs (i, i+1) of each
 * head, which is exactly llama.cpp's "normal" RoPE for the llama
 * architecture. (llama.cpp's HF converter permutes only because Hugging Face
 * checkpoints were permuted for rotate_half.) A shared classifier is written
 * as a tied embedding, i.e. without output.weight, as llama.cpp's own
 * converters do for tied models.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/synth_vocab.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/gguf_write.h"
#include "tiermem/mapping.h"
#include "kernels/kernels.h"

#define CMD "convert"

struct l2c {
	int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
	bool shared;
	const float *embd, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
};

static void help(FILE *f)
{
	fprintf(f,
"usage: tiermem convert --llama2c FILE -o OUT.gguf\n"
"Converts a llama2.c checkpoint (a header of seven int32: dim, hidden_dim,\n"
"n_layers, n_heads, n_kv_heads, vocab_size (negative: unshared classifier),\n"
"seq_len; then float32 weights) to a llama GGUF with the same f32 weights.\n"
"llama2.c's tokenizer is a separate file, so the GGUF gets a placeholder\n"
"SentencePiece-style vocabulary of the checkpoint's size (<unk> <s> </s>,\n"
"the 256 byte tokens, then generated pieces; at least 260 tokens): work in\n"
"token ids. A shared classifier becomes a tied embedding (no output.weight).\n");
}

/* Lay the arrays out over the mapping; -EINVAL if the size does not match. */
static int layout(struct l2c *c, const uint8_t *base, size_t size)
{
	int32_t h[7];
	uint64_t off = sizeof(h), head, kvdim, need;
	const float **arrays[] = { &c->embd, &c->rms_att, &c->wq, &c->wk, &c->wv, &c->wo,
				   &c->rms_ffn, &c->w1, &c->w2, &c->w3, &c->rms_final };
	uint64_t n[11];

	if (size < sizeof(h))
		return tm_err(-EINVAL, "llama2.c checkpoint: %zu bytes is shorter than the 28-byte header", size);
	memcpy(h, base, sizeof(h));
	c->dim = h[0];
	c->hidden = h[1];
	c->layers = h[2];
	c->heads = h[3];
	c->kv_heads = h[4];
	c->shared = h[5] > 0;
	c->vocab = h[5] < 0 ? -h[5] : h[5];
	c->seq_len = h[6];
	for (int i = 0; i < 7; i++)
		if (h[i] == 0 || (i != 5 && h[i] < 0) || h[i] == INT32_MIN || (h[i] > (1 << 20) && i != 5))
			return tm_err(-EINVAL, "llama2.c checkpoint: header field %d (at offset %d) is %d", i, 4 * i, h[i]);
	if (c->dim % c->heads || c->heads % c->kv_heads || (c->dim / c->heads) % 2)
		return tm_err(-EINVAL, "llama2.c checkpoint: dim %d, %d heads, %d kv heads do not make even heads",
			      c->dim, c->heads, c->kv_heads);
	head = (uint64_t)(c->dim / c->heads);
	kvdim = head * (uint64_t)c->kv_heads;
	uint64_t L = (uint64_t)c->layers, D = (uint64_t)c->dim, H = (uint64_t)c->hidden;

	n[0] = (uint64_t)c->vocab * D;
	n[1] = L * D;
	n[2] = L * D * D;
	n[3] = L * D * kvdim;
	n[4] = L * D * kvdim;
	n[5] = L * D * D;
	n[6] = L * D;
	n[7] = L * D * H;
	n[8] = L * H * D;
	n[9] = L * D * H;
	n[10] = D;
	need = off;
	for (int i = 0; i < 11; i++)
		need += 4 * n[i];
	need += 4 * (uint64_t)c->seq_len * head;	/* two legacy RoPE tables of seq_len x head/2 */
	if (!c->shared)
		need += 4 * (uint64_t)c->vocab * D;
	if (need != size)
		return tm_err(-EINVAL, "llama2.c checkpoint: the header (dim %d, hidden %d, %d layers, %d heads, %d kv heads, vocab %d%s, seq_len %d) implies %llu bytes, the file has %zu",
			      c->dim, c->hidden, c->layers, c->heads, c->kv_heads, c->vocab,
			      c->shared ? " shared" : " unshared", c->seq_len, (unsigned long long)need, size);
	for (int i = 0; i < 11; i++) {
		*arrays[i] = (const float *)(base + off);
		off += 4 * n[i];
	}
	off += 4 * (uint64_t)c->seq_len * head;
	c->wcls = c->shared ? NULL : (const float *)(base + off);
	return 0;
}

struct piece {
	char name[64];
	uint32_t n_dims;
	int64_t ne[2];
	const float *data;
};

static int plan(const struct l2c *c, struct piece *p)
{
	int64_t D = c->dim, H = c->hidden, kvdim = (int64_t)(c->dim / c->heads) * c->kv_heads;
	int n = 0;

#define ADD(nm, nd, a, b, ptr) do { \
	snprintf(p[n].name, sizeof(p[n].name), "%s", nm); \
	p[n].n_dims = nd; p[n].ne[0] = a; p[n].ne[1] = b; p[n].data = ptr; n++; } while (0)
	ADD("token_embd.weight", 2, D, c->vocab, c->embd);
	for (int l = 0; l < c->layers; l++) {
		char nm[64];

#define NM(s) (snprintf(nm, sizeof(nm), "blk.%d." s, l), nm)
		ADD(NM("attn_norm.weight"), 1, D, 1, c->rms_att + l * D);
		ADD(NM("attn_q.weight"), 2, D, D, c->wq + l * D * D);
		ADD(NM("attn_k.weight"), 2, D, kvdim, c->wk + l * D * kvdim);
		ADD(NM("attn_v.weight"), 2, D, kvdim, c->wv + l * D * kvdim);
		ADD(NM("attn_output.weight"), 2, D, D, c->wo + l * D * D);
		ADD(NM("ffn_norm.weight"), 1, D, 1, c->rms_ffn + l * D);
		ADD(NM("ffn_gate.weight"), 2, D, H, c->w1 + l * D * H);
		ADD(NM("ffn_up.weight"), 2, D, H, c->w3 + l * D * H);
		ADD(NM("ffn_down.weight"), 2, H, D, c->w2 + l * H * D);
#undef NM
	}
	ADD("output_norm.weight", 1, D, 1, c->rms_final);
	if (!c->shared)
		ADD("output.weight", 2, D, c->vocab, c->wcls);
#undef ADD
	return n;
}

static int write_gguf(const struct l2c *c, const char *src, const char *out)
{
	struct tm_gguf_writer *w;
	struct piece *p = calloc((size_t)c->layers * 9 + 3, sizeof(*p));
	const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
	char name[256];
	int n, err;

	if (!p)
		return tm_err(-ENOMEM, "out of memory");
	n = plan(c, p);
	snprintf(name, sizeof(name), "llama2.c %s", base);
	err = tm_gguf_writer_new(&w, 32);
	if (err) {
		free(p);
		return err;
	}
	err = tm_gguf_writer_set_str(w, "general.architecture", "llama");
	err = err ?: tm_gguf_writer_set_str(w, "general.name", name);
	err = err ?: tm_gguf_writer_set_u32(w, "general.file_type", 0);
	err = err ?: tm_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
	err = err ?: tm_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
	err = err ?: tm_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->layers);
	err = err ?: tm_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden);
	err = err ?: tm_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->heads);
	err = err ?: tm_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->kv_heads);
	err = err ?: tm_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(c->dim / c->heads));
	err = err ?: tm_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
	err = err ?: tm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	err = err ?: tm_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab);
	err = err ?: synth_vocab_write(w, SYNTH_VOCAB_SPM, (uint32_t)c->vocab);
	for (int i = 0; !err && i < n; i++)
		err = tm_gguf_writer_add_tensor(w, p[i].name, TM_F32, p[i].n_dims, p[i].ne);
	err = err ?: tm_gguf_writer_begin(w, out);
	for (int i = 0; !err && i < n; i++)
		err = tm_gguf_writer_data(w, p[i].data, 4 * (size_t)p[i].ne[0] * (size_t)p[i].ne[1]);
	err = err ?: tm_gguf_writer_finish(w);
	tm_gguf_writer_free(w);
	free(p);
	return err;
}

int cmd_convert(int argc, char **argv)
{
	const char *src = NULL, *out = NULL;
	struct tm_mapping m;
	struct l2c c;
	int err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			help(stdout);
			return 0;
		}
		if (i + 1 >= argc)
			return usage_error(CMD, "%s needs a value (see --help)", argv[i]);
		if (!strcmp(argv[i], "--llama2c"))
			src = argv[++i];
		else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output"))
			out = argv[++i];
		else
			return usage_error(CMD, "unknown option '%s' (see --help)", argv[i]);
	}
	if (!src || !out)
		return usage_error(CMD, "need --llama2c FILE and -o OUT.gguf (see --help)");
	if ((err = tm_map_file(&m, src, 0)))
		return usage_error(CMD, "%s", tm_strerror());
	err = layout(&c, m.addr, m.size);
	if (err) {
		tm_unmap(&m);
		return usage_error(CMD, "%s: %s", src, tm_strerror());
	}
	if ((uint32_t)c.vocab < synth_vocab_min(SYNTH_VOCAB_SPM)) {
		tm_unmap(&m);
		return usage_error(CMD, "%s: vocab_size %d is below the %u tokens of the placeholder vocabulary",
				   src, c.vocab, synth_vocab_min(SYNTH_VOCAB_SPM));
	}
	err = write_gguf(&c, src, out);
	tm_unmap(&m);
	if (err)
		return run_error(CMD, "%s", tm_strerror());
	printf("%s: llama, %d layers, dim %d, %d heads (%d kv), ff %d, vocab %d (%s classifier), context %d, f32\n",
	       out, c.layers, c.dim, c.heads, c.kv_heads, c.hidden, c.vocab, c.shared ? "shared" : "own", c.seq_len);
	return 0;
}
