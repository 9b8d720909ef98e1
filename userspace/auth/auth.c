/* SPDX-License-Identifier: Apache-2.0 */
#include "auth/auth.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "auth/jwks.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"

#define REFRESH_TICK_MS		1000
#define JWKS_FETCH_TIMEOUT_MS	5000
#define JWKS_RETRY_MS		30000

static const char missing_key_message[] =
	"You didn't provide an API key. You need to provide your API key in an "
	"Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";

bool auth_enabled(const struct sluice_config *cfg)
{
	return cfg->auth.on;
}

const char *auth_method_name(enum auth_method m)
{
	switch (m) {
	case AUTH_NETWORK: return "network";
	case AUTH_CERT: return "client_cert";
	case AUTH_API_KEY: return "api_key";
	case AUTH_JWT: return "jwt";
	case AUTH_ANONYMOUS: break;
	}
	return "anonymous";
}

/* ---- snapshots ---- */

static void free_keys(void *p)
{
	apikeys_free(p);
}

static void free_jwks(void *p)
{
	jwks_free(p);
}

static void publish_keys(struct auth_state *a, struct apikeys *fresh)
{
	struct apikeys *old = __atomic_exchange_n(&a->keys, fresh, __ATOMIC_ACQ_REL);
	qsbr_retire(&a->qsbr, old, free_keys);
}

/* The generation moves after the pointer: a worker that read the old
 * generation may have verified with either set, and its cache entry dies
 * with that generation. */
static void publish_jwks(struct auth_state *a, struct jwks *fresh)
{
	struct jwks *old = __atomic_exchange_n(&a->jwks, fresh, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&a->jwks_gen, 1, __ATOMIC_RELEASE);
	qsbr_retire(&a->qsbr, old, free_jwks);
}

/* Every configured tenant's keys file, as one table.  An error is logged
 * once, not every second while the file stays broken. */
static int build_keys(struct auth_state *a, const struct sluice_config *cfg, struct apikeys **out)
{
	struct apikey_source src[SLUICE_MAX_TENANTS];
	size_t n = 0;
	char err[sizeof(a->key_error)];
	for (size_t i = 0; i < cfg->ntenants && n < SLUICE_MAX_TENANTS; i++)
		if (cfg->tenants[i].keys_file)
			src[n++] = (struct apikey_source){ .tenant = cfg->tenants[i].id,
							   .path = cfg->tenants[i].keys_file };
	int rc = apikeys_load(src, n, out, err, sizeof(err));
	if (rc && strcmp(err, a->key_error) != 0)
		log_error("api keys: %s%s", err, a->keys ? "; keeping the keys loaded before" : "");
	snprintf(a->key_error, sizeof(a->key_error), "%s", rc ? err : "");
	return rc;
}

static int mtime_of(const char *path, struct timespec *out)
{
	struct stat st;
	if (stat(path, &st))
		return -errno;
	*out = st.st_mtim;
	return 0;
}

static int load_jwks_file(struct auth_state *a, const char *path, struct jwks **out)
{
	char err[512];
	int rc = jwks_load_file(path, out, err, sizeof(err));
	if (rc)
		log_error("jwt: %s", err);
	else
		mtime_of(path, &a->jwks_file_mtime);
	return rc;
}

static int fetch_jwks(const struct jwt_cfg *j, struct jwks **out)
{
	char err[512];
	int rc = jwks_fetch_url(j->jwks_url, JWKS_FETCH_TIMEOUT_MS, j->ca_file, out, err, sizeof(err));
	if (rc)
		log_warn("jwt: cannot fetch %s: %s; keeping the last good key set", j->jwks_url, err);
	return rc;
}

/* ---- the refresher ---- */

static void refresh_keys(struct auth_state *a, const struct sluice_config *cfg, bool force)
{
	struct apikeys *cur = __atomic_load_n(&a->keys, __ATOMIC_ACQUIRE);
	if (!force && cur && !apikeys_changed(cur))
		return;
	struct apikeys *fresh;
	if (build_keys(a, cfg, &fresh)) {
		__atomic_fetch_add(&a->key_reload_errors, 1, __ATOMIC_RELAXED);
		return;
	}
	size_t before = cur ? apikeys_count(cur) : 0;
	publish_keys(a, fresh);
	__atomic_fetch_add(&a->key_reloads, 1, __ATOMIC_RELAXED);
	log_info("api keys: %zu keys (%s %zu)", apikeys_count(fresh),
		 force ? "was" : "keys files changed; was", before);
}

