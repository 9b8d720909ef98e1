/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OpenSSL client over memory BIOs.
 *
 * Each session owns two memory BIOs: `rbio` holds ciphertext the loop
 * received and OpenSSL has not consumed yet, `wbio` holds ciphertext
 * OpenSSL produced and the loop has not sent yet.  An empty rbio reports
 * "retry", so every SSL call returns SSL_ERROR_WANT_READ instead of
 * blocking, and writes to a memory BIO always succeed (they grow it).
 *
 * The context is shared by all workers.  Everything in it is read-only
 * after tls_client_ctx_new() except the remembered session, which has its
 * own mutex.
 */
#include "tls/tls.h"
#include "tls/tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Plaintext is decrypted straight into the caller's buffer; a TLS record
 * carries at most 16 KiB, so this much room always takes a whole one. */
#define TLS_READ_CHUNK 16384

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

struct tls_session {
	SSL *ssl;
	BIO *rbio;		/* owned by ssl */
	BIO *wbio;		/* owned by ssl */
	char err[256];
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
 * tls_read().  Returning 1 keeps OpenSSL's reference for ourselves. */
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
	/* Upstream renegotiation would make a write wait for a read; refuse. */
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
	/* Idle keep-alive connections then hold no record buffers. */
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
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

static BIO *new_mem_bio(void)
{
	BIO *b = BIO_new(BIO_s_mem());

	/* Empty means "no more yet", not end of stream. */
	if (b)
		BIO_set_mem_eof_return(b, -1);
	return b;
}

static int attach_bios(struct tls_session *s)
{
	s->rbio = new_mem_bio();
	s->wbio = new_mem_bio();
	if (!s->rbio || !s->wbio) {
		BIO_free(s->rbio);
		BIO_free(s->wbio);
		return -ENOMEM;
	}
	SSL_set_bio(s->ssl, s->rbio, s->wbio);
	return 0;
}

struct tls_session *tls_session_new(struct tls_client_ctx *ctx)
{
	struct tls_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	ERR_clear_error();
	s->ssl = SSL_new(ctx->ssl_ctx);
	if (!s->ssl || attach_bios(s) != 0)
		goto fail;
	SSL_set_connect_state(s->ssl);
	if (!ctx->host_is_ip &&
	    SSL_set_tlsext_host_name(s->ssl, ctx->host) != 1)
		goto fail;
	if (offer_last_session(ctx, s->ssl) != 0)
		goto fail;
	return s;
fail:
	ERR_clear_error();
	tls_session_free(s);
	return NULL;
}

/* OpenSSL drops the session of a connection freed without a shutdown, to
 * resist truncation attacks.  A gateway closes idle keep-alive upstreams
 * that way all the time, so a connection that never failed counts as shut
 * down cleanly and its session stays resumable; a failed one is dropped. */
void tls_session_free(struct tls_session *s)
{
	if (!s)
		return;
	if (s->ssl && !s->err[0])
		SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(s->ssl);
	free(s);
}

/* ---- errors ---------------------------------------------------------- */

/* Turn a failed SSL call into -EPROTO and a sentence for tls_last_error(). */
static int session_error(struct tls_session *s, int ret)
{
	tls_describe_failure(s->ssl, SSL_get_error(s->ssl, ret), s->err, sizeof(s->err));
	ERR_clear_error();
	return -EPROTO;
}

const char *tls_last_error(struct tls_session *s)
{
	return s->err[0] ? s->err : "no TLS error";
}

/* ---- data path ------------------------------------------------------- */

int tls_handshake(struct tls_session *s)
{
	int ret;

	ERR_clear_error();
	ret = SSL_do_handshake(s->ssl);
	if (ret == 1)
		return 1;
	if (SSL_get_error(s->ssl, ret) == SSL_ERROR_WANT_READ)
		return 0;
	return session_error(s, ret);
}

int tls_feed(struct tls_session *s, const void *p, size_t n)
{
	const char *c = p;

	/* BIO_write takes an int length. */
	while (n > 0) {
		int chunk = n > INT_MAX ? INT_MAX : (int)n;

		if (BIO_write(s->rbio, c, chunk) != chunk)
			return -ENOMEM;
		c += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

/* SSL_read consumes TLS 1.3 session tickets and key updates on its own and
 * reports WANT_READ when no application data came with them, so reading
 * until WANT_READ drains everything that was fed. */
int tls_read(struct tls_session *s, struct buf *plain)
{
	for (;;) {
		size_t got = 0;
		int ret, rc;

		rc = buf_reserve(plain, TLS_READ_CHUNK);
		if (rc)
			return rc;
		ERR_clear_error();
		ret = SSL_read_ex(s->ssl, buf_tail(plain), buf_room(plain), &got);
		if (ret == 1) {
			plain->len += got;
			continue;
		}
		switch (SSL_get_error(s->ssl, ret)) {
		case SSL_ERROR_WANT_READ:
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			return 1;
		default:
			return session_error(s, ret);
		}
	}
}

int tls_write(struct tls_session *s, const void *p, size_t n)
{
	size_t done;
	int ret;

	if (n == 0)
		return 0;
	ERR_clear_error();
	/* Without SSL_MODE_ENABLE_PARTIAL_WRITE, success means all n bytes are
	 * records in wbio, which never refuses a write. */
	ret = SSL_write_ex(s->ssl, p, n, &done);
	if (ret == 1)
		return 0;
	return session_error(s, ret);
}

int tls_take_output(struct tls_session *s, struct buf *out)
{
	size_t pending;

	while ((pending = BIO_ctrl_pending(s->wbio)) > 0) {
		int chunk = pending > INT_MAX ? INT_MAX : (int)pending;
		int rc = buf_reserve(out, (size_t)chunk);
		int got;

		if (rc)
			return rc;
		got = BIO_read(s->wbio, buf_tail(out), chunk);
		if (got <= 0)
			break;
		out->len += (size_t)got;
	}
	return 0;
}
