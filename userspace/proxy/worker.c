/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sat.h"
#include "proxy/proxy.h"
#include "proxy/quota_async.h"

#define RING_ENTRIES	1024
#define RX_BUFS		512		/* provided buffers per worker */
#define RX_BUF_SIZE	16384
#define POOL_BUF_SIZE	16384
#define POOL_BUF_KEEP	1024
#define MS		1000000ull
#define TICK_NS		(20 * MS)

#define ADMIN_BACKLOG	64

/*
 * One listening socket.  The API has one per worker in one SO_REUSEPORT
 * group: the kernel spreads new connections across them, and the steering
 * program can choose.  The admin listener is a socket of its own.  Both
 * are SO_REUSEPORT so that a new sluiced can listen beside a draining one.
 */
static int listener_open(const struct sockaddr_storage *addr, socklen_t addrlen, bool reuseport,
			 int backlog)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    bind(fd, (const struct sockaddr *)addr, addrlen) ||
	    listen(fd, backlog)) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* A multishot accept ended (e.g. EMFILE) or failed: say why, re-arm. */
static void accept_result(struct worker *w, int res, bool *accepting, int fd, struct ioev *ev,
			  bool admin)
{
	if (res >= 0) {
		if (w->draining)
			close(res);
		else
			conn_accept(w, res, admin);
	} else if (res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
		log_warn("worker %u: accept%s: %s", w->id, admin ? " (admin)" : "", strerror(-res));
	}
	if (!*accepting && !w->draining && fd >= 0) {
		*accepting = true;
		loop_accept(&w->loop, fd, ev);
	}
}

static void on_accept(struct ioev *ev, int res, unsigned flags)
{
	struct worker *w = container_of(ev, struct worker, accept_ev);
	if (!(flags & IORING_CQE_F_MORE))
		w->accepting = false;
	accept_result(w, res, &w->accepting, w->listen_fd, &w->accept_ev, false);
}

static void on_admin_accept(struct ioev *ev, int res, unsigned flags)
{
	struct worker *w = container_of(ev, struct worker, admin_accept_ev);
	if (!(flags & IORING_CQE_F_MORE))
		w->admin_accepting = false;
	accept_result(w, res, &w->admin_accepting, w->admin_fd, &w->admin_accept_ev, true);
}

static void on_wake(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct worker *w = container_of(ev, struct worker, wake_ev);
	if (res == -ECANCELED)
		return;
	worker_request_drain(w);
}

/*
 * The list of stage waits lasting `ms`: stages choose their own deadline,
 * and the lists of timer.h hold one length each.  A handful of lengths is
 * all a config makes (timeouts.stage and the stages' own); past that the
 * last list serves, which only makes a rare wait's deadline another's.
 */
struct timer_list *worker_timer_list(struct worker *w, unsigned ms)
{
	uint64_t ns = (uint64_t)ms * MS;
	for (unsigned i = 0; i < w->nstage_timers; i++)
		if (w->t_stage[i].timeout_ns == ns)
			return &w->t_stage[i];
	if (w->nstage_timers == WORKER_STAGE_TIMERS)
		return &w->t_stage[WORKER_STAGE_TIMERS - 1];
	struct timer_list *tl = &w->t_stage[w->nstage_timers++];
	timer_list_init(tl, ns);
	return tl;
}

/* A reload's timeouts apply to timers armed from now on; one armed
 * before keeps its deadline (the request keeps the timeout it started
 * with), so a list may briefly hold deadlines out of order, which delays
 * a shortened timeout by at most the old length. */
static void timer_lists_update(struct worker *w, const struct sluice_config *cfg)
{
	w->t_keepalive.timeout_ns = cfg->keepalive_ms * MS;
	w->t_header.timeout_ns = cfg->client_header_ms * MS;
	w->t_body.timeout_ns = cfg->client_body_ms * MS;
	w->t_up_connect.timeout_ns = cfg->upstream_connect_ms * MS;
	w->t_up_first_byte.timeout_ns = cfg->upstream_first_byte_ms * MS;
	w->t_up_idle.timeout_ns = cfg->upstream_idle_ms * MS;
	w->max_conns = (cfg->max_connections + w->gw->nworkers - 1) / w->gw->nworkers;
}

