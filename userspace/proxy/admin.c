/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin listener's endpoints: who may call them (admin.token), the
 * Prometheus page, and reload.
 *
 * /metrics names every tenant with its connections, requests, tokens and
 * blocked flag, so it is served here and not on the API listener, where
 * any client could read it.  The probes (/healthz, /readyz) say nothing
 * about anyone and answer on both listeners without a token.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "api/json.h"
#include "core/clock.h"
#include "core/log.h"
#include "kern/kern.h"
#include "obs/quota_metrics.h"
#include "obs/tenant_metrics.h"
#include "proxy/gateway.h"
#include "proxy/proxy.h"

#define WORKERS_MAX_RENDER	256	/* config.c's most workers */

/* The token of the latest config snapshot, so a reload rotates it.  One
 * that drops the admin: section keeps the listener (that needs a restart)
 * and so keeps the token it was started with. */
static const char *admin_token(const struct gateway *gw)
{
	const struct sluice_config *latest = __atomic_load_n(&gw->auth.cfg, __ATOMIC_ACQUIRE);
	return latest->admin.enabled ? latest->admin.token : gw->cfg->admin.token;
}

/* Equal in time that depends on neither the token nor how much of it the
 * caller got right: the digests of both are compared, whole. */
static bool token_equal(const char *token, struct str presented)
{
	unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, strlen(token), want);
	SHA256((const unsigned char *)presented.p, presented.len, got);
	return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

/* The credential of "Authorization: Bearer <token>", or a NULL span. */
static struct str bearer_token(const struct http_request *req)
{
	const struct http_header *h = http_find_header(req->headers, req->nheaders,
						       "authorization");
	if (!h || h->value.len <= 7 || strncasecmp(h->value.p, "Bearer ", 7) != 0)
		return STR_NULL;
	return (struct str){ h->value.p + 7, h->value.len - 7 };
}

int admin_authorize(struct exchange *x)
{
	struct conn *c = x->c;
	const char *token = admin_token(c->w->gw);
	if (!token)
		return 0;
	struct str got = bearer_token(&x->req);
	if (got.p && token_equal(token, got))
		return 0;
	/* Its body, unread, would be taken for the next request. */
	if (x->req.content_length > 0 || x->req.chunked)
		c->close_after = true;
	if (!got.p)
		conn_reply_error(c, 401, "invalid_request_error", "missing_admin_token",
				 "The admin listener needs the admin token "
				 "(Authorization: Bearer <admin.token>).");
	else
		conn_reply_error(c, 401, "invalid_request_error", "invalid_admin_token",
				 "Incorrect admin token provided.");
	return -EACCES;
}

/* The routes with every worker's counters: JSON, or the metric series. */
/* The snapshot is the admin request's (worker 0's): a worker that has not
 * moved to it yet shows the state it carries over from then on. */
static int render_routes(struct gateway *gw, const struct snap *s, struct buf *out, bool json)
{
	struct route_cursor **cursors = calloc(gw->nworkers, sizeof(*cursors));
	if (!cursors)
		return -ENOMEM;
	for (unsigned i = 0; i < gw->nworkers; i++)
		cursors[i] = &s->w[i].cursor;
	uint64_t now = gw->workers[0].loop.now;
	int err = json ? route_render_json(&s->routes, cursors, gw->nworkers, now, out)
		       : route_render_metrics(&s->routes, cursors, gw->nworkers, now, out);
	if (!err && !json)
		err = route_render_backend_metrics(&s->routes, cursors, gw->nworkers, now, out);
	if (!err && !json)
		err = health_render_metrics(&s->health, out);
	free(cursors);
	return err;
}

void admin_reply_routes(struct exchange *x)
{
	struct conn *c = x->c;
	struct buf body = { 0 };
	if (render_routes(c->w->gw, x->snap, &body, true))
		conn_reply_error(c, 500, "server_error", "internal_error", "out of memory");
	else
		conn_reply(c, 200, "application/json", buf_head(&body), buf_used(&body));
	buf_free(&body);
}

/* Every member of "weights" names an arm of the route and a weight in
 * 0..1000000; all are checked before any is applied. */
