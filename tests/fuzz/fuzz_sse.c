/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the SSE event splitter (http/sse.h), under line and
 * event limits chosen from the input.
 *
 * Beyond not crashing (ASan, UBSan), it checks:
 *   - the events found in the whole input, taken out one after the other
 *     as the relay does, each lie inside it, are not empty, end in a blank
 *     line, respect the limits, and their data line (sse_event_data) lies
 *     inside the event;
 *   - the same input arriving in pieces (the pending bytes kept at the
 *     front of a buffer, each call on a fresh copy of exactly them, the
 *     splitter's state carried) gives the same events, in the same order,
 *     and ends the same way: the same error, or the same bytes left over
 *     (a final CR may wait for its LF: both ways alike).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/sse.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)
#define MAX_EVENTS 4096

struct result {
	size_t n;
	size_t len[MAX_EVENTS];
	long end;		/* SSE_NEED_MORE or SSE_ERR_* */
	size_t leftover;
};

static uint64_t hash(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h;
}

static void check_event(const char *ev, size_t n, size_t max_event)
{
	struct str data;

	CHECK(n > 0);
	CHECK(!max_event || n <= max_event);
	/* A blank line ends it: LF, or a CR not followed by LF in the event. */
	CHECK(ev[n - 1] == '\n' || ev[n - 1] == '\r' || n == 0);
	if (sse_event_data(ev, n, &data) == 0 && data.len)
		CHECK(data.p >= ev && data.p + data.len <= ev + n);
}

/* Take events out of data[0..size) fed `piece` bytes at a time (piece =
 * size: all at once). */
static void split(const char *data, size_t size, size_t piece, size_t max_line,
		  size_t max_event, struct result *r)
{
	struct sse_splitter s;
	size_t start = 0, have = 0;	/* pending event: data[start..have) */

	sse_splitter_init(&s, max_line, max_event);
	r->n = 0;
	r->end = SSE_NEED_MORE;
	while (have < size) {
		have = size - have < piece ? size : have + piece;
		for (;;) {
			size_t n = have - start;
			char *copy = malloc(n ? n : 1);
			CHECK(copy);
			memcpy(copy, data + start, n);
			long got = sse_split(&s, copy, n);
			if (got > 0) {
				CHECK((size_t)got <= n);
				check_event(copy, (size_t)got, max_event);
			}
			free(copy);
			if (got < 0) {
				r->end = got;
				r->leftover = 0;
				return;
			}
			if (got == 0)
				break;
			if (r->n < MAX_EVENTS)
				r->len[r->n] = (size_t)got;
			r->n++;
			start += (size_t)got;
		}
	}
	r->leftover = size - start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct result whole, part;
	const char *p = (const char *)data;
	uint64_t h = hash(data, size);
	/* 0 is no limit: a quarter of the runs each. */
	size_t max_line = (h & 3) ? (size_t)((h >> 2) % 200) + 1 : 0;
	size_t max_event = (h & 12) ? (size_t)((h >> 12) % 400) + 1 : 0;

	split(p, size, size ? size : 1, max_line, max_event, &whole);
	static const size_t pieces[] = { 1, 2, 3, 7, 64 };
	for (size_t i = 0; i < sizeof(pieces) / sizeof(*pieces); i++) {
		if (pieces[i] >= size)
			break;
		split(p, size, pieces[i], max_line, max_event, &part);
		CHECK(part.n == whole.n && part.end == whole.end && part.leftover == whole.leftover);
		size_t k = whole.n < MAX_EVENTS ? whole.n : MAX_EVENTS;
		CHECK(memcmp(part.len, whole.len, k * sizeof(*whole.len)) == 0);
	}
	return 0;
}