static void timer_lists_init(struct worker *w, const struct sluice_config *cfg)
{
	timer_list_init(&w->t_keepalive, cfg->keepalive_ms * MS);
	timer_list_init(&w->t_header, cfg->client_header_ms * MS);
	timer_list_init(&w->t_body, cfg->client_body_ms * MS);
	/* How long a closing connection may keep sending before it is cut. */
	timer_list_init(&w->t_linger, 2000 * MS);
	timer_list_init(&w->t_up_connect, cfg->upstream_connect_ms * MS);
	timer_list_init(&w->t_up_first_byte, cfg->upstream_first_byte_ms * MS);
	timer_list_init(&w->t_up_idle, cfg->upstream_idle_ms * MS);
	timer_list_init(&w->t_backoff, 0);	/* timer_arm_at: own deadlines */
}

int worker_init(struct worker *w, struct gateway *gw, unsigned id)
{
	const struct sluice_config *cfg = gw->cfg;
	memset(w, 0, sizeof(*w));
	w->gw = gw;
	w->id = id;
	w->listen_fd = -1;
	w->admin_fd = -1;
	w->wake_fd = -1;
	w->log.fd = -1;
	w->accept_ev.fn = on_accept;
	w->admin_accept_ev.fn = on_admin_accept;
	w->wake_ev.fn = on_wake;
	w->max_conns = (cfg->max_connections + cfg->workers - 1) / cfg->workers;
	list_init(&w->conns);
	list_init(&w->starved);
	list_init(&w->free_exchanges);
	list_init(&w->reload_waiters);
	timer_lists_init(w, cfg);

	int err = loop_init(&w->loop, RING_ENTRIES, RX_BUFS, RX_BUF_SIZE);
	if (err) {
		log_error("worker %u: io_uring: %s", id, strerror(-err));
		return err;
	}
	w->snap = gw->snap;
	snap_ref(w->snap);
	if ((err = buf_pool_init(&w->bufs, POOL_BUF_SIZE, POOL_BUF_KEEP)) ||
	    (err = upstream_pools_init(w)))
		return err;
	w->tenant_delta = calloc(SLUICE_MAX_TENANTS, sizeof(*w->tenant_delta));
	w->tenant_dirty = calloc(SLUICE_MAX_TENANTS, sizeof(*w->tenant_dirty));
	if (!w->tenant_delta || !w->tenant_dirty)
		return -ENOMEM;
	if (gw->global) {
		/* The worker's own connection never waits on Redis; what needs
		 * Redis goes to its Redis thread (quota_async.c). */
		if (!(w->qconn = quota_global_conn_new(gw->global)))
			return -ENOMEM;
		quota_global_conn_set_nowait(w->qconn, true);
		if ((err = qasync_new(w, &w->qasync)))
			return err;
	}
	w->metrics = metrics_new(cfg);
	if (!w->metrics)
		return -ENOMEM;
	w->guard_metrics = calloc(1, sizeof(*w->guard_metrics));
	if (!w->guard_metrics)
		return -ENOMEM;
	gw->metrics[id] = w->metrics;
	err = id == 0 ? accesslog_open(&w->log, cfg->access_log)
		      : accesslog_dup(&w->log, &gw->workers[0].log);
	if (err) {
		log_error("access log %s: %s", cfg->access_log, strerror(-err));
		return err;
	}
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (w->wake_fd < 0)
		return -errno;
	w->listen_fd = listener_open(&cfg->listen_addr, cfg->listen_addrlen, true, 4096);
	if (w->listen_fd < 0) {
		err = w->listen_fd;
		log_error("listen %s: %s", cfg->listen, strerror(-err));
		return err;
	}
	if (id == 0 && cfg->admin.enabled) {
		/* SO_REUSEPORT here too: during a rolling restart the next
		 * sluiced binds the admin port while this one drains. */
		w->admin_fd = listener_open(&cfg->admin.listen_addr, cfg->admin.listen_addrlen,
					    true, ADMIN_BACKLOG);
		if (w->admin_fd < 0) {
			err = w->admin_fd;
			log_error("admin.listen %s: %s", cfg->admin.listen, strerror(-err));
			return err;
		}
	}
	return 0;
}

