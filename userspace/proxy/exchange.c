/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One request and its response.
 *
 * Local endpoints are answered here.  API requests are checked (JSON, model),
 * routed, rewritten into the request the backend gets, and the backend's
 * response is relayed back:
 *
 *   - streaming (SSE) responses event by event, each flushed at once, with
 *     usage read from the events and the usage-only event dropped when the
 *     gateway asked for it on the client's behalf;
 *   - other responses whole, so their usage can be read before the client
 *     gets a Content-Length.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/log.h"
#include "http/sse.h"
#include "proxy/endpoint.h"
#include "proxy/proxy.h"

#define MAX_RESPONSE_HEAD	(64 * 1024)
/* A response relayed whole is held whole: it needs a cap.  Streams are
 * bounded per line and event instead (limits.max_sse_*), and over their
 * lifetime only if limits.max_stream_bytes says so. */
#define MAX_RESPONSE_BODY	(64u * 1024 * 1024)
#define CLIENT_OUT_HIGH		(1024 * 1024)	/* stop reading upstream above this */

static const char *const dropped_request_headers[] = {
	"authorization", "proxy-authorization", "api-key", "x-api-key",
	"expect", "accept-encoding", "cookie",
};

struct exchange *exchange_new(struct conn *c)
{
	struct worker *w = c->w;
	struct exchange *x;
	if (!list_empty(&w->free_exchanges)) {
		x = list_first(&w->free_exchanges, struct exchange, free_link);
		list_del(&x->free_link);
	} else {
		x = malloc(sizeof(*x));
		if (!x)
			return NULL;
	}
	/* Everything but the parsed head (2 KiB the parser fills) starts at zero. */
	memset(x, 0, offsetof(struct exchange, req));
	/* Read before any head parsed (refusals of a bad or slow head). */
	x->req.method = HTTP_OTHER;
	x->req.keep_alive = false;
	x->c = c;
	x->backend = -1;
	x->tenant = c->tenant;
	x->authenticated = false;
	x->ad.has_qh = x->ad.reserved = x->ad.global = x->ad.pending = false;
	x->ad.nscopes = 0;
	api_usage_clear(&x->usage);
	x->t_start = w->loop.now;
	x->t_start_real = clock_real_ns();
	list_init(&x->free_link);
	/* The snapshot this request lives by, whatever a reload publishes
	 * meanwhile: the worker's, held until exchange_free, with its stage
	 * list. */
	x->snap = w->snap;
	snap_hold(x->snap, w);
	x->sr.list = &x->snap->stages;
	x->cfg = x->snap->cfg;
	list_init(&x->reload_link);
	timer_init(&x->stage_timer, stage_on_timer);
	timer_init(&x->backoff_timer, failover_on_backoff);
	return x;
}

void exchange_free(struct exchange *x)
{
	struct worker *w = x->c->w;
	guard_on_end(x);
	timer_disarm(&x->backoff_timer);	/* freed while backing off */
	buf_pool_put(&w->bufs, &x->tx);
	buf_pool_put(&w->bufs, &x->held);
	list_del(&x->reload_link);
	worker_snap_release(w, x->snap);
	x->snap = NULL;
	list_add_head(&w->free_exchanges, &x->free_link);
}

void exchange_free_pool(struct worker *w)
{
	while (!list_empty(&w->free_exchanges)) {
		struct exchange *x = list_first(&w->free_exchanges, struct exchange, free_link);
		list_del(&x->free_link);
		free(x);
	}
}

static void copy_span(char *dst, size_t cap, struct str s)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;
	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

void exchange_note_request_line(struct exchange *x)
{
	copy_span(x->method, sizeof(x->method), x->req.method_str);
	copy_span(x->path, sizeof(x->path), x->req.path);
}

/* The exchange is over: every stage's end hook (reconcile, log...). */
void exchange_record(struct exchange *x)
{
	stage_run_end(x);
}

