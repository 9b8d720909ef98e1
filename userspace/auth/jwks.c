/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWKS documents → immutable sets of OpenSSL keys.  Every key object is
 * built here, once, so verifying a token only looks a key up.
 */
#include "auth/jwks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "api/json.h"
#include "auth/b64url.h"
#include "core/errtext.h"

struct jwks {
	size_t n;		/* usable keys */
	size_t skipped;
	struct jwk keys[];
};

/* A JWK member holding base64url: a 8192-bit modulus is 1366 characters. */
#define B64_TEXT_MAX 2048
#define B64_BYTES_MAX B64URL_DECODED_MAX(B64_TEXT_MAX)

/* Outcome of one key object. */
enum { KEY_SKIPPED = 0, KEY_ADDED = 1 };

/* A string member into dst: 0, -ENOENT when absent, -EINVAL when not a
 * string, -ENOSPC when longer than cap - 1. */
static int get_string(const struct json_val *obj, const char *name, char *dst, size_t cap)
{
	struct json_val v;
	int n;

	if (json_get(obj, name, &v))
		return -ENOENT;
	if (v.type != JSON_STRING)
		return -EINVAL;
	n = json_string(&v, dst, cap);
	return n < 0 ? n : 0;
}

/* A required base64url member, decoded into dst[0..cap). */
static int get_b64(const struct json_val *key, size_t idx, const char *name,
		   unsigned char *dst, size_t cap, size_t *len, char *err, size_t errcap)
{
	char text[B64_TEXT_MAX];
	int rc = get_string(key, name, text, sizeof(text));

	if (rc == -ENOENT)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: \"%s\" is missing", idx, name);
	if (rc == -EINVAL)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: \"%s\" is not a string", idx, name);
	if (rc == 0)
		rc = b64url_decode(text, strlen(text), dst, cap, len, B64URL_ALLOW_PAD);
	if (rc == -ENOSPC)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: \"%s\" is too long", idx, name);
	if (rc)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: \"%s\" is not base64url", idx, name);
	return 0;
}

/* Build a public EVP_PKEY of `type` ("RSA", "EC") from params. */
static int pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
	int rc = -EINVAL;

	*out = NULL;
	if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1)
		rc = 0;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return rc;
}

