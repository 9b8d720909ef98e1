/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's data plane, shared by the files of this module:
 *
 *   gateway.c   start-up: workers, listeners, signals, drain
 *   worker.c    one thread, one io_uring: accept, timers, the loop
 *   conn.c      the client connection: read a request, write a response
 *   exchange.c  one request: validate, route, relay the response, account
 *   admin.c     the admin listener's endpoints: token, /metrics, reload
 *   upstream.c  connections to backends: connect, TLS, keep-alive pool
 *
 * Ownership: a worker owns its connections, exchanges, upstreams and
 * buffers, and no other thread touches them.  A conn owns at most one
 * exchange at a time; an exchange owns at most one upstream.  Every object
 * that can have io_uring operations in flight counts them (`inflight`) and
 * is freed only once it is closing and that count is zero.
 */
#ifndef SLUICE_PROXY_PROXY_H
#define SLUICE_PROXY_PROXY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/openai.h"
#include "auth/auth.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/chain.h"
#include "core/list.h"
#include "http/forwarded.h"
#include "http/http1.h"
#include "http/sse.h"
#include "loop/loop.h"
#include "loop/timer.h"
#include "proxy/guardrails.h"
#include "obs/accesslog.h"
#include "obs/guard_metrics.h"
#include "obs/metrics.h"
#include "quota/global.h"
#include "quota/quota.h"
#include "route/route.h"
#include "sluice_maps.h"
#include "proxy/stage.h"
#include "proxy/snap.h"

struct worker;
struct exchange;
struct tls_client_ctx;
struct tls_session;
struct tls_server_ctx;
struct tls_server_session;
struct kern;

/* Read-only after gateway_start, except the stop request and what a
 * reload publishes (snap, tls_server, tenant names, the reload outcome). */
struct gateway {
	/* The start-up config: what only a restart changes (listeners,
	 * workers, kernel attach points, Redis); everything a reload may
	 * change is read from a snapshot (snap.h). */
	const struct sluice_config *cfg;
	struct snap *snap;			/* the latest snapshot (atomic) */
	/* The outcome of reloads, for POST /admin/reload?wait=1: asked is
	 * bumped by each request, done set to what the last reload served. */
	pthread_mutex_t reload_lock;
	uint64_t reload_asked, reload_done;	/* atomic reads */
	bool reload_ok;
	char reload_text[1024];			/* what changed, or file:line: key: reason */
	unsigned nworkers;
	struct worker *workers;
	struct metrics **metrics;		/* per worker, for scrapes */
	struct kern *kern;			/* NULL: userspace-only */
	struct tls_server_ctx *tls_server;	/* NULL: plain HTTP listener; swapped
						 * atomically by a reload */
	struct tls_server_ctx **old_tls;	/* replaced contexts, freed at exit */
	size_t nold_tls;
	/* Per-tenant state: the shared map when the kernel half is on, else
	 * an array of the same layout in this process. */
	struct sluice_tenant_state *tenants;
	struct sluice_tenant_state *local_tenants;
	struct sluice_daemon_stats *stats;	/* shared map, or local_stats */
	struct sluice_daemon_stats local_stats;
	const char *tenant_names[SLUICE_MAX_TENANTS];	/* NULL: no such tenant */
	/* Quotas: per-key and per-tenant-model slots (the shared map, or an
	 * array of the same layout here), and Redis in global mode. */
	struct quota_slot_table qslots;		/* .slots: the map or local_slots */
	uint64_t learned_key_reloads;		/* auth.key_reloads the refresher last saw */
	struct sluice_quota_slot *local_slots;
	struct quota_global *global;		/* NULL: local limits only */
	/* Identity: key table and JWKS snapshots, their refresher thread,
	 * and the latest config snapshot (auth.cfg) for tenants and limits. */
	struct auth_state auth;
};

/* Segments of the output chain one send takes at most (16 KiB each). */
#define CONN_SEND_IOV	16

enum conn_state {
	CONN_IDLE,	/* keep-alive, waiting for a request */
	CONN_HEAD,	/* reading the request head */
	CONN_BODY,	/* reading the request body */
	CONN_BUSY,	/* request handed on: upstream or local reply */
	CONN_LINGER,	/* response sent, write side shut: discard input until EOF */
	CONN_TLS,	/* TLS handshake in progress */
};

