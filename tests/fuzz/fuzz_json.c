/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JSON scanner (api/json.h) and the two readers built on it: the
 * request reader and the usage reader (api/openai.h).
 *
 * Properties, besides no crash, leak or undefined behaviour:
 * - every value the lookup side returns lies inside its container, and
 *   alone is a valid document of the same type and extent;
 * - strings unescape, compare equal to their unescaped text, and escape
 *   back to a string that unescapes the same (json_escape round trip);
 * - an integer json_int64 accepts prints back as its own text; one it
 *   refuses has a fraction, an exponent or is out of range;
 * - a container cut before its closing bracket is "unexpected end of input"
 *   exactly at the cut;
 * - the request reader accepts only valid objects and says why it refuses;
 *   its output reservation is 0 only when the client asked for 0;
 * - usage counts are -1 or non-negative, whatever the backend wrote.
 */
#include <errno.h>
#include <inttypes.h>

#include "api/json.h"
#include "api/openai.h"
#include "fuzz.h"

struct walk {
	const char *buf;
	size_t len;
};

static void check_value(const struct walk *w, const struct json_val *v, int depth);

static bool plain_integer_text(struct str t, bool *neg)
{
	size_t i = 0;

	*neg = t.len && t.p[0] == '-';
	i = *neg;
	if (i == t.len)
		return false;
	for (; i < t.len; i++)
		if (t.p[i] < '0' || t.p[i] > '9')
			return false;
	return true;
}

/* Does the integer text t (digits, maybe a '-') fit int64? */
static bool fits_int64(struct str t, bool neg)
{
	unsigned __int128 mag = 0;

	for (size_t i = neg; i < t.len; i++) {
		mag = mag * 10 + (unsigned)(t.p[i] - '0');
		if (mag > (unsigned __int128)INT64_MAX + 1)
			return false;
	}
	return neg ? mag <= (unsigned __int128)INT64_MAX + 1 : mag <= INT64_MAX;
}

static void check_number(const struct json_val *v)
{
	bool neg;
	bool plain = plain_integer_text(v->raw, &neg);
	int64_t n;

	if (json_int64(v, &n) == 0) {
		char text[32];
		int k = snprintf(text, sizeof(text), "%" PRId64, n);
		bool minus_zero = v->raw.len == 2 && memcmp(v->raw.p, "-0", 2) == 0;

		FUZZ_CHECK(plain && fits_int64(v->raw, neg), "json_int64 took %.*s",
			   (int)v->raw.len, v->raw.p);
		FUZZ_CHECK(minus_zero ? n == 0
			   : (size_t)k == v->raw.len && memcmp(text, v->raw.p, (size_t)k) == 0,
			   "%.*s read as %s", (int)v->raw.len, v->raw.p, text);
	} else {
		FUZZ_CHECK(!plain || !fits_int64(v->raw, neg), "json_int64 refused %.*s",
			   (int)v->raw.len, v->raw.p);
	}
}

static void check_string(const struct json_val *v)
{
	size_t cap = v->raw.len;	/* unescaping never grows: quotes make room for the NUL */
	char *text = malloc(cap);
	int n = json_string(v, text, cap);

	FUZZ_CHECK(n >= 0 && (size_t)n <= v->raw.len - 2, "json_string: %d", n);
	FUZZ_CHECK(text[n] == '\0', "unterminated");
	if (strlen(text) == (size_t)n)
		FUZZ_CHECK(json_string_eq(v, text), "json_string_eq disagrees with json_string");

	/* Too small: -ENOSPC, and what was written is a terminated prefix. */
	if (n > 0) {
		char *small = malloc((size_t)n);
		FUZZ_CHECK(json_string(v, small, (size_t)n) == -ENOSPC, "no -ENOSPC");
		const char *nul = memchr(small, '\0', (size_t)n);
		FUZZ_CHECK(nul && memcmp(small, text, (size_t)(nul - small)) == 0,
			   "the truncated copy is not a prefix");
		free(small);
	}

	/* Escape it again: a valid string literal with the same text. */
	size_t ecap = 6 * (size_t)n + 2;
	char *esc = malloc(ecap);
	int e = json_escape(esc, ecap, text, (size_t)n);
	FUZZ_CHECK(e >= 2, "json_escape: %d", e);
	struct json_val ev;
	FUZZ_CHECK(json_parse(esc, (size_t)e, &ev, NULL, NULL) == 0 && ev.type == JSON_STRING &&
		   ev.raw.len == (size_t)e, "json_escape wrote invalid JSON: %.*s", e, esc);
	char *back = malloc((size_t)e);
	FUZZ_CHECK(json_string(&ev, back, (size_t)e) == n && memcmp(back, text, (size_t)n) == 0,
		   "escape round trip changed the text");
	free(back);
	free(esc);
	free(text);
}

