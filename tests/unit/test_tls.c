/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS client against an in-process OpenSSL server.
 *
 * Keys and certificates are made at start-up in memory: a trusted CA with
 * a server certificate for localhost and 127.0.0.1, and a rogue CA with a
 * certificate for the same names.  The server runs over its own memory
 * BIOs; the tests carry ciphertext between it and the client the way the
 * loop would carry it over a socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"
#include "tls_fixture.h"

/* ---- a small PKI -------------------------------------------------------- */

struct pki {
	EVP_PKEY *ca_key, *rogue_key, *srv_key;
	X509 *ca, *rogue, *srv, *rogue_srv;
	char ca_path[64];
};

static struct pki pki;

/* issuer == NULL: self-signed CA; otherwise a server certificate for
 * localhost and 127.0.0.1. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key, long serial)
{
	struct fixture_cert spec = {
		.cn = cn, .key = key, .issuer = issuer, .issuer_key = issuer_key,
		.serial = serial,
		.san = issuer ? "DNS:localhost,IP:127.0.0.1" : NULL,
		.eku = issuer ? "serverAuth" : NULL,
	};

	return fixture_make_cert(&spec);
}

static void write_ca_file(void)
{
	int fd;

	strcpy(pki.ca_path, "/tmp/sluice-test-ca-XXXXXX");
	fd = mkstemp(pki.ca_path);
	assert_true(fd >= 0);
	close(fd);
	fixture_write_cert(pki.ca_path, pki.ca);
}

static int pki_setup(void **state)
{
	(void)state;
	pki.ca_key = EVP_EC_gen("P-256");
	pki.rogue_key = EVP_EC_gen("P-256");
	pki.srv_key = EVP_EC_gen("P-256");
	if (!pki.ca_key || !pki.rogue_key || !pki.srv_key)
		return -1;
	pki.ca = make_cert("sluice test CA", pki.ca_key, NULL, NULL, 1);
	pki.rogue = make_cert("rogue CA", pki.rogue_key, NULL, NULL, 2);
	pki.srv = make_cert("localhost", pki.srv_key, pki.ca, pki.ca_key, 3);
	pki.rogue_srv = make_cert("localhost", pki.srv_key, pki.rogue,
				  pki.rogue_key, 4);
	write_ca_file();
	return 0;
}

static int pki_teardown(void **state)
{
	(void)state;
	unlink(pki.ca_path);
	X509_free(pki.ca);
	X509_free(pki.rogue);
	X509_free(pki.srv);
	X509_free(pki.rogue_srv);
	EVP_PKEY_free(pki.ca_key);
	EVP_PKEY_free(pki.rogue_key);
	EVP_PKEY_free(pki.srv_key);
	return 0;
}

/* ---- the server ----------------------------------------------------- */

struct server {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *rbio, *wbio;
	bool client_offered_http11;
};

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";
	struct server *srv = arg;
	unsigned char *sel;

	(void)ssl;
	if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	srv->client_offered_http11 = true;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* max_version 0: whatever OpenSSL supports. */
