/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Global quotas against a real redis-server (tests/unit/redis_fixture.h):
 * two struct quota_global in one process play two sluiced nodes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/log.h"
#include "quota/global.h"
#include "redis_fixture.h"

/* 2030-01-15 12:00:05 UTC: windows are driven from here. */
#define T0 1894708805000ull
#define MINUTE(t) ((t) / 60000)

static struct redis_fixture rf;

struct node {
	struct quota_global *g;
	struct quota_global_conn *c;
};

static void node_open_url(struct node *n, const char *url, bool fail_open,
			  unsigned retry_ms, unsigned lease_percent)
{
	struct quota_global_cfg cfg = {
		.url = url, .fail_open = fail_open, .timeout_ms = 200,
		.retry_ms = retry_ms, .lease_percent = lease_percent,
	};
	char err[128] = "";
	int rc = quota_global_new(&cfg, &n->g, err, sizeof(err));

	if (rc)
		print_error("quota_global_new: %s\n", err);
	assert_int_equal(rc, 0);
	n->c = quota_global_conn_new(n->g);
	assert_non_null(n->c);
}

static void node_open(struct node *n, bool fail_open, unsigned retry_ms)
{
	node_open_url(n, rf.url, fail_open, retry_ms, 1);
}

static void node_close(struct node *n)
{
	quota_global_conn_free(n->c);
	quota_global_free(n->g);
	n->c = NULL;
	n->g = NULL;
}

static struct quota_global_stats node_stats(const struct node *n)
{
	struct quota_global_stats st;
	quota_global_get_stats(n->g, &st);
	return st;
}

static enum quota_verdict reserve(struct node *n, const struct quota_global_scope *s, size_t ns,
				  uint64_t in, uint64_t out, uint64_t now, struct quota_hold *hold,
				  struct quota_headers *h)
{
	struct quota_ask ask = { .input_tokens = in, .output_tokens = out };
	return quota_global_reserve(n->c, s, ns, &ask, now, hold, h);
}

/* A key's value read straight from Redis (db 0 unless given), 0 when absent. */
static uint64_t redis_value_db(int db, const char *scope, const char *dim, uint64_t window)
{
	redisContext *c = redis_fixture_connect(&rf);
	redisReply *r;
	uint64_t v = 0;

	assert_non_null(c);
	if (db) {
		r = redisCommand(c, "SELECT %d", db);
		assert_non_null(r);
		freeReplyObject(r);
	}
	r = redisCommand(c, "GET sluice:{%s}:%s:%" PRIu64, scope, dim, window);
	assert_non_null(r);
	if (r->type == REDIS_REPLY_STRING)
		v = strtoull(r->str, NULL, 10);
	else
		assert_int_equal(r->type, REDIS_REPLY_NIL);
	freeReplyObject(r);
	redisFree(c);
	return v;
}

static uint64_t redis_value(const char *scope, const char *dim, uint64_t window)
{
	return redis_value_db(0, scope, dim, window);
}

static long long redis_pttl(const char *scope, const char *dim, uint64_t window)
{
	redisContext *c = redis_fixture_connect(&rf);
	assert_non_null(c);
	redisReply *r = redisCommand(c, "PTTL sluice:{%s}:%s:%" PRIu64, scope, dim, window);
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	long long v = r->integer;
	freeReplyObject(r);
	redisFree(c);
	return v;
}

static void redis_do(const char *cmd)
{
	redisContext *c = redis_fixture_connect(&rf);
	assert_non_null(c);
	redisReply *r = redisCommand(c, cmd);
	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
	redisFree(c);
}

static uint64_t now_real_ms(void)
{
	return clock_mono_ns() / 1000000;
}

/* ---- fixtures ----------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);	/* hiredis writes with write(2) */
	log_init("test_quota_global", LOG_WARN);
	return redis_fixture_start(&rf) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	redis_fixture_cleanup(&rf);
	return 0;
}

/* Every test starts with a running, empty server (a failed test may have
 * left it killed). */
static int test_setup(void **state)
{
	(void)state;
	if (!redis_fixture_start(&rf))
		return -1;
	redis_do("FLUSHALL");
	return 0;
}

