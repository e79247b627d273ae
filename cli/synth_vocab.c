// SPDX-License-Identifier: MIT
/*
 * Generated tokenizers. Both kinds learn byte-pair merges from the same small
 * built-in text, so common English words become single tokens and
 * tokenisation is non-trivial (merge priorities, byte fallback, multi-byte
 * characters), yet everything is deterministic and self-contained.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/synth_vocab.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/gguf_write.h"

/* Original text, written for this purpose: prose, digits, punctuation, a little Unicode. */
static const char corpus[] =
	"The small robot walked along the river in the morning. It liked the sound of the water "
	"and the light on the stones. Every day the robot counted the boats: one, two, three, "
	"and sometimes more than 20 of them before noon. The people of the town waved at the "
	"robot, and the robot waved back, because that was the polite thing to do.\n"
	"One morning there was a new boat on the river. It was painted red and yellow, and a "
	"child stood at the front, holding a rope. The robot asked the child where the boat was "
	"going. \"To the sea,\" said the child, \"where the river ends and the water becomes "
	"salty.\" The robot had never seen the sea. It thought about the sea all afternoon, "
	"while the shadows grew longer and the air became cool.\n"
	"In the evening the robot walked home and wrote in its notebook: today I counted 17 "
	"boats, and one of them was going to the sea. Tomorrow I will count again, and maybe "
	"I will follow the river to see where it ends. The robot closed the notebook and "
	"looked at the stars, which were many, and counted them too, until it fell asleep.\n"
	"Memory is like a river: what flows through it is never quite the same, yet the shape "
	"of the banks remains. Weights are read, activations are computed, and the tokens "
	"come out one by one, each a little guess about what should follow the ones before.\n"
	"Caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xc3\xbc\xc3\xb6 \xe2\x80\x94 "
	"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82 1234567890 the end.\n";

/* ---- a set of strings with ids, for uniqueness and pair counts ---- */

struct strmap {
	size_t cap, n;
	char **key;
	long *val;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ull;
	return h;
}

static int map_init(struct strmap *m, size_t cap)
{
	m->cap = cap;
	m->n = 0;
	m->key = calloc(cap, sizeof(*m->key));
	m->val = calloc(cap, sizeof(*m->val));
	return m->key && m->val ? 0 : -ENOMEM;
}

static void map_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->key[i]);
	free(m->key);
	free(m->val);
}

/* The slot holding s, or the empty slot where it would go. */
static size_t map_slot(const struct strmap *m, const char *s)
{
	size_t i = hash_str(s) & (m->cap - 1);

	while (m->key[i] && strcmp(m->key[i], s))
		i = (i + 1) & (m->cap - 1);
	return i;
}

static long *map_get(struct strmap *m, const char *s, bool add)
{
	size_t i = map_slot(m, s);

	if (m->key[i])
		return &m->val[i];
	if (!add || 2 * (m->n + 1) > m->cap)
		return NULL;
	m->key[i] = strdup(s);
	if (!m->key[i])
		return NULL;
	m->n++;
	m->val[i] = 0;
	return &m->val[i];
}

/* ---- BPE learning over the corpus ---- */

struct word {
	char **sym;
	int n;
	int freq;
};

struct bpe {
	struct word *w;
	int nw;
	char **merge_a, **merge_b;	/* merge k joins merge_a[k] and merge_b[k] */
	int nmerges;
};

static int utf8_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* GPT-2's reversible byte -> printable code point mapping, as UTF-8. */
static void byte_char(unsigned b, char out[4])
{
	unsigned cp = b, n = 0;

	if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
		for (unsigned x = 0; x < b; x++)
			if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
				n++;
		cp = 256 + n;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = 0;
	} else {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		out[2] = 0;
	}
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/*
 * Split the corpus into words. SPM: space-separated, each with a leading
 * "\xe2\x96\x81" (the SentencePiece space), symbols are UTF-8 characters.
 * GPT-2: a letter or digit run with its leading space, or one other byte;
 * symbols are bytes in GPT-2's printable mapping.
 */
