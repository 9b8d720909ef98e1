/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OpenSSL server over the accepted socket.
 *
 * The context holds one SSL_CTX for the default certificate and one per
 * sni: entry, all configured alike (versions, ciphers, ALPN, client CA):
 * switching a connection to another SSL_CTX in the servername callback
 * swaps its certificate, but OpenSSL then reads the trust store, the CA
 * names and the ALPN callback from the new one.
 *
 * Lifetime: the struct is reference counted, one reference for the owner
 * and one per session.  A session needs it until it is freed: the
 * servername callback looks up the sni: table during the handshake, and
 * the SSL object borrows the SSL_CTXs (each SSL_new and SSL_set_SSL_CTX
 * also takes an OpenSSL reference, but that one would not keep the table
 * alive).  So a reload may free the old context while its sessions run.
 */
#include "tls/tls_server.h"
#include "tls/tls_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define KTLS_STAT	"/proc/net/tls_stat"

/* Sessions resume only in a context with this id (OpenSSL refuses to
 * resume a verified-client session without one). */
static const unsigned char session_id_ctx[] = "sluice";

/* A name of an sni: entry.  A wildcard "*.corp.example" is kept as its
 * suffix ".corp.example". */
struct sni_name {
	char *name;
	bool wildcard;
	SSL_CTX *ssl_ctx;	/* borrowed from tls_server_ctx.sni_ctx */
};

struct tls_server_ctx {
	SSL_CTX *ssl_ctx;	/* default certificate; every session starts here */
	SSL_CTX **sni_ctx;	/* one per sni: entry */
	size_t nsni_ctx;
	struct sni_name *names;
	size_t nnames;
	atomic_uint refs;
};

/* The shared socket session (tls_session.c) and what only a listener
 * needs. */
struct tls_server_session {
	struct tls_session tls;
	struct tls_server_ctx *ctx;	/* a reference */
	bool sniffed;		/* the first byte arrived and was not HTTP */
	bool plain_http;
};

/* ---- callbacks ------------------------------------------------------- */

/* The sni: certificate for host, or NULL for the default.  Exact names win
 * over wildcards; a wildcard stands for one whole label. */
static SSL_CTX *find_sni_ctx(const struct tls_server_ctx *ctx, const char *host)
{
	const char *dot = strchr(host, '.');

	for (size_t i = 0; i < ctx->nnames; i++)
		if (!ctx->names[i].wildcard && strcasecmp(ctx->names[i].name, host) == 0)
			return ctx->names[i].ssl_ctx;
	if (!dot || dot == host)
		return NULL;
	for (size_t i = 0; i < ctx->nnames; i++)
		if (ctx->names[i].wildcard && strcasecmp(ctx->names[i].name, dot) == 0)
			return ctx->names[i].ssl_ctx;
	return NULL;
}

/* A name no entry matches keeps the default certificate: refusing it
 * would only turn a certificate warning into a failed connection. */
static int choose_certificate(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server_ctx *ctx = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *sni = host ? find_sni_ctx(ctx, host) : NULL;

	if (sni && !SSL_set_SSL_CTX(ssl, sni)) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* Clients without ALPN get HTTP/1.1 anyway; one offering only other
 * protocols (h2) is refused with no_application_protocol. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, (const unsigned char *)TLS_ALPN_HTTP11,
				  TLS_ALPN_HTTP11_LEN, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* ---- one SSL_CTX ------------------------------------------------------ */

/* "key value: reason" for a setting or a file OpenSSL refused. */
static int setting_error(char *err, size_t errlen, const char *key, const char *value)
{
	char what[512];

	snprintf(what, sizeof(what), "%s %s", key, value);
	return tls_ctx_error(err, errlen, what);
}

static int set_protocol(SSL_CTX *c, const struct tls_listen_cfg *cfg, char *err, size_t errlen)
{
	int min = cfg->min_version == TLS_VERSION_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;

	if (SSL_CTX_set_min_proto_version(c, min) != 1)
		return tls_ctx_error(err, errlen, "tls.min_version");
	if (cfg->ciphers && SSL_CTX_set_cipher_list(c, cfg->ciphers) != 1)
		return setting_error(err, errlen, "tls.ciphers", cfg->ciphers);
	if (cfg->ciphersuites && SSL_CTX_set_ciphersuites(c, cfg->ciphersuites) != 1)
		return setting_error(err, errlen, "tls.ciphersuites", cfg->ciphersuites);
	if (cfg->groups && SSL_CTX_set1_groups_list(c, cfg->groups) != 1)
		return setting_error(err, errlen, "tls.groups", cfg->groups);
	if (SSL_CTX_set_session_id_context(c, session_id_ctx, sizeof(session_id_ctx) - 1) != 1)
		return tls_ctx_error(err, errlen, "session id context");

	/* Renegotiation is refused: kTLS cannot rekey a TLS 1.2 connection. */
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION |
			    (cfg->ktls ? SSL_OP_ENABLE_KTLS : 0));
	/* Idle keep-alive connections hold no record buffers; a write on the
	 * non-blocking socket returns after each whole record it sent. */
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_alpn_select_cb(c, select_alpn, NULL);
	return 0;
}

