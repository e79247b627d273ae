// SPDX-License-Identifier: MIT
/*
 * HTTP through libmicrohttpd, one thread per connection: a connection's
 * thread parses the request, queues the job and then simply waits for the
 * scheduler's text, writing it whole or as server-sent events. The
 * library does all HTTP parsing; this file routes, checks the API key, bounds
 * bodies, notices clients that went away (POLLRDHUP while waiting, so their
 * slot is freed at once), and gives every request a deadline for its headers
 * and body, which an idle timeout alone does not (a client sending one byte
 * a second is never idle).
 */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tiermem/error.h"
#include "tiermem/generate.h"
#include "lib/serve/dashboard.h"
#include "lib/serve/internal.h"
#include "lib/serve/reasoning.h"
#include "lib/serve/tools.h"

#define MAX_CONNS 128

/* A connection under the header deadline: from its start or its last response until a request is read. */
struct conn_watch {
	int fd;			/* -1: unused */
	double since;
	bool reading;		/* a request is being received */
	bool served;		/* it answered one: may be an idle keep-alive connection */
};

/* Per request (MHD's con_cls). */
struct req {
	struct tm_server *s;
	struct conn_watch *w;
	int fd;
	char *body;
	size_t len, cap;
	bool too_big;
	/* streaming */
	struct api_req ar;
	struct job *job;
	size_t sent;			/* job->text up to here is sent as content (or is not content) */
	size_t r_sent;			/* and up to here as reasoning */
	bool role_sent, finished;
	char *pend;			/* an event not yet fully written */
	size_t pend_len, pend_off;
};

static const char json_mime[] = "application/json; charset=utf-8";

