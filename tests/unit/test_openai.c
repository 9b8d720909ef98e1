/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "api/openai.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- routes ---- */

static void test_routes(void **state)
{
	static const struct {
		const char *method, *path;
		enum api_endpoint ep;
		bool ok;
	} cases[] = {
		{ "POST", "/v1/chat/completions", API_CHAT, true },
		{ "POST", "/v1/completions", API_COMPLETIONS, true },
		{ "POST", "/v1/embeddings", API_EMBEDDINGS, true },
		{ "GET", "/v1/models", API_MODELS, true },
		{ "HEAD", "/v1/models", API_MODELS, true },
		{ "GET", "/healthz", API_HEALTHZ, true },
		{ "GET", "/readyz", API_READYZ, true },
		{ "GET", "/metrics", API_METRICS, true },
		{ "GET", "/v1/chat/completions", API_CHAT, false },
		{ "PUT", "/v1/chat/completions", API_CHAT, false },
		{ "post", "/v1/chat/completions", API_CHAT, false },
		{ "POST", "/v1/models", API_MODELS, false },
		{ "DELETE", "/v1/models", API_MODELS, false },
		{ "POST", "/healthz", API_HEALTHZ, false },
		{ "POST", "/metrics", API_METRICS, false },
		{ "POST", "/admin/reload", API_ADMIN_RELOAD, true },
		{ "GET", "/admin/reload", API_ADMIN_RELOAD, false },
		{ "POST", "/admin/reload/", API_NONE, true },
		{ "POST", "/v1/chat/completions/", API_NONE, true },
		{ "GET", "/v1/models/", API_NONE, true },
		{ "POST", "/v1/chat/completion", API_NONE, true },
		{ "POST", "/V1/chat/completions", API_NONE, true },
		{ "POST", "//v1/chat/completions", API_NONE, true },
		{ "POST", "/v1/chat/completions/x", API_NONE, true },
		{ "GET", "/", API_NONE, true },
		{ "GET", "", API_NONE, true },
		{ "GET", "/v1", API_NONE, true },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		bool ok = !cases[i].ok;
		enum api_endpoint ep = api_route_path(str_from(cases[i].method),
						      str_from(cases[i].path), &ok);

		if (ep != cases[i].ep || ok != cases[i].ok)
			fail_msg("case %zu %s %s: ep %d ok %d", i, cases[i].method,
				 cases[i].path, ep, ok);
	}
	/* method_ok may be left out. */
	assert_int_equal(api_route_path(STR_LIT("GET"), STR_LIT("/healthz"), NULL), API_HEALTHZ);
}

static void test_endpoint_names(void **state)
{
	(void)state;
	assert_string_equal(api_endpoint_name(API_CHAT), "chat");
	assert_string_equal(api_endpoint_name(API_COMPLETIONS), "completions");
	assert_string_equal(api_endpoint_name(API_EMBEDDINGS), "embeddings");
	assert_string_equal(api_endpoint_name(API_MODELS), "models");
	assert_string_equal(api_endpoint_name(API_HEALTHZ), "healthz");
	assert_string_equal(api_endpoint_name(API_READYZ), "readyz");
	assert_string_equal(api_endpoint_name(API_METRICS), "metrics");
	assert_string_equal(api_endpoint_name(API_ADMIN_RELOAD), "admin_reload");
	assert_string_equal(api_endpoint_name(API_NONE), "none");
}

/* ---- request bodies ---- */

static struct api_request req;
static char why[256];

static int parse_req(const char *body)
{
	why[0] = '\0';
	return api_parse_request(body, strlen(body), &req, why, sizeof(why));
}