static void refresh_jwks(struct auth_state *a, const struct sluice_config *cfg, bool force)
{
	const struct jwt_cfg *j = &cfg->auth.jwt;
	struct jwks *fresh = NULL;
	if (!j->enabled)
		return;
	if (j->jwks_url) {
		uint64_t now = clock_mono_ns() / 1000000u;
		if (!force && now < a->jwks_next_fetch_ms)
			return;
		int rc = fetch_jwks(j, &fresh);
		a->jwks_next_fetch_ms = now + (rc ? (j->refresh_ms < JWKS_RETRY_MS ? j->refresh_ms
										: JWKS_RETRY_MS)
						   : j->refresh_ms);
		__atomic_fetch_add(rc ? &a->jwks_refresh_errors : &a->jwks_refreshes, 1,
				   __ATOMIC_RELAXED);
		if (!rc)
			publish_jwks(a, fresh);
		return;
	}
	struct timespec mt;
	if (mtime_of(j->jwks_file, &mt))
		return;
	if (!force && mt.tv_sec == a->jwks_file_mtime.tv_sec &&
	    mt.tv_nsec == a->jwks_file_mtime.tv_nsec)
		return;
	if (load_jwks_file(a, j->jwks_file, &fresh) == 0) {
		publish_jwks(a, fresh);
		__atomic_fetch_add(&a->jwks_refreshes, 1, __ATOMIC_RELAXED);
		log_info("jwt: reloaded %s (%zu keys, %zu skipped)", j->jwks_file, jwks_count(fresh),
			 jwks_skipped(fresh));
	} else {
		/* Do not retry a broken file every second; wait for a change. */
		a->jwks_file_mtime = mt;
		__atomic_fetch_add(&a->jwks_refresh_errors, 1, __ATOMIC_RELAXED);
	}
}

static void *refresher_main(void *arg)
{
	struct auth_state *a = arg;
	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += REFRESH_TICK_MS / 1000;
		pthread_cond_timedwait(&a->wake, &a->lock, &until);
		if (a->stop)
			break;
		const struct sluice_config *cfg = a->cfg;
		bool force = a->reconfigured;
		a->reconfigured = false;
		/* File and network work happens without the lock: a reload
		 * only sets a flag and waits for nothing. */
		pthread_mutex_unlock(&a->lock);
		refresh_keys(a, cfg, force);
		refresh_jwks(a, cfg, force);
		if (a->tick)
			a->tick(a->tick_arg);
		qsbr_reclaim(&a->qsbr);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int auth_start(struct auth_state *a, const struct sluice_config *cfg, unsigned nworkers,
	       void (*tick)(void *), void *tick_arg)
{
	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->tick = tick;
	a->tick_arg = tick_arg;
	int rc = qsbr_init(&a->qsbr, nworkers);
	if (rc)
		return rc;
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->wake, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = build_keys(a, cfg, &a->keys)))
		return rc;
	const struct jwt_cfg *j = &cfg->auth.jwt;
	if (j->enabled && j->jwks_file && (rc = load_jwks_file(a, j->jwks_file, &a->jwks)))
		return rc;
	if (j->enabled && j->jwks_url) {
		struct jwks *fetched;
		if (fetch_jwks(j, &fetched) == 0) {
			jwks_free(a->jwks);
			a->jwks = fetched;
			a->jwks_next_fetch_ms = clock_mono_ns() / 1000000u + j->refresh_ms;
		}
	}
	if (auth_enabled(cfg))
		log_info("auth: %zu api keys%s; anonymous requests %s", apikeys_count(a->keys),
			 j->enabled ? (a->jwks ? ", JWT keys loaded" : ", JWT keys not yet fetched")
				    : "",
			 cfg->auth.anonymous == ANON_DENY ? "refused unless from a tenant network"
			 : cfg->auth.anonymous == ANON_TENANT ? "counted as auth.anonymous"
							      : "allowed");
	if ((rc = pthread_create(&a->thread, NULL, refresher_main, a)))
		return -rc;
	a->running = true;
	return 0;
}

void auth_reconfigure(struct auth_state *a, const struct sluice_config *cfg)
{
	pthread_mutex_lock(&a->lock);
	__atomic_store_n(&a->cfg, cfg, __ATOMIC_RELEASE);
	a->reconfigured = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
}

void auth_stop(struct auth_state *a)
{
	if (a->running) {
		pthread_mutex_lock(&a->lock);
		a->stop = true;
		pthread_cond_signal(&a->wake);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
		a->running = false;
	}
	if (a->qsbr.readers) {
		apikeys_free(a->keys);
		jwks_free(a->jwks);
		a->keys = NULL;
		a->jwks = NULL;
		qsbr_destroy(&a->qsbr);
		pthread_cond_destroy(&a->wake);
		pthread_mutex_destroy(&a->lock);
	}
}

/* ---- the request path ---- */

