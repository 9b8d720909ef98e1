/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client side of a connection: read a request head and body, hand the
 * request to an exchange or answer it here, write the response, and keep
 * the connection alive for the next request.
 *
 *   (TLS --handshake done-->) IDLE --first byte--> HEAD --head parsed-->
 *   BODY --body complete--> BUSY --response sent, keep-alive--> IDLE
 *   BUSY --response sent, must close--> LINGER --EOF or timeout--> closed
 *
 * The TLS handshake and the userspace TLS paths live in conn_tls.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "kern/kern.h"
#include "proxy/endpoint.h"
#include "proxy/proxy.h"
#include "tls/tls_server.h"

#define CONN_REJECT_BODY \
	"{\"error\":{\"message\":\"the gateway is at its connection limit, retry later\"," \
	"\"type\":\"server_error\",\"param\":null,\"code\":\"too_many_connections\"}}"
#define CONN_RATE_BODY \
	"{\"error\":{\"message\":\"too many new connections for this tenant, retry later\"," \
	"\"type\":\"rate_limit_error\",\"param\":null,\"code\":\"connection_rate_exceeded\"}}"

static void conn_on_read(struct ioev *ev, int res, unsigned flags);
static void conn_on_write(struct ioev *ev, int res, unsigned flags);
static void conn_on_timer(struct timer *t);
static void conn_refuse(struct conn *c, int status, const char *code, const char *message);

/* Over the connection limit (or, rate: the tenant's connection rate):
 * answer in one non-blocking write and close.  The socket is new, so its
 * send buffer has room for these few bytes. */
static void conn_reject_as(struct worker *w, int fd, bool rate)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
			 rate ? "429 Too Many Requests" : "503 Service Unavailable",
			 rate ? sizeof(CONN_RATE_BODY) - 1 : sizeof(CONN_REJECT_BODY) - 1,
			 rate ? CONN_RATE_BODY : CONN_REJECT_BODY);
	ssize_t sent = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)sent;
	close(fd);
	metrics_conn_rejected(w->metrics);
}

static void conn_reject(struct worker *w, int fd)
{
	conn_reject_as(w, fd, false);
}

/*
 * A connection keeps one multishot receive armed for its whole life: the
 * kernel fills a provided buffer whenever bytes arrive, in any state, and
 * the completion copies them into the request buffer.  So an idle
 * connection holds no receive memory, no state has to remember to ask for
 * more input, and the kernel does not re-arm a poll for every request.
 */
void conn_arm_read(struct conn *c)
{
	if (c->tls && !c->ktls_rx) {
		conn_tls_arm_read(c);
		return;
	}
	if (c->reading || c->closing)
		return;
	c->reading = true;
	c->inflight++;
	c->rd_ev.fn = conn_on_read;
	loop_recv_multishot(&c->w->loop, c->fd, &c->rd_ev);
}

/* Every provided buffer was in use: arm again on the next loop iteration,
 * by which time the buffers of this batch have been given back. */
static void conn_starve(struct conn *c)
{
	list_del(&c->starve_link);
	list_add_tail(&c->w->starved, &c->starve_link);
}

void conn_rearm_starved(struct worker *w)
{
	while (!list_empty(&w->starved)) {
		struct conn *c = list_first(&w->starved, struct conn, starve_link);
		list_del(&c->starve_link);
		conn_arm_read(c);
	}
}

/* The first bytes of a request: open an exchange and start the clock. */
static int conn_begin_request(struct conn *c)
{
	if (!c->in.data && buf_pool_get(&c->w->bufs, &c->in))
		return -ENOMEM;
	c->x = exchange_new(c);
	if (!c->x)
		return -ENOMEM;
	c->state = CONN_HEAD;
	timer_arm(&c->w->t_header, &c->timer, c->w->loop.now);
	return 0;
}

