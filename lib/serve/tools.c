// SPDX-License-Identifier: MIT
/*
 * Tool calls out of model output. Each family's syntax is what its chat
 * template shows the model for a call (the same strings chat.c writes for
 * an assistant message's tool_calls); the JSON inside is read by jansson.
 * Anything that does not follow the syntax to the end of the calls is not
 * a call: the whole text is then content, as if no tools were asked for.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/serve/chat.h"
#include "lib/serve/tools.h"

#define FW_BAR "\xef\xbd\x9c"		/* U+FF5C, DeepSeek's full-width bar */
#define LOW_BLOCK "\xe2\x96\x81"	/* U+2581 */
#define DS_CALLS_BEGIN "<" FW_BAR "tool" LOW_BLOCK "calls" LOW_BLOCK "begin" FW_BAR ">"
#define DS_CALLS_END "<" FW_BAR "tool" LOW_BLOCK "calls" LOW_BLOCK "end" FW_BAR ">"
#define DS_CALL_BEGIN "<" FW_BAR "tool" LOW_BLOCK "call" LOW_BLOCK "begin" FW_BAR ">"
#define DS_CALL_END "<" FW_BAR "tool" LOW_BLOCK "call" LOW_BLOCK "end" FW_BAR ">"
#define DS_SEP "<" FW_BAR "tool" LOW_BLOCK "sep" FW_BAR ">"
#define KIMI_SECTION_BEGIN "<|tool_calls_section_begin|>"
#define KIMI_SECTION_END "<|tool_calls_section_end|>"
#define KIMI_CALL_BEGIN "<|tool_call_begin|>"
#define KIMI_ARGS_BEGIN "<|tool_call_argument_begin|>"
#define KIMI_CALL_END "<|tool_call_end|>"
#define PYTHON_TAG "<|python_tag|>"

/* The marker that opens the calls; NULL for llama-3.1, whose calls are the whole output. */
static const char *opener(int tmpl)
{
	switch (tmpl) {
	case CHAT_QWEN25: case CHAT_QWEN3: case CHAT_GLM45: return "<tool_call>";
	case CHAT_DEEPSEEK3: return DS_CALLS_BEGIN;
	case CHAT_KIMI_K2: return KIMI_SECTION_BEGIN;
	default: return NULL;
	}
}

int tools_parsable(int tmpl)
{
	return opener(tmpl) || tmpl == CHAT_LLAMA31;
}

/* A cursor over the text: p moves, end stays. */
struct cur {
	const char *p, *end;
};

static void blanks(struct cur *c)
{
	while (c->p < c->end && isspace((unsigned char)*c->p))
		c->p++;
}

static bool eat(struct cur *c, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n))
		return false;
	c->p += n;
	return true;
}

static const char *find(const char *p, const char *end, const char *s)
{
	size_t n = strlen(s);

	for (; (size_t)(end - p) >= n; p++)
		if (!memcmp(p, s, n))
			return p;
	return NULL;
}

/* The text up to the next s (blanks trimmed off both ends) into a new string; the cursor goes past s. */
static char *until(struct cur *c, const char *s)
{
	const char *at = find(c->p, c->end, s), *a = c->p, *b;
	char *out;

	if (!at)
		return NULL;
	b = at;
	while (a < b && isspace((unsigned char)*a))
		a++;
	while (b > a && isspace((unsigned char)b[-1]))
		b--;
	if (!(out = strndup(a, (size_t)(b - a))))
		return NULL;
	c->p = at + strlen(s);
	return out;
}

/* One JSON object at the cursor (blanks first), or NULL. */
static json_t *object(struct cur *c)
{
	json_error_t e;
	json_t *v;

	blanks(c);
	if (c->p >= c->end || *c->p != '{')
		return NULL;
	v = json_loadb(c->p, (size_t)(c->end - c->p), JSON_DISABLE_EOF_CHECK, &e);
	if (!v)
		return NULL;
	if (!json_is_object(v) || e.position <= 0 || (size_t)e.position > (size_t)(c->end - c->p)) {
		json_decref(v);
		return NULL;
	}
	c->p += e.position;
	return v;
}

/* Append a call (takes name and id; args is dumped). false: out of memory. */
static bool add(struct tool_parse *o, char *id, char *name, const json_t *args)
{
	struct tool_call *k = realloc(o->calls, sizeof(*k) * (size_t)(o->n_calls + 1));
	char *text = json_dumps(args, JSON_COMPACT);

	if (k)
		o->calls = k;
	if (!k || !text || !name) {
		free(id);
		free(name);
		free(text);
		return false;
	}
	k[o->n_calls++] = (struct tool_call){ .id = id, .name = name, .args = text };
	return true;
}

/* qwen2.5, qwen3: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, repeated. */
static int hermes(struct cur *c, struct tool_parse *o)
{
	do {
		json_t *v = object(c), *name = json_object_get(v, "name"), *args = json_object_get(v, "arguments");
		bool ok;

		blanks(c);
		if (!json_is_string(name) || !json_is_object(args) || !eat(c, "</tool_call>")) {
			json_decref(v);
			return 1;
		}
		ok = add(o, NULL, strdup(json_string_value(name)), args);
		json_decref(v);
		if (!ok)
			return -1;
		blanks(c);
	} while (eat(c, "<tool_call>"));
	return 0;
}

