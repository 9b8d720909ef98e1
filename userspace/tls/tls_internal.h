/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the client and server halves of the TLS module share.  Internal:
 * only userspace/tls/ includes it.
 */
#ifndef SLUICE_TLS_TLS_INTERNAL_H
#define SLUICE_TLS_TLS_INTERNAL_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "tls/tls_session.h"

/* ALPN wire format: length-prefixed protocol names.  The only protocol
 * sluice speaks on either side. */
#define TLS_ALPN_HTTP11		"\x08http/1.1"
#define TLS_ALPN_HTTP11_LEN	(sizeof(TLS_ALPN_HTTP11) - 1)

/* One TLS connection on a socket, either role (tls_session.h).  The server
 * session embeds it; a client session is just this. */
struct tls_session {
	SSL *ssl;
	int fd;
	char err[256];		/* the last failure; "" while none */
};

/* Start s on the connected non-blocking socket fd with a new SSL of c, as
 * the server or as the client.  The fd gets a socket BIO that leaves it
 * open when freed.  0, or -ENOMEM with the error queue cleared. */
int tls_session_init(struct tls_session *s, SSL_CTX *c, int fd, bool server);

/* Free what tls_session_init made.  A session that never failed counts as
 * shut down cleanly (see tls_session.c). */
void tls_session_fini(struct tls_session *s);

/* Turn a failed SSL call (ret, and errno right after it in sys) into a
 * negative errno and a sentence in s->err: -ECONNRESET when the peer left,
 * -errno for a socket error, else -EPROTO. */
int tls_session_fail(struct tls_session *s, int ret, int sys);

/* The reason of the first queued OpenSSL error, as a phrase. */
void tls_describe_err_queue(char *out, size_t outlen);

/* "what: reason" into err for a failed context setup step; clears the
 * error queue and returns -EINVAL. */
int tls_ctx_error(char *err, size_t errlen, const char *what);

/* A sentence about a failed SSL call whose SSL_get_error() was code.  A
 * verification failure is best explained by the verify result ("hostname
 * mismatch", "certificate has expired"); the error queue only says
 * "certificate verify failed".  Leaves the error queue alone. */
void tls_describe_failure(const SSL *ssl, int code, char *out, size_t outlen);

#endif
