// SPDX-License-Identifier: MIT
/*
 * GPT-2 byte-level BPE as llama.cpp does it: split the text into words with
 * the pre-tokenizer's expression, map each word's bytes to the printable
 * code points of GPT-2's byte alphabet, merge adjacent pairs by rank (lowest
 * first, leftmost on a tie), emit each piece's token.
 *
 * The expressions are matched by hand over code point classes. GPT-2's
 * follows llama.cpp's own hand-written matcher; qwen2's is run by llama.cpp
 * through std::regex (ECMAScript: alternatives tried in order, greedy with
 * backtracking), whose results the code below reproduces alternative by
 * alternative; llama3's (and glm4's) differs from qwen2's only in taking up
 * to three digits at a time; kimi-k2's is llama.cpp's hand-written matcher
 * again. deepseek-v3's three expressions run through std::regex over a text
 * in which llama.cpp replaced each non-ASCII code point by one byte naming
 * its class (ASCII keeps classes of its own, the same as Unicode's).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/tokenizer/internal.h"
#include "tiermem/error.h"

/* ---- GPT-2's byte alphabet ---- */

/* Printable bytes stand for themselves; the rest get 256, 257, ... in order. */
static uint32_t byte_cp(unsigned b)
{
	unsigned n = 0;

	if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))
		return b;
	for (unsigned c = 0; c < b; c++)
		if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff)))
			n++;
	return 256 + n;
}

int tm_bpe_cp_to_byte(uint32_t cp)
{
	if (cp < 256)
		return byte_cp(cp) == cp ? (int)cp : -1;
	for (unsigned b = 0; b < 256; b++)
		if (byte_cp(b) == cp)
			return (int)b;
	return -1;
}