static void refuse(struct auth_refusal *why, int status, const char *code, const char *msg)
{
	why->status = status;
	why->code = code;
	snprintf(why->message, sizeof(why->message), "%s", msg);
}

/* The credential of a request: "Authorization: Bearer X", else the
 * api-key or x-api-key header.  false when there is none. */
static bool find_credential(const struct http_request *req, struct str *out)
{
	const struct http_header *h = http_find_header(req->headers, req->nheaders, "authorization");
	if (h) {
		struct str v = h->value;
		if (v.len > 7 && strncasecmp(v.p, "Bearer ", 7) == 0) {
			out->p = v.p + 7;
			out->len = v.len - 7;
			while (out->len && *out->p == ' ') {
				out->p++;
				out->len--;
			}
			while (out->len && out->p[out->len - 1] == ' ')
				out->len--;
			return out->len > 0;
		}
		*out = v;	/* another scheme: refused as an invalid key */
		return true;
	}
	h = http_find_header(req->headers, req->nheaders, "api-key");
	if (!h)
		h = http_find_header(req->headers, req->nheaders, "x-api-key");
	if (h && h->value.len) {
		*out = h->value;
		return true;
	}
	return false;
}

static bool looks_like_jwt(struct str s)
{
	const char *dot = memchr(s.p, '.', s.len);
	return dot && memchr(dot + 1, '.', s.len - (size_t)(dot + 1 - s.p)) != NULL;
}

static int identify_key(struct auth_state *a, struct str cred, struct auth_identity *id,
			struct auth_refusal *why)
{
	const struct apikeys *keys = __atomic_load_n(&a->keys, __ATOMIC_ACQUIRE);
	if (!keys || apikeys_verify(keys, cred.p, cred.len, &id->tenant, id->key_id)) {
		refuse(why, 401, "invalid_api_key", "Incorrect API key provided.");
		return -EACCES;
	}
	id->method = AUTH_API_KEY;
	return 0;
}

/* ---- verified-token cache ---- */

void jwt_cache_free(struct jwt_cache *c)
{
	for (size_t i = 0; i < JWT_CACHE_SLOTS; i++) {
		free(c->e[i].token);
		c->e[i].token = NULL;
	}
}

static struct jwt_cache_entry *cache_slot(struct jwt_cache *c, struct str tok)
{
	return &c->e[fnv1a64(FNV1A64_INIT, tok.p, tok.len) % JWT_CACHE_SLOTS];
}

static const struct jwt_cache_entry *cache_lookup(struct jwt_cache *c, struct str tok,
						  uint64_t gen, const struct sluice_config *cfg,
						  int64_t now_s)
{
	const struct jwt_cache_entry *e = cache_slot(c, tok);
	if (!e->token || e->len != tok.len || e->jwks_gen != gen || e->cfg != cfg ||
	    jwt_expired(e->claims.exp, cfg->auth.jwt.leeway_s, now_s) ||
	    memcmp(e->token, tok.p, tok.len) != 0)
		return NULL;
	return e;
}

/* Out of memory only means the next request verifies again. */
static void cache_store(struct jwt_cache *c, struct str tok, uint64_t gen,
			const struct sluice_config *cfg, uint32_t tenant,
			const struct jwt_claims *claims)
{
	struct jwt_cache_entry *e = cache_slot(c, tok);
	char *copy = malloc(tok.len);
	if (!copy)
		return;
	memcpy(copy, tok.p, tok.len);
	free(e->token);
	*e = (struct jwt_cache_entry){ .token = copy, .len = tok.len, .jwks_gen = gen,
				       .cfg = cfg, .tenant = tenant, .claims = *claims };
}

static void jwt_identity(const struct sluice_config *cfg, uint32_t tenant,
			 const struct jwt_claims *claims, struct auth_identity *id)
{
	id->tenant = tenant;
	id->method = AUTH_JWT;
	id->jwt_models = cfg->auth.jwt.models_claim && claims->has_models;
}