/* OpenSSL's own public-key checks (point on the curve, modulus sanity). */
static bool pkey_public_ok(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;

	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* An exponent a verifier can use: odd, at least 3, at most 64 bits (what
 * OpenSSL accepts for large moduli). */
static bool rsa_exponent_ok(const BIGNUM *e)
{
	return BN_is_odd(e) && BN_num_bits(e) >= 2 && BN_num_bits(e) <= 64;
}

static int build_rsa(const struct json_val *key, size_t idx, struct jwk *k,
		     char *err, size_t errcap)
{
	unsigned char raw[B64_BYTES_MAX];
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	size_t len;
	int rc, bits;

	if ((rc = get_b64(key, idx, "n", raw, sizeof(raw), &len, err, errcap)))
		return rc;
	n = BN_bin2bn(raw, (int)len, NULL);
	if ((rc = get_b64(key, idx, "e", raw, sizeof(raw), &len, err, errcap)))
		goto out;
	e = BN_bin2bn(raw, (int)len, NULL);
	rc = -ENOMEM;
	if (!n || !e)
		goto out;
	bits = BN_num_bits(n);
	if (bits < JWK_RSA_MIN_BITS) {
		rc = errtext(err, errcap, -EINVAL, "keys[%zu]: RSA modulus is %d bits, at least %d required",
			     idx, bits, JWK_RSA_MIN_BITS);
		goto out;
	}
	if (bits > JWK_RSA_MAX_BITS) {
		rc = errtext(err, errcap, -EINVAL, "keys[%zu]: RSA modulus is %d bits, at most %d accepted",
			     idx, bits, JWK_RSA_MAX_BITS);
		goto out;
	}
	if (!rsa_exponent_ok(e)) {
		rc = errtext(err, errcap, -EINVAL, "keys[%zu]: RSA exponent is not usable", idx);
		goto out;
	}
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		goto out;
	if (pkey_from_params("RSA", bld, &k->pkey)) {
		rc = errtext(err, errcap, -EINVAL, "keys[%zu]: OpenSSL refused the RSA key", idx);
		goto out;
	}
	k->type = JWK_RSA;
	k->bits = (unsigned)bits;
	rc = 0;
out:
	if (rc == -ENOMEM)
		errtext(err, errcap, rc, "keys[%zu]: out of memory", idx);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return rc;
}

static int build_ec_p256(const struct json_val *key, size_t idx, struct jwk *k,
			 char *err, size_t errcap)
{
	unsigned char x[B64_BYTES_MAX], y[B64_BYTES_MAX];
	unsigned char point[65];
	OSSL_PARAM_BLD *bld;
	size_t xl, yl;
	int rc;

	if ((rc = get_b64(key, idx, "x", x, sizeof(x), &xl, err, errcap)) ||
	    (rc = get_b64(key, idx, "y", y, sizeof(y), &yl, err, errcap)))
		return rc;
	/* RFC 7518 section 6.2.1.2: full-length coordinates, 32 bytes. */
	if (xl != 32 || yl != 32)
		return errtext(err, errcap, -EINVAL,
			       "keys[%zu]: P-256 coordinates must be 32 bytes each", idx);
	point[0] = 0x04;	/* uncompressed */
	memcpy(point + 1, x, 32);
	memcpy(point + 33, y, 32);
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point))) {
		OSSL_PARAM_BLD_free(bld);
		return errtext(err, errcap, -ENOMEM, "keys[%zu]: out of memory", idx);
	}
	rc = pkey_from_params("EC", bld, &k->pkey);
	OSSL_PARAM_BLD_free(bld);
	if (rc == 0 && !pkey_public_ok(k->pkey))
		rc = -EINVAL;
	if (rc) {
		EVP_PKEY_free(k->pkey);
		k->pkey = NULL;
		return errtext(err, errcap, -EINVAL, "keys[%zu]: the point is not on the P-256 curve", idx);
	}
	k->type = JWK_EC_P256;
	k->bits = 256;
	return 0;
}

static int build_oct(const struct json_val *key, size_t idx, struct jwk *k,
		     char *err, size_t errcap)
{
	unsigned char raw[B64_BYTES_MAX];
	size_t len;
	int rc;

	rc = get_b64(key, idx, "k", raw, sizeof(raw), &len, err, errcap);
	if (rc == 0 && len < JWK_OCT_MIN)
		rc = errtext(err, errcap, -EINVAL, "keys[%zu]: oct key is %zu bytes, at least %d required",
			     idx, len, JWK_OCT_MIN);
	else if (rc == 0 && len > JWK_OCT_MAX)
		rc = errtext(err, errcap, -EINVAL, "keys[%zu]: oct key is %zu bytes, at most %d accepted",
			     idx, len, JWK_OCT_MAX);
	else if (rc == 0 && !(k->secret = malloc(len)))
		rc = errtext(err, errcap, -ENOMEM, "keys[%zu]: out of memory", idx);
	if (rc == 0) {
		memcpy(k->secret, raw, len);
		k->secret_len = len;
		k->type = JWK_OCT;
		k->bits = (unsigned)(8 * len);
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

/* Does the optional "key_ops" array allow verifying? */
static int key_ops_allow_verify(const struct json_val *key, size_t idx, bool *ok,
				char *err, size_t errcap)
{
	struct json_val ops, v;
	struct json_iter it;
	struct str name;

	*ok = true;
	if (json_get(key, "key_ops", &ops))
		return 0;
	if (ops.type != JSON_ARRAY)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: \"key_ops\" is not an array", idx);
	*ok = false;
	json_iter_init(&it, &ops);
	while (json_iter_next(&it, &name, &v))
		if (json_string_eq(&v, "verify"))
			*ok = true;
	return 0;
}

/* An optional string member that must have one value to be usable
 * ("use": "sig", "alg": "RS256").  *ok false when present and different. */
static int optional_member_is(const struct json_val *key, size_t idx, const char *name,
			      const char *want, bool *present, bool *ok,
			      char *err, size_t errcap)
{
	struct json_val v;

	*present = json_get(key, name, &v) == 0;
	*ok = true;
	if (!*present)
		return 0;
	if (v.type != JSON_STRING)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: \"%s\" is not a string", idx, name);
	*ok = json_string_eq(&v, want);
	return 0;
}

