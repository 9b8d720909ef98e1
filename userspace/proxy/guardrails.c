/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guardrails in the exchange: the guard stage (request and SSE event
 * hooks), and a call in the non-streamed relay (the seam's body hook can
 * refuse a body but not replace it).
 *
 * Request: the tenant's policy (config_guard_policy) scans the parsed body;
 * a blocking hit answers 400 guardrail_blocked naming the detectors, never
 * the text; masks give a new body in a pooled buffer, parsed again so the
 * body edits of the exchange (model, stream usage) count from it.  A scan
 * that cannot finish (more candidates than the scanner keeps) fails
 * closed: the request is refused, not forwarded unscanned.
 *
 * Response streams: the text of choices[0].delta.content goes through
 * the hold-back window; each event goes on with its content replaced by
 * what the window released (masked).  A finish event or [DONE] first
 * flushes the window into a chunk of its own.  A blocking hit ends the
 * stream cleanly: one chunk with finish_reason "content_filter", then
 * only [DONE] and usage-only events pass.
 */
#include "proxy/guardrails.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/json.h"
#include "core/log.h"
#include "http/sse.h"
#include "obs/guard_metrics.h"
#include "proxy/proxy.h"
#include "proxy/stage.h"

static struct worker *worker_of(const struct exchange *x)
{
	return x->c->w;
}

/* ---- request ---- */

static void reply_blocked(struct exchange *x, const struct guard_result *res)
{
	const struct guard_policy *p = x->guard.policy;
	char names[256], msg[400];

	guard_entity_list(p, res->blocked, names, sizeof(names));
	snprintf(msg, sizeof(msg), "The request was blocked by the guardrails policy %s: "
		 "it contains %s.", guard_policy_name(p), names);
	conn_reply_error(x->c, 400, "invalid_request_error", "guardrail_blocked", msg);
}

int guard_on_request(struct exchange *x)
{
	struct worker *w = worker_of(x);
	/* The exchange's own snapshot: a reload changes the next request's
	 * policy, never one in flight. */
	const struct sluice_config *cfg = x->cfg;
	struct guard_xstate *g = &x->guard;
	bool rewritten = false;
	char why[256];

	g->policy = config_guard_policy(cfg, x->tenant);
	if (!g->policy)
		return 0;
	/* The stream window follows choice 0; more choices would stream past it. */
	struct json_val nv;
	int64_t nchoices = 1;
	if (x->api.stream && guard_policy_response(g->policy) &&
	    json_get(&x->api.root, "n", &nv) == 0 && json_int64(&nv, &nchoices) == 0 &&
	    nchoices > 1) {
		conn_reply_error(x->c, 400, "invalid_request_error", "guardrail_unsupported",
				 "Streaming more than one choice (n > 1) is not supported "
				 "under a guardrails policy that checks responses.");
		return 1;
	}
	if (buf_pool_get(&w->bufs, &g->body))
		goto failed;
	int err = guard_rewrite_json(g->policy, &w->guard, x->api.body, x->body_len, &g->body,
				     &rewritten, &g->req);
	if (err == -E2BIG) {
		conn_reply_error(x->c, 400, "invalid_request_error", "guardrail_blocked",
				 "The request holds more candidate entities than the guardrails "
				 "scan; it was not forwarded.");
		return 1;
	}
	if (err)
		goto failed;
	if (g->req.blocked) {
		reply_blocked(x, &g->req);
		return 1;
	}
	if (!rewritten) {
		buf_pool_put(&w->bufs, &g->body);
		return 0;
	}
	/* The masked body is the request now: parse it again so every later
	 * edit (the route's model, stream usage) counts from it. */
	if (api_parse_request(buf_head(&g->body), buf_used(&g->body), &x->api, why, sizeof(why)))
		goto failed;
	return 0;
failed:
	log_warn("guardrails: request scan failed; refusing it");
	conn_reply_error(x->c, 500, "server_error", "guardrail_error",
			 "The guardrails could not check this request.");
	return 1;
}

