/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Growable byte buffers and a per-thread pool of them.
 *
 * A struct buf owns its memory.  Data lives in [data + off, data + len):
 * consuming from the front only moves `off`, so a reader that drains a
 * buffer in pieces never pays a memmove per piece; buf_compact() moves
 * the live bytes back to the start when the caller wants room.
 *
 * The pool keeps buffers of one standard capacity so that connections take
 * and return them without touching malloc once the worker is warm.  A buffer
 * that grew past the standard size is freed on return instead of pooled.
 * A pool belongs to one thread; it has no lock.
 */
#ifndef SLUICE_CORE_BUF_H
#define SLUICE_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

struct buf {
	char *data;
	size_t off;	/* first live byte */
	size_t len;	/* one past the last live byte */
	size_t cap;
};

static inline size_t buf_used(const struct buf *b) { return b->len - b->off; }
static inline char *buf_head(const struct buf *b) { return b->data + b->off; }
static inline char *buf_tail(const struct buf *b) { return b->data + b->len; }
static inline size_t buf_room(const struct buf *b) { return b->cap - b->len; }
static inline struct str buf_str(const struct buf *b)
{
	return (struct str){ buf_head(b), buf_used(b) };
}

/* Make room for `need` more bytes at the tail; may compact or realloc.
 * Returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t need);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, struct str s);
int buf_append_cstr(struct buf *b, const char *s);
/* Decimal and lower-case hex renderings, for framing on the hot path where
 * printf's machinery costs more than the rest of the line. */
int buf_append_u64(struct buf *b, uint64_t v);
int buf_append_hex(struct buf *b, uint64_t v);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drop n bytes from the front (n <= buf_used). Empties to off = len = 0. */
void buf_consume(struct buf *b, size_t n);
/* Move live bytes to the start of the allocation. */
void buf_compact(struct buf *b);
static inline void buf_reset(struct buf *b) { b->off = b->len = 0; }
void buf_free(struct buf *b);

struct buf_pool {
	size_t size;		/* capacity of pooled buffers */
	size_t max_free;	/* how many free buffers to keep */
	size_t nfree;
	char **free;		/* stack of free allocations */
};

int buf_pool_init(struct buf_pool *pool, size_t size, size_t max_free);
void buf_pool_destroy(struct buf_pool *pool);
/* A pooled allocation of pool->size bytes, or NULL; and its return. */
void *buf_pool_take(struct buf_pool *pool);
void buf_pool_give(struct buf_pool *pool, void *p);
/* Give b (which must hold no memory) a pooled allocation. -ENOMEM. */
int buf_pool_get(struct buf_pool *pool, struct buf *b);
/* Return b's memory to the pool (or free it if it grew), leave b empty. */
void buf_pool_put(struct buf_pool *pool, struct buf *b);

#endif
