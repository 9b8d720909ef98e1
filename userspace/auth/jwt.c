/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compact JWS verification on the request path.  Order of checks: framing,
 * header (alg, crit, typ, kid), base64url of every part, signature, then
 * claims, so a forged token learns nothing about the claims policy.
 */
#include "auth/jwt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "api/json.h"
#include "auth/b64url.h"
#include "core/sat.h"

/* Decoded header and payload share one stack buffer: together they are at
 * most 3/4 of the token. */
#define JSON_BUF_MAX B64URL_DECODED_MAX(JWT_MAX_TOKEN)
/* The longest signature: an RSA one as long as the largest modulus. */
#define SIG_MAX (JWK_RSA_MAX_BITS / 8)
#define ES256_SIG_LEN 64
#define HS256_MAC_LEN 32

/* A member of an object the verifier reads; v.type is JSON_NONE when absent. */
struct want {
	const char *name;
	struct json_val v;
};

/* The parts of a compact token. */
struct jws {
	struct str header_b64, payload_b64, sig_b64;
	struct str signing_input;	/* header_b64 '.' payload_b64 */
	struct json_val header, payload;
	unsigned char sig[SIG_MAX];
	size_t sig_len;
	enum jwk_type key_type;		/* what the alg needs */
	char kid[JWK_KID_MAX + 1];
	size_t kid_len;
	bool has_kid;
};

/*
 * Fill each want from obj's members in one pass.  A name the verifier
 * reads must appear once: parsers that keep the first and the last
 * duplicate would otherwise disagree about what a token says.  -EEXIST on a
 * duplicate.  Member names come from json_iter raw and escaped, between
 * their quotes, so widening the span by one byte each side gives a
 * JSON_STRING json_string_eq can unescape.
 */
static int collect_members(const struct json_val *obj, struct want *w, size_t n)
{
	struct json_iter it;
	struct json_val v;
	struct str key;

	json_iter_init(&it, obj);
	while (json_iter_next(&it, &key, &v)) {
		struct json_val name = { JSON_STRING, { key.p - 1, key.len + 2 } };

		for (size_t i = 0; i < n; i++) {
			if (!w[i].name || !json_string_eq(&name, w[i].name))
				continue;
			if (w[i].v.type != JSON_NONE)
				return -EEXIST;
			w[i].v = v;
		}
	}
	return 0;
}

/* Split token into its three parts: exactly two dots. */
static enum jwt_error split_token(const char *token, size_t len, struct jws *j)
{
	const char *end = token + len;
	const char *d1 = memchr(token, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;

	if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
		return JWT_MALFORMED;
	j->header_b64 = (struct str){ token, (size_t)(d1 - token) };
	j->payload_b64 = (struct str){ d1 + 1, (size_t)(d2 - d1 - 1) };
	j->sig_b64 = (struct str){ d2 + 1, (size_t)(end - d2 - 1) };
	j->signing_input = (struct str){ token, (size_t)(d2 - token) };
	if (j->header_b64.len == 0 || j->payload_b64.len == 0)
		return JWT_MALFORMED;
	return JWT_OK;
}

/* base64url part → JSON object at buf[0..cap), *used set to its length. */
static enum jwt_error decode_object(struct str b64, char *buf, size_t cap,
				    size_t *used, struct json_val *obj)
{
	if (b64url_decode(b64.p, b64.len, buf, cap, used, 0) ||
	    json_parse(buf, *used, obj, NULL, NULL) || obj->type != JSON_OBJECT)
		return JWT_MALFORMED;
	return JWT_OK;
}

/* The key type an accepted alg needs; 0 for every other alg. */
static enum jwk_type alg_key_type(const struct json_val *alg)
{
	if (json_string_eq(alg, "RS256"))
		return JWK_RSA;
	if (json_string_eq(alg, "ES256"))
		return JWK_EC_P256;
	if (json_string_eq(alg, "HS256"))
		return JWK_OCT;
	return 0;
}

/* "typ" may be absent or JWT in any case (RFC 7519 section 5.1). */
static bool typ_ok(const struct json_val *typ)
{
	char t[4];

	if (typ->type == JSON_NONE)
		return true;
	return typ->type == JSON_STRING && json_string(typ, t, sizeof(t)) == 3 &&
	       strcasecmp(t, "JWT") == 0;
}

static enum jwt_error check_header(struct jws *j)
{
	struct want w[] = { { .name = "alg" }, { .name = "crit" }, { .name = "typ" }, { .name = "kid" } };
	int n;

