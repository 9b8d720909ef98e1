/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Global quotas: several sluiced nodes sharing one Redis enforce one limit
 * per scope (a tenant, an API key, a tenant and model).
 *
 * The request path does not wait on Redis for every request.  Each node
 * takes leases (chunks of quota) from Redis and spends them locally: the
 * lease state of a scope is process-wide (shared by every worker, one mutex
 * per scope) and holds, per dimension, the window it belongs to, the units
 * left and the global count seen at the last Redis call.  When a lease
 * lacks units, one Lua script call takes max(needed - left, lease_size)
 * more, where lease_size = max(1, limit * lease_percent / 100) (never more
 * than the limit): with a large limit that is one round trip per about
 * 100 / lease_percent requests, with a small one (10 requests a minute)
 * leases are one unit and the global limit is exact.
 *
 * Redis keys: sluice:{<scope>}:<dim>:<window>, dim one of rpm, tpm, tpm_in,
 * tpm_out, day, month, window the index of quota_minute/day/month().  The
 * scope name between braces is a Redis Cluster hash tag, so one scope's
 * keys live on one node and one script can touch them all.  Keys expire a
 * minute after their window ends.
 *
 * The script (loaded with SCRIPT LOAD, run with EVALSHA, EVAL on NOSCRIPT)
 * gets, for every limited dimension of one scope, KEYS[i] and four ARGV
 * values (want, debt, limit, ttl_ms), and for each key atomically:
 *     cur   = GET key (0 when absent)
 *     grant = max(0, min(want, limit - cur - debt))
 *     INCRBY key (debt + grant)          -- debt counts even past the limit
 *     PEXPIRE key ttl_ms when it has no expiry yet
 * and returns the array { grant_1, count_1, grant_2, count_2, ... }, count
 * being the key's value after the call.  Being one script, two nodes can
 * never both take the last unit.
 *
 * Tokens used beyond a reservation are taken from the local lease when the
 * request is released; a lease below zero is debt, added to Redis by the
 * scope's next script call, so overspend is bounded and eventually counted
 * globally.  Tokens reserved but unused go back to the local lease, not to
 * Redis.
 *
 * Concurrency (requests in flight, sluice_limits.concurrent) is not global:
 * the caller enforces it per node with the local module (quota.h).
 *
 * Redis unreachable or answering errors: the error is counted, logged once
 * per transition, and the policy applies: fail open admits on the local
 * limits only, fail closed refuses with QUOTA_UNAVAILABLE.  While Redis is
 * down, at most one request per retry_ms (process-wide) tries it again, so
 * an outage adds no latency to the others.  Once it answers, leases start
 * afresh.  A lease already held is still spent while Redis is down: its
 * units were counted globally when they were taken.
 */
#ifndef SLUICE_QUOTA_GLOBAL_H
#define SLUICE_QUOTA_GLOBAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quota/quota.h"
#include "sluice_maps.h"

/* Longest scope name; a longer one is an error, under the policy. */
#define QUOTA_GLOBAL_NAME_MAX 512

struct quota_global_cfg {
	const char *url;		/* redis://[[user]:password@]host[:port][/db] or unix:///path */
	bool fail_open;			/* Redis down: admit (true) or QUOTA_UNAVAILABLE */
	unsigned timeout_ms;		/* per Redis call; 0 = 50 */
	unsigned retry_ms;		/* while down, try Redis at most this often; 0 = 1000 */
	unsigned lease_percent;		/* lease size in % of the limit; 0 = 1, at most 100 */
};

struct quota_global;			/* process-wide: leases, stats, Redis address */
struct quota_global_conn;		/* one per worker: its Redis connection */

/*
 * Parse cfg->url and set up the lease table.  Does not connect.  0, or
 * -EINVAL with a reason in err ("redis url: ...") or -ENOMEM.
 */
int quota_global_new(const struct quota_global_cfg *cfg, struct quota_global **out,
		     char *err, size_t errcap);

/* Where Redis is, for logs: "host:port" or "unix:/path", never the
 * password of the URL. */
const char *quota_global_where(const struct quota_global *g);

/* Free g, after every connection made from it. */
void quota_global_free(struct quota_global *g);

/* A worker's connection (connected lazily, on the first call that needs
 * Redis).  NULL on allocation failure. */