static bool is_key_mismatch(unsigned long e)
{
	return ERR_GET_LIB(e) == ERR_LIB_X509 &&
	       (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
		ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
}

/* prefix is the config key of the entry: "tls" or "tls.sni[2]". */
static int load_keypair(SSL_CTX *c, const char *prefix, const char *cert, const char *key,
			char *err, size_t errlen)
{
	char name[64], what[300];
	bool ok;

	if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
		snprintf(name, sizeof(name), "%s.cert", prefix);
		return setting_error(err, errlen, name, cert);
	}
	ok = SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) == 1;
	if (!ok && !is_key_mismatch(ERR_peek_last_error())) {
		/* OpenSSL's decoders only say "unsupported" for a file that
		 * holds no key at all. */
		snprintf(name, sizeof(name), "%s.key", prefix);
		snprintf(what, sizeof(what), "%s: cannot load a private key", key);
		return setting_error(err, errlen, name, what);
	}
	/* A key of another type than the certificate loads into a slot of its
	 * own; only the final check notices. */
	if (!ok || SSL_CTX_check_private_key(c) != 1) {
		if (err && errlen)
			snprintf(err, errlen, "%s.key %s does not match %s.cert %s",
				 prefix, key, prefix, cert);
		ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

/* Mutual TLS: the CA is both the trust store and the list of names sent
 * in the CertificateRequest, so clients pick the right certificate. */
static int require_client_certs(SSL_CTX *c, const char *ca, char *err, size_t errlen)
{
	STACK_OF(X509_NAME) *names;

	if (SSL_CTX_load_verify_locations(c, ca, NULL) != 1)
		return setting_error(err, errlen, "tls.client_ca", ca);
	names = SSL_load_client_CA_file(ca);
	if (!names)
		return setting_error(err, errlen, "tls.client_ca", ca);
	SSL_CTX_set_client_CA_list(c, names);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

static int new_ssl_ctx(const struct tls_listen_cfg *cfg, const char *prefix,
		       const char *cert, const char *key, SSL_CTX **out,
		       char *err, size_t errlen)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	int rc;

	if (!c)
		return tls_ctx_error(err, errlen, "SSL_CTX_new");
	rc = set_protocol(c, cfg, err, errlen);
	if (!rc)
		rc = load_keypair(c, prefix, cert, key, err, errlen);
	if (!rc && cfg->client_ca)
		rc = require_client_certs(c, cfg->client_ca, err, errlen);
	if (rc) {
		SSL_CTX_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* ---- the context ------------------------------------------------------ */

static int add_sni_names(struct tls_server_ctx *ctx, const struct tls_sni_cfg *e,
			 SSL_CTX *c)
{
	for (size_t i = 0; i < e->nnames; i++) {
		struct sni_name *n = &ctx->names[ctx->nnames];
		const char *name = e->names[i];

		n->wildcard = name[0] == '*';
		n->name = strdup(n->wildcard ? name + 1 : name);
		if (!n->name)
			return -ENOMEM;
		n->ssl_ctx = c;
		ctx->nnames++;
	}
	return 0;
}

static int build_sni(struct tls_server_ctx *ctx, const struct tls_listen_cfg *cfg,
		     char *err, size_t errlen)
{
	size_t total = 0;
	char prefix[32];

	for (size_t i = 0; i < cfg->nsni; i++)
		total += cfg->sni[i].nnames;
	ctx->sni_ctx = calloc(cfg->nsni, sizeof(*ctx->sni_ctx));
	ctx->names = calloc(total, sizeof(*ctx->names));
	if (!ctx->sni_ctx || !ctx->names)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nsni; i++) {
		const struct tls_sni_cfg *e = &cfg->sni[i];
		int rc;

		snprintf(prefix, sizeof(prefix), "tls.sni[%zu]", i);
		rc = new_ssl_ctx(cfg, prefix, e->cert, e->key, &ctx->sni_ctx[i], err, errlen);
		if (rc)
			return rc;
		ctx->nsni_ctx++;
		rc = add_sni_names(ctx, e, ctx->sni_ctx[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static void ctx_destroy(struct tls_server_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nnames; i++)
		free(ctx->names[i].name);
	free(ctx->names);
	for (size_t i = 0; i < ctx->nsni_ctx; i++)
		SSL_CTX_free(ctx->sni_ctx[i]);
	free(ctx->sni_ctx);
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

static void ctx_put(struct tls_server_ctx *ctx)
{
	if (atomic_fetch_sub(&ctx->refs, 1) == 1)
		ctx_destroy(ctx);
}

int tls_server_ctx_new(const struct tls_listen_cfg *cfg, struct tls_server_ctx **out,
		       char *err, size_t errlen)
{
	struct tls_server_ctx *ctx;
	int rc;

	*out = NULL;
	if (!cfg->enabled || !cfg->cert || !cfg->key) {
		if (err && errlen)
			snprintf(err, errlen, "tls: no certificate configured");
		return -EINVAL;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	atomic_init(&ctx->refs, 1);
	ERR_clear_error();
	rc = new_ssl_ctx(cfg, "tls", cfg->cert, cfg->key, &ctx->ssl_ctx, err, errlen);
	if (!rc)
		rc = build_sni(ctx, cfg, err, errlen);
	if (rc) {
		if (rc == -ENOMEM && err && errlen)
			snprintf(err, errlen, "tls: out of memory");
		ctx_destroy(ctx);
		return rc;
	}
	if (ctx->nnames) {
		SSL_CTX_set_tlsext_servername_callback(ctx->ssl_ctx, choose_certificate);
		SSL_CTX_set_tlsext_servername_arg(ctx->ssl_ctx, ctx);
	}
	*out = ctx;
	return 0;
}

void tls_server_ctx_free(struct tls_server_ctx *ctx)
{
	if (ctx)
		ctx_put(ctx);
}

/* ---- kernel ----------------------------------------------------------- */

/* Asking for the "tls" upper layer protocol makes the kernel load the
 * module if it has one and we may (CAP_NET_ADMIN).  The unconnected socket
 * itself is refused (ENOTCONN), but the module stays. */
static void load_tls_module(void)
{
	static const char ulp[] = "tls";
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_ULP, ulp, sizeof(ulp));
	close(fd);
}

bool tls_kernel_has_ktls(void)
{
	if (access(KTLS_STAT, F_OK) == 0)
		return true;
	load_tls_module();
	return access(KTLS_STAT, F_OK) == 0;
}

/* ---- session ---------------------------------------------------------- */

struct tls_server_session *tls_server_session_new(struct tls_server_ctx *ctx, int fd)
{
	struct tls_server_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (tls_session_init(&s->tls, ctx->ssl_ctx, fd, true) != 0) {
		free(s);
		return NULL;
	}
	atomic_fetch_add(&ctx->refs, 1);
	s->ctx = ctx;
	return s;
}

void tls_server_session_free(struct tls_server_session *s)
{
	if (!s)
		return;
	tls_session_fini(&s->tls);
	ctx_put(s->ctx);
	free(s);
}

struct tls_session *tls_server_tls(struct tls_server_session *s)
{
	return &s->tls;
}

bool tls_server_saw_plain_http(const struct tls_server_session *s)
{
	return s->plain_http;
}

/* ---- handshake -------------------------------------------------------- */

/* A TLS client speaks first with a handshake record (content type 22); a
 * first byte that is an upper-case letter starts an HTTP method instead:
 * a client that forgot https://.  OpenSSL itself only recognises a few
 * methods, so one peeked byte decides, and stays in the socket for
 * OpenSSL or for the daemon's plaintext answer.  1 when it is not HTTP,
 * 0 when nothing arrived yet, negative when the connection is done. */
static int sniff_plain_http(struct tls_server_session *s)
{
	char *err = s->tls.err;
	size_t errlen = sizeof(s->tls.err);
	unsigned char c;
	ssize_t n = recv(s->tls.fd, &c, 1, MSG_PEEK);

	if (n == 1 && c >= 'A' && c <= 'Z') {
		s->plain_http = true;
		snprintf(err, errlen, "http request on the TLS port");
		return -EPROTO;
	}
	if (n == 1) {
		s->sniffed = true;
		return 1;
	}
	if (n == 0) {
		snprintf(err, errlen, "connection closed by the client");
		return -ECONNRESET;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	snprintf(err, errlen, "%s", strerror(errno));
	return -errno;
}

int tls_server_handshake(struct tls_server_session *s, bool *want_write)
{
	*want_write = false;
	if (!s->sniffed) {
		int ret = sniff_plain_http(s);

		if (ret <= 0)
			return ret;
	}
	return tls_session_handshake(&s->tls, want_write);
}

/* ---- negotiated facts -------------------------------------------------- */

const char *tls_server_sni(const struct tls_server_session *s)
{
	return SSL_get_servername(s->tls.ssl, TLSEXT_NAMETYPE_host_name);
}

int tls_server_peer_subject(const struct tls_server_session *s, char *out, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(s->tls.ssl);
	BIO *mem;
	char *text;
	long n;
	int rc = 0;

	if (!cert)
		return -ENOENT;
	mem = BIO_new(BIO_s_mem());
	if (!mem)
		return -ENOMEM;
	if (X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0)
		rc = -ENOMEM;
	n = BIO_get_mem_data(mem, &text);
	if (!rc && (n < 0 || (size_t)n >= len))
		rc = -ENOSPC;
	if (!rc) {
		memcpy(out, text, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(mem);
	ERR_clear_error();
	return rc;
}
