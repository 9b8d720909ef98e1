/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One io_uring per worker thread.
 *
 * Every operation in flight carries a pointer to a struct ioev embedded in
 * the object that started it (connection, upstream, listener); the
 * completion calls ev->fn.  An object keeps a count of its operations in
 * flight and is freed only when that count drops to zero, so a completion
 * never lands on freed memory.
 *
 * Reads of idle sockets use a ring of provided buffers: the kernel picks a
 * buffer only when data arrives, so ten thousand idle keep-alive
 * connections hold no receive memory.  The completion handler copies what it
 * needs and gives the buffer back at once with loop_buf_put().
 */
#ifndef SLUICE_LOOP_LOOP_H
#define SLUICE_LOOP_LOOP_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ioev;
typedef void (*ioev_fn)(struct ioev *ev, int res, unsigned cqe_flags);

struct ioev {
	ioev_fn fn;
};

struct loop {
	struct io_uring ring;
	struct io_uring_buf_ring *br;	/* provided-buffer ring */
	char *bufs;			/* br_count buffers of br_size bytes */
	unsigned br_count;
	unsigned br_size;
	unsigned br_mask;
	uint64_t now;			/* monotonic ns, refreshed each iteration */
};

#define LOOP_BGID 1

/* entries: SQ size; nbufs (power of two) buffers of bufsize for idle reads. */
int loop_init(struct loop *l, unsigned entries, unsigned nbufs, unsigned bufsize);
void loop_destroy(struct loop *l);

/* Called once by the thread that will run the loop, before anything else. */
int loop_start(struct loop *l);

/* Submit what is queued, wait up to wait_ns for at least one completion,
 * run every completion handler, refresh l->now.  0 or -errno. */
int loop_run_once(struct loop *l, uint64_t wait_ns);

/* Queue operations (submitted at the next loop_run_once). */
void loop_accept(struct loop *l, int fd, struct ioev *ev);	/* multishot */
void loop_recv_any(struct loop *l, int fd, struct ioev *ev);	/* provided buffer */
/* Stays armed: one completion per arrival, each with a provided buffer,
 * IORING_CQE_F_MORE set while it remains armed. */
void loop_recv_multishot(struct loop *l, int fd, struct ioev *ev);
void loop_recv(struct loop *l, int fd, void *p, size_t n, struct ioev *ev);
void loop_send(struct loop *l, int fd, const void *p, size_t n, struct ioev *ev);
/* msg (and its iovecs) must stay untouched until the completion. */
void loop_sendmsg(struct loop *l, int fd, const struct msghdr *msg, struct ioev *ev);
void loop_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len,
		  struct ioev *ev);
void loop_read(struct loop *l, int fd, void *p, size_t n, struct ioev *ev);
/* One-shot readiness (POLLIN/POLLOUT), for sockets whose I/O a library
 * does itself (TLS in userspace). */
void loop_poll(struct loop *l, int fd, unsigned events, struct ioev *ev);
/* Cancel every operation on fd; their completions still arrive (-ECANCELED).
 * The cancel request itself completes silently. */
void loop_cancel_fd(struct loop *l, int fd);

/* The provided buffer a loop_recv_any completion filled, and its return. */
char *loop_buf(struct loop *l, unsigned cqe_flags, unsigned *bid);
void loop_buf_put(struct loop *l, unsigned bid);

#endif
