/* SPDX-License-Identifier: Apache-2.0 */
#include "api/openai.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/sat.h"

/* ---- routes ------------------------------------------------------------ */

struct route {
	const char *path;
	enum api_endpoint ep;
	bool post;		/* POST only; otherwise GET (and HEAD) */
};

static const struct route routes[] = {
	{ "/v1/chat/completions", API_CHAT,        true },
	{ "/v1/completions",      API_COMPLETIONS, true },
	{ "/v1/embeddings",       API_EMBEDDINGS,  true },
	{ "/v1/models",           API_MODELS,      false },
	{ "/healthz",             API_HEALTHZ,     false },
	{ "/readyz",              API_READYZ,      false },
	{ "/metrics",             API_METRICS,     false },
	{ "/admin/reload",        API_ADMIN_RELOAD, true },
	{ "/admin/routes",        API_ADMIN_ROUTES, false },
};

static bool method_allowed(const struct route *r, struct str method)
{
	if (r->post)
		return str_eq_cstr(method, "POST");
	/* HEAD is GET without the body (RFC 9110 section 9.3.2). */
	return str_eq_cstr(method, "GET") || str_eq_cstr(method, "HEAD");
}

enum api_endpoint api_route_path(struct str method, struct str path, bool *method_ok)
{
	bool ok = true;
	enum api_endpoint ep = API_NONE;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (str_eq_cstr(path, routes[i].path)) {
			ep = routes[i].ep;
			ok = method_allowed(&routes[i], method);
			break;
		}
	}
	/* /admin/routes/<route>: one row for every route name */
	if (ep == API_NONE && path.len > 14 && memcmp(path.p, "/admin/routes/", 14) == 0) {
		ep = API_ADMIN_ROUTE;
		ok = str_eq_cstr(method, "POST");
	}
	if (method_ok)
		*method_ok = ok;
	return ep;
}

const char *api_endpoint_name(enum api_endpoint ep)
{
	switch (ep) {
	case API_CHAT:        return "chat";
	case API_COMPLETIONS: return "completions";
	case API_EMBEDDINGS:  return "embeddings";
	case API_MODELS:      return "models";
	case API_HEALTHZ:     return "healthz";
	case API_READYZ:      return "readyz";
	case API_METRICS:     return "metrics";
	case API_ADMIN_RELOAD: return "admin_reload";
	case API_ADMIN_ROUTES: return "admin_routes";
	case API_ADMIN_ROUTE:  return "admin_route";
	case API_NONE:
	default:              return "none";
	}
}

/* ---- request bodies ---------------------------------------------------- */

