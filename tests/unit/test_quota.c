/* SPDX-License-Identifier: Apache-2.0 */
/* Local quotas: limits, windows, reservations, slots, under a driven clock. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>
#include <cmocka.h>

#include "quota/quota.h"

#define MINUTE 60000ull
#define DAY 86400000ull

static uint64_t utc_ms(int y, int mon, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };
	return (uint64_t)timegm(&tm) * 1000;
}

/* 2024-03-14 12:00:00 UTC: the start of a minute, mid-month. */
#define T0 1710417600000ull

/* Up to three scopes in plain memory. */
struct fix {
	struct sluice_limits lim[3];
	struct sluice_usage use[3];
	struct quota_scope sc[3];
};

static void fix_init(struct fix *f)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < 3; i++)
		f->sc[i] = (struct quota_scope){ .limits = &f->lim[i], .usage = &f->use[i] };
}

static enum quota_verdict reserve(struct fix *f, size_t n, uint64_t in, uint64_t out,
				  uint64_t now, struct quota_hold *hold, struct quota_headers *h)
{
	struct quota_ask ask = { .input_tokens = in, .output_tokens = out };
	struct quota_hold scratch;
	return quota_reserve(f->sc, n, &ask, now, hold ? hold : &scratch, h);
}

/* A refusal changed nothing in scope i but its denied count. */
static void assert_only_denied_changed(const struct sluice_usage *before,
				       const struct sluice_usage *after)
{
	struct sluice_usage b = *before;
	b.denied++;
	assert_memory_equal(&b, after, sizeof(b));
}

/* ------------------------------------------------------------------ */

static void windows_are_utc_aligned(void **state)
{
	(void)state;
	assert_int_equal(quota_minute(T0 + 59999), quota_minute(T0));
	assert_int_equal(quota_minute(T0 + 60000), quota_minute(T0) + 1);
	assert_int_equal(quota_minute(T0), T0 / 60000);
	assert_int_equal(quota_day(utc_ms(2024, 3, 14, 23, 59, 59) + 999), quota_day(T0));
	assert_int_equal(quota_day(utc_ms(2024, 3, 15, 0, 0, 0)), quota_day(T0) + 1);
	assert_int_equal(quota_month(0), 1970 * 12);

	/* December to January, and a leap day. */
	uint64_t dec = 2023 * 12 + 11;
	assert_int_equal(quota_month(utc_ms(2024, 1, 1, 0, 0, 0) - 1), dec);
	assert_int_equal(quota_month(utc_ms(2024, 1, 1, 0, 0, 0)), dec + 1);
	assert_int_equal(quota_month_end_ms(dec), utc_ms(2024, 1, 1, 0, 0, 0));
	assert_int_equal(quota_month(utc_ms(2024, 2, 29, 12, 0, 0)), 2024 * 12 + 1);
	assert_int_equal(quota_month(utc_ms(2024, 3, 1, 0, 0, 0)), 2024 * 12 + 2);
	assert_int_equal(quota_month_end_ms(2024 * 12 + 1), utc_ms(2024, 3, 1, 0, 0, 0));
	assert_int_equal(quota_month_end_ms(2023 * 12 + 1), utc_ms(2023, 3, 1, 0, 0, 0));
	assert_int_equal(quota_month_end_ms(2100 * 12 + 1), utc_ms(2100, 3, 1, 0, 0, 0));
	assert_int_equal(quota_month_end_ms(2000 * 12 + 1), utc_ms(2000, 3, 1, 0, 0, 0));
}

/* The civil arithmetic against the C library, over four centuries. */
static void months_match_gmtime(void **state)
{
	(void)state;
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t t = x % (utc_ms(2400, 1, 1, 0, 0, 0));
		time_t secs = (time_t)(t / 1000);
		struct tm tm;
		assert_non_null(gmtime_r(&secs, &tm));
		uint64_t m = (uint64_t)(tm.tm_year + 1900) * 12 + (uint64_t)tm.tm_mon;
		assert_int_equal(quota_month(t), m);
		uint64_t end = quota_month_end_ms(m);
		assert_true(end > t);
		assert_int_equal(quota_month(end), m + 1);
		assert_int_equal(quota_month(end - 1), m);
	}
}

static void requests_refused_at_the_limit(void **state)
{
	(void)state;
	struct fix f;
	struct quota_headers h;
	fix_init(&f);
	f.lim[0].requests_per_minute = 3;
	for (uint64_t i = 0; i < 3; i++) {
		assert_int_equal(reserve(&f, 1, 1, 1, T0 + i, NULL, &h), QUOTA_OK);
		assert_true(h.has_requests);
		assert_int_equal(h.limit_requests, 3);
		assert_int_equal(h.remaining_requests, 2 - i);
		assert_int_equal(h.retry_after_s, 0);
	}
	struct sluice_usage before = f.use[0];
	assert_int_equal(reserve(&f, 1, 1, 1, T0 + 10, NULL, &h), QUOTA_REQUESTS);
	assert_only_denied_changed(&before, &f.use[0]);
	assert_int_equal(f.use[0].denied, 1);
	assert_int_equal(h.remaining_requests, 0);
	assert_int_equal(h.retry_after_s, 60);
	assert_int_equal(h.reset_requests_ms, MINUTE - 10);
}

static void tokens_refused_at_the_limit(void **state)
{
	(void)state;
	struct fix f;
	struct quota_headers h;
	fix_init(&f);
	f.lim[0].tokens_per_minute = 100;
	assert_int_equal(reserve(&f, 1, 30, 30, T0, NULL, &h), QUOTA_OK);
	assert_int_equal(h.remaining_tokens, 40);
	assert_int_equal(reserve(&f, 1, 20, 20, T0, NULL, &h), QUOTA_OK);
	assert_int_equal(f.use[0].tokens_minute, 100);
	assert_int_equal(h.remaining_tokens, 0);
	struct sluice_usage before = f.use[0];
	assert_int_equal(reserve(&f, 1, 0, 1, T0, NULL, &h), QUOTA_TOKENS);
	assert_only_denied_changed(&before, &f.use[0]);
	/* A request asking for no tokens still fits exactly at the limit. */
	assert_int_equal(reserve(&f, 1, 0, 0, T0, NULL, NULL), QUOTA_OK);
}