static int add_word(struct bpe *b, struct strmap *seen, const char *text, size_t len, bool gpt2)
{
	char buf[256], key[1024];
	size_t k = 0;

	if (!len || len > 200)
		return 0;
	if (!gpt2)
		k = (size_t)snprintf(buf, sizeof(buf), "\xe2\x96\x81");
	memcpy(buf + k, text, len);
	buf[k + len] = 0;
	long *idx = map_get(seen, buf, false);

	if (idx) {
		b->w[*idx].freq++;
		return 0;
	}
	idx = map_get(seen, buf, true);
	if (!idx)
		return -ENOMEM;
	*idx = b->nw;
	struct word *w = &b->w[b->nw++];

	w->freq = 1;
	w->n = 0;
	w->sym = calloc(strlen(buf) + 1, sizeof(*w->sym));
	if (!w->sym)
		return -ENOMEM;
	for (size_t i = 0; buf[i];) {
		size_t n = gpt2 ? 1 : (size_t)utf8_len((unsigned char)buf[i]);

		if (gpt2)
			byte_char((unsigned char)buf[i], key);
		else
			snprintf(key, sizeof(key), "%.*s", (int)n, buf + i);
		w->sym[w->n++] = strdup(key);
		i += n;
	}
	return 0;
}

static int split_corpus(struct bpe *b, bool gpt2)
{
	struct strmap seen;
	size_t n = sizeof(corpus) - 1;
	int err = 0;

	b->w = calloc(n, sizeof(*b->w));
	if (!b->w || map_init(&seen, 4096))
		return -ENOMEM;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		const unsigned char *s = (const unsigned char *)corpus;

		if (!gpt2) {
			while (j < n && s[j] != ' ' && s[j] != '\n')
				j++;
			err = add_word(b, &seen, corpus + i, j - i, false);
			i = j + 1;
		} else {
			if (s[j] == ' ' && j + 1 < n && (is_alpha(s[j + 1]) || (s[j + 1] >= '0' && s[j + 1] <= '9')))
				j++;
			if (is_alpha(s[j]))
				while (j < n && is_alpha(s[j]))
					j++;
			else if (s[j] >= '0' && s[j] <= '9')
				while (j < n && s[j] >= '0' && s[j] <= '9')
					j++;
			else
				j++;
			err = add_word(b, &seen, corpus + i, j - i, true);
			i = j;
		}
		if (err)
			break;
	}
	map_free(&seen);
	return err;
}

static int learn(struct bpe *b, int max_merges)
{
	b->merge_a = calloc((size_t)max_merges + 1, sizeof(char *));
	b->merge_b = calloc((size_t)max_merges + 1, sizeof(char *));
	if (!b->merge_a || !b->merge_b)
		return -ENOMEM;
	while (b->nmerges < max_merges) {
		struct strmap pairs;
		char key[512], best[512] = "";
		long best_n = 1;

		if (map_init(&pairs, 16384))
			return -ENOMEM;
		for (int i = 0; i < b->nw; i++) {
			struct word *w = &b->w[i];

			for (int j = 0; j + 1 < w->n; j++) {
				snprintf(key, sizeof(key), "%s\x01%s", w->sym[j], w->sym[j + 1]);
				long *c = map_get(&pairs, key, true);

				if (!c)
					continue;	/* table full: rare pairs are skipped */
				*c += w->freq;
				/* highest count; ties: the lexicographically smallest, for determinism */
				if (*c > best_n || (*c == best_n && best[0] && strcmp(key, best) < 0))
					snprintf(best, sizeof(best), "%s", key), best_n = *c;
			}
		}
		map_free(&pairs);
		if (!best[0] || best_n < 2)
			break;
		char *sep = strchr(best, '\x01');

		*sep = 0;
		b->merge_a[b->nmerges] = strdup(best);
		b->merge_b[b->nmerges] = strdup(sep + 1);
		b->nmerges++;
		snprintf(key, sizeof(key), "%s%s", best, sep + 1);
		for (int i = 0; i < b->nw; i++) {
			struct word *w = &b->w[i];
			int o = 0;

			for (int j = 0; j < w->n; j++) {
				if (j + 1 < w->n && !strcmp(w->sym[j], best) && !strcmp(w->sym[j + 1], sep + 1)) {
					free(w->sym[j]);
					free(w->sym[j + 1]);
					w->sym[o++] = strdup(key);
					j++;
				} else {
					w->sym[o++] = w->sym[j];
				}
			}
			w->n = o;
		}
	}
	return 0;
}

