/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guardrails' side of an exchange (guardrails.c): the request body
 * masked or refused before it is routed, the x-sluice-guardrails response
 * header, the access-log field and metrics, and the hold-back window of
 * a streamed response.
 */
#ifndef SLUICE_PROXY_GUARDRAILS_H
#define SLUICE_PROXY_GUARDRAILS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "guard/guard.h"

struct exchange;

/* Per exchange (zeroed with it). */
struct guard_xstate {
	const struct guard_policy *policy;	/* NULL: no guardrails for this request */
	struct guard_result req;		/* what the request held */
	struct guard_result resp;		/* what the response held */
	struct buf body;			/* the masked request body (pooled), or empty */
	struct buf out;				/* a replacement SSE event (pooled) */
	struct guard_window win;		/* streams: the hold-back window */
	bool win_on;
	bool stream_blocked;			/* content_filter sent: drop the rest */
	bool stream_done;			/* finish or [DONE] seen: window flushed */
};

/* What becomes of one SSE event. */
enum guard_sse_verdict { GUARD_SSE_PASS, GUARD_SSE_DROP, GUARD_SSE_REPLACE };

/* After the request JSON is parsed: 0 go on (x->api may now describe the
 * masked body), 1 the exchange was answered (blocked, or the scan failed
 * and the gateway fails closed). */
int guard_on_request(struct exchange *x);
/* The body to send upstream instead of the client's, or NULL. */
const struct buf *guard_request_body(const struct exchange *x);
/* "x-sluice-guardrails: masked=email;flagged=ip_address\r\n" when
 * anything was found; nothing otherwise.  0 or -ENOMEM. */
int guard_append_header(const struct exchange *x, struct buf *head);
/* The access-log value ("masked=email;flagged=ip_address"), "" for none. */
const char *guard_log_value(const struct exchange *x, char *buf, size_t cap);
/* One event of a streamed response; REPLACE puts the bytes in *out
 * (valid until the next call). */
enum guard_sse_verdict guard_on_sse_event(struct exchange *x, const char *ev, size_t n,
					  struct str *out);
/* A whole non-streamed response body (2xx): 0 it goes as it is, 1 *out
 * is the masked body, 2 *out is the error body that replaces a blocked
 * one (status 400).  *out is valid until the exchange ends. */
int guard_on_body(struct exchange *x, const char *body, size_t len, struct str *out);
/* The exchange is over: metrics, and the pooled buffers back. */
void guard_on_end(struct exchange *x);

#endif