static const char *check_weights(const struct route_table *rt, const struct route_def *d,
				 const struct json_val *weights)
{
	struct json_iter it;
	struct str key;
	struct json_val v;
	int64_t w;
	if (weights->type != JSON_OBJECT)
		return "'weights' must be an object of backend name to weight";
	json_iter_init(&it, weights);
	while (json_iter_next(&it, &key, &v)) {
		if (!route_arm_by_backend(rt, d, key.p, key.len))
			return "a backend in 'weights' is not an arm of this route";
		if (json_int64(&v, &w) || w < 0 || w > 1000000)
			return "a weight must be an integer between 0 and 1000000";
	}
	return NULL;
}

/*
 * POST /admin/routes/<route> {"weights": {"nim-b": 20, "vllm-a": 0}}: set
 * arms' live weights (0 drains an arm) on every worker at once.  They hold
 * until the next reload (which applies the file's), restart or
 * `sluicectl route set`; the config's weights are
 * still shown as configured_weight.
 */
void admin_set_route(struct exchange *x)
{
	struct conn *c = x->c;
	const struct route_table *rt = &x->snap->routes;
	struct str name = { x->req.path.p + 14, x->req.path.len - 14 };
	const struct route_def *d = route_by_name(rt, name.p, name.len);
	if (!d) {
		conn_reply_error(c, 404, "invalid_request_error", "route_not_found",
				 "no route of that name");
		return;
	}
	const char *body = buf_head(&c->in) + x->head_len;
	struct json_val root, weights;
	size_t off;
	const char *msg, *why = NULL;
	if (json_parse(body, x->body_len, &root, &off, &msg) || root.type != JSON_OBJECT ||
	    json_get(&root, "weights", &weights))
		why = "the body must be {\"weights\": {\"BACKEND\": WEIGHT, ...}}";
	else
		why = check_weights(rt, d, &weights);
	if (why) {
		conn_reply_error(c, 400, "invalid_request_error", "invalid_route_change", why);
		return;
	}
	struct json_iter it;
	struct str key;
	struct json_val v;
	int64_t w;
	json_iter_init(&it, &weights);
	while (json_iter_next(&it, &key, &v)) {
		struct route_arm *a = route_arm_by_backend(rt, d, key.p, key.len);
		json_int64(&v, &w);
		__atomic_store_n(&a->weight, (unsigned)w, __ATOMIC_RELAXED);
		log_info("admin: route %s: %.*s weight %u", d->name, (int)key.len, key.p,
			 (unsigned)w);
	}
	admin_reply_routes(x);
}

void admin_reply_metrics(struct exchange *x)
{
	struct conn *c = x->c;
	struct gateway *gw = c->w->gw;
	struct buf body = { 0 };
	uint64_t counters[SLUICE_C_MAX];
	const char *names[SLUICE_MAX_TENANTS];
	gateway_tenant_names(gw, names);
	bool kernel = gw->kern && kern_counters(gw->kern, counters) == 0;
	struct quota_metrics_input q = {
		.tenants = gw->tenants, .names = names, .now_ms = clock_real_ns() / 1000000u,
		.global = gw->global != NULL,
		.key_reloads = __atomic_load_n(&gw->auth.key_reloads, __ATOMIC_RELAXED),
		.key_reload_errors = __atomic_load_n(&gw->auth.key_reload_errors, __ATOMIC_RELAXED),
		.jwks_refreshes = __atomic_load_n(&gw->auth.jwks_refreshes, __ATOMIC_RELAXED),
		.jwks_refresh_errors = __atomic_load_n(&gw->auth.jwks_refresh_errors,
						       __ATOMIC_RELAXED),
	};
	for (unsigned i = 0; i < gw->nworkers; i++) {
		q.jwt_cache_hits += __atomic_load_n(&gw->workers[i].jwt_cache.hits, __ATOMIC_RELAXED);
		q.jwt_cache_misses += __atomic_load_n(&gw->workers[i].jwt_cache.misses,
						      __ATOMIC_RELAXED);
	}
	if (gw->global) {
		struct quota_global_stats gs;
		quota_global_get_stats(gw->global, &gs);
		q.redis_up = gs.up;
		q.redis_calls = gs.calls;
		q.redis_errors = gs.errors;
		q.fail_open = gs.fail_open;
		q.fail_closed = gs.fail_closed;
	}
	struct guard_metrics *gm[WORKERS_MAX_RENDER];
	size_t ngm = 0;
	for (unsigned i = 0; i < gw->nworkers && ngm < WORKERS_MAX_RENDER; i++)
		if (gw->workers[i].guard_metrics)
			gm[ngm++] = gw->workers[i].guard_metrics;
	if (metrics_render(gw->metrics, gw->nworkers, &body) ||
	    guard_metrics_render(&body, gm, ngm, gw->cfg) ||
	    tenant_metrics_render(&body, kernel ? counters : NULL, gw->tenants, names, gw->stats) ||
	    quota_metrics_render(&body, &q) || render_routes(gw, x->snap, &body, false)) {
		buf_free(&body);
		conn_reply_error(c, 500, "server_error", "internal_error", "out of memory");
		return;
	}
	conn_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf_head(&body),
		   buf_used(&body));
	buf_free(&body);
}

