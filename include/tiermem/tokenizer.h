/* SPDX-License-Identifier: MIT */
/*
 * Tokenizers built from a GGUF vocabulary, matching llama.cpp token for token:
 *  - SentencePiece-style ("llama"): score-driven pair merges over UTF-8
 *    characters, spaces as U+2581, <0xNN> byte fallback, a leading space;
 *  - GPT-2 byte-level BPE ("gpt2"): a pre-tokenizer split chosen by
 *    tokenizer.ggml.pre ("gpt-2", "qwen2", "llama-bpe", ...), the bytes of each
 *    piece mapped to printable code points, then merges by rank.
 * Special tokens (control, user-defined) are cut out of the text first, as
 * llama.cpp does; control tokens only when parse_special is set.
 *
 * A tm_tokenizer copies what it needs: the GGUF (or the arrays) may go away.
 * It is read-only after creation, so threads may share one.
 */
#ifndef TIERMEM_TOKENIZER_H
#define TIERMEM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tiermem/gguf.h"

struct tm_tokenizer;

enum tm_vocab_type {
	TM_VOCAB_SPM = 1,	/* tokenizer.ggml.model = "llama" */
	TM_VOCAB_BPE = 2,	/* tokenizer.ggml.model = "gpt2" */
};

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum tm_token_type {
	TM_TOKEN_NORMAL = 1,
	TM_TOKEN_UNKNOWN = 2,
	TM_TOKEN_CONTROL = 3,
	TM_TOKEN_USER_DEFINED = 4,
	TM_TOKEN_UNUSED = 5,
	TM_TOKEN_BYTE = 6,
};

/* In a tm_vocab_spec: "use the default of the vocabulary type". */
#define TM_TOKEN_DEFAULT (-2)

/*
 * A vocabulary as plain arrays, the way a GGUF holds it. Call
 * tm_vocab_spec_init() first: it sets every id and flag to its default.
 */
struct tm_vocab_spec {
	const char *model;			/* "llama" or "gpt2" */
	const char *pre;			/* BPE pre-tokenizer; NULL: "default" */
	uint32_t n_tokens;
	const struct tm_gguf_str *tokens;
	const float *scores;			/* NULL: all 0 */
	const int32_t *types;			/* enum tm_token_type; NULL: all normal */
	uint64_t n_merges;
	const struct tm_gguf_str *merges;	/* "left right", best first */
	int32_t bos, eos, unk, eot, pad;	/* an id, -1 for none, or TM_TOKEN_DEFAULT */
	int add_bos, add_eos;			/* 0, 1, or -1 for the type's default */
	int add_space_prefix;			/* SPM: 0, 1, or -1 (default 1) */
};

void tm_vocab_spec_init(struct tm_vocab_spec *spec);

/* 0 or a negative errno (-EINVAL for an unsupported or malformed vocabulary). */
int tm_tokenizer_create(struct tm_tokenizer **t, const struct tm_vocab_spec *spec);
/* The tokenizer.ggml.* keys of a parsed GGUF. -ENOENT if it has no vocabulary. */
int tm_tokenizer_load(struct tm_tokenizer **t, const struct tm_gguf *g);
void tm_tokenizer_free(struct tm_tokenizer *t);

/*
 * Tokenize len bytes of text (need not be valid UTF-8 or NUL-terminated).
 * add_special: prepend BOS / append EOS where the vocabulary asks for it
 * (llama_tokenize's add_special). parse_special: control tokens written in the
 * text become those tokens. Writes at most max ids and returns how many the
 * text has (more than max: call again with room for that many), or a
 * negative errno.
 */
int tm_tokenize(const struct tm_tokenizer *t, const char *text, size_t len,
		bool add_special, bool parse_special, int32_t *out, int max);
/* Same, into a malloc'ed array the caller frees. */
int tm_tokenize_alloc(const struct tm_tokenizer *t, const char *text, size_t len,
		      bool add_special, bool parse_special, int32_t **out);

/*
 * The bytes a token stands for (spaces restored, byte tokens as their byte).
 * Control and unknown tokens are empty unless special. Writes at most n bytes
 * (no NUL) and returns the piece's full length, or -EINVAL for a bad id.
 */
int tm_token_piece(const struct tm_tokenizer *t, int32_t id, bool special, char *buf, size_t n);
/*
 * The text of a sequence: the pieces, less the leading space an SPM
 * vocabulary puts before the first word. Returns the full length, writing at
 * most n bytes (no NUL), or a negative errno.
 */
int tm_detokenize(const struct tm_tokenizer *t, const int32_t *ids, size_t n_ids,
		  bool special, char *buf, size_t n);

enum tm_vocab_type tm_tokenizer_type(const struct tm_tokenizer *t);
uint32_t tm_tokenizer_n_vocab(const struct tm_tokenizer *t);
int32_t tm_tokenizer_bos(const struct tm_tokenizer *t);	/* -1 if none */
int32_t tm_tokenizer_eos(const struct tm_tokenizer *t);
bool tm_tokenizer_add_bos(const struct tm_tokenizer *t);
/* End of generation: EOS, EOT and the vocabulary's other end markers. */
bool tm_tokenizer_is_eog(const struct tm_tokenizer *t, int32_t id);
/* The token's text as the vocabulary spells it (not NUL-terminated). */
const char *tm_token_text(const struct tm_tokenizer *t, int32_t id, size_t *len);
/* The id whose vocabulary text is exactly these bytes, or -1. */
int32_t tm_tokenizer_find(const struct tm_tokenizer *t, const char *text, size_t len);

#endif
