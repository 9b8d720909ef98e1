/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mock's HTTP API: routes, the x-mock-* request headers, and the
 * OpenAI endpoints built on the deterministic generator.
 */
#include "mockllm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/json.h"
#include "api/openai.h"
#include "core/log.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define TTFT_MS_MAX 600000u		/* ten minutes */
#define TPS_MAX 1000000u
#define DETAIL_TOKENS_MAX 1000000000u
#define EMBED_DIMS_DEFAULT 8
#define EMBED_DIMS_MAX 4096
#define TOKENS_PER_MESSAGE 3		/* chat framing overhead, as OpenAI counts it */

static const char msg_oom[] = "out of memory";

static const char models_body[] =
	"{\"object\":\"list\",\"data\":["
	"{\"id\":\"mock-small\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"mockllm\"},"
	"{\"id\":\"mock-large\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"mockllm\"},"
	"{\"id\":\"mock-embed\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"mockllm\"}]}";

static const struct {
	const char *path;
	enum http_method method;
	enum route route;
} routes[] = {
	{ "/v1/chat/completions", HTTP_POST, ROUTE_CHAT },
	{ "/v1/completions", HTTP_POST, ROUTE_TEXT },
	{ "/v1/embeddings", HTTP_POST, ROUTE_EMBED },
	{ "/v1/models", HTTP_GET, ROUTE_MODELS },
	{ "/healthz", HTTP_GET, ROUTE_HEALTHZ },
	{ "/mock/stats", HTTP_GET, ROUTE_STATS },
	{ "/mock/behave", HTTP_POST, ROUTE_BEHAVE },
};

static const struct {
	const char *name;
	enum fault fault;
} faults[] = {
	{ "reset", FAULT_RESET },
	{ "reset-mid-stream", FAULT_RESET_MID },
	{ "stall", FAULT_STALL },
	{ "stall-mid-stream", FAULT_STALL_MID },
	{ "garbage", FAULT_GARBAGE },
	{ "close", FAULT_CLOSE },
	{ "error-event", FAULT_ERROR_EVENT },
	{ "context-length", FAULT_CONTEXT_LENGTH },
};

/*
 * POST /mock/behave {"status": 503, "fault": "reset", "ttft_ms": 0, "count": N}:
 * the next N API requests (all threads) behave so, as if they carried the
 * x-mock-* headers; count 0 ends it.  Lets a test make one backend of
 * several fail while the gateway forwards the same headers to all.
 */
static struct {
	int status;
	enum fault fault;
	uint32_t ttft_ms;
	int64_t remaining;	/* atomic */
} behave;

static bool behave_take(struct req_info *r)
{
	int64_t n = __atomic_load_n(&behave.remaining, __ATOMIC_ACQUIRE);
	while (n > 0) {
		if (__atomic_compare_exchange_n(&behave.remaining, &n, n - 1, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			if (behave.status)
				r->status = behave.status;
			if (behave.fault != FAULT_NONE)
				r->fault = behave.fault;
			if (behave.ttft_ms)
				r->ttft_ms = behave.ttft_ms;
			return true;
		}
	}
	return false;
}

static enum route route_lookup(struct str path, enum http_method method, bool *method_ok)
{
	*method_ok = true;
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		if (str_eq_cstr(path, routes[i].path)) {
			*method_ok = method == routes[i].method;
			return routes[i].route;
		}
	}
	return ROUTE_NONE;
}

/* ---- request heads ---------------------------------------------------- */

