// SPDX-License-Identifier: MIT
/*
 * SentencePiece-style tokenization as llama.cpp does it: start from UTF-8
 * characters, repeatedly merge the adjacent pair whose concatenation is the
 * vocabulary token with the highest score (the leftmost on a tie), then emit
 * each piece as its token or, failing that, as <0xNN> byte tokens.
 */
#include <errno.h>
#include <stdlib.h>

#include "lib/tokenizer_internal.h"
#include "tiermem/error.h"

static int try_pair(const struct tm_tokenizer *t, const char *text, const struct tm_sym *s,
		    int left, int right, struct tm_bigram_heap *h)
{
	int32_t id;

	if (left < 0 || right < 0)
		return 0;
	id = tm_strtab_find(&t->vocab, text + s[left].off, s[left].n + s[right].n);
	if (id < 0)
		return 0;
	return tm_bigram_push(h, (struct tm_bigram){ left, right, t->scores[id], s[left].n, s[right].n });
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
	for (int i = 1; i < ns && !err; i++)
		err = try_pair(t, text, s, i - 1, i, &h);
	while (h.n && !err) {
		struct tm_bigram b = tm_bigram_pop(&h);
		struct tm_sym *l = &s[b.left], *r = &s[b.right];

		if (tm_bigram_stale(s, &b))
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		err = try_pair(t, text, s, l->prev, b.left, &h);
		if (!err)
			err = try_pair(t, text, s, b.left, l->next, &h);
	}
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
