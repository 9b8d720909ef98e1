/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS on client connections.
 *
 * OpenSSL runs the handshake on the socket itself (a socket BIO: only then
 * can it hand the connection to kernel TLS), driven by one-shot io_uring
 * polls so the worker never blocks.  Afterwards each direction is one of:
 *
 *   kernel TLS   the socket reads and writes plaintext: the ordinary io_uring
 *                paths of conn.c serve it.  A record that is not application
 *                data (a TLS 1.3 key update, an alert) makes the receive fail
 *                with EIO; OpenSSL then reads that one record itself.
 *   userspace    SSL_read / SSL_write on the non-blocking socket, each try
 *                started by a poll completion, never from inside conn.c's
 *                own call chain (so a write that completes at once still
 *                looks asynchronous to the exchange).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "proxy/proxy.h"
#include "tls/tls_server.h"

#define TLS_REQUIRED_BODY \
	"{\"error\":{\"message\":\"this port speaks TLS: use https://\"," \
	"\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"tls_required\"}}"

static void conn_tls_on_handshake(struct ioev *ev, int res, unsigned flags);
static void conn_tls_on_readable(struct ioev *ev, int res, unsigned flags);
static void conn_tls_on_writable(struct ioev *ev, int res, unsigned flags);

static void post_poll(struct conn *c, struct ioev *ev, bool want_write)
{
	c->inflight++;
	loop_poll(&c->w->loop, c->fd, want_write ? POLLOUT : POLLIN, ev);
}