struct conn {
	struct worker *w;
	int fd;
	enum conn_state state;
	unsigned inflight;
	bool reading, writing, closing;
	bool close_after;		/* close once the response is sent */
	bool served;			/* a request was answered: idle now means
					 * keep-alive, not a client yet to speak */
	struct ioev rd_ev, wr_ev;
	struct buf in;			/* request bytes; pooled while a request is open */
	/* Response bytes not yet sent.  A send reads the head of the chain
	 * while the relay appends behind it; the chain never moves a byte
	 * (core/chain.h), so the two cannot meet. */
	struct chain out;
	struct iovec iov[CONN_SEND_IOV];	/* the send in flight: untouched */
	struct msghdr msg;			/* until its completion */
	uint32_t tenant;		/* from the sockops tag; anonymous without */
	struct tls_server_session *tls;	/* NULL on a plain connection */
	bool ktls_tx, ktls_rx;		/* directions the kernel encrypts */
	bool learned;			/* the kernel was told who this source is: */
	uint32_t learned_as;		/* a tenant, or LEARNED_NO_CREDENTIAL */
	bool admin;			/* accepted on the admin listener */
	struct fwd_peer peer;		/* the client's address (getpeername at
					 * accept), as forwarding headers write it */
	char *client_cert;		/* mutual TLS: the client's certificate
					 * subject (owned), for logs and, with
					 * authentication, tenant resolution */
	struct timer timer;
	struct list_node link;		/* worker->conns */
	struct list_node starve_link;	/* worker->starved */
	struct exchange *x;		/* the request in progress, or NULL */
};

enum upstream_state {
	UP_CONNECTING, UP_HANDSHAKE, UP_READY, UP_IDLE,
};

struct upstream {
	struct worker *w;
	struct snap *snap;		/* the snapshot it was opened for (held) */
	unsigned backend;		/* index in snap->cfg->backends */
	int fd;
	enum upstream_state state;
	unsigned inflight;
	bool reading, writing, closing;
	bool reused;			/* served a request before this one */
	uint64_t idle_since;		/* when it last went into the pool */
	bool eof;			/* the backend ended its side (EOF, close_notify) */
	struct ioev rd_ev, wr_ev;
	struct ioev conn_ev;		/* the connect, then the TLS handshake's polls */
	struct buf rx;			/* plaintext received, not yet consumed */
	struct buf spill;		/* read when no provided buffer was free (rare) */
	const struct buf *tx;		/* the request being sent: the exchange's */
	size_t tx_off;			/* bytes of tx sent (or taken by OpenSSL) */
	bool tx_started;		/* some of tx was handed to the kernel or
					 * OpenSSL: it may have reached the backend */
	struct buf tx_keep;		/* the exchange's request, taken over when the
					 * exchange let go while a send still read it */
	struct tls_session *tls;	/* https, from the TCP connect on; NULL for http */
	bool ktls_tx, ktls_rx;		/* directions the kernel encrypts; the others
					 * go through OpenSSL after a poll */
	bool tls_read_wants_write;	/* OpenSSL's read waits for POLLOUT */
	struct exchange *x;		/* the exchange using it, or NULL when idle */
	struct timer timer;
	struct list_node link;		/* pool idle list */
};

/* Idle keep-alive connections to one backend, most recently used first,
 * each closed after the backend's idle_timeout. */
struct upstream_pool {
	struct list_node idle;
	unsigned nidle;
	struct timer_list t_idle;
};

/* The quota side of one request: the scopes it was admitted into and
 * what it holds there until it ends. */
#define ADMIT_MAX_SCOPES	3	/* tenant, API key, tenant + model */
#define ADMIT_SCOPE_NAME	(8 + 64 + 256)	/* "m:<tenant>:<model>" */

