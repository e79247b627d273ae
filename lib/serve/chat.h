/* SPDX-License-Identifier: MIT */
/*
 * Chat templates: the prompt a model was trained to see for a list of
 * messages. Not a Jinja interpreter: the families tiermem runs are each
 * rendered in C exactly as their tokenizer.chat_template renders (checked
 * against @huggingface/jinja on the real template texts), and a template
 * is recognised from marker strings in its text, as llama.cpp does.
 */
#ifndef TIERMEM_SERVE_CHAT_H
#define TIERMEM_SERVE_CHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum chat_tmpl {
	CHAT_CHATML,		/* <|im_start|>role\n...<|im_end|>\n (Qwen, and the fallback) */
	CHAT_LLAMA2,		/* [INST] ... [/INST], <<SYS>> folded into the first user turn */
	CHAT_LLAMA3,		/* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
	CHAT_DEEPSEEK3,		/* <｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜> */
	CHAT_KIMI_K2,		/* <|im_user|>user<|im_middle|>...<|im_end|> */
	CHAT_GLM4,		/* [gMASK]<sop><|user|>\n... */
	CHAT_QWEN2,		/* ChatML with Qwen2's default system prompt */
	CHAT_QWEN25,		/* Qwen2.5's: its default system prompt, tools in it, <tool_call> */
	CHAT_LLAMA31,		/* llama-3.1's: a dated system header, tools in the first user turn */
	CHAT_QWEN3,		/* ChatML, no default system prompt, <think> kept after the last query, <tool_call> */
	CHAT_GLM45,		/* GLM-4.5/4.6 (glm4moe): <think></think>, <tool_call> with <arg_key>/<arg_value> */
	CHAT_N,
};

/*
 * An assistant's tool call: its id, the function's name, and its arguments
 * parsed from OpenAI's JSON text (args) and as that text (args_text; NULL
 * when the client sent an object): templates that test `arguments is
 * string` write the text as sent.
 */
struct chat_call {
	const char *id, *name, *args_text;
	json_t *args;
};

struct chat_msg {
	const char *role, *content;
	const char *name;		/* the sender's name, or NULL (Kimi-K2 writes it for the role) */
	const char *reasoning;		/* assistant: its reasoning_content, or NULL (Qwen3, GLM-4.5 render it) */
	const struct chat_call *calls;	/* assistant: the tool calls, or NULL */
	int n_calls;
	const char *tool_call_id;	/* tool: the call it answers, or NULL */
};

/* "chatml", "llama2", ... -> enum; -1 if unknown. */
int chat_tmpl_parse(const char *name);
const char *chat_tmpl_name(int t);
/* The comma-separated names, for --help and errors. */
const char *chat_tmpl_names(void);
/* The family a template text belongs to; CHAT_CHATML when none matches (llama-server's fallback). */
int chat_tmpl_detect(const char *text);
/* Whether the family renders tools and tool calls (qwen2.5, qwen3, llama3.1, deepseek3, kimi-k2, glm4.5). */
bool chat_tmpl_tools(int tmpl);

/*
 * Render messages (roles "system", "user", "assistant", and "tool" results)
 * and tools (OpenAI's array of tool objects, or NULL) into a malloc'ed
 * prompt; thinking false is the templates' enable_thinking=false (qwen3 and
 * glm4.5 then ask the model not to think; the others ignore it); NULL with
 * *why set for a conversation the template refuses
 * (llama-2: roles that do not alternate; llama-3.1: tools and no user
 * turn, or several calls in one message) or out of memory.
 */
char *chat_render(int tmpl, const struct chat_msg *msgs, int n, const json_t *tools,
		  bool add_generation_prompt, bool thinking, const char *bos, const char *eos, const char **why);

#endif
