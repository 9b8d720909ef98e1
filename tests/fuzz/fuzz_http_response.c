/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the HTTP/1 response head parser (http/http1.h), the
 * one that reads what backends send.
 *
 * Beyond not crashing (ASan, UBSan), it checks:
 *   - a complete head's length lies within the input and max_head, every
 *     span lies inside that head, the status is 100..599 and the framing
 *     is never both chunked and a Content-Length;
 *   - fed in pieces through http_parse_response_scan(), carrying its scan
 *     state, with every call on a fresh copy of exactly the bytes so far,
 *     each call returns what the whole-head parser returns for the same
 *     bytes, and the fields of a parsed head are the same, at the same
 *     offsets;
 *   - a head, then the rest after it, parse as the gateway does with
 *     1xx heads: one after the other from where the first ended.
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
	CHECK(s.p >= base && s.p <= base + len && s.len <= (size_t)(base + len - s.p));
}

static void check_response(const char *base, int rc, size_t max_head, size_t len,
			   const struct http_response *r)
{
	if (rc <= 0)
		return;
	CHECK((size_t)rc <= len && (size_t)rc <= max_head);
	CHECK(r->status >= 100 && r->status <= 599);
	span_inside(base, (size_t)rc, r->reason);
	CHECK(r->nheaders <= HTTP_MAX_HEADERS);
	for (size_t i = 0; i < r->nheaders; i++) {
		CHECK(r->headers[i].name.len > 0);
		span_inside(base, (size_t)rc, r->headers[i].name);
		span_inside(base, (size_t)rc, r->headers[i].value);
	}
	CHECK(!(r->chunked && r->content_length >= 0));
}

static void same_span(const char *a_base, struct str a, const char *b_base, struct str b)
{
	CHECK(a.len == b.len);
	if (!a.len)
		return;
	CHECK(memcmp(a.p, b.p, a.len) == 0 && a.p - a_base == b.p - b_base);
}

static void same_response(const char *a_base, const struct http_response *a, const char *b_base,
			  const struct http_response *b)
{
	CHECK(a->status == b->status && a->minor == b->minor && a->nheaders == b->nheaders);
	same_span(a_base, a->reason, b_base, b->reason);
	for (size_t i = 0; i < a->nheaders; i++) {
		same_span(a_base, a->headers[i].name, b_base, b->headers[i].name);
		same_span(a_base, a->headers[i].value, b_base, b->headers[i].value);
	}
	CHECK(a->content_length == b->content_length && a->chunked == b->chunked &&
	      a->keep_alive == b->keep_alive);
}

static void feed(const char *data, size_t size, size_t max_head, size_t piece, size_t cut)
{
	static struct http_response whole, part;
	struct http_head_scan scan = HTTP_HEAD_SCAN_INIT;
	size_t have = 0;

	for (;;) {
		size_t next = cut ? (have < cut ? cut : size) : have + piece;
		have = next < size ? next : size;
		char *copy = malloc(have ? have : 1);
		CHECK(copy);
		memcpy(copy, data, have);
		int want = http_parse_response(data, have, max_head, &whole);
		int got = http_parse_response_scan(&scan, copy, have, max_head, &part);
		CHECK(got == want);
		check_response(copy, got, max_head, have, &part);
		if (got > 0)
			same_response(data, &whole, copy, &part);
		free(copy);
		if (got != HTTP_NEED_MORE || have == size)
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_response resp;
	const char *p = (const char *)data;
	uint64_t h = hash(data, size);
	size_t max_head = 64 + (size_t)(h % 4096);

	int rc = http_parse_response(p, size, max_head, &resp);
	check_response(p, rc, max_head, size, &resp);
	/* Heads one after the other, as after a 1xx interim response. */
	for (size_t off = 0, n = 0; rc > 0 && n < 8; n++) {
		off += (size_t)rc;
		rc = http_parse_response(p + off, size - off, max_head, &resp);
		check_response(p + off, rc, max_head, size - off, &resp);
	}
	feed(p, size, max_head, size <= 512 ? 1 : 1 + (size_t)((h >> 16) % 251), 0);
	if (size > 1)
		feed(p, size, max_head, 0, 1 + (size_t)((h >> 32) % (size - 1)));
	return 0;
}