const struct buf *guard_request_body(const struct exchange *x)
{
	return buf_used(&x->guard.body) ? &x->guard.body : NULL;
}

/* ---- header and log ---- */

static size_t describe(const struct exchange *x, char *buf, size_t cap, const char *sep)
{
	const struct guard_xstate *g = &x->guard;
	static const char *const what[] = { "blocked", "masked", "flagged" };
	uint64_t m[3] = { g->req.blocked | g->resp.blocked, g->req.masked | g->resp.masked,
			  (g->req.flagged | g->resp.flagged) };
	size_t n = 0;

	buf[0] = '\0';
	if (!g->policy)
		return 0;
	for (int i = 0; i < 3; i++) {
		char names[256];
		if (!m[i])
			continue;
		guard_entity_list(g->policy, m[i], names, sizeof(names));
		int r = snprintf(buf + n, cap - n, "%s%s=%s", n ? sep : "", what[i], names);
		if (r < 0 || (size_t)r >= cap - n)
			break;
		n += (size_t)r;
	}
	return n;
}

int guard_append_header(const struct exchange *x, struct buf *head)
{
	char v[512];

	if (!describe(x, v, sizeof(v), ";"))
		return 0;
	int err = buf_append_str(head, STR_LIT("x-sluice-guardrails: "));
	if (!err && !(err = buf_append_cstr(head, v)))
		err = buf_append_str(head, STR_LIT("\r\n"));
	return err;
}

const char *guard_log_value(const struct exchange *x, char *buf, size_t cap)
{
	describe(x, buf, cap, ";");
	return buf;
}

/* ---- response streams ---- */

/* A chunk event like the backend's (its id, created and model copied from
 * root when there is one) carrying delta_json and finish_reason. */
static int append_chunk(struct buf *out, const struct json_val *root, const char *delta_json,
			struct str content, const char *finish)
{
	static const char *const keep[] = { "id", "created", "model" };
	struct json_val v;
	int err = buf_append_cstr(out, "data: {");

	for (size_t i = 0; !err && i < 3; i++) {
		if (!root || json_get(root, keep[i], &v))
			continue;
		if (!(err = buf_printf(out, "\"%s\":", keep[i])) &&
		    !(err = buf_append_str(out, v.raw)))
			err = buf_append(out, ",", 1);
	}
	if (!err)
		err = buf_printf(out, "\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
				 "\"delta\":{%s", delta_json);
	if (!err && content.len) {
		size_t need = 6 * content.len + 2;
		if (!(err = buf_append_str(out, STR_LIT("\"content\":"))) &&
		    !(err = buf_reserve(out, need))) {
			int n = json_escape(buf_tail(out), need, content.p, content.len);
			if (n < 0)
				err = -ENOMEM;
			else
				out->len += (size_t)n;
		}
	}
	if (!err)
		err = buf_printf(out, "},\"finish_reason\":%s}]}\n\n", finish);
	return err;
}

/* The window's rest, as a content chunk of its own (nothing when empty). */
static int flush_window(struct exchange *x, const struct json_val *root, struct buf *out)
{
	struct worker *w = worker_of(x);
	struct guard_xstate *g = &x->guard;
	struct buf *tmp = &w->guard.tmp;

	g->stream_done = true;
	if (!g->win_on)
		return 0;
	buf_reset(tmp);
	int err = guard_window_finish(&g->win, &w->guard, tmp);
	if (err || g->win.blocked)
		return err;
	return buf_used(tmp) ? append_chunk(out, root, "", buf_str(tmp), "null") : 0;
}

static enum guard_sse_verdict blocked_now(struct exchange *x, const struct json_val *root,
					  struct str *out)
{
	struct guard_xstate *g = &x->guard;

	g->stream_blocked = true;
	buf_reset(&g->out);
	if (append_chunk(&g->out, root, "", STR_NULL, "\"content_filter\""))
		return GUARD_SSE_DROP;
	*out = buf_str(&g->out);
	return GUARD_SSE_REPLACE;
}

