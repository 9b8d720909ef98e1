/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON validation and lookup without a tree.
 *
 * json_parse() runs one pass over the text with an explicit stack of open
 * containers (no recursion), so its cost is linear and its stack use fixed.
 * The lookup side trusts that pass: it skips values by bracket counting and
 * string ends, and never needs to look at a number's digits twice.
 */
#include "api/json.h"

#include <errno.h>
#include <string.h>

/* ---- character classes ------------------------------------------------ */

/* Bytes a string may hold without a closer look: printable ASCII other
 * than '"' and '\\'.  Controls, quotes, escapes and UTF-8 lead bytes
 * leave the fast path. */
static bool is_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && is_ws((unsigned char)*p))
		p++;
	return p;
}

static enum json_type type_of(char c)
{
	switch (c) {
	case '{': return JSON_OBJECT;
	case '[': return JSON_ARRAY;
	case '"': return JSON_STRING;
	case 't': return JSON_TRUE;
	case 'f': return JSON_FALSE;
	case 'n': return JSON_NULL;
	default:  return JSON_NUMBER;
	}
}

/* ---- UTF-8 ------------------------------------------------------------- */

/*
 * Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs,
 * no surrogates, nothing past U+10FFFF), or 0 when it is not one.
 */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* The second byte's range is what rules out overlongs, surrogates
	 * and code points past U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

