/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Routes and failover of one exchange: which target an attempt goes to,
 * and falling back along the route's chain while the client has seen
 * nothing of the failed attempt.
 *
 * A request is routed once (route_find, route_choose) and sent to the
 * chosen arm.  Until the first content byte is committed to the client,
 * a connect error, timeout, reset, protocol error, 5xx, 429, or an error
 * event inside a 200 event stream moves the exchange to the next target of
 * the chain, if the route's retry budget allows it:
 *
 *   - a non-streamed response is held whole anyway (exchange.c), so a bad
 *     status is simply not relayed;
 *   - a streamed response's head and its role-only or empty events are
 *     appended to the client's output chain but not flushed (c->out from
 *     x->hold_mark); the first content event commits them, a failure rolls
 *     them back (chain_rollback) and the client never learns of the attempt.
 *     At most FAILOVER_HOLD_MAX bytes are held; past that they are committed.
 *
 * Once committed, failures end the stream as before (exchange.c's
 * fail_stream): no second answer is spliced into the first.
 *
 * The hooks here are what a route stage will call when the stage seam lands.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "core/log.h"
#include "http/sse.h"
#include "proxy/proxy.h"

#define FAILOVER_HOLD_MAX	(64u * 1024)
#define RETRY_AFTER_MAX_S	300	/* a longer Retry-After is capped: a
					 * backend cannot park an arm for days */
#define NS_PER_S		1000000000ull

static struct route_cursor *cursor(struct exchange *x)
{
	return &x->snap->w[x->c->w->id].cursor;
}

static uint64_t now_ns(struct exchange *x)
{
	return x->c->w->loop.now;
}

static const char *tenant_name(const struct exchange *x)
{
	return __atomic_load_n(&x->c->w->gw->tenant_names[x->tenant], __ATOMIC_ACQUIRE);
}

int failover_route(struct exchange *x)
{
	struct route_ctx ctx = {
		.model = x->api.model,
		.headers = x->req.headers,
		.nheaders = x->req.nheaders,
		.key_id = x->authenticated && x->id.method == AUTH_API_KEY
				  ? str_from(x->id.key_id) : STR_NULL,
		.tenant = tenant_name(x),
	};
	x->route = route_find(&x->snap->routes, &ctx);
	if (!x->route)
		return -ENOENT;
	x->arm = route_choose(&x->snap->routes, cursor(x), x->route, &ctx, now_ns(x));
	if (!x->arm)
		return -EHOSTUNREACH;
	/* Every arm's breaker open: straight to the chain, which costs no
	 * retry (nothing was tried); without one, the arm is tried anyway. */
	const struct route_arm *fb;
	if (!route_arm_available(cursor(x), x->route, x->arm, now_ns(x)) &&
	    (fb = route_next(cursor(x), x->route, x->arm, now_ns(x))))
		x->arm = fb;
	x->backend = (int)x->arm->backend;
	if (!x->route->implicit)
		route_budget_request(cursor(x), x->route, now_ns(x));
	return 0;
}

/* Build the request for x->arm and hand it to a connection; a target that
 * cannot even be tried (no memory for a connection) gives way to the next
 * one the budget allows.  0, or <0 with nothing in flight. */
int failover_send(struct exchange *x)
{
	for (;;) {
		int err = exchange_build_request(x);
		if (err)
			return err;
		route_attempt_start(cursor(x), x->arm);
		x->attempt_open = true;
		x->t_attempt = now_ns(x);
		if (x->attempts < EXCHANGE_TRIED_MAX)
			x->tried[x->attempts] = (uint16_t)x->arm->backend;
		x->attempts++;
		if (upstream_send(x, true) == 0)
			return 0;
		failover_end(x, false);
		if (!failover_plan_retry(x))
			return -ENOMEM;
		x->arm = x->retry_arm;
		x->retry_arm = NULL;
		x->backend = (int)x->arm->backend;
	}
}

void failover_end(struct exchange *x, bool ok)
{
	if (!x->attempt_open)
		return;
	x->attempt_open = false;
	route_attempt_end(cursor(x), x->route, x->arm, ok, now_ns(x) - x->t_attempt, now_ns(x));
}

bool failover_committed(const struct exchange *x)
{
	return x->head_sent && !x->holding;
}

