/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bearer tokens: base64url, JWKS parsing and fetching, JWT verification.
 *
 * Keys are generated at start-up (RSA 2048, EC P-256, a random HMAC
 * secret), exported into a JWKS document, and tokens are signed here by a
 * small signer independent of the verifier.  The fetch tests run a one-shot
 * HTTP (or HTTPS) server in a forked child on a free loopback port; the
 * per-test teardown kills and reaps it whatever the test's outcome.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "auth/auth.h"
#include "auth/b64url.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "config/config.h"
#include "core/clock.h"
#include "http/http1.h"
#include "tls_fixture.h"

#define NOW 1700000000
#define ISSUER "https://issuer.example"
#define AUDIENCE "sluice"

/* ---- fixture: keys, their JWKS, the key set ------------------------------ */

struct fixture {
	EVP_PKEY *rsa, *rsa2, *ec;
	unsigned char hs[32];
	char rsa_n[400], rsa_e[16], rsa2_n[400];
	char ec_x[64], ec_y[64], hs_k[64];
	char jwks[4096];
	struct jwks *set;
	/* per-test resources, released by teardown */
	pid_t child;
	int lfd;
	char path[64];
};

static struct fixture fx;

static void b64_of(const void *p, size_t n, char *dst, size_t cap)
{
	assert_true(b64url_encode(p, n, dst, cap) > 0);
}

static void b64_of_bn_param(EVP_PKEY *k, const char *param, char *dst, size_t cap)
{
	unsigned char raw[1024];
	BIGNUM *bn = NULL;
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	n = BN_bn2bin(bn, raw);
	BN_free(bn);
	b64_of(raw, (size_t)n, dst, cap);
}

static void export_ec(EVP_PKEY *k, char *x, char *y, size_t cap)
{
	unsigned char pub[65];
	size_t len = 0;

	assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY,
							 pub, sizeof(pub), &len), 1);
	assert_int_equal(len, 65);
	assert_int_equal(pub[0], 0x04);
	b64_of(pub + 1, 32, x, cap);
	b64_of(pub + 33, 32, y, cap);
}

static int group_setup(void **state)
{
	(void)state;
	fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	fx.rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	fx.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!fx.rsa || !fx.rsa2 || !fx.ec || RAND_bytes(fx.hs, sizeof(fx.hs)) != 1)
		return -1;
	b64_of_bn_param(fx.rsa, OSSL_PKEY_PARAM_RSA_N, fx.rsa_n, sizeof(fx.rsa_n));
	b64_of_bn_param(fx.rsa, OSSL_PKEY_PARAM_RSA_E, fx.rsa_e, sizeof(fx.rsa_e));
	b64_of_bn_param(fx.rsa2, OSSL_PKEY_PARAM_RSA_N, fx.rsa2_n, sizeof(fx.rsa2_n));
	export_ec(fx.ec, fx.ec_x, fx.ec_y, sizeof(fx.ec_x));
	b64_of(fx.hs, sizeof(fx.hs), fx.hs_k, sizeof(fx.hs_k));
	snprintf(fx.jwks, sizeof(fx.jwks),
		 "{\"keys\":["
		 "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"},"
		 "{\"kty\":\"EC\",\"kid\":\"ec1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
		 "{\"kty\":\"oct\",\"kid\":\"hs1\",\"k\":\"%s\"}]}",
		 fx.rsa_n, fx.rsa_e, fx.ec_x, fx.ec_y, fx.hs_k);
	if (jwks_parse(fx.jwks, strlen(fx.jwks), &fx.set, NULL, 0))
		return -1;
	fx.child = -1;
	fx.lfd = -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	jwks_free(fx.set);
	EVP_PKEY_free(fx.rsa);
	EVP_PKEY_free(fx.rsa2);
	EVP_PKEY_free(fx.ec);
	return 0;
}

/* ---- the test's own signer ---------------------------------------------- */

enum alg { HS256, RS256, ES256, NONE };

/* Signature of alg over msg: with pkey (RS256, ES256) or secret (HS256). */
static size_t sign_bytes(enum alg alg, EVP_PKEY *pkey, const void *secret, size_t slen,
			 const char *msg, unsigned char *sig)
{
	unsigned char der[128];
	unsigned int maclen = 0;
	size_t n = sizeof(der);
	EVP_MD_CTX *ctx;

	if (alg == NONE)
		return 0;
	if (alg == HS256) {
		assert_non_null(HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)msg,
				     strlen(msg), sig, &maclen));
		return maclen;
	}
	ctx = EVP_MD_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
	if (alg == RS256) {
		n = 1024;
		assert_int_equal(EVP_DigestSign(ctx, sig, &n, (const unsigned char *)msg, strlen(msg)), 1);
		EVP_MD_CTX_free(ctx);
		return n;
	}
	/* ES256: OpenSSL signs DER, JOSE wants r || s of 32 bytes each. */
	assert_int_equal(EVP_DigestSign(ctx, der, &n, (const unsigned char *)msg, strlen(msg)), 1);
	EVP_MD_CTX_free(ctx);
	const unsigned char *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
	assert_non_null(es);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
	ECDSA_SIG_free(es);
	return 64;
}

/* header.payload.signature from JSON texts, signed with the given key. */
static void sign_with(enum alg alg, EVP_PKEY *pkey, const void *secret, size_t slen,
		      const char *header, const char *payload, char *out, size_t cap)
{
	unsigned char sig[1024];
	size_t n, siglen;

	assert_true(cap > 64);
	b64_of(header, strlen(header), out, cap);
	n = strlen(out);
	out[n++] = '.';
	b64_of(payload, strlen(payload), out + n, cap - n);
	siglen = sign_bytes(alg, pkey, secret, slen, out, sig);
	n = strlen(out);
	out[n++] = '.';
	out[n] = '\0';
	if (siglen)
		b64_of(sig, siglen, out + n, cap - n);
}

static const char *alg_name(enum alg alg)
{
	static const char *const names[] = { "HS256", "RS256", "ES256", "none" };
	return names[alg];
}

/* Sign with the fixture's key for alg; kid NULL: no kid in the header. */
static void sign_token(enum alg alg, const char *kid, const char *payload, char *out, size_t cap)
{
	char header[256];

	if (kid)
		snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
			 alg_name(alg), kid);
	else
		snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg_name(alg));
	sign_with(alg, alg == RS256 ? fx.rsa : fx.ec, fx.hs, sizeof(fx.hs), header, payload, out, cap);
}

/* Sign with an explicit header through the fixture's key for alg. */
static void sign_header(enum alg alg, const char *header, const char *payload, char *out, size_t cap)
{
	sign_with(alg, alg == RS256 ? fx.rsa : fx.ec, fx.hs, sizeof(fx.hs), header, payload, out, cap);
}

static struct jwt_policy policy(void)
{
	struct jwt_policy p = JWT_POLICY_DEFAULT;

	p.issuer = ISSUER;
	p.audience = AUDIENCE;
	p.leeway_s = 30;
	p.tenant_claim = "tenant";
	p.models_claim = "models";
	return p;
}

static const char *good_claims(void)
{
	static char text[512];

	snprintf(text, sizeof(text),
		 "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"sub\":\"user-1\","
		 "\"tenant\":\"acme\",\"iat\":%d,\"exp\":%d,\"models\":[\"gpt-4o\",\"llama-*\"]}",
		 NOW - 10, NOW + 600);
	return text;
}

static enum jwt_error verify(const char *token, const struct jwt_policy *p, struct jwt_claims *c)
{
	return jwt_verify(fx.set, token, strlen(token), p, NOW, c);
}

static enum jwt_error verify_claims(const char *payload, const struct jwt_policy *p,
				    struct jwt_claims *c)
{
	char tok[4096];

	sign_token(RS256, "rsa1", payload, tok, sizeof(tok));
	return verify(tok, p, c);
}

/* ---- base64url ------------------------------------------------------------ */