void worker_destroy(struct worker *w)
{
	if (w->listen_fd >= 0)
		close(w->listen_fd);
	if (w->admin_fd >= 0)
		close(w->admin_fd);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	upstream_pools_destroy(w);
	exchange_free_pool(w);
	quota_global_conn_free(w->qconn);
	w->qconn = NULL;
	jwt_cache_free(&w->jwt_cache);
	accesslog_close(&w->log);
	metrics_free(w->metrics);
	free(w->guard_metrics);
	w->guard_metrics = NULL;
	guard_scratch_free(&w->guard);
	free(w->tenant_delta);
	free(w->tenant_dirty);
	if (w->snap)
		snap_unref(w->snap);
	w->snap = NULL;
	buf_free(&w->scratch);
	buf_pool_destroy(&w->bufs);
	loop_destroy(&w->loop);
	/* After the ring: its read of the Redis thread's eventfd points into
	 * the qasync, which must outlive that read (the ring's exit cancels
	 * it). */
	qasync_free(w->qasync);
	w->qasync = NULL;
	w->listen_fd = w->admin_fd = w->wake_fd = -1;
}

/* The fd stays open until the loop ends so the cancelled accept can
 * complete; new connections are closed on arrival meanwhile. */
static void stop_listening(struct worker *w)
{
	int fds[] = { w->listen_fd, w->admin_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (fds[i] < 0)
			continue;
		loop_cancel_fd(&w->loop, fds[i]);
		shutdown(fds[i], SHUT_RDWR);
	}
}

void worker_request_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	w->drain_deadline = w->loop.now + (uint64_t)w->snap->cfg->drain_ms * MS;
	stop_listening(w);
	struct list_node *n, *next;
	for (n = w->conns.next; n != &w->conns; n = next) {
		next = n->next;
		conn_drain(container_of(n, struct conn, link));
	}
}

/* An exchange or upstream of snapshot s ended.  The worker's reference
 * on a snapshot it has moved on from goes with its last user. */
void worker_snap_release(struct worker *w, struct snap *s)
{
	if (--s->w[w->id].users == 0 && s != w->snap)
		snap_unref(s);
}

/*
 * A reload published a new snapshot: new requests of this worker use it
 * from here on.  Route state of arms that did not change is carried over,
 * idle connections to backends that did not change move to the new pools
 * (upstream_pools_switch).  Without memory for that, the worker stays on
 * its snapshot and tries again next iteration.
 */
static void worker_switch_snap(struct worker *w)
{
	struct snap *next = __atomic_load_n(&w->gw->snap, __ATOMIC_ACQUIRE);
	struct snap *old = w->snap;
	if (next == old || !snap_tryref(next))
		return;
	route_cursor_carry(&next->w[w->id].cursor, &next->routes, &old->w[w->id].cursor,
			   &old->routes);
	if (upstream_pools_switch(w, next)) {
		snap_unref(next);
		return;
	}
	w->snap = next;
	timer_lists_update(w, next->cfg);
	if (old->w[w->id].users == 0)
		snap_unref(old);
}

void worker_count_tenant(struct worker *w, uint32_t tenant, const struct api_usage *u)
{
	struct tenant_delta *d = &w->tenant_delta[tenant];
	if (!d->requests)
		w->tenant_dirty[w->ndirty++] = (uint16_t)tenant;
	d->requests++;
	/* The backend's numbers: sums saturate rather than wrap. */
	if (u->prompt_tokens > 0)
		d->tokens_in = sat_add_u64(d->tokens_in, (uint64_t)u->prompt_tokens);
	if (u->completion_tokens > 0)
		d->tokens_out = sat_add_u64(d->tokens_out, (uint64_t)u->completion_tokens);
}

/* Add this iteration's counts to the shared tenant state, where the
 * kernel, sluicectl, /metrics and every worker read them. */