void exchange_log(struct exchange *x)
{
	struct worker *w = x->c->w;
	const struct sluice_config *cfg = x->cfg;
	uint32_t tenant = x->tenant;
	bool routed = x->route && !x->route->implicit;
	struct request_record rec = {
		.start_real_ns = x->t_start_real,
		.latency_ns = w->loop.now - x->t_start,
		.ttft_ns = x->t_first_byte ? x->t_first_byte - x->t_start : 0,
		.method = str_from(x->method),
		.path = str_from(x->path),
		.endpoint = x->ep,
		.model = x->api.model,
		.backend = x->backend >= 0 ? x->snap->metric_backend[x->backend] : -1,
		.backend_name = x->backend >= 0 ? cfg->backends[x->backend].name : NULL,
		.tenant = __atomic_load_n(&w->gw->tenant_names[tenant], __ATOMIC_ACQUIRE),
		.client_cert = x->c->client_cert,
		.auth = x->authenticated ? auth_method_name(x->id.method) : NULL,
		.key_id = x->authenticated && x->id.method == AUTH_API_KEY ? x->id.key_id : NULL,
		.status = x->status,
		.stream = x->api.stream,
		.usage = x->usage,
		.bytes_in = x->body_len,
		.bytes_out = x->bytes_out,
		.error_code = x->error_code,
		.worker = w->id,
		.route = routed ? x->route->name : NULL,
		.upstream_model = routed && x->arm && x->arm->model ? x->arm->model : NULL,
		.attempts = x->attempts,
	};
	char guard[512];
	rec.guardrails = guard_log_value(x, guard, sizeof(guard));
	accesslog_write(&w->log, &rec);
	metrics_request_done(w->metrics, &rec);
	guard_on_end(x);
	worker_count_tenant(w, tenant, &x->usage);
}

/* The client is gone or the worker is cutting connections: stop the
 * upstream request (closing its socket is what tells the backend). */
void exchange_abort(struct exchange *x, int status)
{
	struct conn *c = x->c;
	if (x->up)
		upstream_close(x->up);
	if (!x->done) {
		x->status = x->head_sent ? x->status : status;
		if (!x->error_code)
			x->error_code = status == 499 ? "client_closed_request" : "aborted";
	}
	exchange_record(x);
	c->x = NULL;
	exchange_free(x);
}

/* ---- local endpoints ---- */

static bool model_allowed(const char *model, void *arg)
{
	struct exchange *x = arg;
	const struct sluice_config *cfg = x->cfg;
	return auth_model_allowed(cfg, &x->id, &x->claims, model, strlen(model));
}

/* Every routed model, or only those the caller may use when its tenant
 * or token restricts them. */
void exchange_reply_models(struct exchange *x)
{
	struct conn *c = x->c;
	const struct sluice_config *cfg = x->cfg;
	if (!auth_restricts_models(cfg, &x->id)) {
		conn_reply(c, 200, "application/json", buf_head(&x->snap->models_body),
			   buf_used(&x->snap->models_body));
		return;
	}
	struct buf body = { 0 };
	if (route_models_body_for(cfg, &body, model_allowed, x))
		conn_reply_error(c, 500, "server_error", "internal_error", "out of memory");
	else
		conn_reply(c, 200, "application/json", buf_head(&body), buf_used(&body));
	buf_free(&body);
}

/* ---- the request sent upstream ---- */

static bool is_dropped_request_header(struct str name)
{
	if (http_is_hop_header(name))
		return true;
	for (size_t i = 0; i < sizeof(dropped_request_headers) / sizeof(*dropped_request_headers); i++)
		if (str_case_eq_cstr(name, dropped_request_headers[i]))
			return true;
	return false;
}

static int append_header(struct buf *b, struct str name, struct str value)
{
	int err = buf_reserve(b, name.len + value.len + 4);
	if (err)
		return err;
	char *p = buf_tail(b);
	memcpy(p, name.p, name.len);
	p += name.len;
	*p++ = ':';
	*p++ = ' ';
	memcpy(p, value.p, value.len);
	p += value.len;
	*p++ = '\r';
	*p++ = '\n';
	b->len = (size_t)(p - b->data);
	return 0;
}

/*
 * What the backend is told about the client (forwarding:, from the latest
 * snapshot): whether the peer is a trusted proxy, which headers the
 * gateway writes, and the tenant when it is to be named.
 */
static void forwarding_params(const struct exchange *x, struct fwd_params *p)
{
	const struct conn *c = x->c;
	struct gateway *gw = c->w->gw;
	const struct sluice_config *cfg = x->cfg;
	const struct forwarding_cfg *fw = &cfg->forwarding;
	*p = (struct fwd_params){
		.peer = &c->peer,
		.trusted = config_cidr_contains(fw->trusted_proxies, fw->ntrusted_proxies,
						c->peer.addr),
		.x_forwarded = fw->headers == FWD_HEADERS_X_FORWARDED ||
			       fw->headers == FWD_HEADERS_BOTH,
		.forwarded = fw->headers == FWD_HEADERS_FORWARDED || fw->headers == FWD_HEADERS_BOTH,
		.https = c->tls != NULL,
	};
	if (fw->tenant_header)
		p->tenant = str_from(__atomic_load_n(&gw->tenant_names[x->tenant],
						     __ATOMIC_ACQUIRE));
}