	if (collect_members(&j->header, w, 4))
		return JWT_MALFORMED;
	if (w[0].v.type != JSON_STRING)
		return w[0].v.type == JSON_NONE ? JWT_MALFORMED : JWT_UNSUPPORTED_ALG;
	j->key_type = alg_key_type(&w[0].v);
	if (j->key_type == 0)
		return JWT_UNSUPPORTED_ALG;
	/* No extension is understood, so none may be critical. */
	if (w[1].v.type != JSON_NONE || !typ_ok(&w[2].v))
		return JWT_UNSUPPORTED_HEADER;
	j->has_kid = w[3].v.type != JSON_NONE;
	if (!j->has_kid)
		return JWT_OK;
	if (w[3].v.type != JSON_STRING)
		return JWT_MALFORMED;
	n = json_string(&w[3].v, j->kid, sizeof(j->kid));
	if (n < 0)
		return JWT_UNKNOWN_KEY;	/* longer than any kid a set keeps */
	j->kid_len = (size_t)n;
	return JWT_OK;
}

/* Decode and check every part; the payload is parsed later, after the
 * signature, but its base64url is checked before paying for the
 * signature. */
static enum jwt_error parse_token(const char *token, size_t len, char *buf, struct jws *j)
{
	size_t hlen, plen;
	enum jwt_error e;

	if ((e = split_token(token, len, j)) ||
	    (e = decode_object(j->header_b64, buf, JSON_BUF_MAX, &hlen, &j->header)) ||
	    (e = check_header(j)))
		return e;
	if (b64url_decode(j->payload_b64.p, j->payload_b64.len, buf + hlen,
			  JSON_BUF_MAX - hlen, &plen, 0))
		return JWT_MALFORMED;
	j->payload = (struct json_val){ JSON_NONE, { buf + hlen, plen } };
	switch (b64url_decode(j->sig_b64.p, j->sig_b64.len, j->sig, sizeof(j->sig), &j->sig_len, 0)) {
	case 0:
		return j->sig_len ? JWT_OK : JWT_BAD_SIGNATURE;
	case -ENOSPC:
		return JWT_BAD_SIGNATURE;	/* longer than any key's */
	default:
		return JWT_MALFORMED;
	}
}

/* ---- signatures ---------------------------------------------------------- */

/* One DER INTEGER of the unsigned big-endian v[0..n): minimal, with a zero
 * byte in front when the top bit is set. */
static size_t der_integer(unsigned char *p, const unsigned char *v, size_t n)
{
	size_t pad;

	while (n > 1 && v[0] == 0) {
		v++;
		n--;
	}
	pad = (v[0] & 0x80) ? 1 : 0;
	p[0] = 0x02;
	p[1] = (unsigned char)(n + pad);
	p[2] = 0;
	memcpy(p + 2 + pad, v, n);
	return 2 + pad + n;
}

/* JOSE's ES256 signature is r || s, 32 bytes each (RFC 7518 section 3.4);
 * OpenSSL wants the DER ECDSA-Sig-Value SEQUENCE { r, s }.  At most
 * 2 + 2 * 35 = 72 bytes, always the short length form. */
static size_t ecdsa_raw_to_der(const unsigned char raw[ES256_SIG_LEN], unsigned char der[72])
{
	size_t n = 2;

	n += der_integer(der + n, raw, 32);
	n += der_integer(der + n, raw + 32, 32);
	der[0] = 0x30;
	der[1] = (unsigned char)(n - 2);
	return n;
}

/* Public-key signature over msg with SHA-256: JWT_OK, JWT_BAD_SIGNATURE or
 * JWT_INTERNAL.  RSA keys default to PKCS #1 v1.5 padding, which RS256 is. */
static enum jwt_error pkey_verify(EVP_PKEY *pkey, struct str msg,
				  const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	enum jwt_error e = JWT_INTERNAL;

	if (ctx && EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1)
		e = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg.p, msg.len) == 1
			? JWT_OK : JWT_BAD_SIGNATURE;
	EVP_MD_CTX_free(ctx);
	return e;
}

