// SPDX-License-Identifier: MIT
/*
 * Tool calls parsed out of model output, per template family: good calls,
 * several calls, text around them, and malformed ones (which must come
 * back as plain content, never half a call). The streaming cut-off
 * (tools_safe_prefix) never lets a marker's first bytes out.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/serve/chat.h"
#include "lib/serve/tools.h"
#include "tap.h"

#define DS(x) "<\xef\xbd\x9c" x "\xef\xbd\x9c>"
#define DS_CALLS_BEGIN DS("tool\xe2\x96\x81" "calls\xe2\x96\x81" "begin")
#define DS_CALLS_END DS("tool\xe2\x96\x81" "calls\xe2\x96\x81" "end")
#define DS_CALL_BEGIN DS("tool\xe2\x96\x81" "call\xe2\x96\x81" "begin")
#define DS_CALL_END DS("tool\xe2\x96\x81" "call\xe2\x96\x81" "end")
#define DS_SEP DS("tool\xe2\x96\x81" "sep")

/*
 * Parse text; want is "content|name(args)|name(args)..." with content
 * "-" for NULL, or NULL for "no call: all of the text is content".
 */
static int parses(int tmpl, const char *text, const json_t *tools, const char *want)
{
	struct tool_parse p;
	char got[1024] = "";
	size_t n = 0;
	int ok;

	if (tools_parse(tmpl, text, strlen(text), tools, &p))
		return 0;
	if (!want) {
		ok = !p.n_calls && p.content && !strcmp(p.content, text) && p.before == strlen(text);
		if (!ok)
			printf("# %s: wanted plain content, got %d calls\n", chat_tmpl_name(tmpl), p.n_calls);
		tools_parse_free(&p);
		return ok;
	}
	n += (size_t)snprintf(got + n, sizeof(got) - n, "%s", p.content ? p.content : "-");
	for (int i = 0; i < p.n_calls && n < sizeof(got); i++)
		n += (size_t)snprintf(got + n, sizeof(got) - n, "|%s%s%s(%s)", p.calls[i].id ? p.calls[i].id : "",
				      p.calls[i].id ? "=" : "", p.calls[i].name, p.calls[i].args);
	ok = !strcmp(got, want);
	/* the stream's pieces make the same content */
	if (ok && p.content) {
		char joined[1024];

		snprintf(joined, sizeof(joined), "%.*s%.*s", (int)p.before, text, (int)p.tail_len, text + p.tail);
		ok = !strcmp(joined, p.content);
	}
	if (!ok)
		printf("# %s: want %s\n#   got %s\n", chat_tmpl_name(tmpl), want, got);
	tools_parse_free(&p);
	return ok;
}

