/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who is calling: a request's tenant from, in order, its credential (an
 * API key or a JWT), its mutual-TLS certificate, the kernel's socket tag
 * (a tenant network), or the anonymous policy.
 *
 * The key table and the JWKS key set are immutable snapshots that a
 * background thread replaces when a keys file changes, the JWKS file
 * changes or the JWKS URL is refreshed; workers read them without locks
 * and old snapshots are freed by quiescent-state reclamation (core/qsbr.h).
 */
#ifndef SLUICE_AUTH_AUTH_H
#define SLUICE_AUTH_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/apikey.h"
#include "auth/jwt.h"
#include "config/config.h"
#include "core/qsbr.h"
#include "http/http1.h"

enum auth_method {
	AUTH_ANONYMOUS = 0,	/* no credential, anonymous policy */
	AUTH_NETWORK,		/* the kernel tagged the socket with a tenant network */
	AUTH_CERT,		/* mutual TLS subject listed in a tenant's client_subjects */
	AUTH_API_KEY,
	AUTH_JWT,
};

/* The caller, as far as the request path needs it. */
struct auth_identity {
	uint32_t tenant;			/* tenant id; 0 anonymous */
	enum auth_method method;
	char key_id[APIKEY_ID_LEN + 1];		/* AUTH_API_KEY */
	bool jwt_models;			/* AUTH_JWT with a models claim:
						 * claims.models restrict the model */
};

/* Why a request is refused: status, OpenAI-style code and message. */
struct auth_refusal {
	int status;				/* 401 or 403 (500/503: no keys to check with) */
	const char *code;			/* "invalid_api_key", "token_expired", ... */
	char message[256];
};

/*
 * Tokens a worker verified recently: clients send the same JWT for many
 * requests, and an RS256 check costs tens of microseconds.  An entry holds
 * the whole token (compared in full: a hash alone could be forged to
 * collide) and counts only while the key set and config it was checked
 * against are still the current ones and the token has not expired.
 */
#define JWT_CACHE_SLOTS	64

struct jwt_cache_entry {
	char *token;			/* owned copy, NULL: empty */
	size_t len;
	uint64_t jwks_gen;		/* auth_state.jwks_gen it was verified under */
	const struct sluice_config *cfg;
	uint32_t tenant;
	struct jwt_claims claims;
};

struct jwt_cache {
	struct jwt_cache_entry e[JWT_CACHE_SLOTS];
	uint64_t hits, misses;		/* written by its worker only (relaxed
					 * atomics: /metrics reads them) */
};

void jwt_cache_free(struct jwt_cache *c);

struct auth_state {
	const struct sluice_config *cfg;	/* latest snapshot (atomic) */
	struct apikeys *keys;			/* published (atomic); never NULL once started */
	struct jwks *jwks;			/* published (atomic); NULL: none yet */
	uint64_t jwks_gen;			/* bumped after each new jwks (atomic) */
	struct qsbr qsbr;			/* one reader per worker */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop, running;
	/* the refresher's own bookkeeping */
	bool reconfigured;
	uint64_t jwks_next_fetch_ms;		/* monotonic */
	struct timespec jwks_file_mtime;
	char key_error[512];			/* last keys file error logged, "" none */
	/* counts for /metrics (relaxed atomics) */
	uint64_t key_reloads, key_reload_errors, jwks_refreshes, jwks_refresh_errors;
	/* Called by the refresher about once a second (quota windows). */
	void (*tick)(void *arg);
	void *tick_arg;
};

/* Load the keys files and the JWKS file, fetch the JWKS URL once (a failure
 * there is logged and retried in the background), start the refresher.
 * 0, or a negative errno after logging why (a malformed keys file). */
int auth_start(struct auth_state *a, const struct sluice_config *cfg, unsigned nworkers,
	       void (*tick)(void *), void *tick_arg);
/* A reloaded config: rebuild the key table and key set from it. */
void auth_reconfigure(struct auth_state *a, const struct sluice_config *cfg);
void auth_stop(struct auth_state *a);

/* True when the config asks for authentication at all: an auth: section,
 * or a tenant with a keys_file.  Otherwise every request is anonymous or
 * its network's tenant, and credentials are ignored (not forwarded). */
bool auth_enabled(const struct sluice_config *cfg);

/*
 * Identify a request from its head.  sock_tenant is the kernel's tag (0:
 * none), client_cert the mutual-TLS subject or NULL.  claims is space for
 * a JWT's claims (kept by the caller while the request lasts); cache the
 * calling worker's verified tokens, or NULL.  0 with *id, or -EACCES with
 * *why (401/403).  The calling worker must be online (qsbr).
 */
int auth_identify(struct auth_state *a, const struct http_request *req, uint32_t sock_tenant,
		  const char *client_cert, int64_t now_s, struct jwt_cache *cache,
		  struct jwt_claims *claims, struct auth_identity *id, struct auth_refusal *why);

/* May this identity use `model`?  The tenant's models globs and, for a
 * JWT with a models claim, the claim's.  false: answer 403. */
bool auth_model_allowed(const struct sluice_config *cfg, const struct auth_identity *id,
			const struct jwt_claims *claims, const char *model, size_t len);

/* True when auth_model_allowed can say no for this identity. */
bool auth_restricts_models(const struct sluice_config *cfg, const struct auth_identity *id);

const char *auth_method_name(enum auth_method m);	/* "api_key", "jwt", ... */

#endif
