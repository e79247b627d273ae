/* SPDX-License-Identifier: MIT */
/*
 * Tool calls in a model's output, in the syntax its chat template taught it
 * (qwen2.5/qwen3 <tool_call> JSON, llama-3.1 bare JSON, DeepSeek-V3's and
 * Kimi-K2's marker tokens, GLM-4.5's <arg_key>/<arg_value> pairs), turned
 * into OpenAI's tool_calls. Output that does not parse is plain content.
 */
#ifndef TIERMEM_SERVE_TOOLS_H
#define TIERMEM_SERVE_TOOLS_H

#include <jansson.h>
#include <stddef.h>

struct tool_call {
	char *id;		/* the model's own id (Kimi-K2), else NULL: the server makes one */
	char *name;
	char *args;		/* the arguments as compact JSON text (OpenAI sends them as a string) */
};

struct tool_parse {
	char *content;		/* the text before the first call (trailing blanks cut) and after the last; NULL if blank */
	struct tool_call *calls;
	int n_calls;
	/* where content came from, for a stream: text[0..before) then text[tail..tail + tail_len) */
	size_t before, tail, tail_len;
};

/* Whether the template family has a call syntax tools_parse reads. */
int tools_parsable(int tmpl);

/*
 * Parse the whole output. 0 with n_calls > 0: calls found; 0 with n_calls 0:
 * no call, a malformed one, or one of a function not in tools (content is
 * then all of the text); -1: out of memory. tools (the request's array, or
 * NULL: any name) gives the names a call may have, and GLM-4.5's argument
 * types: a value of a "string" parameter stays a string.
 */
int tools_parse(int tmpl, const char *text, size_t len, const json_t *tools, struct tool_parse *out);
void tools_parse_free(struct tool_parse *p);

/*
 * While streaming: how much of text[0..len) is surely content, so may be
 * sent now. Stops before the first call marker, before an end that could
 * begin one, and before trailing blanks (cut if a call follows).
 */
size_t tools_safe_prefix(int tmpl, const char *text, size_t len);

#endif