static void server_init(struct server *srv, X509 *cert, int max_version)
{
	memset(srv, 0, sizeof(*srv));
	srv->ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(srv->ctx);
	assert_int_equal(SSL_CTX_use_certificate(srv->ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(srv->ctx, pki.srv_key), 1);
	if (max_version)
		assert_int_equal(SSL_CTX_set_max_proto_version(srv->ctx, max_version), 1);
	SSL_CTX_set_alpn_select_cb(srv->ctx, select_alpn, srv);
}

/* A fresh connection on the same server context (for resumption). */
static void server_accept(struct server *srv)
{
	SSL_free(srv->ssl);
	srv->ssl = SSL_new(srv->ctx);
	assert_non_null(srv->ssl);
	srv->rbio = BIO_new(BIO_s_mem());
	srv->wbio = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(srv->rbio, -1);
	BIO_set_mem_eof_return(srv->wbio, -1);
	SSL_set_bio(srv->ssl, srv->rbio, srv->wbio);
	SSL_set_accept_state(srv->ssl);
}

static void server_free(struct server *srv)
{
	SSL_free(srv->ssl);
	SSL_CTX_free(srv->ctx);
}

/* Everything the server can decrypt now, appended to out. */
static void server_read(struct server *srv, struct buf *out)
{
	for (;;) {
		size_t got;

		assert_int_equal(buf_reserve(out, 16384), 0);
		if (SSL_read_ex(srv->ssl, buf_tail(out), buf_room(out), &got) != 1) {
			assert_int_equal(SSL_get_error(srv->ssl, 0), SSL_ERROR_WANT_READ);
			return;
		}
		out->len += got;
	}
}

static void server_write(struct server *srv, const void *p, size_t n)
{
	size_t done;

	assert_int_equal(SSL_write_ex(srv->ssl, p, n, &done), 1);
	assert_int_equal(done, n);
}

/* ---- a client and a server, joined ------------------------------------ */

struct pair {
	struct backend_cfg be;
	struct tls_client_ctx *ctx;
	struct tls_session *s;
	struct server srv;
	struct buf wire;	/* ciphertext in flight */
	struct buf plain;	/* what the client decrypted */
	struct buf got;		/* what the server decrypted */
};

static struct backend_cfg backend(const char *host, const char *ca_file, bool verify)
{
	struct backend_cfg be;

	memset(&be, 0, sizeof(be));
	be.name = (char *)"test";
	be.tls = true;
	be.host = (char *)host;
	be.port = 443;
	be.ca_file = (char *)ca_file;
	be.tls_verify = verify;
	return be;
}

static void pair_init(struct pair *p, struct backend_cfg be, X509 *cert, int max_version)
{
	char err[256] = "";

	memset(p, 0, sizeof(*p));
	p->be = be;
	assert_int_equal(tls_client_ctx_new(&p->be, &p->ctx, err, sizeof(err)), 0);
	p->s = tls_session_new(p->ctx);
	assert_non_null(p->s);
	server_init(&p->srv, cert, max_version);
	server_accept(&p->srv);
}

/* Another connection from the same client context to the same server. */
static void pair_reconnect(struct pair *p)
{
	tls_session_free(p->s);
	p->s = tls_session_new(p->ctx);
	assert_non_null(p->s);
	server_accept(&p->srv);
}

static void pair_free(struct pair *p)
{
	tls_session_free(p->s);
	tls_client_ctx_free(p->ctx);
	server_free(&p->srv);
	buf_free(&p->wire);
	buf_free(&p->plain);
	buf_free(&p->got);
}

static void client_to_server(struct pair *p)
{
	assert_int_equal(tls_take_output(p->s, &p->wire), 0);
	if (buf_used(&p->wire))
		assert_int_equal(BIO_write(p->srv.rbio, buf_head(&p->wire),
					   (int)buf_used(&p->wire)),
				 (int)buf_used(&p->wire));
	buf_reset(&p->wire);
}

/* The server's output, fed to the client in pieces of at most `chunk`
 * bytes, as a socket would deliver it, decrypting after each. */
static int server_to_client(struct pair *p, size_t chunk)
{
	char piece[65536];
	int n, rc = 0;

	if (chunk > sizeof(piece))
		chunk = sizeof(piece);
	while ((n = BIO_read(p->srv.wbio, piece, (int)chunk)) > 0) {
		assert_int_equal(tls_feed(p->s, piece, (size_t)n), 0);
		rc = tls_read(p->s, &p->plain);
		if (rc != 0)
			return rc;
	}
	return rc;
}

/* Run both handshakes to completion or to the client's failure. */
static int handshake(struct pair *p)
{
	for (int round = 0; round < 20; round++) {
		int rc = tls_handshake(p->s);
		char piece[16384];
		int n;

		client_to_server(p);
		if (rc < 0)
			return rc;
		if (!SSL_is_init_finished(p->srv.ssl))
			(void)SSL_do_handshake(p->srv.ssl);
		if (rc == 1 && SSL_is_init_finished(p->srv.ssl))
			return 1;
		while ((n = BIO_read(p->srv.wbio, piece, sizeof(piece))) > 0)
			assert_int_equal(tls_feed(p->s, piece, (size_t)n), 0);
	}
	fail_msg("handshake did not finish");
	return -1;
}

static void fill_pattern(char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)((i * 31 + seed) & 0xff);
}