static enum jwt_error verify_hs256(const struct jwk *k, const struct jws *j)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (j->sig_len != HS256_MAC_LEN)
		return JWT_BAD_SIGNATURE;
	if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len,
		  (const unsigned char *)j->signing_input.p, j->signing_input.len, mac, &maclen) ||
	    maclen != HS256_MAC_LEN)
		return JWT_INTERNAL;
	return CRYPTO_memcmp(mac, j->sig, HS256_MAC_LEN) == 0 ? JWT_OK : JWT_BAD_SIGNATURE;
}

static enum jwt_error verify_with_key(const struct jwk *k, const struct jws *j)
{
	unsigned char der[72];

	switch (k->type) {
	case JWK_OCT:
		return verify_hs256(k, j);
	case JWK_RSA:
		/* RFC 8017 section 8.2.2: exactly the modulus length. */
		if (j->sig_len != (k->bits + 7) / 8)
			return JWT_BAD_SIGNATURE;
		return pkey_verify(k->pkey, j->signing_input, j->sig, j->sig_len);
	case JWK_EC_P256:
		if (j->sig_len != ES256_SIG_LEN)
			return JWT_BAD_SIGNATURE;
		return pkey_verify(k->pkey, j->signing_input, der, ecdsa_raw_to_der(j->sig, der));
	}
	return JWT_INTERNAL;
}

static bool kid_matches(const struct jwk *k, const struct jws *j)
{
	return k->has_kid && strlen(k->kid) == j->kid_len &&
	       memcmp(k->kid, j->kid, j->kid_len) == 0;
}

/*
 * Pick the key and check the signature.  With a kid, only keys of that kid
 * are candidates (none: JWT_UNKNOWN_KEY); a candidate must be of the type
 * the alg needs (the set only keeps keys whose own alg, if any, is that
 * type's), otherwise the token asks for an algorithm its key does not
 * allow: JWT_UNSUPPORTED_ALG.  Several fitting keys are tried in turn.
 */
static enum jwt_error verify_signature(const struct jwks *keys, const struct jws *j)
{
	bool named = false, fitting = false;

	for (size_t i = 0; i < jwks_count(keys); i++) {
		const struct jwk *k = jwks_key(keys, i);
		enum jwt_error e;

		if (j->has_kid && !kid_matches(k, j))
			continue;
		named = true;
		if (k->type != j->key_type)
			continue;
		fitting = true;
		e = verify_with_key(k, j);
		if (e != JWT_BAD_SIGNATURE)
			return e;
	}
	if (j->has_kid && !named)
		return JWT_UNKNOWN_KEY;
	return fitting ? JWT_BAD_SIGNATURE : JWT_UNSUPPORTED_ALG;
}

/* ---- claims -------------------------------------------------------------- */

/* A NumericDate (RFC 7519 section 2): seconds, possibly fractional or in
 * exponent form; floored and clamped to int64. */
static int numeric_date(const struct json_val *v, int64_t *out)
{
	char text[64];
	double d;

	if (v->type != JSON_NUMBER)
		return -EINVAL;
	if (json_int64(v, out) == 0)
		return 0;
	if (v->raw.len >= sizeof(text))
		return -EINVAL;
	memcpy(text, v->raw.p, v->raw.len);
	text[v->raw.len] = '\0';
	d = floor(strtod(text, NULL));
	if (isnan(d))
		return -EINVAL;
	if (d >= 9.2e18)
		*out = INT64_MAX;
	else if (d <= -9.2e18)
		*out = INT64_MIN;
	else
		*out = (int64_t)d;
	return 0;
}

/* Valid while now < exp (RFC 7519 section 4.1.4), plus leeway.  exp is
 * the token's to choose (INT64_MAX, 1e400): the sum saturates. */
bool jwt_expired(int64_t exp, unsigned leeway_s, int64_t now_s)
{
	return now_s >= sat_add_i64(exp, (int64_t)leeway_s);
}

/* Indices of the claims read, in struct want order. */
enum { C_EXP, C_NBF, C_IAT, C_ISS, C_AUD, C_SUB, C_TENANT, C_MODELS, C_COUNT };

