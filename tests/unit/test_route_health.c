/* SPDX-License-Identifier: Apache-2.0 */
/* Routes, health side: per-backend breakers (failures in a row, error
 * rate), active-check marks, context-window fallback links, retry
 * backoff, per-arm statistics, a sticky canary's split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "route/route.h"

#define MS	1000000ull
#define S	1000000000ull

static char *models_a[] = { "a-model" };
static char *models_b[] = { "b-model" };
static char *models_c[] = { "c-model" };

static struct route_target_cfg arms[2] = {
	{ .backend = 0, .model = "llama", .weight = 95 },
	{ .backend = 1, .model = "llama-instruct", .weight = 5 },
};
/* b again (plain), then c with a larger window */
static struct route_target_cfg chain[2] = {
	{ .backend = 1, .weight = 1 },
	{ .backend = 2, .weight = 1, .context_fallback = true },
};

struct fixture {
	struct backend_cfg backends[3];
	struct sluice_config cfg;
	struct route_cfg route;
	struct route_table rt;
	struct route_cursor cur;
	const struct route_def *d;
};

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof(f));
	char **models[3] = { models_a, models_b, models_c };
	for (unsigned i = 0; i < 3; i++)
		f.backends[i] = (struct backend_cfg){ .name = i == 0 ? "a" : i == 1 ? "b" : "c",
						      .models = models[i], .nmodels = 1, .index = i,
						      .br_failures = 3, .br_min_requests = 10,
						      .br_window_ms = 1000, .br_open_ms = 100 };
	f.route = (struct route_cfg){ .model = "chat-default", .targets = arms, .ntargets = 2,
				      .fallback = chain, .nfallback = 2, .retry_percent = 20,
				      .retry_min = 0, .breaker_failures = 0,
				      .backoff_base_ms = 20, .backoff_max_ms = 100 };
	f.cfg.backends = f.backends;
	f.cfg.nbackends = 3;
	f.cfg.routes = &f.route;
	f.cfg.nroutes = 1;
	assert_int_equal(route_table_build(&f.rt, &f.cfg), 0);
	assert_int_equal(route_cursor_init(&f.cur, &f.rt), 0);
	f.d = route_by_name(&f.rt, "chat-default", 12);
	assert_non_null(f.d);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	route_cursor_free(&f->cur);
	route_table_free(&f->rt);
	return 0;
}

static void attempt(struct fixture *f, const struct route_arm *a, bool ok, uint64_t now)
{
	route_attempt_start(&f->cur, a);
	route_attempt_end(&f->cur, f->d, a, ok, MS, now);
}

/* Failures in a row on one backend open its breaker for every target on
 * it (the arm b and the fallback link b), whatever route they are in. */
static void backend_breaker_failures_in_a_row(void **state)
{
	struct fixture *f = *state;
	const struct route_arm *arm_b = &f->d->arms[1], *link_b = &f->d->fallback[0];
	uint64_t now = 10 * S;
	attempt(f, arm_b, false, now);
	attempt(f, link_b, false, now);
	assert_true(route_arm_available(&f->cur, f->d, arm_b, now));
	attempt(f, arm_b, false, now);
	assert_false(route_arm_available(&f->cur, f->d, arm_b, now));
	assert_false(route_arm_available(&f->cur, f->d, link_b, now));
	assert_int_equal(f->cur.backends[1].opened, 1);
	/* Every weighted choice avoids b while it is open. */
	for (int i = 0; i < 200; i++)
		assert_int_equal(route_choose(&f->rt, &f->cur, f->d, NULL, now)->backend, 0);
	/* Half-open after the open time: one probe, then closed on success. */
	now += 100 * MS;
	assert_true(route_arm_available(&f->cur, f->d, arm_b, now));
	route_attempt_start(&f->cur, arm_b);
	assert_false(route_arm_available(&f->cur, f->d, link_b, now));	/* probe out */
	route_attempt_end(&f->cur, f->d, arm_b, true, MS, now);
	assert_int_equal(f->cur.backends[1].breaker, ROUTE_BREAKER_CLOSED);
	assert_true(route_arm_available(&f->cur, f->d, link_b, now));
	/* A failed probe opens it again at once. */
	for (int i = 0; i < 3; i++)
		attempt(f, arm_b, false, now);
	now += 100 * MS;
	attempt(f, arm_b, false, now);
	assert_false(route_arm_available(&f->cur, f->d, arm_b, now));
	assert_int_equal(f->cur.backends[1].opened, 3);
}

