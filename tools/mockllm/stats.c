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
#define HEADERS_JSON_MAX (32 * 1024)

static _Atomic int64_t counters[STAT_COUNT];

/* The last bearer token is written by any worker, so it takes a lock. */
static pthread_mutex_t bearer_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_bearer[BEARER_MAX];
static size_t last_bearer_len;
static bool bearer_seen;

/* The headers of the last request that asked for it (x-mock-record-headers),
 * as the JSON array they are reported in; a lock for the same reason. */
static pthread_mutex_t headers_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_headers[HEADERS_JSON_MAX];
static size_t last_headers_len;

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

/* [["Name","value"], ...] in the order received, into dst; -ENOSPC. */
static int headers_json(char *dst, size_t cap, const struct http_request *hr, size_t *len)
{
	size_t n = 0;
	int w;

	if (cap < 2)
		return -ENOSPC;
	dst[n++] = '[';
	for (size_t i = 0; i < hr->nheaders; i++) {
		const struct http_header *h = &hr->headers[i];
		if (cap - n < 4)
			return -ENOSPC;
		if (i)
			dst[n++] = ',';
		dst[n++] = '[';
		if ((w = json_escape(dst + n, cap - n, h->name.p, h->name.len)) < 0)
			return w;
		n += (size_t)w;
		if (cap - n < 1)
			return -ENOSPC;
		dst[n++] = ',';
		if ((w = json_escape(dst + n, cap - n, h->value.p, h->value.len)) < 0)
			return w;
		n += (size_t)w;
		if (cap - n < 1)
			return -ENOSPC;
		dst[n++] = ']';
	}
	if (cap - n < 1)
		return -ENOSPC;
	dst[n++] = ']';
	*len = n;
	return 0;
}

void stats_note_headers(const struct http_request *hr)
{
	static const char too_many[] = "\"too large to record\"";

	pthread_mutex_lock(&headers_lock);
	if (headers_json(last_headers, sizeof(last_headers), hr, &last_headers_len)) {
		memcpy(last_headers, too_many, sizeof(too_many) - 1);
		last_headers_len = sizeof(too_many) - 1;
	}
	pthread_mutex_unlock(&headers_lock);
}

static int recorded_headers_json(struct buf *dst)
{
	int err;

	pthread_mutex_lock(&headers_lock);
	err = last_headers_len ? buf_append(dst, last_headers, last_headers_len)
			       : buf_append(dst, "null", 4);
	pthread_mutex_unlock(&headers_lock);
	return err;
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
	err |= buf_printf(dst, ",\"last_headers\":");
	err |= recorded_headers_json(dst);
	err |= buf_append(dst, "}", 1);
	return err ? -ENOMEM : 0;
}