struct quota_global_conn *quota_global_conn_new(struct quota_global *g);
void quota_global_conn_free(struct quota_global_conn *c);
/* A nowait connection (a worker's) never calls Redis and never waits for
 * another thread's lock: quota_global_reserve() answers QUOTA_PENDING,
 * having taken nothing, when a scope's lease lacks units or its lock is
 * busy, and the caller asks again on a blocking connection (a thread of
 * its own).  Release never calls Redis, so it is the same on both. */
void quota_global_conn_set_nowait(struct quota_global_conn *c, bool nowait);

/* One scope of a request: a stable name every node uses for it ("t:acme",
 * "k:0123456789ab", "m:acme:gpt-4o-mini") and its limits.  Limits of 0 are
 * not enforced. */
struct quota_global_scope {
	const char *name;
	const struct sluice_limits *limits;
};

/*
 * Admit a request into every scope, or none: one request and ask's tokens
 * (input + output, input, output, day, month) are taken from each scope's
 * lease, calling Redis for the scopes whose lease lacks units.  When a
 * later scope refuses, the earlier ones get their units back.  A scope
 * whose count is known to be at its limit in this window refuses without
 * a call (counts only grow within a window).  Asks (and, at release,
 * usage) are capped at QUOTA_TOKENS_MAX as quota.h caps them.
 *
 * QUOTA_OK: admitted; *hold (if not NULL) is what to pass to
 * quota_global_release() (the same as quota_reserve() fills for the same
 * ask and now_ms).  QUOTA_REQUESTS ... QUOTA_MONTH: the global limit of
 * that dimension is reached; QUOTA_TOO_LARGE: the ask alone exceeds a
 * limit; QUOTA_UNAVAILABLE: Redis is down and the policy is closed.  When
 * Redis is down and the policy is open the answer is QUOTA_OK, counted in
 * stats.fail_open.
 *
 * *h, if not NULL, is merged, not reset, so it may come filled by
 * quota_reserve() (local limits) or zeroed: for requests, and for tokens
 * per minute (else input, else output tokens per minute, as quota.h
 * chooses), the global value replaces h's when it has less remaining.
 * Remaining = max(0, limit - global count at the scope's last call) +
 * what this node's lease holds.  On a refusal retry_after_s is set (>= 1;
 * retry_ms rounded up for QUOTA_UNAVAILABLE).  A fail-open admission
 * leaves h as it was: the headers then show the local limits only.
 *
 * Blocks on Redis only when a lease runs out (a few timeouts at most when
 * a connect is needed), never on a Redis that is known to be down.
 */
enum quota_verdict quota_global_reserve(struct quota_global_conn *c,
					const struct quota_global_scope *s, size_t n,
					const struct quota_ask *ask, uint64_t now_ms,
					struct quota_hold *hold, struct quota_headers *h);

/*
 * The request is over: used_in/used_out replace the reservation of hold
 * (pass the ask when the backend reported nothing, zeros when the request
 * was never sent).  Tokens beyond the reservation are taken from the
 * current window's lease (debt when it goes below zero, pushed to Redis on
 * the scope's next call); unused tokens go back to the lease of the window
 * they were reserved in, if it is still current.  Never calls Redis.
 * 0; on a nowait connection -EAGAIN, having settled nothing, when a
 * scope's lock is held (by a Redis call of another thread): the caller
 * settles it on a blocking connection instead (its Redis thread).
 */
int quota_global_release(struct quota_global_conn *c, const struct quota_global_scope *s,
			 size_t n, const struct quota_hold *hold,
			 uint64_t used_in, uint64_t used_out, uint64_t now_ms);

/* The header values of scopes, from the leases as they are (no Redis
 * call, nothing taken), merged into h as by quota_global_reserve(). */
void quota_global_peek(struct quota_global *g, const struct quota_global_scope *s, size_t n,
		       uint64_t now_ms, struct quota_headers *h);

/* For /metrics and the bench (all counters since quota_global_new). */
struct quota_global_stats {
	uint64_t calls;			/* Redis commands sent (round trips), AUTH, SELECT
					 * and SCRIPT LOAD of connects included */
	uint64_t errors;		/* failed connects and calls, error replies */
	uint64_t fail_open;		/* requests admitted because Redis was down */
	uint64_t fail_closed;		/* requests refused because Redis was down */
	bool up;			/* Redis answered the last call */
};

void quota_global_get_stats(const struct quota_global *g, struct quota_global_stats *out);

#endif
