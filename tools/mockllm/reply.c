/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replies that outlive their request handler: paced streams, non-stream
 * responses held back by pacing, and stalls.  Pacing runs on the worker's
 * timer heap; a reply never sleeps.
 */
#include "mockllm.h"

#include <string.h>

#include "core/clock.h"
#include "fmt.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define STALL_MID_EVENTS 2
#define STREAM_HIGH_WATER (256u * 1024)

static const char stream_head[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";

static void reply_begin(struct conn *c, enum reply_kind kind, const struct gen_completion *g)
{
	struct reply *r = &c->reply;

	*r = (struct reply){
		.kind = kind,
		.t0 = clock_mono_ns(),
		.ttft_ns = c->req.ttft_ms * NS_PER_MS,
		.gap_ns = c->req.tps ? NS_PER_S / c->req.tps : 0,
		.gen = *g,
	};
	stats_add(STAT_ACTIVE, 1);
}

static void reply_end(struct conn *c)
{
	worker_timer_cancel(c->w, &c->timer);
	c->reply.kind = REPLY_NONE;
	c->reply.streaming = false;
	c->reply.wait_write = false;
	stats_add(STAT_ACTIVE, -1);
}

void reply_abort(struct conn *c)
{
	if (c->reply.streaming)
		stats_add(STAT_STREAMS_ABORTED, 1);
	reply_end(c);
}

/* Never answer; only the client closing ends it.  A stream that stalls
 * keeps its `streaming` mark so that close counts as an abort. */
void reply_stall(struct conn *c)
{
	if (c->reply.kind == REPLY_NONE)
		stats_add(STAT_ACTIVE, 1);
	worker_timer_cancel(c->w, &c->timer);
	c->reply.kind = REPLY_STALL;
	c->reply.wait_write = false;
}

static void schedule(struct conn *c, uint64_t deadline)
{
	if (worker_timer_set(c->w, &c->timer, deadline))
		conn_close(c);
}

/* When the last token would have been generated. */
static uint64_t completion_due(const struct reply *r)
{
	uint32_t n = r->gen.completion_tokens;

	return r->t0 + r->ttft_ns + (n > 1 ? (uint64_t)(n - 1) * r->gap_ns : 0);
}

void reply_delay(struct conn *c, const struct gen_completion *g)
{
	reply_begin(c, REPLY_DELAYED, g);
	schedule(c, completion_due(&c->reply));
}

static void delayed_fire(struct conn *c)
{
	struct gen_completion g = c->reply.gen;
	struct buf *body = &c->w->body;

	reply_end(c);
	buf_reset(body);
	if (gen_completion_body(&g, body)) {
		conn_close(c);
		return;
	}
	conn_respond(c, 200, "application/json", "", buf_str(body));
}

/* Frame one SSE event "data: <payload>\n\n", as its own HTTP chunk. */
static int stream_write(struct conn *c, struct str payload)
{
	struct buf *out;
	size_t len = payload.len + 8;	/* "data: " and "\n\n" */
	int err = conn_out(c, &out);

	if (err)
		return err;
	if (c->reply.chunked) {
		err |= buf_append_hex(out, len);
		err |= fmt_lit(out, "\r\n");
	}
	err |= buf_append(out, "data: ", 6);
	err |= buf_append_str(out, payload);
	err |= buf_append(out, c->reply.chunked ? "\n\n\r\n" : "\n\n", c->reply.chunked ? 4 : 2);
	return err;
}

typedef int (*chunk_builder)(const struct gen_completion *g, struct buf *dst);

static int stream_chunk(struct conn *c, chunk_builder build)
{
	struct buf *body = &c->w->body;

	buf_reset(body);
	int err = build(&c->reply.gen, body);
	return err ? err : stream_write(c, buf_str(body));
}

static int stream_event(struct conn *c, uint32_t event)
{
	struct buf *body = &c->w->body;

	buf_reset(body);
	int err = gen_chunk_event(&c->reply.gen, event, body);
	return err ? err : stream_write(c, buf_str(body));
}

/* Finish chunk, usage chunk if asked for, the end marker, the last chunk. */
static void stream_finish(struct conn *c)
{
	struct buf *out;
	int err = stream_chunk(c, gen_chunk_finish);

	if (!err && c->reply.gen.include_usage)
		err = stream_chunk(c, gen_chunk_usage);
	err = err ? err : stream_write(c, STR_LIT("[DONE]"));
	if (!err && c->reply.chunked)
		err = conn_out(c, &out);
	if (!err && c->reply.chunked)
		err = buf_append(out, "0\r\n\r\n", 5);
	if (err) {
		conn_close(c);
		return;
	}
	c->reply.streaming = false;
	stats_add(STAT_STREAMS_COMPLETED, 1);
	reply_end(c);
	if (!c->req.keep_alive)
		c->after_flush = AFTER_CLOSE;
}

static const char error_event[] =
	"{\"error\":{\"message\":\"mock error event\",\"type\":\"server_error\","
	"\"param\":null,\"code\":\"mock_error\"}}";

/* An error inside a 200 stream, as providers send one, then the end. */
static void stream_error_event(struct conn *c)
{
	struct buf *out;
	int err = stream_write(c, STR_LIT(error_event));

	if (!err && c->reply.chunked && !(err = conn_out(c, &out)))
		err = buf_append(out, "0\r\n\r\n", 5);
	if (err) {
		conn_close(c);
		return;
	}
	c->reply.streaming = false;
	reply_end(c);
	if (!c->req.keep_alive)
		c->after_flush = AFTER_CLOSE;
}

static void stream_fault(struct conn *c)
{
	if (c->reply.fault == FAULT_ERROR_EVENT) {
		stream_error_event(c);
		return;
	}
	if (c->reply.fault == FAULT_STALL_MID) {
		reply_stall(c);
		return;
	}
	/* reset-mid-stream: not a client abort, so not counted as one. */
	c->reply.streaming = false;
	reply_end(c);
	c->after_flush = AFTER_RESET;
}

static uint64_t event_due(const struct reply *r, uint32_t event)
{
	return r->t0 + r->ttft_ns + (uint64_t)gen_event_token(&r->gen, event) * r->gap_ns;
}

/*
 * Emit every event that is due.  Events due together go out in one write;
 * then the reply waits for the timer of the next one, or for the socket to
 * drain when a fast stream got ahead of the client.
 */
static void stream_advance(struct conn *c)
{
	struct reply *r = &c->reply;
	uint64_t now = clock_mono_ns();

	r->wait_write = false;
	while (r->next_event < r->stop_event) {
		uint64_t due = event_due(r, r->next_event);
		if (due > now) {
			schedule(c, due);
			return;
		}
		if (stream_event(c, r->next_event)) {
			conn_close(c);
			return;
		}
		r->next_event++;
		if (buf_used(&c->out) >= STREAM_HIGH_WATER) {
			r->wait_write = true;
			return;
		}
	}
	if (r->fault != FAULT_NONE)
		stream_fault(c);
	else
		stream_finish(c);
}

/* Where an injected fault cuts the stream, in events. */
static uint32_t stream_stop_event(const struct reply *r)
{
	uint32_t events = gen_content_events(&r->gen);
	uint32_t stop = events;

	if (r->fault == FAULT_STALL_MID)
		stop = STALL_MID_EVENTS;
	else if (r->fault == FAULT_RESET_MID)
		stop = r->gen.completion_tokens / 2 + (r->gen.kind == GEN_CHAT);
	else if (r->fault == FAULT_ERROR_EVENT)
		stop = r->gen.kind == GEN_CHAT;	/* the role-only event */
	return stop < events ? stop : events;
}

void reply_stream(struct conn *c, const struct gen_completion *g)
{
	struct reply *r = &c->reply;
	struct buf *out;

	reply_begin(c, REPLY_STREAM, g);
	r->streaming = true;
	r->fault = c->req.fault == FAULT_STALL_MID || c->req.fault == FAULT_RESET_MID ||
		   c->req.fault == FAULT_ERROR_EVENT ? c->req.fault : FAULT_NONE;
	r->stop_event = stream_stop_event(r);
	/* HTTP/1.0 has no chunked coding: the end of the stream is the close. */
	r->chunked = c->req.minor >= 1;
	if (!r->chunked)
		c->req.keep_alive = false;
	stats_add(STAT_STREAMS_STARTED, 1);
	c->status = 200;
	int err = conn_out(c, &out);
	if (!err)
		err = buf_printf(out, "%s%s%s\r\n", stream_head,
				 r->chunked ? "Transfer-Encoding: chunked\r\n" : "",
				 conn_connection_header(c));
	if (err) {
		conn_close(c);
		return;
	}
	stream_advance(c);
}

void reply_advance(struct conn *c)
{
	switch (c->reply.kind) {
	case REPLY_STREAM:
		stream_advance(c);
		break;
	case REPLY_DELAYED:
		delayed_fire(c);
		break;
	case REPLY_NONE:
	case REPLY_STALL:
		break;
	}
}
