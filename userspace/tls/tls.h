/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS to https backends: the client side.
 *
 * A client session is the socket session of tls_session.h, started on the
 * upstream socket once its TCP connect has completed (the kernel can take
 * over record crypto only on a connected socket).  The daemon drives the
 * handshake with polls, then serves each direction with kernel TLS or
 * with tls_session_read() / tls_session_write().
 */
#ifndef SLUICE_TLS_TLS_H
#define SLUICE_TLS_TLS_H

#include <stddef.h>

#include "config/config.h"
#include "tls/tls_session.h"

struct tls_client_ctx;	/* one per https backend, shared by all workers */

/* Build the client context of an https backend: TLS 1.2+, system CA store
 * or be->ca_file, peer verification unless be->tls_verify is false, host
 * name checked against be->host, ALPN http/1.1, kernel TLS where the
 * kernel and the cipher allow it, and the newest session kept for the next
 * connection to resume.  0, or -EINVAL with err set. */
int tls_client_ctx_new(const struct backend_cfg *be, struct tls_client_ctx **out,
		       char *err, size_t errlen);
/* All sessions made from ctx must be freed first. */
void tls_client_ctx_free(struct tls_client_ctx *ctx);

/* A session to be->host (SNI unless it is an address; the name the
 * certificate must carry) on the connected non-blocking socket fd, which
 * stays the caller's to close after tls_client_session_free.  It offers
 * the context's last session for resumption.  NULL on allocation failure. */
struct tls_session *tls_client_session_new(struct tls_client_ctx *ctx, int fd);
void tls_client_session_free(struct tls_session *s);

#endif
