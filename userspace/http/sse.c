/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server-sent events (HTML Living Standard, "event stream interpretation"):
 * lines end in CRLF, LF or a lone CR, and a blank line ends an event.
 */
#include "http/sse.h"

#include <errno.h>
#include <string.h>

/*
 * Where the line starting at buf[pos] ends: *eol is its first terminator
 * byte and *next the start of the following line.  False when the end is
 * not known yet: no terminator, or a CR as the last byte, which may still
 * be the first half of a CRLF.
 */
static bool line_end(const char *buf, size_t len, size_t pos, size_t *eol, size_t *next)
{
	if (pos >= len)
		return false;
	/* Streams end lines with LF almost always: find it with memchr, then
	 * look for an earlier CR only in the part of the line before it. */
	const char *start = buf + pos;
	const char *lf = memchr(start, '\n', len - pos);
	size_t span = lf ? (size_t)(lf - start) : len - pos;
	const char *cr = memchr(start, '\r', span);
	size_t i = pos + (cr ? (size_t)(cr - start) : span);

	if (i == len || (buf[i] == '\r' && i + 1 == len))
		return false;
	*eol = i;
	*next = i + 1 + (buf[i] == '\r' && buf[i + 1] == '\n');
	return true;
}

/* Splitter states: where the byte at pos stands in its line. */
enum {
	ST_LINE_START = 0,	/* first byte of a line */
	ST_IN_LINE,		/* inside a line that is not blank */
	ST_AFTER_CR,		/* after the CR ending a line: an LF here is its second half */
	ST_BLANK_CR,		/* after a blank line's CR: the event ends here or after an LF */
};

/*
 * The first CR or LF in buf[pos..len), or len.  Stream lines end in LF:
 * memchr finds it, and an earlier CR is looked for only in front of it.
 * Both searches remember how far they got, so no byte is searched twice.
 */
static size_t next_terminator(struct sse_splitter *s, const char *buf, size_t len, size_t pos)
{
	if (s->lf < pos)
		s->lf = s->lf_to = pos;
	if (s->lf == s->lf_to && s->lf_to < len) {
		const char *lf = memchr(buf + s->lf_to, '\n', len - s->lf_to);
		s->lf = lf ? (size_t)(lf - buf) : len;
		s->lf_to = lf ? s->lf + 1 : len;
	}
	size_t end = s->lf < s->lf_to ? s->lf : len;
	size_t from = s->cr_to > pos ? s->cr_to : pos;
	const char *cr = from < end ? memchr(buf + from, '\r', end - from) : NULL;
	s->cr_to = cr ? (size_t)(cr - buf) : end;
	return s->cr_to;
}

static long event_done(struct sse_splitter *s, size_t n)
{
	size_t max_line = s->max_line, max_event = s->max_event;
	sse_splitter_init(s, max_line, max_event);
	return max_event && n > max_event ? SSE_ERR_EVENT : (long)n;
}

/* A line passed max_line at byte `at`: unless the event passed max_event
 * at or before that byte, which then is the error.  Reporting the first
 * limit passed, byte by byte, makes the result the same however the
 * stream is cut into reads. */
static long line_too_long(const struct sse_splitter *s, size_t at)
{
	return s->max_event && s->max_event <= at ? SSE_ERR_EVENT : SSE_ERR_LINE;
}

long sse_split(struct sse_splitter *s, const char *buf, size_t len)
{
	while (s->pos < len) {
		char c = buf[s->pos];
		if (s->state == ST_BLANK_CR)
			return event_done(s, c == '\n' ? s->pos + 1 : s->pos);
		/* buf[pos] belongs to this event. */
		if (s->max_event && s->pos >= s->max_event)
			return SSE_ERR_EVENT;
		switch (s->state) {
		case ST_LINE_START:
			if (c == '\n')
				return event_done(s, s->pos + 1);	/* blank line */
			if (c == '\r') {
				s->pos++;
				s->state = ST_BLANK_CR;
				break;
			}
			s->line = s->pos;
			s->state = ST_IN_LINE;
			break;
		case ST_IN_LINE: {
			size_t t = next_terminator(s, buf, len, s->pos);
			if (s->max_line && t - s->line > s->max_line)
				return line_too_long(s, s->line + s->max_line);
			/* The line's bytes and its terminator are the event's. */
			if (s->max_event && (t < len ? t + 1 : t) > s->max_event)
				return SSE_ERR_EVENT;
			s->pos = t;
			if (t == len)
				break;
			s->pos++;
			s->state = buf[t] == '\n' ? ST_LINE_START : ST_AFTER_CR;
			break;
		}
		default:	/* ST_AFTER_CR */
			if (c == '\n')
				s->pos++;
			s->state = ST_LINE_START;
			break;
		}
	}
	return SSE_NEED_MORE;
}

int sse_event_data(const char *ev, size_t len, struct str *data)
{
	size_t pos = 0, eol, next;

	/* The event was framed by sse_split(), so every line in it has
	 * its terminator; a bare final line is read up to the end. */
	while (pos < len) {
		if (!line_end(ev, len, pos, &eol, &next)) {
			next = len;
			eol = ev[len - 1] == '\r' ? len - 1 : len;
		}
		struct str line = { ev + pos, eol - pos };

		if (str_eq_cstr(line, "data") || str_has_prefix(line, "data:")) {
			size_t skip = line.len > 5 && line.p[5] == ' ' ? 6 : 5;
			if (skip > line.len)
				skip = line.len;
			*data = (struct str){ line.p + skip, line.len - skip };
			return 0;
		}
		pos = next;
	}
	return -ENOENT;
}

bool sse_data_is_done(struct str data)
{
	return str_eq_cstr(data, "[DONE]");
}