/* ---- tests --------------------------------------------------------------- */

/* rpm 10 over two nodes: leases of one unit, exactly 10 admitted. */
static void test_small_limit_exact(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 10 };
	struct quota_global_scope s = { "t:exact", &lim };
	struct node a, b;
	int admitted = 0;

	node_open(&a, false, 1000);
	node_open(&b, false, 1000);
	for (int i = 0; i < 10; i++) {
		struct quota_headers h = { 0 };
		struct node *n = i % 3 ? &a : &b;
		assert_int_equal(reserve(n, &s, 1, 0, 0, T0 + (uint64_t)i, NULL, &h), QUOTA_OK);
		assert_true(h.has_requests);
		assert_int_equal(h.limit_requests, 10);
		admitted++;
	}
	for (int i = 0; i < 4; i++) {
		struct quota_headers h = { 0 };
		struct node *n = i % 2 ? &a : &b;
		assert_int_equal(reserve(n, &s, 1, 0, 0, T0 + 100, NULL, &h), QUOTA_REQUESTS);
		assert_true(h.has_requests);
		assert_int_equal(h.remaining_requests, 0);
		assert_int_equal(h.limit_requests, 10);
		assert_in_range(h.retry_after_s, 1, 60);
		assert_in_range(h.reset_requests_ms, 1, 60000);
	}
	assert_int_equal(admitted, 10);
	assert_int_equal(redis_value("t:exact", "rpm", MINUTE(T0)), 10);
	assert_true(node_stats(&a).up);
	assert_int_equal(node_stats(&a).errors, 0);
	node_close(&a);
	node_close(&b);
}

/* The sum of token reservations over two nodes never passes the limit. */
static void test_tokens_never_exceeded(void **state)
{
	(void)state;
	struct sluice_limits lim = { .tokens_per_minute = 10000 };
	struct quota_global_scope s = { "k:0123456789ab", &lim };
	struct node a, b;
	uint64_t reserved = 0;
	enum quota_verdict v;

	node_open(&a, false, 1000);
	node_open(&b, false, 1000);
	/* 700-token asks from both nodes: 14 fit (9800), the 15th never */
	for (int i = 0; i < 40; i++) {
		v = reserve(i % 2 ? &a : &b, &s, 1, 400, 300, T0, NULL, NULL);
		if (v == QUOTA_OK)
			reserved += 700;
		else
			assert_int_equal(v, QUOTA_TOKENS);
	}
	assert_true(reserved <= 10000);
	assert_int_equal(reserved, 9800);
	assert_true(redis_value("k:0123456789ab", "tpm", MINUTE(T0)) <= 10000);
	/* smaller asks still fit in what is left, and no more */
	for (int i = 0; i < 10; i++)
		if (reserve(i % 2 ? &a : &b, &s, 1, 50, 50, T0, NULL, NULL) == QUOTA_OK)
			reserved += 100;
	assert_int_equal(reserved, 10000);
	assert_int_equal(redis_value("k:0123456789ab", "tpm", MINUTE(T0)), 10000);
	node_close(&a);
	node_close(&b);
}

/* Tokens used beyond the reservation become debt that the next call adds
 * to Redis, even past the limit; unused ones return to the local lease. */