static void b64url_round_trips_every_length(void **state)
{
	unsigned char in[64], out[64];
	char text[128];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 37 + 251);
	for (size_t len = 0; len <= sizeof(in); len++) {
		int e = b64url_encode(in, len, text, sizeof(text));

		assert_int_equal(e, B64URL_ENCODED_LEN(len));
		assert_null(strpbrk(text, "+/="));
		assert_int_equal(b64url_decode(text, (size_t)e, out, sizeof(out), &n, 0), 0);
		assert_int_equal(n, len);
		assert_memory_equal(in, out, len);
	}
}

static void b64url_known_vectors_and_strictness(void **state)
{
	unsigned char out[16];
	char text[16];
	size_t n;

	(void)state;
	assert_int_equal(b64url_encode("\xfb\xff", 2, text, sizeof(text)), 3);
	assert_string_equal(text, "-_8");
	assert_int_equal(b64url_decode("-_8", 3, out, sizeof(out), &n, 0), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\xfb\xff", 2);
	/* Standard alphabet, padding without the flag, bad lengths, bits. */
	assert_int_equal(b64url_decode("+/8", 3, out, sizeof(out), &n, 0), -EINVAL);
	assert_int_equal(b64url_decode("-_8=", 4, out, sizeof(out), &n, 0), -EINVAL);
	assert_int_equal(b64url_decode("-_8=", 4, out, sizeof(out), &n, B64URL_ALLOW_PAD), 0);
	assert_int_equal(n, 2);
	assert_int_equal(b64url_decode("QQ==", 4, out, sizeof(out), &n, B64URL_ALLOW_PAD), 0);
	assert_int_equal(n, 1);
	assert_int_equal(b64url_decode("QQ=", 3, out, sizeof(out), &n, B64URL_ALLOW_PAD), -EINVAL);
	assert_int_equal(b64url_decode("QQ===", 5, out, sizeof(out), &n, B64URL_ALLOW_PAD), -EINVAL);
	assert_int_equal(b64url_decode("Q=Q=", 4, out, sizeof(out), &n, B64URL_ALLOW_PAD), -EINVAL);
	assert_int_equal(b64url_decode("QUJD=", 5, out, sizeof(out), &n, B64URL_ALLOW_PAD), -EINVAL);
	assert_int_equal(b64url_decode("QUJDR", 5, out, sizeof(out), &n, 0), -EINVAL);
	assert_int_equal(b64url_decode("QR", 2, out, sizeof(out), &n, 0), -EINVAL);	/* low bits */
	assert_int_equal(b64url_decode("QQ", 2, out, sizeof(out), &n, 0), 0);
	assert_int_equal(b64url_decode("QU J", 4, out, sizeof(out), &n, 0), -EINVAL);
	assert_int_equal(b64url_decode("QUJD", 4, out, 2, &n, 0), -ENOSPC);
	assert_int_equal(b64url_decode("", 0, out, sizeof(out), &n, 0), 0);
	assert_int_equal(n, 0);
	assert_int_equal(b64url_encode("abc", 3, text, 4), -ENOSPC);
	assert_int_equal(b64url_encode("abc", 3, text, 5), 4);
}

/* ---- JWKS parsing ---------------------------------------------------------- */

static void jwks_parses_each_key_type(void **state)
{
	const struct jwk *k;

	(void)state;
	assert_int_equal(jwks_count(fx.set), 3);
	assert_int_equal(jwks_skipped(fx.set), 0);
	k = jwks_key(fx.set, 0);
	assert_int_equal(k->type, JWK_RSA);
	assert_string_equal(k->kid, "rsa1");
	assert_true(k->has_alg);
	assert_int_equal(k->bits, 2048);
	k = jwks_key(fx.set, 1);
	assert_int_equal(k->type, JWK_EC_P256);
	assert_string_equal(k->kid, "ec1");
	assert_false(k->has_alg);
	k = jwks_key(fx.set, 2);
	assert_int_equal(k->type, JWK_OCT);
	assert_int_equal(k->secret_len, 32);
	assert_memory_equal(k->secret, fx.hs, 32);
	assert_null(jwks_key(fx.set, 3));
}

static void expect_jwks_error(const char *doc, int want_rc, const char *want_msg)
{
	struct jwks *set = (struct jwks *)1;
	char err[256] = "";
	int rc = jwks_parse(doc, strlen(doc), &set, err, sizeof(err));

	if (rc != want_rc || !strstr(err, want_msg))
		fail_msg("jwks_parse: rc %d, err \"%s\"; wanted %d, \"%s\"", rc, err, want_rc, want_msg);
	assert_null(set);
}

static void jwks_refuses_short_rsa_key(void **state)
{
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	char n[200], doc[1024];

	(void)state;
	assert_non_null(small);
	b64_of_bn_param(small, OSSL_PKEY_PARAM_RSA_N, n, sizeof(n));
	EVP_PKEY_free(small);
	snprintf(doc, sizeof(doc),
		 "{\"keys\":[{\"kty\":\"oct\",\"k\":\"%s\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
		 "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", fx.hs_k, n);
	expect_jwks_error(doc, -EINVAL, "keys[2]: RSA modulus is 1024 bits, at least 2048 required");
}

static void jwks_reports_bad_documents(void **state)
{
	char doc[1024];

	(void)state;
	expect_jwks_error("{\"keys\":[", -EINVAL, "not valid JSON at byte");
	expect_jwks_error("[]", -EINVAL, "no \"keys\" array");
	expect_jwks_error("{\"keys\":{}}", -EINVAL, "no \"keys\" array");
	expect_jwks_error("{\"keys\":[]}", -EINVAL, "no usable signature key (0 skipped)");
	expect_jwks_error("{\"keys\":[1]}", -EINVAL, "keys[0]: not an object");
	expect_jwks_error("{\"keys\":[{\"n\":\"AQAB\"}]}", -EINVAL, "keys[0]: \"kty\" is missing");
	expect_jwks_error("{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", -EINVAL,
			  "keys[0]: \"n\" is missing");
	expect_jwks_error("{\"keys\":[{\"kty\":\"oct\",\"k\":\"a+b/\"}]}", -EINVAL,
			  "keys[0]: \"k\" is not base64url");
	expect_jwks_error("{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"}]}", -EINVAL,
			  "keys[0]: oct key is 16 bytes, at least 32 required");
	expect_jwks_error("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
			  -EINVAL, "keys[0]: P-256 coordinates must be 32 bytes each");
	/* A point that is not on the curve: y changed. */
	snprintf(doc, sizeof(doc),
		 "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
		 fx.ec_x, fx.ec_x);
	expect_jwks_error(doc, -EINVAL, "keys[0]: the point is not on the P-256 curve");
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AAE\"}]}", fx.rsa_n);
	expect_jwks_error(doc, -EINVAL, "keys[0]: RSA exponent is not usable");
	/* Only keys sluice cannot use. */
	snprintf(doc, sizeof(doc),
		 "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		 "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
		 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"}]}", fx.rsa_n);
	expect_jwks_error(doc, -EINVAL, "no usable signature key (3 skipped)");
}

