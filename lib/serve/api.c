// SPDX-License-Identifier: MIT
/*
 * The OpenAI API's bodies: requests are checked field by field (type, range)
 * and a bad one is answered as OpenAI answers it, a 4xx with
 * {"error": {"message", "type", "param", "code"}}; responses and streamed
 * chunks carry the fields the official clients read.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tiermem/error.h"
#include "lib/serve/chat.h"
#include "lib/serve/internal.h"
#include "lib/serve/reasoning.h"
#include "lib/serve/tools.h"

void *api_fail(struct api_err *e, int status, const char *code, const char *param, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->type = status == 401 ? "authentication_error" : status >= 500 ? "server_error" :
		  status == 404 ? "not_found_error" : "invalid_request_error";
	e->code = code;
	e->param = param;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return NULL;
}

char *api_error(const struct api_err *e)
{
	json_t *o = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", e->msg, "type", e->type,
			      "param", e->param ? json_string(e->param) : json_null(),
			      "code", e->code ? json_string(e->code) : json_null());
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

/* A number field: absent or null leaves *v; else it must be a number in [lo, hi]. */
static int num(json_t *root, const char *key, double lo, double hi, double *v, struct api_err *e)
{
	json_t *x = json_object_get(root, key);

	if (!x || json_is_null(x))
		return 0;
	if (!json_is_number(x)) {
		api_fail(e, 400, "invalid_type", key, "'%s' must be a number", key);
		return -1;
	}
	*v = json_number_value(x);
	if (!(*v >= lo && *v <= hi)) {
		api_fail(e, 400, "invalid_value", key, "'%s' is %g; it must be in [%g, %g]", key, *v, lo, hi);
		return -1;
	}
	return 0;
}

static int integer(json_t *root, const char *key, double lo, double hi, double *v, struct api_err *e)
{
	double before = *v;

	if (num(root, key, lo, hi, v, e))
		return -1;
	if (*v != before && *v != floor(*v)) {
		api_fail(e, 400, "invalid_type", key, "'%s' must be a whole number", key);
		return -1;
	}
	return 0;
}

static int boolean(json_t *root, const char *key, bool *v, struct api_err *e)
{
	json_t *x = json_object_get(root, key);

	if (!x || json_is_null(x))
		return 0;
	if (!json_is_boolean(x)) {
		api_fail(e, 400, "invalid_type", key, "'%s' must be true or false", key);
		return -1;
	}
	*v = json_is_true(x);
	return 0;
}

static int stops(json_t *root, struct job *j, struct api_err *e)
{
	json_t *x = json_object_get(root, "stop"), *v;
	size_t i;

	if (!x || json_is_null(x))
		return 0;
	if (json_is_string(x)) {
		if (!json_string_length(x))
			return 0;
		j->stop[j->n_stop++] = strdup(json_string_value(x));
		return j->stop[0] ? 0 : (api_fail(e, 500, NULL, NULL, "out of memory"), -1);
	}
	if (!json_is_array(x) || json_array_size(x) > SERVE_MAX_STOP) {
		api_fail(e, 400, "invalid_type", "stop", "'stop' must be a string or an array of up to %d strings",
			 SERVE_MAX_STOP);
		return -1;
	}
	json_array_foreach(x, i, v) {
		if (!json_is_string(v) || !json_string_length(v)) {
			api_fail(e, 400, "invalid_type", "stop", "'stop' must hold non-empty strings");
			return -1;
		}
		if (!(j->stop[j->n_stop] = strdup(json_string_value(v)))) {
			api_fail(e, 500, NULL, NULL, "out of memory");
			return -1;
		}
		j->n_stop++;
	}
	return 0;
}

