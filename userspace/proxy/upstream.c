/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connections to backends.
 *
 *   CONNECTING --connected--> HANDSHAKE (https) --done--> READY
 *   READY --response complete, reusable--> IDLE (pool) --taken--> READY
 *
 * An idle connection keeps a read posted, so a backend that closes it is
 * noticed at once and it leaves the pool.
 *
 * https: the TLS session goes on the socket once the TCP connect has
 * completed (the kernel takes over record crypto only on a connected
 * socket), and one-shot polls drive its handshake.  Afterwards each
 * direction is one of:
 *
 *   kernel TLS   plaintext on the fd: the same io_uring send and
 *                provided-buffer receive as plain http.  A receive that
 *                fails with EIO met a record that is not application data
 *                (a ticket, a key update, close_notify): OpenSSL reads it.
 *   userspace    SSL_write / SSL_read, each try started by a poll
 *                completion, so the worker never blocks and nothing
 *                completes inside the exchange's own call.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#define MS	1000000ull
/* A pooled connection idle this long is peeked at before it carries a
 * request (see up_still_open). */
#define UP_PEEK_AFTER_NS	(100 * MS)

static void up_on_read(struct ioev *ev, int res, unsigned flags);
static void up_on_readable(struct ioev *ev, int res, unsigned flags);
static void up_on_write(struct ioev *ev, int res, unsigned flags);
static void up_on_writable(struct ioev *ev, int res, unsigned flags);
static void up_on_connect(struct ioev *ev, int res, unsigned flags);
static void up_on_handshake(struct ioev *ev, int res, unsigned flags);
static void up_on_timer(struct timer *t);

static struct upstream_pool *pools_new(const struct snap *s)
{
	size_t n = s->cfg->nbackends;
	struct upstream_pool *pools = calloc(n ? n : 1, sizeof(*pools));
	if (!pools)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		list_init(&pools[i].idle);
		timer_list_init(&pools[i].t_idle, (uint64_t)s->cfg->backends[i].idle_timeout_ms * MS);
	}
	return pools;
}

int upstream_pools_init(struct worker *w)
{
	w->pools = pools_new(w->snap);
	return w->pools ? 0 : -ENOMEM;
}

void upstream_pools_expire(struct worker *w)
{
	for (size_t i = 0; w->pools && i < w->snap->cfg->nbackends; i++)
		timer_list_expire(&w->pools[i].t_idle, w->loop.now);
}

