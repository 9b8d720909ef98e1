/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http1.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_HEAD 8192

static int req_parse(const char *text, struct http_request *req)
{
	return http_parse_request(text, strlen(text), MAX_HEAD, req);
}

static int resp_parse(const char *text, struct http_response *resp)
{
	return http_parse_response(text, strlen(text), MAX_HEAD, resp);
}

/* ---- requests ---- */

static void test_request_basic(void **state)
{
	const char *text = "GET /v1/models?limit=2 HTTP/1.1\r\n"
			   "Host: localhost:8080\r\n"
			   "User-Agent:   curl/8.0  \r\n"
			   "Accept:\r\n"
			   "X-Tab:\tv a l\t\r\n"
			   "\r\n"
			   "BODY";
	struct http_request req;

	(void)state;
	assert_int_equal(req_parse(text, &req), (int)(strlen(text) - 4));
	assert_int_equal(req.method, HTTP_GET);
	assert_true(str_eq_cstr(req.method_str, "GET"));
	assert_true(str_eq_cstr(req.target, "/v1/models?limit=2"));
	assert_true(str_eq_cstr(req.path, "/v1/models"));
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.nheaders, 4);
	assert_true(str_eq_cstr(req.headers[0].name, "Host"));
	assert_true(str_eq_cstr(req.headers[0].value, "localhost:8080"));
	assert_true(str_eq_cstr(req.headers[1].value, "curl/8.0"));
	assert_true(str_eq_cstr(req.headers[2].name, "Accept"));
	assert_int_equal(req.headers[2].value.len, 0);
	assert_true(str_eq_cstr(req.headers[3].value, "v a l"));
	assert_int_equal(req.content_length, -1);
	assert_false(req.chunked);
	assert_true(req.keep_alive);
	assert_false(req.expect_continue);
	/* Spans point into the caller's buffer. */
	assert_ptr_equal(req.target.p, text + 4);
}

static void test_request_methods(void **state)
{
	static const struct { const char *m; enum http_method want; } cases[] = {
		{ "GET", HTTP_GET }, { "HEAD", HTTP_HEAD }, { "POST", HTTP_POST },
		{ "PUT", HTTP_PUT }, { "DELETE", HTTP_DELETE }, { "OPTIONS", HTTP_OPTIONS },
		{ "PATCH", HTTP_OTHER }, { "get", HTTP_OTHER }, { "X-CUSTOM!", HTTP_OTHER },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char text[128];
		struct http_request req;

		snprintf(text, sizeof(text), "%s / HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].m);
		assert_true(req_parse(text, &req) > 0);
		assert_int_equal(req.method, cases[i].want);
		assert_true(str_eq_cstr(req.method_str, cases[i].m));
	}
}

static void test_request_body_framing(void **state)
{
	struct http_request req;

	(void)state;
	assert_true(req_parse("POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n"
			      "Content-Length: 42\r\n\r\n", &req) > 0);
	assert_int_equal(req.content_length, 42);
	assert_false(req.chunked);

	assert_true(req_parse("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n", &req) > 0);
	assert_int_equal(req.content_length, 0);

	/* Repeated identical lengths are one length. */
	assert_true(req_parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n"
			      "Content-Length: 7\r\n\r\n", &req) > 0);
	assert_int_equal(req.content_length, 7);

	assert_true(req_parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n",
			      &req) > 0);
	assert_int_equal(req.content_length, INT64_MAX);

	assert_true(req_parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
			      &req) > 0);
	assert_true(req.chunked);
	assert_int_equal(req.content_length, -1);
	assert_true(req_parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD \r\n\r\n",
			      &req) > 0);
	assert_true(req.chunked);
	/* Empty list elements are allowed by the list syntax. */
	assert_true(req_parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked,\r\n\r\n",
			      &req) > 0);
	assert_true(req.chunked);

	assert_true(req_parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n"
			      "Content-Length: 1\r\n\r\n", &req) > 0);
	assert_true(req.expect_continue);
}

static void test_request_keep_alive(void **state)
{
	static const struct { const char *text; bool want; } cases[] = {
		{ "GET / HTTP/1.1\r\nHost: h\r\n\r\n", true },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", false },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true },
		{ "GET / HTTP/1.0\r\n\r\n", false },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct http_request req;

		assert_true(req_parse(cases[i].text, &req) > 0);
		if (req.keep_alive != cases[i].want)
			fail_msg("case %zu: keep_alive %d", i, req.keep_alive);
	}
}

