/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Global quota calls off the worker: a Redis thread per worker and an
 * eventfd completion on the worker's ring (see quota_async.c).
 */
#ifndef SLUICE_PROXY_QUOTA_ASYNC_H
#define SLUICE_PROXY_QUOTA_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "quota/global.h"

#define QASYNC_JOBS	256	/* admissions of one worker waiting for Redis */

struct qasync;
struct worker;
struct exchange;

int qasync_new(struct worker *w, struct qasync **out);
void qasync_start(struct qasync *q);
void qasync_free(struct qasync *q);
/* Queue a blocking reserve for x; its verdict comes to admit_global_done().
 * 0 with *job set, or -EBUSY when every job slot is taken. */
int qasync_submit(struct qasync *q, struct exchange *x, const struct quota_global_scope *gs,
		  size_t n, const struct quota_ask *ask, uint64_t now_ms, unsigned *job);
/* x stops waiting: the verdict will not reach it (a reservation made for
 * it is given back). */
void qasync_abandon(struct qasync *q, unsigned job);
/* quota_global_release() that never makes the worker wait for a lock a
 * Redis call holds. */
void qasync_release(struct qasync *q, const struct quota_global_scope *gs, size_t n,
		    const struct quota_hold *hold, uint64_t used_in, uint64_t used_out,
		    uint64_t now_ms);

#endif