/* "wait=1" among the query's parameters. */
static bool wants_wait(const struct http_request *req)
{
	struct str q = { req->target.p + req->path.len, req->target.len - req->path.len };
	if (!q.len)
		return false;
	q.p++, q.len--;				/* '?' */
	while (q.len) {
		const char *amp = memchr(q.p, '&', q.len);
		size_t n = amp ? (size_t)(amp - q.p) : q.len;
		if (n == 6 && memcmp(q.p, "wait=1", 6) == 0)
			return true;
		q.p += n, q.len -= n;
		if (q.len)
			q.p++, q.len--;
	}
	return false;
}

/*
 * What SIGHUP does, asked for over HTTP: the main thread, which builds the
 * config snapshots, takes the signal (the workers block it) and reloads.
 * Without ?wait=1 the answer (202) says the reload was asked for.  With
 * it, the exchange waits on worker 0's list, without blocking the worker,
 * until a reload that began after the request has finished; then 200 with
 * what changed, or 400 with the file's error (file:line: key: reason).
 */
void admin_reply_reload(struct exchange *x)
{
	static const char body[] = "{\"status\":\"reload requested\"}";
	struct worker *w = x->c->w;
	struct gateway *gw = w->gw;
	bool wait = wants_wait(&x->req);
	if (wait)
		x->reload_gen = __atomic_add_fetch(&gw->reload_asked, 1, __ATOMIC_ACQ_REL);
	if (kill(getpid(), SIGHUP)) {
		conn_reply_error(x->c, 500, "server_error", "internal_error",
				 "the gateway could not ask for a reload");
		return;
	}
	if (!wait) {
		conn_reply(x->c, 202, "application/json", body, sizeof(body) - 1);
		return;
	}
	list_add_tail(&w->reload_waiters, &x->reload_link);
}

static void reload_reply(struct exchange *x, bool ok, const char *text)
{
	char msg[1200], out[1400];
	if (!ok) {
		snprintf(msg, sizeof(msg), "reload refused, running config kept: %s", text);
		conn_reply_error(x->c, 400, "invalid_request_error", "invalid_config", msg);
		return;
	}
	int n = json_escape(msg, sizeof(msg), text, strlen(text));
	if (n < 0)
		n = json_escape(msg, sizeof(msg), "reloaded", 8);
	int len = snprintf(out, sizeof(out), "{\"status\":\"reloaded\",\"detail\":%.*s}", n, msg);
	conn_reply(x->c, 200, "application/json", out, (size_t)len);
}

/* Each loop iteration of worker 0 while someone waits: answer those whose
 * reload is done. */
void admin_reload_answer(struct worker *w)
{
	struct gateway *gw = w->gw;
	uint64_t done = __atomic_load_n(&gw->reload_done, __ATOMIC_ACQUIRE);
	struct list_node *n, *next;
	for (n = w->reload_waiters.next; n != &w->reload_waiters; n = next) {
		next = n->next;
		struct exchange *x = container_of(n, struct exchange, reload_link);
		if (x->reload_gen > done)
			continue;
		char text[sizeof(gw->reload_text)];
		pthread_mutex_lock(&gw->reload_lock);
		bool ok = gw->reload_ok;
		memcpy(text, gw->reload_text, sizeof(text));
		pthread_mutex_unlock(&gw->reload_lock);
		list_del(&x->reload_link);
		reload_reply(x, ok, text);
	}
}