/* error_percent: failures that never come in a row still open it once
 * the window has min_requests attempts; the window forgets. */
static void backend_breaker_error_rate(void **state)
{
	struct fixture *f = *state;
	f->backends[0].br_failures = 0;
	f->backends[0].br_error_percent = 50;
	const struct route_arm *a = &f->d->arms[0];
	uint64_t now = 10 * S;
	for (int i = 0; i < 8; i++)
		attempt(f, a, i % 2, now);	/* 4 of 8 failed: too few requests */
	assert_true(route_arm_available(&f->cur, f->d, a, now));
	/* A new window: the old failures are forgotten. */
	now += 2 * S;
	for (int i = 0; i < 10; i++)
		attempt(f, a, i % 3 != 0, now);	/* 4 of 10 failed: under 50 % */
	assert_true(route_arm_available(&f->cur, f->d, a, now));
	attempt(f, a, false, now);
	attempt(f, a, false, now);		/* 6 of 12 */
	assert_false(route_arm_available(&f->cur, f->d, a, now));
	/* Off entirely: no trip. */
	f->backends[0].br_error_percent = 0;
	now += 10 * S;
	attempt(f, a, true, now);
	for (int i = 0; i < 50; i++)
		attempt(f, a, i % 2, now);
	assert_true(route_arm_available(&f->cur, f->d, a, now));
}

/* An active-check mark takes a backend's targets out of the choice. */
static void health_mark_skips_targets(void **state)
{
	struct fixture *f = *state;
	struct health_target t[3] = { { .checked = true }, { .checked = true } };
	struct health h = { .cfg = &f->cfg, .t = t, .n = 3 };
	f->cur.health = &h;
	t[0].down = 1;
	for (int i = 0; i < 100; i++)
		assert_int_equal(route_choose(&f->rt, &f->cur, f->d, NULL, 0)->backend, 1);
	/* Every arm down: tried anyway rather than refused. */
	t[1].down = 1;
	assert_non_null(route_choose(&f->rt, &f->cur, f->d, NULL, 0));
	/* The chain skips a down link. */
	assert_ptr_equal(route_next(&f->cur, f->d, &f->d->arms[0], 0), &f->d->fallback[1]);
	f->cur.health = NULL;
}

/* Only links marked context_fallback take a context overflow. */
static void context_fallback_links(void **state)
{
	struct fixture *f = *state;
	assert_false(f->d->fallback[0].context_fallback);
	assert_true(f->d->fallback[1].context_fallback);
	assert_ptr_equal(route_next_context(&f->cur, f->d, &f->d->arms[0], 0), &f->d->fallback[1]);
	assert_null(route_next_context(&f->cur, f->d, &f->d->fallback[1], 0));
	/* Ordinary failover still walks every link. */
	assert_ptr_equal(route_next(&f->cur, f->d, &f->d->arms[0], 0), &f->d->fallback[0]);
}