static size_t utf8_put(char *dst, uint32_t cp)
{
	if (cp < 0x80) {
		dst[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		dst[0] = (char)(0xc0 | (cp >> 6));
		dst[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		dst[0] = (char)(0xe0 | (cp >> 12));
		dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		dst[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	dst[0] = (char)(0xf0 | (cp >> 18));
	dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	dst[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* ---- validation -------------------------------------------------------- */

struct scanner {
	const char *p, *end;
	const char *err_msg;
	const char *err_at;
	int depth;
	char open[JSON_MAX_DEPTH];	/* '{' or '[' per open container */
};

static int fail(struct scanner *s, const char *at, const char *msg)
{
	s->err_at = at;
	s->err_msg = msg;
	return -EINVAL;
}

static int fail_eof_or(struct scanner *s, const char *at, const char *msg)
{
	return fail(s, at, at >= s->end ? "unexpected end of input" : msg);
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/*
 * The bytes of x that need a closer look, as their top bits: the classic
 * "has a byte less than n / equal to n" tricks for control characters, '"'
 * and '\\' at once, plus the top bit itself for UTF-8.  A borrow can only
 * mark bytes above a real match, so the lowest mark is always exact.
 */
static uint64_t special_bytes(uint64_t x)
{
	uint64_t quote = x ^ (ONES * '"');
	uint64_t bslash = x ^ (ONES * '\\');
	uint64_t ctl = (x - ONES * 0x20) & ~x;

	quote = (quote - ONES) & ~quote;
	bslash = (bslash - ONES) & ~bslash;
	return (ctl | quote | bslash | x) & HIGHS;
}

/* Skip string bytes that need no checking, eight at a time while possible. */
static const char *skip_plain(const char *p, const char *end)
{
	uint64_t w, m;

	while (end - p >= 8) {
		memcpy(&w, p, 8);
		m = special_bytes(w);
		if (m) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			/* The first byte in memory is the lowest. */
			return p + (__builtin_ctzll(m) >> 3);
#else
			break;
#endif
		}
		p += 8;
	}
	while (p < end && is_plain((unsigned char)*p))
		p++;
	return p;
}

static int read_hex4(const char *p, const char *end, uint32_t *out)
{
	uint32_t v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hex_digit_value((unsigned char)p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | (uint32_t)h;
	}
	*out = v;
	return 0;
}

/* A \uXXXX escape at s->p (pointing at the 'u'); surrogates must pair. */
static int scan_unicode_escape(struct scanner *s)
{
	const char *at = s->p - 1;
	uint32_t hi, lo;

	if (read_hex4(s->p + 1, s->end, &hi))
		return fail_eof_or(s, at, "invalid \\u escape");
	s->p += 5;
	if (hi < 0xd800 || hi > 0xdfff)
		return 0;
	if (hi >= 0xdc00)
		return fail(s, at, "lone low surrogate");
	if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
	    read_hex4(s->p + 2, s->end, &lo) || lo < 0xdc00 || lo > 0xdfff)
		return fail(s, at, "lone high surrogate");
	s->p += 6;
	return 0;
}

/* One escape sequence; s->p is at the backslash. */
static int scan_escape(struct scanner *s)
{
	if (++s->p >= s->end)
		return fail(s, s->p, "unexpected end of input");
	switch (*s->p) {
	case '"': case '\\': case '/':
	case 'b': case 'f': case 'n': case 'r': case 't':
		s->p++;
		return 0;
	case 'u':
		return scan_unicode_escape(s);
	default:
		return fail(s, s->p - 1, "invalid escape");
	}
}

/* A string; s->p is at the opening quote and ends past the closing one. */
static int scan_string(struct scanner *s)
{
	s->p++;
	for (;;) {
		s->p = skip_plain(s->p, s->end);
		if (s->p >= s->end)
			return fail(s, s->p, "unterminated string");
		unsigned char c = (unsigned char)*s->p;
		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c == '\\') {
			if (scan_escape(s))
				return -EINVAL;
		} else if (c >= 0x80) {
			size_t n = utf8_len((const unsigned char *)s->p,
					    (const unsigned char *)s->end);
			if (!n)
				return fail(s, s->p, "invalid UTF-8");
			s->p += n;
		} else {
			return fail(s, s->p, "control character in string");
		}
	}
}

static const char *skip_digits(const char *p, const char *end)
{
	while (p < end && is_digit((unsigned char)*p))
		p++;
	return p;
}

/* number = [ "-" ] ( "0" / 1-9 *DIGIT ) [ "." 1*DIGIT ] [ e [ sign ] 1*DIGIT ] */
static int scan_number(struct scanner *s)
{
	const char *p = s->p, *end = s->end;

	if (p < end && *p == '-')
		p++;
	if (p >= end || !is_digit((unsigned char)*p))
		return fail_eof_or(s, p, "invalid number");
	if (*p == '0') {
		p++;
		if (p < end && is_digit((unsigned char)*p))
			return fail(s, p, "leading zero in number");
	} else {
		p = skip_digits(p, end);
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit((unsigned char)*p))
			return fail_eof_or(s, p, "invalid number");
		p = skip_digits(p, end);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit((unsigned char)*p))
			return fail_eof_or(s, p, "invalid number");
		p = skip_digits(p, end);
	}
	s->p = p;
	return 0;
}

static int scan_literal(struct scanner *s, const char *word, size_t n)
{
	size_t avail = (size_t)(s->end - s->p);

	if (avail < n || memcmp(s->p, word, n) != 0) {
		/* Point at the first byte that differs. */
		size_t i = 0;
		while (i < avail && i < n && s->p[i] == word[i])
			i++;
		return fail_eof_or(s, s->p + i, "invalid literal");
	}
	s->p += n;
	return 0;
}

/* What the validator expects next. */
enum step {
	STEP_VALUE,	/* any value */
	STEP_FIRST,	/* first element or ']' right after '[' */
	STEP_KEY,	/* a member name after '{' or ',' */
	STEP_AFTER,	/* ',' or the container's end, or the end of input */
	STEP_DONE,
	STEP_ERROR,
};

static enum step open_container(struct scanner *s, char c)
{
	if (s->depth == JSON_MAX_DEPTH) {
		fail(s, s->p, "nesting too deep");
		return STEP_ERROR;
	}
	s->open[s->depth++] = c;
	s->p = skip_ws(s->p + 1, s->end);
	if (c == '{') {
		if (s->p < s->end && *s->p == '}') {
			s->depth--;
			s->p++;
			return STEP_AFTER;
		}
		return STEP_KEY;
	}
	return STEP_FIRST;
}

static enum step scan_value(struct scanner *s)
{
	int err;

	s->p = skip_ws(s->p, s->end);
	if (s->p >= s->end) {
		fail(s, s->p, "unexpected end of input");
		return STEP_ERROR;
	}
	switch (*s->p) {
	case '{':
	case '[':
		return open_container(s, *s->p);
	case '"':
		err = scan_string(s);
		break;
	case 't':
		err = scan_literal(s, "true", 4);
		break;
	case 'f':
		err = scan_literal(s, "false", 5);
		break;
	case 'n':
		err = scan_literal(s, "null", 4);
		break;
	case '-':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		err = scan_number(s);
		break;
	default:
		err = fail(s, s->p, "unexpected character");
		break;
	}
	return err ? STEP_ERROR : STEP_AFTER;
}

static enum step scan_first(struct scanner *s)
{
	if (s->p < s->end && *s->p == ']') {
		s->depth--;
		s->p++;
		return STEP_AFTER;
	}
	return STEP_VALUE;
}

static enum step scan_key(struct scanner *s)
{
	if (s->p >= s->end || *s->p != '"') {
		fail_eof_or(s, s->p, "expected a member name");
		return STEP_ERROR;
	}
	if (scan_string(s))
		return STEP_ERROR;
	s->p = skip_ws(s->p, s->end);
	if (s->p >= s->end || *s->p != ':') {
		fail_eof_or(s, s->p, "expected ':'");
		return STEP_ERROR;
	}
	s->p++;
	return STEP_VALUE;
}

static enum step scan_after(struct scanner *s)
{
	s->p = skip_ws(s->p, s->end);
	if (s->depth == 0) {
		if (s->p != s->end) {
			fail(s, s->p, "trailing characters after the value");
			return STEP_ERROR;
		}
		return STEP_DONE;
	}
	char open = s->open[s->depth - 1];
	char close = open == '{' ? '}' : ']';

	if (s->p < s->end && *s->p == ',') {
		s->p = skip_ws(s->p + 1, s->end);
		return open == '{' ? STEP_KEY : STEP_VALUE;
	}
	if (s->p < s->end && *s->p == close) {
		s->depth--;
		s->p++;
		return STEP_AFTER;
	}
	fail_eof_or(s, s->p, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
	return STEP_ERROR;
}

static int scan_document(struct scanner *s)
{
	enum step step = STEP_VALUE;

	while (step != STEP_DONE) {
		switch (step) {
		case STEP_VALUE: step = scan_value(s); break;
		case STEP_FIRST: step = scan_first(s); break;
		case STEP_KEY:   step = scan_key(s); break;
		case STEP_AFTER: step = scan_after(s); break;
		default:         return -EINVAL;
		}
	}
	return 0;
}

int json_parse(const char *buf, size_t len, struct json_val *root,
	       size_t *err_off, const char **err_msg)
{
	struct scanner s = { .p = buf, .end = buf + len };
	const char *first = skip_ws(buf, buf + len);

	if (scan_document(&s)) {
		if (err_off)
			*err_off = (size_t)(s.err_at - buf);
		if (err_msg)
			*err_msg = s.err_msg;
		return -EINVAL;
	}
	/* The value ends where the trailing whitespace starts. */
	const char *last = buf + len;
	while (last > first && is_ws((unsigned char)last[-1]))
		last--;
	root->type = type_of(*first);
	root->raw = (struct str){ first, (size_t)(last - first) };
	return 0;
}

/* ---- skipping validated values ---------------------------------------- */

/* Past the closing quote of a validated string starting at p (its '"'). */
static const char *skip_string(const char *p, const char *end)
{
	p++;
	for (;;) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q)
			return end;
		/* The quote is escaped when an odd run of backslashes precedes it. */
		const char *b = q;
		while (b > p && b[-1] == '\\')
			b--;
		if (((q - b) & 1) == 0)
			return q + 1;
		p = q + 1;
	}
}

static const char *skip_container(const char *p, const char *end)
{
	int depth = 0;

	while (p < end) {
		char c = *p;
		if (c == '"') {
			p = skip_string(p, end);
			continue;
		}
		p++;
		if (c == '{' || c == '[')
			depth++;
		else if ((c == '}' || c == ']') && --depth == 0)
			break;
	}
	return p;
}

static const char *skip_scalar(const char *p, const char *end)
{
	while (p < end && *p != ',' && *p != '}' && *p != ']' && !is_ws((unsigned char)*p))
		p++;
	return p;
}

/* Read the validated value at p into *val and return where it ends. */
static const char *take_value(const char *p, const char *end, struct json_val *val)
{
	const char *q;

	if (p >= end) {
		*val = (struct json_val){ JSON_NONE, STR_NULL };
		return end;
	}
	val->type = type_of(*p);
	if (val->type == JSON_STRING)
		q = skip_string(p, end);
	else if (val->type == JSON_OBJECT || val->type == JSON_ARRAY)
		q = skip_container(p, end);
	else
		q = skip_scalar(p, end);
	val->raw = (struct str){ p, (size_t)(q - p) };
	return q;
}

/* ---- iteration and lookup --------------------------------------------- */

void json_iter_init(struct json_iter *it, const struct json_val *container)
{
	const char *p = container->raw.p;
	size_t n = container->raw.len;

	it->object = container->type == JSON_OBJECT;
	if ((container->type != JSON_OBJECT && container->type != JSON_ARRAY) || n < 2) {
		it->p = it->end = NULL;
		return;
	}
	/* Walk between the brackets. */
	it->p = p + 1;
	it->end = p + n - 1;
}

/*
 * A member's name and colon at p: sets *key (raw, without quotes) and
 * returns where the value starts.  Validated input always has them; NULL
 * for anything else stops the walk rather than read past the end.
 */
static const char *read_member_name(const char *p, const char *end, struct str *key)
{
	const char *q;

	if (*p != '"')
		return NULL;
	q = skip_string(p, end);
	if (q - p < 2)
		return NULL;
	*key = (struct str){ p + 1, (size_t)(q - p - 2) };
	p = skip_ws(q, end);
	if (p >= end || *p != ':')
		return NULL;
	return skip_ws(p + 1, end);
}

bool json_iter_next(struct json_iter *it, struct str *key, struct json_val *val)
{
	const char *p = skip_ws(it->p, it->end);

	if (p < it->end && *p == ',')
		p = skip_ws(p + 1, it->end);
	if (p < it->end && it->object)
		p = read_member_name(p, it->end, key);
	else
		*key = STR_NULL;
	if (!p || p >= it->end) {
		it->p = it->end;
		return false;
	}
	it->p = take_value(p, it->end, val);
	return true;
}

size_t json_array_len(const struct json_val *arr)
{
	struct json_iter it;
	struct json_val v;
	struct str k;
	size_t n = 0;

	if (arr->type != JSON_ARRAY)
		return 0;
	json_iter_init(&it, arr);
	while (json_iter_next(&it, &k, &v))
		n++;
	return n;
}

/*
 * Decode the escape at *pp (its backslash) into out; returns the byte
 * count and moves *pp past it, or 0 for a malformed escape.
 */
static size_t decode_escape(const char **pp, const char *end, char out[4])
{
	const char *p = *pp;
	uint32_t cp, lo;

	if (end - p < 2)
		return 0;
	switch (p[1]) {
	case '"':  out[0] = '"'; break;
	case '\\': out[0] = '\\'; break;
	case '/':  out[0] = '/'; break;
	case 'b':  out[0] = '\b'; break;
	case 'f':  out[0] = '\f'; break;
	case 'n':  out[0] = '\n'; break;
	case 'r':  out[0] = '\r'; break;
	case 't':  out[0] = '\t'; break;
	case 'u':
		if (read_hex4(p + 2, end, &cp))
			return 0;
		p += 6;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
			    read_hex4(p + 2, end, &lo) || lo < 0xdc00 || lo > 0xdfff)
				return 0;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			p += 6;
		}
		*pp = p;
		return utf8_put(out, cp);
	default:
		return 0;
	}
	*pp = p + 2;
	return 1;
}

