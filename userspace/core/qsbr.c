/* SPDX-License-Identifier: Apache-2.0 */
#include "core/qsbr.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define OFFLINE UINT64_MAX

int qsbr_init(struct qsbr *q, unsigned nreaders)
{
	q->epoch = 1;
	q->nreaders = nreaders;
	q->retired = NULL;
	q->readers = aligned_alloc(_Alignof(struct qsbr_reader),
				   (nreaders ? nreaders : 1) * sizeof(*q->readers));
	if (!q->readers)
		return -ENOMEM;
	for (unsigned i = 0; i < nreaders; i++)
		q->readers[i].seen = OFFLINE;
	pthread_mutex_init(&q->lock, NULL);
	return 0;
}

void qsbr_destroy(struct qsbr *q)
{
	while (q->retired) {
		struct qsbr_retired *r = q->retired;
		q->retired = r->next;
		r->free_fn(r->p);
		free(r);
	}
	free(q->readers);
	q->readers = NULL;
	pthread_mutex_destroy(&q->lock);
}

/* The store of `seen` must be visible before this reader loads any
 * published pointer (a store-load order): hence the full fence. */
void qsbr_online(struct qsbr *q, unsigned i)
{
	__atomic_store_n(&q->readers[i].seen, __atomic_load_n(&q->epoch, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void qsbr_offline(struct qsbr *q, unsigned i)
{
	__atomic_store_n(&q->readers[i].seen, OFFLINE, __ATOMIC_RELEASE);
}

static bool passed_by_all(const struct qsbr *q, uint64_t epoch)
{
	for (unsigned i = 0; i < q->nreaders; i++)
		if (__atomic_load_n(&q->readers[i].seen, __ATOMIC_ACQUIRE) < epoch)
			return false;
	return true;
}

int qsbr_retire(struct qsbr *q, void *p, void (*free_fn)(void *))
{
	if (!p)
		return 0;
	struct qsbr_retired *r = malloc(sizeof(*r));
	pthread_mutex_lock(&q->lock);
	/* Readers that come online from now on see the new epoch, and they
	 * load the pointer after that, so they got the new one. */
	uint64_t epoch = __atomic_add_fetch(&q->epoch, 1, __ATOMIC_SEQ_CST);
	if (r) {
		*r = (struct qsbr_retired){ .next = q->retired, .epoch = epoch, .p = p,
					    .free_fn = free_fn };
		q->retired = r;
	}
	pthread_mutex_unlock(&q->lock);
	if (r)
		return 0;
	/* No memory to remember it: wait for the readers here instead. */
	while (!passed_by_all(q, epoch))
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	free_fn(p);
	return 0;
}

size_t qsbr_reclaim(struct qsbr *q)
{
	size_t waiting = 0;
	pthread_mutex_lock(&q->lock);
	for (struct qsbr_retired **pp = &q->retired; *pp;) {
		struct qsbr_retired *r = *pp;
		if (passed_by_all(q, r->epoch)) {
			*pp = r->next;
			r->free_fn(r->p);
			free(r);
		} else {
			waiting++;
			pp = &r->next;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return waiting;
}