static void test_reconcile_debt_and_give_back(void **state)
{
	(void)state;
	struct sluice_limits lim = { .tokens_per_minute = 10000, .tokens_per_day = 1000000 };
	struct quota_global_scope s = { "t:debt", &lim };
	struct quota_hold hold;
	struct node a;

	node_open(&a, false, 1000);
	assert_int_equal(reserve(&a, &s, 1, 300, 200, T0, &hold, NULL), QUOTA_OK);
	assert_int_equal(hold.minute, MINUTE(T0));
	assert_int_equal(redis_value("t:debt", "tpm", MINUTE(T0)), 500);

	/* unused: back to the lease, so the same ask needs no Redis call */
	quota_global_release(a.c, &s, 1, &hold, 0, 0, T0 + 1);
	uint64_t calls = node_stats(&a).calls;
	assert_int_equal(reserve(&a, &s, 1, 300, 200, T0 + 2, &hold, NULL), QUOTA_OK);
	assert_int_equal(node_stats(&a).calls, calls);
	assert_int_equal(redis_value("t:debt", "tpm", MINUTE(T0)), 500);

	/* used 2500 of 500 reserved: 2000 debt, pushed by the next call */
	quota_global_release(a.c, &s, 1, &hold, 1000, 1500, T0 + 3);
	assert_int_equal(redis_value("t:debt", "tpm", MINUTE(T0)), 500);
	assert_int_equal(reserve(&a, &s, 1, 50, 50, T0 + 4, NULL, NULL), QUOTA_OK);
	assert_int_equal(redis_value("t:debt", "tpm", MINUTE(T0)), 2500 + 100);
	/* the day lease (10000) had room: nothing more asked of Redis there */
	assert_int_equal(redis_value("t:debt", "day", T0 / 86400000), 10000);

	/* fill the minute, then overspend: the debt goes in past the limit */
	for (int i = 0; i < 200; i++)
		if (reserve(&a, &s, 1, 50, 50, T0 + 5, &hold, NULL) != QUOTA_OK)
			break;
	assert_int_equal(redis_value("t:debt", "tpm", MINUTE(T0)), 10000);
	quota_global_release(a.c, &s, 1, &hold, 3000, 0, T0 + 6);
	assert_int_equal(reserve(&a, &s, 1, 50, 50, T0 + 7, NULL, NULL), QUOTA_TOKENS);
	assert_int_equal(redis_value("t:debt", "tpm", MINUTE(T0)), 10000 + 2900);
	node_close(&a);
}

/* A nowait connection (a worker's) never calls Redis: what the lease
 * lacks is QUOTA_PENDING with nothing taken; once a blocking connection
 * of the same process has refilled the lease, the nowait one is answered
 * from it. */
static void test_nowait_pending_then_from_lease(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 1000 };	/* leases of 10 */
	struct sluice_limits lim2 = { .requests_per_minute = 1000 };
	struct quota_global_scope s[2] = { { "t:nowait", &lim }, { "k:nowait", &lim2 } };
	struct quota_hold hold;
	struct node a;

	node_open(&a, false, 1000);
	struct quota_global_conn *w = quota_global_conn_new(a.g);
	assert_non_null(w);
	quota_global_conn_set_nowait(w, true);
	struct quota_ask ask = { 1, 1 };
	assert_int_equal(quota_global_reserve(w, s, 2, &ask, T0, &hold, NULL), QUOTA_PENDING);
	assert_int_equal(node_stats(&a).calls, 0);
	assert_int_equal(redis_value("t:nowait", "rpm", MINUTE(T0)), 0);
	/* The blocking connection asks Redis: a lease of 10 per scope. */
	assert_int_equal(reserve(&a, s, 2, 1, 1, T0, &hold, NULL), QUOTA_OK);
	uint64_t calls = node_stats(&a).calls;
	assert_int_equal(redis_value("t:nowait", "rpm", MINUTE(T0)), 10);
	for (int i = 0; i < 9; i++)
		assert_int_equal(quota_global_reserve(w, s, 2, &ask, T0, &hold, NULL), QUOTA_OK);
	assert_int_equal(node_stats(&a).calls, calls);
	/* The lease is spent: pending again, and the first scope's unit given back. */
	assert_int_equal(quota_global_reserve(w, s, 2, &ask, T0, &hold, NULL), QUOTA_PENDING);
	assert_int_equal(node_stats(&a).calls, calls);
	/* Release on the nowait connection settles at once (no lock busy). */
	assert_int_equal(quota_global_release(w, s, 2, &hold, 1, 1, T0), 0);
	quota_global_conn_free(w);
	node_close(&a);
}