/*
 * The backend's request: its base path plus what follows "/v1" in the
 * client's target, the backend's own Host and credentials (prepared once
 * per backend) instead of the client's, the client's other end-to-end
 * headers (client identity headers only from a trusted proxy, x-sluice-*
 * never), the gateway's forwarding headers, and the body, edited when the
 * gateway must ask for streaming usage.
 */
static int append_body(struct buf *tx, const char *body, size_t len,
		       const struct api_body_edit *e, size_t ne);

int exchange_build_request(struct exchange *x)
{
	const struct backend_cfg *be = &x->cfg->backends[x->backend];
	/* failover: the target's model replaces the client's in the body */
	struct api_body_edit edits[2];
	size_t ne = 0;
	struct json_val mv;
	if (x->arm && x->arm->model_json && json_get(&x->api.root, "model", &mv) == 0)
		edits[ne++] = (struct api_body_edit){
			.at = (size_t)(mv.raw.p - x->api.body), .del = mv.raw.len,
			.insert = { x->arm->model_json, x->arm->model_json_len } };
	if (x->has_usage_edit) {
		edits[ne] = x->usage_edit;
		if (ne && edits[0].at > edits[1].at) {
			struct api_body_edit t = edits[0];
			edits[0] = edits[1];
			edits[1] = t;
		}
		ne++;
	}
	buf_pool_put(&x->c->w->bufs, &x->tx);
	struct buf *tx = &x->tx;
	struct fwd_params fwd;
	forwarding_params(x, &fwd);
	const struct buf *fixed = &x->snap->upstream_headers[be->index];
	const char *body = buf_head(&x->c->in) + x->head_len;
	size_t body_len = x->body_len;
	/* guardrails: the masked body replaces the client's */
	const struct buf *masked = guard_request_body(x);
	if (masked) {
		body = buf_head(masked);
		body_len = buf_used(masked);
	}
	size_t out_len = body_len;
	for (size_t i = 0; i < ne; i++)
		out_len = out_len + edits[i].insert.len - edits[i].del;
	struct str suffix = { x->req.target.p + 3, x->req.target.len - 3 };
	int err = buf_pool_get(&x->c->w->bufs, tx);
	if (!err && !(err = buf_append_str(tx, x->req.method_str)) &&
	    !(err = buf_append(tx, " ", 1)) && !(err = buf_append_cstr(tx, be->base_path)) &&
	    !(err = buf_append_str(tx, suffix)) &&
	    !(err = buf_append_str(tx, STR_LIT(" HTTP/1.1\r\n"))))
		err = buf_append_str(tx, buf_str(fixed));
	const struct http_header *conn[HTTP_MAX_CONNECTION_HEADERS];
	size_t nconn = http_connection_headers(x->req.headers, x->req.nheaders, conn,
					       HTTP_MAX_CONNECTION_HEADERS);
	for (size_t i = 0; !err && i < x->req.nheaders; i++) {
		const struct http_header *h = &x->req.headers[i];
		if (!is_dropped_request_header(h->name) &&
		    !http_connection_lists(conn, nconn, h->name) &&
		    fwd_keep_header(fwd_classify(h->name), &fwd))
			err = append_header(tx, h->name, h->value);
	}
	if (!err)
		err = fwd_append(tx, x->req.headers, x->req.nheaders, &fwd);
	if (!err && !(err = buf_append_str(tx, STR_LIT("Content-Length: "))) &&
	    !(err = buf_append_u64(tx, out_len)))
		err = buf_append_str(tx, STR_LIT("\r\n\r\n"));
	return err ? err : append_body(tx, body, body_len, edits, ne);
}

/* The body with edits (in order, not overlapping) applied. */
static int append_body(struct buf *tx, const char *body, size_t len,
		       const struct api_body_edit *e, size_t ne)
{
	size_t at = 0;
	int err = 0;
	for (size_t i = 0; !err && i < ne; i++) {
		if (!(err = buf_append(tx, body + at, e[i].at - at)))
			err = buf_append_str(tx, e[i].insert);
		at = e[i].at + e[i].del;
	}
	return err ? err : buf_append(tx, body + at, len - at);
}

static void reply_bad_body(struct exchange *x, const char *code, const char *why)
{
	conn_reply_error(x->c, 400, "invalid_request_error", code ? code : "invalid_request", why);
}

