/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stage seam: an exchange runs an ordered list of stages, each a table
 * of optional hooks, built once per listener from the config snapshot.
 *
 *   head           request head parsed, body not read yet (identity)
 *   request        JSON body parsed, before routing
 *   route          choose the target: x->route, x->arm and x->backend
 *                  (the built-in route stage: failover_route(); the arm's
 *                  model replaces the client's in the body)
 *   response_head  the backend's head, before the client's is built
 *   sse_event      each event of a streamed response: pass, drop,
 *                  replace with other bytes, or hold back
 *   body           a whole non-streamed response body, before it is sent
 *   end            the exchange is over, usage known: reconcile, log
 *   cancel         a wait of this stage was abandoned (timeout, client gone)
 *
 * Hooks of one phase run in list order.  request and route answer
 *   STAGE_NEXT   go on with the next stage (then the next phase)
 *   STAGE_DONE   the stage replied (conn_reply_error...): stop
 *   STAGE_AGAIN  the stage will call stage_resume() later (its I/O came
 *                back on the worker's ring); meanwhile the exchange waits
 *                with a deadline: the stage's wait_ms, else timeouts.stage.
 *                When it passes the stage's cancel hook runs and the client
 *                gets 504 stage_timeout.
 * head, response_head and body answer NEXT or DONE (no waiting there).
 *
 * State: each stage declares state_size; its bytes live in the exchange
 * (x->stage_state, STAGE_STATE_MAX in all), zeroed when the exchange
 * starts and handed to every hook as `st`.  No hook may allocate per
 * request; a stage needing more keeps a pool of its own per worker.
 *
 * Everything runs on the exchange's worker thread: a stage that needs I/O
 * posts it on the worker's ring (or to a helper thread that completes
 * through an eventfd read on the ring) and never blocks.
 */
#ifndef SLUICE_PROXY_STAGE_H
#define SLUICE_PROXY_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

struct exchange;
struct http_response;
struct sluice_config;

#define STAGE_MAX		12	/* stages in one list */
#define STAGE_STATE_MAX		128	/* bytes of state, all stages of an exchange */

enum stage_rc {
	STAGE_NEXT,
	STAGE_DONE,
	STAGE_AGAIN,
};

/* What becomes of one SSE event. */
enum stage_sse {
	STAGE_SSE_PASS,		/* goes on (to the next stage, then the client) */
	STAGE_SSE_DROP,		/* never reaches the client */
	STAGE_SSE_REPLACE,	/* ev->out goes on instead of the event */
	STAGE_SSE_HOLD,		/* kept back (as it stands, or ev->out): it goes out
				 * before the next event that passes, or at the
				 * end of the stream, unless stage_drop_held() */
};

struct stage_event {
	struct str in;		/* the event, as earlier stages left it, with its
				 * blank line; valid during the call */
	struct str out;		/* REPLACE / HOLD: the bytes instead (the stage's;
				 * valid until its next hook call) */
};

struct stage {
	const char *name;
	size_t state_size;
	unsigned wait_ms;	/* deadline of an AGAIN; 0: timeouts.stage */
	enum stage_rc (*head)(struct exchange *x, void *st);
	enum stage_rc (*request)(struct exchange *x, void *st);
	enum stage_rc (*route)(struct exchange *x, void *st);
	enum stage_rc (*response_head)(struct exchange *x, void *st,
				       const struct http_response *resp);
	enum stage_sse (*sse_event)(struct exchange *x, void *st, struct stage_event *ev);
	enum stage_rc (*body)(struct exchange *x, void *st, struct str body);
	void (*end)(struct exchange *x, void *st);
	void (*cancel)(struct exchange *x, void *st);
};

/* The stages of one listener, and where each one's state lies. */
struct stage_list {
	unsigned n;
	const struct stage *s[STAGE_MAX];
	uint16_t off[STAGE_MAX];
	bool has_sse;		/* some stage has an sse_event hook */
	/* The stages with an sse_event hook, in order: the per-event walk
	 * visits only them. */
	unsigned nsse;
	uint8_t sse[STAGE_MAX];
};

/* The phases an exchange goes through, for its place in the list. */
enum stage_phase {
	STAGE_PH_REQUEST,
	STAGE_PH_ROUTE,
	STAGE_PH_FORWARD,	/* every request/route hook said NEXT */
};

/* The stage run of one exchange (inside struct exchange, zeroed per
 * request with it). */
struct stage_run {
	const struct stage_list *list;
	uint8_t phase;		/* enum stage_phase */
	uint8_t next;		/* index of the stage to run (or waiting) */
	bool waiting;		/* a stage answered AGAIN */
	bool ended;		/* end hooks ran */
};

/* Build the gateway's list from the config: the built-in stages (identity,
 * debug test stage when debug.test_stage, route, admission, usage,
 * access log and metrics).  0 or -E2BIG. */
int stage_list_build(struct stage_list *l, const struct sluice_config *cfg);
/* Append one stage (for lists assembled by hand, e.g. tests): 0 or -E2BIG. */
int stage_list_add(struct stage_list *l, const struct stage *s);

/* The driver, called by the exchange. */
enum stage_rc stage_run_head(struct exchange *x);
void stage_continue(struct exchange *x);		/* request, route, then forward */
enum stage_rc stage_run_response_head(struct exchange *x, const struct http_response *resp);
enum stage_sse stage_run_sse(struct exchange *x, struct stage_event *ev);
enum stage_rc stage_run_body(struct exchange *x, struct str body);
void stage_run_end(struct exchange *x);
void stage_abandon(struct exchange *x);		/* client gone: cancel a wait */
struct timer;
void stage_on_timer(struct timer *t);		/* a wait's deadline */

/* For stages: the wait started by AGAIN is over.  rc NEXT goes on with
 * the next stage; DONE means the stage has replied. */
void stage_resume(struct exchange *x, enum stage_rc rc);
/* The events held so far never reach the client. */
void stage_drop_held(struct exchange *x);

/* The built-in stages (stages.c). */
extern const struct stage stage_identity, stage_route, stage_admit, stage_usage,
	stage_account, stage_test;
/* guardrails.c: masks, refuses or flags requests and streamed answers */
extern const struct stage stage_guard;

#endif