/* 10000 requests under rpm 1,000,000 make at most 100 Redis calls. */
static void test_large_limit_few_calls(void **state)
{
	(void)state;
	struct sluice_limits big = { .requests_per_minute = 1000000 };
	struct sluice_limits mid = { .requests_per_minute = 10000000, .tokens_per_minute = 100000000 };
	struct quota_global_scope s1 = { "t:big", &big }, s2 = { "t:mid", &mid };
	struct node a;

	node_open(&a, false, 1000);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(reserve(&a, &s1, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	uint64_t calls = node_stats(&a).calls;
	print_message("rpm 1e6: %" PRIu64 " Redis calls for 10000 requests\n", calls);
	assert_true(calls <= 100);
	assert_int_equal(redis_value("t:big", "rpm", MINUTE(T0)), 10000);

	/* tokens drive it: 1000-token asks, tpm lease 1e6 = 1000 requests */
	for (int i = 0; i < 10000; i++)
		assert_int_equal(reserve(&a, &s2, 1, 600, 400, T0, NULL, NULL), QUOTA_OK);
	calls = node_stats(&a).calls - calls;
	print_message("tpm 1e8, 1000-token asks: %" PRIu64 " Redis calls for 10000 requests\n",
		      calls);
	assert_true(calls <= 11);

	/* spending a whole limit costs 100 calls at 1 %: leases of 100 here */
	struct sluice_limits whole = { .requests_per_minute = 10000 };
	struct quota_global_scope s3 = { "t:whole", &whole };
	calls = node_stats(&a).calls;
	for (int i = 0; i < 10000; i++)
		assert_int_equal(reserve(&a, &s3, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&a, &s3, 1, 0, 0, T0, NULL, NULL), QUOTA_REQUESTS);
	calls = node_stats(&a).calls - calls;
	print_message("rpm 1e4 spent whole: %" PRIu64 " Redis calls for 10001 requests\n", calls);
	assert_int_equal(calls, 100);
	node_close(&a);
}

/* A new minute is a new key; the old one stays as it was and expires. */
static void test_window_roll(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 3 };
	struct quota_global_scope s = { "m:acme:gpt-4o-mini", &lim };
	struct quota_headers h = { 0 };
	struct node a;

	node_open(&a, false, 1000);
	for (int i = 0; i < 3; i++)
		assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0 + 50000, NULL, &h), QUOTA_REQUESTS);
	assert_int_equal(h.retry_after_s, 5);	/* the minute ends at T0 + 55 s */
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0 + 60000, NULL, NULL), QUOTA_OK);
	assert_int_equal(redis_value("m:acme:gpt-4o-mini", "rpm", MINUTE(T0)), 3);
	assert_int_equal(redis_value("m:acme:gpt-4o-mini", "rpm", MINUTE(T0) + 1), 1);
	long long ttl = redis_pttl("m:acme:gpt-4o-mini", "rpm", MINUTE(T0) + 1);
	assert_in_range(ttl, 60000, 115000 + 1000);
	node_close(&a);
}

/* tenant then key: the key refuses, the tenant gets its unit back. */
static void test_multi_scope_all_or_nothing(void **state)
{
	(void)state;
	struct sluice_limits tl = { .requests_per_minute = 100 };
	struct sluice_limits kl = { .requests_per_minute = 2 };
	struct quota_global_scope s[2] = { { "t:multi", &tl }, { "k:multi", &kl } };
	struct quota_headers h = { 0 };
	struct node a;

	node_open(&a, false, 1000);
	assert_int_equal(reserve(&a, s, 2, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&a, s, 2, 0, 0, T0, NULL, &h), QUOTA_OK);
	assert_int_equal(h.remaining_requests, 0);	/* the key's, the least */
	assert_int_equal(h.limit_requests, 2);
	assert_int_equal(reserve(&a, s, 2, 0, 0, T0, NULL, NULL), QUOTA_REQUESTS);
	/* the tenant took a third unit from Redis before the key refused */
	assert_int_equal(redis_value("t:multi", "rpm", MINUTE(T0)), 3);
	assert_int_equal(redis_value("k:multi", "rpm", MINUTE(T0)), 2);
	/* ... and has it back in its lease: the tenant alone needs no call */
	uint64_t calls = node_stats(&a).calls;
	memset(&h, 0, sizeof(h));
	assert_int_equal(reserve(&a, s, 1, 0, 0, T0, NULL, &h), QUOTA_OK);
	assert_int_equal(node_stats(&a).calls, calls);
	assert_int_equal(h.remaining_requests, 97);
	assert_int_equal(redis_value("t:multi", "rpm", MINUTE(T0)), 3);
	node_close(&a);
}

