/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the HTTP/1 request head parser (http/http1.h).
 *
 * Beyond not crashing (ASan, UBSan), it checks:
 *   - a complete head's length lies within the input and max_head, and
 *     every span the parser returns lies inside that head (the one
 *     exception is the "/" an absolute-form target with an empty path
 *     becomes);
 *   - fed in pieces through http_parse_request_scan(), carrying its scan
 *     state, with every call on a fresh copy of exactly the bytes so far
 *     (the buffer moves, and a read past it traps), each call returns what
 *     the whole-head parser returns for the same bytes, and the spans of a
 *     parsed head sit at the same offsets.
 *
 * Pieces: byte by byte for short inputs, else pieces of a size chosen from
 * a hash of the input; then two pieces cut at a hashed point.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http1.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static uint64_t hash(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h;
}

static void span_inside(const char *base, size_t len, struct str s)
{
	if (s.len == 0)
		return;
	if (s.p >= base && s.p <= base + len && s.len <= (size_t)(base + len - s.p))
		return;
	CHECK(s.len == 1 && s.p[0] == '/');
}

static void check_request(const char *base, int rc, size_t max_head, size_t len,
			  const struct http_request *r)
{
	if (rc <= 0)
		return;
	CHECK((size_t)rc <= len && (size_t)rc <= max_head);
	span_inside(base, (size_t)rc, r->method_str);
	span_inside(base, (size_t)rc, r->target);
	span_inside(base, (size_t)rc, r->path);
	CHECK(r->nheaders <= HTTP_MAX_HEADERS);
	for (size_t i = 0; i < r->nheaders; i++) {
		CHECK(r->headers[i].name.len > 0);
		span_inside(base, (size_t)rc, r->headers[i].name);
		span_inside(base, (size_t)rc, r->headers[i].value);
	}
	CHECK(!(r->chunked && r->content_length >= 0));
}

/* Same span, at the same offset from each buffer (or the same static "/"). */
static void same_span(const char *a_base, struct str a, const char *b_base, struct str b)
{
	CHECK(a.len == b.len);
	if (!a.len)
		return;
	CHECK(memcmp(a.p, b.p, a.len) == 0);
	if (a.p >= a_base && b.p >= b_base)
		CHECK(a.p - a_base == b.p - b_base);
}

static void same_request(const char *a_base, const struct http_request *a, const char *b_base,
			 const struct http_request *b)
{
	same_span(a_base, a->method_str, b_base, b->method_str);
	same_span(a_base, a->target, b_base, b->target);
	same_span(a_base, a->path, b_base, b->path);
	CHECK(a->method == b->method && a->minor == b->minor && a->nheaders == b->nheaders);
	for (size_t i = 0; i < a->nheaders; i++) {
		same_span(a_base, a->headers[i].name, b_base, b->headers[i].name);
		same_span(a_base, a->headers[i].value, b_base, b->headers[i].value);
	}
	CHECK(a->content_length == b->content_length && a->chunked == b->chunked &&
	      a->keep_alive == b->keep_alive && a->expect_continue == b->expect_continue);
}

/* Feed data in prefixes of `piece` more bytes each (or cut once at `cut`). */
static void feed(const char *data, size_t size, size_t max_head, size_t piece, size_t cut)
{
	static struct http_request whole, part;
	struct http_head_scan scan = HTTP_HEAD_SCAN_INIT;
	size_t have = 0;

	for (;;) {
		size_t next = cut ? (have < cut ? cut : size) : have + piece;
		have = next < size ? next : size;
		char *copy = malloc(have ? have : 1);
		CHECK(copy);
		memcpy(copy, data, have);
		int want = http_parse_request(data, have, max_head, &whole);
		int got = http_parse_request_scan(&scan, copy, have, max_head, &part);
		CHECK(got == want);
		check_request(copy, got, max_head, have, &part);
		if (got > 0)
			same_request(data, &whole, copy, &part);
		free(copy);
		if (got != HTTP_NEED_MORE || have == size)
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_request req;
	const char *p = (const char *)data;
	uint64_t h = hash(data, size);
	size_t max_head = 64 + (size_t)(h % 4096);

	int rc = http_parse_request(p, size, max_head, &req);
	check_request(p, rc, max_head, size, &req);
	feed(p, size, max_head, size <= 512 ? 1 : 1 + (size_t)((h >> 16) % 251), 0);
	if (size > 1)
		feed(p, size, max_head, 0, 1 + (size_t)((h >> 32) % (size - 1)));
	return 0;
}
