/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The upstream TLS client against an in-process OpenSSL server over real
 * loopback TCP.
 *
 * Keys and certificates are made at start-up in memory: a trusted CA with
 * a server certificate for localhost and 127.0.0.1, and a rogue CA with a
 * certificate for the same names.  Each case connects a non-blocking
 * client socket to a loopback listener; the client session goes on it
 * after the connect, as the daemon does, and the server is a plain
 * non-blocking OpenSSL server on the accepted end.  Both are driven from
 * this thread with poll().
 *
 * The client reads and writes the way the daemon does: plain send/recv on
 * the fd for a direction the kernel took over (kTLS; only where the kernel
 * has the tls module, e.g. in vm-test), tls_session_read/write otherwise,
 * and OpenSSL for the record that makes a kernel-TLS receive fail with EIO.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"
#include "tls_fixture.h"

#define POLL_MS		2000
#define MiB		(1u << 20)

/* ---- a small PKI and a listener ---------------------------------------------- */

struct pki {
	EVP_PKEY *ca_key, *rogue_key, *srv_key;
	X509 *ca, *rogue, *srv, *rogue_srv;
	char ca_path[64];
	int listen_fd;
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

static int write_ca_file(void)
{
	int fd;

	strcpy(pki.ca_path, "/tmp/sluice-test-ca-XXXXXX");
	fd = mkstemp(pki.ca_path);
	if (fd < 0)
		return -1;
	close(fd);
	fixture_write_cert(pki.ca_path, pki.ca);
	return 0;
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
	/* A write to a peer that left must fail, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
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
	pki.listen_fd = open_listener();
	return pki.listen_fd < 0 ? -1 : write_ca_file();
}

static int pki_teardown(void **state)
{
	(void)state;
	close(pki.listen_fd);
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

/* ---- a client and a server, joined by TCP ------------------------------------- */

struct pair {
	struct backend_cfg be;
	struct tls_client_ctx *ctx;
	struct tls_session *s;		/* the client */
	int cfd;
	int cli_rc;			/* handshake: 1 done, 0 going, <0 failed */
	SSL_CTX *srv_ctx;
	SSL *srv;
	int sfd;
	int srv_rc;
	bool client_offered_http11;
};

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";
	struct pair *p = arg;
	unsigned char *sel;

	(void)ssl;
	if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	p->client_offered_http11 = true;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

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

/* A TCP connection to the listener, the client session on its connected
 * end and a server SSL on the accepted one. */
static void pair_connect(struct pair *p)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(pki.listen_fd, (struct sockaddr *)&sin, &len), 0);
	p->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->cfd >= 0);
	assert_int_equal(connect(p->cfd, (struct sockaddr *)&sin, len), 0);
	assert_int_equal(fcntl(p->cfd, F_SETFL, fcntl(p->cfd, F_GETFL) | O_NONBLOCK), 0);
	p->sfd = accept4(pki.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(p->sfd >= 0);
	p->s = tls_client_session_new(p->ctx, p->cfd);
	assert_non_null(p->s);
	p->srv = SSL_new(p->srv_ctx);
	assert_non_null(p->srv);
	assert_int_equal(SSL_set_fd(p->srv, p->sfd), 1);
	SSL_set_accept_state(p->srv);
	p->cli_rc = p->srv_rc = 0;
}

