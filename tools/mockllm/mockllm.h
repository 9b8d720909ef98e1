/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mockllm: an OpenAI-compatible mock model backend for tests, demos and
 * benchmarks.
 *
 * Each worker thread owns a SO_REUSEPORT listening socket, an epoll loop,
 * a timerfd with a heap of connection deadlines, and pools of buffers, so
 * threads share nothing but the statistics counters.  Connections are
 * edge-triggered: a connection runs until it would block, then waits for
 * its socket or its timer.
 */
#ifndef MOCKLLM_H
#define MOCKLLM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"
#include "http/http1.h"
#include "gen.h"
#include "timer.h"

#define MOCK_MAX_HEAD (64u * 1024)
#define MOCK_MAX_BODY (64u * 1024 * 1024)
#define MOCK_MAX_TOKENS 1000000u

struct mock_config {
	int threads;
	uint32_t ttft_ms;
	uint32_t tps;		/* tokens per second, 0 = as fast as possible */
	uint32_t tokens;	/* completion tokens per response */
	bool verbose;		/* one log line per request */
};

/* What an epoll event points at: a connection or one of a worker's fds. */
enum source_kind { SRC_CONN, SRC_LISTEN, SRC_TIMER, SRC_WAKE };
struct source {
	enum source_kind kind;
};

enum route {
	ROUTE_NONE, ROUTE_CHAT, ROUTE_TEXT, ROUTE_EMBED, ROUTE_MODELS, ROUTE_HEALTHZ, ROUTE_STATS,
	ROUTE_BEHAVE,
};

enum fault {
	FAULT_NONE,
	FAULT_RESET,		/* RST before any response */
	FAULT_RESET_MID,	/* RST after half the stream or body */
	FAULT_STALL,		/* never respond */
	FAULT_STALL_MID,	/* stop after the first stream events or half the body */
	FAULT_GARBAGE,		/* "NOT HTTP", then close */
	FAULT_CLOSE,		/* close without a response */
	FAULT_ERROR_EVENT,	/* stream: the role event, then an error event and
				 * the end; non-stream: a 500 */
	FAULT_CONTEXT_LENGTH,	/* 400 context_length_exceeded, as OpenAI answers
				 * a prompt longer than the model's window */
};

/*
 * What a request head asked for.  Copied out of the head because growing
 * the input buffer for a large body may move it; kept until the next head
 * is parsed, which never happens while a reply is in progress.
 */
struct req_info {
	enum route route;
	bool method_ok;
	bool api;		/* under /v1/: counted, and x-mock-* apply */
	bool keep_alive;
	bool chunked;
	bool expect_continue;
	int minor;
	int64_t content_length;	/* -1 when absent */
	size_t head_len;
	struct { size_t off, len; } method_at, path_at;	/* in the head, for messages */
	/* x-mock-* overrides, or the command-line defaults */
	uint32_t ttft_ms, tps, tokens, cached_tokens, reasoning_tokens;
	int status;		/* x-mock-status, 0 when absent */
	enum fault fault;
	const char *bad_header;	/* an x-mock-* header that did not parse */
};

/* Where the current request's body stands while it arrives. */
struct req_parse {
	bool head_done;
	bool continue_sent;
	struct http_chunked chunked;
	size_t body_len;	/* chunked: payload decoded so far, after the head */
	size_t raw_end;		/* chunked: input consumed so far, from the head start */
};

/* A response that outlives the request handler: delayed, streamed or stalled. */
enum reply_kind { REPLY_NONE, REPLY_DELAYED, REPLY_STREAM, REPLY_STALL };

struct reply {
	enum reply_kind kind;
	bool streaming;		/* stream headers sent, last event not yet */
	bool wait_write;	/* paused until the output buffer drains */
	bool chunked;		/* HTTP/1.1 chunked framing of the events */
	enum fault fault;	/* mid-way fault to inject at stop_event */
	uint32_t next_event, stop_event;
	uint64_t t0, ttft_ns, gap_ns;
	struct gen_completion gen;
};

enum after_flush { AFTER_NOTHING, AFTER_CLOSE, AFTER_RESET };

struct worker;

struct conn {
	struct source src;		/* first: epoll events point here */
	int fd;
	bool closed;
	bool can_read;			/* the socket may hold unread bytes */
	bool peer_closed;		/* FIN seen */
	enum after_flush after_flush;
	int status;			/* of the last response, for the log */
	struct worker *w;
	struct buf in, out;		/* pooled; released while idle */
	struct req_info req;
	struct req_parse parse;
	struct reply reply;
	struct timer timer;
	struct conn *next;		/* free list or graveyard */
	struct conn *all_next;		/* every connection the worker allocated */
};

struct worker {
	int id;
	const struct mock_config *cfg;
	int epfd, listen_fd, timer_fd, wake_fd;
	struct source listen_src, timer_src, wake_src;
	struct timer_heap timers;
	uint64_t timer_armed;		/* what timer_fd is set to, 0 = disarmed */
	struct buf_pool pool;
	struct conn *free_conns;	/* ready for reuse */
	struct conn *graveyard;		/* closed during this batch of events */
	struct conn *all;
	struct buf text;		/* scratch: unescaped request strings */
	struct buf body;		/* scratch: response bodies and stream events */
	pthread_t thread;
};

/* worker.c */
int worker_init(struct worker *w, int id, const struct mock_config *cfg, int listen_fd,
		int wake_fd);
void *worker_main(void *arg);
void worker_destroy(struct worker *w);
void worker_release_conn(struct worker *w, struct conn *c);
int worker_timer_set(struct worker *w, struct timer *t, uint64_t deadline);
void worker_timer_cancel(struct worker *w, struct timer *t);

/* conn.c */
void conn_init(struct conn *c, struct worker *w, int fd);
void conn_on_event(struct conn *c, uint32_t events);
void conn_on_timer(struct conn *c);
void conn_close(struct conn *c);
void conn_reset(struct conn *c);
const char *conn_connection_header(const struct conn *c);
int conn_out(struct conn *c, struct buf **out);
void conn_respond(struct conn *c, int status, const char *content_type, const char *extra,
		  struct str body);
void conn_respond_error(struct conn *c, int status, const char *message, const char *type,
			const char *code, const char *extra);
struct str conn_head_span(const struct conn *c, size_t off, size_t len);

/* reply.c */
void reply_stream(struct conn *c, const struct gen_completion *g);
void reply_delay(struct conn *c, const struct gen_completion *g);
void reply_stall(struct conn *c);
void reply_advance(struct conn *c);
void reply_abort(struct conn *c);

/* api.c */
void api_inspect_head(struct conn *c, const struct http_request *hr, size_t head_len);
void api_serve(struct conn *c, struct str body);

/* stats.c */
enum stat {
	STAT_REQUESTS, STAT_STREAMS_STARTED, STAT_STREAMS_COMPLETED, STAT_STREAMS_ABORTED,
	STAT_ACTIVE, STAT_AUTHORIZED, STAT_FAULTS, STAT_COUNT,
};
void stats_add(enum stat which, int64_t delta);
void stats_note_bearer(struct str token);
void stats_note_headers(const struct http_request *hr);
int stats_json(struct buf *dst);

#endif
