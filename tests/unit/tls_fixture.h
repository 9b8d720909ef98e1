/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys and certificates made at test time with the OpenSSL API, shared by
 * the TLS tests.  Header only (static inline: a test uses what it needs);
 * include it after <cmocka.h>.
 */
#ifndef SLUICE_TESTS_TLS_FIXTURE_H
#define SLUICE_TESTS_TLS_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct fixture_cert {
	const char *cn;
	const char *org;	/* NULL: none */
	EVP_PKEY *key;		/* the subject's */
	X509 *issuer;		/* NULL: a self-signed CA */
	EVP_PKEY *issuer_key;
	long serial;
	const char *san;	/* "DNS:localhost,IP:127.0.0.1"; NULL: none */
	const char *eku;	/* "serverAuth", "clientAuth"; NULL: none */
	long not_before;	/* seconds from now; both 0: -1h .. +1 day */
	long not_after;
};

static inline void fixture_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static inline void fixture_set_name(X509 *cert, const struct fixture_cert *spec)
{
	X509_NAME *name = X509_get_subject_name(cert);

	if (spec->org)
		X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
					   (const unsigned char *)spec->org, -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)spec->cn, -1, -1, 0);
}

static inline X509 *fixture_make_cert(const struct fixture_cert *spec)
{
	bool dated = spec->not_before || spec->not_after;
	X509 *cert = X509_new();
	X509 *issuer;

	assert_non_null(cert);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), spec->serial);
	X509_gmtime_adj(X509_getm_notBefore(cert), dated ? spec->not_before : -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), dated ? spec->not_after : 86400);
	X509_set_pubkey(cert, spec->key);
	fixture_set_name(cert, spec);
	issuer = spec->issuer ? spec->issuer : cert;
	X509_set_issuer_name(cert, X509_get_subject_name(issuer));
	if (spec->issuer) {
		fixture_add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
	} else {
		fixture_add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
		fixture_add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
		fixture_add_ext(cert, cert, NID_subject_key_identifier, "hash");
	}
	if (spec->san)
		fixture_add_ext(cert, issuer, NID_subject_alt_name, spec->san);
	if (spec->eku)
		fixture_add_ext(cert, issuer, NID_ext_key_usage, spec->eku);
	assert_true(X509_sign(cert, spec->issuer ? spec->issuer_key : spec->key,
			      EVP_sha256()) > 0);
	return cert;
}

static inline void fixture_write_cert(const char *path, X509 *cert)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, cert), 1);
	assert_int_equal(fclose(f), 0);
}

static inline void fixture_write_key(const char *path, EVP_PKEY *key)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static inline void fixture_write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

#endif