/* A message's content: a string, or an array of {"type": "text", "text": ...} parts joined. */
static char *content(json_t *c, size_t idx, struct api_err *e)
{
	char *out = NULL;
	size_t len = 0, cap = 0, i;
	json_t *part;

	if (json_is_string(c))
		return strdup(json_string_value(c));
	if (json_is_null(c))
		return strdup("");
	if (!json_is_array(c)) {
		api_fail(e, 400, "invalid_type", "messages", "messages[%zu].content must be a string or an array of text parts", idx);
		return NULL;
	}
	json_array_foreach(c, i, part) {
		json_t *t = json_object_get(part, "text");

		if (!json_is_string(json_object_get(part, "type")) ||
		    strcmp(json_string_value(json_object_get(part, "type")), "text") || !json_is_string(t)) {
			free(out);
			api_fail(e, 400, "invalid_type", "messages", "messages[%zu].content[%zu]: only text parts are supported", idx, i);
			return NULL;
		}
		if (buf_append(&out, &len, &cap, json_string_value(t), json_string_length(t))) {
			free(out);
			return api_fail(e, 500, NULL, NULL, "out of memory");
		}
	}
	return out ? out : strdup("");
}

static const char *token_text(const struct tm_tokenizer *t, int32_t id, char *buf, size_t n)
{
	size_t len;
	const char *s = id >= 0 ? tm_token_text(t, id, &len) : NULL;

	if (!s)
		len = 0;
	if (len >= n)
		len = n - 1;
	memcpy(buf, s ? s : "", len);
	buf[len] = '\0';
	return buf;
}

/*
 * An assistant message's OpenAI tool_calls: [{"function": {"name": "...",
 * "arguments": "<JSON text>"}}, ...] into calls, the arguments parsed (the
 * templates write them as JSON objects); *n_calls 0 and no calls if absent.
 */
static int tool_calls(json_t *tc, size_t idx, struct chat_call **calls, int *n_calls, struct api_err *e)
{
	size_t i;
	json_t *c;

	*calls = NULL;
	*n_calls = 0;
	if (!tc || json_is_null(tc))
		return 0;
	if (!json_is_array(tc) || !json_array_size(tc) || json_array_size(tc) > 64) {
		api_fail(e, 400, "invalid_type", "messages", "messages[%zu].tool_calls must be an array of 1 to 64 calls", idx);
		return -1;
	}
	if (!(*calls = calloc(json_array_size(tc), sizeof(**calls)))) {
		api_fail(e, 500, NULL, NULL, "out of memory");
		return -1;
	}
	json_array_foreach(tc, i, c) {
		json_t *f = json_object_get(c, "function"), *name = json_object_get(f, "name");
		json_t *args = json_object_get(f, "arguments");
		struct chat_call *k = &(*calls)[i];

		if (!json_is_string(name) || !(json_is_string(args) || json_is_object(args))) {
			api_fail(e, 400, "invalid_type", "messages", "messages[%zu].tool_calls[%zu] needs a function with a string "
				 "'name' and 'arguments' (a JSON text or an object)", idx, i);
			return -1;
		}
		k->id = json_string_value(json_object_get(c, "id"));
		k->name = json_string_value(name);
		k->args_text = json_string_value(args);
		k->args = json_is_object(args) ? json_incref(args) :
			  json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, NULL);
		++*n_calls;
		if (!k->args) {
			api_fail(e, 400, "invalid_value", "messages", "messages[%zu].tool_calls[%zu].function.arguments "
				 "is not JSON", idx, i);
			return -1;
		}
	}
	return 0;
}

/* A message's field that is a string, null or absent (*v NULL). */
static int optional_string(json_t *msg, const char *key, size_t idx, const char **v, struct api_err *e)
{
	json_t *x = json_object_get(msg, key);

	*v = json_string_value(x);
	if (x && !json_is_null(x) && !json_is_string(x)) {
		api_fail(e, 400, "invalid_type", "messages", "messages[%zu].%s must be a string", idx, key);
		return -1;
	}
	return 0;
}

/*
 * Whether the template may let the model think: the request's
 * chat_template_kwargs.enable_thinking (llama-server's), else the server's
 * --reasoning-budget. The other kwargs are for templates tiermem does not render.
 */
static int thinking(struct tm_server *s, json_t *root, bool *on, struct api_err *e)
{
	json_t *kw = json_object_get(root, "chat_template_kwargs");

	*on = !s->o.no_thinking;
	if (kw && !json_is_null(kw) && !json_is_object(kw)) {
		api_fail(e, 400, "invalid_type", "chat_template_kwargs", "'chat_template_kwargs' must be an object");
		return -1;
	}
	return kw ? boolean(kw, "enable_thinking", on, e) : 0;
}

