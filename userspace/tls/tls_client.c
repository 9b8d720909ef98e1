/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OpenSSL client contexts and sessions for https backends.  The session
 * itself (handshake, records, kTLS) is the shared one of tls_session.c;
 * this file sets up what only a client has: trust, the name to verify
 * and send as SNI, ALPN, and the session to resume.
 *
 * The context is shared by all workers.  Everything in it is read-only
 * after tls_client_ctx_new() except the remembered session, which has its
 * own mutex.
 */
#include "tls/tls.h"
#include "tls/tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tls_client_ctx {
	SSL_CTX *ssl_ctx;
	char *host;		/* SNI and verification name */
	bool host_is_ip;	/* no SNI for IP literals (RFC 6066 3) */

	/* The newest resumable session: handed to every new connection so
	 * reconnects skip the full handshake.  Written from whichever
	 * worker received the ticket, hence the lock. */
	pthread_mutex_t lock;
	SSL_SESSION *last;
};

static bool host_is_ip_literal(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, addr) == 1 ||
	       inet_pton(AF_INET6, host, addr) == 1;
}

/* ---- session cache --------------------------------------------------- */

static struct tls_client_ctx *ctx_of(SSL_CTX *ssl_ctx)
{
	return SSL_CTX_get_app_data(ssl_ctx);
}

/* OpenSSL calls this for every new session: after a TLS 1.2 handshake, and
 * for each TLS 1.3 ticket, which arrives after the handshake and is read by
 * tls_session_read() (through OpenSSL also when the kernel receives).  Returning 1 keeps OpenSSL's reference for ourselves. */
static int remember_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_client_ctx *ctx = ctx_of(SSL_get_SSL_CTX(ssl));
	SSL_SESSION *old;

	pthread_mutex_lock(&ctx->lock);
	old = ctx->last;
	ctx->last = sess;
	pthread_mutex_unlock(&ctx->lock);
	SSL_SESSION_free(old);
	return 1;
}

/* A session the server refused to resume, or one of a failed connection,
 * must not be offered again. */
static void forget_session(SSL_CTX *ssl_ctx, SSL_SESSION *sess)
{
	struct tls_client_ctx *ctx = ctx_of(ssl_ctx);
	SSL_SESSION *drop = NULL;

	pthread_mutex_lock(&ctx->lock);
	if (ctx->last == sess) {
		drop = ctx->last;
		ctx->last = NULL;
	}
	pthread_mutex_unlock(&ctx->lock);
	SSL_SESSION_free(drop);
}

/* SSL_set_session() takes its own reference, so the lock only has to
 * cover reading the pointer. */
static int offer_last_session(struct tls_client_ctx *ctx, SSL *ssl)
{
	int ok = 1;

	pthread_mutex_lock(&ctx->lock);
	if (ctx->last)
		ok = SSL_set_session(ssl, ctx->last);
	pthread_mutex_unlock(&ctx->lock);
	return ok == 1 ? 0 : -ENOMEM;
}

static void enable_session_cache(SSL_CTX *ssl_ctx)
{
	/* Clients never look sessions up in OpenSSL's internal cache; we keep
	 * the one we want in ctx->last, so don't let the cache grow. */
	SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_CLIENT |
				       SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ssl_ctx, remember_session);
	SSL_CTX_sess_set_remove_cb(ssl_ctx, forget_session);
}

/* ---- context --------------------------------------------------------- */

static int load_trust(SSL_CTX *ssl_ctx, const struct backend_cfg *be,
		      char *err, size_t errlen)
{
	char what[300];

	if (be->ca_file && be->ca_file[0]) {
		if (SSL_CTX_load_verify_locations(ssl_ctx, be->ca_file, NULL) == 1)
			return 0;
		snprintf(what, sizeof(what), "ca_file %s", be->ca_file);
		return tls_ctx_error(err, errlen, what);
	}
	if (SSL_CTX_set_default_verify_paths(ssl_ctx) != 1)
		return tls_ctx_error(err, errlen, "system CA store");
	return 0;
}

