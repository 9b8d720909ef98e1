/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Counters for /mock/stats, shared by all workers.  Relaxed atomics are
 * enough: tests read them after the traffic they check has settled.
 */
#include "mockllm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>

#include "api/json.h"

#define BEARER_MAX 1024

static _Atomic int64_t counters[STAT_COUNT];

/* The last bearer token is written by any worker, so it takes a lock. */
static pthread_mutex_t bearer_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_bearer[BEARER_MAX];
static size_t last_bearer_len;
static bool bearer_seen;

static const char *const counter_names[STAT_COUNT] = {
	[STAT_REQUESTS] = "requests",
	[STAT_STREAMS_STARTED] = "streams_started",
	[STAT_STREAMS_COMPLETED] = "streams_completed",
	[STAT_STREAMS_ABORTED] = "streams_aborted",
	[STAT_ACTIVE] = "active",
	[STAT_AUTHORIZED] = "authorized",
	[STAT_FAULTS] = "faults",
};

void stats_add(enum stat which, int64_t delta)
{
	atomic_fetch_add_explicit(&counters[which], delta, memory_order_relaxed);
}

void stats_note_bearer(struct str token)
{
	size_t len = token.len < BEARER_MAX ? token.len : BEARER_MAX;

	pthread_mutex_lock(&bearer_lock);
	memcpy(last_bearer, token.p, len);
	last_bearer_len = len;
	bearer_seen = true;
	pthread_mutex_unlock(&bearer_lock);
}

static int bearer_json(struct buf *dst)
{
	int err = 0;

	pthread_mutex_lock(&bearer_lock);
	if (!bearer_seen) {
		err = buf_append(dst, "null", 4);
	} else {
		/* Escaping can grow every byte to \u00XX. */
		size_t need = last_bearer_len * 6 + 2;
		err = buf_reserve(dst, need);
		int n = err ? 0 : json_escape(buf_tail(dst), buf_room(dst), last_bearer,
					      last_bearer_len);
		if (n < 0)
			err = n;
		else
			dst->len += (size_t)n;
	}
	pthread_mutex_unlock(&bearer_lock);
	return err;
}

int stats_json(struct buf *dst)
{
	int err = 0;

	for (int i = 0; i < STAT_COUNT; i++) {
		int64_t v = atomic_load_explicit(&counters[i], memory_order_relaxed);
		err |= buf_printf(dst, "%s\"%s\":%" PRId64, i ? "," : "{", counter_names[i], v);
	}
	err |= buf_printf(dst, ",\"last_bearer\":");
	err |= bearer_json(dst);
	err |= buf_append(dst, "}", 1);
	return err ? -ENOMEM : 0;
}
