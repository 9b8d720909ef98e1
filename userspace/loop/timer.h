/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Timeouts in O(1): one list per timeout length.
 *
 * Every timer in a timer_list has the same timeout, so appending at the tail
 * on (re)arm keeps each list sorted by deadline, and expiring is popping from
 * the head until a deadline lies in the future.  A connection has a handful
 * of timeouts (header, body, keep-alive, upstream connect...) and re-arms on
 * every read, which makes this cheaper than any heap or wheel: no
 * allocation, no search, no rebalancing.
 */
#ifndef SLUICE_LOOP_TIMER_H
#define SLUICE_LOOP_TIMER_H

#include <stdint.h>

#include "core/list.h"

struct timer;
typedef void (*timer_fn)(struct timer *t);

struct timer {
	struct list_node node;
	uint64_t deadline;	/* monotonic ns */
	timer_fn fire;
};

struct timer_list {
	struct list_node head;
	uint64_t timeout_ns;
};

static inline void timer_init(struct timer *t, timer_fn fire)
{
	list_init(&t->node);
	t->deadline = 0;
	t->fire = fire;
}

static inline void timer_list_init(struct timer_list *tl, uint64_t timeout_ns)
{
	list_init(&tl->head);
	tl->timeout_ns = timeout_ns;
}

/* (Re)arm t to fire timeout_ns after now; moves it between lists if needed. */
static inline void timer_arm(struct timer_list *tl, struct timer *t, uint64_t now)
{
	list_del(&t->node);
	t->deadline = now + tl->timeout_ns;
	list_add_tail(&tl->head, &t->node);
}

/* (Re)arm t to fire at deadline in a list of timers of different lengths,
 * kept in deadline order (walked from the tail: for short lists, such as
 * the exchanges backing off before a retry). */
static inline void timer_arm_at(struct timer_list *tl, struct timer *t, uint64_t deadline)
{
	list_del(&t->node);
	t->deadline = deadline;
	struct list_node *n = tl->head.prev;
	while (n != &tl->head && container_of(n, struct timer, node)->deadline > deadline)
		n = n->prev;
	list_add_head(n, &t->node);	/* after n */
}

static inline void timer_disarm(struct timer *t)
{
	list_del(&t->node);
}

static inline int timer_armed(const struct timer *t)
{
	return list_linked(&t->node);
}

/* Fire every timer whose deadline has passed.  A fired timer is disarmed
 * before its callback runs, and the callback may re-arm or free it. */
static inline void timer_list_expire(struct timer_list *tl, uint64_t now)
{
	while (!list_empty(&tl->head)) {
		struct timer *t = list_first(&tl->head, struct timer, node);
		if (t->deadline > now)
			break;
		list_del(&t->node);
		t->fire(t);
	}
}

#endif