static enum jwt_error check_times(const struct want *c, const struct jwt_policy *p,
				  int64_t now, struct jwt_claims *out)
{
	int64_t leeway = p->leeway_s, t;

	if (c[C_EXP].v.type == JSON_NONE) {
		if (p->require_exp)
			return JWT_MISSING_CLAIM;
	} else {
		if (numeric_date(&c[C_EXP].v, &t))
			return JWT_BAD_CLAIM;
		if (jwt_expired(t, p->leeway_s, now))
			return JWT_EXPIRED;
		out->exp = t;
	}
	if (c[C_NBF].v.type != JSON_NONE) {
		if (numeric_date(&c[C_NBF].v, &t))
			return JWT_BAD_CLAIM;
		if (sat_add_i64(now, leeway) < t)
			return JWT_NOT_YET_VALID;
	}
	if (c[C_IAT].v.type != JSON_NONE) {
		if (numeric_date(&c[C_IAT].v, &t))
			return JWT_BAD_CLAIM;
		if (p->check_iat && sat_add_i64(now, leeway) < t)
			return JWT_ISSUED_IN_FUTURE;
	}
	return JWT_OK;
}

static bool audience_ok(const struct json_val *aud, const char *want)
{
	struct json_iter it;
	struct json_val v;
	struct str k;

	if (aud->type == JSON_STRING)
		return json_string_eq(aud, want);
	if (aud->type != JSON_ARRAY)
		return false;
	json_iter_init(&it, aud);
	while (json_iter_next(&it, &k, &v))
		if (json_string_eq(&v, want))
			return true;
	return false;
}

/* Cut a NUL-terminated UTF-8 prefix back to a whole character. */
static void utf8_trim(char *s)
{
	size_t n = strlen(s), lead = n, need;
	unsigned char c;

	while (lead > 0 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead == 0)
		return;
	c = (unsigned char)s[lead - 1];
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	if (n - (lead - 1) < need)
		s[lead - 1] = '\0';
}

/* A string claim of 1..cap-1 bytes without NUL into dst: 0 or -EINVAL. */
static int exact_string(const struct json_val *v, char *dst, size_t cap)
{
	int n = json_string(v, dst, cap);

	if (n <= 0 || (size_t)n != strlen(dst))
		return -EINVAL;
	return 0;
}

/* One space-separated string of model patterns. */
static enum jwt_error models_from_string(const struct json_val *v, struct jwt_claims *out)
{
	char text[JWT_MAX_MODELS * JWT_CLAIM_MAX];
	int n = json_string(v, text, sizeof(text));
	const char *p = text, *end;

	if (n < 0 || (size_t)n != strlen(text))
		return JWT_BAD_CLAIM;
	end = text + n;
	while (p < end) {
		size_t len;

		while (p < end && *p == ' ')
			p++;
		len = strcspn(p, " ");
		if (len == 0)
			break;
		if (out->nmodels == JWT_MAX_MODELS || len >= JWT_CLAIM_MAX)
			return JWT_BAD_CLAIM;
		memcpy(out->models[out->nmodels], p, len);
		out->models[out->nmodels++][len] = '\0';
		p += len;
	}
	return JWT_OK;
}

static enum jwt_error read_models(const struct json_val *v, struct jwt_claims *out)
{
	struct json_iter it;
	struct json_val m;
	struct str k;

	out->has_models = true;
	if (v->type == JSON_STRING)
		return models_from_string(v, out);
	if (v->type != JSON_ARRAY)
		return JWT_BAD_CLAIM;
	json_iter_init(&it, v);
	while (json_iter_next(&it, &k, &m)) {
		if (out->nmodels == JWT_MAX_MODELS ||
		    exact_string(&m, out->models[out->nmodels], JWT_CLAIM_MAX))
			return JWT_BAD_CLAIM;
		out->nmodels++;
	}
	return JWT_OK;
}

static enum jwt_error check_identity(const struct want *c, const struct jwt_policy *p,
				     struct jwt_claims *out)
{
	if (p->issuer && !json_string_eq(&c[C_ISS].v, p->issuer))
		return JWT_BAD_ISSUER;
	if (p->audience && !audience_ok(&c[C_AUD].v, p->audience))
		return JWT_BAD_AUDIENCE;
	if (c[C_SUB].v.type != JSON_NONE) {
		if (c[C_SUB].v.type != JSON_STRING)
			return JWT_BAD_CLAIM;
		if (json_string(&c[C_SUB].v, out->sub, sizeof(out->sub)) == -ENOSPC)
			utf8_trim(out->sub);
	}
	if (p->tenant_claim) {
		if (c[C_TENANT].v.type == JSON_NONE)
			return JWT_MISSING_CLAIM;
		if (c[C_TENANT].v.type != JSON_STRING ||
		    exact_string(&c[C_TENANT].v, out->tenant, sizeof(out->tenant)))
			return JWT_BAD_CLAIM;
	}
	if (p->models_claim && c[C_MODELS].v.type != JSON_NONE)
		return read_models(&c[C_MODELS].v, out);
	return JWT_OK;
}