/* Compare escaped string contents [p, end) with the plain text s[0..n). */
static bool escaped_eq(const char *p, const char *end, const char *s, size_t n)
{
	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		size_t run = (size_t)((bs ? bs : end) - p);

		if (run > n || memcmp(p, s, run) != 0)
			return false;
		p += run;
		s += run;
		n -= run;
		if (!bs)
			break;
		char u[4];
		size_t k = decode_escape(&p, end, u);
		if (k == 0 || k > n || memcmp(u, s, k) != 0)
			return false;
		s += k;
		n -= k;
	}
	return n == 0;
}

static int object_get(const struct json_val *obj, const char *key, size_t klen,
		      struct json_val *out)
{
	struct json_iter it;
	struct json_val v;
	struct str k;

	if (obj->type != JSON_OBJECT)
		return -ENOENT;
	json_iter_init(&it, obj);
	while (json_iter_next(&it, &k, &v)) {
		if (escaped_eq(k.p, k.p + k.len, key, klen)) {
			*out = v;
			return 0;
		}
	}
	return -ENOENT;
}

int json_get(const struct json_val *obj, const char *key, struct json_val *out)
{
	return object_get(obj, key, strlen(key), out);
}

int json_get_path(const struct json_val *root, const char *dotted, struct json_val *out)
{
	struct json_val cur = *root;

	for (;;) {
		const char *dot = strchr(dotted, '.');
		size_t n = dot ? (size_t)(dot - dotted) : strlen(dotted);

		if (object_get(&cur, dotted, n, &cur))
			return -ENOENT;
		if (!dot)
			break;
		dotted = dot + 1;
	}
	*out = cur;
	return 0;
}

