/* SPDX-License-Identifier: Apache-2.0 */
/* One worker thread: its listening socket, epoll loop, timers and pools. */
#include "mockllm.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

#define EVENT_BATCH 256
#define ACCEPT_BATCH 64
#define POOL_BUF_SIZE (16u * 1024)
#define POOL_MAX_FREE 1024
#define TIMERS_INITIAL 1024
#define SCRATCH_KEEP (1024u * 1024)	/* scratch kept between batches */

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static int watch(struct worker *w, int fd, struct source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

int worker_init(struct worker *w, int id, const struct mock_config *cfg, int listen_fd,
		int wake_fd)
{
	*w = (struct worker){
		.id = id, .cfg = cfg, .listen_fd = listen_fd, .wake_fd = wake_fd,
		.epfd = -1, .timer_fd = -1,
		.listen_src = { SRC_LISTEN }, .timer_src = { SRC_TIMER }, .wake_src = { SRC_WAKE },
	};
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->epfd < 0 || w->timer_fd < 0)
		return -errno;

	int err = watch(w, listen_fd, &w->listen_src, EPOLLIN);
	err = err ? err : watch(w, w->timer_fd, &w->timer_src, EPOLLIN);
	err = err ? err : watch(w, wake_fd, &w->wake_src, EPOLLIN);
	err = err ? err : buf_pool_init(&w->pool, POOL_BUF_SIZE, POOL_MAX_FREE);
	err = err ? err : timer_heap_init(&w->timers, TIMERS_INITIAL);
	return err;
}

void worker_destroy(struct worker *w)
{
	struct conn *c = w->all;

	while (c) {
		struct conn *next = c->all_next;
		if (!c->closed)
			conn_close(c);
		free(c);
		c = next;
	}
	buf_free(&w->text);
	buf_free(&w->body);
	buf_pool_destroy(&w->pool);
	timer_heap_free(&w->timers);
	if (w->timer_fd >= 0)
		close(w->timer_fd);
	if (w->epfd >= 0)
		close(w->epfd);
}

static struct conn *conn_alloc(struct worker *w)
{
	struct conn *c = w->free_conns;

	if (c) {
		w->free_conns = c->next;
		return c;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->all_next = w->all;
	w->all = c;
	return c;
}

/* A closed connection may still have an event later in the current batch,
 * so it is only reused once the batch is over. */
void worker_release_conn(struct worker *w, struct conn *c)
{
	c->next = w->graveyard;
	w->graveyard = c;
}

static void recycle_graveyard(struct worker *w)
{
	while (w->graveyard) {
		struct conn *c = w->graveyard;
		w->graveyard = c->next;
		c->next = w->free_conns;
		w->free_conns = c;
	}
}

static void accept_one(struct worker *w, int fd)
{
	int one = 1;
	struct conn *c = conn_alloc(w);

	/* Every event is written as soon as it is ready: no Nagle delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!c) {
		close(fd);
		return;
	}
	conn_init(c, w, fd);
	/* Edge-triggered, registered once: readiness changes never cost an
	 * epoll_ctl, and a busy connection just remembers it can read. */
	if (watch(w, fd, &c->src, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET))
		conn_close(c);
}

static void accept_batch(struct worker *w)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(w, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN)
			log_warn("mockllm: accept: %s", strerror(errno));
		return;
	}
}

int worker_timer_set(struct worker *w, struct timer *t, uint64_t deadline)
{
	return timer_set(&w->timers, t, deadline);
}

void worker_timer_cancel(struct worker *w, struct timer *t)
{
	timer_cancel(&w->timers, t);
}

static void run_expired_timers(struct worker *w)
{
	uint64_t expirations;
	struct timer *t;

	/* The timerfd is one-shot: after it fired it is disarmed. */
	if (read(w->timer_fd, &expirations, sizeof(expirations)) > 0)
		w->timer_armed = 0;
	uint64_t now = clock_mono_ns();
	while ((t = timer_pop_expired(&w->timers, now)))
		conn_on_timer(container_of(t, struct conn, timer));
}

/* Point the timerfd at the earliest deadline, once per batch of events. */
static void arm_timerfd(struct worker *w)
{
	uint64_t next = timer_next(&w->timers);
	struct itimerspec its = { 0 };

	if (next == w->timer_armed)
		return;
	its.it_value.tv_sec = (time_t)(next / 1000000000u);
	its.it_value.tv_nsec = (long)(next % 1000000000u);
	if (timerfd_settime(w->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		w->timer_armed = next;
	else
		log_error("mockllm: timerfd_settime: %s", strerror(errno));
}

/* A huge response leaves a huge scratch buffer behind: give it back. */
static void trim_scratch(struct worker *w)
{
	if (w->body.cap > SCRATCH_KEEP)
		buf_free(&w->body);
	if (w->text.cap > SCRATCH_KEEP)
		buf_free(&w->text);
}

/* Returns false when the worker was told to stop. */
static bool dispatch(struct worker *w, const struct epoll_event *ev)
{
	struct source *src = ev->data.ptr;

	switch (src->kind) {
	case SRC_CONN:
		conn_on_event(container_of(src, struct conn, src), ev->events);
		return true;
	case SRC_LISTEN:
		accept_batch(w);
		return true;
	case SRC_TIMER:
		run_expired_timers(w);
		return true;
	case SRC_WAKE:
		return false;
	}
	return true;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event events[EVENT_BATCH];
	bool running = true;

	while (running) {
		int n = epoll_wait(w->epfd, events, EVENT_BATCH, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("mockllm: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n && running; i++)
			running = dispatch(w, &events[i]);
		recycle_graveyard(w);
		trim_scratch(w);
		arm_timerfd(w);
	}
	return NULL;
}
