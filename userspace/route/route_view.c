/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operator's view of the routes: GET /admin/routes (JSON) and the
 * sluice_route_* series of /metrics.  Off the request path: worker 0
 * renders it, reading the other workers' counters with relaxed loads.
 */
#include <inttypes.h>
#include <string.h>

#include "api/json.h"
#include "route/route.h"

struct arm_sum {
	uint64_t requests, failures, fallbacks;
	unsigned inflight, open, half_open;
};

static void sum_arm(const struct route_arm *a, struct route_cursor *const *cursors, unsigned n,
		    uint64_t now, struct arm_sum *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < n; i++) {
		const struct route_arm_state *st = &cursors[i]->arms[a->id];
		s->requests += __atomic_load_n(&st->requests, __ATOMIC_RELAXED);
		s->failures += __atomic_load_n(&st->failures, __ATOMIC_RELAXED);
		s->fallbacks += __atomic_load_n(&st->fallbacks_from, __ATOMIC_RELAXED);
		s->inflight += __atomic_load_n(&st->inflight, __ATOMIC_RELAXED);
		enum route_breaker b = __atomic_load_n(&st->breaker, __ATOMIC_RELAXED);
		uint64_t until = __atomic_load_n(&st->open_until, __ATOMIC_RELAXED);
		/* An open breaker whose time is up waits for its probe. */
		s->open += b == ROUTE_BREAKER_OPEN && until > now;
		s->half_open += b == ROUTE_BREAKER_HALF_OPEN ||
				(b == ROUTE_BREAKER_OPEN && until <= now);
	}
}

static int put_json_str(struct buf *out, const char *s)
{
	size_t cap = strlen(s) * 6 + 3;
	int err = buf_reserve(out, cap);
	if (err)
		return err;
	int n = json_escape(buf_tail(out), cap, s, strlen(s));
	if (n < 0)
		return n;
	out->len += (size_t)n;
	return 0;
}

static const char *breaker_name(const struct arm_sum *s)
{
	return s->open ? "open" : s->half_open ? "half_open" : "closed";
}

static int render_arm(const struct route_table *rt, const struct route_arm *a,
		      struct route_cursor *const *cursors, unsigned n, uint64_t now,
		      struct buf *out, bool first)
{
	struct arm_sum s;
	sum_arm(a, cursors, n, now, &s);
	int err = buf_printf(out, "%s{\"backend\":", first ? "" : ",");
	if (!err)
		err = put_json_str(out, rt->cfg->backends[a->backend].name);
	if (!err)
		err = buf_printf(out, ",\"model\":");
	if (!err)
		err = a->model ? put_json_str(out, a->model) : buf_printf(out, "null");
	if (!err)
		err = buf_printf(out, ",\"weight\":%u,\"configured_weight\":%u,\"requests\":%" PRIu64
				 ",\"failures\":%" PRIu64 ",\"fallbacks\":%" PRIu64
				 ",\"in_flight\":%u,\"breaker\":\"%s\",\"workers_open\":%u}",
				 __atomic_load_n(&a->weight, __ATOMIC_RELAXED), a->cfg_weight,
				 s.requests, s.failures, s.fallbacks, s.inflight, breaker_name(&s),
				 s.open);
	return err;
}

static const char *balance_name(const struct route_def *d)
{
	static const char *const names[] = { "weighted", "least_inflight", "peak_ewma" };
	return names[d->cfg ? d->cfg->balance : ROUTE_BALANCE_WEIGHTED];
}

