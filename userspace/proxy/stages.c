/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The built-in stages: the steps every API exchange always took, now as
 * entries of the stage list (stage.h), plus the debug test stage.
 *
 *   identity  head: who the caller is (admit_identify)
 *   route     route: the backend by model (route_pick), else 404
 *   admit     route: model permission and quota reservation (may wait for
 *             Redis: AGAIN); end: the reservation reconciled with usage
 *   usage     sse_event / body: token usage read from the response; the
 *             usage-only event the gateway asked for is dropped
 *   account   end: the access-log line, metrics and tenant counters
 *   test      debug.test_stage only: waits, drops, replaces and holds
 *             events as the x-sluice-test-stage request header says
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "proxy/proxy.h"
#include "proxy/stage.h"

/* ---- identity ---- */

static enum stage_rc identity_head(struct exchange *x, void *st)
{
	(void)st;
	return admit_identify(x) ? STAGE_DONE : STAGE_NEXT;
}

const struct stage stage_identity = {
	.name = "identity",
	.head = identity_head,
};

/* ---- route ---- */

/* The route (or the backends that list the model) picks the target:
 * x->route, x->arm, x->backend (failover.c falls back along its chain
 * later, and rewrites the model for the arm). */
static enum stage_rc route_route(struct exchange *x, void *st)
{
	(void)st;
	int rr = failover_route(x);
	if (!rr)
		return STAGE_NEXT;
	if (rr == -ENOENT) {
		char msg[400];
		snprintf(msg, sizeof(msg),
			 "The model `%.*s` does not exist or you do not have access to it.",
			 (int)x->api.model.len, x->api.model.p);
		conn_reply_error(x->c, 404, "invalid_request_error", "model_not_found", msg);
	} else {
		conn_reply_error(x->c, 503, "server_error", "no_healthy_target",
				 "every target of this route is drained (weight 0)");
	}
	return STAGE_DONE;
}

/* The last attempt's outcome feeds its arm's breaker. */
static void route_end(struct exchange *x, void *st)
{
	(void)st;
	bool ok = x->status && x->status < 500 && x->status != 429 &&
		  (!x->error_code || x->status == 499);
	failover_end(x, ok);
	if (!x->arm)
		return;
	uint64_t now = x->c->w->loop.now;
	struct route_outcome o = {
		.latency_ns = now - x->t_start,
		.ttft_ns = x->t_first_byte ? x->t_first_byte - x->t_start : 0,
		.tokens_in = x->usage.prompt_tokens,
		.tokens_out = x->usage.completion_tokens,
		/* a client that went away (499) is not the arm's error */
		.error = !ok && x->status != 499,
	};
	route_exchange_done(&x->snap->w[x->c->w->id].cursor, x->arm, &o);
}

const struct stage stage_route = {
	.name = "route",
	.route = route_route,
	.end = route_end,
};

/* ---- admission ---- */

static enum stage_rc admit_route(struct exchange *x, void *st)
{
	(void)st;
	int err = admit_reserve(x);
	return !err ? STAGE_NEXT : err == -EINPROGRESS ? STAGE_AGAIN : STAGE_DONE;
}

static void admit_end(struct exchange *x, void *st)
{
	(void)st;
	admit_release(x);
}

static void admit_cancel(struct exchange *x, void *st)
{
	(void)st;
	admit_cancel_wait(x);
}

const struct stage stage_admit = {
	.name = "admit",
	.route = admit_route,
	.end = admit_end,
	.cancel = admit_cancel,
};

/* ---- usage ---- */

/* Read usage from one event; drop it when it is the usage-only event the
 * gateway asked for on the client's behalf. */
static enum stage_sse usage_event(struct exchange *x, void *st, struct stage_event *ev)
{
	(void)st;
	struct str data;
	if (sse_event_data(ev->in.p, ev->in.len, &data) || !data.len || data.p[0] != '{')
		return STAGE_SSE_PASS;
	/* Most events carry no usage, or end in "usage":null (what a backend
	 * asked for usage writes on every chunk): skip the parse, and the
	 * search when the tail already says so. */
	static const char null_tail[] = "\"usage\":null}";
	size_t tail = sizeof(null_tail) - 1;
	if (data.len >= tail && memcmp(data.p + data.len - tail, null_tail, tail) == 0)
		return STAGE_SSE_PASS;
	const char *u = memmem(data.p, data.len, "\"usage\"", 7);
	if (!u)
		return STAGE_SSE_PASS;
	const char *v = u + 7;
	const char *end = data.p + data.len;
	while (v < end && (*v == ' ' || *v == ':'))
		v++;
	if (end - v >= 4 && memcmp(v, "null", 4) == 0)
		return STAGE_SSE_PASS;
	bool only_usage = false;
	if (api_parse_usage(data.p, data.len, &x->usage, &only_usage))
		return STAGE_SSE_PASS;
	return x->strip_usage && only_usage ? STAGE_SSE_DROP : STAGE_SSE_PASS;
}

static enum stage_rc usage_body(struct exchange *x, void *st, struct str body)
{
	(void)st;
	if (x->status >= 200 && x->status < 300)
		api_parse_usage(body.p, body.len, &x->usage, NULL);
	return STAGE_NEXT;
}