static void jwks_skips_unusable_keys_and_accepts_padding(void **state)
{
	char doc[4096], padded[400];
	struct jwks *set = NULL;
	char err[256] = "";

	(void)state;
	/* Padded base64url is what some providers publish. */
	snprintf(padded, sizeof(padded), "%s", fx.rsa_n);
	while (strlen(padded) % 4)
		strcat(padded, "=");
	snprintf(doc, sizeof(doc),
		 "{\"keys\":["
		 "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		 "{\"kty\":\"RSA\",\"kid\":\"ps\",\"alg\":\"PS256\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		 "{\"kty\":\"RSA\",\"kid\":\"ops\",\"key_ops\":[\"encrypt\"],\"n\":\"%s\",\"e\":\"AQAB\"},"
		 "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"},"
		 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
		 "{\"kty\":\"RSA\",\"kid\":\"good\",\"key_ops\":[\"verify\"],\"n\":\"%s\",\"e\":\"AQAB\",\"d\":\"ignored\"}]}",
		 fx.rsa_n, fx.rsa_n, fx.rsa_n, padded);
	assert_int_equal(jwks_parse(doc, strlen(doc), &set, err, sizeof(err)), 0);
	assert_int_equal(jwks_count(set), 1);
	assert_int_equal(jwks_skipped(set), 5);
	assert_string_equal(jwks_key(set, 0)->kid, "good");
	jwks_free(set);
	jwks_free(NULL);
}

/* ---- verification: the happy paths ----------------------------------------- */

static void each_algorithm_is_accepted(void **state)
{
	static const struct { enum alg alg; const char *kid; } cases[] = {
		{ RS256, "rsa1" }, { ES256, "ec1" }, { HS256, "hs1" },
		{ RS256, NULL }, { ES256, NULL }, { HS256, NULL },
	};
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char tok[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum jwt_error e;

		sign_token(cases[i].alg, cases[i].kid, good_claims(), tok, sizeof(tok));
		e = verify(tok, &p, &c);
		if (e != JWT_OK)
			fail_msg("case %zu (%s): %s", i, alg_name(cases[i].alg), jwt_error_code(e));
		assert_string_equal(c.tenant, "acme");
		assert_string_equal(c.sub, "user-1");
		assert_int_equal(c.exp, NOW + 600);
		assert_true(c.has_models);
		assert_int_equal(c.nmodels, 2);
		assert_string_equal(c.models[0], "gpt-4o");
		assert_string_equal(c.models[1], "llama-*");
	}
	/* No policy: the defaults (exp required, nothing else). */
	assert_int_equal(jwt_verify(fx.set, tok, strlen(tok), NULL, NOW, &c), JWT_OK);
	assert_string_equal(c.tenant, "");
	assert_false(c.has_models);
	assert_int_equal(jwt_verify(fx.set, tok, strlen(tok), NULL, NOW + 700, &c), JWT_EXPIRED);
}

static void several_fitting_keys_are_each_tried(void **state)
{
	char doc[2048], tok[4096];
	struct jwt_policy p = policy();
	struct jwt_claims c;
	struct jwks *set = NULL;

	(void)state;
	/* No kids: the token's key is the second RSA key. */
	snprintf(doc, sizeof(doc),
		 "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		 "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", fx.rsa2_n, fx.rsa_n);
	assert_int_equal(jwks_parse(doc, strlen(doc), &set, NULL, 0), 0);
	sign_token(RS256, NULL, good_claims(), tok, sizeof(tok));
	assert_int_equal(jwt_verify(set, tok, strlen(tok), &p, NOW, &c), JWT_OK);
	/* A kid the set does not hold. */
	sign_token(RS256, "rsa1", good_claims(), tok, sizeof(tok));
	assert_int_equal(jwt_verify(set, tok, strlen(tok), &p, NOW, &c), JWT_UNKNOWN_KEY);
	jwks_free(set);
}

/* ---- verification: refusals ------------------------------------------------ */

/* Replace the token's signature by its first n bytes. */
static void shorten_signature(char *tok, size_t cap, size_t n)
{
	char *sig = strrchr(tok, '.') + 1;
	unsigned char raw[1024];
	size_t len;

	assert_int_equal(b64url_decode(sig, strlen(sig), raw, sizeof(raw), &len, 0), 0);
	assert_true(n < len);
	if (n == 0)
		*sig = '\0';
	else
		b64_of(raw, n, sig, cap - (size_t)(sig - tok));
}

/* Change one base64url character of the token at offset i to another
 * valid one whose low bits are equal (so the encoding stays canonical). */
static void flip_char(char *tok, size_t i)
{
	tok[i] = tok[i] == 'A' ? 'E' : 'A';
}

static void flipped_bytes_break_the_signature(void **state)
{
	static const enum alg algs[] = { RS256, ES256, HS256 };
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char tok[4096];

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		char *sig;

		sign_token(algs[i], NULL, good_claims(), tok, sizeof(tok));
		sig = strrchr(tok, '.') + 1;
		flip_char(sig, 5);
		assert_int_equal(verify(tok, &p, &c), JWT_BAD_SIGNATURE);
		sign_token(algs[i], NULL, good_claims(), tok, sizeof(tok));
		flip_char(strchr(tok, '.') + 1, 8);	/* the payload */
		assert_int_equal(verify(tok, &p, &c), JWT_BAD_SIGNATURE);
		/* Signature cut short or dropped. */
		sign_token(algs[i], NULL, good_claims(), tok, sizeof(tok));
		shorten_signature(tok, sizeof(tok), 31);
		assert_int_equal(verify(tok, &p, &c), JWT_BAD_SIGNATURE);
		shorten_signature(tok, sizeof(tok), 0);
		assert_int_equal(verify(tok, &p, &c), JWT_BAD_SIGNATURE);
	}
}

static void es256_wants_raw_64_byte_signatures(void **state)
{
	struct jwt_policy p = policy();
	unsigned char der[80];
	struct jwt_claims c;
	char tok[4096], msg[2048];
	size_t n = sizeof(der);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *dot;

	(void)state;
	/* The DER form OpenSSL produces is not what JOSE specifies. */
	sign_token(ES256, "ec1", good_claims(), tok, sizeof(tok));
	dot = strrchr(tok, '.');
	snprintf(msg, sizeof(msg), "%.*s", (int)(dot - tok), tok);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, fx.ec), 1);
	assert_int_equal(EVP_DigestSign(ctx, der, &n, (unsigned char *)msg, strlen(msg)), 1);
	EVP_MD_CTX_free(ctx);
	b64_of(der, n, dot + 1, sizeof(tok) - (size_t)(dot + 1 - tok));
	assert_int_equal(verify(tok, &p, &c), JWT_BAD_SIGNATURE);
	/* An RS256-sized signature on an ES256 token. */
	sign_with(RS256, fx.rsa, NULL, 0, "{\"alg\":\"ES256\"}", good_claims(), tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_BAD_SIGNATURE);
}

static void times_are_checked_with_leeway(void **state)
{
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char claims[256];

	(void)state;
	p.leeway_s = 0;
	snprintf(claims, sizeof(claims), "{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d}", NOW - 1);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_EXPIRED);
	snprintf(claims, sizeof(claims), "{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d}", NOW);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_EXPIRED);	/* valid before exp */
	p.leeway_s = 30;
	snprintf(claims, sizeof(claims), "{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d}", NOW - 29);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_OK);
	snprintf(claims, sizeof(claims), "{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d}", NOW - 31);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_EXPIRED);
	/* nbf */
	snprintf(claims, sizeof(claims), "{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d,\"nbf\":%d}", NOW + 600, NOW + 31);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_NOT_YET_VALID);
	snprintf(claims, sizeof(claims), "{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d,\"nbf\":%d}", NOW + 600, NOW + 30);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_OK);
	/* iat in the future: only when asked */
	snprintf(claims, sizeof(claims), "{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d,\"iat\":%d}", NOW + 600, NOW + 300);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_OK);
	p.check_iat = true;
	assert_int_equal(verify_claims(claims, &p, &c), JWT_ISSUED_IN_FUTURE);
	/* exp required, of the right type; fractions and exponents are dates */
	p.check_iat = false;
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\"}",
				       &p, &c), JWT_MISSING_CLAIM);
	p.require_exp = false;
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\"}",
				       &p, &c), JWT_OK);
	assert_int_equal(c.exp, 0);
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":\"soon\"}", &p, &c), JWT_BAD_CLAIM);
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":1.8e9}", &p, &c), JWT_OK);
	assert_int_equal(c.exp, 1800000000);
	p.leeway_s = 0;
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":1699999999.9}", &p, &c), JWT_EXPIRED);
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":1700000000.5}", &p, &c), JWT_EXPIRED);
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":1700000001.5}", &p, &c), JWT_OK);
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":1e400}", &p, &c), JWT_OK);
	assert_int_equal(c.exp, INT64_MAX);
}

/* Times are the token's to choose: the far ends of int64 (and past them)
 * are dates like any other, and no sum with the leeway overflows. */
