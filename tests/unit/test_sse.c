/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "http/sse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Length of the first event in the NUL-terminated text, scanning afresh. */
static size_t first_event(const char *text)
{
	struct sse_splitter s;

	sse_splitter_init(&s, 0, 0);
	long n = sse_split(&s, text, strlen(text));
	assert_true(n >= 0);
	return (size_t)n;
}

static void test_event_boundaries(void **state)
{
	static const struct { const char *text; size_t want; } cases[] = {
		{ "data: a\n\n", 9 },
		{ "data: a\r\n\r\n", 11 },
		{ "data: a\r\rx", 9 },
		{ "data: a\r\r", 0 },	/* may yet be "\r\r\n" */
		{ "data: a\r\n\r\ndata: b\r\n\r\n", 11 },
		{ "data: a\n\ndata: b\n\n", 9 },
		{ "event: x\ndata: a\nid: 1\n\nnext", 24 },
		{ ": comment\n\n", 11 },
		{ "data: a\r\n\n", 10 },
		{ "data: a\n\r\n", 10 },
		{ "\n", 1 },
		{ "data: a\n", 0 },
		{ "data: a\r\n", 0 },
		{ "data: a\r\n\r", 0 },	/* the final CR may be half a CRLF */
		{ "data: a\r", 0 },
		{ "data: a", 0 },
		{ "", 0 },
		{ "data: a\nb\n", 0 },
		{ "data: {\"x\":\"a\\n\\nb\"}\n\n", 22 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		size_t got = first_event(cases[i].text);
		if (got != cases[i].want)
			fail_msg("case %zu: got %zu want %zu", i, got, cases[i].want);
	}
}

/*
 * A stream read in pieces of every size, the way a proxy reads it: append,
 * take out whole events, keep the rest.  The events and their order must
 * not depend on the piece size.
 */
static void check_stream(const char *stream, const char *const *events, size_t nevents,
			 size_t leftover)
{
	size_t n = strlen(stream);

	for (size_t piece = 1; piece <= n; piece++) {
		char buf[512];
		size_t have = 0, fed = 0, got = 0;
		struct sse_splitter s;
		long len;

		sse_splitter_init(&s, 0, 0);
		while (fed < n) {
			size_t k = n - fed < piece ? n - fed : piece;

			memcpy(buf + have, stream + fed, k);
			have += k;
			fed += k;
			while ((len = sse_split(&s, buf, have)) > 0) {
				assert_true(got < nevents);
				assert_int_equal(len, strlen(events[got]));
				assert_memory_equal(buf, events[got], (size_t)len);
				got++;
				memmove(buf, buf + len, have - (size_t)len);
				have -= (size_t)len;
			}
			assert_int_equal(len, SSE_NEED_MORE);
			assert_true(s.pos <= have);
		}
		if (got != nevents)
			fail_msg("piece %zu: %zu events, want %zu", piece, got, nevents);
		assert_int_equal(have, leftover);
	}
}

static void test_split_reads_lf(void **state)
{
	static const char *const events[] = {
		"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
		": keep-alive\n\n",
		"event: message\ndata: {\"choices\":[]}\n\n",
		"data: [DONE]\n\n",
	};
	char stream[512] = "";

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(events); i++)
		strcat(stream, events[i]);
	check_stream(stream, events, ARRAY_LEN(events), 0);
}

static void test_split_reads_crlf(void **state)
{
	static const char *const events[] = {
		"data: {\"a\":1}\r\n\r\n",
		"id: 7\r\ndata: {\"b\":2}\r\n\r\n",
		"data: [DONE]\r\n\r\n",
	};
	char stream[512] = "";

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(events); i++)
		strcat(stream, events[i]);
	check_stream(stream, events, ARRAY_LEN(events), 0);
}

/* Bare CR line ends: an event's last CR could still be the first half of
 * a CRLF, so the event completes when the next byte shows it is not. */
static void test_split_reads_cr(void **state)
{
	static const char *const events[] = { "data: x\r\r", "data: y\r\r" };

	(void)state;
	check_stream("data: x\r\rdata: y\r\r:", events, ARRAY_LEN(events), 1);
}

/*
 * A long event arriving in pieces is scanned once: the splitter's place
 * moves to the end of what it was given, even inside an unfinished line
 * (the quadratic splitter went back to the line's start on every read).
 */
static void test_scan_resumes(void **state)
{
	char buf[256];
	struct sse_splitter s;

	(void)state;
	sse_splitter_init(&s, 0, 0);
	strcpy(buf, "data: aaaa\ndata: bbbb\n");
	assert_int_equal(sse_split(&s, buf, strlen(buf)), 0);
	assert_int_equal(s.pos, strlen(buf));
	strcat(buf, "data: cc");
	assert_int_equal(sse_split(&s, buf, strlen(buf)), 0);
	assert_int_equal(s.pos, strlen(buf));
	strcat(buf, "cccc\r");
	assert_int_equal(sse_split(&s, buf, strlen(buf)), 0);
	assert_int_equal(s.pos, strlen(buf));
	strcat(buf, "\n\nmore");
	assert_int_equal(sse_split(&s, buf, strlen(buf)), strlen(buf) - 4);
	/* It starts afresh for what follows. */
	assert_int_equal(s.pos, 0);
}

/* One line of a megabyte fed a byte at a time: every byte is looked at a
 * bounded number of times, so the place only ever moves forward by what
 * was added, never back. */