static void hermes(void)
{
	int bad = 0;

	for (int f = 0; f < 2; f++) {
		int t = f ? CHAT_QWEN3 : CHAT_QWEN25;

		bad += !parses(t, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>",
			       NULL, "-|get_weather({\"city\":\"Paris\",\"days\":2})");
		bad += !parses(t, "Let me check.\n\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
			       "<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": [1, 2.5, \"\xc3\xbc\"]}}\n</tool_call>\n",
			       NULL, "Let me check.|a({})|b({\"x\":[1,2.5,\"\xc3\xbc\"]})");
		bad += !parses(t, "<think>\nhmm\n</think>\n\n<tool_call>{\"name\":\"a\",\"arguments\":{\"q\":\"</tool_call>\"}}</tool_call> done",
			       NULL, "<think>\nhmm\n</think>done|a({\"q\":\"</tool_call>\"})");
	}
	tap_ok(!bad, "qwen2.5, qwen3: <tool_call> JSON calls, one and several, text before and after, a marker inside a string");
	bad = 0;
	bad += !parses(CHAT_QWEN3, "no call at all", NULL, NULL);
	bad += !parses(CHAT_QWEN3, "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n", NULL, NULL);
	bad += !parses(CHAT_QWEN3, "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": }\n</tool_call>", NULL, NULL);
	bad += !parses(CHAT_QWEN3, "<tool_call>\n{\"name\": 3, \"arguments\": {}}\n</tool_call>", NULL, NULL);
	bad += !parses(CHAT_QWEN3, "<tool_call>\n{\"name\": \"a\", \"arguments\": \"{}\"}\n</tool_call>", NULL, NULL);
	bad += !parses(CHAT_QWEN3, "<tool_call>\n[1, 2]\n</tool_call>", NULL, NULL);
	bad += !parses(CHAT_QWEN3, "<tool_call>", NULL, NULL);
	bad += !parses(CHAT_QWEN3, "", NULL, "-");
	tap_ok(!bad, "qwen: no call, an unclosed call, bad JSON, a non-string name, string arguments, an array, a bare marker: plain content");
}

static void llama31(void)
{
	int bad = 0;

	bad += !parses(CHAT_LLAMA31, " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}\n", NULL,
		       "-|get_weather({\"city\":\"Oslo\"})");
	bad += !parses(CHAT_LLAMA31, "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"arguments\": {\"n\": null}}",
		       NULL, "-|a({})|b({\"n\":null})");
	tap_ok(!bad, "llama3.1: a bare JSON call, and two after <|python_tag|> with ';' between");
	bad = 0;
	bad += !parses(CHAT_LLAMA31, "Sure: {\"name\": \"a\", \"parameters\": {}}", NULL, NULL);
	bad += !parses(CHAT_LLAMA31, "{\"name\": \"a\", \"parameters\": {}} and then text", NULL, NULL);
	bad += !parses(CHAT_LLAMA31, "{\"name\": \"a\"}", NULL, NULL);
	bad += !parses(CHAT_LLAMA31, "{\"name\": \"a\", \"parameters\": {", NULL, NULL);
	tap_ok(!bad, "llama3.1: a call after text, text after a call, no parameters, cut-off JSON: plain content");
}

static void deepseek(void)
{
	int bad = 0;

	bad += !parses(CHAT_DEEPSEEK3, "Checking." DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n"
		       "{\"city\": \"Rome\"}\n```" DS_CALL_END "\n" DS_CALL_BEGIN "function" DS_SEP "noop\n```json\n{}\n```"
		       DS_CALL_END DS_CALLS_END, NULL, "Checking.|get_weather({\"city\":\"Rome\"})|noop({})");
	bad += !parses(CHAT_DEEPSEEK3, DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "f\n{\"a\": 1}" DS_CALL_END, NULL, "-|f({\"a\":1})");
	tap_ok(!bad, "deepseek3: two calls in fenced JSON after text; one without fences or the closing marker");
	bad = 0;
	bad += !parses(CHAT_DEEPSEEK3, DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "f\n```json\n{\"a\": 1}\n```", NULL, NULL);
	bad += !parses(CHAT_DEEPSEEK3, DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "\n```json\n{}\n```" DS_CALL_END, NULL, NULL);
	bad += !parses(CHAT_DEEPSEEK3, DS_CALLS_BEGIN DS_CALLS_END, NULL, NULL);
	bad += !parses(CHAT_DEEPSEEK3, DS_CALLS_BEGIN DS_CALL_BEGIN "function f {}", NULL, NULL);
	tap_ok(!bad, "deepseek3: no end marker, no name, no call, no separator: plain content");
}

static void kimi(void)
{
	int bad = 0;

	bad += !parses(CHAT_KIMI_K2, "I will look." "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
		       "<|tool_call_argument_begin|>{\"city\": \"Paris\"}<|tool_call_end|><|tool_call_begin|>functions.noop:1"
		       "<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>", NULL,
		       "I will look.|functions.get_weather:0=get_weather({\"city\":\"Paris\"})|functions.noop:1=noop({})");
	tap_ok(!bad, "kimi-k2: two calls in a section, the model's ids kept, the name from functions.NAME:IDX");
	bad = 0;
	bad += !parses(CHAT_KIMI_K2, "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0{}<|tool_call_end|>", NULL, NULL);
	bad += !parses(CHAT_KIMI_K2, "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{\"a\"",
		       NULL, NULL);
	bad += !parses(CHAT_KIMI_K2, "<|tool_calls_section_begin|><|tool_call_begin|>:0<|tool_call_argument_begin|>{}<|tool_call_end|>",
		       NULL, NULL);
	tap_ok(!bad, "kimi-k2: no argument marker, cut-off arguments, an empty name: plain content");
}

static void glm(void)
{
	json_t *tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
				   "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": "
				   "\"integer\"}}}}}, {\"type\": \"function\", \"function\": {\"name\": \"noop\"}}, "
				   "{\"type\": \"function\", \"function\": {\"name\": \"other\"}}]", 0, NULL);
	int bad = 0;

	/* other declares no parameter types: its values are read as JSON where they are JSON */
	bad += !parses(CHAT_GLM45, "\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>123</arg_value>\n"
		       "<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n<arg_key>opts</arg_key>\n<arg_value>{\"x\": [true]}</arg_value>\n"
		       "</tool_call>\n<tool_call>noop\n</tool_call>", tools,
		       "-|get_weather({\"city\":\"123\",\"days\":2,\"opts\":{\"x\":[true]}})|noop({})");
	bad += !parses(CHAT_GLM45, "Sure.\n<tool_call>other\n<arg_key>q</arg_key>\n<arg_value>a b</arg_value>\n</tool_call>", tools,
		       "Sure.|other({\"q\":\"a b\"})");
	tap_ok(!bad, "glm4.5: <arg_key>/<arg_value> pairs, a string parameter kept a string, JSON values read, a call without arguments");
	bad = 0;
	bad += !parses(CHAT_GLM45, "<tool_call>f\n<arg_key>a</arg_key>\n<arg_value>1</arg_value>\n", tools, NULL);
	bad += !parses(CHAT_GLM45, "<tool_call>f\n<arg_key>a</arg_key>\n1\n</tool_call>", tools, NULL);
	bad += !parses(CHAT_GLM45, "<tool_call>\n</tool_call>", tools, NULL);
	tap_ok(!bad, "glm4.5: unclosed, a key without a value, no name: plain content");
	json_decref(tools);
}