/* The name the certificate must carry.  Set on the context's parameters,
 * which SSL_new() copies into every session. */
static int set_verify_name(struct tls_client_ctx *ctx, char *err, size_t errlen)
{
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx->ssl_ctx);
	int ok;

	if (ctx->host_is_ip) {
		ok = X509_VERIFY_PARAM_set1_ip_asc(param, ctx->host);
	} else {
		X509_VERIFY_PARAM_set_hostflags(param,
			X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = X509_VERIFY_PARAM_set1_host(param, ctx->host, 0);
	}
	return ok == 1 ? 0 : tls_ctx_error(err, errlen, "verification host name");
}

static int configure_ctx(struct tls_client_ctx *ctx, const struct backend_cfg *be,
			 char *err, size_t errlen)
{
	SSL_CTX *c = ctx->ssl_ctx;
	int rc;

	if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1)
		return tls_ctx_error(err, errlen, "minimum TLS version");
	/* Upstream renegotiation would make a write wait for a read, and
	 * kTLS cannot rekey TLS 1.2; refuse it.  A backend that closes an idle
	 * keep-alive connection without close_notify is common and harmless
	 * (HTTP framing tells a cut response): without IGNORE_UNEXPECTED_EOF
	 * OpenSSL would take it for an attack and forget the session. */
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_ENABLE_KTLS |
			    SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Idle keep-alive connections hold no record buffers; a write on the
	 * non-blocking socket returns after each whole record it sent. */
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Unlike everything else here, this one returns 0 on success. */
	if (SSL_CTX_set_alpn_protos(c, (const unsigned char *)TLS_ALPN_HTTP11,
				    TLS_ALPN_HTTP11_LEN) != 0)
		return tls_ctx_error(err, errlen, "ALPN");
	enable_session_cache(c);

	if (!be->tls_verify) {
		SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	rc = load_trust(c, be, err, errlen);
	if (rc)
		return rc;
	return set_verify_name(ctx, err, errlen);
}

int tls_client_ctx_new(const struct backend_cfg *be, struct tls_client_ctx **out,
		       char *err, size_t errlen)
{
	struct tls_client_ctx *ctx;
	int rc;

	*out = NULL;
	if (!be->host || !be->host[0]) {
		if (err && errlen)
			snprintf(err, errlen, "TLS backend without a host name");
		return -EINVAL;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	pthread_mutex_init(&ctx->lock, NULL);
	ctx->host = strdup(be->host);
	ctx->host_is_ip = host_is_ip_literal(be->host);
	ERR_clear_error();
	ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx->host || !ctx->ssl_ctx) {
		rc = ctx->host ? tls_ctx_error(err, errlen, "SSL_CTX_new") : -ENOMEM;
		tls_client_ctx_free(ctx);
		return rc;
	}
	SSL_CTX_set_app_data(ctx->ssl_ctx, ctx);
	rc = configure_ctx(ctx, be, err, errlen);
	if (rc) {
		tls_client_ctx_free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

/* All sessions made from ctx must be freed first: their SSL objects call
 * back into ctx when they store or drop a session. */
void tls_client_ctx_free(struct tls_client_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	SSL_SESSION_free(ctx->last);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx->host);
	free(ctx);
}

/* ---- session --------------------------------------------------------- */

struct tls_session *tls_client_session_new(struct tls_client_ctx *ctx, int fd)
{
	struct tls_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (tls_session_init(s, ctx->ssl_ctx, fd, false) != 0) {
		free(s);
		return NULL;
	}
	if ((!ctx->host_is_ip && SSL_set_tlsext_host_name(s->ssl, ctx->host) != 1) ||
	    offer_last_session(ctx, s->ssl) != 0) {
		ERR_clear_error();
		tls_client_session_free(s);
		return NULL;
	}
	return s;
}

void tls_client_session_free(struct tls_session *s)
{
	if (!s)
		return;
	tls_session_fini(s);
	free(s);
}
