/* SPDX-License-Identifier: Apache-2.0 */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>

int timer_heap_init(struct timer_heap *h, size_t cap)
{
	*h = (struct timer_heap){ 0 };
	h->v = calloc(cap, sizeof(*h->v));
	if (!h->v)
		return -ENOMEM;
	h->cap = cap;
	return 0;
}

void timer_heap_free(struct timer_heap *h)
{
	free(h->v);
	*h = (struct timer_heap){ 0 };
}

static void heap_place(struct timer_heap *h, size_t i, struct timer *t)
{
	h->v[i] = t;
	t->idx = i;
}

static void sift_up(struct timer_heap *h, size_t i)
{
	struct timer *t = h->v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (h->v[parent]->deadline <= t->deadline)
			break;
		heap_place(h, i, h->v[parent]);
		i = parent;
	}
	heap_place(h, i, t);
}

static void sift_down(struct timer_heap *h, size_t i)
{
	struct timer *t = h->v[i];

	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= h->n)
			break;
		if (child + 1 < h->n && h->v[child + 1]->deadline < h->v[child]->deadline)
			child++;
		if (t->deadline <= h->v[child]->deadline)
			break;
		heap_place(h, i, h->v[child]);
		i = child;
	}
	heap_place(h, i, t);
}

static int heap_grow(struct timer_heap *h)
{
	size_t cap = h->cap ? h->cap * 2 : 64;
	struct timer **v = realloc(h->v, cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

int timer_set(struct timer_heap *h, struct timer *t, uint64_t deadline)
{
	if (timer_queued(t)) {
		uint64_t old = t->deadline;
		t->deadline = deadline;
		if (deadline < old)
			sift_up(h, t->idx);
		else
			sift_down(h, t->idx);
		return 0;
	}
	if (h->n == h->cap && heap_grow(h))
		return -ENOMEM;
	t->deadline = deadline;
	heap_place(h, h->n++, t);
	sift_up(h, t->idx);
	return 0;
}

void timer_cancel(struct timer_heap *h, struct timer *t)
{
	if (!timer_queued(t))
		return;
	size_t i = t->idx;
	struct timer *last = h->v[--h->n];

	t->idx = TIMER_IDLE;
	if (last == t)
		return;
	/* The last timer fills the hole; it may belong above or below it. */
	heap_place(h, i, last);
	sift_up(h, i);
	sift_down(h, last->idx);
}

uint64_t timer_next(const struct timer_heap *h)
{
	return h->n ? h->v[0]->deadline : 0;
}

struct timer *timer_pop_expired(struct timer_heap *h, uint64_t now)
{
	if (!h->n || h->v[0]->deadline > now)
		return NULL;
	struct timer *t = h->v[0];
	timer_cancel(h, t);
	return t;
}