static void test_request_line_endings(void **state)
{
	struct http_request req;
	const char *lf = "GET / HTTP/1.1\nHost: h\nX: y\n\nrest";
	const char *mixed = "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\nrest";
	/* Blank lines before the request line are skipped and counted. */
	const char *lead = "\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";

	(void)state;
	assert_int_equal(req_parse(lf, &req), (int)strlen(lf) - 4);
	assert_int_equal(req.nheaders, 2);
	assert_true(str_eq_cstr(req.headers[1].value, "y"));
	assert_int_equal(req_parse(mixed, &req), (int)strlen(mixed) - 4);
	assert_int_equal(req_parse(lead, &req), (int)strlen(lead));
	assert_true(str_eq_cstr(req.path, "/"));
}

/* Every proper prefix of a valid head needs more; never an error. */
static void test_request_incomplete(void **state)
{
	const char *text = "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\n"
			   "Content-Length: 2\r\n\r\n";
	size_t n = strlen(text);
	struct http_request req;

	(void)state;
	for (size_t i = 0; i < n; i++)
		if (http_parse_request(text, i, MAX_HEAD, &req) != HTTP_NEED_MORE)
			fail_msg("prefix of %zu bytes did not need more", i);
	assert_int_equal(http_parse_request(text, n, MAX_HEAD, &req), (int)n);
	assert_int_equal(http_parse_request("", 0, MAX_HEAD, &req), HTTP_NEED_MORE);
}

/* Each of these is a framing or syntax trick; all must be refused. */
static void test_request_smuggling(void **state)
{
	static const struct { const char *text; int want; } cases[] = {
		/* CL and TE together, in either order */
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HTTP_ERR_BAD },
		/* differing or malformed Content-Length */
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", HTTP_ERR_BAD },
		/* transfer-codings */
		/* RFC 9112 6.1/6.3: chunked not final is unknowable framing
		 * (400); an unknown coding before a final chunked is 501. */
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP_ERR_UNSUPPORTED },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked, br\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ERR_BAD },
		/* obs-fold and whitespace games */
		{ "POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", HTTP_ERR_BAD },
		{ "POST / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n", HTTP_ERR_BAD },
		/* names and values */
		{ "GET / HTTP/1.1\r\nHost: h\r\nBad\x01Name: x\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\r\nHost: h\r\nBad(Name): x\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\r\nHost: h\r\nX: a\rContent-Length: 5\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\r\nHost: h\r\n\r\r\n\r\n", HTTP_ERR_BAD },
		/* request line */
		{ "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ " GET / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "GET /\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / http/1.1\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.11\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\rHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_ERR_BAD },
		{ "\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\n\n", HTTP_ERR_BAD },
		/* Host */
		{ "GET / HTTP/1.1\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HTTP_ERR_BAD },
		{ "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", HTTP_ERR_BAD },
		/* versions */
		{ "GET / HTTP/2.0\r\nHost: h\r\n\r\n", HTTP_ERR_VERSION },
		{ "GET / HTTP/0.9\r\nHost: h\r\n\r\n", HTTP_ERR_VERSION },
		{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTP_ERR_VERSION },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct http_request req;
		int rc = req_parse(cases[i].text, &req);

		if (rc != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, rc, cases[i].want);
	}
}

static void test_request_too_large(void **state)
{
	char text[8192];
	struct http_request req;
	size_t n;

	(void)state;
	/* No blank line within max_head bytes. */
	n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: h\r\nX: %0200d\r\n", 0);
	assert_int_equal(http_parse_request(text, n, 64, &req), HTTP_ERR_TOO_LARGE);
	assert_int_equal(http_parse_request(text, 63, 64, &req), HTTP_NEED_MORE);
	/* A complete head one byte over the limit, and exactly at it. */
	n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_int_equal(http_parse_request(text, n, n - 1, &req), HTTP_ERR_TOO_LARGE);
	assert_int_equal(http_parse_request(text, n, n, &req), (int)n);
	/* A request line with no end at all. */
	memset(text, 'A', sizeof(text));
	assert_int_equal(http_parse_request(text, sizeof(text), 4096, &req), HTTP_ERR_TOO_LARGE);

	/* HTTP_MAX_HEADERS fit; one more does not. */
	n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 1; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "X-%d: %d\r\n", i, i);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\r\n");
	assert_int_equal(http_parse_request(text, n, sizeof(text), &req), (int)n);
	assert_int_equal(req.nheaders, HTTP_MAX_HEADERS);
	n -= 2;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "X-last: 1\r\n\r\n");
	assert_int_equal(http_parse_request(text, n, sizeof(text), &req), HTTP_ERR_TOO_LARGE);
}