static void extreme_times_do_not_overflow(void **state)
{
	struct jwt_policy p = policy();
	struct jwt_claims c;

	(void)state;
	p.leeway_s = 3600;
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":9223372036854775807}", &p, &c), JWT_OK);
	assert_int_equal(c.exp, INT64_MAX);
	assert_false(jwt_expired(c.exp, p.leeway_s, NOW));
	assert_false(jwt_expired(c.exp, p.leeway_s, INT64_MAX - 1));
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":-9223372036854775808}", &p, &c), JWT_EXPIRED);
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":-1e400}", &p, &c), JWT_EXPIRED);
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":1e400,\"nbf\":-1e400,\"iat\":-9223372036854775808}",
				       &p, &c), JWT_OK);
	assert_false(jwt_expired(c.exp, p.leeway_s, NOW));
	p.check_iat = true;
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":1e400,\"nbf\":1e400}", &p, &c), JWT_NOT_YET_VALID);
	assert_int_equal(verify_claims("{\"tenant\":\"t\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
				       "\",\"exp\":1e400,\"iat\":9223372036854775807}", &p, &c),
			 JWT_ISSUED_IN_FUTURE);
	/* the rule itself, at its edges */
	assert_true(jwt_expired(NOW, 0, NOW));
	assert_false(jwt_expired(NOW, 1, NOW));
	assert_true(jwt_expired(INT64_MIN, 3600, NOW));
	assert_true(jwt_expired(INT64_MIN, 3600, INT64_MIN + 3600));
	assert_false(jwt_expired(INT64_MIN, 3600, INT64_MIN + 3599));
	assert_false(jwt_expired(INT64_MAX, 0, INT64_MAX - 1));
	assert_true(jwt_expired(INT64_MAX, 0, INT64_MAX));
	assert_true(jwt_expired(INT64_MAX, UINT32_MAX, INT64_MAX));
}

/*
 * A worker's cache of verified tokens keeps one whose exp is INT64_MAX
 * (or 1e400) like any other: the second request is a hit, not an overflow
 * of exp + leeway (undefined behaviour that the sanitizer build aborts on).
 */
static void token_cache_takes_far_exp(void **state)
{
	char yaml_path[] = "/tmp/sluice-jwtcache-XXXXXX", jwks_path[] = "/tmp/sluice-jwks-XXXXXX";
	int yfd = mkstemp(yaml_path), jfd = mkstemp(jwks_path);
	struct sluice_config *cfg = NULL;
	struct config_error cerr;
	char yaml[512], tok[4096], head[4608];

	(void)state;
	assert_true(yfd >= 0 && jfd >= 0);
	assert_int_equal(write(jfd, fx.jwks, strlen(fx.jwks)), (ssize_t)strlen(fx.jwks));
	snprintf(yaml, sizeof(yaml),
		 "listen: \"127.0.0.1:1\"\n"
		 "kernel: {enabled: false}\n"
		 "backends: [{name: b, url: \"http://127.0.0.1:1/v1\", models: [\"*\"]}]\n"
		 "tenants: [{name: acme}]\n"
		 "auth: {jwt: {jwks_file: \"%s\", issuer: \"" ISSUER "\", audience: " AUDIENCE
		 ", leeway: 60}}\n", jwks_path);
	assert_int_equal(write(yfd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(yfd);
	close(jfd);
	int rc = config_load(yaml_path, &cfg, &cerr);
	/* Nothing reads the files after the load: gone even if a check fails. */
	unlink(yaml_path);
	unlink(jwks_path);
	if (rc)
		print_error("%s\n", cerr.text);
	assert_int_equal(rc, 0);

	struct auth_state a = { .cfg = cfg, .jwks = fx.set, .jwks_gen = 1 };
	const char *exps[] = { "9223372036854775807", "1e400" };
	for (size_t i = 0; i < 2; i++) {
		struct jwt_cache cache = { 0 };
		char payload[256];
		snprintf(payload, sizeof(payload), "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
			 "\",\"tenant\":\"acme\",\"exp\":%s}", exps[i]);
		sign_token(HS256, "hs1", payload, tok, sizeof(tok));
		snprintf(head, sizeof(head), "GET /v1/models HTTP/1.1\r\nHost: x\r\n"
			 "Authorization: Bearer %s\r\n\r\n", tok);
		struct http_request req;
		assert_true(http_parse_request(head, strlen(head), sizeof(head), &req) > 0);
		for (int round = 0; round < 2; round++) {
			struct jwt_claims claims;
			struct auth_identity id;
			struct auth_refusal why;
			assert_int_equal(auth_identify(&a, &req, 0, NULL, NOW, &cache, &claims, &id,
						       &why), 0);
			assert_int_equal(id.method, AUTH_JWT);
			assert_int_equal(claims.exp, INT64_MAX);
		}
		assert_int_equal(cache.misses, 1);
		assert_int_equal(cache.hits, 1);
		jwt_cache_free(&cache);
	}
	config_free(cfg);
}

static void issuer_and_audience_must_match(void **state)
{
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char claims[256];

#define CLAIMS(iss_aud) (snprintf(claims, sizeof(claims), "{\"tenant\":\"t\",\"exp\":%d%s}", \
				  NOW + 60, iss_aud), claims)
	(void)state;
	assert_int_equal(verify_claims(CLAIMS(",\"iss\":\"https://evil.example\",\"aud\":\"sluice\""),
				       &p, &c), JWT_BAD_ISSUER);
	assert_int_equal(verify_claims(CLAIMS(",\"aud\":\"sluice\""), &p, &c), JWT_BAD_ISSUER);
	assert_int_equal(verify_claims(CLAIMS(",\"iss\":\"" ISSUER "/\",\"aud\":\"sluice\""),
				       &p, &c), JWT_BAD_ISSUER);
	assert_int_equal(verify_claims(CLAIMS(",\"iss\":\"" ISSUER "\",\"aud\":\"other\""),
				       &p, &c), JWT_BAD_AUDIENCE);
	assert_int_equal(verify_claims(CLAIMS(",\"iss\":\"" ISSUER "\""), &p, &c), JWT_BAD_AUDIENCE);
	assert_int_equal(verify_claims(CLAIMS(",\"iss\":\"" ISSUER "\",\"aud\":[\"a\",\"b\"]"),
				       &p, &c), JWT_BAD_AUDIENCE);
	assert_int_equal(verify_claims(CLAIMS(",\"iss\":\"" ISSUER "\",\"aud\":[\"a\",7,\"sluice\"]"),
				       &p, &c), JWT_OK);
	assert_int_equal(verify_claims(CLAIMS(",\"iss\":\"" ISSUER "\",\"aud\":\"slu\\u0069ce\""),
				       &p, &c), JWT_OK);
	/* Nothing configured: nothing checked. */
	p.issuer = p.audience = NULL;
	assert_int_equal(verify_claims(CLAIMS(""), &p, &c), JWT_OK);
#undef CLAIMS
}

static void alg_none_and_others_are_refused(void **state)
{
	static const char *const headers[] = {
		"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"HS512\"}",
		"{\"alg\":\"RS384\"}", "{\"alg\":\"PS256\"}", "{\"alg\":\"EdDSA\"}", "{\"alg\":7}",
		"{\"alg\":\"rs256\"}",
	};
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char tok[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		sign_header(NONE, headers[i], good_claims(), tok, sizeof(tok));
		assert_int_equal(verify(tok, &p, &c), JWT_UNSUPPORTED_ALG);
		/* With a signature that would be valid for HS256. */
		sign_with(HS256, NULL, fx.hs, sizeof(fx.hs), headers[i], good_claims(), tok, sizeof(tok));
		assert_int_equal(verify(tok, &p, &c), JWT_UNSUPPORTED_ALG);
	}
	sign_header(NONE, "{\"typ\":\"JWT\"}", good_claims(), tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_MALFORMED);
}

