/* SPDX-License-Identifier: MIT */
/* Private to lib/tokenizer*.c: the tokenizer's tables and the pieces of the algorithms. */
#ifndef TIERMEM_LIB_TOKENIZER_INTERNAL_H
#define TIERMEM_LIB_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tiermem/tokenizer.h"

/*
 * Code point classes of the BPE pre-tokenizers (unicode.c, generated): the
 * Unicode general category, except that White_Space wins over it.
 */
enum {
	TM_UC_NONE = -1,	/* past the end of the text */
	TM_UC_OTHER = 0,	/* \p{C}, \p{Z} that is not white space, unassigned */
	TM_UC_LETTER = 1,	/* \p{L} */
	TM_UC_NUMBER = 2,	/* \p{N} */
	TM_UC_SPACE = 3,	/* \s: Unicode White_Space */
	TM_UC_MARK = 4,		/* \p{M} */
	TM_UC_PUNCT = 5,	/* \p{P} */
	TM_UC_SYMBOL = 6,	/* \p{S} */
};
extern const uint32_t tm_uc_ranges[];
extern const size_t tm_uc_nranges;
int tm_uc_class(uint32_t cp);

/* Token attributes, as llama.cpp's llama_token_attr bits. */
enum {
	TM_ATTR_UNKNOWN = 1 << 0,
	TM_ATTR_UNUSED = 1 << 1,
	TM_ATTR_NORMAL = 1 << 2,
	TM_ATTR_CONTROL = 1 << 3,
	TM_ATTR_USER_DEFINED = 1 << 4,
	TM_ATTR_BYTE = 1 << 5,
};

/* Byte strings in one buffer, found by content through an open-addressing hash. */
struct tm_strtab {
	char *buf;
	uint32_t *off;		/* n + 1 offsets into buf */
	uint32_t n;
	uint32_t *slots;	/* index + 1, 0 = empty */
	uint32_t mask;
};

/* -1 if absent. */
int32_t tm_strtab_find(const struct tm_strtab *s, const char *key, size_t len);

/* Growable array of ids. */
struct tm_ids {
	int32_t *v;
	size_t n, cap;
};
int tm_ids_push(struct tm_ids *a, int32_t id);

enum tm_pre {
	TM_PRE_NONE,		/* SPM: no pre-tokenizer */
	TM_PRE_GPT2,		/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
	TM_PRE_QWEN2,		/* llama3's expression with \p{N} one digit at a time */
	TM_PRE_LLAMA3,		/* ...|\p{N}{1,3}|... */
	TM_PRE_DEEPSEEK3,	/* three splits: \p{N}{1,3}, then CJK runs, then words (bpe.c) */
	TM_PRE_KIMI_K2,		/* Han runs first, then llama3's split with contractions kept on words */
};

struct tm_tokenizer {
	enum tm_vocab_type type;
	enum tm_pre pre;
	struct tm_strtab vocab;
	float *scores;
	uint8_t *attr;
	uint8_t *eog;
	struct tm_strtab merges;	/* "left right" -> rank */
	int32_t bos, eos, unk, eot, pad;
	bool add_bos, add_eos, add_space_prefix, ignore_merges;
	bool no_bos;			/* the pre-tokenizer has no default BOS id (glm4) */
	bool clean_spaces;		/* detokenize: " ," -> "," and the like (GPT-2 style) */
	int32_t byte_token[256];	/* SPM byte fallback, -1 if none */
	int32_t *specials;		/* tokens cut out of the text, longest first */
	uint32_t n_specials;
	uint32_t max_token_len;
};

static inline const char *tm_tok_str(const struct tm_tokenizer *t, int32_t id, size_t *len)
{
	*len = t->vocab.off[id + 1] - t->vocab.off[id];
	return t->vocab.buf + t->vocab.off[id];
}

/* Byte length of the UTF-8 sequence a lead byte starts (1 for stray bytes), as llama.cpp counts. */
static inline size_t tm_utf8_len(unsigned char c)
{
	static const uint8_t lookup[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };

	return lookup[c >> 4];
}

/* Append the tokens of a run of plain text (no special tokens in it). */
int tm_spm_tokenize(const struct tm_tokenizer *t, const char *text, size_t len, struct tm_ids *out);
int tm_bpe_tokenize(const struct tm_tokenizer *t, const char *text, size_t len, struct tm_ids *out);
/* BPE pieces: the byte a code point of the byte-level alphabet stands for, or -1. */
int tm_bpe_cp_to_byte(uint32_t cp);

/*
 * Both tokenizers merge adjacent symbols (UTF-8 characters at first) in
 * priority order: SPM by token score, BPE by merge rank (prio = -rank, exact
 * in a float for ranks below 2^24). Merged-away symbols keep n = 0.
 */
struct tm_sym {
	int prev, next;
	size_t off, n;
};

/* One symbol per UTF-8 character of text; returns how many (s holds len). */
int tm_syms_init(struct tm_sym *s, const char *text, size_t len);

/* A queued merge; ln and rn are the sides' sizes when it was queued. */
struct tm_bigram {
	int left, right;
	float prio;
	size_t ln, rn;
};

/* Pops the highest priority first, then the leftmost. */
struct tm_bigram_heap {
	struct tm_bigram *v;
	size_t n, cap;
};

/* 1 and the priority if symbols left and right of s merge, else 0. */
typedef int (*tm_pair_prio_fn)(void *ctx, const struct tm_sym *s, int left, int right, float *prio);

/*
 * Merge the ns adjacent symbols of s in priority order until no pair merges;
 * h is scratch the caller frees (h->v). 0 or -ENOMEM.
 */
int tm_syms_merge(struct tm_sym *s, int ns, struct tm_bigram_heap *h, tm_pair_prio_fn prio, void *ctx);

#endif
