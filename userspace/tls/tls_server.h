/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for client connections: the listener side.
 *
 A server session is the socket session of tls_session.h on the accepted
 * non-blocking fd, plus what only a listener needs: the sni: certificate
 * choice, the plain-HTTP sniff, the client certificate.  Once the
 * handshake is done, the directions the kernel took over carry plaintext
 * on the fd itself (io_uring send/recv, splice, sendfile); the others go
 * through tls_session_read() / tls_session_write() on tls_server_tls().
 *
 * The context is built once per configuration and shared by all workers.
 * A reload builds a new one and frees the old: sessions made from the old
 * context keep it alive until they are freed.
 */
#ifndef SLUICE_TLS_TLS_SERVER_H
#define SLUICE_TLS_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config/config.h"
#include "tls/tls_session.h"

struct tls_server_ctx;
struct tls_server_session;

/* Build the context of cfg (cfg->enabled must be true): certificates and
 * keys of the default and every sni: entry, client_ca, versions, ciphers,
 * groups.  0, -ENOMEM, or -EINVAL with err naming the key and the file
 * ("key /etc/sluice/tls/server.key does not match cert ..."). */
int tls_server_ctx_new(const struct tls_listen_cfg *cfg, struct tls_server_ctx **out,
		       char *err, size_t errlen);
/* Drop the caller's reference; sessions still open keep theirs. */
void tls_server_ctx_free(struct tls_server_ctx *ctx);

/* Whether this kernel offers kTLS at all: the tls module is loaded or can
 * be (/proc/net/tls_stat).  For the start-up log. */
bool tls_kernel_has_ktls(void);

/* A session on the accepted non-blocking socket fd, which stays the
 * caller's to close (after tls_server_session_free).  NULL on failure. */
struct tls_server_session *tls_server_session_new(struct tls_server_ctx *ctx, int fd);
void tls_server_session_free(struct tls_server_session *s);

/* Advance the handshake without blocking.  1 when done; 0 when it waits
 * for the socket: for POLLOUT if *want_write, else POLLIN; negative on
 * failure: -EPROTO for a TLS failure (tls_session_last_error() says which,
 * tls_server_saw_plain_http() tells plain HTTP apart), -ECONNRESET when the
 * peer left, another -errno for a socket error.  The first step peeks at
 * the first byte for plain HTTP, then it is tls_session_handshake(). */
int tls_server_handshake(struct tls_server_session *s, bool *want_write);

/* The first bytes were a plain HTTP request, not a TLS handshake.  They
 * are still unread in the socket: the daemon may answer with a plaintext
 * 400 before closing. */
bool tls_server_saw_plain_http(const struct tls_server_session *s);

/* The connection itself, for the record I/O, the kTLS directions, the
 * version, cipher and ALPN and the last error (tls_session.h), also of a
 * failed handshake.  Lives as long as s. */
struct tls_session *tls_server_tls(struct tls_server_session *s);

/* The name the client asked for (SNI); NULL: none. */
const char *tls_server_sni(const struct tls_server_session *s);
/* The client certificate's subject as one RFC 2253 line ("CN=a,O=b").
 * 0, -ENOENT without a certificate, -ENOSPC when len is too small. */
int tls_server_peer_subject(const struct tls_server_session *s, char *out, size_t len);

#endif