static void input_and_output_refused_at_their_limits(void **state)
{
	(void)state;
	struct fix f;
	fix_init(&f);
	f.lim[0].input_tokens_per_minute = 50;
	f.lim[1].output_tokens_per_minute = 70;
	assert_int_equal(reserve(&f, 1, 50, 1000, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 1, 0, T0, NULL, NULL), QUOTA_INPUT_TOKENS);
	assert_int_equal(reserve(&f, 1, 0, 1000, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].denied, 1);

	struct quota_scope *second = &f.sc[1];
	struct quota_ask ask = { 1000, 70 };
	struct quota_hold hold;
	assert_int_equal(quota_reserve(second, 1, &ask, T0, &hold, NULL), QUOTA_OK);
	ask = (struct quota_ask){ 0, 1 };
	assert_int_equal(quota_reserve(second, 1, &ask, T0, &hold, NULL), QUOTA_OUTPUT_TOKENS);
	assert_int_equal(f.use[1].output_tokens_minute, 70);
	assert_int_equal(f.use[1].input_tokens_minute, 1000);
}

static void concurrency_refused_at_the_limit(void **state)
{
	(void)state;
	struct fix f;
	struct quota_headers h;
	struct quota_hold a, b;
	fix_init(&f);
	f.lim[0].concurrent = 2;
	assert_int_equal(reserve(&f, 1, 1, 1, T0, &a, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 1, 1, T0, &b, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 1, 1, T0 + 5, NULL, &h), QUOTA_CONCURRENT);
	assert_int_equal(h.retry_after_s, 1);
	assert_int_equal(f.use[0].concurrent, 2);
	assert_false(quota_release(f.sc, 1, &a, 1, 1, T0 + 6));
	assert_int_equal(f.use[0].concurrent, 1);
	assert_int_equal(reserve(&f, 1, 1, 1, T0 + 7, &a, NULL), QUOTA_OK);
	quota_release(f.sc, 1, &a, 1, 1, T0 + 8);
	quota_release(f.sc, 1, &b, 1, 1, T0 + 8);
	assert_int_equal(f.use[0].concurrent, 0);
	/* A release too many does not go below zero. */
	quota_release(f.sc, 1, &b, 1, 1, T0 + 9);
	assert_int_equal(f.use[0].concurrent, 0);
	assert_int_equal(f.use[0].reserved_tokens, 0);
}

static void budgets_refused_at_the_limit(void **state)
{
	(void)state;
	struct fix f;
	struct quota_headers h;
	fix_init(&f);
	f.lim[0].tokens_per_day = 1000;
	f.lim[1].tokens_per_month = 300;
	uint64_t now = utc_ms(2024, 3, 14, 23, 0, 0);
	assert_int_equal(reserve(&f, 1, 400, 100, now, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 400, 100, now, NULL, NULL), QUOTA_OK);
	struct sluice_usage before = f.use[0];
	assert_int_equal(reserve(&f, 1, 0, 1, now + 1, NULL, &h), QUOTA_DAY);
	assert_only_denied_changed(&before, &f.use[0]);
	assert_int_equal(h.retry_after_s, 3600);

	assert_int_equal(quota_reserve(&f.sc[1], 1, &(struct quota_ask){ 100, 200 }, now,
				       &(struct quota_hold){ 0 }, NULL), QUOTA_OK);
	assert_int_equal(quota_reserve(&f.sc[1], 1, &(struct quota_ask){ 1, 0 }, now,
				       &(struct quota_hold){ 0 }, &h), QUOTA_MONTH);
	assert_int_equal(h.retry_after_s, (utc_ms(2024, 4, 1, 0, 0, 0) - now) / 1000);
}

static void too_large_never_fits(void **state)
{
	(void)state;
	struct fix f;
	struct quota_headers h;
	fix_init(&f);

	static const size_t field[] = {
		offsetof(struct sluice_limits, tokens_per_minute),
		offsetof(struct sluice_limits, input_tokens_per_minute),
		offsetof(struct sluice_limits, output_tokens_per_minute),
		offsetof(struct sluice_limits, tokens_per_day),
		offsetof(struct sluice_limits, tokens_per_month),
	};
	for (size_t i = 0; i < sizeof(field) / sizeof(field[0]); i++) {
		fix_init(&f);
		*(__u64 *)((char *)&f.lim[0] + field[i]) = 100;
		/* Exactly the limit fits into an empty window... */
		uint64_t in = i == 2 ? 0 : 100, out = i == 2 ? 100 : 0;
		assert_int_equal(reserve(&f, 1, in, out, T0, NULL, NULL), QUOTA_OK);
		/* ...one more never does, even in fresh windows. */
		in += in ? 1 : 0;
		out += out ? 1 : 0;
		struct sluice_usage before = f.use[0];
		assert_int_equal(reserve(&f, 1, in, out, T0 + 2 * DAY * 40, NULL, &h),
				 QUOTA_TOO_LARGE);
		assert_int_equal(h.retry_after_s, 0);
		assert_int_equal(f.use[0].denied, before.denied + 1);
		assert_int_equal(f.use[0].concurrent, before.concurrent);
	}

	/* Too large wins over another scope's passing refusal. */
	fix_init(&f);
	f.lim[0].requests_per_minute = 1;
	f.lim[1].tokens_per_minute = 10;
	assert_int_equal(reserve(&f, 1, 1, 1, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 2, 6, 6, T0, NULL, NULL), QUOTA_TOO_LARGE);
	assert_int_equal(f.use[0].denied, 0);
	assert_int_equal(f.use[1].denied, 1);
}

static void refusal_in_any_scope_changes_nothing(void **state)
{
	(void)state;
	struct fix f;
	fix_init(&f);
	f.lim[0].requests_per_minute = 100;
	f.lim[1].tokens_per_minute = 1000;
	f.lim[2].tokens_per_minute = 100;
	assert_int_equal(reserve(&f, 3, 45, 45, T0, NULL, NULL), QUOTA_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(f.use[i].requests_minute, 1);
		assert_int_equal(f.use[i].tokens_minute, 90);
		assert_int_equal(f.use[i].concurrent, 1);
		assert_int_equal(f.use[i].reserved_tokens, 90);
	}
	struct sluice_usage before[3];
	memcpy(before, f.use, sizeof(before));
	assert_int_equal(reserve(&f, 3, 5, 6, T0 + 1, NULL, NULL), QUOTA_TOKENS);
	assert_memory_equal(&before[0], &f.use[0], sizeof(before[0]));
	assert_memory_equal(&before[1], &f.use[1], sizeof(before[1]));
	assert_only_denied_changed(&before[2], &f.use[2]);

	/* Several refuse: the most lasting is reported, and only its scope
	 * counts the denial. */
	fix_init(&f);
	f.lim[0].requests_per_minute = 1;
	f.lim[1].concurrent = 1;
	f.lim[2].tokens_per_day = 100;
	assert_int_equal(reserve(&f, 3, 50, 50, T0, NULL, NULL), QUOTA_OK);
	struct quota_headers h;
	assert_int_equal(reserve(&f, 3, 1, 0, T0, NULL, &h), QUOTA_DAY);
	assert_int_equal(h.retry_after_s, (utc_ms(2024, 3, 15, 0, 0, 0) - T0) / 1000);
	assert_int_equal(f.use[0].denied, 0);
	assert_int_equal(f.use[1].denied, 0);
	assert_int_equal(f.use[2].denied, 1);
	f.lim[2].tokens_per_day = 0;
	assert_int_equal(reserve(&f, 3, 1, 0, T0, NULL, NULL), QUOTA_REQUESTS);
	assert_int_equal(f.use[0].denied, 1);
	f.lim[0].requests_per_minute = 0;
	assert_int_equal(reserve(&f, 3, 1, 0, T0, NULL, NULL), QUOTA_CONCURRENT);
	assert_int_equal(f.use[1].denied, 1);
}