struct admission {
	bool has_qh;			/* qh goes into the response head */
	bool reserved;			/* hold must be released */
	bool global;			/* also reserved in Redis */
	bool pending;			/* waiting for the Redis thread (job) */
	unsigned job;
	struct quota_ask ask;		/* what was asked */
	size_t nscopes;
	struct quota_scope scopes[ADMIT_MAX_SCOPES];
	struct quota_hold hold, ghold;	/* local, and global (Redis) */
	struct quota_headers qh;
	char names[ADMIT_MAX_SCOPES][ADMIT_SCOPE_NAME];	/* Redis scope names */
};

/* A request and its response. */
struct exchange {
	struct conn *c;
	/* The worker's snapshot when the request began: tenants, limits,
	 * models, routes, backends and forwarding of this request come from
	 * it to its end (held: snap_hold). */
	struct snap *snap;
	const struct sluice_config *cfg;	/* snap->cfg */
	struct list_node reload_link;		/* worker->reload_waiters */
	uint64_t reload_gen;			/* the reload it waits for */
	struct list_node free_link;	/* worker->free_exchanges */
	char method[16];		/* copies for the access log */
	char path[200];
	struct http_head_scan head_scan;	/* the request head, as it arrives */
	size_t head_len;		/* bytes of c->in that are the head */
	const char *head_at;		/* where the head was when req was parsed */
	size_t body_len;		/* decoded body bytes after the head */
	struct http_chunked chunked;
	enum api_endpoint ep;
	struct api_request api;
	int backend;
	struct upstream *up;
	struct buf tx;			/* the request as sent upstream */
	bool retried;
	/* failover: the route, the target of this attempt (failover.c) */
	const struct route_def *route;
	const struct route_arm *arm;
	const struct route_arm *retry_arm;	/* the next target, budget taken */
	bool attempt_open;		/* route_attempt_start without its end */
	bool retry_ok;			/* the retry is not the target's fault
					 * (context window): its breaker is spared */
	bool holding;			/* stream head and events on c->out after
					 * hold_mark, not flushed: no content yet */
	uint64_t hold_mark;
	uint64_t t_attempt;
	unsigned attempts;
	/* backoff before a retry of a target the exchange already tried */
	struct timer backoff_timer;
#define EXCHANGE_TRIED_MAX 8
	uint16_t tried[EXCHANGE_TRIED_MAX];	/* backends of the attempts, in order */
	bool has_usage_edit;
	struct api_body_edit usage_edit;

	/* response */
	struct http_head_scan resp_scan;	/* its head, as it arrives */
	int status;
	bool head_parsed;		/* upstream head seen */
	bool head_sent;			/* client head queued */
	bool stream;			/* relaying SSE event by event */
	bool chunked_out;		/* client body in chunked coding (HTTP/1.1) */
	bool strip_usage;		/* drop the usage-only chunk we asked for */
	bool done;			/* whole response queued on c->out */
	int64_t body_left;		/* content-length framing: bytes to come */
	bool body_chunked, body_until_close;
	struct http_chunked resp_chunked;
	size_t resp_head_len;		/* non-stream: head kept at the front of up->rx */
	size_t raw_off;			/* up->rx from resp_head_len: decoded payload
					 * before, raw bytes after */
	bool reusable;			/* upstream may serve another request */
	struct sse_splitter sse;	/* where the pending event stands */
	struct api_usage usage;
	const char *error_code;
	uint64_t t_start, t_start_real, t_first_byte;
	uint64_t bytes_out;

	/* Stages: where the exchange is in its list, the deadline of a wait,
	 * each stage's state, and the SSE events held back (pooled on the
	 * first hold). */
	struct stage_run sr;
	struct timer stage_timer;
	struct buf held;
	_Alignas(16) unsigned char stage_state[STAGE_STATE_MAX];

	uint32_t tenant;		/* from admit_identify; else the socket's */
	bool authenticated;		/* id is set (authentication is on) */
	struct auth_identity id;

	struct guard_xstate guard;	/* guardrails (guardrails.c) */

	/* Last, not cleared for each request: the parser fills req (spans
	 * into c->in, valid until the request is handed upstream); claims
	 * and ad are written before they are read (exchange_new resets the
	 * admission's flags). */
	struct http_request req;
	struct jwt_claims claims;
	struct admission ad;
};

#define WORKER_STAGE_TIMERS	4

