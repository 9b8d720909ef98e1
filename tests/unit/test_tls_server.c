/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS server against OpenSSL clients over real loopback TCP.
 *
 * A CA, server certificates (localhost, api.example.com, *.corp.example)
 * and client certificates are made at start-up and written to a temporary
 * directory for the configuration's paths.  Each case accepts a connection
 * on a non-blocking socket for the server session; the client is a
 * non-blocking OpenSSL client on the other end, and both are driven from
 * this thread with poll(), the server through want_write as the daemon
 * would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls_server.h"
#include "tls_fixture.h"

#define POLL_MS		2000
#define MiB		(1u << 20)

/* ---- PKI and files -------------------------------------------------------- */

struct pki {
	EVP_PKEY *ca_key, *rogue_key, *key, *other_key;
	X509 *ca, *rogue, *srv, *api, *corp;
	X509 *client, *expired_client, *rogue_client;
	char dir[64];
	int listen_fd;
};

static struct pki pki;

static void path_of(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", pki.dir, name);
}

static X509 *issue(const char *cn, const char *san, const char *eku, long serial)
{
	struct fixture_cert spec = {
		.cn = cn, .key = pki.key, .issuer = pki.ca, .issuer_key = pki.ca_key,
		.serial = serial, .san = san, .eku = eku,
	};

	return fixture_make_cert(&spec);
}

static void make_certs(void)
{
	struct fixture_cert ca = { .cn = "sluice test CA", .key = pki.ca_key, .serial = 1 };
	struct fixture_cert rogue = { .cn = "rogue CA", .key = pki.rogue_key, .serial = 2 };
	struct fixture_cert client = {
		.cn = "sluice client", .org = "acme", .key = pki.key, .serial = 10,
		.eku = "clientAuth",
	};

	pki.ca = fixture_make_cert(&ca);
	pki.rogue = fixture_make_cert(&rogue);
	pki.srv = issue("localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth", 3);
	pki.api = issue("api.example.com", "DNS:api.example.com", "serverAuth", 4);
	pki.corp = issue("*.corp.example", "DNS:*.corp.example", "serverAuth", 5);
	client.issuer = pki.ca;
	client.issuer_key = pki.ca_key;
	pki.client = fixture_make_cert(&client);
	client.serial = 11;
	client.not_before = -7200;
	client.not_after = -3600;
	pki.expired_client = fixture_make_cert(&client);
	client.serial = 12;
	client.not_before = client.not_after = 0;
	client.issuer = pki.rogue;
	client.issuer_key = pki.rogue_key;
	pki.rogue_client = fixture_make_cert(&client);
}

static void write_files(void)
{
	static const struct { const char *name; X509 **cert; } certs[] = {
		{ "ca.pem", &pki.ca }, { "srv.pem", &pki.srv },
		{ "api.pem", &pki.api }, { "corp.pem", &pki.corp },
	};
	char path[128];

	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
		path_of(path, sizeof(path), certs[i].name);
		fixture_write_cert(path, *certs[i].cert);
	}
	path_of(path, sizeof(path), "srv.key");
	fixture_write_key(path, pki.key);
	path_of(path, sizeof(path), "other.key");
	fixture_write_key(path, pki.other_key);
	path_of(path, sizeof(path), "bad.pem");
	fixture_write_text(path, "this is not PEM\n");
}

static void remove_files(void)
{
	static const char *const names[] = {
		"ca.pem", "srv.pem", "api.pem", "corp.pem", "srv.key", "other.key", "bad.pem",
	};
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		path_of(path, sizeof(path), names[i]);
		unlink(path);
	}
	rmdir(pki.dir);
}

static int open_listener(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(fd, 16) != 0)
		return -1;
	return fd;
}

static int pki_setup(void **state)
{
	(void)state;
	pki.ca_key = EVP_EC_gen("P-256");
	pki.rogue_key = EVP_EC_gen("P-256");
	pki.key = EVP_EC_gen("P-256");
	pki.other_key = EVP_EC_gen("P-256");
	if (!pki.ca_key || !pki.rogue_key || !pki.key || !pki.other_key)
		return -1;
	strcpy(pki.dir, "/tmp/sluice-tls-server-XXXXXX");
	if (!mkdtemp(pki.dir))
		return -1;
	make_certs();
	write_files();
	pki.listen_fd = open_listener();
	return pki.listen_fd < 0 ? -1 : 0;
}