/* ---- responses ---- */

static void test_response_basic(void **state)
{
	const char *text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			   "Content-Length: 12\r\n\r\n{\"ok\":true}\n";
	struct http_response resp;

	(void)state;
	assert_int_equal(resp_parse(text, &resp), (int)strlen(text) - 12);
	assert_int_equal(resp.status, 200);
	assert_true(str_eq_cstr(resp.reason, "OK"));
	assert_int_equal(resp.minor, 1);
	assert_int_equal(resp.nheaders, 2);
	assert_int_equal(resp.content_length, 12);
	assert_false(resp.chunked);
	assert_true(resp.keep_alive);

	assert_true(resp_parse("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n", &resp) > 0);
	assert_int_equal(resp.status, 429);
	assert_true(str_eq_cstr(resp.reason, "Too Many Requests"));
	assert_int_equal(resp.content_length, -1);

	assert_true(resp_parse("HTTP/1.1 204 \r\n\r\n", &resp) > 0);
	assert_int_equal(resp.status, 204);
	assert_int_equal(resp.reason.len, 0);
	assert_true(resp_parse("HTTP/1.1 200\r\n\r\n", &resp) > 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.reason.len, 0);

	assert_true(resp_parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			       "Connection: close\r\n\r\n", &resp) > 0);
	assert_true(resp.chunked);
	assert_false(resp.keep_alive);
	assert_true(resp_parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", &resp) > 0);
	assert_false(resp.keep_alive);
	assert_int_equal(resp.minor, 0);
	assert_true(resp_parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", &resp) > 0);
	assert_true(resp.keep_alive);
	assert_true(resp_parse("HTTP/1.1 100 Continue\n\n", &resp) > 0);
	assert_int_equal(resp.status, 100);
}

static void test_response_invalid(void **state)
{
	static const struct { const char *text; int want; } cases[] = {
		{ "HTTP/1.1 2000 OK\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 20 OK\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 099 X\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 2x0 OK\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1  200 OK\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 200 O\x01K\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1\r\n\r\n", HTTP_ERR_BAD },
		{ "ICY 200 OK\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/2 200\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/2.0 200 OK\r\n\r\n", HTTP_ERR_VERSION },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP_ERR_UNSUPPORTED },
		/* RFC 9110 15: status codes are 100..599. */
		{ "HTTP/1.1 600 Odd\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 999 Odd\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", HTTP_ERR_BAD },
		{ "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", HTTP_ERR_BAD },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct http_response resp;
		int rc = resp_parse(cases[i].text, &resp);

		if (rc != cases[i].want)
			fail_msg("case %zu: got %d want %d", i, rc, cases[i].want);
	}
}

static void test_response_incomplete(void **state)
{
	const char *text = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
	size_t n = strlen(text);
	struct http_response resp;

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(http_parse_response(text, i, MAX_HEAD, &resp), HTTP_NEED_MORE);
	assert_int_equal(http_parse_response(text, n, MAX_HEAD, &resp), (int)n);
	assert_int_equal(http_parse_response(text, n, 16, &resp), HTTP_ERR_TOO_LARGE);
}

/* ---- helpers ---- */

/* ---- heads that arrive in pieces ---- */

static const char *const scan_heads[] = {
	"GET /v1/models?limit=2 HTTP/1.1\r\nHost: h\r\nUser-Agent:  x  \r\n\r\nBODY",
	"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n{\"a\":\"b\"}xx",
	"POST /x HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
	"\r\n\r\n\nGET / HTTP/1.0\r\n\r\n",
	"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\n X: folded\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n",
	("GET / HTTP/1.1\r\nHost: h\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"),
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 204\r\n\r\n",
	"HTTP/1.0 200 OK\nContent-Length: 5\n\nhello",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 20 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX\r\n\r\n",
	"garbage",
	"",
};