static void test_request_valid(void **state)
{
	(void)state;
	assert_int_equal(parse_req("{\"model\":\"gpt-4o\",\"messages\":[]}"), 0);
	assert_true(str_eq_cstr(req.model, "gpt-4o"));
	assert_string_equal(req.model_buf, "gpt-4o");
	assert_false(req.stream);
	assert_false(req.client_wants_usage);
	assert_int_equal(req.stream_options.type, JSON_NONE);
	assert_int_equal(req.root.type, JSON_OBJECT);

	assert_int_equal(parse_req(" {\"stream\": true, \"model\": \"m\"} "), 0);
	assert_true(req.stream);
	assert_false(req.client_wants_usage);

	assert_int_equal(parse_req("{\"model\":\"m\",\"stream\":null,\"stream_options\":null}"), 0);
	assert_false(req.stream);
	assert_int_equal(req.stream_options.type, JSON_NULL);

	assert_int_equal(parse_req("{\"model\":\"m\",\"stream\":true,"
				   "\"stream_options\":{\"include_usage\":true}}"), 0);
	assert_true(req.stream);
	assert_true(req.client_wants_usage);
	assert_int_equal(req.stream_options.type, JSON_OBJECT);

	assert_int_equal(parse_req("{\"model\":\"m\",\"stream\":true,"
				   "\"stream_options\":{\"include_usage\":false}}"), 0);
	assert_false(req.client_wants_usage);

	/* The name is unescaped; member names too. */
	assert_int_equal(parse_req("{\"mod\\u0065l\":\"llama\\u002d3\\/8b\"}"), 0);
	assert_true(str_eq_cstr(req.model, "llama-3/8b"));

	/* A name of API_MODEL_MAX (256) bytes fits. */
	char body[400];
	snprintf(body, sizeof(body), "{\"model\":\"%0256d\"}", 0);
	assert_int_equal(parse_req(body), 0);
	assert_int_equal(req.model.len, 256);
	assert_null(req.error_code);
}

static void test_request_errors(void **state)
{
	static char long_model[400];
	static const struct { const char *body; const char *why; const char *code; } cases[] = {
		{ "[]", "request body must be a JSON object", "invalid_request" },
		{ "\"model\"", "request body must be a JSON object", "invalid_request" },
		{ "{}", "you must provide a model parameter", "missing_model" },
		{ "{\"messages\":[]}", "you must provide a model parameter", "missing_model" },
		{ "{\"model\":null}", "you must provide a model parameter", "missing_model" },
		{ "{\"model\":\"\"}", "you must provide a model parameter", "missing_model" },
		{ "{\"model\":5}", "'model' must be a string", "invalid_model" },
		{ "{\"model\":[\"a\"]}", "'model' must be a string", "invalid_model" },
		{ "{\"model\":\"a\\nb\"}", "'model' must not contain control characters",
		  "invalid_model" },
		{ "{\"model\":\"a\\u0000b\"}", "'model' must not contain control characters",
		  "invalid_model" },
		{ "{\"model\":\"m\",\"stream\":\"true\"}", "'stream' must be a boolean", "invalid_request" },
		{ "{\"model\":\"m\",\"stream\":1}", "'stream' must be a boolean", "invalid_request" },
		{ "{\"model\":\"m\",\"stream\":{}}", "'stream' must be a boolean", "invalid_request" },
		{ "{\"model\":\"m\",\"stream_options\":true}", "'stream_options' must be an object",
		  "invalid_request" },
		{ "{\"model\":\"m\",\"stream_options\":[]}", "'stream_options' must be an object",
		  "invalid_request" },
		{ "{\"model\":\"m\",\"stream_options\":\"x\"}", "'stream_options' must be an object",
		  "invalid_request" },
		{ "{\"model\":\"m\",\"stream_options\":{\"include_usage\":1}}",
		  "'stream_options.include_usage' must be a boolean", "invalid_request" },
		/* Duplicates: the backend might read the other copy. */
		{ "{\"model\":\"a\",\"model\":\"b\"}", "duplicate 'model' in request body",
		  "duplicate_model" },
		{ "{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", "duplicate 'model' in request body",
		  "duplicate_model" },
		{ "{\"model\":5,\"model\":\"b\"}", "duplicate 'model' in request body",
		  "duplicate_model" },
		{ "{\"model\":\"a\",\"stream\":false,\"stream\":true}",
		  "duplicate 'stream' in request body", "invalid_request" },
		{ "{\"model\":\"a\",\"stream_options\":null,\"stream_options\":{}}",
		  "duplicate 'stream_options' in request body", "invalid_request" },
		{ "{\"model\":\"a\",\"stream_options\":{\"include_usage\":true,\"include_usage\":false}}",
		  "duplicate 'include_usage' in stream_options", "invalid_request" },
		{ long_model, "'model' is longer than 256 bytes", "model_too_long" },
		{ "{\"model\":\"m\"", NULL, "invalid_json" },
	};

	(void)state;
	snprintf(long_model, sizeof(long_model), "{\"model\":\"%0257d\"}", 0);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		if (parse_req(cases[i].body) != -EINVAL)
			fail_msg("case %zu accepted: %s", i, cases[i].body);
		if (cases[i].why && strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu: why \"%s\"", i, why);
		if (!req.error_code || strcmp(req.error_code, cases[i].code) != 0)
			fail_msg("case %zu: code %s, want %s", i, req.error_code ? req.error_code : "NULL",
				 cases[i].code);
	}
}