static void test_long_line_linear(void **state)
{
	enum { N = 1 << 20 };
	static char buf[N + 8];
	struct sse_splitter s;

	(void)state;
	sse_splitter_init(&s, 0, 0);
	memcpy(buf, "data: ", 6);
	memset(buf + 6, 'x', N - 6);
	for (size_t len = 1; len <= N; len += 1 + len / 7) {
		assert_int_equal(sse_split(&s, buf, len), 0);
		assert_int_equal(s.pos, len);
	}
	memcpy(buf + N, "\n\n", 2);
	assert_int_equal(sse_split(&s, buf, N + 2), N + 2);
}

static void test_limits(void **state)
{
	struct sse_splitter s;
	char big[300];

	(void)state;
	memset(big, 'y', sizeof(big));
	memcpy(big, "data: ", 6);
	/* A line over max_line fails while it arrives, before its end. */
	sse_splitter_init(&s, 100, 0);
	assert_int_equal(sse_split(&s, big, 100), 0);
	assert_int_equal(sse_split(&s, big, 101), SSE_ERR_LINE);
	/* Lines at the limit are fine, terminators not counted. */
	const char *two = "data: a\r\ndata: b\n\n";
	sse_splitter_init(&s, 7, 0);
	assert_int_equal(sse_split(&s, two, strlen(two)), strlen(two));
	sse_splitter_init(&s, 6, 0);
	assert_int_equal(sse_split(&s, two, strlen(two)), SSE_ERR_LINE);
	/* An event over max_event fails, arriving or whole. */
	const char *ev = "data: a\ndata: bbbbbbbb\n\n";
	size_t n = strlen(ev);
	sse_splitter_init(&s, 0, n - 1);
	assert_int_equal(sse_split(&s, ev, n - 2), 0);
	assert_int_equal(sse_split(&s, ev, n), SSE_ERR_EVENT);
	sse_splitter_init(&s, 0, n - 1);
	assert_int_equal(sse_split(&s, ev, n), SSE_ERR_EVENT);
	sse_splitter_init(&s, 0, n);
	assert_int_equal(sse_split(&s, ev, n), n);
	/* The terminator of a line counts: an event of 3 bytes "x\x01\n"
	 * passes max_event 2 with its LF, whole or in pieces. */
	sse_splitter_init(&s, 0, 2);
	assert_int_equal(sse_split(&s, "x\x01\n", 3), SSE_ERR_EVENT);
	sse_splitter_init(&s, 0, 2);
	assert_int_equal(sse_split(&s, "x\x01\n", 2), 0);
	assert_int_equal(sse_split(&s, "x\x01\n", 3), SSE_ERR_EVENT);
	/* Both limits: the one passed first, byte by byte, whether the bytes
	 * arrive whole or in pieces (the event's 16th byte comes before the
	 * second line's 11th). */
	const char *both = "data: a\ndata: bbbbbbbbbbbbb\n\n";
	for (size_t piece = 1; piece <= strlen(both); piece++) {
		long r = 0;
		sse_splitter_init(&s, 10, 15);
		for (size_t have = piece; r == 0; have += piece)
			r = sse_split(&s, both, have < strlen(both) ? have : strlen(both));
		if (r != SSE_ERR_EVENT)
			fail_msg("piece %zu: %ld, want the event limit", piece, r);
	}
}

static void test_event_data(void **state)
{
	static const struct { const char *ev; int rc; const char *data; } cases[] = {
		{ "data: {\"a\":1}\n\n", 0, "{\"a\":1}" },
		{ "data:{\"a\":1}\n\n", 0, "{\"a\":1}" },
		{ "data:  two spaces\n\n", 0, " two spaces" },
		{ "data: [DONE]\r\n\r\n", 0, "[DONE]" },
		{ "data: x\r\r", 0, "x" },
		{ "event: delta\nid: 3\ndata: first\ndata: second\n\n", 0, "first" },
		{ "data\n\n", 0, "" },
		{ "data:\n\n", 0, "" },
		{ "data: \n\n", 0, "" },
		{ "data: tail", 0, "tail" },
		{ "data: tail\r", 0, "tail" },
		{ ": comment\n\n", -ENOENT, NULL },
		{ "retry: 1000\n\n", -ENOENT, NULL },
		{ "event: ping\n\n", -ENOENT, NULL },
		{ "database: x\n\n", -ENOENT, NULL },
		{ " data: x\n\n", -ENOENT, NULL },
		{ "\n", -ENOENT, NULL },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct str data = STR_NULL;
		int rc = sse_event_data(cases[i].ev, strlen(cases[i].ev), &data);

		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d", i, rc);
		if (rc == 0 && !str_eq_cstr(data, cases[i].data))
			fail_msg("case %zu: data '%.*s'", i, (int)data.len, data.p);
	}
}

static void test_done(void **state)
{
	(void)state;
	assert_true(sse_data_is_done(str_from("[DONE]")));
	assert_false(sse_data_is_done(str_from("[DONE] ")));
	assert_false(sse_data_is_done(str_from("[done]")));
	assert_false(sse_data_is_done(str_from("")));
	assert_false(sse_data_is_done(str_from("{\"choices\":[]}")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_boundaries),
		cmocka_unit_test(test_split_reads_lf),
		cmocka_unit_test(test_split_reads_crlf),
		cmocka_unit_test(test_split_reads_cr),
		cmocka_unit_test(test_scan_resumes),
		cmocka_unit_test(test_long_line_linear),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_event_data),
		cmocka_unit_test(test_done),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