struct worker {
	struct gateway *gw;
	unsigned id;
	pthread_t thread;
	struct loop loop;
	int listen_fd;
	struct ioev accept_ev;
	bool accepting;
	/* The admin listener, on worker 0 only (-1 elsewhere or without an
	 * admin: section): its own socket, outside the reuseport group and
	 * the gateway's ports, so the kernel half neither steers, counts nor
	 * limits it, and its own small connection cap. */
	int admin_fd;
	struct ioev admin_accept_ev;
	bool admin_accepting;
	unsigned nadmin;
	int wake_fd;			/* eventfd: the main thread asks for a drain */
	uint64_t wake_val;
	struct ioev wake_ev;
	bool draining;
	bool drain_ended;		/* timeouts.drain is over: only the grace
					 * for the last bytes is left */
	uint64_t drain_deadline;
	unsigned nconns, max_conns;
	struct list_node conns;
	struct list_node starved;	/* conns waiting for a provided buffer */
	struct list_node free_exchanges;
	struct buf_pool bufs;
	struct buf scratch;		/* a response head being built, before it
					 * goes onto a connection's output chain */
	struct metrics *metrics;
	struct accesslog log;
	/* The snapshot this worker serves new requests from (a reference),
	 * and its pools of idle upstream connections, per backend of it. */
	struct snap *snap;
	struct upstream_pool *pools;
	struct list_node reload_waiters;	/* admin exchanges awaiting a reload */
	unsigned nupstreams;
	struct http_response resp_scratch;	/* parse space for upstream heads */
	struct quota_global_conn *qconn;	/* this worker's, nowait: never calls Redis */
	struct qasync *qasync;			/* its Redis thread (quota_async.h) */
	struct jwt_cache jwt_cache;		/* tokens this worker verified */
	struct guard_scratch guard;		/* guardrails scans of this worker */
	struct guard_metrics *guard_metrics;
	/* Per-tenant counts not yet added to the shared tenant state: every
	 * worker adding to the same cache line on every request (the anonymous
	 * tenant is everybody's) would make them contend, so each adds up its
	 * own and flushes once per loop iteration. */
	struct tenant_delta {
		uint64_t requests, tokens_in, tokens_out;
	} *tenant_delta;
	uint16_t *tenant_dirty;		/* ids with a nonzero delta */
	unsigned ndirty;
	struct timer_list t_keepalive, t_header, t_body, t_linger;
	struct timer_list t_up_connect, t_up_first_byte, t_up_idle;
	struct timer_list t_backoff;	/* exchanges waiting to retry, by deadline */
	/* Stage waits, one list per distinct wait length (worker_timer_list). */
	struct timer_list t_stage[WORKER_STAGE_TIMERS];
	unsigned nstage_timers;
	int exit_code;
};

/* worker.c */
int worker_init(struct worker *w, struct gateway *gw, unsigned id);
void worker_destroy(struct worker *w);
void *worker_main(void *arg);
void worker_request_drain(struct worker *w);
void worker_snap_release(struct worker *w, struct snap *s);	/* after snap_hold */
static inline void snap_hold(struct snap *s, const struct worker *w)
{
	s->w[w->id].users++;
}
void worker_count_tenant(struct worker *w, uint32_t tenant, const struct api_usage *u);
struct timer_list *worker_timer_list(struct worker *w, unsigned ms);

/* conn.c */
void conn_accept(struct worker *w, int fd, bool admin);
void conn_go_idle(struct conn *c);
void conn_arm_read(struct conn *c);
void conn_process_input(struct conn *c);
bool conn_over_input_limit(const struct conn *c);
void conn_written(struct conn *c);
void conn_maybe_free(struct conn *c);
void conn_close(struct conn *c);
void conn_flush(struct conn *c);
void conn_rearm_starved(struct worker *w);
void conn_exchange_done(struct conn *c);
void conn_drain(struct conn *c);
void conn_drain_timeout(struct conn *c);
int conn_reply(struct conn *c, int status, const char *content_type,
	       const char *body, size_t len);
int conn_reply_error(struct conn *c, int status, const char *type, const char *code,
		     const char *message);

/* conn_tls.c */
int conn_tls_start(struct conn *c);
void conn_tls_arm_read(struct conn *c);
void conn_tls_read(struct conn *c);
void conn_tls_control_record(struct conn *c);
void conn_tls_flush(struct conn *c);

