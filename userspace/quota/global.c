/* SPDX-License-Identifier: Apache-2.0 */
#include "quota/global.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/sat.h"

/* The dimensions of one scope, in the order their verdicts are reported. */
enum gdim { GD_RPM, GD_TPM, GD_TPM_IN, GD_TPM_OUT, GD_DAY, GD_MONTH, GD_N };

static const char *const gdim_name[GD_N] = {
	"rpm", "tpm", "tpm_in", "tpm_out", "day", "month",
};

static const enum quota_verdict gdim_verdict[GD_N] = {
	QUOTA_REQUESTS, QUOTA_TOKENS, QUOTA_INPUT_TOKENS, QUOTA_OUTPUT_TOKENS,
	QUOTA_DAY, QUOTA_MONTH,
};

#define GQ_BUCKETS 1024			/* lease table; chains grow past it */
#define GQ_KEY_GRACE_MS 60000		/* keys outlive their window by this */
#define GQ_KEY_MAX (QUOTA_GLOBAL_NAME_MAX + 64)
#define GQ_NUM_MAX 24			/* a uint64 in decimal, NUL included */

/*
 * For every key (one limited dimension of the scope) ARGV holds want,
 * debt, limit, ttl_ms.  Numbers go back to Redis through string.format
 * because Lua 5.1 prints large numbers in exponent form, which INCRBY
 * would refuse.  A count stops at GQ_COUNT_MAX: far past any limit (10^15),
 * exact in Lua's doubles and far from INCRBY's overflow error, however
 * much usage backends claim (debt is capped only at INT64_MAX here).
 */
#define GQ_COUNT_MAX "4503599627370496"	/* 2^52 */
static const char gq_script[] =
	"local out = {}\n"
	"for i, key in ipairs(KEYS) do\n"
	"  local want = tonumber(ARGV[4 * i - 3])\n"
	"  local debt = tonumber(ARGV[4 * i - 2])\n"
	"  local limit = tonumber(ARGV[4 * i - 1])\n"
	"  local cur = tonumber(redis.call('GET', key) or '0')\n"
	"  local grant = math.min(want, limit - cur - debt)\n"
	"  if grant < 0 then grant = 0 end\n"
	"  local add = math.min(debt + grant, " GQ_COUNT_MAX " - cur)\n"
	"  if add > 0 then\n"
	"    cur = redis.call('INCRBY', key, string.format('%d', add))\n"
	"    if redis.call('PTTL', key) < 0 then\n"
	"      redis.call('PEXPIRE', key, ARGV[4 * i])\n"
	"    end\n"
	"  end\n"
	"  out[2 * i - 1] = grant\n"
	"  out[2 * i] = cur\n"
	"end\n"
	"return out\n";

/* One dimension's lease on this node. */
struct glease {
	uint64_t window;		/* window index the lease belongs to */
	int64_t left;			/* units still to spend; below zero: debt */
	uint64_t seen;			/* the key's global count after the last call */
};

/* The lease state of one scope, shared by every worker.  Entries are
 * published once in a bucket chain and never removed before
 * quota_global_free(), so lookups take no lock; name and next never change. */
struct gscope {
	struct gscope *next;
	pthread_mutex_t lock;
	uint64_t epoch;			/* the g->epoch the leases were taken in */
	struct glease d[GD_N];
	size_t len;
	char name[];
};

struct quota_global {
	/* where Redis is (immutable after quota_global_new) */
	bool unix_socket;
	char host[256];			/* or the socket path */
	int port;
	int db;
	char user[128], password[256];	/* empty: none */
	char where[300];		/* for logs: host:port or unix:path, no secrets */
	bool fail_open;
	unsigned timeout_ms, retry_ms, lease_percent;

	/* shared by all workers, through atomics */
	bool up;			/* the last call succeeded */
	uint64_t epoch;			/* bumped when Redis comes back: leases restart */
	uint64_t next_try_ms;		/* monotonic; while down, the next attempt */
	uint64_t calls, errors, fail_open_n, fail_closed_n;

	struct gscope *buckets[GQ_BUCKETS];
};

struct quota_global_conn {
	struct quota_global *g;
	redisContext *ctx;		/* NULL: not connected */
	uint64_t epoch;			/* g->epoch when ctx was connected */
	char sha[48];			/* the script's SHA1 from SCRIPT LOAD */
	bool nowait;			/* never call Redis nor wait on a lock:
					 * QUOTA_PENDING instead */
};

/* What one scope call asks Redis, per limited dimension. */
struct gcall {
	int ndims;
	enum gdim dim[GD_N];
	uint64_t want[GD_N], debt[GD_N], limit[GD_N], ttl_ms[GD_N];
	uint64_t grant[GD_N], count[GD_N];	/* the answer */
};

/* ---- windows ------------------------------------------------------------ */

static uint64_t window_of(enum gdim d, uint64_t now_ms)
{
	switch (d) {
	case GD_DAY:
		return quota_day(now_ms);
	case GD_MONTH:
		return quota_month(now_ms);
	default:
		return quota_minute(now_ms);
	}
}

