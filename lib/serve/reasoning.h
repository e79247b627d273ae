/* SPDX-License-Identifier: MIT */
/*
 * A thinking model's reply (Qwen3, DeepSeek-R1, GLM-4.5, ...) opens with its
 * reasoning between <think> and </think>; llama-server's reasoning formats
 * "auto" and "deepseek" return that part as reasoning_content and the rest
 * as content. This finds the two parts in the text, whole or while it is
 * still being generated (what of each may be sent already).
 */
#ifndef TIERMEM_SERVE_REASONING_H
#define TIERMEM_SERVE_REASONING_H

#include <stdbool.h>
#include <stddef.h>

struct think_split {
	/* the reasoning, blanks trimmed: text[r_from..r_to); empty if r_to <= r_from */
	size_t r_from, r_to;
	/* the content: text[c_from..len) once settled; while streaming, nothing of it before c_from */
	size_t c_from;
	bool open;		/* the reasoning has no </think> (yet) */
};

/*
 * Split text[0..len). forced_open: the prompt ended inside <think> (the
 * template opened it), so the reply starts in the reasoning. final: the
 * whole reply; else a prefix of it, and the split only says what is sure:
 * no reasoning before it starts or past an end that may begin </think> or
 * be trailing blanks, no content while the reply may still open a <think>
 * or is still in one (c_from is then len). A </think> never comes: all of
 * the rest is reasoning and the content is empty (llama-server does the
 * same with a reply cut off by max_tokens).
 */
void think_split(const char *text, size_t len, bool forced_open, bool final, struct think_split *s);

/* Whether a rendered prompt leaves the reply inside <think> (it ends with "<think>" and blanks). */
bool think_forced_open(const char *prompt);

#endif
