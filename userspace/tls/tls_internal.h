/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the client and server halves of the TLS module share.  Internal:
 * only userspace/tls/ includes it.
 */
#ifndef SLUICE_TLS_TLS_INTERNAL_H
#define SLUICE_TLS_TLS_INTERNAL_H

#include <stddef.h>

#include <openssl/ssl.h>

/* ALPN wire format: length-prefixed protocol names.  The only protocol
 * sluice speaks on either side. */
#define TLS_ALPN_HTTP11		"\x08http/1.1"
#define TLS_ALPN_HTTP11_LEN	(sizeof(TLS_ALPN_HTTP11) - 1)

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