/* The event with its content string replaced by text (re-escaped). */
static int rebuild(struct buf *out, const char *ev, size_t n, const struct json_val *content,
		   struct str text)
{
	size_t at = (size_t)(content->raw.p - ev), need = 6 * text.len + 2;
	int err = buf_append(out, ev, at);

	if (!err && !(err = buf_reserve(out, need))) {
		int w = json_escape(buf_tail(out), need, text.p, text.len);
		if (w < 0)
			return -ENOMEM;
		out->len += (size_t)w;
	}
	return err ? err : buf_append(out, content->raw.p + content->raw.len,
				      n - at - content->raw.len);
}

/* Content through the window; with final, the window's rest too (the
 * event also finishes the choice), so the text ends in this event. */
static enum guard_sse_verdict on_content(struct exchange *x, const char *ev, size_t n,
					 const struct json_val *root,
					 const struct json_val *content, bool final,
					 struct str *out)
{
	struct worker *w = worker_of(x);
	struct guard_xstate *g = &x->guard;
	struct buf *text = &w->guard.text, *rel = &w->guard.tmp;

	if (!g->win_on) {
		guard_window_init(&g->win, g->policy);
		g->win_on = true;
	}
	buf_reset(text);
	buf_reset(rel);
	if (buf_reserve(text, content->raw.len + 1))
		return blocked_now(x, root, out);
	int len = json_string(content, buf_tail(text), content->raw.len + 1);
	/* Fail closed: text the window cannot take does not go out. */
	if (len < 0 || guard_window_feed(&g->win, &w->guard, buf_tail(text), (size_t)len, rel))
		return blocked_now(x, root, out);
	if (final) {
		g->stream_done = true;
		if (guard_window_finish(&g->win, &w->guard, rel))
			return blocked_now(x, root, out);
	}
	if (g->win.blocked)
		return blocked_now(x, root, out);
	buf_reset(&g->out);
	if (rebuild(&g->out, ev, n, content, buf_str(rel)))
		return blocked_now(x, root, out);
	*out = buf_str(&g->out);
	return GUARD_SSE_REPLACE;
}

enum guard_sse_verdict guard_on_sse_event(struct exchange *x, const char *ev, size_t n,
					  struct str *out)
{
	struct worker *w = worker_of(x);
	struct guard_xstate *g = &x->guard;
	struct json_val root, choices, c0, delta, content, fin;
	struct str data;

	if (!g->policy || !guard_policy_response(g->policy))
		return GUARD_SSE_PASS;
	/* After a clean end everything passes; after a block, [DONE] and
	 * usage-only events still do (below). */
	if (g->stream_done && !g->stream_blocked)
		return GUARD_SSE_PASS;
	if (sse_event_data(ev, n, &data))
		return GUARD_SSE_PASS;
	if (!g->out.data && buf_pool_get(&w->bufs, &g->out))
		return GUARD_SSE_DROP;
	if (str_eq_cstr(data, "[DONE]")) {
		buf_reset(&g->out);
		if (g->stream_blocked || flush_window(x, NULL, &g->out) ||
		    buf_append(&g->out, ev, n))
			return GUARD_SSE_PASS;
		*out = buf_str(&g->out);
		return GUARD_SSE_REPLACE;
	}
	if (json_parse(data.p, data.len, &root, NULL, NULL) || root.type != JSON_OBJECT ||
	    json_get(&root, "choices", &choices) || choices.type != JSON_ARRAY ||
	    json_array_len(&choices) == 0)
		return GUARD_SSE_PASS;	/* usage-only and other events */
	if (g->stream_blocked)
		return GUARD_SSE_DROP;
	struct json_iter it;
	struct str key;
	json_iter_init(&it, &choices);
	json_iter_next(&it, &key, &c0);
	bool finished = json_get(&c0, "finish_reason", &fin) == 0 && fin.type != JSON_NULL;
	bool has_text = json_get(&c0, "delta", &delta) == 0 &&
			json_get(&delta, "content", &content) == 0 && content.type == JSON_STRING;
	if (has_text && content.raw.len > 2)
		return on_content(x, ev, n, &root, &content, finished, out);
	if (!finished)
		return GUARD_SSE_PASS;
	/* The end of the text: what the window still holds goes first. */
	buf_reset(&g->out);
	if (flush_window(x, &root, &g->out))
		return blocked_now(x, &root, out);
	if (g->win.blocked)
		return blocked_now(x, &root, out);
	if (buf_append(&g->out, ev, n))
		return GUARD_SSE_PASS;
	*out = buf_str(&g->out);
	return GUARD_SSE_REPLACE;
}