/* Which jwk_type the key would be (0: unsupported kty or curve), and the
 * algorithm that type is used with. */
static int key_kind(const struct json_val *key, size_t idx, enum jwk_type *type,
		    const char **alg, char *err, size_t errcap)
{
	char kty[8], crv[16];
	int rc = get_string(key, "kty", kty, sizeof(kty));

	*type = 0;
	if (rc == -ENOENT || rc == -EINVAL)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: \"kty\" is missing or not a string", idx);
	if (rc)
		return 0;	/* too long for any kty we know */
	if (strcmp(kty, "RSA") == 0) {
		*type = JWK_RSA;
		*alg = "RS256";
	} else if (strcmp(kty, "oct") == 0) {
		*type = JWK_OCT;
		*alg = "HS256";
	} else if (strcmp(kty, "EC") == 0) {
		rc = get_string(key, "crv", crv, sizeof(crv));
		if (rc == -ENOENT || rc == -EINVAL)
			return errtext(err, errcap, -EINVAL, "keys[%zu]: \"crv\" is missing or not a string", idx);
		if (rc == 0 && strcmp(crv, "P-256") == 0) {
			*type = JWK_EC_P256;
			*alg = "ES256";
		}
	}
	return 0;
}

/* The key's kid: 0, or 1 when it is too long to keep (key skipped). */
static int key_kid(const struct json_val *key, size_t idx, struct jwk *k,
		   char *err, size_t errcap)
{
	int rc = get_string(key, "kid", k->kid, sizeof(k->kid));

	k->has_kid = rc == 0;
	if (rc == -ENOENT)
		return 0;
	if (rc == -EINVAL)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: \"kid\" is not a string", idx);
	if (rc == -ENOSPC)
		return 1;
	return 0;
}

/* Parse keys[idx] into *k: KEY_ADDED, KEY_SKIPPED, or a negative errno. */
static int parse_key(const struct json_val *key, size_t idx, struct jwk *k,
		     char *err, size_t errcap)
{
	bool use_ok, ops_ok, alg_ok, present;
	enum jwk_type type;
	const char *alg = NULL;
	int rc;

	memset(k, 0, sizeof(*k));
	if (key->type != JSON_OBJECT)
		return errtext(err, errcap, -EINVAL, "keys[%zu]: not an object", idx);
	if ((rc = key_kind(key, idx, &type, &alg, err, errcap)))
		return rc;
	if (type == 0)
		return KEY_SKIPPED;
	if ((rc = optional_member_is(key, idx, "use", "sig", &present, &use_ok, err, errcap)) ||
	    (rc = optional_member_is(key, idx, "alg", alg, &k->has_alg, &alg_ok, err, errcap)) ||
	    (rc = key_ops_allow_verify(key, idx, &ops_ok, err, errcap)))
		return rc;
	if (!use_ok || !alg_ok || !ops_ok)
		return KEY_SKIPPED;
	if ((rc = key_kid(key, idx, k, err, errcap)))
		return rc < 0 ? rc : KEY_SKIPPED;
	switch (type) {
	case JWK_RSA:
		rc = build_rsa(key, idx, k, err, errcap);
		break;
	case JWK_EC_P256:
		rc = build_ec_p256(key, idx, k, err, errcap);
		break;
	case JWK_OCT:
		rc = build_oct(key, idx, k, err, errcap);
		break;
	}
	return rc < 0 ? rc : KEY_ADDED;
}

static void jwk_clear(struct jwk *k)
{
	EVP_PKEY_free(k->pkey);
	if (k->secret) {
		OPENSSL_cleanse(k->secret, k->secret_len);
		free(k->secret);
	}
	memset(k, 0, sizeof(*k));
}

void jwks_free(struct jwks *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		jwk_clear(&set->keys[i]);
	free(set);
}