void upstream_pools_close_idle(struct worker *w)
{
	if (!w->pools)
		return;
	for (size_t i = 0; i < w->snap->cfg->nbackends; i++) {
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

/* An upstream of an older snapshot moves to `to` as its backend `b`. */
static void up_retag(struct upstream *up, struct snap *to, unsigned b)
{
	struct worker *w = up->w;
	struct snap *from = up->snap;
	snap_hold(to, w);
	up->snap = to;
	up->backend = b;
	worker_snap_release(w, from);
}

/*
 * The worker moves to snapshot `next`: idle connections to a backend that
 * is the same there (name, URL, TLS client settings, credentials, pool
 * settings) move into its pool; the others are closed, never reused for
 * the new snapshot.  So are TLS connections: their session belongs to the
 * old snapshot's client context (it calls back into it with new tickets),
 * which lives only as long as something holds that snapshot.  Connections serving a request stay with it and are
 * sorted the same way when it ends (upstream_release).
 */
int upstream_pools_switch(struct worker *w, struct snap *next)
{
	struct upstream_pool *pools = pools_new(next);
	if (!pools)
		return -ENOMEM;
	for (size_t i = 0; i < w->snap->cfg->nbackends; i++) {
		struct upstream_pool *pool = &w->pools[i];
		int j = snap_same_backend(w->snap, (unsigned)i, next);
		while (!list_empty(&pool->idle)) {
			struct upstream *up = list_first(&pool->idle, struct upstream, link);
			if (j < 0 || up->tls || pools[j].nidle >= next->cfg->backends[j].max_idle) {
				upstream_close(up);	/* leaves the pool */
				continue;
			}
			list_del(&up->link);
			pool->nidle--;
			up_retag(up, next, (unsigned)j);
			list_add_tail(&pools[j].idle, &up->link);
			pools[j].nidle++;
			timer_arm(&pools[j].t_idle, &up->timer, w->loop.now);
		}
	}
	free(w->pools);
	w->pools = pools;
	return 0;
}

/* The directions OpenSSL carries itself, after a poll. */
static bool up_tls_sends(const struct upstream *up)
{
	return up->tls && !up->ktls_tx;
}

static bool up_tls_receives(const struct upstream *up)
{
	return up->tls && !up->ktls_rx;
}

static const char *up_name(const struct upstream *up)
{
	return up->snap->cfg->backends[up->backend].name;
}

static void up_maybe_free(struct upstream *up)
{
	if (!up->closing || up->inflight)
		return;
	struct worker *w = up->w;
	tls_client_session_free(up->tls);
	close(up->fd);
	buf_pool_put(&w->bufs, &up->rx);
	buf_pool_put(&w->bufs, &up->tx_keep);
	buf_free(&up->spill);
	w->nupstreams--;
	worker_snap_release(w, up->snap);
	free(up);
}

/* Kernel sends read the request from the exchange's buffer (x->tx); one
 * still in flight when the exchange lets go (it failed, or it is being
 * freed) must not read memory the exchange gives back.  The upstream takes
 * the buffer over and frees it with itself, after that send's completion.
 * (OpenSSL's writes copy what they take, so a poll in flight holds none.) */
static void up_detach(struct upstream *up)
{
	struct exchange *x = up->x;
	if (!x)
		return;
	if (up->writing && !up_tls_sends(up) && up->tx == &x->tx) {
		up->tx_keep = x->tx;
		x->tx = (struct buf){ 0 };
		up->tx = &up->tx_keep;
	}
	x->up = NULL;
	up->x = NULL;
}

void upstream_close(struct upstream *up)
{
	if (up->closing)
		return;
	up_detach(up);
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

static void up_poll(struct upstream *up, struct ioev *ev, ioev_fn fn, bool want_write)
{
	ev->fn = fn;
	up->inflight++;
	loop_poll(&up->w->loop, up->fd, want_write ? POLLOUT : POLLIN, ev);
}

/* Before the request goes out (connect, handshake) there is nothing to
 * read: up_start_request posts the first read. */
void upstream_read_more(struct upstream *up)
{
	if (up->reading || up->closing || up->state == UP_CONNECTING || up->state == UP_HANDSHAKE)
		return;
	up->reading = true;
	if (up_tls_receives(up)) {
		up_poll(up, &up->rd_ev, up_on_readable, up->tls_read_wants_write);
		return;
	}
	up->inflight++;
	up->rd_ev.fn = up_on_read;
	loop_recv_any(&up->w->loop, up->fd, &up->rd_ev);
}

static void up_send(struct upstream *up)
{
	if (up->writing || up->closing || !up->tx || up->tx_off == buf_used(up->tx))
		return;
	up->writing = true;
	if (up_tls_sends(up)) {
		up_poll(up, &up->wr_ev, up_on_writable, true);
		return;
	}
	up->inflight++;
	up->wr_ev.fn = up_on_write;
	up->tx_started = true;
	loop_send(&up->w->loop, up->fd, buf_head(up->tx) + up->tx_off,
		  buf_used(up->tx) - up->tx_off, &up->wr_ev);
}

/* Send the exchange's request as it is (the kernel or OpenSSL encrypts it
 * for https) and wait for the answer. */
static void up_start_request(struct upstream *up)
{
	up->state = UP_READY;
	up->tx = &up->x->tx;
	up->tx_off = 0;
	up->tx_started = false;
	timer_arm(&up->w->t_up_first_byte, &up->timer, up->w->loop.now);
	up_send(up);
	upstream_read_more(up);
}

/* ---- TLS handshake ------------------------------------------------------ */

/* Counted where sluicectl and /metrics both read it: the shared map. */
static void up_count_tls(struct upstream *up, enum sluice_tls_mode mode)
{
	__atomic_fetch_add(&up->w->gw->stats->upstream_tls_conns[mode], 1, __ATOMIC_RELAXED);
}

static void up_tls_ready(struct upstream *up)
{
	up->ktls_tx = tls_session_ktls_send(up->tls);
	up->ktls_rx = tls_session_ktls_recv(up->tls);
	up_count_tls(up, tls_session_mode(up->tls));
	log_debug("backend %s: %s %s%s ktls tx=%d rx=%d", up_name(up),
		  tls_session_version(up->tls), tls_session_cipher(up->tls),
		  tls_session_resumed(up->tls) ? " resumed" : "", up->ktls_tx, up->ktls_rx);
	up_start_request(up);
}

static void up_handshake(struct upstream *up)
{
	bool want_write = false;
	int r = tls_session_handshake(up->tls, &want_write);
	if (r == 0) {
		up_poll(up, &up->conn_ev, up_on_handshake, want_write);
		return;
	}
	if (r == 1) {
		up_tls_ready(up);
		return;
	}
	char why[300];
	snprintf(why, sizeof(why), "TLS handshake with the backend failed: %s",
		 tls_session_last_error(up->tls));
	log_warn("backend %s: %s", up_name(up), why);
	up_count_tls(up, SLUICE_TLS_FAILED);
	up_fail(up, UPSTREAM_ERR_TLS, why);
}

static void up_on_handshake(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct upstream *up = container_of(ev, struct upstream, conn_ev);
	up->inflight--;
	if (up->closing)
		up_maybe_free(up);
	else if (res < 0)
		up_fail(up, UPSTREAM_ERR_RESET, "the backend connection failed during the TLS handshake");
	else
		up_handshake(up);
}

/* ---- connections ------------------------------------------------------------ */

static struct upstream *up_connect(struct worker *w, struct snap *snap, unsigned backend)
{
	const struct backend_cfg *be = &snap->cfg->backends[backend];
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
	up->snap = snap;
	snap_hold(snap, w);
	up->backend = backend;
	up->fd = fd;
	up->state = UP_CONNECTING;
	up->conn_ev.fn = up_on_connect;
	timer_init(&up->timer, up_on_timer);
	list_init(&up->link);
	w->nupstreams++;
	up->inflight++;
	loop_connect(&w->loop, fd, (const struct sockaddr *)&be->addr, be->addrlen, &up->conn_ev);
	timer_arm(&w->t_up_connect, &up->timer, w->loop.now);
	return up;
}

static void up_on_connect(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct upstream *up = container_of(ev, struct upstream, conn_ev);
	struct tls_client_ctx *tls = up->snap->tls[up->backend];
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
	if (!tls) {
		up_start_request(up);
		return;
	}
	up->tls = tls_client_session_new(tls, up->fd);
	if (!up->tls) {
		up_fail(up, UPSTREAM_ERR_TLS, "the gateway is out of memory for a TLS session");
		return;
	}
	up->state = UP_HANDSHAKE;
	up_handshake(up);
}

/*
 * Whether a pooled connection may carry a request.  Its posted read sees
 * the backend closing it, but only once the loop has reaped that
 * completion; a peek sees it now.  EOF, a reset, or bytes from a backend
 * that owes nothing all mean no: a request written to such a connection
 * may be lost or, worse, read and then reset, and is never sent again.
 *
 * The peek is a syscall (about 1 us here), so it is spent only on a
 * connection idle for UP_PEEK_AFTER_NS or more: backends close idle
 * connections after their keep-alive timeout, seconds, not within a
 * tenth of one; under load connections come back much sooner and skip it.
 */
static bool up_still_open(const struct upstream *up)
{
	char byte;
	if (up->w->loop.now - up->idle_since < UP_PEEK_AFTER_NS)
		return true;
	return recv(up->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
	       (errno == EAGAIN || errno == EWOULDBLOCK);
}

static struct upstream *up_take_idle(struct worker *w, unsigned backend)
{
	struct upstream_pool *pool = &w->pools[backend];
	while (!list_empty(&pool->idle)) {
		struct upstream *up = list_first(&pool->idle, struct upstream, link);
		if (!up_still_open(up)) {
			upstream_close(up);	/* leaves the pool */
			continue;
		}
		list_del(&up->link);
		pool->nidle--;
		up->reused = true;
		up->state = UP_READY;
		return up;
	}
	return NULL;
}

int upstream_send(struct exchange *x, bool allow_reuse)
{
	struct worker *w = x->c->w;
	unsigned backend = (unsigned)x->backend;
	/* The pools hold connections for the worker's snapshot: a request
	 * of an older one (in flight across a reload) opens its own to the
	 * backend as that snapshot has it. */
	struct upstream *up = allow_reuse && x->snap == w->snap ? up_take_idle(w, backend) : NULL;
	bool fresh = !up;
	if (fresh && !(up = up_connect(w, x->snap, backend)))
		return -ENOMEM;
	up->x = x;
	x->up = up;
	if (!fresh)
		up_start_request(up);
	return 0;
}

void upstream_release(struct upstream *up, bool reusable)
{
	struct worker *w = up->w;
	up_detach(up);
	if (up->tx != &up->tx_keep)
		up->tx = NULL;
	/* A connection of an older snapshot joins the pool only when its
	 * backend is the same in the worker's snapshot. */
	if (reusable && up->snap != w->snap) {
		int j = snap_same_backend(up->snap, up->backend, w->snap);
		if (j < 0 || up->tls)
			reusable = false;
		else
			up_retag(up, w->snap, (unsigned)j);
	}
	/* A request still being written means the backend answered early; a
	 * backend that already ended its side (close_notify) is done. */
	if (!reusable || up->writing || up->eof || w->draining ||
	    w->pools[up->backend].nidle >= w->snap->cfg->backends[up->backend].max_idle) {
		upstream_close(up);
		return;
	}
	struct upstream_pool *pool = &w->pools[up->backend];
	up->state = UP_IDLE;
	up->idle_since = w->loop.now;
	buf_pool_put(&w->bufs, &up->rx);
	list_add_head(&pool->idle, &up->link);
	pool->nidle++;
	timer_arm(&pool->t_idle, &up->timer, w->loop.now);
	upstream_read_more(up);
}

/* ---- sending ------------------------------------------------------------------ */

/* A send or a POLLOUT completed: false when the connection is closing or
 * failed (and was dealt with), true when the write may go on. */
static bool up_write_completed(struct upstream *up, int res)
{
	up->writing = false;
	up->inflight--;
	if (up->closing) {
		up_maybe_free(up);
		return false;
	}
	if (res < 0) {
		up_fail(up, UPSTREAM_ERR_RESET, "the backend reset the connection");
		return false;
	}
	return true;
}

static void up_on_write(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct upstream *up = container_of(ev, struct upstream, wr_ev);
	if (!up_write_completed(up, res))
		return;
	if (up->tx)
		up->tx_off += (size_t)res;
	up_send(up);
}

/* Userspace TLS: the socket has room, so OpenSSL encrypts and writes as
 * much of the request as it takes. */
static void up_on_writable(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct upstream *up = container_of(ev, struct upstream, wr_ev);
	if (!up_write_completed(up, res))
		return;
	while (up->tx && up->tx_off < buf_used(up->tx)) {
		bool want_write = true;
		up->tx_started = true;
		ssize_t n = tls_session_write(up->tls, buf_head(up->tx) + up->tx_off,
					      buf_used(up->tx) - up->tx_off, &want_write);
		if (n > 0) {
			up->tx_off += (size_t)n;
			continue;
		}
		if (n == -EAGAIN) {
			up->writing = true;
			up_poll(up, &up->wr_ev, up_on_writable, want_write);
		} else if (n == -EPROTO) {
			up_fail(up, UPSTREAM_ERR_TLS, "the backend's TLS stream is broken");
		} else {
			up_fail(up, UPSTREAM_ERR_RESET, "the backend reset the connection");
		}
		return;
	}
}

/* ---- receiving ---------------------------------------------------------------- */

static int up_rx_room(struct upstream *up, size_t n)
{
	if (!up->rx.data && buf_pool_get(&up->w->bufs, &up->rx))
		return -ENOMEM;
	return buf_reserve(&up->rx, n);
}

/* New plaintext in rx (or the end of the stream) for the exchange. */
static void up_deliver(struct upstream *up, bool eof)
{
	struct worker *w = up->w;
	timer_arm(&w->t_up_idle, &up->timer, w->loop.now);
	if (eof) {
		up->eof = true;
		exchange_on_upstream_eof(up->x);
	} else {
		exchange_on_upstream_data(up->x);
	}
}

/* A read through OpenSSL failed: n is its negative errno. */
static void up_tls_read_failed(struct upstream *up, ssize_t n)
{
	char why[300];
	if (n == -ENOMEM) {
		up_fail(up, UPSTREAM_ERR_PROTOCOL, "the gateway is out of memory");
		return;
	}
	if (n != -EPROTO) {
		/* A reset: on a reused connection, the exchange may retry. */
		up_fail(up, UPSTREAM_ERR_RESET, "the backend reset the connection");
		return;
	}
	snprintf(why, sizeof(why), "the backend's TLS stream is broken: %s",
		 tls_session_last_error(up->tls));
	up_fail(up, UPSTREAM_ERR_TLS, why);
}

/*
 * Read through OpenSSL until it has nothing more to give: after a poll
 * (userspace receive), or after a kernel-TLS receive failed with EIO (the
 * next record is not application data: SSL_read acts on it -- stores a
 * ticket, applies a key update, takes close_notify as the end -- and reads
 * whatever follows).  Stopping only at EAGAIN leaves nothing behind in
 * OpenSSL's buffer, where no poll and no kernel receive would find it.
 */
static void up_tls_read(struct upstream *up)
{
	bool got = false, want_write = false;
	ssize_t n;
	while ((n = up_rx_room(up, 4096)) == 0) {
		n = tls_session_read(up->tls, buf_tail(&up->rx), buf_room(&up->rx), &want_write);
		if (n <= 0)
			break;
		up->rx.len += (size_t)n;
		got = true;
	}
	up->tls_read_wants_write = want_write;
	bool eof = n == 0;
	if (up->state == UP_IDLE || !up->x) {
		/* Tickets and key updates keep a pooled connection; data, an
		 * end or an error from a backend that owes nothing drop it. */
		if (got || n != -EAGAIN) {
			upstream_close(up);
			return;
		}
		buf_pool_put(&up->w->bufs, &up->rx);
		upstream_read_more(up);
	} else if (n < 0 && n != -EAGAIN) {
		up_tls_read_failed(up, n);
	} else if (got || eof) {
		up_deliver(up, eof);
	} else {
		upstream_read_more(up);
	}
}

static void up_on_readable(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct upstream *up = container_of(ev, struct upstream, rd_ev);
	up->reading = false;
	up->inflight--;
	if (up->closing)
		up_maybe_free(up);
	else if (res < 0)
		up_fail(up, UPSTREAM_ERR_RESET, "the backend reset the connection");
	else
		up_tls_read(up);
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

/* Plaintext from the socket: plain http, or records the kernel decrypted. */
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
	if (!up->closing && res > 0 && up->state != UP_IDLE && !(err = up_rx_room(up, (size_t)res)))
		err = buf_append(&up->rx, p, (size_t)res);
	if (provided)
		loop_buf_put(&w->loop, bid);
	else
		buf_reset(&up->spill);

	if (up->closing) {
		up_maybe_free(up);
	} else if (res == -ENOBUFS) {
		up_read_spill(up);
	} else if (res == -EIO && up->ktls_rx) {
		up_tls_read(up);
	} else if (up->state == UP_IDLE || !up->x) {
		/* A pooled connection has nothing to say: EOF or junk, drop it. */
		upstream_close(up);
	} else if (err) {
		up_fail(up, UPSTREAM_ERR_PROTOCOL, "out of memory");
	} else if (res < 0) {
		up_fail(up, UPSTREAM_ERR_RESET, "the backend reset the connection");
	} else {
		up_deliver(up, res == 0);
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