static void bpe_free(struct bpe *b)
{
	for (int i = 0; i < b->nw; i++) {
		for (int j = 0; j < b->w[i].n; j++)
			free(b->w[i].sym[j]);
		free(b->w[i].sym);
	}
	for (int i = 0; i < b->nmerges; i++) {
		free(b->merge_a[i]);
		free(b->merge_b[i]);
	}
	free(b->w);
	free(b->merge_a);
	free(b->merge_b);
}

/* ---- assembling the vocabulary ---- */

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

struct vocab {
	char **tok;
	float *score;
	int32_t *type;
	uint32_t n, cap;
	struct strmap ids;
};

static int vocab_add(struct vocab *v, const char *s, float score, int32_t type)
{
	long *id;

	if (v->n >= v->cap)
		return 0;
	if (map_get(&v->ids, s, false))
		return 0;		/* already present */
	id = map_get(&v->ids, s, true);
	if (!id)
		return -ENOMEM;
	*id = v->n;
	v->tok[v->n] = strdup(s);
	v->score[v->n] = score;
	v->type[v->n] = type;
	v->n++;
	return v->tok[v->n - 1] ? 0 : -ENOMEM;
}

/* Filler pieces: deterministic letter strings, after all learned ones. */
static int add_fillers(struct vocab *v, const char *prefix, uint32_t reserve)
{
	char s[64];
	int err = 0;

	for (uint64_t i = 0; !err && v->n + reserve < v->cap; i++) {
		uint64_t x = i + 26 * 26;	/* at least three letters */
		int k = snprintf(s, sizeof(s), "%s", prefix);
		char rev[16];
		int m = 0;

		while (x) {
			rev[m++] = (char)('a' + x % 26);
			x /= 26;
		}
		while (m)
			s[k++] = rev[--m];
		s[k] = 0;
		err = vocab_add(v, s, -1e6f - (float)i, TT_NORMAL);
	}
	return err;
}

uint32_t synth_vocab_min(enum synth_vocab_kind kind)
{
	return kind == SYNTH_VOCAB_SPM ? 3 + 256 + 1 : 256 + 3;
}

static int write_spm(struct tm_gguf_writer *w, struct vocab *v, struct bpe *b)
{
	char s[16];
	int err = 0;

	err = err ?: vocab_add(v, "<unk>", 0, TT_UNKNOWN);
	err = err ?: vocab_add(v, "<s>", 0, TT_CONTROL);
	err = err ?: vocab_add(v, "</s>", 0, TT_CONTROL);
	for (int i = 0; !err && i < 256; i++) {
		snprintf(s, sizeof(s), "<0x%02X>", i);
		err = vocab_add(v, s, 0, TT_BYTE);
	}
	/* Merged pieces score by merge order: llama.cpp merges the best-scored pair first. */
	for (int i = 0; !err && i < b->nmerges; i++) {
		char m[512];

		snprintf(m, sizeof(m), "%s%s", b->merge_a[i], b->merge_b[i]);
		err = vocab_add(v, m, -(float)i, TT_NORMAL);
	}
	err = err ?: vocab_add(v, "\xe2\x96\x81", -1e5f, TT_NORMAL);
	for (int c = 0x21; !err && c < 0x7f; c++) {
		s[0] = (char)c;
		s[1] = 0;
		err = vocab_add(v, s, -1e5f - (float)c, TT_NORMAL);
	}
	err = err ?: add_fillers(v, "\xe2\x96\x81", 0);
	if (err)
		return err;
	err = tm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
	err = err ?: tm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok, NULL, v->n);
	err = err ?: tm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", TM_GGUF_FLOAT32, v->score, v->n);
	err = err ?: tm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TM_GGUF_INT32, v->type, v->n);
	err = err ?: tm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
	err = err ?: tm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
	err = err ?: tm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	err = err ?: tm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
	err = err ?: tm_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
	return err;
}

