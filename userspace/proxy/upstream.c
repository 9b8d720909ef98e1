/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connections to backends.
 *
 *   CONNECTING --connected--> HANDSHAKE (https) --done--> READY
 *   READY --response complete, reusable--> IDLE (pool) --taken--> READY
 *
 * An idle connection keeps a read posted on a provided buffer, so a backend
 * that closes it is noticed at once and it leaves the pool.  Every read
 * takes a provided buffer; plain bytes are appended to rx, TLS records go
 * through the session first.
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
#include "proxy/proxy.h"
#include "tls/tls.h"

static void up_on_read(struct ioev *ev, int res, unsigned flags);
static void up_on_write(struct ioev *ev, int res, unsigned flags);
static void up_on_connect(struct ioev *ev, int res, unsigned flags);
static void up_on_timer(struct timer *t);

int upstream_pools_init(struct worker *w)
{
	size_t n = w->gw->cfg->nbackends;
	w->pools = calloc(n ? n : 1, sizeof(*w->pools));
	if (!w->pools)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		list_init(&w->pools[i].idle);
	return 0;
}

void upstream_pools_close_idle(struct worker *w)
{
	if (!w->pools)
		return;
	for (size_t i = 0; i < w->gw->cfg->nbackends; i++) {
		struct upstream_pool *pool = &w->pools[i];
		while (!list_empty(&pool->idle))
			upstream_close(list_first(&pool->idle, struct upstream, link));
	}
}

void upstream_pools_destroy(struct worker *w)
{
	upstream_pools_close_idle(w);
	free(w->pools);
	w->pools = NULL;
}

static void up_maybe_free(struct upstream *up)
{
	if (!up->closing || up->inflight)
		return;
	struct worker *w = up->w;
	close(up->fd);
	if (up->tls)
		tls_session_free(up->tls);
	buf_pool_put(&w->bufs, &up->rx);
	buf_free(&up->wire);
	buf_free(&up->spill);
	w->nupstreams--;
	free(up);
}

void upstream_close(struct upstream *up)
{
	if (up->closing)
		return;
	up->closing = true;
	if (up->state == UP_IDLE) {
		list_del(&up->link);
		up->w->pools[up->backend].nidle--;
	}
	timer_disarm(&up->timer);
	if (up->inflight)
		loop_cancel_fd(&up->w->loop, up->fd);
	up_maybe_free(up);
}

/* Hand the failure to the exchange (which may retry elsewhere). */
static void up_fail(struct upstream *up, enum upstream_error_kind kind, const char *why)
{
	struct exchange *x = up->x;
	if (x)
		exchange_on_upstream_error(x, kind, why);	/* closes up */
	else
		upstream_close(up);
}

void upstream_read_more(struct upstream *up)
{
	if (up->reading || up->closing)
		return;
	up->reading = true;
	up->inflight++;
	loop_recv_any(&up->w->loop, up->fd, &up->rd_ev);
}

static void up_send_wire(struct upstream *up)
{
	if (up->writing || up->closing)
		return;
	const char *p;
	size_t n;
	if (up->plain_tx) {
		p = buf_head(up->plain_tx) + up->plain_off;
		n = buf_used(up->plain_tx) - up->plain_off;
	} else {
		p = buf_head(&up->wire);
		n = buf_used(&up->wire);
	}
	if (!n)
		return;
	up->writing = true;
	up->inflight++;
	up->sending = n;
	loop_send(&up->w->loop, up->fd, p, n, &up->wr_ev);
}

/* Queue the exchange's request: plain http sends it from x->tx as it is,
 * TLS encrypts it into the wire buffer. */
static int up_start_request(struct upstream *up)
{
	struct exchange *x = up->x;
	up->state = UP_READY;
	if (up->tls) {
		if (tls_write(up->tls, buf_head(&x->tx), buf_used(&x->tx)) ||
		    tls_take_output(up->tls, &up->wire))
			return -EPROTO;
	} else {
		up->plain_tx = &x->tx;
		up->plain_off = 0;
	}
	timer_arm(&up->w->t_up_first_byte, &up->timer, up->w->loop.now);
	up_send_wire(up);
	upstream_read_more(up);
	return 0;
}

