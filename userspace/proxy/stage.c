/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stage driver: runs the hooks of an exchange's stage list phase by
 * phase, parks the exchange when a stage waits, and ends the wait at its
 * deadline.  See stage.h for the contract a stage keeps.
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "proxy/proxy.h"
#include "proxy/stage.h"

static void *state_of(struct exchange *x, unsigned i)
{
	return x->stage_state + x->sr.list->off[i];
}

int stage_list_add(struct stage_list *l, const struct stage *s)
{
	unsigned used = l->n ? l->off[l->n - 1] + (unsigned)l->s[l->n - 1]->state_size : 0;
	/* Keep each stage's state 8-byte aligned. */
	used = (used + 7u) & ~7u;
	if (l->n == STAGE_MAX || used + s->state_size > STAGE_STATE_MAX)
		return -E2BIG;
	l->s[l->n] = s;
	l->off[l->n] = (uint16_t)used;
	if (s->sse_event) {
		l->has_sse = true;
		l->sse[l->nsse++] = (uint8_t)l->n;
	}
	l->n++;
	return 0;
}

int stage_list_build(struct stage_list *l, const struct sluice_config *cfg)
{
	memset(l, 0, sizeof(*l));
	int err = stage_list_add(l, &stage_identity);
	if (!err && cfg->debug_test_stage)
		err = stage_list_add(l, &stage_test);
	/* Before routing, so a refused request costs no route or quota.  Only
	 * in a snapshot with policies: the list is the snapshot's, so a reload
	 * that adds the first policy builds a list with it, and requests of a
	 * gateway without guardrails pay nothing per event. */
	if (!err && cfg->guardrails.npolicies)
		err = stage_list_add(l, &stage_guard);
	/* Routing before admission: an unknown model is a 404 before any
	 * quota is reserved or a model permission refused. */
	if (!err)
		err = stage_list_add(l, &stage_route);
	if (!err)
		err = stage_list_add(l, &stage_admit);
	if (!err)
		err = stage_list_add(l, &stage_usage);
	/* Last, so its end hook logs what every other stage settled. */
	if (!err)
		err = stage_list_add(l, &stage_account);
	return err;
}

enum stage_rc stage_run_head(struct exchange *x)
{
	const struct stage_list *l = x->sr.list;
	for (unsigned i = 0; i < l->n; i++) {
		if (!l->s[i]->head)
			continue;
		if (l->s[i]->head(x, state_of(x, i)) != STAGE_NEXT)
			return STAGE_DONE;
	}
	return STAGE_NEXT;
}

/* The exchange parks until stage_resume() or the deadline. */
static void wait_start(struct exchange *x, const struct stage *s)
{
	struct worker *w = x->c->w;
	unsigned ms = s->wait_ms ? s->wait_ms : x->cfg->stage_ms;
	x->sr.waiting = true;
	timer_arm(worker_timer_list(w, ms), &x->stage_timer, w->loop.now);
}

void stage_continue(struct exchange *x)
{
	struct stage_run *r = &x->sr;
	const struct stage_list *l = r->list;
	while (r->phase < STAGE_PH_FORWARD) {
		for (; r->next < l->n; r->next++) {
			const struct stage *s = l->s[r->next];
			enum stage_rc (*hook)(struct exchange *, void *) =
				r->phase == STAGE_PH_REQUEST ? s->request : s->route;
			if (!hook)
				continue;
			enum stage_rc rc = hook(x, state_of(x, r->next));
			if (rc == STAGE_NEXT)
				continue;
			if (rc == STAGE_AGAIN)
				wait_start(x, s);
			return;
		}
		r->phase++;
		r->next = 0;
	}
	exchange_forward(x);
}

void stage_resume(struct exchange *x, enum stage_rc rc)
{
	if (!x->sr.waiting)
		return;
	x->sr.waiting = false;
	timer_disarm(&x->stage_timer);
	if (rc != STAGE_NEXT)
		return;
	x->sr.next++;
	stage_continue(x);
}

/* The wait outlived its deadline: the stage lets go of whatever it
 * waited for, and the client gets a 504 in the OpenAI shape. */
void stage_on_timer(struct timer *t)
{
	struct exchange *x = container_of(t, struct exchange, stage_timer);
	struct stage_run *r = &x->sr;
	const struct stage *s = r->list->s[r->next];
	r->waiting = false;
	if (s->cancel)
		s->cancel(x, state_of(x, r->next));
	log_debug("stage %s: wait over its deadline", s->name);
	if (conn_reply_error(x->c, 504, "server_error", "stage_timeout",
			     "the gateway timed out while preparing the request"))
		conn_close(x->c);
}

void stage_abandon(struct exchange *x)
{
	struct stage_run *r = &x->sr;
	if (!r->waiting)
		return;
	r->waiting = false;
	timer_disarm(&x->stage_timer);
	const struct stage *s = r->list->s[r->next];
	if (s->cancel)
		s->cancel(x, state_of(x, r->next));
}

enum stage_rc stage_run_response_head(struct exchange *x, const struct http_response *resp)
{
	const struct stage_list *l = x->sr.list;
	for (unsigned i = 0; i < l->n; i++)
		if (l->s[i]->response_head &&
		    l->s[i]->response_head(x, state_of(x, i), resp) != STAGE_NEXT)
			return STAGE_DONE;
	return STAGE_NEXT;
}

/*
 * One event through every sse_event hook.  A replacement is what the
 * following stages see; a drop or a hold ends the walk.  On REPLACE and
 * HOLD, ev->out holds the bytes that go on (or are kept).
 */
enum stage_sse stage_run_sse(struct exchange *x, struct stage_event *ev)
{
	const struct stage_list *l = x->sr.list;
	bool replaced = false;
	struct str cur = ev->in;
	for (unsigned k = 0; k < l->nsse; k++) {
		unsigned i = l->sse[k];
		ev->in = cur;
		ev->out = (struct str){ 0 };
		enum stage_sse v = l->s[i]->sse_event(x, state_of(x, i), ev);
		if (v == STAGE_SSE_DROP)
			return v;
		if (v == STAGE_SSE_HOLD) {
			if (!ev->out.p)
				ev->out = cur;
			return v;
		}
		if (v == STAGE_SSE_REPLACE) {
			cur = ev->out;
			replaced = true;
		}
	}
	ev->out = cur;
	return replaced ? STAGE_SSE_REPLACE : STAGE_SSE_PASS;
}

enum stage_rc stage_run_body(struct exchange *x, struct str body)
{
	const struct stage_list *l = x->sr.list;
	for (unsigned i = 0; i < l->n; i++)
		if (l->s[i]->body && l->s[i]->body(x, state_of(x, i), body) != STAGE_NEXT)
			return STAGE_DONE;
	return STAGE_NEXT;
}

void stage_run_end(struct exchange *x)
{
	struct stage_run *r = &x->sr;
	if (r->ended)
		return;
	r->ended = true;
	stage_abandon(x);
	for (unsigned i = 0; i < r->list->n; i++)
		if (r->list->s[i]->end)
			r->list->s[i]->end(x, state_of(x, i));
}

void stage_drop_held(struct exchange *x)
{
	buf_reset(&x->held);
}