static size_t put_utf8(char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xc0 | (cp >> 6));
		p[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (char)(0xe0 | (cp >> 12));
		p[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		p[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	p[0] = (char)(0xf0 | (cp >> 18));
	p[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	p[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	p[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decode as llama.cpp does: a malformed or truncated sequence costs one byte
 * and becomes U+FFFD (so it is tokenized as EF BF BD).
 */
static size_t decode(const unsigned char *s, size_t len, uint32_t *cps)
{
	size_t n = 0;

	for (size_t i = 0; i < len;) {
		unsigned c = s[i];
		size_t k = !(c & 0x80) ? 1 : !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
		uint32_t cp;

		if (k > 1 && i + k - 1 >= len)
			k = 0;
		for (size_t j = 1; j < k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				k = 0;
		switch (k) {
		case 1: cp = c; break;
		case 2: cp = ((c & 0x1fu) << 6) | (s[i + 1] & 0x3fu); break;
		case 3: cp = ((c & 0x0fu) << 12) | ((s[i + 1] & 0x3fu) << 6) | (s[i + 2] & 0x3fu); break;
		case 4: cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3fu) << 12) | ((s[i + 2] & 0x3fu) << 6) | (s[i + 3] & 0x3fu); break;
		default: cp = 0xfffd; k = 1; break;
		}
		if (cp > 0x10ffff)
			cp = 0xfffd;
		cps[n++] = cp;
		i += k;
	}
	return n;
}

/* ---- pre-tokenizers: word lengths, in code points ---- */

struct words {
	const uint32_t *cp;
	const int8_t *cls;	/* TM_UC_* */
	size_t n;
	size_t *len;		/* out */
	size_t nw;
	size_t prev_end;
};

/* The full class: marks, punctuation and symbols apart. */
static int cat_at(const struct words *w, size_t i)
{
	return i < w->n ? w->cls[i] : TM_UC_NONE;
}

/* Letter, number, white space, or anything else (TM_UC_OTHER): what most expressions tell apart. */
static int cls_at(const struct words *w, size_t i)
{
	int c = cat_at(w, i);

	return c >= TM_UC_MARK ? TM_UC_OTHER : c;
}

static uint32_t cp_at(const struct words *w, size_t i)
{
	return i < w->n ? w->cp[i] : 0xffffffffu;
}

static void emit(struct words *w, size_t end)
{
	if (end > w->prev_end)
		w->len[w->nw++] = end - w->prev_end;
	w->prev_end = end;
}

static uint32_t lower_ascii(uint32_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d (case-insensitive unless exact): its length, or 0. */
static size_t contraction(const struct words *w, size_t p, bool any_case)
{
	uint32_t a, b;

	if (cp_at(w, p) != '\'' || p + 1 >= w->n)
		return 0;
	a = any_case ? lower_ascii(w->cp[p + 1]) : w->cp[p + 1];
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 2;
	if (p + 2 >= w->n)
		return 0;
	b = any_case ? lower_ascii(w->cp[p + 2]) : w->cp[p + 2];
	if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
		return 3;
	return 0;
}

/* A run of white space from p: its length; *nl is the end of its last \r or \n (0 if none). */
static size_t space_run(const struct words *w, size_t p, size_t *nl)
{
	size_t k = 0;

	*nl = 0;
	while (cls_at(w, p + k) == TM_UC_SPACE) {
		if (w->cp[p + k] == '\r' || w->cp[p + k] == '\n')
			*nl = p + k + 1;
		k++;
	}
	return k;
}

/* \s*[\r\n]+|\s+(?!\S)|\s+ from p, or one code point if p is not white space: the end of the word. */
static size_t space_word(const struct words *w, size_t p)
{
	size_t nl, k = space_run(w, p, &nl);

	if (nl)
		return nl;
	if (k > 1 && p + k < w->n)
		return p + k - 1;
	return p + (k ? k : 1);
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(struct words *w)
{
	for (size_t p = 0; p < w->n;) {
		size_t k = contraction(w, p, false), nl;
		bool sp = w->cp[p] == ' ';
		int c2 = cls_at(w, p + sp);

		if (k) {
			emit(w, p += k);
			continue;
		}
		if (c2 == TM_UC_LETTER || c2 == TM_UC_NUMBER || c2 == TM_UC_OTHER) {
			p += sp;
			while (cls_at(w, p) == c2)
				p++;
			emit(w, p);
			continue;
		}
		k = space_run(w, p, &nl);
		if (k > 1 && p + k < w->n)
			emit(w, p += k - 1);
		else if (k > 0)
			emit(w, p += k);
		else
			emit(w, ++p);
	}
}

/* \p{N}{1,max}: where the run of at most max digits from p ends */
static size_t digits_end(const struct words *w, size_t p, size_t max)
{
	for (size_t k = 0; k < max && cls_at(w, p) == TM_UC_NUMBER; k++)
		p++;
	return p;
}

/* " ?[^\s\p{L}\p{N}]+[\r\n]*" starts at p */
static bool symbols_at(const struct words *w, size_t p)
{
	return cls_at(w, p + (w->cp[p] == ' ')) == TM_UC_OTHER;
}

/* ... and ends here */
static size_t symbols_end(const struct words *w, size_t p)
{
	p += w->cp[p] == ' ';
	while (cls_at(w, p) == TM_UC_OTHER)
		p++;
	while (cp_at(w, p) == '\r' || cp_at(w, p) == '\n')
		p++;
	return p;
}

/*
 * (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}
 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+        (qwen2: D = 1, llama3: D = 3)
 */
static void split_qwen2(struct words *w, size_t max_digits)
{
	for (size_t p = 0; p < w->n;) {
		uint32_t c = w->cp[p];
		int k0 = cls_at(w, p);
		size_t k = contraction(w, p, true);

		if (k) {
			emit(w, p += k);
			continue;
		}
		/* [^\r\n\p{L}\p{N}]?\p{L}+ */
		if (c != '\r' && c != '\n' && k0 != TM_UC_NUMBER &&
		    (k0 == TM_UC_LETTER || cls_at(w, p + 1) == TM_UC_LETTER)) {
			p++;
			while (cls_at(w, p) == TM_UC_LETTER)
				p++;
			emit(w, p);
			continue;
		}
		if (k0 == TM_UC_NUMBER)
			emit(w, p = digits_end(w, p, max_digits));
		else if (symbols_at(w, p))
			emit(w, p = symbols_end(w, p));
		else
			emit(w, p = space_word(w, p));
	}
}

/* llama.cpp's Han: the CJK unified ideographs up to extension F and the compatibility ideographs. */
static bool is_han(uint32_t c)
{
	return (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff) ||
	       (c >= 0x20000 && c <= 0x2a6df) || (c >= 0x2a700 && c <= 0x2ebef) || (c >= 0x2f800 && c <= 0x2fa1f);
}

static bool letter_not_han(const struct words *w, size_t i)
{
	return cls_at(w, i) == TM_UC_LETTER && !is_han(w->cp[i]);
}

/*
 * kimi-k2, as llama.cpp matches it (its two letter alternatives, upper- then
 * lower-case, come out as one run of letters):
 * \p{Han}+|[^\r\n\p{L}\p{N}]?[\p{L}--\p{Han}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}
 * | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
static void split_kimi(struct words *w)
{
	for (size_t p = 0; p < w->n;) {
		uint32_t c = w->cp[p];
		int k0 = cls_at(w, p);
		bool lead = c != '\r' && c != '\n' && k0 != TM_UC_LETTER && k0 != TM_UC_NUMBER;

		if (is_han(c)) {
			while (p < w->n && is_han(w->cp[p]))
				p++;
			emit(w, p);
			continue;
		}
		if (k0 == TM_UC_LETTER || (lead && letter_not_han(w, p + 1))) {
			p++;
			while (letter_not_han(w, p))
				p++;
			emit(w, p += contraction(w, p, true));
			continue;
		}
		if (k0 == TM_UC_NUMBER)
			emit(w, p = digits_end(w, p, 3));
		else if (symbols_at(w, p))
			emit(w, p = symbols_end(w, p));
		else
			emit(w, p = space_word(w, p));
	}
}

/*
 * deepseek-v3: three expressions, each splitting the pieces of the one
 * before (matches and the stretches between them are pieces):
 *   \p{N}{1,3}
 *   [一-龥぀-ゟ゠-ヿ]+
 *   [!-/:-@[-`{-~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
static bool ds3_cjk(uint32_t c)
{
	return (c >= 0x4e00 && c <= 0x9fa5) || (c >= 0x3040 && c <= 0x30ff);
}

/* The class within the piece that ends at end. */
static int ds3_cat(const struct words *w, size_t i, size_t end)
{
	return i < end ? w->cls[i] : TM_UC_NONE;
}

static bool ascii_alpha(uint32_t c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static bool ascii_punct(uint32_t c)
{
	return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e);
}

static bool ds3_letter_mark(const struct words *w, size_t i, size_t end)
{
	int k = ds3_cat(w, i, end);

	return k == TM_UC_LETTER || k == TM_UC_MARK;
}

static bool ds3_punct_sym(const struct words *w, size_t i, size_t end)
{
	int k = ds3_cat(w, i, end);

	return k == TM_UC_PUNCT || k == TM_UC_SYMBOL;
}

/* The third expression's match at p, the piece ending at end: its length, 0 if none. */
static size_t ds3_match(const struct words *w, size_t p, size_t end)
{
	uint32_t c = w->cp[p];
	int k = ds3_cat(w, p, end);
	size_t q = p;

	if (ascii_punct(c) && p + 1 < end && ascii_alpha(w->cp[p + 1])) {
		for (q = p + 1; q < end && ascii_alpha(w->cp[q]); q++)
			;
		return q - p;
	}
	if ((c != '\r' && c != '\n' && k != TM_UC_LETTER && k != TM_UC_PUNCT && k != TM_UC_SYMBOL &&
	     ds3_letter_mark(w, p + 1, end)) || ds3_letter_mark(w, p, end)) {
		for (q = p + 1; ds3_letter_mark(w, q, end); q++)
			;
		return q - p;
	}
	if (c == ' ' && ds3_punct_sym(w, p + 1, end))
		q = p + 1;
	if (ds3_punct_sym(w, q, end)) {
		while (ds3_punct_sym(w, q, end))
			q++;
		while (q < end && (w->cp[q] == '\r' || w->cp[q] == '\n'))
			q++;
		return q - p;
	}
	if (k != TM_UC_SPACE)
		return 0;
	/* \s*[\r\n]+|\s+(?!\S)|\s+ within the piece */
	size_t nl = 0;
	for (q = p; q < end && w->cls[q] == TM_UC_SPACE; q++)
		if (w->cp[q] == '\r' || w->cp[q] == '\n')
			nl = q + 1;
	if (nl)
		return nl - p;
	return q - p > 1 && q < end ? q - p - 1 : q - p;
}

static void ds3_words(struct words *w, size_t p, size_t end)
{
	while (p < end) {
		size_t q = p, len = 0;

		while (q < end && !(len = ds3_match(w, q, end)))
			q++;
		emit(w, q);	/* what no alternative matches, if anything */
		if (q == end)
			break;
		emit(w, p = q + len);
	}
}

static void split_deepseek3(struct words *w)
{
	for (size_t p = 0; p < w->n;) {
		size_t q = p;

		if (w->cls[p] == TM_UC_NUMBER) {
			while (q < w->n && q - p < 3 && w->cls[q] == TM_UC_NUMBER)
				q++;
			emit(w, p = q);
			continue;
		}
		while (q < w->n && w->cls[q] != TM_UC_NUMBER)
			q++;
		while (p < q) {
			size_t r = p;
			bool cjk = ds3_cjk(w->cp[p]);

			while (r < q && ds3_cjk(w->cp[r]) == cjk)
				r++;
			if (cjk)
				emit(w, r);
			else
				ds3_words(w, p, r);
			p = r;
		}
	}
}

/* ---- merges ---- */

struct merger {
	const struct tm_tokenizer *t;
	const char *word;
	struct tm_sym *s;
	struct tm_bigram_heap h;
	char *key;		/* "left right" scratch, as long as the word + 1 */
};

/* Two symbols merge if "left right" is a merge rule; a lower rank merges first. */
static int bpe_prio(void *p, const struct tm_sym *s, int left, int right, float *prio)
{
	struct merger *m = p;
	int32_t rank;

	memcpy(m->key, m->word + s[left].off, s[left].n);
	m->key[s[left].n] = ' ';
	memcpy(m->key + s[left].n + 1, m->word + s[right].off, s[right].n);
	rank = tm_strtab_find(&m->t->merges, m->key, s[left].n + 1 + s[right].n);
	if (rank < 0)
		return 0;
	*prio = -(float)rank;	/* exact: ranks stay far below 2^24 */
	return 1;
}

/* One pre-tokenized word, already in the byte alphabet. */
static int merge_word(struct merger *m, const char *word, size_t len, struct tm_ids *out)
{
	const struct tm_tokenizer *t = m->t;
	struct tm_sym *s = m->s;
	int ns, err = 0;
	int32_t id;

	if (t->ignore_merges && (id = tm_strtab_find(&t->vocab, word, len)) >= 0)
		return tm_ids_push(out, id);
	m->word = word;
	ns = tm_syms_init(s, word, len);
	err = tm_syms_merge(s, ns, &m->h, bpe_prio, m);
	for (int i = 0; ns && i != -1 && !err; i = s[i].next) {
		id = tm_strtab_find(&t->vocab, word + s[i].off, s[i].n);
		if (id >= 0) {
			err = tm_ids_push(out, id);
			continue;
		}
		/* llama.cpp's fallback: each byte of the piece that is itself a token. */
		for (size_t k = 0; k < s[i].n && !err; k++)
			if ((id = tm_strtab_find(&t->vocab, word + s[i].off + k, 1)) >= 0)
				err = tm_ids_push(out, id);
	}
	return err;
}

int tm_bpe_tokenize(const struct tm_tokenizer *t, const char *text, size_t len, struct tm_ids *out)
{
	uint32_t *cp = malloc((len + 1) * sizeof(*cp));
	int8_t *cls = malloc(len + 1);
	size_t *wl = malloc((len + 1) * sizeof(*wl));
	/* A code point is at most 4 bytes, each at most 2 in the byte alphabet. */
	char *enc = malloc(8 * len + 1), *key = malloc(8 * len + 2);
	struct tm_sym *s = malloc((8 * len + 1) * sizeof(*s));
	struct merger m = { .t = t, .s = s, .key = key };
	struct words w = { .cp = cp, .cls = cls, .len = wl };
	int err = 0;

	if (!cp || !cls || !wl || !enc || !key || !s) {
		err = tm_err(-ENOMEM, "tokenize: out of memory");
		goto done;
	}
	w.n = decode((const unsigned char *)text, len, cp);
	for (size_t i = 0; i < w.n; i++)
		cls[i] = (int8_t)tm_uc_class(cp[i]);
	switch (t->pre) {
	case TM_PRE_GPT2: split_gpt2(&w); break;
	case TM_PRE_QWEN2: split_qwen2(&w, 1); break;
	case TM_PRE_LLAMA3: split_qwen2(&w, 3); break;
	case TM_PRE_DEEPSEEK3: split_deepseek3(&w); break;
	case TM_PRE_KIMI_K2: split_kimi(&w); break;
	default: err = tm_err(-EINVAL, "tokenize: no pre-tokenizer"); goto done;
	}
	for (size_t i = 0, at = 0; i < w.nw && !err; at += wl[i++]) {
		size_t n = 0;

		for (size_t j = at; j < at + wl[i]; j++) {
			char u[4];
			size_t k = put_utf8(u, cp[j]);

			for (size_t b = 0; b < k; b++)
				n += put_utf8(enc + n, byte_cp((unsigned char)u[b]));
		}
		err = merge_word(&m, enc, n, out);
	}
done:
	free(m.h.v);
	free(cp);
	free(cls);
	free(wl);
	free(enc);
	free(key);
	free(s);
	return err;
}