/* ---- scalar accessors -------------------------------------------------- */

int json_int64(const struct json_val *v, int64_t *out)
{
	const char *p = v->raw.p, *end = p + v->raw.len;
	bool neg = false;
	uint64_t n = 0;
	/* Magnitude limit: INT64_MAX, or one more for a negative number. */
	uint64_t limit = (uint64_t)INT64_MAX;

	if (v->type != JSON_NUMBER || p == end)
		return -EINVAL;
	if (*p == '-') {
		neg = true;
		limit++;
		p++;
	}
	if (p == end)
		return -EINVAL;
	for (; p < end; p++) {
		if (!is_digit((unsigned char)*p))
			return -EINVAL;	/* a fraction or an exponent */
		unsigned d = (unsigned)(*p - '0');
		if (n > (limit - d) / 10)
			return -EINVAL;
		n = n * 10 + d;
	}
	/* -(n - 1) - 1 reaches INT64_MIN without overflowing. */
	*out = neg && n ? -(int64_t)(n - 1) - 1 : (int64_t)n;
	return 0;
}

int json_bool(const struct json_val *v, bool *out)
{
	if (v->type != JSON_TRUE && v->type != JSON_FALSE)
		return -EINVAL;
	*out = v->type == JSON_TRUE;
	return 0;
}