static void minute_and_day_windows_roll(void **state)
{
	(void)state;
	struct fix f;
	fix_init(&f);
	f.lim[0].requests_per_minute = 1;
	f.lim[0].tokens_per_day = 250;
	assert_int_equal(reserve(&f, 1, 50, 50, T0, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 50, 50, T0 + MINUTE - 1, NULL, NULL), QUOTA_REQUESTS);
	assert_int_equal(reserve(&f, 1, 50, 50, T0 + MINUTE, NULL, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].minute, quota_minute(T0) + 1);
	assert_int_equal(f.use[0].requests_minute, 1);
	assert_int_equal(f.use[0].tokens_minute, 100);
	assert_int_equal(f.use[0].tokens_day, 200);
	assert_int_equal(f.use[0].tokens_month, 200);

	/* The day budget: spent until midnight UTC. */
	uint64_t midnight = utc_ms(2024, 3, 15, 0, 0, 0);
	assert_int_equal(reserve(&f, 1, 50, 50, midnight - 1, NULL, NULL), QUOTA_DAY);
	assert_int_equal(reserve(&f, 1, 50, 50, midnight, NULL, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].day, quota_day(midnight));
	assert_int_equal(f.use[0].tokens_day, 100);
	assert_int_equal(f.use[0].tokens_month, 300);
}

static void month_window_rolls_at_new_year_and_leap_day(void **state)
{
	(void)state;
	struct fix f;
	struct quota_headers h;
	fix_init(&f);
	f.lim[0].tokens_per_month = 100;
	uint64_t jan = utc_ms(2024, 1, 1, 0, 0, 0);
	assert_int_equal(reserve(&f, 1, 50, 50, utc_ms(2023, 12, 1, 0, 0, 0), NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 0, 1, jan - 1, NULL, &h), QUOTA_MONTH);
	assert_int_equal(h.retry_after_s, 1);
	assert_int_equal(reserve(&f, 1, 50, 50, jan, NULL, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].month, 2024 * 12);
	assert_int_equal(f.use[0].tokens_month, 100);

	/* February 2024 has 29 days: the 29th is still February. */
	fix_init(&f);
	f.lim[0].tokens_per_month = 100;
	assert_int_equal(reserve(&f, 1, 100, 0, utc_ms(2024, 2, 28, 10, 0, 0), NULL, NULL), QUOTA_OK);
	uint64_t leap = utc_ms(2024, 2, 29, 0, 0, 0);
	assert_int_equal(reserve(&f, 1, 1, 0, leap, NULL, &h), QUOTA_MONTH);
	assert_int_equal(h.retry_after_s, DAY / 1000);
	assert_int_equal(reserve(&f, 1, 1, 0, leap + DAY - 1, NULL, NULL), QUOTA_MONTH);
	assert_int_equal(reserve(&f, 1, 1, 0, leap + DAY, NULL, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].month, 2024 * 12 + 2);
}

static void retry_after_and_reset_follow_the_clock(void **state)
{
	(void)state;
	struct fix f;
	struct quota_headers h;
	fix_init(&f);
	f.lim[0].requests_per_minute = 1;
	f.lim[0].tokens_per_minute = 1000;
	assert_int_equal(reserve(&f, 1, 1, 1, T0, NULL, &h), QUOTA_OK);
	assert_int_equal(h.reset_requests_ms, MINUTE);
	assert_int_equal(h.reset_tokens_ms, MINUTE);
	assert_int_equal(reserve(&f, 1, 1, 1, T0 + 1, NULL, &h), QUOTA_REQUESTS);
	assert_int_equal(h.retry_after_s, 60);
	assert_int_equal(h.reset_requests_ms, MINUTE - 1);
	assert_int_equal(reserve(&f, 1, 1, 1, T0 + 58001, NULL, &h), QUOTA_REQUESTS);
	assert_int_equal(h.retry_after_s, 2);
	assert_int_equal(reserve(&f, 1, 1, 1, T0 + 59500, NULL, &h), QUOTA_REQUESTS);
	assert_int_equal(h.retry_after_s, 1);
	assert_int_equal(h.reset_requests_ms, 500);
	assert_int_equal(h.reset_tokens_ms, 500);
	assert_int_equal(h.remaining_tokens, 998);
}

