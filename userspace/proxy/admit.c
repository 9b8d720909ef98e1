/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admission of one API request: who it is (auth/), whether it may use the
 * model, and whether its tenant, API key and tenant+model scopes have room
 * for it (quota/), locally and, in global mode, across the nodes sharing
 * Redis.  Also the x-ratelimit-* headers every admitted response carries,
 * and the reconciliation when the response is over.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/sat.h"
#include "kern/kern.h"
#include "kern/learned.h"
#include "proxy/proxy.h"
#include "proxy/quota_async.h"

static bool limits_set(const struct sluice_limits *l)
{
	return l->requests_per_minute || l->tokens_per_minute || l->input_tokens_per_minute ||
	       l->output_tokens_per_minute || l->tokens_per_day || l->tokens_per_month ||
	       l->concurrent;
}

/* Slot limits follow the config; written only when they differ, so the
 * shared line is not dirtied on every request. */
static void sync_limits(struct sluice_limits *dst, const struct sluice_limits *src)
{
	if (memcmp(dst, src, sizeof(*dst)) != 0)
		memcpy(dst, src, sizeof(*dst));
}

/* ---- head time: identity ---- */

/*
 * Tell the kernel whose credentials this source showed (or that it showed
 * none), so XDP can tell an address a blocked tenant uses alone from one
 * it shares.  Nothing is admitted because of it.  Once per connection
 * and credential: a keep-alive connection costs no syscall per request.
 */
static void learn_source(struct conn *c, uint32_t seen)
{
	struct gateway *gw = c->w->gw;
	if (!gw->kern || (c->learned && c->learned_as == seen))
		return;
	c->learned = true;
	c->learned_as = seen;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0)
		kern_learn_source(gw->kern, &ss, seen);
}

int admit_identify(struct exchange *x)
{
	struct conn *c = x->c;
	struct gateway *gw = c->w->gw;
	struct auth_refusal why;
	int64_t now_s = (int64_t)(clock_real_ns() / 1000000000u);
	if (auth_identify(&gw->auth, &x->req, c->tenant, c->client_cert, now_s, &c->w->jwt_cache,
			  &x->claims, &x->id, &why)) {
		/* The body of a refused request is not read: close after. */
		if (x->req.content_length > 0 || x->req.chunked)
			c->close_after = true;
		const char *type = why.status == 403 ? "permission_error"
				 : why.status >= 500 ? "server_error" : "invalid_request_error";
		conn_reply_error(c, why.status, type, why.code, why.message);
		return -EACCES;
	}
	x->tenant = x->id.tenant;
	x->authenticated = auth_enabled(x->cfg);
	if (x->id.method == AUTH_API_KEY || x->id.method == AUTH_JWT ||
	    x->id.method == AUTH_CERT)
		learn_source(c, x->id.tenant);
	else
		learn_source(c, LEARNED_NO_CREDENTIAL);
	return 0;
}

/* ---- body time: model and quota ---- */

/* What the request may use: the prompt from its size, the completion
 * as the body asks for it (saturating: the client picks the numbers),
 * capped where the quota counts it. */
static void estimate(const struct exchange *x, const struct quota_cfg *q, struct quota_ask *ask)
{
	ask->input_tokens = (x->body_len + q->bytes_per_token - 1) / q->bytes_per_token;
	ask->output_tokens = x->ep == API_EMBEDDINGS ? 0
			     : min_u64(api_output_tokens(&x->api, q->default_max_tokens),
				       QUOTA_TOKENS_MAX);
}

/* The scopes this request falls in: tenant, API key, tenant+model, each
 * only when it has a limit.  -ENOSPC when a limit applies but no slot can
 * hold its usage (the tenant's max_scopes_per_tenant, or the table, is
 * full): the request is refused, never let through unlimited. */