void exchange_proxy(struct exchange *x)
{
	struct conn *c = x->c;
	char why[256];
	const char *body = buf_head(&c->in) + x->head_len;
	if (api_parse_request(body, x->body_len, &x->api, why, sizeof(why))) {
		reply_bad_body(x, x->api.error_code, why);
		return;
	}
	/* Only chat and text completions stream. */
	if (x->ep == API_EMBEDDINGS)
		x->api.stream = false;
	stage_continue(x);
}

/* Every request and route hook went on: the backend gets the request. */
void exchange_forward(struct exchange *x)
{
	struct conn *c = x->c;
	int r = x->api.stream ? api_stream_usage_edit(&x->api, &x->usage_edit) : 1;
	if (r < 0) {
		reply_bad_body(x, "invalid_request", "'stream_options' must be an object");
		return;
	}
	x->strip_usage = x->has_usage_edit = r == 0;
	if (failover_send(x)) {
		conn_reply_error(c, 502, "server_error", "upstream_unavailable",
				 "the gateway could not open a connection to the backend");
		return;
	}
}

/* Head and body are in: the endpoint's handler answers. */
void exchange_start(struct exchange *x)
{
	const struct endpoint *e = endpoint_of(x->ep);
	if (e)
		e->handle(x);
	else
		conn_reply_error(x->c, 404, "invalid_request_error", "unknown_url",
				 "unknown endpoint");
}

/* ---- the response ---- */

static const char *const dropped_response_headers[] = {
	"content-length", "transfer-encoding", "connection", "keep-alive",
	"proxy-connection", "te", "trailer", "upgrade",
};

static bool is_dropped_response_header(struct str name)
{
	for (size_t i = 0; i < sizeof(dropped_response_headers) / sizeof(*dropped_response_headers); i++)
		if (str_case_eq_cstr(name, dropped_response_headers[i]))
			return true;
	return false;
}

static int append_status_line(struct buf *out, int status)
{
	int err = buf_append_str(out, STR_LIT("HTTP/1.1 "));
	if (!err && !(err = buf_append_u64(out, (uint64_t)status)) && !(err = buf_append(out, " ", 1)) &&
	    !(err = buf_append_cstr(out, http_reason(status))))
		err = buf_append_str(out, STR_LIT("\r\n"));
	return err;
}

/* Status line, the backend's end-to-end headers and the gateway's rate
 * limit headers (which replace any the backend sent), without the blank
 * line, into the worker's scratch buffer (the caller queues it whole). */
static int build_client_head(struct conn *c, const struct http_response *resp)
{
	const struct exchange *x = c->x;
	struct buf *head = &c->w->scratch;
	buf_reset(head);
	const struct http_header *conn[HTTP_MAX_CONNECTION_HEADERS];
	size_t nconn = http_connection_headers(resp->headers, resp->nheaders, conn,
					       HTTP_MAX_CONNECTION_HEADERS);
	int err = append_status_line(head, resp->status);
	for (size_t i = 0; !err && i < resp->nheaders; i++) {
		const struct http_header *h = &resp->headers[i];
		/* Hop-by-hop: the fixed set, and what the backend's own
		 * Connection header names (RFC 9110 section 7.6.1). */
		if (is_dropped_response_header(h->name) || http_connection_lists(conn, nconn, h->name))
			continue;
		if (x->ad.has_qh && h->name.len > 12 &&
		    strncasecmp(h->name.p, "x-ratelimit-", 12) == 0)
			continue;
		/* guardrails: only the gateway says what it found */
		if (str_case_eq_cstr(h->name, "x-sluice-guardrails"))
			continue;
		err = append_header(head, h->name, h->value);
	}
	if (!err)	/* guardrails: what the request held */
		err = guard_append_header(x, head);
	return err ? err : admit_append_headers(x, head, false);
}

static int append_framing(struct conn *c, const char *framing, bool close)
{
	struct buf *head = &c->w->scratch;
	int err = buf_append_cstr(head, framing);
	if (!err && close)
		err = buf_append_str(head, STR_LIT("Connection: close\r\n"));
	return err ? err : buf_append_str(head, STR_LIT("\r\n"));
}

static bool is_event_stream(const struct http_response *resp)
{
	const struct http_header *ct = http_find_header(resp->headers, resp->nheaders,
							"content-type");
	return ct && ct->value.len >= 17 && strncasecmp(ct->value.p, "text/event-stream", 17) == 0;
}