static void release_reconciles_the_reservation(void **state)
{
	(void)state;
	struct fix f;
	struct quota_hold hold;
	fix_init(&f);
	f.lim[0].tokens_per_minute = 1000;

	/* Used less: the rest goes back. */
	assert_int_equal(reserve(&f, 1, 100, 100, T0, &hold, NULL), QUOTA_OK);
	assert_int_equal(hold.ask.input_tokens, 100);
	assert_int_equal(hold.minute, quota_minute(T0));
	assert_int_equal(f.use[0].reserved_tokens, 200);
	assert_false(quota_release(f.sc, 1, &hold, 50, 30, T0 + 10));
	assert_int_equal(f.use[0].tokens_minute, 80);
	assert_int_equal(f.use[0].input_tokens_minute, 50);
	assert_int_equal(f.use[0].output_tokens_minute, 30);
	assert_int_equal(f.use[0].tokens_day, 80);
	assert_int_equal(f.use[0].tokens_month, 80);
	assert_int_equal(f.use[0].concurrent, 0);
	assert_int_equal(f.use[0].reserved_tokens, 0);
	assert_int_equal(f.use[0].requests_minute, 1);

	/* Used more: the excess is added. */
	assert_int_equal(reserve(&f, 1, 10, 10, T0 + 20, &hold, NULL), QUOTA_OK);
	quota_release(f.sc, 1, &hold, 40, 60, T0 + 30);
	assert_int_equal(f.use[0].tokens_minute, 180);
	assert_int_equal(f.use[0].input_tokens_minute, 90);
	assert_int_equal(f.use[0].output_tokens_minute, 90);
	assert_int_equal(f.use[0].tokens_day, 180);
	assert_int_equal(f.use[0].reserved_tokens, 0);

	/* Released in the next minute: the new minute only gets the excess,
	 * the day (still the same) is reconciled. */
	assert_int_equal(reserve(&f, 1, 100, 100, T0 + 40, &hold, NULL), QUOTA_OK);
	quota_release(f.sc, 1, &hold, 150, 150, T0 + MINUTE + 1);
	assert_int_equal(f.use[0].tokens_minute, 100);
	assert_int_equal(f.use[0].input_tokens_minute, 50);
	assert_int_equal(f.use[0].output_tokens_minute, 50);
	assert_int_equal(f.use[0].tokens_day, 480);

	/* Used less, released a minute later: the new minute, which has
	 * reservations of its own, is untouched. */
	struct quota_hold now_hold;
	assert_int_equal(reserve(&f, 1, 100, 100, T0 + MINUTE + 2, &hold, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 10, 10, T0 + 2 * MINUTE, &now_hold, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].tokens_minute, 20);
	quota_release(f.sc, 1, &hold, 10, 10, T0 + 2 * MINUTE + 1);
	assert_int_equal(f.use[0].tokens_minute, 20);
	assert_int_equal(f.use[0].input_tokens_minute, 10);
	assert_int_equal(f.use[0].output_tokens_minute, 10);
	assert_int_equal(f.use[0].tokens_day, 520);
	quota_release(f.sc, 1, &now_hold, 10, 10, T0 + 2 * MINUTE + 2);
	assert_int_equal(f.use[0].tokens_minute, 20);
	assert_int_equal(f.use[0].tokens_day, 520);

	/* Released on the next day: the new day (with a reservation of its
	 * own) gets only the excess; the month, still the same, is reconciled. */
	uint64_t late = utc_ms(2024, 3, 14, 23, 59, 59);
	struct quota_hold less;
	assert_int_equal(reserve(&f, 1, 100, 100, late, &hold, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 50, 0, late, &less, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].tokens_day, 770);
	assert_int_equal(reserve(&f, 1, 5, 5, late + 1000, &now_hold, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].tokens_day, 10);
	quota_release(f.sc, 1, &hold, 300, 0, late + 2000);
	assert_int_equal(f.use[0].tokens_day, 110);
	quota_release(f.sc, 1, &less, 0, 0, late + 3000);
	assert_int_equal(f.use[0].tokens_day, 110);
	assert_int_equal(f.use[0].tokens_month, 830);
	quota_release(f.sc, 1, &now_hold, 5, 5, late + 3000);
	assert_int_equal(f.use[0].tokens_day, 110);
	assert_int_equal(f.use[0].concurrent, 0);
	assert_int_equal(f.use[0].reserved_tokens, 0);
}

static void spent_budget_reported_until_the_window_rolls(void **state)
{
	(void)state;
	struct fix f;
	struct quota_hold hold;
	fix_init(&f);
	f.lim[0].tokens_per_day = 500;
	f.lim[1].tokens_per_month = 10000;
	assert_int_equal(reserve(&f, 2, 200, 100, T0, &hold, NULL), QUOTA_OK);
	assert_false(quota_budget_spent(&f.lim[0], &f.use[0], T0));
	assert_true(quota_release(f.sc, 2, &hold, 300, 250, T0 + 1000));
	assert_int_equal(f.use[0].tokens_day, 550);
	assert_true(quota_budget_spent(&f.lim[0], &f.use[0], T0 + 1000));
	assert_false(quota_budget_spent(&f.lim[1], &f.use[1], T0 + 1000));
	uint64_t midnight = utc_ms(2024, 3, 15, 0, 0, 0);
	assert_true(quota_budget_spent(&f.lim[0], &f.use[0], midnight - 1));
	assert_false(quota_budget_spent(&f.lim[0], &f.use[0], midnight));
	assert_int_equal(reserve(&f, 2, 200, 100, midnight, &hold, NULL), QUOTA_OK);
	assert_false(quota_release(f.sc, 2, &hold, 200, 100, midnight + 1));

	/* The month budget, and no limit at all. */
	f.lim[1].tokens_per_month = 9000;
	f.use[1].tokens_month = 9000;
	assert_true(quota_budget_spent(&f.lim[1], &f.use[1], midnight + 2));
	assert_false(quota_budget_spent(&f.lim[1], &f.use[1], utc_ms(2024, 4, 1, 0, 0, 0)));
	assert_false(quota_budget_spent(&f.lim[2], &f.use[2], midnight));
}

static void headers_show_the_scope_that_refuses_first(void **state)
{
	(void)state;
	struct fix f;
	struct quota_headers h;
	fix_init(&f);

	/* Nothing limited: no headers. */
	assert_int_equal(reserve(&f, 3, 5, 5, T0, NULL, &h), QUOTA_OK);
	assert_false(h.has_requests);
	assert_false(h.has_tokens);

	fix_init(&f);
	f.lim[0].requests_per_minute = 10;
	f.lim[0].input_tokens_per_minute = 40;
	f.lim[1].requests_per_minute = 5;
	f.lim[2].tokens_per_minute = 1000;
	assert_int_equal(reserve(&f, 3, 20, 5, T0 + 1000, NULL, &h), QUOTA_OK);
	assert_true(h.has_requests);
	assert_int_equal(h.limit_requests, 5);
	assert_int_equal(h.remaining_requests, 4);
	assert_int_equal(h.reset_requests_ms, MINUTE - 1000);
	/* Tokens per minute wins over the (lower) input limit. */
	assert_true(h.has_tokens);
	assert_int_equal(h.limit_tokens, 1000);
	assert_int_equal(h.remaining_tokens, 975);

	/* Without a tokens-per-minute limit: the input one, then output. */
	f.lim[2].tokens_per_minute = 0;
	struct sluice_usage before[3];
	memcpy(before, f.use, sizeof(before));
	quota_peek(f.sc, 3, T0 + 2000, &h);
	assert_memory_equal(before, f.use, sizeof(before));
	assert_int_equal(h.limit_tokens, 40);
	assert_int_equal(h.remaining_tokens, 20);
	assert_int_equal(h.remaining_requests, 4);
	assert_int_equal(h.retry_after_s, 0);
	f.lim[0].input_tokens_per_minute = 0;
	f.lim[1].output_tokens_per_minute = 7;
	quota_peek(f.sc, 3, T0 + 2000, &h);
	assert_int_equal(h.limit_tokens, 7);
	assert_int_equal(h.remaining_tokens, 2);

	/* Peek in the next minute sees it empty. */
	quota_peek(f.sc, 3, T0 + MINUTE, &h);
	assert_int_equal(h.remaining_requests, 5);
	assert_int_equal(h.remaining_tokens, 7);
	assert_int_equal(h.reset_tokens_ms, MINUTE);
}