/* A member name (raw, between quotes in the buffer) unescaped, or NULL
 * when it holds a NUL and cannot be looked up by a C string. */
static char *key_text(struct str key)
{
	struct json_val k = { JSON_STRING, { key.p - 1, key.len + 2 } };
	char *text = malloc(key.len + 1);
	int n = json_string(&k, text, key.len + 1);

	FUZZ_CHECK(n >= 0, "member name does not unescape");
	if (strlen(text) != (size_t)n) {
		free(text);
		return NULL;
	}
	return text;
}

static void check_container(const struct walk *w, const struct json_val *v, int depth)
{
	const char *inner = v->raw.p + 1;
	size_t inner_len = v->raw.len - 2;
	uintptr_t next = (uintptr_t)inner;
	struct json_iter it;
	struct json_val m;
	struct str key;
	size_t count = 0;

	FUZZ_CHECK(v->raw.len >= 2, "container of %zu bytes", v->raw.len);
	json_iter_init(&it, v);
	while (json_iter_next(&it, &key, &m)) {
		count++;
		FUZZ_CHECK(fuzz_inside(m.raw.p, m.raw.len, inner, inner_len),
			   "member %zu outside its container", count);
		FUZZ_CHECK((uintptr_t)m.raw.p >= next, "member %zu overlaps the one before", count);
		next = (uintptr_t)m.raw.p + m.raw.len;
		if (v->type == JSON_ARRAY) {
			FUZZ_CHECK(key.p == NULL && key.len == 0, "array element with a key");
		} else {
			FUZZ_CHECK(fuzz_inside(key.p - 1, key.len + 2, inner, inner_len) &&
				   key.p[-1] == '"' && key.p[key.len] == '"' &&
				   (uintptr_t)(key.p + key.len) < (uintptr_t)m.raw.p,
				   "member name span");
			char *name = key_text(key);
			if (name) {
				/* Lookup finds this member, or an earlier one of that name. */
				struct json_val g;
				FUZZ_CHECK(json_get(v, name, &g) == 0 &&
					   (uintptr_t)g.raw.p <= (uintptr_t)m.raw.p,
					   "json_get(\"%s\")", name);
				free(name);
			}
		}
		check_value(w, &m, depth + 1);
	}
	if (v->type == JSON_ARRAY)
		FUZZ_CHECK(json_array_len(v) == count, "json_array_len %zu, iterated %zu",
			   json_array_len(v), count);
	/* Nothing but whitespace is left after the last member. */
	for (uintptr_t p = next; p < (uintptr_t)inner + inner_len; p++) {
		char c = *(const char *)p;
		FUZZ_CHECK(c == ' ' || c == '\t' || c == '\n' || c == '\r',
			   "member missed by the iterator");
	}
}

static void check_value(const struct walk *w, const struct json_val *v, int depth)
{
	struct json_val again;
	bool b;

	FUZZ_CHECK(depth <= JSON_MAX_DEPTH, "depth %d", depth);
	FUZZ_CHECK(v->raw.len > 0 && fuzz_inside(v->raw.p, v->raw.len, w->buf, w->len),
		   "value outside the input");
	FUZZ_CHECK(json_parse(v->raw.p, v->raw.len, &again, NULL, NULL) == 0 &&
		   again.type == v->type && again.raw.p == v->raw.p && again.raw.len == v->raw.len,
		   "a value alone is not the same document");
	switch (v->type) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		check_container(w, v, depth);
		break;
	case JSON_STRING:
		check_string(v);
		break;
	case JSON_NUMBER:
		check_number(v);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		FUZZ_CHECK(json_bool(v, &b) == 0 && b == (v->type == JSON_TRUE), "json_bool");
		FUZZ_CHECK(v->raw.len == (b ? 4u : 5u), "literal length");
		break;
	case JSON_NULL:
		FUZZ_CHECK(v->raw.len == 4 && memcmp(v->raw.p, "null", 4) == 0, "null");
		break;
	case JSON_NONE:
		FUZZ_CHECK(false, "a parsed value of type NONE");
	}
}

/* A document cut just before its last byte (a container's closing
 * bracket, a string's closing quote) fails exactly at the cut. */
static void check_cut(const struct walk *w, const struct json_val *root)
{
	if (root->type != JSON_OBJECT && root->type != JSON_ARRAY && root->type != JSON_STRING)
		return;
	size_t cut = (size_t)(root->raw.p - w->buf) + root->raw.len - 1;
	char *prefix = fuzz_dup(w->buf, cut);
	struct json_val v;
	const char *msg = NULL;
	size_t off = SIZE_MAX;

	FUZZ_CHECK(json_parse(prefix, cut, &v, &off, &msg) == -EINVAL, "a cut document parsed");
	FUZZ_CHECK(off == cut, "cut at %zu, failed at %zu (%s)", cut, off, msg);
	FUZZ_CHECK(msg && (strcmp(msg, "unexpected end of input") == 0 ||
			   strcmp(msg, "unterminated string") == 0), "cut: %s", msg);
	free(prefix);
}