/* The client head of a streamed response goes out at once. */
static int start_stream(struct exchange *x, const struct http_response *resp)
{
	struct conn *c = x->c;
	bool close = c->close_after || c->w->draining || !x->req.keep_alive;
	/* HTTP/1.0 clients know no chunked coding: the body ends at close. */
	x->chunked_out = x->req.minor >= 1;
	if (!x->chunked_out)
		c->close_after = close = true;
	int err = build_client_head(c, resp);
	if (!err)
		err = append_framing(c, x->chunked_out ? "Transfer-Encoding: chunked\r\n" : "", close);
	if (!err)
		err = chain_append_str(&c->out, &c->w->bufs, buf_str(&c->w->scratch));
	x->head_sent = !err;
	return err;
}

/* Parse the backend's head (skipping 1xx) and choose how to relay the body.
 * 1 parsed, 0 need more, -EPROTO. */
static int parse_response_head(struct exchange *x)
{
	struct upstream *up = x->up;
	struct http_response *resp = &x->c->w->resp_scratch;
	for (;;) {
		int r = http_parse_response_scan(&x->resp_scan, buf_head(&up->rx),
						 buf_used(&up->rx), MAX_RESPONSE_HEAD, resp);
		if (r == HTTP_NEED_MORE)
			return 0;
		if (r < 0)
			return -EPROTO;
		if (resp->status >= 100 && resp->status < 200) {
			if (resp->status == 101)
				return -EPROTO;
			buf_consume(&up->rx, (size_t)r);
			x->resp_scan = HTTP_HEAD_SCAN_INIT;
			continue;
		}
		x->head_parsed = true;
		x->status = resp->status;
		/* failover: a 5xx or 429 goes to the next target, if any */
		if (failover_on_status(x, resp))
			return -ECANCELED;
		bool no_body = x->req.method == HTTP_HEAD || resp->status == 204 ||
			       resp->status == 304;
		x->body_chunked = !no_body && resp->chunked;
		x->body_until_close = !no_body && !resp->chunked && resp->content_length < 0;
		x->body_left = no_body || resp->chunked ? 0 : resp->content_length;
		x->reusable = resp->keep_alive && !x->body_until_close;
		http_chunked_init(&x->resp_chunked);
		x->stream = x->api.stream && resp->status == 200 && is_event_stream(resp);
		/* -EALREADY: a stage replied itself (-ECANCELED is failover's) */
		if (stage_run_response_head(x, resp) != STAGE_NEXT)
			return -EALREADY;
		const struct sluice_config *cfg = x->cfg;
		sse_splitter_init(&x->sse, cfg->max_sse_line_bytes, cfg->max_sse_event_bytes);
		if (!x->stream) {
			/* Kept in rx and parsed again when the body is complete. */
			x->resp_head_len = (size_t)r;
			return 1;
		}
		failover_hold(x);	/* failover: until the first content byte */
		int err = start_stream(x, resp);
		buf_consume(&up->rx, (size_t)r);
		return err ? -ENOMEM : 1;
	}
}

/*
 * Turn newly received body bytes into payload: up->rx from resp_head_len is
 * [payload (raw_off bytes)][raw bytes].  1 when the body is complete,
 * 0 when more is to come, <0 on bad framing.
 */
static int decode_response_body(struct exchange *x, bool eof)
{
	struct upstream *up = x->up;
	char *base = buf_head(&up->rx) + x->resp_head_len;
	size_t have = buf_used(&up->rx) - x->resp_head_len;
	if (x->body_chunked) {
		char *p = base + x->raw_off;
		size_t raw = have - x->raw_off, len = raw, consumed = 0;
		uint64_t max = x->stream ? UINT64_MAX : MAX_RESPONSE_BODY;
		int r = http_chunked_decode(&x->resp_chunked, p, &len, &consumed, max);
		if (r < 0)
			return r;
		memmove(p + len, p + consumed, raw - consumed);
		up->rx.len -= consumed - len;
		x->raw_off += len;
		if (r == 1 && raw - consumed)
			x->reusable = false;	/* bytes after the response: don't trust it */
		return r == 1 ? 1 : (eof ? -EPROTO : 0);
	}
	if (x->body_until_close) {
		x->raw_off = have;
		return eof ? 1 : 0;
	}
	size_t want = (size_t)x->body_left;
	x->raw_off = have < want ? have : want;
	if (have > want)
		x->reusable = false;
	if (x->raw_off == want)
		return 1;
	return eof ? -EPROTO : 0;
}