static void algorithm_confusion_is_refused(void **state)
{
	struct jwt_policy p = policy();
	unsigned char *spki = NULL, n_raw[512];
	struct jwks *rsa_only = NULL, *ec_only = NULL;
	struct jwt_claims c;
	char doc[2048], tok[4096];
	BIGNUM *n = NULL;
	int spki_len, n_len;

	(void)state;
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"%s\",\"e\":\"%s\"}]}",
		 fx.rsa_n, fx.rsa_e);
	assert_int_equal(jwks_parse(doc, strlen(doc), &rsa_only, NULL, 0), 0);
	/* The classic attack: HMAC keyed with the public key's bytes. */
	spki_len = i2d_PUBKEY(fx.rsa, &spki);
	assert_true(spki_len > 0);
	assert_int_equal(EVP_PKEY_get_bn_param(fx.rsa, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	n_len = BN_bn2bin(n, n_raw);
	BN_free(n);
	sign_with(HS256, NULL, spki, (size_t)spki_len, "{\"alg\":\"HS256\"}", good_claims(), tok, sizeof(tok));
	assert_int_equal(jwt_verify(rsa_only, tok, strlen(tok), &p, NOW, &c), JWT_UNSUPPORTED_ALG);
	sign_with(HS256, NULL, n_raw, (size_t)n_len, "{\"alg\":\"HS256\",\"kid\":\"k\"}", good_claims(),
		  tok, sizeof(tok));
	assert_int_equal(jwt_verify(rsa_only, tok, strlen(tok), &p, NOW, &c), JWT_UNSUPPORTED_ALG);
	sign_with(HS256, NULL, fx.rsa_n, strlen(fx.rsa_n), "{\"alg\":\"HS256\"}", good_claims(),
		  tok, sizeof(tok));
	assert_int_equal(jwt_verify(rsa_only, tok, strlen(tok), &p, NOW, &c), JWT_UNSUPPORTED_ALG);
	OPENSSL_free(spki);
	/* RS256 (and HS256) on a key that is an EC key. */
	snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\",\"x\":\"%s\",\"y\":\"%s\"}]}",
		 fx.ec_x, fx.ec_y);
	assert_int_equal(jwks_parse(doc, strlen(doc), &ec_only, NULL, 0), 0);
	sign_header(RS256, "{\"alg\":\"RS256\",\"kid\":\"e\"}", good_claims(), tok, sizeof(tok));
	assert_int_equal(jwt_verify(ec_only, tok, strlen(tok), &p, NOW, &c), JWT_UNSUPPORTED_ALG);
	sign_header(RS256, "{\"alg\":\"RS256\"}", good_claims(), tok, sizeof(tok));
	assert_int_equal(jwt_verify(ec_only, tok, strlen(tok), &p, NOW, &c), JWT_UNSUPPORTED_ALG);
	/* The full set: an ES256 token naming the RSA key's kid. */
	sign_header(ES256, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", good_claims(), tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_UNSUPPORTED_ALG);
	jwks_free(rsa_only);
	jwks_free(ec_only);
}

static void unknown_kid_is_refused(void **state)
{
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char tok[4096], header[600], kid[300];

	(void)state;
	sign_token(RS256, "rsa2", good_claims(), tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_UNKNOWN_KEY);
	sign_token(RS256, "", good_claims(), tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_UNKNOWN_KEY);
	memset(kid, 'k', sizeof(kid) - 1);
	kid[sizeof(kid) - 1] = '\0';
	snprintf(header, sizeof(header), "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
	sign_header(RS256, header, good_claims(), tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_UNKNOWN_KEY);
	sign_header(RS256, "{\"alg\":\"RS256\",\"kid\":1}", good_claims(), tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_MALFORMED);
	/* An escaped kid is the same kid. */
	sign_header(RS256, "{\"alg\":\"RS256\",\"kid\":\"rs\\u0061\\u0031\"}", good_claims(), tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_OK);
}

static void header_rules(void **state)
{
	static const struct { const char *header; enum jwt_error want; } cases[] = {
		{ "{\"alg\":\"RS256\",\"typ\":\"jwt\"}", JWT_OK },
		{ "{\"alg\":\"RS256\"}", JWT_OK },
		{ "{\"alg\":\"RS256\",\"x5u\":\"https://x\",\"cty\":\"x\"}", JWT_OK },
		{ "{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}", JWT_UNSUPPORTED_HEADER },
		{ "{\"alg\":\"RS256\",\"typ\":\"JWS\"}", JWT_UNSUPPORTED_HEADER },
		{ "{\"alg\":\"RS256\",\"typ\":1}", JWT_UNSUPPORTED_HEADER },
		{ "{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"exp\":1}", JWT_UNSUPPORTED_HEADER },
		{ "{\"alg\":\"RS256\",\"crit\":[]}", JWT_UNSUPPORTED_HEADER },
		{ "{\"alg\":\"RS256\",\"alg\":\"RS256\"}", JWT_MALFORMED },
		{ "{\"alg\":\"HS256\",\"\\u0061lg\":\"RS256\"}", JWT_MALFORMED },
		{ "[\"RS256\"]", JWT_MALFORMED },
	};
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char tok[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum jwt_error e;

		sign_header(RS256, cases[i].header, good_claims(), tok, sizeof(tok));
		e = verify(tok, &p, &c);
		if (e != cases[i].want)
			fail_msg("%s: %s, wanted %s", cases[i].header, jwt_error_code(e),
				 jwt_error_code(cases[i].want));
	}
}

static void tenant_claim_rules(void **state)
{
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char claims[512], long_tenant[200];

#define T(extra) (snprintf(claims, sizeof(claims), "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE \
			   "\",\"exp\":%d%s}", NOW + 60, extra), claims)
	(void)state;
	assert_int_equal(verify_claims(T(""), &p, &c), JWT_MISSING_CLAIM);
	assert_int_equal(verify_claims(T(",\"tenant\":42"), &p, &c), JWT_BAD_CLAIM);
	assert_int_equal(verify_claims(T(",\"tenant\":\"\""), &p, &c), JWT_BAD_CLAIM);
	assert_int_equal(verify_claims(T(",\"tenant\":\"a\\u0000b\""), &p, &c), JWT_BAD_CLAIM);
	assert_int_equal(verify_claims(T(",\"tenant\":\"a\",\"tenant\":\"b\""), &p, &c), JWT_MALFORMED);
	assert_int_equal(verify_claims(T(",\"exp\":1"), &p, &c), JWT_MALFORMED);	/* exp twice */
	memset(long_tenant, 'x', 127);
	long_tenant[127] = '\0';
	snprintf(claims, sizeof(claims), "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d,\"tenant\":\"%s\"}", NOW + 60, long_tenant);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_OK);
	assert_int_equal(strlen(c.tenant), 127);
	snprintf(claims, sizeof(claims), "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d,\"tenant\":\"%sx\"}", NOW + 60, long_tenant);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_BAD_CLAIM);
	/* A namespaced claim name with dots is one name, not a path. */
	p.tenant_claim = "https://sluice.example/tenant";
	assert_int_equal(verify_claims(T(",\"https://sluice.example/tenant\":\"globex\""), &p, &c), JWT_OK);
	assert_string_equal(c.tenant, "globex");
	/* No tenant claim configured: none required. */
	p.tenant_claim = NULL;
	assert_int_equal(verify_claims(T(""), &p, &c), JWT_OK);
	assert_string_equal(c.tenant, "");
	/* sub is truncated to 127 bytes on a character boundary. */
	snprintf(claims, sizeof(claims), "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
		 "\",\"exp\":%d,\"sub\":\"%.126s\\u00e9\\u00e9\"}", NOW + 60, long_tenant);
	assert_int_equal(verify_claims(claims, &p, &c), JWT_OK);
	assert_int_equal(strlen(c.sub), 126);
	assert_int_equal(verify_claims(T(",\"sub\":5"), &p, &c), JWT_BAD_CLAIM);
#undef T
}