/* The chat prompt for a messages array (and tools, or NULL), as the template renders it. */
static char *render_messages(struct tm_server *s, json_t *root, json_t *tools, bool gen, struct api_err *e)
{
	json_t *msgs = json_object_get(root, "messages");
	bool think;
	size_t n = json_array_size(msgs), i;
	struct chat_msg *m;
	struct chat_call *calls;
	char **texts, *prompt = NULL, bos[64], eos[64];
	const char *why;
	json_t *x;

	if (!json_is_array(msgs) || !n)
		return api_fail(e, 400, "invalid_type", "messages", "'messages' must be a non-empty array");
	if (thinking(s, root, &think, e))
		return NULL;
	if (json_is_null(tools))
		tools = NULL;
	if (tools && !json_is_array(tools))
		return api_fail(e, 400, "invalid_type", "tools", "'tools' must be an array");
	json_array_foreach(tools, i, x)
		if (!json_is_object(x))
			return api_fail(e, 400, "invalid_type", "tools", "tools[%zu] must be an object", i);
	m = calloc(n, sizeof(*m));
	texts = calloc(n, sizeof(*texts));
	if (!m || !texts)
		goto oom;
	json_array_foreach(msgs, i, x) {
		json_t *role = json_object_get(x, "role");

		if (!json_is_object(x) || !json_is_string(role)) {
			api_fail(e, 400, "invalid_type", "messages", "messages[%zu] must be an object with a string 'role'", i);
			goto out;
		}
		if (!(texts[i] = content(json_object_get(x, "content"), i, e)))
			goto out;
		m[i].role = json_string_value(role);
		m[i].content = texts[i];
		m[i].tool_call_id = json_string_value(json_object_get(x, "tool_call_id"));
		if (optional_string(x, "name", i, &m[i].name, e) ||
		    optional_string(x, "reasoning_content", i, &m[i].reasoning, e))
			goto out;
		if (tool_calls(json_object_get(x, "tool_calls"), i, &calls, &m[i].n_calls, e)) {
			m[i].calls = calls;
			goto out;
		}
		m[i].calls = calls;
	}
	prompt = chat_render(s->chat_tmpl, m, (int)n, tools, gen, think,
			     token_text(s->tok, tm_tokenizer_bos(s->tok), bos, sizeof(bos)),
			     token_text(s->tok, tm_tokenizer_eos(s->tok), eos, sizeof(eos)), &why);
	if (!prompt)
		api_fail(e, 400, "invalid_value", "messages", "%s", why);
	goto out;
oom:
	api_fail(e, 500, NULL, NULL, "out of memory");
out:
	for (i = 0; texts && i < n; i++)
		free(texts[i]);
	for (i = 0; m && i < n; i++) {
		for (int c = 0; c < m[i].n_calls; c++)
			json_decref(m[i].calls[c].args);
		free((void *)m[i].calls);
	}
	free(texts);
	free(m);
	return prompt;
}

/* The prompt's tokens; a template that writes BOS itself gets no second one. */
static int tokenize(struct tm_server *s, struct job *j, const char *text, bool chat, struct api_err *e)
{
	char bos[64];
	bool add = true;
	int n;

	if (chat) {
		token_text(s->tok, tm_tokenizer_bos(s->tok), bos, sizeof(bos));
		add = !*bos || strncmp(text, bos, strlen(bos));
	}
	n = tm_tokenize_alloc(s->tok, text, strlen(text), add, chat, &j->prompt);
	if (n < 0) {
		api_fail(e, n == -ENOMEM ? 500 : 400, NULL, "prompt", "tokenizing the prompt failed: %s", tm_strerror());
		return -1;
	}
	j->n_prompt = n;
	return 0;
}

