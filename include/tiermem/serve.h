/* SPDX-License-Identifier: MIT */
/*
 * tiermem serve: an OpenAI-compatible HTTP server (llama-server's shape) over
 * one loaded model. HTTP is libmicrohttpd, JSON is jansson; the scheduler
 * decodes up to `parallel` requests together with tm_forward_seqs, so each
 * weight is read once per step for all of them. See Documentation/tiermem-serve.rst.
 */
#ifndef TIERMEM_SERVE_H
#define TIERMEM_SERVE_H

#include <signal.h>

#include "kernels/pool.h"
#include "tiermem/model.h"
#include "tiermem/tokenizer.h"

#define SERVE_BATCH_DEFAULT 64

/*
 * What a chat reply's <think>...</think> reasoning becomes (llama-server's
 * --reasoning-format): auto (its default) and deepseek return it as
 * message.reasoning_content (delta.reasoning_content when streamed), none
 * leaves it in the content. A request's "reasoning_format" overrides.
 */
enum tm_reasoning_format { TM_REASONING_AUTO, TM_REASONING_DEEPSEEK, TM_REASONING_NONE };
/* "auto", "deepseek", "none" -> the enum; -1 if unknown. */
int tm_reasoning_format_parse(const char *name);

struct tm_serve_opts {
	const char *host;		/* address to bind; "127.0.0.1" unless told otherwise */
	int port;			/* 0: any free port (tm_serve_port says which) */
	int parallel;			/* slots: sequences decoded together */
	int ctx_size;			/* tokens per slot: prompt plus completion */
	int queue;			/* requests that may wait for a slot; more get 503 */
	int timeout_s;			/* idle connections, and a request's headers and body, must finish in this */
	const char *api_key;		/* NULL: no key needed */
	const char *model_id;		/* the id /v1/models lists and requests must name */
	const char *chat_template;	/* a template name (chatml, llama2, ...), or NULL: detect */
	const char *chat_template_text;	/* detect from this text, not the model's tokenizer.chat_template */
	int type_k, type_v;		/* KV cache types (tm_ctx_create_kv); 0 is TM_F32 */
	/*
	 * Chunked prefill: prompt tokens evaluated per scheduler step over all
	 * slots (llama-server's --batch-size), so a long prompt joining delays
	 * the running streams' next tokens by one chunk, not by its whole
	 * prefill; and tokens per forward batch of a prompt (--ubatch-size).
	 * 0: SERVE_BATCH_DEFAULT.
	 */
	int batch_size, ubatch_size;
	int reasoning_format;		/* enum tm_reasoning_format */
	/*
	 * Render thinking templates with enable_thinking false (qwen3 and
	 * glm4.5 then ask the model not to think): llama-server's
	 * --reasoning-budget 0. A request's chat_template_kwargs overrides.
	 */
	bool no_thinking;
	/*
	 * Slots and scheduler state only, no HTTP: a follower rank of an MPI
	 * server (tiermem/mpi_split.h), which runs the forward calls rank 0's
	 * scheduler announces through its mirror, on contexts made alike.
	 */
	bool no_http;
	/*
	 * Tests only: every completion is the tokens of this text (then EOS)
	 * instead of sampled ones, so the HTTP layer's tool-call parsing can be
	 * checked on a model that would never write a call by chance. Set by
	 * the CLI from TIERMEM_SERVE_TEST_REPLY, with a warning; NULL: sample.
	 */
	const char *test_reply;
};

/*
 * A copy of every forward call the scheduler makes, for processes that must
 * make the same calls in the same order (MPI ranks whose forward passes meet
 * in collectives or pass activations on). prefill: before tm_forward(slot's
 * context, toks, n) from position n_past; decode: before one
 * tm_forward_seqs of slots[i]'s contexts with toks[i]; done: after either,
 * with the contexts whose logits are to be sampled (to bring them where they
 * were computed). depth > 1: up to depth calls may be made before the first
 * one's done (a pipeline of processes, each working on another call); done
 * then comes later, for the calls in the order they were made, and a slot
 * is in at most one call not yet done. The scheduler then splits the
 * running slots into decode steps of their own: of at most group(running)
 * slots each (running: the slots generating), or without group about a
 * depth-th of them. made: after either call's forward pass returned here.
 * Called on the scheduler's thread, without the lock; but metrics, which
 * GET /metrics calls (from an HTTP thread) for more lines in Prometheus'
 * text format, malloc'd (NULL: none).
 */
struct tm_serve_mirror {
	void (*prefill)(void *arg, int slot, int n_past, const int32_t *toks, int n);
	void (*decode)(void *arg, const int *slots, const int32_t *toks, int n);
	void (*made)(void *arg);
	void (*done)(void *arg, struct tm_ctx *const *ctxs, int n);
	int (*group)(void *arg, int running);
	char *(*metrics)(void *arg);
	int depth;			/* 0 or 1: each call is done before the next */
	void *arg;
};

struct tm_server;

/*
 * Bind, start answering, and set up the slots. The model, tokenizer and pool
 * must outlive the server. 0 or a negative errno with a tm_err message
 * (-EINVAL for a bad option, -EADDRINUSE etc. for the socket).
 */
int tm_serve_create(struct tm_server **out, const struct tm_serve_opts *o, const struct tm_model *m,
		    const struct tm_tokenizer *t, struct tm_pool *pool);
int tm_serve_port(const struct tm_server *s);
/* The chat template in use: "chatml", "qwen2", "qwen2.5", "llama2", "llama3", "llama3.1", "deepseek3", ... */
const char *tm_serve_chat_template(const struct tm_server *s);
/*
 * Run the scheduler on this thread until *stop becomes nonzero (a signal
 * handler sets it); then stop accepting, finish every admitted request,
 * and return 0 (or a negative errno if the model failed).
 */
int tm_serve_run(struct tm_server *s, volatile sig_atomic_t *stop);
/*
 * Route every slot's prefill and the batched decode through the MoE expert
 * cache x (tiermem/experts.h), and count its hits and misses in /metrics.
 * Before tm_serve_run; x must outlive the server's forward passes.
 */
struct tm_xonline;
void tm_serve_expert_cache(struct tm_server *s, struct tm_xonline *x);
/* Before tm_serve_run: every forward call is told to mi first (copied). */
void tm_serve_mirror(struct tm_server *s, const struct tm_serve_mirror *mi);

/* The contexts forward calls run on: slot i's (i < parallel), the batched decode's (i == parallel). */
struct tm_ctx *tm_serve_ctx(struct tm_server *s, int i);
int tm_serve_slots(const struct tm_server *s);

void tm_serve_free(struct tm_server *s);

#endif
