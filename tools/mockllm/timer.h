/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-thread deadlines: a binary min-heap of timers embedded in their
 * owners.  One timerfd per worker is armed to the earliest deadline, so a
 * worker never sleeps and never polls: paced streams and delayed replies
 * wake it exactly when their next event is due.
 */
#ifndef MOCKLLM_TIMER_H
#define MOCKLLM_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMER_IDLE SIZE_MAX

struct timer {
	uint64_t deadline;	/* CLOCK_MONOTONIC, ns */
	size_t idx;		/* slot in the heap, TIMER_IDLE when not queued */
};

struct timer_heap {
	struct timer **v;
	size_t n, cap;
};

static inline void timer_init(struct timer *t)
{
	*t = (struct timer){ .idx = TIMER_IDLE };
}

static inline bool timer_queued(const struct timer *t)
{
	return t->idx != TIMER_IDLE;
}

int timer_heap_init(struct timer_heap *h, size_t cap);
void timer_heap_free(struct timer_heap *h);

/* Queue t at `deadline`, or move it there if already queued. 0 or -ENOMEM. */
int timer_set(struct timer_heap *h, struct timer *t, uint64_t deadline);
void timer_cancel(struct timer_heap *h, struct timer *t);

/* Earliest deadline, or 0 when the heap is empty. */
uint64_t timer_next(const struct timer_heap *h);

/* Dequeue and return a timer whose deadline is <= now, or NULL. */
struct timer *timer_pop_expired(struct timer_heap *h, uint64_t now);

#endif