static void flush_tenant_counts(struct worker *w)
{
	for (unsigned i = 0; i < w->ndirty; i++) {
		uint16_t id = w->tenant_dirty[i];
		struct tenant_delta *d = &w->tenant_delta[id];
		struct sluice_tenant_state *st = &w->gw->tenants[id];
		__atomic_fetch_add(&st->requests, d->requests, __ATOMIC_RELAXED);
		if (d->tokens_in)
			SAT_ATOMIC_ADD_U64(&st->tokens_in, d->tokens_in);
		if (d->tokens_out)
			SAT_ATOMIC_ADD_U64(&st->tokens_out, d->tokens_out);
		*d = (struct tenant_delta){ 0 };
	}
	w->ndirty = 0;
}

static void expire_timers(struct worker *w)
{
	uint64_t now = w->loop.now;
	timer_list_expire(&w->t_keepalive, now);
	timer_list_expire(&w->t_header, now);
	timer_list_expire(&w->t_body, now);
	timer_list_expire(&w->t_linger, now);
	timer_list_expire(&w->t_up_connect, now);
	timer_list_expire(&w->t_up_first_byte, now);
	timer_list_expire(&w->t_up_idle, now);
	timer_list_expire(&w->t_backoff, now);
	for (unsigned i = 0; i < w->nstage_timers; i++)
		timer_list_expire(&w->t_stage[i], now);
	upstream_pools_expire(w);
}

/* Past the drain deadline every connection still open ends what it is
 * doing (conn_drain_timeout): streams get an error event and their last
 * chunk.  Those bytes get a short grace to leave. */
static void end_all(struct worker *w)
{
	struct list_node *n, *next;
	for (n = w->conns.next; n != &w->conns; n = next) {
		next = n->next;
		conn_drain_timeout(container_of(n, struct conn, link));
	}
}

/* Past the grace every connection still open is cut. */
static void force_close_all(struct worker *w)
{
	while (!list_empty(&w->conns)) {
		struct conn *c = list_first(&w->conns, struct conn, link);
		list_del(&c->link);
		conn_close(c);
	}
}

#define DRAIN_GRACE_NS	(1000 * MS)

static void drain_deadline_passed(struct worker *w)
{
	if (!w->drain_ended) {
		log_warn("worker %u: drain timeout, ending %u connections", w->id, w->nconns);
		w->drain_ended = true;
		w->drain_deadline = w->loop.now + DRAIN_GRACE_NS;
		end_all(w);
		return;
	}
	log_warn("worker %u: closing %u connections", w->id, w->nconns);
	force_close_all(w);
	w->drain_deadline = UINT64_MAX;
}

static bool worker_finished(const struct worker *w)
{
	return w->draining && w->nconns == 0 && w->nupstreams == 0;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	int err = loop_start(&w->loop);
	if (err) {
		log_error("worker %u: io_uring: %s", w->id, strerror(-err));
		w->exit_code = 1;
		return NULL;
	}
	w->accepting = true;
	loop_accept(&w->loop, w->listen_fd, &w->accept_ev);
	if (w->admin_fd >= 0) {
		w->admin_accepting = true;
		loop_accept(&w->loop, w->admin_fd, &w->admin_accept_ev);
	}
	loop_read(&w->loop, w->wake_fd, &w->wake_val, sizeof(w->wake_val), &w->wake_ev);
	if (w->qasync)
		qasync_start(w->qasync);

	while (!worker_finished(w)) {
		/* A quiescent point: nothing read from the auth snapshots is
		 * held across iterations, so replaced ones can be freed. */
		qsbr_online(&w->gw->auth.qsbr, w->id);
		if (__atomic_load_n(&w->gw->snap, __ATOMIC_RELAXED) != w->snap)
			worker_switch_snap(w);
		err = loop_run_once(&w->loop, TICK_NS);
		if (err) {
			log_error("worker %u: io_uring: %s", w->id, strerror(-err));
			w->exit_code = 1;
			break;
		}
		conn_rearm_starved(w);
		expire_timers(w);
		flush_tenant_counts(w);
		accesslog_flush(&w->log);
		if (!list_empty(&w->reload_waiters))
			admin_reload_answer(w);
		if (w->draining && w->loop.now >= w->drain_deadline && w->nconns)
			drain_deadline_passed(w);
		if (w->draining && w->nconns == 0)
			upstream_pools_close_idle(w);
	}
	flush_tenant_counts(w);
	accesslog_flush(&w->log);
	qsbr_offline(&w->gw->auth.qsbr, w->id);
	return NULL;
}
