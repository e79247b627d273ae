// SPDX-License-Identifier: MIT
/*
 * The chat templates, each written from what its Jinja text does for
 * system, user and assistant messages with plain-string contents, and for
 * qwen2.5 and llama3.1 tools, tool calls and tool results. Whitespace
 * matters: these strings are token for token what the model saw in training.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/serve/chat.h"
#include "lib/serve/internal.h"

static const char *const names[CHAT_N] = {
	[CHAT_CHATML] = "chatml", [CHAT_LLAMA2] = "llama2", [CHAT_LLAMA3] = "llama3",
	[CHAT_DEEPSEEK3] = "deepseek3", [CHAT_KIMI_K2] = "kimi-k2", [CHAT_GLM4] = "glm4",
	[CHAT_QWEN2] = "qwen2", [CHAT_QWEN25] = "qwen2.5", [CHAT_LLAMA31] = "llama3.1",
	[CHAT_QWEN3] = "qwen3", [CHAT_GLM45] = "glm4.5",
};

int chat_tmpl_parse(const char *name)
{
	for (int i = 0; i < CHAT_N; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

const char *chat_tmpl_name(int t)
{
	return t >= 0 && t < CHAT_N ? names[t] : "?";
}

const char *chat_tmpl_names(void)
{
	return "chatml, qwen2, qwen2.5, qwen3, llama2, llama3, llama3.1, deepseek3, kimi-k2, glm4, glm4.5";
}

bool chat_tmpl_tools(int t)
{
	return t == CHAT_QWEN25 || t == CHAT_QWEN3 || t == CHAT_LLAMA31 || t == CHAT_DEEPSEEK3 || t == CHAT_KIMI_K2 ||
	       t == CHAT_GLM45;
}

int chat_tmpl_detect(const char *t)
{
	if (!t)
		return CHAT_CHATML;
	/* most specific markers first: Kimi's <|im_end|> would also pass for ChatML */
	if (strstr(t, "<|im_assistant|>assistant<|im_middle|>"))
		return CHAT_KIMI_K2;
	if (strstr(t, "<|im_start|>")) {
		/* the Qwen2 family's default system prompts (Qwen3 has none) */
		if (strstr(t, "You are Qwen, created by Alibaba Cloud."))
			return CHAT_QWEN25;
		if (strstr(t, "<|im_start|>system\\nYou are a helpful assistant.<|im_end|>"))
			return CHAT_QWEN2;
		/* Qwen3: tool calls, and the <think> of answers after the last query */
		if (strstr(t, "<tool_call>") && strstr(t, "last_query_index"))
			return CHAT_QWEN3;
		return CHAT_CHATML;
	}
	if (strstr(t, "<|start_header_id|>") && strstr(t, "<|end_header_id|>"))
		return strstr(t, "Cutting Knowledge Date:") ? CHAT_LLAMA31 : CHAT_LLAMA3;
	if (strstr(t, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>") && strstr(t, "<\xef\xbd\x9c" "User\xef\xbd\x9c>"))
		return CHAT_DEEPSEEK3;
	if (strstr(t, "[gMASK]<sop>"))
		return strstr(t, "<arg_key>") ? CHAT_GLM45 : CHAT_GLM4;
	if (strstr(t, "[INST]"))
		return CHAT_LLAMA2;
	return CHAT_CHATML;
}

struct out {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void put(struct out *o, const char *s)
{
	if (!o->oom && buf_append(&o->buf, &o->len, &o->cap, s, strlen(s)))
		o->oom = true;
}

static void put_n(struct out *o, const char *s, size_t n)
{
	if (!o->oom && buf_append(&o->buf, &o->len, &o->cap, s, n))
		o->oom = true;
}

/* Jinja's trim/strip: Python's str.strip() of whitespace. */
static void put_stripped(struct out *o, const char *s)
{
	size_t n = strlen(s);

	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	put_n(o, s, n);
}

/* A number as JavaScript's JSON.stringify writes it (what @huggingface/jinja's tojson gives). */
static void put_number(struct out *o, double x)
{
	char buf[64], digits[32];
	int p, e;

	if (x == 0 || (x == trunc(x) && fabs(x) < 1e21)) {
		snprintf(buf, sizeof(buf), "%.0f", x == 0 ? 0.0 : x);
		put(o, buf);
		return;
	}
	/* the fewest significant digits that read back as x */
	for (p = 1; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*e", p - 1, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	snprintf(buf, sizeof(buf), "%.*e", p - 1, x);
	e = atoi(strchr(buf, 'e') + 1);
	if (e >= -6 && e < 21) {
		snprintf(buf, sizeof(buf), "%.*f", p - 1 - e > 0 ? p - 1 - e : 0, x);
	} else {
		/* d.ddde+N, no zero padding of the exponent */
		snprintf(digits, sizeof(digits), "%.*s", (int)(strchr(buf, 'e') - buf), buf);
		snprintf(buf, sizeof(buf), "%se%c%d", digits, e < 0 ? '-' : '+', abs(e));
	}
	put(o, buf);
}

/* A string as JSON.stringify quotes it: \" \\ \b \f \n \r \t, other controls as \u00xx, the rest as is. */
static void put_quoted(struct out *o, const char *s, size_t n)
{
	char esc[8];

	put(o, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *r = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f" :
				c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;

		if (r) {
			put(o, r);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(o, esc);
		} else {
			put_n(o, s + i, 1);
		}
	}
	put(o, "\"");
}

/*
 * Jinja's tojson as @huggingface/jinja (and transformers) write it: ", " and
 * ": " between items, or with indent one item per line; keys in their order.
 */
static void put_json(struct out *o, const json_t *v, int indent, int depth)
{
	char pad[256];
	const char *key;
	json_t *x;
	size_t i, n = json_is_object(v) ? json_object_size(v) : json_array_size(v);

	switch (json_typeof(v)) {
	case JSON_STRING: put_quoted(o, json_string_value(v), json_string_length(v)); return;
	case JSON_INTEGER:
		snprintf(pad, sizeof(pad), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		put(o, pad);
		return;
	case JSON_REAL: put_number(o, json_real_value(v)); return;
	case JSON_TRUE: put(o, "true"); return;
	case JSON_FALSE: put(o, "false"); return;
	case JSON_NULL: put(o, "null"); return;
	default: break;
	}
	/* "\n" and the children's indentation */
	snprintf(pad, sizeof(pad), "\n%*s", indent * (depth + 1) < 200 ? indent * (depth + 1) : 200, "");
	put(o, json_is_object(v) ? "{" : "[");
	i = 0;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, x) {
			put(o, i++ ? (indent ? "," : ", ") : "");
			if (indent)
				put(o, pad);
			put_quoted(o, key, strlen(key));
			put(o, ": ");
			put_json(o, x, indent, depth + 1);
		}
	} else {
		json_array_foreach(v, i, x) {
			put(o, i ? (indent ? "," : ", ") : "");
			if (indent)
				put(o, pad);
			put_json(o, x, indent, depth + 1);
		}
	}
	if (indent && n)
		put_n(o, pad, 1 + (size_t)indent * depth);
	put(o, json_is_object(v) ? "}" : "]");
}

static bool is(const struct chat_msg *m, const char *role)
{
	return !strcmp(m->role, role);
}

static void chatml(struct out *o, const struct chat_msg *m, int n, bool gen)
{
	for (int i = 0; i < n; i++) {
		put(o, "<|im_start|>");
		put(o, m[i].role);
		put(o, "\n");
		put(o, m[i].content);
		put(o, "<|im_end|>\n");
	}
	if (gen)
		put(o, "<|im_start|>assistant\n");
}

#define QWEN2_SYSTEM "You are a helpful assistant."
#define QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

/*
 * Qwen2 and Qwen2.5: ChatML with a default system prompt when the first
 * message is not one; Qwen2.5's tools go into the system message, calls
 * into <tool_call> JSON, and a run of tool results into one user turn of
 * <tool_response>s.
 */
static void qwen(struct out *o, const struct chat_msg *m, int n, const json_t *tools, bool gen, bool v25)
{
	bool has_sys = n && is(&m[0], "system");

	if (tools) {
		size_t i;
		json_t *t;

		put(o, "<|im_start|>system\n");
		put(o, has_sys ? m[0].content : QWEN25_SYSTEM);
		put(o, "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
		       "You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
		json_array_foreach(tools, i, t) {
			put(o, "\n");
			put_json(o, t, 0, 0);
		}
		put(o, "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
		       "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
		       "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n");
	} else if (!has_sys && n) {
		put(o, "<|im_start|>system\n");
		put(o, v25 ? QWEN25_SYSTEM : QWEN2_SYSTEM);
		put(o, "<|im_end|>\n");
	}
	for (int i = 0; i < n; i++) {
		if (!v25 || is(&m[i], "user") || (is(&m[i], "system") && (i || !tools)) ||
		    (is(&m[i], "assistant") && !m[i].n_calls)) {
			put(o, "<|im_start|>");
			put(o, m[i].role);
			put(o, "\n");
			put(o, m[i].content);
			put(o, "<|im_end|>\n");
		} else if (is(&m[i], "assistant")) {
			put(o, "<|im_start|>assistant");
			if (*m[i].content) {
				put(o, "\n");
				put(o, m[i].content);
			}
			for (int c = 0; c < m[i].n_calls; c++) {
				put(o, "\n<tool_call>\n{\"name\": \"");
				put(o, m[i].calls[c].name);
				put(o, "\", \"arguments\": ");
				put_json(o, m[i].calls[c].args, 0, 0);
				put(o, "}\n</tool_call>");
			}
			put(o, "<|im_end|>\n");
		} else if (is(&m[i], "tool")) {
			if (!i || !is(&m[i - 1], "tool"))
				put(o, "<|im_start|>user");
			put(o, "\n<tool_response>\n");
			put(o, m[i].content);
			put(o, "\n</tool_response>");
			if (i == n - 1 || !is(&m[i + 1], "tool"))
				put(o, "<|im_end|>\n");
		}
	}
	if (gen)
		put(o, "<|im_start|>assistant\n");
}

static int llama2(struct out *o, const struct chat_msg *m, int n, const char *bos, const char *eos)
{
	const char *sys = NULL;

	if (n && is(&m[0], "system"))
		sys = m[0].content, m++, n--;
	for (int i = 0; i < n; i++) {
		if (is(&m[i], "user") != (i % 2 == 0))
			return -1;
		if (is(&m[i], "user")) {
			put(o, bos);
			put(o, "[INST] ");
			if (i == 0 && sys) {
				/* the template strips the whole of "<<SYS>>\n" + system + ... + user */
				struct out t = { 0 };

				put(&t, "<<SYS>>\n");
				put(&t, sys);
				put(&t, "\n<</SYS>>\n\n");
				put(&t, m[i].content);
				if (t.oom)
					o->oom = true;
				else
					put_stripped(o, t.buf);
				free(t.buf);
			} else {
				put_stripped(o, m[i].content);
			}
			put(o, " [/INST]");
		} else if (is(&m[i], "assistant")) {
			put(o, " ");
			put_stripped(o, m[i].content);
			put(o, " ");
			put(o, eos);
		}
	}
	return 0;
}

static void llama3(struct out *o, const struct chat_msg *m, int n, bool gen, const char *bos)
{
	for (int i = 0; i < n; i++) {
		if (i == 0)
			put(o, bos);
		put(o, "<|start_header_id|>");
		put(o, m[i].role);
		put(o, "<|end_header_id|>\n\n");
		put_stripped(o, m[i].content);
		put(o, "<|eot_id|>");
	}
	if (gen)
		put(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/*
 * llama-3.1: a system header with the knowledge and today's dates (the
 * template's default date) and the system message; with tools,
 * "Environment: ipython" there and the tools (indented JSON) in the first
 * user turn; a call as {"name", "parameters"} JSON, one per message; a tool
 * result as an ipython turn (a string result is JSON-quoted: the template
 * tests `is iterable`, which a string is).
 */
static int llama31(struct out *o, const struct chat_msg *m, int n, const json_t *tools, bool gen,
		   const char *bos, const char **why)
{
	put(o, bos);
	put(o, "<|start_header_id|>system<|end_header_id|>\n\n");
	if (tools)
		put(o, "Environment: ipython\n");
	put(o, "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
	if (n && is(&m[0], "system")) {
		put_stripped(o, m[0].content);
		m++, n--;
	}
	put(o, "<|eot_id|>");
	if (tools) {
		size_t i;
		json_t *t;

		if (!n) {
			*why = "llama3.1 template: tools go into the first user message, and there is none";
			return -1;
		}
		put(o, "<|start_header_id|>user<|end_header_id|>\n\n"
		       "Given the following functions, please respond with a JSON for a function call "
		       "with its proper arguments that best answers the given prompt.\n\n"
		       "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument "
		       "name and its value}.Do not use variables.\n\n");
		json_array_foreach(tools, i, t) {
			put_json(o, t, 4, 0);
			put(o, "\n\n");
		}
		put_stripped(o, m[0].content);
		put(o, "<|eot_id|>");
		m++, n--;
	}
	for (int i = 0; i < n; i++) {
		if (is(&m[i], "tool") || is(&m[i], "ipython")) {
			put(o, "<|start_header_id|>ipython<|end_header_id|>\n\n");
			put_quoted(o, m[i].content, strlen(m[i].content));
		} else if (m[i].calls) {
			if (m[i].n_calls != 1) {
				*why = "llama3.1 template: one tool call per message";
				return -1;
			}
			put(o, "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"");
			put(o, m[i].calls[0].name);
			put(o, "\", \"parameters\": ");
			put_json(o, m[i].calls[0].args, 0, 0);
			put(o, "}");
		} else {
			put(o, "<|start_header_id|>");
			put(o, m[i].role);
			put(o, "<|end_header_id|>\n\n");
			put_stripped(o, m[i].content);
		}
		put(o, "<|eot_id|>");
	}
	if (gen)
		put(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	return 0;
}

#define FW_BAR "\xef\xbd\x9c"		/* U+FF5C, DeepSeek's full-width bar */
#define LOW_BLOCK "\xe2\x96\x81"	/* U+2581 */
#define DS(x) "<" FW_BAR x FW_BAR ">"
#define DS_(a, b, c) DS(a LOW_BLOCK b LOW_BLOCK c)

/*
 * DeepSeek-V3's template declares no tools: tiermem's system-prompt text for
 * them, the tools' JSON one per line between these two (suite 66 builds the
 * same text for @huggingface/jinja).
 */
#define DEEPSEEK3_TOOLS_INTRO "## Tools\n\nYou can call these functions (name, description, JSON-schema parameters):"
#define DEEPSEEK3_TOOLS_CALL "\n\nTo call functions, answer with:\n" DS_("tool", "calls", "begin") \
	DS_("tool", "call", "begin") "function" DS("tool" LOW_BLOCK "sep") "NAME\n```json\nARGUMENTS\n```" \
	DS_("tool", "call", "end") DS_("tool", "calls", "end")

/* A piece of a string: what Jinja's split/strip give back. */
struct span {
	const char *p;
	size_t n;
};

static struct span span_of(const char *s)
{
	return (struct span){ s, strlen(s) };
}

static const char *span_find(struct span s, const char *needle, bool last)
{
	size_t k = strlen(needle);
	const char *at = NULL;

	for (size_t i = 0; i + k <= s.n; i++)
		if (!memcmp(s.p + i, needle, k)) {
			at = s.p + i;
			if (!last)
				break;
		}
	return at;
}

/* Python's lstrip/rstrip of the characters in `set` ("\n", or NULL for whitespace). */
static bool in_set(char c, const char *set)
{
	return set ? c && strchr(set, c) : isspace((unsigned char)c);
}

static struct span lstrip(struct span s, const char *set)
{
	while (s.n && in_set(*s.p, set))
		s.p++, s.n--;
	return s;
}

static struct span rstrip(struct span s, const char *set)
{
	while (s.n && in_set(s.p[s.n - 1], set))
		s.n--;
	return s;
}

static void put_span(struct out *o, struct span s)
{
	put_n(o, s.p, s.n);
}

/* content.split('</think>')[-1] */
static struct span after_think(struct span c)
{
	const char *at = span_find(c, "</think>", true);

	return at ? (struct span){ at + 8, c.n - (size_t)(at + 8 - c.p) } : c;
}

/* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n'): the reasoning of a "<think>...</think>" answer */
static struct span think_of(struct span c)
{
	const char *end = span_find(c, "</think>", false), *open;
	struct span r;

	if (!end)
		return (struct span){ c.p, 0 };
	r = rstrip((struct span){ c.p, (size_t)(end - c.p) }, "\n");
	open = span_find(r, "<think>", true);
	if (open)
		r = (struct span){ open + 7, r.n - (size_t)(open + 7 - r.p) };
	return lstrip(r, "\n");
}

/* A call's arguments where the template tests `arguments is string`: the client's text as sent, else tojson. */
static void put_args(struct out *o, const struct chat_call *c)
{
	if (c->args_text)
		put(o, c->args_text);
	else
		put_json(o, c->args, 0, 0);
}

/*
 * DeepSeek-V3 (and R1): system messages joined first; a call as
 * function<sep>NAME + fenced JSON; tool outputs in one outputs block closed
 * by the next assistant text. Its is_first and is_output_first flags are
 * never reset, so only the conversation's first call opens a calls block and
 * only its first output opens an outputs block: kept as the template has it.
 * The template has no place for tool declarations, so (as llama.cpp does
 * for such templates) they go into the system prompt, as one more system
 * message after the others, with the call syntax the template writes.
 */
static void deepseek3(struct out *o, const struct chat_msg *m, int n, const json_t *tools, bool gen, const char *bos)
{
	bool first = true, is_tool = false, first_call = true, first_output = true;

	put(o, bos);
	for (int i = 0; i < n; i++)
		if (is(&m[i], "system")) {
			if (!first)
				put(o, "\n\n");
			put(o, m[i].content);
			first = false;
		}
	if (tools) {
		size_t i;
		json_t *t;

		if (!first)
			put(o, "\n\n");
		put(o, DEEPSEEK3_TOOLS_INTRO);
		json_array_foreach(tools, i, t) {
			put(o, "\n");
			put_json(o, t, 0, 0);
		}
		put(o, DEEPSEEK3_TOOLS_CALL);
	}
	for (int i = 0; i < n; i++) {
		if (is(&m[i], "user")) {
			is_tool = false;
			put(o, DS("User"));
			put(o, m[i].content);
		} else if (is(&m[i], "assistant") && m[i].calls) {
			is_tool = false;
			for (int c = 0; c < m[i].n_calls; c++) {
				if (first_call) {
					put(o, DS("Assistant"));
					put(o, m[i].content);
					put(o, DS_("tool", "calls", "begin"));
					first_call = false;
				} else {
					put(o, "\n");
				}
				put(o, DS_("tool", "call", "begin") "function" DS("tool" LOW_BLOCK "sep"));
				put(o, m[i].calls[c].name);
				put(o, "\n```json\n");
				put_args(o, &m[i].calls[c]);
				put(o, "\n```" DS_("tool", "call", "end"));
			}
			put(o, DS_("tool", "calls", "end") DS_("end", "of", "sentence"));
		} else if (is(&m[i], "assistant")) {
			if (is_tool) {
				put(o, DS_("tool", "outputs", "end"));
				put(o, m[i].content);
				is_tool = false;
			} else {
				put(o, DS("Assistant"));
				put_span(o, after_think(span_of(m[i].content)));
			}
			put(o, DS_("end", "of", "sentence"));
		} else if (is(&m[i], "tool")) {
			is_tool = true;
			if (first_output)
				put(o, DS_("tool", "outputs", "begin"));
			first_output = false;
			put(o, DS_("tool", "output", "begin"));
			put(o, m[i].content);
			put(o, DS_("tool", "output", "end"));
		}
	}
	if (is_tool)
		put(o, DS_("tool", "outputs", "end"));
	else if (gen)
		put(o, DS("Assistant"));
}

/*
 * Kimi-K2 (Instruct-0905): a message's name, when it has one, written in
 * place of its role; tools declared as one JSON array; a call as
 * <|tool_call_begin|>ID<|tool_call_argument_begin|>ARGS; a tool result as
 * "## Return of ID"; without the generation prompt the last message stays
 * open (no <|im_end|>), for the model to continue it.
 */
static void kimi_k2(struct out *o, const struct chat_msg *m, int n, const json_t *tools, bool gen)
{
	if (tools) {
		put(o, "<|im_system|>tool_declare<|im_middle|>\n  # Tools\n  ");
		put_json(o, tools, 0, 0);
		put(o, "<|im_end|>");
	}
	for (int i = 0; i < n; i++) {
		if (i == 0 && !is(&m[0], "system"))
			put(o, "<|im_system|>system<|im_middle|>You are Kimi, an AI assistant created by Moonshot AI.<|im_end|>");
		put(o, is(&m[i], "user") ? "<|im_user|>" : is(&m[i], "assistant") ? "<|im_assistant|>" : "<|im_system|>");
		put(o, m[i].name && *m[i].name ? m[i].name : m[i].role);
		put(o, "<|im_middle|>");
		if (is(&m[i], "assistant") && m[i].calls) {
			put(o, m[i].content);
			put(o, "<|tool_calls_section_begin|>");
			for (int c = 0; c < m[i].n_calls; c++) {
				put(o, "<|tool_call_begin|>");
				put(o, m[i].calls[c].id ? m[i].calls[c].id : "");
				put(o, "<|tool_call_argument_begin|>");
				put_args(o, &m[i].calls[c]);
				put(o, "<|tool_call_end|>");
			}
			put(o, "<|tool_calls_section_end|>");
		} else if (is(&m[i], "tool")) {
			put(o, "## Return of ");
			put(o, m[i].tool_call_id ? m[i].tool_call_id : "");
			put(o, "\n    ");
			put(o, m[i].content);
		} else {
			put(o, m[i].content);
		}
		if (gen || i < n - 1)
			put(o, "<|im_end|>");
	}
	if (gen)
		put(o, "<|im_assistant|>assistant<|im_middle|>");
}

/*
 * Qwen3: ChatML without a default system prompt; tools in the system
 * message as Qwen2.5 has them; an answer's <think> reasoning (its
 * reasoning_content, else what its content holds) is kept only
 * after the last real user query (the rest lose it), and calls follow as
 * <tool_call> JSON; with thinking off the generation prompt holds an
 * empty <think> block.
 */
static void qwen3(struct out *o, const struct chat_msg *m, int n, const json_t *tools, bool gen, bool thinking)
{
	bool has_sys = n && is(&m[0], "system");
	int last_query = n - 1;

	if (tools) {
		size_t i;
		json_t *t;

		put(o, "<|im_start|>system\n");
		if (has_sys) {
			put(o, m[0].content);
			put(o, "\n\n");
		}
		put(o, "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
		       "You are provided with function signatures within <tools></tools> XML tags:\n<tools>");
		json_array_foreach(tools, i, t) {
			put(o, "\n");
			put_json(o, t, 0, 0);
		}
		put(o, "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
		       "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
		       "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n");
	} else if (has_sys) {
		put(o, "<|im_start|>system\n");
		put(o, m[0].content);
		put(o, "<|im_end|>\n");
	}
	/* the last user message that is not tool results wrapped as one */
	for (int i = n - 1; i >= 0; i--) {
		size_t len = strlen(m[i].content);

		if (is(&m[i], "user") && !(!strncmp(m[i].content, "<tool_response>", 15) && len >= 16 &&
					  !strcmp(m[i].content + len - 16, "</tool_response>"))) {
			last_query = i;
			break;
		}
	}
	for (int i = 0; i < n; i++) {
		if (is(&m[i], "user") || (is(&m[i], "system") && i)) {
			put(o, "<|im_start|>");
			put(o, m[i].role);
			put(o, "\n");
			put(o, m[i].content);
			put(o, "<|im_end|>\n");
		} else if (is(&m[i], "assistant")) {
			struct span c = span_of(m[i].content), r = { c.p, 0 };

			if (m[i].reasoning) {
				r = span_of(m[i].reasoning);
			} else if (span_find(c, "</think>", false)) {
				r = think_of(c);
				c = lstrip(after_think(c), "\n");
			}
			put(o, "<|im_start|>assistant\n");
			if (i > last_query && (i == n - 1 || r.n)) {
				put(o, "<think>\n");
				put_span(o, rstrip(lstrip(r, "\n"), "\n"));
				put(o, "\n</think>\n\n");
				put_span(o, lstrip(c, "\n"));
			} else {
				put_span(o, c);
			}
			for (int k = 0; k < m[i].n_calls; k++) {
				if (k || c.n)
					put(o, "\n");
				put(o, "<tool_call>\n{\"name\": \"");
				put(o, m[i].calls[k].name);
				put(o, "\", \"arguments\": ");
				put_args(o, &m[i].calls[k]);
				put(o, "}\n</tool_call>");
			}
			put(o, "<|im_end|>\n");
		} else if (is(&m[i], "tool")) {
			if (!i || !is(&m[i - 1], "tool"))
				put(o, "<|im_start|>user");
			put(o, "\n<tool_response>\n");
			put(o, m[i].content);
			put(o, "\n</tool_response>");
			if (i == n - 1 || !is(&m[i + 1], "tool"))
				put(o, "<|im_end|>\n");
		}
	}
	if (gen)
		put(o, thinking ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

static void glm4(struct out *o, const struct chat_msg *m, int n, bool gen)
{
	put(o, "[gMASK]<sop>");
	for (int i = 0; i < n; i++) {
		if (!is(&m[i], "system") && !is(&m[i], "user") && !is(&m[i], "assistant"))
			continue;
		put(o, "<|");
		put(o, m[i].role);
		put(o, "|>\n");
		put(o, m[i].content);
	}
	if (gen)
		put(o, "<|assistant|>");
}

/*
 * GLM-4.5/4.6 (glm4moe): tools in a first system turn; every answer opens
 * with <think></think> (its reasoning, reasoning_content or from the
 * content, kept only after the last user turn); with thinking off, user
 * turns end in /nothink and the generation prompt closes the <think>;
 * a call as <tool_call>NAME and <arg_key>/<arg_value> lines, a string value
 * as is and any other as JSON; tool results under <|observation|>.
 */
static void glm45(struct out *o, const struct chat_msg *m, int n, const json_t *tools, bool gen, bool thinking)
{
	int last_user = -1;

	put(o, "[gMASK]<sop>");
	if (tools) {
		size_t i;
		json_t *t;

		put(o, "<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
		       "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n");
		json_array_foreach(tools, i, t) {
			put_json(o, t, 0, 0);
			put(o, "\n");
		}
		put(o, "</tools>\n\nFor each function call, output the function name and arguments within the following "
		       "XML format:\n<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}"
		       "</arg_value>\n<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>");
	}
	for (int i = 0; i < n; i++)
		if (is(&m[i], "user"))
			last_user = i;
	for (int i = 0; i < n; i++) {
		if (is(&m[i], "user") || is(&m[i], "system")) {
			size_t len = strlen(m[i].content);

			put(o, is(&m[i], "user") ? "<|user|>\n" : "<|system|>\n");
			put(o, m[i].content);
			if (is(&m[i], "user") && !thinking && !(len >= 8 && !strcmp(m[i].content + len - 8, "/nothink")))
				put(o, "/nothink");
		} else if (is(&m[i], "assistant")) {
			struct span c = span_of(m[i].content), r = { c.p, 0 };

			if (m[i].reasoning) {
				r = span_of(m[i].reasoning);
			} else if (span_find(c, "</think>", false)) {
				r = think_of(c);
				c = lstrip(after_think(c), "\n");
			}
			put(o, "<|assistant|>\n<think>");
			if (i > last_user && r.n)
				put_span(o, rstrip(lstrip(r, NULL), NULL));
			put(o, "</think>");
			c = rstrip(lstrip(c, NULL), NULL);
			if (c.n) {
				put(o, "\n");
				put_span(o, c);
			}
			for (int k = 0; k < m[i].n_calls; k++) {
				const char *key;
				json_t *v;

				put(o, "\n<tool_call>");
				put(o, m[i].calls[k].name);
				json_object_foreach(m[i].calls[k].args, key, v) {
					put(o, "\n<arg_key>");
					put(o, key);
					put(o, "</arg_key>\n<arg_value>");
					if (json_is_string(v))
						put_n(o, json_string_value(v), json_string_length(v));
					else
						put_json(o, v, 0, 0);
					put(o, "</arg_value>");
				}
				put(o, "\n</tool_call>");
			}
		} else if (is(&m[i], "tool")) {
			if (!i || !is(&m[i - 1], "tool"))
				put(o, "<|observation|>");
			put(o, "\n<tool_response>\n");
			put(o, m[i].content);
			put(o, "\n</tool_response>");
		}
	}
	if (gen)
		put(o, thinking ? "<|assistant|>" : "<|assistant|>\n<think></think>");
}

char *chat_render(int tmpl, const struct chat_msg *msgs, int n, const json_t *tools, bool gen, bool thinking,
		  const char *bos, const char *eos, const char **why)
{
	struct out o = { 0 };
	bool calls = false;

	*why = NULL;
	for (int i = 0; i < n; i++)
		calls |= msgs[i].calls != NULL;
	/* an empty array: Qwen's `if tools` is false, llama-3.1's `tools is not none` true */
	if (((tools && json_array_size(tools)) || calls) && !chat_tmpl_tools(tmpl)) {
		*why = tools ? "this model's chat template does not render tools (qwen2.5, qwen3, llama3.1, deepseek3, kimi-k2 "
			       "and glm4.5 do)" :
		       "this model's chat template does not render tool calls (qwen2.5, qwen3, llama3.1, deepseek3, kimi-k2 "
		       "and glm4.5 do)";
		return NULL;
	}
	switch (tmpl) {
	case CHAT_QWEN2: qwen(&o, msgs, n, NULL, gen, false); break;
	case CHAT_QWEN25: qwen(&o, msgs, n, json_array_size(tools) ? tools : NULL, gen, true); break;
	case CHAT_LLAMA31:
		if (llama31(&o, msgs, n, tools, gen, bos, why)) {
			free(o.buf);
			return NULL;
		}
		break;
	case CHAT_LLAMA2:
		if (llama2(&o, msgs, n, bos, eos)) {
			free(o.buf);
			*why = "llama2 template: roles must alternate user/assistant/user/... after an optional system message";
			return NULL;
		}
		break;
	case CHAT_LLAMA3: llama3(&o, msgs, n, gen, bos); break;
	case CHAT_QWEN3: qwen3(&o, msgs, n, json_array_size(tools) ? tools : NULL, gen, thinking); break;
	case CHAT_DEEPSEEK3: deepseek3(&o, msgs, n, json_array_size(tools) ? tools : NULL, gen, bos); break;
	case CHAT_KIMI_K2: kimi_k2(&o, msgs, n, json_array_size(tools) ? tools : NULL, gen); break;
	case CHAT_GLM4: glm4(&o, msgs, n, gen); break;
	case CHAT_GLM45: glm45(&o, msgs, n, json_array_size(tools) ? tools : NULL, gen, thinking); break;
	default: chatml(&o, msgs, n, gen); break;
	}
	put(&o, "");
	if (o.oom) {
		free(o.buf);
		*why = "out of memory";
		return NULL;
	}
	return o.buf;
}