static int collect_scopes(struct exchange *x, const struct sluice_config *cfg)
{
	struct gateway *gw = x->c->w->gw;
	struct admission *ad = &x->ad;
	const struct tenant_cfg *t = config_tenant_by_id(cfg, x->tenant);
	const char *tname = t ? t->name : "anonymous";
	struct sluice_tenant_state *st = &gw->tenants[x->tenant];
	bool named = gw->global != NULL;	/* Redis needs a scope's name */
	ad->nscopes = 0;
	if (limits_set(&st->limits)) {
		ad->scopes[ad->nscopes] = (struct quota_scope){ &st->limits, &st->usage };
		if (named)
			snprintf(ad->names[ad->nscopes], sizeof(ad->names[0]), "t:%s", tname);
		ad->nscopes++;
	}
	if (!t)
		return 0;
	uint32_t *held = &st->quota_scopes, max = cfg->quota.max_scopes_per_tenant;
	if (x->id.method == AUTH_API_KEY && t->has_key_limits && limits_set(&t->key_limits)) {
		struct sluice_quota_slot *s = quota_slot_get(&gw->qslots, SLUICE_QUOTA_KEY, x->tenant,
							     x->id.key_id, strlen(x->id.key_id),
							     held, max);
		if (!s)
			return -ENOSPC;
		sync_limits(&s->limits, &t->key_limits);
		ad->scopes[ad->nscopes] = (struct quota_scope){ &s->limits, &s->usage };
		if (named)
			snprintf(ad->names[ad->nscopes], sizeof(ad->names[0]), "k:%s", x->id.key_id);
		ad->nscopes++;
	}
	const struct model_limits_cfg *ml = config_model_limits(t, x->api.model.p, x->api.model.len);
	if (ml && limits_set(&ml->limits)) {
		struct sluice_quota_slot *s = quota_slot_get(&gw->qslots, SLUICE_QUOTA_MODEL,
							     x->tenant, x->api.model.p,
							     x->api.model.len, held, max);
		if (!s)
			return -ENOSPC;
		sync_limits(&s->limits, &ml->limits);
		ad->scopes[ad->nscopes] = (struct quota_scope){ &s->limits, &s->usage };
		/* The slot's name: the model, or the hash that stands for a
		 * long one, so long names do not meet in one Redis key. */
		if (named)
			snprintf(ad->names[ad->nscopes], sizeof(ad->names[0]), "m:%s:%s", tname,
				 s->name);
		ad->nscopes++;
	}
	return 0;
}

static void global_scopes(const struct admission *ad, struct quota_global_scope *gs)
{
	for (size_t i = 0; i < ad->nscopes; i++)
		gs[i] = (struct quota_global_scope){ ad->names[i], ad->scopes[i].limits };
}

/* Was it the tenant's own budget that refused (rather than a key's or a
 * model's)?  Its day or month can no longer hold this request. */
static bool quota_refused_by_tenant(const struct exchange *x, enum quota_verdict v,
				    const struct quota_ask *a, uint64_t now_ms)
{
	const struct sluice_tenant_state *st = &x->c->w->gw->tenants[x->tenant];
	uint64_t ask = sat_add_u64(a->input_tokens, a->output_tokens);
	if (v == QUOTA_DAY)
		return st->limits.tokens_per_day &&
		       sat_add_u64(st->usage.day != quota_day(now_ms) ? 0 : st->usage.tokens_day,
				   ask) > st->limits.tokens_per_day;
	return st->limits.tokens_per_month &&
	       sat_add_u64(st->usage.month != quota_month(now_ms) ? 0 : st->usage.tokens_month,
			   ask) > st->limits.tokens_per_month;
}

/*
 * A tenant refused for its day or month budget gets no new connections
 * (XDP drops their SYNs) until that window ends: the reason and window are
 * written before the flag the kernel reads.
 */
static void block_tenant(struct gateway *gw, uint32_t tenant, enum quota_verdict v,
			 uint64_t now_ms)
{
	struct sluice_tenant_state *st = &gw->tenants[tenant];
	if (__atomic_load_n(&st->blocked, __ATOMIC_ACQUIRE))
		return;
	bool day = v == QUOTA_DAY;
	__atomic_store_n(&st->blocked_by, day ? SLUICE_BLOCK_DAY : SLUICE_BLOCK_MONTH,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&st->blocked_window, day ? quota_day(now_ms) : quota_month(now_ms),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&st->blocked, 1, __ATOMIC_RELEASE);
	log_warn("tenant %s: %s token budget spent; new connections refused until it resets",
		 gw->tenant_names[tenant] ? gw->tenant_names[tenant] : "?", day ? "daily" : "monthly");
}

