/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bearer-token verification (auth/jwt.h) against a fixed key set: an RSA
 * 2048 and a P-256 public key (test keys made for this target; the seeds
 * in corpus/jwt were signed with their private halves) and an HS256
 * secret the target knows, so it can also sign what the fuzzer writes and
 * reach the claims checks with any header and payload.
 *
 * The first input byte chooses:
 *   bit 0  0: the rest is a compact token, verified as it is;
 *          1: the rest is "HEADER\nPAYLOAD" (or just PAYLOAD, under a
 *             valid HS256 header), base64url-encoded and signed here;
 *   bit 1  the permissive policy (exp only) or the strict one (issuer,
 *          audience, tenant and models claims, iat checked).
 * The clock is fixed, so a run is reproducible.
 *
 * Properties, besides no crash, leak or undefined behaviour (exp and nbf
 * of INT64_MAX or 1e400 included):
 * - verification is deterministic and its error has a code and message;
 * - an accepted token has not expired by the rule the token caches use
 *   (jwt_expired), and its claims fit their buffers (tenant, models, a sub
 *   truncated on a UTF-8 boundary);
 * - changing one character of an accepted token's payload or signature
 *   makes it fail;
 * - a token signed here under a valid header never fails on its signature,
 *   key or header.
 */
#include <errno.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/b64url.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "fuzz.h"

#define NOW 1700000000
#define HS_SECRET "sluice-fuzz-hs256-secret-0123456"	/* 32 bytes */
#define HS_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs\"}"

static const char jwks_doc[] =
	"{\"keys\":["
	"{\"kty\":\"RSA\",\"kid\":\"rsa\",\"use\":\"sig\",\"alg\":\"RS256\",\"e\":\"AQAB\",\"n\":"
	"\"yT8MDkrOiMpjSE_lz07bFkuHTqDZ4a6w0BNCz7wtRv1SACF1JCBRlRkinOaPMCfRYG0Lo1UbBUWyHNr1ZezSq-s"
	"FcCk9fdr9fiRVFVEkheT6I8BW9hVdlm8Hy90jHwdXZP17fA-oI_AZBiNhJT7F_1jG1NsTDaLwKNFcVrdwTd1xpaBw"
	"jhjLTtlE80VdDvHaqZ4CXEr4ieeomaFRPlbIaCpMlnQFPY8DOTJ4j9ArJFXAn3PGl8AXWdHDknW4HN2DuqeFvQtU"
	"wAgqx1fD5Ek9InyESdnUq0st_yd7W5CQfoZw7lE10hpLJC-7R0VKE81AFLOr4uW9JIWxDgtn5uGSjw\"},"
	"{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"use\":\"sig\","
	"\"x\":\"65MpN6rz9pk7tRbce7CDbtq9MZsibcxoZpjb2W5OELc\","
	"\"y\":\"7Bp5clszZaYKOKkyK3Ih1y6PY0zbE3V0Kl0BsunQcV8\"},"
	"{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"c2x1aWNlLWZ1enotaHMyNTYtc2VjcmV0LTAxMjM0NTY\"}"
	"]}";

static struct jwks *keys;

static const struct jwt_policy permissive = { .leeway_s = 60, .require_exp = true };
static const struct jwt_policy strict = {
	.issuer = "https://idp.example", .audience = "sluice", .leeway_s = 60,
	.require_exp = true, .check_iat = true, .tenant_claim = "tenant",
	.models_claim = "models",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	if (jwks_parse(jwks_doc, sizeof(jwks_doc) - 1, &keys, err, sizeof(err)) ||
	    jwks_count(keys) != 3) {
		fprintf(stderr, "fuzz_jwt: the fixed key set: %s\n", err);
		abort();
	}
	return 0;
}

/* base64url(header) '.' base64url(payload) '.' base64url(HS256 MAC). */
static char *sign_hs256(const char *head, size_t hlen, const char *body, size_t blen,
			size_t *len)
{
	size_t cap = B64URL_ENCODED_LEN(hlen) + B64URL_ENCODED_LEN(blen) + 64;
	char *tok = malloc(cap);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t n = 0;

	n += (size_t)b64url_encode(head, hlen, tok, cap);
	tok[n++] = '.';
	n += (size_t)b64url_encode(body, blen, tok + n, cap - n);
	if (!HMAC(EVP_sha256(), HS_SECRET, 32, (const unsigned char *)tok, n, mac, &maclen))
		abort();
	tok[n++] = '.';
	n += (size_t)b64url_encode(mac, maclen, tok + n, cap - n);
	*len = n;
	return tok;
}