static int completion_prompt(struct tm_server *s, json_t *p, struct job *j, struct api_err *e)
{
	size_t i, n = json_array_size(p);
	json_t *x;

	if (json_is_array(p) && n == 1 && json_is_string(json_array_get(p, 0)))
		p = json_array_get(p, 0);
	if (json_is_string(p))
		return tokenize(s, j, json_string_value(p), false, e);
	if (!json_is_array(p) || !n) {
		api_fail(e, 400, "invalid_type", "prompt", "'prompt' must be a string, one string in an array, or an array of token ids");
		return -1;
	}
	if (!(j->prompt = malloc(sizeof(int32_t) * n))) {
		api_fail(e, 500, NULL, NULL, "out of memory");
		return -1;
	}
	json_array_foreach(p, i, x) {
		if (!json_is_integer(x) || json_integer_value(x) < 0 ||
		    json_integer_value(x) >= s->m->hp.n_vocab) {
			api_fail(e, 400, "invalid_value", "prompt", "prompt[%zu] is not a token id in [0, %d)", i,
				 s->m->hp.n_vocab);
			return -1;
		}
		j->prompt[i] = (int32_t)json_integer_value(x);
	}
	j->n_prompt = (int)n;
	return 0;
}

static int sampling(json_t *root, struct job *j, struct api_err *e)
{
	double temp = 1.0, top_p = 1.0, top_k = 0, min_p = 0, pres = 0, freq = 0, seed = -1;
	static unsigned long long counter;

	if (num(root, "temperature", 0, 2, &temp, e) || num(root, "top_p", 0, 1, &top_p, e) ||
	    integer(root, "top_k", 0, 1 << 30, &top_k, e) || num(root, "min_p", 0, 1, &min_p, e) ||
	    num(root, "presence_penalty", -2, 2, &pres, e) || num(root, "frequency_penalty", -2, 2, &freq, e) ||
	    integer(root, "seed", -9.2e18, 9.2e18, &seed, e))
		return -1;
	if (top_p <= 0) {
		api_fail(e, 400, "invalid_value", "top_p", "'top_p' must be above 0");
		return -1;
	}
	tm_sampler_params_init(&j->sp);
	j->sp.temperature = (float)temp;
	j->sp.top_p = (float)top_p;
	j->sp.top_k = (int32_t)top_k;
	j->sp.seed = json_is_number(json_object_get(root, "seed")) ? (uint64_t)(int64_t)seed :
		     (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull + __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
	j->min_p = (float)min_p;
	j->presence = (float)pres;
	j->frequency = (float)freq;
	return 0;
}

/*
 * OpenAI's tool_choice. Nothing can make the model call a tool without
 * constrained decoding, which tiermem does not have: "required" is refused;
 * a named function is a best effort: the model is shown that tool alone
 * (*only, a new array) and a call to anything else is content. "none":
 * the reply is all content.
 */
static int tool_choice(json_t *tools, json_t *c, bool *none, json_t **only, struct api_err *e)
{
	json_t *name = json_object_get(json_object_get(c, "function"), "name"), *type = json_object_get(c, "type"), *t;
	size_t i;

	*none = false;
	*only = NULL;
	if (!c || json_is_null(c) || (json_is_string(c) && !strcmp(json_string_value(c), "auto")))
		return 0;
	if (json_is_string(c) && !strcmp(json_string_value(c), "none")) {
		*none = true;
		return 0;
	}
	if (json_is_string(c) && !strcmp(json_string_value(c), "required")) {
		api_fail(e, 400, "unsupported_value", "tool_choice", "tool_choice \"required\" is not supported: without "
			 "constrained decoding nothing can force a call; use \"auto\", or name one function (best effort)");
		return -1;
	}
	if (!json_is_object(c) || !json_is_string(type) || strcmp(json_string_value(type), "function") ||
	    !json_is_string(name)) {
		api_fail(e, 400, "invalid_type", "tool_choice", "tool_choice must be \"auto\", \"none\", \"required\" or "
			 "{\"type\": \"function\", \"function\": {\"name\": ...}}");
		return -1;
	}
	json_array_foreach(tools, i, t) {
		json_t *n = json_object_get(json_object_get(t, "function"), "name");

		if (json_is_string(n) && json_equal(n, name)) {
			if (!(*only = json_pack("[O]", t)))
				api_fail(e, 500, NULL, NULL, "out of memory");
			return *only ? 0 : -1;
		}
	}
	api_fail(e, 400, "invalid_value", "tool_choice", "tool_choice names the function '%.100s', which is not among "
		 "the request's tools", json_string_value(name));
	return -1;
}

/* The request's reasoning_format, else the server's. */
static int reasoning_format(struct tm_server *s, json_t *root, int *fmt, struct api_err *e)
{
	json_t *x = json_object_get(root, "reasoning_format");

	*fmt = s->o.reasoning_format;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_string(x) || (*fmt = tm_reasoning_format_parse(json_string_value(x))) < 0) {
		api_fail(e, 400, "invalid_value", "reasoning_format", "'reasoning_format' must be \"auto\", \"deepseek\" or \"none\"");
		return -1;
	}
	return 0;
}

