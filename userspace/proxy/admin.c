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
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/clock.h"
#include "kern/kern.h"
#include "obs/quota_metrics.h"
#include "obs/tenant_metrics.h"
#include "proxy/gateway.h"
#include "proxy/proxy.h"

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
	if (metrics_render(gw->metrics, gw->nworkers, &body) ||
	    tenant_metrics_render(&body, kernel ? counters : NULL, gw->tenants, names, gw->stats) ||
	    quota_metrics_render(&body, &q)) {
		buf_free(&body);
		conn_reply_error(c, 500, "server_error", "internal_error", "out of memory");
		return;
	}
	conn_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf_head(&body),
		   buf_used(&body));
	buf_free(&body);
}

/*
 * What SIGHUP does, asked for over HTTP: the main thread, which owns the
 * config snapshots, takes the signal (the workers block it) and reloads.
 * The answer says the reload was asked for; how it went is in the log,
 * as for the signal.
 */
void admin_reply_reload(struct exchange *x)
{
	static const char body[] = "{\"status\":\"reload requested\"}";
	if (kill(getpid(), SIGHUP)) {
		conn_reply_error(x->c, 500, "server_error", "internal_error",
				 "the gateway could not ask for a reload");
		return;
	}
	conn_reply(x->c, 202, "application/json", body, sizeof(body) - 1);
}