int json_string(const struct json_val *v, char *dst, size_t cap)
{
	const char *p, *end;
	size_t n = 0;

	if (v->type != JSON_STRING || v->raw.len < 2)
		return -EINVAL;
	if (cap == 0)
		return -ENOSPC;
	p = v->raw.p + 1;
	end = v->raw.p + v->raw.len - 1;
	while (p < end) {
		/* Either a run of literal bytes up to the next escape, or one
		 * decoded escape. */
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		const char *src = p;
		size_t k = (size_t)((bs ? bs : end) - p);
		char u[4];

		if (k == 0) {
			k = decode_escape(&p, end, u);
			if (k == 0)
				return -EINVAL;
			src = u;
		} else {
			p += k;
		}
		/* Keep room for the terminator.  A literal run is cut where
		 * it stops fitting; a decoded character goes whole or not at all. */
		if (k >= cap - n) {
			size_t fit = src == u ? 0 : cap - n - 1;
			memcpy(dst + n, src, fit);
			dst[n + fit] = '\0';
			return -ENOSPC;
		}
		memcpy(dst + n, src, k);
		n += k;
	}
	dst[n] = '\0';
	return n > INT32_MAX ? -ENOSPC : (int)n;
}

bool json_string_eq(const struct json_val *v, const char *s)
{
	if (v->type != JSON_STRING || v->raw.len < 2)
		return false;
	return escaped_eq(v->raw.p + 1, v->raw.p + v->raw.len - 1, s, strlen(s));
}

/* ---- output ------------------------------------------------------------ */

/* The escape for byte c in a JSON string, or NULL when it stands as is. */
static const char *escape_for(unsigned char c, char tmp[7])
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"':  return "\\\"";
	case '\\': return "\\\\";
	case '\b': return "\\b";
	case '\f': return "\\f";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	default:
		break;
	}
	if (c >= 0x20)
		return NULL;
	memcpy(tmp, "\\u00", 4);
	tmp[4] = hex[c >> 4];
	tmp[5] = hex[c & 0xf];
	tmp[6] = '\0';
	return tmp;
}

static bool put(char *dst, size_t cap, size_t *n, const char *src, size_t len)
{
	if (len > cap - *n)
		return false;
	memcpy(dst + *n, src, len);
	*n += len;
	return true;
}

int json_escape(char *dst, size_t cap, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	size_t n = 0;

	if (!put(dst, cap, &n, "\"", 1))
		return -ENOSPC;
	while (p < end) {
		const char *run = (const char *)p;
		while (p < end && is_plain(*p))
			p++;
		if (!put(dst, cap, &n, run, (size_t)((const char *)p - run)))
			return -ENOSPC;
		if (p == end)
			break;

		char tmp[7];
		const char *esc = escape_for(*p, tmp);
		size_t u8 = esc ? 0 : utf8_len(p, end);
		bool ok;

		/* Valid UTF-8 passes through; a stray byte becomes U+FFFD so
		 * the output is always valid JSON. */
		if (esc)
			ok = put(dst, cap, &n, esc, strlen(esc));
		else if (u8)
			ok = put(dst, cap, &n, (const char *)p, u8);
		else
			ok = put(dst, cap, &n, "\\ufffd", 6);
		if (!ok)
			return -ENOSPC;
		p += u8 ? u8 : 1;
	}
	if (!put(dst, cap, &n, "\"", 1) || n > INT32_MAX)
		return -ENOSPC;
	return (int)n;
}
