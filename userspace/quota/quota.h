/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request and token limits over the shared usage records of maps/sluice_maps.h.
 *
 * A scope is one (struct sluice_limits, struct sluice_usage) pair: a tenant
 * (in the tenant state array), one API key or one tenant and model (in the
 * quota slot array).  A request is admitted only when every scope it falls
 * in admits it; then each of them counts the request, one in flight, and a
 * reservation of the tokens it may use.  When the response ends the
 * reservation is reconciled with the usage the backend reported.
 *
 * Windows are fixed and aligned to UTC: the minute, the day, the calendar
 * month.  Time is passed in (unix milliseconds), so tests drive the clock.
 * The usage records live in shared memory written by every worker and by
 * sluicectl: each is changed under its own spin lock (usage->lock), and
 * scopes are always locked in the order the caller passes them, so every
 * caller must pass them in one order (tenant, key, model).  A scope given
 * twice counts once; a scope with a NULL limits or usage is skipped.
 *
 * Before a record is read or changed, the counters of a window that is
 * over are zeroed and the window moved to the current one.  A stored window
 * up to 5 s ahead of now_ms (another worker's clock) is the current one for
 * every scope of the call; one further ahead (the clock was stepped back)
 * is rolled like an old one.  Asks and usage are capped at QUOTA_TOKENS_MAX.
 */
#ifndef SLUICE_QUOTA_QUOTA_H
#define SLUICE_QUOTA_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

#include <linux/types.h>

#include "sluice_maps.h"

/* Token asks and usage above this are counted as this: far beyond any
 * real request, and small enough that sums of them cannot overflow. */
#define QUOTA_TOKENS_MAX	(1ull << 48)

/* What a request may use, estimated before it is sent. */
struct quota_ask {
	uint64_t input_tokens;		/* from the prompt size */
	uint64_t output_tokens;		/* max_tokens / max_completion_tokens, or the default */
};

/* What one admitted request holds until it is reconciled.  Copied into the
 * exchange; needed again (with the same scopes) by quota_release(). */
struct quota_hold {
	struct quota_ask ask;
	uint64_t minute, day, month;	/* windows the reservation was counted in */
};

enum quota_verdict {
	QUOTA_OK = 0,
	QUOTA_REQUESTS,			/* requests_per_minute */
	QUOTA_TOKENS,			/* tokens_per_minute */
	QUOTA_INPUT_TOKENS,		/* input_tokens_per_minute */
	QUOTA_OUTPUT_TOKENS,		/* output_tokens_per_minute */
	QUOTA_CONCURRENT,		/* concurrent */
	QUOTA_DAY,			/* tokens_per_day spent */
	QUOTA_MONTH,			/* tokens_per_month spent */
	QUOTA_TOO_LARGE,		/* the request alone exceeds a limit: never fits */
	QUOTA_UNAVAILABLE,		/* global mode, Redis down, policy closed */
	QUOTA_PENDING,			/* global mode, a worker's connection: the
					 * answer needs Redis; nothing was taken */
};

/* "requests_per_minute", "tokens_per_minute", "input_tokens_per_minute",
 * "output_tokens_per_minute", "concurrent", "tokens_per_day",
 * "tokens_per_month", "too_large", "unavailable", "ok": for logs and error
 * messages. */
const char *quota_verdict_name(enum quota_verdict v);

/*
 * The x-ratelimit-* values of a request: for requests and for tokens, the
 * scope with the least remaining (the one that will refuse first).  has_*
 * is false when no scope limits that dimension (the headers are left out).
 * Tokens are tokens_per_minute when any scope has one, else
 * input_tokens_per_minute, else output_tokens_per_minute (never a mix).
 * Day and month budgets are not headers.  Reset times are milliseconds from
 * now until the minute ends (>= 1).
 */
struct quota_headers {
	bool has_requests, has_tokens;
	uint64_t limit_requests, remaining_requests, reset_requests_ms;
	uint64_t limit_tokens, remaining_tokens, reset_tokens_ms;
	uint64_t retry_after_s;		/* on a refusal: seconds until the refusing window
					 * resets, rounded up (>= 1; 1 for concurrent);
					 * 0 for QUOTA_TOO_LARGE, which no wait cures */
};

/*
 * Values of sluice_quota_slot.kind besides enum sluice_quota_kind: a slot
 * being claimed (its name not written yet), and a slot whose claim was
 * abandoned (the claimer died mid-claim; skipped by every lookup).
 * Readers of the slot array list only SLUICE_QUOTA_KEY and _MODEL.
 */
#define QUOTA_SLOT_CLAIMING	0xffffffffu
#define QUOTA_SLOT_DEAD		0xfffffffeu

/* One scope as the caller found it. */
struct quota_scope {
	const struct sluice_limits *limits;
	struct sluice_usage *usage;
};

/* The window indices of a unix time in milliseconds. */
uint64_t quota_minute(uint64_t now_ms);
uint64_t quota_day(uint64_t now_ms);
uint64_t quota_month(uint64_t now_ms);		/* year * 12 + month - 1, UTC */
uint64_t quota_month_end_ms(uint64_t month);	/* first ms of the next month */

/*
 * Admit a request into every scope, or none.  QUOTA_OK: each scope counted
 * the request, one in flight and the reservation, and *hold says what to
 * release.  Otherwise nothing changed except the refusing scope's `denied`.
 * *h, if not NULL, gets the header values (after the admission, or at the
 * refusal with retry_after_s set).
 *
 * A limit refuses when this request would take its count past it
 * (requests + 1 > rpm, tokens + in + out > tpm, ..., in flight + 1 >
 * concurrent).  An ask that alone exceeds a token limit per minute or a
 * budget is QUOTA_TOO_LARGE.  When several limits refuse, the most lasting
 * is reported (too large, month, day, minute, concurrent; ties: the first
 * scope), so a client waiting retry_after_s is not refused again, longer,
 * for a reason that was there all along.  No syscall, no allocation.
 */
enum quota_verdict quota_reserve(struct quota_scope *scopes, size_t n,
				 const struct quota_ask *ask, uint64_t now_ms,
				 struct quota_hold *hold, struct quota_headers *h);

/*
 * The request is over: one less in flight, and the reservation replaced by
 * what was used (used_in/used_out; pass the ask itself when the backend
 * reported nothing, zeros when it was never sent).  Usage counted in a
 * window that has since ended is not moved into the current one, except
 * what was used beyond the reservation.  Returns true when a scope's hard
 * budget (tokens per day or month) is now spent.
 */
bool quota_release(struct quota_scope *scopes, size_t n, const struct quota_hold *hold,
		   uint64_t used_in, uint64_t used_out, uint64_t now_ms);

/* The header values of scopes without admitting anything (GET /v1/models,
 * local errors). */
void quota_peek(struct quota_scope *scopes, size_t n, uint64_t now_ms, struct quota_headers *h);

/* True when the scope's day or month budget is spent at now_ms (the
 * tenant's `blocked` flag should be set); false once the window moved on. */
bool quota_budget_spent(const struct sluice_limits *l, const struct sluice_usage *u,
			uint64_t now_ms);

/* Forget all usage (sluicectl quota reset): the window counters and
 * indices.  Requests in flight (concurrent, reserved_tokens) stay counted
 * so their release does not go negative; `denied` is a total and stays. */
void quota_reset(struct sluice_usage *u);

/* A restarted daemon has nothing in flight: clear concurrent and the
 * outstanding reservations left by the one before. */
void quota_clear_in_flight(struct sluice_usage *u);

/*
 * The quota slot of (kind, tenant, name) in slots[SLUICE_MAX_QUOTA_SLOTS]:
 * found by hash and linear probing, claimed with a compare-and-swap when
 * absent (its limits are then written by the caller; until then they are
 * zero: unlimited).  NULL when the array is full, kind is neither KEY nor
 * MODEL, or the name is empty, contains a NUL or is longer than
 * SLUICE_QUOTA_NAME_LEN - 1.  No lock, no allocation: a claim writes the
 * slot while its kind is QUOTA_SLOT_CLAIMING and publishes the kind last,
 * so readers never match a half-written name.  Slots are never freed.
 */
struct sluice_quota_slot *quota_slot_find(struct sluice_quota_slot *slots, uint32_t kind,
					  uint32_t tenant, const char *name, size_t name_len,
					  bool create);

/*
 * The daemon's way to a slot: found without a lock, or inserted under
 * `insert` (a dead slot on the chain is reused, so idle slots can be
 * reclaimed), and only while the tenant holds fewer than max slots
 * (*held counts them).  name may be any bytes: one that does not fit
 * a slot (48 bytes or more, or with a NUL) is stored as its hash, so a
 * long model name cannot escape model_limits.  NULL: no slot (table or
 * tenant's share full) - the caller must refuse the request.
 */
struct quota_slot_table {
	struct sluice_quota_slot *slots;	/* SLUICE_MAX_QUOTA_SLOTS */
	pthread_mutex_t insert;
};

struct sluice_quota_slot *quota_slot_get(struct quota_slot_table *t, uint32_t kind,
					 uint32_t tenant, const char *name, size_t name_len,
					 uint32_t *held, uint32_t max);

/* Free (mark dead, reusable) the slots idle at now_ms: nothing in flight,
 * nothing this minute or the last, no day or month budget in use.  Each
 * one reclaimed is taken off held_of(tenant).  Returns how many. */
size_t quota_slots_reclaim(struct quota_slot_table *t, uint64_t now_ms,
			   uint32_t *(*held_of)(void *arg, uint32_t tenant), void *arg);

/* The slots of a tenant that is gone are marked dead: a tenant that takes
 * its id later starts with none of its usage. */
void quota_slots_forget_tenant(struct sluice_quota_slot *slots, uint32_t tenant);

#endif
