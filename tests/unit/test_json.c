/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "api/json.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int parse(const char *text, struct json_val *root)
{
	return json_parse(text, strlen(text), root, NULL, NULL);
}

/* Parse text that must be valid; fail the test otherwise. */
static struct json_val must_parse(const char *text)
{
	struct json_val root;
	size_t off = 0;
	const char *msg = NULL;

	if (json_parse(text, strlen(text), &root, &off, &msg) != 0)
		fail_msg("valid JSON refused: %s at %zu: %s", msg, off, text);
	return root;
}

/* ---- validation corpus ---- */

static const char *const valid_corpus[] = {
	"{}", "[]", "0", "-0", "1", "-1", "123456789", "1.5", "-0.0", "1e10", "1E+10",
	"1e-10", "0.5e3", "123.456e-789", "true", "false", "null", "\"\"", "\"abc\"",
	"\" \\\" \\\\ \\/ \\b \\f \\n \\r \\t \"", "\"\\u0000\"", "\"\\u00e9\\u20AC\"",
	"\"\\ud83d\\ude00\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "\"\x7f\"",
	"  {\"a\" : 1 }  ", "\t\r\n[1,2 , 3]\n", "{\"a\":{\"b\":{\"c\":[1,{\"d\":null}]}}}",
	"[[], {}, [[]], {\"\":\"\"}]", "{\"a\":1,\"a\":2}", "[\"x\",1,true,false,null,{}]",
	"{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	"-1234567890123456789012345678901234567890", "[1e400]", "\"\\u005C\"",
	"\"\xef\xbf\xbf\"", "\"\xf4\x8f\xbf\xbf\"", "\"\\uDBFF\\uDFFF\"",
};

static const char *const invalid_corpus[] = {
	"", " ", "{", "}", "[", "]", "[1,]", "{\"a\":1,}", "[,1]", "{,}", "{\"a\"}",
	"{\"a\" 1}", "{a:1}", "{'a':1}", "['a']", "01", "-01", "00", "1.", ".5", "-",
	"+1", "1e", "1e+", "1.e5", "0x10", "NaN", "Infinity", "-Infinity", "tru", "truee",
	"nul", "True", "NULL", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\\"",
	"\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"", "\"\\ud83dx\"",
	"\"a\x01\"", "\"a\nb\"", "\"tab\there\"", "\"\x1f\"", "\"\xff\"", "\"\xc0\xaf\"",
	"\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xc3\"",
	"\"\x80\"", "1 2", "{} {}", "[] x", "{\"a\":1}}", "[1]]", "[1 2]",
	"{\"a\":1 \"b\":2}", "[\"a\":1]", "{\"a\":}", "/* c */ 1", "1 // c", "\xef\xbb\xbf{}",
};

static void test_valid_corpus(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(valid_corpus); i++) {
		struct json_val root;
		const char *t = valid_corpus[i];
		size_t off;
		const char *msg = NULL;

		if (json_parse(t, strlen(t), &root, &off, &msg) != 0)
			fail_msg("case %zu refused (%s at %zu): %s", i, msg, off, t);
		assert_int_not_equal(root.type, JSON_NONE);
	}
	assert_true(ARRAY_LEN(valid_corpus) >= 30);
}

static void test_invalid_corpus(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(invalid_corpus); i++) {
		struct json_val root;
		const char *t = invalid_corpus[i];
		size_t off = 12345;
		const char *msg = NULL;

		if (json_parse(t, strlen(t), &root, &off, &msg) != -EINVAL)
			fail_msg("case %zu accepted: %s", i, t);
		assert_non_null(msg);
		assert_true(off <= strlen(t));
	}
	assert_true(ARRAY_LEN(invalid_corpus) >= 30);
}

