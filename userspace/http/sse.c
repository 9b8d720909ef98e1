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

size_t sse_next_event(const char *buf, size_t len, size_t *scan)
{
	/* *scan always rests at the start of a line, so resuming there
	 * loses no state. */
	size_t pos = *scan, eol, next;

	while (line_end(buf, len, pos, &eol, &next)) {
		if (eol == pos)
			return next;	/* a blank line: the event ends here */
		pos = next;
	}
	*scan = pos;
	return 0;
}

int sse_event_data(const char *ev, size_t len, struct str *data)
{
	size_t pos = 0, eol, next;

	/* The event was framed by sse_next_event(), so every line in it has
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
