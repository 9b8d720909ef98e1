/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bearer-token verification: compact JWS (RFC 7515) carrying JWT claims
 * (RFC 7519), checked against a JWKS (auth/jwks.h).
 *
 * Accepted algorithms: HS256 with "oct" keys, RS256 with RSA keys, ES256
 * with P-256 keys, nothing else ("none" included).  The key decides: a
 * token's alg must fit the key's type and the key's own "alg", so a token
 * cannot make an RSA public key serve as an HMAC secret.  Verification runs
 * on the request path: it decodes into stack buffers, allocates nothing
 * itself (OpenSSL allocates its verification context), and is safe on any
 * input.  It only reads the key set, so workers share one set without a lock.
 */
#ifndef SLUICE_AUTH_JWT_H
#define SLUICE_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwks.h"

#define JWT_MAX_TOKEN	8192	/* bytes of a compact token */
#define JWT_CLAIM_MAX	128	/* tenant, sub, each model pattern, with the NUL */
#define JWT_MAX_MODELS	16

/* What a token must satisfy.  Strings NULL: not checked / not read. */
struct jwt_policy {
	const char *issuer;	/* "iss" must equal it */
	const char *audience;	/* "aud" (string, or array) must be or contain it */
	unsigned leeway_s;	/* clock skew allowed on exp, nbf and iat */
	bool require_exp;	/* a token without "exp" is refused */
	bool check_iat;		/* refuse an "iat" later than now + leeway */
	const char *tenant_claim;	/* e.g. "tenant": required, a string of
					 * 1..127 bytes; the name is matched
					 * whole (dots are not paths) */
	const char *models_claim;	/* e.g. "models": optional, an array of
					 * strings or one space-separated string */
};

/* The policy every caller starts from: require_exp, 60 s leeway. */
#define JWT_POLICY_DEFAULT ((struct jwt_policy){ .leeway_s = 60, .require_exp = true })

/* What a verified token says. */
struct jwt_claims {
	char tenant[JWT_CLAIM_MAX];	/* "" when no tenant_claim is configured */
	char sub[JWT_CLAIM_MAX];	/* "" when absent; longer values truncated
					 * on a UTF-8 boundary */
	int64_t exp;			/* 0 when absent */
	bool has_models;		/* the models claim was present (it may be
					 * empty: then no model is allowed) */
	size_t nmodels;
	char models[JWT_MAX_MODELS][JWT_CLAIM_MAX];
};

enum jwt_error {
	JWT_OK = 0,
	JWT_MALFORMED,		/* not three base64url parts of JSON objects,
				 * duplicate header or claim names */
	JWT_TOO_LARGE,		/* over JWT_MAX_TOKEN */
	JWT_UNSUPPORTED_ALG,	/* alg not accepted, or not accepted by the key */
	JWT_UNSUPPORTED_HEADER,	/* "crit", or a "typ" other than JWT */
	JWT_UNKNOWN_KEY,	/* the kid names no key of the set */
	JWT_BAD_SIGNATURE,
	JWT_EXPIRED,
	JWT_NOT_YET_VALID,	/* nbf in the future */
	JWT_ISSUED_IN_FUTURE,	/* iat in the future (check_iat) */
	JWT_BAD_ISSUER,		/* iss absent or different */
	JWT_BAD_AUDIENCE,	/* aud absent or not containing ours */
	JWT_MISSING_CLAIM,	/* exp (require_exp) or the tenant claim */
	JWT_BAD_CLAIM,		/* a claim of the wrong type or size */
	JWT_NO_KEYS,		/* no key set loaded yet */
	JWT_INTERNAL,		/* OpenSSL failed (out of memory) */
	JWT_ERROR_COUNT
};

/*
 * Verify token[0..len) (the text after "Bearer ", without surrounding
 * whitespace) against keys and policy (NULL: JWT_POLICY_DEFAULT) at time
 * now_s (Unix seconds).  JWT_OK fills *out; any other value leaves *out
 * unspecified.  The signature is checked before any claim, so claim errors
 * are only reported for authentic tokens.  Uses about 10 KiB of stack.
 */
enum jwt_error jwt_verify(const struct jwks *keys, const char *token, size_t len,
			  const struct jwt_policy *policy, int64_t now_s,
			  struct jwt_claims *out);

/*
 * Whether a token whose exp claim is `exp` has expired at now_s, leeway_s
 * allowed: now_s >= exp + leeway_s, without overflow for any exp.  The
 * verifier and the callers' caches of verified tokens use this one rule.
 */
bool jwt_expired(int64_t exp, unsigned leeway_s, int64_t now_s);

/* A sentence for the client: "the token has expired".  Never mentions key
 * material or the token. */
const char *jwt_error_message(enum jwt_error e);

/* A short code for the error body: "token_expired", "invalid_signature"... */
const char *jwt_error_code(enum jwt_error e);

#endif
