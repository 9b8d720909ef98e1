/* SPDX-License-Identifier: Apache-2.0 */
/* Routes: weighted arms, sticky cohorts, breakers, the retry budget. */
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

static struct backend_cfg backends[3] = {
	{ .name = "a", .models = models_a, .nmodels = 1, .index = 0 },
	{ .name = "b", .models = models_b, .nmodels = 1, .index = 1 },
	{ .name = "c", .models = models_c, .nmodels = 1, .index = 2 },
};

static struct route_target_cfg arms[2] = {
	{ .backend = 0, .model = "llama", .weight = 95 },
	{ .backend = 1, .model = "llama-instruct", .weight = 5 },
};
static struct route_target_cfg chain[1] = { { .backend = 2, .weight = 1 } };

struct fixture {
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
	f.route = (struct route_cfg){ .model = "chat-default", .targets = arms, .ntargets = 2,
				      .fallback = chain, .nfallback = 1, .retry_percent = 20,
				      .retry_min = 0, .breaker_failures = 3,
				      .breaker_open_ms = 100 };
	f.cfg.backends = backends;
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

static void weights_split_exactly_over_a_cycle(void **state)
{
	struct fixture *f = *state;
	unsigned n[3] = { 0 };
	for (int i = 0; i < 10000; i++)
		n[route_choose(&f->rt, &f->cur, f->d, NULL, 0)->backend]++;
	assert_int_equal(n[0], 9500);
	assert_int_equal(n[1], 500);
	assert_int_equal(n[2], 0);	/* the fallback is no arm */
	/* The arm's model is what the backend is asked for, as JSON. */
	/* (not NUL-terminated: model_json_len bytes) */
	assert_int_equal(f->d->arms[1].model_json_len, 16);
	assert_memory_equal(f->d->arms[1].model_json, "\"llama-instruct\"", 16);
}

static void live_weight_zero_drains_an_arm(void **state)
{
	struct fixture *f = *state;
	__atomic_store_n(&f->d->arms[0].weight, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < 100; i++)
		assert_int_equal(route_choose(&f->rt, &f->cur, f->d, NULL, 0)->backend, 1);
	__atomic_store_n(&f->d->arms[1].weight, 0, __ATOMIC_RELAXED);
	assert_null(route_choose(&f->rt, &f->cur, f->d, NULL, 0));
}

static void sticky_key_keeps_its_arm(void **state)
{
	struct fixture *f = *state;
	f->route.sticky = ROUTE_STICKY_TENANT;
	f->d->arms[0].weight = 1;
	f->d->arms[1].weight = 1;
	char name[32];
	unsigned on_b = 0;
	for (int k = 0; k < 200; k++) {
		snprintf(name, sizeof(name), "tenant-%d", k);
		struct route_ctx ctx = { .tenant = name };
		unsigned first = route_choose(&f->rt, &f->cur, f->d, &ctx, 0)->backend;
		for (int i = 0; i < 5; i++)
			assert_int_equal(route_choose(&f->rt, &f->cur, f->d, &ctx, 0)->backend, first);
		on_b += first == 1;
	}
	assert_in_range(on_b, 60, 140);	/* both arms get a share */
}

static void breaker_opens_half_opens_closes(void **state)
{
	struct fixture *f = *state;
	const struct route_arm *a = &f->d->arms[0];
	uint64_t now = 1 * S;
	for (int i = 0; i < 3; i++) {
		assert_true(route_arm_available(&f->cur, f->d, a, now));
		route_attempt_start(&f->cur, a);
		route_attempt_end(&f->cur, f->d, a, false, MS, now);
	}
	assert_false(route_arm_available(&f->cur, f->d, a, now));
	assert_false(route_arm_available(&f->cur, f->d, a, now + 99 * MS));
	/* Open: the fallback chain is next. */
	assert_int_equal(route_next(&f->cur, f->d, a, now)->backend, 2);
	/* Time is up: one probe, no second one while it is out. */
	now += 100 * MS;
	assert_true(route_arm_available(&f->cur, f->d, a, now));
	route_attempt_start(&f->cur, a);
	assert_false(route_arm_available(&f->cur, f->d, a, now));
	/* A failed probe opens it again at once. */
	route_attempt_end(&f->cur, f->d, a, false, MS, now);
	assert_false(route_arm_available(&f->cur, f->d, a, now + 50 * MS));
	now += 100 * MS;
	route_attempt_start(&f->cur, a);
	route_attempt_end(&f->cur, f->d, a, true, MS, now);
	assert_int_equal(f->cur.arms[a->id].breaker, ROUTE_BREAKER_CLOSED);
	assert_true(route_arm_available(&f->cur, f->d, a, now));
}

static void busy_after_429_until_retry_after(void **state)
{
	struct fixture *f = *state;
	const struct route_arm *a = &f->d->arms[0];
	route_arm_busy(&f->cur, a, 5 * S);
	assert_false(route_arm_available(&f->cur, f->d, a, 4 * S));
	assert_true(route_arm_available(&f->cur, f->d, a, 5 * S));
}

static void retry_budget_caps_retries(void **state)
{
	struct fixture *f = *state;
	uint64_t now = 100 * S;
	unsigned granted = 0;
	for (int i = 0; i < 1000; i++) {
		route_budget_request(&f->cur, f->d, now);
		granted += route_budget_take_retry(&f->cur, f->d, now);
	}
	assert_int_equal(granted, 200);	/* 20 % of 1000 */
	/* Ten seconds later the window is empty again. */
	now += 11 * S;
	assert_false(route_budget_take_retry(&f->cur, f->d, now));
	route_budget_request(&f->cur, f->d, now);
	for (int i = 0; i < 4; i++)
		route_budget_request(&f->cur, f->d, now);
	assert_true(route_budget_take_retry(&f->cur, f->d, now));
	assert_false(route_budget_take_retry(&f->cur, f->d, now));
}

static void implicit_routes_have_no_budget(void **state)
{
	struct fixture *f = *state;
	struct route_ctx ctx = { .model = str_from("b-model") };
	const struct route_def *d = route_find(&f->rt, &ctx);
	assert_non_null(d);
	assert_true(d->implicit);
	assert_int_equal(d->narms, 1);
	assert_int_equal(d->nfallback, 0);
	assert_false(route_budget_take_retry(&f->cur, d, 0));
}

/* A reload's table: backends in another order, one arm the same target
 * (b, llama-instruct), one changed (a, another model), the same fallback. */
static void reload_carries_state_of_unchanged_arms(void **state)
{
	struct fixture *f = *state;
	static struct backend_cfg nb[3] = {
		{ .name = "c", .models = models_c, .nmodels = 1, .index = 0 },
		{ .name = "b", .models = models_b, .nmodels = 1, .index = 1 },
		{ .name = "a", .models = models_a, .nmodels = 1, .index = 2 },
	};
	static struct route_target_cfg narms[2] = {
		{ .backend = 1, .model = "llama-instruct", .weight = 50 },
		{ .backend = 2, .model = "llama-other", .weight = 50 },
	};
	static struct route_target_cfg nchain[1] = { { .backend = 0, .weight = 1 } };
	struct route_cfg nroute = f->route;
	nroute.targets = narms;
	nroute.fallback = nchain;
	struct sluice_config ncfg = { .backends = nb, .nbackends = 3, .routes = &nroute,
				      .nroutes = 1 };
	struct route_table nrt;
	struct route_cursor ncur;
	assert_int_equal(route_table_build(&nrt, &ncfg), 0);
	assert_int_equal(route_cursor_init(&ncur, &nrt), 0);
	const struct route_def *nd = route_by_name(&nrt, "chat-default", 12);
	assert_non_null(nd);

	struct route_arm_state *old = f->cur.arms;
	old[f->d->arms[0].id].fails = 2;
	old[f->d->arms[1].id] = (struct route_arm_state){ .breaker = ROUTE_BREAKER_OPEN,
		.fails = 3, .requests = 7, .inflight = 2, .open_until = 5 * S };
	old[f->d->fallback[0].id].requests = 5;
	f->cur.budgets[f->d->index].retries[0] = 4;

	route_cursor_carry(&ncur, &nrt, &f->cur, &f->rt);
	const struct route_arm_state *b = &ncur.arms[nd->arms[0].id];
	assert_int_equal(b->breaker, ROUTE_BREAKER_OPEN);
	assert_int_equal(b->fails, 3);
	assert_int_equal(b->requests, 7);
	assert_int_equal(b->open_until, 5 * S);
	assert_int_equal(b->inflight, 0);	/* in flight ends on the old cursor */
	const struct route_arm_state *a = &ncur.arms[nd->arms[1].id];
	assert_int_equal(a->fails, 0);		/* a new model: a new arm */
	assert_int_equal(ncur.arms[nd->fallback[0].id].requests, 5);
	assert_int_equal(ncur.budgets[nd->index].retries[0], 4);
	route_cursor_free(&ncur);
	route_table_free(&nrt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(weights_split_exactly_over_a_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(live_weight_zero_drains_an_arm, setup, teardown),
		cmocka_unit_test_setup_teardown(sticky_key_keeps_its_arm, setup, teardown),
		cmocka_unit_test_setup_teardown(breaker_opens_half_opens_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(busy_after_429_until_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(retry_budget_caps_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(implicit_routes_have_no_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(reload_carries_state_of_unchanged_arms, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