/* An ask larger than a limit never fits and costs no call. */
static void test_too_large(void **state)
{
	(void)state;
	struct sluice_limits lim = { .input_tokens_per_minute = 1000 };
	struct quota_global_scope s = { "t:large", &lim };
	struct node a;

	node_open(&a, false, 1000);
	assert_int_equal(reserve(&a, &s, 1, 1001, 5000, T0, NULL, NULL), QUOTA_TOO_LARGE);
	assert_int_equal(reserve(&a, &s, 1, 1000, 5000, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&a, &s, 1, 1, 0, T0, NULL, NULL), QUOTA_INPUT_TOKENS);
	node_close(&a);
}

/*
 * Numbers a client or a backend made up: an ask of 2^64 - 1 output tokens
 * is too large (not 0 after in + out wraps), and usage of INT64_MAX tokens,
 * reported over and over, is debt that saturates, reaches Redis capped,
 * and refuses what follows, with Redis still up.
 */
static void test_hostile_numbers(void **state)
{
	(void)state;
	struct sluice_limits lim = { .tokens_per_minute = 2000, .tokens_per_day = 1000000 };
	struct quota_global_scope s = { "t:huge", &lim };
	struct quota_hold hold;
	struct node a;

	node_open(&a, false, 1000);
	assert_int_equal(reserve(&a, &s, 1, 1, UINT64_MAX, T0, NULL, NULL), QUOTA_TOO_LARGE);
	assert_int_equal(reserve(&a, &s, 1, UINT64_MAX, UINT64_MAX, T0, NULL, NULL),
			 QUOTA_TOO_LARGE);
	assert_int_equal(reserve(&a, &s, 1, 100, 100, T0, &hold, NULL), QUOTA_OK);
	assert_int_equal(redis_value("t:huge", "tpm", MINUTE(T0)), 200);

	/* One release takes at most 2^49 - 200; 20000 of them would take
	 * 2^63.3: the lease's debt stops at INT64_MAX. */
	for (int i = 0; i < 20000; i++)
		quota_global_release(a.c, &s, 1, &hold, INT64_MAX, INT64_MAX, T0 + 1);
	assert_int_equal(reserve(&a, &s, 1, 1, 1, T0 + 2, NULL, NULL), QUOTA_TOKENS);
	assert_int_equal(redis_value("t:huge", "tpm", MINUTE(T0)), 1ull << 52);
	assert_int_equal(redis_value("t:huge", "day", T0 / 86400000), 1ull << 52);
	struct quota_global_stats st = node_stats(&a);
	assert_true(st.up);
	assert_int_equal(st.errors, 0);
	/* the debt was paid: the next minute starts clean, the day is spent */
	assert_int_equal(reserve(&a, &s, 1, 1, 1, T0 + 60000, NULL, NULL), QUOTA_DAY);
	lim.tokens_per_day = 0;
	assert_int_equal(reserve(&a, &s, 1, 1, 1, T0 + 60000, NULL, NULL), QUOTA_OK);
	assert_int_equal(redis_value("t:huge", "tpm", MINUTE(T0) + 1), 20);
	node_close(&a);
}

/* Redis killed, policy open: admitted, counted, tried once per retry_ms;
 * back when it is back. */