static void models_claim_forms(void **state)
{
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char claims[1024], many[512], extra[600];

#define M(extra) (snprintf(claims, sizeof(claims), "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE \
			   "\",\"tenant\":\"t\",\"exp\":%d%s}", NOW + 60, extra), claims)
	(void)state;
	assert_int_equal(verify_claims(M(""), &p, &c), JWT_OK);
	assert_false(c.has_models);
	assert_int_equal(c.nmodels, 0);
	assert_int_equal(verify_claims(M(",\"models\":\"gpt-4o  llama-*   mistral\""), &p, &c), JWT_OK);
	assert_true(c.has_models);
	assert_int_equal(c.nmodels, 3);
	assert_string_equal(c.models[0], "gpt-4o");
	assert_string_equal(c.models[1], "llama-*");
	assert_string_equal(c.models[2], "mistral");
	assert_int_equal(verify_claims(M(",\"models\":[\"a\",\"b/c\"]"), &p, &c), JWT_OK);
	assert_int_equal(c.nmodels, 2);
	assert_string_equal(c.models[1], "b/c");
	assert_int_equal(verify_claims(M(",\"models\":[]"), &p, &c), JWT_OK);
	assert_true(c.has_models);
	assert_int_equal(c.nmodels, 0);
	assert_int_equal(verify_claims(M(",\"models\":[1]"), &p, &c), JWT_BAD_CLAIM);
	assert_int_equal(verify_claims(M(",\"models\":{}"), &p, &c), JWT_BAD_CLAIM);
	assert_int_equal(verify_claims(M(",\"models\":[\"\"]"), &p, &c), JWT_BAD_CLAIM);
	/* 16 fit, 17 do not, in both forms. */
	strcpy(many, "[\"m\"");
	for (int i = 1; i < 16; i++)
		strcat(many, ",\"m\"");
	snprintf(extra, sizeof(extra), ",\"models\":%s]", many);
	assert_int_equal(verify_claims(M(extra), &p, &c), JWT_OK);
	assert_int_equal(c.nmodels, 16);
	snprintf(extra, sizeof(extra), ",\"models\":%s,\"m\"]", many);
	assert_int_equal(verify_claims(M(extra), &p, &c), JWT_BAD_CLAIM);
	strcpy(many, ",\"models\":\"m");
	for (int i = 1; i < 17; i++)
		strcat(many, " m");
	assert_int_equal(verify_claims(M(strcat(many, "\"")), &p, &c), JWT_BAD_CLAIM);
	/* Not configured: not read. */
	p.models_claim = NULL;
	assert_int_equal(verify_claims(M(",\"models\":5"), &p, &c), JWT_OK);
	assert_false(c.has_models);
#undef M
}

static void malformed_tokens_are_refused(void **state)
{
	static const char *const bad[] = {
		"", "abc", "a.b", "a.b.c.d", "..", ".eyJ9.", "eyJhbGciOiJSUzI1NiJ9..sig",
		"eyJhbGciOiJSUzI1NiJ9.e30.*", "ey*.e30.AAAA", "bm90IGpzb24.e30.AAAA",
		"eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.", "eyJhbGciOiJSUzI1NiJ9 .e30.AAAA",
	};
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char tok[4096], *huge;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum jwt_error e = verify(bad[i], &p, &c);

		if (e == JWT_OK || e == JWT_INTERNAL)
			fail_msg("\"%s\" gave %s", bad[i], jwt_error_code(e));
	}
	assert_int_equal(verify("", &p, &c), JWT_MALFORMED);
	assert_int_equal(verify("a.b.c.d", &p, &c), JWT_MALFORMED);
	/* Valid signature over a payload that is not a JSON object. */
	sign_token(RS256, NULL, "[1,2]", tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_MALFORMED);
	sign_token(RS256, NULL, "{\"exp\":", tok, sizeof(tok));
	assert_int_equal(verify(tok, &p, &c), JWT_MALFORMED);
	/* Size limit, before anything is decoded. */
	huge = malloc(JWT_MAX_TOKEN + 2);
	assert_non_null(huge);
	memset(huge, 'A', JWT_MAX_TOKEN + 1);
	huge[JWT_MAX_TOKEN + 1] = '\0';
	assert_int_equal(verify(huge, &p, &c), JWT_TOO_LARGE);
	huge[10] = huge[20] = '.';
	huge[JWT_MAX_TOKEN] = '\0';
	assert_int_not_equal(verify(huge, &p, &c), JWT_OK);
	free(huge);
	/* No key set yet. */
	sign_token(RS256, NULL, good_claims(), tok, sizeof(tok));
	assert_int_equal(jwt_verify(NULL, tok, strlen(tok), &p, NOW, &c), JWT_NO_KEYS);
}

/* Every prefix of valid tokens and random mutations: never accepted,
 * never a crash (the sanitizer build checks the memory accesses). */
static void truncated_and_mutated_tokens_are_safe(void **state)
{
	static const enum alg algs[] = { RS256, ES256, HS256 };
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char tok[4096], work[4096];
	uint32_t seed = 12345;

	(void)state;
	for (size_t a = 0; a < 3; a++) {
		size_t len;

		sign_token(algs[a], NULL, good_claims(), tok, sizeof(tok));
		len = strlen(tok);
		for (size_t n = 0; n < len; n++)
			assert_int_not_equal(jwt_verify(fx.set, tok, n, &p, NOW, &c), JWT_OK);
		for (int i = 0; i < 300; i++) {
			size_t flips = 1 + (seed >> 7) % 3;

			memcpy(work, tok, len + 1);
			for (size_t f = 0; f < flips; f++) {
				seed = seed * 1103515245u + 12345u;
				work[(seed >> 8) % len] = (char)(seed >> 20);
			}
			if (memcmp(work, tok, len) == 0)
				continue;
			assert_int_not_equal(jwt_verify(fx.set, work, len, &p, NOW, &c), JWT_OK);
		}
	}
	/* Pure garbage of every length up to 300. */
	for (size_t n = 0; n < 300; n++) {
		seed = seed * 1103515245u + 12345u;
		work[n] = (char)(seed >> 16);
		assert_int_not_equal(jwt_verify(fx.set, work, n + 1, &p, NOW, &c), JWT_OK);
	}
}

static void error_codes_and_messages(void **state)
{
	(void)state;
	for (int e = 0; e < JWT_ERROR_COUNT; e++) {
		assert_non_null(jwt_error_code(e));
		assert_non_null(jwt_error_message(e));
		for (int f = 0; f < e; f++)
			assert_string_not_equal(jwt_error_code(e), jwt_error_code(f));
	}
	assert_string_equal(jwt_error_message(JWT_EXPIRED), "the token has expired");
	assert_string_equal(jwt_error_message(JWT_BAD_SIGNATURE), "the token signature is invalid");
	assert_string_equal(jwt_error_code(JWT_EXPIRED), "token_expired");
	assert_string_equal(jwt_error_code(JWT_BAD_SIGNATURE), "invalid_signature");
	assert_string_equal(jwt_error_code((enum jwt_error)999), "invalid_token");
}

/* Warm-key cost per verify; printed, with a bound loose enough for the
 * sanitizer build (the target is <= 30 us in the optimized build). */
static void verify_cost(void **state)
{
	static const enum alg algs[] = { RS256, ES256, HS256 };
	struct jwt_policy p = policy();
	struct jwt_claims c;
	char tok[4096];

	(void)state;
	for (size_t a = 0; a < 3; a++) {
		const int rounds = 500;
		double best = 1e9;

		sign_token(algs[a], NULL, good_claims(), tok, sizeof(tok));
		/* The best of a few batches: the machine may be busy. */
		for (int batch = 0; batch < 4; batch++) {
			uint64_t t0 = clock_mono_ns();
			double us;

			for (int i = 0; i < rounds; i++)
				assert_int_equal(verify(tok, &p, &c), JWT_OK);
			us = (double)(clock_mono_ns() - t0) / rounds / 1000.0;
			if (us < best)
				best = us;
		}
		print_message("%s verify: %.1f us\n", alg_name(algs[a]), best);
		assert_true(best < 2000.0);
	}
}