/* A request one way, a response the other way, both `size` bytes. */
static void round_trip(struct pair *p, size_t size)
{
	char *msg = malloc(size);

	assert_non_null(msg);
	fill_pattern(msg, size, 7);
	assert_int_equal(tls_write(p->s, msg, size), 0);
	client_to_server(p);
	buf_reset(&p->got);
	server_read(&p->srv, &p->got);
	assert_int_equal(buf_used(&p->got), size);
	assert_memory_equal(buf_head(&p->got), msg, size);

	fill_pattern(msg, size, 99);
	server_write(&p->srv, msg, size);
	buf_reset(&p->plain);
	assert_int_equal(server_to_client(p, 16384), 0);
	assert_int_equal(buf_used(&p->plain), size);
	assert_memory_equal(buf_head(&p->plain), msg, size);
	/* Nothing is left half-decrypted. */
	assert_int_equal(tls_read(p->s, &p->plain), 0);
	assert_int_equal(buf_used(&p->plain), size);
	free(msg);
}

/* ---- cases ------------------------------------------------------------- */

static void test_tls13_round_trip(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	assert_int_equal(SSL_version(p.srv.ssl), TLS1_3_VERSION);
	/* The first read also swallows the session tickets sent after the
	 * handshake. */
	round_trip(&p, 100);
	round_trip(&p, 1 << 20);
	pair_free(&p);
}

static void test_tls12_round_trip(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv,
		  TLS1_2_VERSION);
	assert_int_equal(handshake(&p), 1);
	assert_int_equal(SSL_version(p.srv.ssl), TLS1_2_VERSION);
	round_trip(&p, 1);
	round_trip(&p, 1 << 20);
	pair_free(&p);
}

static void test_ip_literal_host(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("127.0.0.1", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	/* No SNI for an address. */
	assert_null(SSL_get_servername(p.srv.ssl, TLSEXT_NAMETYPE_host_name));
	round_trip(&p, 1000);
	pair_free(&p);
}

static void test_sni_sent(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	assert_string_equal(SSL_get_servername(p.srv.ssl, TLSEXT_NAMETYPE_host_name),
			    "localhost");
	pair_free(&p);
}

static void test_alpn_http11(void **state)
{
	const unsigned char *proto;
	unsigned int len;
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	assert_true(p.srv.client_offered_http11);
	SSL_get0_alpn_selected(p.srv.ssl, &proto, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	pair_free(&p);
}

static void expect_verify_failure(struct backend_cfg be, X509 *cert, const char *why)
{
	struct pair p;

	pair_init(&p, be, cert, 0);
	assert_int_equal(handshake(&p), -EPROTO);
	if (!strstr(tls_last_error(p.s), why))
		fail_msg("tls_last_error: \"%s\", expected \"%s\"",
			 tls_last_error(p.s), why);
	/* The client told the server why. */
	(void)SSL_do_handshake(p.srv.ssl);
	assert_false(SSL_is_init_finished(p.srv.ssl));
	ERR_clear_error();
	pair_free(&p);
}

static void test_untrusted_ca_refused(void **state)
{
	(void)state;
	expect_verify_failure(backend("localhost", pki.ca_path, true),
			      pki.rogue_srv, "unable to get local issuer certificate");
}

static void test_system_store_refuses_private_ca(void **state)
{
	(void)state;
	expect_verify_failure(backend("localhost", NULL, true), pki.srv,
			      "unable to get local issuer certificate");
}

static void test_wrong_host_refused(void **state)
{
	(void)state;
	expect_verify_failure(backend("api.example.com", pki.ca_path, true),
			      pki.srv, "hostname mismatch");
}

static void test_wrong_ip_refused(void **state)
{
	(void)state;
	expect_verify_failure(backend("127.0.0.2", pki.ca_path, true),
			      pki.srv, "IP address mismatch");
}

static void test_verify_off_accepts_untrusted(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("api.example.com", pki.ca_path, false),
		  pki.rogue_srv, 0);
	assert_int_equal(handshake(&p), 1);
	round_trip(&p, 4096);
	pair_free(&p);
}

static void test_close_notify(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	server_write(&p.srv, "bye", 3);
	assert_true(SSL_shutdown(p.srv.ssl) >= 0);
	assert_int_equal(server_to_client(&p, 65536), 1);
	/* Data that came before the close is still delivered. */
	assert_int_equal(buf_used(&p.plain), 3);
	assert_memory_equal(buf_head(&p.plain), "bye", 3);
	pair_free(&p);
}

static void test_garbage_after_handshake(void **state)
{
	static const char junk[] = "\x17\x03\x03\x00\x20"
				   "this is not an encrypted record!";
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	assert_int_equal(tls_feed(p.s, junk, sizeof(junk) - 1), 0);
	assert_int_equal(tls_read(p.s, &p.plain), -EPROTO);
	assert_string_not_equal(tls_last_error(p.s), "no TLS error");
	/* The error does not leak into the next connection's calls. */
	assert_int_equal(ERR_peek_error(), 0);
	pair_free(&p);
}

static void test_plaintext_server_refused(void **state)
{
	static const char http[] = "HTTP/1.1 400 Bad Request\r\n"
				   "Content-Length: 0\r\n\r\n";
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(tls_handshake(p.s), 0);
	assert_int_equal(tls_feed(p.s, http, sizeof(http) - 1), 0);
	assert_int_equal(tls_handshake(p.s), -EPROTO);
	assert_true(strlen(tls_last_error(p.s)) > 0);
	pair_free(&p);
}

static void test_old_protocol_refused(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv,
		  TLS1_1_VERSION);
	/* TLS 1.1 needs SHA-1, which level 1 forbids in OpenSSL 3. */
	SSL_set_security_level(p.srv.ssl, 0);
	assert_int_equal(handshake(&p), -EPROTO);
	ERR_clear_error();
	pair_free(&p);
}

