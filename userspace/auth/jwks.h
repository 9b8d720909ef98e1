/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON Web Key Sets (RFC 7517): the keys bearer tokens are checked against.
 *
 * A set is parsed once (from a file at start-up or reload, or fetched from
 * the identity provider by a background thread) into OpenSSL key objects,
 * then never changes: worker threads verify tokens against it concurrently
 * without a lock.  A refresh builds a new set and swaps the pointer; the old
 * one is freed once no worker can still be reading it.
 *
 * Keys kept: kty "RSA" (n, e; 2048 to 8192 bits), kty "EC" on crv "P-256"
 * (x, y) and kty "oct" (k, at least 32 bytes), each only when usable for
 * signatures: "use" absent or "sig", "key_ops" absent or listing "verify",
 * "alg" absent or the one algorithm sluice verifies with that key type
 * (RS256, ES256, HS256).  Other keys (another kty or curve, "use": "enc",
 * RS384...) are skipped and counted.  Private members ("d", "p"...) are
 * ignored.
 */
#ifndef SLUICE_AUTH_JWKS_H
#define SLUICE_AUTH_JWKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define JWKS_MAX_DOC	 (1u << 20)	/* bytes of a JWKS document */
#define JWKS_MAX_KEYS	 64		/* keys in one set (usable or not) */
#define JWK_KID_MAX	 255		/* longer kids: the key is skipped */
#define JWK_RSA_MIN_BITS 2048
#define JWK_RSA_MAX_BITS 8192
#define JWK_OCT_MIN	 32		/* bytes of an HS256 secret */
#define JWK_OCT_MAX	 1024

enum jwk_type { JWK_RSA = 1, JWK_EC_P256, JWK_OCT };

/* One usable key.  Read-only once the set is built. */
struct jwk {
	enum jwk_type type;
	bool has_kid;
	bool has_alg;		/* the key names its algorithm (then it is the
				 * one of its type: RS256, ES256 or HS256) */
	char kid[JWK_KID_MAX + 1];
	EVP_PKEY *pkey;		/* RSA and EC public keys */
	unsigned char *secret;	/* oct: the HMAC key */
	size_t secret_len;
	unsigned bits;		/* RSA modulus size, 256 for EC, 8 * secret_len */
};

struct jwks;	/* immutable; opaque */

/*
 * Parse a JWKS document ({"keys": [...]}) of len bytes.  0 with *out set,
 * or a negative errno with a sentence in err: -EINVAL for a bad document
 * ("keys[2]: RSA modulus is 1024 bits, at least 2048 required", "not valid
 * JSON at byte 17: ...", "no usable signature key (3 skipped)"), -E2BIG
 * over JWKS_MAX_DOC, -ENOMEM.
 */
int jwks_parse(const char *json, size_t len, struct jwks **out, char *err, size_t errcap);

/* Read and parse a JWKS file.  Errors as jwks_parse, plus the open/read
 * errno; err starts with the path. */
int jwks_load_file(const char *path, struct jwks **out, char *err, size_t errcap);

/*
 * Fetch a JWKS document with one blocking HTTP/1.1 GET and parse it.
 * url: http://host[:port]/path or https://...; https verifies the server
 * certificate (system trust store, or ca_file when not NULL) and host name,
 * with SNI.  Redirects are not followed; anything but 200 is an error.  The
 * body is framed by Content-Length, chunked or connection close, at most
 * JWKS_MAX_DOC bytes.  timeout_ms bounds the whole call, name resolution
 * included (-ETIMEDOUT).  Errors: negative errno with a sentence in err
 * that does not repeat the URL (-EINVAL bad URL, -EHOSTUNREACH name not
 * resolved, -ECONNREFUSED and other connect errors, -EPROTO for TLS or
 * HTTP framing failures, -EBADMSG for a non-200 status, -E2BIG, then the
 * jwks_parse errors).  For a background thread: never call it on a worker.
 * SIGPIPE is blocked during the call, so the process need not ignore it.
 */
int jwks_fetch_url(const char *url, unsigned timeout_ms, const char *ca_file,
		   struct jwks **out, char *err, size_t errcap);

/* Free a set (NULL is fine). */
void jwks_free(struct jwks *set);

/* Usable keys in the set (at least one in a parsed set). */
size_t jwks_count(const struct jwks *set);

/* Keys the document held that were skipped (unsupported type, curve,
 * algorithm or use), for the start-up log. */
size_t jwks_skipped(const struct jwks *set);

/* The i-th usable key, i < jwks_count(set), in document order. */
const struct jwk *jwks_key(const struct jwks *set, size_t i);

#endif
