/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One TLS connection on a connected non-blocking socket, for either role:
 * the listener's sessions (tls_server.h) and the upstream client's
 * (tls.h) are both this.
 *
 * OpenSSL reads and writes the socket itself (a socket BIO): only then can
 * it hand a direction's record crypto to the kernel (kTLS) when the
 * handshake ends.  Afterwards each direction is one of:
 *
 *   kernel TLS   (tls_session_ktls_send / _recv) the fd carries plaintext,
 *                so ordinary send/recv (io_uring, splice) serve it.  A
 *                receive that fails with EIO met a record that is not
 *                application data (a TLS 1.3 ticket or key update, an alert
 *                such as close_notify): tls_session_read() reads it through
 *                OpenSSL, which acts on it, and returns what follows.
 *   userspace    tls_session_read() / tls_session_write() when the socket
 *                is ready (poll), never blocking.
 *
 * The socket stays the caller's: close it after freeing the session.
 */
#ifndef SLUICE_TLS_TLS_SESSION_H
#define SLUICE_TLS_TLS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sluice_maps.h"

struct tls_session;

/* Advance the handshake without blocking.  1 when done; 0 when it waits
 * for the socket: for POLLOUT if *want_write, else POLLIN; negative on
 * failure: -EPROTO for a TLS failure (tls_session_last_error() says which),
 * -ECONNRESET when the peer left, another -errno for a socket error. */
int tls_session_handshake(struct tls_session *s, bool *want_write);

/* Record I/O through OpenSSL on the non-blocking socket.  Read: >0 bytes,
 * 0 when the peer closed (close_notify or EOF); records that carry no data
 * (tickets, key updates) are consumed on the way.  Write: >0 bytes taken,
 * which may be fewer than len (one or more whole records); after -EAGAIN,
 * call again with the same bytes.  Both: -EAGAIN waiting for POLLOUT if
 * *want_write, else POLLIN; -EPROTO (tls_session_last_error) or -errno on
 * failure.  Stop reading only at -EAGAIN or 0: plaintext OpenSSL already
 * holds shows up in no poll and no kernel receive. */
ssize_t tls_session_read(struct tls_session *s, void *buf, size_t len, bool *want_write);
ssize_t tls_session_write(struct tls_session *s, const void *buf, size_t len,
			  bool *want_write);

/* After the handshake: the directions the kernel took over, and the two
 * as one of SLUICE_TLS_KTLS, _KTLS_TX or _USERSPACE (a kernel that only
 * receives counts as userspace). */
bool tls_session_ktls_send(const struct tls_session *s);
bool tls_session_ktls_recv(const struct tls_session *s);
enum sluice_tls_mode tls_session_mode(const struct tls_session *s);

/* Negotiated facts, for logs. */
const char *tls_session_version(const struct tls_session *s);	/* "TLSv1.3" */
const char *tls_session_cipher(const struct tls_session *s);	/* NULL before */
const char *tls_session_alpn(const struct tls_session *s);	/* "http/1.1" or NULL */
/* Whether this connection resumed an earlier session. */
bool tls_session_resumed(const struct tls_session *s);
/* A sentence about the last failure of s, "no TLS error" without one. */
const char *tls_session_last_error(const struct tls_session *s);

#endif
