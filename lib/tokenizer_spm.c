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

struct sym {
	int prev, next;
	size_t off, n;
};

struct bigram {
	int left, right;
	float score;
	size_t size;
};

/* True if a must come out of the heap before b: higher score, then leftmost. */
static bool before(const struct bigram *a, const struct bigram *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

struct heap {
	struct bigram *v;
	size_t n, cap;
};

static int heap_push(struct heap *h, struct bigram b)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct bigram *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return tm_err(-ENOMEM, "tokenize: out of memory");
		h->v = v;
		h->cap = cap;
	}
	for (i = h->n++; i > 0 && before(&b, &h->v[(i - 1) / 2]); i = (i - 1) / 2)
		h->v[i] = h->v[(i - 1) / 2];
	h->v[i] = b;
	return 0;
}

static struct bigram heap_pop(struct heap *h)
{
	struct bigram top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c]))
			c++;
		if (!before(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

static int try_pair(const struct tm_tokenizer *t, const char *text, const struct sym *s,
		    int left, int right, struct heap *h)
{
	size_t n;
	int32_t id;

	if (left < 0 || right < 0)
		return 0;
	n = s[left].n + s[right].n;
	id = tm_strtab_find(&t->vocab, text + s[left].off, n);
	if (id < 0)
		return 0;
	return heap_push(h, (struct bigram){ left, right, t->scores[id], n });
}

int tm_spm_tokenize(const struct tm_tokenizer *t, const char *text, size_t len, struct tm_ids *out)
{
	struct heap h = { 0 };
	struct sym *s;
	int ns = 0, err = 0;

	if (!len)
		return 0;
	s = malloc(len * sizeof(*s));
	if (!s)
		return tm_err(-ENOMEM, "tokenize: out of memory");
	for (size_t off = 0; off < len; ns++) {
		size_t n = tm_utf8_len((unsigned char)text[off]);

		if (n > len - off)
			n = len - off;
		s[ns] = (struct sym){ ns - 1, off + n == len ? -1 : ns + 1, off, n };
		off += n;
	}
	for (int i = 1; i < ns && !err; i++)
		err = try_pair(t, text, s, i - 1, i, &h);
	while (h.n && !err) {
		struct bigram b = heap_pop(&h);
		struct sym *l = &s[b.left], *r = &s[b.right];

		/* Stale: one side was merged since this pair was queued. */
		if (!l->n || !r->n || l->n + r->n != b.size)
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
