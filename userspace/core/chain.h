/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Output chains: bytes queued for a socket, in segments that never move.
 *
 * Bytes are appended at the tail and taken from the head.  Each segment is
 * one allocation of a buffer pool (16 KiB in the gateway) that carries its
 * own small header; a byte, once appended, stays at its address until it
 * is consumed, and a segment goes back to the pool only when every byte in
 * it is consumed.  Consuming is what the completion of an operation does.
 *
 * So memory handed to an operation in flight (an io_uring send, or an
 * SSL_write that OpenSSL wants retried with the same bytes) is never moved,
 * grown or freed under it while new bytes keep arriving behind it: the
 * rule holds by construction, with no check on the append path.  Appends
 * are all or nothing (every segment they need is taken before a byte is
 * copied), and nothing allocates once the pool is warm.  nginx's
 * ngx_chain_t and HAProxy's buffer rings are the models.
 */
#ifndef SLUICE_CORE_CHAIN_H
#define SLUICE_CORE_CHAIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "core/str.h"

struct chain_seg;

struct chain {
	struct chain_seg *head, *tail;
	size_t bytes;		/* queued: appended and not consumed yet */
	size_t held;		/* of those, from the head: what an operation in
				 * flight reads; chain_rollback never drops them */
	uint64_t appended;	/* every byte ever appended: marks count in it */
};

static inline size_t chain_bytes(const struct chain *ch) { return ch->bytes; }

/* Append n bytes (all of them, or none and -ENOMEM). */
int chain_append(struct chain *ch, struct buf_pool *pool, const void *p, size_t n);
static inline int chain_append_str(struct chain *ch, struct buf_pool *pool, struct str s)
{
	return chain_append(ch, pool, s.p, s.len);
}

/* The queued bytes from the head as up to max iovecs; *len is their total.
 * Returns how many iovecs were filled (0 when the chain is empty). */
unsigned chain_iov(const struct chain *ch, struct iovec *iov, unsigned max, size_t *len);

/* The first contiguous run of queued bytes (empty when there is none). */
struct str chain_first(const struct chain *ch);

/* Drop n <= chain_bytes() bytes from the head (what an operation took),
 * giving emptied segments back to the pool.  Clears the hold. */
void chain_consume(struct chain *ch, struct buf_pool *pool, size_t n);

/* A mark, and the undo of every append after it: for a reply that failed
 * half-way.  Bytes under a hold are never dropped. */
static inline uint64_t chain_mark(const struct chain *ch) { return ch->appended; }
void chain_rollback(struct chain *ch, struct buf_pool *pool, uint64_t mark);

/* Give every segment back (nothing may be in flight). */
void chain_release(struct chain *ch, struct buf_pool *pool);

#endif