const struct route_arm *failover_plan_retry(struct exchange *x)
{
	if (x->retry_arm)
		return x->retry_arm;
	if (!x->route || x->route->implicit || failover_committed(x) || x->c->w->draining)
		return NULL;
	const struct route_arm *next = route_next(cursor(x), x->route, x->arm, now_ns(x));
	if (!next || !route_budget_take_retry(cursor(x), x->route, now_ns(x)))
		return NULL;
	x->retry_arm = next;
	return next;
}

/* Forget the failed attempt's response: what it put on the client's chain
 * (never flushed) and everything parsed of it. */
static void forget_response(struct exchange *x)
{
	struct conn *c = x->c;
	if (x->holding)
		chain_rollback(&c->out, &c->w->bufs, x->hold_mark);
	x->holding = false;
	x->resp_scan = HTTP_HEAD_SCAN_INIT;
	x->status = 0;
	x->head_parsed = x->head_sent = x->stream = x->chunked_out = x->done = false;
	x->body_left = 0;
	x->body_chunked = x->body_until_close = false;
	x->resp_head_len = x->raw_off = 0;
	x->reusable = false;
	api_usage_clear(&x->usage);
	x->error_code = NULL;
	x->t_first_byte = 0;
	x->bytes_out = 0;
	x->retried = false;
	/* Events a stage held back belong to the failed attempt too. */
	stage_drop_held(x);
}

void failover_drop_hold(struct exchange *x)
{
	if (!x->holding)
		return;
	chain_rollback(&x->c->out, &x->c->w->bufs, x->hold_mark);
	x->holding = false;
	x->head_sent = false;
}

/* Attempts of this exchange that went to backend b so far. */
static unsigned times_tried(const struct exchange *x, unsigned b)
{
	unsigned n = 0;
	for (unsigned i = 0; i < x->attempts && i < EXCHANGE_TRIED_MAX; i++)
		n += x->tried[i] == b;
	return n;
}

static void send_retry(struct exchange *x)
{
	if (failover_send(x) == 0)
		return;
	if (conn_reply_error(x->c, 502, "server_error", "upstream_unavailable",
			     "the gateway could not open a connection to any backend of the route"))
		conn_close(x->c);
}

bool failover_retry(struct exchange *x)
{
	if (!failover_plan_retry(x))
		return false;
	if (x->up)
		upstream_close(x->up);
	failover_end(x, x->retry_ok);
	x->retry_ok = false;
	__atomic_store_n(&cursor(x)->arms[x->arm->id].fallbacks_from,
			 cursor(x)->arms[x->arm->id].fallbacks_from + 1, __ATOMIC_RELAXED);
	forget_response(x);
	x->arm = x->retry_arm;
	x->retry_arm = NULL;
	x->backend = (int)x->arm->backend;
	/* The chain comes back to a backend it already tried: give it a
	 * moment, on the worker's timers (the worker never sleeps). */
	uint64_t wait = route_backoff_ns(cursor(x), x->route, times_tried(x, x->arm->backend));
	if (wait) {
		timer_arm_at(&x->c->w->t_backoff, &x->backoff_timer, now_ns(x) + wait);
		return true;
	}
	send_retry(x);
	return true;
}

void failover_on_backoff(struct timer *t)
{
	send_retry(container_of(t, struct exchange, backoff_timer));
}

/* Seconds of a Retry-After header (delta-seconds only; a date is taken
 * as one second), capped. */
static unsigned retry_after_s(const struct http_response *resp)
{
	const struct http_header *h = http_find_header(resp->headers, resp->nheaders,
						       "retry-after");
	if (!h)
		return 0;
	unsigned v = 0;
	size_t i = 0;
	for (; i < h->value.len && h->value.p[i] >= '0' && h->value.p[i] <= '9'; i++)
		if ((v = v * 10 + (unsigned)(h->value.p[i] - '0')) > RETRY_AFTER_MAX_S)
			return RETRY_AFTER_MAX_S;
	return i == h->value.len ? v : 1;
}