static int pki_teardown(void **state)
{
	X509 *certs[] = {
		pki.ca, pki.rogue, pki.srv, pki.api, pki.corp,
		pki.client, pki.expired_client, pki.rogue_client,
	};

	(void)state;
	close(pki.listen_fd);
	remove_files();
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
		X509_free(certs[i]);
	EVP_PKEY_free(pki.ca_key);
	EVP_PKEY_free(pki.rogue_key);
	EVP_PKEY_free(pki.key);
	EVP_PKEY_free(pki.other_key);
	return 0;
}

/* ---- configuration ------------------------------------------------------- */

/* A tls: section with its strings in fixed buffers. */
struct test_cfg {
	struct tls_listen_cfg tls;
	struct tls_sni_cfg sni[2];
	char *api_names[1], *corp_names[1];
	char cert[128], key[128], ca[128];
	char api[128], corp[128];
};

static void cfg_init(struct test_cfg *t)
{
	memset(t, 0, sizeof(*t));
	path_of(t->cert, sizeof(t->cert), "srv.pem");
	path_of(t->key, sizeof(t->key), "srv.key");
	path_of(t->ca, sizeof(t->ca), "ca.pem");
	path_of(t->api, sizeof(t->api), "api.pem");
	path_of(t->corp, sizeof(t->corp), "corp.pem");
	t->tls.enabled = true;
	t->tls.ktls = true;
	t->tls.cert = t->cert;
	t->tls.key = t->key;
}

static void cfg_add_sni(struct test_cfg *t)
{
	t->api_names[0] = (char *)"api.example.com";
	t->corp_names[0] = (char *)"*.corp.example";
	t->sni[0] = (struct tls_sni_cfg){ .names = t->api_names, .nnames = 1,
					  .cert = t->api, .key = t->key };
	t->sni[1] = (struct tls_sni_cfg){ .names = t->corp_names, .nnames = 1,
					  .cert = t->corp, .key = t->key };
	t->tls.sni = t->sni;
	t->tls.nsni = 2;
}

static void cfg_require_client_certs(struct test_cfg *t)
{
	t->tls.client_ca = t->ca;
}

/* ---- a connection ---------------------------------------------------------- */

struct client_opts {
	int max_version;		/* 0: any */
	const char *sni;
	const char *alpn;		/* wire format */
	const char *ciphers;
	X509 *cert;			/* with pki.key */
	SSL_SESSION *resume;
};

struct conn {
	struct tls_server_ctx *ctx;	/* owned by the connection, or NULL */
	struct tls_server_session *s;
	int sfd, cfd;
	SSL_CTX *cctx;
	SSL *c;
	int srv_rc, cli_rc;		/* handshakes: 1 done, 0 going, <0 failed */
};

static void set_nonblocking(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

static void tcp_pair(struct conn *c)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(pki.listen_fd, (struct sockaddr *)&sin, &len), 0);
	c->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->cfd >= 0);
	assert_int_equal(connect(c->cfd, (struct sockaddr *)&sin, len), 0);
	c->sfd = accept4(pki.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(c->sfd >= 0);
	set_nonblocking(c->cfd);
}