static void reply_quota_refusal(struct exchange *x, enum quota_verdict v)
{
	char msg[400];
	const char *type = "rate_limit_error", *code = "rate_limit_exceeded";
	int status = 429;
	const char *name = x->c->w->gw->tenant_names[x->tenant];
	switch (v) {
	case QUOTA_DAY:
	case QUOTA_MONTH:
		type = code = "insufficient_quota";
		snprintf(msg, sizeof(msg), "You exceeded your current quota: the %s token budget "
			 "of tenant %s is spent.", v == QUOTA_DAY ? "daily" : "monthly",
			 name ? name : "?");
		break;
	case QUOTA_TOO_LARGE:
		code = "request_too_large";
		snprintf(msg, sizeof(msg), "Request too large for tenant %s: it may use more "
			 "tokens than a limit allows at once. Lower max_tokens or the prompt.",
			 name ? name : "?");
		break;
	case QUOTA_UNAVAILABLE:
		status = 503;
		type = "server_error";
		code = "quota_unavailable";
		snprintf(msg, sizeof(msg), "The gateway cannot check global quotas right now; "
			 "try again later.");
		break;
	default:
		snprintf(msg, sizeof(msg), "Rate limit reached for tenant %s on %s: retry after "
			 "%llu s.", name ? name : "?", quota_verdict_name(v),
			 (unsigned long long)x->ad.qh.retry_after_s);
		break;
	}
	conn_reply_error(x->c, status, type, code, msg);
}

/* The verdict is final: admitted, or refused with its answer.  0 or the
 * refusal's -errno. */
static int admit_settle(struct exchange *x, enum quota_verdict v, const struct quota_ask *ask,
			uint64_t now_ms)
{
	struct gateway *gw = x->c->w->gw;
	struct admission *ad = &x->ad;
	ad->has_qh = true;
	if (v == QUOTA_OK) {
		ad->reserved = true;
		return 0;
	}
	/* Only the tenant's own budget blocks its connections, not a key's
	 * or a model's. */
	if ((v == QUOTA_DAY || v == QUOTA_MONTH) && ad->nscopes &&
	    ad->scopes[0].usage == &gw->tenants[x->tenant].usage &&
	    quota_refused_by_tenant(x, v, ask, now_ms))
		block_tenant(gw, x->tenant, v, now_ms);
	reply_quota_refusal(x, v);
	return -EDQUOT;
}

int admit_reserve(struct exchange *x)
{
	struct worker *w = x->c->w;
	struct gateway *gw = w->gw;
	const struct sluice_config *cfg = x->cfg;
	struct admission *ad = &x->ad;
	if (!auth_model_allowed(cfg, &x->id, &x->claims, x->api.model.p, x->api.model.len)) {
		char msg[400];
		snprintf(msg, sizeof(msg), "You are not allowed to use the model `%.*s`.",
			 (int)x->api.model.len, x->api.model.p);
		conn_reply_error(x->c, 403, "permission_error", "model_not_allowed", msg);
		return -EACCES;
	}
	if (collect_scopes(x, cfg)) {
		char msg[400];
		snprintf(msg, sizeof(msg), "Tenant %s has too many distinct API keys and models "
			 "with limits in use; retry in a few minutes.",
			 gw->tenant_names[x->tenant] ? gw->tenant_names[x->tenant] : "?");
		conn_reply_error(x->c, 429, "rate_limit_error", "quota_scopes_exhausted", msg);
		return -EDQUOT;
	}
	if (!ad->nscopes)
		return 0;
	uint64_t now_ms = clock_real_ns() / 1000000u;
	struct quota_ask ask;
	estimate(x, &cfg->quota, &ask);
	enum quota_verdict v = quota_reserve(ad->scopes, ad->nscopes, &ask, now_ms, &ad->hold,
					     &ad->qh);
	if (v == QUOTA_OK && gw->global) {
		/* Local limits first (cheap, and this node's share), then the
		 * global ones; their headers merge into the local values. */
		struct quota_global_scope gs[ADMIT_MAX_SCOPES];
		global_scopes(ad, gs);
		v = quota_global_reserve(w->qconn, gs, ad->nscopes, &ask, now_ms, &ad->ghold,
					 &ad->qh);
		/* Redis must be asked: the worker's Redis thread does, and the
		 * stage waits (the local reservation is kept meanwhile).  With
		 * every job slot taken, Redis counts as unreachable. */
		if (v == QUOTA_PENDING) {
			ad->ask = ask;
			if (qasync_submit(w->qasync, x, gs, ad->nscopes, &ask, now_ms, &ad->job) == 0) {
				ad->pending = true;
				return -EINPROGRESS;
			}
			v = gw->cfg->quota.fail_open ? QUOTA_OK : QUOTA_UNAVAILABLE;
			if (v == QUOTA_OK)	/* admitted on the local limits only */
				return admit_settle(x, v, &ask, now_ms);
		}
		if (v == QUOTA_OK)
			ad->global = true;
		else	/* as if the local reservation never happened */
			quota_release(ad->scopes, ad->nscopes, &ad->hold, 0, 0, now_ms);
	}
	return admit_settle(x, v, &ask, now_ms);
}

