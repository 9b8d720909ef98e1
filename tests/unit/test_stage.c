/* SPDX-License-Identifier: Apache-2.0 */
/* The stage seam: list layout (state offsets, limits), the order and
 * answers of hooks, and how SSE verdicts chain across stages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/stage.h"

/* ---- list layout ---- */

static const struct stage s_small = { .name = "small", .state_size = 3 };
static const struct stage s_big = { .name = "big", .state_size = 100 };
static const struct stage s_none = { .name = "none" };

static void test_list_offsets_aligned(void **state)
{
	(void)state;
	struct stage_list l = { 0 };
	assert_int_equal(stage_list_add(&l, &s_small), 0);
	assert_int_equal(stage_list_add(&l, &s_none), 0);
	assert_int_equal(stage_list_add(&l, &s_small), 0);
	assert_int_equal(l.off[0], 0);
	assert_int_equal(l.off[1], 8);		/* 3 rounded up to 8 */
	assert_int_equal(l.off[2], 8);		/* "none" takes nothing */
	assert_false(l.has_sse);
}

static void test_list_state_and_count_limits(void **state)
{
	(void)state;
	struct stage_list l = { 0 };
	assert_int_equal(stage_list_add(&l, &s_big), 0);
	/* 104 + 100 > STAGE_STATE_MAX */
	assert_int_equal(stage_list_add(&l, &s_big), -E2BIG);
	assert_int_equal(l.n, 1);
	struct stage_list m = { 0 };
	for (int i = 0; i < STAGE_MAX; i++)
		assert_int_equal(stage_list_add(&m, &s_none), 0);
	assert_int_equal(stage_list_add(&m, &s_none), -E2BIG);
}

static void test_builtin_list(void **state)
{
	(void)state;
	struct sluice_config cfg = { 0 };
	struct stage_list l;
	assert_int_equal(stage_list_build(&l, &cfg), 0);
	assert_int_equal(l.n, 5);
	assert_string_equal(l.s[0]->name, "identity");
	assert_string_equal(l.s[1]->name, "route");
	assert_string_equal(l.s[2]->name, "admit");
	assert_string_equal(l.s[4]->name, "account");
	assert_true(l.has_sse);
	assert_int_equal(l.nsse, 1);	/* usage only: no guardrails configured */
	cfg.debug_test_stage = true;
	assert_int_equal(stage_list_build(&l, &cfg), 0);
	assert_int_equal(l.n, 6);
	assert_string_equal(l.s[1]->name, "test");
	assert_string_equal(l.s[2]->name, "route");
	/* A config with a policy runs the guard stage before routing. */
	cfg.guardrails.npolicies = 1;
	assert_int_equal(stage_list_build(&l, &cfg), 0);
	assert_int_equal(l.n, 7);
	assert_string_equal(l.s[2]->name, "guard");
	assert_string_equal(l.s[3]->name, "route");
}

/* ---- SSE verdicts ---- */


static char g_log[64];

static void note(char c)
{
	size_t n = strlen(g_log);
	if (n + 1 < sizeof(g_log)) {
		g_log[n] = c;
		g_log[n + 1] = '\0';
	}
}

/* "a" replaces "x" with "y"; "b" counts what it sees in its state and
 * drops "z"; "c" holds "y". */
static enum stage_sse a_event(struct exchange *x, void *st, struct stage_event *ev)
{
	(void)x;
	(void)st;
	note('a');
	if (ev->in.len == 1 && ev->in.p[0] == 'x') {
		ev->out = (struct str){ "y", 1 };
		return STAGE_SSE_REPLACE;
	}
	return STAGE_SSE_PASS;
}

static enum stage_sse b_event(struct exchange *x, void *st, struct stage_event *ev)
{
	(void)x;
	(*(unsigned *)st)++;
	note('b');
	return ev->in.len == 1 && ev->in.p[0] == 'z' ? STAGE_SSE_DROP : STAGE_SSE_PASS;
}

static enum stage_sse c_event(struct exchange *x, void *st, struct stage_event *ev)
{
	(void)x;
	(void)st;
	note('c');
	return ev->in.len == 1 && ev->in.p[0] == 'y' ? STAGE_SSE_HOLD : STAGE_SSE_PASS;
}

static const struct stage s_a = { .name = "a", .sse_event = a_event };
static const struct stage s_b = { .name = "b", .state_size = sizeof(unsigned),
				  .sse_event = b_event };
static const struct stage s_c = { .name = "c", .sse_event = c_event };

static enum stage_sse run(struct exchange *x, const char *in, struct str *out)
{
	struct stage_event ev = { .in = str_from(in) };
	g_log[0] = '\0';
	enum stage_sse v = stage_run_sse(x, &ev);
	*out = ev.out;
	return v;
}

static void test_sse_chain(void **state)
{
	(void)state;
	struct stage_list l = { 0 };
	assert_int_equal(stage_list_add(&l, &s_a), 0);
	assert_int_equal(stage_list_add(&l, &s_b), 0);
	assert_true(l.has_sse);
	struct exchange *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	x->sr.list = &l;
	struct str out;

	/* Passed by all: the event as it came. */
	assert_int_equal(run(x, "p", &out), STAGE_SSE_PASS);
	assert_string_equal(g_log, "ab");
	assert_int_equal(out.len, 1);
	assert_memory_equal(out.p, "p", 1);

	/* A replacement is what the next stage sees and what goes on. */
	assert_int_equal(run(x, "x", &out), STAGE_SSE_REPLACE);
	assert_memory_equal(out.p, "y", 1);

	/* A drop ends the walk. */
	assert_int_equal(run(x, "z", &out), STAGE_SSE_DROP);
	assert_string_equal(g_log, "ab");
	/* The state is the stage's, kept between events. */
	assert_int_equal(*(unsigned *)(x->stage_state + l.off[1]), 3);

	/* A hold keeps the bytes as earlier stages left them. */
	assert_int_equal(stage_list_add(&l, &s_c), 0);
	assert_int_equal(run(x, "x", &out), STAGE_SSE_HOLD);
	assert_string_equal(g_log, "abc");
	assert_int_equal(out.len, 1);
	assert_memory_equal(out.p, "y", 1);
	free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_offsets_aligned),
		cmocka_unit_test(test_list_state_and_count_limits),
		cmocka_unit_test(test_builtin_list),
		cmocka_unit_test(test_sse_chain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