static enum jwt_error check_claims(struct jws *j, const struct jwt_policy *p,
				   int64_t now, struct jwt_claims *out)
{
	struct want c[C_COUNT] = {
		[C_EXP] = { .name = "exp" }, [C_NBF] = { .name = "nbf" },
		[C_IAT] = { .name = "iat" }, [C_ISS] = { .name = "iss" },
		[C_AUD] = { .name = "aud" }, [C_SUB] = { .name = "sub" },
		[C_TENANT] = { .name = p->tenant_claim }, [C_MODELS] = { .name = p->models_claim },
	};
	enum jwt_error e;

	if (json_parse(j->payload.raw.p, j->payload.raw.len, &j->payload, NULL, NULL) ||
	    j->payload.type != JSON_OBJECT || collect_members(&j->payload, c, C_COUNT))
		return JWT_MALFORMED;
	if ((e = check_times(c, p, now, out)))
		return e;
	return check_identity(c, p, out);
}

/* ---- entry point --------------------------------------------------------- */

enum jwt_error jwt_verify(const struct jwks *keys, const char *token, size_t len,
			  const struct jwt_policy *policy, int64_t now_s,
			  struct jwt_claims *out)
{
	static const struct jwt_policy defaults = JWT_POLICY_DEFAULT;
	char json[JSON_BUF_MAX];
	struct jws j;
	enum jwt_error e;

	if (!policy)
		policy = &defaults;
	out->tenant[0] = out->sub[0] = '\0';
	out->exp = 0;
	out->has_models = false;
	out->nmodels = 0;
	if (!keys || jwks_count(keys) == 0)
		return JWT_NO_KEYS;
	if (len > JWT_MAX_TOKEN)
		return JWT_TOO_LARGE;
	if (!token || len == 0)
		return JWT_MALFORMED;
	j.has_kid = false;
	j.kid_len = 0;
	e = parse_token(token, len, json, &j);
	if (e == JWT_OK)
		e = verify_signature(keys, &j);
	/* A failed OpenSSL call leaves entries in this thread's error queue;
	 * the worker's TLS code reads that queue, so leave it empty. */
	ERR_clear_error();
	if (e == JWT_OK)
		e = check_claims(&j, policy, now_s, out);
	return e;
}

static const struct {
	const char *code, *message;
} errors[JWT_ERROR_COUNT] = {
	[JWT_OK] = { "ok", "the token is valid" },
	[JWT_MALFORMED] = { "invalid_token", "the token is malformed" },
	[JWT_TOO_LARGE] = { "token_too_large", "the token is too large" },
	[JWT_UNSUPPORTED_ALG] = { "unsupported_algorithm", "the token's algorithm is not accepted" },
	[JWT_UNSUPPORTED_HEADER] = { "unsupported_token_header", "the token's header is not accepted" },
	[JWT_UNKNOWN_KEY] = { "unknown_key", "the token's signing key is unknown" },
	[JWT_BAD_SIGNATURE] = { "invalid_signature", "the token signature is invalid" },
	[JWT_EXPIRED] = { "token_expired", "the token has expired" },
	[JWT_NOT_YET_VALID] = { "token_not_yet_valid", "the token is not valid yet" },
	[JWT_ISSUED_IN_FUTURE] = { "token_issued_in_future", "the token was issued in the future" },
	[JWT_BAD_ISSUER] = { "invalid_issuer", "the token's issuer is not accepted" },
	[JWT_BAD_AUDIENCE] = { "invalid_audience", "the token's audience is not accepted" },
	[JWT_MISSING_CLAIM] = { "missing_claim", "the token lacks a required claim" },
	[JWT_BAD_CLAIM] = { "invalid_claim", "a token claim has the wrong type or size" },
	[JWT_NO_KEYS] = { "keys_unavailable", "token verification keys are not available" },
	[JWT_INTERNAL] = { "internal_error", "the token could not be verified" },
};

const char *jwt_error_message(enum jwt_error e)
{
	return (unsigned)e < (unsigned)JWT_ERROR_COUNT ? errors[e].message : "the token is not accepted";
}

const char *jwt_error_code(enum jwt_error e)
{
	return (unsigned)e < (unsigned)JWT_ERROR_COUNT ? errors[e].code : "invalid_token";
}