static void expect_same_span(const char *a_base, struct str a, const char *b_base, struct str b,
			     const char *what, size_t i)
{
	if (a.len != b.len || (a.len && (a.p - a_base != b.p - b_base || memcmp(a.p, b.p, a.len))))
		fail_msg("head %zu: %s differs fed in pieces", i, what);
}

static void expect_same_headers(const char *a_base, const struct http_header *a,
				const char *b_base, const struct http_header *b, size_t n, size_t i)
{
	for (size_t k = 0; k < n; k++) {
		expect_same_span(a_base, a[k].name, b_base, b[k].name, "header name", i);
		expect_same_span(a_base, a[k].value, b_base, b[k].value, "header value", i);
	}
}

/* Feed text[0..n) in pieces of `piece` bytes, each call on a fresh copy
 * of everything so far (the buffer may move between calls): the result
 * and every span must be what parsing the same bytes whole gives. */
static void check_request_in_pieces(size_t i, const char *text, size_t piece, size_t max_head)
{
	size_t n = strlen(text);
	struct http_request whole, part;
	struct http_head_scan scan = HTTP_HEAD_SCAN_INIT;
	char *copy = NULL;
	int want = 0, got = HTTP_NEED_MORE;

	for (size_t have = piece < n ? piece : n; ; have = have + piece < n ? have + piece : n) {
		free(copy);
		copy = malloc(have + 1);
		assert_non_null(copy);
		memcpy(copy, text, have);
		want = http_parse_request(text, have, max_head, &whole);
		got = http_parse_request_scan(&scan, copy, have, max_head, &part);
		if (got != want)
			fail_msg("head %zu piece %zu at %zu bytes: %d fed in pieces, %d whole",
				 i, piece, have, got, want);
		if (got != HTTP_NEED_MORE || have == n)
			break;
	}
	if (got > 0) {
		expect_same_span(text, whole.method_str, copy, part.method_str, "method", i);
		expect_same_span(text, whole.target, copy, part.target, "target", i);
		expect_same_span(text, whole.path, copy, part.path, "path", i);
		assert_int_equal(part.method, whole.method);
		assert_int_equal(part.minor, whole.minor);
		assert_int_equal(part.nheaders, whole.nheaders);
		expect_same_headers(text, whole.headers, copy, part.headers, whole.nheaders, i);
		assert_true(part.content_length == whole.content_length);
		assert_int_equal(part.chunked, whole.chunked);
		assert_int_equal(part.keep_alive, whole.keep_alive);
		assert_int_equal(part.expect_continue, whole.expect_continue);
	}
	free(copy);
}

static void check_response_in_pieces(size_t i, const char *text, size_t piece, size_t max_head)
{
	size_t n = strlen(text);
	struct http_response whole, part;
	struct http_head_scan scan = HTTP_HEAD_SCAN_INIT;
	char *copy = NULL;
	int want = 0, got = HTTP_NEED_MORE;

	for (size_t have = piece < n ? piece : n; ; have = have + piece < n ? have + piece : n) {
		free(copy);
		copy = malloc(have + 1);
		assert_non_null(copy);
		memcpy(copy, text, have);
		want = http_parse_response(text, have, max_head, &whole);
		got = http_parse_response_scan(&scan, copy, have, max_head, &part);
		if (got != want)
			fail_msg("head %zu piece %zu at %zu bytes: %d fed in pieces, %d whole",
				 i, piece, have, got, want);
		if (got != HTTP_NEED_MORE || have == n)
			break;
	}
	if (got > 0) {
		assert_int_equal(part.status, whole.status);
		expect_same_span(text, whole.reason, copy, part.reason, "reason", i);
		assert_int_equal(part.minor, whole.minor);
		assert_int_equal(part.nheaders, whole.nheaders);
		expect_same_headers(text, whole.headers, copy, part.headers, whole.nheaders, i);
		assert_true(part.content_length == whole.content_length);
		assert_int_equal(part.chunked, whole.chunked);
		assert_int_equal(part.keep_alive, whole.keep_alive);
	}
	free(copy);
}

