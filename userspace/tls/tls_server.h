/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS for client connections: the listener side.
 *
 * Unlike the upstream client (tls.h), a server session owns a socket BIO
 * on the accepted non-blocking fd: OpenSSL can hand a connection's record
 * crypto to the kernel (kTLS) only through a socket BIO.  Once the
 * handshake is done, the directions the kernel took over carry plaintext
 * on the fd itself (io_uring send/recv, splice, sendfile); the others go
 * through tls_server_read() / tls_server_write().
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
 * failure: -EPROTO for a TLS failure (tls_server_last_error() says which,
 * tls_server_saw_plain_http() tells plain HTTP apart), -ECONNRESET when the
 * peer left, another -errno for a socket error. */
int tls_server_handshake(struct tls_server_session *s, bool *want_write);

/* The first bytes were a plain HTTP request, not a TLS handshake.  They
 * are still unread in the socket: the daemon may answer with a plaintext
 * 400 before closing. */
bool tls_server_saw_plain_http(const struct tls_server_session *s);

/* After the handshake: the directions the kernel took over. */
bool tls_server_ktls_send(const struct tls_server_session *s);
bool tls_server_ktls_recv(const struct tls_server_session *s);

/* Userspace record I/O on the non-blocking socket.  Read: >0 bytes, 0 when
 * the peer closed (close_notify or EOF).  Write: >0 bytes taken, which may
 * be fewer than len (one or more whole records); after -EAGAIN, call again
 * with the same bytes.  Both: -EAGAIN waiting for POLLOUT if *want_write,
 * else POLLIN; -EPROTO (tls_server_last_error) or -errno on failure. */
ssize_t tls_server_read(struct tls_server_session *s, void *buf, size_t len,
			bool *want_write);
ssize_t tls_server_write(struct tls_server_session *s, const void *buf, size_t len,
			 bool *want_write);

/* Negotiated facts, for logs and tenant resolution. */
const char *tls_server_version(const struct tls_server_session *s);	/* "TLSv1.3" */
const char *tls_server_cipher(const struct tls_server_session *s);	/* NULL before */
const char *tls_server_sni(const struct tls_server_session *s);	/* NULL: none */
const char *tls_server_alpn(const struct tls_server_session *s);	/* "http/1.1" or NULL */
/* The client certificate's subject as one RFC 2253 line ("CN=a,O=b").
 * 0, -ENOENT without a certificate, -ENOSPC when len is too small. */
int tls_server_peer_subject(const struct tls_server_session *s, char *out, size_t len);
/* A sentence about the last failure of s. */
const char *tls_server_last_error(const struct tls_server_session *s);

#endif