static int render_route(const struct route_table *rt, const struct route_def *d,
			struct route_cursor *const *cursors, unsigned n, uint64_t now,
			struct buf *out, bool first)
{
	int err = buf_printf(out, "%s{\"model\":", first ? "" : ",");
	if (!err)
		err = put_json_str(out, d->name);
	if (!err)
		err = buf_printf(out, ",\"implicit\":%s,\"balance\":\"%s\",\"arms\":[",
				 d->implicit ? "true" : "false", balance_name(d));
	for (unsigned i = 0; !err && i < d->narms; i++)
		err = render_arm(rt, &d->arms[i], cursors, n, now, out, i == 0);
	if (!err)
		err = buf_printf(out, "],\"fallback\":[");
	for (unsigned i = 0; !err && i < d->nfallback; i++)
		err = render_arm(rt, &d->fallback[i], cursors, n, now, out, i == 0);
	uint64_t exhausted = 0;
	for (unsigned i = 0; i < n; i++)
		exhausted += __atomic_load_n(&cursors[i]->budgets[d->index].exhausted,
					     __ATOMIC_RELAXED);
	if (!err)
		err = buf_printf(out, "],\"retry_budget_exhausted\":%" PRIu64 "}", exhausted);
	return err;
}

int route_render_json(const struct route_table *rt, struct route_cursor *const *cursors,
		      unsigned n, uint64_t now, struct buf *out)
{
	int err = buf_printf(out, "{\"routes\":[");
	for (unsigned r = 0; !err && r < rt->ndefs; r++)
		err = render_route(rt, &rt->defs[r], cursors, n, now, out, r == 0);
	return err ? err : buf_printf(out, "]}\n");
}

/* Label values: route and backend names, escaped as Prometheus wants
 * (backslash, quote, newline). */
static int put_label(struct buf *out, const char *s)
{
	int err = 0;
	for (; !err && *s; s++) {
		if (*s == '\\' || *s == '"')
			err = buf_printf(out, "\\%c", *s);
		else if (*s == '\n')
			err = buf_printf(out, "\\n");
		else
			err = buf_append(out, s, 1);
	}
	return err;
}

static int metric_line(struct buf *out, const char *name, const struct route_def *d,
		       const char *backend, const char *role, uint64_t v)
{
	int err = buf_printf(out, "%s{route=\"", name);
	if (!err)
		err = put_label(out, d->name);
	if (!err)
		err = buf_printf(out, "\",backend=\"");
	if (!err)
		err = put_label(out, backend);
	if (!err)
		err = buf_printf(out, "\",role=\"%s\"} %" PRIu64 "\n", role, v);
	return err;
}

static const struct {
	const char *name, *type, *help;
} series[] = {
	{ "sluice_route_requests_total", "counter", "Attempts sent to a route's target" },
	{ "sluice_route_failures_total", "counter",
	  "Attempts that failed (connect, timeout, reset, 5xx, 429, error event)" },
	{ "sluice_route_fallbacks_total", "counter", "Requests moved from this target to the next" },
	{ "sluice_route_weight", "gauge", "Live weight of an arm (admin may change it)" },
	{ "sluice_route_breaker_open", "gauge", "Workers whose breaker for this target is open" },
};

static uint64_t series_value(unsigned k, const struct route_arm *a, const struct arm_sum *s)
{
	switch (k) {
	case 0: return s->requests;
	case 1: return s->failures;
	case 2: return s->fallbacks;
	case 3: return __atomic_load_n(&a->weight, __ATOMIC_RELAXED);
	default: return s->open;
	}
}

int route_render_metrics(const struct route_table *rt, struct route_cursor *const *cursors,
			 unsigned n, uint64_t now, struct buf *out)
{
	int err = 0;
	for (unsigned k = 0; !err && k < sizeof(series) / sizeof(series[0]); k++) {
		err = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help,
				 series[k].name, series[k].type);
		for (unsigned r = 0; !err && r < rt->ndefs; r++) {
			const struct route_def *d = &rt->defs[r];
			if (d->implicit)
				continue;
			for (unsigned i = 0; !err && i < d->narms + d->nfallback; i++) {
				const struct route_arm *a = &d->arms[i];
				struct arm_sum s;
				sum_arm(a, cursors, n, now, &s);
				err = metric_line(out, series[k].name, d,
						  rt->cfg->backends[a->backend].name,
						  a->fallback ? "fallback" : "arm",
						  series_value(k, a, &s));
			}
		}
	}
	return err;
}