static int identify_jwt(struct auth_state *a, const struct sluice_config *cfg, struct str cred,
			int64_t now_s, struct jwt_cache *cache, struct jwt_claims *claims,
			struct auth_identity *id, struct auth_refusal *why)
{
	const struct jwt_cfg *j = &cfg->auth.jwt;
	uint64_t gen = __atomic_load_n(&a->jwks_gen, __ATOMIC_ACQUIRE);
	const struct jwks *keys = __atomic_load_n(&a->jwks, __ATOMIC_ACQUIRE);
	const struct jwt_cache_entry *hit = cache ? cache_lookup(cache, cred, gen, cfg, now_s) : NULL;
	if (hit) {
		__atomic_store_n(&cache->hits, cache->hits + 1, __ATOMIC_RELAXED);
		*claims = hit->claims;
		jwt_identity(cfg, hit->tenant, claims, id);
		return 0;
	}
	if (!keys) {
		refuse(why, 503, "jwks_unavailable",
		       "the gateway has no keys to verify tokens with yet; try again later");
		return -EACCES;
	}
	struct jwt_policy policy = {
		.issuer = j->issuer, .audience = j->audience, .leeway_s = j->leeway_s,
		.require_exp = true, .tenant_claim = j->tenant_claim,
		.models_claim = j->models_claim,
	};
	enum jwt_error e = jwt_verify(keys, cred.p, cred.len, &policy, now_s, claims);
	if (e != JWT_OK) {
		/* Only a token the client got wrong is a 401. */
		refuse(why, e == JWT_INTERNAL ? 500 : e == JWT_NO_KEYS ? 503 : 401,
		       jwt_error_code(e), jwt_error_message(e));
		return -EACCES;
	}
	const struct tenant_cfg *t = config_tenant_by_name(cfg, claims->tenant);
	if (!t) {
		refuse(why, 403, "unknown_tenant", "the token names a tenant this gateway does not know");
		return -EACCES;
	}
	if (cache) {
		__atomic_store_n(&cache->misses, cache->misses + 1, __ATOMIC_RELAXED);
		cache_store(cache, cred, gen, cfg, t->id, claims);
	}
	jwt_identity(cfg, t->id, claims, id);
	return 0;
}

static const struct tenant_cfg *tenant_of_subject(const struct sluice_config *cfg,
						  const char *subject)
{
	for (size_t i = 0; i < cfg->ntenants; i++)
		for (size_t s = 0; s < cfg->tenants[i].nclient_subjects; s++)
			if (strcmp(cfg->tenants[i].client_subjects[s], subject) == 0)
				return &cfg->tenants[i];
	return NULL;
}

int auth_identify(struct auth_state *a, const struct http_request *req, uint32_t sock_tenant,
		  const char *client_cert, int64_t now_s, struct jwt_cache *cache,
		  struct jwt_claims *claims, struct auth_identity *id, struct auth_refusal *why)
{
	const struct sluice_config *cfg = __atomic_load_n(&a->cfg, __ATOMIC_ACQUIRE);
	struct str cred;
	memset(id, 0, sizeof(*id));
	if (!auth_enabled(cfg)) {
		id->tenant = sock_tenant;
		id->method = sock_tenant ? AUTH_NETWORK : AUTH_ANONYMOUS;
		return 0;
	}
	if (find_credential(req, &cred)) {
		if (cred.len > 10 && memcmp(cred.p, "sk-sluice-", 10) == 0)
			return identify_key(a, cred, id, why);
		if (cfg->auth.jwt.enabled && looks_like_jwt(cred))
			return identify_jwt(a, cfg, cred, now_s, cache, claims, id, why);
		refuse(why, 401, "invalid_api_key", "Incorrect API key provided.");
		return -EACCES;
	}
	const struct tenant_cfg *t = client_cert ? tenant_of_subject(cfg, client_cert) : NULL;
	if (t) {
		id->tenant = t->id;
		id->method = AUTH_CERT;
		return 0;
	}
	if (sock_tenant) {
		id->tenant = sock_tenant;
		id->method = AUTH_NETWORK;
		return 0;
	}
	switch (cfg->auth.anonymous) {
	case ANON_DENY:
		refuse(why, 401, "missing_api_key", missing_key_message);
		return -EACCES;
	case ANON_TENANT:
		id->tenant = cfg->auth.anonymous_tenant;
		break;
	case ANON_ALLOW:
		break;
	}
	id->method = AUTH_ANONYMOUS;
	return 0;
}

static bool claim_allows(const struct jwt_claims *claims, const char *model, size_t len)
{
	char name[256];
	if (len >= sizeof(name))
		return false;
	memcpy(name, model, len);
	name[len] = '\0';
	for (size_t i = 0; i < claims->nmodels; i++)
		if (fnmatch(claims->models[i], name, 0) == 0)
			return true;
	return false;
}

bool auth_restricts_models(const struct sluice_config *cfg, const struct auth_identity *id)
{
	const struct tenant_cfg *t = config_tenant_by_id(cfg, id->tenant);
	return id->jwt_models || (t && t->nmodels > 0);
}

bool auth_model_allowed(const struct sluice_config *cfg, const struct auth_identity *id,
			const struct jwt_claims *claims, const char *model, size_t len)
{
	const struct tenant_cfg *t = config_tenant_by_id(cfg, id->tenant);
	if (t && !config_tenant_allows_model(t, model, len))
		return false;
	return !id->jwt_models || claim_allows(claims, model, len);
}