static void note_first_byte(struct exchange *x)
{
	if (!x->t_first_byte)
		x->t_first_byte = x->c->w->loop.now;
}

/* One chunk of the client body: its size line, the bytes and the CRLF
 * after them, all queued or none (a half-queued chunk would break the
 * framing of the error event that follows a failure). */
static int append_chunk(struct exchange *x, const char *p, size_t n)
{
	if (!n)
		return 0;
	struct chain *out = &x->c->out;
	struct buf_pool *pool = &x->c->w->bufs;
	uint64_t mark = chain_mark(out);
	int err = 0;
	if (x->chunked_out) {
		static const char digits[] = "0123456789abcdef";
		char line[20];
		size_t k = sizeof(line) - 2;
		line[k] = '\r';
		line[k + 1] = '\n';
		for (size_t v = n; v; v >>= 4)
			line[--k] = digits[v & 15];
		err = chain_append(out, pool, line + k, sizeof(line) - k);
	}
	if (!err)
		err = chain_append(out, pool, p, n);
	if (!err && x->chunked_out)
		err = chain_append_str(out, pool, STR_LIT("\r\n"));
	if (err) {
		chain_rollback(out, pool, mark);
		return err;
	}
	x->bytes_out += n;
	note_first_byte(x);
	return 0;
}

static int end_chunked(struct exchange *x)
{
	return x->chunked_out ? chain_append_str(&x->c->out, &x->c->w->bufs, STR_LIT("0\r\n\r\n"))
			      : 0;
}

/* The events held back by a stage go out (before the event that passes). */
static int flush_held(struct exchange *x)
{
	if (!buf_used(&x->held))
		return 0;
	int err = append_chunk(x, buf_head(&x->held), buf_used(&x->held));
	buf_reset(&x->held);
	return err;
}

static int hold_event(struct exchange *x, struct str ev)
{
	if (!x->held.data) {
		int err = buf_pool_get(&x->c->w->bufs, &x->held);
		if (err)
			return err;
	}
	return buf_append_str(&x->held, ev);
}

/* Forward every complete event of the payload through the stages' SSE
 * hooks, in as few chunks as the dropped, replaced and held events allow:
 * a run of passed events is one chunk.  At the end of the body, a partial
 * event goes too, after what is still held.  The splitter keeps its place
 * in the pending event, which stays at the front of up->rx, so each byte
 * is scanned once. */
static int relay_events(struct exchange *x, bool body_done)
{
	struct upstream *up = x->up;
	const char *p = buf_head(&up->rx);
	size_t avail = x->raw_off, run = 0, pos = 0;
	size_t max_stream = x->cfg->max_stream_bytes;
	int err = 0;
	if (max_stream && (x->bytes_out > max_stream || avail > max_stream - x->bytes_out))
		return -EFBIG;
	for (;;) {
		long r = sse_split(&x->sse, p + pos, avail - pos);
		if (r < 0)
			return r == SSE_ERR_LINE ? -E2BIG : -EMSGSIZE;
		if (!r)
			break;
		size_t n = (size_t)r;
		/* failover: an error before any content goes to the next target */
		if (x->holding && failover_on_event(x, p + pos, n))
			return -ECANCELED;
		struct stage_event ev = { .in = { p + pos, n } };
		enum stage_sse v = stage_run_sse(x, &ev);
		if (v == STAGE_SSE_PASS) {
			/* Held events precede this one (a run never follows a
			 * hold: the hold cut it). */
			if (!run)
				err = flush_held(x);
			run += n;
		} else {
			err = append_chunk(x, p + pos - run, run);
			run = 0;
			if (!err && v == STAGE_SSE_REPLACE && !(err = flush_held(x)))
				err = append_chunk(x, ev.out.p, ev.out.len);
			else if (!err && v == STAGE_SSE_HOLD)
				err = hold_event(x, ev.out);
		}
		pos += n;
		if (err)
			return err;
	}
	if (body_done) {
		if (!run)
			err = flush_held(x);
		run += avail - pos;
		pos = avail;
	}
	if (!err)
		err = append_chunk(x, p + pos - run, run);
	buf_consume(&up->rx, pos);
	x->raw_off -= pos;
	if (!err && body_done)
		err = end_chunked(x);
	return err;
}

