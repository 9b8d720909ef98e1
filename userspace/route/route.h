/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model -> target routing.
 *
 * A route table is built from each config snapshot (at start-up and every
 * reload) and is read-only for the workers, so all of them share it.  Every name clients may send is a
 * route: the explicit ones of `routes:` (aliases with weighted arms, a
 * fallback chain, sticky cohorts, matches) and, for the names that only
 * `backends[].models` lists, an implicit route whose arms are those
 * backends with weight 1 (round robin, as before routes existed).
 *
 * Everything that changes per request -- weighted round-robin positions,
 * requests in flight, latency EWMAs, circuit breakers, retry budgets --
 * lives in a per-worker struct route_cursor: no lock and no shared cache
 * line on the request path.  The one shared writable field is an arm's
 * live weight, which the admin endpoint sets with an atomic store and the
 * workers read with a relaxed load.
 */
#ifndef SLUICE_ROUTE_ROUTE_H
#define SLUICE_ROUTE_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/str.h"
#include "http/http1.h"
#include "obs/metrics.h"
#include "route/health.h"

/* One target: an arm of a route, or a link of its fallback chain. */
struct route_arm {
	unsigned backend;		/* index in config.backends */
	unsigned id;			/* index of its state in a route_cursor */
	unsigned pos;			/* position in its route (targets, then fallback) */
	bool fallback;			/* a fallback link, not an arm */
	bool context_fallback;		/* also for a context_length_exceeded */
	const char *model;		/* asked of the backend; NULL: the client's */
	char *model_json;		/* model as a JSON string literal (owned), for
					 * the body edit; NULL when model is */
	size_t model_json_len;
	unsigned weight;		/* live: atomic, the admin endpoint sets it */
	unsigned cfg_weight;		/* as configured */
};

struct route_def {
	const char *name;		/* the model clients send */
	size_t len;
	unsigned index;
	bool implicit;			/* from backends[].models */
	const struct route_cfg *cfg;	/* NULL for an implicit route */
	struct route_arm *arms;		/* weighted arms */
	unsigned narms;
	struct route_arm *fallback;	/* tried in order after the chosen arm */
	unsigned nfallback;
	int next;			/* the next route of the same name (match), or -1 */
};

struct route_entry {
	const char *model;		/* exact name (points into the config) */
	size_t len;
	uint32_t hash;
	unsigned route;			/* its first route in table->defs */
};

struct route_table {
	const struct sluice_config *cfg;	/* the snapshot it was built from */
	struct route_entry *slots;	/* open addressing, power of two */
	unsigned nslots;
	unsigned nentries;
	struct route_def *defs;
	unsigned ndefs;
	struct route_arm *arms;		/* every arm and fallback link, by id */
	unsigned narms;
	int wild;			/* the "*" route, or -1 */
};

/* What a canary is compared with its baseline by: the exchanges that
 * ended on an arm (their last attempt went there).  Histogram buckets are
 * not cumulative (obs/metrics.h's bounds); single writer, relaxed. */
struct route_arm_stats {
	uint64_t responses;		/* exchanges that ended here */
	uint64_t errors;		/* of those, the client got an error */
	uint64_t lat[METRICS_BUCKETS], lat_sum_ns;	/* request start to end */
	uint64_t ttft[METRICS_BUCKETS], ttft_sum_ns;	/* start to first byte out */
	uint64_t tokens_in, tokens_out;
};

/* How an exchange ended on its arm. */
struct route_outcome {
	uint64_t latency_ns;
	uint64_t ttft_ns;		/* 0: no byte went to the client */
	int64_t tokens_in, tokens_out;	/* <0: not reported */
	bool error;
};

/* Breaker of one arm, per worker (passive outlier detection). */
enum route_breaker { ROUTE_BREAKER_CLOSED = 0, ROUTE_BREAKER_OPEN, ROUTE_BREAKER_HALF_OPEN };