static uint64_t hold_window(enum gdim d, const struct quota_hold *hold)
{
	switch (d) {
	case GD_DAY:
		return hold->day;
	case GD_MONTH:
		return hold->month;
	default:
		return hold->minute;
	}
}

static uint64_t window_end_ms(enum gdim d, uint64_t window)
{
	switch (d) {
	case GD_DAY:
		return (window + 1) * 86400000;
	case GD_MONTH:
		return quota_month_end_ms(window);
	default:
		return (window + 1) * 60000;
	}
}

/* ---- limits and asks ----------------------------------------------------- */

static uint64_t limit_of(const struct sluice_limits *l, enum gdim d)
{
	switch (d) {
	case GD_RPM:
		return l->requests_per_minute;
	case GD_TPM:
		return l->tokens_per_minute;
	case GD_TPM_IN:
		return l->input_tokens_per_minute;
	case GD_TPM_OUT:
		return l->output_tokens_per_minute;
	case GD_DAY:
		return l->tokens_per_day;
	default:
		return l->tokens_per_month;
	}
}

static uint64_t need_of(enum gdim d, uint64_t in, uint64_t out)
{
	switch (d) {
	case GD_RPM:
		return 1;
	case GD_TPM_IN:
		return in;
	case GD_TPM_OUT:
		return out;
	default:
		return sat_add_u64(in, out);
	}
}

/* lease_size = max(1, limit * percent / 100), never above the limit; split
 * so that limit * percent cannot overflow. */
static uint64_t lease_size(const struct quota_global *g, uint64_t limit)
{
	uint64_t p = g->lease_percent;
	uint64_t size = limit / 100 * p + limit % 100 * p / 100;
	if (size < 1)
		size = 1;
	return size > limit ? limit : size;
}

/* ---- shared state ---------------------------------------------------------- */

static uint64_t mono_ms(void)
{
	return clock_mono_ns() / 1000000;
}