static void client_init(struct conn *c, const struct client_opts *o)
{
	c->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(c->cctx);
	SSL_CTX_set_verify(c->cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(c->cctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (o->max_version)
		assert_int_equal(SSL_CTX_set_max_proto_version(c->cctx, o->max_version), 1);
	if (o->ciphers)
		assert_int_equal(SSL_CTX_set_cipher_list(c->cctx, o->ciphers), 1);
	c->c = SSL_new(c->cctx);
	assert_non_null(c->c);
	assert_int_equal(SSL_set_fd(c->c, c->cfd), 1);
	SSL_set_connect_state(c->c);
	if (o->sni)
		assert_int_equal(SSL_set_tlsext_host_name(c->c, o->sni), 1);
	if (o->alpn)
		assert_int_equal(SSL_set_alpn_protos(c->c, (const unsigned char *)o->alpn,
						     (unsigned)strlen(o->alpn)), 0);
	if (o->cert) {
		assert_int_equal(SSL_use_certificate(c->c, o->cert), 1);
		assert_int_equal(SSL_use_PrivateKey(c->c, pki.key), 1);
	}
	if (o->resume)
		assert_int_equal(SSL_set_session(c->c, o->resume), 1);
}

/* A connection to ctx, which stays the caller's. */
static void conn_open_ctx(struct conn *c, struct tls_server_ctx *ctx,
			  const struct client_opts *o)
{
	memset(c, 0, sizeof(*c));
	tcp_pair(c);
	c->s = tls_server_session_new(ctx, c->sfd);
	assert_non_null(c->s);
	client_init(c, o);
}

/* A connection to a fresh server context of t, freed with the connection. */
static void conn_open(struct conn *c, const struct test_cfg *t, const struct client_opts *o)
{
	struct tls_server_ctx *ctx;
	char err[256] = "";
	int rc = tls_server_ctx_new(&t->tls, &ctx, err, sizeof(err));

	if (rc)
		fail_msg("tls_server_ctx_new: %s", err);
	conn_open_ctx(c, ctx, o);
	c->ctx = ctx;
}

/* OpenSSL forgets the session of a connection freed without a shutdown;
 * these close cleanly as far as the tests are concerned. */
static void conn_close(struct conn *c)
{
	SSL_set_shutdown(c->c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(c->c);
	SSL_CTX_free(c->cctx);
	tls_server_session_free(c->s);
	tls_server_ctx_free(c->ctx);
	close(c->sfd);
	close(c->cfd);
	ERR_clear_error();
}

/* POLLIN or POLLOUT as the last SSL error asked, or nothing when done. */
static short events_for(bool waiting, bool want_write)
{
	return waiting ? (want_write ? POLLOUT : POLLIN) : 0;
}

static void client_step(struct conn *c, bool *want_write)
{
	int r = SSL_do_handshake(c->c);
	int e;

	*want_write = false;
	if (r == 1) {
		c->cli_rc = 1;
		return;
	}
	e = SSL_get_error(c->c, r);
	if (e == SSL_ERROR_WANT_WRITE)
		*want_write = true;
	else if (e != SSL_ERROR_WANT_READ)
		c->cli_rc = -1;
}

/* Both handshakes until each side is done or failed.  A TLS 1.3 client is
 * done before the server has seen its certificate, so a server failure
 * may come with a client success. */
static void handshake(struct conn *c)
{
	for (int round = 0; round < 200; round++) {
		bool sw = false, cw = false;
		struct pollfd p[2];

		if (c->cli_rc == 0)
			client_step(c, &cw);
		if (c->srv_rc == 0)
			c->srv_rc = tls_server_handshake(c->s, &sw);
		if (c->srv_rc != 0 && c->cli_rc != 0)
			return;
		p[0] = (struct pollfd){ .fd = c->sfd, .events = events_for(c->srv_rc == 0, sw) };
		p[1] = (struct pollfd){ .fd = c->cfd, .events = events_for(c->cli_rc == 0, cw) };
		assert_true(poll(p, 2, POLL_MS) > 0);
	}
	fail_msg("handshake did not finish");
}

static void expect_server_failure(struct conn *c, const char *why)
{
	handshake(c);
	assert_int_equal(c->srv_rc, -EPROTO);
	if (!strstr(tls_session_last_error(tls_server_tls(c->s)), why))
		fail_msg("tls_session_last_error: \"%s\", expected \"%s\"",
			 tls_session_last_error(tls_server_tls(c->s)), why);
}

/* Only the server side, for clients that are not TLS at all. */
static int server_handshake_alone(struct conn *c)
{
	for (int round = 0; round < 100; round++) {
		struct pollfd p = { .fd = c->sfd };
		bool ww;
		int rc = tls_server_handshake(c->s, &ww);

		if (rc != 0)
			return rc;
		p.events = ww ? POLLOUT : POLLIN;
		assert_true(poll(&p, 1, POLL_MS) > 0);
	}
	fail_msg("handshake did not finish");
	return 0;
}

/* ---- data ------------------------------------------------------------------ */

static ssize_t client_result(SSL *ssl, int ret, size_t n, bool *want_write)
{
	int e;

	*want_write = false;
	if (ret == 1)
		return (ssize_t)n;
	e = SSL_get_error(ssl, ret);
	if (e == SSL_ERROR_WANT_WRITE)
		*want_write = true;
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
		return -EAGAIN;
	return e == SSL_ERROR_ZERO_RETURN ? 0 : -EPROTO;
}

static ssize_t end_write(struct conn *c, bool server, const char *p, size_t n, bool *ww)
{
	size_t done = 0;
	int ret;

	if (server)
		return tls_session_write(tls_server_tls(c->s), p, n, ww);
	ret = SSL_write_ex(c->c, p, n, &done);
	return client_result(c->c, ret, done, ww);
}

static ssize_t end_read(struct conn *c, bool server, char *p, size_t n, bool *ww)
{
	size_t got = 0;
	int ret;

	if (server)
		return tls_session_read(tls_server_tls(c->s), p, n, ww);
	ret = SSL_read_ex(c->c, p, n, &got);
	return client_result(c->c, ret, got, ww);
}

static void fill_pattern(char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)((i * 31 + seed) & 0xff);
}

/* size bytes from one end to the other, written and read concurrently
 * on the non-blocking sockets, compared at the end. */
static void transfer(struct conn *c, bool to_server, size_t size)
{
	char *out = malloc(size), *in = malloc(size);
	size_t sent = 0, got = 0;
	ssize_t n = 0;

	assert_non_null(out);
	assert_non_null(in);
	fill_pattern(out, size, to_server ? 7 : 99);
	for (int round = 0; got < size; round++) {
		bool ww = false, rw = false;
		struct pollfd p[2];

		assert_true(round < 100000);
		while (sent < size && (n = end_write(c, !to_server, out + sent,
						      size - sent, &ww)) > 0)
			sent += (size_t)n;
		assert_true(sent == size || n == -EAGAIN);
		while (got < size && (n = end_read(c, to_server, in + got, size - got, &rw)) > 0)
			got += (size_t)n;
		assert_true(got == size || n == -EAGAIN);
		if (got == size)
			break;
		p[0] = (struct pollfd){ .fd = to_server ? c->cfd : c->sfd,
					.events = events_for(sent < size, ww) };
		p[1] = (struct pollfd){ .fd = to_server ? c->sfd : c->cfd,
					.events = events_for(true, rw) };
		assert_true(poll(p, 2, POLL_MS) > 0);
	}
	assert_memory_equal(in, out, size);
	free(out);
	free(in);
}

static void peer_cn(const struct conn *c, char *out, int size)
{
	X509 *cert = SSL_get0_peer_certificate(c->c);

	assert_non_null(cert);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
					      NID_commonName, out, size) > 0);
}