static int safe(int tmpl, const char *text)
{
	return (int)tools_safe_prefix(tmpl, text, strlen(text));
}

static void streaming(void)
{
	int bad = 0;

	bad += safe(CHAT_QWEN3, "Hello there") != 11;
	bad += safe(CHAT_QWEN3, "Hello there \n") != 11;
	bad += safe(CHAT_QWEN3, "Hello <tool") != 5;
	bad += safe(CHAT_QWEN3, "Hello\n<tool_call>\n{") != 5;
	bad += safe(CHAT_QWEN3, "a < b") != 5;
	bad += safe(CHAT_QWEN3, "a <") != 1;
	bad += safe(CHAT_KIMI_K2, "x<|tool_calls") != 1;
	bad += safe(CHAT_DEEPSEEK3, "ok <\xef\xbd\x9c") != 2;
	bad += safe(CHAT_LLAMA31, "  {\"name\"") != 0;
	bad += safe(CHAT_LLAMA31, "<|pyth") != 0;
	bad += safe(CHAT_LLAMA31, "   ") != 0;
	bad += safe(CHAT_LLAMA31, "Hi {") != 4;
	tap_ok(!bad, "streaming: content is cut before a marker, a marker's first bytes and trailing blanks; llama3.1 holds a leading '{'");
	tap_ok(tools_parsable(CHAT_QWEN25) && tools_parsable(CHAT_LLAMA31) && tools_parsable(CHAT_GLM45) &&
	       !tools_parsable(CHAT_CHATML) && !tools_parsable(CHAT_LLAMA2), "the families with a call syntax");
}