static void test_heads_in_pieces_parse_as_whole(void **state)
{
	static const size_t pieces[] = { 1, 2, 3, 5, 7, 16, 64, 4096 };
	static const size_t limits[] = { MAX_HEAD, 40, 1 };

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(scan_heads); i++)
		for (size_t p = 0; p < ARRAY_LEN(pieces); p++)
			for (size_t l = 0; l < ARRAY_LEN(limits); l++) {
				check_request_in_pieces(i, scan_heads[i], pieces[p], limits[l]);
				check_response_in_pieces(i, scan_heads[i], pieces[p], limits[l]);
			}
}

/* 65 headers fed a byte at a time hit the header count exactly as whole. */
static void test_heads_in_pieces_header_count(void **state)
{
	char text[4096] = "GET / HTTP/1.1\r\nHost: h\r\n";

	(void)state;
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "X-%d: v\r\n", i);
	strcat(text, "\r\n");
	check_request_in_pieces(0, text, 1, MAX_HEAD);
	check_response_in_pieces(0, text, 1, MAX_HEAD);
}

/* A long header line trickled a byte at a time is searched once: the
 * scan's place only moves forward, to the end of what it was given. */
static void test_head_scan_is_linear(void **state)
{
	enum { N = 60000 };
	static char text[N + 64];
	struct http_head_scan scan = HTTP_HEAD_SCAN_INIT;
	struct http_request req;

	(void)state;
	strcpy(text, "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nX-Long: ");
	size_t start = strlen(text);
	memset(text + start, 'a', N - start);
	for (size_t len = start + 1; len <= N; len++) {
		assert_int_equal(http_parse_request_scan(&scan, text, len, 65536, &req),
				 HTTP_NEED_MORE);
		assert_int_equal(scan.lf_from, len);
		assert_int_equal(scan.lines, 2);
	}
	memcpy(text + N, "\r\n\r\n", 4);
	assert_int_equal(http_parse_request_scan(&scan, text, N + 4, 65536, &req), N + 4);
	assert_int_equal(req.nheaders, 2);
}

static void test_find_header(void **state)
{
	struct http_request req;
	const struct http_header *h;

	(void)state;
	assert_true(req_parse("GET / HTTP/1.1\r\nHost: h\r\nX-Id: 1\r\nx-id: 2\r\n\r\n", &req) > 0);
	h = http_find_header(req.headers, req.nheaders, "x-ID");
	assert_non_null(h);
	assert_true(str_eq_cstr(h->value, "1"));
	assert_null(http_find_header(req.headers, req.nheaders, "X-I"));
	assert_null(http_find_header(req.headers, req.nheaders, "X-Idd"));
	assert_null(http_find_header(req.headers, 0, "Host"));
}

static void test_hop_headers(void **state)
{
	static const char *const hop[] = {
		"Connection", "keep-alive", "Proxy-Authorization", "PROXY-AUTHENTICATE",
		"Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
		"Content-Length", "host",
	};
	static const char *const end_to_end[] = {
		"Content-Type", "Authorization", "Accept", "X-Connection", "Hosts",
		"Proxy", "Trailers", "T", "", "Upgrade-Insecure-Requests",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(hop); i++)
		if (!http_is_hop_header(str_from(hop[i])))
			fail_msg("%s should be hop-by-hop", hop[i]);
	for (size_t i = 0; i < ARRAY_LEN(end_to_end); i++)
		if (http_is_hop_header(str_from(end_to_end[i])))
			fail_msg("%s should be forwarded", end_to_end[i]);
}

/* RFC 9110 7.6.1: the fields a Connection header names are hop-by-hop. */
static void test_connection_listed_headers(void **state)
{
	const char *text = "HTTP/1.1 200 OK\r\n"
			   "Connection: keep-alive, X-Hop-A\r\n"
			   "X-Hop-A: 1\r\n"
			   "connection:x-hop-b ,, close\r\n"
			   "X-Hop-B: 2\r\n"
			   "X-Hop: 3\r\n"
			   "\r\n";
	struct http_response resp;
	const struct http_header *conn[HTTP_MAX_CONNECTION_HEADERS];

	(void)state;
	assert_true(resp_parse(text, &resp) > 0);
	size_t n = http_connection_headers(resp.headers, resp.nheaders, conn,
					   HTTP_MAX_CONNECTION_HEADERS);
	assert_int_equal(n, 2);
	assert_true(http_connection_lists(conn, n, str_from("x-hop-a")));
	assert_true(http_connection_lists(conn, n, str_from("X-HOP-B")));
	assert_true(http_connection_lists(conn, n, str_from("Keep-Alive")));
	assert_false(http_connection_lists(conn, n, str_from("X-Hop")));
	assert_false(http_connection_lists(conn, n, str_from("X-Hop-")));
	assert_false(http_connection_lists(conn, n, str_from("")));
	assert_false(http_connection_lists(conn, 0, str_from("x-hop-a")));
}

