/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server-sent events framing (text/event-stream), as OpenAI-style streams
 * use it: events separated by a blank line, payload in "data:" lines.
 */
#ifndef SLUICE_HTTP_SSE_H
#define SLUICE_HTTP_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

/*
 * Where events end in a stream that arrives in pieces, each byte looked at
 * once however the stream is cut: the splitter keeps its place inside the
 * pending event, even inside a line that is still arriving, so an event
 * (or a hostile 64 MiB line) read in a thousand pieces costs what it costs
 * read whole.
 *
 * Events are separated by a blank line; lines end in CRLF, LF or a lone
 * CR.  A CR that is the last byte so far could still be half of a CRLF, so
 * an event ending there is reported once the next byte has arrived.
 */
struct sse_splitter {
	size_t pos;		/* bytes of the pending event looked at */
	size_t line;		/* where the line being read starts */
	size_t lf, lf_to;	/* an LF at lf if lf < lf_to, else none in [pos, lf_to) */
	size_t cr_to;		/* no CR in [line, cr_to) */
	size_t max_line;	/* bytes in one line (0: no limit) */
	size_t max_event;	/* bytes in one event (0: no limit) */
	int state;
};

enum {
	SSE_NEED_MORE = 0,
	SSE_ERR_LINE = -1,	/* a line longer than max_line */
	SSE_ERR_EVENT = -2,	/* an event larger than max_event */
};

static inline void sse_splitter_init(struct sse_splitter *s, size_t max_line, size_t max_event)
{
	*s = (struct sse_splitter){ .max_line = max_line, .max_event = max_event };
}

/*
 * buf[0..len) is the pending event: the bytes passed last time and perhaps
 * more after them.  Returns the length of the event that ends in it
 * (terminating blank line included) and starts afresh, so the next call
 * passes the bytes after that event; or SSE_NEED_MORE; or SSE_ERR_* when a
 * limit is passed (a line's length leaves its terminator out, an event's
 * counts every byte).  The limit reported is the first one passed reading
 * byte by byte, so every result is the same however the stream is cut.
 */
long sse_split(struct sse_splitter *s, const char *buf, size_t len);

/*
 * The payload of the event's first "data:" line (one optional space after
 * the colon dropped, line end excluded).  Returns 0, or -ENOENT when the
 * event has no data line (comments, retry, bare event names).
 */
int sse_event_data(const char *ev, size_t len, struct str *data);

/* True when the payload is the OpenAI end marker "[DONE]". */
bool sse_data_is_done(struct str data);

#endif
