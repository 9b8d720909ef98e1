/* SPDX-License-Identifier: Apache-2.0 */
#include "core/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_compact(struct buf *b)
{
	if (b->off == 0)
		return;
	size_t used = buf_used(b);
	if (used)
		memmove(b->data, b->data + b->off, used);
	b->off = 0;
	b->len = used;
}

int buf_reserve(struct buf *b, size_t need)
{
	if (buf_room(b) >= need)
		return 0;
	/* Sliding the live bytes down is cheaper than growing when it is enough. */
	if (b->off && b->cap - buf_used(b) >= need) {
		buf_compact(b);
		return 0;
	}
	size_t want = buf_used(b) + need;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < want) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	buf_compact(b);
	char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int err = buf_reserve(b, n);
	if (err)
		return err;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int buf_append_str(struct buf *b, struct str s)
{
	return buf_append(b, s.p, s.len);
}

int buf_append_cstr(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_append_u64(struct buf *b, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return buf_append(b, tmp + sizeof(tmp) - n, n);
}

int buf_append_hex(struct buf *b, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0;
	do {
		tmp[sizeof(tmp) - ++n] = digits[v & 15];
		v >>= 4;
	} while (v);
	return buf_append(b, tmp + sizeof(tmp) - n, n);
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room = buf_room(b);
	va_start(ap, fmt);
	int n = vsnprintf(room ? buf_tail(b) : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= room) {
		int err = buf_reserve(b, (size_t)n + 1);
		if (err)
			return err;
		va_start(ap, fmt);
		vsnprintf(buf_tail(b), buf_room(b), fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	*b = (struct buf){ 0 };
}

int buf_pool_init(struct buf_pool *pool, size_t size, size_t max_free)
{
	*pool = (struct buf_pool){ .size = size, .max_free = max_free };
	pool->free = calloc(max_free ? max_free : 1, sizeof(*pool->free));
	return pool->free ? 0 : -ENOMEM;
}

void buf_pool_destroy(struct buf_pool *pool)
{
	for (size_t i = 0; i < pool->nfree; i++)
		free(pool->free[i]);
	free(pool->free);
	*pool = (struct buf_pool){ 0 };
}

void *buf_pool_take(struct buf_pool *pool)
{
	return pool->nfree ? pool->free[--pool->nfree] : malloc(pool->size);
}

void buf_pool_give(struct buf_pool *pool, void *p)
{
	if (pool->nfree < pool->max_free)
		pool->free[pool->nfree++] = p;
	else
		free(p);
}

int buf_pool_get(struct buf_pool *pool, struct buf *b)
{
	char *p = buf_pool_take(pool);
	if (!p)
		return -ENOMEM;
	*b = (struct buf){ .data = p, .cap = pool->size };
	return 0;
}

void buf_pool_put(struct buf_pool *pool, struct buf *b)
{
	if (!b->data)
		return;
	if (b->cap == pool->size)
		buf_pool_give(pool, b->data);
	else
		free(b->data);
	*b = (struct buf){ 0 };
}