/* RFC 9112 3.2.2: absolute-form targets are accepted; what routes is
 * their path and query. */
static void test_request_absolute_form(void **state)
{
	static const struct { const char *line; const char *target; const char *path; } cases[] = {
		{ "POST http://gw.example/v1/chat/completions HTTP/1.1",
		  "/v1/chat/completions", "/v1/chat/completions" },
		{ "GET HTTPS://gw.example:8443/v1/models?limit=2 HTTP/1.1",
		  "/v1/models?limit=2", "/v1/models" },
		{ "GET http://gw.example HTTP/1.1", "/", "/" },
		{ "GET http://gw.example?x=1 HTTP/1.1", "/", "/" },
		{ "GET http://user@gw.example/healthz HTTP/1.1", "/healthz", "/healthz" },
		{ "GET ftp://gw.example/healthz HTTP/1.1", "ftp://gw.example/healthz",
		  "ftp://gw.example/healthz" },
		{ "OPTIONS * HTTP/1.1", "*", "*" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char text[256];
		struct http_request req;
		snprintf(text, sizeof(text), "%s\r\nHost: h\r\n\r\n", cases[i].line);
		if (req_parse(text, &req) != (int)strlen(text))
			fail_msg("case %zu not parsed", i);
		if (!str_eq_cstr(req.target, cases[i].target) || !str_eq_cstr(req.path, cases[i].path))
			fail_msg("case %zu: target '%.*s' path '%.*s'", i, (int)req.target.len,
				 req.target.p, (int)req.path.len, req.path.p);
	}
}

static void test_reason(void **state)
{
	(void)state;
	assert_string_equal(http_reason(100), "Continue");
	assert_string_equal(http_reason(200), "OK");
	assert_string_equal(http_reason(204), "No Content");
	assert_string_equal(http_reason(400), "Bad Request");
	assert_string_equal(http_reason(404), "Not Found");
	assert_string_equal(http_reason(405), "Method Not Allowed");
	assert_string_equal(http_reason(408), "Request Timeout");
	assert_string_equal(http_reason(413), "Content Too Large");
	assert_string_equal(http_reason(429), "Too Many Requests");
	assert_string_equal(http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(http_reason(499), "Client Closed Request");
	assert_string_equal(http_reason(500), "Internal Server Error");
	assert_string_equal(http_reason(501), "Not Implemented");
	assert_string_equal(http_reason(502), "Bad Gateway");
	assert_string_equal(http_reason(503), "Service Unavailable");
	assert_string_equal(http_reason(504), "Gateway Timeout");
	assert_string_equal(http_reason(505), "HTTP Version Not Supported");
	assert_string_equal(http_reason(299), "Unknown");
	assert_string_equal(http_reason(0), "Unknown");
	assert_string_equal(http_reason(-1), "Unknown");
}

/* ---- chunked bodies ---- */

#define DECODE_MAX 65536

struct decoded {
	int rc;
	size_t out_len;
	size_t used;		/* input bytes consumed in total */
	char out[DECODE_MAX];
};

/*
 * Feed in[0..n) to a fresh decoder in pieces ending at cuts[] (then the
 * rest), the way a reader would: unconsumed bytes stay at the front of the
 * buffer and new bytes are appended after them.
 */
static const struct decoded *decode_pieces(const char *in, size_t n, const size_t *cuts,
					   size_t ncuts, uint64_t max_total)
{
	static struct decoded d;
	static char buf[DECODE_MAX];
	struct http_chunked c;
	size_t have = 0, fed = 0;

	assert_true(n <= DECODE_MAX);
	d.rc = 0;
	d.out_len = d.used = 0;
	http_chunked_init(&c);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t upto = k < ncuts ? cuts[k] : n;
		size_t len, consumed;

		memcpy(buf + have, in + fed, upto - fed);
		have += upto - fed;
		fed = upto;
		len = have;
		d.rc = http_chunked_decode(&c, buf, &len, &consumed, max_total);
		assert_true(consumed <= have);
		assert_true(len <= consumed);
		memcpy(d.out + d.out_len, buf, len);
		d.out_len += len;
		d.used += consumed;
		memmove(buf, buf + consumed, have - consumed);
		have -= consumed;
		if (d.rc != 0)
			break;
		/* Until the end, every byte given is taken. */
		assert_int_equal(have, 0);
	}
	assert_int_equal(c.total, d.out_len);
	return &d;
}

static const struct decoded *decode_all(const char *in, uint64_t max_total)
{
	return decode_pieces(in, strlen(in), NULL, 0, max_total);
}

static const struct { const char *in; const char *out; } chunked_ok[] = {
	{ "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world" },
	{ "0\r\n\r\n", "" },
	{ "A\r\n0123456789\r\n0\r\n\r\n", "0123456789" },
	{ "a;name=value;flag\r\n0123456789\r\n0;last\r\n\r\n", "0123456789" },
	{ "3 ;ext\r\nabc\r\n0\r\n\r\n", "abc" },
	{ "003\r\nabc\r\n000\r\n\r\n", "abc" },
	{ "1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "\r\n" },
	{ "4\r\n0\r\n\r\r\n0\r\n\r\n", "0\r\n\r" },
	{ "5\nhello\n0\n\n", "hello" },
	{ "5\r\nhello\n0\r\n\n", "hello" },
	{ "3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n", "abc" },
	{ "3\r\nabc\r\n0\r\nX: a\nY: b\n\n", "abc" },
	{ "1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n", "0123456789abcdef0123456789abcde" },
	{ "1F\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n", "0123456789abcdef0123456789abcde" },
};

static void test_chunked_basic(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(chunked_ok); i++) {
		const struct decoded *d = decode_all(chunked_ok[i].in, 1 << 20);

		if (d->rc != 1 || d->used != strlen(chunked_ok[i].in))
			fail_msg("case %zu: rc %d used %zu", i, d->rc, d->used);
		assert_int_equal(d->out_len, strlen(chunked_ok[i].out));
		assert_memory_equal(d->out, chunked_ok[i].out, d->out_len);
	}
}

/* The decoder's state survives a cut at every byte, and at every pair. */
static void test_chunked_every_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(chunked_ok); i++) {
		const char *in = chunked_ok[i].in;
		size_t n = strlen(in), want = strlen(chunked_ok[i].out);

		for (size_t a = 0; a <= n; a++) {
			for (size_t b = a; b <= n; b++) {
				size_t cuts[2] = { a, b };
				const struct decoded *d = decode_pieces(in, n, cuts, 2, 1 << 20);

				if (d->rc != 1 || d->used != n || d->out_len != want ||
				    memcmp(d->out, chunked_ok[i].out, want) != 0)
					fail_msg("case %zu cut at %zu,%zu: rc %d", i, a, b, d->rc);
			}
		}
	}
}