/*
 * Waiting for a request.  Between requests that is keep-alive; before the
 * first, the client has had its connection (and its TLS handshake) and
 * owes a request head: it gets client_header, not keepalive, and is
 * closed without an answer when that runs out.  There is no request to
 * answer, and a 408 sent unasked could be read as the answer to a request
 * crossing it on the wire.
 */
void conn_go_idle(struct conn *c)
{
	c->state = CONN_IDLE;
	if (!buf_used(&c->in))
		buf_pool_put(&c->w->bufs, &c->in);
	if (!c->writing)
		chain_release(&c->out, &c->w->bufs);
	timer_arm(c->served ? &c->w->t_keepalive : &c->w->t_header, &c->timer, c->w->loop.now);
	conn_arm_read(c);
}

/*
 * The tenant sockops tagged the socket with: only a configured network's
 * (a source address is never a credential), until authentication says
 * otherwise.  A socket past its tenant's connection cap (the few that
 * race past XDP's check: -EDQUOT) or over its connection rate (charged
 * by sockops on the completed handshake: -EAGAIN) is refused.
 */
static int conn_tenant(struct worker *w, int fd, uint32_t *tenant)
{
	struct sluice_sock_tag tag;
	*tenant = SLUICE_TENANT_ANON;
	if (!w->gw->kern || kern_sock_tag(w->gw->kern, fd, &tag))
		return 0;
	if ((tag.flags & SLUICE_TAG_NETWORK) && tag.tenant < SLUICE_MAX_TENANTS &&
	    __atomic_load_n(&w->gw->tenant_names[tag.tenant], __ATOMIC_ACQUIRE))
		*tenant = tag.tenant;
	if (tag.flags & SLUICE_TAG_OVER_RATE)
		return -EAGAIN;
	return tag.flags & SLUICE_TAG_OVER_CAP ? -EDQUOT : 0;
}

/*
 * The client's address, once per connection: forwarding headers and any
 * later use read it from here instead of asking the kernel per request.
 * IPv4 (also an IPv4 client of an IPv6 listener) as ::ffff:a.b.c.d.
 */
static void conn_note_peer(struct conn *c)
{
	static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	uint8_t addr[16] = { 0 };

	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			memcpy(addr, v4_mapped, sizeof(v4_mapped));
			memcpy(addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		} else if (ss.ss_family == AF_INET6) {
			memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		}
	}
	fwd_peer_set(&c->peer, addr);
}

/* Admin connections have their own cap, so a full API does not lock the
 * operator out of /metrics, nor a stuck scraper the clients out. */
#define ADMIN_MAX_CONNS	16

static bool conn_over_limit(const struct worker *w, bool admin)
{
	return admin ? w->nadmin >= ADMIN_MAX_CONNS : w->nconns - w->nadmin >= w->max_conns;
}

