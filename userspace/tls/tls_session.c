/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS connection on a socket that the server and the client sessions
 * share: set-up, handshake steps, record I/O, errors and negotiated facts.
 * Only the role differs (SSL_set_accept_state or SSL_set_connect_state);
 * OpenSSL keeps the rest apart.
 */
#include "tls/tls_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

int tls_session_init(struct tls_session *s, SSL_CTX *c, int fd, bool server)
{
	memset(s, 0, sizeof(*s));
	ERR_clear_error();
	s->ssl = SSL_new(c);
	/* SSL_set_fd makes a socket BIO without BIO_CLOSE: the fd stays open. */
	if (!s->ssl || SSL_set_fd(s->ssl, fd) != 1) {
		SSL_free(s->ssl);
		s->ssl = NULL;
		ERR_clear_error();
		return -ENOMEM;
	}
	if (server)
		SSL_set_accept_state(s->ssl);
	else
		SSL_set_connect_state(s->ssl);
	s->fd = fd;
	return 0;
}

/* No close_notify is sent: the caller closes the socket when it is done.
 * OpenSSL would then drop the session (from the server's cache, or as the
 * client's resumable session), as after a truncation attack.  A gateway
 * closes idle keep-alive connections that way all the time, so one that
 * never failed counts as closed cleanly and its session stays resumable;
 * a failed one is dropped. */
void tls_session_fini(struct tls_session *s)
{
	if (!s->ssl)
		return;
	if (!s->err[0])
		SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(s->ssl);
	s->ssl = NULL;
}

/* ---- errors ----------------------------------------------------------- */

static bool is_unexpected_eof(unsigned long e)
{
	return ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/* The peer ended the stream: close_notify, or the TCP connection closed
 * without one (which a context with SSL_OP_IGNORE_UNEXPECTED_EOF reports
 * as close_notify).  Within a handshake either is the peer leaving.  sys
 * is the errno of the failed call. */
static bool peer_left(int code, int sys)
{
	unsigned long e = ERR_peek_error();

	return (code == SSL_ERROR_SYSCALL && !e && sys == 0) || is_unexpected_eof(e) ||
	       code == SSL_ERROR_ZERO_RETURN;
}

int tls_session_fail(struct tls_session *s, int ret, int sys)
{
	int code = SSL_get_error(s->ssl, ret);
	unsigned long e = ERR_peek_error();
	int rc = -EPROTO;

	if (peer_left(code, sys)) {
		snprintf(s->err, sizeof(s->err), "connection closed by the %s",
			 SSL_is_server(s->ssl) ? "client" : "server");
		rc = -ECONNRESET;
	} else if (code == SSL_ERROR_SYSCALL && !e) {
		snprintf(s->err, sizeof(s->err), "%s", strerror(sys));
		rc = sys > 0 ? -sys : -EIO;
	} else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		   ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		snprintf(s->err, sizeof(s->err), "client certificate required");
	} else {
		tls_describe_failure(s->ssl, code, s->err, sizeof(s->err));
	}
	ERR_clear_error();
	return rc;
}

const char *tls_session_last_error(const struct tls_session *s)
{
	return s->err[0] ? s->err : "no TLS error";
}

/* ---- handshake and records --------------------------------------------- */

/* What a failed SSL call (ret, and errno right after it in sys) means:
 * -EAGAIN waiting for POLLOUT if *want_write, else POLLIN; 0 when the
 * peer ended the stream (close_notify, or EOF without one) and that may
 * end this call (a read); else tls_session_fail(). */
static int call_result(struct tls_session *s, int ret, int sys, bool end_ok, bool *want_write)
{
	int code = SSL_get_error(s->ssl, ret);

	*want_write = code == SSL_ERROR_WANT_WRITE;
	if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	if (end_ok && peer_left(code, sys)) {
		ERR_clear_error();
		return 0;
	}
	return tls_session_fail(s, ret, sys);
}

int tls_session_handshake(struct tls_session *s, bool *want_write)
{
	int ret, sys;

	ERR_clear_error();
	errno = 0;
	ret = SSL_do_handshake(s->ssl);
	sys = errno;
	if (ret == 1) {
		*want_write = false;
		return 1;
	}
	ret = call_result(s, ret, sys, false, want_write);
	return ret == -EAGAIN ? 0 : ret;
}

ssize_t tls_session_read(struct tls_session *s, void *buf, size_t len, bool *want_write)
{
	size_t got;
	int ret, sys;

	ERR_clear_error();
	errno = 0;
	ret = SSL_read_ex(s->ssl, buf, len, &got);
	sys = errno;
	if (ret == 1) {
		*want_write = false;
		return (ssize_t)got;
	}
	return call_result(s, ret, sys, true, want_write);
}

ssize_t tls_session_write(struct tls_session *s, const void *buf, size_t len,
			  bool *want_write)
{
	size_t done;
	int ret, sys;

	*want_write = false;
	if (len == 0)
		return 0;
	ERR_clear_error();
	errno = 0;
	ret = SSL_write_ex(s->ssl, buf, len, &done);
	sys = errno;
	if (ret == 1)
		return (ssize_t)done;
	return call_result(s, ret, sys, false, want_write);
}

/* ---- negotiated facts -------------------------------------------------- */

bool tls_session_ktls_send(const struct tls_session *s)
{
	return BIO_get_ktls_send(SSL_get_wbio(s->ssl)) != 0;
}

bool tls_session_ktls_recv(const struct tls_session *s)
{
	return BIO_get_ktls_recv(SSL_get_rbio(s->ssl)) != 0;
}

enum sluice_tls_mode tls_session_mode(const struct tls_session *s)
{
	bool tx = tls_session_ktls_send(s), rx = tls_session_ktls_recv(s);

	if (tx && rx)
		return SLUICE_TLS_KTLS;
	return tx ? SLUICE_TLS_KTLS_TX : SLUICE_TLS_USERSPACE;
}

const char *tls_session_version(const struct tls_session *s)
{
	return SSL_get_version(s->ssl);
}

const char *tls_session_cipher(const struct tls_session *s)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);

	return c ? SSL_CIPHER_get_name(c) : NULL;
}

/* Both sides offer or accept nothing else, so any selection is HTTP/1.1. */
const char *tls_session_alpn(const struct tls_session *s)
{
	const unsigned char *proto;
	unsigned int len;

	SSL_get0_alpn_selected(s->ssl, &proto, &len);
	return len ? "http/1.1" : NULL;
}

bool tls_session_resumed(const struct tls_session *s)
{
	return SSL_session_reused(s->ssl) == 1;
}