void admit_global_done(struct exchange *x, enum quota_verdict v, const struct quota_hold *hold,
		       const struct quota_headers *qh)
{
	struct admission *ad = &x->ad;
	uint64_t now_ms = clock_real_ns() / 1000000u;
	ad->pending = false;
	ad->qh = *qh;
	if (v == QUOTA_OK) {
		ad->global = true;
		ad->ghold = *hold;
	} else {
		quota_release(ad->scopes, ad->nscopes, &ad->hold, 0, 0, now_ms);
	}
	stage_resume(x, admit_settle(x, v, &ad->ask, now_ms) ? STAGE_DONE : STAGE_NEXT);
}

/* What the request used: the reported usage, or its reservation when a
 * successful response reported none, or nothing when no backend answered
 * it with success. */
static void used_tokens(const struct exchange *x, uint64_t *in, uint64_t *out)
{
	const struct quota_ask *ask = &x->ad.hold.ask;
	bool answered = x->head_parsed && x->status >= 200 && x->status < 300;
	*in = *out = 0;
	if (!answered)
		return;
	*in = x->usage.prompt_tokens >= 0 ? (uint64_t)x->usage.prompt_tokens : ask->input_tokens;
	*out = x->usage.completion_tokens >= 0 ? (uint64_t)x->usage.completion_tokens
					       : ask->output_tokens;
}

void admit_release(struct exchange *x)
{
	struct admission *ad = &x->ad;
	if (!ad->reserved)
		return;
	ad->reserved = false;
	struct worker *w = x->c->w;
	struct gateway *gw = w->gw;
	uint64_t now_ms = clock_real_ns() / 1000000u, in, out;
	used_tokens(x, &in, &out);
	quota_release(ad->scopes, ad->nscopes, &ad->hold, in, out, now_ms);
	if (ad->global) {
		struct quota_global_scope gs[ADMIT_MAX_SCOPES];
		global_scopes(ad, gs);
		qasync_release(w->qasync, gs, ad->nscopes, &ad->ghold, in, out, now_ms);
	}
	struct sluice_tenant_state *st = &gw->tenants[x->tenant];
	if (ad->scopes[0].usage == &st->usage && quota_budget_spent(&st->limits, &st->usage, now_ms))
		block_tenant(gw, x->tenant, st->usage.tokens_day >= st->limits.tokens_per_day &&
				 st->limits.tokens_per_day ? QUOTA_DAY : QUOTA_MONTH, now_ms);
}

/* ---- headers ---- */

/* Durations the way OpenAI writes them: "20ms", "1.5s", "6m0s". */
static int append_duration(struct buf *b, uint64_t ms)
{
	if (ms < 1000)
		return buf_printf(b, "%llums", (unsigned long long)ms);
	if (ms < 60000) {
		if (ms % 1000 == 0)
			return buf_printf(b, "%llus", (unsigned long long)(ms / 1000));
		return buf_printf(b, "%llu.%03llus", (unsigned long long)(ms / 1000),
				  (unsigned long long)(ms % 1000));
	}
	return buf_printf(b, "%llum%llus", (unsigned long long)(ms / 60000),
			  (unsigned long long)(ms % 60000 / 1000));
}

int admit_append_headers(const struct exchange *x, struct buf *b, bool refused)
{
	const struct quota_headers *h = &x->ad.qh;
	int err = 0;
	if (!x->ad.has_qh)
		return 0;
	if (h->has_requests) {
		err = buf_printf(b, "x-ratelimit-limit-requests: %llu\r\n"
				 "x-ratelimit-remaining-requests: %llu\r\n"
				 "x-ratelimit-reset-requests: ",
				 (unsigned long long)h->limit_requests,
				 (unsigned long long)h->remaining_requests);
		if (!err && !(err = append_duration(b, h->reset_requests_ms)))
			err = buf_printf(b, "\r\n");
	}
	if (!err && h->has_tokens) {
		err = buf_printf(b, "x-ratelimit-limit-tokens: %llu\r\n"
				 "x-ratelimit-remaining-tokens: %llu\r\n"
				 "x-ratelimit-reset-tokens: ",
				 (unsigned long long)h->limit_tokens,
				 (unsigned long long)h->remaining_tokens);
		if (!err && !(err = append_duration(b, h->reset_tokens_ms)))
			err = buf_printf(b, "\r\n");
	}
	/* No Retry-After for a request too large to ever fit. */
	if (!err && refused && h->retry_after_s)
		err = buf_printf(b, "Retry-After: %llu\r\n", (unsigned long long)h->retry_after_s);
	return err;
}