/* max_version 0: whatever OpenSSL supports. */
static void pair_init(struct pair *p, struct backend_cfg be, X509 *cert, int max_version)
{
	char err[256] = "";

	memset(p, 0, sizeof(*p));
	p->be = be;
	assert_int_equal(tls_client_ctx_new(&p->be, &p->ctx, err, sizeof(err)), 0);
	p->srv_ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(p->srv_ctx);
	assert_int_equal(SSL_CTX_use_certificate(p->srv_ctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(p->srv_ctx, pki.srv_key), 1);
	if (max_version)
		assert_int_equal(SSL_CTX_set_max_proto_version(p->srv_ctx, max_version), 1);
	SSL_CTX_set_alpn_select_cb(p->srv_ctx, select_alpn, p);
	pair_connect(p);
}

static void pair_disconnect(struct pair *p)
{
	tls_client_session_free(p->s);
	p->s = NULL;
	SSL_set_shutdown(p->srv, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(p->srv);
	p->srv = NULL;
	close(p->cfd);
	close(p->sfd);
	ERR_clear_error();
}

/* Another connection from the same client context to the same server. */
static void pair_reconnect(struct pair *p)
{
	pair_disconnect(p);
	pair_connect(p);
}

static void pair_free(struct pair *p)
{
	pair_disconnect(p);
	tls_client_ctx_free(p->ctx);
	SSL_CTX_free(p->srv_ctx);
}

/* POLLIN or POLLOUT as an end's last call asked, or nothing. */
static short events_for(bool waiting, bool want_write)
{
	return waiting ? (want_write ? POLLOUT : POLLIN) : 0;
}

static void wait_for(int fd1, short ev1, int fd2, short ev2)
{
	struct pollfd fds[2] = { { .fd = fd1, .events = ev1 }, { .fd = fd2, .events = ev2 } };

	assert_true(poll(fds, 2, POLL_MS) > 0);
}

/* An OpenSSL call of the server: >0 bytes (or 1 for a handshake done),
 * -EAGAIN with *ww, 0 for the peer's close, -EPROTO. */
static ssize_t server_result(struct pair *p, int ret, size_t n, bool *ww)
{
	int e = SSL_get_error(p->srv, ret);

	*ww = e == SSL_ERROR_WANT_WRITE;
	if (ret == 1)
		return n ? (ssize_t)n : 1;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	ERR_clear_error();
	return e == SSL_ERROR_ZERO_RETURN ? 0 : -EPROTO;
}

/* Both handshakes until each is done or failed (a TLS 1.3 client is done
 * before the server has read its Finished).  The client's result. */
static int handshake(struct pair *p)
{
	for (int round = 0; round < 200; round++) {
		bool cw = false, sw = false;

		if (p->cli_rc == 0)
			p->cli_rc = tls_session_handshake(p->s, &cw);
		if (p->srv_rc == 0) {
			ssize_t r = server_result(p, SSL_do_handshake(p->srv), 0, &sw);

			p->srv_rc = r == -EAGAIN ? 0 : r == 1 ? 1 : -1;
		}
		if (p->cli_rc < 0 || (p->cli_rc == 1 && p->srv_rc != 0))
			return p->cli_rc;
		wait_for(p->cfd, events_for(p->cli_rc == 0, cw),
			 p->sfd, events_for(p->srv_rc == 0, sw));
	}
	fail_msg("handshake did not finish");
	return -1;
}

/* ---- data, the daemon's way ------------------------------------------------------ */

static ssize_t errno_result(ssize_t r)
{
	return r >= 0 ? r : (errno == EWOULDBLOCK ? -EAGAIN : -errno);
}

static ssize_t client_write(struct pair *p, const char *b, size_t n, bool *ww)
{
	if (!tls_session_ktls_send(p->s))
		return tls_session_write(p->s, b, n, ww);
	*ww = true;
	return errno_result(send(p->cfd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT));
}

/* A kernel-TLS receive fails with EIO at a record that is not data; then
 * OpenSSL reads (this one read suffices for the alerts the tests send). */
static ssize_t client_read(struct pair *p, char *b, size_t n, bool *ww)
{
	ssize_t r;

	*ww = false;
	if (!tls_session_ktls_recv(p->s))
		return tls_session_read(p->s, b, n, ww);
	r = errno_result(recv(p->cfd, b, n, MSG_DONTWAIT));
	return r == -EIO ? tls_session_read(p->s, b, n, ww) : r;
}

static ssize_t server_write(struct pair *p, const char *b, size_t n, bool *ww)
{
	size_t done = 0;
	int ret = SSL_write_ex(p->srv, b, n, &done);

	return server_result(p, ret, done, ww);
}

static ssize_t server_read(struct pair *p, char *b, size_t n, bool *ww)
{
	size_t got = 0;
	int ret = SSL_read_ex(p->srv, b, n, &got);

	return server_result(p, ret, got, ww);
}

/* A transfer in progress: bytes written by one end, read by the other. */
struct flow {
	ssize_t (*write)(struct pair *, const char *, size_t, bool *);
	ssize_t (*read)(struct pair *, char *, size_t, bool *);
	int wfd, rfd;
	const char *out;
	char *in;
	size_t size, sent, got;
	bool ww, rw;		/* what the last try waits for */
};

/* As much as each end takes now; false once the reader has everything. */
static bool flow_step(struct pair *p, struct flow *f)
{
	ssize_t n = -EAGAIN;

	while (f->sent < f->size &&
	       (n = f->write(p, f->out + f->sent, f->size - f->sent, &f->ww)) > 0)
		f->sent += (size_t)n;
	assert_true(f->sent == f->size || n == -EAGAIN);
	while (f->got < f->size &&
	       (n = f->read(p, f->in + f->got, f->size - f->got, &f->rw)) > 0)
		f->got += (size_t)n;
	assert_true(f->got == f->size || n == -EAGAIN);
	return f->got < f->size;
}

static void fill_pattern(char *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (char)((i * 31 + seed) & 0xff);
}

/* size bytes one way, written and read concurrently, compared. */
static void transfer(struct pair *p, bool to_server, size_t size)
{
	struct flow f = {
		.write = to_server ? client_write : server_write,
		.read = to_server ? server_read : client_read,
		.wfd = to_server ? p->cfd : p->sfd,
		.rfd = to_server ? p->sfd : p->cfd,
		.size = size,
	};
	char *out = malloc(size), *in = malloc(size);

	assert_non_null(out);
	assert_non_null(in);
	fill_pattern(out, size, to_server ? 7 : 99);
	f.out = out;
	f.in = in;
	for (int round = 0; flow_step(p, &f); round++) {
		assert_true(round < 100000);
		wait_for(f.wfd, events_for(f.sent < size, f.ww), f.rfd, events_for(true, f.rw));
	}
	assert_memory_equal(in, out, size);
	free(out);
	free(in);
}

/* A request one way, a response the other, both size bytes. */
static void round_trip(struct pair *p, size_t size)
{
	transfer(p, true, size);
	transfer(p, false, size);
}

/* The client's next read after the socket has something: its result. */
static ssize_t client_read_ready(struct pair *p, char *b, size_t n)
{
	bool ww = false;
	ssize_t r;

	for (int round = 0; round < 100; round++) {
		r = client_read(p, b, n, &ww);
		if (r != -EAGAIN)
			return r;
		wait_for(p->cfd, events_for(true, ww), -1, 0);
	}
	fail_msg("the client read nothing");
	return -1;
}

/* ---- cases: the protocol ------------------------------------------------------ */

static void check_round_trip(int max_version, int version)
{
	struct pair p;

	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, max_version);
	assert_int_equal(handshake(&p), 1);
	assert_int_equal(SSL_version(p.srv), version);
	assert_string_equal(tls_session_version(p.s), SSL_get_version(p.srv));
	assert_non_null(tls_session_cipher(p.s));
	/* TLS 1.3: the first read also swallows the session tickets. */
	round_trip(&p, 100);
	round_trip(&p, MiB);
	round_trip(&p, 1);
	pair_free(&p);
}

static void test_tls13_round_trip(void **state)
{
	(void)state;
	check_round_trip(0, TLS1_3_VERSION);
}

static void test_tls12_round_trip(void **state)
{
	(void)state;
	check_round_trip(TLS1_2_VERSION, TLS1_2_VERSION);
}

static void test_ip_literal_host(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("127.0.0.1", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	/* No SNI for an address. */
	assert_null(SSL_get_servername(p.srv, TLSEXT_NAMETYPE_host_name));
	round_trip(&p, 1000);
	pair_free(&p);
}

static void test_sni_and_alpn(void **state)
{
	const unsigned char *proto;
	unsigned int len;
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	assert_string_equal(SSL_get_servername(p.srv, TLSEXT_NAMETYPE_host_name), "localhost");
	assert_true(p.client_offered_http11);
	SSL_get0_alpn_selected(p.srv, &proto, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	assert_string_equal(tls_session_alpn(p.s), "http/1.1");
	pair_free(&p);
}

static void expect_verify_failure(struct backend_cfg be, X509 *cert, const char *why)
{
	struct pair p;

	pair_init(&p, be, cert, 0);
	assert_int_equal(handshake(&p), -EPROTO);
	if (!strstr(tls_session_last_error(p.s), why))
		fail_msg("tls_session_last_error: \"%s\", expected \"%s\"",
			 tls_session_last_error(p.s), why);
	/* The client told the server why: its handshake fails too. */
	for (int round = 0; p.srv_rc == 0 && round < 100; round++) {
		bool sw = false;
		ssize_t r = server_result(&p, SSL_do_handshake(p.srv), 0, &sw);

		p.srv_rc = r == -EAGAIN ? 0 : r == 1 ? 1 : -1;
		if (p.srv_rc == 0)
			wait_for(p.sfd, events_for(true, sw), -1, 0);
	}
	assert_int_equal(p.srv_rc, -1);
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

static void test_old_protocol_refused(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, TLS1_1_VERSION);
	/* TLS 1.1 needs SHA-1, which level 1 forbids in OpenSSL 3. */
	SSL_set_security_level(p.srv, 0);
	assert_int_equal(handshake(&p), -EPROTO);
	pair_free(&p);
}

static void test_plaintext_server_refused(void **state)
{
	static const char http[] = "HTTP/1.1 400 Bad Request\r\n"
				   "Content-Length: 0\r\n\r\n";
	struct pair p;
	bool ww;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(tls_session_handshake(p.s, &ww), 0);
	assert_false(ww);
	assert_int_equal(send(p.sfd, http, sizeof(http) - 1, 0), (ssize_t)(sizeof(http) - 1));
	wait_for(p.cfd, POLLIN, -1, 0);
	assert_int_equal(tls_session_handshake(p.s, &ww), -EPROTO);
	assert_string_not_equal(tls_session_last_error(p.s), "no TLS error");
	pair_free(&p);
}

static void test_server_leaves_during_handshake(void **state)
{
	struct pair p;
	bool ww;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(tls_session_handshake(p.s, &ww), 0);
	assert_int_equal(shutdown(p.sfd, SHUT_WR), 0);
	wait_for(p.cfd, POLLIN, -1, 0);
	assert_int_equal(tls_session_handshake(p.s, &ww), -ECONNRESET);
	assert_string_equal(tls_session_last_error(p.s), "connection closed by the server");
	pair_free(&p);
}

/* ---- cases: records that carry no data ------------------------------------------ */

/* The response, then close_notify: the data first, then the end. */
static void check_close_notify(int max_version)
{
	char b[64];
	bool ww;
	struct pair p;

	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, max_version);
	assert_int_equal(handshake(&p), 1);
	round_trip(&p, 10);
	assert_int_equal(server_write(&p, "bye", 3, &ww), 3);
	assert_true(SSL_shutdown(p.srv) >= 0);
	assert_int_equal(client_read_ready(&p, b, sizeof(b)), 3);
	assert_memory_equal(b, "bye", 3);
	assert_int_equal(client_read_ready(&p, b, sizeof(b)), 0);
	pair_free(&p);
}

static void test_close_notify_tls13(void **state)
{
	(void)state;
	check_close_notify(0);
}

/* With kernel TLS (vm-test) the kernel receives TLS 1.2: close_notify
 * makes its receive fail with EIO and goes through OpenSSL. */
static void test_close_notify_tls12(void **state)
{
	(void)state;
	check_close_notify(TLS1_2_VERSION);
}

/* TLS 1.3 tickets arrive after the handshake with no data: a read takes
 * them without a result (the connection stays usable), and the next
 * connection resumes with one. */
static void test_tickets_alone(void **state)
{
	struct pair p;
	char b[16];
	bool ww;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	wait_for(p.cfd, POLLIN, -1, 0);
	assert_int_equal(tls_session_read(p.s, b, sizeof(b), &ww), -EAGAIN);
	assert_false(ww);
	round_trip(&p, 100);
	pair_reconnect(&p);
	assert_int_equal(handshake(&p), 1);
	assert_true(tls_session_resumed(p.s));
	pair_free(&p);
}

/* A backend that closes an idle connection without close_notify: the read
 * says the stream ended, and the session stays resumable. */
static void test_eof_without_close_notify(void **state)
{
	struct pair p;
	char b[16];

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	round_trip(&p, 10);	/* the tickets */
	assert_int_equal(shutdown(p.sfd, SHUT_WR), 0);
	assert_int_equal(client_read_ready(&p, b, sizeof(b)), 0);
	assert_string_equal(tls_session_last_error(p.s), "no TLS error");
	pair_reconnect(&p);
	assert_int_equal(handshake(&p), 1);
	assert_true(tls_session_resumed(p.s));
	pair_free(&p);
}

static void test_garbage_after_handshake(void **state)
{
	static const char junk[] = "\x17\x03\x03\x00\x20"
				   "this is not an encrypted record!";
	struct pair p;
	char b[64];
	bool ww;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	round_trip(&p, 10);
	assert_int_equal(send(p.sfd, junk, sizeof(junk) - 1, 0), (ssize_t)(sizeof(junk) - 1));
	wait_for(p.cfd, POLLIN, -1, 0);
	assert_int_equal(tls_session_read(p.s, b, sizeof(b), &ww), -EPROTO);
	assert_string_not_equal(tls_session_last_error(p.s), "no TLS error");
	/* The error does not leak into the next connection's calls. */
	assert_int_equal(ERR_peek_error(), 0);
	pair_free(&p);
}

/* ---- cases: resumption ----------------------------------------------------------- */

/* The second connection of a context resumes the first one's session. */
static void check_resumption(int max_version)
{
	struct pair p;

	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, max_version);
	assert_int_equal(handshake(&p), 1);
	assert_false(tls_session_resumed(p.s));
	round_trip(&p, 10);	/* TLS 1.3 tickets arrive here */

	pair_reconnect(&p);
	assert_int_equal(handshake(&p), 1);
	assert_true(SSL_session_reused(p.srv));
	assert_true(tls_session_resumed(p.s));
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
	char b[16];
	bool ww;

	(void)state;
	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, 0);
	assert_int_equal(handshake(&p), 1);
	round_trip(&p, 10);	/* receive the tickets */
	assert_int_equal(send(p.sfd, junk, sizeof(junk) - 1, 0), (ssize_t)(sizeof(junk) - 1));
	wait_for(p.cfd, POLLIN, -1, 0);
	assert_int_equal(tls_session_read(p.s, b, sizeof(b), &ww), -EPROTO);

	pair_reconnect(&p);
	assert_int_equal(handshake(&p), 1);
	assert_false(SSL_session_reused(p.srv));
	pair_free(&p);
}

