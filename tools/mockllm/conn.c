/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client connection: reading requests (head, then a sized or chunked
 * body), writing responses, keep-alive, and the ways it can end.
 */
#include "mockllm.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/openai.h"
#include "fmt.h"

#define READ_MIN 4096			/* free space wanted before a read */
#define OUT_HIGH_WATER (256u * 1024)	/* write before queueing more */
#define ERROR_BODY_MAX 2048

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

void conn_init(struct conn *c, struct worker *w, int fd)
{
	struct conn *all_next = c->all_next;

	*c = (struct conn){ .src = { SRC_CONN }, .fd = fd, .w = w, .can_read = true };
	c->all_next = all_next;
	timer_init(&c->timer);
}

/* Buffers come from the worker's pool when needed and go back when empty,
 * so an idle keep-alive connection holds no buffer memory. */
static int conn_buf_get(struct conn *c, struct buf *b)
{
	return b->data ? 0 : buf_pool_get(&c->w->pool, b);
}

static void conn_buf_put_if_empty(struct conn *c, struct buf *b)
{
	if (b->data && !buf_used(b))
		buf_pool_put(&c->w->pool, b);
}

int conn_out(struct conn *c, struct buf **out)
{
	*out = &c->out;
	return conn_buf_get(c, &c->out);
}

void conn_close(struct conn *c)
{
	if (c->closed)
		return;
	if (c->reply.kind != REPLY_NONE)
		reply_abort(c);
	worker_timer_cancel(c->w, &c->timer);
	close(c->fd);
	c->fd = -1;
	c->closed = true;
	buf_pool_put(&c->w->pool, &c->in);
	buf_pool_put(&c->w->pool, &c->out);
	worker_release_conn(c->w, c);
}

/* A zero linger time makes close() send RST and drop unsent data. */
void conn_reset(struct conn *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (c->closed)
		return;
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	conn_close(c);
}

struct str conn_head_span(const struct conn *c, size_t off, size_t len)
{
	return (struct str){ buf_head(&c->in) + off, len };
}

const char *conn_connection_header(const struct conn *c)
{
	if (!c->req.keep_alive)
		return "Connection: close\r\n";
	/* HTTP/1.0 clients only keep the connection when told so. */
	return c->req.minor == 0 ? "Connection: keep-alive\r\n" : "";
}

/*
 * Queue a complete response.  The x-mock-fault modes that cut a response
 * in half apply here, so every non-stream response can be cut the same way.
 */
void conn_respond(struct conn *c, int status, const char *content_type, const char *extra,
		  struct str body)
{
	enum fault fault = c->req.api ? c->req.fault : FAULT_NONE;
	bool cut = fault == FAULT_RESET_MID || fault == FAULT_STALL_MID;
	int err = conn_buf_get(c, &c->out);

	err |= fmt_lit(&c->out, "HTTP/1.1 ");
	err |= buf_append_u64(&c->out, (uint64_t)status);
	err |= fmt_lit(&c->out, " ");
	err |= buf_append_cstr(&c->out, http_reason(status));
	err |= fmt_lit(&c->out, "\r\nContent-Type: ");
	err |= buf_append_cstr(&c->out, content_type);
	err |= fmt_lit(&c->out, "\r\nContent-Length: ");
	err |= buf_append_u64(&c->out, body.len);
	err |= fmt_lit(&c->out, "\r\n");
	err |= buf_append_cstr(&c->out, extra);
	err |= buf_append_cstr(&c->out, conn_connection_header(c));
	err |= fmt_lit(&c->out, "\r\n");
	err |= buf_append(&c->out, body.p, cut ? body.len / 2 : body.len);
	if (err) {
		conn_close(c);
		return;
	}
	c->status = status;
	if (fault == FAULT_RESET_MID)
		c->after_flush = AFTER_RESET;
	else if (fault == FAULT_STALL_MID)
		reply_stall(c);
	else if (!c->req.keep_alive)
		c->after_flush = AFTER_CLOSE;
}

void conn_respond_error(struct conn *c, int status, const char *message, const char *type,
			const char *code, const char *extra)
{
	char body[ERROR_BODY_MAX];
	int n = api_error_body(body, sizeof(body), message, type, code);

	if (n < 0) {
		conn_close(c);
		return;
	}
	conn_respond(c, status, "application/json", extra, (struct str){ body, (size_t)n });
}