/* A whole non-streamed response: usage first, then head and body. */
static int finish_buffered(struct exchange *x)
{
	struct upstream *up = x->up;
	struct conn *c = x->c;
	struct http_response *resp = &c->w->resp_scratch;
	const char *body = buf_head(&up->rx) + x->resp_head_len;
	size_t len = x->raw_off;
	if (http_parse_response(buf_head(&up->rx), x->resp_head_len, MAX_RESPONSE_HEAD, resp) <= 0)
		return -EPROTO;
	if (failover_on_body(x, body, len))	/* context window: a larger target */
		return -ECANCELED;
	if (stage_run_body(x, (struct str){ body, len }) != STAGE_NEXT)
		return -EALREADY;
	/* guardrails: the answer masked or refused.  The seam's body hook
	 * can refuse a body but not replace it, so this stays a call. */
	struct str guarded;
	int gv = x->status >= 200 && x->status < 300 ? guard_on_body(x, body, len, &guarded) : 0;
	if (gv) {
		body = guarded.p;
		len = guarded.len;
		if (gv == 2) {
			resp->status = x->status = 400;
			x->error_code = "guardrail_blocked";
		}
	}
	bool close = c->close_after || c->w->draining || !x->req.keep_alive;
	struct buf *head = &c->w->scratch;
	int err = build_client_head(c, resp);
	if (!err && !(err = buf_append_str(head, STR_LIT("Content-Length: "))) &&
	    !(err = buf_append_u64(head, len)))
		err = append_framing(c, "\r\n", close);
	/* Head and body go on the chain together or not at all: a failure
	 * here still gets a clean 502. */
	uint64_t mark = chain_mark(&c->out);
	if (!err)
		err = chain_append_str(&c->out, &c->w->bufs, buf_str(head));
	if (!err && x->req.method != HTTP_HEAD)
		err = chain_append(&c->out, &c->w->bufs, body, len);
	if (err) {
		chain_rollback(&c->out, &c->w->bufs, mark);
		return err;
	}
	x->head_sent = true;
	x->bytes_out += len;
	note_first_byte(x);
	return 0;
}

static void response_complete(struct exchange *x)
{
	struct upstream *up = x->up;
	bool reusable = x->reusable && buf_used(&up->rx) == x->resp_head_len + x->raw_off;
	buf_reset(&up->rx);
	upstream_release(up, reusable);
	x->done = true;
	conn_flush(x->c);
}

static const char *relay_failure(const struct exchange *x, int err)
{
	switch (err) {
	case -EFBIG:
		return x->stream ? "the backend stream is longer than limits.max_stream_bytes"
				 : "the backend response is too large";
	case -E2BIG:
		return "the backend sent an event line longer than limits.max_sse_line_bytes";
	case -EMSGSIZE:
		return "the backend sent an event larger than limits.max_sse_event_bytes";
	default:
		return "the gateway could not relay the response";
	}
}

/* A response_head or body hook answered DONE: it replied itself, so the
 * backend's response is not wanted (nor its connection, mid-response). */
static void stage_replied(struct exchange *x)
{
	upstream_close(x->up);
	if (!x->done && conn_reply_error(x->c, 502, "server_error", "stage_error",
					 "the gateway could not relay the response"))
		conn_close(x->c);
}

static void relay(struct exchange *x, bool eof)
{
	struct conn *c = x->c;
	if (!x->head_parsed) {
		int r = parse_response_head(x);
		if (r == -ECANCELED) {	/* failover: */
			failover_retry(x);
			return;
		}
		if (r == 0 && !eof) {
			if (buf_used(&x->up->rx) > MAX_RESPONSE_HEAD)
				r = -EPROTO;
			else {
				upstream_read_more(x->up);
				return;
			}
		}
		if (r == -EALREADY) {
			stage_replied(x);
			return;
		}
		if (r <= 0) {
			exchange_on_upstream_error(x, r == 0 ? UPSTREAM_ERR_RESET : UPSTREAM_ERR_PROTOCOL,
						   r == 0 ? "the backend closed the connection"
							  : "the backend sent an invalid response");
			return;
		}
	}
	int r = decode_response_body(x, eof);
	if (r < 0) {
		exchange_on_upstream_error(x, eof ? UPSTREAM_ERR_RESET : UPSTREAM_ERR_PROTOCOL,
					   eof ? "the backend closed the connection mid-response"
					       : "the backend sent a malformed body");
		return;
	}
	int err = 0;
	if (x->stream)
		err = relay_events(x, r == 1);
	else if (x->raw_off > MAX_RESPONSE_BODY)
		err = -EFBIG;
	else if (r == 1)
		err = finish_buffered(x);
	if (err == -EALREADY) {
		stage_replied(x);
		return;
	}
	if (err == -ECANCELED) {	/* failover: */
		failover_retry(x);
		return;
	}
	if (r == 1)
		x->holding = false;	/* failover: a whole answer, content or not */
	if (err) {
		exchange_on_upstream_error(x, UPSTREAM_ERR_PROTOCOL, relay_failure(x, err));
		return;
	}
	if (r == 1) {
		response_complete(x);
		return;
	}
	conn_flush(c);
	if (chain_bytes(&c->out) < CLIENT_OUT_HIGH)
		upstream_read_more(x->up);
}

