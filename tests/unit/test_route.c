/* SPDX-License-Identifier: Apache-2.0 */
/* Router: exact names, round-robin, "*" fallback, the /v1/models body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "api/json.h"
#include "route/route.h"

static char *models_a[] = { "gpt-small", "shared" };
static char *models_b[] = { "shared", "only-b" };
static char *models_c[] = { "*" };
static char *models_d[] = { "shared", "*" };

static struct backend_cfg backends[4] = {
	{ .name = "a", .models = models_a, .nmodels = 2, .index = 0 },
	{ .name = "b", .models = models_b, .nmodels = 2, .index = 1 },
	{ .name = "c", .models = models_c, .nmodels = 1, .any_model = true, .index = 2 },
	{ .name = "d", .models = models_d, .nmodels = 2, .any_model = true, .index = 3 },
};

struct fixture {
	struct sluice_config cfg;
	struct route_table rt;
	struct route_cursor cur;
};

static int setup_n(void **state, size_t n)
{
	static struct fixture f;
	memset(&f, 0, sizeof(f));
	f.cfg.backends = backends;
	f.cfg.nbackends = n;
	assert_int_equal(route_table_build(&f.rt, &f.cfg), 0);
	assert_int_equal(route_cursor_init(&f.cur, &f.rt), 0);
	*state = &f;
	return 0;
}

static int setup_ab(void **state) { return setup_n(state, 2); }
static int setup_abc(void **state) { return setup_n(state, 3); }
static int setup_abcd(void **state) { return setup_n(state, 4); }

static int teardown(void **state)
{
	struct fixture *f = *state;
	route_cursor_free(&f->cur);
	route_table_free(&f->rt);
	return 0;
}

static int pick(struct fixture *f, const char *model)
{
	return route_pick(&f->rt, &f->cur, str_from(model));
}

static void exact_model_goes_to_its_backend(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(pick(f, "gpt-small"), 0);
		assert_int_equal(pick(f, "only-b"), 1);
	}
}

static void shared_model_takes_turns(void **state)
{
	struct fixture *f = *state;
	int seen[2] = { 0 };
	for (int i = 0; i < 10; i++) {
		int b = pick(f, "shared");
		assert_true(b == 0 || b == 1);
		seen[b]++;
	}
	assert_int_equal(seen[0], 5);
	assert_int_equal(seen[1], 5);
}

static void turns_are_per_model(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(pick(f, "shared"), 0);
	/* Other models in between do not move the "shared" cursor. */
	assert_int_equal(pick(f, "gpt-small"), 0);
	assert_int_equal(pick(f, "only-b"), 1);
	assert_int_equal(pick(f, "shared"), 1);
	assert_int_equal(pick(f, "shared"), 0);
}

static void unknown_model_without_wildcard(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(pick(f, "nope"), -1);
	assert_int_equal(pick(f, ""), -1);
	/* Prefixes and case variants are other names. */
	assert_int_equal(pick(f, "gpt-smal"), -1);
	assert_int_equal(pick(f, "GPT-SMALL"), -1);
}

static void wildcard_catches_unknown_models(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(pick(f, "anything"), 2);
	assert_int_equal(pick(f, "gpt-small"), 0);	/* exact names win */
	assert_int_equal(pick(f, ""), -1);		/* no model is no route */
}

static void several_wildcards_take_turns(void **state)
{
	struct fixture *f = *state;
	int seen[4] = { 0 };
	for (int i = 0; i < 8; i++)
		seen[pick(f, "whatever")]++;
	assert_int_equal(seen[2], 4);
	assert_int_equal(seen[3], 4);
	/* "shared" is named by a, b and d. */
	int shared[4] = { 0 };
	for (int i = 0; i < 9; i++)
		shared[pick(f, "shared")]++;
	assert_int_equal(shared[0], 3);
	assert_int_equal(shared[1], 3);
	assert_int_equal(shared[3], 3);
}

static void models_body_lists_each_once(void **state)
{
	struct fixture *f = *state;
	struct buf out = { 0 };
	assert_int_equal(route_models_body(&f->cfg, &out), 0);
	struct json_val root, data, v;
	assert_int_equal(json_parse(buf_head(&out), buf_used(&out), &root, NULL, NULL), 0);
	assert_int_equal(json_get(&root, "object", &v), 0);
	assert_true(json_string_eq(&v, "list"));
	assert_int_equal(json_get(&root, "data", &data), 0);
	assert_int_equal(json_array_len(&data), 3);
	const char *want[] = { "gpt-small", "shared", "only-b" };
	const char *owner[] = { "a", "a", "b" };
	struct json_iter it;
	struct str key;
	struct json_val item;
	size_t i = 0;
	json_iter_init(&it, &data);
	while (json_iter_next(&it, &key, &item)) {
		assert_int_equal(json_get(&item, "id", &v), 0);
		assert_true(json_string_eq(&v, want[i]));
		assert_int_equal(json_get(&item, "owned_by", &v), 0);
		assert_true(json_string_eq(&v, owner[i]));
		assert_int_equal(json_get(&item, "object", &v), 0);
		assert_true(json_string_eq(&v, "model"));
		i++;
	}
	assert_int_equal(i, 3);
	buf_free(&out);
}

static void many_models_hash_without_collisions_lost(void **state)
{
	(void)state;
	static char names[300][24];
	static char *list[300];
	for (int i = 0; i < 300; i++) {
		snprintf(names[i], sizeof(names[i]), "model-%d", i);
		list[i] = names[i];
	}
	struct backend_cfg be[2] = {
		{ .name = "x", .models = list, .nmodels = 150, .index = 0 },
		{ .name = "y", .models = list + 150, .nmodels = 150, .index = 1 },
	};
	struct sluice_config cfg = { .backends = be, .nbackends = 2 };
	struct route_table rt;
	struct route_cursor cur;
	assert_int_equal(route_table_build(&rt, &cfg), 0);
	assert_int_equal(route_cursor_init(&cur, &rt), 0);
	for (int i = 0; i < 300; i++)
		assert_int_equal(route_pick(&rt, &cur, str_from(names[i])), i < 150 ? 0 : 1);
	assert_int_equal(route_pick(&rt, &cur, str_from("model-300")), -1);
	route_cursor_free(&cur);
	route_table_free(&rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(exact_model_goes_to_its_backend, setup_ab, teardown),
		cmocka_unit_test_setup_teardown(shared_model_takes_turns, setup_ab, teardown),
		cmocka_unit_test_setup_teardown(turns_are_per_model, setup_ab, teardown),
		cmocka_unit_test_setup_teardown(unknown_model_without_wildcard, setup_ab, teardown),
		cmocka_unit_test_setup_teardown(wildcard_catches_unknown_models, setup_abc, teardown),
		cmocka_unit_test_setup_teardown(several_wildcards_take_turns, setup_abcd, teardown),
		cmocka_unit_test_setup_teardown(models_body_lists_each_once, setup_ab, teardown),
		cmocka_unit_test(many_models_hash_without_collisions_lost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
