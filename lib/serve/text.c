// SPDX-License-Identifier: MIT
/*
 * Generated text on its way to a client. Tokens end anywhere, also inside a
 * UTF-8 character or inside a stop sequence, but JSON needs whole, valid
 * characters and a client must never see the start of a stop sequence that
 * later completes. So the scheduler publishes only up to where both are
 * settled, and streamed and whole responses are built from the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/serve/internal.h"

int buf_append(char **buf, size_t *len, size_t *cap, const char *src, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 256;
		char *p;

		while (c < *len + n + 1)
			c *= 2;
		if (!(p = realloc(*buf, c)))
			return -1;
		*buf = p;
		*cap = c;
	}
	memcpy(*buf + *len, src, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* Length of the valid UTF-8 character at s (at most n bytes), or 0 if none is. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* n less an incomplete but so far valid character at the end, which the next token may finish. */
size_t utf8_complete(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;

	for (size_t back = 1; back <= 3 && back <= n; back++) {
		unsigned char c = s[n - back];
		size_t want;

		if ((c & 0xc0) == 0x80)
			continue;
		want = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 1;
		return want > back ? n - back : n;
	}
	return n;
}

/* Append src as valid UTF-8: each byte that starts no valid character becomes U+FFFD. */
int utf8_append(char **buf, size_t *len, size_t *cap, const char *src, size_t n)
{
	const unsigned char *s = (const unsigned char *)src;

	for (size_t i = 0; i < n;) {
		size_t run = i, l;

		while (run < n && (l = utf8_char(s + run, n - run)))
			run += l;
		if (run > i && buf_append(buf, len, cap, src + i, run - i))
			return -1;
		if (run < n) {
			if (buf_append(buf, len, cap, "\xef\xbf\xbd", 3))
				return -1;
			run++;
		}
		i = run;
	}
	return 0;
}

/* The longest end of s[0..n) that begins some stop sequence (without being all of it). */
size_t stop_holdback(const char *s, size_t n, char *const *stop, int n_stop)
{
	size_t best = 0;

	for (int k = 0; k < n_stop; k++) {
		size_t sl = strlen(stop[k]);

		for (size_t h = sl - 1 < n ? sl - 1 : n; h > best; h--)
			if (!memcmp(s + n - h, stop[k], h)) {
				best = h;
				break;
			}
	}
	return best;
}

/* Where the first stop sequence ending at or after `from` starts, or -1. */
long stop_find(const char *s, size_t n, size_t from, char *const *stop, int n_stop)
{
	long first = -1;

	for (int k = 0; k < n_stop; k++) {
		size_t sl = strlen(stop[k]);
		size_t start = from >= sl ? from - sl + 1 : 0;

		for (size_t p = start; p + sl <= n; p++)
			if (!memcmp(s + p, stop[k], sl)) {
				if (first < 0 || (long)p < first)
					first = (long)p;
				break;
			}
	}
	return first;
}