static void test_root_span(void **state)
{
	struct json_val v;

	(void)state;
	v = must_parse("  \n{\"a\": [1, 2]}\t\r\n ");
	assert_int_equal(v.type, JSON_OBJECT);
	assert_int_equal(v.raw.len, strlen("{\"a\": [1, 2]}"));
	assert_memory_equal(v.raw.p, "{\"a\": [1, 2]}", v.raw.len);

	v = must_parse(" 42 ");
	assert_int_equal(v.type, JSON_NUMBER);
	assert_true(str_eq_cstr(v.raw, "42"));
	v = must_parse("\"s\"");
	assert_int_equal(v.type, JSON_STRING);
	assert_true(str_eq_cstr(v.raw, "\"s\""));
	assert_int_equal(must_parse("true").type, JSON_TRUE);
	assert_int_equal(must_parse("false").type, JSON_FALSE);
	assert_int_equal(must_parse("null").type, JSON_NULL);
	assert_int_equal(must_parse("[]").type, JSON_ARRAY);
}

/* Valid input is only ever read inside [buf, buf + len). */
static void test_not_nul_terminated(void **state)
{
	char buf[8];
	struct json_val v;

	(void)state;
	memcpy(buf, "[1,2]xxx", 8);
	assert_int_equal(json_parse(buf, 5, &v, NULL, NULL), 0);
	assert_int_equal(json_parse(buf, 4, &v, NULL, NULL), -EINVAL);
	memcpy(buf, "\"abc\"zz", 7);
	assert_int_equal(json_parse(buf, 5, &v, NULL, NULL), 0);
	assert_int_equal(json_parse(buf, 4, &v, NULL, NULL), -EINVAL);
	memcpy(buf, "truexxxx", 8);
	assert_int_equal(json_parse(buf, 3, &v, NULL, NULL), -EINVAL);
	assert_int_equal(json_parse(buf, 4, &v, NULL, NULL), 0);
}