/* Backoff: exponential, jittered in the upper half, capped, off at 0. */
static void backoff_grows_jitters_and_caps(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(route_backoff_ns(&f->cur, f->d, 0), 0);
	uint64_t lo[8] = { 0 }, hi[8] = { 0 };
	for (unsigned n = 1; n < 8; n++) {
		lo[n] = UINT64_MAX;
		for (int i = 0; i < 1000; i++) {
			uint64_t d = route_backoff_ns(&f->cur, f->d, n);
			lo[n] = d < lo[n] ? d : lo[n];
			hi[n] = d > hi[n] ? d : hi[n];
		}
	}
	/* 20 ms, 40 ms, 80 ms, then capped at 100 ms */
	uint64_t want[8] = { 0, 20 * MS, 40 * MS, 80 * MS, 100 * MS, 100 * MS, 100 * MS, 100 * MS };
	for (unsigned n = 1; n < 8; n++) {
		assert_true(lo[n] >= want[n] / 2);
		assert_true(hi[n] <= want[n]);
		assert_true(hi[n] - lo[n] > want[n] / 4);	/* jittered, not fixed */
	}
	/* Huge attempt numbers saturate rather than overflow. */
	assert_true(route_backoff_ns(&f->cur, f->d, 4000000000u) <= 100 * MS);
	f->route.backoff_base_ms = 0;
	assert_int_equal(route_backoff_ns(&f->cur, f->d, 3), 0);
	f->route.backoff_base_ms = 20;
	/* Implicit routes (no route config) never back off. */
	struct route_def implicit = { .implicit = true };
	assert_int_equal(route_backoff_ns(&f->cur, &implicit, 3), 0);
}

/* Per-arm figures: histogram buckets, sums, tokens, errors. */
static void arm_statistics(void **state)
{
	struct fixture *f = *state;
	const struct route_arm *a = &f->d->arms[1];
	struct route_outcome o = { .latency_ns = 30 * MS, .ttft_ns = 7 * MS,
				   .tokens_in = 12, .tokens_out = 34 };
	route_exchange_done(&f->cur, a, &o);
	o = (struct route_outcome){ .latency_ns = 70 * S, .tokens_in = -1, .tokens_out = -1,
				    .error = true };
	route_exchange_done(&f->cur, a, &o);
	const struct route_arm_stats *st = &f->cur.arms[a->id].st;
	assert_int_equal(st->responses, 2);
	assert_int_equal(st->errors, 1);
	assert_int_equal(st->lat[metrics_bucket_of(30 * MS)], 1);
	assert_int_equal(st->lat[METRICS_BUCKETS - 1], 1);	/* +Inf */
	assert_int_equal(st->lat_sum_ns, 30 * MS + 70 * S);
	assert_int_equal(st->ttft[metrics_bucket_of(7 * MS)], 1);
	assert_int_equal(st->ttft_sum_ns, 7 * MS);
	assert_int_equal(st->tokens_in, 12);
	assert_int_equal(st->tokens_out, 34);
	/* 30 ms falls in (25 ms, 50 ms] */
	assert_int_equal(metrics_bucket_of(30 * MS), 5);
	assert_string_equal(metrics_bucket_le[5], "0.05");
}

/* Sticky cohorts (rendezvous hashing) split 10,000 callers 95:5 within
 * 2 % of all requests; smooth round robin is exact (test_route_choice). */
static void sticky_canary_split_within_two_percent(void **state)
{
	struct fixture *f = *state;
	struct route_cfg *rc = &f->route;
	rc->sticky = ROUTE_STICKY_API_KEY;
	unsigned n[2] = { 0 };
	char key[32];
	for (int i = 0; i < 10000; i++) {
		int len = snprintf(key, sizeof(key), "key-%d", i);
		struct route_ctx ctx = { .model = STR_LIT("chat-default"),
					 .key_id = { key, (size_t)len } };
		n[route_choose(&f->rt, &f->cur, f->d, &ctx, 0)->backend]++;
	}
	assert_true(n[1] >= 300 && n[1] <= 700);
	assert_int_equal(n[0] + n[1], 10000);
	rc->sticky = ROUTE_STICKY_NONE;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(backend_breaker_failures_in_a_row, setup, teardown),
		cmocka_unit_test_setup_teardown(backend_breaker_error_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(health_mark_skips_targets, setup, teardown),
		cmocka_unit_test_setup_teardown(context_fallback_links, setup, teardown),
		cmocka_unit_test_setup_teardown(backoff_grows_jitters_and_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(arm_statistics, setup, teardown),
		cmocka_unit_test_setup_teardown(sticky_canary_split_within_two_percent, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