const struct stage stage_usage = {
	.name = "usage",
	.sse_event = usage_event,
	.body = usage_body,
};

/* ---- access log and metrics ---- */

static void account_end(struct exchange *x, void *st)
{
	(void)st;
	exchange_log(x);
}

const struct stage stage_account = {
	.name = "account",
	.end = account_end,
};

/* ---- the debug test stage ---- */

/*
 * Driven per request by "x-sluice-test-stage: <directive>[,<directive>...]"
 * (a header no client's value reaches a backend with):
 *   wait=<ms>      the request hook waits that long, then goes on
 *   wait=forever   the request hook never resumes (the deadline ends it)
 *   drop=<k>       the k-th event (from 1) is dropped
 *   replace=<k>    the k-th event becomes data: {"sluice_test":"replaced"}
 *   hold=<k>       the k-th event is held back: it goes out before the
 *                  next event that passes (or at the end)
 *   holdall        every event is held until the end of the stream
 *   drophold=<k>   at the k-th event, what is held is dropped
 * Only with debug.test_stage: true; without the header it does nothing.
 */
struct test_state {
	struct timer t;
	struct exchange *x;
	unsigned wait_ms;
	bool wait, forever, holdall, cancelled;
	unsigned drop, replace, hold, drophold, nev;
};

static const char test_replacement[] = "data: {\"sluice_test\":\"replaced\"}\n\n";

static unsigned directive_num(struct str v)
{
	unsigned n = 0;
	for (size_t i = 0; i < v.len && v.p[i] >= '0' && v.p[i] <= '9' && n < 100000000; i++)
		n = n * 10 + (unsigned)(v.p[i] - '0');
	return n;
}

static void test_directive(struct test_state *ts, struct str d)
{
	const char *eq = memchr(d.p, '=', d.len);
	struct str k = { d.p, eq ? (size_t)(eq - d.p) : d.len };
	struct str v = eq ? (struct str){ eq + 1, d.len - (size_t)(eq + 1 - d.p) }
			  : (struct str){ d.p + d.len, 0 };
	if (str_eq_cstr(k, "wait")) {
		ts->wait = true;
		ts->forever = str_eq_cstr(v, "forever");
		ts->wait_ms = directive_num(v);
	} else if (str_eq_cstr(k, "drop")) {
		ts->drop = directive_num(v);
	} else if (str_eq_cstr(k, "replace")) {
		ts->replace = directive_num(v);
	} else if (str_eq_cstr(k, "hold")) {
		ts->hold = directive_num(v);
	} else if (str_eq_cstr(k, "holdall")) {
		ts->holdall = true;
	} else if (str_eq_cstr(k, "drophold")) {
		ts->drophold = directive_num(v);
	}
}

static enum stage_rc test_head(struct exchange *x, void *st)
{
	struct test_state *ts = st;
	ts->x = x;
	const struct http_header *h = http_find_header(x->req.headers, x->req.nheaders,
						       "x-sluice-test-stage");
	if (!h)
		return STAGE_NEXT;
	const char *p = h->value.p, *end = p + h->value.len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		while (p < stop && *p == ' ')
			p++;
		test_directive(ts, (struct str){ p, (size_t)(stop - p) });
		p = comma ? comma + 1 : end;
	}
	return STAGE_NEXT;
}

static void test_timer(struct timer *t)
{
	struct test_state *ts = container_of(t, struct test_state, t);
	stage_resume(ts->x, STAGE_NEXT);
}

static enum stage_rc test_request(struct exchange *x, void *st)
{
	struct test_state *ts = st;
	if (!ts->wait)
		return STAGE_NEXT;
	timer_init(&ts->t, test_timer);
	if (!ts->forever)
		timer_arm(worker_timer_list(x->c->w, ts->wait_ms ? ts->wait_ms : 1), &ts->t,
			  x->c->w->loop.now);
	return STAGE_AGAIN;
}

static void test_cancel(struct exchange *x, void *st)
{
	(void)x;
	struct test_state *ts = st;
	timer_disarm(&ts->t);
	ts->cancelled = true;
}

static enum stage_sse test_event(struct exchange *x, void *st, struct stage_event *ev)
{
	struct test_state *ts = st;
	unsigned k = ++ts->nev;
	if (ts->drophold == k)
		stage_drop_held(x);
	if (ts->drop == k)
		return STAGE_SSE_DROP;
	if (ts->replace == k) {
		ev->out = (struct str){ test_replacement, sizeof(test_replacement) - 1 };
		return STAGE_SSE_REPLACE;
	}
	if (ts->holdall || ts->hold == k)
		return STAGE_SSE_HOLD;
	return STAGE_SSE_PASS;
}

static void test_end(struct exchange *x, void *st)
{
	(void)x;
	struct test_state *ts = st;
	if (ts->wait)
		timer_disarm(&ts->t);
}

const struct stage stage_test = {
	.name = "test",
	.state_size = sizeof(struct test_state),
	.head = test_head,
	.request = test_request,
	.sse_event = test_event,
	.cancel = test_cancel,
	.end = test_end,
};