/* ---- non-streamed responses ---- */

int guard_on_body(struct exchange *x, const char *body, size_t len, struct str *out)
{
	struct worker *w = worker_of(x);
	struct guard_xstate *g = &x->guard;
	bool rewritten = false;
	char names[256], msg[400];

	if (!g->policy || !guard_policy_response(g->policy))
		return 0;
	if (!g->out.data && buf_pool_get(&w->bufs, &g->out))
		return 0;
	buf_reset(&g->out);
	int err = guard_rewrite_json(g->policy, &w->guard, body, len, &g->out, &rewritten, &g->resp);
	if (err == -EINVAL)
		return 0;	/* not JSON: nothing of it is model text we can read */
	if (!err && !g->resp.blocked) {
		*out = buf_str(&g->out);
		return rewritten ? 1 : 0;
	}
	/* Blocked, or a scan that could not finish: the answer does not go out. */
	if (err)
		g->resp.blocked |= 1ull << GUARD_SECRETS;
	guard_entity_list(g->policy, g->resp.blocked, names, sizeof(names));
	snprintf(msg, sizeof(msg), "The response was blocked by the guardrails policy %s: "
		 "it contains %s.", guard_policy_name(g->policy), err ? "too much to scan" : names);
	buf_reset(&g->out);
	if (buf_printf(&g->out, "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
		       "\"param\":null,\"code\":\"guardrail_blocked\"}}\n", msg))
		return 0;
	*out = buf_str(&g->out);
	return 2;
}

/* ---- end ---- */

void guard_on_end(struct exchange *x)
{
	struct worker *w = worker_of(x);
	struct guard_xstate *g = &x->guard;

	if (g->policy) {
		guard_metrics_count(w->guard_metrics, x->cfg, g->policy, &g->req,
				    GUARD_DIR_REQUEST);
		if (g->win_on)
			g->resp = g->win.res;
		guard_metrics_count(w->guard_metrics, x->cfg, g->policy, &g->resp,
				    GUARD_DIR_RESPONSE);
	}
	if (g->win_on)
		guard_window_free(&g->win);
	g->win_on = false;
	buf_pool_put(&w->bufs, &g->body);
	buf_pool_put(&w->bufs, &g->out);
	g->policy = NULL;
}

/* ---- the stage ---- */

static enum stage_rc guard_request_hook(struct exchange *x, void *st)
{
	(void)st;
	return guard_on_request(x) ? STAGE_DONE : STAGE_NEXT;
}

static enum stage_sse guard_sse_hook(struct exchange *x, void *st, struct stage_event *ev)
{
	struct str out;

	(void)st;
	switch (guard_on_sse_event(x, ev->in.p, ev->in.len, &out)) {
	case GUARD_SSE_DROP:
		return STAGE_SSE_DROP;
	case GUARD_SSE_REPLACE:
		ev->out = out;
		return STAGE_SSE_REPLACE;
	case GUARD_SSE_PASS:
		break;
	}
	return STAGE_SSE_PASS;
}

/* State: x->guard (two pooled buffers and a window do not fit the seam's
 * STAGE_STATE_MAX), released by guard_on_end when the exchange is logged
 * or freed. */
const struct stage stage_guard = {
	.name = "guard",
	.request = guard_request_hook,
	.sse_event = guard_sse_hook,
};