void exchange_on_upstream_data(struct exchange *x)
{
	relay(x, false);
}

void exchange_on_upstream_eof(struct exchange *x)
{
	relay(x, true);
}

void exchange_on_client_sent(struct exchange *x)
{
	if (x->up && chain_bytes(&x->c->out) < CLIENT_OUT_HIGH)
		upstream_read_more(x->up);
}

/*
 * After the client head: say what went wrong in the stream itself (the
 * OpenAI SDKs raise an APIError on an "error" event), end the chunked body,
 * and close the connection.
 */
static void fail_stream(struct exchange *x, const char *code, const char *why)
{
	struct conn *c = x->c;
	char body[512], event[600];
	int n = api_error_body(body, sizeof(body), why, "server_error", code);
	int m = n > 0 ? snprintf(event, sizeof(event), "data: %.*s\n\n", n, body) : 0;
	c->close_after = true;
	if (m > 0 && (size_t)m < sizeof(event))
		append_chunk(x, event, (size_t)m);
	end_chunked(x);
	x->done = true;
	conn_flush(c);
}

/* timeouts.drain ran out with this exchange in flight (conn_drain_timeout):
 * the backend is let go, and the client told, in the stream or with a 503. */
void exchange_drain_timeout(struct exchange *x)
{
	struct conn *c = x->c;
	/* A stage waiting now must not resume the exchange after this reply,
	 * nor a retry waiting out its backoff be sent. */
	stage_abandon(x);
	timer_disarm(&x->backoff_timer);
	if (x->up)
		upstream_close(x->up);
	x->error_code = "drain_timeout";
	failover_drop_hold(x);
	if (x->head_sent) {
		fail_stream(x, "drain_timeout",
			    "the gateway is shutting down and ended the stream at its drain timeout");
		return;
	}
	if (conn_reply_error(c, 503, "server_error", "drain_timeout",
			     "the gateway is shutting down"))
		conn_close(c);
}

void exchange_on_upstream_error(struct exchange *x, enum upstream_error_kind kind,
				const char *why)
{
	struct conn *c = x->c;
	struct upstream *up = x->up;
	bool got_bytes = x->head_parsed || (up && buf_used(&up->rx));
	bool reused = up && up->reused;
	bool sent = up && up->tx_started;
	if (up)
		upstream_close(up);
	if (x->backend >= 0 && x->snap->metric_backend[x->backend] >= 0)
		metrics_upstream_error(c->w->metrics,
					       (unsigned)x->snap->metric_backend[x->backend], kind);
	/*
	 * A request goes out once.  Only one that provably never left this
	 * host -- a kept-alive connection that failed before any byte of it
	 * was handed to the kernel or OpenSSL -- is tried again, on a fresh
	 * connection.  Anything written may have been read (and billed) by
	 * the backend before the reset: that is a 502, never a second copy.
	 * (Stale pooled connections are caught before writing: up_take_idle.)
	 */
	if (reused && !sent && !got_bytes && !x->retried && kind == UPSTREAM_ERR_RESET &&
	    x->tx.data) {
		x->retried = true;
		if (upstream_send(x, false) == 0)
			return;
	}
	/* failover: nothing reached the client yet: the next target */
	if (failover_plan_retry(x) && failover_retry(x))
		return;
	failover_drop_hold(x);	/* nowhere to go: a plain error, not a cut stream */
	const char *code = kind == UPSTREAM_ERR_TIMEOUT ? "upstream_timeout"
			 : kind == UPSTREAM_ERR_CONNECT ? "upstream_unavailable"
			 : kind == UPSTREAM_ERR_TLS ? "upstream_tls_error"
			 : kind == UPSTREAM_ERR_RESET ? "upstream_reset" : "upstream_protocol_error";
	if (x->head_sent) {
		x->error_code = code;
		fail_stream(x, code, why);
		return;
	}
	conn_reply_error(c, kind == UPSTREAM_ERR_TIMEOUT ? 504 : 502, "server_error", code, why);
}
