// SPDX-License-Identifier: MIT
/*
 * The chat templates, each written from what its Jinja text does for
 * system, user and assistant messages with plain-string contents (tool calls
 * are not rendered). Whitespace matters: these strings are token for token
 * what the model saw in training.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lib/serve/chat.h"
#include "lib/serve/internal.h"

static const char *const names[CHAT_N] = {
	[CHAT_CHATML] = "chatml", [CHAT_LLAMA2] = "llama2", [CHAT_LLAMA3] = "llama3",
	[CHAT_DEEPSEEK3] = "deepseek3", [CHAT_KIMI_K2] = "kimi-k2", [CHAT_GLM4] = "glm4",
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
	return "chatml, llama2, llama3, deepseek3, kimi-k2, glm4";
}

int chat_tmpl_detect(const char *t)
{
	if (!t)
		return CHAT_CHATML;
	/* most specific markers first: Kimi's <|im_end|> would also pass for ChatML */
	if (strstr(t, "<|im_assistant|>assistant<|im_middle|>"))
		return CHAT_KIMI_K2;
	if (strstr(t, "<|im_start|>"))
		return CHAT_CHATML;
	if (strstr(t, "<|start_header_id|>") && strstr(t, "<|end_header_id|>"))
		return CHAT_LLAMA3;
	if (strstr(t, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>") && strstr(t, "<\xef\xbd\x9c" "User\xef\xbd\x9c>"))
		return CHAT_DEEPSEEK3;
	if (strstr(t, "[gMASK]<sop>"))
		return CHAT_GLM4;
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

#define FW_BAR "\xef\xbd\x9c"		/* U+FF5C, DeepSeek's full-width bar */
#define LOW_BLOCK "\xe2\x96\x81"	/* U+2581 */

static void deepseek3(struct out *o, const struct chat_msg *m, int n, bool gen, const char *bos)
{
	bool first = true;

	put(o, bos);
	for (int i = 0; i < n; i++)
		if (is(&m[i], "system")) {
			if (!first)
				put(o, "\n\n");
			put(o, m[i].content);
			first = false;
		}
	for (int i = 0; i < n; i++) {
		if (is(&m[i], "user")) {
			put(o, "<" FW_BAR "User" FW_BAR ">");
			put(o, m[i].content);
		} else if (is(&m[i], "assistant")) {
			put(o, "<" FW_BAR "Assistant" FW_BAR ">");
			put(o, m[i].content);
			put(o, "<" FW_BAR "end" LOW_BLOCK "of" LOW_BLOCK "sentence" FW_BAR ">");
		}
	}
	if (gen)
		put(o, "<" FW_BAR "Assistant" FW_BAR ">");
}

static void kimi_k2(struct out *o, const struct chat_msg *m, int n, bool gen)
{
	for (int i = 0; i < n; i++) {
		if (i == 0 && !is(&m[0], "system"))
			put(o, "<|im_system|>system<|im_middle|>You are Kimi, an AI assistant created by Moonshot AI.<|im_end|>");
		if (is(&m[i], "system")) {
			put(o, "<|im_system|>system<|im_middle|>");
		} else if (is(&m[i], "user")) {
			put(o, "<|im_user|>user<|im_middle|>");
		} else if (is(&m[i], "assistant")) {
			put(o, "<|im_assistant|>assistant<|im_middle|>");
		} else {
			put(o, "<|im_system|>");
			put(o, m[i].role);
			put(o, "<|im_middle|>");
		}
		put(o, m[i].content);
		put(o, "<|im_end|>");
	}
	if (gen)
		put(o, "<|im_assistant|>assistant<|im_middle|>");
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

char *chat_render(int tmpl, const struct chat_msg *msgs, int n, bool gen, const char *bos,
		  const char *eos, const char **why)
{
	struct out o = { 0 };

	*why = NULL;
	switch (tmpl) {
	case CHAT_LLAMA2:
		if (llama2(&o, msgs, n, bos, eos)) {
			free(o.buf);
			*why = "llama2 template: roles must alternate user/assistant/user/... after an optional system message";
			return NULL;
		}
		break;
	case CHAT_LLAMA3: llama3(&o, msgs, n, gen, bos); break;
	case CHAT_DEEPSEEK3: deepseek3(&o, msgs, n, gen, bos); break;
	case CHAT_KIMI_K2: kimi_k2(&o, msgs, n, gen); break;
	case CHAT_GLM4: glm4(&o, msgs, n, gen); break;
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
