/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for upstream connections, driven by the io_uring loop.
 *
 * OpenSSL never touches the socket: it reads ciphertext the loop received
 * (tls_feed) and leaves ciphertext for the loop to send (tls_take_output),
 * through memory BIOs.  So a TLS connection never blocks the worker, and the
 * same send/recv operations serve plain and TLS upstreams.
 */
#ifndef SLUICE_TLS_TLS_H
#define SLUICE_TLS_TLS_H

#include <stddef.h>

#include "config/config.h"
#include "core/buf.h"

struct tls_client_ctx;	/* one per https backend, shared by all workers */
struct tls_session;	/* one per upstream connection */

/* Build the client context of an https backend: TLS 1.2+, system CA store
 * or be->ca_file, peer verification unless be->tls_verify is false, host
 * name checked against be->host, ALPN http/1.1.  0, or -EINVAL with err set. */
int tls_client_ctx_new(const struct backend_cfg *be, struct tls_client_ctx **out,
		       char *err, size_t errlen);
void tls_client_ctx_free(struct tls_client_ctx *ctx);

/* A session for one connection to be->host (SNI and verification name).
 * NULL on allocation failure. */
struct tls_session *tls_session_new(struct tls_client_ctx *ctx);
void tls_session_free(struct tls_session *s);

/* Advance the handshake.  1 when complete, 0 when it needs more input
 * (send tls_take_output() first), or -EPROTO with the reason in
 * tls_last_error(). */
int tls_handshake(struct tls_session *s);
/* Ciphertext that arrived from the peer.  0 or -ENOMEM. */
int tls_feed(struct tls_session *s, const void *p, size_t n);
/* Decrypt everything available onto the tail of plain.  0 (maybe no
 * bytes), 1 when the peer sent close_notify, -EPROTO on a TLS error,
 * -ENOMEM. */
int tls_read(struct tls_session *s, struct buf *plain);
/* Encrypt plaintext; the records wait in the session for tls_take_output. */
int tls_write(struct tls_session *s, const void *p, size_t n);
/* Move pending ciphertext onto the tail of out.  0 or -ENOMEM. */
int tls_take_output(struct tls_session *s, struct buf *out);
/* A sentence about the last failure of s (verification result, alert). */
const char *tls_last_error(struct tls_session *s);

#endif