/* A request we cannot frame: answer and close, the stream is lost. */
static void conn_reject(struct conn *c, int status, const char *message)
{
	c->req.keep_alive = false;
	c->req.api = false;
	conn_respond_error(c, status, message, "invalid_request_error", NULL, "");
}

static void reject_head(struct conn *c, int err)
{
	switch (err) {
	case HTTP_ERR_TOO_LARGE:
		conn_reject(c, 431, "request head too large");
		break;
	case HTTP_ERR_UNSUPPORTED:
		conn_reject(c, 501, "unsupported transfer coding");
		break;
	case HTTP_ERR_VERSION:
		conn_reject(c, 505, "HTTP version not supported");
		break;
	default:
		conn_reject(c, 400, "malformed HTTP request");
		break;
	}
}

/* curl and others wait for "100 Continue" before sending a large body. */
static void maybe_send_continue(struct conn *c)
{
	if (!c->req.expect_continue || c->parse.continue_sent)
		return;
	c->parse.continue_sent = true;
	if (conn_buf_get(c, &c->out) ||
	    buf_append(&c->out, continue_line, sizeof(continue_line) - 1))
		conn_close(c);
}

/* Returns 1 with the head parsed, 0 when more bytes are needed, -1 when the
 * request was rejected. */
static int parse_head(struct conn *c)
{
	struct http_request hr;
	int n = http_parse_request(buf_head(&c->in), buf_used(&c->in), MOCK_MAX_HEAD, &hr);

	if (n == HTTP_NEED_MORE)
		return 0;
	if (n < 0) {
		reject_head(c, n);
		return -1;
	}
	api_inspect_head(c, &hr, (size_t)n);
	c->parse = (struct req_parse){ .head_done = true, .raw_end = (size_t)n };
	http_chunked_init(&c->parse.chunked);
	if (hr.content_length > (int64_t)MOCK_MAX_BODY) {
		conn_reject(c, 413, "request body larger than 64 MiB");
		return -1;
	}
	/* Room for the whole sized body at once: no doubling on the way up. */
	if (hr.content_length > 0) {
		size_t need = (size_t)n + (size_t)hr.content_length;
		if (need > buf_used(&c->in) && buf_reserve(&c->in, need - buf_used(&c->in))) {
			conn_reject(c, 413, "request body too large for memory");
			return -1;
		}
	}
	return 1;
}

static size_t sized_request_len(const struct conn *c)
{
	int64_t cl = c->req.content_length;

	return c->req.head_len + (cl > 0 ? (size_t)cl : 0);
}

/* Decode what arrived of a chunked body in place, right after the head. */
static int read_chunked_body(struct conn *c)
{
	struct req_parse *p = &c->parse;
	char *head = buf_head(&c->in);
	char *raw = head + p->raw_end;
	size_t len = buf_used(&c->in) - p->raw_end;
	size_t consumed = 0;
	int r = http_chunked_decode(&p->chunked, raw, &len, &consumed, MOCK_MAX_BODY);

	if (r == HTTP_ERR_TOO_LARGE) {
		conn_reject(c, 413, "request body larger than 64 MiB");
		return -1;
	}
	if (r < 0) {
		conn_reject(c, 400, "malformed chunked request body");
		return -1;
	}
	/* The decoded bytes sit where the raw ones were; close the gap left by
	 * framing so the body is contiguous after the head. */
	memmove(head + c->req.head_len + p->body_len, raw, len);
	p->body_len += len;
	p->raw_end += consumed;
	return r == 1;
}

/* 1 when a whole request is buffered, 0 when more is needed, -1 rejected. */
static int conn_parse(struct conn *c)
{
	int r;

	if (!buf_used(&c->in))
		return 0;
	if (!c->parse.head_done) {
		r = parse_head(c);
		if (r <= 0)
			return r;
	}
	if (c->req.chunked)
		r = read_chunked_body(c);
	else
		r = buf_used(&c->in) >= sized_request_len(c);
	if (r == 0)
		maybe_send_continue(c);
	return r;
}