/* exchange.c */
struct exchange *exchange_new(struct conn *c);
void exchange_free(struct exchange *x);
void exchange_free_pool(struct worker *w);
void exchange_note_request_line(struct exchange *x);
void exchange_start(struct exchange *x);
void exchange_proxy(struct exchange *x);		/* endpoints that go to a backend */
void exchange_reply_models(struct exchange *x);	/* GET /v1/models */
void exchange_abort(struct exchange *x, int status);
void exchange_drain_timeout(struct exchange *x);
void exchange_on_upstream_data(struct exchange *x);
void exchange_on_upstream_eof(struct exchange *x);
void exchange_on_upstream_error(struct exchange *x, enum upstream_error_kind kind,
				const char *why);
void exchange_on_client_sent(struct exchange *x);
void exchange_record(struct exchange *x);
void exchange_forward(struct exchange *x);	/* every stage said NEXT: send upstream */
void exchange_log(struct exchange *x);		/* access log line and metrics */
int exchange_build_request(struct exchange *x);

/* failover.c: the route of an exchange and falling back along its chain */
int failover_route(struct exchange *x);		/* 0, -ENOENT, -EHOSTUNREACH */
int failover_send(struct exchange *x);		/* build and send to x->arm */
void failover_end(struct exchange *x, bool ok);	/* the attempt is over */
bool failover_committed(const struct exchange *x);
const struct route_arm *failover_plan_retry(struct exchange *x);
bool failover_retry(struct exchange *x);	/* true: the exchange moved on */
bool failover_on_status(struct exchange *x, const struct http_response *resp);
void failover_hold(struct exchange *x);
void failover_on_backoff(struct timer *t);	/* a retry's backoff is over */
/* A whole non-streamed error body: true when it is a 400
 * context_length_exceeded and a context_fallback target takes it next. */
bool failover_on_body(struct exchange *x, const char *body, size_t len);
void failover_drop_hold(struct exchange *x);
int failover_on_event(struct exchange *x, const char *ev, size_t len);

/* admin.c */
int admin_authorize(struct exchange *x);		/* 0, or replied 401 */
void admin_reply_metrics(struct exchange *x);
void admin_reply_reload(struct exchange *x);
void admin_reload_answer(struct worker *w);		/* waiters whose reload is done */
void admin_reply_routes(struct exchange *x);		/* GET /admin/routes */
void admin_set_route(struct exchange *x);		/* POST /admin/routes/<route> */

/* admit.c */
int admit_identify(struct exchange *x);		/* head: 0, or replied 401/403 */
int admit_reserve(struct exchange *x);		/* body: 0, or replied 403/429/503 */
void admit_release(struct exchange *x);		/* the exchange is over */
void admit_cancel_wait(struct exchange *x);	/* a Redis wait abandoned */
void admit_global_done(struct exchange *x, enum quota_verdict v, const struct quota_hold *hold,
		       const struct quota_headers *qh);	/* the Redis thread answered */
int admit_append_headers(const struct exchange *x, struct buf *b, bool refused);
void admit_tick(void *gateway);			/* about once a second, off the workers */
void admit_apply_config(struct gateway *gw, const struct sluice_config *cfg);
void admit_clear_in_flight(struct gateway *gw);

/* upstream.c */
int upstream_pools_init(struct worker *w);
void upstream_pools_close_idle(struct worker *w);
void upstream_pools_destroy(struct worker *w);
int upstream_pools_switch(struct worker *w, struct snap *next);	/* w->snap -> next */
void upstream_pools_expire(struct worker *w);
/* Connect (or reuse) and send x->tx; responses arrive via
 * exchange_on_upstream_data / exchange_on_upstream_error. */
int upstream_send(struct exchange *x, bool allow_reuse);
/* The response is complete: keep the connection for the next request if
 * it can be reused, else close it.  Both let go of the exchange (up->x):
 * a send still reading its request keeps that buffer (x->tx moves to up). */
void upstream_release(struct upstream *up, bool reusable);
void upstream_close(struct upstream *up);
void upstream_read_more(struct upstream *up);

#endif