static void test_chunked_byte_at_a_time(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(chunked_ok); i++) {
		const char *in = chunked_ok[i].in;
		size_t n = strlen(in), cuts[256];

		for (size_t k = 0; k < n; k++)
			cuts[k] = k + 1;
		const struct decoded *d = decode_pieces(in, n, cuts, n, 1 << 20);
		assert_int_equal(d->rc, 1);
		assert_int_equal(d->out_len, strlen(chunked_ok[i].out));
		assert_memory_equal(d->out, chunked_ok[i].out, d->out_len);
	}
}

/* What follows the body is left alone for the next message. */
static void test_chunked_pipelined(void **state)
{
	char buf[128];
	const char *body = "4\r\nwiki\r\n0\r\n\r\n";
	const char *next = "GET / HTTP/1.1\r\n";
	struct http_chunked c;
	size_t len, consumed;

	(void)state;
	snprintf(buf, sizeof(buf), "%s%s", body, next);
	len = strlen(buf);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, buf, &len, &consumed, 100), 1);
	assert_int_equal(len, 4);
	assert_memory_equal(buf, "wiki", 4);
	assert_int_equal(consumed, strlen(body));
	assert_memory_equal(buf + consumed, next, strlen(next));
	assert_int_equal(c.total, 4);

	/* Once done it stays done and takes nothing more. */
	len = strlen(next);
	assert_int_equal(http_chunked_decode(&c, buf + consumed, &len, &consumed, 100), 1);
	assert_int_equal(len, 0);
	assert_int_equal(consumed, 0);
}

