/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWKS documents (auth/jwks.h), as a file or an identity provider hands
 * them over, and the keys they yield in use.
 *
 * Properties:
 * - a refused document says why (a sentence in err) and yields no set;
 *   either way, no OpenSSL error is left in the thread's queue (the
 *   refresher's next TLS call would read it);
 * - an accepted set has 1..JWKS_MAX_KEYS usable keys, each within the
 *   limits the header promises (RSA 2048..8192 bits, P-256, 32..1024-byte
 *   HMAC secrets, kids of at most JWK_KID_MAX bytes);
 * - every key verifies a token of its algorithm without an internal error
 *   (a key the set accepted is usable), and a garbage signature never
 *   verifies.
 */
#include <errno.h>

#include <openssl/err.h>

#include "auth/b64url.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "fuzz.h"

#define NOW 1700000000

/* One token per algorithm, without a kid (so every fitting key is tried),
 * each with a signature of the right length made of zero bytes. */
static char tokens[3][2048];

static void make_token(char *out, size_t cap, const char *alg, size_t siglen)
{
	static const unsigned char zeros[1024];
	char head[64], body[64];
	int n = snprintf(head, sizeof(head), "{\"alg\":\"%s\"}", alg);
	int m = snprintf(body, sizeof(body), "{\"exp\":%d}", NOW + 600);
	size_t len = 0;

	len += (size_t)b64url_encode(head, (size_t)n, out, cap);
	out[len++] = '.';
	len += (size_t)b64url_encode(body, (size_t)m, out + len, cap - len);
	out[len++] = '.';
	b64url_encode(zeros, siglen, out + len, cap - len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	make_token(tokens[0], sizeof(tokens[0]), "HS256", 32);
	make_token(tokens[1], sizeof(tokens[1]), "ES256", 64);
	make_token(tokens[2], sizeof(tokens[2]), "RS256", 256);
	return 0;
}

static void check_key(const struct jwk *k, size_t i)
{
	if (k->has_kid)
		FUZZ_CHECK(strlen(k->kid) <= JWK_KID_MAX, "key %zu: kid of %zu bytes", i, strlen(k->kid));
	switch (k->type) {
	case JWK_RSA:
		FUZZ_CHECK(k->pkey && k->bits >= JWK_RSA_MIN_BITS && k->bits <= JWK_RSA_MAX_BITS,
			   "key %zu: RSA of %u bits", i, k->bits);
		break;
	case JWK_EC_P256:
		FUZZ_CHECK(k->pkey && k->bits == 256, "key %zu: EC of %u bits", i, k->bits);
		break;
	case JWK_OCT:
		FUZZ_CHECK(k->secret && k->secret_len >= JWK_OCT_MIN && k->secret_len <= JWK_OCT_MAX &&
			   k->bits == 8 * k->secret_len, "key %zu: secret of %zu bytes", i,
			   k->secret_len);
		break;
	default:
		FUZZ_CHECK(false, "key %zu: type %d", i, (int)k->type);
	}
}

/* RS256 tokens need a signature as long as the modulus. */
static void check_rsa_lengths(const struct jwks *set)
{
	for (size_t i = 0; i < jwks_count(set); i++) {
		const struct jwk *k = jwks_key(set, i);
		if (k->type != JWK_RSA || k->bits == 2048)
			continue;
		char tok[4096];
		struct jwt_claims c;
		make_token(tok, sizeof(tok), "RS256", (k->bits + 7) / 8);
		enum jwt_error e = jwt_verify(set, tok, strlen(tok), NULL, NOW, &c);
		FUZZ_CHECK(e != JWT_OK && e != JWT_INTERNAL, "RS256 of %u bits: %s", k->bits,
			   jwt_error_code(e));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwks *set = (struct jwks *)1;
	char err[256] = "";
	int rc = jwks_parse((const char *)data, size, &set, err, sizeof(err));

	if (rc) {
		FUZZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM, "jwks_parse: %d", rc);
		FUZZ_CHECK(err[0], "refused without a reason");
		FUZZ_CHECK(ERR_peek_error() == 0, "OpenSSL errors left in the queue");
		return 0;
	}
	FUZZ_CHECK(ERR_peek_error() == 0, "OpenSSL errors left in the queue");
	FUZZ_CHECK(set && jwks_count(set) >= 1 && jwks_count(set) <= JWKS_MAX_KEYS &&
		   jwks_count(set) + jwks_skipped(set) <= JWKS_MAX_KEYS, "%zu keys, %zu skipped",
		   jwks_count(set), jwks_skipped(set));
	for (size_t i = 0; i < jwks_count(set); i++)
		check_key(jwks_key(set, i), i);
	for (size_t t = 0; t < 3; t++) {
		struct jwt_claims c;
		enum jwt_error e = jwt_verify(set, tokens[t], strlen(tokens[t]), NULL, NOW, &c);
		FUZZ_CHECK(e != JWT_OK && e != JWT_INTERNAL && e != JWT_MALFORMED,
			   "token %zu: %s", t, jwt_error_code(e));
	}
	check_rsa_lengths(set);
	jwks_free(set);
	return 0;
}
