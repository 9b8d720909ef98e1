/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who the client is, as the backend is told: the headers that name a
 * client (X-Forwarded-For, Forwarded, X-Real-IP, ...) and the gateway's
 * own (x-sluice-*).
 *
 * A client writes whatever it likes into its headers, so a backend may
 * only believe them when they come from a proxy the operator trusts.  The
 * gateway drops them from everyone else, drops x-sluice-* from everyone,
 * and writes its own from the address the connection really came from.
 * Everything here appends into the caller's buffer: no allocation.
 */
#ifndef SLUICE_HTTP_FORWARDED_H
#define SLUICE_HTTP_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/http1.h"

/* What a request header is to the forwarding rules. */
enum fwd_kind {
	FWD_OTHER = 0,		/* not about the client: passed on */
	FWD_XFF,		/* X-Forwarded-For */
	FWD_XFP,		/* X-Forwarded-Proto */
	FWD_FORWARDED,		/* Forwarded (RFC 7239) */
	FWD_IDENTITY,		/* other X-Forwarded-*, X-Real-IP, X-Client-IP, True-Client-IP */
	FWD_GATEWAY,		/* x-sluice-*: only the gateway writes these */
};

enum fwd_kind fwd_classify(struct str name);

/* The client's address as the headers write it, formatted once per
 * connection: "192.0.2.1" / "2001:db8::1" for X-Forwarded-For, and
 * 192.0.2.1 / "[2001:db8::1]" (quoted, RFC 7239 section 6) for for=. */
struct fwd_peer {
	uint8_t addr[16];	/* IPv4 as ::ffff:a.b.c.d */
	uint8_t text_len, node_len;
	char text[48];
	char node[52];
};

/* From a 16-byte address (IPv4-mapped for IPv4). */
void fwd_peer_set(struct fwd_peer *p, const uint8_t addr[16]);

/* What the gateway adds to one upstream request. */
struct fwd_params {
	const struct fwd_peer *peer;
	bool trusted;		/* the peer is a trusted proxy: its identity
				 * headers stay, and the gateway's extend them */
	bool x_forwarded;	/* write X-Forwarded-For and X-Forwarded-Proto */
	bool forwarded;		/* write Forwarded */
	bool https;		/* the client spoke TLS to the gateway */
	struct str tenant;	/* x-sluice-tenant; len 0: none */
};

/*
 * Whether a client header goes upstream as it is.  Headers the gateway
 * writes itself (fwd_append) are not: a trusted proxy's X-Forwarded-For
 * and Forwarded come back inside the gateway's, extended by the peer.
 */
bool fwd_keep_header(enum fwd_kind kind, const struct fwd_params *p);

/*
 * Append the gateway's forwarding headers to b: X-Forwarded-For (a trusted
 * proxy's list, then the peer), X-Forwarded-Proto (a trusted proxy's, else
 * the gateway's scheme), Forwarded (a trusted proxy's elements, then
 * for=<peer>;proto=<scheme>) and x-sluice-tenant, as p asks.  headers are
 * the client's.  0 or -ENOMEM.
 */
int fwd_append(struct buf *b, const struct http_header *headers, size_t n,
	       const struct fwd_params *p);

#endif