/* DeepSeek-V3: <calls begin><call begin>function<sep>NAME\n```json\n{...}\n```<call end>..., <calls end>. */
static int deepseek(struct cur *c, struct tool_parse *o)
{
	blanks(c);
	while (eat(c, DS_CALL_BEGIN)) {
		char *type = until(c, DS_SEP), *name;
		json_t *args;

		free(type);
		if (!type)
			return 1;
		name = until(c, "\n");
		if (!name || !*name) {
			free(name);
			return 1;
		}
		blanks(c);
		eat(c, "```json");
		args = object(c);
		blanks(c);
		eat(c, "```");
		blanks(c);
		if (!args || !eat(c, DS_CALL_END)) {
			json_decref(args);
			free(name);
			return 1;
		}
		if (!add(o, NULL, name, args)) {
			json_decref(args);
			return -1;
		}
		json_decref(args);
		blanks(c);
	}
	if (!o->n_calls)
		return 1;
	eat(c, DS_CALLS_END);
	return 0;
}

/* Kimi-K2: <section begin><call begin>functions.NAME:IDX<argument begin>{...}<call end>..., <section end>. */
static int kimi(struct cur *c, struct tool_parse *o)
{
	blanks(c);
	while (eat(c, KIMI_CALL_BEGIN)) {
		char *id = until(c, KIMI_ARGS_BEGIN), *name;
		const char *a, *colon;
		json_t *args;

		if (!id)
			return 1;
		a = !strncmp(id, "functions.", 10) ? id + 10 : id;
		colon = strrchr(a, ':');
		name = strndup(a, colon ? (size_t)(colon - a) : strlen(a));
		args = object(c);
		blanks(c);
		if (!name || !*name || !args || !eat(c, KIMI_CALL_END)) {
			json_decref(args);
			free(id);
			if (!name)
				return -1;
			free(name);
			return 1;
		}
		if (!add(o, id, name, args)) {
			json_decref(args);
			return -1;
		}
		json_decref(args);
		blanks(c);
	}
	if (!o->n_calls)
		return 1;
	eat(c, KIMI_SECTION_END);
	return 0;
}

/* The declared JSON-schema type of a parameter of function `fn` in the request's tools, or NULL. */
static const char *param_type(const json_t *tools, const char *fn, const char *key)
{
	size_t i;
	json_t *t;

	json_array_foreach(tools, i, t) {
		json_t *f = json_object_get(t, "function");

		if (json_is_string(json_object_get(f, "name")) && !strcmp(json_string_value(json_object_get(f, "name")), fn))
			return json_string_value(json_object_get(json_object_get(json_object_get(
				json_object_get(f, "parameters"), "properties"), key), "type"));
	}
	return NULL;
}

/*
 * GLM-4.5: <tool_call>NAME\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>...</tool_call>;
 * the template writes a string value as is and any other as JSON, so a
 * value is read as JSON unless the tool declares the parameter a string
 * (or it is not JSON).
 */
static int glm(struct cur *c, const json_t *tools, struct tool_parse *o)
{
	do {
		const char *nl = find(c->p, c->end, "\n"), *ak = find(c->p, c->end, "<arg_key>");
		const char *close = find(c->p, c->end, "</tool_call>");
		const char *stop = close;
		char *name;
		json_t *args;
		bool ok;

		if (!close)
			return 1;
		if (ak && ak < stop)
			stop = ak;
		if (nl && nl < stop)
			stop = nl;
		{
			struct cur nc = { c->p, stop };

			blanks(&nc);
			while (stop > nc.p && isspace((unsigned char)stop[-1]))
				stop--;
			if (stop == nc.p || !(name = strndup(nc.p, (size_t)(stop - nc.p))))
				return stop == nc.p ? 1 : -1;
			c->p = stop;
		}
		if (!(args = json_object())) {
			free(name);
			return -1;
		}
		for (blanks(c); eat(c, "<arg_key>"); blanks(c)) {
			char *key = until(c, "</arg_key>");
			const char *v, *ve, *type;
			json_t *val = NULL;

			blanks(c);
			if (!key || !eat(c, "<arg_value>") || !(ve = find(c->p, c->end, "</arg_value>"))) {
				free(key);
				goto bad;
			}
			v = c->p;
			c->p = ve + strlen("</arg_value>");
			type = param_type(tools, name, key);
			if (!type || strcmp(type, "string"))
				val = json_loadb(v, (size_t)(ve - v), JSON_DECODE_ANY, NULL);
			if (!val)
				val = json_stringn(v, (size_t)(ve - v));
			if (!val || json_object_set_new(args, key, val)) {
				free(key);
				json_decref(args);
				free(name);
				return -1;
			}
			free(key);
		}
		if (!eat(c, "</tool_call>"))
			goto bad;
		ok = add(o, NULL, name, args);
		json_decref(args);
		if (!ok)
			return -1;
		blanks(c);
		continue;
bad:
		json_decref(args);
		free(name);
		return 1;
	} while (eat(c, "<tool_call>"));
	return 0;
}

