/* SPDX-License-Identifier: Apache-2.0 */
#include "quota/quota.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/sat.h"

#define MINUTE_MS	60000ull
#define DAY_MS		86400000ull

/* A stored window up to this far ahead of now is still current: workers
 * pass the time of their own loop iteration, so one may roll a window a
 * few milliseconds before another sees it start.  A window further ahead
 * comes from a clock that was stepped back, and is rolled like an old one
 * (otherwise its counters would never reset). */
#define SKEW_MS		5000ull

/* A slot claim not published within this time is taken as abandoned (its
 * process died between the two steps of the claim). */
#define CLAIM_WAIT_NS	1000000000ull

/* Spins on a busy lock or a slot being claimed before yielding the CPU. */
#define SPINS_BEFORE_YIELD 1024

_Static_assert((SLUICE_MAX_QUOTA_SLOTS & (SLUICE_MAX_QUOTA_SLOTS - 1)) == 0,
	       "quota slot probing masks the hash: the slot count must be a power of two");

/* The records are read without the lock (metrics, sluicectl, budget
 * checks), so every store to them is atomic, if relaxed. */
static inline uint64_t ld(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void st(__u64 *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* A signed in-flight count as a count: a negative value (a release without
 * its reservation) reads as 0. */
static inline uint64_t ld_count(const __s64 *p)
{
	int64_t v = __atomic_load_n(p, __ATOMIC_RELAXED);
	return v > 0 ? (uint64_t)v : 0;
}

static inline void st_count(__s64 *p, uint64_t v)
{
	__atomic_store_n(p, v > INT64_MAX ? INT64_MAX : (int64_t)v, __ATOMIC_RELAXED);
}

/* Token asks and usage are capped so that no sum overflows and a release
 * always returns exactly what its reservation took. */
static inline uint64_t cap_tokens(uint64_t n)
{
	return min_u64(n, QUOTA_TOKENS_MAX);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* ------------------------------------------------------------------ */
/* Windows                                                             */
/* ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard
 * Hinnant's civil calendar algorithms: no tables, no global state). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(uint64_t days, uint64_t *year, unsigned *month)
{
	uint64_t z = days + 719468;	/* days since 0000-03-01 */
	uint64_t era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;	/* March = 0 */
	unsigned m = mp < 10 ? mp + 3 : mp - 9;

	*year = yoe + era * 400 + (m <= 2);
	*month = m;
}

uint64_t quota_minute(uint64_t now_ms)
{
	return now_ms / MINUTE_MS;
}

uint64_t quota_day(uint64_t now_ms)
{
	return now_ms / DAY_MS;
}

uint64_t quota_month(uint64_t now_ms)
{
	uint64_t year;
	unsigned month;

	civil_from_days(now_ms / DAY_MS, &year, &month);
	return year * 12 + month - 1;
}

/* First ms of a month index; 0 for months before 1970. */
static uint64_t month_start_ms(uint64_t month)
{
	int64_t days = days_from_civil((int64_t)(month / 12), (unsigned)(month % 12) + 1, 1);
	return days > 0 ? (uint64_t)days * DAY_MS : 0;
}

uint64_t quota_month_end_ms(uint64_t month)
{
	return month_start_ms(month + 1);
}

struct windows {
	uint64_t minute, day, month;
};

/*
 * Whether a stored window index is the current one at now_ms: it is cur,
 * or the next one (starting at next_start_ms) already begun on a clock
 * up to SKEW_MS ahead.
 */
static bool window_current(uint64_t stored, uint64_t cur, uint64_t next_start_ms, uint64_t now_ms)
{
	return stored == cur || (stored == cur + 1 && next_start_ms <= now_ms + SKEW_MS);
}

/* ------------------------------------------------------------------ */
/* Records and their locks                                             */
/* ------------------------------------------------------------------ */

static void usage_lock(struct sluice_usage *u)
{
	unsigned spins = 0;

	while (__atomic_exchange_n(&u->lock, 1, __ATOMIC_ACQUIRE)) {
		/* Wait on a plain load so the cache line is not bounced by
		 * exchanges; yield if the holder seems descheduled. */
		while (__atomic_load_n(&u->lock, __ATOMIC_RELAXED)) {
			if (++spins < SPINS_BEFORE_YIELD) {
				cpu_relax();
			} else {
				spins = 0;
				sched_yield();
			}
		}
	}
}

static void usage_unlock(struct sluice_usage *u)
{
	__atomic_store_n(&u->lock, 0, __ATOMIC_RELEASE);
}

/* A scope passed a second time (or without a record) is counted once (or
 * not at all): locking it twice would deadlock. */
static bool scope_skipped(const struct quota_scope *s, size_t i)
{
	if (!s[i].usage || !s[i].limits)
		return true;
	for (size_t j = 0; j < i; j++)
		if (s[j].usage == s[i].usage)
			return true;
	return false;
}

static void lock_all(struct quota_scope *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!scope_skipped(s, i))
			usage_lock(s[i].usage);
}

static void unlock_all(struct quota_scope *s, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (!scope_skipped(s, i))
			usage_unlock(s[i].usage);
}

/* The limits as one consistent-enough copy (sluicectl may write them
 * at any time, without the usage lock). */
struct lim {
	uint64_t rpm, tpm, itpm, otpm, day, month, concurrent;
};

static struct lim limits_load(const struct sluice_limits *l)
{
	return (struct lim){
		.rpm = ld(&l->requests_per_minute),
		.tpm = ld(&l->tokens_per_minute),
		.itpm = ld(&l->input_tokens_per_minute),
		.otpm = ld(&l->output_tokens_per_minute),
		.day = ld(&l->tokens_per_day),
		.month = ld(&l->tokens_per_month),
		.concurrent = __atomic_load_n(&l->concurrent, __ATOMIC_RELAXED),
	};
}

static void usage_roll(struct sluice_usage *u, const struct windows *w)
{
	if (ld(&u->minute) != w->minute) {
		st(&u->requests_minute, 0);
		st(&u->tokens_minute, 0);
		st(&u->input_tokens_minute, 0);
		st(&u->output_tokens_minute, 0);
		st(&u->minute, w->minute);
	}
	if (ld(&u->day) != w->day) {
		st(&u->tokens_day, 0);
		st(&u->day, w->day);
	}
	if (ld(&u->month) != w->month) {
		st(&u->tokens_month, 0);
		st(&u->month, w->month);
	}
}

/*
 * The windows of now_ms as all the locked scopes will agree on them, and
 * every scope rolled into them.  Normally these are now's own windows; when
 * now is within SKEW_MS of the next window and a scope already moved into
 * it, everyone joins that one, so a reservation and its release always
 * compare against one window index.
 */
static void windows_settle(struct quota_scope *s, size_t n, uint64_t now_ms, struct windows *w)
{
	bool minute_ahead = false, day_ahead = false, month_ahead = false;

	w->minute = quota_minute(now_ms);
	w->day = quota_day(now_ms);
	w->month = quota_month(now_ms);
	for (size_t i = 0; i < n; i++) {
		if (scope_skipped(s, i))
			continue;
		minute_ahead |= ld(&s[i].usage->minute) == w->minute + 1;
		day_ahead |= ld(&s[i].usage->day) == w->day + 1;
		month_ahead |= ld(&s[i].usage->month) == w->month + 1;
	}
	if (minute_ahead && window_current(w->minute + 1, w->minute, (w->minute + 1) * MINUTE_MS, now_ms))
		w->minute++;
	if (day_ahead && window_current(w->day + 1, w->day, (w->day + 1) * DAY_MS, now_ms))
		w->day++;
	if (month_ahead && window_current(w->month + 1, w->month, quota_month_end_ms(w->month), now_ms))
		w->month++;
	for (size_t i = 0; i < n; i++)
		if (!scope_skipped(s, i))
			usage_roll(s[i].usage, w);
}

/* ------------------------------------------------------------------ */
/* Admission                                                           */
/* ------------------------------------------------------------------ */

/* used + need <= limit, without overflow (used may exceed limit). */
static bool fits(uint64_t used, uint64_t need, uint64_t limit)
{
	return used <= limit && need <= limit - used;
}

/*
 * Why one scope refuses, the most lasting reason first: a request that can
 * never fit, then the month, the day, the minute, the concurrency.  A
 * client told to retry should not be refused again, for longer, by a
 * reason that was there all along.
 */
static enum quota_verdict scope_refusal(const struct lim *l, const struct sluice_usage *u,
					uint64_t in, uint64_t out)
{
	uint64_t total = in + out;

	if ((l->tpm && total > l->tpm) || (l->itpm && in > l->itpm) ||
	    (l->otpm && out > l->otpm) || (l->day && total > l->day) ||
	    (l->month && total > l->month))
		return QUOTA_TOO_LARGE;
	if (l->month && !fits(ld(&u->tokens_month), total, l->month))
		return QUOTA_MONTH;
	if (l->day && !fits(ld(&u->tokens_day), total, l->day))
		return QUOTA_DAY;
	if (l->rpm && !fits(ld(&u->requests_minute), 1, l->rpm))
		return QUOTA_REQUESTS;
	if (l->tpm && !fits(ld(&u->tokens_minute), total, l->tpm))
		return QUOTA_TOKENS;
	if (l->itpm && !fits(ld(&u->input_tokens_minute), in, l->itpm))
		return QUOTA_INPUT_TOKENS;
	if (l->otpm && !fits(ld(&u->output_tokens_minute), out, l->otpm))
		return QUOTA_OUTPUT_TOKENS;
	if (l->concurrent && !fits(ld_count(&u->concurrent), 1, l->concurrent))
		return QUOTA_CONCURRENT;
	return QUOTA_OK;
}

/* Lower is more lasting; across scopes the most lasting refusal is the
 * one reported (ties: the first scope). */
static int verdict_rank(enum quota_verdict v)
{
	switch (v) {
	case QUOTA_TOO_LARGE:
		return 0;
	case QUOTA_MONTH:
		return 1;
	case QUOTA_DAY:
		return 2;
	case QUOTA_REQUESTS:
	case QUOTA_TOKENS:
	case QUOTA_INPUT_TOKENS:
	case QUOTA_OUTPUT_TOKENS:
		return 3;
	case QUOTA_CONCURRENT:
	case QUOTA_UNAVAILABLE:
	case QUOTA_PENDING:
		return 4;
	case QUOTA_OK:
		break;
	}
	return 5;
}

static uint64_t ms_until(uint64_t end_ms, uint64_t now_ms)
{
	return end_ms > now_ms ? end_ms - now_ms : 0;
}

/* Whole seconds until the refusing window resets, rounded up, at least 1;
 * 0 for a request that no wait will admit. */
static uint64_t retry_after_s(enum quota_verdict v, const struct windows *w, uint64_t now_ms)
{
	uint64_t ms;

	switch (v) {
	case QUOTA_TOO_LARGE:
		return 0;
	case QUOTA_REQUESTS:
	case QUOTA_TOKENS:
	case QUOTA_INPUT_TOKENS:
	case QUOTA_OUTPUT_TOKENS:
		ms = ms_until((w->minute + 1) * MINUTE_MS, now_ms);
		break;
	case QUOTA_DAY:
		ms = ms_until((w->day + 1) * DAY_MS, now_ms);
		break;
	case QUOTA_MONTH:
		ms = ms_until(quota_month_end_ms(w->month), now_ms);
		break;
	default:
		return 1;
	}
	ms = (ms + 999) / 1000;
	return ms ? ms : 1;
}

/* The scope with the least left of one limit. */
struct least {
	bool has;
	uint64_t limit, remaining;
};

static void least_note(struct least *p, uint64_t limit, uint64_t used)
{
	if (!limit)
		return;
	uint64_t rem = sat_sub_u64(limit, used);
	if (!p->has || rem < p->remaining)
		*p = (struct least){ .has = true, .limit = limit, .remaining = rem };
}

/* Header values from the locked, rolled scopes. */
static void headers_fill(struct quota_scope *s, size_t n, const struct windows *w,
			 uint64_t now_ms, struct quota_headers *h)
{
	struct least req = { 0 }, tok[3] = { { 0 } };

	for (size_t i = 0; i < n; i++) {
		if (scope_skipped(s, i))
			continue;
		struct lim l = limits_load(s[i].limits);
		const struct sluice_usage *u = s[i].usage;
		least_note(&req, l.rpm, ld(&u->requests_minute));
		least_note(&tok[0], l.tpm, ld(&u->tokens_minute));
		least_note(&tok[1], l.itpm, ld(&u->input_tokens_minute));
		least_note(&tok[2], l.otpm, ld(&u->output_tokens_minute));
	}
	/* Tokens: the total per minute when any scope limits it, else input,
	 * else output (one x-ratelimit-*-tokens family only). */
	const struct least *t = tok[0].has ? &tok[0] : tok[1].has ? &tok[1] : &tok[2];
	uint64_t reset = ms_until((w->minute + 1) * MINUTE_MS, now_ms);

	*h = (struct quota_headers){
		.has_requests = req.has,
		.limit_requests = req.limit,
		.remaining_requests = req.remaining,
		.reset_requests_ms = req.has ? reset : 0,
		.has_tokens = t->has,
		.limit_tokens = t->limit,
		.remaining_tokens = t->remaining,
		.reset_tokens_ms = t->has ? reset : 0,
	};
}

static void usage_commit(struct sluice_usage *u, uint64_t in, uint64_t out)
{
	uint64_t total = in + out;

	st(&u->requests_minute, sat_add_u64(ld(&u->requests_minute), 1));
	st(&u->tokens_minute, sat_add_u64(ld(&u->tokens_minute), total));
	st(&u->input_tokens_minute, sat_add_u64(ld(&u->input_tokens_minute), in));
	st(&u->output_tokens_minute, sat_add_u64(ld(&u->output_tokens_minute), out));
	st(&u->tokens_day, sat_add_u64(ld(&u->tokens_day), total));
	st(&u->tokens_month, sat_add_u64(ld(&u->tokens_month), total));
	st_count(&u->concurrent, ld_count(&u->concurrent) + 1);
	st_count(&u->reserved_tokens, ld_count(&u->reserved_tokens) + total);
}

enum quota_verdict quota_reserve(struct quota_scope *scopes, size_t n,
				 const struct quota_ask *ask, uint64_t now_ms,
				 struct quota_hold *hold, struct quota_headers *h)
{
	uint64_t in = cap_tokens(ask->input_tokens), out = cap_tokens(ask->output_tokens);
	enum quota_verdict v = QUOTA_OK;
	struct windows w;
	size_t who = 0;

	lock_all(scopes, n);
	windows_settle(scopes, n, now_ms, &w);
	for (size_t i = 0; i < n; i++) {
		if (scope_skipped(scopes, i))
			continue;
		struct lim l = limits_load(scopes[i].limits);
		enum quota_verdict sv = scope_refusal(&l, scopes[i].usage, in, out);
		if (verdict_rank(sv) < verdict_rank(v)) {
			v = sv;
			who = i;
		}
	}
	if (v == QUOTA_OK) {
		for (size_t i = 0; i < n; i++)
			if (!scope_skipped(scopes, i))
				usage_commit(scopes[i].usage, in, out);
	} else {
		st(&scopes[who].usage->denied, sat_add_u64(ld(&scopes[who].usage->denied), 1));
	}
	if (h) {
		headers_fill(scopes, n, &w, now_ms, h);
		h->retry_after_s = v == QUOTA_OK ? 0 : retry_after_s(v, &w, now_ms);
	}
	unlock_all(scopes, n);

	if (v == QUOTA_OK && hold)
		*hold = (struct quota_hold){
			.ask = { .input_tokens = in, .output_tokens = out },
			.minute = w.minute, .day = w.day, .month = w.month,
		};
	return v;
}

/* ------------------------------------------------------------------ */
/* Release                                                             */
/* ------------------------------------------------------------------ */

/*
 * Replace a reservation by what was used.  In the window the reservation
 * was counted in, the counter moves by used - reserved (never below 0).
 * In a later window the reservation is not there to take back: only what
 * was used beyond it is new spend.
 */
static void counter_settle(__u64 *c, uint64_t reserved, uint64_t used, bool same_window)
{
	uint64_t v = ld(c);

	if (used >= reserved)
		v = sat_add_u64(v, used - reserved);
	else if (same_window)
		v = sat_sub_u64(v, reserved - used);
	st(c, v);
}

static void usage_settle(struct sluice_usage *u, const struct quota_hold *hold,
			 uint64_t used_in, uint64_t used_out, const struct windows *w)
{
	uint64_t in = cap_tokens(hold->ask.input_tokens), out = cap_tokens(hold->ask.output_tokens);
	bool minute = hold->minute == w->minute;

	st_count(&u->concurrent, sat_sub_u64(ld_count(&u->concurrent), 1));
	st_count(&u->reserved_tokens, sat_sub_u64(ld_count(&u->reserved_tokens), in + out));
	counter_settle(&u->tokens_minute, in + out, used_in + used_out, minute);
	counter_settle(&u->input_tokens_minute, in, used_in, minute);
	counter_settle(&u->output_tokens_minute, out, used_out, minute);
	counter_settle(&u->tokens_day, in + out, used_in + used_out, hold->day == w->day);
	counter_settle(&u->tokens_month, in + out, used_in + used_out, hold->month == w->month);
}

/* A hard budget used up in the (rolled) current windows. */
static bool budget_reached(const struct lim *l, const struct sluice_usage *u)
{
	return (l->day && ld(&u->tokens_day) >= l->day) ||
	       (l->month && ld(&u->tokens_month) >= l->month);
}

bool quota_release(struct quota_scope *scopes, size_t n, const struct quota_hold *hold,
		   uint64_t used_in, uint64_t used_out, uint64_t now_ms)
{
	struct windows w;
	bool spent = false;

	used_in = cap_tokens(used_in);
	used_out = cap_tokens(used_out);
	lock_all(scopes, n);
	windows_settle(scopes, n, now_ms, &w);
	for (size_t i = 0; i < n; i++) {
		if (scope_skipped(scopes, i))
			continue;
		usage_settle(scopes[i].usage, hold, used_in, used_out, &w);
		struct lim l = limits_load(scopes[i].limits);
		spent |= budget_reached(&l, scopes[i].usage);
	}
	unlock_all(scopes, n);
	return spent;
}

void quota_peek(struct quota_scope *scopes, size_t n, uint64_t now_ms, struct quota_headers *h)
{
	struct windows w;

	if (!h)
		return;
	lock_all(scopes, n);
	windows_settle(scopes, n, now_ms, &w);
	headers_fill(scopes, n, &w, now_ms, h);
	unlock_all(scopes, n);
}

/* Lock-free: a racing roll can make this answer for the moment before or
 * after it, which the caller's next check corrects. */
bool quota_budget_spent(const struct sluice_limits *l, const struct sluice_usage *u,
			uint64_t now_ms)
{
	uint64_t day_limit = ld(&l->tokens_per_day), month_limit = ld(&l->tokens_per_month);

	if (day_limit) {
		uint64_t day = quota_day(now_ms);
		if (window_current(ld(&u->day), day, (day + 1) * DAY_MS, now_ms) &&
		    ld(&u->tokens_day) >= day_limit)
			return true;
	}
	if (month_limit) {
		uint64_t month = quota_month(now_ms);
		if (window_current(ld(&u->month), month, quota_month_end_ms(month), now_ms) &&
		    ld(&u->tokens_month) >= month_limit)
			return true;
	}
	return false;
}

void quota_reset(struct sluice_usage *u)
{
	usage_lock(u);
	st(&u->minute, 0);
	st(&u->requests_minute, 0);
	st(&u->tokens_minute, 0);
	st(&u->input_tokens_minute, 0);
	st(&u->output_tokens_minute, 0);
	st(&u->day, 0);
	st(&u->tokens_day, 0);
	st(&u->month, 0);
	st(&u->tokens_month, 0);
	usage_unlock(u);
}

void quota_clear_in_flight(struct sluice_usage *u)
{
	usage_lock(u);
	st_count(&u->concurrent, 0);
	st_count(&u->reserved_tokens, 0);
	usage_unlock(u);
}

const char *quota_verdict_name(enum quota_verdict v)
{
	switch (v) {
	case QUOTA_OK:
		return "ok";
	case QUOTA_REQUESTS:
		return "requests_per_minute";
	case QUOTA_TOKENS:
		return "tokens_per_minute";
	case QUOTA_INPUT_TOKENS:
		return "input_tokens_per_minute";
	case QUOTA_OUTPUT_TOKENS:
		return "output_tokens_per_minute";
	case QUOTA_CONCURRENT:
		return "concurrent";
	case QUOTA_DAY:
		return "tokens_per_day";
	case QUOTA_MONTH:
		return "tokens_per_month";
	case QUOTA_TOO_LARGE:
		return "too_large";
	case QUOTA_PENDING:
		return "pending";
	case QUOTA_UNAVAILABLE:
		return "unavailable";
	}
	return "unknown";
}

/* ------------------------------------------------------------------ */
/* Slots                                                               */
/* ------------------------------------------------------------------ */

/*
 * FNV-1a over kind, tenant (little-endian bytes) and name, then the
 * murmur3 finaliser so the low bits used as the index mix every input
 * byte.  Slots persist in a pinned map: changing this function moves
 * every scope, so it needs a new SLUICE_LAYOUT_VERSION.
 */
static uint64_t slot_hash(uint32_t kind, uint32_t tenant, const char *name, size_t len)
{
	const unsigned char k[8] = {
		kind & 0xff, (kind >> 8) & 0xff, (kind >> 16) & 0xff, kind >> 24,
		tenant & 0xff, (tenant >> 8) & 0xff, (tenant >> 16) & 0xff, tenant >> 24,
	};
	uint64_t h = fnv1a64(fnv1a64(FNV1A64_INIT, k, sizeof(k)), name, len);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* Only called once the slot's kind was read with acquire: its tenant and
 * name were written before the kind was published and never change. */
static bool slot_matches(const struct sluice_quota_slot *s, uint32_t tenant,
			 const char *name, size_t len)
{
	return s->tenant == tenant && memcmp(s->name, name, len) == 0 && s->name[len] == '\0';
}

/*
 * Two-step claim of a free slot: FREE -> CLAIMING, fill it, CLAIMING ->
 * kind with release, so nobody can match a slot whose name is not written
 * yet.  False when another claimer won the slot, or when a waiter gave up
 * on this claim and marked the slot dead meanwhile.
 */
static bool slot_claim_from(struct sluice_quota_slot *s, uint32_t from, uint32_t kind,
			    uint32_t tenant, const char *name, size_t len)
{
	uint32_t expect = from;

	if (!__atomic_compare_exchange_n(&s->kind, &expect, QUOTA_SLOT_CLAIMING, false,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return false;
	s->tenant = tenant;
	memset(s->name, 0, sizeof(s->name));
	memcpy(s->name, name, len);
	memset(&s->limits, 0, sizeof(s->limits));
	memset(&s->usage, 0, sizeof(s->usage));
	expect = QUOTA_SLOT_CLAIMING;
	return __atomic_compare_exchange_n(&s->kind, &expect, kind, false,
					   __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

static bool slot_claim(struct sluice_quota_slot *s, uint32_t kind, uint32_t tenant,
		       const char *name, size_t len)
{
	return slot_claim_from(s, SLUICE_QUOTA_FREE, kind, tenant, name, len);
}

/*
 * The kind of a slot being claimed, once its claimer has published it.
 * A claim still open after CLAIM_WAIT_NS was abandoned: the slot is
 * marked dead, so no lookup waits on it again.
 */
static uint32_t slot_wait_claimed(struct sluice_quota_slot *s)
{
	uint64_t deadline = 0;
	unsigned spins = 0;
	uint32_t k;

	while ((k = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE)) == QUOTA_SLOT_CLAIMING) {
		if (++spins < SPINS_BEFORE_YIELD) {
			cpu_relax();
			continue;
		}
		uint64_t t = clock_mono_ns();
		if (!deadline) {
			deadline = t + CLAIM_WAIT_NS;
		} else if (t >= deadline) {
			uint32_t expect = QUOTA_SLOT_CLAIMING;
			if (__atomic_compare_exchange_n(&s->kind, &expect, QUOTA_SLOT_DEAD, false,
							__ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
				return QUOTA_SLOT_DEAD;
			return expect;
		}
		sched_yield();
	}
	return k;
}

static bool slot_name_ok(const char *name, size_t len)
{
	return name && len > 0 && len < SLUICE_QUOTA_NAME_LEN && !memchr(name, '\0', len);
}

struct sluice_quota_slot *quota_slot_find(struct sluice_quota_slot *slots, uint32_t kind,
					  uint32_t tenant, const char *name, size_t name_len,
					  bool create)
{
	if (!slots || (kind != SLUICE_QUOTA_KEY && kind != SLUICE_QUOTA_MODEL) ||
	    !slot_name_ok(name, name_len))
		return NULL;

	uint64_t h = slot_hash(kind, tenant, name, name_len);
	for (size_t i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		struct sluice_quota_slot *s = &slots[(h + i) & (SLUICE_MAX_QUOTA_SLOTS - 1)];
		uint32_t k = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE);

		/* Slots are never freed, so a free slot ends the chain. */
		if (k == SLUICE_QUOTA_FREE) {
			if (!create)
				return NULL;
			if (slot_claim(s, kind, tenant, name, name_len))
				return s;
			k = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE);
		}
		if (k == QUOTA_SLOT_CLAIMING)
			k = slot_wait_claimed(s);
		if (k == kind && slot_matches(s, tenant, name, name_len))
			return s;
	}
	return NULL;
}

void quota_slots_forget_tenant(struct sluice_quota_slot *slots, uint32_t tenant)
{
	for (size_t i = 0; slots && i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		struct sluice_quota_slot *s = &slots[i];
		uint32_t k = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE);
		if ((k != SLUICE_QUOTA_KEY && k != SLUICE_QUOTA_MODEL) || s->tenant != tenant)
			continue;
		/* Dead, not free: a free slot would end the chains through it. */
		__atomic_compare_exchange_n(&s->kind, &k, QUOTA_SLOT_DEAD, false,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
}

/* A name that cannot be a slot's (too long, empty, or with a NUL) is
 * stored as \x01, its FNV-1a hash and its length: such names still get
 * their own slot, and a long model name no longer escapes its limits. */
static size_t slot_key(const char *name, size_t len, char out[SLUICE_QUOTA_NAME_LEN])
{
	if (slot_name_ok(name, len)) {
		memcpy(out, name, len);
		return len;
	}
	uint64_t h = fnv1a64(FNV1A64_INIT, name, len);
	int n = snprintf(out, SLUICE_QUOTA_NAME_LEN, "\x01%016llx:%zu", (unsigned long long)h, len);
	return n > 0 && n < SLUICE_QUOTA_NAME_LEN ? (size_t)n : SLUICE_QUOTA_NAME_LEN - 1;
}

static bool slot_reusable(uint32_t k)
{
	return k == SLUICE_QUOTA_FREE || k == QUOTA_SLOT_DEAD;
}

/* Under t->insert: the chain again (someone may have inserted meanwhile),
 * then the first free or dead slot on it, if the tenant has room. */
static struct sluice_quota_slot *slot_insert_locked(struct sluice_quota_slot *slots,
						    uint32_t kind, uint32_t tenant,
						    const char *name, size_t len,
						    uint32_t *held, uint32_t max)
{
	uint64_t h = slot_hash(kind, tenant, name, len);
	struct sluice_quota_slot *reuse = NULL;
	for (size_t i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		struct sluice_quota_slot *s = &slots[(h + i) & (SLUICE_MAX_QUOTA_SLOTS - 1)];
		uint32_t k = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE);
		if (k == QUOTA_SLOT_CLAIMING)
			k = slot_wait_claimed(s);
		if (slot_reusable(k) && !reuse)
			reuse = s;
		if (k == SLUICE_QUOTA_FREE)
			break;
		if (k == kind && slot_matches(s, tenant, name, len))
			return s;
	}
	if (!reuse || __atomic_load_n(held, __ATOMIC_RELAXED) >= max)
		return NULL;
	uint32_t from = __atomic_load_n(&reuse->kind, __ATOMIC_ACQUIRE);
	if (!slot_reusable(from) || !slot_claim_from(reuse, from, kind, tenant, name, len))
		return NULL;
	__atomic_add_fetch(held, 1, __ATOMIC_RELAXED);
	return reuse;
}

struct sluice_quota_slot *quota_slot_get(struct quota_slot_table *t, uint32_t kind,
					 uint32_t tenant, const char *name, size_t name_len,
					 uint32_t *held, uint32_t max)
{
	char key[SLUICE_QUOTA_NAME_LEN];
	if (!t || !t->slots || (kind != SLUICE_QUOTA_KEY && kind != SLUICE_QUOTA_MODEL))
		return NULL;
	size_t len = slot_key(name, name_len, key);
	struct sluice_quota_slot *s = quota_slot_find(t->slots, kind, tenant, key, len, false);
	if (s)
		return s;
	pthread_mutex_lock(&t->insert);
	s = slot_insert_locked(t->slots, kind, tenant, key, len, held, max);
	pthread_mutex_unlock(&t->insert);
	return s;
}

static bool slot_idle(const struct sluice_quota_slot *s, uint64_t now_ms)
{
	const struct sluice_usage *u = &s->usage;
	uint64_t minute = quota_minute(now_ms);
	return __atomic_load_n(&u->lock, __ATOMIC_ACQUIRE) == 0 &&
	       __atomic_load_n(&u->concurrent, __ATOMIC_RELAXED) == 0 &&
	       __atomic_load_n(&u->reserved_tokens, __ATOMIC_RELAXED) == 0 &&
	       u->minute + 2 <= minute &&
	       (!u->tokens_day || u->day != quota_day(now_ms)) &&
	       (!u->tokens_month || u->month != quota_month(now_ms));
}

size_t quota_slots_reclaim(struct quota_slot_table *t, uint64_t now_ms,
			   uint32_t *(*held_of)(void *arg, uint32_t tenant), void *arg)
{
	size_t n = 0;
	if (!t || !t->slots)
		return 0;
	pthread_mutex_lock(&t->insert);
	for (size_t i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		struct sluice_quota_slot *s = &t->slots[i];
		uint32_t k = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE);
		if ((k != SLUICE_QUOTA_KEY && k != SLUICE_QUOTA_MODEL) || !slot_idle(s, now_ms))
			continue;
		/* Dead, not free: a free slot would cut the chains through it;
		 * the next insert on the chain reuses it. */
		if (!__atomic_compare_exchange_n(&s->kind, &k, QUOTA_SLOT_DEAD, false,
						 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			continue;
		uint32_t *held = held_of(arg, s->tenant);
		if (held && __atomic_load_n(held, __ATOMIC_RELAXED))
			__atomic_sub_fetch(held, 1, __ATOMIC_RELAXED);
		n++;
	}
	pthread_mutex_unlock(&t->insert);
	return n;
}