static void reset_keeps_requests_in_flight(void **state)
{
	(void)state;
	struct fix f;
	struct quota_hold a, b;
	fix_init(&f);
	f.lim[0].requests_per_minute = 2;
	f.lim[0].tokens_per_day = 1000;
	assert_int_equal(reserve(&f, 1, 100, 100, T0, &a, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 100, 100, T0, &b, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 1, 1, T0, NULL, NULL), QUOTA_REQUESTS);
	quota_reset(&f.use[0]);
	assert_int_equal(f.use[0].lock, 0);
	assert_int_equal(f.use[0].requests_minute, 0);
	assert_int_equal(f.use[0].tokens_minute, 0);
	assert_int_equal(f.use[0].tokens_day, 0);
	assert_int_equal(f.use[0].tokens_month, 0);
	assert_int_equal(f.use[0].minute, 0);
	assert_int_equal(f.use[0].concurrent, 2);
	assert_int_equal(f.use[0].reserved_tokens, 400);
	assert_int_equal(f.use[0].denied, 1);
	/* Releases after the reset do not go negative. */
	quota_release(f.sc, 1, &a, 100, 100, T0 + 1);
	quota_release(f.sc, 1, &b, 10, 10, T0 + 2);
	assert_int_equal(f.use[0].concurrent, 0);
	assert_int_equal(f.use[0].reserved_tokens, 0);
	assert_int_equal(f.use[0].tokens_minute, 0);
	assert_int_equal(reserve(&f, 1, 1, 1, T0 + 3, NULL, NULL), QUOTA_OK);

	quota_clear_in_flight(&f.use[0]);
	assert_int_equal(f.use[0].concurrent, 0);
	assert_int_equal(f.use[0].reserved_tokens, 0);
	assert_int_equal(f.use[0].requests_minute, 1);
	assert_int_equal(f.use[0].lock, 0);
}

static void small_clock_skew_keeps_the_window(void **state)
{
	(void)state;
	struct fix f;
	struct quota_hold hold;
	fix_init(&f);
	f.lim[0].requests_per_minute = 2;
	/* One worker is already in the next minute; another, 3 ms behind,
	 * counts into that minute rather than rolling it back. */
	assert_int_equal(reserve(&f, 1, 10, 10, T0 + MINUTE + 1, NULL, NULL), QUOTA_OK);
	assert_int_equal(reserve(&f, 1, 10, 10, T0 + MINUTE - 2, &hold, NULL), QUOTA_OK);
	assert_int_equal(hold.minute, quota_minute(T0) + 1);
	assert_int_equal(f.use[0].requests_minute, 2);
	assert_int_equal(reserve(&f, 1, 10, 10, T0 + MINUTE - 3, NULL, NULL), QUOTA_REQUESTS);
	quota_release(f.sc, 1, &hold, 0, 0, T0 + MINUTE - 1);
	assert_int_equal(f.use[0].tokens_minute, 20);
	/* A clock stepped back by an hour rolls the window. */
	assert_int_equal(reserve(&f, 1, 10, 10, T0 - 3600000, NULL, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].minute, quota_minute(T0) - 60);
	assert_int_equal(f.use[0].requests_minute, 1);
}

static void odd_inputs_are_safe(void **state)
{
	(void)state;
	struct fix f;
	struct quota_hold hold;
	fix_init(&f);
	f.lim[0].requests_per_minute = 2;
	/* The same scope twice counts once (and does not deadlock). */
	struct quota_scope twice[3] = { f.sc[0], f.sc[0], { NULL, NULL } };
	struct quota_ask ask = { 1, 1 };
	assert_int_equal(quota_reserve(twice, 3, &ask, T0, &hold, NULL), QUOTA_OK);
	assert_int_equal(f.use[0].requests_minute, 1);
	assert_int_equal(f.use[0].concurrent, 1);
	quota_release(twice, 3, &hold, 1, 1, T0);
	assert_int_equal(f.use[0].concurrent, 0);

	/* Absurd asks are capped, so the release balances exactly. */
	ask = (struct quota_ask){ UINT64_MAX, UINT64_MAX };
	assert_int_equal(quota_reserve(&f.sc[1], 1, &ask, T0, &hold, NULL), QUOTA_OK);
	assert_int_equal(f.use[1].reserved_tokens, 1ll << 49);
	quota_release(&f.sc[1], 1, &hold, UINT64_MAX, 0, T0);
	assert_int_equal(f.use[1].reserved_tokens, 0);
	assert_int_equal(f.use[1].input_tokens_minute, 1ull << 48);
	assert_int_equal(f.use[1].output_tokens_minute, 0);

	/* No scopes at all. */
	struct quota_headers h;
	assert_int_equal(quota_reserve(f.sc, 0, &ask, T0, &hold, &h), QUOTA_OK);
	assert_false(h.has_requests);
}