static void test_request_not_json(void **state)
{
	(void)state;
	assert_int_equal(parse_req("{\"model\":\"m\",}"), -EINVAL);
	assert_string_equal(why, "request body is not valid JSON: expected a member name at byte 13");
	assert_int_equal(parse_req(""), -EINVAL);
	assert_string_equal(why, "request body is not valid JSON: unexpected end of input at byte 0");
	assert_int_equal(parse_req("{\"model\":\"m\"} x"), -EINVAL);
	assert_non_null(strstr(why, "at byte 14"));

	/* A small why_buf is truncated, never overrun; none at all is fine. */
	char small[8];
	memset(small, '#', sizeof(small));
	assert_int_equal(api_parse_request("{}", 2, &req, small, 6), -EINVAL);
	assert_string_equal(small, "you m");
	assert_int_equal(small[6], '#');
	assert_int_equal(api_parse_request("{}", 2, &req, NULL, 0), -EINVAL);
}

/* ---- the include_usage edit ---- */

/* Apply edit to body into out (NUL-terminated). */
static void apply_edit(const char *body, const struct api_body_edit *e, char *out, size_t cap)
{
	size_t n = strlen(body);

	assert_true(e->at + e->del <= n);
	assert_true(n - e->del + e->insert.len < cap);
	memcpy(out, body, e->at);
	memcpy(out + e->at, e->insert.p, e->insert.len);
	memcpy(out + e->at + e->insert.len, body + e->at + e->del, n - e->at - e->del);
	out[n - e->del + e->insert.len] = '\0';
}

static void test_usage_edit(void **state)
{
	static const char *const bodies[] = {
		"{\"model\":\"m\",\"stream\":true}",
		"  {\n  \"model\" : \"m\" ,\n  \"stream\" : true\n}\n",
		"{\"stream\":true,\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"{\"}]}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":null}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\": null }",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{}}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{ \n }}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":false}}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\" : false }}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":null}}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"x\":1}}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"x\":1,\"include_usage\":false,\"y\":[2]}}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"incl\\u0075de_usage\":false}}",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bodies); i++) {
		const char *body = bodies[i];
		struct api_body_edit e;
		struct json_val v;
		char out[512];

		if (parse_req(body) != 0)
			fail_msg("case %zu refused: %s", i, why);
		assert_int_equal(api_stream_usage_edit(&req, &e), 0);
		/* The text is static, not a pointer into the body. */
		assert_true(e.insert.p < body || e.insert.p >= body + strlen(body));
		apply_edit(body, &e, out, sizeof(out));

		if (parse_req(out) != 0)
			fail_msg("case %zu: edited body refused (%s): %s", i, why, out);
		assert_true(req.stream);
		assert_true(req.client_wants_usage);
		assert_true(str_eq_cstr(req.model, "m"));
		assert_int_equal(json_get_path(&req.root, "stream_options.include_usage", &v), 0);
		assert_int_equal(v.type, JSON_TRUE);
		/* Nothing else changed. */
		if (strstr(body, "\"x\":1"))
			assert_int_equal(json_get_path(&req.root, "stream_options.x", &v), 0);
		if (strstr(body, "messages"))
			assert_int_equal(json_get(&req.root, "messages", &v), 0);
		/* And a second pass has nothing left to do. */
		assert_int_equal(api_stream_usage_edit(&req, &e), 1);
	}
}