/*
 * Every prefix of a good output (a reply cut off by max_tokens), and the
 * output with one byte changed at each place: either calls whose text is
 * well-formed JSON, or all of the text as content; never half of each.
 */
static void cut_and_flipped(void)
{
	static const struct { int tmpl; const char *text; } good[] = {
		{ CHAT_QWEN3, "Hi.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, \"\xc3\xbc\"]}}\n</tool_call>" },
		{ CHAT_LLAMA31, "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": 1}}; {\"name\": \"b\", \"parameters\": {}}" },
		{ CHAT_DEEPSEEK3, DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "f\n```json\n{\"a\": 1}\n```" DS_CALL_END DS_CALLS_END },
		{ CHAT_KIMI_K2, "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{\"a\": 1}"
				"<|tool_call_end|><|tool_calls_section_end|>" },
		{ CHAT_GLM45, "<tool_call>f\n<arg_key>a</arg_key>\n<arg_value>{\"b\": 1}</arg_value>\n</tool_call>" },
	};
	int bad = 0, cases = 0;

	for (size_t g = 0; g < sizeof(good) / sizeof(good[0]); g++) {
		size_t len = strlen(good[g].text);
		char *buf = malloc(len + 1);

		for (size_t k = 0; k <= 2 * len; k++) {
			struct tool_parse p;
			size_t n = k <= len ? k : len;

			memcpy(buf, good[g].text, len + 1);
			if (k > len)
				buf[k - len - 1] ^= 0x20;
			buf[n] = '\0';
			cases++;
			if (tools_parse(good[g].tmpl, buf, n, NULL, &p)) {
				bad++;
				continue;
			}
			if (p.n_calls) {
				for (int i = 0; i < p.n_calls; i++) {
					json_t *v = json_loads(p.calls[i].args, JSON_ALLOW_NUL, NULL);

					bad += !json_is_object(v) || !*p.calls[i].name;
					json_decref(v);
				}
			} else {
				bad += n ? !p.content || strcmp(p.content, buf) : p.content != NULL;
			}
			tools_parse_free(&p);
		}
		free(buf);
	}
	tap_ok(!bad, "%d cut-off and one-byte-changed outputs of every format: whole calls or all content (%d bad)", cases, bad);
}

/* A call of a function the request did not declare is not a call (all content); a declared one is. */
static void undeclared(void)
{
	json_t *tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}, "
				   "{\"type\": \"function\", \"function\": {\"name\": \"noop\"}}]", 0, NULL);
	const char *two = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>\n"
			  "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>";
	int bad = 0;

	bad += !parses(CHAT_QWEN3, "<tool_call>\n{\"name\": \"noop\", \"arguments\": {}}\n</tool_call>", tools, "-|noop({})");
	bad += !parses(CHAT_QWEN3, two, tools, NULL);
	bad += !parses(CHAT_QWEN3, two, NULL, "-|get_weather({})|rm_rf({})");
	bad += !parses(CHAT_KIMI_K2, "<|tool_calls_section_begin|><|tool_call_begin|>functions.rm_rf:0"
		       "<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>", tools, NULL);
	bad += !parses(CHAT_GLM45, "<tool_call>Get_weather\n</tool_call>", tools, NULL);
	bad += !parses(CHAT_LLAMA31, "{\"name\": \"noop2\", \"parameters\": {}}", tools, NULL);
	json_decref(tools);
	tap_ok(!bad, "a call of a function not among the request's tools makes the whole output content; "
	       "declared names are calls, and without tools any name is (%d bad)", bad);
}

int main(void)
{
	undeclared();
	hermes();
	llama31();
	deepseek();
	kimi();
	glm();
	streaming();
	cut_and_flipped();
	return tap_done();
}