static void test_down_fail_open(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 1000 };	/* lease 10 */
	struct quota_global_scope s = { "t:open", &lim };
	struct node a;

	node_open(&a, true, 300);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	redis_fixture_kill(&rf);

	uint64_t start = now_real_ms();
	for (int i = 0; i < 500; i++)
		assert_int_equal(reserve(&a, &s, 1, 0, 0, T0 + 1, NULL, NULL), QUOTA_OK);
	uint64_t took = now_real_ms() - start;
	struct quota_global_stats st = node_stats(&a);
	print_message("500 requests with redis down: %" PRIu64 " ms, %" PRIu64 " errors\n",
		      took, st.errors);
	assert_false(st.up);
	assert_int_equal(st.errors, 1);			/* one try, not one per request */
	assert_int_equal(st.fail_open, 500 - 9);	/* 9 from the lease held */
	assert_int_equal(st.fail_closed, 0);
	assert_true(took < 250);

	/* after retry_ms one request tries again (and fails again) */
	redis_fixture_sleep_ms(350);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0 + 2, NULL, NULL), QUOTA_OK);
	assert_int_equal(node_stats(&a).errors, 2);

	/* back: counted in Redis again, with a fresh lease */
	assert_true(redis_fixture_start(&rf));
	redis_fixture_sleep_ms(350);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0 + 3, NULL, NULL), QUOTA_OK);
	st = node_stats(&a);
	assert_true(st.up);
	assert_int_equal(st.fail_open, 500 - 9 + 1);
	assert_int_equal(redis_value("t:open", "rpm", MINUTE(T0)), 10);
	for (int i = 0; i < 15; i++)
		assert_int_equal(reserve(&a, &s, 1, 0, 0, T0 + 4, NULL, NULL), QUOTA_OK);
	assert_int_equal(redis_value("t:open", "rpm", MINUTE(T0)), 20);
	assert_int_equal(node_stats(&a).fail_open, 500 - 9 + 1);
	node_close(&a);
}

/* Redis killed, policy closed: the lease held is spent, then
 * QUOTA_UNAVAILABLE without a try per request; back when it is back. */
static void test_down_fail_closed(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 1000 };	/* lease 10 */
	struct quota_global_scope s = { "t:closed", &lim };
	struct quota_headers h = { 0 };
	struct node a;

	node_open(&a, false, 300);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	redis_fixture_kill(&rf);
	for (int i = 0; i < 9; i++)
		assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);

	uint64_t start = now_real_ms();
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, &h), QUOTA_UNAVAILABLE);
	assert_int_equal(h.retry_after_s, 1);
	for (int i = 0; i < 300; i++)
		assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_UNAVAILABLE);
	uint64_t took = now_real_ms() - start;
	struct quota_global_stats st = node_stats(&a);
	assert_false(st.up);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.fail_closed, 301);
	assert_int_equal(st.fail_open, 0);
	assert_true(took < 250);

	assert_true(redis_fixture_start(&rf));
	redis_fixture_sleep_ms(350);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_true(node_stats(&a).up);
	assert_int_equal(redis_value("t:closed", "rpm", MINUTE(T0)), 10);
	node_close(&a);
}

/* A restart between calls (the connection is stale) and a flushed script
 * cache are absorbed without an outage. */
static void test_restart_and_noscript(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 5 };
	struct quota_global_scope s = { "t:restart", &lim };
	struct node a;

	node_open(&a, false, 1000);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	redis_fixture_stop(&rf);
	assert_true(redis_fixture_start(&rf));
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_true(node_stats(&a).up);
	assert_int_equal(node_stats(&a).errors, 0);
	assert_int_equal(redis_value("t:restart", "rpm", MINUTE(T0)), 1);

	redis_do("SCRIPT FLUSH");
	uint64_t calls = node_stats(&a).calls;
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(node_stats(&a).calls, calls + 2);	/* NOSCRIPT, then EVAL */
	assert_int_equal(redis_value("t:restart", "rpm", MINUTE(T0)), 2);
	assert_int_equal(node_stats(&a).errors, 0);
	node_close(&a);
}

