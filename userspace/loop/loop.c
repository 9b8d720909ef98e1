/* SPDX-License-Identifier: Apache-2.0 */
#include "loop/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/clock.h"

/* user_data of operations whose completion nobody waits for (cancels). */
#define LOOP_IGNORED_UD 1

static int ring_init(struct loop *l, unsigned entries)
{
	struct io_uring_params p;
	/*
	 * One thread submits and reaps, so let the kernel skip the locking and
	 * task-work interrupts that a shared ring would need.  The ring is set
	 * up by the main thread and used by the worker, so it starts disabled
	 * and the worker enables it (loop_start), becoming its only submitter.
	 * Older kernels reject these flags: fall back to a plain ring.
	 */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED;
	p.cq_entries = entries * 4;
	p.flags |= IORING_SETUP_CQSIZE;
	int err = io_uring_queue_init_params(entries, &l->ring, &p);
	if (err == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		err = io_uring_queue_init_params(entries, &l->ring, &p);
	}
	return err;
}

static int buf_ring_init(struct loop *l, unsigned nbufs, unsigned bufsize)
{
	size_t ring_bytes = (size_t)nbufs * sizeof(struct io_uring_buf);
	void *ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
			  MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (ring == MAP_FAILED)
		return -errno;
	l->br = ring;
	l->br_count = nbufs;
	l->br_size = bufsize;
	l->br_mask = (unsigned)io_uring_buf_ring_mask(nbufs);
	/* Pages are only touched when a buffer is first filled. */
	l->bufs = mmap(NULL, (size_t)nbufs * bufsize, PROT_READ | PROT_WRITE,
		       MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (l->bufs == MAP_FAILED) {
		l->bufs = NULL;
		return -errno;
	}
	io_uring_buf_ring_init(l->br);
	struct io_uring_buf_reg reg = {
		.ring_addr = (unsigned long)l->br,
		.ring_entries = nbufs,
		.bgid = LOOP_BGID,
	};
	int err = io_uring_register_buf_ring(&l->ring, &reg, 0);
	if (err)
		return err;
	for (unsigned i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * bufsize, bufsize,
				      (unsigned short)i, l->br_mask, (int)i);
	io_uring_buf_ring_advance(l->br, (int)nbufs);
	return 0;
}

int loop_init(struct loop *l, unsigned entries, unsigned nbufs, unsigned bufsize)
{
	memset(l, 0, sizeof(*l));
	int err = ring_init(l, entries);
	if (err)
		return err;
	err = buf_ring_init(l, nbufs, bufsize);
	if (err) {
		loop_destroy(l);
		return err;
	}
	l->now = clock_mono_ns();
	return 0;
}

void loop_destroy(struct loop *l)
{
	if (l->ring.ring_fd > 0)
		io_uring_queue_exit(&l->ring);
	if (l->br)
		munmap(l->br, (size_t)l->br_count * sizeof(struct io_uring_buf));
	if (l->bufs)
		munmap(l->bufs, (size_t)l->br_count * l->br_size);
	memset(l, 0, sizeof(*l));
}

/* An SQE, flushing the queue to the kernel when it is full. */
static struct io_uring_sqe *loop_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	while (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

void loop_accept(struct loop *l, int fd, struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, ev);
}

void loop_recv_any(struct loop *l, int fd, struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_recv(sqe, fd, NULL, l->br_size, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = LOOP_BGID;
	io_uring_sqe_set_data(sqe, ev);
}

void loop_recv_multishot(struct loop *l, int fd, struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = LOOP_BGID;
	io_uring_sqe_set_data(sqe, ev);
}

void loop_recv(struct loop *l, int fd, void *p, size_t n, struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_recv(sqe, fd, p, n, 0);
	io_uring_sqe_set_data(sqe, ev);
}

void loop_send(struct loop *l, int fd, const void *p, size_t n, struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_send(sqe, fd, p, n, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, ev);
}

void loop_sendmsg(struct loop *l, int fd, const struct msghdr *msg, struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, ev);
}

void loop_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len,
		  struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_connect(sqe, fd, sa, len);
	io_uring_sqe_set_data(sqe, ev);
}

void loop_poll(struct loop *l, int fd, unsigned events, struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_poll_add(sqe, fd, events);
	io_uring_sqe_set_data(sqe, ev);
}

void loop_read(struct loop *l, int fd, void *p, size_t n, struct ioev *ev)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_read(sqe, fd, p, (unsigned)n, 0);
	io_uring_sqe_set_data(sqe, ev);
}

void loop_cancel_fd(struct loop *l, int fd)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, LOOP_IGNORED_UD);
}

char *loop_buf(struct loop *l, unsigned cqe_flags, unsigned *bid)
{
	*bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
	return l->bufs + (size_t)*bid * l->br_size;
}

void loop_buf_put(struct loop *l, unsigned bid)
{
	io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * l->br_size, l->br_size,
			      (unsigned short)bid, l->br_mask, 0);
	io_uring_buf_ring_advance(l->br, 1);
}

static void dispatch(struct io_uring_cqe *cqe)
{
	if (cqe->user_data == LOOP_IGNORED_UD || cqe->user_data == 0)
		return;
	struct ioev *ev = io_uring_cqe_get_data(cqe);
	ev->fn(ev, cqe->res, cqe->flags);
}

int loop_start(struct loop *l)
{
	if (!(l->ring.flags & IORING_SETUP_R_DISABLED))
		return 0;
	/* liburing 2.3 declares io_uring_enable_rings() but does not export it. */
	if (syscall(__NR_io_uring_register, l->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
		    NULL, 0) < 0)
		return -errno;
	return 0;
}

int loop_run_once(struct loop *l, uint64_t wait_ns)
{
	struct __kernel_timespec ts = {
		.tv_sec = (long long)(wait_ns / 1000000000u),
		.tv_nsec = (long long)(wait_ns % 1000000000u),
	};
	struct io_uring_cqe *cqe;
	int err = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	if (err < 0 && err != -ETIME && err != -EINTR)
		return err;
	l->now = clock_mono_ns();
	/* Handlers queue new SQEs while we walk the CQ; that is fine. */
	unsigned head, seen = 0;
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		dispatch(cqe);
		seen++;
	}
	io_uring_cq_advance(&l->ring, seen);
	return 0;
}