/* ---- cases: kernel TLS ------------------------------------------------------------ */

/*
 * Where the kernel has no tls module (this host) both directions stay in
 * OpenSSL.  Where it has one (vm-test), OpenSSL 3.0 hands TLS 1.2 to the
 * kernel both ways and TLS 1.3 for sending; the data still flows, through
 * plain send/recv on the fd for those directions.
 */
static void check_ktls(int max_version, bool want_rx)
{
	bool kernel = access("/proc/net/tls_stat", F_OK) == 0;
	struct pair p;

	pair_init(&p, backend("localhost", pki.ca_path, true), pki.srv, max_version);
	assert_int_equal(handshake(&p), 1);
	assert_int_equal(tls_session_ktls_send(p.s), kernel);
	if (!kernel || want_rx)
		assert_int_equal(tls_session_ktls_recv(p.s), kernel);
	if (!kernel)
		assert_int_equal(tls_session_mode(p.s), SLUICE_TLS_USERSPACE);
	else
		assert_int_equal(tls_session_mode(p.s), tls_session_ktls_recv(p.s)
				 ? SLUICE_TLS_KTLS : SLUICE_TLS_KTLS_TX);
	round_trip(&p, 100000);
	pair_free(&p);
}

static void test_ktls_tls12(void **state)
{
	(void)state;
	check_ktls(TLS1_2_VERSION, true);
}