/* URLs: errors are values with a reason; AUTH and SELECT are used. */
static void test_urls(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "http://127.0.0.1:6379", "redis://", "redis://:6379", "redis://host:0",
		"redis://host:65536", "redis://host:12x", "redis://host/db", "redis://[::1",
		"redis://pass@host", "redis://user:@host", "unix://relative.sock",
	};
	static const char *const good[] = {
		"redis://127.0.0.1:6379", "redis://localhost", "redis://:secret@10.0.0.1:6380/2",
		"redis://user:secret@cache/0", "redis://[::1]:7000", "unix:///run/redis.sock",
	};
	struct quota_global_cfg cfg = { 0 };
	struct quota_global *g;
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.url = bad[i];
		err[0] = '\0';
		g = (struct quota_global *)1;
		assert_int_equal(quota_global_new(&cfg, &g, err, sizeof(err)), -EINVAL);
		assert_null(g);
		if (strncmp(err, "redis url: ", 11) != 0)
			print_error("%s: %s\n", bad[i], err);
		assert_int_equal(strncmp(err, "redis url: ", 11), 0);
	}
	static const char *const where[] = {
		"127.0.0.1:6379", "localhost:6379", "10.0.0.1:6380", "cache:6379", "[::1]:7000",
		"unix:/run/redis.sock",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cfg.url = good[i];
		assert_int_equal(quota_global_new(&cfg, &g, err, sizeof(err)), 0);
		assert_string_equal(quota_global_where(g), where[i]);
		quota_global_free(g);
	}
}

/* Names as long as "m:<tenant>:<model>" gets are keys; longer ones are an
 * error under the policy, which is not an outage. */
static void test_long_names(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 100 };
	char name[QUOTA_GLOBAL_NAME_MAX + 2];
	struct quota_global_scope s = { name, &lim };
	struct node a;

	memset(name, 'x', sizeof(name));
	name[0] = 'm';
	name[1] = ':';
	name[QUOTA_GLOBAL_NAME_MAX] = '\0';
	node_open(&a, false, 1000);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(redis_value(name, "rpm", MINUTE(T0)), 1);
	name[QUOTA_GLOBAL_NAME_MAX] = 'x';
	name[QUOTA_GLOBAL_NAME_MAX + 1] = '\0';
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_UNAVAILABLE);
	assert_int_equal(node_stats(&a).errors, 1);
	assert_true(node_stats(&a).up);
	node_close(&a);
}

/* A database number, a unix socket and a refused AUTH, against the server. */
static void test_select_unix_auth(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 100 };
	struct quota_global_scope s = { "t:where", &lim };
	char url[160];
	struct node a;

	snprintf(url, sizeof(url), "%s/3", rf.url);
	node_open_url(&a, url, false, 1000, 1);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(redis_value_db(3, "t:where", "rpm", MINUTE(T0)), 1);
	assert_int_equal(redis_value("t:where", "rpm", MINUTE(T0)), 0);
	node_close(&a);

	snprintf(url, sizeof(url), "unix://%s", rf.sock);
	node_open_url(&a, url, false, 1000, 1);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(redis_value("t:where", "rpm", MINUTE(T0)), 1);
	node_close(&a);

	/* the server has no password: AUTH fails, which is an outage */
	snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", rf.port);
	node_open_url(&a, url, false, 1000, 1);
	assert_int_equal(reserve(&a, &s, 1, 0, 0, T0, NULL, NULL), QUOTA_UNAVAILABLE);
	assert_false(node_stats(&a).up);
	assert_int_equal(node_stats(&a).errors, 1);
	node_close(&a);
}

#define THREADS_PER_NODE 4
#define HAMMER_TRIES 4000		/* per thread: 32000 in all */

struct hammer {
	struct quota_global *g;
	const struct quota_global_scope *s;
	int admitted;
};

static void *hammer_run(void *arg)
{
	struct hammer *hm = arg;
	struct quota_global_conn *c = quota_global_conn_new(hm->g);
	struct quota_ask ask = { 0 };

	if (!c)
		return NULL;
	for (int i = 0; i < HAMMER_TRIES; i++)
		if (quota_global_reserve(c, hm->s, 1, &ask, T0, NULL, NULL) == QUOTA_OK)
			hm->admitted++;
	quota_global_conn_free(c);
	return NULL;
}