/* A plain HTTP request on the TLS port gets a plain answer saying so. */
static void answer_plain_http(struct conn *c)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 sizeof(TLS_REQUIRED_BODY) - 1, TLS_REQUIRED_BODY);
	ssize_t sent = send(c->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)sent;
	shutdown(c->fd, SHUT_WR);
	/* The request was only peeked at: unread bytes would make close()
	 * send a reset that can destroy the answer in flight. */
	char sink[4096];
	while (recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

/* The connection's record layer (tls/tls_session.h). */
static struct tls_session *conn_tls_of(struct conn *c)
{
	return tls_server_tls(c->tls);
}

/* Counted where sluicectl and /metrics both read it: the shared map. */
static void count_mode(struct conn *c, enum sluice_tls_mode mode)
{
	__atomic_fetch_add(&c->w->gw->stats->tls_conns[mode], 1, __ATOMIC_RELAXED);
}

/* The handshake is over: pick each direction's path, then serve. */
static void conn_tls_ready(struct conn *c)
{
	struct tls_session *t = conn_tls_of(c);
	const char *sni = tls_server_sni(c->tls), *alpn = tls_session_alpn(t);
	c->ktls_tx = tls_session_ktls_send(t);
	c->ktls_rx = tls_session_ktls_recv(t);
	char subject[256];
	if (tls_server_peer_subject(c->tls, subject, sizeof(subject)) == 0)
		c->client_cert = strdup(subject);
	count_mode(c, tls_session_mode(t));
	log_debug("tls: %s %s sni=%s alpn=%s ktls tx=%d rx=%d", tls_session_version(t),
		  tls_session_cipher(t), sni ? sni : "-", alpn ? alpn : "-", c->ktls_tx, c->ktls_rx);
	conn_go_idle(c);
	/* Bytes the client sent with its Finished may already sit in
	 * OpenSSL's buffer, where no poll will ever report them. */
	if (!c->ktls_rx)
		conn_tls_read(c);
}

static void conn_tls_handshake(struct conn *c)
{
	bool want_write = false;
	int r = tls_server_handshake(c->tls, &want_write);
	if (r == 0) {
		c->rd_ev.fn = conn_tls_on_handshake;
		c->reading = true;
		post_poll(c, &c->rd_ev, want_write);
		return;
	}
	if (r < 0) {
		bool plain = tls_server_saw_plain_http(c->tls);
		count_mode(c, plain ? SLUICE_TLS_PLAIN_HTTP : SLUICE_TLS_FAILED);
		log_debug("tls: handshake failed: %s", tls_session_last_error(conn_tls_of(c)));
		if (plain)
			answer_plain_http(c);
		conn_close(c);
		return;
	}
	conn_tls_ready(c);
}

int conn_tls_start(struct conn *c)
{
	c->tls = tls_server_session_new(__atomic_load_n(&c->w->gw->tls_server, __ATOMIC_ACQUIRE),
					c->fd);
	if (!c->tls)
		return -ENOMEM;
	c->state = CONN_TLS;
	timer_arm(&c->w->t_header, &c->timer, c->w->loop.now);
	conn_tls_handshake(c);
	return 0;
}

static bool conn_tls_poll_done(struct conn *c, int res)
{
	c->inflight--;
	if (c->closing) {
		conn_maybe_free(c);
		return false;
	}
	if (res < 0) {
		conn_close(c);
		return false;
	}
	return true;
}

static void conn_tls_on_handshake(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct conn *c = container_of(ev, struct conn, rd_ev);
	c->reading = false;
	if (conn_tls_poll_done(c, res))
		conn_tls_handshake(c);
}

/* The read paths of a TLS connection once the handshake is done. */
void conn_tls_arm_read(struct conn *c)
{
	if (c->reading || c->closing)
		return;
	c->reading = true;
	c->rd_ev.fn = conn_tls_on_readable;
	post_poll(c, &c->rd_ev, false);
}

/*
 * Everything OpenSSL can give now goes into the request buffer, until it
 * says it has nothing more: plaintext it still held would show up in no
 * poll and no kernel receive.  Then the read is armed again (a poll, or
 * the kernel-TLS receive) before the input is processed (processing may
 * close the connection).  The input policy is the plain path's: a client
 * that buffers more than conn_over_input_limit() allows is closed, and
 * what arrives while lingering is dropped as it comes.
 */
void conn_tls_read(struct conn *c)
{
	bool got = false, want_write = false;
	for (;;) {
		if ((!c->in.data && buf_pool_get(&c->w->bufs, &c->in)) || buf_reserve(&c->in, 4096)) {
			conn_close(c);
			return;
		}
		ssize_t n = tls_session_read(conn_tls_of(c), buf_tail(&c->in), buf_room(&c->in),
					     &want_write);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->in.len += (size_t)n;
		if (c->state == CONN_LINGER) {
			buf_reset(&c->in);
			continue;
		}
		if (conn_over_input_limit(c)) {
			conn_close(c);
			return;
		}
		got = true;
	}
	conn_arm_read(c);
	if (got && c->state != CONN_LINGER)
		conn_process_input(c);
}

static void conn_tls_on_readable(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct conn *c = container_of(ev, struct conn, rd_ev);
	c->reading = false;
	if (conn_tls_poll_done(c, res))
		conn_tls_read(c);
}

/*
 * Kernel TLS receive met a record that is not application data.  OpenSSL
 * reads it (recvmsg with the record type) and acts on it: a key update is
 * applied, close_notify ends the connection.  Any application data it
 * returns after it is the client's; the same read as after a poll takes
 * all of it.
 */
void conn_tls_control_record(struct conn *c)
{
	conn_tls_read(c);
}

/* Userspace send: start with a poll, write from its completion. */
void conn_tls_flush(struct conn *c)
{
	if (c->writing || c->closing || !chain_bytes(&c->out))
		return;
	c->writing = true;
	c->wr_ev.fn = conn_tls_on_writable;
	post_poll(c, &c->wr_ev, true);
}

static void conn_tls_on_writable(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct conn *c = container_of(ev, struct conn, wr_ev);
	c->writing = false;
	if (!conn_tls_poll_done(c, res))
		return;
	/* One segment (at most one TLS record) per write.  After -EAGAIN
	 * OpenSSL wants the same bytes again: they stay at the head of the
	 * chain, unmoved, held until the retry takes them. */
	while (chain_bytes(&c->out)) {
		bool want_write = true;
		struct str s = chain_first(&c->out);
		c->out.held = s.len;
		ssize_t n = tls_session_write(conn_tls_of(c), s.p, s.len, &want_write);
		if (n > 0) {
			chain_consume(&c->out, &c->w->bufs, (size_t)n);
			continue;
		}
		if (n != -EAGAIN) {
			conn_close(c);
			return;
		}
		c->writing = true;
		post_poll(c, &c->wr_ev, want_write);
		return;
	}
	conn_written(c);
}