struct route_arm_state {
	int64_t current;		/* smooth weighted round robin */
	unsigned inflight;
	unsigned fails;			/* failures in a row */
	enum route_breaker breaker;
	bool probing;			/* half-open: the one probe is out */
	uint64_t open_until;		/* breaker open: ns (loop clock) */
	uint64_t busy_until;		/* a 429's Retry-After */
	uint64_t ewma_ns;		/* peak EWMA of latency */
	/* Counters for /metrics and /admin/routes: single writer (this
	 * worker), read by worker 0 with relaxed atomics. */
	uint64_t requests, failures, fallbacks_from;
	struct route_arm_stats st;
};

/* Breaker of one backend, per worker, whatever route reaches it: failures
 * in a row, or the error rate of a fixed window (backends[].breaker). */
struct route_backend_state {
	unsigned fails;
	enum route_breaker breaker;
	bool probing;
	uint64_t open_until;
	uint64_t win_start;		/* ns: the window began */
	uint32_t win_requests, win_errors;
	uint64_t opened;		/* times it opened: counter for /metrics */
};

/* Retry budget of one route, per worker: a ten-second window of one
 * second buckets of requests and retries. */
#define ROUTE_BUDGET_SECONDS	10
struct route_budget {
	uint64_t second;		/* the bucket `second % 10` is for */
	uint32_t requests[ROUTE_BUDGET_SECONDS];
	uint32_t retries[ROUTE_BUDGET_SECONDS];
	unsigned rr;			/* tie-break rotation (least_inflight) */
	uint64_t exhausted;		/* retries refused: counter for /metrics */
};

struct route_cursor {
	struct route_arm_state *arms;	/* by arm id */
	unsigned narms;
	struct route_budget *budgets;	/* by route index */
	unsigned nroutes;
	struct route_backend_state *backends;	/* by backend index */
	unsigned nbackends;
	const struct sluice_config *cfg;	/* of the table: backends' settings */
	const struct health *health;	/* active checks, or NULL */
	uint64_t rng;			/* backoff jitter (xorshift), per worker */
};

/* What a request offers to matches and sticky cohorts. */
struct route_ctx {
	struct str model;
	const struct http_header *headers;
	size_t nheaders;
	struct str key_id;		/* API key id, when authenticated by one */
	const char *tenant;		/* tenant name, or NULL */
};

int route_table_build(struct route_table *rt, const struct sluice_config *cfg);
void route_table_free(struct route_table *rt);

int route_cursor_init(struct route_cursor *cur, const struct route_table *rt);
void route_cursor_free(struct route_cursor *cur);
/* After a reload: give dst (new, zeroed, for table dt) the state src kept
 * for table st, for every arm that is the same target (same route name and
 * place, backend name, model); the rest start fresh.  Requests in flight
 * are not carried: they end on src. */
void route_cursor_carry(struct route_cursor *dst, const struct route_table *dt,
			const struct route_cursor *src, const struct route_table *st);

/* The first route for ctx->model whose match accepts ctx (or the "*"
 * route), or NULL when nobody serves the model. */
const struct route_def *route_find(const struct route_table *rt, const struct route_ctx *ctx);

/* Choose an arm of def for this request: sticky by rendezvous hashing when
 * the route says so, else by its balance, among arms with weight > 0 whose
 * breaker lets a request through and that are not busy after a 429.  When
 * none is, the weighted arms regardless of health (so a route never answers
 * "no target" while its backends might have recovered).  NULL when every
 * arm has weight 0. */
const struct route_arm *route_choose(const struct route_table *rt, struct route_cursor *cur,
				     const struct route_def *def, const struct route_ctx *ctx,
				     uint64_t now);

/* The next target after `prev` in def's chain (the chosen arm, then the
 * fallback links in order), skipping those whose breaker is open or that
 * are busy; NULL at the end of the chain. */
const struct route_arm *route_next(struct route_cursor *cur, const struct route_def *def,
				   const struct route_arm *prev, uint64_t now);

