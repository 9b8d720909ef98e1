/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 message heads and chunked bodies, parsed without copying.
 *
 * The head parsers are stateless: call them again on the same buffer with
 * more bytes until they stop returning HTTP_NEED_MORE.  Every struct str they
 * fill points into the caller's buffer, so the buffer must outlive them.
 * The chunked decoder is incremental: it keeps its place between calls.
 */
#ifndef SLUICE_HTTP_HTTP1_H
#define SLUICE_HTTP_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/str.h"

#define HTTP_MAX_HEADERS 64

/* Results of the head parsers (> 0 is the head length in bytes). */
enum {
	HTTP_NEED_MORE = 0,
	HTTP_ERR_BAD = -1,		/* malformed: 400 */
	HTTP_ERR_TOO_LARGE = -2,	/* head over max_head or too many headers: 431 */
	HTTP_ERR_UNSUPPORTED = -3,	/* e.g. a transfer-coding other than chunked: 501 */
	HTTP_ERR_VERSION = -4,		/* not HTTP/1.x: 505 */
};

enum http_method {
	HTTP_OTHER = 0, HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_DELETE, HTTP_OPTIONS,
};

struct http_header {
	struct str name;	/* as sent; compare case-insensitively */
	struct str value;	/* leading and trailing spaces/tabs trimmed */
};

struct http_request {
	enum http_method method;
	struct str method_str;
	struct str target;		/* request-target in origin-form: "/v1/models?x=1"
					 * (an absolute-form target's path and query) */
	struct str path;		/* target up to '?' */
	int minor;			/* HTTP/1.<minor> */
	size_t nheaders;
	struct http_header headers[HTTP_MAX_HEADERS];
	int64_t content_length;		/* -1 when absent */
	bool chunked;			/* Transfer-Encoding: chunked (last coding) */
	bool keep_alive;		/* 1.1 default yes unless "Connection: close";
					 * 1.0 only with "Connection: keep-alive" */
	bool expect_continue;		/* Expect: 100-continue */
};

struct http_response {
	int status;
	struct str reason;
	int minor;
	size_t nheaders;
	struct http_header headers[HTTP_MAX_HEADERS];
	int64_t content_length;		/* -1 when absent */
	bool chunked;
	bool keep_alive;
};

/*
 * Parse a request head in buf[0..len).  Returns the head length (through the
 * blank line) when complete, HTTP_NEED_MORE, or an HTTP_ERR_* value.
 * HTTP_ERR_TOO_LARGE when no complete head fits in max_head bytes.
 * Rejects (HTTP_ERR_BAD) both Content-Length and Transfer-Encoding, several
 * differing Content-Length values, bare LF-only garbage, control characters
 * in names, and obs-fold continuation lines (request smuggling defences).
 * Lines may end in CRLF or a bare LF; a CR anywhere else is refused.  An
 * HTTP/1.1 request needs exactly one Host (RFC 9112 section 3.2); empty lines
 * before the request line are skipped and counted in the head length.
 */
int http_parse_request(const char *buf, size_t len, size_t max_head,
		       struct http_request *req);

/* Same for a response head from an upstream.  The body framing rules of
 * RFC 9112 section 6.3 are the caller's: 1xx/204/304 and HEAD have none. */
int http_parse_response(const char *buf, size_t len, size_t max_head,
			struct http_response *resp);

/*
 * The same parsers for a head that arrives in pieces, in time linear in
 * its bytes however it is trickled: the scan keeps its place (the lines
 * already checked, and how far the line being read was searched) between
 * calls, checks each line once as it completes (so a bad line is refused
 * as soon as it is complete, as the whole-head parser would), and parses
 * the head whole once, when its blank line has arrived.  buf must hold the
 * same bytes at the same offsets from call to call, with more appended;
 * it may move.  Results are exactly those of the whole-head parsers on
 * the same bytes.  Start the scan zeroed (HTTP_HEAD_SCAN_INIT) for each
 * head.
 */
struct http_head_scan {
	size_t seen;		/* bytes the last call had (0: none yet) */
	size_t pos;		/* start of the first line not checked yet */
	size_t lf_from;		/* no LF in [pos, lf_from) */
	size_t lines;		/* lines checked, start line included */
};
#define HTTP_HEAD_SCAN_INIT ((struct http_head_scan){ 0 })

int http_parse_request_scan(struct http_head_scan *scan, const char *buf, size_t len,
			    size_t max_head, struct http_request *req);
int http_parse_response_scan(struct http_head_scan *scan, const char *buf, size_t len,
			     size_t max_head, struct http_response *resp);

/* First header named `name` (case-insensitive), or NULL. */
const struct http_header *http_find_header(const struct http_header *headers,
					   size_t n, const char *name);

/* Hop-by-hop and framing headers a proxy must not forward (Connection,
 * Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade,
 * Content-Length, Host). */
bool http_is_hop_header(struct str name);

/* The Connection headers among headers (at most max), and whether one of
 * them lists `name` (RFC 9110 section 7.6.1): such a field is hop-by-hop
 * and a proxy removes it. */
#define HTTP_MAX_CONNECTION_HEADERS 8
size_t http_connection_headers(const struct http_header *headers, size_t n,
			       const struct http_header **out, size_t max);
bool http_connection_lists(const struct http_header *const *conn, size_t nconn, struct str name);

const char *http_reason(int status);	/* "OK", "Bad Request", ... or "Unknown" */

/*
 * Incremental chunked-body decoder (RFC 9112 section 7.1), chunk extensions
 * ignored, trailers skipped.
 */
struct http_chunked {
	int state;
	uint32_t line;		/* framing bytes in this size line, or in all
				 * trailers: bounds what a peer makes us skip */
	uint64_t remaining;	/* bytes left in the current chunk */
	uint64_t total;		/* decoded bytes so far */
};

static inline void http_chunked_init(struct http_chunked *c)
{
	*c = (struct http_chunked){ 0 };
}

/*
 * Decode in place: consume bytes from buf[0..*len) and move the decoded
 * payload to the front of buf.  On return *len is the number of payload
 * bytes now at buf[0..*len), and *consumed the number of input bytes used
 * (payload and framing).  Bytes after *consumed were not looked at and
 * belong to whatever follows (e.g. the next pipelined message).
 * Returns 1 when the last chunk and trailers are complete, 0 when more input
 * is needed, HTTP_ERR_BAD on malformed framing, HTTP_ERR_TOO_LARGE when the
 * decoded total would pass max_total.
 */
int http_chunked_decode(struct http_chunked *c, char *buf, size_t *len,
			size_t *consumed, uint64_t max_total);

#endif