static int reject(struct api_request *req, const char *code, char *why_buf, size_t why_cap,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int reject(struct api_request *req, const char *code, char *why_buf, size_t why_cap,
		  const char *fmt, ...)
{
	va_list ap;

	req->error_code = code;
	if (why_buf && why_cap) {
		va_start(ap, fmt);
		vsnprintf(why_buf, why_cap, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * Whether an object member name (raw, still escaped) is `name`.  The
 * iterator's key sits between its quotes in the buffer, so widening the
 * span by one byte each side gives a JSON string to compare.
 */
static bool key_is(struct str key, const char *name)
{
	struct json_val v = { JSON_STRING, { key.p - 1, key.len + 2 } };

	return json_string_eq(&v, name);
}

/*
 * Find each of names[0..n) among obj's members in one pass.  A name that
 * appears twice is refused: parsers differ on which copy wins, and a
 * gateway that reads the first "model" or "stream" while the backend reads
 * the last would route, bill and frame the wrong request.
 */
static int find_unique(const struct json_val *obj, const char *const *names,
		       struct json_val *vals, size_t n, const char **dup)
{
	struct json_iter it;
	struct json_val v;
	struct str key;

	for (size_t i = 0; i < n; i++)
		vals[i] = (struct json_val){ JSON_NONE, STR_NULL };
	json_iter_init(&it, obj);
	while (json_iter_next(&it, &key, &v)) {
		for (size_t i = 0; i < n; i++) {
			if (!key_is(key, names[i]))
				continue;
			if (vals[i].type != JSON_NONE) {
				*dup = names[i];
				return -EEXIST;
			}
			vals[i] = v;
			break;
		}
	}
	return 0;
}

static bool has_control_char(struct str s)
{
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.p[i] < 0x20 || s.p[i] == 0x7f)
			return true;
	return false;
}

static int parse_model(struct api_request *req, const struct json_val *v,
		       char *why_buf, size_t why_cap)
{
	if (v->type == JSON_NONE || v->type == JSON_NULL)
		return reject(req, "missing_model", why_buf, why_cap, "you must provide a model parameter");
	if (v->type != JSON_STRING)
		return reject(req, "invalid_model", why_buf, why_cap, "'model' must be a string");

	int n = json_string(v, req->model_buf, sizeof(req->model_buf));
	if (n == -ENOSPC)
		return reject(req, "model_too_long", why_buf, why_cap,
			      "'model' is longer than %d bytes", API_MODEL_MAX);
	if (n < 0)
		return reject(req, "invalid_model", why_buf, why_cap, "'model' must be a string");
	if (n == 0)
		return reject(req, "missing_model", why_buf, why_cap, "you must provide a model parameter");
	req->model = (struct str){ req->model_buf, (size_t)n };
	/* The name ends up in logs, metric labels and upstream URLs. */
	if (has_control_char(req->model))
		return reject(req, "invalid_model", why_buf, why_cap,
			      "'model' must not contain control characters");
	return 0;
}

/* An optional boolean: absent and null read as false. */
static int parse_flag(const struct json_val *v, bool *out)
{
	*out = false;
	if (v->type == JSON_NONE || v->type == JSON_NULL)
		return 0;
	return json_bool(v, out);
}

static int parse_stream_options(struct api_request *req, const struct json_val *v,
				char *why_buf, size_t why_cap)
{
	static const char *const names[] = { "include_usage" };
	struct json_val usage;
	const char *dup;

	req->stream_options = *v;
	if (v->type == JSON_NONE || v->type == JSON_NULL)
		return 0;
	if (v->type != JSON_OBJECT)
		return reject(req, "invalid_request", why_buf, why_cap, "'stream_options' must be an object");
	if (find_unique(v, names, &usage, 1, &dup))
		return reject(req, "invalid_request", why_buf, why_cap, "duplicate '%s' in stream_options",
			      dup);
	if (parse_flag(&usage, &req->client_wants_usage))
		return reject(req, "invalid_request", why_buf, why_cap,
			      "'stream_options.include_usage' must be a boolean");
	return 0;
}

int api_parse_request(const char *body, size_t len, struct api_request *req,
		      char *why_buf, size_t why_cap)
{
	static const char *const names[] = { "model", "stream", "stream_options" };
	enum { F_MODEL, F_STREAM, F_STREAM_OPTIONS, F_COUNT };
	struct json_val f[F_COUNT];
	const char *msg, *dup;
	size_t off;
	int err;

	req->model = STR_NULL;
	req->model_buf[0] = '\0';
	req->stream = false;
	req->client_wants_usage = false;
	req->stream_options = (struct json_val){ JSON_NONE, STR_NULL };
	req->root = (struct json_val){ JSON_NONE, STR_NULL };
	req->body = body;
	req->error_code = NULL;

	if (json_parse(body, len, &req->root, &off, &msg))
		return reject(req, "invalid_json", why_buf, why_cap,
			      "request body is not valid JSON: %s at byte %zu", msg, off);
	if (req->root.type != JSON_OBJECT)
		return reject(req, "invalid_request", why_buf, why_cap, "request body must be a JSON object");
	if (find_unique(&req->root, names, f, F_COUNT, &dup))
		return reject(req, strcmp(dup, "model") == 0 ? "duplicate_model" : "invalid_request",
			      why_buf, why_cap, "duplicate '%s' in request body", dup);

	err = parse_model(req, &f[F_MODEL], why_buf, why_cap);
	if (err)
		return err;
	if (parse_flag(&f[F_STREAM], &req->stream))
		return reject(req, "invalid_request", why_buf, why_cap, "'stream' must be a boolean");
	return parse_stream_options(req, &f[F_STREAM_OPTIONS], why_buf, why_cap);
}

/* ---- the include_usage edit ------------------------------------------- */

/*
 * Texts inserted after an object's '{'.  Each ends with the comma that
 * separates it from the members already there; for an empty object the
 * edit uses one byte less.
 */
#define TEXT(s) { (s), sizeof(s) - 1 }	/* STR_LIT, usable in static initializers */
static const struct str insert_stream_options =
	TEXT("\"stream_options\":{\"include_usage\":true},");
static const struct str insert_include_usage = TEXT("\"include_usage\":true,");
static const struct str replace_null_options = TEXT("{\"include_usage\":true}");
static const struct str replace_true = TEXT("true");

static bool object_is_empty(const struct json_val *obj)
{
	struct json_iter it;
	struct json_val v;
	struct str key;

	json_iter_init(&it, obj);
	return !json_iter_next(&it, &key, &v);
}

static size_t offset_in_body(const struct api_request *req, const char *p)
{
	return (size_t)(p - req->body);
}

static void edit_insert_first(const struct api_request *req, const struct json_val *obj,
			      struct str text, struct api_body_edit *edit)
{
	if (object_is_empty(obj))
		text.len--;
	edit->at = offset_in_body(req, obj->raw.p + 1);
	edit->del = 0;
	edit->insert = text;
}

static void edit_replace(const struct api_request *req, const struct json_val *v,
			 struct str text, struct api_body_edit *edit)
{
	edit->at = offset_in_body(req, v->raw.p);
	edit->del = v->raw.len;
	edit->insert = text;
}

int api_stream_usage_edit(const struct api_request *req, struct api_body_edit *edit)
{
	const struct json_val *opts = &req->stream_options;
	struct json_val usage;

	if (!req->stream || req->client_wants_usage)
		return 1;
	switch (opts->type) {
	case JSON_NONE:
		edit_insert_first(req, &req->root, insert_stream_options, edit);
		return 0;
	case JSON_NULL:
		/* Adding a second "stream_options" would make a duplicate key. */
		edit_replace(req, opts, replace_null_options, edit);
		return 0;
	case JSON_OBJECT:
		if (json_get(opts, "include_usage", &usage) == 0)
			edit_replace(req, &usage, replace_true, edit);
		else
			edit_insert_first(req, opts, insert_include_usage, edit);
		return 0;
	default:
		return -EINVAL;
	}
}

/* ---- what a request may use -------------------------------------------- */

/* A non-negative integer member of the root, or dflt. */
static uint64_t root_count(const struct api_request *req, const char *key, uint64_t dflt)
{
	struct json_val v;
	int64_t n;

	if (json_get(&req->root, key, &v) || json_int64(&v, &n) || n < 0)
		return dflt;
	return (uint64_t)n;
}

uint64_t api_output_tokens(const struct api_request *req, uint64_t dflt)
{
	uint64_t out = root_count(req, "max_completion_tokens", 0);
	uint64_t n = root_count(req, "n", 1);

	if (!out)
		out = root_count(req, "max_tokens", dflt);
	return sat_mul_u64(out, n ? min_u64(n, 128) : 1);
}

/* ---- usage ------------------------------------------------------------- */

void api_usage_clear(struct api_usage *u)
{
	u->prompt_tokens = -1;
	u->completion_tokens = -1;
	u->total_tokens = -1;
	u->cached_tokens = -1;
	u->reasoning_tokens = -1;
}

/* A count is a non-negative integer; anything else (a backend's -5, 1e3,
 * "12", 2^64) reads as not reported, so every consumer sees -1 or a count
 * in [0, INT64_MAX]. */
static void read_count(const struct json_val *usage, const char *path, int64_t *out)
{
	struct json_val v;

	if (json_get_path(usage, path, &v) || json_int64(&v, out) || *out < 0)
		*out = -1;
}

static bool has_no_choices(const struct json_val *root)
{
	struct json_val choices;

	if (root->type != JSON_OBJECT)
		return false;
	if (json_get(root, "choices", &choices))
		return true;
	if (choices.type == JSON_NULL)
		return true;
	return choices.type == JSON_ARRAY && json_array_len(&choices) == 0;
}

int api_parse_usage(const char *json, size_t len, struct api_usage *u, bool *only_usage)
{
	struct json_val root, usage;

	api_usage_clear(u);
	if (only_usage)
		*only_usage = false;
	if (json_parse(json, len, &root, NULL, NULL))
		return -EINVAL;
	if (only_usage)
		*only_usage = has_no_choices(&root);
	if (json_get(&root, "usage", &usage) || usage.type != JSON_OBJECT)
		return -ENOENT;
	read_count(&usage, "prompt_tokens", &u->prompt_tokens);
	read_count(&usage, "completion_tokens", &u->completion_tokens);
	read_count(&usage, "total_tokens", &u->total_tokens);
	read_count(&usage, "prompt_tokens_details.cached_tokens", &u->cached_tokens);
	read_count(&usage, "completion_tokens_details.reasoning_tokens",
		   &u->reasoning_tokens);
	return 0;
}

/* ---- error bodies ------------------------------------------------------ */

struct out {
	char *dst;
	size_t cap, len;
	bool full;
};

static void out_lit(struct out *o, const char *s)
{
	size_t n = strlen(s);

	if (o->full || n > o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->dst + o->len, s, n);
	o->len += n;
}

/* A JSON string for s, or null when s is NULL. */
static void out_string(struct out *o, const char *s)
{
	if (!s) {
		out_lit(o, "null");
		return;
	}
	if (o->full)
		return;
	int n = json_escape(o->dst + o->len, o->cap - o->len, s, strlen(s));
	if (n < 0)
		o->full = true;
	else
		o->len += (size_t)n;
}

int api_error_body(char *dst, size_t cap, const char *message, const char *type,
		   const char *code)
{
	struct out o = { dst, cap, 0, false };

	out_lit(&o, "{\"error\":{\"message\":");
	out_string(&o, message ? message : "");
	out_lit(&o, ",\"type\":");
	out_string(&o, type);
	out_lit(&o, ",\"param\":null,\"code\":");
	out_string(&o, code);
	out_lit(&o, "}}");
	/* Room for a terminator too, so the body can be logged as a string. */
	if (o.full || o.len >= cap || o.len > INT32_MAX)
		return -ENOSPC;
	dst[o.len] = '\0';
	return (int)o.len;
}