static void test_usage_edit_offsets(void **state)
{
	const char *body = "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":false}}";
	struct api_body_edit e;

	(void)state;
	assert_int_equal(parse_req(body), 0);
	assert_int_equal(api_stream_usage_edit(&req, &e), 0);
	assert_int_equal(e.at, strstr(body, "false") - body);
	assert_int_equal(e.del, 5);
	assert_true(str_eq_cstr(e.insert, "true"));

	body = " {\"model\":\"m\",\"stream\":true}";
	assert_int_equal(parse_req(body), 0);
	assert_int_equal(api_stream_usage_edit(&req, &e), 0);
	assert_int_equal(e.at, 2);
	assert_int_equal(e.del, 0);
	assert_true(str_eq_cstr(e.insert, "\"stream_options\":{\"include_usage\":true},"));

	body = "{\"model\":\"m\",\"stream\":true,\"stream_options\":{}}";
	assert_int_equal(parse_req(body), 0);
	assert_int_equal(api_stream_usage_edit(&req, &e), 0);
	assert_int_equal(e.at, strlen(body) - 2);
	assert_true(str_eq_cstr(e.insert, "\"include_usage\":true"));
}

static void test_usage_edit_not_needed(void **state)
{
	static const char *const bodies[] = {
		"{\"model\":\"m\"}",
		"{\"model\":\"m\",\"stream\":false}",
		"{\"model\":\"m\",\"stream\":null,\"stream_options\":{\"include_usage\":false}}",
		"{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
	};
	struct api_body_edit e;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bodies); i++) {
		assert_int_equal(parse_req(bodies[i]), 0);
		assert_int_equal(api_stream_usage_edit(&req, &e), 1);
	}
}

/* Cases api_parse_request never produces, built by hand. */
static void test_usage_edit_by_hand(void **state)
{
	const char *body = "{}";
	struct api_request r = { .stream = true, .body = body };
	struct api_body_edit e;
	char out[128];

	(void)state;
	/* An empty root object gets no comma. */
	assert_int_equal(json_parse(body, 2, &r.root, NULL, NULL), 0);
	r.stream_options = (struct json_val){ JSON_NONE, STR_NULL };
	assert_int_equal(api_stream_usage_edit(&r, &e), 0);
	apply_edit(body, &e, out, sizeof(out));
	assert_string_equal(out, "{\"stream_options\":{\"include_usage\":true}}");

	/* stream_options of another type cannot be edited. */
	r.stream_options = (struct json_val){ JSON_ARRAY, STR_LIT("[]") };
	assert_int_equal(api_stream_usage_edit(&r, &e), -EINVAL);
	r.stream_options = (struct json_val){ JSON_STRING, STR_LIT("\"x\"") };
	assert_int_equal(api_stream_usage_edit(&r, &e), -EINVAL);
}

/* ---- usage ---- */

static int usage_of(const char *json, struct api_usage *u, bool *only)
{
	return api_parse_usage(json, strlen(json), u, only);
}

static void test_usage_chat(void **state)
{
	const char *body =
		"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
		"\"message\":{\"role\":\"assistant\",\"content\":\"usage: {\\\"prompt_tokens\\\": 1}\"},"
		"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
		"\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":4,\"audio_tokens\":0},"
		"\"completion_tokens_details\":{\"reasoning_tokens\":3}}}";
	struct api_usage u;
	bool only = true;

	(void)state;
	assert_int_equal(usage_of(body, &u, &only), 0);
	assert_false(only);
	assert_int_equal(u.prompt_tokens, 19);
	assert_int_equal(u.completion_tokens, 10);
	assert_int_equal(u.total_tokens, 29);
	assert_int_equal(u.cached_tokens, 4);
	assert_int_equal(u.reasoning_tokens, 3);

	/* Without the details objects. */
	assert_int_equal(usage_of("{\"choices\":[{}],\"usage\":{\"prompt_tokens\":5,"
				  "\"completion_tokens\":6,\"total_tokens\":11}}", &u, NULL), 0);
	assert_int_equal(u.prompt_tokens, 5);
	assert_int_equal(u.completion_tokens, 6);
	assert_int_equal(u.total_tokens, 11);
	assert_int_equal(u.cached_tokens, -1);
	assert_int_equal(u.reasoning_tokens, -1);
}