static void verdicts_have_names(void **state)
{
	(void)state;
	assert_string_equal(quota_verdict_name(QUOTA_OK), "ok");
	assert_string_equal(quota_verdict_name(QUOTA_REQUESTS), "requests_per_minute");
	assert_string_equal(quota_verdict_name(QUOTA_TOKENS), "tokens_per_minute");
	assert_string_equal(quota_verdict_name(QUOTA_INPUT_TOKENS), "input_tokens_per_minute");
	assert_string_equal(quota_verdict_name(QUOTA_OUTPUT_TOKENS), "output_tokens_per_minute");
	assert_string_equal(quota_verdict_name(QUOTA_CONCURRENT), "concurrent");
	assert_string_equal(quota_verdict_name(QUOTA_DAY), "tokens_per_day");
	assert_string_equal(quota_verdict_name(QUOTA_MONTH), "tokens_per_month");
	assert_string_equal(quota_verdict_name(QUOTA_TOO_LARGE), "too_large");
	assert_string_equal(quota_verdict_name(QUOTA_UNAVAILABLE), "unavailable");
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

#define THREADS 8
#define CYCLES 10000
#define TPM 3000
#define CONCURRENT 4

struct race {
	struct fix f;
	pthread_barrier_t go;
	uint64_t outstanding, in_flight;	/* what the threads hold now */
	uint64_t admitted, refused, violations;
};

struct racer {
	struct race *r;
	unsigned seed;
};

static void *race_run(void *arg)
{
	struct racer *me = arg;
	struct race *r = me->r;
	uint64_t x = 0x9e3779b97f4a7c15ull * (me->seed + 1);

	pthread_barrier_wait(&r->go);
	for (int i = 0; i < CYCLES; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		struct quota_ask ask = { x % 700, (x >> 20) % 700 };
		struct quota_hold hold;
		if (quota_reserve(r->f.sc, 3, &ask, T0 + 1, &hold, NULL) != QUOTA_OK) {
			__atomic_add_fetch(&r->refused, 1, __ATOMIC_RELAXED);
			continue;
		}
		uint64_t tokens = ask.input_tokens + ask.output_tokens;
		if (__atomic_add_fetch(&r->outstanding, tokens, __ATOMIC_SEQ_CST) > TPM)
			__atomic_add_fetch(&r->violations, 1, __ATOMIC_RELAXED);
		if (__atomic_add_fetch(&r->in_flight, 1, __ATOMIC_SEQ_CST) > CONCURRENT)
			__atomic_add_fetch(&r->violations, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&r->admitted, 1, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&r->in_flight, 1, __ATOMIC_SEQ_CST);
		__atomic_sub_fetch(&r->outstanding, tokens, __ATOMIC_SEQ_CST);
		/* Nothing used: the window only ever holds reservations. */
		quota_release(r->f.sc, 3, &hold, 0, 0, T0 + 2);
	}
	return NULL;
}

static void threads_never_overspend(void **state)
{
	(void)state;
	struct race *r = calloc(1, sizeof(*r));
	struct racer who[THREADS];
	pthread_t t[THREADS];

	assert_non_null(r);
	fix_init(&r->f);
	r->f.lim[0].tokens_per_minute = TPM;
	r->f.lim[1].concurrent = CONCURRENT;
	r->f.lim[2].input_tokens_per_minute = TPM;
	pthread_barrier_init(&r->go, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		who[i] = (struct racer){ .r = r, .seed = (unsigned)i };
		if (pthread_create(&t[i], NULL, race_run, &who[i]))
			abort();
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&r->go);

	struct race res = *r;
	free(r);
	assert_int_equal(res.violations, 0);
	assert_int_equal(res.admitted + res.refused, THREADS * CYCLES);
	assert_true(res.admitted > 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(res.f.use[i].concurrent, 0);
		assert_int_equal(res.f.use[i].reserved_tokens, 0);
		assert_int_equal(res.f.use[i].tokens_minute, 0);
		assert_int_equal(res.f.use[i].input_tokens_minute, 0);
		assert_int_equal(res.f.use[i].requests_minute, res.admitted);
		assert_int_equal(res.f.use[i].lock, 0);
	}
	assert_int_equal(res.f.use[0].denied + res.f.use[1].denied + res.f.use[2].denied,
			 res.refused);
}

/* ------------------------------------------------------------------ */
/* Slots                                                               */
/* ------------------------------------------------------------------ */

static int slots_setup(void **state)
{
	*state = calloc(SLUICE_MAX_QUOTA_SLOTS, sizeof(struct sluice_quota_slot));
	return *state ? 0 : -1;
}

static int slots_teardown(void **state)
{
	free(*state);
	return 0;
}

static struct sluice_quota_slot *find(struct sluice_quota_slot *slots, uint32_t kind,
				      uint32_t tenant, const char *name, bool create)
{
	return quota_slot_find(slots, kind, tenant, name, strlen(name), create);
}

static void slot_created_then_found(void **state)
{
	struct sluice_quota_slot *slots = *state;
	assert_null(find(slots, SLUICE_QUOTA_KEY, 1, "key-a", false));
	struct sluice_quota_slot *s = find(slots, SLUICE_QUOTA_KEY, 1, "key-a", true);
	assert_non_null(s);
	assert_int_equal(s->kind, SLUICE_QUOTA_KEY);
	assert_int_equal(s->tenant, 1);
	assert_string_equal(s->name, "key-a");
	assert_int_equal(s->limits.requests_per_minute, 0);
	assert_int_equal(s->usage.lock, 0);
	assert_ptr_equal(find(slots, SLUICE_QUOTA_KEY, 1, "key-a", false), s);
	assert_ptr_equal(find(slots, SLUICE_QUOTA_KEY, 1, "key-a", true), s);

	/* Another tenant or kind with the same name is another slot. */
	struct sluice_quota_slot *t2 = find(slots, SLUICE_QUOTA_KEY, 2, "key-a", true);
	struct sluice_quota_slot *m = find(slots, SLUICE_QUOTA_MODEL, 1, "key-a", true);
	assert_non_null(t2);
	assert_non_null(m);
	assert_ptr_not_equal(t2, s);
	assert_ptr_not_equal(m, s);
	assert_ptr_not_equal(m, t2);
	assert_int_equal(m->kind, SLUICE_QUOTA_MODEL);

	/* Prefixes and extensions of the name are other names. */
	assert_null(quota_slot_find(slots, SLUICE_QUOTA_KEY, 1, "key-a", 4, false));
	assert_null(find(slots, SLUICE_QUOTA_KEY, 1, "key-ab", false));
	/* A length shorter than the string counts, not the NUL. */
	assert_ptr_equal(quota_slot_find(slots, SLUICE_QUOTA_KEY, 1, "key-a-and-more", 5, false), s);
}

static void slot_names_are_checked(void **state)
{
	struct sluice_quota_slot *slots = *state;
	char name[SLUICE_QUOTA_NAME_LEN + 1];
	memset(name, 'n', sizeof(name));
	name[SLUICE_QUOTA_NAME_LEN] = '\0';
	assert_null(quota_slot_find(slots, SLUICE_QUOTA_MODEL, 0, name, SLUICE_QUOTA_NAME_LEN, true));
	struct sluice_quota_slot *s =
		quota_slot_find(slots, SLUICE_QUOTA_MODEL, 0, name, SLUICE_QUOTA_NAME_LEN - 1, true);
	assert_non_null(s);
	assert_int_equal(strlen(s->name), SLUICE_QUOTA_NAME_LEN - 1);
	assert_null(quota_slot_find(slots, SLUICE_QUOTA_MODEL, 0, "", 0, true));
	assert_null(quota_slot_find(slots, SLUICE_QUOTA_MODEL, 0, "a\0b", 3, true));
	assert_null(quota_slot_find(slots, SLUICE_QUOTA_FREE, 0, "a", 1, true));
	assert_null(quota_slot_find(slots, QUOTA_SLOT_CLAIMING, 0, "a", 1, true));
	assert_null(quota_slot_find(slots, 3, 0, "a", 1, true));
	size_t used = 0;
	for (size_t i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++)
		used += slots[i].kind != SLUICE_QUOTA_FREE;
	assert_int_equal(used, 1);
}

/* Every slot taken: probing finds each name, and the next one is refused. */
static void slots_fill_up(void **state)
{
	struct sluice_quota_slot *slots = *state;
	char name[32];
	for (unsigned i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		snprintf(name, sizeof(name), "model-%u", i);
		struct sluice_quota_slot *s = find(slots, SLUICE_QUOTA_MODEL, i % 3, name, true);
		assert_non_null(s);
		assert_string_equal(s->name, name);
	}
	for (unsigned i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		snprintf(name, sizeof(name), "model-%u", i);
		struct sluice_quota_slot *s = find(slots, SLUICE_QUOTA_MODEL, i % 3, name, false);
		assert_non_null(s);
		assert_string_equal(s->name, name);
		assert_int_equal(s->tenant, i % 3);
	}
	assert_null(find(slots, SLUICE_QUOTA_MODEL, 0, "one-too-many", true));
	assert_null(find(slots, SLUICE_QUOTA_MODEL, 0, "one-too-many", false));
	assert_null(find(slots, SLUICE_QUOTA_MODEL, 1, "model-0", false));
}

#define NAMES 2000
#define ROUNDS 16

struct creators {
	struct sluice_quota_slot *slots;
	unsigned racers;
	unsigned arrived;		/* spin barrier */
	unsigned missing, mismatches, extra_slots;
	struct sluice_quota_slot *got[THREADS][NAMES];
};

struct creator {
	struct creators *all;
	unsigned id;
	unsigned steps;			/* barriers passed */
};

static size_t slots_used(const struct sluice_quota_slot *slots)
{
	size_t used = 0;
	for (size_t i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++)
		used += slots[i].kind != SLUICE_QUOTA_FREE;
	return used;
}

/* All racers start the next step together (spinning: a futex barrier per
 * name would let them drift apart). */
static void racers_step(struct creator *me)
{
	unsigned target = me->all->racers * ++me->steps;
	__atomic_add_fetch(&me->all->arrived, 1, __ATOMIC_SEQ_CST);
	for (unsigned spin = 0; __atomic_load_n(&me->all->arrived, __ATOMIC_ACQUIRE) < target;)
		if (++spin % 64 == 0)
			sched_yield();
}

/* Racer 0 between rounds: compare what everyone got, then clear. */
static void round_check(struct creators *all)
{
	for (unsigned n = 0; n < NAMES; n++) {
		all->missing += !all->got[0][n];
		for (unsigned i = 1; i < all->racers; i++)
			all->mismatches += all->got[i][n] != all->got[0][n];
	}
	all->extra_slots += (unsigned)(slots_used(all->slots) - NAMES);
	memset(all->slots, 0, SLUICE_MAX_QUOTA_SLOTS * sizeof(*all->slots));
}

/* Every racer creates the same names in the same order, each name started
 * together, so they race for every slot. */
static void *create_run(void *arg)
{
	struct creator *me = arg;
	struct creators *all = me->all;
	char name[32];

	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0; i < NAMES; i++) {
			snprintf(name, sizeof(name), "gpt-%u", i);
			racers_step(me);
			all->got[me->id][i] = quota_slot_find(all->slots, SLUICE_QUOTA_MODEL, 7,
							      name, strlen(name), true);
		}
		racers_step(me);
		if (me->id == 0)
			round_check(all);
		racers_step(me);
	}
	return NULL;
}

