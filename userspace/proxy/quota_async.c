/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Global quota calls off the worker.
 *
 * A worker's own Redis connection is nowait (quota/global.h): admissions
 * that its leases cover are answered at once, and the rest come back
 * QUOTA_PENDING.  Those go to the worker's Redis thread, which makes the
 * blocking call (hiredis, under quota.redis.timeout) on a connection of its
 * own and hands the verdict back through an eventfd the worker's ring
 * reads.  Meanwhile the admission stage answers AGAIN and the worker serves
 * everything else.
 *
 * Jobs live in a fixed array per worker (no allocation per request).  The
 * worker owns a job's `x` and its free/queued state; the thread reads the
 * inputs and writes the outputs of a job between taking it from `todo` and
 * putting it on `done`, both rings under `lock`.  An exchange that stops
 * waiting (deadline, client gone) only clears `x`: the job still completes,
 * and a reservation it made is then given back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "proxy/proxy.h"
#include "proxy/quota_async.h"

struct qjob {
	struct exchange *x;		/* worker only; NULL once abandoned */
	bool release;			/* settle hold (used_in/out), not reserve */
	uint64_t used_in, used_out;
	/* inputs */
	size_t n;
	char names[ADMIT_MAX_SCOPES][ADMIT_SCOPE_NAME];
	const struct sluice_limits *limits[ADMIT_MAX_SCOPES];
	struct quota_ask ask;
	uint64_t now_ms;
	/* outputs */
	enum quota_verdict v;
	struct quota_hold hold;
	struct quota_headers qh;	/* in: the local values; out: merged */
};

struct qasync {
	struct worker *w;
	struct quota_global_conn *conn;	/* the thread's, blocking */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	unsigned todo[QASYNC_JOBS], ntodo, todo_head;
	unsigned done[QASYNC_JOBS], ndone;
	unsigned freelist[QASYNC_JOBS], nfree;	/* worker only */
	int efd;
	uint64_t eval;
	struct ioev ev;
	struct qjob jobs[QASYNC_JOBS];
};

static void job_scopes(const struct qjob *j, struct quota_global_scope *gs)
{
	for (size_t i = 0; i < j->n; i++)
		gs[i] = (struct quota_global_scope){ j->names[i], j->limits[i] };
}

