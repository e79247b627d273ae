// SPDX-License-Identifier: MIT
/* tm_serve_*: the server's life: options checked, slots made, HTTP up; run; drain; free. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "tiermem/error.h"
#include "tiermem/generate.h"
#include "lib/serve/chat.h"
#include "lib/serve/internal.h"

int tm_serve_create(struct tm_server **out, const struct tm_serve_opts *o, const struct tm_model *m,
		    const struct tm_tokenizer *t, struct tm_pool *pool)
{
	struct tm_server *s;
	struct tm_gguf_str gs;
	char *text = NULL;
	int err;

	*out = NULL;
	if (o->parallel < 1 || o->parallel > 256)
		return tm_err(-EINVAL, "--parallel %d: give 1 to 256 slots", o->parallel);
	if (o->ctx_size < 2 || o->ctx_size > m->hp.n_ctx_train)
		return tm_err(-EINVAL, "--ctx-size %d: the model allows 2 to %d tokens", o->ctx_size,
			      m->hp.n_ctx_train);
	if (o->queue < 0 || o->timeout_s < 1)
		return tm_err(-EINVAL, "a queue of %d, a timeout of %d s", o->queue, o->timeout_s);
	if (o->batch_size < 0 || o->batch_size > 1 << 20 || o->ubatch_size < 0 || o->ubatch_size > 1 << 16)
		return tm_err(-EINVAL, "--batch-size %d, --ubatch-size %d: give 1 to %d and 1 to %d tokens",
			      o->batch_size, o->ubatch_size, 1 << 20, 1 << 16);
	if (o->chat_template && chat_tmpl_parse(o->chat_template) < 0)
		return tm_err(-EINVAL, "--chat-template %s: not one of %s", o->chat_template, chat_tmpl_names());
	if (!(s = calloc(1, sizeof(*s))))
		return tm_err(-ENOMEM, "out of memory");
	s->o = *o;
	if (!s->o.batch_size)
		s->o.batch_size = SERVE_BATCH_DEFAULT;
	if (!s->o.ubatch_size)
		s->o.ubatch_size = SERVE_BATCH_DEFAULT;
	s->m = m;
	s->tok = t;
	s->pool = pool;
	snprintf(s->model_id, sizeof(s->model_id), "%s", o->model_id);
	if (!o->chat_template_text && !tm_gguf_get_str(&m->gguf, "tokenizer.chat_template", &gs))
		text = strndup(gs.ptr, gs.len);
	s->chat_tmpl = o->chat_template ? chat_tmpl_parse(o->chat_template) :
		       chat_tmpl_detect(o->chat_template_text ? o->chat_template_text : text);
	free(text);
	if (o->test_reply) {
		int n = tm_tokenize_alloc(t, o->test_reply, strlen(o->test_reply), false, true, &s->test_reply);

		if (n < 0 || tm_tokenizer_eos(t) < 0) {
			free(s->test_reply);
			free(s);
			return n < 0 ? n : tm_err(-EINVAL, "a test reply needs a vocabulary with an EOS token");
		}
		s->n_test_reply = n;
	}
	s->queue_tail = &s->queue;
	s->t_start = tm_now();
	s->t_start_wall = time(NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->progress, NULL);
	*out = s;
	if ((err = sched_init(s)) || (!o->no_http && (err = http_start(s)))) {
		tm_serve_free(s);
		*out = NULL;
		return err;
	}
	return 0;
}

int tm_serve_port(const struct tm_server *s)
{
	return s->port;
}

const char *tm_serve_chat_template(const struct tm_server *s)
{
	return chat_tmpl_name(s->chat_tmpl);
}

int tm_serve_run(struct tm_server *s, volatile sig_atomic_t *stop)
{
	int err = sched_loop(s, stop);

	/* every admitted request is generated: let its response finish, then close */
	http_drain(s);
	http_stop(s);
	return err;
}

void tm_serve_expert_cache(struct tm_server *s, struct tm_xonline *x)
{
	s->xcache = x;
	tm_xonline_attach(x, s->batch);
	for (int i = 0; i < s->o.parallel; i++)
		tm_xonline_attach(x, s->slots[i].ctx);
}

void tm_serve_mirror(struct tm_server *s, const struct tm_serve_mirror *mi)
{
	s->mirror = *mi;
}

struct tm_ctx *tm_serve_ctx(struct tm_server *s, int i)
{
	return i < s->o.parallel ? s->slots[i].ctx : s->batch;
}

int tm_serve_slots(const struct tm_server *s)
{
	return s->o.parallel;
}

void tm_serve_free(struct tm_server *s)
{
	if (!s)
		return;
	http_stop(s);
	sched_free(s);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->progress);
	free(s->test_reply);
	free(s);
}