static void test_ktls_tls13(void **state)
{
	(void)state;
	check_ktls(0, false);
}

/* ---- cases: context errors ------------------------------------------------------------ */

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
		cmocka_unit_test(test_sni_and_alpn),
		cmocka_unit_test(test_untrusted_ca_refused),
		cmocka_unit_test(test_system_store_refuses_private_ca),
		cmocka_unit_test(test_wrong_host_refused),
		cmocka_unit_test(test_wrong_ip_refused),
		cmocka_unit_test(test_verify_off_accepts_untrusted),
		cmocka_unit_test(test_old_protocol_refused),
		cmocka_unit_test(test_plaintext_server_refused),
		cmocka_unit_test(test_server_leaves_during_handshake),
		cmocka_unit_test(test_close_notify_tls13),
		cmocka_unit_test(test_close_notify_tls12),
		cmocka_unit_test(test_tickets_alone),
		cmocka_unit_test(test_eof_without_close_notify),
		cmocka_unit_test(test_garbage_after_handshake),
		cmocka_unit_test(test_resumption_tls13),
		cmocka_unit_test(test_resumption_tls12),
		cmocka_unit_test(test_failed_session_not_resumed),
		cmocka_unit_test(test_ktls_tls12),
		cmocka_unit_test(test_ktls_tls13),
		cmocka_unit_test(test_bad_ca_file),
		cmocka_unit_test(test_missing_host),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