/* ---- cases: protocol --------------------------------------------------------- */

static void check_round_trip(int max_version, const char *version)
{
	struct client_opts o = { .max_version = max_version };
	struct test_cfg t;
	struct conn c;

	cfg_init(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_int_equal(c.cli_rc, 1);
	assert_string_equal(tls_session_version(tls_server_tls(c.s)), version);
	assert_non_null(tls_session_cipher(tls_server_tls(c.s)));
	transfer(&c, true, MiB);
	transfer(&c, false, MiB);
	transfer(&c, true, 1);
	conn_close(&c);
}

static void test_tls12_round_trip(void **state)
{
	(void)state;
	check_round_trip(TLS1_2_VERSION, "TLSv1.2");
}

static void test_tls13_round_trip(void **state)
{
	(void)state;
	check_round_trip(0, "TLSv1.3");
}

static void test_peer_close(void **state)
{
	struct client_opts o = { 0 };
	struct test_cfg t;
	struct conn c;
	char buf[16];
	bool ww;

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(tls_session_read(tls_server_tls(c.s), buf, sizeof(buf), &ww), -EAGAIN);
	assert_false(ww);
	/* close_notify */
	assert_true(SSL_shutdown(c.c) >= 0);
	transfer(&c, false, 10);	/* the server may still write */
	struct pollfd p = { .fd = c.sfd, .events = POLLIN };
	assert_true(poll(&p, 1, POLL_MS) > 0);
	assert_int_equal(tls_session_read(tls_server_tls(c.s), buf, sizeof(buf), &ww), 0);
	conn_close(&c);
}

static void test_peer_eof(void **state)
{
	struct client_opts o = { 0 };
	struct test_cfg t;
	struct conn c;
	char buf[16];
	bool ww;

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	transfer(&c, false, 10);	/* past the TLS 1.3 tickets */
	assert_int_equal(shutdown(c.cfd, SHUT_WR), 0);
	struct pollfd p = { .fd = c.sfd, .events = POLLIN };
	assert_true(poll(&p, 1, POLL_MS) > 0);
	assert_int_equal(tls_session_read(tls_server_tls(c.s), buf, sizeof(buf), &ww), 0);
	conn_close(&c);
}

static void test_configured_ciphers(void **state)
{
	struct client_opts o12 = { .max_version = TLS1_2_VERSION };
	struct client_opts o13 = { 0 };
	struct test_cfg t;
	struct conn c;

	(void)state;
	cfg_init(&t);
	t.tls.ciphers = (char *)"ECDHE-ECDSA-AES256-GCM-SHA384";
	t.tls.ciphersuites = (char *)"TLS_CHACHA20_POLY1305_SHA256";
	t.tls.groups = (char *)"P-256";
	conn_open(&c, &t, &o12);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_string_equal(tls_session_cipher(tls_server_tls(c.s)), "ECDHE-ECDSA-AES256-GCM-SHA384");
	conn_close(&c);

	conn_open(&c, &t, &o13);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_string_equal(tls_session_cipher(tls_server_tls(c.s)), "TLS_CHACHA20_POLY1305_SHA256");
	transfer(&c, true, 4096);
	conn_close(&c);
}

static void test_no_shared_cipher(void **state)
{
	struct client_opts o = {
		.max_version = TLS1_2_VERSION, .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256",
	};
	struct test_cfg t;
	struct conn c;

	(void)state;
	cfg_init(&t);
	t.tls.ciphers = (char *)"ECDHE-ECDSA-AES256-GCM-SHA384";
	conn_open(&c, &t, &o);
	expect_server_failure(&c, "no shared cipher");
	assert_int_equal(c.cli_rc, -1);
	conn_close(&c);
}

static void test_min_version_13(void **state)
{
	struct client_opts o = { .max_version = TLS1_2_VERSION };
	struct test_cfg t;
	struct conn c;

	(void)state;
	cfg_init(&t);
	t.tls.min_version = TLS_VERSION_1_3;
	conn_open(&c, &t, &o);
	expect_server_failure(&c, "unsupported protocol");
	conn_close(&c);
}

/* ---- cases: ALPN and SNI -------------------------------------------------------- */

static void test_alpn_http11(void **state)
{
	struct client_opts o = { .alpn = "\x02h2\x08http/1.1" };
	struct test_cfg t;
	struct conn c;

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_string_equal(tls_session_alpn(tls_server_tls(c.s)), "http/1.1");
	conn_close(&c);
}

static void test_no_alpn(void **state)
{
	struct client_opts o = { 0 };
	struct test_cfg t;
	struct conn c;

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_null(tls_session_alpn(tls_server_tls(c.s)));
	assert_null(tls_server_sni(c.s));
	conn_close(&c);
}

static void test_h2_only_refused(void **state)
{
	struct client_opts o = { .alpn = "\x02h2" };
	struct test_cfg t;
	struct conn c;

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	expect_server_failure(&c, "no application protocol");
	assert_int_equal(c.cli_rc, -1);
	conn_close(&c);
}

/* The certificate the client saw when asking for host. */
static void check_sni(const char *host, const char *cn)
{
	struct client_opts o = { .sni = host, .alpn = "\x08http/1.1" };
	struct test_cfg t;
	struct conn c;
	char got[128];

	cfg_init(&t);
	cfg_add_sni(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	peer_cn(&c, got, sizeof(got));
	assert_string_equal(got, cn);
	assert_string_equal(tls_server_sni(c.s), host);
	assert_string_equal(tls_session_alpn(tls_server_tls(c.s)), "http/1.1");
	transfer(&c, true, 1000);
	conn_close(&c);
}

static void test_sni_exact(void **state)
{
	(void)state;
	check_sni("api.example.com", "api.example.com");
	check_sni("API.Example.COM", "api.example.com");
}

static void test_sni_wildcard(void **state)
{
	(void)state;
	check_sni("build.corp.example", "*.corp.example");
	/* One label only. */
	check_sni("a.b.corp.example", "localhost");
	check_sni("corp.example", "localhost");
}

static void test_sni_unknown_gets_default(void **state)
{
	(void)state;
	check_sni("unknown.example.org", "localhost");
}

/* A reload frees the context while sessions made from it still run. */
static void test_ctx_freed_before_handshake(void **state)
{
	struct client_opts o = { .sni = "api.example.com" };
	struct test_cfg t;
	struct conn c;
	char got[128];

	(void)state;
	cfg_init(&t);
	cfg_add_sni(&t);
	cfg_require_client_certs(&t);
	o.cert = pki.client;
	conn_open(&c, &t, &o);
	tls_server_ctx_free(c.ctx);
	c.ctx = NULL;
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	peer_cn(&c, got, sizeof(got));
	assert_string_equal(got, "api.example.com");
	transfer(&c, false, MiB);
	conn_close(&c);
}

/* ---- cases: client certificates ------------------------------------------------ */

static void test_mtls_accepted(void **state)
{
	struct client_opts o = { .cert = pki.client };
	struct test_cfg t;
	struct conn c;
	char subject[128], tiny[4];

	(void)state;
	cfg_init(&t);
	cfg_require_client_certs(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_int_equal(tls_server_peer_subject(c.s, subject, sizeof(subject)), 0);
	assert_string_equal(subject, "CN=sluice client,O=acme");
	assert_int_equal(tls_server_peer_subject(c.s, tiny, sizeof(tiny)), -ENOSPC);
	transfer(&c, true, 1000);
	conn_close(&c);
}

static void test_mtls_sni_accepted(void **state)
{
	struct client_opts o = { .cert = pki.client, .sni = "x.corp.example" };
	struct test_cfg t;
	struct conn c;
	char subject[128];

	(void)state;
	cfg_init(&t);
	cfg_add_sni(&t);
	cfg_require_client_certs(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_int_equal(tls_server_peer_subject(c.s, subject, sizeof(subject)), 0);
	assert_string_equal(subject, "CN=sluice client,O=acme");
	conn_close(&c);
}

static void test_no_client_cert_subject(void **state)
{
	struct client_opts o = { 0 };
	struct test_cfg t;
	struct conn c;
	char subject[128];

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_int_equal(tls_server_peer_subject(c.s, subject, sizeof(subject)), -ENOENT);
	conn_close(&c);
}

static void check_client_refused(X509 *cert, int max_version, const char *why)
{
	struct client_opts o = { .cert = cert, .max_version = max_version };
	struct test_cfg t;
	struct conn c;

	cfg_init(&t);
	cfg_require_client_certs(&t);
	conn_open(&c, &t, &o);
	expect_server_failure(&c, why);
	conn_close(&c);
}

static void test_client_cert_required(void **state)
{
	(void)state;
	check_client_refused(NULL, 0, "client certificate required");
	check_client_refused(NULL, TLS1_2_VERSION, "client certificate required");
}

static void test_client_cert_expired(void **state)
{
	(void)state;
	check_client_refused(pki.expired_client, 0,
			     "certificate verify failed: certificate has expired");
}

static void test_client_cert_untrusted(void **state)
{
	(void)state;
	check_client_refused(pki.rogue_client, 0, "certificate verify failed: "
			     "unable to get local issuer certificate");
	check_client_refused(pki.rogue_client, TLS1_2_VERSION, "certificate verify failed");
}

/* Tickets: a second connection resumes, client certificate and all. */
static void check_resumption(int max_version)
{
	struct client_opts o = { .cert = pki.client, .max_version = max_version };
	struct tls_server_ctx *ctx;
	struct test_cfg t;
	struct conn c;
	char err[256], subject[128];

	cfg_init(&t);
	cfg_require_client_certs(&t);
	assert_int_equal(tls_server_ctx_new(&t.tls, &ctx, err, sizeof(err)), 0);
	conn_open_ctx(&c, ctx, &o);
	handshake(&c);
	transfer(&c, false, 100);	/* the client reads the tickets */
	o.resume = SSL_get1_session(c.c);
	assert_non_null(o.resume);
	conn_close(&c);

	conn_open_ctx(&c, ctx, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	assert_true(SSL_session_reused(c.c));
	assert_int_equal(tls_server_peer_subject(c.s, subject, sizeof(subject)), 0);
	assert_string_equal(subject, "CN=sluice client,O=acme");
	SSL_SESSION_free(o.resume);
	conn_close(&c);
	tls_server_ctx_free(ctx);
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

/* ---- cases: not TLS ------------------------------------------------------------------ */

static void test_plain_http_detected(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct client_opts o = { 0 };
	struct test_cfg t;
	struct conn c;
	char buf[64];

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	assert_int_equal(send(c.cfd, req, sizeof(req) - 1, 0), (ssize_t)(sizeof(req) - 1));
	assert_int_equal(server_handshake_alone(&c), -EPROTO);
	assert_true(tls_server_saw_plain_http(c.s));
	assert_string_equal(tls_session_last_error(tls_server_tls(c.s)), "http request on the TLS port");
	/* The request is still there for the daemon's answer. */
	assert_int_equal(recv(c.sfd, buf, sizeof(buf), 0), (ssize_t)(sizeof(req) - 1));
	conn_close(&c);
}

static void test_other_garbage(void **state)
{
	static const char junk[] = "\x01\x02\x03\x04\x05\x06\x07\x08";
	struct client_opts o = { 0 };
	struct test_cfg t;
	struct conn c;

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	assert_int_equal(send(c.cfd, junk, sizeof(junk) - 1, 0), (ssize_t)(sizeof(junk) - 1));
	assert_int_equal(server_handshake_alone(&c), -EPROTO);
	assert_false(tls_server_saw_plain_http(c.s));
	assert_string_not_equal(tls_session_last_error(tls_server_tls(c.s)), "no TLS error");
	assert_int_equal(ERR_peek_error(), 0);
	conn_close(&c);
}

static void test_closed_before_handshake(void **state)
{
	struct client_opts o = { 0 };
	struct test_cfg t;
	struct conn c;

	(void)state;
	cfg_init(&t);
	conn_open(&c, &t, &o);
	assert_int_equal(shutdown(c.cfd, SHUT_WR), 0);
	assert_int_equal(server_handshake_alone(&c), -ECONNRESET);
	assert_false(tls_server_saw_plain_http(c.s));
	conn_close(&c);
}

/* ---- cases: kTLS ------------------------------------------------------------------------ */

/* The kernel takes over only when it has the tls module; this host has
 * none, so both directions stay in userspace and the data still flows. */
static void check_ktls(bool enabled)
{
	struct client_opts o = { .max_version = TLS1_2_VERSION };
	bool kernel = tls_kernel_has_ktls();
	struct test_cfg t;
	struct conn c;

	assert_int_equal(kernel, access("/proc/net/tls_stat", F_OK) == 0);
	cfg_init(&t);
	t.tls.ktls = enabled;
	conn_open(&c, &t, &o);
	handshake(&c);
	assert_int_equal(c.srv_rc, 1);
	if (!kernel || !enabled) {
		assert_false(tls_session_ktls_send(tls_server_tls(c.s)));
		assert_false(tls_session_ktls_recv(tls_server_tls(c.s)));
	}
	transfer(&c, true, 100000);
	transfer(&c, false, 100000);
	conn_close(&c);
}

static void test_ktls_flags(void **state)
{
	(void)state;
	check_ktls(true);
	check_ktls(false);
}

/* ---- cases: context errors ---------------------------------------------------------------- */

static void expect_ctx_error(const struct test_cfg *t, const char *want)
{
	struct tls_server_ctx *ctx = (void *)1;
	char err[512] = "";

	assert_int_equal(tls_server_ctx_new(&t->tls, &ctx, err, sizeof(err)), -EINVAL);
	assert_null(ctx);
	if (strcmp(err, want) != 0)
		fail_msg("error \"%s\", expected \"%s\"", err, want);
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_bad_cert_file(void **state)
{
	struct test_cfg t;
	char bad[128], want[300];

	(void)state;
	cfg_init(&t);
	path_of(bad, sizeof(bad), "bad.pem");
	t.tls.cert = bad;
	snprintf(want, sizeof(want), "tls.cert %s: no start line", bad);
	expect_ctx_error(&t, want);
}

static void test_key_mismatch(void **state)
{
	struct test_cfg t;
	char other[128], want[400];

	(void)state;
	cfg_init(&t);
	path_of(other, sizeof(other), "other.key");
	t.tls.key = other;
	snprintf(want, sizeof(want), "tls.key %s does not match tls.cert %s", other, t.cert);
	expect_ctx_error(&t, want);
}

static void test_key_is_not_a_key(void **state)
{
	struct test_cfg t;
	char bad[128], want[300];

	(void)state;
	cfg_init(&t);
	path_of(bad, sizeof(bad), "bad.pem");
	t.tls.key = bad;
	snprintf(want, sizeof(want), "tls.key %s: cannot load a private key: unsupported", bad);
	expect_ctx_error(&t, want);
}

static void test_bad_sni_entry(void **state)
{
	struct test_cfg t;
	char other[128], want[400];

	(void)state;
	cfg_init(&t);
	cfg_add_sni(&t);
	path_of(other, sizeof(other), "other.key");
	t.sni[1].key = other;
	snprintf(want, sizeof(want), "tls.sni[1].key %s does not match tls.sni[1].cert %s",
		 other, t.corp);
	expect_ctx_error(&t, want);
}

static void test_bad_settings(void **state)
{
	struct test_cfg t;
	char want[300];

	(void)state;
	cfg_init(&t);
	t.tls.ciphers = (char *)"NOPE";
	expect_ctx_error(&t, "tls.ciphers NOPE: no cipher match");
	cfg_init(&t);
	t.tls.ciphersuites = (char *)"TLS_NOPE";
	expect_ctx_error(&t, "tls.ciphersuites TLS_NOPE: no cipher match");
	cfg_init(&t);
	t.tls.groups = (char *)"P-999";
	expect_ctx_error(&t, "tls.groups P-999: passed invalid argument");
	cfg_init(&t);
	t.tls.client_ca = t.key;
	snprintf(want, sizeof(want), "tls.client_ca %s: no certificate or crl found", t.key);
	expect_ctx_error(&t, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls12_round_trip),
		cmocka_unit_test(test_tls13_round_trip),
		cmocka_unit_test(test_peer_close),
		cmocka_unit_test(test_peer_eof),
		cmocka_unit_test(test_configured_ciphers),
		cmocka_unit_test(test_no_shared_cipher),
		cmocka_unit_test(test_min_version_13),
		cmocka_unit_test(test_alpn_http11),
		cmocka_unit_test(test_no_alpn),
		cmocka_unit_test(test_h2_only_refused),
		cmocka_unit_test(test_sni_exact),
		cmocka_unit_test(test_sni_wildcard),
		cmocka_unit_test(test_sni_unknown_gets_default),
		cmocka_unit_test(test_ctx_freed_before_handshake),
		cmocka_unit_test(test_mtls_accepted),
		cmocka_unit_test(test_mtls_sni_accepted),
		cmocka_unit_test(test_no_client_cert_subject),
		cmocka_unit_test(test_client_cert_required),
		cmocka_unit_test(test_client_cert_expired),
		cmocka_unit_test(test_client_cert_untrusted),
		cmocka_unit_test(test_resumption_tls13),
		cmocka_unit_test(test_resumption_tls12),
		cmocka_unit_test(test_plain_http_detected),
		cmocka_unit_test(test_other_garbage),
		cmocka_unit_test(test_closed_before_handshake),
		cmocka_unit_test(test_ktls_flags),
		cmocka_unit_test(test_bad_cert_file),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_key_is_not_a_key),
		cmocka_unit_test(test_bad_sni_entry),
		cmocka_unit_test(test_bad_settings),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