static void conn_dispatch(struct conn *c)
{
	struct str body;
	size_t request_len;

	if (c->req.chunked) {
		body = conn_head_span(c, c->req.head_len, c->parse.body_len);
		request_len = c->parse.raw_end;
	} else {
		request_len = sized_request_len(c);
		body = conn_head_span(c, c->req.head_len, request_len - c->req.head_len);
	}
	api_serve(c, body);
	c->parse = (struct req_parse){ 0 };
	if (!c->closed)
		buf_consume(&c->in, request_len);
}

/* Serve the requests already buffered, until one needs to wait (a deferred
 * reply or a close) or enough output has queued up to be worth writing. */
static void serve_buffered(struct conn *c)
{
	while (!c->closed && c->reply.kind == REPLY_NONE && c->after_flush == AFTER_NOTHING &&
	       buf_used(&c->out) < OUT_HIGH_WATER) {
		int r = conn_parse(c);
		if (r > 0)
			conn_dispatch(c);
		else if (r == 0)
			return;
	}
}

/* Returns 1 when all output is written, 0 when the socket is full, or -errno. */
static int conn_flush(struct conn *c)
{
	while (buf_used(&c->out)) {
		ssize_t n = write(c->fd, buf_head(&c->out), buf_used(&c->out));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		buf_consume(&c->out, (size_t)n);
	}
	return 1;
}

/* Read what the socket holds.  0 or -errno. */
static int conn_fill(struct conn *c)
{
	int err = conn_buf_get(c, &c->in);

	if (!err && buf_room(&c->in) < READ_MIN)
		err = buf_reserve(&c->in, READ_MIN);
	if (err)
		return err;
	size_t room = buf_room(&c->in);
	ssize_t n = read(c->fd, buf_tail(&c->in), room);
	if (n > 0) {
		c->in.len += (size_t)n;
		/* A short read emptied the socket; with edge triggering the
		 * next byte to arrive raises a new event. */
		c->can_read = (size_t)n == room;
		return 0;
	}
	if (n == 0) {
		c->peer_closed = true;
		c->can_read = false;
		return 0;
	}
	if (errno == EAGAIN) {
		c->can_read = false;
		return 0;
	}
	return errno == EINTR ? 0 : -errno;
}

static void run_after_flush(struct conn *c)
{
	if (c->after_flush == AFTER_RESET)
		conn_reset(c);
	else
		conn_close(c);
}

/* Give back the buffers an idle connection does not need. */
static void conn_park(struct conn *c)
{
	if (!c->parse.head_done)
		conn_buf_put_if_empty(c, &c->in);
	conn_buf_put_if_empty(c, &c->out);
}

/* Make all the progress possible without blocking. */
static void conn_run(struct conn *c)
{
	for (;;) {
		serve_buffered(c);
		if (c->closed)
			return;
		if (buf_used(&c->out)) {
			int r = conn_flush(c);
			if (r < 0)
				conn_close(c);
			if (r <= 0)
				return;
			continue;
		}
		if (c->after_flush != AFTER_NOTHING) {
			run_after_flush(c);
			return;
		}
		if (c->reply.kind != REPLY_NONE) {
			/* A client that goes away cancels what it was waiting for. */
			if (c->peer_closed) {
				conn_close(c);
				return;
			}
			if (!c->reply.wait_write) {
				conn_park(c);
				return;
			}
			reply_advance(c);
			continue;
		}
		if (c->peer_closed) {
			conn_close(c);
			return;
		}
		if (!c->can_read) {
			conn_park(c);
			return;
		}
		if (conn_fill(c) < 0) {
			conn_close(c);
			return;
		}
	}
}

void conn_on_event(struct conn *c, uint32_t events)
{
	if (c->closed)
		return;
	if (events & (EPOLLERR | EPOLLHUP)) {
		conn_close(c);
		return;
	}
	if (events & EPOLLIN)
		c->can_read = true;
	if (events & EPOLLRDHUP)
		c->peer_closed = true;
	conn_run(c);
}

void conn_on_timer(struct conn *c)
{
	if (c->closed)
		return;
	reply_advance(c);
	conn_run(c);
}