static int write_gpt2(struct tm_gguf_writer *w, struct vocab *v, struct bpe *b)
{
	static const char *const specials[] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
	const uint32_t nspecial = 3;
	char **merges = NULL;
	char s[8];
	int err = 0, nm = 0;

	/* Byte tokens first, in byte order, then merges, fillers, and the specials last. */
	for (int i = 0; !err && i < 256; i++) {
		byte_char((unsigned)i, s);
		err = vocab_add(v, s, 0, TT_NORMAL);
	}
	merges = calloc((size_t)b->nmerges + 1, sizeof(*merges));
	if (!merges)
		return -ENOMEM;
	for (int i = 0; !err && i < b->nmerges && v->n + nspecial < v->cap; i++) {
		char m[512];

		snprintf(m, sizeof(m), "%s%s", b->merge_a[i], b->merge_b[i]);
		err = vocab_add(v, m, 0, TT_NORMAL);
		if (!err && asprintf(&merges[nm++], "%s %s", b->merge_a[i], b->merge_b[i]) < 0)
			err = -ENOMEM;
	}
	err = err ?: add_fillers(v, "\xc4\xa0", nspecial);	/* "Ġ": GPT-2's space */
	uint32_t first_special = v->n;

	for (uint32_t i = 0; !err && i < nspecial; i++)
		err = vocab_add(v, specials[i], 0, TT_CONTROL);
	err = err ?: tm_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
	err = err ?: tm_gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
	err = err ?: tm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok, NULL, v->n);
	err = err ?: tm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", TM_GGUF_INT32, v->type, v->n);
	err = err ?: tm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL, (uint64_t)nm);
	err = err ?: tm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", first_special + 2);
	err = err ?: tm_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", first_special);
	err = err ?: tm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", first_special);
	err = err ?: tm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
	for (int i = 0; i < nm; i++)
		free(merges[i]);
	free(merges);
	return err;
}

int synth_vocab_write(struct tm_gguf_writer *w, enum synth_vocab_kind kind, uint32_t n_vocab)
{
	struct bpe b = { 0 };
	struct vocab v = { 0 };
	size_t cap = 16;
	int err;

	if (n_vocab < synth_vocab_min(kind))
		return tm_err(-EINVAL, "vocabulary: %u tokens is fewer than the %u this tokenizer needs",
			      n_vocab, synth_vocab_min(kind));
	while (cap < 2 * (size_t)n_vocab + 16)
		cap <<= 1;
	v.cap = n_vocab;
	v.tok = calloc(n_vocab, sizeof(*v.tok));
	v.score = calloc(n_vocab, sizeof(*v.score));
	v.type = calloc(n_vocab, sizeof(*v.type));
	err = (!v.tok || !v.score || !v.type || map_init(&v.ids, cap)) ? -ENOMEM : 0;
	err = err ?: split_corpus(&b, kind == SYNTH_VOCAB_GPT2);
	err = err ?: learn(&b, 2000);
	if (!err)
		err = kind == SYNTH_VOCAB_SPM ? write_spm(w, &v, &b) : write_gpt2(w, &v, &b);
	if (!err && v.n != n_vocab)
		err = tm_err(-EINVAL, "vocabulary: built %u of %u tokens", v.n, n_vocab);
	if (err == -ENOMEM)
		tm_err(err, "vocabulary: out of memory");
	for (uint32_t i = 0; i < v.n; i++)
		free(v.tok[i]);
	free(v.tok);
	free(v.score);
	free(v.type);
	if (v.ids.key)
		map_free(&v.ids);
	bpe_free(&b);
	return err;
}