struct job *api_parse(struct tm_server *s, const char *body, size_t len, struct api_req *r,
		      struct api_err *e)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *model, *so;
	struct job *j = NULL;
	double max = -1, n = 1;
	char *prompt = NULL;
	static unsigned long long ids;

	if (!root)
		return api_fail(e, 400, "invalid_json", NULL, "the body is not valid JSON: %s (line %d, column %d)",
				jerr.text, jerr.line, jerr.column);
	if (!json_is_object(root)) {
		api_fail(e, 400, "invalid_type", NULL, "the body must be a JSON object");
		goto fail;
	}
	model = json_object_get(root, "model");
	if (model && !json_is_null(model) && !json_is_string(model)) {
		api_fail(e, 400, "invalid_type", "model", "'model' must be a string");
		goto fail;
	}
	if (json_is_string(model) && strcmp(json_string_value(model), s->model_id)) {
		api_fail(e, 404, "model_not_found", "model", "The model '%.100s' does not exist; this server serves '%s'",
			 json_string_value(model), s->model_id);
		goto fail;
	}
	if (!(j = calloc(1, sizeof(*j)))) {
		api_fail(e, 500, NULL, NULL, "out of memory");
		goto fail;
	}
	j->refs = 1;
	j->tools_tmpl = -1;
	so = json_object_get(root, "stream_options");
	if (boolean(root, "stream", &r->stream, e) ||
	    (so && !json_is_null(so) && boolean(so, "include_usage", &r->include_usage, e)) ||
	    integer(root, "n", 1, 1, &n, e) || integer(root, "max_tokens", 1, 1e18, &max, e) ||
	    integer(root, "max_completion_tokens", 1, 1e18, &max, e) || sampling(root, j, e) || stops(root, j, e))
		goto fail;
	if (r->chat) {
		json_t *tools = json_object_get(root, "tools"), *only;
		bool none;
		int fmt;

		if (reasoning_format(s, root, &fmt, e) ||
		    tool_choice(tools, json_object_get(root, "tool_choice"), &none, &only, e))
			goto fail;
		if (only)
			tools = only;
		if (!(prompt = render_messages(s, root, tools, true, e)) ||
		    tokenize(s, j, prompt, true, e)) {
			json_decref(only);
			goto fail;
		}
		if (json_array_size(tools) && tools_parsable(s->chat_tmpl) && !none) {
			j->tools_tmpl = s->chat_tmpl;
			j->tools = json_incref(tools);
		}
		json_decref(only);
		j->think = fmt != TM_REASONING_NONE;
		j->think_open = j->think && think_forced_open(prompt);
	} else if (completion_prompt(s, json_object_get(root, "prompt"), j, e)) {
		goto fail;
	}
	if (!j->n_prompt) {
		api_fail(e, 400, "invalid_value", r->chat ? "messages" : "prompt",
			 "the prompt is empty and the vocabulary adds no BOS: nothing to start from");
		goto fail;
	}
	if (max < 0)
		max = s->o.ctx_size - j->n_prompt;
	if (j->n_prompt + max > s->o.ctx_size || max < 1) {
		api_fail(e, 400, "context_length_exceeded", r->chat ? "messages" : "prompt",
			 "this server's context is %d tokens per request, but %.0f were requested "
			 "(%d in the prompt, %.0f for the completion)", s->o.ctx_size, j->n_prompt + (max < 1 ? 1 : max),
			 j->n_prompt, max < 1 ? 1 : max);
		goto fail;
	}
	j->max_tokens = (int)max;
	snprintf(r->id, sizeof(r->id), "%s-%llx%04llx", r->chat ? "chatcmpl" : "cmpl",
		 (unsigned long long)time(NULL), __atomic_add_fetch(&ids, 1, __ATOMIC_RELAXED) & 0xffff);
	r->created = time(NULL);
	free(prompt);
	json_decref(root);
	return j;