/* The second connection of a context resumes the first one's session. */
static void check_resumption(int max_version)
{
	struct pair p;

	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv,
		  max_version);
	assert_int_equal(handshake(&p), 1);
	assert_false(SSL_session_reused(p.srv.ssl));
	round_trip(&p, 10);	/* TLS 1.3 tickets arrive here */

	pair_reconnect(&p);
	assert_int_equal(handshake(&p), 1);
	assert_true(SSL_session_reused(p.srv.ssl));
	round_trip(&p, 10);
	pair_free(&p);
}

static void test_resumption_tls13(void **state)
{
	(void)state;
	check_resumption(0);
}

static void test_resumption_tls12(void **state)
{
	(void)state;
	check_resumption(TLS1_2_VERSION);
}

/* A connection that failed must not hand its session to the next one. */
static void test_failed_session_not_resumed(void **state)
{
	static const char junk[] = "\x17\x03\x03\x00\x08garbage!";
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	round_trip(&p, 10);	/* receive the tickets */
	assert_int_equal(tls_feed(p.s, junk, sizeof(junk) - 1), 0);
	assert_int_equal(tls_read(p.s, &p.plain), -EPROTO);

	pair_reconnect(&p);
	assert_int_equal(handshake(&p), 1);
	assert_false(SSL_session_reused(p.srv.ssl));
	pair_free(&p);
}

static void test_bad_ca_file(void **state)
{
	struct backend_cfg be = backend("localhost", "/nonexistent/ca.pem", true);
	struct tls_client_ctx *ctx = (void *)1;
	char err[256] = "";

	(void)state;
	assert_int_equal(tls_client_ctx_new(&be, &ctx, err, sizeof(err)), -EINVAL);
	assert_null(ctx);
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
}

static void test_missing_host(void **state)
{
	struct backend_cfg be = backend("", NULL, true);
	struct tls_client_ctx *ctx;
	char err[256] = "";

	(void)state;
	assert_int_equal(tls_client_ctx_new(&be, &ctx, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls13_round_trip),
		cmocka_unit_test(test_tls12_round_trip),
		cmocka_unit_test(test_ip_literal_host),
		cmocka_unit_test(test_sni_sent),
		cmocka_unit_test(test_alpn_http11),
		cmocka_unit_test(test_untrusted_ca_refused),
		cmocka_unit_test(test_system_store_refuses_private_ca),
		cmocka_unit_test(test_wrong_host_refused),
		cmocka_unit_test(test_wrong_ip_refused),
		cmocka_unit_test(test_verify_off_accepts_untrusted),
		cmocka_unit_test(test_close_notify),
		cmocka_unit_test(test_garbage_after_handshake),
		cmocka_unit_test(test_plaintext_server_refused),
		cmocka_unit_test(test_old_protocol_refused),
		cmocka_unit_test(test_resumption_tls13),
		cmocka_unit_test(test_resumption_tls12),
		cmocka_unit_test(test_failed_session_not_resumed),
		cmocka_unit_test(test_bad_ca_file),
		cmocka_unit_test(test_missing_host),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