/* llama-3.1: the whole output is {"name": ..., "parameters": {...}} (after an optional <|python_tag|>), ";" between several. */
static int llama31(struct cur *c, struct tool_parse *o)
{
	blanks(c);
	eat(c, PYTHON_TAG);
	do {
		json_t *v = object(c), *name = json_object_get(v, "name"), *args = json_object_get(v, "parameters");
		bool ok;

		if (!args)
			args = json_object_get(v, "arguments");
		if (!json_is_string(name) || !json_is_object(args)) {
			json_decref(v);
			return 1;
		}
		ok = add(o, NULL, strdup(json_string_value(name)), args);
		json_decref(v);
		if (!ok)
			return -1;
		blanks(c);
	} while (eat(c, ";"));
	return c->p == c->end ? 0 : 1;
}

static void drop_calls(struct tool_parse *p)
{
	for (int i = 0; i < p->n_calls; i++) {
		free(p->calls[i].id);
		free(p->calls[i].name);
		free(p->calls[i].args);
	}
	free(p->calls);
	p->calls = NULL;
	p->n_calls = 0;
}

/* Whether every call names a function the request declared. */
static bool declared(const struct tool_parse *p, const json_t *tools)
{
	for (int c = 0; c < p->n_calls; c++) {
		bool found = false;
		size_t i;
		json_t *t;

		json_array_foreach(tools, i, t) {
			const char *name = json_string_value(json_object_get(json_object_get(t, "function"), "name"));

			if (name && !strcmp(name, p->calls[c].name)) {
				found = true;
				break;
			}
		}
		if (!found)
			return false;
	}
	return true;
}

void tools_parse_free(struct tool_parse *p)
{
	drop_calls(p);
	free(p->content);
	p->content = NULL;
}

int tools_parse(int tmpl, const char *text, size_t len, const json_t *tools, struct tool_parse *out)
{
	const char *open = opener(tmpl), *at = open ? find(text, text + len, open) : text;
	struct cur c = { at ? at : text, text + len };
	size_t before;
	int r = 1;

	memset(out, 0, sizeof(*out));
	if (at && tmpl != CHAT_LLAMA31) {
		c.p += strlen(open);
		switch (tmpl) {
		case CHAT_DEEPSEEK3: r = deepseek(&c, out); break;
		case CHAT_KIMI_K2: r = kimi(&c, out); break;
		case CHAT_GLM45: r = glm(&c, tools, out); break;
		default: r = hermes(&c, out); break;
		}
	} else if (tmpl == CHAT_LLAMA31) {
		r = llama31(&c, out);
	}
	if (r < 0) {
		drop_calls(out);
		return -1;
	}
	/* a function the request did not offer: the model was not asked to call it (llama-server's grammar would not let it) */
	if (!r && tools && !declared(out, tools))
		r = 1;
	if (r > 0) {
		/* no call, or a malformed one: all of it is content */
		drop_calls(out);
		out->before = len;
		out->tail = len;
		if (len && !(out->content = strndup(text, len)))
			return -1;
		return 0;
	}
	before = (size_t)(at - text);
	while (before && isspace((unsigned char)text[before - 1]))
		before--;
	blanks(&c);
	out->before = before;
	out->tail = (size_t)(c.p - text);
	out->tail_len = (size_t)(c.end - c.p);
	while (out->tail_len && isspace((unsigned char)text[out->tail + out->tail_len - 1]))
		out->tail_len--;
	if (before + out->tail_len) {
		if (!(out->content = malloc(before + out->tail_len + 1))) {
			drop_calls(out);
			return -1;
		}
		memcpy(out->content, text, before);
		memcpy(out->content + before, text + out->tail, out->tail_len);
		out->content[before + out->tail_len] = '\0';
	}
	return 0;
}

size_t tools_safe_prefix(int tmpl, const char *text, size_t len)
{
	const char *open = opener(tmpl), *at;
	size_t end = len;

	if (!len)
		return 0;	/* text may still be NULL */
	if (!open) {
		/* llama-3.1: a call is the whole output, so nothing is sure until it starts otherwise */
		struct cur c = { text, text + len };
		size_t tag = strlen(PYTHON_TAG);

		blanks(&c);
		if (c.p == c.end || *c.p == '{' ||
		    !memcmp(c.p, PYTHON_TAG, (size_t)(c.end - c.p) < tag ? (size_t)(c.end - c.p) : tag))
			return 0;
		return len;
	}
	at = find(text, text + len, open);
	if (at) {
		end = (size_t)(at - text);
	} else {
		/* an end that may be the marker's first bytes */
		for (size_t h = strlen(open) - 1 < len ? strlen(open) - 1 : len; h > 0; h--)
			if (!memcmp(text + len - h, open, h)) {
				end = len - h;
				break;
			}
	}
	while (end && isspace((unsigned char)text[end - 1]))
		end--;
	return end;
}