bool failover_on_status(struct exchange *x, const struct http_response *resp)
{
	if (!x->route || x->route->implicit)
		return false;
	int st = resp->status;
	if (st == 429) {
		unsigned s = retry_after_s(resp);
		if (s)
			route_arm_busy(cursor(x), x->arm, now_ns(x) + (uint64_t)s * NS_PER_S);
	}
	if (st != 429 && st < 500)
		return false;
	return failover_plan_retry(x) != NULL;
}

/* {"error":{"code":"context_length_exceeded",...}}: the prompt is longer
 * than the target's window (OpenAI's code; vLLM and others copy it). */
static bool context_exceeded(const char *body, size_t len)
{
	struct json_val root, err, code;
	size_t off;
	const char *msg;
	return json_parse(body, len, &root, &off, &msg) == 0 && root.type == JSON_OBJECT &&
	       json_get(&root, "error", &err) == 0 && err.type == JSON_OBJECT &&
	       json_get(&err, "code", &code) == 0 && code.type == JSON_STRING &&
	       str_eq_cstr((struct str){ code.raw.p, code.raw.len },
			   "\"context_length_exceeded\"");
}

/* A 400 is the request's fault, not the target's: only a target with a
 * larger window (context_fallback) is worth another attempt, which the
 * retry budget pays for like any other. */
bool failover_on_body(struct exchange *x, const char *body, size_t len)
{
	if (x->status != 400 || !x->route || x->route->implicit || !x->route->nfallback ||
	    x->retry_arm || failover_committed(x) || x->c->w->draining)
		return false;
	if (!context_exceeded(body, len))
		return false;
	const struct route_arm *next = route_next_context(cursor(x), x->route, x->arm, now_ns(x));
	if (!next || !route_budget_take_retry(cursor(x), x->route, now_ns(x)))
		return false;
	x->retry_arm = next;
	x->retry_ok = true;
	return true;
}

void failover_hold(struct exchange *x)
{
	/* Only when there is somewhere to fall back to: the plain path pays
	 * nothing for a route without a chain. */
	if (!x->route || x->route->implicit || !x->route->nfallback)
		return;
	x->holding = true;
	x->hold_mark = chain_mark(&x->c->out);
}

enum ev_kind { EV_HOLD, EV_CONTENT, EV_ERROR };

static bool nonempty_string(const struct json_val *obj, const char *key)
{
	struct json_val v;
	return json_get(obj, key, &v) == 0 && v.type == JSON_STRING && v.raw.len > 2;
}

static bool present(const struct json_val *obj, const char *key)
{
	struct json_val v;
	return json_get(obj, key, &v) == 0 && v.type != JSON_NULL;
}

/* What one event is to the client: content (text, a tool call, a refusal,
 * a finish reason), an error, or neither (role-only, empty, usage, a
 * comment, [DONE]). */
static enum ev_kind classify(const char *ev, size_t len)
{
	struct str data;
	struct json_val root, choices, choice, delta;
	size_t off;
	const char *msg;
	if (sse_event_data(ev, len, &data) || !data.len || data.p[0] != '{' ||
	    json_parse(data.p, data.len, &root, &off, &msg))
		return EV_HOLD;
	if (present(&root, "error"))
		return EV_ERROR;
	if (json_get(&root, "choices", &choices) || choices.type != JSON_ARRAY)
		return EV_HOLD;
	struct json_iter it;
	struct str key;
	json_iter_init(&it, &choices);
	while (json_iter_next(&it, &key, &choice)) {
		if (nonempty_string(&choice, "text") || present(&choice, "finish_reason"))
			return EV_CONTENT;
		if (json_get(&choice, "delta", &delta) || delta.type != JSON_OBJECT)
			continue;
		if (nonempty_string(&delta, "content") || nonempty_string(&delta, "refusal") ||
		    present(&delta, "tool_calls") || present(&delta, "function_call"))
			return EV_CONTENT;
	}
	return EV_HOLD;
}

int failover_on_event(struct exchange *x, const char *ev, size_t len)
{
	switch (classify(ev, len)) {
	case EV_ERROR:
		if (failover_plan_retry(x))
			return -ECANCELED;
		x->holding = false;	/* nowhere to go: the client gets the error */
		return 0;
	case EV_CONTENT:
		x->holding = false;
		return 0;
	default:
		if (chain_mark(&x->c->out) - x->hold_mark > FAILOVER_HOLD_MAX)
			x->holding = false;
		return 0;
	}
}