static void concurrent_creation_yields_one_slot(void **state)
{
	struct creators *all = calloc(1, sizeof(*all));
	struct creator who[THREADS];
	pthread_t t[THREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	assert_non_null(all);
	all->slots = *state;
	/* One racer per CPU: more would only wait for each other. */
	all->racers = cpus < 2 ? 2 : cpus > THREADS ? THREADS : (unsigned)cpus;
	for (unsigned i = 0; i < all->racers; i++) {
		who[i] = (struct creator){ .all = all, .id = i };
		if (pthread_create(&t[i], NULL, create_run, &who[i]))
			abort();
	}
	for (unsigned i = 0; i < all->racers; i++)
		pthread_join(t[i], NULL);

	unsigned missing = all->missing, mismatches = all->mismatches, extra = all->extra_slots;
	free(all);
	assert_int_equal(missing, 0);
	assert_int_equal(mismatches, 0);
	assert_int_equal(extra, 0);
}

struct publisher {
	struct sluice_quota_slot *slot;
};

/* Finishes a claim 50 ms late, as a slow claimer would. */
static void *publish_late(void *arg)
{
	struct publisher *p = arg;
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	p->slot->tenant = 4;
	strcpy(p->slot->name, "slow");
	__atomic_store_n(&p->slot->kind, SLUICE_QUOTA_KEY, __ATOMIC_RELEASE);
	return NULL;
}

static void claims_in_progress_are_waited_for(void **state)
{
	struct sluice_quota_slot *slots = *state;
	struct sluice_quota_slot *scratch = calloc(SLUICE_MAX_QUOTA_SLOTS, sizeof(*scratch));
	assert_non_null(scratch);
	size_t home = (size_t)(find(scratch, SLUICE_QUOTA_KEY, 4, "slow", true) - scratch);
	size_t home2 = (size_t)(find(scratch, SLUICE_QUOTA_KEY, 4, "stale", true) - scratch);
	free(scratch);

	/* A claim published while a lookup waits: the lookup matches it. */
	slots[home].kind = QUOTA_SLOT_CLAIMING;
	struct publisher p = { &slots[home] };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, publish_late, &p), 0);
	struct sluice_quota_slot *s = find(slots, SLUICE_QUOTA_KEY, 4, "slow", true);
	pthread_join(t, NULL);
	assert_ptr_equal(s, &slots[home]);
	assert_int_equal(slots_used(slots), 1);

	/* A claim never published: after a second the slot is dead and the
	 * name goes to the next one. */
	if (slots[home2].kind == SLUICE_QUOTA_FREE) {
		slots[home2].kind = QUOTA_SLOT_CLAIMING;
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		s = find(slots, SLUICE_QUOTA_KEY, 4, "stale", true);
		clock_gettime(CLOCK_MONOTONIC, &b);
		assert_non_null(s);
		assert_ptr_not_equal(s, &slots[home2]);
		assert_int_equal(slots[home2].kind, QUOTA_SLOT_DEAD);
		int64_t waited_ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
		assert_true(waited_ms >= 900);
		assert_ptr_equal(find(slots, SLUICE_QUOTA_KEY, 4, "stale", false), s);
	}
}