static void *qasync_main(void *arg)
{
	struct qasync *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->ntodo && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stop)
			break;
		unsigned id = q->todo[q->todo_head];
		q->todo_head = (q->todo_head + 1) % QASYNC_JOBS;
		q->ntodo--;
		pthread_mutex_unlock(&q->lock);
		struct qjob *j = &q->jobs[id];
		struct quota_global_scope gs[ADMIT_MAX_SCOPES];
		job_scopes(j, gs);
		if (j->release)
			quota_global_release(q->conn, gs, j->n, &j->hold, j->used_in, j->used_out,
					     j->now_ms);
		else
			j->v = quota_global_reserve(q->conn, gs, j->n, &j->ask, j->now_ms, &j->hold,
						    &j->qh);
		pthread_mutex_lock(&q->lock);
		q->done[q->ndone++] = id;
		uint64_t one = 1;
		if (write(q->efd, &one, sizeof(one)) < 0)
			log_warn("quota thread: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* Verdicts came back: each waiting exchange goes on (or is refused);
 * a job whose exchange stopped waiting gives its reservation back. */
static void on_done(struct ioev *ev, int res, unsigned flags)
{
	(void)flags;
	struct qasync *q = container_of(ev, struct qasync, ev);
	struct worker *w = q->w;
	if (res == -ECANCELED)
		return;
	unsigned ids[QASYNC_JOBS], n;
	pthread_mutex_lock(&q->lock);
	n = q->ndone;
	memcpy(ids, q->done, n * sizeof(*ids));
	q->ndone = 0;
	pthread_mutex_unlock(&q->lock);
	loop_read(&w->loop, q->efd, &q->eval, sizeof(q->eval), &q->ev);
	for (unsigned i = 0; i < n; i++) {
		struct qjob *j = &q->jobs[ids[i]];
		struct exchange *x = j->x;
		j->x = NULL;
		q->freelist[q->nfree++] = ids[i];
		if (x) {
			admit_global_done(x, j->v, &j->hold, &j->qh);
		} else if (!j->release && j->v == QUOTA_OK) {
			struct quota_global_scope gs[ADMIT_MAX_SCOPES];
			job_scopes(j, gs);
			qasync_release(q, gs, j->n, &j->hold, 0, 0, j->now_ms);
		}
	}
}

int qasync_new(struct worker *w, struct qasync **out)
{
	struct qasync *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->w = w;
	q->efd = -1;
	if (!(q->conn = quota_global_conn_new(w->gw->global))) {
		free(q);
		return -ENOMEM;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	for (unsigned i = 0; i < QASYNC_JOBS; i++)
		q->freelist[q->nfree++] = QASYNC_JOBS - 1 - i;
	q->ev.fn = on_done;
	q->efd = eventfd(0, EFD_CLOEXEC);
	int err = q->efd < 0 ? -errno : -pthread_create(&q->thread, NULL, qasync_main, q);
	if (err) {
		qasync_free(q);
		return err;
	}
	q->started = true;
	*out = q;
	return 0;
}

/* The worker's ring reads the eventfd from its start on. */
void qasync_start(struct qasync *q)
{
	loop_read(&q->w->loop, q->efd, &q->eval, sizeof(q->eval), &q->ev);
}

void qasync_free(struct qasync *q)
{
	if (!q)
		return;
	if (q->started) {
		pthread_mutex_lock(&q->lock);
		q->stop = true;
		pthread_cond_signal(&q->cond);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->thread, NULL);
	}
	if (q->efd >= 0)
		close(q->efd);
	quota_global_conn_free(q->conn);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}

/* A free job with the scopes copied in, or NULL. */
static struct qjob *job_take(struct qasync *q, const struct quota_global_scope *gs, size_t n,
			     uint64_t now_ms, unsigned *id)
{
	if (!q->nfree)
		return NULL;
	*id = q->freelist[--q->nfree];
	struct qjob *j = &q->jobs[*id];
	memset(j, 0, offsetof(struct qjob, names));
	j->n = n;
	for (size_t i = 0; i < n; i++) {
		strcpy(j->names[i], gs[i].name);
		j->limits[i] = gs[i].limits;
	}
	j->now_ms = now_ms;
	return j;
}

static void job_queue(struct qasync *q, unsigned id)
{
	pthread_mutex_lock(&q->lock);
	q->todo[(q->todo_head + q->ntodo) % QASYNC_JOBS] = id;
	q->ntodo++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

int qasync_submit(struct qasync *q, struct exchange *x, const struct quota_global_scope *gs,
		  size_t n, const struct quota_ask *ask, uint64_t now_ms, unsigned *job)
{
	struct qjob *j = job_take(q, gs, n, now_ms, job);
	if (!j)
		return -EBUSY;
	j->x = x;
	j->ask = *ask;
	j->qh = x->ad.qh;
	job_queue(q, *job);
	return 0;
}

/*
 * Settle a global hold without waiting: on the worker when every scope
 * lock is free, else on the Redis thread.  With every job slot taken
 * (hundreds of admissions waiting on Redis), the worker settles it
 * itself, waiting for the locks: rare, and never lost.
 */
void qasync_release(struct qasync *q, const struct quota_global_scope *gs, size_t n,
		    const struct quota_hold *hold, uint64_t used_in, uint64_t used_out,
		    uint64_t now_ms)
{
	struct quota_global_conn *mine = q->w->qconn;
	if (quota_global_release(mine, gs, n, hold, used_in, used_out, now_ms) == 0)
		return;
	unsigned id;
	struct qjob *j = job_take(q, gs, n, now_ms, &id);
	if (!j) {
		quota_global_conn_set_nowait(mine, false);
		quota_global_release(mine, gs, n, hold, used_in, used_out, now_ms);
		quota_global_conn_set_nowait(mine, true);
		return;
	}
	j->release = true;
	j->hold = *hold;
	j->used_in = used_in;
	j->used_out = used_out;
	job_queue(q, id);
}

void qasync_abandon(struct qasync *q, unsigned job)
{
	q->jobs[job].x = NULL;
}