/* 4 threads on each of 2 nodes against one limit admit exactly the limit. */
static void hammer(const char *scope, uint64_t limit)
{
	struct sluice_limits lim = { .requests_per_minute = limit };
	struct quota_global_scope s = { scope, &lim };
	struct node nodes[2];
	struct hammer hm[2][THREADS_PER_NODE];
	pthread_t th[2][THREADS_PER_NODE];
	uint64_t total = 0;

	for (int n = 0; n < 2; n++) {
		node_open(&nodes[n], false, 1000);
		for (int t = 0; t < THREADS_PER_NODE; t++) {
			hm[n][t] = (struct hammer){ .g = nodes[n].g, .s = &s };
			assert_int_equal(pthread_create(&th[n][t], NULL, hammer_run, &hm[n][t]), 0);
		}
	}
	for (int n = 0; n < 2; n++) {
		for (int t = 0; t < THREADS_PER_NODE; t++) {
			pthread_join(th[n][t], NULL);
			total += (uint64_t)hm[n][t].admitted;
		}
	}
	print_message("threads, limit %" PRIu64 ": %" PRIu64 " admitted, %" PRIu64 " + %" PRIu64
		      " Redis calls\n", limit, total, node_stats(&nodes[0]).calls,
		      node_stats(&nodes[1]).calls);
	assert_int_equal(total, limit);
	assert_int_equal(redis_value(scope, "rpm", MINUTE(T0)), limit);
	assert_int_equal(node_stats(&nodes[0]).errors + node_stats(&nodes[1]).errors, 0);
	for (int n = 0; n < 2; n++)
		node_close(&nodes[n]);
}

/* Leases of 10: mostly Redis; leases of 200: mostly the local lease. */
static void test_threads_exact(void **state)
{
	(void)state;
	hammer("t:hammer-small", 1000);
	hammer("t:hammer-large", 20000);
}

/* Header values from the leases, without taking anything. */
static void test_peek(void **state)
{
	(void)state;
	struct sluice_limits lim = { .requests_per_minute = 50, .tokens_per_minute = 5000 };
	struct quota_global_scope s = { "t:peek", &lim };
	struct quota_headers h = { 0 };
	struct node a, b;

	node_open(&a, false, 1000);
	node_open(&b, false, 1000);
	quota_global_peek(a.g, &s, 1, T0, &h);
	assert_true(h.has_requests && h.has_tokens);
	assert_int_equal(h.remaining_requests, 50);
	assert_int_equal(h.remaining_tokens, 5000);
	assert_int_equal(h.reset_requests_ms, 55000);
	/* b takes 1000 tokens (lease 1000, as the ask is the larger) */
	assert_int_equal(reserve(&b, &s, 1, 500, 500, T0, NULL, NULL), QUOTA_OK);
	/* a learns of it with its first call: 5000 - 1000 - a's own 50 + lease left 0 */
	memset(&h, 0, sizeof(h));
	assert_int_equal(reserve(&a, &s, 1, 25, 25, T0, NULL, &h), QUOTA_OK);
	assert_int_equal(h.remaining_tokens, 5000 - 1000 - 50 + 0);
	assert_int_equal(h.remaining_requests, 50 - 1 - 1);
	node_close(&a);
	node_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_small_limit_exact, test_setup),
		cmocka_unit_test_setup(test_tokens_never_exceeded, test_setup),
		cmocka_unit_test_setup(test_reconcile_debt_and_give_back, test_setup),
		cmocka_unit_test_setup(test_large_limit_few_calls, test_setup),
		cmocka_unit_test_setup(test_window_roll, test_setup),
		cmocka_unit_test_setup(test_multi_scope_all_or_nothing, test_setup),
		cmocka_unit_test_setup(test_too_large, test_setup),
		cmocka_unit_test_setup(test_hostile_numbers, test_setup),
		cmocka_unit_test_setup(test_down_fail_open, test_setup),
		cmocka_unit_test_setup(test_down_fail_closed, test_setup),
		cmocka_unit_test_setup(test_restart_and_noscript, test_setup),
		cmocka_unit_test(test_urls),
		cmocka_unit_test_setup(test_long_names, test_setup),
		cmocka_unit_test_setup(test_select_unix_auth, test_setup),
		cmocka_unit_test_setup(test_threads_exact, test_setup),
		cmocka_unit_test_setup(test_peek, test_setup),
		cmocka_unit_test_setup(test_nowait_pending_then_from_lease, test_setup),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
