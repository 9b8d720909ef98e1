/* SPDX-License-Identifier: Apache-2.0 */
#include "core/chain.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* A pooled allocation: this header, then the bytes. */
struct chain_seg {
	struct chain_seg *next;
	uint32_t start, end;	/* queued bytes: data[start..end) */
	uint32_t cap;
	char data[];
};

static size_t seg_room(const struct chain_seg *s)
{
	return s->cap - s->end;
}

static struct chain_seg *seg_new(struct buf_pool *pool)
{
	struct chain_seg *s = buf_pool_take(pool);
	if (!s)
		return NULL;
	s->next = NULL;
	s->start = s->end = 0;
	s->cap = (uint32_t)(pool->size - offsetof(struct chain_seg, data));
	return s;
}

static void seg_free_list(struct buf_pool *pool, struct chain_seg *s)
{
	while (s) {
		struct chain_seg *next = s->next;
		buf_pool_give(pool, s);
		s = next;
	}
}

/* Every segment the bytes that do not fit the tail need, taken before any
 * is linked in, so an append that fails leaves the chain as it was. */
static int take_segments(struct buf_pool *pool, size_t need, struct chain_seg **first,
			 struct chain_seg **last)
{
	size_t cap = pool->size - offsetof(struct chain_seg, data);
	*first = *last = NULL;
	for (size_t n = 0; n < need; n += cap) {
		struct chain_seg *s = seg_new(pool);
		if (!s) {
			seg_free_list(pool, *first);
			return -ENOMEM;
		}
		if (*last)
			(*last)->next = s;
		else
			*first = s;
		*last = s;
	}
	return 0;
}

int chain_append(struct chain *ch, struct buf_pool *pool, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	size_t room = ch->tail ? seg_room(ch->tail) : 0;
	struct chain_seg *first = NULL, *last = NULL;
	if (n > room && take_segments(pool, n - room, &first, &last))
		return -ENOMEM;
	const char *src = p;
	size_t left = n;
	if (room) {
		size_t k = left < room ? left : room;
		memcpy(ch->tail->data + ch->tail->end, src, k);
		ch->tail->end += (uint32_t)k;
		src += k;
		left -= k;
	}
	for (struct chain_seg *s = first; s; s = s->next) {
		size_t k = left < s->cap ? left : s->cap;
		memcpy(s->data, src, k);
		s->end = (uint32_t)k;
		src += k;
		left -= k;
	}
	if (first) {
		if (ch->tail)
			ch->tail->next = first;
		else
			ch->head = first;
		ch->tail = last;
	}
	ch->bytes += n;
	ch->appended += n;
	return 0;
}

unsigned chain_iov(const struct chain *ch, struct iovec *iov, unsigned max, size_t *len)
{
	unsigned n = 0;
	*len = 0;
	for (const struct chain_seg *s = ch->head; s && n < max; s = s->next) {
		if (s->end == s->start)
			continue;
		iov[n].iov_base = (void *)(s->data + s->start);
		iov[n].iov_len = s->end - s->start;
		*len += iov[n].iov_len;
		n++;
	}
	return n;
}

struct str chain_first(const struct chain *ch)
{
	for (const struct chain_seg *s = ch->head; s; s = s->next)
		if (s->end > s->start)
			return (struct str){ s->data + s->start, s->end - s->start };
	return STR_NULL;
}

void chain_consume(struct chain *ch, struct buf_pool *pool, size_t n)
{
	ch->held = 0;
	ch->bytes -= n;
	while (ch->head) {
		struct chain_seg *s = ch->head;
		size_t k = s->end - s->start;
		if (n < k) {
			s->start += (uint32_t)n;
			return;
		}
		n -= k;
		if (s == ch->tail) {
			/* Keep the last segment for what comes next: a stream
			 * then takes nothing from the pool per event. */
			s->start = s->end = 0;
			return;
		}
		ch->head = s->next;
		buf_pool_give(pool, s);
	}
}

void chain_rollback(struct chain *ch, struct buf_pool *pool, uint64_t mark)
{
	if (mark >= ch->appended)
		return;
	size_t drop = (size_t)(ch->appended - mark);
	size_t droppable = ch->bytes - ch->held;
	if (drop > droppable)
		drop = droppable;
	size_t keep = ch->bytes - drop;
	ch->bytes = keep;
	ch->appended -= drop;
	/* Walk to the segment where the kept bytes end; free what follows. */
	struct chain_seg *s = ch->head;
	if (!s)
		return;
	while (keep > (size_t)(s->end - s->start) && s->next) {
		keep -= s->end - s->start;
		s = s->next;
	}
	s->end = s->start + (uint32_t)keep;
	seg_free_list(pool, s->next);
	s->next = NULL;
	ch->tail = s;
}

void chain_release(struct chain *ch, struct buf_pool *pool)
{
	seg_free_list(pool, ch->head);
	*ch = (struct chain){ .appended = ch->appended };
}