static int reply(struct MHD_Connection *c, int status, const char *type, char *body)
{
	struct MHD_Response *r;
	int ret;

	if (!body) {
		status = 500;
		body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
		if (!body)
			return MHD_NO;
	}
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static int reply_error(struct tm_server *s, struct MHD_Connection *c, const struct api_err *e)
{
	pthread_mutex_lock(&s->lock);
	s->n_errors++;
	pthread_mutex_unlock(&s->lock);
	return reply(c, e->status, json_mime, api_error(e));
}

static int fail(struct tm_server *s, struct MHD_Connection *c, int status, const char *code, const char *fmt,
		const char *arg)
{
	struct api_err e;

	api_fail(&e, status, code, NULL, fmt, arg);
	return reply_error(s, c, &e);
}

/*
 * The client closed its end (or the socket broke): nobody will read what we
 * write. A client that half-closes after sending its request counts as gone
 * too; HTTP/1.1 clients do not do that.
 */
static bool hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void wait_progress(struct tm_server *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 100 * 1000000;
	if (ts.tv_nsec >= 1000000000)
		ts.tv_sec++, ts.tv_nsec -= 1000000000;
	pthread_cond_timedwait(&s->progress, &s->lock, &ts);
}

/* Under lock: the client is gone; the scheduler frees its slot at the next step. */
static void cancel(struct tm_server *s, struct job *j)
{
	if (!j->done) {
		j->cancelled = true;
		pthread_cond_signal(&s->work);
	}
}

static bool key_ok(struct tm_server *s, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	const char *k = s->o.api_key;
	size_t kl, hl;
	unsigned char diff = 0;

	if (!k)
		return true;
	if (!h || strncmp(h, "Bearer ", 7))
		return false;
	h += 7;
	kl = strlen(k);
	hl = strlen(h);
	/* the same work whatever the key's prefix: no timing hint */
	for (size_t i = 0; i < kl; i++)
		diff |= (unsigned char)(k[i] ^ (i < hl ? h[i] : 0));
	return !diff && hl == kl;
}

/* ---- streaming: the content reader runs on the connection's thread ---- */

/* Add an event to those to write: after the ones not yet written, else in place of the written ones. */
static int queue_event(struct req *q, char *json)
{
	size_t n;
	char *p;

	if (!json)
		return -1;
	n = strlen(json);
	if (q->pend_off >= q->pend_len) {
		free(q->pend);
		q->pend = NULL;
		q->pend_len = q->pend_off = 0;
	}
	if (!(p = realloc(q->pend, q->pend_len + n + 9))) {
		free(json);
		return -1;
	}
	q->pend = p;
	memcpy(p + q->pend_len, "data: ", 6);
	memcpy(p + q->pend_len + 6, json, n);
	memcpy(p + q->pend_len + 6 + n, "\n\n", 3);
	q->pend_len += n + 8;
	free(json);
	return 0;
}

/* The job's content from `from` (or from what was sent, if later) up to `to`, as a content chunk (nothing if none). */
static int queue_text(struct req *q, size_t from, size_t to)
{
	if (from < q->sent)
		from = q->sent;
	if (to <= from)
		return 0;
	q->sent = to;
	return queue_event(q, api_chunk(q->s, &q->ar, q->job->text + from, to - from, NULL, false, NULL));
}

/*
 * The end of a reply to a request with tools: the rest of the content
 * before the calls, the calls (all in one delta: they are held back while
 * generated, not streamed piece by piece), the content after them; or, if
 * the text holds no well-formed call, the rest of it as content.
 */
static int queue_calls(struct req *q, size_t c_from, const char **finish)
{
	struct job *j = q->job;
	struct tool_parse p;
	int err;

	if (api_tool_calls(j, &p))
		return -1;
	if (!p.n_calls) {
		tools_parse_free(&p);
		return queue_text(q, c_from, j->len);
	}
	*finish = "tool_calls";
	err = queue_text(q, c_from, p.before) || queue_event(q, api_chunk_calls(q->s, &q->ar, &p));
	if (!err && p.tail_len)
		err = queue_event(q, api_chunk(q->s, &q->ar, j->text + p.tail, p.tail_len, NULL, false, NULL));
	q->sent = j->len;
	tools_parse_free(&p);
	return err ? -1 : 0;
}

/* The next event: the role, new reasoning or content, the finish, usage, [DONE]; 0 when there is none yet. */
static int next_event(struct req *q)
{
	struct tm_server *s = q->s;
	struct job *j = q->job;
	struct think_split t;

	if (q->ar.chat && !q->role_sent) {
		q->role_sent = true;
		return queue_event(q, api_chunk(s, &q->ar, NULL, 0, NULL, true, NULL)) ? -1 : 1;
	}
	api_think_split(j, &t);
	if (t.r_to > t.r_from && t.r_to > q->r_sent) {
		size_t from = q->r_sent > t.r_from ? q->r_sent : t.r_from;

		q->r_sent = t.r_to;
		return queue_event(q, api_chunk_reasoning(s, &q->ar, j->text + from, t.r_to - from)) ? -1 : 1;
	}
	if (j->len && (!j->done || j->tools_tmpl < 0)) {
		/* with tools, what may be a call waits for the end */
		size_t to = j->tools_tmpl < 0 ? j->len :
			    t.c_from + tools_safe_prefix(j->tools_tmpl, j->text + t.c_from, j->len - t.c_from);

		if (to > t.c_from && to > q->sent)
			return queue_text(q, t.c_from, to) ? -1 : 1;
	}
	if (!j->done)
		return 0;
	if (j->error[0]) {
		struct api_err e;

		api_fail(&e, 500, NULL, NULL, "%s", j->error);
		q->finished = true;
		return queue_event(q, api_error(&e)) ? -1 : 1;
	}
	if (!q->finished) {
		const char *finish = j->finish;

		q->finished = true;
		if ((j->tools_tmpl >= 0 && queue_calls(q, t.c_from, &finish)) ||
		    queue_event(q, api_chunk(s, &q->ar, NULL, 0, finish, false, NULL)) ||
		    (q->ar.include_usage && queue_event(q, api_chunk(s, &q->ar, NULL, 0, NULL, false, j))))
			return -1;
		return 1;
	}
	return 2;	/* everything sent but [DONE] */
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *q = cls;
	struct tm_server *s = q->s;
	static const char done[] = "data: [DONE]\n\n";

	for (;;) {
		if (q->pend && q->pend_off < q->pend_len) {
			size_t n = q->pend_len - q->pend_off;

			if (n > max)
				n = max;
			memcpy(buf, q->pend + q->pend_off, n);
			q->pend_off += n;
			return (ssize_t)n;
		}
		pthread_mutex_lock(&s->lock);
		int ev;

		while (!(ev = next_event(q))) {
			if (hung_up(q->fd)) {
				cancel(s, q->job);
				pthread_mutex_unlock(&s->lock);
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
			wait_progress(s);
		}
		pthread_mutex_unlock(&s->lock);
		if (ev < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (ev == 2) {
			if (q->pend_len == sizeof(done) - 1 && !memcmp(q->pend, done, q->pend_len))
				return MHD_CONTENT_READER_END_OF_STREAM;
			free(q->pend);
			q->pend = strdup(done);
			if (!q->pend)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			q->pend_len = sizeof(done) - 1;
			q->pend_off = 0;
		}
	}
}

static void req_free(struct req *q)
{
	if (q->job) {
		pthread_mutex_lock(&q->s->lock);
		cancel(q->s, q->job);
		job_put(q->s, q->job);
		pthread_mutex_unlock(&q->s->lock);
	}
	free(q->pend);
	free(q->body);
	free(q);
}

static void stream_done(void *cls)
{
	req_free(cls);
}

/* ---- completions ---- */

static int completion(struct tm_server *s, struct MHD_Connection *c, struct req *q, bool chat)
{
	struct api_err e;
	struct job *j;
	struct MHD_Response *r;
	int ret;

	q->ar.chat = chat;
	if (!(j = api_parse(s, q->body ? q->body : "", q->len, &q->ar, &e)))
		return reply_error(s, c, &e);
	if (!sched_submit(s, j)) {
		pthread_mutex_lock(&s->lock);
		job_put(s, j);
		pthread_mutex_unlock(&s->lock);
		api_fail(&e, 503, "server_busy", NULL, "%s", s->stopping ? "the server is shutting down" :
			 "every slot is busy and the queue is full; try again later");
		return reply_error(s, c, &e);
	}
	pthread_mutex_lock(&s->lock);
	s->n_requests++;
	pthread_mutex_unlock(&s->lock);
	if (q->ar.stream) {
		/* the reader owns q from here: MHD frees it through stream_done */
		struct req *sq = calloc(1, sizeof(*sq));

		if (!sq) {
			pthread_mutex_lock(&s->lock);
			cancel(s, j);
			job_put(s, j);
			pthread_mutex_unlock(&s->lock);
			return reply(c, 500, json_mime, NULL);
		}
		sq->s = s;
		sq->fd = q->fd;
		sq->ar = q->ar;
		sq->job = j;
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, sq, stream_done);
		if (!r) {
			req_free(sq);
			return MHD_NO;
		}
		MHD_add_response_header(r, "Content-Type", "text/event-stream");
		MHD_add_response_header(r, "Cache-Control", "no-cache");
		ret = MHD_queue_response(c, 200, r);
		MHD_destroy_response(r);
		return ret;
	}
	pthread_mutex_lock(&s->lock);
	while (!j->done) {
		if (hung_up(q->fd)) {
			cancel(s, j);
			job_put(s, j);
			pthread_mutex_unlock(&s->lock);
			return MHD_NO;
		}
		wait_progress(s);
	}
	pthread_mutex_unlock(&s->lock);
	if (j->error[0]) {
		api_fail(&e, 500, NULL, NULL, "%s", j->error);
		ret = reply(c, 500, json_mime, api_error(&e));
	} else {
		ret = reply(c, 200, json_mime, api_response(s, &q->ar, j));
	}
	pthread_mutex_lock(&s->lock);
	job_put(s, j);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* ---- routing ---- */

static bool is_path(const char *url, const char *a)
{
	return !strcmp(url, a) || (!strncmp(a, "/v1", 3) && !strcmp(url, a + 3));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct tm_server *s = cls;
	struct req *q = *con_cls;
	bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
	/* what the dashboard reads is open, as llama-server's /health and web page are */
	bool open = is_path(url, "/health") || !strcmp(url, "/") || is_path(url, "/metrics") || is_path(url, "/props");

	if (!q) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");

		if (!(q = calloc(1, sizeof(*q))))
			return MHD_NO;
		pthread_mutex_lock(&s->lock);
		s->n_inflight++;
		pthread_mutex_unlock(&s->lock);
		q->s = s;
		q->fd = fi ? fi->connect_fd : -1;
		q->w = ci ? ci->socket_context : NULL;
		*con_cls = q;
		if (!open && !key_ok(s, c)) {
			const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

			return fail(s, c, 401, "invalid_api_key", "%s", h && *h ? "Incorrect API key provided" :
				    "Missing API key: send 'Authorization: Bearer KEY'");
		}
		/*
		 * A body somewhat over the limit is read and dropped, so the
		 * client, still sending, can read the 413; a huge one is refused
		 * at once (the client may then see the connection cut instead).
		 */
		if (cl && strtoull(cl, NULL, 10) > 16 * SERVE_MAX_BODY)
			return fail(s, c, 413, "request_too_large", "the body is larger than %s", "4 MiB");
		return MHD_YES;
	}
	if (*upload_size) {
		if (!q->too_big && q->len + *upload_size > SERVE_MAX_BODY) {
			q->too_big = true;
			free(q->body);
			q->body = NULL;
		}
		if (!q->too_big && buf_append(&q->body, &q->len, &q->cap, upload, *upload_size))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	/* the whole request is in: its deadline is over */
	if (q->w) {
		pthread_mutex_lock(&s->lock);
		q->w->reading = false;
		pthread_mutex_unlock(&s->lock);
	}
	if (q->too_big)
		return fail(s, c, 413, "request_too_large", "the body is larger than %s", "4 MiB");
	if (is_path(url, "/health"))
		return get ? reply(c, 200, json_mime, strdup("{\"status\":\"ok\"}")) :
		       fail(s, c, 405, "method_not_allowed", "%s needs GET", url);
	if (!strcmp(url, "/"))
		return get ? reply(c, 200, "text/html; charset=utf-8", strdup(dashboard_html)) :
		       fail(s, c, 405, "method_not_allowed", "%s needs GET", url);
	if (is_path(url, "/metrics"))
		return get ? reply(c, 200, "text/plain; version=0.0.4", metrics_text(s)) :
		       fail(s, c, 405, "method_not_allowed", "%s needs GET", url);
	if (is_path(url, "/v1/models"))
		return get ? reply(c, 200, json_mime, api_models(s)) :
		       fail(s, c, 405, "method_not_allowed", "%s needs GET", url);
	if (is_path(url, "/props"))
		return get ? reply(c, 200, json_mime, api_props(s)) :
		       fail(s, c, 405, "method_not_allowed", "%s needs GET", url);
	if (is_path(url, "/v1/chat/completions") || is_path(url, "/v1/completions")) {
		if (!post)
			return fail(s, c, 405, "method_not_allowed", "%s needs POST", url);
		return completion(s, c, q, is_path(url, "/v1/chat/completions"));
	}
	if (is_path(url, "/apply-template")) {
		struct api_err e;
		char *out;

		if (!post)
			return fail(s, c, 405, "method_not_allowed", "%s needs POST", url);
		out = api_apply_template(s, q->body ? q->body : "", q->len, &e);
		return out ? reply(c, 200, json_mime, out) : reply_error(s, c, &e);
	}
	return fail(s, c, 404, "not_found", "no such endpoint: %.200s", url);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct tm_server *s = cls;
	struct req *q = *con_cls;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_watch *w = ci ? ci->socket_context : NULL;

	pthread_mutex_lock(&s->lock);
	if (w) {
		/* keep-alive: the next request's deadline starts now */
		w->since = tm_now();
		w->reading = true;
		w->served = true;
	}
	if (q) {
		s->n_inflight--;
		pthread_cond_broadcast(&s->progress);
	}
	pthread_mutex_unlock(&s->lock);
	if (q)
		req_free(q);
	*con_cls = NULL;
}

static void connection(void *cls, struct MHD_Connection *c, void **socket_context,
		       enum MHD_ConnectionNotificationCode code)
{
	struct tm_server *s = cls;

	pthread_mutex_lock(&s->lock);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		*socket_context = NULL;
		for (int i = 0; fi && i < MAX_CONNS; i++)
			if (s->watch[i].fd < 0) {
				s->watch[i] = (struct conn_watch){ .fd = fi->connect_fd, .since = tm_now(), .reading = true };
				*socket_context = &s->watch[i];
				break;
			}
	} else if (*socket_context) {
		((struct conn_watch *)*socket_context)->fd = -1;
	}
	pthread_mutex_unlock(&s->lock);
}

/*
 * Past the deadline with a request still coming in: answer 408 and shut the
 * socket, which ends the connection's thread's read. MHD has written nothing
 * on such a connection yet (it answers only whole requests), and the lock
 * keeps the fd from being closed under us (the close notification takes it).
 */
static void *watchdog(void *arg)
{
	struct tm_server *s = arg;
	static const char msg[] = "{\"error\":{\"message\":\"the request's headers and body did not arrive in time\","
				  "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"request_timeout\"}}";
	char resp[512];
	int n = snprintf(resp, sizeof(resp), "HTTP/1.1 408 Request Timeout\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", json_mime, sizeof(msg) - 1, msg);

	pthread_mutex_lock(&s->lock);
	while (s->watchdog_on) {
		double now = tm_now();

		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn_watch *w = &s->watch[i];

			int pending = 0;

			if (w->fd < 0 || !w->reading || now - w->since <= s->o.timeout_s)
				continue;
			/* an idle keep-alive connection is just closed: nothing was asked */
			if (!w->served || (!ioctl(w->fd, FIONREAD, &pending) && pending > 0)) {
				if (send(w->fd, resp, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
					(void)0;	/* the client is gone anyway */
				s->n_errors++;
			}
			shutdown(w->fd, SHUT_RDWR);
			w->reading = false;
		}
		pthread_mutex_unlock(&s->lock);
		usleep(200 * 1000);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	/* MHD reports clients' protocol errors here; they are answered, not ours to print */
}

int http_start(struct tm_server *s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV },
			*ai = NULL;
	char port[16];
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
			 MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;
	int rc;

	s->watch = malloc(sizeof(*s->watch) * MAX_CONNS);
	if (!s->watch)
		return tm_err(-ENOMEM, "out of memory");
	for (int i = 0; i < MAX_CONNS; i++)
		s->watch[i].fd = -1;
	snprintf(port, sizeof(port), "%d", s->o.port);
	if ((rc = getaddrinfo(s->o.host, port, &hints, &ai)))
		return tm_err(-EINVAL, "--host %s: %s", s->o.host, gai_strerror(rc));
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->httpd = MHD_start_daemon(flags, 0, NULL, NULL, handle, s,
				    MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				    MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNS,
				    /*
				     * not MHD's idle timeout: it would also cut a response
				     * whose first token takes longer; the watchdog times
				     * requests coming in and idle keep-alive connections
				     */
				    MHD_OPTION_CONNECTION_TIMEOUT, 0u,
				    MHD_OPTION_NOTIFY_COMPLETED, completed, s,
				    MHD_OPTION_NOTIFY_CONNECTION, connection, s,
				    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
				    MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!s->httpd)
		return tm_err(-EADDRINUSE, "cannot listen on %s port %d (in use, or not an address of this machine?)",
			      s->o.host, s->o.port);
	di = MHD_get_daemon_info(s->httpd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : s->o.port;
	s->watchdog_on = true;
	if (pthread_create(&s->watchdog, NULL, watchdog, s)) {
		s->watchdog_on = false;
		return tm_err(-ENOMEM, "cannot start the timeout thread");
	}
	return 0;
}

void http_quiesce(struct tm_server *s)
{
	MHD_socket fd = s->httpd ? MHD_quiesce_daemon(s->httpd) : MHD_INVALID_SOCKET;

	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

/* Let the responses under way finish writing (within the timeout), then stop. */
void http_drain(struct tm_server *s)
{
	double end = tm_now() + s->o.timeout_s;

	pthread_mutex_lock(&s->lock);
	while (s->n_inflight > 0 && tm_now() < end)
		wait_progress(s);
	pthread_mutex_unlock(&s->lock);
}

void http_stop(struct tm_server *s)
{
	if (s->httpd)
		MHD_stop_daemon(s->httpd);
	s->httpd = NULL;
	if (s->watchdog_on) {
		pthread_mutex_lock(&s->lock);
		s->watchdog_on = false;
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->watchdog, NULL);
	}
	free(s->watch);
	s->watch = NULL;
}