static void test_usage_stream_chunks(void **state)
{
	struct api_usage u;
	bool only;

	(void)state;
	/* A content chunk: no usage yet. */
	assert_int_equal(usage_of("{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":"
				  "[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}",
				  &u, &only), -ENOENT);
	assert_false(only);
	assert_int_equal(u.prompt_tokens, -1);
	assert_int_equal(usage_of("{\"choices\":[{\"delta\":{}}]}", &u, &only), -ENOENT);
	assert_false(only);

	/* The usage-only final chunk include_usage adds. */
	assert_int_equal(usage_of("{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],"
				  "\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":2,"
				  "\"total_tokens\":10}}", &u, &only), 0);
	assert_true(only);
	assert_int_equal(u.prompt_tokens, 8);
	assert_int_equal(u.completion_tokens, 2);
	assert_int_equal(u.total_tokens, 10);

	/* Some servers leave "choices" out of it, or put usage on the last
	 * content chunk instead. */
	assert_int_equal(usage_of("{\"usage\":{\"prompt_tokens\":1,\"total_tokens\":1}}", &u, &only), 0);
	assert_true(only);
	assert_int_equal(usage_of("{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],"
				  "\"usage\":{\"prompt_tokens\":3}}", &u, &only), 0);
	assert_false(only);
	assert_int_equal(u.prompt_tokens, 3);
	assert_int_equal(u.total_tokens, -1);
}

static void test_usage_embeddings(void **state)
{
	const char *body = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
			   "\"embedding\":[0.0023,-0.0093,1e-3]}],\"model\":\"e\","
			   "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";
	struct api_usage u;
	bool only = false;

	(void)state;
	assert_int_equal(usage_of(body, &u, &only), 0);
	assert_int_equal(u.prompt_tokens, 8);
	assert_int_equal(u.total_tokens, 8);
	assert_int_equal(u.completion_tokens, -1);
	assert_int_equal(u.cached_tokens, -1);
	assert_int_equal(u.reasoning_tokens, -1);
}

static void test_usage_absent_or_bad(void **state)
{
	struct api_usage u;
	bool only;

	(void)state;
	assert_int_equal(usage_of("{\"usage\":null}", &u, NULL), -ENOENT);
	assert_int_equal(usage_of("{\"usage\":5}", &u, NULL), -ENOENT);
	assert_int_equal(usage_of("{}", &u, NULL), -ENOENT);
	assert_int_equal(usage_of("[{\"usage\":{}}]", &u, &only), -ENOENT);
	assert_false(only);
	assert_int_equal(usage_of("{\"usage\":{\"prompt_tokens\":", &u, NULL), -EINVAL);
	assert_int_equal(usage_of("", &u, NULL), -EINVAL);
	assert_int_equal(u.prompt_tokens, -1);
	/* Values that are not integers are not reported. */
	assert_int_equal(usage_of("{\"usage\":{\"prompt_tokens\":\"5\",\"completion_tokens\":1.5,"
				  "\"total_tokens\":null}}", &u, NULL), 0);
	assert_int_equal(u.prompt_tokens, -1);
	assert_int_equal(u.completion_tokens, -1);
	assert_int_equal(u.total_tokens, -1);

	api_usage_clear(&u);
	assert_int_equal(u.prompt_tokens, -1);
	assert_int_equal(u.completion_tokens, -1);
	assert_int_equal(u.total_tokens, -1);
	assert_int_equal(u.cached_tokens, -1);
	assert_int_equal(u.reasoning_tokens, -1);
}

/* A backend's counts outside [0, INT64_MAX] are not counts: -1. */
static void test_usage_hostile_numbers(void **state)
{
	struct api_usage u;

	(void)state;
	assert_int_equal(usage_of("{\"usage\":{\"prompt_tokens\":9223372036854775807,"
				  "\"completion_tokens\":-5,\"total_tokens\":-9223372036854775808,"
				  "\"prompt_tokens_details\":{\"cached_tokens\":18446744073709551616},"
				  "\"completion_tokens_details\":{\"reasoning_tokens\":-0}}}",
				  &u, NULL), 0);
	assert_int_equal(u.prompt_tokens, INT64_MAX);
	assert_int_equal(u.completion_tokens, -1);
	assert_int_equal(u.total_tokens, -1);
	assert_int_equal(u.cached_tokens, -1);
	assert_int_equal(u.reasoning_tokens, 0);
}

