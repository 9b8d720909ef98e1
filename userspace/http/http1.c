/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 heads and chunked bodies (RFC 9112).
 *
 * Lines end in CRLF or, leniently, a bare LF (RFC 9112 section 2.2); the
 * head parser and the chunked decoder apply that one rule everywhere.  A
 * CR anywhere else is a control character and rejected, as are obs-fold
 * lines, whitespace before a field's colon, and every framing ambiguity a
 * request smuggler could use.
 */
#include "http/http1.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* Framing bytes allowed in one chunk-size line, extensions included, and
 * in a chunked body's whole trailer section. */
#define CHUNK_LINE_MAX	4096
#define TRAILERS_MAX	16384

/* ---- characters -------------------------------------------------------- */

static bool is_tchar(unsigned char c)
{
	unsigned char lower = c | 0x20;

	if (lower >= 'a' && lower <= 'z')
		return true;
	if (c >= '0' && c <= '9')
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(struct str s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (!is_tchar((unsigned char)s.p[i]))
			return false;
	return true;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Field values and reason phrases: HTAB, SP, VCHAR and obs-text. */
static bool is_field_text(struct str s)
{
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static struct str trim_ows(struct str s)
{
	while (s.len && is_ows(s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len && is_ows(s.p[s.len - 1]))
		s.len--;
	return s;
}

/* ---- lines ------------------------------------------------------------- */

/*
 * The next line in buf[*pos..limit), without its CRLF or LF, moving *pos
 * past it.  False when no line end is in reach yet.
 */
static bool next_line(const char *buf, size_t limit, size_t *pos, struct str *line)
{
	/* Nothing to scan (maybe no buffer at all): memchr() must not see it. */
	if (*pos >= limit)
		return false;
	const char *start = buf + *pos;
	const char *lf = memchr(start, '\n', limit - *pos);

	if (!lf)
		return false;
	line->p = start;
	line->len = (size_t)(lf - start);
	if (line->len && start[line->len - 1] == '\r')
		line->len--;
	*pos = (size_t)(lf + 1 - buf);
	return true;
}

/* The part of the input a head may occupy; heads return an int length. */
static size_t head_limit(size_t len, size_t *max_head)
{
	if (*max_head > INT_MAX)
		*max_head = INT_MAX;
	return len < *max_head ? len : *max_head;
}

static int incomplete(size_t len, size_t max_head)
{
	return len >= max_head ? HTTP_ERR_TOO_LARGE : HTTP_NEED_MORE;
}

/* Split s at the first space: *word before it, s after it.  False if none. */
static bool split_space(struct str *s, struct str *word)
{
	const char *sp = memchr(s->p, ' ', s->len);

	if (!sp)
		return false;
	word->p = s->p;
	word->len = (size_t)(sp - s->p);
	s->len -= word->len + 1;
	s->p = sp + 1;
	return true;
}

/* "HTTP/1.x": 0 with the minor version, HTTP_ERR_VERSION for another
 * major version, HTTP_ERR_BAD for anything else. */
static int parse_version(struct str v, int *minor)
{
	if (v.len != 8 || memcmp(v.p, "HTTP/", 5) != 0 ||
	    v.p[5] < '0' || v.p[5] > '9' || v.p[6] != '.' || v.p[7] < '0' || v.p[7] > '9')
		return HTTP_ERR_BAD;
	if (v.p[5] != '1')
		return HTTP_ERR_VERSION;
	*minor = v.p[7] - '0';
	return 0;
}

/* ---- header fields ----------------------------------------------------- */

static int parse_field(struct str line, struct http_header *h)
{
	const char *colon;

	/* A line starting with whitespace is obs-fold (a continuation) or
	 * hides a name from parsers that trim it: both are refused. */
	if (is_ows(line.p[0]))
		return HTTP_ERR_BAD;
	colon = memchr(line.p, ':', line.len);
	if (!colon)
		return HTTP_ERR_BAD;
	/* is_token() also refuses whitespace before the colon. */
	h->name = (struct str){ line.p, (size_t)(colon - line.p) };
	if (!is_token(h->name))
		return HTTP_ERR_BAD;
	h->value = (struct str){ colon + 1, line.len - h->name.len - 1 };
	if (!is_field_text(h->value))
		return HTTP_ERR_BAD;
	h->value = trim_ows(h->value);
	return 0;
}

/*
 * Header lines up to the blank line that ends the head.  1 when it was
 * found, 0 when more input is needed, or an HTTP_ERR_* value.
 */
static int parse_fields(const char *buf, size_t limit, size_t *pos,
			struct http_header *headers, size_t *n)
{
	struct str line;

	*n = 0;
	while (next_line(buf, limit, pos, &line)) {
		if (line.len == 0)
			return 1;
		if (*n == HTTP_MAX_HEADERS)
			return HTTP_ERR_TOO_LARGE;
		int err = parse_field(line, &headers[*n]);
		if (err)
			return err;
		(*n)++;
	}
	return 0;
}

/* What the framing and connection headers say, collected over all lines. */
struct framing {
	int64_t content_length;
	bool has_te;
	bool chunked;
	bool other_coding;	/* a transfer-coding other than chunked before it */
	bool close;
	bool keep_alive;
	bool expect_continue;
	int hosts;
};

/* Call fn on each non-empty element of a comma-separated list. */
static int for_each_element(struct str list, int (*fn)(struct str, struct framing *),
			    struct framing *f)
{
	while (list.len) {
		const char *comma = memchr(list.p, ',', list.len);
		size_t n = comma ? (size_t)(comma - list.p) : list.len;
		struct str el = trim_ows((struct str){ list.p, n });

		if (el.len) {
			int err = fn(el, f);
			if (err)
				return err;
		}
		if (!comma)
			break;
		list.p += n + 1;
		list.len -= n + 1;
	}
	return 0;
}

static int content_length_value(struct str v, int64_t *out)
{
	int64_t n = 0;

	if (v.len == 0)
		return HTTP_ERR_BAD;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return HTTP_ERR_BAD;
		int d = v.p[i] - '0';
		if (n > (INT64_MAX - d) / 10)
			return HTTP_ERR_BAD;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

static int add_content_length(struct str v, struct framing *f)
{
	int64_t n;

	if (content_length_value(v, &n))
		return HTTP_ERR_BAD;
	/* Repeats are tolerated only when they agree (RFC 9110 8.6). */
	if (f->content_length >= 0 && f->content_length != n)
		return HTTP_ERR_BAD;
	f->content_length = n;
	return 0;
}

/*
 * One transfer-coding, in order over every Transfer-Encoding line
 * (RFC 9112 section 6.1).  chunked must come once and last: any coding
 * after it (a second chunked, identity, ...) leaves the length unknowable,
 * which is malformed framing (400, and the connection closes).  A coding
 * before a final chunked is a body we cannot decode (501), decided once
 * the whole list is read.
 */
static int add_coding(struct str coding, struct framing *f)
{
	if (f->chunked)
		return HTTP_ERR_BAD;
	if (str_case_eq_cstr(coding, "chunked"))
		f->chunked = true;
	else
		f->other_coding = true;
	return 0;
}

static int add_connection_option(struct str opt, struct framing *f)
{
	if (str_case_eq_cstr(opt, "close"))
		f->close = true;
	else if (str_case_eq_cstr(opt, "keep-alive"))
		f->keep_alive = true;
	return 0;
}

static int read_header(const struct http_header *h, struct framing *f)
{
	if (str_case_eq_cstr(h->name, "content-length"))
		return add_content_length(h->value, f);
	if (str_case_eq_cstr(h->name, "transfer-encoding")) {
		f->has_te = true;
		return for_each_element(h->value, add_coding, f);
	}
	if (str_case_eq_cstr(h->name, "connection"))
		return for_each_element(h->value, add_connection_option, f);
	if (str_case_eq_cstr(h->name, "expect")) {
		if (str_case_eq_cstr(h->value, "100-continue"))
			f->expect_continue = true;
		return 0;
	}
	if (str_case_eq_cstr(h->name, "host"))
		f->hosts++;
	return 0;
}

/* The framing rules both directions share (RFC 9112 section 6). */
static int read_framing(const struct http_header *headers, size_t n, int minor,
			struct framing *f)
{
	*f = (struct framing){ .content_length = -1 };
	for (size_t i = 0; i < n; i++) {
		int err = read_header(&headers[i], f);
		if (err)
			return err;
	}
	/* chunked must be the final coding; an empty Transfer-Encoding names
	 * none at all. */
	if (f->has_te && !f->chunked)
		return HTTP_ERR_BAD;
	/* Two lengths are the classic smuggling setup; and HTTP/1.0 has no
	 * Transfer-Encoding, so a 1.0 message with one is faulty framing. */
	if (f->has_te && (f->content_length >= 0 || minor == 0))
		return HTTP_ERR_BAD;
	return f->other_coding ? HTTP_ERR_UNSUPPORTED : 0;
}

static bool keep_alive(const struct framing *f, int minor)
{
	if (f->close)
		return false;
	return minor >= 1 || f->keep_alive;
}

/* ---- requests ---------------------------------------------------------- */

static enum http_method method_of(struct str m)
{
	static const struct { const char *name; enum http_method method; } methods[] = {
		{ "GET", HTTP_GET }, { "HEAD", HTTP_HEAD }, { "POST", HTTP_POST },
		{ "PUT", HTTP_PUT }, { "DELETE", HTTP_DELETE }, { "OPTIONS", HTTP_OPTIONS },
	};

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (str_eq_cstr(m, methods[i].name))
			return methods[i].method;
	return HTTP_OTHER;
}

/* request-target: visible ASCII and obs-text, no spaces or controls. */
static bool is_target(struct str t)
{
	if (t.len == 0)
		return false;
	for (size_t i = 0; i < t.len; i++) {
		unsigned char c = (unsigned char)t.p[i];
		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/*
 * RFC 9112 section 3.2.2: a server must accept the absolute-form
 * ("http://host/v1/chat/completions?x") that clients send to proxies.  The
 * target becomes its origin-form part, path and query, which is what the
 * routes and the backend's request use; the authority is not needed (the
 * request still needs its Host header, section 3.2).  Other schemes are
 * left as sent, and route nowhere.
 */
static void origin_form(struct str *target)
{
	size_t skip;

	if (target->len >= 7 && strncasecmp(target->p, "http://", 7) == 0)
		skip = 7;
	else if (target->len >= 8 && strncasecmp(target->p, "https://", 8) == 0)
		skip = 8;
	else
		return;
	while (skip < target->len && target->p[skip] != '/' && target->p[skip] != '?')
		skip++;
	if (skip == target->len || target->p[skip] == '?') {
		*target = (struct str){ "/", 1 };	/* empty path: "/" (RFC 9112 3.2.1) */
		return;
	}
	target->p += skip;
	target->len -= skip;
}

/* method SP request-target SP HTTP-version, single spaces only. */
static int parse_request_line(struct str line, struct http_request *req)
{
	struct str rest = line;

	if (!split_space(&rest, &req->method_str) || !is_token(req->method_str))
		return HTTP_ERR_BAD;
	if (!split_space(&rest, &req->target) || !is_target(req->target))
		return HTTP_ERR_BAD;
	req->method = method_of(req->method_str);
	origin_form(&req->target);

	const char *q = memchr(req->target.p, '?', req->target.len);
	req->path = (struct str){ req->target.p,
				  q ? (size_t)(q - req->target.p) : req->target.len };
	return parse_version(rest, &req->minor);
}

/* RFC 9112 section 2.2: ignore empty lines ahead of a request line, which
 * clients send after a body. */
static void skip_empty_lines(const char *buf, size_t limit, size_t *pos)
{
	while (*pos < limit) {
		if (buf[*pos] == '\n')
			(*pos)++;
		else if (buf[*pos] == '\r' && *pos + 1 < limit && buf[*pos + 1] == '\n')
			*pos += 2;
		else
			break;
	}
}

/* RFC 9112 section 3.2: exactly one Host in an HTTP/1.1 request. */
static int check_host(const struct framing *f, int minor)
{
	if (f->hosts > 1 || (minor >= 1 && f->hosts == 0))
		return HTTP_ERR_BAD;
	return 0;
}

int http_parse_request(const char *buf, size_t len, size_t max_head,
		       struct http_request *req)
{
	size_t limit = head_limit(len, &max_head);
	size_t pos = 0;
	struct framing f;
	struct str line;
	int rc;

	skip_empty_lines(buf, limit, &pos);
	if (!next_line(buf, limit, &pos, &line))
		return incomplete(len, max_head);
	rc = parse_request_line(line, req);
	if (rc)
		return rc;
	rc = parse_fields(buf, limit, &pos, req->headers, &req->nheaders);
	if (rc <= 0)
		return rc < 0 ? rc : incomplete(len, max_head);
	rc = read_framing(req->headers, req->nheaders, req->minor, &f);
	if (rc == 0)
		rc = check_host(&f, req->minor);
	if (rc)
		return rc;
	req->content_length = f.content_length;
	req->chunked = f.chunked;
	req->keep_alive = keep_alive(&f, req->minor);
	req->expect_continue = f.expect_continue;
	return (int)pos;
}

/* ---- responses --------------------------------------------------------- */

/* HTTP-version SP 3DIGIT [SP reason-phrase]; the space before an empty
 * reason is optional because many servers leave it out. */
static int parse_status_line(struct str line, struct http_response *resp)
{
	struct str rest = line, version, code;
	int rc;

	if (!split_space(&rest, &version))
		return HTTP_ERR_BAD;
	rc = parse_version(version, &resp->minor);
	if (rc)
		return rc;
	if (!split_space(&rest, &code)) {
		code = rest;
		rest = (struct str){ rest.p + rest.len, 0 };
	}
	/* RFC 9110 section 15: a status code is 100..599. */
	if (code.len != 3 || code.p[0] < '1' || code.p[0] > '5' ||
	    code.p[1] < '0' || code.p[1] > '9' || code.p[2] < '0' || code.p[2] > '9')
		return HTTP_ERR_BAD;
	resp->status = (code.p[0] - '0') * 100 + (code.p[1] - '0') * 10 + (code.p[2] - '0');
	if (!is_field_text(rest))
		return HTTP_ERR_BAD;
	resp->reason = rest;
	return 0;
}

int http_parse_response(const char *buf, size_t len, size_t max_head,
			struct http_response *resp)
{
	size_t limit = head_limit(len, &max_head);
	size_t pos = 0;
	struct framing f;
	struct str line;
	int rc;

	if (!next_line(buf, limit, &pos, &line))
		return incomplete(len, max_head);
	rc = parse_status_line(line, resp);
	if (rc)
		return rc;
	rc = parse_fields(buf, limit, &pos, resp->headers, &resp->nheaders);
	if (rc <= 0)
		return rc < 0 ? rc : incomplete(len, max_head);
	rc = read_framing(resp->headers, resp->nheaders, resp->minor, &f);
	if (rc)
		return rc;
	resp->content_length = f.content_length;
	resp->chunked = f.chunked;
	resp->keep_alive = keep_alive(&f, resp->minor);
	return (int)pos;
}

/* ---- heads that arrive in pieces -------------------------------------- */

/*
 * The next complete line at scan->pos, like next_line(), but searching
 * only bytes no earlier call searched: a line trickled a byte at a time is
 * looked at once, not once per byte.
 */
static bool scan_line(struct http_head_scan *s, const char *buf, size_t limit, struct str *line)
{
	size_t from = s->lf_from > s->pos ? s->lf_from : s->pos;
	if (from >= limit)
		return false;
	const char *lf = memchr(buf + from, '\n', limit - from);
	if (!lf) {
		s->lf_from = limit;
		return false;
	}
	line->p = buf + s->pos;
	line->len = (size_t)(lf - line->p);
	if (line->len && line->p[line->len - 1] == '\r')
		line->len--;
	s->pos = (size_t)(lf + 1 - buf);
	return true;
}

/* A header line the scan has not seen: what parse_fields() would say of it
 * (0, or the error the whole-head parser returns). */
static int scan_field(const struct http_head_scan *s, struct str line)
{
	struct http_header h;

	if (s->lines - 1 == HTTP_MAX_HEADERS)
		return HTTP_ERR_TOO_LARGE;
	return parse_field(line, &h);
}

int http_parse_request_scan(struct http_head_scan *s, const char *buf, size_t len,
			    size_t max_head, struct http_request *req)
{
	/* Most heads arrive whole: the first call parses what it has. */
	if (!s->seen) {
		s->seen = len;
		int rc = http_parse_request(buf, len, max_head, req);
		if (rc != HTTP_NEED_MORE)
			return rc;
	}
	s->seen = len;
	size_t max = max_head, limit = head_limit(len, &max);
	struct str line;
	for (;;) {
		if (s->lines == 0)
			skip_empty_lines(buf, limit, &s->pos);
		if (!scan_line(s, buf, limit, &line))
			return incomplete(len, max);
		int rc = 0;
		if (s->lines == 0)
			rc = parse_request_line(line, req);
		else if (line.len == 0)	/* complete: parsed whole, once */
			return http_parse_request(buf, len, max_head, req);
		else
			rc = scan_field(s, line);
		if (rc)
			return rc;
		s->lines++;
	}
}

int http_parse_response_scan(struct http_head_scan *s, const char *buf, size_t len,
			     size_t max_head, struct http_response *resp)
{
	if (!s->seen) {
		s->seen = len;
		int rc = http_parse_response(buf, len, max_head, resp);
		if (rc != HTTP_NEED_MORE)
			return rc;
	}
	s->seen = len;
	size_t max = max_head, limit = head_limit(len, &max);
	struct str line;
	for (;;) {
		if (!scan_line(s, buf, limit, &line))
			return incomplete(len, max);
		int rc = 0;
		if (s->lines == 0)
			rc = parse_status_line(line, resp);
		else if (line.len == 0)
			return http_parse_response(buf, len, max_head, resp);
		else
			rc = scan_field(s, line);
		if (rc)
			return rc;
		s->lines++;
	}
}

/* ---- header helpers ---------------------------------------------------- */

const struct http_header *http_find_header(const struct http_header *headers,
					   size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (str_case_eq_cstr(headers[i].name, name))
			return &headers[i];
	return NULL;
}

size_t http_connection_headers(const struct http_header *headers, size_t n,
			       const struct http_header **out, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k < max; i++)
		if (str_case_eq_cstr(headers[i].name, "connection"))
			out[k++] = &headers[i];
	return k;
}

bool http_connection_lists(const struct http_header *const *conn, size_t nconn, struct str name)
{
	for (size_t i = 0; i < nconn; i++) {
		struct str list = conn[i]->value;
		while (list.len) {
			const char *comma = memchr(list.p, ',', list.len);
			size_t k = comma ? (size_t)(comma - list.p) : list.len;
			struct str opt = trim_ows((struct str){ list.p, k });
			if (opt.len && opt.len == name.len && strncasecmp(opt.p, name.p, name.len) == 0)
				return true;
			if (!comma)
				break;
			list.p += k + 1;
			list.len -= k + 1;
		}
	}
	return false;
}

bool http_is_hop_header(struct str name)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "te", "trailer", "transfer-encoding",
		"upgrade", "content-length", "host",
	};

	/* Proxy-Authorization, Proxy-Connection and friends. */
	if (name.len >= 6 && strncasecmp(name.p, "proxy-", 6) == 0)
		return true;
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (str_case_eq_cstr(name, hop[i]))
			return true;
	return false;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default:  return "Unknown";
	}
}

/* ---- chunked bodies ---------------------------------------------------- */

enum {
	CH_SIZE_FIRST = 0,	/* first hex digit of a chunk size */
	CH_SIZE,		/* more hex digits, or what ends the size */
	CH_SIZE_WS,		/* whitespace after the size: only ';' may follow */
	CH_EXT,			/* chunk extension, skipped up to the line end */
	CH_SIZE_LF,		/* CR ended the size line: LF must follow */
	CH_DATA,		/* chunk payload */
	CH_DATA_END,		/* the line end after the payload */
	CH_DATA_LF,
	CH_TRAILER_START,	/* a trailer field line or the final blank line */
	CH_TRAILER,		/* inside a trailer field line */
	CH_TRAILER_LF,
	CH_FINAL_LF,		/* CR of the final blank line: LF must follow */
	CH_DONE,
};

static bool is_ctl(unsigned char ch)
{
	return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* The size line is over: a payload follows, or trailers after the last chunk. */
static int chunk_size_done(struct http_chunked *c, uint64_t max_total)
{
	if (c->total > max_total || c->remaining > max_total - c->total)
		return HTTP_ERR_TOO_LARGE;
	c->line = 0;
	c->state = c->remaining ? CH_DATA : CH_TRAILER_START;
	return 0;
}

/* A hex digit or the end of the chunk size. */
static int chunk_size_byte(struct http_chunked *c, unsigned char ch, uint64_t max_total)
{
	int h = hex_digit_value(ch);

	if (h >= 0) {
		/* Past max_total or about to overflow: no use reading on. */
		if (c->remaining > max_total || c->remaining >> 60)
			return HTTP_ERR_TOO_LARGE;
		c->remaining = c->remaining << 4 | (uint64_t)h;
		return 0;
	}
	switch (ch) {
	case ';':  c->state = CH_EXT; return 0;
	case ' ':
	case '\t': c->state = CH_SIZE_WS; return 0;
	case '\r': c->state = CH_SIZE_LF; return 0;
	case '\n': return chunk_size_done(c, max_total);
	default:   return HTTP_ERR_BAD;
	}
}

/* The chunk-size line after its first digit: size, extensions, line end. */
static int size_line_byte(struct http_chunked *c, unsigned char ch, uint64_t max_total)
{
	switch (c->state) {
	case CH_SIZE:
		return chunk_size_byte(c, ch, max_total);
	case CH_SIZE_WS:
		if (ch == ';')
			c->state = CH_EXT;
		else if (!is_ows((char)ch))
			return HTTP_ERR_BAD;
		return 0;
	case CH_EXT:
		if (ch == '\n')
			return chunk_size_done(c, max_total);
		if (ch == '\r')
			c->state = CH_SIZE_LF;
		else if (is_ctl(ch))
			return HTTP_ERR_BAD;
		return 0;
	default:	/* CH_SIZE_LF */
		return ch == '\n' ? chunk_size_done(c, max_total) : HTTP_ERR_BAD;
	}
}

/* The CRLF (or LF) that closes a chunk's payload. */
static int data_end_byte(struct http_chunked *c, unsigned char ch)
{
	if (ch == '\r' && c->state == CH_DATA_END) {
		c->state = CH_DATA_LF;
		return 0;
	}
	if (ch != '\n')
		return HTTP_ERR_BAD;
	c->line = 0;
	c->state = CH_SIZE_FIRST;
	return 0;
}

/* Trailer field lines, skipped but checked, then the final blank line. */
static int trailer_byte(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CH_TRAILER_START:
		if (ch == '\r')
			c->state = CH_FINAL_LF;
		else if (ch == '\n')
			c->state = CH_DONE;
		else if (is_ows((char)ch) || is_ctl(ch))
			return HTTP_ERR_BAD;	/* obs-fold or garbage */
		else
			c->state = CH_TRAILER;
		return 0;
	case CH_TRAILER:
		if (ch == '\r')
			c->state = CH_TRAILER_LF;
		else if (ch == '\n')
			c->state = CH_TRAILER_START;
		else if (is_ctl(ch))
			return HTTP_ERR_BAD;
		return 0;
	case CH_TRAILER_LF:
		if (ch != '\n')
			return HTTP_ERR_BAD;
		c->state = CH_TRAILER_START;
		return 0;
	default:	/* CH_FINAL_LF */
		if (ch != '\n')
			return HTTP_ERR_BAD;
		c->state = CH_DONE;
		return 0;
	}
}

/* One framing byte: every state but CH_DATA and CH_DONE. */
static int chunked_step(struct http_chunked *c, unsigned char ch, uint64_t max_total)
{
	bool trailer = c->state >= CH_TRAILER_START;

	/* Extensions and trailers are skipped, so bound what a peer can
	 * make us skip. */
	if (++c->line > (trailer ? TRAILERS_MAX : CHUNK_LINE_MAX))
		return HTTP_ERR_TOO_LARGE;
	if (c->state == CH_SIZE_FIRST) {
		if (hex_digit_value(ch) < 0)
			return HTTP_ERR_BAD;
		c->remaining = (uint64_t)hex_digit_value(ch);
		c->state = CH_SIZE;
		return 0;
	}
	if (c->state <= CH_SIZE_LF)
		return size_line_byte(c, ch, max_total);
	if (c->state == CH_DATA_END || c->state == CH_DATA_LF)
		return data_end_byte(c, ch);
	if (trailer && c->state < CH_DONE)
		return trailer_byte(c, ch);
	return HTTP_ERR_BAD;
}

int http_chunked_decode(struct http_chunked *c, char *buf, size_t *len,
			size_t *consumed, uint64_t max_total)
{
	size_t in = 0, out = 0, n = *len;
	int rc = 0;

	while (in < n && c->state != CH_DONE) {
		if (c->state != CH_DATA) {
			rc = chunked_step(c, (unsigned char)buf[in], max_total);
			if (rc < 0)
				break;
			in++;
			continue;
		}
		/* Payload moves down over the framing already read. */
		size_t k = n - in < c->remaining ? n - in : (size_t)c->remaining;
		memmove(buf + out, buf + in, k);
		in += k;
		out += k;
		c->remaining -= k;
		c->total += k;
		if (c->remaining == 0)
			c->state = CH_DATA_END;
	}
	*len = out;
	*consumed = in;
	if (rc < 0)
		return rc;
	return c->state == CH_DONE;
}