fail:
	free(prompt);
	if (j)
		job_put(s, j);
	json_decref(root);
	return NULL;
}

static json_t *usage(const struct job *j)
{
	return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", j->n_prompt, "completion_tokens", j->n_gen,
			 "total_tokens", j->n_prompt + j->n_gen, "prompt_tokens_details", "cached_tokens",
			 j->n_reused);
}

static char *dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

void api_think_split(const struct job *j, struct think_split *t)
{
	if (j->think)
		think_split(j->text, j->len, j->think_open, j->done, t);
	else
		*t = (struct think_split){ 0 };
}

int api_tool_calls(const struct job *j, struct tool_parse *p)
{
	struct think_split t;

	memset(p, 0, sizeof(*p));
	if (j->tools_tmpl < 0)
		return 0;
	api_think_split(j, &t);
	if (tools_parse(j->tools_tmpl, j->len ? j->text + t.c_from : "", j->len - t.c_from, j->tools, p))
		return -1;
	p->before += t.c_from;
	p->tail += t.c_from;
	return 0;
}

/* OpenAI's tool_calls array; a call without the model's own id gets call_<response id>_<n>. */
static json_t *calls_json(const struct api_req *r, const struct tool_parse *p, bool stream)
{
	json_t *a = json_array();
	char id[96];

	for (int i = 0; a && i < p->n_calls; i++) {
		json_t *c;

		snprintf(id, sizeof(id), "call_%s_%d", strchr(r->id, '-') ? strchr(r->id, '-') + 1 : r->id, i);
		c = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", p->calls[i].id ? p->calls[i].id : id, "type", "function",
			      "function", "name", p->calls[i].name, "arguments", p->calls[i].args);
		if (c && stream)
			json_object_set_new(c, "index", json_integer(i));
		if (!c || json_array_append_new(a, c)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* A chat.completion.chunk of one choice: its delta (taken), its finish reason or NULL. */
static char *chat_chunk(struct tm_server *s, const struct api_req *r, json_t *delta, const char *finish)
{
	return dump(json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:o}]}", "id", r->id, "object",
			      "chat.completion.chunk", "created", (json_int_t)r->created, "model", s->model_id, "choices",
			      "index", 0, "delta", delta, "logprobs", "finish_reason",
			      finish ? json_string(finish) : json_null()));
}

char *api_chunk_calls(struct tm_server *s, const struct api_req *r, const struct tool_parse *p)
{
	json_t *calls = calls_json(r, p, true);

	return calls ? chat_chunk(s, r, json_pack("{s:o}", "tool_calls", calls), NULL) : NULL;
}

char *api_chunk_reasoning(struct tm_server *s, const struct api_req *r, const char *text, size_t len)
{
	return chat_chunk(s, r, json_pack("{s:s%}", "reasoning_content", text, len), NULL);
}

char *api_response(struct tm_server *s, const struct api_req *r, const struct job *j)
{
	struct tool_parse p = { 0 };
	struct think_split t;
	json_t *choice, *msg = NULL, *calls = NULL;
	const char *finish = j->finish;

	api_think_split(j, &t);
	if (!r->chat) {
		choice = json_pack("{s:i, s:s%, s:n, s:s}", "index", 0, "text", j->text ? j->text : "", j->len, "logprobs",
				   "finish_reason", j->finish);
		goto out;
	}
	if (api_tool_calls(j, &p))
		return NULL;
	if (p.n_calls) {
		finish = "tool_calls";
		calls = calls_json(r, &p, false);
		msg = calls ? json_pack("{s:s, s:o, s:o}", "role", "assistant", "content",
					p.content ? json_string(p.content) : json_null(), "tool_calls", calls) : NULL;
	} else {
		msg = json_pack("{s:s, s:s%}", "role", "assistant", "content", j->len ? j->text + t.c_from : "",
				j->len - t.c_from);
	}
	tools_parse_free(&p);
	/* llama-server leaves it out when there is none */
	if (msg && t.r_to > t.r_from &&
	    json_object_set_new(msg, "reasoning_content", json_stringn(j->text + t.r_from, t.r_to - t.r_from))) {
		json_decref(msg);
		msg = NULL;
	}
	choice = msg ? json_pack("{s:i, s:o, s:n, s:s}", "index", 0, "message", msg, "logprobs", "finish_reason", finish) :
		       NULL;
out:
	return choice ? dump(json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", r->id, "object",
				       r->chat ? "chat.completion" : "text_completion", "created", (json_int_t)r->created,
				       "model", s->model_id, "choices", choice, "usage", usage(j))) : NULL;
}