/* ---- the daemon's slot table (issue 9 case 4) ---- */

static uint32_t held_by[4];

static uint32_t *held_of(void *arg, uint32_t tenant)
{
	(void)arg;
	return tenant < 4 ? &held_by[tenant] : NULL;
}

static struct quota_slot_table table_of(struct sluice_quota_slot *slots)
{
	struct quota_slot_table t = { .slots = slots };
	pthread_mutex_init(&t.insert, NULL);
	memset(held_by, 0, sizeof(held_by));
	return t;
}

static struct sluice_quota_slot *get(struct quota_slot_table *t, uint32_t tenant, const char *name,
				     uint32_t max)
{
	return quota_slot_get(t, SLUICE_QUOTA_MODEL, tenant, name, strlen(name), &held_by[tenant],
			      max);
}

/* One tenant's many names take its share, not the table: the other
 * tenant still gets slots, and the greedy one gets NULL (a refusal). */
static void table_bounded_per_tenant(void **state)
{
	struct quota_slot_table t = table_of(*state);
	char name[32];
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "model-%d", i);
		assert_non_null(get(&t, 1, name, 100));
	}
	assert_int_equal(held_by[1], 100);
	assert_null(get(&t, 1, "one-more", 100));
	assert_non_null(get(&t, 1, "model-7", 100));	/* its own, found again */
	assert_int_equal(held_by[1], 100);
	assert_non_null(get(&t, 2, "model-1", 100));
	assert_int_equal(held_by[2], 1);
	pthread_mutex_destroy(&t.insert);
}

/* Idle slots come back; busy ones and spent budgets stay. */
static void table_reclaims_idle_slots(void **state)
{
	struct quota_slot_table t = table_of(*state);
	char name[32];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "m-%d", i);
		struct sluice_quota_slot *s = get(&t, 1, name, 10);
		assert_non_null(s);
		s->usage.minute = quota_minute(T0);
		s->usage.requests_minute = 1;
	}
	struct sluice_quota_slot *busy = get(&t, 1, "m-0", 10);
	struct sluice_quota_slot *spent = get(&t, 1, "m-1", 10);
	busy->usage.concurrent = 1;
	spent->usage.day = quota_day(T0);
	spent->usage.tokens_day = 5;
	assert_null(get(&t, 1, "new", 10));

	assert_int_equal(quota_slots_reclaim(&t, T0 + MINUTE, held_of, NULL), 0);
	assert_int_equal(quota_slots_reclaim(&t, T0 + 2 * MINUTE, held_of, NULL), 8);
	assert_int_equal(held_by[1], 2);
	assert_ptr_equal(get(&t, 1, "m-0", 10), busy);
	assert_ptr_equal(get(&t, 1, "m-1", 10), spent);
	/* A reclaimed name starts again from nothing, in a reused slot. */
	struct sluice_quota_slot *again = get(&t, 1, "m-5", 10);
	assert_non_null(again);
	assert_int_equal(again->usage.requests_minute, 0);
	assert_non_null(get(&t, 1, "new", 10));
	assert_int_equal(held_by[1], 4);
	pthread_mutex_destroy(&t.insert);
}

/* Names of 48 bytes or more, or with a NUL, get a slot by hash: each its
 * own, found again, none NULL. */
static void table_long_names_get_slots(void **state)
{
	struct quota_slot_table t = table_of(*state);
	char a[300], b[300];
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(a));
	b[200] = 'y';
	struct sluice_quota_slot *sa = get(&t, 1, a, 10), *sb = get(&t, 1, b, 10);
	assert_non_null(sa);
	assert_non_null(sb);
	assert_ptr_not_equal(sa, sb);
	assert_ptr_equal(get(&t, 1, a, 10), sa);
	assert_ptr_not_equal(get(&t, 1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 10), sa);
	struct sluice_quota_slot *nul = quota_slot_get(&t, SLUICE_QUOTA_MODEL, 1, "a\0b", 3,
						       &held_by[1], 10);
	assert_non_null(nul);
	assert_ptr_not_equal(nul, get(&t, 1, "a", 10));
	pthread_mutex_destroy(&t.insert);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(windows_are_utc_aligned),
		cmocka_unit_test(months_match_gmtime),
		cmocka_unit_test(requests_refused_at_the_limit),
		cmocka_unit_test(tokens_refused_at_the_limit),
		cmocka_unit_test(input_and_output_refused_at_their_limits),
		cmocka_unit_test(concurrency_refused_at_the_limit),
		cmocka_unit_test(budgets_refused_at_the_limit),
		cmocka_unit_test(too_large_never_fits),
		cmocka_unit_test(refusal_in_any_scope_changes_nothing),
		cmocka_unit_test(minute_and_day_windows_roll),
		cmocka_unit_test(month_window_rolls_at_new_year_and_leap_day),
		cmocka_unit_test(retry_after_and_reset_follow_the_clock),
		cmocka_unit_test(release_reconciles_the_reservation),
		cmocka_unit_test(spent_budget_reported_until_the_window_rolls),
		cmocka_unit_test(headers_show_the_scope_that_refuses_first),
		cmocka_unit_test(reset_keeps_requests_in_flight),
		cmocka_unit_test(small_clock_skew_keeps_the_window),
		cmocka_unit_test(odd_inputs_are_safe),
		cmocka_unit_test(verdicts_have_names),
		cmocka_unit_test(threads_never_overspend),
		cmocka_unit_test_setup_teardown(slot_created_then_found, slots_setup, slots_teardown),
		cmocka_unit_test_setup_teardown(slot_names_are_checked, slots_setup, slots_teardown),
		cmocka_unit_test_setup_teardown(slots_fill_up, slots_setup, slots_teardown),
		cmocka_unit_test_setup_teardown(table_bounded_per_tenant, slots_setup, slots_teardown),
		cmocka_unit_test_setup_teardown(table_reclaims_idle_slots, slots_setup, slots_teardown),
		cmocka_unit_test_setup_teardown(table_long_names_get_slots, slots_setup,
						slots_teardown),
		cmocka_unit_test_setup_teardown(concurrent_creation_yields_one_slot, slots_setup,
						slots_teardown),
		cmocka_unit_test_setup_teardown(claims_in_progress_are_waited_for, slots_setup,
						slots_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