/* The "keys" array of a validated document, bounded in length. */
static int keys_array(const char *json, size_t len, struct json_val *keys,
		      char *err, size_t errcap)
{
	struct json_val root;
	const char *why = NULL;
	size_t off = 0, n;

	if (json_parse(json, len, &root, &off, &why))
		return errtext(err, errcap, -EINVAL, "not valid JSON at byte %zu: %s", off,
			       why ? why : "syntax error");
	if (root.type != JSON_OBJECT || json_get(&root, "keys", keys) || keys->type != JSON_ARRAY)
		return errtext(err, errcap, -EINVAL, "the document has no \"keys\" array");
	n = json_array_len(keys);
	if (n > JWKS_MAX_KEYS)
		return errtext(err, errcap, -EINVAL, "%zu keys, at most %d accepted", n, JWKS_MAX_KEYS);
	return 0;
}

int jwks_parse(const char *json, size_t len, struct jwks **out, char *err, size_t errcap)
{
	struct json_val keys, v;
	struct json_iter it;
	struct jwks *set;
	struct str name;
	size_t idx = 0;
	int rc;

	*out = NULL;
	if (len > JWKS_MAX_DOC)
		return errtext(err, errcap, -E2BIG, "the document is %zu bytes, at most %u accepted",
			       len, JWKS_MAX_DOC);
	if ((rc = keys_array(json, len, &keys, err, errcap)))
		return rc;
	set = calloc(1, sizeof(*set) + json_array_len(&keys) * sizeof(set->keys[0]));
	if (!set)
		return errtext(err, errcap, -ENOMEM, "out of memory");
	json_iter_init(&it, &keys);
	while (json_iter_next(&it, &name, &v)) {
		rc = parse_key(&v, idx++, &set->keys[set->n], err, errcap);
		if (rc < 0) {
			jwk_clear(&set->keys[set->n]);
			jwks_free(set);
			ERR_clear_error();
			return rc;
		}
		if (rc == KEY_ADDED)
			set->n++;
		else
			set->skipped++;
	}
	ERR_clear_error();
	if (set->n == 0) {
		rc = errtext(err, errcap, -EINVAL, "no usable signature key (%zu skipped)", set->skipped);
		jwks_free(set);
		return rc;
	}
	*out = set;
	return 0;
}

/* Read a whole regular file of at most JWKS_MAX_DOC bytes into *buf. */
static int read_small_file(const char *path, char **buf, size_t *len)
{
	struct stat st = { 0 };
	size_t got = 0;
	int fd, rc = 0;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode))
		rc = -EINVAL;
	else if (st.st_size > (off_t)JWKS_MAX_DOC)
		rc = -E2BIG;
	else if (!(*buf = malloc((size_t)st.st_size + 1)))
		rc = -ENOMEM;
	while (rc == 0 && got < (size_t)st.st_size) {
		ssize_t r = read(fd, *buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO;	/* shrank under us */
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	if (rc) {
		free(*buf);
		*buf = NULL;
	}
	*len = got;
	return rc;
}

int jwks_load_file(const char *path, struct jwks **out, char *err, size_t errcap)
{
	char why[256];
	char *doc;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = read_small_file(path, &doc, &len);
	if (rc == -E2BIG)
		return errtext(err, errcap, rc, "%s: larger than %u bytes", path, JWKS_MAX_DOC);
	if (rc == -EINVAL)
		return errtext(err, errcap, rc, "%s: not a regular file", path);
	if (rc)
		return errtext(err, errcap, rc, "%s: %s", path, strerror(-rc));
	rc = jwks_parse(doc, len, out, why, sizeof(why));
	free(doc);
	if (rc)
		errtext(err, errcap, rc, "%s: %s", path, why);
	return rc;
}

size_t jwks_count(const struct jwks *set)
{
	return set ? set->n : 0;
}

size_t jwks_skipped(const struct jwks *set)
{
	return set ? set->skipped : 0;
}

const struct jwk *jwks_key(const struct jwks *set, size_t i)
{
	return set && i < set->n ? &set->keys[i] : NULL;
}