char *api_chunk(struct tm_server *s, const struct api_req *r, const char *text, size_t len,
		const char *finish, bool role, const struct job *u)
{
	json_t *choices, *o;

	if (r->chat && !u) {
		json_t *delta = json_object();

		if (role)
			json_object_set_new(delta, "role", json_string("assistant"));
		if (text || role)
			json_object_set_new(delta, "content", json_stringn(text ? text : "", text ? len : 0));
		return chat_chunk(s, r, delta, finish);
	}
	choices = u ? json_array() :
		json_pack("[{s:i, s:s%, s:n, s:o}]", "index", 0, "text", text ? text : "", text ? len : 0,
			  "logprobs", "finish_reason", finish ? json_string(finish) : json_null());
	o = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", r->id, "object",
		      r->chat ? "chat.completion.chunk" : "text_completion", "created",
		      (json_int_t)r->created, "model", s->model_id, "choices", choices);
	if (o && u)
		json_object_set_new(o, "usage", usage(u));
	return dump(o);
}

char *api_models(struct tm_server *s)
{
	const struct tm_hparams *hp = &s->m->hp;

	return dump(json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:{s:s, s:i, s:i, s:I, s:I, s:i, s:i}}]}",
			      "object", "list", "data", "id", s->model_id, "object", "model", "created",
			      (json_int_t)s->t_start_wall, "owned_by", "tiermem", "meta", "arch", hp->arch_name,
			      "n_vocab", hp->n_vocab, "n_ctx_train", hp->n_ctx_train, "size",
			      (json_int_t)s->m->bytes_total, "bytes_per_token", (json_int_t)s->m->bytes_per_token,
			      "n_ctx", s->o.ctx_size, "slots", s->o.parallel));
}

/* The model and where its weights are, for clients and the dashboard. */
char *api_props(struct tm_server *s)
{
	char bos[64], eos[64];
	json_t *maps = json_array();

	for (int i = 0; i < s->m->n_maps; i++)
		json_array_append_new(maps, json_pack("{s:i, s:s, s:s, s:s, s:I}", "map", i, "name",
						      s->m->maps[i].tier_name, "tier", tm_tier_name(s->m->maps[i].tier), "backend",
						      s->m->maps[i].backend, "bytes", (json_int_t)s->m->maps[i].size));
	return dump(json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:o}", "model", s->model_id, "chat_template",
			      chat_tmpl_name(s->chat_tmpl), "bos_token",
			      token_text(s->tok, tm_tokenizer_bos(s->tok), bos, sizeof(bos)), "eos_token",
			      token_text(s->tok, tm_tokenizer_eos(s->tok), eos, sizeof(eos)), "total_slots",
			      s->o.parallel, "n_ctx", s->o.ctx_size, "placement", maps));
}

/* llama-server's POST /apply-template: {"messages": [...]} -> {"prompt": "..."}. */
char *api_apply_template(struct tm_server *s, const char *body, size_t len, struct api_err *e)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	bool gen = true;
	char *prompt, *out = NULL;

	if (!root)
		return api_fail(e, 400, "invalid_json", NULL, "the body is not valid JSON: %s", jerr.text);
	if (!json_is_object(root) || boolean(root, "add_generation_prompt", &gen, e)) {
		if (!json_is_object(root))
			api_fail(e, 400, "invalid_type", NULL, "the body must be a JSON object");
		json_decref(root);
		return NULL;
	}
	prompt = render_messages(s, root, json_object_get(root, "tools"), gen, e);
	if (prompt)
		out = dump(json_pack("{s:s}", "prompt", prompt));
	free(prompt);
	json_decref(root);
	return out;
}
