/* SPDX-License-Identifier: Apache-2.0 */
#include <time.h>

#include "quota/quota.h"
#include "usage.h"

uint64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t ld(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* In-flight counts can dip below 0 for a moment (a release racing a
 * reset): shown as 0. */
static uint64_t ld_count(const __s64 *p)
{
	int64_t v = __atomic_load_n(p, __ATOMIC_RELAXED);

	return v > 0 ? (uint64_t)v : 0;
}

/* A counter of the window `stored`, as of the window `now`. */
static uint64_t in_window(const __u64 *counter, const __u64 *stored, uint64_t now)
{
	return ld(stored) == now ? ld(counter) : 0;
}

void usage_view_of(const struct sluice_usage *u, uint64_t now_ms, struct usage_view *v)
{
	uint64_t minute = quota_minute(now_ms), day = quota_day(now_ms);
	uint64_t month = quota_month(now_ms);

	v->requests_minute = in_window(&u->requests_minute, &u->minute, minute);
	v->tokens_minute = in_window(&u->tokens_minute, &u->minute, minute);
	v->input_tokens_minute = in_window(&u->input_tokens_minute, &u->minute, minute);
	v->output_tokens_minute = in_window(&u->output_tokens_minute, &u->minute, minute);
	v->tokens_day = in_window(&u->tokens_day, &u->day, day);
	v->tokens_month = in_window(&u->tokens_month, &u->month, month);
	v->concurrent = ld_count(&u->concurrent);
	v->reserved_tokens = ld_count(&u->reserved_tokens);
	v->denied = ld(&u->denied);
}

void limits_copy(const struct sluice_limits *l, struct sluice_limits *out)
{
	out->requests_per_minute = ld(&l->requests_per_minute);
	out->tokens_per_minute = ld(&l->tokens_per_minute);
	out->input_tokens_per_minute = ld(&l->input_tokens_per_minute);
	out->output_tokens_per_minute = ld(&l->output_tokens_per_minute);
	out->tokens_per_day = ld(&l->tokens_per_day);
	out->tokens_per_month = ld(&l->tokens_per_month);
	out->concurrent = __atomic_load_n(&l->concurrent, __ATOMIC_RELAXED);
	out->pad = 0;
}

bool limits_any(const struct sluice_limits *l)
{
	return l->requests_per_minute || l->tokens_per_minute || l->input_tokens_per_minute ||
	       l->output_tokens_per_minute || l->tokens_per_day || l->tokens_per_month ||
	       l->concurrent;
}

bool usage_any(const struct usage_view *v)
{
	return v->requests_minute || v->tokens_minute || v->tokens_day || v->tokens_month ||
	       v->concurrent || v->denied;
}

static void limit_json(struct jw *w, const char *key, uint64_t v)
{
	if (v)
		jw_u64(w, key, v);
	else
		jw_null(w, key);	/* unlimited */
}

void usage_json(struct jw *w, const struct sluice_limits *l, const struct usage_view *v)
{
	jw_open(w, "limits");
	limit_json(w, "requests_per_minute", l->requests_per_minute);
	limit_json(w, "tokens_per_minute", l->tokens_per_minute);
	limit_json(w, "input_tokens_per_minute", l->input_tokens_per_minute);
	limit_json(w, "output_tokens_per_minute", l->output_tokens_per_minute);
	limit_json(w, "concurrent", l->concurrent);
	limit_json(w, "tokens_per_day", l->tokens_per_day);
	limit_json(w, "tokens_per_month", l->tokens_per_month);
	jw_close(w);
	jw_open(w, "usage");
	jw_u64(w, "requests_minute", v->requests_minute);
	jw_u64(w, "tokens_minute", v->tokens_minute);
	jw_u64(w, "input_tokens_minute", v->input_tokens_minute);
	jw_u64(w, "output_tokens_minute", v->output_tokens_minute);
	jw_u64(w, "concurrent", v->concurrent);
	jw_u64(w, "reserved_tokens", v->reserved_tokens);
	jw_u64(w, "tokens_day", v->tokens_day);
	jw_u64(w, "tokens_month", v->tokens_month);
	jw_u64(w, "denied", v->denied);
	jw_close(w);
}

void usage_cell(struct table *t, uint64_t used, uint64_t limit)
{
	if (limit)
		table_cell(t, "%llu/%llu", (unsigned long long)used, (unsigned long long)limit);
	else
		table_cell(t, "%llu/-", (unsigned long long)used);
}
