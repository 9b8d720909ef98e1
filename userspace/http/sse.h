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
 * Length of the first complete event in buf[0..len), including its
 * terminating blank line ("\n\n", "\r\n\r\n" or "\r\r"), or 0 when no event
 * is complete yet.  *scan is where the previous call stopped looking (start
 * it at 0, and reset it to 0 after consuming an event) so a long event that
 * arrives in many pieces is scanned once.  Lines end in CRLF, LF or a lone
 * CR; a CR that is the last byte in buf could still be half of a CRLF, so
 * an event ending there is reported once the next byte has arrived.
 */
size_t sse_next_event(const char *buf, size_t len, size_t *scan);

/*
 * The payload of the event's first "data:" line (one optional space after
 * the colon dropped, line end excluded).  Returns 0, or -ENOENT when the
 * event has no data line (comments, retry, bare event names).
 */
int sse_event_data(const char *ev, size_t len, struct str *data);

/* True when the payload is the OpenAI end marker "[DONE]". */
bool sse_data_is_done(struct str data);

#endif