/* The next fallback link after `prev` marked context_fallback (a larger
 * window) and available; NULL when none is. */
const struct route_arm *route_next_context(struct route_cursor *cur, const struct route_def *def,
					   const struct route_arm *prev, uint64_t now);

/* Whether a request may go to arm now (breaker closed, or half-open with
 * no probe out; not busy). */
bool route_arm_available(const struct route_cursor *cur, const struct route_def *def,
			 const struct route_arm *arm, uint64_t now);

/* An attempt on arm starts / ends.  ok: the backend answered usefully
 * (not a connect error, timeout, reset, 5xx or 429). */
void route_attempt_start(struct route_cursor *cur, const struct route_arm *arm);
void route_attempt_end(struct route_cursor *cur, const struct route_def *def,
		       const struct route_arm *arm, bool ok, uint64_t latency_ns, uint64_t now);
/* The exchange ended with arm as its last target: per-arm statistics. */
void route_exchange_done(struct route_cursor *cur, const struct route_arm *arm,
			 const struct route_outcome *o);
/* A 429 with Retry-After: leave arm alone until `until`. */
void route_arm_busy(struct route_cursor *cur, const struct route_arm *arm, uint64_t until);

/* The retry budget: count a request; and take one retry (a fallback),
 * true when the budget has room: retries in the window stay within
 * retry_percent of requests, plus retry_min per second. */
void route_budget_request(struct route_cursor *cur, const struct route_def *def, uint64_t now);
bool route_budget_take_retry(struct route_cursor *cur, const struct route_def *def, uint64_t now);

/* How long to wait before the n-th retry (n >= 1) of one target in an
 * exchange: exponential from retry.backoff_base, capped at backoff_max,
 * with "equal jitter" (a random point in the upper half) so that retries
 * of many requests do not arrive together.  0 when backoff is off. */
uint64_t route_backoff_ns(struct route_cursor *cur, const struct route_def *def, unsigned n);

/* The arm of def named backend (first match), for the admin endpoint. */
struct route_arm *route_arm_by_backend(const struct route_table *rt, const struct route_def *def,
				       const char *backend, size_t len);
const struct route_def *route_by_name(const struct route_table *rt, const char *name, size_t len);

/* route_view.c: what operators see, summed over the workers' cursors
 * (relaxed reads of single-writer counters).  Explicit routes only in the
 * metrics; implicit ones too in the JSON ("implicit": true). */
int route_render_json(const struct route_table *rt, struct route_cursor *const *cursors,
		      unsigned n, uint64_t now, struct buf *out);
int route_render_metrics(const struct route_table *rt, struct route_cursor *const *cursors,
			 unsigned n, uint64_t now, struct buf *out);
/* sluice_backend_breaker_open / _opens_total, per backend. */
int route_render_backend_metrics(const struct route_table *rt,
				 struct route_cursor *const *cursors, unsigned n, uint64_t now,
				 struct buf *out);
/* /readyz: true when every route has a target that may take requests
 * (weight > 0 or a fallback link; backend up by its checks; its backend
 * breaker not open on every worker).  Otherwise the first route without
 * one is named in *unready. */
bool route_ready(const struct route_table *rt, struct route_cursor *const *cursors, unsigned n,
		 uint64_t now, const char **unready);

/* Backend index for model (the first matching route, no request context),
 * or -1: what tests and simple callers use. */
int route_pick(const struct route_table *rt, struct route_cursor *cur, struct str model);

/* The OpenAI list body of GET /v1/models: every route name and every model
 * named in the config (not "*"), once, routes first.  0 or -ENOMEM. */
int route_models_body(const struct sluice_config *cfg, struct buf *out);
/* The same list with only the models `allowed` accepts (a tenant's). */
int route_models_body_for(const struct sluice_config *cfg, struct buf *out,
			  bool (*allowed)(const char *model, void *arg), void *arg);

#endif