void conn_accept(struct worker *w, int fd, bool admin)
{
	uint32_t tenant = SLUICE_TENANT_ANON;
	int refused = 0;
	/* The kernel half never tagged an admin socket (not a gateway port). */
	if (conn_over_limit(w, admin) || (!admin && (refused = conn_tenant(w, fd, &tenant)))) {
		conn_reject_as(w, fd, refused == -EAGAIN);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		conn_reject(w, fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->w = w;
	c->fd = fd;
	c->tenant = tenant;
	c->admin = admin;
	c->rd_ev.fn = conn_on_read;
	c->wr_ev.fn = conn_on_write;
	conn_note_peer(c);
	timer_init(&c->timer, conn_on_timer);
	list_init(&c->starve_link);
	list_add_tail(&w->conns, &c->link);
	w->nconns++;
	if (admin) {
		/* Plain HTTP, and not a client connection in the metrics. */
		w->nadmin++;
		conn_go_idle(c);
		return;
	}
	metrics_conn_opened(w->metrics);
	if (!__atomic_load_n(&w->gw->tls_server, __ATOMIC_ACQUIRE))
		conn_go_idle(c);
	else if (conn_tls_start(c))
		conn_close(c);
}

void conn_maybe_free(struct conn *c)
{
	if (!c->closing || c->inflight)
		return;
	struct worker *w = c->w;
	if (c->tls)
		tls_server_session_free(c->tls);
	free(c->client_cert);
	close(c->fd);
	buf_pool_put(&w->bufs, &c->in);
	chain_release(&c->out, &w->bufs);
	list_del(&c->link);
	list_del(&c->starve_link);
	w->nconns--;
	if (c->admin)
		w->nadmin--;
	else
		metrics_conn_closed(w->metrics);
	free(c);
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	timer_disarm(&c->timer);
	if (c->x)
		exchange_abort(c->x, 499);
	if (c->inflight)
		loop_cancel_fd(&c->w->loop, c->fd);
	conn_maybe_free(c);
}

void conn_drain(struct conn *c)
{
	if (c->closing)
		return;
	if (c->state == CONN_IDLE)
		conn_close(c);
	else
		c->close_after = true;
}

/*
 * timeouts.drain is over and this connection is still open.  Whatever it
 * is doing ends so the client can tell it from success: a response on its
 * way ends with an error (a stream with an error event and its last
 * chunk, a request not yet answered with a 503), a request still arriving
 * gets a 503, and the rest closes.  Each ending is logged as what it was,
 * with the code drain_timeout.  A response already complete keeps
 * flushing; the worker cuts what is left after a short grace.
 */
void conn_drain_timeout(struct conn *c)
{
	if (c->closing)
		return;
	switch (c->state) {
	case CONN_BUSY:
		if (c->x && !c->x->done)
			exchange_drain_timeout(c->x);
		else if (!c->x)
			conn_close(c);
		break;
	case CONN_HEAD:
	case CONN_BODY:
		conn_refuse(c, 503, "drain_timeout", "the gateway is shutting down");
		break;
	case CONN_IDLE:
	case CONN_LINGER:
	case CONN_TLS:
		conn_close(c);
		break;
	}
}

static bool conn_must_close(const struct conn *c)
{
	return c->close_after || c->w->draining || (c->x && !c->x->req.keep_alive);
}

/* After the last byte of a must-close response: stop writing, and read
 * (and drop) what the client still sends so the kernel does not answer it
 * with a reset that could destroy the response in flight. */
static void conn_linger(struct conn *c)
{
	c->state = CONN_LINGER;
	shutdown(c->fd, SHUT_WR);
	buf_reset(&c->in);
	timer_arm(&c->w->t_linger, &c->timer, c->w->loop.now);
}

void conn_exchange_done(struct conn *c)
{
	struct exchange *x = c->x;
	bool must_close = conn_must_close(c);
	size_t used = x->head_len + x->body_len;
	c->served = true;
	exchange_record(x);
	c->x = NULL;
	exchange_free(x);
	if (must_close) {
		conn_linger(c);
		return;
	}
	/* Anything after this request is the next one (pipelining). */
	buf_consume(&c->in, used < buf_used(&c->in) ? used : buf_used(&c->in));
	if (buf_used(&c->in)) {
		c->state = CONN_IDLE;
		conn_process_input(c);
	} else {
		conn_go_idle(c);
	}
}

/*
 * Send what is queued, from the head of the output chain: up to
 * CONN_SEND_IOV segments in one send.  Those bytes stay where they are
 * until the completion consumes them; appends meanwhile go behind them.
 */
void conn_flush(struct conn *c)
{
	/* failover: bytes held until the first content byte stay unsent */
	if (c->x && c->x->holding)
		return;
	if (c->tls && !c->ktls_tx) {
		conn_tls_flush(c);
		return;
	}
	if (c->writing || c->closing || !chain_bytes(&c->out))
		return;
	size_t len;
	unsigned n = chain_iov(&c->out, c->iov, CONN_SEND_IOV, &len);
	c->out.held = len;
	c->writing = true;
	c->inflight++;
	c->wr_ev.fn = conn_on_write;
	if (n == 1) {
		loop_send(&c->w->loop, c->fd, c->iov[0].iov_base, len, &c->wr_ev);
		return;
	}
	c->msg = (struct msghdr){ .msg_iov = c->iov, .msg_iovlen = n };
	loop_sendmsg(&c->w->loop, c->fd, &c->msg, &c->wr_ev);
}

static void conn_on_write(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct conn *c = container_of(ev, struct conn, wr_ev);
	c->writing = false;
	c->inflight--;
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	if (res < 0) {
		conn_close(c);
		return;
	}
	chain_consume(&c->out, &c->w->bufs, (size_t)res);
	if (chain_bytes(&c->out))
		conn_flush(c);
	else
		conn_written(c);
}

/* Everything queued for the client has left: finish the request, or let
 * a stream send more. */
void conn_written(struct conn *c)
{
	if (c->x && c->x->done)
		conn_exchange_done(c);
	else if (c->x)
		exchange_on_client_sent(c->x);
}

/* Copy what a provided buffer holds into the connection's request buffer. */
static int conn_take_provided(struct conn *c, int res, unsigned flags)
{
	unsigned bid;
	char *p = loop_buf(&c->w->loop, flags, &bid);
	int err = 0;
	if (res > 0 && !c->closing && c->state != CONN_LINGER) {
		if (!c->in.data)
			err = buf_pool_get(&c->w->bufs, &c->in);
		if (!err)
			err = buf_append(&c->in, p, (size_t)res);
	}
	loop_buf_put(&c->w->loop, bid);
	return err;
}

/* Bytes a client may have buffered with us at once: a whole request plus a
 * pipelined head.  More than that while busy is abuse.  The one input
 * policy of both read paths (plain and kernel TLS here, userspace TLS in
 * conn_tls.c): past it the connection closes. */
bool conn_over_input_limit(const struct conn *c)
{
	const struct sluice_config *cfg = c->w->snap->cfg;
	return buf_used(&c->in) > cfg->max_body_bytes + 2 * cfg->max_header_bytes;
}

static void conn_on_read(struct ioev *ev, int res, unsigned flags)
{
	struct conn *c = container_of(ev, struct conn, rd_ev);
	int err = 0;
	if (!(flags & IORING_CQE_F_MORE)) {
		c->reading = false;
		c->inflight--;
	}
	if (flags & IORING_CQE_F_BUFFER)
		err = conn_take_provided(c, res, flags);
	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	if (res == -ENOBUFS) {
		conn_starve(c);
		return;
	}
	if (res == -EIO && c->ktls_rx) {
		conn_tls_control_record(c);
		return;
	}
	if (res <= 0 || err || conn_over_input_limit(c)) {
		conn_close(c);
		return;
	}
	conn_arm_read(c);	/* the kernel may end a multishot at any time */
	if (c->state != CONN_LINGER)
		conn_process_input(c);
}

int conn_reply(struct conn *c, int status, const char *content_type,
	       const char *body, size_t len)
{
	struct exchange *x = c->x;
	struct buf *head = &c->w->scratch;
	bool head_only = x && x->req.method == HTTP_HEAD;
	buf_reset(head);
	int err = buf_printf(head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			     "Content-Length: %zu\r\n",
			     status, http_reason(status), content_type, len);
	if (!err && x)
		err = admit_append_headers(x, head, status == 429 || status == 503);
	if (!err)
		err = buf_printf(head, "%s\r\n", conn_must_close(c) ? "Connection: close\r\n" : "");
	uint64_t mark = chain_mark(&c->out);
	if (!err)
		err = chain_append_str(&c->out, &c->w->bufs, buf_str(head));
	if (!err && !head_only)
		err = chain_append(&c->out, &c->w->bufs, body, len);
	if (err) {
		chain_rollback(&c->out, &c->w->bufs, mark);
		return err;
	}
	c->state = CONN_BUSY;
	timer_disarm(&c->timer);
	if (x) {
		x->status = status;
		x->done = true;
		x->bytes_out += len;
	}
	conn_flush(c);
	return 0;
}

int conn_reply_error(struct conn *c, int status, const char *type, const char *code,
		     const char *message)
{
	char body[1024];
	int n = api_error_body(body, sizeof(body), message, type, code);
	if (n < 0)
		n = api_error_body(body, sizeof(body), "error", type, code);
	if (c->x)
		c->x->error_code = code;
	return conn_reply(c, status, "application/json", body, (size_t)(n < 0 ? 0 : n));
}

/* A request the gateway refuses before reading all of it: answer, then
 * close, since the rest of its bytes cannot be told from the next request. */
static void conn_refuse(struct conn *c, int status, const char *code, const char *message)
{
	c->close_after = true;
	const char *type = status >= 500 ? "server_error" : "invalid_request_error";
	if (conn_reply_error(c, status, type, code, message))
		conn_close(c);
}

static void conn_on_timer(struct timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);
	switch (c->state) {
	case CONN_HEAD:
	case CONN_BODY:
		conn_refuse(c, 408, "request_timeout",
			    "the client did not send the whole request in time");
		break;
	case CONN_IDLE:
	case CONN_LINGER:
	case CONN_BUSY:
	case CONN_TLS:
		conn_close(c);
		break;
	}
}

static void conn_refuse_head(struct conn *c, int err)
{
	switch (err) {
	case HTTP_ERR_TOO_LARGE:
		conn_refuse(c, 431, "request_header_fields_too_large",
			    "the request head is larger than the gateway accepts");
		break;
	case HTTP_ERR_UNSUPPORTED:
		conn_refuse(c, 501, "not_implemented",
			    "only the chunked transfer-coding is supported");
		break;
	case HTTP_ERR_VERSION:
		conn_refuse(c, 505, "http_version_not_supported",
			    "only HTTP/1.0 and HTTP/1.1 are supported");
		break;
	default:
		conn_refuse(c, 400, "bad_request", "the request is not valid HTTP/1.1");
		break;
	}
}

static void conn_begin_body(struct conn *c)
{
	struct exchange *x = c->x;
	const struct sluice_config *cfg = x->cfg;
	if (x->req.content_length > (int64_t)cfg->max_body_bytes) {
		conn_refuse(c, 413, "request_too_large",
			    "the request body is larger than the gateway accepts");
		return;
	}
	http_chunked_init(&x->chunked);
	c->state = CONN_BODY;
	timer_arm(&c->w->t_body, &c->timer, c->w->loop.now);
	/* curl and others wait for this before sending a large body. */
	if (x->req.expect_continue && buf_used(&c->in) == x->head_len &&
	    !chain_append_str(&c->out, &c->w->bufs, STR_LIT("HTTP/1.1 100 Continue\r\n\r\n")))
		conn_flush(c);
}

/* Decode more of a chunked body in place: c->in becomes
 * [head][decoded body][bytes not yet decoded].  1 when complete. */
static int conn_decode_chunked(struct conn *c)
{
	struct exchange *x = c->x;
	size_t start = x->head_len + x->body_len;
	char *p = buf_head(&c->in) + start;
	size_t raw = buf_used(&c->in) - start, len = raw, consumed = 0;
	int r = http_chunked_decode(&x->chunked, p, &len, &consumed,
				    x->cfg->max_body_bytes);
	if (r < 0)
		return r;
	memmove(p + len, p + consumed, raw - consumed);
	c->in.len -= consumed - len;
	x->body_len += len;
	return r;
}

/* 1 when the whole body is in c->in, 0 when more must be read, <0 error. */
static int conn_body_complete(struct conn *c)
{
	struct exchange *x = c->x;
	if (x->req.chunked)
		return conn_decode_chunked(c);
	size_t have = buf_used(&c->in) - x->head_len;
	size_t want = x->req.content_length > 0 ? (size_t)x->req.content_length : 0;
	x->body_len = have < want ? have : want;
	return have >= want;
}

/*
 * The parsed head points into c->in; a body that made the buffer grow moved
 * it.  Parse the head again where it is now (it parsed once, so it will
 * again) rather than carry offsets for every span.
 */
static int conn_refresh_head(struct conn *c)
{
	struct exchange *x = c->x;
	if (x->head_at == buf_head(&c->in))
		return 0;
	int r = http_parse_request(buf_head(&c->in), x->head_len,
				   x->cfg->max_header_bytes, &x->req);
	if (r != (int)x->head_len) {
		conn_refuse(c, 400, "bad_request", "the request is not valid HTTP/1.1");
		return -EINVAL;
	}
	x->head_at = buf_head(&c->in);
	return 0;
}

static void conn_on_head(struct conn *c)
{
	struct exchange *x = c->x;
	bool method_ok = true;
	x->ep = api_route_path(x->req.method_str, x->req.path, &method_ok);
	const struct endpoint *e = endpoint_of(x->ep);
	/* Without the token the admin listener tells nothing, not even which
	 * paths it has. */
	if (c->admin && !(e && (e->flags & EP_PROBE)) && admin_authorize(x))
		return;
	/* The other listener's endpoints are 404 here, as unknown paths are. */
	if (!endpoint_served(e, c->admin)) {
		x->ep = API_NONE;
		method_ok = true;
	}
	if (x->ep == API_NONE) {
		char msg[300];
		snprintf(msg, sizeof(msg), "Invalid URL (%.*s %.*s)",
			 (int)x->req.method_str.len, x->req.method_str.p,
			 (int)(x->req.path.len > 200 ? 200 : x->req.path.len), x->req.path.p);
		/* A body we will not read would be taken for the next request. */
		if (x->req.content_length > 0 || x->req.chunked)
			c->close_after = true;
		conn_reply_error(c, 404, "invalid_request_error", "unknown_url", msg);
		return;
	}
	if (!method_ok) {
		if (x->req.content_length > 0 || x->req.chunked)
			c->close_after = true;
		conn_reply_error(c, 405, "invalid_request_error", "method_not_allowed",
				 "this method is not allowed on this path");
		return;
	}
	if ((e->flags & EP_IDENTITY) && stage_run_head(x) != STAGE_NEXT)
		return;
	if (x->req.content_length > 0 || x->req.chunked) {
		conn_begin_body(c);
		if (c->state == CONN_BODY)
			conn_process_input(c);
		return;
	}
	c->state = CONN_BUSY;
	timer_disarm(&c->timer);
	exchange_start(x);
}

void conn_process_input(struct conn *c)
{
	if (c->state == CONN_IDLE && conn_begin_request(c)) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_HEAD) {
		int r = http_parse_request_scan(&c->x->head_scan, buf_head(&c->in),
						buf_used(&c->in), c->x->cfg->max_header_bytes,
						&c->x->req);
		if (r == HTTP_NEED_MORE)
			return;
		if (r < 0) {
			conn_refuse_head(c, r);
			return;
		}
		c->x->head_len = (size_t)r;
		c->x->head_at = buf_head(&c->in);
		exchange_note_request_line(c->x);
		conn_on_head(c);
		return;
	}
	if (c->state == CONN_BODY) {
		int r = conn_body_complete(c);
		if (r < 0) {
			if (r == HTTP_ERR_TOO_LARGE)
				conn_refuse(c, 413, "request_too_large",
					    "the request body is larger than the gateway accepts");
			else
				conn_refuse(c, 400, "bad_request", "malformed chunked request body");
			return;
		}
		if (r == 0)
			return;
		c->state = CONN_BUSY;
		timer_disarm(&c->timer);
		if (conn_refresh_head(c))
			return;
		exchange_start(c->x);
	}
	/* CONN_BUSY: bytes of a pipelined request wait in c->in until the
	 * current response is done. */
}