static void check_request(const char *buf, size_t len, bool valid, const struct json_val *root)
{
	struct api_request req;
	char why[256] = "";
	int rc = api_parse_request(buf, len, &req, why, sizeof(why));

	if (rc) {
		FUZZ_CHECK(rc == -EINVAL && why[0], "refused without a reason (%d)", rc);
		return;
	}
	FUZZ_CHECK(valid && root->type == JSON_OBJECT, "accepted what the scanner refused");
	FUZZ_CHECK(req.root.raw.p == root->raw.p && req.root.raw.len == root->raw.len, "root");
	FUZZ_CHECK(req.model.p == req.model_buf && req.model.len > 0 &&
		   req.model.len < sizeof(req.model_buf) && strlen(req.model_buf) == req.model.len,
		   "model name");
	for (size_t i = 0; i < req.model.len; i++)
		FUZZ_CHECK((unsigned char)req.model_buf[i] >= 0x20 && req.model_buf[i] != 0x7f,
			   "control character in the model name");
	switch (req.stream_options.type) {
	case JSON_NONE:
		break;
	case JSON_NULL:
	case JSON_OBJECT:
		FUZZ_CHECK(fuzz_inside(req.stream_options.raw.p, req.stream_options.raw.len,
				       buf, len), "stream_options outside the body");
		break;
	default:
		FUZZ_CHECK(false, "stream_options of type %d", req.stream_options.type);
	}
	FUZZ_CHECK(!req.client_wants_usage || req.stream_options.type == JSON_OBJECT,
		   "include_usage without stream_options");

	/* A reservation of 0 only when the client asked for 0 tokens (a
	 * product that wraps would be 0 too). */
	if (api_output_tokens(&req, 4096) == 0) {
		struct json_val mt;
		int64_t n = -1;
		FUZZ_CHECK(json_get(&req.root, "max_tokens", &mt) == 0 && json_int64(&mt, &n) == 0 &&
			   n == 0, "a reservation of 0 tokens");
	}
}

static void check_usage(const char *buf, size_t len, bool valid, const struct json_val *root)
{
	struct api_usage u;
	bool only = true;
	int rc = api_parse_usage(buf, len, &u, &only);
	const int64_t f[] = { u.prompt_tokens, u.completion_tokens, u.total_tokens,
			      u.cached_tokens, u.reasoning_tokens };

	FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL, "api_parse_usage: %d", rc);
	FUZZ_CHECK((rc == -EINVAL) == !valid, "usage reader and scanner disagree");
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		FUZZ_CHECK(f[i] == -1 || (f[i] >= 0 && rc == 0), "usage field %zu is %" PRId64, i, f[i]);
	if (!valid || root->type != JSON_OBJECT)
		FUZZ_CHECK(!only, "only_usage for a non-object");
	if (rc == 0) {
		struct json_val usage;
		FUZZ_CHECK(json_get(root, "usage", &usage) == 0 && usage.type == JSON_OBJECT,
			   "usage read without a usage object");
	}
}

/* An error body carrying the input as its message is valid JSON. */
static void check_error_body(const uint8_t *data, size_t size)
{
	char *msg = fuzz_cstr(data, size > 512 ? 512 : size);
	char body[4096];
	int n = api_error_body(body, sizeof(body), msg, "invalid_request_error", NULL);
	struct json_val root, err, m;

	FUZZ_CHECK(n > 0, "api_error_body: %d", n);
	FUZZ_CHECK(json_parse(body, (size_t)n, &root, NULL, NULL) == 0 &&
		   json_get_path(&root, "error.message", &m) == 0 && m.type == JSON_STRING &&
		   json_get(&root, "error", &err) == 0, "error body is not valid JSON: %s", body);
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct walk w = { buf, size };
	struct json_val root = { JSON_NONE, STR_NULL };
	const char *msg = NULL;
	size_t off = SIZE_MAX;
	int rc = json_parse(buf, size, &root, &off, &msg);

	if (rc) {
		FUZZ_CHECK(rc == -EINVAL && msg && *msg && off <= size, "error %d at %zu", rc, off);
	} else {
		check_value(&w, &root, 0);
		check_cut(&w, &root);
	}
	check_request(buf, size, rc == 0, &root);
	check_usage(buf, size, rc == 0, &root);
	check_error_body(data, size);
	return 0;
}