/* A NUL-terminated string that is valid UTF-8 (what a truncated sub must be). */
static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
		if (!n)
			return false;
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += n;
	}
	return true;
}

static void check_claims(const struct jwt_claims *c, const struct jwt_policy *p)
{
	FUZZ_CHECK(!jwt_expired(c->exp, p->leeway_s, NOW), "accepted with exp %lld", (long long)c->exp);
	FUZZ_CHECK(memchr(c->sub, '\0', sizeof(c->sub)) && utf8_ok(c->sub), "sub");
	FUZZ_CHECK(memchr(c->tenant, '\0', sizeof(c->tenant)), "tenant");
	FUZZ_CHECK(!p->tenant_claim || c->tenant[0], "no tenant");
	FUZZ_CHECK(c->nmodels <= JWT_MAX_MODELS && (c->has_models || !c->nmodels), "models");
	for (size_t i = 0; i < c->nmodels; i++)
		FUZZ_CHECK(memchr(c->models[i], '\0', JWT_CLAIM_MAX) && c->models[i][0], "model %zu", i);
}

static bool same_claims(const struct jwt_claims *a, const struct jwt_claims *b)
{
	if (strcmp(a->tenant, b->tenant) || strcmp(a->sub, b->sub) || a->exp != b->exp ||
	    a->has_models != b->has_models || a->nmodels != b->nmodels)
		return false;
	for (size_t i = 0; i < a->nmodels; i++)
		if (strcmp(a->models[i], b->models[i]))
			return false;
	return true;
}

/* Change the character at i to another base64url character. */
static void tamper_at(char *tok, size_t len, size_t i, const struct jwt_policy *p)
{
	struct jwt_claims c;
	char saved = tok[i];

	tok[i] = saved == 'A' ? 'B' : 'A';
	FUZZ_CHECK(jwt_verify(keys, tok, len, p, NOW, &c) != JWT_OK,
		   "accepted with byte %zu changed", i);
	tok[i] = saved;
}

static void verify(char *tok, size_t len, const struct jwt_policy *p, bool signed_here)
{
	struct jwt_claims c, again;
	enum jwt_error e = jwt_verify(keys, tok, len, p, NOW, &c);

	FUZZ_CHECK((unsigned)e < JWT_ERROR_COUNT && jwt_error_code(e) && jwt_error_message(e),
		   "error %d", (int)e);
	FUZZ_CHECK(jwt_verify(keys, tok, len, p, NOW, &again) == e, "not deterministic");
	if (signed_here)
		FUZZ_CHECK(e != JWT_BAD_SIGNATURE && e != JWT_UNKNOWN_KEY && e != JWT_UNSUPPORTED_ALG &&
			   e != JWT_UNSUPPORTED_HEADER && e != JWT_NO_KEYS && e != JWT_INTERNAL,
			   "a token signed with the key failed: %s", jwt_error_code(e));
	if (e != JWT_OK)
		return;
	FUZZ_CHECK(same_claims(&c, &again), "claims differ between two runs");
	check_claims(&c, p);

	const char *d1 = memchr(tok, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
	FUZZ_CHECK(d2 && !memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)), "not three parts");
	tamper_at(tok, len, (size_t)(d1 + 1 - tok), p);	/* payload */
	if (d2 + 1 < tok + len)
		tamper_at(tok, len, (size_t)(d2 + 1 - tok), p);	/* signature */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const struct jwt_policy *p = data[0] & 2 ? &strict : &permissive;
	const char *rest = (const char *)data + 1;
	size_t n = size - 1;

	if (!(data[0] & 1)) {
		char *tok = fuzz_dup(rest, n);
		verify(tok, n, p, false);
		free(tok);
		return 0;
	}
	const char *nl = memchr(rest, '\n', n);
	size_t len;
	char *tok;
	if (nl)
		tok = sign_hs256(rest, (size_t)(nl - rest), nl + 1, n - (size_t)(nl + 1 - rest), &len);
	else
		tok = sign_hs256(HS_HEADER, sizeof(HS_HEADER) - 1, rest, n, &len);
	verify(tok, len, p, !nl && len <= JWT_MAX_TOKEN);
	free(tok);
	return 0;
}