static void test_error_offsets(void **state)
{
	static const struct { const char *text; size_t off; } cases[] = {
		{ "[1,]", 3 },
		{ "{\"a\":1,}", 7 },
		{ "[1 2]", 3 },
		{ "01", 1 },
		{ "\"ab\x01\"", 3 },
		{ "\"a\\qb\"", 2 },
		{ "\"\\ude00\"", 1 },
		{ "{} x", 3 },
		{ "[tru]", 4 },
		{ "[", 1 },
		{ "\"abc", 4 },
		{ "\"\xc3\xa9\xff\"", 3 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct json_val v;
		size_t off = 999;
		const char *msg = NULL;

		assert_int_equal(json_parse(cases[i].text, strlen(cases[i].text), &v,
					    &off, &msg), -EINVAL);
		if (off != cases[i].off)
			fail_msg("case %zu: offset %zu, want %zu (%s)", i, off,
				 cases[i].off, msg);
	}
}

static void nest(char *buf, int depth, char open, char close)
{
	memset(buf, open, (size_t)depth);
	memset(buf + depth, close, (size_t)depth);
	buf[2 * depth] = '\0';
}

static void test_depth_limit(void **state)
{
	char buf[2 * (JSON_MAX_DEPTH + 2) + 1];
	char obj[16 * (JSON_MAX_DEPTH + 2)];
	struct json_val v;
	size_t off;
	const char *msg;

	(void)state;
	nest(buf, JSON_MAX_DEPTH, '[', ']');
	assert_int_equal(parse(buf, &v), 0);
	nest(buf, JSON_MAX_DEPTH + 1, '[', ']');
	assert_int_equal(json_parse(buf, strlen(buf), &v, &off, &msg), -EINVAL);
	assert_int_equal(off, JSON_MAX_DEPTH);

	/* Objects count the same way, and mixed nesting too. */
	size_t n = 0;
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		n += (size_t)sprintf(obj + n, i % 2 ? "{\"k\":" : "[");
	obj[n++] = '1';
	for (int i = JSON_MAX_DEPTH - 1; i >= 0; i--)
		obj[n++] = i % 2 ? '}' : ']';
	obj[n] = '\0';
	assert_int_equal(parse(obj, &v), 0);
	memmove(obj + 1, obj, n + 1);
	obj[0] = '[';
	obj[n + 1] = ']';
	obj[n + 2] = '\0';
	assert_int_equal(parse(obj, &v), -EINVAL);

	/* Deep but unbalanced input must not be mistaken for valid. */
	memset(buf, '[', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	assert_int_equal(parse(buf, &v), -EINVAL);
}

/* The string scanner reads 8 bytes at a time: put every special byte at
 * every position of a long string to catch a miss in the word test. */
static void test_string_fast_path(void **state)
{
	char buf[64];
	struct json_val v;

	(void)state;
	for (size_t pos = 1; pos < 40; pos++) {
		memset(buf, 'a', sizeof(buf));
		buf[0] = '"';
		buf[41] = '"';

		buf[pos] = '\x01';
		assert_int_equal(json_parse(buf, 42, &v, NULL, NULL), -EINVAL);
		buf[pos] = '\x1f';
		assert_int_equal(json_parse(buf, 42, &v, NULL, NULL), -EINVAL);
		buf[pos] = '\x80';
		assert_int_equal(json_parse(buf, 42, &v, NULL, NULL), -EINVAL);
		buf[pos] = '\x7f';
		assert_int_equal(json_parse(buf, 42, &v, NULL, NULL), 0);
		buf[pos] = ' ';
		assert_int_equal(json_parse(buf, 42, &v, NULL, NULL), 0);
		/* A quote in the middle ends the string early: trailing garbage. */
		buf[pos] = '"';
		assert_int_equal(json_parse(buf, 42, &v, NULL, NULL), -EINVAL);
		/* A backslash escapes the next byte, 'a': invalid escape. */
		buf[pos] = '\\';
		assert_int_equal(json_parse(buf, 42, &v, NULL, NULL), -EINVAL);
		buf[pos + 1] = 'n';
		assert_int_equal(json_parse(buf, 42, &v, NULL, NULL), pos + 1 < 41 ? 0 : -EINVAL);
	}
}

static void test_utf8(void **state)
{
	static const char *const good[] = {
		"\"\xc2\x80\"", "\"\xdf\xbf\"", "\"\xe0\xa0\x80\"", "\"\xed\x9f\xbf\"",
		"\"\xee\x80\x80\"", "\"\xf0\x90\x80\x80\"", "\"\xf3\xbf\xbf\xbf\"",
	};
	static const char *const bad[] = {
		"\"\xc1\xbf\"", "\"\xe0\x9f\xbf\"", "\"\xed\xbf\xbf\"", "\"\xf0\x8f\xbf\xbf\"",
		"\"\xf5\x80\x80\x80\"", "\"\xe2\x82\"", "\"\xe2\x28\xa1\"", "\"\xf0\x9f\x98\"",
	};
	struct json_val v;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(good); i++)
		assert_int_equal(parse(good[i], &v), 0);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (parse(bad[i], &v) != -EINVAL)
			fail_msg("bad UTF-8 case %zu accepted", i);
}

/* ---- lookups ---- */

static const char *const doc =
	"{ \"id\": \"x1\", \"n\": 42, \"neg\": -7, \"f\": 1.5, \"t\": true, \"nul\": null,\n"
	"  \"s\\\"q\": \"quoted key\", \"caf\\u00e9\": \"accent\",\n"
	"  \"arr\": [1, \"two\", {\"three\": 3}, [4]],\n"
	"  \"usage\": {\"prompt_tokens\": 10, \"details\": {\"cached\": 3, \"x\": {}}},\n"
	"  \"tricky\": \"} ] , \\\" \\\\\", \"after\": \"ok\", \"empty\": {} }";

static void test_get(void **state)
{
	struct json_val root = must_parse(doc), v;
	int64_t n;

	(void)state;
	assert_int_equal(json_get(&root, "id", &v), 0);
	assert_int_equal(v.type, JSON_STRING);
	assert_true(str_eq_cstr(v.raw, "\"x1\""));
	assert_int_equal(json_get(&root, "n", &v), 0);
	assert_int_equal(json_int64(&v, &n), 0);
	assert_int_equal(n, 42);
	assert_int_equal(json_get(&root, "nul", &v), 0);
	assert_int_equal(v.type, JSON_NULL);
	assert_int_equal(json_get(&root, "arr", &v), 0);
	assert_int_equal(v.type, JSON_ARRAY);
	assert_true(str_eq_cstr(v.raw, "[1, \"two\", {\"three\": 3}, [4]]"));
	/* Keys compare unescaped. */
	assert_int_equal(json_get(&root, "s\"q", &v), 0);
	assert_true(json_string_eq(&v, "quoted key"));
	assert_int_equal(json_get(&root, "caf\xc3\xa9", &v), 0);
	assert_true(json_string_eq(&v, "accent"));
	/* Brackets and quotes inside strings do not end anything. */
	assert_int_equal(json_get(&root, "after", &v), 0);
	assert_true(json_string_eq(&v, "ok"));
	assert_int_equal(json_get(&root, "empty", &v), 0);
	assert_true(str_eq_cstr(v.raw, "{}"));

	assert_int_equal(json_get(&root, "missing", &v), -ENOENT);
	assert_int_equal(json_get(&root, "I", &v), -ENOENT);
	assert_int_equal(json_get(&root, "i", &v), -ENOENT);
	assert_int_equal(json_get(&root, "", &v), -ENOENT);
	assert_int_equal(json_get(&root, "three", &v), -ENOENT);	/* nested only */

	struct json_val arr;
	assert_int_equal(json_get(&root, "arr", &arr), 0);
	assert_int_equal(json_get(&arr, "three", &v), -ENOENT);	/* not an object */
	struct json_val num = must_parse("5");
	assert_int_equal(json_get(&num, "x", &v), -ENOENT);

	/* The first of duplicate keys wins. */
	struct json_val dup = must_parse("{\"a\":1,\"a\":2}");
	assert_int_equal(json_get(&dup, "a", &v), 0);
	assert_true(str_eq_cstr(v.raw, "1"));
}

static void test_get_path(void **state)
{
	struct json_val root = must_parse(doc), v;
	int64_t n;

	(void)state;
	assert_int_equal(json_get_path(&root, "usage.prompt_tokens", &v), 0);
	assert_int_equal(json_int64(&v, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal(json_get_path(&root, "usage.details.cached", &v), 0);
	assert_int_equal(json_int64(&v, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(json_get_path(&root, "usage.details.x", &v), 0);
	assert_int_equal(v.type, JSON_OBJECT);
	assert_int_equal(json_get_path(&root, "id", &v), 0);
	assert_true(json_string_eq(&v, "x1"));
	assert_int_equal(json_get_path(&root, "usage.details.missing", &v), -ENOENT);
	assert_int_equal(json_get_path(&root, "usage.prompt_tokens.x", &v), -ENOENT);
	assert_int_equal(json_get_path(&root, "nope.x", &v), -ENOENT);
	assert_int_equal(json_get_path(&root, "usage.", &v), -ENOENT);
}

static void test_iterate(void **state)
{
	struct json_val root = must_parse(" { \"a\" : 1 , \"b\\n\" : [ 2 , 3 ] , \"c\" : \"x,y\" } ");
	struct json_iter it;
	struct json_val v;
	struct str key;

	(void)state;
	json_iter_init(&it, &root);
	assert_true(json_iter_next(&it, &key, &v));
	assert_true(str_eq_cstr(key, "a"));
	assert_true(str_eq_cstr(v.raw, "1"));
	assert_true(json_iter_next(&it, &key, &v));
	assert_true(str_eq_cstr(key, "b\\n"));	/* raw, still escaped */
	assert_int_equal(v.type, JSON_ARRAY);
	assert_true(str_eq_cstr(v.raw, "[ 2 , 3 ]"));
	assert_true(json_iter_next(&it, &key, &v));
	assert_true(str_eq_cstr(key, "c"));
	assert_true(str_eq_cstr(v.raw, "\"x,y\""));
	assert_false(json_iter_next(&it, &key, &v));
	assert_false(json_iter_next(&it, &key, &v));

	struct json_val arr = must_parse("[true,null, -1.5e3 ,\"\\\"\",{},[]]");
	static const char *const raws[] = { "true", "null", "-1.5e3", "\"\\\"\"", "{}", "[]" };
	static const enum json_type types[] = {
		JSON_TRUE, JSON_NULL, JSON_NUMBER, JSON_STRING, JSON_OBJECT, JSON_ARRAY,
	};
	size_t i = 0;
	json_iter_init(&it, &arr);
	while (json_iter_next(&it, &key, &v)) {
		assert_true(i < ARRAY_LEN(raws));
		assert_null(key.p);
		assert_int_equal(v.type, types[i]);
		assert_true(str_eq_cstr(v.raw, raws[i]));
		i++;
	}
	assert_int_equal(i, ARRAY_LEN(raws));
	assert_int_equal(json_array_len(&arr), 6);

	struct json_val empty = must_parse("[ ]");
	json_iter_init(&it, &empty);
	assert_false(json_iter_next(&it, &key, &v));
	assert_int_equal(json_array_len(&empty), 0);
	struct json_val eobj = must_parse("{ }");
	json_iter_init(&it, &eobj);
	assert_false(json_iter_next(&it, &key, &v));
	struct json_val scalar = must_parse("7");
	json_iter_init(&it, &scalar);
	assert_false(json_iter_next(&it, &key, &v));
	assert_int_equal(json_array_len(&scalar), 0);
	assert_int_equal(json_array_len(&root), 0);
}

/* ---- accessors ---- */

static void test_int64(void **state)
{
	static const struct { const char *text; int rc; int64_t want; } cases[] = {
		{ "0", 0, 0 }, { "-0", 0, 0 }, { "7", 0, 7 }, { "-42", 0, -42 },
		{ "9223372036854775807", 0, INT64_MAX },
		{ "-9223372036854775808", 0, INT64_MIN },
		{ "9223372036854775808", -EINVAL, 0 },
		{ "-9223372036854775809", -EINVAL, 0 },
		{ "99999999999999999999", -EINVAL, 0 },
		{ "1.5", -EINVAL, 0 }, { "1e3", -EINVAL, 0 }, { "1.0", -EINVAL, 0 },
		{ "\"5\"", -EINVAL, 0 }, { "true", -EINVAL, 0 }, { "null", -EINVAL, 0 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct json_val v = must_parse(cases[i].text);
		int64_t n = 12345;
		int rc = json_int64(&v, &n);

		if (rc != cases[i].rc || (rc == 0 && n != cases[i].want))
			fail_msg("case %s: rc %d n %lld", cases[i].text, rc, (long long)n);
	}
}

static void test_bool(void **state)
{
	struct json_val v;
	bool b = false;

	(void)state;
	v = must_parse("true");
	assert_int_equal(json_bool(&v, &b), 0);
	assert_true(b);
	v = must_parse("false");
	assert_int_equal(json_bool(&v, &b), 0);
	assert_false(b);
	v = must_parse("null");
	assert_int_equal(json_bool(&v, &b), -EINVAL);
	v = must_parse("1");
	assert_int_equal(json_bool(&v, &b), -EINVAL);
	v = must_parse("\"true\"");
	assert_int_equal(json_bool(&v, &b), -EINVAL);
}

static void test_string(void **state)
{
	char out[64];
	struct json_val v;

	(void)state;
	v = must_parse("\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"");
	assert_int_equal(json_string(&v, out, sizeof(out)), 17);
	assert_string_equal(out, "a\"b\\c/d\be\ff\ng\rh\ti");

	v = must_parse("\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"");
	assert_int_equal(json_string(&v, out, sizeof(out)), 1 + 2 + 3 + 4);
	assert_string_equal(out, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");

	v = must_parse("\"plain \xc3\xa9\"");
	assert_int_equal(json_string(&v, out, sizeof(out)), 8);
	assert_string_equal(out, "plain \xc3\xa9");

	v = must_parse("\"\"");
	assert_int_equal(json_string(&v, out, sizeof(out)), 0);
	assert_string_equal(out, "");

	/* Exactly fitting, one short, and truncation. */
	v = must_parse("\"abcd\"");
	assert_int_equal(json_string(&v, out, 5), 4);
	assert_string_equal(out, "abcd");
	assert_int_equal(json_string(&v, out, 4), -ENOSPC);
	assert_string_equal(out, "abc");
	assert_int_equal(json_string(&v, out, 1), -ENOSPC);
	assert_string_equal(out, "");
	assert_int_equal(json_string(&v, out, 0), -ENOSPC);
	/* A decoded character is never cut in half. */
	v = must_parse("\"ab\\u20ac\"");
	assert_int_equal(json_string(&v, out, 5), -ENOSPC);
	assert_string_equal(out, "ab");
	assert_int_equal(json_string(&v, out, 6), 5);

	v = must_parse("12");
	assert_int_equal(json_string(&v, out, sizeof(out)), -EINVAL);
}

static void test_string_eq(void **state)
{
	struct json_val v;

	(void)state;
	v = must_parse("\"gpt-4o\"");
	assert_true(json_string_eq(&v, "gpt-4o"));
	assert_false(json_string_eq(&v, "gpt-4"));
	assert_false(json_string_eq(&v, "gpt-4o-mini"));
	assert_false(json_string_eq(&v, ""));
	v = must_parse("\"g\\u0070t\\n\"");
	assert_true(json_string_eq(&v, "gpt\n"));
	assert_false(json_string_eq(&v, "gpt"));
	assert_false(json_string_eq(&v, "gpt\nx"));
	v = must_parse("\"\"");
	assert_true(json_string_eq(&v, ""));
	v = must_parse("null");
	assert_false(json_string_eq(&v, "null"));
}

static void test_escape(void **state)
{
	char out[128];
	int n;

	(void)state;
	n = json_escape(out, sizeof(out), "plain", 5);
	assert_int_equal(n, 7);
	assert_memory_equal(out, "\"plain\"", 7);

	const char in[] = "q\" b\\ \n\r\t\b\f \x01\x1f\x7f \xc3\xa9 \xf0\x9f\x98\x80";
	const char want[] = "\"q\\\" b\\\\ \\n\\r\\t\\b\\f \\u0001\\u001f\x7f \xc3\xa9 \xf0\x9f\x98\x80\"";
	n = json_escape(out, sizeof(out), in, sizeof(in) - 1);
	assert_int_equal(n, (int)sizeof(want) - 1);
	assert_memory_equal(out, want, sizeof(want) - 1);

	/* NUL bytes inside the span are escaped, not the end. */
	n = json_escape(out, sizeof(out), "a\0b", 3);
	assert_int_equal(n, 10);
	assert_memory_equal(out, "\"a\\u0000b\"", 10);

	/* Bytes that are not UTF-8 become U+FFFD so the output stays JSON. */
	n = json_escape(out, sizeof(out), "x\xff\xc3", 3);
	assert_int_equal(n, 15);
	assert_memory_equal(out, "\"x\\ufffd\\ufffd\"", 15);

	/* Too small: fails, never writes past cap. */
	memset(out, '#', sizeof(out));
	assert_int_equal(json_escape(out, 6, "plain", 5), -ENOSPC);
	assert_int_equal(out[6], '#');
	assert_int_equal(json_escape(out, 7, "plain", 5), 7);
	assert_int_equal(json_escape(out, 3, "\n", 1), -ENOSPC);
	assert_int_equal(json_escape(out, 4, "\n", 1), 4);
	assert_int_equal(json_escape(out, 0, "", 0), -ENOSPC);
	assert_int_equal(json_escape(out, 2, "", 0), 2);
}

/* Every byte value escapes to valid JSON that reads back the same. */
static void test_escape_round_trip(void **state)
{
	char in[256], esc[2048], back[512];
	struct json_val v;
	size_t n = 0;

	(void)state;
	for (int c = 0; c < 0x80; c++)
		in[n++] = (char)c;
	memcpy(in + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
	n += 9;
	int k = json_escape(esc, sizeof(esc), in, n);
	assert_true(k > 0);
	assert_int_equal(json_parse(esc, (size_t)k, &v, NULL, NULL), 0);
	assert_int_equal(v.type, JSON_STRING);
	assert_int_equal(json_string(&v, back, sizeof(back)), (int)n);
	assert_memory_equal(back, in, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_corpus),
		cmocka_unit_test(test_invalid_corpus),
		cmocka_unit_test(test_root_span),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_error_offsets),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_string_fast_path),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_get_path),
		cmocka_unit_test(test_iterate),
		cmocka_unit_test(test_int64),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_string),
		cmocka_unit_test(test_string_eq),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_escape_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