/* ---- what a request may use ---- */

static uint64_t output_tokens(const char *body, uint64_t dflt)
{
	assert_int_equal(parse_req(body), 0);
	return api_output_tokens(&req, dflt);
}

static void test_output_tokens(void **state)
{
	(void)state;
	assert_int_equal(output_tokens("{\"model\":\"m\"}", 4096), 4096);
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":20}", 4096), 20);
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":20,"
				       "\"max_completion_tokens\":30,\"n\":3}", 4096), 90);
	/* n: absent or 0 is one, above 128 is 128; bad values are absent */
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":10,\"n\":0}", 1), 10);
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":10,\"n\":1000}", 1),
			 1280);
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":-7,\"n\":\"2\"}", 50),
			 50);
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":1e3,\"n\":-1}", 50),
			 50);
	/* 2^62 four times is 2^64: it saturates instead of wrapping to 0 */
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":4611686018427387904,"
				       "\"n\":4}", 4096), UINT64_MAX);
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_completion_tokens\":"
				       "9223372036854775807,\"n\":128}", 4096), UINT64_MAX);
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":"
				       "144115188075855872,\"n\":128}", 4096), UINT64_MAX);
	assert_int_equal(output_tokens("{\"model\":\"m\",\"max_tokens\":"
				       "144115188075855871,\"n\":128}", 4096),
			 144115188075855871ull * 128);
}

/* ---- error bodies ---- */

static void test_error_body(void **state)
{
	char out[256];
	struct json_val root, v;
	int n;

	(void)state;
	n = api_error_body(out, sizeof(out), "you must provide a model parameter",
			   "invalid_request_error", NULL);
	assert_string_equal(out, "{\"error\":{\"message\":\"you must provide a model parameter\","
				 "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
	assert_int_equal(n, (int)strlen(out));

	n = api_error_body(out, sizeof(out), "bad \"model\"\n\\ \x01", "invalid_request_error",
			   "model_not_found");
	assert_true(n > 0);
	assert_int_equal(json_parse(out, (size_t)n, &root, NULL, NULL), 0);
	assert_int_equal(json_get_path(&root, "error.message", &v), 0);
	assert_true(json_string_eq(&v, "bad \"model\"\n\\ \x01"));
	assert_int_equal(json_get_path(&root, "error.code", &v), 0);
	assert_true(json_string_eq(&v, "model_not_found"));
	assert_int_equal(json_get_path(&root, "error.param", &v), 0);
	assert_int_equal(v.type, JSON_NULL);

	/* Exactly enough room (with the terminator), one byte short, tiny. */
	n = api_error_body(out, sizeof(out), "m", "t", "c");
	assert_true(n > 0);
	memset(out, '#', sizeof(out));
	assert_int_equal(api_error_body(out, (size_t)n + 1, "m", "t", "c"), n);
	assert_int_equal(out[n], '\0');
	memset(out, '#', sizeof(out));
	assert_int_equal(api_error_body(out, (size_t)n, "m", "t", "c"), -ENOSPC);
	assert_int_equal(out[n], '#');
	assert_int_equal(api_error_body(out, 4, "m", "t", "c"), -ENOSPC);
	assert_int_equal(api_error_body(out, 0, "m", "t", "c"), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_endpoint_names),
		cmocka_unit_test(test_request_valid),
		cmocka_unit_test(test_request_errors),
		cmocka_unit_test(test_request_not_json),
		cmocka_unit_test(test_usage_edit),
		cmocka_unit_test(test_usage_edit_offsets),
		cmocka_unit_test(test_usage_edit_not_needed),
		cmocka_unit_test(test_usage_edit_by_hand),
		cmocka_unit_test(test_usage_chat),
		cmocka_unit_test(test_usage_stream_chunks),
		cmocka_unit_test(test_usage_embeddings),
		cmocka_unit_test(test_usage_absent_or_bad),
		cmocka_unit_test(test_usage_hostile_numbers),
		cmocka_unit_test(test_output_tokens),
		cmocka_unit_test(test_error_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