/* ---- jwks_load_file --------------------------------------------------------- */

static int setup_resources(void **state)
{
	(void)state;
	fx.child = -1;
	fx.lfd = -1;
	fx.path[0] = '\0';
	return 0;
}

static int teardown_resources(void **state)
{
	(void)state;
	if (fx.child > 0) {
		kill(fx.child, SIGKILL);
		waitpid(fx.child, NULL, 0);
		fx.child = -1;
	}
	if (fx.lfd >= 0)
		close(fx.lfd);
	fx.lfd = -1;
	if (fx.path[0])
		unlink(fx.path);
	fx.path[0] = '\0';
	return 0;
}

static void write_temp(const char *text)
{
	int fd;

	strcpy(fx.path, "/tmp/sluice-jwks-XXXXXX");
	fd = mkstemp(fx.path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void jwks_loads_from_a_file(void **state)
{
	struct jwks *set = NULL;
	char err[512] = "";

	(void)state;
	write_temp(fx.jwks);
	assert_int_equal(jwks_load_file(fx.path, &set, err, sizeof(err)), 0);
	assert_int_equal(jwks_count(set), 3);
	jwks_free(set);
	unlink(fx.path);
	assert_int_equal(jwks_load_file(fx.path, &set, err, sizeof(err)), -ENOENT);
	assert_null(set);
	assert_non_null(strstr(err, fx.path));
	assert_int_equal(jwks_load_file("/tmp", &set, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	write_temp("{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}");
	assert_int_equal(jwks_load_file(fx.path, &set, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "keys[0]: oct key is 3 bytes"));
	assert_non_null(strstr(err, fx.path));
}

/* ---- jwks_fetch_url against a forked one-shot server ------------------------ */

enum serve_mode { SERVE_PLAIN, SERVE_SILENT, SERVE_TLS };

/* The child: accept one client, read its request head, answer, close. */
static void serve_child(int lfd, enum serve_mode mode, const char *response,
			EVP_PKEY *key, X509 *cert)
{
	char req[8192];
	size_t got = 0;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int fd;

	alarm(20);	/* never outlive a lost parent */
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(1);
	if (mode == SERVE_SILENT) {
		pause();
		_exit(0);
	}
	if (mode == SERVE_TLS) {
		ctx = SSL_CTX_new(TLS_server_method());
		if (!ctx || SSL_CTX_use_certificate(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, key) != 1)
			_exit(2);
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1)
			_exit(3);
	}
	while (got < sizeof(req) - 1 && !memmem(req, got, "\r\n\r\n", 4)) {
		ssize_t r = ssl ? SSL_read(ssl, req + got, (int)(sizeof(req) - 1 - got))
				: read(fd, req + got, sizeof(req) - 1 - got);
		if (r <= 0)
			_exit(4);
		got += (size_t)r;
	}
	req[got] = '\0';
	/* The request the gateway must send. */
	if (strncmp(req, "GET /keys/jwks.json?v=1 HTTP/1.1\r\n", 34) != 0 || !strstr(req, "\r\nHost: "))
		_exit(5);
	for (size_t off = 0, n = strlen(response); off < n;) {
		/* Write in small pieces so the client sees split reads. */
		size_t k = n - off < 700 ? n - off : 700;
		ssize_t w = ssl ? SSL_write(ssl, response + off, (int)k) : write(fd, response + off, k);

		if (w <= 0)
			_exit(6);
		off += (size_t)w;
	}
	if (ssl)
		SSL_shutdown(ssl);
	shutdown(fd, SHUT_WR);
	_exit(0);
}

/* Listen on a free loopback port and fork the server; returns the port. */
static int start_server(enum serve_mode mode, const char *response, EVP_PKEY *key, X509 *cert)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	fx.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fx.lfd >= 0);
	assert_int_equal(bind(fx.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fx.lfd, 4), 0);
	assert_int_equal(getsockname(fx.lfd, (struct sockaddr *)&sa, &len), 0);
	fflush(NULL);
	fx.child = fork();
	assert_true(fx.child >= 0);
	if (fx.child == 0)
		serve_child(fx.lfd, mode, response, key, cert);
	close(fx.lfd);
	fx.lfd = -1;
	return ntohs(sa.sin_port);
}

/* The child's exit status: 0 when it saw the request it expected. */
static int reap_server(void)
{
	int status = 0;

	assert_int_equal(waitpid(fx.child, &status, 0), fx.child);
	fx.child = -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int fetch(const char *host, int port, bool tls, unsigned timeout_ms, const char *ca,
		 struct jwks **set, char *err, size_t errcap)
{
	char url[256];

	snprintf(url, sizeof(url), "%s://%s:%d/keys/jwks.json?v=1#frag", tls ? "https" : "http",
		 host, port);
	return jwks_fetch_url(url, timeout_ms, ca, set, err, errcap);
}

static char *response_with_length(void)
{
	static char text[8192];

	snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%sTRAILING GARBAGE", strlen(fx.jwks), fx.jwks);
	return text;
}

static void fetch_content_length_body(void **state)
{
	struct jwks *set = NULL;
	char err[256] = "";
	int port;

	(void)state;
	port = start_server(SERVE_PLAIN, response_with_length(), NULL, NULL);
	if (fetch("127.0.0.1", port, false, 5000, NULL, &set, err, sizeof(err)))
		fail_msg("fetch: %s", err);
	assert_int_equal(jwks_count(set), 3);
	jwks_free(set);
	assert_int_equal(reap_server(), 0);
}

static void fetch_chunked_body_by_name(void **state)
{
	static char text[8192];
	size_t half = strlen(fx.jwks) / 2;
	struct jwks *set = NULL;
	char err[256] = "";
	int port;

	(void)state;
	snprintf(text, sizeof(text),
		 "HTTP/1.1 100 Continue\r\n\r\n"
		 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "%zx;ext=1\r\n%.*s\r\n%zx\r\n%s\r\n0\r\nX-Trailer: y\r\n\r\n",
		 half, (int)half, fx.jwks, strlen(fx.jwks) - half, fx.jwks + half);
	port = start_server(SERVE_PLAIN, text, NULL, NULL);
	/* "localhost" goes through the resolver thread. */
	if (fetch("localhost", port, false, 5000, NULL, &set, err, sizeof(err)))
		fail_msg("fetch: %s", err);
	assert_int_equal(jwks_count(set), 3);
	jwks_free(set);
	assert_int_equal(reap_server(), 0);
}

static void fetch_close_delimited_body(void **state)
{
	static char text[8192];
	struct jwks *set = NULL;
	char err[256] = "";
	int port;

	(void)state;
	snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n%s", fx.jwks);
	port = start_server(SERVE_PLAIN, text, NULL, NULL);
	if (fetch("127.0.0.1", port, false, 5000, NULL, &set, err, sizeof(err)))
		fail_msg("fetch: %s", err);
	assert_int_equal(jwks_count(set), 3);
	jwks_free(set);
	assert_int_equal(reap_server(), 0);
}

static void fetch_refuses_non_200(void **state)
{
	struct jwks *set = NULL;
	char err[256] = "";
	int port;

	(void)state;
	port = start_server(SERVE_PLAIN, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
			    NULL, NULL);
	assert_int_equal(fetch("127.0.0.1", port, false, 5000, NULL, &set, err, sizeof(err)), -EBADMSG);
	assert_null(set);
	assert_non_null(strstr(err, "404"));
	assert_int_equal(reap_server(), 0);
	port = start_server(SERVE_PLAIN, "HTTP/1.1 302 Found\r\nLocation: http://x/\r\nContent-Length: 0\r\n\r\n",
			    NULL, NULL);
	assert_int_equal(fetch("127.0.0.1", port, false, 5000, NULL, &set, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "redirects are not followed"));
	assert_int_equal(reap_server(), 0);
}

static void fetch_refuses_bodies_over_the_cap(void **state)
{
	struct jwks *set = NULL;
	char err[256] = "";
	int port;

	(void)state;
	port = start_server(SERVE_PLAIN, "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n{", NULL, NULL);
	assert_int_equal(fetch("127.0.0.1", port, false, 5000, NULL, &set, err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "larger than"));
	reap_server();
	/* A JSON body that is not a JWKS: the parse error comes through. */
	port = start_server(SERVE_PLAIN, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", NULL, NULL);
	assert_int_equal(fetch("127.0.0.1", port, false, 5000, NULL, &set, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\"keys\""));
	assert_int_equal(reap_server(), 0);
}

static void fetch_times_out_on_a_silent_server(void **state)
{
	struct jwks *set = NULL;
	char err[256] = "";
	uint64_t t0;
	int port;

	(void)state;
	port = start_server(SERVE_SILENT, NULL, NULL, NULL);
	t0 = clock_mono_ns();
	assert_int_equal(fetch("127.0.0.1", port, false, 300, NULL, &set, err, sizeof(err)), -ETIMEDOUT);
	assert_true(clock_mono_ns() - t0 >= 290000000u);
	assert_true(clock_mono_ns() - t0 < 2000000000u);
	assert_non_null(strstr(err, "timed out"));
	assert_null(set);
	/* Same over TLS: the handshake never completes. */
	t0 = clock_mono_ns();
	assert_int_equal(fetch("127.0.0.1", port, true, 300, NULL, &set, err, sizeof(err)), -ETIMEDOUT);
	assert_true(clock_mono_ns() - t0 < 2000000000u);
}

static void fetch_reports_refused_and_bad_urls(void **state)
{
	static const char *const urls[] = {
		"ftp://example.com/jwks", "http://", "http:///x", "http://user@host/x",
		"http://host:99999/x", "http://host:/x", "http://host:8x/", "http://[::1/x",
		"http://host/a b", "jwks.json",
	};
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct jwks *set = NULL;
	char err[256] = "";
	int fd, port;

	(void)state;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		if (jwks_fetch_url(urls[i], 1000, NULL, &set, err, sizeof(err)) != -EINVAL)
			fail_msg("%s accepted", urls[i]);
	/* A port nobody listens on: bound, then closed. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	assert_int_equal(fetch("127.0.0.1", port, false, 2000, NULL, &set, err, sizeof(err)), -ECONNREFUSED);
	assert_non_null(strstr(err, "connecting to 127.0.0.1"));
	/* No resolver in a sandbox may mean a timeout instead of NXDOMAIN. */
	int rc = fetch("name.invalid", port, false, 1500, NULL, &set, err, sizeof(err));
	assert_true(rc == -EHOSTUNREACH || rc == -ETIMEDOUT);
	assert_non_null(strstr(err, "resolving name.invalid"));
	assert_null(set);
}

/* HTTPS: a CA (written to fx.path for ca_file) and a server certificate
 * it issued for the names in san. */
struct tls_server {
	EVP_PKEY *ca_key, *key;
	X509 *ca, *cert;
};

static void tls_server_make(struct tls_server *s, const char *san)
{
	struct fixture_cert ca = { .cn = "sluice test CA", .serial = 1 };
	struct fixture_cert leaf = { .cn = "sluice test server", .serial = 2, .san = san,
				     .eku = "serverAuth" };
	int fd;

	s->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	s->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(s->ca_key);
	assert_non_null(s->key);
	ca.key = s->ca_key;
	s->ca = fixture_make_cert(&ca);
	leaf.key = s->key;
	leaf.issuer = s->ca;
	leaf.issuer_key = s->ca_key;
	s->cert = fixture_make_cert(&leaf);
	strcpy(fx.path, "/tmp/sluice-jwks-ca-XXXXXX");
	fd = mkstemp(fx.path);
	assert_true(fd >= 0);
	close(fd);
	fixture_write_cert(fx.path, s->ca);
}

static void tls_server_free(struct tls_server *s)
{
	X509_free(s->cert);
	X509_free(s->ca);
	EVP_PKEY_free(s->key);
	EVP_PKEY_free(s->ca_key);
}

static void fetch_https_verifies_the_server(void **state)
{
	struct tls_server s;
	struct jwks *set = NULL;
	char err[256] = "";
	int port;

	(void)state;
	tls_server_make(&s, "DNS:localhost,IP:127.0.0.1");
	port = start_server(SERVE_TLS, response_with_length(), s.key, s.cert);
	if (fetch("localhost", port, true, 5000, fx.path, &set, err, sizeof(err)))
		fail_msg("https fetch: %s", err);
	assert_int_equal(jwks_count(set), 3);
	jwks_free(set);
	set = NULL;
	assert_int_equal(reap_server(), 0);
	port = start_server(SERVE_TLS, response_with_length(), s.key, s.cert);
	if (fetch("127.0.0.1", port, true, 5000, fx.path, &set, err, sizeof(err)))
		fail_msg("https fetch by address: %s", err);
	jwks_free(set);
	set = NULL;
	reap_server();
	/* The system trust store does not know this CA. */
	port = start_server(SERVE_TLS, response_with_length(), s.key, s.cert);
	assert_int_equal(fetch("localhost", port, true, 5000, NULL, &set, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "certificate verify failed"));
	reap_server();
	tls_server_free(&s);
	assert_null(set);
}

static void fetch_https_checks_the_host_name(void **state)
{
	struct tls_server s;
	struct jwks *set = NULL;
	char err[256] = "";
	int port;

	(void)state;
	tls_server_make(&s, "DNS:keys.example.com");
	port = start_server(SERVE_TLS, response_with_length(), s.key, s.cert);
	assert_int_equal(fetch("localhost", port, true, 5000, fx.path, &set, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "certificate verify failed"));
	reap_server();
	port = start_server(SERVE_TLS, response_with_length(), s.key, s.cert);
	assert_int_equal(fetch("127.0.0.1", port, true, 5000, fx.path, &set, err, sizeof(err)), -EPROTO);
	reap_server();
	tls_server_free(&s);
	assert_null(set);
}

int main(void)
{
#define R(f) cmocka_unit_test_setup_teardown(f, setup_resources, teardown_resources)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(b64url_round_trips_every_length),
		cmocka_unit_test(b64url_known_vectors_and_strictness),
		cmocka_unit_test(jwks_parses_each_key_type),
		cmocka_unit_test(jwks_refuses_short_rsa_key),
		cmocka_unit_test(jwks_reports_bad_documents),
		cmocka_unit_test(jwks_skips_unusable_keys_and_accepts_padding),
		cmocka_unit_test(each_algorithm_is_accepted),
		cmocka_unit_test(several_fitting_keys_are_each_tried),
		cmocka_unit_test(flipped_bytes_break_the_signature),
		cmocka_unit_test(es256_wants_raw_64_byte_signatures),
		cmocka_unit_test(times_are_checked_with_leeway),
		cmocka_unit_test(extreme_times_do_not_overflow),
		cmocka_unit_test(token_cache_takes_far_exp),
		cmocka_unit_test(issuer_and_audience_must_match),
		cmocka_unit_test(alg_none_and_others_are_refused),
		cmocka_unit_test(algorithm_confusion_is_refused),
		cmocka_unit_test(unknown_kid_is_refused),
		cmocka_unit_test(header_rules),
		cmocka_unit_test(tenant_claim_rules),
		cmocka_unit_test(models_claim_forms),
		cmocka_unit_test(malformed_tokens_are_refused),
		cmocka_unit_test(truncated_and_mutated_tokens_are_safe),
		cmocka_unit_test(error_codes_and_messages),
		cmocka_unit_test(verify_cost),
		R(jwks_loads_from_a_file),
		R(fetch_content_length_body),
		R(fetch_chunked_body_by_name),
		R(fetch_close_delimited_body),
		R(fetch_refuses_non_200),
		R(fetch_refuses_bodies_over_the_cap),
		R(fetch_times_out_on_a_silent_server),
		R(fetch_reports_refused_and_bad_urls),
		R(fetch_https_verifies_the_server),
		R(fetch_https_checks_the_host_name),
	};
#undef R
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
