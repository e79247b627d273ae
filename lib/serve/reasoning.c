// SPDX-License-Identifier: MIT
/*
 * The reasoning of a thinking model's reply, as llama-server's "deepseek"
 * reasoning format reads it: a leading <think>...</think> (or, when the
 * template opened the <think> in the prompt, everything up to </think>),
 * blanks trimmed, is the reasoning; the text after </think> and the blanks
 * that follow it is the content.
 */
#include <ctype.h>
#include <string.h>

#include "lib/serve/reasoning.h"
#include "tiermem/serve.h"

#define OPEN_TAG "<think>"
#define CLOSE_TAG "</think>"

static bool blank(char c)
{
	return isspace((unsigned char)c);
}

/* The length of the longest end of text[from..len) that is a proper start of tag. */
static size_t tag_start_at_end(const char *text, size_t from, size_t len, const char *tag)
{
	for (size_t h = strlen(tag) - 1; h > 0; h--)
		if (len - from >= h && !memcmp(text + len - h, tag, h))
			return h;
	return 0;
}

void think_split(const char *text, size_t len, bool forced_open, bool final, struct think_split *s)
{
	size_t p = 0, q = 0, n;
	const char *close;

	memset(s, 0, sizeof(*s));
	s->open = forced_open;
	if (!len)
		return;		/* text may still be NULL */
	if (!forced_open) {
		while (p < len && blank(text[p]))
			p++;
		n = len - p < strlen(OPEN_TAG) ? len - p : strlen(OPEN_TAG);
		if (n < strlen(OPEN_TAG) || memcmp(text + p, OPEN_TAG, n)) {
			/* no reasoning; or not known yet, while the reply may still be opening one */
			s->c_from = !final && !memcmp(text + p, OPEN_TAG, n) ? len : 0;
			return;
		}
		q = p + n;
		s->open = true;
	}
	s->r_from = q;
	while (s->r_from < len && blank(text[s->r_from]))
		s->r_from++;
	close = memmem(text + q, len - q, CLOSE_TAG, strlen(CLOSE_TAG));
	if (close) {
		s->open = false;
		s->r_to = (size_t)(close - text);
		s->c_from = s->r_to + strlen(CLOSE_TAG);
		while (s->c_from < len && blank(text[s->c_from]))
			s->c_from++;
	} else {
		s->r_to = final ? len : len - tag_start_at_end(text, q, len, CLOSE_TAG);
		s->c_from = len;
	}
	while (s->r_to > s->r_from && blank(text[s->r_to - 1]))
		s->r_to--;
	if (s->r_from > s->r_to)
		s->r_from = s->r_to;
}

bool think_forced_open(const char *prompt)
{
	size_t n = strlen(prompt), k = strlen(OPEN_TAG);

	while (n && blank(prompt[n - 1]))
		n--;
	return n >= k && !memcmp(prompt + n - k, OPEN_TAG, k);
}

int tm_reasoning_format_parse(const char *name)
{
	static const char *const names[] = {
		[TM_REASONING_AUTO] = "auto", [TM_REASONING_DEEPSEEK] = "deepseek", [TM_REASONING_NONE] = "none",
	};

	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}