/* ---- the refresher's tick ---- */

static uint32_t *scopes_held(void *arg, uint32_t tenant)
{
	struct gateway *gw = arg;
	return tenant < SLUICE_MAX_TENANTS ? &gw->tenants[tenant].quota_scopes : NULL;
}

/* Budgets reset with their window: a blocked tenant whose day or month
 * has moved on gets its connections back.  Idle key and model slots go
 * back to the table, so one tenant's past cannot fill it. */
void admit_tick(void *arg)
{
	struct gateway *gw = arg;
	uint64_t now_ms = clock_real_ns() / 1000000u;
	quota_slots_reclaim(&gw->qslots, now_ms, scopes_held, gw);
	/* A keys file changed (a key created or revoked): what was learned
	 * from keys is forgotten, and learned again from the keys that work. */
	uint64_t reloads = __atomic_load_n(&gw->auth.key_reloads, __ATOMIC_RELAXED);
	if (gw->kern && reloads != gw->learned_key_reloads)
		kern_forget_tenant(gw->kern, UINT32_MAX);
	gw->learned_key_reloads = reloads;
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++) {
		struct sluice_tenant_state *st = &gw->tenants[id];
		if (!__atomic_load_n(&st->blocked, __ATOMIC_ACQUIRE))
			continue;
		uint32_t by = __atomic_load_n(&st->blocked_by, __ATOMIC_RELAXED);
		uint64_t window = by == SLUICE_BLOCK_MONTH ? quota_month(now_ms) : quota_day(now_ms);
		if (window == __atomic_load_n(&st->blocked_window, __ATOMIC_RELAXED))
			continue;
		__atomic_store_n(&st->blocked, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&st->blocked_by, SLUICE_BLOCK_NONE, __ATOMIC_RELAXED);
		log_info("tenant %s: %s token budget reset; connections accepted again",
			 gw->tenant_names[id] ? gw->tenant_names[id] : "?",
			 by == SLUICE_BLOCK_MONTH ? "monthly" : "daily");
	}
}

/* ---- configuration ---- */

/* The config's limits into the tenant state: what the workers check and
 * sluicectl shows.  `sluicectl quota set` overrides last until this runs
 * again (a reload or a restart). */
void admit_apply_config(struct gateway *gw, const struct sluice_config *cfg)
{
	bool seen[SLUICE_MAX_TENANTS] = { false };
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cfg->tenants[i];
		seen[t->id] = true;
		sync_limits(&gw->tenants[t->id].limits, &t->limits);
	}
	static const struct sluice_limits none;
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++)
		if (!seen[id])
			sync_limits(&gw->tenants[id].limits, &none);
}

/* A daemon that starts has nothing in flight: whatever the one before
 * left counted as in flight (it may have died) is forgotten. */
void admit_clear_in_flight(struct gateway *gw)
{
	/* A lock held by a daemon that died holding it is released too. */
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++) {
		__atomic_store_n(&gw->tenants[id].usage.lock, 0, __ATOMIC_RELEASE);
		quota_clear_in_flight(&gw->tenants[id].usage);
	}
	/* The slots each tenant holds are counted again, from the table. */
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++)
		__atomic_store_n(&gw->tenants[id].quota_scopes, 0, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		struct sluice_quota_slot *s = &gw->qslots.slots[i];
		if (s->kind == SLUICE_QUOTA_KEY || s->kind == SLUICE_QUOTA_MODEL) {
			__atomic_store_n(&s->usage.lock, 0, __ATOMIC_RELEASE);
			quota_clear_in_flight(&s->usage);
			if (s->tenant < SLUICE_MAX_TENANTS)
				gw->tenants[s->tenant].quota_scopes++;
		}
	}
}

/* ---- waits ---- */

/* The admission stage's wait was abandoned (deadline, client gone). */
void admit_cancel_wait(struct exchange *x)
{
	struct admission *ad = &x->ad;
	if (!ad->pending)
		return;
	ad->pending = false;
	qasync_abandon(x->c->w->qasync, ad->job);
	quota_release(ad->scopes, ad->nscopes, &ad->hold, 0, 0, clock_real_ns() / 1000000u);
}