static void count(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static uint32_t hash_name(const char *p, size_t len)
{
	return (uint32_t)fnv1a64(FNV1A64_INIT, p, len);
}

static struct gscope *scope_alloc(const char *name, size_t len, struct gscope *next)
{
	struct gscope *e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	if (pthread_mutex_init(&e->lock, NULL)) {
		free(e);
		return NULL;
	}
	memcpy(e->name, name, len);
	e->len = len;
	e->next = next;
	return e;
}

static void scope_free(struct gscope *e)
{
	pthread_mutex_destroy(&e->lock);
	free(e);
}

/*
 * The entry of a scope name, created on first use.  Lock-free: a new entry
 * is pushed on its chain with a compare-and-swap; when another thread got
 * there first the chain is searched again, so each name has one entry.
 */
static struct gscope *scope_find(struct quota_global *g, const char *name, bool create)
{
	size_t len = strlen(name);
	struct gscope **head = &g->buckets[hash_name(name, len) % GQ_BUCKETS];
	struct gscope *first = __atomic_load_n(head, __ATOMIC_ACQUIRE);
	struct gscope *fresh = NULL;

	for (;;) {
		for (struct gscope *e = first; e; e = e->next) {
			if (e->len == len && memcmp(e->name, name, len) == 0) {
				if (fresh)
					scope_free(fresh);
				return e;
			}
		}
		if (!create)
			return NULL;
		if (!fresh && !(fresh = scope_alloc(name, len, first)))
			return NULL;
		fresh->next = first;
		if (__atomic_compare_exchange_n(head, &first, fresh, false,
						__ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
			return fresh;
	}
}

/* Bring a lease up to now: leases of an earlier Redis epoch are dropped
 * whole; a new window drops the units left but carries debt over, so
 * overspend still reaches Redis.  Windows only move forward: a worker
 * whose clock reading is a little older (at a minute's edge) spends from
 * the newer window instead of throwing its lease away. */
static void lease_sync(struct quota_global *g, struct gscope *e, enum gdim d, uint64_t now_ms)
{
	uint64_t epoch = __atomic_load_n(&g->epoch, __ATOMIC_ACQUIRE);
	struct glease *l = &e->d[d];
	uint64_t w = window_of(d, now_ms);

	if (e->epoch != epoch) {
		memset(e->d, 0, sizeof(e->d));
		e->epoch = epoch;
	}
	if (w > l->window) {
		l->window = w;
		l->seen = 0;
		if (l->left > 0)
			l->left = 0;
	}
}

/* ---- Redis up / down --------------------------------------------------------- */

/* May this call talk to Redis?  Always while it is up; while it is down
 * only the one caller that moves next_try_ms forward, once per retry_ms
 * for the whole process. */
static bool redis_may_try(struct quota_global *g)
{
	if (__atomic_load_n(&g->up, __ATOMIC_ACQUIRE))
		return true;
	uint64_t now = mono_ms();
	uint64_t next = __atomic_load_n(&g->next_try_ms, __ATOMIC_ACQUIRE);
	if (now < next)
		return false;
	return __atomic_compare_exchange_n(&g->next_try_ms, &next, now + g->retry_ms, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void redis_went_down(struct quota_global *g, const char *why)
{
	bool was_up = true;

	count(&g->errors);
	__atomic_store_n(&g->next_try_ms, mono_ms() + g->retry_ms, __ATOMIC_RELEASE);
	if (__atomic_compare_exchange_n(&g->up, &was_up, false, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		log_warn("global quotas: redis at %s unreachable (%s); failing %s",
			 g->where, why, g->fail_open ? "open" : "closed");
}

/* Returns true when this call is the one that saw Redis come back. */
static bool redis_answered(struct quota_global *g)
{
	bool was_up = false;

	if (__atomic_load_n(&g->up, __ATOMIC_ACQUIRE))
		return false;
	if (!__atomic_compare_exchange_n(&g->up, &was_up, true, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return false;
	__atomic_fetch_add(&g->epoch, 1, __ATOMIC_ACQ_REL);
	log_warn("global quotas: redis at %s is back", g->where);
	return true;
}

/* ---- the connection ------------------------------------------------------------ */

static struct timeval ms_to_tv(unsigned ms)
{
	return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

static void conn_drop(struct quota_global_conn *c)
{
	if (c->ctx)
		redisFree(c->ctx);
	c->ctx = NULL;
}

/* One command of the connect sequence; the reply must be of type want. */
static int conn_command(struct quota_global_conn *c, int argc, const char **argv,
			int want, redisReply **out, char *why, size_t cap)
{
	redisReply *r;

	count(&c->g->calls);
	r = redisCommandArgv(c->ctx, argc, argv, NULL);
	if (!r) {
		snprintf(why, cap, "%s: %s", argv[0], c->ctx->errstr);
		return -EIO;
	}
	if (r->type != want) {
		snprintf(why, cap, "%s: %s", argv[0],
			 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		freeReplyObject(r);
		return -EPROTO;
	}
	if (out)
		*out = r;
	else
		freeReplyObject(r);
	return 0;
}

/* Connect, authenticate, select the database and load the script, each
 * step bounded by the timeout. */
static int conn_open(struct quota_global_conn *c, char *why, size_t cap)
{
	struct quota_global *g = c->g;
	struct timeval tv = ms_to_tv(g->timeout_ms);
	redisReply *r = NULL;
	char db[GQ_NUM_MAX];
	int rc;

	c->ctx = g->unix_socket ? redisConnectUnixWithTimeout(g->host, tv)
				: redisConnectWithTimeout(g->host, g->port, tv);
	if (!c->ctx || c->ctx->err) {
		snprintf(why, cap, "connect: %s", c->ctx ? c->ctx->errstr : "out of memory");
		conn_drop(c);
		return -EIO;
	}
	if (redisSetTimeout(c->ctx, tv) != REDIS_OK) {
		snprintf(why, cap, "setting the timeout: %s", c->ctx->errstr);
		conn_drop(c);
		return -EIO;
	}
	rc = 0;
	if (g->password[0] && g->user[0])
		rc = conn_command(c, 3, (const char *[]){ "AUTH", g->user, g->password },
				  REDIS_REPLY_STATUS, NULL, why, cap);
	else if (g->password[0])
		rc = conn_command(c, 2, (const char *[]){ "AUTH", g->password },
				  REDIS_REPLY_STATUS, NULL, why, cap);
	if (!rc && g->db) {
		snprintf(db, sizeof(db), "%d", g->db);
		rc = conn_command(c, 2, (const char *[]){ "SELECT", db },
				  REDIS_REPLY_STATUS, NULL, why, cap);
	}
	if (!rc)
		rc = conn_command(c, 3, (const char *[]){ "SCRIPT", "LOAD", gq_script },
				  REDIS_REPLY_STRING, &r, why, cap);
	if (rc) {
		conn_drop(c);
		return rc;
	}
	snprintf(c->sha, sizeof(c->sha), "%.*s", (int)r->len, r->str);
	freeReplyObject(r);
	c->epoch = __atomic_load_n(&g->epoch, __ATOMIC_ACQUIRE);
	return 0;
}

/* Did a reused connection fail because the server had closed it (a Redis
 * restart), rather than by a timeout?  errno is still the one of hiredis's
 * failed read or write. */
static bool conn_was_closed(const redisContext *ctx)
{
	return ctx->err == REDIS_ERR_EOF ||
	       (ctx->err == REDIS_ERR_IO && errno != EAGAIN && errno != EWOULDBLOCK &&
		errno != EINTR);
}

/* Check the script's answer: two integers per key. */
static int call_parse(const redisReply *r, struct gcall *call, char *why, size_t cap)
{
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(why, cap, "script: %s", r->str);
		return -EPROTO;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)call->ndims * 2) {
		snprintf(why, cap, "script: unexpected reply");
		return -EPROTO;
	}
	for (int i = 0; i < call->ndims; i++) {
		const redisReply *gr = r->element[2 * i], *cr = r->element[2 * i + 1];
		/* The script grants at most what was asked for. */
		if (gr->type != REDIS_REPLY_INTEGER || cr->type != REDIS_REPLY_INTEGER ||
		    gr->integer < 0 || cr->integer < 0 || (uint64_t)gr->integer > call->want[i]) {
			snprintf(why, cap, "script: unexpected reply");
			return -EPROTO;
		}
		call->grant[i] = (uint64_t)gr->integer;
		call->count[i] = (uint64_t)cr->integer;
	}
	return 0;
}

/*
 * Run the script once for one scope: EVALSHA, then EVAL when the server
 * does not know the script (it restarted).  A connection the server had
 * closed is opened again once and the call repeated.  0 or a negative
 * errno with the reason in why.
 */
static int call_script(struct quota_global_conn *c, const struct gscope *e,
		       struct gcall *call, char *why, size_t cap)
{
	char keys[GD_N][GQ_KEY_MAX], nums[1 + 4 * GD_N][GQ_NUM_MAX];
	const char *argv[3 + 5 * GD_N];
	int argc = 0, rc;
	bool reused;
	redisReply *r;

	if (c->ctx && c->epoch != __atomic_load_n(&c->g->epoch, __ATOMIC_ACQUIRE))
		conn_drop(c);	/* connected before an outage: the server is new */
	reused = c->ctx != NULL;
	if (!c->ctx && (rc = conn_open(c, why, cap)))
		return rc;

	argv[argc++] = "EVALSHA";
	argv[argc++] = c->sha;
	snprintf(nums[0], GQ_NUM_MAX, "%d", call->ndims);
	argv[argc++] = nums[0];
	for (int i = 0; i < call->ndims; i++) {
		enum gdim d = call->dim[i];
		snprintf(keys[i], GQ_KEY_MAX, "sluice:{%s}:%s:%" PRIu64, e->name,
			 gdim_name[d], e->d[d].window);
		argv[argc++] = keys[i];
	}
	for (int i = 0; i < call->ndims; i++) {
		const uint64_t v[4] = { call->want[i], call->debt[i], call->limit[i],
					call->ttl_ms[i] };
		for (int k = 0; k < 4; k++) {
			char *s = nums[1 + 4 * i + k];
			snprintf(s, GQ_NUM_MAX, "%" PRIu64, v[k]);
			argv[argc++] = s;
		}
	}

	for (int attempt = 0;; attempt++) {
		count(&c->g->calls);
		r = redisCommandArgv(c->ctx, argc, argv, NULL);
		if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
			freeReplyObject(r);
			argv[0] = "EVAL";
			argv[1] = gq_script;
			count(&c->g->calls);
			r = redisCommandArgv(c->ctx, argc, argv, NULL);
		}
		if (r)
			break;
		bool closed = conn_was_closed(c->ctx);
		snprintf(why, cap, "%s", c->ctx->errstr);
		if (attempt > 0 || !reused || !closed) {
			conn_drop(c);
			return -EIO;
		}
		conn_drop(c);
		if ((rc = conn_open(c, why, cap)))
			return rc;
		argv[0] = "EVALSHA";
		argv[1] = c->sha;
	}
	rc = call_parse(r, call, why, cap);
	freeReplyObject(r);
	return rc;
}

/* ---- one scope ----------------------------------------------------------------- */

/* The scope with the least left of one per-minute limit. */
struct least {
	bool has;
	uint64_t limit, remaining;
};

/* What the header values are made of, gathered scope by scope: requests,
 * then tokens, input tokens, output tokens (per minute). */
struct gheads {
	struct least d[GD_DAY];
};

/* Note one scope: remaining = what the other nodes have not taken (as of
 * the last call) + what this node holds. */
static void heads_note(struct gheads *hd, const struct gscope *e, const struct sluice_limits *lim)
{
	for (int d = GD_RPM; d < GD_DAY; d++) {
		uint64_t limit = limit_of(lim, (enum gdim)d);
		if (!limit)
			continue;
		const struct glease *l = &e->d[d];
		uint64_t remaining = sat_add_u64(sat_sub_u64(limit, l->seen),
						 l->left > 0 ? (uint64_t)l->left : 0);
		if (remaining > limit)
			remaining = limit;
		struct least *p = &hd->d[d];
		if (!p->has || remaining < p->remaining)
			*p = (struct least){ .has = true, .limit = limit, .remaining = remaining };
	}
}

/* Merge one value into h: the least remaining wins. */
static void heads_put(bool *has, uint64_t *limit, uint64_t *remaining, uint64_t *reset,
		      const struct least *p, uint64_t reset_ms)
{
	if (!p->has || (*has && *remaining <= p->remaining))
		return;
	*has = true;
	*limit = p->limit;
	*remaining = p->remaining;
	*reset = reset_ms;
}

/* Like the local module: requests, and for tokens the total per minute
 * when a scope limits it, else input, else output; merged into what h
 * already holds (the local values), the least remaining winning. */
static void heads_merge(const struct gheads *hd, uint64_t now_ms, struct quota_headers *h)
{
	const struct least *t = hd->d[GD_TPM].has ? &hd->d[GD_TPM]
				: hd->d[GD_TPM_IN].has ? &hd->d[GD_TPM_IN] : &hd->d[GD_TPM_OUT];
	uint64_t reset = (quota_minute(now_ms) + 1) * 60000 - now_ms;

	heads_put(&h->has_requests, &h->limit_requests, &h->remaining_requests,
		  &h->reset_requests_ms, &hd->d[GD_RPM], reset);
	heads_put(&h->has_tokens, &h->limit_tokens, &h->remaining_tokens,
		  &h->reset_tokens_ms, t, reset);
}

/* Seconds until the current window of dimension d ends (at least 1). */
static uint64_t retry_after_s(enum gdim d, uint64_t now_ms)
{
	uint64_t end = window_end_ms(d, window_of(d, now_ms));
	uint64_t s = (end - now_ms + 999) / 1000;
	return s ? s : 1;
}

static bool lease_lacks(const struct glease *l, uint64_t need)
{
	return l->left < 0 || (uint64_t)l->left < need;
}

/* A lease moves by grants from Redis and by the usage backends report:
 * saturating, so neither a broken reply nor a hostile count can overflow
 * it (and -left, the debt, stays defined). */
static void lease_add(struct glease *l, uint64_t n)
{
	l->left = sat_add_i64(l->left, sat_i64_from_u64(n));
}

static void lease_sub(struct glease *l, uint64_t n)
{
	l->left = sat_sub_i64(l->left, sat_i64_from_u64(n));
}

/*
 * Build the script call for the dimensions whose lease lacks units: want
 * max(needed - left, lease_size) of those, nothing of the others (their
 * count is read all the same), and push every debt.  Returns the first
 * lacking dimension that Redis cannot grant for sure (the count seen is
 * already too high and counts only grow within a window), or GD_N.
 */
static enum gdim call_plan(const struct quota_global *g, const struct gscope *e,
			   const struct sluice_limits *lim, const uint64_t need[GD_N],
			   uint64_t now_ms, struct gcall *call)
{
	enum gdim sure = GD_N;

	call->ndims = 0;
	for (int d = 0; d < GD_N; d++) {
		uint64_t limit = limit_of(lim, (enum gdim)d);
		if (!limit)
			continue;
		const struct glease *l = &e->d[d];
		int i = call->ndims++;
		call->dim[i] = (enum gdim)d;
		call->limit[i] = limit;
		call->debt[i] = l->left < 0 ? (uint64_t)-l->left : 0;
		call->want[i] = 0;
		call->ttl_ms[i] = window_end_ms((enum gdim)d, l->window) - now_ms +
				  GQ_KEY_GRACE_MS;
		if (!lease_lacks(l, need[d]))
			continue;
		uint64_t missing = need[d] - (l->left > 0 ? (uint64_t)l->left : 0);
		uint64_t size = lease_size(g, limit);
		call->want[i] = missing > size ? missing : size;
		if (sure == GD_N && l->left >= 0 && (l->seen >= limit || limit - l->seen < missing))
			sure = (enum gdim)d;
	}
	return sure;
}

/* Outcome of one scope beyond the verdicts: Redis could not be asked. */
#define GQ_DOWN ((enum quota_verdict)-1)
/* A nowait connection would have had to call Redis or wait for a lock. */
#define GQ_PENDING ((enum quota_verdict)-2)

/*
 * The lease of a scope lacks units: get them from Redis in one call.
 * QUOTA_OK when every dimension now has what the request needs, the
 * verdict of the first one that has not (what Redis granted stays as
 * lease), GQ_DOWN when Redis could not be asked.  Called with e locked.
 */
static enum quota_verdict scope_refill(struct quota_global_conn *c, struct gscope *e,
				       const struct sluice_limits *lim, const uint64_t need[GD_N],
				       uint64_t now_ms, uint64_t *retry_s)
{
	struct quota_global *g = c->g;
	struct gcall call;
	enum gdim sure;
	struct glease saved[GD_N];
	bool reviving;
	char why[192];

	sure = call_plan(g, e, lim, need, now_ms, &call);
	if (sure != GD_N) {
		*retry_s = retry_after_s(sure, now_ms);
		return gdim_verdict[sure];
	}
	if (!redis_may_try(g))
		return GQ_DOWN;
	/* A call while Redis is marked down may be its comeback, which starts
	 * every lease afresh: plan this one from a fresh lease already. */
	reviving = !__atomic_load_n(&g->up, __ATOMIC_ACQUIRE);
	if (reviving) {
		memcpy(saved, e->d, sizeof(saved));
		memset(e->d, 0, sizeof(e->d));
		for (int d = 0; d < GD_N; d++)
			lease_sync(g, e, (enum gdim)d, now_ms);
		call_plan(g, e, lim, need, now_ms, &call);
	}
	if (call_script(c, e, &call, why, sizeof(why))) {
		redis_went_down(g, why);
		if (reviving)
			memcpy(e->d, saved, sizeof(saved));
		return GQ_DOWN;
	}
	/* Came back: this scope's fresh lease and this connection belong to
	 * the new epoch; every other lease restarts on its next use. */
	if (redis_answered(g) || reviving) {
		e->epoch = __atomic_load_n(&g->epoch, __ATOMIC_ACQUIRE);
		c->epoch = e->epoch;
	}
	for (int i = 0; i < call.ndims; i++) {
		struct glease *l = &e->d[call.dim[i]];
		lease_add(l, sat_add_u64(call.debt[i], call.grant[i]));
		l->seen = call.count[i];
	}
	for (int d = 0; d < GD_N; d++) {
		if (limit_of(lim, (enum gdim)d) && lease_lacks(&e->d[d], need[d])) {
			*retry_s = retry_after_s((enum gdim)d, now_ms);
			return gdim_verdict[d];
		}
	}
	return QUOTA_OK;
}

/*
 * Take one request's units from a scope's lease, refilling it from Redis
 * when it lacks some.  QUOTA_OK: taken.  A refusal: nothing taken.
 * GQ_DOWN: Redis could not be asked; with the policy open the units are
 * taken all the same, from a lease that may go below zero (that debt is
 * dropped when Redis comes back, as every lease is).
 */
static enum quota_verdict scope_take(struct quota_global_conn *c, struct gscope *e,
				     const struct sluice_limits *lim, const uint64_t need[GD_N],
				     uint64_t now_ms, struct gheads *hd, uint64_t *retry_s)
{
	struct quota_global *g = c->g;
	enum quota_verdict v = QUOTA_OK;
	bool lacking = false;

	/* A worker never waits: not for a lock another thread holds across
	 * its Redis call, nor for Redis itself.  It asks its Redis thread. */
	if (c->nowait) {
		if (pthread_mutex_trylock(&e->lock))
			return GQ_PENDING;
	} else {
		pthread_mutex_lock(&e->lock);
	}
	for (int d = 0; d < GD_N; d++) {
		uint64_t limit = limit_of(lim, (enum gdim)d);
		if (!limit)
			continue;
		lease_sync(g, e, (enum gdim)d, now_ms);
		if (need[d] > limit)
			v = QUOTA_TOO_LARGE;
		if (lease_lacks(&e->d[d], need[d]))
			lacking = true;
	}
	if (v == QUOTA_OK && lacking && c->nowait) {
		pthread_mutex_unlock(&e->lock);
		return GQ_PENDING;
	}
	if (v == QUOTA_OK && lacking)
		v = scope_refill(c, e, lim, need, now_ms, retry_s);
	if (v == QUOTA_OK || (v == GQ_DOWN && g->fail_open))
		for (int d = 0; d < GD_N; d++)
			if (limit_of(lim, (enum gdim)d))
				lease_sub(&e->d[d], need[d]);
	heads_note(hd, e, lim);
	pthread_mutex_unlock(&e->lock);
	return v;
}

/* Undo scope_take(): the units go back to the leases they came from. */
static void scope_give_back(struct quota_global *g, const struct quota_global_scope *s,
			    const uint64_t need[GD_N], uint64_t now_ms)
{
	struct gscope *e = scope_find(g, s->name, false);
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	for (int d = 0; d < GD_N; d++)
		if (limit_of(s->limits, (enum gdim)d) &&
		    e->d[d].window == window_of((enum gdim)d, now_ms))
			lease_add(&e->d[d], need[d]);
	pthread_mutex_unlock(&e->lock);
}

/* ---- the API ------------------------------------------------------------------------- */

enum quota_verdict quota_global_reserve(struct quota_global_conn *c,
					const struct quota_global_scope *s, size_t n,
					const struct quota_ask *ask, uint64_t now_ms,
					struct quota_hold *hold, struct quota_headers *h)
{
	struct quota_global *g = c->g;
	struct gheads hd = { 0 };
	enum quota_verdict v = QUOTA_OK;
	uint64_t need[GD_N], retry_s = 1;
	bool failed_open = false;
	size_t i;
	/* Capped as the local module caps them (hold must match its hold). */
	const struct quota_ask capped = {
		.input_tokens = min_u64(ask->input_tokens, QUOTA_TOKENS_MAX),
		.output_tokens = min_u64(ask->output_tokens, QUOTA_TOKENS_MAX),
	};

	for (int d = 0; d < GD_N; d++)
		need[d] = need_of((enum gdim)d, capped.input_tokens, capped.output_tokens);
	for (i = 0; i < n; i++) {
		struct gscope *e = NULL;
		if (strlen(s[i].name) <= QUOTA_GLOBAL_NAME_MAX)
			e = scope_find(g, s[i].name, true);
		if (!e) {
			/* a name too long or no memory: an error, under the policy */
			count(&g->errors);
			v = GQ_DOWN;
		} else {
			v = scope_take(c, e, s[i].limits, need, now_ms, &hd, &retry_s);
		}
		if (v == GQ_DOWN && g->fail_open) {
			failed_open = true;
			v = QUOTA_OK;
		}
		if (v != QUOTA_OK)
			break;
	}
	if (v != QUOTA_OK) {
		while (i-- > 0)
			scope_give_back(g, &s[i], need, now_ms);
		if (v == GQ_PENDING)
			return QUOTA_PENDING;
		if (v == GQ_DOWN) {
			count(&g->fail_closed_n);
			v = QUOTA_UNAVAILABLE;
			retry_s = (g->retry_ms + 999) / 1000;
		}
	} else if (failed_open) {
		count(&g->fail_open_n);
	}
	if (hold && v == QUOTA_OK) {
		hold->ask = capped;
		hold->minute = quota_minute(now_ms);
		hold->day = quota_day(now_ms);
		hold->month = quota_month(now_ms);
	}
	/* a fail-open admission leaves h to the local limits */
	if (h && (!failed_open || v != QUOTA_OK)) {
		heads_merge(&hd, now_ms, h);
		if (v != QUOTA_OK)
			h->retry_after_s = retry_s ? retry_s : 1;
	}
	return v;
}

/*
 * Reconcile one scope: tokens used beyond the reservation are taken from
 * the current lease (debt below zero); unused ones go back to the lease
 * they came from while it is still the current one.
 */
static void scope_settle(struct quota_global *g, struct gscope *e,
			 const struct sluice_limits *lim, const struct quota_hold *hold,
			 uint64_t used_in, uint64_t used_out, uint64_t now_ms)
{
	for (int d = GD_TPM; d < GD_N; d++) {
		if (!limit_of(lim, (enum gdim)d))
			continue;
		uint64_t reserved = need_of((enum gdim)d, hold->ask.input_tokens,
					    hold->ask.output_tokens);
		uint64_t used = need_of((enum gdim)d, used_in, used_out);
		struct glease *l = &e->d[d];
		lease_sync(g, e, (enum gdim)d, now_ms);
		if (used > reserved)
			lease_sub(l, used - reserved);
		else if (l->window == hold_window((enum gdim)d, hold))
			lease_add(l, reserved - used);
	}
}

/* Scopes one release settles at most on a nowait connection (the
 * gateway's requests have three). */
#define GQ_RELEASE_MAX 8

int quota_global_release(struct quota_global_conn *c, const struct quota_global_scope *s,
			 size_t n, const struct quota_hold *hold,
			 uint64_t used_in, uint64_t used_out, uint64_t now_ms)
{
	struct gscope *held[GQ_RELEASE_MAX];
	size_t nheld = 0;
	used_in = min_u64(used_in, QUOTA_TOKENS_MAX);
	used_out = min_u64(used_out, QUOTA_TOKENS_MAX);
	if (c->nowait) {
		/* Every lock or none: a scope whose lock a Redis call holds
		 * would make the worker wait for Redis. */
		if (n > GQ_RELEASE_MAX)
			return -EAGAIN;
		for (size_t i = 0; i < n; i++) {
			struct gscope *e = scope_find(c->g, s[i].name, false);
			if (e && pthread_mutex_trylock(&e->lock)) {
				while (nheld)
					pthread_mutex_unlock(&held[--nheld]->lock);
				return -EAGAIN;
			}
			if (e)
				held[nheld++] = e;
		}
		for (size_t i = 0, k = 0; i < n && k < nheld; i++)
			if (held[k] == scope_find(c->g, s[i].name, false))
				scope_settle(c->g, held[k++], s[i].limits, hold, used_in, used_out,
					     now_ms);
		while (nheld)
			pthread_mutex_unlock(&held[--nheld]->lock);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct gscope *e = scope_find(c->g, s[i].name, false);
		if (!e)
			continue;
		pthread_mutex_lock(&e->lock);
		scope_settle(c->g, e, s[i].limits, hold, used_in, used_out, now_ms);
		pthread_mutex_unlock(&e->lock);
	}
	return 0;
}

void quota_global_peek(struct quota_global *g, const struct quota_global_scope *s, size_t n,
		       uint64_t now_ms, struct quota_headers *h)
{
	struct gheads hd = { 0 };

	for (size_t i = 0; i < n; i++) {
		struct gscope *e = scope_find(g, s[i].name, false);
		if (!e) {
			/* nothing seen yet: the whole limit */
			struct gscope none = { 0 };
			heads_note(&hd, &none, s[i].limits);
			continue;
		}
		pthread_mutex_lock(&e->lock);
		for (int d = 0; d < GD_N; d++)
			if (limit_of(s[i].limits, (enum gdim)d))
				lease_sync(g, e, (enum gdim)d, now_ms);
		heads_note(&hd, e, s[i].limits);
		pthread_mutex_unlock(&e->lock);
	}
	heads_merge(&hd, now_ms, h);
}

void quota_global_get_stats(const struct quota_global *g, struct quota_global_stats *out)
{
	out->calls = __atomic_load_n(&g->calls, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&g->errors, __ATOMIC_RELAXED);
	out->fail_open = __atomic_load_n(&g->fail_open_n, __ATOMIC_RELAXED);
	out->fail_closed = __atomic_load_n(&g->fail_closed_n, __ATOMIC_RELAXED);
	out->up = __atomic_load_n(&g->up, __ATOMIC_RELAXED);
}

/* ---- set-up ----------------------------------------------------------------------------- */

static int url_error(char *err, size_t errcap, const char *why)
{
	if (err && errcap)
		snprintf(err, errcap, "redis url: %s", why);
	return -EINVAL;
}

/* Copy [p, p + len) into dst as a C string, or false when it does not fit. */
static bool copy_part(char *dst, size_t cap, const char *p, size_t len)
{
	if (len >= cap)
		return false;
	memcpy(dst, p, len);
	dst[len] = '\0';
	return true;
}

/* Decimal in [lo, hi], the whole of [p, p + len). */
static bool parse_num(const char *p, size_t len, long lo, long hi, int *out)
{
	long v = 0;

	if (len == 0 || len > 9)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	if (v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

/* [user]:password before the last '@' of the authority. */
static int parse_userinfo(struct quota_global *g, const char *p, size_t len,
			  char *err, size_t errcap)
{
	const char *colon = memchr(p, ':', len);

	if (!colon)
		return url_error(err, errcap, "expected [user]:password@ before the host");
	if (!copy_part(g->user, sizeof(g->user), p, (size_t)(colon - p)) ||
	    !copy_part(g->password, sizeof(g->password), colon + 1, len - (size_t)(colon - p) - 1))
		return url_error(err, errcap, "user or password too long");
	if (!g->password[0])
		return url_error(err, errcap, "empty password");
	return 0;
}

/* host[:port] or [v6][:port], then optionally /db. */
static int parse_hostport(struct quota_global *g, const char *p, char *err, size_t errcap)
{
	const char *host = p, *end;
	size_t hlen;

	if (*p == '[') {
		end = strchr(p, ']');
		if (!end)
			return url_error(err, errcap, "unclosed [ in the host");
		host = p + 1;
		hlen = (size_t)(end - host);
		p = end + 1;
	} else {
		hlen = strcspn(p, ":/");
		p += hlen;
	}
	if (hlen == 0)
		return url_error(err, errcap, "no host");
	if (!copy_part(g->host, sizeof(g->host), host, hlen))
		return url_error(err, errcap, "host too long");
	g->port = 6379;
	if (*p == ':') {
		size_t plen = strcspn(p + 1, "/");
		if (!parse_num(p + 1, plen, 1, 65535, &g->port))
			return url_error(err, errcap, "bad port");
		p += 1 + plen;
	}
	g->db = 0;
	if (*p == '/') {
		size_t dlen = strlen(p + 1);
		if (dlen && !parse_num(p + 1, dlen, 0, 1000000, &g->db))
			return url_error(err, errcap, "bad database number");
	} else if (*p) {
		return url_error(err, errcap, "junk after the host");
	}
	bool v6 = strchr(g->host, ':') != NULL;
	snprintf(g->where, sizeof(g->where), "%s%s%s:%d", v6 ? "[" : "", g->host, v6 ? "]" : "",
		 g->port);
	return 0;
}

static int parse_url(struct quota_global *g, const char *url, char *err, size_t errcap)
{
	int rc;

	if (!url || !*url)
		return url_error(err, errcap, "empty");
	if (strncmp(url, "unix://", 7) == 0) {
		const char *path = url + 7;
		if (*path != '/')
			return url_error(err, errcap, "unix:// needs an absolute path");
		if (!copy_part(g->host, sizeof(g->host), path, strlen(path)))
			return url_error(err, errcap, "socket path too long");
		g->unix_socket = true;
		snprintf(g->where, sizeof(g->where), "unix:%s", g->host);
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return url_error(err, errcap, "must start with redis:// or unix://");
	url += 8;
	const char *at = strrchr(url, '@');
	if (at) {
		if ((rc = parse_userinfo(g, url, (size_t)(at - url), err, errcap)))
			return rc;
		url = at + 1;
	}
	return parse_hostport(g, url, err, errcap);
}

int quota_global_new(const struct quota_global_cfg *cfg, struct quota_global **out,
		     char *err, size_t errcap)
{
	struct quota_global *g = calloc(1, sizeof(*g));
	int rc;

	*out = NULL;
	if (!g) {
		if (err && errcap)
			snprintf(err, errcap, "out of memory");
		return -ENOMEM;
	}
	if ((rc = parse_url(g, cfg->url, err, errcap))) {
		free(g);
		return rc;
	}
	g->fail_open = cfg->fail_open;
	g->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 50;
	g->retry_ms = cfg->retry_ms ? cfg->retry_ms : 1000;
	g->lease_percent = cfg->lease_percent ? cfg->lease_percent : 1;
	if (g->lease_percent > 100)
		g->lease_percent = 100;
	g->up = true;		/* until a call says otherwise */
	*out = g;
	return 0;
}

const char *quota_global_where(const struct quota_global *g)
{
	return g->where;
}

void quota_global_free(struct quota_global *g)
{
	if (!g)
		return;
	for (size_t b = 0; b < GQ_BUCKETS; b++) {
		struct gscope *e = g->buckets[b];
		while (e) {
			struct gscope *next = e->next;
			scope_free(e);
			e = next;
		}
	}
	free(g);
}

struct quota_global_conn *quota_global_conn_new(struct quota_global *g)
{
	struct quota_global_conn *c = calloc(1, sizeof(*c));
	if (c)
		c->g = g;
	return c;
}

void quota_global_conn_set_nowait(struct quota_global_conn *c, bool nowait)
{
	c->nowait = nowait;
}

void quota_global_conn_free(struct quota_global_conn *c)
{
	if (!c)
		return;
	conn_drop(c);
	free(c);
}
