// SPDX-License-Identifier: MIT
/*
 * SentencePiece-style tokenization as llama.cpp does it: start from UTF-8
 * characters, repeatedly merge the adjacent pair whose concatenation is the
 * vocabulary token with the highest score (the leftmost on a tie), then emit
 * each piece as its token or, failing that, as <0xNN> byte tokens.
 */
#include <errno.h>
#include <stdlib.h>

#include "lib/tokenizer/internal.h"
#include "tiermem/error.h"

struct spm_ctx {
	const struct tm_tokenizer *t;
	const char *text;
};

/* Two symbols merge if their concatenation is a token; its score is the priority. */
static int spm_prio(void *p, const struct tm_sym *s, int left, int right, float *prio)
{
	const struct spm_ctx *c = p;
	int32_t id = tm_strtab_find(&c->t->vocab, c->text + s[left].off, s[left].n + s[right].n);

	if (id < 0)
		return 0;
	*prio = c->t->scores[id];
	return 1;
}

int tm_spm_tokenize(const struct tm_tokenizer *t, const char *text, size_t len, struct tm_ids *out)
{
	struct tm_bigram_heap h = { 0 };
	struct tm_sym *s;
	int ns, err = 0;

	if (!len)
		return 0;
	s = malloc(len * sizeof(*s));
	if (!s)
		return tm_err(-ENOMEM, "tokenize: out of memory");
	ns = tm_syms_init(s, text, len);
	err = tm_syms_merge(s, ns, &h, spm_prio, &(struct spm_ctx){ t, text });
	for (int i = 0; i != -1 && !err; i = s[i].next) {
		int32_t id = tm_strtab_find(&t->vocab, text + s[i].off, s[i].n);

		if (id >= 0) {
			err = tm_ids_push(out, id);
			continue;
		}
		for (size_t k = 0; k < s[i].n && !err; k++) {
			unsigned char c = (unsigned char)text[s[i].off + k];

			if (t->byte_token[c] < 0)
				err = tm_err(-EINVAL, "tokenize: the vocabulary has no token for byte 0x%02X", c);
			else
				err = tm_ids_push(out, t->byte_token[c]);
		}
	}
	free(h.v);
	free(s);
	return err;
}