static void up_handshake(struct upstream *up)
{
	int r = tls_handshake(up->tls);
	if (r >= 0 && tls_take_output(up->tls, &up->wire))
		r = -ENOMEM;
	if (r < 0) {
		char why[300];
		snprintf(why, sizeof(why), "TLS handshake with the backend failed: %s",
			 tls_last_error(up->tls));
		log_warn("backend %s: %s", up->w->gw->cfg->backends[up->backend].name, why);
		up_fail(up, UPSTREAM_ERR_TLS, why);
		return;
	}
	up_send_wire(up);
	if (r == 1) {
		if (up_start_request(up))
			up_fail(up, UPSTREAM_ERR_TLS, "TLS failure while sending the request");
		return;
	}
	upstream_read_more(up);
}

static struct upstream *up_connect(struct worker *w, unsigned backend)
{
	const struct backend_cfg *be = &w->gw->cfg->backends[backend];
	int fd = socket(be->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct upstream *up = calloc(1, sizeof(*up));
	if (!up) {
		close(fd);
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	up->w = w;
	up->backend = backend;
	up->fd = fd;
	up->state = UP_CONNECTING;
	up->rd_ev.fn = up_on_read;
	up->wr_ev.fn = up_on_write;
	up->conn_ev.fn = up_on_connect;
	timer_init(&up->timer, up_on_timer);
	list_init(&up->link);
	if (be->tls) {
		up->tls = tls_session_new(w->gw->tls[backend]);
		if (!up->tls) {
			close(fd);
			free(up);
			return NULL;
		}
	}
	w->nupstreams++;
	up->inflight++;
	loop_connect(&w->loop, fd, (const struct sockaddr *)&be->addr, be->addrlen, &up->conn_ev);
	timer_arm(&w->t_up_connect, &up->timer, w->loop.now);
	return up;
}

static struct upstream *up_take_idle(struct worker *w, unsigned backend)
{
	struct upstream_pool *pool = &w->pools[backend];
	if (list_empty(&pool->idle))
		return NULL;
	struct upstream *up = list_first(&pool->idle, struct upstream, link);
	list_del(&up->link);
	pool->nidle--;
	up->reused = true;
	up->state = UP_READY;
	return up;
}

int upstream_send(struct exchange *x, bool allow_reuse)
{
	struct worker *w = x->c->w;
	unsigned backend = (unsigned)x->backend;
	struct upstream *up = allow_reuse ? up_take_idle(w, backend) : NULL;
	bool fresh = !up;
	if (fresh && !(up = up_connect(w, backend)))
		return -ENOMEM;
	up->x = x;
	x->up = up;
	if (!fresh && up_start_request(up)) {
		x->up = NULL;
		up->x = NULL;
		upstream_close(up);
		return -EPROTO;
	}
	return 0;
}

void upstream_release(struct upstream *up, bool reusable)
{
	struct worker *w = up->w;
	struct upstream_pool *pool = &w->pools[up->backend];
	const struct backend_cfg *be = &w->gw->cfg->backends[up->backend];
	up->x = NULL;
	up->plain_tx = NULL;
	/* A request still being written means the backend answered early. */
	if (!reusable || up->writing || w->draining || pool->nidle >= be->max_idle) {
		upstream_close(up);
		return;
	}
	up->state = UP_IDLE;
	buf_pool_put(&w->bufs, &up->rx);
	list_add_head(&pool->idle, &up->link);
	pool->nidle++;
	timer_arm(&w->t_up_pool, &up->timer, w->loop.now);
	upstream_read_more(up);
}

static void up_on_connect(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct upstream *up = container_of(ev, struct upstream, conn_ev);
	up->inflight--;
	if (up->closing) {
		up_maybe_free(up);
		return;
	}
	if (res < 0) {
		char why[200];
		snprintf(why, sizeof(why), "the gateway could not connect to the backend: %s",
			 strerror(-res));
		up_fail(up, UPSTREAM_ERR_CONNECT, why);
		return;
	}
	if (up->tls) {
		up->state = UP_HANDSHAKE;
		up_handshake(up);
		return;
	}
	if (up_start_request(up))
		up_fail(up, UPSTREAM_ERR_PROTOCOL, "could not send the request");
}

static void up_on_write(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct upstream *up = container_of(ev, struct upstream, wr_ev);
	up->writing = false;
	up->inflight--;
	if (up->closing) {
		up_maybe_free(up);
		return;
	}
	if (res < 0) {
		up_fail(up, UPSTREAM_ERR_RESET, "the backend reset the connection");
		return;
	}
	if (up->plain_tx)
		up->plain_off += (size_t)res;
	else
		buf_consume(&up->wire, (size_t)res);
	up_send_wire(up);
}

/* Bytes from the socket into rx, through TLS when the backend is https. */
static int up_take_bytes(struct upstream *up, const char *p, size_t n)
{
	struct worker *w = up->w;
	if (!up->rx.data && buf_pool_get(&w->bufs, &up->rx))
		return -ENOMEM;
	if (!up->tls)
		return buf_append(&up->rx, p, n);
	int err = tls_feed(up->tls, p, n);
	if (err)
		return err;
	if (up->state == UP_HANDSHAKE)
		return 0;
	int r = tls_read(up->tls, &up->rx);
	/* Reading can queue records to send (key updates, alerts). */
	if (tls_take_output(up->tls, &up->wire) == 0 && buf_used(&up->wire))
		up_send_wire(up);
	return r < 0 ? r : 0;
}

/* No provided buffer was free: read into a buffer of this connection. */
static void up_read_spill(struct upstream *up)
{
	if (buf_reserve(&up->spill, 16384)) {
		up_fail(up, UPSTREAM_ERR_PROTOCOL, "out of memory");
		return;
	}
	up->reading = true;
	up->inflight++;
	loop_recv(&up->w->loop, up->fd, buf_tail(&up->spill), buf_room(&up->spill), &up->rd_ev);
}

static void up_on_read(struct ioev *ev, int res, unsigned flags)
{
	struct upstream *up = container_of(ev, struct upstream, rd_ev);
	struct worker *w = up->w;
	bool provided = flags & IORING_CQE_F_BUFFER;
	unsigned bid = 0;
	const char *p = provided ? loop_buf(&w->loop, flags, &bid) : buf_head(&up->spill);
	int err = 0;
	up->reading = false;
	up->inflight--;
	if (!up->closing && res > 0 && up->state != UP_IDLE)
		err = up_take_bytes(up, p, (size_t)res);
	if (provided)
		loop_buf_put(&w->loop, bid);
	else
		buf_reset(&up->spill);

	if (up->closing) {
		up_maybe_free(up);
	} else if (res == -ENOBUFS) {
		up_read_spill(up);
	} else if (up->state == UP_IDLE || !up->x) {
		/* A pooled connection has nothing to say: EOF or junk, drop it. */
		upstream_close(up);
	} else if (err) {
		up_fail(up, err == -EPROTO ? UPSTREAM_ERR_TLS : UPSTREAM_ERR_PROTOCOL,
			"the backend's TLS stream is broken");
	} else if (res < 0) {
		up_fail(up, UPSTREAM_ERR_RESET, "the backend reset the connection");
	} else if (up->state == UP_HANDSHAKE) {
		if (res == 0)
			up_fail(up, UPSTREAM_ERR_TLS, "the backend closed during the TLS handshake");
		else
			up_handshake(up);
	} else {
		timer_arm(&w->t_up_idle, &up->timer, w->loop.now);
		if (res == 0)
			exchange_on_upstream_eof(up->x);
		else
			exchange_on_upstream_data(up->x);
	}
}

static void up_on_timer(struct timer *t)
{
	struct upstream *up = container_of(t, struct upstream, timer);
	if (up->state == UP_IDLE) {
		upstream_close(up);
		return;
	}
	const char *why = up->state == UP_CONNECTING ? "connecting to the backend timed out"
			: up->state == UP_HANDSHAKE ? "the TLS handshake with the backend timed out"
			: "the backend did not answer in time";
	up_fail(up, UPSTREAM_ERR_TIMEOUT, why);
}
