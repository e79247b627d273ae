// SPDX-License-Identifier: MIT
/*
 * A thinking model's reply split into reasoning and content (llama-server's
 * "deepseek" reasoning format), whole and while it streams: fed one byte
 * at a time, what the split lets out adds up to the whole reply's split,
 * so no reasoning leaks into the content and nothing is sent twice.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/serve/reasoning.h"
#include "tiermem/serve.h"
#include "tap.h"

struct tcase {
	const char *text;
	bool forced;
	const char *reasoning, *content;
	bool open;
};

static const struct tcase cases[] = {
	{ "<think>\nLet me think.\n</think>\n\nThe answer.", false, "Let me think.", "The answer.", false },
	{ "Plain answer, no thinking.", false, "", "Plain answer, no thinking.", false },
	{ " \n<think>a b</think>c", false, "a b", "c", false },
	{ "<think>\n\n</think>\n\nHi", false, "", "Hi", false },
	{ "<think>\ncut off by max_tokens in the mid", false, "cut off by max_tokens in the mid", "", true },
	{ "<think>ends in </thi", false, "ends in </thi", "", true },
	{ "<think>x</think>", false, "x", "", false },
	{ "<think>a</think>b</think>c", false, "a", "b</think>c", false },
	{ "<thinking>not a tag</thinking>", false, "", "<thinking>not a tag</thinking>", false },
	{ "Text first <think>x</think> then", false, "", "Text first <think>x</think> then", false },
	{ "<", false, "", "<", false },
	{ "", false, "", "", false },
	{ "\n\n", false, "", "\n\n", false },
	{ "<b>bold</b> <tool_call>", false, "", "<b>bold</b> <tool_call>", false },
	{ "\xc3\xbc<think>", false, "", "\xc3\xbc<think>", false },
	/* the template opened the <think> */
	{ "\nreason \xe6\x97\xa5\n</think>\n\nanswer \n", true, "reason \xe6\x97\xa5", "answer \n", false },
	{ "no end, <", true, "no end, <", "", true },
	{ "", true, "", "", true },
	{ "<think>inner</think>out", true, "<think>inner", "out", false },
};

static char *cut(const char *text, size_t from, size_t to)
{
	return strndup(text + from, to > from ? to - from : 0);
}

static int whole(void)
{
	int bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *c = &cases[i];
		struct think_split s;
		char *r, *k;

		think_split(c->text, strlen(c->text), c->forced, true, &s);
		r = cut(c->text, s.r_from, s.r_to);
		k = cut(c->text, s.c_from, strlen(c->text));
		if (strcmp(r, c->reasoning) || strcmp(k, c->content) || s.open != c->open) {
			printf("# %zu: want [%s] [%s] %d, got [%s] [%s] %d\n", i, c->reasoning, c->content, c->open, r, k, s.open);
			bad++;
		}
		free(r);
		free(k);
	}
	return bad;
}

/* Stream each case one byte at a time, sending what each split lets out, then the rest at the end. */
static int streamed(void)
{
	int bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *c = &cases[i];
		size_t len = strlen(c->text), r_sent = 0, c_sent = 0;
		char r[256] = "", k[256] = "";

		for (size_t n = 0; n <= len; n++) {
			struct think_split s;
			bool final = n == len;
			size_t from;

			think_split(n ? c->text : NULL, n, c->forced, final, &s);
			if (s.r_to > s.r_from && s.r_to > r_sent) {
				from = r_sent > s.r_from ? r_sent : s.r_from;
				strncat(r, c->text + from, s.r_to - from);
				r_sent = s.r_to;
			}
			/* content at the latest from c_from on; never before what was sent */
			from = c_sent > s.c_from ? c_sent : s.c_from;
			if (n > from) {
				strncat(k, c->text + from, n - from);
				c_sent = n;
			}
		}
		if (strcmp(r, c->reasoning) || strcmp(k, c->content)) {
			printf("# %zu streamed: want [%s] [%s], got [%s] [%s]\n", i, c->reasoning, c->content, r, k);
			bad++;
		}
	}
	return bad;
}

int main(void)
{
	int n = (int)(sizeof(cases) / sizeof(cases[0]));

	tap_ok(!whole(), "%d replies split into reasoning and content: trimmed, a cut-off <think> all reasoning, "
	       "a <think> not at the start or not the tag is content, a prompt that opened it", n);
	tap_ok(!streamed(), "the same %d replies fed one byte at a time: what each partial split lets out adds up to "
	       "the whole split (no partial </think>, blank or undecided <think> sent early)", n);
	tap_ok(think_forced_open("<|im_start|>assistant\n<think>\n") && think_forced_open("<think>") &&
	       !think_forced_open("<|im_start|>assistant\n<think>\n\n</think>\n\n") && !think_forced_open("") &&
	       !think_forced_open("<|im_start|>assistant\n"), "a prompt that ends in <think> (and blanks) opens the reasoning");
	tap_ok(tm_reasoning_format_parse("auto") == TM_REASONING_AUTO &&
	       tm_reasoning_format_parse("deepseek") == TM_REASONING_DEEPSEEK &&
	       tm_reasoning_format_parse("none") == TM_REASONING_NONE && tm_reasoning_format_parse("deepseek-legacy") < 0 &&
	       tm_reasoning_format_parse("") < 0, "reasoning format names: auto, deepseek, none");
	return tap_done();
}