static void test_chunked_invalid(void **state)
{
	static const struct { const char *in; int want; } cases[] = {
		{ "\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "g\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "-5\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "+5\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "0x5\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ " 5\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "5 \r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "5 5\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "5\rhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "5;a\rb\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "5;a\x01\r\nhello\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "5\r\nhelloX\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "5\r\nhello\r0\r\n\r\n", HTTP_ERR_BAD },
		{ "5\r\nhel\r\n0\r\n\r\n", HTTP_ERR_BAD },
		{ "0\r\n X: folded\r\n\r\n", HTTP_ERR_BAD },
		{ "0\r\nX: a\rb\r\n\r\n", HTTP_ERR_BAD },
		{ "0\r\nX: \x01\r\n\r\n", HTTP_ERR_BAD },
		{ "0\r\n\rX", HTTP_ERR_BAD },
		{ "ffffffffffffffffff\r\n", HTTP_ERR_TOO_LARGE },
		{ "10000000000000000\r\n", HTTP_ERR_TOO_LARGE },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		size_t n = strlen(cases[i].in);

		/* The verdict must not depend on where reads split the input. */
		for (size_t cut = 0; cut <= n; cut++) {
			const struct decoded *d = decode_pieces(cases[i].in, n, &cut, 1, UINT64_MAX);

			if (d->rc != cases[i].want)
				fail_msg("case %zu cut %zu: got %d want %d", i, cut, d->rc,
					 cases[i].want);
		}
	}
}

static void test_chunked_limits(void **state)
{
	char big[40000];
	const struct decoded *d;

	(void)state;
	/* max_total is a bound on the payload, checked before any of it. */
	d = decode_all("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 10);
	assert_int_equal(d->rc, 1);
	d = decode_all("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 9);
	assert_int_equal(d->rc, HTTP_ERR_TOO_LARGE);
	assert_int_equal(d->out_len, 5);
	d = decode_all("100000\r\n", 1000);
	assert_int_equal(d->rc, HTTP_ERR_TOO_LARGE);

	/* Endless extensions or trailers are cut off. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "5;", 2);
	d = decode_all(big, 1 << 20);
	assert_int_equal(d->rc, HTTP_ERR_TOO_LARGE);
	memcpy(big, "0\r\nX: ", 6);
	d = decode_all(big, 1 << 20);
	assert_int_equal(d->rc, HTTP_ERR_TOO_LARGE);

	/* Many small trailer lines count together. */
	size_t n = (size_t)snprintf(big, sizeof(big), "0\r\n");
	while (n < sizeof(big) - 16)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-T: 1\r\n");
	d = decode_all(big, 1 << 20);
	assert_int_equal(d->rc, HTTP_ERR_TOO_LARGE);

	/* Leading zeros are not a size. */
	d = decode_all("0000000000000000000000000005\r\nhello\r\n0\r\n\r\n", 5);
	assert_int_equal(d->rc, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_basic),
		cmocka_unit_test(test_request_methods),
		cmocka_unit_test(test_request_body_framing),
		cmocka_unit_test(test_request_keep_alive),
		cmocka_unit_test(test_request_line_endings),
		cmocka_unit_test(test_request_incomplete),
		cmocka_unit_test(test_request_smuggling),
		cmocka_unit_test(test_request_too_large),
		cmocka_unit_test(test_response_basic),
		cmocka_unit_test(test_response_invalid),
		cmocka_unit_test(test_response_incomplete),
		cmocka_unit_test(test_heads_in_pieces_parse_as_whole),
		cmocka_unit_test(test_heads_in_pieces_header_count),
		cmocka_unit_test(test_head_scan_is_linear),
		cmocka_unit_test(test_find_header),
		cmocka_unit_test(test_hop_headers),
		cmocka_unit_test(test_connection_listed_headers),
		cmocka_unit_test(test_request_absolute_form),
		cmocka_unit_test(test_reason),
		cmocka_unit_test(test_chunked_basic),
		cmocka_unit_test(test_chunked_every_split),
		cmocka_unit_test(test_chunked_byte_at_a_time),
		cmocka_unit_test(test_chunked_pipelined),
		cmocka_unit_test(test_chunked_invalid),
		cmocka_unit_test(test_chunked_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