/* A decimal header no larger than max; an absent one leaves *out alone. */
static int header_u32(const struct http_request *hr, const char *name, uint32_t max,
		      uint32_t *out)
{
	const struct http_header *h = http_find_header(hr->headers, hr->nheaders, name);
	uint64_t v = 0;

	if (!h)
		return 0;
	if (h->value.len == 0 || h->value.len > 10)
		return -EINVAL;
	for (size_t i = 0; i < h->value.len; i++) {
		char d = h->value.p[i];
		if (d < '0' || d > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(d - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int header_fault(const struct http_request *hr, enum fault *out)
{
	const struct http_header *h = http_find_header(hr->headers, hr->nheaders, "x-mock-fault");

	if (!h)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(faults); i++) {
		if (str_case_eq_cstr(h->value, faults[i].name)) {
			*out = faults[i].fault;
			return 0;
		}
	}
	return -EINVAL;
}

/* x-mock-status takes 200 (a normal answer) or an error status. */
static int header_status(const struct http_request *hr, int *out)
{
	uint32_t status = 0;

	if (header_u32(hr, "x-mock-status", 599, &status) ||
	    (status && status != 200 && status < 400))
		return -EINVAL;
	*out = status == 200 ? 0 : (int)status;
	return 0;
}

static void read_overrides(struct req_info *r, const struct http_request *hr)
{
	if (header_u32(hr, "x-mock-ttft-ms", TTFT_MS_MAX, &r->ttft_ms))
		r->bad_header = "x-mock-ttft-ms";
	if (header_u32(hr, "x-mock-tps", TPS_MAX, &r->tps))
		r->bad_header = "x-mock-tps";
	if (header_u32(hr, "x-mock-tokens", MOCK_MAX_TOKENS, &r->tokens))
		r->bad_header = "x-mock-tokens";
	if (header_u32(hr, "x-mock-cached-tokens", DETAIL_TOKENS_MAX, &r->cached_tokens))
		r->bad_header = "x-mock-cached-tokens";
	if (header_u32(hr, "x-mock-reasoning-tokens", DETAIL_TOKENS_MAX, &r->reasoning_tokens))
		r->bad_header = "x-mock-reasoning-tokens";
	if (header_status(hr, &r->status))
		r->bad_header = "x-mock-status";
	if (header_fault(hr, &r->fault))
		r->bad_header = "x-mock-fault";
}

/* Tests check which key the gateway sent upstream: keep the last one. */
static void note_authorization(const struct http_request *hr)
{
	const struct http_header *h = http_find_header(hr->headers, hr->nheaders, "authorization");
	struct str token;

	if (!h)
		return;
	token = h->value;
	if (token.len >= 7 && strncasecmp(token.p, "Bearer ", 7) == 0) {
		token.p += 7;
		token.len -= 7;
	}
	stats_add(STAT_AUTHORIZED, 1);
	stats_note_bearer(token);
}

void api_inspect_head(struct conn *c, const struct http_request *hr, size_t head_len)
{
	const struct mock_config *cfg = c->w->cfg;
	const char *head = buf_head(&c->in);
	struct req_info *r = &c->req;

	*r = (struct req_info){
		.keep_alive = hr->keep_alive,
		.chunked = hr->chunked,
		.expect_continue = hr->expect_continue,
		.minor = hr->minor,
		.content_length = hr->content_length,
		.head_len = head_len,
		.method_at = { (size_t)(hr->method_str.p - head), hr->method_str.len },
		.path_at = { (size_t)(hr->path.p - head), hr->path.len },
		.ttft_ms = cfg->ttft_ms,
		.tps = cfg->tps,
		.tokens = cfg->tokens,
	};
	r->route = route_lookup(hr->path, hr->method, &r->method_ok);
	r->api = str_has_prefix(hr->path, "/v1/");
	if (!r->api)
		return;
	read_overrides(r, hr);
	behave_take(r);
	note_authorization(hr);
	/* Tests check which headers reached the backend (forwarding). */
	if (http_find_header(hr->headers, hr->nheaders, "x-mock-record-headers"))
		stats_note_headers(hr);
}

/* ---- responses ---------------------------------------------------------- */

static void respond_invalid(struct conn *c, const char *message)
{
	if (message == msg_oom)
		conn_respond_error(c, 500, message, "server_error", NULL, "");
	else
		conn_respond_error(c, 400, message, "invalid_request_error", NULL, "");
}

static void respond_json(struct conn *c, struct str body)
{
	conn_respond(c, 200, "application/json", "", body);
}

/* The error x-mock-status asks for, typed the way OpenAI types it. */
static void respond_status(struct conn *c, int status)
{
	const char *type = "invalid_request_error";
	const char *code = NULL;
	const char *extra = "";
	char message[32];

	switch (status) {
	case 401:
		type = "authentication_error";
		code = "invalid_api_key";
		break;
	case 403:
		type = "permission_error";
		break;
	case 404:
		type = "not_found_error";
		code = "model_not_found";
		break;
	case 429:
		type = "rate_limit_error";
		code = "rate_limit_exceeded";
		extra = "Retry-After: 1\r\n";
		break;
	default:
		if (status >= 500)
			type = "server_error";
		break;
	}
	snprintf(message, sizeof(message), "mock error %d", status);
	conn_respond_error(c, status, message, type, code, extra);
}

static void respond_garbage(struct conn *c)
{
	static const char garbage[] = "NOT HTTP\r\n\r\n";
	struct buf *out;

	if (conn_out(c, &out) || buf_append(out, garbage, sizeof(garbage) - 1)) {
		conn_close(c);
		return;
	}
	c->after_flush = AFTER_CLOSE;
}

/* Faults and forced statuses that replace the real answer.  True when the
 * request is dealt with. */
static bool apply_overrides(struct conn *c)
{
	const struct req_info *r = &c->req;
	char message[64];

	if (r->bad_header) {
		snprintf(message, sizeof(message), "invalid %s header", r->bad_header);
		respond_invalid(c, message);
		return true;
	}
	if (r->fault != FAULT_NONE)
		stats_add(STAT_FAULTS, 1);
	switch (r->fault) {
	case FAULT_RESET:
		conn_reset(c);
		return true;
	case FAULT_CLOSE:
		conn_close(c);
		return true;
	case FAULT_STALL:
		reply_stall(c);
		return true;
	case FAULT_GARBAGE:
		respond_garbage(c);
		return true;
	case FAULT_CONTEXT_LENGTH:
		conn_respond_error(c, 400, "This model's maximum context length is 8192 tokens.",
				   "invalid_request_error", "context_length_exceeded", "");
		return true;
	default:
		break;
	}
	if (r->status) {
		respond_status(c, r->status);
		return true;
	}
	return false;
}

/* ---- prompts ------------------------------------------------------------ */

/* One input: text, or a token array's JSON text and its length. */
struct input {
	struct str text;
	int64_t tokens;		/* -1: a text, counted by its words */
};

static void text_add_input(struct gen_text *t, const struct input *in)
{
	if (in->tokens < 0)
		gen_text_add(t, in->text.p, in->text.len);
	else
		gen_text_add_tokens(t, in->text.p, in->text.len, (uint32_t)in->tokens);
}

/* A JSON string's text: its raw bytes when it has no escapes, else
 * unescaped into the worker's scratch (never longer than the raw form). */
static const char *json_text(struct worker *w, const struct json_val *v, struct str *out)
{
	struct str inner = { v->raw.p + 1, v->raw.len - 2 };

	if (!memchr(inner.p, '\\', inner.len)) {
		*out = inner;
		return NULL;
	}
	buf_reset(&w->text);
	if (buf_reserve(&w->text, v->raw.len + 1))
		return msg_oom;
	int n = json_string(v, buf_head(&w->text), buf_room(&w->text));
	if (n < 0)
		return "invalid string in request";
	*out = (struct str){ buf_head(&w->text), (size_t)n };
	return NULL;
}

/* A string or a token array as one input; `invalid` for anything else. */
static const char *input_of(struct worker *w, const struct json_val *v, const char *invalid,
			    struct input *in)
{
	if (v->type == JSON_ARRAY) {
		in->text = v->raw;
		in->tokens = (int64_t)json_array_len(v);
		return NULL;
	}
	if (v->type != JSON_STRING)
		return invalid;
	in->tokens = -1;
	return json_text(w, v, &in->text);
}

static bool is_token_array(const struct json_val *v)
{
	struct json_iter it;
	struct json_val first;
	struct str key;

	if (v->type != JSON_ARRAY)
		return false;
	json_iter_init(&it, v);
	return json_iter_next(&it, &key, &first) && first.type == JSON_NUMBER;
}

typedef const char *(*input_fn)(void *ctx, const struct input *in);

/*
 * Walk an OpenAI "prompt" or "input" field: a string, a token array, an
 * array of strings or an array of token arrays.  Token arrays are taken as
 * their JSON text.  `invalid` is the message for any other shape.
 */
static const char *for_each_input(struct worker *w, const struct json_val *field,
				  const char *invalid, input_fn fn, void *ctx)
{
	struct json_iter it;
	struct json_val v;
	struct input in;
	struct str key;
	const char *err;

	if (field->type == JSON_STRING || is_token_array(field)) {
		err = input_of(w, field, invalid, &in);
		return err ? err : fn(ctx, &in);
	}
	if (field->type != JSON_ARRAY || json_array_len(field) == 0)
		return invalid;
	json_iter_init(&it, field);
	while (json_iter_next(&it, &key, &v)) {
		err = input_of(w, &v, invalid, &in);
		if (!err)
			err = fn(ctx, &in);
		if (err)
			return err;
	}
	return NULL;
}

static const char *prompt_add(void *ctx, const struct input *in)
{
	text_add_input(ctx, in);
	return NULL;
}

static const char *prompt_add_string(struct worker *w, struct gen_text *t, const struct json_val *v)
{
	struct input in;
	const char *err = input_of(w, v, "message content must be a string", &in);

	return err ? err : prompt_add(t, &in);
}

/* A message's content: a string, or an array of parts whose "text" counts. */
static const char *message_prompt(struct worker *w, const struct json_val *msg, struct gen_text *t)
{
	struct json_val content, part, text;
	struct json_iter it;
	struct str key;
	const char *err = NULL;

	if (json_get(msg, "content", &content))
		return NULL;
	if (content.type == JSON_STRING)
		return prompt_add_string(w, t, &content);
	if (content.type != JSON_ARRAY)
		return NULL;
	json_iter_init(&it, &content);
	while (!err && json_iter_next(&it, &key, &part)) {
		if (json_get(&part, "text", &text) == 0 && text.type == JSON_STRING)
			err = prompt_add_string(w, t, &text);
	}
	return err;
}

/* The chat prompt is all the message contents, one after the other; each
 * message also costs TOKENS_PER_MESSAGE prompt tokens. */
static const char *chat_prompt(struct worker *w, const struct json_val *root, struct gen_text *t,
			       uint32_t *overhead)
{
	static const char invalid[] = "'messages' must be an array of message objects";
	struct json_val messages, msg;
	struct json_iter it;
	struct str key;

	if (json_get(root, "messages", &messages) || messages.type != JSON_ARRAY)
		return invalid;
	json_iter_init(&it, &messages);
	while (json_iter_next(&it, &key, &msg)) {
		if (msg.type != JSON_OBJECT)
			return invalid;
		const char *err = message_prompt(w, &msg, t);
		if (err)
			return err;
		*overhead += TOKENS_PER_MESSAGE;
	}
	return NULL;
}

static const char *text_prompt(struct worker *w, const struct json_val *root, struct gen_text *t)
{
	struct json_val prompt;

	if (json_get(root, "prompt", &prompt) || prompt.type == JSON_NULL)
		return NULL;
	return for_each_input(w, &prompt, "'prompt' must be a string, an array of strings "
			      "or an array of token arrays", prompt_add, t);
}

/* ---- completions -------------------------------------------------------- */

/* The client's model string is echoed byte for byte, as a JSON literal. */
static const char *copy_model(const struct api_request *ar, struct gen_completion *g)
{
	struct json_val model;

	if (json_get(&ar->root, "model", &model) || model.type != JSON_STRING)
		return "you must provide a model parameter";
	if (model.raw.len > sizeof(g->model))
		return "'model' is too long";
	memcpy(g->model, model.raw.p, model.raw.len);
	g->model_len = model.raw.len;
	return NULL;
}

/* The output cap from max_tokens / max_completion_tokens, UINT32_MAX if none. */
static const char *output_limit(const struct json_val *root, uint32_t *limit)
{
	static const char *const keys[] = { "max_tokens", "max_completion_tokens" };
	struct json_val v;
	int64_t n;

	*limit = UINT32_MAX;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (json_get(root, keys[i], &v) || v.type == JSON_NULL)
			continue;
		if (json_int64(&v, &n) || n < 1)
			return "'max_tokens' and 'max_completion_tokens' must be positive integers";
		if (n < *limit)
			*limit = (uint32_t)n;
	}
	return NULL;
}

static const char *describe_completion(struct conn *c, const struct api_request *ar,
				       struct gen_completion *g)
{
	const struct req_info *r = &c->req;
	struct gen_text prompt;
	uint32_t overhead = 0;
	uint32_t limit = UINT32_MAX;
	const char *err = copy_model(ar, g);

	gen_text_init(&prompt);
	if (!err)
		err = g->kind == GEN_CHAT ? chat_prompt(c->w, &ar->root, &prompt, &overhead) :
					    text_prompt(c->w, &ar->root, &prompt);
	if (!err)
		err = output_limit(&ar->root, &limit);
	if (err)
		return err;
	g->seed = prompt.hash;
	g->prompt_tokens = prompt.words + overhead;
	g->completion_tokens = r->tokens < limit ? r->tokens : limit;
	g->truncated = limit < r->tokens;
	g->cached_tokens = r->cached_tokens;
	g->reasoning_tokens = r->reasoning_tokens;
	g->include_usage = ar->client_wants_usage;
	return NULL;
}

static void serve_completion(struct conn *c, struct str body, enum gen_kind kind)
{
	struct api_request ar;
	struct gen_completion g = { .kind = kind };
	struct buf *out = &c->w->body;
	char why[256];
	const char *err;

	if (api_parse_request(body.p, body.len, &ar, why, sizeof(why))) {
		respond_invalid(c, why);
		return;
	}
	err = describe_completion(c, &ar, &g);
	if (err) {
		respond_invalid(c, err);
		return;
	}
	if (ar.stream) {
		reply_stream(c, &g);
		return;
	}
	if (c->req.fault == FAULT_ERROR_EVENT) {
		respond_status(c, 500);
		return;
	}
	/* A paced non-stream answer comes when its last token would have. */
	if (c->req.ttft_ms || c->req.tps) {
		reply_delay(c, &g);
		return;
	}
	buf_reset(out);
	if (gen_completion_body(&g, out))
		respond_invalid(c, msg_oom);
	else
		respond_json(c, buf_str(out));
}

/* ---- embeddings --------------------------------------------------------- */

struct embed {
	struct buf *dst;
	uint32_t dims;
	bool base64;
	uint32_t count;
	uint64_t tokens;
};

static const char *embed_one(void *ctx, const struct input *in)
{
	struct embed *e = ctx;
	struct gen_text t;
	int err;

	gen_text_init(&t);
	text_add_input(&t, in);
	err = buf_printf(e->dst, "%s{\"object\":\"embedding\",\"index\":%" PRIu32 ",\"embedding\":",
			 e->count ? "," : "", e->count);
	err |= gen_embedding(t.hash, e->dims, e->base64, e->dst);
	err |= buf_append(e->dst, "}", 1);
	e->count++;
	e->tokens += t.words;
	return err ? msg_oom : NULL;
}

static const char *embed_options(const struct json_val *root, struct embed *e)
{
	struct json_val v;
	int64_t dims;

	e->dims = EMBED_DIMS_DEFAULT;
	if (json_get(root, "dimensions", &v) == 0 && v.type != JSON_NULL) {
		if (json_int64(&v, &dims) || dims < 1 || dims > EMBED_DIMS_MAX)
			return "'dimensions' must be an integer from 1 to 4096";
		e->dims = (uint32_t)dims;
	}
	e->base64 = false;
	if (json_get(root, "encoding_format", &v) == 0 && v.type != JSON_NULL) {
		e->base64 = json_string_eq(&v, "base64");
		if (!e->base64 && !json_string_eq(&v, "float"))
			return "'encoding_format' must be \"float\" or \"base64\"";
	}
	return NULL;
}

static const char *embed_all(struct conn *c, const struct api_request *ar, struct embed *e)
{
	struct gen_completion g;	/* only for its model literal */
	struct json_val input;
	const char *err = copy_model(ar, &g);

	if (!err)
		err = embed_options(&ar->root, e);
	if (err)
		return err;
	if (json_get(&ar->root, "input", &input))
		return "you must provide an 'input' parameter";
	buf_reset(e->dst);
	if (buf_printf(e->dst, "{\"object\":\"list\",\"data\":["))
		return msg_oom;
	err = for_each_input(c->w, &input, "'input' must be a non-empty string, array of strings "
			     "or array of token arrays", embed_one, e);
	if (err)
		return err;
	if (buf_printf(e->dst, "],\"model\":%.*s,\"usage\":{\"prompt_tokens\":%" PRIu64
		       ",\"total_tokens\":%" PRIu64 "}}", (int)g.model_len, g.model,
		       e->tokens, e->tokens))
		return msg_oom;
	return NULL;
}

static void serve_embeddings(struct conn *c, struct str body)
{
	struct api_request ar;
	struct embed e = { .dst = &c->w->body };
	char why[256];
	const char *err;

	if (api_parse_request(body.p, body.len, &ar, why, sizeof(why))) {
		respond_invalid(c, why);
		return;
	}
	err = embed_all(c, &ar, &e);
	if (err)
		respond_invalid(c, err);
	else
		respond_json(c, buf_str(e.dst));
}

/* ---- dispatch ----------------------------------------------------------- */

static void serve_stats(struct conn *c)
{
	struct buf *out = &c->w->body;

	buf_reset(out);
	if (stats_json(out))
		respond_invalid(c, msg_oom);
	else
		respond_json(c, buf_str(out));
}

static int json_u32_member(const struct json_val *root, const char *key, uint32_t max,
			   uint32_t *out)
{
	struct json_val v;
	int64_t n;

	if (json_get(root, key, &v))
		return 0;
	if (json_int64(&v, &n) || n < 0 || n > max)
		return -EINVAL;
	*out = (uint32_t)n;
	return 0;
}

/* What GET /healthz answers (0: 200 ok); POST /mock/behave {"healthz": 503}
 * sets it, for the gateway's active health checks. */
static int healthz_status;

static void serve_behave(struct conn *c, struct str body)
{
	struct json_val root, v;
	size_t off;
	const char *msg;
	uint32_t status = 0, ttft = 0, count = 1;
	enum fault fault = FAULT_NONE;
	if (json_parse(body.p, body.len, &root, &off, &msg) == 0 && root.type == JSON_OBJECT &&
	    json_get(&root, "healthz", &v) == 0) {
		uint32_t hs = 0;
		if (json_u32_member(&root, "healthz", 599, &hs) || (hs && hs < 200)) {
			respond_invalid(c, "healthz takes a status between 200 and 599");
			return;
		}
		__atomic_store_n(&healthz_status, (int)hs, __ATOMIC_RELEASE);
		respond_json(c, STR_LIT("{\"ok\":true}"));
		return;
	}
	bool ok = json_parse(body.p, body.len, &root, &off, &msg) == 0 && root.type == JSON_OBJECT &&
		  !json_u32_member(&root, "status", 599, &status) &&
		  !json_u32_member(&root, "ttft_ms", TTFT_MS_MAX, &ttft) &&
		  !json_u32_member(&root, "count", 1000000000u, &count);
	if (ok && json_get(&root, "fault", &v) == 0) {
		ok = false;
		for (size_t i = 0; i < ARRAY_SIZE(faults); i++)
			if (json_string_eq(&v, faults[i].name)) {
				fault = faults[i].fault;
				ok = true;
			}
	}
	if (!ok || (status && status != 200 && status < 400)) {
		respond_invalid(c, "behave takes {status, fault, ttft_ms, count}");
		return;
	}
	__atomic_store_n(&behave.remaining, 0, __ATOMIC_RELEASE);
	behave.status = status == 200 ? 0 : (int)status;
	behave.fault = fault;
	behave.ttft_ms = ttft;
	__atomic_store_n(&behave.remaining, (int64_t)count, __ATOMIC_RELEASE);
	respond_json(c, STR_LIT("{\"ok\":true}"));
}

static void serve_unknown(struct conn *c, int status, const char *what)
{
	struct str method = conn_head_span(c, c->req.method_at.off, c->req.method_at.len);
	struct str path = conn_head_span(c, c->req.path_at.off, c->req.path_at.len);
	char message[320];

	snprintf(message, sizeof(message), "%s (%.*s %.*s)", what, (int)method.len, method.p,
		 path.len > 256 ? 256 : (int)path.len, path.p);
	conn_respond_error(c, status, message, "invalid_request_error", NULL, "");
}

static void serve_route(struct conn *c, struct str body)
{
	if (!c->req.method_ok) {
		serve_unknown(c, 405, "Method not allowed");
		return;
	}
	switch (c->req.route) {
	case ROUTE_CHAT:
		serve_completion(c, body, GEN_CHAT);
		break;
	case ROUTE_TEXT:
		serve_completion(c, body, GEN_TEXT);
		break;
	case ROUTE_EMBED:
		serve_embeddings(c, body);
		break;
	case ROUTE_MODELS:
		respond_json(c, STR_LIT(models_body));
		break;
	case ROUTE_HEALTHZ: {
		int st = __atomic_load_n(&healthz_status, __ATOMIC_ACQUIRE);
		if (st && st != 200)
			conn_respond_error(c, st, "mock unhealthy", "server_error", NULL, "");
		else
			conn_respond(c, 200, "text/plain", "", STR_LIT("ok"));
		break;
	}
	case ROUTE_STATS:
		serve_stats(c);
		break;
	case ROUTE_BEHAVE:
		serve_behave(c, body);
		break;
	case ROUTE_NONE:
		serve_unknown(c, 404, "Invalid URL");
		break;
	}
}

static void log_request(const char *line, const struct conn *c)
{
	const char *fault = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(faults); i++) {
		if (c->req.api && faults[i].fault == c->req.fault)
			fault = faults[i].name;
	}
	log_info("mockllm[%d]: %s %d%s%s", c->w->id, line, c->status, fault ? " fault=" : "",
		 fault ? fault : "");
}

void api_serve(struct conn *c, struct str body)
{
	char line[256] = "";

	/* The head is gone once the connection closes: describe it first. */
	if (c->w->cfg->verbose) {
		struct str m = conn_head_span(c, c->req.method_at.off, c->req.method_at.len);
		struct str p = conn_head_span(c, c->req.path_at.off, c->req.path_at.len);
		snprintf(line, sizeof(line), "%.*s %.*s", (int)m.len, m.p,
			 p.len > 200 ? 200 : (int)p.len, p.p);
	}
	c->status = 0;
	if (c->req.api)
		stats_add(STAT_REQUESTS, 1);
	if (!c->req.api || !apply_overrides(c))
		serve_route(c, body);
	if (c->w->cfg->verbose)
		log_request(line, c);
}
